/* fuzz_frontend.c — libFuzzer harness over the compiler: front end, then middle end.
 *
 * Every input goes through fe_check_buffer (read checks, lexer, parser, sema) with diagnostics
 * written to /dev/null, and a program that checks is printed with ast_print_program, so the
 * caret printer and the AST printer are fuzzed too.  A program that checks then goes through the
 * middle end, and these properties are asserted (abort = a finding):
 *   - the verifier accepts the graph after every pass (a verifier failure is a compiler bug; the
 *     only acceptable failure is the micro-batch rejection, which is a diagnostic);
 *   - the printed IR reads back (ir_parse) and prints identically (the round trip);
 *   - the reference interpreter runs on a small ragged batch without a sanitizer report.
 * The same input is also read as IR text (ir_parse) and, when it is accepted, run through the
 * middle end with the same checks.
 * Everything is freed per input: a leak shows up as a LeakSanitizer report.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "batch.h"
#include "frontend.h"
#include "interp.h"
#include "pipeline.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char *print_ir(const IrGraph *g, size_t *len) {
  char *buf = NULL;
  FILE *m = open_memstream(&buf, len);
  if (!m) abort();
  ir_print(m, g);
  fclose(m);
  return buf;
}

/* Runs the middle end on a checked program (PROG) or on a graph read from IR text (G). */
static void middle_end(Diag *d, const Program *prog, IrGraph *g, FILE *sink) {
  int errors = d->nerrors;
  PipeOptions o = {NULL, sink, false};
  Plan *p = NULL;
  g = pipe_run(prog, g, d, &o, &p);
  if (!g) {
    if (d->nerrors == errors) abort(); /* the verifier failed: a compiler bug */
    return;
  }
  pl_print(sink, p);

  /* round trip */
  size_t n1, n2;
  char *t1 = print_ir(g, &n1);
  Diag d2;
  diag_init(&d2, sink);
  SrcFile *f = diag_file_from_buffer(&d2, "fuzz.ir", t1, n1);
  if (!f) abort();
  IrGraph *g2 = ir_parse(&d2, f);
  if (!g2) abort();
  char *t2 = print_ir(g2, &n2);
  if (n1 != n2 || memcmp(t1, t2, n1)) abort();
  free(t1);
  free(t2);
  ir_free(g2);
  diag_free_file(f);

  /* the interpreter on a small ragged batch: an empty sequence, a one-sequence group */
  int nseq[3] = {2, 1, 3}, lens[6] = {3, 0, 2, 1, 4, 2};
  Level *lv = calloc((size_t)g->nuinputs + 1, sizeof(Level));
  for (int i = 0; i < g->nuinputs; i++) lv[i] = g->uinputs[i].level;
  Batch *b = bt_alloc(3, nseq, lens, g->nuinputs, lv);
  for (int t = 0; t < b->ntoks; t++) {
    b->in[IN_LOGP][t] = -0.1 * (t + 1);
    b->in[IN_OLD_LOGP][t] = -0.11 * (t + 1);
    b->in[IN_REF_LOGP][t] = -0.09 * (t + 2);
    b->in[IN_ROLLOUT_LOGP][t] = -0.1 * (t + 1.5);
    b->in[IN_ENTROPY][t] = 0.5 + 0.1 * t;
  }
  for (int s = 0; s < b->nseqs; s++) b->in[IN_REWARD][s] = s % 2;
  double *params = calloc((size_t)g->nparams + 1, sizeof(double));
  for (int i = 0; i < g->nparams; i++) params[i] = g->params[i].value;
  ItResult r;
  it_eval(p, b, params, 1, &r);
  it_result_free(&r);
  free(params);
  bt_free(b);
  free(lv);
  pl_free(p);
  ir_free(g);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static FILE *sink;
  if (!sink) sink = fopen("/dev/null", "w");
  if (!sink) return 0;
  Diag d;
  diag_init(&d, sink);
  FeUnit u;
  if (fe_check_buffer(&d, "fuzz.rein", (const char *)data, size, &u)) {
    ast_print_program(sink, &u.prog);
    d.file = u.file;
    middle_end(&d, &u.prog, NULL, sink);
  }
  fe_free(&u);

  /* the same bytes as IR text: the IR reader, then the middle end on what it accepts */
  Diag di;
  diag_init(&di, sink);
  SrcFile *f = diag_file_from_buffer(&di, "fuzz.ir", (const char *)data, size);
  if (f) {
    IrGraph *g = ir_parse(&di, f);
    if (g) middle_end(&di, NULL, g, sink);
    diag_free_file(f);
  }
  return 0;
}
