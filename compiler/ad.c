/* ad.c — reverse-mode automatic differentiation with respect to logp and entropy.
 *
 * The adjoints are ordinary IR nodes appended after the primal graph, so the gradient is
 * printed, verified, folded, CSE'd and planned like everything else, and every back end that can
 * run the primal ops can run the gradient.  One sweep from the loss down to node 0: adj[i] is the
 * node holding d loss / d value(i), at i's level or coarser (a coarser adjoint is the same for all
 * of i's elements).
 *
 * Levels.  A contribution is computed in the element space of the consumer (its level, or a
 * reduction's element level).  When that space is finer than the argument (a coarser value was
 * broadcast into it), the contribution is summed back to the argument's level: the adjoint of a
 * broadcast is a sum.  This is how GSPO's seq value reduced from tokens and used again at token
 * level gets its gradient.
 *
 * Exact zeros.  Every chain product is dmul(g, d) = (g == 0 ? 0 : g*d), so where a `where`,
 * min/max or filter cut the gradient off it stays exactly zero even if the local derivative of
 * the unselected branch is Inf or NaN (log of a negative number, exp overflow).
 *
 * Rules (g is the adjoint of the node, n its value):
 *   neg -g; add g,g; sub g,-g; mul g*y, g*x; div g/y, -g*n/y; pow g*y*x^(y-1), g*(n==0 ? 0 : n*log x)
 *   exp g*n; log g/x; log1p g/(1+x); expm1 g*(n+1); sqrt g*0.5/n; abs g*sign(x); sigmoid
 *   g*n*(1-n); softplus g*sigmoid(x); tanh g*(1-n*n)
 *   min/max: all of g to the first argument on ties (the language's definition of min/max)
 *   where(c,a,b): where(c,g,0), where(c,0,g)
 *   sum: where(f,g,0); mean: where(f, g/count, 0); max/min: g at the first arg-extremum
 *   var: where(f, g*2(x-m)/max(k,1), 0) with m the mean and k = count - ddof
 *   std: where(f and n > 0, g*(x-m)/(max(k,1)*n), 0)   (std has no derivative at 0: we give 0)
 *   logsumexp: where(f, g*exp(x-n), 0)
 *   cumsum[seq](x, gamma): revcumsum[seq](g, gamma); revcumsum[seq](x, gamma): cumsum[seq](g, gamma)
 *     (y_t = sum_{s<=t} gamma^(t-s) x_s has dy_t/dx_s = gamma^(t-s): the adjoint of x_s is
 *     sum_{t>=s} gamma^(t-s) g_t, the reverse scan of g; the discount gets no gradient)
 *   sg, sign, floor, ceil, comparisons, logic, count, rank, argmax/argmin, uniform: no derivative.
 */
#include "ad.h"

#include <stdio.h>
#include <stdlib.h>

typedef struct {
  IrGraph *g;
  int *adj;
  bool *diff;
  SrcRange rng;  /* of the primal node being differentiated: every adjoint node points there */
} Ad;

static int C(Ad *A, double v) { return ir_const(A->g, v, TY_FLOAT, A->rng); }
static int E(Ad *A, IrOp op, int x, int y, int z) { return ir_elem(A->g, op, x, y, z, A->rng); }
static int D(Ad *A, int g, int d) { return E(A, IR_DMUL, g, d, -1); }
static int keep_if(Ad *A, int c, int g) { return c < 0 ? g : E(A, IR_WHERE, c, g, C(A, 0)); }
static Level lv(Ad *A, int i) { return A->g->n[i].level; }

/* Adds contribution C, computed in the element space SPACE, to the adjoint of node ARG. */
static void acc(Ad *A, int arg, int c, Level space) {
  if (arg < 0 || !A->diff[arg]) return;
  if (space < lv(A, arg)) c = ir_reduce(A->g, IR_SUM, c, -1, lv(A, arg), space, 0, A->rng);
  A->adj[arg] = A->adj[arg] < 0 ? c : E(A, IR_ADD, A->adj[arg], c, -1);
}

static _Noreturn void no_rule(IrOp op) {
  fprintf(stderr, "rein: internal error: autodiff has no rule for `%s`\n", ir_ops[op].name);
  abort();
}

static void elem_rule(Ad *A, int i, int g) {
  IrNode n = A->g->n[i];
  int x = n.a[0], y = n.a[1], z = n.a[2];
  Level s = n.level;
  switch (n.op) {
  case IR_NEG: acc(A, x, E(A, IR_NEG, g, -1, -1), s); break;
  case IR_ADD: acc(A, x, g, s); acc(A, y, g, s); break;
  case IR_SUB:
    acc(A, x, g, s);
    if (A->diff[y]) acc(A, y, E(A, IR_NEG, g, -1, -1), s);
    break;
  case IR_MUL:
    if (x == y) { /* x*x (ir_fold's x^2): 2x g, one term instead of x g + x g */
      if (A->diff[x]) acc(A, x, D(A, g, E(A, IR_MUL, C(A, 2), x, -1)), s);
      break;
    }
    if (A->diff[x]) acc(A, x, D(A, g, y), s);
    if (A->diff[y]) acc(A, y, D(A, g, x), s);
    break;
  case IR_DIV:
    if (A->diff[x]) acc(A, x, D(A, g, E(A, IR_DIV, C(A, 1), y, -1)), s);
    if (A->diff[y]) acc(A, y, D(A, g, E(A, IR_NEG, E(A, IR_DIV, i, y, -1), -1, -1)), s);
    break;
  case IR_POW:
    if (A->diff[x]) {
      int p = E(A, IR_POW, x, E(A, IR_SUB, y, C(A, 1), -1), -1);
      acc(A, x, D(A, g, E(A, IR_MUL, y, p, -1)), s);
    }
    if (A->diff[y]) {
      int nz = E(A, IR_EQ, i, C(A, 0), -1);
      int d = E(A, IR_WHERE, nz, C(A, 0), E(A, IR_MUL, i, E(A, IR_LOG, x, -1, -1), -1));
      acc(A, y, D(A, g, d), s);
    }
    break;
  case IR_EXP: acc(A, x, D(A, g, i), s); break;
  case IR_LOG: acc(A, x, D(A, g, E(A, IR_DIV, C(A, 1), x, -1)), s); break;
  case IR_LOG1P:
    acc(A, x, D(A, g, E(A, IR_DIV, C(A, 1), E(A, IR_ADD, C(A, 1), x, -1), -1)), s);
    break;
  case IR_EXPM1: acc(A, x, D(A, g, E(A, IR_ADD, i, C(A, 1), -1)), s); break;
  case IR_SQRT: acc(A, x, D(A, g, E(A, IR_DIV, C(A, 0.5), i, -1)), s); break;
  case IR_ABS: acc(A, x, D(A, g, E(A, IR_SIGN, x, -1, -1)), s); break;
  case IR_SIGMOID:
    acc(A, x, D(A, g, E(A, IR_MUL, i, E(A, IR_SUB, C(A, 1), i, -1), -1)), s);
    break;
  case IR_SOFTPLUS: acc(A, x, D(A, g, E(A, IR_SIGMOID, x, -1, -1)), s); break;
  case IR_TANH:
    acc(A, x, D(A, g, E(A, IR_SUB, C(A, 1), E(A, IR_MUL, i, i, -1), -1)), s);
    break;
  case IR_MIN:
  case IR_MAX: {
    /* the second argument is chosen only when strictly better (ties go to the first) */
    int sel = E(A, n.op == IR_MIN ? IR_LT : IR_GT, y, x, -1);
    if (A->diff[x]) acc(A, x, E(A, IR_WHERE, sel, C(A, 0), g), s);
    if (A->diff[y]) acc(A, y, E(A, IR_WHERE, sel, g, C(A, 0)), s);
    break;
  }
  case IR_WHERE:
    if (A->diff[y]) acc(A, y, E(A, IR_WHERE, x, g, C(A, 0)), s);
    if (A->diff[z]) acc(A, z, E(A, IR_WHERE, x, C(A, 0), g), s);
    break;
  /* No derivative.  The sweep never gets here: ir_differentiable marks none of these (their
   * `diff` is false in ops.h).  A differentiable op without a rule above would silently get a zero
   * gradient, so it stops the compiler instead. */
  case IR_NOT: case IR_SIGN: case IR_FLOOR: case IR_CEIL: case IR_SG: case IR_LT: case IR_LE: case IR_GT: case IR_GE:
  case IR_EQ: case IR_NE: case IR_AND: case IR_OR: case IR_DMUL:
  REIN_LEAF_OPS(OPS_CASE)
  REIN_RED_OPS(OPS_CASE)
  case IR_NOPS:
    no_rule(n.op);
  }
}

static void reduce_rule(Ad *A, int i, int g) {
  IrNode n = A->g->n[i];
  int x = n.a[0], f = n.a[1];
  Level R = n.rlevel, s = n.elev;
  int c = -1;
  switch (n.op) {
  case IR_SUM: c = keep_if(A, f, g); break;
  case IR_MEAN: {
    int cnt = ir_reduce(A->g, IR_COUNT, -1, f, R, s, 0, A->rng);
    c = keep_if(A, f, D(A, g, E(A, IR_DIV, C(A, 1), cnt, -1)));
    break;
  }
  case IR_RMAX:
  case IR_RMIN: {
    int first = ir_reduce(A->g, n.op == IR_RMAX ? IR_ARGMAX : IR_ARGMIN, x, f, R, s, 0, A->rng);
    c = E(A, IR_WHERE, first, g, C(A, 0));
    break;
  }
  case IR_VAR:
  case IR_STD: {
    int m = ir_reduce(A->g, IR_MEAN, x, f, R, s, 0, A->rng);
    int cnt = ir_reduce(A->g, IR_COUNT, -1, f, R, s, 0, A->rng);
    int k = E(A, IR_MAX, E(A, IR_SUB, cnt, C(A, n.ddof), -1), C(A, 1), -1);
    int dx = E(A, IR_SUB, x, m, -1);
    if (n.op == IR_VAR) {
      c = keep_if(A, f, D(A, g, E(A, IR_DIV, E(A, IR_MUL, C(A, 2), dx, -1), k, -1)));
    } else {
      int pos = E(A, IR_GT, i, C(A, 0), -1);
      int cond = f < 0 ? pos : E(A, IR_AND, f, pos, -1);
      c = keep_if(A, cond, D(A, g, E(A, IR_DIV, dx, E(A, IR_MUL, k, i, -1), -1)));
    }
    break;
  }
  case IR_LSE:
    c = keep_if(A, f, D(A, g, E(A, IR_EXP, E(A, IR_SUB, x, i, -1), -1, -1)));
    break;
  case IR_COUNT: /* no derivative: never reached, as in elem_rule */
  case IR_CUMSUM: /* sibling ops: scan_rule */
  case IR_RCUMSUM:
  case IR_RANK:
  case IR_RANKLT:
  case IR_ARGMAX:
  case IR_ARGMIN:
  REIN_LEAF_OPS(OPS_CASE)
  REIN_ELEM_OPS(OPS_CASE)
  case IR_NOPS:
    no_rule(n.op);
  }
  acc(A, x, c, s);
}

/* The scans: the adjoint of x is the opposite scan of the adjoint, with the same discount.  G may
 * be coarser than the tokens (a seq or batch adjoint): the scan reads it broadcast. */
static void scan_rule(Ad *A, int i, int g) {
  IrNode n = A->g->n[i];
  IrOp rev = n.op == IR_CUMSUM ? IR_RCUMSUM : IR_CUMSUM;
  acc(A, n.a[0], ir_reduce(A->g, rev, g, n.a[1], LV_SEQ, LV_TOKEN, 0, A->rng), LV_TOKEN);
}

IrGraph *ad_differentiate(IrGraph *g) {
  int n0 = g->nn;
  Ad A = {g, ir_xcalloc((size_t)n0, sizeof(int)), ir_xcalloc((size_t)n0, sizeof(bool)), {{0, 0}, {0, 0}}};
  ir_differentiable(g, A.diff);
  for (int i = 0; i < n0; i++) A.adj[i] = -1;
  for (int k = 0; k < IR_NGRADS; k++) g->grad[k] = -1;
  if (g->loss >= 0 && A.diff[g->loss]) {
    A.rng = g->n[g->loss].rng;
    A.adj[g->loss] = C(&A, 1);
  }
  for (int i = n0 - 1; i >= 0; i--) {
    if (A.adj[i] < 0 || !A.diff[i]) continue;
    A.rng = g->n[i].rng;
    char cls = ir_ops[g->n[i].op].cls;
    if (cls == 'e') elem_rule(&A, i, A.adj[i]);
    else if (cls == 'r') reduce_rule(&A, i, A.adj[i]);
    else if (OPS_IS_SCAN(g->n[i].op)) scan_rule(&A, i, A.adj[i]);
  }
  for (int i = 0; i < n0; i++) {
    const IrNode *n = &g->n[i];
    if (n->op != IR_INPUT || A.adj[i] < 0) continue;
    int k = n->idx == IN_LOGP ? IR_GRAD_LOGP : n->idx == IN_ENTROPY ? IR_GRAD_ENTROPY : -1;
    if (k < 0) continue;
    g->grad[k] = g->grad[k] < 0 ? A.adj[i] : E(&A, IR_ADD, g->grad[k], A.adj[i], -1);
  }
  free(A.adj);
  free(A.diff);
  return g;
}
