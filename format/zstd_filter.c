/*
 * zstd_filter.c - filter 32015 codec and HDF5 byte shuffle (see header).
 */
#include "zstd_filter.h"

#include <hdf5.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

/* ================================================================ codec */

void *sra_zstd_cctx_new(void) { return ZSTD_createCCtx(); }
void sra_zstd_cctx_free(void *c) { ZSTD_freeCCtx(c); }
void *sra_zstd_dctx_new(void) { return ZSTD_createDCtx(); }
void sra_zstd_dctx_free(void *d) { ZSTD_freeDCtx(d); }
size_t sra_zstd_bound(size_t n) { return ZSTD_compressBound(n); }

size_t sra_zstd_compress(void *cctx, void *dst, size_t cap, const void *src, size_t n,
                         int level) {
    ZSTD_CCtx *c = cctx ? cctx : ZSTD_createCCtx();
    if (!c) return 0;
    if (level < ZSTD_minCLevel()) level = ZSTD_minCLevel();
    if (level > ZSTD_maxCLevel()) level = ZSTD_maxCLevel();
    ZSTD_CCtx_reset(c, ZSTD_reset_session_and_parameters);
    ZSTD_CCtx_setParameter(c, ZSTD_c_compressionLevel, level);
    ZSTD_CCtx_setParameter(c, ZSTD_c_checksumFlag, 1);
    ZSTD_CCtx_setParameter(c, ZSTD_c_contentSizeFlag, 1);
    size_t r = ZSTD_compress2(c, dst, cap, src, n);
    if (!cctx) ZSTD_freeCCtx(c);
    return ZSTD_isError(r) ? 0 : r;
}

int sra_zstd_decompress(void *dctx, void *dst, size_t expect, const void *src, size_t n,
                        char *why, size_t len) {
    unsigned long long cs = ZSTD_getFrameContentSize(src, n);
    if (cs == ZSTD_CONTENTSIZE_ERROR || cs == ZSTD_CONTENTSIZE_UNKNOWN) {
        snprintf(why, len, "not a zstd frame with a content size (corrupt chunk header)");
        return -1;
    }
    if (cs != expect) {
        snprintf(why, len, "zstd frame holds %llu bytes, chunk needs %zu", cs, expect);
        return -1;
    }
    ZSTD_DCtx *d = dctx ? dctx : ZSTD_createDCtx();
    if (!d) { snprintf(why, len, "out of memory"); return -1; }
    size_t r = ZSTD_decompressDCtx(d, dst, expect, src, n);
    if (!dctx) ZSTD_freeDCtx(d);
    if (ZSTD_isError(r)) {
        snprintf(why, len, "zstd: %s", ZSTD_getErrorName(r));
        return -1;
    }
    if (r != expect) {
        snprintf(why, len, "zstd frame decoded to %zu bytes, expected %zu", r, expect);
        return -1;
    }
    return 0;
}

/* ======================================================== HDF5 callback */

/* HDF5 hands us *buf (allocated with malloc-compatible H5allocate_memory in
 * 1.10; we only ever use malloc/free, as HDF5's own deflate filter does) and
 * expects it replaced by the output buffer. Returning 0 means failure. */
size_t sra_zstd_filter(unsigned flags, size_t cd_nelmts, const unsigned cd_values[],
                       size_t nbytes, size_t *buf_size, void **buf) {
    void *out = NULL;
    size_t outn = 0;
    if (flags & H5Z_FLAG_REVERSE) {
        unsigned long long cs = ZSTD_getFrameContentSize(*buf, nbytes);
        if (cs == ZSTD_CONTENTSIZE_ERROR || cs == ZSTD_CONTENTSIZE_UNKNOWN) return 0;
        out = malloc(cs ? (size_t)cs : 1);
        if (!out) return 0;
        outn = ZSTD_decompress(out, (size_t)cs, *buf, nbytes);
        if (ZSTD_isError(outn) || outn != cs) { free(out); return 0; }
    } else {
        int level = cd_nelmts > 0 ? (int)cd_values[0] : SRA_ZSTD_LEVEL;
        size_t cap = ZSTD_compressBound(nbytes);
        out = malloc(cap);
        if (!out) return 0;
        outn = sra_zstd_compress(NULL, out, cap, *buf, nbytes, level);
        if (outn == 0) { free(out); return 0; }
    }
    free(*buf);
    *buf = out;
    *buf_size = outn;
    return outn;
}

static const H5Z_class2_t zstd_class = {
    H5Z_CLASS_T_VERS,
    (H5Z_filter_t)SRA_H5Z_ZSTD,
    1, 1,
    "zstd (sra; HDF5 registered filter 32015)",
    NULL, /* can_apply: any type */
    NULL, /* set_local: cd_values[0] is the level, set by the writer */
    (H5Z_func_t)sra_zstd_filter,
};

const void *sra_zstd_filter_class(void) { return &zstd_class; }

#ifndef SRA_ZSTD_PLUGIN /* the plugin build must not reference libhdf5 */
int sra_zstd_filter_register(void) {
    /* Registering over a plugin that HDF5 may already have loaded from
     * HDF5_PLUGIN_PATH is allowed and makes in-process behaviour independent
     * of that path. */
    return H5Zregister(&zstd_class) < 0 ? -1 : 0;
}
#endif

/* ============================================================= shuffle */

void sra_shuffle(void *dst, const void *src, size_t n, size_t esize) {
    const uint8_t *s = src;
    uint8_t *d = dst;
    if (esize == 2) { /* the hot case (bf16/f16): two planes */
        uint8_t *lo = d, *hi = d + n;
        for (size_t i = 0; i < n; i++) { lo[i] = s[2 * i]; hi[i] = s[2 * i + 1]; }
        return;
    }
    for (size_t j = 0; j < esize; j++)
        for (size_t i = 0; i < n; i++) d[j * n + i] = s[i * esize + j];
}

void sra_unshuffle_range(void *dst, const void *src, size_t n, size_t esize,
                         size_t first, size_t count) {
    const uint8_t *s = src;
    uint8_t *d = dst;
    if (esize == 2) {
        const uint8_t *lo = s + first, *hi = s + n + first;
        for (size_t i = 0; i < count; i++) { d[2 * i] = lo[i]; d[2 * i + 1] = hi[i]; }
        return;
    }
    if (esize == 4) {
        const uint8_t *p0 = s + first, *p1 = s + n + first, *p2 = s + 2 * n + first,
                      *p3 = s + 3 * n + first;
        for (size_t i = 0; i < count; i++) {
            d[4 * i] = p0[i]; d[4 * i + 1] = p1[i]; d[4 * i + 2] = p2[i]; d[4 * i + 3] = p3[i];
        }
        return;
    }
    for (size_t j = 0; j < esize; j++)
        for (size_t i = 0; i < count; i++) d[i * esize + j] = s[j * n + first + i];
}
