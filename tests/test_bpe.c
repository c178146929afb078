/*
 * test_bpe.c - the BPE model (tok_bpe.h).
 *
 * 1. Toy vocabularies with expected tokens derived by hand from the rules
 *    of HF tokenizers 0.22 (`BPE::merge_word`, `Word::merge_all`): merge
 *    order and ties, unk with and without fuse_unk, byte fallback (also
 *    with missing byte tokens), dropped characters, continuing prefix and
 *    end-of-word suffix, ignore_merges; load errors; the cap protocol; the
 *    word cache; added tokens.
 * 2. Reference encodings from the real HF tokenizers for the 8 shipped
 *    tokenizers and the toy models above, read from $SRA_BPE_REF (JSONL
 *    written by tests/gen_bpe_ref.js; derived data, never committed):
 *    every word must give HF's ids and byte offsets, cold and from the
 *    cache. Without the file the group is skipped (failed under CI=true).
 */
#include <cJSON.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "tok_bpe.h"
#include "util.h"

/* ============================================================ helpers */

static bpe_model *model_from(const char *json, char *err, size_t errlen) {
    cJSON *j = cJSON_Parse(json);
    if (!j) {
        snprintf(err, errlen, "test JSON does not parse");
        return NULL;
    }
    bpe_model *m = bpe_load(j, err, errlen);
    cJSON_Delete(j);
    return m;
}

/* Encodes w and renders the result as "id:start-end id:start-end ...", or
 * "ERROR" when the call fails. */
static const char *enc(bpe_session *s, const char *w) {
    static char out[4096];
    int32_t ids[256];
    uint32_t st[256], en[256];
    int n = bpe_encode_word(s, w, strlen(w), ids, st, en, 256);
    if (n < 0) return "ERROR";
    size_t k = 0;
    out[0] = 0;
    for (int i = 0; i < n && k < sizeof out - 40; i++)
        k += (size_t)snprintf(out + k, sizeof out - k, "%s%d:%u-%u", i ? " " : "", ids[i], st[i], en[i]);
    return out;
}

/* Words of more than 64 symbols take the heap path of the merge loop,
 * shorter ones a linear scan; both must give HF's order. w followed by 70
 * copies of a character `pad` that merges with nothing must give w's tokens
 * (ids and offsets) and then 70 tokens `pid` (pad's id inside a word). */
static void heap_agrees(bpe_session *s, const char *w, char pad, int32_t pid) {
    int32_t ids[512];
    uint32_t st[512], en[512];
    char buf[256];
    size_t n = strlen(w);
    int k = bpe_encode_word(s, w, n, ids, st, en, 512);
    if (k < 0 || n + 70 > sizeof buf) {
        CHECK(0, "\"%s\": setup", w);
        return;
    }
    memcpy(buf, w, n);
    memset(buf + n, pad, 70);
    int32_t ids2[512];
    uint32_t st2[512], en2[512];
    int k2 = bpe_encode_word(s, buf, n + 70, ids2, st2, en2, 512);
    int ok = k2 == k + 70;
    for (int i = 0; ok && i < k; i++) ok = ids[i] == ids2[i] && st[i] == st2[i] && en[i] == en2[i];
    for (int i = k; ok && i < k2; i++) ok = ids2[i] == pid;
    CHECK(ok, "\"%s\" + 70 x '%c': %d tokens, the heap path disagrees with the scan", w, pad, k2);
}

#define EXPECT(s, word, want)                                                             \
    do {                                                                                  \
        const char *got_ = enc(s, word);                                                  \
        CHECK(strcmp(got_, want) == 0, "\"%s\": got \"%s\", want \"%s\"", word, got_, want); \
    } while (0)

/* A toy model and a session on it; the test body uses m and s. */
#define WITH_TOY(json)                                                            \
    char err_[512];                                                               \
    bpe_model *m = model_from(json, err_, sizeof err_);                           \
    CHECK(m != NULL, "load: %s", err_);                                           \
    if (!m) return;                                                               \
    bpe_session *s = bpe_session_new(m);                                          \
    CHECK(s != NULL, "session")

#define END_TOY()            \
    bpe_session_free(s);     \
    bpe_free(m)

/* a=0 b=1 c=2 ab=3 bc=4 abc=5 aa=6 aaa=7 aaaa=8 */
#define ABC "{\"a\":0,\"b\":1,\"c\":2,\"ab\":3,\"bc\":4,\"abc\":5,\"aa\":6,\"aaa\":7,\"aaaa\":8"

/* ============================================================ toy tests */

/* Lowest rank first; among equal ranks the leftmost pair; a pair created
 * by a merge competes with the pairs already waiting. */
TEST(merge_order_and_ties) {
    WITH_TOY("{\"type\":\"BPE\",\"vocab\":" ABC "},"
             "\"merges\":[\"a a\",\"aa a\",\"a b\",\"b c\",\"ab c\",\"aa aa\"]}");
    EXPECT(s, "a", "0:0-1");
    EXPECT(s, "aaa", "7:0-3");     /* a a first at 0 -> aa a -> aaa */
    EXPECT(s, "aaaa", "8:0-4");    /* aa aa (rank 5) only once no rank 0/1 pair is left */
    EXPECT(s, "aaaaa", "6:0-2 7:2-5");        /* aa aa a -> aa aaa (rank 1 beats rank 5) */
    EXPECT(s, "aaaaaaa", "8:0-4 7:4-7");      /* aa aa aa a -> aa aa aaa -> aaaa aaa */
    EXPECT(s, "abcabc", "5:0-3 5:3-6");
    EXPECT(s, "aabc", "6:0-2 4:2-4"); /* a a (rank 0) takes the first a from a b */
    EXPECT(s, "ca", "2:0-1 0:1-2");   /* no merge applies */
    const char *ws[] = {"a", "aaa", "aaaa", "aaaaa", "aaaaaaa", "abcabc", "aabc", "aaaaaaaaaaaaabc"};
    for (size_t i = 0; i < sizeof ws / sizeof *ws; i++) heap_agrees(s, ws[i], 'c', 2);
    END_TOY();
}

TEST(merge_rank_not_position) {
    /* b c has the lowest rank, so "abc" never goes through "ab" */
    WITH_TOY("{\"type\":\"BPE\",\"vocab\":" ABC "},\"merges\":[\"b c\",\"a b\",\"a bc\"]}");
    EXPECT(s, "abc", "5:0-3");
    EXPECT(s, "abcab", "5:0-3 3:3-5");
    heap_agrees(s, "abcab", 'a', 0);
    END_TOY();
}

TEST(merges_duplicates_version_pairs) {
    {   /* "#version" takes no rank; a repeated pair keeps its last rank (2) */
        WITH_TOY("{\"vocab\":" ABC "},\"merges\":[\"#version: 0.2\",\"b c\",\"a b\",\"b c\"]}");
        EXPECT(s, "abc", "3:0-2 2:2-3");
        END_TOY();
    }
    {
        WITH_TOY("{\"vocab\":" ABC "},\"merges\":[[\"a\",\"b\"],[\"ab\",\"c\"]]}");
        EXPECT(s, "cab", "2:0-1 3:1-3");
        EXPECT(s, "abc", "5:0-3");
        END_TOY();
    }
}

TEST(unk_and_fuse_unk) {
    {
        WITH_TOY("{\"vocab\":" ABC ",\"<unk>\":9},\"merges\":[\"a b\"],\"unk_token\":\"<unk>\"}");
        EXPECT(s, "a\xe2\x98\x83\xe2\x98\x83" "b", "0:0-1 9:1-4 9:4-7 1:7-8");
        EXPECT(s, "xyab", "9:0-1 9:1-2 3:2-4");
        heap_agrees(s, "a\xe2\x98\x83\xe2\x98\x83" "b", 'c', 2);
        END_TOY();
    }
    {
        WITH_TOY("{\"vocab\":" ABC ",\"<unk>\":9},\"merges\":[\"a b\"],\"unk_token\":\"<unk>\","
                 "\"fuse_unk\":true}");
        EXPECT(s, "a\xe2\x98\x83\xe2\x98\x83" "b", "0:0-1 9:1-7 1:7-8");
        EXPECT(s, "x\xe2\x98\x83yab", "9:0-5 3:5-7");
        EXPECT(s, "xaxy", "9:0-1 0:1-2 9:2-4");
        heap_agrees(s, "x\xe2\x98\x83yab", 'c', 2);
        heap_agrees(s, "xaxy", 'c', 2);
        END_TOY();
    }
    {   /* an unk_token missing from the vocabulary fails only when needed */
        WITH_TOY("{\"vocab\":" ABC "},\"merges\":[],\"unk_token\":\"<unk>\"}");
        EXPECT(s, "ab", "0:0-1 1:1-2");
        EXPECT(s, "a\xe2\x98\x83", "ERROR");
        CHECK(strstr(bpe_session_error(s), "<unk>") != NULL, "%s", bpe_session_error(s));
        END_TOY();
    }
}

TEST(byte_fallback) {
    /* <0xA9> is missing, so "é" (C3 A9) cannot fall back and is unk; a
     * merge between two byte tokens applies like any other. */
    WITH_TOY("{\"vocab\":{\"<unk>\":0,\"a\":1,\"<0xE2>\":2,\"<0x98>\":3,\"<0x83>\":4,\"<0xC3>\":5,"
             "\"b\":6,\"ab\":7,\"<0xE2><0x98>\":8},\"merges\":[\"a b\",\"<0xE2> <0x98>\"],"
             "\"unk_token\":\"<unk>\",\"byte_fallback\":true,\"fuse_unk\":true}");
    CHECK(bpe_byte_fallback(m) == 1, "flag");
    /* every byte token of a character covers the whole character */
    EXPECT(s, "a\xe2\x98\x83" "a", "1:0-1 8:1-4 4:1-4 1:4-5");
    EXPECT(s, "\xe2\x98\x83\xe2\x98\x83", "8:0-3 4:0-3 8:3-6 4:3-6");
    /* HF adds the byte tokens of ☃ before the pending (fused) unk of é é:
     * symbols a E2 98 83 unk(4 bytes) a b; offsets accumulate lengths */
    EXPECT(s, "a\xc3\xa9\xc3\xa9\xe2\x98\x83" "ab", "1:0-1 8:1-3 4:3-5 0:3-8 7:8-10");
    EXPECT(s, "x\xc3\xa9", "0:0-3");
    heap_agrees(s, "a\xc3\xa9\xc3\xa9\xe2\x98\x83" "ab", 'a', 1);
    heap_agrees(s, "\xe2\x98\x83\xe2\x98\x83", 'a', 1);
    END_TOY();
}

/* No unk_token and no byte fallback: HF drops the character, and since it
 * computes offsets by adding up the lengths of the symbols it kept, what
 * follows reports shifted offsets (rounded to whole characters). */
TEST(unknown_char_dropped) {
    WITH_TOY("{\"vocab\":" ABC "},\"merges\":[\"a b\",\"ab c\"]}");
    EXPECT(s, "a\xe2\x98\x83" "bc", "5:0-4");
    EXPECT(s, "\xe2\x98\x83\xe2\x98\x83" "ab", "3:0-3");
    EXPECT(s, "\xe2\x98\x83", "");
    END_TOY();
}

TEST(prefix_and_suffix) {
    {
        WITH_TOY("{\"vocab\":{\"a\":0,\"##b\":1,\"##c\":2,\"ab\":3,\"abc\":4,\"b\":5,\"c\":6,\"##a\":7},"
                 "\"merges\":[\"a ##b\",\"ab ##c\"],\"continuing_subword_prefix\":\"##\"}");
        EXPECT(s, "abc", "4:0-3"); /* a ##b -> ab; ab ##c -> abc (prefix stripped from the right part) */
        EXPECT(s, "cab", "6:0-1 7:1-2 1:2-3");
        heap_agrees(s, "abc", 'a', 7); /* "##a" */
        heap_agrees(s, "cab", 'a', 7);
        END_TOY();
    }
    {
        WITH_TOY("{\"vocab\":{\"a\":0,\"b\":1,\"b</w>\":2,\"ab\":3,\"ab</w>\":4,\"a</w>\":5},"
                 "\"merges\":[\"a b</w>\",\"a b\"],\"end_of_word_suffix\":\"</w>\"}");
        EXPECT(s, "a", "5:0-1");
        EXPECT(s, "abab", "3:0-2 4:2-4");
        EXPECT(s, "ba", "1:0-1 5:1-2");
        END_TOY();
    }
    {   /* "" means unset, as HF's format!("{prefix}{s}") */
        WITH_TOY("{\"vocab\":" ABC "},\"merges\":[\"a b\"],\"continuing_subword_prefix\":\"\","
                 "\"end_of_word_suffix\":\"\"}");
        EXPECT(s, "abc", "3:0-2 2:2-3");
        END_TOY();
    }
}

TEST(ignore_merges) {
    {
        WITH_TOY("{\"vocab\":" ABC "},\"merges\":[\"a b\"],\"ignore_merges\":true}");
        EXPECT(s, "abc", "5:0-3"); /* in the vocabulary, although no merge leads there */
        EXPECT(s, "aabc", "0:0-1 3:1-3 2:3-4");
        END_TOY();
    }
    {   /* the word is looked up as is, without the suffix */
        WITH_TOY("{\"vocab\":{\"a\":0,\"b\":1,\"b</w>\":2,\"ab\":3,\"ab</w>\":4},\"merges\":[\"a b</w>\"],"
                 "\"ignore_merges\":true,\"end_of_word_suffix\":\"</w>\"}");
        EXPECT(s, "ab", "3:0-2");
        EXPECT(s, "aab", "0:0-1 4:1-3");
        END_TOY();
    }
}

TEST(long_word_and_cap) {
    WITH_TOY("{\"vocab\":" ABC "},\"merges\":[\"a a\",\"aa aa\"]}");
    size_t n = 20001;
    char *w = malloc(n + 1);
    memset(w, 'a', n);
    w[n] = 0;
    /* cap 0 asks for the size; nothing is written */
    int k = bpe_encode_word(s, w, n, NULL, NULL, NULL, 0);
    CHECK(k == 5001, "20001 a -> %d tokens, want 5000 aaaa + a", k);
    int32_t *ids = malloc(sizeof *ids * (size_t)k);
    uint32_t *st = malloc(4 * (size_t)k), *en = malloc(4 * (size_t)k);
    CHECK(bpe_encode_word(s, w, n, ids, st, en, (size_t)k) == k, "second call");
    int bad = 0;
    for (int i = 0; i < k - 1; i++) bad += ids[i] != 8 || st[i] != 4u * (unsigned)i || en[i] != 4u * (unsigned)i + 4;
    CHECK(bad == 0 && ids[k - 1] == 0 && st[k - 1] == 20000 && en[k - 1] == 20001, "%d bad tokens", bad);
    /* a short word through the cache: a miss, then a hit, both with cap 0 first */
    CHECK(bpe_encode_word(s, "aaaaa", 5, NULL, NULL, NULL, 0) == 2, "cap 0 miss");
    CHECK(bpe_encode_word(s, "aaaaa", 5, NULL, NULL, NULL, 0) == 2, "cap 0 hit");
    EXPECT(s, "aaaaa", "8:0-4 0:4-5");
    CHECK(bpe_encode_word(s, "", 0, ids, st, en, (size_t)k) == 0, "empty word");
    CHECK(bpe_encode_word(s, "a\xff", 2, ids, st, en, (size_t)k) == -1, "invalid UTF-8");
    CHECK(strstr(bpe_session_error(s), "byte 1") != NULL, "%s", bpe_session_error(s));
    free(w);
    free(ids);
    free(st);
    free(en);
    END_TOY();
}

/* Many distinct words overflow both parts of the word cache (short words
 * evict each other, longer ones clear their arena); answers stay right. */
TEST(cache_overflow) {
    WITH_TOY("{\"vocab\":" ABC "},\"merges\":[\"a b\",\"b c\",\"ab c\"]}");
    char w[64];
    int bad = 0;
    for (int round = 0; round < 2; round++)
        for (int i = 0; i < 200000; i++) {
            /* "abc" (short) or "abc" x 10 (long), then base-3 digits of i
             * spelt in a/b/c */
            int k = 0;
            for (int r = 0; r < (i % 3 ? 1 : 10); r++) k += snprintf(w + k, sizeof w - (size_t)k, "abc");
            int whole = k;
            for (int x = i; x; x /= 3) w[k++] = (char)('a' + x % 3);
            w[k] = 0;
            int32_t ids[64], ids2[64];
            uint32_t st[64], en[64], st2[64], en2[64];
            int n = bpe_encode_word(s, w, (size_t)k, ids, st, en, 64);
            bad += n < whole / 3 || en[n - 1] != (uint32_t)k;
            for (int t = 0; t < whole / 3 && n > 0; t++)
                bad += ids[t] != 5 || st[t] != 3u * (unsigned)t || en[t] != 3u * (unsigned)t + 3;
            /* again, now from the cache */
            bad += bpe_encode_word(s, w, (size_t)k, ids2, st2, en2, 64) != n;
            for (int t = 0; t < n; t++) bad += ids[t] != ids2[t] || st[t] != st2[t] || en[t] != en2[t];
        }
    CHECK(bad == 0, "%d words wrong", bad);
    END_TOY();
}

TEST(vocab_and_added_tokens) {
    WITH_TOY("{\"vocab\":{\"a\":0,\"b\":1,\"ab\":5},\"merges\":[\"a b\"]}");
    CHECK(bpe_vocab_size(m) == 6, "max id + 1 = %d", bpe_vocab_size(m));
    size_t n = 0;
    const char *t = bpe_id_to_token(m, 5, &n);
    CHECK(t && n == 2 && memcmp(t, "ab", 2) == 0, "id 5");
    CHECK(bpe_id_to_token(m, 3, &n) == NULL && bpe_id_to_token(m, 6, &n) == NULL &&
              bpe_id_to_token(m, -1, &n) == NULL, "unused ids");
    CHECK(bpe_token_to_id(m, "ab", 2) == 5 && bpe_token_to_id(m, "abc", 3) == -1, "lookup");
    CHECK(bpe_add_token(m, "ab", 2, 5) == 0, "confirming a vocabulary token");
    CHECK(bpe_add_token(m, "ab", 2, 7) == -1, "same token, other id");
    CHECK(bpe_add_token(m, "zz", 2, 1) == -1, "id taken");
    CHECK(bpe_add_token(m, "c", 1, 3) == 0 && bpe_add_token(m, "<s>", 3, 100) == 0, "new ones");
    for (int i = 0; i < 200; i++) { /* grows the table past its first size */
        char name[16];
        int k = snprintf(name, sizeof name, "<x%d>", i);
        CHECK(bpe_add_token(m, name, (size_t)k, 200 + i) == 0, "add %s", name);
    }
    CHECK(bpe_vocab_size(m) == 400, "vocab size %d", bpe_vocab_size(m));
    CHECK(bpe_token_to_id(m, "<s>", 3) == 100 && bpe_token_to_id(m, "<x199>", 6) == 399 &&
              bpe_token_to_id(m, "ab", 2) == 5, "lookups after growth");
    t = bpe_id_to_token(m, 100, &n);
    CHECK(t && n == 3 && memcmp(t, "<s>", 3) == 0, "added id");
    /* HF's model never sees added tokens: "c" is still unknown (dropped) */
    bpe_session_free(s);
    s = bpe_session_new(m);
    EXPECT(s, "abc", "5:0-2");
    END_TOY();
}

static void load_fails(const char *json, const char *needle) {
    char err[512] = "";
    bpe_model *m = model_from(json, err, sizeof err);
    CHECK(m == NULL, "loaded: %s", json);
    CHECK(strstr(err, needle) != NULL, "error \"%s\" should name \"%s\"", err, needle);
    bpe_free(m);
}

TEST(load_errors) {
    load_fails("{\"merges\":[]}", "\"vocab\": missing");
    load_fails("{\"vocab\":[],\"merges\":[]}", "\"vocab\": expected an object");
    load_fails("{\"vocab\":{\"a\":0}}", "\"merges\": missing");
    load_fails("{\"vocab\":{\"a\":1.5},\"merges\":[]}", "vocab[\"a\"]");
    load_fails("{\"vocab\":{\"a\":\"0\"},\"merges\":[]}", "vocab[\"a\"]");
    load_fails("{\"vocab\":{\"a\":-1},\"merges\":[]}", "vocab[\"a\"]");
    load_fails("{\"vocab\":{\"a\":0,\"b\":0},\"merges\":[]}", "vocab[\"b\"]: id 0");
    load_fails("{\"vocab\":{\"a\":0,\"a\":1},\"merges\":[]}", "listed twice");
    load_fails("{\"vocab\":{\"a\":0,\"b\":1},\"merges\":[\"a x\"]}", "merges[0] (\"a\" \"x\"): \"x\"");
    load_fails("{\"vocab\":{\"a\":0,\"b\":1},\"merges\":[\"b a\",\"a b\"]}", "merges[0]");
    load_fails("{\"vocab\":{\"a\":0,\"b\":1,\"ab\":2},\"merges\":[\"a b\",\"b a\"]}",
               "merges[1] (\"b\" \"a\"): the merged token \"ba\"");
    load_fails("{\"vocab\":{\"a\":0,\"b\":1,\"ab\":2},\"merges\":[\"a b c\"]}", "merges[0] = \"a b c\"");
    load_fails("{\"vocab\":{\"a\":0,\"b\":1,\"ab\":2},\"merges\":[\"ab\"]}", "merges[0] = \"ab\"");
    load_fails("{\"vocab\":{\"a\":0,\"b\":1,\"ab\":2},\"merges\":[[\"a\",\"b\"],\"a b\"]}", "merges[1]");
    load_fails("{\"vocab\":{\"a\":0,\"b\":1,\"ab\":2},\"merges\":[\"a b\",[\"a\",\"b\"]]}", "merges[1]");
    load_fails("{\"vocab\":{\"a\":0,\"b\":1,\"ab\":2},\"merges\":[[\"a\"]]}", "merges[0]");
    load_fails("{\"vocab\":{\"a\":0,\"b\":1,\"ab\":2},\"merges\":[[\"a\",\"b\",\"c\"]]}", "merges[0]");
    load_fails("{\"vocab\":{\"a\":0},\"merges\":[],\"fuse_unk\":1}", "\"fuse_unk\"");
    load_fails("{\"vocab\":{\"a\":0},\"merges\":[],\"unk_token\":5}", "\"unk_token\"");
    load_fails("{\"vocab\":{\"a\":0},\"merges\":[],\"dropout\":0.1}", "dropout");
    load_fails("{\"type\":\"WordPiece\",\"vocab\":{\"a\":0},\"merges\":[]}", "\"type\"");
    load_fails("{\"vocab\":{\"a\":0,\"b\":1,\"ab\":2},\"merges\":[\"a b\"],"
               "\"continuing_subword_prefix\":\"###\"}", "continuing_subword_prefix");
    char err[128];
    CHECK(bpe_load(NULL, err, sizeof err) == NULL, "NULL model");
    /* dropout 0 and null are no dropout */
    bpe_model *m = model_from("{\"vocab\":{\"a\":0},\"merges\":[],\"dropout\":0}", err, sizeof err);
    CHECK(m != NULL, "dropout 0: %s", err);
    bpe_free(m);
    bpe_free(NULL);
    bpe_session_free(NULL);
}

/* ============================================================ reference */

static char *read_file(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *buf = NULL;
    if (fseek(f, 0, SEEK_END) == 0) {
        long len = ftell(f);
        if (len >= 0 && fseek(f, 0, SEEK_SET) == 0 && (buf = malloc((size_t)len + 1))) {
            if (fread(buf, 1, (size_t)len, f) != (size_t)len) { free(buf); buf = NULL; }
            else { buf[len] = 0; *n = (size_t)len; }
        }
    }
    fclose(f);
    return buf;
}

static int hexval(char c) {
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

typedef struct {
    char name[64];
    bpe_model *m;
    bpe_session *s;
    int load_error; /* HF refused the model */
    int loaded;     /* we did */
    cJSON **recs;
    size_t n, cap;
    double load_s;
    char err[512];
} group;

static group g; /* the group being checked */

/* Checks one word record; pass = 0 cold, 1 from the cache. Returns 1 if
 * it matches. */
static int check_word(const cJSON *r, int pass, char *word, int32_t *ids, uint32_t *st, uint32_t *en,
                      size_t cap) {
    const char *hex = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(r, "hex"));
    const cJSON *want = cJSON_GetObjectItemCaseSensitive(r, "ids");
    const cJSON *offs = cJSON_GetObjectItemCaseSensitive(r, "offsets");
    size_t n = 0;
    for (; hex && hex[2 * n]; n++) word[n] = (char)(hexval(hex[2 * n]) << 4 | hexval(hex[2 * n + 1]));
    int k = bpe_encode_word(g.s, word, n, ids, st, en, cap);
    const char *shown = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(r, "word"));
    if (!want) { /* HF failed on this word */
        if (k >= 0) printf("  %s: \"%.80s\": HF fails, we gave %d tokens\n", g.name, shown, k);
        return k < 0;
    }
    int ok = k == cJSON_GetArraySize(want) && k == cJSON_GetArraySize(offs);
    const cJSON *x = want ? want->child : NULL, *o = offs ? offs->child : NULL;
    for (int i = 0; ok && i < k; i++, x = x->next, o = o->next)
        ok = ids[i] == (int32_t)x->valuedouble && st[i] == (uint32_t)o->child->valuedouble &&
             en[i] == (uint32_t)o->child->next->valuedouble;
    if (!ok) {
        char *hf = cJSON_PrintUnformatted(want), *ho = cJSON_PrintUnformatted(offs);
        printf("  %s%s: \"%.80s\": %d tokens", g.name, pass ? " (cached)" : "", shown, k);
        if (k < 0) printf(" (%s)", bpe_session_error(g.s));
        for (int i = 0; i < k && i < 12; i++) printf(" %d:%u-%u", ids[i], st[i], en[i]);
        printf("\n    HF %.300s %.300s\n", hf, ho);
        free(hf);
        free(ho);
    }
    return ok;
}

static void check_group(void) {
    if (g.load_error) {
        CHECK(!g.loaded, "%s: HF refuses this model, we loaded it", g.name);
        return;
    }
    CHECK(g.loaded, "%s: load: %s", g.name, g.err);
    if (!g.loaded) return;
    size_t maxw = 0;
    for (size_t i = 0; i < g.n; i++) {
        const char *hex = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(g.recs[i], "hex"));
        if (hex && strlen(hex) / 2 > maxw) maxw = strlen(hex) / 2;
    }
    size_t cap = 4 * maxw + 16;
    char *word = malloc(maxw + 1);
    int32_t *ids = malloc(cap * sizeof *ids);
    uint32_t *st = malloc(cap * sizeof *st), *en = malloc(cap * sizeof *en);
    size_t match[2] = {0, 0};
    for (int pass = 0; pass < 2; pass++)
        for (size_t i = 0; i < g.n; i++) match[pass] += (size_t)check_word(g.recs[i], pass, word, ids, st, en, cap);
    CHECK(match[0] == g.n && match[1] == g.n, "%s: %zu/%zu words match HF cold, %zu from the cache",
          g.name, match[0], g.n, match[1]);
    if (g.name[0] != 't' || strncmp(g.name, "toy:", 4))
        printf("# %s: %zu/%zu words match HF; bpe_load %.3f s, %.1f MiB\n", g.name, match[0], g.n,
               g.load_s, (double)bpe_memory(g.m) / (1 << 20));
    free(word);
    free(ids);
    free(st);
    free(en);
}

static void group_open(const cJSON *head, const char *shared) {
    memset(&g, 0, sizeof g);
    snprintf(g.name, sizeof g.name, "%s", cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(head, "tokenizer")));
    const char *rel = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(head, "path"));
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(head, "model");
    cJSON *root = NULL;
    if (rel) {
        char path[4096];
        size_t n = 0;
        snprintf(path, sizeof path, "%s/%s", shared, rel);
        char *json = read_file(path, &n);
        if (!json) { snprintf(g.err, sizeof g.err, "cannot read %.400s", path); return; }
        root = cJSON_ParseWithLength(json, n);
        free(json);
        model = cJSON_GetObjectItemCaseSensitive(root, "model");
    }
    double t0 = sra_now();
    g.m = bpe_load(model, g.err, sizeof g.err);
    g.load_s = sra_now() - t0;
    cJSON_Delete(root);
    g.loaded = g.m != NULL;
    if (g.m) g.s = bpe_session_new(g.m);
}

static void group_close(void) {
    for (size_t i = 0; i < g.n; i++) cJSON_Delete(g.recs[i]);
    free(g.recs);
    bpe_session_free(g.s);
    bpe_free(g.m);
}

static void reference(void) {
    const char *ref = getenv("SRA_BPE_REF"), *ci = getenv("CI");
    const char *shared = getenv("SRA_SHARED") ? getenv("SRA_SHARED") : "../shared";
    FILE *f = ref ? fopen(ref, "r") : NULL;
    if (!f) {
        const char *why = "SRA_BPE_REF is not set or unreadable; generate it with "
                          "NODE_PATH=.../node_modules node tests/gen_bpe_ref.js SHARED OUT.jsonl";
        if (ci && strcmp(ci, "true") == 0) {
            printf("not ok - bpe_reference: %s\n", why);
            check_tests_failed_++;
        } else {
            check_skip_("bpe_reference", why);
        }
        return;
    }
    char *line = NULL;
    size_t lcap = 0;
    ssize_t len;
    int open = 0;
    for (;;) {
        len = getline(&line, &lcap, f);
        cJSON *r = len > 0 ? cJSON_ParseWithLength(line, (size_t)len) : NULL;
        if (len > 0 && !r) {
            printf("not ok - bpe_reference: %s: a line does not parse\n", ref);
            check_tests_failed_++;
            break;
        }
        if (open && (!r || cJSON_GetObjectItemCaseSensitive(r, "tokenizer"))) {
            char name[80];
            snprintf(name, sizeof name, "bpe_reference %s", g.name);
            check_run_(name, check_group);
            group_close();
            open = 0;
        }
        if (!r) break;
        if (cJSON_GetObjectItemCaseSensitive(r, "tokenizer")) {
            group_open(r, shared);
            open = 1;
            cJSON_Delete(r);
        } else if (open && cJSON_GetObjectItemCaseSensitive(r, "load_error")) {
            g.load_error = 1;
            cJSON_Delete(r);
        } else if (open) {
            if (g.n == g.cap) {
                g.cap = g.cap ? 2 * g.cap : 1024;
                g.recs = realloc(g.recs, g.cap * sizeof *g.recs);
            }
            g.recs[g.n++] = r;
        } else {
            cJSON_Delete(r);
        }
    }
    free(line);
    fclose(f);
}

int main(void) {
    RUN(merge_order_and_ties);
    RUN(merge_rank_not_position);
    RUN(merges_duplicates_version_pairs);
    RUN(unk_and_fuse_unk);
    RUN(byte_fallback);
    RUN(unknown_char_dropped);
    RUN(prefix_and_suffix);
    RUN(ignore_merges);
    RUN(long_word_and_cap);
    RUN(cache_overflow);
    RUN(vocab_and_added_tokens);
    RUN(load_errors);
    reference();
    return check_summary();
}
