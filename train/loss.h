/*
 * loss.h - the distillation losses of method.md §4-§6, each with its
 * gradient (prefix loss_). Pure math on float arrays, no I/O, no global
 * state; every function is safe to call from many threads on distinct
 * outputs.
 *
 * Conventions: values are returned as double (accumulated in double);
 * gradients are ACCUMULATED (+=) into the caller's arrays, multiplied by
 * `scale` (the caller folds in alpha, beta, gamma, averaging); a NULL
 * gradient pointer means "not wanted". S spans, dS student width, dT
 * teacher width, V_S student vocabulary, K shared keys, k teacher top-k.
 * Norms are guarded: a vector of norm below 1e-12 counts as norm 1e-12
 * (no NaN); that floored norm is a constant for the gradient (as
 * torch's clamp_min), so a zero student row gets a large but finite one.
 * Scratch buffers need no initialization. The span losses and L_geo
 * allocate their temporaries (and return NaN if that fails).
 *
 * The executable oracle for the values is ../shared/tools/sra_ref.py
 * (l_span, l_geo, kl_pooled, head_logit_kl); gradients are checked
 * against PyTorch autograd in tests/test_loss.c.
 */
#ifndef SRA_LOSS_H
#define SRA_LOSS_H

#include <stddef.h>
#include <stdint.h>

/* ----------------------------------------------------------- L_span */

/* method.md §5: L = sum_s W_s (1 - cos(P cS_s, cT_s)).
 * W (S) salience, cS (S,dS) student span CoMs, cT (S,dT) teacher CoMs,
 * P (dT,dS) the learned projection (bias-free).
 * dcS (S,dS) += scale * dL/dcS; dP (dT,dS) += scale * dL/dP. */
double loss_span_cos(float *dcS, float *dP, const float *W, const float *cS, const float *cT, const float *P, int S,
                     int dS, int dT, float scale);

/* The `mse` option of L_span: L = sum_s W_s * mean_j (LN(P cS_s)_j - LN(cT_s)_j)^2
 * with LN(x) = (x - mean(x)) / sqrt(var(x) + 1e-5) (no affine). */
double loss_span_mse(float *dcS, float *dP, const float *W, const float *cS, const float *cT, const float *P, int S,
                     int dS, int dT, float scale);

/* ------------------------------------------------------------ L_geo */

/* method.md §5: with c^ = c / |c| (rows), G^S = c^S c^S^T (S,S), G^T likewise,
 * L = sum_{s != t} W_s W_t (G^S_st - G^T_st)^2 / sum_{s != t} W_s W_t
 * (0 when S < 2). dcS (S,dS) += scale * dL/dcS (the teacher side is
 * constant). */
double loss_geo(float *dcS, const float *W, const float *cS, const float *cT, int S, int dS, int dT, float scale);

/* ---------------------------------------------------------- L_logit */

/* method.md §4: the span-end KL over the shared vocabulary, one span.
 *   z (V_S) student logits at the span end (row of the LM head);
 *   teacher: top-k ids t_ids (k) with log-probs t_lp (k) (normalized over
 *   the full teacher vocabulary; ids < 0 are ignored);
 *   t_key: teacher id -> shared key 0..K-1 or -1; s_key: student id -> key
 *   or -1 (V_S entries).
 * Pooling: pT(key) = sum of exp(t_lp) over the top-k ids with that key (the
 * tail mass has no ids and pools nowhere); pS(key) = sum of softmax(z)
 * over the student ids with that key. Both renormalized over the keys at
 * temperature tau: q(key) proportional to p(key)^(1/tau).
 * L = tau^2 * sum_key qT log(qT / qS) (terms with qT = 0 are 0).
 * *shared_mass = sum of pT over the keys (the teacher mass the pooling
 * keeps; the caller skips spans below min_shared_mass and does not call
 * the gradient then). When that mass is 0 the loss is 0.
 * Every key must have at least one student id (shared keys occur on both
 * sides by construction); a key the teacher reaches with none gives +inf.
 * The global softmax normalizer cancels in the renormalization over keys,
 * so student ids without a key get exactly zero gradient.
 * dz (V_S) += scale * dL/dz. scratch: loss_logit_scratch(V_S, K) doubles.
 * O(V_S + K); no per-key transcendental at tau = 1. */
size_t loss_logit_scratch(int V_S, int K);
double loss_logit_kl(float *dz, const float *z, int V_S, const int32_t *t_ids, const float *t_lp, int k,
                     const int32_t *t_key, const int32_t *s_key, int K, float tau, float scale, double *shared_mass,
                     double *scratch);

/* ------------------------------------------- L_logit, paper preset */

/* method.md §9.2: span logits are the LM heads applied to the span CoMs,
 * restricted to the K shared pairs of pool=exact (vocab.h: pair_t, pair_s):
 *   cS (S,dS) the student's unprojected final-norm span CoMs (with
 *   gradient), cT (S,dT) the teacher's (constant); WT (K,dT) the teacher
 *   head's rows of the pairs' teacher ids, in pair order (constant); WS
 *   (V_S,dS) the student's FULL LM head, s_ids (K) the pairs' student ids
 *   (rows of WS, each in [0, V_S); the caller guarantees the range).
 *   zT = cT WT^T (S,K), zS = cS WS[s_ids]^T (S,K),
 *   L = f * sum_s w_s KL(softmax(zT_s / tau) || softmax(zS_s / tau)),
 *   w (S) span weights, or NULL for every weight 1 (the paper's plain sum;
 *   a salience-weighted ablation passes W); f = tau^2 when tau2 != 0,
 *   else 1 (the paper: tau = 2, no tau^2).
 * dcS (S,dS) += scale * dL/dcS; dWS (V_S,dS) += scale * dL/dWS, where only
 * the rows s_ids receive anything (an id listed twice gets both rows'
 * sums). No gradient reaches the teacher side.
 * Both sides' logits are RECOMPUTED on every call: one sgemm of S K dT
 * flops for zT and one of S K dS for zS (the backward adds two more of
 * S K dS); a caller that wants the value twice for one sequence pays zT
 * twice. K = 0 or S = 0 gives 0.
 * Numerics: the logits are float sgemm outputs; per row the log-sum-exps,
 * the KL and its sum are in double. Rows of WS are gathered 4096 at a
 * time, so the scratch does not hold a (K,dS) copy of the student head.
 * scratch: loss_head_kl_scratch(S, K, dS) floats, no initialization. */
size_t loss_head_kl_scratch(int S, int K, int dS);
double loss_head_kl(float *dcS, float *dWS, const float *w, const float *cS, const float *cT, const float *WT,
                    const float *WS, const int32_t *s_ids, int S, int K, int dS, int dT, float tau, int tau2,
                    float scale, float *scratch);

/* -------------------------------------------------------- baselines */

/* ULD (Universal Logit Distillation, method.md §6), one aligned position:
 * pS = softmax(z) (V_S) sorted descending; pT = exp(t_lp) (k) sorted
 * descending, zero-padded to V_S; L = sum_i |pS_sorted_i - pT_sorted_i|.
 * dz += scale * dL/dz (the sort is a fixed permutation for the gradient).
 * t_lp has no ids: an empty top-k slot must hold -inf (probability 0).
 * k > V_S is allowed (the student side is then zero-padded to k). Only the
 * top min(k, V_S) of each side are ranked: O(V_S log k).
 * scratch: loss_uld_scratch(V_S) doubles. */
size_t loss_uld_scratch(int V_S);
double loss_uld(float *dz, const float *z, int V_S, const float *t_lp, int k, float scale, double *scratch);

/* MinED's loss (method.md §6), one aligned position: the teacher's top-k
 * mapped onto student ids by t2s (teacher id -> student id, -1 = none;
 * several teacher ids may land on one student id and add up), then
 * L = sum_j pT'(j) log(pT'(j) / softmax(z)_j) over student ids j with
 * pT'(j) > 0, where pT' is the mapped top-k renormalized to sum 1 (0 when
 * nothing maps). t_ids < 0 and student ids outside [0, V_S) are ignored.
 * dz += scale * dL/dz. scratch: V_S doubles. */
double loss_mined_kl(float *dz, const float *z, int V_S, const int32_t *t_ids, const float *t_lp, int k,
                     const int32_t *t2s, float scale, double *scratch);

#endif /* SRA_LOSS_H */
