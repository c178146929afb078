/*
 * util.h - small shared helpers for every sra module (prefix sra_).
 *
 * Owns: the library-wide error convention, SHA-256, IEEE half and bfloat16
 * conversion, a wall clock, and the progress line long jobs print.
 *
 * Error convention (style.md "Errors"): library functions return 0 on success
 * or a negative SRA_E* code, and leave a human message, naming the file,
 * dataset, record or key at fault, in an sra_err the caller owns (usually
 * embedded in a handle). Library code never prints and never exits.
 *
 * Thread-safety: every function here is reentrant; an sra_err belongs to one
 * thread at a time.
 */
#ifndef SRA_UTIL_H
#define SRA_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define SRA_VERSION "0.1.0"

/* ---------------------------------------------------------------- errors */
enum {
    SRA_OK = 0,
    SRA_E_IO = -1,       /* open/read/write/rename failed (errno-level) */
    SRA_E_FORMAT = -2,   /* file exists but is not what we expect */
    SRA_E_VERSION = -3,  /* format version we cannot read */
    SRA_E_INCOMPLETE = -4, /* writer did not finish (complete=0 or .tmp) */
    SRA_E_CORRUPT = -5,  /* checksum, decompression or bounds failure */
    SRA_E_ARG = -6,      /* caller passed something invalid */
    SRA_E_NOMEM = -7,
    SRA_E_MISSING = -8,  /* a required dataset/attribute/key is absent */
    SRA_E_STOPPED = -9,  /* asked to stop (a signal); partial output removed */
};

typedef struct {
    int code;
    char msg[1024];
} sra_err;

/* Sets e->code and formats e->msg (when e is non-NULL). Returns code so that
 * `return sra_err_set(e, SRA_E_IO, "...")` reads naturally. */
int sra_err_set(sra_err *e, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Short name of a code ("corrupt", "io", ...). */
const char *sra_err_name(int code);

/* ---------------------------------------------------------------- sha256 */
typedef struct {
    uint32_t h[8];
    uint64_t nbytes;
    uint8_t buf[64];
    size_t nbuf;
} sra_sha256;

void sra_sha256_init(sra_sha256 *s);
void sra_sha256_update(sra_sha256 *s, const void *data, size_t n);
void sra_sha256_final(sra_sha256 *s, uint8_t out[32]);
/* One call: hex digest (64 chars + NUL) of a buffer. */
void sra_sha256_hex(const void *data, size_t n, char hex[65]);
/* Hex digest of a whole file; returns 0 or SRA_E_IO with e->msg naming it. */
int sra_sha256_file(const char *path, char hex[65], sra_err *e);

/* ---------------------------------------------------- half and bfloat16 */
/* IEEE 754 binary16, round-to-nearest-even, NaN/Inf preserved. */
uint16_t sra_f32_to_f16(float f);
float sra_f16_to_f32(uint16_t h);
/* bfloat16 = the top 16 bits of a binary32, round-to-nearest-even
 * (NaN stays NaN). */
uint16_t sra_f32_to_bf16(float f);
float sra_bf16_to_f32(uint16_t b);

/* ------------------------------------------------------------ time, misc */
double sra_now(void); /* monotonic seconds */
/* Current UTC time as "YYYY-MM-DDTHH:MM:SSZ". */
void sra_utc_iso8601(char out[32]);

/* ---------------------------------------------------- seeded randomness */
/* splitmix64: the next 64 random bits from state *s (advanced). The one
 * generator behind every seeded choice in sra (init, data order, windows),
 * so a seed means the same everywhere. */
uint64_t sra_splitmix64(uint64_t *s);
/* A standard normal draw (Box-Muller over two splitmix64 draws). */
double sra_normal(uint64_t *s);

/* ---------------------------------------------------------- JSON lines */
/* The string value of a top-level "key" in one JSON object (a JSONL line),
 * unescaped, malloc'd, with its true byte length: unlike cJSON it keeps an
 * escaped U+0000. NULL if the key is absent, not a string, or badly escaped.
 * A minimal scanner: the caller validates the line with cJSON first. */
char *sra_json_get_string(const char *line, const char *key, size_t *len);
/* Grows *p (an array of *cap elements of elem bytes) to hold at least
 * need elements, doubling from 64; *p and *cap are updated only on
 * success. Returns 0, or -1 when out of memory. */
int sra_grow(void **p, size_t *cap, size_t need, size_t elem);
/* Reads a whole file into a malloc'd, NUL-terminated buffer (*len bytes,
 * len may be NULL); NULL with errno set when it cannot. */
char *sra_read_file(const char *path, size_t *len);
/* Writes text to path atomically: into path.<pid>.tmp, flushed and
 * fsynced, then renamed, so a reader never sees half a file (and two
 * processes writing the same file never mix). Returns 0 or SRA_E_IO with
 * e->msg naming the file. */
int sra_write_file_atomic(const char *path, const char *text, sra_err *e);
/* Writes s[0..n) as a JSON string literal (UTF-8 passed through). */
void sra_json_put_string(FILE *f, const char *s, size_t n);

/* ----------------------------------------------------------- progress */
/* A progress reporter for long jobs: on a TTY it redraws one line with rate
 * and ETA at most every 0.2 s; otherwise it stays silent until
 * sra_progress_end, which prints a one-line summary (style: README
 * "Long jobs show progress on a TTY ... and a one-line summary otherwise"). */
typedef struct {
    FILE *out;
    const char *what;   /* e.g. "docs" */
    double total;       /* 0 = unknown */
    double done;
    double t0, last;
    int tty;
    char note[96];      /* printed after the rate on the TTY line when set */
} sra_progress;

void sra_progress_begin(sra_progress *p, FILE *out, const char *what, double total);
void sra_progress_update(sra_progress *p, double done);
void sra_progress_end(sra_progress *p, const char *summary_extra);

#endif /* SRA_UTIL_H */
