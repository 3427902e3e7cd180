/* test_rk.c — the accuracy of the kernel library's host math (compiler/rk_lib.c, compiled here
 * from the same source as the bitcode the code generator links) against the C library's double
 * routines, which are independent of it.
 *
 * Float32 routines (the token loops' arithmetic under --precision f32): rk_expf, rk_logf and
 * rk_sigmoidf on a sweep of 2^21 arguments each plus edge values, every result compared with
 * the libm value in double rounded to nothing: the error is measured in units in the last place
 * of the float nearest the exact value (its spacing; 2^-149 for subnormals).  Bounds (measured
 * maxima in brackets): exp 2 ulp [1.71: float rounding of the degree-7 polynomial], log 1 ulp
 * [0.83], sigmoid 4 ulp [3.50: 1 / (1 + e) on a float exp, whose relative error, for x < 0, lands
 * on a result whose significand may be twice e's] -- relative errors below 3e-7, far
 * inside language.md's 1e-5 criterion.  Outside the sweep: NaN gives
 * NaN, exp overflows to inf above 88.73 and is 0 below -104, log(0) = -inf, log(x < 0) = NaN,
 * log(inf) = inf, sigmoid(+-inf) = 1, 0, sigmoid is exactly 1 from 17.5 and exactly 0 below -104
 * (each where the exact value rounds so).
 *
 * Float64 routines (the --precision f64 code, and every coarser value), in ulps of the double
 * nearest libm's value (libm's own error, below 1 ulp, counted in): rk_exp 3 [2], rk_log 2 [1],
 * rk_log1p 4 [2], rk_expm1 and rk_tanh 10 [6, 7], rk_pow 256 [114] on bases in [0.01, 10] and
 * exponents in [-20, 20] (exp(y log x): the error of log x grows by |y log x|; 114 ulp is a
 * relative error of 2.5e-14).  The maximum error of each routine is printed, so a change of
 * accuracy shows in the log even while it stays within bounds.
 *
 * rk_rank (topk, quantile and median lower to it) against a plain reference, qsort of positions
 * by (value, position) with NaN last and -0 equal to +0: every rank equal, on arrays below and
 * above RK_RANK_RADIX_MIN (the merge sort and the radix sort), up to 2^20 elements, of distinct
 * values, heavy ties, NaNs, signed zeros, infinities and subnormals; and rk_rank_lt (topk's
 * select) on the same arrays, below and above RK_RANK_SELECT_MIN, against the reference rank < k
 * for k of every kind (NaN, negative, 0, fractions, n - 1, n and beyond), its marks written at
 * every offset from a 64-byte line; and rk_rank_thr's threshold (a key and a position) on the same
 * (array, k) pairs, the mask it gives against the same reference.
 *
 * rk_scan (cumsum, revcumsum) against a long double sequential scan, both directions, in place
 * and into another array, on lengths around RK_SCAN_CHAINS_MIN and up to 10,000: with a discount,
 * or below the threshold, bit for bit the plain double recurrence; undiscounted from the
 * threshold on (the blocked chains), within the error bound of any summation order,
 * |error| <= (n - 1) eps sum |x_s| over the elements summed.
 */
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rk_lib.h"

static int failures;

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static double urand(void) {
  rng = rng * 6364136223846793005ull + 1442695040888963407ull;
  return (double)(rng >> 11) * (1.0 / 9007199254740992.0);
}

/* The spacing of floats at |v| (v a double, the exact value): 2^(e-23), at least 2^-149. */
static double ulp_f(double v) {
  v = fabs(v);
  if (v < 0x1p-126) return 0x1p-149;
  int e;
  frexp(v, &e); /* v = m 2^e, m in [0.5, 1) */
  return ldexp(1.0, e - 24);
}

/* The spacing of doubles at |v|. */
static double ulp_d(double v) {
  v = fabs(v);
  if (v < 0x1p-1022) return 0x1p-1074;
  int e;
  frexp(v, &e);
  return ldexp(1.0, e - 53);
}

typedef struct {
  const char *name;
  double bound, worst, worst_x;
} Acc;

/* Records GOT against the exact value WANT (both finite) at argument X, in ulps of spacing ULP. */
static void acc_add(Acc *a, double x, double got, double want, double ulp) {
  double e = fabs(got - want) / ulp;
  if (!(e <= a->worst)) a->worst = e, a->worst_x = x;
}

static void acc_report(const Acc *a) {
  bool ok = a->worst <= a->bound;
  printf("%-12s max error %.3f ulp (at %.9g), bound %.0f ulp: %s\n", a->name, a->worst, a->worst_x, a->bound,
         ok ? "ok" : "FAIL");
  if (!ok) failures++;
}

static void expect(bool ok, const char *what) {
  if (!ok) printf("FAIL %s\n", what), failures++;
}

enum { N = 1 << 21 };

static uint32_t fbits(float f) {
  uint32_t u;
  memcpy(&u, &f, 4);
  return u;
}

static void float_routines(void) {
  Acc ae = {"rk_expf", 2, 0, 0}, al = {"rk_logf", 1, 0, 0}, as = {"rk_sigmoidf", 4, 0, 0};
  for (int i = 0; i < N; i++) {
    /* exp: uniform over its finite range, and densely near 0 */
    float x = (float)(i & 1 ? -104.0 + (88.72 + 104.0) * urand() : (urand() - 0.5) * 2.0);
    double want = exp((double)x);
    acc_add(&ae, x, rk_expf(x), want, ulp_f(want));
    /* log: every binade of positive floats (subnormals included), and densely near 1 */
    float y = (float)(i & 1 ? exp2(-149.0 + 277.0 * urand()) : 0.5 + urand());
    if (y > 0 && isfinite(y)) {
      double lw = log((double)y);
      acc_add(&al, y, rk_logf(y), lw, ulp_f(lw));
    }
    /* sigmoid: its whole non-saturated range */
    float z = (float)((urand() - 0.5) * 200.0);
    double sw = 1.0 / (1.0 + exp(-(double)z));
    acc_add(&as, z, rk_sigmoidf(z), sw, ulp_f(sw));
  }
  /* exact points */
  for (int k = -149; k <= 127; k++) {
    float y = ldexpf(1.0f, k);
    double lw = log((double)y);
    acc_add(&al, y, rk_logf(y), lw, ulp_f(lw));
  }
  acc_report(&ae);
  acc_report(&al);
  acc_report(&as);
  /* rk_expf_near: rk_expf's bits on [-86, 88] (random points, and every float of the unit
   * intervals at both ends, where one scaling is closest to leaving the normal range) */
  long near_diff = 0, near_n = 0;
  for (int i = 0; i < N; i++) {
    float x = (float)(-86.0 + 174.0 * urand());
    near_n++, near_diff += fbits(rk_expf_near(x)) != fbits(rk_expf(x));
  }
  for (float x = -86.0f; x <= -85.0f; x = nextafterf(x, INFINITY))
    near_n++, near_diff += fbits(rk_expf_near(x)) != fbits(rk_expf(x));
  for (float x = 87.0f; x <= 88.0f; x = nextafterf(x, INFINITY))
    near_n++, near_diff += fbits(rk_expf_near(x)) != fbits(rk_expf(x));
  printf("rk_expf_near %ld of %ld arguments in [-86, 88] differ from rk_expf\n", near_diff, near_n);
  expect(near_diff == 0, "rk_expf_near == rk_expf on [-86, 88]");
  expect(isnan(rk_expf_near(NAN)), "rk_expf_near(NaN) is NaN");
  expect(rk_expf(0.0f) == 1.0f, "rk_expf(0) == 1");
  expect(rk_logf(1.0f) == 0.0f, "rk_logf(1) == 0");
  expect(isnan(rk_expf(NAN)) && isnan(rk_logf(NAN)) && isnan(rk_sigmoidf(NAN)), "NaN gives NaN");
  expect(rk_expf(89.0f) == INFINITY && rk_expf(INFINITY) == INFINITY, "rk_expf overflows to inf");
  expect(rk_expf(-105.0f) == 0.0f && rk_expf(-INFINITY) == 0.0f, "rk_expf underflows to 0");
  expect(rk_logf(0.0f) == -INFINITY && rk_logf(-0.0f) == -INFINITY, "rk_logf(0) == -inf");
  expect(isnan(rk_logf(-1.0f)) && isnan(rk_logf(-INFINITY)), "rk_logf of a negative is NaN");
  expect(rk_logf(INFINITY) == INFINITY, "rk_logf(inf) == inf");
  expect(rk_sigmoidf(INFINITY) == 1.0f && rk_sigmoidf(-INFINITY) == 0.0f, "rk_sigmoidf(+-inf) == 1, 0");
  /* the ends of rk_sigmoidf's clamp: 1 where 1/(1 + e^-x) rounds to 1 (x > 17.33), 0 where it
   * rounds to 0 (below -103.97), the least subnormal just above */
  expect(rk_sigmoidf(17.5f) == 1.0f && rk_sigmoidf(30.0f) == 1.0f && rk_sigmoidf(1e30f) == 1.0f,
         "rk_sigmoidf is 1 above 17.5");
  expect(rk_sigmoidf(-104.0f) == 0.0f && rk_sigmoidf(-200.0f) == 0.0f && rk_sigmoidf(-1e30f) == 0.0f,
         "rk_sigmoidf is 0 below -104");
  expect(rk_sigmoidf(-103.5f) == 0x1p-149f, "rk_sigmoidf(-103.5) is the least subnormal");
}

static void double_routines(void) {
  Acc ae = {"rk_exp", 3, 0, 0}, al = {"rk_log", 2, 0, 0}, a1 = {"rk_log1p", 4, 0, 0}, am = {"rk_expm1", 10, 0, 0},
      at = {"rk_tanh", 10, 0, 0}, ap = {"rk_pow", 256, 0, 0};
  for (int i = 0; i < N; i++) {
    double x = i & 1 ? -700.0 + 1400.0 * urand() : (urand() - 0.5) * 2.0;
    double w = exp(x);
    acc_add(&ae, x, rk_exp(x), w, ulp_d(w));
    double y = i & 1 ? exp2(-1000.0 + 2000.0 * urand()) : 0.5 + urand();
    w = log(y);
    acc_add(&al, y, rk_log(y), w, ulp_d(w));
    double u = i & 1 ? exp2(-60.0 + 100.0 * urand()) - 0.5 : (urand() - 0.5) * 1e-3;
    w = log1p(u);
    acc_add(&a1, u, rk_log1p(u), w, ulp_d(w));
    double v = i & 1 ? -40.0 + 80.0 * urand() : (urand() - 0.5) * 1e-3;
    w = expm1(v);
    acc_add(&am, v, rk_expm1(v), w, ulp_d(w));
    w = tanh(v);
    acc_add(&at, v, rk_tanh(v), w, ulp_d(w));
    double b = 0.01 + 10.0 * urand(), p = (urand() - 0.5) * 40.0;
    w = pow(b, p);
    acc_add(&ap, b, rk_pow(b, p), w, ulp_d(w));
  }
  acc_report(&ae);
  acc_report(&al);
  acc_report(&a1);
  acc_report(&am);
  acc_report(&at);
  acc_report(&ap);
}

/* the reference order: by value, NaN last, -0 == +0, ties by position (qsort is not stable: the
 * position is part of the key) */
static const double *ref_x;
static int ref_cmp(const void *pa, const void *pb) {
  int32_t a = *(const int32_t *)pa, b = *(const int32_t *)pb;
  double xa = ref_x[a], xb = ref_x[b];
  if (isnan(xa) != isnan(xb)) return isnan(xa) ? 1 : -1;
  if (!isnan(xa) && xa != xb) return xa < xb ? -1 : 1;
  return (a > b) - (a < b);
}

/* Value K of a kind of test array: 0 distinct, 1 few values (ties), 2 specials mixed in, 3 all
 * equal, 4 one tie class per sign of zero, 5 values that differ in the lowest mantissa bits, 6
 * one large value every 16 elements, 7 one 0.5 every 16 elements. */
static double rank_value(int kind, int64_t i) {
  static const double sp[] = {NAN, -NAN, INFINITY, -INFINITY, 0.0, -0.0, 5e-324, -5e-324, 2.2250738585072014e-308,
                              -1.0, 1.0, 1e308, -1e308};
  switch (kind) {
  case 0: return (urand() - 0.5) * 1e6;
  case 1: return (double)(int)(urand() * 7) - 3;
  case 2: return urand() < 0.3 ? sp[(int)(urand() * 13)] : (urand() - 0.5) * 4;
  case 3: return 2.5;
  case 4: return i & 1 ? 0.0 : -0.0;
  case 6: return i % 16 ? urand() : 1e9 + (double)i; /* rank_select's sample (a stride of 16 or 32) sees
                                                       * only the large values, and misses */
  case 7: return i % 16 ? urand() : 0.5; /* the sample is all 0.5: its bracket is one value */
  default: return 1.0 + (double)(rng >> 60) * 2.220446049250313e-16 - (urand() < 0.5 ? 2.0 : 0.0);
  }
}

static void ranks(void) {
  static const int64_t sizes[] = {0,    1, 2, 3, 17, 255, 2048, RK_RANK_RADIX_MIN - 1, RK_RANK_RADIX_MIN,
                                  RK_RANK_RADIX_MIN + 1, RK_RANK_SELECT_MIN - 1, RK_RANK_SELECT_MIN,
                                  RK_RANK_SELECT_MIN + 1, 1 << 20};
  int checked = 0, checked_lt = 0;
  for (size_t si = 0; si < sizeof sizes / sizeof *sizes; si++)
    for (int kind = 0; kind < 8; kind++) {
      int64_t n = sizes[si];
      double *x = malloc(sizeof(double) * (size_t)(n + 1)), *work = malloc(sizeof(double) * (size_t)(n + 1));
      double *out = malloc(sizeof(double) * (size_t)(n + 1)), *s1 = malloc(8 * (size_t)(n + 1));
      double *copy = malloc(sizeof(double) * (size_t)(n + 1));
      double *s2 = malloc(8 * (size_t)(n + 1));
      /* rank_lt's marks at each of the 8 offsets from a 64-byte line (the select writes whole
       * lines with non-temporal stores after the keys before the first one) */
      double *lt_base = aligned_alloc(64, sizeof(double) * (size_t)(n + 8) + 64 - (sizeof(double) * (size_t)(n + 8)) % 64);
      int32_t *perm = malloc(sizeof(int32_t) * (size_t)(n + 1));
      for (int64_t i = 0; i < n; i++) x[i] = work[i] = rank_value(kind, i), perm[i] = (int32_t)i;
      ref_x = x;
      qsort(perm, (size_t)n, sizeof *perm, ref_cmp);
      rk_rank(work, n, out, s1, s2);
      for (int64_t r = 0; r < n; r++)
        if (out[perm[r]] != (double)r) {
          printf("FAIL rk_rank: n %lld, kind %d: element %d (%g) has rank %g, the reference %lld\n", (long long)n,
                 kind, perm[r], x[perm[r]], out[perm[r]], (long long)r);
          failures++;
          break;
        }
      checked++;
      /* rk_rank_lt: 1 exactly where the reference rank is below k */
      const double ks[] = {NAN, -1, 0, 0.5, 1, 2.5, 3, (double)n / 3, (double)n / 2 + 0.25,
                           (double)n * 0.54, (double)n * 0.57, /* kind 7: the sample's one value */
                           (double)n - 1.5, (double)n - 1, (double)n - 0.5, (double)n, (double)n + 7, INFINITY};
      for (size_t ki = 0; ki < sizeof ks / sizeof *ks; ki++) {
        memcpy(work, x, sizeof(double) * (size_t)n);
        double *lt = lt_base + ki % 8;
        rk_rank_lt(work, n, ks[ki], lt, ki % 2 ? work : copy, s1, s2); /* in place, or through a copy */
        if (memcmp(work, x, sizeof(double) * (size_t)n) && !(ki % 2)) {
          printf("FAIL rk_rank_lt: n %lld, kind %d, k %g: X written\n", (long long)n, kind, ks[ki]);
          failures++;
        }
        for (int64_t r = 0; r < n; r++)
          if (lt[perm[r]] != ((double)r < ks[ki] ? 1.0 : 0.0)) {
            printf("FAIL rk_rank_lt: n %lld, kind %d, k %g: element %d (%g) of rank %lld gives %g\n", (long long)n,
                   kind, ks[ki], perm[r], x[perm[r]], (long long)r, lt[perm[r]]);
            failures++;
            break;
          }
        checked_lt++;
        /* rk_rank_thr: the same mask from its threshold (key, position) */
        double thr[3];
        memcpy(work, x, sizeof(double) * (size_t)n);
        rk_rank_thr(work, n, ks[ki], thr, lt, copy, s1, s2);
        if (memcmp(work, x, sizeof(double) * (size_t)n)) {
          printf("FAIL rk_rank_thr: n %lld, kind %d, k %g: X written\n", (long long)n, kind, ks[ki]);
          failures++;
        }
        uint64_t T;
        memcpy(&T, &thr[1], sizeof T);
        for (int64_t r = 0; r < n; r++) {
          int64_t i = perm[r];
          uint64_t key = rk_rank_key(x[i]);
          bool in = thr[0] == 1.0 || (thr[0] == 2.0 && (key < T || (key == T && (double)i <= thr[2])));
          if (in != ((double)r < ks[ki])) {
            printf("FAIL rk_rank_thr: n %lld, kind %d, k %g: element %lld (%g) of rank %lld is %s\n", (long long)n,
                   kind, ks[ki], (long long)i, x[i], (long long)r, in ? "in" : "out");
            failures++;
            break;
          }
        }
      }
      free(x), free(work), free(out), free(s1), free(s2), free(perm), free(copy), free(lt_base);
    }
  printf("rk_rank: %d arrays checked; rk_rank_lt: %d (array, k) pairs\n", checked, checked_lt);
}

/* The discounted recurrence, as the interpreter runs it (plain double; with a fused multiply-add
 * where rk_lib is compiled to contract one, test_rk_fma). */
static void scan_plain(const double *x, int64_t n, double gamma, int dir, double *out) {
  double y = 0;
  for (int64_t j = 0; j < n; j++) {
    int64_t t = dir > 0 ? j : n - 1 - j;
#ifdef RK_TEST_FMA
    y = j == 0 ? x[t] : __builtin_fma(gamma, y, x[t]);
#else
    y = j == 0 ? x[t] : gamma * y + x[t];
#endif
    out[t] = y;
  }
}

static void scans(void) {
  static const int64_t lens[] = {1, 2, 5, 63, 64, 65, 66, 67, 100, 255, 256, 257, 1000, 4099, 10000};
  enum { NMAX = 10000 };
  double *x = malloc(NMAX * sizeof *x), *out = malloc(NMAX * sizeof *out), *want = malloc(NMAX * sizeof *want);
  long double *ref = malloc(NMAX * sizeof *ref), *mag = malloc(NMAX * sizeof *mag);
  int checked = 0;
  for (size_t li = 0; li < sizeof lens / sizeof *lens; li++) {
    int64_t n = lens[li];
    for (int v = 0; v < 8; v++) {
      double gamma = v & 1 ? 0.99 : 1.0;
      int dir = v & 2 ? 1 : -1;
      bool inplace = v & 4;
      for (int64_t t = 0; t < n; t++) x[t] = (urand() - 0.3) * (t % 7 == 0 ? 1e3 : 1.0);
      scan_plain(x, n, gamma, dir, want);
      long double y = 0, a = 0;
      for (int64_t j = 0; j < n; j++) {
        int64_t t = dir > 0 ? j : n - 1 - j;
        y = gamma * y + x[t], a = gamma * a + fabsl(x[t]);
        ref[t] = y, mag[t] = a;
      }
      double *dst = inplace ? x : out;
      rk_scan(x, n, gamma, dir, dst);
      bool blocked = gamma == 1.0 && n >= RK_SCAN_CHAINS_MIN;
      for (int64_t t = 0; t < n; t++) {
        bool ok = blocked ? fabsl((long double)dst[t] - ref[t]) <= (long double)(n - 1) * 0x1p-52L * mag[t]
                          : memcmp(&dst[t], &want[t], sizeof dst[t]) == 0;
        if (!ok) {
          printf("FAIL rk_scan: n %lld, gamma %g, dir %d, %s: element %lld is %.17g, want %.17Lg\n", (long long)n,
                 gamma, dir, inplace ? "in place" : "out of place", (long long)t, dst[t], ref[t]);
          failures++;
          break;
        }
      }
      checked++;
    }
  }
  printf("rk_scan: %d scans checked\n", checked);
  free(x), free(out), free(want), free(ref), free(mag);
}

int main(void) {
#ifdef RK_TEST_FMA
  if (!__builtin_cpu_supports("fma")) {
    printf("test_rk_fma: skipped: this CPU has no FMA\n");
    return 77;
  }
  printf("rk_lib with fused multiply-adds (-mfma -ffp-contract=on)\n");
#endif
  float_routines();
  double_routines();
  ranks();
  scans();
  printf("test_rk: %d failures\n", failures);
  return failures != 0;
}
