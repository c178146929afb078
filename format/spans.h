/*
 * spans.h - boundaries, atoms and spans of method.md §1-§2, and the center
 * of mass of atoms and its composition law (§2, §3) (prefix span_).
 *
 * Owns, as the single home of these rules in C (sra-extract uses it on the
 * teacher side, sra-train on the student side):
 *   - the canonical whitespace map canon(p) (§1),
 *   - the boundary set of a tokenization, with overlapping offsets (§1),
 *   - the GPT-2 word pre-segmentation and its boundaries (§2, atoms = word),
 *   - common boundaries B_T ∩ B_S by a linear merge walk (§1),
 *   - atoms (word | token | student) and the spans of one student (§2),
 *   - per-atom CoM and mass, and merging atoms into spans (§2, §3).
 * The executable oracle is ../shared/tools/sra_ref.py; tests/test_spans.c
 * compares every function here with it on real tokenizations.
 *
 * Not here (yet): the general case of §1, where teacher and student index
 * texts that differ (chat template, normalization) and boundaries are mapped
 * through a character LCS alignment. Every function below assumes both
 * tokenizations index the same raw text.
 *
 * Conventions:
 *   - Byte offsets into the raw UTF-8 text, uint32_t, as tok_encoding
 *     reports them: a tokenization is two arrays start (T), end (T).
 *     Byte ranges are half-open [start, end); token, atom and span index
 *     ranges are inclusive [first, last].
 *   - Whitespace is Unicode White_Space (the 25 code points of \s, as
 *     unicode.h's uni_is_space and the oracle's regex \s). canon (n+1):
 *     canon[p] = ws when ws <= p <= we for a maximal whitespace run
 *     [ws, we), else p. Boundaries and cuts are canonical positions.
 *   - A token belongs to no span when its range is empty (BOS, EOS,
 *     template tokens) or its canonical range is empty (whitespace only).
 *     start > end counts as empty; end > n is an error.
 *   - Boundary sets are sorted, unique uint32_t arrays.
 *   - Atom k covers the canonical cut interval [start, end) and the teacher
 *     tokens i with tok_atom[i] == k, first <= i <= last. Tokens inside
 *     [first, last] may belong to no atom (tok_atom[i] == -1: a whitespace-
 *     only token): use tok_atom, not the index range alone, to list them.
 *     Spans likewise map student tokens through tok_span.
 *   - Dimensions: T teacher tokens, S student tokens, A atoms, G spans
 *     (groups of atoms), C hidden channels.
 *
 * Ownership and errors (style.md "Errors"): the caller provides every
 * output array. A function that produces a variable number of items takes
 * the capacity of its output and returns the number it needs (>= 0),
 * writing min(needed, cap) items, so one call both queries and fills; a
 * negative return is an SRA_E_* code (util.h): SRA_E_ARG for offsets past
 * the text or invalid UTF-8 where the regex needs it, SRA_E_NOMEM when
 * internal scratch cannot be allocated. Upper bounds that always suffice:
 * boundaries <= min(2T, n + 1), atoms <= T, spans <= min(A, S).
 *
 * No I/O, no global state: every function is pure (internal scratch is
 * allocated and freed within the call) and safe to call from many threads.
 */
#ifndef SRA_SPANS_H
#define SRA_SPANS_H

#include <stddef.h>
#include <stdint.h>

/* method.md §3: masses are floored at this value before use. */
#define SPAN_MASS_FLOOR 1e-6

/* The GPT-2 split pattern of method.md §2 (served by tok_regex's native
 * matcher). */
#define SPAN_GPT2_PATTERN \
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+"

/* ------------------------------------------------------------ §1 boundaries */

/* 1 if the code point is Unicode White_Space (\s). */
int span_is_space(int32_t cp);

/* text[0..n) -> canon (n+1). Bytes that are not part of a valid UTF-8
 * whitespace character are non-space (invalid UTF-8 is not an error here). */
void span_canon_map(const char *text, size_t n, uint32_t *canon);

/* Canonical boundaries of a tokenization of a text of n bytes: canon[p] for
 * every p that is the start or end of a non-empty token and that no token
 * strictly contains (start < p < end). -> out (cap), sorted unique. */
int64_t span_boundaries(const uint32_t *canon, size_t n, const uint32_t *start,
                        const uint32_t *end, size_t T, uint32_t *out, size_t cap);

/* The GPT-2 pre-segmentation of text[0..n) (valid UTF-8), as byte ranges
 * -> start (cap), end (cap). Compiles SPAN_GPT2_PATTERN on every call (a
 * native matcher: cheap next to the search). */
int64_t span_words(const char *text, size_t n, uint32_t *start, uint32_t *end, size_t cap);

/* B_canon of atoms = word: span_boundaries of span_words. -> out (cap). */
int64_t span_word_boundaries(const char *text, size_t n, const uint32_t *canon, uint32_t *out,
                             size_t cap);

/* a (na) ∩ b (nb), both sorted unique, by a linear merge walk -> out, which
 * needs min(na, nb) entries and may alias a or b. Returns the count. */
size_t span_intersect(const uint32_t *a, size_t na, const uint32_t *b, size_t nb, uint32_t *out);

/* ------------------------------------------------------ §2 atoms and spans */

typedef enum {
    SPAN_ATOMS_WORD = 0, /* B_T ∩ GPT-2 word boundaries (default) */
    SPAN_ATOMS_TOKEN,    /* B_T: every teacher token its own atom */
    SPAN_ATOMS_STUDENT,  /* B_T ∩ B_S for one student tokenization */
} span_atoms_mode;

/* Parses "word", "token", "student"; returns -1 for anything else. */
int span_atoms_mode_parse(const char *s);
const char *span_atoms_mode_name(span_atoms_mode m);

typedef struct {
    uint32_t start, end; /* canonical cut interval [start, end) */
    int32_t first, last; /* teacher tokens, inclusive */
} span_atom;

/* Atoms between consecutive cuts (sorted unique canonical positions, a
 * subset of the teacher's boundaries): every interval [cuts[j], cuts[j+1]]
 * that holds the canonical range of at least one teacher token is an atom,
 * in order. -> atoms (cap), tok_atom (T) (atom of each token or -1;
 * written in full whatever cap is, may be NULL). */
int64_t span_atoms_from_cuts(const uint32_t *canon, size_t n, const uint32_t *cuts, size_t ncuts,
                             const uint32_t *t_start, const uint32_t *t_end, size_t T,
                             span_atom *atoms, size_t cap, int32_t *tok_atom);

/* Atoms of a teacher tokenization of text[0..n) in the given mode (cuts
 * chosen as above, then span_atoms_from_cuts). s_start/s_end (S) are used
 * by SPAN_ATOMS_STUDENT only (may be NULL otherwise). */
int64_t span_atoms(const char *text, size_t n, const uint32_t *canon, span_atoms_mode mode,
                   const uint32_t *t_start, const uint32_t *t_end, size_t T,
                   const uint32_t *s_start, const uint32_t *s_end, size_t S, span_atom *atoms,
                   size_t cap, int32_t *tok_atom);

typedef struct {
    uint32_t start, end;           /* canonical [start, end) */
    int32_t atom_first, atom_last; /* atoms, inclusive (consecutive) */
    int32_t tok_first, tok_last;   /* student tokens, inclusive */
} span_group;

/* Spans of one student over atoms (A, in order, as span_atoms made them):
 * cuts = B_S ∩ (atom starts ∪ atom ends); each interval between
 * consecutive cuts holding at least one atom and one student token (with a
 * non-empty canonical range) is a span. -> spans (cap), tok_span (S)
 * (span of each student token or -1; written in full, may be NULL). */
int64_t span_spans(const uint32_t *canon, size_t n, const span_atom *atoms, size_t A,
                   const uint32_t *s_start, const uint32_t *s_end, size_t S, span_group *spans,
                   size_t cap, int32_t *tok_span);

/* ------------------------------------------------- §3 center of mass */

/* hidden (T,C), mass (T), tok_atom (T) -> com (A,C), M (A).
 * M_k = Σ m_i, c_k = Σ m_i h_i / M_k over tokens i of atom k, with
 * m_i = max(mass[i], SPAN_MASS_FLOOR) (method.md §3: the floor is per
 * token, before use, as the oracle's attn_mass applies it); sums in double.
 * Returns 0, SRA_E_ARG (a tok_atom entry out of range, atom without token)
 * or SRA_E_NOMEM. */
int span_com(const span_atom *atoms, size_t A, const int32_t *tok_atom, size_t T, size_t C,
             const float *hidden, const float *mass, float *com, float *M);

/* The composition law (method.md §2): groups (G), com (A,C), M (A)
 * -> out_com (G,C), out_M (G): M_g = Σ M_k, c_g = Σ M_k c_k / M_g over
 * atoms atom_first..atom_last of group g; sums in double, never an
 * unweighted mean. Returns 0, SRA_E_ARG or SRA_E_NOMEM. */
int span_merge(const span_group *groups, size_t G, size_t A, size_t C, const float *com,
               const float *M, float *out_com, float *out_M);

#endif /* SRA_SPANS_H */
