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
 * Gradients accumulate into the model (model.h) and into dP, each scaled
 * by grad_scale (1 / micro-batches for accumulation).
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

typedef struct {
    dst_method method;
    double alpha, beta, gamma, tau, min_shared_mass;
    double logit_weight;  /* weight of L_logit inside the alpha term (1; 0 = the "no logit" ablation) */
    int span_mse;         /* 0: cosine L_span, 1: mse on layer-normalized vectors */
    int student_uniform;  /* student mass rule: 0 = attention (last layer), 1 = uniform */
} dst_config;

/* What one micro-batch measured (sums, so steps can add them up). */
typedef struct {
    double loss;                          /* the total */
    double ce, span, geo, logit, uld, mined; /* per-sequence means (ce: per token) */
    int64_t seqs, tokens, spans, logit_spans, logit_skipped;
    double shared_mass_sum;               /* teacher top-k mass on shared keys, summed over L_logit spans */
} dst_stats;

typedef struct dst_ctx dst_ctx;

/* dT: the teacher's hidden size (P is dT x dS). */
dst_ctx *dst_new(const dst_config *c, const tok_tokenizer *student, vocab_map *v, int dT);
void dst_free(dst_ctx *x);

/* One micro-batch of B documents, each truncated to T student tokens.
 * P (dT, dS) and dP (dT, dS) the projection and its gradient. Returns 0,
 * or -1 with err (out of memory, a document the student cannot encode). */
int dst_step(dst_ctx *x, model *m, const ldr_doc *docs, int B, int T, const float *P, float *dP, float grad_scale,
             dst_stats *st, char *err, size_t errlen);

#endif /* SRA_DISTILL_H */
