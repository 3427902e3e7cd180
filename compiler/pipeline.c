/* pipeline.c — the middle end, readable top to bottom.
 *
 *     lower      checked AST → graph             (ir_lower.c)
 *     fold       constants and exact identities  (ir_fold.c)
 *     weigh      token reductions of sequence values, over sequences  (ir_weigh.c)
 *     cse        hash-consing                    (ir_cse.c)
 *     dce        drop what no output needs       (ir_dce.c)
 *     grad       append d loss/d logp, d entropy (ad.c)
 *     simplify   fold + cse + dce on the whole differentiated graph
 *     plan       stages and fused passes         (plan.c)
 *
 * The verifier runs after every pass; --dump-after=PASS prints the graph after PASS.
 */
#include "pipeline.h"

#include <string.h>

#include "ad.h"

const char *const pipe_pass_names[] = {"lower", "fold", "weigh", "cse", "dce", "grad", "simplify", NULL};

bool pipe_known_pass(const char *name) {
  for (int i = 0; pipe_pass_names[i]; i++)
    if (!strcmp(pipe_pass_names[i], name)) return true;
  return false;
}

/* Verifies G after PASS and dumps it if asked.  Frees G and returns NULL if it is malformed. */
static IrGraph *after(IrGraph *g, const char *pass, const PipeOptions *o) {
  if (!ir_verify(g, pass, stderr)) {
    ir_free(g);
    return NULL;
  }
  if (o->dump_after && !strcmp(o->dump_after, pass)) {
    fprintf(o->dump_out, "# after %s\n", pass);
    ir_print(o->dump_out, g);
  }
  return g;
}

IrGraph *pipe_run(const Program *prog, IrGraph *g, Diag *d, const PipeOptions *o, Plan **plan) {
  if (plan) *plan = NULL;
  if (prog) g = ir_lower(prog);
  if (!(g = after(g, "lower", o))) return NULL;
  if (!(g = after(ir_fold(g), "fold", o))) return NULL;
  if (!(g = after(ir_weigh(g), "weigh", o))) return NULL;
  if (!(g = after(ir_cse(g), "cse", o))) return NULL;
  if (!(g = after(ir_dce(g), "dce", o))) return NULL;
  if (o->stop_before_grad) return g;
  if (g->grad[IR_GRAD_LOGP] < 0 && g->grad[IR_GRAD_ENTROPY] < 0) /* .ir input may have them */
    g = ad_differentiate(g);
  if (!(g = after(g, "grad", o))) return NULL;
  g = ir_dce(ir_cse(ir_fold(g)));
  if (!(g = after(g, "simplify", o))) return NULL;
  Plan *p = pl_plan(g, d);
  if (!p) {
    ir_free(g);
    return NULL;
  }
  if (plan) *plan = p;
  else pl_free(p);
  return g;
}
