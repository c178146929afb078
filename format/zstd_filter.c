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
/* The reader unshuffles every byte it delivers, so these run at memory
 * speed: SSE2 (baseline on x86-64) for the 2- and 4-byte cases that carry
 * the payload (bf16/f16 CoM, int32 ids, f32), the plain loops otherwise.
 * GCC 12 -O2 does not vectorize the loops, which cost a quarter of the
 * reader's CPU before (measured by perf in bench-cache). */
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

static void shuffle_scalar(uint8_t *d, const uint8_t *s, size_t n, size_t esize, size_t i0) {
    for (size_t j = 0; j < esize; j++)
        for (size_t i = i0; i < n; i++) d[j * n + i] = s[i * esize + j];
}

void sra_shuffle(void *dst, const void *src, size_t n, size_t esize) {
    const uint8_t *s = src;
    uint8_t *d = dst;
    size_t i = 0;
#if defined(__SSE2__)
    if (esize == 2) {
        const __m128i lo = _mm_set1_epi16(0x00ff);
        for (; i + 16 <= n; i += 16) {
            __m128i a = _mm_loadu_si128((const __m128i *)(s + 2 * i));
            __m128i b = _mm_loadu_si128((const __m128i *)(s + 2 * i + 16));
            __m128i p0 = _mm_packus_epi16(_mm_and_si128(a, lo), _mm_and_si128(b, lo));
            __m128i p1 = _mm_packus_epi16(_mm_srli_epi16(a, 8), _mm_srli_epi16(b, 8));
            _mm_storeu_si128((__m128i *)(d + i), p0);
            _mm_storeu_si128((__m128i *)(d + n + i), p1);
        }
    } else if (esize == 4) {
        const __m128i lo = _mm_set1_epi32(0xff);
        for (; i + 16 <= n; i += 16) {
            __m128i v[4];
            for (int q = 0; q < 4; q++) v[q] = _mm_loadu_si128((const __m128i *)(s + 4 * i + 16 * q));
            for (int j = 0; j < 4; j++) { /* byte j of 16 elements */
                __m128i b[4];
                for (int q = 0; q < 4; q++) b[q] = _mm_and_si128(_mm_srli_epi32(v[q], 8 * j), lo);
                __m128i w0 = _mm_packs_epi32(b[0], b[1]), w1 = _mm_packs_epi32(b[2], b[3]);
                _mm_storeu_si128((__m128i *)(d + (size_t)j * n + i), _mm_packus_epi16(w0, w1));
            }
        }
    }
#endif
    shuffle_scalar(d, s, n, esize, i);
}

void sra_unshuffle_range(void *dst, const void *src, size_t n, size_t esize,
                         size_t first, size_t count) {
    const uint8_t *s = src;
    uint8_t *d = dst;
    size_t i = 0;
#if defined(__SSE2__)
    if (esize == 2) {
        const uint8_t *p0 = s + first, *p1 = s + n + first;
        for (; i + 16 <= count; i += 16) {
            __m128i a = _mm_loadu_si128((const __m128i *)(p0 + i));
            __m128i b = _mm_loadu_si128((const __m128i *)(p1 + i));
            _mm_storeu_si128((__m128i *)(d + 2 * i), _mm_unpacklo_epi8(a, b));
            _mm_storeu_si128((__m128i *)(d + 2 * i + 16), _mm_unpackhi_epi8(a, b));
        }
    } else if (esize == 4) {
        const uint8_t *p0 = s + first, *p1 = s + n + first, *p2 = s + 2 * n + first,
                      *p3 = s + 3 * n + first;
        for (; i + 16 <= count; i += 16) {
            __m128i a = _mm_loadu_si128((const __m128i *)(p0 + i));
            __m128i b = _mm_loadu_si128((const __m128i *)(p1 + i));
            __m128i c = _mm_loadu_si128((const __m128i *)(p2 + i));
            __m128i e = _mm_loadu_si128((const __m128i *)(p3 + i));
            __m128i ab0 = _mm_unpacklo_epi8(a, b), ab1 = _mm_unpackhi_epi8(a, b);
            __m128i ce0 = _mm_unpacklo_epi8(c, e), ce1 = _mm_unpackhi_epi8(c, e);
            _mm_storeu_si128((__m128i *)(d + 4 * i), _mm_unpacklo_epi16(ab0, ce0));
            _mm_storeu_si128((__m128i *)(d + 4 * i + 16), _mm_unpackhi_epi16(ab0, ce0));
            _mm_storeu_si128((__m128i *)(d + 4 * i + 32), _mm_unpacklo_epi16(ab1, ce1));
            _mm_storeu_si128((__m128i *)(d + 4 * i + 48), _mm_unpackhi_epi16(ab1, ce1));
        }
    }
#endif
    for (size_t j = 0; j < esize; j++)
        for (size_t k = i; k < count; k++) d[k * esize + j] = s[j * n + first + k];
}
