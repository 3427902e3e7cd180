/* exec.h — the backend interface of the runtime (private): the step driver in objective.c calls
 * these; objective.c implements them for the CPU and exec_gpu.c for the GPU. */
#ifndef REIN_RT_EXEC_H
#define REIN_RT_EXEC_H

#include "rein/runtime.h"

enum { RT_BEGIN, RT_GROUPS, RT_MERGE, RT_END, RT_FINISH, RT_OUTPUTS };
_Static_assert(RT_BEGIN == REIN_ENTRY_BEGIN && RT_GROUPS == REIN_ENTRY_GROUPS && RT_MERGE == REIN_ENTRY_MERGE &&
                   RT_END == REIN_ENTRY_END && RT_FINISH == REIN_NUM_ENTRIES,
               "the executor's entries are the ABI's, in its order");

typedef struct RtOps RtOps;

struct rt_exec {
  const RtOps *ops;
  const rein_objective *d;
  int nthreads;
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
  /* loss, metrics and gradients into R (host memory) */
  bool (*fetch)(rt_exec *x, rt_result *r, char *err, size_t errlen);
  void (*free)(rt_exec *x);
};

/* exec_gpu.c: a GPU executor for D, or NULL with "no GPU: ..." when there is none. */
rt_exec *rt_gpu_new(const rein_objective *d, char *err, size_t errlen);

#endif
