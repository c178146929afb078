/*
 * test_cache - the cache format v1: bit-exact round trips for every dtype
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

#include "cache.h"
#include "check.h"
#include "fixture.h"
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

    /* wrong version */
    copy_file(good, bad);
    set_attr_i64(bad, "format_version", 2, H5T_STD_I64LE);
    rc = open_and_read(bad, msg, sizeof msg);
    CHECK(rc == SRA_E_VERSION && strstr(msg, "version 2") && strstr(msg, "regenerate"),
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
    free(g_tok);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    if (system(cmd)) return 1;
    return check_summary();
}
