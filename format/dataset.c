/*
 * dataset.c - JSONL and plain-text readers with record numbers and
 * per-record errors (dataset.h is the contract; issue 6).
 */
#include "dataset.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "unicode.h"

struct data_reader {
    char **paths;
    int n;
    int cur;            /* index of the file being read (== n at the end) */
    FILE *f;            /* NULL between files */
    int is_txt;
    char *text_field, *prompt_field, *response_field;
    size_t max_bytes;
    int64_t next_index; /* record number of the next record */
    int64_t line;       /* JSONL: lines read; .txt: line of the next byte (1-based) */
    int64_t off;        /* bytes of the current file consumed */
    char *lbuf;         /* getline buffer */
    size_t lcap;
    char *kbuf;         /* decoded JSON keys, same capacity as text */
    char *text;         /* the record's text, NUL-terminated */
    size_t tcap;
    char *tbuf;         /* .txt: bytes read but not yet given out */
    size_t tlen, tbcap;
    int teof;
    int failed;         /* sticky: the error data_next keeps returning */
    sra_err err;
    char recerr[1536];  /* rec->error of the current record */
};

/* ============================================================= helpers */

static char *dup_str(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

static int is_ascii_space(unsigned char c) {
    return c == ' ' || c == '\t' || c == '\v' || c == '\f' || c == '\r';
}

/* Grows r->text and r->kbuf to hold at least n + 1 bytes. */
static int ensure_text(data_reader *r, size_t n) {
    if (n + 1 <= r->tcap) return 0;
    size_t cap = r->tcap ? r->tcap : 256;
    while (cap < n + 1) cap *= 2;
    char *t = realloc(r->text, cap);
    if (!t) return -1;
    r->text = t;
    char *k = realloc(r->kbuf, cap);
    if (!k) return -1;
    r->kbuf = k;
    r->tcap = cap;
    return 0;
}

/* Formats rec->error as "FILE:LINE: record N: what". */
static void rec_fail(data_reader *r, data_record *rec, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void rec_fail(data_reader *r, data_record *rec, const char *fmt, ...) {
    int k = snprintf(r->recerr, sizeof r->recerr, "%s:%lld: record %lld: ", r->paths[rec->file],
                     (long long)rec->line, (long long)rec->index);
    if (k < 0) k = 0;
    if ((size_t)k < sizeof r->recerr) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(r->recerr + k, sizeof r->recerr - (size_t)k, fmt, ap);
        va_end(ap);
    }
    rec->error = r->recerr;
    rec->text = NULL;
    rec->len = 0;
    rec->loss_start = 0;
}

/* Opens path for reading; a directory is refused here (fopen accepts it). */
static FILE *open_file(const char *path, sra_err *e) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        sra_err_set(e, SRA_E_IO, "cannot open dataset file %s: %s", path, strerror(errno));
        return NULL;
    }
    struct stat st;
    if (fstat(fileno(f), &st) == 0 && S_ISDIR(st.st_mode)) {
        fclose(f);
        sra_err_set(e, SRA_E_IO, "cannot read dataset file %s: it is a directory", path);
        return NULL;
    }
    return f;
}

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && !strcmp(s + n - m, suffix);
}

/* ========================================================= JSON scanner */
/* Runs over a line cJSON has already accepted, so the structure is known to
 * be valid; every step still stays within [p, end). */

static const char *skip_ws(const char *p, const char *end) {
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) p++;
    return p;
}

static int hex4(const char *p, const char *end, unsigned *v) {
    if (end - p < 4) return -1;
    unsigned x = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        x <<= 4;
        if (c >= '0' && c <= '9') x |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f') x |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F') x |= (unsigned)(c - 'A' + 10);
        else return -1;
    }
    *v = x;
    return 0;
}

/* Decodes the JSON string at *pp (on its opening quote) into out (when not
 * NULL; room for as many bytes as the literal has), leaving *pp after the
 * closing quote. Escaped U+0000 becomes a 0 byte. Returns the decoded length,
 * or -1 on a bad escape or a missing closing quote. */
static long json_string(const char **pp, const char *end, char *out) {
    const char *p = *pp + 1;
    size_t n = 0;
    while (p < end && *p != '"') {
        if (*p != '\\') {
            if (out) out[n] = *p;
            n++, p++;
            continue;
        }
        if (++p >= end) return -1;
        char c = *p++;
        char tmp[4];
        int k = 1;
        unsigned cp;
        switch (c) {
        case 'n': tmp[0] = '\n'; break;
        case 't': tmp[0] = '\t'; break;
        case 'r': tmp[0] = '\r'; break;
        case 'b': tmp[0] = '\b'; break;
        case 'f': tmp[0] = '\f'; break;
        case '"': case '\\': case '/': tmp[0] = c; break;
        case 'u':
            if (hex4(p, end, &cp)) return -1;
            p += 4;
            if (cp >= 0xd800 && cp < 0xdc00) { /* high surrogate: needs its low half */
                unsigned lo;
                if (end - p < 6 || p[0] != '\\' || p[1] != 'u' || hex4(p + 2, end, &lo) || lo < 0xdc00 ||
                    lo > 0xdfff)
                    return -1;
                p += 6;
                cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
            } else if (cp >= 0xdc00 && cp < 0xe000) {
                return -1; /* a lone low surrogate */
            }
            k = uni_encode((int32_t)cp, tmp);
            break;
        default: return -1;
        }
        if (out) memcpy(out + n, tmp, (size_t)k);
        n += (size_t)k;
    }
    if (p >= end) return -1;
    *pp = p + 1;
    return (long)n;
}

/* Skips one JSON value (any type) at p; returns the position after it. */
static const char *skip_value(const char *p, const char *end) {
    if (p >= end) return end;
    if (*p == '"') {
        const char *q = p;
        return json_string(&q, end, NULL) < 0 ? end : q;
    }
    if (*p == '{' || *p == '[') {
        int depth = 0;
        while (p < end) {
            if (*p == '"') {
                if (json_string(&p, end, NULL) < 0) return end;
                continue;
            }
            if (*p == '{' || *p == '[') depth++;
            else if (*p == '}' || *p == ']') {
                if (--depth == 0) return p + 1;
            }
            p++;
        }
        return end;
    }
    while (p < end && *p != ',' && *p != '}' && *p != ']' && *p != ' ' && *p != '\t' && *p != '\r' &&
           *p != '\n')
        p++;
    return p;
}

static const char *json_type_name(char c) {
    switch (c) {
    case '{': return "an object";
    case '[': return "an array";
    case 't': case 'f': return "a boolean";
    case 'n': return "null";
    default: return "a number";
    }
}

enum { FIELD_OK = 0, FIELD_MISSING = 1, FIELD_NOT_STRING = 2, FIELD_BAD = 3 };

/* Finds the first top-level key == key in the object line[0..len) and
 * decodes its string value into out (*n bytes). On FIELD_NOT_STRING, *what
 * names the value's type. kbuf has room for len bytes. */
static int json_field(const char *line, size_t len, const char *key, char *out, size_t *n, char *kbuf,
                      const char **what) {
    const char *p = line, *end = line + len;
    size_t klen = strlen(key);
    p = skip_ws(p, end);
    if (p >= end || *p != '{') return FIELD_BAD;
    p++;
    for (;;) {
        p = skip_ws(p, end);
        if (p >= end || *p != '"') return FIELD_MISSING; /* '}' or the end */
        long kn = json_string(&p, end, kbuf);
        if (kn < 0) return FIELD_BAD;
        p = skip_ws(p, end);
        if (p >= end || *p != ':') return FIELD_BAD;
        p = skip_ws(p + 1, end);
        if (p >= end) return FIELD_BAD;
        if ((size_t)kn == klen && !memcmp(kbuf, key, klen)) {
            if (*p != '"') {
                *what = json_type_name(*p);
                return FIELD_NOT_STRING;
            }
            long vn = json_string(&p, end, out);
            if (vn < 0) return FIELD_BAD;
            *n = (size_t)vn;
            return FIELD_OK;
        }
        p = skip_ws(skip_value(p, end), end);
        if (p >= end || *p != ',') return FIELD_MISSING;
        p++;
    }
}

/* ================================================================ JSONL */

/* Reports field's lookup failure on rec; returns 1 when it failed. */
static int field_failed(data_reader *r, data_record *rec, int st, const char *field, const char *what) {
    if (st == FIELD_OK) return 0;
    if (st == FIELD_MISSING) rec_fail(r, rec, "no field \"%s\"", field);
    else if (st == FIELD_NOT_STRING) rec_fail(r, rec, "field \"%s\" is %s, not a string", field, what);
    else rec_fail(r, rec, "field \"%s\": bad string escape", field);
    return 1;
}

/* Checks a decoded field for UTF-8; returns 1 (and reports) when invalid. */
static int utf8_failed(data_reader *r, data_record *rec, const char *s, size_t n, const char *field) {
    size_t bad = uni_validate(s, n);
    if (bad == n) return 0;
    rec_fail(r, rec, "field \"%s\" is not valid UTF-8 (byte %zu of its value)", field, bad);
    return 1;
}

/* Parses one non-blank line (line ending already stripped) into rec. */
static int jsonl_record(data_reader *r, data_record *rec, const char *line, size_t len) {
    if (ensure_text(r, len)) return sra_err_set(&r->err, SRA_E_NOMEM, "out of memory reading %s", r->paths[r->cur]);
    const char *z = memchr(line, 0, len);
    if (z) {
        rec_fail(r, rec, "invalid JSON: raw NUL byte at column %zu", (size_t)(z - line) + 1);
        return 0;
    }
    /* cJSON only validates (its strings stop at U+0000); the scanner above
     * then reads the fields. The parse end is returned per call, so no
     * global error state (cJSON_GetErrorPtr) is used. */
    const char *pend = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(line, len, &pend, 0);
    if (!root) {
        size_t col = pend && pend >= line && pend <= line + len ? (size_t)(pend - line) + 1 : 1;
        rec_fail(r, rec, "invalid JSON near column %zu", col);
        return 0;
    }
    int is_obj = cJSON_IsObject(root);
    cJSON_Delete(root);
    if (pend && skip_ws(pend, line + len) != line + len) {
        rec_fail(r, rec, "invalid JSON: text after the value at column %zu", (size_t)(pend - line) + 1);
        return 0;
    }
    if (!is_obj) {
        rec_fail(r, rec, "not a JSON object");
        return 0;
    }
    const char *what = "";
    size_t n = 0;
    if (r->prompt_field) {
        size_t pn = 0, rn = 0;
        int st = json_field(line, len, r->prompt_field, r->text, &pn, r->kbuf, &what);
        if (field_failed(r, rec, st, r->prompt_field, what)) return 0;
        /* prompt and response are distinct literals, so their decoded sum
         * fits in len bytes */
        st = json_field(line, len, r->response_field, r->text + pn, &rn, r->kbuf, &what);
        if (field_failed(r, rec, st, r->response_field, what)) return 0;
        if (utf8_failed(r, rec, r->text, pn, r->prompt_field)) return 0;
        if (utf8_failed(r, rec, r->text + pn, rn, r->response_field)) return 0;
        n = pn + rn;
        if (n == 0) {
            rec_fail(r, rec, "empty text (\"%s\" and \"%s\" are both empty)", r->prompt_field, r->response_field);
            return 0;
        }
        rec->loss_start = pn;
    } else {
        int st = json_field(line, len, r->text_field, r->text, &n, r->kbuf, &what);
        if (field_failed(r, rec, st, r->text_field, what)) return 0;
        if (utf8_failed(r, rec, r->text, n, r->text_field)) return 0;
        if (n == 0) {
            rec_fail(r, rec, "empty text (field \"%s\" is \"\")", r->text_field);
            return 0;
        }
        rec->loss_start = 0;
    }
    r->text[n] = 0;
    rec->text = r->text;
    rec->len = n;
    return 0;
}

/* The next record of the current JSONL file: 1, 0 at its end, < 0 error. */
static int jsonl_next(data_reader *r, data_record *rec) {
    for (;;) {
        errno = 0;
        ssize_t got = getline(&r->lbuf, &r->lcap, r->f);
        if (got < 0) {
            if (ferror(r->f))
                return sra_err_set(&r->err, SRA_E_IO, "read error in %s after line %lld: %s", r->paths[r->cur],
                                   (long long)r->line, strerror(errno ? errno : EIO));
            if (errno == ENOMEM) return sra_err_set(&r->err, SRA_E_NOMEM, "out of memory reading %s", r->paths[r->cur]);
            return 0;
        }
        int64_t start = r->off;
        r->off += got;
        r->line++;
        size_t len = (size_t)got;
        if (len && r->lbuf[len - 1] == '\n') len--;
        if (len && r->lbuf[len - 1] == '\r') len--; /* CRLF reads as LF */
        size_t i = 0;
        while (i < len && (r->lbuf[i] == ' ' || r->lbuf[i] == '\t' || r->lbuf[i] == '\r')) i++;
        if (i == len) continue; /* a blank line is not a record */
        memset(rec, 0, sizeof *rec);
        rec->index = r->next_index++;
        rec->file = r->cur;
        rec->line = r->line;
        rec->offset = start;
        int rc = jsonl_record(r, rec, r->lbuf, len);
        return rc < 0 ? rc : 1;
    }
}

/* ================================================================= text */

/* Where to cut buf[0..tlen) (tlen > max) so the first piece has at most max
 * bytes: after the last newline, else before the last ASCII space that is not
 * the first byte, else at the last UTF-8 character boundary. */
static size_t txt_cut(const unsigned char *b, size_t max) {
    for (size_t i = max; i-- > 0;)
        if (b[i] == '\n') return i + 1;
    /* b[max] exists: a space there is a cut at max, the space going on */
    for (size_t i = max; i >= 1; i--)
        if (is_ascii_space(b[i])) return i;
    size_t c = max;
    for (int k = 0; k < 3 && c > 0 && (b[c] & 0xC0) == 0x80; k++) c--;
    if (c == 0 || (b[c] & 0xC0) == 0x80) c = max; /* not UTF-8 here at all */
    return c;
}

/* The next document of the current .txt file: 1, 0 at its end, < 0 error. */
static int txt_next(data_reader *r, data_record *rec) {
    while (r->tlen <= r->max_bytes && !r->teof) {
        size_t got = fread(r->tbuf + r->tlen, 1, r->tbcap - r->tlen, r->f);
        r->tlen += got;
        if (got == 0) {
            if (ferror(r->f))
                return sra_err_set(&r->err, SRA_E_IO, "read error in %s at byte %lld: %s", r->paths[r->cur],
                                   (long long)(r->off + (int64_t)r->tlen), strerror(errno ? errno : EIO));
            r->teof = 1;
        }
    }
    if (r->tlen == 0) return 0;
    size_t c = r->tlen <= r->max_bytes ? r->tlen : txt_cut((const unsigned char *)r->tbuf, r->max_bytes);
    if (ensure_text(r, c)) return sra_err_set(&r->err, SRA_E_NOMEM, "out of memory reading %s", r->paths[r->cur]);
    memcpy(r->text, r->tbuf, c);
    r->text[c] = 0;
    memmove(r->tbuf, r->tbuf + c, r->tlen - c);
    r->tlen -= c;
    memset(rec, 0, sizeof *rec);
    rec->index = r->next_index++;
    rec->file = r->cur;
    rec->line = r->line;
    rec->offset = r->off;
    r->off += (int64_t)c;
    for (size_t i = 0; i < c; i++) r->line += r->text[i] == '\n';
    size_t bad = uni_validate(r->text, c);
    if (bad != c) {
        rec_fail(r, rec, "not valid UTF-8 (byte %zu of the document, byte %lld of the file)", bad,
                 (long long)(rec->offset + (int64_t)bad));
        return 1;
    }
    rec->text = r->text;
    rec->len = c;
    return 1;
}

/* ================================================================= API */

int data_open(data_reader **out, const char *const *paths, int n, const data_opts *o) {
    *out = NULL;
    data_reader *r = calloc(1, sizeof *r);
    if (!r) return SRA_E_NOMEM;
    *out = r;
    data_opts d = {0};
    if (!o) o = &d;
    if (n < 1 || !paths) {
        r->failed = sra_err_set(&r->err, SRA_E_ARG, "no dataset files given");
        return r->failed;
    }
    if ((o->prompt_field != NULL) != (o->response_field != NULL)) {
        r->failed = sra_err_set(&r->err, SRA_E_ARG, "the prompt field and the response field go together (%s given alone)",
                                o->prompt_field ? "prompt" : "response");
        return r->failed;
    }
    if (o->prompt_field && !strcmp(o->prompt_field, o->response_field)) {
        r->failed = sra_err_set(&r->err, SRA_E_ARG, "the prompt field and the response field are both \"%s\"",
                                o->prompt_field);
        return r->failed;
    }
    r->max_bytes = o->max_bytes ? o->max_bytes : DATA_TXT_MAX_BYTES;
    if (r->max_bytes < 4) {
        r->failed = sra_err_set(&r->err, SRA_E_ARG, "max_bytes %zu is below 4 (one UTF-8 character)", r->max_bytes);
        return r->failed;
    }
    r->paths = calloc((size_t)n, sizeof *r->paths);
    r->text_field = dup_str(o->text_field ? o->text_field : "text");
    if (o->prompt_field) {
        r->prompt_field = dup_str(o->prompt_field);
        r->response_field = dup_str(o->response_field);
    }
    if (!r->paths || !r->text_field || (o->prompt_field && (!r->prompt_field || !r->response_field))) {
        r->failed = sra_err_set(&r->err, SRA_E_NOMEM, "out of memory");
        return r->failed;
    }
    r->n = n;
    for (int i = 0; i < n; i++) {
        if (!paths[i]) {
            r->failed = sra_err_set(&r->err, SRA_E_ARG, "dataset path %d is NULL", i);
            return r->failed;
        }
        if (!(r->paths[i] = dup_str(paths[i]))) {
            r->failed = sra_err_set(&r->err, SRA_E_NOMEM, "out of memory");
            return r->failed;
        }
    }
    /* Name a missing or unreadable file now, before any record is read. */
    for (int i = 0; i < n; i++) {
        FILE *f = open_file(r->paths[i], &r->err);
        if (!f) {
            r->failed = r->err.code;
            return r->failed;
        }
        fclose(f);
    }
    return 0;
}

int data_next(data_reader *r, data_record *rec) {
    if (!r) return SRA_E_ARG;
    for (;;) {
        if (r->failed) return r->failed;
        if (!r->f) {
            if (r->cur >= r->n) return 0;
            r->f = open_file(r->paths[r->cur], &r->err);
            if (!r->f) return r->failed = r->err.code;
            r->is_txt = ends_with(r->paths[r->cur], ".txt");
            r->line = r->is_txt ? 1 : 0;
            r->off = 0;
            r->tlen = 0;
            r->teof = 0;
            if (r->is_txt && !r->tbuf) {
                r->tbcap = r->max_bytes + 1;
                if (!(r->tbuf = malloc(r->tbcap))) return r->failed = sra_err_set(&r->err, SRA_E_NOMEM, "out of memory");
            }
        }
        int rc = r->is_txt ? txt_next(r, rec) : jsonl_next(r, rec);
        if (rc < 0) return r->failed = rc;
        if (rc > 0) return 1;
        fclose(r->f);
        r->f = NULL;
        r->cur++;
    }
}

const char *data_errmsg(const data_reader *r) {
    if (!r) return "out of memory";
    return r->err.msg;
}

void data_close(data_reader *r) {
    if (!r) return;
    if (r->f) fclose(r->f);
    if (r->paths)
        for (int i = 0; i < r->n; i++) free(r->paths[i]);
    free(r->paths);
    free(r->text_field);
    free(r->prompt_field);
    free(r->response_field);
    free(r->lbuf);
    free(r->kbuf);
    free(r->text);
    free(r->tbuf);
    free(r);
}
