/* sema_expr.c — checking one expression: name resolution, operators, built-in calls, reductions,
 * fn inlining and constant folding.
 *
 * sema_check_expr turns a raw tree into a checked one (ast.h) whose nodes carry a level, a type,
 * whether they are compile-time constants and whether they depend differentiably on
 * logp/entropy.  A call of a user fn is inlined: its body is checked again, here, with the
 * parameters bound to the checked arguments (the recursion expression -> fn body -> expression is
 * why inlining lives in this file and not with the fn definitions of sema.c).  A subtree that
 * already produced an error becomes the shared AST_ERROR node and silences everything built on
 * it, so one mistake gives one message.
 *
 * Uses the symbol tables and message words of sema_names.c; is called by sema.c (statements).
 */
#include "sema_internal.h"

#include <stdio.h>
#include <string.h>

/* A new checked node of kind K at R; counts it against SEMA_MAX_NODES. */
static Expr *new_node(Sema *s, AstKind k, SrcRange r) {
  if (++s->nodes > SEMA_MAX_NODES && !s->fatal) {
    diag_error(s->d, r, "program too large after inlining fn calls (more than %d expression "
               "nodes)", SEMA_MAX_NODES);
    s->fatal = true;
  }
  Expr *e = ast_alloc(s->a, sizeof *e);
  e->kind = k;
  e->rng = r;
  return e;
}

static const char *lvname(Level l) { return bi_level_names[l]; }

static Level finer(Level a, Level b) { return a < b ? a : b; }

/* Levels strictly finer than L, in words: "token", "token or seq", "token, seq or group". */
static const char *finer_than(Level l) {
  static const char *s[] = {"(none)", "token", "token or seq", "token, seq or group"};
  return s[l];
}

/* ---- names ---- */

/* Resolves a name used as a value.  Returns a checked node, or the error node after reporting. */
static Expr *check_name(Sema *s, const Expr *raw) {
  const char *name = raw->name;
  if (s->env) /* only the innermost fn's parameters are visible */
    for (int i = 0; i < s->env->fn->nparams; i++)
      if (!strcmp(s->env->fn->params[i], name)) return s->env->args[i];

  Decl *d = sema_tab_get(&s->globals, name);
  if (d) {
    d->uses++;
    switch (d->kind) {
    case DECL_CONST: {
      Expr *e = new_node(s, d->type == TY_BOOL ? AST_BOOL : AST_NUM, raw->rng);
      e->num = d->value;
      e->level = LV_BATCH;
      e->type = d->type;
      e->is_const = true;
      return d->bad ? s->error : e;
    }
    case DECL_STATE:
    case DECL_PARAM: {
      if (d->bad) return s->error;
      Expr *e = new_node(s, AST_PARAM, raw->rng);
      e->decl = d;
      e->level = LV_BATCH;
      e->type = TY_FLOAT;
      return e;
    }
    case DECL_INPUT: {
      if (d->bad) return s->error;
      Expr *e = new_node(s, AST_USERINPUT, raw->rng);
      e->decl = d;
      e->level = d->level;
      e->type = TY_FLOAT;
      return e;
    }
    case DECL_LET: {
      Expr *c = d->checked;
      if (!c || c->type == TY_ERROR) return s->error;
      if (c->kind == AST_NUM || c->kind == AST_BOOL) { /* fold a constant let */
        Expr *e = new_node(s, c->kind, raw->rng);
        *e = *c;
        e->rng = raw->rng;
        return e;
      }
      Expr *e = new_node(s, AST_LET, raw->rng);
      e->decl = d;
      e->level = c->level;
      e->type = c->type;
      e->diff = c->diff;
      return e;
    }
    case DECL_FN:
      diag_error(s->d, raw->rng, "`%s` is a fn; call it with arguments: %s(...)", name, name);
      return s->error;
    case DECL_METRIC:
      diag_error(s->d, raw->rng, "`%s` is a metric; metrics are outputs and cannot be used in "
                 "expressions (compute the value in a let and use that)", name);
      diag_note(s->d, d->name_rng, "metric `%s` is defined here", name);
      return s->error;
    case DECL_OBJECTIVE: /* not referred to by name: on to the built-ins */
    case DECL_UPDATE:
    case DECL_LOSS: break;
    }
  }
  for (int k = 0; k < REIN_NUM_TRAINER_CONSTS; k++) {
    if (strcmp(rein_trainer_const_name(k), name)) continue;
    if (!s->prog->trainer_used[k]) {
      s->prog->trainer_used[k] = true;
      s->tconst_use[k] = raw->rng;
    }
    Expr *e = new_node(s, AST_TRAINER, raw->rng);
    e->id = k;
    e->level = LV_BATCH;
    e->type = TY_FLOAT;
    return e;
  }
  int in = bi_find_input(name);
  if (in >= 0) {
    if (!s->input_used[in]) {
      s->input_used[in] = true;
      s->input_use[in] = raw->rng;
    }
    Expr *e = new_node(s, AST_INPUT, raw->rng);
    e->id = in;
    e->level = bi_inputs[in].level;
    e->type = bi_inputs[in].type;
    e->diff = bi_inputs[in].diff;
    return e;
  }
  if (bi_find_func(name) >= 0) {
    diag_error(s->d, raw->rng, "`%s` is a built-in function; call it: %s(...)", name, name);
    return s->error;
  }
  if (bi_find_red(name) >= 0) {
    diag_error(s->d, raw->rng, "`%s` is a reduction; write %s[LEVEL](x)", name, name);
    return s->error;
  }
  if (!sema_declared_elsewhere(s, name, raw->rng, false)) sema_unknown_name(s, name, raw->rng);
  return s->error;
}

/* ---- constant folding ---- */

static Expr *fold(Sema *s, Expr *e) {
  if (e->type == TY_ERROR) return e;
  double x[3] = {0, 0, 0};
  for (int i = 0; i < e->nargs; i++) {
    if (!e->args[i]->is_const) return e;
    x[i] = e->args[i]->num;
  }
  double v;
  if (e->kind == AST_UNARY || e->kind == AST_BINARY) v = bi_apply_op(e->id, x[0], x[1]);
  else if (e->kind == AST_FUNC && e->id != FN_UNIFORM) v = bi_apply_func(e->id, x);
  else return e;
  Expr *c = new_node(s, e->type == TY_BOOL ? AST_BOOL : AST_NUM, e->rng);
  c->num = v;
  c->level = LV_BATCH;
  c->type = e->type;
  c->is_const = true;
  return c;
}

/* ---- expressions ---- */

static Expr *make(Sema *s, AstKind k, int id, SrcRange r, Expr **args, int n) {
  Expr *e = new_node(s, k, r);
  e->id = id;
  e->nargs = n;
  e->args = ast_alloc(s->a, sizeof(Expr *) * (size_t)(n ? n : 1));
  e->level = LV_BATCH;
  for (int i = 0; i < n; i++) {
    e->args[i] = args[i];
    if (args[i]) e->level = finer(e->level, args[i]->level);
  }
  return e;
}

static bool any_error(Expr **v, int n) {
  for (int i = 0; i < n; i++)
    if (v[i] && v[i]->type == TY_ERROR) return true;
  return false;
}

static Expr *check_unary(Sema *s, const Expr *raw) {
  Expr *x = sema_check_expr(s, raw->args[0]);
  if (x->type == TY_ERROR) return s->error;
  char b[64];
  Expr *e = make(s, AST_UNARY, raw->id, raw->rng, &x, 1);
  if (raw->id == OP_NOT) {
    if (x->type != TY_BOOL) {
      diag_error(s->d, raw->args[0]->rng, "`not` needs a bool operand, but %s is a float",
                 sema_describe(s, raw->args[0], b, sizeof b));
      return s->error;
    }
    e->type = TY_BOOL;
  } else {
    e->type = TY_FLOAT;
    e->diff = x->diff;
  }
  return fold(s, e);
}

static Expr *check_binary(Sema *s, const Expr *raw) {
  Expr *v[2] = {sema_check_expr(s, raw->args[0]), sema_check_expr(s, raw->args[1])};
  if (any_error(v, 2)) return s->error;
  Expr *e = make(s, AST_BINARY, raw->id, raw->rng, v, 2);
  char b[64];
  switch (bi_ops[raw->id].cls) {
  case 'a':
    e->type = TY_FLOAT;
    e->diff = v[0]->diff || v[1]->diff;
    break;
  case 'c': e->type = TY_BOOL; break;
  default:
    for (int i = 0; i < 2; i++)
      if (v[i]->type != TY_BOOL) {
        diag_error(s->d, raw->args[i]->rng, "`%s` needs bool operands, but %s is a float "
                   "(a comparison such as `x > 0` gives a bool)", bi_ops[raw->id].spelling,
                   sema_describe(s, raw->args[i], b, sizeof b));
        return s->error;
      }
    e->type = TY_BOOL;
  }
  return fold(s, e);
}

/* Inlines a call of user fn F with raw arguments from RAW. */
static Expr *check_fn_call(Sema *s, const Expr *raw, Decl *f) {
  f->uses++;
  int n = raw->nargs;
  Expr **args = ast_alloc(s->a, sizeof(Expr *) * (size_t)(n ? n : 1));
  bool bad = f->bad;
  for (int i = 0; i < n; i++) {
    if (raw->argnames[i]) {
      diag_error(s->d, raw->argname_rngs[i], "fn arguments are positional; `%s=` is not allowed "
                 "in a call of `%s`", raw->argnames[i], f->name);
      bad = true;
    }
    args[i] = sema_check_expr(s, raw->args[i]);
    if (args[i]->type == TY_ERROR) bad = true;
  }
  if (n != f->nparams) {
    diag_error(s->d, raw->rng, "`%s` takes %d argument%s, but %d %s given", f->name, f->nparams,
               f->nparams == 1 ? "" : "s", n, n == 1 ? "was" : "were");
    diag_note(s->d, f->name_rng, "`%s` is defined here", f->name);
    return s->error;
  }
  if (bad) return s->error;
  if (s->inline_depth >= SEMA_MAX_INLINE) {
    diag_error(s->d, raw->rng, "fn calls nested more than %d deep", SEMA_MAX_INLINE);
    s->fatal = true;
    return s->error;
  }
  Env env = {s->env, f, args};
  s->env = &env;
  s->inline_depth++;
  if (!s->defcheck) f->calls++;
  int before = s->d->nerrors;
  Expr *body = sema_check_expr(s, f->body);
  s->inline_depth--;
  s->env = env.up;
  if (s->d->nerrors > before) {
    diag_note(s->d, raw->rng, "in this call of `%s`", f->name);
    return s->error;
  }
  if (body->type == TY_ERROR) return s->error;
  Expr *e = new_node(s, body->kind, raw->rng);
  *e = *body; /* a copy, so the result carries the call's range */
  e->rng = raw->rng;
  return e;
}

static Expr *check_builtin_call(Sema *s, const Expr *raw, FuncId f) {
  int n = raw->nargs;
  char b[64];
  for (int i = 0; i < n; i++)
    if (raw->argnames[i]) {
      diag_error(s->d, raw->argname_rngs[i], "`%s` has no argument named `%s`", bi_funcs[f].name,
                 raw->argnames[i]);
      return s->error;
    }
  if (n != bi_funcs[f].arity) {
    int k = bi_funcs[f].arity;
    diag_error(s->d, raw->rng, "`%s` takes %d argument%s, but %d %s given%s", bi_funcs[f].name, k,
               k == 1 ? "" : "s", n, n == 1 ? "was" : "were",
               (f == FN_MIN || f == FN_MAX) && n == 1
                   ? (f == FN_MIN ? "; for the minimum over a level write min[LEVEL](x)"
                                  : "; for the maximum over a level write max[LEVEL](x)")
                   : "");
    return s->error;
  }
  Expr *v[3] = {NULL, NULL, NULL};
  for (int i = 0; i < n; i++) v[i] = sema_check_expr(s, raw->args[i]);
  if (any_error(v, n)) return s->error;
  Expr *e = make(s, AST_FUNC, f, raw->rng, v, n);
  e->type = TY_FLOAT;
  /* the default: a float with a derivative from any argument when the op has one (sign and sg
   * have none) */
  if (f == FN_WHERE) {
    if (v[0]->type != TY_BOOL) {
      diag_error(s->d, raw->args[0]->rng, "the condition of `where` must be a bool, but %s is a "
                 "float", sema_describe(s, raw->args[0], b, sizeof b));
      return s->error;
    }
    if (v[1]->type == TY_BOOL && v[2]->type == TY_BOOL) e->type = TY_BOOL;
    e->diff = v[1]->diff || v[2]->diff;
  } else if (f == FN_SG || f == FN_KEEPGRAD) {
    e->type = v[0]->type;
    e->diff = f == FN_KEEPGRAD && v[0]->diff;
  } else if (f == FN_UNIFORM) {
    e->level = LV_SEQ;
  } else if (bi_funcs[f].diff) {
    for (int i = 0; i < n; i++) e->diff = e->diff || v[i]->diff;
  }
  return fold(s, e);
}

/* After a level error in reduction RAW: a note that the bracket names the level reduced to, with
 * RAW rewritten for level L (the level just coarser than the value's), or that a batch value
 * needs no reduction. */
static void level_note(Sema *s, const Expr *raw, Level l) {
  char b[96];
  if (l >= LV_COUNT)
    diag_note(s->d, raw->rng, "the bracket names the level the values are reduced to; a batch "
              "value is already one number and needs no reduction");
  else
    diag_note(s->d, raw->rng, "the bracket names the level the values are reduced to (one result "
              "per %s): %s", lvname(l), sema_with_level(s, raw, l, b, sizeof b));
}

/* After a filter error in reduction RAW with value X and filter F (raw trees): a note WHAT, then
 * the reduction with X * F as its only argument, when short enough to show. */
static void filter_note(Sema *s, const Expr *raw, const Expr *x, const Expr *f, const char *what) {
  char xs[64], fs[64];
  if (!sema_source(s, x->rng, xs, sizeof xs) || !sema_source(s, f->rng, fs, sizeof fs)) {
    diag_note(s->d, f->rng, "%s", what);
    return;
  }
  bool px = x->kind == AST_BINARY && !x->paren && bi_ops[x->id].cls != 'a';
  px = px || (x->kind == AST_BINARY && !x->paren && (x->id == OP_ADD || x->id == OP_SUB));
  bool pf = f->kind == AST_BINARY && !f->paren;
  diag_note(s->d, f->rng, "%s: `%s[%s](%s%s%s * %s%s%s)`", what, raw->name, lvname(raw->level),
            px ? "(" : "", xs, px ? ")" : "", pf ? "(" : "", fs, pf ? ")" : "");
}

/* What the second positional argument of reduction RID is: 'f' a bool filter, 'g' a scan's
 * discount, 'q' quantile's q, 'k' topk's count, 'p' topfrac's fraction. */
static char second_role(RedId rid) {
  return rid == RED_CUMSUM || rid == RED_RCUMSUM ? 'g'
         : rid == RED_QUANTILE                  ? 'q'
         : rid == RED_TOPK                       ? 'k'
         : rid == RED_TOPFRAC                   ? 'p'
                                                : 'f';
}

/* Checks A (from RAW), the second argument of a scan, quantile, topk or topfrac at level L. */
static bool check_second(Sema *s, RedId rid, Level L, const Expr *raw, const Expr *a) {
  char b[64];
  const char *name = bi_reds[rid].name;
  char role = second_role(rid);
  const char *what = role == 'q' ? "the quantile q" : role == 'k' ? "the count k"
                     : role == 'p' ? "the fraction p" : "the discount";
  if (a->type != TY_FLOAT) {
    diag_error(s->d, raw->rng, "%s of `%s[%s]` must be a float, but %s is a bool", what, name,
               lvname(L), sema_describe(s, raw, b, sizeof b));
    return false;
  }
  if (role == 'q') {
    if (!a->is_const || !(a->num >= 0 && a->num <= 1)) {
      diag_error(s->d, raw->rng, "the quantile q of `quantile[%s]` must be a constant between 0 "
                 "and 1, not %s", lvname(L), sema_describe(s, raw, b, sizeof b));
      return false;
    }
    return true;
  }
  if (a->level < L) {
    diag_error(s->d, raw->rng, "%s of `%s[%s]` is one value per %s (a %s value or coarser), but "
               "%s is %s", what, name, lvname(L), lvname(L), lvname(L),
               sema_describe(s, raw, b, sizeof b), sema_a_level(a->level));
    return false;
  }
  if (role == 'g' && a->diff) {
    diag_error(s->d, raw->rng, "the discount of `%s[seq]` must not depend on logp or entropy "
               "(it gets no gradient); wrap it in sg(...)", name);
    return false;
  }
  return true;
}

static Expr *check_reduce(Sema *s, const Expr *raw, RedId rid) {
  const BiRed *r = &bi_reds[rid];
  Level L = raw->level;
  char b[64], b2[64];
  const Expr *pos[2] = {NULL, NULL};
  const Expr *ddof_raw = NULL;
  int npos = 0;
  for (int i = 0; i < raw->nargs; i++) {
    if (raw->argnames[i]) {
      if (!strcmp(raw->argnames[i], "ddof") && r->ddof && !ddof_raw) {
        ddof_raw = raw->args[i];
        continue;
      }
      if (!strcmp(raw->argnames[i], "ddof") && r->ddof)
        diag_error(s->d, raw->argname_rngs[i], "`ddof` is given twice");
      else if (!strcmp(raw->argnames[i], "ddof"))
        diag_error(s->d, raw->argname_rngs[i], "only `std` and `var` take `ddof=`");
      else
        diag_error(s->d, raw->argname_rngs[i], "`%s[...]` has no argument named `%s`", r->name,
                   raw->argnames[i]);
      return s->error;
    }
    if (ddof_raw) {
      diag_error(s->d, raw->args[i]->rng, "a positional argument cannot follow `ddof=`");
      return s->error;
    }
    if (npos < 2) pos[npos] = raw->args[i];
    npos++;
  }
  if (npos < r->min_args || npos > r->max_args) {
    const char *want = rid == RED_COUNT                       ? "no argument or one bool condition"
                       : rid == RED_RANK || rid == RED_MEDIAN ? "exactly one argument"
                       : second_role(rid) == 'g'              ? "a token value and an optional discount"
                       : second_role(rid) == 'q'              ? "a value and a quantile q"
                       : second_role(rid) == 'k'              ? "a value and a count k"
                       : second_role(rid) == 'p'              ? "a value and a fraction p"
                                                              : "a value and an optional bool filter";
    diag_error(s->d, raw->rng, "`%s[%s]` takes %s, but %d argument%s %s given", r->name, lvname(L),
               want, npos, npos == 1 ? "" : "s", npos == 1 ? "was" : "were");
    return s->error;
  }
  if (L == LV_TOKEN) {
    diag_error(s->d, raw->rng, "`%s[token]`: token is the finest level, so nothing reduces to "
               "it; reduce to seq, group or batch", r->name);
    level_note(s, raw, LV_SEQ);
    return s->error;
  }
  if (second_role(rid) == 'g' && L != LV_SEQ) {
    diag_error(s->d, raw->rng, "`%s` scans the tokens of each sequence: write `%s[seq](x)`, not "
               "`%s[%s]`", r->name, r->name, r->name, lvname(L));
    return s->error;
  }
  Expr *x = pos[0] ? sema_check_expr(s, pos[0]) : NULL;
  Expr *filt = pos[1] ? sema_check_expr(s, pos[1]) : NULL;
  Expr *dd = ddof_raw ? sema_check_expr(s, ddof_raw) : NULL;
  if ((x && x->type == TY_ERROR) || (filt && filt->type == TY_ERROR) || (dd && dd->type == TY_ERROR))
    return s->error;

  if (x) {
    if (rid == RED_COUNT && x->type != TY_BOOL) {
      diag_error(s->d, pos[0]->rng, "`count[%s]` counts where a condition is true, but %s is a "
                 "float (compare it, e.g. `x > 0`, or use sum[%s])", lvname(L),
                 sema_describe(s, pos[0], b, sizeof b), lvname(L));
      return s->error;
    }
    if (x->level == L) {
      diag_error(s->d, pos[0]->rng, "%s is already %s; `%s[%s]` needs a finer (%s) value",
                 sema_describe(s, pos[0], b, sizeof b), sema_a_level(x->level), r->name,
                 lvname(L), finer_than(L));
      level_note(s, raw, x->level + 1);
      return s->error;
    }
    if (x->level > L) {
      diag_error(s->d, pos[0]->rng, "%s is %s; `%s[%s]` cannot reduce it to the finer level %s "
                 "(reductions go from a finer to a coarser level; a %s value is already "
                 "broadcast to every %s)", sema_describe(s, pos[0], b, sizeof b),
                 sema_a_level(x->level), r->name, lvname(L), lvname(L), lvname(x->level),
                 lvname(L));
      level_note(s, raw, x->level + 1);
      return s->error;
    }
  }
  if (filt && second_role(rid) != 'f' && !check_second(s, rid, L, pos[1], filt)) return s->error;
  if (filt && second_role(rid) == 'f') {
    if (filt->type != TY_BOOL) {
      diag_error(s->d, pos[1]->rng, "the filter of `%s[%s]` must be a bool, but %s is a float",
                 r->name, lvname(L), sema_describe(s, pos[1], b, sizeof b));
      if (r->ddof && filt->is_const && (filt->num == 0 || filt->num == 1)) {
        char xs[64];
        diag_note(s->d, pos[1]->rng, "for Bessel's correction, name the argument: `%s[%s](%s, "
                  "ddof=%g)`", r->name, lvname(L),
                  sema_source(s, pos[0]->rng, xs, sizeof xs) ? xs : "...", filt->num);
      }
      else {
        char what[160], fb[64];
        snprintf(what, sizeof what, "a filter is a bool that selects elements (compare, e.g. "
                 "`%s > 0`); to scale the values by it instead, multiply",
                 sema_source(s, pos[1]->rng, fb, sizeof fb) && strlen(fb) <= 24 ? fb : "x");
        filter_note(s, raw, pos[0], pos[1], what);
      }
      return s->error;
    }
    if (filt->level < x->level) {
      diag_error(s->d, pos[1]->rng, "the filter %s is %s, finer than the value it filters (%s is "
                 "%s); a filter must be at the value's level or coarser",
                 sema_describe(s, pos[1], b, sizeof b), sema_a_level(filt->level),
                 sema_describe(s, pos[0], b2, sizeof b2), sema_a_level(x->level));
      char what[96];
      snprintf(what, sizeof what, "to reduce over the filter's %s elements, multiply the value "
               "by it (a bool counts as 0 or 1)", lvname(filt->level));
      filter_note(s, raw, pos[0], pos[1], what);
      return s->error;
    }
  }
  int ddof = 0;
  if (dd) {
    if (!dd->is_const || dd->type != TY_FLOAT || (dd->num != 0 && dd->num != 1)) {
      diag_error(s->d, ddof_raw->rng, "`ddof` must be the constant 0 or 1, not %s",
                 sema_describe(s, ddof_raw, b, sizeof b));
      return s->error;
    }
    ddof = (int)dd->num;
  }
  Expr *v[2] = {x, filt};
  Expr *e = make(s, AST_REDUCE, rid, raw->rng, v, 2);
  e->red_level = L;
  bool sibling = rid == RED_RANK || rid == RED_CUMSUM || rid == RED_RCUMSUM || rid == RED_TOPK ||
                 rid == RED_TOPFRAC; /* one value per element of x */
  bool select = rid == RED_TOPK || rid == RED_TOPFRAC;
  e->level = sibling ? x->level : L;
  e->type = select ? TY_BOOL : TY_FLOAT;
  e->ddof = ddof;
  e->diff = rid != RED_RANK && rid != RED_COUNT && !select && x && x->diff;
  return e;
}

static Expr *check_call(Sema *s, const Expr *raw) {
  const char *name = raw->name;
  int rid = bi_find_red(name), fid = bi_find_func(name);
  Decl *user = sema_tab_get(&s->globals, name);
  if (s->env)
    for (int i = 0; i < s->env->fn->nparams; i++)
      if (!strcmp(s->env->fn->params[i], name)) {
        diag_error(s->d, raw->rng, "`%s` is a parameter of fn `%s`, not a function", name,
                   s->env->fn->name);
        return s->error;
      }
  if (raw->has_level) {
    if (rid >= 0) return check_reduce(s, raw, rid);
    char reds[256];
    bi_red_list(reds, sizeof reds);
    SemaNameKind got;
    const char *sug = fid >= 0 || user ? NULL : sema_suggest(s, name, SEMA_NAME_RED, &got);
    if (fid >= 0 || (user && user->kind == DECL_FN))
      diag_error(s->d, raw->rng, "`%s` is not a reduction; `[%s]` applies only to %s", name,
                 lvname(raw->level), reds);
    else if (sug && got == SEMA_NAME_RED)
      diag_error(s->d, raw->rng, "unknown reduction `%s`; did you mean `%s[%s]`?", name, sug,
                 lvname(raw->level));
    else
      diag_error(s->d, raw->rng, "unknown reduction `%s`; the reductions are %s", name, reds);
    return s->error;
  }
  if (user && user->kind == DECL_FN) return check_fn_call(s, raw, user);
  if (fid >= 0) return check_builtin_call(s, raw, fid);
  if (rid >= 0) {
    diag_error(s->d, raw->rng, "`%s` is a reduction and needs a level: %s[LEVEL](x), with LEVEL "
               "seq, group or batch", name, name);
    return s->error;
  }
  if (user) {
    user->uses++;
    diag_error(s->d, raw->rng, "`%s` is %s, not a function", name, sema_a_kind(user->kind));
    diag_note(s->d, user->name_rng, "`%s` is defined here", name);
    return s->error;
  }
  if (bi_find_input(name) >= 0) {
    diag_error(s->d, raw->rng, "`%s` is a built-in input, not a function", name);
    return s->error;
  }
  if (!sema_declared_elsewhere(s, name, raw->rng, true)) {
    SemaNameKind got;
    const char *sug = sema_suggest(s, name, SEMA_NAME_FUNC, &got);
    char fns[512];
    if (sug && got == SEMA_NAME_FUNC)
      diag_error(s->d, raw->rng, "unknown function `%s`; did you mean `%s`?", name, sug);
    else if (sug && got == SEMA_NAME_RED)
      diag_error(s->d, raw->rng, "unknown function `%s`; did you mean the reduction "
                 "`%s[LEVEL](...)`?", name, sug);
    else
      diag_error(s->d, raw->rng, "unknown function `%s`; the functions are %s", name,
                 bi_func_list(fns, sizeof fns));
  }
  return s->error;
}

/* Checks raw expression RAW in the current environment and returns its checked tree (or the
 * shared error node).  Bounded recursion: past SEMA_MAX_RECURSION it reports and stops. */
Expr *sema_check_expr(Sema *s, const Expr *raw) {
  if (s->fatal) return s->error;
  if (++s->recursion > SEMA_MAX_RECURSION) {
    diag_error(s->d, raw->rng, "expression nested too deeply after inlining fn calls (more than "
               "%d levels)", SEMA_MAX_RECURSION);
    s->fatal = true;
    s->recursion--;
    return s->error;
  }
  Expr *e = s->error;
  switch (raw->kind) {
  case AST_NUM:
  case AST_BOOL:
    e = new_node(s, raw->kind, raw->rng);
    e->num = raw->num;
    e->level = LV_BATCH;
    e->type = raw->kind == AST_NUM ? TY_FLOAT : TY_BOOL;
    e->is_const = true;
    break;
  case AST_NAME: e = check_name(s, raw); break;
  case AST_UNARY: e = check_unary(s, raw); break;
  case AST_BINARY: e = check_binary(s, raw); break;
  case AST_CALL: e = check_call(s, raw); break;
  case AST_INPUT: /* checked kinds: never in a raw tree */
  case AST_USERINPUT:
  case AST_PARAM:
  case AST_TRAINER:
  case AST_LET:
  case AST_FUNC:
  case AST_REDUCE:
  case AST_ERROR: break;
  }
  s->recursion--;
  return e;
}
