/*
 * test_layers - train/layers.h against independent references: the
 * plain-loop *_ref functions (double accumulation) for the BLAS paths,
 * direct double formulas for rmsnorm, RoPE (complex rotation), SwiGLU and
 * log-softmax and the last-query mass, hand-computed values for RoPE and
 * both attention masses, one-hot values that expose the forward's
 * attention rows, and a brute-force full sort for top-k. Prints the max abs differences, as
 * llm.c's test_gpt2.c does.
 */
#include <complex.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "layers.h"

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static float frand(void) { // uniform in [-1, 1)
    rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17;
    return (float)((rng >> 40) / (double)(1ull << 24) * 2.0 - 1.0);
}
static float *rand_buf(size_t n, float amp) {
    float *p = malloc(n * sizeof(float) + 1);
    for (size_t i = 0; i < n; i++) p[i] = amp * frand();
    return p;
}
// ----------------------------------------------------------------------------

TEST(matmul_blas_vs_ref) {
    static const int shapes[][3] = {{1, 1, 1}, {3, 5, 7}, {17, 33, 65}, {64, 128, 96}, {5, 777, 1}, {130, 61, 257}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int N = shapes[s][0], C = shapes[s][1], OC = shapes[s][2];
        float *x = rand_buf((size_t)N * C, 1), *w = rand_buf((size_t)OC * C, 1), *bias = rand_buf(OC, 1);
        float *o1 = malloc(sizeof(float) * N * OC), *o2 = malloc(sizeof(float) * N * OC);
        for (int wb = 0; wb < 2; wb++) {
            matmul_forward(o1, x, w, wb ? bias : NULL, N, C, OC);
            matmul_forward_ref(o2, x, w, wb ? bias : NULL, N, C, OC);
            double d = check_max_abs_diff(o1, o2, (size_t)N * OC);
            printf("  matmul N=%d C=%d OC=%d bias=%d: max |blas - ref| = %.3g\n", N, C, OC, wb, d);
            CHECK(d <= 2e-7 * C + 1e-6, "N=%d C=%d OC=%d: %g", N, C, OC, d);
        }
        free(x); free(w); free(bias); free(o1); free(o2);
    }
}

/* matmul_forward_seq: weights fetched as bfloat16-rounded values (the
 * teacher's BF16 path) or read in place. Each sequence must match
 * matmul_forward_ref on that sequence within rounding and carry exactly
 * the bits matmul_forward gives it alone (the batch-invariance contract);
 * fetched and in-place weights must agree bit for bit. Shapes cover the
 * column-block path (OC >= 2048) and sequences not a multiple of 48. */
static void fetch_bf16(const void *ctx, size_t r0, size_t n, float *dst) {
    const void *const *w = ctx; /* {weight, (uintptr_t)C} */
    const float *src = w[0];
    size_t C = (size_t)(uintptr_t)w[1];
    for (size_t i = 0; i < n * C; i++) {
        uint32_t u;
        memcpy(&u, &src[r0 * C + i], 4);
        u &= 0xffff0000u;
        memcpy(&dst[i], &u, 4);
    }
}

TEST(matmul_seq_fetch) {
    static const int shapes[][4] = {{3, 50, 33, 70}, {2, 96, 64, 2100}, {1, 7, 20, 4096}, {4, 1, 16, 5}};
    for (size_t sh = 0; sh < sizeof shapes / sizeof shapes[0]; sh++) {
        int B = shapes[sh][0], T = shapes[sh][1], C = shapes[sh][2], OC = shapes[sh][3];
        size_t N = (size_t)B * T;
        float *x = rand_buf(N * C, 1), *w = rand_buf((size_t)OC * C, 1), *bias = rand_buf(OC, 1);
        float *wr = malloc(sizeof(float) * OC * C); /* the values fetch_bf16 produces */
        const void *ctx[2] = {w, (const void *)(uintptr_t)C};
        fetch_bf16(ctx, 0, (size_t)OC, wr);
        float *o1 = malloc(sizeof(float) * N * OC), *o2 = malloc(sizeof(float) * N * OC);
        float *o3 = malloc(sizeof(float) * (size_t)T * OC), *scratch = malloc(sizeof(float) * (matmul_seq_scratch_floats(C, OC) + 1));
        matmul_weight mf = {NULL, fetch_bf16, ctx}, mi = {wr, NULL, NULL};
        for (int wb = 0; wb < 2; wb++) {
            const float *bb = wb ? bias : NULL;
            matmul_forward_seq(o1, x, &mf, bb, B, T, C, OC, scratch);
            matmul_forward_seq(o2, x, &mi, bb, B, T, C, OC, NULL);
            CHECK(!memcmp(o1, o2, sizeof(float) * N * OC), "B=%d T=%d C=%d OC=%d: fetched != in place", B, T, C, OC);
            double dmax = 0;
            int alone_same = 1;
            for (int b = 0; b < B; b++) {
                const float *xs = x + (size_t)b * T * C, *os = o1 + (size_t)b * T * OC;
                matmul_forward(o3, xs, wr, bb, T, C, OC);
                alone_same &= !memcmp(o3, os, sizeof(float) * (size_t)T * OC);
                matmul_forward_ref(o3, xs, wr, bb, T, C, OC);
                double d = check_max_abs_diff(os, o3, (size_t)T * OC);
                if (d > dmax) dmax = d;
            }
            printf("  matmul_seq B=%d T=%d C=%d OC=%d bias=%d: max |seq - ref| = %.3g\n", B, T, C, OC, wb, dmax);
            CHECK(dmax <= 2e-7 * C + 1e-6, "B=%d T=%d C=%d OC=%d: %g", B, T, C, OC, dmax);
            CHECK(alone_same, "B=%d T=%d C=%d OC=%d: a sequence's bits differ from matmul_forward on it alone", B, T, C, OC);
        }
        free(x); free(w); free(bias); free(wr); free(o1); free(o2); free(o3); free(scratch);
    }
}

TEST(rmsnorm_vs_double) {
    int N = 7, C = 333;
    float eps = 1e-5f;
    float *x = rand_buf((size_t)N * C, 3), *w = rand_buf(C, 2), *o = malloc(sizeof(float) * N * C);
    x[5] = 0; // one all-tiny row: eps dominates
    for (int c = 0; c < C; c++) x[(size_t)C + c] = 1e-4f * frand();
    rmsnorm_forward(o, x, w, N, C, eps);
    double dmax = 0.0;
    for (int n = 0; n < N; n++) {
        double ss = 0.0;
        for (int c = 0; c < C; c++) ss += (double)x[n * C + c] * x[n * C + c];
        double r = 1.0 / sqrt(ss / C + eps);
        for (int c = 0; c < C; c++) {
            double want = x[n * C + c] * r * w[c];
            double d = fabs(o[n * C + c] - want) / (1.0 + fabs(want));
            if (d > dmax) dmax = d;
        }
    }
    printf("  rmsnorm: max rel |out - double| = %.3g\n", dmax);
    CHECK(dmax < 1e-6, "%g", dmax);
    rmsnorm_forward(x, x, w, N, C, eps); // in place
    CHECK(!memcmp(x, o, sizeof(float) * N * C), "in-place result differs");
    free(x); free(w); free(o);
}

// ----------------------------------------------------------------------------

TEST(rope_known_values) {
    // HS = 4, inv_freq = base^(-2i/HS) with base 10000: {1, 0.01}
    double inv_freq[2];
    for (int i = 0; i < 2; i++) inv_freq[i] = pow(10000.0, -2.0 * i / 4);
    int32_t pos[2] = {1, 5};
    float c[4], s[4];
    rope_tables(c, s, pos, 2, inv_freq, 4);
    CHECK(fabsf(c[0] - 0.5403023058681398f) < 1e-7f && fabsf(s[0] - 0.8414709848078965f) < 1e-7f, "pos 1 i 0");
    CHECK(fabsf(c[3] - 0.9987502603949663f) < 1e-7f && fabsf(s[3] - 0.04997916927067833f) < 1e-7f, "pos 5 i 1");
    // x = [1,2,3,4] at pos 1: pairs (1,3) by 1 rad, (2,4) by 0.01 rad
    float x[4] = {1, 2, 3, 4};
    rope_forward(x, c, s, 1, 1, 4);
    const double want[4] = {-1.9841106485555495, 1.959900667496664, 2.4623779024123156, 4.019799668334994};
    for (int j = 0; j < 4; j++) CHECK(fabs(x[j] - want[j]) < 1e-6, "x[%d] = %.9g, want %.9g", j, x[j], want[j]);
}

TEST(rope_vs_complex_rotation) {
    // each pair (x[j], x[j+HS/2]) is the complex number x[j] + i x[j+HS/2]
    // multiplied by exp(i pos inv_freq[j]); large positions test the angle
    enum { N = 5, NH = 3, HS = 64 };
    double inv_freq[HS / 2];
    for (int i = 0; i < HS / 2; i++) inv_freq[i] = pow(500000.0, -2.0 * i / HS);
    int32_t pos[N] = {0, 1, 17, 4095, 131071};
    float *c = malloc(sizeof(float) * N * HS / 2), *s = malloc(sizeof(float) * N * HS / 2);
    rope_tables(c, s, pos, N, inv_freq, HS);
    float *x = rand_buf((size_t)N * NH * HS, 2), *x0 = malloc(sizeof(float) * N * NH * HS);
    memcpy(x0, x, sizeof(float) * N * NH * HS);
    rope_forward(x, c, s, N, NH, HS);
    double dt = 0.0, dx = 0.0;
    for (int n = 0; n < N; n++)
        for (int j = 0; j < HS / 2; j++) {
            double complex e = cexp(I * (pos[n] * inv_freq[j]));
            dt = fmax(dt, fmax(fabs(c[n * HS / 2 + j] - creal(e)), fabs(s[n * HS / 2 + j] - cimag(e))));
            for (int h = 0; h < NH; h++) {
                const float *a = x0 + (n * NH + h) * HS;
                double complex z = (a[j] + I * a[j + HS / 2]) * e;
                const float *b = x + (n * NH + h) * HS;
                dx = fmax(dx, fmax(fabs(b[j] - creal(z)), fabs(b[j + HS / 2] - cimag(z))));
            }
        }
    printf("  rope: max |table - cexp| = %.3g, max |x - complex rotation| = %.3g\n", dt, dx);
    CHECK(dt < 6e-8, "tables %g", dt); // one rounding to float
    CHECK(dx < 1e-6, "rotation %g", dx);
    free(c); free(s); free(x); free(x0);
}

// ----------------------------------------------------------------------------

typedef struct {
    int B, Tq, Tk, NH, NKV, HS;
    float *q, *k, *v, *out, *mass;
} att_case;

static void att_run(att_case *a, const uint8_t *valid, int ref) {
    if (ref) {
        attention_forward_ref(a->out, a->mass, a->q, a->k, a->v, valid, a->B, a->Tq, a->Tk, a->NH, a->NKV, a->HS);
        return;
    }
    // scratch one float off malloc's alignment: only float alignment is promised
    float *scr = malloc(sizeof(float) * (attention_scratch_floats(a->Tq, a->Tk) + 1));
    attention_forward(a->out, a->mass, a->q, a->k, a->v, valid, a->B, a->Tq, a->Tk, a->NH, a->NKV, a->HS, scr + 1);
    free(scr);
}

TEST(attention_blas_vs_ref) {
    // shapes: GQA 8/2 with partial blocks of 64 rows, the small-row path,
    // odd sizes, multi-query (NKV = 1)
    static const int shapes[][5] = {{2, 150, 8, 2, 16}, {1, 3, 4, 4, 8}, {3, 67, 2, 1, 5}, {2, 64, 8, 2, 32}, {1, 1, 2, 1, 4}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int B = shapes[s][0], T = shapes[s][1], NH = shapes[s][2], NKV = shapes[s][3], HS = shapes[s][4];
        size_t nq = (size_t)B * T * NH * HS, nk = (size_t)B * T * NKV * HS;
        uint8_t *valid = malloc((size_t)B * T);
        for (int b = 0; b < B; b++) // row 0 all real; row 1 right-padded; row 2 with holes
            for (int t = 0; t < T; t++)
                valid[b * T + t] = b == 0 ? 1 : b == 1 ? t < T - T / 3 : (t % 5 != 3);
        for (int pad = 0; pad < 2; pad++) {
            att_case x = {B, T, T, NH, NKV, HS, rand_buf(nq, 2), rand_buf(nk, 2), rand_buf(nk, 1),
                          malloc(sizeof(float) * nq), malloc(sizeof(float) * B * T)};
            att_case y = x;
            y.out = malloc(sizeof(float) * nq);
            y.mass = malloc(sizeof(float) * B * T);
            const uint8_t *vd = pad ? valid : NULL;
            att_run(&x, vd, 0);
            att_run(&y, vd, 1);
            double dout = check_max_abs_diff(x.out, y.out, nq), dm = check_max_abs_diff(x.mass, y.mass, (size_t)B * T);
            printf("  attention B=%d T=%d NH=%d NKV=%d HS=%d pad=%d: max |out - ref| = %.3g, |mass - ref| = %.3g\n",
                   B, T, NH, NKV, HS, pad, dout, dm);
            CHECK(dout < 2e-6 && dm < 1e-6, "out %g mass %g", dout, dm);
            if (pad) { // padding queries give exact zeros, padding keys no mass
                int bad = 0;
                for (int b = 0; b < B; b++)
                    for (int t = 0; t < T; t++) {
                        if (valid[b * T + t]) continue;
                        bad += x.mass[b * T + t] != 0.0f;
                        for (int i = 0; i < NH * HS; i++) bad += x.out[((size_t)b * T + t) * NH * HS + i] != 0.0f;
                    }
                CHECK(bad == 0, "%d nonzero values at padding", bad);
            }
            free(x.q); free(x.k); free(x.v); free(x.out); free(x.mass); free(y.out); free(y.mass);
        }
        free(valid);
    }
}

TEST(attention_last_rows) {
    // Tq < Tk must equal the last Tq rows of the full forward (both paths);
    // the reference does the same double arithmetic either way: exact.
    enum { B = 2, T = 100, NH = 8, NKV = 2, HS = 16 };
    size_t nq = (size_t)B * T * NH * HS, nk = (size_t)B * T * NKV * HS;
    float *q = rand_buf(nq, 2), *k = rand_buf(nk, 2), *v = rand_buf(nk, 1);
    float *full = malloc(sizeof(float) * nq), *fref = malloc(sizeof(float) * nq);
    float *qs = malloc(sizeof(float) * nq), *o = malloc(sizeof(float) * nq), *oref = malloc(sizeof(float) * nq);
    uint8_t valid[B * T];
    for (int i = 0; i < B * T; i++) valid[i] = i < T || i < B * T - 7; // row 1: 7 padding positions at the end
    att_case a = {B, T, T, NH, NKV, HS, q, k, v, full, NULL};
    att_run(&a, valid, 0);
    a.out = fref;
    att_run(&a, valid, 1);
    static const int tqs[] = {1, 3, 37, 64, 65, 99};
    for (size_t s = 0; s < sizeof tqs / sizeof tqs[0]; s++) {
        int Tq = tqs[s];
        size_t row = (size_t)NH * HS;
        for (int b = 0; b < B; b++)
            memcpy(qs + b * Tq * row, q + ((size_t)b * T + T - Tq) * row, sizeof(float) * Tq * row);
        float m = -1.0f;
        att_case c = {B, Tq, T, NH, NKV, HS, qs, k, v, o, &m};
        att_run(&c, valid, 0);
        c.out = oref;
        att_run(&c, valid, 1);
        CHECK(m == -1.0f, "mass written with Tq != Tk");
        double d = 0.0, dr = 0.0;
        for (int b = 0; b < B; b++) {
            d = fmax(d, check_max_abs_diff(o + b * Tq * row, full + ((size_t)b * T + T - Tq) * row, Tq * row));
            dr = fmax(dr, check_max_abs_diff(oref + b * Tq * row, fref + ((size_t)b * T + T - Tq) * row, Tq * row));
        }
        printf("  attention Tq=%d of Tk=%d: max |out - full forward's last rows| = %.3g (ref %.3g)\n", Tq, T, d, dr);
        CHECK(d < 2e-6 && dr == 0.0, "Tq=%d: %g, ref %g", Tq, d, dr);
    }
    free(q); free(k); free(v); free(full); free(fref); free(qs); free(o); free(oref);
}

TEST(attention_mass_by_hand) {
    // HS = 1, NH = 2 heads sharing one kv head. Head 0 has q = 0: uniform
    // rows. Head 1 has q = 1 and k = (0, ln 2, 0): row 1 = (1/3, 2/3),
    // row 2 = (1/4, 1/2, 1/4). v = (1, 2, 3).
    //   m_0 = 1/2 [(1 + 1/2 + 1/3)/3 + (1 + 1/3 + 1/4)/3] = 41/72
    //   m_1 = 1/2 [(1/2 + 1/3)/2 + (2/3 + 1/2)/2] = 1/2
    //   m_2 = 1/2 [1/3 + 1/4] = 7/24
    // With position 1 padding: head 0 row 2 = (1/2, 0, 1/2), head 1 row 2 =
    // (1/2, 0, 1/2) too (k_2 = k_0); Q_0 = {0, 2}:
    //   m_0 = 1/2 [(1 + 1/2)/2 + (1 + 1/2)/2] = 3/4, m_1 = 0, m_2 = 1/2
    float q[6] = {0, 1, 0, 1, 0, 1}, k[3] = {0, (float)log(2.0), 0}, v[3] = {1, 2, 3};
    float out[6], mass[3];
    const uint8_t pad[3] = {1, 0, 1};
    for (int ref = 0; ref < 2; ref++) {
        att_case a = {1, 3, 3, 2, 1, 1, q, k, v, out, mass};
        att_run(&a, NULL, ref);
        const double want[3] = {41.0 / 72, 0.5, 7.0 / 24};
        for (int i = 0; i < 3; i++) CHECK(fabs(mass[i] - want[i]) < 1e-6, "ref=%d m_%d = %.7f, want %.7f", ref, i, mass[i], want[i]);
        // outputs: head 0 row 1 = 1.5, head 1 row 1 = 1/3 + 4/3 = 5/3, head 1 row 2 = 2
        CHECK(fabs(out[2] - 1.5) < 1e-6 && fabs(out[3] - 5.0 / 3) < 1e-6 && fabs(out[5] - 2.0) < 1e-6,
              "ref=%d out %g %g %g", ref, out[2], out[3], out[5]);
        att_run(&a, pad, ref);
        const double wantp[3] = {0.75, 0.0, 0.5};
        for (int i = 0; i < 3; i++) CHECK(fabs(mass[i] - wantp[i]) < 1e-6, "ref=%d padded m_%d = %.7f, want %.7f", ref, i, mass[i], wantp[i]);
        CHECK(out[2] == 0 && out[3] == 0 && fabs(out[4] - 2.0) < 1e-6, "ref=%d padded out", ref);
    }
}

/* attention_last_mass (method.md §9.1) against the definition recomputed
 * here in double: for each row's last real position q*, one softmax per
 * head over the real keys j <= q* (key head h / (NH/NKV)), summed over
 * heads, divided by the total. Rows: all real, right-padded, a single
 * real token (w = 1 at position 0), no real token (all 0); valid = NULL
 * too. Shapes: GQA 8/2, multi-query, NH = NKV, T = 1. */
static void last_mass_double(double *w, const float *q, const float *k, const uint8_t *valid, int B, int T, int NH,
                             int NKV, int HS) {
    double *p = malloc(sizeof(double) * (size_t)T);
    for (int b = 0; b < B; b++) {
        int n = 0; // real tokens: a prefix
        while (n < T && (!valid || valid[b * T + n])) n++;
        double *wb = w + (size_t)b * T;
        for (int t = 0; t < T; t++) wb[t] = 0.0;
        if (n == 0) continue;
        for (int h = 0; h < NH; h++) {
            const float *qv = q + (((size_t)b * T + n - 1) * NH + h) * HS;
            double z = 0.0, mx = -INFINITY;
            for (int j = 0; j < n; j++) {
                const float *kv = k + (((size_t)b * T + j) * NKV + h / (NH / NKV)) * HS;
                double dot = 0.0;
                for (int d = 0; d < HS; d++) dot += (double)qv[d] * (double)kv[d];
                p[j] = dot / sqrt((double)HS);
                mx = fmax(mx, p[j]);
            }
            for (int j = 0; j < n; j++) z += (p[j] = exp(p[j] - mx));
            for (int j = 0; j < n; j++) wb[j] += p[j] / z;
        }
        double tot = 0.0;
        for (int j = 0; j < n; j++) tot += wb[j];
        for (int j = 0; j < n; j++) wb[j] /= tot;
    }
    free(p);
}

TEST(attention_last_mass_vs_double) {
    static const int shapes[][5] = {{4, 40, 8, 2, 16}, {4, 9, 4, 1, 5}, {4, 70, 3, 3, 8}, {1, 1, 2, 1, 4}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int B = shapes[s][0], T = shapes[s][1], NH = shapes[s][2], NKV = shapes[s][3], HS = shapes[s][4];
        size_t nq = (size_t)B * T * NH * HS, nk = (size_t)B * T * NKV * HS;
        float *q = rand_buf(nq, 2), *k = rand_buf(nk, 2), *w = malloc(sizeof(float) * B * T);
        double *want = malloc(sizeof(double) * B * T);
        uint8_t *valid = malloc((size_t)B * T);
        const int len[4] = {T, T - T / 3, 1, 0}; // all real, right-padded, one token, none
        for (int b = 0; b < B; b++)
            for (int t = 0; t < T; t++) valid[b * T + t] = t < len[b];
        for (int pad = 0; pad < 2; pad++) {
            const uint8_t *vd = pad ? valid : NULL;
            for (int i = 0; i < B * T; i++) w[i] = -1.0f; // every element must be written
            attention_last_mass(w, q, k, vd, B, T, NH, NKV, HS);
            last_mass_double(want, q, k, vd, B, T, NH, NKV, HS);
            double d = 0.0, sum_err = 0.0;
            int bad_pad = 0;
            for (int b = 0; b < B; b++) {
                double sum = 0.0;
                for (int t = 0; t < T; t++) {
                    d = fmax(d, fabs(w[b * T + t] - want[b * T + t]));
                    sum += w[b * T + t];
                    if (vd && !vd[b * T + t]) bad_pad += w[b * T + t] != 0.0f;
                }
                int n = vd ? len[b] : T;
                sum_err = fmax(sum_err, fabs(sum - (n ? 1.0 : 0.0)));
                if (n == 1) CHECK(w[b * T] == 1.0f, "B=%d T=%d: single-token row w_0 = %.9g, want 1", b, T, w[b * T]);
            }
            printf("  last-query mass B=%d T=%d NH=%d NKV=%d HS=%d pad=%d: max |w - double| = %.3g, "
                   "max |sum w - 1| = %.3g\n", B, T, NH, NKV, HS, pad, d, sum_err);
            CHECK(d < 1e-7 && sum_err < 1e-6, "w %g sum %g", d, sum_err);
            CHECK(bad_pad == 0, "%d nonzero weights at padding keys", bad_pad);
        }
        free(q); free(k); free(w); free(want); free(valid);
    }
}

/* The same weights from the attention the forward computes: with one-hot
 * values v_j = e_j (HS >= T), attention_forward's output row of query q*,
 * head h, is that head's probability row A_h[q*, .]. Its head mean must
 * equal attention_last_mass, padded rows included. */
TEST(attention_last_mass_vs_forward) {
    enum { B = 3, T = 20, NH = 6, NKV = 2, HS = 24 };
    size_t nq = (size_t)B * T * NH * HS, nk = (size_t)B * T * NKV * HS;
    float *q = rand_buf(nq, 2), *k = rand_buf(nk, 2), *v = calloc(nk, sizeof(float));
    float *out = malloc(sizeof(float) * nq), *w = malloc(sizeof(float) * B * T);
    for (int b = 0; b < B; b++)
        for (int j = 0; j < T; j++)
            for (int g = 0; g < NKV; g++) v[(((size_t)b * T + j) * NKV + g) * HS + j] = 1.0f;
    const int len[B] = {T, 7, 1};
    uint8_t valid[B * T];
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) valid[b * T + t] = t < len[b];
    att_case a = {B, T, T, NH, NKV, HS, q, k, v, out, NULL};
    att_run(&a, valid, 0);
    attention_last_mass(w, q, k, valid, B, T, NH, NKV, HS);
    double d = 0.0;
    for (int b = 0; b < B; b++)
        for (int j = 0; j < T; j++) {
            double mean = 0.0;
            for (int h = 0; h < NH; h++) mean += out[(((size_t)b * T + len[b] - 1) * NH + h) * HS + j];
            d = fmax(d, fabs(w[b * T + j] - mean / NH));
        }
    printf("  last-query mass vs attention_forward's one-hot output rows: max diff = %.3g\n", d);
    CHECK(d < 1e-6, "%g", d);
    free(q); free(k); free(v); free(out); free(w);
}

/* By hand, the attention_mass_by_hand setup's last query (position 2):
 * head 0 row (1/3, 1/3, 1/3), head 1 row (1/4, 1/2, 1/4) -> w = (7/24,
 * 5/12, 7/24). Padding at 1: both heads (1/2, 0, 1/2) -> (1/2, 0, 1/2)
 * (holes are skipped, though extract never makes them). Last real token
 * at 1: head 0 (1/2, 1/2), head 1 (1/3, 2/3) -> (5/12, 7/12, 0). */
TEST(attention_last_mass_by_hand) {
    float q[6] = {0, 1, 0, 1, 0, 1}, k[3] = {0, (float)log(2.0), 0}, w[3];
    static const uint8_t hole[3] = {1, 0, 1}, tail[3] = {1, 1, 0};
    static const double want[3][3] = {{7.0 / 24, 5.0 / 12, 7.0 / 24}, {0.5, 0.0, 0.5}, {5.0 / 12, 7.0 / 12, 0.0}};
    const uint8_t *vs[3] = {NULL, hole, tail};
    for (int c = 0; c < 3; c++) {
        attention_last_mass(w, q, k, vs[c], 1, 3, 2, 1, 1);
        for (int i = 0; i < 3; i++)
            CHECK(fabs(w[i] - want[c][i]) < 1e-7, "case %d: w_%d = %.8f, want %.8f", c, i, w[i], want[c][i]);
    }
}

// ----------------------------------------------------------------------------

static const float *cmp_logits;
static int cmp_desc(const void *a, const void *b) { // by logit descending, then id ascending
    int i = *(const int *)a, j = *(const int *)b;
    if (cmp_logits[i] != cmp_logits[j]) return cmp_logits[i] > cmp_logits[j] ? -1 : 1;
    return i - j;
}

TEST(logsoftmax_topk_vs_sort) {
    enum { N = 6, V = 1000 };
    float *x = malloc(sizeof(float) * N * V);
    for (int n = 0; n < N; n++)
        for (int i = 0; i < V; i++) {
            float r = frand();
            // rows: quantized (many ties), continuous, ascending (every
            // element replaces the heap's root), all equal, large, descending
            x[n * V + i] = n == 0 ? floorf(r * 8) / 4 : n == 1 ? 5 * r : n == 2 ? i * 0.01f : n == 3 ? 1.5f
                         : n == 4 ? 80 + 20 * r : -i * 0.003f;
        }
    int idx[V];
    static const int ks[] = {1, 7, 64, 999, 1000};
    double dlp = 0.0, dtail = 0.0;
    for (size_t s = 0; s < sizeof ks / sizeof ks[0]; s++) {
        int k = ks[s];
        int32_t *ids = malloc(sizeof(int32_t) * N * k);
        float *lp = malloc(sizeof(float) * N * k), tail[N];
        logsoftmax_topk(x, N, V, k, ids, lp, tail);
        for (int n = 0; n < N; n++) {
            const float *r = x + n * V;
            double mx = -INFINITY, sum = 0.0;
            for (int i = 0; i < V; i++) mx = fmax(mx, r[i]);
            for (int i = 0; i < V; i++) sum += exp(r[i] - mx);
            double lse = mx + log(sum), ptop = 0.0;
            for (int i = 0; i < V; i++) idx[i] = i;
            cmp_logits = r;
            qsort(idx, V, sizeof(int), cmp_desc);
            int bad = 0;
            for (int j = 0; j < k; j++) {
                bad += ids[n * k + j] != idx[j];
                dlp = fmax(dlp, fabs(lp[n * k + j] - (r[idx[j]] - lse)));
                ptop += exp(r[idx[j]] - lse);
            }
            CHECK(bad == 0, "row %d k=%d: %d ids differ (first %d vs %d)", n, k, bad, ids[n * k], idx[0]);
            dtail = fmax(dtail, fabs(tail[n] - fmax(0.0, 1.0 - ptop)));
        }
        free(ids); free(lp);
    }
    printf("  logsoftmax_topk: max |logprob - sort| = %.3g, max |tail - sort| = %.3g\n", dlp, dtail);
    CHECK(dlp < 1e-5 && dtail < 1e-6, "logprob %g tail %g", dlp, dtail);
    // k > V: the extra slots are empty, the tail is 0
    int32_t ids[8];
    float lp[8], tail;
    float small[5] = {0, 1, 1, -2, 3};
    logsoftmax_topk(small, 1, 5, 8, ids, lp, &tail);
    CHECK(ids[0] == 4 && ids[1] == 1 && ids[2] == 2 && ids[3] == 0 && ids[4] == 3, "ids %d %d %d %d %d", ids[0], ids[1], ids[2], ids[3], ids[4]);
    CHECK(ids[5] == -1 && ids[7] == -1 && isinf(lp[6]) && lp[6] < 0 && tail < 1e-6f, "k > V slots");
    free(x);
}

TEST(swiglu_residual) {
    enum { n = 1001 };
    float *g = rand_buf(n, 8), *u = rand_buf(n, 2), *o = malloc(sizeof(float) * n);
    g[0] = -200.0f; g[1] = 200.0f; // expf overflow / underflow
    swiglu_forward(o, g, u, n);
    double d = 0.0;
    for (int i = 0; i < n; i++) { // relative: outputs reach |16|, where a float's ulp is 2e-6
        double want = g[i] / (1.0 + exp(-(double)g[i])) * u[i];
        d = fmax(d, fabs(o[i] - want) / (1.0 + fabs(want)));
    }
    printf("  swiglu: max |out - double| / (1 + |double|) = %.3g\n", d);
    CHECK(d < 2e-6, "%g", d);
    swiglu_forward(g, g, u, n); // out == gate
    CHECK(!memcmp(g, o, sizeof(float) * n), "in place differs");
    residual_forward(o, u, n);
    int bad = 0;
    for (int i = 0; i < n; i++) bad += o[i] != g[i] + u[i];
    CHECK(bad == 0, "%d residual sums differ", bad);
    free(g); free(u); free(o);
}

int main(void) {
    RUN(matmul_blas_vs_ref);
    RUN(matmul_seq_fetch);
    RUN(rmsnorm_vs_double);
    RUN(rope_known_values);
    RUN(rope_vs_complex_rotation);
    RUN(attention_blas_vs_ref);
    RUN(attention_last_rows);
    RUN(attention_mass_by_hand);
    RUN(attention_last_mass_vs_double);
    RUN(attention_last_mass_vs_forward);
    RUN(attention_last_mass_by_hand);
    RUN(logsoftmax_topk_vs_sort);
    RUN(swiglu_residual);
    return check_summary();
}
