/*
 * tok_load.c - tokenizer.json -> immutable tables (tokenizer.h).
 *
 * Every component of the tokenizers we ship is supported; anything else is
 * a load error naming the JSON key, never a silent fallback (issue 4).
 */
#include <cJSON.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tok_internal.h"
#include "unicode.h"
#include "util.h"

/* ============================================================ byte level */

static int32_t g_b2c[256];
static int16_t g_c2b[324]; /* code points < 324 cover the whole alphabet */
static pthread_once_t g_bl_once = PTHREAD_ONCE_INIT;

static void bl_init(void) {
    int next = 256;
    for (int i = 0; i < 324; i++) g_c2b[i] = -1;
    for (int b = 0; b < 256; b++) {
        int keep = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174);
        g_b2c[b] = keep ? b : next++;
        g_c2b[g_b2c[b]] = (int16_t)b;
    }
}

int32_t tok_byte_cp(uint8_t b) {
    pthread_once(&g_bl_once, bl_init);
    return g_b2c[b];
}

int tok_cp_byte(int32_t cp) {
    pthread_once(&g_bl_once, bl_init);
    return cp >= 0 && cp < 324 ? g_c2b[cp] : -1;
}

/* ================================================================ errors */

static int fail(tok_tokenizer *t, const char *fmt, ...) {
    va_list ap;
    size_t k = (size_t)snprintf(t->err, sizeof t->err, "%s: ", t->name ? t->name : "tokenizer.json");
    if (k >= sizeof t->err) k = sizeof t->err - 1;
    va_start(ap, fmt);
    vsnprintf(t->err + k, sizeof t->err - k, fmt, ap);
    va_end(ap);
    return -1;
}

const char *tok_errmsg(const tok_tokenizer *t) { return t ? t->err : "out of memory"; }

/* ========================================================= JSON helpers */

static const char *jstr(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static int jbool(const cJSON *o, const char *key, int dflt) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsBool(v) ? cJSON_IsTrue(v) : dflt;
}

static char *dup_n(const char *s, size_t *n) {
    size_t len = strlen(s);
    char *d = malloc(len + 1);
    if (d) memcpy(d, s, len + 1);
    if (n) *n = len;
    return d;
}

/* An integer in [lo, hi] (JSON numbers are doubles: a huge or fractional
 * one is refused rather than converted). */
static int jint(const cJSON *x, double lo, double hi, int32_t *out) {
    if (!cJSON_IsNumber(x)) return -1;
    double d = x->valuedouble;
    if (!(d >= lo && d <= hi) || d != (double)(int32_t)d) return -1;
    *out = (int32_t)d;
    return 0;
}

/* "pattern": {"String": "x"} or {"Regex": "x"}: sets *lit or *re. */
static int load_pattern(tok_tokenizer *t, const cJSON *o, const char *where, char **lit, size_t *litlen,
                        tok_regex **re) {
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(o, "pattern");
    const char *s;
    if ((s = jstr(p, "String"))) {
        *lit = dup_n(s, litlen);
        return *lit ? 0 : fail(t, "out of memory");
    }
    if ((s = jstr(p, "Regex"))) {
        char err[512];
        *re = tok_regex_compile(s, err, sizeof err);
        return *re ? 0 : fail(t, "%s.pattern.Regex: %s", where, err);
    }
    return fail(t, "%s.pattern: expected {\"String\": ...} or {\"Regex\": ...}", where);
}

static int parse_scheme(tok_tokenizer *t, const cJSON *o, const char *where, prepend_scheme *out) {
    const char *s = jstr(o, "prepend_scheme");
    if (!s) { /* older files: add_prefix_space */
        *out = jbool(o, "add_prefix_space", 1) ? PS_ALWAYS : PS_NEVER;
        return 0;
    }
    if (!strcmp(s, "always")) *out = PS_ALWAYS;
    else if (!strcmp(s, "first")) *out = PS_FIRST;
    else if (!strcmp(s, "never")) *out = PS_NEVER;
    else return fail(t, "%s.prepend_scheme = \"%s\": expected always, first or never", where, s);
    return 0;
}

/* ============================================================ normalizer */

static int add_norm(tok_tokenizer *t, const cJSON *o, const char *where) {
    const char *type = jstr(o, "type");
    if (!type) return fail(t, "%s: missing \"type\"", where);
    if (!strcmp(type, "Sequence")) {
        const cJSON *arr = cJSON_GetObjectItemCaseSensitive(o, "normalizers"), *it;
        if (!cJSON_IsArray(arr)) return fail(t, "%s.normalizers: expected an array", where);
        int i = 0;
        cJSON_ArrayForEach(it, arr) {
            char w[256];
            snprintf(w, sizeof w, "%s.normalizers[%d]", where, i++);
            if (add_norm(t, it, w)) return -1;
        }
        return 0;
    }
    tok_norm *nn = realloc(t->norm, (size_t)(t->n_norm + 1) * sizeof *nn);
    if (!nn) return fail(t, "out of memory");
    t->norm = nn;
    tok_norm *n = &t->norm[t->n_norm];
    memset(n, 0, sizeof *n);
    t->n_norm++; /* counted at once, so tok_free releases a half-parsed entry */
    if (!strcmp(type, "NFC")) n->kind = N_NFC;
    else if (!strcmp(type, "NFD")) n->kind = N_NFD;
    else if (!strcmp(type, "NFKC")) n->kind = N_NFKC;
    else if (!strcmp(type, "NFKD")) n->kind = N_NFKD;
    else if (!strcmp(type, "Lowercase")) n->kind = N_LOWERCASE;
    else if (!strcmp(type, "Strip")) {
        n->kind = N_STRIP;
        n->left = jbool(o, "strip_left", 1);
        n->right = jbool(o, "strip_right", 1);
    } else if (!strcmp(type, "Prepend")) {
        const char *s = jstr(o, "prepend");
        if (!s) return fail(t, "%s.prepend: expected a string", where);
        n->kind = N_PREPEND;
        n->a = dup_n(s, &n->alen);
    } else if (!strcmp(type, "Replace")) {
        const char *c = jstr(o, "content");
        if (!c) return fail(t, "%s.content: expected a string", where);
        n->kind = N_REPLACE;
        if (load_pattern(t, o, where, &n->a, &n->alen, &n->re)) return -1;
        n->b = dup_n(c, &n->blen);
    } else {
        return fail(t, "%s.type = \"%s\": normalizer not supported (supported: NFC, NFD, NFKC, "
                    "NFKD, Prepend, Replace, Lowercase, Strip, Sequence)", where, type);
    }
    return 0;
}

/* ========================================================= pre-tokenizer */

/* The regex ByteLevel(use_regex) applies: GPT-2's. */
static const char GPT2_RE[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

static int add_pre(tok_tokenizer *t, const cJSON *o, const char *where) {
    const char *type = jstr(o, "type");
    if (!type) return fail(t, "%s: missing \"type\"", where);
    if (!strcmp(type, "Sequence")) {
        const cJSON *arr = cJSON_GetObjectItemCaseSensitive(o, "pretokenizers"), *it;
        if (!cJSON_IsArray(arr)) return fail(t, "%s.pretokenizers: expected an array", where);
        int i = 0;
        cJSON_ArrayForEach(it, arr) {
            char w[256];
            snprintf(w, sizeof w, "%s.pretokenizers[%d]", where, i++);
            if (add_pre(t, it, w)) return -1;
        }
        return 0;
    }
    tok_pre *pp = realloc(t->pre, (size_t)(t->n_pre + 1) * sizeof *pp);
    if (!pp) return fail(t, "out of memory");
    t->pre = pp;
    tok_pre *p = &t->pre[t->n_pre];
    memset(p, 0, sizeof *p);
    t->n_pre++; /* counted at once, so tok_free releases a half-parsed entry */
    char err[512];
    if (!strcmp(type, "ByteLevel")) {
        p->kind = P_BYTELEVEL;
        p->add_prefix_space = jbool(o, "add_prefix_space", 1);
        if (jbool(o, "use_regex", 1) && !(p->re = tok_regex_compile(GPT2_RE, err, sizeof err)))
            return fail(t, "%s: %s", where, err);
        t->byte_level = 1;
    } else if (!strcmp(type, "Split")) {
        p->kind = P_SPLIT;
        if (load_pattern(t, o, where, &p->lit, &p->litlen, &p->re)) return -1;
        const char *b = jstr(o, "behavior");
        if (!b) return fail(t, "%s.behavior: expected a string", where);
        if (!strcmp(b, "Removed")) p->beh = B_REMOVED;
        else if (!strcmp(b, "Isolated")) p->beh = B_ISOLATED;
        else if (!strcmp(b, "MergedWithPrevious")) p->beh = B_MERGED_PREV;
        else if (!strcmp(b, "MergedWithNext")) p->beh = B_MERGED_NEXT;
        else if (!strcmp(b, "Contiguous")) p->beh = B_CONTIGUOUS;
        else return fail(t, "%s.behavior = \"%s\": unknown", where, b);
        p->invert = jbool(o, "invert", 0);
    } else if (!strcmp(type, "Digits")) {
        p->kind = P_DIGITS;
        p->individual = jbool(o, "individual_digits", 0);
    } else if (!strcmp(type, "Metaspace")) {
        p->kind = P_METASPACE;
        const char *r = jstr(o, "replacement");
        p->lit = dup_n(r ? r : "\xe2\x96\x81", &p->litlen);
        if (parse_scheme(t, o, where, &p->scheme)) return -1;
        p->split = jbool(o, "split", 1);
    } else if (!strcmp(type, "Whitespace")) {
        p->kind = P_WHITESPACE;
        if (!(p->re = tok_regex_compile("\\w+|[^\\w\\s]+", err, sizeof err)))
            return fail(t, "%s: %s", where, err);
    } else if (!strcmp(type, "WhitespaceSplit")) {
        p->kind = P_WSSPLIT;
    } else {
        return fail(t, "%s.type = \"%s\": pre-tokenizer not supported (supported: ByteLevel, "
                    "Split, Digits, Metaspace, Whitespace, WhitespaceSplit, Sequence)", where, type);
    }
    return 0;
}

/* ======================================================= post-processor */

static int32_t special_id(tok_tokenizer *t, const cJSON *specials, const char *name, const char *where,
                          int32_t *ids, int *n, int max) {
    const cJSON *sp = cJSON_GetObjectItemCaseSensitive(specials, name);
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(sp, "ids"), *it;
    if (!cJSON_IsArray(arr)) return fail(t, "%s: special token \"%s\" has no \"ids\"", where, name);
    cJSON_ArrayForEach(it, arr) {
        if (*n >= max || jint(it, 0, INT32_MAX - 1, &ids[*n]))
            return fail(t, "%s: special token \"%s\": expected at most %d ids in [0, 2^31 - 1)", where, name, max);
        (*n)++;
    }
    return 0;
}

static int add_post(tok_tokenizer *t, const cJSON *o, const char *where) {
    const char *type = jstr(o, "type");
    if (!type) return fail(t, "%s: missing \"type\"", where);
    if (!strcmp(type, "Sequence")) {
        const cJSON *arr = cJSON_GetObjectItemCaseSensitive(o, "processors"), *it;
        int i = 0;
        cJSON_ArrayForEach(it, arr) {
            char w[256];
            snprintf(w, sizeof w, "%s.processors[%d]", where, i++);
            if (add_post(t, it, w)) return -1;
        }
        return 0;
    }
    if (!strcmp(type, "ByteLevel")) {
        t->post_trim = jbool(o, "trim_offsets", 1);
        t->post_prefix = jbool(o, "add_prefix_space", 1);
        return 0;
    }
    if (!strcmp(type, "TemplateProcessing")) {
        const cJSON *single = cJSON_GetObjectItemCaseSensitive(o, "single"), *it;
        const cJSON *specials = cJSON_GetObjectItemCaseSensitive(o, "special_tokens");
        int seen_a = 0;
        cJSON_ArrayForEach(it, single) {
            const cJSON *st = cJSON_GetObjectItemCaseSensitive(it, "SpecialToken");
            if (st) {
                const char *id = jstr(st, "id");
                if (!id) return fail(t, "%s.single: SpecialToken without id", where);
                if (seen_a ? special_id(t, specials, id, where, t->post_ids, &t->n_post_ids, 8)
                           : special_id(t, specials, id, where, t->pre_ids, &t->n_pre_ids, 8))
                    return -1;
            } else if (cJSON_GetObjectItemCaseSensitive(it, "Sequence")) {
                seen_a = 1;
            } else {
                return fail(t, "%s.single: expected SpecialToken or Sequence items", where);
            }
        }
        return 0;
    }
    return fail(t, "%s.type = \"%s\": post-processor not supported (supported: "
                "TemplateProcessing, ByteLevel, Sequence)", where, type);
}

/* ============================================================== decoder */

static int add_dec(tok_tokenizer *t, const cJSON *o, const char *where) {
    const char *type = jstr(o, "type");
    if (!type) return fail(t, "%s: missing \"type\"", where);
    if (!strcmp(type, "Sequence")) {
        const cJSON *arr = cJSON_GetObjectItemCaseSensitive(o, "decoders"), *it;
        int i = 0;
        cJSON_ArrayForEach(it, arr) {
            char w[256];
            snprintf(w, sizeof w, "%s.decoders[%d]", where, i++);
            if (add_dec(t, it, w)) return -1;
        }
        return 0;
    }
    tok_dec *dd = realloc(t->dec, (size_t)(t->n_dec + 1) * sizeof *dd);
    if (!dd) return fail(t, "out of memory");
    t->dec = dd;
    tok_dec *d = &t->dec[t->n_dec];
    memset(d, 0, sizeof *d);
    t->n_dec++; /* counted at once, so tok_free releases a half-parsed entry */
    if (!strcmp(type, "ByteLevel")) d->kind = D_BYTELEVEL;
    else if (!strcmp(type, "ByteFallback")) d->kind = D_BYTEFALLBACK;
    else if (!strcmp(type, "Fuse")) d->kind = D_FUSE;
    else if (!strcmp(type, "Strip")) {
        const char *c = jstr(o, "content");
        d->kind = D_STRIP;
        d->a = dup_n(c ? c : " ", &d->alen);
        const cJSON *a = cJSON_GetObjectItemCaseSensitive(o, "start"), *b = cJSON_GetObjectItemCaseSensitive(o, "stop");
        int32_t x = 0, y = 0;
        if ((a && jint(a, 0, 1 << 20, &x)) || (b && jint(b, 0, 1 << 20, &y)))
            return fail(t, "%s: Strip start and stop must be integers in [0, 2^20]", where);
        d->start = x;
        d->stop = y;
    } else if (!strcmp(type, "Replace")) {
        const cJSON *p = cJSON_GetObjectItemCaseSensitive(o, "pattern");
        const char *s = jstr(p, "String"), *c = jstr(o, "content");
        if (!s || !c) return fail(t, "%s: Replace decoder needs pattern.String and content", where);
        d->kind = D_REPLACE;
        d->a = dup_n(s, &d->alen);
        d->b = dup_n(c, &d->blen);
    } else if (!strcmp(type, "Metaspace")) {
        const char *r = jstr(o, "replacement");
        d->kind = D_METASPACE;
        d->a = dup_n(r ? r : "\xe2\x96\x81", &d->alen);
        if (parse_scheme(t, o, where, &d->scheme)) return -1;
    } else {
        return fail(t, "%s.type = \"%s\": decoder not supported (supported: ByteLevel, "
                    "ByteFallback, Fuse, Strip, Replace, Metaspace, Sequence)", where, type);
    }
    return 0;
}

/* ========================================================= added tokens */


/* Inserts added token k's match string into trie w. */
static int trie_insert(tok_tokenizer *t, int w, int k) {
    const tok_added_tok *a = &t->added[k];
    int32_t node = 0;
    for (size_t i = 0; i < a->mlen; i++) {
        uint8_t c = (uint8_t)a->match[i];
        int32_t ch = node ? t->trie[w][node].child : t->root[w][c];
        while (node && ch >= 0 && t->trie[w][ch].byte != c) ch = t->trie[w][ch].sibling;
        if (ch < 0) {
            if (t->n_trie[w] == t->trie_cap[w]) {
                int32_t cap = t->trie_cap[w] ? 2 * t->trie_cap[w] : 256;
                struct tok_trie *q = realloc(t->trie[w], (size_t)cap * sizeof *q);
                if (!q) return -1;
                t->trie[w] = q;
                t->trie_cap[w] = cap;
            }
            ch = t->n_trie[w]++;
            t->trie[w][ch] = (struct tok_trie){.child = -1, .sibling = -1, .tok = -1, .byte = c};
            if (node) { t->trie[w][ch].sibling = t->trie[w][node].child; t->trie[w][node].child = ch; }
            else t->root[w][c] = ch;
        }
        node = ch;
    }
    if (t->trie[w][node].tok < 0) t->trie[w][node].tok = k;
    else { /* same match as an earlier token: chain it after the last one */
        int32_t j = t->trie[w][node].tok;
        while (t->dup_next[j] >= 0) j = t->dup_next[j];
        t->dup_next[j] = k;
    }
    return 0;
}

/* Leftmost-longest matching of added tokens walks a trie from each
 * position instead of trying every token (Gemma-3 has 6415). */
static int build_tries(tok_tokenizer *t) {
    memset(t->root, 0xff, sizeof t->root);
    t->dup_next = malloc((size_t)(t->n_added ? t->n_added : 1) * sizeof *t->dup_next);
    if (!t->dup_next) return fail(t, "out of memory");
    for (int w = 0; w < 2; w++) {
        t->n_trie[w] = 1; /* node 0: the root */
        t->trie_cap[w] = 256;
        if (!(t->trie[w] = malloc(256 * sizeof *t->trie[w]))) return fail(t, "out of memory");
        t->trie[w][0] = (struct tok_trie){.child = -1, .sibling = -1, .tok = -1, .byte = 0};
    }
    for (int k = 0; k < t->n_added; k++) {
        const tok_added_tok *a = &t->added[k];
        int w = a->normalized && t->n_norm;
        t->dup_next[k] = -1;
        if (!a->mlen) continue; /* normalized to nothing: can never match */
        if (w) t->any_norm_added = 1; else t->any_raw_added = 1;
        if (trie_insert(t, w, k)) return fail(t, "out of memory");
    }
    return 0;
}

static int load_added(tok_tokenizer *t, const cJSON *arr) {
    const cJSON *it;
    int n = cJSON_GetArraySize(arr), i = 0;
    t->added = calloc((size_t)(n ? n : 1), sizeof *t->added);
    if (!t->added) return fail(t, "out of memory");
    int32_t model_size = bpe_vocab_size(t->bpe);
    cJSON_ArrayForEach(it, arr) {
        tok_added_tok *a = &t->added[i];
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(it, "id");
        const char *c = jstr(it, "content");
        if (jint(id, 0, INT32_MAX - 1, &a->id) || !c || !c[0])
            return fail(t, "added_tokens[%d]: needs an integer \"id\" in [0, 2^31 - 1) and a non-empty \"content\"", i);
        a->content = dup_n(c, &a->len);
        t->n_added = i + 1; /* so tok_free releases it if the rest fails */
        if (!a->content) return fail(t, "out of memory");
        a->special = jbool(it, "special", 0);
        a->single_word = jbool(it, "single_word", 0);
        a->lstrip = jbool(it, "lstrip", 0);
        a->rstrip = jbool(it, "rstrip", 0);
        a->normalized = jbool(it, "normalized", !a->special);
        /* HF (AddedVocabulary::add_tokens) does not trust "id": content
         * already known (model vocabulary or an earlier added token) keeps
         * its id, new content gets the next id after the model's vocabulary
         * and the added tokens so far. Saved files normally agree; where
         * they do not, HF's ids are the ones models were trained with. */
        int32_t have = bpe_token_to_id(t->bpe, a->content, a->len);
        if (have >= 0) a->id = have;
        else {
            a->id = model_size;
            for (int k = 0; k < i; k++)
                if (t->added[k].id >= model_size && t->added[k].id + 1 > a->id) a->id = t->added[k].id + 1;
        }
        if (bpe_add_token(t->bpe, a->content, a->len, a->id))
            return fail(t, "added_tokens[%d]: id %d of \"%s\" is already the id of another token", i, a->id, c);
        i++;
    }
    /* HF matches normalized added tokens on normalized text, so their
     * pattern is their normalized content. */
    for (i = 0; i < t->n_added; i++) {
        tok_added_tok *a = &t->added[i];
        if (a->normalized && t->n_norm) {
            if (tok_normalize_plain(t, a->content, a->len, &a->match, &a->mlen))
                return fail(t, "added_tokens[%d]: cannot normalize \"%s\"", i, a->content);
        } else {
            a->match = dup_n(a->content, &a->mlen);
        }
        if (!a->match) return fail(t, "out of memory");
    }
    return build_tries(t);
}

/* ================================================================ load */

/* ============================================================ glue */

static int cmp_i32(const void *a, const void *b) {
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

/* SentencePiece-style models see a whole segment as one word, which makes
 * BPE quadratic-ish and uncacheable. A merge can join the symbols on both
 * sides of a position only if its result, a vocabulary token, contains the
 * two characters there; so a word may be cut before "▁" wherever the
 * character before it is not in glue = { c : some token contains c"▁" }.
 * BPE on the pieces then gives exactly the tokens of the whole word (also
 * with ignore_merges: a whole-word token puts its characters in glue). Run
 * on the model vocabulary before added tokens join it. */
static int find_glue(tok_tokenizer *t) {
    static const char meta[] = "\xe2\x96\x81";
    size_t cap = 16;
    t->glue = malloc(cap * sizeof *t->glue);
    if (!t->glue) return fail(t, "out of memory");
    int32_t vs = bpe_vocab_size(t->bpe);
    for (int32_t id = 0; id < vs; id++) {
        size_t n;
        const char *s = bpe_id_to_token(t->bpe, id, &n);
        for (size_t i = 1; s && i + 3 <= n; i++) {
            if (memcmp(s + i, meta, 3)) continue;
            size_t p = i - 1;
            while (p > 0 && ((unsigned char)s[p] & 0xc0) == 0x80) p--;
            int32_t cp;
            if (!uni_decode(s + p, i - p, &cp)) continue;
            if ((size_t)t->n_glue == cap) {
                int32_t *q = realloc(t->glue, 2 * cap * sizeof *q);
                if (!q) return fail(t, "out of memory");
                t->glue = q;
                cap *= 2;
            }
            t->glue[t->n_glue++] = cp;
        }
    }
    qsort(t->glue, (size_t)t->n_glue, sizeof *t->glue, cmp_i32);
    int k = 0;
    for (int i = 0; i < t->n_glue; i++)
        if (!k || t->glue[k - 1] != t->glue[i]) t->glue[k++] = t->glue[i];
    t->n_glue = k;
    t->cut_meta = 1;
    return 0;
}

static int load(tok_tokenizer *t, const char *json, size_t n) {
    /* JSON text is UTF-8 (HF's serde_json refuses anything else); every
     * string the pipeline splices into text must be valid UTF-8 */
    size_t bad = uni_validate(json, n);
    if (bad != n) return fail(t, "not valid UTF-8 (byte %zu)", bad);
    cJSON *root = cJSON_ParseWithLength(json, n);
    if (!root) return fail(t, "not valid JSON (near byte %td)", cJSON_GetErrorPtr() ? cJSON_GetErrorPtr() - json : -1);
    int rc = -1;
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model"), *o;
    const char *mt = jstr(model, "type");
    char err[768];
    if (!cJSON_IsObject(model)) { fail(t, "\"model\": expected an object"); goto done; }
    if (mt && strcmp(mt, "BPE")) { fail(t, "model.type = \"%s\": only BPE models are supported", mt); goto done; }
    if (!(t->bpe = bpe_load(model, err, sizeof err))) { fail(t, "model: %s", err); goto done; }
    if ((o = cJSON_GetObjectItemCaseSensitive(root, "normalizer")) && !cJSON_IsNull(o) && add_norm(t, o, "normalizer")) goto done;
    if ((o = cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer")) && !cJSON_IsNull(o) && add_pre(t, o, "pre_tokenizer")) goto done;
    if ((o = cJSON_GetObjectItemCaseSensitive(root, "post_processor")) && !cJSON_IsNull(o) && add_post(t, o, "post_processor")) goto done;
    if ((o = cJSON_GetObjectItemCaseSensitive(root, "decoder")) && !cJSON_IsNull(o) && add_dec(t, o, "decoder")) goto done;
    if (!t->byte_level && find_glue(t)) goto done;
    o = cJSON_GetObjectItemCaseSensitive(root, "added_tokens");
    if (o && !cJSON_IsArray(o)) { fail(t, "added_tokens: expected an array"); goto done; }
    if (load_added(t, o)) goto done;
    t->vocab_size = bpe_vocab_size(t->bpe);
    for (int i = 0; i < t->n_added; i++)
        if (t->added[i].id + 1 > t->vocab_size) t->vocab_size = t->added[i].id + 1;
    for (int i = 0; i < t->n_pre_ids + t->n_post_ids; i++) {
        int32_t id = i < t->n_pre_ids ? t->pre_ids[i] : t->post_ids[i - t->n_pre_ids];
        if (id >= t->vocab_size) {
            fail(t, "post_processor: special token id %d is outside the vocabulary (size %d)", id, t->vocab_size);
            goto done;
        }
    }
    rc = 0;
done:
    cJSON_Delete(root);
    return rc;
}

int tok_load_json(tok_tokenizer **out, const char *json, size_t n, const char *name) {
    tok_tokenizer *t = calloc(1, sizeof *t);
    *out = t;
    if (!t) return -1;
    t->name = strdup(name ? name : "tokenizer.json");
    return load(t, json, n);
}

int tok_load(tok_tokenizer **out, const char *path) {
    tok_tokenizer *t = calloc(1, sizeof *t);
    *out = t;
    if (!t) return -1;
    t->name = strdup(path);
    size_t len;
    char *buf = sra_read_file(path, &len);
    if (!buf) return fail(t, "cannot open: %s", strerror(errno));
    int rc = load(t, buf, len);
    free(buf);
    return rc;
}

void tok_free(tok_tokenizer *t) {
    if (!t) return;
    for (int i = 0; i < t->n_norm; i++) { free(t->norm[i].a); free(t->norm[i].b); tok_regex_free(t->norm[i].re); }
    for (int i = 0; i < t->n_pre; i++) { free(t->pre[i].lit); tok_regex_free(t->pre[i].re); }
    for (int i = 0; i < t->n_dec; i++) { free(t->dec[i].a); free(t->dec[i].b); }
    for (int i = 0; i < t->n_added; i++) { free(t->added[i].content); free(t->added[i].match); }
    free(t->glue);
    free(t->trie[0]);
    free(t->trie[1]);
    free(t->dup_next);
    free(t->norm);
    free(t->pre);
    free(t->dec);
    free(t->added);
    bpe_free(t->bpe);
    free(t->name);
    free(t);
}

/* ============================================================= lookups */

int32_t tok_vocab_size(const tok_tokenizer *t) { return t->vocab_size; }
int32_t tok_token_id(const tok_tokenizer *t, const char *s, size_t n) { return bpe_token_to_id(t->bpe, s, n); }
const char *tok_token_str(const tok_tokenizer *t, int32_t id, size_t *n) { return bpe_id_to_token(t->bpe, id, n); }
int tok_n_added(const tok_tokenizer *t) { return t->n_added; }
int32_t tok_added(const tok_tokenizer *t, int i, const char **content, int *special) {
    if (i < 0 || i >= t->n_added) return -1;
    if (content) *content = t->added[i].content;
    if (special) *special = t->added[i].special;
    return t->added[i].id;
}
int32_t tok_bos_id(const tok_tokenizer *t) { return t->n_pre_ids ? t->pre_ids[0] : -1; }
int32_t tok_eos_id(const tok_tokenizer *t) { return t->n_post_ids ? t->post_ids[t->n_post_ids - 1] : -1; }
