/*
 * dist.c - one process, or OpenMPI ranks with SRA_MPI (contract: dist.h).
 */
#include "dist.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

#ifndef SRA_MPI

int dist_init(int *argc, char ***argv, char *err, size_t errlen) {
    (void)argc; (void)argv; (void)err; (void)errlen;
    return 0;
}
void dist_finalize(void) {}
void dist_abort(int code) { (void)code; }
int dist_rank(void) { return 0; }
int dist_world(void) { return 1; }
int dist_is_mpi(void) { return 0; }

void dist_set_grace(double seconds) { (void)seconds; }

int dist_sum_f32(float *x, size_t n, const char *what, const volatile sig_atomic_t *stop, double *seconds,
                 char *err, size_t errlen) {
    (void)x; (void)n; (void)what; (void)stop; (void)seconds; (void)err; (void)errlen;
    return 0;
}
int dist_sum_f64(double *x, size_t n, const char *what, const volatile sig_atomic_t *stop, double *seconds,
                 char *err, size_t errlen) {
    (void)x; (void)n; (void)what; (void)stop; (void)seconds; (void)err; (void)errlen;
    return 0;
}
int dist_same(uint64_t v, const volatile sig_atomic_t *stop, char *err, size_t errlen) {
    (void)v; (void)stop; (void)err; (void)errlen;
    return 1;
}

#else /* SRA_MPI */

#include <mpi.h>
#include <sched.h>
#include <time.h>

static int g_rank, g_world = 1, g_up;
static double g_grace = 10.0;

void dist_set_grace(double seconds) { g_grace = seconds; }

int dist_init(int *argc, char ***argv, char *err, size_t errlen) {
    int provided = 0;
    if (MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS) {
        snprintf(err, errlen, "MPI_Init_thread failed");
        return -1;
    }
    g_up = 1;
    /* errors come back as codes, so that they can be reported with context */
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &g_world);
    if (provided < MPI_THREAD_FUNNELED) {
        snprintf(err, errlen, "this MPI provides thread level %d, sra-train needs MPI_THREAD_FUNNELED", provided);
        return -1;
    }
    return 0;
}

void dist_finalize(void) {
    if (g_up) MPI_Finalize();
    g_up = 0;
}

void dist_abort(int code) {
    if (g_up && g_world > 1) MPI_Abort(MPI_COMM_WORLD, code);
}

int dist_rank(void) { return g_rank; }
int dist_world(void) { return g_world; }
int dist_is_mpi(void) { return 1; }

/* Waits for req: yields for the first millisecond (a reduction of a small
 * model takes about that), then sleeps 100 us at a time. */
static int wait_req(MPI_Request *req, const char *what, const volatile sig_atomic_t *stop, char *err, size_t errlen) {
    double t0 = sra_now(), t_stop = -1;
    for (;;) {
        int done = 0;
        int rc = MPI_Test(req, &done, MPI_STATUS_IGNORE);
        if (rc != MPI_SUCCESS) {
            char msg[MPI_MAX_ERROR_STRING];
            int len = 0;
            MPI_Error_string(rc, msg, &len);
            snprintf(err, errlen, "%s: MPI error: %s", what, msg);
            return -1;
        }
        if (done) return 0;
        if (stop && *stop && t_stop < 0) t_stop = sra_now();
        if (t_stop >= 0 && sra_now() - t_stop > g_grace) {
            snprintf(err, errlen, "stopped by a signal while waiting for the other ranks in the %s (a rank died, "
                     "or the job was cancelled)", what);
            return -1;
        }
        if (sra_now() - t0 < 1e-3) sched_yield();
        else nanosleep(&(struct timespec){0, 100000}, NULL);
    }
}

static int sum(void *x, size_t n, MPI_Datatype ty, size_t elem, const char *what, const volatile sig_atomic_t *stop,
               double *seconds, char *err, size_t errlen) {
    if (g_world == 1) return 0;
    double t0 = sra_now();
    const size_t chunk = (size_t)1 << 30;
    for (size_t i = 0; i < n; i += chunk) {
        int c = (int)(n - i < chunk ? n - i : chunk);
        MPI_Request req;
        if (MPI_Iallreduce(MPI_IN_PLACE, (char *)x + i * elem, c, ty, MPI_SUM, MPI_COMM_WORLD, &req) != MPI_SUCCESS) {
            snprintf(err, errlen, "%s: MPI_Iallreduce failed", what);
            return -1;
        }
        if (wait_req(&req, what, stop, err, errlen)) return -1;
    }
    if (seconds) *seconds += sra_now() - t0;
    return 0;
}

int dist_sum_f32(float *x, size_t n, const char *what, const volatile sig_atomic_t *stop, double *seconds,
                 char *err, size_t errlen) {
    return sum(x, n, MPI_FLOAT, sizeof(float), what, stop, seconds, err, errlen);
}

int dist_sum_f64(double *x, size_t n, const char *what, const volatile sig_atomic_t *stop, double *seconds,
                 char *err, size_t errlen) {
    return sum(x, n, MPI_DOUBLE, sizeof(double), what, stop, seconds, err, errlen);
}

int dist_same(uint64_t v, const volatile sig_atomic_t *stop, char *err, size_t errlen) {
    if (g_world == 1) return 1;
    /* max and min of v over ranks, in one reduction: (v, ~v) under MAX */
    uint64_t mm[2] = {v, ~v};
    MPI_Request req;
    if (MPI_Iallreduce(MPI_IN_PLACE, mm, 2, MPI_UINT64_T, MPI_MAX, MPI_COMM_WORLD, &req) != MPI_SUCCESS) {
        snprintf(err, errlen, "consistency check: MPI_Iallreduce failed");
        return -1;
    }
    if (wait_req(&req, "consistency check", stop, err, errlen)) return -1;
    return mm[0] == ~mm[1];
}

#endif /* SRA_MPI */
