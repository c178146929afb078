/*
 * cache_read.c - the validating cache reader with read-ahead (cache.h).
 *
 * Reading model. Documents are grouped into blocks of consecutive documents
 * (about 8 MiB of payload, at least one chunk of every per-atom dataset).
 * A block is decoded into its own buffers by one worker: for every dataset
 * the worker fetches the raw chunks covering the block's rows with
 * H5Dread_chunk under the process-wide HDF5 lock, then - outside the lock -
 * runs zstd and the inverse byte shuffle straight into the block. Each
 * worker remembers the last chunk it decoded per dataset, so a chunk that
 * straddles two blocks is decoded at most once per worker. Datasets whose
 * layout we do not recognise (another chunk shape or filter, as an
 * arbitrary HDF5 writer may choose) fall back to H5Dread of a hyperslab,
 * under the lock: slower, same values.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cache_internal.h"
#include "zstd_filter.h"

#define MAX_THREADS 64
#define BLOCK_TARGET_BYTES (8u << 20)

typedef struct {
    hid_t id;
    char name[64];
    elem_type et;
    size_t esize;
    int64_t rows, cols;
    size_t row_bytes;
    int64_t chunk_rows; /* 0 = not chunked */
    int fast;           /* raw chunk path usable */
    int n_filters;
    int filter[2];      /* pipeline order, subset of {shuffle, zstd} */
    hid_t memtype;      /* for the H5Dread fallback */
} rds;

typedef struct {
    void *dctx;
    uint8_t *raw;
    size_t raw_cap;
    int64_t cached_chunk[DS_MAX]; /* -1 = none */
    int cached_shuffled[DS_MAX];
    uint8_t *cache[DS_MAX];
    size_t cache_cap[DS_MAX];
} worker;

typedef struct {
    int64_t doc0, doc1, atom0, atom1, text0, text1;
    uint8_t *arr[DS_MAX];
    size_t cap[DS_MAX];
    int state; /* 0 free, 1 decoding, 2 ready */
    int rc;
    char err[768];
} block;

enum { SLOT_FREE, SLOT_BUSY, SLOT_READY };

struct cache_reader {
    sra_err err;
    char *path;
    hid_t file;
    cache_meta m;
    char *strs[16];
    int nstrs;
    int nds;
    rds ds[DS_MAX];
    int64_t n_docs, n_atoms, n_text;
    int64_t *text_off, *atom_off, *loss, *rec; /* (n_docs+1), (n_docs+1), (n_docs), (n_docs) */
    uint8_t *blob[BLOB_N];
    size_t blob_len[BLOB_N];
    /* synchronous reads */
    worker sync_w;
    block sync_b;
    /* read-ahead */
    int iter_on;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_t th[MAX_THREADS];
    int nth;
    worker *wk;       /* (wk_cap) kept across passes: their chunk caches stay warm */
    block *slots;     /* (slots_cap) kept across passes: no re-faulting of buffers */
    int nslots, wk_cap, slots_cap;
    int64_t *plan; /* block b = docs [plan[b], plan[b+1]) */
    int64_t nplan;
    int64_t next_assign, cur; /* next block to hand out, block being consumed */
    int64_t cur_doc;
    int cur_held; /* consumer holds slot cur */
    int iter_rc;  /* sticky: once a block failed, every next() fails */
    int stop;
    double wait_s;
    size_t block_bytes;
};

const char *cache_errmsg(const cache_reader *r) { return r ? r->err.msg : "out of memory"; }
const char *cache_path(const cache_reader *r) { return r->path; }
const cache_meta *cache_meta_get(const cache_reader *r) { return &r->m; }
int64_t cache_n_docs(const cache_reader *r) { return r->n_docs; }
int64_t cache_n_atoms(const cache_reader *r) { return r->n_atoms; }
int64_t cache_text_bytes(const cache_reader *r) { return r->n_text; }
double cache_iter_wait_seconds(const cache_reader *r) { return r->wait_s; }
void cache_set_block_bytes(cache_reader *r, size_t bytes) { r->block_bytes = bytes; }

/* ========================================================= chunk decode */

static void worker_init(worker *w) {
    memset(w, 0, sizeof *w);
    for (int i = 0; i < DS_MAX; i++) w->cached_chunk[i] = -1;
}

static void worker_free(worker *w) {
    sra_zstd_dctx_free(w->dctx);
    free(w->raw);
    for (int i = 0; i < DS_MAX; i++) free(w->cache[i]);
    worker_init(w);
}

static int grow(uint8_t **p, size_t *cap, size_t need) {
    if (need <= *cap) return 0;
    size_t n = need + need / 4;
    uint8_t *q = realloc(*p, n);
    if (!q) return -1;
    *p = q;
    *cap = n;
    return 0;
}

/* Decodes chunk c of dataset ds into w->cache[ds] (still shuffled if the
 * chunk was stored shuffled; *shuffled says so). Errors go to err[n]. */
static int get_chunk(cache_reader *r, worker *w, int ds, int64_t c, int *shuffled, char *err,
                     size_t n) {
    rds *d = &r->ds[ds];
    if (w->cached_chunk[ds] == c) { *shuffled = w->cached_shuffled[ds]; return 0; }
    size_t full = (size_t)d->chunk_rows * d->row_bytes;
    hsize_t off[2] = {(hsize_t)(c * d->chunk_rows), 0};
    hsize_t stored = 0;
    uint32_t mask = 0;
    char h5[256] = "";
    h5_lock();
    int ok = H5Dget_chunk_storage_size(d->id, off, &stored) >= 0 && stored > 0;
    if (ok && grow(&w->raw, &w->raw_cap, stored)) ok = -1;
    if (ok == 1) ok = H5Dread_chunk(d->id, H5P_DEFAULT, off, &mask, w->raw) >= 0;
    if (ok != 1) h5_last_error(h5, sizeof h5);
    h5_unlock();
    if (ok != 1) {
        snprintf(err, n, "%s: %s: chunk at row %lld cannot be read (%s)", r->path, d->name,
                 (long long)off[0], ok < 0 ? "out of memory" : stored ? h5 : "missing chunk");
        return SRA_E_CORRUPT;
    }
    if (grow(&w->cache[ds], &w->cache_cap[ds], full)) {
        snprintf(err, n, "out of memory");
        return SRA_E_NOMEM;
    }
    int zstd = 0, shuf = 0;
    for (int i = 0; i < d->n_filters; i++) {
        if (mask & (1u << i)) continue; /* HDF5: this filter was skipped */
        if (d->filter[i] == SRA_H5Z_ZSTD) zstd = 1;
        else shuf = 1;
    }
    if (zstd) {
        if (!w->dctx && !(w->dctx = sra_zstd_dctx_new())) {
            snprintf(err, n, "out of memory");
            return SRA_E_NOMEM;
        }
        char why[160];
        if (sra_zstd_decompress(w->dctx, w->cache[ds], full, w->raw, stored, why, sizeof why)) {
            snprintf(err, n, "%s: %s: chunk at row %lld is corrupt: %s", r->path, d->name,
                     (long long)off[0], why);
            w->cached_chunk[ds] = -1;
            return SRA_E_CORRUPT;
        }
    } else {
        if (stored != full) {
            snprintf(err, n, "%s: %s: chunk at row %lld holds %llu bytes, expected %zu", r->path,
                     d->name, (long long)off[0], (unsigned long long)stored, full);
            return SRA_E_CORRUPT;
        }
        memcpy(w->cache[ds], w->raw, full);
    }
    w->cached_chunk[ds] = c;
    w->cached_shuffled[ds] = shuf;
    *shuffled = shuf;
    return 0;
}

/* Reads rows [row0, row1) of dataset ds into dst (row-major, file bytes). */
static int read_rows(cache_reader *r, worker *w, int ds, int64_t row0, int64_t row1, void *dst,
                     char *err, size_t n) {
    rds *d = &r->ds[ds];
    if (row1 <= row0) return 0;
    uint8_t *out = dst;
    if (!d->fast) {
        hsize_t start[2] = {(hsize_t)row0, 0}, count[2] = {(hsize_t)(row1 - row0), (hsize_t)d->cols};
        int rank = cache_ds_rank(ds < DS_COM0 ? ds : DS_COM0);
        h5_lock();
        hid_t fs = H5Dget_space(d->id);
        hid_t ms = H5Screate_simple(rank, count, NULL);
        herr_t rc = H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, count, NULL);
        if (rc >= 0) rc = H5Dread(d->id, d->memtype, ms, fs, H5P_DEFAULT, dst);
        char h5[256] = "";
        if (rc < 0) h5_last_error(h5, sizeof h5);
        H5Sclose(ms);
        H5Sclose(fs);
        h5_unlock();
        if (rc < 0) {
            snprintf(err, n, "%s: %s: rows %lld..%lld cannot be read (%s)", r->path, d->name,
                     (long long)row0, (long long)row1, h5);
            return SRA_E_CORRUPT;
        }
        return 0;
    }
    int64_t R = d->chunk_rows;
    for (int64_t c = row0 / R; c * R < row1; c++) {
        int64_t lo = c * R > row0 ? c * R : row0;
        int64_t hi = (c + 1) * R < row1 ? (c + 1) * R : row1;
        int shuffled;
        int rc = get_chunk(r, w, ds, c, &shuffled, err, n);
        if (rc) return rc;
        uint8_t *o = out + (size_t)(lo - row0) * d->row_bytes;
        if (shuffled)
            sra_unshuffle_range(o, w->cache[ds], (size_t)(R * d->cols), d->esize,
                                (size_t)((lo - c * R) * d->cols), (size_t)((hi - lo) * d->cols));
        else
            memcpy(o, w->cache[ds] + (size_t)(lo - c * R) * d->row_bytes,
                   (size_t)(hi - lo) * d->row_bytes);
    }
    return 0;
}

/* ========================================================= block decode */

static int check_block(cache_reader *r, block *b) {
    const int32_t *st = (const int32_t *)b->arr[DS_START], *en = (const int32_t *)b->arr[DS_END];
    for (int64_t i = b->doc0; i < b->doc1; i++) {
        int64_t len = r->text_off[i + 1] - r->text_off[i];
        int32_t prev = 0;
        for (int64_t a = r->atom_off[i]; a < r->atom_off[i + 1]; a++) {
            int32_t s = st[a - b->atom0], e = en[a - b->atom0];
            if (s < prev || e <= s || e > len) {
                snprintf(b->err, sizeof b->err,
                         "%s: /atoms/start, /atoms/end: doc %lld atom %lld has byte range "
                         "[%d, %d), expected increasing non-empty ranges inside its %lld bytes",
                         r->path, (long long)i, (long long)(a - r->atom_off[i]), s, e,
                         (long long)len);
                return SRA_E_CORRUPT;
            }
            prev = e;
        }
    }
    int64_t V = r->m.teacher_vocab_size, nk = (b->atom1 - b->atom0) * r->m.topk;
    const int32_t *ids = (const int32_t *)b->arr[DS_IDS];
    if (V > 0)
        for (int64_t j = 0; j < nk; j++)
            if (ids[j] < 0 || ids[j] >= V) {
                snprintf(b->err, sizeof b->err,
                         "%s: /atoms/topk_ids: atom %lld holds id %d, outside the teacher "
                         "vocabulary [0, %lld)",
                         r->path, (long long)(b->atom0 + j / r->m.topk), ids[j], (long long)V);
                return SRA_E_CORRUPT;
            }
    return 0;
}

static int decode_block(cache_reader *r, worker *w, block *b, int64_t doc0, int64_t doc1) {
    b->doc0 = doc0;
    b->doc1 = doc1;
    b->atom0 = r->atom_off[doc0];
    b->atom1 = r->atom_off[doc1];
    b->text0 = r->text_off[doc0];
    b->text1 = r->text_off[doc1];
    b->err[0] = 0;
    for (int ds = 0; ds < r->nds; ds++) {
        int64_t row0, row1;
        if (ds == DS_TEXT) { row0 = b->text0; row1 = b->text1; }
        else if (ds >= DS_START) { row0 = b->atom0; row1 = b->atom1; }
        else continue; /* per-document arrays are resident */
        int present = cache_ds_present(&r->m, ds);
        /* a k = 0 cache stores no top-k: empty id/log-prob rows, tail 1 */
        size_t need = present ? (size_t)(row1 - row0) * r->ds[ds].row_bytes
                    : ds == DS_TAIL ? (size_t)(row1 - row0) * sizeof(float) : 0;
        if (grow(&b->arr[ds], &b->cap[ds], need ? need : 1)) {
            snprintf(b->err, sizeof b->err, "out of memory for a block of %zu bytes", need);
            return b->rc = SRA_E_NOMEM;
        }
        if (!present) {
            for (int64_t i = 0; ds == DS_TAIL && i < row1 - row0; i++) ((float *)b->arr[ds])[i] = 1.0f;
            continue;
        }
        int rc = read_rows(r, w, ds, row0, row1, b->arr[ds], b->err, sizeof b->err);
        if (rc) return b->rc = rc;
    }
    return b->rc = check_block(r, b);
}

static void fill_doc(const cache_reader *r, const block *b, int64_t i, cache_doc *d) {
    int64_t a = r->atom_off[i] - b->atom0, k = r->m.topk;
    memset(d, 0, sizeof *d);
    d->index = i;
    d->record = r->rec[i];
    d->text = (const char *)b->arr[DS_TEXT] + (r->text_off[i] - b->text0);
    d->text_len = r->text_off[i + 1] - r->text_off[i];
    d->loss_start = r->loss[i];
    d->n_atoms = r->atom_off[i + 1] - r->atom_off[i];
    d->atom_start = (const int32_t *)b->arr[DS_START] + a;
    d->atom_end = (const int32_t *)b->arr[DS_END] + a;
    d->mass = (const float *)b->arr[DS_MASS] + a;
    d->tail_mass = (const float *)b->arr[DS_TAIL] + a;
    d->topk_ids = (const int32_t *)b->arr[DS_IDS] + a * k;
    d->topk_logprob = (const uint16_t *)b->arr[DS_LP] + a * k;
    for (int j = 0; j < r->m.n_layers; j++)
        d->com[j] = b->arr[DS_COM0 + j] + (size_t)a * r->ds[DS_COM0 + j].row_bytes;
}

/* =============================================================== open */

static int fail(cache_reader *r, int code, const char *fmt, const char *a, const char *b) {
    char msg[600];
    snprintf(msg, sizeof msg, fmt, a, b);
    return sra_err_set(&r->err, code, "%s: %s", r->path, msg);
}

static int need_str(cache_reader *r, const char *name, const char **field) {
    char *s = NULL;
    int rc = h5_attr_get_str(r->file, name, &s);
    if (rc <= 0)
        return fail(r, rc == 0 ? SRA_E_MISSING : SRA_E_FORMAT,
                    "root attribute '%s' is %s (expected a string)", name,
                    rc == 0 ? "missing" : "unreadable");
    r->strs[r->nstrs++] = s;
    *field = s;
    return 0;
}

static int need_i64(cache_reader *r, const char *name, int64_t *v) {
    int rc = h5_attr_get_i64(r->file, name, v);
    if (rc <= 0)
        return fail(r, rc == 0 ? SRA_E_MISSING : SRA_E_FORMAT,
                    "root attribute '%s' is %s (expected an integer)", name,
                    rc == 0 ? "missing" : "unreadable");
    return 0;
}

static int read_meta(cache_reader *r) {
    cache_meta *m = &r->m;
    const char *dtype = NULL;
    int rc;
    static const char *const names[] = {"sra_version", "created", "teacher_name",
                                         "teacher_config_sha256", "teacher_weights_sha256",
                                         "teacher_tokenizer_sha256", "student_tokenizer_sha256",
                                         "atoms", "mass", "dataset_sha256", "settings_json"};
    const char **fields[] = {&m->sra_version, &m->created, &m->teacher_name,
                             &m->teacher_config_sha256, &m->teacher_weights_sha256,
                             &m->teacher_tokenizer_sha256, &m->student_tokenizer_sha256,
                             &m->atoms, &m->mass, &m->dataset_sha256, &m->settings_json};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++)
        if ((rc = need_str(r, names[i], fields[i]))) return rc;
    if ((rc = need_str(r, "hidden_dtype", &dtype))) return rc;
    /* optional (added within version 1): the extractor's counts */
    char *stats = NULL;
    rc = h5_attr_get_str(r->file, "stats_json", &stats);
    if (rc < 0) return fail(r, SRA_E_FORMAT, "root attribute '%s' is %s", "stats_json", "unreadable");
    m->stats_json = rc == 0 ? "{}" : (r->strs[r->nstrs++] = stats);
    if ((rc = need_i64(r, "teacher_vocab_size", &m->teacher_vocab_size)) ||
        (rc = need_i64(r, "hidden_size", &m->hidden_size)) ||
        (rc = need_i64(r, "topk", &m->topk)) ||
        (rc = need_i64(r, "record_start", &m->record_start)) ||
        (rc = need_i64(r, "record_end", &m->record_end)) ||
        (rc = need_i64(r, "shard_index", &m->shard_index)) ||
        (rc = need_i64(r, "shard_count", &m->shard_count)))
        return rc;
    if (h5_attr_get_f64(r->file, "temperature", &m->temperature) != 1)
        return fail(r, SRA_E_MISSING, "root attribute '%s' is %s", "temperature",
                    "missing or not a number");
    if (h5_attr_get_i32v(r->file, "layers", m->layers, CACHE_MAX_LAYERS, &m->n_layers) != 1)
        return fail(r, SRA_E_MISSING, "root attribute '%s' is %s", "layers",
                    "missing or not 1..16 integers");
    if (cache_dtype_parse(dtype, &m->hidden_dtype))
        return fail(r, SRA_E_FORMAT, "hidden_dtype is '%s', expected %s", dtype, "bf16, f16 or f32");
    /* k = 0 (no top-k) exists since version 2 */
    if (m->hidden_size < 1 || m->topk < (m->format_version >= 2 ? 0 : 1))
        return fail(r, SRA_E_FORMAT, "hidden_size must be >= 1 and topk >= %s (format version %s)",
                    m->format_version >= 2 ? "0" : "1", m->format_version >= 2 ? "2" : "1");
    return 0;
}

static int type_ok(hid_t t, elem_type et) {
    H5T_class_t c = H5Tget_class(t);
    size_t s = H5Tget_size(t);
    if (s != cache_et_size(et) || (s > 1 && H5Tget_order(t) != H5T_ORDER_LE)) return 0;
    switch (et) {
    case ET_U8: return c == H5T_INTEGER;
    case ET_BF16: return c == H5T_INTEGER && H5Tget_sign(t) == H5T_SGN_NONE;
    case ET_I32: case ET_I64: return c == H5T_INTEGER && H5Tget_sign(t) == H5T_SGN_2;
    case ET_F32: return c == H5T_FLOAT;
    case ET_F16: {
        size_t spos, epos, esize, mpos, msize;
        return c == H5T_FLOAT && H5Tget_fields(t, &spos, &epos, &esize, &mpos, &msize) >= 0 &&
               spos == 15 && epos == 10 && esize == 5 && mpos == 0 && msize == 10;
    }
    }
    return 0;
}

static const char *et_name(elem_type et) {
    static const char *const n[] = {"uint8", "int32", "int64", "float32", "float16",
                                    "uint16 (bfloat16)"};
    return n[et];
}

static int open_dataset(cache_reader *r, int ds) {
    rds *d = &r->ds[ds];
    cache_ds_name(ds, d->name);
    d->et = cache_ds_type(&r->m, ds);
    d->esize = cache_et_size(d->et);
    d->cols = cache_ds_cols(&r->m, ds);
    d->row_bytes = d->esize * (size_t)d->cols;
    if (H5Lexists(r->file, "/atoms", H5P_DEFAULT) <= 0 ||
        H5Lexists(r->file, "/docs", H5P_DEFAULT) <= 0 ||
        (ds >= DS_COM0 && H5Lexists(r->file, "/atoms/com", H5P_DEFAULT) <= 0) ||
        H5Lexists(r->file, d->name, H5P_DEFAULT) <= 0)
        return fail(r, SRA_E_MISSING, "dataset %s is missing%s", d->name,
                    " (not an sra cache, or written by an incompatible tool)");
    d->id = H5Dopen2(r->file, d->name, H5P_DEFAULT);
    if (d->id < 0) return fail(r, SRA_E_CORRUPT, "dataset %s cannot be opened%s", d->name, "");
    hid_t t = H5Dget_type(d->id);
    int tok = type_ok(t, d->et);
    H5Tclose(t);
    if (!tok)
        return fail(r, SRA_E_FORMAT, "dataset %s has the wrong element type (expected "
                    "little-endian %s)", d->name, et_name(d->et));
    d->memtype = h5_file_type(d->et);
    hid_t s = H5Dget_space(d->id);
    int rank = H5Sget_simple_extent_ndims(s);
    hsize_t dims[2] = {0, 1};
    if (rank == cache_ds_rank(ds)) H5Sget_simple_extent_dims(s, dims, NULL);
    H5Sclose(s);
    if (rank != cache_ds_rank(ds) || (rank == 2 && (int64_t)dims[1] != d->cols)) {
        char want[64];
        snprintf(want, sizeof want, rank == 2 || cache_ds_rank(ds) == 2 ? "(rows, %lld)" : "(rows,)",
                 (long long)d->cols);
        return fail(r, SRA_E_FORMAT, "dataset %s has the wrong shape (expected %s)", d->name, want);
    }
    d->rows = (int64_t)dims[0];
    /* Fast path only for the layouts we write ourselves: chunked along rows
     * with whole rows per chunk, filters a subset of shuffle -> zstd. */
    hid_t dcpl = H5Dget_create_plist(d->id);
    d->fast = H5Pget_layout(dcpl) == H5D_CHUNKED;
    if (d->fast) {
        hsize_t ch[2] = {0, 0};
        H5Pget_chunk(dcpl, 2, ch);
        d->chunk_rows = (int64_t)ch[0];
        if (rank == 2 && (int64_t)ch[1] != d->cols) d->fast = 0;
        int nf = H5Pget_nfilters(dcpl);
        if (nf > 2) d->fast = 0;
        for (int i = 0; d->fast && i < nf; i++) {
            unsigned flags, cd[8];
            size_t ncd = 8;
            char nm[64];
            H5Z_filter_t f = H5Pget_filter2(dcpl, (unsigned)i, &flags, &ncd, cd, sizeof nm, nm, NULL);
            int ok = (f == SRA_H5Z_ZSTD) || (f == SRA_H5Z_SHUFFLE && i == 0);
            if (!ok) d->fast = 0;
            else d->filter[d->n_filters++] = (int)f;
        }
    }
    H5Pclose(dcpl);
    return 0;
}

static int load_index(cache_reader *r) {
    int64_t n = r->n_docs;
    r->text_off = malloc((size_t)(n + 1) * 8);
    r->atom_off = malloc((size_t)(n + 1) * 8);
    r->loss = malloc((size_t)(n ? n : 1) * 8);
    r->rec = malloc((size_t)(n ? n : 1) * 8);
    if (!r->text_off || !r->atom_off || !r->loss || !r->rec)
        return sra_err_set(&r->err, SRA_E_NOMEM, "%s: out of memory for %lld documents", r->path,
                           (long long)n);
    char *e = r->err.msg;
    size_t en = sizeof r->err.msg;
    int rc;
    if ((rc = read_rows(r, &r->sync_w, DS_TEXT_OFF, 0, n + 1, r->text_off, e, en)) ||
        (rc = read_rows(r, &r->sync_w, DS_ATOM_OFF, 0, n + 1, r->atom_off, e, en)) ||
        (rc = read_rows(r, &r->sync_w, DS_LOSS, 0, n, r->loss, e, en)) ||
        (rc = read_rows(r, &r->sync_w, DS_REC, 0, n, r->rec, e, en)))
        return r->err.code = rc;
    /* offsets: start at 0, never decrease, end at the dataset length */
    const char *what[2] = {"/docs/text_offsets", "/docs/atom_offsets"};
    const int64_t *arr[2] = {r->text_off, r->atom_off};
    const int64_t total[2] = {r->n_text, r->n_atoms};
    for (int k = 0; k < 2; k++) {
        if (arr[k][0] != 0 || arr[k][n] != total[k])
            return sra_err_set(&r->err, SRA_E_CORRUPT,
                               "%s: %s runs from %lld to %lld, expected 0 to %lld", r->path,
                               what[k], (long long)arr[k][0], (long long)arr[k][n],
                               (long long)total[k]);
        for (int64_t i = 0; i < n; i++)
            if (arr[k][i + 1] < arr[k][i] || (k == 1 && arr[k][i + 1] == arr[k][i]) ||
                (k == 0 && arr[k][i + 1] - arr[k][i] > INT32_MAX))
                return sra_err_set(&r->err, SRA_E_CORRUPT,
                                   "%s: %s[%lld..%lld] = %lld, %lld: offsets must increase%s",
                                   r->path, what[k], (long long)i, (long long)i + 1,
                                   (long long)arr[k][i], (long long)arr[k][i + 1],
                                   k ? " (every document has at least one atom)" : "");
    }
    for (int64_t i = 0; i < n; i++)
        if (r->loss[i] < 0 || r->loss[i] > r->text_off[i + 1] - r->text_off[i])
            return sra_err_set(&r->err, SRA_E_CORRUPT,
                               "%s: /docs/loss_start[%lld] = %lld is outside its document "
                               "(%lld bytes)",
                               r->path, (long long)i, (long long)r->loss[i],
                               (long long)(r->text_off[i + 1] - r->text_off[i]));
    return 0;
}

static int ends_with(const char *s, const char *suf) {
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && !strcmp(s + a - b, suf);
}

static int open_locked(cache_reader *r) {
    const char *p = r->path;
    if (ends_with(p, ".tmp"))
        return sra_err_set(&r->err, SRA_E_INCOMPLETE,
                           "%s: a leftover temporary file of an interrupted write; it is never "
                           "valid. Delete it and rerun the extraction that was writing it", p);
    struct stat st;
    if (stat(p, &st) != 0)
        return sra_err_set(&r->err, SRA_E_IO, "%s: cannot open: %s", p, strerror(errno));
    htri_t is = H5Fis_hdf5(p);
    if (is <= 0)
        return sra_err_set(&r->err, SRA_E_FORMAT,
                           "%s: not an HDF5 file (no HDF5 signature; truncated to %lld bytes?)", p,
                           (long long)st.st_size);
    r->file = H5Fopen(p, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (r->file < 0) {
        char h5[256];
        h5_last_error(h5, sizeof h5);
        return sra_err_set(&r->err, SRA_E_CORRUPT,
                           "%s: HDF5 cannot open it: %s (truncated or damaged file?)", p, h5);
    }
    char *fmt = NULL;
    int rc = h5_attr_get_str(r->file, "format", &fmt);
    int bad = rc != 1 || strcmp(fmt, CACHE_FORMAT);
    free(fmt);
    if (bad)
        return sra_err_set(&r->err, SRA_E_FORMAT,
                           "%s: not an sra cache (root attribute 'format' is not '%s')", p,
                           CACHE_FORMAT);
    int64_t ver = 0, complete = 0;
    if (h5_attr_get_i64(r->file, "format_version", &ver) != 1 || ver < CACHE_VERSION_MIN ||
        ver > CACHE_VERSION)
        return sra_err_set(&r->err, SRA_E_VERSION,
                           "%s: cache format version %lld, this sra reads versions %d to %d; "
                           "regenerate the cache with this sra's sra-extract",
                           p, (long long)ver, CACHE_VERSION_MIN, CACHE_VERSION);
    r->m.format_version = ver;
    if (h5_attr_get_i64(r->file, "complete", &complete) != 1 || complete != 1)
        return sra_err_set(&r->err, SRA_E_INCOMPLETE,
                           "%s: marked incomplete (complete = %lld): its writer did not finish; "
                           "rerun the extraction for this shard", p, (long long)complete);
    if ((rc = read_meta(r))) return rc;
    r->nds = cache_n_datasets(&r->m);
    for (int ds = 0; ds < r->nds; ds++)
        if (cache_ds_present(&r->m, ds) && (rc = open_dataset(r, ds))) return rc;
    r->n_text = r->ds[DS_TEXT].rows;
    r->n_docs = r->ds[DS_TEXT_OFF].rows - 1;
    r->n_atoms = r->ds[DS_START].rows;
    for (int ds = 0; ds < r->nds; ds++) {
        if (!cache_ds_present(&r->m, ds)) continue;
        rows_kind k = cache_schema[ds < DS_COM0 ? ds : DS_COM0].rows;
        int64_t want = k == ROWS_TEXT ? r->n_text : k == ROWS_DOCS1 ? r->n_docs + 1
                     : k == ROWS_DOCS ? r->n_docs : r->n_atoms;
        if (r->ds[ds].rows != want || r->n_docs < 0) {
            char a[128];
            snprintf(a, sizeof a, "%lld rows, expected %lld", (long long)r->ds[ds].rows,
                     (long long)want);
            return fail(r, SRA_E_FORMAT, "dataset %s has %s (inconsistent with the others)",
                        r->ds[ds].name, a);
        }
    }
    for (int b = 0; b < BLOB_N; b++) {
        int required = b != BLOB_STUDENT_TOK || !strcmp(r->m.atoms, "student");
        char grp[32];
        snprintf(grp, sizeof grp, "%s", cache_blob_name[b]);
        *strrchr(grp, '/') = 0;
        int present = H5Lexists(r->file, grp, H5P_DEFAULT) > 0 &&
                      H5Lexists(r->file, cache_blob_name[b], H5P_DEFAULT) > 0;
        if (required && !present)
            return fail(r, SRA_E_MISSING, "dataset %s is missing%s", cache_blob_name[b], "");
    }
    return 0;
}

int cache_open(cache_reader **out, const char *path) {
    cache_reader *r = calloc(1, sizeof *r);
    *out = r;
    if (!r) return SRA_E_NOMEM;
    r->file = H5I_INVALID_HID;
    for (int i = 0; i < DS_MAX; i++) r->ds[i].id = r->ds[i].memtype = H5I_INVALID_HID;
    worker_init(&r->sync_w);
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->cv, NULL);
    r->path = strdup(path);
    if (!r->path) return sra_err_set(&r->err, SRA_E_NOMEM, "out of memory");
    h5_lock();
    h5_init_thread();
    int rc = open_locked(r);
    h5_unlock();
    if (!rc) rc = load_index(r);
    return rc;
}

int cache_read_blobs(cache_reader *r) {
    int rc = 0;
    h5_lock();
    for (int b = 0; b < BLOB_N && !rc; b++) {
        if (r->blob[b]) continue;
        if (H5Lexists(r->file, b == BLOB_STUDENT_TOK ? "/student" : "/teacher", H5P_DEFAULT) <= 0 ||
            H5Lexists(r->file, cache_blob_name[b], H5P_DEFAULT) <= 0)
            continue;
        hid_t d = H5Dopen2(r->file, cache_blob_name[b], H5P_DEFAULT);
        hid_t s = d >= 0 ? H5Dget_space(d) : H5I_INVALID_HID;
        hssize_t n = s >= 0 ? H5Sget_simple_extent_npoints(s) : -1;
        uint8_t *buf = n >= 0 ? malloc((size_t)n + 1) : NULL;
        if (!buf || (n > 0 && H5Dread(d, H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0)) {
            char h5[256];
            h5_last_error(h5, sizeof h5);
            rc = sra_err_set(&r->err, SRA_E_CORRUPT, "%s: %s cannot be read: %s", r->path,
                             cache_blob_name[b], h5);
            free(buf);
        } else {
            buf[n] = 0; /* handy for JSON parsers; not part of the length */
            r->blob[b] = buf;
            r->blob_len[b] = (size_t)n;
        }
        if (s >= 0) H5Sclose(s);
        if (d >= 0) H5Dclose(d);
    }
    h5_unlock();
    if (rc) return rc;
    const char *want[2] = {r->m.teacher_tokenizer_sha256, r->m.student_tokenizer_sha256};
    int which[2] = {BLOB_TEACHER_TOK, BLOB_STUDENT_TOK};
    for (int i = 0; i < 2; i++) {
        if (!r->blob[which[i]] || !want[i][0]) continue;
        char hex[65];
        sra_sha256_hex(r->blob[which[i]], r->blob_len[which[i]], hex);
        if (strcmp(hex, want[i]))
            return sra_err_set(&r->err, SRA_E_CORRUPT,
                               "%s: %s has sha256 %s but the metadata says %s", r->path,
                               cache_blob_name[which[i]], hex, want[i]);
    }
    r->m.teacher_tokenizer_json = r->blob[BLOB_TEACHER_TOK];
    r->m.teacher_tokenizer_len = r->blob_len[BLOB_TEACHER_TOK];
    r->m.teacher_config_json = r->blob[BLOB_TEACHER_CFG];
    r->m.teacher_config_len = r->blob_len[BLOB_TEACHER_CFG];
    r->m.student_tokenizer_json = r->blob[BLOB_STUDENT_TOK];
    r->m.student_tokenizer_len = r->blob_len[BLOB_STUDENT_TOK];
    return 0;
}

/* ======================================================== random access */

int cache_read_doc(cache_reader *r, int64_t i, cache_doc *d) {
    if (i < 0 || i >= r->n_docs)
        return sra_err_set(&r->err, SRA_E_ARG, "%s: document %lld out of range (the shard has %lld)",
                           r->path, (long long)i, (long long)r->n_docs);
    h5_lock();
    h5_init_thread();
    h5_unlock();
    int rc = decode_block(r, &r->sync_w, &r->sync_b, i, i + 1);
    if (rc) return sra_err_set(&r->err, rc, "%s", r->sync_b.err);
    fill_doc(r, &r->sync_b, i, d);
    return 0;
}

/* ============================================================ read-ahead */

static void *worker_main(void *arg) {
    cache_reader *r = ((void **)arg)[0];
    worker *w = ((void **)arg)[1];
    free(arg);
    h5_lock();
    h5_init_thread();
    h5_unlock();
    pthread_mutex_lock(&r->mu);
    while (!r->stop && r->next_assign < r->nplan) {
        if (r->next_assign >= r->cur + r->nslots) { /* every slot is taken */
            pthread_cond_wait(&r->cv, &r->mu);
            continue;
        }
        int64_t b = r->next_assign++;
        block *s = &r->slots[b % r->nslots];
        s->state = SLOT_BUSY;
        pthread_mutex_unlock(&r->mu);
        decode_block(r, w, s, r->plan[b], r->plan[b + 1]);
        pthread_mutex_lock(&r->mu);
        s->state = SLOT_READY;
        pthread_cond_broadcast(&r->cv);
    }
    pthread_mutex_unlock(&r->mu);
    return NULL;
}

int cache_iter_begin(cache_reader *r, int64_t first, int64_t end, int n_threads) {
    cache_iter_end(r);
    if (first < 0 || end > r->n_docs || first > end)
        return sra_err_set(&r->err, SRA_E_ARG, "%s: documents [%lld, %lld) outside [0, %lld)",
                           r->path, (long long)first, (long long)end, (long long)r->n_docs);
    if (n_threads < 1) n_threads = 1;
    if (n_threads > MAX_THREADS) n_threads = MAX_THREADS;
    /* Plan blocks: enough atoms for BLOCK_TARGET_BYTES of payload and at
     * least one chunk of every per-atom dataset. */
    size_t atom_bytes = 0;
    int64_t min_atoms = 1;
    for (int ds = DS_START; ds < r->nds; ds++) {
        atom_bytes += r->ds[ds].row_bytes;
        if (r->ds[ds].cols > 1 && r->ds[ds].chunk_rows > min_atoms) min_atoms = r->ds[ds].chunk_rows;
    }
    int64_t target = (int64_t)((r->block_bytes ? r->block_bytes : BLOCK_TARGET_BYTES) / atom_bytes);
    if (target < min_atoms) target = min_atoms;
    r->plan = malloc((size_t)(end - first + 1) * sizeof *r->plan);
    if (!r->plan) return sra_err_set(&r->err, SRA_E_NOMEM, "out of memory");
    r->nplan = 0;
    r->plan[0] = first;
    for (int64_t i = first; i < end;) {
        int64_t j = i + 1;
        while (j < end && r->atom_off[j] - r->atom_off[i] < target) j++;
        r->plan[++r->nplan] = j;
        i = j;
    }
    r->nslots = n_threads + 2;
    if (r->nslots > r->slots_cap) {
        block *b = realloc(r->slots, (size_t)r->nslots * sizeof *b);
        if (!b) return sra_err_set(&r->err, SRA_E_NOMEM, "out of memory");
        memset(b + r->slots_cap, 0, (size_t)(r->nslots - r->slots_cap) * sizeof *b);
        r->slots = b;
        r->slots_cap = r->nslots;
    }
    if (n_threads > r->wk_cap) {
        worker *w = realloc(r->wk, (size_t)n_threads * sizeof *w);
        if (!w) return sra_err_set(&r->err, SRA_E_NOMEM, "out of memory");
        for (int t = r->wk_cap; t < n_threads; t++) worker_init(&w[t]);
        r->wk = w;
        r->wk_cap = n_threads;
    }
    for (int t = 0; t < r->nslots; t++) r->slots[t].state = SLOT_FREE;
    r->next_assign = r->cur = 0;
    r->cur_doc = first;
    r->cur_held = 0;
    r->iter_rc = 0;
    r->stop = 0;
    r->wait_s = 0;
    r->iter_on = 1;
    for (int t = 0; t < n_threads; t++) {
        void **arg = malloc(2 * sizeof *arg);
        if (!arg) return sra_err_set(&r->err, SRA_E_NOMEM, "out of memory");
        arg[0] = r;
        arg[1] = &r->wk[t];
        if (pthread_create(&r->th[t], NULL, worker_main, arg)) {
            free(arg);
            return sra_err_set(&r->err, SRA_E_NOMEM, "cannot start a read-ahead thread");
        }
        r->nth = t + 1;
    }
    return 0;
}

int cache_iter_next(cache_reader *r, cache_doc *d) {
    if (!r->iter_on) return sra_err_set(&r->err, SRA_E_ARG, "cache_iter_next without cache_iter_begin");
    if (r->iter_rc) return r->iter_rc;
    block *s = r->nplan ? &r->slots[r->cur % r->nslots] : NULL;
    if (r->cur_held && r->cur_doc >= s->doc1) { /* done with this block: give it back */
        pthread_mutex_lock(&r->mu);
        s->state = SLOT_FREE;
        r->cur++;
        r->cur_held = 0;
        pthread_cond_broadcast(&r->cv);
        pthread_mutex_unlock(&r->mu);
    }
    if (r->cur >= r->nplan) return 0;
    s = &r->slots[r->cur % r->nslots];
    if (!r->cur_held) {
        double t0 = sra_now();
        pthread_mutex_lock(&r->mu);
        while (!(s->state == SLOT_READY && r->cur < r->next_assign))
            pthread_cond_wait(&r->cv, &r->mu);
        pthread_mutex_unlock(&r->mu);
        r->wait_s += sra_now() - t0;
        r->cur_held = 1;
        if (s->rc) return r->iter_rc = sra_err_set(&r->err, s->rc, "%s", s->err);
    }
    fill_doc(r, s, r->cur_doc++, d);
    return 1;
}

void cache_iter_end(cache_reader *r) {
    if (!r || !r->iter_on) return;
    pthread_mutex_lock(&r->mu);
    r->stop = 1;
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
    for (int t = 0; t < r->nth; t++) pthread_join(r->th[t], NULL);
    free(r->plan);
    r->plan = NULL;
    r->nth = 0;
    r->nplan = 0;
    r->iter_on = 0;
}

/* ================================================================ stats */

int cache_dataset_stats(cache_reader *r, cache_dataset_info *out, int max) {
    int n = 0;
    h5_lock();
    for (int ds = 0; ds < r->nds + BLOB_N; ds++) {
        const char *name;
        hid_t id;
        int own = 0;
        if (ds < r->nds) { name = r->ds[ds].name; id = r->ds[ds].id; }
        else {
            name = cache_blob_name[ds - r->nds];
            const char *grp = ds - r->nds == BLOB_STUDENT_TOK ? "/student" : "/teacher";
            if (H5Lexists(r->file, grp, H5P_DEFAULT) <= 0 || H5Lexists(r->file, name, H5P_DEFAULT) <= 0)
                continue;
            id = H5Dopen2(r->file, name, H5P_DEFAULT);
            own = 1;
        }
        if (id < 0) continue;
        if (n < max) {
            cache_dataset_info *o = &out[n];
            memset(o, 0, sizeof *o);
            snprintf(o->name, sizeof o->name, "%s", name);
            hid_t s = H5Dget_space(id), t = H5Dget_type(id);
            hsize_t dims[2] = {0, 1};
            H5Sget_simple_extent_dims(s, dims, NULL);
            o->rows = (int64_t)dims[0];
            o->cols = H5Sget_simple_extent_ndims(s) == 2 ? (int64_t)dims[1] : 1;
            o->esize = (int)H5Tget_size(t);
            o->raw_bytes = (uint64_t)o->rows * (uint64_t)o->cols * (uint64_t)o->esize;
            o->stored_bytes = H5Dget_storage_size(id);
            hid_t dcpl = H5Dget_create_plist(id);
            if (H5Pget_layout(dcpl) == H5D_CHUNKED) {
                hsize_t ch[2];
                H5Pget_chunk(dcpl, 2, ch);
                o->chunk_rows = (int64_t)ch[0];
            }
            int nf = H5Pget_nfilters(dcpl);
            for (int i = 0; i < nf; i++) {
                unsigned flags, cd[8];
                size_t ncd = 8;
                char nm[64];
                H5Z_filter_t f = H5Pget_filter2(dcpl, (unsigned)i, &flags, &ncd, cd, sizeof nm, nm, NULL);
                size_t len = strlen(o->filters);
                if (f == SRA_H5Z_ZSTD)
                    snprintf(o->filters + len, sizeof o->filters - len, "%szstd(%u)", i ? "+" : "",
                             ncd ? cd[0] : SRA_ZSTD_LEVEL);
                else if (f == SRA_H5Z_SHUFFLE)
                    snprintf(o->filters + len, sizeof o->filters - len, "%sshuffle", i ? "+" : "");
                else
                    snprintf(o->filters + len, sizeof o->filters - len, "%sfilter%d", i ? "+" : "", (int)f);
            }
            if (!nf) snprintf(o->filters, sizeof o->filters, "none");
            H5Pclose(dcpl);
            H5Tclose(t);
            H5Sclose(s);
        }
        n++;
        if (own) H5Dclose(id);
    }
    h5_unlock();
    return n;
}

/* ================================================================ close */

void cache_close(cache_reader *r) {
    if (!r) return;
    cache_iter_end(r);
    h5_lock();
    for (int i = 0; i < DS_MAX; i++) {
        if (r->ds[i].id >= 0) H5Dclose(r->ds[i].id);
        if (r->ds[i].memtype >= 0) H5Tclose(r->ds[i].memtype);
    }
    if (r->file >= 0) H5Fclose(r->file);
    h5_unlock();
    worker_free(&r->sync_w);
    for (int i = 0; i < DS_MAX; i++) free(r->sync_b.arr[i]);
    for (int t = 0; t < r->wk_cap; t++) worker_free(&r->wk[t]);
    for (int b = 0; b < r->slots_cap; b++)
        for (int i = 0; i < DS_MAX; i++) free(r->slots[b].arr[i]);
    free(r->wk);
    free(r->slots);
    for (int i = 0; i < r->nstrs; i++) free(r->strs[i]);
    for (int b = 0; b < BLOB_N; b++) free(r->blob[b]);
    free(r->text_off);
    free(r->atom_off);
    free(r->loss);
    free(r->rec);
    free(r->path);
    pthread_mutex_destroy(&r->mu);
    pthread_cond_destroy(&r->cv);
    free(r);
}
