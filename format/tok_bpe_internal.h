/*
 * tok_bpe_internal.h - what the two halves of the BPE model share:
 * tok_bpe.c builds the tables (vocabulary, merges) at load, and
 * tok_bpe_encode.c encodes words with them in a session. The tables are
 * open-addressing hash tables with power-of-two sizes and linear probing,
 * loaded at most half full:
 *   vocab   token bytes -> id, 16-byte slots (hash tag and length, id,
 *           the string's address);
 *   merges  (left id << 32 | right id) -> (rank, merged id), 16 bytes.
 * Not a public header (tok_bpe.h is the contract).
 */
#ifndef SRA_TOK_BPE_INTERNAL_H
#define SRA_TOK_BPE_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "tok_bpe.h"

/* Ids are array indices here; this bound keeps a hostile id (say 4e9) from
 * turning into a multi-GiB allocation. Real vocabularies are < 2^19. */
#define BPE_MAX_ID (1 << 27)
#define CHAR_TABLE 0x800               /* direct lookup for 1- and 2-byte chars */

enum { TOK_MODEL = 1, TOK_ADDED = 2 };

/* ============================================================== hashing */

/* A multiply-xorshift hash over 8-byte blocks: short tokens and words (the
 * common case) cost one or two multiplications. */
static inline uint64_t mix64(uint64_t h) {
    h ^= h >> 32;
    h *= 0xd6e8feb86659fd93ull;
    h ^= h >> 32;
    return h;
}

static inline uint64_t hash_bytes(const void *p, size_t n) {
    const unsigned char *s = p;
    uint64_t h = 0x243f6a8885a308d3ull ^ ((uint64_t)n * 0x9e3779b97f4a7c15ull);
    while (n >= 8) {
        uint64_t x;
        memcpy(&x, s, 8);
        h = (h ^ x) * 0xff51afd7ed558ccdull;
        h ^= h >> 29;
        s += 8;
        n -= 8;
    }
    if (n) {
        uint64_t x = 0;
        memcpy(&x, s, n);
        h = (h ^ x) * 0xc4ceb9fe1a85ec53ull;
    }
    return mix64(h);
}

static inline uint64_t hash_pair(uint64_t key) { return mix64(key * 0x9e3779b97f4a7c15ull); }


/* One probe usually costs one cache miss for the slot and one for the
 * string: the slot carries the string's address, and its length (when
 * < 255) beside 24 bits of the hash, so that most mismatches never touch
 * the string. */
typedef struct {
    uint32_t taglen; /* hash bits 63..40 << 8 | min(length, 255) */
    int32_t id;      /* -1: empty */
    const char *s;
} vslot;

typedef struct {
    uint64_t key; /* left << 32 | right; UINT64_MAX: empty */
    uint32_t rank;
    int32_t id;   /* the merged token */
} mslot;

struct bpe_model {
    /* id -> token (ids need not be dense; NULL marks an unused id) */
    int32_t n_ids;   /* max id + 1 */
    size_t ids_cap;
    const char **tok;  /* (ids_cap) into arena or added[] */
    uint32_t *tok_len; /* (ids_cap) */
    uint8_t *tok_flags; /* (ids_cap) TOK_MODEL | TOK_ADDED */
    char *arena;       /* model token strings, NUL-terminated */
    char **added;      /* added token strings, one allocation each */
    size_t n_added, added_cap;

    vslot *vtab;
    size_t vmask, vcount;
    mslot *mtab;
    size_t mmask, n_merges;

    char *prefix, *suffix; /* NULL when null or "" (HF treats them alike) */
    size_t prefix_len, suffix_len;
    char *unk;             /* unk_token or NULL */
    int32_t unk_id;        /* -1: no unk_token, or one missing from the vocab */
    int fuse_unk, byte_fallback, ignore_merges;
    int32_t byte_id[256];  /* <0xXX> -> id, -1 if absent */
    int32_t char_id[CHAR_TABLE]; /* code point -> id of that lone character */
};

/* Finds s in the vocabulary; returns the id or -1. `need` is a TOK_* mask
 * the entry must have (TOK_MODEL for encoding: HF's model never sees the
 * added vocabulary). */
static inline uint32_t taglen(uint64_t h, size_t n) {
    return ((uint32_t)(h >> 32) & ~0xFFu) | (uint32_t)(n < 255 ? n : 255);
}

static inline int32_t vocab_find(const bpe_model *m, const char *s, size_t n, uint64_t h, int need) {
    uint32_t tl = taglen(h, n);
    for (size_t i = (size_t)h & m->vmask;; i = (i + 1) & m->vmask) {
        const vslot *v = &m->vtab[i];
        if (v->id < 0) return -1;
        if (v->taglen == tl && (n < 255 || m->tok_len[v->id] == n) && memcmp(v->s, s, n) == 0)
            return (m->tok_flags[v->id] & need) ? v->id : -1;
    }
}

static inline int32_t model_id(const bpe_model *m, const char *s, size_t n) {
    return vocab_find(m, s, n, hash_bytes(s, n), TOK_MODEL);
}

static inline const mslot *merge_find(const bpe_model *m, int32_t a, int32_t b) {
    uint64_t key = (uint64_t)(uint32_t)a << 32 | (uint32_t)b;
    for (size_t i = (size_t)hash_pair(key) & m->mmask;; i = (i + 1) & m->mmask) {
        const mslot *s = &m->mtab[i];
        if (s->key == key) return s;
        if (s->key == UINT64_MAX) return NULL;
    }
}

#endif /* SRA_TOK_BPE_INTERNAL_H */
