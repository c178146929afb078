/*
 * fixture.h - deterministic synthetic cache content for tests, the interop
 * check and the placeholder demo. Values look like the real thing: word
 * atoms over generated text, positive masses, hidden states with a few
 * large outlier channels (as real LLM residual streams have), top-k rows
 * taken from a real softmax so that tail_mass = 1 - sum(top-k) holds.
 */
#ifndef SRA_TEST_FIXTURE_H
#define SRA_TEST_FIXTURE_H

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cache.h"

typedef struct { uint64_t s; } fx_rng;
static inline uint64_t fx_next(fx_rng *r) { /* splitmix64 */
    uint64_t z = (r->s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}
static inline double fx_unif(fx_rng *r) { return (double)(fx_next(r) >> 11) * (1.0 / 9007199254740992.0); }
static inline double fx_gauss(fx_rng *r) {
    double u = fx_unif(r), v = fx_unif(r);
    return sqrt(-2.0 * log(u + 1e-300)) * cos(6.283185307179586 * v);
}

static const char *const fx_words[] = {
    "Once", "upon", "a", "time", "there", "was", "little", "girl", "named", "Lily",
    "She", "liked", "to", "play", "in", "the", "park", "with", "her", "dog",
    "One", "day", "they", "found", "big", "red", "ball", "under", "tree", "and",
    "were", "very", "happy", "Tom", "said", "Let's", "go", "home", "now", "sun",
    "was", "warm", "bird", "sang", "song", "so", "everyone", "smiled", "café", "naïve",
    "日本", "über", "🙂", "it's", "don't", "3", "42", "ran", "fast", "slow", "sky", "blue", "end", "."};
#define FX_NWORDS ((int)(sizeof fx_words / sizeof *fx_words))
/* Teacher vocabulary: word i has ids 2i ("w") and 2i+1 ("Ġw"). */
#define FX_VOCAB (2 * FX_NWORDS)

typedef struct {
    char *text;
    int64_t len, loss_start, n_atoms, record;
    int32_t *start, *end;
    float *mass, *tail;
    void *com[CACHE_MAX_LAYERS];
    int32_t *ids;
    uint16_t *lp;
} fx_doc;

/* Builds document i of a fixture (deterministic in seed and i). */
static inline void fx_doc_make(fx_doc *f, uint64_t seed, int64_t i, const cache_meta *m) {
    fx_rng r = {seed * 1000003u + (uint64_t)i};
    int nw = 3 + (int)(fx_next(&r) % 40);
    int64_t d = m->hidden_size, k = m->topk;
    f->text = malloc((size_t)nw * 16);
    f->start = malloc((size_t)nw * 4);
    f->end = malloc((size_t)nw * 4);
    f->mass = malloc((size_t)nw * 4);
    f->tail = malloc((size_t)nw * 4);
    f->ids = malloc((size_t)(nw * k) * 4);
    f->lp = malloc((size_t)(nw * k) * 2);
    for (int j = 0; j < m->n_layers; j++) f->com[j] = malloc((size_t)(nw * d) * 4);
    int64_t pos = 0;
    for (int w = 0; w < nw; w++) {
        const char *word = fx_words[fx_next(&r) % FX_NWORDS];
        f->start[w] = (int32_t)pos;
        if (w) f->text[pos++] = ' ';
        memcpy(f->text + pos, word, strlen(word));
        pos += (int64_t)strlen(word);
        f->end[w] = (int32_t)pos;
        f->mass[w] = (float)(0.01 + 2.0 * fx_unif(&r));
        for (int j = 0; j < m->n_layers; j++)
            for (int64_t c = 0; c < d; c++) {
                double scale = (c % 97 == 5) ? 30.0 : 1.0; /* outlier channels */
                float v = (float)(fx_gauss(&r) * scale);
                void *base = f->com[j];
                if (m->hidden_dtype == CACHE_F32) ((float *)base)[w * d + c] = v;
                else if (m->hidden_dtype == CACHE_F16) ((uint16_t *)base)[w * d + c] = sra_f32_to_f16(v);
                else ((uint16_t *)base)[w * d + c] = sra_f32_to_bf16(v);
            }
        /* softmax over the whole fixture vocabulary, keep the top k */
        double p[FX_VOCAB], z = 0;
        for (int v = 0; v < FX_VOCAB; v++) { p[v] = exp(3.0 * fx_gauss(&r)); z += p[v]; }
        double kept = 0;
        for (int64_t t = 0; t < k; t++) {
            int best = -1;
            for (int v = 0; v < FX_VOCAB; v++)
                if (p[v] >= 0 && (best < 0 || p[v] > p[best])) best = v;
            f->ids[w * k + t] = best;
            f->lp[w * k + t] = sra_f32_to_f16((float)log(p[best] / z));
            kept += p[best] / z;
            p[best] = -1;
        }
        f->tail[w] = (float)(1.0 - kept);
    }
    f->len = pos;
    f->n_atoms = nw;
    f->record = 2 * i + 1; /* gaps: as if every other record were skipped */
    f->loss_start = (i % 2 && nw > 2) ? f->start[2] : 0;
}

static inline void fx_doc_view(const fx_doc *f, const cache_meta *m, cache_doc *d) {
    memset(d, 0, sizeof *d);
    d->record = f->record;
    d->text = f->text;
    d->text_len = f->len;
    d->loss_start = f->loss_start;
    d->n_atoms = f->n_atoms;
    d->atom_start = f->start;
    d->atom_end = f->end;
    d->mass = f->mass;
    for (int j = 0; j < m->n_layers; j++) d->com[j] = f->com[j];
    d->topk_ids = f->ids;
    d->topk_logprob = f->lp;
    d->tail_mass = f->tail;
}

static inline void fx_doc_free(fx_doc *f, const cache_meta *m) {
    free(f->text); free(f->start); free(f->end); free(f->mass); free(f->tail);
    free(f->ids); free(f->lp);
    for (int j = 0; j < m->n_layers; j++) free(f->com[j]);
}

/* A minimal tokenizer.json whose vocab matches FX ids (for display). */
static inline char *fx_tokenizer_json(void) {
    size_t cap = 64 * 1024, n = 0;
    char *s = malloc(cap);
    n += (size_t)snprintf(s + n, cap - n,
                          "{\"version\":\"1.0\",\"added_tokens\":[],\"model\":{\"type\":\"BPE\",\"vocab\":{");
    for (int i = 0; i < FX_NWORDS; i++) {
        n += (size_t)snprintf(s + n, cap - n, "%s\"%s\":%d,\"\\u0120%s\":%d", i ? "," : "",
                              fx_words[i], 2 * i, fx_words[i], 2 * i + 1);
    }
    snprintf(s + n, cap - n, "},\"merges\":[]}}");
    return s;
}

/* Fills a meta for a fixture; strings point to static storage. */
static inline void fx_meta(cache_meta *m, cache_dtype dt, int n_layers, int64_t d, int64_t k,
                           const char *tok_json, const char *cfg_json) {
    memset(m, 0, sizeof *m);
    m->created = "2026-01-01T00:00:00Z";
    m->teacher_name = "fixture-teacher";
    m->teacher_config_sha256 = "0000000000000000000000000000000000000000000000000000000000000000";
    m->teacher_weights_sha256 = "1111111111111111111111111111111111111111111111111111111111111111  model.safetensors\n";
    m->teacher_vocab_size = FX_VOCAB;
    m->atoms = "word";
    m->mass = "attn:-1";
    m->n_layers = n_layers;
    for (int j = 0; j < n_layers; j++) m->layers[j] = j == 0 ? CACHE_LAYER_FINAL : j;
    m->hidden_size = d;
    m->hidden_dtype = dt;
    m->topk = k;
    m->temperature = 1.0;
    m->dataset_sha256 = "2222222222222222222222222222222222222222222222222222222222222222";
    m->record_start = 0;
    m->record_end = 0;
    m->shard_index = 0;
    m->shard_count = 1;
    m->settings_json = "{\"fixture\":true}";
    m->teacher_tokenizer_json = (const uint8_t *)tok_json;
    m->teacher_tokenizer_len = strlen(tok_json);
    m->teacher_config_json = (const uint8_t *)cfg_json;
    m->teacher_config_len = strlen(cfg_json);
}

#endif
