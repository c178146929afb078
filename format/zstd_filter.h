/*
 * zstd_filter.h - HDF5 filter 32015 (Zstandard) and HDF5's byte shuffle.
 *
 * Owns the one implementation of the zstd chunk codec that sra uses in three
 * places: registered in-process by our programs (sra_zstd_filter_register),
 * exported as an HDF5 dynamically loaded plugin (build/plugins/libh5zstd.so,
 * see zstd_plugin.c) so h5py, h5dump and any HDF5 tool read sra caches, and
 * called directly by the cache's fast chunk path (H5Dwrite_chunk /
 * H5Dread_chunk) so compression runs outside HDF5's global lock.
 *
 * Wire format (compatible with the HDF Group's registered filter 32015):
 *   cd_values[0] (optional) = compression level; default SRA_ZSTD_LEVEL.
 *   Each chunk is exactly one zstd frame that records its content size.
 *   We also set the frame checksum flag, so a flipped byte anywhere in a
 *   chunk is detected on read; decoders that ignore it still work.
 *
 * Byte shuffle: HDF5 filter 2 (H5Z_FILTER_SHUFFLE) layout: for n elements of
 * s bytes, output byte j*n + i is input byte i*s + j; the n*s..len tail, if
 * any, is copied unchanged. We reproduce it so chunks we shuffle ourselves
 * are read back by stock HDF5.
 *
 * Thread-safety: every function is reentrant. Registration is idempotent.
 */
#ifndef SRA_ZSTD_FILTER_H
#define SRA_ZSTD_FILTER_H

#include <stddef.h>
#include <stdint.h>

#define SRA_H5Z_ZSTD 32015
#define SRA_H5Z_SHUFFLE 2
#define SRA_ZSTD_LEVEL 3

/* Registers filter 32015 with the HDF5 library of this process.
 * Returns 0, or -1 if HDF5 refused (it prints nothing: we silence its
 * error stack). */
int sra_zstd_filter_register(void);

/* The HDF5 filter callback (H5Z_func_t signature, kept HDF5-free here so
 * this header can be included anywhere). */
size_t sra_zstd_filter(unsigned flags, size_t cd_nelmts, const unsigned cd_values[],
                       size_t nbytes, size_t *buf_size, void **buf);

/* Compresses src (n bytes) into one checksummed frame at dst (cap bytes).
 * Returns the frame size, or 0 on failure (cap too small: use
 * sra_zstd_bound). Not thread-shared: each caller passes its own ctx from
 * sra_zstd_cctx_new (NULL = create and free one for this call). */
void *sra_zstd_cctx_new(void);
void sra_zstd_cctx_free(void *cctx);
size_t sra_zstd_bound(size_t n);
size_t sra_zstd_compress(void *cctx, void *dst, size_t cap, const void *src, size_t n,
                         int level);

/* Decompresses one frame (src, n) into dst that must receive exactly
 * `expect` bytes. Returns 0, or -1 with a short reason in why[len]
 * (corrupt frame, checksum mismatch, wrong content size). */
void *sra_zstd_dctx_new(void);
void sra_zstd_dctx_free(void *dctx);
int sra_zstd_decompress(void *dctx, void *dst, size_t expect, const void *src, size_t n,
                        char *why, size_t len);

/* HDF5 shuffle of n elements of `esize` bytes: src -> dst (no overlap). */
void sra_shuffle(void *dst, const void *src, size_t n, size_t esize);
/* Inverse for elements [first, first+count) of a shuffled block of n
 * elements: writes count*esize bytes to dst. */
void sra_unshuffle_range(void *dst, const void *src, size_t n, size_t esize,
                         size_t first, size_t count);

#endif /* SRA_ZSTD_FILTER_H */
