/*
 * util.c - errors, SHA-256 (FIPS 180-4), half/bfloat16, clocks, progress.
 */
#include "util.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ================================================================ errors */

int sra_err_set(sra_err *e, int code, const char *fmt, ...) {
    if (e) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(e->msg, sizeof e->msg, fmt, ap);
        va_end(ap);
        e->code = code;
    }
    return code;
}

const char *sra_err_name(int code) {
    switch (code) {
    case SRA_OK: return "ok";
    case SRA_E_IO: return "io";
    case SRA_E_FORMAT: return "format";
    case SRA_E_VERSION: return "version";
    case SRA_E_INCOMPLETE: return "incomplete";
    case SRA_E_CORRUPT: return "corrupt";
    case SRA_E_ARG: return "argument";
    case SRA_E_NOMEM: return "out of memory";
    case SRA_E_MISSING: return "missing";
    case SRA_E_STOPPED: return "stopped";
    default: return "unknown";
    }
}

/* ================================================================ sha256 */
/* Constants: first 32 bits of the fractional parts of the cube roots of the
 * first 64 primes (FIPS 180-4 §4.2.2). */
static const uint32_t K256[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1,
    0x923f82a4, 0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3,
    0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786,
    0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147,
    0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13,
    0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
    0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a,
    0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208,
    0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};

#define ROR(x, n) (((x) >> (n)) | ((x) << (32 - (n))))

static void sha256_block(uint32_t h[8], const uint8_t *p) {
    uint32_t w[64];
    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 |
               (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
    for (int i = 16; i < 64; i++) {
        uint32_t s0 = ROR(w[i - 15], 7) ^ ROR(w[i - 15], 18) ^ (w[i - 15] >> 3);
        uint32_t s1 = ROR(w[i - 2], 17) ^ ROR(w[i - 2], 19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5],
             g = h[6], hh = h[7];
    for (int i = 0; i < 64; i++) {
        uint32_t S1 = ROR(e, 6) ^ ROR(e, 11) ^ ROR(e, 25);
        uint32_t ch = (e & f) ^ (~e & g);
        uint32_t t1 = hh + S1 + ch + K256[i] + w[i];
        uint32_t S0 = ROR(a, 2) ^ ROR(a, 13) ^ ROR(a, 22);
        uint32_t mj = (a & b) ^ (a & c) ^ (b & c);
        uint32_t t2 = S0 + mj;
        hh = g; g = f; f = e; e = d + t1; d = c; c = b; b = a; a = t1 + t2;
    }
    h[0] += a; h[1] += b; h[2] += c; h[3] += d;
    h[4] += e; h[5] += f; h[6] += g; h[7] += hh;
}

void sra_sha256_init(sra_sha256 *s) {
    static const uint32_t h0[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372,
                                   0xa54ff53a, 0x510e527f, 0x9b05688c,
                                   0x1f83d9ab, 0x5be0cd19};
    memcpy(s->h, h0, sizeof h0);
    s->nbytes = 0;
    s->nbuf = 0;
}

void sra_sha256_update(sra_sha256 *s, const void *data, size_t n) {
    const uint8_t *p = data;
    s->nbytes += n;
    if (s->nbuf) {
        size_t take = 64 - s->nbuf < n ? 64 - s->nbuf : n;
        memcpy(s->buf + s->nbuf, p, take);
        s->nbuf += take; p += take; n -= take;
        if (s->nbuf < 64) return;
        sha256_block(s->h, s->buf);
        s->nbuf = 0;
    }
    for (; n >= 64; p += 64, n -= 64) sha256_block(s->h, p);
    memcpy(s->buf, p, n);
    s->nbuf = n;
}

void sra_sha256_final(sra_sha256 *s, uint8_t out[32]) {
    uint64_t bits = s->nbytes * 8;
    uint8_t pad = 0x80;
    sra_sha256_update(s, &pad, 1);
    uint8_t zero = 0;
    while (s->nbuf != 56) sra_sha256_update(s, &zero, 1);
    uint8_t len[8];
    for (int i = 0; i < 8; i++) len[i] = (uint8_t)(bits >> (56 - 8 * i));
    sra_sha256_update(s, len, 8);
    for (int i = 0; i < 8; i++) {
        out[4 * i] = (uint8_t)(s->h[i] >> 24);
        out[4 * i + 1] = (uint8_t)(s->h[i] >> 16);
        out[4 * i + 2] = (uint8_t)(s->h[i] >> 8);
        out[4 * i + 3] = (uint8_t)s->h[i];
    }
}

static void to_hex(const uint8_t d[32], char hex[65]) {
    static const char digits[] = "0123456789abcdef";
    for (int i = 0; i < 32; i++) {
        hex[2 * i] = digits[d[i] >> 4];
        hex[2 * i + 1] = digits[d[i] & 15];
    }
    hex[64] = 0;
}

void sra_sha256_hex(const void *data, size_t n, char hex[65]) {
    sra_sha256 s;
    uint8_t d[32];
    sra_sha256_init(&s);
    sra_sha256_update(&s, data, n);
    sra_sha256_final(&s, d);
    to_hex(d, hex);
}

int sra_sha256_file(const char *path, char hex[65], sra_err *e) {
    FILE *f = fopen(path, "rb");
    if (!f) return sra_err_set(e, SRA_E_IO, "%s: cannot open: %s", path, strerror(errno));
    sra_sha256 s;
    sra_sha256_init(&s);
    static __thread uint8_t buf[1 << 16];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0) sra_sha256_update(&s, buf, n);
    int bad = ferror(f);
    fclose(f);
    if (bad) return sra_err_set(e, SRA_E_IO, "%s: read error", path);
    uint8_t d[32];
    sra_sha256_final(&s, d);
    to_hex(d, hex);
    return 0;
}

/* ====================================================== half and bfloat16 */

static uint32_t f32_bits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static float bits_f32(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

uint16_t sra_f32_to_f16(float f) {
    uint32_t x = f32_bits(f);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000);
    uint32_t absx = x & 0x7fffffffu;
    if (absx >= 0x7f800000u) /* Inf or NaN (keep NaN quiet and non-zero) */
        return sign | 0x7c00 | (absx > 0x7f800000u ? 0x200 | ((absx >> 13) & 0x3ff) : 0);
    if (absx >= 0x477ff000u) /* rounds to >= 65520: overflow to Inf */
        return sign | 0x7c00;
    if (absx < 0x38800000u) { /* below the smallest normal 2^-14: subnormal */
        /* value = absx as float; half subnormal unit = 2^-24. Scale and
         * round to nearest even with the FPU, which is exact here. */
        float a = bits_f32(absx) * 16777216.0f; /* * 2^24 */
        return sign | (uint16_t)lrintf(a);
    }
    /* normal: rebias exponent 127 -> 15 and round mantissa 23 -> 10 bits */
    uint32_t mant_odd = (absx >> 13) & 1;
    absx += 0xfff + mant_odd;           /* round to nearest even */
    return sign | (uint16_t)((absx - 0x38000000u) >> 13);
}

float sra_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f, mant = h & 0x3ff;
    if (exp == 0x1f) return bits_f32(sign | 0x7f800000u | (mant << 13));
    if (exp == 0) { /* zero or subnormal: mant * 2^-24 */
        float v = (float)mant * (1.0f / 16777216.0f);
        return sign ? -v : v;
    }
    return bits_f32(sign | ((exp + 112) << 23) | (mant << 13));
}

uint16_t sra_f32_to_bf16(float f) {
    uint32_t x = f32_bits(f);
    if ((x & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((x >> 16) | 0x40);
    x += 0x7fffu + ((x >> 16) & 1);
    return (uint16_t)(x >> 16);
}

float sra_bf16_to_f32(uint16_t b) { return bits_f32((uint32_t)b << 16); }

/* ============================================================ time, misc */

double sra_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void sra_utc_iso8601(char out[32]) {
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* ========================================================== JSON lines */

static int hex4(const char *p, unsigned *v) {
    *v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
        if (d < 0) return -1;
        *v = *v * 16 + (unsigned)d;
    }
    return 0;
}

char *sra_json_get_string(const char *line, const char *key, size_t *len) {
    char pat[128];
    snprintf(pat, sizeof pat, "\"%s\"", key);
    const char *p = line;
    for (;;) { /* the key, then optional spaces, ':', spaces, '"' */
        p = strstr(p, pat);
        if (!p) return NULL;
        p += strlen(pat);
        const char *q = p;
        while (*q == ' ' || *q == '\t') q++;
        if (*q != ':') continue;
        q++;
        while (*q == ' ' || *q == '\t') q++;
        if (*q != '"') return NULL;
        p = q + 1;
        break;
    }
    char *out = malloc(strlen(p) + 1);
    if (!out) return NULL;
    size_t n = 0;
    while (*p != '"') {
        if (!*p) { free(out); return NULL; } /* unterminated */
        if (*p != '\\') { out[n++] = *p++; continue; }
        p++;
        char c = *p++;
        unsigned cp;
        switch (c) {
        case 'n': out[n++] = '\n'; break;
        case 't': out[n++] = '\t'; break;
        case 'r': out[n++] = '\r'; break;
        case 'b': out[n++] = '\b'; break;
        case 'f': out[n++] = '\f'; break;
        case '"': case '\\': case '/': out[n++] = c; break;
        case 'u':
            if (hex4(p, &cp)) { free(out); return NULL; }
            p += 4;
            if (cp >= 0xd800 && cp < 0xdc00) { /* surrogate pair */
                unsigned lo;
                if (p[0] != '\\' || p[1] != 'u' || hex4(p + 2, &lo) || lo < 0xdc00 || lo > 0xdfff) { free(out); return NULL; }
                p += 6;
                cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
            } else if (cp >= 0xdc00 && cp < 0xe000) { free(out); return NULL; }
            if (cp < 0x80) out[n++] = (char)cp;
            else if (cp < 0x800) { out[n++] = (char)(0xc0 | cp >> 6); out[n++] = (char)(0x80 | (cp & 63)); }
            else if (cp < 0x10000) { out[n++] = (char)(0xe0 | cp >> 12); out[n++] = (char)(0x80 | ((cp >> 6) & 63)); out[n++] = (char)(0x80 | (cp & 63)); }
            else { out[n++] = (char)(0xf0 | cp >> 18); out[n++] = (char)(0x80 | ((cp >> 12) & 63)); out[n++] = (char)(0x80 | ((cp >> 6) & 63)); out[n++] = (char)(0x80 | (cp & 63)); }
            break;
        default: free(out); return NULL;
        }
    }
    out[n] = 0;
    *len = n;
    return out;
}

void sra_json_put_string(FILE *f, const char *s, size_t n) {
    fputc('"', f);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') { fputc('\\', f); fputc(c, f); }
        else if (c == '\n') fputs("\\n", f);
        else if (c == '\t') fputs("\\t", f);
        else if (c == '\r') fputs("\\r", f);
        else if (c < 0x20 || c == 0x7f) fprintf(f, "\\u%04x", c);
        else fputc(c, f);
    }
    fputc('"', f);
}

/* ============================================================== progress */

void sra_progress_begin(sra_progress *p, FILE *out, const char *what, double total) {
    p->out = out;
    p->what = what;
    p->total = total;
    p->done = 0;
    p->t0 = p->last = sra_now();
    p->tty = out && isatty(fileno(out));
    p->note[0] = 0;
}

void sra_progress_update(sra_progress *p, double done) {
    p->done = done;
    if (!p->tty) return;
    double now = sra_now();
    if (now - p->last < 0.2) return;
    p->last = now;
    double el = now - p->t0, rate = el > 0 ? done / el : 0;
    if (p->total > 0) {
        double eta = rate > 0 ? (p->total - done) / rate : 0;
        fprintf(p->out, "\r%s: %.0f/%.0f (%.1f%%) %.1f/s %s ETA %.0fs   ", p->what,
                done, p->total, 100.0 * done / p->total, rate, p->note, eta);
    } else {
        fprintf(p->out, "\r%s: %.0f %.1f/s %s   ", p->what, done, rate, p->note);
    }
    fflush(p->out);
}

void sra_progress_end(sra_progress *p, const char *extra) {
    if (!p->out) return;
    double el = sra_now() - p->t0;
    if (p->tty) fputc('\r', p->out);
    fprintf(p->out, "%s: %.0f in %.2fs (%.1f/s)%s%s\n", p->what, p->done, el,
            el > 0 ? p->done / el : 0.0, extra ? " " : "", extra ? extra : "");
}

char *sra_read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 1 << 16, n = 0, got;
    char *b = malloc(cap + 1);
    while (b && (got = fread(b + n, 1, cap - n, f)) > 0) {
        n += got;
        if (n < cap) continue;
        char *q = realloc(b, 2 * cap + 1);
        if (!q) { free(b); b = NULL; errno = ENOMEM; break; }
        b = q;
        cap *= 2;
    }
    int bad = b && ferror(f);
    fclose(f);
    if (bad) { free(b); errno = EIO; return NULL; }
    if (!b) return NULL;
    b[n] = 0;
    if (len) *len = n;
    return b;
}

int sra_grow(void **p, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap) return 0;
    size_t c = *cap ? *cap : 64;
    while (c < need) c *= 2;
    void *q = realloc(*p, c * elem);
    if (!q) return -1;
    *p = q;
    *cap = c;
    return 0;
}

uint64_t sra_splitmix64(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

double sra_normal(uint64_t *s) {
    double u1 = ((double)(sra_splitmix64(s) >> 11) + 1.0) / 9007199254740993.0;
    double u2 = (double)(sra_splitmix64(s) >> 11) / 9007199254740992.0;
    return sqrt(-2.0 * log(u1)) * cos(2.0 * 3.14159265358979323846 * u2);
}

int sra_write_file_atomic(const char *path, const char *text, sra_err *e) {
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.%ld.tmp", path, (long)getpid());
    FILE *f = fopen(tmp, "wb");
    if (!f) return sra_err_set(e, SRA_E_IO, "%s: cannot write: %s", tmp, strerror(errno));
    int bad = fputs(text, f) < 0;
    bad |= fflush(f) != 0 || fsync(fileno(f)) != 0;
    bad |= fclose(f) != 0;
    if (bad || rename(tmp, path)) {
        int err = errno;
        unlink(tmp);
        return sra_err_set(e, SRA_E_IO, "%s: cannot write: %s", path, strerror(err));
    }
    return 0;
}
