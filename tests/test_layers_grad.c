/*
 * test_layers_grad - the backward halves of train/layers.h, each checked
 * two ways on small random inputs (shapes not multiples of 16, GQA with
 * NH=4 over NKV=2, a padded sequence):
 *   (a) against a plain-loop gradient in double written here from the
 *       math (not from layers.c), printed as max |got - ref| / max |ref|;
 *   (b) against central finite differences of L = sum(out * R), R fixed
 *       and random, through the float forward functions, on sampled
 *       entries (always including the largest gradient).
 * Gradient buffers start random, so (a) also checks that the backwards
 * accumulate (+=). Last, the results must be the same bits on 1 and 3
 * threads: the test runs itself with --digest N (layers_threads() is fixed
 * for a process at its first call).
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "layers.h"

static const char *g_argv0;

// ----------------------------------------------------------------------------
// random numbers, buffers, errors

static uint64_t lcg = 42;
static uint32_t rnd_u32(void) { // Knuth's MMIX LCG, high bits
    lcg = lcg * 6364136223846793005ull + 1442695040888963407ull;
    return (uint32_t)(lcg >> 32);
}
static float rnd_f(void) { return (float)((rnd_u32() >> 8) / (double)(1u << 24) * 2.0 - 1.0); } // [-1, 1)
static size_t rnd_index(size_t n) { return (size_t)rnd_u32() % n; }

static float *randv(size_t n, float amp) {
    float *p = malloc(n * sizeof(float) + 1);
    for (size_t i = 0; i < n; i++) p[i] = amp * rnd_f();
    return p;
}
static float *copyv(const float *x, size_t n) {
    float *p = malloc(n * sizeof(float) + 1);
    memcpy(p, x, n * sizeof(float));
    return p;
}
static float *zerosv(size_t n) { return calloc(n + 1, sizeof(float)); }
static double *dzeros(size_t n) { return calloc(n + 1, sizeof(double)); }

static double dot(const float *a, const float *b, size_t n) {
    double s = 0.0;
    for (size_t i = 0; i < n; i++) s += (double)a[i] * b[i];
    return s;
}

/* max |got - (init + ref)| / max |ref|: got is a gradient buffer that
 * started as init (NULL: as zeros) and ref the double gradient. */
static double grad_err(const float *got, const float *init, const double *ref, size_t n) {
    double m = 0.0, rmax = 0.0;
    for (size_t i = 0; i < n; i++) {
        double want = (init ? (double)init[i] : 0.0) + ref[i], d = fabs((double)got[i] - want);
        if (!(d <= m)) m = d; // NaN sticks
        if (fabs(ref[i]) > rmax) rmax = fabs(ref[i]);
    }
    return m / (rmax > 0.0 ? rmax : 1e-30);
}

/* Central differences of f with param[i] moved by +-h (the step the float
 * actually took), against the analytic gradient an (n). Entries: nsamp
 * random ones, the largest |an| and extra (nextra, may be NULL). Returns
 * the max over them of |fd - an| / max(|an|, 0.05 max|an|): relative where
 * the gradient is large, absolute at 5% of the scale where it is near 0. */
typedef double (*loss_fn)(void *ctx);
static double fd_err_at(loss_fn f, void *ctx, float *param, const float *an, size_t n, int nsamp, float h,
                        const size_t *extra, int nextra) {
    double gmax = 0.0, worst = 0.0;
    size_t imax = 0;
    for (size_t i = 0; i < n; i++)
        if (fabs(an[i]) > gmax) gmax = fabs(an[i]), imax = i;
    for (int s = 0; s <= nsamp + nextra; s++) {
        size_t i = s < nsamp ? rnd_index(n) : s == nsamp ? imax : extra[s - nsamp - 1];
        float x0 = param[i], xp = x0 + h, xm = x0 - h;
        param[i] = xp;
        double lp = f(ctx);
        param[i] = xm;
        double lm = f(ctx);
        param[i] = x0;
        double fd = (lp - lm) / ((double)xp - xm);
        double den = fmax(fmax(fabs(an[i]), 0.05 * gmax), 1e-12), e = fabs(fd - an[i]) / den;
        if (!(e <= worst)) worst = e;
    }
    return worst;
}
static double fd_err(loss_fn f, void *ctx, float *param, const float *an, size_t n, int nsamp, float h) {
    return fd_err_at(f, ctx, param, an, n, nsamp, h, NULL, 0);
}

#define TOL_REF 1e-4
#define TOL_FD 1e-2

// ----------------------------------------------------------------------------
// matmul

typedef struct { float *inp, *w, *b, *out; const float *R; int N, C, OC; } mm_ctx;
static double mm_loss(void *p) {
    mm_ctx *c = p;
    matmul_forward(c->out, c->inp, c->w, c->b, c->N, c->C, c->OC);
    return dot(c->out, c->R, (size_t)c->N * c->OC);
}

TEST(matmul_backward_grad) {
    // the second shape is big enough that both passes split over threads
    static const int shapes[][3] = {{37, 29, 43}, {150, 70, 90}, {1, 5, 3}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        const int N = shapes[s][0], C = shapes[s][1], OC = shapes[s][2];
        const size_t nx = (size_t)N * C, nw = (size_t)OC * C, no = (size_t)N * OC;
        float *x = randv(nx, 1), *w = randv(nw, 1), *b = randv(OC, 1), *dout = randv(no, 1);
        float *dx0 = randv(nx, 1), *dw0 = randv(nw, 1), *db0 = randv(OC, 1);
        float *dx = copyv(dx0, nx), *dw = copyv(dw0, nw), *db = copyv(db0, OC);
        matmul_backward(dx, dw, db, dout, x, w, N, C, OC);
        double *rx = dzeros(nx), *rw = dzeros(nw), *rb = dzeros(OC);
        for (int n = 0; n < N; n++)
            for (int o = 0; o < OC; o++) {
                double g = dout[(size_t)n * OC + o];
                rb[o] += g;
                for (int c = 0; c < C; c++) {
                    rx[(size_t)n * C + c] += g * w[(size_t)o * C + c];
                    rw[(size_t)o * C + c] += g * x[(size_t)n * C + c];
                }
            }
        double ex = grad_err(dx, dx0, rx, nx), ew = grad_err(dw, dw0, rw, nw), eb = grad_err(db, db0, rb, OC);
        printf("  matmul N=%d C=%d OC=%d vs double: dinp %.2g dweight %.2g dbias %.2g\n", N, C, OC, ex, ew, eb);
        CHECK(ex < TOL_REF && ew < TOL_REF && eb < TOL_REF, "dinp %g dweight %g dbias %g", ex, ew, eb);
        // NULL outputs are skipped; the others are computed as before
        float *dw2 = copyv(dw0, nw), *dx2 = copyv(dx0, nx);
        matmul_backward(NULL, dw2, NULL, dout, x, w, N, C, OC);
        matmul_backward(dx2, NULL, NULL, dout, x, w, N, C, OC);
        CHECK(!memcmp(dw2, dw, nw * sizeof(float)) && !memcmp(dx2, dx, nx * sizeof(float)),
              "results with NULL outputs differ");
        if (s == 0) { // finite differences: gradients from zero, dout = R
            float *R = randv(no, 1), *out = zerosv(no), *gx = zerosv(nx), *gw = zerosv(nw), *gb = zerosv(OC);
            matmul_backward(gx, gw, gb, R, x, w, N, C, OC);
            mm_ctx c = {x, w, b, out, R, N, C, OC};
            double fx = fd_err(mm_loss, &c, x, gx, nx, 20, 1e-2f), fw = fd_err(mm_loss, &c, w, gw, nw, 20, 1e-2f),
                   fb = fd_err(mm_loss, &c, b, gb, OC, 10, 1e-2f);
            printf("  matmul finite differences: dinp %.2g dweight %.2g dbias %.2g\n", fx, fw, fb);
            CHECK(fx < TOL_FD && fw < TOL_FD && fb < TOL_FD, "fd dinp %g dweight %g dbias %g", fx, fw, fb);
            free(R); free(out); free(gx); free(gw); free(gb);
        }
        free(x); free(w); free(b); free(dout); free(dx0); free(dw0); free(db0); free(dx); free(dw); free(db);
        free(rx); free(rw); free(rb); free(dw2); free(dx2);
    }
}

// ----------------------------------------------------------------------------
// rmsnorm

typedef struct { float *x, *w, *out; const float *R; int N, C; float eps; } rms_ctx;
static double rms_loss(void *p) {
    rms_ctx *c = p;
    rmsnorm_forward(c->out, c->x, c->w, c->N, c->C, c->eps);
    return dot(c->out, c->R, (size_t)c->N * c->C);
}

TEST(rmsnorm_backward_grad) {
    const int N = 7, C = 45;
    const float eps = 1e-5f;
    const size_t nx = (size_t)N * C;
    float *x = randv(nx, 1), *w = randv(C, 1.5f), *dout = randv(nx, 1);
    for (int c = 0; c < C; c++) x[3 * C + c] *= 3.0f; // rows of different scales
    for (int c = 0; c < C; c++) x[5 * C + c] *= 0.05f;
    float *dx0 = randv(nx, 1), *dw0 = randv(C, 1), *dx = copyv(dx0, nx), *dw = copyv(dw0, C);
    rmsnorm_backward(dx, dw, dout, x, w, N, C, eps);
    // y_c = w_c x_c r, r = (sum_j x_j^2 / C + eps)^(-1/2): the Jacobian
    // dy_c/dx_i = w_c (delta_ci r - x_c x_i r^3 / C), applied transposed
    double *rx = dzeros(nx), *rw = dzeros(C);
    for (int n = 0; n < N; n++) {
        const float *xr = x + (size_t)n * C, *g = dout + (size_t)n * C;
        double ss = 0.0;
        for (int c = 0; c < C; c++) ss += (double)xr[c] * xr[c];
        double r = 1.0 / sqrt(ss / C + eps);
        for (int i = 0; i < C; i++)
            for (int c = 0; c < C; c++)
                rx[(size_t)n * C + i] += g[c] * w[c] * ((c == i) * r - (double)xr[c] * xr[i] * r * r * r / C);
        for (int c = 0; c < C; c++) rw[c] += (double)g[c] * xr[c] * r;
    }
    double ex = grad_err(dx, dx0, rx, nx), ew = grad_err(dw, dw0, rw, C);
    printf("  rmsnorm vs double: dinp %.2g dweight %.2g\n", ex, ew);
    CHECK(ex < TOL_REF && ew < TOL_REF, "dinp %g dweight %g", ex, ew);

    float *R = randv(nx, 1), *out = zerosv(nx), *gx = zerosv(nx), *gw = zerosv(C);
    rmsnorm_backward(gx, gw, R, x, w, N, C, eps);
    rms_ctx c = {x, w, out, R, N, C, eps};
    double fx = fd_err(rms_loss, &c, x, gx, nx, 30, 1e-3f), fw = fd_err(rms_loss, &c, w, gw, C, 15, 1e-2f);
    printf("  rmsnorm finite differences: dinp %.2g dweight %.2g\n", fx, fw);
    CHECK(fx < TOL_FD && fw < TOL_FD, "fd dinp %g dweight %g", fx, fw);
    free(x); free(w); free(dout); free(dx0); free(dw0); free(dx); free(dw); free(rx); free(rw);
    free(R); free(out); free(gx); free(gw);
}

// ----------------------------------------------------------------------------
// embedding

typedef struct { const int32_t *ids; float *wte, *out; const float *R; int N, C; } emb_ctx;
static double emb_loss(void *p) {
    emb_ctx *c = p;
    embedding_forward(c->out, c->ids, c->wte, c->N, c->C);
    return dot(c->out, c->R, (size_t)c->N * c->C);
}

TEST(embedding_grad) {
    const int V = 11, C = 19, N = 23; // N > V: ids repeat
    const size_t nw = (size_t)V * C, no = (size_t)N * C;
    int32_t ids[23];
    for (int n = 0; n < N; n++) ids[n] = (int32_t)rnd_index(V);
    ids[4] = ids[9] = ids[17] = 2;
    float *wte = randv(nw, 1), *out = zerosv(no), *dout = randv(no, 1);
    embedding_forward(out, ids, wte, N, C);
    int same = 1;
    for (int n = 0; n < N; n++) same &= !memcmp(out + (size_t)n * C, wte + (size_t)ids[n] * C, C * sizeof(float));
    CHECK(same, "embedding_forward rows differ from wte");
    float *dw0 = randv(nw, 1), *dw = copyv(dw0, nw);
    embedding_backward(dw, dout, ids, N, C);
    double *rw = dzeros(nw);
    for (int n = 0; n < N; n++)
        for (int c = 0; c < C; c++) rw[(size_t)ids[n] * C + c] += dout[(size_t)n * C + c];
    double ew = grad_err(dw, dw0, rw, nw);
    float *gw = zerosv(nw);
    embedding_backward(gw, dout, ids, N, C);
    emb_ctx c = {ids, wte, out, dout, N, C};
    double fw = fd_err(emb_loss, &c, wte, gw, nw, 20, 1e-2f);
    printf("  embedding: dwte vs double %.2g, finite differences %.2g\n", ew, fw);
    CHECK(ew < TOL_REF && fw < TOL_FD, "dwte %g fd %g", ew, fw);
    free(wte); free(out); free(dout); free(dw0); free(dw); free(rw); free(gw);
}

// ----------------------------------------------------------------------------
// rope

typedef struct { const float *x, *cos, *sin; float *out; const float *R; int N, NH, HS; } rope_ctx;
static double rope_loss(void *p) {
    rope_ctx *c = p;
    size_t n = (size_t)c->N * c->NH * c->HS;
    memcpy(c->out, c->x, n * sizeof(float));
    rope_forward(c->out, c->cos, c->sin, c->N, c->NH, c->HS);
    return dot(c->out, c->R, n);
}

TEST(rope_backward_grad) {
    const int N = 13, NH = 4, HS = 8, h = HS / 2;
    const size_t n = (size_t)N * NH * HS;
    double inv_freq[4];
    for (int i = 0; i < h; i++) inv_freq[i] = pow(10000.0, -2.0 * i / HS);
    int32_t pos[13];
    for (int i = 0; i < N; i++) pos[i] = 7 * i + 3;
    float *cs = malloc(sizeof(float) * N * h), *sn = malloc(sizeof(float) * N * h);
    rope_tables(cs, sn, pos, N, inv_freq, HS);
    float *dy = randv(n, 1), *dx = copyv(dy, n);
    rope_backward(dx, cs, sn, N, NH, HS);
    // reference: the rotation by -angle, from the angle itself (not the tables)
    double *rx = dzeros(n);
    for (int t = 0; t < N; t++)
        for (int hd = 0; hd < NH; hd++)
            for (int j = 0; j < h; j++) {
                size_t o = ((size_t)t * NH + hd) * HS;
                double a = (double)pos[t] * inv_freq[j], g1 = dy[o + j], g2 = dy[o + j + h];
                rx[o + j] = g1 * cos(a) + g2 * sin(a);
                rx[o + j + h] = -g1 * sin(a) + g2 * cos(a);
            }
    double ex = grad_err(dx, NULL, rx, n);
    // adjoint identity <rope(x), y> = <x, rope^T(y)>
    float *x = randv(n, 1), *rxv = copyv(x, n);
    rope_forward(rxv, cs, sn, N, NH, HS);
    double l = dot(rxv, dy, n), r = dot(x, dx, n), eadj = fabs(l - r) / fabs(l);
    float *out = zerosv(n);
    rope_ctx c = {x, cs, sn, out, dy, N, NH, HS};
    double fx = fd_err(rope_loss, &c, x, dx, n, 20, 1e-2f);
    printf("  rope: vs double %.2g, adjoint |<Rx,y> - <x,R^T y>| / |<Rx,y>| %.2g, finite differences %.2g\n", ex,
           eadj, fx);
    CHECK(ex < TOL_REF && eadj < 1e-5 && fx < TOL_FD, "ref %g adjoint %g fd %g", ex, eadj, fx);
    free(cs); free(sn); free(dy); free(dx); free(rx); free(x); free(rxv); free(out);
}

// ----------------------------------------------------------------------------
// attention

/* The gradient of attention in double, straight from its definition per
 * (b, h, query): p = softmax over visible real keys, dp_j = dout . v_j,
 * ds_j = p_j (dp_j - sum_i p_i dp_i). */
static void attention_backward_dref(double *dq, double *dk, double *dv, const float *dout, const float *q,
                                    const float *k, const float *v, const uint8_t *valid, int B, int T, int NH,
                                    int NKV, int HS) {
    const int rep = NH / NKV;
    const double scale = 1.0 / sqrt((double)HS);
    double *p = malloc(sizeof(double) * T), *dp = malloc(sizeof(double) * T);
#define QI(b, t, h) ((((size_t)(b) * T + (t)) * NH + (h)) * HS)
#define KI(b, t, g) ((((size_t)(b) * T + (t)) * NKV + (g)) * HS)
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++)
            for (int t = 0; t < T; t++) {
                const int g = h / rep;
                const uint8_t *vb = valid ? valid + (size_t)b * T : NULL;
                if (vb && !vb[t]) continue;
                double mx = -INFINITY, sum = 0.0, D = 0.0;
                for (int j = 0; j <= t; j++) {
                    p[j] = -INFINITY;
                    if (vb && !vb[j]) continue;
                    double s = 0.0;
                    for (int d = 0; d < HS; d++) s += (double)q[QI(b, t, h) + d] * k[KI(b, j, g) + d];
                    p[j] = s * scale;
                    if (p[j] > mx) mx = p[j];
                }
                for (int j = 0; j <= t; j++) sum += p[j] = exp(p[j] - mx);
                for (int j = 0; j <= t; j++) {
                    p[j] /= sum;
                    dp[j] = 0.0;
                    for (int d = 0; d < HS; d++) dp[j] += (double)dout[QI(b, t, h) + d] * v[KI(b, j, g) + d];
                    D += p[j] * dp[j];
                }
                for (int j = 0; j <= t; j++) {
                    double ds = p[j] * (dp[j] - D);
                    for (int d = 0; d < HS; d++) {
                        dq[QI(b, t, h) + d] += scale * ds * k[KI(b, j, g) + d];
                        dk[KI(b, j, g) + d] += scale * ds * q[QI(b, t, h) + d];
                        dv[KI(b, j, g) + d] += p[j] * dout[QI(b, t, h) + d];
                    }
                }
            }
#undef QI
#undef KI
    free(p);
    free(dp);
}

typedef struct { float *q, *k, *v, *out, *scratch; const uint8_t *valid; const float *R; int B, T, NH, NKV, HS; } att_ctx;
static double att_loss(void *p) {
    att_ctx *c = p;
    attention_forward(c->out, NULL, c->q, c->k, c->v, c->valid, c->B, c->T, c->T, c->NH, c->NKV, c->HS, c->scratch);
    return dot(c->out, c->R, (size_t)c->B * c->T * c->NH * c->HS);
}

static void attention_case(int T, const uint8_t *valid) {
    const int B = 2, NH = 4, NKV = 2, HS = 8;
    const size_t nq = (size_t)B * T * NH * HS, nk = (size_t)B * T * NKV * HS;
    float *q = randv(nq, 1.5f), *k = randv(nk, 1.5f), *v = randv(nk, 1), *dout = randv(nq, 1), *out = zerosv(nq);
    float *scratch = malloc(sizeof(float) * attention_scratch_floats(T, T));
    attention_forward(out, NULL, q, k, v, valid, B, T, T, NH, NKV, HS, scratch);
    float *dq0 = randv(nq, 1), *dk0 = randv(nk, 1), *dv0 = randv(nk, 1);
    float *dq = copyv(dq0, nq), *dk = copyv(dk0, nk), *dv = copyv(dv0, nk);
    attention_backward(dq, dk, dv, dout, q, k, v, out, valid, B, T, NH, NKV, HS);
    double *rq = dzeros(nq), *rk = dzeros(nk), *rv = dzeros(nk);
    attention_backward_dref(rq, rk, rv, dout, q, k, v, valid, B, T, NH, NKV, HS);
    double eq = grad_err(dq, dq0, rq, nq), ek = grad_err(dk, dk0, rk, nk), ev = grad_err(dv, dv0, rv, nk);
    // padding: no gradient reaches a padding key, none comes from a padding query
    int untouched = 1;
    for (int b = 0; valid && b < B; b++)
        for (int t = 0; t < T; t++)
            if (!valid[(size_t)b * T + t]) {
                size_t oq = ((size_t)b * T + t) * NH * HS, ok = ((size_t)b * T + t) * NKV * HS;
                untouched &= !memcmp(dq + oq, dq0 + oq, NH * HS * sizeof(float));
                untouched &= !memcmp(dk + ok, dk0 + ok, NKV * HS * sizeof(float));
                untouched &= !memcmp(dv + ok, dv0 + ok, NKV * HS * sizeof(float));
            }
    printf("  attention T=%d %s vs double: dq %.2g dk %.2g dv %.2g\n", T, valid ? "padded" : "no mask", eq, ek, ev);
    CHECK(eq < TOL_REF && ek < TOL_REF && ev < TOL_REF, "T=%d dq %g dk %g dv %g", T, eq, ek, ev);
    CHECK(untouched, "T=%d: a padding position's dq, dk or dv changed", T);

    float *gq = zerosv(nq), *gk = zerosv(nk), *gv = zerosv(nk);
    attention_backward(gq, gk, gv, dout, q, k, v, out, valid, B, T, NH, NKV, HS);
    att_ctx c = {q, k, v, out, scratch, valid, dout, B, T, NH, NKV, HS};
    double fq = fd_err(att_loss, &c, q, gq, nq, 30, 1e-2f), fk = fd_err(att_loss, &c, k, gk, nk, 30, 1e-2f),
           fv = fd_err(att_loss, &c, v, gv, nk, 30, 1e-2f);
    printf("  attention T=%d %s finite differences: dq %.2g dk %.2g dv %.2g\n", T, valid ? "padded" : "no mask", fq,
           fk, fv);
    CHECK(fq < TOL_FD && fk < TOL_FD && fv < TOL_FD, "T=%d fd dq %g dk %g dv %g", T, fq, fk, fv);
    free(q); free(k); free(v); free(dout); free(out); free(scratch); free(dq0); free(dk0); free(dv0);
    free(dq); free(dk); free(dv); free(rq); free(rk); free(rv); free(gq); free(gk); free(gv);
}

TEST(attention_backward_grad) {
    // sequence 1: padding first, inside and at the end (rows after the last
    // real token are skipped by both halves)
    static const uint8_t valid13[2 * 13] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
                                            0, 1, 1, 0, 1, 1, 1, 1, 1, 1, 0, 0, 0};
    attention_case(13, valid13);
    attention_case(13, NULL);
    // T = 70 > 64: two row blocks per head
    uint8_t valid70[2 * 70];
    for (int i = 0; i < 2 * 70; i++) valid70[i] = !(i >= 70 && (i % 9 == 0 || i >= 70 + 66));
    attention_case(70, valid70);
}

// ----------------------------------------------------------------------------
// swiglu

typedef struct { float *g, *u, *out; const float *R; size_t n; } swi_ctx;
static double swi_loss(void *p) {
    swi_ctx *c = p;
    swiglu_forward(c->out, c->g, c->u, c->n);
    return dot(c->out, c->R, c->n);
}

TEST(swiglu_backward_grad) {
    const size_t n = 1003; // vector body and scalar tail
    float *g = randv(n, 6), *u = randv(n, 2), *dout = randv(n, 1);
    g[5] = -100.0f; g[6] = 100.0f; g[7] = 0.0f; g[n - 1] = -120.0f; // saturation, both paths
    float *dg0 = randv(n, 1), *du0 = randv(n, 1), *dg = copyv(dg0, n), *du = copyv(du0, n);
    swiglu_backward(dg, du, dout, g, u, n);
    double *rg = dzeros(n), *ru = dzeros(n);
    for (size_t i = 0; i < n; i++) {
        double x = g[i], s = 1.0 / (1.0 + exp(-x));
        rg[i] = dout[i] * u[i] * (s + x * s * (1.0 - s));
        ru[i] = dout[i] * x * s;
    }
    double eg = grad_err(dg, dg0, rg, n), eu = grad_err(du, du0, ru, n);
    float *gg = zerosv(n), *gu = zerosv(n), *out = zerosv(n);
    swiglu_backward(gg, gu, dout, g, u, n);
    swi_ctx c = {g, u, out, dout, n};
    double fg = fd_err(swi_loss, &c, g, gg, n, 40, 1e-2f), fu = fd_err(swi_loss, &c, u, gu, n, 20, 1e-2f);
    printf("  swiglu vs double: dgate %.2g dup %.2g; finite differences: dgate %.2g dup %.2g\n", eg, eu, fg, fu);
    CHECK(eg < TOL_REF && eu < TOL_REF && fg < TOL_FD && fu < TOL_FD, "%g %g %g %g", eg, eu, fg, fu);
    free(g); free(u); free(dout); free(dg0); free(du0); free(dg); free(du); free(rg); free(ru);
    free(gg); free(gu); free(out);
}

// ----------------------------------------------------------------------------
// cross-entropy

typedef struct { float *logits; const int32_t *t; int N, V; } ce_ctx;
static double ce_loss(void *p) {
    ce_ctx *c = p;
    return crossentropy_forward_backward(NULL, c->logits, c->t, c->N, c->V, 1.0f);
}

TEST(crossentropy_grad) {
    const int N = 9, V = 37;
    const size_t n = (size_t)N * V;
    int32_t t[9];
    float *x = randv(n, 4);
    for (int i = 0; i < N; i++) t[i] = (int32_t)rnd_index(V);
    t[2] = -1; t[7] = -1;
    for (int j = 0; j < V; j++) x[5 * V + j] *= 20.0f; // logits up to +-80: needs the max shift
    int counted = 0;
    for (int i = 0; i < N; i++) counted += t[i] >= 0;
    const float scale = 1.0f / counted;
    float *d = randv(n, 1); // written, not accumulated: the old contents must not matter
    double loss = crossentropy_forward_backward(d, x, t, N, V, scale);
    double rloss = 0.0, *rd = dzeros(n);
    for (int i = 0; i < N; i++) {
        if (t[i] < 0) continue;
        const float *xr = x + (size_t)i * V;
        double mx = -INFINITY, s = 0.0;
        for (int j = 0; j < V; j++) mx = fmax(mx, xr[j]);
        for (int j = 0; j < V; j++) s += exp(xr[j] - mx);
        double lse = mx + log(s);
        rloss += lse - xr[t[i]];
        for (int j = 0; j < V; j++) rd[(size_t)i * V + j] = scale * (exp(xr[j] - lse) - (j == t[i]));
    }
    double el = fabs(loss - rloss) / rloss, ed = grad_err(d, NULL, rd, n);
    int zero = 1;
    for (int j = 0; j < V; j++) zero &= d[2 * V + j] == 0.0f && d[7 * V + j] == 0.0f;
    CHECK(zero, "ignored rows not zero");
    // in place, loss only: the same bits
    float *xi = copyv(x, n);
    double loss2 = crossentropy_forward_backward(xi, xi, t, N, V, scale), loss3 =
        crossentropy_forward_backward(NULL, x, t, N, V, scale);
    CHECK(loss2 == loss && loss3 == loss && !memcmp(xi, d, n * sizeof(float)), "in place or loss-only differs");
    // finite differences of the loss itself (scale 1: dlogits is its gradient)
    float *g = zerosv(n);
    crossentropy_forward_backward(g, x, t, N, V, 1.0f);
    ce_ctx c = {x, t, N, V};
    size_t at_t[9]; // the target logits, where the one-hot term is
    int nt = 0;
    for (int i = 0; i < N; i++)
        if (t[i] >= 0) at_t[nt++] = (size_t)i * V + t[i];
    double fd = fd_err_at(ce_loss, &c, x, g, n, 30, 1e-2f, at_t, nt);
    printf("  crossentropy vs double: loss %.2g dlogits %.2g; finite differences %.2g\n", el, ed, fd);
    CHECK(el < 1e-8 && ed < TOL_REF && fd < TOL_FD, "loss %g dlogits %g fd %g", el, ed, fd);
    // a target outside the vocabulary (not -1) is a bug upstream: NaN loss
    int32_t bad[9];
    memcpy(bad, t, sizeof bad);
    bad[0] = V;
    CHECK(isnan(crossentropy_forward_backward(NULL, x, bad, N, V, 1.0f)), "target V did not give NaN");
    free(x); free(d); free(rd); free(xi); free(g);
}

// ----------------------------------------------------------------------------
// thread-count invariance

static uint64_t fnv(uint64_t h, const void *p, size_t n) {
    const unsigned char *c = p;
    for (size_t i = 0; i < n; i++) h = (h ^ c[i]) * 1099511628211ull;
    return h;
}

/* Runs every threaded backward on shapes that split over threads and prints
 * one hash of all the results. */
static int digest_main(int threads) {
    layers_set_threads(threads);
    uint64_t h = 1469598103934665603ull;
    // matmul: the second shape split 9 rows a thread before slices were
    // kept above OpenBLAS's small-matrix size (see matmul_backward)
    for (int s = 0; s < 2; s++) {
        const int N = s ? 27 : 256, C = s ? 273 : 128, OC = s ? 391 : 192;
        float *x = randv((size_t)N * C, 1), *w = randv((size_t)OC * C, 1), *dout = randv((size_t)N * OC, 1);
        float *dx = zerosv((size_t)N * C), *dw = zerosv((size_t)OC * C), *db = zerosv(OC);
        matmul_backward(dx, dw, db, dout, x, w, N, C, OC);
        h = fnv(h, dx, sizeof(float) * N * C); h = fnv(h, dw, sizeof(float) * OC * C); h = fnv(h, db, sizeof(float) * OC);
        free(x); free(w); free(dout); free(dx); free(dw); free(db);
    }
    { // rmsnorm
        const int N = 1024, C = 256;
        float *x = randv((size_t)N * C, 1), *w = randv(C, 1), *dout = randv((size_t)N * C, 1);
        float *dx = zerosv((size_t)N * C), *dw = zerosv(C);
        rmsnorm_backward(dx, dw, dout, x, w, N, C, 1e-5f);
        h = fnv(h, dx, sizeof(float) * N * C); h = fnv(h, dw, sizeof(float) * C);
        free(x); free(w); free(dout); free(dx); free(dw);
    }
    { // attention
        const int B = 2, T = 100, NH = 4, NKV = 2, HS = 16;
        const size_t nq = (size_t)B * T * NH * HS, nk = (size_t)B * T * NKV * HS;
        float *q = randv(nq, 1), *k = randv(nk, 1), *v = randv(nk, 1), *dout = randv(nq, 1), *out = zerosv(nq);
        float *scratch = malloc(sizeof(float) * attention_scratch_floats(T, T));
        uint8_t valid[200];
        for (int i = 0; i < 200; i++) valid[i] = i < 100 || i % 7;
        attention_forward(out, NULL, q, k, v, valid, B, T, T, NH, NKV, HS, scratch);
        float *dq = zerosv(nq), *dk = zerosv(nk), *dv = zerosv(nk);
        attention_backward(dq, dk, dv, dout, q, k, v, out, valid, B, T, NH, NKV, HS);
        h = fnv(h, dq, sizeof(float) * nq); h = fnv(h, dk, sizeof(float) * nk); h = fnv(h, dv, sizeof(float) * nk);
        free(q); free(k); free(v); free(dout); free(out); free(scratch); free(dq); free(dk); free(dv);
    }
    { // swiglu
        const size_t n = 300000;
        float *g = randv(n, 4), *u = randv(n, 1), *dout = randv(n, 1), *dg = zerosv(n), *du = zerosv(n);
        swiglu_backward(dg, du, dout, g, u, n);
        h = fnv(h, dg, sizeof(float) * n); h = fnv(h, du, sizeof(float) * n);
        free(g); free(u); free(dout); free(dg); free(du);
    }
    { // cross-entropy
        const int N = 64, V = 5000;
        float *x = randv((size_t)N * V, 5), *d = zerosv((size_t)N * V);
        int32_t t[64];
        for (int i = 0; i < N; i++) t[i] = i % 5 ? (int32_t)rnd_index(V) : -1;
        double loss = crossentropy_forward_backward(d, x, t, N, V, 0.01f);
        h = fnv(h, d, sizeof(float) * N * V); h = fnv(h, &loss, sizeof loss);
        free(x); free(d);
    }
    printf("%d %016llx\n", layers_threads(), (unsigned long long)h);
    return 0;
}

static int run_digest(int threads, char *buf, size_t n) {
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "'%s' --digest %d", g_argv0, threads);
    FILE *f = popen(cmd, "r");
    if (!f) return -1;
    buf[0] = 0;
    if (!fgets(buf, (int)n, f)) buf[0] = 0;
    return pclose(f) == 0 && buf[0] ? 0 : -1;
}

TEST(backward_thread_invariant) {
    if (!g_argv0 || !strchr(g_argv0, '/') || strchr(g_argv0, '\'')) {
        check_skip_("backward_thread_invariant", "run me by a path (argv[0]) to re-run myself");
        return;
    }
    char a[128], b[128];
    int ra = run_digest(1, a, sizeof a), rb = run_digest(3, b, sizeof b);
    a[strcspn(a, "\n")] = 0;
    b[strcspn(b, "\n")] = 0;
    printf("  threads, digest: [%s] [%s]\n", a, b);
    CHECK(ra == 0 && rb == 0, "a --digest run failed");
    CHECK(ra == 0 && rb == 0 && a[0] == '1' && b[0] == '3' && !strcmp(a + 1, b + 1),
          "backward results depend on the thread count");
}

int main(int argc, char **argv) {
    g_argv0 = argv[0];
    if (argc == 3 && !strcmp(argv[1], "--digest")) return digest_main(atoi(argv[2]));
    RUN(matmul_backward_grad);
    RUN(rmsnorm_backward_grad);
    RUN(embedding_grad);
    RUN(rope_backward_grad);
    RUN(attention_backward_grad);
    RUN(swiglu_backward_grad);
    RUN(crossentropy_grad);
    RUN(backward_thread_invariant);
    return check_summary();
}
