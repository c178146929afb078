/*
 * tokenizer.h - Hugging Face tokenizer.json in C, byte-exact (prefix tok_).
 *
 * Pipeline (as HF tokenizers 0.22): added tokens are split out of the raw
 * text (leftmost-longest); the rest is normalized (NFC/NFD/NFKC/NFKD,
 * Prepend, Replace, Lowercase, Strip), pre-tokenized (ByteLevel, Split,
 * Digits, Metaspace, Whitespace, WhitespaceSplit; Sequence of any), each
 * piece encoded by the BPE model (byte-level or SentencePiece-style:
 * byte_fallback, fuse_unk, unk_token, ignore_merges, continuing prefix,
 * end-of-word suffix), then post-processed (TemplateProcessing,
 * ByteLevel). Decoding runs the decoders (ByteLevel, ByteFallback, Fuse,
 * Strip, Replace, Metaspace). Split regexes run on hand-written matchers
 * or Oniguruma (tok_regex.h). Other model types (WordPiece, Unigram) and
 * components are refused at load.
 * Every token carries the byte range [start, end) of the RAW input it came
 * from: normalization and byte-level mapping are tracked per byte, so a
 * token holding part of a multi-byte character reports that character's
 * range, and a prepended "▁" reports the range of the first character.
 * Tokens added by the post-processor (BOS) have the empty range [0, 0).
 * Offsets always fall on character boundaries: where HF's ByteLevel
 * trim_offsets would cut inside a multi-byte space, the range shrinks to
 * whole characters, as HF's own character offsets report it.
 *
 * Added tokens get HF's ids, not necessarily the file's "id": content the
 * model vocabulary already has keeps that id, new content takes the next
 * free id (HF does the same and only logs a warning; saved files agree).
 *
 * Lifetime and threads: tok_load builds immutable tables; any number of
 * threads may encode with it at once, each through its own tok_session
 * (scratch buffers and a word cache). Results returned by a session are
 * valid until its next call.
 *
 * Errors: tok_load returns a handle even on failure (NULL only when out of
 * memory) whose tok_errmsg names the file and the JSON key at fault; an
 * unsupported component or regex is a load error, never a silent fallback.
 * Encoding invalid UTF-8 fails with the byte offset of the first bad byte.
 */
#ifndef SRA_TOKENIZER_H
#define SRA_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

typedef struct tok_tokenizer tok_tokenizer;
typedef struct tok_session tok_session;

int tok_load(tok_tokenizer **t, const char *path);
/* Same from bytes in memory; `name` is used in messages. */
int tok_load_json(tok_tokenizer **t, const char *json, size_t n, const char *name);
void tok_free(tok_tokenizer *t);
const char *tok_errmsg(const tok_tokenizer *t);

/* Max id + 1 over the model vocabulary and the added tokens. */
int32_t tok_vocab_size(const tok_tokenizer *t);
/* Id of a token by its vocabulary string ("Ġthe", "<s>"), or -1. */
int32_t tok_token_id(const tok_tokenizer *t, const char *s, size_t n);
/* The vocabulary string of id, or NULL. Valid until tok_free. */
const char *tok_token_str(const tok_tokenizer *t, int32_t id, size_t *n);
/* The bytes id stands for in text, as the decoder renders a token alone:
 * byte-level "Ġ" and SentencePiece "▁" are spaces, <0x0A> is the byte 0x0A.
 * Fills buf (cap bytes) and returns the size needed (so a short buffer is
 * a query), or -1 for an unused id. This is what the shared-vocabulary map
 * of method.md §4 keys on. */
int tok_token_bytes(const tok_tokenizer *t, int32_t id, char *buf, size_t cap);

/* Added tokens (special or not), in tokenizer.json order. */
int tok_n_added(const tok_tokenizer *t);
int32_t tok_added(const tok_tokenizer *t, int i, const char **content, int *special);
/* The ids the post-processor prepends / appends with add_special (e.g. BOS);
 * -1 when none. */
int32_t tok_bos_id(const tok_tokenizer *t);
int32_t tok_eos_id(const tok_tokenizer *t);

tok_session *tok_session_new(const tok_tokenizer *t);
void tok_session_free(tok_session *s);
const char *tok_session_error(const tok_session *s);

typedef struct {
    size_t n;               /* number of tokens */
    const int32_t *ids;     /* (n) */
    const uint32_t *start;  /* (n) byte offsets into the raw text */
    const uint32_t *end;    /* (n) */
} tok_encoding;

/* Encodes text[0..len) (UTF-8). add_special applies the post-processor's
 * template (BOS for Llama-2 style tokenizers). Returns 0, or < 0 with
 * tok_session_error (invalid UTF-8 at byte N, text over 4 GiB, ...). */
int tok_encode(tok_session *s, const char *text, size_t len, int add_special, tok_encoding *out);
/* Decodes ids to text (skip_special = 0: special tokens are rendered).
 * *out is valid until the next call on s. */
int tok_decode(tok_session *s, const int32_t *ids, size_t n, int skip_special, const char **out,
               size_t *len);

#endif /* SRA_TOKENIZER_H */
