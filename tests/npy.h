/*
 * npy.h - reads NumPy .npy files (float32 or float64, little-endian,
 * C order) for tests that compare against numpy references.
 *
 *   npy_array a;
 *   if (npy_load(&a, path) == 0) { ... a.data (a.n floats), a.shape ... npy_free(&a); }
 *
 * float64 arrays are converted to float32. Header-only (static functions).
 */
#ifndef SRA_TEST_NPY_H
#define SRA_TEST_NPY_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    float *data;
    size_t n;
    int ndim;
    size_t shape[8];
} npy_array;

static inline void npy_free(npy_array *a) {
    free(a->data);
    a->data = NULL;
}

/* Returns 0, or -1 (missing file, unsupported dtype or layout). */
static inline int npy_load(npy_array *a, const char *path) {
    memset(a, 0, sizeof *a);
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    unsigned char pre[10];
    int rc = -1;
    char hdr[4096];
    if (fread(pre, 1, 10, f) != 10 || memcmp(pre, "\x93NUMPY", 6)) goto out;
    size_t hl = pre[8] | (size_t)pre[9] << 8;
    if (pre[6] >= 2) { /* version 2+: 4-byte header length */
        unsigned char b2[2];
        if (fread(b2, 1, 2, f) != 2) goto out;
        hl = pre[8] | (size_t)pre[9] << 8 | (size_t)b2[0] << 16 | (size_t)b2[1] << 24;
    }
    if (hl >= sizeof hdr || fread(hdr, 1, hl, f) != hl) goto out;
    hdr[hl] = 0;
    int f8 = strstr(hdr, "'<f8'") != NULL, f4 = strstr(hdr, "'<f4'") != NULL;
    if ((!f4 && !f8) || strstr(hdr, "'fortran_order': True")) goto out;
    const char *p = strstr(hdr, "'shape': (");
    if (!p) goto out;
    p += 10;
    a->n = 1;
    while (*p && *p != ')' && a->ndim < 8) {
        char *end;
        unsigned long v = strtoul(p, &end, 10);
        if (end == p) break;
        a->shape[a->ndim++] = v;
        a->n *= v;
        p = end;
        while (*p == ',' || *p == ' ') p++;
    }
    a->data = malloc((a->n ? a->n : 1) * sizeof(float));
    if (!a->data) goto out;
    if (f4) {
        if (fread(a->data, 4, a->n, f) != a->n) goto out;
    } else {
        for (size_t i = 0; i < a->n; i++) {
            double d;
            if (fread(&d, 8, 1, f) != 1) goto out;
            a->data[i] = (float)d;
        }
    }
    rc = 0;
out:
    fclose(f);
    if (rc) npy_free(a);
    return rc;
}

#endif
