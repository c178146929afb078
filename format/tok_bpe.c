/*
 * tok_bpe.c - the BPE model (tok_bpe.h), load half: vocabulary and merge
 * tables built once from tokenizer.json (layout in tok_bpe_internal.h),
 * added tokens, queries. Gemma-3 (262k tokens, 515k merges) needs 8 MiB +
 * 16 MiB for the tables. Encoding is in tok_bpe_encode.c.
 */
#include "tok_bpe_internal.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static size_t pow2_at_least(size_t n) {
    size_t c = 16;
    while (c < n) c <<= 1;
    return c;
}

/* ================================================================ model */


static void set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void set_err(char *err, size_t errlen, const char *fmt, ...) {
    if (!err || !errlen) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static void vocab_put(bpe_model *m, uint64_t h, int32_t id) {
    size_t i = (size_t)h & m->vmask;
    while (m->vtab[i].id >= 0) i = (i + 1) & m->vmask;
    m->vtab[i].taglen = taglen(h, m->tok_len[id]);
    m->vtab[i].id = id;
    m->vtab[i].s = m->tok[id];
    m->vcount++;
}

static int vocab_alloc(bpe_model *m, size_t slots) {
    vslot *t = malloc(slots * sizeof *t);
    if (!t) return -1;
    for (size_t i = 0; i < slots; i++) t[i].id = -1;
    free(m->vtab);
    m->vtab = t;
    m->vmask = slots - 1;
    m->vcount = 0;
    return 0;
}

static int ids_reserve(bpe_model *m, size_t n) {
    if (n <= m->ids_cap) return 0;
    size_t c = m->ids_cap ? m->ids_cap : 16;
    while (c < n) c *= 2;
    const char **t = realloc(m->tok, c * sizeof *t);
    if (t) m->tok = t;
    uint32_t *l = t ? realloc(m->tok_len, c * sizeof *l) : NULL;
    if (l) m->tok_len = l;
    uint8_t *f = l ? realloc(m->tok_flags, c) : NULL;
    if (f) m->tok_flags = f;
    if (!t || !l || !f) return -1;
    for (size_t i = m->ids_cap; i < c; i++) {
        m->tok[i] = NULL;
        m->tok_len[i] = 0;
        m->tok_flags[i] = 0;
    }
    m->ids_cap = c;
    return 0;
}

/* Inserts a merge; a pair listed twice keeps its last rank, as HF's
 * HashMap collect does (checked against HF: merges ["b c","a b","b c"]
 * turn "abc" into "ab" "c"). */
static void merge_put(bpe_model *m, int32_t a, int32_t b, uint32_t rank, int32_t id) {
    uint64_t key = (uint64_t)(uint32_t)a << 32 | (uint32_t)b;
    size_t i = (size_t)hash_pair(key) & m->mmask;
    while (m->mtab[i].key != UINT64_MAX && m->mtab[i].key != key) i = (i + 1) & m->mmask;
    if (m->mtab[i].key == UINT64_MAX) m->n_merges++;
    m->mtab[i].key = key;
    m->mtab[i].rank = rank;
    m->mtab[i].id = id;
}

/* ------------------------------------------------------------ options */

/* A string-or-null option; "" counts as unset (HF's format!("{prefix}{s}")
 * with an empty prefix changes nothing). Returns -1 on a wrong type. */
static int opt_string(const cJSON *model, const char *key, char **out, size_t *len, char *err,
                      size_t errlen) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(model, key);
    *out = NULL;
    if (len) *len = 0;
    if (!v || cJSON_IsNull(v)) return 0;
    if (!cJSON_IsString(v)) {
        set_err(err, errlen, "\"%s\": expected a string or null", key);
        return -1;
    }
    size_t n = strlen(v->valuestring);
    if (n == 0) return 0;
    if (!(*out = malloc(n + 1))) {
        set_err(err, errlen, "out of memory");
        return -1;
    }
    memcpy(*out, v->valuestring, n + 1);
    if (len) *len = n;
    return 0;
}

static int opt_bool(const cJSON *model, const char *key, int *out, char *err, size_t errlen) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(model, key);
    *out = 0;
    if (!v || cJSON_IsNull(v)) return 0;
    if (!cJSON_IsBool(v)) {
        set_err(err, errlen, "\"%s\": expected true, false or null", key);
        return -1;
    }
    *out = cJSON_IsTrue(v);
    return 0;
}

/* ------------------------------------------------------------- vocab */

static int load_vocab(bpe_model *m, const cJSON *vocab, char *err, size_t errlen) {
    if (!cJSON_IsObject(vocab)) {
        set_err(err, errlen, "\"vocab\": %s", vocab ? "expected an object" : "missing");
        return -1;
    }
    /* pass 1: validate ids, size the arena */
    size_t count = 0, bytes = 0;
    int32_t max_id = -1;
    const cJSON *it;
    cJSON_ArrayForEach(it, vocab) {
        double d = it->valuedouble;
        if (!cJSON_IsNumber(it) || !(d >= 0 && d < BPE_MAX_ID) || d != (double)(int32_t)d) {
            set_err(err, errlen, "vocab[\"%s\"]: expected an integer id in [0, %d)", it->string,
                    BPE_MAX_ID);
            return -1;
        }
        if ((int32_t)d > max_id) max_id = (int32_t)d;
        bytes += strlen(it->string) + 1;
        count++;
    }
    m->n_ids = max_id + 1;
    if (ids_reserve(m, (size_t)m->n_ids) || !(m->arena = malloc(bytes ? bytes : 1)) ||
        vocab_alloc(m, pow2_at_least(2 * count + 64))) {
        set_err(err, errlen, "out of memory for a vocabulary of %zu tokens", count);
        return -1;
    }
    /* pass 2: fill */
    char *p = m->arena;
    cJSON_ArrayForEach(it, vocab) {
        int32_t id = (int32_t)it->valuedouble;
        size_t n = strlen(it->string);
        uint64_t h = hash_bytes(it->string, n);
        int32_t other = vocab_find(m, it->string, n, h, TOK_MODEL);
        if (other >= 0) {
            set_err(err, errlen, "vocab[\"%s\"]: token listed twice (ids %d and %d)", it->string,
                    other, id);
            return -1;
        }
        if (m->tok[id]) {
            set_err(err, errlen, "vocab[\"%s\"]: id %d is already the id of \"%s\"", it->string, id,
                    m->tok[id]);
            return -1;
        }
        memcpy(p, it->string, n + 1);
        m->tok[id] = p;
        m->tok_len[id] = (uint32_t)n;
        m->tok_flags[id] = TOK_MODEL;
        vocab_put(m, h, id);
        p += n + 1;
    }
    return 0;
}

/* ------------------------------------------------------------- merges */

/* Merges are resolved in batches: the three vocabulary slots of every
 * merge in a batch are prefetched before any is read, so the cache misses
 * of a 515k-merge file overlap instead of queueing (Gemma-3's bpe_load:
 * 0.27 s one by one, 0.15 s in batches). */
#define MERGE_BATCH 64

typedef struct {
    const char *a, *b; /* the two parts (not NUL-terminated for "a b") */
    size_t alen, blen, cat; /* cat: offset of a + b[prefix..] in the batch buffer */
    size_t clen, idx;       /* merged length; index in "merges" */
    uint64_t ha, hb, hc;
} pending_merge;

typedef struct {
    pending_merge p[MERGE_BATCH];
    int n;
    char *buf; /* merged strings of the batch */
    size_t used, cap;
    uint32_t rank;
} merge_batch;

static inline void prefetch_slot(const bpe_model *m, uint64_t h) {
#if defined(__GNUC__)
    __builtin_prefetch(&m->vtab[(size_t)h & m->vmask]);
#else
    (void)m, (void)h;
#endif
}

static int batch_flush(bpe_model *m, merge_batch *mb, char *err, size_t errlen) {
    for (int j = 0; j < mb->n; j++) {
        const pending_merge *q = &mb->p[j];
        const char *cat = mb->buf + q->cat;
        int32_t ia = vocab_find(m, q->a, q->alen, q->ha, TOK_MODEL);
        int32_t ib = vocab_find(m, q->b, q->blen, q->hb, TOK_MODEL);
        if (ia < 0 || ib < 0) {
            set_err(err, errlen, "merges[%zu] (\"%.*s\" \"%.*s\"): \"%.*s\" is not in the vocabulary",
                    q->idx, (int)q->alen, q->a, (int)q->blen, q->b, (int)(ia < 0 ? q->alen : q->blen),
                    ia < 0 ? q->a : q->b);
            return -1;
        }
        int32_t ic = vocab_find(m, cat, q->clen, q->hc, TOK_MODEL);
        if (ic < 0) {
            set_err(err, errlen,
                    "merges[%zu] (\"%.*s\" \"%.*s\"): the merged token \"%.*s\" is not in the vocabulary",
                    q->idx, (int)q->alen, q->a, (int)q->blen, q->b, (int)q->clen, cat);
            return -1;
        }
        merge_put(m, ia, ib, mb->rank++, ic);
    }
    mb->n = 0;
    mb->used = 0;
    return 0;
}

/* HF (models/bpe/serialization.rs): merges are either all "a b" strings
 * (split on ' ' into exactly two parts; lines starting with "#version" are
 * skipped and take no rank) or all ["a", "b"] pairs; a mix is an error. The
 * rank is the position among the kept entries. The merged token is
 * a + b without b's first len(continuing_subword_prefix) bytes. Errors name
 * the first bad entry. */
static int load_merges(bpe_model *m, const cJSON *merges, char *err, size_t errlen) {
    if (!cJSON_IsArray(merges)) {
        set_err(err, errlen, "\"merges\": %s", merges ? "expected an array" : "missing");
        return -1;
    }
    size_t n = (size_t)cJSON_GetArraySize(merges), slots = pow2_at_least(2 * n + 16);
    m->mtab = malloc(slots * sizeof *m->mtab);
    if (!m->mtab) {
        set_err(err, errlen, "out of memory for %zu merges", n);
        return -1;
    }
    m->mmask = slots - 1;
    for (size_t i = 0; i < slots; i++) m->mtab[i].key = UINT64_MAX;

    const cJSON *it, *first = merges->child;
    int legacy = first && cJSON_IsString(first);
    merge_batch *mb = calloc(1, sizeof *mb);
    size_t idx = 0;
    int rc = -1;
    if (!mb) { set_err(err, errlen, "out of memory"); return -1; }
    cJSON_ArrayForEach(it, merges) {
        pending_merge *q = &mb->p[mb->n];
        q->idx = idx++;
        if (legacy) {
            const char *s = cJSON_IsString(it) ? it->valuestring : NULL, *sp = s ? strchr(s, ' ') : NULL;
            if (s && strncmp(s, "#version", 8) == 0) continue;
            if (!s || !sp || strchr(sp + 1, ' ')) {
                if (batch_flush(m, mb, err, errlen)) goto done;
                if (!s) set_err(err, errlen, "merges[%zu]: expected a string \"a b\" like merges[0]", q->idx);
                else set_err(err, errlen, "merges[%zu] = \"%s\": expected two tokens separated by one space",
                             q->idx, s);
                goto done;
            }
            q->a = s;
            q->alen = (size_t)(sp - s);
            q->b = sp + 1;
        } else {
            const cJSON *x = cJSON_IsArray(it) ? it->child : NULL, *y = x ? x->next : NULL;
            if (!cJSON_IsString(x) || !cJSON_IsString(y) || y->next) {
                if (batch_flush(m, mb, err, errlen)) goto done;
                set_err(err, errlen, "merges[%zu]: expected a pair [\"a\", \"b\"] like merges[0]", q->idx);
                goto done;
            }
            q->a = x->valuestring;
            q->alen = strlen(q->a);
            q->b = y->valuestring;
        }
        q->blen = strlen(q->b);
        size_t pl = m->prefix_len;
        if (q->blen < pl || (pl < q->blen && ((unsigned char)q->b[pl] & 0xC0) == 0x80)) {
            if (batch_flush(m, mb, err, errlen)) goto done;
            set_err(err, errlen, "merges[%zu]: \"%s\" cannot lose its %zu-byte continuing_subword_prefix",
                    q->idx, q->b, pl);
            goto done;
        }
        q->clen = q->alen + q->blen - pl;
        if (mb->used + q->clen > mb->cap) {
            size_t c = 2 * (mb->used + q->clen) + 256;
            char *nb = realloc(mb->buf, c);
            if (!nb) { set_err(err, errlen, "out of memory"); goto done; }
            mb->buf = nb;
            mb->cap = c;
        }
        q->cat = mb->used;
        memcpy(mb->buf + q->cat, q->a, q->alen);
        memcpy(mb->buf + q->cat + q->alen, q->b + pl, q->blen - pl);
        mb->used += q->clen;
        q->ha = hash_bytes(q->a, q->alen);
        q->hb = hash_bytes(q->b, q->blen);
        q->hc = hash_bytes(mb->buf + q->cat, q->clen);
        prefetch_slot(m, q->ha);
        prefetch_slot(m, q->hb);
        prefetch_slot(m, q->hc);
        if (++mb->n == MERGE_BATCH && batch_flush(m, mb, err, errlen)) goto done;
    }
    rc = batch_flush(m, mb, err, errlen);
done:
    free(mb->buf);
    free(mb);
    return rc;
}

/* ------------------------------------------------------------- load */

bpe_model *bpe_load(const cJSON *model, char *err, size_t errlen) {
    set_err(err, errlen, "%s", "");
    if (!cJSON_IsObject(model)) {
        set_err(err, errlen, "expected the \"model\" object");
        return NULL;
    }
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(model, "type");
    if (type && !(cJSON_IsString(type) && strcmp(type->valuestring, "BPE") == 0)) {
        set_err(err, errlen, "\"type\": expected \"BPE\"");
        return NULL;
    }
    bpe_model *m = calloc(1, sizeof *m);
    if (!m) {
        set_err(err, errlen, "out of memory");
        return NULL;
    }
    m->unk_id = -1;
    const cJSON *drop = cJSON_GetObjectItemCaseSensitive(model, "dropout");
    if (drop && !cJSON_IsNull(drop)) {
        /* BPE-dropout samples a random segmentation on every call; nothing
         * byte-exact can reproduce it, so refuse rather than ignore it. */
        if (!cJSON_IsNumber(drop) || drop->valuedouble < 0 || drop->valuedouble > 1) {
            set_err(err, errlen, "\"dropout\": expected null or a number in [0, 1]");
            goto fail;
        }
        if (drop->valuedouble > 0) {
            set_err(err, errlen, "\"dropout\" = %g: BPE-dropout is random and not supported; set it to null",
                    drop->valuedouble);
            goto fail;
        }
    }
    if (opt_string(model, "continuing_subword_prefix", &m->prefix, &m->prefix_len, err, errlen) ||
        opt_string(model, "end_of_word_suffix", &m->suffix, &m->suffix_len, err, errlen) ||
        opt_string(model, "unk_token", &m->unk, NULL, err, errlen) ||
        opt_bool(model, "fuse_unk", &m->fuse_unk, err, errlen) ||
        opt_bool(model, "byte_fallback", &m->byte_fallback, err, errlen) ||
        opt_bool(model, "ignore_merges", &m->ignore_merges, err, errlen))
        goto fail;
    /* A "" unk_token is a real (if odd) token name; opt_string dropped it. */
    const cJSON *unk = cJSON_GetObjectItemCaseSensitive(model, "unk_token");
    if (cJSON_IsString(unk) && !m->unk && !(m->unk = calloc(1, 1))) goto fail;

    if (load_vocab(m, cJSON_GetObjectItemCaseSensitive(model, "vocab"), err, errlen) ||
        load_merges(m, cJSON_GetObjectItemCaseSensitive(model, "merges"), err, errlen))
        goto fail;

    /* HF looks the unk token up only when a character needs it, and fails
     * then (UnkTokenOutOfVocabulary); we resolve it once. */
    if (m->unk) m->unk_id = model_id(m, m->unk, strlen(m->unk));
    for (int b = 0; b < 256; b++) {
        char name[8];
        snprintf(name, sizeof name, "<0x%02X>", b);
        m->byte_id[b] = model_id(m, name, 6);
    }
    for (int cp = 0; cp < CHAR_TABLE; cp++) {
        char c[2];
        size_t n = 1;
        if (cp < 0x80) c[0] = (char)cp;
        else { c[0] = (char)(0xC0 | (cp >> 6)); c[1] = (char)(0x80 | (cp & 0x3F)); n = 2; }
        m->char_id[cp] = model_id(m, c, n);
    }
    return m;
fail:
    if (err && errlen && !err[0]) set_err(err, errlen, "out of memory");
    bpe_free(m);
    return NULL;
}

void bpe_free(bpe_model *m) {
    if (!m) return;
    for (size_t i = 0; i < m->n_added; i++) free(m->added[i]);
    free(m->added);
    free(m->tok);
    free(m->tok_len);
    free(m->tok_flags);
    free(m->arena);
    free(m->vtab);
    free(m->mtab);
    free(m->prefix);
    free(m->suffix);
    free(m->unk);
    free(m);
}

int32_t bpe_vocab_size(const bpe_model *m) { return m->n_ids; }

int32_t bpe_token_to_id(const bpe_model *m, const char *s, size_t n) {
    return vocab_find(m, s, n, hash_bytes(s, n), TOK_MODEL | TOK_ADDED);
}

const char *bpe_id_to_token(const bpe_model *m, int32_t id, size_t *n) {
    if (id < 0 || id >= m->n_ids || !m->tok[id]) return NULL;
    if (n) *n = m->tok_len[id];
    return m->tok[id];
}

int bpe_byte_fallback(const bpe_model *m) { return m->byte_fallback; }

size_t bpe_memory(const bpe_model *m) {
    size_t arena = 0;
    for (int32_t i = 0; i < m->n_ids; i++)
        if (m->tok_flags[i] & TOK_MODEL) arena += m->tok_len[i] + 1;
    size_t added = 0;
    for (size_t i = 0; i < m->n_added; i++) added += strlen(m->added[i]) + 1;
    return sizeof *m + m->ids_cap * (sizeof *m->tok + sizeof *m->tok_len + 1) + arena + added +
           m->added_cap * sizeof *m->added + (m->vmask + 1) * sizeof *m->vtab +
           (m->mmask + 1) * sizeof *m->mtab;
}

int bpe_add_token(bpe_model *m, const char *s, size_t n, int32_t id) {
    if (id < 0 || id >= BPE_MAX_ID || n > UINT32_MAX) return -1;
    uint64_t h = hash_bytes(s, n);
    int32_t have = vocab_find(m, s, n, h, TOK_MODEL | TOK_ADDED);
    if (have >= 0) {
        if (have != id) return -1;
        m->tok_flags[id] |= TOK_ADDED;
        return 0;
    }
    if (id < m->n_ids && m->tok[id]) return -1; /* the id names another token */
    if (ids_reserve(m, (size_t)id + 1)) return -1;
    if (m->n_added == m->added_cap) {
        size_t c = m->added_cap ? 2 * m->added_cap : 64;
        char **a = realloc(m->added, c * sizeof *a);
        if (!a) return -1;
        m->added = a;
        m->added_cap = c;
    }
    /* Keep the table at most half full: rebuild it twice as large. */
    if (2 * (m->vcount + 1) > m->vmask + 1) {
        size_t slots = 2 * (m->vmask + 1);
        if (vocab_alloc(m, slots)) return -1;
        for (int32_t i = 0; i < m->n_ids; i++)
            if (m->tok[i]) vocab_put(m, hash_bytes(m->tok[i], m->tok_len[i]), i);
    }
    char *c = malloc(n + 1);
    if (!c) return -1;
    memcpy(c, s, n);
    c[n] = 0;
    m->added[m->n_added++] = c;
    m->tok[id] = c;
    m->tok_len[id] = (uint32_t)n;
    m->tok_flags[id] = TOK_ADDED;
    if (id >= m->n_ids) m->n_ids = id + 1;
    vocab_put(m, h, id);
    return 0;
}

