/*
 * spans.c - boundaries, atoms, spans and centers of mass (method.md §1-§3).
 * The contract is spans.h; the oracle is ../shared/tools/sra_ref.py.
 */
#include "spans.h"

#include <stdlib.h>
#include <string.h>

#include "tok_regex.h"
#include "unicode.h"
#include "util.h"

/* ------------------------------------------------------------ whitespace */

int span_is_space(int32_t cp) { return uni_is_space(cp); }

/* Byte length of the whitespace character at s[0..n), or 0 if there is none
 * (a non-space character or invalid UTF-8). */
static size_t ws_len(const char *s, size_t n) {
    unsigned char b = (unsigned char)s[0];
    if (b < 0x80) return span_is_space(b) ? 1 : 0;
    /* Every White_Space code point above ASCII starts with C2, E1, E2 or E3:
     * decoding only those keeps invalid UTF-8 elsewhere harmless. */
    if (b != 0xC2 && b != 0xE1 && b != 0xE2 && b != 0xE3) return 0;
    int32_t cp;
    int len = uni_decode(s, n, &cp);
    if (len <= 1) return 0;
    return span_is_space(cp) ? (size_t)len : 0;
}

void span_canon_map(const char *text, size_t n, uint32_t *canon) {
    for (size_t p = 0; p <= n; p++) canon[p] = (uint32_t)p;
    size_t p = 0;
    while (p < n) {
        size_t l = ws_len(text + p, n - p);
        if (!l) {
            p++;
            continue;
        }
        /* maximal run [ws, we): every position ws..we (both ends touch it)
         * maps to ws (method.md §1) */
        size_t ws = p;
        while (p < n && (l = ws_len(text + p, n - p)) != 0) p += l;
        for (size_t q = ws; q <= p; q++) canon[q] = (uint32_t)ws;
    }
}

/* ------------------------------------------------------------ boundaries */

int64_t span_boundaries(const uint32_t *canon, size_t n, const uint32_t *start,
                        const uint32_t *end, size_t T, uint32_t *out, size_t cap) {
    for (size_t i = 0; i < T; i++)
        if (end[i] > n && end[i] > start[i]) return SRA_E_ARG;
    /* inside[p] (as a difference array): tokens with start < p < end;
     * edge[p]: p is the start or end of a non-empty token (§1). */
    int32_t *inside = calloc(n + 2, sizeof *inside);
    uint8_t *edge = calloc(n + 1, 1);
    if (!inside || !edge) {
        free(inside);
        free(edge);
        return SRA_E_NOMEM;
    }
    for (size_t i = 0; i < T; i++) {
        uint32_t s = start[i], e = end[i];
        if (e <= s) continue; /* empty: BOS, EOS, template tokens */
        edge[s] = edge[e] = 1;
        if (e > s + 1) {
            inside[s + 1]++;
            inside[e]--;
        }
    }
    int64_t k = 0;
    int32_t cover = 0;
    uint32_t last = 0;
    for (size_t p = 0; p <= n; p++) {
        cover += inside[p];
        if (!edge[p] || cover) continue;
        /* canon is non-decreasing: duplicates are adjacent */
        if (k > 0 && canon[p] == last) continue;
        last = canon[p];
        if ((size_t)k < cap) out[k] = last;
        k++;
    }
    free(inside);
    free(edge);
    return k;
}

int64_t span_words(const char *text, size_t n, uint32_t *start, uint32_t *end, size_t cap) {
    if (n > UINT32_MAX || uni_validate(text, n) != n) return SRA_E_ARG;
    char err[256];
    tok_regex *re = tok_regex_compile(SPAN_GPT2_PATTERN, err, sizeof err);
    if (!re) return SRA_E_NOMEM; /* the pattern is fixed: only allocation fails */
    int64_t k = 0;
    size_t pos = 0, ms, me;
    while (pos < n && tok_regex_find(re, text, n, pos, &ms, &me)) {
        if (me == ms) { /* cannot happen with this pattern; never loop */
            int32_t cp;
            int l = uni_decode(text + ms, n - ms, &cp);
            pos = ms + (size_t)(l > 0 ? l : 1);
            continue;
        }
        if ((size_t)k < cap) {
            start[k] = (uint32_t)ms;
            end[k] = (uint32_t)me;
        }
        k++;
        pos = me;
    }
    tok_regex_free(re);
    return k;
}

int64_t span_word_boundaries(const char *text, size_t n, const uint32_t *canon, uint32_t *out,
                             size_t cap) {
    /* every word is non-empty: at most n of them */
    uint32_t *ws = malloc((2 * n + 1) * sizeof *ws);
    if (!ws) return SRA_E_NOMEM;
    int64_t W = span_words(text, n, ws, ws + n, n);
    int64_t r = W < 0 ? W : span_boundaries(canon, n, ws, ws + n, (size_t)W, out, cap);
    free(ws);
    return r;
}

size_t span_intersect(const uint32_t *a, size_t na, const uint32_t *b, size_t nb, uint32_t *out) {
    size_t i = 0, j = 0, k = 0;
    while (i < na && j < nb) {
        if (a[i] < b[j]) i++;
        else if (b[j] < a[i]) j++;
        else {
            out[k++] = a[i];
            i++;
            j++;
        }
    }
    return k;
}

/* ------------------------------------------------------- atoms and spans */

int span_atoms_mode_parse(const char *s) {
    if (!s) return -1;
    if (!strcmp(s, "word")) return SPAN_ATOMS_WORD;
    if (!strcmp(s, "token")) return SPAN_ATOMS_TOKEN;
    if (!strcmp(s, "student")) return SPAN_ATOMS_STUDENT;
    return -1;
}

const char *span_atoms_mode_name(span_atoms_mode m) {
    switch (m) {
    case SPAN_ATOMS_WORD: return "word";
    case SPAN_ATOMS_TOKEN: return "token";
    case SPAN_ATOMS_STUDENT: return "student";
    }
    return "?";
}

/* The cut interval j with cuts[j] <= cs and ce <= cuts[j+1], or -1.
 * Cut intervals are disjoint, so a non-empty range fits at most one. */
static int64_t interval_of(const uint32_t *cuts, size_t ncuts, uint32_t cs, uint32_t ce) {
    if (ncuts < 2 || cs < cuts[0]) return -1;
    size_t lo = 0, hi = ncuts; /* largest j with cuts[j] <= cs */
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (cuts[mid] <= cs) lo = mid;
        else hi = mid;
    }
    return lo + 1 < ncuts && ce <= cuts[lo + 1] ? (int64_t)lo : -1;
}

/* Canonical range of token i; 0 when it belongs to no span (§1). */
static int canon_range(const uint32_t *canon, const uint32_t *start, const uint32_t *end,
                       size_t i, uint32_t *cs, uint32_t *ce) {
    if (end[i] <= start[i]) return 0;
    *cs = canon[start[i]];
    *ce = canon[end[i]];
    return *ce > *cs;
}

static int offsets_ok(size_t n, const uint32_t *start, const uint32_t *end, size_t T) {
    for (size_t i = 0; i < T; i++)
        if (end[i] > start[i] && end[i] > n) return 0;
    return 1;
}

int64_t span_atoms_from_cuts(const uint32_t *canon, size_t n, const uint32_t *cuts, size_t ncuts,
                             const uint32_t *t_start, const uint32_t *t_end, size_t T,
                             span_atom *atoms, size_t cap, int32_t *tok_atom) {
    if (!offsets_ok(n, t_start, t_end, T) || T > INT32_MAX) return SRA_E_ARG;
    int32_t *iv = malloc((T + 1) * sizeof *iv);  /* interval of each token */
    int32_t *num = malloc((ncuts + 1) * sizeof *num); /* interval -> atom */
    if (!iv || !num) {
        free(iv);
        free(num);
        return SRA_E_NOMEM;
    }
    for (size_t j = 0; j < ncuts; j++) num[j] = -1;
    for (size_t i = 0; i < T; i++) {
        uint32_t cs, ce;
        iv[i] = canon_range(canon, t_start, t_end, i, &cs, &ce)
                    ? (int32_t)interval_of(cuts, ncuts, cs, ce)
                    : -1;
        if (iv[i] >= 0) num[iv[i]] = 0;
    }
    int64_t A = 0;
    for (size_t j = 0; j + 1 < ncuts; j++) {
        if (num[j] < 0) continue;
        num[j] = (int32_t)A;
        if ((size_t)A < cap) atoms[A] = (span_atom){cuts[j], cuts[j + 1], -1, -1};
        A++;
    }
    for (size_t i = 0; i < T; i++) {
        int32_t a = iv[i] < 0 ? -1 : num[iv[i]];
        if (tok_atom) tok_atom[i] = a;
        if (a < 0 || (size_t)a >= cap) continue;
        if (atoms[a].first < 0) atoms[a].first = (int32_t)i;
        atoms[a].last = (int32_t)i;
    }
    free(iv);
    free(num);
    return A;
}

int64_t span_atoms(const char *text, size_t n, const uint32_t *canon, span_atoms_mode mode,
                   const uint32_t *t_start, const uint32_t *t_end, size_t T,
                   const uint32_t *s_start, const uint32_t *s_end, size_t S, span_atom *atoms,
                   size_t cap, int32_t *tok_atom) {
    if (mode == SPAN_ATOMS_STUDENT && (!s_start || !s_end)) return SRA_E_ARG;
    if (mode != SPAN_ATOMS_WORD && mode != SPAN_ATOMS_TOKEN && mode != SPAN_ATOMS_STUDENT)
        return SRA_E_ARG;
    /* boundary sets never exceed n + 1 canonical positions */
    uint32_t *bt = malloc(2 * (n + 1) * sizeof *bt), *bc = bt + n + 1;
    if (!bt) return SRA_E_NOMEM;
    int64_t r, nt = span_boundaries(canon, n, t_start, t_end, T, bt, n + 1), nc = 0;
    if (nt >= 0 && mode == SPAN_ATOMS_WORD) nc = span_word_boundaries(text, n, canon, bc, n + 1);
    if (nt >= 0 && mode == SPAN_ATOMS_STUDENT)
        nc = span_boundaries(canon, n, s_start, s_end, S, bc, n + 1);
    if (nt < 0 || nc < 0) {
        free(bt);
        return nt < 0 ? nt : nc;
    }
    if (mode != SPAN_ATOMS_TOKEN) nt = (int64_t)span_intersect(bt, (size_t)nt, bc, (size_t)nc, bt);
    r = span_atoms_from_cuts(canon, n, bt, (size_t)nt, t_start, t_end, T, atoms, cap, tok_atom);
    free(bt);
    return r;
}

int64_t span_spans(const uint32_t *canon, size_t n, const span_atom *atoms, size_t A,
                   const uint32_t *s_start, const uint32_t *s_end, size_t S, span_group *spans,
                   size_t cap, int32_t *tok_span) {
    if (!offsets_ok(n, s_start, s_end, S) || S > INT32_MAX || A > INT32_MAX) return SRA_E_ARG;
    /* atom edges (sorted: atoms are in order and disjoint), then B_S, then
     * the cuts B_S ∩ edges in place */
    uint32_t *edges = malloc((2 * A + 1) * sizeof *edges);
    uint32_t *bs = malloc((n + 1) * sizeof *bs);
    int32_t *iv = malloc((S + 1) * sizeof *iv);
    int32_t *aiv = malloc((A + 1) * sizeof *aiv);
    int32_t *num = malloc((2 * A + 1) * sizeof *num);
    int64_t G = SRA_E_NOMEM;
    if (!edges || !bs || !iv || !aiv || !num) goto done;
    size_t ne = 0;
    G = SRA_E_ARG;
    for (size_t k = 0; k < A; k++) {
        if (atoms[k].end <= atoms[k].start || atoms[k].end > n) goto done;
        if (ne && atoms[k].start < edges[ne - 1]) goto done; /* not in order */
        if (!ne || edges[ne - 1] != atoms[k].start) edges[ne++] = atoms[k].start;
        edges[ne++] = atoms[k].end;
    }
    int64_t nb = span_boundaries(canon, n, s_start, s_end, S, bs, n + 1);
    if (nb < 0) {
        G = nb;
        goto done;
    }
    size_t nc = span_intersect(edges, ne, bs, (size_t)nb, edges);
    /* per interval: bit 1 = holds an atom, bit 2 = holds a student token */
    for (size_t j = 0; j < nc; j++) num[j] = 0;
    for (size_t k = 0; k < A; k++) {
        aiv[k] = (int32_t)interval_of(edges, nc, atoms[k].start, atoms[k].end);
        if (aiv[k] >= 0) num[aiv[k]] |= 1;
    }
    for (size_t i = 0; i < S; i++) {
        uint32_t cs, ce;
        iv[i] = canon_range(canon, s_start, s_end, i, &cs, &ce)
                    ? (int32_t)interval_of(edges, nc, cs, ce)
                    : -1;
        if (iv[i] >= 0) num[iv[i]] |= 2;
    }
    G = 0;
    for (size_t j = 0; j + 1 < nc; j++) {
        if (num[j] != 3) {
            num[j] = -1;
            continue;
        }
        num[j] = (int32_t)G;
        if ((size_t)G < cap) spans[G] = (span_group){edges[j], edges[j + 1], -1, -1, -1, -1};
        G++;
    }
    for (size_t k = 0; k < A; k++) {
        int32_t g = aiv[k] < 0 ? -1 : num[aiv[k]];
        if (g < 0 || (size_t)g >= cap) continue;
        if (spans[g].atom_first < 0) spans[g].atom_first = (int32_t)k;
        spans[g].atom_last = (int32_t)k;
    }
    for (size_t i = 0; i < S; i++) {
        int32_t g = iv[i] < 0 ? -1 : num[iv[i]];
        if (tok_span) tok_span[i] = g;
        if (g < 0 || (size_t)g >= cap) continue;
        if (spans[g].tok_first < 0) spans[g].tok_first = (int32_t)i;
        spans[g].tok_last = (int32_t)i;
    }
done:
    free(edges);
    free(bs);
    free(iv);
    free(aiv);
    free(num);
    return G;
}

/* ------------------------------------------------------- center of mass */

int span_com(const span_atom *atoms, size_t A, const int32_t *tok_atom, size_t T, size_t C,
             const float *hidden, const float *mass, float *com, float *M) {
    // hidden (T,C), mass (T), tok_atom (T) -> com (A,C), M (A)
    for (size_t k = 0; k < A; k++)
        if (atoms[k].first < 0 || atoms[k].last < atoms[k].first || (size_t)atoms[k].last >= T)
            return SRA_E_ARG;
    double *acc = malloc((C + 1) * sizeof *acc);
    if (!acc) return SRA_E_NOMEM;
    int rc = SRA_OK;
    for (size_t k = 0; k < A && rc == SRA_OK; k++) {
        double msum = 0;
        memset(acc, 0, C * sizeof *acc);
        for (int32_t i = atoms[k].first; i <= atoms[k].last; i++) {
            if (tok_atom[i] != (int32_t)k) continue; /* whitespace-only inside */
            double m = mass[i] < SPAN_MASS_FLOOR ? SPAN_MASS_FLOOR : (double)mass[i];
            const float *h = hidden + (size_t)i * C;
            for (size_t c = 0; c < C; c++) acc[c] += m * h[c];
            msum += m;
        }
        if (msum <= 0) {
            rc = SRA_E_ARG; /* tok_atom disagrees with atoms */
            break;
        }
        for (size_t c = 0; c < C; c++) com[k * C + c] = (float)(acc[c] / msum);
        M[k] = (float)msum;
    }
    free(acc);
    return rc;
}

int span_merge(const span_group *groups, size_t G, size_t A, size_t C, const float *com,
               const float *M, float *out_com, float *out_M) {
    // groups (G), com (A,C), M (A) -> out_com (G,C), out_M (G)
    for (size_t g = 0; g < G; g++)
        if (groups[g].atom_first < 0 || groups[g].atom_last < groups[g].atom_first ||
            (size_t)groups[g].atom_last >= A)
            return SRA_E_ARG;
    double *acc = malloc((C + 1) * sizeof *acc);
    if (!acc) return SRA_E_NOMEM;
    for (size_t g = 0; g < G; g++) {
        double msum = 0;
        memset(acc, 0, C * sizeof *acc);
        for (int32_t k = groups[g].atom_first; k <= groups[g].atom_last; k++) {
            double m = M[k];
            const float *c_k = com + (size_t)k * C;
            for (size_t c = 0; c < C; c++) acc[c] += m * c_k[c];
            msum += m;
        }
        for (size_t c = 0; c < C; c++) out_com[g * C + c] = (float)(msum > 0 ? acc[c] / msum : 0);
        out_M[g] = (float)msum;
    }
    free(acc);
    return SRA_OK;
}
