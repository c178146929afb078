/*
 * tok_internal.h - the tables tok_load builds and the encoder and decoder
 * read (tok_load.c, tok_encode.c, tok_decode.c). Not a public header.
 */
#ifndef SRA_TOK_INTERNAL_H
#define SRA_TOK_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "tok_bpe.h"
#include "tok_regex.h"
#include "tokenizer.h"

/* ------------------------------------------------------- normalizers */
typedef enum { N_NFC, N_NFD, N_NFKC, N_NFKD, N_PREPEND, N_REPLACE, N_LOWERCASE, N_STRIP } norm_kind;
typedef struct {
    norm_kind kind;
    char *a; size_t alen;   /* Prepend: the text; Replace: the literal pattern */
    char *b; size_t blen;   /* Replace: the content */
    tok_regex *re;          /* Replace with a Regex pattern */
    int left, right;        /* Strip */
} tok_norm;

/* --------------------------------------------------- pre-tokenizers */
typedef enum { P_BYTELEVEL, P_SPLIT, P_DIGITS, P_METASPACE, P_WHITESPACE, P_WSSPLIT } pre_kind;
typedef enum { B_REMOVED, B_ISOLATED, B_MERGED_PREV, B_MERGED_NEXT, B_CONTIGUOUS } split_behavior;
typedef enum { PS_ALWAYS, PS_FIRST, PS_NEVER } prepend_scheme;
typedef struct {
    pre_kind kind;
    tok_regex *re;          /* Split (Regex), ByteLevel (use_regex), Whitespace */
    char *lit; size_t litlen; /* Split (String); Metaspace: the replacement */
    split_behavior beh;
    int invert;
    int add_prefix_space;   /* ByteLevel */
    int individual;         /* Digits */
    prepend_scheme scheme;  /* Metaspace */
    int split;              /* Metaspace */
} tok_pre;

/* ---------------------------------------------------- added tokens */
typedef struct {
    int32_t id;
    char *content; size_t len;
    char *match; size_t mlen;  /* what is matched: content, or its normalized form */
    int special, single_word, lstrip, rstrip, normalized;
} tok_added_tok;

/* --------------------------------------------------------- decoders */
typedef enum { D_BYTELEVEL, D_BYTEFALLBACK, D_FUSE, D_STRIP, D_REPLACE, D_METASPACE } dec_kind;
typedef struct {
    dec_kind kind;
    char *a; size_t alen;   /* Replace: pattern; Strip: content; Metaspace: replacement */
    char *b; size_t blen;   /* Replace: content */
    int start, stop;        /* Strip */
    prepend_scheme scheme;  /* Metaspace */
} tok_dec;

struct tok_tokenizer {
    char err[1024];
    char *name;
    bpe_model *bpe;
    tok_norm *norm; int n_norm;
    tok_pre *pre; int n_pre;
    int byte_level;         /* a ByteLevel pre-tokenizer maps bytes to chars */
    tok_added_tok *added; int n_added;
    int any_raw_added, any_norm_added;
    /* Byte tries over the added tokens' match strings, [0] raw and [1]
     * normalized ones (tok_load.c build_tries): node 0 is the root, whose
     * children are root[k][byte]; other children hang off first-child /
     * next-sibling links. tok is the first added token ending at a node
     * (-1 if none), dup_next[tok] the next one with the same match. */
    struct tok_trie { int32_t child, sibling, tok; uint8_t byte; } *trie[2];
    int32_t n_trie[2], trie_cap[2];
    int32_t root[2][256];
    int32_t *dup_next;
    /* post-processor */
    int32_t pre_ids[8]; int n_pre_ids;   /* TemplateProcessing single: before $A */
    int32_t post_ids[8]; int n_post_ids; /* after $A */
    int post_trim;          /* ByteLevel post-processor trim_offsets */
    int post_prefix;        /* its add_prefix_space */
    tok_dec *dec; int n_dec;
    /* cutting SentencePiece-style words before "▁" (tok_load.c find_glue):
     * allowed unless the preceding character is in glue (sorted) */
    int cut_meta;
    int32_t *glue; int n_glue;
    int32_t vocab_size;
};

/* The GPT-2 byte-level alphabet (ByteLevel): every byte is shown as a
 * printable character: bytes 33..126, 161..172 and 174..255 as themselves,
 * the other 68 as U+0100.. in byte order. */
int32_t tok_byte_cp(uint8_t b);
int tok_cp_byte(int32_t cp); /* -1 if cp is not in the alphabet */

/* ------------------------------------------------------------ session */
typedef struct {
    char *s;
    uint32_t *a0, *a1; /* (n) raw range of the character each byte belongs to */
    size_t n, cap;
} astr;

typedef struct { uint32_t a, b; } span; /* byte range in the work string */
typedef struct { uint32_t a, b; int match; } mspan; /* a split: a match or the text between */

struct tok_session { /* per-thread scratch (tokenizer.h) */
    const tok_tokenizer *t;
    bpe_session *bpe;
    char err[512];
    astr ns, tmp, work;       /* normalized segment, scratch, pre-tokenized work string */
    span *pc, *pc2;           /* pieces */
    mspan *ms; size_t mscap;  /* matches of one split */
    size_t npc, npc2, pccap, pc2cap;
    int32_t *ids; uint32_t *st, *en;
    size_t nout, outcap;
    char *word; uint32_t *wsrc; size_t wcap;
    int32_t *bids; uint32_t *bs, *be; size_t bcap;
    char *dbuf; size_t dlen, dcap;  /* decoder output (tok_decode.c) */
    char **dtok; size_t *dtoklen; size_t dtcap;
};


/* Aligned-string helpers (tok_normalize.c). All return -1 when out of memory. */
int astr_reserve(astr *x, size_t need);
/* Appends p[0..n), every byte aligned to the raw range [r0, r1). */
int astr_put(astr *x, const char *p, size_t n, uint32_t r0, uint32_t r1);
/* Appends src[i..j) with its own alignment. */
int astr_copy(astr *x, const astr *src, size_t i, size_t j);
void astr_swap(astr *a, astr *b);

/* Applies one normalizer to ss->ns in place (tok_normalize.c). */
int tok_apply_norm(tok_session *ss, const tok_norm *nm);
/* Normalizes a plain string with all of t's normalizers (for added tokens'
 * contents at load); *out is malloc'd and NUL-terminated. */
int tok_normalize_plain(const tok_tokenizer *t, const char *s, size_t n, char **out, size_t *outn);

#endif
