/*
 * check.h - the tiny test harness every C test uses.
 *
 *   TEST(name) { CHECK(x == 1, "x = %d", x); }
 *   int main(void) { RUN(name); return check_summary(); }
 *
 * Each RUN prints "ok - name" or "not ok - name" (TAP-like); failed CHECKs
 * print file:line and the message. tests/run.sh counts these lines and
 * prints the final "N passed, N failed".
 */
#ifndef SRA_CHECK_H
#define SRA_CHECK_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

static int check_fails_;
static int check_tests_failed_;

#define CHECK(cond, ...)                                              \
    do {                                                              \
        if (!(cond)) {                                                \
            printf("  %s:%d: CHECK(%s) failed: ", __FILE__, __LINE__, #cond); \
            printf(__VA_ARGS__);                                      \
            printf("\n");                                             \
            check_fails_++;                                           \
        }                                                             \
    } while (0)

#define TEST(name) static void name(void)
#define RUN(name) check_run_(#name, name)

static inline void check_run_(const char *name, void (*f)(void)) {
    int before = check_fails_;
    f();
    if (check_fails_ == before) printf("ok - %s\n", name);
    else { printf("not ok - %s\n", name); check_tests_failed_++; }
    fflush(stdout);
}

static inline void check_skip_(const char *name, const char *why) {
    printf("skip - %s: %s\n", name, why);
}

static inline int check_summary(void) { return check_tests_failed_ ? 1 : 0; }

/* max |a[i] - b[i]| in double; a NaN anywhere gives NaN/inf, which fails
 * every "<= tolerance" check. */
static inline double check_max_abs_diff(const float *a, const float *b, size_t n) {
    double m = 0.0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (!(d <= m)) m = d;
    }
    return m;
}

/* Shared assets: $SRA_SHARED, default ../shared. */
static inline const char *check_shared(void) {
    const char *s = getenv("SRA_SHARED");
    return s && *s ? s : "../shared";
}

static inline int check_in_ci(void) {
    const char *c = getenv("CI");
    return c && c[0] == 't' && c[1] == 'r' && c[2] == 'u' && c[3] == 'e' && !c[4];
}

/* Something a test needs is missing: a loud skip, or under CI=true a
 * failure of the running test. */
static inline void check_missing(const char *name, const char *why) {
    if (check_in_ci()) { printf("  missing: %s\n", why); check_fails_++; }
    else check_skip_(name, why);
}

/* A missing file of the shared assets. */
static inline void check_missing_asset(const char *name, const char *path) {
    char why[1200];
    snprintf(why, sizeof why, "missing shared asset %s (set SRA_SHARED)", path);
    check_missing(name, why);
}

#endif
