/* sema.c — semantic analysis of a program: the driver and the statements (docs/language.md).
 *
 * The checker walks the statements in order (use before definition is an error, so one pass
 * suffices): the objective line, params and consts (compile-time constants), inputs, fn
 * definitions, lets, the loss and the metrics, each name declared once; then it warns about
 * names never used.  Every let, loss and metric gets its checked tree from sema_check_expr
 * (sema_expr.c); the rules of its kind (the loss is a differentiable batch float, a metric a
 * batch value, a const a finite float32, ...) are checked here.
 *
 * fn bodies are checked twice: once at their definition (check_fn, here) with every parameter
 * bound to an AST_ERROR node (which never causes a message), so that mistakes that do not involve
 * the parameters are reported once, where they are written; and again at each call (inlining, in
 * sema_expr.c), with the parameters bound to the checked arguments, which finds the level and
 * type errors that depend on them and reports them with a note at the call.
 *
 * Then, for a program without errors, the warnings of sema_lint.c.  Calls sema_expr.c,
 * sema_lint.c and sema_names.c; none calls back.
 */
#include "sema_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- declarations ---- */

/* Checks that D's name may be declared here; returns false (after reporting) if not. */
static bool may_declare(Sema *s, Decl *d) {
  const char *name = d->name;
  if (bi_find_func(name) >= 0 || bi_find_red(name) >= 0) {
    diag_error(s->d, d->name_rng, "`%s` is a built-in %s and cannot be redefined", name,
               bi_find_func(name) >= 0 ? "function" : "reduction");
    return false;
  }
  Decl *prev = sema_tab_get(&s->globals, name);
  if (prev) {
    diag_error(s->d, d->name_rng, "duplicate definition of `%s`", name);
    diag_note(s->d, prev->name_rng, "`%s` was first defined here, as %s", name,
              sema_a_kind(prev->kind));
    return false;
  }
  int in = bi_find_input(name);
  if (in >= 0 && d->kind == DECL_INPUT) {
    diag_error(s->d, d->name_rng, "`%s` is a built-in input (%s); it needs no declaration", name,
               sema_a_level(bi_inputs[in].level));
    return false;
  }
  for (int k = 0; k < REIN_NUM_TRAINER_CONSTS; k++)
    if (s->prog->trainer_used[k] && !strcmp(rein_trainer_const_name(k), name)) {
      diag_error(s->d, d->name_rng, "`%s` is defined after the trainer constant `%s` was used; a name "
                 "must mean one thing in a program", name, name);
      diag_note(s->d, s->tconst_use[k], "the trainer constant `%s` is used here", name);
      return false;
    }
  if (in >= 0 && s->input_used[in]) {
    diag_error(s->d, d->name_rng, "`%s` is defined after the built-in input `%s` (%s) was used; "
               "a name must mean one thing in a program", name, name,
               sema_a_level(bi_inputs[in].level));
    diag_note(s->d, s->input_use[in], "the built-in `%s` is used here", name);
    return false;
  }
  return true;
}

/* Finds the first leaf of checked tree E that is not a compile-time constant, for messages. */
static const Expr *first_nonconst(const Expr *e) {
  if (e->is_const) return NULL;
  if (e->kind == AST_PARAM || e->kind == AST_TRAINER || e->kind == AST_INPUT || e->kind == AST_USERINPUT ||
      e->kind == AST_LET || (e->kind == AST_FUNC && e->id == FN_UNIFORM))
    return e;
  for (int i = 0; i < e->nargs; i++) {
    const Expr *c = e->args[i] ? first_nonconst(e->args[i]) : NULL;
    if (c) return c;
  }
  return e;
}

static void nonconst_error(Sema *s, const Decl *d, const Expr *c, const char *what) {
  const Expr *why = first_nonconst(c);
  const char *kind = why->kind == AST_PARAM && why->decl->kind == DECL_STATE ? "a state, set at run time"
                     : why->kind == AST_PARAM   ? "a param, set at run time"
                     : why->kind == AST_TRAINER ? "a trainer constant, set at run time"
                     : why->kind == AST_LET   ? "a let"
                     : why->kind == AST_FUNC  ? "a random draw"
                     : why->kind == AST_INPUT || why->kind == AST_USERINPUT ? "an input"
                                                                              : "not constant";
  char b[64];
  SrcRange r = why->rng;
  Expr tmp = {.rng = r};
  diag_error(s->d, r, "%s `%s` must be a compile-time constant, but %s is %s", what, d->name,
             sema_describe(s, &tmp, b, sizeof b), kind);
}

static void check_param_or_const(Sema *s, Decl *d) {
  bool ok = may_declare(s, d);
  Expr *c = sema_check_expr(s, d->body);
  const char *what = d->kind == DECL_PARAM   ? "the default of param"
                     : d->kind == DECL_STATE ? "the initial value of state"
                                             : "const";
  if (c->type == TY_ERROR) {
    sema_mark_used(s, d->body);
    d->bad = true;
  } else if (!c->is_const) {
    nonconst_error(s, d, c, what);
    d->bad = true;
  } else if (d->kind != DECL_CONST && c->type == TY_BOOL) {
    diag_error(s->d, d->body->rng, "a %s is a number, but the %s of `%s` is a bool (use "
               "a const for a compile-time bool)", d->kind == DECL_STATE ? "state" : "param",
               d->kind == DECL_STATE ? "initial value" : "default", d->name);
    d->bad = true;
  } else if (!bi_fits_f32(c->num)) {
    char v[32];
    if (isnan(c->num)) snprintf(v, sizeof v, "NaN");
    else if (isinf(c->num)) snprintf(v, sizeof v, "%sinf", c->num < 0 ? "-" : "");
    else snprintf(v, sizeof v, "%g", c->num);
    diag_error(s->d, d->body->rng, "%s `%s` evaluates to %s; it must be a finite float32", what,
               d->name, v);
    d->bad = true;
  } else {
    d->value = c->num;
    d->type = c->type;
  }
  d->level = LV_BATCH;
  if (d->type == TY_ERROR) d->type = TY_FLOAT;
  if (ok) sema_tab_put(&s->globals, d->name, d);
  else d->bad = true;
}

static void check_fn(Sema *s, Decl *d) {
  bool ok = may_declare(s, d);
  for (int i = 0; i < d->nparams; i++) {
    const char *pn = d->params[i];
    for (int j = 0; j < i; j++)
      if (!strcmp(d->params[j], pn)) {
        diag_error(s->d, d->param_rngs[i], "fn `%s` has two parameters named `%s`", d->name, pn);
        diag_note(s->d, d->param_rngs[j], "the first `%s` is here", pn);
        d->bad = true;
      }
    Decl *g = sema_tab_get(&s->globals, pn);
    if (g) {
      diag_error(s->d, d->param_rngs[i], "parameter `%s` of fn `%s` has the name of %s "
                 "(names are unique: no shadowing)", pn, d->name, sema_a_kind(g->kind));
      diag_note(s->d, g->name_rng, "`%s` is defined here", pn);
      d->bad = true;
    } else if (bi_find_func(pn) >= 0 || bi_find_red(pn) >= 0) {
      diag_error(s->d, d->param_rngs[i], "parameter `%s` of fn `%s` has the name of a built-in "
                 "%s", pn, d->name, bi_find_func(pn) >= 0 ? "function" : "reduction");
      d->bad = true;
    }
  }
  if (!d->bad) {
    /* Definition-time check: parameters are bound to the error node, so only mistakes that do
     * not involve them are reported, once, here. */
    Expr **args = ast_alloc(s->a, sizeof(Expr *) * (size_t)(d->nparams ? d->nparams : 1));
    for (int i = 0; i < d->nparams; i++) args[i] = s->error;
    Env env = {NULL, d, args};
    Env *saved = s->env;
    s->env = &env;
    s->defcheck = true;
    d->checking = true;
    int before = s->d->nerrors;
    sema_check_expr(s, d->body);
    d->checking = false;
    s->defcheck = false;
    if (s->d->nerrors > before) {
      sema_mark_used(s, d->body);
      d->bad = true;
    }
    s->env = saved;
  }
  if (ok) sema_tab_put(&s->globals, d->name, d);
  else d->bad = true;
}

/* Checks a let, the loss or a metric: the body, then the rules of its kind. */
static void check_value(Sema *s, Decl *d) {
  bool ok = d->kind == DECL_LOSS || may_declare(s, d);
  d->checking = true;
  Expr *c = sema_check_expr(s, d->body);
  d->checking = false;
  d->checked = c;
  d->level = c->level;
  d->type = c->type;
  if (c->type == TY_ERROR) {
    sema_mark_used(s, d->body); /* what a failed statement names is not "unused" */
    d->bad = true;
  } else if (d->kind == DECL_LOSS || d->kind == DECL_METRIC) {
    const char *what = d->kind == DECL_LOSS ? "the loss" : "a metric";
    if (c->level != LV_BATCH) {
      diag_error(s->d, d->body->rng, "%s must be a batch value, but this is %s; reduce it, e.g. "
                 "mean[batch](...)", what, sema_a_level(c->level));
      d->bad = true;
    } else if (d->kind == DECL_LOSS && c->type != TY_FLOAT) {
      diag_error(s->d, d->body->rng, "the loss must be a float, but this is a bool");
      d->bad = true;
    } else if (d->kind == DECL_LOSS && !c->diff) {
      diag_error(s->d, d->body->rng, "the loss does not depend on `logp` or `entropy`, so it has "
                 "no gradient (uses inside sg(), comparisons, count and rank do not count)");
      d->bad = true;
    }
  }
  if (d->kind == DECL_LOSS) {
    if (s->prog->loss) {
      diag_error(s->d, d->name_rng, "a second `loss`; an objective has exactly one");
      diag_note(s->d, s->prog->loss->name_rng, "the first `loss` is here");
    } else {
      s->prog->loss = d;
    }
  } else if (ok) {
    sema_tab_put(&s->globals, d->name, d);
  } else {
    d->bad = true;
  }
}

/* update NAME = expr;  NAME is a state declared before, updated once; the value is a batch
 * float (computed after the step, from the whole batch). */
static void check_update(Sema *s, Decl *d) {
  Decl *st = sema_tab_get(&s->globals, d->name);
  Expr *c = sema_check_expr(s, d->body);
  d->checked = c;
  d->level = c->level;
  d->type = c->type;
  if (!st || st->kind != DECL_STATE) {
    if (st) {
      diag_error(s->d, d->name_rng, "`update` needs a state, but `%s` is %s", d->name, sema_a_kind(st->kind));
      diag_note(s->d, st->name_rng, "`%s` is defined here", d->name);
    } else if (!sema_declared_elsewhere(s, d->name, d->name_rng, false)) {
      diag_error(s->d, d->name_rng, "`update %s`: no state of this name is declared before it (declare it with "
                 "`state %s = VALUE;`)", d->name, d->name);
    }
    d->bad = true;
    return;
  }
  if (st->update) {
    diag_error(s->d, d->name_rng, "a second `update` of state `%s`; a state has exactly one", d->name);
    diag_note(s->d, st->update->name_rng, "the first `update %s` is here", d->name);
    d->bad = true;
    return;
  }
  st->update = d;
  d->update = st;
  if (c->type == TY_ERROR) {
    d->bad = true;
  } else if (c->level != LV_BATCH) {
    diag_error(s->d, d->body->rng, "the update of a state must be a batch value, but this is %s; reduce it, "
               "e.g. mean[batch](...)", sema_a_level(c->level));
    d->bad = true;
  } else if (c->type != TY_FLOAT) {
    diag_error(s->d, d->body->rng, "a state is a number, but this update is a bool (use where(c, 1, 0))");
    d->bad = true;
  }
}

static void check_objective(Sema *s) {
  Program *p = s->prog;
  for (int i = 0; i < p->ndecls; i++) {
    Decl *d = p->decls[i];
    if (d->kind != DECL_OBJECTIVE) continue;
    if (p->objective) {
      diag_error(s->d, d->rng, "a second `objective` statement");
      diag_note(s->d, p->objective->rng, "the first is here");
    } else if (i != 0) {
      diag_error(s->d, d->rng, "`objective` must be the first statement");
      p->objective = d;
    } else {
      p->objective = d;
    }
  }
  if (p->ndecls == 0) {
    diag_error(s->d, diag_range(1, 1, 1, 1), "empty program: a Rein program needs an `objective` "
               "statement and a `loss`");
    s->fatal = true;
  } else if (!p->objective) {
    diag_error(s->d, p->decls[0]->rng, "a program starts with `objective NAME \"description\";`, "
               "and this one has none");
  }
}

static void warn_unused(Sema *s) {
  for (int i = 0; i < s->prog->ndecls; i++) {
    Decl *d = s->prog->decls[i];
    if (d->uses || d->bad) continue;
    if (d->kind == DECL_LET || d->kind == DECL_PARAM || d->kind == DECL_STATE || d->kind == DECL_FN ||
        d->kind == DECL_INPUT)
      diag_warning(s->d, d->name_rng, "unused %s `%s`", ast_decl_kind_name(d->kind), d->name);
  }
}

bool sema_check(Program *prog, Diag *diag, Arena *arena) {
  Sema s;
  memset(&s, 0, sizeof s);
  s.d = diag;
  s.a = arena;
  s.prog = prog;
  s.error = ast_alloc(arena, sizeof(Expr));
  s.error->kind = AST_ERROR;
  s.error->type = TY_ERROR;
  int before = diag->nerrors;

  check_objective(&s);
  for (int i = 0; i < prog->ndecls; i++) {
    Decl *d = prog->decls[i];
    if (d->name && d->kind != DECL_OBJECTIVE && d->kind != DECL_UPDATE && !sema_tab_get(&s.all, d->name))
      sema_tab_put(&s.all, d->name, d);
  }
  for (int i = 0; i < prog->ndecls && !s.fatal; i++) {
    Decl *d = prog->decls[i];
    s.cur_index = i;
    switch (d->kind) {
    case DECL_OBJECTIVE: break;
    case DECL_PARAM:
    case DECL_STATE:
    case DECL_CONST: check_param_or_const(&s, d); break;
    case DECL_UPDATE: check_update(&s, d); break;
    case DECL_INPUT:
      if (may_declare(&s, d)) sema_tab_put(&s.globals, d->name, d);
      else d->bad = true;
      break;
    case DECL_FN: check_fn(&s, d); break;
    case DECL_LET:
    case DECL_LOSS:
    case DECL_METRIC: check_value(&s, d); break;
    }
  }
  if (!prog->loss && !s.fatal) {
    SrcRange r = prog->objective ? prog->objective->rng : diag_range(1, 1, 1, 1);
    diag_error(diag, r, "no `loss` statement; an objective needs exactly one, e.g. "
               "`loss = -mean[batch](adv * logp);`");
  }
  for (int i = 0; i < prog->ndecls && !s.fatal; i++) {
    Decl *d = prog->decls[i];
    if (d->kind == DECL_STATE && !d->bad && !d->update) {
      diag_error(diag, d->name_rng, "state `%s` has no `update %s = ...;`: a value that never changes is a "
                 "param", d->name, d->name);
      d->bad = true;
    }
  }
  if (!s.fatal && !diag_too_many(diag)) warn_unused(&s);
  if (!s.fatal && diag->nerrors == before) sema_lint(&s);
  free(s.globals.slots);
  free(s.all.slots);
  return diag->nerrors == before;
}
