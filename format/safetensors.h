/*
 * safetensors.h - Hugging Face checkpoints as read-only views (prefix st_).
 *
 * On disk (one file): u64 little-endian N, then N bytes of JSON header
 *   {"name": {"dtype": "F32"|"F16"|"BF16"|..., "shape": [..],
 *             "data_offsets": [begin, end]}, ..., "__metadata__": {..}}
 * then the data block; offsets are relative to the data block. A sharded
 * checkpoint has model.safetensors.index.json {"weight_map": {name: file}}
 * beside its shards.
 *
 * st_open maps every file (mmap, read-only, MAP_PRIVATE) and validates the
 * whole header before returning: JSON well-formed and under 100 MB, every
 * entry with a known dtype, 0..4 dims >= 0, data_offsets inside the data
 * block, end - begin == product(shape) * dtype size, no two tensors
 * overlapping (gaps between tensors are allowed), no name twice (also
 * across shards), every weight_map entry present in its shard, every shard
 * the index names present. Anything else is an error naming the file and
 * the tensor or key. Only F32, F16 and BF16 tensors can be fetched; other
 * dtypes (I64, U8, F8_E4M3, ...) are listed with st_dtype ST_OTHER and
 * refused by st_get. __metadata__ values must be strings (as the reference
 * reader requires).
 *
 * Tied weights: torch drops the second name of shared tensors and records
 * it in "__metadata__" as {"dropped name": "kept name"} (TinyStories-656K
 * stores only lm_head.weight this way); st_find follows such aliases.
 *
 * Lifetime: tensors' data pointers and names are valid until st_close. The
 * handle is immutable after st_open; any number of threads may read it.
 */
#ifndef SRA_SAFETENSORS_H
#define SRA_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

typedef enum { ST_F32, ST_F16, ST_BF16, ST_OTHER } st_dtype;

typedef struct {
    const char *name;     /* the header's name (for an alias: the kept name) */
    st_dtype dtype;
    const char *dtype_str; /* as written in the header, e.g. "BF16", "I64" */
    int ndim;             /* 0..4 */
    int64_t shape[4];
    int64_t numel;
    const void *data;     /* into the mapping; not necessarily aligned to the
                           * element size (files written by other tools may
                           * not pad the header): check before using it as
                           * float* directly */
    size_t nbytes;
    const char *file;     /* the shard it lives in */
} st_tensor;

typedef struct st_file st_file;

/* Opens path: a .safetensors file, a .safetensors.index.json, or a folder
 * holding model.safetensors.index.json or model.safetensors. Returns 0, or
 * < 0 with *out set to a handle whose st_errmsg says why (NULL only when out
 * of memory); st_close it either way. */
int st_open(st_file **out, const char *path);
const char *st_errmsg(const st_file *f);
void st_close(st_file *f);

/* All tensors of all shards, i in 0..st_count-1, sorted by name (strcmp). */
int st_count(const st_file *f);
const st_tensor *st_at(const st_file *f, int i);
/* By name, following "__metadata__" aliases; NULL if absent. */
const st_tensor *st_find(const st_file *f, const char *name);
/* The tensor `name` with exactly the given shape (ndim dims) and a float
 * dtype; NULL with st_errmsg set ("model.layers.3.mlp.up_proj.weight:
 * shape [384, 128], expected [512, 128]", "...: missing", "...: dtype I64",
 * each after "<file>: ") otherwise. The message is kept until the next st_get on this handle, so
 * st_get is the one call that is not thread-safe. */
const st_tensor *st_get(st_file *f, const char *name, int ndim, const int64_t *shape);

/* Converts n elements of a float tensor's data (from element offset off)
 * to float32. Elements past the tensor's end, and every element of an
 * ST_OTHER tensor, are written as NaN (never read out of bounds). */
void st_to_f32(const st_tensor *t, size_t off, size_t n, float *out);

/* ------------------------------------------------------------- writing */

/* One float32 tensor to write. */
typedef struct {
    const char *name;
    int ndim;            /* 1..4 */
    int64_t shape[4];
    const float *data;   /* product(shape) floats */
} st_out;

/* Writes a safetensors file of F32 tensors, in the order given, with
 * "__metadata__" holding the n_meta (key, value) string pairs
 * meta[2i], meta[2i+1]. Written to path.tmp, flushed, then renamed: a
 * reader never sees half a file. Returns 0, or -1 with err naming the file. */
int st_write_f32(const char *path, const st_out *t, int n, const char *const *meta, int n_meta, char *err,
                 size_t errlen);

#endif /* SRA_SAFETENSORS_H */
