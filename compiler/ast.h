/* ast.h — the syntax tree of a .rein program and the checked form that sema produces.
 *
 * One Expr struct serves both stages.  The parser builds raw nodes (AST_NUM, AST_BOOL, AST_NAME,
 * AST_UNARY, AST_BINARY, AST_CALL); sema builds a fresh checked tree for every let, loss and metric
 * in which names are resolved (AST_INPUT, AST_USERINPUT, AST_PARAM, AST_LET), fn calls are inlined,
 * constants are folded (AST_NUM/AST_BOOL) and built-in calls are split into AST_FUNC and AST_REDUCE.
 * Every node carries its source range; checked nodes also carry level and type.
 *
 * All nodes, strings and arrays live in one Arena freed at once.
 */
#ifndef REIN_AST_H
#define REIN_AST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "builtins.h"
#include "diag.h"

/* ---- arena ---- */
typedef struct ArenaBlock ArenaBlock;
typedef struct {
  ArenaBlock *head;
} Arena;

void *ast_alloc(Arena *a, size_t n); /* zeroed */
char *ast_strndup(Arena *a, const char *s, size_t n);
void ast_arena_free(Arena *a);

/* ---- expressions ---- */
typedef enum {
  /* raw (parser) */
  AST_NUM,    /* num */
  AST_BOOL,   /* num = 0 or 1 */
  AST_NAME,   /* name */
  AST_UNARY,  /* op, args[0] */
  AST_BINARY, /* op, args[0], args[1] */
  AST_CALL,   /* name, has_level/level, args; named args in argnames[i] (NULL if positional) */
  /* checked (sema) */
  AST_INPUT,     /* id = InputId */
  AST_USERINPUT, /* decl */
  AST_PARAM,     /* decl (a param or a state) */
  AST_TRAINER,   /* id = REIN_TC_*: a trainer constant (max_new, group_size, step) */
  AST_LET,       /* decl: a reference to a checked let */
  AST_FUNC,      /* id = FuncId, args */
  AST_REDUCE,    /* id = RedId, level, args[0] = x (absent for count[L]()), args[1] = filter|NULL, ddof */
  AST_ERROR      /* a checked subtree that already produced an error */
} AstKind;

typedef struct Decl Decl;
typedef struct Expr Expr;

struct Expr {
  AstKind kind;
  SrcRange rng;
  double num;
  const char *name;
  int id;            /* OpId / FuncId / RedId / InputId */
  Level level;       /* checked: the level of the node's value; AST_CALL: the [L] written */
  Level red_level;   /* AST_REDUCE: the [L] level reduced to (rank's value keeps x's level) */
  bool has_level;    /* AST_CALL: written as name[L](...) */
  Type type;         /* checked */
  bool is_const;     /* checked: a compile-time constant (folded into AST_NUM/AST_BOOL) */
  bool diff;         /* checked: has a non-zero derivative path to logp or entropy */
  int ddof;          /* AST_REDUCE std/var */
  int depth;         /* raw: nesting depth of the subtree */
  bool paren;        /* raw: written inside parentheses */
  Expr **args;
  const char **argnames;
  SrcRange *argname_rngs;
  int nargs;
  Decl *decl;
};

/* ---- declarations (statements) ---- */
typedef enum {
  DECL_OBJECTIVE,
  DECL_PARAM,
  DECL_CONST,
  DECL_INPUT,
  DECL_FN,
  DECL_LET,
  DECL_LOSS,
  DECL_METRIC,
  DECL_STATE,   /* state NAME = default;  a value carried across training steps */
  DECL_UPDATE   /* update NAME = expr;    the state's value for the next step */
} DeclKind;

struct Decl {
  DeclKind kind;
  SrcRange rng;       /* the whole statement */
  SrcRange name_rng;  /* the declared name (or the keyword for loss) */
  const char *name;   /* NULL for loss */
  const char *desc;   /* objective description (may be NULL) */
  Level level;        /* input: declared level; checked let/loss/metric: level of the value */
  Type type;          /* checked */
  Expr *body;         /* raw expression (param default, const, fn body, let, loss, metric) */
  Expr *checked;      /* sema: checked expression (let, loss, metric) */
  double value;       /* const value / param default */
  const char **params; /* fn parameters */
  SrcRange *param_rngs;
  int nparams;
  int uses;           /* references seen by sema */
  int calls;          /* fn: call sites inlined */
  bool bad;           /* sema found an error in its definition */
  bool checking;      /* sema: currently being checked (self-reference detection) */
  int index;          /* position in Program.decls */
  Decl *update;       /* state: its update statement (sema); update: the state it updates */
};

typedef struct {
  Decl **decls;
  int ndecls, cap;
  Decl *objective;
  Decl *loss;
  const SrcFile *file;
  bool trainer_used[REIN_NUM_TRAINER_CONSTS]; /* sema: the program reads trainer constant K */
} Program;

/* ---- constructors used by the parser (Arena *a owns the nodes) ---- */
Expr *ast_num(Arena *a, SrcRange r, double v);
Expr *ast_bool(Arena *a, SrcRange r, bool v);
Expr *ast_name(Arena *a, SrcRange r, const char *name);
Expr *ast_unary(Arena *a, SrcRange r, OpId op, Expr *x);
Expr *ast_binary(Arena *a, SrcRange r, OpId op, Expr *x, Expr *y);
/* A call: name(args) or name[level](args).  ARGS/NAMES are copied. */
Expr *ast_call(Arena *a, SrcRange r, const char *name, bool has_level, Level lv, Expr **args,
               const char **names, SrcRange *name_rngs, int nargs);
Decl *ast_decl(Arena *a, DeclKind k, SrcRange r);
void ast_program_add(Arena *a, Program *p, Decl *d);

/* Growable pointer list used while parsing argument and parameter lists. */
typedef struct {
  Expr **args;
  const char **names;
  SrcRange *rngs;
  int n, cap;
} AstArgList;
void ast_args_push(Arena *a, AstArgList *l, const char *name, SrcRange name_rng, Expr *e);

/* Prints the checked program deterministically (no pointers): one block per statement, then an
 * indented tree with each node's kind, level, type and source range.  Used by `rein emit --ast`
 * and by golden tests. */
void ast_print_program(FILE *out, const Program *p);

const char *ast_decl_kind_name(DeclKind k);

#endif
