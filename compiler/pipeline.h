/* pipeline.h — the middle end as one straight-line function (pipeline.c). */
#ifndef REIN_PIPELINE_H
#define REIN_PIPELINE_H

#include "ir.h"
#include "plan.h"

typedef struct {
  const char *dump_after; /* a pass name: print the IR to dump_out after every run of it */
  FILE *dump_out;
  bool stop_before_grad;  /* stop after the primal passes (rein emit --ir) */
} PipeOptions;

/* Pass names accepted by --dump-after, in pipeline order. */
extern const char *const pipe_pass_names[];
bool pipe_known_pass(const char *name);

/* Lowers a checked program (or takes a graph read from .ir text: pass PROG = NULL and G) and runs
 * the passes; diagnostics about the program (non-decomposable reductions) go to D.  On success
 * returns the final graph and, unless stop_before_grad, its plan in *PLAN.  NULL on error. */
IrGraph *pipe_run(const Program *prog, IrGraph *g, Diag *d, const PipeOptions *o, Plan **plan);

#endif
