/* backend.c — the CPU and GPU executors as backends of rein/backend.h: prepare keeps the batch,
 * run is rt_run, fetch hands back its result.  (The interpreter's backend is in the compiler,
 * which owns the IR it needs: compiler/cg_interp.c.)
 */
#include <stdio.h>
#include <stdlib.h>

#include "rein/backend.h"
#include "rein/common.h"

typedef struct {
  rt_backend base;
  rt_exec *x;
  rt_batch b;
  const double *params;
  rt_result r;
  bool ready, done;
} ExecBackend;

static bool eb_prepare(rt_backend *be, const rt_batch *b, const double *params, char *err, size_t errlen) {
  ExecBackend *e = (ExecBackend *)be;
  e->b = *b;
  e->params = params;
  e->ready = true, e->done = false;
  (void)err, (void)errlen;
  return true;
}

static bool eb_run(rt_backend *be, int64_t micro_groups, char *err, size_t errlen) {
  ExecBackend *e = (ExecBackend *)be;
  if (!e->ready) return snprintf(err, errlen, "%s backend: run before prepare", be->name), false;
  e->done = rt_run(e->x, &e->b, e->params, micro_groups, &e->r, err, errlen);
  return e->done;
}

static bool eb_fetch(rt_backend *be, rt_result *r, char *err, size_t errlen) {
  ExecBackend *e = (ExecBackend *)be;
  if (!e->done) return snprintf(err, errlen, "%s backend: fetch without a run", be->name), false;
  *r = e->r;
  return true;
}

static void eb_free(rt_backend *be) {
  ExecBackend *e = (ExecBackend *)be;
  rt_exec_free(e->x);
  free(e);
}

rt_backend *rt_backend_exec(rt_objective *o, rt_device device, int nthreads, char *err, size_t errlen) {
  rt_exec *x = rt_exec_new(o, device, nthreads, err, errlen);
  if (!x) return NULL;
  ExecBackend *e = rc_calloc(1, sizeof *e);
  e->base = (rt_backend){device == RT_GPU ? "gpu" : "cpu", eb_prepare, eb_run, eb_fetch, eb_free};
  e->x = x;
  return &e->base;
}

void rt_backend_free(rt_backend *be) {
  if (be) be->free(be);
}
