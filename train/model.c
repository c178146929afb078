/*
 * model.c - the student transformer: parameters, forward that keeps what
 * backward needs, backward, init, Hugging Face import and export
 * (contract: model.h). Dimensions as in layers.h: B, T, N = B*T, C, NH,
 * NKV, HS, QD = NH*HS, KD = NKV*HS, I, V, L.
 */
#include "model.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "layers.h"
#include "safetensors.h"
#include "util.h"

/* ========================================================= parameters */

static void add_tensor(model *m, const char *name, int64_t d0, int64_t d1, int decay) {
    model_tensor *t = &m->tensors[m->n_tensors++];
    snprintf(t->name, sizeof t->name, "%s", name);
    t->ndim = d1 ? 2 : 1;
    t->shape[0] = d0;
    t->shape[1] = d1;
    t->n = (size_t)d0 * (size_t)(d1 ? d1 : 1);
    t->off = m->n_params;
    t->decay = decay;
    m->n_params += t->n;
}

/* Points p at the tensors of a slab (params or grads). */
static void views(model *m, float *slab, float **wte, float **lnf, float **head, model_block *blk) {
    const cfg_model *c = &m->c;
    int i = 0;
    *wte = slab + m->tensors[i++].off;
    for (int l = 0; l < c->n_layers; l++) {
        model_block *b = &blk[l];
        memset(b, 0, sizeof *b);
        b->ln1 = slab + m->tensors[i++].off;
        b->wq = slab + m->tensors[i++].off;
        if (c->qkv_bias) b->bq = slab + m->tensors[i++].off;
        b->wk = slab + m->tensors[i++].off;
        if (c->qkv_bias) b->bk = slab + m->tensors[i++].off;
        b->wv = slab + m->tensors[i++].off;
        if (c->qkv_bias) b->bv = slab + m->tensors[i++].off;
        b->wo = slab + m->tensors[i++].off;
        if (c->o_bias) b->bo = slab + m->tensors[i++].off;
        b->ln2 = slab + m->tensors[i++].off;
        b->wg = slab + m->tensors[i++].off;
        b->wu = slab + m->tensors[i++].off;
        b->wd = slab + m->tensors[i++].off;
    }
    *lnf = slab + m->tensors[i++].off;
    *head = c->tie_embeddings ? *wte : slab + m->tensors[i++].off;
}

/* Builds the tensor table and the two slabs for config c. */
static int alloc_params(model *m, const cfg_model *c, char *err, size_t errlen) {
    memset(m, 0, sizeof *m);
    m->c = *c;
    if (c->qk_norm) {
        snprintf(err, errlen, "model_type %s: q/k norms (qwen3) are not supported for training", c->model_type);
        return -1;
    }
    int C = c->hidden, QD = c->n_heads * c->head_dim, KD = c->n_kv_heads * c->head_dim, I = c->intermediate;
    int64_t V = c->vocab;
    m->tensors = calloc((size_t)c->n_layers * 13 + 3, sizeof *m->tensors);
    m->blk = calloc((size_t)c->n_layers, sizeof *m->blk);
    m->dblk = calloc((size_t)c->n_layers, sizeof *m->dblk);
    m->inv_freq = malloc((size_t)(c->head_dim / 2 + 1) * sizeof *m->inv_freq);
    if (!m->tensors || !m->blk || !m->dblk || !m->inv_freq) { snprintf(err, errlen, "out of memory"); return -1; }
    char nm[96];
    add_tensor(m, "model.embed_tokens.weight", V, C, 1);
    for (int l = 0; l < c->n_layers; l++) {
#define T_(suffix, d0, d1, decay) \
    (snprintf(nm, sizeof nm, "model.layers.%d.%s", l, suffix), add_tensor(m, nm, d0, d1, decay))
        T_("input_layernorm.weight", C, 0, 0);
        T_("self_attn.q_proj.weight", QD, C, 1);
        if (c->qkv_bias) T_("self_attn.q_proj.bias", QD, 0, 0);
        T_("self_attn.k_proj.weight", KD, C, 1);
        if (c->qkv_bias) T_("self_attn.k_proj.bias", KD, 0, 0);
        T_("self_attn.v_proj.weight", KD, C, 1);
        if (c->qkv_bias) T_("self_attn.v_proj.bias", KD, 0, 0);
        T_("self_attn.o_proj.weight", C, QD, 1);
        if (c->o_bias) T_("self_attn.o_proj.bias", C, 0, 0);
        T_("post_attention_layernorm.weight", C, 0, 0);
        T_("mlp.gate_proj.weight", I, C, 1);
        T_("mlp.up_proj.weight", I, C, 1);
        T_("mlp.down_proj.weight", C, I, 1);
#undef T_
    }
    add_tensor(m, "model.norm.weight", C, 0, 0);
    if (!c->tie_embeddings) add_tensor(m, "lm_head.weight", V, C, 1);
    m->params = calloc(m->n_params, sizeof(float));
    m->grads = calloc(m->n_params, sizeof(float));
    if (!m->params || !m->grads) {
        snprintf(err, errlen, "out of memory for %zu parameters", m->n_params);
        return -1;
    }
    views(m, m->params, &m->wte, &m->lnf, &m->head, m->blk);
    views(m, m->grads, &m->dwte, &m->dlnf, &m->dhead, m->dblk);
    cfg_rope_inv_freq(c, m->inv_freq);
    return 0;
}

const model_tensor *model_find(const model *m, const char *name) {
    for (int i = 0; i < m->n_tensors; i++)
        if (!strcmp(m->tensors[i].name, name)) return &m->tensors[i];
    return NULL;
}

int model_init(model *m, const cfg_model *c, uint64_t seed, char *err, size_t errlen) {
    if (alloc_params(m, c, err, errlen)) { model_free(m); return -1; }
    uint64_t s = seed;
    for (int i = 0; i < m->n_tensors; i++) {
        const model_tensor *t = &m->tensors[i];
        float *p = m->params + t->off;
        int is_norm = strstr(t->name, "norm") != NULL, is_bias = strstr(t->name, ".bias") != NULL;
        for (size_t j = 0; j < t->n; j++)
            p[j] = is_norm ? 1.0f : is_bias ? 0.0f : (float)(0.02 * sra_normal(&s));
    }
    return 0;
}

int model_load_hf(model *m, const char *dir, char *err, size_t errlen) {
    cfg_model c;
    if (cfg_load(&c, dir, err, errlen)) return -1;
    if (alloc_params(m, &c, err, errlen)) { model_free(m); return -1; }
    st_file *st = NULL;
    if (st_open(&st, dir)) {
        snprintf(err, errlen, "%s", st ? st_errmsg(st) : "out of memory");
        st_close(st);
        model_free(m);
        return -1;
    }
    for (int i = 0; i < m->n_tensors; i++) {
        const model_tensor *t = &m->tensors[i];
        const st_tensor *x = st_get(st, t->name, t->ndim, t->shape);
        if (!x) {
            snprintf(err, errlen, "%s", st_errmsg(st));
            st_close(st);
            model_free(m);
            return -1;
        }
        st_to_f32(x, 0, t->n, m->params + t->off);
    }
    st_close(st);
    return 0;
}

int model_export_hf(const model *m, const char *dir, char *err, size_t errlen) {
    const cfg_model *c = &m->c;
    if (mkdir(dir, 0777) && errno != EEXIST) {
        snprintf(err, errlen, "%s: cannot create: %s", dir, strerror(errno));
        return -1;
    }
    char path[4200];
    snprintf(path, sizeof path, "%s/config.json", dir);
    FILE *f = fopen(path, "w");
    if (!f) { snprintf(err, errlen, "%s: cannot write: %s", path, strerror(errno)); return -1; }
    /* qwen2 is the HF type with q/k/v biases and none on o; llama's
     * attention_bias puts one on all four */
    int qwen2 = c->qkv_bias && !c->o_bias;
    fprintf(f, "{\n  \"architectures\": [\"%s\"],\n  \"model_type\": \"%s\",\n", qwen2 ? "Qwen2ForCausalLM" : "LlamaForCausalLM",
            qwen2 ? "qwen2" : "llama");
    fprintf(f, "  \"hidden_size\": %d,\n  \"num_hidden_layers\": %d,\n  \"num_attention_heads\": %d,\n"
               "  \"num_key_value_heads\": %d,\n  \"head_dim\": %d,\n  \"intermediate_size\": %d,\n"
               "  \"vocab_size\": %d,\n  \"max_position_embeddings\": %d,\n  \"rms_norm_eps\": %.9g,\n"
               "  \"rope_theta\": %.17g,\n  \"tie_word_embeddings\": %s,\n  \"hidden_act\": \"silu\",\n",
            c->hidden, c->n_layers, c->n_heads, c->n_kv_heads, c->head_dim, c->intermediate, c->vocab, c->max_pos,
            c->rms_eps, c->rope_theta, c->tie_embeddings ? "true" : "false");
    if (!qwen2) fprintf(f, "  \"attention_bias\": %s,\n  \"mlp_bias\": false,\n", c->o_bias ? "true" : "false");
    if (qwen2) fprintf(f, "  \"use_sliding_window\": false,\n");
    if (c->rope_type == CFG_ROPE_LINEAR)
        fprintf(f, "  \"rope_scaling\": {\"rope_type\": \"linear\", \"factor\": %.17g},\n", c->rope_factor);
    else if (c->rope_type == CFG_ROPE_LLAMA3)
        fprintf(f, "  \"rope_scaling\": {\"rope_type\": \"llama3\", \"factor\": %.17g, \"low_freq_factor\": %.17g, "
                   "\"high_freq_factor\": %.17g, \"original_max_position_embeddings\": %d},\n",
                c->rope_factor, c->rope_low_freq_factor, c->rope_high_freq_factor, c->rope_original_max_pos);
    else fprintf(f, "  \"rope_scaling\": null,\n");
    if (c->bos_id >= 0) fprintf(f, "  \"bos_token_id\": %d,\n", c->bos_id);
    if (c->eos_id >= 0) fprintf(f, "  \"eos_token_id\": %d,\n", c->eos_id);
    fprintf(f, "  \"torch_dtype\": \"float32\"\n}\n");
    if (fclose(f)) { snprintf(err, errlen, "%s: cannot write: %s", path, strerror(errno)); return -1; }
    st_out *out = calloc((size_t)m->n_tensors, sizeof *out);
    if (!out) { snprintf(err, errlen, "out of memory"); return -1; }
    for (int i = 0; i < m->n_tensors; i++) {
        const model_tensor *t = &m->tensors[i];
        out[i] = (st_out){t->name, t->ndim, {t->shape[0], t->shape[1]}, m->params + t->off};
    }
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    const char *meta[] = {"format", "pt"};
    int rc = st_write_f32(path, out, m->n_tensors, meta, 1, err, errlen);
    free(out);
    return rc;
}

void model_free(model *m) {
    if (!m) return;
    free(m->tensors); free(m->blk); free(m->dblk); free(m->inv_freq);
    free(m->params); free(m->grads); free(m->acts); free(m->dacts); free(m->logits); free(m->dlogits); free(m->scratch);
    memset(m, 0, sizeof *m);
}

void model_zero_grad(model *m) { memset(m->grads, 0, m->n_params * sizeof(float)); }

int64_t model_count_targets(const int32_t *targets, size_t N) {
    int64_t n = 0;
    for (size_t i = 0; i < N; i++) n += targets[i] >= 0;
    return n;
}

/* ======================================================== activations */

static int grow_acts(model *m, int B, int T) {
    const cfg_model *c = &m->c;
    size_t N = (size_t)B * T;
    size_t need_s = attention_scratch_floats(T, T);
    if (need_s > m->scratch_floats) {
        free(m->scratch);
        if (!(m->scratch = malloc(need_s * sizeof(float)))) return -1;
        m->scratch_floats = need_s;
    }
    if (!m->logits) {
        /* logits of at most 64 MiB at a time */
        size_t rows = ((size_t)16 << 20) / (size_t)c->vocab;
        m->logit_rows = rows < 1 ? 1 : rows > 4096 ? 4096 : (int)rows;
        if (!(m->logits = malloc((size_t)m->logit_rows * c->vocab * sizeof(float)))) return -1;
        if (!(m->dlogits = malloc((size_t)m->logit_rows * c->vocab * sizeof(float)))) return -1;
    }
    if (N <= m->act_rows) return 0;
    size_t L = (size_t)c->n_layers, C = (size_t)c->hidden, I = (size_t)c->intermediate, H2 = (size_t)c->head_dim / 2;
    size_t QD = (size_t)c->n_heads * c->head_dim, KD = (size_t)c->n_kv_heads * c->head_dim;
    /* forward: x (L+1), per block h1 q k v att xm h2 g u s, then hf cos sin pos */
    size_t per_row = (L + 1) * C + L * (C + QD + KD + KD + QD + C + C + I + I + I) + C + 2 * H2 + 1 + 1;
    free(m->acts);
    free(m->dacts);
    m->acts = malloc(N * per_row * sizeof(float));
    /* backward: dx dh dq dk dv datt dg du ds dhf */
    size_t dper_row = C + C + QD + KD + KD + QD + I + I + I + C;
    m->dacts = malloc(N * dper_row * sizeof(float));
    if (!m->acts || !m->dacts) { m->act_rows = 0; return -1; }
    float *p = m->acts;
#define TAKE(ptr, cols) (ptr = p, p += N * (cols))
    TAKE(m->x, (L + 1) * C);
    TAKE(m->h1, L * C); TAKE(m->q, L * QD); TAKE(m->k, L * KD); TAKE(m->v, L * KD); TAKE(m->att, L * QD);
    TAKE(m->xm, L * C); TAKE(m->h2, L * C); TAKE(m->g, L * I); TAKE(m->u, L * I); TAKE(m->s, L * I);
    TAKE(m->hf, C); TAKE(m->cos, H2); TAKE(m->sin, H2); TAKE(m->mass, 1);
    m->pos = (int32_t *)p;
    p = m->dacts;
    TAKE(m->dx, C); TAKE(m->dh, C); TAKE(m->dq, QD); TAKE(m->dk, KD); TAKE(m->dv, KD); TAKE(m->datt, QD);
    TAKE(m->dg, I); TAKE(m->du, I); TAKE(m->ds, I); TAKE(m->dhf, C);
#undef TAKE
    m->act_rows = N;
    return 0;
}

/* ============================================================ forward */

void model_logits(model *m, int r0, int R, float *out) {
    int C = m->c.hidden, V = m->c.vocab;
    matmul_forward(out, m->hf + (size_t)r0 * C, m->head, NULL, R, C, V);
}

float model_forward(model *m, const int32_t *ids, const int32_t *targets, const uint8_t *valid, int B, int T,
                    float grad_scale) {
    return model_forward_hook(m, ids, targets, valid, B, T, grad_scale, NULL);
}

float model_forward_hook(model *m, const int32_t *ids, const int32_t *targets, const uint8_t *valid, int B, int T,
                         float grad_scale, const model_head_hook *hook) {
    const cfg_model *c = &m->c;
    int C = c->hidden, NH = c->n_heads, NKV = c->n_kv_heads, HS = c->head_dim, I = c->intermediate, V = c->vocab;
    int QD = NH * HS, KD = NKV * HS, L = c->n_layers;
    size_t N = (size_t)B * T;
    float eps = (float)c->rms_eps;
    if (grow_acts(m, B, T)) return -1.0f;
    m->B = B;
    m->T = T;
    m->ids = ids;
    m->valid = valid;
    for (size_t n = 0; n < N; n++) m->pos[n] = (int32_t)(n % (size_t)T);
    rope_tables(m->cos, m->sin, m->pos, (int)N, m->inv_freq, HS);
    embedding_forward(m->x, ids, m->wte, (int)N, C); // x[0] (N,C)
    for (int l = 0; l < L; l++) {
        const model_block *w = &m->blk[l];
        float *x = m->x + (size_t)l * N * C, *xn = x + N * C;
        float *h1 = m->h1 + (size_t)l * N * C, *q = m->q + (size_t)l * N * QD, *k = m->k + (size_t)l * N * KD;
        float *v = m->v + (size_t)l * N * KD, *att = m->att + (size_t)l * N * QD, *xm = m->xm + (size_t)l * N * C;
        float *h2 = m->h2 + (size_t)l * N * C, *g = m->g + (size_t)l * N * I, *u = m->u + (size_t)l * N * I;
        float *s = m->s + (size_t)l * N * I;
        rmsnorm_forward(h1, x, w->ln1, (int)N, C, eps);          // h1 (N,C)
        matmul_forward(q, h1, w->wq, w->bq, (int)N, C, QD);      // q (N,NH,HS)
        matmul_forward(k, h1, w->wk, w->bk, (int)N, C, KD);      // k (N,NKV,HS)
        matmul_forward(v, h1, w->wv, w->bv, (int)N, C, KD);      // v (N,NKV,HS)
        rope_forward(q, m->cos, m->sin, (int)N, NH, HS);          // saved after RoPE: what attention saw
        rope_forward(k, m->cos, m->sin, (int)N, NKV, HS);
        float *mass = m->want_mass == MODEL_MASS_ATTN && l == L - 1 ? m->mass : NULL; // (N) received mass
        attention_forward(att, mass, q, k, v, valid, B, T, T, NH, NKV, HS, m->scratch); // att (N,QD)
        if (m->want_mass == MODEL_MASS_LAST && l == L - 1) // (N) the last real query's attention
            attention_last_mass(m->mass, q, k, valid, B, T, NH, NKV, HS);
        matmul_forward(xm, att, w->wo, w->bo, (int)N, QD, C);    // xm = x + att Wo^T (+ bo)
        residual_forward(xm, x, N * C);
        rmsnorm_forward(h2, xm, w->ln2, (int)N, C, eps);
        matmul_forward(g, h2, w->wg, NULL, (int)N, C, I);        // g, u (N,I)
        matmul_forward(u, h2, w->wu, NULL, (int)N, C, I);
        swiglu_forward(s, g, u, N * I);                          // s (N,I)
        matmul_forward(xn, s, w->wd, NULL, (int)N, I, C);        // x_{l+1} = xm + s Wd^T
        residual_forward(xn, xm, N * C);
    }
    rmsnorm_forward(m->hf, m->x + (size_t)L * N * C, m->lnf, (int)N, C, eps); // hf (N,C)
    m->loss_sum = 0;
    m->loss_count = 0;
    if (!targets) return 0.0f;
    /* the head a block of rows at a time: logits (R,V) -> loss, and with
     * grad_scale the head's backward at once (dhf, dhead) */
    int backward = grad_scale > 0;
    if (backward) memset(m->dhf, 0, N * C * sizeof(float));
    for (size_t r0 = 0; r0 < N; r0 += (size_t)m->logit_rows) {
        int R = N - r0 < (size_t)m->logit_rows ? (int)(N - r0) : m->logit_rows;
        const int32_t *tg = targets + r0;
        int wanted = 0;
        for (int r = 0; hook && !wanted && r < R; r++) wanted = hook->rows[r0 + r];
        if (!wanted && !model_count_targets(tg, (size_t)R)) continue;
        model_logits(m, (int)r0, R, m->logits); // logits (R,V)
        m->loss_sum += crossentropy_forward_backward(backward ? m->dlogits : NULL, m->logits, tg, R, V, grad_scale);
        if (hook && wanted) hook->fn(hook->ctx, r0, R, m->logits, backward ? m->dlogits : NULL);
        if (backward)
            matmul_backward(m->dhf + r0 * C, m->dhead, NULL, m->dlogits, m->hf + r0 * C, m->head, R, C, V);
    }
    m->loss_count = model_count_targets(targets, N);
    return m->loss_count ? (float)(m->loss_sum / (double)m->loss_count) : 0.0f;
}

/* =========================================================== backward */

void model_backward(model *m) {
    const cfg_model *c = &m->c;
    int C = c->hidden, NH = c->n_heads, NKV = c->n_kv_heads, HS = c->head_dim, I = c->intermediate;
    int QD = NH * HS, KD = NKV * HS, L = c->n_layers, B = m->B, T = m->T;
    size_t N = (size_t)B * T;
    float eps = (float)c->rms_eps;
    // dx (N,C): the gradient of the residual stream, from the final norm down
    memset(m->dx, 0, N * C * sizeof(float));
    rmsnorm_backward(m->dx, m->dlnf, m->dhf, m->x + (size_t)L * N * C, m->lnf, (int)N, C, eps);
    if (m->dres && m->dres[L]) residual_forward(m->dx, m->dres[L], N * C); // dx += d x_L from inner losses
    for (int l = L - 1; l >= 0; l--) {
        const model_block *w = &m->blk[l];
        model_block *dw = &m->dblk[l];
        float *x = m->x + (size_t)l * N * C;
        float *h1 = m->h1 + (size_t)l * N * C, *q = m->q + (size_t)l * N * QD, *k = m->k + (size_t)l * N * KD;
        float *v = m->v + (size_t)l * N * KD, *att = m->att + (size_t)l * N * QD, *xm = m->xm + (size_t)l * N * C;
        float *h2 = m->h2 + (size_t)l * N * C, *g = m->g + (size_t)l * N * I, *u = m->u + (size_t)l * N * I;
        float *s = m->s + (size_t)l * N * I;
        // MLP: x_{l+1} = xm + s Wd^T; dx flows on to xm unchanged (residual)
        memset(m->ds, 0, N * I * sizeof(float));
        matmul_backward(m->ds, dw->wd, NULL, m->dx, s, w->wd, (int)N, I, C);
        memset(m->dg, 0, N * I * sizeof(float));
        memset(m->du, 0, N * I * sizeof(float));
        swiglu_backward(m->dg, m->du, m->ds, g, u, N * I);
        memset(m->dh, 0, N * C * sizeof(float));
        matmul_backward(m->dh, dw->wg, NULL, m->dg, h2, w->wg, (int)N, C, I);
        matmul_backward(m->dh, dw->wu, NULL, m->du, h2, w->wu, (int)N, C, I);
        rmsnorm_backward(m->dx, dw->ln2, m->dh, xm, w->ln2, (int)N, C, eps); // dx = d xm now
        // attention: xm = x + att Wo^T + bo
        memset(m->datt, 0, N * QD * sizeof(float));
        matmul_backward(m->datt, dw->wo, dw->bo, m->dx, att, w->wo, (int)N, QD, C);
        memset(m->dq, 0, N * QD * sizeof(float));
        memset(m->dk, 0, N * KD * sizeof(float));
        memset(m->dv, 0, N * KD * sizeof(float));
        attention_backward(m->dq, m->dk, m->dv, m->datt, q, k, v, att, m->valid, B, T, NH, NKV, HS);
        rope_backward(m->dq, m->cos, m->sin, (int)N, NH, HS);
        rope_backward(m->dk, m->cos, m->sin, (int)N, NKV, HS);
        memset(m->dh, 0, N * C * sizeof(float));
        matmul_backward(m->dh, dw->wq, dw->bq, m->dq, h1, w->wq, (int)N, C, QD);
        matmul_backward(m->dh, dw->wk, dw->bk, m->dk, h1, w->wk, (int)N, C, KD);
        matmul_backward(m->dh, dw->wv, dw->bv, m->dv, h1, w->wv, (int)N, C, KD);
        rmsnorm_backward(m->dx, dw->ln1, m->dh, x, w->ln1, (int)N, C, eps); // dx = d x_l
        if (m->dres && m->dres[l]) residual_forward(m->dx, m->dres[l], N * C);
    }
    embedding_backward(m->dwte, m->dx, m->ids, (int)N, C);
}
