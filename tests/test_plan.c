/*
 * test_plan.c - extract/plan.h: the rules that cut a record into teacher
 * sequences. The values those sequences produce are checked against numpy
 * in test_extract_ref.py; here the structure, on real tokenizers (with and
 * without BOS) and every --max-tokens from tiny to unlimited:
 *   - pieces tile the document's bytes and its body tokens, in order;
 *   - every sequence is PREFIX + body slice (+ SUFFIX), within max_tokens;
 *   - a piece never cuts an atom, every atom lands in exactly one piece;
 *   - each piece's text starts at its first atom's canonical start;
 *   - loss_start is clamped per piece;
 *   - bad records: no atom, an atom over max_tokens, invalid UTF-8.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "plan.h"
#include "tokenizer.h"
#include "util.h"

static tok_tokenizer *load(const char *name) {
    char path[1000];
    snprintf(path, sizeof path, "%.600s/%s", check_shared(), name);
    tok_tokenizer *t = NULL;
    if (tok_load(&t, path)) {
        tok_free(t);
        check_missing_asset("test_plan", path);
        return NULL;
    }
    return t;
}

static const char *TEXTS[] = {
    ("Once upon a time, there was a little girl named Lily. She liked to play outside.\n\n"
     "One day she saw a big dog. \"Hello!\" said the dog.   It wagged its tail."), /* one text */
    "  leading spaces and trailing ones   ",
    "tabs\tand\nnewlines\r\n\r\nand\u00a0no-break\u3000spaces, numbers 12345 and punctuation!?",
    "x",
};

/* Checks every invariant of one plan; returns the number of failures. */
static int check_plan(const char *tname, size_t n, size_t loss, int max_tokens,
                      const plan_doc *d) {
    int bad = 0, P = d->n_pieces, T = (int)d->n_tokens;
    int32_t *seq = malloc((size_t)max_tokens * sizeof *seq), *st = malloc((size_t)max_tokens * sizeof *st);
    int next_tok = d->n_prefix, next_atom = 0;
    uint32_t next_byte = 0;
    for (int p = 0; p < P; p++) {
        const plan_piece *pc = &d->pieces[p];
        int ok = pc->n_seq <= max_tokens && pc->text_start == next_byte && pc->text_end > pc->text_start &&
                 pc->tok_first == next_tok && pc->atom_first == next_atom && pc->atom_last >= pc->atom_first;
        /* atoms inside the piece's tokens and bytes */
        for (int a = pc->atom_first; a <= pc->atom_last; a++) {
            const span_atom *at = &d->atoms[a];
            ok &= at->first >= pc->tok_first && at->last <= pc->tok_last;
            ok &= at->start >= pc->text_start && at->end <= pc->text_end;
        }
        if (p > 0) ok &= pc->text_start == d->atoms[pc->atom_first].start;
        size_t want_loss = loss < pc->text_start ? 0 : loss - pc->text_start;
        if (want_loss > pc->text_end - pc->text_start) want_loss = pc->text_end - pc->text_start;
        ok &= pc->loss_start == want_loss;
        plan_piece_sequence(d, p, seq, st);
        for (int j = 0; j < d->n_prefix; j++) ok &= st[j] == j && seq[j] == d->ids[j];
        for (int j = d->n_prefix; j < pc->n_seq - (pc->with_suffix ? d->n_suffix : 0); j++)
            ok &= st[j] == pc->tok_first + (j - d->n_prefix) && seq[j] == d->ids[st[j]];
        if (pc->with_suffix) ok &= p == P - 1 && st[pc->n_seq - 1] == T - 1;
        if (!ok) {
            printf("  %s, max_tokens %d: piece %d of %d breaks a rule (bytes %u..%u, tokens %d..%d, atoms %d..%d, "
                   "n_seq %d)\n", tname, max_tokens, p, P, pc->text_start, pc->text_end, pc->tok_first,
                   pc->tok_last, pc->atom_first, pc->atom_last, pc->n_seq);
            bad++;
        }
        next_byte = pc->text_end;
        next_tok = pc->tok_last + 1;
        next_atom = pc->atom_last + 1;
    }
    if (next_byte != n || next_atom != d->n_atoms || next_tok > T - d->n_suffix) {
        printf("  %s, max_tokens %d: pieces end at byte %u of %zu, atom %d of %d, token %d of %d\n", tname,
               max_tokens, next_byte, n, next_atom, d->n_atoms, next_tok, T - d->n_suffix);
        bad++;
    }
    free(seq);
    free(st);
    return bad;
}

TEST(pieces_tile_documents) {
    const char *names[] = {"tokenizers/gpt2/tokenizer.json", "tokenizers/llama2/tokenizer.json",
                           "models/tinystories-656k/tokenizer.json"};
    for (int t = 0; t < 3; t++) {
        tok_tokenizer *tk = load(names[t]);
        if (!tk) continue;
        int plans = 0, split = 0, too_long = 0, fails = 0;
        for (int mode = 0; mode < 2; mode++)
            for (int mt = 3; mt <= 600; mt = mt < 12 ? mt + 1 : mt * 2) {
                plan_ctx *c = plan_ctx_new(tk, NULL, mode ? SPAN_ATOMS_TOKEN : SPAN_ATOMS_WORD, mt);
                for (size_t i = 0; i < sizeof TEXTS / sizeof *TEXTS; i++) {
                    size_t n = strlen(TEXTS[i]);
                    plan_doc d;
                    char err[512];
                    int rc = plan_build(c, TEXTS[i], n, n / 2, &d, err, sizeof err);
                    if (rc == SRA_E_ARG && strstr(err, "over --max-tokens")) { too_long++; continue; }
                    CHECK(rc == 0, "%s: plan failed: %s", names[t], err);
                    if (rc) continue;
                    plans++;
                    split += d.n_pieces > 1;
                    fails += check_plan(names[t], n, n / 2, mt, &d);
                }
                plan_ctx_free(c);
            }
        printf("  %s: %d plans (%d split into pieces, %d refused: an atom over max_tokens), %d broken\n",
               names[t], plans, split, too_long, fails);
        CHECK(fails == 0, "%d plans break a rule", fails);
        CHECK(split > 10 && plans > 40, "too few cases exercised");
        tok_free(tk);
    }
}

TEST(bad_records) {
    tok_tokenizer *tk = load("tokenizers/llama2/tokenizer.json");
    if (!tk) return;
    plan_ctx *c = plan_ctx_new(tk, NULL, SPAN_ATOMS_WORD, 8);
    plan_doc d;
    char err[512];
    CHECK(plan_build(c, " \n\t ", 4, 0, &d, err, sizeof err) == SRA_E_ARG && strstr(err, "no atom"), "whitespace: %s", err);
    CHECK(plan_build(c, "", 0, 0, &d, err, sizeof err) == SRA_E_ARG && strstr(err, "no atom"), "empty: %s", err);
    const char *longword = "Supercalifragilisticexpialidociousness";
    CHECK(plan_build(c, longword, strlen(longword), 0, &d, err, sizeof err) == SRA_E_ARG &&
              strstr(err, "over --max-tokens 8"), "long atom: %s", err);
    CHECK(plan_build(c, "ab\xff", 3, 0, &d, err, sizeof err) == SRA_E_ARG && strstr(err, "UTF-8"), "utf8: %s", err);
    /* student atoms need a student tokenizer */
    plan_ctx *cs = plan_ctx_new(tk, NULL, SPAN_ATOMS_STUDENT, 64);
    CHECK(plan_build(cs, "hello", 5, 0, &d, err, sizeof err) == SRA_E_ARG && strstr(err, "student"), "%s", err);
    plan_ctx_free(cs);
    /* and a good one still plans after the errors */
    CHECK(plan_build(c, "a b c d e f", 11, 0, &d, err, sizeof err) == 0 && d.n_pieces >= 1, "%s", err);
    plan_ctx_free(c);
    tok_free(tk);
}

int main(void) {
    RUN(pieces_tile_documents);
    RUN(bad_records);
    return check_summary();
}
