/*
 * loader.h - streams a teacher cache (an sra-extract output folder) for
 * sra-train (prefix ldr_). The teacher is never loaded: everything comes
 * from the shards (cache.h) and their manifest.
 *
 * Opening checks: manifest.json present with "complete": true (else the
 * message says which shards are missing and the command that finishes
 * them), every shard opens (format version, completeness), the shards
 * agree on atoms mode, mass, layers, hidden size and top-k, and the
 * teacher tokenizer blob is present (loaded and checked against its
 * sha256). The caller checks that the atoms mode suits its method.
 *
 * Order: documents are read in CHUNKS of consecutive documents of one
 * shard (LDR_CHUNK_DOCS). Each epoch visits every chunk of every shard
 * once, in an order drawn from the seed and the epoch number (so a run is
 * repeatable and resumable from (epoch, position)); inside a chunk,
 * documents keep their order. Resident memory does not grow with the
 * cache: one chunk being decoded ahead plus the one being consumed.
 *
 * Prefetch: a background thread decodes the next chunk while the caller
 * consumes the current one; ldr_wait_seconds tells how long the caller
 * waited for it.
 *
 * Documents handed out are copies that stay valid until ldr_recycle (the
 * caller's end of a batch): the chunk buffers they come from are refilled
 * by the prefetch thread as soon as the stream moves to the next chunk,
 * which can happen in the middle of a batch. CoMs are converted to float32 for the chosen layers (see
 * ldr_open). Threads: one consumer thread.
 */
#ifndef SRA_LOADER_H
#define SRA_LOADER_H

#include <stdint.h>

#include "cache.h"
#include "cache_head.h"
#include "tokenizer.h"

#define LDR_CHUNK_DOCS 64
#define LDR_MAX_LAYERS 9 /* CoM layers one loader hands out */

typedef struct {
    int64_t record;
    const char *text;         /* (len) not NUL-terminated */
    int64_t len, loss_start;
    int64_t A;                /* atoms */
    int k;                    /* top-k per atom; 0 for a cache without
                                 top-k (then tail is 1 for every atom) */
    const int32_t *start, *end; /* (A) byte ranges in text */
    const float *mass;        /* (A) */
    const float *com;         /* (A, d) float32: coms[0] */
    const float *coms[LDR_MAX_LAYERS]; /* (A, d) float32 each: the layers asked for at open, in
                                 that order (NULL past them) */
    const int32_t *topk_ids;  /* (A, k) */
    const float *topk_lp;     /* (A, k) */
    const float *tail;        /* (A) */
} ldr_doc;

typedef struct ldr ldr;

/* dir: an sra-extract output folder. layers (n_layers, 1..LDR_MAX_LAYERS):
 * which stored CoM layers to hand out, values of the cache's layers list
 * (e.g. CACHE_LAYER_FINAL), repeats allowed; n_layers 0: the final norm.
 * A layer the cache lacks is refused, naming the ones it has. */
int ldr_open(ldr **l, const char *dir, const int32_t *layers, int n_layers, uint64_t seed, char *err,
             size_t errlen);
void ldr_close(ldr *l);
const cache_meta *ldr_meta(const ldr *l);          /* shard 0's metadata */
/* The teacher's LM head stored with the cache (cache_head.h), checked
 * against the manifest's sha256 and the shards' vocabulary and hidden size.
 * Returns 0, SRA_E_MISSING when the cache has none (made before the head
 * travelled: err says to re-extract), or another SRA_E_* code; err says
 * why. The caller closes *h (cache_head_close) in every case. */
int ldr_head_open(const ldr *l, cache_head **h, char *err, size_t errlen);
const tok_tokenizer *ldr_teacher_tokenizer(const ldr *l);
int64_t ldr_n_docs(const ldr *l);
/* Position for checkpoints: (epoch, chunk index in the epoch's order,
 * document inside the chunk). */
void ldr_tell(const ldr *l, int64_t pos[3]);
int ldr_seek(ldr *l, const int64_t pos[3], char *err, size_t errlen);
/* The next document (wrapping into the next epoch). Returns 0 or -1 with
 * err (a damaged shard, named). */
int ldr_next(ldr *l, ldr_doc *d, char *err, size_t errlen);

/* Data parallelism (trainer.h): the stream of documents is cut into blocks
 * of `block` consecutive documents, dealt to the ranks in turn; this
 * loader hands out (and decodes) only rank's blocks, skipping the others'
 * without reading them. Counting starts at the current position. With
 * world = 1 nothing changes. ldr_end_step skips to the start of the next
 * round of blocks (after the other ranks' blocks of this step), so that
 * ldr_tell then names the same position on every rank: the position of a
 * single process that read every block. Both return 0 or -1 with err. */
int ldr_set_part(ldr *l, int rank, int world, int64_t block, char *err, size_t errlen);
int ldr_end_step(ldr *l, char *err, size_t errlen);
double ldr_wait_seconds(const ldr *l);
/* The caller is done with every document handed out so far (their memory
 * is reused by the next ldr_next). */
void ldr_recycle(ldr *l);

#endif /* SRA_LOADER_H */
