/* cg_interp.c — the reference interpreter (interp.c) as a backend of rein/backend.h: prepare
 * rebuilds the interpreter's Batch from the one batch type (its float64 values where the batch
 * has them), run is it_eval, fetch hands back its ItResult as an rt_result.
 */
#include <stdlib.h>
#include <string.h>

#include "cg_eval.h"

typedef struct {
  rt_backend base;
  const Plan *p;
  Batch *b;
  const double *params;
  ItResult r;
  bool done;
} InterpBackend;

static void ib_clear(InterpBackend *e) {
  if (e->done) it_result_free(&e->r);
  e->done = false;
  bt_free(e->b);
  e->b = NULL;
}

static void copy_values(double *dst, const double *v64, const float *v32, int64_t n) {
  for (int64_t i = 0; i < n; i++) dst[i] = v64 ? v64[i] : (double)v32[i];
}

static bool missing(const char *name, char *err, size_t errlen) {
  snprintf(err, errlen, "batch: the objective reads `%s`, which the batch lacks", name);
  return false;
}

static bool ib_prepare(rt_backend *be, const rt_batch *rb, const double *params, char *err, size_t errlen) {
  InterpBackend *e = (InterpBackend *)be;
  const IrGraph *g = e->p->g;
  ib_clear(e);
  if (rb->ngroups < 1 || rb->nseqs < rb->ngroups || rb->ntoks < 0 || !rb->grp_seq || !rb->seq_tok ||
      rb->ngroups > 1 << 30 || rb->nseqs > 1 << 30 || rb->ntoks > 1 << 30)
    return snprintf(err, errlen, "batch: malformed shape (%lld groups, %lld sequences, %lld tokens)",
                    (long long)rb->ngroups, (long long)rb->nseqs, (long long)rb->ntoks), false;
  int *nseq = ir_xcalloc((size_t)rb->ngroups, sizeof(int)), *lens = ir_xcalloc((size_t)rb->nseqs + 1, sizeof(int));
  for (int64_t k = 0; k < rb->ngroups; k++) nseq[k] = rb->grp_seq[k + 1] - rb->grp_seq[k];
  for (int64_t s = 0; s < rb->nseqs; s++) lens[s] = rb->seq_tok[s + 1] - rb->seq_tok[s];
  Level *lv = ir_xcalloc((size_t)g->nuinputs + 1, sizeof(Level));
  for (int k = 0; k < g->nuinputs; k++) lv[k] = g->uinputs[k].level;
  Batch *b = bt_alloc((int)rb->ngroups, nseq, lens, g->nuinputs, lv);
  free(nseq), free(lens), free(lv);
  bool used[IN_COUNT], used_uin[64 + 1], uses_uniform;
  bool *uu = g->nuinputs > 64 ? ir_xcalloc((size_t)g->nuinputs, sizeof(bool)) : used_uin;
  bt_uses(g, used, uu, &uses_uniform);
  bool ok = true;
  for (int k = 0; k < IN_COUNT && ok; k++) {
    if (k == IN_POS || k == IN_LEN) continue; /* from the shape (bt_alloc) */
    int64_t n = bi_inputs[k].level == LV_TOKEN ? b->ntoks : b->nseqs;
    if (rb->in64[k] || rb->in[k]) copy_values(b->in[k], rb->in64[k], rb->in[k], n);
    else if (used[k]) ok = missing(bi_inputs[k].name, err, errlen);
  }
  for (int k = 0; k < g->nuinputs && ok; k++) {
    int64_t n = g->uinputs[k].level == LV_TOKEN ? b->ntoks : b->nseqs;
    const double *v64 = rb->uin64 ? rb->uin64[k] : NULL;
    const float *v32 = rb->uin ? rb->uin[k] : NULL;
    if (v64 || v32) copy_values(b->uin[k], v64, v32, n);
    else if (uu[k]) ok = missing(g->uinputs[k].name, err, errlen);
  }
  if (uu != used_uin) free(uu);
  b->seed = rb->seed, b->step = rb->step;
  if (!ok) {
    bt_free(b);
    return false;
  }
  e->b = b;
  e->params = params;
  return true;
}

static bool ib_run(rt_backend *be, int64_t micro_groups, char *err, size_t errlen) {
  InterpBackend *e = (InterpBackend *)be;
  if (!e->b) return snprintf(err, errlen, "interp backend: run before prepare"), false;
  if (e->done) it_result_free(&e->r);
  it_eval(e->p, e->b, e->params, micro_groups > 1 << 30 ? 1 << 30 : (int)micro_groups, &e->r);
  e->done = true;
  return true;
}

static bool ib_fetch(rt_backend *be, rt_result *r, char *err, size_t errlen) {
  InterpBackend *e = (InterpBackend *)be;
  if (!e->done) return snprintf(err, errlen, "interp backend: fetch without a run"), false;
  r->loss = e->r.loss;
  r->metrics = e->r.metrics;
  for (int k = 0; k < 2; k++) r->grad[k] = e->r.grad[k], r->grad32[k] = NULL;
  r->nmetrics = e->r.nmetrics, r->ntoks = e->r.ntoks;
  return true;
}

static void ib_free(rt_backend *be) {
  InterpBackend *e = (InterpBackend *)be;
  ib_clear(e);
  free(e);
}

rt_backend *cg_interp_backend(const Plan *p) {
  InterpBackend *e = ir_xcalloc(1, sizeof *e);
  e->base = (rt_backend){"interp", ib_prepare, ib_run, ib_fetch, ib_free};
  e->p = p;
  return &e->base;
}
