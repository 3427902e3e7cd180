/* rk_lib.c — the kernel support library (see rk_lib.h).  Compiled to bitcode twice: for the host
 * (the math below is ours: branch-free, with no calls, so loops that use it vectorize) and for
 * nvptx64 (the math is libdevice's __nv_* routines, linked by the code generator).
 *
 * Rules for this file: no libc, no globals except the GPU's shared-memory buffer, no integer
 * conversions of NaN (they are undefined), and everything selected rather than branched where
 * it sits in a token loop.  Accuracy of the host math (tests/unit/test_rk.c checks it against
 * libm over millions of arguments, and states the measured maxima): exp within 2 ulp, log 1,
 * log1p 2, expm1 and tanh 7; pow within 114 ulp at |y log x| up to 90 (exp(y log x) in double);
 * in float, expf within 2 ulp, logf 1, sigmoidf 4.
 */
#include "rk_lib.h"
#include "rein/objective.h"

#define INF __builtin_inf()
#define NAN_ __builtin_nan("")

static double f_of(uint64_t u) { double d; __builtin_memcpy(&d, &u, 8); return d; }
static uint64_t u_of(double d) { uint64_t u; __builtin_memcpy(&u, &d, 8); return u; }

#ifdef __NVPTX__
double __nv_exp(double);
double __nv_log(double);
double __nv_log1p(double);
double __nv_expm1(double);
double __nv_tanh(double);
double __nv_pow(double, double);

double rk_exp(double x) { return __nv_exp(x); }
double rk_log(double x) { return __nv_log(x); }
double rk_log1p(double x) { return __nv_log1p(x); }
double rk_expm1(double x) { return __nv_expm1(x); }
double rk_tanh(double x) { return __nv_tanh(x); }
double rk_pow(double x, double y) { return __nv_pow(x, y); }
#else

/* round-to-nearest of |v| < 2^51 without a call: the add pushes the fraction out */
#define MAGIC 6755399441055744.0 /* 1.5 * 2^52 */

double rk_exp(double x) {
  double xc = x > 709.8 ? 709.8 : x < -745.2 ? -745.2 : x;
  xc = x != x ? 0.0 : xc;
  double t = xc * 1.4426950408889634 + MAGIC;
  int64_t k = (int64_t)(u_of(t) - u_of(MAGIC));
  double kd = t - MAGIC;
  double r = (xc - kd * 6.93147180369123816490e-01) - kd * 1.90821492927058770002e-10;
  /* e^r on |r| <= 0.347: Taylor to degree 13 (error below 1e-17), by Estrin's scheme so the
   * dependency chain is 8 operations deep instead of 26 (the token loop is latency-bound) */
  double r2 = r * r, r4 = r2 * r2, r8 = r4 * r4;
  double a0 = 1.0 + r, a1 = 0.5 + r * (1.0 / 6.0), a2 = 1.0 / 24.0 + r * (1.0 / 120.0);
  double a3 = 1.0 / 720.0 + r * (1.0 / 5040.0), a4 = 1.0 / 40320.0 + r * (1.0 / 362880.0);
  double a5 = 1.0 / 3628800.0 + r * (1.0 / 39916800.0), a6 = 1.0 / 479001600.0 + r * (1.0 / 6227020800.0);
  double b0 = a0 + a1 * r2, b1 = a2 + a3 * r2, b2 = a4 + a5 * r2;
  double p = (b0 + b1 * r4) + (b2 + a6 * r4) * r8;
  /* 2^k in two steps near the ends of the exponent range (k in [-1075, 1025]) */
  int64_t adj = k > 1000 ? -64 : k < -1000 ? 64 : 0;
  double post = k > 1000 ? 18446744073709551616.0 : k < -1000 ? 5.421010862427522e-20 : 1.0;
  double res = p * f_of((uint64_t)(k + adj + 1023) << 52) * post;
  return x != x ? x : res;
}

double rk_log(double x) {
  int sub = x < 2.2250738585072014e-308;
  double xs = sub ? x * 18014398509481984.0 : x; /* 2^54 */
  uint64_t bits = u_of(xs);
  uint64_t ebits = (bits >> 52) & 0x7ff;
  double e = f_of(ebits | 0x4330000000000000ull) - 4503599627370496.0 - 1023.0 - (sub ? 54.0 : 0.0);
  double m = f_of((bits & 0x000fffffffffffffull) | 0x3ff0000000000000ull); /* [1, 2) */
  int big = m > 1.4142135623730951;
  m = big ? m * 0.5 : m;
  e = big ? e + 1.0 : e;
  double f = m - 1.0;
  double s = f / (2.0 + f);
  double z = s * s;
  /* R = 2z/3 + 2z^2/5 + ... (2 atanh(s) = 2s + sR), |s| <= 0.1716, to z^10, by Estrin */
  double z2 = z * z, z4 = z2 * z2, z8 = z4 * z4;
  double c0 = 2.0 / 3.0 + z * (2.0 / 5.0), c1 = 2.0 / 7.0 + z * (2.0 / 9.0), c2 = 2.0 / 11.0 + z * (2.0 / 13.0);
  double c3 = 2.0 / 15.0 + z * (2.0 / 17.0), c4 = 2.0 / 19.0 + z * (2.0 / 21.0);
  double R = z * (((c0 + c1 * z2) + (c2 + c3 * z2) * z4) + c4 * z8);
  double hfsq = 0.5 * f * f;
  double res = e * 6.93147180369123816490e-01 -
               ((hfsq - (s * (hfsq + R) + e * 1.90821492927058770002e-10)) - f);
  res = x == INF ? INF : res;
  res = x == 0.0 ? -INF : res;
  res = x < 0.0 ? NAN_ : res;
  return x != x ? x : res;
}

double rk_log1p(double x) {
  double u = 1.0 + x;
  double d = u - 1.0;
  /* log(u) * x / (u - 1) corrects the rounding of 1 + x (Goldberg) */
  double res = rk_log(u) * (x / (d == 0.0 ? 1.0 : d));
  res = d == 0.0 ? x : res;
  res = x == INF ? INF : res;
  return res;
}

double rk_expm1(double x) {
  double ax = x < 0 ? -x : x;
  /* Taylor to degree 15 on |x| <= 0.35 (p: the coefficients from x^2 on, over x^2), by Estrin */
  double x2 = x * x, x4 = x2 * x2, x8 = x4 * x4;
  double e0 = 0.5 + x * (1.0 / 6.0), e1 = 1.0 / 24.0 + x * (1.0 / 120.0), e2 = 1.0 / 720.0 + x * (1.0 / 5040.0);
  double e3 = 1.0 / 40320.0 + x * (1.0 / 362880.0), e4 = 1.0 / 3628800.0 + x * (1.0 / 39916800.0);
  double e5 = 1.0 / 479001600.0 + x * (1.0 / 6227020800.0), e6 = 1.0 / 87178291200.0 + x * (1.0 / 1307674368000.0);
  double p = ((e0 + e1 * x2) + (e2 + e3 * x2) * x4) + ((e4 + e5 * x2) + e6 * x4) * x8;
  double small = x + x * x * p;
  double big = rk_exp(x) - 1.0;
  return ax <= 0.35 ? small : big;
}

double rk_tanh(double x) {
  double a = x < 0 ? -x : x;
  double e = rk_expm1(-2.0 * (a > 40.0 ? 40.0 : a));
  double t = -e / (2.0 + e);
  t = a > 40.0 ? 1.0 : t;
  t = x < 0 ? -t : t;
  return x != x ? x : t;
}

/* pow with C99's special cases (Annex F): pow(x, 0) = 1 and pow(1, y) = 1 even for NaN; a
 * negative base needs an integer exponent (odd ones keep the sign); otherwise exp(y log|x|). */
double rk_pow(double x, double y) {
  double ax = x < 0 ? -x : x;
  double ay = y < 0 ? -y : y;
  double fl = ay < 4503599627370496.0 ? (ay + MAGIC) - MAGIC : ay; /* nearest integer */
  int yint = fl == ay;
  double half = ay * 0.5;
  double hfl = half < 4503599627370496.0 ? (half + MAGIC) - MAGIC : half;
  int yodd = yint && hfl != half;
  double mag = rk_exp(y * rk_log(ax));
  mag = ax == 1.0 && (y == INF || y == -INF) ? 1.0 : mag;
  mag = ax == 0.0 ? (y > 0 ? 0.0 : INF) : mag;
  double res = x < 0 || (x == 0 && 1.0 / x < 0) ? (yint ? (yodd ? -mag : mag) : NAN_) : mag;
  res = x != x || y != y ? NAN_ : res;
  res = y == 0.0 || x == 1.0 ? 1.0 : res;
  return res;
}

/* ---- float32 (the token loops' arithmetic unless --precision f64; cg_value.c) ----
 * The same structure in float, so a loop vectorizes 16 lanes wide on AVX-512: exp within 2 ulp
 * (Taylor to degree 7 on |r| <= 0.347, truncation error below 6e-9, the rest float rounding),
 * log within 1 ulp (2 atanh(s) to s^9). */
static float ff_of(uint32_t u) { float d; __builtin_memcpy(&d, &u, 4); return d; }
static uint32_t uf_of(float d) { uint32_t u; __builtin_memcpy(&u, &d, 4); return u; }
#define MAGICF 12582912.0f /* 1.5 * 2^23 */
#define LN2_HI_F 0.693145751953125f      /* 15 significant bits: k * LN2_HI_F is exact */
#define LN2_LO_F 1.428606765330187e-06f

/* exp(G*x) = p * 2^k / S for G*x in [-104, 88.8] (or NaN): the reduction and the polynomial.  G is
 * 1 or -1 (rk_sigmoidf's exp(-x), without a negation: -x's reduction is the mirror image of x's,
 * so G folds into the constants), and each coefficient is times S, a power of two (EXPF_COEFS(1)
 * for exp; rk_sigmoidf's 2^64), so p is S times the unscaled polynomial's value, bit for bit
 * (scaling by a power of two, like negation, commutes with rounding).  The coefficients come in
 * as values so that each a_i below is one multiply-add, as unscaled. */
#define EXPF_COEFS(S)                                                                                   \
  (S), (S), 0.5f * (S), (1.0f / 6.0f) * (S), (1.0f / 24.0f) * (S), (1.0f / 120.0f) * (S),               \
      (1.0f / 720.0f) * (S), (1.0f / 5040.0f) * (S)
static float expf_poly(float G, float x, int32_t *k, float c0, float c1, float c2, float c3, float c4,
                       float c5, float c6, float c7) {
  float t = x * (G * 1.44269504088896341f) + MAGICF;
  *k = (int32_t)(uf_of(t) - uf_of(MAGICF));
  float kf = t - MAGICF;
  float r = G * ((x - kf * (G * LN2_HI_F)) - kf * (G * LN2_LO_F));
  float r2 = r * r, r4 = r2 * r2;
  float a0 = c0 + r * c1, a1 = c2 + r * c3, a2 = c4 + r * c5, a3 = c6 + r * c7;
  return (a0 + a1 * r2) + (a2 + a3 * r2) * r4;
}

float rk_expf(float x) {
  int32_t k;
  float p = expf_poly(1.0f, x > 88.8f ? 88.8f : x < -104.0f ? -104.0f : x, &k, EXPF_COEFS(1.0f)); /* NaN stays NaN */
  /* 2^k (k in [-150, 129]) as two normal powers of two */
  int32_t k1 = k >> 1, k2 = k - k1;
  return p * ff_of((uint32_t)(k1 + 127) << 23) * ff_of((uint32_t)(k2 + 127) << 23);
}

/* In [-86, 88], k is in [-124, 127] and p * 2^k is a normal float, so one scaling is exact, as
 * rk_expf's two are; a NaN goes through the arithmetic (the integer k is bits, not a conversion). */
float rk_expf_near(float x) {
  int32_t k;
  float p = expf_poly(1.0f, x, &k, EXPF_COEFS(1.0f));
  return p * ff_of((uint32_t)(k + 127) << 23);
}

float rk_logf(float x) {
  int sub = x < 1.17549435e-38f;
  float xs = sub ? x * 16777216.0f : x; /* 2^24 */
  uint32_t bits = uf_of(xs);
  int32_t ebits = (int32_t)((bits >> 23) & 0xff);
  float e = (float)(ebits - 127 - (sub ? 24 : 0));
  float m = ff_of((bits & 0x007fffffu) | 0x3f800000u); /* [1, 2) */
  int big = m > 1.41421356f;
  m = big ? m * 0.5f : m;
  e = big ? e + 1.0f : e;
  float f = m - 1.0f;
  float s = f / (2.0f + f);
  float z = s * s, z2 = z * z;
  float R = z * ((2.0f / 3.0f + z * (2.0f / 5.0f)) + (2.0f / 7.0f + z * (2.0f / 9.0f)) * z2);
  float hfsq = 0.5f * f * f;
  float res = e * LN2_HI_F - ((hfsq - (s * (hfsq + R) + e * LN2_LO_F)) - f);
  res = x == __builtin_inff() ? __builtin_inff() : res;
  res = x == 0.0f ? -__builtin_inff() : res;
  res = x < 0.0f ? __builtin_nanf("") : res;
  return x != x ? x : res;
}

/* sigmoid(x) = 1/(1 + exp(-x)) = 2^-k/(2^-k + p) with exp(-x) = p * 2^k, computed as
 * 2^(64-k)/(2^(64-k) + p*2^64): x clamped to [-104, 17.5] puts k in [-25, 150] and 2^(64-k) in
 * the normal range, so the power is one integer operation and the only roundings are exp's, the
 * sum's and the quotient's (a subnormal result is rounded once).  Above 17.5 the result is 1
 * (sigmoid(17.5) rounds to 1); below -104 it is 0 (exp(-104) is below half the least subnormal).
 * Within 4 ulp (test_rk): for x < 0 the quotient is about 1/exp(-x), whose relative error is
 * exp's, counted in the ulps of a float whose significand may be twice exp's. */
float rk_sigmoidf(float x) {
  int32_t k;
  float c = x > 17.5f ? 17.5f : x; /* min, then max: each one instruction, NaN kept */
  c = c < -104.0f ? -104.0f : c;
  float P = expf_poly(-1.0f, c, &k, EXPF_COEFS(18446744073709551616.0f));
  float s = ff_of((uint32_t)(127 + 64 - k) << 23);
  return s / (s + P); /* NaN: P is NaN */
}
#endif

double rk_sigmoid(double x) {
  double e = rk_exp(-(x < 0 ? -x : x));
  double r = x >= 0 ? 1.0 / (1.0 + e) : e / (1.0 + e);
  return x != x ? x : r;
}

double rk_softplus(double x) {
  double r = (x > 0 ? x : 0.0) + rk_log1p(rk_exp(-(x < 0 ? -x : x)));
  return x != x ? x : r;
}

double rk_uniform(uint64_t seed, uint64_t step, uint64_t group, uint64_t seq) {
  return rein_uniform(seed, step, group, seq);
}

void rk_acc(int op, double *st, double x, int keep) {
  double n = st[0], a = st[1], b = st[2];
  double n1 = n + 1.0;
  switch (op) {
  case RK_MAX:
    a = n == 0 || x > a ? x : a;
    break;
  case RK_MIN:
    a = n == 0 || x < a ? x : a;
    break;
  case RK_VAR:
  case RK_STD: { /* Welford */
    double d = x - a;
    double mean = a + d / n1;
    b = b + d * (x - mean);
    a = mean;
    break;
  }
  case RK_LSE: { /* running max a and sum b of exp(x - a) */
    double m = n == 0 || x > a ? x : a;
    double scale = n == 0 ? 0.0 : (a == m ? 1.0 : rk_exp(a - m));
    b = b * scale + (x == m ? 1.0 : rk_exp(x - m));
    a = m;
    break;
  }
  default: /* sum, mean, count are emitted inline */
    a += x;
    break;
  }
  if (keep) {
    st[0] = n1;
    st[1] = a;
    st[2] = b;
  }
}

void rk_merge(int op, double *st, const double *o) {
  double na = st[0], nb = o[0];
  if (nb == 0) return;
  if (na == 0) {
    st[0] = o[0], st[1] = o[1], st[2] = o[2];
    return;
  }
  double n = na + nb;
  switch (op) {
  case RK_MAX: st[1] = o[1] > st[1] ? o[1] : st[1]; break;
  case RK_MIN: st[1] = o[1] < st[1] ? o[1] : st[1]; break;
  case RK_VAR:
  case RK_STD: { /* Chan et al. */
    double d = o[1] - st[1];
    st[1] = st[1] + d * nb / n;
    st[2] = st[2] + o[2] + d * d * na * nb / n;
    break;
  }
  case RK_LSE: {
    double m = o[1] > st[1] ? o[1] : st[1];
    double sa = st[1] == m ? st[2] : st[2] * rk_exp(st[1] - m);
    double sb = o[1] == m ? o[2] : o[2] * rk_exp(o[1] - m);
    st[1] = m;
    st[2] = sa + sb;
    break;
  }
  case RK_COUNT: break;
  default: st[1] += o[1]; break; /* sum, mean */
  }
  st[0] = n;
}

double rk_finish(int op, int ddof, const double *st) {
  double n = st[0], k = n - ddof;
  switch (op) {
  case RK_SUM: return n > 0 ? st[1] : 0.0;
  case RK_MEAN: return n > 0 ? st[1] / n : 0.0;
  case RK_COUNT: return n;
  case RK_MAX:
  case RK_MIN: return n > 0 ? st[1] : 0.0;
  case RK_VAR: return k > 0 ? st[2] / k : 0.0;
  case RK_STD: {
    double v = k > 0 ? st[2] / k : 0.0;
    return __builtin_sqrt(v);
  }
  case RK_LSE:
    if (n == 0) return -INF;
    if (st[1] == INF || st[1] == -INF) return st[1];
    return st[1] + rk_log(st[2]);
  }
  return NAN_;
}

/* x[a] before x[b]: by value, NaN last, ties by position */
static int before(const double *x, int32_t a, int32_t b) {
  double xa = x[a], xb = x[b];
  int na = xa != xa, nb = xb != xb;
  if (na != nb) return nb;
  if (!na && xa != xb) return xa < xb;
  return a < b;
}

static void rank_merge(const double *x, int64_t n, double *out, int32_t *idx, int32_t *tmp) {
  for (int64_t i = 0; i < n; i++) idx[i] = (int32_t)i;
  /* bottom-up merge sort: stable, O(n log n), no recursion */
  for (int64_t w = 1; w < n; w *= 2) {
    for (int64_t lo = 0; lo < n; lo += 2 * w) {
      int64_t mid = lo + w < n ? lo + w : n, hi = lo + 2 * w < n ? lo + 2 * w : n;
      int64_t i = lo, j = mid, k = lo;
      while (i < mid && j < hi) tmp[k++] = before(x, idx[j], idx[i]) ? idx[j++] : idx[i++];
      while (i < mid) tmp[k++] = idx[i++];
      while (j < hi) tmp[k++] = idx[j++];
    }
    for (int64_t i = 0; i < n; i++) idx[i] = tmp[i];
  }
  for (int64_t r = 0; r < n; r++) out[idx[r]] = (double)r;
}

#ifndef __NVPTX__
/* An unsigned key in the order of before(): negative doubles have their bits flipped, the others
 * their sign bit set; -0 counts as +0 and every NaN is the largest key (ties by position come
 * from the sort's stability). */
static uint64_t rank_key(double v) {
  uint64_t u = u_of(v + 0.0); /* -0 + 0 is +0 */
  uint64_t k = u ^ ((uint64_t)((int64_t)u >> 63) | (uint64_t)1 << 63);
  return v != v ? ~(uint64_t)0 : k; /* without branches, so that the sweeps vectorize */
}

/* The radix sort: keys into X's memory (KA), their positions into the first half of S2 (IA);
 * each of the 8 byte-digits, least significant first, is a stable counting sort into S1 (KB)
 * and S2's second half (IB) and back, skipped where every key has the same digit.  The 8
 * histograms (8 x 256 counts, 16 KB) live in OUT until the ranks overwrite it (n >= 2048). */
static void rank_radix(double *x, int64_t n, double *out, void *s1, void *s2) {
  uint64_t *ka = (uint64_t *)x, *kb = s1;
  int32_t *ia = s2, *ib = (int32_t *)s2 + n;
  int64_t *hist = (int64_t *)out;
  for (int k = 0; k < 8 * 256; k++) hist[k] = 0;
  for (int64_t i = 0; i < n; i++) {
    uint64_t key = rank_key(x[i]);
    ka[i] = key, ia[i] = (int32_t)i;
    for (int d = 0; d < 8; d++) hist[d * 256 + (int)(key >> 8 * d & 255)]++;
  }
  for (int d = 0; d < 8; d++) {
    int64_t *h = hist + d * 256, sum = 0;
    if (h[ka[0] >> 8 * d & 255] == n) continue; /* one digit value: the order stands */
    for (int v = 0; v < 256; v++) {
      int64_t c = h[v];
      h[v] = sum, sum += c;
    }
    for (int64_t i = 0; i < n; i++) {
      int64_t p = h[ka[i] >> 8 * d & 255]++;
      kb[p] = ka[i], ib[p] = ia[i];
    }
    uint64_t *kt = ka;
    ka = kb, kb = kt;
    int32_t *it = ia;
    ia = ib, ib = it;
  }
  for (int64_t r = 0; r < n; r++) out[ia[r]] = (double)r;
}
#endif

void rk_rank(double *x, int64_t n, double *out, void *s1, void *s2) {
#ifndef __NVPTX__
  if (n >= RK_RANK_RADIX_MIN) {
    rank_radix(x, n, out, s1, s2);
    return;
  }
#endif
  rank_merge(x, n, out, s1, s2);
}

#ifndef __NVPTX__
/* The key of rank NEED-1 (NEED 1-based) among KEYS[0..M) -- or among the keys of X[0..M) when X is
 * not NULL (KEYS then has room for M) -- by a radix select, 16 bits at a time from the top: each
 * level counts the digit of the keys left (the 65536 counts in HIST), keeps in KEYS those whose
 * digit holds the wanted rank, and makes NEED its rank among them; it stops early once the keys
 * left are all equal.  On return NEED is the rank of the result among the keys equal to it. */
static uint64_t select_levels(const double *x, uint64_t *keys, int64_t m, int64_t *need, int64_t *hist) {
  uint64_t t = 0;
  for (int shift = 48; shift >= 0; shift -= 16) {
    const double *src = shift == 48 ? x : 0;
    for (int v = 0; v < 65536; v++) hist[v] = 0;
    uint64_t lo = ~(uint64_t)0, hi = 0;
    for (int64_t i = 0; i < m; i++) {
      uint64_t key = src ? rank_key(src[i]) : keys[i];
      hist[key >> shift & 65535]++;
      lo = key < lo ? key : lo, hi = key > hi ? key : hi;
    }
    if (lo == hi) return lo; /* every key left is the one */
    uint64_t b = 0;
    while (hist[b] < *need) *need -= hist[b++];
    int64_t m2 = 0;
    for (int64_t i = 0; i < m; i++) {
      uint64_t key = src ? rank_key(src[i]) : keys[i];
      if ((key >> shift & 65535) == b) keys[m2++] = key;
    }
    m = m2;
    t = keys[0]; /* after the last digit, all kept keys are equal */
  }
  return t;
}

/* A[0..M) in increasing order, by a least-significant-digit radix sort (four 16-bit digits, back
 * in A after the fourth), TMP of M keys and HIST of 65536 counts as scratch. */
static void sort_keys(uint64_t *a, uint64_t *tmp, int64_t m, int64_t *hist) {
  for (int shift = 0; shift < 64; shift += 16) {
    for (int v = 0; v < 65536; v++) hist[v] = 0;
    for (int64_t i = 0; i < m; i++) hist[a[i] >> shift & 65535]++;
    for (int64_t v = 0, sum = 0; v < 65536; v++) {
      int64_t c = hist[v];
      hist[v] = sum, sum += c;
    }
    for (int64_t i = 0; i < m; i++) tmp[hist[a[i] >> shift & 65535]++] = a[i];
    uint64_t *t = a;
    a = tmp, tmp = t;
  }
}

/* The sweeps of rank_select read 8 keys at a time as a vector (clang's vector extension, whatever
 * the host's vector width): a signed key, rank_key's with the top bit flipped, so that the
 * comparisons are signed ones, which every vector unit has (the scalar code compares rank_key's
 * unsigned keys, in the same order). */
typedef double rk_v8d __attribute__((vector_size(64)));
typedef int64_t rk_v8l __attribute__((vector_size(64)));
#define RK_SMAX 0x7fffffffffffffffll

static int64_t signed_key(uint64_t key) { return (int64_t)(key ^ (uint64_t)1 << 63); }

static void signed_keys8(const double *p, rk_v8l *key) { /* a pointer: no vector in the ABI */
  rk_v8d v;
  __builtin_memcpy(&v, p, sizeof v);
  v = v + 0.0; /* -0 + 0 is +0 */
  rk_v8l u = (rk_v8l)v, nan = v != v;
  rk_v8l k = u ^ ((u >> 63) & RK_SMAX);
  *key = (k & ~nan) | (nan & RK_SMAX);
}

#define RK_SELECT_CHUNK 32 /* keys a sweep looks at before it decides on a scalar pass */

/* rank < KK (1 <= KK < N) without sorting X: T, the key of rank KK-1, is found in one sweep
 * when a sample brackets it, and a last sweep marks every key < T and the first NEED keys equal
 * to T (ties by position; NEED is T's rank, 1-based, among the keys equal to it).
 *   The bracket: SMP keys of X at a fixed stride, sorted (in OUT, free until the last sweep); LO
 * and HI are the sample's keys a margin below and above KK's place in it (4 standard deviations
 * of the place and 8 keys more).  The sweep counts the keys below LO, at LO and at HI and keeps
 * in S1 those strictly between (few: about 2 x margin / SMP of N), where select_levels finds T
 * if the counts place it there.  Should the sample miss (or X hold few distinct values around
 * rank KK-1 and land it on LO or HI, which the counts also cover) nothing is lost but time: a
 * radix select over the whole of X, select_levels, finds T.  Both sweeps go by chunks of
 * RK_SELECT_CHUNK keys in vectors, and look at a chunk key by key only where it holds a key to
 * keep or a tie to decide. */
static uint64_t select_key(const double *x, int64_t n, int64_t kk, double *out, void *s1, void *s2,
                           int64_t *need_out) {
  uint64_t *kept = s1, *smp = (uint64_t *)out;
  int64_t *hist = s2;
  int64_t ns = n / 16 < 32768 ? n / 16 : 32768, stride = n / ns;
  for (int64_t j = 0; j < ns; j++) smp[j] = rank_key(x[j * stride]);
  sort_keys(smp, smp + ns, ns, hist);
  int64_t p = (int64_t)((double)kk / (double)n * (double)ns);
  int64_t d = 4 * (int64_t)__builtin_sqrt((double)p + 1) + 8;
  uint64_t lo = p - d >= 0 ? smp[p - d] : 0, hi = p + d < ns ? smp[p + d] : ~(uint64_t)0;
  int64_t slo = signed_key(lo), shi = signed_key(hi), below = 0, at_lo = 0, at_hi = 0, m = 0;
  rk_v8l vb = {0}, vl = {0}, vh = {0};
  int64_t c0 = 0;
  for (; c0 + RK_SELECT_CHUNK <= n; c0 += RK_SELECT_CHUNK) {
    rk_v8l inside = {0};
    for (int j = 0; j < RK_SELECT_CHUNK; j += 8) {
      rk_v8l k;
      signed_keys8(x + c0 + j, &k);
      vb -= k < slo, vl -= k == slo, vh -= k == shi; /* a true comparison is -1 */
      inside |= (k > slo) & (k < shi);
    }
    int64_t any = 0;
    for (int j = 0; j < 8; j++) any |= inside[j];
    for (int64_t i = c0; any && i < c0 + RK_SELECT_CHUNK; i++) {
      uint64_t key = rank_key(x[i]);
      if (key > lo && key < hi) kept[m++] = key;
    }
  }
  for (int j = 0; j < 8; j++) below += vb[j], at_lo += vl[j], at_hi += vh[j];
  for (int64_t i = c0; i < n; i++) { /* the last, partial chunk */
    uint64_t key = rank_key(x[i]);
    below += key < lo, at_lo += key == lo, at_hi += key == hi;
    if (key > lo && key < hi) kept[m++] = key;
  }
  if (lo == hi) at_hi = 0; /* counted once, at LO */
  int64_t need = kk - below;
  uint64_t t;
  if (need >= 1 && need <= at_lo) t = lo;
  else if (need > at_lo && need - at_lo <= m) need -= at_lo, t = select_levels(0, kept, m, &need, hist);
  else if (need > at_lo + m && need - at_lo - m <= at_hi) need -= at_lo + m, t = hi;
  else need = kk, t = select_levels(x, kept, n, &need, hist); /* the sample missed */
  *need_out = need;
  return t;
}

static void rank_select(const double *x, int64_t n, int64_t kk, double *out, void *s1, void *s2) {
  int64_t need, c0;
  uint64_t t = select_key(x, n, kk, out, s1, s2, &need);
  int64_t st = signed_key(t), left = need;
  const rk_v8l one = (rk_v8l)(rk_v8d){1, 1, 1, 1, 1, 1, 1, 1};
  /* the marks of whole chunks are written with non-temporal stores, which need no read of the
   * line first (16M marks: KL-Cov 1.08x faster): so the first segment is the H keys before OUT's
   * first 64-byte line, key by key, and the chunks after it are whole lines */
  int64_t h = (int64_t)((64 - ((uintptr_t)out & 63)) & 63) / 8;
  for (int64_t c1 = c0 = 0; c0 < n; c0 = c1) {
    c1 = c0 == 0 && h > 0 ? h : c0 + RK_SELECT_CHUNK;
    c1 = c1 < n ? c1 : n;
    int64_t ties = 0;
    if (c1 - c0 == RK_SELECT_CHUNK) {
      rk_v8l vt = {0};
      for (int j = 0; j < RK_SELECT_CHUNK; j += 8) {
        rk_v8l k;
        signed_keys8(x + c0 + j, &k);
        __builtin_nontemporal_store((k < st) & one, (rk_v8l *)(out + c0 + j));
        vt -= k == st;
      }
      for (int j = 0; j < 8; j++) ties += vt[j];
    } else {
      for (int64_t i = c0; i < c1; i++) {
        uint64_t key = rank_key(x[i]);
        out[i] = key < t ? 1.0 : 0.0, ties += key == t;
      }
    }
    if (ties == 0 || left == 0) continue;
    for (int64_t i = c0; i < c1; i++) {
      int tie = rank_key(x[i]) == t && left > 0;
      if (tie) out[i] = 1.0;
      left -= tie;
    }
  }
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_sfence(); /* the marks are visible to the threads that read them next */
#endif
}
#endif

void rk_rank_lt(const double *x, int64_t n, double k, double *out, double *copy, void *s1, void *s2) {
#ifndef __NVPTX__
  if (n >= RK_RANK_SELECT_MIN && k > 0 && k <= (double)(n - 1)) {
    rank_select(x, n, (int64_t)__builtin_ceil(k), out, s1, s2);
    return;
  }
#endif
  if (copy != x)
    for (int64_t i = 0; i < n; i++) copy[i] = x[i];
  rk_rank(copy, n, out, s1, s2);
  for (int64_t i = 0; i < n; i++) out[i] = out[i] < k ? 1.0 : 0.0;
}

#ifndef __NVPTX__
uint64_t rk_rank_key(double x) { return rank_key(x); }

/* The position of the NEED-th key of X equal to T (1-based, in position order), or -1: whole
 * chunks are counted in vectors and only the one that holds it is looked at key by key. */
static int64_t find_tie(const double *x, int64_t n, uint64_t t, int64_t need) {
  int64_t st = signed_key(t), c0 = 0;
  for (; c0 + RK_SELECT_CHUNK <= n; c0 += RK_SELECT_CHUNK) {
    rk_v8l vt = {0};
    for (int j = 0; j < RK_SELECT_CHUNK; j += 8) {
      rk_v8l k;
      signed_keys8(x + c0 + j, &k);
      vt -= k == st;
    }
    int64_t ties = 0;
    for (int j = 0; j < 8; j++) ties += vt[j];
    if (ties >= need) break;
    need -= ties;
  }
  for (int64_t i = c0; i < n; i++)
    if (rank_key(x[i]) == t && --need == 0) return i;
  return -1;
}

void rk_rank_thr(const double *x, int64_t n, double k, double *thr, double *out, double *copy, void *s1, void *s2) {
  thr[0] = thr[1] = 0.0, thr[2] = -1.0;
  if (!(k > 0) || n <= 0) return;              /* no rank is below k (k NaN included) */
  if (k > (double)(n - 1)) {                    /* every rank is */
    thr[0] = 1.0;
    return;
  }
  int64_t kk = (int64_t)__builtin_ceil(k), pos = -1; /* the element of rank kk - 1 */
  uint64_t t;
  if (n >= RK_RANK_SELECT_MIN) {
    int64_t need;
    t = select_key(x, n, kk, out, s1, s2, &need); /* then the need-th key equal to t */
    pos = find_tie(x, n, t, need);
  } else {
    for (int64_t i = 0; i < n; i++) copy[i] = x[i];
    rk_rank(copy, n, out, s1, s2); /* out: scratch here, as for the sample above */
    for (int64_t i = 0; i < n && pos < 0; i++)
      if (out[i] == (double)(kk - 1)) pos = i;
    t = rank_key(x[pos]);
  }
  thr[0] = 2.0, thr[1] = f_of(t), thr[2] = (double)pos;
}
#endif

void rk_argext(const double *x, const double *keep, int64_t n, int dir, double *out) {
  int64_t best = -1;
  for (int64_t i = 0; i < n; i++) {
    out[i] = 0.0;
    if (keep[i] == 0) continue;
    if (best < 0 || (dir > 0 ? x[i] > x[best] : x[i] < x[best])) best = i;
  }
  if (best >= 0) out[best] = 1.0;
}

#ifndef __NVPTX__
/* The undiscounted scan in RK_SCAN_CHAINS blocks of m = ceil(n / chains) elements: each block's
 * own running sum, the blocks' chains interleaved (independent adds: their latencies overlap),
 * then each block's sums plus the total of the blocks after it (before it, for cumsum).  Block
 * c is [c*m, min((c+1)*m, n)); j counts from the end of the scan's direction. */
static void scan_chains(const double *x, int64_t n, int32_t dir, double *out) {
  enum { K = RK_SCAN_CHAINS };
  int64_t m = (n + K - 1) / K, last = n - (K - 1) * m; /* the last block's length, 1..m */
  double y[K];
  /* t = b[c] + s*j: the j-th element of block c from its start (cumsum) or its end (revcumsum) */
  int64_t s = dir > 0 ? 1 : -1, b[K];
  for (int c = 0; c < K; c++) {
    int64_t lo = c * m, hi = c == K - 1 ? n : lo + m;
    b[c] = dir > 0 ? lo : hi - 1;
    y[c] = out[b[c]] = x[b[c]];
  }
  for (int64_t j = 1; j < last; j++) /* every block has element j */
    for (int c = 0; c < K; c++) out[b[c] + s * j] = y[c] = y[c] + x[b[c] + s * j];
  for (int64_t j = last; j < m; j++) /* the first K-1 blocks */
    for (int c = 0; c < K - 1; c++) out[b[c] + s * j] = y[c] = y[c] + x[b[c] + s * j];
  double carry = 0.0; /* the total of the blocks before (cumsum) or after (revcumsum) block c */
  for (int k = 0; k < K; k++) {
    int c = dir > 0 ? k : K - 1 - k;
    int64_t lo = c * m, hi = c == K - 1 ? n : lo + m;
    if (k > 0)
      for (int64_t t = lo; t < hi; t++) out[t] += carry;
    carry = k == 0 ? y[c] : carry + y[c];
  }
}
#endif

void rk_scan(const double *x, int64_t n, double gamma, int32_t dir, double *out) {
#ifndef __NVPTX__
  if (gamma == 1.0 && n >= RK_SCAN_CHAINS_MIN) {
    scan_chains(x, n, dir, out);
    return;
  }
#endif
  double y = 0.0;
  for (int64_t j = 0; j < n; j++) {
    int64_t t = dir > 0 ? j : n - 1 - j;
    y = j == 0 ? x[t] : gamma * y + x[t];
    out[t] = y;
  }
}

#ifdef __NVPTX__
#define SHARED __attribute__((address_space(3)))
static SHARED double rk_smem[32 * 3];

static double shfl_down(double v, int d) {
  uint64_t u = u_of(v);
  uint32_t lo = (uint32_t)u, hi = (uint32_t)(u >> 32);
  lo = (uint32_t)__nvvm_shfl_sync_down_i32(0xffffffffu, (int)lo, d, 31);
  hi = (uint32_t)__nvvm_shfl_sync_down_i32(0xffffffffu, (int)hi, d, 31);
  return f_of(((uint64_t)hi << 32) | lo);
}

/* merges within each warp: lane i ends with lanes i..31 merged in lane order (lane 0: all) */
static void warp_reduce(int op, double *st, int lane) {
  for (int d = 16; d > 0; d >>= 1) {
    double o[3];
    for (int k = 0; k < 3; k++) o[k] = shfl_down(st[k], d);
    if (lane + d < 32) rk_merge(op, st, o);
  }
}

void rk_block_reduce(int op, double *st) {
  int tid = __nvvm_read_ptx_sreg_tid_x(), nt = __nvvm_read_ptx_sreg_ntid_x();
  int lane = tid & 31, warp = tid >> 5, nwarps = (nt + 31) >> 5;
  if (nt < 32) { /* a partial warp: lanes past nt hold empty states */
    if (tid >= nt) st[0] = 0;
  }
  warp_reduce(op, st, lane);
  __nvvm_barrier_sync(0);
  if (lane == 0)
    for (int k = 0; k < 3; k++) rk_smem[warp * 3 + k] = st[k];
  __nvvm_barrier_sync(0);
  if (warp == 0) {
    for (int k = 0; k < 3; k++) st[k] = lane < nwarps ? rk_smem[lane * 3 + k] : 0.0;
    warp_reduce(op, st, lane);
    if (lane == 0)
      for (int k = 0; k < 3; k++) rk_smem[k] = st[k];
  }
  __nvvm_barrier_sync(0);
  for (int k = 0; k < 3; k++) st[k] = rk_smem[k];
  __nvvm_barrier_sync(0);
}
#endif
