/*
 * cache_head.h - the teacher's LM head stored with a cache folder (prefix
 * cache_head_). Full description: CACHE.md, "The teacher's LM head".
 *
 * Why it exists: the paper preset (method.md §9.2) scores a span with the
 * teacher's head applied to its CoM, z_T = W_T c_T, in stage two, where the
 * teacher is never loaded (design.md). So the head travels with the cache:
 * once per folder, not per shard, in the dtype of the checkpoint.
 *
 * On disk: DIR/teacher_head.safetensors, a plain safetensors file that any
 * safetensors reader opens:
 *   u64 little-endian N | N bytes of JSON, space-padded to a multiple of 8 |
 *   the tensor's bytes
 *   {"__metadata__": {"format": "sra-teacher-head", "format_version": "1",
 *                     "source_tensor": NAME, "source_file": FILE,
 *                     "source_file_sha256": HEX},
 *    "lm_head.weight": {"dtype": "F32"|"F16"|"BF16", "shape": [V, d],
 *                       "data_offsets": [0, V*d*size]}}
 * The bytes are those of the checkpoint's tensor, copied, never converted.
 * A tied head (tie_word_embeddings, or a checkpoint that stores only one of
 * the two names) is the embedding table: it is stored as lm_head.weight all
 * the same, and source_tensor says what it was.
 *
 * manifest.json, written by sra-extract (single process) or --finalize
 * after cache_head_check against the shards (shape = teacher_vocab_size x
 * hidden_size):
 *   "teacher_head": {"file": "teacher_head.safetensors", "sha256": HEX,
 *                    "bytes": n, "dtype": "BF16", "shape": [V, d]}
 * A manifest without "teacher_head" is a cache made before the head
 * travelled (shards of format version 1): it has no head.
 *
 * Errors: 0 or a negative SRA_E_* code (util.h) with a message naming the
 * file. cache_head_open returns SRA_E_MISSING for "this cache has no head"
 * and for nothing else, so that a caller can say "re-extract".
 *
 * Lifetimes and threads: a handle owns its mapping and strings (valid until
 * cache_head_close). cache_head_rows may run in several threads at once;
 * only the error message of a bad id is shared.
 */
#ifndef SRA_CACHE_HEAD_H
#define SRA_CACHE_HEAD_H

#include <stddef.h>
#include <stdint.h>

#include "util.h"

#define CACHE_HEAD_FILE "teacher_head.safetensors"
#define CACHE_HEAD_TENSOR "lm_head.weight"
#define CACHE_HEAD_FORMAT "sra-teacher-head"

/* ================================================================ writer */

/* The checkpoint's head tensor, as safetensors.h hands it out. */
typedef struct {
    const char *dtype;          /* "F32", "F16" or "BF16" */
    int64_t rows, cols;         /* V, d */
    const void *data;           /* (V, d) elements of dtype, little-endian */
    const char *source_tensor;  /* its name in the checkpoint */
    const char *source_file;    /* the checkpoint file holding it (base name) */
    const char *source_sha256;  /* that file's sha256 (hex) */
} cache_head_src;

/* Writes DIR/teacher_head.safetensors: into a per-process temporary file,
 * flushed and fsynced, then renamed, so a reader never sees half a file.
 * Every process of a sharded extraction calls it: when the file exists and
 * is byte for byte what would be written, it is kept; when it differs, the
 * call fails (SRA_E_ARG) and the file is left alone. */
int cache_head_write(const char *dir, const cache_head_src *src, sra_err *e);

/* ================================================================ reader */

/* What the manifest records about the head file. */
typedef struct {
    char file[64];      /* CACHE_HEAD_FILE */
    char sha256[65];    /* of the whole file */
    int64_t bytes;      /* file size */
    char dtype[8];      /* "F32", "F16", "BF16" */
    int64_t shape[2];   /* V, d */
    /* from the file's __metadata__ ("" when absent) */
    char source_tensor[256], source_file[256], source_sha256[65];
} cache_head_info;

/* For --finalize: checks DIR/teacher_head.safetensors (a valid safetensors
 * file holding exactly lm_head.weight, F32/F16/BF16, shape (V, d)) and
 * fills info with its sha256 (reads the whole file once). */
int cache_head_check(const char *dir, int64_t V, int64_t d, cache_head_info *info, sra_err *e);

typedef struct cache_head cache_head;

/* Opens the head of cache folder DIR as its manifest.json names it: the
 * sha256 of the whole file must equal the manifest's (the one full read),
 * then size, tensor name, dtype and shape must agree with it. SRA_E_MISSING
 * when the manifest has no "teacher_head" (a cache made before the head
 * travelled). Returns a handle even on failure (NULL only when out of
 * memory) so the message can be read; close it either way. */
int cache_head_open(cache_head **h, const char *dir);
void cache_head_close(cache_head *h);
const char *cache_head_errmsg(const cache_head *h);
const char *cache_head_path(const cache_head *h);
const cache_head_info *cache_head_get_info(const cache_head *h);
int64_t cache_head_vocab(const cache_head *h); /* V */
int64_t cache_head_dim(const cache_head *h);   /* d */

/* ids (n) in [0, V) -> out (n, d): those rows of the head converted to
 * float32 (exact for every stored dtype). Only the pages of those rows are
 * read (the file is mapped). SRA_E_ARG naming the first id out of range;
 * out is then unspecified. */
int cache_head_rows(cache_head *h, const int32_t *ids, int n, float *out);

#endif /* SRA_CACHE_HEAD_H */
