/*
 * tok_encode.c - text -> ids + byte offsets (tokenizer.h), HF order:
 * added tokens, normalizers, pre-tokenizers, BPE, post-processor.
 *
 * Offsets: the working string is an "aligned string": every byte carries
 * the raw byte range [a0, a1) of the character it came from. Normalizers
 * and pre-tokenizers rewrite it and keep the alignment (an inserted "▁"
 * takes the range of the character it is attached to), so a token's raw
 * range is [a0 of its first byte, a1 of its last byte): what HF reports.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "tok_internal.h"
#include "unicode.h"
#include "util.h"

const char *tok_session_error(const tok_session *s) { return s->err; }

/* ============================================================ buffers */

static size_t clen(const char *s, size_t n) { /* length of the UTF-8 char at s (valid input) */
    unsigned char c = (unsigned char)s[0];
    size_t l = c < 0x80 ? 1 : c < 0xe0 ? 2 : c < 0xf0 ? 3 : 4;
    return l <= n ? l : n;
}

/* ========================================================= added tokens */

static int is_word_cp(const char *s, size_t n, size_t at, int before) {
    if (before) {
        if (at == 0) return 0;
        size_t p = at - 1;
        while (p > 0 && ((unsigned char)s[p] & 0xc0) == 0x80) p--;
        int32_t cp;
        uni_decode(s + p, n - p, &cp);
        return uni_is_word_uts18(cp);
    }
    if (at >= n) return 0;
    int32_t cp;
    uni_decode(s + at, n - at, &cp);
    return uni_is_word_uts18(cp);
}

/* Leftmost-longest match of an added token (normalized or raw ones) in
 * s[from..n). Returns the token index or -1; [*ms, *me) is the range
 * including lstrip/rstrip whitespace. */
static int find_added(const tok_tokenizer *t, const char *s, size_t n, size_t from, int normalized,
                      size_t *ms, size_t *me) {
    const struct tok_trie *tr = t->trie[normalized];
    const int32_t *root = t->root[normalized];
    for (size_t i = from; i < n; i++) {
        int32_t node = root[(uint8_t)s[i]];
        if (node < 0) continue;
        /* walk the trie along s[i..]; the longest token ending on the path
         * whose single_word condition holds wins (the first in
         * tokenizer.json order among equal matches) */
        int best = -1;
        for (size_t d = i + 1;; d++) {
            for (int32_t k = tr[node].tok; k >= 0; k = t->dup_next[k]) {
                const tok_added_tok *a = &t->added[k];
                if (a->single_word && (is_word_cp(s, n, i, 1) || is_word_cp(s, n, d, 0))) continue;
                best = k;
                break;
            }
            if (d >= n) break;
            int32_t ch = tr[node].child;
            while (ch >= 0 && tr[ch].byte != (uint8_t)s[d]) ch = tr[ch].sibling;
            if (ch < 0) break;
            node = ch;
        }
        if (best < 0) continue;
        size_t a0 = i, a1 = i + t->added[best].mlen;
        int32_t cp;
        if (t->added[best].lstrip)
            while (a0 > from) {
                size_t p = a0 - 1;
                while (p > from && ((unsigned char)s[p] & 0xc0) == 0x80) p--;
                uni_decode(s + p, n - p, &cp);
                if (!uni_is_space(cp)) break;
                a0 = p;
            }
        if (t->added[best].rstrip)
            while (a1 < n) {
                int l = uni_decode(s + a1, n - a1, &cp);
                if (!uni_is_space(cp)) break;
                a1 += (size_t)l;
            }
        *ms = a0;
        *me = a1;
        return best;
    }
    return -1;
}

/* ============================================================== output */

static int out_push(tok_session *ss, int32_t id, uint32_t a, uint32_t b) {
    if (ss->nout == ss->outcap) {
        size_t c = ss->outcap ? 2 * ss->outcap : 256;
        int32_t *i = realloc(ss->ids, c * 4);
        uint32_t *x = i ? realloc(ss->st, c * 4) : NULL, *y = x ? realloc(ss->en, c * 4) : NULL;
        if (i) ss->ids = i;
        if (x) ss->st = x;
        if (y) ss->en = y;
        if (!i || !x || !y) return -1;
        ss->outcap = c;
    }
    ss->ids[ss->nout] = id;
    ss->st[ss->nout] = a;
    ss->en[ss->nout] = b;
    ss->nout++;
    return 0;
}

/* ========================================================= pre-tokenize */


/* Splits pieces by the matches of p (regex, literal or char class) with
 * HF's SplitDelimiterBehavior. */
static int split_pieces(tok_session *ss, const tok_pre *p) {
    astr *w = &ss->work;
    ss->npc2 = 0;
    mspan *ms = ss->ms; /* session scratch: no allocation per call */
    size_t nms = 0, mscap = ss->mscap;
    int rc = 0;
    for (size_t k = 0; k < ss->npc && !rc; k++) {
        uint32_t a = ss->pc[k].a, b = ss->pc[k].b;
        nms = 0;
        uint32_t last = a;
#define PUSHM(x, y, m) do { if (sra_grow((void **)&ms, &mscap, nms + 1, sizeof *ms)) { rc = -1; break; } \
                            ms[nms].a = (x); ms[nms].b = (y); ms[nms].match = (m); nms++; } while (0)
        if (p->kind == P_SPLIT || p->kind == P_WHITESPACE || p->kind == P_BYTELEVEL) {
            size_t pos = 0, len = b - a;
            while (pos < len) {
                size_t s0, s1;
                int f;
                if (p->re) f = tok_regex_find(p->re, w->s + a, len, pos, &s0, &s1);
                else {
                    f = 0;
                    for (size_t q = pos; p->litlen && q + p->litlen <= len; q++)
                        if (!memcmp(w->s + a + q, p->lit, p->litlen)) { s0 = q; s1 = q + p->litlen; f = 1; break; }
                }
                if (!f) break;
                if (s1 == s0) { /* empty match: not a delimiter; step one char */
                    pos = s0 + clen(w->s + a + s0, len - s0);
                    continue;
                }
                if (a + s0 > last) PUSHM(last, a + (uint32_t)s0, 0);
                PUSHM(a + (uint32_t)s0, a + (uint32_t)s1, 1);
                last = a + (uint32_t)s1;
                pos = s1;
            }
        } else { /* character predicates: each matching char is its own match */
            for (uint32_t q = a; q < b;) {
                int32_t cp;
                uint32_t l = (uint32_t)uni_decode(w->s + q, b - q, &cp);
                int m = p->kind == P_DIGITS ? uni_is_number(cp) : uni_is_space(cp);
                if (p->kind == P_METASPACE) m = p->litlen <= b - q && !memcmp(w->s + q, p->lit, p->litlen);
                if (m) {
                    if (q > last) PUSHM(last, q, 0);
                    if (p->kind == P_METASPACE) l = (uint32_t)p->litlen;
                    PUSHM(q, q + l, 1);
                    last = q + l;
                }
                q += l;
            }
        }
        if (rc) break;
        if (last < b) PUSHM(last, b, 0);
#undef PUSHM
        split_behavior beh = p->beh;
        int invert = p->invert;
        if (p->kind == P_WHITESPACE) { beh = B_REMOVED; invert = 1; }
        else if (p->kind == P_WSSPLIT) beh = B_REMOVED;
        else if (p->kind == P_BYTELEVEL) beh = B_ISOLATED;
        else if (p->kind == P_DIGITS) beh = p->individual ? B_ISOLATED : B_CONTIGUOUS;
        else if (p->kind == P_METASPACE) beh = B_MERGED_NEXT;
        if (invert) for (size_t i = 0; i < nms; i++) ms[i].match = !ms[i].match;
        /* fold matches into pieces (HF's SplitDelimiterBehavior) */
        size_t first = ss->npc2;
        int prev = 0;
        for (size_t i = 0; i < nms && !rc; i++) {
            size_t j = beh == B_MERGED_NEXT ? nms - 1 - i : i; /* MergedWithNext folds from the end */
            mspan m = ms[j];
            span *top = ss->npc2 > first ? &ss->pc2[ss->npc2 - 1] : NULL;
            int merge = 0;
            switch (beh) {
            case B_REMOVED: if (m.match) { prev = m.match; continue; } break;
            case B_ISOLATED: break;
            case B_MERGED_PREV: merge = m.match && !prev; break;
            case B_MERGED_NEXT: merge = m.match && !prev; break;
            case B_CONTIGUOUS: merge = m.match == prev; break;
            }
            prev = m.match;
            if (merge && top) {
                if (beh == B_MERGED_NEXT) top->a = m.a; else top->b = m.b;
                continue;
            }
            if (sra_grow((void **)&ss->pc2, &ss->pc2cap, ss->npc2 + 1, sizeof *ss->pc2)) { rc = -1; break; }
            ss->pc2[ss->npc2].a = m.a;
            ss->pc2[ss->npc2].b = m.b;
            ss->npc2++;
        }
        if (beh == B_MERGED_NEXT) /* folded backwards: restore order */
            for (size_t x = first, y = ss->npc2 - 1; x < y && ss->npc2; x++, y--) {
                span t2 = ss->pc2[x]; ss->pc2[x] = ss->pc2[y]; ss->pc2[y] = t2;
            }
    }
    ss->ms = ms;
    ss->mscap = mscap;
    if (rc) return -1;
    span *t = ss->pc; ss->pc = ss->pc2; ss->pc2 = t;
    size_t c = ss->pccap; ss->pccap = ss->pc2cap; ss->pc2cap = c;
    ss->npc = ss->npc2;
    return 0;
}

/* Rebuilds the work string piece by piece: optional prefix (aligned to the
 * piece's first character) and replacement of `from` by `to`. */
static int rewrite_pieces(tok_session *ss, const tok_pre *p) {
    astr *w = &ss->work, *o = &ss->tmp;
    o->n = 0;
    for (size_t k = 0; k < ss->npc; k++) {
        uint32_t a = ss->pc[k].a, b = ss->pc[k].b, na = (uint32_t)o->n;
        if (p->kind == P_BYTELEVEL) {
            if (p->add_prefix_space && b > a && w->s[a] != ' ' && astr_put(o, " ", 1, w->a0[a], w->a1[a])) return -1;
            if (astr_copy(o, w, a, b)) return -1;
        } else { /* Metaspace: spaces -> replacement, then the prepend scheme */
            int pre = b > a && (p->scheme == PS_ALWAYS || (p->scheme == PS_FIRST && w->a0[a] == 0 && k == 0));
            if (pre && !(b - a >= p->litlen && !memcmp(w->s + a, p->lit, p->litlen)) && w->s[a] != ' ' &&
                astr_put(o, p->lit, p->litlen, w->a0[a], w->a1[a]))
                return -1;
            for (uint32_t q = a; q < b; q++) {
                if (w->s[q] == ' ') { if (astr_put(o, p->lit, p->litlen, w->a0[q], w->a1[q])) return -1; }
                else if (astr_copy(o, w, q, q + 1)) return -1;
            }
        }
        ss->pc[k].a = na;
        ss->pc[k].b = (uint32_t)o->n;
    }
    astr_swap(w, o);
    return 0;
}

static int pretokenize(tok_session *ss) {
    const tok_tokenizer *t = ss->t;
    for (int i = 0; i < t->n_pre; i++) {
        const tok_pre *p = &t->pre[i];
        if (p->kind == P_BYTELEVEL || p->kind == P_METASPACE)
            if ((p->kind == P_METASPACE || p->add_prefix_space) && rewrite_pieces(ss, p)) return -1;
        if (p->kind == P_BYTELEVEL && !p->re) continue;
        if (p->kind == P_METASPACE && !p->split) continue;
        if (split_pieces(ss, p)) return -1;
    }
    return 0;
}

/* ============================================================== model */

static int encode_word(tok_session *ss, uint32_t a, uint32_t b) {
    const tok_tokenizer *t = ss->t;
    astr *w = &ss->work;
    if (b <= a) return 0;
    const char *word = w->s + a;
    size_t wn = b - a;
    if (t->byte_level) { /* bytes -> the byte-level alphabet, remembering each char's byte */
        if (sra_grow((void **)&ss->word, &ss->wcap, 2 * wn, 1)) return -1;
        uint32_t *src = realloc(ss->wsrc, ss->wcap * 4);
        if (!src) return -1;
        ss->wsrc = src;
        size_t k = 0;
        for (size_t i = 0; i < wn; i++) {
            int l = uni_encode(tok_byte_cp((uint8_t)word[i]), ss->word + k);
            for (int j = 0; j < l; j++) ss->wsrc[k + (size_t)j] = (uint32_t)i;
            k += (size_t)l;
        }
        word = ss->word;
        wn = k;
    }
    int n;
    for (;;) {
        n = bpe_encode_word(ss->bpe, word, wn, ss->bids, ss->bs, ss->be, ss->bcap);
        if (n < 0) { snprintf(ss->err, sizeof ss->err, "%s", bpe_session_error(ss->bpe)); return -1; }
        if ((size_t)n <= ss->bcap) break;
        size_t c = (size_t)n * 2;
        int32_t *x = realloc(ss->bids, c * 4);
        uint32_t *y = x ? realloc(ss->bs, c * 4) : NULL, *z = y ? realloc(ss->be, c * 4) : NULL;
        if (x) ss->bids = x;
        if (y) ss->bs = y;
        if (z) ss->be = z;
        if (!x || !y || !z) return -1;
        ss->bcap = c;
    }
    for (int i = 0; i < n; i++) {
        uint32_t s0 = ss->bs[i], s1 = ss->be[i] - 1; /* first and last byte in the word */
        if (t->byte_level) { s0 = ss->wsrc[s0]; s1 = ss->wsrc[s1]; }
        if (out_push(ss, ss->bids[i], w->a0[a + s0], w->a1[a + s1])) return -1;
    }
    return 0;
}

static int in_glue(const tok_tokenizer *t, int32_t cp) {
    int lo = 0, hi = t->n_glue;
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        if (t->glue[mid] < cp) lo = mid + 1;
        else hi = mid;
    }
    return lo < t->n_glue && t->glue[lo] == cp;
}

/* Encodes the piece work[a, b): one BPE word, or for SentencePiece-style
 * models several, cut before each "▁" that no merge can join to the
 * character before it (find_glue in tok_load.c). Same tokens, but short
 * words that the word cache serves. */
static int encode_piece(tok_session *ss, uint32_t a, uint32_t b) {
    const tok_tokenizer *t = ss->t;
    if (!t->cut_meta) return encode_word(ss, a, b);
    const char *s = ss->work.s;
    uint32_t start = a;
    for (uint32_t i = a + 1; i + 3 <= b; i++) {
        if ((unsigned char)s[i] != 0xe2 || (unsigned char)s[i + 1] != 0x96 || (unsigned char)s[i + 2] != 0x81)
            continue;
        uint32_t p = i - 1;
        while (p > start && ((unsigned char)s[p] & 0xc0) == 0x80) p--;
        int32_t cp;
        uni_decode(s + p, i - p, &cp);
        if (in_glue(t, cp)) continue;
        if (encode_word(ss, start, i)) return -1;
        start = i;
        i += 2;
    }
    return encode_word(ss, start, b);
}

/* Pre-tokenizes and encodes ns[x, y). */
static int encode_normalized(tok_session *ss, size_t x, size_t y) {
    if (y <= x) return 0;
    ss->work.n = 0;
    if (astr_copy(&ss->work, &ss->ns, x, y)) return -1;
    ss->npc = 0;
    if (sra_grow((void **)&ss->pc, &ss->pccap, 1, sizeof *ss->pc)) return -1;
    ss->pc[0].a = 0;
    ss->pc[0].b = (uint32_t)ss->work.n;
    ss->npc = 1;
    if (pretokenize(ss)) return -1;
    for (size_t k = 0; k < ss->npc; k++)
        if (encode_piece(ss, ss->pc[k].a, ss->pc[k].b)) return -1;
    return 0;
}

/* Normalizes raw[p0, p1) and encodes it, splitting out normalized added tokens. */
static int encode_segment(tok_session *ss, const char *raw, size_t p0, size_t p1) {
    const tok_tokenizer *t = ss->t;
    astr *ns = &ss->ns;
    ns->n = 0;
    if (astr_reserve(ns, p1 - p0)) return -1;
    for (size_t i = p0; i < p1;) {
        size_t l = clen(raw + i, p1 - i);
        for (size_t j = 0; j < l; j++) { ns->a0[ns->n + j] = (uint32_t)i; ns->a1[ns->n + j] = (uint32_t)(i + l); }
        memcpy(ns->s + ns->n, raw + i, l);
        ns->n += l;
        i += l;
    }
    for (int i = 0; i < t->n_norm; i++)
        if (tok_apply_norm(ss, &t->norm[i])) return -1;
    if (!t->any_norm_added) return encode_normalized(ss, 0, ns->n);
    size_t pos = 0;
    while (pos < ns->n) {
        size_t ms, me;
        int k = find_added(t, ns->s, ns->n, pos, 1, &ms, &me);
        if (k < 0) break;
        if (encode_normalized(ss, pos, ms)) return -1;
        if (out_push(ss, t->added[k].id, ns->a0[ms], ns->a1[me - 1])) return -1;
        pos = me;
    }
    return encode_normalized(ss, pos, ns->n);
}

/* ======================================================= post-process */

/* Leading (dir = 1) or trailing (dir = -1) characters of a vocabulary
 * string that are spaces: the byte-level space "Ġ" or White_Space. */
static uint32_t count_spaces(const char *s, size_t n, int dir) {
    uint32_t k = 0;
    size_t a = 0, b = n;
    while (a < b) {
        int32_t cp;
        size_t at = a, l;
        if (dir > 0) l = (size_t)uni_decode(s + a, b - a, &cp);
        else {
            at = b - 1;
            while (at > a && ((unsigned char)s[at] & 0xc0) == 0x80) at--;
            l = (size_t)uni_decode(s + at, b - at, &cp);
        }
        if (!l || !(cp == 0x120 || uni_is_space(cp))) break;
        k++;
        if (dir > 0) a += l; else b = at;
    }
    return k;
}

static int is_cont(const char *text, size_t len, uint32_t at) {
    return at < len && ((unsigned char)text[at] & 0xc0) == 0x80;
}

/* The ByteLevel post-processor's trim_offsets (HF byte_level.rs
 * process_offsets): a token's leading and trailing spaces are dropped from
 * its range, except the one space add_prefix_space put before the first
 * token. HF counts one byte per space, which can end inside a multi-byte
 * space such as U+3000 that the token stands for; HF's own character
 * offsets then move the start to the next character and the end back to
 * the start of its character (never before the start), and so do we:
 * offsets always fall on character boundaries. */
static void trim_offsets(tok_session *ss, const char *text, size_t len) {
    const tok_tokenizer *t = ss->t;
    for (size_t i = 0; i < ss->nout; i++) {
        size_t n;
        const char *s = tok_token_str(t, ss->ids[i], &n);
        if (!s) continue;
        uint32_t lead = count_spaces(s, n, 1), trail = count_spaces(s, n, -1);
        if (lead) {
            if ((i == 0 || ss->st[i] == 0) && t->post_prefix && lead == 1) lead = 0;
            ss->st[i] = ss->st[i] + lead < ss->en[i] ? ss->st[i] + lead : ss->en[i];
        }
        if (trail && ss->en[i] >= trail)
            ss->en[i] = ss->en[i] - trail > ss->st[i] ? ss->en[i] - trail : ss->st[i];
        while (is_cont(text, len, ss->st[i])) ss->st[i]++;
        while (ss->en[i] > 0 && is_cont(text, len, ss->en[i])) ss->en[i]--;
        if (ss->en[i] < ss->st[i]) ss->en[i] = ss->st[i];
    }
}

int tok_encode(tok_session *ss, const char *text, size_t len, int add_special, tok_encoding *out) {
    const tok_tokenizer *t = ss->t;
    ss->err[0] = 0;
    ss->nout = 0;
    if (len > UINT32_MAX / 2) {
        snprintf(ss->err, sizeof ss->err, "text of %zu bytes: at most 2 GiB per call", len);
        return -1;
    }
    size_t bad = uni_validate(text, len);
    if (bad != len) {
        snprintf(ss->err, sizeof ss->err, "invalid UTF-8 at byte %zu (0x%02x)", bad, (unsigned char)text[bad]);
        return -1;
    }
    if (add_special)
        for (int i = 0; i < t->n_pre_ids; i++)
            if (out_push(ss, t->pre_ids[i], 0, 0)) goto oom;
    size_t pos = 0;
    while (t->any_raw_added && pos < len) {
        size_t ms, me;
        int k = find_added(t, text, len, pos, 0, &ms, &me);
        if (k < 0) break;
        if (encode_segment(ss, text, pos, ms)) goto fail;
        if (out_push(ss, t->added[k].id, (uint32_t)ms, (uint32_t)me)) goto oom;
        pos = me;
    }
    if (encode_segment(ss, text, pos, len)) goto fail;
    if (t->post_trim) trim_offsets(ss, text, len);
    if (add_special)
        for (int i = 0; i < t->n_post_ids; i++)
            if (out_push(ss, t->post_ids[i], 0, 0)) goto oom;
    out->n = ss->nout;
    out->ids = ss->ids;
    out->start = ss->st;
    out->end = ss->en;
    return 0;
oom:
    snprintf(ss->err, sizeof ss->err, "out of memory");
fail:
    if (!ss->err[0]) snprintf(ss->err, sizeof ss->err, "out of memory");
    return -1;
}

/* ============================================================= session */

tok_session *tok_session_new(const tok_tokenizer *t) {
    tok_session *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->t = t;
    s->bpe = bpe_session_new(t->bpe);
    /* output arrays exist from the start, so an empty encoding still hands
     * out valid pointers (memcpy of 0 bytes from NULL is undefined) */
    if (!s->bpe || out_push(s, 0, 0, 0)) { tok_session_free(s); return NULL; }
    s->nout = 0;
    return s;
}

static void astr_free(astr *x) { free(x->s); free(x->a0); free(x->a1); }

void tok_session_free(tok_session *s) {
    if (!s) return;
    bpe_session_free(s->bpe);
    astr_free(&s->ns); astr_free(&s->tmp); astr_free(&s->work);
    free(s->pc); free(s->pc2); free(s->ms);
    free(s->ids); free(s->st); free(s->en);
    free(s->word); free(s->wsrc);
    free(s->bids); free(s->bs); free(s->be);
    free(s->dbuf);
    for (size_t i = 0; i < s->dtcap; i++) free(s->dtok[i]);
    free(s->dtok); free(s->dtoklen);
    free(s);
}
