/*
 * cache_write.c - the cache writer (cache.h): metadata, row buffering one
 * chunk per dataset, our own shuffle + zstd, H5Dwrite_chunk, atomic rename.
 *
 * Why chunks are compressed here and not by HDF5's pipeline: appending rows
 * through H5Dwrite would rewrite (decompress + recompress) a partial chunk
 * on every call; buffering one whole chunk per dataset and handing HDF5 the
 * finished bytes keeps memory bounded, writes each chunk once, and keeps
 * compression out of HDF5's global lock. The bytes are exactly what HDF5's
 * own pipeline (shuffle, then filter 32015) would produce, so any HDF5
 * reader decodes them.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cache_internal.h"
#include "zstd_filter.h"

/* One appendable dataset. */
typedef struct {
    hid_t id;
    char name[64];
    size_t esize;
    int64_t cols;
    size_t row_bytes;
    int64_t chunk_rows;
    uint8_t *buf;      /* (chunk_rows, cols) rows not yet written */
    int64_t nbuf;
    int64_t rows_done; /* rows already in the file */
    int shuffle;
} app;

struct cache_writer {
    sra_err err;
    char *path, *tmp;
    hid_t file;
    cache_meta m; /* scalars only are used after open */
    cache_write_opts o;
    int nds;
    app ds[DS_MAX];
    void *cctx;
    uint8_t *zbuf, *sbuf;
    size_t zcap;
    int64_t n_docs, n_atoms, n_text;
    int finished, failed;
    char *stats;  /* stats_json for finish, or NULL */
};

void cache_write_opts_default(cache_write_opts *o) {
    /* Level 1, not zstd's usual 3: on bf16 hidden states after the byte
     * shuffle it compresses smaller *and* 2x faster both ways (bench-cache,
     * CACHE.md). */
    o->zstd_level = 1;
    o->shuffle = -1;
    o->chunk_bytes = 256 << 10;
}

const char *cache_writer_errmsg(const cache_writer *w) {
    return w ? w->err.msg : "out of memory";
}
int64_t cache_writer_n_docs(const cache_writer *w) { return w->n_docs; }

/* ========================================================== validation */

static int mass_rule_ok(const char *s) {
    if (!strcmp(s, "uniform")) return 1;
    if (strncmp(s, "attn:", 5) && strncmp(s, "self:", 5) && strncmp(s, "last:", 5)) return 0;
    char *end;
    strtol(s + 5, &end, 10);
    return end != s + 5 && *end == 0;
}

static int check_meta(cache_writer *w, const cache_meta *m) {
    sra_err *e = &w->err;
    const char *p = w->path;
    if (!m->atoms || (strcmp(m->atoms, "word") && strcmp(m->atoms, "token") &&
                      strcmp(m->atoms, "student")))
        return sra_err_set(e, SRA_E_ARG, "%s: meta.atoms = '%s', expected word, token or student",
                           p, m->atoms ? m->atoms : "(null)");
    if (!m->mass || !mass_rule_ok(m->mass))
        return sra_err_set(e, SRA_E_ARG, "%s: meta.mass = '%s', expected attn:L, last:L, self:L or uniform",
                           p, m->mass ? m->mass : "(null)");
    if (m->n_layers < 1 || m->n_layers > CACHE_MAX_LAYERS)
        return sra_err_set(e, SRA_E_ARG, "%s: meta.n_layers = %d, expected 1..%d", p,
                           m->n_layers, CACHE_MAX_LAYERS);
    for (int j = 0; j < m->n_layers; j++) {
        int dup = 0;
        for (int i = 0; i < j; i++) dup |= m->layers[i] == m->layers[j];
        if (dup || m->layers[j] < CACHE_LAYER_FINAL)
            return sra_err_set(e, SRA_E_ARG, "%s: meta.layers[%d] = %d: layers must be distinct "
                               "and >= -1 (-1 = final norm)", p, j, m->layers[j]);
    }
    if (m->hidden_size < 1)
        return sra_err_set(e, SRA_E_ARG, "%s: meta.hidden_size = %lld, expected >= 1", p,
                           (long long)m->hidden_size);
    if (m->hidden_dtype != CACHE_F32 && m->hidden_dtype != CACHE_F16 && m->hidden_dtype != CACHE_BF16)
        return sra_err_set(e, SRA_E_ARG, "%s: meta.hidden_dtype invalid", p);
    if (m->topk < 0 || (m->teacher_vocab_size > 0 && m->topk > m->teacher_vocab_size))
        return sra_err_set(e, SRA_E_ARG, "%s: meta.topk = %lld, expected 0..vocab size (%lld)", p,
                           (long long)m->topk, (long long)m->teacher_vocab_size);
    if (!(m->temperature > 0))
        return sra_err_set(e, SRA_E_ARG, "%s: meta.temperature must be > 0", p);
    if (m->shard_count < 1 || m->shard_index < 0 || m->shard_index >= m->shard_count)
        return sra_err_set(e, SRA_E_ARG, "%s: shard %lld/%lld, expected 0 <= index < count", p,
                           (long long)m->shard_index, (long long)m->shard_count);
    if (m->record_start < 0 || m->record_end < m->record_start)
        return sra_err_set(e, SRA_E_ARG, "%s: record range [%lld, %lld) is invalid", p,
                           (long long)m->record_start, (long long)m->record_end);
    if (!m->teacher_tokenizer_json || !m->teacher_tokenizer_len)
        return sra_err_set(e, SRA_E_ARG, "%s: the teacher tokenizer.json bytes are required", p);
    if (!m->teacher_config_json || !m->teacher_config_len)
        return sra_err_set(e, SRA_E_ARG, "%s: the teacher config.json bytes are required", p);
    if (!strcmp(m->atoms, "student") && (!m->student_tokenizer_json || !m->student_tokenizer_len))
        return sra_err_set(e, SRA_E_ARG,
                           "%s: atoms = student needs the student tokenizer.json bytes", p);
    return 0;
}

static int check_doc(cache_writer *w, const cache_doc *d) {
    sra_err *e = &w->err;
    const cache_meta *m = &w->m;
    long long n = (long long)w->n_docs;
    if (d->text_len < 0 || d->text_len > INT32_MAX || (d->text_len && !d->text))
        return sra_err_set(e, SRA_E_ARG, "%s: doc %lld (record %lld): text length %lld invalid",
                           w->path, n, (long long)d->record, (long long)d->text_len);
    if (d->loss_start < 0 || d->loss_start > d->text_len)
        return sra_err_set(e, SRA_E_ARG, "%s: doc %lld (record %lld): loss_start %lld outside [0, %lld]",
                           w->path, n, (long long)d->record, (long long)d->loss_start,
                           (long long)d->text_len);
    if (d->n_atoms < 1)
        return sra_err_set(e, SRA_E_ARG, "%s: doc %lld (record %lld) has no atom", w->path, n,
                           (long long)d->record);
    int k = m->topk > 0; /* with k = 0 the top-k pointers are not used */
    if (!d->atom_start || !d->atom_end || !d->mass ||
        (k && (!d->topk_ids || !d->topk_logprob || !d->tail_mass)))
        return sra_err_set(e, SRA_E_ARG, "%s: doc %lld: an atom array is NULL", w->path, n);
    for (int j = 0; j < m->n_layers; j++)
        if (!d->com[j])
            return sra_err_set(e, SRA_E_ARG, "%s: doc %lld: com[%d] is NULL", w->path, n, j);
    int32_t prev = 0;
    for (int64_t i = 0; i < d->n_atoms; i++) {
        int32_t s = d->atom_start[i], t = d->atom_end[i];
        if (s < prev || t <= s || t > d->text_len)
            return sra_err_set(e, SRA_E_ARG,
                               "%s: doc %lld (record %lld) atom %lld: range [%d, %d) must be "
                               "non-empty, increasing and inside the text (%lld bytes)",
                               w->path, n, (long long)d->record, (long long)i, s, t,
                               (long long)d->text_len);
        prev = t;
        float tail = k ? d->tail_mass[i] : 1.0f;
        if (!isfinite(d->mass[i]) || d->mass[i] < 0 || !isfinite(tail))
            return sra_err_set(e, SRA_E_ARG, "%s: doc %lld atom %lld: mass %g / tail %g not finite",
                               w->path, n, (long long)i, d->mass[i], tail);
    }
    if (m->teacher_vocab_size > 0)
        for (int64_t i = 0; i < d->n_atoms * m->topk; i++)
            if (d->topk_ids[i] < 0 || d->topk_ids[i] >= m->teacher_vocab_size)
                return sra_err_set(e, SRA_E_ARG, "%s: doc %lld: top-k id %d outside [0, %lld)",
                                   w->path, n, d->topk_ids[i], (long long)m->teacher_vocab_size);
    return 0;
}

/* ======================================================= chunk output */

static int fail_h5(cache_writer *w, const char *what, const char *obj) {
    char h5[256];
    h5_last_error(h5, sizeof h5);
    w->failed = 1;
    return sra_err_set(&w->err, SRA_E_IO, "%s: %s %s failed: %s", w->tmp, what, obj, h5);
}

/* Writes the buffered rows of a as one chunk (zero-padded to full size,
 * as HDF5 stores edge chunks). */
static int app_flush(cache_writer *w, app *a) {
    if (a->nbuf == 0) return 0;
    size_t bytes = (size_t)a->chunk_rows * a->row_bytes;
    memset(a->buf + (size_t)a->nbuf * a->row_bytes, 0, bytes - (size_t)a->nbuf * a->row_bytes);
    const void *data = a->buf;
    size_t size = bytes;
    if (w->o.zstd_level > 0) {
        const void *src = a->buf;
        if (a->shuffle) {
            sra_shuffle(w->sbuf, a->buf, bytes / a->esize, a->esize);
            src = w->sbuf;
        }
        size = sra_zstd_compress(w->cctx, w->zbuf, w->zcap, src, bytes, w->o.zstd_level);
        if (size == 0) {
            w->failed = 1;
            return sra_err_set(&w->err, SRA_E_NOMEM, "%s: zstd failed on %s", w->tmp, a->name);
        }
        data = w->zbuf;
    }
    hsize_t dims[2] = {(hsize_t)(a->rows_done + a->nbuf), (hsize_t)a->cols};
    hsize_t off[2] = {(hsize_t)a->rows_done, 0};
    h5_lock();
    herr_t rc = H5Dset_extent(a->id, dims);
    if (rc >= 0) rc = H5Dwrite_chunk(a->id, H5P_DEFAULT, 0, off, size, data);
    int ret = rc < 0 ? fail_h5(w, "writing a chunk of", a->name) : 0;
    h5_unlock();
    a->rows_done += a->nbuf;
    a->nbuf = 0;
    return ret;
}

static int app_push(cache_writer *w, app *a, const void *rows, int64_t n) {
    const uint8_t *p = rows;
    while (n > 0) {
        int64_t take = a->chunk_rows - a->nbuf;
        if (take > n) take = n;
        memcpy(a->buf + (size_t)a->nbuf * a->row_bytes, p, (size_t)take * a->row_bytes);
        a->nbuf += take;
        p += (size_t)take * a->row_bytes;
        n -= take;
        if (a->nbuf == a->chunk_rows) {
            int rc = app_flush(w, a);
            if (rc) return rc;
        }
    }
    return 0;
}

/* Chunk rows per dataset. CoM chunks hold chunk_bytes (R_com rows). The
 * reader decodes blocks of whole documents (~8 MiB) and a chunk straddling
 * two blocks is decoded twice, so the other per-atom arrays must not have
 * chunks much longer (in rows) than CoM's: top-k gets at most
 * max(4 R_com, 256) rows, per-atom scalars 4096..65536 rows (tiny chunks
 * compress badly; their duplicate decode costs nothing), text 64 KiB. */
static int64_t chunk_rows_for(const cache_writer *w, int ds, size_t row_bytes) {
    int64_t r = (int64_t)(w->o.chunk_bytes / row_bytes);
    if (r < 1) r = 1;
    int64_t com = (int64_t)(w->o.chunk_bytes /
                            ((size_t)w->m.hidden_size * cache_dtype_size(w->m.hidden_dtype)));
    if (com < 1) com = 1;
    if (ds == DS_TEXT) return 65536;
    if (ds < DS_START || ds >= DS_COM0) return r;
    if (cache_ds_rank(ds) == 2) {
        int64_t lim = 4 * com > 256 ? 4 * com : 256;
        return r < lim ? r : lim;
    }
    int64_t rows = 4 * com < 4096 ? 4096 : 4 * com > 65536 ? 65536 : 4 * com;
    return rows;
}

static hid_t make_group(hid_t file, const char *name) {
    hid_t gcpl = H5Pcreate(H5P_GROUP_CREATE);
    H5Pset_obj_track_times(gcpl, 0); /* same inputs -> same bytes */
    hid_t g = H5Gcreate2(file, name, H5P_DEFAULT, gcpl, H5P_DEFAULT);
    H5Pclose(gcpl);
    return g;
}

static int create_app(cache_writer *w, int ds) {
    app *a = &w->ds[ds];
    elem_type et = cache_ds_type(&w->m, ds);
    cache_ds_name(ds, a->name);
    a->esize = cache_et_size(et);
    a->cols = cache_ds_cols(&w->m, ds);
    a->row_bytes = a->esize * (size_t)a->cols;
    a->chunk_rows = chunk_rows_for(w, ds, a->row_bytes);
    /* Shuffle default (-1): on for every multi-byte type; CACHE.md has the
     * measurements behind this choice. */
    a->shuffle = w->o.zstd_level > 0 && a->esize > 1 && w->o.shuffle != 0;
    size_t bytes = (size_t)a->chunk_rows * a->row_bytes;
    a->buf = malloc(bytes);
    if (!a->buf) return sra_err_set(&w->err, SRA_E_NOMEM, "out of memory for %s", a->name);
    if (sra_zstd_bound(bytes) > w->zcap) {
        w->zcap = sra_zstd_bound(bytes);
        free(w->zbuf);
        free(w->sbuf);
        w->zbuf = malloc(w->zcap);
        w->sbuf = malloc(w->zcap);
        if (!w->zbuf || !w->sbuf) return sra_err_set(&w->err, SRA_E_NOMEM, "out of memory");
    }
    int rank = cache_ds_rank(ds);
    hsize_t dims[2] = {0, (hsize_t)a->cols}, maxd[2] = {H5S_UNLIMITED, (hsize_t)a->cols};
    hsize_t chunk[2] = {(hsize_t)a->chunk_rows, (hsize_t)a->cols};
    hid_t space = H5Screate_simple(rank, dims, maxd);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_chunk(dcpl, rank, chunk);
    H5Pset_obj_track_times(dcpl, 0);
    if (a->shuffle) H5Pset_shuffle(dcpl);
    if (w->o.zstd_level > 0) {
        unsigned level = (unsigned)w->o.zstd_level;
        H5Pset_filter(dcpl, SRA_H5Z_ZSTD, H5Z_FLAG_MANDATORY, 1, &level);
    }
    hid_t ft = h5_file_type(et);
    a->id = H5Dcreate2(w->file, a->name, ft, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    H5Tclose(ft);
    H5Pclose(dcpl);
    H5Sclose(space);
    if (a->id < 0) return fail_h5(w, "creating", a->name);
    if (ds >= DS_COM0) {
        int32_t layer = w->m.layers[ds - DS_COM0];
        h5_attr_put_i64(a->id, "layer", layer);
        h5_attr_put_str(a->id, "dtype", w->m.hidden_dtype == CACHE_BF16 ? "bfloat16"
                                        : w->m.hidden_dtype == CACHE_F16 ? "float16" : "float32");
    }
    return 0;
}

static int write_blob(cache_writer *w, const char *name, const uint8_t *data, size_t n) {
    hsize_t dims = n, chunk = n < (1u << 20) ? n : (1u << 20);
    if (chunk == 0) chunk = 1;
    hid_t space = H5Screate_simple(1, &dims, NULL);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_chunk(dcpl, 1, &chunk);
    H5Pset_obj_track_times(dcpl, 0);
    if (w->o.zstd_level > 0) {
        unsigned level = (unsigned)w->o.zstd_level;
        H5Pset_filter(dcpl, SRA_H5Z_ZSTD, H5Z_FLAG_MANDATORY, 1, &level);
    }
    hid_t d = H5Dcreate2(w->file, name, H5T_STD_U8LE, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    herr_t rc = d < 0 ? -1 : n ? H5Dwrite(d, H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) : 0;
    if (d >= 0) H5Dclose(d);
    H5Pclose(dcpl);
    H5Sclose(space);
    return rc < 0 ? fail_h5(w, "writing", name) : 0;
}

static int write_meta(cache_writer *w, const cache_meta *m) {
    hid_t r = w->file;
    char created[32], tok_sha[65], stu_sha[65] = "";
    if (!m->created) sra_utc_iso8601(created);
    sra_sha256_hex(m->teacher_tokenizer_json, m->teacher_tokenizer_len, tok_sha);
    if (m->student_tokenizer_json && m->student_tokenizer_len)
        sra_sha256_hex(m->student_tokenizer_json, m->student_tokenizer_len, stu_sha);
    int bad = 0;
    bad |= h5_attr_put_str(r, "format", CACHE_FORMAT);
    bad |= h5_attr_put_i64(r, "format_version", CACHE_VERSION);
    bad |= h5_attr_put_str(r, "sra_version", m->sra_version ? m->sra_version : SRA_VERSION);
    bad |= h5_attr_put_str(r, "created", m->created ? m->created : created);
    bad |= h5_attr_put_str(r, "teacher_name", m->teacher_name);
    bad |= h5_attr_put_str(r, "teacher_config_sha256", m->teacher_config_sha256);
    bad |= h5_attr_put_str(r, "teacher_weights_sha256", m->teacher_weights_sha256);
    bad |= h5_attr_put_str(r, "teacher_tokenizer_sha256", tok_sha);
    bad |= h5_attr_put_i64(r, "teacher_vocab_size", m->teacher_vocab_size);
    bad |= h5_attr_put_str(r, "student_tokenizer_sha256",
                           m->student_tokenizer_sha256 ? m->student_tokenizer_sha256 : stu_sha);
    bad |= h5_attr_put_str(r, "atoms", m->atoms);
    bad |= h5_attr_put_str(r, "mass", m->mass);
    bad |= h5_attr_put_i32v(r, "layers", m->layers, m->n_layers);
    bad |= h5_attr_put_i64(r, "hidden_size", m->hidden_size);
    bad |= h5_attr_put_str(r, "hidden_dtype", cache_dtype_name(m->hidden_dtype));
    bad |= h5_attr_put_i64(r, "topk", m->topk);
    bad |= h5_attr_put_f64(r, "temperature", m->temperature);
    bad |= h5_attr_put_str(r, "topk_tail",
                           m->topk == 0
                               ? "no next-token top-k stored (topk = 0): the datasets topk_ids, "
                                 "topk_logprob and tail_mass are absent"
                               : "topk_logprob are log-probabilities normalized over the full teacher "
                                 "vocabulary (never renormalized over the top k); "
                                 "tail_mass = 1 - sum(exp(topk_logprob))");
    bad |= h5_attr_put_str(r, "dataset_sha256", m->dataset_sha256);
    bad |= h5_attr_put_i64(r, "record_start", m->record_start);
    bad |= h5_attr_put_i64(r, "record_end", m->record_end);
    bad |= h5_attr_put_i64(r, "shard_index", m->shard_index);
    bad |= h5_attr_put_i64(r, "shard_count", m->shard_count);
    bad |= h5_attr_put_str(r, "settings_json", m->settings_json ? m->settings_json : "{}");
    bad |= h5_attr_put_u8(r, "complete", 0);
    return bad ? fail_h5(w, "writing", "root attributes") : 0;
}

/* ============================================================== public */

int cache_writer_open(cache_writer **out, const char *path, const cache_meta *m,
                      const cache_write_opts *opts) {
    cache_writer *w = calloc(1, sizeof *w);
    *out = w;
    if (!w) return SRA_E_NOMEM;
    w->file = H5I_INVALID_HID;
    for (int i = 0; i < DS_MAX; i++) w->ds[i].id = H5I_INVALID_HID;
    w->path = strdup(path);
    w->tmp = malloc(strlen(path) + 5);
    if (!w->path || !w->tmp) return sra_err_set(&w->err, SRA_E_NOMEM, "out of memory");
    sprintf(w->tmp, "%s.tmp", path);
    if (opts) w->o = *opts; else cache_write_opts_default(&w->o);
    if (w->o.chunk_bytes == 0) w->o.chunk_bytes = 256 << 10;
    if (w->o.zstd_level < 0 || w->o.zstd_level > 22)
        return sra_err_set(&w->err, SRA_E_ARG, "%s: zstd level %d, expected 0..22", path,
                           w->o.zstd_level);
    int rc = check_meta(w, m);
    if (rc) return rc;
    w->m = *m;
    w->nds = cache_n_datasets(m);
    w->cctx = sra_zstd_cctx_new();
    if (!w->cctx) return sra_err_set(&w->err, SRA_E_NOMEM, "out of memory");

    h5_lock();
    h5_init_thread();
    /* The HDF5 1.10 file format: its object headers, heaps and chunk
     * indexes (extensible/fixed arrays) carry checksums, so damaged
     * metadata is reported instead of misread. Readable by HDF5 >= 1.10
     * (h5py, h5dump and friends since 2016). */
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    H5Pset_libver_bounds(fapl, H5F_LIBVER_V110, H5F_LIBVER_V110);
    /* the root group too must not stamp times: same inputs -> same bytes */
    hid_t fcpl = H5Pcreate(H5P_FILE_CREATE);
    H5Pset_obj_track_times(fcpl, 0);
    w->file = H5Fcreate(w->tmp, H5F_ACC_TRUNC, fcpl, fapl);
    H5Pclose(fcpl);
    H5Pclose(fapl);
    if (w->file < 0) {
        h5_unlock();
        char h5[256];
        h5_last_error(h5, sizeof h5);
        return sra_err_set(&w->err, SRA_E_IO, "%s: cannot create: %s (is the directory writable?)",
                           w->tmp, h5);
    }
    rc = write_meta(w, m);
    static const char *groups[] = {"/docs", "/atoms", "/atoms/com", "/teacher"};
    for (size_t i = 0; !rc && i < sizeof groups / sizeof *groups; i++) {
        hid_t g = make_group(w->file, groups[i]);
        if (g < 0) rc = fail_h5(w, "creating group", groups[i]);
        else H5Gclose(g);
    }
    for (int ds = 0; !rc && ds < w->nds; ds++)
        if (cache_ds_present(m, ds)) rc = create_app(w, ds);
    if (!rc) rc = write_blob(w, cache_blob_name[BLOB_TEACHER_TOK], m->teacher_tokenizer_json,
                             m->teacher_tokenizer_len);
    if (!rc) rc = write_blob(w, cache_blob_name[BLOB_TEACHER_CFG], m->teacher_config_json,
                             m->teacher_config_len);
    if (!rc && m->student_tokenizer_json && m->student_tokenizer_len) {
        hid_t g = make_group(w->file, "/student");
        if (g >= 0) H5Gclose(g);
        rc = write_blob(w, cache_blob_name[BLOB_STUDENT_TOK], m->student_tokenizer_json,
                        m->student_tokenizer_len);
    }
    h5_unlock();
    /* Strings and blobs belong to the caller and are written: keep only
     * the scalars (shapes, ids bound) that validate later documents. */
    cache_meta scalars = {0};
    scalars.teacher_vocab_size = m->teacher_vocab_size;
    scalars.n_layers = m->n_layers;
    memcpy(scalars.layers, m->layers, sizeof scalars.layers);
    scalars.hidden_size = m->hidden_size;
    scalars.hidden_dtype = m->hidden_dtype;
    scalars.topk = m->topk;
    w->m = scalars;
    if (rc) { w->failed = 1; return rc; }
    int64_t zero = 0;
    rc = app_push(w, &w->ds[DS_TEXT_OFF], &zero, 1);
    if (!rc) rc = app_push(w, &w->ds[DS_ATOM_OFF], &zero, 1);
    return rc;
}

int cache_writer_add(cache_writer *w, const cache_doc *d) {
    if (w->failed || w->finished)
        return sra_err_set(&w->err, SRA_E_ARG, "%s: writer is %s", w->path,
                           w->failed ? "in an error state" : "finished");
    int rc = check_doc(w, d);
    if (rc) return rc;
    int64_t A = d->n_atoms;
    int64_t text_end = w->n_text + d->text_len, atom_end = w->n_atoms + A;
    if ((rc = app_push(w, &w->ds[DS_TEXT], d->text, d->text_len)) ||
        (rc = app_push(w, &w->ds[DS_TEXT_OFF], &text_end, 1)) ||
        (rc = app_push(w, &w->ds[DS_ATOM_OFF], &atom_end, 1)) ||
        (rc = app_push(w, &w->ds[DS_LOSS], &d->loss_start, 1)) ||
        (rc = app_push(w, &w->ds[DS_REC], &d->record, 1)) ||
        (rc = app_push(w, &w->ds[DS_START], d->atom_start, A)) ||
        (rc = app_push(w, &w->ds[DS_END], d->atom_end, A)) ||
        (rc = app_push(w, &w->ds[DS_MASS], d->mass, A)))
        return rc;
    if (w->m.topk > 0 &&
        ((rc = app_push(w, &w->ds[DS_IDS], d->topk_ids, A)) ||
         (rc = app_push(w, &w->ds[DS_LP], d->topk_logprob, A)) ||
         (rc = app_push(w, &w->ds[DS_TAIL], d->tail_mass, A))))
        return rc;
    for (int j = 0; j < w->m.n_layers; j++)
        if ((rc = app_push(w, &w->ds[DS_COM0 + j], d->com[j], A))) return rc;
    w->n_text = text_end;
    w->n_atoms = atom_end;
    w->n_docs++;
    return 0;
}

static void close_all(cache_writer *w) {
    for (int i = 0; i < DS_MAX; i++)
        if (w->ds[i].id >= 0) { H5Dclose(w->ds[i].id); w->ds[i].id = H5I_INVALID_HID; }
    if (w->file >= 0) { H5Fclose(w->file); w->file = H5I_INVALID_HID; }
}

static int fsync_path(const char *path, int dir) {
    int fd = open(path, dir ? O_RDONLY | O_DIRECTORY : O_RDONLY);
    if (fd < 0) return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

int cache_writer_set_stats(cache_writer *w, const char *stats_json) {
    char *s = strdup(stats_json ? stats_json : "{}");
    if (!s) return sra_err_set(&w->err, SRA_E_NOMEM, "%s: out of memory", w->path);
    free(w->stats);
    w->stats = s;
    return 0;
}

int cache_writer_finish(cache_writer *w) {
    if (w->failed || w->finished)
        return sra_err_set(&w->err, SRA_E_ARG, "%s: writer is %s", w->path,
                           w->failed ? "in an error state" : "finished");
    for (int ds = 0; ds < w->nds; ds++) {
        int rc = app_flush(w, &w->ds[ds]);
        if (rc) return rc;
    }
    h5_lock();
    int rc = 0;
    if (w->stats && h5_attr_put_str(w->file, "stats_json", w->stats)) rc = fail_h5(w, "writing", "stats_json");
    if (!rc && h5_attr_put_u8(w->file, "complete", 1)) rc = fail_h5(w, "setting", "complete");
    close_all(w);
    h5_unlock();
    if (rc) return rc;
    w->finished = 1;
    if (fsync_path(w->tmp, 0) || rename(w->tmp, w->path)) {
        w->failed = 1;
        return sra_err_set(&w->err, SRA_E_IO, "%s: cannot sync/rename to %s: %s", w->tmp, w->path,
                           strerror(errno));
    }
    /* make the rename itself durable */
    char *dir = strdup(w->path);
    if (dir) {
        char *slash = strrchr(dir, '/');
        if (slash) { *slash = 0; fsync_path(slash == dir ? "/" : dir, 1); }
        else fsync_path(".", 1);
        free(dir);
    }
    return 0;
}

void cache_writer_free(cache_writer *w) {
    if (!w) return;
    if (w->file >= 0) {
        h5_lock();
        close_all(w);
        h5_unlock();
    }
    if (!w->finished && w->tmp) unlink(w->tmp); /* never leave a half file behind */
    for (int i = 0; i < DS_MAX; i++) free(w->ds[i].buf);
    sra_zstd_cctx_free(w->cctx);
    free(w->zbuf);
    free(w->sbuf);
    free(w->stats);
    free(w->path);
    free(w->tmp);
    free(w);
}
