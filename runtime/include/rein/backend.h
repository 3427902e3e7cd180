/* rein/backend.h — one interface over every way of evaluating an objective on a batch: the
 * float64 reference interpreter (the compiler's, compiler/cg_interp.c), the CPU executor and the
 * GPU executor (runtime/objective/backend.c).  `rein eval` and the back-end tests
 * (tests/unit/test_backend.c) run every backend through this one interface, with the one batch
 * type (rt_batch) and the one result type (rt_result) of rein/runtime.h.
 *
 *   prepare(be, b, params)   takes the batch and the params of the next run (read in place:
 *                            they must stay valid until fetch)
 *   run(be, micro_groups)    evaluates the whole step, in micro-batches of MICRO_GROUPS whole
 *                            groups (0: one micro-batch)
 *   fetch(be, r)             the result of the last run, owned by BE, valid until the next
 *                            prepare or free
 */
#ifndef REIN_BACKEND_H
#define REIN_BACKEND_H

#include "runtime.h"

typedef struct rt_backend rt_backend;

struct rt_backend {
  const char *name;  /* "interp", "cpu" or "gpu" */
  bool (*prepare)(rt_backend *be, const rt_batch *b, const double *params, char *err, size_t errlen);
  bool (*run)(rt_backend *be, int64_t micro_groups, char *err, size_t errlen);
  bool (*fetch)(rt_backend *be, rt_result *r, char *err, size_t errlen);
  void (*free)(rt_backend *be);
};

/* The backend of O's executor on DEVICE (rt_exec_new: NTHREADS, "no GPU: ..."); NULL with a
 * message when the device is not available.  O must outlive it. */
rt_backend *rt_backend_exec(rt_objective *o, rt_device device, int nthreads, char *err, size_t errlen);

/* Frees BE (NULL: nothing). */
void rt_backend_free(rt_backend *be);

#endif
