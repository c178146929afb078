/*
 * safetensors.c - read-only, validated views of Hugging Face checkpoints
 * (safetensors.h).
 *
 * st_open maps each shard, parses its JSON header with cJSON and checks
 * every entry before anything is returned; tensors from all shards are then
 * sorted by name once, so st_find is a binary search and a name held twice
 * (in one header or across shards) shows up as two neighbours. The checks
 * follow the reference reader (huggingface/safetensors, Rust: 100 MB header
 * limit, offsets and byte sizes), except that gaps between tensors are
 * allowed: only overlaps are refused.
 */
#include "safetensors.h"

#include <cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <cpuid.h>
#include <immintrin.h>
#include <stdatomic.h>
#define SRA_X86 1
#endif

#define ST_MAX_HEADER (100u * 1000u * 1000u) /* as safetensors' MAX_HEADER_SIZE */
#define ST_MAX_ALIAS_HOPS 8

typedef struct {
    char *path;
    uint8_t *map;
    size_t size;
    const uint8_t *data; /* data block: map + 8 + header length */
    size_t data_size;
} shard;

typedef struct {
    char *from, *to; /* "__metadata__": {"dropped name": "kept name"} */
} alias;

struct st_file {
    sra_err err;
    char *path; /* as opened (the index for a sharded checkpoint) */
    shard *shards;
    int n_shards;
    st_tensor *tensors; /* sorted by name after st_open */
    int n, cap;
    alias *aliases;
    int n_alias, cap_alias;
};

/* ================================================================ dtypes */

static const struct {
    const char *name;
    size_t size;
    st_dtype dtype;
} DTYPES[] = {
    {"F32", 4, ST_F32},       {"F16", 2, ST_F16},      {"BF16", 2, ST_BF16},
    {"F64", 8, ST_OTHER},     {"I64", 8, ST_OTHER},    {"U64", 8, ST_OTHER},
    {"I32", 4, ST_OTHER},     {"U32", 4, ST_OTHER},    {"I16", 2, ST_OTHER},
    {"U16", 2, ST_OTHER},     {"I8", 1, ST_OTHER},     {"U8", 1, ST_OTHER},
    {"BOOL", 1, ST_OTHER},    {"F8_E5M2", 1, ST_OTHER}, {"F8_E4M3", 1, ST_OTHER},
    {"F8_E8M0", 1, ST_OTHER}, {"C64", 8, ST_OTHER},
};
#define N_DTYPES (int)(sizeof DTYPES / sizeof DTYPES[0])

static int dtype_find(const char *s) {
    for (int i = 0; i < N_DTYPES; i++)
        if (!strcmp(DTYPES[i].name, s)) return i;
    return -1;
}

/* ============================================================== helpers */

static char *xstrdup(const char *s) {
    size_t n = strlen(s) + 1;
    char *p = malloc(n);
    if (p) memcpy(p, s, n);
    return p;
}

/* A JSON number that is an integer in [0, 2^53] (exact in a double). */
static int json_u53(const cJSON *x, int64_t *out) {
    if (!cJSON_IsNumber(x)) return 0;
    double d = x->valuedouble;
    if (!(d >= 0 && d <= 9007199254740992.0) || d != (double)(int64_t)d) return 0;
    *out = (int64_t)d;
    return 1;
}

/* How a bad JSON value reads in a message: its text, cut short. */
static void json_show(const cJSON *x, char *buf, size_t cap) {
    char *s = x ? cJSON_PrintUnformatted(x) : NULL;
    snprintf(buf, cap, "%s", s ? s : "(nothing)");
    if (s && strlen(s) >= cap && cap > 4) memcpy(buf + cap - 4, "...", 4);
    free(s);
}

static int is_dir(const char *p) {
    struct stat sb;
    return stat(p, &sb) == 0 && S_ISDIR(sb.st_mode);
}

static int exists(const char *p) {
    struct stat sb;
    return stat(p, &sb) == 0;
}

static int ends_with(const char *s, const char *suf) {
    size_t n = strlen(s), m = strlen(suf);
    return n >= m && !strcmp(s + n - m, suf);
}

/* dir + "/" + name, malloc'd. */
static char *path_join(const char *dir, const char *name) {
    size_t a = strlen(dir), b = strlen(name);
    char *p = malloc(a + b + 2);
    if (!p) return NULL;
    memcpy(p, dir, a);
    p[a] = '/';
    memcpy(p + a + 1, name, b + 1);
    return p;
}

/* The folder of a file path ("." when it has none), malloc'd. */
static char *path_dir(const char *path) {
    const char *slash = strrchr(path, '/');
    if (!slash) return xstrdup(".");
    size_t n = slash == path ? 1 : (size_t)(slash - path);
    char *d = malloc(n + 1);
    if (!d) return NULL;
    memcpy(d, path, n);
    d[n] = 0;
    return d;
}

static int nomem(st_file *f) { return sra_err_set(&f->err, SRA_E_NOMEM, "out of memory"); }

static st_tensor *tensor_push(st_file *f) {
    if (f->n == f->cap) {
        int cap = f->cap ? 2 * f->cap : 64;
        st_tensor *t = realloc(f->tensors, (size_t)cap * sizeof *t);
        if (!t) return NULL;
        f->tensors = t;
        f->cap = cap;
    }
    st_tensor *t = &f->tensors[f->n];
    memset(t, 0, sizeof *t);
    return t;
}

static int alias_push(st_file *f, const char *from, const char *to) {
    if (f->n_alias == f->cap_alias) {
        int cap = f->cap_alias ? 2 * f->cap_alias : 8;
        alias *a = realloc(f->aliases, (size_t)cap * sizeof *a);
        if (!a) return SRA_E_NOMEM;
        f->aliases = a;
        f->cap_alias = cap;
    }
    alias *a = &f->aliases[f->n_alias];
    a->from = xstrdup(from);
    a->to = xstrdup(to);
    if (!a->from || !a->to) { free(a->from); free(a->to); return SRA_E_NOMEM; }
    f->n_alias++;
    return 0;
}

static int cmp_name(const void *a, const void *b) {
    return strcmp(((const st_tensor *)a)->name, ((const st_tensor *)b)->name);
}

/* Tensors of one shard by data offset (then size), for the overlap check. */
static int cmp_offset(const void *a, const void *b) {
    const st_tensor *x = *(const st_tensor *const *)a, *y = *(const st_tensor *const *)b;
    if (x->data != y->data) return (const uint8_t *)x->data < (const uint8_t *)y->data ? -1 : 1;
    return x->nbytes < y->nbytes ? -1 : x->nbytes > y->nbytes;
}

/* ======================================================== one shard */

/* Maps sh->path and checks the length prefix against the file size. */
static int shard_map(st_file *f, shard *sh) {
    int fd = open(sh->path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return sra_err_set(&f->err, errno == ENOENT ? SRA_E_MISSING : SRA_E_IO,
                           "%s: cannot open: %s", sh->path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        int e = errno;
        close(fd);
        return sra_err_set(&f->err, SRA_E_IO, "%s: cannot stat: %s", sh->path, strerror(e));
    }
    if (!S_ISREG(sb.st_mode)) {
        close(fd);
        return sra_err_set(&f->err, SRA_E_FORMAT, "%s: not a regular file", sh->path);
    }
    sh->size = (size_t)sb.st_size;
    if (sh->size < 8) {
        close(fd);
        return sra_err_set(&f->err, SRA_E_CORRUPT,
                           "%s: %zu bytes, expected at least 8 (the header length): truncated or not safetensors",
                           sh->path, sh->size);
    }
    void *m = mmap(NULL, sh->size, PROT_READ, MAP_PRIVATE, fd, 0);
    int e = errno;
    close(fd);
    if (m == MAP_FAILED)
        return sra_err_set(&f->err, SRA_E_IO, "%s: cannot mmap %zu bytes: %s", sh->path, sh->size, strerror(e));
    sh->map = m;

    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = hlen << 8 | sh->map[i];
    if (hlen > ST_MAX_HEADER)
        return sra_err_set(&f->err, SRA_E_FORMAT,
                           "%s: header length %llu bytes, expected at most %u (100 MB): corrupt or not safetensors",
                           sh->path, (unsigned long long)hlen, ST_MAX_HEADER);
    if (hlen > sh->size - 8)
        return sra_err_set(&f->err, SRA_E_CORRUPT,
                           "%s: header length %llu bytes but the file has only %zu after the length: truncated",
                           sh->path, (unsigned long long)hlen, sh->size - 8);
    sh->data = sh->map + 8 + hlen;
    sh->data_size = sh->size - 8 - (size_t)hlen;
    return 0;
}

/* One header entry "name": {"dtype", "shape", "data_offsets"} -> *t. */
static int entry_parse(st_file *f, const shard *sh, const cJSON *e, st_tensor *t) {
    const char *P = sh->path, *N = e->string;
    char shown[128];
    if (!cJSON_IsObject(e)) {
        json_show(e, shown, sizeof shown);
        return sra_err_set(&f->err, SRA_E_FORMAT, "%s: tensor %s: expected an object with dtype, shape, data_offsets, got %s",
                           P, N, shown);
    }
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(e, "dtype");
    const cJSON *shp = cJSON_GetObjectItemCaseSensitive(e, "shape");
    const cJSON *off = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
    if (!cJSON_IsString(dt))
        return sra_err_set(&f->err, SRA_E_FORMAT, "%s: tensor %s: dtype missing or not a string", P, N);
    int di = dtype_find(dt->valuestring);
    if (di < 0)
        return sra_err_set(&f->err, SRA_E_FORMAT,
                           "%s: tensor %s: unknown dtype \"%.32s\" (expected F32, F16, BF16, F64, I64, I32, I16, I8, U8, BOOL, ...)",
                           P, N, dt->valuestring);
    t->dtype = DTYPES[di].dtype;
    t->dtype_str = DTYPES[di].name;

    if (!cJSON_IsArray(shp))
        return sra_err_set(&f->err, SRA_E_FORMAT, "%s: tensor %s: shape missing or not an array", P, N);
    int nd = cJSON_GetArraySize(shp);
    if (nd > 4)
        return sra_err_set(&f->err, SRA_E_FORMAT, "%s: tensor %s: %d dims, expected 0 to 4", P, N, nd);
    t->ndim = nd;
    uint64_t numel = 1;
    int overflow = 0;
    for (int d = 0; d < nd; d++) {
        const cJSON *x = cJSON_GetArrayItem(shp, d);
        int64_t v;
        if (!json_u53(x, &v)) {
            json_show(x, shown, sizeof shown);
            return sra_err_set(&f->err, SRA_E_FORMAT,
                               "%s: tensor %s: shape[%d] = %s, expected a non-negative integer", P, N, d, shown);
        }
        t->shape[d] = v;
        if (v && numel > UINT64_MAX / (uint64_t)v) overflow = 1;
        else numel *= (uint64_t)v;
    }
    uint64_t esize = DTYPES[di].size;
    if (overflow || numel > (uint64_t)INT64_MAX / esize)
        return sra_err_set(&f->err, SRA_E_FORMAT, "%s: tensor %s: shape too large (element count overflows)", P, N);
    t->numel = (int64_t)numel;

    int64_t b, en;
    if (!cJSON_IsArray(off) || cJSON_GetArraySize(off) != 2 ||
        !json_u53(cJSON_GetArrayItem(off, 0), &b) || !json_u53(cJSON_GetArrayItem(off, 1), &en)) {
        json_show(off, shown, sizeof shown);
        return sra_err_set(&f->err, SRA_E_FORMAT,
                           "%s: tensor %s: data_offsets = %s, expected [begin, end] non-negative integers", P, N, shown);
    }
    if (en < b)
        return sra_err_set(&f->err, SRA_E_FORMAT, "%s: tensor %s: data_offsets [%lld, %lld] end before begin",
                           P, N, (long long)b, (long long)en);
    if ((uint64_t)en > sh->data_size)
        return sra_err_set(&f->err, SRA_E_CORRUPT,
                           "%s: tensor %s: data_offsets [%lld, %lld] outside the data block (%zu bytes): truncated or corrupt",
                           P, N, (long long)b, (long long)en, sh->data_size);
    if ((uint64_t)(en - b) != numel * esize)
        return sra_err_set(&f->err, SRA_E_FORMAT,
                           "%s: tensor %s: %lld bytes in data_offsets [%lld, %lld], expected %llu (%llu elements of %s)",
                           P, N, (long long)(en - b), (long long)b, (long long)en,
                           (unsigned long long)(numel * esize), (unsigned long long)numel, t->dtype_str);
    t->data = sh->data + b;
    t->nbytes = (size_t)(en - b);
    t->file = sh->path;
    return 0;
}

/* Parses sh's header, appends its tensors and aliases to f. */
static int shard_load(st_file *f, shard *sh) {
    int rc = shard_map(f, sh);
    if (rc) return rc;
    const char *P = sh->path;
    size_t hlen = sh->size - 8 - sh->data_size;
    const char *h = (const char *)sh->map + 8;
    if (memchr(h, 0, hlen))
        return sra_err_set(&f->err, SRA_E_FORMAT, "%s: header holds a NUL byte at file offset %zu: not JSON", P,
                           (size_t)((const char *)memchr(h, 0, hlen) - h) + 8);
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(h, hlen, &end, 0);
    if (!root) {
        size_t at = end && end >= h ? (size_t)(end - h) : 0;
        return sra_err_set(&f->err, SRA_E_FORMAT, "%s: header is not valid JSON (near file offset %zu)", P, at + 8);
    }
    /* Only spaces may follow the object (writers pad to 8 bytes). */
    for (const char *p = end; p < h + hlen; p++)
        if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r') {
            cJSON_Delete(root);
            return sra_err_set(&f->err, SRA_E_FORMAT, "%s: header has data after the JSON object (file offset %zu)", P,
                               (size_t)(p - h) + 8);
        }
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return sra_err_set(&f->err, SRA_E_FORMAT, "%s: header is not a JSON object", P);
    }

    int first = f->n;
    const cJSON *e;
    rc = 0;
    cJSON_ArrayForEach(e, root) {
        if (!e->string) continue;
        if (!strcmp(e->string, "__metadata__")) {
            if (cJSON_IsNull(e)) continue;
            if (!cJSON_IsObject(e)) {
                rc = sra_err_set(&f->err, SRA_E_FORMAT, "%s: __metadata__: expected an object of strings", P);
                break;
            }
            const cJSON *m;
            cJSON_ArrayForEach(m, e) {
                if (!cJSON_IsString(m)) {
                    rc = sra_err_set(&f->err, SRA_E_FORMAT, "%s: __metadata__.%s: expected a string value", P,
                                     m->string ? m->string : "?");
                    break;
                }
                /* Every pair is kept; st_find only follows those whose
                 * value names a tensor ("format": "pt" never does). */
                if (alias_push(f, m->string, m->valuestring)) { rc = nomem(f); break; }
            }
            if (rc) break;
            continue;
        }
        st_tensor *t = tensor_push(f);
        if (!t) { rc = nomem(f); break; }
        if ((rc = entry_parse(f, sh, e, t))) break;
        if (!(t->name = xstrdup(e->string))) { rc = nomem(f); break; }
        f->n++;
    }
    cJSON_Delete(root);
    if (rc) return rc;

    /* No two tensors of this shard share a byte (empty tensors hold none). */
    int k = f->n - first;
    if (k < 2) return 0;
    const st_tensor **by = malloc((size_t)k * sizeof *by);
    if (!by) return nomem(f);
    for (int i = 0; i < k; i++) by[i] = &f->tensors[first + i];
    qsort(by, (size_t)k, sizeof *by, cmp_offset);
    const st_tensor *prev = NULL;
    for (int i = 0; i < k && !rc; i++) {
        const st_tensor *t = by[i];
        if (!t->nbytes) continue;
        if (prev && (const uint8_t *)t->data < (const uint8_t *)prev->data + prev->nbytes) {
            long long pb = (const uint8_t *)prev->data - sh->data, tb = (const uint8_t *)t->data - sh->data;
            rc = sra_err_set(&f->err, SRA_E_FORMAT,
                             "%s: tensors %s [%lld, %lld) and %s [%lld, %lld) overlap: expected disjoint data_offsets",
                             P, prev->name, pb, pb + (long long)prev->nbytes, t->name, tb, tb + (long long)t->nbytes);
        }
        if (!prev || (const uint8_t *)t->data + t->nbytes > (const uint8_t *)prev->data + prev->nbytes) prev = t;
    }
    free(by);
    return rc;
}

static shard *shard_add(st_file *f, const char *path) {
    shard *s = realloc(f->shards, (size_t)(f->n_shards + 1) * sizeof *s);
    if (!s) return NULL;
    f->shards = s;
    shard *sh = &s[f->n_shards];
    memset(sh, 0, sizeof *sh);
    if (!(sh->path = xstrdup(path))) return NULL;
    f->n_shards++;
    return sh;
}

/* ======================================================== the index */

/* Sorts all tensors by name; a name held twice is an error. */
static int sort_and_check_unique(st_file *f) {
    if (f->n < 2) return 0;
    qsort(f->tensors, (size_t)f->n, sizeof *f->tensors, cmp_name);
    for (int i = 1; i < f->n; i++) {
        const st_tensor *a = &f->tensors[i - 1], *b = &f->tensors[i];
        if (strcmp(a->name, b->name)) continue;
        if (a->file == b->file)
            return sra_err_set(&f->err, SRA_E_FORMAT, "%s: tensor %s appears twice in the header, expected once",
                               a->file, a->name);
        return sra_err_set(&f->err, SRA_E_FORMAT, "%s and %s: tensor %s is in both shards, expected in one",
                           a->file, b->file, a->name);
    }
    return 0;
}

static const st_tensor *find_exact(const st_file *f, const char *name) {
    int lo = 0, hi = f->n - 1;
    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2;
        int c = strcmp(f->tensors[mid].name, name);
        if (!c) return &f->tensors[mid];
        if (c < 0) lo = mid + 1;
        else hi = mid - 1;
    }
    return NULL;
}

static int index_load(st_file *f, const char *ipath) {
    size_t len = 0;
    char *text = sra_read_file(ipath, &len);
    if (!text)
        return sra_err_set(&f->err, errno == ENOENT ? SRA_E_MISSING : SRA_E_IO, "%s: cannot read: %s", ipath,
                           strerror(errno));
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(text, len, &end, 0);
    int trailing = 0;
    for (const char *q = end; root && q < text + len; q++) trailing |= *q != ' ' && *q != '\t' && *q != '\r' && *q != '\n';
    free(text);
    if (!root || trailing) {
        cJSON_Delete(root);
        return sra_err_set(&f->err, SRA_E_FORMAT, "%s: not valid JSON", ipath);
    }
    int rc = 0;
    char *dir = NULL;
    const cJSON *wm = cJSON_GetObjectItemCaseSensitive(root, "weight_map");
    if (!cJSON_IsObject(wm)) {
        rc = sra_err_set(&f->err, SRA_E_FORMAT, "%s: weight_map: missing or not an object {tensor: shard file}",
                         ipath);
        goto done;
    }
    if (!(dir = path_dir(ipath))) { rc = nomem(f); goto done; }

    /* Each distinct shard once, in the order the index first names it. */
    const cJSON *e;
    cJSON_ArrayForEach(e, wm) {
        if (!cJSON_IsString(e) || !*e->valuestring) {
            rc = sra_err_set(&f->err, SRA_E_FORMAT, "%s: weight_map.%s: expected a shard file name", ipath,
                             e->string ? e->string : "?");
            goto done;
        }
        char *sp = path_join(dir, e->valuestring);
        if (!sp) { rc = nomem(f); goto done; }
        int seen = 0;
        for (int i = 0; i < f->n_shards && !seen; i++) seen = !strcmp(f->shards[i].path, sp);
        if (!seen) {
            if (!exists(sp)) {
                rc = sra_err_set(&f->err, SRA_E_MISSING, "%s: weight_map.%s: shard %s is missing", ipath, e->string,
                                 sp);
                free(sp);
                goto done;
            }
            shard *sh = shard_add(f, sp);
            if (!sh) { free(sp); rc = nomem(f); goto done; }
            if ((rc = shard_load(f, sh))) { free(sp); goto done; }
        }
        free(sp);
    }
    if (f->n_shards == 0) {
        rc = sra_err_set(&f->err, SRA_E_FORMAT, "%s: weight_map is empty", ipath);
        goto done;
    }
    /* Sort, then check the map against what the shards hold. */
    if ((rc = sort_and_check_unique(f))) goto done;
    cJSON_ArrayForEach(e, wm) {
        const st_tensor *t = find_exact(f, e->string);
        char *sp = path_join(dir, e->valuestring);
        if (!sp) { rc = nomem(f); goto done; }
        int held = t && !strcmp(t->file, sp);
        if (!held)
            rc = sra_err_set(&f->err, SRA_E_MISSING, "%s: weight_map.%s: shard %s does not hold tensor %s", ipath,
                             e->string, sp, e->string);
        free(sp);
        if (rc) goto done;
    }
done:
    free(dir);
    cJSON_Delete(root);
    return rc;
}

/* ============================================================ public */

int st_open(st_file **out, const char *path) {
    st_file *f = calloc(1, sizeof *f);
    *out = f;
    if (!f) return SRA_E_NOMEM;
    if (!path || !*path) return sra_err_set(&f->err, SRA_E_ARG, "st_open: no path given");

    char *alloc = NULL;
    const char *p = path;
    int rc;
    if (is_dir(path)) {
        char *ix = path_join(path, "model.safetensors.index.json");
        char *one = path_join(path, "model.safetensors");
        if (!ix || !one) {
            free(ix); free(one);
            return nomem(f);
        }
        if (exists(ix)) { alloc = ix; free(one); }
        else if (exists(one)) { alloc = one; free(ix); }
        else {
            free(ix); free(one);
            return sra_err_set(&f->err, SRA_E_MISSING,
                               "%s: folder holds neither model.safetensors.index.json nor model.safetensors", path);
        }
        p = alloc;
    }
    if (ends_with(p, ".json")) {
        rc = index_load(f, p);
    } else {
        shard *sh = shard_add(f, p);
        rc = sh ? shard_load(f, sh) : nomem(f);
        if (!rc) rc = sort_and_check_unique(f);
    }
    f->path = alloc ? alloc : xstrdup(p);
    if (!f->path && !rc) rc = nomem(f);
    if (!rc) f->err.msg[0] = 0;
    f->err.code = rc;
    return rc;
}

const char *st_errmsg(const st_file *f) { return f ? f->err.msg : "out of memory"; }

void st_close(st_file *f) {
    if (!f) return;
    for (int i = 0; i < f->n; i++) free((char *)f->tensors[i].name);
    free(f->tensors);
    for (int i = 0; i < f->n_alias; i++) {
        free(f->aliases[i].from);
        free(f->aliases[i].to);
    }
    free(f->aliases);
    for (int i = 0; i < f->n_shards; i++) {
        if (f->shards[i].map) munmap(f->shards[i].map, f->shards[i].size);
        free(f->shards[i].path);
    }
    free(f->shards);
    free(f->path);
    free(f);
}

int st_count(const st_file *f) { return f ? f->n : 0; }

const st_tensor *st_at(const st_file *f, int i) {
    return f && i >= 0 && i < f->n ? &f->tensors[i] : NULL;
}

const st_tensor *st_find(const st_file *f, const char *name) {
    if (!f || !name) return NULL;
    for (int hop = 0; hop <= ST_MAX_ALIAS_HOPS; hop++) {
        const st_tensor *t = find_exact(f, name);
        if (t) return t;
        const char *next = NULL;
        for (int i = 0; i < f->n_alias && !next; i++)
            if (!strcmp(f->aliases[i].from, name)) next = f->aliases[i].to;
        if (!next) return NULL;
        name = next;
    }
    return NULL;
}

static void shape_str(char *buf, size_t cap, int ndim, const int64_t *shape) {
    size_t k = (size_t)snprintf(buf, cap, "[");
    for (int d = 0; d < ndim && k < cap; d++)
        k += (size_t)snprintf(buf + k, cap - k, d ? ", %lld" : "%lld", (long long)shape[d]);
    if (k < cap) snprintf(buf + k, cap - k, "]");
}

const st_tensor *st_get(st_file *f, const char *name, int ndim, const int64_t *shape) {
    if (!f) return NULL;
    const char *what = f->path ? f->path : "safetensors";
    if (!name) {
        sra_err_set(&f->err, SRA_E_ARG, "%s: st_get: no tensor name given", what);
        return NULL;
    }
    const st_tensor *t = st_find(f, name);
    if (!t) {
        sra_err_set(&f->err, SRA_E_MISSING, "%s: %s: missing", what, name);
        return NULL;
    }
    if (t->dtype == ST_OTHER) {
        sra_err_set(&f->err, SRA_E_FORMAT, "%s: %s: dtype %s, expected F32, F16 or BF16", t->file, name,
                    t->dtype_str);
        return NULL;
    }
    int same = ndim == t->ndim;
    for (int d = 0; same && d < ndim; d++) same = shape[d] == t->shape[d];
    if (!same) {
        char got[128], want[128];
        shape_str(got, sizeof got, t->ndim, t->shape);
        shape_str(want, sizeof want, ndim >= 0 && ndim <= 8 && shape ? ndim : 0, shape);
        sra_err_set(&f->err, SRA_E_FORMAT, "%s: %s: shape %s, expected %s", t->file, name, got, want);
        return NULL;
    }
    return t;
}

/* ========================================================= conversion */

/* ------------------------------------------------ half-precision rows
 *
 * The teacher converts every F16/BF16 weight on each forward (layers.h
 * matmul_forward_seq), so these loops are on its hot path: the byte-wise
 * scalar loop ran at ~0.6 G values/s, 0.17 s of the 1.4 s BF16 forward of
 * bench-forward. x86-64 gets SSE2 (always there) for BF16 and F16C (when
 * the CPU has it, checked once) for F16; elsewhere the scalar loops. */

/* bfloat16 is the top half of a float32: interleaving 16 zero bits below
 * each value is the whole conversion. */
static void bf16_rows(const uint8_t *p, size_t n, float *out) {
    size_t i = 0;
#if SRA_X86
    const __m128i z = _mm_setzero_si128();
    for (; i + 8 <= n; i += 8) {
        __m128i h = _mm_loadu_si128((const __m128i *)(const void *)(p + 2 * i));
        _mm_storeu_si128((__m128i *)(void *)(out + i), _mm_unpacklo_epi16(z, h));
        _mm_storeu_si128((__m128i *)(void *)(out + i + 4), _mm_unpackhi_epi16(z, h));
    }
#endif
    for (; i < n; i++) {
        uint32_t u = (uint32_t)(p[2 * i] | p[2 * i + 1] << 8) << 16;
        memcpy(&out[i], &u, 4);
    }
}

#if SRA_X86
/* IEEE half to single with the F16C instruction: exact like
 * sra_f16_to_f32, except that a signaling NaN comes out quiet. */
__attribute__((target("avx,f16c"))) static size_t f16_rows_f16c(const uint8_t *p, size_t n, float *out) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(out + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(const void *)(p + 2 * i))));
    return i;
}
#endif

static void f16_rows(const uint8_t *p, size_t n, float *out) {
    size_t i = 0;
#if SRA_X86
    static _Atomic int has_f16c = -1; /* threads racing here all find the same */
    int h = atomic_load_explicit(&has_f16c, memory_order_relaxed);
    if (h < 0) {
        unsigned a, b, c, d; /* F16C from CPUID itself: clang 14 knows no "f16c" feature name */
        h = __builtin_cpu_supports("avx") && __get_cpuid(1, &a, &b, &c, &d) && (c & bit_F16C);
        atomic_store_explicit(&has_f16c, h, memory_order_relaxed);
    }
    if (h) i = f16_rows_f16c(p, n, out);
#endif
    for (; i < n; i++) out[i] = sra_f16_to_f32((uint16_t)(p[2 * i] | p[2 * i + 1] << 8));
}

void st_to_f32(const st_tensor *t, size_t off, size_t n, float *out) {
    size_t ok = 0;
    if (t && t->dtype != ST_OTHER && off <= (size_t)t->numel) {
        ok = (size_t)t->numel - off;
        if (ok > n) ok = n;
    }
    const uint8_t *p = t ? (const uint8_t *)t->data : NULL;
    if (ok) switch (t->dtype) {
    case ST_F32:
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
        memcpy(out, p + 4 * off, 4 * ok);
#else
        for (size_t i = 0; i < ok; i++) {
            const uint8_t *q = p + 4 * (off + i);
            uint32_t u = (uint32_t)q[0] | (uint32_t)q[1] << 8 | (uint32_t)q[2] << 16 | (uint32_t)q[3] << 24;
            memcpy(&out[i], &u, 4);
        }
#endif
        break;
    case ST_F16:
        f16_rows(p + 2 * off, ok, out);
        break;
    case ST_BF16:
        bf16_rows(p + 2 * off, ok, out);
        break;
    default:
        break;
    }
    /* Past the end, or not a float dtype: NaN, so misuse cannot pass as data. */
    for (size_t i = ok; i < n; i++) {
        uint32_t u = 0x7fc00000u;
        memcpy(&out[i], &u, 4);
    }
}

/* ============================================================== writing */

int st_write_f32(const char *path, const st_out *t, int n, const char *const *meta, int n_meta, char *err,
                 size_t errlen) {
    cJSON *h = cJSON_CreateObject();
    if (!h) { snprintf(err, errlen, "%s: out of memory", path); return -1; }
    if (n_meta > 0) {
        cJSON *m = cJSON_AddObjectToObject(h, "__metadata__");
        for (int i = 0; m && i < n_meta; i++) cJSON_AddStringToObject(m, meta[2 * i], meta[2 * i + 1]);
    }
    size_t off = 0;
    for (int i = 0; i < n; i++) {
        cJSON *e = cJSON_AddObjectToObject(h, t[i].name), *shape = cJSON_CreateArray(), *offs = cJSON_CreateArray();
        size_t numel = 1;
        for (int d = 0; d < t[i].ndim; d++) {
            cJSON_AddItemToArray(shape, cJSON_CreateNumber((double)t[i].shape[d]));
            numel *= (size_t)t[i].shape[d];
        }
        cJSON_AddStringToObject(e, "dtype", "F32");
        cJSON_AddItemToObject(e, "shape", shape);
        cJSON_AddItemToArray(offs, cJSON_CreateNumber((double)off));
        cJSON_AddItemToArray(offs, cJSON_CreateNumber((double)(off + numel * 4)));
        cJSON_AddItemToObject(e, "data_offsets", offs);
        off += numel * 4;
    }
    char *js = cJSON_PrintUnformatted(h);
    cJSON_Delete(h);
    if (!js) { snprintf(err, errlen, "%s: out of memory", path); return -1; }
    size_t hl = strlen(js), padded = (hl + 7) / 8 * 8; /* data aligned to 8 bytes */
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "wb");
    int bad = !f;
    if (f) {
        uint8_t len[8];
        for (int i = 0; i < 8; i++) len[i] = (uint8_t)((uint64_t)padded >> (8 * i));
        bad |= fwrite(len, 1, 8, f) != 8 || fwrite(js, 1, hl, f) != hl;
        for (size_t i = hl; i < padded && !bad; i++) bad |= fputc(' ', f) == EOF;
        for (int i = 0; i < n && !bad; i++) {
            size_t numel = 1;
            for (int d = 0; d < t[i].ndim; d++) numel *= (size_t)t[i].shape[d];
            bad |= fwrite(t[i].data, 4, numel, f) != numel; /* little-endian hosts only (x86, arm64) */
        }
        bad |= fflush(f) != 0 || fsync(fileno(f)) != 0;
        bad |= fclose(f) != 0;
    }
    free(js);
    if (bad || rename(tmp, path)) {
        snprintf(err, errlen, "%s: cannot write: %s", path, strerror(errno));
        unlink(tmp);
        return -1;
    }
    return 0;
}
