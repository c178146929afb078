/*
 * lmdata.h - plain language-model data for sra-train (prefix lmd_): text
 * files (dataset.h: JSONL or .txt) tokenized with the student's
 * tokenizer.json into one token stream, with how many bytes of text each
 * token accounts for, so that losses convert to bits per byte.
 *
 * Stream: the records in order, each encoded with its post-processor
 * template (BOS where the tokenizer adds one), concatenated. Bad records
 * (dataset.h) are skipped and counted.
 *
 * Bytes: token i of a record accounts for the bytes from the end of the
 * previous token of that record (0 for its first) to its own end, so the
 * tokens of a record account for each byte of its text exactly once, even
 * with overlapping offsets (SentencePiece), and template tokens for none.
 *
 * Bits per byte of predicting tokens S (each from the tokens before it):
 *   sum_{i in S} -ln p(token_i) / ln 2 / sum_{i in S} bytes_i.
 *
 * Training windows (lmd_batch): B windows of T + 1 tokens at uniformly
 * drawn starts (inputs = the first T, targets = the last T), from a
 * splitmix64 state the caller keeps (and checkpoints): the same state
 * gives the same batches. Evaluation (lmd_eval_window): consecutive
 * windows with stride T, so every token after the first is predicted once.
 */
#ifndef SRA_LMDATA_H
#define SRA_LMDATA_H

#include <stddef.h>
#include <stdint.h>

#include "dataset.h"
#include "tokenizer.h"

typedef struct {
    int32_t *tokens;     /* (n) */
    uint32_t *bytes;     /* (n) bytes of text each token accounts for */
    size_t n;
    int64_t records, bad_records, text_bytes;
} lmd_stream;

/* Reads and tokenizes paths[0..n_paths). Returns 0, or -1 with err. */
int lmd_load(lmd_stream *s, const tok_tokenizer *tok, const char *const *paths, int n_paths, const data_opts *o,
             char *err, size_t errlen);
void lmd_free(lmd_stream *s);

/* B windows: ids, targets (B,T); *rng advanced. Needs s->n >= T + 1. */
void lmd_batch(const lmd_stream *s, uint64_t *rng, int B, int T, int32_t *ids, int32_t *targets);

/* Number of evaluation windows of length T (stride T) the stream holds. */
size_t lmd_eval_windows(const lmd_stream *s, int T);
/* Window w: ids, targets (T) and the bytes of each target (T); a window
 * near the end may be shorter: its missing targets are -1 (bytes 0), ids
 * padded with the last token. Returns the number of real targets. */
int lmd_eval_window(const lmd_stream *s, size_t w, int T, int32_t *ids, int32_t *targets, uint32_t *tbytes);

#endif /* SRA_LMDATA_H */
