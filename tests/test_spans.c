/*
 * test_spans.c - format/spans.h: hand-made cases (overlapping offsets, BOS,
 * whitespace-only tokens, the composition law, the short-buffer protocol)
 * and the oracle ../shared/tools/sra_ref.py on real tokenizations
 * (tests/spans_ref.py runs build/sra-tokenize and the oracle).
 */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "spans.h"
#include "util.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

static int eq_u32(const uint32_t *a, int64_t na, const uint32_t *b, size_t nb) {
    if (na < 0 || (size_t)na != nb) return 0;
    return nb == 0 || !memcmp(a, b, nb * sizeof *a);
}

/* ------------------------------------------------------------ by hand */

TEST(canon_map) {
    /* runs [1,3) "  " and [4,5) "\t"; [6,8) NBSP, end 8 touches it */
    const char *t = "a  b\tc\xc2\xa0";
    uint32_t c[9], want[9] = {0, 1, 1, 1, 4, 4, 6, 6, 6};
    span_canon_map(t, 8, c);
    CHECK(!memcmp(c, want, sizeof want), "canon %u %u %u %u %u %u %u %u %u", c[0], c[1], c[2],
          c[3], c[4], c[5], c[6], c[7], c[8]);
    uint32_t e[1] = {7};
    span_canon_map("", 0, e);
    CHECK(e[0] == 0, "empty text: canon[0] = %u", e[0]);
    uint32_t l[4];
    span_canon_map("  x", 3, l); /* leading run [0,2) */
    CHECK(l[0] == 0 && l[1] == 0 && l[2] == 0 && l[3] == 3, "leading %u %u %u %u", l[0], l[1],
          l[2], l[3]);
    /* a lone continuation byte and a truncated NBSP are not space */
    uint32_t b[4];
    span_canon_map("\xa0x\xc2", 3, b);
    CHECK(b[0] == 0 && b[1] == 1 && b[2] == 2 && b[3] == 3, "invalid %u %u %u %u", b[0], b[1],
          b[2], b[3]);
    CHECK(span_is_space(0x3000) && span_is_space(0x85) && !span_is_space(0x1c) &&
              !span_is_space(0x200b),
          "White_Space");
}

/* TinyStories' "Once upon a time" with BOS (prompts.tokenized.jsonl):
 * "▁" [0,1) overlaps "On" [0,2) (method.md §1). */
static const char ONCE[] = "Once upon a time";
static const uint32_t ONCE_S[] = {0, 0, 0, 2, 5, 15}, ONCE_E[] = {0, 1, 2, 5, 15, 16};

TEST(boundaries_overlap_bos) {
    size_t n = strlen(ONCE);
    uint32_t canon[32], b[32];
    span_canon_map(ONCE, n, canon);
    /* 1 lies inside [0,2); 5 is canonical 4 (run [4,5)); BOS adds nothing */
    const uint32_t want[] = {0, 2, 4, 15, 16};
    int64_t k = span_boundaries(canon, n, ONCE_S, ONCE_E, 6, b, 32);
    CHECK(eq_u32(b, k, want, 5), "k = %lld", (long long)k);
    /* short buffer: returns the size needed, writes only cap entries */
    uint32_t small[2] = {99, 99};
    CHECK(span_boundaries(canon, n, ONCE_S, ONCE_E, 6, NULL, 0) == 5, "query");
    CHECK(span_boundaries(canon, n, ONCE_S, ONCE_E, 6, small, 2) == 5 && small[0] == 0 &&
              small[1] == 2,
          "partial fill");
    /* byte-fallback pieces of one character share its range */
    const uint32_t fs[] = {0, 0, 0, 3}, fe[] = {3, 3, 3, 4};
    const uint32_t fw[] = {0, 3, 4};
    uint32_t fc[5];
    span_canon_map("\xe4\xbd\xa0x", 4, fc);
    k = span_boundaries(fc, 4, fs, fe, 4, b, 32);
    CHECK(eq_u32(b, k, fw, 3), "fallback k = %lld", (long long)k);
    const uint32_t bad_e[] = {0, 1, 2, 5, 15, 17};
    CHECK(span_boundaries(canon, n, ONCE_S, bad_e, 6, b, 32) == SRA_E_ARG, "end past text");
}

TEST(words_and_intersect) {
    size_t n = strlen(ONCE);
    uint32_t canon[32], ws[32], we[32], w[32];
    span_canon_map(ONCE, n, canon);
    CHECK(span_words(ONCE, n, ws, we, 32) == 4 && ws[1] == 4 && we[1] == 9 && we[3] == 16,
          "words");
    const uint32_t want[] = {0, 4, 9, 11, 16};
    int64_t k = span_word_boundaries(ONCE, n, canon, w, 32);
    CHECK(eq_u32(w, k, want, 5), "word boundaries k = %lld", (long long)k);
    /* "it's  42" -> "it" "'s" " " " 42": the space run canonicalizes to 4 */
    uint32_t c2[9], w2[9];
    span_canon_map("it's  42", 8, c2);
    const uint32_t want2[] = {0, 2, 4, 8};
    k = span_word_boundaries("it's  42", 8, c2, w2, 9);
    CHECK(eq_u32(w2, k, want2, 4), "contraction k = %lld", (long long)k);
    CHECK(span_words("\xff", 1, ws, we, 32) == SRA_E_ARG, "invalid UTF-8");
    const uint32_t a[] = {0, 2, 4, 15, 16};
    uint32_t out[5], inplace[5];
    memcpy(inplace, a, sizeof a);
    const uint32_t both[] = {0, 4, 16};
    CHECK(eq_u32(out, (int64_t)span_intersect(a, 5, want, 5, out), both, 3), "intersect");
    CHECK(eq_u32(inplace, (int64_t)span_intersect(inplace, 5, want, 5, inplace), both, 3),
          "intersect in place");
}

TEST(atoms_word_token_student) {
    size_t n = strlen(ONCE);
    uint32_t canon[32];
    span_canon_map(ONCE, n, canon);
    span_atom at[8];
    int32_t ta[6];
    /* word: cuts {0,2,4,15,16} ∩ {0,4,9,11,16} = {0,4,16} */
    int64_t A = span_atoms(ONCE, n, canon, SPAN_ATOMS_WORD, ONCE_S, ONCE_E, 6, NULL, NULL, 0, at,
                           8, ta);
    CHECK(A == 2, "A = %lld", (long long)A);
    if (A == 2) {
        CHECK(at[0].start == 0 && at[0].end == 4 && at[0].first == 1 && at[0].last == 3, "atom 0");
        CHECK(at[1].start == 4 && at[1].end == 16 && at[1].first == 4 && at[1].last == 5, "atom 1");
    }
    CHECK(ta[0] == -1 && ta[1] == 0 && ta[2] == 0 && ta[3] == 0 && ta[4] == 1 && ta[5] == 1,
          "tok_atom %d %d %d %d %d %d", ta[0], ta[1], ta[2], ta[3], ta[4], ta[5]);
    /* token: [0,2) holds both "▁" and "On" (overlapping) */
    A = span_atoms(ONCE, n, canon, SPAN_ATOMS_TOKEN, ONCE_S, ONCE_E, 6, NULL, NULL, 0, at, 8, ta);
    CHECK(A == 4 && at[0].first == 1 && at[0].last == 2 && at[3].first == 5, "token A = %lld",
          (long long)A);
    CHECK(span_atoms(ONCE, n, canon, SPAN_ATOMS_TOKEN, ONCE_S, ONCE_E, 6, NULL, NULL, 0, NULL, 0,
                     NULL) == 4,
          "query");
    /* student (GPT-2: "Once" " upon" " a" " time"): B_S = {0,4,9,11,16} */
    const uint32_t ss[] = {0, 4, 9, 11}, se[] = {4, 9, 11, 16};
    A = span_atoms(ONCE, n, canon, SPAN_ATOMS_STUDENT, ONCE_S, ONCE_E, 6, ss, se, 4, at, 8, ta);
    CHECK(A == 2, "student A = %lld", (long long)A);
    CHECK(span_atoms(ONCE, n, canon, SPAN_ATOMS_STUDENT, ONCE_S, ONCE_E, 6, NULL, NULL, 0, at, 8,
                     ta) == SRA_E_ARG,
          "student mode without a student");
    CHECK(span_atoms_mode_parse("word") == SPAN_ATOMS_WORD &&
              span_atoms_mode_parse("student") == SPAN_ATOMS_STUDENT &&
              span_atoms_mode_parse("words") == -1 &&
              !strcmp(span_atoms_mode_name(SPAN_ATOMS_TOKEN), "token"),
          "mode names");

    /* spans for GPT-2 over the word atoms: cuts {0,4,16} -> [0,4) [4,16) */
    A = span_atoms(ONCE, n, canon, SPAN_ATOMS_WORD, ONCE_S, ONCE_E, 6, NULL, NULL, 0, at, 8, ta);
    span_group g[4];
    int32_t ts[4];
    int64_t G = span_spans(canon, n, at, (size_t)A, ss, se, 4, g, 4, ts);
    CHECK(G == 2, "G = %lld", (long long)G);
    if (G == 2) {
        CHECK(g[0].atom_first == 0 && g[0].atom_last == 0 && g[0].tok_first == 0 &&
                  g[0].tok_last == 0,
              "span 0");
        CHECK(g[1].start == 4 && g[1].end == 16 && g[1].atom_first == 1 && g[1].tok_first == 1 &&
                  g[1].tok_last == 3,
              "span 1");
    }
    CHECK(ts[0] == 0 && ts[1] == 1 && ts[3] == 1, "tok_span");
}

TEST(whitespace_only_tokens) {
    /* "a  b": token [1,3) is whitespace only (canonical [1,1)) and belongs
     * to no atom; [3,4) "b" is canonical [1,4). A student splitting ".\n"
     * style puts such a token inside an atom: tok_atom says which. */
    const char *t = "a  b";
    uint32_t canon[5];
    span_canon_map(t, 4, canon);
    const uint32_t s[] = {0, 1, 3}, e[] = {1, 3, 4};
    span_atom at[3];
    int32_t ta[3];
    int64_t A = span_atoms(t, 4, canon, SPAN_ATOMS_TOKEN, s, e, 3, NULL, NULL, 0, at, 3, ta);
    CHECK(A == 2 && ta[0] == 0 && ta[1] == -1 && ta[2] == 1, "A = %lld ta %d %d %d", (long long)A,
          ta[0], ta[1], ta[2]);
    /* one cut interval [0,4) holding a, ws, b: the ws token sits between
     * first and last but is not the atom's */
    const uint32_t cuts[] = {0, 4};
    A = span_atoms_from_cuts(canon, 4, cuts, 2, s, e, 3, at, 3, ta);
    CHECK(A == 1 && at[0].first == 0 && at[0].last == 2 && ta[1] == -1, "from cuts");
    float hidden[3 * 2] = {1, 2, 100, 100, 3, 4}, mass[3] = {1, 1, 1}, com[2], M[1];
    CHECK(span_com(at, 1, ta, 3, 2, hidden, mass, com, M) == 0, "com");
    CHECK(M[0] == 2 && com[0] == 2 && com[1] == 3, "ws token excluded: M %g com %g %g", M[0],
          com[0], com[1]);
}

static uint64_t lcg_next(uint64_t *x) {
    *x = *x * 6364136223846793005ULL + 1442695040888963407ULL;
    return *x >> 40;
}

/* The hidden states and masses tests/spans_ref.py draws (its draw()). */
static void draw(uint64_t seed, size_t T, size_t C, float *hidden, float *mass) {
    uint64_t x = (seed + 1) * 0x9E3779B97F4A7C15ULL;
    for (size_t i = 0; i < T * C; i++) hidden[i] = (float)(lcg_next(&x) / 16777216.0 * 2.0 - 1.0);
    for (size_t i = 0; i < T; i++) {
        uint64_t r = lcg_next(&x);
        mass[i] = r % 5 == 0 ? 0.0f : r % 5 == 1 ? (float)(r / 281474976710656.0)
                                                 : (float)(r / 16777216.0);
    }
}

TEST(composition_law) {
    /* merging atoms {1,2} and {3} (with the mass floor on token 3's zero
     * mass) equals the CoM taken directly over tokens 1..3 */
    enum { T = 5, C = 6 };
    float hidden[T * C], mass[T];
    draw(12345, T, C, hidden, mass);
    mass[3] = 0;
    mass[4] = 1e-9f;
    span_atom at[3] = {{0, 2, 1, 2}, {2, 3, 3, 3}, {3, 4, 4, 4}};
    int32_t ta[T] = {-1, 0, 0, 1, 2};
    float com[3 * C], M[3];
    CHECK(span_com(at, 3, ta, T, C, hidden, mass, com, M) == 0, "com");
    CHECK(fabs(M[1] - 1e-6) < 1e-12 && fabs(M[2] - 1e-6) < 1e-12, "floor M %g %g", M[1], M[2]);
    span_group g[2] = {{0, 3, 0, 1, 0, 0}, {0, 4, 0, 2, 0, 0}};
    float mc[2 * C], mM[2];
    CHECK(span_merge(g, 2, 3, C, com, M, mc, mM) == 0, "merge");
    span_atom one[2] = {{0, 3, 1, 3}, {0, 4, 1, 4}};
    int32_t ta1[T] = {-1, 0, 0, 0, 1}, ta2[T] = {-1, 0, 0, 0, 0};
    float dc[C], dM[1], dc2[C], dM2[1];
    span_com(one, 1, ta1, T, C, hidden, mass, dc, dM);
    span_com(one + 1, 1, ta2, T, C, hidden, mass, dc2, dM2);
    double md = fabs(mM[0] - dM[0]) + fabs(mM[1] - dM2[0]);
    for (int c = 0; c < C; c++) {
        md = fmax(md, fabs(mc[c] - dc[c]));
        md = fmax(md, fabs(mc[C + c] - dc2[c]));
    }
    printf("  composition law: max |merged - direct| = %.3g\n", md);
    CHECK(md < 1e-6, "merged != direct: %g", md);
    span_group bad = {0, 4, 1, 3, 0, 0};
    CHECK(span_merge(&bad, 1, 3, C, com, M, mc, mM) == SRA_E_ARG, "atom out of range");
    int32_t ta_bad[T] = {-1, 1, 1, 1, 2};
    CHECK(span_com(at, 3, ta_bad, T, C, hidden, mass, com, M) == SRA_E_ARG, "atom without token");
}

/* ------------------------------------------------------------ the oracle */

/* JSON array of numbers -> out (uint32); returns the count or -1. */
static int64_t json_u32(const cJSON *a, uint32_t *out, size_t cap) {
    if (!cJSON_IsArray(a)) return -1;
    int64_t k = 0;
    const cJSON *v;
    cJSON_ArrayForEach(v, a) {
        if ((size_t)k < cap) out[k] = (uint32_t)v->valuedouble;
        k++;
    }
    return k;
}

/* [[s, e], ...] -> start, end; returns the count. */
static size_t json_offsets(const cJSON *a, uint32_t **s, uint32_t **e) {
    size_t n = (size_t)cJSON_GetArraySize(a);
    *s = malloc((n + 1) * sizeof **s);
    *e = malloc((n + 1) * sizeof **e);
    size_t i = 0;
    const cJSON *v;
    cJSON_ArrayForEach(v, a) {
        (*s)[i] = (uint32_t)cJSON_GetArrayItem(v, 0)->valuedouble;
        (*e)[i] = (uint32_t)cJSON_GetArrayItem(v, 1)->valuedouble;
        i++;
    }
    return n;
}

static int hexval(char c) { return c <= '9' ? c - '0' : c - 'a' + 10; }

static int json_list_is(const cJSON *a, const int32_t *map, size_t n, int32_t k) {
    /* the sorted indices i with map[i] == k equal the list a */
    const cJSON *v = a ? a->child : NULL;
    for (size_t i = 0; i < n; i++) {
        if (map[i] != k) continue;
        if (!v || (size_t)v->valuedouble != i) return 0;
        v = v->next;
    }
    return v == NULL;
}

static int py_has_modules(const char *py) {
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "%s -c 'import regex, numpy' >/dev/null 2>&1", py);
    return system(cmd) == 0;
}

static int report_; /* mismatch messages printed so far */
#define MISMATCH(cond, ...)                                          \
    do {                                                             \
        if (!(cond)) {                                               \
            bad++;                                                   \
            if (report_++ < 20) CHECK(cond, __VA_ARGS__);            \
            else check_fails_++;                                     \
        }                                                            \
    } while (0)

TEST(oracle) {
    const char *shared = check_shared();
    const char *build = getenv("SRA_BUILD") ? getenv("SRA_BUILD") : "build";
    const char *py = getenv("SRA_PY") ? getenv("SRA_PY") : "/usr/bin/python3";
    const char *assets[] = {"tools/sra_ref.py", "reference/texts.jsonl",
                            "models/tinystories-656k/tokenizer.json",
                            "models/tinystories-656k/reference/prompts.jsonl",
                            "tokenizers/gpt2/tokenizer.json", "tokenizers/llama2/tokenizer.json"};
    char path[1024];
    for (size_t i = 0; i < ARRAY_LEN(assets); i++) {
        snprintf(path, sizeof path, "%s/%s", shared, assets[i]);
        if (access(path, R_OK)) {
            check_missing_asset("oracle", path);
            return;
        }
    }
    snprintf(path, sizeof path, "%s/sra-tokenize", build);
    if (access(path, X_OK)) {
        check_missing("oracle", "build/sra-tokenize not built (run make)");
        return;
    }
    if (access("tests/spans_ref.py", R_OK)) {
        check_missing("oracle", "tests/spans_ref.py not found (run from the repository root)");
        return;
    }
    if (!py_has_modules(py)) {
        check_missing("oracle", "python3-regex or python3-numpy missing "
                                "(apt-get install -y python3-regex python3-numpy)");
        return;
    }
    char dir[] = "/tmp/sra-spans-XXXXXX";
    if (!mkdtemp(dir)) {
        CHECK(0, "mkdtemp failed");
        return;
    }
    char cmd[4000];
    snprintf(cmd, sizeof cmd, "'%s' tests/spans_ref.py '%s' '%s' '%s'", py, build, shared, dir);
    int rc = system(cmd);
    snprintf(path, sizeof path, "%s/ref.jsonl", dir);
    FILE *f = rc == 0 ? fopen(path, "r") : NULL;
    CHECK(f, "spans_ref.py failed (status %d): %s", rc, cmd);
    char *line = NULL;
    size_t lcap = 0;
    long lines = 0, bad = 0, natoms = 0, nspans = 0;
    double maxd = 0;
    while (f && getline(&line, &lcap, f) > 0) {
        cJSON *j = cJSON_Parse(line);
        if (!j) {
            CHECK(0, "bad JSON at line %ld", lines + 1);
            break;
        }
        lines++;
        const char *hex = cJSON_GetObjectItem(j, "hex")->valuestring;
        const char *mode = cJSON_GetObjectItem(j, "mode")->valuestring;
        const char *stu = cJSON_GetObjectItem(j, "student")->valuestring;
        size_t n = strlen(hex) / 2;
        char *text = malloc(n + 1);
        for (size_t i = 0; i < n; i++) text[i] = (char)(hexval(hex[2 * i]) << 4 | hexval(hex[2 * i + 1]));
        uint32_t *ts, *te, *ss, *se;
        size_t T = json_offsets(cJSON_GetObjectItem(j, "offT"), &ts, &te);
        size_t S = json_offsets(cJSON_GetObjectItem(j, "offS"), &ss, &se);
        size_t C = (size_t)cJSON_GetObjectItem(j, "C")->valuedouble;
        uint64_t seed = (uint64_t)cJSON_GetObjectItem(j, "seed")->valuedouble;
        size_t big = 2 * (n + T + S) + 2;
        uint32_t *canon = malloc((n + 1) * sizeof *canon), *got = malloc(big * sizeof *got),
                 *want = malloc(big * sizeof *want);
        span_canon_map(text, n, canon);
        int64_t nw = json_u32(cJSON_GetObjectItem(j, "canon"), want, big);
        MISMATCH(eq_u32(canon, (int64_t)n + 1, want, (size_t)nw), "line %ld: canon", lines);
        static const char *const sets[] = {"BT", "BS", "W"};
        for (int s = 0; s < 3; s++) {
            int64_t k = s == 0   ? span_boundaries(canon, n, ts, te, T, got, big)
                        : s == 1 ? span_boundaries(canon, n, ss, se, S, got, big)
                                 : span_word_boundaries(text, n, canon, got, big);
            nw = json_u32(cJSON_GetObjectItem(j, sets[s]), want, big);
            MISMATCH(eq_u32(got, k, want, (size_t)nw), "line %ld (%s): %s differs (%lld vs %lld)",
                     lines, stu, sets[s], (long long)k, (long long)nw);
        }
        span_atom *at = malloc((T + 1) * sizeof *at);
        int32_t *ta = malloc((T + 1) * sizeof *ta), *tsp = malloc((S + 1) * sizeof *tsp);
        int64_t A = span_atoms(text, n, canon, (span_atoms_mode)span_atoms_mode_parse(mode), ts,
                               te, T, ss, se, S, at, T + 1, ta);
        const cJSON *ja = cJSON_GetObjectItem(j, "atoms");
        MISMATCH(A == cJSON_GetArraySize(ja), "line %ld (%s, %s): %lld atoms, oracle %d", lines,
                 stu, mode, (long long)A, cJSON_GetArraySize(ja));
        int ok = A == cJSON_GetArraySize(ja);
        for (int64_t k = 0; ok && k < A; k++) {
            const cJSON *a = cJSON_GetArrayItem(ja, (int)k), *idx = cJSON_GetArrayItem(a, 2);
            ok = at[k].start == (uint32_t)cJSON_GetArrayItem(a, 0)->valuedouble &&
                 at[k].end == (uint32_t)cJSON_GetArrayItem(a, 1)->valuedouble &&
                 at[k].first == (int32_t)cJSON_GetArrayItem(idx, 0)->valuedouble &&
                 at[k].last ==
                     (int32_t)cJSON_GetArrayItem(idx, cJSON_GetArraySize(idx) - 1)->valuedouble &&
                 json_list_is(idx, ta, T, (int32_t)k);
            MISMATCH(ok, "line %ld (%s, %s): atom %lld differs", lines, stu, mode, (long long)k);
        }
        span_group *g = malloc((S + 1) * sizeof *g);
        int64_t G = ok ? span_spans(canon, n, at, (size_t)A, ss, se, S, g, S + 1, tsp) : -1;
        const cJSON *jg = cJSON_GetObjectItem(j, "spans");
        if (ok) {
            MISMATCH(G == cJSON_GetArraySize(jg), "line %ld (%s, %s): %lld spans, oracle %d",
                     lines, stu, mode, (long long)G, cJSON_GetArraySize(jg));
            ok = G == cJSON_GetArraySize(jg);
        }
        for (int64_t k = 0; ok && k < G; k++) {
            const cJSON *s = cJSON_GetArrayItem(jg, (int)k), *ai = cJSON_GetArrayItem(s, 2);
            int aok = cJSON_GetArraySize(ai) == g[k].atom_last - g[k].atom_first + 1;
            for (int q = 0; aok && q < cJSON_GetArraySize(ai); q++)
                aok = (int32_t)cJSON_GetArrayItem(ai, q)->valuedouble == g[k].atom_first + q;
            ok = aok && g[k].start == (uint32_t)cJSON_GetArrayItem(s, 0)->valuedouble &&
                 g[k].end == (uint32_t)cJSON_GetArrayItem(s, 1)->valuedouble &&
                 json_list_is(cJSON_GetArrayItem(s, 3), tsp, S, (int32_t)k);
            MISMATCH(ok, "line %ld (%s, %s): span %lld differs", lines, stu, mode, (long long)k);
        }
        if (ok) {
            natoms += A;
            nspans += G;
            float *hidden = malloc((T * C + 1) * sizeof *hidden), *mass = malloc((T + 1) * sizeof *mass);
            float *com = malloc(((size_t)A * C + 1) * sizeof *com), *M = malloc(((size_t)A + 1) * sizeof *M);
            float *sc = malloc(((size_t)G * C + 1) * sizeof *sc), *sM = malloc(((size_t)G + 1) * sizeof *sM);
            draw(seed, T, C, hidden, mass);
            MISMATCH(span_com(at, (size_t)A, ta, T, C, hidden, mass, com, M) == 0, "com rc");
            MISMATCH(span_merge(g, (size_t)G, (size_t)A, C, com, M, sc, sM) == 0, "merge rc");
            static const char *const keys[] = {"com", "M", "scom", "sM"};
            const float *mine[] = {com, M, sc, sM};
            for (int q = 0; q < 4; q++) {
                const cJSON *r = cJSON_GetObjectItem(j, keys[q]);
                size_t cnt = 0;
                const cJSON *row;
                double d = 0;
                cJSON_ArrayForEach(row, r) {
                    if (cJSON_IsArray(row)) {
                        const cJSON *v;
                        cJSON_ArrayForEach(v, row) {
                            double ref = v->valuedouble;
                            d = fmax(d, fabs(mine[q][cnt++] - ref) / fmax(1.0, fabs(ref)));
                        }
                    } else {
                        double ref = row->valuedouble;
                        d = fmax(d, fabs(mine[q][cnt++] - ref) / fmax(1.0, fabs(ref)));
                    }
                }
                size_t expect = (size_t)(q < 2 ? A : G) * (q % 2 ? 1 : C);
                MISMATCH(cnt == expect && d <= 1e-5, "line %ld (%s, %s): %s differs by %g", lines,
                         stu, mode, keys[q], d);
                maxd = fmax(maxd, d);
            }
            free(hidden);
            free(mass);
            free(com);
            free(M);
            free(sc);
            free(sM);
        }
        free(g);
        free(at);
        free(ta);
        free(tsp);
        free(canon);
        free(got);
        free(want);
        free(ts);
        free(te);
        free(ss);
        free(se);
        free(text);
        cJSON_Delete(j);
    }
    free(line);
    if (f) fclose(f);
    printf("  oracle: %ld cases (text x student x mode), %ld atoms, %ld spans, %ld mismatches, "
           "max rel |dCoM|, |dM| = %.3g\n",
           lines, natoms, nspans, bad, maxd);
    CHECK(lines >= 1000, "only %ld oracle cases", lines);
    unlink(path);
    rmdir(dir);
}

int main(void) {
    RUN(canon_map);
    RUN(boundaries_overlap_bos);
    RUN(words_and_intersect);
    RUN(atoms_word_token_student);
    RUN(whitespace_only_tokens);
    RUN(composition_law);
    RUN(oracle);
    return check_summary();
}
