/* rk_lib.h — the kernel support library (rk_lib.c): the scalar routines that compiled kernels
 * call, written once in C and compiled at build time to LLVM bitcode for the host and for
 * nvptx64 (compiler/CMakeLists.txt).  The code generator links that bitcode into every module,
 * internalizes it and lets the optimizer inline it, so a kernel ends up with no calls at all on
 * the CPU (the math is vectorizable straight-line code) and libdevice's routines on the GPU.
 *
 * Reduction states are 3 doubles {n, a, b} (the same layout as the runtime's records and states,
 * rein/objective.h):
 *   sum, mean      {n, sum, -}          count       {n, -, -}
 *   max, min       {n, extremum, -}     var, std    {n, mean, M2}  (Welford; Chan to merge)
 *   logsumexp      {n, max, sum of exp(x - max)}
 * A state with n == 0 is empty whatever a and b hold; merging with it is the identity.
 */
#ifndef REIN_RK_LIB_H
#define REIN_RK_LIB_H

#include <stdint.h>

/* The reductions (the `state` column of REIN_RED_OPS in ops.h names one per IR reduction; RK_NONE
 * for rank, argmax and argmin, which are not reductions of a state).  Compiled code passes these
 * numbers to rk_acc, rk_merge, rk_finish and rk_block_reduce. */
typedef enum { RK_SUM, RK_MEAN, RK_MAX, RK_MIN, RK_VAR, RK_STD, RK_LSE, RK_COUNT, RK_NONE } RkOp;

double rk_exp(double x);
double rk_log(double x);
double rk_log1p(double x);
double rk_expm1(double x);
double rk_tanh(double x);
double rk_pow(double x, double y);
double rk_sigmoid(double x);
double rk_softplus(double x);
double rk_uniform(uint64_t seed, uint64_t step, uint64_t group, uint64_t seq);
#ifndef __NVPTX__
/* Host only: float32 versions for the token loops' float arithmetic (CgOptions.f64 false); the
 * other functions are called in float64 there (their arguments widened, results rounded). */
float rk_expf(float x);
/* rk_expf for an argument the code generator knows to lie in [-86, 88] (or to be NaN): no clamp,
 * and 2^k in one step; there it returns rk_expf's bits (test_rk checks). */
float rk_expf_near(float x);
float rk_logf(float x);
float rk_sigmoidf(float x);
#endif

/* Adds element X to state ST when KEEP (max/min/var/std/logsumexp; sum/mean/count are emitted
 * inline so the loop vectorizer sees a plain reduction). */
void rk_acc(int op, double *st, double x, int keep);
/* ST := ST merged with O (O's elements come after ST's). */
void rk_merge(int op, double *st, const double *o);
/* The value of the reduction from its state (the language's rules for empty reductions). */
double rk_finish(int op, int ddof, const double *st);

/* OUT[i] := the rank of X[i] among X[0..n) (0-based; ties by position, -0 equal to +0, NaN last),
 * using S1 and S2 (8n bytes each) as scratch; X is overwritten.  A stable merge sort of indices
 * for short arrays (and on the GPU); a least-significant-digit radix sort of order-preserving
 * integer keys above RK_RANK_RADIX_MIN on the host, whose cost grows as n rather than n log n
 * and whose reads are sequential (the merge sort's indirect reads of X miss the cache on every
 * comparison once X outgrows it: 16M tokens took 2.6 s to 40 s).  Both give the same ranks:
 * test_rk.c checks each against a plain qsort. */
void rk_rank(double *x, int64_t n, double *out, void *s1, void *s2);
#define RK_RANK_RADIX_MIN 4096
/* OUT[i] := 1 where the rank of X[i] (as rk_rank's) is below K, 0 elsewhere: the K smallest,
 * ties to the earlier element, NaN last (topk lowers to it).  Same scratch S1, S2, and COPY (room
 * for N) where rk_rank needs X as its own (COPY may be X itself); X is not written otherwise, so
 * the host code passes a stored argument's array in place (cg.c, sibling).
 * From RK_RANK_SELECT_MIN elements on the host, when 0 < K < N, a select finds the key of
 * rank ceil(K)-1, in one sweep when a sample of X brackets it (rank_select), and a second sweep
 * marks the elements (the 65536 counts of a 16-bit digit fit in S2); otherwise the ranks of
 * rk_rank, compared with K. */
void rk_rank_lt(const double *x, int64_t n, double k, double *out, double *copy, void *s1, void *s2);
#define RK_RANK_SELECT_MIN 65536
#ifndef __NVPTX__
/* Host only: rk_rank_lt's mask as a threshold.  THR := {0, -, -} when no rank is below K, {1, -, -}
 * when every rank is, else {2, T, P}: T (the bits of a uint64 in a double) the key of the element
 * of rank ceil(K)-1 and P its position, so that rank(X[i]) < K exactly where rk_rank_key(X[i]) < T
 * or (rk_rank_key(X[i]) == T and i <= P).  No array of N marks is written: the compiled code
 * compares each element with T where it reads the mask (cg_value.c, ranklt_thr).  OUT (room for
 * N) and COPY (room for N, not X) are scratch, with S1, S2; X is not written.  rk_rank_key is
 * the order the ranks use: a key per double, -0 equal to +0, NaN last. */
void rk_rank_thr(const double *x, int64_t n, double k, double *thr, double *out, double *copy, void *s1, void *s2);
uint64_t rk_rank_key(double x);
#endif
/* OUT[i] := 1 for the first element with KEEP[i] != 0 holding the largest (DIR > 0) or smallest
 * (DIR < 0) X among those kept, 0 elsewhere. */
void rk_argext(const double *x, const double *keep, int64_t n, int dir, double *out);

/* The scans over X[0..n): DIR > 0 (cumsum) OUT[t] := sum_{s<=t} GAMMA^(t-s) X[s], computed as
 * OUT[0] = X[0], OUT[t] = GAMMA*OUT[t-1] + X[t]; DIR < 0 (revcumsum) the mirror image from
 * X[n-1] down (OUT may be X).  That is the interpreter's order, and rk_scan's on the GPU, with a
 * discount, and below RK_SCAN_CHAINS_MIN elements.  Otherwise, on the host, the undiscounted scan
 * runs in RK_SCAN_CHAINS blocks whose chains of adds are interleaved, each block then adding the
 * total of the blocks before it (after it, for revcumsum): one dependent add a token was the
 * limit of REINFORCE++'s passes.  The order is fixed by N alone; test_rk checks the result
 * against a long double scan within (n - 1) eps sum |x|. */
void rk_scan(const double *x, int64_t n, double gamma, int32_t dir, double *out);
#define RK_SCAN_CHAINS 4
#define RK_SCAN_CHAINS_MIN 64

#ifdef __NVPTX__
/* GPU only: merges the states ST of every thread of the block (a fixed tree: warp shuffles, then
 * the warps' results through shared memory) and gives the total to every thread.  Call from
 * uniform control flow with a power-of-two block size of at most 1024. */
void rk_block_reduce(int op, double *st);
#endif

#endif
