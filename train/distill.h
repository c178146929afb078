/*
 * distill.h - one distillation micro-batch (prefix dst_): cache documents
 * (loader.h) → student tokens → spans = atoms ∩ student boundaries
 * (spans.h) → teacher span CoMs by the composition law → student forward
 * → CE + L_span + L_geo + L_logit (or ULD / MinED) → gradients in the
 * student and in the projection P (method.md §2-§6).
 *
 * Per document (one sequence of the batch):
 *   - the student encodes the document's text (its template tokens
 *     included), truncated to T tokens; CE targets are the next tokens
 *     whose bytes end after the document's loss_start (template tokens
 *     at the end count when loss_start <= their position);
 *   - spans: span_spans over the cache's atoms and the kept student
 *     tokens; teacher span CoM and mass: span_merge of the atoms;
 *     salience W_s = M_s / sum M (teacher masses, per sequence);
 *   - student span CoM: c_s = sum m_i h_i / sum m_i over the span's
 *     student tokens, h the final-norm output, m the student's own mass by
 *     the same rule (attention received in its last layer, or 1 for
 *     `uniform`), floored at 1e-6, a constant (no gradient through m);
 *   - L_logit at each span whose end is followed by a student token: the
 *     student's logits at the span's last token against the teacher's
 *     top-k at the span's last atom, pooled on the shared vocabulary;
 *     spans whose top-k puts less than min_shared_mass on shared keys are
 *     skipped and counted;
 *   - ULD at the same span ends; MinED at spans of exactly one atom and
 *     one student token (one-to-one positions; a token cache gives many).
 * The total per micro-batch: (1 - alpha) CE_mean + alpha * mean over
 * sequences of (L_logit + beta L_span + gamma L_geo) for sra; (1 - alpha)
 * CE + alpha L_uld / L_mined for the baselines; CE alone for ce. Each
 * L_logit, ULD, MinED is a salience-weighted sum over its spans, as
 * L_span.
 *
 * The paper preset (method.md §9) is a set of switches in dst_config,
 * each on its own so that an ablation changes one thing:
 *   - student_mass DST_MASS_LAST: the student's token weights are its own
 *     last layer's last-real-query attention (§9.1), model.h
 *     MODEL_MASS_LAST;
 *   - logits DST_LOGITS_HEAD (§9.2): L_logit = SUM over spans (not
 *     salience-weighted) of KL(softmax(W_T c_T[shared] / tau) ||
 *     softmax(W_S c_S[shared] / tau)) with each model's LM head on its
 *     final-norm span CoM (the student's unprojected, with gradient into
 *     its head and hidden states), shared = the id pairs head_t_ids /
 *     head_s_ids (vocab.h, pool exact); times tau^2 only with tau2;
 *     every span takes part (no "followed by a student token" rule, no
 *     min_shared_mass);
 *   - tau2: the next-token KL (DST_LOGITS_NEXT) is multiplied by tau^2 as
 *     v1 does; with tau2 = 0 it is not (method.md §9.2 "no tau^2");
 *   - uniform_spans: W_s = 1/G instead of the salience M_s / sum M (the
 *     paper's "weighted span loss" switch off), for every span term;
 *   - response_only (§9.5): only spans that start at or after the
 *     document's loss_start (canonical position) exist; the prompt is
 *     context, never a span;
 *   - exact_boundaries (§9.7): the student's token ends are compared
 *     with the atoms' cuts without the canonical whitespace map;
 *   - layer pairs (§9.6): L_span = sum_p w_p L_span(pair p), pair p
 *     aligning the cache's CoM slot p (ldr_doc.coms[p]) with the
 *     student's residual stream after block pair_student[p] (0 =
 *     embeddings, -1 = final-norm output), each with its own projection
 *     P_p (rows p*dT .. of P); L_geo uses the last pair; the head term
 *     uses the final-norm CoMs (teacher slot head_slot).
 * With the v1 switches (attn or uniform mass, next, tau2, salience, whole
 * text, canonical, one pair (-1 : -1)) every value and gradient is
 * computed exactly as before (bit for bit).
 */
#ifndef SRA_DISTILL_H
#define SRA_DISTILL_H

#include <stdint.h>

#include "loader.h"
#include "model.h"
#include "tokenizer.h"
#include "vocab.h"

typedef enum { DST_CE = 0, DST_SRA, DST_ULD, DST_MINED } dst_method;
int dst_method_parse(const char *s);
const char *dst_method_name(dst_method m);

typedef enum { DST_MASS_ATTN = 0, DST_MASS_LAST, DST_MASS_UNIFORM } dst_mass;
typedef enum { DST_LOGITS_NEXT = 0, DST_LOGITS_HEAD } dst_logits;
#define DST_MAX_PAIRS 8

typedef struct {
    dst_method method;
    double alpha, beta, gamma, tau, min_shared_mass;
    double logit_weight;  /* weight of L_logit inside the alpha term (1; 0 = the "no logit" ablation) */
    int span_mse;         /* 0: cosine L_span, 1: mse on layer-normalized vectors */
    dst_mass student_mass; /* the student's mass rule (the cache's) */
    dst_logits logits;    /* span logits: next-token top-k at span ends (v1) or head on CoMs (paper) */
    int tau2;             /* multiply the span KL by tau^2 */
    int uniform_spans;    /* W_s = 1/G (WSL off) instead of salience */
    int response_only;    /* spans from loss_start on */
    int exact_boundaries; /* no canonical whitespace map on the student side */
    int n_pairs;          /* layer pairs of L_span, 1..DST_MAX_PAIRS */
    int pair_student[DST_MAX_PAIRS];  /* student layer of pair p: 0..L, -1 = final norm */
    double pair_weight[DST_MAX_PAIRS]; /* normalized to sum 1 */
    int head_slot;        /* DST_LOGITS_HEAD: the coms slot of the teacher's final-norm CoMs */
    int n_head;           /* shared id pairs of the head term */
    const float *head_T;  /* (n_head, dT) teacher LM-head rows of the pairs (float32) */
    const int32_t *head_s_ids; /* (n_head) the student ids of the pairs */
} dst_config;

/* dst_config with the v1 switches (method.md §1-§8) for a method. */
void dst_config_v1(dst_config *c, dst_method m);

/* What one micro-batch measured (sums, so steps can add them up). */
typedef struct {
    double loss;                          /* the total */
    double ce, span, geo, logit, uld, mined; /* per-sequence means (ce: per token) */
    int64_t seqs, tokens, spans, logit_spans, logit_skipped;
    double shared_mass_sum;               /* teacher top-k mass on shared keys, summed over L_logit spans */
} dst_stats;

typedef struct dst_ctx dst_ctx;

/* dT: the teacher's hidden size (P is n_pairs*dT x dS: pair p's projection
 * is rows p*dT .. p*dT+dT-1). */
dst_ctx *dst_new(const dst_config *c, const tok_tokenizer *student, vocab_map *v, int dT);
void dst_free(dst_ctx *x);

/* One micro-batch of B documents, each truncated to T student tokens.
 * P (n_pairs*dT, dS) and dP the projections and their gradient. Returns 0,
 * or -1 with err (out of memory, a document the student cannot encode). */
int dst_step(dst_ctx *x, model *m, const ldr_doc *docs, int B, int T, const float *P, float *dP, float grad_scale,
             dst_stats *st, char *err, size_t errlen);

#endif /* SRA_DISTILL_H */
