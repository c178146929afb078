/*
 * vocab.h - the shared vocabulary of method.md §4 and MinED's token map
 * (prefix vocab_), built at train time from the teacher tokenizer stored
 * in the cache and the student's tokenizer.json.
 *
 * Keys. Every token's decoded bytes (tok_token_bytes: byte-level "Ġ" and
 * SentencePiece "▁" become spaces, byte-fallback tokens their byte) give
 * it a key, by the `pool` rule:
 *   firstword  the bytes stripped of leading and trailing ASCII whitespace
 *              (as Python's bytes.strip, the oracle's rule), then cut at
 *              the first inner whitespace byte ("upon▁a▁tim" -> "upon");
 *   strip      the stripped bytes whole.
 * Whitespace-only tokens and special added tokens get no key. The shared
 * keys are those both sides have, numbered 0..K-1 in byte order; t_key
 * and s_key map each id to its shared key or -1.
 *
 * Pairs, pool `exact` (method.md §9.3, the paper preset): vocabulary
 * entries as HF get_vocab() lists them (model vocabulary plus added
 * tokens, special ones included) whose RAW strings (tok_token_str: "Ġthe",
 * "▁the", "<0x0A>", no decoding) are byte-equal on both sides. Each
 * string names one id per side (the tokenizer refuses a model vocabulary
 * listing a string twice, and an added token repeating a model string
 * takes that string's id, as HF does), so the pairs are one-to-one:
 * pair_t[i] and pair_s[i], i < n_pairs, sorted by increasing student id
 * (the order of sra_ref.exact_shared_ids). Under `exact` each pair is
 * also a key: K = n_pairs, t_key[pair_t[i]] = s_key[pair_s[i]] = i, so
 * the §4 pooled KL runs on the exact vocabulary too. Under firstword and
 * strip, n_pairs = 0 and the pair arrays are NULL.
 *
 * MinED (method.md §6): each teacher id maps to the student id whose
 * decoded bytes are nearest in Levenshtein distance (ties: the lower
 * student id); an exact match wins at once. Computed lazily per teacher
 * id (vocab_mined_map) and memoized, since a cache's top-k uses only part
 * of a big teacher vocabulary.
 *
 * Threads: a vocab_map is immutable after vocab_build except the MinED
 * memo, which vocab_mined_map fills (one thread at a time).
 */
#ifndef SRA_VOCAB_H
#define SRA_VOCAB_H

#include <stdint.h>

#include "tokenizer.h"

typedef enum { VOCAB_POOL_FIRSTWORD = 0, VOCAB_POOL_STRIP, VOCAB_POOL_EXACT } vocab_pool;
int vocab_pool_parse(const char *s); /* -1 when unknown */

typedef struct {
    int32_t VT, VS;     /* teacher and student vocabulary sizes */
    int32_t K;          /* shared keys */
    int32_t *t_key;     /* (VT) */
    int32_t *s_key;     /* (VS) */
    int32_t n_s_shared;     /* student ids that have a shared key */
    int32_t *s_shared_ids;  /* (n_s_shared) those ids, increasing */
    int32_t *s_shared_key;  /* (n_s_shared) their keys: the pooled KL needs only
                               these (ids without a key drop out of it, value
                               and gradient alike), so a caller may gather them */
    /* pool exact: the shared pairs, by increasing student id */
    int32_t n_pairs;
    int32_t *pair_t;    /* (n_pairs) teacher ids */
    int32_t *pair_s;    /* (n_pairs) student ids, increasing */
    /* MinED */
    int32_t *t2s;       /* (VT) student id, -1 = none, -2 = not computed yet */
    char **s_bytes;     /* (VS) decoded bytes of student ids (NUL-terminated), NULL = no string */
    int32_t *s_len;
    const tok_tokenizer *teacher;
} vocab_map;

int vocab_build(vocab_map *v, const tok_tokenizer *teacher, const tok_tokenizer *student, vocab_pool pool,
                char *err, size_t errlen);
void vocab_free(vocab_map *v);
/* MinED's student id for teacher id t (computed on first use). */
int32_t vocab_mined_map(vocab_map *v, int32_t t);

#endif /* SRA_VOCAB_H */
