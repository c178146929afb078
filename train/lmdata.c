/*
 * lmdata.c - text files → one token stream with bytes per token
 * (contract: lmdata.h).
 */
#include "lmdata.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

int lmd_load(lmd_stream *s, const tok_tokenizer *tok, const char *const *paths, int n_paths, const data_opts *o,
             char *err, size_t errlen) {
    memset(s, 0, sizeof *s);
    data_reader *r = NULL;
    tok_session *ts = tok_session_new(tok);
    size_t cap = 0;
    int rc = ts ? data_open(&r, paths, n_paths, o) : SRA_E_NOMEM;
    if (rc) {
        snprintf(err, errlen, "%s", r ? data_errmsg(r) : "out of memory");
        goto fail;
    }
    data_record rec;
    while ((rc = data_next(r, &rec)) == 1) {
        s->records++;
        tok_encoding e;
        if (rec.error || tok_encode(ts, rec.text, rec.len, 1, &e)) { s->bad_records++; continue; }
        if (sra_grow((void **)&s->tokens, &cap, s->n + e.n, sizeof *s->tokens)) goto oom;
        size_t cap2 = cap; /* bytes grows in step with tokens */
        uint32_t *b = realloc(s->bytes, cap2 * sizeof *b);
        if (!b) goto oom;
        s->bytes = b;
        uint32_t prev = 0;
        for (size_t i = 0; i < e.n; i++) {
            s->tokens[s->n + i] = e.ids[i];
            uint32_t end = e.end[i] > e.start[i] ? e.end[i] : prev;
            s->bytes[s->n + i] = end > prev ? end - prev : 0;
            if (end > prev) prev = end;
        }
        s->n += e.n;
        s->text_bytes += (int64_t)rec.len;
    }
    if (rc < 0) {
        snprintf(err, errlen, "%s", data_errmsg(r));
        goto fail;
    }
    data_close(r);
    tok_session_free(ts);
    return 0;
oom:
    snprintf(err, errlen, "out of memory after %zu tokens", s->n);
fail:
    data_close(r);
    tok_session_free(ts);
    lmd_free(s);
    return -1;
}

void lmd_free(lmd_stream *s) {
    free(s->tokens);
    free(s->bytes);
    memset(s, 0, sizeof *s);
}

void lmd_batch(const lmd_stream *s, uint64_t *rng, int B, int T, int32_t *ids, int32_t *targets) {
    size_t span = s->n - (size_t)T; /* starts 0..n-T-1 */
    for (int b = 0; b < B; b++) {
        size_t st = (size_t)(sra_splitmix64(rng) % span);
        memcpy(ids + (size_t)b * T, s->tokens + st, (size_t)T * sizeof *ids);
        memcpy(targets + (size_t)b * T, s->tokens + st + 1, (size_t)T * sizeof *targets);
    }
}

size_t lmd_eval_windows(const lmd_stream *s, int T) {
    return s->n < 2 ? 0 : (s->n - 1 + (size_t)T - 1) / (size_t)T;
}

int lmd_eval_window(const lmd_stream *s, size_t w, int T, int32_t *ids, int32_t *targets, uint32_t *tbytes) {
    size_t st = w * (size_t)T;
    int real = 0;
    for (int j = 0; j < T; j++) {
        size_t i = st + (size_t)j;
        if (i + 1 < s->n) {
            ids[j] = s->tokens[i];
            targets[j] = s->tokens[i + 1];
            tbytes[j] = s->bytes[i + 1];
            real++;
        } else {
            ids[j] = s->tokens[s->n - 1];
            targets[j] = -1;
            tbytes[j] = 0;
        }
    }
    return real;
}
