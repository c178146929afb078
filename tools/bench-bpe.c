/*
 * bench-bpe - throughput of the BPE model (tok_bpe.h) on natural text.
 *
 *   bench-bpe [--shared DIR] [--reps R]
 *
 * For gpt2 and llama3 (DIR/tokenizers/NAME/tokenizer.json): loads the model
 * (cJSON parse and bpe_load timed apart), splits the corpus
 * DIR/corpus/{tinyshakespeare,moby-dick,sotu}.txt (13 MB) on whitespace
 * and maps every word, with a leading space, to the byte-level alphabet
 * ("Ġword", what the ByteLevel pre-tokenizer hands the model), all outside
 * the timed regions. Then, on one thread:
 *   cold   a fresh session encodes every word once in corpus order (the
 *          word cache fills as it goes, as at the start of a real run);
 *   warm   the same session encodes the corpus again (best of R);
 *   miss   a fresh session encodes each distinct word once: every call
 *          runs the merge loop (the cache-miss path alone);
 *   lookup the peer: one bpe_token_to_id hash probe per word, the floor
 *          for anything that looks a word up (best of R).
 * MB/s counts raw corpus bytes (word + its space; 1 MB = 1e6 bytes), as the
 * whole tokenizer's speed is measured; the mapped bytes the model reads are
 * larger for non-ASCII text. Prints a table, then "BENCH_JSON {...}".
 */
#include <cJSON.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tok_bpe.h"
#include "util.h"

static void usage(void) {
    fprintf(stderr,
            "usage: bench-bpe [--shared DIR] [--reps R]\n"
            "  --shared DIR  shared assets (tokenizers/, corpus/); default $SRA_SHARED or ../shared\n"
            "  --reps R      repetitions of the warm and lookup passes, best kept (default 5)\n"
            "example: build/bench-bpe --shared ../shared --reps 3\n");
}

static void *xmalloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p) {
        fprintf(stderr, "bench-bpe: out of memory (%zu bytes)\n", n);
        exit(1);
    }
    return p;
}

static char *slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "bench-bpe: cannot open %s (set --shared or SRA_SHARED)\n", path);
        exit(1);
    }
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = xmalloc((size_t)len + 1);
    if (len < 0 || fread(b, 1, (size_t)len, f) != (size_t)len) {
        fprintf(stderr, "bench-bpe: cannot read %s\n", path);
        exit(1);
    }
    b[len] = 0;
    fclose(f);
    *n = (size_t)len;
    return b;
}

/* ============================================================ words */

typedef struct {
    char *bytes;          /* mapped words, back to back */
    size_t *off;          /* (n + 1) */
    size_t n, raw, mapped;
    size_t *uniq;         /* indices of first occurrences */
    size_t n_uniq, raw_uniq;
} words;

/* GPT-2's bytes_to_unicode, as UTF-8: printable bytes stand for
 * themselves, the rest for U+0100 and up in byte order. */
static int map_byte(unsigned b, char out[2]) {
    static int cp[256], init;
    if (!init) {
        int next = 256;
        for (int i = 0; i < 256; i++) {
            int keep = (i >= 33 && i <= 126) || (i >= 161 && i <= 172) || i >= 174;
            cp[i] = keep ? i : next++;
        }
        init = 1;
    }
    int c = cp[b];
    if (c < 0x80) { out[0] = (char)c; return 1; }
    out[0] = (char)(0xC0 | (c >> 6));
    out[1] = (char)(0x80 | (c & 0x3F));
    return 2;
}

static int is_ws(char c) { return c == ' ' || c == '\n' || c == '\t' || c == '\r' || c == '\f' || c == '\v'; }

static void words_build(words *w, const char *shared) {
    static const char *files[] = {"tinyshakespeare.txt", "moby-dick.txt", "sotu.txt"};
    memset(w, 0, sizeof *w);
    size_t cap = 1 << 20, bcap = 1 << 24;
    w->off = xmalloc(cap * sizeof *w->off);
    w->bytes = xmalloc(bcap);
    w->off[0] = 0;
    for (int f = 0; f < 3; f++) {
        char path[4096];
        size_t n;
        snprintf(path, sizeof path, "%s/corpus/%s", shared, files[f]);
        char *t = slurp(path, &n);
        for (size_t i = 0; i < n;) {
            while (i < n && is_ws(t[i])) i++;
            size_t j = i;
            while (j < n && !is_ws(t[j])) j++;
            if (j == i) break;
            if (w->n + 2 > cap) { cap *= 2; w->off = realloc(w->off, cap * sizeof *w->off); }
            if (w->mapped + 2 * (j - i + 1) > bcap) { bcap *= 2; w->bytes = realloc(w->bytes, bcap); }
            if (!w->off || !w->bytes) { fprintf(stderr, "bench-bpe: out of memory\n"); exit(1); }
            w->mapped += (size_t)map_byte(' ', w->bytes + w->mapped);
            for (size_t k = i; k < j; k++) w->mapped += (size_t)map_byte((unsigned char)t[k], w->bytes + w->mapped);
            w->raw += j - i + 1;
            w->off[++w->n] = w->mapped;
            i = j;
        }
        free(t);
    }
    /* first occurrences, through a throwaway open-addressing set */
    size_t slots = 1;
    while (slots < 2 * w->n) slots <<= 1;
    size_t *set = xmalloc(slots * sizeof *set);
    for (size_t i = 0; i < slots; i++) set[i] = SIZE_MAX;
    w->uniq = xmalloc(w->n * sizeof *w->uniq);
    for (size_t i = 0; i < w->n; i++) {
        const char *s = w->bytes + w->off[i];
        size_t len = w->off[i + 1] - w->off[i];
        uint64_t h = 1469598103934665603ull;
        for (size_t k = 0; k < len; k++) h = (h ^ (unsigned char)s[k]) * 1099511628211ull;
        size_t p = (size_t)h & (slots - 1);
        for (;; p = (p + 1) & (slots - 1)) {
            size_t o = set[p];
            if (o == SIZE_MAX) {
                set[p] = i;
                w->uniq[w->n_uniq++] = i;
                break;
            }
            if (w->off[o + 1] - w->off[o] == len && memcmp(w->bytes + w->off[o], s, len) == 0) break;
        }
    }
    free(set);
    /* raw bytes of the distinct words: mapped minus one extra byte per
     * 2-byte mapped character is not exact for every byte, so count them */
    for (size_t u = 0; u < w->n_uniq; u++) {
        size_t i = w->uniq[u];
        for (size_t k = w->off[i]; k < w->off[i + 1]; k++) w->raw_uniq += ((unsigned char)w->bytes[k] & 0xC0) != 0x80;
    }
}

/* ============================================================ passes */

typedef struct {
    int32_t ids[4096];
    uint32_t st[4096], en[4096];
} outbuf;

static uint64_t encode_pass(bpe_session *s, const words *w, const size_t *idx, size_t n, outbuf *o) {
    uint64_t tokens = 0;
    for (size_t k = 0; k < n; k++) {
        size_t i = idx ? idx[k] : k;
        int r = bpe_encode_word(s, w->bytes + w->off[i], w->off[i + 1] - w->off[i], o->ids, o->st, o->en, 4096);
        if (r < 0 || r > 4096) {
            fprintf(stderr, "bench-bpe: word %zu: %s\n", i, r < 0 ? bpe_session_error(s) : "too many tokens");
            exit(1);
        }
        tokens += (uint64_t)r;
    }
    return tokens;
}

static void bench_one(const char *shared, const char *name, const words *w, int reps, FILE *json, int first) {
    char path[4096];
    size_t n;
    snprintf(path, sizeof path, "%s/tokenizers/%s/tokenizer.json", shared, name);
    char *text = slurp(path, &n);
    double t0 = sra_now();
    cJSON *root = cJSON_ParseWithLength(text, n);
    double t1 = sra_now();
    char err[512];
    bpe_model *m = root ? bpe_load(cJSON_GetObjectItemCaseSensitive(root, "model"), err, sizeof err) : NULL;
    double t2 = sra_now();
    if (!m) {
        fprintf(stderr, "bench-bpe: %s: %s\n", path, root ? err : "not valid JSON");
        exit(1);
    }
    cJSON_Delete(root);
    free(text);

    outbuf *o = xmalloc(sizeof *o);
    bpe_session *s = bpe_session_new(m);
    double c0 = sra_now();
    uint64_t tokens = encode_pass(s, w, NULL, w->n, o);
    double cold = sra_now() - c0, warm = 1e30, look = 1e30;
    for (int r = 0; r < reps; r++) {
        double a = sra_now();
        uint64_t t2n = encode_pass(s, w, NULL, w->n, o);
        double d = sra_now() - a;
        if (d < warm) warm = d;
        if (t2n != tokens) { fprintf(stderr, "bench-bpe: warm pass gave other tokens\n"); exit(1); }
    }
    bpe_session_free(s);
    s = bpe_session_new(m);
    double u0 = sra_now();
    encode_pass(s, w, w->uniq, w->n_uniq, o);
    double miss = sra_now() - u0;
    bpe_session_free(s);
    int64_t found = 0;
    for (int r = 0; r < reps; r++) {
        double a = sra_now();
        found = 0;
        for (size_t i = 0; i < w->n; i++) found += bpe_token_to_id(m, w->bytes + w->off[i], w->off[i + 1] - w->off[i]) >= 0;
        double d = sra_now() - a;
        if (d < look) look = d;
    }
    double mb = (double)w->raw / 1e6, mbu = (double)w->raw_uniq / 1e6;
    printf("%-7s load: parse %.3f s, bpe_load %.3f s, tables %.1f MiB; %zu words (%.2f MB raw, %.2f MB mapped), %llu tokens\n",
           name, t1 - t0, t2 - t1, (double)bpe_memory(m) / (1 << 20), w->n, mb, (double)w->mapped / 1e6,
           (unsigned long long)tokens);
    printf("  cold    %8.1f MB/s  %6.1f M words/s\n", mb / cold, (double)w->n / cold / 1e6);
    printf("  warm    %8.1f MB/s  %6.1f M words/s\n", mb / warm, (double)w->n / warm / 1e6);
    printf("  miss    %8.1f MB/s  %6.1f M words/s  (%zu distinct words, %.2f MB)\n", mbu / miss,
           (double)w->n_uniq / miss / 1e6, w->n_uniq, mbu);
    printf("  lookup  %8.1f MB/s  %6.1f M words/s  (peer: one hash probe per word; %.0f%% of words are one token)\n",
           mb / look, (double)w->n / look / 1e6, 100.0 * (double)found / (double)w->n);
    printf("  warm / lookup = %.2f\n", look / warm);
    fprintf(json,
            "%s\"%s\":{\"parse_s\":%.4f,\"load_s\":%.4f,\"tables_mib\":%.2f,\"words\":%zu,\"raw_mb\":%.3f,"
            "\"tokens\":%llu,\"cold_mbps\":%.1f,\"warm_mbps\":%.1f,\"miss_mbps\":%.1f,\"lookup_mbps\":%.1f,"
            "\"warm_vs_lookup\":%.3f}",
            first ? "" : ",", name, t1 - t0, t2 - t1, (double)bpe_memory(m) / (1 << 20), w->n, mb,
            (unsigned long long)tokens, mb / cold, mb / warm, mbu / miss, mb / look, look / warm);
    free(o);
    bpe_free(m);
}

int main(int argc, char **argv) {
    const char *shared = getenv("SRA_SHARED") ? getenv("SRA_SHARED") : "../shared";
    int reps = 5;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--shared") && i + 1 < argc) shared = argv[++i];
        else if (!strcmp(argv[i], "--reps") && i + 1 < argc) reps = atoi(argv[++i]);
        else { usage(); return strcmp(argv[i], "--help") && strcmp(argv[i], "-h") ? 2 : 0; }
    }
    if (reps < 1) { usage(); return 2; }
    words w;
    words_build(&w, shared);
    char json[4096];
    FILE *js = fmemopen(json, sizeof json, "w");
    if (!js) { fprintf(stderr, "bench-bpe: fmemopen failed\n"); return 1; }
    fprintf(js, "{\"bench\":\"bpe\",\"reps\":%d,", reps);
    bench_one(shared, "gpt2", &w, reps, js, 1);
    bench_one(shared, "llama3", &w, reps, js, 0);
    fprintf(js, "}");
    fclose(js);
    printf("BENCH_JSON %s\n", json);
    free(w.bytes);
    free(w.off);
    free(w.uniq);
    return 0;
}
