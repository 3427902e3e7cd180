/* trn_dist_mpi.c — the distributed layer on MPI (trn_dist.h), for builds where CMake found an
 * MPI library (Open MPI from Debian: libopenmpi-dev, openmpi-bin).  mpirun starts the ranks, on
 * one machine or many (--hostfile); this file only calls MPI-3 collectives on MPI_COMM_WORLD:
 * no transport of its own.  Errors are returned (MPI_ERRORS_RETURN) as messages; a rank that
 * dies ends the job through the launcher.
 *
 * Counts of MPI calls are ints: data larger than that goes in rounds.
 */
#include "trn_dist.h"

#include <limits.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rein/common.h"

static int dist_on, dist_rank, dist_size = 1;

/* The largest block of one call, in elements (bytes or floats). */
#define DIST_BLOCK ((size_t)1 << 28)

static int fail(int code, const char *what, char *err, size_t errlen) {
  char msg[MPI_MAX_ERROR_STRING] = "";
  int n = 0;
  MPI_Error_string(code, msg, &n);
  snprintf(err, errlen, "MPI: %s failed on rank %d of %d: %s", what, dist_rank, dist_size, msg);
  return -1;
}

int trn_dist_init(char *err, size_t errlen) {
  if (!getenv("OMPI_COMM_WORLD_SIZE") && !getenv("PMIX_RANK") && !getenv("PMI_SIZE")) return 0;
  int rc = MPI_Init(NULL, NULL);
  if (rc != MPI_SUCCESS) return snprintf(err, errlen, "MPI_Init failed (code %d)", rc), -1;
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  MPI_Comm_rank(MPI_COMM_WORLD, &dist_rank);
  MPI_Comm_size(MPI_COMM_WORLD, &dist_size);
  dist_on = 1;
  return 0;
}

void trn_dist_finalize(void) {
  if (!dist_on) return;
  MPI_Barrier(MPI_COMM_WORLD);
  MPI_Finalize();
  dist_on = 0;
}

int trn_dist_rank(void) { return dist_rank; }
int trn_dist_size(void) { return dist_size; }

_Noreturn void trn_dist_abort(int status) {
  fflush(NULL);
  if (dist_on) MPI_Abort(MPI_COMM_WORLD, status);
  exit(status);
}

int trn_dist_allgather(const void *mine, size_t n, void **all, size_t *counts, char *err, size_t errlen) {
  int R = dist_size;
  if (!dist_on) {
    *all = rc_malloc(n + 1);
    if (n) memcpy(*all, mine, n);
    counts[0] = n;
    return 0;
  }
  unsigned long long my = n, *cn = rc_malloc((size_t)R * sizeof *cn);
  int rc = MPI_Allgather(&my, 1, MPI_UNSIGNED_LONG_LONG, cn, 1, MPI_UNSIGNED_LONG_LONG, MPI_COMM_WORLD);
  if (rc != MPI_SUCCESS) return free(cn), fail(rc, "allgather of sizes", err, errlen);
  size_t total = 0, *off = rc_malloc((size_t)R * sizeof *off);
  for (int r = 0; r < R; r++) counts[r] = cn[r], off[r] = total, total += cn[r];
  char *out = rc_malloc(total + 1);
  int *rcnt = rc_malloc((size_t)R * sizeof(int)), *rdsp = rc_malloc((size_t)R * sizeof(int));
  /* in rounds of at most DIST_BLOCK bytes from each rank */
  for (size_t done = 0; rc == MPI_SUCCESS; done += DIST_BLOCK) {
    int more = 0;
    size_t pos = 0;
    for (int r = 0; r < R; r++) {
      size_t left = counts[r] > done ? counts[r] - done : 0;
      rcnt[r] = (int)(left < DIST_BLOCK ? left : DIST_BLOCK);
      more |= left > 0;
      rdsp[r] = (int)pos, pos += (size_t)rcnt[r];
    }
    if (!more) break;
    char *tmp = rc_malloc(pos + 1);
    rc = MPI_Allgatherv((const char *)mine + (n > done ? done : n), rcnt[dist_rank], MPI_BYTE, tmp, rcnt, rdsp,
                        MPI_BYTE, MPI_COMM_WORLD);
    for (int r = 0; r < R && rc == MPI_SUCCESS; r++) memcpy(out + off[r] + done, tmp + rdsp[r], (size_t)rcnt[r]);
    free(tmp);
  }
  free(cn), free(off), free(rcnt), free(rdsp);
  if (rc != MPI_SUCCESS) return free(out), fail(rc, "allgather", err, errlen);
  *all = out;
  return 0;
}

int trn_dist_sum(float *buf, size_t n, char *err, size_t errlen) {
  if (!dist_on || dist_size == 1) return 0;
  int R = dist_size, me = dist_rank, rc = MPI_SUCCESS;
  int *scnt = rc_malloc((size_t)R * sizeof(int)), *sdsp = rc_malloc((size_t)R * sizeof(int));
  int *rcnt = rc_malloc((size_t)R * sizeof(int)), *rdsp = rc_malloc((size_t)R * sizeof(int));
  size_t blk = n < DIST_BLOCK ? n : DIST_BLOCK;
  float *recv = rc_malloc((blk + 1) * sizeof(float)), *part = rc_malloc((blk / (size_t)R + 2) * sizeof(float));
  for (size_t b0 = 0; b0 < n && rc == MPI_SUCCESS; b0 += blk) {
    size_t m = n - b0 < blk ? n - b0 : blk;
    /* slice r of this block: [m*r/R, m*(r+1)/R), owned (summed) by rank r */
    for (int r = 0; r < R; r++) {
      sdsp[r] = (int)(m * (size_t)r / (size_t)R);
      scnt[r] = (int)(m * (size_t)(r + 1) / (size_t)R) - sdsp[r];
    }
    int mine = scnt[me];
    for (int r = 0; r < R; r++) rcnt[r] = mine, rdsp[r] = r * mine;
    rc = MPI_Alltoallv(buf + b0, scnt, sdsp, MPI_FLOAT, recv, rcnt, rdsp, MPI_FLOAT, MPI_COMM_WORLD);
    if (rc != MPI_SUCCESS) break;
    for (int i = 0; i < mine; i++) {
      float s = recv[i];
      for (int r = 1; r < R; r++) s += recv[(size_t)r * (size_t)mine + (size_t)i];
      part[i] = s;
    }
    rc = MPI_Allgatherv(part, mine, MPI_FLOAT, buf + b0, scnt, sdsp, MPI_FLOAT, MPI_COMM_WORLD);
  }
  free(scnt), free(sdsp), free(rcnt), free(rdsp), free(recv), free(part);
  return rc == MPI_SUCCESS ? 0 : fail(rc, "gradient sum", err, errlen);
}

int trn_dist_same(const char *what, uint64_t value, char *err, size_t errlen) {
  if (!dist_on) return 0;
  unsigned long long v = value, *all = rc_malloc((size_t)dist_size * sizeof *all);
  int rc = MPI_Allgather(&v, 1, MPI_UNSIGNED_LONG_LONG, all, 1, MPI_UNSIGNED_LONG_LONG, MPI_COMM_WORLD);
  if (rc != MPI_SUCCESS) return free(all), fail(rc, "configuration check", err, errlen);
  int bad = -1;
  for (int r = 1; r < dist_size && bad < 0; r++)
    if (all[r] != all[0]) bad = r;
  free(all);
  if (bad >= 0)
    return snprintf(err, errlen, "rank %d has a different %s than rank 0: every rank must run the same command "
                                 "with the same options and files", bad, what), -1;
  return 0;
}
