/* bench_memcpy.h — the clock and the memcpy reference that bench_objectives and bench_floor
 * share, so that their "of memcpy" columns measure the same copy: T OpenMP threads, each copying
 * its contiguous share of BYTES.  Header-only (static functions): the benchmarks are separate
 * programs with no library of their own. */
#ifndef REIN_BENCH_MEMCPY_H
#define REIN_BENCH_MEMCPY_H

#include <stddef.h>
#include <string.h>
#include <time.h>

static double bench_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* One T-thread memcpy of BYTES from SRC to DST: its seconds. */
static double bench_memcpy(char *dst, const char *src, size_t bytes, int threads) {
  double t0 = bench_now();
#pragma omp parallel for num_threads(threads) schedule(static)
  for (int k = 0; k < threads; k++) {
    size_t lo = bytes * (size_t)k / (size_t)threads, hi = bytes * (size_t)(k + 1) / (size_t)threads;
    memcpy(dst + lo, src + lo, hi - lo);
  }
  return bench_now() - t0;
}

#endif
