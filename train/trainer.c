/*
 * trainer.c - sra-train's loop: data, model, AdamW, evaluation in bits per
 * byte, metrics, checkpoints and resume (contract: trainer.h).
 */
#include "trainer.h"

#include <cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "adamw.h"
#include "cache_head.h"
#include "checkpoint.h"
#include "dist.h"
#include "distill.h"
#include "loader.h"
#include "vocab.h"
#include "layers.h"
#include "lmdata.h"
#include "model.h"
#include "tokenizer.h"

void trn_config_default(trn_config *c) {
    memset(c, 0, sizeof *c);
    c->max_bytes = 65536;
    c->d_model = 128;
    c->layers = 4;
    c->heads = 4;
    c->tie = 1;
    c->rope_theta = 10000.0;
    c->batch = 8;
    c->seq = 128;
    c->accum = 1;
    c->steps = 1000;
    c->warmup = 50;
    c->lr = 3e-3;
    c->min_lr = 3e-4;
    c->weight_decay = 0.1;
    c->beta1 = 0.9;
    c->beta2 = 0.95;
    c->eps = 1e-8;
    c->clip = 1.0;
    c->seed = 1;
    c->eval_every = 100;
    c->ckpt_every = 500;
    c->eval_max_windows = 0;
    c->cache_layer = -1;
    c->method = "sra";
    c->alpha = c->beta = c->gamma = c->tau = c->logit_weight = NAN; /* the preset's (trn_resolve) */
    c->min_shared_mass = 0.05;
    c->tau2 = -1;
    c->span_loss = "cos";
}

/* The two presets (method.md §9 and §1-§8): every key a preset decides. */
typedef struct {
    const char *name;
    double alpha, beta, gamma, tau, logit_weight;
    int tau2;
    const char *span_logits, *pool, *mass, *spans, *span_weights, *boundaries;
} preset;
static const preset PRESETS[] = {
    /* paper: L = 0.5 CE + 0.5 (L_span + 50 L_geo + L_logit), tau 2 without
     * tau^2, head on CoMs over exact-string pairs, last-query weights,
     * response-only spans, salience, canonical boundaries (§9.7 keeps §1) */
    {"paper", 0.5, 1.0, 50.0, 2.0, 1.0, 0, "head", "exact", "last", "response", "salience", "canonical"},
    /* v1: method.md §5 defaults */
    {"v1", 0.2, 1.0, 1.0, 1.0, 1.0, 1, "next", "firstword", "attn", "all", "salience", "canonical"},
};

static const preset *find_preset(const char *name) {
    for (size_t i = 0; i < sizeof PRESETS / sizeof *PRESETS; i++)
        if (!strcmp(PRESETS[i].name, name)) return &PRESETS[i];
    return NULL;
}

/* 1 if s is one of the '|'-separated words of set */
static int one_of(const char *s, const char *set) {
    size_t n = strlen(s);
    for (const char *p = set; *p;) {
        const char *q = strchr(p, '|');
        size_t m = q ? (size_t)(q - p) : strlen(p);
        if (m == n && !strncmp(p, s, n)) return 1;
        if (!q) break;
        p = q + 1;
    }
    return 0;
}

int trn_resolve(trn_config *c, sra_err *e) {
    const char *meth = c->method ? c->method : "sra";
    if (!c->preset) c->preset = strcmp(meth, "sra") ? "v1" : "paper";
    const preset *p = find_preset(c->preset);
    if (!p) return sra_err_set(e, SRA_E_ARG, "--preset '%s': expected paper or v1", c->preset);
    if (isnan(c->alpha)) c->alpha = p->alpha;
    if (isnan(c->beta)) c->beta = p->beta;
    if (isnan(c->gamma)) c->gamma = p->gamma;
    if (isnan(c->tau)) c->tau = p->tau;
    if (isnan(c->logit_weight)) c->logit_weight = p->logit_weight;
    if (c->tau2 < 0) c->tau2 = p->tau2;
    if (!c->span_logits) c->span_logits = p->span_logits;
    if (!c->pool) c->pool = p->pool;
    if (!c->spans) c->spans = p->spans;
    if (!c->span_weights) c->span_weights = p->span_weights;
    if (!c->boundaries) c->boundaries = p->boundaries;
    if (!one_of(c->span_logits, "head|next"))
        return sra_err_set(e, SRA_E_ARG, "--span-logits '%s': expected head or next", c->span_logits);
    if (!one_of(c->pool, "exact|firstword|strip"))
        return sra_err_set(e, SRA_E_ARG, "--pool '%s': expected exact, firstword or strip", c->pool);
    if (c->student_mass && !one_of(c->student_mass, "last|attn|uniform"))
        return sra_err_set(e, SRA_E_ARG, "--student-mass '%s': expected last, attn or uniform", c->student_mass);
    if (!one_of(c->spans, "response|all"))
        return sra_err_set(e, SRA_E_ARG, "--spans '%s': expected response or all", c->spans);
    if (!one_of(c->span_weights, "salience|uniform"))
        return sra_err_set(e, SRA_E_ARG, "--span-weights '%s': expected salience or uniform", c->span_weights);
    if (!one_of(c->boundaries, "canonical|exact"))
        return sra_err_set(e, SRA_E_ARG, "--boundaries '%s': expected canonical or exact", c->boundaries);
    if (c->tau2 > 1) return sra_err_set(e, SRA_E_ARG, "--tau2 %d: expected 0 or 1", c->tau2);
    /* the head term is defined on id pairs: pooled keys would need the
     * teacher's full softmax, i.e. every row of its head (method.md §9.2) */
    if (!strcmp(meth, "sra") && !strcmp(c->span_logits, "head") && strcmp(c->pool, "exact"))
        return sra_err_set(e, SRA_E_ARG, "--span-logits head works on the exact-string id pairs: it needs --pool "
                           "exact (--pool %s pools ids into keys; use it with --span-logits next)", c->pool);
    return 0;
}

/* The teacher head rows of the shared id pairs (vocab.h, pool exact) as
 * float32 (n_pairs, dT): only those rows are read (cache_head.h). */
static int head_load(const ldr *ld, const char *dir, const vocab_map *v, int dT, float **out, char *err,
                     size_t errlen) {
    cache_head *h = NULL;
    int rc = ldr_head_open(ld, &h, err, errlen);
    if (rc == SRA_E_MISSING)
        snprintf(err, errlen, "%s: the cache has no teacher LM head (%s), which --span-logits head (the paper "
                 "preset) needs: re-extract with this sra-extract (it stores the head), or train with --preset v1 "
                 "or --span-logits next", dir, CACHE_HEAD_FILE);
    else if (!rc && !(*out = malloc(((size_t)v->n_pairs * dT + 1) * sizeof(float)))) {
        snprintf(err, errlen, "out of memory for %d teacher head rows", v->n_pairs);
        rc = -1;
    } else if (!rc && (rc = cache_head_rows(h, v->pair_t, v->n_pairs, *out)))
        snprintf(err, errlen, "%s", cache_head_errmsg(h));
    cache_head_close(h);
    return rc ? -1 : 0;
}

/* --layer-map "T:S[:w],...": teacher layer (a value of the cache's
 * layers: -1 final norm, 0 embeddings, i after block i) : student layer
 * (-1 final norm, 0..L) [: weight > 0, default 1]; weights normalized to
 * sum 1. Empty or NULL: one pair, cache_layer : -1. Returns the count or
 * -1 with err. */
static int parse_layer_map(const char *s, int cache_layer, int *tl, int *sl, double *w, char *err, size_t errlen) {
    if (!s || !*s) { tl[0] = cache_layer; sl[0] = -1; w[0] = 1.0; return 1; }
    int n = 0;
    double tot = 0;
    for (const char *p = s; *p;) {
        char *e1, *e2, *e3;
        long a = strtol(p, &e1, 10);
        long b = e1 != p && *e1 == ':' ? strtol(e1 + 1, &e2, 10) : 0;
        if (e1 == p || *e1 != ':' || e2 == e1 + 1 || n == DST_MAX_PAIRS) goto bad;
        double x = 1.0;
        if (*e2 == ':') {
            x = strtod(e2 + 1, &e3);
            if (e3 == e2 + 1 || !(x > 0) || !isfinite(x)) goto bad;
            e2 = e3;
        }
        if (*e2 && *e2 != ',') goto bad;
        tl[n] = (int)a; sl[n] = (int)b; w[n] = x; tot += x; n++;
        p = *e2 ? e2 + 1 : e2;
        if (*e2 && !*p) goto bad;
    }
    for (int i = 0; i < n; i++) w[i] /= tot;
    return n;
bad:
    snprintf(err, errlen, "--layer-map '%s': expected up to %d comma-separated TEACHER:STUDENT[:WEIGHT] pairs of "
             "integers (-1 = final norm), e.g. -1:-1 or 4:2,-1:-1", s, DST_MAX_PAIRS);
    return -1;
}

static cJSON *str_list(const char *const *v, int n) {
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; a && i < n; i++) cJSON_AddItemToArray(a, cJSON_CreateString(v[i]));
    return a;
}

char *trn_config_json(const trn_config *c) {
    cJSON *o = cJSON_CreateObject();
    if (!o) return NULL;
    cJSON_AddItemToObject(o, "data", str_list(c->data, c->n_data));
    cJSON_AddItemToObject(o, "eval", str_list(c->eval, c->n_eval));
    cJSON_AddStringToObject(o, "tokenizer", c->tokenizer ? c->tokenizer : "");
    cJSON_AddStringToObject(o, "text_field", c->text_field ? c->text_field : "text");
    cJSON_AddNumberToObject(o, "max_bytes", (double)c->max_bytes);
    cJSON_AddStringToObject(o, "cache", c->cache ? c->cache : "");
    cJSON_AddNumberToObject(o, "cache_layer", c->cache_layer);
    cJSON_AddStringToObject(o, "method", c->method ? c->method : "sra");
    cJSON_AddNumberToObject(o, "alpha", c->alpha);
    cJSON_AddNumberToObject(o, "beta", c->beta);
    cJSON_AddNumberToObject(o, "gamma", c->gamma);
    cJSON_AddNumberToObject(o, "tau", c->tau);
    cJSON_AddNumberToObject(o, "min_shared_mass", c->min_shared_mass);
    cJSON_AddNumberToObject(o, "logit_weight", c->logit_weight);
    cJSON_AddStringToObject(o, "pool", c->pool ? c->pool : "");
    cJSON_AddStringToObject(o, "span_loss", c->span_loss ? c->span_loss : "cos");
    cJSON_AddStringToObject(o, "preset", c->preset ? c->preset : "");
    cJSON_AddStringToObject(o, "span_logits", c->span_logits ? c->span_logits : "");
    cJSON_AddStringToObject(o, "student_mass", c->student_mass ? c->student_mass : "");
    cJSON_AddNumberToObject(o, "tau2", c->tau2);
    cJSON_AddStringToObject(o, "spans", c->spans ? c->spans : "");
    cJSON_AddStringToObject(o, "span_weights", c->span_weights ? c->span_weights : "");
    cJSON_AddStringToObject(o, "layer_map", c->layer_map ? c->layer_map : "");
    cJSON_AddStringToObject(o, "boundaries", c->boundaries ? c->boundaries : "");
    cJSON_AddStringToObject(o, "from", c->from ? c->from : "");
    cJSON_AddNumberToObject(o, "d_model", c->d_model);
    cJSON_AddNumberToObject(o, "layers", c->layers);
    cJSON_AddNumberToObject(o, "heads", c->heads);
    cJSON_AddNumberToObject(o, "kv_heads", c->kv_heads);
    cJSON_AddNumberToObject(o, "ffn", c->ffn);
    cJSON_AddBoolToObject(o, "tie", c->tie);
    cJSON_AddNumberToObject(o, "max_pos", c->max_pos);
    cJSON_AddNumberToObject(o, "rope_theta", c->rope_theta);
    cJSON_AddNumberToObject(o, "batch", c->batch);
    cJSON_AddNumberToObject(o, "seq", c->seq);
    cJSON_AddNumberToObject(o, "accum", c->accum);
    cJSON_AddNumberToObject(o, "steps", (double)c->steps);
    cJSON_AddNumberToObject(o, "warmup", (double)c->warmup);
    cJSON_AddNumberToObject(o, "lr", c->lr);
    cJSON_AddNumberToObject(o, "min_lr", c->min_lr);
    cJSON_AddNumberToObject(o, "weight_decay", c->weight_decay);
    cJSON_AddNumberToObject(o, "beta1", c->beta1);
    cJSON_AddNumberToObject(o, "beta2", c->beta2);
    cJSON_AddNumberToObject(o, "eps", c->eps);
    cJSON_AddNumberToObject(o, "clip", c->clip);
    cJSON_AddNumberToObject(o, "seed", (double)c->seed);
    cJSON_AddNumberToObject(o, "eval_every", (double)c->eval_every);
    cJSON_AddNumberToObject(o, "ckpt_every", (double)c->ckpt_every);
    cJSON_AddNumberToObject(o, "eval_max_windows", (double)c->eval_max_windows);
    cJSON_AddStringToObject(o, "out", c->out ? c->out : "");
    char *s = cJSON_Print(o);
    cJSON_Delete(o);
    return s;
}

/* Keys that may change on resume: they do not change what a step computes. */
static int resumable_key(const char *k) {
    return !strcmp(k, "steps") || !strcmp(k, "eval_every") || !strcmp(k, "ckpt_every") || !strcmp(k, "out") ||
           !strcmp(k, "eval_max_windows");
}

/* Evaluation over the held-out stream: mean NLL per token and bits/byte.
 * With several ranks, rank r takes the batches of windows b with
 * b % world == r and the sums are added over ranks. Returns 0, -1 out of
 * memory, -2 with err (a collective failed). */
static int evaluate(model *m, const lmd_stream *ev, int B, int T, int64_t max_windows, double *loss, double *bpb,
                    int64_t *tokens, int64_t *bytes, const volatile sig_atomic_t *stop, char *err, size_t errlen) {
    size_t W = lmd_eval_windows(ev, T);
    if (max_windows > 0 && (size_t)max_windows < W) W = (size_t)max_windows;
    int32_t *ids = malloc((size_t)B * T * sizeof *ids), *tg = malloc((size_t)B * T * sizeof *tg);
    uint32_t *tb = malloc((size_t)B * T * sizeof *tb);
    if (!ids || !tg || !tb) { free(ids); free(tg); free(tb); return -1; }
    double nll = 0;
    int64_t nt = 0, nb = 0;
    for (size_t w0 = 0; w0 < W; w0 += (size_t)B) {
        if ((int)((w0 / (size_t)B) % (size_t)dist_world()) != dist_rank()) continue;
        int nb_rows = W - w0 < (size_t)B ? (int)(W - w0) : B;
        for (int r = 0; r < nb_rows; r++) {
            lmd_eval_window(ev, w0 + r, T, ids + (size_t)r * T, tg + (size_t)r * T, tb + (size_t)r * T);
            for (int j = 0; j < T; j++) nb += tb[(size_t)r * T + j];
        }
        if (model_forward(m, ids, tg, NULL, nb_rows, T, 0.0f) < 0) { free(ids); free(tg); free(tb); return -1; }
        nll += m->loss_sum;
        nt += m->loss_count;
    }
    free(ids); free(tg); free(tb);
    double sums[3] = {nll, (double)nt, (double)nb};
    if (dist_sum_f64(sums, 3, "evaluation sums", stop, NULL, err, errlen)) return -2;
    nll = sums[0];
    nt = (int64_t)sums[1];
    nb = (int64_t)sums[2];
    *loss = nt ? nll / (double)nt : NAN;
    *bpb = nb ? nll / log(2.0) / (double)nb : NAN;
    *tokens = nt;
    *bytes = nb;
    return 0;
}


/* Evaluates and writes the metrics line of step (mf NULL: a rank other
 * than 0 writes nothing) and a summary line when say. Returns 0 or an
 * error code with e set. */
static int eval_log(model *m, const lmd_stream *ev, const trn_config *c, int64_t step, FILE *mf, trn_report *rep,
                    int say, sra_err *e) {
    double el, bpb;
    int64_t et, eb;
    char err[600];
    int rc = evaluate(m, ev, c->batch, c->seq, c->eval_max_windows, &el, &bpb, &et, &eb, c->stop, err, sizeof err);
    if (rc == -1) return sra_err_set(e, SRA_E_NOMEM, "out of memory in evaluation");
    if (rc) return sra_err_set(e, SRA_E_IO, "%s", err);
    rep->eval_loss = el;
    rep->eval_bpb = bpb;
    if (mf)
        fprintf(mf, "{\"step\": %lld, \"eval_loss\": %.6f, \"eval_ppl\": %.4f, \"eval_bpb\": %.6f, \"eval_tokens\": %lld, "
                "\"eval_bytes\": %lld}\n", (long long)step, el, exp(el), bpb, (long long)et, (long long)eb);
    if (say && c->progress)
        fprintf(c->progress, "sra-train: step %lld: held-out loss %.4f, ppl %.2f, %.4f bits/byte\n", (long long)step,
                el, exp(el), bpb);
    return 0;
}

/* Keeps the lines of metrics.jsonl whose "step" is <= upto (resume). */
static int trim_metrics(const char *path, int64_t upto, sra_err *e) {
    size_t n;
    char *text = sra_read_file(path, &n);
    if (!text) return 0;
    char tmp[4400];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f) { free(text); return sra_err_set(e, SRA_E_IO, "%s: cannot write: %s", tmp, strerror(errno)); }
    for (char *line = text, *nl; *line; line = nl + 1) {
        nl = strchr(line, '\n');
        if (!nl) break;
        const char *sp = strstr(line, "\"step\":");
        long long st = sp ? strtoll(sp + 7, NULL, 10) : 0;
        if (st <= upto) fwrite(line, 1, (size_t)(nl - line + 1), f);
    }
    free(text);
    if (fclose(f) || rename(tmp, path)) return sra_err_set(e, SRA_E_IO, "%s: cannot write", path);
    return 0;
}

/* A collective failed (a peer died, a signal): the message says where to
 * resume from. */
static int stopped_in(sra_err *e, const char *why, const char *out, int64_t saved) {
    if (saved < 0) return sra_err_set(e, SRA_E_STOPPED, "%s; no checkpoint was written: start again", why);
    return sra_err_set(e, SRA_E_STOPPED, "%s; the newest checkpoint is %s/ckpt/step-%08lld: run the same command "
                       "with --resume to continue from it", why, out, (long long)saved);
}

/* A cheap fingerprint of float arrays (the ranks' weights must stay
 * identical: checked at every checkpoint). */
static uint64_t fingerprint(uint64_t h, const float *x, size_t n) {
    const uint32_t *u = (const uint32_t *)x;
    for (size_t i = 0; i < n; i++) h = (h ^ u[i]) * 0x100000001B3ull;
    return h;
}

int trn_run(const trn_config *c0, trn_report *rep, sra_err *e) {
    memset(rep, 0, sizeof *rep);
    trn_config rcfg = *c0; /* the resolved configuration: what runs and what train_config.json records */
    const trn_config *c = &rcfg;
    int rr = trn_resolve(&rcfg, e);
    if (rr) return rr;
    /* data parallelism (dist.h): rank R of W; rank 0 writes every file */
    const int R = dist_rank(), W = dist_world(), lead = R == 0;
    rep->eval_loss = rep->eval_bpb = NAN;
    if (!c->tokenizer || (!c->n_data && !c->cache) || !c->out)
        return sra_err_set(e, SRA_E_ARG, "need --tokenizer, --data (or --cache) and --out");
    int distill = c->cache != NULL;
    int meth = dst_method_parse(c->method ? c->method : "sra"), pool = vocab_pool_parse(c->pool ? c->pool : "firstword");
    if (meth < 0) return sra_err_set(e, SRA_E_ARG, "--method '%s': expected ce, sra, uld or mined", c->method);
    if (pool < 0) return sra_err_set(e, SRA_E_ARG, "--pool '%s': expected exact, firstword or strip", c->pool);
    /* layer pairs of L_span, and the cache layers to load: the pairs'
     * teacher layers, then the final norm for the head term if no pair has it */
    int pair_t[DST_MAX_PAIRS], pair_s[DST_MAX_PAIRS], n_load, head_slot = -1;
    int32_t load[DST_MAX_PAIRS + 1];
    double pair_w[DST_MAX_PAIRS];
    int head_logits = distill && meth == DST_SRA && !strcmp(c->span_logits, "head");
    char perr[400];
    int n_pairs = distill ? parse_layer_map(c->layer_map, c->cache_layer, pair_t, pair_s, pair_w, perr, sizeof perr) : 1;
    if (n_pairs < 0) return sra_err_set(e, SRA_E_ARG, "%s", perr);
    if (n_pairs > 1 && meth != DST_SRA)
        return sra_err_set(e, SRA_E_ARG, "--layer-map: several layer pairs are for --method sra (L_span)");
    for (n_load = 0; n_load < n_pairs; n_load++) load[n_load] = pair_t[n_load];
    for (int i = 0; i < n_pairs; i++) if (pair_t[i] == -1) head_slot = i;
    if (head_logits && head_slot < 0) { head_slot = n_load; load[n_load++] = -1; }
    if (c->span_loss && strcmp(c->span_loss, "cos") && strcmp(c->span_loss, "mse"))
        return sra_err_set(e, SRA_E_ARG, "--span-loss '%s': expected cos or mse", c->span_loss);
    if (c->alpha < 0 || c->alpha > 1 || c->tau <= 0)
        return sra_err_set(e, SRA_E_ARG, "--alpha must be in [0, 1] and --tau > 0");
    if (c->batch < 1 || c->seq < 2 || c->accum < 1 || c->steps < 0 || c->lr <= 0)
        return sra_err_set(e, SRA_E_ARG, "batch, seq (>= 2), accum must be positive and lr > 0");
    tok_tokenizer *tok = NULL;
    lmd_stream tr = {0}, ev = {0};
    model m = {0};
    float *am = NULL, *av = NULL;
    int32_t *ids = NULL, *tg = NULL;
    ldr *ld = NULL;
    vocab_map voc = {0};
    dst_ctx *dx = NULL;
    ldr_doc *docs = NULL;
    float *P = NULL, *dP = NULL, *Pm = NULL, *Pv = NULL, *head_T = NULL;
    int dT = 0;
    char *cfg_json = NULL, *state = NULL;
    FILE *mf = NULL;
    int rc = 0;
    char err[1200], path[4300];
    if (tok_load(&tok, c->tokenizer)) {
        rc = sra_err_set(e, SRA_E_ARG, "%s: %s", c->tokenizer, tok ? tok_errmsg(tok) : "out of memory");
        goto out;
    }
    data_opts o = {.text_field = c->text_field, .max_bytes = (size_t)c->max_bytes};
    if (distill) {
        if (ldr_open(&ld, c->cache, load, n_load, c->seed, err, sizeof err) ||
            ldr_set_part(ld, R, W, (int64_t)c->batch * c->accum, err, sizeof err)) {
            rc = sra_err_set(e, SRA_E_ARG, "%s", err);
            goto out;
        }
        const cache_meta *cm = ldr_meta(ld);
        if ((meth == DST_ULD || meth == DST_MINED) && strcmp(cm->atoms, "token")) {
            rc = sra_err_set(e, SRA_E_ARG, "--method %s is token-level: it needs a cache made with --atoms token "
                             "(%s has atoms = %s)", c->method, c->cache, cm->atoms);
            goto out;
        }
        if (!strncmp(cm->mass, "self", 4)) {
            rc = sra_err_set(e, SRA_E_ARG, "%s: mass %s: the student side of self:L is not built yet; extract with "
                             "--mass last, attn or uniform", c->cache, cm->mass);
            goto out;
        }
        for (int i = 0; i < n_pairs; i++)
            if (pair_s[i] < -1) {
                rc = sra_err_set(e, SRA_E_ARG, "--layer-map: student layer %d: expected -1 (final norm) or 0..L",
                                 pair_s[i]);
                goto out;
            }
        /* the student's mass rule is the cache's (method.md §3, §9.1) */
        const char *cmass = !strncmp(cm->mass, "last", 4) ? "last" : !strncmp(cm->mass, "attn", 4) ? "attn" : "uniform";
        const preset *pr = find_preset(c->preset);
        if (meth == DST_SRA && c->student_mass && strcmp(c->student_mass, cmass)) {
            rc = sra_err_set(e, SRA_E_ARG, "--student-mass %s: the cache %s was made with mass %s; the student must "
                             "weigh its tokens by the same rule (--student-mass %s, or re-extract with --mass %s)",
                             c->student_mass, c->cache, cm->mass, cmass, c->student_mass);
            goto out;
        }
        if (meth == DST_SRA && !c->student_mass && strcmp(cmass, "uniform") && strcmp(cmass, pr->mass)) {
            rc = sra_err_set(e, SRA_E_ARG, "%s: token weights: the %s preset weighs tokens by mass %s but this cache "
                             "has mass %s: re-extract with sra-extract --mass %s, or keep this cache's rule as an "
                             "ablation with --student-mass %s", c->cache, c->preset, pr->mass, cm->mass, pr->mass,
                             cmass);
            goto out;
        }
        rcfg.student_mass = cmass;
        if ((meth == DST_ULD || meth == DST_MINED || (meth == DST_SRA && !head_logits)) && cm->topk < 1) {
            rc = sra_err_set(e, SRA_E_ARG, "%s: made with --topk 0 (no next-token top-k), which --method %s%s needs: "
                             "re-extract with sra-extract --topk 64", c->cache, c->method ? c->method : "sra",
                             meth == DST_SRA ? " --span-logits next" : "");
            goto out;
        }
        dT = (int)cm->hidden_size;
        if (vocab_build(&voc, ldr_teacher_tokenizer(ld), tok, (vocab_pool)pool, err, sizeof err)) {
            rc = sra_err_set(e, SRA_E_NOMEM, "%s", err);
            goto out;
        }
        if (head_logits) { /* the teacher head's rows of the shared id pairs, and nothing else */
            if (head_load(ld, c->cache, &voc, dT, &head_T, err, sizeof err)) {
                rc = sra_err_set(e, SRA_E_ARG, "%s", err);
                goto out;
            }
        }
        if (c->progress) {
            fprintf(c->progress, "sra-train: cache %s: %lld documents, atoms %s, mass %s, teacher width %d; shared "
                    "vocabulary (%s): %d keys (teacher %d tokens, student %d)\n", c->cache,
                    (long long)ldr_n_docs(ld), cm->atoms, cm->mass, dT, c->pool, voc.K, voc.VT, voc.VS);
            if (meth == DST_SRA) {
                char lm[200] = "";
                for (int i = 0; i < n_pairs; i++)
                    snprintf(lm + strlen(lm), sizeof lm - strlen(lm), "%s%d:%d:%.3g", i ? "," : "", pair_t[i],
                             pair_s[i], pair_w[i]);
                fprintf(c->progress, "sra-train: preset %s: span logits %s, pool %s, student mass %s, alpha %g, "
                        "beta %g, gamma %g, logit weight %g, tau %g %s tau^2, spans %s, span weights %s, "
                        "boundaries %s, layer pairs %s\n", c->preset, c->span_logits, c->pool, c->student_mass,
                        c->alpha, c->beta, c->gamma, c->logit_weight, c->tau, c->tau2 ? "with" : "without", c->spans,
                        c->span_weights, c->boundaries, lm);
            }
        }
    } else {
        if (lmd_load(&tr, tok, c->data, c->n_data, &o, err, sizeof err)) { rc = sra_err_set(e, SRA_E_ARG, "%s", err); goto out; }
    }
    if (!distill && tr.n < (size_t)c->seq + 2) {
        rc = sra_err_set(e, SRA_E_ARG, "%s: %zu tokens, fewer than --seq %d + 2: not enough training text",
                         c->data[0], tr.n, c->seq);
        goto out;
    }
    if (c->n_eval && lmd_load(&ev, tok, c->eval, c->n_eval, &o, err, sizeof err)) {
        rc = sra_err_set(e, SRA_E_ARG, "%s", err);
        goto out;
    }
    if (lead && mkdir(c->out, 0777) && errno != EEXIST) {
        rc = sra_err_set(e, SRA_E_IO, "%s: cannot create: %s", c->out, strerror(errno));
        goto out;
    }
    snprintf(path, sizeof path, "%s/ckpt", c->out);
    if (lead && mkdir(path, 0777) && errno != EEXIST) {
        rc = sra_err_set(e, SRA_E_IO, "%s: cannot create: %s", path, strerror(errno));
        goto out;
    }
    if (!(cfg_json = trn_config_json(c))) { rc = sra_err_set(e, SRA_E_NOMEM, "out of memory"); goto out; }

    /* the model and the optimizer state: a checkpoint, a HF folder or new */
    int64_t step = 0;
    uint64_t rng = c->seed * 0x9E3779B97F4A7C15ull + 1;
    char latest[4400] = "";
    if (c->resume) {
        snprintf(path, sizeof path, "%s/ckpt/latest", c->out);
        char *l = sra_read_file(path, NULL);
        if (l) {
            l[strcspn(l, "\n")] = 0;
            snprintf(latest, sizeof latest, "%s/ckpt/%s", c->out, l);
            free(l);
        }
    }
    if (latest[0]) {
        if (ckpt_load(latest, &m, &am, &av, &state, err, sizeof err)) { rc = sra_err_set(e, SRA_E_FORMAT, "%s", err); goto out; }
        cJSON *st = cJSON_Parse(state), *want = cJSON_Parse(cfg_json);
        const cJSON *have = st ? cJSON_GetObjectItemCaseSensitive(st, "config") : NULL;
        const cJSON *js = st ? cJSON_GetObjectItemCaseSensitive(st, "step") : NULL;
        const cJSON *jr = st ? cJSON_GetObjectItemCaseSensitive(st, "rng") : NULL;
        const cJSON *jw = st ? cJSON_GetObjectItemCaseSensitive(st, "world") : NULL;
        int was = cJSON_IsNumber(jw) ? jw->valueint : 1;
        if (!have || !cJSON_IsNumber(js) || !cJSON_IsString(jr)) {
            rc = sra_err_set(e, SRA_E_FORMAT, "%s/state.json: missing config, step or rng", latest);
        } else if (was != W) {
            /* the data order would survive (loader.h), but the global batch
             * (batch x accum x ranks) and so the schedule would not */
            rc = sra_err_set(e, SRA_E_ARG,
                             "--resume: the checkpoint %s was written by %d rank%s and this run has %d: the global "
                             "batch (batch x accum x ranks) would change; resume with %d rank%s (mpirun -np %d), "
                             "or train into a new --out",
                             latest, was, was == 1 ? "" : "s", W, was, was == 1 ? "" : "s", was);
        } else {
            for (const cJSON *w = want->child; w && !rc; w = w->next) {
                const cJSON *h = cJSON_GetObjectItemCaseSensitive(have, w->string);
                if (resumable_key(w->string) || (h && cJSON_Compare(w, h, 1))) continue;
                char *ws = cJSON_PrintUnformatted(w), *hs = h ? cJSON_PrintUnformatted(h) : NULL;
                rc = sra_err_set(e, SRA_E_ARG,
                                 "--resume: '%s' is %s in the checkpoint %s but %s now (only steps, eval_every and "
                                 "ckpt_every may change; or train into a new --out)",
                                 w->string, hs ? hs : "absent", latest, ws ? ws : "?");
                free(ws);
                free(hs);
            }
            step = (int64_t)js->valuedouble;
            rng = strtoull(jr->valuestring, NULL, 16);
            const cJSON *lp = cJSON_GetObjectItemCaseSensitive(st, "loader");
            if (distill && cJSON_GetArraySize(lp) == 3) {
                int64_t pos[3];
                for (int i = 0; i < 3; i++) pos[i] = (int64_t)cJSON_GetArrayItem(lp, i)->valuedouble;
                if (ldr_seek(ld, pos, err, sizeof err)) rc = sra_err_set(e, SRA_E_FORMAT, "%s", err);
            }
        }
        cJSON_Delete(st);
        cJSON_Delete(want);
        if (rc) goto out;
    } else if (c->from) {
        if (model_load_hf(&m, c->from, err, sizeof err)) { rc = sra_err_set(e, SRA_E_ARG, "%s", err); goto out; }
    } else {
        cfg_model mc = {0};
        snprintf(mc.model_type, sizeof mc.model_type, "llama");
        mc.hidden = c->d_model;
        mc.n_layers = c->layers;
        mc.n_heads = c->heads;
        mc.n_kv_heads = c->kv_heads ? c->kv_heads : c->heads;
        if (c->heads < 1 || c->d_model % c->heads || mc.n_heads % mc.n_kv_heads || (c->d_model / c->heads) % 2) {
            rc = sra_err_set(e, SRA_E_ARG, "--d-model %d, --heads %d, --kv-heads %d: heads must divide d_model "
                             "into an even head size, kv_heads must divide heads", c->d_model, c->heads, mc.n_kv_heads);
            goto out;
        }
        mc.head_dim = c->d_model / c->heads;
        /* Llama's 8/3 d, rounded up to a multiple of 32 */
        mc.intermediate = c->ffn ? c->ffn : (8 * c->d_model / 3 + 31) / 32 * 32;
        mc.vocab = tok_vocab_size(tok);
        mc.max_pos = c->max_pos ? c->max_pos : (c->seq > 2048 ? c->seq : 2048);
        mc.rms_eps = 1e-5;
        mc.rope_theta = c->rope_theta;
        mc.tie_embeddings = c->tie;
        mc.bos_id = tok_bos_id(tok);
        mc.eos_id = tok_eos_id(tok);
        if (model_init(&m, &mc, c->seed, err, sizeof err)) { rc = sra_err_set(e, SRA_E_ARG, "%s", err); goto out; }
    }
    if (c->seq > m.c.max_pos) {
        rc = sra_err_set(e, SRA_E_ARG, "--seq %d is above the model's max_position_embeddings %d", c->seq, m.c.max_pos);
        goto out;
    }
    if (distill && tok_vocab_size(tok) > m.c.vocab) {
        rc = sra_err_set(e, SRA_E_ARG, "%s has %d tokens but the model's vocab_size is %d: the tokenizer and the "
                         "model do not belong together", c->tokenizer, tok_vocab_size(tok), m.c.vocab);
        goto out;
    }
    for (size_t i = 0; i < tr.n; i++)
        if (tr.tokens[i] >= m.c.vocab) {
            rc = sra_err_set(e, SRA_E_ARG, "%s gives token id %d but the model's vocab_size is %d: the tokenizer and "
                             "the model do not belong together", c->tokenizer, tr.tokens[i], m.c.vocab);
            goto out;
        }
    if (!am) {
        am = calloc(m.n_params, sizeof(float));
        av = calloc(m.n_params, sizeof(float));
    }
    if (distill) {
        /* the projection P (dT, dS): random N(0, 1/dS), seeded; or from the checkpoint */
        size_t np = (size_t)n_pairs * dT * m.c.hidden;
        P = malloc(np * 4); dP = calloc(np, 4); Pm = calloc(np, 4); Pv = calloc(np, 4);
        docs = calloc((size_t)c->batch, sizeof *docs);
        for (int i = 0; i < n_pairs; i++)
            if (pair_s[i] > m.c.n_layers) {
                rc = sra_err_set(e, SRA_E_ARG, "--layer-map: student layer %d: the student has layers 0..%d (-1 = "
                                 "final norm)", pair_s[i], m.c.n_layers);
                goto out;
            }
        dst_config dc;
        dst_config_v1(&dc, (dst_method)meth);
        dc.alpha = c->alpha; dc.beta = c->beta; dc.gamma = c->gamma; dc.tau = c->tau;
        dc.min_shared_mass = c->min_shared_mass; dc.logit_weight = c->logit_weight;
        dc.span_mse = c->span_loss && !strcmp(c->span_loss, "mse");
        dc.student_mass = !strcmp(c->student_mass, "last") ? DST_MASS_LAST
                        : !strcmp(c->student_mass, "attn") ? DST_MASS_ATTN : DST_MASS_UNIFORM;
        dc.logits = head_logits ? DST_LOGITS_HEAD : DST_LOGITS_NEXT;
        dc.tau2 = c->tau2;
        dc.uniform_spans = !strcmp(c->span_weights, "uniform");
        dc.response_only = !strcmp(c->spans, "response");
        dc.exact_boundaries = !strcmp(c->boundaries, "exact");
        dc.n_pairs = n_pairs;
        for (int i = 0; i < n_pairs; i++) { dc.pair_student[i] = pair_s[i]; dc.pair_weight[i] = pair_w[i]; }
        dc.head_slot = head_slot;
        dc.n_head = head_logits ? voc.n_pairs : 0;
        dc.head_T = head_T;
        dc.head_s_ids = voc.pair_s;
        dx = dst_new(&dc, tok, &voc, dT);
        if (!P || !dP || !Pm || !Pv || !docs || !dx) { rc = sra_err_set(e, SRA_E_NOMEM, "out of memory"); goto out; }
        uint64_t ps = c->seed ^ 0x5EEDull;
        for (size_t i = 0; i < np; i++) P[i] = (float)(sra_normal(&ps) / sqrt((double)m.c.hidden));
        if (latest[0]) {
            char xp[4500];
            snprintf(xp, sizeof xp, "%s/extra.safetensors", latest);
            st_file *xf = NULL;
            int64_t shp[2] = {(int64_t)n_pairs * dT, m.c.hidden};
            const char *nm[3] = {"proj.weight", "m.proj.weight", "v.proj.weight"};
            float *dst[3] = {P, Pm, Pv};
            if (st_open(&xf, xp)) rc = sra_err_set(e, SRA_E_FORMAT, "%s", xf ? st_errmsg(xf) : "out of memory");
            for (int i = 0; !rc && i < 3; i++) {
                const st_tensor *t = st_get(xf, nm[i], 2, shp);
                if (!t) rc = sra_err_set(e, SRA_E_FORMAT, "%s", st_errmsg(xf));
                else st_to_f32(t, 0, np, dst[i]);
            }
            st_close(xf);
            if (rc) goto out;
        }
    }
    ids = malloc((size_t)c->batch * c->seq * sizeof *ids);
    tg = malloc((size_t)c->batch * c->seq * sizeof *tg);
    if (!am || !av || !ids || !tg) { rc = sra_err_set(e, SRA_E_NOMEM, "out of memory"); goto out; }
    rep->params = (int64_t)m.n_params;

    if (lead) {
        snprintf(path, sizeof path, "%s/train_config.json", c->out);
        if ((rc = sra_write_file_atomic(path, cfg_json, e))) goto out;
        snprintf(path, sizeof path, "%s/metrics.jsonl", c->out);
        if (step == 0) unlink(path);
        else if ((rc = trim_metrics(path, step, e))) goto out;
        if (!(mf = fopen(path, "a"))) { rc = sra_err_set(e, SRA_E_IO, "%s: cannot write: %s", path, strerror(errno)); goto out; }
    }
    if (c->progress && W > 1)
        fprintf(c->progress, "sra-train: %d ranks, %d x %d x %d = %lld documents (or windows) per step\n", W, c->batch,
                c->accum, W, (long long)c->batch * c->accum * W);
    if (c->progress && !distill)
        fprintf(c->progress, "sra-train: %zu parameters, %zu training tokens (%lld bad records), %zu held-out tokens, "
                "step %lld of %lld\n", m.n_params, tr.n, (long long)tr.bad_records, ev.n, (long long)step,
                (long long)c->steps);
    if (c->progress && distill)
        fprintf(c->progress, "sra-train: %zu parameters + projection %dx%d, method %s, %zu held-out tokens, step %lld "
                "of %lld\n", m.n_params, dT, m.c.hidden, c->method, ev.n, (long long)step, (long long)c->steps);

    adamw_cfg ac = {(float)c->lr, (float)c->beta1, (float)c->beta2, (float)c->eps, (float)c->weight_decay};
    sra_progress prog;
    sra_progress_begin(&prog, c->progress, "steps", (double)c->steps);
    double t_start = sra_now(), tok_total = 0;
    if (c->steps == 0 && ev.n > 1 && (rc = eval_log(&m, &ev, c, 0, mf, rep, 1, e))) goto out; /* evaluate only */
    int64_t first = step, stop = c->steps;
    if (c->stop_after > 0 && step + c->stop_after < stop) stop = step + c->stop_after;
    /* micro-batches of a step: accum per rank; rank R's are numbers
     * R*accum .. R*accum+accum-1 of the accum x W that one process with
     * --accum accum*W would run, so the step is the same (dist.h) */
    const int MB = c->accum * W;
    int stopped = 0;
    int64_t saved = latest[0] ? step : -1; /* the newest checkpoint's step */
    while (step < stop) {
        double t0 = sra_now(), t_reduce = 0;
        model_zero_grad(&m);
        double loss = 0, gnorm;
        dst_stats sum = {0};
        float lr = adamw_lr(&ac, (float)c->min_lr, c->warmup, c->steps, step);
        size_t np = distill ? (size_t)n_pairs * dT * m.c.hidden : 0;
        if (distill) {
            memset(dP, 0, np * 4);
            for (int a = 0; a < c->accum; a++) {
                ldr_recycle(ld);
                for (int b = 0; b < c->batch; b++)
                    if (ldr_next(ld, &docs[b], err, sizeof err)) { rc = sra_err_set(e, SRA_E_CORRUPT, "%s", err); goto out; }
                dst_stats s1;
                if (dst_step(dx, &m, docs, c->batch, c->seq, P, dP, (float)(1.0 / MB), &s1, err, sizeof err)) {
                    rc = sra_err_set(e, SRA_E_ARG, "%s", err);
                    goto out;
                }
                sum.loss += s1.loss / MB; sum.ce += s1.ce / MB; sum.span += s1.span / MB;
                sum.geo += s1.geo / MB; sum.logit += s1.logit / MB; sum.uld += s1.uld / MB;
                sum.mined += s1.mined / MB; sum.tokens += s1.tokens; sum.spans += s1.spans;
                sum.logit_spans += s1.logit_spans; sum.logit_skipped += s1.logit_skipped;
                sum.shared_mass_sum += s1.shared_mass_sum;
            }
            if (ldr_end_step(ld, err, sizeof err)) { rc = sra_err_set(e, SRA_E_CORRUPT, "%s", err); goto out; }
            loss = sum.loss;
        } else {
            /* every window target counts (lmd_batch never masks one), so
             * each micro-batch's dlogits are scaled by 1 / (all tokens of
             * the step); every rank draws every micro-batch's windows (the
             * RNG stays in step) and computes its own */
            int64_t count = (int64_t)c->batch * c->seq * MB;
            for (int j = 0; j < MB; j++) {
                lmd_batch(&tr, &rng, c->batch, c->seq, ids, tg);
                if (j / c->accum != R) continue;
                float l = model_forward(&m, ids, tg, NULL, c->batch, c->seq, (float)(1.0 / (double)count));
                if (l < 0) { rc = sra_err_set(e, SRA_E_NOMEM, "out of memory for activations"); goto out; }
                model_backward(&m);
                loss += m.loss_sum;
            }
            loss /= (double)count;
        }
        /* the ranks' sums: gradients, then the step's statistics and
         * whether any rank was asked to stop (so all stop at this step) */
        double st[13] = {loss, sum.ce, sum.span, sum.geo, sum.logit, sum.uld, sum.mined, (double)sum.tokens,
                         (double)sum.spans, (double)sum.logit_spans, (double)sum.logit_skipped, sum.shared_mass_sum,
                         c->stop && *c->stop ? 1.0 : 0.0};
        if (W > 1) {
            char what[80];
            snprintf(what, sizeof what, "gradient all-reduce of step %lld", (long long)step + 1);
            if (dist_sum_f32(m.grads, m.n_params, what, c->stop, &t_reduce, err, sizeof err) ||
                (np && dist_sum_f32(dP, np, what, c->stop, &t_reduce, err, sizeof err)) ||
                dist_sum_f64(st, 13, what, c->stop, &t_reduce, err, sizeof err)) {
                rc = stopped_in(e, err, c->out, saved);
                goto out;
            }
            loss = st[0]; sum.ce = st[1]; sum.span = st[2]; sum.geo = st[3]; sum.logit = st[4]; sum.uld = st[5];
            sum.mined = st[6]; sum.tokens = (int64_t)st[7]; sum.spans = (int64_t)st[8];
            sum.logit_spans = (int64_t)st[9]; sum.logit_skipped = (int64_t)st[10]; sum.shared_mass_sum = st[11];
        }
        stopped = st[12] > 0;
        if (distill) {
            /* one global norm over the student and P */
            double ss = 0;
            for (size_t i = 0; i < m.n_params; i++) ss += (double)m.grads[i] * m.grads[i];
            for (size_t i = 0; i < np; i++) ss += (double)dP[i] * dP[i];
            gnorm = sqrt(ss);
            if (c->clip > 0 && gnorm > c->clip) {
                float f = (float)(c->clip / (gnorm + 1e-6));
                for (size_t i = 0; i < m.n_params; i++) m.grads[i] *= f;
                for (size_t i = 0; i < np; i++) dP[i] *= f;
            }
            adamw_update(P, dP, Pm, Pv, np, &ac, lr, step + 1, 1);
        } else
            gnorm = adamw_clip(m.grads, m.n_params, c->clip);
        for (int i = 0; i < m.n_tensors; i++) {
            const model_tensor *t = &m.tensors[i];
            adamw_update(m.params + t->off, m.grads + t->off, am + t->off, av + t->off, t->n, &ac, lr, step + 1,
                         t->decay);
        }
        step++;
        double dt = sra_now() - t0, ntok = distill ? (double)sum.tokens : (double)c->batch * c->seq * MB;
        tok_total += ntok;
        dist_set_grace(5.0 + 3.0 * dt);
        if (step == first + 1) rep->first_loss = loss;
        rep->last_loss = loss;
        char par[96] = "";
        if (W > 1) snprintf(par, sizeof par, "\"ranks\": %d, \"allreduce_s\": %.5f, ", W, t_reduce);
        if (distill && mf) {
            fprintf(mf, "{\"step\": %lld, \"loss\": %.9g, \"ce\": %.9g, \"span\": %.9g, \"geo\": %.9g, "
                        "\"logit\": %.9g, \"uld\": %.9g, \"mined\": %.9g, \"spans\": %lld, \"logit_spans\": %lld, "
                        "\"logit_skipped\": %lld, \"shared_mass\": %.4f, \"loader_wait_s\": %.4f, %s\"lr\": %.6g, "
                        "\"grad_norm\": %.6g, \"tokens_per_s\": %.1f, \"seconds\": %.3f}\n",
                    (long long)step, loss, sum.ce, sum.span, sum.geo, sum.logit, sum.uld, sum.mined,
                    (long long)sum.spans, (long long)sum.logit_spans, (long long)sum.logit_skipped,
                    sum.logit_spans ? sum.shared_mass_sum / (double)sum.logit_spans : 0.0, ldr_wait_seconds(ld), par,
                    lr, gnorm, ntok / dt, sra_now() - t_start);
        } else if (mf)
            fprintf(mf, "{\"step\": %lld, \"loss\": %.6f, %s\"lr\": %.6g, \"grad_norm\": %.6g, \"tokens_per_s\": %.1f, "
                        "\"seconds\": %.3f}\n", (long long)step, loss, par, lr, gnorm, ntok / dt, sra_now() - t_start);
        if (c->progress) {
            snprintf(prog.note, sizeof prog.note, "loss %.4f, %.0f tok/s", loss, ntok / dt);
            sra_progress_update(&prog, (double)step);
        }
        int last = step == stop;
        /* a due evaluation runs even when a signal asked to stop (it is
         * bounded by --eval-max-windows): the resumed run starts after
         * this step, and its metrics must equal an uninterrupted run's */
        if (ev.n > 1 && ((c->eval_every > 0 && step % c->eval_every == 0) || last) &&
            (rc = eval_log(&m, &ev, c, step, mf, rep, !prog.tty, e)))
            goto out;
        if (mf) fflush(mf);
        if ((c->ckpt_every > 0 && step % c->ckpt_every == 0) || last || stopped) {
            /* the ranks must hold the same weights; a difference would mean
             * a reduction that did not give every rank the same sum */
            uint64_t fp = fingerprint(fingerprint(0xCBF29CE484222325ull, m.params, m.n_params), P, np);
            int same = dist_same(fp, c->stop, err, sizeof err);
            if (same < 0) { rc = stopped_in(e, err, c->out, saved); goto out; }
            if (!same) {
                rc = sra_err_set(e, SRA_E_CORRUPT, "rank %d of %d: after step %lld the ranks' weights differ (the MPI "
                                 "all-reduce did not give every rank the same sum)", R, W, (long long)step);
                goto out;
            }
        }
        if (lead && ((c->ckpt_every > 0 && step % c->ckpt_every == 0) || last || stopped)) {
            char dir[4400], stj[8192];
            snprintf(dir, sizeof dir, "%s/ckpt/step-%08lld", c->out, (long long)step);
            int64_t lpos[3] = {0, 0, 0};
            if (ld) ldr_tell(ld, lpos);
            snprintf(stj, sizeof stj, "{\"step\": %lld, \"rng\": \"%016llx\", \"loader\": [%lld, %lld, %lld], "
                     "\"world\": %d, \"config\": %s}", (long long)step, (unsigned long long)rng, (long long)lpos[0],
                     (long long)lpos[1], (long long)lpos[2], W, cfg_json);
            int64_t pr = (int64_t)n_pairs * dT; /* the pairs' projections, stacked */
            st_out ex[3] = {{"proj.weight", 2, {pr, m.c.hidden}, P}, {"m.proj.weight", 2, {pr, m.c.hidden}, Pm},
                            {"v.proj.weight", 2, {pr, m.c.hidden}, Pv}};
            if (ckpt_save(dir, &m, am, av, ex, distill ? 3 : 0, stj, err, sizeof err)) { rc = sra_err_set(e, SRA_E_IO, "%s", err); goto out; }
            snprintf(path, sizeof path, "%s/ckpt/latest", c->out);
            snprintf(stj, sizeof stj, "step-%08lld\n", (long long)step);
            if ((rc = sra_write_file_atomic(path, stj, e))) goto out;
            saved = step;
        }
        if (stopped) {
            sra_progress_end(&prog, "(stopped by a signal)");
            rep->steps_done = step;
            rep->clean_stop = 1;
            rc = sra_err_set(e, SRA_E_STOPPED, "stopped by a signal after step %lld; checkpoint %s/ckpt/step-%08lld "
                             "written: run the same command with --resume to continue", (long long)step, c->out,
                             (long long)step);
            goto out;
        }
    }
    rep->steps_done = step;
    rep->tokens_per_s = tok_total / (sra_now() - t_start + 1e-9);
    {
        char extra[200];
        snprintf(extra, sizeof extra, "(loss %.4f -> %.4f, %.0f tokens/s)", rep->first_loss, rep->last_loss,
                 rep->tokens_per_s);
        sra_progress_end(&prog, extra);
    }
    /* the student as a Hugging Face folder, with its tokenizer */
    snprintf(path, sizeof path, "%s/final", c->out);
    if (!lead) goto out;
    if (model_export_hf(&m, path, err, sizeof err)) { rc = sra_err_set(e, SRA_E_IO, "%s", err); goto out; }
    {
        size_t n;
        char *tj = sra_read_file(c->tokenizer, &n);
        snprintf(path, sizeof path, "%s/final/tokenizer.json", c->out);
        FILE *f = tj ? fopen(path, "wb") : NULL;
        if (!f || fwrite(tj, 1, n, f) != n || fclose(f)) rc = sra_err_set(e, SRA_E_IO, "%s: cannot write", path);
        free(tj);
    }
out:
    if (mf) fclose(mf);
    dst_free(dx);
    vocab_free(&voc);
    ldr_close(ld);
    free(docs); free(P); free(dP); free(Pm); free(Pv); free(head_T);
    free(cfg_json); free(state); free(am); free(av); free(ids); free(tg);
    model_free(&m);
    lmd_free(&tr);
    lmd_free(&ev);
    tok_free(tok);
    return rc;
}
