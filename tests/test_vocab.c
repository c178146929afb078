/*
 * test_vocab - the shared vocabulary (train/vocab.h) against independent
 * references:
 *   - pool exact (method.md §9.3): the pairs (teacher id, student id) of
 *     real tokenizer pairs equal ../shared/tools/sra_ref.py's
 *     exact_shared_ids, pair for pair and in its order (tests/vocab_ref.py,
 *     one python run per pair), and the counts method.md §9.3 reports
 *     (TinyStories-656K vs GPT-2 659, Mistral vs Llama-2 24,184, Qwen3 vs
 *     GPT-2 42,257); each pair is also a key (t_key, s_key, s_shared_*);
 *   - pool strip (method.md §4): the number of shared keys equals
 *     sra_ref.shared_strings over sra_ref.token_bytes_table;
 *   - a toy pair written by hand: raw strings ("Ġ", "▁" not decoded),
 *     special added tokens included, an added token repeating a model
 *     string keeps the model's id (HF's AddedVocabulary).
 * Prints the measured counts and build times.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "tokenizer.h"
#include "util.h"
#include "vocab.h"

static const char *py(void) { return getenv("SRA_PY") && *getenv("SRA_PY") ? getenv("SRA_PY") : "/usr/bin/python3"; }

typedef struct {
    const char *name, *teacher, *student; /* paths under the shared assets */
    int expect;                           /* the count method.md §9.3 reports, or -1 */
} tok_pair;

static const tok_pair real_pairs[] = {
    {"tinystories656k_vs_gpt2", "models/tinystories-656k/tokenizer.json", "tokenizers/gpt2/tokenizer.json", 659},
    {"stories260k_vs_gpt2", "models/stories260k/tokenizer.json", "tokenizers/gpt2/tokenizer.json", -1},
    {"mistral_vs_llama2", "tokenizers/mistral/tokenizer.json", "tokenizers/llama2/tokenizer.json", 24184},
    {"qwen3_vs_gpt2", "tokenizers/qwen3/tokenizer.json", "tokenizers/gpt2/tokenizer.json", 42257},
};

/* The oracle's answer for one pair, read from vocab_ref.py's output. */
typedef struct {
    int strip_K, n;
    int32_t *t, *s;
} oracle;

static int oracle_run(oracle *o, const char *tp, const char *sp) {
    memset(o, 0, sizeof *o);
    char dir[] = "/tmp/sra-test-vocab-XXXXXX", out[1200], cmd[4000];
    if (!mkdtemp(dir)) return -1;
    snprintf(out, sizeof out, "%s/pairs.txt", dir);
    snprintf(cmd, sizeof cmd, "SRA_SHARED='%s' %s tests/vocab_ref.py '%s' '%s' '%s'", check_shared(), py(), tp, sp,
             out);
    int rc = system(cmd) == 0 ? 0 : -1;
    FILE *f = rc ? NULL : fopen(out, "r");
    if (!f || fscanf(f, "strip %d exact %d", &o->strip_K, &o->n) != 2 || o->n < 0) rc = -1;
    if (!rc) {
        o->t = malloc(sizeof(int32_t) * ((size_t)o->n + 1));
        o->s = malloc(sizeof(int32_t) * ((size_t)o->n + 1));
        for (int i = 0; !rc && i < o->n; i++)
            if (fscanf(f, "%d %d", &o->t[i], &o->s[i]) != 2) rc = -1;
    }
    if (f) fclose(f);
    unlink(out);
    rmdir(dir);
    return rc;
}

static void oracle_free(oracle *o) { free(o->t); free(o->s); }

/* Invariants of an exact map, whatever the tokenizers: pairs by
 * increasing student id, equal raw strings, each pair its own key. */
static void check_exact_invariants(const char *name, const vocab_map *v, const tok_tokenizer *T,
                                   const tok_tokenizer *S) {
    CHECK(v->K == v->n_pairs && v->n_s_shared == v->n_pairs, "%s: K %d, n_s_shared %d, n_pairs %d", name, v->K,
          v->n_s_shared, v->n_pairs);
    int bad_order = 0, bad_str = 0, bad_key = 0, nt = 0, ns = 0;
    for (int i = 0; i < v->n_pairs; i++) {
        if (i && v->pair_s[i] <= v->pair_s[i - 1]) bad_order++;
        size_t a, b;
        const char *x = tok_token_str(T, v->pair_t[i], &a), *y = tok_token_str(S, v->pair_s[i], &b);
        if (!x || !y || a != b || memcmp(x, y, a)) bad_str++;
        if (v->t_key[v->pair_t[i]] != i || v->s_key[v->pair_s[i]] != i || v->s_shared_ids[i] != v->pair_s[i] ||
            v->s_shared_key[i] != i)
            bad_key++;
    }
    for (int32_t id = 0; id < v->VT; id++) nt += v->t_key[id] >= 0;
    for (int32_t id = 0; id < v->VS; id++) ns += v->s_key[id] >= 0;
    CHECK(!bad_order && !bad_str && !bad_key, "%s: %d pairs out of order, %d with unequal strings, %d keys wrong",
          name, bad_order, bad_str, bad_key);
    CHECK(nt == v->n_pairs && ns == v->n_pairs, "%s: %d teacher and %d student ids have a key, %d pairs", name, nt,
          ns, v->n_pairs);
}

/* vocab_build (exact and strip) on the tokenizers at tp and sp against
 * the oracle; expect: the count method.md reports, or -1. */
static void against_oracle(const char *name, const char *tp, const char *sp, int expect) {
    tok_tokenizer *T = NULL, *S = NULL;
    int okT = tok_load(&T, tp) == 0, okS = tok_load(&S, sp) == 0;
    CHECK(okT && okS, "%s: load: %s / %s", name, T ? tok_errmsg(T) : "oom", S ? tok_errmsg(S) : "oom");
    oracle o;
    int ok_o = okT && okS && oracle_run(&o, tp, sp) == 0;
    CHECK(!okT || !okS || ok_o, "%s: tests/vocab_ref.py failed on %s %s", name, tp, sp);
    if (ok_o) {
        vocab_map v;
        char err[256] = "";
        double t0 = sra_now();
        int rc = vocab_build(&v, T, S, VOCAB_POOL_EXACT, err, sizeof err);
        double dt = sra_now() - t0;
        CHECK(rc == 0, "%s: vocab_build exact: %s", name, err);
        if (rc == 0) {
            int first_diff = -1;
            for (int i = 0; i < o.n && i < v.n_pairs && first_diff < 0; i++)
                if (v.pair_t[i] != o.t[i] || v.pair_s[i] != o.s[i]) first_diff = i;
            CHECK(v.n_pairs == o.n, "%s: %d exact pairs, sra_ref.exact_shared_ids has %d", name, v.n_pairs, o.n);
            CHECK(first_diff < 0, "%s: pair %d is (%d, %d), sra_ref has (%d, %d)", name, first_diff,
                  first_diff < 0 ? 0 : v.pair_t[first_diff], first_diff < 0 ? 0 : v.pair_s[first_diff],
                  first_diff < 0 ? 0 : o.t[first_diff], first_diff < 0 ? 0 : o.s[first_diff]);
            if (expect >= 0)
                CHECK(v.n_pairs == expect, "%s: %d exact pairs, expected %d (method.md §9.3 or by hand)", name, v.n_pairs, expect);
            check_exact_invariants(name, &v, T, S);
            printf("  %-26s exact: %d pairs (sra_ref %d%s), built in %.0f ms\n", name, v.n_pairs, o.n,
                   expect >= 0 ? ", as expected" : "", 1e3 * dt);
            vocab_free(&v);
        }
        rc = vocab_build(&v, T, S, VOCAB_POOL_STRIP, err, sizeof err);
        CHECK(rc == 0, "%s: vocab_build strip: %s", name, err);
        if (rc == 0) {
            CHECK(v.K == o.strip_K, "%s: strip has %d shared keys, sra_ref.shared_strings %d", name, v.K, o.strip_K);
            CHECK(v.n_pairs == 0 && !v.pair_t && !v.pair_s, "%s: strip fills pairs (%d)", name, v.n_pairs);
            printf("  %-26s strip: %d keys (sra_ref %d)\n", name, v.K, o.strip_K);
            vocab_free(&v);
        }
        oracle_free(&o);
    }
    tok_free(T);
    tok_free(S);
}

TEST(exact_real_pairs) {
    for (size_t i = 0; i < sizeof real_pairs / sizeof *real_pairs; i++) {
        const tok_pair *p = &real_pairs[i];
        char tp[1100], sp[1100];
        snprintf(tp, sizeof tp, "%s/%s", check_shared(), p->teacher);
        snprintf(sp, sizeof sp, "%s/%s", check_shared(), p->student);
        if (access(tp, R_OK)) { check_missing_asset(p->name, tp); continue; }
        if (access(sp, R_OK)) { check_missing_asset(p->name, sp); continue; }
        against_oracle(p->name, tp, sp, p->expect);
    }
}

/* Hand-built: a byte-level teacher and a SentencePiece-style student; only
 * raw strings that are byte-equal pair up. Checked against pairs written
 * by hand and against the oracle (exact and strip). */
static const char *toy_teacher =
    "{\"pre_tokenizer\":{\"type\":\"ByteLevel\",\"add_prefix_space\":false,\"trim_offsets\":true,\"use_regex\":true},"
    "\"decoder\":{\"type\":\"ByteLevel\",\"add_prefix_space\":true,\"trim_offsets\":true,\"use_regex\":true},"
    "\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"\\u0120b\":1,\"\\u2581c\":2,\"c\":3,\"d\":4,\"<s>\":5},"
    "\"merges\":[]},\"added_tokens\":[{\"id\":5,\"content\":\"<s>\",\"special\":true},"
    "{\"id\":6,\"content\":\"<eot>\",\"special\":true}]}";
static const char *toy_student =
    "{\"decoder\":{\"type\":\"Sequence\",\"decoders\":[{\"type\":\"Replace\",\"pattern\":{\"String\":\"\\u2581\"},"
    "\"content\":\" \"},{\"type\":\"ByteFallback\"},{\"type\":\"Fuse\"}]},"
    "\"model\":{\"type\":\"BPE\",\"vocab\":{\"\\u2581c\":0,\"\\u0120b\":1,\"b\":2,\" b\":3,\"a\":4,\"<s>\":5,"
    "\"D\":6},\"merges\":[]},\"added_tokens\":[{\"id\":4,\"content\":\"a\"},"
    "{\"id\":7,\"content\":\"<eot>\",\"special\":true},{\"id\":8,\"content\":\"d\"}]}";

static int write_text(const char *path, const char *s) {
    FILE *f = fopen(path, "w");
    if (!f) return -1;
    int rc = fputs(s, f) < 0;
    return fclose(f) || rc ? -1 : 0;
}

TEST(exact_toy) {
    char dir[] = "/tmp/sra-test-vocab-toy-XXXXXX", tp[200], sp[200];
    if (!mkdtemp(dir)) { CHECK(0, "mkdtemp"); return; }
    snprintf(tp, sizeof tp, "%s/teacher.json", dir);
    snprintf(sp, sizeof sp, "%s/student.json", dir);
    CHECK(write_text(tp, toy_teacher) == 0 && write_text(sp, toy_student) == 0, "cannot write %s", dir);
    tok_tokenizer *T = NULL, *S = NULL;
    int okT = tok_load(&T, tp) == 0, okS = tok_load(&S, sp) == 0;
    CHECK(okT && okS, "toy load: %s / %s", T ? tok_errmsg(T) : "oom", S ? tok_errmsg(S) : "oom");
    if (okT && okS) {
        /* by hand, by increasing student id: "▁c" (t2, s0), "Ġb" (t1, s1),
         * "a" (t0, s4; the student's added "a" repeats its model "a" and
         * keeps id 4), "<s>" (t5, s5; special on one side only), "<eot>"
         * (t6, s7; special on both), "d" (t4, s8; a student added token).
         * Not paired: "c" vs "▁c", "b" and " b" vs "Ġb" (no decoding),
         * "D" vs "d". */
        static const int32_t et[] = {2, 1, 0, 5, 6, 4}, es[] = {0, 1, 4, 5, 7, 8};
        vocab_map v;
        char err[256] = "";
        int rc = vocab_build(&v, T, S, VOCAB_POOL_EXACT, err, sizeof err);
        CHECK(rc == 0, "toy exact: %s", err);
        if (rc == 0) {
            CHECK(v.n_pairs == 6, "toy: %d pairs, expected 6", v.n_pairs);
            for (int i = 0; i < 6 && i < v.n_pairs; i++)
                CHECK(v.pair_t[i] == et[i] && v.pair_s[i] == es[i], "toy pair %d: (%d, %d), expected (%d, %d)", i,
                      v.pair_t[i], v.pair_s[i], et[i], es[i]);
            vocab_free(&v);
        }
    }
    tok_free(T);
    tok_free(S);
    if (okT && okS) against_oracle("toy", tp, sp, 6);
    unlink(tp);
    unlink(sp);
    rmdir(dir);
}

TEST(pool_parse) {
    CHECK(vocab_pool_parse("firstword") == VOCAB_POOL_FIRSTWORD && vocab_pool_parse("strip") == VOCAB_POOL_STRIP &&
              vocab_pool_parse("exact") == VOCAB_POOL_EXACT,
          "known pools");
    CHECK(vocab_pool_parse("Exact") == -1 && vocab_pool_parse("") == -1 && vocab_pool_parse("exactly") == -1,
          "unknown pools give -1");
}

int main(void) {
    RUN(pool_parse);
    RUN(exact_toy);
    RUN(exact_real_pairs);
    return check_summary();
}
