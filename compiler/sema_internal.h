/* sema_internal.h — what the files of semantic analysis share; not part of sema.h's interface.
 *
 * Semantic analysis is three files, and calls go one way only (down this list):
 *
 *   sema.c        the driver (sema_check) and the statements: the objective line, params and
 *                 consts, inputs, fn definitions, lets, the loss and the metrics, unused names
 *   sema_expr.c   one expression: name resolution, operators, built-in calls, reductions, fn
 *                 inlining (which checks the body again: the recursion stays in this file) and
 *                 constant folding
 *   sema_lint.c   warnings about well-formed programs that are probably wrong (the forgotten
 *                 stop-gradient of a score-function term), over the checked trees
 *   sema_names.c  the symbol tables, what to say about a name that is not visible, and the
 *                 words of messages (descriptions of expressions, kinds and levels)
 *
 * The checker's state is one Sema, owned by sema_check for the duration of one program.
 */
#ifndef REIN_SEMA_INTERNAL_H
#define REIN_SEMA_INTERNAL_H

#include "sema.h"

/* ---- sema_names.c: a string-keyed hash table (open addressing) ---- */
typedef struct {
  const char *key;
  Decl *val;
} SymSlot;

typedef struct {
  SymSlot *slots;
  size_t cap, n; /* cap is 0 or a power of two; the table is at most half full */
} SymTab;

/* ---- the checker's state ---- */
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
  SrcRange tconst_use[REIN_NUM_TRAINER_CONSTS]; /* the first use of each trainer constant */
  Expr *error;         /* the shared AST_ERROR node */
} Sema;

/* ---- sema_names.c ---- */

/* The declaration stored under KEY in T, or NULL. */
Decl *sema_tab_get(const SymTab *t, const char *key);
/* Stores VAL under KEY in T (replacing an earlier value); KEY is not copied and must outlive T.
 * The table's memory is T->slots, freed by the caller. */
void sema_tab_put(SymTab *t, const char *key, Decl *val);

/* What a name is used as: a value, a function (name(...)) or a reduction (name[L](...)). */
typedef enum { SEMA_NAME_VALUE, SEMA_NAME_FUNC, SEMA_NAME_RED } SemaNameKind;

/* The name to suggest for NAME, which is not known as a WANT, or NULL: a synonym from the table of
 * sema_names.c (`clip` -> clamp, `stopgrad` -> sg, `length` -> len, `avg` -> mean; it may be of
 * another kind, said in *GOT), else the closest name of that kind within edit distance 2 (1 for
 * names of 3 characters or fewer; a transposition counts 1): the names defined so far and the
 * built-in inputs for a value, the fns and built-in functions for a function, the reductions for a
 * reduction. */
const char *sema_suggest(Sema *s, const char *name, SemaNameKind want, SemaNameKind *got);

/* Reports NAME, declared nowhere, as unknown at AT, with sema_suggest's suggestion. */
void sema_unknown_name(Sema *s, const char *name, SrcRange at);

/* Counts a use of every declaration that raw expression RAW names (outside the parameters of the
 * fn being checked): a statement that failed still used what it names, so no "unused" warning
 * follows its error. */
void sema_mark_used(Sema *s, const Expr *raw);
/* Resolves the case of a name that is not visible at AT but is declared somewhere in the file:
 * in its own definition (recursion), later in the file (use before definition, with a note), or
 * earlier by a definition that was rejected and already reported (silent).  CALL: the name is
 * called.  Returns false when NAME is declared nowhere, for the caller's "unknown" message. */
bool sema_declared_elsewhere(Sema *s, const char *name, SrcRange at, bool call);

/* Writes a short description of expression E (raw, or any node with its range set) into BUF
 * (size N) for messages, and returns BUF: its source text in backticks when it is short and on
 * one line, otherwise "this expression". */
const char *sema_describe(Sema *s, const Expr *e, char *buf, size_t n);
/* The source text of range R in BUF (size N), when it is on one line and at most 60 bytes long;
 * false otherwise. */
bool sema_source(Sema *s, SrcRange r, char *buf, size_t n);
/* Raw reduction call CALL (name[L](...)) as it would read with level L in the brackets, in
 * backticks: its source text with the bracket replaced when short, else "`name[L](...)`". */
const char *sema_with_level(Sema *s, const Expr *call, Level l, char *buf, size_t n);
/* "a let", "an input", ... */
const char *sema_a_kind(DeclKind k);
/* "a token value", "a seq value", ... */
const char *sema_a_level(Level l);

/* ---- sema_expr.c ---- */

/* Checks raw expression RAW in the current environment (s->env: the fn being inlined, if any)
 * and returns its checked tree, allocated in s->a, or s->error after reporting.  Bounded
 * recursion: past SEMA_MAX_RECURSION, or past SEMA_MAX_NODES nodes, it reports once, sets
 * s->fatal and returns s->error from then on. */
Expr *sema_check_expr(Sema *s, const Expr *raw);

/* ---- sema_lint.c ---- */

/* Warns about the checked program's probable mistakes (sema_lint.c's header gives the rule). */
void sema_lint(Sema *s);

#endif
