/*
 * unicode.h - UTF-8 and the Unicode character classes the tokenizer needs
 * (prefix uni_). Categories come from utf8proc (Debian libutf8proc); the
 * classes are defined the way Oniguruma - the regex engine Hugging Face
 * tokenizers uses for Split patterns - defines them for UTF-8 text, so a
 * hand-written matcher agrees with HF byte for byte.
 *
 * Unicode version: HF tokenizers 0.22 links the Oniguruma that its onig_sys
 * crate bundles (6.9.10, Unicode 16.0; measured through HF itself: Todhri
 * U+105C0, new in 16.0, is \p{L}). utf8proc 2.8 knows Unicode 15.0 and
 * Debian's libonig 6.9.8 only 14.0, so unicode.c adds the 5812 code points
 * assigned in 15.1 and 16.0 to L/M/N/P/S from a 67-range table. The classes
 * below are therefore Unicode 16.0's, and differ from Debian's Oniguruma on
 * the characters it does not know (its \p{L} is false for them).
 *
 * All functions are pure and thread-safe.
 */
#ifndef SRA_UNICODE_H
#define SRA_UNICODE_H

#include <stddef.h>
#include <stdint.h>

/* Decodes one code point at s[0..n). Returns its length in bytes (1-4) and
 * stores it in *cp, or returns 0 if the bytes there are not valid UTF-8
 * (overlong forms, surrogates, > U+10FFFF and truncated sequences are
 * invalid, as in Rust's str). */
int uni_decode(const char *s, size_t n, int32_t *cp);
/* Encodes cp into out (4 bytes room); returns the length. A surrogate or a
 * value outside 0..U+10FFFF is encoded as U+FFFD. */
int uni_encode(int32_t cp, char *out);
/* Returns n if s[0..n) is valid UTF-8, else the byte offset of the first
 * invalid sequence. */
size_t uni_validate(const char *s, size_t n);

/* Character classes (as Oniguruma's Unicode classes): */
int uni_is_letter(int32_t cp);     /* \p{L}: Lu Ll Lt Lm Lo */
int uni_is_number(int32_t cp);     /* \p{N}: Nd Nl No */
int uni_is_mark(int32_t cp);       /* \p{M}: Mn Mc Me */
int uni_is_punct(int32_t cp);      /* \p{P}: Pc Pd Ps Pe Pi Pf Po */
int uni_is_symbol(int32_t cp);     /* \p{S}: Sm Sc Sk So */
int uni_is_space(int32_t cp);      /* \s: the Unicode White_Space property (25 code points) */
/* \w as Oniguruma matches a bare \w: [\w] (UNI_W below) plus, from its
 * Latin-1 ctype table, the No characters U+00B2 U+00B3 U+00B9 U+00BC-00BE
 * (UNI_W1). Not UTS #18's \w (Rust's regex crate, used by HF for added
 * tokens' single_word): that one is UNI_W plus U+200C/U+200D. */
int uni_is_word(int32_t cp);
/* \w of Rust's regex crate (UTS #18: Alphabetic, M, Nd, Pc, Join_Control),
 * which HF uses to decide an added token's single_word boundaries: UNI_W
 * plus U+200C and U+200D (checked through HF: "\u200Cab" does not match a
 * single_word "ab", "\u00B2ab" does). */
int uni_is_word_uts18(int32_t cp);

/* All classes of a code point at once, for matchers that test several per
 * character. L, N, M, P, S and SPACE are disjoint. Oniguruma has two \w:
 * inside brackets ([\w], [^\w\s]) it is UNI_W, Unicode's word class (L, M,
 * Nd, Nl, Pc and the So letters that are Other_Alphabetic: circled/squared
 * Latin U+24B6-24E9, U+1F130-1F189); a bare \w also takes UNI_W1. Found
 * by comparing HF's Split(\w) and Split([\w]) over all code points. */
enum {
    UNI_L = 1,      /* \p{L} */
    UNI_N = 2,      /* \p{N} */
    UNI_M = 4,      /* \p{M} */
    UNI_P = 8,      /* \p{P} */
    UNI_S = 16,     /* \p{S} */
    UNI_SPACE = 32, /* \s, bare or in brackets */
    UNI_W = 64,     /* [\w] */
    UNI_W1 = 128    /* bare \w but not [\w]: U+00B2 U+00B3 U+00B9 U+00BC-00BE */
};
unsigned uni_class(int32_t cp);
/* uni_class of 0..127, for inline ASCII fast paths. */
extern const uint8_t uni_ascii_class[128];

#endif /* SRA_UNICODE_H */
