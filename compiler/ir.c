/* ir.c — the graph IR's tables, construction, whole-graph rebuilding, the dependence analyses and
 * the printer.  The text parser is ir_parse.c, the verifier ir_verify.c, and each pass has its own
 * file (ir_lower.c, ir_fold.c, ir_cse.c, ir_dce.c, ad.c).
 */
#include "ir.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "rein/common.h"

#define X_LEAF(ID, name) [IR_##ID] = {name, 'l', 0, false, 0},
#define X_ELEM(ID, name, fn, nargs, diff, ty, ...) [IR_##ID] = {name, 'e', nargs, diff, ty},
/* slots a[0] (value) and a[1] (filter); a sibling op with at most one argument (rank) has no filter */
#define X_RED(ID, name, fn, cls, lo, hi, ddof, diff, ...) [IR_##ID] = {name, cls, cls == 's' && hi == 1 ? 1 : 2, diff, 0},
const IrOpInfo ir_ops[IR_NOPS] = {REIN_LEAF_OPS(X_LEAF) REIN_ELEM_OPS(X_ELEM) REIN_RED_OPS(X_RED)};
#undef X_LEAF
#undef X_ELEM
#undef X_RED

const char *const ir_grad_names[IR_NGRADS] = {"logp", "entropy"};

/* The out-of-memory policy of the whole project (rein/common.h; docs/compiler.md, "Driver
 * conventions"): the common layer's checked allocators. */
void *ir_xcalloc(size_t n, size_t sz) { return rc_calloc(n, sz); }

/* S copied (NULL stays NULL: an objective may have no description). */
static char *xstrdup(const char *s) { return s ? rc_strdup(s) : NULL; }

IrGraph *ir_new(const char *objective, const char *desc) {
  IrGraph *g = rc_calloc(1, sizeof *g);
  g->objective = xstrdup(objective ? objective : "objective");
  g->desc = xstrdup(desc);
  g->loss = -1;
  for (int i = 0; i < IR_NGRADS; i++) g->grad[i] = -1;
  return g;
}

void ir_free(IrGraph *g) {
  if (!g) return;
  for (int i = 0; i < g->nparams; i++) free(g->params[i].name);
  for (int i = 0; i < g->nuinputs; i++) free(g->uinputs[i].name);
  for (int i = 0; i < g->nmetrics; i++) free(g->metrics[i].name);
  free(g->params);
  free(g->uinputs);
  free(g->metrics);
  free(g->n);
  free(g->objective);
  free(g->desc);
  free(g);
}

int ir_add_param(IrGraph *g, const char *name, double value, int kind) {
  g->params = rc_realloc(g->params, sizeof *g->params * (size_t)(g->nparams + 1));
  g->params[g->nparams] = (IrParam){xstrdup(name), value, kind};
  return g->nparams++;
}

int ir_add_uinput(IrGraph *g, const char *name, Level level) {
  g->uinputs = rc_realloc(g->uinputs, sizeof *g->uinputs * (size_t)(g->nuinputs + 1));
  g->uinputs[g->nuinputs] = (IrUInput){xstrdup(name), level};
  return g->nuinputs++;
}

void ir_add_metric(IrGraph *g, const char *name, int node, int state) {
  g->metrics = rc_realloc(g->metrics, sizeof *g->metrics * (size_t)(g->nmetrics + 1));
  g->metrics[g->nmetrics++] = (IrMetric){xstrdup(name), node, state};
}

int ir_push(IrGraph *g, const IrNode *n) {
  if (g->nn == g->cap) {
    g->cap = g->cap ? 2 * g->cap : 64;
    g->n = rc_realloc(g->n, sizeof *g->n * (size_t)g->cap);
  }
  g->n[g->nn] = *n;
  return g->nn++;
}

int ir_nslots(const IrNode *n) {
  char c = ir_ops[n->op].cls;
  return c == 'l' ? 0 : ir_ops[n->op].nargs;
}

static IrNode blank(IrOp op, SrcRange rng) {
  IrNode n;
  memset(&n, 0, sizeof n);
  n.op = op;
  n.a[0] = n.a[1] = n.a[2] = -1;
  n.type = TY_FLOAT;
  n.rng = rng;
  return n;
}

int ir_const(IrGraph *g, double v, Type t, SrcRange rng) {
  IrNode n = blank(IR_CONST, rng);
  n.num = v;
  n.type = t;
  n.level = LV_BATCH;
  return ir_push(g, &n);
}

/* The type an element-wise op gives, from its argument types. */
static Type elem_type(const IrGraph *g, IrOp op, const int *a) {
  char ty = ir_ops[op].ty;
  if (ty == 'c' || ty == 'l') return TY_BOOL;
  if (ty == 's') return g->n[a[0]].type;
  if (ty == 'w') return g->n[a[1]].type == TY_BOOL && g->n[a[2]].type == TY_BOOL ? TY_BOOL : TY_FLOAT;
  return TY_FLOAT;
}

int ir_elem(IrGraph *g, IrOp op, int x, int y, int z, SrcRange rng) {
  IrNode n = blank(op, rng);
  n.a[0] = x;
  n.a[1] = y;
  n.a[2] = z;
  n.level = LV_BATCH;
  for (int i = 0; i < ir_ops[op].nargs; i++)
    if (g->n[n.a[i]].level < n.level) n.level = g->n[n.a[i]].level;
  n.type = elem_type(g, op, n.a);
  return ir_push(g, &n);
}

int ir_reduce(IrGraph *g, IrOp op, int x, int f, Level rlevel, Level elev, int ddof, SrcRange rng) {
  IrNode n = blank(op, rng);
  n.a[0] = x;
  n.a[1] = f;
  n.rlevel = rlevel;
  n.elev = elev;
  n.ddof = ddof;
  if (ir_ops[op].cls == 's') {
    n.level = elev;
    n.type = OPS_IS_MASK(op) ? TY_BOOL : TY_FLOAT;
  } else {
    n.level = rlevel;
  }
  return ir_push(g, &n);
}

int ir_copy(IrGraph *g, const IrNode *n, const int *remap) {
  IrNode m = *n;
  for (int k = 0; k < 3; k++)
    if (m.a[k] >= 0) m.a[k] = remap[m.a[k]];
  if (ir_ops[m.op].cls == 'e') return ir_elem(g, m.op, m.a[0], m.a[1], m.a[2], m.rng);
  return ir_push(g, &m);
}

double ir_eval_elem(IrOp op, double x, double y, double z) { return bi_eval_elem(op, x, y, z); }

IrGraph *ir_rebuild(IrGraph *g, IrMapFn map, void *ctx) {
  IrGraph *ng = ir_new(g->objective, g->desc);
  for (int i = 0; i < g->nparams; i++) ir_add_param(ng, g->params[i].name, g->params[i].value, g->params[i].kind);
  for (int i = 0; i < g->nuinputs; i++) ir_add_uinput(ng, g->uinputs[i].name, g->uinputs[i].level);
  int *remap = rc_realloc(NULL, sizeof *remap * (size_t)(g->nn ? g->nn : 1));
  for (int i = 0; i < g->nn; i++) remap[i] = map(ctx, ng, g, i, remap);
  ng->loss = g->loss >= 0 ? remap[g->loss] : -1;
  for (int k = 0; k < IR_NGRADS; k++) ng->grad[k] = g->grad[k] >= 0 ? remap[g->grad[k]] : -1;
  for (int i = 0; i < g->nmetrics; i++)
    ir_add_metric(ng, g->metrics[i].name, remap[g->metrics[i].node], g->metrics[i].state);
  free(remap);
  ir_free(g);
  return ng;
}

void ir_mark_ancestors(const IrGraph *g, bool *mark) {
  for (int i = g->nn - 1; i >= 0; i--) {
    if (!mark[i]) continue;
    for (int k = 0; k < ir_nslots(&g->n[i]); k++)
      if (g->n[i].a[k] >= 0) mark[g->n[i].a[k]] = true;
  }
}

void ir_depends(const IrGraph *g, bool *dep) {
  for (int i = 0; i < g->nn; i++) {
    const IrNode *n = &g->n[i];
    dep[i] = n->op == IR_INPUT && bi_inputs[n->idx].diff;
    for (int k = 0; k < ir_nslots(n); k++)
      if (n->a[k] >= 0 && dep[n->a[k]]) dep[i] = true;
  }
}

void ir_differentiable(const IrGraph *g, bool *diff) {
  for (int i = 0; i < g->nn; i++) {
    const IrNode *n = &g->n[i];
    diff[i] = n->op == IR_INPUT && bi_inputs[n->idx].diff;
    if (!ir_ops[n->op].diff) continue;
    char cls = ir_ops[n->op].cls;
    for (int k = 0; k < ir_nslots(n); k++) {
      if (n->a[k] < 0) continue;
      if (n->op == IR_WHERE && k == 0) continue; /* the condition */
      if (cls != 'e' && k == 1) continue;        /* the filter, or a scan's discount */
      if (diff[n->a[k]]) diff[i] = true;
    }
  }
}

void ir_loss_path(const IrGraph *g, bool *path) {
  memset(path, 0, sizeof(bool) * (size_t)g->nn);
  if (g->loss >= 0) path[g->loss] = true;
  for (int i = g->nn - 1; i >= 0; i--) {
    const IrNode *n = &g->n[i];
    if (!path[i] || !ir_ops[n->op].diff) continue;
    char cls = ir_ops[n->op].cls;
    for (int k = 0; k < ir_nslots(n); k++) {
      if (n->a[k] < 0) continue;
      if (n->op == IR_WHERE && k == 0) continue; /* the condition */
      if (cls == 'r' && k == 1) continue;        /* the filter */
      path[n->a[k]] = true;
    }
  }
}

/* ---- printer ---- */

void ir_print_num(FILE *out, double v) {
  if (isnan(v)) { fputs("nan", out); return; }
  if (isinf(v)) { fputs(v < 0 ? "-inf" : "inf", out); return; }
  char buf[64];
  if (v == floor(v) && fabs(v) < 1e15) { /* integers as integers: 10, not 1e+01 */
    fprintf(out, "%.0f", v);
    return;
  }
  for (int prec = 1; prec <= 17; prec++) {
    snprintf(buf, sizeof buf, "%.*g", prec, v);
    if (strtod(buf, NULL) == v) break;
  }
  fputs(buf, out);
}

void ir_print_quoted(FILE *out, const char *s) {
  fputc('"', out);
  for (; *s; s++) {
    if (*s == '"' || *s == '\\') fputc('\\', out);
    fputc(*s, out);
  }
  fputc('"', out);
}

static void print_node(FILE *out, const IrGraph *g, int i) {
  const IrNode *n = &g->n[i];
  const char *lv = bi_level_names[n->level];
  fprintf(out, "%%%d = %s", i, ir_ops[n->op].name);
  switch (ir_ops[n->op].cls) {
  case 'l':
    if (n->op == IR_CONST) {
      fputc(' ', out);
      if (n->type == TY_BOOL) fputs(n->num != 0 ? "true" : "false", out);
      else ir_print_num(out, n->num);
    } else if (n->op == IR_INPUT) {
      fprintf(out, " %s", bi_inputs[n->idx].name);
    } else if (n->op == IR_UINPUT) {
      fprintf(out, " %s", g->uinputs[n->idx].name);
    } else if (n->op == IR_PARAM) {
      fprintf(out, " %s", g->params[n->idx].name);
    }
    break;
  case 'e':
    for (int k = 0; k < ir_ops[n->op].nargs; k++) fprintf(out, "%s%%%d", k ? ", " : " ", n->a[k]);
    break;
  default: /* 'r', 's' */
    fprintf(out, "[%s", bi_level_names[n->rlevel]);
    if (n->ddof) fprintf(out, ", ddof=%d", n->ddof);
    fputc(']', out);
    if (n->a[0] >= 0) fprintf(out, " %%%d", n->a[0]);
    if (n->a[1] >= 0 && OPS_A1_OPERAND(n->op)) fprintf(out, ", %%%d", n->a[1]); /* discount, bound */
    if (n->a[0] < 0 || g->n[n->a[0]].level != n->elev)
      fprintf(out, " from %s", bi_level_names[n->elev]);
    if (n->a[1] >= 0 && !OPS_A1_OPERAND(n->op)) fprintf(out, " if %%%d", n->a[1]);
    break;
  }
  fprintf(out, " : %s %s\n", lv, bi_type_names[n->type]);
}

void ir_print(FILE *out, const IrGraph *g) {
  fprintf(out, "objective %s", g->objective);
  if (g->desc) {
    fputc(' ', out);
    ir_print_quoted(out, g->desc);
  }
  fputc('\n', out);
  for (int i = 0; i < g->nparams; i++) {
    if (g->params[i].kind == REIN_PARAM_TRAINER) {
      fprintf(out, "trainer %s\n", g->params[i].name);
      continue;
    }
    fprintf(out, "%s %s = ", g->params[i].kind == REIN_PARAM_STATE ? "state" : "param", g->params[i].name);
    ir_print_num(out, g->params[i].value);
    fputc('\n', out);
  }
  for (int i = 0; i < g->nuinputs; i++)
    fprintf(out, "input %s %s\n", bi_level_names[g->uinputs[i].level], g->uinputs[i].name);
  for (int i = 0; i < g->nn; i++) print_node(out, g, i);
  if (g->loss >= 0) fprintf(out, "loss %%%d\n", g->loss);
  for (int i = 0; i < g->nmetrics; i++)
    fprintf(out, "%s %s %%%d\n", g->metrics[i].state >= 0 ? "update" : "metric", g->metrics[i].name,
            g->metrics[i].node);
  for (int k = 0; k < IR_NGRADS; k++)
    if (g->grad[k] >= 0) fprintf(out, "grad %s %%%d\n", ir_grad_names[k], g->grad[k]);
}
