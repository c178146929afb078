/*
 * bench-extract - sra-extract's overhead over the bare teacher forward
 * (issue 6), and what an atom costs on disk.
 *
 *   build/bench-extract --teacher DIR --data FILE [--batch N] [--topk K]
 *                       [--max-bytes N] [--max-tokens N] [--threads N]
 *
 * In one run, on the same records cut into the same teacher sequences
 * (plan.h) and the same batches:
 *   bare      teacher_forward with top-k at every position: what running
 *             the teacher over the data costs on its own;
 *   extract   ext_run end to end into a temp folder: reading and hashing
 *             the data, tokenizing, atoms, the forward (top-k at atom ends
 *             only), mass, CoM, compression, writing, finalize's
 *             verification.
 * Prints both throughputs, the overhead (extract / bare - 1; target <= 5%),
 * the time split inside the extraction, and bytes per atom by component
 * (raw and stored, with the compression ratio) from the shard written.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cache.h"
#include "dataset.h"
#include "extract.h"
#include "layers.h"
#include "plan.h"
#include "teacher.h"
#include "tokenizer.h"
#include "util.h"

typedef struct { int32_t *ids; int n; } seq;

static int rm_tree_files(const char *dir) {
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd);
}

int main(int argc, char **argv) {
    const char *tdir = NULL, *data = NULL;
    int batch = 8, topk = 64, max_tokens = 0, threads = 0;
    size_t max_bytes = 4096;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) { fprintf(stderr, "bench-extract: %s needs a value\n", a); return 2; }
        i++;
        if (!strcmp(a, "--teacher")) tdir = v;
        else if (!strcmp(a, "--data")) data = v;
        else if (!strcmp(a, "--batch")) batch = atoi(v);
        else if (!strcmp(a, "--topk")) topk = atoi(v);
        else if (!strcmp(a, "--max-bytes")) max_bytes = (size_t)atol(v);
        else if (!strcmp(a, "--max-tokens")) max_tokens = atoi(v);
        else if (!strcmp(a, "--threads")) threads = atoi(v);
        else { fprintf(stderr, "bench-extract: unknown option %s\n", a); return 2; }
    }
    if (!tdir || !data || batch < 1 || topk < 1) {
        fprintf(stderr, "usage: bench-extract --teacher DIR --data FILE [--batch N] [--topk K] [--max-bytes N] "
                        "[--max-tokens N] [--threads N]\n");
        return 2;
    }
    if (threads) layers_set_threads(threads);
    teacher *t = NULL;
    tok_tokenizer *tok = NULL;
    char path[4200];
    if (teacher_load(&t, tdir)) { fprintf(stderr, "bench-extract: %s\n", t ? teacher_errmsg(t) : "out of memory"); return 1; }
    snprintf(path, sizeof path, "%s/tokenizer.json", tdir);
    if (tok_load(&tok, path)) { fprintf(stderr, "bench-extract: %s\n", tok ? tok_errmsg(tok) : "out of memory"); return 1; }
    cfg_model cm = *teacher_config(t); /* kept after teacher_free */
    const cfg_model *c = &cm;
    char wdtype[16];
    snprintf(wdtype, sizeof wdtype, "%s", teacher_weight_dtype(t));
    if (!max_tokens) max_tokens = c->max_pos < 2048 ? c->max_pos : 2048;

    /* the sequences sra-extract will run, in its order */
    data_opts o = {.max_bytes = max_bytes};
    data_reader *r = NULL;
    const char *paths[1] = {data};
    if (data_open(&r, paths, 1, &o)) { fprintf(stderr, "bench-extract: %s\n", r ? data_errmsg(r) : "out of memory"); return 1; }
    plan_ctx *pc = plan_ctx_new(tok, NULL, SPAN_ATOMS_WORD, max_tokens);
    seq *seqs = NULL;
    size_t ns = 0, cap = 0, tokens = 0;
    data_record rec;
    char err[512];
    while (data_next(r, &rec) == 1) {
        plan_doc d;
        if (rec.error || plan_build(pc, rec.text, rec.len, rec.loss_start, &d, err, sizeof err)) continue;
        tokens += d.n_tokens;
        for (int p = 0; p < d.n_pieces; p++) {
            if (sra_grow((void **)&seqs, &cap, ns + 1, sizeof *seqs)) return 1;
            seqs[ns].n = d.pieces[p].n_seq;
            seqs[ns].ids = malloc((size_t)seqs[ns].n * sizeof(int32_t));
            plan_piece_sequence(&d, p, seqs[ns].ids, NULL);
            ns++;
        }
    }
    data_close(r);
    plan_ctx_free(pc);

    /* bare: the same batches, top-k at every position */
    size_t maxN = (size_t)batch * (size_t)max_tokens;
    int32_t *ids = malloc(maxN * 4), *tk = malloc(maxN * (size_t)topk * 4);
    float *lp = malloc(maxN * (size_t)topk * 4), *tail = malloc(maxN * 4);
    uint8_t *valid = malloc(maxN);
    double t_bare = 0, t_nohead = 0;
    size_t seq_tokens = 0;
    for (int pass = 0; pass < 2; pass++) {
        double t0 = sra_now();
        for (size_t s0 = 0; s0 < ns; s0 += (size_t)batch) {
            int B = ns - s0 < (size_t)batch ? (int)(ns - s0) : batch, T = 0;
            for (int b = 0; b < B; b++) if (seqs[s0 + b].n > T) T = seqs[s0 + b].n;
            memset(valid, 0, (size_t)B * T);
            for (int b = 0; b < B; b++) {
                memcpy(ids + (size_t)b * T, seqs[s0 + b].ids, (size_t)seqs[s0 + b].n * 4);
                for (int j = seqs[s0 + b].n; j < T; j++) ids[(size_t)b * T + j] = seqs[s0 + b].ids[0];
                memset(valid + (size_t)b * T, 1, (size_t)seqs[s0 + b].n);
                if (!pass) seq_tokens += (size_t)seqs[s0 + b].n;
            }
            teacher_capture cap1 = {.topk = topk, .topk_ids = tk, .topk_logprobs = lp, .tail = tail};
            if (teacher_forward(t, ids, valid, B, T, pass ? NULL : &cap1)) {
                fprintf(stderr, "bench-extract: %s\n", teacher_errmsg(t));
                return 1;
            }
        }
        if (pass) t_nohead = sra_now() - t0; else t_bare = sra_now() - t0;
    }
    teacher_free(t);
    tok_free(tok);

    /* extract: the whole pipeline */
    char out[] = "/tmp/sra-bench-extract-XXXXXX";
    if (!mkdtemp(out)) { perror("mkdtemp"); return 1; }
    ext_settings s;
    ext_settings_default(&s);
    s.teacher_dir = tdir;
    s.data = paths;
    s.n_data = 1;
    s.data_opts = o;
    s.topk = topk;
    s.batch = batch;
    s.max_tokens = max_tokens;
    s.shards = 1;
    s.out_dir = out;
    ext_report rep;
    sra_err e = {0};
    double t0 = sra_now();
    if (ext_run(&s, &rep, &e)) { fprintf(stderr, "bench-extract: %s\n", e.msg); rm_tree_files(out); return 1; }
    double t_ext = sra_now() - t0;

    printf("bench-extract: teacher %s (%s, C=%d, L=%d, V=%d), %s: %zu sequences, %zu tokens (%zu with "
           "template tokens), batch %d, top-%d, %d threads\n",
           tdir, wdtype, c->hidden, c->n_layers, c->vocab, data, ns, tokens,
           seq_tokens, batch, topk, layers_threads());
    printf("bare forward, top-k at every position: %.3f s, %.0f tokens/s\n", t_bare, seq_tokens / t_bare);
    printf("bare forward, no LM head:              %.3f s, %.0f tokens/s\n", t_nohead, seq_tokens / t_nohead);
    double fixed = rep.setup_seconds + rep.finalize_seconds;
    double stream = t_ext - fixed - rep.forward_seconds;
    printf("sra-extract end to end:                %.3f s, %.0f tokens/s\n", t_ext, seq_tokens / t_ext);
    printf("  its forward (top-k at atom ends only) %.3f s; per record: tokenize + atoms %.3f s, mass + CoM + "
           "compress + write %.3f s; once per run: load + hash teacher and data + count records %.3f s, "
           "verify + manifest %.3f s\n",
           rep.forward_seconds, rep.plan_seconds, rep.write_seconds, rep.setup_seconds, rep.finalize_seconds);
    printf("extraction overhead over the bare forward: %+.1f%% end to end (target <= 5%%); the per-record work "
           "beside its own forward: %+.1f%%; once-per-run costs: %.2f s\n",
           100.0 * (t_ext / t_bare - 1), 100.0 * stream / rep.forward_seconds, fixed);

    /* bytes per atom by component */
    snprintf(path, sizeof path, "%s/shard-00000-of-00001.h5", out);
    cache_reader *cr = NULL;
    if (cache_open(&cr, path)) { fprintf(stderr, "bench-extract: %s\n", cr ? cache_errmsg(cr) : "oom"); return 1; }
    cache_dataset_info info[40];
    int nd = cache_dataset_stats(cr, info, 40);
    double A = (double)cache_n_atoms(cr);
    const char *groups[] = {"CoM (/atoms/com/*)", "top-k ids", "top-k log-probs", "mass + tail",
                            "atom ranges", "documents (text, offsets)", "teacher blobs"};
    double raw[7] = {0}, st[7] = {0};
    for (int i = 0; i < nd && i < 40; i++) {
        const char *n = info[i].name;
        int g = !strncmp(n, "/atoms/com", 10) ? 0 : strstr(n, "topk_ids") ? 1 : strstr(n, "topk_logprob") ? 2
              : (strstr(n, "mass") || strstr(n, "tail")) ? 3 : !strncmp(n, "/atoms/", 7) ? 4
              : !strncmp(n, "/docs/", 6) ? 5 : 6;
        raw[g] += (double)info[i].raw_bytes;
        st[g] += (double)info[i].stored_bytes;
    }
    printf("%.0f atoms (%.2f per teacher token), bytes per atom:\n", A, A / (double)tokens);
    printf("  %-28s %10s %10s %7s\n", "component", "raw", "stored", "ratio");
    double tr = 0, ts = 0;
    for (int g = 0; g < 7; g++) {
        printf("  %-28s %10.1f %10.1f %7.2f\n", groups[g], raw[g] / A, st[g] / A, st[g] > 0 ? raw[g] / st[g] : 0.0);
        tr += raw[g];
        ts += st[g];
    }
    printf("  %-28s %10.1f %10.1f %7.2f\n", "total", tr / A, ts / A, ts > 0 ? tr / ts : 0.0);
    printf("BENCH_JSON {\"bench\":\"extract\",\"tokens\":%zu,\"bare_s\":%.4f,\"extract_s\":%.4f,\"overhead\":%.4f,\"stream_overhead\":%.4f,"
           "\"bytes_per_atom\":%.1f,\"ratio\":%.3f}\n",
           seq_tokens, t_bare, t_ext, t_ext / t_bare - 1, stream / rep.forward_seconds, ts / A, ts > 0 ? tr / ts : 0.0);
    cache_close(cr);
    rm_tree_files(out);
    for (size_t i = 0; i < ns; i++) free(seqs[i].ids);
    free(seqs); free(ids); free(tk); free(lp); free(tail); free(valid);
    return 0;
}
