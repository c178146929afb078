/*
 * sra-generate - continue a prompt with a teacher checkpoint: the quick
 * proof that a model folder loads and runs (issue 5).
 *
 *   sra-generate --model DIR --prompt TEXT [--steps N] [--temperature T]
 *                [--top-p P] [--seed S] [--ids] [--stop-eos]
 *
 * DIR holds config.json, model.safetensors (or an index and shards) and
 * tokenizer.json. The prompt is encoded with the tokenizer's special tokens
 * (BOS where its post-processor adds one). Temperature 0 (the default) is
 * greedy decoding; otherwise tokens are sampled from softmax(logits / T)
 * restricted to the smallest set of most probable tokens whose mass reaches
 * top-p (default 1: no restriction), with a seeded generator so a run can
 * be repeated. Prints the prompt and continuation as text, or with --ids the
 * generated ids; --samples N makes N of them (seeds S, S+1, ...), and
 * --jsonl prints each as a JSON line, special tokens left out: data sampled
 * from the teacher itself (issue 9). It does not stop at EOS unless --stop-eos is given.
 */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "teacher.h"
#include "tokenizer.h"
#include "util.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: sra-generate --model DIR --prompt TEXT [options]\n"
            "  --steps N          tokens to generate (default 32)\n"
            "  --temperature T    0 = greedy (default 0)\n"
            "  --top-p P          nucleus sampling mass, 0 < P <= 1 (default 1)\n"
            "  --seed S           random seed for sampling (default 1)\n"
            "  --ids              print the generated ids instead of text\n"
            "  --stop-eos         stop after the model's EOS token\n"
            "  --samples N        N continuations, with seeds S, S+1, ... (default 1)\n"
            "  --jsonl            print each as a JSON line {\"text\": ..., \"seed\": ...}, special tokens\n"
            "                     left out (training data for sra-extract / sra-train)\n"
            "example: sra-generate --model ../shared/models/tinystories-656k --prompt \"Once upon a time\" --steps 40\n");
}

/* xorshift64*: a small, repeatable generator. */
static double rand01(uint64_t *s) {
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return (double)((*s * 0x2545F4914F6CDD1Dull) >> 11) / 9007199254740992.0;
}

typedef struct { float p; int32_t id; } cand;
static int by_p_desc(const void *a, const void *b) {
    const cand *x = a, *y = b;
    return x->p < y->p ? 1 : x->p > y->p ? -1 : (x->id > y->id) - (x->id < y->id);
}

static int32_t pick(const float *logits, int V, double temp, double top_p, uint64_t *rng, cand *buf) {
    int32_t best = 0;
    for (int i = 1; i < V; i++) if (logits[i] > logits[best]) best = i;
    if (temp <= 0) return best;
    double sum = 0;
    for (int i = 0; i < V; i++) {
        buf[i].p = (float)exp((logits[i] - logits[best]) / temp);
        buf[i].id = i;
        sum += buf[i].p;
    }
    int n = V;
    if (top_p < 1) {
        qsort(buf, (size_t)V, sizeof *buf, by_p_desc);
        double acc = 0;
        for (n = 0; n < V && acc < top_p * sum; n++) acc += buf[n].p;
        sum = acc;
    }
    double r = rand01(rng) * sum, acc = 0;
    for (int i = 0; i < n; i++) {
        acc += buf[i].p;
        if (r < acc) return buf[i].id;
    }
    return buf[n - 1].id;
}

static int parse_num(const char *flag, const char *s, double lo, double hi, double *out) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || *end || errno || !(v >= lo && v <= hi)) {
        fprintf(stderr, "sra-generate: %s %s: expected a number in [%g, %g]\n", flag, s, lo, hi);
        return -1;
    }
    *out = v;
    return 0;
}

int main(int argc, char **argv) {
    const char *dir = NULL, *prompt = NULL;
    double steps = 32, temp = 0, top_p = 1, seed = 1;
    int want_ids = 0, stop_eos = 0, jsonl = 0;
    double samples = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int more = i + 1 < argc;
        if (!strcmp(a, "--model") && more) dir = argv[++i];
        else if (!strcmp(a, "--prompt") && more) prompt = argv[++i];
        else if (!strcmp(a, "--steps") && more) { if (parse_num(a, argv[++i], 0, 1e6, &steps)) return 2; }
        else if (!strcmp(a, "--temperature") && more) { if (parse_num(a, argv[++i], 0, 100, &temp)) return 2; }
        else if (!strcmp(a, "--top-p") && more) { if (parse_num(a, argv[++i], 1e-9, 1, &top_p)) return 2; }
        else if (!strcmp(a, "--seed") && more) { if (parse_num(a, argv[++i], 0, 1e18, &seed)) return 2; }
        else if (!strcmp(a, "--samples") && more) { if (parse_num(a, argv[++i], 1, 1e7, &samples)) return 2; }
        else if (!strcmp(a, "--jsonl")) jsonl = 1;
        else if (!strcmp(a, "--ids")) want_ids = 1;
        else if (!strcmp(a, "--stop-eos")) stop_eos = 1;
        else if (!strcmp(a, "-h") || !strcmp(a, "--help")) { usage(stdout); return 0; }
        else {
            fprintf(stderr, "sra-generate: unknown or incomplete option '%s'\n", a);
            usage(stderr);
            return 2;
        }
    }
    if (!dir || !prompt) {
        fprintf(stderr, "sra-generate: --model DIR and --prompt TEXT are required\n");
        usage(stderr);
        return 2;
    }
    int rc = 1;
    teacher *t = NULL;
    tok_tokenizer *tk = NULL;
    tok_session *ts = NULL;
    int32_t *ids = NULL;
    float *logits = NULL;
    cand *buf = NULL;
    char tpath[4096];
    snprintf(tpath, sizeof tpath, "%s/tokenizer.json", dir);
    if (tok_load(&tk, tpath)) { fprintf(stderr, "sra-generate: %s\n", tk ? tok_errmsg(tk) : "out of memory"); goto done; }
    if (teacher_load(&t, dir)) { fprintf(stderr, "sra-generate: %s\n", teacher_errmsg(t)); goto done; }
    const cfg_model *c = teacher_config(t);
    if (tok_vocab_size(tk) > c->vocab) {
        fprintf(stderr, "sra-generate: %s has %d tokens but the model's vocab_size is %d\n", tpath,
                tok_vocab_size(tk), c->vocab);
        goto done;
    }
    if (!(ts = tok_session_new(tk))) { fprintf(stderr, "sra-generate: out of memory\n"); goto done; }
    tok_encoding e;
    if (tok_encode(ts, prompt, strlen(prompt), 1, &e)) {
        fprintf(stderr, "sra-generate: --prompt: %s\n", tok_session_error(ts));
        goto done;
    }
    int np = (int)e.n, ns = (int)steps;
    if (np < 1) { fprintf(stderr, "sra-generate: the prompt encodes to no tokens\n"); goto done; }
    if (np + ns > c->max_pos) {
        fprintf(stderr, "sra-generate: %d prompt tokens + %d steps exceed max_position_embeddings %d\n", np, ns,
                c->max_pos);
        goto done;
    }
    ids = malloc((size_t)(np + ns + 1) * sizeof *ids);
    logits = malloc((size_t)c->vocab * sizeof *logits);
    buf = malloc((size_t)c->vocab * sizeof *buf);
    if (!ids || !logits || !buf) { fprintf(stderr, "sra-generate: out of memory\n"); goto done; }
    int32_t *prompt_ids = malloc((size_t)np * sizeof *prompt_ids);
    if (!prompt_ids) { fprintf(stderr, "sra-generate: out of memory\n"); goto done; }
    memcpy(prompt_ids, e.ids, (size_t)np * sizeof *ids);
    for (long smp = 0; smp < (long)samples; smp++) {
        /* sample smp uses seed + smp: any one of them can be made again alone */
        memcpy(ids, prompt_ids, (size_t)np * sizeof *ids);
        uint64_t rng = (uint64_t)(seed + (double)smp) * 0x9E3779B97F4A7C15ull + 0x1234567ull;
        if (teacher_gen_begin(t, np + ns + 1) || (ns > 0 && teacher_gen_step(t, ids, np, logits))) {
            fprintf(stderr, "sra-generate: %s\n", teacher_errmsg(t));
            free(prompt_ids);
            goto done;
        }
        int n = np;
        for (int s = 0; s < ns; s++) {
            int32_t next = pick(logits, c->vocab, temp, top_p, &rng, buf);
            ids[n++] = next;
            if (stop_eos && next == c->eos_id) break;
            if (s + 1 < ns && teacher_gen_step(t, &next, 1, logits)) {
                fprintf(stderr, "sra-generate: %s\n", teacher_errmsg(t));
                free(prompt_ids);
                goto done;
            }
        }
        if (want_ids) {
            for (int i = np; i < n; i++) printf(i > np ? " %d" : "%d", ids[i]);
            printf("\n");
        } else {
            const char *out;
            size_t len;
            if (tok_decode(ts, ids, (size_t)n, jsonl, &out, &len)) {
                fprintf(stderr, "sra-generate: decode: %s\n", tok_session_error(ts));
                free(prompt_ids);
                goto done;
            }
            if (jsonl) { /* one record a line, special tokens left out: data for sra-extract */
                printf("{\"text\": ");
                sra_json_put_string(stdout, out, len);
                printf(", \"seed\": %.0f}\n", seed + (double)smp);
            } else {
                fwrite(out, 1, len, stdout);
                printf("\n");
            }
        }
    }
    free(prompt_ids);
    rc = fflush(stdout) ? 1 : 0;
done:
    free(buf);
    free(logits);
    free(ids);
    tok_session_free(ts);
    tok_free(tk);
    teacher_free(t);
    return rc;
}
