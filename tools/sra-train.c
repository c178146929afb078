/*
 * sra-train - train a student (issue 7: plain language-model training with
 * the student's own tokenizer; distillation losses come with issue 8). The
 * loop is train/trainer.h; this file maps flags and a JSON config onto it.
 *
 *   sra-train --tokenizer PATH --data FILE [--data FILE ...] --out DIR [options]
 *   sra-train --config FILE [options]     (options override the file)
 *
 * Every flag is also a key of the config file: --d-model 128 is
 * {"d_model": 128}; --data and --eval take a list ({"data": ["a.txt"]}).
 */
#include <cJSON.h>
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "dist.h"
#include "layers.h"
#include "trainer.h"
#include "util.h"

typedef enum { K_STR, K_LIST, K_INT, K_I64, K_DBL, K_U64, K_SINT } kind;
typedef struct { const char *flag; kind k; void *p; const char *help; } opt;

#define MAXF 64
static const char *g_data[MAXF], *g_eval[MAXF];

/* SIGTERM / SIGINT: the first asks the trainer to stop after the current
 * step with a checkpoint (trainer.h, Stop); one more, two seconds or
 * later, ends the process at once (sooner ones are the same request
 * delivered twice, e.g. by SLURM to the process and by mpirun, which
 * forwards it). Only async-signal-safe calls here. */
static volatile sig_atomic_t g_stop;
static struct timespec g_stop_t;
static int g_clean; /* the run stopped at a step boundary on every rank */

static void on_signal(int sig) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    if (!g_stop) g_stop_t = now;
    else if (now.tv_sec - g_stop_t.tv_sec >= 2) {
        static const char msg[] = "sra-train: second signal: exiting now without a checkpoint\n";
        ssize_t w = write(2, msg, sizeof msg - 1);
        (void)w;
        _exit(128 + sig);
    }
    g_stop = sig;
}

static void usage(FILE *f, const opt *o, int n) {
    fprintf(f, "usage: sra-train --tokenizer PATH --data FILE [--data FILE ...] --out DIR [options]\n"
               "       sra-train --config FILE [options]   (flags override the file; keys = flags with - -> _)\n");
    for (int i = 0; i < n; i++) fprintf(f, "  --%-18s %s\n", o[i].flag, o[i].help);
    fprintf(f, "  --resume             continue from OUT/ckpt/latest (bit-identical losses)\n"
               "  --threads N          compute threads (default: all cores)\n"
               "  --quiet              no progress line or summaries\n"
               "example:\n"
               "  sra-train --tokenizer ../shared/tokenizers/gpt2/tokenizer.json --data ../shared/corpus/tinyshakespeare.txt \\\n"
               "            --eval held-out.txt --d-model 64 --layers 2 --heads 4 --steps 300 --out runs/shakespeare\n");
}

/* Sets option o from a string (flags) or from a JSON value (config file). */
static int set_opt(const opt *o, const char *s, const cJSON *j, int *n_list) {
    char *end;
    errno = 0;
    switch (o->k) {
    case K_STR:
        if (j && !cJSON_IsString(j)) return -1;
        *(const char **)o->p = j ? j->valuestring : s;
        return 0;
    case K_LIST: {
        const char **list = o->p;
        if (j) {
            if (!cJSON_IsArray(j)) return -1;
            *n_list = 0;
            for (const cJSON *x = j->child; x; x = x->next) {
                if (!cJSON_IsString(x) || *n_list >= MAXF) return -1;
                list[(*n_list)++] = x->valuestring;
            }
        } else {
            if (*n_list >= MAXF) return -1;
            list[(*n_list)++] = s;
        }
        return 0;
    }
    case K_INT: case K_I64: case K_U64: case K_SINT: {
        double d;
        if (j) {
            if (!cJSON_IsNumber(j) && !cJSON_IsBool(j)) return -1;
            d = cJSON_IsBool(j) ? cJSON_IsTrue(j) : j->valuedouble;
        } else {
            d = strtod(s, &end);
            if (errno || end == s || *end) return -1;
        }
        if (d != (double)(long long)d || (d < 0 && o->k != K_SINT)) return -1;
        if (o->k == K_SINT) { if (d < INT_MIN || d > INT_MAX) return -1; *(int *)o->p = (int)d; }
        else if (o->k == K_INT) { if (d > INT_MAX) return -1; *(int *)o->p = (int)d; }
        else if (o->k == K_I64) *(int64_t *)o->p = (int64_t)d;
        else *(uint64_t *)o->p = (uint64_t)d;
        return 0;
    }
    case K_DBL:
        if (j) {
            if (!cJSON_IsNumber(j)) return -1;
            *(double *)o->p = j->valuedouble;
        } else {
            *(double *)o->p = strtod(s, &end);
            if (errno || end == s || *end) return -1;
        }
        return 0;
    }
    return -1;
}

static int train_main(int argc, char **argv) {
    trn_config c;
    trn_config_default(&c);
    c.progress = stderr;
    c.data = g_data;
    c.eval = g_eval;
    int threads = 0;
    const opt o[] = {
        {"tokenizer", K_STR, &c.tokenizer, "the student's tokenizer.json (required)"},
        {"data", K_LIST, (void *)g_data, "training text: .txt or .jsonl (repeat for more files)"},
        {"eval", K_LIST, (void *)g_eval, "held-out text for loss, perplexity and bits/byte"},
        {"out", K_STR, &c.out, "output folder (metrics, checkpoints, final/)"},
        {"text-field", K_STR, &c.text_field, "JSONL field with the text (text)"},
        {"max-bytes", K_I64, &c.max_bytes, ".txt documents are cut at this many bytes (65536)"},
        {"cache", K_STR, &c.cache, "distill from a teacher cache (sra-extract output folder) instead of --data"},
        {"cache-layer", K_SINT, &c.cache_layer, "stored CoM layer to align with (-1 = final norm)"},
        {"method", K_STR, &c.method, "ce | sra | uld | mined, with --cache (sra)"},
        {"preset", K_STR, &c.preset, "paper (method.md §9, the default for sra) | v1 (§1-§8; the default for ce, uld, mined)"},
        {"alpha", K_DBL, &c.alpha, "weight of the distillation terms: (1-a) CE + a (...) (paper 0.5, v1 0.2)"},
        {"beta", K_DBL, &c.beta, "weight of L_span (1)"},
        {"gamma", K_DBL, &c.gamma, "weight of L_geo (paper 50, v1 1)"},
        {"logit-weight", K_DBL, &c.logit_weight, "weight of L_logit inside the alpha term; 0 = no-logit ablation (1)"},
        {"tau", K_DBL, &c.tau, "temperature of the span-logit KL (paper 2, v1 1)"},
        {"tau2", K_SINT, &c.tau2, "1: the span-logit KL times tau^2 (paper 0, v1 1)"},
        {"span-logits", K_STR, &c.span_logits, "head: each LM head on its span CoMs, KL summed over spans (paper) | next: the teacher's next-token top-k at span ends (v1)"},
        {"min-shared-mass", K_DBL, &c.min_shared_mass, "next: skip spans whose teacher top-k has less shared mass (0.05)"},
        {"pool", K_STR, &c.pool, "shared vocabulary: exact (equal vocabulary strings; paper) | firstword (v1) | strip"},
        {"student-mass", K_STR, &c.student_mass, "the student's token weights: last | attn | uniform; must be the cache's rule (the cache's)"},
        {"spans", K_STR, &c.spans, "response: spans only after the prompt (paper) | all (v1)"},
        {"span-weights", K_STR, &c.span_weights, "salience (teacher span mass) | uniform (the paper's WSL off) (salience)"},
        {"layer-map", K_STR, &c.layer_map, "L_span layer pairs TEACHER:STUDENT[:W],... (-1 = final norm; the cache needs --layers) (CACHE-LAYER:-1)"},
        {"boundaries", K_STR, &c.boundaries, "canonical (method.md §1) | exact (raw student token ends, §9.7) (canonical)"},
        {"span-loss", K_STR, &c.span_loss, "L_span: cos | mse (cos)"},
        {"from", K_STR, &c.from, "start from a Hugging Face Llama folder instead of a new model"},
        {"d-model", K_INT, &c.d_model, "width of a new model (128)"},
        {"layers", K_INT, &c.layers, "blocks (4)"},
        {"heads", K_INT, &c.heads, "attention heads (4)"},
        {"kv-heads", K_INT, &c.kv_heads, "key/value heads, dividing heads (= heads)"},
        {"ffn", K_INT, &c.ffn, "MLP width (8/3 d_model rounded up to 32)"},
        {"tie", K_INT, &c.tie, "1: LM head tied to the embedding (1)"},
        {"max-pos", K_INT, &c.max_pos, "max_position_embeddings of a new model (max(seq, 2048))"},
        {"rope-theta", K_DBL, &c.rope_theta, "RoPE base (10000)"},
        {"batch", K_INT, &c.batch, "sequences per micro-batch (8)"},
        {"seq", K_INT, &c.seq, "tokens per sequence (128)"},
        {"accum", K_INT, &c.accum, "micro-batches per step (1)"},
        {"steps", K_I64, &c.steps, "optimizer steps (1000)"},
        {"warmup", K_I64, &c.warmup, "linear warmup steps (50)"},
        {"lr", K_DBL, &c.lr, "peak learning rate (3e-3)"},
        {"min-lr", K_DBL, &c.min_lr, "learning rate at the end of the cosine (3e-4)"},
        {"weight-decay", K_DBL, &c.weight_decay, "AdamW decoupled decay on matrices (0.1)"},
        {"beta1", K_DBL, &c.beta1, "AdamW beta1 (0.9)"},
        {"beta2", K_DBL, &c.beta2, "AdamW beta2 (0.95)"},
        {"eps", K_DBL, &c.eps, "AdamW epsilon (1e-8)"},
        {"clip", K_DBL, &c.clip, "gradient clipping by global norm, 0 = off (1)"},
        {"seed", K_U64, &c.seed, "initialization and data order (1)"},
        {"eval-every", K_I64, &c.eval_every, "steps between evaluations (100)"},
        {"eval-max-windows", K_I64, &c.eval_max_windows, "evaluate on at most this many windows, 0 = all (0)"},
        {"ckpt-every", K_I64, &c.ckpt_every, "steps between checkpoints (500)"},
        {"stop-after", K_I64, &c.stop_after, "stop with a checkpoint after this many steps of this run (0 = off)"},
    };
    const int NO = (int)(sizeof o / sizeof *o);
    cJSON *cfg = NULL;
    /* the config file first, flags after it */
    for (int i = 1; i + 1 < argc; i++)
        if (!strcmp(argv[i], "--config")) {
            size_t n;
            char *text = sra_read_file(argv[i + 1], &n);
            if (!text) { fprintf(stderr, "sra-train: %s: cannot read: %s\n", argv[i + 1], strerror(errno)); return 2; }
            cfg = cJSON_ParseWithLength(text, n);
            free(text);
            if (!cJSON_IsObject(cfg)) { fprintf(stderr, "sra-train: %s: not a JSON object\n", argv[i + 1]); return 2; }
            for (const cJSON *j = cfg->child; j; j = j->next) {
                int k;
                char flag[64];
                snprintf(flag, sizeof flag, "%s", j->string);
                for (char *p = flag; *p; p++) if (*p == '_') *p = '-';
                for (k = 0; k < NO && strcmp(o[k].flag, flag); k++) {}
                if (k == NO) {
                    if (!strcmp(flag, "resume")) { c.resume = cJSON_IsTrue(j); continue; }
                    if (!strcmp(flag, "threads") && cJSON_IsNumber(j)) { threads = (int)j->valuedouble; continue; }
                    fprintf(stderr, "sra-train: %s: unknown key '%s'\n", argv[i + 1], j->string);
                    return 2;
                }
                int *nl = o[k].p == (void *)g_data ? &c.n_data : &c.n_eval;
                if (set_opt(&o[k], NULL, j, nl)) {
                    fprintf(stderr, "sra-train: %s: key '%s' has the wrong type\n", argv[i + 1], j->string);
                    return 2;
                }
            }
        }
    int data_from_flags = 0, eval_from_flags = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { usage(stdout, o, NO); cJSON_Delete(cfg); return 0; }
        if (!strcmp(a, "--resume")) { c.resume = 1; continue; }
        if (!strcmp(a, "--quiet")) { c.progress = NULL; continue; }
        if (strncmp(a, "--", 2) || i + 1 >= argc) {
            fprintf(stderr, "sra-train: %s: %s\n", a, strncmp(a, "--", 2) ? "unexpected argument" : "missing its value");
            usage(stderr, o, NO);
            cJSON_Delete(cfg);
            return 2;
        }
        const char *v = argv[++i];
        if (!strcmp(a, "--config")) continue;
        if (!strcmp(a, "--threads")) { threads = atoi(v); continue; }
        int k;
        for (k = 0; k < NO && strcmp(o[k].flag, a + 2); k++) {}
        if (k == NO) { fprintf(stderr, "sra-train: unknown option '%s'\n", a); usage(stderr, o, NO); cJSON_Delete(cfg); return 2; }
        /* a list given by flags replaces the config file's */
        if (o[k].p == (void *)g_data && !data_from_flags++) c.n_data = 0;
        if (o[k].p == (void *)g_eval && !eval_from_flags++) c.n_eval = 0;
        int *nl = o[k].p == (void *)g_data ? &c.n_data : &c.n_eval;
        if (set_opt(&o[k], v, NULL, nl)) {
            fprintf(stderr, "sra-train: %s '%s': not a valid value (%s)\n", a, v, o[k].help);
            cJSON_Delete(cfg);
            return 2;
        }
    }
    if (!c.tokenizer || (!c.n_data && !c.cache) || !c.out) {
        fprintf(stderr, "sra-train: --tokenizer, --data (or --cache) and --out are required\n");
        usage(stderr, o, NO);
        cJSON_Delete(cfg);
        return 2;
    }
    const int R = dist_rank(), W = dist_world();
    if (threads <= 0 && W > 1) {
        /* ranks x BLAS threads must not exceed the cores: the ranks of one
         * node share its cores (OpenMPI tells how many ranks are local) */
        const char *ls = getenv("OMPI_COMM_WORLD_LOCAL_SIZE");
        long cores = sysconf(_SC_NPROCESSORS_ONLN), local = ls ? atol(ls) : W;
        threads = local > 0 && cores / local > 1 ? (int)(cores / local) : 1;
    }
    if (threads > 0) layers_set_threads(threads);
    if (R != 0) c.progress = NULL; /* rank 0 speaks for the job */
    else if (c.progress && W > 1)
        fprintf(c.progress, "sra-train: rank 0 of %d, %d compute thread%s per rank\n", W, threads, threads == 1 ? "" : "s");
    c.stop = &g_stop;
    trn_report rep;
    sra_err e = {0};
    int rc = trn_run(&c, &rep, &e);
    cJSON_Delete(cfg);
    if (rc == SRA_E_STOPPED && rep.clean_stop) {
        g_clean = 1;
        if (R == 0) fprintf(stderr, "sra-train: %s\n", e.msg);
        return 128 + (g_stop ? g_stop : SIGTERM);
    }
    if (rc) {
        if (W > 1) fprintf(stderr, "sra-train: rank %d of %d: %s\n", R, W, e.msg[0] ? e.msg : "failed");
        else fprintf(stderr, "sra-train: %s\n", e.msg[0] ? e.msg : "failed");
        return rc == SRA_E_STOPPED ? 128 + (g_stop ? g_stop : SIGTERM) : 1;
    }
    if (c.progress)
        fprintf(c.progress, "sra-train: done: %lld steps, loss %.4f -> %.4f, held-out %.4f bits/byte; the student: %s/final\n",
                (long long)rep.steps_done, rep.first_loss, rep.last_loss, rep.eval_bpb, c.out);
    return 0;
}

int main(int argc, char **argv) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    char err[256];
    if (dist_init(&argc, &argv, err, sizeof err)) {
        fprintf(stderr, "sra-train: %s\n", err);
        return 1;
    }
    int rc = train_main(argc, argv);
    /* a failed rank ends the job: the others may wait in a collective
     * that it will never join */
    if (rc && rc != 2 && dist_world() > 1 && !g_clean) dist_abort(rc);
    dist_finalize();
    return rc;
}
