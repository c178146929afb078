/*
 * distill.c - one distillation micro-batch (contract: distill.h).
 * Dimensions: B sequences, T student tokens (padded), N = B*T rows, dS
 * student width, dT teacher width, G spans of one sequence, A atoms, V
 * student vocabulary, k teacher top-k.
 */
#include "distill.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "layers.h"
#include "loss.h"
#include "spans.h"
#include "util.h"

int dst_method_parse(const char *s) {
    static const char *names[] = {"ce", "sra", "uld", "mined"};
    for (int i = 0; i < 4; i++) if (!strcmp(s, names[i])) return i;
    return -1;
}
const char *dst_method_name(dst_method m) {
    static const char *names[] = {"ce", "sra", "uld", "mined"};
    return (unsigned)m < 4 ? names[m] : "?";
}

void dst_config_v1(dst_config *c, dst_method m) {
    memset(c, 0, sizeof *c);
    c->method = m;
    c->alpha = 0.2; /* method.md §5 */
    c->beta = 1.0;
    c->gamma = 1.0;
    c->tau = 1.0;
    c->min_shared_mass = 0.05;
    c->logit_weight = 1.0;
    c->student_mass = DST_MASS_ATTN;
    c->logits = DST_LOGITS_NEXT;
    c->tau2 = 1;
    c->n_pairs = 1;
    c->pair_student[0] = -1;
    c->pair_weight[0] = 1.0;
}

/* One sequence's student tokens and spans, kept until the backward. */
typedef struct {
    int n_tok, T_b;            /* tokens of the full encoding, kept (<= T) */
    int32_t *ids; uint32_t *start, *end; /* (n_tok) */
    int G;
    span_group *g;             /* (G) */
    float *MT, *W, *Ms;        /* (G) teacher span masses, span weights, student span masses */
    float *cT[DST_MAX_PAIRS], *cS[DST_MAX_PAIRS], *dcS[DST_MAX_PAIRS]; /* per pair (G,dT) (G,dS) (G,dS) */
    float *cTh, *cSh, *dcSh;   /* the head term's final-norm CoMs (G,dT) (G,dS) (G,dS) */
} seqinfo;

struct dst_ctx {
    dst_config c;
    tok_session *ss;
    vocab_map *v;
    int dT;
    seqinfo *seq; int cap_seq;
    double *scratch; size_t cap_scratch;
    float *zc;                 /* (2 * n_s_shared) gathered logits and their gradient */
    float *hscratch; size_t cap_hscratch; /* loss_head_kl's */
};

dst_ctx *dst_new(const dst_config *c, const tok_tokenizer *student, vocab_map *v, int dT) {
    dst_ctx *x = calloc(1, sizeof *x);
    if (!x) return NULL;
    x->c = *c;
    x->v = v;
    x->dT = dT;
    x->zc = malloc(((size_t)v->n_s_shared * 2 + 1) * sizeof(float));
    if (!x->zc || !(x->ss = tok_session_new(student))) { free(x->zc); free(x); return NULL; }
    return x;
}

static void seq_clear(seqinfo *s) {
    free(s->ids); free(s->start); free(s->end); free(s->g);
    free(s->MT); free(s->W); free(s->Ms);
    for (int p = 0; p < DST_MAX_PAIRS; p++) { free(s->cT[p]); free(s->cS[p]); free(s->dcS[p]); }
    free(s->cTh); free(s->cSh); free(s->dcSh);
    memset(s, 0, sizeof *s);
}

void dst_free(dst_ctx *x) {
    if (!x) return;
    for (int i = 0; i < x->cap_seq; i++) seq_clear(&x->seq[i]);
    free(x->seq);
    free(x->scratch);
    free(x->zc);
    free(x->hscratch);
    tok_session_free(x->ss);
    free(x);
}

/* The student's mass of batch row r (method.md §3: its own rule, floored
 * at 1e-6, a constant for the losses). */
static float student_mass(const dst_config *c, const model *m, size_t r) {
    float mi = c->student_mass == DST_MASS_UNIFORM ? 1.0f : m->mass[r];
    return mi < SPAN_MASS_FLOOR ? (float)SPAN_MASS_FLOOR : mi;
}

/* Spans of document d against the kept student tokens of s, and the
 * teacher side of each span (composition law, salience). */
static int make_spans(dst_ctx *x, const ldr_doc *d, seqinfo *s, int dS) {
    const dst_config *c = &x->c;
    size_t n = (size_t)d->len;
    uint32_t *canon = malloc((n + 1) * sizeof *canon);
    span_atom *at = malloc((size_t)d->A * sizeof *at);
    s->g = malloc((size_t)(d->A + 1) * sizeof *s->g);
    if (!canon || !at || !s->g) { free(canon); free(at); return -1; }
    span_canon_map(d->text, n, canon);
    /* where the response starts, as a canonical position (spans are in
     * canonical coordinates) */
    uint32_t resp = c->response_only && d->loss_start > 0 && (size_t)d->loss_start <= n ? canon[d->loss_start] : 0;
    /* §9.7 exact: the student's token ends are taken as they are (the
     * atoms' cuts stay the cache's canonical positions, which are the
     * raw token ends of a teacher that puts spaces in front) */
    if (c->exact_boundaries)
        for (size_t p = 0; p <= n; p++) canon[p] = (uint32_t)p;
    for (int64_t a = 0; a < d->A; a++) at[a] = (span_atom){(uint32_t)d->start[a], (uint32_t)d->end[a], 0, 0};
    int64_t G = span_spans(canon, n, at, (size_t)d->A, s->start, s->end, (size_t)s->T_b, s->g, (size_t)d->A + 1, NULL);
    free(canon);
    free(at);
    if (G < 0) return -1;
    if (resp) { /* §9.5: the prompt is context, never a span */
        int64_t k = 0;
        for (int64_t i = 0; i < G; i++) if (s->g[i].start >= resp) s->g[k++] = s->g[i];
        G = k;
    }
    s->G = (int)G;
    int dT = x->dT;
    s->MT = malloc(((size_t)G + 1) * sizeof(float));
    s->W = malloc(((size_t)G + 1) * sizeof(float));
    s->Ms = malloc(((size_t)G + 1) * sizeof(float));
    if (!s->MT || !s->W || !s->Ms) return -1;
    for (int p = 0; p < c->n_pairs; p++) {
        s->cT[p] = malloc(((size_t)G * dT + 1) * sizeof(float));
        s->cS[p] = malloc(((size_t)G * dS + 1) * sizeof(float));
        s->dcS[p] = calloc((size_t)G * dS + 1, sizeof(float));
        if (!s->cT[p] || !s->cS[p] || !s->dcS[p]) return -1;
        if (G && span_merge(s->g, (size_t)G, (size_t)d->A, (size_t)dT, d->coms[p], d->mass, s->cT[p], s->MT)) return -1;
    }
    if (c->logits == DST_LOGITS_HEAD && c->method == DST_SRA) {
        s->cTh = malloc(((size_t)G * dT + 1) * sizeof(float));
        s->cSh = malloc(((size_t)G * dS + 1) * sizeof(float));
        s->dcSh = calloc((size_t)G * dS + 1, sizeof(float));
        if (!s->cTh || !s->cSh || !s->dcSh) return -1;
        if (G && span_merge(s->g, (size_t)G, (size_t)d->A, (size_t)dT, d->coms[c->head_slot], d->mass, s->cTh, s->MT))
            return -1;
    }
    double tot = 0;
    for (int i = 0; i < G; i++) tot += s->MT[i];
    for (int i = 0; i < G; i++) s->W[i] = (float)(tot > 0 && !c->uniform_spans ? s->MT[i] / tot : 1.0 / G);
    return 0;
}

/* The head hook: at each wanted span-end row, the span's logit term (or
 * ULD / MinED) from the student's logits z, its gradient added to the
 * block's dlogits (CE's part already there). */
typedef struct {
    dst_ctx *x;
    const ldr_doc *docs;
    dst_stats *st;
    int Tm;
    float seq_scale;
    double l_logit, l_uld, l_mined;
    const int32_t *row_b, *row_g;
    const uint8_t *rows;
    int oom;
} head_ctx;

static void head_fn(void *ctxp, size_t r0, int R, const float *logits, float *dlogits) {
    head_ctx *h = ctxp;
    dst_ctx *x = h->x;
    const dst_config *c = &x->c;
    int V = x->v->VS;
    for (int r = 0; r < R; r++) {
        size_t row = r0 + (size_t)r;
        if (!h->rows[row]) continue;
        int b = h->row_b[row], gi = h->row_g[row];
        const seqinfo *s = &x->seq[b];
        const span_group *g = &s->g[gi];
        const ldr_doc *d = &h->docs[b];
        int k = d->k;
        const int32_t *tid = d->topk_ids + (size_t)g->atom_last * k;
        const float *tlp = d->topk_lp + (size_t)g->atom_last * k;
        const float *z = logits + (size_t)r * V;
        float *dz = dlogits ? dlogits + (size_t)r * V : NULL;
        float w = s->W[gi] * h->seq_scale * (c->method == DST_SRA ? (float)c->logit_weight : 1.0f);
        if (c->method == DST_SRA) {
            double shared = 0;
            for (int j = 0; j < k; j++)
                if (tid[j] >= 0 && tid[j] < x->v->VT && x->v->t_key[tid[j]] >= 0) shared += exp(tlp[j]);
            if (shared < c->min_shared_mass) { h->st->logit_skipped++; continue; }
            if (c->logit_weight == 0) dz = NULL; /* ablation: the value is still logged */
            /* only the student ids with a shared key take part (the rest
             * cancel in the renormalization): gather them, then scatter
             * the gradient back */
            const vocab_map *v = x->v;
            int ns = v->n_s_shared;
            float *zc = x->zc, *dzc = x->zc + ns;
            for (int i = 0; i < ns; i++) { zc[i] = z[v->s_shared_ids[i]]; dzc[i] = 0.0f; }
            /* loss_logit_kl carries tau^2; without it (tau2 = 0) value and
             * gradient are divided back (v1's path is untouched) */
            double un = c->tau2 ? 1.0 : 1.0 / (c->tau * c->tau);
            double val = loss_logit_kl(dz ? dzc : NULL, zc, ns, tid, tlp, k, v->t_key, v->s_shared_key, v->K,
                                       (float)c->tau, c->tau2 ? w : (float)(w * un), &shared, x->scratch);
            if (!c->tau2) val *= un;
            if (dz)
                for (int i = 0; i < ns; i++) dz[v->s_shared_ids[i]] += dzc[i];
            h->st->logit_spans++;
            h->st->shared_mass_sum += shared;
            h->l_logit += s->W[gi] * val;
        } else if (c->method == DST_ULD) {
            h->l_uld += s->W[gi] * loss_uld(dz, z, V, tlp, k, w, x->scratch);
        } else {
            for (int j = 0; j < k; j++) if (tid[j] >= 0) vocab_mined_map(x->v, tid[j]);
            h->l_mined += s->W[gi] * loss_mined_kl(dz, z, V, tid, tlp, k, x->v->t2s, w, x->scratch);
        }
    }
}

int dst_step(dst_ctx *x, model *m, const ldr_doc *docs, int B, int T, const float *P, float *dP, float grad_scale,
             dst_stats *st, char *err, size_t errlen) {
    const dst_config *c = &x->c;
    const int dS = m->c.hidden, dT = x->dT, V = m->c.vocab;
    memset(st, 0, sizeof *st);
    if (B > x->cap_seq) {
        seqinfo *ns = realloc(x->seq, (size_t)B * sizeof *ns);
        if (!ns) { snprintf(err, errlen, "out of memory"); return -1; }
        memset(ns + x->cap_seq, 0, (size_t)(B - x->cap_seq) * sizeof *ns);
        x->seq = ns;
        x->cap_seq = B;
    }
    /* student tokens of every document */
    int Tm = 2;
    for (int b = 0; b < B; b++) {
        seqinfo *s = &x->seq[b];
        seq_clear(s);
        tok_encoding e;
        if (tok_encode(x->ss, docs[b].text, (size_t)docs[b].len, 1, &e)) {
            snprintf(err, errlen, "record %lld: the student tokenizer refuses it: %s", (long long)docs[b].record,
                     tok_session_error(x->ss));
            return -1;
        }
        s->n_tok = (int)e.n;
        s->T_b = e.n < (size_t)T ? (int)e.n : T;
        s->ids = malloc((e.n + 1) * 4);
        s->start = malloc((e.n + 1) * 4);
        s->end = malloc((e.n + 1) * 4);
        if (!s->ids || !s->start || !s->end) { snprintf(err, errlen, "out of memory"); return -1; }
        memcpy(s->ids, e.ids, e.n * 4);
        memcpy(s->start, e.start, e.n * 4);
        memcpy(s->end, e.end, e.n * 4);
        if (s->T_b > Tm) Tm = s->T_b;
    }
    size_t N = (size_t)B * Tm;
    int32_t *ids = malloc(N * 4), *tg = malloc(N * 4);
    uint8_t *valid = calloc(N, 1);
    if (!ids || !tg || !valid) { free(ids); free(tg); free(valid); snprintf(err, errlen, "out of memory"); return -1; }
    for (int b = 0; b < B; b++) {
        const seqinfo *s = &x->seq[b];
        int64_t ls = docs[b].loss_start;
        for (int j = 0; j < Tm; j++) {
            size_t r = (size_t)b * Tm + j;
            valid[r] = j < s->T_b;
            ids[r] = j < s->T_b ? s->ids[j] : (s->n_tok ? s->ids[0] : 0);
            tg[r] = -1;
            if (j < s->T_b && j + 1 < s->n_tok) {
                int nx = j + 1;
                int counted = s->end[nx] > s->start[nx] ? (int64_t)s->end[nx] > ls : (int64_t)s->start[nx] >= ls;
                if (counted) tg[r] = s->ids[nx];
            }
        }
    }
    int64_t count = model_count_targets(tg, N);
    double a = c->method == DST_CE ? 0.0 : c->alpha;
    float ce_scale = count ? (float)((1.0 - a) * grad_scale / (double)count) : 0.0f;
    float seq_scale = (float)(a * grad_scale / B);
    st->tokens = count;
    st->seqs = B;
    /* spans first (they need only texts, atoms and student offsets), and
     * the span-end rows whose logits the head hook turns into L_logit,
     * ULD or MinED: row r of the batch -> (sequence, span) */
    head_ctx hc = {x, docs, st, Tm, seq_scale, 0, 0, 0, NULL, NULL, NULL, 0};
    size_t need_s = loss_logit_scratch(V, x->v->K);
    if (loss_uld_scratch(V) > need_s) need_s = loss_uld_scratch(V);
    if ((size_t)V > need_s) need_s = (size_t)V;
    if (need_s > x->cap_scratch) {
        free(x->scratch);
        x->scratch = malloc(need_s * sizeof(double));
        x->cap_scratch = x->scratch ? need_s : 0;
    }
    uint8_t *rows = calloc(N, 1);
    int32_t *row_b = malloc(N * 4), *row_g = malloc(N * 4);
    int fail = !rows || !row_b || !row_g || !x->scratch;
    for (int b = 0; b < B && !fail && c->method != DST_CE; b++) {
        seqinfo *s = &x->seq[b];
        if (make_spans(x, &docs[b], s, dS)) {
            snprintf(err, errlen, "record %lld: spans failed (out of memory or atoms outside the text)",
                     (long long)docs[b].record);
            fail = 2;
            break;
        }
        st->spans += s->G;
        for (int gi = 0; gi < s->G; gi++) {
            const span_group *g = &s->g[gi];
            if (c->method == DST_SRA && c->logits == DST_LOGITS_HEAD) break; /* no span-end rows: head on CoMs */
            if (g->tok_last + 1 >= s->n_tok) continue; /* no student token follows: nothing to predict */
            if (c->method == DST_MINED && (g->atom_first != g->atom_last || g->tok_first != g->tok_last)) continue;
            size_t r = (size_t)b * Tm + g->tok_last;
            rows[r] = 1;
            row_b[r] = b;
            row_g[r] = gi;
        }
    }
    if (fail) {
        if (fail == 1) snprintf(err, errlen, "out of memory");
        free(rows); free(row_b); free(row_g); free(ids); free(tg); free(valid);
        return -1;
    }
    hc.row_b = row_b;
    hc.row_g = row_g;
    hc.rows = rows;
    model_head_hook hook = {rows, head_fn, &hc};
    m->want_mass = c->method != DST_SRA ? 0 : c->student_mass == DST_MASS_ATTN ? MODEL_MASS_ATTN
                 : c->student_mass == DST_MASS_LAST ? MODEL_MASS_LAST : 0;
    float ce = model_forward_hook(m, ids, tg, valid, B, Tm, ce_scale > 0 ? ce_scale : 1e-30f,
                                  c->method == DST_CE ? NULL : &hook);
    free(tg); /* ids and valid stay: model_backward reads them */
    free(rows); free(row_b); free(row_g);
    if (ce < 0 || hc.oom) {
        free(ids); free(valid);
        snprintf(err, errlen, "out of memory for activations");
        return -1;
    }
    st->ce = ce;
    double total = (1.0 - a) * ce;
    const int L = m->c.n_layers;
    float **dres = NULL; /* gradients of inner residual streams (pairs with a student layer >= 0) */
    if (c->method != DST_CE) {
        double l_span = 0, l_geo = 0, l_head = 0;
        for (int p = 0; p < c->n_pairs && !fail; p++) {
            int sl = c->pair_student[p];
            if (sl < 0) continue;
            if (!dres && !(dres = calloc((size_t)L + 1, sizeof *dres))) { fail = 1; break; }
            if (!dres[sl] && !(dres[sl] = calloc(N * dS, sizeof(float)))) fail = 1;
        }
        const int head = c->method == DST_SRA && c->logits == DST_LOGITS_HEAD;
        for (int b = 0; b < B && !fail; b++) {
            seqinfo *s = &x->seq[b];
            if (!s->G) continue;
            for (int p = 0; p <= c->n_pairs; p++) { // cS (G,dS): mass-weighted means of the span's rows
                if (p == c->n_pairs && !head) break;
                int sl = p < c->n_pairs ? c->pair_student[p] : -1; // the head term: final norm
                const float *hf = (sl < 0 ? m->hf : m->x + (size_t)sl * N * dS) + (size_t)b * Tm * dS;
                float *cS = p < c->n_pairs ? s->cS[p] : s->cSh;
                for (int gi = 0; gi < s->G; gi++) {
                    const span_group *g = &s->g[gi];
                    double Ms = 0;
                    float *cs = cS + (size_t)gi * dS;
                    for (int j = 0; j < dS; j++) cs[j] = 0;
                    for (int i = g->tok_first; i <= g->tok_last; i++) {
                        float mi = student_mass(c, m, (size_t)b * Tm + i);
                        Ms += mi;
                        for (int j = 0; j < dS; j++) cs[j] += mi * hf[(size_t)i * dS + j];
                    }
                    for (int j = 0; j < dS; j++) cs[j] = (float)(cs[j] / Ms);
                    s->Ms[gi] = (float)Ms;
                }
            }
            if (c->method != DST_SRA) continue;
            for (int p = 0; p < c->n_pairs; p++) {
                size_t po = (size_t)p * dT * dS; // pair p's projection
                float sb = (float)(c->beta * seq_scale * c->pair_weight[p]);
                double v = c->span_mse ? loss_span_mse(s->dcS[p], dP + po, s->W, s->cS[p], s->cT[p], P + po, s->G, dS, dT, sb)
                                       : loss_span_cos(s->dcS[p], dP + po, s->W, s->cS[p], s->cT[p], P + po, s->G, dS, dT, sb);
                l_span += c->pair_weight[p] * v;
            }
            int lp = c->n_pairs - 1; // L_geo on the last pair
            float sg = (float)(c->gamma * seq_scale);
            l_geo += loss_geo(s->dcS[lp], s->W, s->cS[lp], s->cT[lp], s->G, dS, dT, sg);
            if (head) { /* §9.2: sum over spans, each model's head on its CoMs */
                float sh = (float)(c->logit_weight * seq_scale);
                int grad = c->logit_weight != 0; /* the no-logit ablation still logs the value */
                size_t need = loss_head_kl_scratch(s->G, c->n_head, dS);
                if (need > x->cap_hscratch) {
                    free(x->hscratch);
                    x->hscratch = malloc(need * sizeof(float));
                    x->cap_hscratch = x->hscratch ? need : 0;
                    if (!x->hscratch) { fail = 1; break; }
                }
                l_head += loss_head_kl(grad ? s->dcSh : NULL, grad ? m->dhead : NULL, NULL, s->cSh, s->cTh, c->head_T,
                                       m->head, c->head_s_ids, s->G, c->n_head, dS, dT, (float)c->tau, c->tau2, sh,
                                       x->hscratch);
            }
            /* dh_i += m_i / M_s * dc_s (masses are constants; M_s is the
             * same for every layer) */
            for (int p = 0; p <= c->n_pairs; p++) {
                if (p == c->n_pairs && !head) break;
                int sl = p < c->n_pairs ? c->pair_student[p] : -1;
                float *dhf = (sl < 0 ? m->dhf : dres[sl]) + (size_t)b * Tm * dS;
                const float *dcS = p < c->n_pairs ? s->dcS[p] : s->dcSh;
                for (int gi = 0; gi < s->G; gi++) {
                    const span_group *g = &s->g[gi];
                    for (int i = g->tok_first; i <= g->tok_last; i++) {
                        float f = student_mass(c, m, (size_t)b * Tm + i) / s->Ms[gi];
                        for (int j = 0; j < dS; j++) dhf[(size_t)i * dS + j] += f * dcS[(size_t)gi * dS + j];
                    }
                }
            }
        }
        if (fail) {
            if (dres) for (int l = 0; l <= L; l++) free(dres[l]);
            free(dres);
            free(ids); free(valid);
            snprintf(err, errlen, "out of memory");
            return -1;
        }
        st->span = l_span / B;
        st->geo = l_geo / B;
        st->logit = (head ? l_head : hc.l_logit) / B;
        st->uld = hc.l_uld / B;
        st->mined = hc.l_mined / B;
        if (c->method == DST_SRA) total += a * (c->logit_weight * st->logit + c->beta * st->span + c->gamma * st->geo);
        else if (c->method == DST_ULD) total += a * st->uld;
        else total += a * st->mined;
    }
    st->loss = total;
    m->dres = dres;
    model_backward(m);
    m->dres = NULL;
    if (dres) for (int l = 0; l <= L; l++) free(dres[l]);
    free(dres);
    free(valid);
    free(ids);
    return 0;
}
