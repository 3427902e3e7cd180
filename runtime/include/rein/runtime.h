/* rein/runtime.h — loading a compiled objective and running it on a batch, on the CPU or the GPU
 * (runtime/objective/objective.c, exec_gpu.c).  No LLVM here: an artifact is a shared object made
 * by `rein compile`, opened with dlopen; the GPU is reached through the CUDA driver API, with
 * libcuda.so.1 opened at run time, so the same program runs (and says "no GPU") on a machine
 * without one.
 *
 * A step runs in three calls that follow the stages of rein/objective.h, so that a trainer can
 * interleave them with its own forward and backward passes:
 *
 *   rt_begin(x, b, params)   the prologue, over the whole batch (every input but logp/entropy)
 *   rt_stat(x)               objectives with REIN_STATS only: the statistics stage, over the
 *                            whole batch, reading logp/entropy of every token
 *   rt_micro(x, g0, g1)      one micro-batch of whole groups: its logp/entropy are read, and on
 *                            return the gradients of its tokens are complete
 *   rt_skip(x, g1)           passes over groups another process computes (gradients only)
 *   rt_end(x, r)             finishes the batch-level reductions, the final stage: loss, metrics
 *
 * rt_run is the whole step built on the three.  The backend interface of rein/backend.h runs
 * every backend (the interpreter, the CPU and the GPU executors) through one prepare/run/fetch.
 *
 * Errors are returned as messages in a caller's buffer (ERR, ERRLEN); nothing here prints or
 * exits (but allocation failure, which exits with a message through rc_malloc).
 */
#ifndef REIN_RUNTIME_H
#define REIN_RUNTIME_H

#include <stdbool.h>
#include <stddef.h>

#include "objective.h"

typedef struct rt_objective rt_objective;

/* Opens artifact PATH and checks its descriptor (magic, ABI version, counts, entry points).
 * NULL with a message naming PATH on failure. */
rt_objective *rt_open(const char *path, char *err, size_t errlen);
/* The same for a descriptor linked into the program (a standalone trainer); NAME for messages. */
rt_objective *rt_wrap(const rein_objective *d, const char *name, char *err, size_t errlen);
void rt_close(rt_objective *o);
const rein_objective *rt_desc(const rt_objective *o);

/* A batch in the ABI's layout (host memory): the one batch type of every backend.
 * in64/uin64 are optional float64 copies of the same inputs for a float64 backend (the
 * interpreter; the executors ignore them): where one is NULL, the float32 values are used. */
typedef struct {
  int64_t ngroups, nseqs, ntoks;
  const int32_t *grp_seq, *seq_tok;
  const float *in[REIN_NUM_INPUTS];
  const float *const *uin;
  uint64_t seed, step;
  const double *in64[REIN_NUM_INPUTS];
  const double *const *uin64;
} rt_batch;

typedef enum { RT_CPU, RT_GPU } rt_device;

/* The result of one evaluation, the one result type of every backend: loss, metrics and the two
 * gradients in the precision the backend computed them: float32 from an executor (grad32; grad
 * NULL), float64 from the interpreter (grad; grad32 NULL).  Nothing is widened or copied: a step
 * of 16M tokens would spend more time widening its gradients than computing them.  rt_grad reads
 * either.  Host memory owned by whoever filled it, valid until its next run. */
typedef struct {
  double loss;
  const double *metrics;  /* (nmetrics) */
  const double *grad[2];  /* (ntoks) d loss/d logp, d loss/d entropy in float64, or NULL */
  const float *grad32[2]; /* (ntoks) the same in float32, or NULL */
  int64_t nmetrics, ntoks;
} rt_result;

/* Gradient K (0: d loss/d logp, 1: d loss/d entropy) of token T of R, whichever array R has. */
static inline double rt_grad(const rt_result *r, int k, int64_t t) {
  return r->grad[k] ? r->grad[k][t] : (double)r->grad32[k][t];
}

typedef struct rt_exec rt_exec;

/* An executor of O on DEVICE.  NTHREADS: CPU threads (0: OpenMP's default).  NULL with a message
 * when the device is not available (for the GPU: "no GPU: ..."). */
rt_exec *rt_exec_new(rt_objective *o, rt_device device, int nthreads, char *err, size_t errlen);
void rt_exec_free(rt_exec *x);

/* Starts a step on batch B with PARAMS (one per descriptor param) and runs the prologue.  B's
 * arrays are read in place until rt_end (on the GPU they are copied here, logp and entropy in
 * rt_micro): the caller keeps them alive and unchanged, except that the logp/entropy of a
 * micro-batch's tokens may be written any time before its rt_micro.  False with a message on a
 * malformed batch or a failure. */
bool rt_begin(rt_exec *x, const rt_batch *b, const double *params, char *err, size_t errlen);

/* The statistics stage (objectives whose flags have REIN_STATS: batch statistics of values the
 * loss sees through sg only, such as a self-normalised importance weight's denominator): reads
 * logp/entropy of every token of the batch, which the caller has written before the call (a
 * forward-only pass over every micro-batch: the values must be the ones each rt_micro will see
 * again).  Once per step, after rt_begin and before the first rt_micro; for an objective without
 * REIN_STATS it does nothing, so a caller may always call it.  False with a message on failure. */
bool rt_stat(rt_exec *x, char *err, size_t errlen);

/* Runs the micro-batch passes on groups [G0, G1) (0 <= G0 < G1 <= ngroups; micro-batches of one
 * step must be disjoint, cover the batch and come in group order), reading logp/entropy of
 * those groups' tokens from the batch.  On return GRAD[0], GRAD[1] (either may be NULL) point at
 * d loss/d logp and d loss/d entropy of the whole batch, float32, indexed by token, owned by X;
 * the entries of the tokens of groups [G0, G1) are final: no later stage changes them.
 *
 * This holds for every objective, including those whose flags have REIN_FINAL_SWEEP: the planner
 * rejects a gradient that depends on a value of the final stage (plan.h), so every gradient is
 * computed by micro passes.  What REIN_FINAL_SWEEP changes is the inputs: the final stage reads
 * logp/entropy of the whole batch again, so the values given to every micro-batch must stay in
 * the batch's arrays until rt_end (the trainer keeps the per-token floats of the whole batch,
 * not the activations).  False with a message on failure. */
bool rt_micro(rt_exec *x, int64_t g0, int64_t g1, const float *grad[2], char *err, size_t errlen);

/* Passes over groups [next, G1) without running them (next: the group after the last micro-batch,
 * 0 after rt_begin/rt_stat; next <= G1 <= ngroups), for a caller that computes the gradients of
 * some groups only — a rank of a data-parallel trainer, whose other groups are another rank's.
 * The gradients of the micro-batches that follow are exact (a group's gradients depend on the
 * prologue, the statistics stage and its own values only), but a step that skipped a group
 * has no loss: its rt_end fails; run the step again with every group for the loss and metrics.
 * False with a message when G1 is out of that range or no step is begun. */
bool rt_skip(rt_exec *x, int64_t g1, char *err, size_t errlen);

/* Ends the step: finishes the reductions accumulated over the micro-batches, runs the final
 * stage and fills R (loss, metrics and both float32 gradients of the whole batch, r->grad32 — the
 * arrays rt_micro returned, not a copy — valid until the next rt_begin).  Every group must have
 * been in one rt_micro.  False with a message on failure. */
bool rt_end(rt_exec *x, rt_result *r, char *err, size_t errlen);

/* The whole step: rt_begin, rt_stat, rt_micro on micro-batches of MICRO_GROUPS whole groups (0: one
 * micro-batch), rt_end. */
bool rt_run(rt_exec *x, const rt_batch *b, const double *params, int64_t micro_groups, rt_result *r,
            char *err, size_t errlen);

#endif
