/*
 * tok_bpe_encode.c - encoding words with the BPE model (tok_bpe.h): the
 * merge loop and the per-session word cache. The tables come from
 * tok_bpe.c (tok_bpe_internal.h).
 *
 * Encoding follows HF tokenizers 0.22 `BPE::merge_word` and
 * `Word::merge_all` step by step (the comments name the HF behaviour each
 * branch reproduces); see tok_bpe.h for the observable rules.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tok_bpe_internal.h"
#include "util.h"

/* The word cache of a session has two parts. Short words (the bulk of
 * natural text) live in a 2-way set-associative table of 64-byte entries
 * that hold the word and its tokens inline, so a hit costs one cache line;
 * a new word evicts the less recently used of its two ways, so frequent
 * words stay. Other words shorter than 256 bytes (HF's MAX_LENGTH, which
 * also lets offsets fit a byte) go to an arena table that is cleared
 * wholesale when full. */
#define SMALL_WORD 26                  /* word bytes an inline entry holds */
#define SMALL_TOKS 5                   /* tokens an inline entry holds */
#define SMALL_SETS (1u << 15)          /* x 2 ways x 64 B = 4 MiB */
#define BIG_WORD 256
#define BIG_SLOTS (1u << 14)
#define BIG_ENTRIES (BIG_SLOTS / 2)
#define BIG_WORD_BYTES (1u << 19)
#define BIG_TOKENS (1u << 17)

/* ============================================================== session */

typedef struct {
    int32_t id;
    uint32_t len;  /* bytes of the word this symbol stands for; 0: merged away */
    int32_t prev, next;
} sym;

typedef struct {
    uint64_t key;  /* rank << 32 | position of the left symbol: the heap order */
    int32_t left, right, merged; /* the pair when pushed, and its merge */
} hentry;

typedef struct {
    uint32_t tag;        /* high half of the word's hash */
    uint8_t len, ntok;   /* len 0: empty */
    char word[SMALL_WORD];
    int32_t ids[SMALL_TOKS];
    uint8_t start[SMALL_TOKS], end[SMALL_TOKS];
} small_entry;
_Static_assert(sizeof(small_entry) == 64, "a small cache entry is one cache line");

typedef struct {
    uint32_t tag;     /* high half of the word's hash */
    uint32_t word;    /* offset in big_words */
    uint32_t tok;     /* offset in big_toks */
    uint16_t len;     /* word bytes; 0: empty slot */
    uint16_t ntok;
} big_slot;

typedef struct {
    int32_t id;
    uint8_t start, end;
} big_tok;

struct bpe_session {
    const bpe_model *m;
    char err[256];
    sym *syms;
    size_t syms_cap;
    hentry *heap;
    size_t heap_n, heap_cap;
    char *key; /* prefix + character + suffix, for one lookup */
    size_t key_cap;
    int32_t *ids; /* the result of the last miss */
    uint32_t *starts, *ends;
    size_t out_cap;
    small_entry *small; /* (SMALL_SETS, 2), way 0 the more recently used */
    void *small_mem;    /* its allocation */
    big_slot *big;      /* (BIG_SLOTS) */
    char *big_words;
    big_tok *big_toks;
    size_t big_entries, big_word_used, big_tok_used;
};

bpe_session *bpe_session_new(const bpe_model *m) {
    bpe_session *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->m = m;
    /* calloc'ed (pages zeroed lazily by the kernel), aligned by hand */
    s->small_mem = calloc(1, 2 * SMALL_SETS * sizeof *s->small + 64);
    s->small = (small_entry *)(((uintptr_t)s->small_mem + 63) & ~(uintptr_t)63);
    s->big = calloc(BIG_SLOTS, sizeof *s->big);
    s->big_words = malloc(BIG_WORD_BYTES);
    s->big_toks = malloc(BIG_TOKENS * sizeof *s->big_toks);
    if (!s->small_mem || !s->big || !s->big_words || !s->big_toks) {
        bpe_session_free(s);
        return NULL;
    }
    return s;
}

void bpe_session_free(bpe_session *s) {
    if (!s) return;
    free(s->syms);
    free(s->heap);
    free(s->key);
    free(s->ids);
    free(s->starts);
    free(s->ends);
    free(s->small_mem);
    free(s->big);
    free(s->big_words);
    free(s->big_toks);
    free(s);
}

const char *bpe_session_error(const bpe_session *s) { return s->err; }

/* ------------------------------------------------------------- utf-8 */

/* Length of the character at s[0..n), or 0 if it is not valid UTF-8 (as
 * Rust's str: no overlong forms, surrogates or code points > U+10FFFF). */
static int utf8_char(const unsigned char *s, size_t n) {
    unsigned c = s[0];
    if (c < 0x80) return 1;
    if (c < 0xC2) return 0;
    if (c < 0xE0) return n >= 2 && (s[1] & 0xC0) == 0x80 ? 2 : 0;
    if (c < 0xF0) {
        if (n < 3 || (s[1] & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80) return 0;
        if (c == 0xE0 && s[1] < 0xA0) return 0; /* overlong */
        if (c == 0xED && s[1] >= 0xA0) return 0; /* surrogate */
        return 3;
    }
    if (c < 0xF5) {
        if (n < 4 || (s[1] & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80 || (s[3] & 0xC0) != 0x80)
            return 0;
        if (c == 0xF0 && s[1] < 0x90) return 0;  /* overlong */
        if (c == 0xF4 && s[1] >= 0x90) return 0; /* > U+10FFFF */
        return 4;
    }
    return 0;
}

/* ----------------------------------------------------------- merging */

static void heap_push(bpe_session *s, hentry v) {
    size_t i = s->heap_n++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (s->heap[p].key <= v.key) break;
        s->heap[i] = s->heap[p];
        i = p;
    }
    s->heap[i] = v;
}

static hentry heap_pop(bpe_session *s) {
    hentry top = s->heap[0], v = s->heap[--s->heap_n];
    size_t i = 0, n = s->heap_n;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && s->heap[c + 1].key < s->heap[c].key) c++;
        if (s->heap[c].key >= v.key) break;
        s->heap[i] = s->heap[c];
        i = c;
    }
    if (n) s->heap[i] = v;
    return top;
}

static void push_pair(bpe_session *s, int32_t pos) {
    const sym *a = &s->syms[pos];
    int32_t right = s->syms[a->next].id;
    const mslot *ms = merge_find(s->m, a->id, right);
    if (ms) {
        hentry e = {(uint64_t)ms->rank << 32 | (uint32_t)pos, a->id, right, ms->id};
        heap_push(s, e);
    }
}

static inline void prefetch_merge(const bpe_model *m, int32_t a, int32_t b) {
#if defined(__GNUC__)
    uint64_t key = (uint64_t)(uint32_t)a << 32 | (uint32_t)b;
    __builtin_prefetch(&m->mtab[(size_t)hash_pair(key) & m->mmask]);
#else
    (void)m, (void)a, (void)b;
#endif
}

/* HF Word::merge_all: a min-heap of (rank, position) holds every adjacent
 * pair that has a merge; the lowest rank is applied first, the leftmost
 * among equal ranks. Entries go stale when a neighbour merges first: HF
 * skips an entry whose left symbol is gone, has no right neighbour, or
 * whose current pair no longer gives the same merged id. A pair's merged
 * token is the concatenation of its two tokens, so "same merged id" is
 * "same two ids", which the entry records: no table lookup to validate.
 * O(n log n) in the number of symbols. */
static void merge_heap(bpe_session *s, int32_t nsym) {
    const bpe_model *m = s->m;
    s->heap_n = 0;
    /* the first lookups miss the cache: start them all at once */
    for (int32_t i = 0; i + 1 < nsym; i++) prefetch_merge(m, s->syms[i].id, s->syms[i + 1].id);
    for (int32_t i = 0; i + 1 < nsym; i++) push_pair(s, i);
    while (s->heap_n) {
        hentry top = heap_pop(s);
        int32_t pos = (int32_t)(uint32_t)top.key;
        sym *a = &s->syms[pos];
        if (a->len == 0 || a->next < 0 || a->id != top.left) continue;
        sym *b = &s->syms[a->next];
        if (b->id != top.right) continue;
        a->id = top.merged;
        a->len += b->len;
        b->len = 0;
        a->next = b->next;
        if (a->next >= 0) s->syms[a->next].prev = pos;
        if (a->prev >= 0) prefetch_merge(m, s->syms[a->prev].id, a->id);
        if (a->next >= 0) prefetch_merge(m, a->id, s->syms[a->next].id);
        if (a->prev >= 0) push_pair(s, a->prev);
        if (a->next >= 0) push_pair(s, pos);
    }
}

/* The same for short words (most of them), without the heap: every
 * current adjacent pair keeps its rank in an array and each step merges
 * the minimum, the leftmost on ties. That is the heap's order exactly: the
 * heap's valid entries are the current pairs, and its position is the
 * left symbol's index, which grows left to right. O(n^2), faster below
 * SCAN_MAX symbols. */
#define SCAN_MAX 64
static void merge_scan(bpe_session *s, int32_t nsym) {
    const bpe_model *m = s->m;
    uint32_t rank[SCAN_MAX]; /* of the pair (i, next of i); UINT32_MAX: none */
    int32_t merged[SCAN_MAX];
    sym *y = s->syms;
    for (int32_t i = 0; i + 1 < nsym; i++) prefetch_merge(m, y[i].id, y[i + 1].id);
    for (int32_t i = 0; i < nsym; i++) {
        const mslot *ms = i + 1 < nsym ? merge_find(m, y[i].id, y[i + 1].id) : NULL;
        rank[i] = ms ? ms->rank : UINT32_MAX;
        merged[i] = ms ? ms->id : -1;
    }
    for (;;) {
        uint32_t best = UINT32_MAX;
        int32_t at = -1;
        for (int32_t i = 0; i >= 0; i = y[i].next)
            if (rank[i] < best) {
                best = rank[i];
                at = i;
            }
        if (at < 0) break;
        sym *a = &y[at], *b = &y[a->next];
        a->id = merged[at];
        a->len += b->len;
        b->len = 0;
        a->next = b->next;
        if (a->next >= 0) y[a->next].prev = at;
        if (a->prev >= 0) prefetch_merge(m, y[a->prev].id, a->id);
        if (a->next >= 0) prefetch_merge(m, a->id, y[a->next].id);
        if (a->prev >= 0) {
            const mslot *ms = merge_find(m, y[a->prev].id, a->id);
            rank[a->prev] = ms ? ms->rank : UINT32_MAX;
            merged[a->prev] = ms ? ms->id : -1;
        }
        const mslot *ms = a->next >= 0 ? merge_find(m, a->id, y[a->next].id) : NULL;
        rank[at] = ms ? ms->rank : UINT32_MAX;
        merged[at] = ms ? ms->id : -1;
    }
}

/* ---------------------------------------------------------- encoding */

static int out_reserve(bpe_session *s, size_t n) {
    if (n <= s->out_cap) return 0;
    size_t c = s->out_cap ? s->out_cap : 64;
    while (c < n) c *= 2;
    int32_t *a = realloc(s->ids, c * sizeof *a);
    if (!a) return -1;
    s->ids = a;
    uint32_t *b = realloc(s->starts, c * sizeof *b);
    if (!b) return -1;
    s->starts = b;
    uint32_t *e = realloc(s->ends, c * sizeof *e);
    if (!e) return -1;
    s->ends = e;
    s->out_cap = c;
    return 0;
}

static int add_sym(bpe_session *s, int32_t *nsym, int32_t id, uint32_t len) {
    if (*nsym == INT32_MAX) return -1;
    if (sra_grow((void **)&s->syms, &s->syms_cap, (size_t)*nsym + 1, sizeof *s->syms)) return -1;
    sym *y = &s->syms[*nsym];
    y->id = id;
    y->len = len;
    y->prev = *nsym - 1;
    y->next = -1;
    if (*nsym > 0) s->syms[*nsym - 1].next = *nsym;
    (*nsym)++;
    return 0;
}

/* Id of the character w[i..i+cl) as HF looks it up: with
 * continuing_subword_prefix unless first, end_of_word_suffix if last.
 * key and klen get the string looked up (byte fallback spells it out). */
static int32_t char_lookup(bpe_session *s, const char *w, size_t i, int cl, int last,
                           const char **key, size_t *klen) {
    const bpe_model *m = s->m;
    int pre = i > 0 && m->prefix, suf = last && m->suffix;
    if (!pre && !suf) {
        *key = w + i;
        *klen = (size_t)cl;
        const unsigned char *u = (const unsigned char *)w + i;
        if (cl == 1) return m->char_id[u[0]];
        if (cl == 2) return m->char_id[(u[0] & 0x1F) << 6 | (u[1] & 0x3F)];
        return model_id(m, w + i, (size_t)cl);
    }
    size_t n = (pre ? m->prefix_len : 0) + (size_t)cl + (suf ? m->suffix_len : 0), k = 0;
    if (sra_grow((void **)&s->key, &s->key_cap, n, 1)) return -2;
    if (pre) { memcpy(s->key, m->prefix, m->prefix_len); k = m->prefix_len; }
    memcpy(s->key + k, w + i, (size_t)cl);
    k += (size_t)cl;
    if (suf) memcpy(s->key + k, m->suffix, m->suffix_len);
    *key = s->key;
    *klen = n;
    return model_id(m, s->key, n);
}

/* HF BPE::merge_word then merge_all, into s->ids/starts/ends. Returns the
 * number of tokens or -1. */
static int encode_miss(bpe_session *s, const char *w, size_t n) {
    const bpe_model *m = s->m;
    int32_t nsym = 0;
    int have_unk = 0;
    uint32_t unk_len = 0;
    for (size_t i = 0; i < n;) {
        int cl = utf8_char((const unsigned char *)w + i, n - i);
        if (!cl) {
            snprintf(s->err, sizeof s->err, "BPE: word is not valid UTF-8 at byte %zu", i);
            return -1;
        }
        const char *key;
        size_t klen;
        int32_t id = char_lookup(s, w, i, cl, i + (size_t)cl == n, &key, &klen);
        if (id == -2) goto oom;
        if (id >= 0) {
            if (have_unk && add_sym(s, &nsym, m->unk_id, unk_len)) goto oom;
            have_unk = 0;
            if (add_sym(s, &nsym, id, (uint32_t)cl)) goto oom;
        } else {
            int done = 0;
            if (m->byte_fallback) {
                /* One <0xXX> per byte of what was looked up (prefix and
                 * suffix included), each 1 byte long, only if all exist.
                 * HF does not emit a pending unk first, so the unk of an
                 * earlier character lands after these bytes. */
                size_t k = 0;
                while (k < klen && m->byte_id[(unsigned char)key[k]] >= 0) k++;
                if (k == klen) {
                    for (k = 0; k < klen; k++)
                        if (add_sym(s, &nsym, m->byte_id[(unsigned char)key[k]], 1)) goto oom;
                    done = 1;
                }
            }
            if (!done && m->unk) {
                if (m->unk_id < 0) {
                    snprintf(s->err, sizeof s->err,
                             "BPE: unk_token \"%s\" is not in the vocabulary (needed for the character at byte %zu)",
                             m->unk, i);
                    return -1;
                }
                if (have_unk && m->fuse_unk) {
                    unk_len += (uint32_t)cl;
                } else {
                    if (have_unk && add_sym(s, &nsym, m->unk_id, unk_len)) goto oom;
                    have_unk = 1;
                    unk_len = (uint32_t)cl;
                }
            }
            /* else: no unk_token, so HF drops the character (and the
             * offsets of what follows shift, see tok_bpe.h) */
        }
        i += (size_t)cl;
    }
    if (have_unk && add_sym(s, &nsym, m->unk_id, unk_len)) goto oom;

    if (nsym > 1 && nsym <= SCAN_MAX) {
        merge_scan(s, nsym);
    } else if (nsym > SCAN_MAX) {
        if (sra_grow((void **)&s->heap, &s->heap_cap, 2 * (size_t)nsym, sizeof *s->heap)) goto oom;
        merge_heap(s, nsym);
    }

    /* Offsets: HF accumulates symbol lengths from 0; the tokenizer maps a
     * byte range to whole characters (NormalizedString alignments), which
     * we do here: start down to its character's first byte, end up to its
     * character's last. Clamped into the word (only a continuing prefix or
     * suffix spelt out in bytes can overrun it). */
    int ntok = 0;
    for (int32_t i = 0; i < nsym; i++) ntok += s->syms[i].len > 0;
    if (out_reserve(s, (size_t)ntok)) goto oom;
    size_t pos = 0, last_char = n;
    do last_char--; while (last_char > 0 && ((unsigned char)w[last_char] & 0xC0) == 0x80);
    int k = 0;
    for (int32_t i = 0; i < nsym; i++) {
        const sym *y = &s->syms[i];
        if (!y->len) continue;
        size_t a = pos, b = pos + y->len;
        pos = b;
        if (b > n) b = n;
        if (a > last_char) a = last_char;
        while (a > 0 && ((unsigned char)w[a] & 0xC0) == 0x80) a--;
        while (b < n && ((unsigned char)w[b] & 0xC0) == 0x80) b++;
        s->ids[k] = y->id;
        s->starts[k] = (uint32_t)a;
        s->ends[k] = (uint32_t)b;
        k++;
    }
    return ntok;
oom:
    snprintf(s->err, sizeof s->err, "BPE: out of memory");
    return -1;
}

/* ------------------------------------------------------------- cache */

static const small_entry *small_get(bpe_session *s, const char *w, size_t n, uint64_t h) {
    small_entry *e = &s->small[2 * ((size_t)h & (SMALL_SETS - 1))];
    uint32_t tag = (uint32_t)(h >> 32);
    if (e[0].tag == tag && e[0].len == n && memcmp(e[0].word, w, n) == 0) return &e[0];
    if (e[1].tag == tag && e[1].len == n && memcmp(e[1].word, w, n) == 0) {
        small_entry t = e[0]; /* way 1 hit: it becomes the more recent */
        e[0] = e[1];
        e[1] = t;
        return &e[0];
    }
    return NULL;
}

/* Remembers s->ids/starts/ends (ntok <= SMALL_TOKS) for w (n <= SMALL_WORD). */
static void small_put(bpe_session *s, const char *w, size_t n, uint64_t h, int ntok) {
    small_entry *e = &s->small[2 * ((size_t)h & (SMALL_SETS - 1))];
    e[1] = e[0];
    e[0].tag = (uint32_t)(h >> 32);
    e[0].len = (uint8_t)n;
    e[0].ntok = (uint8_t)ntok;
    memcpy(e[0].word, w, n);
    for (int k = 0; k < ntok; k++) {
        e[0].ids[k] = s->ids[k];
        e[0].start[k] = (uint8_t)s->starts[k];
        e[0].end[k] = (uint8_t)s->ends[k];
    }
}

static const big_slot *big_get(const bpe_session *s, const char *w, size_t n, uint64_t h) {
    uint32_t tag = (uint32_t)(h >> 32);
    for (size_t i = (size_t)h & (BIG_SLOTS - 1);; i = (i + 1) & (BIG_SLOTS - 1)) {
        const big_slot *c = &s->big[i];
        if (!c->len) return NULL;
        if (c->tag == tag && c->len == n && memcmp(s->big_words + c->word, w, n) == 0) return c;
    }
}

static void big_put(bpe_session *s, const char *w, size_t n, uint64_t h, int ntok) {
    if (s->big_entries >= BIG_ENTRIES || s->big_word_used + n > BIG_WORD_BYTES ||
        s->big_tok_used + (size_t)ntok > BIG_TOKENS) {
        memset(s->big, 0, BIG_SLOTS * sizeof *s->big);
        s->big_entries = s->big_word_used = s->big_tok_used = 0;
    }
    if ((size_t)ntok > BIG_TOKENS) return;
    size_t i = (size_t)h & (BIG_SLOTS - 1);
    while (s->big[i].len) i = (i + 1) & (BIG_SLOTS - 1);
    big_slot *c = &s->big[i];
    c->tag = (uint32_t)(h >> 32);
    c->word = (uint32_t)s->big_word_used;
    c->tok = (uint32_t)s->big_tok_used;
    c->len = (uint16_t)n;
    c->ntok = (uint16_t)ntok;
    memcpy(s->big_words + s->big_word_used, w, n);
    for (int k = 0; k < ntok; k++) {
        big_tok *t = &s->big_toks[s->big_tok_used + (size_t)k];
        t->id = s->ids[k];
        t->start = (uint8_t)s->starts[k];
        t->end = (uint8_t)s->ends[k];
    }
    s->big_word_used += n;
    s->big_tok_used += (size_t)ntok;
    s->big_entries++;
}

/* ------------------------------------------------------------- encode */

int bpe_encode_word(bpe_session *s, const char *w, size_t n, int32_t *ids, uint32_t *starts,
                    uint32_t *ends, size_t cap) {
    const bpe_model *m = s->m;
    if (n == 0) return 0; /* HF: an empty sequence has no tokens */
    if (n > (size_t)INT32_MAX) {
        snprintf(s->err, sizeof s->err, "BPE: word of %zu bytes is too long (at most %d)", n,
                 INT32_MAX);
        return -1;
    }
    uint64_t h = hash_bytes(w, n);
#if defined(__GNUC__)
    if (n <= SMALL_WORD) __builtin_prefetch(&s->small[2 * ((size_t)h & (SMALL_SETS - 1))]);
#endif
    /* HF BPE::tokenize_with_cache: with ignore_merges, a word that is a
     * vocabulary token as is (no prefix or suffix added) is that token. */
    if (m->ignore_merges) {
        int32_t id = vocab_find(m, w, n, h, TOK_MODEL);
        if (id >= 0) {
            if (cap >= 1) {
                ids[0] = id;
                starts[0] = 0;
                ends[0] = (uint32_t)n;
            }
            return 1;
        }
    }
    if (n <= SMALL_WORD) {
        const small_entry *e = small_get(s, w, n, h);
        if (e) {
            if (e->ntok <= cap)
                for (int k = 0; k < e->ntok; k++) {
                    ids[k] = e->ids[k];
                    starts[k] = e->start[k];
                    ends[k] = e->end[k];
                }
            return e->ntok;
        }
    }
    if (n < BIG_WORD) {
        const big_slot *c = big_get(s, w, n, h);
        if (c) {
            if (c->ntok <= cap) {
                const big_tok *t = s->big_toks + c->tok;
                for (int k = 0; k < c->ntok; k++) {
                    ids[k] = t[k].id;
                    starts[k] = t[k].start;
                    ends[k] = t[k].end;
                }
            }
            return c->ntok;
        }
    }
    int ntok = encode_miss(s, w, n);
    if (ntok < 0) return -1;
    if (n <= SMALL_WORD && ntok <= SMALL_TOKS) small_put(s, w, n, h, ntok);
    else if (n < BIG_WORD && ntok <= UINT16_MAX) big_put(s, w, n, h, ntok);
    if (ntok > 0 && (size_t)ntok <= cap) {
        memcpy(ids, s->ids, (size_t)ntok * sizeof *ids);
        memcpy(starts, s->starts, (size_t)ntok * sizeof *starts);
        memcpy(ends, s->ends, (size_t)ntok * sizeof *ends);
    }
    return ntok;
}
