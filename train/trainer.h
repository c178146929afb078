/*
 * trainer.h - the training loop of sra-train (prefix trn_): plain
 * language-model training (cross-entropy on the student's own tokens),
 * evaluation in bits per byte, checkpoints and resume. Distillation (issue
 * 8) adds its losses on top of this loop.
 *
 * Output folder (out):
 *   train_config.json   the resolved configuration (every key, defaults
 *                       filled in; keys are the sra-train flags with
 *                       '-' -> '_')
 *   metrics.jsonl       one JSON object per step: step, loss, lr,
 *                       grad_norm, tokens_per_s, seconds; and per
 *                       evaluation: step, eval_loss, eval_ppl, eval_bpb,
 *                       eval_tokens, eval_bytes
 *   ckpt/step-NNNNNNNN/ checkpoints (checkpoint.h); ckpt/latest names the
 *                       newest complete one
 *   final/              the trained student as a Hugging Face folder
 *                       (config.json, model.safetensors) plus the
 *                       student's tokenizer.json: sra-generate reads it
 *
 * Resume (resume = 1): starts from ckpt/latest when there is one (model,
 * AdamW moments, step, data RNG), keeps metrics.jsonl up to that step and
 * continues; the losses are bit-identical to an uninterrupted run with the
 * same threads. The configuration must match the checkpoint's (refused
 * naming the key otherwise), except steps, eval_every, ckpt_every (and
 * the run-only stop_after).
 *
 * Distillation (cache set): documents come from the cache (loader.h,
 * shuffled by seed, resumable), each step runs dst_step (distill.h) on
 * accum micro-batches of batch documents truncated to seq student tokens;
 * the projection P (teacher width x student width) trains with the student
 * (AdamW, decayed, clipped together) and lives in the checkpoints'
 * extra.safetensors. Metrics add every loss term, the L_logit spans kept
 * and skipped, the teacher mass on shared keys, and the seconds waited
 * for the loader. The student's mass rule follows the cache's: attn:L ->
 * the attention its own last layer receives, last:L -> its own last
 * layer's last-query attention, uniform -> 1; a --student-mass that
 * differs from the cache's rule is refused, and so is a preset's expected
 * rule (paper: last, v1: attn) when the cache has the other one (uniform
 * is accepted by both: the unweighted-pooling ablation). --span-logits
 * head needs the teacher head stored in the cache (cache_head.h), of
 * which only the rows of the shared id pairs are read; next, uld and
 * mined need a cache with top-k (k > 0).
 *
 * A step: accum micro-batches of batch x seq tokens (random windows of
 * the training stream, lmdata.h), gradients averaged over all counted
 * tokens of the step, clipped to clip (global L2 norm; 0 = off), AdamW at
 * the scheduled learning rate (adamw.h).
 *
 * Data parallelism (dist.h; sra-train-mpi under mpirun): W ranks each run
 * accum micro-batches of batch rows per step, so the global batch is
 * batch x accum x W. Rank R's micro-batches are numbers R*accum ..
 * R*accum+accum-1 of the accum*W that one process with --accum accum*W
 * runs, from the same documents (loader.h: ranks read disjoint blocks of
 * the cache's stream) or windows (every rank draws all windows, computes
 * its own): so W ranks compute the step of one process with accum*W, up
 * to the order of float sums. Gradients (and P's) are summed over ranks
 * before clipping; every rank then runs the same AdamW update. Evaluation
 * batches are dealt to the ranks and the sums added. Rank 0 alone writes
 * train_config.json, metrics.jsonl (with "ranks" and "allreduce_s", the
 * seconds of the step spent in the all-reduce), checkpoints and final/;
 * the others write nothing. At each checkpoint the ranks check that their
 * weights are identical. A checkpoint records its world size; resuming
 * with another is refused (the global batch would change).
 *
 * Stop: when *stop becomes non-zero (SIGTERM from SLURM preemption,
 * scancel or mpirun, or SIGINT), the step in progress finishes, a
 * checkpoint is written and trn_run returns SRA_E_STOPPED saying how to
 * resume. With several ranks the flag is summed with the step's
 * statistics so that every rank stops after the same step. A rank whose
 * peers died stops while waiting in a collective (dist.h) and returns
 * SRA_E_STOPPED naming it; the newest checkpoint is the place to resume.
 */
#ifndef SRA_TRAINER_H
#define SRA_TRAINER_H

#include <signal.h>
#include <stdint.h>
#include <stdio.h>

#include "util.h"

typedef struct {
    /* data */
    const char *const *data; int n_data;   /* training files */
    const char *const *eval; int n_eval;   /* held-out files (may be 0) */
    const char *tokenizer;                 /* the student's tokenizer.json */
    const char *text_field;                /* JSONL field (default text) */
    int64_t max_bytes;                     /* .txt document cut (dataset.h) */
    /* distillation (issue 8): a teacher cache (sra-extract output folder)
     * instead of --data, and the method with its weights (method.md §5-6) */
    const char *cache;
    int cache_layer;                       /* stored CoM layer to use (-1 = final norm) */
    const char *method;                    /* ce | sra | uld | mined (sra) */
    double alpha, beta, gamma, tau, min_shared_mass, logit_weight; /* NAN: the preset's */
    const char *pool;                      /* exact | firstword | strip (NULL: the preset's) */
    const char *span_loss;                 /* cos | mse */
    /* the preset (method.md §9: paper; §1-§8: v1) and its switches, each
     * NULL / -1 / NAN = the preset's value (trn_resolve fills them) */
    const char *preset;                    /* paper | v1 (NULL: paper for sra, v1 for the others) */
    const char *span_logits;               /* head | next */
    const char *student_mass;              /* last | attn | uniform: must be the cache's rule */
    int tau2;                              /* 1: KL times tau^2 */
    const char *spans;                     /* response | all */
    const char *span_weights;              /* salience | uniform */
    const char *layer_map;                 /* "T:S[:w],..." teacher (cache) : student layer pairs of L_span */
    const char *boundaries;                /* canonical | exact */
    /* model: from a Hugging Face folder, or a new one of this shape */
    const char *from;
    int d_model, layers, heads, kv_heads, ffn, tie, max_pos;
    double rope_theta;
    /* optimization */
    int batch, seq, accum;
    int64_t steps, warmup;
    double lr, min_lr, weight_decay, beta1, beta2, eps, clip;
    uint64_t seed;
    int64_t eval_every, ckpt_every, eval_max_windows;
    /* run */
    const char *out;
    int resume;
    int64_t stop_after;                    /* > 0: stop (with a checkpoint) after this
                                              many steps of this run; the schedule still
                                              runs to `steps` (time-limited jobs) */
    FILE *progress;                        /* progress line / summaries (NULL = silent) */
    const volatile sig_atomic_t *stop;     /* set by a signal handler (may be NULL): see Stop */
} trn_config;

void trn_config_default(trn_config *c);

/* Fills every preset-dependent key left unset (NULL, -1, NAN) from the
 * preset (c->preset, or paper for --method sra and v1 otherwise) and
 * checks the values (0, or SRA_E_ARG naming the flag). The student mass
 * rule is left for the cache to decide (trn_run). */
int trn_resolve(trn_config *c, sra_err *e);

/* Resolved configuration as a JSON object string (malloc'd). */
char *trn_config_json(const trn_config *c);

typedef struct {
    int64_t steps_done;
    double first_loss, last_loss;
    double eval_loss, eval_bpb;          /* the last evaluation (NAN when none) */
    int64_t params;
    double tokens_per_s;
    int clean_stop;                      /* SRA_E_STOPPED after a step, with a checkpoint */
} trn_report;

int trn_run(const trn_config *c, trn_report *rep, sra_err *e);

#endif /* SRA_TRAINER_H */
