/* sema.h — semantic analysis of a parsed program (docs/language.md).
 *
 * sema_check resolves names, inlines fn calls, folds constants, infers the level and type of
 * every value, checks reductions, filters, the loss and the metrics, and fills Decl.checked for
 * every let, loss and metric.  The checked program is what the IR lowering consumes.
 */
#ifndef REIN_SEMA_H
#define REIN_SEMA_H

#include "ast.h"
#include "diag.h"

enum {
  SEMA_MAX_NODES = 1000000, /* checked nodes in one program, after inlining */
  SEMA_MAX_INLINE = 16,     /* fn calls nested inside fn bodies */
  SEMA_MAX_RECURSION = 2000 /* nesting of one checked expression */
};

/* Checks PROG (allocating checked nodes in ARENA) and reports errors, warnings and notes through
 * DIAG.  Returns true when there was no error. */
bool sema_check(Program *prog, Diag *diag, Arena *arena);

#endif
