/*
 * tok_bpe.h - the BPE model of a tokenizer.json (prefix bpe_): vocabulary,
 * merges, and the encoding of one pre-tokenized word into token ids.
 *
 * Semantics are Hugging Face tokenizers' `models::bpe::BPE` (0.22):
 *   - a word (already normalized and pre-tokenized; byte-level mapped when
 *     the tokenizer is byte-level) is split into its Unicode characters;
 *     each becomes the id of that character in the vocabulary, with
 *     continuing_subword_prefix on every character but the first and
 *     end_of_word_suffix on the last, when those are set;
 *   - a character missing from the vocabulary becomes, with byte_fallback,
 *     one `<0xXX>` token per byte (all of them must exist); otherwise the
 *     unk_token (consecutive unks fused into one when fuse_unk); with no
 *     unk_token, whatever HF does (verify against the HF reference and say
 *     so here);
 *   - merges are applied lowest rank first, leftmost first among equal
 *     ranks, until no adjacent pair has a merge;
 *   - ignore_merges: a word that is itself in the vocabulary is one token.
 * Offsets: each output token covers a byte range [start, end) of the word
 * made of whole characters; the byte-fallback tokens of one character all
 * cover that character.
 *
 * Lifetime: bpe_load builds immutable tables (thread-safe reads). Encoding
 * uses a bpe_session (scratch and a word cache), one per thread.
 */
#ifndef SRA_TOK_BPE_H
#define SRA_TOK_BPE_H

#include <cJSON.h>
#include <stddef.h>
#include <stdint.h>

typedef struct bpe_model bpe_model;
typedef struct bpe_session bpe_session;

/* Builds the model from the tokenizer.json "model" object (type "BPE").
 * Merges may be "a b" strings or ["a", "b"] pairs. On error returns NULL
 * with a message naming the key or entry at fault in err[errlen]. */
bpe_model *bpe_load(const cJSON *model, char *err, size_t errlen);
void bpe_free(bpe_model *m);

/* Vocabulary. Ids need not be dense; bpe_vocab_size is max id + 1.
 * Added tokens are inserted by the tokenizer with bpe_add_token. */
int32_t bpe_vocab_size(const bpe_model *m);
int32_t bpe_token_to_id(const bpe_model *m, const char *s, size_t n); /* -1 if absent */
/* The token's string as stored in the vocabulary (e.g. "Ġthe", "▁the",
 * "<0x0A>"), or NULL for an unused id. Valid until bpe_free. */
const char *bpe_id_to_token(const bpe_model *m, int32_t id, size_t *n);
/* Adds (or confirms) token s as id (for added tokens outside the model
 * vocabulary). Returns 0, or -1 if s or id is already bound differently. */
int bpe_add_token(bpe_model *m, const char *s, size_t n, int32_t id);
int bpe_byte_fallback(const bpe_model *m);

bpe_session *bpe_session_new(const bpe_model *m);
void bpe_session_free(bpe_session *s);

/* Encodes word w[0..n) (valid UTF-8, n > 0). Appends up to cap tokens:
 * ids[i] and the byte range [starts[i], ends[i]) inside w. Returns the
 * number of tokens the word needs (if > cap nothing useful was written:
 * call again with room), or -1 with a message in bpe_session_error(s). */
int bpe_encode_word(bpe_session *s, const char *w, size_t n, int32_t *ids, uint32_t *starts,
                    uint32_t *ends, size_t cap);
const char *bpe_session_error(const bpe_session *s);

#endif /* SRA_TOK_BPE_H */
