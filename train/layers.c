/*
 * layers.c - the transformer's forward math (layers.h). Dimensions as in
 * layers.h: B, T (Tq queries, Tk keys), C, OC, NH, NKV, HS, V, N rows.
 *
 * BLAS paths sit beside plain-loop references (the *_ref functions); the
 * references accumulate in double so that they are independent of the
 * float summation order of OpenBLAS's kernels, and tests compare the two.
 */
#include <cblas.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "layers.h"

// ----------------------------------------------------------------------------
// matmul

void matmul_forward(float *out, const float *inp, const float *weight, const float *bias, int N, int C, int OC) {
    // inp (N,C), weight (OC,C), bias (OC) -> out (N,OC)
    // weight is stored as HF/PyTorch Linear keeps it (OC,C), hence the Trans.
    if (N <= 0 || OC <= 0) return;
    if (C <= 0) {
        for (int n = 0; n < N; n++)
            for (int o = 0; o < OC; o++) out[(size_t)n * OC + o] = bias ? bias[o] : 0.0f;
        return;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, OC, C, 1.0f, inp, C, weight, C, 0.0f, out, OC);
    if (bias) {
        for (int n = 0; n < N; n++) {
            float *o = out + (size_t)n * OC;
            for (int j = 0; j < OC; j++) o[j] += bias[j];
        }
    }
}

void matmul_forward_ref(float *out, const float *inp, const float *weight, const float *bias, int N, int C, int OC) {
    // inp (N,C), weight (OC,C), bias (OC) -> out (N,OC); accumulates in double
    for (int n = 0; n < N; n++) {
        const float *x = inp + (size_t)n * C;
        for (int o = 0; o < OC; o++) {
            const float *w = weight + (size_t)o * C;
            double acc = bias ? bias[o] : 0.0;
            for (int c = 0; c < C; c++) acc += (double)x[c] * w[c];
            out[(size_t)n * OC + o] = (float)acc;
        }
    }
}

// ----------------------------------------------------------------------------
// rmsnorm

void rmsnorm_forward(float *out, const float *inp, const float *weight, int N, int C, float eps) {
    // inp (N,C), weight (C) -> out (N,C)
    // HF LlamaRMSNorm: weight * (x * rsqrt(mean(x^2) + eps)), in that order.
    for (int n = 0; n < N; n++) {
        const float *x = inp + (size_t)n * C;
        float *o = out + (size_t)n * C;
        double ss = 0.0;
        for (int c = 0; c < C; c++) ss += (double)x[c] * x[c];
        float r = (float)(1.0 / sqrt(ss / (C > 0 ? C : 1) + (double)eps));
        for (int c = 0; c < C; c++) o[c] = weight[c] * (x[c] * r);
    }
}

// ----------------------------------------------------------------------------
// rope

void rope_tables(float *cos_, float *sin_, const int32_t *pos, int N, const double *inv_freq, int HS) {
    // pos (N), inv_freq (HS/2) -> cos, sin (N, HS/2)
    // Angles grow to pos * 1 radian for i = 0: in float their rounding would
    // be ~pos * 6e-8 rad, so they are formed and reduced in double.
    int h = HS / 2;
    for (int n = 0; n < N; n++) {
        for (int i = 0; i < h; i++) {
            double a = (double)pos[n] * inv_freq[i];
            cos_[(size_t)n * h + i] = (float)cos(a);
            sin_[(size_t)n * h + i] = (float)sin(a);
        }
    }
}

void rope_forward(float *x, const float *cos_, const float *sin_, int N, int NH, int HS) {
    // x (N,NH,HS) in place, cos, sin (N,HS/2)
    // HF: x * cos + rotate_half(x) * sin with rotate_half(x) = [-x2, x1].
    int h = HS / 2;
    for (int n = 0; n < N; n++) {
        const float *c = cos_ + (size_t)n * h, *s = sin_ + (size_t)n * h;
        for (int hd = 0; hd < NH; hd++) {
            float *v = x + ((size_t)n * NH + hd) * HS;
            for (int j = 0; j < h; j++) {
                float x1 = v[j], x2 = v[j + h];
                v[j] = x1 * c[j] - x2 * s[j];
                v[j + h] = x2 * c[j] + x1 * s[j];
            }
        }
    }
}

// ----------------------------------------------------------------------------
// attention

// Query rows per block. A (b, h) pair is done in row blocks so that a block
// of queries only multiplies against the keys it can see (the causal
// triangle costs ~1 + QB/T times its exact flop count instead of 2x), and
// so that the score scratch is QB*Tk, not Tq*Tk.
#define ATT_QB 64
// Below this many query rows in a block, loops beat the BLAS call overhead
// (generation: one new token against the KV cache).
#define ATT_SMALL 4

size_t attention_scratch_floats(int Tq, int Tk) {
    if (Tq < 1) Tq = 1;
    if (Tk < 1) Tk = 1;
    size_t qb = (size_t)(Tq < ATT_QB ? Tq : ATT_QB);
    // scores (qb,Tk), ones (qb), column sums (Tk), then Tk doubles for the
    // mass (+1 float to align them to 8 bytes)
    return qb * (size_t)Tk + qb + (size_t)Tk + 2 * (size_t)Tk + 2;
}

// max of x (n), -inf if n == 0; 8 independent lanes (GCC makes them one
// maxps): a single running max is a serial chain, and it showed in profiles
// of attention and of top-k over 128k logits. NaNs are skipped.
static float max_f32(const float *x, int n) {
    float m8[8];
    for (int l = 0; l < 8; l++) m8[l] = -INFINITY;
    int j = 0;
    for (; j + 8 <= n; j += 8)
        for (int l = 0; l < 8; l++) m8[l] = x[j + l] > m8[l] ? x[j + l] : m8[l];
    for (; j < n; j++) m8[0] = x[j] > m8[0] ? x[j] : m8[0];
    float mx = m8[0];
    for (int l = 1; l < 8; l++) mx = m8[l] > mx ? m8[l] : mx;
    return mx;
}

// p (nk): the scores of keys 0..n-1 (a query at position n-1) -> their
// probabilities, 0 at padding keys and at keys n..nk-1 (the future of this
// row inside its block). Max subtracted in float, sum in double. Padding
// keys become -inf first so that the loops below are branch-free; the sum
// runs in 8 lanes for the same reason as max_f32.
static void softmax_causal(float *p, int n, int nk, const uint8_t *valid) {
    if (valid)
        for (int j = 0; j < n; j++)
            if (!valid[j]) p[j] = -INFINITY;
    const float mx = max_f32(p, n);
    double s8[8] = {0};
    int j;
    for (j = 0; j + 8 <= n; j += 8)
        for (int l = 0; l < 8; l++) {
            p[j + l] = expf(p[j + l] - mx); // expf(-inf) = 0 at padding keys
            s8[l] += p[j + l];
        }
    for (; j < n; j++) {
        p[j] = expf(p[j] - mx);
        s8[0] += p[j];
    }
    double sum = ((s8[0] + s8[1]) + (s8[2] + s8[3])) + ((s8[4] + s8[5]) + (s8[6] + s8[7]));
    float inv = (float)(1.0 / sum); // sum >= 1: the row's own key is valid
    for (j = 0; j < n; j++) p[j] *= inv;
    for (j = n; j < nk; j++) p[j] = 0.0f;
}

// mass (Tk) = macc / (NH * |Q_i|), |Q_i| = valid queries at positions >= i
// (Tq == Tk here); 0 at padding keys.
static void mass_finish(float *mass, const double *macc, const uint8_t *valid, int T, int NH) {
    int cnt = 0;
    for (int i = T - 1; i >= 0; i--) {
        int ok = !valid || valid[i];
        cnt += ok;
        mass[i] = ok ? (float)(macc[i] / ((double)NH * cnt)) : 0.0f;
    }
}

void attention_forward(float *out, float *mass, const float *q, const float *k, const float *v,
                       const uint8_t *valid, int B, int Tq, int Tk, int NH, int NKV, int HS, float *scratch) {
    // q (B,Tq,NH,HS), k, v (B,Tk,NKV,HS), valid (B,Tk) -> out (B,Tq,NH,HS), mass (B,Tk)
    // query row t sits at position off + t and sees keys 0..off + t
    if (B <= 0 || Tq <= 0 || Tk < Tq || NKV <= 0 || NH % NKV) return; // outside the contract
    const int off = Tk - Tq, rep = NH / NKV;
    const int qs = NH * HS, ks = NKV * HS; // row strides of q/out and k/v
    const int qb = Tq < ATT_QB ? Tq : ATT_QB;
    const float scale = (float)(1.0 / sqrt((double)HS));
    if (Tq != Tk) mass = NULL;
    float *S = scratch;                    // (qb, nk) scores, then probabilities, of one block
    float *ones = S + (size_t)qb * Tk;     // (qb)
    float *colsum = ones + qb;             // (Tk) one block's sum over queries of A[q,i]
    uintptr_t ap = ((uintptr_t)(colsum + Tk) + 7) & ~(uintptr_t)7;
    double *macc = (double *)ap;           // (Tk) sum over heads and queries of A[q,i]
    for (int r = 0; r < qb; r++) ones[r] = 1.0f;

    for (int b = 0; b < B; b++) {
        const uint8_t *vb = valid ? valid + (size_t)b * Tk : NULL;
        if (mass) memset(macc, 0, (size_t)Tk * sizeof(double));
        for (int h = 0; h < NH; h++) {
            const float *qh = q + (size_t)b * Tq * qs + (size_t)h * HS;
            const float *kg = k + (size_t)b * Tk * ks + (size_t)(h / rep) * HS;
            const float *vg = v + (size_t)b * Tk * ks + (size_t)(h / rep) * HS;
            float *oh = out + (size_t)b * Tq * qs + (size_t)h * HS;
            for (int r0 = 0; r0 < Tq; r0 += qb) {
                const int nr = Tq - r0 < qb ? Tq - r0 : qb;
                const int nk = off + r0 + nr; // keys the block's last row sees
                const float *qr = qh + (size_t)r0 * qs;
                float *orow = oh + (size_t)r0 * qs;
                // S (nr,nk) = scale * Q_blk K[0:nk]^T
                if (nr < ATT_SMALL) {
                    for (int r = 0; r < nr; r++)
                        for (int j = 0; j < nk; j++) {
                            float acc = 0.0f;
                            for (int d = 0; d < HS; d++) acc += qr[(size_t)r * qs + d] * kg[(size_t)j * ks + d];
                            S[(size_t)r * nk + j] = acc * scale;
                        }
                } else {
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nr, nk, HS, scale, qr, qs, kg, ks, 0.0f,
                                S, nk);
                }
                for (int r = 0; r < nr; r++) {
                    const int pos = off + r0 + r;
                    float *p = S + (size_t)r * nk;
                    if (vb && !vb[pos]) { // a padding query: all-zero probabilities give a zero output
                        memset(p, 0, (size_t)nk * sizeof(float));
                        continue;
                    }
                    softmax_causal(p, pos + 1, nk, vb);
                }
                if (mass) { // colsum (nk) = P^T 1 (padding rows are 0), then into double
                    cblas_sgemv(CblasRowMajor, CblasTrans, nr, nk, 1.0f, S, nk, ones, 1, 0.0f, colsum, 1);
                    for (int j = 0; j < nk; j++) macc[j] += colsum[j];
                }
                // out_blk (nr,HS) = P (nr,nk) V[0:nk]
                if (nr < ATT_SMALL) {
                    for (int r = 0; r < nr; r++) {
                        float *o = orow + (size_t)r * qs;
                        const float *p = S + (size_t)r * nk;
                        for (int d = 0; d < HS; d++) o[d] = 0.0f;
                        for (int j = 0; j < nk; j++) {
                            if (p[j] == 0.0f) continue;
                            const float *vj = vg + (size_t)j * ks;
                            for (int d = 0; d < HS; d++) o[d] += p[j] * vj[d];
                        }
                    }
                } else {
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, nr, HS, nk, 1.0f, S, nk, vg, ks, 0.0f,
                                orow, qs);
                }
            }
        }
        if (mass) mass_finish(mass + (size_t)b * Tk, macc, vb, Tk, NH);
    }
}

void attention_forward_ref(float *out, float *mass, const float *q, const float *k, const float *v,
                           const uint8_t *valid, int B, int Tq, int Tk, int NH, int NKV, int HS) {
    // q (B,Tq,NH,HS), k, v (B,Tk,NKV,HS), valid (B,Tk) -> out (B,Tq,NH,HS), mass (B,Tk)
    // Every score, exponential and sum in double; the mass is summed from
    // the probabilities in the order of its definition.
    if (B <= 0 || Tq <= 0 || Tk < Tq || NKV <= 0 || NH % NKV) return;
    const int off = Tk - Tq, rep = NH / NKV;
    const double scale = 1.0 / sqrt((double)HS);
    if (Tq != Tk) mass = NULL;
    double *s = malloc(sizeof(double) * ((size_t)Tk * 2 + HS));
    if (!s) { // test-only code: make an allocation failure impossible to miss
        for (size_t i = 0; i < (size_t)B * Tq * NH * HS; i++) out[i] = NAN;
        return;
    }
    double *macc = s + Tk, *acc = s + 2 * (size_t)Tk;
    for (int b = 0; b < B; b++) {
        const uint8_t *vb = valid ? valid + (size_t)b * Tk : NULL;
        for (int i = 0; i < Tk; i++) macc[i] = 0.0;
        for (int h = 0; h < NH; h++) {
            const int g = h / rep;
            for (int t = 0; t < Tq; t++) {
                const int pos = off + t;
                const float *qt = q + (((size_t)b * Tq + t) * NH + h) * HS;
                float *ot = out + (((size_t)b * Tq + t) * NH + h) * HS;
                if (vb && !vb[pos]) {
                    for (int d = 0; d < HS; d++) ot[d] = 0.0f;
                    continue;
                }
                double mx = -INFINITY;
                for (int j = 0; j <= pos; j++) {
                    if (vb && !vb[j]) continue;
                    const float *kj = k + (((size_t)b * Tk + j) * NKV + g) * HS;
                    double dot = 0.0;
                    for (int d = 0; d < HS; d++) dot += (double)qt[d] * kj[d];
                    s[j] = dot * scale;
                    if (s[j] > mx) mx = s[j];
                }
                double sum = 0.0;
                for (int j = 0; j <= pos; j++) {
                    s[j] = (vb && !vb[j]) ? 0.0 : exp(s[j] - mx);
                    sum += s[j];
                }
                for (int d = 0; d < HS; d++) acc[d] = 0.0;
                for (int j = 0; j <= pos; j++) {
                    double p = s[j] / sum;
                    const float *vj = v + (((size_t)b * Tk + j) * NKV + g) * HS;
                    for (int d = 0; d < HS; d++) acc[d] += p * vj[d];
                    macc[j] += p;
                }
                for (int d = 0; d < HS; d++) ot[d] = (float)acc[d];
            }
        }
        if (mass) // |Q_i| counted directly, independent of mass_finish
            for (int i = 0; i < Tk; i++) {
                int cnt = 0;
                for (int t = i; t < Tk; t++) cnt += !vb || vb[t];
                mass[(size_t)b * Tk + i] = (!vb || vb[i]) ? (float)(macc[i] / NH / cnt) : 0.0f;
            }
    }
    free(s);
}

// ----------------------------------------------------------------------------
// elementwise

void swiglu_forward(float *out, const float *gate, const float *up, size_t n) {
    // gate, up (n) -> out (n); for gate << 0, expf overflows to inf and silu
    // goes to -0, its limit.
    for (size_t i = 0; i < n; i++) {
        float g = gate[i];
        out[i] = g / (1.0f + expf(-g)) * up[i];
    }
}

void residual_forward(float *out, const float *x, size_t n) {
    // out (n) += x (n)
    for (size_t i = 0; i < n; i++) out[i] += x[i];
}

// ----------------------------------------------------------------------------
// log-softmax top-k

// Ordering of candidates: a is worse than b if its logit is lower or, on a
// tie, its id is higher (ties go to the lower id).
static int topk_worse(float va, int32_t ia, float vb, int32_t ib) {
    return va < vb || (va == vb && ia > ib);
}

// Restores the min-heap (worst candidate at the root) below node i.
static void topk_sift(float *val, int32_t *id, int n, int i) {
    for (;;) {
        int l = 2 * i + 1, r = l + 1, w = i;
        if (l < n && topk_worse(val[l], id[l], val[w], id[w])) w = l;
        if (r < n && topk_worse(val[r], id[r], val[w], id[w])) w = r;
        if (w == i) return;
        float tv = val[i]; val[i] = val[w]; val[w] = tv;
        int32_t ti = id[i]; id[i] = id[w]; id[w] = ti;
        i = w;
    }
}

void logsoftmax_topk(const float *logits, int N, int V, int k, int32_t *ids, float *logprobs, float *tail) {
    // logits (N,V) -> ids, logprobs (N,k), tail (N)
    // Selection: a min-heap of the k best kept in the row's own output
    // arrays (no allocation), O(V + m log k) for m replacements; for
    // logits in any non-adversarial order m is ~k log(V/k), so the cost is
    // one pass over the row. A heapsort then leaves the k best in
    // descending order. Slots beyond V (k > V) get id -1, log-prob -inf.
    const int kk = k < V ? k : V;
    for (int n = 0; n < N; n++) {
        const float *x = logits + (size_t)n * V;
        int32_t *id = ids + (size_t)n * k;
        float *lp = logprobs + (size_t)n * k;
        const float mx = max_f32(x, V);
        double s4[4] = {0};
        int i = 0;
        for (; i + 4 <= V; i += 4)
            for (int l = 0; l < 4; l++) s4[l] += exp((double)x[i + l] - mx);
        for (; i < V; i++) s4[0] += exp((double)x[i] - mx);
        const double sum = (s4[0] + s4[1]) + (s4[2] + s4[3]);
        const double lse = mx + log(sum);

        int m = 0;
        for (int i = 0; i < V; i++) {
            if (m < kk) { // fill, then heapify once full
                lp[m] = x[i];
                id[m++] = i;
                if (m == kk)
                    for (int j = kk / 2 - 1; j >= 0; j--) topk_sift(lp, id, kk, j);
            } else if (kk > 0 && x[i] > lp[0]) { // ids rise: an equal logit is a worse tie
                lp[0] = x[i];
                id[0] = i;
                topk_sift(lp, id, kk, 0);
            }
        }
        for (int e = kk - 1; e > 0; e--) { // heapsort: the worst goes to the end
            float tv = lp[0]; lp[0] = lp[e]; lp[e] = tv;
            int32_t ti = id[0]; id[0] = id[e]; id[e] = ti;
            topk_sift(lp, id, e, 0);
        }
        double ptop = 0.0;
        for (int j = 0; j < kk; j++) {
            double l = (double)lp[j] - lse;
            ptop += exp(l);
            lp[j] = (float)l;
        }
        for (int j = kk; j < k; j++) {
            id[j] = -1;
            lp[j] = -INFINITY;
        }
        double t = 1.0 - ptop;
        tail[n] = t > 0.0 ? (float)t : 0.0f;
    }
}
