/*
 * tok_regex.h - the regular expressions of tokenizer.json Split
 * pre-tokenizers (prefix tok_regex_).
 *
 * HF tokenizers compiles these patterns with Oniguruma. sra matches the
 * patterns real tokenizers use with hand-written matchers over unicode.h
 * classes (each keeps its pattern in a comment; they are the fast path) and
 * falls back to Oniguruma (Debian libonig) for any other pattern. Both
 * paths must find exactly the matches Oniguruma finds: leftmost match,
 * alternatives tried in order (not longest), greedy quantifiers, lookahead
 * honoured.
 *
 * Native matchers serve exactly these patterns (compared as strings after
 * JSON decoding): GPT-2's ByteLevel regex, Llama-3/cl100k's, Qwen2/3's
 * (cl100k with \p{N} for \p{N}{1,3}), the Whitespace pre-tokenizer's
 * \w+|[^\w\s]+ and DeepSeek-V3's three Splits (\p{N}{1,3}, its Han/kana
 * class and its cl100k-like third); any of them also with raw CR/LF
 * characters in place of some or all of the \r \n escapes (DeepSeek-V3's
 * tokenizer.json has them raw). Oniguruma is used with what the onig crate
 * passes: its default syntax (ONIG_SYNTAX_ONIGURUMA), UTF-8, no options.
 *
 * Unicode version: HF's bundled Oniguruma (6.9.10) knows Unicode 16.0, the
 * system's may be older (Debian 12: 6.9.8, Unicode 14.0). The native
 * matchers use unicode.h's classes (Unicode 16.0, checked against HF over
 * every code point). For the fallback, tok_regex_compile rewrites \p{L}
 * \p{N} \p{M} \p{P} \p{S} (long names, \P{..}, \p{^..} too) to
 * Oniguruma user-defined properties holding unicode.h's sets, so such
 * classes match HF's sets exactly; other classes (\w \d \s,
 * scripts, subcategories such as \p{Lu}, POSIX brackets) use the system's
 * data and can differ from HF on characters assigned after its version.
 *
 * Lifetime: compile once at load; a compiled regex is immutable and
 * tok_regex_find may be called from many threads at once (the Oniguruma
 * path keeps its match registers on the stack). Compiling is thread-safe.
 */
#ifndef SRA_TOK_REGEX_H
#define SRA_TOK_REGEX_H

#include <stddef.h>

typedef struct tok_regex tok_regex;

/* Compiles a pattern (the "Regex" string of a Split pattern, UTF-8).
 * Returns NULL and writes a message naming the pattern into err[errlen] if
 * neither a hand-written matcher nor Oniguruma can take it. */
tok_regex *tok_regex_compile(const char *pattern, char *err, size_t errlen);
void tok_regex_free(tok_regex *re);
/* 1 if a hand-written matcher serves this regex, 0 if Oniguruma does. */
int tok_regex_is_native(const tok_regex *re);
/* Finds the leftmost match starting at or after byte `pos` of s[0..n)
 * (valid UTF-8; pos on a character boundary; lookbehind/lookahead may see
 * the whole s). Returns 1 and sets [*ms, *me) or returns 0 if there is
 * none. An empty match is reported as ms == me. An Oniguruma run-time error
 * (its retry or stack limits, where HF would panic) also returns 0. */
int tok_regex_find(const tok_regex *re, const char *s, size_t n, size_t pos, size_t *ms,
                   size_t *me);

/* For tests and benchmarks: compiles any pattern with the system's
 * Oniguruma as it is (no native matcher, no \p{..} rewrite), so that the
 * native matchers can be compared with Oniguruma on the same input. */
tok_regex *tok_regex_compile_onig(const char *pattern, char *err, size_t errlen);

#endif /* SRA_TOK_REGEX_H */
