/*
 * sra-extract - stage one: run the teacher once over a dataset and write
 * the per-atom cache that sra-train streams (issue 6; the work is in
 * extract/extract.h, this is flags, output and exit codes).
 *
 *   sra-extract --teacher DIR --data FILE [--data FILE ...] --out DIR [options]
 *   sra-extract --finalize DIR
 *
 * SIGTERM and SIGINT (scancel, preemption, requeue, a time limit, Ctrl-C)
 * stop the run cleanly (issue 10): the handler only sets a flag that
 * ext_run polls per record; the shard in progress is abandoned, complete
 * shards stay, and the exit status is 128 + the signal, as a shell reports
 * a process killed by it.
 */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "extract.h"
#include "layers.h"

static void usage(FILE *f) {
    fprintf(f,
        "usage: sra-extract --teacher DIR --data FILE [--data FILE ...] --out DIR [options]\n"
        "       sra-extract --finalize DIR\n"
        "input:\n"
        "  --teacher DIR             config.json, *.safetensors, tokenizer.json (Hugging Face layout)\n"
        "  --data FILE               .jsonl (one JSON object a line) or .txt; repeat for more files\n"
        "  --text-field F            JSONL field with the text (default text)\n"
        "  --prompt-field P --response-field R\n"
        "                            JSONL prompt + response; the loss starts at the response\n"
        "  --max-bytes N             .txt files are cut into documents of at most N bytes (65536)\n"
        "what to store (method.md; all recorded in the cache):\n"
        "  --atoms word|token|student  atom boundaries (default word)\n"
        "  --student-tokenizer PATH  tokenizer.json of the student (required by --atoms student)\n"
        "  --mass last[:L]|attn[:L]|self:L|uniform\n"
        "                            token mass (default last = last:<last layer>): last = the attention\n"
        "                            of each piece's last token in layer L, summed over heads (paper, §9.1);\n"
        "                            attn = attention received, mean over heads and queries (§3)\n"
        "  --layers L,L,...          hidden layers to store: 0..layers or 'final' (default final)\n"
        "  --topk K                  next-token log-probs kept per atom (default 64; 0 = none, for a\n"
        "                            cache only the paper preset reads: no LM head matmul at all)\n"
        "  --dtype bf16|f16|f32      CoM element type (default bf16)\n"
        "  --zstd-level N            0 (none) .. 22 (default 1)\n"
        "  --max-tokens N            longer documents are cut between atoms (default min(max positions, 2048))\n"
        "how to run:\n"
        "  --shards N                number of shard files (default: one per 16 MiB of text)\n"
        "  --shard I/N               make only shard I of N; then --finalize\n"
        "  --task I/T                array task I of T (SLURM: $SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT):\n"
        "                            makes shards I, I+T, I+2T, ... of --shards N (default max(automatic, T));\n"
        "                            then --finalize. tools/sra-extract-slurm submits both\n"
        "  --batch N                 sequences per teacher forward (default 8)\n"
        "  --threads N               compute threads (default: all cores)\n"
        "  --strict                  stop at the first bad record instead of skipping it\n"
        "  --metrics FILE            write the run's counts and timings as JSON\n"
        "  --quiet                   no progress line or summary\n"
        "  --finalize DIR            verify every shard of DIR and write DIR/manifest.json\n"
        "Re-running the same command resumes: complete shards are kept, the rest made again.\n"
        "SIGTERM/SIGINT abandon the shard in progress (complete ones stay); exit status 128+signal.\n"
        "example:\n"
        "  sra-extract --teacher ../shared/models/tinystories-656k --data stories.jsonl --out cache/\n"
        "  sra-extract ... --out cache/ --shards 64 --task 3/16   # shards 3, 19, 35, 51\n");
}

/* Set by the handler, polled by ext_run (extract.h); holds the signal number. */
static volatile sig_atomic_t stop_signal = 0;

static void on_stop_signal(int sig) { stop_signal = sig; } /* nothing else: async-signal-safe */

static int catch_stop_signals(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART; /* reads and writes carry on; ext_run notices the flag */
    return sigaction(SIGTERM, &sa, NULL) || sigaction(SIGINT, &sa, NULL) ? -1 : 0;
}

/* "I/N" with 0 <= I < N; flag and what N is called, for the message. */
static int parse_fraction(const char *flag, const char *v, const char *n_name, int *i_out, int *n_out) {
    int i0, n0, used = 0;
    if (sscanf(v, "%d/%d%n", &i0, &n0, &used) != 2 || v[used]) {
        fprintf(stderr, "sra-extract: %s '%s': expected I/%s (SLURM: $SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT)\n",
                flag, v, n_name);
        return -1;
    }
    if (n0 < 1) { fprintf(stderr, "sra-extract: %s '%s': %s must be at least 1\n", flag, v, n_name); return -1; }
    if (i0 < 0 || i0 >= n0) {
        fprintf(stderr, "sra-extract: %s '%s': expected I/%s with 0 <= I < %s (SLURM arrays: --array=0-%d)\n", flag, v,
                n_name, n_name, n0 - 1);
        return -1;
    }
    *i_out = i0;
    *n_out = n0;
    return 0;
}

static int parse_int(const char *flag, const char *s, long lo, long hi, int *out) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) {
        fprintf(stderr, "sra-extract: %s '%s': expected an integer in %ld..%ld\n", flag, s, lo, hi);
        return -1;
    }
    *out = (int)v;
    return 0;
}

static int parse_layers(const char *s, ext_settings *st) {
    char buf[512];
    snprintf(buf, sizeof buf, "%s", s);
    st->n_layers = 0;
    for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
        if (st->n_layers == CACHE_MAX_LAYERS) {
            fprintf(stderr, "sra-extract: --layers: at most %d layers\n", CACHE_MAX_LAYERS);
            return -1;
        }
        int v;
        if (!strcmp(tok, "final")) v = CACHE_LAYER_FINAL;
        else if (parse_int("--layers", tok, 0, 100000, &v)) return -1;
        for (int i = 0; i < st->n_layers; i++)
            if (st->layers[i] == v) {
                fprintf(stderr, "sra-extract: --layers: '%s' given twice\n", tok);
                return -1;
            }
        st->layers[st->n_layers++] = v;
    }
    if (!st->n_layers) {
        fprintf(stderr, "sra-extract: --layers '%s': expected a list such as 'final' or '4,8,final'\n", s);
        return -1;
    }
    return 0;
}

static int write_metrics(const char *path, const ext_report *r) {
    FILE *f = fopen(path, "w");
    if (!f) return -1;
    fprintf(f,
            "{\"records\": %lld, \"bad_records\": %lld, \"docs\": %lld, \"atoms\": %lld, \"teacher_tokens\": %lld, "
            "\"split_records\": %lld, \"text_bytes\": %lld, \"shards_made\": %d, \"shards_skipped\": %d, "
            "\"shards_total\": %d, \"seconds\": %.3f, \"forward_seconds\": %.3f, \"write_seconds\": %.3f, "
            "\"tokens_per_second\": %.1f, \"payload_bytes\": %lld, \"file_bytes\": %lld, \"first_bad_records\": [",
            (long long)r->records, (long long)r->bad_records, (long long)r->docs, (long long)r->atoms,
            (long long)r->tokens, (long long)r->pieces_split, (long long)r->text_bytes, r->shards_made,
            r->shards_skipped, r->shards_total, r->seconds, r->forward_seconds, r->write_seconds,
            r->seconds > 0 ? r->tokens / r->seconds : 0.0, (long long)r->payload_bytes, (long long)r->file_bytes);
    for (int i = 0; i < r->n_first_bad; i++) fprintf(f, "%s%lld", i ? ", " : "", (long long)r->first_bad[i]);
    fprintf(f, "]}\n");
    return fclose(f) ? -1 : 0;
}

int main(int argc, char **argv) {
    ext_settings s;
    ext_settings_default(&s);
    s.progress = stderr;
    const char **data = calloc((size_t)argc, sizeof *data);
    const char *finalize = NULL, *metrics = NULL;
    int threads = 0;
    if (!data) return 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { usage(stdout); free(data); return 0; }
        if (!strcmp(a, "--strict")) { s.strict = 1; continue; }
        if (!strcmp(a, "--quiet")) { s.progress = NULL; continue; }
        if (i + 1 >= argc) {
            fprintf(stderr, "sra-extract: %s: %s\n", a, a[0] == '-' ? "missing its value" : "unexpected argument");
            usage(stderr);
            free(data);
            return 2;
        }
        const char *v = argv[++i];
        int bad = 0;
        if (!strcmp(a, "--teacher")) s.teacher_dir = v;
        else if (!strcmp(a, "--data")) data[s.n_data++] = v;
        else if (!strcmp(a, "--out")) s.out_dir = v;
        else if (!strcmp(a, "--text-field")) s.data_opts.text_field = v;
        else if (!strcmp(a, "--prompt-field")) s.data_opts.prompt_field = v;
        else if (!strcmp(a, "--response-field")) s.data_opts.response_field = v;
        else if (!strcmp(a, "--max-bytes")) {
            int mb;
            bad = parse_int(a, v, 4, INT_MAX, &mb);
            s.data_opts.max_bytes = (size_t)mb;
        } else if (!strcmp(a, "--student-tokenizer")) s.student_tokenizer = v;
        else if (!strcmp(a, "--atoms")) {
            int m = span_atoms_mode_parse(v);
            if (m < 0) { fprintf(stderr, "sra-extract: --atoms '%s': expected word, token or student\n", v); bad = 1; }
            else s.atoms = (span_atoms_mode)m;
        } else if (!strcmp(a, "--mass")) {
            if (ext_mass_parse(v, &s.mass, &s.mass_layer)) {
                fprintf(stderr, "sra-extract: --mass '%s': expected last, last:L (L >= 1), attn, attn:L, self:L or uniform\n", v);
                bad = 1;
            }
        } else if (!strcmp(a, "--layers")) bad = parse_layers(v, &s);
        else if (!strcmp(a, "--topk")) bad = parse_int(a, v, 0, 1 << 20, &s.topk);
        else if (!strcmp(a, "--dtype")) {
            if (cache_dtype_parse(v, &s.dtype)) { fprintf(stderr, "sra-extract: --dtype '%s': expected bf16, f16 or f32\n", v); bad = 1; }
        } else if (!strcmp(a, "--zstd-level")) bad = parse_int(a, v, 0, 22, &s.zstd_level);
        else if (!strcmp(a, "--max-tokens")) bad = parse_int(a, v, 2, 1 << 24, &s.max_tokens);
        else if (!strcmp(a, "--batch")) bad = parse_int(a, v, 1, 4096, &s.batch);
        else if (!strcmp(a, "--threads")) bad = parse_int(a, v, 1, 1024, &threads);
        else if (!strcmp(a, "--shards")) bad = parse_int(a, v, 1, 1000000, &s.shards);
        else if (!strcmp(a, "--shard")) {
            int i0, n0;
            if (parse_fraction(a, v, "N", &i0, &n0)) bad = 1;
            else if (s.shards && s.shards != n0) {
                fprintf(stderr, "sra-extract: --shard %s and --shards %d disagree\n", v, s.shards);
                bad = 1;
            } else { s.shard_index = i0; s.shards = n0; }
        } else if (!strcmp(a, "--task")) bad = parse_fraction(a, v, "T", &s.task_index, &s.task_count);
        else if (!strcmp(a, "--metrics")) metrics = v;
        else if (!strcmp(a, "--finalize")) finalize = v;
        else {
            fprintf(stderr, "sra-extract: unknown option '%s'\n", a);
            usage(stderr);
            bad = 1;
        }
        if (bad) { free(data); return 2; }
    }
    s.data = data;
    if (threads) layers_set_threads(threads);
    sra_err e = {0};
    ext_report rep = {0};
    int rc;
    if (finalize) {
        rc = ext_finalize(finalize, s.progress, &rep, &e);
    } else {
        if (!s.teacher_dir || !s.n_data || !s.out_dir) {
            fprintf(stderr, "sra-extract: --teacher, --data and --out are required\n");
            usage(stderr);
            free(data);
            return 2;
        }
        if ((s.data_opts.prompt_field != NULL) != (s.data_opts.response_field != NULL)) {
            fprintf(stderr, "sra-extract: --prompt-field and --response-field go together\n");
            free(data);
            return 2;
        }
        if (s.task_count && s.shard_index >= 0) {
            fprintf(stderr, "sra-extract: --task and --shard exclude each other (--task I/T with --shards N "
                            "makes shards I, I+T, ...)\n");
            free(data);
            return 2;
        }
        if (catch_stop_signals()) {
            fprintf(stderr, "sra-extract: cannot install the SIGTERM handler: %s\n", strerror(errno));
            free(data);
            return 1;
        }
        s.stop = &stop_signal;
        rc = ext_run(&s, &rep, &e);
    }
    if (metrics && write_metrics(metrics, &rep)) {
        fprintf(stderr, "sra-extract: %s: cannot write metrics: %s\n", metrics, strerror(errno));
        if (!rc) rc = -1;
    }
    free(data);
    if (rc == SRA_E_STOPPED) {
        /* e.msg is "stopped <where> (...)" (extract.h): name the signal after "stopped" */
        int sig = stop_signal ? (int)stop_signal : SIGTERM;
        const char *where = strncmp(e.msg, "stopped ", 8) ? e.msg : e.msg + 8;
        fprintf(stderr, "%ssra-extract: stopped by %s %s; complete shards are kept; run the same command again to "
                        "resume\n", isatty(STDERR_FILENO) ? "\n" : "", sig == SIGINT ? "SIGINT" : "SIGTERM", where);
        return 128 + sig;
    }
    if (rc) fprintf(stderr, "sra-extract: %s\n", e.msg[0] ? e.msg : "failed");
    return rc ? 1 : 0;
}
