/*
 * cache_h5.c - schema table and HDF5 helpers shared by the cache writer and
 * reader (cache_internal.h).
 */
#include "cache_internal.h"

#include <stdlib.h>
#include <string.h>

#include "zstd_filter.h"

/* ============================================================= schema */

const ds_schema cache_schema[DS_COM0 + 1] = {
    [DS_TEXT] = {"/docs/text", ET_U8, ROWS_TEXT, COLS_1},
    [DS_TEXT_OFF] = {"/docs/text_offsets", ET_I64, ROWS_DOCS1, COLS_1},
    [DS_ATOM_OFF] = {"/docs/atom_offsets", ET_I64, ROWS_DOCS1, COLS_1},
    [DS_LOSS] = {"/docs/loss_start", ET_I64, ROWS_DOCS, COLS_1},
    [DS_REC] = {"/docs/record", ET_I64, ROWS_DOCS, COLS_1},
    [DS_START] = {"/atoms/start", ET_I32, ROWS_ATOMS, COLS_1},
    [DS_END] = {"/atoms/end", ET_I32, ROWS_ATOMS, COLS_1},
    [DS_MASS] = {"/atoms/mass", ET_F32, ROWS_ATOMS, COLS_1},
    [DS_IDS] = {"/atoms/topk_ids", ET_I32, ROWS_ATOMS, COLS_K},
    [DS_LP] = {"/atoms/topk_logprob", ET_F16, ROWS_ATOMS, COLS_K},
    [DS_TAIL] = {"/atoms/tail_mass", ET_F32, ROWS_ATOMS, COLS_1},
    [DS_COM0] = {"/atoms/com", ET_BF16, ROWS_ATOMS, COLS_D},
};

const char *const cache_blob_name[BLOB_N] = {
    "/teacher/tokenizer_json", "/teacher/config_json", "/student/tokenizer_json"};

int cache_n_datasets(const cache_meta *m) { return DS_COM0 + m->n_layers; }

void cache_ds_name(int ds, char out[64]) {
    if (ds < DS_COM0) snprintf(out, 64, "%s", cache_schema[ds].name);
    else snprintf(out, 64, "/atoms/com/%d", ds - DS_COM0);
}

elem_type cache_ds_type(const cache_meta *m, int ds) {
    if (ds < DS_COM0) return cache_schema[ds].et;
    switch (m->hidden_dtype) {
    case CACHE_F32: return ET_F32;
    case CACHE_F16: return ET_F16;
    default: return ET_BF16;
    }
}

size_t cache_et_size(elem_type t) {
    switch (t) {
    case ET_U8: return 1;
    case ET_F16: case ET_BF16: return 2;
    case ET_I32: case ET_F32: return 4;
    default: return 8;
    }
}

int64_t cache_ds_cols(const cache_meta *m, int ds) {
    cols_kind c = cache_schema[ds < DS_COM0 ? ds : DS_COM0].cols;
    return c == COLS_K ? m->topk : c == COLS_D ? m->hidden_size : 1;
}

int cache_ds_present(const cache_meta *m, int ds) {
    return m->topk > 0 || (ds != DS_IDS && ds != DS_LP && ds != DS_TAIL);
}

int cache_ds_rank(int ds) { return cache_schema[ds < DS_COM0 ? ds : DS_COM0].cols == COLS_1 ? 1 : 2; }

const char *cache_dtype_name(cache_dtype t) {
    return t == CACHE_F32 ? "f32" : t == CACHE_F16 ? "f16" : "bf16";
}

int cache_dtype_parse(const char *s, cache_dtype *t) {
    if (!strcmp(s, "f32")) *t = CACHE_F32;
    else if (!strcmp(s, "f16")) *t = CACHE_F16;
    else if (!strcmp(s, "bf16")) *t = CACHE_BF16;
    else return -1;
    return 0;
}

size_t cache_dtype_size(cache_dtype t) { return t == CACHE_F32 ? 4 : 2; }

/* ========================================================= HDF5 lock */

static pthread_mutex_t g_h5 = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t g_once = PTHREAD_ONCE_INIT;

void h5_lock(void) { pthread_mutex_lock(&g_h5); }
void h5_unlock(void) { pthread_mutex_unlock(&g_h5); }

static void init_once(void) { sra_zstd_filter_register(); }

void h5_init_thread(void) {
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    pthread_once(&g_once, init_once);
}

typedef struct { char *buf; size_t n; } walk_ctx;

static herr_t walk_cb(unsigned n, const H5E_error2_t *err, void *data) {
    walk_ctx *w = data;
    (void)n;
    /* Walking downward, the last entry is the innermost cause. */
    if (err->desc && err->desc[0]) snprintf(w->buf, w->n, "%s", err->desc);
    return 0;
}

void h5_last_error(char *buf, size_t n) {
    walk_ctx w = {buf, n};
    buf[0] = 0;
    H5Ewalk2(H5E_DEFAULT, H5E_WALK_DOWNWARD, walk_cb, &w);
    if (!buf[0]) snprintf(buf, n, "unknown HDF5 error");
}

/* ============================================================= types */

hid_t h5_file_type(elem_type t) {
    switch (t) {
    case ET_U8: return H5Tcopy(H5T_STD_U8LE);
    case ET_I32: return H5Tcopy(H5T_STD_I32LE);
    case ET_I64: return H5Tcopy(H5T_STD_I64LE);
    case ET_F32: return H5Tcopy(H5T_IEEE_F32LE);
    case ET_BF16: return H5Tcopy(H5T_STD_U16LE);
    case ET_F16: {
        /* IEEE binary16, built the way h5py builds numpy.float16 so that
         * h5py maps it back to float16: sign bit 15, exponent 10..14
         * (bias 15), mantissa 0..9. */
        hid_t f = H5Tcopy(H5T_IEEE_F32LE);
        H5Tset_fields(f, 15, 10, 5, 0, 10);
        H5Tset_size(f, 2);
        H5Tset_ebias(f, 15);
        return f;
    }
    }
    return H5I_INVALID_HID;
}


/* ======================================================== attributes */

static int put_attr(hid_t obj, const char *name, hid_t type, hid_t space, const void *v) {
    if (H5Aexists(obj, name) > 0) H5Adelete(obj, name);
    hid_t a = H5Acreate2(obj, name, type, space, H5P_DEFAULT, H5P_DEFAULT);
    if (a < 0) return -1;
    herr_t rc = H5Awrite(a, type, v);
    H5Aclose(a);
    return rc < 0 ? -1 : 0;
}

/* Fixed-length strings, not variable-length: a fixed string lives inside
 * the attribute message, which the 1.10 format checksums, while a variable
 * one lives in HDF5's global heap, which has no checksum and which HDF5
 * follows blindly (a flipped length byte there crashes H5Aread; found by
 * flipping bytes of real caches). */
int h5_attr_put_str(hid_t obj, const char *name, const char *v) {
    const char *p = v ? v : "";
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, strlen(p) + 1);
    H5Tset_strpad(t, H5T_STR_NULLTERM);
    H5Tset_cset(t, H5T_CSET_UTF8);
    hid_t s = H5Screate(H5S_SCALAR);
    int rc = put_attr(obj, name, t, s, p);
    H5Sclose(s);
    H5Tclose(t);
    return rc;
}

static int put_scalar(hid_t obj, const char *name, hid_t type, const void *v) {
    hid_t s = H5Screate(H5S_SCALAR);
    int rc = put_attr(obj, name, type, s, v);
    H5Sclose(s);
    return rc;
}

int h5_attr_put_i64(hid_t obj, const char *name, int64_t v) {
    return put_scalar(obj, name, H5T_STD_I64LE, &v);
}
int h5_attr_put_f64(hid_t obj, const char *name, double v) {
    return put_scalar(obj, name, H5T_IEEE_F64LE, &v);
}
int h5_attr_put_u8(hid_t obj, const char *name, uint8_t v) {
    return put_scalar(obj, name, H5T_STD_U8LE, &v);
}

int h5_attr_put_i32v(hid_t obj, const char *name, const int32_t *v, int n) {
    hsize_t dims = (hsize_t)n;
    hid_t s = H5Screate_simple(1, &dims, NULL);
    int rc = put_attr(obj, name, H5T_STD_I32LE, s, v);
    H5Sclose(s);
    return rc;
}

static hid_t open_attr(hid_t obj, const char *name) {
    if (H5Aexists(obj, name) <= 0) return H5I_INVALID_HID;
    return H5Aopen(obj, name, H5P_DEFAULT);
}

int h5_attr_get_str(hid_t obj, const char *name, char **out) {
    *out = NULL;
    hid_t a = open_attr(obj, name);
    if (a < 0) return 0;
    int rc = -1;
    hid_t ft = H5Aget_type(a);
    if (H5Tget_class(ft) != H5T_STRING) goto done;
    if (H5Tis_variable_str(ft) > 0) {
        hid_t mt = H5Tcopy(H5T_C_S1);
        H5Tset_size(mt, H5T_VARIABLE);
        H5Tset_cset(mt, H5Tget_cset(ft));
        char *p = NULL;
        if (H5Aread(a, mt, &p) >= 0) {
            *out = strdup(p ? p : "");
            rc = *out ? 1 : -1;
            H5free_memory(p);
        }
        H5Tclose(mt);
    } else {
        size_t n = H5Tget_size(ft);
        hid_t mt = H5Tcopy(H5T_C_S1);
        H5Tset_size(mt, n + 1); /* room for a terminator whatever the pad */
        H5Tset_cset(mt, H5Tget_cset(ft));
        char *p = calloc(n + 2, 1);
        if (p && H5Aread(a, mt, p) >= 0) { *out = p; rc = 1; } else free(p);
        H5Tclose(mt);
    }
done:
    H5Tclose(ft);
    H5Aclose(a);
    return rc;
}

static int get_num(hid_t obj, const char *name, hid_t memtype, void *v) {
    hid_t a = open_attr(obj, name);
    if (a < 0) return 0;
    hid_t s = H5Aget_space(a);
    hid_t ft = H5Aget_type(a);
    H5T_class_t c = H5Tget_class(ft);
    int ok = H5Sget_simple_extent_npoints(s) == 1 && (c == H5T_INTEGER || c == H5T_FLOAT) &&
             H5Aread(a, memtype, v) >= 0;
    H5Tclose(ft);
    H5Sclose(s);
    H5Aclose(a);
    return ok ? 1 : -1;
}

int h5_attr_get_i64(hid_t obj, const char *name, int64_t *v) {
    return get_num(obj, name, H5T_NATIVE_INT64, v);
}
int h5_attr_get_f64(hid_t obj, const char *name, double *v) {
    return get_num(obj, name, H5T_NATIVE_DOUBLE, v);
}

int h5_attr_get_i32v(hid_t obj, const char *name, int32_t *v, int max, int *n) {
    hid_t a = open_attr(obj, name);
    if (a < 0) return 0;
    hid_t s = H5Aget_space(a);
    hssize_t np = H5Sget_simple_extent_npoints(s);
    hid_t ft = H5Aget_type(a);
    int ok = np >= 1 && np <= max && H5Tget_class(ft) == H5T_INTEGER &&
             H5Aread(a, H5T_NATIVE_INT32, v) >= 0;
    if (ok) *n = (int)np;
    H5Tclose(ft);
    H5Sclose(s);
    H5Aclose(a);
    return ok ? 1 : -1;
}
