/*
 * cache_head.c - the teacher's LM head beside the shards (cache_head.h):
 * written once per cache folder as a one-tensor safetensors file, checked
 * against the manifest's sha256 when opened, read a row at a time.
 *
 * The file is ours to write but safetensors.h's to read: st_open maps it
 * and validates the header (offsets, sizes, dtypes) as it does for any
 * checkpoint, so the reader trusts nothing this module wrote.
 */
#include "cache_head.h"

#include <cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "safetensors.h"

struct cache_head {
    sra_err err;
    char *path;
    st_file *st;
    const st_tensor *t; /* lm_head.weight, (V, d) */
    cache_head_info info;
};

static size_t dtype_size(const char *dt) {
    return !strcmp(dt, "F32") ? 4 : (!strcmp(dt, "F16") || !strcmp(dt, "BF16")) ? 2 : 0;
}

static char *join(const char *dir, const char *name) {
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    if (p) snprintf(p, n, "%s/%s", dir, name);
    return p;
}

/* ============================================================== writer */

/* The file's first bytes: u64 LE length, then the JSON header padded with
 * spaces to a multiple of 8 (so the data starts aligned, as the reference
 * writer does). */
static int build_header(const cache_head_src *s, size_t nbytes, uint8_t **out, size_t *len, sra_err *e) {
    cJSON *root = cJSON_CreateObject(), *meta = cJSON_CreateObject(), *t = cJSON_CreateObject();
    cJSON *shape = cJSON_CreateArray(), *offs = cJSON_CreateArray();
    if (!root || !meta || !t || !shape || !offs) {
        cJSON_Delete(root); cJSON_Delete(meta); cJSON_Delete(t); cJSON_Delete(shape); cJSON_Delete(offs);
        return sra_err_set(e, SRA_E_NOMEM, "out of memory");
    }
    cJSON_AddStringToObject(meta, "format", CACHE_HEAD_FORMAT);
    cJSON_AddStringToObject(meta, "format_version", "1");
    cJSON_AddStringToObject(meta, "source_tensor", s->source_tensor ? s->source_tensor : "");
    cJSON_AddStringToObject(meta, "source_file", s->source_file ? s->source_file : "");
    cJSON_AddStringToObject(meta, "source_file_sha256", s->source_sha256 ? s->source_sha256 : "");
    cJSON_AddItemToObject(root, "__metadata__", meta);
    cJSON_AddStringToObject(t, "dtype", s->dtype);
    cJSON_AddItemToArray(shape, cJSON_CreateNumber((double)s->rows));
    cJSON_AddItemToArray(shape, cJSON_CreateNumber((double)s->cols));
    cJSON_AddItemToObject(t, "shape", shape);
    cJSON_AddItemToArray(offs, cJSON_CreateNumber(0));
    cJSON_AddItemToArray(offs, cJSON_CreateNumber((double)nbytes));
    cJSON_AddItemToObject(t, "data_offsets", offs);
    cJSON_AddItemToObject(root, CACHE_HEAD_TENSOR, t);
    char *js = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    if (!js) return sra_err_set(e, SRA_E_NOMEM, "out of memory");
    size_t n = strlen(js), padded = (n + 7) / 8 * 8;
    uint8_t *b = malloc(8 + padded);
    if (!b) { free(js); return sra_err_set(e, SRA_E_NOMEM, "out of memory"); }
    for (int i = 0; i < 8; i++) b[i] = (uint8_t)((uint64_t)padded >> (8 * i));
    memcpy(b + 8, js, n);
    memset(b + 8 + n, ' ', padded - n);
    free(js);
    *out = b;
    *len = 8 + padded;
    return 0;
}

/* 1 when the file at path holds exactly hdr then data, 0 when it differs,
 * < 0 when it cannot be read. */
static int same_file(const char *path, const uint8_t *hdr, size_t hlen, const void *data, size_t nbytes,
                     sra_err *e) {
    FILE *f = fopen(path, "rb");
    if (!f) return sra_err_set(e, SRA_E_IO, "%s: cannot read: %s", path, strerror(errno));
    struct stat st;
    int same = fstat(fileno(f), &st) == 0 && (uint64_t)st.st_size == (uint64_t)hlen + nbytes;
    enum { BLK = 1 << 20 };
    uint8_t *buf = same ? malloc(BLK) : NULL;
    if (same && !buf) { fclose(f); return sra_err_set(e, SRA_E_NOMEM, "out of memory"); }
    const uint8_t *want[2] = {hdr, data};
    size_t wlen[2] = {hlen, nbytes};
    for (int part = 0; same && part < 2; part++)
        for (size_t off = 0; same && off < wlen[part]; off += BLK) {
            size_t n = wlen[part] - off < BLK ? wlen[part] - off : BLK;
            same = fread(buf, 1, n, f) == n && !memcmp(buf, want[part] + off, n);
        }
    free(buf);
    fclose(f);
    return same;
}

static void fsync_dir(const char *dir) {
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd >= 0) { fsync(fd); close(fd); }
}

int cache_head_write(const char *dir, const cache_head_src *s, sra_err *e) {
    size_t es = s->dtype ? dtype_size(s->dtype) : 0;
    if (!es || s->rows < 1 || s->cols < 1 || !s->data)
        return sra_err_set(e, SRA_E_ARG, "%s/%s: the head must be a (V, d) F32, F16 or BF16 tensor (got %s [%lld, %lld])",
                           dir, CACHE_HEAD_FILE, s->dtype ? s->dtype : "(no dtype)", (long long)s->rows,
                           (long long)s->cols);
    size_t nbytes = (size_t)s->rows * (size_t)s->cols * es, hlen = 0;
    uint8_t *hdr = NULL;
    int rc = build_header(s, nbytes, &hdr, &hlen, e);
    if (rc) return rc;
    char *path = join(dir, CACHE_HEAD_FILE), *tmp = path ? malloc(strlen(path) + 32) : NULL;
    if (!tmp) { free(path); free(hdr); return sra_err_set(e, SRA_E_NOMEM, "out of memory"); }
    /* per process: the tasks of a sharded extraction may write at once */
    sprintf(tmp, "%s.%ld.tmp", path, (long)getpid());
    struct stat st;
    if (stat(path, &st) == 0) {
        rc = same_file(path, hdr, hlen, s->data, nbytes, e);
        if (rc == 0)
            rc = sra_err_set(e, SRA_E_ARG,
                             "%s exists and differs from the head of this teacher (%s of %s, %s [%lld, %lld]): "
                             "it belongs to another extraction; use a new --out, or remove the file",
                             path, s->source_tensor ? s->source_tensor : "?", s->source_file ? s->source_file : "?",
                             s->dtype, (long long)s->rows, (long long)s->cols);
        else if (rc == 1) rc = 0; /* the same bytes: keep it */
        goto out;
    }
    FILE *f = fopen(tmp, "wb");
    if (!f) { rc = sra_err_set(e, SRA_E_IO, "%s: cannot create: %s", tmp, strerror(errno)); goto out; }
    int ok = fwrite(hdr, 1, hlen, f) == hlen && fwrite(s->data, 1, nbytes, f) == nbytes && fflush(f) == 0 &&
             fsync(fileno(f)) == 0;
    int err = errno;
    if (fclose(f) != 0 && ok) { ok = 0; err = errno; }
    if (!ok || rename(tmp, path) != 0) {
        if (ok) err = errno;
        unlink(tmp);
        rc = sra_err_set(e, SRA_E_IO, "%s: cannot write: %s", path, strerror(err));
        goto out;
    }
    fsync_dir(dir);
out:
    free(hdr);
    free(path);
    free(tmp);
    return rc;
}

/* ============================================================== reader */

static void copy_str(char *dst, size_t n, const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    snprintf(dst, n, "%s", cJSON_IsString(v) ? v->valuestring : "");
}

/* Checks the file at path (st_open validates the safetensors layout) and
 * fills info's name, dtype, shape, size and source fields; V, d > 0 are
 * the expected shape. On success *keep holds the open file. */
static int verify(const char *path, int64_t V, int64_t d, const char *want_dtype, cache_head_info *info,
                  st_file **keep, sra_err *e) {
    st_file *f = NULL;
    *keep = NULL;
    if (st_open(&f, path)) {
        int rc = sra_err_set(e, f ? SRA_E_FORMAT : SRA_E_NOMEM, "%s", st_errmsg(f));
        st_close(f);
        return rc;
    }
    int n = st_count(f);
    const st_tensor *t = n == 1 ? st_at(f, 0) : NULL;
    int rc = 0;
    if (!t || strcmp(t->name, CACHE_HEAD_TENSOR))
        rc = sra_err_set(e, SRA_E_FORMAT, "%s: expected exactly one tensor, %s; found %d (first: %s)", path,
                         CACHE_HEAD_TENSOR, n, n ? st_at(f, 0)->name : "none");
    else if (t->dtype == ST_OTHER)
        rc = sra_err_set(e, SRA_E_FORMAT, "%s: %s has dtype %s, expected F32, F16 or BF16", path, t->name,
                         t->dtype_str);
    else if (t->ndim != 2 || t->shape[0] != V || t->shape[1] != d)
        rc = sra_err_set(e, SRA_E_FORMAT,
                         "%s: %s has %d dims [%lld, %lld], expected [%lld, %lld] (teacher vocabulary x hidden size)",
                         path, t->name, t->ndim, (long long)t->shape[0], (long long)(t->ndim > 1 ? t->shape[1] : 0),
                         (long long)V, (long long)d);
    else if (want_dtype && strcmp(want_dtype, t->dtype_str))
        rc = sra_err_set(e, SRA_E_FORMAT, "%s: %s has dtype %s, but manifest.json says %s", path, t->name,
                         t->dtype_str, want_dtype);
    if (rc) { st_close(f); return rc; }
    const char *slash = strrchr(path, '/');
    snprintf(info->file, sizeof info->file, "%s", slash ? slash + 1 : path);
    snprintf(info->dtype, sizeof info->dtype, "%s", t->dtype_str);
    info->shape[0] = V;
    info->shape[1] = d;
    struct stat st;
    info->bytes = stat(path, &st) == 0 ? (int64_t)st.st_size : -1;
    /* the source fields: __metadata__ of the header st_open just validated */
    FILE *fp = fopen(path, "rb");
    uint8_t len8[8];
    if (fp && fread(len8, 1, 8, fp) == 8) {
        uint64_t hl = 0;
        for (int i = 0; i < 8; i++) hl |= (uint64_t)len8[i] << (8 * i);
        char *h = hl < (100u << 20) ? malloc((size_t)hl + 1) : NULL;
        if (h && fread(h, 1, (size_t)hl, fp) == hl) {
            cJSON *root = cJSON_ParseWithLength(h, (size_t)hl);
            const cJSON *m = cJSON_GetObjectItemCaseSensitive(root, "__metadata__");
            copy_str(info->source_tensor, sizeof info->source_tensor, m, "source_tensor");
            copy_str(info->source_file, sizeof info->source_file, m, "source_file");
            copy_str(info->source_sha256, sizeof info->source_sha256, m, "source_file_sha256");
            cJSON_Delete(root);
        }
        free(h);
    }
    if (fp) fclose(fp);
    *keep = f;
    return 0;
}

int cache_head_check(const char *dir, int64_t V, int64_t d, cache_head_info *info, sra_err *e) {
    memset(info, 0, sizeof *info);
    char *path = join(dir, CACHE_HEAD_FILE);
    if (!path) return sra_err_set(e, SRA_E_NOMEM, "out of memory");
    struct stat st;
    int rc = 0;
    st_file *f = NULL;
    if (stat(path, &st) != 0)
        rc = sra_err_set(e, SRA_E_MISSING,
                         "%s: missing (%s): every sra-extract process of this cache writes it; run one again, "
                         "then --finalize", path, strerror(errno));
    if (!rc) rc = verify(path, V, d, NULL, info, &f, e);
    if (!rc) rc = sra_sha256_file(path, info->sha256, e);
    st_close(f);
    free(path);
    return rc;
}

const char *cache_head_errmsg(const cache_head *h) { return h ? h->err.msg : "out of memory"; }
const char *cache_head_path(const cache_head *h) { return h->path; }
const cache_head_info *cache_head_get_info(const cache_head *h) { return &h->info; }
int64_t cache_head_vocab(const cache_head *h) { return h->info.shape[0]; }
int64_t cache_head_dim(const cache_head *h) { return h->info.shape[1]; }

static int is_hex64(const char *s) {
    if (strlen(s) != 64) return 0;
    for (; *s; s++)
        if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f'))) return 0;
    return 1;
}

static int open_in(cache_head *h, const char *dir) {
    sra_err *e = &h->err;
    char *mpath = join(dir, "manifest.json");
    if (!mpath) return sra_err_set(e, SRA_E_NOMEM, "out of memory");
    size_t n;
    char *text = sra_read_file(mpath, &n);
    if (!text) {
        int rc = sra_err_set(e, SRA_E_IO, "%s: cannot read (%s): a cache folder gets its manifest from "
                             "sra-extract (or sra-extract --finalize)", mpath, strerror(errno));
        free(mpath);
        return rc;
    }
    cJSON *man = cJSON_ParseWithLength(text, n);
    free(text);
    const cJSON *o = man ? cJSON_GetObjectItemCaseSensitive(man, "teacher_head") : NULL;
    int rc = 0;
    if (!man) rc = sra_err_set(e, SRA_E_FORMAT, "%s: not valid JSON", mpath);
    else if (!o || cJSON_IsNull(o))
        rc = sra_err_set(e, SRA_E_MISSING,
                         "%s: no \"teacher_head\": this cache was made before the teacher's LM head travelled "
                         "with it (shards of format version 1); re-extract it with this sra-extract",
                         mpath);
    const cJSON *file = o ? cJSON_GetObjectItemCaseSensitive(o, "file") : NULL;
    const cJSON *sha = o ? cJSON_GetObjectItemCaseSensitive(o, "sha256") : NULL;
    const cJSON *bytes = o ? cJSON_GetObjectItemCaseSensitive(o, "bytes") : NULL;
    const cJSON *dt = o ? cJSON_GetObjectItemCaseSensitive(o, "dtype") : NULL;
    const cJSON *shape = o ? cJSON_GetObjectItemCaseSensitive(o, "shape") : NULL;
    const cJSON *s0 = cJSON_GetArrayItem(shape, 0), *s1 = cJSON_GetArrayItem(shape, 1);
    if (!rc && (!cJSON_IsString(file) || !file->valuestring[0] || strchr(file->valuestring, '/') ||
                !cJSON_IsString(sha) || !is_hex64(sha->valuestring) || !cJSON_IsNumber(bytes) ||
                !cJSON_IsString(dt) || !dtype_size(dt->valuestring) || cJSON_GetArraySize(shape) != 2 ||
                !cJSON_IsNumber(s0) || !cJSON_IsNumber(s1) || s0->valuedouble < 1 || s1->valuedouble < 1 ||
                s0->valuedouble > 1e12 || s1->valuedouble > 1e12))
        rc = sra_err_set(e, SRA_E_FORMAT,
                         "%s: \"teacher_head\" needs \"file\" (a name in the folder), \"sha256\" (64 hex digits), "
                         "\"bytes\", \"dtype\" (F32, F16 or BF16) and \"shape\" [V, d]",
                         mpath);
    if (!rc && !(h->path = join(dir, file->valuestring))) rc = sra_err_set(e, SRA_E_NOMEM, "out of memory");
    char hex[65];
    if (!rc && sra_sha256_file(h->path, hex, e)) rc = e->code;
    if (!rc && strcmp(hex, sha->valuestring))
        rc = sra_err_set(e, SRA_E_CORRUPT,
                         "%s: sha256 is %s, but %s says %s: the head was changed or damaged after extraction "
                         "(restore it, or re-extract the cache)",
                         h->path, hex, mpath, sha->valuestring);
    if (!rc) rc = verify(h->path, (int64_t)s0->valuedouble, (int64_t)s1->valuedouble, dt->valuestring, &h->info,
                         &h->st, e);
    if (!rc && (double)h->info.bytes != bytes->valuedouble)
        rc = sra_err_set(e, SRA_E_CORRUPT, "%s: %lld bytes, but %s says %.0f", h->path, (long long)h->info.bytes,
                         mpath, bytes->valuedouble);
    if (!rc) {
        memcpy(h->info.sha256, hex, sizeof hex);
        h->t = st_at(h->st, 0);
    }
    cJSON_Delete(man);
    free(mpath);
    return rc;
}

int cache_head_open(cache_head **out, const char *dir) {
    cache_head *h = calloc(1, sizeof *h);
    *out = h;
    if (!h) return SRA_E_NOMEM;
    return open_in(h, dir);
}

void cache_head_close(cache_head *h) {
    if (!h) return;
    st_close(h->st);
    free(h->path);
    free(h);
}

int cache_head_rows(cache_head *h, const int32_t *ids, int n, float *out) {
    if (!h->t) return sra_err_set(&h->err, SRA_E_ARG, "cache_head_rows: the head did not open");
    int64_t V = h->info.shape[0], d = h->info.shape[1];
    for (int i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= V)
            return sra_err_set(&h->err, SRA_E_ARG, "%s: row %d (id %d) outside the teacher vocabulary [0, %lld)",
                               h->path, i, ids[i], (long long)V);
        st_to_f32(h->t, (size_t)ids[i] * (size_t)d, (size_t)d, out + (size_t)i * (size_t)d);
    }
    return 0;
}
