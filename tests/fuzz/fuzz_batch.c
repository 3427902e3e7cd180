/* fuzz_batch.c — libFuzzer harness over the batch JSON reader (bt_read_json, compiler/batch.c),
 * what `rein eval --batch` and the artifact tests read.
 *
 * The graph is built once, from a fixed objective that reads every built-in input (so every
 * field of a sequence is required and checked), one declared token input and one declared seq
 * input (user inputs), and uniform() (so "seed" and "step" are required).  Each input is the
 * batch file; the reader must return a batch or NULL with a message, never crash or leak.  An
 * accepted batch is checked for consistency (offsets, levels) and freed.
 */
#include "fuzz_util.h"

#include "batch.h"
#include "frontend.h"
#include "pipeline.h"

static const char FZ_OBJECTIVE[] =
    "objective fz \"every input of the batch reader\";\n"
    "input token roll_logp;\n"
    "input seq score;\n"
    "let tok = logp * old_logp + ref_logp * entropy + pos + roll_logp;\n"
    "let seqv = reward + len + where(truncated, 1, 0) + lag + score + uniform();\n"
    "loss = mean[batch](tok) + mean[batch](seqv);\n";

static IrGraph *fz_graph(void) {
  static IrGraph *g;
  if (g) return g;
  Diag d;
  diag_init(&d, stderr);
  FeUnit u;
  if (!fe_check_buffer(&d, "fz.rein", FZ_OBJECTIVE, sizeof FZ_OBJECTIVE - 1, &u)) abort();
  d.file = u.file;
  PipeOptions o = {NULL, NULL, false};
  Plan *p = NULL;
  g = pipe_run(&u.prog, NULL, &d, &o, &p);
  if (!g || g->nuinputs != 2) abort();
  pl_free(p);
  fe_free(&u);
  return g;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const IrGraph *g = fz_graph();
  Batch *b = bt_read_json(fz_input_path(data, size), g, fz_sink());
  if (!b) return 0;
  /* what every consumer of a batch relies on */
  if (b->ngroups < 1 || b->grp_seq[0] != 0 || b->seq_tok[0] != 0 || b->grp_seq[b->ngroups] != b->nseqs ||
      b->seq_tok[b->nseqs] != b->ntoks || b->nuin != g->nuinputs)
    abort();
  for (int s = 0; s < b->nseqs; s++)
    if (b->seq_tok[s + 1] < b->seq_tok[s] || b->seq_grp[s] < 0 || b->seq_grp[s] >= b->ngroups) abort();
  for (int t = 0; t < b->ntoks; t++)
    if (b->tok_seq[t] < 0 || b->tok_seq[t] >= b->nseqs || b->in[IN_POS][t] < 0) abort();
  bt_free(b);
  return 0;
}
