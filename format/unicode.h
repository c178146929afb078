/*
 * unicode.h - UTF-8 and the Unicode character classes the tokenizer needs
 * (prefix uni_). Categories come from utf8proc (Debian libutf8proc); the
 * classes are defined the way Oniguruma - the regex engine Hugging Face
 * tokenizers uses for Split patterns - defines them for UTF-8 text, so a
 * hand-written matcher agrees with HF byte for byte.
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
/* Encodes cp into out (4 bytes room); returns the length. */
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
int uni_is_space(int32_t cp);      /* \s: the Unicode White_Space property */
int uni_is_word(int32_t cp);       /* \w: letters, marks, numbers, connector punctuation */

#endif /* SRA_UNICODE_H */
