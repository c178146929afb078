/*
 * fuzz_tok_encode - libFuzzer target: arbitrary bytes encoded by every
 * real tokenizer in $SRA_SHARED (the first byte picks one). Invalid UTF-8
 * must be refused with its position; valid text must give in-range
 * offsets and ids, decode without error, and for the lossless
 * tokenizers (gpt2, llama3, deepseek_v3) decode back to the input.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer.h"
#include "unicode.h"

#define NT 8
static tok_tokenizer *g_tok[NT];
static tok_session *g_ses[NT];
static int g_lossless[NT]; /* byte-level without normalizer: decode(encode(x)) == x */
static int g_n;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc; (void)argv;
    const char *sh = getenv("SRA_SHARED") ? getenv("SRA_SHARED") : "../shared";
    static const char *names[NT] = {"tokenizers/gpt2", "tokenizers/llama2", "tokenizers/llama3",
                                    "tokenizers/mistral", "tokenizers/qwen3", "tokenizers/gemma3",
                                    "tokenizers/deepseek_v3", "models/tinystories-656k"};
    for (int i = 0; i < NT; i++) {
        char p[1024];
        snprintf(p, sizeof p, "%s/%s/tokenizer.json", sh, names[i]);
        tok_tokenizer *t;
        if (tok_load(&t, p)) { fprintf(stderr, "fuzz_tok_encode: %s\n", tok_errmsg(t)); tok_free(t); continue; }
        g_lossless[g_n] = i == 0 || i == 2 || i == 6; /* gpt2, llama3, deepseek_v3 */
        g_tok[g_n] = t;
        g_ses[g_n++] = tok_session_new(t);
    }
    if (!g_n) { fprintf(stderr, "fuzz_tok_encode: no tokenizer loaded (set SRA_SHARED)\n"); exit(1); }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    int k = data[0] % g_n;
    const char *text = (const char *)data + 1;
    size_t n = size - 1;
    tok_encoding e;
    int rc = tok_encode(g_ses[k], text, n, data[0] & 0x80, &e);
    if ((rc != 0) != (uni_validate(text, n) != n)) abort(); /* refused iff invalid UTF-8 */
    if (rc) return 0;
    for (size_t i = 0; i < e.n; i++) {
        if (e.start[i] > e.end[i] || e.end[i] > n) abort();
        if (e.ids[i] < 0 || e.ids[i] >= tok_vocab_size(g_tok[k])) abort();
    }
    int32_t *ids = malloc(e.n * sizeof *ids + 1);
    if (e.n) memcpy(ids, e.ids, e.n * sizeof *ids);
    const char *out;
    size_t len;
    if (tok_decode(g_ses[k], ids, e.n, 0, &out, &len)) abort();
    if (g_lossless[k] && (len != n || memcmp(out, text, n))) abort();
    free(ids);
    return 0;
}
