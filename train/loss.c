/*
 * loss.c - the distillation losses of method.md §4-§6 (loss.h), each with
 * its gradient. Shapes as in loss.h: S spans, dS student width, dT teacher
 * width, V_S student vocabulary, K shared keys, k teacher top-k.
 *
 * Numerics: the big products of the span losses (P cS and its backward)
 * are float sgemm calls; L_geo is in double throughout (see there);
 * everything per row or per vocabulary entry (norms, cosines,
 * log-sum-exps, the loss sums) is done in double, so the returned value
 * carries only the float rounding of the sgemm outputs. The vocabulary
 * losses are a few O(V_S) passes with one exp per entry (O(V_S log k) for
 * ULD's selection) over caller-provided scratch, with no allocation; the
 * span losses and L_geo allocate their (S,d) temporaries. The paper
 * preset's head KL is float sgemms for the (S,K) logits and their
 * backward, with the per-row softmax work in double, over caller scratch.
 */
#include <cblas.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "loss.h"

#define NORM_FLOOR 1e-12

static double guarded_norm(const float *x, int n) {
    double ss = 0.0;
    for (int i = 0; i < n; i++) ss += (double)x[i] * x[i];
    double nr = sqrt(ss);
    return nr < NORM_FLOOR ? NORM_FLOOR : nr;
}

/* Y (S,dT) = cS (S,dS) @ P(dT,dS)^T: the projected student CoMs. */
static void project(float *Y, const float *cS, const float *P, int S, int dS, int dT) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, S, dT, dS, 1.0f, cS, dS, P, dS, 0.0f, Y, dT);
}

/* Given G (S,dT) = scale * dL/dY: dcS (S,dS) += G @ P, dP (dT,dS) += G^T @ cS. */
static void project_backward(float *dcS, float *dP, const float *G, const float *cS, const float *P, int S, int dS,
                             int dT) {
    if (dcS) cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, S, dS, dT, 1.0f, G, dT, P, dS, 1.0f, dcS, dS);
    if (dP) cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, dT, dS, S, 1.0f, G, dT, cS, dS, 1.0f, dP, dS);
}

// ----------------------------------------------------------------------------
// L_span (cosine)

double loss_span_cos(float *dcS, float *dP, const float *W, const float *cS, const float *cT, const float *P, int S,
                     int dS, int dT, float scale) {
    if (S <= 0) return 0.0;
    int grad = dcS || dP;
    float *Y = malloc(sizeof(float) * (size_t)S * dT);
    if (!Y) return NAN;
    project(Y, cS, P, S, dS, dT);
    double L = 0.0;
    for (int s = 0; s < S; s++) {
        float *y = Y + (size_t)s * dT;
        const float *t = cT + (size_t)s * dT;
        double ny = guarded_norm(y, dT), nt = guarded_norm(t, dT), dot = 0.0;
        for (int j = 0; j < dT; j++) dot += (double)y[j] * t[j];
        double cos = dot / (ny * nt);
        L += W[s] * (1.0 - cos);
        if (!grad) continue;
        /* d cos/dy = t/(|y||t|) - cos y/|y|^2; a floored |y| is a constant,
         * so the second term goes (the clamp has no gradient) */
        double a = -(double)scale * W[s] / (ny * nt);
        double b = ny > NORM_FLOOR ? (double)scale * W[s] * cos / (ny * ny) : 0.0;
        for (int j = 0; j < dT; j++) y[j] = (float)(a * t[j] + b * y[j]); // Y row becomes scale * dL/dy
    }
    if (grad) project_backward(dcS, dP, Y, cS, P, S, dS, dT);
    free(Y);
    return L;
}

// ----------------------------------------------------------------------------
// L_span (mse on layer-normalized vectors)

#define LN_EPS 1e-5

/* out (n) = (x - mean) / sqrt(var + eps) in double; returns 1/sqrt(var+eps). */
static double layernorm_d(double *out, const float *x, int n) {
    double mu = 0.0, var = 0.0;
    for (int i = 0; i < n; i++) mu += x[i];
    mu /= n;
    for (int i = 0; i < n; i++) var += ((double)x[i] - mu) * ((double)x[i] - mu);
    var /= n;
    double r = 1.0 / sqrt(var + LN_EPS);
    for (int i = 0; i < n; i++) out[i] = ((double)x[i] - mu) * r;
    return r;
}

double loss_span_mse(float *dcS, float *dP, const float *W, const float *cS, const float *cT, const float *P, int S,
                     int dS, int dT, float scale) {
    if (S <= 0) return 0.0;
    int grad = dcS || dP;
    float *Y = malloc(sizeof(float) * (size_t)S * dT);
    double *a = malloc(sizeof(double) * 2 * (size_t)dT), *b = a + dT;
    if (!Y || !a) { free(Y); free(a); return NAN; }
    project(Y, cS, P, S, dS, dT);
    double L = 0.0;
    for (int s = 0; s < S; s++) {
        float *y = Y + (size_t)s * dT;
        double r = layernorm_d(a, y, dT);
        layernorm_d(b, cT + (size_t)s * dT, dT);
        double se = 0.0;
        for (int j = 0; j < dT; j++) se += (a[j] - b[j]) * (a[j] - b[j]);
        L += W[s] * se / dT;
        if (!grad) continue;
        /* ga = dL/da = 2 W (a - b) / dT; layernorm backward (no affine):
         * dy = r (ga - mean(ga) - a mean(ga a)) */
        double mg = 0.0, mga = 0.0, c = 2.0 * W[s] / dT;
        for (int j = 0; j < dT; j++) {
            double ga = c * (a[j] - b[j]);
            mg += ga;
            mga += ga * a[j];
        }
        mg /= dT;
        mga /= dT;
        for (int j = 0; j < dT; j++) y[j] = (float)(scale * r * (c * (a[j] - b[j]) - mg - a[j] * mga));
    }
    if (grad) project_backward(dcS, dP, Y, cS, P, S, dS, dT);
    free(Y);
    free(a);
    return L;
}

// ----------------------------------------------------------------------------
// L_geo

/* Rows of c (S,d) divided by their guarded norms into out (double); norms
 * into nrm (S). */
static void normalize_rows(double *out, double *nrm, const float *c, int S, int d) {
    for (int s = 0; s < S; s++) {
        double n = guarded_norm(c + (size_t)s * d, d);
        if (nrm) nrm[s] = n;
        for (int j = 0; j < d; j++) out[(size_t)s * d + j] = c[(size_t)s * d + j] / n;
    }
}

/* L_geo runs in double (dsyrk/dgemm): the Gram entries are cosines near
 * each other on both sides, and a float Gram's rounding (~1e-7 per entry)
 * is what the value would otherwise carry; the cost, O(S^2 (dS + dT)), is
 * small beside L_span's projection, O(S dS dT). */
double loss_geo(float *dcS, const float *W, const float *cS, const float *cT, int S, int dS, int dT, float scale) {
    if (S < 2) return 0.0;
    /* Z = sum_{s != t} W_s W_t, written as sum_s W_s (sum W - W_s) (no
     * cancellation of (sum W)^2 - sum W^2 when one span dominates) */
    double sw = 0.0, Z = 0.0;
    for (int s = 0; s < S; s++) sw += W[s];
    for (int s = 0; s < S; s++) Z += W[s] * (sw - W[s]);
    if (!(Z > 0.0)) return 0.0;
    size_t SS = (size_t)S * S;
    double *hS = malloc(sizeof(double) * ((size_t)S * dS + (size_t)S * dT + 2 * SS + S + (dcS ? (size_t)S * dS : 0)));
    if (!hS) return NAN;
    double *hT = hS + (size_t)S * dS, *GS = hT + (size_t)S * dT, *GT = GS + SS, *nS = GT + SS, *dh = nS + S;
    normalize_rows(hS, nS, cS, S, dS);
    normalize_rows(hT, NULL, cT, S, dT);
    /* G (S,S) = h h^T; dsyrk fills the upper triangle only */
    cblas_dsyrk(CblasRowMajor, CblasUpper, CblasNoTrans, S, dS, 1.0, hS, dS, 0.0, GS, S);
    cblas_dsyrk(CblasRowMajor, CblasUpper, CblasNoTrans, S, dT, 1.0, hT, dT, 0.0, GT, S);
    double L = 0.0;
    for (int s = 0; s < S; s++) {
        GS[(size_t)s * S + s] = 0.0;
        for (int t = s + 1; t < S; t++) {
            double D = GS[(size_t)s * S + t] - GT[(size_t)s * S + t];
            L += 2.0 * W[s] * W[t] * D * D; // (s,t) and (t,s)
            /* M_st = dL/dG_st + dL/dG_ts = 4 W_s W_t D_st / Z, into GS (both
             * triangles, zero diagonal) for dh = M h */
            GS[(size_t)s * S + t] = GS[(size_t)t * S + s] = 4.0 * W[s] * W[t] * D / Z;
        }
    }
    L /= Z;
    if (dcS) {
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, S, dS, S, 1.0, GS, S, hS, dS, 0.0, dh, dS);
        /* through h = c / |c|: dc = (dh - h (h . dh)) / |c| (a floored norm
         * is a constant: dc = dh / 1e-12) */
        for (int s = 0; s < S; s++) {
            const double *h = hS + (size_t)s * dS, *g = dh + (size_t)s * dS;
            double hg = 0.0;
            if (nS[s] > NORM_FLOOR)
                for (int j = 0; j < dS; j++) hg += h[j] * g[j];
            double r = (double)scale / nS[s];
            for (int j = 0; j < dS; j++) dcS[(size_t)s * dS + j] += (float)(r * (g[j] - h[j] * hg));
        }
    }
    free(hS);
    return L;
}

// ----------------------------------------------------------------------------
// L_logit: pooled KL over the shared keys

size_t loss_logit_scratch(int V_S, int K) { return (size_t)(V_S > 0 ? V_S : 0) + 4 * (size_t)(K > 0 ? K : 0); }

/* Below this a pooled student sum (relative to its base) is losing
 * precision to subnormals: then each key gets its own base. */
#define POOL_TINY 1e-290

double loss_logit_kl(float *dz, const float *z, int V_S, const int32_t *t_ids, const float *t_lp, int k,
                     const int32_t *t_key, const int32_t *s_key, int K, float tau, float scale, double *shared_mass,
                     double *scratch) {
    /* scratch: e (V_S) exp(z_j - base) for the ids with a key; pT (K) the
     * teacher's pooled probability, then log qT on its keys; sS (K) the
     * student's pooled sums of e; u (K) per-key bases, logs, then gradient
     * coefficients; tk (K) the distinct keys the teacher's top-k reaches
     * (at most min(k, K), stored as doubles). */
    double *e = scratch, *pT = e + (V_S > 0 ? V_S : 0), *sS = pT + K, *u = sS + K, *tk = u + K;
    if (shared_mass) *shared_mass = 0.0;
    if (K <= 0) return 0.0;
    double mass = 0.0;
    int nt = 0;
    for (int key = 0; key < K; key++) pT[key] = 0.0;
    for (int i = 0; i < k; i++) {
        if (t_ids[i] < 0) continue;
        int32_t key = t_key[t_ids[i]];
        if (key < 0) continue;
        double p = exp((double)t_lp[i]);
        if (!(p > 0.0)) continue;
        if (pT[key] == 0.0) tk[nt++] = key;
        pT[key] += p;
        mass += p;
    }
    if (shared_mass) *shared_mass = mass;
    if (!(mass > 0.0)) return 0.0;

    /* teacher: log qT(key) = log pT / tau - log sum over its keys (into pT) */
    double inv_tau = 1.0 / tau, bmax = -INFINITY, ZT = 0.0;
    for (int i = 0; i < nt; i++) {
        int key = (int)tk[i];
        pT[key] = log(pT[key]) * inv_tau;
        bmax = fmax(bmax, pT[key]);
    }
    for (int i = 0; i < nt; i++) ZT += exp(pT[(int)tk[i]] - bmax);
    for (int i = 0; i < nt; i++) pT[(int)tk[i]] -= bmax + log(ZT);

    /* Student pooled sums. The global softmax normalizer is left out: it
     * cancels in the renormalization over keys (and so does its gradient,
     * since sum_key (qS - qT) = 0, which is why ids without a key get no
     * gradient). Fast path: one base, the max logit, for every key. When
     * that leaves a key the teacher needs (or every key) with a subnormal
     * sum, each key gets its own max as base (in u), keeping its mass. */
    int per_key = 0;
    double gmax = -INFINITY;
    for (int j = 0; j < V_S; j++) gmax = z[j] > gmax ? z[j] : gmax;
    for (;;) {
        int tiny = 0;
        for (int key = 0; key < K; key++) sS[key] = 0.0;
        for (int j = 0; j < V_S; j++) {
            int32_t key = s_key[j];
            if (key < 0) continue;
            double base = per_key ? u[key] : gmax;
            e[j] = base == -INFINITY ? 0.0 : exp((double)z[j] - base);
            tiny |= e[j] < POOL_TINY;
            sS[key] += e[j];
        }
        if (per_key || !tiny) break; // no term lost precision: one base is exact
        /* some did: does it matter (a key of the teacher's, or all keys)? */
        double smax = 0.0;
        tiny = 0;
        for (int key = 0; key < K; key++) smax = sS[key] > smax ? sS[key] : smax;
        for (int i = 0; i < nt; i++) tiny |= sS[(int)tk[i]] < POOL_TINY;
        if (smax >= POOL_TINY && !tiny) break;
        per_key = 1;
        for (int key = 0; key < K; key++) u[key] = -INFINITY;
        for (int j = 0; j < V_S; j++) {
            int32_t key = s_key[j];
            if (key >= 0 && z[j] > u[key]) u[key] = z[j];
        }
    }

    /* qS(key) = (base + log sS)/tau - lse_S over all keys; the loss sums
     * over the teacher's keys; the gradient coefficient per key is
     * c(key) = scale tau (qS - qT) / sS, dL/dz_j = c(key) e_j. */
    double L = 0.0;
    if (!per_key && tau == 1.0f) { // the default: no transcendental per key
        double Z = 0.0;
        for (int key = 0; key < K; key++) Z += sS[key];
        for (int i = 0; i < nt; i++) {
            int key = (int)tk[i];
            L += exp(pT[key]) * (pT[key] - log(sS[key] / Z));
        }
        if (dz)
            for (int key = 0; key < K; key++) u[key] = (double)scale / Z;
    } else {
        double amax = -INFINITY, Z = 0.0;
        for (int key = 0; key < K; key++) {
            double base = per_key ? u[key] : gmax;
            u[key] = sS[key] > 0.0 ? (base + log(sS[key])) * inv_tau : -INFINITY;
            amax = u[key] > amax ? u[key] : amax;
        }
        for (int key = 0; key < K; key++) Z += exp(u[key] - amax);
        double lse_S = amax + log(Z);
        for (int i = 0; i < nt; i++) {
            int key = (int)tk[i];
            L += exp(pT[key]) * (pT[key] - (u[key] - lse_S)); // +inf if a key has no student id
        }
        if (dz)
            for (int key = 0; key < K; key++)
                u[key] = sS[key] > 0.0 ? (double)scale * tau * exp(u[key] - lse_S) / sS[key] : 0.0;
    }
    L *= (double)tau * tau;
    if (dz) {
        for (int i = 0; i < nt; i++) {
            int key = (int)tk[i];
            if (sS[key] > 0.0) u[key] -= (double)scale * tau * exp(pT[key]) / sS[key];
        }
        for (int j = 0; j < V_S; j++) {
            int32_t key = s_key[j];
            if (key >= 0) dz[j] += (float)(u[key] * e[j]);
        }
    }
    return L;
}

// ----------------------------------------------------------------------------
// L_logit, paper preset: LM heads on span CoMs (method.md §9.2)

/* Student head rows are gathered this many at a time: a (HEAD_CHUNK,dS)
 * buffer instead of a (K,dS) copy (K ~ 40k shared ids x dS floats would
 * be ~120 MB at dS = 768), while each sgemm stays large enough to run at
 * full speed. */
#define HEAD_CHUNK 4096

size_t loss_head_kl_scratch(int S, int K, int dS) {
    if (S <= 0 || K <= 0 || dS <= 0) return 0;
    size_t kc = K < HEAD_CHUNK ? (size_t)K : HEAD_CHUNK;
    return 2 * (size_t)S * K + kc * dS;
}

/* G (n,dS) = the rows WS[ids[0..n)] */
static void gather_rows(float *G, const float *WS, const int32_t *ids, int n, int dS) {
    for (int i = 0; i < n; i++) memcpy(G + (size_t)i * dS, WS + (size_t)ids[i] * dS, sizeof(float) * dS);
}

double loss_head_kl(float *dcS, float *dWS, const float *w, const float *cS, const float *cT, const float *WT,
                    const float *WS, const int32_t *s_ids, int S, int K, int dS, int dT, float tau, int tau2,
                    float scale, float *scratch) {
    if (S <= 0 || K <= 0) return 0.0;
    /* scratch: zT (S,K) teacher logits, then exp((zT - max)/tau); zS (S,K)
     * student logits, then exp((zS - max)/tau), then scale * dL/dzS; G
     * (HEAD_CHUNK,dS) gathered student rows, then a chunk of dL/dWS rows */
    float *zT = scratch, *zS = zT + (size_t)S * K, *G = zS + (size_t)S * K;
    int grad = dcS || dWS;
    // zT (S,K) = cT (S,dT) @ WT (K,dT)^T; zS (S,K) = cS (S,dS) @ WS[s_ids] (K,dS)^T, by column chunks
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, S, K, dT, 1.0f, cT, dT, WT, dT, 0.0f, zT, K);
    for (int k0 = 0; k0 < K; k0 += HEAD_CHUNK) {
        int kc = K - k0 < HEAD_CHUNK ? K - k0 : HEAD_CHUNK;
        gather_rows(G, WS, s_ids + k0, kc, dS);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, S, kc, dS, 1.0f, cS, dS, G, dS, 0.0f, zS + k0, K);
    }
    double inv_tau = 1.0 / tau, f = tau2 ? (double)tau * tau : 1.0, L = 0.0;
    for (int s = 0; s < S; s++) {
        double ws = w ? w[s] : 1.0;
        float *t = zT + (size_t)s * K, *u = zS + (size_t)s * K;
        if (ws == 0.0) { // no value, no gradient (keeps a zero-weight span with inf logits out of the sum)
            if (grad) memset(u, 0, sizeof(float) * K);
            continue;
        }
        float mt = t[0], mu = u[0];
        for (int k = 1; k < K; k++) { mt = t[k] > mt ? t[k] : mt; mu = u[k] > mu ? u[k] : mu; }
        /* With a = (z - max)/tau per side, Z = sum exp(a), log p = a - log Z:
         * KL = sum_k pT_k (aT_k - aS_k) - log ZT + log ZS, the first sum
         * taken as sum eT (aT - aS) / ZT (sum pT = 1 by construction). The
         * exps are kept (float) for the gradient. */
        double ZT = 0.0, ZS = 0.0, acc = 0.0;
        for (int k = 0; k < K; k++) {
            double at = ((double)t[k] - mt) * inv_tau, as = ((double)u[k] - mu) * inv_tau;
            double et = exp(at), es = exp(as);
            ZT += et;
            ZS += es;
            acc += et * (at - as);
            t[k] = (float)et;
            u[k] = (float)es;
        }
        L += ws * f * (acc / ZT - log(ZT) + log(ZS));
        if (!grad) continue;
        /* dL/dzS_k = w f (qS_k - pT_k) / tau (the 1/tau of the softmax
         * argument); folded with scale into the row, in place */
        double c = (double)scale * ws * f * inv_tau, rt = 1.0 / ZT, rs = 1.0 / ZS;
        for (int k = 0; k < K; k++) u[k] = (float)(c * ((double)u[k] * rs - (double)t[k] * rt));
    }
    if (!grad) return L;
    // dcS (S,dS) += dZ (S,K) @ WS[s_ids] (K,dS); dWS[s_ids] (K,dS) += dZ^T @ cS (S,dS), by chunks
    for (int k0 = 0; k0 < K; k0 += HEAD_CHUNK) {
        int kc = K - k0 < HEAD_CHUNK ? K - k0 : HEAD_CHUNK;
        if (dcS) {
            gather_rows(G, WS, s_ids + k0, kc, dS);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, S, dS, kc, 1.0f, zS + k0, K, G, dS, 1.0f, dcS,
                        dS);
        }
        if (dWS) {
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, kc, dS, S, 1.0f, zS + k0, K, cS, dS, 0.0f, G, dS);
            /* scattered one row after another, so a repeated id adds up */
            for (int i = 0; i < kc; i++) {
                float *dst = dWS + (size_t)s_ids[k0 + i] * dS;
                const float *src = G + (size_t)i * dS;
                for (int j = 0; j < dS; j++) dst[j] += src[j];
            }
        }
    }
    return L;
}

// ----------------------------------------------------------------------------
// ULD

/* (value, index) pairs for top-m selection; two doubles of scratch each */
typedef struct { double v; int64_t i; } vi_pair;

/* Min-heap on v (ties: larger index is "smaller", so that among equal
 * values the lower index wins, as a stable descending sort would). */
static int vi_less(const vi_pair *a, const vi_pair *b) { return a->v < b->v || (a->v == b->v && a->i > b->i); }

static void sift_down(vi_pair *h, int n, int r) {
    for (;;) {
        int c = 2 * r + 1;
        if (c >= n) return;
        if (c + 1 < n && vi_less(&h[c + 1], &h[c])) c++;
        if (!vi_less(&h[c], &h[r])) return;
        vi_pair t = h[r]; h[r] = h[c]; h[c] = t;
        r = c;
    }
}

/* The m largest of x (n floats, m <= n) into out (m), sorted descending:
 * a min-heap of the best m so far, O(n log m) worst case and O(n) when
 * most entries lose against the heap's minimum (the usual case). */
static void top_m(vi_pair *out, const float *x, int n, int m) {
    if (m <= 0) return;
    for (int i = 0; i < m; i++) out[i] = (vi_pair){x[i], i};
    for (int r = m / 2 - 1; r >= 0; r--) sift_down(out, m, r);
    for (int i = m; i < n; i++) {
        vi_pair c = {x[i], i};
        if (vi_less(&out[0], &c)) { out[0] = c; sift_down(out, m, 0); }
    }
    /* heap sort: pop the minimum to the back, leaving descending order */
    for (int end = m - 1; end > 0; end--) {
        vi_pair t = out[0]; out[0] = out[end]; out[end] = t;
        sift_down(out, end, 0);
    }
}

size_t loss_uld_scratch(int V_S) { return 5 * (size_t)(V_S > 0 ? V_S : 0); }

double loss_uld(float *dz, const float *z, int V_S, const float *t_lp, int k, float scale, double *scratch) {
    /* Only the first m = min(k, V_S) ranks pair a student probability with
     * a teacher one; past them one side is zero padding, so the rest of the
     * L1 sum is the student's tail mass (ranks >= k) or the teacher's
     * (ranks >= V_S), whose order does not matter. So: select the top m of
     * each side instead of sorting V_S entries. */
    if (V_S <= 0) return 0.0;
    int m = k < V_S ? k : V_S;
    double *e = scratch; // exp(z - max) (V_S), then the two top-m lists (2m doubles each)
    vi_pair *tS = (vi_pair *)(scratch + V_S), *tT = tS + m;
    top_m(tS, z, V_S, m);
    top_m(tT, t_lp, k, m);
    double zmax = -INFINITY, sum = 0.0;
    for (int j = 0; j < V_S; j++) zmax = z[j] > zmax ? z[j] : zmax;
    for (int j = 0; j < V_S; j++) sum += e[j] = exp((double)z[j] - zmax);
    double topS = 0.0, topT = 0.0, totT = 0.0, L = 0.0, c = 0.0;
    for (int i = 0; i < k; i++) totT += exp((double)t_lp[i]);
    for (int r = 0; r < m; r++) {
        double ps = e[tS[r].i] / sum, pt = exp(tT[r].v);
        topS += ps;
        topT += pt;
        L += fabs(ps - pt);
        /* dL/dpS at this rank: sign(ps - pt) (0 at a tie, as |x|' in torch) */
        double g = ps > pt ? 1.0 : ps < pt ? -1.0 : 0.0;
        tS[r].v = g;
        c += ps * g;
    }
    /* tails: student ranks >= k pair with zeros (sign +1), teacher ranks
     * >= V_S pair with zeros; tail mass as total minus top, in double */
    double tailS = k < V_S ? 1.0 - topS : 0.0, tailT = k > V_S ? totT - topT : 0.0;
    if (tailS < 0.0) tailS = 0.0;
    if (tailT < 0.0) tailT = 0.0;
    L += tailS + tailT;
    c += tailS;
    if (dz) {
        /* dL/dz_j = pS_j (g_j - sum_l pS_l g_l), with c = sum_l pS_l g_l.
         * With a student tail (k < V_S) every entry first gets its tail
         * value (g = 1) and the top ranks are then corrected by
         * pS_j (g_j - 1); otherwise all V_S entries are top ranks. */
        double a = (double)scale / sum;
        if (k < V_S)
            for (int j = 0; j < V_S; j++) dz[j] += (float)(a * e[j] * (1.0 - c));
        for (int r = 0; r < m; r++) {
            int64_t j = tS[r].i;
            dz[j] += (float)(a * e[j] * (k < V_S ? tS[r].v - 1.0 : tS[r].v - c));
        }
    }
    return L;
}

// ----------------------------------------------------------------------------
// MinED

double loss_mined_kl(float *dz, const float *z, int V_S, const int32_t *t_ids, const float *t_lp, int k,
                     const int32_t *t2s, float scale, double *scratch) {
    /* First scratch[j] holds pT'(j) unnormalized, touched only at the mapped
     * j (at most k of them), so no O(V_S) clearing: zero them, add, then
     * consume each j once (zeroing it again). With sum_j q_j = 1,
     * L = sum_j q_j (log q_j - z_j) + logsumexp(z): the first part and the
     * -q part of the gradient are done then, and the scratch is free to
     * hold exp(z - max) for the softmax. */
    double tot = 0.0;
    for (int i = 0; i < k; i++) {
        if (t_ids[i] < 0) continue;
        int32_t j = t2s[t_ids[i]];
        if (j >= 0 && j < V_S) scratch[j] = 0.0;
    }
    for (int i = 0; i < k; i++) {
        if (t_ids[i] < 0) continue;
        int32_t j = t2s[t_ids[i]];
        if (j < 0 || j >= V_S) continue;
        double p = exp((double)t_lp[i]);
        scratch[j] += p;
        tot += p;
    }
    if (!(tot > 0.0)) return 0.0;
    double L = 0.0, sq = 0.0;
    for (int i = 0; i < k; i++) {
        if (t_ids[i] < 0) continue;
        int32_t j = t2s[t_ids[i]];
        if (j < 0 || j >= V_S || !(scratch[j] > 0.0)) continue;
        double q = scratch[j] / tot;
        scratch[j] = 0.0; // consumed: a second teacher id on j adds nothing more
        L += q * (log(q) - z[j]);
        sq += q;
        if (dz) dz[j] -= (float)(scale * q); // d/dz of -q log softmax_j: the -q part
    }
    double zmax = -INFINITY, sum = 0.0;
    for (int j = 0; j < V_S; j++) zmax = z[j] > zmax ? z[j] : zmax;
    for (int j = 0; j < V_S; j++) sum += scratch[j] = exp((double)z[j] - zmax);
    L += sq * (zmax + log(sum));
    if (dz) { /* ... and softmax(z) sum q = softmax(z) */
        double a = (double)scale / sum;
        for (int j = 0; j < V_S; j++) dz[j] += (float)(a * scratch[j]);
    }
    return L;
}
