/*
 * test_safetensors - the safetensors reader (safetensors.h): the real
 * TinyStories-656K checkpoint (tied-weight alias, values against the raw
 * bytes and against numpy), synthetic F32/F16/BF16 files and a sharded
 * checkpoint written here, and one refusal for every kind of bad file, each
 * naming the file and the tensor or key at fault.
 * Missing shared assets: skipped loudly, failed under CI=true.
 */
#include <math.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "safetensors.h"
#include "util.h"

static char g_dir[256];




static void path_in(char *out, size_t n, const char *name) { snprintf(out, n, "%s/%s", g_dir, name); }

static uint32_t f32_bits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }

/* ============================================================ writers */

/* A file: u64 LE hlen, then hdr (hlen bytes; the string, space-padded when
 * hlen is longer), then data. */
static void write_st_len(const char *path, uint64_t hlen, const char *hdr, const void *data, size_t n) {
    FILE *fp = fopen(path, "wb");
    if (!fp) { CHECK(0, "cannot write %s", path); return; }
    uint8_t len[8];
    for (int i = 0; i < 8; i++) len[i] = (uint8_t)(hlen >> (8 * i));
    fwrite(len, 1, 8, fp);
    size_t hl = strlen(hdr);
    fwrite(hdr, 1, hl, fp);
    for (uint64_t i = hl; i < hlen && i < hl + 64; i++) fputc(' ', fp);
    if (n) fwrite(data, 1, n, fp);
    fclose(fp);
}

static void write_st(const char *path, const char *hdr, const void *data, size_t n) {
    write_st_len(path, strlen(hdr), hdr, data, n);
}

static void write_text(const char *path, const char *s) {
    FILE *fp = fopen(path, "wb");
    if (!fp) { CHECK(0, "cannot write %s", path); return; }
    fputs(s, fp);
    fclose(fp);
}

/* st_open(path) must fail with a message holding every non-NULL needle. */
static void expect_fail(int line, const char *path, const char *n1, const char *n2, const char *n3) {
    st_file *f = NULL;
    int rc = st_open(&f, path);
    const char *m = st_errmsg(f);
    if (rc >= 0) printf("  line %d: %s opened, expected an error\n", line, path);
    CHECK(rc < 0, "line %d: st_open accepted a bad file", line);
    const char *need[3] = {n1, n2, n3};
    for (int i = 0; i < 3; i++)
        if (need[i]) CHECK(strstr(m, need[i]), "line %d: message lacks \"%s\": %s", line, need[i], m);
    if (getenv("SRA_VERBOSE")) printf("    %s\n", m);
    st_close(f);
}
#define EXPECT_FAIL(path, a, b, c) expect_fail(__LINE__, path, a, b, c)

/* ========================================== the real checkpoint */

/* Facts about tinystories-656k/model.safetensors, from:
 *   /usr/bin/python3 -c "import struct,json; b=open('model.safetensors','rb').read(); \
 *     n=struct.unpack('<Q',b[:8])[0]; print(n, json.loads(b[8:8+n])['model.norm.weight'])"
 * -> 2160 {'dtype': 'F32', 'shape': [128], 'data_offsets': [2623488, 2624000]};
 * lm_head.weight has data_offsets [0, 1048576]. */
#define TS_HLEN 2160
#define TS_NORM_BEGIN 2623488

static float *read_raw_f32(const char *path, long at, size_t n) {
    FILE *fp = fopen(path, "rb");
    if (!fp) return NULL;
    float *v = malloc(n * sizeof *v);
    uint8_t *b = malloc(4 * n);
    int ok = v && b && fseek(fp, at, SEEK_SET) == 0 && fread(b, 4, n, fp) == n;
    fclose(fp);
    for (size_t i = 0; ok && i < n; i++) {
        uint32_t u = (uint32_t)b[4 * i] | (uint32_t)b[4 * i + 1] << 8 | (uint32_t)b[4 * i + 2] << 16 |
                     (uint32_t)b[4 * i + 3] << 24;
        memcpy(&v[i], &u, 4);
    }
    free(b);
    if (!ok) { free(v); return NULL; }
    return v;
}

TEST(tinystories_checkpoint) {
    char dir[1024], file[1100];
    snprintf(dir, sizeof dir, "%s/models/tinystories-656k", check_shared());
    snprintf(file, sizeof file, "%s/model.safetensors", dir);
    if (access(file, R_OK)) { check_missing_asset("tinystories_checkpoint", file); return; }

    st_file *f = NULL;
    int rc = st_open(&f, dir); /* a folder holding model.safetensors */
    CHECK(rc == 0, "st_open %s: %s", dir, st_errmsg(f));
    if (rc) { st_close(f); return; }
    CHECK(st_count(f) == 20, "count %d, expected 20 (19 layer tensors + lm_head)", st_count(f));
    for (int i = 1; i < st_count(f); i++)
        CHECK(strcmp(st_at(f, i - 1)->name, st_at(f, i)->name) < 0, "st_at not in name order at %d", i);

    /* The tied embedding: stored only as lm_head.weight (__metadata__
     * {"model.embed_tokens.weight": "lm_head.weight"}). */
    const st_tensor *emb = st_find(f, "model.embed_tokens.weight");
    const st_tensor *head = st_find(f, "lm_head.weight");
    CHECK(emb && emb == head, "embed_tokens does not resolve to lm_head");
    CHECK(!st_find(f, "format"), "__metadata__ \"format\": \"pt\" must not become a tensor alias");
    CHECK(!st_find(f, "nope"), "absent name found");
    if (!emb) { st_close(f); return; }
    CHECK(!strcmp(emb->name, "lm_head.weight"), "name %s", emb->name);
    CHECK(emb->dtype == ST_F32 && !strcmp(emb->dtype_str, "F32"), "dtype %s", emb->dtype_str);
    CHECK(emb->ndim == 2 && emb->shape[0] == 2048 && emb->shape[1] == 128, "shape");
    CHECK(emb->numel == 2048 * 128 && emb->nbytes == 4u * 2048 * 128, "numel %lld", (long long)emb->numel);
    CHECK(strstr(emb->file, "model.safetensors") != NULL, "file %s", emb->file);

    const int64_t want[2] = {2048, 128};
    CHECK(st_get(f, "model.embed_tokens.weight", 2, want) == emb, "st_get through the alias: %s", st_errmsg(f));

    /* st_to_f32 against the bytes read here with stdio. */
    size_t n = 2048 * 128;
    float *got = malloc(n * sizeof *got);
    float *raw = read_raw_f32(file, 8 + TS_HLEN, n);
    CHECK(raw != NULL, "cannot read %s", file);
    if (got && raw) {
        st_to_f32(emb, 0, n, got);
        CHECK(!memcmp(got, raw, n * sizeof *got), "lm_head differs from the raw floats");
        st_to_f32(emb, 1000, 3, got);
        CHECK(!memcmp(got, raw + 1000, 3 * sizeof *got), "offset 1000 differs");
        /* numpy:  /usr/bin/python3 -c "import numpy as np,struct,json; \
         *   b=open('model.safetensors','rb').read(); n=struct.unpack('<Q',b[:8])[0]; \
         *   w=np.frombuffer(b[8+n:8+n+1048576],'<f4').reshape(2048,128); \
         *   print(repr(w[5,7]), repr(w[2047,127]))"  ->  -0.48632812 -0.421875 */
        CHECK(raw[5 * 128 + 7] == -0.48632812f, "lm_head[5,7] = %.9g", raw[5 * 128 + 7]);
        st_to_f32(emb, 5 * 128 + 7, 1, got);
        CHECK(got[0] == -0.48632812f, "lm_head[5,7] = %.9g, numpy -0.48632812", got[0]);
        st_to_f32(emb, n - 1, 1, got);
        CHECK(got[0] == -0.421875f, "lm_head[2047,127] = %.9g, numpy -0.421875", got[0]);
    }
    free(raw);

    const int64_t c128[1] = {128};
    const st_tensor *norm = st_get(f, "model.norm.weight", 1, c128);
    CHECK(norm != NULL, "%s", st_errmsg(f));
    raw = read_raw_f32(file, 8 + TS_HLEN + TS_NORM_BEGIN, 128);
    if (norm && raw && got) {
        st_to_f32(norm, 0, 128, got);
        CHECK(!memcmp(got, raw, 128 * sizeof *got), "model.norm.weight differs from the raw floats");
        /* numpy, as above with the norm's offsets: w[0] -> 0.640625 */
        CHECK(got[0] == 0.640625f, "norm[0] = %.9g, numpy 0.640625", got[0]);
    }
    free(raw);

    /* numpy: float(q.astype(np.float64).sum()) for
     * model.layers.1.self_attn.q_proj.weight -> 97.22592389583588 */
    const int64_t qs[2] = {128, 128};
    const st_tensor *q = st_get(f, "model.layers.1.self_attn.q_proj.weight", 2, qs);
    CHECK(q != NULL, "%s", st_errmsg(f));
    if (q && got) {
        st_to_f32(q, 0, 128 * 128, got);
        double s = 0;
        for (int i = 0; i < 128 * 128; i++) s += got[i];
        CHECK(fabs(s - 97.22592389583588) < 1e-9, "q_proj sum %.17g, numpy 97.22592389583588", s);
    }
    free(got);

    /* st_get refusals, in the header's words. */
    const int64_t up[2] = {512, 128};
    CHECK(!st_get(f, "model.layers.0.mlp.up_proj.weight", 2, up), "wrong shape accepted");
    CHECK(strstr(st_errmsg(f), "model.layers.0.mlp.up_proj.weight: shape [384, 128], expected [512, 128]"),
          "%s", st_errmsg(f));
    CHECK(strstr(st_errmsg(f), "model.safetensors"), "no file in: %s", st_errmsg(f));
    CHECK(!st_get(f, "model.layers.0.mlp.up_proj.weight", 1, up), "wrong ndim accepted");
    CHECK(!st_get(f, "model.layers.9.mlp.up_proj.weight", 2, up), "missing accepted");
    CHECK(strstr(st_errmsg(f), "model.layers.9.mlp.up_proj.weight: missing"), "%s", st_errmsg(f));
    st_close(f);

    /* The file itself, not its folder, opens the same. */
    rc = st_open(&f, file);
    CHECK(rc == 0 && st_count(f) == 20, "st_open %s: %s", file, st_errmsg(f));
    st_close(f);
}

/* ============================================== synthetic, valid */

TEST(synthetic_dtypes) {
    char p[512];
    path_in(p, sizeof p, "dtypes.safetensors");
    /* data: a F32 [2,2] at 0, F16 [6] at 16, BF16 [2,3] at 28, I64 [2] at
     * 40, an empty F32 [0,4] at 16 (sharing an offset is fine: it holds no
     * byte), a scalar F32 [] at 56. The header has odd length (65 + ...) so
     * the data block is not 4-byte aligned in the mapping. */
    const char *hdr =
        "{\"__metadata__\":{\"format\":\"pt\",\"tied\":\"w32\"},"
        "\"w32\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]},"
        "\"h16\":{\"dtype\":\"F16\",\"shape\":[6],\"data_offsets\":[16,28]},"
        "\"b16\":{\"dtype\":\"BF16\",\"shape\":[2,3],\"data_offsets\":[28,40]},"
        "\"ids\":{\"dtype\":\"I64\",\"shape\":[2],\"data_offsets\":[40,56]},"
        "\"empty\":{\"dtype\":\"F32\",\"shape\":[0,4],\"data_offsets\":[16,16]},"
        "\"scalar\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[56,60]}}";
    CHECK(strlen(hdr) % 2 == 1, "header length %zu should be odd for this test", strlen(hdr));
    uint8_t d[60] = {0};
    const float w[4] = {1.0f, -2.5f, 3.25f, 1e-20f};
    for (int i = 0; i < 4; i++) {
        uint32_t u = f32_bits(w[i]);
        for (int k = 0; k < 4; k++) d[4 * i + k] = (uint8_t)(u >> (8 * k));
    }
    /* 1.5, -2, 0.0999755859375, 65504 (max), 2^-24 (smallest subnormal), -inf */
    const uint16_t h[6] = {0x3E00, 0xC000, 0x2E66, 0x7BFF, 0x0001, 0xFC00};
    const float hv[6] = {1.5f, -2.0f, 0.0999755859375f, 65504.0f, 5.9604644775390625e-08f, -INFINITY};
    /* 1.5, -2, 1/3 rounded to bf16 (0x3EAB = 0.333984375), 3e38-ish, tiny, +inf */
    const uint16_t b[6] = {0x3FC0, 0xC000, 0x3EAB, 0x7F61, 0x0080, 0x7F80};
    for (int i = 0; i < 6; i++) {
        d[16 + 2 * i] = (uint8_t)h[i];
        d[17 + 2 * i] = (uint8_t)(h[i] >> 8);
        d[28 + 2 * i] = (uint8_t)b[i];
        d[29 + 2 * i] = (uint8_t)(b[i] >> 8);
    }
    d[40] = 7;
    uint32_t s = f32_bits(42.0f);
    for (int k = 0; k < 4; k++) d[56 + k] = (uint8_t)(s >> (8 * k));
    write_st(p, hdr, d, sizeof d);

    st_file *f = NULL;
    int rc = st_open(&f, p);
    CHECK(rc == 0, "%s", st_errmsg(f));
    if (rc) { st_close(f); return; }
    CHECK(st_count(f) == 6, "count %d", st_count(f));
    float out[8];

    const st_tensor *t = st_find(f, "w32");
    CHECK(t && t->dtype == ST_F32 && t->ndim == 2 && t->numel == 4 && t->nbytes == 16, "w32");
    CHECK(t && ((uintptr_t)t->data & 3) != 0, "data happens to be aligned; test meant to cover unaligned");
    CHECK(st_find(f, "tied") == t, "synthetic alias");
    if (t) {
        st_to_f32(t, 0, 4, out);
        for (int i = 0; i < 4; i++) CHECK(f32_bits(out[i]) == f32_bits(w[i]), "w32[%d] = %g", i, out[i]);
        st_to_f32(t, 3, 2, out); /* one past the end: NaN */
        CHECK(out[0] == 1e-20f && isnan(out[1]), "w32 tail %g %g", out[0], out[1]);
    }

    t = st_find(f, "h16");
    CHECK(t && t->dtype == ST_F16 && !strcmp(t->dtype_str, "F16"), "h16");
    if (t) {
        st_to_f32(t, 0, 6, out);
        for (int i = 0; i < 6; i++) CHECK(out[i] == hv[i], "h16[%d] = %.10g, expected %.10g", i, out[i], hv[i]);
        st_to_f32(t, 2, 2, out);
        CHECK(out[0] == hv[2] && out[1] == hv[3], "h16 from offset 2");
    }

    t = st_find(f, "b16");
    CHECK(t && t->dtype == ST_BF16 && t->ndim == 2 && t->shape[1] == 3, "b16");
    if (t) {
        st_to_f32(t, 0, 6, out);
        const float bv[4] = {1.5f, -2.0f, 0.333984375f, 0};
        for (int i = 0; i < 3; i++) CHECK(out[i] == bv[i], "b16[%d] = %.10g", i, out[i]);
        for (int i = 0; i < 6; i++)
            CHECK(f32_bits(out[i]) == (uint32_t)b[i] << 16, "b16[%d] bits %08x", i, f32_bits(out[i]));
        CHECK(isinf(out[5]) && out[5] > 0, "b16 +inf");
    }

    t = st_find(f, "ids");
    CHECK(t && t->dtype == ST_OTHER && !strcmp(t->dtype_str, "I64") && t->nbytes == 16, "ids");
    const int64_t two[1] = {2};
    CHECK(!st_get(f, "ids", 1, two), "I64 fetched");
    CHECK(strstr(st_errmsg(f), "ids: dtype I64"), "%s", st_errmsg(f));
    CHECK(strstr(st_errmsg(f), "dtypes.safetensors"), "%s", st_errmsg(f));
    if (t) {
        st_to_f32(t, 0, 2, out);
        CHECK(isnan(out[0]) && isnan(out[1]), "non-float tensor converts to NaN");
    }

    t = st_find(f, "empty");
    CHECK(t && t->numel == 0 && t->nbytes == 0 && t->shape[0] == 0 && t->shape[1] == 4, "empty");
    t = st_find(f, "scalar");
    CHECK(t && t->ndim == 0 && t->numel == 1, "scalar");
    CHECK(st_get(f, "scalar", 0, NULL) == t, "st_get scalar: %s", st_errmsg(f));
    if (t) {
        st_to_f32(t, 0, 1, out);
        CHECK(out[0] == 42.0f, "scalar %g", out[0]);
    }
    st_close(f);
}

/* Every bf16 and f16 pattern converts as sra_bf16_to_f32 / sra_f16_to_f32
 * do, bit for bit (the vector paths against the scalar definitions), from
 * every offset 0..8 and with lengths that leave every tail length; an f16
 * NaN may come out quiet (F16C quiets signaling NaNs), but stays a NaN of
 * the same sign. */
static void all_patterns(const char *dtype, float (*ref)(uint16_t)) {
    uint8_t *d = malloc(2 * 65536);
    float *out = malloc((65536 + 1) * sizeof *out);
    if (!d || !out) { free(d); free(out); CHECK(0, "oom"); return; }
    for (int i = 0; i < 65536; i++) { d[2 * i] = (uint8_t)i; d[2 * i + 1] = (uint8_t)(i >> 8); }
    char p[512], hdr[128];
    snprintf(hdr, sizeof hdr, "%s.safetensors", dtype);
    path_in(p, sizeof p, hdr);
    snprintf(hdr, sizeof hdr, "{\"x\":{\"dtype\":\"%s\",\"shape\":[256,256],\"data_offsets\":[0,131072]}}", dtype);
    write_st(p, hdr, d, 2 * 65536);
    st_file *f = NULL;
    CHECK(st_open(&f, p) == 0, "%s", st_errmsg(f));
    const st_tensor *t = st_find(f, "x");
    if (t) {
        int bad = 0;
        for (int off = 0; off <= 8; off++) {
            size_t n = 65536 - (size_t)off - (size_t)(off % 3);
            out[n] = 12345.0f; /* must stay untouched */
            st_to_f32(t, (size_t)off, n, out);
            for (size_t i = 0; i < n; i++) {
                uint16_t v = (uint16_t)(off + i);
                float want = ref(v);
                uint32_t gb = f32_bits(out[i]), wb = f32_bits(want);
                int same = isnan(want) ? isnan(out[i]) && (gb >> 31) == (wb >> 31) : gb == wb;
                if (!same && bad++ < 3) printf("  %s 0x%04x: got %08x, expected %08x\n", dtype, v, gb, wb);
            }
            bad += out[n] != 12345.0f;
        }
        CHECK(!bad, "%s: %d patterns differ", dtype, bad);
        double t0 = sra_now();
        for (int r = 0; r < 200; r++) st_to_f32(t, 0, 65536, out);
        double dt = sra_now() - t0;
        printf("  %s -> f32: %.0f M elements/s\n", dtype, 200 * 65536 / dt / 1e6);
    }
    st_close(f);
    free(d);
    free(out);
}

TEST(bf16_all_patterns) { all_patterns("BF16", sra_bf16_to_f32); }
TEST(f16_all_patterns) { all_patterns("F16", sra_f16_to_f32); }

/* ============================================== a sharded checkpoint */

static const float A[3] = {1, 2, 3}, B[2] = {-1, -2};

static void write_shards(const char *sub) {
    char d[512], p[600];
    path_in(d, sizeof d, sub);
    mkdir(d, 0755);
    uint8_t a[12], b[8];
    memcpy(a, A, 12); /* little-endian host, as the reader assumes for F32 */
    memcpy(b, B, 8);
    snprintf(p, sizeof p, "%s/model-00001-of-00002.safetensors", d);
    write_st(p, "{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,12]},"
                "\"__metadata__\":{\"format\":\"pt\",\"alias.a\":\"a\"}}", a, 12);
    snprintf(p, sizeof p, "%s/model-00002-of-00002.safetensors", d);
    write_st(p, "{\"b\":{\"dtype\":\"F32\",\"shape\":[1,2],\"data_offsets\":[0,8]}}", b, 8);
}

TEST(sharded) {
    char d[512], ix[600];
    write_shards("sharded");
    path_in(d, sizeof d, "sharded");
    snprintf(ix, sizeof ix, "%s/model.safetensors.index.json", d);
    write_text(ix, "{\"metadata\":{\"total_size\":20},\"weight_map\":{"
                   "\"a\":\"model-00001-of-00002.safetensors\","
                   "\"b\":\"model-00002-of-00002.safetensors\"}}");
    const char *paths[2] = {d, ix};
    for (int k = 0; k < 2; k++) {
        st_file *f = NULL;
        int rc = st_open(&f, paths[k]);
        CHECK(rc == 0, "st_open %s: %s", paths[k], st_errmsg(f));
        CHECK(st_count(f) == 2, "count %d", st_count(f));
        const st_tensor *a = st_find(f, "a"), *b = st_find(f, "b");
        CHECK(a && strstr(a->file, "model-00001-of-00002.safetensors"), "a's shard");
        CHECK(b && strstr(b->file, "model-00002-of-00002.safetensors"), "b's shard");
        CHECK(st_find(f, "alias.a") == a, "alias from a shard's metadata");
        float out[3];
        if (a) { st_to_f32(a, 0, 3, out); CHECK(!memcmp(out, A, 12), "a values"); }
        const int64_t s12[2] = {1, 2};
        b = st_get(f, "b", 2, s12);
        CHECK(b != NULL, "%s", st_errmsg(f));
        if (b) { st_to_f32(b, 0, 2, out); CHECK(!memcmp(out, B, 8), "b values"); }
        st_close(f);
    }
}

/* ======================================================= bad files */

static const char *GOOD = "{\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}";

TEST(bad_single_files) {
    char p[512];
    uint8_t z[64] = {0};

    path_in(p, sizeof p, "tiny.safetensors"); /* shorter than the length */
    write_text(p, "abc");
    EXPECT_FAIL(p, p, "at least 8", NULL);

    path_in(p, sizeof p, "trunc.safetensors"); /* data cut short */
    write_st(p, GOOD, z, 5);
    EXPECT_FAIL(p, p, "tensor t", "truncated");

    path_in(p, sizeof p, "hlen.safetensors"); /* length beyond the file */
    write_st_len(p, 4000, GOOD, z, 8);
    EXPECT_FAIL(p, p, "header length 4000", "truncated");

    path_in(p, sizeof p, "hugelen.safetensors"); /* absurd length */
    write_st_len(p, (uint64_t)1 << 62, GOOD, z, 8);
    EXPECT_FAIL(p, p, "header length 4611686018427387904", "100 MB");

    path_in(p, sizeof p, "notjson.safetensors");
    write_st(p, "{\"t\": {\"dtype\": F32}}", z, 8);
    EXPECT_FAIL(p, p, "not valid JSON", NULL);

    path_in(p, sizeof p, "array.safetensors");
    write_st(p, "[1, 2]", z, 8);
    EXPECT_FAIL(p, p, "not a JSON object", NULL);

    path_in(p, sizeof p, "trailing.safetensors");
    write_st(p, "{} {}", z, 8);
    EXPECT_FAIL(p, p, "after the JSON", NULL);

    path_in(p, sizeof p, "nul.safetensors");
    {
        uint8_t hb[8] = {'{', '}', 0, ' ', ' ', ' ', ' ', ' '};
        FILE *fp = fopen(p, "wb");
        uint8_t len[8] = {8};
        fwrite(len, 1, 8, fp);
        fwrite(hb, 1, 8, fp);
        fclose(fp);
    }
    EXPECT_FAIL(p, p, "NUL", NULL);

    path_in(p, sizeof p, "dtype.safetensors");
    write_st(p, "{\"t\":{\"dtype\":\"F33\",\"shape\":[2],\"data_offsets\":[0,8]}}", z, 8);
    EXPECT_FAIL(p, p, "tensor t", "unknown dtype \"F33\"");

    path_in(p, sizeof p, "nodtype.safetensors");
    write_st(p, "{\"t\":{\"shape\":[2],\"data_offsets\":[0,8]}}", z, 8);
    EXPECT_FAIL(p, p, "tensor t", "dtype");

    path_in(p, sizeof p, "size.safetensors"); /* 3 F32 in 8 bytes */
    write_st(p, "{\"t\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", z, 16);
    EXPECT_FAIL(p, p, "tensor t", "expected 12");

    path_in(p, sizeof p, "size16.safetensors"); /* F16 counted as 2 bytes */
    write_st(p, "{\"t\":{\"dtype\":\"F16\",\"shape\":[2,2],\"data_offsets\":[0,16]}}", z, 16);
    EXPECT_FAIL(p, p, "tensor t", "expected 8");

    path_in(p, sizeof p, "oob.safetensors"); /* end past the data block */
    write_st(p, "{\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[60,68]}}", z, 64);
    EXPECT_FAIL(p, p, "tensor t", "outside the data block");

    path_in(p, sizeof p, "backwards.safetensors");
    write_st(p, "{\"t\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[8,0]}}", z, 8);
    EXPECT_FAIL(p, p, "tensor t", "end before begin");

    path_in(p, sizeof p, "negoff.safetensors");
    write_st(p, "{\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[-8,0]}}", z, 8);
    EXPECT_FAIL(p, p, "tensor t", "data_offsets");

    path_in(p, sizeof p, "oneoff.safetensors");
    write_st(p, "{\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0]}}", z, 8);
    EXPECT_FAIL(p, p, "tensor t", "data_offsets");

    path_in(p, sizeof p, "overlap.safetensors");
    write_st(p, "{\"first\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},"
                "\"second\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[12,20]}}", z, 24);
    EXPECT_FAIL(p, p, "first", "second");

    path_in(p, sizeof p, "inside.safetensors"); /* one tensor inside another, a third after */
    write_st(p, "{\"big\":{\"dtype\":\"F32\",\"shape\":[8],\"data_offsets\":[0,32]},"
                "\"c\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[32,36]},"
                "\"small\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}", z, 40);
    EXPECT_FAIL(p, p, "big", "small");

    path_in(p, sizeof p, "same.safetensors"); /* identical ranges */
    write_st(p, "{\"u\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                "\"v\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", z, 8);
    EXPECT_FAIL(p, p, "u", "overlap");

    path_in(p, sizeof p, "dup.safetensors"); /* a name twice in one header */
    write_st(p, "{\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                "\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}", z, 16);
    EXPECT_FAIL(p, p, "tensor t", "twice");

    path_in(p, sizeof p, "negshape.safetensors");
    write_st(p, "{\"t\":{\"dtype\":\"F32\",\"shape\":[2,-1],\"data_offsets\":[0,8]}}", z, 8);
    EXPECT_FAIL(p, p, "tensor t", "shape[1] = -1");

    path_in(p, sizeof p, "fracshape.safetensors");
    write_st(p, "{\"t\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,8]}}", z, 8);
    EXPECT_FAIL(p, p, "tensor t", "shape[0] = 1.5");

    path_in(p, sizeof p, "hugeshape.safetensors");
    write_st(p, "{\"t\":{\"dtype\":\"F32\",\"shape\":[1e30],\"data_offsets\":[0,8]}}", z, 8);
    EXPECT_FAIL(p, p, "tensor t", "shape[0]");

    path_in(p, sizeof p, "overflow.safetensors"); /* each dim fine, product overflows */
    write_st(p, "{\"t\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,4294967296],"
                "\"data_offsets\":[0,8]}}", z, 8);
    EXPECT_FAIL(p, p, "tensor t", "too large");

    path_in(p, sizeof p, "bigprod.safetensors"); /* fits in u64 elements but not in bytes */
    write_st(p, "{\"t\":{\"dtype\":\"F64\",\"shape\":[4294967296,1073741824],\"data_offsets\":[0,8]}}", z, 8);
    EXPECT_FAIL(p, p, "tensor t", "too large");

    path_in(p, sizeof p, "fivedims.safetensors");
    write_st(p, "{\"t\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,2],\"data_offsets\":[0,8]}}", z, 8);
    EXPECT_FAIL(p, p, "tensor t", "5 dims");

    path_in(p, sizeof p, "shapestr.safetensors");
    write_st(p, "{\"t\":{\"dtype\":\"F32\",\"shape\":\"2\",\"data_offsets\":[0,8]}}", z, 8);
    EXPECT_FAIL(p, p, "tensor t", "shape");

    path_in(p, sizeof p, "entry.safetensors");
    write_st(p, "{\"t\":[1,2]}", z, 8);
    EXPECT_FAIL(p, p, "tensor t", "expected an object");

    path_in(p, sizeof p, "meta.safetensors");
    write_st(p, "{\"__metadata__\":{\"format\":1},"
                "\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", z, 8);
    EXPECT_FAIL(p, p, "__metadata__.format", "string");

    path_in(p, sizeof p, "absent.safetensors");
    EXPECT_FAIL(p, p, "cannot open", NULL);

    char d[512];
    path_in(d, sizeof d, "emptydir");
    mkdir(d, 0755);
    EXPECT_FAIL(d, d, "neither", NULL);

    /* A header padded with spaces and an empty checkpoint are fine. */
    path_in(p, sizeof p, "padded.safetensors");
    write_st_len(p, strlen(GOOD) + 5, GOOD, z, 8);
    st_file *f = NULL;
    CHECK(st_open(&f, p) == 0 && st_count(f) == 1, "padded header: %s", st_errmsg(f));
    st_close(f);
    path_in(p, sizeof p, "none.safetensors");
    write_st(p, "{}", NULL, 0);
    CHECK(st_open(&f, p) == 0 && st_count(f) == 0, "empty header: %s", st_errmsg(f));
    st_close(f);
}

TEST(bad_sharded) {
    char d[512], ix[600], p[600];
    write_shards("bad_sharded");
    path_in(d, sizeof d, "bad_sharded");
    snprintf(ix, sizeof ix, "%s/model.safetensors.index.json", d);

    /* index names a tensor its shard lacks */
    write_text(ix, "{\"weight_map\":{\"a\":\"model-00001-of-00002.safetensors\","
                   "\"b\":\"model-00002-of-00002.safetensors\",\"ghost\":\"model-00002-of-00002.safetensors\"}}");
    EXPECT_FAIL(d, ix, "ghost", "model-00002-of-00002.safetensors");

    /* index puts a tensor in the wrong shard */
    write_text(ix, "{\"weight_map\":{\"a\":\"model-00002-of-00002.safetensors\","
                   "\"b\":\"model-00002-of-00002.safetensors\"}}");
    EXPECT_FAIL(ix, ix, "weight_map.a", "does not hold");

    /* index names a shard that is not there */
    write_text(ix, "{\"weight_map\":{\"a\":\"model-00001-of-00002.safetensors\","
                   "\"c\":\"model-00003-of-00003.safetensors\"}}");
    EXPECT_FAIL(ix, ix, "model-00003-of-00003.safetensors", "weight_map.c");

    write_text(ix, "{\"metadata\":{}}");
    EXPECT_FAIL(ix, ix, "weight_map", NULL);
    write_text(ix, "{\"weight_map\":{\"a\":1}}");
    EXPECT_FAIL(ix, ix, "weight_map.a", NULL);
    write_text(ix, "{\"weight_map\":");
    EXPECT_FAIL(ix, ix, "JSON", NULL);
    write_text(ix, "{\"weight_map\":{}}");
    EXPECT_FAIL(ix, ix, "empty", NULL);

    /* the same tensor in two shards */
    snprintf(p, sizeof p, "%s/model-00002-of-00002.safetensors", d);
    uint8_t z[20] = {0};
    write_st(p, "{\"b\":{\"dtype\":\"F32\",\"shape\":[1,2],\"data_offsets\":[0,8]},"
                "\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[8,20]}}", z, 20);
    write_text(ix, "{\"weight_map\":{\"a\":\"model-00001-of-00002.safetensors\","
                   "\"b\":\"model-00002-of-00002.safetensors\"}}");
    EXPECT_FAIL(ix, "tensor a", "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors");

    /* a corrupt shard is reported under its own name */
    write_st(p, "{\"b\":{\"dtype\":\"F32\",\"shape\":[1,2],\"data_offsets\":[0,80]}}", z, 8);
    EXPECT_FAIL(ix, p, "tensor b", NULL);
}

int main(void) {
    snprintf(g_dir, sizeof g_dir, "/tmp/sra-test-st-XXXXXX");
    if (!mkdtemp(g_dir)) { perror("mkdtemp"); return 1; }
    RUN(tinystories_checkpoint);
    RUN(synthetic_dtypes);
    RUN(bf16_all_patterns);
    RUN(f16_all_patterns);
    RUN(sharded);
    RUN(bad_single_files);
    RUN(bad_sharded);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    if (system(cmd)) return 1;
    return check_summary();
}
