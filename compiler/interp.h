/* interp.h — the reference interpreter (interp.c): executes a plan on a batch in float64. */
#ifndef REIN_INTERP_H
#define REIN_INTERP_H

#include "batch.h"
#include "plan.h"

typedef struct {
  double loss;
  double *metrics;             /* (nmetrics) */
  double *grad[IR_NGRADS];     /* (ntoks) each; zeros when the loss has no derivative there */
  int nmetrics, ntoks;
} ItResult;

/* Evaluates plan P on batch B with param values PARAMS (one per graph param).  MICRO_GROUPS > 0
 * splits the batch into micro-batches of that many whole groups (the last may be smaller), as
 * the trainer does; 0 evaluates it as one micro-batch.  Fills R (free with it_result_free). */
void it_eval(const Plan *p, const Batch *b, const double *params, int micro_groups, ItResult *r);
void it_result_free(ItResult *r);

#endif
