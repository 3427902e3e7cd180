/* grad_view.h — the source-level view of the gradient, term by term (`rein emit --grad --terms`).
 *
 * The loss is split at its top-level `+` and `-` (and a leading unary `-`) into terms; each term is
 * lowered and differentiated on its own by the ordinary pipeline (ir_lower_loss, pipe_run), and
 * its d term/d logp and d term/d entropy are printed as one expression in the language's syntax:
 * lets by name, other values of the program by their source text, autodiff's nodes as operators,
 * functions and reductions.  The terms' gradients sum to the loss's.
 */
#ifndef REIN_GRAD_VIEW_H
#define REIN_GRAD_VIEW_H

#include <stdio.h>

#include "ast.h"

/* Prints the view of checked program PROG (its source file is PROG->file) to OUT, each line a
 * `#` comment (so the output stays readable IR text).  Returns false when a term could not be
 * differentiated (it cannot happen for a program that planned; no output is then missing for
 * the other terms). */
bool gv_print(FILE *out, const Program *prog);

#endif
