/* tfm_kern.c — the transformer executor's elementwise and matrix kernels (see tfm_internal.h).
 *
 * The matrix product is OpenBLAS's sgemm/dgemm set to one thread, called once per block of the
 * output by the OpenMP threads: one thread pool (ours), no nested threading, and each output
 * element is computed by one call over its whole K dimension.  The library must be a threaded
 * build: those lock their buffer allocator, so concurrent calls are safe (Debian's serial build
 * does not, and concurrent calls into it corrupt results under load).
 *
 * One shape has its own kernel: A B^T with a few rows of A (2 to 32: a decode step's rows times
 * a weight matrix stored (out, in)), where OpenBLAS spends more time packing the weights than
 * multiplying (gemm_rows below, AVX-512 hosts only; tfm_gemm_ref is its reference in the tests).
 * The decode step's attention row has an AVX-512 kernel too (tfm_attend_row, beside its plain
 * reference tfm_attend_row_ref).  Both are chosen by the CPU at run time: the runtime is compiled
 * for baseline x86-64.
 *
 * This file also owns the executor's floating-point mode (tfm_fp_begin / tfm_fp_end: subnormals
 * count as zero while the executor runs).
 */
#include "tfm_internal.h"

#include <math.h>
#include <omp.h>
#include <pthread.h>
#include <string.h>

#include <cblas.h>

#ifdef TFM_F64
#define GEMM cblas_dgemm
#else
#define GEMM cblas_sgemm
#endif

/* The flush mode of tfm_fp_begin: the control register's bits, and the calling thread's nesting
 * depth and the bits its outermost begin added (a mode that already flushes is left as it is). */
#if !defined(TFM_F64) && defined(__x86_64__)
#include <xmmintrin.h>
#define FP_FLUSH 0x8040u /* MXCSR: FTZ (bit 15), DAZ (bit 6) */
static unsigned fp_get(void) { return _mm_getcsr(); }
static void fp_set(unsigned v) { _mm_setcsr(v); }
#elif !defined(TFM_F64) && defined(__aarch64__)
#define FP_FLUSH (1u << 24) /* FPCR: FZ */
static unsigned fp_get(void) {
  unsigned long v;
  __asm__ volatile("mrs %0, fpcr" : "=r"(v));
  return (unsigned)v;
}
static void fp_set(unsigned v) { __asm__ volatile("msr fpcr, %0" : : "r"((unsigned long)v)); }
#else
#define FP_FLUSH 0u
static unsigned fp_get(void) { return 0; }
static void fp_set(unsigned v) { (void)v; }
#endif
static _Thread_local unsigned fp_added; /* the flush bits this thread's outermost begin set */
static _Thread_local int fp_depth;

/* libomp gives each worker the calling thread's MXCSR at every fork (KMP_INHERIT_FP_CONTROL, on
 * by default) and gives the caller back its own at the join, so the mode is set on the calling
 * thread; the parallel regions below set and clear the same bits on the workers for a runtime
 * that does not pass the mode on (libgomp, or libomp with the inheritance turned off). */
void tfm_fp_begin(void) {
  if (!FP_FLUSH || fp_depth++ > 0) return;
  unsigned cur = fp_get(), add = FP_FLUSH & ~cur;
  fp_added = add;
  fp_set(cur | add);
#pragma omp parallel
  fp_set(fp_get() | add);
}

void tfm_fp_end(void) {
  if (!FP_FLUSH || fp_depth <= 0 || --fp_depth > 0) return;
  unsigned add = fp_added;
  fp_set(fp_get() & ~add);
#pragma omp parallel
  fp_set(fp_get() & ~add);
}

static pthread_once_t blas_once = PTHREAD_ONCE_INIT;
static void blas_single_thread(void) { openblas_set_num_threads(1); }

/* A product below this many multiply-adds runs on one thread: splitting it costs more. */
#define GEMM_SPLIT_MIN 262144.0

/* The attention row's softmax numerators: sc[j] := exp(sc[j] - mx), returning their sum (in
 * order, in double): tfm_attend_row_ref's and attend_row16's, the same bits. */
static double softmax_exp(double *sc, int L, double mx) {
  double sum = 0;
  for (int j = 0; j < L; j++) {
    sc[j] = tfm_exp(sc[j] - mx);
    sum += sc[j];
  }
  return sum;
}

#if !defined(TFM_F64) && defined(__x86_64__)
#include <immintrin.h>

/* The sums of the 16 lanes of each of v[0..15], in lane l of the result for v[l].  Each level
 * adds lanes i and i + w of every vector (w = 8, 4, 2, 1: tfm_dot's tree) and packs two vectors'
 * halves into one, so no lane is summed twice and the order is the same for every output. */
__attribute__((target("avx512f"))) static __m512 lane_sums16(const __m512 v[16]) {
  static const int idx[4][2][16] = {
      {{0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23},
       {8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31}},
      {{0, 1, 2, 3, 8, 9, 10, 11, 16, 17, 18, 19, 24, 25, 26, 27},
       {4, 5, 6, 7, 12, 13, 14, 15, 20, 21, 22, 23, 28, 29, 30, 31}},
      {{0, 1, 4, 5, 8, 9, 12, 13, 16, 17, 20, 21, 24, 25, 28, 29},
       {2, 3, 6, 7, 10, 11, 14, 15, 18, 19, 22, 23, 26, 27, 30, 31}},
      {{0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30},
       {1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31}}};
  __m512 w[16];
  for (int q = 0; q < 16; q++) w[q] = v[q];
  for (int lv = 0, n = 16; lv < 4; lv++, n /= 2) {
    __m512i lo = _mm512_loadu_si512(idx[lv][0]), hi = _mm512_loadu_si512(idx[lv][1]);
    for (int p = 0; p < n / 2; p++)
      w[p] = _mm512_add_ps(_mm512_permutex2var_ps(w[2 * p], lo, w[2 * p + 1]),
                           _mm512_permutex2var_ps(w[2 * p], hi, w[2 * p + 1]));
  }
  return w[0];
}

/* acc[4i + j] += a[i][k:k+16] * b[j][k:k+16] lane by lane (the lanes outside mask read as 0). */
__attribute__((target("avx512f"), always_inline)) static inline void tile_step(__m512 acc[16], const float *a[4],
                                                                            const float *b[4], int k,
                                                                            __mmask16 mask) {
  __m512 va[4], vb[4];
  for (int i = 0; i < 4; i++) va[i] = _mm512_maskz_loadu_ps(mask, a[i] + k);
  for (int j = 0; j < 4; j++) vb[j] = _mm512_maskz_loadu_ps(mask, b[j] + k);
  for (int i = 0; i < 4; i++)
    for (int j = 0; j < 4; j++) acc[4 * i + j] = _mm512_fmadd_ps(va[i], vb[j], acc[4 * i + j]);
}

/* C[:, n0:n1] = A B[n0:n1]^T + beta C, A (M,K), B (N,K), C (M,N), row-major.  Tiles of 4 rows of A
 * by 4 rows of B: 16 accumulators of 16 lanes over K (lane l sums k ≡ l mod 16, the last partial
 * block through a masked load), then lane_sums16.  An edge tile repeats its last row and stores
 * only the real ones, so every output has the same arithmetic wherever the tile and the thread
 * blocks fall: the bits do not depend on the thread count. */
__attribute__((target("avx512f"))) static void gemm_rows(int M, int n0, int n1, int K, const float *A,
                                                       int lda, const float *B, int ldb, float beta,
                                                       float *C, int ldc) {
  int K16 = K & ~15;
  __mmask16 tail = (__mmask16)((1u << (K - K16)) - 1);
  for (int n = n0; n < n1; n += 4) {
    const float *b[4];
    for (int j = 0; j < 4; j++) b[j] = B + (size_t)(n + j < n1 ? n + j : n1 - 1) * ldb;
    for (int m = 0; m < M; m += 4) {
      const float *a[4];
      for (int i = 0; i < 4; i++) a[i] = A + (size_t)(m + i < M ? m + i : M - 1) * lda;
      __m512 acc[16];
      for (int q = 0; q < 16; q++) acc[q] = _mm512_setzero_ps();
      if (m == 0 && n + 4 < n1) /* the first pass over these rows of B fetches the next four's */
        for (int k = 0; k < K16; k += 16) {
          for (int j = 0; j < 4; j++) _mm_prefetch((const char *)(b[j] + k + (size_t)4 * ldb), _MM_HINT_T0);
          tile_step(acc, a, b, k, 0xffff);
        }
      else
        for (int k = 0; k < K16; k += 16) tile_step(acc, a, b, k, 0xffff);
      if (tail) tile_step(acc, a, b, K16, tail);
      float r[16];
      _mm512_storeu_ps(r, lane_sums16(acc));
      for (int i = 0; i < 4 && m + i < M; i++)
        for (int j = 0; j < 4 && n + j < n1; j++) {
          float *c = C + (size_t)(m + i) * ldc + n + j;
          *c = beta == 0 ? r[4 * i + j] : beta * *c + r[4 * i + j];
        }
    }
  }
}

/* tfm_attend_row on AVX-512: the scores 16 keys at a time (one accumulator per key, lane l summing
 * the dimensions d ≡ l mod 16, then lane_sums16: tfm_dot's order), and o in registers, 64
 * dimensions at a time, each lane summing over j in order. */
__attribute__((target("avx512f"))) static void attend_row16(int L, int hd, double scale, const float *q,
                                                          const float *K, const float *V, int stride,
                                                          double *sc, float *o) {
  int h16 = hd & ~15;
  __mmask16 tail = (__mmask16)((1u << (hd - h16)) - 1);
  double mx = -INFINITY;
  for (int j0 = 0; j0 < L; j0 += 16) {
    __m512 acc[16];
    for (int jj = 0; jj < 16; jj++) {
      const float *k = K + (size_t)(j0 + jj < L ? j0 + jj : L - 1) * stride;
      __m512 a = _mm512_setzero_ps();
      for (int d = 0; d < h16; d += 16) a = _mm512_fmadd_ps(_mm512_loadu_ps(q + d), _mm512_loadu_ps(k + d), a);
      if (tail) a = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(tail, q + h16), _mm512_maskz_loadu_ps(tail, k + h16), a);
      acc[jj] = a;
    }
    float s[16];
    _mm512_storeu_ps(s, lane_sums16(acc));
    for (int jj = 0; jj < 16 && j0 + jj < L; jj++) {
      sc[j0 + jj] = (float)(s[jj] * scale);
      mx = sc[j0 + jj] > mx ? sc[j0 + jj] : mx;
    }
  }
  double sum = softmax_exp(sc, L, mx);
  for (int d0 = 0; d0 < hd; d0 += 64) {
    __m512 acc[4];
    __mmask16 m[4];
    for (int u = 0; u < 4; u++) {
      int d = d0 + 16 * u, left = hd - d;
      m[u] = left >= 16 ? 0xffff : left > 0 ? (__mmask16)((1u << left) - 1) : 0;
      acc[u] = _mm512_setzero_ps();
    }
    for (int j = 0; j < L; j++) {
      __m512 p = _mm512_set1_ps((float)(sc[j] / sum));
      const float *v = V + (size_t)j * stride + d0;
      for (int u = 0; u < 4; u++) acc[u] = _mm512_fmadd_ps(p, _mm512_maskz_loadu_ps(m[u], v + 16 * u), acc[u]);
    }
    for (int u = 0; u < 4; u++) _mm512_mask_storeu_ps(o + d0 + 16 * u, m[u], acc[u]);
  }
}

/* The CPU model is read once at start-up by the compiler's runtime; this is a load and a test. */
static int have_avx512(void) { return __builtin_cpu_supports("avx512f"); }
#endif

void tfm_gemm(int ta, int tb, int M, int N, int K, const tfm_f *A, int lda, const tfm_f *B,
              int ldb, tfm_f beta, tfm_f *C, int ldc) {
  if (M <= 0 || N <= 0) return;
  pthread_once(&blas_once, blas_single_thread);
  enum CBLAS_TRANSPOSE TA = ta ? CblasTrans : CblasNoTrans, TB = tb ? CblasTrans : CblasNoTrans;
  int nt = omp_get_max_threads();
  double work = (double)M * N * K;
#if !defined(TFM_F64) && defined(__x86_64__)
  if (!ta && tb && M >= 2 && M <= TFM_GEMM_ROWS_MAX && K > 0 && have_avx512()) {
    /* Columns in blocks of 16 per thread (one block when the product is small). */
    int blk = nt <= 1 || work < GEMM_SPLIT_MIN ? N : (((N + nt - 1) / nt) + 15) & ~15;
#pragma omp parallel for schedule(static) if (blk < N)
    for (int s = 0; s < N; s += blk) gemm_rows(M, s, s + blk < N ? s + blk : N, K, A, lda, B, ldb, beta, C, ldc);
    return;
  }
#endif
  if (nt <= 1 || work < GEMM_SPLIT_MIN || K == 0) {
    tfm_gemm1(ta, tb, M, N, K, A, lda, B, ldb, beta, C, ldc);
    return;
  }
  /* Split the larger output dimension into nt blocks (multiples of 16 columns/rows). */
  int split_n = N >= M;
  int dim = split_n ? N : M;
  int blk = (dim + nt - 1) / nt;
  blk = (blk + 15) & ~15;
  int nblk = (dim + blk - 1) / blk;
#pragma omp parallel for schedule(static)
  for (int t = 0; t < nblk; t++) {
    int s = t * blk, n = dim - s < blk ? dim - s : blk;
    if (split_n) {
      const tfm_f *Bp = tb ? B + (size_t)s * ldb : B + s;
      GEMM(CblasRowMajor, TA, TB, M, n, K, 1, A, lda, Bp, ldb, beta, C + s, ldc);
    } else {
      const tfm_f *Ap = ta ? A + s : A + (size_t)s * lda;
      GEMM(CblasRowMajor, TA, TB, n, N, K, 1, Ap, lda, B, ldb, beta, C + (size_t)s * ldc, ldc);
    }
  }
}

void tfm_gemm1(int ta, int tb, int M, int N, int K, const tfm_f *A, int lda, const tfm_f *B,
               int ldb, tfm_f beta, tfm_f *C, int ldc) {
  if (M <= 0 || N <= 0) return;
  pthread_once(&blas_once, blas_single_thread);
  if (K == 0) {
    for (int i = 0; i < M; i++)
      for (int j = 0; j < N; j++) C[(size_t)i * ldc + j] = beta == 0 ? 0 : beta * C[(size_t)i * ldc + j];
    return;
  }
  GEMM(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, M, N, K, 1, A, lda,
       B, ldb, beta, C, ldc);
}

void tfm_gemm_ref(int ta, int tb, int M, int N, int K, const tfm_f *A, int lda, const tfm_f *B,
                  int ldb, tfm_f beta, tfm_f *C, int ldc) {
  for (int i = 0; i < M; i++)
    for (int j = 0; j < N; j++) {
      double s = 0;
      for (int k = 0; k < K; k++) {
        double a = ta ? A[(size_t)k * lda + i] : A[(size_t)i * lda + k];
        double b = tb ? B[(size_t)j * ldb + k] : B[(size_t)k * ldb + j];
        s += a * b;
      }
      tfm_f *c = &C[(size_t)i * ldc + j];
      *c = (tfm_f)(s + (beta == 0 ? 0 : beta * *c));
    }
}

void tfm_attend_row_ref(int L, int hd, double scale, const tfm_f *q, const tfm_f *K, const tfm_f *V, int stride,
                        double *sc, tfm_f *o) {
  double mx = -INFINITY;
  for (int j = 0; j < L; j++) {
    tfm_f s = tfm_dot(q, K + (size_t)j * stride, hd);
    sc[j] = (tfm_f)(s * scale);
    mx = sc[j] > mx ? sc[j] : mx;
  }
  double sum = softmax_exp(sc, L, mx);
  for (int d = 0; d < hd; d++) o[d] = 0;
  for (int j = 0; j < L; j++) {
    tfm_f pj = (tfm_f)(sc[j] / sum);
    const tfm_f *vj = V + (size_t)j * stride;
    for (int d = 0; d < hd; d++) o[d] += pj * vj[d];
  }
}

void tfm_attend_row(int L, int hd, double scale, const tfm_f *q, const tfm_f *K, const tfm_f *V, int stride,
                    double *sc, tfm_f *o) {
#if !defined(TFM_F64) && defined(__x86_64__)
  if (have_avx512()) {
    attend_row16(L, hd, scale, q, K, V, stride, sc, o);
    return;
  }
#endif
  tfm_attend_row_ref(L, hd, scale, q, K, V, stride, sc, o);
}

void tfm_rmsnorm(int N, int D, const tfm_f *x, const tfm_f *w, double eps, tfm_f *y, tfm_f *rinv) {
#pragma omp parallel for schedule(static)
  for (int n = 0; n < N; n++) {
    const tfm_f *xr = x + (size_t)n * D;
    tfm_f *yr = y + (size_t)n * D;
    double ss = 0;
    for (int j = 0; j < D; j++) ss += (double)xr[j] * xr[j];
    tfm_f r = (tfm_f)(1.0 / sqrt(ss / D + eps));
    rinv[n] = r;
    for (int j = 0; j < D; j++) yr[j] = xr[j] * r * w[j];
  }
}

/* y_j = x_j r w_j with r = (mean x^2 + eps)^-1/2:
 *   dx_j = r w_j dy_j - x_j r^3 / D * sum_k w_k dy_k x_k;   dw_j = sum_n dy_nj x_nj r_n. */
void tfm_rmsnorm_bwd(int N, int D, const tfm_f *x, const tfm_f *w, const tfm_f *rinv,
                     const tfm_f *dy, tfm_f *dx, tfm_f *dw) {
#pragma omp parallel for schedule(static)
  for (int n = 0; n < N; n++) {
    const tfm_f *xr = x + (size_t)n * D, *dyr = dy + (size_t)n * D;
    tfm_f *dxr = dx + (size_t)n * D;
    double dot = 0, r = rinv[n];
    for (int j = 0; j < D; j++) dot += (double)w[j] * dyr[j] * xr[j];
    double c = dot * r * r * r / D;
    for (int j = 0; j < D; j++) dxr[j] += (tfm_f)(r * w[j] * dyr[j] - xr[j] * c);
  }
  if (!dw) return;
#pragma omp parallel for schedule(static)
  for (int j0 = 0; j0 < D; j0 += 16) {
    double acc[16] = {0};
    int j1 = j0 + 16 < D ? j0 + 16 : D;
    for (int n = 0; n < N; n++)
      for (int j = j0; j < j1; j++) acc[j - j0] += (double)dy[(size_t)n * D + j] * x[(size_t)n * D + j] * rinv[n];
    for (int j = j0; j < j1; j++) dw[j] += (tfm_f)acc[j - j0];
  }
}

/* Hugging Face's rotate-half convention: dimension i < hd/2 pairs with i + hd/2.  The reference:
 * cos and sin computed for every row (tfm_rope_tab below reads them from a table instead). */
void tfm_rope(int N, int nh, int hd, tfm_f *x, const int *pos, const double *inv_freq, int dir) {
  int half = hd / 2;
#pragma omp parallel for schedule(static)
  for (int n = 0; n < N; n++) {
    double cs[512], sn[512];
    for (int i0 = 0; i0 < half; i0 += 512) {
      int i1 = i0 + 512 < half ? i0 + 512 : half;
      for (int i = i0; i < i1; i++) {
        double a = pos[n] * inv_freq[i];
        cs[i - i0] = cos(a);
        sn[i - i0] = dir * sin(a);
      }
      for (int h = 0; h < nh; h++) {
        tfm_f *r = x + ((size_t)n * nh + h) * hd;
        for (int i = i0; i < i1; i++) {
          double x1 = r[i], x2 = r[i + half], c = cs[i - i0], s = sn[i - i0];
          r[i] = (tfm_f)(x1 * c - x2 * s);
          r[i + half] = (tfm_f)(x2 * c + x1 * s);
        }
      }
    }
  }
}

double *tfm_rope_table(int P, int half, const double *inv_freq) {
  double *t = rc_malloc(((size_t)P * 2 * half + 1) * sizeof(double));
  if (!t) return NULL;
#pragma omp parallel for schedule(static)
  for (int p = 0; p < P; p++)
    for (int i = 0; i < half; i++) {
      double a = p * inv_freq[i];
      t[(size_t)p * 2 * half + i] = cos(a);
      t[(size_t)p * 2 * half + half + i] = sin(a);
    }
  return t;
}

/* The same arithmetic as tfm_rope on the same cos and sin, so the same bits. */
void tfm_rope_tab(int N, int nh, int hd, tfm_f *x, const int *pos, const double *tab, int dir) {
  int half = hd / 2;
#pragma omp parallel for schedule(static)
  for (int n = 0; n < N; n++) {
    const double *cs = tab + (size_t)pos[n] * 2 * half, *sn = cs + half;
    for (int h = 0; h < nh; h++) {
      tfm_f *r = x + ((size_t)n * nh + h) * hd;
      for (int i = 0; i < half; i++) {
        double x1 = r[i], x2 = r[i + half], c = cs[i], s = dir * sn[i];
        r[i] = (tfm_f)(x1 * c - x2 * s);
        r[i + half] = (tfm_f)(x2 * c + x1 * s);
      }
    }
  }
}

void tfm_add_bias(int N, int W, tfm_f *y, const tfm_f *b) {
#pragma omp parallel for schedule(static)
  for (int n = 0; n < N; n++)
    for (int j = 0; j < W; j++) y[(size_t)n * W + j] += b[j];
}

void tfm_bias_bwd(int N, int W, const tfm_f *dy, tfm_f *db) {
#pragma omp parallel for schedule(static)
  for (int j0 = 0; j0 < W; j0 += 16) {
    double acc[16] = {0};
    int j1 = j0 + 16 < W ? j0 + 16 : W;
    for (int n = 0; n < N; n++)
      for (int j = j0; j < j1; j++) acc[j - j0] += dy[(size_t)n * W + j];
    for (int j = j0; j < j1; j++) db[j] += (tfm_f)acc[j - j0];
  }
}

double tfm_row_stats(const tfm_f *z, int V, double *ent) {
  double mx = -INFINITY;
  for (int j = 0; j < V; j++) mx = z[j] > mx ? z[j] : mx;
  double s = 0, sz = 0;
  for (int j = 0; j < V; j++) {
    double e = tfm_exp(z[j] - mx);
    s += e;
    sz += e * (z[j] - mx);
  }
  double lse = mx + log(s);
  /* H = -sum p (z - lse) = lse - sum p z = log s - sum p (z - mx) */
  *ent = log(s) - sz / s;
  return lse;
}
