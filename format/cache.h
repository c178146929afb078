/*
 * cache.h - the sra teacher cache, format v2: what stage one (sra-extract)
 * writes and stage two (sra-train) streams. Full description: CACHE.md.
 * The folder's teacher LM head (teacher_head.safetensors) is cache_head.h.
 *
 * One HDF5 file per shard. Every per-atom dataset is chunked along rows and
 * compressed with zstd (HDF5 filter 32015, optionally after HDF5's byte
 * shuffle), so stock HDF5 tools read it with build/plugins on
 * HDF5_PLUGIN_PATH.
 *
 *   /                         root attributes: cache_meta below, + format,
 *                             format_version, complete (uint8 0/1)
 *   /docs/text                uint8   [text_bytes]    raw UTF-8, concatenated
 *   /docs/text_offsets        int64   [n_docs+1]      doc i = text[o[i], o[i+1])
 *   /docs/atom_offsets        int64   [n_docs+1]      doc i owns atoms [a[i], a[i+1])
 *   /docs/loss_start          int64   [n_docs]        byte in the doc where loss starts
 *   /docs/record              int64   [n_docs]        record number in the dataset
 *   /atoms/start, /atoms/end  int32   [n_atoms]       byte range inside its doc
 *   /atoms/mass               float32 [n_atoms]       Σ token mass (method.md §3)
 *   /atoms/com/<j>            [n_atoms, d]            CoM at layers[j]: bf16 stored as
 *                                                     uint16 (attr dtype="bfloat16"),
 *                                                     IEEE f16, or f32
 *   /atoms/topk_ids           int32   [n_atoms, k]    teacher ids, most probable first
 *   /atoms/topk_logprob       float16 [n_atoms, k]    log p over the FULL vocabulary
 *   /atoms/tail_mass          float32 [n_atoms]       1 - Σ exp(topk_logprob)
 *                             (these three are absent when k = 0, version 2)
 *   /teacher/tokenizer_json   uint8   [n]             the teacher's tokenizer.json
 *   /teacher/config_json      uint8   [n]             the teacher's config.json
 *   /student/tokenizer_json   uint8   [n]             only when atoms = "student"
 *
 * Invariants a reader checks at open (each failure its own message naming
 * the file and dataset): format name and version, complete == 1, no ".tmp"
 * name, every dataset present with the right type and shape, offsets start
 * at 0, never decrease and end at the dataset length, loss_start within its
 * doc. Atom byte ranges (0 <= start < end <= doc length, non-overlapping,
 * increasing) and top-k ids (< teacher_vocab_size) are checked as documents
 * are decoded. A zstd frame carries a checksum, so a damaged chunk is an
 * error, never silently wrong numbers.
 *
 * Versions: the writer writes 2; the reader accepts 1 and 2. Version 2
 * added k = 0 (no next-token top-k: the paper preset needs none) and the
 * mass rule "last:L", both of which a version-1 reader would misread.
 *
 * Lifetimes: a handle owns everything its pointers point to. cache_meta
 * strings from a reader are valid until cache_close; a cache_doc from
 * cache_read_doc / cache_iter_next is valid until the next such call on the
 * same reader. Writers copy what they are given.
 *
 * Threads: a handle is used by one thread at a time. The reader's read-ahead
 * runs its own workers; all HDF5 calls in the process (every reader and
 * writer) go through one lock, and decompression runs outside it.
 *
 * Errors: functions return 0 or a negative SRA_E_* code (util.h);
 * cache_writer_errmsg / cache_errmsg give the message. Open functions return
 * a handle even on failure (NULL only when out of memory) so the message can
 * be read; free it with cache_writer_free / cache_close.
 */
#ifndef SRA_CACHE_H
#define SRA_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "util.h"

#define CACHE_FORMAT "sra-cache"
#define CACHE_VERSION 2     /* what the writer writes */
#define CACHE_VERSION_MIN 1 /* the oldest the reader accepts */
#define CACHE_MAX_LAYERS 16
/* Layer ids: 0 = embeddings, i = output of block i (HF hidden_states[i]),
 * CACHE_LAYER_FINAL = the final-norm output that feeds the LM head. */
#define CACHE_LAYER_FINAL (-1)

typedef enum { CACHE_F32 = 0, CACHE_F16 = 1, CACHE_BF16 = 2 } cache_dtype;
const char *cache_dtype_name(cache_dtype t); /* "f32", "f16", "bf16" */
int cache_dtype_parse(const char *s, cache_dtype *t);
size_t cache_dtype_size(cache_dtype t);

/* Shard metadata (root attributes). Strings are UTF-8; NULL means "". */
typedef struct {
    const char *sra_version;              /* writer: NULL = this build */
    const char *created;                  /* writer: NULL = now, UTC ISO-8601 */
    const char *teacher_name;             /* free text, e.g. the model dir */
    const char *teacher_config_sha256;    /* of the canonical config.json */
    const char *teacher_weights_sha256;   /* sha256sum lines: "HEX  file\n"... */
    const char *teacher_tokenizer_sha256; /* writer computes it from the blob */
    int64_t teacher_vocab_size;           /* top-k ids are < this */
    const char *student_tokenizer_sha256; /* set when atoms = "student" */
    const char *atoms;                    /* "word" | "token" | "student" */
    const char *mass;                     /* "attn:L" | "last:L" | "self:L" | "uniform" */
    int n_layers;                         /* 1..CACHE_MAX_LAYERS */
    int32_t layers[CACHE_MAX_LAYERS];     /* one /atoms/com/<j> per entry */
    int64_t hidden_size;                  /* d */
    cache_dtype hidden_dtype;
    int64_t topk;                         /* k >= 0; 0 = no top-k datasets */
    double temperature;                   /* of the stored distribution (1) */
    const char *dataset_sha256;
    int64_t record_start, record_end;     /* records [start, end) of the dataset */
    int64_t shard_index, shard_count;     /* 0 <= index < count */
    const char *settings_json;            /* the extractor's full settings */
    const char *stats_json;               /* the extractor's counts for this shard
                                             (JSON object): written at finish by
                                             cache_writer_set_stats; reader: "{}"
                                             when the attribute is absent */
    int64_t format_version;               /* reader: the file's (1 or 2);
                                             writer: ignored (writes CACHE_VERSION) */

    /* Blobs. Writer: the bytes to store (teacher tokenizer and config are
     * required, the student tokenizer only with atoms = "student").
     * Reader: NULL until cache_read_blobs. */
    const uint8_t *teacher_tokenizer_json; size_t teacher_tokenizer_len;
    const uint8_t *teacher_config_json;    size_t teacher_config_len;
    const uint8_t *student_tokenizer_json; size_t student_tokenizer_len;
} cache_meta;

/* One document and its atoms. Writer: the caller's arrays. Reader: views
 * into the handle's buffers. Shapes use A = n_atoms, d, k from the meta. */
typedef struct {
    int64_t index;              /* reader: document number in the shard */
    int64_t record;             /* record number in the source dataset */
    const char *text;           /* (text_len) raw UTF-8, not NUL-terminated */
    int64_t text_len;
    int64_t loss_start;         /* 0 <= loss_start <= text_len */
    int64_t n_atoms;            /* A >= 1 */
    const int32_t *atom_start;  /* (A) byte offsets in text */
    const int32_t *atom_end;    /* (A) */
    const float *mass;          /* (A) */
    const void *com[CACHE_MAX_LAYERS]; /* (A, d) each, in hidden_dtype */
    const int32_t *topk_ids;    /* (A, k) */
    const uint16_t *topk_logprob; /* (A, k) IEEE half bits */
    const float *tail_mass;     /* (A) */
    /* With k = 0 the writer ignores the three top-k pointers (they may be
     * NULL); the reader gives non-NULL empty top-k arrays and a tail mass
     * of 1 for every atom (nothing kept: the tail is all the mass). */
} cache_doc;

/* ================================================================ writer */

typedef struct {
    int zstd_level;      /* 1..22; 0 = store uncompressed. Default 1 */
    int shuffle;         /* 1 = byte-shuffle multi-byte data before zstd;
                            0 = never; -1 = the measured default (CACHE.md) */
    size_t chunk_bytes;  /* raw bytes per CoM chunk; default 256 KiB */
} cache_write_opts;

void cache_write_opts_default(cache_write_opts *o);

typedef struct cache_writer cache_writer;

/* Creates PATH.tmp (replacing a stale one) and writes the metadata with
 * complete = 0. Memory stays bounded: rows are buffered one chunk per
 * dataset. opts may be NULL. */
int cache_writer_open(cache_writer **w, const char *path, const cache_meta *m,
                      const cache_write_opts *opts);
/* Appends one document (validated against the meta: ranges, shapes, ids). */
int cache_writer_add(cache_writer *w, const cache_doc *d);
/* Root attribute stats_json, written by cache_writer_finish (copied;
 * a later call replaces it). */
int cache_writer_set_stats(cache_writer *w, const char *stats_json);
/* Flushes, sets complete = 1, closes, fsyncs and renames PATH.tmp -> PATH. */
int cache_writer_finish(cache_writer *w);
/* Frees; a writer that did not finish removes its PATH.tmp. NULL is fine. */
void cache_writer_free(cache_writer *w);
const char *cache_writer_errmsg(const cache_writer *w);
int64_t cache_writer_n_docs(const cache_writer *w);

/* ================================================================ reader */

typedef struct cache_reader cache_reader;

int cache_open(cache_reader **r, const char *path);
void cache_close(cache_reader *r);
const char *cache_errmsg(const cache_reader *r);
const char *cache_path(const cache_reader *r);
const cache_meta *cache_meta_get(const cache_reader *r);
int64_t cache_n_docs(const cache_reader *r);
int64_t cache_n_atoms(const cache_reader *r);
int64_t cache_text_bytes(const cache_reader *r);

/* Loads the blobs into the meta and checks teacher_tokenizer_sha256. */
int cache_read_blobs(cache_reader *r);

/* Random access, synchronous. */
int cache_read_doc(cache_reader *r, int64_t i, cache_doc *d);

/* Sequential read of documents [first, end) with read-ahead by n_threads
 * background workers (>= 1) that decompress ahead of the consumer.
 * next returns 1 with a document, 0 at the end, < 0 on error. */
int cache_iter_begin(cache_reader *r, int64_t first, int64_t end, int n_threads);
int cache_iter_next(cache_reader *r, cache_doc *d);
void cache_iter_end(cache_reader *r);
/* Read-ahead granularity: documents are decoded in blocks of about this
 * many payload bytes (default 8 MiB; never less than one chunk of every
 * per-atom dataset). Takes effect at the next cache_iter_begin. */
void cache_set_block_bytes(cache_reader *r, size_t bytes);
/* Seconds the consumer spent waiting inside cache_iter_next (loader stalls). */
double cache_iter_wait_seconds(const cache_reader *r);

/* Per-dataset storage, for sra-inspect. */
typedef struct {
    char name[64];
    int64_t rows, cols;     /* cols = 1 for 1-D */
    int esize;              /* bytes per element */
    uint64_t raw_bytes;     /* rows * cols * esize */
    uint64_t stored_bytes;  /* on disk */
    int64_t chunk_rows;     /* 0 = not chunked */
    char filters[64];       /* e.g. "shuffle+zstd(3)" */
} cache_dataset_info;
/* Fills up to max entries; returns how many datasets there are. */
int cache_dataset_stats(cache_reader *r, cache_dataset_info *out, int max);

#endif /* SRA_CACHE_H */
