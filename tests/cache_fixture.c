/*
 * cache_fixture - writes a deterministic synthetic cache, optionally with a
 * plain binary dump of every dataset (the independent side of the interop
 * test), and checks a cache against such a dump.
 *
 *   cache_fixture write OUT.h5 [--raw DIR] [--seed S] [--docs N] [--dtype bf16|f16|f32]
 *                 [--layers L] [--d D] [--k K] [--level Z] [--shuffle 0|1] [--chunk BYTES]
 *   cache_fixture check FILE.h5 DIR [--threads T]
 *
 * Raw dump: DIR/<dataset path with '/' -> '_'>.bin holding the little-
 * endian bytes the dataset should contain (bf16 and f16 as uint16 bits),
 * plus DIR/shape.txt ("d k n_layers dtype n_docs n_atoms text_bytes").
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cache.h"
#include "fixture.h"

typedef struct { FILE *f[32]; } dumps;

static const char *ds_files[] = {"docs_text", "docs_text_offsets", "docs_atom_offsets",
                                 "docs_loss_start", "docs_record", "atoms_start", "atoms_end",
                                 "atoms_mass", "atoms_topk_ids", "atoms_topk_logprob",
                                 "atoms_tail_mass"};
enum { F_TEXT, F_TOFF, F_AOFF, F_LOSS, F_REC, F_START, F_END, F_MASS, F_IDS, F_LP, F_TAIL, F_COM0 };

static FILE *open_dump(const char *dir, const char *name, const char *mode) {
    char p[4096];
    snprintf(p, sizeof p, "%s/%s.bin", dir, name);
    FILE *f = fopen(p, mode);
    if (!f) { fprintf(stderr, "cache_fixture: %s: %s\n", p, strerror(errno)); exit(2); }
    return f;
}

static int do_write(int argc, char **argv) {
    const char *out = argv[0], *raw = NULL;
    uint64_t seed = 1;
    int64_t docs = 50, d = 64, k = 8;
    int layers = 2, level = 3, shuffle = -1;
    size_t chunk = 1 << 20;
    cache_dtype dt = CACHE_BF16;
    for (int i = 1; i + 1 < argc; i += 2) {
        const char *f = argv[i], *v = argv[i + 1];
        if (!strcmp(f, "--raw")) raw = v;
        else if (!strcmp(f, "--seed")) seed = strtoull(v, NULL, 10);
        else if (!strcmp(f, "--docs")) docs = atoll(v);
        else if (!strcmp(f, "--d")) d = atoll(v);
        else if (!strcmp(f, "--k")) k = atoll(v);
        else if (!strcmp(f, "--layers")) layers = atoi(v);
        else if (!strcmp(f, "--level")) level = atoi(v);
        else if (!strcmp(f, "--shuffle")) shuffle = atoi(v);
        else if (!strcmp(f, "--chunk")) chunk = (size_t)atoll(v);
        else if (!strcmp(f, "--dtype")) {
            if (cache_dtype_parse(v, &dt)) { fprintf(stderr, "bad dtype %s\n", v); return 2; }
        } else { fprintf(stderr, "cache_fixture: unknown flag %s\n", f); return 2; }
    }
    char *tok = fx_tokenizer_json();
    const char *cfg = "{\"model_type\":\"llama\",\"hidden_size\":64}";
    cache_meta m;
    fx_meta(&m, dt, layers, d, k, tok, cfg);
    m.record_end = 2 * docs;
    cache_write_opts o;
    cache_write_opts_default(&o);
    o.zstd_level = level;
    o.shuffle = shuffle;
    o.chunk_bytes = chunk;
    cache_writer *w;
    if (cache_writer_open(&w, out, &m, &o)) {
        fprintf(stderr, "cache_fixture: %s\n", cache_writer_errmsg(w));
        return 1;
    }
    FILE *f[F_COM0 + CACHE_MAX_LAYERS] = {0};
    if (raw) {
        mkdir(raw, 0755);
        for (int i = 0; i < F_COM0; i++) f[i] = open_dump(raw, ds_files[i], "wb");
        for (int j = 0; j < layers; j++) {
            char nm[64];
            snprintf(nm, sizeof nm, "atoms_com_%d", j);
            f[F_COM0 + j] = open_dump(raw, nm, "wb");
        }
        FILE *t = open_dump(raw, "teacher_tokenizer_json", "wb");
        fwrite(tok, 1, strlen(tok), t);
        fclose(t);
    }
    int64_t toff = 0, aoff = 0;
    if (raw) { fwrite(&toff, 8, 1, f[F_TOFF]); fwrite(&aoff, 8, 1, f[F_AOFF]); }
    size_t esz = cache_dtype_size(dt);
    for (int64_t i = 0; i < docs; i++) {
        fx_doc fd;
        cache_doc cd;
        fx_doc_make(&fd, seed, i, &m);
        fx_doc_view(&fd, &m, &cd);
        if (cache_writer_add(w, &cd)) {
            fprintf(stderr, "cache_fixture: %s\n", cache_writer_errmsg(w));
            return 1;
        }
        if (raw) {
            size_t A = (size_t)fd.n_atoms;
            toff += fd.len;
            aoff += fd.n_atoms;
            fwrite(fd.text, 1, (size_t)fd.len, f[F_TEXT]);
            fwrite(&toff, 8, 1, f[F_TOFF]);
            fwrite(&aoff, 8, 1, f[F_AOFF]);
            fwrite(&fd.loss_start, 8, 1, f[F_LOSS]);
            fwrite(&fd.record, 8, 1, f[F_REC]);
            fwrite(fd.start, 4, A, f[F_START]);
            fwrite(fd.end, 4, A, f[F_END]);
            fwrite(fd.mass, 4, A, f[F_MASS]);
            fwrite(fd.ids, 4, A * (size_t)k, f[F_IDS]);
            fwrite(fd.lp, 2, A * (size_t)k, f[F_LP]);
            fwrite(fd.tail, 4, A, f[F_TAIL]);
            for (int j = 0; j < layers; j++) fwrite(fd.com[j], esz, A * (size_t)d, f[F_COM0 + j]);
        }
        fx_doc_free(&fd, &m);
    }
    if (cache_writer_finish(w)) {
        fprintf(stderr, "cache_fixture: %s\n", cache_writer_errmsg(w));
        return 1;
    }
    cache_writer_free(w);
    if (raw) {
        for (int i = 0; i < F_COM0 + layers; i++) fclose(f[i]);
        char p[4096];
        snprintf(p, sizeof p, "%s/shape.txt", raw);
        FILE *s = fopen(p, "w");
        fprintf(s, "%lld %lld %d %s %lld %lld %lld\n", (long long)d, (long long)k, layers,
                cache_dtype_name(dt), (long long)docs, (long long)aoff, (long long)toff);
        fclose(s);
    }
    free(tok);
    return 0;
}

static void *slurp(const char *dir, const char *name, size_t *n) {
    FILE *f = open_dump(dir, name, "rb");
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    void *p = malloc((size_t)len + 1);
    if (fread(p, 1, (size_t)len, f) != (size_t)len) { fprintf(stderr, "short read %s\n", name); exit(2); }
    fclose(f);
    *n = (size_t)len;
    return p;
}

#define MISMATCH(...) do { fprintf(stderr, "cache_fixture: MISMATCH: " __VA_ARGS__); fputc('\n', stderr); return 1; } while (0)

static int compare_doc(const cache_meta *m, const cache_doc *d, int64_t i, void **raw) {
    const int64_t *toff = raw[F_TOFF], *aoff = raw[F_AOFF];
    int64_t a0 = aoff[i], A = aoff[i + 1] - aoff[i], k = m->topk, D = m->hidden_size;
    size_t esz = cache_dtype_size(m->hidden_dtype);
    if (d->index != i) MISMATCH("doc index %lld, expected %lld", (long long)d->index, (long long)i);
    if (d->text_len != toff[i + 1] - toff[i] || memcmp(d->text, (char *)raw[F_TEXT] + toff[i], (size_t)d->text_len))
        MISMATCH("doc %lld text", (long long)i);
    if (d->n_atoms != A) MISMATCH("doc %lld n_atoms", (long long)i);
    if (d->loss_start != ((int64_t *)raw[F_LOSS])[i]) MISMATCH("doc %lld loss_start", (long long)i);
    if (d->record != ((int64_t *)raw[F_REC])[i]) MISMATCH("doc %lld record", (long long)i);
    if (memcmp(d->atom_start, (int32_t *)raw[F_START] + a0, (size_t)A * 4) ||
        memcmp(d->atom_end, (int32_t *)raw[F_END] + a0, (size_t)A * 4))
        MISMATCH("doc %lld atom ranges", (long long)i);
    if (memcmp(d->mass, (float *)raw[F_MASS] + a0, (size_t)A * 4)) MISMATCH("doc %lld mass", (long long)i);
    if (memcmp(d->tail_mass, (float *)raw[F_TAIL] + a0, (size_t)A * 4)) MISMATCH("doc %lld tail", (long long)i);
    if (memcmp(d->topk_ids, (int32_t *)raw[F_IDS] + a0 * k, (size_t)(A * k) * 4)) MISMATCH("doc %lld ids", (long long)i);
    if (memcmp(d->topk_logprob, (uint16_t *)raw[F_LP] + a0 * k, (size_t)(A * k) * 2)) MISMATCH("doc %lld logprob", (long long)i);
    for (int j = 0; j < m->n_layers; j++)
        if (memcmp(d->com[j], (uint8_t *)raw[F_COM0 + j] + (size_t)(a0 * D) * esz, (size_t)(A * D) * esz))
            MISMATCH("doc %lld com %d", (long long)i, j);
    return 0;
}

static int do_check(int argc, char **argv) {
    const char *path = argv[0], *dir = argv[1];
    int threads = 2;
    for (int i = 2; i + 1 < argc; i += 2)
        if (!strcmp(argv[i], "--threads")) threads = atoi(argv[i + 1]);
    cache_reader *r;
    if (cache_open(&r, path)) {
        fprintf(stderr, "cache_fixture: %s\n", cache_errmsg(r));
        cache_close(r);
        return 1;
    }
    const cache_meta *m = cache_meta_get(r);
    void *raw[F_COM0 + CACHE_MAX_LAYERS] = {0};
    size_t n;
    for (int i = 0; i < F_COM0; i++) raw[i] = slurp(dir, ds_files[i], &n);
    for (int j = 0; j < m->n_layers; j++) {
        char nm[64];
        snprintf(nm, sizeof nm, "atoms_com_%d", j);
        raw[F_COM0 + j] = slurp(dir, nm, &n);
    }
    int64_t docs = cache_n_docs(r);
    int rc = 0;
    if (cache_iter_begin(r, 0, docs, threads)) { fprintf(stderr, "%s\n", cache_errmsg(r)); return 1; }
    cache_doc d;
    int64_t i = 0;
    int got;
    while (!rc && (got = cache_iter_next(r, &d)) == 1) rc = compare_doc(m, &d, i++, raw);
    if (!rc && got < 0) { fprintf(stderr, "cache_fixture: %s\n", cache_errmsg(r)); rc = 1; }
    if (!rc && i != docs) MISMATCH("iterated %lld docs, expected %lld", (long long)i, (long long)docs);
    for (int64_t j = docs - 1; !rc && j >= 0; j -= 7) { /* random access too */
        if (cache_read_doc(r, j, &d)) { fprintf(stderr, "%s\n", cache_errmsg(r)); rc = 1; break; }
        rc = compare_doc(m, &d, j, raw);
    }
    size_t toklen;
    char *tok = slurp(dir, "teacher_tokenizer_json", &toklen);
    if (!rc && cache_read_blobs(r)) { fprintf(stderr, "%s\n", cache_errmsg(r)); rc = 1; }
    if (!rc && (m->teacher_tokenizer_len != toklen || memcmp(m->teacher_tokenizer_json, tok, toklen)))
        MISMATCH("teacher tokenizer blob");
    free(tok);
    for (int i2 = 0; i2 < F_COM0 + CACHE_MAX_LAYERS; i2++) free(raw[i2]);
    if (!rc) printf("cache_fixture: %s matches %s (%lld docs, %lld atoms)\n", path, dir,
                    (long long)docs, (long long)cache_n_atoms(r));
    cache_close(r);
    return rc;
}

int main(int argc, char **argv) {
    if (argc >= 3 && !strcmp(argv[1], "write")) return do_write(argc - 2, argv + 2);
    if (argc >= 4 && !strcmp(argv[1], "check")) return do_check(argc - 2, argv + 2);
    fprintf(stderr, "usage: cache_fixture write OUT.h5 [--raw DIR] [options]\n"
                    "       cache_fixture check FILE.h5 DIR [--threads T]\n");
    return 2;
}
