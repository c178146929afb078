/*
 * test_util - SHA-256 against FIPS 180-4 example digests, half/bfloat16
 * conversion against independent references (the compiler's _Float16 and
 * an exact nearest-value search), HDF5 shuffle against its definition, and
 * the zstd filter callback (round trip, corruption detection).
 */
#include <math.h>
#include <string.h>

#include "check.h"
#include "util.h"
#include "zstd_filter.h"

TEST(sha256_known_answers) {
    /* Digests published with FIPS 180-4 examples / NIST CAVP. */
    char hex[65];
    sra_sha256_hex("abc", 3, hex);
    CHECK(!strcmp(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"), "%s", hex);
    sra_sha256_hex("", 0, hex);
    CHECK(!strcmp(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"), "%s", hex);
    const char *m2 = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    sra_sha256_hex(m2, strlen(m2), hex);
    CHECK(!strcmp(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"), "%s", hex);
    /* one million 'a', fed in uneven pieces to exercise buffering */
    sra_sha256 s;
    sra_sha256_init(&s);
    char a[997];
    memset(a, 'a', sizeof a);
    size_t left = 1000000;
    while (left) {
        size_t n = left < sizeof a ? left : (left % 13) + 1;
        sra_sha256_update(&s, a, n);
        left -= n;
    }
    uint8_t d[32];
    sra_sha256_final(&s, d);
    static const uint8_t want[32] = {0xcd, 0xc7, 0x6e, 0x5c, 0x99, 0x14, 0xfb, 0x92, 0x81, 0xa1, 0xc7,
                                     0xe2, 0x84, 0xd7, 0x3e, 0x67, 0xf1, 0x80, 0x9a, 0x48, 0xa4, 0x97,
                                     0x20, 0x0e, 0x04, 0x6d, 0x39, 0xcc, 0xc7, 0x11, 0x2c, 0xd0};
    CHECK(!memcmp(d, want, 32), "million-a digest differs");
}

static uint32_t bits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static float from_bits(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

TEST(f16_matches_compiler_float16) {
    /* _Float16 conversions are done by the compiler/libgcc with IEEE
     * round-to-nearest-even: an implementation independent of ours. GCC
     * has _Float16 on x86-64 (12+); clang 14 does not there. */
#ifndef __FLT16_MAX__
    check_skip_("f16_matches_compiler_float16", "this compiler has no _Float16 (GCC 12+ has)");
}
#else
    int bad = 0;
    uint64_t x = 88172645463325252ull;
    for (long i = 0; i < 3000000 && bad < 5; i++) {
        x ^= x << 13; x ^= x >> 7; x ^= x << 17;
        uint32_t u = (uint32_t)x;
        if (i < 70000) u = (uint32_t)(0x33000000u + (uint32_t)i * 0x1000u) ^ (i & 1 ? 0x80000000u : 0); /* sweep around half range */
        float f = from_bits(u);
        if (isnan(f)) continue;
        _Float16 h = (_Float16)f;
        uint16_t ref;
        memcpy(&ref, &h, 2);
        uint16_t got = sra_f32_to_f16(f);
        if (got != ref) { bad++; CHECK(0, "f32 %08x -> f16 %04x, compiler says %04x", u, got, ref); }
    }
    for (uint32_t hb = 0; hb < 65536; hb++) {
        uint16_t h16 = (uint16_t)hb;
        _Float16 h;
        memcpy(&h, &h16, 2);
        float ref = (float)h, got = sra_f16_to_f32(h16);
        if (isnan(ref)) { CHECK(isnan(got), "f16 %04x should be NaN", hb); continue; }
        if (bits(ref) != bits(got)) { CHECK(0, "f16 %04x -> %g, compiler says %g", hb, got, ref); break; }
    }
}
#endif

/* Reference bf16 rounding by exhaustive comparison of the two neighbours. */
static uint16_t bf16_ref(float f) {
    uint32_t u = bits(f);
    uint16_t lo = (uint16_t)(u >> 16), hi = (uint16_t)(lo + 1);
    double a = from_bits((uint32_t)lo << 16), b = from_bits((uint32_t)hi << 16);
    double da = fabs((double)f - a), db = fabs((double)f - b);
    if (isinf(b) && !isinf(f)) { /* overflow boundary: compare with the IEEE rule */
        double next = ldexp(1.0, 128); /* the "value" of inf for rounding */
        db = fabs((double)fabs(f) - next);
    }
    if (da < db) return lo;
    if (db < da) return hi;
    return (lo & 1) ? hi : lo;
}

TEST(bf16_round_to_nearest_even) {
    uint64_t x = 0x1234567887654321ull;
    for (long i = 0; i < 2000000; i++) {
        x ^= x << 13; x ^= x >> 7; x ^= x << 17;
        uint32_t u = (uint32_t)x;
        if (i % 4 == 0) u = (u & 0xffff0000u) | 0x8000u; /* exact ties */
        float f = from_bits(u);
        if (isnan(f) || isinf(f)) continue;
        uint16_t got = sra_f32_to_bf16(f), ref = bf16_ref(f);
        if (got != ref) { CHECK(0, "f32 %08x -> bf16 %04x, reference %04x", u, got, ref); break; }
        CHECK(bits(sra_bf16_to_f32(got)) == (uint32_t)got << 16, "bf16 widening");
    }
    CHECK(isnan(sra_bf16_to_f32(sra_f32_to_bf16(NAN))), "NaN must stay NaN");
}

TEST(shuffle_is_hdf5_layout) {
    /* sizes around the 16-element vector width, every element size */
    static const size_t sizes[] = {1, 7, 15, 16, 17, 31, 32, 33, 1000, 1003};
    for (size_t es = 1; es <= 8; es++)
        for (size_t z = 0; z < sizeof sizes / sizeof *sizes; z++) {
            size_t N = sizes[z];
            uint8_t *src = malloc(N * es), *sh = malloc(N * es), *back = malloc(N * es);
            for (size_t i = 0; i < N * es; i++) src[i] = (uint8_t)(i * 131 + es + (i >> 7));
            sra_shuffle(sh, src, N, es);
            int ok = 1;
            for (size_t j = 0; j < es; j++)
                for (size_t i = 0; i < N; i++) ok &= sh[j * N + i] == src[i * es + j];
            CHECK(ok, "shuffle(n %zu, esize %zu) differs from byte j of element i -> j*n+i", N, es);
            for (size_t first = 0; first < N; first += N / 3 + 1) {
                size_t cnt = N - first > 37 ? N - first - (first % 5) : N - first;
                sra_unshuffle_range(back, sh, N, es, first, cnt);
                CHECK(!memcmp(back, src + first * es, cnt * es), "unshuffle n %zu esize %zu [%zu,+%zu)",
                      N, es, first, cnt);
            }
            free(src); free(sh); free(back);
        }
}

TEST(zstd_filter_roundtrip_and_corruption) {
    size_t n = 300000;
    uint8_t *data = malloc(n);
    for (size_t i = 0; i < n; i++) data[i] = (uint8_t)((i * i) >> 7);
    /* compress through the HDF5 callback, decompress through it too */
    size_t cap = n;
    void *buf = malloc(n);
    memcpy(buf, data, n);
    unsigned level = 5;
    size_t csize = sra_zstd_filter(0, 1, &level, n, &cap, &buf);
    CHECK(csize > 0 && csize < n, "compressed %zu of %zu", csize, n);
    void *copy = malloc(csize);
    memcpy(copy, buf, csize);
    size_t dsize = sra_zstd_filter(1u /* H5Z_FLAG_REVERSE */ << 8, 1, &level, csize, &cap, &buf);
    CHECK(dsize == n && !memcmp(buf, data, n), "round trip through the filter callback");
    /* our direct decoder agrees, and detects a flipped byte (frame checksum) */
    uint8_t *out = malloc(n);
    char why[160];
    CHECK(sra_zstd_decompress(NULL, out, n, copy, csize, why, sizeof why) == 0, "%s", why);
    CHECK(!memcmp(out, data, n), "direct decode");
    int detected = 0, tried = 0;
    for (size_t pos = 20; pos < csize; pos += csize / 17 + 1) {
        ((uint8_t *)copy)[pos] ^= 0x10;
        tried++;
        detected += sra_zstd_decompress(NULL, out, n, copy, csize, why, sizeof why) != 0;
        ((uint8_t *)copy)[pos] ^= 0x10;
    }
    CHECK(detected == tried, "only %d of %d flipped bytes detected", detected, tried);
    CHECK(sra_zstd_decompress(NULL, out, n - 1, copy, csize, why, sizeof why) != 0, "size mismatch");
    free(data); free(buf); free(copy); free(out);
}

int main(void) {
    RUN(sha256_known_answers);
    RUN(f16_matches_compiler_float16);
    RUN(bf16_round_to_nearest_even);
    RUN(shuffle_is_hdf5_layout);
    RUN(zstd_filter_roundtrip_and_corruption);
    return check_summary();
}
