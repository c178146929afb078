/*
 * plan.c - a record → tokens, atoms and pieces (contract: plan.h).
 */
#include "plan.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

struct plan_ctx {
    tok_session *ts, *ss;
    span_atoms_mode mode;
    int max_tokens;
    /* per-document arrays, grown as needed */
    int32_t *ids; uint32_t *start, *end; size_t cap_tok;
    int32_t *tok_atom;
    uint32_t *canon; size_t cap_canon;
    span_atom *atoms; size_t cap_atoms;
    plan_piece *pieces; size_t cap_pieces;
};

plan_ctx *plan_ctx_new(const tok_tokenizer *teacher, const tok_tokenizer *student,
                       span_atoms_mode mode, int max_tokens) {
    plan_ctx *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->mode = mode;
    c->max_tokens = max_tokens;
    c->ts = tok_session_new(teacher);
    if (student) c->ss = tok_session_new(student);
    if (!c->ts || (student && !c->ss)) {
        plan_ctx_free(c);
        return NULL;
    }
    return c;
}

void plan_ctx_free(plan_ctx *c) {
    if (!c) return;
    tok_session_free(c->ts);
    tok_session_free(c->ss);
    free(c->ids); free(c->start); free(c->end); free(c->tok_atom);
    free(c->canon); free(c->atoms); free(c->pieces);
    free(c);
}

static int grow_tokens(plan_ctx *c, size_t T) {
    if (T <= c->cap_tok) return 0;
    size_t cap = T + T / 2 + 64;
    int32_t *ids = realloc(c->ids, cap * sizeof *ids);
    if (ids) c->ids = ids;
    uint32_t *s = realloc(c->start, cap * sizeof *s);
    if (s) c->start = s;
    uint32_t *e = realloc(c->end, cap * sizeof *e);
    if (e) c->end = e;
    int32_t *ta = realloc(c->tok_atom, cap * sizeof *ta);
    if (ta) c->tok_atom = ta;
    if (!ids || !s || !e || !ta) return SRA_E_NOMEM;
    c->cap_tok = cap;
    return 0;
}

/* Length of the sequence of a piece: prefix + body [first, last] + suffix. */
static int32_t seq_len(const plan_doc *d, int32_t first, int32_t last, int suffix) {
    return d->n_prefix + (last - first + 1) + (suffix ? d->n_suffix : 0);
}

int plan_build(plan_ctx *c, const char *text, size_t n, size_t loss_start, plan_doc *d,
               char *err, size_t errlen) {
    memset(d, 0, sizeof *d);
    if (loss_start > n) loss_start = n;
    tok_encoding te, se = {0};
    if (tok_encode(c->ts, text, n, 1, &te)) {
        snprintf(err, errlen, "teacher tokenizer: %s", tok_session_error(c->ts));
        return SRA_E_ARG;
    }
    if (grow_tokens(c, te.n)) return SRA_E_NOMEM;
    size_t T = te.n;
    memcpy(c->ids, te.ids, T * sizeof *c->ids);
    memcpy(c->start, te.start, T * sizeof *c->start);
    memcpy(c->end, te.end, T * sizeof *c->end);
    /* PREFIX / SUFFIX: template tokens (empty range) before the first and
     * after the last token that has bytes */
    size_t first = 0, last = T;
    while (first < T && c->start[first] >= c->end[first]) first++;
    while (last > first && c->start[last - 1] >= c->end[last - 1]) last--;
    if (first == T) {
        snprintf(err, errlen, "no atom: the teacher tokenizer gives no token with text");
        return SRA_E_ARG;
    }
    d->n_tokens = T;
    d->n_prefix = (int32_t)first;
    d->n_suffix = (int32_t)(T - last);
    if (c->mode == SPAN_ATOMS_STUDENT) {
        if (!c->ss) {
            snprintf(err, errlen, "atoms = student needs a student tokenizer");
            return SRA_E_ARG;
        }
        if (tok_encode(c->ss, text, n, 0, &se)) {
            snprintf(err, errlen, "student tokenizer: %s", tok_session_error(c->ss));
            return SRA_E_ARG;
        }
    }
    if (n + 1 > c->cap_canon) {
        uint32_t *cn = realloc(c->canon, (n + 1) * sizeof *cn);
        if (!cn) return SRA_E_NOMEM;
        c->canon = cn;
        c->cap_canon = n + 1;
    }
    span_canon_map(text, n, c->canon);
    /* atoms over the whole token list: template tokens have no range and
     * so no atom (tok_atom -1) */
    int64_t A = span_atoms(text, n, c->canon, c->mode, c->start, c->end, T, se.start, se.end,
                           se.n, c->atoms, c->cap_atoms, c->tok_atom);
    if (A > (int64_t)c->cap_atoms) {
        span_atom *a = realloc(c->atoms, (size_t)A * sizeof *a);
        if (!a) return SRA_E_NOMEM;
        c->atoms = a;
        c->cap_atoms = (size_t)A;
        A = span_atoms(text, n, c->canon, c->mode, c->start, c->end, T, se.start, se.end, se.n,
                       c->atoms, c->cap_atoms, c->tok_atom);
    }
    if (A == SRA_E_NOMEM) return SRA_E_NOMEM;
    if (A < 0) {
        snprintf(err, errlen, "atoms: token offsets outside the text or invalid UTF-8");
        return SRA_E_ARG;
    }
    if (A == 0) {
        snprintf(err, errlen, "no atom: the text has no %s boundary inside it",
                 span_atoms_mode_name(c->mode));
        return SRA_E_ARG;
    }
    d->ids = c->ids;
    d->start = c->start;
    d->end = c->end;
    d->tok_atom = c->tok_atom;
    d->atoms = c->atoms;
    d->n_atoms = (int32_t)A;

    /* pieces, greedily: extend piece k atom by atom while it fits */
    if ((size_t)A > c->cap_pieces) {
        plan_piece *p = realloc(c->pieces, (size_t)A * sizeof *p);
        if (!p) return SRA_E_NOMEM;
        c->pieces = p;
        c->cap_pieces = (size_t)A;
    }
    const span_atom *at = c->atoms;
    int32_t P = 0, a = 0, body_end = (int32_t)last - 1;
    while (a < A) {
        plan_piece *p = &c->pieces[P];
        p->tok_first = P == 0 ? d->n_prefix : c->pieces[P - 1].tok_last + 1;
        p->atom_first = a;
        int32_t b = a;
        if (seq_len(d, p->tok_first, at[a].last, 0) > c->max_tokens) {
            snprintf(err, errlen,
                     "atom %d (bytes %u..%u) needs %d tokens with the %d template tokens: "
                     "over --max-tokens %d",
                     a, at[a].start, at[a].end, seq_len(d, p->tok_first, at[a].last, 0),
                     d->n_prefix, c->max_tokens);
            return SRA_E_ARG;
        }
        while (b + 1 < A && seq_len(d, p->tok_first, at[b + 1].last, 0) <= c->max_tokens) b++;
        p->atom_last = b;
        p->tok_last = at[b].last;
        p->with_suffix = 0;
        if (b == A - 1) {
            /* the tail after the last atom, then the suffix, when they fit */
            if (seq_len(d, p->tok_first, body_end, 0) <= c->max_tokens) p->tok_last = body_end;
            if (p->tok_last == body_end && seq_len(d, p->tok_first, body_end, 1) <= c->max_tokens)
                p->with_suffix = 1;
        }
        p->n_seq = seq_len(d, p->tok_first, p->tok_last, p->with_suffix);
        p->text_start = P == 0 ? 0 : at[a].start;
        if (P > 0) c->pieces[P - 1].text_end = p->text_start;
        P++;
        a = b + 1;
    }
    c->pieces[P - 1].text_end = (uint32_t)n;
    for (int32_t k = 0; k < P; k++) {
        plan_piece *p = &c->pieces[k];
        size_t ls = loss_start < p->text_start ? 0 : loss_start - p->text_start;
        size_t len = p->text_end - p->text_start;
        p->loss_start = (uint32_t)(ls > len ? len : ls);
    }
    d->pieces = c->pieces;
    d->n_pieces = P;
    return 0;
}

void plan_piece_sequence(const plan_doc *d, int p, int32_t *ids, int32_t *seq_tok) {
    const plan_piece *pc = &d->pieces[p];
    int32_t j = 0, T = (int32_t)d->n_tokens;
    for (int32_t i = 0; i < d->n_prefix; i++, j++) {
        ids[j] = d->ids[i];
        if (seq_tok) seq_tok[j] = i;
    }
    for (int32_t i = pc->tok_first; i <= pc->tok_last; i++, j++) {
        ids[j] = d->ids[i];
        if (seq_tok) seq_tok[j] = i;
    }
    for (int32_t i = T - d->n_suffix; pc->with_suffix && i < T; i++, j++) {
        ids[j] = d->ids[i];
        if (seq_tok) seq_tok[j] = i;
    }
}
