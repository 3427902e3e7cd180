/* ir_weigh.c — a reduction over the tokens of a value per sequence becomes one over the
 * sequences, each weighted by its length.
 *
 * red[L](x from token [if f]), with x and the filter f one value per sequence (fold turns
 * REINFORCE++-baseline's `where(pos >= 0, x, 0)` into x), visits len copies of x in each
 * sequence: a token loop that computes nothing per token.  Over the sequences instead, with
 * k = f and len > 0 (a sequence without tokens has no element, and its x may be NaN):
 *   count           N = sum[L](len if k)
 *   sum             S = sum[L](x * len if k)
 *   mean            S / N, 0 when N = 0
 *   var, std        M2 / (N - ddof) with M2 = sum[L]((x - S/N)^2 * len if k), 0 when N - ddof <= 0
 *                   (std its square root where positive, else 0, so that its gradient is 0
 *                   there, as std's own rule gives): the two-pass form, no cancellation
 *   max, min        max[L](x if k)
 *   logsumexp       logsumexp[L](x + log(len) if k)
 * for L = group or batch (over the tokens of one sequence, x is not worth a reduction).  Not an
 * exact identity: x * len rounds once where len additions round len times, both far inside the
 * 1e-5 the back ends are held to; so a pass of its own rather than part of fold.  The gradients
 * come out of autodiff as for any other program (d S / dx = len).
 */
#include "ir.h"

typedef struct {
  int len; /* input len in the new graph, made on first use */
} Weigh;

/* Can node N (a reduction) go over sequences?  ARG/FILTER: its remapped arguments in NG. */
static bool weighable(const IrGraph *ng, const IrNode *n, int x, int f) {
  if (ir_ops[n->op].cls != 'r' || n->elev != LV_TOKEN || (n->rlevel != LV_GROUP && n->rlevel != LV_BATCH)) return false;
  if (x >= 0 && ng->n[x].level != LV_SEQ) return false;
  if (f >= 0 && ng->n[f].level < LV_SEQ) return false;
  return x >= 0 || f >= 0; /* count[L]() alone is a shape, read from the batch */
}

static int weigh_map(void *ctx, IrGraph *ng, const IrGraph *g, int i, const int *remap) {
  Weigh *W = ctx;
  const IrNode *n = &g->n[i];
  int x = n->a[0] >= 0 ? remap[n->a[0]] : -1, f = n->a[1] >= 0 ? remap[n->a[1]] : -1;
  if (!weighable(ng, n, x, f)) return ir_copy(ng, n, remap);
  SrcRange r = n->rng;
  Level L = n->rlevel;
  if (W->len < 0) {
    IrNode len = {.op = IR_INPUT, .idx = IN_LEN, .level = LV_SEQ, .type = TY_FLOAT, .a = {-1, -1, -1}, .rng = r};
    W->len = ir_push(ng, &len);
  }
  int len = W->len, zero = ir_const(ng, 0, TY_FLOAT, r);
  int k = ir_elem(ng, IR_GT, len, zero, -1, r);
  if (f >= 0) k = ir_elem(ng, IR_AND, f, k, -1, r);
  int cnt = ir_reduce(ng, IR_SUM, len, k, L, LV_SEQ, 0, r);
  if (n->op == IR_COUNT) return cnt;
  int sum = ir_reduce(ng, IR_SUM, ir_elem(ng, IR_MUL, x, len, -1, r), k, L, LV_SEQ, 0, r);
  int some = ir_elem(ng, IR_GT, cnt, zero, -1, r);
  int mean = ir_elem(ng, IR_WHERE, some, ir_elem(ng, IR_DIV, sum, cnt, -1, r), zero, r);
  switch (n->op) {
  case IR_SUM: return sum;
  case IR_MEAN: return mean;
  case IR_RMAX:
  case IR_RMIN: return ir_reduce(ng, n->op, x, k, L, LV_SEQ, 0, r);
  case IR_LSE: return ir_reduce(ng, IR_LSE, ir_elem(ng, IR_ADD, x, ir_elem(ng, IR_LOG, len, -1, -1, r), -1, r), k, L,
                                LV_SEQ, 0, r);
  case IR_VAR:
  case IR_STD: {
    int d = ir_elem(ng, IR_SUB, x, mean, -1, r);
    int m2 = ir_reduce(ng, IR_SUM, ir_elem(ng, IR_MUL, ir_elem(ng, IR_MUL, d, d, -1, r), len, -1, r), k, L, LV_SEQ, 0, r);
    int dof = ir_elem(ng, IR_SUB, cnt, ir_const(ng, n->ddof, TY_FLOAT, r), -1, r);
    int var = ir_elem(ng, IR_WHERE, ir_elem(ng, IR_GT, dof, zero, -1, r), ir_elem(ng, IR_DIV, m2, dof, -1, r), zero, r);
    if (n->op == IR_VAR) return var;
    int pos = ir_elem(ng, IR_GT, var, zero, -1, r); /* std's rule: no derivative where it is 0 */
    return ir_elem(ng, IR_WHERE, pos, ir_elem(ng, IR_SQRT, var, -1, -1, r), zero, r);
  }
  case IR_COUNT: /* above */
  case IR_RANK:
  case IR_RANKLT:
  case IR_ARGMAX:
  case IR_ARGMIN:
  case IR_CUMSUM:
  case IR_RCUMSUM:
  REIN_LEAF_OPS(OPS_CASE)
  REIN_ELEM_OPS(OPS_CASE)
  case IR_NOPS: break;
  }
  return ir_copy(ng, n, remap); /* not reached: weighable() takes reductions only */
}

IrGraph *ir_weigh(IrGraph *g) {
  Weigh W = {-1};
  return ir_rebuild(g, weigh_map, &W);
}
