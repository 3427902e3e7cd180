/* sema.c — names, fn inlining, constant folding, levels and types (spec §1–§5).
 *
 * The checker walks the statements in order (use before definition is an error, so one pass
 * suffices) and builds, for every let, loss and metric, a checked tree (ast.h) whose nodes carry
 * a level, a type, whether they are compile-time constants and whether they depend differentiably
 * on logp/entropy.
 *
 * fn bodies are checked twice: once at their definition with every parameter bound to an
 * AST_ERROR node (which never causes a message), so that mistakes that do not involve the
 * parameters are reported once, where they are written; and again at each call, with the
 * parameters bound to the checked arguments, which finds the level and type errors that depend on
 * them and reports them with a note at the call.  A subtree that already produced an error becomes
 * AST_ERROR and silences everything built on it, so one mistake gives one message.
 */
#include "sema.h"
#include "rein/common.h"

#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* ---- a string-keyed hash table (open addressing) ---- */
typedef struct {
  const char *key;
  Decl *val;
} Slot;

typedef struct {
  Slot *slots;
  size_t cap, n;
} SymTab;

static uint64_t hash_str(const char *s) {
  uint64_t h = 1469598103934665603ull;
  for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
  return h;
}

static Decl *tab_get(const SymTab *t, const char *key) {
  if (!t->cap) return NULL;
  for (size_t i = hash_str(key) & (t->cap - 1);; i = (i + 1) & (t->cap - 1)) {
    if (!t->slots[i].key) return NULL;
    if (!strcmp(t->slots[i].key, key)) return t->slots[i].val;
  }
}

static void tab_put(SymTab *t, const char *key, Decl *val) {
  if (2 * (t->n + 1) > t->cap) {
    SymTab big = {rc_calloc(t->cap ? t->cap * 2 : 64, sizeof(Slot)), t->cap ? t->cap * 2 : 64, 0};
    for (size_t i = 0; i < t->cap; i++)
      if (t->slots[i].key) tab_put(&big, t->slots[i].key, t->slots[i].val);
    free(t->slots);
    *t = big;
  }
  size_t i = hash_str(key) & (t->cap - 1);
  while (t->slots[i].key && strcmp(t->slots[i].key, key)) i = (i + 1) & (t->cap - 1);
  if (!t->slots[i].key) t->n++;
  t->slots[i].key = key;
  t->slots[i].val = val;
}

/* ---- checker state ---- */
typedef struct Env {
  struct Env *up;
  Decl *fn;
  Expr **args; /* checked arguments bound to fn->params */
} Env;

typedef struct {
  Diag *d;
  Arena *a;
  Program *prog;
  SymTab globals; /* names defined so far */
  SymTab all;     /* first declaration of every name (for "used before its definition") */
  Env *env;       /* innermost fn being inlined */
  int inline_depth, recursion;
  int cur_index;       /* index of the statement being checked */
  long nodes;
  bool fatal;          /* a size limit was hit: stop checking */
  bool defcheck;       /* checking a fn body at its definition */
  bool input_used[IN_COUNT];
  SrcRange input_use[IN_COUNT];
  Expr *error;         /* the shared AST_ERROR node */
} Sema;

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

/* Writes a short description of raw expression E for messages: its source text in backticks
 * when it is short and on one line, otherwise "this expression". */
static const char *describe(Sema *s, const Expr *e, char *buf, size_t n) {
  const SrcFile *f = s->prog->file;
  SrcRange r = e->rng;
  if (f && r.begin.line == r.end.line && r.end.col > r.begin.col && r.end.col - r.begin.col <= 40 &&
      r.begin.line <= f->nlines) {
    size_t off = f->line_start[r.begin.line - 1] + (size_t)r.begin.col - 1;
    snprintf(buf, n, "`%.*s`", r.end.col - r.begin.col, f->text + off);
  } else {
    snprintf(buf, n, "this expression");
  }
  return buf;
}

static const char *lvname(Level l) { return bi_level_names[l]; }

/* "a let", "an input", ... */
static const char *a_kind(DeclKind k) {
  static const char *s[] = {"an objective", "a param", "a const", "an input",
                            "a fn",         "a let",   "a loss",  "a metric"};
  return s[k];
}

/* "a token value", "a seq value" ... */
static const char *a_level(Level l) {
  static const char *s[] = {"a token value", "a seq value", "a group value", "a batch value"};
  return s[l];
}

static Level finer(Level a, Level b) { return a < b ? a : b; }

/* Levels strictly finer than L, in words: "token", "token or seq", "token, seq or group". */
static const char *finer_than(Level l) {
  static const char *s[] = {"(none)", "token", "token or seq", "token, seq or group"};
  return s[l];
}

/* ---- name resolution ---- */

/* Reports an unknown name with a suggestion when a visible name is within edit distance 2. */
static int edit_distance(const char *a, const char *b) {
  size_t la = strlen(a), lb = strlen(b);
  if (la > 64 || lb > 64) return 99;
  int row[65];
  for (size_t j = 0; j <= lb; j++) row[j] = (int)j;
  for (size_t i = 1; i <= la; i++) {
    int prev = row[0];
    row[0] = (int)i;
    for (size_t j = 1; j <= lb; j++) {
      int cur = row[j];
      int sub = prev + (a[i - 1] != b[j - 1]);
      int del = row[j] + 1, ins = row[j - 1] + 1;
      row[j] = sub < del ? (sub < ins ? sub : ins) : (del < ins ? del : ins);
      prev = cur;
    }
  }
  return row[lb];
}

static void unknown_name(Sema *s, const char *name, SrcRange at) {
  const char *best = NULL;
  int bestd = strlen(name) > 3 ? 3 : 2;
  for (size_t i = 0; i < s->globals.cap; i++) {
    const char *k = s->globals.slots[i].key;
    if (!k) continue;
    int dist = edit_distance(name, k);
    if (dist < bestd || (dist == bestd && best && strcmp(k, best) < 0)) { bestd = dist; best = k; }
  }
  for (int i = 0; i < IN_COUNT; i++) {
    int dist = edit_distance(name, bi_inputs[i].name);
    if (dist < bestd) { bestd = dist; best = bi_inputs[i].name; }
  }
  if (best) diag_error(s->d, at, "unknown name `%s`; did you mean `%s`?", name, best);
  else diag_error(s->d, at, "unknown name `%s`", name);
}

/* Resolves the case of a name that is not visible at AT but is declared somewhere in the file:
 * in its own definition (recursion), later in the file (use before definition, with a note), or
 * earlier by a definition that was rejected and already reported (silent).  CALL: the name is
 * called.  Returns false when NAME is declared nowhere, for the caller's "unknown" message. */
static bool declared_elsewhere(Sema *s, const char *name, SrcRange at, bool call) {
  Decl *later = tab_get(&s->all, name);
  if (!later) return false;
  later->uses++; /* reported here: not also "unused" */
  if (later->checking) {
    if (call)
      diag_error(s->d, at, "fn `%s` calls itself; fns are inlined and cannot be recursive", name);
    else
      diag_error(s->d, at, "`%s` is used in its own definition (%s cannot be recursive)", name,
                 a_kind(later->kind));
  } else if (later->index > s->cur_index) {
    if (call)
      diag_error(s->d, at, "%s `%s` is used before its definition",
                 ast_decl_kind_name(later->kind), name);
    else
      diag_error(s->d, at, "`%s` is used before its definition", name);
    diag_note(s->d, later->name_rng, "`%s` is defined here", name);
  }
  return true;
}

/* Resolves a name used as a value.  Returns a checked node, or the error node after reporting. */
static Expr *check_name(Sema *s, const Expr *raw) {
  const char *name = raw->name;
  if (s->env) /* only the innermost fn's parameters are visible */
    for (int i = 0; i < s->env->fn->nparams; i++)
      if (!strcmp(s->env->fn->params[i], name)) return s->env->args[i];

  Decl *d = tab_get(&s->globals, name);
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
    case DECL_LOSS: break;
    }
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
  if (!declared_elsewhere(s, name, raw->rng, false)) unknown_name(s, name, raw->rng);
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

static Expr *check(Sema *s, const Expr *raw);

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
  Expr *x = check(s, raw->args[0]);
  if (x->type == TY_ERROR) return s->error;
  char b[64];
  Expr *e = make(s, AST_UNARY, raw->id, raw->rng, &x, 1);
  if (raw->id == OP_NOT) {
    if (x->type != TY_BOOL) {
      diag_error(s->d, raw->args[0]->rng, "`not` needs a bool operand, but %s is a float",
                 describe(s, raw->args[0], b, sizeof b));
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
  Expr *v[2] = {check(s, raw->args[0]), check(s, raw->args[1])};
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
                   describe(s, raw->args[i], b, sizeof b));
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
    args[i] = check(s, raw->args[i]);
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
  Expr *body = check(s, f->body);
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
  for (int i = 0; i < n; i++) v[i] = check(s, raw->args[i]);
  if (any_error(v, n)) return s->error;
  Expr *e = make(s, AST_FUNC, f, raw->rng, v, n);
  e->type = TY_FLOAT;
  /* the default: a float with a derivative from any argument when the op has one (sign and sg
   * have none) */
  if (f == FN_WHERE) {
    if (v[0]->type != TY_BOOL) {
      diag_error(s->d, raw->args[0]->rng, "the condition of `where` must be a bool, but %s is a "
                 "float", describe(s, raw->args[0], b, sizeof b));
      return s->error;
    }
    if (v[1]->type == TY_BOOL && v[2]->type == TY_BOOL) e->type = TY_BOOL;
    e->diff = v[1]->diff || v[2]->diff;
  } else if (f == FN_SG) {
    e->type = v[0]->type;
  } else if (f == FN_UNIFORM) {
    e->level = LV_SEQ;
  } else if (bi_funcs[f].diff) {
    for (int i = 0; i < n; i++) e->diff = e->diff || v[i]->diff;
  }
  return fold(s, e);
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
    const char *want = rid == RED_COUNT  ? "no argument or one bool condition"
                       : rid == RED_RANK ? "exactly one argument"
                                         : "a value and an optional bool filter";
    diag_error(s->d, raw->rng, "`%s[%s]` takes %s, but %d argument%s %s given", r->name, lvname(L),
               want, npos, npos == 1 ? "" : "s", npos == 1 ? "was" : "were");
    return s->error;
  }
  if (L == LV_TOKEN) {
    diag_error(s->d, raw->rng, "`%s[token]`: token is the finest level, so nothing reduces to "
               "it; reduce to seq, group or batch", r->name);
    return s->error;
  }
  Expr *x = pos[0] ? check(s, pos[0]) : NULL;
  Expr *filt = pos[1] ? check(s, pos[1]) : NULL;
  Expr *dd = ddof_raw ? check(s, ddof_raw) : NULL;
  if ((x && x->type == TY_ERROR) || (filt && filt->type == TY_ERROR) || (dd && dd->type == TY_ERROR))
    return s->error;

  if (x) {
    if (rid == RED_COUNT && x->type != TY_BOOL) {
      diag_error(s->d, pos[0]->rng, "`count[%s]` counts where a condition is true, but %s is a "
                 "float (compare it, e.g. `x > 0`, or use sum[%s])", lvname(L),
                 describe(s, pos[0], b, sizeof b), lvname(L));
      return s->error;
    }
    if (x->level == L) {
      diag_error(s->d, pos[0]->rng, "%s is already %s; `%s[%s]` needs a finer (%s) value",
                 describe(s, pos[0], b, sizeof b), a_level(x->level), r->name, lvname(L),
                 finer_than(L));
      return s->error;
    }
    if (x->level > L) {
      diag_error(s->d, pos[0]->rng, "%s is %s; `%s[%s]` cannot reduce it to the finer level %s "
                 "(reductions go from a finer to a coarser level; a %s value is already "
                 "broadcast to every %s)", describe(s, pos[0], b, sizeof b), a_level(x->level),
                 r->name, lvname(L), lvname(L), lvname(x->level), lvname(L));
      return s->error;
    }
  }
  if (filt) {
    if (filt->type != TY_BOOL) {
      diag_error(s->d, pos[1]->rng, "the filter of `%s[%s]` must be a bool, but %s is a float",
                 r->name, lvname(L), describe(s, pos[1], b, sizeof b));
      return s->error;
    }
    if (filt->level < x->level) {
      diag_error(s->d, pos[1]->rng, "the filter %s is %s, finer than the value it filters (%s is "
                 "%s); a filter must be at the value's level or coarser",
                 describe(s, pos[1], b, sizeof b), a_level(filt->level),
                 describe(s, pos[0], b2, sizeof b2), a_level(x->level));
      return s->error;
    }
  }
  int ddof = 0;
  if (dd) {
    if (!dd->is_const || dd->type != TY_FLOAT || (dd->num != 0 && dd->num != 1)) {
      diag_error(s->d, ddof_raw->rng, "`ddof` must be the constant 0 or 1, not %s",
                 describe(s, ddof_raw, b, sizeof b));
      return s->error;
    }
    ddof = (int)dd->num;
  }
  Expr *v[2] = {x, filt};
  Expr *e = make(s, AST_REDUCE, rid, raw->rng, v, 2);
  e->red_level = L;
  e->level = rid == RED_RANK ? x->level : L;
  e->type = TY_FLOAT;
  e->ddof = ddof;
  e->diff = rid != RED_RANK && rid != RED_COUNT && x && x->diff;
  return e;
}

static Expr *check_call(Sema *s, const Expr *raw) {
  const char *name = raw->name;
  int rid = bi_find_red(name), fid = bi_find_func(name);
  Decl *user = tab_get(&s->globals, name);
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
    if (fid >= 0 || (user && user->kind == DECL_FN))
      diag_error(s->d, raw->rng, "`%s` is not a reduction; `[%s]` applies only to %s", name,
                 lvname(raw->level), reds);
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
    diag_error(s->d, raw->rng, "`%s` is %s, not a function", name, a_kind(user->kind));
    diag_note(s->d, user->name_rng, "`%s` is defined here", name);
    return s->error;
  }
  if (bi_find_input(name) >= 0) {
    diag_error(s->d, raw->rng, "`%s` is a built-in input, not a function", name);
    return s->error;
  }
  if (!declared_elsewhere(s, name, raw->rng, true))
    diag_error(s->d, raw->rng, "unknown function `%s`", name);
  return s->error;
}

/* Checks raw expression RAW in the current environment and returns its checked tree (or the
 * shared error node).  Bounded recursion: past SEMA_MAX_RECURSION it reports and stops. */
static Expr *check(Sema *s, const Expr *raw) {
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
  case AST_LET:
  case AST_FUNC:
  case AST_REDUCE:
  case AST_ERROR: break;
  }
  s->recursion--;
  return e;
}

/* ---- declarations ---- */

/* Checks that D's name may be declared here; returns false (after reporting) if not. */
static bool may_declare(Sema *s, Decl *d) {
  const char *name = d->name;
  if (bi_find_func(name) >= 0 || bi_find_red(name) >= 0) {
    diag_error(s->d, d->name_rng, "`%s` is a built-in %s and cannot be redefined", name,
               bi_find_func(name) >= 0 ? "function" : "reduction");
    return false;
  }
  Decl *prev = tab_get(&s->globals, name);
  if (prev) {
    diag_error(s->d, d->name_rng, "duplicate definition of `%s`", name);
    diag_note(s->d, prev->name_rng, "`%s` was first defined here, as %s", name,
              a_kind(prev->kind));
    return false;
  }
  int in = bi_find_input(name);
  if (in >= 0 && d->kind == DECL_INPUT) {
    diag_error(s->d, d->name_rng, "`%s` is a built-in input (%s); it needs no declaration", name,
               a_level(bi_inputs[in].level));
    return false;
  }
  if (in >= 0 && s->input_used[in]) {
    diag_error(s->d, d->name_rng, "`%s` is defined after the built-in input `%s` (%s) was used; "
               "a name must mean one thing in a program", name, name,
               a_level(bi_inputs[in].level));
    diag_note(s->d, s->input_use[in], "the built-in `%s` is used here", name);
    return false;
  }
  return true;
}

/* Finds the first leaf of checked tree E that is not a compile-time constant, for messages. */
static const Expr *first_nonconst(const Expr *e) {
  if (e->is_const) return NULL;
  if (e->kind == AST_PARAM || e->kind == AST_INPUT || e->kind == AST_USERINPUT ||
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
  const char *kind = why->kind == AST_PARAM   ? "a param, set at run time"
                     : why->kind == AST_LET   ? "a let"
                     : why->kind == AST_FUNC  ? "a random draw"
                     : why->kind == AST_INPUT || why->kind == AST_USERINPUT ? "an input"
                                                                              : "not constant";
  char b[64];
  SrcRange r = why->rng;
  Expr tmp = {.rng = r};
  diag_error(s->d, r, "%s `%s` must be a compile-time constant, but %s is %s", what, d->name,
             describe(s, &tmp, b, sizeof b), kind);
}

static void check_param_or_const(Sema *s, Decl *d) {
  bool ok = may_declare(s, d);
  Expr *c = check(s, d->body);
  const char *what = d->kind == DECL_PARAM ? "the default of param" : "const";
  if (c->type == TY_ERROR) {
    d->bad = true;
  } else if (!c->is_const) {
    nonconst_error(s, d, c, what);
    d->bad = true;
  } else if (d->kind == DECL_PARAM && c->type == TY_BOOL) {
    diag_error(s->d, d->body->rng, "a param is a number, but the default of `%s` is a bool (use "
               "a const for a compile-time bool)", d->name);
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
  if (ok) tab_put(&s->globals, d->name, d);
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
    Decl *g = tab_get(&s->globals, pn);
    if (g) {
      diag_error(s->d, d->param_rngs[i], "parameter `%s` of fn `%s` has the name of %s "
                 "(names are unique: no shadowing)", pn, d->name, a_kind(g->kind));
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
    check(s, d->body);
    d->checking = false;
    s->defcheck = false;
    s->env = saved;
    if (s->d->nerrors > before) d->bad = true;
  }
  if (ok) tab_put(&s->globals, d->name, d);
  else d->bad = true;
}

/* Checks a let, the loss or a metric: the body, then the rules of its kind. */
static void check_value(Sema *s, Decl *d) {
  bool ok = d->kind == DECL_LOSS || may_declare(s, d);
  d->checking = true;
  Expr *c = check(s, d->body);
  d->checking = false;
  d->checked = c;
  d->level = c->level;
  d->type = c->type;
  if (c->type == TY_ERROR) {
    d->bad = true;
  } else if (d->kind == DECL_LOSS || d->kind == DECL_METRIC) {
    const char *what = d->kind == DECL_LOSS ? "the loss" : "a metric";
    if (c->level != LV_BATCH) {
      diag_error(s->d, d->body->rng, "%s must be a batch value, but this is %s; reduce it, e.g. "
                 "mean[batch](...)", what, a_level(c->level));
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
    tab_put(&s->globals, d->name, d);
  } else {
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
    if (d->kind == DECL_LET || d->kind == DECL_PARAM || d->kind == DECL_FN ||
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
    if (d->name && d->kind != DECL_OBJECTIVE && !tab_get(&s.all, d->name))
      tab_put(&s.all, d->name, d);
  }
  for (int i = 0; i < prog->ndecls && !s.fatal; i++) {
    Decl *d = prog->decls[i];
    s.cur_index = i;
    switch (d->kind) {
    case DECL_OBJECTIVE: break;
    case DECL_PARAM:
    case DECL_CONST: check_param_or_const(&s, d); break;
    case DECL_INPUT:
      if (may_declare(&s, d)) tab_put(&s.globals, d->name, d);
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
  if (!s.fatal && !diag_too_many(diag)) warn_unused(&s);
  free(s.globals.slots);
  free(s.all.slots);
  return diag->nerrors == before;
}
