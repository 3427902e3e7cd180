/* cg_eval.c — evaluating a plan with its compiled code, for `rein eval --backend cpu|gpu` and the
 * back-end tests: compile to a temporary shared object, load it with the runtime, convert the
 * batch to the ABI's layout (int32 offsets, float32 values) and hand back an ItResult, so the
 * result prints and compares exactly like the interpreter's.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cg.h"
#include "rein/runtime.h"

rt_objective *cg_compile_and_open(const Plan *p, const CgOptions *co, char *err, size_t errlen) {
  const char *tmpdir = getenv("TMPDIR");
  char dir[4096];
  snprintf(dir, sizeof dir, "%s/rein-XXXXXX", tmpdir && *tmpdir ? tmpdir : "/tmp");
  if (!mkdtemp(dir)) {
    snprintf(err, errlen, "cannot create a temporary directory %s: %s", dir, strerror(errno));
    return NULL;
  }
  char so[4200];
  snprintf(so, sizeof so, "%s/objective.so", dir);
  rt_objective *o = NULL;
  if (cg_compile(p, so, co, stderr)) o = rt_open(so, err, errlen);
  else snprintf(err, errlen, "compilation failed");
  unlink(so);
  rmdir(dir);
  return o;
}

/* The batch B in the ABI's layout; every array is a fresh allocation (free_rt_batch). */
static rt_batch to_rt_batch(const IrGraph *g, const Batch *b) {
  rt_batch r = {b->ngroups, b->nseqs, b->ntoks, NULL, NULL, {0}, NULL, b->seed, b->step};
  int32_t *gs = ir_xcalloc((size_t)b->ngroups + 1, sizeof(int32_t));
  int32_t *st = ir_xcalloc((size_t)b->nseqs + 1, sizeof(int32_t));
  for (int i = 0; i <= b->ngroups; i++) gs[i] = b->grp_seq[i];
  for (int i = 0; i <= b->nseqs; i++) st[i] = b->seq_tok[i];
  r.grp_seq = gs, r.seq_tok = st;
  for (int k = 0; k < IN_COUNT; k++) {
    if (!b->in[k]) continue;
    int n = bi_inputs[k].level == LV_TOKEN ? b->ntoks : b->nseqs;
    float *v = ir_xcalloc((size_t)n + 1, sizeof(float));
    for (int i = 0; i < n; i++) v[i] = (float)b->in[k][i];
    r.in[k] = v;
  }
  float **u = ir_xcalloc((size_t)b->nuin + 1, sizeof(float *));
  for (int k = 0; k < b->nuin; k++) {
    if (!b->uin[k]) continue;
    int n = g->uinputs[k].level == LV_TOKEN ? b->ntoks : b->nseqs;
    u[k] = ir_xcalloc((size_t)n + 1, sizeof(float));
    for (int i = 0; i < n; i++) u[k][i] = (float)b->uin[k][i];
  }
  r.uin = (const float *const *)u;
  return r;
}

static void free_rt_batch(rt_batch *r, int nuin) {
  free((void *)r->grp_seq);
  free((void *)r->seq_tok);
  for (int k = 0; k < IN_COUNT; k++) free((void *)r->in[k]);
  for (int k = 0; k < nuin; k++) free((void *)r->uin[k]);
  free((void *)r->uin);
}

bool cg_run_loaded(rt_objective *o, const IrGraph *g, const Batch *b, const double *params, int micro, bool gpu,
                   int threads, ItResult *r, char *err, size_t errlen) {
  rt_exec *x = rt_exec_new(o, gpu ? RT_GPU : RT_CPU, threads, err, errlen);
  if (!x) return false;
  rt_batch rb = to_rt_batch(g, b);
  rt_result res;
  bool ok = rt_run(x, &rb, params, micro, &res, err, errlen);
  if (ok) {
    memset(r, 0, sizeof *r);
    r->loss = res.loss;
    r->nmetrics = g->nmetrics;
    r->ntoks = b->ntoks;
    r->metrics = ir_xcalloc((size_t)g->nmetrics + 1, sizeof(double));
    for (int m = 0; m < g->nmetrics; m++) r->metrics[m] = res.metrics[m];
    for (int k = 0; k < IR_NGRADS; k++) {
      r->grad[k] = ir_xcalloc((size_t)b->ntoks + 1, sizeof(double));
      for (int t = 0; t < b->ntoks; t++) r->grad[k][t] = res.grad[k][t];
    }
  }
  free_rt_batch(&rb, b->nuin);
  rt_exec_free(x);
  return ok;
}

bool cg_eval(const Plan *p, const Batch *b, const double *params, int micro, bool gpu, int threads,
             const CgOptions *co, ItResult *r, char *err, size_t errlen) {
  rt_objective *o = cg_compile_and_open(p, co, err, errlen);
  if (!o) return false;
  bool ok = cg_run_loaded(o, p->g, b, params, micro, gpu, threads, r, err, errlen);
  rt_close(o);
  return ok;
}
