/*
 * tok_bpe.h - the BPE model of a tokenizer.json (prefix bpe_): vocabulary,
 * merges, and the encoding of one pre-tokenized word into token ids.
 *
 * Semantics are Hugging Face tokenizers' `models::bpe::BPE` (0.22), checked
 * against the real library word by word (tests/test_bpe.c):
 *   - a word (already normalized and pre-tokenized; byte-level mapped when
 *     the tokenizer is byte-level) is split into its Unicode characters;
 *     each becomes the id of that character in the vocabulary, with
 *     continuing_subword_prefix on every character but the first and
 *     end_of_word_suffix on the last, when those are set ("" is the same as
 *     null);
 *   - a character missing from the vocabulary becomes, with byte_fallback,
 *     one `<0xXX>` token per byte of the string looked up (prefix/suffix
 *     included), if all of them exist; otherwise the unk_token (consecutive
 *     unks fused into one when fuse_unk). HF quirk kept: an unk waiting to
 *     be fused is emitted at the next character found in the vocabulary or
 *     at the end, so byte-fallback tokens of a later character come BEFORE
 *     it ("aéé☃a" with <0xA9> missing: a <0xE2> <0x98> <0x83> <unk> a);
 *   - with no unk_token (and no byte fallback that works) the character is
 *     silently DROPPED: no token, no error. An unk_token that is not in the
 *     model vocabulary is an encoding error, raised only when needed;
 *   - merges are applied lowest rank first, leftmost first among equal
 *     ranks, until no adjacent pair has a merge (HF's heap of (rank,
 *     position)); the rank is the merge's index in "merges" ("#version"
 *     lines take none) and a pair listed twice keeps its LAST rank; the
 *     merged token is left + right without the right part's prefix;
 *   - ignore_merges: a word that is itself in the vocabulary (as is, no
 *     prefix or suffix added) is one token;
 *   - the model sees only its own vocabulary, never tokens added with
 *     bpe_add_token; an empty word has no tokens.
 * Offsets: HF gives each token the sum of its symbols' lengths from 0 (a
 * character counts its bytes, a fused unk all its characters' bytes, a
 * byte-fallback token 1), and the tokenizer widens every range to whole
 * characters; bpe_encode_word returns the widened range [start, end) in
 * bytes of the word, so all byte-fallback tokens of one character cover
 * that character. When a character was dropped the ranges after it are
 * shifted, exactly as in HF ("a☃bc" -> "abc" covering [0, 4)). Always
 * 0 <= start < end <= n (ranges past the word, which HF gives only with a
 * continuing prefix spelt out in byte tokens, are clamped into it).
 * Not supported: BPE-dropout > 0 (random; refused at load).
 *
 * Errors: bpe_load names the key or entry at fault (vocab["x"], merges[12]);
 * tokens must be unique, ids unique integers in [0, 2^27), merge parts and
 * results in the vocabulary, merges all "a b" strings or all ["a", "b"].
 *
 * Lifetime and threads: bpe_load builds the tables; bpe_add_token may
 * change them only before any session encodes. After that the model is
 * immutable and any number of threads may encode, each with its own
 * bpe_session (scratch buffers and a word cache of ~6 MiB). A session
 * allocates nothing per call in steady state.
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
/* Bytes the model's tables hold (vocabulary, merges, strings). */
size_t bpe_memory(const bpe_model *m);

/* NULL when out of memory. */
bpe_session *bpe_session_new(const bpe_model *m);
void bpe_session_free(bpe_session *s);

/* Encodes word w[0..n) (UTF-8). Writes up to cap tokens: ids[i] and the
 * byte range [starts[i], ends[i]) inside w. Returns the number of tokens
 * the word needs (if > cap nothing was written: call again with room; cap
 * 0 with NULL arrays is a query), or -1 with a message in
 * bpe_session_error(s) (invalid UTF-8 at byte N, a needed unk_token
 * missing from the vocabulary, out of memory). */
int bpe_encode_word(bpe_session *s, const char *w, size_t n, int32_t *ids, uint32_t *starts,
                    uint32_t *ends, size_t cap);
const char *bpe_session_error(const bpe_session *s);

#endif /* SRA_TOK_BPE_H */
