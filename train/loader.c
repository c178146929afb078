/*
 * loader.c - a teacher cache streamed in shuffled chunks with a prefetch
 * thread (contract: loader.h).
 */
#include "loader.h"

#include <cJSON.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

typedef struct { int shard; int64_t first, end; } chunk;

/* One chunk's documents, deep copies in growable arrays: those of this
 * rank's part (all of them when the loader is not split). */
typedef struct {
    int64_t n_total;                    /* documents in the chunk */
    int64_t n;                          /* documents decoded (this rank's) */
    int64_t *doc_text, *doc_atom;       /* (n+1) offsets */
    int64_t *record, *loss_start;       /* (n) */
    char *text; size_t cap_text;
    int32_t *start, *end, *ids; float *mass, *com, *lp, *tail;
    size_t cap_atoms;
    size_t cap_docs;
    char err[512];
    int failed;
} chunkbuf;

struct ldr {
    char *dir;                  /* the cache folder (ldr_head_open) */
    int n_shards;
    cache_reader **r;
    chunk *chunks;
    int64_t n_chunks, n_docs;
    int64_t *order;             /* (n_chunks) this epoch's order */
    int slot[LDR_MAX_LAYERS], ns; /* the CoM slots handed out, in the caller's order */
    int d, k;
    cache_dtype dt;
    tok_tokenizer *tt;
    uint64_t seed;
    int64_t epoch, ci, di;      /* position: chunk order[ci], document di in it */
    int64_t bi;                 /* next decoded document of buf[cur] */
    /* part (ldr_set_part): document g of the stream belongs to this rank
     * when (g / block) % world == rank; g counts from the last seek */
    int rank, world;
    int64_t block, g, g_chunk;  /* g_chunk: g of the current chunk's first document */
    chunkbuf buf[2];
    /* documents handed out since ldr_recycle: each a copy in its own block,
     * because the chunk buffer it came from is refilled by the prefetch
     * as soon as the stream moves on to the next chunk */
    struct { void *mem; size_t cap; } *out;
    int n_out, cap_out;
    int cur;                    /* buf[cur] is being consumed */
    /* prefetch */
    pthread_t th;
    int th_started;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int job;                    /* -1 none; else chunk index to fill into buf[!cur] */
    int job_done, quit;
    int64_t job_epoch, job_ci, job_g0;
    double wait_s;
};

static void buf_free(chunkbuf *b) {
    free(b->doc_text); free(b->doc_atom); free(b->record); free(b->loss_start); free(b->text);
    free(b->start); free(b->end); free(b->ids); free(b->mass); free(b->com); free(b->lp); free(b->tail);
    memset(b, 0, sizeof *b);
}

/* 1 when document g of the stream is this rank's. */
static int mine(const ldr *l, int64_t g) {
    int64_t p = (int64_t)l->world * l->block, q = ((g % p) + p) % p;
    return q / l->block == l->rank;
}

/* Decodes this rank's documents of chunk c, whose first document is g0 of
 * the stream, into b: each contiguous run of them is read on its own, so
 * ranks read disjoint documents. */
static int fill(ldr *l, chunkbuf *b, const chunk *c, int64_t g0) {
    cache_reader *r = l->r[c->shard];
    int64_t n = c->end - c->first;
    b->n = 0;
    b->n_total = n;
    b->failed = 0;
    if ((size_t)n + 1 > b->cap_docs) {
        size_t cap = (size_t)n + 1;
        int64_t *a = realloc(b->doc_text, cap * 8), *a2 = realloc(b->doc_atom, cap * 8);
        if (a) b->doc_text = a;
        if (a2) b->doc_atom = a2;
        int64_t *a3 = realloc(b->record, cap * 8), *a4 = realloc(b->loss_start, cap * 8);
        if (a3) b->record = a3;
        if (a4) b->loss_start = a4;
        if (!a || !a2 || !a3 || !a4) goto oom;
        b->cap_docs = cap;
    }
    b->doc_text[0] = b->doc_atom[0] = 0;
    for (int64_t j0 = 0; j0 < n;) {
    if (!mine(l, g0 + j0)) { j0++; continue; }
    int64_t j1 = j0 + 1;
    while (j1 < n && mine(l, g0 + j1)) j1++;
    if (cache_iter_begin(r, c->first + j0, c->first + j1, 1)) goto bad;
    j0 = j1;
    cache_doc d;
    int rc;
    while ((rc = cache_iter_next(r, &d)) == 1) {
        int64_t i = b->n, t0 = b->doc_text[i], a0 = b->doc_atom[i], A = d.n_atoms;
        if ((size_t)(t0 + d.text_len) > b->cap_text) {
            size_t cap = (size_t)(t0 + d.text_len) * 2 + 4096;
            char *t = realloc(b->text, cap);
            if (!t) goto oom_iter;
            b->text = t;
            b->cap_text = cap;
        }
        if ((size_t)(a0 + A) > b->cap_atoms) {
            /* k = 0 (a cache without top-k) keeps one unused column: no realloc(p, 0) */
            size_t cap = (size_t)(a0 + A) * 2 + 256, d_ = (size_t)l->d * l->ns, k = (size_t)(l->k ? l->k : 1);
            int32_t *s = realloc(b->start, cap * 4), *e = realloc(b->end, cap * 4), *ids = realloc(b->ids, cap * k * 4);
            if (s) b->start = s;
            if (e) b->end = e;
            if (ids) b->ids = ids;
            float *m = realloc(b->mass, cap * 4), *cm = realloc(b->com, cap * d_ * 4), *lp = realloc(b->lp, cap * k * 4),
                  *tl = realloc(b->tail, cap * 4);
            if (m) b->mass = m;
            if (cm) b->com = cm;
            if (lp) b->lp = lp;
            if (tl) b->tail = tl;
            if (!s || !e || !ids || !m || !cm || !lp || !tl) goto oom_iter;
            b->cap_atoms = cap;
        }
        memcpy(b->text + t0, d.text, (size_t)d.text_len);
        memcpy(b->start + a0, d.atom_start, (size_t)A * 4);
        memcpy(b->end + a0, d.atom_end, (size_t)A * 4);
        memcpy(b->mass + a0, d.mass, (size_t)A * 4);
        memcpy(b->tail + a0, d.tail_mass, (size_t)A * 4);
        memcpy(b->ids + a0 * l->k, d.topk_ids, (size_t)A * l->k * 4);
        for (int64_t j = 0; j < A * l->k; j++) b->lp[a0 * l->k + j] = sra_f16_to_f32(d.topk_logprob[j]);
        for (int q = 0; q < l->ns; q++) { /* the chunk keeps slot-major blocks per document: (ns, A, d) */
            const void *src = d.com[l->slot[q]];
            size_t nn = (size_t)A * l->d;
            float *dst = b->com + a0 * l->d * l->ns + q * nn;
            if (l->dt == CACHE_F32) memcpy(dst, src, nn * 4);
            else if (l->dt == CACHE_F16) for (size_t j = 0; j < nn; j++) dst[j] = sra_f16_to_f32(((const uint16_t *)src)[j]);
            else for (size_t j = 0; j < nn; j++) dst[j] = sra_bf16_to_f32(((const uint16_t *)src)[j]);
        }
        b->record[i] = d.record;
        b->loss_start[i] = d.loss_start;
        b->doc_text[i + 1] = t0 + d.text_len;
        b->doc_atom[i + 1] = a0 + A;
        b->n++;
    }
    cache_iter_end(r);
    if (rc < 0) goto bad;
    }
    return 0;
oom_iter:
    cache_iter_end(r);
oom:
    snprintf(b->err, sizeof b->err, "out of memory reading a chunk of %s", cache_path(r));
    b->failed = 1;
    return -1;
bad:
    snprintf(b->err, sizeof b->err, "%s", cache_errmsg(r));
    b->failed = 1;
    return -1;
}

/* The order of the chunks in an epoch: a Fisher-Yates shuffle seeded by
 * (seed, epoch), so any epoch's order can be made again alone. */
static void epoch_order(uint64_t seed, int64_t epoch, int64_t *o, int64_t n) {
    uint64_t s = seed ^ (0xD1B54A32D192ED03ull * (uint64_t)(epoch + 1));
    for (int64_t i = 0; i < n; i++) o[i] = i;
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = (int64_t)(sra_splitmix64(&s) % (uint64_t)(i + 1));
        int64_t t = o[i]; o[i] = o[j]; o[j] = t;
    }
}

static void make_order(ldr *l, int64_t epoch) { epoch_order(l->seed, epoch, l->order, l->n_chunks); }

/* The chunk at position (epoch, ci), computing that epoch's order when it
 * is not the current one (prefetch across an epoch boundary). */
static chunk chunk_at(ldr *l, int64_t epoch, int64_t ci) {
    if (epoch == l->epoch) return l->chunks[l->order[ci]];
    int64_t *o = malloc((size_t)l->n_chunks * sizeof *o);
    if (!o) return l->chunks[0];
    epoch_order(l->seed, epoch, o, l->n_chunks);
    chunk c = l->chunks[o[ci]];
    free(o);
    return c;
}

static void *prefetch_main(void *arg) {
    ldr *l = arg;
    pthread_mutex_lock(&l->mu);
    for (;;) {
        while (l->job < 0 && !l->quit) pthread_cond_wait(&l->cv, &l->mu);
        if (l->quit) break;
        int64_t ep = l->job_epoch, ci = l->job_ci, g0 = l->job_g0;
        chunkbuf *b = &l->buf[l->job];
        pthread_mutex_unlock(&l->mu);
        chunk c = chunk_at(l, ep, ci);
        fill(l, b, &c, g0);
        pthread_mutex_lock(&l->mu);
        l->job = -1;
        l->job_done = 1;
        pthread_cond_broadcast(&l->cv);
    }
    pthread_mutex_unlock(&l->mu);
    return NULL;
}

/* The position after (epoch, ci). */
static void next_pos(const ldr *l, int64_t *ep, int64_t *ci) {
    if (++*ci == l->n_chunks) { *ci = 0; ++*ep; }
}

static void start_prefetch(ldr *l) {
    int64_t ep = l->epoch, ci = l->ci;
    next_pos(l, &ep, &ci);
    pthread_mutex_lock(&l->mu);
    l->job_epoch = ep;
    l->job_ci = ci;
    l->job_g0 = l->g_chunk + l->buf[l->cur].n_total;
    l->job_done = 0;
    l->job = !l->cur;
    pthread_cond_broadcast(&l->cv);
    pthread_mutex_unlock(&l->mu);
}

int ldr_open(ldr **out, const char *dir, const int32_t *layers, int n_layers, uint64_t seed, char *err,
             size_t errlen) {
    *out = NULL;
    char path[4200];
    snprintf(path, sizeof path, "%s/manifest.json", dir);
    size_t n;
    char *text = sra_read_file(path, &n);
    if (!text) {
        snprintf(err, errlen, "%s: cannot read (%s): a cache folder gets its manifest from sra-extract (or "
                 "'sra-extract --finalize %s' after sharded runs)", path, strerror(errno), dir);
        return -1;
    }
    cJSON *man = cJSON_ParseWithLength(text, n);
    free(text);
    const cJSON *complete = man ? cJSON_GetObjectItemCaseSensitive(man, "complete") : NULL;
    const cJSON *shards = man ? cJSON_GetObjectItemCaseSensitive(man, "shards") : NULL;
    if (!cJSON_IsArray(shards) || !cJSON_GetArraySize(shards)) {
        snprintf(err, errlen, "%s: not an sra-extract manifest (no \"shards\")", path);
        cJSON_Delete(man);
        return -1;
    }
    if (!cJSON_IsTrue(complete)) {
        snprintf(err, errlen, "%s: the cache is incomplete (\"complete\": false): make the missing shards, then "
                 "'sra-extract --finalize %s'", path, dir);
        cJSON_Delete(man);
        return -1;
    }
    ldr *l = calloc(1, sizeof *l);
    if (!l) { cJSON_Delete(man); snprintf(err, errlen, "out of memory"); return -1; }
    l->seed = seed;
    l->dir = strdup(dir);
    l->job = -1;
    l->rank = 0;
    l->world = 1;
    l->block = 1;
    pthread_mutex_init(&l->mu, NULL);
    pthread_cond_init(&l->cv, NULL);
    l->n_shards = cJSON_GetArraySize(shards);
    l->r = calloc((size_t)l->n_shards, sizeof *l->r);
    int rc = l->r && l->dir ? 0 : -1;
    if (rc) snprintf(err, errlen, "out of memory");
    const cache_meta *m0 = NULL;
    int i = 0;
    for (const cJSON *s = shards->child; !rc && s; s = s->next, i++) {
        const cJSON *f = cJSON_GetObjectItemCaseSensitive(s, "file");
        if (!cJSON_IsString(f) || strchr(f->valuestring, '/')) {
            snprintf(err, errlen, "%s: shard %d has no valid \"file\"", path, i);
            rc = -1;
            break;
        }
        char sp[4400];
        snprintf(sp, sizeof sp, "%s/%s", dir, f->valuestring);
        if (cache_open(&l->r[i], sp)) {
            snprintf(err, errlen, "%s", l->r[i] ? cache_errmsg(l->r[i]) : "out of memory");
            rc = -1;
            break;
        }
        const cache_meta *m = cache_meta_get(l->r[i]);
        if (!m0) m0 = m;
        else if (strcmp(m->atoms, m0->atoms) || strcmp(m->mass, m0->mass) || m->hidden_size != m0->hidden_size ||
                 m->topk != m0->topk || m->n_layers != m0->n_layers ||
                 memcmp(m->layers, m0->layers, sizeof m->layers) || m->hidden_dtype != m0->hidden_dtype) {
            snprintf(err, errlen, "%s: atoms, mass, layers, hidden size or top-k differ from %s", sp,
                     cache_path(l->r[0]));
            rc = -1;
        }
        l->n_docs += cache_n_docs(l->r[i]);
    }
    cJSON_Delete(man);
    if (!rc) {
        l->ns = n_layers < 1 ? 1 : n_layers > LDR_MAX_LAYERS ? LDR_MAX_LAYERS : n_layers;
        for (int q = 0; q < l->ns && !rc; q++) {
            int32_t layer = n_layers < 1 ? CACHE_LAYER_FINAL : layers[q];
            l->slot[q] = -1;
            for (int j = 0; j < m0->n_layers; j++) if (m0->layers[j] == layer) l->slot[q] = j;
            if (l->slot[q] < 0) {
                snprintf(err, errlen, "%s: no stored CoM for layer %d (the cache has layers", cache_path(l->r[0]),
                         layer);
                for (int j = 0; j < m0->n_layers; j++)
                    snprintf(err + strlen(err), errlen - strlen(err), "%s %d", j ? "," : "", m0->layers[j]);
                snprintf(err + strlen(err), errlen - strlen(err), "; -1 = final norm; sra-extract --layers stores "
                         "more)");
                rc = -1;
            }
        }
    }
    if (!rc && cache_read_blobs(l->r[0])) {
        snprintf(err, errlen, "%s", cache_errmsg(l->r[0]));
        rc = -1;
    }
    if (!rc && (tok_load_json(&l->tt, (const char *)m0->teacher_tokenizer_json, m0->teacher_tokenizer_len,
                              "teacher tokenizer (in the cache)"))) {
        snprintf(err, errlen, "%s: the stored teacher tokenizer does not load: %s", cache_path(l->r[0]),
                 l->tt ? tok_errmsg(l->tt) : "out of memory");
        rc = -1;
    }
    if (!rc) {
        l->d = (int)m0->hidden_size;
        l->k = (int)m0->topk;
        l->dt = m0->hidden_dtype;
        for (int s = 0; s < l->n_shards; s++) l->n_chunks += (cache_n_docs(l->r[s]) + LDR_CHUNK_DOCS - 1) / LDR_CHUNK_DOCS;
        l->chunks = malloc((size_t)(l->n_chunks ? l->n_chunks : 1) * sizeof *l->chunks);
        l->order = malloc((size_t)(l->n_chunks ? l->n_chunks : 1) * sizeof *l->order);
        if (!l->chunks || !l->order) { snprintf(err, errlen, "out of memory"); rc = -1; }
        if (!rc && !l->n_docs) { snprintf(err, errlen, "%s: the cache holds no document", dir); rc = -1; }
    }
    if (!rc) {
        int64_t c = 0;
        for (int s = 0; s < l->n_shards; s++)
            for (int64_t f = 0; f < cache_n_docs(l->r[s]); f += LDR_CHUNK_DOCS) {
                int64_t e = f + LDR_CHUNK_DOCS < cache_n_docs(l->r[s]) ? f + LDR_CHUNK_DOCS : cache_n_docs(l->r[s]);
                l->chunks[c++] = (chunk){s, f, e};
            }
        if (pthread_create(&l->th, NULL, prefetch_main, l) == 0) l->th_started = 1;
        else { snprintf(err, errlen, "cannot start the prefetch thread"); rc = -1; }
    }
    if (!rc) {
        int64_t pos[3] = {0, 0, 0};
        rc = ldr_seek(l, pos, err, errlen);
    }
    if (rc) { ldr_close(l); return -1; }
    *out = l;
    return 0;
}

static void wait_job(ldr *l) {
    pthread_mutex_lock(&l->mu);
    while (l->job >= 0) pthread_cond_wait(&l->cv, &l->mu);
    pthread_mutex_unlock(&l->mu);
}

void ldr_close(ldr *l) {
    if (!l) return;
    if (l->th_started) {
        pthread_mutex_lock(&l->mu);
        l->quit = 1;
        pthread_cond_broadcast(&l->cv);
        pthread_mutex_unlock(&l->mu);
        pthread_join(l->th, NULL);
    }
    for (int s = 0; l->r && s < l->n_shards; s++) cache_close(l->r[s]);
    free(l->r);
    free(l->chunks);
    free(l->order);
    buf_free(&l->buf[0]);
    buf_free(&l->buf[1]);
    for (int i = 0; i < l->cap_out; i++) free(l->out[i].mem);
    free(l->out);
    tok_free(l->tt);
    free(l->dir);
    pthread_mutex_destroy(&l->mu);
    pthread_cond_destroy(&l->cv);
    free(l);
}

const cache_meta *ldr_meta(const ldr *l) { return cache_meta_get(l->r[0]); }

int ldr_head_open(const ldr *l, cache_head **h, char *err, size_t errlen) {
    int rc = cache_head_open(h, l->dir);
    if (rc) {
        snprintf(err, errlen, "%s", cache_head_errmsg(*h));
        return rc;
    }
    const cache_meta *m = ldr_meta(l);
    if (cache_head_vocab(*h) != m->teacher_vocab_size || cache_head_dim(*h) != m->hidden_size) {
        snprintf(err, errlen, "%s: shape [%lld, %lld], but the shards say teacher_vocab_size %lld, hidden_size %lld",
                 cache_head_path(*h), (long long)cache_head_vocab(*h), (long long)cache_head_dim(*h),
                 (long long)m->teacher_vocab_size, (long long)m->hidden_size);
        return SRA_E_FORMAT;
    }
    return 0;
}
const tok_tokenizer *ldr_teacher_tokenizer(const ldr *l) { return l->tt; }
int64_t ldr_n_docs(const ldr *l) { return l->n_docs; }
double ldr_wait_seconds(const ldr *l) { return l->wait_s; }

void ldr_tell(const ldr *l, int64_t pos[3]) {
    pos[0] = l->epoch;
    pos[1] = l->ci;
    pos[2] = l->di;
}

int ldr_seek(ldr *l, const int64_t pos[3], char *err, size_t errlen) {
    if (pos[1] < 0 || pos[1] >= l->n_chunks || pos[0] < 0 || pos[2] < 0) {
        snprintf(err, errlen, "loader position (%lld, %lld, %lld) is outside the cache (%lld chunks): a checkpoint "
                 "of another cache?", (long long)pos[0], (long long)pos[1], (long long)pos[2], (long long)l->n_chunks);
        return -1;
    }
    wait_job(l);
    l->epoch = pos[0];
    l->ci = pos[1];
    make_order(l, l->epoch);
    chunk c = l->chunks[l->order[l->ci]];
    if (pos[2] > c.end - c.first) {
        snprintf(err, errlen, "loader position: document %lld past its chunk", (long long)pos[2]);
        return -1;
    }
    /* the part's phase starts at the sought document */
    l->g = 0;
    l->g_chunk = -pos[2];
    if (fill(l, &l->buf[l->cur], &c, l->g_chunk)) { snprintf(err, errlen, "%s", l->buf[l->cur].err); return -1; }
    l->di = pos[2];
    l->bi = 0;
    for (int64_t j = 0; j < pos[2]; j++) l->bi += mine(l, l->g_chunk + j);
    start_prefetch(l);
    return 0;
}

int ldr_set_part(ldr *l, int rank, int world, int64_t block, char *err, size_t errlen) {
    if (world < 1 || rank < 0 || rank >= world || block < 1) {
        snprintf(err, errlen, "loader part %d of %d, block %lld: need 0 <= rank < world and block >= 1", rank, world,
                 (long long)block);
        return -1;
    }
    int64_t pos[3];
    ldr_tell(l, pos);
    wait_job(l);
    l->rank = rank;
    l->world = world;
    l->block = block;
    return ldr_seek(l, pos, err, errlen);
}

/* Moves to the next chunk (the prefetched one). */
static int next_chunk(ldr *l, char *err, size_t errlen) {
    double t0 = sra_now();
    wait_job(l);
    l->wait_s += sra_now() - t0;
    l->g_chunk += l->buf[l->cur].n_total;
    next_pos(l, &l->epoch, &l->ci);
    if (l->ci == 0) make_order(l, l->epoch);
    l->cur = !l->cur;
    l->di = 0;
    l->bi = 0;
    if (l->buf[l->cur].failed) { snprintf(err, errlen, "%s", l->buf[l->cur].err); return -1; }
    start_prefetch(l);
    return 0;
}

int ldr_next(ldr *l, ldr_doc *d, char *err, size_t errlen) {
    for (;;) {
        while (l->di >= l->buf[l->cur].n_total)
            if (next_chunk(l, err, errlen)) return -1;
        int take = mine(l, l->g);
        l->di++;
        l->g++;
        if (take) break;
    }
    chunkbuf *b = &l->buf[l->cur];
    int64_t i = l->bi++, a0 = b->doc_atom[i], A = b->doc_atom[i + 1] - a0, len = b->doc_text[i + 1] - b->doc_text[i];
    /* the copy: (A) start, end, mass, tail; (A, d) com; (A, k) ids, lp; text */
    size_t need = (size_t)A * (16 + 4 * (size_t)l->d * l->ns + 8 * (size_t)l->k) + (size_t)len + 1;
    if (l->n_out == l->cap_out) {
        int cap = l->cap_out ? 2 * l->cap_out : 16;
        void *o = realloc(l->out, (size_t)cap * sizeof *l->out);
        if (!o) { snprintf(err, errlen, "out of memory"); return -1; }
        l->out = o;
        memset(l->out + l->cap_out, 0, (size_t)(cap - l->cap_out) * sizeof *l->out);
        l->cap_out = cap;
    }
    if (l->out[l->n_out].cap < need) {
        void *m = realloc(l->out[l->n_out].mem, need);
        if (!m) { snprintf(err, errlen, "out of memory"); return -1; }
        l->out[l->n_out].mem = m;
        l->out[l->n_out].cap = need;
    }
    char *p = l->out[l->n_out++].mem;
    size_t nA = (size_t)A * 4, nd = nA * (size_t)l->d * l->ns, nk = nA * (size_t)l->k;
    int32_t *st = memcpy(p, b->start + a0, nA), *en = memcpy(p + nA, b->end + a0, nA);
    float *ma = memcpy(p + 2 * nA, b->mass + a0, nA), *ta = memcpy(p + 3 * nA, b->tail + a0, nA);
    float *co = memcpy(p + 4 * nA, b->com + a0 * l->d * l->ns, nd);
    int32_t *ids = memcpy(p + 4 * nA + nd, b->ids + a0 * l->k, nk);
    float *lp = memcpy(p + 4 * nA + nd + nk, b->lp + a0 * l->k, nk);
    char *tx = memcpy(p + 4 * nA + nd + 2 * nk, b->text + b->doc_text[i], (size_t)len);
    d->record = b->record[i];
    d->text = tx;
    d->len = len;
    d->loss_start = b->loss_start[i];
    d->A = A;
    d->k = l->k;
    d->start = st;
    d->end = en;
    d->mass = ma;
    for (int q = 0; q < LDR_MAX_LAYERS; q++) d->coms[q] = q < l->ns ? co + (size_t)q * A * l->d : NULL;
    d->com = co;
    d->topk_ids = ids;
    d->topk_lp = lp;
    d->tail = ta;
    return 0;
}

void ldr_recycle(ldr *l) { l->n_out = 0; }

int ldr_end_step(ldr *l, char *err, size_t errlen) {
    int64_t p = (int64_t)l->world * l->block;
    while (((l->g % p) + p) % p != 0) {
        while (l->di >= l->buf[l->cur].n_total)
            if (next_chunk(l, err, errlen)) return -1;
        l->di++;
        l->g++;
    }
    return 0;
}
