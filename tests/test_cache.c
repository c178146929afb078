/*
 * test_cache - the cache format v2: bit-exact round trips for every dtype
 * and storage option, read-ahead with several threads and block sizes,
 * determinism, writer validation, and one distinct error for every kind of
 * bad file (issue 3 acceptance). The expected values come from the fixture
 * generator, never from an earlier run of the reader.
 */
#include <errno.h>
#include <fcntl.h>
#include <hdf5.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cJSON.h>

#include "cache.h"
#include "cache_head.h"
#include "check.h"
#include "fixture.h"
#include "loader.h"
#include "safetensors.h"
#include "zstd_filter.h"

static char g_dir[256];
static char *g_tok;
static const char *g_cfg = "{\"model_type\":\"llama\"}";

static void path_in(char *out, size_t n, const char *name) { snprintf(out, n, "%s/%s", g_dir, name); }

typedef struct {
    cache_dtype dt;
    int layers, level, shuffle;
    int64_t d, k, docs;
    size_t chunk;
    uint64_t seed;
} cfg;

static void meta_for(const cfg *c, cache_meta *m) {
    fx_meta(m, c->dt, c->layers, c->d, c->k, g_tok, g_cfg);
    m->record_end = 2 * c->docs;
}

static int write_fixture(const cfg *c, const char *path) {
    cache_meta m;
    meta_for(c, &m);
    cache_write_opts o;
    cache_write_opts_default(&o);
    o.zstd_level = c->level;
    o.shuffle = c->shuffle;
    o.chunk_bytes = c->chunk;
    cache_writer *w;
    int rc = cache_writer_open(&w, path, &m, &o);
    for (int64_t i = 0; !rc && i < c->docs; i++) {
        fx_doc f;
        cache_doc d;
        fx_doc_make(&f, c->seed, i, &m);
        fx_doc_view(&f, &m, &d);
        rc = cache_writer_add(w, &d);
        fx_doc_free(&f, &m);
    }
    if (!rc) rc = cache_writer_finish(w);
    if (rc) printf("  writer: %s\n", cache_writer_errmsg(w));
    cache_writer_free(w);
    return rc;
}

/* 0 if doc equals fixture document i bit for bit. */
static int same_doc(const cfg *c, const cache_meta *m, const cache_doc *d, int64_t i) {
    fx_doc f;
    fx_doc_make(&f, c->seed, i, m);
    size_t A = (size_t)f.n_atoms, k = (size_t)c->k, esz = cache_dtype_size(c->dt);
    int bad = d->index != i || d->record != f.record || d->text_len != f.len ||
              d->loss_start != f.loss_start || d->n_atoms != f.n_atoms ||
              memcmp(d->text, f.text, (size_t)f.len) || memcmp(d->atom_start, f.start, A * 4) ||
              memcmp(d->atom_end, f.end, A * 4) || memcmp(d->mass, f.mass, A * 4) ||
              memcmp(d->tail_mass, f.tail, A * 4) || memcmp(d->topk_ids, f.ids, A * k * 4) ||
              memcmp(d->topk_logprob, f.lp, A * k * 2);
    for (int j = 0; j < c->layers; j++)
        bad |= memcmp(d->com[j], f.com[j], A * (size_t)c->d * esz) != 0;
    fx_doc_free(&f, m);
    return bad;
}

static void roundtrip(const cfg *c, const char *label) {
    char path[512];
    path_in(path, sizeof path, "rt.h5");
    CHECK(write_fixture(c, path) == 0, "%s: write", label);
    cache_reader *r;
    int rc = cache_open(&r, path);
    CHECK(rc == 0, "%s: open: %s", label, cache_errmsg(r));
    if (rc) { cache_close(r); return; }
    cache_meta m;
    meta_for(c, &m);
    const cache_meta *rm = cache_meta_get(r);
    CHECK(cache_n_docs(r) == c->docs, "%s: %lld docs", label, (long long)cache_n_docs(r));
    CHECK(rm->hidden_dtype == c->dt && rm->n_layers == c->layers && rm->hidden_size == c->d &&
              rm->topk == c->k && rm->layers[0] == CACHE_LAYER_FINAL && !strcmp(rm->atoms, "word") &&
              !strcmp(rm->mass, "attn:-1") && rm->teacher_vocab_size == FX_VOCAB &&
              rm->record_end == 2 * c->docs && !strcmp(rm->created, "2026-01-01T00:00:00Z"),
          "%s: metadata", label);
    /* sequential with read-ahead: several thread counts and block sizes */
    size_t blocks[] = {1, 3000, 0};
    for (int t = 1; t <= 3; t++)
        for (int b = 0; b < 3; b++) {
            cache_set_block_bytes(r, blocks[b]);
            int64_t first = t == 3 ? c->docs / 3 : 0, end = t == 3 ? c->docs - 2 : c->docs;
            if (end < first) end = first;
            rc = cache_iter_begin(r, first, end, t);
            cache_doc d;
            int64_t i = first, bad = -1;
            while ((rc = cache_iter_next(r, &d)) == 1) {
                if (bad < 0 && same_doc(c, &m, &d, i)) bad = i;
                i++;
            }
            CHECK(rc == 0, "%s: iter: %s", label, cache_errmsg(r));
            CHECK(i == end, "%s: iterated to %lld, expected %lld", label, (long long)i, (long long)end);
            CHECK(bad < 0, "%s: threads %d block %zu: doc %lld differs", label, t, blocks[b], (long long)bad);
            cache_iter_end(r);
        }
    /* random access */
    for (int64_t i = c->docs - 1; i >= 0; i -= 3) {
        cache_doc d;
        rc = cache_read_doc(r, i, &d);
        CHECK(rc == 0 && !same_doc(c, &m, &d, i), "%s: read_doc %lld", label, (long long)i);
    }
    cache_doc d;
    CHECK(cache_read_doc(r, c->docs, &d) == SRA_E_ARG, "%s: out-of-range doc", label);
    rc = cache_read_blobs(r);
    CHECK(rc == 0 && rm->teacher_tokenizer_len == strlen(g_tok) &&
              !memcmp(rm->teacher_tokenizer_json, g_tok, strlen(g_tok)) &&
              rm->teacher_config_len == strlen(g_cfg),
          "%s: blobs: %s", label, cache_errmsg(r));
    cache_close(r);
}

TEST(roundtrip_all_dtypes_and_options) {
    cfg base = {CACHE_BF16, 2, 3, -1, 48, 8, 60, 1 << 20, 7};
    cache_dtype dts[] = {CACHE_BF16, CACHE_F16, CACHE_F32};
    for (int t = 0; t < 3; t++) {
        cfg c = base;
        c.dt = dts[t];
        char label[64];
        snprintf(label, sizeof label, "%s default", cache_dtype_name(c.dt));
        roundtrip(&c, label);
        c.chunk = 3000; /* many chunks, documents straddling them */
        c.layers = 3;
        snprintf(label, sizeof label, "%s small chunks", cache_dtype_name(c.dt));
        roundtrip(&c, label);
        c.shuffle = 0;
        snprintf(label, sizeof label, "%s no shuffle", cache_dtype_name(c.dt));
        roundtrip(&c, label);
        c.level = 0;
        snprintf(label, sizeof label, "%s uncompressed", cache_dtype_name(c.dt));
        roundtrip(&c, label);
    }
    cfg one = {CACHE_BF16, 1, 19, 1, 1, 1, 5, 64, 3}; /* d = k = 1, tiny chunks, high level */
    roundtrip(&one, "d=k=1");
}

TEST(empty_shard) {
    cfg c = {CACHE_BF16, 1, 3, -1, 16, 4, 0, 1 << 20, 1};
    char path[512];
    path_in(path, sizeof path, "empty.h5");
    CHECK(write_fixture(&c, path) == 0, "write");
    cache_reader *r;
    int rc = cache_open(&r, path);
    CHECK(rc == 0 && cache_n_docs(r) == 0 && cache_n_atoms(r) == 0, "open: %s", cache_errmsg(r));
    if (!rc) {
        cache_doc d;
        CHECK(cache_iter_begin(r, 0, 0, 2) == 0 && cache_iter_next(r, &d) == 0, "iter on empty");
    }
    cache_close(r);
}

static int read_file(const char *p, uint8_t **buf, size_t *n) {
    FILE *f = fopen(p, "rb");
    if (!f) return -1;
    fseek(f, 0, SEEK_END);
    *n = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    *buf = malloc(*n);
    size_t got = fread(*buf, 1, *n, f);
    fclose(f);
    return got == *n ? 0 : -1;
}

TEST(deterministic_bytes) {
    cfg c = {CACHE_BF16, 2, 3, -1, 32, 6, 40, 2000, 11};
    char a[512], b[512];
    path_in(a, sizeof a, "det_a.h5");
    path_in(b, sizeof b, "det_b.h5");
    /* a second apart: HDF5 stamps object times at second resolution
     * unless told not to, and that must not reach the bytes */
    CHECK(write_fixture(&c, a) == 0, "write");
    sleep(1);
    CHECK(write_fixture(&c, b) == 0, "write");
    uint8_t *x = NULL, *y = NULL;
    size_t nx = 0, ny = 0;
    CHECK(read_file(a, &x, &nx) == 0 && read_file(b, &y, &ny) == 0, "read back");
    CHECK(nx == ny && x && y && !memcmp(x, y, nx), "same inputs gave different files (%zu vs %zu bytes)", nx, ny);
    free(x);
    free(y);
}

TEST(writer_rejects_bad_input) {
    char path[512], tmp[520];
    path_in(path, sizeof path, "val.h5");
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    cfg c = {CACHE_BF16, 1, 3, -1, 8, 4, 0, 1 << 20, 5};
    cache_meta m;
    meta_for(&c, &m);
    m.atoms = "words";
    cache_writer *w;
    CHECK(cache_writer_open(&w, path, &m, NULL) == SRA_E_ARG && strstr(cache_writer_errmsg(w), "atoms"),
          "bad atoms mode: %s", cache_writer_errmsg(w));
    cache_writer_free(w);
    meta_for(&c, &m);
    m.topk = FX_VOCAB + 1;
    CHECK(cache_writer_open(&w, path, &m, NULL) == SRA_E_ARG, "k > vocab");
    cache_writer_free(w);
    meta_for(&c, &m);
    m.n_layers = 2;
    m.layers[1] = m.layers[0];
    CHECK(cache_writer_open(&w, path, &m, NULL) == SRA_E_ARG && strstr(cache_writer_errmsg(w), "layers"),
          "duplicate layers: %s", cache_writer_errmsg(w));
    cache_writer_free(w);
    meta_for(&c, &m);
    m.atoms = "student";
    CHECK(cache_writer_open(&w, path, &m, NULL) == SRA_E_ARG && strstr(cache_writer_errmsg(w), "student"),
          "student atoms without tokenizer: %s", cache_writer_errmsg(w));
    cache_writer_free(w);

    meta_for(&c, &m);
    CHECK(cache_writer_open(&w, path, &m, NULL) == 0, "open: %s", cache_writer_errmsg(w));
    fx_doc f;
    cache_doc d;
    fx_doc_make(&f, 5, 0, &m);
    fx_doc_view(&f, &m, &d);
    int32_t save = f.end[1];
    f.end[1] = (int32_t)f.len + 1;
    CHECK(cache_writer_add(w, &d) == SRA_E_ARG && strstr(cache_writer_errmsg(w), "atom 1"),
          "atom past the text: %s", cache_writer_errmsg(w));
    f.end[1] = save;
    f.ids[3] = FX_VOCAB;
    CHECK(cache_writer_add(w, &d) == SRA_E_ARG && strstr(cache_writer_errmsg(w), "top-k id"),
          "id out of vocab: %s", cache_writer_errmsg(w));
    f.ids[3] = 0;
    d.n_atoms = 0;
    CHECK(cache_writer_add(w, &d) == SRA_E_ARG && strstr(cache_writer_errmsg(w), "no atom"), "no atom");
    d.n_atoms = f.n_atoms;
    d.loss_start = f.len + 1;
    CHECK(cache_writer_add(w, &d) == SRA_E_ARG && strstr(cache_writer_errmsg(w), "loss_start"), "loss_start");
    d.loss_start = 0;
    f.mass[0] = NAN;
    CHECK(cache_writer_add(w, &d) == SRA_E_ARG, "NaN mass");
    f.mass[0] = 1;
    CHECK(cache_writer_add(w, &d) == 0, "a valid doc after rejections: %s", cache_writer_errmsg(w));
    CHECK(access(tmp, F_OK) == 0 && access(path, F_OK) != 0, "writes go to NAME.tmp until finish");
    cache_writer_free(w); /* not finished: must leave nothing behind */
    CHECK(access(tmp, F_OK) != 0 && access(path, F_OK) != 0, "unfinished writer left a file");
    fx_doc_free(&f, &m);
}

/* ------------------------------------------------------------ bad files */

static int copy_file(const char *from, const char *to) {
    uint8_t *b;
    size_t n;
    if (read_file(from, &b, &n)) return -1;
    FILE *f = fopen(to, "wb");
    if (!f) { free(b); return -1; }
    fwrite(b, 1, n, f);
    fclose(f);
    free(b);
    return 0;
}

/* Opens and reads every document; returns the first error code (0 = ok). */
static int open_and_read(const char *path, char *msg, size_t n) {
    cache_reader *r;
    int rc = cache_open(&r, path);
    if (!rc) {
        cache_doc d;
        rc = cache_iter_begin(r, 0, cache_n_docs(r), 2);
        while (!rc && (rc = cache_iter_next(r, &d)) == 1) rc = 0;
    }
    snprintf(msg, n, "%s", rc ? cache_errmsg(r) : "");
    cache_close(r);
    return rc;
}

static hid_t h5_open_rw(const char *p) {
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    sra_zstd_filter_register();
    return H5Fopen(p, H5F_ACC_RDWR, H5P_DEFAULT);
}

static void set_attr_i64(const char *p, const char *name, int64_t v, hid_t type) {
    hid_t f = h5_open_rw(p);
    H5Adelete(f, name);
    hid_t s = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(f, name, type, s, H5P_DEFAULT, H5P_DEFAULT);
    H5Awrite(a, H5T_NATIVE_INT64, &v);
    H5Aclose(a);
    H5Sclose(s);
    H5Fclose(f);
}

static void poke_i64(const char *p, const char *ds, hsize_t row, int64_t v, hid_t memtype) {
    hid_t f = h5_open_rw(p);
    hid_t d = H5Dopen2(f, ds, H5P_DEFAULT);
    hid_t fs = H5Dget_space(d);
    hsize_t one = 1;
    H5Sselect_hyperslab(fs, H5S_SELECT_SET, &row, NULL, &one, NULL);
    hid_t ms = H5Screate_simple(1, &one, NULL);
    int32_t v32 = (int32_t)v;
    herr_t rc = H5Dwrite(d, memtype, ms, fs, H5P_DEFAULT, memtype == H5T_NATIVE_INT32 ? (void *)&v32 : (void *)&v);
    CHECK(rc >= 0, "poke %s", ds);
    H5Sclose(ms);
    H5Sclose(fs);
    H5Dclose(d);
    H5Fclose(f);
}

TEST(bad_files_each_get_their_own_error) {
    cfg c = {CACHE_BF16, 2, 3, -1, 64, 8, 40, 4096, 9};
    char good[512], bad[512], msg[1024];
    path_in(good, sizeof good, "good.h5");
    path_in(bad, sizeof bad, "bad.h5");
    CHECK(write_fixture(&c, good) == 0, "write");
    CHECK(open_and_read(good, msg, sizeof msg) == 0, "good file: %s", msg);

    /* missing file */
    path_in(bad, sizeof bad, "nonexistent.h5");
    CHECK(open_and_read(bad, msg, sizeof msg) == SRA_E_IO && strstr(msg, "nonexistent.h5"), "missing: %s", msg);
    path_in(bad, sizeof bad, "bad.h5");

    /* not HDF5 at all */
    FILE *f = fopen(bad, "w");
    fputs("{\"this is\": \"json\"}\n", f);
    fclose(f);
    CHECK(open_and_read(bad, msg, sizeof msg) == SRA_E_FORMAT && strstr(msg, "not an HDF5 file"), "text file: %s", msg);

    /* truncated */
    struct stat st;
    stat(good, &st);
    copy_file(good, bad);
    CHECK(truncate(bad, st.st_size / 2) == 0, "truncate");
    int rc = open_and_read(bad, msg, sizeof msg);
    CHECK(rc == SRA_E_CORRUPT && strstr(msg, "truncated"), "truncated (%s): %s", sra_err_name(rc), msg);

    /* flipped bytes inside a compressed chunk of /atoms/com/0 */
    copy_file(good, bad);
    hid_t h = h5_open_rw(bad);
    hid_t ds = H5Dopen2(h, "/atoms/com/0", H5P_DEFAULT);
    hsize_t off[2];
    unsigned mask;
    haddr_t addr;
    hsize_t size;
    hid_t sp = H5Dget_space(ds);
    CHECK(H5Dget_chunk_info(ds, sp, 1, off, &mask, &addr, &size) >= 0 && off[0] > 0 && size > 16,
          "chunk info");
    H5Sclose(sp);
    H5Dclose(ds);
    H5Fclose(h);
    int fd = open(bad, O_RDWR);
    uint8_t byte;
    CHECK(pread(fd, &byte, 1, (off_t)(addr + size / 2)) == 1, "pread");
    byte ^= 0x5a;
    CHECK(pwrite(fd, &byte, 1, (off_t)(addr + size / 2)) == 1, "pwrite");
    close(fd);
    rc = open_and_read(bad, msg, sizeof msg);
    CHECK(rc == SRA_E_CORRUPT && strstr(msg, "/atoms/com/0") && strstr(msg, "corrupt"),
          "flipped chunk byte (%s): %s", sra_err_name(rc), msg);
    {   /* the error is sticky: later calls fail too, never hand out garbage */
        cache_reader *r;
        cache_doc d;
        int got = 1, n = 0;
        CHECK(cache_open(&r, bad) == 0, "open");
        cache_set_block_bytes(r, 1);
        cache_iter_begin(r, 0, cache_n_docs(r), 2);
        while (n < 1000 && (got = cache_iter_next(r, &d)) == 1) n++;
        CHECK(got == SRA_E_CORRUPT && cache_iter_next(r, &d) == SRA_E_CORRUPT &&
                  cache_iter_next(r, &d) == SRA_E_CORRUPT,
              "after an error next() must keep failing");
        cache_close(r);
    }

    /* missing dataset */
    copy_file(good, bad);
    h = h5_open_rw(bad);
    H5Ldelete(h, "/atoms/mass", H5P_DEFAULT);
    H5Fclose(h);
    rc = open_and_read(bad, msg, sizeof msg);
    CHECK(rc == SRA_E_MISSING && strstr(msg, "/atoms/mass"), "missing dataset (%s): %s", sra_err_name(rc), msg);

    /* wrong version (a future one) */
    copy_file(good, bad);
    set_attr_i64(bad, "format_version", 3, H5T_STD_I64LE);
    rc = open_and_read(bad, msg, sizeof msg);
    CHECK(rc == SRA_E_VERSION && strstr(msg, "version 3") && strstr(msg, "regenerate"),
          "wrong version (%s): %s", sra_err_name(rc), msg);

    /* complete = 0 */
    copy_file(good, bad);
    set_attr_i64(bad, "complete", 0, H5T_STD_U8LE);
    rc = open_and_read(bad, msg, sizeof msg);
    CHECK(rc == SRA_E_INCOMPLETE && strstr(msg, "incomplete"), "complete=0 (%s): %s", sra_err_name(rc), msg);

    /* a leftover .tmp (even a complete one is refused by name) */
    char tmp[520];
    snprintf(tmp, sizeof tmp, "%s.tmp", bad);
    copy_file(good, tmp);
    rc = open_and_read(tmp, msg, sizeof msg);
    CHECK(rc == SRA_E_INCOMPLETE && strstr(msg, "temporary"), ".tmp (%s): %s", sra_err_name(rc), msg);
    unlink(tmp);

    /* document offsets out of range */
    copy_file(good, bad);
    poke_i64(bad, "/docs/text_offsets", 5, 1 << 30, H5T_NATIVE_INT64);
    rc = open_and_read(bad, msg, sizeof msg);
    CHECK(rc == SRA_E_CORRUPT && strstr(msg, "/docs/text_offsets"), "text offsets (%s): %s", sra_err_name(rc), msg);
    copy_file(good, bad);
    poke_i64(bad, "/docs/atom_offsets", 40, 5, H5T_NATIVE_INT64);
    rc = open_and_read(bad, msg, sizeof msg);
    CHECK(rc == SRA_E_CORRUPT && strstr(msg, "/docs/atom_offsets"), "atom offsets (%s): %s", sra_err_name(rc), msg);

    /* an atom's byte range outside its document */
    copy_file(good, bad);
    poke_i64(bad, "/atoms/end", 3, 1 << 20, H5T_NATIVE_INT32);
    rc = open_and_read(bad, msg, sizeof msg);
    CHECK(rc == SRA_E_CORRUPT && strstr(msg, "/atoms/end") && strstr(msg, "doc 0 atom 3"),
          "atom range (%s): %s", sra_err_name(rc), msg);

    /* not an sra cache: an HDF5 file of something else */
    h = H5Fcreate(bad, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    H5Fclose(h);
    rc = open_and_read(bad, msg, sizeof msg);
    CHECK(rc == SRA_E_FORMAT && strstr(msg, "not an sra cache"), "foreign HDF5 (%s): %s", sra_err_name(rc), msg);
}

TEST(kill_9_leaves_nothing_that_reads_as_complete) {
    cfg c = {CACHE_BF16, 1, 1, -1, 256, 16, 1000000, 1 << 16, 13};
    char path[512], tmp[520], msg[1024];
    path_in(path, sizeof path, "killed.h5");
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    for (int attempt = 0; attempt < 3; attempt++) {
        pid_t pid = fork();
        if (pid == 0) {
            write_fixture(&c, path); /* a million docs: will not finish */
            _exit(0);
        }
        usleep(150000 + 100000 * attempt);
        kill(pid, SIGKILL);
        int status;
        waitpid(pid, &status, 0);
        CHECK(WIFSIGNALED(status), "writer should have been killed");
        CHECK(access(path, F_OK) != 0, "a killed writer produced %s", path);
        CHECK(access(tmp, F_OK) == 0, "the killed writer's .tmp should be there");
        int rc = open_and_read(tmp, msg, sizeof msg);
        CHECK(rc == SRA_E_INCOMPLETE, ".tmp accepted? (%s): %s", sra_err_name(rc), msg);
        /* even renamed by hand, the half-written file is rejected */
        rename(tmp, path);
        rc = open_and_read(path, msg, sizeof msg);
        CHECK(rc != 0, "a killed writer's file was accepted after renaming");
        unlink(path);
    }
}

/* The fuzzer for the reader: flip one random bit anywhere in a valid
 * shard. The reader must either refuse the file with an error or deliver
 * exactly the original documents; it must never crash or hand out
 * different numbers. Each attempt runs in a child so a crash is caught. */
TEST(random_bit_flips_never_crash_or_lie) {
    cfg c = {CACHE_BF16, 2, 3, -1, 32, 6, 30, 2048, 21};
    char good[512], bad[512];
    path_in(good, sizeof good, "fuzz_good.h5");
    path_in(bad, sizeof bad, "fuzz.h5");
    CHECK(write_fixture(&c, good) == 0, "write");
    uint8_t *b;
    size_t n;
    if (read_file(good, &b, &n)) { CHECK(0, "read %s", good); return; }
    cache_meta m;
    meta_for(&c, &m);
    fx_rng rng = {2026};
    int iters = getenv("SRA_FUZZ_ITERS") ? atoi(getenv("SRA_FUZZ_ITERS")) : 400;
    int refused = 0, accepted = 0;
    for (int it = 0; it < iters; it++) {
        size_t pos = (size_t)(fx_next(&rng) % n);
        uint8_t bit = (uint8_t)(1u << (fx_next(&rng) % 8));
        b[pos] ^= bit;
        FILE *f = fopen(bad, "wb");
        fwrite(b, 1, n, f);
        fclose(f);
        b[pos] ^= bit;
        fflush(stdout);
        pid_t pid = fork();
        if (pid == 0) {
            cache_reader *r;
            int rc = cache_open(&r, bad);
            if (!rc) rc = cache_iter_begin(r, 0, cache_n_docs(r), 2);
            int64_t i = 0;
            cache_doc d;
            while (!rc && (rc = cache_iter_next(r, &d)) == 1) {
                if (same_doc(&c, &m, &d, i++)) _exit(3);
                rc = 0;
            }
            if (!rc && i != c.docs) _exit(3);
            cache_close(r);
            _exit(rc ? 2 : 0);
        }
        int st;
        waitpid(pid, &st, 0);
        CHECK(!WIFSIGNALED(st), "bit %u of byte %zu: reader crashed (signal %d)", bit, pos, WTERMSIG(st));
        CHECK(!WIFEXITED(st) || WEXITSTATUS(st) != 3, "bit %u of byte %zu: reader delivered wrong data", bit, pos);
        if (WIFEXITED(st) && WEXITSTATUS(st) == 2) refused++;
        if (WIFEXITED(st) && WEXITSTATUS(st) == 0) accepted++;
    }
    printf("  %d flips: %d refused, %d accepted with identical data\n", iters, refused, accepted);
    free(b);
}

/* ------------------------------------------------ k = 0 and version 1 */

TEST(topk_zero_roundtrip) {
    /* k = 0: the fixture's tail is 1 - (sum of nothing) = 1, computed by
     * the fixture, not by the reader */
    cfg c = {CACHE_BF16, 2, 3, -1, 48, 0, 60, 1 << 20, 7};
    roundtrip(&c, "k=0");
    cfg c1 = {CACHE_F32, 1, 0, -1, 8, 0, 20, 4096, 5};
    roundtrip(&c1, "k=0 f32 uncompressed");
    char p0[512], p8[512];
    path_in(p0, sizeof p0, "k0.h5");
    path_in(p8, sizeof p8, "k8.h5");
    cfg c8 = c;
    c8.k = 8;
    CHECK(write_fixture(&c, p0) == 0 && write_fixture(&c8, p8) == 0, "write");
    hid_t f = H5Fopen(p0, H5F_ACC_RDONLY, H5P_DEFAULT);
    CHECK(f >= 0 && H5Lexists(f, "/atoms/topk_ids", H5P_DEFAULT) == 0 &&
              H5Lexists(f, "/atoms/topk_logprob", H5P_DEFAULT) == 0 &&
              H5Lexists(f, "/atoms/tail_mass", H5P_DEFAULT) == 0 && H5Lexists(f, "/atoms/mass", H5P_DEFAULT) > 0,
          "k = 0: the top-k datasets must be absent, the others present");
    if (f >= 0) H5Fclose(f);
    struct stat s0, s8;
    CHECK(stat(p0, &s0) == 0 && stat(p8, &s8) == 0 && s0.st_size < s8.st_size, "k=0 %lld bytes, k=8 %lld bytes",
          (long long)s0.st_size, (long long)s8.st_size);
    printf("  same docs: k=0 %lld bytes, k=8 %lld bytes\n", (long long)s0.st_size, (long long)s8.st_size);
    cache_reader *r;
    CHECK(cache_open(&r, p0) == 0 && cache_meta_get(r)->format_version == 2 && cache_meta_get(r)->topk == 0,
          "k=0 opens as version 2: %s", cache_errmsg(r));
    cache_close(r);
    /* the writer takes NULL top-k pointers when k = 0 */
    cache_meta m;
    meta_for(&c, &m);
    cache_writer *w;
    fx_doc fd;
    cache_doc d;
    fx_doc_make(&fd, 1, 0, &m);
    fx_doc_view(&fd, &m, &d);
    d.topk_ids = NULL;
    d.topk_logprob = NULL;
    d.tail_mass = NULL;
    path_in(p0, sizeof p0, "k0null.h5");
    int rc = cache_writer_open(&w, p0, &m, NULL);
    if (!rc) rc = cache_writer_add(w, &d);
    if (!rc) rc = cache_writer_finish(w);
    CHECK(rc == 0, "k = 0 with NULL top-k pointers: %s", cache_writer_errmsg(w));
    cache_writer_free(w);
    fx_doc_free(&fd, &m);
    m.topk = -1;
    CHECK(cache_writer_open(&w, p0, &m, NULL) == SRA_E_ARG && strstr(cache_writer_errmsg(w), "topk = -1"),
          "k = -1 refused: %s", cache_writer_errmsg(w));
    cache_writer_free(w);
}

TEST(version_1_still_opens) {
    cfg c = {CACHE_F16, 2, 3, -1, 32, 6, 30, 1 << 20, 13};
    char p[512], msg[1024];
    path_in(p, sizeof p, "v1.h5");
    CHECK(write_fixture(&c, p) == 0, "write");
    set_attr_i64(p, "format_version", 1, H5T_STD_I64LE);
    cache_reader *r;
    int rc = cache_open(&r, p);
    CHECK(rc == 0 && cache_meta_get(r)->format_version == 1, "version 1 opens: %s", cache_errmsg(r));
    cache_meta m;
    meta_for(&c, &m);
    int64_t bad = -1, i = 0;
    cache_doc d;
    if (!rc && cache_iter_begin(r, 0, cache_n_docs(r), 2) == 0)
        while (cache_iter_next(r, &d) == 1) {
            if (bad < 0 && same_doc(&c, &m, &d, i)) bad = i;
            i++;
        }
    CHECK(i == c.docs && bad < 0, "version 1: %lld docs read, first different %lld", (long long)i, (long long)bad);
    cache_close(r);
    /* k = 0 did not exist in version 1: such a file is refused */
    cfg z = c;
    z.k = 0;
    CHECK(write_fixture(&z, p) == 0, "write");
    set_attr_i64(p, "format_version", 1, H5T_STD_I64LE);
    rc = open_and_read(p, msg, sizeof msg);
    CHECK(rc == SRA_E_FORMAT && strstr(msg, "topk >= 1"), "version 1 with k = 0 (%s): %s", sra_err_name(rc), msg);
}

/* ------------------------------------------------------- the teacher head */

/* IEEE half -> float, written out here so that the check does not lean on
 * util.c's converter. */
static float ref_f16(uint16_t h) {
    int s = h >> 15, e = (h >> 10) & 31, m = h & 1023;
    double v = e == 0 ? ldexp(m, -24) : e == 31 ? (m ? NAN : INFINITY) : ldexp(1024 + m, e - 25);
    return (float)(s ? -v : v);
}

/* Element i of a checkpoint tensor as float, from its raw bytes. */
static float ref_elem(const st_tensor *t, size_t i) {
    const uint8_t *p = (const uint8_t *)t->data;
    if (t->dtype == ST_F32) { float f; memcpy(&f, p + 4 * i, 4); return f; }
    uint16_t u;
    memcpy(&u, p + 2 * i, 2);
    if (t->dtype == ST_F16) return ref_f16(u);
    uint32_t b = (uint32_t)u << 16;
    float f;
    memcpy(&f, &b, 4);
    return f;
}

static void write_manifest(const char *dir, const char *head_json) {
    char p[600];
    snprintf(p, sizeof p, "%s/manifest.json", dir);
    FILE *f = fopen(p, "w");
    fprintf(f, "{\"format\": \"sra-cache-manifest\", \"complete\": true, "
               "\"shards\": [{\"file\": \"shard-00000-of-00001.h5\"}]%s%s}\n",
            head_json ? ", \"teacher_head\": " : "", head_json ? head_json : "");
    fclose(f);
}

static void head_json(char *out, size_t n, const cache_head_info *i, const char *sha, const char *dtype) {
    snprintf(out, n, "{\"file\": \"%s\", \"sha256\": \"%s\", \"bytes\": %lld, \"dtype\": \"%s\", \"shape\": [%lld, %lld]}",
             i->file, sha ? sha : i->sha256, (long long)i->bytes, dtype ? dtype : i->dtype, (long long)i->shape[0],
             (long long)i->shape[1]);
}

static void flip_byte(const char *path, off_t at) {
    int fd = open(path, O_RDWR);
    uint8_t b = 0;
    CHECK(fd >= 0 && pread(fd, &b, 1, at) == 1, "pread %s", path);
    b ^= 0x01;
    CHECK(pwrite(fd, &b, 1, at) == 1, "pwrite %s", path);
    close(fd);
}

/* The head of checkpoint `model` through write, check, open and rows. */
static void head_case(const char *model, const char *label) {
    st_file *st = NULL;
    if (st_open(&st, model)) {
        CHECK(0, "%s: %s", label, st_errmsg(st));
        st_close(st);
        return;
    }
    const st_tensor *t = st_find(st, "lm_head.weight");
    if (!t) t = st_find(st, "model.embed_tokens.weight"); /* tied and stored once */
    CHECK(t && t->ndim == 2, "%s: no head tensor", label);
    if (!t) { st_close(st); return; }
    int64_t V = t->shape[0], D = t->shape[1];
    char dir[512], path[600], msg[1200];
    snprintf(dir, sizeof dir, "%s/head_%s", g_dir, label);
    mkdir(dir, 0755);
    snprintf(path, sizeof path, "%s/%s", dir, CACHE_HEAD_FILE);
    sra_err e = {0};
    cache_head_src src = {t->dtype_str, V, D, t->data, t->name, "model.safetensors", "00ff"};
    CHECK(cache_head_write(dir, &src, &e) == 0, "%s: write: %s", label, e.msg);

    /* the file, read by hand: one tensor, the checkpoint's bytes */
    uint8_t *buf = NULL;
    size_t n = 0;
    CHECK(read_file(path, &buf, &n) == 0 && n > 8, "%s: read back", label);
    uint64_t hl = 0;
    for (int i = 0; buf && i < 8; i++) hl |= (uint64_t)buf[i] << (8 * i);
    CHECK(hl % 8 == 0 && 8 + hl + t->nbytes == n, "%s: header %llu, file %zu, tensor %zu bytes", label,
          (unsigned long long)hl, n, t->nbytes);
    if (buf && 8 + hl + t->nbytes == n) {
        CHECK(!memcmp(buf + 8 + hl, t->data, t->nbytes), "%s: stored bytes differ from the checkpoint's", label);
        cJSON *h = cJSON_ParseWithLength((const char *)buf + 8, (size_t)hl);
        const cJSON *w = cJSON_GetObjectItemCaseSensitive(h, "lm_head.weight");
        const cJSON *md = cJSON_GetObjectItemCaseSensitive(h, "__metadata__");
        const cJSON *dt = cJSON_GetObjectItemCaseSensitive(w, "dtype"), *sh = cJSON_GetObjectItemCaseSensitive(w, "shape");
        const cJSON *of = cJSON_GetObjectItemCaseSensitive(w, "data_offsets");
        CHECK(cJSON_GetArraySize(h) == 2 && cJSON_IsString(dt) && !strcmp(dt->valuestring, t->dtype_str) &&
                  cJSON_GetArrayItem(sh, 0)->valuedouble == (double)V &&
                  cJSON_GetArrayItem(sh, 1)->valuedouble == (double)D && cJSON_GetArrayItem(of, 0)->valuedouble == 0 &&
                  cJSON_GetArrayItem(of, 1)->valuedouble == (double)t->nbytes &&
                  !strcmp(cJSON_GetObjectItemCaseSensitive(md, "format")->valuestring, CACHE_HEAD_FORMAT) &&
                  !strcmp(cJSON_GetObjectItemCaseSensitive(md, "source_tensor")->valuestring, t->name),
              "%s: header %.*s", label, (int)hl, (const char *)buf + 8);
        cJSON_Delete(h);
    }
    free(buf);

    /* written again with the same bytes: kept (same inode); different: refused */
    struct stat s1, s2;
    stat(path, &s1);
    CHECK(cache_head_write(dir, &src, &e) == 0, "%s: rewrite of the same head: %s", label, e.msg);
    cache_head_src other = src;
    other.source_file = "other.safetensors";
    int rc = cache_head_write(dir, &other, &e);
    CHECK(rc == SRA_E_ARG && strstr(e.msg, path) && strstr(e.msg, "differs"), "%s: a different head (%s): %s", label,
          sra_err_name(rc), e.msg);
    stat(path, &s2);
    CHECK(s1.st_ino == s2.st_ino && s1.st_size == s2.st_size, "%s: the head file was replaced", label);

    /* check for the manifest, then open through it */
    cache_head_info info;
    CHECK(cache_head_check(dir, V, D, &info, &e) == 0, "%s: check: %s", label, e.msg);
    char hex[65];
    CHECK(sra_sha256_file(path, hex, &e) == 0 && !strcmp(hex, info.sha256) && info.bytes == (int64_t)s1.st_size &&
              !strcmp(info.dtype, t->dtype_str) && !strcmp(info.source_tensor, t->name) &&
              !strcmp(info.source_file, "model.safetensors"),
          "%s: info", label);
    rc = cache_head_check(dir, V + 1, D, &info, &e);
    CHECK(rc == SRA_E_FORMAT && strstr(e.msg, path) && strstr(e.msg, "expected ["), "%s: wrong shape (%s): %s",
          label, sra_err_name(rc), e.msg);
    CHECK(cache_head_check(dir, V, D, &info, &e) == 0, "%s: check", label);
    char hj[600];
    head_json(hj, sizeof hj, &info, NULL, NULL);
    write_manifest(dir, hj);
    cache_head *h = NULL;
    rc = cache_head_open(&h, dir);
    CHECK(rc == 0 && cache_head_vocab(h) == V && cache_head_dim(h) == D, "%s: open: %s", label, cache_head_errmsg(h));
    if (!rc) {
        /* random rows (and both ends) against the bytes converted here */
        enum { NR = 40 };
        int32_t ids[NR];
        uint64_t seed = 99;
        for (int i = 0; i < NR; i++) ids[i] = (int32_t)(sra_splitmix64(&seed) % (uint64_t)V);
        ids[0] = 0;
        ids[1] = (int32_t)V - 1;
        ids[2] = ids[3];
        float *out = malloc(sizeof(float) * NR * (size_t)D);
        CHECK(cache_head_rows(h, ids, NR, out) == 0, "%s: rows: %s", label, cache_head_errmsg(h));
        size_t diff = 0;
        for (int i = 0; i < NR; i++)
            for (int64_t j = 0; j < D; j++) {
                float want = ref_elem(t, (size_t)ids[i] * (size_t)D + (size_t)j), got = out[(size_t)i * D + j];
                diff += memcmp(&want, &got, 4) != 0;
            }
        CHECK(diff == 0, "%s: %zu of %lld row elements differ from the checkpoint's", label, diff, (long long)NR * D);
        int32_t badid[2] = {3, (int32_t)V};
        rc = cache_head_rows(h, badid, 2, out);
        snprintf(msg, sizeof msg, "id %lld", (long long)V);
        CHECK(rc == SRA_E_ARG && strstr(cache_head_errmsg(h), msg), "%s: id V (%s): %s", label, sra_err_name(rc),
              cache_head_errmsg(h));
        free(out);
    }
    cache_head_close(h);

    /* one byte of the data flipped: refused at open, naming file and hashes */
    off_t at = (off_t)(s1.st_size - (off_t)t->nbytes / 2);
    flip_byte(path, at);
    rc = cache_head_open(&h, dir);
    CHECK(rc == SRA_E_CORRUPT && strstr(cache_head_errmsg(h), path) && strstr(cache_head_errmsg(h), info.sha256) &&
              strstr(cache_head_errmsg(h), "sha256 is "),
          "%s: flipped byte (%s): %s", label, sra_err_name(rc), cache_head_errmsg(h));
    cache_head_close(h);
    flip_byte(path, at);
    /* the manifest's hash edited */
    char sha[65];
    memcpy(sha, info.sha256, sizeof sha);
    sha[10] = sha[10] == '0' ? '1' : '0';
    head_json(hj, sizeof hj, &info, sha, NULL);
    write_manifest(dir, hj);
    rc = cache_head_open(&h, dir);
    CHECK(rc == SRA_E_CORRUPT && strstr(cache_head_errmsg(h), sha) && strstr(cache_head_errmsg(h), info.sha256),
          "%s: edited manifest hash (%s): %s", label, sra_err_name(rc), cache_head_errmsg(h));
    cache_head_close(h);
    /* the manifest's dtype wrong */
    head_json(hj, sizeof hj, &info, NULL, strcmp(info.dtype, "F16") ? "F16" : "BF16");
    write_manifest(dir, hj);
    rc = cache_head_open(&h, dir);
    CHECK(rc == SRA_E_FORMAT && strstr(cache_head_errmsg(h), "manifest.json says"), "%s: wrong dtype (%s): %s", label,
          sra_err_name(rc), cache_head_errmsg(h));
    cache_head_close(h);
    /* no head in the manifest: its own code */
    write_manifest(dir, NULL);
    rc = cache_head_open(&h, dir);
    CHECK(rc == SRA_E_MISSING && strstr(cache_head_errmsg(h), "re-extract"), "%s: no head (%s): %s", label,
          sra_err_name(rc), cache_head_errmsg(h));
    cache_head_close(h);
    printf("  %s: %s [%lld, %lld] head, %lld bytes\n", label, t->dtype_str, (long long)V, (long long)D,
           (long long)s1.st_size);
    st_close(st);
}

TEST(teacher_head_f32_tinystories) {
    char m[1024];
    snprintf(m, sizeof m, "%s/models/tinystories-656k/model.safetensors", check_shared());
    if (access(m, R_OK)) { check_missing_asset("teacher_head_f32_tinystories", m); return; }
    head_case(m, "tinystories_F32");
}

TEST(teacher_head_half_tinystories) {
    const char *mr = getenv("SRA_MODEL_REF");
    if (!mr || !*mr) { check_missing("teacher_head_half_tinystories", "SRA_MODEL_REF (tests/run.sh makes it)"); return; }
    const char *dts[] = {"BF16", "F16"};
    for (int i = 0; i < 2; i++) {
        char m[1024], label[64];
        snprintf(m, sizeof m, "%s/tinystories_%s", mr, dts[i]);
        snprintf(label, sizeof label, "tinystories_%s", dts[i]);
        head_case(m, label);
    }
}

/* A cache folder of one fixture shard with k = 0: the loader streams it,
 * and finds a head only once the manifest names one of the right shape. */
TEST(loader_topk_zero_and_head) {
    cfg c = {CACHE_BF16, 1, 3, -1, 16, 0, 30, 1 << 20, 21};
    char dir[512], p[600], err[1200];
    snprintf(dir, sizeof dir, "%s/ldr0", g_dir);
    mkdir(dir, 0755);
    snprintf(p, sizeof p, "%s/shard-00000-of-00001.h5", dir);
    /* the loader loads the stored teacher tokenizer: the fixture's lists a
     * word twice, so this one names ids by number */
    char *fx_tok = g_tok, *tok = malloc(64 * FX_VOCAB + 128);
    size_t tn = (size_t)sprintf(tok, "{\"version\":\"1.0\",\"added_tokens\":[],\"model\":{\"type\":\"BPE\",\"vocab\":{");
    for (int i = 0; i < FX_VOCAB; i++) tn += (size_t)sprintf(tok + tn, "%s\"t%d\":%d", i ? "," : "", i, i);
    sprintf(tok + tn, "},\"merges\":[]}}");
    g_tok = tok;
    CHECK(write_fixture(&c, p) == 0, "write");
    g_tok = fx_tok;
    free(tok);
    write_manifest(dir, NULL);
    ldr *l = NULL;
    const int32_t fin = CACHE_LAYER_FINAL;
    if (ldr_open(&l, dir, &fin, 1, 1, err, sizeof err)) {
        CHECK(0, "ldr_open: %s", err);
        return;
    }
    int64_t atoms = 0, bad_tail = 0;
    for (int i = 0; i < 40; i++) {
        ldr_doc d;
        if (ldr_next(l, &d, err, sizeof err)) { CHECK(0, "ldr_next: %s", err); break; }
        CHECK(d.k == 0 && d.A > 0, "doc k %d A %lld", d.k, (long long)d.A);
        for (int64_t a = 0; a < d.A; a++) bad_tail += d.tail[a] != 1.0f;
        atoms += d.A;
        ldr_recycle(l);
    }
    CHECK(atoms > 0 && bad_tail == 0, "%lld atoms, %lld with a tail other than 1", (long long)atoms, (long long)bad_tail);
    cache_head *h = NULL;
    int rc = ldr_head_open(l, &h, err, sizeof err);
    CHECK(rc == SRA_E_MISSING && strstr(err, "re-extract"), "no head (%s): %s", sra_err_name(rc), err);
    cache_head_close(h);
    /* a head of the fixture's shape (FX_VOCAB x d), then one of another shape */
    for (int wrong = 0; wrong < 2; wrong++) {
        int64_t V = FX_VOCAB + wrong, D = c.d;
        float *w = malloc(sizeof(float) * (size_t)(V * D));
        for (int64_t i = 0; i < V * D; i++) w[i] = (float)i * 0.25f;
        char hp[700];
        snprintf(hp, sizeof hp, "%s/%s", dir, CACHE_HEAD_FILE);
        unlink(hp);
        sra_err e = {0};
        cache_head_src src = {"F32", V, D, w, "lm_head.weight", "model.safetensors", ""};
        cache_head_info info;
        CHECK(cache_head_write(dir, &src, &e) == 0 && cache_head_check(dir, V, D, &info, &e) == 0, "head: %s", e.msg);
        char hj[600];
        head_json(hj, sizeof hj, &info, NULL, NULL);
        write_manifest(dir, hj);
        rc = ldr_head_open(l, &h, err, sizeof err);
        if (!wrong) {
            float row[64];
            int32_t id = 7;
            CHECK(rc == 0 && cache_head_rows(h, &id, 1, row) == 0 && row[3] == (float)(7 * D + 3) * 0.25f,
                  "head opens through the loader: %s", err);
        } else
            CHECK(rc == SRA_E_FORMAT && strstr(err, "teacher_vocab_size"), "wrong shape (%s): %s", sra_err_name(rc), err);
        cache_head_close(h);
        free(w);
    }
    ldr_close(l);
}

int main(void) {
    snprintf(g_dir, sizeof g_dir, "/tmp/sra-test-cache-XXXXXX");
    if (!mkdtemp(g_dir)) { perror("mkdtemp"); return 1; }
    g_tok = fx_tokenizer_json();
    RUN(roundtrip_all_dtypes_and_options);
    RUN(empty_shard);
    RUN(deterministic_bytes);
    RUN(writer_rejects_bad_input);
    RUN(bad_files_each_get_their_own_error);
    RUN(kill_9_leaves_nothing_that_reads_as_complete);
    RUN(random_bit_flips_never_crash_or_lie);
    RUN(topk_zero_roundtrip);
    RUN(version_1_still_opens);
    RUN(teacher_head_f32_tinystories);
    RUN(teacher_head_half_tinystories);
    RUN(loader_topk_zero_and_head);
    free(g_tok);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    if (system(cmd)) return 1;
    return check_summary();
}
