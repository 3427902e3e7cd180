/* grad_view.c — d term/d logp of each top-level term of the loss, in the language's syntax (see
 * grad_view.h).
 *
 * Each term goes through the same lowering, autodiff and simplification as the whole program, so
 * the view shows what the compiled code computes, not a second derivation.  The gradient graph is
 * printed back as one expression:
 *   - a value of the program (a node the term itself computes) by its source: a let's name when
 *     the node is the let's body, else the source text of the expression it came from (when on
 *     one line and at most 60 bytes, and not inside a fn body, whose text names the parameters;
 *     clamp's inner max, which shares clamp's range, is printed as an operator);
 *   - autodiff's nodes as operators and calls: dmul(g, d) as `g * d` (dmul is 0 where g is 0 even
 *     when d is Inf or NaN: the cut-off branches of where/min/max), the adjoint of a broadcast as
 *     sum[L](...), argmax[L](x) / argmin[L](x) as written (1 at the first arg-extremum among x's
 *     siblings in L, else 0), token and sequence counts as `len`, `count[L]()` and `sum[L](len)`;
 *   - exact cosmetic identities only: 1 * x = x, -1 * x = -x, x * (1 / y) = x / y.
 * A reduction whose elements are finer than its value (x broadcast, as autodiff builds them) is
 * written name[L](x, over=LEVEL).
 */
#include "grad_view.h"

#include <stdlib.h>
#include <string.h>

#include "pipeline.h"
#include "rein/common.h"

typedef struct {
  FILE *out;
  const Program *prog;
  const IrGraph *g;
  bool *cone;    /* the term's own values (ancestors of its loss node) */
  bool *shared;  /* a user in the cone has the same source range (clamp's inner max) */
} View;

/* The precedence of the printed form of node N (9: a primary). */
static int prec_of(const IrNode *n) {
  if (n->op == IR_CONST) return n->num < 0 ? 7 : 9;
  switch (n->op) {
  case IR_OR: return 1;
  case IR_AND: return 2;
  case IR_NOT: return 3;
  case IR_LT: case IR_LE: case IR_GT: case IR_GE: case IR_EQ: case IR_NE: return 4;
  case IR_ADD: case IR_SUB: return 5;
  case IR_MUL: case IR_DIV: case IR_DMUL: return 6;
  case IR_NEG: return 7;
  case IR_POW: return 8;
  case IR_EXP: case IR_LOG: case IR_LOG1P: case IR_EXPM1: case IR_SQRT: case IR_ABS:
  case IR_SIGN: case IR_SIGMOID: case IR_SOFTPLUS: case IR_TANH: case IR_SG: case IR_MIN:
  case IR_MAX: case IR_WHERE: case IR_FLOOR: case IR_CEIL:
  REIN_LEAF_OPS(OPS_CASE)
  REIN_RED_OPS(OPS_CASE)
  case IR_NOPS: return 9;
  }
  return 9;
}

static void node(View *v, int i, int minprec);

static bool is_num(const View *v, int i, double x) {
  return v->g->n[i].op == IR_CONST && v->g->n[i].num == x;
}

/* Prints node I from its source when it is a value of the program; false when it is not one. */
static bool from_source(View *v, int i, int minprec) {
  const IrNode *n = &v->g->n[i];
  if (!v->cone[i] || v->shared[i] || ir_ops[n->op].cls == 'l') return false;
  for (int k = 0; k < v->prog->ndecls; k++) {
    const Decl *d = v->prog->decls[k];
    if (d->kind == DECL_LET && d->checked && !memcmp(&d->checked->rng, &n->rng, sizeof n->rng)) {
      fputs(d->name, v->out);
      return true;
    }
  }
  /* a node inlined from a fn body: its source names the fn's parameters, not the caller's values */
  for (int k = 0; k < v->prog->ndecls; k++) {
    SrcRange r = v->prog->decls[k]->rng;
    if (v->prog->decls[k]->kind == DECL_FN &&
        (n->rng.begin.line > r.begin.line || (n->rng.begin.line == r.begin.line && n->rng.begin.col >= r.begin.col)) &&
        (n->rng.end.line < r.end.line || (n->rng.end.line == r.end.line && n->rng.end.col <= r.end.col)))
      return false;
  }
  char src[64];
  if (!diag_source_text(v->prog->file, n->rng, src, sizeof src)) return false;
  bool p = prec_of(n) < minprec;
  fprintf(v->out, "%s%s%s", p ? "(" : "", src, p ? ")" : "");
  return true;
}

static void binary(View *v, const char *op, int a, int b, int p, int minprec) {
  if (p < minprec) fputc('(', v->out);
  node(v, a, p);
  fprintf(v->out, " %s ", op);
  node(v, b, p + 1);
  if (p < minprec) fputc(')', v->out);
}

static void reduction(View *v, const IrNode *n) {
  const IrGraph *g = v->g;
  const char *R = bi_level_names[n->rlevel];
  int x = n->a[0], f = n->a[1];
  if (n->op == IR_COUNT && x < 0) { /* counts of tokens or sequences, filtered or not */
    if (f >= 0 && g->n[f].level == n->elev) {
      fprintf(v->out, "count[%s](", R);
      node(v, f, 0);
      fputc(')', v->out);
    } else if (n->elev == LV_TOKEN && n->rlevel == LV_SEQ && f < 0) {
      fputs("len", v->out);
    } else if (n->elev == LV_SEQ && f < 0) {
      fprintf(v->out, "count[%s]()", R);
    } else if (n->elev == LV_TOKEN && (f < 0 || g->n[f].level == LV_SEQ)) {
      fprintf(v->out, "sum[%s](len", R);
      if (f >= 0) fputs(", ", v->out), node(v, f, 0);
      fputc(')', v->out);
    } else {
      fprintf(v->out, "count[%s](", R);
      if (f >= 0) node(v, f, 0);
      fprintf(v->out, "%sover=%s)", f >= 0 ? ", " : "", bi_level_names[n->elev]);
    }
    return;
  }
  fprintf(v->out, "%s[%s](", ir_ops[n->op].name, R);
  node(v, x, 0);
  if (f >= 0) fputs(", ", v->out), node(v, f, 0);
  if (g->n[x].level > n->elev) fprintf(v->out, ", over=%s", bi_level_names[n->elev]);
  if (n->ddof) fprintf(v->out, ", ddof=%d", n->ddof);
  fputc(')', v->out);
}

static void node(View *v, int i, int minprec) {
  const IrGraph *g = v->g;
  const IrNode *n = &g->n[i];
  if (from_source(v, i, minprec)) return;
  int p = prec_of(n), a = n->a[0], b = n->a[1];
  switch (n->op) {
  case IR_CONST:
    if (n->type == TY_BOOL) { fputs(n->num != 0 ? "true" : "false", v->out); return; }
    if (p < minprec) fputc('(', v->out);
    ir_print_num(v->out, n->num);
    if (p < minprec) fputc(')', v->out);
    return;
  case IR_INPUT: fputs(bi_inputs[n->idx].name, v->out); return;
  case IR_UINPUT: fputs(g->uinputs[n->idx].name, v->out); return;
  case IR_PARAM: fputs(g->params[n->idx].name, v->out); return;
  case IR_UNIFORM: fputs("uniform()", v->out); return;
  case IR_NEG:
  case IR_NOT:
    if (p < minprec) fputc('(', v->out);
    fputs(n->op == IR_NEG ? "-" : "not ", v->out);
    node(v, a, n->op == IR_NEG ? 8 : 4);
    if (p < minprec) fputc(')', v->out);
    return;
  case IR_MUL:
  case IR_DMUL:
    if (is_num(v, a, 1)) { node(v, b, minprec); return; }
    if (is_num(v, a, -1)) {
      if (7 < minprec) fputc('(', v->out);
      fputc('-', v->out);
      node(v, b, 8);
      if (7 < minprec) fputc(')', v->out);
      return;
    }
    if (g->n[b].op == IR_DIV && is_num(v, g->n[b].a[0], 1) && !v->cone[b]) {
      binary(v, "/", a, g->n[b].a[1], 6, minprec);
      return;
    }
    binary(v, "*", a, b, 6, minprec);
    return;
  case IR_ADD: binary(v, "+", a, b, 5, minprec); return;
  case IR_SUB: binary(v, "-", a, b, 5, minprec); return;
  case IR_DIV: binary(v, "/", a, b, 6, minprec); return;
  case IR_LT: binary(v, "<", a, b, 4, minprec); return;
  case IR_LE: binary(v, "<=", a, b, 4, minprec); return;
  case IR_GT: binary(v, ">", a, b, 4, minprec); return;
  case IR_GE: binary(v, ">=", a, b, 4, minprec); return;
  case IR_EQ: binary(v, "==", a, b, 4, minprec); return;
  case IR_NE: binary(v, "!=", a, b, 4, minprec); return;
  case IR_AND: binary(v, "and", a, b, 2, minprec); return;
  case IR_OR: binary(v, "or", a, b, 1, minprec); return;
  case IR_POW:
    if (p < minprec) fputc('(', v->out);
    node(v, a, 9);
    fputs(" ^ ", v->out);
    node(v, b, 8);
    if (p < minprec) fputc(')', v->out);
    return;
  case IR_EXP: case IR_LOG: case IR_LOG1P: case IR_EXPM1: case IR_SQRT: case IR_ABS:
  case IR_SIGN: case IR_SIGMOID: case IR_SOFTPLUS: case IR_TANH: case IR_SG: case IR_MIN:
  case IR_MAX: case IR_WHERE: case IR_FLOOR: case IR_CEIL:
    fprintf(v->out, "%s(", ir_ops[n->op].name);
    for (int k = 0; k < ir_ops[n->op].nargs; k++) {
      if (k) fputs(", ", v->out);
      node(v, n->a[k], 0);
    }
    fputc(')', v->out);
    return;
  REIN_RED_OPS(OPS_CASE)
    reduction(v, n);
    return;
  case IR_NOPS: break;
  }
}

typedef struct {
  const Expr **e;
  int *sign;
  int n, cap;
} Terms;

/* Appends the top-level terms of checked E, with SIGN, to T. */
static void split(const Expr *e, int sign, Terms *T) {
  if (e->kind == AST_BINARY && (e->id == OP_ADD || e->id == OP_SUB)) {
    split(e->args[0], sign, T);
    split(e->args[1], e->id == OP_SUB ? -sign : sign, T);
    return;
  }
  if (T->n == T->cap) {
    T->cap = T->cap ? 2 * T->cap : 8;
    T->e = rc_realloc(T->e, sizeof *T->e * (size_t)T->cap);
    T->sign = rc_realloc(T->sign, sizeof *T->sign * (size_t)T->cap);
  }
  T->e[T->n] = e;
  T->sign[T->n++] = sign;
}

/* Prints the term's source (cut at 60 bytes, on its first line). */
static void term_source(FILE *out, const SrcFile *f, SrcRange r) {
  size_t s = f->line_start[r.begin.line - 1] + (size_t)r.begin.col - 1, e = s;
  while (e < f->len && f->text[e] != '\n' && f->text[e] != '\r' &&
         (r.end.line > r.begin.line || (int)(e - s) < r.end.col - r.begin.col))
    e++;
  bool cut = e - s > 60 || r.end.line > r.begin.line;
  fprintf(out, "%.*s%s", (int)(e - s > 60 ? 60 : e - s), f->text + s, cut ? " ..." : "");
}

bool gv_print(FILE *out, const Program *prog) {
  const Decl *loss = prog->loss;
  Terms T = {NULL, NULL, 0, 0};
  split(loss->checked, 1, &T);
  FILE *null = fopen("/dev/null", "w");
  bool ok = null != NULL;
  fprintf(out, "# d loss/d logp and d loss/d entropy by top-level term of the loss (they sum to the loss's)\n");
  for (int t = 0; t < T.n && ok; t++) {
    const Expr *e = T.e[t];
    Expr *args[1] = {(Expr *)e};
    Expr neg = *e;
    neg.kind = AST_UNARY, neg.id = OP_NEG, neg.args = args, neg.nargs = 1;
    fprintf(out, "# term %d, line %d: %s", t + 1, e->rng.begin.line, T.sign[t] < 0 ? "-" : "");
    bool paren = T.sign[t] < 0 && e->kind == AST_BINARY;
    if (paren) fputc('(', out);
    term_source(out, prog->file, e->rng);
    fputs(paren ? ")\n" : "\n", out);
    Diag d;
    diag_init(&d, null);
    PipeOptions o = {NULL, null, false};
    IrGraph *g = pipe_run(NULL, ir_lower_loss(prog, T.sign[t] < 0 ? &neg : e), &d, &o, NULL);
    if (!g) { ok = false; break; }
    View v = {out, prog, g, ir_xcalloc((size_t)g->nn, sizeof(bool)),
              ir_xcalloc((size_t)g->nn, sizeof(bool))};
    v.cone[g->loss] = true;
    ir_mark_ancestors(g, v.cone);
    for (int j = 0; j < g->nn; j++)
      for (int k = 0; k < ir_nslots(&g->n[j]); k++) {
        int a = g->n[j].a[k];
        if (v.cone[j] && a >= 0 && !memcmp(&g->n[a].rng, &g->n[j].rng, sizeof g->n[j].rng))
          v.shared[a] = true;
      }
    for (int k = 0; k < IR_NGRADS; k++) {
      if (g->grad[k] < 0 && k == IR_GRAD_ENTROPY) continue;
      fprintf(out, "#   d/d%s = ", ir_grad_names[k]);
      if (g->grad[k] < 0) fputc('0', out);
      else node(&v, g->grad[k], 0);
      fputc('\n', out);
    }
    free(v.cone);
    free(v.shared);
    ir_free(g);
  }
  if (null) fclose(null);
  free(T.e);
  free(T.sign);
  return ok;
}
