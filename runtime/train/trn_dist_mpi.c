/* trn_dist_mpi.c — the distributed layer on MPI (trn_dist.h), for builds where CMake found an
 * MPI library (Open MPI from Debian: libopenmpi-dev, openmpi-bin).  mpirun starts the ranks, on
 * one machine or many (--hostfile); this file only calls MPI-3 collectives, on MPI_COMM_WORLD or,
 * once a run with explorer ranks has split it (trn_dist_split), on the caller's group, and
 * non-blocking point-to-point messages between the groups: no transport of its own.  Errors are returned (MPI_ERRORS_RETURN) as messages; a rank that
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
#include <time.h>

#include "rein/common.h"

static int dist_on, dist_rank, dist_size = 1, world_rank, world_size = 1;
static MPI_Comm dist_comm = MPI_COMM_WORLD;   /* the caller's group: the world until a split */

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
  world_rank = dist_rank, world_size = dist_size;
  dist_on = 1;
  return 0;
}

void trn_dist_finalize(void) {
  if (!dist_on) return;
  MPI_Barrier(MPI_COMM_WORLD);
  if (dist_comm != MPI_COMM_WORLD) MPI_Comm_free(&dist_comm);
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
  int rc = MPI_Allgather(&my, 1, MPI_UNSIGNED_LONG_LONG, cn, 1, MPI_UNSIGNED_LONG_LONG, dist_comm);
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
                        MPI_BYTE, dist_comm);
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
    rc = MPI_Alltoallv(buf + b0, scnt, sdsp, MPI_FLOAT, recv, rcnt, rdsp, MPI_FLOAT, dist_comm);
    if (rc != MPI_SUCCESS) break;
    for (int i = 0; i < mine; i++) {
      float s = recv[i];
      for (int r = 1; r < R; r++) s += recv[(size_t)r * (size_t)mine + (size_t)i];
      part[i] = s;
    }
    rc = MPI_Allgatherv(part, mine, MPI_FLOAT, buf + b0, scnt, sdsp, MPI_FLOAT, dist_comm);
  }
  free(scnt), free(sdsp), free(rcnt), free(rdsp), free(recv), free(part);
  return rc == MPI_SUCCESS ? 0 : fail(rc, "gradient sum", err, errlen);
}

int trn_dist_same(const char *what, uint64_t value, char *err, size_t errlen) {
  if (!dist_on) return 0;
  unsigned long long v = value, *all = rc_malloc((size_t)dist_size * sizeof *all);
  int rc = MPI_Allgather(&v, 1, MPI_UNSIGNED_LONG_LONG, all, 1, MPI_UNSIGNED_LONG_LONG, dist_comm);
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

int trn_dist_split(int k, char *err, size_t errlen) {
  if (!dist_on || k < 1 || k >= world_size)
    return snprintf(err, errlen, "cannot split %d ranks into trainers and %d explorers", world_size, k), -1;
  MPI_Comm c;
  int rc = MPI_Comm_split(MPI_COMM_WORLD, world_rank >= world_size - k, world_rank, &c);
  if (rc != MPI_SUCCESS) return fail(rc, "split into trainers and explorers", err, errlen);
  MPI_Comm_set_errhandler(c, MPI_ERRORS_RETURN);
  dist_comm = c;
  MPI_Comm_rank(c, &dist_rank);
  MPI_Comm_size(c, &dist_size);
  return 0;
}

int trn_dist_world_rank(void) { return world_rank; }
int trn_dist_world_size(void) { return world_size; }

/* Waits for the N requests REQ, sleeping between tests: a rank that waits for the other group (an
 * explorer for weights, a trainer for a batch) leaves its core to the ranks that compute, where
 * MPI's own wait would spin on it — ranks share cores whenever they are oversubscribed. */
static int wait_all(int n, MPI_Request *req) {
  int done = 0, rc = MPI_SUCCESS;
  struct timespec nap = {0, 20000};   /* 20 us, doubling to 1 ms */
  while (rc == MPI_SUCCESS && !(rc = MPI_Testall(n, req, &done, MPI_STATUSES_IGNORE)) && !done) {
    nanosleep(&nap, NULL);
    if (nap.tv_nsec < 1000000) nap.tv_nsec *= 2;
  }
  return rc;
}

/* Messages sent and not yet known delivered: each its requests (a size header, then blocks of at
 * most DIST_BLOCK bytes) and the buffers freed once all of them completed. */
typedef struct {
  MPI_Request *req;
  int nreq;
  void *buf, *head;
} DistSend;
static DistSend *pend;
static int npend, cappend;

/* Frees the sends that completed (WAIT: waits for all of them). */
static int reap(int wait, char *err, size_t errlen) {
  int j = 0, rc = MPI_SUCCESS;
  for (int i = 0; i < npend; i++) {
    int done = 1;
    if (rc == MPI_SUCCESS)
      rc = wait ? wait_all(pend[i].nreq, pend[i].req)
                : MPI_Testall(pend[i].nreq, pend[i].req, &done, MPI_STATUSES_IGNORE);
    if (rc == MPI_SUCCESS && done) {
      free(pend[i].req), free(pend[i].buf), free(pend[i].head);
    } else {
      pend[j++] = pend[i];
    }
  }
  npend = j;
  return rc == MPI_SUCCESS ? 0 : fail(rc, "send", err, errlen);
}

int trn_dist_send(int to, int tag, void *buf, size_t n, char *err, size_t errlen) {
  if (reap(0, err, errlen)) return free(buf), -1;
  if (npend == cappend) {
    cappend = cappend ? 2 * cappend : 16;
    pend = rc_realloc(pend, (size_t)cappend * sizeof *pend);
  }
  DistSend *d = &pend[npend++];
  unsigned long long *head = rc_malloc(sizeof *head);
  *head = n;
  d->nreq = 1 + (int)((n + DIST_BLOCK - 1) / DIST_BLOCK);
  d->req = rc_malloc((size_t)d->nreq * sizeof *d->req);
  d->buf = buf, d->head = head;
  int rc = MPI_Isend(head, 1, MPI_UNSIGNED_LONG_LONG, to, tag, MPI_COMM_WORLD, &d->req[0]);
  for (int i = 1; i < d->nreq; i++) {
    size_t at = (size_t)(i - 1) * DIST_BLOCK, m = n - at < DIST_BLOCK ? n - at : DIST_BLOCK;
    if (rc == MPI_SUCCESS) rc = MPI_Isend((char *)buf + at, (int)m, MPI_BYTE, to, tag, MPI_COMM_WORLD, &d->req[i]);
    else d->req[i] = MPI_REQUEST_NULL;
  }
  return rc == MPI_SUCCESS ? 0 : fail(rc, "send", err, errlen);
}

int trn_dist_recv(int from, int tag, void **buf, size_t *n, char *err, size_t errlen) {
  unsigned long long head = 0;
  MPI_Request q;
  int rc = MPI_Irecv(&head, 1, MPI_UNSIGNED_LONG_LONG, from, tag, MPI_COMM_WORLD, &q);
  if (rc == MPI_SUCCESS) rc = wait_all(1, &q);
  if (rc != MPI_SUCCESS) return fail(rc, "receive", err, errlen);
  char *p = rc_malloc((size_t)head + 1);
  for (size_t at = 0; at < head && rc == MPI_SUCCESS; at += DIST_BLOCK) {
    size_t m = head - at < DIST_BLOCK ? head - at : DIST_BLOCK;
    rc = MPI_Irecv(p + at, (int)m, MPI_BYTE, from, tag, MPI_COMM_WORLD, &q);
    if (rc == MPI_SUCCESS) rc = wait_all(1, &q);
  }
  if (rc != MPI_SUCCESS) return free(p), fail(rc, "receive", err, errlen);
  *buf = p, *n = (size_t)head;
  return 0;
}

int trn_dist_flush(char *err, size_t errlen) {
  int rc = reap(1, err, errlen);
  if (!npend) free(pend), pend = NULL, cappend = 0;
  return rc;
}
