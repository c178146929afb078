/*
 * sra-bpe - trains a byte-level BPE tokenizer and writes it as a Hugging
 * Face tokenizer.json (issue 9: the demo needs a teacher and a student with
 * different vocabularies; users need one for their own data).
 *
 *   sra-bpe --data FILE [--data FILE ...] --vocab-size N --out tokenizer.json
 *           [--min-frequency F] [--special TEXT]... [--max-bytes B] [--text-field NAME]
 *
 * What it does, as GPT-2's byte-level BPE:
 *   1. Reads the texts (format/dataset.h: .txt cut into documents, JSONL
 *      with a "text" field; bad records are skipped with a warning).
 *      Occurrences of the --special strings are cut out first, as HF's added
 *      tokens are split out of the text before pre-tokenization.
 *   2. Pre-tokenizes every piece with GPT-2's split regex (spans.h
 *      SPAN_GPT2_PATTERN on tok_regex's native matcher) and counts the
 *      distinct words.
 *   3. Starts from the 256 bytes (id = byte value) and repeatedly merges the
 *      most frequent adjacent pair of symbols. Ties go to the pair whose
 *      first token's bytes sort first, then the second's (memcmp order), so
 *      the result does not depend on hashing or input order beyond counts.
 *      A merge whose string is already a token (e.g. "a"+"bc" after
 *      "ab"+"c") reuses its id and adds no vocabulary entry, as HF's
 *      BpeTrainer does. Training stops when 256 + merged tokens + specials
 *      reaches --vocab-size or no pair occurs --min-frequency times.
 *   4. Writes tokenizer.json: model BPE (vocab, merges as [a, b] pairs, as
 *      HF 0.22 saves them), ByteLevel pre-tokenizer/decoder/post-processor
 *      like gpt2's, no normalizer, the specials as added_tokens with ids
 *      after the learned vocabulary. Token strings are bytes mapped through
 *      GPT-2's bytes_to_unicode table (space = "Ġ").
 *
 * Counting is incremental (each merge visits only the words holding the
 * pair, through per-pair word lists, and updates the neighbouring pairs'
 * counts; a lazy max-heap picks the next pair), so 1 MB trains a 4k
 * vocabulary in well under a second.
 *
 * Output is deterministic: the same inputs and flags give the same bytes.
 * It is written to OUT.tmp and renamed over OUT when complete. Errors name
 * the flag or file and exit 1 (2 for usage errors).
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dataset.h"
#include "spans.h"
#include "tok_regex.h"
#include "util.h"

#define MAX_DATA 256
#define MAX_SPECIAL 256
#define MAX_VOCAB 10000000L

static void usage(FILE *f) {
    fprintf(f,
            "usage: sra-bpe --data FILE [--data FILE ...] --vocab-size N --out PATH [options]\n"
            "Trains a byte-level BPE (GPT-2 pre-tokenization) and writes a Hugging Face tokenizer.json.\n"
            "  --data FILE          training text, repeatable: *.txt as is, anything else JSONL\n"
            "  --vocab-size N       total vocabulary: 256 bytes + merges + specials (required)\n"
            "  --out PATH           tokenizer.json to write (through PATH.tmp) (required)\n"
            "  --min-frequency F    stop early when no pair occurs F times (default 2)\n"
            "  --special TEXT       a special token, repeatable; ids follow the learned vocabulary\n"
            "  --max-bytes B        read at most B bytes of text (default 0 = all)\n"
            "  --text-field NAME    JSONL field holding the text (default \"text\")\n"
            "  -h, --help           this message\n"
            "example:\n"
            "  sra-bpe --data corpus.txt --vocab-size 4000 --special '<|endoftext|>' --out student/tokenizer.json\n");
}

static void *xrealloc(void *p, size_t n) {
    void *q = realloc(p, n ? n : 1);
    if (!q) {
        fprintf(stderr, "sra-bpe: out of memory (%zu bytes)\n", n);
        exit(1);
    }
    return q;
}

/* Grows *p to hold need elements of elem bytes (doubling). */
static void grow(void *pp, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap) return;
    if (sra_grow((void **)pp, cap, need, elem)) {
        fprintf(stderr, "sra-bpe: out of memory (%zu elements)\n", need);
        exit(1);
    }
}

static uint64_t hash_bytes(const char *s, size_t n) { /* FNV-1a, 64-bit */
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    return h;
}

/* ======================================================== string table */

/* Distinct byte strings, numbered 0, 1, 2, ... in order of insertion, in
 * one arena, with an open-addressing index. Used for words and tokens. */
typedef struct {
    char *arena;
    size_t arena_n, arena_cap;
    size_t *off;
    uint32_t *len;
    size_t n, cap;
    int32_t *slot; /* index + 1, 0 = empty; nslot a power of two */
    size_t nslot;
} strtab;

static const char *strtab_str(const strtab *t, size_t i, size_t *n) {
    *n = t->len[i];
    return t->arena + t->off[i];
}

static void strtab_rehash(strtab *t, size_t nslot) {
    free(t->slot);
    t->slot = calloc(nslot, sizeof *t->slot);
    if (!t->slot) { fprintf(stderr, "sra-bpe: out of memory\n"); exit(1); }
    t->nslot = nslot;
    for (size_t i = 0; i < t->n; i++) {
        size_t h = (size_t)hash_bytes(t->arena + t->off[i], t->len[i]) & (nslot - 1);
        while (t->slot[h]) h = (h + 1) & (nslot - 1);
        t->slot[h] = (int32_t)i + 1;
    }
}

/* Index of s[0..n), or -1 when absent and add is 0. */
static int32_t strtab_find(strtab *t, const char *s, size_t n, int add) {
    if (2 * (t->n + 1) > t->nslot) strtab_rehash(t, t->nslot ? 2 * t->nslot : 1024);
    size_t h = (size_t)hash_bytes(s, n) & (t->nslot - 1);
    while (t->slot[h]) {
        size_t i = (size_t)t->slot[h] - 1;
        if (t->len[i] == n && !memcmp(t->arena + t->off[i], s, n)) return (int32_t)i;
        h = (h + 1) & (t->nslot - 1);
    }
    if (!add) return -1;
    if (t->n >= INT32_MAX - 1) { fprintf(stderr, "sra-bpe: too many distinct words\n"); exit(1); }
    grow(&t->arena, &t->arena_cap, t->arena_n + n + 1, 1);
    size_t old_cap = t->cap;
    grow(&t->off, &t->cap, t->n + 1, sizeof *t->off);
    if (t->cap != old_cap) t->len = xrealloc(t->len, t->cap * sizeof *t->len);
    memcpy(t->arena + t->arena_n, s, n);
    t->off[t->n] = t->arena_n;
    t->len[t->n] = (uint32_t)n;
    t->arena_n += n;
    t->slot[h] = (int32_t)t->n + 1;
    return (int32_t)t->n++;
}

static void strtab_free(strtab *t) {
    free(t->arena);
    free(t->off);
    free(t->len);
    free(t->slot);
}

/* ========================================================= pre-tokenize */

typedef struct {
    strtab words;      /* distinct pre-tokens (raw bytes) */
    int64_t *count;    /* (words.n) occurrences */
    size_t count_cap;
    const tok_regex *re;
    uint64_t nwords;   /* pre-tokens seen, with repeats */
} corpus;

/* GPT-2 split of one piece of text (no special token inside). */
static void corpus_add_piece(corpus *c, const char *s, size_t n) {
    size_t pos = 0, ms, me;
    while (pos < n && tok_regex_find(c->re, s, n, pos, &ms, &me)) {
        if (me == ms) break; /* the pattern cannot match empty; never loop */
        int32_t w = strtab_find(&c->words, s + ms, me - ms, 1);
        if ((size_t)w >= c->count_cap) {
            size_t old = c->count_cap;
            grow(&c->count, &c->count_cap, (size_t)w + 1, sizeof *c->count);
            memset(c->count + old, 0, (c->count_cap - old) * sizeof *c->count);
        }
        c->count[w]++;
        c->nwords++;
        pos = me;
    }
}

/* First occurrence of pat (l >= 1 bytes) in s[0..n), or NULL (memmem is
 * a GNU extension). */
static const char *find_bytes(const char *s, size_t n, const char *pat, size_t l) {
    const char *end = s + n;
    while ((size_t)(end - s) >= l) {
        const char *p = memchr(s, pat[0], (size_t)(end - s) - l + 1);
        if (!p) return NULL;
        if (!memcmp(p, pat, l)) return p;
        s = p + 1;
    }
    return NULL;
}

/* Cuts the special strings out of a document (leftmost, then longest, as
 * HF's added-token split), pre-tokenizes what lies between them. */
static void corpus_add_text(corpus *c, const char *s, size_t n, char **special, int nspecial) {
    /* next hit of each special at or after pos; n = none, SIZE_MAX = not searched yet */
    size_t pos = 0, next[MAX_SPECIAL];
    for (int k = 0; k < nspecial; k++) next[k] = SIZE_MAX;
    while (pos < n) {
        size_t best = n, blen = 0;
        for (int k = 0; k < nspecial; k++) {
            size_t l = strlen(special[k]);
            if (next[k] == SIZE_MAX || next[k] < pos) {
                const char *hit = find_bytes(s + pos, n - pos, special[k], l);
                next[k] = hit ? (size_t)(hit - s) : n;
            }
            if (next[k] >= n) continue;
            if (next[k] < best || (next[k] == best && l > blen)) { best = next[k]; blen = l; }
        }
        if (best > pos) corpus_add_piece(c, s + pos, best - pos);
        pos = best + blen;
    }
}

/* =============================================================== train */

typedef struct {
    int32_t a, b;
    int64_t count;
    int32_t *occ;      /* words that held the pair at some point (may be stale) */
    uint32_t nocc, occ_cap;
    int32_t touched;   /* last merge step that changed count */
    int merged;        /* already emitted as a merge */
} pair;

typedef struct {
    int64_t count;
    int32_t p;
} heap_ent;

typedef struct {
    strtab tokens;      /* token id -> raw bytes; 0..255 are the bytes */
    /* words, as symbol sequences in one pool */
    size_t nw;
    const int64_t *wcount;
    int32_t *sym;       /* pool */
    size_t *wo;         /* (nw) offset of word w in sym */
    uint32_t *wn;       /* (nw) current length */
    int32_t *wstamp;    /* (nw) last step the word was merged in */
    /* pairs */
    pair *pairs;
    size_t npairs, pairs_cap;
    uint64_t *pkey;     /* open addressing: key (a << 32 | b) + 1, 0 = empty */
    int32_t *pval;
    size_t pslots;
    int32_t *touched;
    size_t ntouched, touched_cap;
    heap_ent *heap;
    size_t nheap, heap_cap;
    int32_t step;
    /* result */
    int32_t (*merges)[2];
    size_t nmerges, merges_cap;
} trainer;

static uint64_t pair_key(int32_t a, int32_t b) { return ((uint64_t)(uint32_t)a << 32 | (uint32_t)b) + 1; }

static size_t pair_slot(const trainer *t, uint64_t key) {
    uint64_t h = key * 0x9e3779b97f4a7c15ull;
    return (size_t)(h >> 20) & (t->pslots - 1);
}

static void pairs_rehash(trainer *t, size_t nslots) {
    free(t->pkey);
    free(t->pval);
    t->pkey = calloc(nslots, sizeof *t->pkey);
    t->pval = malloc(nslots * sizeof *t->pval);
    if (!t->pkey || !t->pval) { fprintf(stderr, "sra-bpe: out of memory\n"); exit(1); }
    t->pslots = nslots;
    for (size_t i = 0; i < t->npairs; i++) {
        uint64_t k = pair_key(t->pairs[i].a, t->pairs[i].b);
        size_t h = pair_slot(t, k);
        while (t->pkey[h]) h = (h + 1) & (nslots - 1);
        t->pkey[h] = k;
        t->pval[h] = (int32_t)i;
    }
}

static int32_t pair_get(trainer *t, int32_t a, int32_t b) {
    if (2 * (t->npairs + 1) > t->pslots) pairs_rehash(t, t->pslots ? 2 * t->pslots : 1 << 16);
    uint64_t k = pair_key(a, b);
    size_t h = pair_slot(t, k);
    while (t->pkey[h]) {
        if (t->pkey[h] == k) return t->pval[h];
        h = (h + 1) & (t->pslots - 1);
    }
    grow(&t->pairs, &t->pairs_cap, t->npairs + 1, sizeof *t->pairs);
    pair *p = &t->pairs[t->npairs];
    memset(p, 0, sizeof *p);
    p->a = a;
    p->b = b;
    p->touched = -1;
    t->pkey[h] = k;
    t->pval[h] = (int32_t)t->npairs;
    return (int32_t)t->npairs++;
}

/* count(a, b) += d for word w; new occurrences remember w. */
static void pair_add(trainer *t, int32_t a, int32_t b, int64_t d, int32_t w) {
    int32_t i = pair_get(t, a, b);
    pair *p = &t->pairs[i];
    p->count += d;
    if (d > 0 && (p->nocc == 0 || p->occ[p->nocc - 1] != w)) {
        if (p->nocc == p->occ_cap) {
            p->occ_cap = p->occ_cap ? 2 * p->occ_cap : 4;
            p->occ = xrealloc(p->occ, p->occ_cap * sizeof *p->occ);
        }
        p->occ[p->nocc++] = w;
    }
    if (p->touched != t->step) {
        p->touched = t->step;
        grow(&t->touched, &t->touched_cap, t->ntouched + 1, sizeof *t->touched);
        t->touched[t->ntouched++] = i;
    }
}

/* Heap order: higher count first; on a tie the pair whose first token's
 * bytes sort first, then the second's. Returns 1 if x goes above y. */
static int heap_above(const trainer *t, heap_ent x, heap_ent y) {
    if (x.count != y.count) return x.count > y.count;
    const pair *p = &t->pairs[x.p], *q = &t->pairs[y.p];
    int32_t u[2] = {p->a, p->b}, v[2] = {q->a, q->b};
    for (int k = 0; k < 2; k++) {
        if (u[k] == v[k]) continue;
        size_t lu, lv;
        const char *su = strtab_str(&t->tokens, (size_t)u[k], &lu);
        const char *sv = strtab_str(&t->tokens, (size_t)v[k], &lv);
        int c = memcmp(su, sv, lu < lv ? lu : lv);
        if (c) return c < 0;
        return lu < lv; /* distinct tokens have distinct strings */
    }
    return 0;
}

static void heap_push(trainer *t, int32_t p) {
    grow(&t->heap, &t->heap_cap, t->nheap + 1, sizeof *t->heap);
    heap_ent e = {t->pairs[p].count, p};
    size_t i = t->nheap++;
    while (i > 0) {
        size_t up = (i - 1) / 2;
        if (!heap_above(t, e, t->heap[up])) break;
        t->heap[i] = t->heap[up];
        i = up;
    }
    t->heap[i] = e;
}

static heap_ent heap_pop(trainer *t) {
    heap_ent top = t->heap[0], e = t->heap[--t->nheap];
    size_t i = 0, n = t->nheap;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        heap_ent best = e;
        if (l < n && heap_above(t, t->heap[l], best)) { m = l; best = t->heap[l]; }
        if (r < n && heap_above(t, t->heap[r], best)) m = r;
        if (m == i) break;
        t->heap[i] = t->heap[m];
        i = m;
    }
    if (n) t->heap[i] = e;
    return top;
}

/* Every pair whose count changed in this step gets a heap entry with its
 * new count; so each pair with count > 0 always has an entry equal to its
 * count, and an entry that differs from the current count is stale. */
static void flush_touched(trainer *t) {
    for (size_t k = 0; k < t->ntouched; k++)
        if (t->pairs[t->touched[k]].count > 0) heap_push(t, t->touched[k]);
    t->ntouched = 0;
}

/* Replaces every non-overlapping (a, b), left to right, in word w by c,
 * moving the counts of the neighbouring pairs. */
static void word_merge(trainer *t, int32_t w, int32_t a, int32_t b, int32_t c) {
    int32_t *s = t->sym + t->wo[w];
    size_t n = t->wn[w], i = 0, j = 0;
    int64_t wc = t->wcount[w];
    while (i < n) {
        if (i + 1 < n && s[i] == a && s[i + 1] == b) {
            if (j > 0) { /* left neighbour: already written, maybe a c */
                pair_add(t, s[j - 1], a, -wc, w);
                pair_add(t, s[j - 1], c, wc, w);
            }
            if (i + 2 < n) {
                pair_add(t, b, s[i + 2], -wc, w);
                pair_add(t, c, s[i + 2], wc, w);
            }
            pair_add(t, a, b, -wc, w);
            s[j++] = c;
            i += 2;
        } else {
            s[j++] = s[i++];
        }
    }
    t->wn[w] = (uint32_t)j;
}

/* Trains until the learned vocabulary has `target` tokens or no pair
 * occurs min_freq times. Returns the learned vocabulary size. */
static size_t train(trainer *t, size_t target, int64_t min_freq) {
    t->step = 0;
    for (size_t w = 0; w < t->nw; w++) {
        const int32_t *s = t->sym + t->wo[w];
        for (size_t i = 0; i + 1 < t->wn[w]; i++) pair_add(t, s[i], s[i + 1], t->wcount[w], (int32_t)w);
    }
    flush_touched(t);
    char *buf = NULL;
    size_t buf_cap = 0;
    while (t->tokens.n < target && t->nheap > 0) {
        heap_ent e = heap_pop(t);
        pair *p = &t->pairs[e.p];
        if (e.count != p->count) continue; /* stale */
        if (e.count < min_freq) break;
        int32_t a = p->a, b = p->b;
        size_t la, lb;
        const char *sa = strtab_str(&t->tokens, (size_t)a, &la);
        grow(&buf, &buf_cap, la + 1, 1);
        memcpy(buf, sa, la);
        const char *sb = strtab_str(&t->tokens, (size_t)b, &lb);
        grow(&buf, &buf_cap, la + lb + 1, 1);
        memcpy(buf + la, sb, lb);
        int32_t c = strtab_find(&t->tokens, buf, la + lb, 1);
        p = &t->pairs[e.p];
        if (!p->merged) {
            p->merged = 1;
            grow(&t->merges, &t->merges_cap, t->nmerges + 1, sizeof *t->merges);
            t->merges[t->nmerges][0] = a;
            t->merges[t->nmerges][1] = b;
            t->nmerges++;
        }
        t->step++;
        /* the list stays attached to the pair while its words are merged:
         * pair_add never appends to it (every new pair holds c, and c is
         * longer than a and b), but may move t->pairs */
        int32_t *occ = p->occ;
        uint32_t nocc = p->nocc;
        for (uint32_t k = 0; k < nocc; k++) {
            int32_t w = occ[k];
            if (t->wstamp[w] == t->step) continue;
            t->wstamp[w] = t->step;
            word_merge(t, w, a, b, c);
        }
        p = &t->pairs[e.p];
        free(p->occ);
        p->occ = NULL;
        p->nocc = p->occ_cap = 0;
        p->count = 0; /* every occurrence was replaced */
        flush_touched(t);
    }
    free(buf);
    return t->tokens.n;
}

/* ============================================================== output */

/* GPT-2's bytes_to_unicode: printable Latin-1 bytes stand for themselves,
 * the other 68 take U+0100.. in byte order. -> utf8[b] (NUL-terminated). */
static void byte_unicode_table(char utf8[256][3]) {
    int next = 256;
    for (int b = 0; b < 256; b++) {
        int keep = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
        int cp = keep ? b : next++;
        if (cp < 0x80) {
            utf8[b][0] = (char)cp;
            utf8[b][1] = 0;
        } else {
            utf8[b][0] = (char)(0xc0 | (cp >> 6));
            utf8[b][1] = (char)(0x80 | (cp & 0x3f));
            utf8[b][2] = 0;
        }
    }
}

/* The vocabulary string of token id: its bytes through the table. */
static size_t token_mapped(const strtab *tokens, size_t id, char utf8[256][3], char **buf, size_t *cap) {
    size_t n;
    const char *s = strtab_str(tokens, id, &n);
    grow(buf, cap, 2 * n + 1, 1);
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        for (const char *u = utf8[(unsigned char)s[i]]; *u; u++) (*buf)[k++] = *u;
    (*buf)[k] = 0;
    return k;
}

static int write_json(FILE *f, const trainer *t, char **special, int nspecial) {
    char utf8[256][3];
    byte_unicode_table(utf8);
    size_t V = t->tokens.n;
    fputs("{\n  \"version\": \"1.0\",\n  \"truncation\": null,\n  \"padding\": null,\n  \"added_tokens\": [", f);
    for (int k = 0; k < nspecial; k++) {
        fprintf(f, "%s\n    {\n      \"id\": %zu,\n      \"content\": ", k ? "," : "", V + (size_t)k);
        sra_json_put_string(f, special[k], strlen(special[k]));
        fputs(",\n      \"single_word\": false,\n      \"lstrip\": false,\n      \"rstrip\": false,\n"
              "      \"normalized\": false,\n      \"special\": true\n    }", f);
    }
    fputs(nspecial ? "\n  ],\n" : "],\n", f);
    fputs("  \"normalizer\": null,\n"
          "  \"pre_tokenizer\": {\n    \"type\": \"ByteLevel\",\n    \"add_prefix_space\": false,\n"
          "    \"trim_offsets\": true,\n    \"use_regex\": true\n  },\n"
          "  \"post_processor\": {\n    \"type\": \"ByteLevel\",\n    \"add_prefix_space\": true,\n"
          "    \"trim_offsets\": false,\n    \"use_regex\": true\n  },\n"
          "  \"decoder\": {\n    \"type\": \"ByteLevel\",\n    \"add_prefix_space\": true,\n"
          "    \"trim_offsets\": true,\n    \"use_regex\": true\n  },\n"
          "  \"model\": {\n    \"type\": \"BPE\",\n    \"dropout\": null,\n    \"unk_token\": null,\n"
          "    \"continuing_subword_prefix\": null,\n    \"end_of_word_suffix\": null,\n"
          "    \"fuse_unk\": false,\n    \"byte_fallback\": false,\n    \"ignore_merges\": false,\n"
          "    \"vocab\": {",
          f);
    char *buf = NULL;
    size_t cap = 0;
    for (size_t id = 0; id < V; id++) {
        size_t n = token_mapped(&t->tokens, id, utf8, &buf, &cap);
        fputs(id ? ",\n      " : "\n      ", f);
        sra_json_put_string(f, buf, n);
        fprintf(f, ": %zu", id);
    }
    fputs("\n    },\n    \"merges\": [", f);
    for (size_t m = 0; m < t->nmerges; m++) {
        fputs(m ? ",\n      [\n        " : "\n      [\n        ", f);
        size_t n = token_mapped(&t->tokens, (size_t)t->merges[m][0], utf8, &buf, &cap);
        sra_json_put_string(f, buf, n);
        fputs(",\n        ", f);
        n = token_mapped(&t->tokens, (size_t)t->merges[m][1], utf8, &buf, &cap);
        sra_json_put_string(f, buf, n);
        fputs("\n      ]", f);
    }
    fputs(t->nmerges ? "\n    ]\n  }\n}\n" : "]\n  }\n}\n", f);
    free(buf);
    return ferror(f) ? -1 : 0;
}

/* A special token whose content is also a vocabulary string would take
 * that string's id in HF (tokenizer.h "Added tokens"): refuse it. */
static int special_clash(const trainer *t, const char *sp) {
    char utf8[256][3];
    byte_unicode_table(utf8);
    char *buf = NULL;
    size_t cap = 0;
    int clash = 0;
    for (size_t id = 0; id < t->tokens.n && !clash; id++) {
        size_t n = token_mapped(&t->tokens, id, utf8, &buf, &cap);
        clash = n == strlen(sp) && !memcmp(buf, sp, n);
    }
    free(buf);
    return clash;
}

/* ================================================================ main */

/* Parses a whole non-negative decimal number; -1 if it is not one. */
static long long parse_count(const char *s) {
    if (!s || !*s || *s == '-' || *s == '+') return -1;
    errno = 0;
    char *end;
    long long v = strtoll(s, &end, 10);
    if (*end || errno) return -1;
    return v;
}

int main(int argc, char **argv) {
    const char *data[MAX_DATA];
    char *special[MAX_SPECIAL];
    int ndata = 0, nspecial = 0;
    const char *out = NULL, *field = NULL;
    long long vocab = -1, min_freq = 2, max_bytes = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { usage(stdout); return 0; }
        int takes = !strcmp(a, "--data") || !strcmp(a, "--vocab-size") || !strcmp(a, "--out") ||
                    !strcmp(a, "--min-frequency") || !strcmp(a, "--special") || !strcmp(a, "--max-bytes") ||
                    !strcmp(a, "--text-field");
        if (!takes || !v) {
            fprintf(stderr, "sra-bpe: unknown or incomplete option '%s'\n", a);
            usage(stderr);
            return 2;
        }
        i++;
        if (!strcmp(a, "--data")) {
            if (ndata == MAX_DATA) { fprintf(stderr, "sra-bpe: at most %d --data files\n", MAX_DATA); return 2; }
            data[ndata++] = v;
        } else if (!strcmp(a, "--special")) {
            if (nspecial == MAX_SPECIAL) { fprintf(stderr, "sra-bpe: at most %d --special tokens\n", MAX_SPECIAL); return 2; }
            special[nspecial++] = (char *)v;
        } else if (!strcmp(a, "--out")) out = v;
        else if (!strcmp(a, "--text-field")) field = v;
        else {
            long long n = parse_count(v);
            if (n < 0 || (!strcmp(a, "--min-frequency") && n < 1)) {
                fprintf(stderr, "sra-bpe: %s: expected a %s integer, got '%s'\n", a,
                        !strcmp(a, "--min-frequency") ? "positive" : "non-negative", v);
                return 2;
            }
            if (!strcmp(a, "--vocab-size")) vocab = n;
            else if (!strcmp(a, "--min-frequency")) min_freq = n;
            else max_bytes = n;
        }
    }
    if (!ndata || vocab < 0 || !out) {
        fprintf(stderr, "sra-bpe: %s is required\n", !ndata ? "--data FILE" : vocab < 0 ? "--vocab-size N" : "--out PATH");
        usage(stderr);
        return 2;
    }
    if (vocab < 256 + nspecial || vocab > MAX_VOCAB) {
        fprintf(stderr, "sra-bpe: --vocab-size %lld: must be between 256 bytes + %d special token%s = %d and %ld\n",
                vocab, nspecial, nspecial == 1 ? "" : "s", 256 + nspecial, MAX_VOCAB);
        return 2;
    }
    for (int k = 0; k < nspecial; k++) {
        if (!*special[k]) { fprintf(stderr, "sra-bpe: --special: empty token\n"); return 2; }
        for (int j = 0; j < k; j++)
            if (!strcmp(special[j], special[k])) {
                fprintf(stderr, "sra-bpe: --special '%s' is given twice\n", special[k]);
                return 2;
            }
    }
    if (field && !*field) { fprintf(stderr, "sra-bpe: --text-field: empty name\n"); return 2; }

    double t0 = sra_now();
    /* ---- read and pre-tokenize */
    char err[256];
    tok_regex *re = tok_regex_compile(SPAN_GPT2_PATTERN, err, sizeof err);
    if (!re) { fprintf(stderr, "sra-bpe: GPT-2 split regex: %s\n", err); return 1; }
    corpus c = {0};
    c.re = re;
    data_reader *r = NULL;
    data_opts o = {0};
    o.text_field = field;
    int rc = data_open(&r, data, ndata, &o);
    if (rc < 0) {
        fprintf(stderr, "sra-bpe: --data: %s\n", r ? data_errmsg(r) : "out of memory");
        data_close(r);
        tok_regex_free(re);
        return 1;
    }
    data_record rec;
    uint64_t nbytes = 0, nrec = 0, nbad = 0;
    while ((rc = data_next(r, &rec)) == 1) {
        if (rec.error) {
            if (nbad++ < 3) fprintf(stderr, "sra-bpe: skipping %s\n", rec.error);
            continue;
        }
        size_t n = rec.len;
        int last = 0;
        if (max_bytes && nbytes + n >= (uint64_t)max_bytes) {
            n = (size_t)((uint64_t)max_bytes - nbytes);
            while (n > 0 && n < rec.len && ((unsigned char)rec.text[n] & 0xc0) == 0x80) n--; /* whole characters */
            last = 1;
        }
        corpus_add_text(&c, rec.text, n, special, nspecial);
        nbytes += n;
        nrec++;
        if (last) break;
    }
    if (rc < 0) {
        fprintf(stderr, "sra-bpe: --data: %s\n", data_errmsg(r));
        data_close(r);
        return 1;
    }
    data_close(r);
    tok_regex_free(re);
    if (nbad > 3) fprintf(stderr, "sra-bpe: skipped %llu bad records in all\n", (unsigned long long)nbad);
    if (c.words.n == 0) {
        fprintf(stderr, "sra-bpe: no text to train on in --data %s%s\n", data[0], ndata > 1 ? " ..." : "");
        return 1;
    }

    /* ---- words as byte symbols */
    trainer t = {0};
    for (int b = 0; b < 256; b++) {
        char ch = (char)b;
        strtab_find(&t.tokens, &ch, 1, 1);
    }
    t.nw = c.words.n;
    t.wcount = c.count;
    t.wo = malloc(t.nw * sizeof *t.wo);
    t.wn = malloc(t.nw * sizeof *t.wn);
    t.wstamp = calloc(t.nw, sizeof *t.wstamp);
    t.sym = malloc((c.words.arena_n + 1) * sizeof *t.sym);
    if (!t.wo || !t.wn || !t.wstamp || !t.sym) { fprintf(stderr, "sra-bpe: out of memory\n"); return 1; }
    for (size_t w = 0; w < t.nw; w++) {
        size_t n;
        const char *s = strtab_str(&c.words, w, &n);
        t.wo[w] = c.words.off[w];
        t.wn[w] = (uint32_t)n;
        for (size_t i = 0; i < n; i++) t.sym[t.wo[w] + i] = (unsigned char)s[i];
    }
    double t1 = sra_now();
    size_t learned = train(&t, (size_t)vocab - (size_t)nspecial, min_freq);
    double t2 = sra_now();

    for (int k = 0; k < nspecial; k++)
        if (special_clash(&t, special[k])) {
            fprintf(stderr, "sra-bpe: --special '%s' is also a learned token; choose another string\n", special[k]);
            return 1;
        }

    /* ---- write OUT.tmp, rename */
    size_t plen = strlen(out);
    char *tmp = malloc(plen + 5);
    if (!tmp) { fprintf(stderr, "sra-bpe: out of memory\n"); return 1; }
    memcpy(tmp, out, plen);
    memcpy(tmp + plen, ".tmp", 5);
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        fprintf(stderr, "sra-bpe: --out %s: cannot write %s: %s\n", out, tmp, strerror(errno));
        return 1;
    }
    int werr = write_json(f, &t, special, nspecial);
    if (fclose(f) || werr) {
        fprintf(stderr, "sra-bpe: --out %s: writing %s failed: %s\n", out, tmp, strerror(errno));
        remove(tmp);
        return 1;
    }
    if (rename(tmp, out)) {
        fprintf(stderr, "sra-bpe: --out %s: cannot rename %s to it: %s\n", out, tmp, strerror(errno));
        remove(tmp);
        return 1;
    }
    double t3 = sra_now();

    size_t total = learned + (size_t)nspecial;
    printf("sra-bpe: %llu bytes, %llu records, %llu words (%zu distinct); %zu merges in %.2f s "
           "(read %.2f s, write %.2f s)\n",
           (unsigned long long)nbytes, (unsigned long long)nrec, (unsigned long long)c.nwords, c.words.n,
           t.nmerges, t2 - t1, t1 - t0, t3 - t2);
    printf("sra-bpe: vocabulary %zu = 256 bytes + %zu merged + %d special -> %s\n", total, learned - 256, nspecial,
           out);
    if (total < (size_t)vocab)
        fprintf(stderr, "sra-bpe: warning: stopped at vocabulary %zu < --vocab-size %lld: no pair occurs %lld times\n",
                total, vocab, min_freq);

    for (size_t i = 0; i < t.npairs; i++) free(t.pairs[i].occ);
    free(t.pairs);
    free(t.pkey);
    free(t.pval);
    free(t.touched);
    free(t.heap);
    free(t.merges);
    free(t.sym);
    free(t.wo);
    free(t.wn);
    free(t.wstamp);
    strtab_free(&t.tokens);
    strtab_free(&c.words);
    free(c.count);
    free(tmp);
    return 0;
}
