/*
 * tok_decode.c - ids -> text through the tokenizer.json decoder chain, and
 * the bytes of a single token (tokenizer.h).
 *
 * The chain works on a list of strings, as HF's Decoder::decode_chain:
 * each decoder maps the list to a new list; the result is their
 * concatenation.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tok_internal.h"
#include "unicode.h"

typedef struct { char **s; size_t *n; size_t len, cap; } slist;

static void sl_free(slist *l) {
    for (size_t i = 0; i < l->len; i++) free(l->s[i]);
    free(l->s);
    free(l->n);
    memset(l, 0, sizeof *l);
}

static int sl_push(slist *l, const char *p, size_t n) {
    if (l->len == l->cap) {
        size_t c = l->cap ? 2 * l->cap : 16;
        char **s = realloc(l->s, c * sizeof *s);
        size_t *m = s ? realloc(l->n, c * sizeof *m) : NULL;
        if (s) l->s = s;
        if (m) l->n = m;
        if (!s || !m) return -1;
        l->cap = c;
    }
    char *d = malloc(n + 1);
    if (!d) return -1;
    memcpy(d, p, n);
    d[n] = 0;
    l->s[l->len] = d;
    l->n[l->len++] = n;
    return 0;
}

/* A growable byte buffer. */
typedef struct { char *p; size_t n, cap; } buf;
static int bput(buf *b, const void *p, size_t n) {
    if (!n) return 0;
    if (b->n + n > b->cap) {
        size_t c = b->cap ? b->cap : 64;
        while (c < b->n + n) c *= 2;
        char *q = realloc(b->p, c);
        if (!q) return -1;
        b->p = q;
        b->cap = c;
    }
    memcpy(b->p + b->n, p, n);
    b->n += n;
    return 0;
}

/* Rust's String::from_utf8_lossy: each maximal invalid subpart becomes
 * U+FFFD. */
static int lossy(buf *out, const char *s, size_t n) {
    static const char FFFD[3] = {(char)0xef, (char)0xbf, (char)0xbd};
    for (size_t i = 0; i < n;) {
        int32_t cp;
        int l = uni_decode(s + i, n - i, &cp);
        if (l > 0) { if (bput(out, s + i, (size_t)l)) return -1; i += (size_t)l; continue; }
        unsigned char c = (unsigned char)s[i];
        size_t need = c >= 0xc2 && c <= 0xdf ? 1 : c >= 0xe0 && c <= 0xef ? 2 : c >= 0xf0 && c <= 0xf4 ? 3 : 0;
        size_t k = 1;
        for (size_t j = 0; j < need && i + k < n; j++, k++) {
            unsigned char d = (unsigned char)s[i + k];
            unsigned char lo = 0x80, hi = 0xbf;
            if (j == 0) {
                if (c == 0xe0) lo = 0xa0;
                else if (c == 0xed) hi = 0x9f;
                else if (c == 0xf0) lo = 0x90;
                else if (c == 0xf4) hi = 0x8f;
            }
            if (d < lo || d > hi) break;
        }
        if (bput(out, FFFD, 3)) return -1;
        i += k;
    }
    return 0;
}

static int byte_token(const char *s, size_t n) { /* "<0xAB>" -> 0xAB, else -1 */
    if (n != 6 || memcmp(s, "<0x", 3) || s[5] != '>') return -1;
    int v = 0;
    for (int i = 3; i < 5; i++) {
        char c = s[i];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10 : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
        if (d < 0) return -1;
        v = v * 16 + d;
    }
    return v;
}

/* Maps a byte-level token back to bytes; 0 if a char is outside the
 * alphabet (then HF keeps the token's own bytes). */
static int bytelevel_bytes(buf *b, const char *s, size_t n) {
    size_t start = b->n;
    for (size_t i = 0; i < n;) {
        int32_t cp;
        int l = uni_decode(s + i, n - i, &cp);
        int by = l > 0 ? tok_cp_byte(cp) : -1;
        if (by < 0) { b->n = start; return 0; }
        char c = (char)by;
        if (bput(b, &c, 1)) return -1;
        i += (size_t)l;
    }
    return 1;
}

static int replace_all(buf *o, const char *s, size_t n, const char *a, size_t an, const char *r, size_t rn) {
    for (size_t i = 0; i < n;) {
        if (an && i + an <= n && !memcmp(s + i, a, an)) { if (bput(o, r, rn)) return -1; i += an; }
        else { if (bput(o, s + i, 1)) return -1; i++; }
    }
    return 0;
}

static int run_decoder(const tok_dec *d, slist *in, slist *out) {
    buf b = {0};
    int rc = 0;
    switch (d->kind) {
    case D_BYTELEVEL: {
        buf raw = {0};
        for (size_t i = 0; i < in->len && !rc; i++) {
            int r = bytelevel_bytes(&raw, in->s[i], in->n[i]);
            if (r < 0) rc = -1;
            else if (r == 0) rc = bput(&raw, in->s[i], in->n[i]);
        }
        if (!rc) rc = lossy(&b, raw.p ? raw.p : "", raw.n);
        if (!rc) rc = sl_push(out, b.p ? b.p : "", b.n);
        free(raw.p);
        break;
    }
    case D_BYTEFALLBACK: {
        buf bytes = {0};
        size_t nb = 0;
        for (size_t i = 0; i <= in->len && !rc; i++) {
            int v = i < in->len ? byte_token(in->s[i], in->n[i]) : -1;
            if (v >= 0) { char c = (char)v; rc = bput(&bytes, &c, 1); nb++; continue; }
            if (nb) { /* flush: valid UTF-8 as one string, else one U+FFFD per byte */
                if (uni_validate(bytes.p, bytes.n) == bytes.n) rc = sl_push(out, bytes.p, bytes.n);
                else for (size_t k = 0; k < nb && !rc; k++) rc = sl_push(out, "\xef\xbf\xbd", 3);
                bytes.n = 0;
                nb = 0;
            }
            if (i < in->len && !rc) rc = sl_push(out, in->s[i], in->n[i]);
        }
        free(bytes.p);
        break;
    }
    case D_FUSE:
        for (size_t i = 0; i < in->len && !rc; i++) rc = bput(&b, in->s[i], in->n[i]);
        if (!rc) rc = sl_push(out, b.p ? b.p : "", b.n);
        break;
    case D_STRIP:
        for (size_t i = 0; i < in->len && !rc; i++) {
            const char *s = in->s[i];
            size_t n = in->n[i], a = 0, e = n;
            for (int k = 0; k < d->start && a + d->alen <= e && !memcmp(s + a, d->a, d->alen); k++) a += d->alen;
            for (int k = 0; k < d->stop && e >= a + d->alen && !memcmp(s + e - d->alen, d->a, d->alen); k++) e -= d->alen;
            rc = sl_push(out, s + a, e - a);
        }
        break;
    case D_REPLACE:
        for (size_t i = 0; i < in->len && !rc; i++) {
            b.n = 0;
            rc = replace_all(&b, in->s[i], in->n[i], d->a, d->alen, d->b, d->blen);
            if (!rc) rc = sl_push(out, b.p ? b.p : "", b.n);
        }
        break;
    case D_METASPACE:
        for (size_t i = 0; i < in->len && !rc; i++) {
            b.n = 0;
            /* HF (metaspace.rs): in the first token every replacement is
             * dropped, not only the prepended one ("▁▁" decodes to "") */
            int first = i == 0 && d->scheme != PS_NEVER;
            rc = replace_all(&b, in->s[i], in->n[i], d->a, d->alen, " ", first ? 0 : 1);
            if (!rc) rc = sl_push(out, b.p ? b.p : "", b.n);
        }
        break;
    }
    free(b.p);
    return rc;
}

static int is_special(const tok_tokenizer *t, int32_t id) {
    for (int i = 0; i < t->n_added; i++)
        if (t->added[i].id == id) return t->added[i].special;
    return 0;
}

int tok_decode(tok_session *ss, const int32_t *ids, size_t n, int skip_special, const char **out,
               size_t *len) {
    const tok_tokenizer *t = ss->t;
    slist a = {0}, b = {0};
    int rc = 0;
    for (size_t i = 0; i < n && !rc; i++) {
        size_t l;
        const char *s = bpe_id_to_token(t->bpe, ids[i], &l);
        if (!s) {
            snprintf(ss->err, sizeof ss->err, "id %d at position %zu is not in the vocabulary (size %d)",
                     ids[i], i, t->vocab_size);
            rc = -2;
            break;
        }
        if (skip_special && is_special(t, ids[i])) continue;
        rc = sl_push(&a, s, l);
    }
    for (int k = 0; k < t->n_dec && !rc; k++) {
        rc = run_decoder(&t->dec[k], &a, &b);
        sl_free(&a);
        a = b;
        memset(&b, 0, sizeof b);
    }
    size_t total = 0;
    for (size_t i = 0; i < a.len; i++) total += a.n[i];
    if (!rc && total + 1 > ss->dcap) {
        char *p = realloc(ss->dbuf, total + 1);
        if (!p) rc = -1;
        else { ss->dbuf = p; ss->dcap = total + 1; }
    }
    if (!rc) {
        size_t k = 0;
        for (size_t i = 0; i < a.len; i++) { memcpy(ss->dbuf + k, a.s[i], a.n[i]); k += a.n[i]; }
        ss->dbuf[k] = 0;
        ss->dlen = k;
        *out = ss->dbuf;
        *len = k;
    } else if (rc == -1) snprintf(ss->err, sizeof ss->err, "out of memory");
    sl_free(&a);
    sl_free(&b);
    return rc ? -1 : 0;
}

/* The bytes a token stands for on its own: the decoders' character maps
 * (byte-level alphabet, "▁" -> space, <0xAB> -> that byte) without the
 * steps that depend on neighbours (Fuse, Strip, the first-token space of
 * Metaspace, lossy UTF-8 repair). */
int tok_token_bytes(const tok_tokenizer *t, int32_t id, char *out, size_t cap) {
    size_t n;
    const char *s = bpe_id_to_token(t->bpe, id, &n);
    if (!s) return -1;
    for (int i = 0; i < t->n_added; i++)
        if (t->added[i].id == id) { if (n <= cap) memcpy(out, s, n); return (int)n; }
    buf b = {0}, c = {0};
    if (bput(&b, s, n)) return -1;
    for (int k = 0; k < t->n_dec; k++) {
        const tok_dec *d = &t->dec[k];
        c.n = 0;
        int r = 0;
        if (d->kind == D_BYTELEVEL) {
            r = bytelevel_bytes(&c, b.p, b.n);
            if (r == 0) r = bput(&c, b.p, b.n) ? -1 : 1;
        } else if (d->kind == D_REPLACE) r = replace_all(&c, b.p, b.n, d->a, d->alen, d->b, d->blen) ? -1 : 1;
        else if (d->kind == D_METASPACE) r = replace_all(&c, b.p, b.n, d->a, d->alen, " ", 1) ? -1 : 1;
        else if (d->kind == D_BYTEFALLBACK) {
            int v = byte_token(b.p, b.n);
            if (v < 0) continue;
            char ch = (char)v;
            r = bput(&c, &ch, 1) ? -1 : 1;
        } else continue;
        if (r < 0) { free(b.p); free(c.p); return -1; }
        buf tmp = b; b = c; c = tmp;
    }
    int len = (int)b.n;
    if (b.n <= cap && b.n) memcpy(out, b.p, b.n);
    free(b.p);
    free(c.p);
    return len;
}
