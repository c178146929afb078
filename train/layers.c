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
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "layers.h"
#include "util.h"

// ----------------------------------------------------------------------------
// matmul

/* ============================================================ threads */

/* All parallelism here is ours: the first call takes OpenBLAS's thread
 * count (OPENBLAS_NUM_THREADS, default all cores) as the layers' own and
 * sets OpenBLAS to one thread, and each op splits its work into
 * contiguous ranges run by that many threads, each calling single-threaded
 * BLAS. Why: OpenBLAS's workers spin for a while after every call, so any
 * thread of ours started between two matmuls (attention heads, top-k rows)
 * competed with them for the cores; measured on the ~100M forward of
 * bench-forward, 2 cores: 0.53 s with both kinds of threads, 0.45 s with
 * OpenBLAS's spinning cut short. Each call starts and joins its threads
 * (tens of microseconds, beside work of milliseconds); small inputs stay on
 * the calling thread. */
static int g_threads;
static int g_grid = 48; /* the row grid of the invariant sgemm (below) */
static pthread_once_t g_threads_once = PTHREAD_ONCE_INIT;
static int calibrate_grid(void);

static void threads_init(void) {
    g_threads = openblas_get_num_threads();
    if (g_threads < 1) g_threads = 1;
    if (g_threads > 64) g_threads = 64;
    openblas_set_num_threads(1);
    g_grid = calibrate_grid();
}

int layers_threads(void) {
    pthread_once(&g_threads_once, threads_init);
    return g_threads;
}

void layers_set_threads(int n) {
    if (n >= 1 && !g_threads) /* not yet fixed (threads_init sets it >= 1) */ openblas_set_num_threads(n);
    (void)layers_threads();
}
typedef void (*range_fn)(void *arg, size_t i0, size_t i1);
/* the same, told which part (0 .. threads-1) it runs: for per-thread scratch */
typedef void (*part_fn)(void *arg, int part, size_t i0, size_t i1);
typedef struct { range_fn fn; part_fn pfn; void *arg; int part; size_t i0, i1; } range_part;

static void *range_thread(void *p) {
    range_part *r = p;
    if (r->pfn) r->pfn(r->arg, r->part, r->i0, r->i1);
    else r->fn(r->arg, r->i0, r->i1);
    return NULL;
}

static void par_parts(size_t n, size_t min_per_thread, size_t align, range_fn fn, part_fn pfn, void *arg);
static void par_range(size_t n, size_t min_per_thread, range_fn fn, void *arg) {
    par_parts(n, min_per_thread, 1, fn, NULL, arg);
}
static void par_range_aligned(size_t n, size_t min_per_thread, size_t align, range_fn fn, void *arg) {
    par_parts(n, min_per_thread, align, fn, NULL, arg);
}

/* [0, n) in contiguous ranges (cut at multiples of align), one per thread,
 * each at least min_per_thread long; part 0 runs on the calling thread. */
static void par_parts(size_t n, size_t min_per_thread, size_t align, range_fn fn, part_fn pfn, void *arg) {
    enum { MAXT = 64 };
    int nt = layers_threads();
    if (min_per_thread < 1) min_per_thread = 1;
    if ((size_t)nt > n / min_per_thread) nt = (int)(n / min_per_thread);
    if (nt < 1) nt = 1;
    range_part parts[MAXT];
    pthread_t th[MAXT];
    int ok[MAXT] = {0};
    for (int t = 0; t < nt; t++) {
        size_t a0 = n * (size_t)t / (size_t)nt / align * align, a1 = t + 1 == nt ? n : n * (size_t)(t + 1) / (size_t)nt / align * align;
        parts[t] = (range_part){fn, pfn, arg, t, a0, a1};
    }
    if (nt == 1) { range_thread(&parts[0]); return; }
    for (int t = 1; t < nt; t++) ok[t] = pthread_create(&th[t], NULL, range_thread, &parts[t]) == 0;
    for (int t = 1; t < nt; t++)
        if (!ok[t]) range_thread(&parts[t]); /* could not start: run it here */
    range_thread(&parts[0]);
    for (int t = 1; t < nt; t++)
        if (ok[t]) pthread_join(th[t], NULL);
}

/* ===================================================== invariant sgemm
 *
 * sra-extract's payload must not depend on --batch or --threads, and a
 * training step must not depend on the thread count; so a row's result
 * must not depend on how rows are grouped into BLAS calls. Debian's
 * OpenBLAS (0.3.21) does not promise that, and measurements say when it
 * holds (tools: single-threaded cblas_sgemm, C = A B^T, every shift of
 * rows and columns between calls):
 *  - Haswell/Zen kernels (AVX2 + FMA): a row's bits depend on its place
 *    in the kernel's 12-row tile (calls shifted by 12k rows agree, by any
 *    other amount they differ), rows of a partial last tile differ from
 *    full-tile rows, and a column's bits depend on the call's column range
 *    (any shift differs).
 *  - Cooperlake/SkylakeX (AVX-512): calls with M*N below ~1216 (and, for
 *    NN/TN, M*N*K <= 1e6) take a small-matrix kernel that rounds otherwise;
 *    above that, every row and column agrees.
 *  - Sandybridge (AVX, no FMA): everything agrees.
 * Hence one rule, for every matmul here: rows are cut into calls only at
 * multiples of the grid G, counted from the start of the rows the caller
 * hands over (a sequence, for the teacher); the rows after the last
 * multiple, or a call that would be tiny, go through a zero-padded copy of
 * a multiple of G rows with M*N >= SGEMM_MIN_MN; and columns are cut only
 * on a grid that depends on the layer's width alone (matmul_forward). Then
 * a row's bits depend only on its data and its position modulo G. G is
 * measured once (calibrate_grid): the smallest of 4, 6, 8, 12, 16, 24 by
 * which shifting a call's rows changes no bit (12 on Zen, 4 where every
 * shift agrees), else 48, a multiple of every tile height. A coarser grid
 * costs: threads split rows at multiples of G and a leftover is padded to
 * G rows (with 48 instead of 12, the 110M forward of bench-forward lost
 * 16 points of sgemm peak on 2 cores). */
#define SGEMM_MIN_MN 2048

/* The smallest row shift that keeps every bit (see above), on a fixed
 * pseudo-random problem large enough for OpenBLAS's ordinary kernels. */
static int calibrate_grid(void) {
    enum { M = 96, N = 520, K = 300 };
    float *A = malloc(sizeof(float) * ((size_t)M * K + (size_t)N * K + 2 * (size_t)M * N));
    if (!A) return 48;
    float *B = A + (size_t)M * K, *C0 = B + (size_t)N * K, *C1 = C0 + (size_t)M * N;
    uint64_t st = 0x5EED5EEDull;
    for (size_t i = 0; i < (size_t)M * K + (size_t)N * K; i++) A[i] = (float)(sra_splitmix64(&st) >> 40) / 16777216.0f - 0.5f;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, 1.0f, A, K, B, K, 0.0f, C0, N);
    static const int cand[] = {4, 6, 8, 12, 16, 24};
    int grid = 48;
    for (size_t c = 0; c < sizeof cand / sizeof *cand && grid == 48; c++) {
        int g = cand[c], ok = 1;
        for (int sh = g; sh <= 48 && ok; sh += g) {
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M - sh, N, K, 1.0f, A + (size_t)sh * K, K, B, K, 0.0f,
                        C1, N);
            ok = !memcmp(C1, C0 + (size_t)sh * N, sizeof(float) * (size_t)(M - sh) * N);
        }
        if (ok) grid = g;
    }
    free(A);
    return grid;
}

/* The grid, measured on first use. */
static int sgemm_grid_rows(void) {
    (void)layers_threads();
    return g_grid;
}

static int round_up(int x, int m) { return (x + m - 1) / m * m; }

/* Row-major C (M,N) = alpha op(A) (M,K) @ op(B) (K,N) + beta C, following
 * the rule above. ta: A is (M,K) (NoTrans) or (K,M) (Trans: C's rows are
 * A's columns). */
static void sgemm_grid(CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int M, int N, int K, float alpha, const float *A,
                       int lda, const float *B, int ldb, float beta, float *C, int ldc) {
    if (M <= 0 || N <= 0) return;
    const int G = sgemm_grid_rows();
    int Md = M / G * G;
    if ((long)Md * N < SGEMM_MIN_MN) Md = 0;
    if (Md > 0) cblas_sgemm(CblasRowMajor, ta, tb, Md, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    if (Md == M) return;
    /* rows [Md, M) in a padded copy: same beta, C's rows copied in, so that
     * accumulation rounds as in a direct call */
    int cnt = M - Md, Mp = round_up(cnt > (SGEMM_MIN_MN + N - 1) / N ? cnt : (SGEMM_MIN_MN + N - 1) / N, G);
    float *Ap = calloc((size_t)Mp * K + (size_t)Mp * N, sizeof(float));
    if (!Ap) { /* out of memory: still the right numbers, just not invariant */
        const float *At = ta == CblasNoTrans ? A + (size_t)Md * lda : A + Md;
        cblas_sgemm(CblasRowMajor, ta, tb, cnt, N, K, alpha, At, lda, B, ldb, beta, C + (size_t)Md * ldc, ldc);
        return;
    }
    float *Cp = Ap + (size_t)Mp * K;
    int ldap;
    if (ta == CblasNoTrans) {
        ldap = K;
        for (int r = 0; r < cnt; r++) memcpy(Ap + (size_t)r * K, A + (size_t)(Md + r) * lda, (size_t)K * sizeof(float));
    } else {
        ldap = Mp;
        for (int k = 0; k < K; k++) memcpy(Ap + (size_t)k * Mp, A + (size_t)k * lda + Md, (size_t)cnt * sizeof(float));
    }
    if (beta != 0.0f)
        for (int r = 0; r < cnt; r++) memcpy(Cp + (size_t)r * N, C + (size_t)(Md + r) * ldc, (size_t)N * sizeof(float));
    cblas_sgemm(CblasRowMajor, ta, tb, Mp, N, K, alpha, Ap, ldap, B, ldb, beta, Cp, N);
    for (int r = 0; r < cnt; r++) memcpy(C + (size_t)(Md + r) * ldc, Cp + (size_t)r * N, (size_t)N * sizeof(float));
    free(Ap);
}

/* C (M,N) = alpha * A (M,K) @ B (N,K)^T */
static void sgemm_nt(int M, int N, int K, float alpha, const float *A, int lda, const float *B, int ldb, float *C,
                     int ldc) {
    sgemm_grid(CblasNoTrans, CblasTrans, M, N, K, alpha, A, lda, B, ldb, 0.0f, C, ldc);
}

typedef struct { float *out; const float *inp, *weight, *bias; int N, C, OC, cb; } matmul_args;

static void add_bias(float *out, const float *bias, int n_rows, int ldo, int n_cols) {
    for (int r = 0; r < n_rows; r++)
        for (int j = 0; j < n_cols; j++) out[(size_t)r * ldo + j] += bias[j];
}

/* Input rows [r0, r1) (r0 on the grid): out[r0:r1, :] from all of weight. */
static void matmul_rows(void *a, size_t r0, size_t r1) {
    const matmul_args *m = a;
    const int n = (int)(r1 - r0), C = m->C, OC = m->OC;
    if (n <= 0) return;
    float *out = m->out + r0 * (size_t)OC;
    sgemm_nt(n, OC, C, 1.0f, m->inp + r0 * (size_t)C, C, m->weight, C, out, OC);
    if (m->bias) add_bias(out, m->bias, n, OC, OC);
}

/* Column blocks [b0, b1) of m->cb columns (the last one shorter): every
 * row, weight rows b*cb.. of each block. */
static void matmul_colblocks(void *a, size_t b0, size_t b1) {
    const matmul_args *m = a;
    for (size_t b = b0; b < b1; b++) {
        int o0 = (int)b * m->cb, n = m->OC - o0 < m->cb ? m->OC - o0 : m->cb;
        float *out = m->out + o0;
        sgemm_nt(m->N, n, m->C, 1.0f, m->inp, m->C, m->weight + (size_t)o0 * m->C, m->C, out, m->OC);
        if (m->bias) add_bias(out, m->bias + o0, m->N, m->OC, n);
    }
}

/* Wide outputs are cut into column blocks of this many (a grid fixed by
 * OC alone), threads taking whole blocks; narrower ones by row ranges. */
#define MATMUL_COL_BLOCK 1024

void matmul_forward(float *out, const float *inp, const float *weight, const float *bias, int N, int C, int OC) {
    // inp (N,C), weight (OC,C), bias (OC) -> out (N,OC)
    // weight is stored as HF/PyTorch Linear keeps it (OC,C), hence the Trans.
    // Row i's bits depend on its data and i mod 48 only (the rule above).
    if (N <= 0 || OC <= 0) return;
    if (C <= 0) {
        for (int n = 0; n < N; n++)
            for (int o = 0; o < OC; o++) out[(size_t)n * OC + o] = bias ? bias[o] : 0.0f;
        return;
    }
    matmul_args a = {out, inp, weight, bias, N, C, OC, MATMUL_COL_BLOCK};
    if (OC >= 2 * MATMUL_COL_BLOCK) {
        /* e.g. an LM head: each thread streams its own blocks of the weight */
        size_t nb = ((size_t)OC + MATMUL_COL_BLOCK - 1) / MATMUL_COL_BLOCK;
        par_range(nb, 1, matmul_colblocks, &a);
    } else {
        /* a thread is worth ~1 MFLOP of work, in whole grid blocks */
        size_t flops_per_row = 2 * (size_t)C * (size_t)OC, min_rows = (1u << 20) / (flops_per_row + 1) + 1;
        min_rows = (size_t)round_up((int)(min_rows < 4096 ? min_rows : 4096), sgemm_grid_rows());
        par_range_aligned((size_t)N, min_rows, (size_t)sgemm_grid_rows(), matmul_rows, &a);
    }
}

/* ------------------------------------------ batches of whole sequences
 *
 * The teacher's matmuls: B sequences of T rows, each computed by the same
 * calls as matmul_forward on that sequence alone (so its bits do not
 * depend on B), with a weight that may be stored as F16/BF16 and fetched
 * as float32 on the way. Wide outputs: each thread fetches one column
 * block of the weight at a time into its own slice of scratch and runs
 * every sequence through it while it is in cache; a float32 weight is
 * read in place in the same order. Narrow ones: the whole weight is
 * fetched by all threads, then each sequence is a matmul_forward. Why:
 * converting a layer's BF16 weights in one go, single-threaded, before
 * its matmuls cost the ~110M forward of bench-forward 0.31 s of its
 * 1.42 s on 2 cores (63% of sgemm peak; F32 85%); the converted copy
 * (28 MB a layer) was also out of cache by the time a matmul read it. */

typedef struct {
    float *out; const float *inp, *bias; const matmul_weight *w; float *scratch; int B, T, C, OC, cb;
} mseq_args;

static void fetch_rows(void *a, size_t r0, size_t r1) {
    const mseq_args *m = a;
    m->w->fetch(m->w->ctx, r0, r1 - r0, m->scratch + r0 * (size_t)m->C);
}

/* Column blocks [b0, b1) of the thread `part`, for every sequence: the
 * calls of matmul_colblocks, hence its bits. */
static void seq_colblocks(void *a, int part, size_t b0, size_t b1) {
    const mseq_args *m = a;
    const size_t C = (size_t)m->C, OC = (size_t)m->OC;
    for (size_t b = b0; b < b1; b++) {
        int o0 = (int)b * m->cb, n = m->OC - o0 < m->cb ? m->OC - o0 : m->cb;
        const float *wb = m->w->f32 ? m->w->f32 + (size_t)o0 * C : NULL;
        if (!wb) { /* into this thread's slice of scratch */
            float *conv = m->scratch + (size_t)part * m->cb * C;
            m->w->fetch(m->w->ctx, (size_t)o0, (size_t)n, conv);
            wb = conv;
        }
        for (int s = 0; s < m->B; s++) {
            float *out = m->out + (size_t)s * m->T * OC + o0;
            sgemm_nt(m->T, n, m->C, 1.0f, m->inp + (size_t)s * m->T * C, m->C, wb, m->C, out, m->OC);
            if (m->bias) add_bias(out, m->bias + o0, m->T, m->OC, n);
        }
    }
}

size_t matmul_seq_scratch_floats(int C, int OC) {
    if (C <= 0 || OC <= 0) return 0;
    if (OC < 2 * MATMUL_COL_BLOCK) return (size_t)OC * (size_t)C;
    size_t nb = ((size_t)OC + MATMUL_COL_BLOCK - 1) / MATMUL_COL_BLOCK, nt = (size_t)layers_threads();
    return (nt < nb ? nt : nb) * MATMUL_COL_BLOCK * (size_t)C;
}

void matmul_forward_seq(float *out, const float *inp, const matmul_weight *w, const float *bias, int B, int T, int C,
                        int OC, float *scratch) {
    // inp (B,T,C), weight (OC,C) as w gives it, bias (OC) -> out (B,T,OC)
    if (B <= 0 || T <= 0 || OC <= 0) return;
    mseq_args a = {out, inp, bias, w, scratch, B, T, C, OC, MATMUL_COL_BLOCK};
    if (C > 0 && OC >= 2 * MATMUL_COL_BLOCK) {
        size_t nb = ((size_t)OC + MATMUL_COL_BLOCK - 1) / MATMUL_COL_BLOCK;
        par_parts(nb, 1, 1, NULL, seq_colblocks, &a);
        return;
    }
    const float *wt = w->f32;
    if (!wt && C > 0) { /* ~64K floats a thread at least: a fetch is a copy */
        par_range((size_t)OC, (65536 + (size_t)C - 1) / (size_t)C, fetch_rows, &a);
        wt = scratch;
    }
    for (int s = 0; s < B; s++)
        matmul_forward(out + (size_t)s * T * OC, inp + (size_t)s * T * C, wt, bias, T, C, OC);
}

/* OpenBLAS's small-matrix limit on M*N*K, see matmul_backward */
#define SGEMM_SMALL_MNK 1000000u

typedef struct { float *dinp, *dweight, *dbias; const float *dout, *inp, *weight; int N, C, OC; } matmul_back_args;

/* Rows [r0, r1) of dinp: dinp[r0:r1] (n,C) += dout[r0:r1] (n,OC) @ weight (OC,C). */
static void matmul_back_rows(void *a, size_t r0, size_t r1) {
    const matmul_back_args *m = a;
    const int n = (int)(r1 - r0), C = m->C, OC = m->OC;
    if (n <= 0) return;
    sgemm_grid(CblasNoTrans, CblasNoTrans, n, C, OC, 1.0f, m->dout + r0 * (size_t)OC, OC, m->weight, C, 1.0f,
               m->dinp + r0 * (size_t)C, C);
}

/* Output channels [o0, o1): dweight rows o0..o1 (n,C) += dout[:, o0:o1]^T
 * (n,N) @ inp (N,C), and dbias[o0:o1]. */
static void matmul_back_cols(void *a, size_t o0, size_t o1) {
    const matmul_back_args *m = a;
    const int n = (int)(o1 - o0), N = m->N, C = m->C, OC = m->OC;
    if (n <= 0) return;
    if (m->dweight && C > 0)
        sgemm_grid(CblasTrans, CblasNoTrans, n, C, N, 1.0f, m->dout + o0, OC, m->inp, C, 1.0f,
                   m->dweight + o0 * (size_t)C, C);
    if (m->dbias) {
        // column sums in double, 64 columns at a time so that the rows of
        // dout are read contiguously
        enum { CB = 64 };
        double acc[CB];
        for (size_t c0 = o0; c0 < o1; c0 += CB) {
            const int w = o1 - c0 < CB ? (int)(o1 - c0) : CB;
            for (int j = 0; j < w; j++) acc[j] = 0.0;
            for (int r = 0; r < N; r++) {
                const float *d = m->dout + (size_t)r * OC + c0;
                for (int j = 0; j < w; j++) acc[j] += d[j];
            }
            for (int j = 0; j < w; j++) m->dbias[c0 + j] += (float)acc[j];
        }
    }
}

void matmul_backward(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                     const float *weight, int N, int C, int OC) {
    // dout (N,OC), inp (N,C), weight (OC,C) -> dinp (N,C), dweight (OC,C), dbias (OC), all +=
    // Two passes, each split so that every thread owns distinct output rows
    // (no races, and every element is one whole reduction whatever the
    // thread count): dinp by input rows, dweight and dbias by output
    // channels, both cut on the 48-row grid (sgemm_grid). A thread gets
    // more than SGEMM_SMALL_MNK multiply-adds (~2 MFLOP, beside
    // matmul_forward's ~1): with Cooperlake kernels, small calls round
    // differently (measured for dinp's NoTrans x NoTrans: a row's bits
    // change in calls while M*N*K <= 1e6, the small-matrix permit's 100^3).
    if (N <= 0 || OC <= 0) return;
    matmul_back_args a = {dinp, dweight, dbias, dout, inp, weight, N, C, OC};
    if (dinp && C > 0) {
        size_t mnk_per_row = (size_t)C * (size_t)OC, min_rows = SGEMM_SMALL_MNK / mnk_per_row + 1 + sgemm_grid_rows();
        par_range_aligned((size_t)N, min_rows, (size_t)sgemm_grid_rows(), matmul_back_rows, &a);
    }
    if (dweight || dbias) {
        size_t mnk_per_col = (size_t)N * ((size_t)C + 1), min_cols = SGEMM_SMALL_MNK / mnk_per_col + 1 + sgemm_grid_rows();
        par_range_aligned((size_t)OC, min_cols, (size_t)sgemm_grid_rows(), matmul_back_cols, &a);
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

// 1 / sqrt(mean(x^2) + eps) of one row x (C), the mean in double; forward
// and backward share it so that both see the same rstd.
static double rmsnorm_rstd(const float *x, int C, float eps) {
    double s4[4] = {0.0, 0.0, 0.0, 0.0}; // independent lanes: one add chain would stall
    int c = 0;
    for (; c + 4 <= C; c += 4)
        for (int l = 0; l < 4; l++) s4[l] += (double)x[c + l] * x[c + l];
    for (; c < C; c++) s4[0] += (double)x[c] * x[c];
    double ss = (s4[0] + s4[1]) + (s4[2] + s4[3]);
    return 1.0 / sqrt(ss / (C > 0 ? C : 1) + (double)eps);
}

void rmsnorm_forward(float *out, const float *inp, const float *weight, int N, int C, float eps) {
    // inp (N,C), weight (C) -> out (N,C)
    // HF LlamaRMSNorm: weight * (x * rsqrt(mean(x^2) + eps)), in that order.
    for (int n = 0; n < N; n++) {
        const float *x = inp + (size_t)n * C;
        float *o = out + (size_t)n * C;
        float r = (float)rmsnorm_rstd(x, C, eps);
        for (int c = 0; c < C; c++) o[c] = weight[c] * (x[c] * r);
    }
}

typedef struct { float *dinp, *dweight; const float *dout, *inp, *weight; double *rstd; int N, C; float eps; } rmsnorm_back_args;

/* Rows [r0, r1): rstd[n] (kept for the dweight pass when there is room for
 * it) and dinp. With g = weight * dout and r = rstd, y_c = w_c x_c r and
 * dr/dx_c = -x_c r^3 / C, so
 *   dx_c = r g_c - x_c r^3 / C * sum_j g_j x_j. */
static void rmsnorm_back_rows(void *a, size_t r0, size_t r1) {
    const rmsnorm_back_args *m = a;
    const int C = m->C;
    for (size_t n = r0; n < r1; n++) {
        const float *x = m->inp + n * C, *dy = m->dout + n * C;
        const double r = rmsnorm_rstd(x, C, m->eps);
        if (m->rstd) m->rstd[n] = r;
        if (!m->dinp) continue;
        double gx = 0.0;
        for (int c = 0; c < C; c++) gx += (double)m->weight[c] * dy[c] * x[c];
        const double k = r * r * r * gx / C;
        float *dx = m->dinp + n * C;
        for (int c = 0; c < C; c++) dx[c] += (float)(r * m->weight[c] * dy[c] - k * x[c]);
    }
}

/* Channels [c0, c1) of dweight: sum over rows of dout * x * rstd, in double,
 * 64 channels at a time so that rows are read contiguously. */
static void rmsnorm_back_cols(void *a, size_t c0, size_t c1) {
    const rmsnorm_back_args *m = a;
    const int C = m->C;
    enum { CB = 64 };
    double acc[CB];
    for (size_t b0 = c0; b0 < c1; b0 += CB) {
        const int w = c1 - b0 < CB ? (int)(c1 - b0) : CB;
        for (int j = 0; j < w; j++) acc[j] = 0.0;
        for (int n = 0; n < m->N; n++) {
            const float *x = m->inp + (size_t)n * C + b0, *dy = m->dout + (size_t)n * C + b0;
            const double r = m->rstd ? m->rstd[n] : rmsnorm_rstd(m->inp + (size_t)n * C, C, m->eps);
            for (int j = 0; j < w; j++) acc[j] += (double)dy[j] * x[j] * r;
        }
        for (int j = 0; j < w; j++) m->dweight[b0 + j] += (float)acc[j];
    }
}

void rmsnorm_backward(float *dinp, float *dweight, const float *dout, const float *inp, const float *weight, int N,
                      int C, float eps) {
    // dout, inp (N,C), weight (C) -> dinp (N,C) +=, dweight (C) +=
    // dinp is split by rows; dweight, a sum over rows, by channels, so that
    // no two threads add into one float and the sums do not depend on the
    // thread count. The rows pass keeps rstd (N) for the channels pass; if
    // that allocation fails, the channels pass recomputes it (slower, same
    // numbers).
    if (N <= 0 || C <= 0) return;
    rmsnorm_back_args a = {dinp, dweight, dout, inp, weight, NULL, N, C, eps};
    if (dweight) a.rstd = malloc((size_t)N * sizeof(double));
    size_t min_rows = (1u << 18) / (6 * (size_t)C + 1) + 1; // ~6 flops an element, ~256k a thread
    if (dinp || a.rstd) par_range((size_t)N, min_rows, rmsnorm_back_rows, &a);
    if (dweight) {
        size_t min_cols = (1u << 18) / (3 * (size_t)N + 1) + 1;
        par_range((size_t)C, min_cols, rmsnorm_back_cols, &a);
    }
    free(a.rstd);
}

// ----------------------------------------------------------------------------
// embedding

void embedding_forward(float *out, const int32_t *ids, const float *wte, int N, int C) {
    // ids (N), wte (V,C) -> out (N,C)
    for (int n = 0; n < N; n++) memcpy(out + (size_t)n * C, wte + (size_t)ids[n] * C, (size_t)C * sizeof(float));
}

void embedding_backward(float *dwte, const float *dout, const int32_t *ids, int N, int C) {
    // dout (N,C), ids (N) -> dwte (V,C) +=
    // One thread, rows in order: a repeated id adds into the same row, and
    // this is N*C adds beside the matmuls' N*C*OC multiply-adds.
    for (int n = 0; n < N; n++) {
        float *d = dwte + (size_t)ids[n] * C;
        const float *g = dout + (size_t)n * C;
        for (int c = 0; c < C; c++) d[c] += g[c];
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

void rope_backward(float *dx, const float *cos_, const float *sin_, int N, int NH, int HS) {
    // dx (N,NH,HS) in place, cos, sin (N,HS/2)
    // The forward maps each pair by the rotation [c -s; s c]; its transpose
    // [c s; -s c] carries the gradient back.
    int h = HS / 2;
    for (int n = 0; n < N; n++) {
        const float *c = cos_ + (size_t)n * h, *s = sin_ + (size_t)n * h;
        for (int hd = 0; hd < NH; hd++) {
            float *g = dx + ((size_t)n * NH + hd) * HS;
            for (int j = 0; j < h; j++) {
                float g1 = g[j], g2 = g[j + h];
                g[j] = g1 * c[j] + g2 * s[j];
                g[j + h] = g2 * c[j] - g1 * s[j];
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
/* most threads attention_forward shares its (b, h) items among */
#define ATT_MAX_THREADS 64

size_t attention_scratch_floats(int Tq, int Tk) {
    if (Tq < 1) Tq = 1;
    if (Tk < 1) Tk = 1;
    size_t qb = (size_t)(Tq < ATT_QB ? Tq : ATT_QB);
    // scores (qb,Tk), 1/row sums (qb), column sums (Tk), then Tk doubles for the
    // mass (+1 float to align them to 8 bytes)
    return qb * (size_t)Tk + qb + (size_t)Tk + 2 * (size_t)Tk + 2;
}

// exp of 4 floats at once with GCC/Clang vector extensions (plain SSE2 on
// any x86-64, NEON on arm64), for the loops where exp dominates (softmax
// rows, top-k sums); expf itself is a library call compilers cannot
// vectorize. Cody-Waite reduction x = n ln2 + r, degree-6 polynomial for
// e^r on [-ln2/2, ln2/2] (Cephes expf's coefficients), 2^n through the
// exponent bits: within 2 ulp of expf. x below -87.33 (e^x under the
// smallest normal float, including -inf) gives exactly 0; x above 88.72
// saturates, which cannot happen here (x = score - row max <= 0).
typedef float v4f __attribute__((vector_size(16)));
typedef int32_t v4i __attribute__((vector_size(16)));
typedef float v8f __attribute__((vector_size(32)));
typedef int32_t v8i __attribute__((vector_size(32)));
/* GCC warns that a 32-byte vector passed by value changes the ABI when AVX
 * is off; the only such function, exp8, is always inlined, so no call in
 * this file passes one. */
#pragma GCC diagnostic ignored "-Wpsabi"

/* The exp-bound loops (softmax rows, log-softmax sums, SwiGLU) are built
 * twice on x86-64, for AVX2 and for the baseline, and the loader picks one
 * per CPU (GCC/Clang target_clones). Both run the same lane-wise
 * operations without FMA contraction (-std=c11 keeps it off), so results
 * are bit-identical on every x86-64 CPU; only the speed differs. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && defined(__linux__)
#define SRA_AVX2_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define SRA_AVX2_CLONES
#endif

/* One body for every width (the same operations lane by lane, so a lane's
 * bits do not depend on the width that computed it). Scalars broadcast. */
#define SRA_DEFINE_EXPV(name, vf, vi)                                        \
    static inline __attribute__((always_inline)) vf name(vf x) {            \
        const vf zero = {0}, lo = zero - 87.33654f, hi = zero + 88.72283f;  \
        vi under = x < lo; /* all-ones where true */                       \
        vf xc = (vf)((under & (vi)lo) | (~under & (vi)x));                  \
        vi over = xc > hi;                                                  \
        xc = (vf)((over & (vi)hi) | (~over & (vi)xc));                      \
        vf n = (xc * 1.44269504088896341f + 12582912.0f) - 12582912.0f;    \
        vf r = xc - n * 0.693359375f;                                       \
        r = r - n * -2.12194440e-4f;                                        \
        vf p = r * 1.9875691500e-4f + 1.3981999507e-3f;                     \
        p = p * r + 8.3334519073e-3f;                                       \
        p = p * r + 4.1665795894e-2f;                                       \
        p = p * r + 1.6666665459e-1f;                                       \
        p = p * r + 5.0000001201e-1f;                                       \
        p = p * r * r + r + 1.0f;                                           \
        vf scale = (vf)((__builtin_convertvector(n, vi) + 127) << 23);      \
        return (vf)((vi)(p * scale) & ~under);                              \
    }
SRA_DEFINE_EXPV(exp4, v4f, v4i)
/* 8 lanes: two SSE halves by default, one AVX register in the AVX2 clones */
SRA_DEFINE_EXPV(exp8, v8f, v8i)

// max of x (n), -inf if n == 0; 8 independent lanes (GCC makes them one
// maxps): a single running max is a serial chain, and it showed in profiles
// of attention and of top-k over 128k logits. NaNs are skipped.
static float max_f32(const float *x, int n) {
    v4f m[4];
    const v4f ninf = {-INFINITY, -INFINITY, -INFINITY, -INFINITY};
    for (int l = 0; l < 4; l++) m[l] = ninf;
    int j = 0;
    for (; j + 16 <= n; j += 16)
        for (int l = 0; l < 4; l++) {
            v4f a;
            memcpy(&a, x + j + 4 * l, 16);
            v4i gt = a > m[l];
            m[l] = (v4f)((gt & (v4i)a) | (~gt & (v4i)m[l]));
        }
    float mx = -INFINITY;
    for (int l = 0; l < 4; l++)
        for (int e = 0; e < 4; e++) mx = m[l][e] > mx ? m[l][e] : mx;
    for (; j < n; j++) mx = x[j] > mx ? x[j] : mx;
    return mx;
}

// p (nk): the scores of keys 0..n-1 (a query at position n-1) -> their
// probabilities, 0 at padding keys and at keys n..nk-1 (the future of this
// row inside its block). Max subtracted in float, sum in double. Padding
// keys become -inf first so that the loops below are branch-free; the sum
// runs in 8 lanes for the same reason as max_f32.
SRA_AVX2_CLONES static float softmax_causal(float *p, int n, int nk, const uint8_t *valid) {
    if (valid)
        for (int j = 0; j < n; j++)
            if (!valid[j]) p[j] = -INFINITY;
    const float mx = max_f32(p, n);
    double sum = 0.0;
    int j = 0;
    for (; j + 16 <= n; j += 16) { // exps 8 at a time; partial sums of 4 vectors in float, then double
        v8f e0, e1;
        memcpy(&e0, p + j, 32); memcpy(&e1, p + j + 8, 32);
        e0 = exp8(e0 - mx); e1 = exp8(e1 - mx); // exp(-inf) = 0 at padding
        memcpy(p + j, &e0, 32); memcpy(p + j + 8, &e1, 32);
        v4f a, b, c, d;
        memcpy(&a, p + j, 16); memcpy(&b, p + j + 4, 16); memcpy(&c, p + j + 8, 16); memcpy(&d, p + j + 12, 16);
        v4f t = (a + b) + (c + d);
        sum += (double)((t[0] + t[1]) + (t[2] + t[3]));
    }
    for (; j < n; j++) {
        p[j] = expf(p[j] - mx);
        sum += p[j];
    }
    for (j = n; j < nk; j++) p[j] = 0.0f;
    return (float)(1.0 / sum); // sum >= 1: the row's own key is valid
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

/* The work of attention_forward, split into (b, h) items so that threads
 * can share it. */
typedef struct {
    float *out;
    const float *q, *k, *v;
    const uint8_t *valid;
    int B, Tq, Tk, NH, NKV, HS, want_mass;
} att_job;

/* Items [i0, i1) of b * NH + h. S is one block's scratch (attention_scratch
 * layout without the mass part); macc (B,NH,Tk) doubles collects, when the
 * mass is wanted, each head's sum over queries of A[q,i]: one slice per
 * item, so the sums over heads can be taken afterwards in one fixed order
 * whatever threads ran which items (the mass does not depend on the
 * thread count).
 * Query rows after a sequence's last real token are not computed (zeros):
 * so a sequence's blocks, and with them every BLAS call and its rounding,
 * are the same whether it runs alone or padded inside a batch. */
static void attention_items(const att_job *J, int i0, int i1, float *S, double *macc) {
    const int Tq = J->Tq, Tk = J->Tk, NH = J->NH, HS = J->HS;
    const int off = Tk - Tq, rep = NH / J->NKV;
    const int qs = NH * HS, ks = J->NKV * HS; // row strides of q/out and k/v
    const int qb = Tq < ATT_QB ? Tq : ATT_QB;
    const float scale = (float)(1.0 / sqrt((double)HS));
    float *inv = S + (size_t)qb * Tk;      // (qb) 1 / row sum: S holds exp(s - max) unscaled
    float *colsum = inv + qb;              // (Tk) one block's sum over queries of A[q,i]
    for (int it = i0; it < i1; it++) {
        const int b = it / NH, h = it % NH;
        const uint8_t *vb = J->valid ? J->valid + (size_t)b * Tk : NULL;
        const float *qh = J->q + (size_t)b * Tq * qs + (size_t)h * HS;
        const float *kg = J->k + (size_t)b * Tk * ks + (size_t)(h / rep) * HS;
        const float *vg = J->v + (size_t)b * Tk * ks + (size_t)(h / rep) * HS;
        float *oh = J->out + (size_t)b * Tq * qs + (size_t)h * HS;
        int Tv = Tq; // query rows up to the last real one
        if (vb) {
            while (Tv > 0 && !vb[off + Tv - 1]) Tv--;
            for (int t = Tv; t < Tq; t++) memset(oh + (size_t)t * qs, 0, (size_t)HS * sizeof(float));
        }
        double *mb = J->want_mass ? macc + ((size_t)b * NH + h) * Tk : NULL;
        if (mb) memset(mb, 0, (size_t)Tk * sizeof(double));
        for (int r0 = 0; r0 < Tv; r0 += qb) {
            const int nr = Tv - r0 < qb ? Tv - r0 : qb;
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
                    inv[r] = 0.0f;
                    continue;
                }
                inv[r] = softmax_causal(p, pos + 1, nk, vb);
            }
            /* rows are normalized where they are used, not in S: one pass
             * over the block fewer */
            if (mb) { // colsum (nk) = A^T 1 = S^T inv (padding rows are 0), then into double
                cblas_sgemv(CblasRowMajor, CblasTrans, nr, nk, 1.0f, S, nk, inv, 1, 0.0f, colsum, 1);
                for (int j = 0; j < nk; j++) mb[j] += colsum[j];
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
                    for (int d = 0; d < HS; d++) o[d] *= inv[r];
                }
            } else {
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, nr, HS, nk, 1.0f, S, nk, vg, ks, 0.0f,
                            orow, qs);
                for (int r = 0; r < nr; r++)
                    for (int d = 0; d < HS; d++) orow[(size_t)r * qs + d] *= inv[r];
            }
        }
    }
}

typedef struct {
    const att_job *J;
    int i0, i1;
    float *S;
    double *macc;
} att_part;

static void *attention_thread(void *arg) {
    att_part *p = arg;
    attention_items(p->J, p->i0, p->i1, p->S, p->macc);
    return NULL;
}

void attention_forward(float *out, float *mass, const float *q, const float *k, const float *v,
                       const uint8_t *valid, int B, int Tq, int Tk, int NH, int NKV, int HS, float *scratch) {
    // q (B,Tq,NH,HS), k, v (B,Tk,NKV,HS), valid (B,Tk) -> out (B,Tq,NH,HS), mass (B,Tk)
    // query row t sits at position off + t and sees keys 0..off + t
    if (B <= 0 || Tq <= 0 || Tk < Tq || NKV <= 0 || NH % NKV) return; // outside the contract
    if (Tq != Tk) mass = NULL;
    const att_job J = {out, q, k, v, valid, B, Tq, Tk, NH, NKV, HS, 0};
    const int items = B * NH, qb = Tq < ATT_QB ? Tq : ATT_QB;
    /* The per-head matmuls are small (qb x Tk x HS), so the (b, h) items
     * are shared out among the layers' threads, each running
     * single-threaded BLAS on its own scratch (one allocation per call). */
    int nt = layers_threads();
    if (nt > ATT_MAX_THREADS) nt = ATT_MAX_THREADS;
    if (nt > items) nt = items;
    if (Tq < ATT_SMALL) nt = 1;
    size_t sfl = (size_t)qb * Tk + qb + Tk;               // floats of one thread's block scratch
    /* per-head mass sums (B,NH,Tk) doubles, summed over heads in order at
     * the end; with one thread and B = 1 the caller's scratch has room for
     * one head's worth only, so the buffer is allocated here */
    double *hsum = NULL;
    if (mass && !(hsum = malloc((size_t)B * NH * Tk * sizeof(double)))) {
        // out of memory: the contract has no error path, so the mass says it loudly
        for (size_t i = 0; i < (size_t)B * Tk; i++) mass[i] = NAN;
        mass = NULL;
    }
    char *mem = NULL;
    if (nt > 1) mem = malloc((size_t)nt * (sfl * sizeof(float) + 64));
    if (!mem) nt = 1;
    att_job Jm = J;
    Jm.want_mass = mass != NULL;
    if (nt == 1) {
        attention_items(&Jm, 0, items, scratch, hsum);
    } else {
        att_part parts[ATT_MAX_THREADS];
        pthread_t th[ATT_MAX_THREADS];
        int started[ATT_MAX_THREADS] = {0};
        char *m = mem;
        for (int t = 0; t < nt; t++) {
            parts[t].J = &Jm;
            parts[t].i0 = (int)((long)items * t / nt);
            parts[t].i1 = (int)((long)items * (t + 1) / nt);
            parts[t].S = (float *)m;
            m += sfl * sizeof(float);
            m = (char *)(((uintptr_t)m + 63) & ~(uintptr_t)63);
            parts[t].macc = hsum;
        }
        for (int t = 1; t < nt; t++) started[t] = pthread_create(&th[t], NULL, attention_thread, &parts[t]) == 0;
        for (int t = 1; t < nt; t++) /* a thread that could not start: its share runs here */
            if (!started[t]) attention_thread(&parts[t]);
        attention_thread(&parts[0]);
        for (int t = 1; t < nt; t++)
            if (started[t]) pthread_join(th[t], NULL);
    }
    if (mass) {
        for (int b = 0; b < B; b++) {
            double *acc = hsum + (size_t)b * NH * Tk; // heads summed into head 0's slice, in order
            for (int h = 1; h < NH; h++) {
                const double *hh = acc + (size_t)h * Tk;
                for (int j = 0; j < Tk; j++) acc[j] += hh[j];
            }
            mass_finish(mass + (size_t)b * Tk, acc, valid ? valid + (size_t)b * Tk : NULL, Tk, NH);
        }
    }
    free(hsum);
    free(mem);
}

/* The work of attention_backward: (b, kv head) groups, so that the sums
 * of a group's query heads into its dk, dv rows stay in one thread. */
typedef struct {
    float *dq, *dk, *dv;
    const float *dout, *q, *k, *v, *out;
    const uint8_t *valid;
    int T, NH, NKV, HS;
} att_back_job;

/* Groups [i0, i1) of b * NKV + g. Per query head of the group and per block
 * of at most ATT_QB query rows (each against only the keys it can see, as
 * in the forward), with P the block's probabilities:
 *   dP = dO V^T,  D_r = dO_r . O_r,  dS = P * (dP - D)   (softmax backward)
 *   dV += P^T dO,  dQ += scale dS K,  dK += scale dS^T Q.
 * Scratch for one block, P and dP (qb,T) and D (qb), is allocated here,
 * once per thread. */
static void attention_back_groups(void *arg, size_t i0, size_t i1) {
    const att_back_job *J = arg;
    const int T = J->T, NH = J->NH, NKV = J->NKV, HS = J->HS, rep = NH / NKV;
    const int qs = NH * HS, ks = NKV * HS; // row strides of q/out and k/v
    const int qb = T < ATT_QB ? T : ATT_QB;
    const float scale = (float)(1.0 / sqrt((double)HS));
    float *P = malloc(((size_t)2 * qb * T + qb) * sizeof(float));
    if (!P) { // out of memory: the contract has no error path, so the gradient says it loudly
        for (size_t it = i0; it < i1; it++) {
            const size_t b = it / NKV, g = it % NKV;
            for (int t = 0; t < T; t++)
                for (int h = (int)g * rep; h < ((int)g + 1) * rep; h++)
                    for (int d = 0; d < HS; d++) J->dq[(b * T + t) * qs + (size_t)h * HS + d] = NAN;
        }
        return;
    }
    float *dP = P + (size_t)qb * T, *D = dP + (size_t)qb * T;
    for (size_t it = i0; it < i1; it++) {
        const int b = (int)(it / NKV), g = (int)(it % NKV);
        const uint8_t *vb = J->valid ? J->valid + (size_t)b * T : NULL;
        const size_t kvoff = (size_t)b * T * ks + (size_t)g * HS;
        const float *kg = J->k + kvoff, *vg = J->v + kvoff;
        float *dkg = J->dk + kvoff, *dvg = J->dv + kvoff;
        int Tv = T; // query rows up to the last real one: the forward made zeros after it
        if (vb)
            while (Tv > 0 && !vb[Tv - 1]) Tv--;
        for (int h = g * rep; h < (g + 1) * rep; h++) {
            const size_t qoff = (size_t)b * T * qs + (size_t)h * HS;
            for (int r0 = 0; r0 < Tv; r0 += qb) {
                const int nr = Tv - r0 < qb ? Tv - r0 : qb;
                const int nk = r0 + nr; // keys the block's last row sees
                const float *qr = J->q + qoff + (size_t)r0 * qs, *dor = J->dout + qoff + (size_t)r0 * qs;
                const float *orow = J->out + qoff + (size_t)r0 * qs;
                float *dqr = J->dq + qoff + (size_t)r0 * qs;
                // P (nr,nk) = softmax rows of scale * Q_blk K[0:nk]^T, masked as in the forward
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nr, nk, HS, scale, qr, qs, kg, ks, 0.0f, P,
                            nk);
                for (int r = 0; r < nr; r++) {
                    const int pos = r0 + r;
                    float *p = P + (size_t)r * nk;
                    if (vb && !vb[pos]) { // a padding query: zero probabilities, so no gradient anywhere
                        memset(p, 0, (size_t)nk * sizeof(float));
                        D[r] = 0.0f;
                        continue;
                    }
                    const float inv = softmax_causal(p, pos + 1, nk, vb);
                    for (int j = 0; j <= pos; j++) p[j] *= inv;
                    double dd = 0.0;
                    for (int d = 0; d < HS; d++) dd += (double)dor[(size_t)r * qs + d] * orow[(size_t)r * qs + d];
                    D[r] = (float)dd;
                }
                // dP (nr,nk) = dO_blk V[0:nk]^T
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nr, nk, HS, 1.0f, dor, qs, vg, ks, 0.0f, dP,
                            nk);
                // dV[0:nk] (nk,HS) += P^T dO_blk
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, nk, HS, nr, 1.0f, P, nk, dor, qs, 1.0f, dvg,
                            ks);
                // dS = P * (dP - D), in dP: 0 wherever P is (masked keys, padding queries)
                for (int r = 0; r < nr; r++) {
                    const float *p = P + (size_t)r * nk;
                    float *ds = dP + (size_t)r * nk;
                    for (int j = 0; j < nk; j++) ds[j] = p[j] * (ds[j] - D[r]);
                }
                // dQ_blk (nr,HS) += scale dS K[0:nk];  dK[0:nk] (nk,HS) += scale dS^T Q_blk
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, nr, HS, nk, scale, dP, nk, kg, ks, 1.0f, dqr,
                            qs);
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, nk, HS, nr, scale, dP, nk, qr, qs, 1.0f, dkg,
                            ks);
            }
        }
    }
    free(P);
}

void attention_backward(float *dq, float *dk, float *dv, const float *dout, const float *q, const float *k,
                        const float *v, const float *out, const uint8_t *valid, int B, int T, int NH, int NKV,
                        int HS) {
    // dout, q, out (B,T,NH,HS), k, v (B,T,NKV,HS), valid (B,T) -> dq (B,T,NH,HS), dk, dv (B,T,NKV,HS), all +=
    // Each group is done whole by one thread in a fixed order, so the
    // result does not depend on the thread count.
    if (B <= 0 || T <= 0 || HS <= 0 || NKV <= 0 || NH % NKV) return; // outside the contract
    const att_back_job J = {dq, dk, dv, dout, q, k, v, out, valid, T, NH, NKV, HS};
    // a thread is worth ~1 MFLOP: a group is ~5 products of T^2/2 x HS per query head
    size_t flops = (size_t)(NH / NKV) * 5 * (size_t)T * T * HS, min_groups = (1u << 20) / (flops + 1) + 1;
    par_range((size_t)B * NKV, min_groups, attention_back_groups, (void *)&J);
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

void attention_last_mass(float *w, const float *q, const float *k, const uint8_t *valid, int B, int T, int NH,
                         int NKV, int HS) {
    // q (B,T,NH,HS), k (B,T,NKV,HS), valid (B,T) -> w (B,T)
    if (B <= 0 || T <= 0 || NKV <= 0 || NH % NKV) return;
    const int rep = NH / NKV;
    const double scale = 1.0 / sqrt((double)HS);
    double *s = malloc(sizeof(double) * (size_t)T * 2);
    if (!s) { // the contract has no error path: make the failure impossible to miss
        for (size_t i = 0; i < (size_t)B * T; i++) w[i] = NAN;
        return;
    }
    double *acc = s + T;
    for (int b = 0; b < B; b++) {
        const uint8_t *vb = valid ? valid + (size_t)b * T : NULL;
        float *wb = w + (size_t)b * T;
        int last = T - 1;
        while (vb && last >= 0 && !vb[last]) last--;
        for (int t = 0; t < T; t++) { acc[t] = 0.0; wb[t] = 0.0f; }
        if (last < 0) continue;
        for (int h = 0; h < NH; h++) { // softmax of the last query's scores, one head at a time
            const float *qt = q + (((size_t)b * T + last) * NH + h) * HS;
            double mx = -INFINITY, sum = 0.0;
            for (int j = 0; j <= last; j++) {
                if (vb && !vb[j]) continue;
                const float *kj = k + (((size_t)b * T + j) * NKV + h / rep) * HS;
                double dot = 0.0;
                for (int d = 0; d < HS; d++) dot += (double)qt[d] * kj[d];
                s[j] = dot * scale;
                if (s[j] > mx) mx = s[j];
            }
            for (int j = 0; j <= last; j++) {
                s[j] = (vb && !vb[j]) ? 0.0 : exp(s[j] - mx);
                sum += s[j];
            }
            for (int j = 0; j <= last; j++) acc[j] += s[j] / sum;
        }
        double tot = 0.0; // = NH up to rounding; normalized as the definition says
        for (int j = 0; j <= last; j++) tot += acc[j];
        for (int j = 0; j <= last; j++) wb[j] = (float)(acc[j] / tot);
    }
    free(s);
}

// ----------------------------------------------------------------------------
// elementwise

typedef struct { float *out; const float *gate, *up; } swiglu_args;

SRA_AVX2_CLONES static void swiglu_range(void *a, size_t i0, size_t i1) {
    swiglu_args *s = a;
    const v4f one = {1.0f, 1.0f, 1.0f, 1.0f};
    for (; i0 + 8 <= i1; i0 += 8) { // the 4-lane loop's operations, 8 lanes at a time
        v8f g, u;
        memcpy(&g, s->gate + i0, 32);
        memcpy(&u, s->up + i0, 32);
        v8f o = g / (1.0f + exp8(-g)) * u;
        memcpy(s->out + i0, &o, 32);
    }
    for (; i0 + 4 <= i1; i0 += 4) { // exp(-g) saturates for g < -88.7: silu -> ~-0, its limit
        v4f g, u;
        memcpy(&g, s->gate + i0, 16);
        memcpy(&u, s->up + i0, 16);
        v4f o = g / (one + exp4(-g)) * u;
        memcpy(s->out + i0, &o, 16);
    }
    for (size_t i = i0; i < i1; i++) {
        float g = s->gate[i];
        s->out[i] = g / (1.0f + expf(-g)) * s->up[i];
    }
}

void swiglu_forward(float *out, const float *gate, const float *up, size_t n) {
    // gate, up (n) -> out (n); for gate << 0, expf overflows to inf and silu
    // goes to -0, its limit.
    swiglu_args a = {out, gate, up};
    par_range(n, 1 << 16, swiglu_range, &a);
}

typedef struct { float *dgate, *dup; const float *dout, *gate, *up; } swiglu_back_args;

/* With s = sigmoid(g) = 1 / (1 + e^-g): silu(g) = g s and
 * d silu / dg = s + g s (1 - s) = s (1 + g (1 - s)). For g << 0, e^-g
 * saturates (vector) or overflows to inf (scalar); both give s ~ 0 and
 * gradients ~ 0, their limits. */
static void swiglu_back_range(void *a, size_t i0, size_t i1) {
    swiglu_back_args *s = a;
    const v4f one = {1.0f, 1.0f, 1.0f, 1.0f};
    for (; i0 + 4 <= i1; i0 += 4) {
        v4f g, u, dy, dg, du;
        memcpy(&g, s->gate + i0, 16);
        memcpy(&u, s->up + i0, 16);
        memcpy(&dy, s->dout + i0, 16);
        memcpy(&dg, s->dgate + i0, 16);
        memcpy(&du, s->dup + i0, 16);
        v4f e1 = one + exp4(-g), sg = one / e1;
        dg += dy * u * sg * (one + g * (one - sg));
        du += dy * (g / e1); // silu as the forward computes it
        memcpy(s->dgate + i0, &dg, 16);
        memcpy(s->dup + i0, &du, 16);
    }
    for (size_t i = i0; i < i1; i++) {
        float g = s->gate[i], e1 = 1.0f + expf(-g), sg = 1.0f / e1;
        s->dgate[i] += s->dout[i] * s->up[i] * sg * (1.0f + g * (1.0f - sg));
        s->dup[i] += s->dout[i] * (g / e1);
    }
}

void swiglu_backward(float *dgate, float *dup, const float *dout, const float *gate, const float *up, size_t n) {
    // dout, gate, up (n) -> dgate, dup (n) +=
    swiglu_back_args a = {dgate, dup, dout, gate, up};
    par_range(n, 1 << 16, swiglu_back_range, &a);
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

// sum of exp(x[i] - mx) over x (n): exp in float (x - max <= 0: no
// overflow, relative error ~1 ulp), summed in double over 16 lanes reduced
// in a fixed order. Shared by top-k and cross-entropy.
SRA_AVX2_CLONES static double sum_exp_f32(const float *x, int n, float mx) {
    double sum = 0.0;
    int i = 0;
    for (; i + 16 <= n; i += 16) { // exps 8 at a time, summed as 4 vectors of 4
        v8f e[2];
        memcpy(&e[0], x + i, 32); memcpy(&e[1], x + i + 8, 32);
        e[0] = exp8(e[0] - mx); e[1] = exp8(e[1] - mx);
        v4f a, b, c, d;
        memcpy(&a, (float *)e, 16); memcpy(&b, (float *)e + 4, 16); memcpy(&c, (float *)e + 8, 16); memcpy(&d, (float *)e + 12, 16);
        v4f t = (a + b) + (c + d);
        sum += (double)((t[0] + t[1]) + (t[2] + t[3]));
    }
    for (; i < n; i++) sum += expf(x[i] - mx);
    return sum;
}

typedef struct { const float *logits; int V, k; int32_t *ids; float *logprobs, *tail; } topk_args;

static void topk_rows(void *a, size_t r0, size_t r1) {
    const topk_args *A = a;
    const float *logits = A->logits;
    const int V = A->V, k = A->k;
    int32_t *ids = A->ids;
    float *logprobs = A->logprobs, *tail = A->tail;
    const int kk = k < V ? k : V;
    for (size_t n = r0; n < r1; n++) {
        const float *x = logits + n * (size_t)V;
        int32_t *id = ids + n * (size_t)k;
        float *lp = logprobs + n * (size_t)k;
        const float mx = max_f32(x, V);
        const double lse = mx + log(sum_exp_f32(x, V, mx));
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
        if (tail) tail[n] = t > 0.0 ? (float)t : 0.0f;
    }
}

void logsoftmax_topk(const float *logits, int N, int V, int k, int32_t *ids, float *logprobs, float *tail) {
    // logits (N,V) -> ids, logprobs (N,k), tail (N) or NULL
    // Selection: a min-heap of the k best kept in the row's own output
    // arrays (no allocation), O(V + m log k) for m replacements; for
    // logits in any non-adversarial order m is ~k log(V/k), so the cost is
    // one pass over the row. A heapsort then leaves the k best in
    // descending order. Slots beyond V (k > V) get id -1, log-prob -inf.
    // Rows are shared among threads (par_range).
    if (N <= 0 || V <= 0) return;
    topk_args a = {logits, V, k, ids, logprobs, tail};
    size_t per = (size_t)(1 << 16) / (size_t)V + 1; // rows per thread worth starting one
    par_range((size_t)N, per, topk_rows, &a);
}

// ----------------------------------------------------------------------------
// cross-entropy

typedef struct {
    float *dlogits;
    const float *logits;
    const int32_t *targets;
    double *nll; // (N) per-row losses, summed in row order by the caller; NULL: into sum
    double sum;  // used only on one thread (nll could not be allocated)
    int V;
    float scale;
} ce_args;

/* Rows [r0, r1): -log p(target) = (max - x_t) + log sum_j exp(x_j - max)
 * in double, and dlogits = scale * exp(x - max) / sum - scale * onehot.
 * Each element is read before it is written, so dlogits may be logits. */
static void ce_rows(void *arg, size_t r0, size_t r1) {
    ce_args *a = arg;
    const int V = a->V;
    for (size_t n = r0; n < r1; n++) {
        const float *x = a->logits + n * V;
        float *d = a->dlogits ? a->dlogits + n * V : NULL;
        const int32_t t = a->targets[n];
        double l = 0.0;
        if (t < 0 || t >= V) {
            // -1: not counted. Any other id outside the vocabulary is a bug
            // upstream; with no error path, the loss turns NaN to say so.
            if (t != -1) l = NAN;
            if (d) memset(d, 0, (size_t)V * sizeof(float));
        } else {
            const float mx = max_f32(x, V);
            const double sum = sum_exp_f32(x, V, mx);
            l = ((double)mx - x[t]) + log(sum);
            if (d) {
                const float k = (float)(a->scale / sum);
                const v4f m4 = {mx, mx, mx, mx}, k4 = {k, k, k, k};
                int j = 0;
                for (; j + 4 <= V; j += 4) {
                    v4f e;
                    memcpy(&e, x + j, 16);
                    e = exp4(e - m4) * k4;
                    memcpy(d + j, &e, 16);
                }
                for (; j < V; j++) d[j] = expf(x[j] - mx) * k;
                d[t] -= a->scale;
            }
        }
        if (a->nll) a->nll[n] = l;
        else a->sum += l;
    }
}

double crossentropy_forward_backward(float *dlogits, const float *logits, const int32_t *targets, int N, int V,
                                     float scale) {
    // logits (N,V), targets (N) -> dlogits (N,V) (written, may be logits), returns sum of -log p(target)
    // Rows are shared among threads; the per-row losses are summed here in
    // row order, so the total does not depend on the thread count.
    if (N <= 0 || V <= 0) return 0.0;
    ce_args a = {dlogits, logits, targets, malloc((size_t)N * sizeof(double)), 0.0, V, scale};
    if (!a.nll) { // out of memory: one thread, same sum in the same order
        ce_rows(&a, 0, (size_t)N);
        return a.sum;
    }
    size_t per = (size_t)(1 << 16) / (size_t)V + 1; // rows per thread worth starting one
    par_range((size_t)N, per, ce_rows, &a);
    double total = 0.0;
    for (int n = 0; n < N; n++) total += a.nll[n];
    free(a.nll);
    return total;
}

/* ----------------------------------------------------------- self mass */

size_t self_mass_scratch_floats(int n, int C) { return (size_t)n * (size_t)C + (size_t)64 * (size_t)n; }

void self_mass_forward(float *mass, const float *h, int n, int C, float *scratch) {
    // h (n,C) -> mass (n); scratch: x (n,C) then a (64,n) block of scores
    if (n <= 0) return;
    if (n == 1) { mass[0] = 1.0f; return; }
    float *x = scratch, *s = scratch + (size_t)n * C;
    for (int i = 0; i < n; i++) {
        const float *hi = h + (size_t)i * C;
        double mean = 0, var = 0;
        for (int c = 0; c < C; c++) mean += hi[c];
        mean /= C;
        for (int c = 0; c < C; c++) var += (hi[c] - mean) * (hi[c] - mean);
        double sd = sqrt(var / C);
        float inv = (float)(sd > 0 ? 1.0 / sd : 1.0);
        for (int c = 0; c < C; c++) x[(size_t)i * C + c] = hi[c] * inv;
    }
    for (int i = 0; i < n; i++) mass[i] = 0;
    float scale = (float)(1.0 / sqrt((double)C));
    for (int q0 = 0; q0 < n; q0 += 64) {
        int R = n - q0 < 64 ? n - q0 : 64;
        // s (R,n) = x[q0:q0+R] @ x^T / sqrt(C)
        sgemm_nt(R, n, C, scale, x + (size_t)q0 * C, C, x, C, s, n);
        for (int r = 0; r < R; r++) {
            float *row = s + (size_t)r * n;
            int q = q0 + r;
            float mx = -INFINITY;
            for (int k = 0; k < n; k++) if (k != q && row[k] > mx) mx = row[k];
            double sum = 0;
            for (int k = 0; k < n; k++) {
                row[k] = k == q ? 0.0f : expf(row[k] - mx);
                sum += row[k];
            }
            float inv = (float)(1.0 / sum);
            for (int k = 0; k < n; k++) mass[k] += row[k] * inv;
        }
    }
    for (int i = 0; i < n; i++) mass[i] /= (float)(n - 1);
}
