/*
 * teacher.h - a Hugging Face Llama-family checkpoint run forward with
 * capture (prefix teacher_): what sra-extract needs from the teacher and
 * no inference engine exposes.
 *
 * Model: config.json (config.h: llama, mistral, qwen2, qwen3) and
 * *.safetensors (safetensors.h). Weights stay in the read-only mapping:
 * F32 tensors are used in place (no second copy); F16/BF16 matrices are
 * converted inside each matmul, a block of rows at a time into a per-thread
 * scratch (layers.h matmul_forward_seq), vectors once per layer, and the
 * embedding rows as they are looked up. Peak memory is the mapping plus
 * that scratch (at most one matrix, or threads x 1024 rows) plus the
 * activations of one batch.
 *
 * Forward over a batch of B sequences of up to T tokens, right-padded
 * (valid (B,T): 1 for real tokens, which form a prefix of each row), using
 * train/layers.h. Capture, all optional:
 *   hidden    the residual stream after chosen layers (0 = embeddings,
 *             l = after layer l), and the final-norm output (what feeds
 *             the LM head), each (B,T,C);
 *   mass      one chosen layer's attention as a token mass (B,T), by
 *             one of two rules: the attention each token receives,
 *             averaged over heads and over the queries that see it
 *             (method.md §3, attention_forward's mass), or the attention
 *             of each sequence's last real query, summed over heads and
 *             normalized over its keys (§9.1, attention_last_mass; 0 at
 *             padding). Neither is floored. Only in teacher_forward, never
 *             in generation;
 *   top-k     log-softmax over the full vocabulary, k best ids with their
 *             log-probs and the tail mass, computed a block of rows at a
 *             time (never B*T*V logits);
 *   logits    the full (B,T,V) logits, for tests and small vocabularies.
 *
 * Generation: a KV cache for one sequence (teacher_gen_*), used by
 * sra-generate to prove a checkpoint loads and runs.
 *
 * Errors: teacher_load returns a handle whose teacher_errmsg names the
 * file, tensor or config key at fault. Not thread-safe: one forward at a
 * time per handle (it uses OpenBLAS's threads inside).
 */
#ifndef SRA_TEACHER_H
#define SRA_TEACHER_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "safetensors.h"

typedef struct teacher teacher;

/* dir holds config.json and model.safetensors (or an index and shards). */
int teacher_load(teacher **out, const char *dir);
const char *teacher_errmsg(const teacher *t);
void teacher_free(teacher *t);
const cfg_model *teacher_config(const teacher *t);
/* "F32", "F16", "BF16" (the dtype of the layer weights) */
const char *teacher_weight_dtype(const teacher *t);
/* The LM head as the checkpoint stores it (the embedding table when tied):
 * what sra-extract copies into the cache (cache_head.h). Valid until
 * teacher_free. */
const st_tensor *teacher_head_tensor(const teacher *t);

/* The two attention masses (see the capture above). */
typedef enum {
    TEACHER_MASS_RECEIVED = 0, /* method.md §3: attention received, mean over heads and queries */
    TEACHER_MASS_LAST          /* method.md §9.1: the last real query's row, summed over heads, normalized */
} teacher_mass_rule;

/* What one forward should produce; NULL pointers are not captured. */
typedef struct {
    int n_hidden;            /* layers to capture, values in 0..L */
    const int *hidden_layers;
    float **hidden;          /* n_hidden outputs, each (B,T,C) */
    float *final_hidden;     /* (B,T,C) after the final norm */
    int mass_layer;          /* 1..L: whose attention gives mass */
    teacher_mass_rule mass_rule; /* how (0 = received, the default) */
    float *mass;             /* (B,T) */
    int topk;                /* k for top-k (0: none) */
    int32_t *topk_ids;       /* (B,T,k) */
    float *topk_logprobs;    /* (B,T,k) */
    float *tail;             /* (B,T) 1 - sum of top-k probabilities */
    float *logits;           /* (B,T,V) */
    /* (B,T) or NULL (every row): top-k and logits only for rows where it
     * is 1, the other rows of their outputs left untouched. The LM head
     * is the largest matmul of a big-vocabulary model, and sra-extract
     * needs it only at atom ends. */
    const uint8_t *rows;
} teacher_capture;

/* ids (B,T); valid (B,T) or NULL (all real). Returns 0 or < 0 with
 * teacher_errmsg (out of memory, id outside the vocabulary, T above
 * max_position_embeddings). */
int teacher_forward(teacher *t, const int32_t *ids, const uint8_t *valid, int B, int T,
                    const teacher_capture *cap);

/* Incremental decoding of one sequence with a KV cache of max_T positions:
 * teacher_gen_begin, then teacher_gen_step with the next ids (the prompt
 * at once, then one token at a time); logits (V) of the last position. */
int teacher_gen_begin(teacher *t, int max_T);
int teacher_gen_step(teacher *t, const int32_t *ids, int n, float *logits);

/* Floating-point operations of a forward over N tokens with context T
 * (matmuls and attention, 2 per multiply-add), for GFLOP/s reports. */
double teacher_forward_flops(const cfg_model *c, int B, int T);

#endif /* SRA_TEACHER_H */
