/* exec.h — the executors' interface (private): the step driver in objective.c (rt_begin,
 * rt_micro, rt_end) calls these; objective.c implements them for the CPU and exec_gpu.c for the
 * GPU.  The public backend interface over whole steps is rein/backend.h (backend.c). */
#ifndef REIN_RT_EXEC_H
#define REIN_RT_EXEC_H

#include "rein/runtime.h"

enum { RT_BEGIN, RT_GROUPS, RT_MERGE, RT_END, RT_FINISH, RT_OUTPUTS };
_Static_assert((int)RT_BEGIN == (int)REIN_ENTRY_BEGIN && (int)RT_GROUPS == (int)REIN_ENTRY_GROUPS &&
                   (int)RT_MERGE == (int)REIN_ENTRY_MERGE && (int)RT_END == (int)REIN_ENTRY_END &&
                   (int)RT_FINISH == (int)REIN_NUM_ENTRIES,
               "the executor's entries are the ABI's, in its order");

typedef struct RtOps RtOps;

struct rt_exec {
  const RtOps *ops;
  const rein_objective *d;
  int nthreads;
  /* the step in progress (the driver's): its batch, the next group a micro-batch must start at
   * (-1: no step begun), the gradients of rt_micro (rt_end hands them back) */
  rt_batch b;
  int64_t next_g;
  bool stats_done;  /* rt_stat ran in this step (objectives with REIN_STATS) */
  bool skipped;     /* rt_skip passed over groups in this step: rt_end refuses it */
  const float *grad[2];
};

struct RtOps {
  /* buffers for batch B (copied to the device for the GPU), states zeroed */
  bool (*prepare)(rt_exec *x, const rt_batch *b, const double *params, char *err, size_t errlen);
  /* the view (ctx->g0, g1) for begin/end functions */
  void (*view)(rt_exec *x, int64_t g0, int64_t g1);
  /* RT_BEGIN/RT_END of pass PASS, or RT_FINISH/RT_OUTPUTS (PASS -1) */
  bool (*scalar)(rt_exec *x, int pass, int entry);
  /* RT_GROUPS/RT_MERGE of pass PASS over groups [g0, g1) */
  bool (*range)(rt_exec *x, int pass, int entry, int64_t g0, int64_t g1);
  /* RT_GROUPS of the N passes PASSES, in that order, over groups [g0, g1), where no pass reads
   * what an earlier one merges or ends: the CPU runs every pass on a chunk of groups before the
   * next chunk, so a later pass finds the chunk's tokens still in the cache; the GPU runs them
   * pass by pass */
  bool (*sweep)(rt_exec *x, const int *passes, int n, int64_t g0, int64_t g1);
  /* makes logp/entropy of tokens [t0, t1) of the batch visible to the passes (the GPU copies them) */
  bool (*inputs)(rt_exec *x, int64_t t0, int64_t t1, char *err, size_t errlen);
  /* makes the gradients of tokens [t0, t1) visible in host memory; GRAD: the two float32 arrays
   * of the whole batch */
  bool (*grads)(rt_exec *x, int64_t t0, int64_t t1, const float *grad[2], char *err, size_t errlen);
  /* loss and metrics into R (host memory); the driver fills the gradients */
  bool (*fetch)(rt_exec *x, rt_result *r, char *err, size_t errlen);
  void (*free)(rt_exec *x);
};

/* exec_gpu.c: a GPU executor for D, or NULL with "no GPU: ..." when there is none. */
rt_exec *rt_gpu_new(const rein_objective *d, char *err, size_t errlen);

#endif
