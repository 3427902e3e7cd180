/* ir_lower.c — lowering: the checked syntax tree of a program becomes a graph.
 *
 * Each let is lowered once (lets are shared, not copied, in the checked tree), inlined fn bodies
 * are lowered where they were inlined (CSE merges the copies), clamp(x, lo, hi) becomes
 * min(max(x, lo), hi) (the language defines it so), count[L](c) becomes a count whose filter is c,
 * and count[L]() a count over tokens (L = seq) or sequences (L = group or batch); keepgrad(x) is x;
 * median, quantile, topk and topfrac become rank, counts and filtered sums (lower_quantile,
 * lower_top).  Operators,
 * functions and reductions become the IR op their table row names (bi_ops, bi_funcs, bi_reds).  Every node
 * keeps the source range of the expression it came from, so later errors point at the program.
 */
#include <math.h>
#include <stdlib.h>

#include "ir.h"
#include "rein/common.h"

typedef struct {
  IrGraph *g;
  int *let_node;   /* by Decl.index: node of a lowered let, -1 if not yet */
  int *decl_slot;  /* by Decl.index: param or input table index */
  int trainer_slot[REIN_NUM_TRAINER_CONSTS]; /* param index of each trainer constant read */
} Lower;

static int leaf(IrGraph *g, IrOp op, int idx, Level lv, Type t, SrcRange rng) {
  IrNode n = {.op = op, .level = lv, .type = t, .a = {-1, -1, -1}, .idx = idx, .rng = rng};
  return ir_push(g, &n);
}

/* The subexpressions of E that lowering visits before E's own nodes, in evaluation order (at most
 * three); for a let not yet lowered, its body. */
static int children(const Lower *L, const Expr *e, const Expr *ch[3]) {
  switch (e->kind) {
  case AST_LET: ch[0] = e->decl->checked; return L->let_node[e->decl->index] < 0;
  case AST_UNARY: ch[0] = e->args[0]; return 1;
  case AST_BINARY: ch[0] = e->args[0], ch[1] = e->args[1]; return 2;
  case AST_FUNC:
    if (e->id == FN_UNIFORM) return 0;
    for (int i = 0; i < e->nargs; i++) ch[i] = e->args[i];
    return e->nargs;
  case AST_REDUCE:
    if (!e->args[0]) return 0;               /* count[L]() */
    ch[0] = e->args[0], ch[1] = e->args[1];
    return e->id == RED_COUNT || !e->args[1] ? 1 : 2;
  case AST_NUM:
  case AST_BOOL:
  case AST_INPUT:
  case AST_USERINPUT:
  case AST_PARAM:
  case AST_TRAINER:
  case AST_NAME:
  case AST_CALL:
  case AST_ERROR: return 0;
  }
  abort();
}

/* The order statistics, from rank[L] (ties by position, NaN last) and filtered sums.
 * quantile[L](x, q): with n elements and h = (n-1)q, lo = floor(h), w = h - lo, and x_(k) the
 * element of rank k (sum[L](x, rank == k): exactly one element), numpy's 'linear' interpolation
 * x_(lo) + w*(x_(lo+1) - x_(lo)), or x_(lo) alone when w = 0 (so an infinite x_(lo) stays
 * clear of inf - inf); 0 over an empty unit.  The gradient reaches x_(lo) with weight 1-w
 * and x_(lo+1) with weight w through the sums' filters. */
static int lower_quantile(IrGraph *g, int x, int q, Level R, SrcRange rng) {
  Level E = g->n[x].level;
  int n = ir_reduce(g, IR_COUNT, -1, -1, R, E, 0, rng);
  int h = ir_elem(g, IR_MUL, ir_elem(g, IR_SUB, n, ir_const(g, 1, TY_FLOAT, rng), -1, rng), q, -1, rng);
  int lo = ir_elem(g, IR_FLOOR, h, -1, -1, rng);
  int w = ir_elem(g, IR_SUB, h, lo, -1, rng);
  int rank = ir_reduce(g, IR_RANK, x, -1, R, E, 0, rng);
  int xlo = ir_reduce(g, IR_SUM, x, ir_elem(g, IR_EQ, rank, lo, -1, rng), R, E, 0, rng);
  int hi = ir_elem(g, IR_ADD, lo, ir_const(g, 1, TY_FLOAT, rng), -1, rng);
  int xhi = ir_reduce(g, IR_SUM, x, ir_elem(g, IR_EQ, rank, hi, -1, rng), R, E, 0, rng);
  int lerp = ir_elem(g, IR_ADD, xlo, ir_elem(g, IR_MUL, w, ir_elem(g, IR_SUB, xhi, xlo, -1, rng), -1, rng), -1, rng);
  int frac = ir_elem(g, IR_GT, w, ir_const(g, 0, TY_FLOAT, rng), -1, rng);
  return ir_elem(g, IR_WHERE, frac, lerp, xlo, rng);
}

/* topk[L](x, k): ranklt[L](-x, k), i.e. rank[L](-x) < k, the k largest with ties to the earlier element (-x keeps the
 * ties and NaN ranks last either way).  topfrac[L](x, p): k = ceil(p*n - 1e-9) of the n
 * elements (the 1e-9 absorbs the rounding of p*n: 0.28*25 is 7.000000000000001 in binary). */
static int lower_top(IrGraph *g, RedId id, int x, int k, Level R, SrcRange rng) {
  Level E = g->n[x].level;
  if (id == RED_TOPFRAC) {
    int n = ir_reduce(g, IR_COUNT, -1, -1, R, E, 0, rng);
    int pn = ir_elem(g, IR_SUB, ir_elem(g, IR_MUL, k, n, -1, rng), ir_const(g, 1e-9, TY_FLOAT, rng), -1, rng);
    k = ir_elem(g, IR_CEIL, pn, -1, -1, rng);
  }
  return ir_reduce(g, IR_RANKLT, ir_elem(g, IR_NEG, x, -1, -1, rng), k, R, E, 0, rng);
}

/* E's own nodes, given the nodes V of its children (children()). */
static int finish(Lower *L, const Expr *e, const int v[3]) {
  IrGraph *g = L->g;
  switch (e->kind) {
  case AST_NUM:
  case AST_BOOL: return ir_const(g, e->num, e->type, e->rng);
  case AST_INPUT:
    return leaf(g, IR_INPUT, e->id, bi_inputs[e->id].level, bi_inputs[e->id].type, e->rng);
  case AST_USERINPUT:
    return leaf(g, IR_UINPUT, L->decl_slot[e->decl->index], e->decl->level, TY_FLOAT, e->rng);
  case AST_PARAM: return leaf(g, IR_PARAM, L->decl_slot[e->decl->index], LV_BATCH, TY_FLOAT, e->rng);
  case AST_TRAINER: return leaf(g, IR_PARAM, L->trainer_slot[e->id], LV_BATCH, TY_FLOAT, e->rng);
  case AST_LET: {
    int k = e->decl->index;
    if (L->let_node[k] < 0) L->let_node[k] = v[0];
    return L->let_node[k];
  }
  case AST_UNARY: return ir_elem(g, bi_ops[e->id].ir, v[0], -1, -1, e->rng);
  case AST_BINARY: return ir_elem(g, bi_ops[e->id].ir, v[0], v[1], -1, e->rng);
  case AST_FUNC:
    if (e->id == FN_UNIFORM) return leaf(g, IR_UNIFORM, 0, LV_SEQ, TY_FLOAT, e->rng);
    if (e->id == FN_CLAMP) {
      int m = ir_elem(g, IR_MAX, v[0], v[1], -1, e->rng);
      return ir_elem(g, IR_MIN, m, v[2], -1, e->rng);
    }
    if (e->id == FN_KEEPGRAD) return v[0]; /* the identity: only the warnings of sema_lint.c read it */
    return ir_elem(g, bi_funcs[e->id].ir, e->nargs > 0 ? v[0] : -1, e->nargs > 1 ? v[1] : -1,
                   e->nargs > 2 ? v[2] : -1, e->rng);
  case AST_REDUCE: {
    const Expr *x = e->args[0];
    Level R = e->red_level;
    if (e->id == RED_COUNT) {
      if (x) return ir_reduce(g, IR_COUNT, -1, v[0], R, x->level, 0, e->rng);
      return ir_reduce(g, IR_COUNT, -1, -1, R, R == LV_SEQ ? LV_TOKEN : LV_SEQ, 0, e->rng);
    }
    if (e->id == RED_MEDIAN) return lower_quantile(g, v[0], ir_const(g, 0.5, TY_FLOAT, e->rng), R, e->rng);
    if (e->id == RED_QUANTILE) return lower_quantile(g, v[0], v[1], R, e->rng);
    if (e->id == RED_TOPK || e->id == RED_TOPFRAC) return lower_top(g, e->id, v[0], v[1], R, e->rng);
    return ir_reduce(g, bi_reds[e->id].ir, v[0], e->args[1] ? v[1] : -1, R, x->level, e->ddof, e->rng);
  }
  case AST_NAME: /* raw or error nodes never reach lowering: sema rejected the program */
  case AST_CALL:
  case AST_ERROR: break;
  }
  abort();
}

/* Lowers E: a post-order walk with an explicit stack, so a chain of 30 000 lets (each a reference
 * to the one before, lowered at its first use) needs no C stack.  Nodes are pushed in the order of
 * the natural recursion: each subexpression's nodes, left to right, then the node itself. */
typedef struct {
  const Expr *e;
  int nch, done;
  const Expr *ch[3];
  int v[3];
} LowerFrame;

static int lower(Lower *L, const Expr *root) {
  size_t cap = 64, n = 0;
  LowerFrame *st = ir_xcalloc(cap, sizeof *st);
  st[n++] = (LowerFrame){.e = root};
  st[0].nch = children(L, root, st[0].ch);
  int result = -1;
  while (n) {
    LowerFrame *f = &st[n - 1];
    if (f->done < f->nch) {
      if (n == cap) st = rc_realloc(st, (cap *= 2) * sizeof *st);
      LowerFrame *c = &st[n++];
      *c = (LowerFrame){.e = st[n - 2].ch[st[n - 2].done]};
      c->nch = children(L, c->e, c->ch);
      continue;
    }
    int r = finish(L, f->e, f->v);
    n--;
    if (n) st[n - 1].v[st[n - 1].done++] = r;
    else result = r;
  }
  free(st);
  return result;
}

/* Lowers PROG with LOSS (its checked loss, or another checked expression) as the loss; the
 * metrics too when METRICS. */
static IrGraph *lower_program(const Program *prog, const Expr *loss, bool metrics) {
  const Decl *obj = prog->objective;
  IrGraph *g = ir_new(obj ? obj->name : NULL, obj ? obj->desc : NULL);
  Lower L = {g, ir_xcalloc((size_t)prog->ndecls, sizeof(int)),
             ir_xcalloc((size_t)prog->ndecls, sizeof(int)), {0}};
  for (int i = 0; i < prog->ndecls; i++) {
    const Decl *d = prog->decls[i];
    L.let_node[i] = -1;
    if (d->kind == DECL_PARAM || d->kind == DECL_STATE)
      L.decl_slot[i] = ir_add_param(g, d->name, d->value, d->kind == DECL_STATE ? REIN_PARAM_STATE : REIN_PARAM_PARAM);
    if (d->kind == DECL_INPUT) L.decl_slot[i] = ir_add_uinput(g, d->name, d->level);
  }
  for (int k = 0; k < REIN_NUM_TRAINER_CONSTS; k++)
    L.trainer_slot[k] = prog->trainer_used[k] ? ir_add_param(g, rein_trainer_const_name(k), NAN, REIN_PARAM_TRAINER) : -1;
  for (int i = 0; i < prog->ndecls; i++) {
    const Decl *d = prog->decls[i];
    if (d->kind == DECL_LOSS) g->loss = lower(&L, loss ? loss : d->checked);
    if (d->kind == DECL_METRIC && metrics) ir_add_metric(g, d->name, lower(&L, d->checked), -1);
    if (d->kind == DECL_UPDATE)  /* even without metrics: the verifier wants each state's update */
      ir_add_metric(g, d->name, lower(&L, d->checked), L.decl_slot[d->update->index]);
  }
  free(L.let_node);
  free(L.decl_slot);
  return g;
}

IrGraph *ir_lower(const Program *prog) { return lower_program(prog, NULL, true); }

IrGraph *ir_lower_loss(const Program *prog, const Expr *loss) {
  return lower_program(prog, loss, false);
}
