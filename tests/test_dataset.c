/*
 * test_dataset - the data_ readers (format/dataset.h, issue 6) on files
 * written to a temporary folder: JSONL text and prompt/response fields,
 * JSON escapes (U+00E9, a surrogate-pair emoji, U+0000), every kind of bad
 * record with its exact line and record number, blank lines, CRLF, .txt
 * splitting at newline / whitespace / character boundary (with a property
 * check over random multi-byte text: valid UTF-8, no document over
 * max_bytes, documents concatenate back to the file), numbering across
 * files, and missing files.
 */
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "dataset.h"
#include "unicode.h"

/* =============================================================== helpers */

static char g_dir[256];

static const char *tmp_dir(void) {
    if (!g_dir[0]) {
        const char *t = getenv("TMPDIR");
        snprintf(g_dir, sizeof g_dir, "%s/sra-dataset-XXXXXX", t && *t ? t : "/tmp");
        if (!mkdtemp(g_dir)) {
            printf("  mkdtemp %s failed\n", g_dir);
            exit(1);
        }
    }
    return g_dir;
}

/* Writes n bytes to DIR/name; returns the path (static slots, reused). */
static const char *write_file(const char *name, const char *data, size_t n) {
    static char slots[8][512];
    static int next;
    char *p = slots[next++ % 8];
    snprintf(p, 512, "%s/%s", tmp_dir(), name);
    FILE *f = fopen(p, "wb");
    if (!f || fwrite(data, 1, n, f) != n) {
        printf("  cannot write %s\n", p);
        exit(1);
    }
    fclose(f);
    return p;
}
#define WRITE(name, lit) write_file(name, lit, sizeof(lit) - 1)

typedef struct {
    int64_t index, line, offset;
    int file;
    char *text; /* NULL on error */
    size_t len, loss_start;
    char *error;
} rec_copy;

typedef struct {
    rec_copy r[65536];
    int n;
    int rc; /* data_next's last return: 0 at a clean end */
} recs;

static void recs_free(recs *a) {
    for (int i = 0; i < a->n; i++) {
        free(a->r[i].text);
        free(a->r[i].error);
    }
    free(a);
}

/* Reads everything; open failures are CHECKed. */
static recs *read_all(const char *const *paths, int n, const data_opts *o) {
    recs *a = calloc(1, sizeof *a);
    data_reader *r = NULL;
    int rc = data_open(&r, paths, n, o);
    CHECK(rc == 0, "data_open: %d %s", rc, data_errmsg(r));
    data_record rec;
    while (rc == 0 && (rc = data_next(r, &rec)) == 1 && a->n < 65536) {
        rec_copy *c = &a->r[a->n++];
        c->index = rec.index, c->line = rec.line, c->offset = rec.offset, c->file = rec.file;
        c->len = rec.len, c->loss_start = rec.loss_start;
        if (rec.text) {
            c->text = malloc(rec.len + 1);
            memcpy(c->text, rec.text, rec.len + 1);
            CHECK(rec.text[rec.len] == 0, "record %lld not NUL-terminated", (long long)rec.index);
        }
        if (rec.error) c->error = strdup(rec.error);
        CHECK(!rec.text != !rec.error, "record %lld: exactly one of text and error", (long long)rec.index);
        rc = 0;
    }
    a->rc = rc;
    CHECK(rc == 0, "data_next ended with %d: %s", rc, data_errmsg(r));
    data_close(r);
    return a;
}

static recs *read_one(const char *path, const data_opts *o) { return read_all(&path, 1, o); }

static int text_is(const rec_copy *c, const char *s, size_t n) {
    return c->text && c->len == n && !memcmp(c->text, s, n);
}
#define TEXT_IS(c, lit) text_is(c, lit, sizeof(lit) - 1)

/* The record is an error at (line, index) whose message holds `what`. */
static void check_bad(const rec_copy *c, const char *path, int64_t line, int64_t index, const char *what) {
    char prefix[700];
    snprintf(prefix, sizeof prefix, "%s:%lld: record %lld: ", path, (long long)line, (long long)index);
    CHECK(c->error != NULL, "record %lld (line %lld) should be bad (%s)", (long long)index, (long long)line, what);
    if (!c->error) return;
    CHECK(c->index == index && c->line == line, "got record %lld line %lld, want %lld line %lld", (long long)c->index,
          (long long)c->line, (long long)index, (long long)line);
    CHECK(!strncmp(c->error, prefix, strlen(prefix)), "error '%s' does not start '%s'", c->error, prefix);
    CHECK(strstr(c->error, what) != NULL, "error '%s' does not say '%s'", c->error, what);
}

/* ================================================================= JSONL */

TEST(jsonl_text_field_and_escapes) {
    const char *p = WRITE("escapes.jsonl",
                          "{\"text\": \"hello\"}\n"
                          "{\"id\": 1, \"text\": \"caf\\u00e9 caf\xc3\xa9\"}\n"
                          "{\"text\": \"smile \\ud83d\\ude00!\"}\n"
                          "{\"text\": \"a\\u0000b\"}\n"
                          "{\"text\": \"q\\\"\\\\\\/\\n\\t\\r\\b\\f\"}\n"
                          "{\"meta\": {\"text\": \"nested\", \"x\": [\"text\", {\"text\": 1}]}, \"note\": \"\\\"text\\\": no\", \"text\": \"top\"}\n"
                          "{\"te\\u0078t\": \"escaped key\", \"text\": \"second\"}\n");
    recs *a = read_one(p, NULL);
    CHECK(a->n == 7, "%d records", a->n);
    if (a->n == 7) {
        CHECK(TEXT_IS(&a->r[0], "hello"), "0");
        CHECK(TEXT_IS(&a->r[1], "caf\xc3\xa9 caf\xc3\xa9"), "\\u00e9 decodes to the same bytes as a raw é");
        CHECK(TEXT_IS(&a->r[2], "smile \xf0\x9f\x98\x80!"), "surrogate pair -> U+1F600");
        CHECK(TEXT_IS(&a->r[3], "a\0b") && a->r[3].len == 3, "U+0000 kept, len %zu", a->r[3].len);
        CHECK(TEXT_IS(&a->r[4], "q\"\\/\n\t\r\b\f"), "simple escapes");
        CHECK(TEXT_IS(&a->r[5], "top"), "only the top-level key counts: '%s'", a->r[5].text ? a->r[5].text : a->r[5].error);
        CHECK(TEXT_IS(&a->r[6], "escaped key"), "an escaped key is the key (first wins)");
        for (int i = 0; i < 7; i++) {
            CHECK(a->r[i].index == i && a->r[i].line == i + 1 && a->r[i].file == 0, "numbering %d", i);
            CHECK(a->r[i].loss_start == 0, "loss_start %zu", a->r[i].loss_start);
        }
        CHECK(a->r[0].offset == 0 && a->r[1].offset == 18, "offsets %lld %lld", (long long)a->r[0].offset,
              (long long)a->r[1].offset);
    }
    recs_free(a);

    /* --text-field */
    p = WRITE("content.jsonl", "{\"text\": \"no\", \"content\": \"yes\"}\n{\"text\": \"only text\"}\n");
    data_opts o = {.text_field = "content"};
    a = read_one(p, &o);
    CHECK(a->n == 2 && TEXT_IS(&a->r[0], "yes"), "content field");
    if (a->n == 2) check_bad(&a->r[1], p, 2, 1, "no field \"content\"");
    recs_free(a);
}

TEST(jsonl_prompt_response) {
    const char *p = WRITE("pr.jsonl",
                          "{\"prompt\": \"Q: hi\\n\", \"response\": \"A: yo\"}\n"
                          "{\"response\": \"r\", \"prompt\": \"caf\\u00e9 \"}\n"
                          "{\"prompt\": \"\", \"response\": \"all loss\"}\n"
                          "{\"prompt\": \"no loss\", \"response\": \"\"}\n"
                          "{\"prompt\": \"\", \"response\": \"\"}\n"
                          "{\"prompt\": \"p\"}\n"
                          "{\"prompt\": [\"p\"], \"response\": \"r\"}\n"
                          "{\"prompt\": \"\\u0000\", \"response\": \"\\ud83d\\ude00\"}\n");
    data_opts o = {.prompt_field = "prompt", .response_field = "response"};
    recs *a = read_one(p, &o);
    CHECK(a->n == 8, "%d records", a->n);
    if (a->n == 8) {
        CHECK(TEXT_IS(&a->r[0], "Q: hi\nA: yo") && a->r[0].loss_start == 6, "loss_start %zu", a->r[0].loss_start);
        CHECK(TEXT_IS(&a->r[1], "caf\xc3\xa9 r") && a->r[1].loss_start == 6, "loss_start counts bytes: %zu",
              a->r[1].loss_start);
        CHECK(TEXT_IS(&a->r[2], "all loss") && a->r[2].loss_start == 0, "empty prompt");
        CHECK(TEXT_IS(&a->r[3], "no loss") && a->r[3].loss_start == 7, "empty response");
        check_bad(&a->r[4], p, 5, 4, "empty text");
        check_bad(&a->r[5], p, 6, 5, "no field \"response\"");
        check_bad(&a->r[6], p, 7, 6, "field \"prompt\" is an array, not a string");
        CHECK(TEXT_IS(&a->r[7], "\0\xf0\x9f\x98\x80") && a->r[7].loss_start == 1, "U+0000 prompt");
    }
    recs_free(a);
}

TEST(jsonl_bad_records_numbered) {
    const char *p = WRITE("bad.jsonl",
                          "{\"text\": \"ok\"}\n"                  /* line 1, record 0 */
                          "\n"                                    /* line 2, blank: no record */
                          "{\"text\": \n"                         /* 3, rec 1 */
                          "[1, 2]\n"                              /* 4, rec 2 */
                          "{\"other\": \"x\"}\n"                  /* 5, rec 3 */
                          "{\"text\": 5}\n"                       /* 6, rec 4 */
                          "{\"text\": \"bad \xff byte\"}\n"       /* 7, rec 5 */
                          "{\"text\": \"\"}\n"                    /* 8, rec 6 */
                          "{\"text\": \"\\ud800\"}\n"             /* 9, rec 7: lone surrogate */
                          "{\"text\": \"a\"} x\n"                 /* 10, rec 8 */
                          "{\"text\": null}\n"                    /* 11, rec 9 */
                          "{\"text\": \"a\0b\"}\n"                /* 12, rec 10: raw NUL */
                          "{\"text\": \"\xed\xa0\x80\"}\n"        /* 13, rec 11: raw surrogate */
                          "{\"text\": {\"text\": \"x\"}}\n"       /* 14, rec 12 */
                          "\"text\"\n"                            /* 15, rec 13 */
                          "{\"text\": \"fine\"}\n");              /* 16, rec 14 */
    recs *a = read_one(p, NULL);
    CHECK(a->n == 15, "%d records", a->n);
    if (a->n == 15) {
        CHECK(TEXT_IS(&a->r[0], "ok") && a->r[0].line == 1 && a->r[0].index == 0, "first");
        check_bad(&a->r[1], p, 3, 1, "invalid JSON");
        check_bad(&a->r[2], p, 4, 2, "not a JSON object");
        check_bad(&a->r[3], p, 5, 3, "no field \"text\"");
        check_bad(&a->r[4], p, 6, 4, "field \"text\" is a number, not a string");
        check_bad(&a->r[5], p, 7, 5, "not valid UTF-8 (byte 4");
        check_bad(&a->r[6], p, 8, 6, "empty text");
        check_bad(&a->r[7], p, 9, 7, "invalid JSON");
        check_bad(&a->r[8], p, 10, 8, "invalid JSON: text after the value");
        check_bad(&a->r[9], p, 11, 9, "is null, not a string");
        check_bad(&a->r[10], p, 12, 10, "raw NUL byte at column 12");
        check_bad(&a->r[11], p, 13, 11, "not valid UTF-8");
        check_bad(&a->r[12], p, 14, 12, "is an object, not a string");
        check_bad(&a->r[13], p, 15, 13, "not a JSON object");
        CHECK(TEXT_IS(&a->r[14], "fine") && a->r[14].line == 16 && a->r[14].index == 14, "reading goes on");
    }
    recs_free(a);
}

TEST(jsonl_blank_lines_and_crlf) {
    const char *p = WRITE("crlf.jsonl",
                          "\r\n"
                          "{\"text\": \"one\"}\r\n"
                          "   \t \r\n"
                          "{\"text\": \"two\\r\\n\"}\r\n"
                          "\n"
                          "{\"text\": \"three\"}  \r\n"
                          "{\"text\": \"last, no newline\"}");
    recs *a = read_one(p, NULL);
    CHECK(a->n == 4, "%d records", a->n);
    if (a->n == 4) {
        CHECK(TEXT_IS(&a->r[0], "one") && a->r[0].line == 2 && a->r[0].index == 0 && a->r[0].offset == 2, "one");
        CHECK(TEXT_IS(&a->r[1], "two\r\n") && a->r[1].line == 4 && a->r[1].index == 1, "escaped CR kept");
        CHECK(TEXT_IS(&a->r[2], "three") && a->r[2].line == 6 && a->r[2].index == 2, "three");
        CHECK(TEXT_IS(&a->r[3], "last, no newline") && a->r[3].line == 7 && a->r[3].index == 3, "last");
    }
    recs_free(a);

    /* A file of blank lines only, and an empty file: no records. */
    const char *q[2] = {WRITE("blank.jsonl", "\n\r\n  \n"), WRITE("empty.jsonl", "")};
    a = read_all(q, 2, NULL);
    CHECK(a->n == 0 && a->rc == 0, "%d records", a->n);
    recs_free(a);
}

TEST(jsonl_long_line) {
    /* One line much longer than any stdio buffer (getline grows). */
    size_t n = 300000;
    char *buf = malloc(n + 64);
    size_t k = (size_t)sprintf(buf, "{\"text\": \"");
    for (size_t i = 0; i < n; i++) buf[k++] = (char)('a' + i % 26);
    k += (size_t)sprintf(buf + k, "\"}\n{\"text\": \"after\"}\n");
    const char *p = write_file("long.jsonl", buf, k);
    recs *a = read_one(p, NULL);
    CHECK(a->n == 2 && a->r[0].len == n && a->r[0].text && !memcmp(a->r[0].text, buf + 10, n), "long line");
    CHECK(a->n == 2 && TEXT_IS(&a->r[1], "after") && a->r[1].line == 2, "after");
    recs_free(a);
    free(buf);
}

/* ================================================================== text */

/* Reads path as .txt with max_bytes and checks the splitting invariants
 * against the file's bytes: documents 1..max bytes, valid UTF-8 when the
 * file is, concatenation == the file, offsets and lines consistent. */
static recs *check_txt(const char *path, const char *data, size_t n, size_t max) {
    data_opts o = {.max_bytes = max};
    recs *a = read_one(path, &o);
    size_t at = 0;
    int64_t line = 1;
    int ok = 1;
    int valid = uni_validate(data, n) == n;
    for (int i = 0; i < a->n && ok; i++) {
        rec_copy *c = &a->r[i];
        size_t len = c->text ? c->len : 0;
        if (!c->text) { /* a bad document: its length is where the next starts */
            len = (size_t)(i + 1 < a->n ? a->r[i + 1].offset : (int64_t)n) - (size_t)c->offset;
            CHECK(!valid, "max %zu doc %d: error on valid UTF-8: %s", max, i, c->error);
        }
        ok &= c->index == i && c->offset == (int64_t)at && c->line == line;
        CHECK(ok, "max %zu doc %d: index %lld offset %lld line %lld, want offset %zu line %lld", max, i,
              (long long)c->index, (long long)c->offset, (long long)c->line, at, (long long)line);
        ok &= len >= 1 && len <= max;
        CHECK(ok, "max %zu doc %d: %zu bytes", max, i, len);
        if (c->text) {
            ok &= uni_validate(c->text, len) == len && at + len <= n && !memcmp(c->text, data + at, len);
            CHECK(ok, "max %zu doc %d: not valid UTF-8 or not the file's bytes at %zu", max, i, at);
        }
        for (size_t j = 0; j < len && at + j < n; j++) line += data[at + j] == '\n';
        at += len;
    }
    CHECK(!ok || at == n, "max %zu: documents cover %zu of %zu bytes", max, at, n);
    return a;
}

TEST(txt_split_rules) {
    /* newline: the cut falls after the last newline within the limit */
    const char *p = WRITE("nl.txt", "aaa\nbbb\nccc");
    recs *a = check_txt(p, "aaa\nbbb\nccc", 11, 6);
    CHECK(a->n == 3 && TEXT_IS(&a->r[0], "aaa\n") && TEXT_IS(&a->r[1], "bbb\n") && TEXT_IS(&a->r[2], "ccc"),
          "newline cuts (%d docs)", a->n);
    CHECK(a->n == 3 && a->r[1].line == 2 && a->r[2].line == 3, "lines");
    recs_free(a);

    /* whitespace: the next document starts with the space */
    p = WRITE("ws.txt", "hello world foo");
    a = check_txt(p, "hello world foo", 15, 8);
    CHECK(a->n == 3 && TEXT_IS(&a->r[0], "hello") && TEXT_IS(&a->r[1], " world") && TEXT_IS(&a->r[2], " foo"),
          "whitespace cuts (%d docs)", a->n);
    recs_free(a);
    /* a space just past the limit is a cut at the limit */
    p = WRITE("ws2.txt", "abcd efgh");
    a = check_txt(p, "abcd efgh", 9, 4);
    CHECK(a->n == 3 && TEXT_IS(&a->r[0], "abcd") && TEXT_IS(&a->r[1], " efg") && TEXT_IS(&a->r[2], "h"),
          "at limit (%d docs)", a->n);
    recs_free(a);

    /* no whitespace: a character boundary, never inside é (2 bytes) */
    const char *e5 = "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9";
    p = write_file("e.txt", e5, 10);
    a = check_txt(p, e5, 10, 5);
    CHECK(a->n == 3 && a->r[0].len == 4 && a->r[1].len == 4 && a->r[2].len == 2, "é boundaries (%d docs)", a->n);
    recs_free(a);
    /* 4-byte characters with the smallest limit */
    const char *em = "\xf0\x9f\x98\x80\xf0\x9f\x98\x80x\xf0\x9f\x98\x80";
    p = write_file("emoji.txt", em, 13);
    for (size_t max = 4; max <= 14; max++) recs_free(check_txt(p, em, 13, max));

    /* edges: empty file, exactly max bytes, only newlines */
    p = WRITE("empty.txt", "");
    a = check_txt(p, "", 0, 4);
    CHECK(a->n == 0, "empty .txt: %d docs", a->n);
    recs_free(a);
    p = WRITE("exact.txt", "abcdefgh");
    a = check_txt(p, "abcdefgh", 8, 8);
    CHECK(a->n == 1 && a->r[0].len == 8, "exactly max");
    recs_free(a);
    p = WRITE("nls.txt", "\n\n\n\n\n\n\n");
    recs_free(check_txt(p, "\n\n\n\n\n\n\n", 7, 4));
}

TEST(txt_random_multibyte) {
    /* Random text from ASCII, 2-, 3- and 4-byte characters, spaces, tabs,
     * CRLF and long runs with no whitespace; every max_bytes from 4 to 64. */
    static const char *pool[] = {"a", "b", "z", "\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80", " ", "\t", "\n",
                                 "\r\n", "\xe4\xb8\xad\xe6\x96\x87", "xyz"};
    size_t cap = 40000, n = 0;
    char *buf = malloc(cap);
    uint64_t s = 0x9e3779b97f4a7c15ull;
    while (n + 16 < cap) {
        s ^= s << 13, s ^= s >> 7, s ^= s << 17;
        int k = (int)(s % 12);
        if ((s >> 20) % 9 == 0 && (k == 6 || k == 7 || k == 8 || k == 9)) k = 4; /* fewer breaks sometimes */
        size_t l = strlen(pool[k]);
        memcpy(buf + n, pool[k], l);
        n += l;
    }
    const char *p = write_file("rand.txt", buf, n);
    for (size_t max = 4; max <= 64; max++) recs_free(check_txt(p, buf, n, max));
    recs_free(check_txt(p, buf, n, 1000));
    recs_free(check_txt(p, buf, n, 100000)); /* one document */

    /* Only multi-byte characters, no whitespace at all */
    n = 0;
    while (n + 16 < cap) {
        s ^= s << 13, s ^= s >> 7, s ^= s << 17;
        const char *c = pool[3 + s % 3];
        memcpy(buf + n, c, strlen(c));
        n += strlen(c);
    }
    p = write_file("mb.txt", buf, n);
    for (size_t max = 4; max <= 40; max++) recs_free(check_txt(p, buf, n, max));
    free(buf);
}

TEST(txt_invalid_utf8) {
    /* A bad document is reported with its line and number; reading goes on. */
    const char *data = "good line\nbad \xff here\nfine\n";
    const char *p = write_file("bad.txt", data, strlen(data));
    recs *a = check_txt(p, data, strlen(data), 12);
    CHECK(a->n == 3, "%d docs", a->n);
    if (a->n == 3) {
        CHECK(TEXT_IS(&a->r[0], "good line\n"), "0");
        check_bad(&a->r[1], p, 2, 1, "not valid UTF-8 (byte 4 of the document, byte 14 of the file)");
        CHECK(TEXT_IS(&a->r[2], "fine\n") && a->r[2].line == 3, "2");
    }
    recs_free(a);
    /* continuation bytes only: cut at max_bytes */
    p = WRITE("cont.txt", "\x80\x80\x80\x80\x80\x80");
    a = check_txt(p, "\x80\x80\x80\x80\x80\x80", 6, 4);
    CHECK(a->n == 2 && a->r[0].error && a->r[1].error && a->r[1].offset == 4, "continuation bytes");
    recs_free(a);
}

/* ======================================================= several files */

TEST(numbering_across_files) {
    const char *p[3] = {WRITE("m1.jsonl", "{\"text\": \"a\"}\n\n{\"text\": \"b\"}\n"),
                        WRITE("m2.txt", "first doc\nsecond doc\n"),
                        WRITE("m3.jsonl", "{\"x\": 1}\n{\"text\": \"c\"}\n")};
    data_opts o = {.max_bytes = 12};
    recs *a = read_all(p, 3, &o);
    CHECK(a->n == 6, "%d records", a->n);
    if (a->n == 6) {
        static const int file[6] = {0, 0, 1, 1, 2, 2};
        static const int line[6] = {1, 3, 1, 2, 1, 2};
        for (int i = 0; i < 6; i++)
            CHECK(a->r[i].index == i && a->r[i].file == file[i] && a->r[i].line == line[i],
                  "record %d: index %lld file %d line %lld", i, (long long)a->r[i].index, a->r[i].file,
                  (long long)a->r[i].line);
        CHECK(TEXT_IS(&a->r[1], "b") && TEXT_IS(&a->r[2], "first doc\n") && TEXT_IS(&a->r[3], "second doc\n"), "texts");
        check_bad(&a->r[4], p[2], 1, 4, "no field \"text\"");
        CHECK(TEXT_IS(&a->r[5], "c"), "c");
    }
    recs_free(a);
}

TEST(open_errors) {
    char missing[600];
    snprintf(missing, sizeof missing, "%s/no-such-file.jsonl", tmp_dir());
    const char *p[2] = {WRITE("ok.jsonl", "{\"text\": \"a\"}\n"), missing};
    data_reader *r = NULL;
    int rc = data_open(&r, p, 2, NULL);
    CHECK(rc == SRA_E_IO && r, "missing file: rc %d", rc);
    CHECK(r && strstr(data_errmsg(r), missing), "message names the file: '%s'", r ? data_errmsg(r) : "");
    data_record rec;
    CHECK(r && data_next(r, &rec) < 0, "no records after a failed open");
    data_close(r);

    const char *d = tmp_dir();
    rc = data_open(&r, &d, 1, NULL);
    CHECK(rc == SRA_E_IO && strstr(data_errmsg(r), "directory"), "directory: %d %s", rc, data_errmsg(r));
    data_close(r);

    data_opts o = {.max_bytes = 3};
    rc = data_open(&r, p, 1, &o);
    CHECK(rc == SRA_E_ARG, "max_bytes 3: %d", rc);
    data_close(r);
    data_opts o2 = {.prompt_field = "p"};
    rc = data_open(&r, p, 1, &o2);
    CHECK(rc == SRA_E_ARG && strstr(data_errmsg(r), "prompt"), "prompt alone: %d %s", rc, data_errmsg(r));
    data_close(r);
    data_opts o3 = {.prompt_field = "p", .response_field = "p"};
    rc = data_open(&r, p, 1, &o3);
    CHECK(rc == SRA_E_ARG, "same field twice: %d", rc);
    data_close(r);
    rc = data_open(&r, p, 0, NULL);
    CHECK(rc == SRA_E_ARG, "no files: %d", rc);
    data_close(r);
    data_close(NULL);

    /* A file removed after data_open: an I/O error naming it, not a record. */
    const char *gone = WRITE("gone.jsonl", "{\"text\": \"a\"}\n");
    const char *q[2] = {p[0], gone};
    rc = data_open(&r, q, 2, NULL);
    CHECK(rc == 0, "open: %d", rc);
    unlink(gone);
    CHECK(data_next(r, &rec) == 1 && rec.text && !strcmp(rec.text, "a"), "first file still read");
    rc = data_next(r, &rec);
    CHECK(rc == SRA_E_IO && strstr(data_errmsg(r), "gone.jsonl"), "removed file: %d %s", rc, data_errmsg(r));
    CHECK(data_next(r, &rec) == rc, "the error sticks");
    data_close(r);
}

/* Removes the files this test wrote, then the folder. */
static void cleanup(void) {
    static const char *names[] = {"escapes.jsonl", "content.jsonl", "pr.jsonl", "bad.jsonl", "crlf.jsonl",
                                  "blank.jsonl", "empty.jsonl", "long.jsonl", "nl.txt", "ws.txt", "ws2.txt",
                                  "e.txt", "emoji.txt", "empty.txt", "exact.txt", "nls.txt", "rand.txt", "mb.txt",
                                  "bad.txt", "cont.txt", "m1.jsonl", "m2.txt", "m3.jsonl", "ok.jsonl", "gone.jsonl"};
    if (!g_dir[0]) return;
    char p[600];
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        snprintf(p, sizeof p, "%s/%s", g_dir, names[i]);
        unlink(p);
    }
    rmdir(g_dir);
}

int main(void) {
    RUN(jsonl_text_field_and_escapes);
    RUN(jsonl_prompt_response);
    RUN(jsonl_bad_records_numbered);
    RUN(jsonl_blank_lines_and_crlf);
    RUN(jsonl_long_line);
    RUN(txt_split_rules);
    RUN(txt_random_multibyte);
    RUN(txt_invalid_utf8);
    RUN(numbering_across_files);
    RUN(open_errors);
    cleanup();
    return check_summary();
}
