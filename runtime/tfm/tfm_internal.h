/* tfm_internal.h — the transformer executor's kernels, shared by the training path
 * (tfm_train.c, tfm_head.c), the rollout path (tfm_generate.c) and the tests.
 *
 * Dynamic schedules are written `schedule(monotonic: dynamic, N)`: libomp 19 serves plain
 * (nonmonotonic) dynamic loops with its "static steal" algorithm, which can abort on an internal
 * assertion (kmp_dispatch.cpp, "vnew.p.ub * chunk <= trip") when the machine is loaded; it did
 * once in the test suite.  Each iteration is independent, so the schedule changes no result.
 *
 * Each kernel is plain C with OpenMP over independent rows, columns or (sequence, head) tasks,
 * so every output element is computed by one thread in a fixed order: results do not depend on
 * thread timing.  Matrix products go to OpenBLAS (serial library, split across OpenMP threads
 * by blocks of the output); tfm_gemm_ref is the naive reference the tests compare it with.
 */
#ifndef REIN_TFM_INTERNAL_H
#define REIN_TFM_INTERNAL_H

#include "rein/tfm.h"

#define TFM_ABSENT ((size_t)-1)

#include <math.h>
#include <stdio.h>

/* exp at the working precision: expf in the float32 build (about twice as fast as exp). */
#ifdef TFM_F64
#define tfm_exp(x) exp(x)
#else
#define tfm_exp(x) expf((float)(x))
#endif

/* sigmoid(g) and the SwiGLU activation silu(g) = g * sigmoid(g). */
static inline tfm_f tfm_sigmoid(tfm_f g) { return 1 / (1 + tfm_exp(-g)); }
static inline tfm_f tfm_silu(tfm_f g) { return g * tfm_sigmoid(g); }

/* C (M,N) = op(A) · op(B) + beta·C, row-major; ta/tb: 0 plain, 1 transposed.
 * op(A) is (M,K): A is (M,K) with lda, or (K,M) when ta.  op(B) is (K,N): B is (K,N), or (N,K)
 * when tb. */
void tfm_gemm(int ta, int tb, int M, int N, int K, const tfm_f *A, int lda, const tfm_f *B,
              int ldb, tfm_f beta, tfm_f *C, int ldc);
/* The same product as one single-threaded library call: for use inside parallel regions. */
void tfm_gemm1(int ta, int tb, int M, int N, int K, const tfm_f *A, int lda, const tfm_f *B,
               int ldb, tfm_f beta, tfm_f *C, int ldc);
void tfm_gemm_ref(int ta, int tb, int M, int N, int K, const tfm_f *A, int lda, const tfm_f *B,
                  int ldb, tfm_f beta, tfm_f *C, int ldc);

/* sum a[i]*b[i] over 16 interleaved partial sums added in a fixed tree: the compiler vectorizes
 * it without reassociating anything, and the result does not depend on alignment or threads. */
static inline tfm_f tfm_dot(const tfm_f *a, const tfm_f *b, int n) {
  tfm_f acc[16] = {0};
  int i = 0;
  for (; i + 16 <= n; i += 16)
    for (int k = 0; k < 16; k++) acc[k] += a[i + k] * b[i + k];
  for (; i < n; i++) acc[i & 15] += a[i] * b[i];
  for (int w = 8; w >= 1; w /= 2)
    for (int k = 0; k < w; k++) acc[k] += acc[k + w];
  return acc[0];
}

/* y = x / rms(x) * w per row; rinv[n] = 1/sqrt(mean(x^2) + eps).  x, y: (N,D); y may be x. */
void tfm_rmsnorm(int N, int D, const tfm_f *x, const tfm_f *w, double eps, tfm_f *y, tfm_f *rinv);
/* Backward of tfm_rmsnorm: dx += ..., dw += ... (dw may be NULL). */
void tfm_rmsnorm_bwd(int N, int D, const tfm_f *x, const tfm_f *w, const tfm_f *rinv,
                     const tfm_f *dy, tfm_f *dx, tfm_f *dw);
/* Rotary embedding in place on x (N, nh, hd) at positions pos[n]; dir = -1 applies the inverse
 * (transposed) rotation, which is the backward. */
void tfm_rope(int N, int nh, int hd, tfm_f *x, const int *pos, const double *inv_freq, int dir);
/* y[n,:] += b (N rows of width W). */
void tfm_add_bias(int N, int W, tfm_f *y, const tfm_f *b);
/* db += column sums of dy (N,W), in row order per column. */
void tfm_bias_bwd(int N, int W, const tfm_f *dy, tfm_f *db);

#include "rein/common.h"

/* Log-softmax statistics of one row of logits z (V): returns lse; *ent = entropy. */
double tfm_row_stats(const tfm_f *z, int V, double *ent);

#endif
