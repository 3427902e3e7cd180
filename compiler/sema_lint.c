/* sema_lint.c — warnings about programs that are well-formed but probably not what was meant.
 *
 * One rule so far, the forgotten stop-gradient of a score-function (REINFORCE) term.  A loss term
 * w * logp is the score-function estimator when the weight w is a constant of the gradient
 * (an advantage, a detached importance ratio): d/dlogp (w * logp) = w.  When w itself depends on
 * logp — `ratio = exp(logp - old_logp)` used without sg — the gradient is w + logp * dw/dlogp,
 * which is almost never intended and trains silently wrong.  Precisely (docs/language.md,
 * "Gradient warnings"):
 *
 *   A *score* is `logp`, `-s`, `sum[L](s ...)` or `mean[L](s ...)` of a score, or a let whose
 *   value is one.  A *product* is a maximal tree of `*` and `/` (through unary `-`); its factors are
 *   the operands that are not themselves `*`, `/` or `-`.  In every product reachable from the
 *   loss (through lets, inside any function or reduction) that has a score among its numerator
 *   factors, every other factor (numerator or denominator) that is not a score and depends
 *   differentiably on `logp` gets the warning.  Differentiably: through anything but sg, keepgrad,
 *   comparisons, logic, sign, count, rank and uniform() (the gradient rules of ad.c).
 *
 * The fix is sg(w); keepgrad(w), the identity, says that the gradient through w is meant and
 * silences the warning.  Runs after a program checked without errors (sema_check); reads only the
 * checked trees.
 */
#include "sema_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rein/common.h"

/* Per declaration (by Decl.index), filled in the order of the program, so that a let's facts are
 * known before any use of it and no walk enters a let (a chain of 30 000 lets needs no C stack). */
typedef struct {
  Sema *s;
  bool *dl;     /* the let depends differentiably on logp */
  bool *score;  /* the let is a score */
  SrcRange *warned;  /* the weights warned about: a fn body inlined twice warns once */
  int nwarned;
} Lint;

/* True when checked E depends on logp through a path with a derivative (keepgrad counts as none:
 * it is the writer's word that the dependence is meant). */
static bool dep_logp(Lint *L, const Expr *e) {
  switch (e->kind) {
  case AST_INPUT: return e->id == IN_LOGP;
  case AST_LET: return L->dl[e->decl->index];
  case AST_UNARY: return e->id == OP_NEG && dep_logp(L, e->args[0]);
  case AST_BINARY:
    return bi_ops[e->id].cls == 'a' && (dep_logp(L, e->args[0]) || dep_logp(L, e->args[1]));
  case AST_FUNC:
    if (e->id == FN_KEEPGRAD || !bi_funcs[e->id].diff) return false;
    for (int i = e->id == FN_WHERE ? 1 : 0; i < e->nargs; i++)
      if (dep_logp(L, e->args[i])) return true;
    return false;
  /* e->diff is the checker's own rule: no derivative through count, rank or the selectors */
  case AST_REDUCE: return e->diff && dep_logp(L, e->args[0]);
  case AST_NUM:
  case AST_BOOL:
  case AST_USERINPUT:
  case AST_PARAM:
  case AST_TRAINER:
  case AST_NAME:
  case AST_CALL:
  case AST_ERROR: return false;
  }
  return false;
}

/* True when checked E is a score: logp, or a sum/mean/negation of one, or a let holding one. */
static bool is_score(Lint *L, const Expr *e) {
  switch (e->kind) {
  case AST_INPUT: return e->id == IN_LOGP;
  case AST_LET: return L->score[e->decl->index];
  case AST_UNARY: return e->id == OP_NEG && is_score(L, e->args[0]);
  case AST_REDUCE: return (e->id == RED_SUM || e->id == RED_MEAN) && is_score(L, e->args[0]);
  case AST_NUM:
  case AST_BOOL:
  case AST_NAME:
  case AST_BINARY:
  case AST_CALL:
  case AST_USERINPUT:
  case AST_PARAM:
  case AST_TRAINER:
  case AST_FUNC:
  case AST_ERROR: return false;
  }
  return false;
}

static bool is_product(const Expr *e) {
  return e->kind == AST_BINARY && (e->id == OP_MUL || e->id == OP_DIV);
}

typedef struct {
  const Expr **f;
  bool *denom;
  int n, cap;
} Factors;

/* Appends the factors of product E (in the denominator when DEN) to F. */
static void flatten(const Expr *e, bool den, Factors *F) {
  if (is_product(e)) {
    flatten(e->args[0], den, F);
    flatten(e->args[1], e->id == OP_DIV ? !den : den, F);
    return;
  }
  if (e->kind == AST_UNARY && e->id == OP_NEG && is_product(e->args[0])) {
    flatten(e->args[0], den, F);
    return;
  }
  if (F->n == F->cap) {
    F->cap = F->cap ? 2 * F->cap : 8;
    F->f = rc_realloc(F->f, sizeof *F->f * (size_t)F->cap);
    F->denom = rc_realloc(F->denom, sizeof *F->denom * (size_t)F->cap);
  }
  F->f[F->n] = e;
  F->denom[F->n++] = den;
}

static void visit(Lint *L, const Expr *e);

/* Checks the product rooted at E, then searches its factors for more. */
static void check_product(Lint *L, const Expr *e) {
  Factors F = {NULL, NULL, 0, 0};
  flatten(e, false, &F);
  int score = -1;
  for (int i = 0; i < F.n && score < 0; i++)
    if (!F.denom[i] && is_score(L, F.f[i])) score = i;
  for (int i = 0; i < F.n && score >= 0; i++) {
    const Expr *w = F.f[i];
    if (i == score || is_score(L, w) || !dep_logp(L, w)) continue;
    bool again = false;
    for (int k = 0; k < L->nwarned && !again; k++)
      again = !memcmp(&L->warned[k], &w->rng, sizeof w->rng);
    if (again) continue;
    L->warned = rc_realloc(L->warned, sizeof *L->warned * (size_t)(L->nwarned + 1));
    L->warned[L->nwarned++] = w->rng;
    char wb[64], sb[64], src[64];
    Sema *s = L->s;
    diag_warning(s->d, w->rng, "the weight %s of %s depends on `logp` (not through sg): the "
                 "gradient flows through it too (w + logp*dw/dlogp instead of w)",
                 sema_describe(s, w, wb, sizeof wb), sema_describe(s, F.f[score], sb, sizeof sb));
    bool text = sema_source(s, w->rng, src, sizeof src);
    diag_note(s->d, w->rng, "for the score-function (REINFORCE) gradient, wrap the weight in "
              "sg(...): `sg(%s)`", text ? src : "...");
    diag_note(s->d, w->rng, "if the gradient through the weight is intended, say so with "
              "`keepgrad(%s)`", text ? src : "...");
  }
  for (int i = 0; i < F.n; i++) visit(L, F.f[i]);
  free(F.f);
  free(F.denom);
}

/* Searches checked E for products (a let it uses is searched on its own: see sema_lint). */
static void visit(Lint *L, const Expr *e) {
  if (is_product(e) || (e->kind == AST_UNARY && e->id == OP_NEG && is_product(e->args[0]))) {
    check_product(L, e);
    return;
  }
  if (e->kind == AST_UNARY || e->kind == AST_BINARY || e->kind == AST_FUNC || e->kind == AST_REDUCE)
    for (int i = 0; i < e->nargs; i++)
      if (e->args[i]) visit(L, e->args[i]);
}

/* Marks in REACH the lets that checked E refers to (without entering them). */
static void mark_lets(const Expr *e, bool *reach) {
  if (e->kind == AST_LET) reach[e->decl->index] = true;
  if (e->kind == AST_UNARY || e->kind == AST_BINARY || e->kind == AST_FUNC || e->kind == AST_REDUCE)
    for (int i = 0; i < e->nargs; i++)
      if (e->args[i]) mark_lets(e->args[i], reach);
}

void sema_lint(Sema *s) {
  const Program *p = s->prog;
  if (!p->loss || !p->loss->checked || p->loss->checked->type == TY_ERROR) return;
  size_t n = (size_t)p->ndecls;
  Lint L = {s, rc_calloc(n, sizeof(bool)), rc_calloc(n, sizeof(bool)), NULL, 0};
  bool *reach = rc_calloc(n, sizeof(bool));
  for (size_t i = 0; i < n; i++) {
    const Decl *d = p->decls[i];
    if (d->kind != DECL_LET || !d->checked || d->checked->type == TY_ERROR) continue;
    L.dl[i] = dep_logp(&L, d->checked);
    L.score[i] = is_score(&L, d->checked);
  }
  reach[p->loss->index] = true;
  for (size_t i = n; i-- > 0;) {
    const Decl *d = p->decls[i];
    if (reach[i] && d->checked && d->checked->type != TY_ERROR) mark_lets(d->checked, reach);
  }
  /* in the order of the program: a let's warnings before the loss's */
  for (size_t i = 0; i < n; i++)
    if (reach[i] && p->decls[i]->checked && p->decls[i]->checked->type != TY_ERROR)
      visit(&L, p->decls[i]->checked);
  free(L.dl);
  free(L.score);
  free(L.warned);
  free(reach);
}
