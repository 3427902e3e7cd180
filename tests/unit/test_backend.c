/* test_backend.c — the compiled CPU code against the reference interpreter.
 *
 *   test_backend [--batches N] [--seed S] [--gpu] FILE.rein...
 *
 * For every program: compile it (rein compile's path, into a temporary shared object), then on N
 * seeded random ragged batches (empty sequences, one-sequence groups, every input the program
 * reads, values rounded to float32 so both sides see the same numbers) compare loss, metrics and
 * both gradients of the compiled code with the interpreter's: |a - b| <= 1e-5 |b| + 1e-9, and
 * non-finite values must agree exactly (NaN with NaN, the same infinity).  The compiled results
 * must also be bit-identical with 1 and 2 threads and with micro-batches of 1 and 2 groups (the
 * runtime's determinism promise), and the interpreter is run micro-batched the same way.
 * --gpu also runs the GPU executor (skipped with a note when there is no GPU).
 * Exit status 1 on any mismatch; every mismatch is printed with the program and batch seed.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cg.h"
#include "frontend.h"
#include "pipeline.h"

static int failures, checks, programs;

static uint64_t rng;
static double urand(void) {
  rng = rng * 6364136223846793005ull + 1442695040888963407ull;
  return (double)(rng >> 11) * (1.0 / 9007199254740992.0);
}
static double uniform(double lo, double hi) { return (double)(float)(lo + (hi - lo) * urand()); }

static Batch *random_batch(const IrGraph *g, uint64_t seed) {
  rng = seed * 0x9e3779b97f4a7c15ull + 17;
  int ng = 1 + (int)(urand() * 5);
  int nseq[8], lens[64], ns = 0;
  for (int i = 0; i < ng; i++) {
    nseq[i] = 1 + (int)(urand() * 4);
    for (int s = 0; s < nseq[i]; s++) lens[ns++] = urand() < 0.15 ? 0 : 1 + (int)(urand() * 7);
  }
  Level lv[64];
  for (int k = 0; k < g->nuinputs; k++) lv[k] = g->uinputs[k].level;
  Batch *b = bt_alloc(ng, nseq, lens, g->nuinputs, lv);
  for (int t = 0; t < b->ntoks; t++) {
    b->in[IN_LOGP][t] = uniform(-5, 0);
    b->in[IN_OLD_LOGP][t] = uniform(-5, 0);
    b->in[IN_REF_LOGP][t] = uniform(-5, 0);
    b->in[IN_ENTROPY][t] = uniform(0, 3);
  }
  for (int s = 0; s < b->nseqs; s++) {
    /* some equal rewards in a group, as after a verifiable reward */
    b->in[IN_REWARD][s] = urand() < 0.3 ? 1.0 : uniform(-1, 2);
    b->in[IN_TRUNCATED][s] = urand() < 0.3;
    b->in[IN_LAG][s] = (int)(urand() * 4);
  }
  for (int k = 0; k < g->nuinputs; k++) {
    int n = g->uinputs[k].level == LV_TOKEN ? b->ntoks : b->nseqs;
    for (int i = 0; i < n; i++) b->uin[k][i] = uniform(-2, 2);
  }
  b->seed = rng >> 7;
  b->step = rng >> 50;
  return b;
}

static bool same_nonfinite(double a, double b) {
  if (isnan(a) || isnan(b)) return isnan(a) && isnan(b);
  return a == b;
}

static void compare(const char *file, uint64_t seed, const char *what, int idx, double got, double want) {
  checks++;
  bool ok = isfinite(got) && isfinite(want) ? fabs(got - want) <= 1e-5 * fabs(want) + 1e-9 : same_nonfinite(got, want);
  if (ok) return;
  if (failures++ < 40)
    fprintf(stderr, "FAIL %s (batch seed %llu): %s[%d]: compiled %.17g, interpreter %.17g\n", file,
            (unsigned long long)seed, what, idx, got, want);
}

static void compare_results(const char *file, uint64_t seed, const IrGraph *g, const ItResult *a, const ItResult *b) {
  compare(file, seed, "loss", 0, a->loss, b->loss);
  for (int m = 0; m < g->nmetrics; m++) compare(file, seed, g->metrics[m].name, m, a->metrics[m], b->metrics[m]);
  for (int k = 0; k < IR_NGRADS; k++)
    for (int t = 0; t < a->ntoks; t++) compare(file, seed, ir_grad_names[k], t, a->grad[k][t], b->grad[k][t]);
}

static bool identical(const ItResult *a, const ItResult *b, int nmetrics) {
  if (memcmp(&a->loss, &b->loss, sizeof(double))) return false;
  if (nmetrics && memcmp(a->metrics, b->metrics, sizeof(double) * (size_t)nmetrics)) return false;
  for (int k = 0; k < IR_NGRADS; k++)
    if (a->ntoks && memcmp(a->grad[k], b->grad[k], sizeof(double) * (size_t)a->ntoks)) return false;
  return true;
}

static void test_file(const char *file, int nbatches, uint64_t seed0, bool gpu) {
  Diag d;
  diag_init(&d, stderr);
  FeUnit u;
  memset(&u, 0, sizeof u);
  if (!fe_check_file(&d, file, &u)) {
    fprintf(stderr, "FAIL %s: does not check\n", file);
    failures++;
    fe_free(&u);
    return;
  }
  d.file = u.file;
  PipeOptions po = {NULL, stdout, false};
  Plan *p = NULL;
  IrGraph *g = pipe_run(&u.prog, NULL, &d, &po, &p);
  if (!g) {
    fprintf(stderr, "FAIL %s: the middle end rejects it\n", file);
    failures++;
    fe_free(&u);
    return;
  }
  char err[1024] = "";
  CgOptions co = {NULL, false, !gpu}; /* PTX only when the GPU runs it */
  rt_objective *o = cg_compile_and_open(p, &co, err, sizeof err);
  if (!o) {
    fprintf(stderr, "FAIL %s: %s\n", file, err);
    failures++;
  }
  programs++;
  double *params = ir_xcalloc((size_t)g->nparams + 1, sizeof(double));
  for (int i = 0; i < g->nparams; i++) params[i] = g->params[i].value;
  for (int bi = 0; o && bi < nbatches; bi++) {
    uint64_t seed = seed0 + (uint64_t)bi;
    Batch *b = random_batch(g, seed);
    ItResult want, got, alt;
    it_eval(p, b, params, 0, &want);
    if (!cg_run_loaded(o, g, b, params, 0, false, 1, &got, err, sizeof err)) {
      fprintf(stderr, "FAIL %s: %s\n", file, err);
      failures++;
      it_result_free(&want);
      bt_free(b);
      break;
    }
    compare_results(file, seed, g, &got, &want);
    /* micro-batched interpreter against the compiled code */
    ItResult wm;
    it_eval(p, b, params, 1, &wm);
    compare_results(file, seed, g, &got, &wm);
    it_result_free(&wm);
    /* determinism: threads and micro-batch sizes change nothing */
    static const int variants[][2] = {{0, 2}, {1, 1}, {2, 2}, {1, 2}};
    for (int v = 0; v < 4; v++) {
      checks++;
      if (!cg_run_loaded(o, g, b, params, variants[v][0], false, variants[v][1], &alt, err, sizeof err)) {
        fprintf(stderr, "FAIL %s: %s\n", file, err);
        failures++;
        continue;
      }
      if (!identical(&alt, &got, g->nmetrics) && failures++ < 40)
        fprintf(stderr, "FAIL %s (batch seed %llu): micro-groups %d, %d threads: not bit-identical\n", file,
                (unsigned long long)seed, variants[v][0], variants[v][1]);
      it_result_free(&alt);
    }
    if (gpu) {
      if (cg_run_loaded(o, g, b, params, 0, true, 0, &alt, err, sizeof err)) {
        compare_results(file, seed, g, &alt, &want);
        it_result_free(&alt);
      } else if (strstr(err, "no GPU")) {
        fprintf(stderr, "note: %s; GPU comparison skipped\n", err);
        gpu = false;
      } else {
        fprintf(stderr, "FAIL %s: GPU: %s\n", file, err);
        failures++;
      }
    }
    it_result_free(&got);
    it_result_free(&want);
    bt_free(b);
  }
  free(params);
  rt_close(o);
  pl_free(p);
  ir_free(g);
  fe_free(&u);
}

int main(int argc, char **argv) {
  int nbatches = 3;
  uint64_t seed = 1;
  bool gpu = false;
  int i = 1;
  for (; i < argc && argv[i][0] == '-'; i++) {
    if (!strcmp(argv[i], "--batches") && i + 1 < argc) nbatches = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--seed") && i + 1 < argc) seed = strtoull(argv[++i], NULL, 10);
    else if (!strcmp(argv[i], "--gpu")) gpu = true;
    else {
      fprintf(stderr, "usage: test_backend [--batches N] [--seed S] [--gpu] FILE.rein...\n");
      return 2;
    }
  }
  if (i == argc) {
    fprintf(stderr, "test_backend: no programs\n");
    return 2;
  }
  for (; i < argc; i++) test_file(argv[i], nbatches, seed, gpu);
  printf("test_backend: %d programs, %d checks, %d failures\n", programs, checks, failures);
  return failures ? 1 : 0;
}
