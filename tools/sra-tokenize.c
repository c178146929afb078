/*
 * sra-tokenize - encode, decode and benchmark with a tokenizer.json.
 *
 *   sra-tokenize --tokenizer PATH [--special] [--jsonl]   < {"text": ...} lines
 *       one line out per line in: {"ids": [...], "offsets": [[s, e], ...]}
 *       (byte offsets into the UTF-8 text; --special adds the
 *       post-processor's tokens, e.g. BOS, with offsets [0, 0]);
 *       --tokens adds "tokens": [...] (vocabulary strings).
 *   sra-tokenize --tokenizer PATH --decode [--skip-special] [--text]
 *       lines of ids in ([1, 2, 3], {"ids": [...]} or "1 2 3"), one
 *       {"text": ...} line out (--text: the raw bytes and a newline).
 *   sra-tokenize --tokenizer PATH --bench FILE [--doc-bytes N] [--threads N] [--runs N]
 *       cuts FILE into ~N-byte documents at the next ASCII whitespace (as
 *       shared/tools/hf-bench.js does), encodes them one by one and prints
 *       the median MB/s (1e6 bytes/s) over the runs, with 1 thread and with
 *       --threads threads (each with its own session).
 *
 * Errors (bad JSON, invalid UTF-8, unknown ids) name the input line and
 * exit with status 1; the lines before it have been written.
 */
#include <cJSON.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer.h"
#include "util.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: sra-tokenize --tokenizer PATH [--special] [--tokens] [--jsonl]   (JSONL {\"text\":...} on stdin)\n"
            "       sra-tokenize --tokenizer PATH --decode [--skip-special] [--text] (ids per line on stdin)\n"
            "       sra-tokenize --tokenizer PATH --bench FILE [--doc-bytes N] [--threads N] [--runs N]\n");
}

/* getline without a length limit; returns the length or -1 at EOF. */
static long read_line(char **buf, size_t *cap, FILE *f) {
    ssize_t n = getline(buf, cap, f);
    if (n < 0) return -1;
    while (n > 0 && ((*buf)[n - 1] == '\n' || (*buf)[n - 1] == '\r')) (*buf)[--n] = 0;
    return (long)n;
}

static int is_blank(const char *s) {
    while (*s == ' ' || *s == '\t') s++;
    return !*s;
}

/* ============================================================= encode */

static int run_encode(const tok_tokenizer *t, int special, int tokens) {
    tok_session *s = tok_session_new(t);
    if (!s) { fprintf(stderr, "sra-tokenize: out of memory\n"); return 1; }
    char *line = NULL;
    size_t cap = 0;
    long n, lineno = 0;
    int rc = 0;
    while ((n = read_line(&line, &cap, stdin)) >= 0) {
        lineno++;
        if (is_blank(line)) continue;
        size_t tlen;
        char *text = sra_json_get_string(line, "text", &tlen);
        if (!text) {
            fprintf(stderr, "sra-tokenize: stdin line %ld: expected a JSON object with a \"text\" string\n", lineno);
            rc = 1;
            break;
        }
        tok_encoding e;
        if (tok_encode(s, text, tlen, special, &e)) {
            fprintf(stderr, "sra-tokenize: stdin line %ld: %s\n", lineno, tok_session_error(s));
            free(text);
            rc = 1;
            break;
        }
        fputs("{\"ids\": [", stdout);
        for (size_t i = 0; i < e.n; i++) printf(i ? ", %d" : "%d", e.ids[i]);
        fputs("], \"offsets\": [", stdout);
        for (size_t i = 0; i < e.n; i++) printf(i ? ", [%u, %u]" : "[%u, %u]", e.start[i], e.end[i]);
        fputc(']', stdout);
        if (tokens) {
            fputs(", \"tokens\": [", stdout);
            for (size_t i = 0; i < e.n; i++) {
                size_t l = 0;
                const char *str = tok_token_str(t, e.ids[i], &l);
                if (i) fputs(", ", stdout);
                sra_json_put_string(stdout, str ? str : "", str ? l : 0);
            }
            fputc(']', stdout);
        }
        fputs("}\n", stdout);
        free(text);
    }
    free(line);
    tok_session_free(s);
    if (fflush(stdout) || ferror(stdout)) {
        fprintf(stderr, "sra-tokenize: writing stdout: %s\n", strerror(errno));
        rc = 1;
    }
    return rc;
}

/* ============================================================= decode */

/* Parses one input line of ids into a growing array; returns the count or
 * -1 with a message in err. */
static long parse_ids(const char *line, int32_t **ids, size_t *cap, int32_t vocab, char *err, size_t errlen) {
    size_t n = 0;
    const char *p = line;
    while (*p == ' ' || *p == '\t') p++;
    if (*p == '[' || *p == '{') {
        cJSON *j = cJSON_Parse(line);
        const cJSON *a = j && cJSON_IsObject(j) ? cJSON_GetObjectItemCaseSensitive(j, "ids") : j;
        if (!cJSON_IsArray(a)) {
            snprintf(err, errlen, "expected a JSON array of ids or an object with \"ids\"");
            cJSON_Delete(j);
            return -1;
        }
        const cJSON *x;
        cJSON_ArrayForEach(x, a) {
            double v = cJSON_IsNumber(x) ? x->valuedouble : -1;
            if (v < 0 || v >= vocab || v != (double)(int32_t)v) {
                snprintf(err, errlen, "element %zu is not a token id in 0..%d", n, vocab - 1);
                cJSON_Delete(j);
                return -1;
            }
            if (n == *cap) {
                size_t c = *cap ? 2 * *cap : 256;
                int32_t *q = realloc(*ids, c * sizeof *q);
                if (!q) { snprintf(err, errlen, "out of memory"); cJSON_Delete(j); return -1; }
                *ids = q;
                *cap = c;
            }
            (*ids)[n++] = (int32_t)v;
        }
        cJSON_Delete(j);
        return (long)n;
    }
    while (*p) {
        char *end;
        errno = 0;
        long v = strtol(p, &end, 10);
        if (end == p || errno || v < 0 || v >= vocab) {
            snprintf(err, errlen, "id %zu is not a token id in 0..%d", n, vocab - 1);
            return -1;
        }
        if (n == *cap) {
            size_t c = *cap ? 2 * *cap : 256;
            int32_t *q = realloc(*ids, c * sizeof *q);
            if (!q) { snprintf(err, errlen, "out of memory"); return -1; }
            *ids = q;
            *cap = c;
        }
        (*ids)[n++] = (int32_t)v;
        p = end;
        while (*p == ' ' || *p == '\t' || *p == ',') p++;
    }
    return (long)n;
}

static int run_decode(const tok_tokenizer *t, int skip_special, int raw) {
    tok_session *s = tok_session_new(t);
    if (!s) { fprintf(stderr, "sra-tokenize: out of memory\n"); return 1; }
    char *line = NULL, err[256];
    size_t cap = 0, idcap = 0;
    int32_t *ids = NULL;
    long n, lineno = 0;
    int rc = 0;
    while ((n = read_line(&line, &cap, stdin)) >= 0) {
        lineno++;
        long k = parse_ids(line, &ids, &idcap, tok_vocab_size(t), err, sizeof err);
        const char *out;
        size_t olen;
        if (k < 0) {
            fprintf(stderr, "sra-tokenize: stdin line %ld: %s\n", lineno, err);
            rc = 1;
            break;
        }
        if (tok_decode(s, ids, (size_t)k, skip_special, &out, &olen)) {
            fprintf(stderr, "sra-tokenize: stdin line %ld: %s\n", lineno, tok_session_error(s));
            rc = 1;
            break;
        }
        if (raw) { fwrite(out, 1, olen, stdout); fputc('\n', stdout); }
        else { fputs("{\"text\": ", stdout); sra_json_put_string(stdout, out, olen); fputs("}\n", stdout); }
    }
    free(line);
    free(ids);
    tok_session_free(s);
    if (fflush(stdout) || ferror(stdout)) {
        fprintf(stderr, "sra-tokenize: writing stdout: %s\n", strerror(errno));
        rc = 1;
    }
    return rc;
}

/* ============================================================== bench */

typedef struct {
    const tok_tokenizer *t;
    const char *buf;
    const size_t *cut; /* (ndocs + 1) document boundaries */
    size_t ndocs;
    atomic_size_t next;
    atomic_size_t tokens;
    atomic_int failed;
} bench_job;

static void *bench_worker(void *arg) {
    bench_job *j = arg;
    tok_session *s = tok_session_new(j->t);
    if (!s) { atomic_store(&j->failed, 1); return NULL; }
    size_t ntok = 0;
    for (;;) {
        /* documents are handed out in small batches to keep the counter cold */
        size_t d0 = atomic_fetch_add(&j->next, 16);
        if (d0 >= j->ndocs) break;
        size_t d1 = d0 + 16 < j->ndocs ? d0 + 16 : j->ndocs;
        for (size_t d = d0; d < d1; d++) {
            tok_encoding e;
            if (tok_encode(s, j->buf + j->cut[d], j->cut[d + 1] - j->cut[d], 0, &e)) {
                fprintf(stderr, "sra-tokenize: bench document %zu: %s\n", d, tok_session_error(s));
                atomic_store(&j->failed, 1);
                tok_session_free(s);
                return NULL;
            }
            ntok += e.n;
        }
    }
    atomic_fetch_add(&j->tokens, ntok);
    tok_session_free(s);
    return NULL;
}

/* One pass over all documents with nthreads threads; returns seconds or -1. */
static double bench_pass(bench_job *j, int nthreads, size_t *tokens) {
    atomic_store(&j->next, 0);
    atomic_store(&j->tokens, 0);
    pthread_t th[256];
    double t0 = sra_now();
    int started = 0;
    for (int i = 0; i < nthreads; i++)
        if (pthread_create(&th[i], NULL, bench_worker, j) == 0) started++;
    for (int i = 0; i < started; i++) pthread_join(th[i], NULL);
    double dt = sra_now() - t0;
    *tokens = atomic_load(&j->tokens);
    return started == nthreads && !atomic_load(&j->failed) ? dt : -1;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static int run_bench(const tok_tokenizer *t, const char *tpath, const char *file, size_t doc_bytes, int threads,
                     int runs) {
    size_t len;
    char *buf = sra_read_file(file, &len);
    if (!buf) { fprintf(stderr, "sra-tokenize: --bench %s: %s\n", file, strerror(errno)); return 1; }
    size_t ndocs = 0, ccap = 1024;
    size_t *cut = malloc(ccap * sizeof *cut);
    if (!cut) { free(buf); return 1; }
    cut[0] = 0;
    for (size_t start = 0; start < len;) {
        size_t end = start + doc_bytes < len ? start + doc_bytes : len;
        while (end < len && buf[end] != ' ' && buf[end] != '\n' && buf[end] != '\t' && buf[end] != '\r') end++;
        if (ndocs + 2 > ccap) {
            size_t *q = realloc(cut, 2 * ccap * sizeof *cut);
            if (!q) { free(cut); free(buf); return 1; }
            cut = q;
            ccap *= 2;
        }
        cut[++ndocs] = end;
        start = end;
    }
    bench_job j = {.t = t, .buf = buf, .cut = cut, .ndocs = ndocs};
    printf("sra-tokenize bench: %s, %s: %zu bytes, %zu docs of ~%zu B, %d runs\n", tpath, file, len, ndocs, doc_bytes,
           runs);
    /* warm-up on ~1 MB (as hf-bench.js) */
    size_t warm = 0, tokens = 0;
    while (warm < ndocs && cut[warm] < 1000000) warm++;
    bench_job w = {.t = t, .buf = buf, .cut = cut, .ndocs = warm};
    int rc = bench_pass(&w, 1, &tokens) < 0;
    int configs[2] = {1, threads};
    for (int c = 0; c < (threads > 1 ? 2 : 1) && !rc; c++) {
        double mbs[64];
        for (int i = 0; i < runs && !rc; i++) {
            double dt = bench_pass(&j, configs[c], &tokens);
            if (dt < 0) rc = 1;
            else mbs[i] = (double)len / dt / 1e6;
        }
        if (rc) break;
        qsort(mbs, (size_t)runs, sizeof mbs[0], cmp_double);
        printf("%d thread%s: %.2f MB/s (median of %d; min %.2f max %.2f), %zu tokens\n", configs[c],
               configs[c] > 1 ? "s" : "", mbs[runs / 2], runs, mbs[0], mbs[runs - 1], tokens);
    }
    free(cut);
    free(buf);
    return rc;
}

/* =============================================================== main */

int main(int argc, char **argv) {
    const char *tpath = NULL, *bench = NULL;
    int special = 0, decode = 0, skip = 0, raw = 0, tokens = 0, threads = 2, runs = 3;
    long doc_bytes = 4096;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int more = i + 1 < argc;
        if (!strcmp(a, "--tokenizer") && more) tpath = argv[++i];
        else if (!strcmp(a, "--special")) special = 1;
        else if (!strcmp(a, "--jsonl")) { /* the default input format */ }
        else if (!strcmp(a, "--tokens")) tokens = 1;
        else if (!strcmp(a, "--decode")) decode = 1;
        else if (!strcmp(a, "--skip-special")) skip = 1;
        else if (!strcmp(a, "--text")) raw = 1;
        else if (!strcmp(a, "--bench") && more) bench = argv[++i];
        else if (!strcmp(a, "--doc-bytes") && more) doc_bytes = strtol(argv[++i], NULL, 10);
        else if (!strcmp(a, "--threads") && more) threads = (int)strtol(argv[++i], NULL, 10);
        else if (!strcmp(a, "--runs") && more) runs = (int)strtol(argv[++i], NULL, 10);
        else if (!strcmp(a, "-h") || !strcmp(a, "--help")) { usage(stdout); return 0; }
        else {
            fprintf(stderr, "sra-tokenize: unknown or incomplete option '%s'\n", a);
            usage(stderr);
            return 2;
        }
    }
    if (!tpath) { fprintf(stderr, "sra-tokenize: --tokenizer PATH is required\n"); usage(stderr); return 2; }
    if (doc_bytes < 1 || threads < 1 || threads > 256 || runs < 1 || runs > 64) {
        fprintf(stderr, "sra-tokenize: --doc-bytes must be >= 1, --threads 1..256, --runs 1..64\n");
        return 2;
    }
    tok_tokenizer *t = NULL;
    if (tok_load(&t, tpath)) {
        fprintf(stderr, "sra-tokenize: %s\n", t ? tok_errmsg(t) : "out of memory");
        tok_free(t);
        return 1;
    }
    int rc = bench ? run_bench(t, tpath, bench, (size_t)doc_bytes, threads, runs)
             : decode ? run_decode(t, skip, raw)
                      : run_encode(t, special, tokens);
    tok_free(t);
    return rc;
}
