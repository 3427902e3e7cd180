/* sched.c — the explorer/trainer version schedule (see sched.h). */
#include "rein/sched.h"

int64_t rt_sched_version(int64_t e, int64_t n, int64_t k) {
  int64_t d = e - 1 - k;
  return d < 0 ? 0 : n * (d / n);
}

int64_t rt_sched_lag(int64_t e, int64_t n, int64_t k) { return (e - 1) - rt_sched_version(e, n, k); }
