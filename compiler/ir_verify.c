/* ir_verify.c — the verifier run between passes (and on every graph read from text).
 *
 * It checks what every later stage relies on, so a pass that breaks an invariant is caught where
 * it happened, not as a wrong number three passes later:
 *   - arguments refer to earlier nodes (topological order) and every slot an op needs is present;
 *   - leaves: constants are batch-level; inputs, user inputs and params have their table's level,
 *     type and a valid index; uniform() is seq-level float;
 *   - element-wise ops: the level is the finest argument level; bool-only ops get bools; the
 *     type is the one ir_elem gives;
 *   - reductions: element level finer than the target level, value and filter at the element
 *     level or coarser, a bool filter, ddof 0 or 1 (std/var only); sibling ops are element-level;
 *   - outputs: a float batch-level loss, batch-level metrics, float gradients.
 */
#include "ir.h"

static bool fail(FILE *out, const char *after, int node, const char *what) {
  if (node >= 0)
    fprintf(out, "rein: internal error: IR verifier: %%%d: %s (after %s)\n", node, what, after);
  else
    fprintf(out, "rein: internal error: IR verifier: %s (after %s)\n", what, after);
  return false;
}

/* check_node reports through fail(); ir_check_node captures the message instead. */
static const char *captured;
static bool capture(FILE *out, const char *after, int node, const char *what) {
  (void)out, (void)after, (void)node;
  captured = what;
  return false;
}

static bool check_node_with(bool (*fail)(FILE *, const char *, int, const char *), const IrGraph *g,
                            int i, const char *after, FILE *out) {
  const IrNode *n = &g->n[i];
  if ((unsigned)n->op >= IR_NOPS) return fail(out, after, i, "unknown op");
  if ((unsigned)n->level >= LV_COUNT) return fail(out, after, i, "bad level");
  if (n->type != TY_FLOAT && n->type != TY_BOOL) return fail(out, after, i, "bad type");
  char cls = ir_ops[n->op].cls;
  int ns = ir_nslots(n);
  for (int k = 0; k < 3; k++) {
    if (k >= ns && n->a[k] != -1) return fail(out, after, i, "argument in an unused slot");
    if (k < ns && n->a[k] >= i) return fail(out, after, i, "argument is not an earlier node");
    if (k < ns && n->a[k] < -1) return fail(out, after, i, "bad argument index");
  }
  switch (cls) {
  case 'l':
    switch (n->op) {
    case IR_CONST:
      if (n->level != LV_BATCH) return fail(out, after, i, "a constant must be batch-level");
      if (n->type == TY_BOOL && n->num != 0 && n->num != 1)
        return fail(out, after, i, "a bool constant must be 0 or 1");
      break;
    case IR_INPUT:
      if (n->idx < 0 || n->idx >= IN_COUNT) return fail(out, after, i, "bad input");
      if (n->level != bi_inputs[n->idx].level || n->type != bi_inputs[n->idx].type)
        return fail(out, after, i, "input level or type differs from the built-in's");
      break;
    case IR_UINPUT:
      if (n->idx < 0 || n->idx >= g->nuinputs) return fail(out, after, i, "bad user input");
      if (n->level != g->uinputs[n->idx].level || n->type != TY_FLOAT)
        return fail(out, after, i, "user input level or type differs from its declaration");
      break;
    case IR_PARAM:
      if (n->idx < 0 || n->idx >= g->nparams) return fail(out, after, i, "bad param");
      if (n->level != LV_BATCH || n->type != TY_FLOAT)
        return fail(out, after, i, "a param must be a batch-level float");
      break;
    case IR_UNIFORM:
      if (n->level != LV_SEQ || n->type != TY_FLOAT)
        return fail(out, after, i, "uniform() must be a seq-level float");
      break;
    REIN_ELEM_OPS(OPS_CASE) /* not leaves */
    REIN_RED_OPS(OPS_CASE)
    case IR_NOPS: break;
    }
    return true;
  case 'e': {
    char ty = ir_ops[n->op].ty; /* the types of ops.h's `ty` column */
    Level lv = LV_BATCH;
    for (int k = 0; k < ns; k++) {
      if (n->a[k] < 0) return fail(out, after, i, "missing argument");
      const IrNode *x = &g->n[n->a[k]];
      if (x->level < lv) lv = x->level;
      bool want_bool = ty == 'l' || (ty == 'w' && k == 0);
      if (want_bool && x->type != TY_BOOL) return fail(out, after, i, "needs a bool argument");
      if (ty == 'd' && k == 0 && x->type != TY_FLOAT)
        return fail(out, after, i, "dmul's adjoint operand must be a float");
    }
    if (n->level != lv) return fail(out, after, i, "level is not the finest argument level");
    Type t = TY_FLOAT;
    if (ty == 'l' || ty == 'c') t = TY_BOOL;
    else if (ty == 's') t = g->n[n->a[0]].type;
    else if (ty == 'w' && g->n[n->a[1]].type == TY_BOOL && g->n[n->a[2]].type == TY_BOOL)
      t = TY_BOOL;
    if (n->type != t) return fail(out, after, i, "wrong result type");
    return true;
  }
  default: { /* 'r', 's' */
    if ((unsigned)n->rlevel >= LV_COUNT || (unsigned)n->elev >= LV_COUNT)
      return fail(out, after, i, "bad reduction level");
    if (n->elev >= n->rlevel) return fail(out, after, i, "elements must be finer than the target level");
    bool needs_x = n->op != IR_COUNT;
    if (needs_x && n->a[0] < 0) return fail(out, after, i, "missing value");
    if (!needs_x && n->a[0] >= 0) return fail(out, after, i, "count takes no value, only a filter");
    if (n->op == IR_RANK && n->a[1] >= 0) return fail(out, after, i, "rank takes no filter");
    if (n->a[0] >= 0 && g->n[n->a[0]].level < n->elev)
      return fail(out, after, i, "value is finer than the element level");
    if (OPS_IS_SCAN(n->op)) {
      if (n->rlevel != LV_SEQ || n->elev != LV_TOKEN)
        return fail(out, after, i, "a scan runs over the tokens of a sequence ([seq] from token)");
      if (n->a[1] >= 0 && (g->n[n->a[1]].type != TY_FLOAT || g->n[n->a[1]].level < LV_SEQ))
        return fail(out, after, i, "a scan's discount must be a float at seq level or coarser");
    } else if (n->op == IR_RANKLT) {
      if (n->a[1] < 0) return fail(out, after, i, "ranklt needs its bound");
      if (g->n[n->a[1]].type != TY_FLOAT || g->n[n->a[1]].level < n->rlevel)
        return fail(out, after, i, "ranklt's bound must be a float at the target level or coarser");
    } else if (n->a[1] >= 0) {
      const IrNode *f = &g->n[n->a[1]];
      if (f->type != TY_BOOL) return fail(out, after, i, "filter must be a bool");
      if (f->level < n->elev) return fail(out, after, i, "filter is finer than the element level");
    }
    if (n->ddof != 0 && !(n->ddof == 1 && (n->op == IR_STD || n->op == IR_VAR)))
      return fail(out, after, i, "ddof must be 0, or 1 on std/var");
    Level lv = cls == 's' ? n->elev : n->rlevel;
    Type t = OPS_IS_MASK(n->op) ? TY_BOOL : TY_FLOAT;
    if (n->level != lv) return fail(out, after, i, "wrong level for a reduction");
    if (n->type != t) return fail(out, after, i, "wrong result type for a reduction");
    return true;
  }
  }
}

const char *ir_check_node(const IrGraph *g, int i) {
  captured = NULL;
  check_node_with(capture, g, i, "", NULL);
  return captured;
}

bool ir_verify(const IrGraph *g, const char *after, FILE *out) {
  for (int i = 0; i < g->nn; i++)
    if (!check_node_with(fail, g, i, after, out)) return false;
  if (g->loss < 0 || g->loss >= g->nn) return fail(out, after, -1, "no loss output");
  if (g->n[g->loss].level != LV_BATCH || g->n[g->loss].type != TY_FLOAT)
    return fail(out, after, g->loss, "the loss must be a batch-level float");
  for (int m = 0; m < g->nmetrics; m++) {
    int k = g->metrics[m].node;
    if (k < 0 || k >= g->nn) return fail(out, after, -1, "metric refers to no node");
    if (g->n[k].level != LV_BATCH) return fail(out, after, k, "a metric must be batch-level");
    int st = g->metrics[m].state;
    if (st >= g->nparams || (st >= 0 && g->params[st].kind != REIN_PARAM_STATE))
      return fail(out, after, k, "an update refers to no state");
  }
  for (int i = 0; i < g->nparams; i++) {
    int nupd = 0;
    for (int m = 0; m < g->nmetrics; m++) nupd += g->metrics[m].state == i;
    if (nupd != (g->params[i].kind == REIN_PARAM_STATE))
      return fail(out, after, -1, "a state needs exactly one update, and only a state has one");
  }
  for (int j = 0; j < IR_NGRADS; j++) {
    int k = g->grad[j];
    if (k < -1 || k >= g->nn) return fail(out, after, -1, "gradient refers to no node");
    if (k >= 0 && g->n[k].type != TY_FLOAT) return fail(out, after, k, "a gradient must be a float");
  }
  return true;
}
