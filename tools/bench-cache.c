/*
 * bench-cache - throughput and compression of the teacher cache (cache.h).
 *
 *   bench-cache [--atoms N] [--dir DIR] [--reps R]
 *
 * Generates a realistic shard in memory (outside every timed region):
 * documents of 100-400 word atoms; CoM at one layer, d = 2048, bf16, drawn
 * per channel from a Gaussian whose scale is log-normal across channels,
 * with ~0.5% outlier channels 20-100x larger and of consistent sign (as
 * real LLM residual streams have); f32 masses; top-k (k = 64) over a
 * 128256-token vocabulary: ids Zipf-distributed, log-probabilities (f16)
 * from a real softmax, most probable first, tail = 1 - sum.
 *
 * Then measures, all in one process so that speeds are reported as ratios
 * against peers measured in the same run:
 *   1. compression of the CoM block and of the top-k block (ids + logprob)
 *      on 256 KiB chunks with sra_shuffle + sra_zstd_compress directly:
 *      ratio, 1-thread compress and decompress MB/s, zstd vs shuffle+zstd,
 *      levels 1 and 3;
 *   2. peers: memcpy of 256 MiB (1 and 2 threads) and raw
 *      ZSTD_decompressDCtx with 1 and 2 threads on the chunks (writer level) of
 *      CoM + top-k as the shard holds them (1 thread bounds the 1-thread
 *      reader; 2 threads shows how far this machine scales);
 *   3. end to end: cache_writer (default level, shuffle on / off) -> write MB/s,
 *      file size, ratio; cache_iter over every document with 1 and 2
 *      threads, touching every atom -> read MB/s, loader wait and the
 *      process CPU seconds (user, sys) spent, i.e. how many cores were busy.
 * MB = 1e6 bytes. Payload = uncompressed bytes of every per-atom dataset
 * plus the text. Timings are the best of R repetitions (default 5) except
 * compression and the shard writes, which run once (this 2-vCPU VM is
 * noisy: single timings vary by up to 2x). The shard is read back while
 * its file is in the page cache (it was just written), after one untimed
 * pass.
 * Prints a table, then one line "BENCH_JSON {...}" with every number.
 * Removes the files it writes (default directory: a mkdtemp under /tmp).
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>

#include "cache.h"
#include "util.h"
#include "zstd_filter.h"

#define DIM 2048
#define TOPK 64
#define VOCAB 128256
#define CANDIDATES 256       /* softmax support drawn per atom */
#define CHUNK (256u << 10)   /* the writer's default chunk_bytes (CoM) */
#define MEMCPY_BYTES (256u << 20)
#define MIN_PASS_BYTES (64u << 20) /* small blocks are timed over repeated passes */

/* ============================================================ random */

typedef struct { uint64_t s; } rng;
static uint64_t rnext(rng *r) { /* splitmix64 */
    uint64_t z = (r->s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}
static double runif(rng *r) { return (double)(rnext(r) >> 11) * (1.0 / 9007199254740992.0); }
/* Marsaglia polar method: two independent N(0,1). */
static void rgauss2(rng *r, double *a, double *b) {
    double u, v, s;
    do {
        u = 2 * runif(r) - 1;
        v = 2 * runif(r) - 1;
        s = u * u + v * v;
    } while (s >= 1 || s == 0);
    double f = sqrt(-2 * log(s) / s);
    *a = u * f;
    *b = v * f;
}
static double rgauss(rng *r) { double a, b; rgauss2(r, &a, &b); return a; }

/* ============================================================ corpus */

static const char *const words[] = {
    "the", "of", "and", "to", "in", "a", "is", "that", "for", "it", "as", "was", "with",
    "be", "by", "on", "not", "he", "this", "are", "or", "his", "from", "at", "which",
    "but", "have", "an", "had", "they", "you", "were", "their", "one", "all", "we", "can",
    "her", "has", "there", "been", "if", "more", "when", "will", "would", "who", "so",
    "no", "time", "people", "river", "market", "theory", "engine", "garden", "signal",
    "protein", "window", "history", "measure", "village", "student", "teacher", "north",
    "quickly", "between", "because", "through", "however", "therefore", "although",
    "distribution", "temperature", "government", "experiment", "1984", "3.14", "e.g.",
    "don't", "it's", "(see", "below)", "café", "naïve", "über", "Zürich", "日本語", "—",
    ",", ".", ";", "?", "\"quoted\"", "x_i", "f(x)", "http://example.org"};
#define NWORDS ((int)(sizeof words / sizeof *words))

typedef struct {
    int64_t n_docs, n_atoms, n_text;
    int64_t *doc_atom, *doc_text; /* (n_docs+1) offsets */
    char *text;
    int32_t *start, *end; /* relative to the document */
    float *mass, *tail;
    uint16_t *com; /* (A, DIM) bf16 */
    int32_t *ids;  /* (A, TOPK) */
    uint16_t *lp;  /* (A, TOPK) f16 */
    int n_outliers;
    double tail_median, top1_median, com_absmax;
} corpus;

typedef struct { double logit; int32_t id; } cand;
static int cand_desc(const void *a, const void *b) {
    double x = ((const cand *)a)->logit, y = ((const cand *)b)->logit;
    return (x < y) - (x > y);
}
static int dbl_asc(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void *xmalloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p) {
        fprintf(stderr, "bench-cache: out of memory (%zu bytes)\n", n);
        exit(1);
    }
    return p;
}

static void corpus_make(corpus *c, int64_t n_atoms, uint64_t seed) {
    memset(c, 0, sizeof *c);
    rng r = {seed};
    /* documents of 100..400 atoms; the last one takes what is left */
    int64_t cap_docs = n_atoms / 100 + 2;
    c->doc_atom = xmalloc((size_t)(cap_docs + 1) * 8);
    c->doc_text = xmalloc((size_t)(cap_docs + 1) * 8);
    c->doc_atom[0] = 0;
    int64_t a = 0;
    while (a < n_atoms) {
        int64_t n = 100 + (int64_t)(rnext(&r) % 301);
        if (n > n_atoms - a) n = n_atoms - a;
        a += n;
        c->doc_atom[++c->n_docs] = a;
    }
    c->n_atoms = n_atoms;
    size_t A = (size_t)n_atoms;
    size_t maxw = 0;
    for (int i = 0; i < NWORDS; i++)
        if (strlen(words[i]) > maxw) maxw = strlen(words[i]);
    c->text = xmalloc(A * (maxw + 1));
    c->start = xmalloc(A * 4);
    c->end = xmalloc(A * 4);
    c->mass = xmalloc(A * 4);
    c->tail = xmalloc(A * 4);
    c->com = xmalloc(A * DIM * 2);
    c->ids = xmalloc(A * TOPK * 4);
    c->lp = xmalloc(A * TOPK * 2);

    /* text: word atoms, the separating space belongs to the next atom */
    int64_t pos = 0;
    c->doc_text[0] = 0;
    for (int64_t d = 0; d < c->n_docs; d++) {
        int64_t p0 = pos;
        for (int64_t i = c->doc_atom[d]; i < c->doc_atom[d + 1]; i++) {
            /* Zipf-ish word choice: small indices (function words) are common */
            double u = runif(&r);
            int w = (int)(NWORDS * u * u * u);
            c->start[i] = (int32_t)(pos - p0);
            if (i > c->doc_atom[d]) c->text[pos++] = ' ';
            size_t L = strlen(words[w]);
            memcpy(c->text + pos, words[w], L);
            pos += (int64_t)L;
            c->end[i] = (int32_t)(pos - p0);
            /* mass: sum of token masses, log-normal around 1 */
            c->mass[i] = (float)exp(0.8 * rgauss(&r));
        }
        c->doc_text[d + 1] = pos;
    }
    c->n_text = pos;

    /* CoM: per-channel mean and log-normal scale, outlier channels */
    double *mu = xmalloc(DIM * sizeof *mu), *sg = xmalloc(DIM * sizeof *sg);
    for (int ch = 0; ch < DIM; ch++) {
        sg[ch] = 0.5 * exp(0.5 * rgauss(&r));
        mu[ch] = 0.2 * sg[ch] * rgauss(&r);
    }
    int n_out = (int)lround(0.005 * DIM);
    c->n_outliers = n_out;
    for (int o = 0; o < n_out; o++) {
        int ch = (int)(rnext(&r) % DIM);
        double f = 20 + 80 * runif(&r);
        sg[ch] *= f;
        mu[ch] = (rnext(&r) & 1 ? 1 : -1) * sg[ch] * (0.5 + runif(&r));
    }
    double absmax = 0;
    for (size_t i = 0; i < A; i++) {
        double atom_scale = exp(0.15 * rgauss(&r)); /* per-atom norm varies */
        uint16_t *row = c->com + i * DIM;
        for (int ch = 0; ch < DIM; ch += 2) {
            double g0, g1;
            rgauss2(&r, &g0, &g1);
            float v0 = (float)(mu[ch] + sg[ch] * atom_scale * g0);
            float v1 = (float)(mu[ch + 1] + sg[ch + 1] * atom_scale * g1);
            if (fabs(v0) > absmax) absmax = fabs(v0);
            if (fabs(v1) > absmax) absmax = fabs(v1);
            row[ch] = sra_f32_to_bf16(v0);
            row[ch + 1] = sra_f32_to_bf16(v1);
        }
    }
    c->com_absmax = absmax;
    free(mu);
    free(sg);

    /* top-k: CANDIDATES distinct ids drawn Zipf-Mandelbrot over the
     * vocabulary (frequent tokens have low ids, as in BPE vocabularies),
     * Gaussian logits with a per-atom sharpness, the other VOCAB -
     * CANDIDATES tokens at one low logit; log-softmax over all VOCAB. */
    double *cdf = xmalloc(VOCAB * sizeof *cdf), z = 0;
    for (int v = 0; v < VOCAB; v++) { z += pow(v + 2.7, -1.0); cdf[v] = z; }
    for (int v = 0; v < VOCAB; v++) cdf[v] /= z;
    uint32_t *seen = calloc(VOCAB, sizeof *seen);
    if (!seen) { fprintf(stderr, "bench-cache: out of memory\n"); exit(1); }
    double *tails = xmalloc(A * sizeof *tails), *top1 = xmalloc(A * sizeof *top1);
    cand cd[CANDIDATES];
    for (size_t i = 0; i < A; i++) {
        uint32_t stamp = (uint32_t)i + 1;
        double beta = 1.0 + 3.0 * runif(&r); /* flat .. confident */
        for (int j = 0; j < CANDIDATES;) {
            double u = runif(&r);
            int lo = 0, hi = VOCAB - 1;
            while (lo < hi) {
                int m = (lo + hi) / 2;
                if (cdf[m] < u) lo = m + 1; else hi = m;
            }
            if (seen[lo] == stamp) continue;
            seen[lo] = stamp;
            cd[j].id = lo;
            cd[j].logit = beta * rgauss(&r);
            j++;
        }
        qsort(cd, CANDIDATES, sizeof *cd, cand_desc);
        double rest_logit = cd[0].logit - 16.0 - 4.0 * runif(&r);
        double mx = cd[0].logit, zz = (double)(VOCAB - CANDIDATES) * exp(rest_logit - mx);
        for (int j = 0; j < CANDIDATES; j++) zz += exp(cd[j].logit - mx);
        double lz = mx + log(zz), kept = 0;
        for (int j = 0; j < TOPK; j++) {
            double lp = cd[j].logit - lz;
            c->ids[i * TOPK + (size_t)j] = cd[j].id;
            c->lp[i * TOPK + (size_t)j] = sra_f32_to_f16((float)lp);
            kept += exp(lp);
        }
        c->tail[i] = (float)(1.0 - kept);
        tails[i] = 1.0 - kept;
        top1[i] = exp(cd[0].logit - lz);
    }
    qsort(tails, A, sizeof *tails, dbl_asc);
    qsort(top1, A, sizeof *top1, dbl_asc);
    c->tail_median = tails[A / 2];
    c->top1_median = top1[A / 2];
    free(tails);
    free(top1);
    free(seen);
    free(cdf);
}

static void corpus_free(corpus *c) {
    free(c->doc_atom); free(c->doc_text); free(c->text); free(c->start); free(c->end);
    free(c->mass); free(c->tail); free(c->com); free(c->ids); free(c->lp);
}

static uint64_t payload_bytes(const corpus *c) {
    uint64_t per_atom = 4 + 4 + 4 + 4 + DIM * 2 + TOPK * 4 + TOPK * 2;
    return (uint64_t)c->n_atoms * per_atom + (uint64_t)c->n_text;
}

static void doc_view(const corpus *c, int64_t i, cache_doc *d) {
    memset(d, 0, sizeof *d);
    int64_t a = c->doc_atom[i];
    d->index = i;
    d->record = i;
    d->text = c->text + c->doc_text[i];
    d->text_len = c->doc_text[i + 1] - c->doc_text[i];
    d->loss_start = 0;
    d->n_atoms = c->doc_atom[i + 1] - a;
    d->atom_start = c->start + a;
    d->atom_end = c->end + a;
    d->mass = c->mass + a;
    d->tail_mass = c->tail + a;
    d->com[0] = c->com + (size_t)a * DIM;
    d->topk_ids = c->ids + (size_t)a * TOPK;
    d->topk_logprob = c->lp + (size_t)a * TOPK;
}

/* What a consumer does with a document here: a few bytes of every atom
 * (so that nothing is optimized away and a wrong read shows). */
static uint64_t touch_doc(const cache_doc *d) {
    uint64_t s = (uint64_t)d->text_len * 31u + (uint8_t)d->text[d->text_len - 1];
    const uint16_t *com = d->com[0];
    for (int64_t a = 0; a < d->n_atoms; a++) {
        uint32_t mb, tb;
        memcpy(&mb, &d->mass[a], 4);
        memcpy(&tb, &d->tail_mass[a], 4);
        s = s * 1099511628211ull + com[a * DIM] + ((uint64_t)com[a * DIM + DIM - 1] << 16) +
            ((uint64_t)(uint32_t)d->topk_ids[a * TOPK] << 20) +
            (uint64_t)(uint32_t)d->topk_ids[a * TOPK + TOPK - 1] +
            d->topk_logprob[a * TOPK] + d->topk_logprob[a * TOPK + TOPK - 1] +
            (uint64_t)(uint32_t)d->atom_start[a] + (uint64_t)(uint32_t)d->atom_end[a] + mb + tb;
    }
    return s;
}

/* ======================================================= compression */

/* One dataset cut into chunks of CHUNK bytes as the writer cuts it. */
typedef struct {
    const char *name;
    const uint8_t *data;
    size_t bytes, esize;
} dset;

typedef struct {
    double comp_s, dec_s, zdec_s; /* per pass */
    uint64_t raw, stored;
} cstat;

/* Compressed chunks of one dataset, kept for the zstd peers. */
typedef struct {
    uint8_t *z;
    size_t *zn, nch, bound, bytes;
} zset;

static double now(void) { return sra_now(); }
static double mbps(uint64_t bytes, double s) { return s > 0 ? bytes / s / 1e6 : 0; }

/* Compresses ds at level/shuffle on chunks, then times decompression
 * (zstd + unshuffle, what the reader does per chunk) and raw zstd alone
 * (best of reps). Timings are per pass over the whole dataset. */
static cstat measure_dset(const dset *ds, int level, int shuffle, int reps, zset *keep) {
    cstat st = {0};
    size_t nch = (ds->bytes + CHUNK - 1) / CHUNK;
    size_t bound = sra_zstd_bound(CHUNK);
    uint8_t *z = xmalloc(nch * bound), *sbuf = xmalloc(CHUNK), *tmp = xmalloc(CHUNK),
            *out = xmalloc(CHUNK);
    size_t *zn = xmalloc(nch * sizeof *zn);
    void *cctx = sra_zstd_cctx_new(), *dctx = sra_zstd_dctx_new();
    int passes = (int)(MIN_PASS_BYTES / (ds->bytes ? ds->bytes : 1));
    if (passes < 1) passes = 1;
    char why[160];
    memset(z, 0, nch * bound); /* fault the pages in outside the timing */

    double t0 = now();
    for (int p = 0; p < passes; p++)
        for (size_t c = 0; c < nch; c++) {
            size_t n = ds->bytes - c * CHUNK < CHUNK ? ds->bytes - c * CHUNK : CHUNK;
            const uint8_t *src = ds->data + c * CHUNK;
            if (shuffle) { sra_shuffle(sbuf, src, n / ds->esize, ds->esize); src = sbuf; }
            zn[c] = sra_zstd_compress(cctx, z + c * bound, bound, src, n, level);
            if (!zn[c]) { fprintf(stderr, "bench-cache: zstd compress failed\n"); exit(1); }
        }
    st.comp_s = (now() - t0) / passes;
    st.raw = ds->bytes;
    for (size_t c = 0; c < nch; c++) st.stored += zn[c];

    /* correctness of the round trip, untimed */
    for (size_t c = 0; c < nch; c++) {
        size_t n = ds->bytes - c * CHUNK < CHUNK ? ds->bytes - c * CHUNK : CHUNK;
        if (sra_zstd_decompress(dctx, tmp, n, z + c * bound, zn[c], why, sizeof why)) {
            fprintf(stderr, "bench-cache: %s: %s\n", ds->name, why);
            exit(1);
        }
        const uint8_t *back = tmp;
        if (shuffle) { sra_unshuffle_range(out, tmp, n / ds->esize, ds->esize, 0, n / ds->esize); back = out; }
        if (memcmp(back, ds->data + c * CHUNK, n)) {
            fprintf(stderr, "bench-cache: %s: round trip differs\n", ds->name);
            exit(1);
        }
    }

    st.dec_s = st.zdec_s = 1e300;
    for (int rep = 0; rep < reps; rep++) {
        t0 = now();
        for (int p = 0; p < passes; p++)
            for (size_t c = 0; c < nch; c++) {
                size_t n = ds->bytes - c * CHUNK < CHUNK ? ds->bytes - c * CHUNK : CHUNK;
                if (sra_zstd_decompress(dctx, tmp, n, z + c * bound, zn[c], why, sizeof why)) exit(1);
                if (shuffle) sra_unshuffle_range(out, tmp, n / ds->esize, ds->esize, 0, n / ds->esize);
            }
        double t = (now() - t0) / passes;
        if (t < st.dec_s) st.dec_s = t;
        t0 = now();
        for (int p = 0; p < passes; p++)
            for (size_t c = 0; c < nch; c++) {
                size_t n = ds->bytes - c * CHUNK < CHUNK ? ds->bytes - c * CHUNK : CHUNK;
                size_t rc = ZSTD_decompressDCtx(dctx, tmp, n, z + c * bound, zn[c]);
                if (ZSTD_isError(rc) || rc != n) exit(1);
            }
        t = (now() - t0) / passes;
        if (t < st.zdec_s) st.zdec_s = t;
    }
    sra_zstd_cctx_free(cctx);
    sra_zstd_dctx_free(dctx);
    if (keep) {
        *keep = (zset){z, zn, nch, bound, ds->bytes};
        z = NULL;
        zn = NULL;
    }
    free(z); free(sbuf); free(tmp); free(out); free(zn);
    return st;
}

/* The zstd peer: raw ZSTD_decompressDCtx of every chunk of sets with nth
 * threads (chunk i to thread i % nth), into a per-thread 1 MiB buffer.
 * Best of reps; returns MB/s of uncompressed bytes. */
typedef struct { const zset *sets; int nsets, t, nth; } zjob;

static void *zjob_main(void *arg) {
    const zjob *j = arg;
    void *dctx = sra_zstd_dctx_new();
    uint8_t *tmp = xmalloc(CHUNK);
    size_t i = 0;
    for (int k = 0; k < j->nsets; k++) {
        const zset *zs = &j->sets[k];
        for (size_t c = 0; c < zs->nch; c++, i++) {
            if ((int)(i % (size_t)j->nth) != j->t) continue;
            size_t n = zs->bytes - c * CHUNK < CHUNK ? zs->bytes - c * CHUNK : CHUNK;
            size_t rc = ZSTD_decompressDCtx(dctx, tmp, n, zs->z + c * zs->bound, zs->zn[c]);
            if (ZSTD_isError(rc) || rc != n) { fprintf(stderr, "bench-cache: zstd peer failed\n"); exit(1); }
        }
    }
    free(tmp);
    sra_zstd_dctx_free(dctx);
    return NULL;
}

static double zstd_peer(const zset *sets, int nsets, int nth, int reps) {
    uint64_t raw = 0;
    for (int k = 0; k < nsets; k++) raw += sets[k].bytes;
    double best = 1e300;
    for (int rep = 0; rep < reps; rep++) {
        pthread_t th[2];
        zjob job[2];
        double t0 = now();
        for (int t = 0; t < nth; t++) {
            job[t] = (zjob){sets, nsets, t, nth};
            if (t == nth - 1) zjob_main(&job[t]);
            else if (pthread_create(&th[t], NULL, zjob_main, &job[t])) { fprintf(stderr, "bench-cache: pthread_create\n"); exit(1); }
        }
        for (int t = 0; t < nth - 1; t++) pthread_join(th[t], NULL);
        double dt = now() - t0;
        if (dt < best) best = dt;
    }
    return mbps(raw, best);
}

static cstat cstat_add(cstat a, cstat b) {
    cstat s = {a.comp_s + b.comp_s, a.dec_s + b.dec_s, a.zdec_s + b.zdec_s, a.raw + b.raw,
               a.stored + b.stored};
    return s;
}
static double ratio_of(cstat s) { return s.stored ? (double)s.raw / (double)s.stored : 0; }

/* =========================================================== memcpy */

typedef struct { uint8_t *dst; const uint8_t *src; size_t n; } cpy;
static void *cpy_main(void *arg) {
    cpy *c = arg;
    memcpy(c->dst, c->src, c->n);
    return NULL;
}

/* Best-of-reps bandwidth (bytes copied / s) of memcpy with nth threads. */
static double memcpy_mbps(uint8_t *dst, const uint8_t *src, size_t n, int nth, int reps) {
    double best = 1e300;
    for (int rep = 0; rep < reps; rep++) {
        pthread_t th[2];
        cpy job[2];
        size_t part = n / (size_t)nth;
        double t0 = now();
        for (int t = 0; t < nth; t++) {
            job[t] = (cpy){dst + (size_t)t * part, src + (size_t)t * part,
                           t == nth - 1 ? n - (size_t)t * part : part};
            if (t == nth - 1) cpy_main(&job[t]);
            else if (pthread_create(&th[t], NULL, cpy_main, &job[t])) { fprintf(stderr, "bench-cache: pthread_create\n"); exit(1); }
        }
        for (int t = 0; t < nth - 1; t++) pthread_join(th[t], NULL);
        double dt = now() - t0;
        if (dt < best) best = dt;
    }
    return mbps(n, best);
}

/* ========================================================= end to end */

static char g_tok[] = "{\"version\":\"1.0\",\"model\":{\"type\":\"BPE\",\"vocab\":{}}}";
static char g_cfg[] = "{\"hidden_size\":2048,\"vocab_size\":128256}";

static void meta_make(cache_meta *m, const corpus *c) {
    memset(m, 0, sizeof *m);
    m->teacher_name = "bench-cache synthetic teacher";
    m->teacher_config_sha256 = "0000000000000000000000000000000000000000000000000000000000000000";
    m->teacher_weights_sha256 = "1111111111111111111111111111111111111111111111111111111111111111  model.safetensors\n";
    m->teacher_vocab_size = VOCAB;
    m->atoms = "word";
    m->mass = "attn:-1";
    m->n_layers = 1;
    m->layers[0] = CACHE_LAYER_FINAL;
    m->hidden_size = DIM;
    m->hidden_dtype = CACHE_BF16;
    m->topk = TOPK;
    m->temperature = 1.0;
    m->dataset_sha256 = "2222222222222222222222222222222222222222222222222222222222222222";
    m->record_start = 0;
    m->record_end = c->n_docs;
    m->shard_index = 0;
    m->shard_count = 1;
    m->settings_json = "{\"bench\":true}";
    m->teacher_tokenizer_json = (const uint8_t *)g_tok;
    m->teacher_tokenizer_len = strlen(g_tok);
    m->teacher_config_json = (const uint8_t *)g_cfg;
    m->teacher_config_len = strlen(g_cfg);
}

typedef struct {
    double write_s, finish_s;
    uint64_t file_bytes;
    /* [0] = 1 thread, [1] = 2 threads; the best repetition */
    double read_s[2], wait_s[2], user_s[2], sys_s[2];
} e2e;

static char *g_paths[2];
static char g_dir[4096];
static int g_own_dir;

static void cleanup(void) {
    for (int i = 0; i < 2; i++)
        if (g_paths[i]) {
            unlink(g_paths[i]);
            char tmp[4200];
            snprintf(tmp, sizeof tmp, "%s.tmp", g_paths[i]);
            unlink(tmp);
        }
    if (g_own_dir && g_dir[0]) rmdir(g_dir);
}

static void die(const char *what, const char *msg) {
    fprintf(stderr, "bench-cache: %s: %s\n", what, msg);
    cleanup();
    exit(1);
}

static void write_shard(const char *path, const corpus *c, int shuffle, e2e *res) {
    cache_meta m;
    meta_make(&m, c);
    cache_write_opts o;
    cache_write_opts_default(&o);
    /* the writer's default level: what users get */
    o.shuffle = shuffle;
    cache_writer *w = NULL;
    double t0 = now();
    int rc = cache_writer_open(&w, path, &m, &o);
    if (rc) die("cache_writer_open", cache_writer_errmsg(w));
    for (int64_t i = 0; i < c->n_docs && !rc; i++) {
        cache_doc d;
        doc_view(c, i, &d);
        rc = cache_writer_add(w, &d);
    }
    if (rc) die("cache_writer_add", cache_writer_errmsg(w));
    double t1 = now();
    rc = cache_writer_finish(w);
    if (rc) die("cache_writer_finish", cache_writer_errmsg(w));
    double t2 = now();
    cache_writer_free(w);
    res->write_s = t2 - t0;
    res->finish_s = t2 - t1;
    struct stat st;
    if (stat(path, &st)) die(path, strerror(errno));
    res->file_bytes = (uint64_t)st.st_size;
}

static void cpu_times(double *user, double *sys) {
    struct rusage u;
    getrusage(RUSAGE_SELF, &u);
    *user = (double)u.ru_utime.tv_sec + (double)u.ru_utime.tv_usec * 1e-6;
    *sys = (double)u.ru_stime.tv_sec + (double)u.ru_stime.tv_usec * 1e-6;
}

/* Reads every document with cache_iter (threads workers), touching each
 * atom; keeps the fastest of reps with its loader wait and process CPU.
 * One untimed pass first: the first pass over a just-written file is
 * slower (HDF5 metadata cache, kernel page state) and noisier. */
static void read_shard(const char *path, const corpus *c, uint64_t want, int threads, int reps,
                       e2e *res) {
    int t = threads - 1;
    cache_reader *r = NULL;
    if (cache_open(&r, path)) die("cache_open", cache_errmsg(r));
    if (cache_n_docs(r) != c->n_docs || cache_n_atoms(r) != c->n_atoms)
        die(path, "document or atom count differs from what was written");
    res->read_s[t] = 1e300;
    for (int rep = -1; rep < reps; rep++) {
        double u0, s0, u1, s1;
        cpu_times(&u0, &s0);
        double t0 = now();
        if (cache_iter_begin(r, 0, c->n_docs, threads)) die("cache_iter_begin", cache_errmsg(r));
        uint64_t sum = 0;
        int64_t n = 0;
        cache_doc d;
        int rc;
        while ((rc = cache_iter_next(r, &d)) == 1) { sum += touch_doc(&d); n++; }
        if (rc < 0) die("cache_iter_next", cache_errmsg(r));
        double wt = cache_iter_wait_seconds(r);
        cache_iter_end(r);
        double dt = now() - t0;
        cpu_times(&u1, &s1);
        if (n != c->n_docs || sum != want) die(path, "documents read back differ from those written");
        if (rep >= 0 && dt < res->read_s[t]) {
            res->read_s[t] = dt;
            res->wait_s[t] = wt;
            res->user_s[t] = u1 - u0;
            res->sys_s[t] = s1 - s0;
        }
    }
    cache_close(r);
}

/* ================================================================ main */

static void usage(FILE *f) {
    fprintf(f,
            "usage: bench-cache [--atoms N] [--dir DIR] [--reps R]\n"
            "  Cache write/read throughput and compression on a synthetic shard\n"
            "  (d = 2048 bf16 CoM, top-64 over a 128256 vocabulary).\n"
            "options:\n"
            "  --atoms N   atoms in the shard (default 60000, about 270 MB of payload)\n"
            "  --dir DIR   where the shards are written and then removed\n"
            "              (default: a new directory under /tmp)\n"
            "  --reps R    repetitions of each fast timing, best kept (default 5)\n"
            "  -h, --help  this text\n");
}

int main(int argc, char **argv) {
    int64_t n_atoms = 60000;
    int reps = 5;
    const char *dir = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) { usage(stdout); return 0; }
        if (i + 1 < argc && !strcmp(argv[i], "--atoms")) {
            char *e;
            n_atoms = strtoll(argv[++i], &e, 10);
            if (*e || n_atoms < 1) { fprintf(stderr, "bench-cache: --atoms wants a positive integer\n"); return 2; }
        } else if (i + 1 < argc && !strcmp(argv[i], "--reps")) {
            char *e;
            long v = strtol(argv[++i], &e, 10);
            if (*e || v < 1 || v > 100) { fprintf(stderr, "bench-cache: --reps wants 1..100\n"); return 2; }
            reps = (int)v;
        } else if (i + 1 < argc && !strcmp(argv[i], "--dir")) {
            dir = argv[++i];
        } else {
            fprintf(stderr, "bench-cache: unknown or incomplete argument '%s'\n", argv[i]);
            usage(stderr);
            return 2;
        }
    }
    if (dir) {
        snprintf(g_dir, sizeof g_dir, "%s", dir);
    } else {
        snprintf(g_dir, sizeof g_dir, "/tmp/bench-cache-XXXXXX");
        if (!mkdtemp(g_dir)) { fprintf(stderr, "bench-cache: mkdtemp: %s\n", strerror(errno)); return 1; }
        g_own_dir = 1;
    }
    static const char *const fname[2] = {"bench-zstd.h5", "bench-shuffle-zstd.h5"};
    for (int s = 0; s < 2; s++) {
        g_paths[s] = xmalloc(strlen(g_dir) + 32);
        sprintf(g_paths[s], "%s/%s", g_dir, fname[s]);
    }

    /* ---------------------------------------------------- data */
    double t0 = now();
    corpus c;
    corpus_make(&c, n_atoms, 20260101);
    double gen_s = now() - t0;
    uint64_t payload = payload_bytes(&c);
    uint64_t want = 0;
    for (int64_t i = 0; i < c.n_docs; i++) {
        cache_doc d;
        doc_view(&c, i, &d);
        want += touch_doc(&d);
    }
    printf("bench-cache: %lld atoms in %lld documents; CoM d=%d bf16 at 1 layer, top-%d over %d ids\n",
           (long long)c.n_atoms, (long long)c.n_docs, DIM, TOPK, VOCAB);
    printf("payload %.1f MB (per-atom datasets + text; MB = 1e6 bytes); generated in %.1f s (untimed)\n",
           payload / 1e6, gen_s);
    printf("data: CoM %d outlier channels (%.2f%%), |max| %.1f; top-k median top-1 p %.3f, "
           "median tail mass %.3f\n",
           c.n_outliers, 100.0 * c.n_outliers / DIM, c.com_absmax, c.top1_median, c.tail_median);
    printf("files in %s; timings: best of %d except compression and writes (once)\n\n", g_dir, reps);

    /* ---------------------------------------------------- compression table */
    dset dsets[3] = {
        {"com", (const uint8_t *)c.com, (size_t)c.n_atoms * DIM * 2, 2},
        {"topk_ids", (const uint8_t *)c.ids, (size_t)c.n_atoms * TOPK * 4, 4},
        {"topk_logprob", (const uint8_t *)c.lp, (size_t)c.n_atoms * TOPK * 2, 2},
    };
    /* W: the writer's default level; the peers and the end-to-end shard
     * use it, the table compares it with the other */
    cache_write_opts def;
    cache_write_opts_default(&def);
    const int W = def.zstd_level;
    const int levels[2] = {W == 1 ? 3 : 1, W};
    cstat cs[3][2][2]; /* [dataset][level][shuffle] */
    zset kept[2][3];   /* level-W chunks [shuffle][dataset], for the peers */
    for (int k = 0; k < 3; k++)
        for (int l = 0; l < 2; l++)
            for (int s = 0; s < 2; s++)
                cs[k][l][s] = measure_dset(&dsets[k], levels[l], s, reps, l == 1 ? &kept[s][k] : NULL);
    printf("compression: %u KiB chunks, 1 thread (dec = zstd + unshuffle as the reader does; "
           "zstd = ZSTD_decompressDCtx alone)\n", CHUNK >> 10);
    printf("%-13s %5s  %-13s %6s  %10s  %10s  %10s\n", "block", "level", "filters", "ratio",
           "comp MB/s", "dec MB/s", "zstd MB/s");
    static const char *const rows[4] = {"com", "topk", "  topk_ids", "  topk_logprob"};
    for (int row = 0; row < 4; row++)
        for (int l = 0; l < 2; l++)
            for (int s = 0; s < 2; s++) {
                cstat x = row == 0 ? cs[0][l][s] : row == 1 ? cstat_add(cs[1][l][s], cs[2][l][s])
                                                            : cs[row - 1][l][s];
                printf("%-13s %5d  %-13s %6.3f  %10.0f  %10.0f  %10.0f\n", rows[row], levels[l],
                       s ? "shuffle+zstd" : "zstd", ratio_of(x), mbps(x.raw, x.comp_s),
                       mbps(x.raw, x.dec_s), mbps(x.raw, x.zdec_s));
            }
    /* winners at level W (the writer's default level) */
    cstat com3[2] = {cs[0][1][0], cs[0][1][1]};
    cstat topk3[2] = {cstat_add(cs[1][1][0], cs[2][1][0]), cstat_add(cs[1][1][1], cs[2][1][1])};
    int com_win = ratio_of(com3[1]) > ratio_of(com3[0]);
    int topk_win = ratio_of(topk3[1]) > ratio_of(topk3[0]);
    printf("level %d, smaller file: com -> %s (ratio %.3f vs %.3f, dec %.0f vs %.0f MB/s); "
           "topk -> %s (ratio %.3f vs %.3f, dec %.0f vs %.0f MB/s)\n\n",
           W, com_win ? "shuffle+zstd" : "zstd", ratio_of(com3[com_win]), ratio_of(com3[!com_win]),
           mbps(com3[com_win].raw, com3[com_win].dec_s), mbps(com3[!com_win].raw, com3[!com_win].dec_s),
           topk_win ? "shuffle+zstd" : "zstd", ratio_of(topk3[topk_win]), ratio_of(topk3[!topk_win]),
           mbps(topk3[topk_win].raw, topk3[topk_win].dec_s),
           mbps(topk3[!topk_win].raw, topk3[!topk_win].dec_s));

    /* ---------------------------------------------------- peers */
    uint8_t *ma = xmalloc(MEMCPY_BYTES), *mb = xmalloc(MEMCPY_BYTES);
    memset(ma, 0x5a, MEMCPY_BYTES);
    memset(mb, 0xa5, MEMCPY_BYTES); /* fault every page in before timing */
    double memcpy1 = memcpy_mbps(mb, ma, MEMCPY_BYTES, 1, reps);
    double memcpy2 = memcpy_mbps(mb, ma, MEMCPY_BYTES, 2, reps);
    free(ma);
    free(mb);
    /* raw zstd, 1 thread, on the level-3 chunks of com + top-k: what one
     * core can decode at best; bounds the 1-thread reader */
    double zdec1[2], zdec2[2], comp1[2];
    for (int s = 0; s < 2; s++) {
        cstat all = cstat_add(cs[0][1][s], cstat_add(cs[1][1][s], cs[2][1][s]));
        comp1[s] = mbps(all.raw, all.comp_s);
        zdec1[s] = zstd_peer(kept[s], 3, 1, reps);
        zdec2[s] = zstd_peer(kept[s], 3, 2, reps);
        for (int k = 0; k < 3; k++) { free(kept[s][k].z); free(kept[s][k].zn); }
    }
    printf("peers (same run)\n");
    printf("  memcpy 256 MiB, 1 thread                        %8.0f MB/s\n", memcpy1);
    printf("  memcpy 256 MiB, 2 threads                       %8.0f MB/s\n", memcpy2);
    printf("  zstd decompress, 1 thread, level-%d com+topk     %8.0f MB/s (zstd), %.0f MB/s (shuffle+zstd)\n",
           W, zdec1[0], zdec1[1]);
    printf("  zstd decompress, 2 threads, level-%d com+topk    %8.0f MB/s (zstd), %.0f MB/s (shuffle+zstd)\n",
           W, zdec2[0], zdec2[1]);
    printf("  zstd compress, 1 thread, level-%d com+topk       %8.0f MB/s (zstd), %.0f MB/s (shuffle+zstd)\n\n",
           W, comp1[0], comp1[1]);

    /* ---------------------------------------------------- end to end */
    e2e res[2];
    for (int s = 0; s < 2; s++) {
        write_shard(g_paths[s], &c, s, &res[s]);
        for (int t = 0; t < 2; t++) read_shard(g_paths[s], &c, want, t + 1, reps, &res[s]);
        unlink(g_paths[s]);
    }
    printf("end to end: cache_writer (zstd %d) -> shard -> cache_iter over all documents\n", W);
    printf("%-13s %10s %8s %8s %6s | %7s %7s %9s | %7s %7s %9s\n", "", "write", "finish",
           "file", "", "read", "wait", "CPU", "read", "wait", "CPU");
    printf("%-13s %10s %8s %8s %6s | %7s %7s %9s | %7s %7s %9s\n", "filters", "MB/s", "s", "MB",
           "ratio", "1t MB/s", "s", "usr+sys", "2t MB/s", "s", "usr+sys");
    double read2[2], read1[2], write_mb[2];
    for (int s = 0; s < 2; s++) {
        read1[s] = mbps(payload, res[s].read_s[0]);
        read2[s] = mbps(payload, res[s].read_s[1]);
        write_mb[s] = mbps(payload, res[s].write_s);
        char cpu[2][32];
        for (int t = 0; t < 2; t++)
            snprintf(cpu[t], sizeof cpu[t], "%.2f+%.2f", res[s].user_s[t], res[s].sys_s[t]);
        printf("%-13s %10.0f %8.2f %8.1f %6.3f | %7.0f %7.3f %9s | %7.0f %7.3f %9s\n",
               s ? "shuffle+zstd" : "zstd", write_mb[s], res[s].finish_s, res[s].file_bytes / 1e6,
               (double)payload / (double)res[s].file_bytes, read1[s], res[s].wait_s[0], cpu[0],
               read2[s], res[s].wait_s[1], cpu[1]);
    }
    printf("  write: cache_writer_open .. finish (finish = last chunks, fsync, rename); read: wall\n"
           "  time of iter_begin .. iter_end of the best repetition, wait = cache_iter_wait_seconds,\n"
           "  CPU = process user+sys seconds in it (busy cores = CPU / read time)\n\n");

    printf("ratios against the peers (read1/2 = reader with 1/2 threads)\n");
    printf("%-13s %12s %12s %12s %12s %12s %14s\n", "filters", "read2/zstd1", "read2/zstd2",
           "read2/memcpy", "read2/read1", "read1/zstd1", "write/compress");
    for (int s = 0; s < 2; s++)
        printf("%-13s %12.3f %12.3f %12.3f %12.3f %12.3f %14.3f\n", s ? "shuffle+zstd" : "zstd",
               read2[s] / zdec1[s], read2[s] / zdec2[s], read2[s] / memcpy1, read2[s] / read1[s],
               read1[s] / zdec1[s], write_mb[s] / comp1[s]);
    printf("  (zstd1/2 = raw zstd decompression with 1/2 threads, memcpy = 1 thread, compress =\n"
           "   shuffle? + zstd at the writer's level with 1 thread, all on the same data in this run)\n");
    int best = read2[1] >= read2[0];
    int met = read2[best] >= 1000.0;
    printf("target: reader with 2 threads >= 1000 MB/s of payload: %s (%.0f MB/s with %s)\n",
           met ? "met" : "NOT met", read2[best], best ? "shuffle+zstd" : "zstd");

    /* ---------------------------------------------------- JSON */
    printf("BENCH_JSON {\"bench\":\"cache\",\"atoms\":%lld,\"docs\":%lld,\"d\":%d,\"k\":%d,"
           "\"vocab\":%d,\"reps\":%d,\"payload_bytes\":%" PRIu64 ",\"text_bytes\":%lld,"
           "\"gen_s\":%.3f,\"data\":{\"outlier_channels\":%d,\"com_absmax\":%.3f,"
           "\"top1_median\":%.4f,\"tail_median\":%.4f},\"compression\":[",
           (long long)c.n_atoms, (long long)c.n_docs, DIM, TOPK, VOCAB, reps, payload,
           (long long)c.n_text, gen_s, c.n_outliers, c.com_absmax, c.top1_median, c.tail_median);
    static const char *const jrows[4] = {"com", "topk", "topk_ids", "topk_logprob"};
    int first = 1;
    for (int row = 0; row < 4; row++)
        for (int l = 0; l < 2; l++)
            for (int s = 0; s < 2; s++) {
                cstat x = row == 0 ? cs[0][l][s] : row == 1 ? cstat_add(cs[1][l][s], cs[2][l][s])
                                                            : cs[row - 1][l][s];
                printf("%s{\"block\":\"%s\",\"level\":%d,\"shuffle\":%d,\"raw_bytes\":%" PRIu64
                       ",\"stored_bytes\":%" PRIu64 ",\"ratio\":%.4f,\"comp_mbps\":%.1f,"
                       "\"dec_mbps\":%.1f,\"zstd_dec_mbps\":%.1f}",
                       first ? "" : ",", jrows[row], levels[l], s, x.raw, x.stored, ratio_of(x),
                       mbps(x.raw, x.comp_s), mbps(x.raw, x.dec_s), mbps(x.raw, x.zdec_s));
                first = 0;
            }
    printf("],\"winner_level3\":{\"com\":\"%s\",\"topk\":\"%s\"},",
           com_win ? "shuffle+zstd" : "zstd", topk_win ? "shuffle+zstd" : "zstd");
    printf("\"peers\":{\"memcpy_1t_mbps\":%.1f,\"memcpy_2t_mbps\":%.1f,"
           "\"zstd_dec_1t_mbps\":{\"zstd\":%.1f,\"shuffle+zstd\":%.1f},"
           "\"zstd_dec_2t_mbps\":{\"zstd\":%.1f,\"shuffle+zstd\":%.1f},"
           "\"zstd_comp_1t_mbps\":{\"zstd\":%.1f,\"shuffle+zstd\":%.1f}},\"shards\":[",
           memcpy1, memcpy2, zdec1[0], zdec1[1], zdec2[0], zdec2[1], comp1[0], comp1[1]);
    for (int s = 0; s < 2; s++)
        printf("%s{\"filters\":\"%s\",\"level\":3,\"write_s\":%.3f,\"finish_s\":%.3f,"
               "\"write_mbps\":%.1f,\"file_bytes\":%" PRIu64 ",\"ratio\":%.4f,"
               "\"read_1t_s\":%.4f,\"read_1t_mbps\":%.1f,\"wait_1t_s\":%.4f,"
               "\"user_1t_s\":%.3f,\"sys_1t_s\":%.3f,"
               "\"read_2t_s\":%.4f,\"read_2t_mbps\":%.1f,\"wait_2t_s\":%.4f,"
               "\"user_2t_s\":%.3f,\"sys_2t_s\":%.3f,"
               "\"read2_over_zstd1\":%.4f,\"read2_over_zstd2\":%.4f,"
               "\"read2_over_memcpy1\":%.4f,\"read2_over_read1\":%.4f,"
               "\"read1_over_zstd1\":%.4f,\"write_over_compress1\":%.4f}",
               s ? "," : "", s ? "shuffle+zstd" : "zstd", res[s].write_s, res[s].finish_s,
               mbps(payload, res[s].write_s), res[s].file_bytes,
               (double)payload / (double)res[s].file_bytes, res[s].read_s[0], read1[s],
               res[s].wait_s[0], res[s].user_s[0], res[s].sys_s[0], res[s].read_s[1], read2[s],
               res[s].wait_s[1], res[s].user_s[1], res[s].sys_s[1], read2[s] / zdec1[s],
               read2[s] / zdec2[s], read2[s] / memcpy1, read2[s] / read1[s], read1[s] / zdec1[s],
               write_mb[s] / comp1[s]);
    printf("],\"target_read_2t_mbps\":1000,\"target_met\":%s,\"best_read_2t_mbps\":%.1f}\n",
           met ? "true" : "false", read2[best]);

    cleanup();
    for (int s = 0; s < 2; s++) free(g_paths[s]);
    corpus_free(&c);
    return 0;
}
