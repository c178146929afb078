/*
 * tok_regex.c - Split-pattern regexes: hand-written matchers for the
 * patterns real tokenizers use, Oniguruma for the rest (tok_regex.h).
 *
 * Each matcher reproduces Oniguruma's backtracking for its one pattern:
 * alternatives are tried in order at a start position and the first one
 * that matches wins; within an alternative, quantifiers are greedy and give
 * characters back only as far as the rest of the alternative needs. The
 * GPT-2, cl100k and Qwen patterns match at every position of a non-empty
 * string (every character is a letter, a number, a space or "other", and
 * each kind starts some alternative), so their find is a match at pos;
 * the Whitespace and DeepSeek-V3 patterns do not, and their finds search
 * forward for the leftmost position where a match starts.
 * tests/test_regex.c checks every matcher against Oniguruma itself.
 */
#include "tok_regex.h"

#include <limits.h>
#include <oniguruma.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "unicode.h"

typedef enum {
    RX_ONIG,
    RX_GPT2,
    RX_CL100K,
    RX_QWEN,
    RX_WORDS,
    RX_DS_DIGITS, /* DeepSeek-V3's three Splits, in their order */
    RX_DS_CJK,
    RX_DS_WORDS
} rx_kind;

struct tok_regex {
    rx_kind kind;
    regex_t *onig;    /* RX_ONIG only */
    int stack_region; /* RX_ONIG: a search can keep its registers on the stack */
};

/* =========================================================== patterns */

static const char RE_GPT2[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";
static const char RE_CL100K[] =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| "
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
static const char RE_QWEN[] =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| "
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
/* HF's Whitespace pre-tokenizer. */
static const char RE_WORDS[] = "\\w+|[^\\w\\s]+";
/* DeepSeek-V3's Splits: digits, then Han and kana runs (U+4E00-9FA5,
 * U+3040-309F, U+30A0-30FF, written as raw UTF-8 in the class), then the
 * rest. Its tokenizer.json writes CR and LF raw in the third. */
static const char RE_DS_DIGITS[] = "\\p{N}{1,3}";
static const char RE_DS_CJK[] =
    "[\xE4\xB8\x80-\xE9\xBE\xA5\xE3\x81\x80-\xE3\x82\x9F\xE3\x82\xA0-\xE3\x83\xBF]+";
static const char RE_DS_WORDS[] =
    "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\\r\\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+| "
    "?[\\p{P}\\p{S}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

/* Some tokenizer.json files write CR and LF as raw characters instead of
 * the \r \n escapes (DeepSeek-V3's does); Oniguruma reads both the same,
 * inside a class and out (none of these patterns turns on (?x), where raw
 * white space would be ignored). Patterns are compared in a form with
 * every \r and \n escape made raw; other escapes are kept whole, so "\\r"
 * (an escaped backslash, then r) stays. Writes at most strlen(p) + 1
 * bytes. */
static void crlf_raw(const char *p, char *out) {
    while (*p) {
        if (p[0] == '\\' && (p[1] == 'r' || p[1] == 'n')) {
            *out++ = p[1] == 'r' ? '\r' : '\n';
            p += 2;
        } else if (p[0] == '\\' && p[1]) {
            *out++ = *p++;
            *out++ = *p++;
        } else *out++ = *p++;
    }
    *out = 0;
}

/* ================================================== character classes */

#define OTHER_MASK (UNI_L | UNI_N | UNI_SPACE) /* [^\s\p{L}\p{N}] has none of these */

/* Class of the non-ASCII character at s[i] and its length. The input is
 * valid UTF-8 by contract; a malformed byte still counts as a one-byte
 * character of no class, so that bad input can never make us read past n. */
static unsigned cls_mb(const unsigned char *s, size_t n, size_t i, size_t *len) {
    int32_t cp;
    int l = uni_decode((const char *)s + i, n - i, &cp);
    if (!l) { *len = 1; return 0; }
    *len = (size_t)l;
    return uni_class(cp);
}

static inline unsigned cls_at(const unsigned char *s, size_t n, size_t i, size_t *len) {
    if (s[i] < 0x80) { *len = 1; return uni_ascii_class[s[i]]; }
    return cls_mb(s, n, i, len);
}

/* End of the run from i of characters whose class has a bit of `in`. */
static inline size_t span_in(const unsigned char *s, size_t n, size_t i, unsigned in) {
    while (i < n) {
        if (s[i] < 0x80) {
            if (!(uni_ascii_class[s[i]] & in)) break;
            i++;
        } else {
            size_t l;
            if (!(cls_mb(s, n, i, &l) & in)) break;
            i += l;
        }
    }
    return i;
}

/* End of the run from i of characters whose class has no bit of `out`. */
static inline size_t span_out(const unsigned char *s, size_t n, size_t i, unsigned out) {
    while (i < n) {
        if (s[i] < 0x80) {
            if (uni_ascii_class[s[i]] & out) break;
            i++;
        } else {
            size_t l;
            if (cls_mb(s, n, i, &l) & out) break;
            i += l;
        }
    }
    return i;
}

/* `\s+(?!\S)|\s+` at i, where s[i] is \s. \s+ takes the whole run [i, e);
 * if a non-space follows, the lookahead fails there and backtracking gives
 * back the run's last character (the lookahead then sees a space), which
 * needs a run of two or more; a one-character run falls to plain \s+.
 * So "   x" splits as "  " + " x" and the last space joins the word. */
static size_t ws_tail(const unsigned char *s, size_t n, size_t i) {
    size_t e = i, last = i;
    while (e < n) {
        size_t l;
        if (!(cls_at(s, n, e, &l) & UNI_SPACE)) break;
        last = e;
        e += l;
    }
    if (e == n || last == i) return e;
    return last;
}

/* `\s*[\r\n]+|\s+(?!\S)|\s+` at i, where s[i] is \s. \s*[\r\n]+ : \s*
 * first takes the whole space run and gives back characters until
 * [\r\n]+ can match, i.e. down to the run's last \r or \n; [\r\n]+ then
 * takes just that one (what follows it in the run is not \r\n). So the
 * match ends after the last \r or \n of the run, and without one this
 * alternative fails and the rest is ws_tail's. */
static size_t ws_nl_tail(const unsigned char *s, size_t n, size_t i) {
    size_t e = i, last = i, nl = 0;
    while (e < n) {
        size_t le;
        if (!(cls_at(s, n, e, &le) & UNI_SPACE)) break;
        if (s[e] == '\r' || s[e] == '\n') nl = e + 1;
        last = e;
        e += le;
    }
    if (nl) return nl;
    /* \s+(?!\S)|\s+ as in ws_tail */
    if (e == n || last == i) return e;
    return last;
}

/* ============================================================= GPT-2 */

/* 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
 * Returns the end of the match at i (i < n). */
static size_t gpt2_at(const unsigned char *s, size_t n, size_t i) {
    if (s[i] == '\'' && i + 1 < n) { /* contractions, case-sensitive */
        unsigned d = s[i + 1];
        if (d == 's' || d == 't' || d == 'm' || d == 'd') return i + 2;
        if (i + 2 < n && (((d == 'r' || d == 'v') && s[i + 2] == 'e') || (d == 'l' && s[i + 2] == 'l')))
            return i + 3;
    }
    size_t l;
    unsigned f = cls_at(s, n, i, &l);
    size_t j = i;
    /* " ?" takes the space when the next character starts a letter, number
     * or other run; before a space the three alternatives fail either way
     * (the space itself is in none of their classes). */
    if (s[i] == ' ' && i + 1 < n) {
        size_t l1;
        unsigned f1 = cls_at(s, n, i + 1, &l1);
        if (!(f1 & UNI_SPACE)) { j = i + 1; f = f1; l = l1; }
    }
    if (f & UNI_L) return span_in(s, n, j + l, UNI_L);
    if (f & UNI_N) return span_in(s, n, j + l, UNI_N);
    if (!(f & UNI_SPACE)) return span_out(s, n, j + l, OTHER_MASK);
    return ws_tail(s, n, i);
}

/* ============================================================ cl100k */

/* Llama-3 / cl100k (digits = 3) and Qwen2/3 (digits = 1):
 * (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|
 *  ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
 * Returns the end of the match at i (i < n). */
static size_t cl100k_at(const unsigned char *s, size_t n, size_t i, int digits) {
    unsigned c = s[i];
    if (c == '\'' && i + 1 < n) {
        /* Oniguruma's case folding: s matches s, S and U+017F LONG S (it
         * folds to s); t r e v m l d only their ASCII pair. No other code
         * point matches (checked over all of them in tests/test_regex.c);
         * the Kelvin sign folds to k, which no contraction has. (x | 0x20)
         * equals a lowercase ASCII letter only for that letter's pair. */
        unsigned d = s[i + 1] | 0x20;
        if (d == 's' || d == 't' || d == 'm' || d == 'd') return i + 2;
        if (s[i + 1] == 0xC5 && i + 2 < n && s[i + 2] == 0xBF) return i + 3;
        if (i + 2 < n) {
            unsigned e = s[i + 2] | 0x20;
            if (((d == 'r' || d == 'v') && e == 'e') || (d == 'l' && e == 'l')) return i + 3;
        }
    }
    size_t l;
    unsigned f = cls_at(s, n, i, &l);
    /* [^\r\n\p{L}\p{N}]?\p{L}+ : a letter run, or one character that is
     * none of \r \n L N (a space, a mark, punctuation, ...) glued to it. */
    if (f & UNI_L) return span_in(s, n, i + l, UNI_L);
    if (!(f & UNI_N) && c != '\r' && c != '\n' && i + l < n) {
        size_t l1;
        if (cls_at(s, n, i + l, &l1) & UNI_L) return span_in(s, n, i + l + l1, UNI_L);
    }
    /* \p{N}{1,3} (Qwen: \p{N}) */
    if (f & UNI_N) {
        size_t j = i + l;
        for (int k = 1; k < digits && j < n; k++) {
            size_t lk;
            if (!(cls_at(s, n, j, &lk) & UNI_N)) break;
            j += lk;
        }
        return j;
    }
    /*  ?[^\s\p{L}\p{N}]+[\r\n]* : nothing after the greedy runs can fail,
     * so they stay maximal. Only an ASCII space may lead. */
    size_t j = i;
    if (c == ' ' && i + 1 < n) {
        size_t l1;
        unsigned f1 = cls_at(s, n, i + 1, &l1);
        if (!(f1 & OTHER_MASK)) { j = i + 1; f = f1; l = l1; }
    }
    if (!(f & OTHER_MASK)) {
        j = span_out(s, n, j + l, OTHER_MASK);
        while (j < n && (s[j] == '\r' || s[j] == '\n')) j++;
        return j;
    }
    /* Here s[i] is \s. */
    return ws_nl_tail(s, n, i);
}

/* ======================================================== Whitespace */

/* \w+|[^\w\s]+ : spaces match nothing and are skipped by the search.
 * The bare \w and the \w inside brackets differ in Oniguruma (unicode.h):
 * U+00B2 U+00B3 U+00B9 U+00BC-00BE (UNI_W1) are in both \w and [^\w\s],
 * so they start a word run and also continue a punctuation run. */
static int words_find(const unsigned char *s, size_t n, size_t pos, size_t *ms, size_t *me) {
    for (size_t i = pos, l; i < n; i += l) {
        unsigned f = cls_at(s, n, i, &l);
        if (f & (UNI_W | UNI_W1)) {
            *ms = i;
            *me = span_in(s, n, i + l, UNI_W | UNI_W1);
            return 1;
        }
        if (!(f & UNI_SPACE)) {
            *ms = i;
            *me = span_out(s, n, i + l, UNI_W | UNI_SPACE);
            return 1;
        }
    }
    return 0;
}

/* ======================================================= DeepSeek-V3 */

/* \p{N}{1,3}
 * The leftmost number character starts the match (nothing else can), and
 * the greedy {1,3} takes up to two more that follow it. */
static int ds_digits_find(const unsigned char *s, size_t n, size_t pos, size_t *ms,
                          size_t *me) {
    size_t i = pos, l = 1;
    while (i < n) {
        if (s[i] < 0x80) {
            if (uni_ascii_class[s[i]] & UNI_N) { l = 1; break; }
            i++;
        } else {
            if (cls_mb(s, n, i, &l) & UNI_N) break;
            i += l;
        }
    }
    if (i >= n) return 0;
    size_t j = i + l;
    for (int k = 1; k < 3 && j < n; k++) {
        size_t lk;
        if (!(cls_at(s, n, j, &lk) & UNI_N)) break;
        j += lk;
    }
    *ms = i;
    *me = j;
    return 1;
}

/* [一-龥぀-ゟ゠-ヿ]+  (U+4E00-9FA5, U+3040-309F, U+30A0-30FF)
 * A maximal run of these code points, whether assigned or not. All are
 * three bytes with a lead byte E3 (U+3040-30FF) or E4-E9 (U+4E00-9FA5);
 * in UTF-8 such a byte only ever starts a character, so the search may
 * step a byte at a time. Returns 3 if one starts at s[i], else 0. */
static inline size_t ds_cjk_len(const unsigned char *s, size_t n, size_t i) {
    if ((unsigned)(s[i] - 0xE3) > 6 || n - i < 3) return 0;
    int32_t cp;
    if (uni_decode((const char *)s + i, 3, &cp) != 3) return 0;
    return (cp >= 0x3040 && cp <= 0x30FF) || (cp >= 0x4E00 && cp <= 0x9FA5) ? 3 : 0;
}

static int ds_cjk_find(const unsigned char *s, size_t n, size_t pos, size_t *ms, size_t *me) {
    for (size_t i = pos; i < n; i++) {
        if ((unsigned)(s[i] - 0xE3) > 6 || !ds_cjk_len(s, n, i)) continue;
        size_t j = i + 3;
        while (j < n && ds_cjk_len(s, n, j)) j += 3;
        *ms = i;
        *me = j;
        return 1;
    }
    return 0;
}

/* [!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+|[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+|
 *  ?[\p{P}\p{S}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
 * (tokenizer.json writes \r and \n raw.) Returns the end of the match at
 * i (i < n), or i if none starts there: a character that is none of L M
 * P S \s, and is not followed by an L or M, starts no alternative (a
 * digit, a control, a format character such as U+200D, private use,
 * unassigned), so the find goes on to the next one. */
#define DS_LM (UNI_L | UNI_M)
#define DS_PS (UNI_P | UNI_S)

static size_t ds_words_at(const unsigned char *s, size_t n, size_t i) {
    unsigned c = s[i];
    size_t l;
    unsigned f = cls_at(s, n, i, &l);
    /* [!"#...~][A-Za-z]+ : the bracket lists exactly ASCII's 32 P and S
     * characters; nothing follows the greedy run, so it stays maximal. */
    if (c < 0x80 && (f & DS_PS) && i + 1 < n && (unsigned)((s[i + 1] | 0x20) - 'a') < 26u) {
        size_t j = i + 2;
        while (j < n && (unsigned)((s[j] | 0x20) - 'a') < 26u) j++;
        return j;
    }
    /* [^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+ : from an L or an M, the L/M
     * run (an M may be the optional character or the run's first, the end
     * is the same); from any other character but \r \n P S, the L/M run
     * after it, if one follows. */
    if (f & DS_LM) return span_in(s, n, i + l, DS_LM);
    if (!(f & DS_PS) && c != '\r' && c != '\n' && i + l < n) {
        size_t l1;
        if (cls_at(s, n, i + l, &l1) & DS_LM) return span_in(s, n, i + l + l1, DS_LM);
    }
    /*  ?[\p{P}\p{S}]+[\r\n]* : greedy runs that nothing after can fail.
     * Only an ASCII space may lead, and only before a P or S. */
    size_t j = i;
    if (c == ' ' && i + 1 < n) {
        size_t l1;
        unsigned f1 = cls_at(s, n, i + 1, &l1);
        if (f1 & DS_PS) { j = i + 1; f = f1; l = l1; }
    }
    if (f & DS_PS) {
        j = span_in(s, n, j + l, DS_PS);
        while (j < n && (s[j] == '\r' || s[j] == '\n')) j++;
        return j;
    }
    /* \s*[\r\n]+|\s+(?!\S)|\s+ need s[i] to be \s; otherwise no match. */
    if (!(f & UNI_SPACE)) return i;
    return ws_nl_tail(s, n, i);
}

static int ds_words_find(const unsigned char *s, size_t n, size_t pos, size_t *ms,
                         size_t *me) {
    for (size_t i = pos; i < n;) {
        size_t e = ds_words_at(s, n, i);
        if (e > i) {
            *ms = i;
            *me = e;
            return 1;
        }
        size_t l = 1;
        if (s[i] >= 0x80) cls_mb(s, n, i, &l);
        i += l;
    }
    return 0;
}

/* ========================================================= Oniguruma */

static pthread_once_t onig_once = PTHREAD_ONCE_INIT;
/* onig_new is not thread-safe (the onig crate takes a global lock too). */
static pthread_mutex_t onig_new_lock = PTHREAD_MUTEX_INITIALIZER;

static void onig_init_once(void) {
    OnigEncoding enc[1] = {ONIG_ENCODING_UTF8};
    onig_initialize(enc, 1);
}

/* Compiles exactly `src` (the pattern as given, or its Unicode-16 rewrite);
 * messages name `pattern`, the one the user wrote. */
static tok_regex *onig_compile(const char *pattern, const char *src, char *err, size_t errlen) {
    if (errlen) err[0] = 0;
    pthread_once(&onig_once, onig_init_once);
    tok_regex *re = calloc(1, sizeof *re);
    if (!re) {
        snprintf(err, errlen, "regex \"%s\": out of memory", pattern);
        return NULL;
    }
    re->kind = RX_ONIG;
    const UChar *p = (const UChar *)src;
    OnigErrorInfo einfo;
    pthread_mutex_lock(&onig_new_lock);
    /* ONIG_SYNTAX_DEFAULT is what the onig crate's Syntax::default() reads:
     * ONIG_SYNTAX_ONIGURUMA unless someone changed it, not Ruby's. */
    int rc = onig_new(&re->onig, p, p + strlen(src), ONIG_OPTION_NONE, ONIG_ENCODING_UTF8,
                      ONIG_SYNTAX_DEFAULT, &einfo);
    pthread_mutex_unlock(&onig_new_lock);
    if (rc != ONIG_NORMAL) {
        UChar msg[ONIG_MAX_ERROR_MESSAGE_LEN];
        onig_error_code_to_str(msg, rc, &einfo);
        snprintf(err, errlen, "regex \"%s\": Oniguruma cannot compile it: %s", pattern,
                 (const char *)msg);
        free(re);
        return NULL;
    }
    /* Registers on the stack (see onig_find) unless the pattern needs more
     * than ONIG_NREGION or capture history, which allocates a tree. */
    re->stack_region = onig_number_of_captures(re->onig) + 1 <= ONIG_NREGION &&
                       onig_number_of_capture_histories(re->onig) == 0;
    return re;
}

tok_regex *tok_regex_compile_onig(const char *pattern, char *err, size_t errlen) {
    return onig_compile(pattern, pattern, err, errlen);
}

/* --------------------------------------- Unicode 16 general categories */

/* HF's Oniguruma knows Unicode 16.0, the system's may be older (Debian 12:
 * 14.0; there, new emoji such as U+1FA77 are not \p{S} and CJK Ext. I is
 * not \p{L}). For the fallback, \p{L} \p{N} \p{M} \p{P} \p{S} (and their
 * long names, \P{..} and \p{^..}) are rewritten to user-defined
 * properties built from unicode.h, which matches HF's sets exactly. Other
 * classes (\w \d, scripts, POSIX brackets) keep the system's data. */
#define NPROPS 5
#define PROP_MAX_RANGES 1024 /* Unicode 16 needs 677 for L */
static const struct { unsigned bit; const char *name; } kProps[NPROPS] = {
    {UNI_L, "SraU16L"}, {UNI_N, "SraU16N"}, {UNI_M, "SraU16M"},
    {UNI_P, "SraU16P"}, {UNI_S, "SraU16S"},
};
/* Oniguruma keeps pointers to these: {count, lo0, hi0, lo1, hi1, ...}. */
static OnigCodePoint prop_ranges[NPROPS][1 + 2 * PROP_MAX_RANGES];
static pthread_once_t props_once = PTHREAD_ONCE_INIT;
static int props_ok;

static void props_init(void) {
    pthread_once(&onig_once, onig_init_once);
    int32_t open[NPROPS];
    for (int k = 0; k < NPROPS; k++) open[k] = -1;
    int ok = 1;
    for (int32_t cp = 0; cp <= 0x110000; cp++) {
        unsigned f = cp <= 0x10FFFF ? uni_class(cp) : 0;
        for (int k = 0; k < NPROPS; k++) {
            int in = (f & kProps[k].bit) != 0;
            OnigCodePoint *r = prop_ranges[k];
            if (in && open[k] < 0) open[k] = cp;
            if (!in && open[k] >= 0) {
                if (r[0] < PROP_MAX_RANGES) {
                    r[1 + 2 * r[0]] = (OnigCodePoint)open[k];
                    r[2 + 2 * r[0]] = (OnigCodePoint)(cp - 1);
                    r[0]++;
                } else ok = 0;
                open[k] = -1;
            }
        }
    }
    for (int k = 0; k < NPROPS && ok; k++)
        if (onig_unicode_define_user_property(kProps[k].name, prop_ranges[k]) != 0) ok = 0;
    props_ok = ok;
}

/* Which of kProps a property name means (Oniguruma ignores case, spaces,
 * '-' and '_' in names), or -1. */
static int prop_index(const char *name, size_t len) {
    char b[32];
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        char c = name[i];
        if (c == ' ' || c == '-' || c == '_') continue;
        if (n + 1 >= sizeof b) return -1;
        b[n++] = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
    }
    b[n] = 0;
    static const struct { const char *name; int k; } names[] = {
        {"l", 0}, {"letter", 0}, {"n", 1}, {"number", 1}, {"m", 2}, {"mark", 2},
        {"combiningmark", 2}, {"p", 3}, {"punctuation", 3}, {"s", 4}, {"symbol", 4},
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (!strcmp(b, names[i].name)) return names[i].k;
    return -1;
}

/* The pattern with \p{X} rewritten (see above); malloc'd, NULL on no memory.
 * Escapes are copied whole, so "\\p{L}" (a backslash, then "p{L}") stays,
 * and \Q...\E quotes are copied verbatim. */
static char *rewrite_props(const char *pat) {
    size_t n = strlen(pat);
    char *out = malloc(2 * n + 16 * (n / 5 + 1)), *o = out;
    if (!out) return NULL;
    for (size_t i = 0; i < n;) {
        if (pat[i] != '\\' || i + 1 >= n) { *o++ = pat[i++]; continue; }
        char e = pat[i + 1];
        if (e == 'Q') {
            const char *q = strstr(pat + i + 2, "\\E");
            size_t end = q ? (size_t)(q - pat) + 2 : n;
            memcpy(o, pat + i, end - i);
            o += end - i;
            i = end;
            continue;
        }
        if ((e == 'p' || e == 'P') && i + 2 < n && pat[i + 2] == '{') {
            const char *close = strchr(pat + i + 3, '}');
            size_t a = i + 3;
            int neg = a < n && pat[a] == '^';
            int k = close ? prop_index(pat + a + neg, (size_t)(close - pat) - a - neg) : -1;
            if (k >= 0) {
                o += sprintf(o, "\\%c{%s%s}", e, neg ? "^" : "", kProps[k].name);
                i = (size_t)(close - pat) + 1;
                continue;
            }
        }
        *o++ = pat[i];
        *o++ = pat[i + 1];
        i += 2;
    }
    *o = 0;
    return out;
}

#define KNOWN_MAX 256 /* longer than any of the patterns above */
_Static_assert(sizeof RE_GPT2 <= KNOWN_MAX && sizeof RE_CL100K <= KNOWN_MAX &&
                   sizeof RE_QWEN <= KNOWN_MAX && sizeof RE_DS_WORDS <= KNOWN_MAX,
               "KNOWN_MAX");

tok_regex *tok_regex_compile(const char *pattern, char *err, size_t errlen) {
    static const struct { const char *pat; rx_kind kind; } known[] = {
        {RE_GPT2, RX_GPT2},           {RE_CL100K, RX_CL100K}, {RE_QWEN, RX_QWEN},
        {RE_WORDS, RX_WORDS},         {RE_DS_DIGITS, RX_DS_DIGITS}, {RE_DS_CJK, RX_DS_CJK},
        {RE_DS_WORDS, RX_DS_WORDS},
    };
    char *norm = malloc(strlen(pattern) + 1);
    if (!norm) {
        snprintf(err, errlen, "regex \"%s\": out of memory", pattern);
        return NULL;
    }
    crlf_raw(pattern, norm);
    for (size_t k = 0; k < sizeof known / sizeof known[0]; k++) {
        char kn[KNOWN_MAX];
        crlf_raw(known[k].pat, kn);
        if (strcmp(norm, kn)) continue;
        free(norm);
        tok_regex *re = calloc(1, sizeof *re);
        if (!re) {
            snprintf(err, errlen, "regex \"%s\": out of memory", pattern);
            return NULL;
        }
        re->kind = known[k].kind;
        return re;
    }
    free(norm);
    pthread_once(&props_once, props_init);
    if (!props_ok) return tok_regex_compile_onig(pattern, err, errlen);
    char *src = rewrite_props(pattern);
    if (!src) {
        snprintf(err, errlen, "regex \"%s\": out of memory", pattern);
        return NULL;
    }
    tok_regex *re = onig_compile(pattern, src, err, errlen);
    free(src);
    return re;
}

void tok_regex_free(tok_regex *re) {
    if (!re) return;
    if (re->onig) onig_free(re->onig);
    free(re);
}

int tok_regex_is_native(const tok_regex *re) { return re->kind != RX_ONIG; }

/* Registers kept on the stack: a search should not allocate, and one
 * regex_t is shared by all threads, so the region cannot live in it.
 * Oniguruma sizes a region to at least ONIG_NREGION registers and
 * reallocates one that has fewer than that or than the pattern needs, so
 * the stack region has ONIG_NREGION; other patterns get a heap region. */
static int onig_find(const tok_regex *re, const char *s, size_t n, size_t pos, size_t *ms,
                     size_t *me) {
    if (n > (size_t)INT_MAX || pos > n) return 0; /* Oniguruma offsets are int */
    int beg[ONIG_NREGION], end[ONIG_NREGION];
    OnigRegion stack = {0}, *rg = &stack;
    if (re->stack_region) {
        stack.allocated = ONIG_NREGION;
        stack.beg = beg;
        stack.end = end;
    } else if (!(rg = onig_region_new())) return 0;
    const UChar *str = (const UChar *)s;
    int r = onig_search(re->onig, str, str + n, str + pos, str + n, rg, ONIG_OPTION_NONE);
    int found = r >= 0 && rg->num_regs > 0 && rg->beg[0] >= 0;
    if (found) {
        *ms = (size_t)rg->beg[0];
        *me = (size_t)rg->end[0];
    }
    if (rg != &stack) onig_region_free(rg, 1);
    return found;
}

/* ============================================================== find */

int tok_regex_find(const tok_regex *re, const char *s, size_t n, size_t pos, size_t *ms,
                   size_t *me) {
    const unsigned char *u = (const unsigned char *)s;
    switch (re->kind) {
    case RX_GPT2:
        if (pos >= n) return 0;
        *ms = pos;
        *me = gpt2_at(u, n, pos);
        return 1;
    case RX_CL100K:
    case RX_QWEN:
        if (pos >= n) return 0;
        *ms = pos;
        *me = cl100k_at(u, n, pos, re->kind == RX_CL100K ? 3 : 1);
        return 1;
    case RX_WORDS:
        return words_find(u, n, pos, ms, me);
    case RX_DS_DIGITS:
        return ds_digits_find(u, n, pos, ms, me);
    case RX_DS_CJK:
        return ds_cjk_find(u, n, pos, ms, me);
    case RX_DS_WORDS:
        return ds_words_find(u, n, pos, ms, me);
    case RX_ONIG:
        break;
    }
    return onig_find(re, s, n, pos, ms, me);
}
