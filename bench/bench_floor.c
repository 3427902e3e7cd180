/* bench_floor.c — how fast a step could be at all, under bench_objectives' byte count, for the
 * objectives that must sweep the batch's tokens more than once before a gradient is known.
 * Not a test: it prints a table.
 *
 *   bench_floor [--tokens N] [--threads T] [--repeat R]
 *
 * bench_objectives counts the compulsory traffic of a step as one read of every input array and
 * one write of the gradient (4 bytes a token each), and compares it with memcpy's bandwidth.
 * Some objectives cannot get there with any code: their gradient needs a statistic of the whole
 * batch that reads the tokens first.  Each row below is the least sweeping such an objective
 * needs, as plain loops over float arrays that do nothing but read (and sum) them and, in the
 * last sweep, write the gradient with non-temporal stores -- no arithmetic to speak of, no
 * select, no scan, no float64 array.  Its time, with the counted bytes, gives the ceiling of
 * that objective's "of memcpy" column, measured in the same run as memcpy (best of R rounds,
 * alternating, T threads, static halves):
 *   one_pass      logp, old_logp -> grad: a single micro pass (GRPO's shape), 12 counted bytes;
 *   reinforce_pp  old_logp, ref_logp (the returns' mean and variance), then logp, old_logp,
 *                 ref_logp -> grad: 16 counted, 24 swept;
 *   kl_cov        logp (its batch mean), logp (the covariances the select ranks, in one sweep
 *                 at best), then logp, old_logp -> grad: 12 counted, 20 swept;
 *   clip_cov      logp (its mean), logp and old_logp (the candidates: their ratio too), then
 *                 logp, old_logp -> grad: 12 counted, 24 swept.
 * The rows' ratios are ceilings only in this sense: the real objectives add arithmetic, and the
 * selects and scans of their statistics on top.
 */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_memcpy.h"

enum { MAXSWEEPS = 3, MAXIN = 3 };
/* A sweep reads NIN of the input arrays (their indices) and, if WRITE, writes the gradient. */
typedef struct {
  int nin, in[MAXIN], write;
} Sweep;
typedef struct {
  const char *name;
  int counted; /* bytes a token, as bench_objectives counts them */
  int nsweeps;
  Sweep sw[MAXSWEEPS];
} Pattern;

/* Inputs: 0 logp, 1 old_logp, 2 ref_logp. */
static const Pattern patterns[] = {
    {"one_pass", 12, 1, {{2, {0, 1}, 1}}},
    {"reinforce_pp", 16, 2, {{2, {1, 2}, 0}, {3, {0, 1, 2}, 1}}},
    {"kl_cov", 12, 3, {{1, {0}, 0}, {1, {0}, 0}, {2, {0, 1}, 1}}},
    {"clip_cov", 12, 3, {{1, {0}, 0}, {2, {0, 1}, 0}, {2, {0, 1}, 1}}},
};

typedef float v8f __attribute__((vector_size(32)));

/* One sweep over [0, n) with T threads: the sum of the arrays read (returned, so the reads are not
 * dead), and the gradient g = their sum where the sweep writes (non-temporal, 32-byte vectors;
 * the arrays are 64-byte aligned and n a multiple of 8 T). */
static double sweep(const Sweep *s, float *const *x, float *g, long n, int threads) {
  double total = 0;
#pragma omp parallel num_threads(threads) reduction(+ : total)
  {
    int t = omp_get_thread_num(), nt = omp_get_num_threads();
    long lo = n * t / nt / 8 * 8, hi = n * (t + 1) / nt / 8 * 8;
    v8f acc = {0};
    for (long i = lo; i < hi; i += 8) {
      v8f v = *(const v8f *)(x[s->in[0]] + i);
      for (int k = 1; k < s->nin; k++) v += *(const v8f *)(x[s->in[k]] + i);
      acc += v;
      if (s->write) __builtin_nontemporal_store(v, (v8f *)(g + i));
    }
    for (int j = 0; j < 8; j++) total += acc[j];
  }
  return total;
}

static void *lines(size_t bytes) {
  void *p = aligned_alloc(64, (bytes + 63) / 64 * 64);
  if (!p) {
    fprintf(stderr, "bench_floor: out of memory for %zu bytes\n", bytes);
    exit(1);
  }
  memset(p, 0, bytes); /* touched: no page faults in the timed sweeps */
  return p;
}

int main(int argc, char **argv) {
  long n = 16777216;
  int threads = 2, repeat = 5;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--tokens") && i + 1 < argc) n = atol(argv[++i]);
    else if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--repeat") && i + 1 < argc) repeat = atoi(argv[++i]);
    else {
      fprintf(stderr, "usage: bench_floor [--tokens N] [--threads T] [--repeat R]\n");
      return 2;
    }
  }
  if (n < 64 || threads < 1 || repeat < 1) {
    fprintf(stderr, "bench_floor: --tokens must be at least 64, --threads and --repeat at least 1\n");
    return 2;
  }
  n = n / (8L * threads) * (8L * threads);
  float *x[MAXIN], *g = lines(sizeof(float) * (size_t)n);
  for (int k = 0; k < MAXIN; k++) {
    x[k] = lines(sizeof(float) * (size_t)n);
    for (long i = 0; i < n; i++) x[k][i] = (float)((i * (k + 3)) % 1000) * -0.005f;
  }
  size_t maxbytes = (size_t)16 * (size_t)n;
  char *src = lines(maxbytes), *dst = lines(maxbytes);
  printf("bench_floor: %ld tokens, %d threads, best of %d alternating rounds\n", n, threads, repeat);
  printf("%-14s %8s %8s %10s %10s %10s %9s\n", "pattern", "counted", "swept", "step_s", "GB/s", "cpyGB/s", "memcpy");
  double sink = 0;
  for (size_t p = 0; p < sizeof patterns / sizeof *patterns; p++) {
    const Pattern *P = &patterns[p];
    size_t bytes = (size_t)P->counted * (size_t)n;
    int swept = 0;
    for (int s = 0; s < P->nsweeps; s++) swept += 4 * (P->sw[s].nin + P->sw[s].write);
    double best = 1e30, cbest = 1e30;
    for (int r = 0; r < repeat; r++) {
      double t0 = bench_now();
      for (int s = 0; s < P->nsweeps; s++) sink += sweep(&P->sw[s], x, g, n, threads);
      double t = bench_now() - t0, tc = bench_memcpy(dst, src, bytes, threads);
      best = t < best ? t : best;
      cbest = tc < cbest ? tc : cbest;
    }
    double bw = (double)bytes / best / 1e9, cbw = 2.0 * (double)bytes / cbest / 1e9;
    printf("%-14s %8d %8d %10.5f %10.2f %10.2f %8.0f%%\n", P->name, P->counted, swept, best, bw, cbw, 100.0 * bw / cbw);
  }
  if (sink == 12345.678) printf("%g\n", sink); /* keeps the sums */
  free(g), free(src), free(dst);
  for (int k = 0; k < MAXIN; k++) free(x[k]);
  return 0;
}
