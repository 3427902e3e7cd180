/* ir_dce.c — dead-code elimination: keeps exactly the nodes some output (loss, metric, gradient)
 * needs, in their original order, and renumbers them densely.
 */
#include <stdlib.h>

#include "ir.h"

typedef struct {
  bool *live;
} Dce;

static int dce_map(void *ctx, IrGraph *ng, const IrGraph *g, int i, const int *remap) {
  Dce *D = ctx;
  return D->live[i] ? ir_copy(ng, &g->n[i], remap) : -1;
}

IrGraph *ir_dce(IrGraph *g) {
  Dce D = {ir_xcalloc((size_t)g->nn, sizeof(bool))};
  if (g->loss >= 0) D.live[g->loss] = true;
  for (int k = 0; k < IR_NGRADS; k++)
    if (g->grad[k] >= 0) D.live[g->grad[k]] = true;
  for (int i = 0; i < g->nmetrics; i++) D.live[g->metrics[i].node] = true;
  ir_mark_ancestors(g, D.live);
  g = ir_rebuild(g, dce_map, &D);
  free(D.live);
  return g;
}
