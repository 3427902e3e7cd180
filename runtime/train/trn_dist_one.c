/* trn_dist_one.c — the distributed layer of a build without MPI (trn_dist.h): a world of one
 * rank, whose collectives return the caller's own data.  A process that an MPI launcher started
 * is refused, so that N copies of the single-process trainer never each train the whole run. */
#include "trn_dist.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rein/common.h"

int trn_dist_init(char *err, size_t errlen) {
  if (getenv("OMPI_COMM_WORLD_SIZE") || getenv("PMIX_RANK") || getenv("PMI_SIZE"))
    return snprintf(err, errlen, "started by an MPI launcher, but this build of Rein has no MPI (install "
                                 "libopenmpi-dev and build again)"), -1;
  return 0;
}

void trn_dist_finalize(void) {}
int trn_dist_rank(void) { return 0; }
int trn_dist_size(void) { return 1; }
_Noreturn void trn_dist_abort(int status) { exit(status); }

int trn_dist_allgather(const void *mine, size_t n, void **all, size_t *counts, char *err, size_t errlen) {
  (void)err, (void)errlen;
  *all = rc_malloc(n + 1);
  if (n) memcpy(*all, mine, n);
  counts[0] = n;
  return 0;
}

int trn_dist_sum(float *buf, size_t n, char *err, size_t errlen) {
  (void)buf, (void)n, (void)err, (void)errlen;
  return 0;
}

int trn_dist_same(const char *what, uint64_t value, char *err, size_t errlen) {
  (void)what, (void)value, (void)err, (void)errlen;
  return 0;
}
