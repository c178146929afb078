/*
 * sra-inspect - print what an sra cache shard (or cache folder) holds.
 *
 *   sra-inspect [--doc N] [--atoms M] FILE|DIR...
 *
 * Without --doc: metadata, counts and per-dataset raw vs stored bytes, and
 * the teacher LM head stored beside the shards (cache_head.h), checked
 * against the manifest's sha256. A cache folder: its manifest, head and
 * one line per shard.
 * With --doc N: document N of each file, atom by atom (its text, mass, tail
 * mass and the top 5 of its stored top-k with the teacher's token strings).
 */
#include <cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sys/stat.h>

#include "cache.h"
#include "cache_head.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: sra-inspect [options] FILE|DIR...\n"
            "  Prints the metadata, counts and storage of sra cache shards, and the teacher LM head\n"
            "  of their folder (checked against manifest.json). DIR: a cache folder (manifest, head,\n"
            "  one line per shard).\n"
            "options:\n"
            "  --doc N     dump document N (0-based) with its atoms\n"
            "  --atoms M   with --doc: show at most M atoms (default 50; 0 = all)\n"
            "  -h, --help  this text\n"
            "example:\n"
            "  sra-inspect cache/shard-00000-of-00004.h5\n"
            "  sra-inspect cache\n"
            "  sra-inspect --doc 3 cache/shard-00000-of-00004.h5\n");
}

/* id -> token string from the teacher tokenizer.json stored in the cache
 * (model.vocab and added_tokens). Display only: the tokenizer module owns
 * real decoding. */
typedef struct { char **s; int64_t n; } vocab;

static void vocab_load(vocab *v, const cache_meta *m) {
    v->s = NULL;
    v->n = 0;
    if (!m->teacher_tokenizer_json) return;
    cJSON *root = cJSON_ParseWithLength((const char *)m->teacher_tokenizer_json, m->teacher_tokenizer_len);
    if (!root) return;
    int64_t n = m->teacher_vocab_size > 0 ? m->teacher_vocab_size : 0;
    cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    cJSON *voc = model ? cJSON_GetObjectItemCaseSensitive(model, "vocab") : NULL;
    cJSON *added = cJSON_GetObjectItemCaseSensitive(root, "added_tokens");
    cJSON *it;
    cJSON_ArrayForEach(it, voc) if (cJSON_IsNumber(it) && it->valuedouble + 1 > n) n = (int64_t)it->valuedouble + 1;
    cJSON_ArrayForEach(it, added) {
        cJSON *id = cJSON_GetObjectItemCaseSensitive(it, "id");
        if (cJSON_IsNumber(id) && id->valuedouble + 1 > n) n = (int64_t)id->valuedouble + 1;
    }
    v->s = calloc((size_t)(n ? n : 1), sizeof *v->s);
    v->n = v->s ? n : 0;
    cJSON_ArrayForEach(it, voc) {
        int64_t id = (int64_t)it->valuedouble;
        if (v->s && cJSON_IsNumber(it) && id >= 0 && id < n && !v->s[id]) v->s[id] = strdup(it->string);
    }
    cJSON_ArrayForEach(it, added) {
        cJSON *id = cJSON_GetObjectItemCaseSensitive(it, "id"), *c = cJSON_GetObjectItemCaseSensitive(it, "content");
        if (v->s && cJSON_IsNumber(id) && cJSON_IsString(c) && id->valuedouble >= 0 && id->valuedouble < n) {
            free(v->s[(int64_t)id->valuedouble]);
            v->s[(int64_t)id->valuedouble] = strdup(c->valuestring);
        }
    }
    cJSON_Delete(root);
}

static void vocab_free(vocab *v) {
    for (int64_t i = 0; i < v->n; i++) free(v->s[i]);
    free(v->s);
}

/* Prints bytes with control characters and quotes escaped. */
static void put_escaped(const char *s, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '\n') fputs("\\n", stdout);
        else if (c == '\t') fputs("\\t", stdout);
        else if (c == '"' || c == '\\') printf("\\%c", c);
        else if (c < 0x20 || c == 0x7f) printf("\\x%02x", c);
        else putchar(c);
    }
}

static void human(double b, char out[32]) {
    const char *u[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    int i = 0;
    while (b >= 1024 && i < 4) { b /= 1024; i++; }
    snprintf(out, 32, i ? "%.2f %s" : "%.0f %s", b, u[i]);
}

/* The "teacher head" line of cache folder dir. Returns 0, or < 0 when the
 * folder's head is refused (damaged, or not what the manifest says). */
static int print_head(const char *dir, int need_manifest) {
    char mp[4200];
    struct stat st;
    snprintf(mp, sizeof mp, "%s/manifest.json", dir);
    if (!need_manifest && stat(mp, &st) != 0) {
        printf("  teacher head    none known: no manifest.json in %s (only a finished cache folder has one)\n", dir);
        return 0;
    }
    cache_head *h = NULL;
    int rc = cache_head_open(&h, dir);
    if (!rc) {
        const cache_head_info *i = cache_head_get_info(h);
        char size[32];
        human((double)i->bytes, size);
        printf("  teacher head    %s: %s %s [%lld, %lld], %lld bytes (%s), sha256 %s (verified against "
               "manifest.json)\n",
               cache_head_path(h), CACHE_HEAD_TENSOR, i->dtype, (long long)i->shape[0], (long long)i->shape[1],
               (long long)i->bytes, size, i->sha256);
        if (i->source_tensor[0])
            printf("    source           %s of %s (sha256 %s)\n", i->source_tensor, i->source_file,
                   i->source_sha256[0] ? i->source_sha256 : "?");
    } else if (rc == SRA_E_MISSING) {
        printf("  teacher head    none: %s\n", cache_head_errmsg(h));
        rc = 0;
    } else {
        printf("  teacher head    REFUSED: %s\n", cache_head_errmsg(h));
        fprintf(stderr, "sra-inspect: %s\n", cache_head_errmsg(h));
    }
    cache_head_close(h);
    return rc;
}

/* The folder that holds path ("." when none). */
static void dir_of(const char *path, char *out, size_t n) {
    const char *slash = strrchr(path, '/');
    if (!slash) snprintf(out, n, ".");
    else if (slash == path) snprintf(out, n, "/");
    else snprintf(out, n, "%.*s", (int)(slash - path), path);
}

/* A cache folder: its manifest in a few lines, its head, one line per shard. */
static int print_folder(const char *dir) {
    char mp[4200];
    snprintf(mp, sizeof mp, "%s/manifest.json", dir);
    size_t n;
    char *text = sra_read_file(mp, &n);
    if (!text) {
        fprintf(stderr, "sra-inspect: %s: cannot read (%s): not a finished cache folder (sra-extract --finalize "
                        "writes it)\n", mp, strerror(errno));
        return -1;
    }
    cJSON *man = cJSON_ParseWithLength(text, n);
    free(text);
    const cJSON *shards = cJSON_GetObjectItemCaseSensitive(man, "shards");
    if (!cJSON_IsArray(shards)) {
        fprintf(stderr, "sra-inspect: %s: not an sra-extract manifest (no \"shards\")\n", mp);
        cJSON_Delete(man);
        return -1;
    }
    const char *keys[] = {"records", "docs", "atoms", "teacher_tokens", "bad_records"};
    printf("%s\n  manifest        complete %s", dir,
           cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(man, "complete")) ? "true" : "false");
    for (size_t i = 0; i < sizeof keys / sizeof *keys; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(man, keys[i]);
        if (cJSON_IsNumber(v)) printf(", %s %.0f", keys[i], v->valuedouble);
    }
    printf(", %d shards\n", cJSON_GetArraySize(shards));
    int rc = print_head(dir, 1);
    const cJSON *s;
    cJSON_ArrayForEach(s, shards) {
        const cJSON *f = cJSON_GetObjectItemCaseSensitive(s, "file"), *e = cJSON_GetObjectItemCaseSensitive(s, "error");
        const cJSON *d = cJSON_GetObjectItemCaseSensitive(s, "docs"), *a = cJSON_GetObjectItemCaseSensitive(s, "atoms");
        const cJSON *b = cJSON_GetObjectItemCaseSensitive(s, "bytes");
        char size[32];
        human(cJSON_IsNumber(b) ? b->valuedouble : 0, size);
        printf("  shard           %s", cJSON_IsString(f) ? f->valuestring : "?");
        if (cJSON_IsString(e)) printf(": %s\n", e->valuestring);
        else printf(": %.0f docs, %.0f atoms, %s\n", cJSON_IsNumber(d) ? d->valuedouble : 0,
                    cJSON_IsNumber(a) ? a->valuedouble : 0, size);
    }
    cJSON_Delete(man);
    return rc;
}

static void print_summary(cache_reader *r) {
    const cache_meta *m = cache_meta_get(r);
    printf("%s\n", cache_path(r));
    printf("  format          %s v%lld (sra %s), created %s\n", CACHE_FORMAT, (long long)m->format_version,
           m->sra_version, m->created);
    printf("  teacher         %s (vocab %lld)\n", m->teacher_name, (long long)m->teacher_vocab_size);
    printf("    config sha256    %s\n", m->teacher_config_sha256);
    printf("    tokenizer sha256 %s\n", m->teacher_tokenizer_sha256);
    const char *w = m->teacher_weights_sha256;
    while (w && *w) {
        const char *nl = strchr(w, '\n');
        int len = nl ? (int)(nl - w) : (int)strlen(w);
        printf("    weights          %.*s\n", len, w);
        w = nl ? nl + 1 : w + len;
    }
    if (m->student_tokenizer_sha256[0])
        printf("  student tok     sha256 %s\n", m->student_tokenizer_sha256);
    printf("  atoms           %s    mass %s\n", m->atoms, m->mass);
    printf("  layers          ");
    for (int j = 0; j < m->n_layers; j++) {
        if (m->layers[j] == CACHE_LAYER_FINAL) printf("%sfinal-norm", j ? ", " : "");
        else printf("%s%d", j ? ", " : "", m->layers[j]);
    }
    printf("    d %lld    dtype %s\n", (long long)m->hidden_size, cache_dtype_name(m->hidden_dtype));
    if (m->topk) printf("  top-k           k %lld    temperature %g\n", (long long)m->topk, m->temperature);
    else printf("  top-k           none (k 0: no next-token distribution stored)\n");
    printf("  dataset         sha256 %s    records [%lld, %lld)\n", m->dataset_sha256,
           (long long)m->record_start, (long long)m->record_end);
    printf("  shard           %lld of %lld\n", (long long)m->shard_index, (long long)m->shard_count);
    printf("  settings        %s\n", m->settings_json);
    printf("  extract stats   %s\n", m->stats_json);
    int64_t nd = cache_n_docs(r), na = cache_n_atoms(r);
    printf("  counts          %lld docs, %lld atoms (%.1f per doc), %lld text bytes\n", (long long)nd,
           (long long)na, nd ? (double)na / (double)nd : 0.0, (long long)cache_text_bytes(r));
    cache_dataset_info info[64];
    int n = cache_dataset_stats(r, info, 64);
    if (n > 64) n = 64;
    uint64_t raw = 0, stored = 0;
    printf("  %-26s %-14s %12s %12s %7s %10s  %s\n", "dataset", "shape", "raw", "stored", "ratio",
           "B/atom", "filters");
    for (int i = 0; i < n; i++) {
        char shape[32], a[32], b[32];
        if (info[i].cols > 1) snprintf(shape, sizeof shape, "%lldx%lld", (long long)info[i].rows, (long long)info[i].cols);
        else snprintf(shape, sizeof shape, "%lld", (long long)info[i].rows);
        human((double)info[i].raw_bytes, a);
        human((double)info[i].stored_bytes, b);
        printf("  %-26s %-14s %12s %12s %7.2f %10.1f  %s\n", info[i].name, shape, a, b,
               info[i].stored_bytes ? (double)info[i].raw_bytes / (double)info[i].stored_bytes : 0.0,
               na ? (double)info[i].stored_bytes / (double)na : 0.0, info[i].filters);
        raw += info[i].raw_bytes;
        stored += info[i].stored_bytes;
    }
    char a[32], b[32];
    human((double)raw, a);
    human((double)stored, b);
    printf("  %-26s %-14s %12s %12s %7.2f %10.1f\n", "total", "", a, b,
           stored ? (double)raw / (double)stored : 0.0, na ? (double)stored / (double)na : 0.0);
}

static int print_doc(cache_reader *r, int64_t i, int64_t max_atoms) {
    if (cache_read_blobs(r)) return -1;
    const cache_meta *m = cache_meta_get(r);
    cache_doc d;
    if (cache_read_doc(r, i, &d)) return -1;
    vocab v;
    vocab_load(&v, m);
    printf("%s doc %lld: record %lld, %lld bytes, loss from byte %lld, %lld atoms\n", cache_path(r),
           (long long)i, (long long)d.record, (long long)d.text_len, (long long)d.loss_start,
           (long long)d.n_atoms);
    printf("  text \"");
    put_escaped(d.text, d.text_len);
    printf("\"\n");
    int64_t show = max_atoms > 0 && max_atoms < d.n_atoms ? max_atoms : d.n_atoms;
    int64_t k = m->topk < 5 ? m->topk : 5;
    for (int64_t a = 0; a < show; a++) {
        printf("  %4lld [%5d,%5d) \"", (long long)a, d.atom_start[a], d.atom_end[a]);
        put_escaped(d.text + d.atom_start[a], d.atom_end[a] - d.atom_start[a]);
        printf("\"  mass %.4g  tail %.3f  next:", d.mass[a], d.tail_mass[a]);
        for (int64_t t = 0; t < k; t++) {
            int32_t id = d.topk_ids[a * m->topk + t];
            float p = expf(sra_f16_to_f32(d.topk_logprob[a * m->topk + t]));
            const char *s = id < v.n && v.s[id] ? v.s[id] : NULL;
            if (s) { printf(" \""); put_escaped(s, (int64_t)strlen(s)); printf("\""); }
            else printf(" #%d", id);
            printf(" %.3f", p);
        }
        printf("\n");
    }
    if (show < d.n_atoms) printf("  ... %lld more atoms (--atoms 0 shows all)\n", (long long)(d.n_atoms - show));
    vocab_free(&v);
    return 0;
}

int main(int argc, char **argv) {
    int64_t doc = -1, max_atoms = 50;
    int nfiles = 0, failed = 0;
    char **files = calloc((size_t)argc, sizeof *files);
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) { usage(stdout); free(files); return 0; }
        if (!strcmp(argv[i], "--doc") || !strcmp(argv[i], "--atoms")) {
            char *end;
            if (i + 1 >= argc) { fprintf(stderr, "sra-inspect: %s needs a number\n", argv[i]); free(files); return 2; }
            long long v = strtoll(argv[i + 1], &end, 10);
            if (*end || end == argv[i + 1] || v < 0) {
                fprintf(stderr, "sra-inspect: %s '%s': expected a non-negative integer\n", argv[i], argv[i + 1]);
                free(files);
                return 2;
            }
            if (!strcmp(argv[i], "--doc")) doc = v; else max_atoms = v;
            i++;
        } else if (argv[i][0] == '-' && argv[i][1]) {
            fprintf(stderr, "sra-inspect: unknown option %s\n", argv[i]);
            usage(stderr);
            free(files);
            return 2;
        } else files[nfiles++] = argv[i];
    }
    if (!nfiles) { usage(stderr); free(files); return 2; }
    for (int f = 0; f < nfiles; f++) {
        struct stat st;
        if (stat(files[f], &st) == 0 && S_ISDIR(st.st_mode)) {
            if (doc >= 0) {
                fprintf(stderr, "sra-inspect: %s is a folder: --doc needs a shard file\n", files[f]);
                failed = 1;
            } else if (print_folder(files[f])) failed = 1;
            continue;
        }
        cache_reader *r;
        int rc = cache_open(&r, files[f]);
        if (!rc) {
            if (doc >= 0) rc = print_doc(r, doc, max_atoms);
            else {
                print_summary(r);
                char dir[4200];
                dir_of(files[f], dir, sizeof dir);
                if (print_head(dir, 0)) failed = 1;
            }
        }
        if (rc) {
            fprintf(stderr, "sra-inspect: %s\n", cache_errmsg(r));
            failed = 1;
        }
        cache_close(r);
    }
    free(files);
    return failed;
}
