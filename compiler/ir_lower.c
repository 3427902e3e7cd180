/* ir_lower.c — lowering: the checked syntax tree of a program becomes a graph.
 *
 * Each let is lowered once (lets are shared, not copied, in the checked tree), inlined fn bodies
 * are lowered where they were inlined (CSE merges the copies), clamp(x, lo, hi) becomes
 * min(max(x, lo), hi) (the language defines it so), count[L](c) becomes a count whose filter is c,
 * and count[L]() a count over tokens (L = seq) or sequences (L = group or batch).  Operators,
 * functions and reductions become the IR op their table row names (bi_ops, bi_funcs, bi_reds).  Every node
 * keeps the source range of the expression it came from, so later errors point at the program.
 */
#include <stdlib.h>

#include "ir.h"

typedef struct {
  IrGraph *g;
  int *let_node;   /* by Decl.index: node of a lowered let, -1 if not yet */
  int *decl_slot;  /* by Decl.index: param or input table index */
} Lower;

static int lower(Lower *L, const Expr *e);

static int leaf(IrGraph *g, IrOp op, int idx, Level lv, Type t, SrcRange rng) {
  IrNode n = {.op = op, .level = lv, .type = t, .a = {-1, -1, -1}, .idx = idx, .rng = rng};
  return ir_push(g, &n);
}

static int lower_func(Lower *L, const Expr *e) {
  IrGraph *g = L->g;
  if (e->id == FN_UNIFORM) return leaf(g, IR_UNIFORM, 0, LV_SEQ, TY_FLOAT, e->rng);
  int a[3] = {-1, -1, -1};
  for (int i = 0; i < e->nargs; i++) a[i] = lower(L, e->args[i]);
  if (e->id == FN_CLAMP) {
    int m = ir_elem(g, IR_MAX, a[0], a[1], -1, e->rng);
    return ir_elem(g, IR_MIN, m, a[2], -1, e->rng);
  }
  return ir_elem(g, bi_funcs[e->id].ir, a[0], a[1], a[2], e->rng);
}

static int lower_reduce(Lower *L, const Expr *e) {
  const Expr *x = e->args[0], *f = e->args[1];
  Level R = e->red_level;
  if (e->id == RED_COUNT) {
    if (x) return ir_reduce(L->g, IR_COUNT, -1, lower(L, x), R, x->level, 0, e->rng);
    return ir_reduce(L->g, IR_COUNT, -1, -1, R, R == LV_SEQ ? LV_TOKEN : LV_SEQ, 0, e->rng);
  }
  int xv = lower(L, x);
  int fv = f ? lower(L, f) : -1;
  return ir_reduce(L->g, bi_reds[e->id].ir, xv, fv, R, x->level, e->ddof, e->rng);
}

static int lower(Lower *L, const Expr *e) {
  IrGraph *g = L->g;
  switch (e->kind) {
  case AST_NUM:
  case AST_BOOL: return ir_const(g, e->num, e->type, e->rng);
  case AST_INPUT:
    return leaf(g, IR_INPUT, e->id, bi_inputs[e->id].level, bi_inputs[e->id].type, e->rng);
  case AST_USERINPUT:
    return leaf(g, IR_UINPUT, L->decl_slot[e->decl->index], e->decl->level, TY_FLOAT, e->rng);
  case AST_PARAM: return leaf(g, IR_PARAM, L->decl_slot[e->decl->index], LV_BATCH, TY_FLOAT, e->rng);
  case AST_LET: {
    int k = e->decl->index;
    if (L->let_node[k] < 0) L->let_node[k] = lower(L, e->decl->checked);
    return L->let_node[k];
  }
  case AST_UNARY: return ir_elem(g, bi_ops[e->id].ir, lower(L, e->args[0]), -1, -1, e->rng);
  case AST_BINARY: {
    int x = lower(L, e->args[0]);
    int y = lower(L, e->args[1]);
    return ir_elem(g, bi_ops[e->id].ir, x, y, -1, e->rng);
  }
  case AST_FUNC: return lower_func(L, e);
  case AST_REDUCE: return lower_reduce(L, e);
  case AST_NAME: /* raw or error nodes never reach lowering: sema rejected the program */
  case AST_CALL:
  case AST_ERROR: break;
  }
  abort();
}

IrGraph *ir_lower(const Program *prog) {
  const Decl *obj = prog->objective;
  IrGraph *g = ir_new(obj ? obj->name : NULL, obj ? obj->desc : NULL);
  Lower L = {g, ir_xcalloc((size_t)prog->ndecls, sizeof(int)),
             ir_xcalloc((size_t)prog->ndecls, sizeof(int))};
  for (int i = 0; i < prog->ndecls; i++) {
    const Decl *d = prog->decls[i];
    L.let_node[i] = -1;
    if (d->kind == DECL_PARAM) L.decl_slot[i] = ir_add_param(g, d->name, d->value);
    if (d->kind == DECL_INPUT) L.decl_slot[i] = ir_add_uinput(g, d->name, d->level);
  }
  for (int i = 0; i < prog->ndecls; i++) {
    const Decl *d = prog->decls[i];
    if (d->kind == DECL_LOSS) g->loss = lower(&L, d->checked);
    if (d->kind == DECL_METRIC) ir_add_metric(g, d->name, lower(&L, d->checked));
  }
  free(L.let_node);
  free(L.decl_slot);
  return g;
}
