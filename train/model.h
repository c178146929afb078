/*
 * model.h - the student: a Llama-family transformer trained in C (prefix
 * model_), llm.c style.
 *
 * Architecture (config.h's cfg_model; model_type llama or qwen2): token
 * embedding, L blocks of [RMSNorm, q/k/v projections (optional bias), RoPE,
 * causal GQA attention, o projection (optional bias), residual, RMSNorm,
 * SwiGLU MLP, residual], final RMSNorm, LM head (optionally tied to the
 * embedding). Not supported for training: qwen3's q/k norms (refused).
 *
 * Memory (llm.c): the parameters are one float32 allocation, the gradients
 * a second with the same layout, the activations a third; named pointers
 * point into them. model_tensor lists every parameter tensor with its
 * Hugging Face name (LlamaForCausalLM naming), shape, offset in the slab
 * and whether AdamW decays it (matrices yes; norms and biases no).
 *
 * Forward keeps, per layer, what backward needs (inputs of every matmul
 * and norm, post-RoPE q and k, the attention output, gate and up); the
 * attention probabilities are recomputed in backward one head at a time.
 * The LM head runs in row blocks: with targets, model_forward computes the
 * loss block by block and, when grad_scale > 0, the head's backward at
 * once (dlogits of a block never outlive it), so the B*T*V logits never
 * exist whole.
 *
 * Gradients accumulate (+=) into m->grads across forward/backward pairs
 * (gradient accumulation); model_zero_grad clears them.
 *
 * Errors: functions returning int give 0 or -1 with a message in err
 * naming the file, tensor or key. Not thread-safe per model; the math uses
 * layers_threads() threads inside.
 */
#ifndef SRA_MODEL_H
#define SRA_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"

/* want_mass values: which attention rule fills model.mass */
#define MODEL_MASS_ATTN 1
#define MODEL_MASS_LAST 2

typedef struct {
    char name[96];       /* Hugging Face name */
    int ndim;            /* 1 or 2 */
    int64_t shape[2];
    size_t off, n;       /* in floats, into params / grads */
    int decay;           /* AdamW weight decay applies */
} model_tensor;

/* Views of one block's parameters (or gradients); bias pointers are NULL
 * when the config has none. */
typedef struct {
    float *ln1;             /* (C) */
    float *wq, *bq;         /* (QD,C), (QD) */
    float *wk, *bk;         /* (KD,C), (KD) */
    float *wv, *bv;         /* (KD,C), (KD) */
    float *wo, *bo;         /* (C,QD), (C) */
    float *ln2;             /* (C) */
    float *wg, *wu;         /* (I,C) */
    float *wd;              /* (C,I) */
} model_block;

typedef struct {
    cfg_model c;
    int n_tensors;
    model_tensor *tensors;
    size_t n_params;
    float *params, *grads;              /* (n_params) each */
    float *wte, *lnf, *head;            /* (V,C), (C), (V,C) (head == wte when tied) */
    float *dwte, *dlnf, *dhead;
    model_block *blk, *dblk;            /* (L) */
    double *inv_freq;                   /* (HS/2) RoPE */

    /* activations for up to act_rows = B*T rows (model_forward grows them) */
    size_t act_rows;
    float *acts;                        /* the one allocation */
    float *x;                           /* (L+1, N, C) residual stream into each block, and after the last */
    float *h1, *q, *k, *v, *att, *xm, *h2, *g, *u, *s; /* (L, N, *) per block */
    float *hf;                          /* (N, C) final-norm output */
    int want_mass;                      /* set by the caller: fill mass in model_forward by this
                                           rule: 0 none, MODEL_MASS_ATTN, MODEL_MASS_LAST */
    float *mass;                        /* (N) the last layer's token mass: the attention each
                                           token receives (attn:L, method.md §3) or the last real
                                           query's attention (last:L, §9.1); a constant for losses */
    float **dres;                       /* NULL, or (L+1) pointers, each NULL or (N,C): extra
                                           gradients of the residual stream x_l (0 = embeddings,
                                           l = after block l), added by model_backward where the
                                           backward passes x_l (losses on inner layers, §9.6) */
    float *cos, *sin;                   /* (N, HS/2) */
    int32_t *pos;                       /* (N) */
    float *scratch;                     /* attention forward scratch */
    size_t scratch_floats;
    float *dacts;                       /* backward buffers, one allocation */
    float *dx, *dh, *dq, *dk, *dv, *datt, *dg, *du, *ds, *dhf;
    float *logits;                      /* (logit_rows, V) one block of the head */
    float *dlogits;                     /* (logit_rows, V) its gradient */
    int logit_rows;

    /* the last forward */
    int B, T;
    const int32_t *ids;                 /* caller's, kept for backward */
    const uint8_t *valid;
    double loss_sum;                    /* sum of -ln p(target) over counted rows */
    int64_t loss_count;                 /* counted rows */
} model;

/* A new model from a config with seeded random weights (HF's Llama init:
 * matrices ~ N(0, 0.02), norms 1, biases 0). */
int model_init(model *m, const cfg_model *c, uint64_t seed, char *err, size_t errlen);
/* A model from a Hugging Face folder (config.json + safetensors). */
int model_load_hf(model *m, const char *dir, char *err, size_t errlen);
/* Writes dir/config.json and dir/model.safetensors (F32, LlamaForCausalLM
 * names; tied embeddings stored once, as HF does). */
int model_export_hf(const model *m, const char *dir, char *err, size_t errlen);
void model_free(model *m);

/* ids, targets (B,T) (targets -1: not counted; NULL: no loss); valid (B,T)
 * or NULL (all real). Returns the mean loss over counted rows (0 when
 * none). With grad_scale > 0 (and targets) the head's gradients are
 * accumulated at once, each counted row's dlogits scaled by grad_scale
 * (pass 1 / count for the mean, divided again for accumulation), and
 * model_backward may follow. Returns a negative value when out of memory. */
float model_forward(model *m, const int32_t *ids, const int32_t *targets, const uint8_t *valid, int B, int T,
                    float grad_scale);
/* A hook into the LM head's row blocks, for losses on the student's
 * logits beside CE (distill.h's span-end terms): for every block of rows
 * [r0, r0 + R) that holds a wanted row (rows, (B*T)) or a target, fn gets
 * the block's logits (R,V) and, when gradients are on, its dlogits (R,V)
 * already holding CE's part: fn adds its own dL/dlogits there. The head's
 * backward then carries both, and no logits are computed twice. */
typedef struct {
    const uint8_t *rows;
    void (*fn)(void *ctx, size_t r0, int R, const float *logits, float *dlogits);
    void *ctx;
} model_head_hook;
float model_forward_hook(model *m, const int32_t *ids, const int32_t *targets, const uint8_t *valid, int B, int T,
                         float grad_scale, const model_head_hook *hook);

/* Backward of the last forward (made with grad_scale > 0): += into grads. */
void model_backward(model *m);
void model_zero_grad(model *m);
/* Number of targets >= 0 in (N). */
int64_t model_count_targets(const int32_t *targets, size_t N);
/* Logits (R,V) of rows r0..r0+R of the last forward's final hidden states. */
void model_logits(model *m, int r0, int R, float *out);
/* The tensor named name, or NULL. */
const model_tensor *model_find(const model *m, const char *name);

#endif /* SRA_MODEL_H */
