/* parse.h — the interface between the flex lexer (lexer.l), the bison parser (parser.y) and the
 * rest of the compiler.
 *
 * Both generated parts are reentrant: all their state lives in a ParseCtx, so the fuzzer can run
 * the front end millions of times in one process, and nothing leaks between runs.
 */
#ifndef REIN_PARSE_H
#define REIN_PARSE_H

#include "ast.h"
#include "diag.h"

/* Limits that turn pathological inputs into clear errors instead of stack overflows. */
enum {
  PARSE_MAX_PAREN = 200,  /* nesting of ( and [ */
  PARSE_MAX_DEPTH = 256,  /* depth of one expression tree */
};

typedef struct {
  Arena *arena;
  Diag *diag;
  Program *prog;
  const SrcFile *file;
  /* lexer state */
  int line, col;
  SrcRange prev_tok;  /* the token before the current one (for "expected `;` after ...") */
  SrcRange cur_tok;
  int paren;          /* open ( and [ */
  bool fatal;         /* a limit was hit: stop without further messages */
  bool depth_reported;
} ParseCtx;

/* Parses FILE into PROG (nodes in ARENA).  Syntax errors are reported through DIAG, with recovery
 * at the next `;`.  Returns true when there were no syntax errors. */
bool parse_program(const SrcFile *file, Diag *diag, Arena *arena, Program *prog);

#endif
