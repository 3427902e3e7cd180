/* ast.c — arena allocation, node constructors and the deterministic printer of checked programs.
 *
 * The printer is the format of `rein emit --ast`: stable across runs and platforms (numbers are
 * printed with %.17g, declarations are referred to by name, never by address), so golden tests can
 * compare it line by line.
 */
#include "ast.h"
#include "rein/common.h"

#include <stdlib.h>
#include <string.h>

/* ---- arena ---- */
struct ArenaBlock {
  ArenaBlock *next;
  size_t used, cap;
  _Alignas(16) unsigned char data[];
};

void *ast_alloc(Arena *a, size_t n) {
  n = (n + 15) & ~(size_t)15;
  if (!a->head || a->head->used + n > a->head->cap) {
    size_t cap = n > 65536 ? n : 65536;
    ArenaBlock *b = rc_malloc(sizeof *b + cap);
    b->next = a->head;
    b->used = 0;
    b->cap = cap;
    a->head = b;
  }
  void *p = a->head->data + a->head->used;
  a->head->used += n;
  memset(p, 0, n);
  return p;
}

char *ast_strndup(Arena *a, const char *s, size_t n) {
  char *p = ast_alloc(a, n + 1);
  memcpy(p, s, n);
  p[n] = 0;
  return p;
}

void ast_arena_free(Arena *a) {
  for (ArenaBlock *b = a->head, *next; b; b = next) {
    next = b->next;
    free(b);
  }
  a->head = NULL;
}

/* ---- constructors ---- */
static Expr *new_expr(Arena *a, AstKind k, SrcRange r) {
  Expr *e = ast_alloc(a, sizeof *e);
  e->kind = k;
  e->rng = r;
  e->depth = 1;
  return e;
}

static int max_depth(Expr **args, int n) {
  int d = 0;
  for (int i = 0; i < n; i++)
    if (args[i] && args[i]->depth > d) d = args[i]->depth;
  return d;
}

Expr *ast_num(Arena *a, SrcRange r, double v) {
  Expr *e = new_expr(a, AST_NUM, r);
  e->num = v;
  return e;
}

Expr *ast_bool(Arena *a, SrcRange r, bool v) {
  Expr *e = new_expr(a, AST_BOOL, r);
  e->num = v;
  return e;
}

Expr *ast_name(Arena *a, SrcRange r, const char *name) {
  Expr *e = new_expr(a, AST_NAME, r);
  e->name = name;
  return e;
}

Expr *ast_unary(Arena *a, SrcRange r, OpId op, Expr *x) {
  Expr *e = new_expr(a, AST_UNARY, r);
  e->id = op;
  e->args = ast_alloc(a, sizeof(Expr *));
  e->args[0] = x;
  e->nargs = 1;
  e->depth = 1 + x->depth;
  return e;
}

Expr *ast_binary(Arena *a, SrcRange r, OpId op, Expr *x, Expr *y) {
  Expr *e = new_expr(a, AST_BINARY, r);
  e->id = op;
  e->args = ast_alloc(a, 2 * sizeof(Expr *));
  e->args[0] = x;
  e->args[1] = y;
  e->nargs = 2;
  e->depth = 1 + max_depth(e->args, 2);
  return e;
}

Expr *ast_call(Arena *a, SrcRange r, const char *name, bool has_level, Level lv, Expr **args,
               const char **names, SrcRange *name_rngs, int nargs) {
  Expr *e = new_expr(a, AST_CALL, r);
  e->name = name;
  e->has_level = has_level;
  e->level = lv;
  e->nargs = nargs;
  if (nargs) {
    e->args = ast_alloc(a, sizeof(Expr *) * (size_t)nargs);
    e->argnames = ast_alloc(a, sizeof(char *) * (size_t)nargs);
    e->argname_rngs = ast_alloc(a, sizeof(SrcRange) * (size_t)nargs);
    memcpy(e->args, args, sizeof(Expr *) * (size_t)nargs);
    memcpy(e->argnames, names, sizeof(char *) * (size_t)nargs);
    memcpy(e->argname_rngs, name_rngs, sizeof(SrcRange) * (size_t)nargs);
  }
  e->depth = 1 + max_depth(e->args, nargs);
  return e;
}

void ast_args_push(Arena *a, AstArgList *l, const char *name, SrcRange name_rng, Expr *e) {
  if (l->n == l->cap) {
    int cap = l->cap ? l->cap * 2 : 4;
    Expr **args = ast_alloc(a, sizeof(Expr *) * (size_t)cap);
    const char **names = ast_alloc(a, sizeof(char *) * (size_t)cap);
    SrcRange *rngs = ast_alloc(a, sizeof(SrcRange) * (size_t)cap);
    if (l->n) {
      memcpy(args, l->args, sizeof(Expr *) * (size_t)l->n);
      memcpy(names, l->names, sizeof(char *) * (size_t)l->n);
      memcpy(rngs, l->rngs, sizeof(SrcRange) * (size_t)l->n);
    }
    l->args = args;
    l->names = names;
    l->rngs = rngs;
    l->cap = cap;
  }
  l->args[l->n] = e;
  l->names[l->n] = name;
  l->rngs[l->n] = name_rng;
  l->n++;
}

Decl *ast_decl(Arena *a, DeclKind k, SrcRange r) {
  Decl *d = ast_alloc(a, sizeof *d);
  d->kind = k;
  d->rng = r;
  d->name_rng = r;
  return d;
}

void ast_program_add(Arena *a, Program *p, Decl *d) {
  if (p->ndecls == p->cap) {
    int cap = p->cap ? p->cap * 2 : 16;
    Decl **v = ast_alloc(a, sizeof(Decl *) * (size_t)cap);
    if (p->ndecls) memcpy(v, p->decls, sizeof(Decl *) * (size_t)p->ndecls);
    p->decls = v;
    p->cap = cap;
  }
  d->index = p->ndecls;
  p->decls[p->ndecls++] = d;
}

const char *ast_decl_kind_name(DeclKind k) {
  static const char *names[] = {"objective", "param", "const",  "input", "fn",
                                "let",       "loss",  "metric", "state", "update"};
  return names[k];
}

/* ---- printer ---- */
static void print_rng(FILE *out, SrcRange r) {
  fprintf(out, "@%d:%d-%d:%d", r.begin.line, r.begin.col, r.end.line, r.end.col);
}

static void print_string(FILE *out, const char *s) {
  fputc('"', out);
  for (; *s; s++) {
    if (*s == '"' || *s == '\\') fputc('\\', out);
    fputc(*s, out);
  }
  fputc('"', out);
}

/* Prints V with the fewest digits that read back as the same double (stable golden text). */
static void print_num(FILE *out, double v) {
  char buf[40];
  for (int prec = 1; prec <= 17; prec++) {
    snprintf(buf, sizeof buf, "%.*g", prec, v);
    if (strtod(buf, NULL) == v) break;
  }
  fputs(buf, out);
}

static void print_expr(FILE *out, const Expr *e, int indent) {
  fprintf(out, "%*s", indent, "");
  switch (e->kind) {
  case AST_NUM: fprintf(out, "num "); print_num(out, e->num); break;
  case AST_BOOL: fprintf(out, "bool %s", e->num != 0 ? "true" : "false"); break;
  case AST_NAME: fprintf(out, "name %s", e->name); break;
  case AST_UNARY:
  case AST_BINARY: fprintf(out, "op %s", e->id == OP_NEG ? "neg" : bi_ops[e->id].spelling); break;
  case AST_CALL:
    fprintf(out, "call %s", e->name);
    if (e->has_level) fprintf(out, "[%s]", bi_level_names[e->level]);
    break;
  case AST_INPUT: fprintf(out, "input %s", bi_inputs[e->id].name); break;
  case AST_USERINPUT: fprintf(out, "input %s", e->decl->name); break;
  case AST_PARAM: fprintf(out, "%s %s", e->decl->kind == DECL_STATE ? "state" : "param", e->decl->name); break;
  case AST_TRAINER: fprintf(out, "trainer %s", rein_trainer_const_name(e->id)); break;
  case AST_LET: fprintf(out, "let %s", e->decl->name); break;
  case AST_FUNC: fprintf(out, "func %s", bi_funcs[e->id].name); break;
  case AST_REDUCE:
    fprintf(out, "reduce %s[%s]", bi_reds[e->id].name, bi_level_names[e->red_level]);
    if (bi_reds[e->id].ddof) fprintf(out, " ddof=%d", e->ddof);
    break;
  case AST_ERROR: fprintf(out, "error"); break;
  }
  if (e->kind != AST_ERROR)
    fprintf(out, " : %s %s", bi_level_names[e->level], bi_type_names[e->type]);
  if (e->diff) fprintf(out, " diff");
  fputc(' ', out);
  print_rng(out, e->rng);
  fputc('\n', out);
  for (int i = 0; i < e->nargs; i++) {
    if (!e->args[i]) continue;
    if (e->kind == AST_REDUCE && i == 1) fprintf(out, "%*sfilter:\n", indent + 2, "");
    print_expr(out, e->args[i], indent + 2);
  }
}

void ast_print_program(FILE *out, const Program *p) {
  for (int i = 0; i < p->ndecls; i++) {
    const Decl *d = p->decls[i];
    fprintf(out, "%s", ast_decl_kind_name(d->kind));
    switch (d->kind) {
    case DECL_OBJECTIVE:
      fprintf(out, " %s ", d->name);
      print_string(out, d->desc ? d->desc : "");
      break;
    case DECL_PARAM:
    case DECL_STATE:
    case DECL_CONST:
      fprintf(out, " %s = ", d->name);
      if (d->type == TY_BOOL) fprintf(out, "%s", d->value != 0 ? "true" : "false");
      else print_num(out, d->value);
      break;
    case DECL_INPUT: fprintf(out, " %s %s", bi_level_names[d->level], d->name); break;
    case DECL_FN:
      fprintf(out, " %s(", d->name);
      for (int k = 0; k < d->nparams; k++) fprintf(out, "%s%s", k ? ", " : "", d->params[k]);
      fprintf(out, ") inlined at %d call site%s", d->calls, d->calls == 1 ? "" : "s");
      break;
    case DECL_LET:
    case DECL_UPDATE:
    case DECL_METRIC: fprintf(out, " %s", d->name); break;
    case DECL_LOSS: break;
    }
    if (d->checked)
      fprintf(out, " : %s %s", bi_level_names[d->level], bi_type_names[d->type]);
    fputc(' ', out);
    print_rng(out, d->rng);
    fputc('\n', out);
    if (d->checked) print_expr(out, d->checked, 2);
  }
}
