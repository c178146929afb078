/*
 * tok_normalize.c - normalizers on an aligned string (tok_internal.h):
 * NFC/NFD/NFKC/NFKD, Prepend, Replace, Lowercase, Strip, each keeping for
 * every output byte the raw byte range it came from, the way HF tokenizers'
 * NormalizedString keeps its alignments.
 */
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "tok_internal.h"
#include "unicode.h"

/* ====================================================== aligned string */

int astr_reserve(astr *x, size_t need) {
    if (need <= x->cap) return 0;
    size_t c = x->cap ? x->cap : 256;
    while (c < need) c *= 2;
    char *s = realloc(x->s, c);
    uint32_t *a = realloc(x->a0, c * 4), *b = a ? realloc(x->a1, c * 4) : NULL;
    if (s) x->s = s;
    if (a) x->a0 = a;
    if (b) x->a1 = b;
    if (!s || !a || !b) return -1;
    x->cap = c;
    return 0;
}

/* Appends bytes p[0..n) all aligned to [r0, r1). */
int astr_put(astr *x, const char *p, size_t n, uint32_t r0, uint32_t r1) {
    if (!n) return 0;
    if (astr_reserve(x, x->n + n)) return -1;
    memcpy(x->s + x->n, p, n);
    for (size_t i = 0; i < n; i++) { x->a0[x->n + i] = r0; x->a1[x->n + i] = r1; }
    x->n += n;
    return 0;
}

/* Appends src[i..j) with its own alignment. */
int astr_copy(astr *x, const astr *src, size_t i, size_t j) {
    if (j <= i) return 0;
    if (astr_reserve(x, x->n + (j - i))) return -1;
    memcpy(x->s + x->n, src->s + i, j - i);
    memcpy(x->a0 + x->n, src->a0 + i, (j - i) * 4);
    memcpy(x->a1 + x->n, src->a1 + i, (j - i) * 4);
    x->n += j - i;
    return 0;
}

void astr_swap(astr *a, astr *b) { astr t = *a; *a = *b; *b = t; }

static size_t clen(const char *s, size_t n) { /* length of the UTF-8 char at s (valid input) */
    unsigned char c = (unsigned char)s[0];
    size_t l = c < 0x80 ? 1 : c < 0xe0 ? 2 : c < 0xf0 ? 3 : 4;
    return l <= n ? l : n;
}

/* ========================================================== normalizers */

static int utf8proc_opts(norm_kind k) {
    switch (k) {
    case N_NFC: return UTF8PROC_STABLE | UTF8PROC_COMPOSE;
    case N_NFD: return UTF8PROC_STABLE | UTF8PROC_DECOMPOSE;
    case N_NFKC: return UTF8PROC_STABLE | UTF8PROC_COMPOSE | UTF8PROC_COMPAT;
    default: return UTF8PROC_STABLE | UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT;
    }
}

/* Normalizes s[0..n) with utf8proc into a malloc'd buffer. */
static char *nf(const char *s, size_t n, int opts, size_t *outn) {
    utf8proc_uint8_t *out = NULL;
    utf8proc_ssize_t r = utf8proc_map((const utf8proc_uint8_t *)s, (utf8proc_ssize_t)n,
                                      &out, (utf8proc_option_t)opts);
    if (r < 0) return NULL;
    *outn = (size_t)r;
    return (char *)out;
}

/* One output character of the HF-style replay below: its code point and
 * its "change", as the unicode-normalization-alignments crate that HF
 * tokenizers uses reports it: 0 = replaces the next input character,
 * +1 = inserted after it (the 2nd.. character of a decomposition),
 * -n = replaces the next input character and swallows n more
 * (a composition). */
typedef struct { int32_t cp; int change; } nchar;

static int ccc(int32_t cp) { return utf8proc_get_property(cp)->combining_class; }

/* Canonical composition of the pair (a, b), if there is a primary composite. */
static int compose_pair(int32_t a, int32_t b, int32_t *c) {
    char s[8];
    size_t n = (size_t)uni_encode(a, s);
    n += (size_t)uni_encode(b, s + n);
    size_t m;
    char *r = nf(s, n, UTF8PROC_STABLE | UTF8PROC_COMPOSE, &m);
    int ok = 0;
    if (r && m > 0) {
        int32_t cp;
        int l = uni_decode(r, m, &cp);
        if (l > 0 && (size_t)l == m && cp != a) { *c = cp; ok = 1; }
    }
    free(r);
    return ok;
}

/* Normalizes the run in[i, j) by replaying HF's algorithm with changes:
 * decompose every character (changes 0, +1, +1, ...), sort each sequence
 * of non-starters by combining class (stable), and for NFC/NFKC compose
 * each character into the last starter when it is not blocked (the
 * composite's change becomes starter + swallowed - 1). Alignment then
 * follows HF's NormalizedString::transform: a character with change <= 0
 * takes the range of the next unconsumed input character (and consumes
 * 1 + |change| of them), an inserted one the range of the input byte just
 * before the consumed position. So "e" + U+0301 composed to "é" reports the
 * range of "e" alone, and U+0301 disappears from the offsets.
 * Returns 0, -1 (out of memory) or 1 if the replay's text differs from
 * utf8proc's (want[0..wn)), which the caller then handles. */
static int norm_run_aligned(astr *out, const astr *in, size_t i, size_t j, norm_kind k, const char *want,
                            size_t wn) {
    int compat = k == N_NFKC || k == N_NFKD, compose = k == N_NFC || k == N_NFKC;
    size_t cap = (j - i) * 18 + 18, n = 0; /* 18: utf8proc's longest decomposition */
    nchar *b = malloc(cap * sizeof *b);
    if (!b) return -1;
    for (size_t p = i; p < j;) {
        int32_t cp;
        p += (size_t)uni_decode(in->s + p, j - p, &cp);
        utf8proc_int32_t d[18];
        int last = 0;
        utf8proc_ssize_t r = utf8proc_decompose_char(
            cp, d, 18, (utf8proc_option_t)(UTF8PROC_DECOMPOSE | (compat ? UTF8PROC_COMPAT : 0)), &last);
        if (r < 1 || r > 18) { free(b); return 1; }
        for (utf8proc_ssize_t q = 0; q < r; q++) { b[n].cp = d[q]; b[n].change = q ? 1 : 0; n++; }
    }
    for (size_t a = 0; a < n;) { /* canonical ordering, stable */
        if (!ccc(b[a].cp)) { a++; continue; }
        size_t e = a;
        while (e < n && ccc(b[e].cp)) e++;
        for (size_t x = a + 1; x < e; x++)
            for (size_t y = x; y > a && ccc(b[y - 1].cp) > ccc(b[y].cp); y--) {
                nchar t = b[y]; b[y] = b[y - 1]; b[y - 1] = t;
            }
        a = e;
    }
    if (compose) {
        size_t w = 0;
        long st = -1; /* index of the last starter in the output */
        for (size_t r = 0; r < n; r++) {
            int c = ccc(b[r].cp);
            if (st >= 0) {
                int adjacent = (size_t)st == w - 1, lc = ccc(b[w - 1].cp);
                int32_t comp;
                if ((adjacent || (lc != 0 && lc < c)) && compose_pair(b[st].cp, b[r].cp, &comp)) {
                    b[st].cp = comp;
                    b[st].change += b[r].change - 1;
                    continue;
                }
            }
            if (c == 0) st = (long)w;
            b[w++] = b[r];
        }
        n = w;
    }
    /* the replay must give utf8proc's text */
    char *txt = malloc(n * 4 + 1);
    size_t tn = 0;
    for (size_t q = 0; txt && q < n; q++) tn += (size_t)uni_encode(b[q].cp, txt + tn);
    if (!txt || tn != wn || memcmp(txt, want, wn)) { free(txt); free(b); return txt ? 1 : -1; }
    size_t save = out->n, at = i; /* at: the next unconsumed input byte */
    int rc = 0;
    for (size_t q = 0, o = 0; q < n && !rc; q++) {
        size_t l = (size_t)uni_encode(b[q].cp, txt + o);
        uint32_t r0 = 0, r1 = 0;
        if (b[q].change > 0) {
            if (at > 0) { r0 = in->a0[at - 1]; r1 = in->a1[at - 1]; }
        } else {
            if (at >= j) { rc = 1; break; }
            r0 = in->a0[at];
            r1 = in->a1[at];
            for (int m = 0; m < 1 - b[q].change && at < j; m++) at += clen(in->s + at, j - at);
        }
        if (astr_put(out, txt + o, l, r0, r1)) rc = -1;
        o += l;
    }
    if (rc) out->n = save;
    free(txt);
    free(b);
    return rc;
}

/* Unicode normalization with alignment. The text is cut into runs that
 * normalize independently: a run ends before an ASCII character (ASCII is
 * never the second half of a composition and is unchanged by every form)
 * or before a starter that does not combine with the run (checked by
 * normalizing the pair). A run that normalization leaves unchanged keeps
 * its byte alignment; a changed run aligns all its output to its whole raw
 * range (as HF's alignment does for a composed or decomposed character). */
static int norm_unicode(tok_session *ss, norm_kind k) {
    astr *in = &ss->ns, *out = &ss->tmp;
    int opts = utf8proc_opts(k);
    out->n = 0;
    size_t i = 0;
    while (i < in->n) {
        if ((unsigned char)in->s[i] < 0x80 &&
            (i + 1 >= in->n || (unsigned char)in->s[i + 1] < 0x80)) {
            if (astr_copy(out, in, i, i + 1)) return -1;
            i++;
            continue;
        }
        /* run [i, j): one leading char, then following chars while they
         * combine with what precedes them */
        size_t j = i + clen(in->s + i, in->n - i);
        while (j < in->n && (unsigned char)in->s[j] >= 0x80) {
            int32_t cp;
            size_t l = (size_t)uni_decode(in->s + j, in->n - j, &cp);
            const utf8proc_property_t *pr = utf8proc_get_property(cp);
            if (pr->combining_class == 0) {
                size_t n1 = 0, n2 = 0, n3 = 0;
                char *x = nf(in->s + i, j - i, opts, &n1), *y = nf(in->s + j, l, opts, &n2),
                     *z = nf(in->s + i, j + l - i, opts, &n3);
                int indep = x && y && z && n3 == n1 + n2 && !memcmp(z, x, n1) && !memcmp(z + n1, y, n2);
                free(x); free(y); free(z);
                if (indep) break;
            }
            j += l;
        }
        size_t m;
        char *r = nf(in->s + i, j - i, opts, &m);
        if (!r) return -1;
        int rc;
        if (m == j - i && !memcmp(r, in->s + i, m)) rc = astr_copy(out, in, i, j);
        else {
            rc = norm_run_aligned(out, in, i, j, k, r, m);
            /* 1: the replay did not reproduce utf8proc's text (a Unicode
             * corner it does not model); align the run as a whole */
            if (rc == 1) rc = astr_put(out, r, m, in->a0[i], in->a1[j - 1]);
        }
        free(r);
        if (rc) return -1;
        i = j;
    }
    astr_swap(in, out);
    return 0;
}

static int norm_replace(tok_session *ss, const tok_norm *nm) {
    astr *in = &ss->ns, *out = &ss->tmp;
    out->n = 0;
    size_t i = 0;
    while (i < in->n) {
        size_t ms = 0, me = 0;
        int found;
        if (nm->re) found = tok_regex_find(nm->re, in->s, in->n, i, &ms, &me) && me > ms;
        else {
            found = 0;
            for (size_t p = i; nm->alen && p + nm->alen <= in->n; p++)
                if (in->s[p] == nm->a[0] && !memcmp(in->s + p, nm->a, nm->alen)) {
                    ms = p; me = p + nm->alen; found = 1;
                    break;
                }
        }
        if (!found) { if (astr_copy(out, in, i, in->n)) return -1; break; }
        if (astr_copy(out, in, i, ms) || astr_put(out, nm->b, nm->blen, in->a0[me - 1], in->a1[me - 1])) return -1;
        i = me;
    }
    astr_swap(in, out);
    return 0;
}

static int norm_lower(tok_session *ss) {
    astr *in = &ss->ns, *out = &ss->tmp;
    out->n = 0;
    for (size_t i = 0; i < in->n;) {
        int32_t cp;
        size_t l = (size_t)uni_decode(in->s + i, in->n - i, &cp);
        char b[4];
        int32_t lc = utf8proc_tolower(cp);
        if (cp == 0x130) { /* Rust's to_lowercase (HF): the one unconditional
                            * multi-char mapping of SpecialCasing.txt, İ -> i + U+0307 */
            if (astr_put(out, "i\xcc\x87", 3, in->a0[i], in->a1[i])) return -1;
        } else if (lc == cp) { if (astr_copy(out, in, i, i + l)) return -1; }
        else if (astr_put(out, b, (size_t)uni_encode(lc, b), in->a0[i], in->a1[i])) return -1;
        i += l;
    }
    astr_swap(in, out);
    return 0;
}

int tok_apply_norm(tok_session *ss, const tok_norm *nm) {
    astr *x = &ss->ns;
    switch (nm->kind) {
    case N_PREPEND:
        if (!x->n) return 0;
        ss->tmp.n = 0;
        if (astr_put(&ss->tmp, nm->a, nm->alen, x->a0[0], x->a1[0]) || astr_copy(&ss->tmp, x, 0, x->n)) return -1;
        astr_swap(x, &ss->tmp);
        return 0;
    case N_REPLACE: return norm_replace(ss, nm);
    case N_LOWERCASE: return norm_lower(ss);
    case N_STRIP: {
        size_t a = 0, b = x->n;
        int32_t cp;
        while (nm->left && a < b) { int l = uni_decode(x->s + a, b - a, &cp); if (!uni_is_space(cp)) break; a += (size_t)l; }
        while (nm->right && b > a) {
            size_t p = b - 1;
            while (p > a && ((unsigned char)x->s[p] & 0xc0) == 0x80) p--;
            uni_decode(x->s + p, b - p, &cp);
            if (!uni_is_space(cp)) break;
            b = p;
        }
        ss->tmp.n = 0;
        if (astr_copy(&ss->tmp, x, a, b)) return -1;
        astr_swap(x, &ss->tmp);
        return 0;
    }
    default: return norm_unicode(ss, nm->kind);
    }
}

/* Normalizes a plain string (for added tokens' contents at load). */
int tok_normalize_plain(const tok_tokenizer *t, const char *s, size_t n, char **out, size_t *outn) {
    tok_session *ss = tok_session_new(t);
    if (!ss) return -1;
    int rc = astr_put(&ss->ns, s, n, 0, (uint32_t)n);
    for (int i = 0; !rc && i < t->n_norm; i++) rc = tok_apply_norm(ss, &t->norm[i]);
    if (!rc && (*out = malloc(ss->ns.n + 1))) {
        memcpy(*out, ss->ns.s, ss->ns.n);
        (*out)[ss->ns.n] = 0;
        *outn = ss->ns.n;
    } else rc = -1;
    tok_session_free(ss);
    return rc;
}

