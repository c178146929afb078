/*
 * extract.h - stage one end to end (prefix ext_): dataset records → teacher
 * and student tokenizations → atoms (plan.h) → teacher batches → per-atom
 * CoM, mass and top-k (method.md §2-§4) → shard files (cache.h) and a
 * manifest. sra-extract is a thin main over this.
 *
 * Output directory layout:
 *   settings.json               every setting that changes the payload (below),
 *                               written once; later runs must match it
 *   shard-IIIII-of-NNNNN.h5     shard I of N (cache.h), written as *.tmp and
 *                               renamed only when complete
 *   manifest.json               written by ext_finalize once every shard
 *                               verifies (or with "complete": false and the
 *                               missing shards listed, and an error)
 *
 * Sharding. Pass one reads the whole dataset: the sha256 of every input
 * file and the number of records R (a bad record still takes its number,
 * dataset.h). Shard i of N covers records [floor(i R / N), floor((i+1) R / N)),
 * so shards are contiguous, in order, and independent of who makes them.
 * N is --shards (default: one shard per 16 MiB of text, at least 1) or the
 * N of --shard i/N. Who makes which shard:
 *   - shard_index = -1, task_count = 0: this process makes every shard
 *     (skipping complete ones), then finalizes;
 *   - shard_index = i: shard i only; someone runs ext_finalize later;
 *   - task_index = I, task_count = T (a SLURM array task I of T, issue 10):
 *     shards I, I+T, I+2T, ... of N, so that a preempted task loses one
 *     shard's work, not all of it. Without --shards, N = max(automatic, T);
 *     a task whose I >= N has nothing to do and succeeds. No finalize.
 * The task split is not a setting: T tasks and one process with the same
 * N write byte-identical shards.
 *
 * Settings (settings.json, and settings_json in every shard): the teacher's
 * config, weights and tokenizer sha256, the data files' sha256 in order,
 * text/prompt/response fields, max_bytes, the student tokenizer's sha256,
 * atoms, mass, layers, topk, dtype, zstd_level, max_tokens and the shard
 * count. Paths, threads, batch, strict and metrics are not settings: they
 * do not change a byte of the payload (tests/cli_extract.sh checks batch
 * and threads). Re-running against a directory with other settings is
 * refused, naming the first setting that differs.
 *
 * Resume. A shard whose file exists, opens as a complete cache (cache.h
 * checks) and carries the same settings is skipped; any other (missing,
 * *.tmp from a killed run, unreadable) is made again from scratch. A
 * killed process leaves only *.tmp files, which no reader accepts.
 *
 * Stopping (SIGTERM from scancel, preemption, requeue or a time limit;
 * SIGINT). The caller's signal handler only sets *stop to non-zero (the
 * signal number, say); it must do nothing else, since only async-signal-
 * safe work is allowed there. ext_run polls *stop between set-up steps,
 * per record of the data pass, before each shard, before each record of a
 * shard (so it reacts within one teacher batch) and before finalize. It
 * then abandons the shard in progress (its *.tmp is removed; complete
 * shards stay), skips finalize and returns SRA_E_STOPPED, with e->msg
 * reading "stopped <where> (<what was cleaned up>)" and rep->stopped_shard
 * the abandoned shard (-1: none was in progress). Running the same command
 * again resumes. ext_finalize does not poll: it only reads, then writes
 * manifest.json atomically.
 *
 * Determinism: same inputs and settings → identical payload bytes (every
 * dataset; the root attribute "created" is the only thing that differs).
 *
 * Bad records (invalid JSON, missing field, invalid UTF-8, empty text, no
 * atom, an atom longer than max_tokens) are skipped and counted; the shard's
 * stats_json (cache.h) keeps the count and the first few record numbers
 * with their messages. With strict they stop the run (error naming the
 * record), and the shard stays *.tmp.
 *
 * Errors: every function returns 0 or a negative SRA_E_* code with a
 * message in *e naming the file, record or setting.
 */
#ifndef SRA_EXTRACT_H
#define SRA_EXTRACT_H

#include <signal.h>
#include <stdint.h>
#include <stdio.h>

#include "cache.h"
#include "dataset.h"
#include "spans.h"
#include "util.h"

/* Token mass rules (method.md §3, §9.1); recorded as "attn:L", "self:L",
 * "uniform" or "last:L" with L resolved. */
typedef enum { EXT_MASS_ATTN = 0, EXT_MASS_SELF, EXT_MASS_UNIFORM, EXT_MASS_LAST } ext_mass_kind;

/* Bad records named in a shard's stats and in the summary. */
#define EXT_BAD_NAMED 5

typedef struct {
    const char *teacher_dir;         /* config.json, *.safetensors, tokenizer.json */
    const char *const *data;         /* input files, in order */
    int n_data;
    data_opts data_opts;             /* fields, max_bytes */
    const char *student_tokenizer;   /* tokenizer.json path or NULL */
    span_atoms_mode atoms;           /* default word */
    ext_mass_kind mass;              /* default last (the paper preset, §9.1) */
    int mass_layer;                  /* attn, last: 1..L; self: 0..L; 0 with attn
                                      * or last = the last layer */
    int n_layers;                    /* hidden layers to store (default 1: final) */
    int32_t layers[CACHE_MAX_LAYERS];/* 0..L, or CACHE_LAYER_FINAL */
    int topk;                        /* default 64 */
    cache_dtype dtype;               /* default bf16 */
    int zstd_level;                  /* default 1 */
    int max_tokens;                  /* 0 = min(teacher max positions, 2048) */
    int batch;                       /* sequences per forward (default 8) */
    int shards;                      /* N; 0 = automatic */
    int shard_index;                 /* -1 = all shards (then finalize) */
    int task_index, task_count;      /* task_count 0 = no task split; else
                                      * 0 <= task_index < task_count (above) */
    int strict;                      /* bad records are fatal */
    const char *out_dir;
    FILE *progress;                  /* progress line / summary (NULL = silent) */
    volatile sig_atomic_t *stop;     /* NULL, or set non-zero by a signal handler
                                      * to stop cleanly (above); read only */
} ext_settings;

void ext_settings_default(ext_settings *s);

/* What a run did (also written by sra-extract --metrics). */
typedef struct {
    int64_t records;          /* records in the shards this run made */
    int64_t bad_records;
    int64_t first_bad[EXT_BAD_NAMED];
    int n_first_bad;
    int64_t docs, atoms, tokens, pieces_split; /* docs = pieces written */
    int64_t text_bytes;
    int shards_made, shards_skipped, shards_total;
    int shards_owned;         /* shards this process had to look at */
    int stopped_shard;        /* after SRA_E_STOPPED: the shard abandoned, or -1 */
    double seconds, forward_seconds, write_seconds;
    double setup_seconds;     /* teacher load, hashing, the data pass (once per run) */
    double plan_seconds;      /* reading records, tokenizing, atoms */
    double finalize_seconds;  /* verification and manifest */
    int64_t payload_bytes, file_bytes;
} ext_report;

/* Runs the shards this process owns (see above). */
int ext_run(const ext_settings *s, ext_report *rep, sra_err *e);

/* Verifies every shard of out_dir (opens it and decodes every document) and
 * writes manifest.json. Fails, naming them, when shards are missing or
 * broken (the manifest then says "complete": false). rep may be NULL. */
int ext_finalize(const char *out_dir, FILE *progress, ext_report *rep, sra_err *e);

/* Parses "attn:L", "attn" (last layer), "last:L" (L >= 1), "last" (last
 * layer), "self:L", "uniform"; -1 otherwise. Layers above the teacher's
 * count are refused later, by ext_run, which knows it. */
int ext_mass_parse(const char *s, ext_mass_kind *kind, int *layer);

#endif /* SRA_EXTRACT_H */
