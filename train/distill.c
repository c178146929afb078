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

/* One sequence's student tokens and spans, kept until the backward. */
typedef struct {
    int n_tok, T_b;            /* tokens of the full encoding, kept (<= T) */
    int32_t *ids; uint32_t *start, *end; /* (n_tok) */
    int G;
    span_group *g;             /* (G) */
    float *cT, *MT, *W, *cS, *dcS, *Ms; /* (G,dT) (G) (G) (G,dS) (G,dS) (G) student span masses */
} seqinfo;

struct dst_ctx {
    dst_config c;
    tok_session *ss;
    vocab_map *v;
    int dT;
    seqinfo *seq; int cap_seq;
    double *scratch; size_t cap_scratch;
};

dst_ctx *dst_new(const dst_config *c, const tok_tokenizer *student, vocab_map *v, int dT) {
    dst_ctx *x = calloc(1, sizeof *x);
    if (!x) return NULL;
    x->c = *c;
    x->v = v;
    x->dT = dT;
    if (!(x->ss = tok_session_new(student))) { free(x); return NULL; }
    return x;
}

static void seq_clear(seqinfo *s) {
    free(s->ids); free(s->start); free(s->end); free(s->g);
    free(s->cT); free(s->MT); free(s->W); free(s->cS); free(s->dcS); free(s->Ms);
    memset(s, 0, sizeof *s);
}

void dst_free(dst_ctx *x) {
    if (!x) return;
    for (int i = 0; i < x->cap_seq; i++) seq_clear(&x->seq[i]);
    free(x->seq);
    free(x->scratch);
    tok_session_free(x->ss);
    free(x);
}

/* Spans of document d against the kept student tokens of s, and the
 * teacher side of each span (composition law, salience). */
static int make_spans(dst_ctx *x, const ldr_doc *d, seqinfo *s, int dS) {
    size_t n = (size_t)d->len;
    uint32_t *canon = malloc((n + 1) * sizeof *canon);
    span_atom *at = malloc((size_t)d->A * sizeof *at);
    s->g = malloc((size_t)(d->A + 1) * sizeof *s->g);
    if (!canon || !at || !s->g) { free(canon); free(at); return -1; }
    span_canon_map(d->text, n, canon);
    for (int64_t a = 0; a < d->A; a++) at[a] = (span_atom){(uint32_t)d->start[a], (uint32_t)d->end[a], 0, 0};
    int64_t G = span_spans(canon, n, at, (size_t)d->A, s->start, s->end, (size_t)s->T_b, s->g, (size_t)d->A + 1, NULL);
    free(canon);
    free(at);
    if (G < 0) return -1;
    s->G = (int)G;
    int dT = x->dT;
    s->cT = malloc(((size_t)G * dT + 1) * sizeof(float));
    s->MT = malloc(((size_t)G + 1) * sizeof(float));
    s->W = malloc(((size_t)G + 1) * sizeof(float));
    s->cS = malloc(((size_t)G * dS + 1) * sizeof(float));
    s->dcS = calloc((size_t)G * dS + 1, sizeof(float));
    s->Ms = malloc(((size_t)G + 1) * sizeof(float));
    if (!s->cT || !s->MT || !s->W || !s->cS || !s->dcS || !s->Ms) return -1;
    if (G && span_merge(s->g, (size_t)G, (size_t)d->A, (size_t)dT, d->com, d->mass, s->cT, s->MT)) return -1;
    double tot = 0;
    for (int i = 0; i < G; i++) tot += s->MT[i];
    for (int i = 0; i < G; i++) s->W[i] = (float)(tot > 0 ? s->MT[i] / tot : 1.0 / G);
    return 0;
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
    m->want_mass = c->method == DST_SRA && !c->student_uniform;
    float ce = model_forward(m, ids, tg, valid, B, Tm, ce_scale > 0 ? ce_scale : 1e-30f);
    free(tg); /* ids and valid stay: model_backward reads them */
    if (ce < 0) { free(ids); free(valid); snprintf(err, errlen, "out of memory for activations"); return -1; }
    st->ce = ce;
    st->tokens = count;
    st->seqs = B;
    double total = (1.0 - a) * ce;
    if (c->method != DST_CE) {
        float seq_scale = (float)(a * grad_scale / B);
        /* span-end rows for L_logit / ULD / MinED: (sequence, span) */
        int cap_rows = m->logit_rows;
        int32_t *row_b = malloc((size_t)cap_rows * 4), *row_g = malloc((size_t)cap_rows * 4);
        float *hrows = malloc((size_t)cap_rows * dS * 4), *z = malloc((size_t)cap_rows * V * 4);
        float *dh = malloc((size_t)cap_rows * dS * 4);
        size_t need_s = loss_logit_scratch(V, x->v->K);
        if (loss_uld_scratch(V) > need_s) need_s = loss_uld_scratch(V);
        if (need_s > x->cap_scratch) {
            free(x->scratch);
            x->scratch = malloc(need_s * sizeof(double));
            x->cap_scratch = x->scratch ? need_s : 0;
        }
        if (!row_b || !row_g || !hrows || !z || !dh || !x->scratch) {
            free(row_b); free(row_g); free(hrows); free(z); free(dh); free(valid); free(ids);
            snprintf(err, errlen, "out of memory");
            return -1;
        }
        double l_span = 0, l_geo = 0, l_logit = 0, l_uld = 0, l_mined = 0;
        /* pass 1, per sequence: spans, student span CoMs, L_span, L_geo,
         * and the list of span-end rows */
        int32_t *all_b = NULL, *all_g = NULL;
        size_t n_all = 0, cap_all = 0;
        int oom = 0;
        for (int b = 0; b < B && !oom; b++) {
            seqinfo *s = &x->seq[b];
            const ldr_doc *d = &docs[b];
            if (make_spans(x, d, s, dS)) {
                free(row_b); free(row_g); free(hrows); free(z); free(dh); free(valid); free(ids); free(all_b); free(all_g);
                snprintf(err, errlen, "record %lld: spans failed (out of memory or atoms outside the text)",
                         (long long)d->record);
                return -1;
            }
            st->spans += s->G;
            if (!s->G) continue;
            const float *hf = m->hf + (size_t)b * Tm * dS;
            for (int gi = 0; gi < s->G; gi++) { // cS (G,dS): mass-weighted means of the span's rows
                const span_group *g = &s->g[gi];
                double Ms = 0;
                float *cs = s->cS + (size_t)gi * dS;
                for (int j = 0; j < dS; j++) cs[j] = 0;
                for (int i = g->tok_first; i <= g->tok_last; i++) {
                    float mi = c->student_uniform ? 1.0f : m->mass[(size_t)b * Tm + i];
                    if (mi < SPAN_MASS_FLOOR) mi = (float)SPAN_MASS_FLOOR;
                    Ms += mi;
                    for (int j = 0; j < dS; j++) cs[j] += mi * hf[(size_t)i * dS + j];
                }
                for (int j = 0; j < dS; j++) cs[j] = (float)(cs[j] / Ms);
                s->Ms[gi] = (float)Ms;
            }
            if (c->method == DST_SRA) {
                float sb = (float)(c->beta * seq_scale), sg = (float)(c->gamma * seq_scale);
                l_span += c->span_mse ? loss_span_mse(s->dcS, dP, s->W, s->cS, s->cT, P, s->G, dS, dT, sb)
                                      : loss_span_cos(s->dcS, dP, s->W, s->cS, s->cT, P, s->G, dS, dT, sb);
                l_geo += loss_geo(s->dcS, s->W, s->cS, s->cT, s->G, dS, dT, sg);
                /* dh_i += m_i / M_s * dc_s (masses are constants) */
                float *dhf = m->dhf + (size_t)b * Tm * dS;
                for (int gi = 0; gi < s->G; gi++) {
                    const span_group *g = &s->g[gi];
                    for (int i = g->tok_first; i <= g->tok_last; i++) {
                        float mi = c->student_uniform ? 1.0f : m->mass[(size_t)b * Tm + i];
                        if (mi < SPAN_MASS_FLOOR) mi = (float)SPAN_MASS_FLOOR;
                        float f = mi / s->Ms[gi];
                        for (int j = 0; j < dS; j++) dhf[(size_t)i * dS + j] += f * s->dcS[(size_t)gi * dS + j];
                    }
                }
            }
            /* span-end rows: L_logit / ULD at spans followed by a student
             * token; MinED at one-atom, one-token spans */
            for (int gi = 0; gi < s->G && !oom; gi++) {
                const span_group *g = &s->g[gi];
                if (g->tok_last + 1 >= s->n_tok) continue;
                if (c->method == DST_MINED && (g->atom_first != g->atom_last || g->tok_first != g->tok_last)) continue;
                if (sra_grow((void **)&all_b, &cap_all, n_all + 1, 4)) { oom = 1; break; }
                size_t cg = cap_all;
                int32_t *ng = realloc(all_g, cg * 4);
                if (!ng) { oom = 1; break; }
                all_g = ng;
                all_b[n_all] = b;
                all_g[n_all] = gi;
                n_all++;
            }
        }
        /* pass 2: the span-end rows a block at a time: logits, loss,
         * dlogits, back through the head into dhf and dhead */
        for (size_t r0 = 0; r0 < n_all && !oom; r0 += (size_t)cap_rows) {
            int nr = n_all - r0 < (size_t)cap_rows ? (int)(n_all - r0) : cap_rows;
            for (int r = 0; r < nr; r++) {
                row_b[r] = all_b[r0 + r];
                row_g[r] = all_g[r0 + r];
                memcpy(hrows + (size_t)r * dS,
                       m->hf + ((size_t)row_b[r] * Tm + x->seq[row_b[r]].g[row_g[r]].tok_last) * dS, (size_t)dS * 4);
            }
            matmul_forward(z, hrows, m->head, NULL, nr, dS, V); // z (nr,V) student logits at span ends
            for (int r = 0; r < nr; r++) {
                const seqinfo *s = &x->seq[row_b[r]];
                const span_group *g = &s->g[row_g[r]];
                const ldr_doc *d = &docs[row_b[r]];
                int k = d->k;
                const int32_t *tid = d->topk_ids + (size_t)g->atom_last * k;
                const float *tlp = d->topk_lp + (size_t)g->atom_last * k;
                float w = s->W[row_g[r]] * seq_scale, *zr = z + (size_t)r * V;
                /* the gradient replaces the logits row once the loss has read it */
                double val = 0, shared = 0;
                float *tmp = calloc((size_t)V, 4);
                if (!tmp) { oom = 1; break; }
                if (c->method == DST_SRA) {
                    for (int j = 0; j < k; j++)
                        if (tid[j] >= 0 && tid[j] < x->v->VT && x->v->t_key[tid[j]] >= 0) shared += exp(tlp[j]);
                    if (shared < c->min_shared_mass) {
                        st->logit_skipped++;
                    } else {
                        val = loss_logit_kl(tmp, zr, V, tid, tlp, k, x->v->t_key, x->v->s_key, x->v->K,
                                            (float)c->tau, w, &shared, x->scratch);
                        st->logit_spans++;
                        st->shared_mass_sum += shared;
                        l_logit += s->W[row_g[r]] * val;
                    }
                } else if (c->method == DST_ULD) {
                    val = loss_uld(tmp, zr, V, tlp, k, w, x->scratch);
                    l_uld += s->W[row_g[r]] * val;
                } else {
                    for (int j = 0; j < k; j++) if (tid[j] >= 0) vocab_mined_map(x->v, tid[j]);
                    val = loss_mined_kl(tmp, zr, V, tid, tlp, k, x->v->t2s, w, x->scratch);
                    l_mined += s->W[row_g[r]] * val;
                }
                memcpy(zr, tmp, (size_t)V * 4);
                free(tmp);
            }
            if (oom) break;
            // dh (nr,dS) = dz @ head; dhead += dz^T hrows; then scattered into dhf
            memset(dh, 0, (size_t)nr * dS * 4);
            matmul_backward(dh, m->dhead, NULL, z, hrows, m->head, nr, dS, V);
            for (int r = 0; r < nr; r++) {
                float *dst = m->dhf + ((size_t)row_b[r] * Tm + x->seq[row_b[r]].g[row_g[r]].tok_last) * dS;
                for (int j = 0; j < dS; j++) dst[j] += dh[(size_t)r * dS + j];
            }
        }
        free(all_b);
        free(all_g);
        if (oom) {
            free(row_b); free(row_g); free(hrows); free(z); free(dh); free(valid); free(ids);
            snprintf(err, errlen, "out of memory");
            return -1;
        }
        free(row_b); free(row_g); free(hrows); free(z); free(dh);
        st->span = l_span / B;
        st->geo = l_geo / B;
        st->logit = l_logit / B;
        st->uld = l_uld / B;
        st->mined = l_mined / B;
        if (c->method == DST_SRA) total += a * (st->logit + c->beta * st->span + c->gamma * st->geo);
        else if (c->method == DST_ULD) total += a * st->uld;
        else total += a * st->mined;
    }
    st->loss = total;
    model_backward(m);
    free(valid);
    free(ids);
    return 0;
}
