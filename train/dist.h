/*
 * dist.h - data parallelism for sra-train (prefix dist_): which rank this
 * process is, and the few collectives the trainer needs.
 *
 * Two builds of one contract. The default build (dist.c without SRA_MPI,
 * inside libsra.a) is one process: rank 0 of 1, every collective a no-op.
 * `make MPI=1` compiles dist.c again with SRA_MPI into the objects of
 * sra-train-mpi only, over OpenMPI; nothing else in the library knows MPI.
 *
 * Collectives are called by every rank in the same order, from the main
 * thread only (MPI_THREAD_FUNNELED: the loader's prefetch thread and the
 * BLAS threads never call MPI). Sums are element-wise over ranks; every
 * rank receives the same result (checked at checkpoints by dist_same).
 *
 * Waiting. A rank that reaches a collective first waits for the others by
 * polling a non-blocking MPI_Iallreduce with short sleeps, not by
 * spinning: with ranks x BLAS threads = cores, a spinning waiter would
 * steal the core a late rank computes on. While waiting it watches *stop
 * (a signal flag, may be NULL): once set, the wait lasts at most the grace
 * time more (dist_set_grace): a cancelled job's ranks, all signalled,
 * meet there and stop together; a rank whose peer died fails with an
 * error naming the collective instead of hanging. Messages do not name the rank (the caller does).
 * Element counts above 2^30 are cut into chunks (MPI
 * counts are int).
 */
#ifndef SRA_DIST_H
#define SRA_DIST_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

/* Starts the runtime (MPI_Init_thread) when built with MPI; 0 or -1 with
 * err. argc/argv may be NULL. */
int dist_init(int *argc, char ***argv, char *err, size_t errlen);
/* Orderly shutdown (MPI_Finalize). */
void dist_finalize(void);
/* Ends the whole job after an error on this rank (MPI_Abort): the other
 * ranks may be waiting in a collective that this rank will never join. */
void dist_abort(int code);
int dist_rank(void);
int dist_world(void);
/* 1 when built with MPI (even with one rank). */
int dist_is_mpi(void);

/* In-place sums over ranks. what names the collective in errors. seconds
 * (may be NULL) gets the wall time spent in the call added to it. Return
 * 0, or -1 with err (stopped by a signal while waiting, MPI failure). */
int dist_sum_f32(float *x, size_t n, const char *what, const volatile sig_atomic_t *stop, double *seconds,
                 char *err, size_t errlen);
int dist_sum_f64(double *x, size_t n, const char *what, const volatile sig_atomic_t *stop, double *seconds,
                 char *err, size_t errlen);
/* How long a rank that was signalled keeps waiting in a collective before
 * giving up (its peers, signalled too, may still be finishing their
 * step): the trainer sets a few step times. */
void dist_set_grace(double seconds);
/* 1 when every rank passed the same v, 0 when not, -1 with err. */
int dist_same(uint64_t v, const volatile sig_atomic_t *stop, char *err, size_t errlen);

#endif /* SRA_DIST_H */
