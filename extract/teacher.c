/*
 * teacher.c - Llama-family forward with capture (teacher.h).
 *
 * Shapes: B batch, T time, N = B*T rows, C hidden, NH/NKV heads, HS head
 * size, I MLP width, V vocabulary, L layers. The forward is llm.c's loop
 * over train/layers.h ops; this file adds the weights (views on the
 * safetensors mapping; F16/BF16 matrices converted to float32 inside each
 * matmul, a block of rows at a time, layers.h matmul_forward_seq), the
 * captures and the KV cache.
 */
#include "teacher.h"

#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "layers.h"
#include "safetensors.h"

/* Head row blocks and each sequence's selected rows start on multiples of
 * this (layers.c's SGEMM_GRID: a row's bits depend on its place mod 48). */
#define HEAD_GRID 48

/* One layer's tensors (NULL where the family has none). */
typedef struct {
    const st_tensor *ln1, *q, *k, *v, *o, *qb, *kb, *vb, *ob, *qn, *kn, *ln2, *gate, *up, *down;
} layer_tensors;

/* The same for the layer being run: matrices as matmul weights (in place
 * or fetched), vectors as float32 (converted into t->vbuf when needed). */
typedef struct {
    matmul_weight q, k, v, o, gate, up, down;
    const float *ln1, *qb, *kb, *vb, *ob, *qn, *kn, *ln2;
} layer_weights;

struct teacher {
    char err[1024];
    cfg_model c;
    st_file *st;
    layer_tensors *lt;          /* (L) */
    const st_tensor *emb, *norm, *head;
    const char *wdtype;
    double *inv_freq;           /* (HS/2) */
    float *norm_w;              /* (C) final norm, converted once */
    /* converted vectors of one layer (norms, biases) */
    float *vbuf;
    size_t vbuf_used;
    /* matrices stored as F16/BF16: matmul_forward_seq's scratch */
    float *wscratch;
    size_t wscratch_cap;
    int fetched;                /* some layer matrix is not float32 in place */
    /* activations, grown to the largest batch seen */
    size_t act_rows;
    float *x, *h, *q, *k, *v, *att, *g, *u, *cos, *sin, *scratch, *logits;
    int32_t *pos;
    size_t scratch_cap;
    int logit_rows;             /* rows of logits computed at once (a multiple of 48) */
    int logit_cap;              /* rows the logits buffer holds (>= logit_rows) */
    /* KV cache (teacher_gen_*) */
    float *kc, *vc;             /* (L, max_T, NKV*HS) */
    int gen_max, gen_len;
    /* top-k of selected rows (teacher_capture.rows) */
    float *hsel;                /* (logit_rows, C) gathered rows, then their indices */
    int32_t *tk_ids;            /* (4096, tk_cap) */
    float *tk_lp, *tk_tail;
    int tk_cap;
};

static int fail(teacher *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(teacher *t, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(t->err, sizeof t->err, fmt, ap);
    va_end(ap);
    return -1;
}

const char *teacher_errmsg(const teacher *t) { return t ? t->err : "out of memory"; }
const cfg_model *teacher_config(const teacher *t) { return &t->c; }
const char *teacher_weight_dtype(const teacher *t) { return t->wdtype; }
const st_tensor *teacher_head_tensor(const teacher *t) { return t->head; }

/* ============================================================ weights */

/* A tensor of the given shape, or NULL with t->err naming it. */
static const st_tensor *need(teacher *t, const char *name, int ndim, int64_t d0, int64_t d1) {
    int64_t shape[2] = {d0, d1};
    const st_tensor *x = st_get(t->st, name, ndim, shape);
    if (!x) fail(t, "%s", st_errmsg(t->st));
    return x;
}

static int in_place(const st_tensor *x) { return x->dtype == ST_F32 && ((uintptr_t)x->data & 3) == 0; }

static size_t conv_size(const st_tensor *x) { return x && !in_place(x) ? (size_t)x->numel : 0; }

/* A float32 view of vector x: the mapping itself when it is aligned F32,
 * else a converted copy in t->vbuf. */
static const float *view(teacher *t, const st_tensor *x) {
    if (!x) return NULL;
    if (in_place(x)) return x->data;
    float *dst = t->vbuf + t->vbuf_used;
    st_to_f32(x, 0, (size_t)x->numel, dst);
    t->vbuf_used += (size_t)x->numel;
    return dst;
}

/* matmul_weight's fetch: rows [r0, r0+n) of a 2-D tensor as float32 */
static void fetch_rows(const void *ctx, size_t r0, size_t n, float *dst) {
    const st_tensor *x = ctx;
    size_t cols = (size_t)x->shape[1];
    st_to_f32(x, r0 * cols, n * cols, dst);
}

static matmul_weight mat(const st_tensor *x) {
    return in_place(x) ? (matmul_weight){x->data, NULL, NULL} : (matmul_weight){NULL, fetch_rows, x};
}

static void layer_view(teacher *t, int l, layer_weights *w) {
    const layer_tensors *s = &t->lt[l];
    t->vbuf_used = 0;
    w->q = mat(s->q); w->k = mat(s->k); w->v = mat(s->v); w->o = mat(s->o);
    w->gate = mat(s->gate); w->up = mat(s->up); w->down = mat(s->down);
    w->ln1 = view(t, s->ln1); w->qb = view(t, s->qb); w->kb = view(t, s->kb); w->vb = view(t, s->vb);
    w->ob = view(t, s->ob); w->qn = view(t, s->qn); w->kn = view(t, s->kn); w->ln2 = view(t, s->ln2);
}

static int load_tensors(teacher *t) {
    const cfg_model *c = &t->c;
    int64_t C = c->hidden, QD = (int64_t)c->n_heads * c->head_dim, KD = (int64_t)c->n_kv_heads * c->head_dim;
    int64_t I = c->intermediate, V = c->vocab;
    if (!(t->lt = calloc((size_t)c->n_layers, sizeof *t->lt))) return fail(t, "out of memory");
    if (!(t->emb = need(t, "model.embed_tokens.weight", 2, V, C))) return -1;
    if (!(t->norm = need(t, "model.norm.weight", 1, C, 0))) return -1;
    /* tied: lm_head is the embedding (st_find also follows a metadata alias) */
    if (c->tie_embeddings || !st_find(t->st, "lm_head.weight")) t->head = t->emb;
    else if (!(t->head = need(t, "lm_head.weight", 2, V, C))) return -1;
    size_t conv = 0;
    for (int l = 0; l < c->n_layers; l++) {
        layer_tensors *s = &t->lt[l];
        char nm[160];
#define W(field, suffix, nd, a, b)                                                    \
    do {                                                                              \
        snprintf(nm, sizeof nm, "model.layers.%d.%s", l, suffix);                    \
        if (!(s->field = need(t, nm, nd, a, b))) return -1;                           \
    } while (0)
        W(ln1, "input_layernorm.weight", 1, C, 0);
        W(q, "self_attn.q_proj.weight", 2, QD, C);
        W(k, "self_attn.k_proj.weight", 2, KD, C);
        W(v, "self_attn.v_proj.weight", 2, KD, C);
        W(o, "self_attn.o_proj.weight", 2, C, QD);
        if (c->qkv_bias) {
            W(qb, "self_attn.q_proj.bias", 1, QD, 0);
            W(kb, "self_attn.k_proj.bias", 1, KD, 0);
            W(vb, "self_attn.v_proj.bias", 1, KD, 0);
        }
        if (c->o_bias) W(ob, "self_attn.o_proj.bias", 1, C, 0);
        if (c->qk_norm) {
            W(qn, "self_attn.q_norm.weight", 1, c->head_dim, 0);
            W(kn, "self_attn.k_norm.weight", 1, c->head_dim, 0);
        }
        W(ln2, "post_attention_layernorm.weight", 1, C, 0);
        W(gate, "mlp.gate_proj.weight", 2, I, C);
        W(up, "mlp.up_proj.weight", 2, I, C);
        W(down, "mlp.down_proj.weight", 2, C, I);
#undef W
        size_t n = conv_size(s->ln1) + conv_size(s->qb) + conv_size(s->kb) + conv_size(s->vb) + conv_size(s->ob) +
                   conv_size(s->qn) + conv_size(s->kn) + conv_size(s->ln2);
        if (n > conv) conv = n;
        if (conv_size(s->q) || conv_size(s->k) || conv_size(s->v) || conv_size(s->o) || conv_size(s->gate) ||
            conv_size(s->up) || conv_size(s->down))
            t->fetched = 1;
    }
    if (conv && !(t->vbuf = malloc(conv * sizeof(float)))) return fail(t, "out of memory for %zu converted weights", conv);
    if (!(t->norm_w = malloc((size_t)C * sizeof(float)))) return fail(t, "out of memory");
    st_to_f32(t->norm, 0, (size_t)C, t->norm_w);
    t->wdtype = t->lt[0].q->dtype == ST_F32 ? "F32" : t->lt[0].q->dtype == ST_F16 ? "F16" : "BF16";
    if (!(t->inv_freq = malloc((size_t)(c->head_dim / 2) * sizeof(double)))) return fail(t, "out of memory");
    cfg_rope_inv_freq(c, t->inv_freq);
    return 0;
}

int teacher_load(teacher **out, const char *dir) {
    teacher *t = calloc(1, sizeof *t);
    *out = t;
    if (!t) return -1;
    char err[768];
    if (cfg_load(&t->c, dir, err, sizeof err)) return fail(t, "%s", err);
    if (st_open(&t->st, dir)) return fail(t, "%s", t->st ? st_errmsg(t->st) : "out of memory");
    if (t->c.head_dim % 2) return fail(t, "%s: head_dim %d must be even for RoPE", dir, t->c.head_dim);
    return load_tensors(t);
}

void teacher_free(teacher *t) {
    if (!t) return;
    st_close(t->st);
    free(t->lt); free(t->inv_freq); free(t->norm_w); free(t->vbuf); free(t->wscratch);
    free(t->x); free(t->h); free(t->q); free(t->k); free(t->v); free(t->att); free(t->g); free(t->u);
    free(t->cos); free(t->sin); free(t->scratch); free(t->logits); free(t->pos);
    free(t->kc); free(t->vc); free(t->hsel); free(t->tk_ids); free(t->tk_lp); free(t->tk_tail);
    free(t);
}

/* ======================================================== activations */

static int grow_acts(teacher *t, size_t N, int Tq, int Tk) {
    const cfg_model *c = &t->c;
    size_t need_s = attention_scratch_floats(Tq, Tk);
    if (N > t->act_rows) {
        size_t C = (size_t)c->hidden, QD = (size_t)c->n_heads * c->head_dim;
        size_t KD = (size_t)c->n_kv_heads * c->head_dim, I = (size_t)c->intermediate, H2 = (size_t)c->head_dim / 2;
        float **bufs[] = {&t->x, &t->h, &t->q, &t->k, &t->v, &t->att, &t->g, &t->u, &t->cos, &t->sin};
        size_t sizes[] = {C, C, QD, KD, KD, QD, I, I, H2, H2};
        for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
            free(*bufs[i]);
            if (!(*bufs[i] = malloc(N * sizes[i] * sizeof(float)))) return fail(t, "out of memory for %zu rows", N);
        }
        free(t->pos);
        if (!(t->pos = malloc(N * sizeof *t->pos))) return fail(t, "out of memory");
        t->act_rows = N;
    }
    if (need_s > t->scratch_cap) {
        free(t->scratch);
        if (!(t->scratch = malloc(need_s * sizeof(float)))) return fail(t, "out of memory for attention scratch");
        t->scratch_cap = need_s;
    }
    if (!t->logits) {
        /* logits of at most 64 MiB at a time (never B*T*V for big
         * vocabularies): blocks of logit_rows, or a whole sequence when it
         * fits (a head call packs all of lm_head, so one call for a
         * sequence of 512 beats 480 + 32 rows: 2% of the 110M forward) */
        size_t cap = ((size_t)16 << 20) / (size_t)c->vocab;
        cap = cap < HEAD_GRID ? HEAD_GRID : cap > 4080 ? 4080 : cap;
        t->logit_cap = (int)cap;
        t->logit_rows = (int)(cap / HEAD_GRID * HEAD_GRID);
        if (!(t->logits = malloc(cap * (size_t)c->vocab * sizeof(float))))
            return fail(t, "out of memory for logits");
    }
    /* scratch for converted matrices: the largest any matmul asks for
     * (it depends on the thread count, fixed by now) */
    size_t C = (size_t)c->hidden, QD = (size_t)c->n_heads * c->head_dim, KD = (size_t)c->n_kv_heads * c->head_dim;
    size_t I = (size_t)c->intermediate, need_w = 0;
    int64_t dims[][2] = {{(int64_t)C, (int64_t)QD}, {(int64_t)C, (int64_t)KD}, {(int64_t)QD, (int64_t)C},
                         {(int64_t)C, (int64_t)I},  {(int64_t)I, (int64_t)C}};
    for (size_t i = 0; t->fetched && i < sizeof dims / sizeof dims[0]; i++) {
        size_t n = matmul_seq_scratch_floats((int)dims[i][0], (int)dims[i][1]);
        if (n > need_w) need_w = n;
    }
    if (!in_place(t->head)) {
        size_t n = matmul_seq_scratch_floats((int)C, c->vocab);
        if (n > need_w) need_w = n;
    }
    if (need_w > t->wscratch_cap) {
        free(t->wscratch);
        if (!(t->wscratch = malloc(need_w * sizeof(float))))
            return fail(t, "out of memory for %zu converted weights", need_w);
        t->wscratch_cap = need_w;
    }
    return 0;
}

/* ============================================================ forward */

/* logits (R,V) = hidden (R,C) @ head^T; a converted head goes a column
 * block at a time (never a whole float32 copy of it). */
static void head_forward(teacher *t, float *logits, const float *hidden, int R) {
    matmul_weight w = mat(t->head);
    matmul_forward_seq(logits, hidden, &w, NULL, 1, R, t->c.hidden, t->c.vocab, t->wscratch);
}

/* B sequences of T rows, each computed as alone (layers.h): a row's bits
 * depend on its position in its own sequence only, so a sequence gives
 * the same bits alone or inside any batch. */
static void seq_matmul(teacher *t, float *out, const float *inp, const matmul_weight *w, const float *b, int B, int T,
                       int C, int OC) {
    matmul_forward_seq(out, inp, w, b, B, T, C, OC, t->wscratch);
}

/* Runs the layers over N = B*Tq rows in t->x; leaves the final-norm output
 * in t->h. Keys/values: with a KV cache (kc, vc: per layer kv_layer_stride
 * floats of (max_T, NKV*HS)) this call's rows are written at row kv_off
 * and attention reads the cache's first Tk rows; without one they live in
 * t->k, t->v (B,Tk,NKV,HS). Captures hidden states and the mass when cap
 * asks for them. */
static int run_layers(teacher *t, int B, int Tq, int Tk, const uint8_t *valid, float *kc, float *vc,
                      size_t kv_layer_stride, int kv_off, const teacher_capture *cap) {
    const cfg_model *c = &t->c;
    int C = c->hidden, NH = c->n_heads, NKV = c->n_kv_heads, HS = c->head_dim, I = c->intermediate;
    int QD = NH * HS, KD = NKV * HS, N = B * Tq;
    float eps = (float)c->rms_eps;
    rope_tables(t->cos, t->sin, t->pos, N, t->inv_freq, HS);
    for (int i = 0; cap && i < cap->n_hidden; i++)
        if (cap->hidden_layers[i] == 0) memcpy(cap->hidden[i], t->x, (size_t)N * C * sizeof(float));
    for (int l = 0; l < c->n_layers; l++) {
        layer_weights w;
        layer_view(t, l, &w);
        /* attention block */
        rmsnorm_forward(t->h, t->x, w.ln1, N, C, eps);
        float *kd = kc ? kc + (size_t)l * kv_layer_stride + (size_t)kv_off * KD : t->k;
        float *vd = vc ? vc + (size_t)l * kv_layer_stride + (size_t)kv_off * KD : t->v;
        seq_matmul(t, t->q, t->h, &w.q, w.qb, B, Tq, C, QD);   /* (N, NH*HS) */
        seq_matmul(t, kd, t->h, &w.k, w.kb, B, Tq, C, KD);     /* (N, NKV*HS) */
        seq_matmul(t, vd, t->h, &w.v, w.vb, B, Tq, C, KD);
        if (c->qk_norm) { /* Qwen3: RMSNorm over each head before RoPE */
            rmsnorm_forward(t->q, t->q, w.qn, N * NH, HS, eps);
            rmsnorm_forward(kd, kd, w.kn, N * NKV, HS, eps);
        }
        rope_forward(t->q, t->cos, t->sin, N, NH, HS);
        rope_forward(kd, t->cos, t->sin, N, NKV, HS);
        const float *ka = kc ? kc + (size_t)l * kv_layer_stride : t->k;
        const float *va = vc ? vc + (size_t)l * kv_layer_stride : t->v;
        float *mass = cap && cap->mass && cap->mass_layer == l + 1 && Tq == Tk ? cap->mass : NULL;
        int last_rule = mass && cap->mass_rule == TEACHER_MASS_LAST;
        attention_forward(t->att, last_rule ? NULL : mass, t->q, ka, va, valid, B, Tq, Tk, NH, NKV, HS,
                          t->scratch);
        /* Tq == Tk here, so ka is this batch's own (B,T,NKV,HS) keys: one
         * extra query row per sequence, cheap next to the attention above */
        if (last_rule) {
            attention_last_mass(mass, t->q, ka, valid, B, Tq, NH, NKV, HS);
            if (isnan(mass[0])) /* its only failure signal: every weight NaN */
                return fail(t, "last-query mass of layer %d: out of memory or non-finite attention", l + 1);
        }
        seq_matmul(t, t->h, t->att, &w.o, w.ob, B, Tq, QD, C);
        residual_forward(t->x, t->h, (size_t)N * C);
        /* MLP block */
        rmsnorm_forward(t->h, t->x, w.ln2, N, C, eps);
        seq_matmul(t, t->g, t->h, &w.gate, NULL, B, Tq, C, I);
        seq_matmul(t, t->u, t->h, &w.up, NULL, B, Tq, C, I);
        swiglu_forward(t->g, t->g, t->u, (size_t)N * I);
        seq_matmul(t, t->h, t->g, &w.down, NULL, B, Tq, I, C);
        residual_forward(t->x, t->h, (size_t)N * C);
        for (int i = 0; cap && i < cap->n_hidden; i++)
            if (cap->hidden_layers[i] == l + 1) memcpy(cap->hidden[i], t->x, (size_t)N * C * sizeof(float));
    }
    rmsnorm_forward(t->h, t->x, t->norm_w, N, C, eps); /* final norm: what feeds the LM head */
    return 0;
}

static int embed(teacher *t, const int32_t *ids, size_t N) {
    const cfg_model *c = &t->c;
    for (size_t n = 0; n < N; n++) {
        if (ids[n] < 0 || ids[n] >= c->vocab)
            return fail(t, "token id %d at position %zu is outside the vocabulary (%d)", ids[n], n, c->vocab);
        st_to_f32(t->emb, (size_t)ids[n] * (size_t)c->hidden, (size_t)c->hidden, t->x + n * (size_t)c->hidden);
    }
    return 0;
}

/* Logits (R,V) of rows r0.. (or of rows sel[0..R) when sel is given) ->
 * the capture's logits and top-k outputs. */
static void head_outputs(teacher *t, const teacher_capture *cap, const float *logits, int R, size_t r0,
                         const size_t *sel) {
    int V = t->c.vocab, k = cap->topk;
    if (!sel) {
        if (cap->logits) memcpy(cap->logits + r0 * V, logits, (size_t)R * V * sizeof(float));
        if (k)
            logsoftmax_topk(logits, R, V, k, cap->topk_ids + r0 * k, cap->topk_logprobs + r0 * k,
                            cap->tail ? cap->tail + r0 : NULL);
        return;
    }
    for (int r = 0; r < R; r++) {
        const float *row = logits + (size_t)r * V;
        size_t n = sel[r];
        if (cap->logits && n != SIZE_MAX) memcpy(cap->logits + n * V, row, (size_t)V * sizeof(float));
    }
    if (!k) return;
    /* top-k of the block into the first rows' slots would clobber other
     * rows: use per-block scratch (R,k) carved from t->tk */
    logsoftmax_topk(logits, R, V, k, t->tk_ids, t->tk_lp, t->tk_tail);
    for (int r = 0; r < R; r++) {
        size_t n = sel[r];
        if (n == SIZE_MAX) continue; /* padding between sequences */
        memcpy(cap->topk_ids + n * k, t->tk_ids + (size_t)r * k, (size_t)k * sizeof(int32_t));
        memcpy(cap->topk_logprobs + n * k, t->tk_lp + (size_t)r * k, (size_t)k * sizeof(float));
        if (cap->tail) cap->tail[n] = t->tk_tail[r];
    }
}

int teacher_forward(teacher *t, const int32_t *ids, const uint8_t *valid, int B, int T,
                    const teacher_capture *cap) {
    const cfg_model *c = &t->c;
    if (B < 1 || T < 1) return fail(t, "empty batch (B=%d, T=%d)", B, T);
    if (T > c->max_pos) return fail(t, "sequence of %d tokens: max_position_embeddings is %d", T, c->max_pos);
    for (int i = 0; cap && i < cap->n_hidden; i++)
        if (cap->hidden_layers[i] < 0 || cap->hidden_layers[i] > c->n_layers)
            return fail(t, "hidden layer %d: the model has layers 0..%d", cap->hidden_layers[i], c->n_layers);
    if (cap && cap->mass && (cap->mass_layer < 1 || cap->mass_layer > c->n_layers))
        return fail(t, "mass layer %d: the model has layers 1..%d", cap->mass_layer, c->n_layers);
    if (cap && cap->mass && cap->mass_rule != TEACHER_MASS_RECEIVED && cap->mass_rule != TEACHER_MASS_LAST)
        return fail(t, "mass rule %d: expected received (0) or last (1)", (int)cap->mass_rule);
    if (cap && cap->topk && (cap->topk < 0 || cap->topk > c->vocab))
        return fail(t, "top-k %d: must be in 1..%d", cap->topk, c->vocab);
    if (cap && cap->rows && cap->topk && cap->topk > t->tk_cap) {
        free(t->tk_ids); free(t->tk_lp); free(t->tk_tail);
        size_t rk = (size_t)4096 * (size_t)cap->topk; /* logit_rows <= 4096 */
        t->tk_ids = malloc(rk * sizeof(int32_t));
        t->tk_lp = malloc(rk * sizeof(float));
        t->tk_tail = malloc(4096 * sizeof(float));
        t->tk_cap = t->tk_ids && t->tk_lp && t->tk_tail ? cap->topk : 0;
        if (!t->tk_cap) return fail(t, "out of memory for top-k");
    }
    size_t N = (size_t)B * T;
    if (grow_acts(t, N, T, T) || embed(t, ids, N)) return -1;
    for (size_t n = 0; n < N; n++) t->pos[n] = (int32_t)(n % (size_t)T);
    if (run_layers(t, B, T, T, valid, NULL, NULL, 0, 0, cap)) return -1;
    int C = c->hidden;
    if (cap && cap->final_hidden) memcpy(cap->final_hidden, t->h, N * C * sizeof(float));
    if (!cap || (!cap->topk && !cap->logits)) return 0;
    if (!cap->rows) { /* the rest of the sequence, or blocks of logit_rows (a multiple of 48) from its start */
        for (size_t s0 = 0; s0 < N; s0 += (size_t)T)
            for (size_t r0 = s0, R; r0 < s0 + (size_t)T; r0 += R) {
                R = s0 + T - r0 <= (size_t)t->logit_cap ? s0 + T - r0 : (size_t)t->logit_rows;
                head_forward(t, t->logits, t->h + r0 * C, (int)R);
                head_outputs(t, cap, t->logits, (int)R, r0, NULL);
            }
        return 0;
    }
    /* selected rows only: gather up to logit_rows of them into t->hsel,
     * run the head on the block, scatter the results to their rows. Each
     * sequence's rows start on a multiple of 48 in the block (zero rows in
     * between, sel = SIZE_MAX), so their bits do not depend on the batch. */
    if (!t->hsel && !(t->hsel = malloc((size_t)t->logit_rows * (C * sizeof(float) + sizeof(size_t)))))
        return fail(t, "out of memory for the selected rows");
    size_t *sel = (size_t *)(t->hsel + (size_t)t->logit_rows * C);
    int R = 0;
    for (size_t n = 0; n <= N; n++) {
        if (n < N && n % (size_t)T == 0 && R % HEAD_GRID) { /* a new sequence: to the next multiple of 48 */
            int R1 = (R + HEAD_GRID - 1) / HEAD_GRID * HEAD_GRID;
            memset(t->hsel + (size_t)R * C, 0, (size_t)(R1 - R) * C * sizeof(float));
            for (; R < R1; R++) sel[R] = SIZE_MAX;
        }
        if (R == t->logit_rows) {
            head_forward(t, t->logits, t->hsel, R);
            head_outputs(t, cap, t->logits, R, 0, sel);
            R = 0;
        }
        if (n < N && cap->rows[n]) {
            memcpy(t->hsel + (size_t)R * C, t->h + n * C, (size_t)C * sizeof(float));
            sel[R++] = n;
        }
        if (n == N && R > 0) {
            head_forward(t, t->logits, t->hsel, R);
            head_outputs(t, cap, t->logits, R, 0, sel);
            R = 0;
        }
    }
    return 0;
}

/* ========================================================= generation */

int teacher_gen_begin(teacher *t, int max_T) {
    const cfg_model *c = &t->c;
    if (max_T < 1 || max_T > c->max_pos) return fail(t, "generation length %d: must be in 1..%d", max_T, c->max_pos);
    size_t n = (size_t)c->n_layers * max_T * c->n_kv_heads * c->head_dim;
    free(t->kc);
    free(t->vc);
    t->kc = malloc(n * sizeof(float));
    t->vc = malloc(n * sizeof(float));
    if (!t->kc || !t->vc) return fail(t, "out of memory for a KV cache of %d positions", max_T);
    t->gen_max = max_T;
    t->gen_len = 0;
    return 0;
}

int teacher_gen_step(teacher *t, const int32_t *ids, int n, float *logits) {
    const cfg_model *c = &t->c;
    if (!t->kc) return fail(t, "teacher_gen_step before teacher_gen_begin");
    if (n < 1 || t->gen_len + n > t->gen_max)
        return fail(t, "%d more tokens after %d: the KV cache holds %d", n, t->gen_len, t->gen_max);
    int Tk = t->gen_len + n;
    if (grow_acts(t, (size_t)n, n, Tk) || embed(t, ids, (size_t)n)) return -1;
    for (int i = 0; i < n; i++) t->pos[i] = t->gen_len + i;
    size_t stride = (size_t)t->gen_max * c->n_kv_heads * c->head_dim;
    if (run_layers(t, 1, n, Tk, NULL, t->kc, t->vc, stride, t->gen_len, NULL)) return -1;
    t->gen_len = Tk;
    head_forward(t, t->logits, t->h + (size_t)(n - 1) * c->hidden, 1);
    memcpy(logits, t->logits, (size_t)c->vocab * sizeof(float));
    return 0;
}

/* ============================================================== flops */

double teacher_forward_flops(const cfg_model *c, int B, int T) {
    double N = (double)B * T, C = c->hidden, QD = (double)c->n_heads * c->head_dim;
    double KD = (double)c->n_kv_heads * c->head_dim, I = c->intermediate;
    double per_layer = 2 * N * C * (QD + 2 * KD) + 2 * N * QD * C + 3 * 2 * N * C * I;
    /* attention: QK^T and AV over the causal half */
    double attn = 2.0 * 2.0 * B * c->n_heads * (double)T * (T + 1) / 2.0 * c->head_dim;
    return c->n_layers * (per_layer + attn) + 2 * N * C * c->vocab;
}
