/*
 * vocab.c - shared-vocabulary keys, the exact pairs of the paper preset
 * and MinED's map (contract: vocab.h).
 */
#include "vocab.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int vocab_pool_parse(const char *s) {
    if (!strcmp(s, "firstword")) return VOCAB_POOL_FIRSTWORD;
    if (!strcmp(s, "strip")) return VOCAB_POOL_STRIP;
    if (!strcmp(s, "exact")) return VOCAB_POOL_EXACT;
    return -1;
}

static int is_ws(unsigned char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == 0x0b || c == 0x0c; }

/* Decoded bytes of id (malloc'd, NUL-terminated) or NULL for special or
 * unused ids. */
static char *token_bytes(const tok_tokenizer *t, int32_t id, int *len) {
    for (int i = 0; i < tok_n_added(t); i++) {
        const char *content;
        int special;
        if (tok_added(t, i, &content, &special) == id && special) return NULL;
    }
    int n = tok_token_bytes(t, id, NULL, 0);
    if (n < 0) return NULL;
    char *b = malloc((size_t)n + 1);
    if (!b) return NULL;
    tok_token_bytes(t, id, b, (size_t)n);
    b[n] = 0;
    *len = n;
    return b;
}

/* The key of bytes b (n) under pool: [*ks, *ks + *kn) inside b, or kn = 0. */
static void key_of(const char *b, int n, vocab_pool pool, int *ks, int *kn) {
    int s = 0, e = n;
    while (s < e && is_ws((unsigned char)b[s])) s++;
    while (e > s && is_ws((unsigned char)b[e - 1])) e--;
    if (pool == VOCAB_POOL_FIRSTWORD)
        for (int i = s; i < e; i++)
            if (is_ws((unsigned char)b[i])) { e = i; break; }
    *ks = s;
    *kn = e - s;
}

typedef struct { const char *p; int n; int32_t id; int side; } keyrec;

static int cmp_key(const void *a, const void *b) {
    const keyrec *x = a, *y = b;
    int m = x->n < y->n ? x->n : y->n, c = memcmp(x->p, y->p, (size_t)m);
    if (c) return c;
    if (x->n != y->n) return x->n < y->n ? -1 : 1;
    return x->side - y->side;
}

static int cmp_pair_s(const void *a, const void *b) {
    const int32_t *x = a, *y = b; // (student id, teacher id)
    return (x[0] > y[0]) - (x[0] < y[0]);
}

/* pool exact: recs (nr) hold every id's raw string on both sides. Equal
 * strings become pairs, sorted by student id; each pair is also a key
 * and the student-side gather lists (s_shared_*) follow. */
static int exact_pairs(vocab_map *v, keyrec *recs, size_t nr, char *err, size_t errlen) {
    qsort(recs, nr, sizeof *recs, cmp_key);
    int32_t *pr = malloc((nr / 2 + 1) * 2 * sizeof *pr); // (student id, teacher id) rows
    if (!pr) { snprintf(err, errlen, "out of memory for the shared vocabulary"); return -1; }
    size_t np = 0;
    /* sorted by (string, side): a string both sides have is a teacher
     * record directly followed by a student one (one id per string and
     * side, see vocab.h) */
    for (size_t i = 0; i + 1 < nr; i++) {
        const keyrec *a = &recs[i], *b = &recs[i + 1];
        if (a->side == 0 && b->side == 1 && a->n == b->n && !memcmp(a->p, b->p, (size_t)a->n)) {
            pr[2 * np] = b->id;
            pr[2 * np + 1] = a->id;
            np++;
        }
    }
    qsort(pr, np, 2 * sizeof *pr, cmp_pair_s);
    v->n_pairs = v->K = v->n_s_shared = (int32_t)np;
    v->pair_t = malloc((np + 1) * sizeof *v->pair_t);
    v->pair_s = malloc((np + 1) * sizeof *v->pair_s);
    v->s_shared_ids = malloc((np + 1) * sizeof *v->s_shared_ids);
    v->s_shared_key = malloc((np + 1) * sizeof *v->s_shared_key);
    if (!v->pair_t || !v->pair_s || !v->s_shared_ids || !v->s_shared_key) {
        free(pr);
        snprintf(err, errlen, "out of memory for the shared vocabulary");
        return -1;
    }
    for (size_t i = 0; i < np; i++) {
        v->pair_s[i] = v->s_shared_ids[i] = pr[2 * i];
        v->pair_t[i] = pr[2 * i + 1];
        v->s_shared_key[i] = (int32_t)i;
        v->s_key[pr[2 * i]] = v->t_key[pr[2 * i + 1]] = (int32_t)i;
    }
    free(pr);
    return 0;
}

int vocab_build(vocab_map *v, const tok_tokenizer *teacher, const tok_tokenizer *student, vocab_pool pool,
                char *err, size_t errlen) {
    memset(v, 0, sizeof *v);
    v->teacher = teacher;
    v->VT = tok_vocab_size(teacher);
    v->VS = tok_vocab_size(student);
    v->t_key = malloc((size_t)v->VT * sizeof *v->t_key);
    v->s_key = malloc((size_t)v->VS * sizeof *v->s_key);
    v->t2s = malloc((size_t)v->VT * sizeof *v->t2s);
    v->s_bytes = calloc((size_t)v->VS, sizeof *v->s_bytes);
    v->s_len = calloc((size_t)v->VS, sizeof *v->s_len);
    char **t_bytes = calloc((size_t)v->VT, sizeof *t_bytes);
    keyrec *recs = malloc(((size_t)v->VT + v->VS) * sizeof *recs);
    if (!v->t_key || !v->s_key || !v->t2s || !v->s_bytes || !v->s_len || !t_bytes || !recs) {
        snprintf(err, errlen, "out of memory for the shared vocabulary");
        free(t_bytes); free(recs); vocab_free(v);
        return -1;
    }
    size_t nr = 0;
    for (int side = 0; side < 2; side++) {
        const tok_tokenizer *t = side ? student : teacher;
        int32_t V = side ? v->VS : v->VT;
        for (int32_t id = 0; id < V; id++) {
            (side ? v->s_key : v->t_key)[id] = -1;
            if (!side) v->t2s[id] = -2;
            int n = 0;
            char *b = token_bytes(t, id, &n);
            if (pool == VOCAB_POOL_EXACT) { /* the raw string, specials included (method.md §9.3) */
                size_t rn;
                const char *r = tok_token_str(t, id, &rn);
                if (r) recs[nr++] = (keyrec){r, (int)rn, id, side};
            }
            if (!b) continue;
            if (side) { v->s_bytes[id] = b; v->s_len[id] = n; }
            else t_bytes[id] = b;
            if (pool == VOCAB_POOL_EXACT) continue;
            int ks, kn;
            key_of(b, n, pool, &ks, &kn);
            if (kn > 0) recs[nr++] = (keyrec){b + ks, kn, id, side};
        }
    }
    if (pool == VOCAB_POOL_EXACT) {
        int rc = exact_pairs(v, recs, nr, err, errlen);
        for (int32_t id = 0; id < v->VT; id++) free(t_bytes[id]);
        free(t_bytes);
        free(recs);
        if (rc) vocab_free(v);
        return rc;
    }
    /* keys in byte order; a key is shared when both sides have it */
    qsort(recs, nr, sizeof *recs, cmp_key);
    int32_t K = 0;
    for (size_t i = 0; i < nr;) {
        size_t j = i;
        int sides = 0;
        while (j < nr && recs[j].n == recs[i].n && !memcmp(recs[j].p, recs[i].p, (size_t)recs[i].n)) sides |= 1 << recs[j++].side;
        if (sides == 3) {
            for (size_t q = i; q < j; q++) (recs[q].side ? v->s_key : v->t_key)[recs[q].id] = K;
            K++;
        }
        i = j;
    }
    v->K = K;
    for (int32_t id = 0; id < v->VS; id++) v->n_s_shared += v->s_key[id] >= 0;
    v->s_shared_ids = malloc(((size_t)v->n_s_shared + 1) * sizeof *v->s_shared_ids);
    v->s_shared_key = malloc(((size_t)v->n_s_shared + 1) * sizeof *v->s_shared_key);
    if (!v->s_shared_ids || !v->s_shared_key) {
        snprintf(err, errlen, "out of memory for the shared vocabulary");
        for (int32_t id = 0; id < v->VT; id++) free(t_bytes[id]);
        free(t_bytes); free(recs); vocab_free(v);
        return -1;
    }
    for (int32_t id = 0, n = 0; id < v->VS; id++)
        if (v->s_key[id] >= 0) { v->s_shared_ids[n] = id; v->s_shared_key[n++] = v->s_key[id]; }
    for (int32_t id = 0; id < v->VT; id++) free(t_bytes[id]);
    free(t_bytes);
    free(recs);
    return 0;
}

void vocab_free(vocab_map *v) {
    if (!v) return;
    if (v->s_bytes)
        for (int32_t i = 0; i < v->VS; i++) free(v->s_bytes[i]);
    free(v->s_bytes); free(v->s_len); free(v->t_key); free(v->s_key); free(v->t2s);
    free(v->s_shared_ids); free(v->s_shared_key); free(v->pair_t); free(v->pair_s);
    memset(v, 0, sizeof *v);
}

/* Levenshtein distance of a (n) and b (m), giving up above `bound`. */
static int lev(const char *a, int n, const char *b, int m, int bound, int *row) {
    if (abs(n - m) > bound) return bound + 1;
    for (int j = 0; j <= m; j++) row[j] = j;
    for (int i = 1; i <= n; i++) {
        int prev = row[0], best = i;
        row[0] = i;
        for (int j = 1; j <= m; j++) {
            int cur = row[j];
            int d = prev + (a[i - 1] != b[j - 1]);
            if (row[j] + 1 < d) d = row[j] + 1;
            if (row[j - 1] + 1 < d) d = row[j - 1] + 1;
            row[j] = d;
            prev = cur;
            if (d < best) best = d;
        }
        if (best > bound) return bound + 1; /* every later row is at least this */
    }
    return row[m];
}

int32_t vocab_mined_map(vocab_map *v, int32_t t) {
    if (t < 0 || t >= v->VT) return -1;
    if (v->t2s[t] != -2) return v->t2s[t];
    int n = 0;
    char *a = token_bytes(v->teacher, t, &n);
    int32_t best = -1;
    if (a && n > 0) {
        int bd = 1 << 30, maxm = 0;
        for (int32_t j = 0; j < v->VS; j++) if (v->s_len[j] > maxm) maxm = v->s_len[j];
        int *row = malloc(((size_t)maxm + 1) * sizeof *row);
        for (int32_t j = 0; row && j < v->VS && bd > 0; j++) {
            if (!v->s_bytes[j]) continue;
            int d = lev(a, n, v->s_bytes[j], v->s_len[j], bd - 1, row);
            if (d < bd) { bd = d; best = j; }
        }
        free(row);
    }
    free(a);
    v->t2s[t] = best;
    return best;
}
