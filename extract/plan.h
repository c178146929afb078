/*
 * plan.h - one dataset record made ready for the teacher (prefix plan_):
 * teacher (and student) tokenization, atoms (method.md §2) and the pieces
 * a long document is cut into, each piece one teacher sequence and one
 * cache document.
 *
 * Owns the rules that decide what the teacher sees, so that they live in
 * one place (sra-extract runs them; tests check them):
 *
 *   Tokens. The text is encoded with the teacher tokenizer's post-processor
 *   (add_special = 1). The template tokens it adds at the front (those with
 *   an empty byte range before the first real token: BOS) form the
 *   PREFIX, those it adds at the end the SUFFIX; the rest is the BODY.
 *
 *   Atoms. span_atoms (spans.h) over the body, in the chosen mode; with
 *   atoms = student the text is also encoded with the student tokenizer
 *   (add_special = 0: template tokens have no range and no boundary).
 *   A record without any atom (only whitespace, say) is a bad record.
 *
 *   Pieces (--max-tokens). A document whose sequence does not fit in
 *   max_tokens is cut between atoms, never inside one. Piece k holds whole
 *   atoms [atom_first, atom_last]; its sequence is
 *       PREFIX + body tokens [tok_first, tok_last] (+ SUFFIX, last piece)
 *   where the body tokens of consecutive pieces follow each other with no
 *   gap and no overlap (whitespace-only tokens between two atoms go with
 *   the atom after them, as their text does), and the last piece also
 *   takes the body tokens after the last atom and the SUFFIX when they fit
 *   (they come after every atom but a later query still changes the
 *   attention mass an earlier token receives, so they are kept when
 *   possible). Every piece starts with the PREFIX again: each piece is a
 *   sequence of its own, as if the document started there (no context is
 *   carried over; decision of issue 6, written in the README). Pieces are
 *   packed greedily: as many atoms as fit.
 *   A piece's text is the document's bytes [text_start, text_end): piece 0
 *   starts at byte 0, piece k > 0 at the canonical start of its first atom
 *   (the start of the whitespace before it, method.md §1), and each piece
 *   ends where the next one starts, the last at the end of the document;
 *   so the pieces' texts concatenated give the document back and a
 *   whitespace run is never cut. An atom longer than max_tokens (with the
 *   prefix) makes the record bad.
 *
 * Offsets are byte offsets into the record's text; token and atom index
 * ranges are inclusive.
 *
 * Lifetimes: a plan_doc's arrays belong to the plan_ctx that built it and
 * are valid until the next plan_build on it or plan_ctx_free.
 * Threads: a plan_ctx is used by one thread at a time (it holds tokenizer
 * sessions); the tokenizers themselves may be shared.
 */
#ifndef SRA_PLAN_H
#define SRA_PLAN_H

#include <stddef.h>
#include <stdint.h>

#include "spans.h"
#include "tokenizer.h"

typedef struct {
    uint32_t text_start, text_end; /* the piece's bytes in the document */
    uint32_t loss_start;           /* relative to text_start, clamped to the piece */
    int32_t atom_first, atom_last; /* atoms, inclusive */
    int32_t tok_first, tok_last;   /* body tokens of the document, inclusive */
    int32_t with_suffix;           /* 1: the SUFFIX follows (last piece, when it fits) */
    int32_t n_seq;                 /* sequence length: prefix + body [+ suffix] */
} plan_piece;

typedef struct {
    size_t n_tokens;           /* T: tokens of the whole document, prefix and suffix included */
    const int32_t *ids;        /* (T) */
    const uint32_t *start;     /* (T) byte offsets */
    const uint32_t *end;       /* (T) */
    int32_t n_prefix, n_suffix;/* template tokens at the front / the end */
    const int32_t *tok_atom;   /* (T) atom of each token or -1 */
    const span_atom *atoms;    /* (A) canonical cut intervals, teacher tokens */
    int32_t n_atoms;           /* A >= 1 */
    const plan_piece *pieces;  /* (P) in order */
    int32_t n_pieces;          /* P >= 1 */
} plan_doc;

typedef struct plan_ctx plan_ctx;

/* teacher: required; student: required for SPAN_ATOMS_STUDENT, else may be
 * NULL. max_tokens >= 2. Returns NULL when out of memory. */
plan_ctx *plan_ctx_new(const tok_tokenizer *teacher, const tok_tokenizer *student,
                       span_atoms_mode mode, int max_tokens);
void plan_ctx_free(plan_ctx *c);

/* Plans text[0..n) with the loss starting at byte loss_start (<= n).
 * Returns 0 with *d filled, or SRA_E_ARG for a bad record (err says why:
 * invalid UTF-8 at byte N, no atom, an atom of N tokens over max_tokens),
 * or SRA_E_NOMEM. */
int plan_build(plan_ctx *c, const char *text, size_t n, size_t loss_start, plan_doc *d,
               char *err, size_t errlen);

/* The teacher sequence of piece p of d: writes d->pieces[p].n_seq ids to
 * ids and, when seq_tok is not NULL, the document token index of each
 * position to seq_tok (so tok_atom[seq_tok[j]] is position j's atom). */
void plan_piece_sequence(const plan_doc *d, int p, int32_t *ids, int32_t *seq_tok);

#endif /* SRA_PLAN_H */
