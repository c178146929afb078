/*
 * cache_internal.h - what cache_write.c and cache_read.c share: the dataset
 * schema table, the process-wide HDF5 lock and small HDF5 helpers. Not a
 * public header: only format/cache_*.c include it.
 */
#ifndef SRA_CACHE_INTERNAL_H
#define SRA_CACHE_INTERNAL_H

#include <hdf5.h>
#include <pthread.h>

#include "cache.h"

/* --------------------------------------------------------- the schema */
typedef enum { ET_U8, ET_I32, ET_I64, ET_F32, ET_F16, ET_BF16 } elem_type;
typedef enum { ROWS_TEXT, ROWS_DOCS1, ROWS_DOCS, ROWS_ATOMS } rows_kind;
typedef enum { COLS_1, COLS_K, COLS_D } cols_kind;

enum {
    DS_TEXT, DS_TEXT_OFF, DS_ATOM_OFF, DS_LOSS, DS_REC,
    DS_START, DS_END, DS_MASS, DS_IDS, DS_LP, DS_TAIL,
    DS_COM0, /* DS_COM0 + j for layers[j] */
    DS_MAX = DS_COM0 + CACHE_MAX_LAYERS
};

typedef struct {
    const char *name; /* for COM: "/atoms/com" + "/<j>" */
    elem_type et;     /* for COM: replaced by the meta's hidden dtype */
    rows_kind rows;
    cols_kind cols;
} ds_schema;

extern const ds_schema cache_schema[DS_COM0 + 1];
int cache_n_datasets(const cache_meta *m);        /* DS_COM0 + n_layers */
void cache_ds_name(int ds, char out[64]);
elem_type cache_ds_type(const cache_meta *m, int ds);
size_t cache_et_size(elem_type t);
int64_t cache_ds_cols(const cache_meta *m, int ds);
int cache_ds_rank(int ds); /* 1 for per-row scalars, 2 for (rows, k|d) */
/* 0 for the top-k datasets (ids, log-probs, tail) of a k = 0 cache: they
 * are not written (HDF5 chunks cannot have a zero dimension, and an
 * absent dataset says "no top-k" to h5py readers as plainly as any). */
int cache_ds_present(const cache_meta *m, int ds);

/* Blobs: dataset path, meta field access. */
enum { BLOB_TEACHER_TOK, BLOB_TEACHER_CFG, BLOB_STUDENT_TOK, BLOB_N };
extern const char *const cache_blob_name[BLOB_N];

/* -------------------------------------------------------- HDF5 plumbing */
/* One lock for every HDF5 call in the process (HDF5 is not reentrant for
 * our purposes even when built thread-safe: it serializes internally and
 * its error stacks are per thread). */
void h5_lock(void);
void h5_unlock(void);
/* Once per process: silence HDF5's automatic error printing and register
 * filter 32015. Call from every thread that makes HDF5 calls (error-stack
 * settings are per thread in thread-safe builds). Takes no lock itself. */
void h5_init_thread(void);
/* Innermost message of the current HDF5 error stack, e.g. "truncated file". */
void h5_last_error(char *buf, size_t n);

/* A new copy of the file type for an element type (bf16 -> uint16,
 * f16 -> IEEE binary16); the caller H5Tcloses it. */
hid_t h5_file_type(elem_type t);

/* Attributes on an object. Strings: fixed-length UTF-8. Readers accept
 * fixed or variable strings and any integer/float width (HDF5 converts). */
int h5_attr_put_str(hid_t obj, const char *name, const char *v);
int h5_attr_put_i64(hid_t obj, const char *name, int64_t v);
int h5_attr_put_f64(hid_t obj, const char *name, double v);
int h5_attr_put_u8(hid_t obj, const char *name, uint8_t v);
int h5_attr_put_i32v(hid_t obj, const char *name, const int32_t *v, int n);
/* Return 1 if present and read, 0 if absent, -1 if present but unreadable. */
int h5_attr_get_str(hid_t obj, const char *name, char **out); /* malloc'd */
int h5_attr_get_i64(hid_t obj, const char *name, int64_t *v);
int h5_attr_get_f64(hid_t obj, const char *name, double *v);
int h5_attr_get_i32v(hid_t obj, const char *name, int32_t *v, int max, int *n);

#endif /* SRA_CACHE_INTERNAL_H */
