/*
 * test_loss - the distillation losses (train/loss.h) against independent
 * references:
 *   - values and gradients of every loss against PyTorch float64 autograd
 *     (tests/loss_ref.py, one run over all cases), which also checks its
 *     values against ../shared/tools/sra_ref.py (l_span, l_geo,
 *     kl_pooled): values within 1e-5 relative, gradients within 1e-4 of
 *     the gradient's max abs;
 *   - central finite differences in double on the returned value;
 *   - gradients accumulate (+=), `scale` scales them (negative too), NULL
 *     gradients leave the value unchanged;
 *   - guarded norms (zero rows give no NaN) and timings at full size
 *     (V_S = 150k, S = 300, dS = 1024, dT = 4096);
 *   - the paper preset's head KL (loss_head_kl, method.md §9.2): against
 *     torch and, for the value, directly against sra_ref.head_logit_kl
 *     (1e-5 relative); dWS touches only the rows s_ids; one gradient alone
 *     equals the same gradient asked with the other; timed at S = 300,
 *     K = 40000, dS = 768, dT = 2048.
 * Prints the measured max errors.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "json_test.h"
#include "loss.h"
#include "util.h"

static const char *py(void) { return getenv("SRA_PY") && *getenv("SRA_PY") ? getenv("SRA_PY") : "/usr/bin/python3"; }

static int have_torch(void) {
    char cmd[600];
    snprintf(cmd, sizeof cmd, "%s -c 'import torch' 2>/dev/null", py());
    return system(cmd) == 0;
}

static uint64_t lcg = 0x5eed1234ull;
static double urand(void) { // uniform in [0, 1)
    lcg = lcg * 6364136223846793005ull + 1442695040888963407ull;
    return (double)(lcg >> 11) / (double)(1ull << 53);
}
static int irand(int n) { return (int)(urand() * n); }
static float frand(float amp) { return (float)(amp * (2.0 * urand() - 1.0)); }
static float *rand_buf(size_t n, float amp) {
    float *p = malloc(n * sizeof(float) + 1);
    for (size_t i = 0; i < n; i++) p[i] = frand(amp);
    return p;
}

// ----------------------------------------------------------------------------
// cases

enum { F_COS, F_MSE, F_GEO, F_KL, F_ULD, F_MINED, F_HEAD, NFN };
static const char *fn_names[] = {"span_cos", "span_mse", "geo", "logit_kl", "uld", "mined", "head_kl"};

typedef struct {
    int fn;
    char label[160];
    /* span losses and geo */
    int S, dS, dT;
    float *W, *cS, *cT, *P;
    /* vocabulary losses */
    int V_S, V_T, K, k;
    float tau;
    float *z, *t_lp;
    int32_t *t_ids, *t_key, *s_key, *t2s;
    /* head_kl (the paper's span logits): W is the optional span weight
     * (NULL = all 1), WT (K,dT) teacher head rows, WS (V_S,dS) the student
     * head, s_ids (K) the pairs' student ids */
    float *WT, *WS;
    int32_t *s_ids;
    int tau2;
    /* the C results at scale 1 */
    double L, mass;
    int ng;             // gradient buffers: 1 (cS or z) or 2 (cS, P)
    float *g[2];
    size_t gn[2];
    const char *gname[2];
    float *in[2];       // the inputs those gradients are of (for finite differences)
} lcase;

static void case_free(lcase *c) {
    free(c->W); free(c->cS); free(c->cT); free(c->P); free(c->z); free(c->t_lp);
    free(c->t_ids); free(c->t_key); free(c->s_key); free(c->t2s);
    free(c->WT); free(c->WS); free(c->s_ids);
    for (int i = 0; i < 2; i++) free(c->g[i]);
}

/* the loss of case c; gradients into g0 (cS or z) and g1 (P) (each may be NULL) */
static double eval(const lcase *c, float *g0, float *g1, float scale, double *mass) {
    double L = NAN;
    double *scr = NULL;
    float *fscr = NULL;
    size_t nf;
    switch (c->fn) {
    case F_COS: return loss_span_cos(g0, g1, c->W, c->cS, c->cT, c->P, c->S, c->dS, c->dT, scale);
    case F_MSE: return loss_span_mse(g0, g1, c->W, c->cS, c->cT, c->P, c->S, c->dS, c->dT, scale);
    case F_GEO: return loss_geo(g0, c->W, c->cS, c->cT, c->S, c->dS, c->dT, scale);
    case F_KL:
        scr = malloc(sizeof(double) * loss_logit_scratch(c->V_S, c->K));
        L = loss_logit_kl(g0, c->z, c->V_S, c->t_ids, c->t_lp, c->k, c->t_key, c->s_key, c->K, c->tau, scale, mass,
                          scr);
        break;
    case F_ULD:
        scr = malloc(sizeof(double) * loss_uld_scratch(c->V_S));
        L = loss_uld(g0, c->z, c->V_S, c->t_lp, c->k, scale, scr);
        break;
    case F_MINED:
        scr = malloc(sizeof(double) * (size_t)c->V_S);
        /* garbage in the scratch: the function must not rely on zeros */
        for (int j = 0; j < c->V_S; j++) scr[j] = 1e300 * (j % 3) - 7.0;
        L = loss_mined_kl(g0, c->z, c->V_S, c->t_ids, c->t_lp, c->k, c->t2s, scale, scr);
        break;
    case F_HEAD:
        nf = loss_head_kl_scratch(c->S, c->K, c->dS);
        fscr = malloc(sizeof(float) * nf + 1);
        for (size_t i = 0; i < nf; i++) fscr[i] = NAN; // the function must not rely on its scratch's contents
        L = loss_head_kl(g0, g1, c->W, c->cS, c->cT, c->WT, c->WS, c->s_ids, c->S, c->K, c->dS, c->dT, c->tau,
                         c->tau2, scale, fscr);
        break;
    }
    free(scr);
    free(fscr);
    return L;
}

static void span_case(lcase *c, int fn, int S, int dS, int dT, int zero_teacher_row) {
    memset(c, 0, sizeof *c);
    c->fn = fn; c->S = S; c->dS = dS; c->dT = dT;
    c->W = malloc(sizeof(float) * S);
    double sw = 0;
    for (int s = 0; s < S; s++) sw += c->W[s] = (float)(0.05 + urand());
    for (int s = 0; s < S; s++) c->W[s] = (float)(c->W[s] / sw);
    c->cS = rand_buf((size_t)S * dS, 1.0f);
    /* a teacher that agrees with the projection a bit, so that cosines
     * (and Gram entries) are spread rather than all near 0 */
    c->P = rand_buf((size_t)dT * dS, 1.0f / sqrtf((float)dS));
    c->cT = rand_buf((size_t)S * dT, 0.5f);
    for (int s = 0; s < S; s++)
        for (int j = 0; j < dT; j++) {
            double y = 0;
            for (int i = 0; i < dS; i++) y += (double)c->P[(size_t)j * dS + i] * c->cS[(size_t)s * dS + i];
            c->cT[(size_t)s * dT + j] += (float)((s % 3) * 0.5 * y) + 0.3f * (fn == F_MSE); // mse: a mean offset
        }
    if (zero_teacher_row) memset(c->cT + (size_t)(S / 2) * dT, 0, sizeof(float) * dT);
    if (fn == F_GEO) {
        free(c->P);
        c->P = NULL;
    }
    c->ng = fn == F_GEO ? 1 : 2;
    c->gn[0] = (size_t)S * dS; c->gname[0] = "cS"; c->in[0] = c->cS;
    c->gn[1] = (size_t)dT * dS; c->gname[1] = "P"; c->in[1] = c->P;
    snprintf(c->label, sizeof c->label, "%s S=%d dS=%d dT=%d%s", fn_names[fn], S, dS, dT,
             zero_teacher_row ? " (zero teacher row)" : "");
}

/* teacher top-k: the k largest of a random log-softmax over V_T */
static void teacher_topk(lcase *c, int V_T, int k, float amp) {
    float *lt = rand_buf(V_T, amp);
    double m = -1e300, s = 0;
    for (int i = 0; i < V_T; i++) m = lt[i] > m ? lt[i] : m;
    for (int i = 0; i < V_T; i++) s += exp(lt[i] - m);
    c->t_ids = malloc(sizeof(int32_t) * (k + 1));
    c->t_lp = malloc(sizeof(float) * (k + 1));
    for (int r = 0; r < k; r++) {
        int best = -1;
        for (int i = 0; i < V_T; i++)
            if (lt[i] > -1e30f && (best < 0 || lt[i] > lt[best])) best = i;
        c->t_ids[r] = best;
        c->t_lp[r] = (float)(lt[best] - m - log(s));
        lt[best] = -1e31f;
    }
    free(lt);
    c->V_T = V_T; c->k = k;
}

enum { KL_ZERO_MASS = 1, KL_NEG_IDS = 2, KL_FAR_ALL = 4, KL_FAR_KEY = 8 };

static void kl_case(lcase *c, int V_S, int V_T, int K, int k, float tau, int flags) {
    memset(c, 0, sizeof *c);
    c->fn = F_KL; c->V_S = V_S; c->K = K; c->tau = tau;
    c->z = rand_buf(V_S, 3.0f);
    teacher_topk(c, V_T, k, 4.0f);
    /* student keys: every key has at least one student id (keys are shared
     * by construction), several ids per key, about 30% of ids without one */
    c->s_key = malloc(sizeof(int32_t) * V_S);
    for (int j = 0; j < V_S; j++) c->s_key[j] = j < K ? j : urand() < 0.3 ? -1 : irand(K);
    for (int j = V_S - 1; j > 0; j--) {
        int i = irand(j + 1);
        int32_t t = c->s_key[i]; c->s_key[i] = c->s_key[j]; c->s_key[j] = t;
    }
    c->t_key = malloc(sizeof(int32_t) * V_T);
    for (int i = 0; i < V_T; i++) c->t_key[i] = urand() < 0.3 ? -1 : irand(K);
    if (k >= 4) {
        c->t_key[c->t_ids[1]] = -1;                         // a top-k id with no key
        c->t_key[c->t_ids[3]] = c->t_key[c->t_ids[2]] = 0;  // two top-k ids pooling to one key
    }
    if (flags & KL_NEG_IDS) { // ids < 0 are ignored, whatever their log-prob says
        c->t_ids[0] = -1;
        c->t_lp[0] = -0.01f;
        c->t_ids[k - 1] = -1;
    }
    if (flags & KL_ZERO_MASS)
        for (int r = 0; r < k; r++)
            if (c->t_ids[r] >= 0) c->t_key[c->t_ids[r]] = -1;
    /* logits far apart: every key's ids (an id without a key holds the
     * max), or the ids of the key of the teacher's top id, sit ~800 below
     * the max, so one common base would underflow their pooled sums */
    for (int j = 0; j < V_S && (flags & KL_FAR_ALL); j++)
        if (c->s_key[j] < 0) { c->z[j] = 800.0f; break; }
    for (int j = 0; j < V_S && (flags & KL_FAR_KEY); j++)
        if (c->s_key[j] == c->t_key[c->t_ids[0]]) c->z[j] -= 800.0f;
    c->ng = 1; c->gn[0] = V_S; c->gname[0] = "z"; c->in[0] = c->z;
    snprintf(c->label, sizeof c->label, "logit_kl V_S=%d V_T=%d K=%d k=%d tau=%g%s%s%s", V_S, V_T, K, k, tau,
             flags & KL_NEG_IDS ? " (ids -1)" : "", flags & KL_ZERO_MASS ? " (zero shared mass)" : "",
             flags & (KL_FAR_ALL | KL_FAR_KEY) ? " (far logits)" : "");
}

static void uld_case(lcase *c, int V_S, int k) {
    memset(c, 0, sizeof *c);
    c->fn = F_ULD; c->V_S = V_S;
    c->z = rand_buf(V_S, 3.0f);
    /* a peaked teacher (k + 3 ids), so that some ranks have pT > pS */
    teacher_topk(c, k + 3, k, 6.0f);
    c->ng = 1; c->gn[0] = V_S; c->gname[0] = "z"; c->in[0] = c->z;
    snprintf(c->label, sizeof c->label, "uld V_S=%d k=%d", V_S, k);
}

static void mined_case(lcase *c, int V_S, int V_T, int k, int nothing_maps) {
    memset(c, 0, sizeof *c);
    c->fn = F_MINED; c->V_S = V_S;
    c->z = rand_buf(V_S, 3.0f);
    teacher_topk(c, V_T, k, 4.0f);
    c->t2s = malloc(sizeof(int32_t) * V_T);
    for (int i = 0; i < V_T; i++) c->t2s[i] = urand() < 0.25 ? -1 : irand(V_S);
    if (k >= 5) {
        c->t2s[c->t_ids[0]] = c->t2s[c->t_ids[2]] = c->t2s[c->t_ids[4]] = irand(V_S); // three onto one
        c->t2s[c->t_ids[1]] = -1;                                                    // one onto none
        c->t_ids[3] = -1;                                                            // an empty slot
    }
    if (nothing_maps)
        for (int r = 0; r < k; r++)
            if (c->t_ids[r] >= 0) c->t2s[c->t_ids[r]] = -1;
    c->ng = 1; c->gn[0] = V_S; c->gname[0] = "z"; c->in[0] = c->z;
    snprintf(c->label, sizeof c->label, "mined V_S=%d V_T=%d k=%d%s", V_S, V_T, k,
             nothing_maps ? " (nothing maps)" : "");
}

static void geo_case(lcase *c, int S, int dS, int dT, int w_mode) {
    span_case(c, F_GEO, S, dS, dT, 0);
    if (w_mode == 1 && S >= 3) c->W[1] = 0.0f;                     // a span of zero weight
    if (w_mode == 2) for (int s = 1; s < S; s++) c->W[s] = 0.0f;   // one weighted span: Z = 0
    snprintf(c->label, sizeof c->label, "geo S=%d dS=%d dT=%d%s", S, dS, dT,
             w_mode == 1 ? " (a zero weight)" : w_mode == 2 ? " (one weighted span)" : "");
}

enum { HEAD_W = 1, HEAD_REPEAT = 2, HEAD_W_ZERO = 4, HEAD_W_ALL_ZERO = 8 };

/* The paper's span logits (loss_head_kl): random CoMs and heads, logits of
 * a few units on both sides (so the softmaxes are neither flat nor one-hot);
 * s_ids distinct and scattered over V_S, or with a repeated id. */
static void head_case(lcase *c, int S, int K, int dS, int dT, int V_S, float tau, int tau2, int flags) {
    memset(c, 0, sizeof *c);
    c->fn = F_HEAD; c->S = S; c->K = K; c->dS = dS; c->dT = dT; c->V_S = V_S; c->tau = tau; c->tau2 = tau2;
    c->cS = rand_buf((size_t)S * dS, 1.0f);
    c->cT = rand_buf((size_t)S * dT, 1.0f);
    c->WS = rand_buf((size_t)V_S * dS, 4.0f / sqrtf((float)dS));
    c->WT = rand_buf((size_t)K * dT, 4.0f / sqrtf((float)dT));
    /* distinct student ids: a partial shuffle of 0..V_S-1, kept in the
     * order it comes (the pairs' order is the caller's business) */
    int32_t *perm = malloc(sizeof(int32_t) * V_S);
    for (int j = 0; j < V_S; j++) perm[j] = j;
    c->s_ids = malloc(sizeof(int32_t) * K);
    for (int i = 0; i < K; i++) {
        int j = i + irand(V_S - i);
        int32_t t = perm[i]; perm[i] = perm[j]; perm[j] = t;
        c->s_ids[i] = perm[i];
    }
    free(perm);
    if ((flags & HEAD_REPEAT) && K >= 3) c->s_ids[K - 1] = c->s_ids[0]; // one student row serves two pairs
    if (flags & (HEAD_W | HEAD_W_ZERO | HEAD_W_ALL_ZERO)) {
        c->W = malloc(sizeof(float) * S);
        for (int s = 0; s < S; s++) c->W[s] = (flags & HEAD_W_ALL_ZERO) ? 0.0f : (float)(0.05 + urand());
        if ((flags & HEAD_W_ZERO) && S >= 2) c->W[S / 2] = 0.0f;
    }
    c->ng = 2;
    c->gn[0] = (size_t)S * dS; c->gname[0] = "cS"; c->in[0] = c->cS;
    c->gn[1] = (size_t)V_S * dS; c->gname[1] = "WS"; c->in[1] = c->WS;
    snprintf(c->label, sizeof c->label, "head_kl S=%d K=%d dS=%d dT=%d V_S=%d tau=%g%s%s%s%s", S, K, dS, dT, V_S,
             tau, tau2 ? " tau2" : "", flags & HEAD_W_ALL_ZERO ? " (all weights 0)" : flags & HEAD_W_ZERO ?
             " (weights, one 0)" : flags & HEAD_W ? " (weights)" : "", flags & HEAD_REPEAT ? " (repeated id)" : "",
             K > 4096 ? " (chunked)" : "");
}

/* compute the C value and gradients at scale 1 */
static void run_c(lcase *c) {
    for (int i = 0; i < c->ng; i++) c->g[i] = calloc(c->gn[i], sizeof(float));
    c->L = eval(c, c->g[0], c->ng > 1 ? c->g[1] : NULL, 1.0f, &c->mass);
}

// ----------------------------------------------------------------------------
// JSON for loss_ref.py

static void jf(FILE *f, const char *name, const float *x, size_t n) {
    fprintf(f, ", \"%s\": [", name);
    for (size_t i = 0; i < n; i++) fprintf(f, "%s%.9g", i ? "," : "", x[i]);
    fprintf(f, "]");
}
static void ji(FILE *f, const char *name, const int32_t *x, size_t n) {
    fprintf(f, ", \"%s\": [", name);
    for (size_t i = 0; i < n; i++) fprintf(f, "%s%d", i ? "," : "", x[i]);
    fprintf(f, "]");
}

static void write_case(FILE *f, const lcase *c) {
    fprintf(f, "{\"fn\": \"%s\", \"S\": %d, \"dS\": %d, \"dT\": %d, \"V_S\": %d, \"K\": %d, \"k\": %d, \"tau\": %.9g",
            fn_names[c->fn], c->S, c->dS, c->dT, c->V_S, c->K, c->k, c->tau);
    if (c->fn == F_HEAD) {
        fprintf(f, ", \"tau2\": %d", c->tau2);
        if (c->W) jf(f, "W", c->W, c->S);
        jf(f, "cS", c->cS, (size_t)c->S * c->dS);
        jf(f, "cT", c->cT, (size_t)c->S * c->dT);
        jf(f, "WT", c->WT, (size_t)c->K * c->dT);
        jf(f, "WS", c->WS, (size_t)c->V_S * c->dS);
        ji(f, "s_ids", c->s_ids, c->K);
    } else if (c->fn <= F_GEO) {
        jf(f, "W", c->W, c->S);
        jf(f, "cS", c->cS, (size_t)c->S * c->dS);
        jf(f, "cT", c->cT, (size_t)c->S * c->dT);
        if (c->P) jf(f, "P", c->P, (size_t)c->dT * c->dS);
    } else {
        jf(f, "z", c->z, c->V_S);
        jf(f, "t_lp", c->t_lp, c->k);
        ji(f, "t_ids", c->t_ids, c->k);
        if (c->t_key) ji(f, "t_key", c->t_key, c->V_T);
        if (c->s_key) ji(f, "s_key", c->s_key, c->V_S);
        if (c->t2s) ji(f, "t2s", c->t2s, c->V_T);
    }
    fprintf(f, "}");
}

/* max |a - ref| / max |ref|; a reference that is all rounding noise (a
 * gradient that is 0 in exact arithmetic) is judged in absolute terms */
static double grad_err(const float *a, const cJSON *ref, size_t n) {
    if (!cJSON_IsArray(ref) || (size_t)cJSON_GetArraySize(ref) != n) return INFINITY;
    double md = 0, mr = 0;
    size_t i = 0;
    const cJSON *x;
    cJSON_ArrayForEach(x, ref) {
        double r = x->valuedouble, d = fabs(a[i++] - r);
        if (!(d <= md)) md = d;
        if (fabs(r) > mr) mr = fabs(r);
    }
    return md / fmax(mr, 1e-12);
}

static double max_abs(const float *g, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) m = fabs(g[i]) > m ? fabs(g[i]) : m;
    return m;
}

// ----------------------------------------------------------------------------

#define MAXC 64
static lcase cases[MAXC];
static int ncases;

static void build_cases(void) {
    lcase *c = cases;
    /* span losses: S = 1, small, medium; one teacher row of zeros */
    for (int fn = F_COS; fn <= F_MSE; fn++) {
        span_case(c++, fn, 1, 3, 4, 0);
        span_case(c++, fn, 2, 5, 3, 0);
        span_case(c++, fn, 7, 16, 24, 1);
        span_case(c++, fn, 40, 48, 96, 0);
        span_case(c++, fn, 120, 33, 130, 0);
    }
    geo_case(c++, 1, 4, 6, 0);
    geo_case(c++, 2, 4, 6, 0);
    geo_case(c++, 2, 7, 3, 2);
    geo_case(c++, 3, 5, 9, 0);
    geo_case(c++, 9, 16, 24, 1);
    geo_case(c++, 60, 32, 80, 0);
    geo_case(c++, 150, 40, 64, 0);
    for (int t = 1; t <= 2; t++) {
        kl_case(c++, 30, 40, 6, 8, (float)t, 0);
        kl_case(c++, 200, 300, 50, 16, (float)t, KL_NEG_IDS);
        kl_case(c++, 3000, 2500, 700, 64, (float)t, KL_NEG_IDS);
    }
    kl_case(c++, 60, 80, 12, 8, 1.0f, KL_ZERO_MASS);
    kl_case(c++, 50, 60, 10, 8, 1.0f, KL_FAR_ALL);
    kl_case(c++, 50, 60, 10, 8, 2.0f, KL_FAR_KEY);
    kl_case(c++, 50, 60, 10, 8, 0.5f, 0);
    kl_case(c++, 150000, 32000, 40000, 64, 2.0f, KL_NEG_IDS);
    uld_case(c++, 5, 3);
    uld_case(c++, 7, 2);
    uld_case(c++, 40, 40);
    uld_case(c++, 6, 10);  // k > V_S: the student side is zero-padded
    uld_case(c++, 300, 16);
    uld_case(c++, 150000, 64);
    mined_case(c++, 20, 30, 6, 0);
    mined_case(c++, 300, 500, 32, 0);
    mined_case(c++, 40, 50, 8, 1);
    mined_case(c++, 150000, 32000, 64, 0);
    /* the paper's head KL: tau 1 and 2, tau2 off and on, plain sum and
     * weights; K > 4096 takes the chunked gather */
    head_case(c++, 1, 3, 4, 5, 7, 1.0f, 0, 0);
    head_case(c++, 2, 5, 3, 6, 9, 2.0f, 0, HEAD_REPEAT);
    head_case(c++, 6, 20, 8, 12, 40, 2.0f, 0, 0);               // the paper: tau 2, no tau^2, plain sum
    head_case(c++, 6, 20, 8, 12, 40, 2.0f, 1, HEAD_W);
    head_case(c++, 5, 17, 9, 7, 30, 1.0f, 1, HEAD_W_ZERO);
    head_case(c++, 7, 25, 6, 10, 50, 1.0f, 0, HEAD_W | HEAD_REPEAT);
    head_case(c++, 4, 12, 5, 6, 20, 2.0f, 1, HEAD_W_ALL_ZERO);
    head_case(c++, 30, 300, 24, 40, 700, 2.0f, 0, 0);
    head_case(c++, 40, 500, 32, 48, 900, 0.5f, 1, HEAD_W);
    head_case(c++, 3, 5000, 6, 5, 6000, 2.0f, 0, HEAD_REPEAT);
    head_case(c++, 4, 9000, 5, 7, 9500, 1.0f, 1, HEAD_W);
    ncases = (int)(c - cases);
    for (int i = 0; i < ncases; i++) run_c(&cases[i]);
}

TEST(vs_torch) {
    if (!have_torch()) { check_missing("vs_torch", "python3-torch (apt-get install python3-torch)"); return; }
    char dir[] = "/tmp/sra-test-loss-XXXXXX", p[1200], cmd[4000];
    if (!mkdtemp(dir)) { CHECK(0, "mkdtemp"); return; }
    snprintf(p, sizeof p, "%s/in.json", dir);
    FILE *f = fopen(p, "w");
    if (!f) { CHECK(0, "cannot write %s", p); return; }
    fprintf(f, "{\"cases\": [\n");
    for (int i = 0; i < ncases; i++) {
        if (i) fprintf(f, ",\n");
        write_case(f, &cases[i]);
    }
    fprintf(f, "]}\n");
    fclose(f);
    snprintf(cmd, sizeof cmd, "%s tests/loss_ref.py %s/in.json %s/out.json > %s/log 2>&1", py(), dir, dir, dir);
    int ok = system(cmd) == 0;
    CHECK(ok, "tests/loss_ref.py failed (see %s/log)", dir);
    snprintf(p, sizeof p, "%s/out.json", dir);
    cJSON *j = ok ? read_json(p) : NULL;
    const cJSON *res = cJSON_GetObjectItemCaseSensitive(j, "results");
    CHECK(!ok || cJSON_GetArraySize(res) == ncases, "%s: %d results for %d cases", p, cJSON_GetArraySize(res),
          ncases);
    double worst_v[NFN] = {0}, worst_g[NFN] = {0}, worst_sra = 0, worst_c_sra = 0;
    for (int i = 0; ok && i < ncases && i < cJSON_GetArraySize(res); i++) {
        const lcase *c = &cases[i];
        const cJSON *r = cJSON_GetArrayItem(res, i);
        double Lr = cJSON_GetObjectItemCaseSensitive(r, "loss")->valuedouble;
        double ev = Lr != 0 ? fabs(c->L - Lr) / fabs(Lr) : fabs(c->L);
        double eg = 0;
        const cJSON *grads = cJSON_GetObjectItemCaseSensitive(r, "grads");
        for (int b = 0; b < c->ng; b++) {
            double e = grad_err(c->g[b], cJSON_GetObjectItemCaseSensitive(grads, c->gname[b]), c->gn[b]);
            eg = e > eg ? e : eg;
        }
        char extra[200] = "";
        const cJSON *sr = cJSON_GetObjectItemCaseSensitive(r, "sra_ref");
        if (cJSON_IsNumber(sr)) {
            double es = fabs(sr->valuedouble - Lr) / fmax(fabs(Lr), 1e-300);
            worst_sra = es > worst_sra ? es : worst_sra;
            snprintf(extra, sizeof extra, ", torch vs sra_ref %.1e", es);
            CHECK(es <= 1e-9, "%s: torch %.12g vs sra_ref.py %.12g", c->label, Lr, sr->valuedouble);
            if (c->fn == F_HEAD) { /* and the C value against the oracle directly */
                double ec = sr->valuedouble != 0 ? fabs(c->L - sr->valuedouble) / fabs(sr->valuedouble) : fabs(c->L);
                worst_c_sra = ec > worst_c_sra ? ec : worst_c_sra;
                CHECK(ec <= 1e-5, "%s: C %.12g vs sra_ref.py head_logit_kl %.12g", c->label, c->L, sr->valuedouble);
            }
        }
        const cJSON *sm = cJSON_GetObjectItemCaseSensitive(r, "shared_mass");
        if (cJSON_IsNumber(sm)) {
            double em = fabs(c->mass - sm->valuedouble);
            snprintf(extra + strlen(extra), sizeof extra - strlen(extra), ", shared mass %.4f (err %.1e)", c->mass,
                     em);
            CHECK(em <= 1e-6 * fmax(1, sm->valuedouble), "%s: shared mass %.9g vs %.9g", c->label, c->mass,
                  sm->valuedouble);
        }
        printf("  %-52s L %.8g vs torch %.8g: value rel err %.1e, grad err %.1e%s\n", c->label, c->L, Lr, ev, eg,
               extra);
        CHECK(ev <= 1e-5, "%s: value %.10g vs torch %.10g", c->label, c->L, Lr);
        CHECK(eg <= 1e-4, "%s: gradient err %.3g", c->label, eg);
        worst_v[c->fn] = ev > worst_v[c->fn] ? ev : worst_v[c->fn];
        worst_g[c->fn] = eg > worst_g[c->fn] ? eg : worst_g[c->fn];
    }
    for (int fn = 0; fn < NFN; fn++)
        printf("  worst %-9s value rel err %.2e, gradient err (of max abs) %.2e\n", fn_names[fn], worst_v[fn],
               worst_g[fn]);
    printf("  worst torch vs sra_ref.py: %.2e; C head_kl vs sra_ref.py head_logit_kl: %.2e\n", worst_sra,
           worst_c_sra);
    cJSON_Delete(j);
    if (check_fails_ == 0) {
        snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
        if (system(cmd)) {}
    }
}

/* Zero-mass cases must give exactly 0 and no gradient. */
TEST(degenerate_zero) {
    for (int i = 0; i < ncases; i++) {
        const lcase *c = &cases[i];
        int zero = strstr(c->label, "zero shared mass") || strstr(c->label, "nothing maps") ||
                   strstr(c->label, "one weighted span") || (c->fn == F_GEO && c->S < 2) ||
                   strstr(c->label, "all weights 0");
        if (!zero) continue;
        CHECK(c->L == 0.0 && max_abs(c->g[0], c->gn[0]) == 0.0, "%s: L %g, |g| %g", c->label, c->L,
              max_abs(c->g[0], c->gn[0]));
        if (c->ng > 1) CHECK(max_abs(c->g[1], c->gn[1]) == 0.0, "%s: |g1| %g", c->label, max_abs(c->g[1], c->gn[1]));
        if (c->fn == F_KL) CHECK(c->mass == 0.0, "%s: mass %g", c->label, c->mass);
    }
}

/* Central differences in double on the value, at the largest gradient
 * entries and a random one of each input, for the cases small enough. */
TEST(finite_differences) {
    /* step 2e-3 of the input scale: the span losses' values carry the
     * float rounding of the sgemm projection (~1e-7 relative), which a
     * smaller step amplifies; 1e-3 leaves ~3x headroom, 2e-3 ~10x */
    float fd_h = getenv("SRA_FD_H") ? (float)atof(getenv("SRA_FD_H")) : 2e-3f;
    double worst[NFN] = {0};
    int n = 0;
    for (int i = 0; i < ncases; i++) {
        lcase *c = &cases[i];
        size_t size = c->fn == F_HEAD  ? (size_t)c->S * c->K * (c->dS + c->dT) / 100
                      : c->fn <= F_GEO ? (size_t)c->S * c->dT
                                       : (size_t)c->V_S;
        if (size > 20000 || c->L == 0.0) continue;
        for (int b = 0; b < c->ng; b++) {
            float *x = c->in[b], *g = c->g[b];
            double gmax = max_abs(g, c->gn[b]);
            size_t pick[3] = {0, 0, (size_t)irand((int)c->gn[b])};
            for (size_t q = 0; q < c->gn[b]; q++) {
                if (fabs(g[q]) > fabs(g[pick[0]])) pick[1] = pick[0], pick[0] = q;
                else if (q != pick[0] && fabs(g[q]) > fabs(g[pick[1]])) pick[1] = q;
            }
            for (int r = 0; r < 3; r++) {
                size_t q = pick[r];
                float x0 = x[q], amp = c->fn >= F_KL && c->fn != F_HEAD ? 3.0f : 1.0f, h = fd_h * fmaxf(amp, fabsf(x0));
                x[q] = x0 + h;
                double lp = eval(c, NULL, NULL, 1.0f, NULL);
                float xp = x[q];
                x[q] = x0 - h;
                double lm = eval(c, NULL, NULL, 1.0f, NULL);
                float xm = x[q];
                x[q] = x0;
                double fd = (lp - lm) / ((double)xp - xm);
                /* relative to the entry, floored at 10% of the largest
                 * entry: a tiny entry is only as exact as the float
                 * rounding of the loss allows */
                double den = fmax(fabs(g[q]), 0.1 * gmax), e = den > 0 ? fabs(fd - g[q]) / den : fabs(fd);
                if (getenv("SRA_FD_VERBOSE"))
                    printf("    %s %s[%zu]: fd %.8g analytic %.8g (err %.1e)\n", c->label, c->gname[b], q, fd, g[q], e);
                worst[c->fn] = e > worst[c->fn] ? e : worst[c->fn];
                n++;
                CHECK(e <= 1e-3, "%s: d/d%s[%zu]: finite difference %.8g, analytic %.8g", c->label, c->gname[b], q,
                      fd, g[q]);
            }
        }
    }
    printf("  %d finite differences; worst rel err:", n);
    for (int fn = 0; fn < NFN; fn++) printf(" %s %.1e", fn_names[fn], worst[fn]);
    printf("\n");
}

/* Gradients accumulate and are multiplied by scale; NULL gradients leave
 * the value unchanged. */
TEST(accumulate_and_scale) {
    double worst_twice = 0, worst_scale = 0;
    for (int i = 0; i < ncases; i++) {
        lcase *c = &cases[i];
        float *a[2] = {NULL, NULL}, *r[2] = {NULL, NULL};
        for (int b = 0; b < c->ng; b++) {
            a[b] = calloc(c->gn[b], sizeof(float));
            r[b] = malloc(c->gn[b] * sizeof(float));
        }
        double m1, m2;
        double L1 = eval(c, a[0], a[1], 1.0f, &m1), L2 = eval(c, a[0], a[1], 1.0f, &m2);
        double Ln = eval(c, NULL, NULL, 1.0f, NULL);
        CHECK(L1 == c->L && L2 == c->L && Ln == c->L, "%s: values %.17g %.17g %.17g (NULL grads) vs %.17g", c->label,
              L1, L2, Ln, c->L);
        for (int b = 0; b < c->ng; b++) {
            double gmax = max_abs(c->g[b], c->gn[b]), e = 0;
            for (size_t q = 0; q < c->gn[b]; q++) e = fmax(e, fabs(a[b][q] - 2.0 * c->g[b][q]));
            e = gmax > 0 ? e / gmax : e;
            worst_twice = fmax(worst_twice, e);
            CHECK(e <= 1e-6, "%s: twice %s err %.3g", c->label, c->gname[b], e);
            /* from a nonzero start, scale -3 */
            for (size_t q = 0; q < c->gn[b]; q++) a[b][q] = r[b][q] = (float)(gmax * frand(1.0f));
        }
        double L3 = eval(c, a[0], a[1], -3.0f, NULL);
        CHECK(L3 == c->L, "%s: value with scale -3: %.17g vs %.17g", c->label, L3, c->L);
        for (int b = 0; b < c->ng; b++) {
            double gmax = max_abs(c->g[b], c->gn[b]), e = 0;
            for (size_t q = 0; q < c->gn[b]; q++) e = fmax(e, fabs(a[b][q] - (r[b][q] - 3.0 * c->g[b][q])));
            e = gmax > 0 ? e / (3 * gmax) : e;
            worst_scale = fmax(worst_scale, e);
            CHECK(e <= 1e-5, "%s: scale -3 on %s err %.3g", c->label, c->gname[b], e);
            free(a[b]);
            free(r[b]);
        }
    }
    printf("  %d cases: twice vs 2x err %.1e, scale -3 from a nonzero start err %.1e (of max abs)\n", ncases,
           worst_twice, worst_scale);
}

static int all_finite(const float *x, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i])) return 0;
    return 1;
}

/* Norms are guarded: a zero student row (and a zero projection) gives
 * finite values and gradients. */
TEST(zero_rows_finite) {
    for (int fn = F_COS; fn <= F_GEO; fn++) {
        lcase c;
        if (fn == F_GEO) geo_case(&c, 4, 5, 6, 0);
        else span_case(&c, fn, 4, 5, 6, 1);
        memset(c.cS + 2 * 5, 0, sizeof(float) * 5);
        run_c(&c);
        int ok = isfinite(c.L) && all_finite(c.g[0], c.gn[0]) && (c.ng < 2 || all_finite(c.g[1], c.gn[1]));
        CHECK(ok, "%s with a zero student row: L %g", fn_names[fn], c.L);
        case_free(&c);
    }
}

/* Full-size calls, timed (printed, not judged: machines differ). */
TEST(timing_full_size) {
    lcase c;
    double t0;
    int S = 300, dS = 1024, dT = 4096;
    memset(&c, 0, sizeof c);
    c.S = S; c.dS = dS; c.dT = dT;
    c.W = rand_buf(S, 1.0f);
    for (int s = 0; s < S; s++) c.W[s] = fabsf(c.W[s]) / S;
    c.cS = rand_buf((size_t)S * dS, 1.0f);
    c.cT = rand_buf((size_t)S * dT, 1.0f);
    c.P = rand_buf((size_t)dT * dS, 0.03f);
    float *dcS = calloc((size_t)S * dS, sizeof(float)), *dP = calloc((size_t)dT * dS, sizeof(float));
    t0 = sra_now();
    double L = loss_span_cos(dcS, dP, c.W, c.cS, c.cT, c.P, S, dS, dT, 1.0f);
    double t_cos = sra_now() - t0;
    t0 = sra_now();
    double Lm = loss_span_mse(dcS, dP, c.W, c.cS, c.cT, c.P, S, dS, dT, 1.0f);
    double t_mse = sra_now() - t0;
    t0 = sra_now();
    double Lg = loss_geo(dcS, c.W, c.cS, c.cT, S, dS, dT, 1.0f);
    double t_geo = sra_now() - t0;
    CHECK(isfinite(L) && isfinite(Lm) && isfinite(Lg) && all_finite(dcS, (size_t)S * dS), "span losses not finite");
    printf("  S=%d dS=%d dT=%d with gradients: span_cos %.1f ms, span_mse %.1f ms, geo %.1f ms\n", S, dS, dT,
           1e3 * t_cos, 1e3 * t_mse, 1e3 * t_geo);
    free(dcS); free(dP);
    case_free(&c);
    double tv[3] = {0};
    for (int i = 0; i < ncases; i++) {
        lcase *v = &cases[i];
        if (v->fn < F_KL || v->V_S < 100000) continue;
        float *dz = calloc(v->V_S, sizeof(float));
        t0 = sra_now();
        for (int r = 0; r < 10; r++) eval(v, dz, NULL, 1.0f, NULL);
        tv[v->fn - F_KL] = (sra_now() - t0) / 10;
        free(dz);
    }
    printf("  V_S=150000, k=64 with gradient, per call: logit_kl %.2f ms, uld %.2f ms, mined %.2f ms\n",
           1e3 * tv[0], 1e3 * tv[1], 1e3 * tv[2]);
}

/* head_kl: dWS gets nothing outside the rows s_ids (exactly 0 there), and
 * asking for one gradient alone gives the same bits as asking for both. */
TEST(head_rows_and_single_grads) {
    int n = 0;
    for (int i = 0; i < ncases; i++) {
        lcase *c = &cases[i];
        if (c->fn != F_HEAD) continue;
        char *used = calloc((size_t)c->V_S, 1);
        for (int k = 0; k < c->K; k++) used[c->s_ids[k]] = 1;
        size_t outside = 0, inside_nonzero = 0;
        for (int j = 0; j < c->V_S; j++)
            for (int d = 0; d < c->dS; d++) {
                float g = c->g[1][(size_t)j * c->dS + d];
                if (!used[j]) outside += g != 0.0f;
                else inside_nonzero += g != 0.0f;
            }
        CHECK(outside == 0, "%s: %zu dWS entries outside the rows s_ids are nonzero", c->label, outside);
        CHECK(inside_nonzero > 0 || c->L == 0.0, "%s: no gradient reached the rows s_ids", c->label);
        float *a = calloc(c->gn[0], sizeof(float)), *b = calloc(c->gn[1], sizeof(float));
        double La = eval(c, a, NULL, 1.0f, NULL), Lb = eval(c, NULL, b, 1.0f, NULL);
        CHECK(La == c->L && Lb == c->L, "%s: values %.17g (dcS only) %.17g (dWS only) vs %.17g", c->label, La, Lb,
              c->L);
        CHECK(!memcmp(a, c->g[0], c->gn[0] * sizeof(float)), "%s: dcS alone differs from dcS with dWS", c->label);
        CHECK(!memcmp(b, c->g[1], c->gn[1] * sizeof(float)), "%s: dWS alone differs from dWS with dcS", c->label);
        free(a); free(b); free(used);
        n++;
    }
    printf("  %d head_kl cases\n", n);
}

/* The paper's head KL at full size, timed (printed, not judged). */
TEST(timing_head_kl) {
    int S = 300, K = 40000, dS = 768, dT = 2048, V_S = 50257;
    float *cS = rand_buf((size_t)S * dS, 1.0f), *cT = rand_buf((size_t)S * dT, 1.0f);
    float *WS = rand_buf((size_t)V_S * dS, 0.1f), *WT = rand_buf((size_t)K * dT, 0.05f);
    int32_t *ids = malloc(sizeof(int32_t) * K);
    for (int k = 0; k < K; k++) ids[k] = (int32_t)(((int64_t)k * 7919) % V_S); // distinct: 7919 is prime, V_S > K
    size_t nf = loss_head_kl_scratch(S, K, dS);
    float *scr = malloc(sizeof(float) * nf), *dcS = calloc((size_t)S * dS, sizeof(float));
    float *dWS = calloc((size_t)V_S * dS, sizeof(float));
    if (!cS || !cT || !WS || !WT || !ids || !scr || !dcS || !dWS) {
        CHECK(0, "out of memory for the full-size head_kl");
    } else {
        double t0 = sra_now();
        double L0 = loss_head_kl(NULL, NULL, NULL, cS, cT, WT, WS, ids, S, K, dS, dT, 2.0f, 0, 1.0f, scr);
        double t_fwd = sra_now() - t0;
        t0 = sra_now();
        double L = loss_head_kl(dcS, dWS, NULL, cS, cT, WT, WS, ids, S, K, dS, dT, 2.0f, 0, 1.0f, scr);
        double t_all = sra_now() - t0;
        CHECK(isfinite(L) && L == L0 && all_finite(dcS, (size_t)S * dS), "head_kl at full size: L %g / %g", L, L0);
        double gf_fwd = 2.0 * S * K * ((double)dT + dS) * 1e-9, gf_all = gf_fwd + 4.0 * S * K * dS * 1e-9;
        printf("  head_kl S=%d K=%d dS=%d dT=%d V_S=%d: value only %.0f ms (%.1f GFLOP/s), with gradients %.0f ms "
               "(%.1f GFLOP/s); L %.6g (%.4f per span), scratch %.0f MB\n",
               S, K, dS, dT, V_S, 1e3 * t_fwd, gf_fwd / t_fwd, 1e3 * t_all, gf_all / t_all, L, L / S,
               nf * 4.0 / 1e6);
    }
    free(cS); free(cT); free(WS); free(WT); free(ids); free(scr); free(dcS); free(dWS);
}

int main(void) {
    build_cases();
    RUN(vs_torch);
    RUN(degenerate_zero);
    RUN(finite_differences);
    RUN(accumulate_and_scale);
    RUN(zero_rows_finite);
    RUN(head_rows_and_single_grads);
    RUN(timing_full_size);
    RUN(timing_head_kl);
    for (int i = 0; i < ncases; i++) case_free(&cases[i]);
    return check_summary();
}
