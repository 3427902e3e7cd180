/* interp.c — the reference interpreter: float64, one node at a time, following the plan's stages
 * (prologue once, the micro-batch stage per micro-batch of whole groups, the final stage after
 * the last one).  It is the oracle every compiled kernel is compared with, so it is written to be
 * obviously right, not fast: each node's value is a full array over the elements of its level in
 * the current view (the whole batch, or one micro-batch).
 *
 * Reductions are computed from exact states (count, sum, two-pass mean and M2, max/min with the
 * first arg-extremum, max-shifted logsumexp); a batch-level reduction of a logp-dependent value is
 * accumulated across micro-batches by merging those states (Chan et al. for the variance) and
 * finished in the final stage.  Empty reductions follow the language: sum/count/mean/std/var/max/
 * min give 0, logsumexp gives -inf; std/var with count <= ddof give 0.  rank orders by value,
 * ties by position, NaN last.  The scans run sequentially along each sequence's tokens:
 * cumsum y_t = gamma*y_{t-1} + x_t from the first token, revcumsum y_t = x_t + gamma*y_{t+1} from
 * the last (gamma 1 when absent), rk_scan's order with a discount or on short sequences (its
 * undiscounted blocked scan differs by rounding only).
 */
#define _GNU_SOURCE /* qsort_r */
#include "interp.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
  int off[LV_COUNT];  /* first global element of each level in the view */
  int cnt[LV_COUNT];  /* number of elements of each level */
} View;

typedef struct {  /* the exact state of a reduction over a set of elements */
  double n, sum, mean, m2, max, min, lse_m, lse_s;
} RState;

typedef struct {
  const Plan *p;
  const IrGraph *g;
  const Batch *b;
  const double *params;
  double **val;     /* per node: values over the view it was computed in */
  View *vw;         /* per node: that view */
  RState *acc;      /* per node: accumulated state of a partial batch reduction */
  double *buf;      /* scratch: gathered values */
  int *ibuf;
} It;

static View view_of(const Batch *b, int g0, int g1) {
  View v;
  int s0 = b->grp_seq[g0], s1 = b->grp_seq[g1];
  v.off[LV_TOKEN] = b->seq_tok[s0];
  v.cnt[LV_TOKEN] = b->seq_tok[s1] - b->seq_tok[s0];
  v.off[LV_SEQ] = s0;
  v.cnt[LV_SEQ] = s1 - s0;
  v.off[LV_GROUP] = g0;
  v.cnt[LV_GROUP] = g1 - g0;
  v.off[LV_BATCH] = 0;
  v.cnt[LV_BATCH] = 1;
  return v;
}

/* The global element of level TO containing global element E of level FROM (TO >= FROM). */
static int up(const Batch *b, int e, Level from, Level to) {
  if (to == LV_BATCH) return 0;
  if (from == LV_TOKEN && to >= LV_SEQ) e = b->tok_seq[e], from = LV_SEQ;
  if (from == LV_SEQ && to == LV_GROUP) e = b->seq_grp[e];
  return e;
}

/* The value of node A at global element E of level L (A's level is L or coarser). */
static double get(It *it, int a, Level l, int e) {
  Level la = it->g->n[a].level;
  int k = up(it->b, e, l, la) - it->vw[a].off[la];
  return it->val[a][k];
}

/* Range [*lo, *hi) of global elements of level E inside global element R of level RL, within V. */
static void span(const Batch *b, const View *v, Level rl, int r, Level E, int *lo, int *hi) {
  if (rl == LV_BATCH) {
    *lo = v->off[E];
    *hi = v->off[E] + v->cnt[E];
    return;
  }
  int s0, s1;
  if (rl == LV_GROUP) s0 = b->grp_seq[r], s1 = b->grp_seq[r + 1];
  else s0 = r, s1 = r + 1; /* rl == LV_SEQ */
  if (E == LV_SEQ) *lo = s0, *hi = s1;
  else *lo = b->seq_tok[s0], *hi = b->seq_tok[s1];
}

static RState rstate(const double *x, int n) {
  RState s = {0, 0, 0, 0, 0, 0, -INFINITY, 0};
  s.n = n;
  if (n == 0) return s;
  s.max = s.min = x[0];
  for (int i = 0; i < n; i++) {
    s.sum += x[i];
    if (x[i] > s.max) s.max = x[i];
    if (x[i] < s.min) s.min = x[i];
  }
  s.mean = s.sum / n;
  for (int i = 0; i < n; i++) s.m2 += (x[i] - s.mean) * (x[i] - s.mean);
  s.lse_m = s.max;
  if (isinf(s.max) && s.max > 0) s.lse_s = 1;
  else if (isinf(s.max)) s.lse_s = 0;
  else
    for (int i = 0; i < n; i++) s.lse_s += exp(x[i] - s.max);
  return s;
}

static RState rmerge(RState a, RState b) {
  if (b.n == 0) return a;
  if (a.n == 0) return b;
  RState s;
  s.n = a.n + b.n;
  s.sum = a.sum + b.sum;
  double d = b.mean - a.mean;
  s.mean = a.mean + d * b.n / s.n;
  s.m2 = a.m2 + b.m2 + d * d * a.n * b.n / s.n;
  s.max = b.max > a.max ? b.max : a.max;
  s.min = b.min < a.min ? b.min : a.min;
  s.lse_m = b.lse_m > a.lse_m ? b.lse_m : a.lse_m;
  if (isinf(s.lse_m)) {
    s.lse_s = s.lse_m > 0 ? 1 : 0;
  } else {
    s.lse_s = (a.lse_s ? a.lse_s * exp(a.lse_m - s.lse_m) : 0) + (b.lse_s ? b.lse_s * exp(b.lse_m - s.lse_m) : 0);
  }
  return s;
}

static double rfinish(IrOp op, int ddof, RState s) {
  double k = s.n - ddof;
  switch (op) {
  case IR_SUM: return s.sum;
  case IR_COUNT: return s.n;
  case IR_MEAN: return s.n > 0 ? s.sum / s.n : 0;
  case IR_RMAX: return s.n > 0 ? s.max : 0;
  case IR_RMIN: return s.n > 0 ? s.min : 0;
  case IR_VAR: return k > 0 ? s.m2 / k : 0;
  case IR_STD: return k > 0 ? sqrt(s.m2 / k) : 0;
  case IR_LSE: /* a NaN element makes lse_s NaN, and the result NaN */
    if (s.n == 0) return -INFINITY;
    return isinf(s.lse_m) ? s.lse_m : s.lse_m + log(s.lse_s);
  case IR_RANK: /* not reductions of a state */
  case IR_RANKLT:
  case IR_CUMSUM:
  case IR_RCUMSUM:
  case IR_ARGMAX:
  case IR_ARGMIN:
  REIN_LEAF_OPS(OPS_CASE)
  REIN_ELEM_OPS(OPS_CASE)
  case IR_NOPS: break;
  }
  return NAN;
}

/* Gathers the (filtered) values of reduction node N over global elements [lo, hi) of its element
 * level into it->buf; it->ibuf gets their element indices.  Returns how many. */
static int gather(It *it, const IrNode *n, int lo, int hi) {
  int k = 0;
  for (int e = lo; e < hi; e++) {
    if (n->a[1] >= 0 && get(it, n->a[1], n->elev, e) == 0) continue;
    it->buf[k] = n->a[0] >= 0 ? get(it, n->a[0], n->elev, e) : 1.0;
    it->ibuf[k++] = e;
  }
  return k;
}

static void set_view(It *it, int i, const View *v) {
  Level l = it->g->n[i].level;
  free(it->val[i]);
  it->val[i] = ir_xcalloc((size_t)v->cnt[l], sizeof(double));
  it->vw[i] = *v;
}

static int cmp_rank(const void *pa, const void *pb, void *ctx) {
  const double *x = ctx;
  int a = *(const int *)pa, b = *(const int *)pb;
  double xa = x[a], xb = x[b];
  bool na = isnan(xa), nb = isnan(xb);
  if (na != nb) return na ? 1 : -1;
  if (!na && xa != xb) return xa < xb ? -1 : 1;
  return a < b ? -1 : a > b;
}

static void eval_sibling(It *it, int i, const View *v) {
  const IrNode *n = &it->g->n[i];
  double *out = it->val[i];
  for (int r = v->off[n->rlevel]; r < v->off[n->rlevel] + v->cnt[n->rlevel]; r++) {
    int lo, hi;
    span(it->b, v, n->rlevel, r, n->elev, &lo, &hi);
    int base = v->off[n->elev];
    if (OPS_IS_SCAN(n->op)) {
      double gamma = n->a[1] >= 0 ? get(it, n->a[1], n->rlevel, r) : 1.0, y = 0;
      bool fwd = n->op == IR_CUMSUM;
      for (int j = 0; j < hi - lo; j++) {
        int e = fwd ? lo + j : hi - 1 - j;
        y = j == 0 ? get(it, n->a[0], n->elev, e) : gamma * y + get(it, n->a[0], n->elev, e);
        out[e - base] = y;
      }
    } else if (n->op == IR_RANK || n->op == IR_RANKLT) { /* ranklt: the rank compared with k */
      int m = hi - lo;
      double k = n->op == IR_RANKLT ? get(it, n->a[1], n->rlevel, r) : 0;
      for (int e = lo; e < hi; e++) it->buf[e - lo] = get(it, n->a[0], n->elev, e);
      for (int j = 0; j < m; j++) it->ibuf[j] = j;
      qsort_r(it->ibuf, (size_t)m, sizeof(int), cmp_rank, it->buf);
      for (int j = 0; j < m; j++) out[lo + it->ibuf[j] - base] = n->op == IR_RANK ? j : j < k;
    } else {
      int k = gather(it, n, lo, hi);
      for (int e = lo; e < hi; e++) out[e - base] = 0;
      int best = -1;
      for (int j = 0; j < k; j++) {
        bool better = best < 0 || (n->op == IR_ARGMAX ? it->buf[j] > it->buf[best] : it->buf[j] < it->buf[best]);
        if (better) best = j;
      }
      if (best >= 0) out[it->ibuf[best] - base] = 1;
    }
  }
}

static double leaf_value(It *it, const IrNode *n, int e) {
  const Batch *b = it->b;
  switch (n->op) {
  case IR_CONST: return n->num;
  case IR_PARAM: return it->params[n->idx];
  case IR_INPUT: return b->in[n->idx][e];
  case IR_UINPUT: return b->uin[n->idx][e];
  case IR_UNIFORM: {
    int grp = b->seq_grp[e];
    return rein_uniform(b->seed, b->step, (uint64_t)grp, (uint64_t)(e - b->grp_seq[grp]));
  }
  REIN_ELEM_OPS(OPS_CASE) /* not leaves */
  REIN_RED_OPS(OPS_CASE)
  case IR_NOPS: break;
  }
  return NAN;
}

/* Evaluates node I over view V (for a partial batch reduction: merges its state into acc). */
static void eval_node(It *it, int i, const View *v) {
  const IrNode *n = &it->g->n[i];
  char cls = ir_ops[n->op].cls;
  if (it->p->partial[i]) {
    int lo = v->off[n->elev], hi = lo + v->cnt[n->elev];
    int k = gather(it, n, lo, hi);
    it->acc[i] = rmerge(it->acc[i], rstate(it->buf, k));
    return;
  }
  set_view(it, i, v);
  Level l = n->level;
  double *out = it->val[i];
  int lo = v->off[l], hi = lo + v->cnt[l];
  switch (cls) {
  case 'l':
    for (int e = lo; e < hi; e++) out[e - lo] = leaf_value(it, n, e);
    break;
  case 'e':
    for (int e = lo; e < hi; e++) {
      double x[3] = {0, 0, 0};
      for (int k = 0; k < ir_ops[n->op].nargs; k++) x[k] = get(it, n->a[k], l, e);
      out[e - lo] = ir_eval_elem(n->op, x[0], x[1], x[2]);
    }
    break;
  case 'r':
    for (int r = lo; r < hi; r++) {
      int elo, ehi;
      span(it->b, v, n->rlevel, r, n->elev, &elo, &ehi);
      int k = gather(it, n, elo, ehi);
      out[r - lo] = rfinish(n->op, n->ddof, rstate(it->buf, k));
    }
    break;
  default: eval_sibling(it, i, v); break;
  }
}

/* The passes of stage S over view V.  A prologue value that the micro passes compute again
 * (Plan.in_micro: the compiled code's saving of memory traffic) keeps its whole-batch array here:
 * a micro view would replace it with a micro-batch's slice, which a final sweep reads past. */
static void run_stage(It *it, PlStage s, const View *v) {
  for (int q = 0; q < it->p->npasses; q++) {
    const PlPass *ps = &it->p->passes[q];
    if (ps->stage != s) continue;
    for (int j = 0; j < ps->nnodes; j++)
      if (!(s == PL_MICRO && it->p->stage[ps->nodes[j]] == PL_PRO)) eval_node(it, ps->nodes[j], v);
  }
}

void it_eval(const Plan *p, const Batch *b, const double *params, int micro_groups, ItResult *r) {
  const IrGraph *g = p->g;
  It it = {p, g, b, params, ir_xcalloc((size_t)g->nn, sizeof(double *)), ir_xcalloc((size_t)g->nn, sizeof(View)),
           ir_xcalloc((size_t)g->nn, sizeof(RState)), NULL, NULL};
  size_t big = (size_t)(b->ntoks > b->nseqs ? b->ntoks : b->nseqs) + 1;
  it.buf = ir_xcalloc(big, sizeof(double));
  it.ibuf = ir_xcalloc(big, sizeof(int));
  View whole = view_of(b, 0, b->ngroups);

  /* data: inputs, params, constants, shapes; then the prologue */
  for (int i = 0; i < g->nn; i++)
    if (pl_is_data(&g->n[i])) eval_node(&it, i, &whole);
  run_stage(&it, PL_PRO, &whole);
  /* statistics: over the whole batch, whose logp/entropy the interpreter has from the start */
  run_stage(&it, PL_STAT, &whole);

  /* micro-batches */
  memset(r, 0, sizeof *r);
  r->ntoks = b->ntoks;
  for (int k = 0; k < IR_NGRADS; k++) r->grad[k] = ir_xcalloc((size_t)b->ntoks, sizeof(double));
  int step = micro_groups > 0 ? micro_groups : b->ngroups;
  for (int g0 = 0; g0 < b->ngroups; g0 += step) {
    int g1 = g0 + step < b->ngroups ? g0 + step : b->ngroups;
    View mv = view_of(b, g0, g1);
    run_stage(&it, PL_MICRO, &mv);
    for (int k = 0; k < IR_NGRADS; k++) {
      if (g->grad[k] < 0) continue;
      for (int t = mv.off[LV_TOKEN]; t < mv.off[LV_TOKEN] + mv.cnt[LV_TOKEN]; t++)
        r->grad[k][t] = get(&it, g->grad[k], LV_TOKEN, t);
    }
  }

  /* final: finish the partial reductions, then the final passes over the whole batch */
  for (int i = 0; i < g->nn; i++) {
    if (!p->partial[i]) continue;
    set_view(&it, i, &whole);
    it.val[i][0] = rfinish(g->n[i].op, g->n[i].ddof, it.acc[i]);
  }
  run_stage(&it, PL_FINAL, &whole);

  r->loss = get(&it, g->loss, LV_BATCH, 0);
  r->nmetrics = g->nmetrics;
  r->metrics = ir_xcalloc((size_t)g->nmetrics, sizeof(double));
  for (int m = 0; m < g->nmetrics; m++) r->metrics[m] = get(&it, g->metrics[m].node, LV_BATCH, 0);

  for (int i = 0; i < g->nn; i++) free(it.val[i]);
  free(it.val);
  free(it.vw);
  free(it.acc);
  free(it.buf);
  free(it.ibuf);
}

void it_result_free(ItResult *r) {
  free(r->metrics);
  for (int k = 0; k < IR_NGRADS; k++) free(r->grad[k]);
  memset(r, 0, sizeof *r);
}
