/* cg_eval.h — evaluating a plan on a batch through the backend interface of rein/backend.h, for
 * `rein eval` and the back-end tests: the interpreter's backend (cg_interp.c), the compiled code
 * on the CPU or the GPU (cg_eval.c: compile to a temporary shared object, load it with the
 * runtime), and the batch of the JSON reader (batch.h) in the backends' one batch type.
 * Kept apart from cg.h, so the code generator's files do not see the interpreter or the runtime.
 */
#ifndef REIN_CG_EVAL_H
#define REIN_CG_EVAL_H

#include "batch.h"
#include "cg.h"
#include "interp.h"
#include "rein/backend.h"

/* The compiled objective of P with CO, opened: from the artifact cache (cg_cache.c) when it holds
 * it, else compiled (into the cache, or to a temporary shared object removed at once). */
rt_objective *cg_compile_and_open(const Plan *p, const CgOptions *co, char *err, size_t errlen);
/* cg_cache.c: P's artifact from the cache, compiled into it first when absent, stale or damaged;
 * NULL when there is no usable cache (or compilation failed: then ERR says so). */
rt_objective *cg_cache_open(const Plan *p, const CgOptions *co, char *err, size_t errlen);

/* The interpreter as a backend: it_eval of P in float64 on the batch's in64/uin64 values (the
 * float32 ones widened where absent).  P must outlive it. */
rt_backend *cg_interp_backend(const Plan *p);

/* The backend called NAME ("interp", "cpu" or "gpu") of P: O (a loaded artifact of P) runs the
 * compiled ones (NULL: only "interp" is possible); THREADS for the CPU (0: the default).  NULL
 * with a message for an unknown name or a missing device ("no GPU: ..."). */
rt_backend *cg_backend_new(const char *name, const Plan *p, rt_objective *o, int threads, char *err,
                           size_t errlen);

/* Batch B of graph G in the backends' layout: int32 offsets, float32 values rounded from B's,
 * and in64/uin64 pointing at B's float64 values (B must outlive it). */
typedef struct {
  rt_batch rb;
  int nuin;
} CgBatch;
void cg_batch_make(CgBatch *cb, const IrGraph *g, const Batch *b);
void cg_batch_free(CgBatch *cb);

/* A backend's result as an ItResult (fresh arrays; it_result_free). */
void cg_result_copy(const rt_result *res, ItResult *r);

/* `rein eval`: evaluates P on B with PARAMS on backend NAME (compiling P with CO for "cpu" and
 * "gpu"), MICRO groups per micro-batch (0: one), and fills R (it_result_free).  False with a
 * message in ERR. */
bool cg_eval(const Plan *p, const Batch *b, const double *params, int micro, const char *name, int threads,
             const CgOptions *co, ItResult *r, char *err, size_t errlen);

#endif
