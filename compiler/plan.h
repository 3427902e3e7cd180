/* plan.h — the execution plan of a differentiated graph (plan.c): stages and fused passes.
 *
 * Stages, in the order a training step runs them:
 *   PL_PRO    the prologue: everything that does not depend on logp/entropy (advantages, masks
 *             built from rewards, global token counts), once per batch over the whole batch;
 *   PL_STAT   statistics: batch-level reductions (and batch-level rank/argmax/argmin) of values
 *             that depend on logp/entropy only through sg, whose values the gradient needs (a
 *             self-normalised importance weight, a batch entropy threshold), with the micro-stage
 *             values they read; over the whole batch, once the logp/entropy of every micro-batch
 *             are known (the trainer runs a forward-only pass over all micro-batches first);
 *   PL_MICRO  per micro-batch of whole groups: everything that depends on logp/entropy, including
 *             both gradients and the partial sums of batch-level reductions of such values; and,
 *             to spare the prologue a sweep over the tokens, token-level element-wise values
 *             that only micro passes read and batch reductions over tokens that no gradient
 *             needs (metrics);
 *   PL_FINAL  after the last micro-batch: the batch-level reductions are finished and the loss and
 *             metrics that depend on them are computed (a "final sweep" over the whole batch is
 *             needed only when such a value is used again below batch level, in a metric).
 * Within a stage, nodes are grouped into passes: one pass is one sweep over the batch (groups →
 * sequences → tokens) computing every node it holds.  A reduction's value can be used in the
 * same pass at its own level or coarser (after the loop that accumulates it closes); a finer use
 * needs the next pass, except a use of an early reduction (PlPass.early).  rank/argmax/argmin and
 * the scans need their argument's siblings complete: the next pass, except an early scan.
 */
#ifndef REIN_PLAN_H
#define REIN_PLAN_H

#include "ir.h"

typedef enum { PL_DATA, PL_PRO, PL_STAT, PL_MICRO, PL_FINAL, PL_NSTAGES } PlStage;

typedef struct {
  PlStage stage;
  int index;    /* 1-based within the stage */
  Level loop;   /* the finest level the pass sweeps (LV_BATCH: no loop, scalars only) */
  int *nodes;   /* in topological order */
  int nnodes;
  int *early;   /* the pass's early reductions and scans, in topological order: a reduction to
                   seq of token values computed from nothing else of the pass, swept in its own
                   loop over each sequence's tokens before the pass's token loop, so that the
                   pass's token values can read it (GMPO's and GSPO's per-sequence mean); a scan
                   (cumsum, revcumsum) of such values, run on what that loop computed, in the
                   pass of its argument (REINFORCE++'s returns) */
  int nearly;
} PlPass;

typedef struct {
  const IrGraph *g;
  PlStage *stage;  /* per node: where it is computed (PL_DATA: inputs, params, constants, shape) */
  PlStage *avail;  /* per node: where its value can first be read (a batch-level reduction of a
                      logp-dependent value is computed in PL_MICRO but read in PL_FINAL) */
  bool *partial;   /* per node: a batch-level reduction accumulated across micro-batches */
  bool *in_final;  /* per node: evaluated in the final stage (final nodes, and the micro-stage
                      values a final sweep recomputes over the whole batch) */
  bool *in_stat;   /* per node: evaluated in the statistics stage (statistics, and the
                      micro-stage values they read, recomputed there over the whole batch) */
  bool *in_micro;  /* per node: a token-level element-wise prologue value that the micro-batch
                      passes compute again instead of reading it from a float64 array per token
                      (rematerialized: an exp or two costs less than 8 bytes written and read) */
  PlPass *passes;
  int npasses;
  bool final_sweep; /* the final stage needs logp/entropy of the whole batch */
  bool stats;       /* there is a statistics stage: the runtime needs logp/entropy of the whole
                       batch before the first micro-batch (a forward-only pass over all of them) */
} Plan;

/* Plans G (verified, differentiated).  Rejects, with a diagnostic on D pointing at the
 * reduction, a gradient that depends on the value of a batch-level reduction through which the
 * loss is differentiated (the batch could not be split into micro-batches, and the statistics
 * stage holds only values the loss sees through sg).  Returns NULL on error. */
Plan *pl_plan(const IrGraph *g, Diag *d);
void pl_free(Plan *p);
void pl_print(FILE *out, const Plan *p);

/* Is node I an early reduction or scan of pass PS (PlPass.early)? */
bool pl_early(const PlPass *ps, int i);

/* True for nodes that are data rather than computation: leaves, and count[L]() without a filter
 * (a shape: the number of tokens or sequences). */
bool pl_is_data(const IrNode *n);

#endif
