/* rein/runtime.h — loading a compiled objective and running it on a batch, on the CPU or the GPU
 * (runtime/objective.c, runtime/exec_cpu.c, runtime/exec_gpu.c).  No LLVM here: an artifact is
 * a shared object made by `rein compile`, opened with dlopen; the GPU is reached through the CUDA
 * driver API, with libcuda.so.1 opened at run time, so the same program runs (and says "no GPU")
 * on a machine without one.
 *
 * Errors are returned as messages in a caller's buffer (ERR, ERRLEN); nothing here prints or
 * exits.
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

/* A batch in the ABI's layout (host memory). */
typedef struct {
  int64_t ngroups, nseqs, ntoks;
  const int32_t *grp_seq, *seq_tok;
  const float *in[REIN_NUM_INPUTS];
  const float *const *uin;
  uint64_t seed, step;
} rt_batch;

typedef enum { RT_CPU, RT_GPU } rt_backend;

/* The result of one evaluation: loss, metrics and the two gradients (host memory, owned by the
 * executor, valid until the next run). */
typedef struct {
  double loss;
  const double *metrics;  /* (nmetrics) */
  const float *grad[2];   /* (ntoks) d loss/d logp, d loss/d entropy */
} rt_result;

typedef struct rt_exec rt_exec;

/* An executor of O on BACKEND.  NTHREADS: CPU threads (0: OpenMP's default).  NULL with a message
 * when the backend is not available (for the GPU: "no GPU: ..."). */
rt_exec *rt_exec_new(rt_objective *o, rt_backend backend, int nthreads, char *err, size_t errlen);
void rt_exec_free(rt_exec *x);

/* Runs a whole step on B with PARAMS (one per descriptor param): the prologue, the micro-batch
 * passes on micro-batches of MICRO_GROUPS whole groups (0: one micro-batch), the final stage.
 * False with a message on failure. */
bool rt_run(rt_exec *x, const rt_batch *b, const double *params, int64_t micro_groups, rt_result *r,
            char *err, size_t errlen);

#endif
