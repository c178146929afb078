/*
 * bench-layers - speed of the BLAS-backed layers (train/layers.h) against
 * this machine's own cblas_sgemm peak, measured in the same run.
 *
 *   bench-layers [--reps R]
 *
 *   peak       cblas_sgemm on square 1024 matrices (2 * 1024^3 flops);
 *   matmul     matmul_forward at N=512, C=768, OC=3072 with bias (GPT-2
 *              small's MLP up-projection over 512 tokens), 2*N*C*OC flops;
 *   attention  attention_forward at B=1, T=512, NH=NKV=12, HS=64, with and
 *              without the mass; flops count only the causal pairs,
 *              4 * HS * NH * T(T+1)/2 (QK^T and AV, 2 per multiply-add,
 *              as FlashAttention counts causal attention), so the ratio to
 *              peak shows what blocking and softmax cost; also the plain-loop
 *              attention_forward_ref once, for scale;
 *   topk       logsoftmax_topk at V=128256, k=64 over 32 rows vs qsort of
 *              each row (what a full sort would cost).
 * Threads: as OpenBLAS is set up (OPENBLAS_NUM_THREADS). Timings are the
 * best of R repetitions (default 5) after one warm-up. Prints a table, then
 * one line "BENCH_JSON {...}".
 */
#include <cblas.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "layers.h"
#include "util.h"

static void usage(void) {
    fprintf(stderr,
            "usage: bench-layers [--reps R]\n"
            "  --reps R  repetitions per measurement, best kept (default 5)\n"
            "  threads come from OPENBLAS_NUM_THREADS (default: all cores)\n"
            "example: OPENBLAS_NUM_THREADS=1 build/bench-layers --reps 3\n");
}

static void *xmalloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p) {
        fprintf(stderr, "bench-layers: out of memory (%zu bytes)\n", n);
        exit(1);
    }
    return p;
}

static uint64_t rng = 88172645463325252ull;
static float *rand_buf(size_t n) {
    float *p = xmalloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) {
        rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17;
        p[i] = (float)((rng >> 40) / (double)(1ull << 24) * 2.0 - 1.0);
    }
    return p;
}

static const float *cmp_row;
static int cmp_desc(const void *a, const void *b) {
    int i = *(const int *)a, j = *(const int *)b;
    if (cmp_row[i] != cmp_row[j]) return cmp_row[i] > cmp_row[j] ? -1 : 1;
    return i - j;
}

// The measured operations, each a closure over this state.
typedef struct {
    float *a, *b, *c;                 // peak: (S,S) each
    float *x, *w, *bias, *y;          // matmul
    float *q, *k, *v, *o, *m, *scr;   // attention
    float *logits, *lp, *tail;        // topk
    int32_t *ids;
    int *idx;
} bench;

enum { S = 1024, MN = 512, MC = 768, MOC = 3072, T = 512, NH = 12, HS = 64, V = 128256, K = 64, NR = 32 };

static void run_peak(bench *s) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, S, S, S, 1.0f, s->a, S, s->b, S, 0.0f, s->c, S);
}
static void run_matmul(bench *s) { matmul_forward(s->y, s->x, s->w, s->bias, MN, MC, MOC); }
static void run_att(bench *s) { attention_forward(s->o, NULL, s->q, s->k, s->v, NULL, 1, T, T, NH, NH, HS, s->scr); }
static void run_att_mass(bench *s) {
    attention_forward(s->o, s->m, s->q, s->k, s->v, NULL, 1, T, T, NH, NH, HS, s->scr);
}
static void run_att_ref(bench *s) { attention_forward_ref(s->o, s->m, s->q, s->k, s->v, NULL, 1, T, T, NH, NH, HS); }
static void run_topk(bench *s) { logsoftmax_topk(s->logits, NR, V, K, s->ids, s->lp, s->tail); }
static void run_sort(bench *s) {
    for (int r = 0; r < NR; r++) {
        for (int i = 0; i < V; i++) s->idx[i] = i;
        cmp_row = s->logits + (size_t)r * V;
        qsort(s->idx, V, sizeof(int), cmp_desc);
    }
}

static double best_of(void (*f)(bench *), bench *s, int reps) {
    f(s); // warm-up: page faults, OpenBLAS thread start
    double best = INFINITY;
    for (int r = 0; r < reps; r++) {
        double t0 = sra_now();
        f(s);
        double dt = sra_now() - t0;
        if (dt < best) best = dt;
    }
    return best;
}

int main(int argc, char **argv) {
    int reps = 5;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--reps") && i + 1 < argc) reps = atoi(argv[++i]);
        else { usage(); return !strcmp(argv[i], "--help") || !strcmp(argv[i], "-h") ? 0 : 1; }
    }
    if (reps < 1) { usage(); return 1; }

    bench s;
    s.a = rand_buf((size_t)S * S); s.b = rand_buf((size_t)S * S); s.c = xmalloc(sizeof(float) * S * S);
    s.x = rand_buf((size_t)MN * MC); s.w = rand_buf((size_t)MOC * MC); s.bias = rand_buf(MOC);
    s.y = xmalloc(sizeof(float) * MN * MOC);
    s.q = rand_buf((size_t)T * NH * HS); s.k = rand_buf((size_t)T * NH * HS); s.v = rand_buf((size_t)T * NH * HS);
    s.o = xmalloc(sizeof(float) * T * NH * HS); s.m = xmalloc(sizeof(float) * T);
    s.scr = xmalloc(sizeof(float) * attention_scratch_floats(T, T));
    s.logits = rand_buf((size_t)NR * V);
    for (size_t i = 0; i < (size_t)NR * V; i++) s.logits[i] *= 8.0f; // spread like real logits
    s.ids = xmalloc(sizeof(int32_t) * NR * K); s.lp = xmalloc(sizeof(float) * NR * K);
    s.tail = xmalloc(sizeof(float) * NR); s.idx = xmalloc(sizeof(int) * V);

    const double f_peak = 2.0 * S * S * S, f_mm = 2.0 * MN * MC * MOC;
    const double f_att = 4.0 * HS * NH * (double)T * (T + 1) / 2;
    /* the peer at all the threads the layers have: they run OpenBLAS
     * single-threaded under their own threads (train/layers.h) */
    const int nthr = layers_threads();
    openblas_set_num_threads(nthr);
    double t_peak = best_of(run_peak, &s, reps);
    openblas_set_num_threads(1);
    double t_mm = best_of(run_matmul, &s, reps);
    double t_att = best_of(run_att, &s, reps);
    double t_attm = best_of(run_att_mass, &s, reps);
    double t0 = sra_now();
    run_att_ref(&s);
    double t_ref = sra_now() - t0;
    double t_topk = best_of(run_topk, &s, reps);
    double t_sort = best_of(run_sort, &s, reps < 2 ? reps : 2);

    double g_peak = f_peak / t_peak * 1e-9, g_mm = f_mm / t_mm * 1e-9;
    double g_att = f_att / t_att * 1e-9, g_attm = f_att / t_attm * 1e-9, g_ref = f_att / t_ref * 1e-9;
    printf("OpenBLAS %s, %d threads; best of %d\n", openblas_get_config(), nthr, reps);
    printf("%-44s %10s %10s %9s\n", "operation", "ms", "GFLOP/s", "vs peak");
    printf("%-44s %10.3f %10.1f %8.2fx\n", "cblas_sgemm 1024^3 (peak)", t_peak * 1e3, g_peak, 1.0);
    printf("%-44s %10.3f %10.1f %8.2fx\n", "matmul_forward N=512 C=768 OC=3072 +bias", t_mm * 1e3, g_mm, g_mm / g_peak);
    printf("%-44s %10.3f %10.1f %8.2fx\n", "attention_forward T=512 NH=12 HS=64", t_att * 1e3, g_att, g_att / g_peak);
    printf("%-44s %10.3f %10.1f %8.2fx\n", "  ... with mass", t_attm * 1e3, g_attm, g_attm / g_peak);
    printf("%-44s %10.3f %10.1f %8.2fx\n", "  attention_forward_ref (plain loops, once)", t_ref * 1e3, g_ref, g_ref / g_peak);
    printf("logsoftmax_topk V=%d k=%d: %.3f ms/row; qsort of the row %.3f ms/row (%.1fx slower)\n", V, K,
           t_topk / NR * 1e3, t_sort / NR * 1e3, t_sort / t_topk);
    printf("BENCH_JSON {\"bench\":\"layers\",\"threads\":%d,\"reps\":%d,\"peak_gflops\":%.2f,"
           "\"matmul_gflops\":%.2f,\"matmul_vs_peak\":%.3f,\"attention_gflops\":%.2f,\"attention_vs_peak\":%.3f,"
           "\"attention_mass_gflops\":%.2f,\"attention_ref_gflops\":%.3f,\"topk_ms_per_row\":%.4f,"
           "\"sort_ms_per_row\":%.4f}\n",
           nthr, reps, g_peak, g_mm, g_mm / g_peak, g_att, g_att / g_peak, g_attm, g_ref,
           t_topk / NR * 1e3, t_sort / NR * 1e3);

    free(s.a); free(s.b); free(s.c); free(s.x); free(s.w); free(s.bias); free(s.y);
    free(s.q); free(s.k); free(s.v); free(s.o); free(s.m); free(s.scr);
    free(s.logits); free(s.ids); free(s.lp); free(s.tail); free(s.idx);
    return 0;
}
