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

#include "rein/common.h"
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

/* Subnormal float32 numbers are zero in the executor's arithmetic (docs/executor.md,
 * "Subnormals"): tfm_forward, tfm_backward and tfm_generate run between tfm_fp_begin and
 * tfm_fp_end, which set the CPU's flush-to-zero and denormals-are-zero modes on every thread of
 * the OpenMP team (x86 MXCSR FTZ and DAZ, AArch64 FPCR FZ) and then restore each thread's own
 * mode.  Without it a trained model's saturated attention makes subnormal gradients, each a
 * microcode assist in the matrix products: the main job's backward took twice as long.
 * Nestable; call outside any parallel region, with the team size the kernels then use.  The
 * float64 build (TFM_F64), the tests' reference, keeps IEEE subnormals: both are no-ops there. */
void tfm_fp_begin(void);
void tfm_fp_end(void);

/* tfm_gemm's own kernel (gemm_rows, AVX-512 hosts) takes A B^T with 2 to this many rows of A. */
#define TFM_GEMM_ROWS_MAX 32

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

/* One query row attending to L keys and values (row j of each at K + j * stride, hd wide):
 * o = softmax(q K^T * scale) V, the scores by tfm_dot, the softmax's sum in double, o summed over
 * j in order.  sc: (L) scratch.  On an AVX-512 host a vector version with the same order of
 * operations (it fuses multiply-adds); tfm_attend_row_ref is the plain one. */
void tfm_attend_row(int L, int hd, double scale, const tfm_f *q, const tfm_f *K, const tfm_f *V, int stride,
                    double *sc, tfm_f *o);
void tfm_attend_row_ref(int L, int hd, double scale, const tfm_f *q, const tfm_f *K, const tfm_f *V, int stride,
                        double *sc, tfm_f *o);

/* y = x / rms(x) * w per row; rinv[n] = 1/sqrt(mean(x^2) + eps).  x, y: (N,D); y may be x. */
void tfm_rmsnorm(int N, int D, const tfm_f *x, const tfm_f *w, double eps, tfm_f *y, tfm_f *rinv);
/* Backward of tfm_rmsnorm: dx += ..., dw += ... (dw may be NULL). */
void tfm_rmsnorm_bwd(int N, int D, const tfm_f *x, const tfm_f *w, const tfm_f *rinv,
                     const tfm_f *dy, tfm_f *dx, tfm_f *dw);
/* Rotary embedding in place on x (N, nh, hd) at positions pos[n]; dir = -1 applies the inverse
 * (transposed) rotation, which is the backward. */
void tfm_rope(int N, int nh, int hd, tfm_f *x, const int *pos, const double *inv_freq, int dir);
/* The rotary table of positions 0..P-1: row p is cos(p·inv_freq[i]) for i < half, then
 * sin(p·inv_freq[i]) (P × 2·half doubles, malloc'd; NULL when out of memory). */
double *tfm_rope_table(int P, int half, const double *inv_freq);
/* tfm_rope with cos and sin read from tfm_rope_table's table (every pos[n] < its P): the same
 * results bit for bit, without the 2·half trigonometric calls per row. */
void tfm_rope_tab(int N, int nh, int hd, tfm_f *x, const int *pos, const double *tab, int dir);
/* y[n,:] += b (N rows of width W). */
void tfm_add_bias(int N, int W, tfm_f *y, const tfm_f *b);
/* db += column sums of dy (N,W), in row order per column. */
void tfm_bias_bwd(int N, int W, const tfm_f *dy, tfm_f *db);

/* Log-softmax statistics of one row of logits z (V): returns lse; *ent = entropy. */
double tfm_row_stats(const tfm_f *z, int V, double *ent);

#endif
