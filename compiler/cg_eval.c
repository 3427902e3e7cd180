/* cg_eval.c — evaluating a plan through the backend interface (rein/backend.h), for `rein eval`
 * and the back-end tests: the compiled code of a plan (compiled to a temporary shared object and
 * loaded with the runtime) on the CPU or the GPU, or the interpreter (cg_interp.c), chosen by
 * name; and the JSON reader's batch in the backends' one batch type.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cg_eval.h"

rt_objective *cg_compile_and_open(const Plan *p, const CgOptions *co, char *err, size_t errlen) {
  err[0] = 0;
  rt_objective *cached = cg_cache_open(p, co, err, errlen);
  if (cached || !strcmp(err, "compilation failed")) return cached;
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

rt_backend *cg_backend_new(const char *name, const Plan *p, rt_objective *o, int threads, char *err,
                           size_t errlen) {
  if (!strcmp(name, "interp")) return cg_interp_backend(p);
  bool gpu = !strcmp(name, "gpu");
  if (!gpu && strcmp(name, "cpu")) {
    snprintf(err, errlen, "unknown backend `%s` (interp, cpu or gpu)", name);
    return NULL;
  }
  if (!o) {
    snprintf(err, errlen, "the %s backend needs the compiled objective", name);
    return NULL;
  }
  return rt_backend_exec(o, gpu ? RT_GPU : RT_CPU, threads, err, errlen);
}

static float *to_f32(const double *v, int n) {
  float *r = ir_xcalloc((size_t)n + 1, sizeof(float));
  for (int i = 0; i < n; i++) r[i] = (float)v[i];
  return r;
}

void cg_batch_make(CgBatch *cb, const IrGraph *g, const Batch *b) {
  memset(cb, 0, sizeof *cb);
  rt_batch *r = &cb->rb;
  r->ngroups = b->ngroups, r->nseqs = b->nseqs, r->ntoks = b->ntoks;
  r->seed = b->seed, r->step = b->step;
  int32_t *gs = ir_xcalloc((size_t)b->ngroups + 1, sizeof(int32_t));
  int32_t *st = ir_xcalloc((size_t)b->nseqs + 1, sizeof(int32_t));
  for (int i = 0; i <= b->ngroups; i++) gs[i] = b->grp_seq[i];
  for (int i = 0; i <= b->nseqs; i++) st[i] = b->seq_tok[i];
  r->grp_seq = gs, r->seq_tok = st;
  for (int k = 0; k < IN_COUNT; k++) {
    if (!b->in[k]) continue;
    r->in[k] = to_f32(b->in[k], bi_inputs[k].level == LV_TOKEN ? b->ntoks : b->nseqs);
    r->in64[k] = b->in[k];
  }
  cb->nuin = b->nuin;
  float **u = ir_xcalloc((size_t)b->nuin + 1, sizeof(float *));
  for (int k = 0; k < b->nuin; k++)
    if (b->uin[k]) u[k] = to_f32(b->uin[k], g->uinputs[k].level == LV_TOKEN ? b->ntoks : b->nseqs);
  r->uin = (const float *const *)u;
  r->uin64 = (const double *const *)b->uin;
}

void cg_batch_free(CgBatch *cb) {
  rt_batch *r = &cb->rb;
  free((void *)r->grp_seq);
  free((void *)r->seq_tok);
  for (int k = 0; k < IN_COUNT; k++) free((void *)r->in[k]);
  for (int k = 0; k < cb->nuin; k++) free((void *)r->uin[k]);
  free((void *)r->uin);
  memset(cb, 0, sizeof *cb);
}

void cg_result_copy(const rt_result *res, ItResult *r) {
  memset(r, 0, sizeof *r);
  r->loss = res->loss;
  r->nmetrics = (int)res->nmetrics;
  r->ntoks = (int)res->ntoks;
  r->metrics = ir_xcalloc((size_t)res->nmetrics + 1, sizeof(double));
  for (int64_t m = 0; m < res->nmetrics; m++) r->metrics[m] = res->metrics[m];
  for (int k = 0; k < IR_NGRADS; k++) {
    r->grad[k] = ir_xcalloc((size_t)res->ntoks + 1, sizeof(double));
    for (int64_t t = 0; t < res->ntoks; t++) r->grad[k][t] = rt_grad(res, k, t);
  }
}

bool cg_eval(const Plan *p, const Batch *b, const double *params, int micro, const char *name, int threads,
             const CgOptions *co, ItResult *r, char *err, size_t errlen) {
  rt_objective *o = NULL;
  if (strcmp(name, "interp") && !(o = cg_compile_and_open(p, co, err, errlen))) return false;
  rt_backend *be = cg_backend_new(name, p, o, threads, err, errlen);
  bool ok = be != NULL;
  if (ok) {
    CgBatch cb;
    cg_batch_make(&cb, p->g, b);
    rt_result res;
    ok = be->prepare(be, &cb.rb, params, err, errlen) && be->run(be, micro, err, errlen) &&
         be->fetch(be, &res, err, errlen);
    if (ok) cg_result_copy(&res, r);
    cg_batch_free(&cb);
  }
  rt_backend_free(be);
  rt_close(o);
  return ok;
}
