/*
 * bench-regex - single-thread speed of the native Split-regex matchers
 * (tok_regex.h) against Oniguruma, the engine HF tokenizers runs, on the
 * same pattern and text.
 *
 *   bench-regex [--shared DIR] [--reps R]
 *
 * Texts: "english" is DIR/corpus/{tinyshakespeare,moby-dick,sotu}.txt
 * concatenated (13 MB); "multilingual" is every text of
 * DIR/reference/texts.jsonl (scripts, emoji, code, spaces) joined with
 * newlines and repeated to about 2 MB. For each of GPT-2's, Llama-3's,
 * Qwen3's and the Whitespace pre-tokenizer's patterns and DeepSeek-V3's
 * three (ds-digits, ds-cjk, ds-words; each here over the whole text, where
 * the tokenizer runs each on the pieces of the one before), both engines
 * walk the whole text match by match as the tokenizer does (find from the
 * last match end); the best of R passes is kept. MB/s is 1e6 bytes per second.
 * Both walks must give the same matches (a checksum), else the row says
 * DIFF and the exit status is 1. Prints a table, then "BENCH_JSON {...}".
 */
#include <cJSON.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tok_regex.h"
#include "util.h"

static void usage(void) {
    fprintf(stderr,
            "usage: bench-regex [--shared DIR] [--reps R]\n"
            "  --shared DIR  shared assets (corpus/, reference/); default $SRA_SHARED or ../shared\n"
            "  --reps R      passes per engine and pattern, best kept (default 3)\n"
            "example: build/bench-regex --shared ../shared --reps 5\n");
}

static void *xrealloc(void *p, size_t n) {
    void *q = realloc(p, n ? n : 1);
    if (!q) {
        fprintf(stderr, "bench-regex: out of memory (%zu bytes)\n", n);
        exit(1);
    }
    return q;
}

/* Appends the file at path to *buf; exits with a hint if it is missing. */
static void append_file(const char *path, char **buf, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "bench-regex: cannot open %s (set --shared or SRA_SHARED)\n", path);
        exit(1);
    }
    char chunk[1 << 16];
    size_t got;
    while ((got = fread(chunk, 1, sizeof chunk, f)) > 0) {
        *buf = xrealloc(*buf, *n + got + 1);
        memcpy(*buf + *n, chunk, got);
        *n += got;
    }
    fclose(f);
}

typedef struct { size_t matches; uint64_t sum; } walk_result;

/* One pass over s as the tokenizer walks it; the checksum folds in every
 * match so that two engines can be compared without storing matches. */
static walk_result walk(const tok_regex *re, const char *s, size_t n) {
    walk_result r = {0, 1469598103934665603ull};
    size_t pos = 0, ms, me;
    while (pos < n && tok_regex_find(re, s, n, pos, &ms, &me)) {
        r.matches++;
        r.sum = (r.sum ^ (ms * 0x9E3779B97F4A7C15ull + me)) * 1099511628211ull;
        pos = me > ms ? me : me + 1; /* none of these patterns matches empty */
    }
    return r;
}

static double best_mbs(const tok_regex *re, const char *s, size_t n, int reps, walk_result *out) {
    double best = 1e30;
    for (int k = 0; k < reps; k++) {
        double t0 = sra_now();
        *out = walk(re, s, n);
        double dt = sra_now() - t0;
        if (dt < best) best = dt;
    }
    return (double)n / best / 1e6;
}

int main(int argc, char **argv) {
    const char *shared = getenv("SRA_SHARED");
    if (!shared || !*shared) shared = "../shared";
    int reps = 3;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--shared") && i + 1 < argc) shared = argv[++i];
        else if (!strcmp(argv[i], "--reps") && i + 1 < argc) reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) { usage(); return 0; }
        else { usage(); return 2; }
    }
    if (reps < 1) reps = 1;

    /* english: the corpus */
    char *en = NULL, path[4096];
    size_t en_n = 0;
    static const char *corpus[] = {"tinyshakespeare.txt", "moby-dick.txt", "sotu.txt"};
    for (int i = 0; i < 3; i++) {
        snprintf(path, sizeof path, "%s/corpus/%s", shared, corpus[i]);
        append_file(path, &en, &en_n);
    }
    /* multilingual: the reference texts, repeated */
    char *js = NULL, *ml = NULL;
    size_t js_n = 0, ml_n = 0, one_n = 0;
    snprintf(path, sizeof path, "%s/reference/texts.jsonl", shared);
    append_file(path, &js, &js_n);
    js[js_n] = 0;
    char *one = NULL;
    for (char *line = js, *next; line && *line; line = next) {
        next = strchr(line, '\n');
        if (next) *next++ = 0;
        cJSON *o = cJSON_Parse(line);
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(o, "text");
        if (cJSON_IsString(t)) {
            size_t l = strlen(t->valuestring);
            one = xrealloc(one, one_n + l + 1);
            memcpy(one + one_n, t->valuestring, l);
            one_n += l;
            one[one_n++] = '\n';
        }
        cJSON_Delete(o);
    }
    while (one_n && ml_n < 2000000) {
        ml = xrealloc(ml, ml_n + one_n);
        memcpy(ml + ml_n, one, one_n);
        ml_n += one_n;
    }

    static const struct { const char *name, *pattern; } pats[] = {
        {"gpt2", "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+"},
        {"llama3", "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| "
                   "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"},
        {"qwen3", "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| "
                  "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"},
        {"whitespace", "\\w+|[^\\w\\s]+"},
        {"ds-digits", "\\p{N}{1,3}"},
        {"ds-cjk", "[\xE4\xB8\x80-\xE9\xBE\xA5\xE3\x81\x80-\xE3\x82\x9F\xE3\x82\xA0-\xE3\x83\xBF]+"},
        {"ds-words", "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?"
                     "[\\p{L}\\p{M}]+| ?[\\p{P}\\p{S}]+[\r\n]*|\\s*[\r\n]+|\\s+(?!\\S)|\\s+"},
    };
    const struct { const char *name; const char *s; size_t n; } texts[] = {
        {"english", en, en_n}, {"multilingual", ml, ml_n}};

    printf("bench-regex: single thread, best of %d; english %.2f MB, multilingual %.2f MB\n", reps,
           en_n / 1e6, ml_n / 1e6);
    printf("%-12s %-13s %12s %12s %8s %10s\n", "pattern", "text", "native MB/s", "onig MB/s",
           "ratio", "matches");
    char json[8192];
    size_t jl = (size_t)snprintf(json, sizeof json, "{\"bench\":\"regex\",\"rows\":[");
    int status = 0;
    for (size_t p = 0; p < sizeof pats / sizeof pats[0]; p++) {
        char err[512];
        tok_regex *nat = tok_regex_compile(pats[p].pattern, err, sizeof err);
        tok_regex *onig = nat ? tok_regex_compile_onig(pats[p].pattern, err, sizeof err) : NULL;
        if (!nat || !onig || !tok_regex_is_native(nat)) {
            fprintf(stderr, "bench-regex: %s: %s\n", pats[p].name, nat ? err : "not native");
            return 1;
        }
        for (size_t t = 0; t < 2; t++) {
            walk_result a, b;
            double mn = best_mbs(nat, texts[t].s, texts[t].n, reps, &a);
            double mo = best_mbs(onig, texts[t].s, texts[t].n, reps, &b);
            int same = a.matches == b.matches && a.sum == b.sum;
            if (!same) status = 1;
            printf("%-12s %-13s %12.1f %12.1f %7.1fx %10zu%s\n", pats[p].name, texts[t].name, mn, mo,
                   mn / mo, a.matches, same ? "" : "  DIFF");
            if (jl < sizeof json)
                jl += (size_t)snprintf(json + jl, sizeof json - jl,
                                       "%s{\"pattern\":\"%s\",\"text\":\"%s\",\"native_mbs\":%.1f,"
                                       "\"onig_mbs\":%.1f,\"same\":%s}",
                                       p || t ? "," : "", pats[p].name, texts[t].name, mn, mo,
                                       same ? "true" : "false");
        }
        tok_regex_free(nat);
        tok_regex_free(onig);
    }
    if (jl < sizeof json) snprintf(json + jl, sizeof json - jl, "]}");
    printf("BENCH_JSON %s\n", json);
    free(en);
    free(js);
    free(one);
    free(ml);
    return status;
}
