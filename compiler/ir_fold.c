/* ir_fold.c — constant folding and a few identities that hold exactly in IEEE arithmetic.
 *
 * An element-wise node whose arguments are all constants becomes a constant (evaluated with
 * ir_eval_elem, the interpreter's own scalar semantics).  Identities, all exact for every input
 * including Inf and NaN: x*1 = 1*x = x, x/1 = x, neg(neg(x)) = x, sg(sg(x)) = sg(x), dmul(0, x) = 0,
 * where(c, a, b) with a constant c = the chosen branch (when it has where's type), and sg of a
 * value that does not depend on logp/entropy is that value.  x+0 is kept: it turns -0 into +0.
 * pow with a constant exponent of 2, 1, 0 or -1 is x*x, x, 1 or 1/x: each the correctly rounded
 * x^y (IEEE pow's special cases included: pow(NaN, 0) = 1, pow(-0, -1) = -inf, pow(-inf, 2) =
 * inf), and one multiplication instead of exp(y log x), which costs a token loop its speed and,
 * in the compiled pow, up to 114 ulp.  x^2 is the common one (k2, OPMD's penalty, a variance) and
 * its gradient is 2 x^1.  A comparison of the token position with a constant that no position
 * can fail (pos >= 0) or pass (pos < 0) is that constant (pos_bound).
 */
#include <stdlib.h>

#include "ir.h"

typedef struct {
  bool *dep;  /* of the input graph */
} Fold;

static bool is_const(const IrGraph *g, int i, double *v) {
  if (i < 0 || g->n[i].op != IR_CONST) return false;
  if (v) *v = g->n[i].num;
  return true;
}

/* A comparison of the token position (input pos, never below 0) with a constant c <= 0 that holds
 * for every token (pos >= c, pos > c for c < 0, and the mirror images): 1; one that holds for none
 * (pos < c, pos <= c for c < 0): 0; else -1.  `where(pos >= 0, x, 0)`, which spreads a sequence's
 * value over its tokens (REINFORCE++-baseline), becomes x, a value per sequence. */
static int pos_bound(const IrGraph *g, IrOp op, const int *a) {
  double c;
  int k = a[0] >= 0 && g->n[a[0]].op == IR_INPUT && g->n[a[0]].idx == IN_POS ? 0 : 1;
  if (a[k] < 0 || g->n[a[k]].op != IR_INPUT || g->n[a[k]].idx != IN_POS || !is_const(g, a[1 - k], &c)) return -1;
  if (k == 1) op = op == IR_GE ? IR_LE : op == IR_GT ? IR_LT : op == IR_LT ? IR_GT : IR_GE; /* c OP pos */
  if (op == IR_GE && c <= 0) return 1;
  if (op == IR_GT && c < 0) return 1;
  if (op == IR_LT && c <= 0) return 0;
  if (op == IR_LE && c < 0) return 0;
  return -1;
}

static int fold_map(void *ctx, IrGraph *ng, const IrGraph *g, int i, const int *remap) {
  Fold *F = ctx;
  const IrNode *n = &g->n[i];
  if (ir_ops[n->op].cls != 'e') return ir_copy(ng, n, remap);
  int a[3] = {-1, -1, -1};
  double v[3] = {0, 0, 0};
  bool all = true;
  for (int k = 0; k < ir_ops[n->op].nargs; k++) {
    a[k] = remap[n->a[k]];
    if (!is_const(ng, a[k], &v[k])) all = false;
  }
  if (all) return ir_const(ng, ir_eval_elem(n->op, v[0], v[1], v[2]), n->type, n->rng);
  /* exact identities of a few ops (optional: an op needs none, so this is not a switch) */
  double c;
  IrOp op = n->op;
  if (op == IR_MUL) {
    if (is_const(ng, a[1], &c) && c == 1 && ng->n[a[0]].type == TY_FLOAT) return a[0];
    if (is_const(ng, a[0], &c) && c == 1 && ng->n[a[1]].type == TY_FLOAT) return a[1];
  } else if (op == IR_DIV) {
    if (is_const(ng, a[1], &c) && c == 1 && ng->n[a[0]].type == TY_FLOAT) return a[0];
  } else if (op == IR_NEG) {
    if (ng->n[a[0]].op == IR_NEG) return ng->n[a[0]].a[0];
  } else if (op == IR_SG) {
    if (ng->n[a[0]].op == IR_SG || !F->dep[n->a[0]]) return a[0];
  } else if (op == IR_DMUL) {
    if (is_const(ng, a[0], &c) && c == 0) return ir_const(ng, 0, TY_FLOAT, n->rng);
  } else if (op == IR_POW && is_const(ng, a[1], &c) && ng->n[a[0]].type == TY_FLOAT) {
    if (c == 2) return ir_elem(ng, IR_MUL, a[0], a[0], -1, n->rng);
    if (c == 1) return a[0];
    if (c == 0) return ir_const(ng, 1, TY_FLOAT, n->rng);
    if (c == -1) return ir_elem(ng, IR_DIV, ir_const(ng, 1, TY_FLOAT, n->rng), a[0], -1, n->rng);
  } else if (op == IR_GE || op == IR_GT || op == IR_LT || op == IR_LE) {
    int pos = pos_bound(ng, op, a);
    if (pos >= 0) return ir_const(ng, pos, TY_BOOL, n->rng);
  } else if (op == IR_WHERE) {
    if (is_const(ng, a[0], &c)) {
      int b = c != 0 ? a[1] : a[2];
      if (ng->n[b].type == n->type) return b;
    }
  }
  return ir_elem(ng, n->op, a[0], a[1], a[2], n->rng);
}

IrGraph *ir_fold(IrGraph *g) {
  Fold F = {ir_xcalloc((size_t)g->nn, sizeof(bool))};
  ir_depends(g, F.dep);
  g = ir_rebuild(g, fold_map, &F);
  free(F.dep);
  return g;
}
