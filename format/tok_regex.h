/*
 * tok_regex.h - the regular expressions of tokenizer.json Split
 * pre-tokenizers (prefix tok_regex_).
 *
 * HF tokenizers compiles these patterns with Oniguruma. sra matches the
 * patterns real tokenizers use with hand-written matchers over unicode.h
 * classes (each keeps its pattern in a comment; they are the fast path) and
 * falls back to Oniguruma (Debian libonig) for any other pattern, e.g.
 * DeepSeek-V3's. Both paths must find exactly the matches Oniguruma finds:
 * leftmost match, alternatives tried in order (not longest), greedy
 * quantifiers, lookahead honoured.
 *
 * Lifetime: compile once at load; a compiled regex is immutable and
 * tok_regex_find may be called from many threads at once.
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
 * none. An empty match is reported as ms == me. */
int tok_regex_find(const tok_regex *re, const char *s, size_t n, size_t pos, size_t *ms,
                   size_t *me);

#endif /* SRA_TOK_REGEX_H */
