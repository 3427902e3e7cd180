/* trn_dist.h — the trainer's distributed layer: the few collective operations a data-parallel
 * run needs, behind an interface with two implementations, so that the trainer has no MPI code
 * and a build without MPI still runs (as one rank):
 *
 *   trn_dist_mpi.c   Open MPI (any MPI-3 library): chosen by CMake when find_package(MPI) finds
 *                    one;
 *   trn_dist_one.c   a world of one rank, where every collective is the identity.
 *
 * A process is one of several ranks when mpirun (or another MPI launcher) started it: the
 * launcher's environment (OMPI_COMM_WORLD_SIZE, PMIX_RANK or PMI_SIZE) says so; otherwise no MPI
 * library is initialized at all.  Every collective is called by every rank in the same order;
 * a failure of one is reported as a message and the caller ends the job (trn_dist_abort).
 */
#ifndef REIN_TRN_DIST_H
#define REIN_TRN_DIST_H

#include <stddef.h>
#include <stdint.h>

/* Joins the world when a launcher started the process (MPI_Init), else stays a world of one.
 * -1 with ERR when a launcher started it but this build has no MPI. */
int trn_dist_init(char *err, size_t errlen);
/* Leaves the world (MPI_Finalize after a barrier); nothing in a world of one. */
void trn_dist_finalize(void);
int trn_dist_rank(void);
int trn_dist_size(void);
/* Ends every rank of the job with STATUS (MPI_Abort); exit(STATUS) in a world of one. */
_Noreturn void trn_dist_abort(int status);

/* Every rank's MINE (N bytes) concatenated in rank order: *ALL (malloc'd, every rank's bytes),
 * COUNTS[r] (the caller's array of trn_dist_size() entries) the bytes of rank r.  -1 with ERR. */
int trn_dist_allgather(const void *mine, size_t n, void **all, size_t *counts, char *err, size_t errlen);

/* BUF (N floats on every rank) replaced on every rank by the sum over ranks taken in rank order,
 * ((b_0 + b_1) + b_2) + ..., the same bits on every rank and in every run of the same number of
 * ranks, whatever algorithm the MPI library would pick for a reduction: each rank sums one slice
 * of every rank's buffer (all-to-all), then the slices are gathered (all-gather) — the traffic of
 * a ring all-reduce, 2 (R-1)/R * 4N bytes sent per rank.  -1 with ERR. */
int trn_dist_sum(float *buf, size_t n, char *err, size_t errlen);

/* Whether every rank has the same VALUE (a hash of its configuration): 0, or -1 with ERR naming
 * WHAT and the first rank that differs from rank 0. */
int trn_dist_same(const char *what, uint64_t value, char *err, size_t errlen);

#endif
