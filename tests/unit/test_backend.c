/* test_backend.c — every backend of rein/backend.h through one suite: the compiled code on the
 * CPU (and the GPU) against the reference interpreter, and the runtime's staged step.
 *
 *   test_backend [--batches N] [--seed S] [--gpu] [--precision f32|f64] [--max-len L] FILE.rein...
 *
 * For every program: compile it (rein compile's path, into a temporary shared object), then on N
 * seeded random ragged batches (empty sequences, one-sequence groups, every input the program
 * reads, values rounded to float32 so every backend sees the same numbers) run each backend
 * through the same prepare/run/fetch and compare loss, metrics and both gradients with the
 * interpreter's: |a - b| <= 1e-5 |b| + 1e-9 with --precision f64, |a - b| <= 1e-5 |b| or <= 1e-6
 * (language.md's criterion against a float64 evaluation) with f32; non-finite values must agree
 * exactly (NaN with NaN, the same infinity).  The compiled results must also be bit-identical with 1 and 2 threads
 * and with micro-batches of 1 and 2 groups (the runtime's determinism promise), and the
 * interpreter is run micro-batched the same way.
 *
 * The staged step (rt_begin / rt_micro / rt_end) is checked against rt_run: logp and entropy of
 * a micro-batch are written only just before its rt_micro (NaN until then), the gradients of its
 * tokens must be final on return (bit-identical to the whole step's), and rt_end must give the
 * whole step's result, for objectives with and without a final sweep (REIN_FINAL_SWEEP; the
 * summary counts both kinds); calls out of order must fail with a message.  An objective with a
 * statistics stage (REIN_STATS) gets logp/entropy of the whole batch for rt_stat, then NaN again
 * until each micro-batch's rt_micro (the micro passes read their own tokens only); rt_micro before
 * rt_stat must fail.  Trainer constants get the values 7 (max_new), 3 (group_size), 5 (step).
 * --precision: the compiled code's token arithmetic (CgOptions.f64): f32 (the default: token-level
 * element-wise values in float32, reductions in float64) or f64.  Both must meet the same 1e-5
 * relative criterion (the spec's tolerance against a float64 evaluation) and the same
 * bit-identity across threads and micro-batches.
 * --gpu also runs the GPU executor: it must agree with the interpreter in the same way, with one
 * micro-batch and with micro-batches of one group, and a second GPU run of the same batch must be
 * bit-identical to the first.  Without a GPU (no libcuda.so.1, cuInit fails, no device, older
 * than sm_80) --gpu exits 77 at the first program, so that ctest reports the gpu_* tests skipped.
 * Exit status 1 on any mismatch; every mismatch is printed with the program and batch seed.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cg_eval.h"
#include "frontend.h"
#include "pipeline.h"

static int failures, checks, programs, final_sweeps, stats;
static uint32_t cur_flags; /* the descriptor flags of the program under test */
static bool prec_f64;      /* --precision f64 */

static uint64_t rng;
static double urand(void) {
  rng = rng * 6364136223846793005ull + 1442695040888963407ull;
  return (double)(rng >> 11) * (1.0 / 9007199254740992.0);
}
static double uniform(double lo, double hi) { return (double)(float)(lo + (hi - lo) * urand()); }

static int max_len = 7; /* --max-len: the longest response of a random batch */

static Batch *random_batch(const IrGraph *g, uint64_t seed) {
  rng = seed * 0x9e3779b97f4a7c15ull + 17;
  int ng = 1 + (int)(urand() * 5);
  int nseq[8], lens[64], ns = 0;
  for (int i = 0; i < ng; i++) {
    nseq[i] = 1 + (int)(urand() * 4);
    for (int s = 0; s < nseq[i]; s++) lens[ns++] = urand() < 0.15 ? 0 : 1 + (int)(urand() * max_len);
  }
  Level lv[64];
  for (int k = 0; k < g->nuinputs; k++) lv[k] = g->uinputs[k].level;
  Batch *b = bt_alloc(ng, nseq, lens, g->nuinputs, lv);
  for (int t = 0; t < b->ntoks; t++) {
    b->in[IN_LOGP][t] = uniform(-5, 0);
    b->in[IN_OLD_LOGP][t] = uniform(-5, 0);
    b->in[IN_REF_LOGP][t] = uniform(-5, 0);
    b->in[IN_ENTROPY][t] = uniform(0, 3);
    b->in[IN_ROLLOUT_LOGP][t] = 0.9 * b->in[IN_OLD_LOGP][t] - 0.05 * (t % 3);   /* no draw: the stream stays */
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

static void fail(const char *file, uint64_t seed, const char *what) {
  if (failures++ < 40) fprintf(stderr, "FAIL %s (batch seed %llu): %s\n", file, (unsigned long long)seed, what);
}

static void compare(const char *file, uint64_t seed, const char *who, const char *what, int idx, double got,
                    double want) {
  checks++;
  /* f64: 1e-5 relative (+1e-9); f32: the spec's criterion, 1e-5 relative or 1e-6 absolute (a
   * loss or gradient that cancels to near 0 keeps the float32 rounding of its terms) */
  double d = fabs(got - want);
  bool close = prec_f64 ? d <= 1e-5 * fabs(want) + 1e-9 : d <= 1e-5 * fabs(want) || d <= 1e-6;
  bool ok = isfinite(got) && isfinite(want) ? close : same_nonfinite(got, want);
  if (ok) return;
  if (failures++ < 40)
    fprintf(stderr, "FAIL %s (batch seed %llu): %s: %s[%d]: %.17g, interpreter %.17g\n", file,
            (unsigned long long)seed, who, what, idx, got, want);
}

static void compare_results(const char *file, uint64_t seed, const char *who, const IrGraph *g, const rt_result *a,
                            const rt_result *b) {
  compare(file, seed, who, "loss", 0, a->loss, b->loss);
  for (int m = 0; m < g->nmetrics; m++) compare(file, seed, who, g->metrics[m].name, m, a->metrics[m], b->metrics[m]);
  for (int k = 0; k < IR_NGRADS; k++)
    for (int t = 0; t < a->ntoks; t++)
      compare(file, seed, who, ir_grad_names[k], t, rt_grad(a, k, t), rt_grad(b, k, t));
}

static bool identical(const rt_result *a, const rt_result *b, int nmetrics) {
  if (a->ntoks != b->ntoks || a->nmetrics != b->nmetrics) return false;
  if (memcmp(&a->loss, &b->loss, sizeof(double))) return false;
  if (nmetrics && memcmp(a->metrics, b->metrics, sizeof(double) * (size_t)nmetrics)) return false;
  for (int k = 0; k < IR_NGRADS; k++)
    for (int64_t t = 0; t < a->ntoks; t++)
      if (memcmp(&(double){rt_grad(a, k, t)}, &(double){rt_grad(b, k, t)}, sizeof(double))) return false;
  return true;
}

/* prepare, run, fetch on backend BE; false (with a failure) when any fails */
static bool run_backend(rt_backend *be, const rt_batch *rb, const double *params, int micro, rt_result *r,
                        const char *file) {
  char err[1024] = "";
  if (be->prepare(be, rb, params, err, sizeof err) && be->run(be, micro, err, sizeof err) &&
      be->fetch(be, r, err, sizeof err))
    return true;
  fprintf(stderr, "FAIL %s: %s backend: %s\n", file, be->name, err);
  failures++;
  return false;
}

/* For an objective with a statistics stage: rt_stat with logp/entropy of the whole batch, then
 * the tokens from TKEEP on are NaN again (not given yet).  True when there is nothing to do. */
static bool staged_stat(rt_exec *x, const rt_batch *rb0, float *lp, float *en, int64_t tkeep, char *err,
                        size_t errlen) {
  if (!(cur_flags & REIN_STATS)) return true;
  for (int64_t t = 0; t < rb0->ntoks; t++) lp[t] = rb0->in[REIN_IN_LOGP][t], en[t] = rb0->in[REIN_IN_ENTROPY][t];
  bool ok = rt_stat(x, err, errlen);
  for (int64_t t = tkeep; t < rb0->ntoks; t++) lp[t] = en[t] = NAN;
  return ok;
}

/* The staged step on X against WANT (rt_run's result), micro-batches of MICRO groups. */
static void test_staged(rt_exec *x, const rt_batch *rb0, const double *params, int micro, const rt_result *want,
                        const char *file, uint64_t seed) {
  char err[1024] = "";
  rt_batch rb = *rb0;
  size_t nt = (size_t)rb.ntoks;
  float *lp = malloc(nt * sizeof(float) + 4), *en = malloc(nt * sizeof(float) + 4);
  for (size_t t = 0; t < nt; t++) lp[t] = en[t] = NAN; /* not given yet */
  rb.in[REIN_IN_LOGP] = lp, rb.in[REIN_IN_ENTROPY] = en;
  checks++;
  if ((cur_flags & REIN_STATS) && rt_begin(x, &rb, params, err, sizeof err)) {
    checks++;
    if (rt_micro(x, 0, 1, NULL, err, sizeof err)) fail(file, seed, "rt_micro accepted a step without rt_stat");
  }
  if (!rt_begin(x, &rb, params, err, sizeof err) || !staged_stat(x, rb0, lp, en, 0, err, sizeof err)) {
    fail(file, seed, err);
    free(lp), free(en);
    return;
  }
  for (int64_t g0 = 0; g0 < rb.ngroups; g0 += micro) {
    int64_t g1 = g0 + micro < rb.ngroups ? g0 + micro : rb.ngroups;
    int64_t t0 = rb.seq_tok[rb.grp_seq[g0]], t1 = rb.seq_tok[rb.grp_seq[g1]];
    for (int64_t t = t0; t < t1; t++) lp[t] = rb0->in[REIN_IN_LOGP][t], en[t] = rb0->in[REIN_IN_ENTROPY][t];
    const float *grad[2];
    checks++;
    if (!rt_micro(x, g0, g1, grad, err, sizeof err)) {
      fail(file, seed, err);
      free(lp), free(en);
      return;
    }
    for (int k = 0; k < 2; k++)
      for (int64_t t = t0; t < t1; t++)
        if (memcmp(&(double){grad[k][t]}, &(double){rt_grad(want, k, t)}, sizeof(double))) {
          fail(file, seed, "rt_micro: a gradient of the micro-batch differs from the whole step's");
          k = 2;
          break;
        }
    if (g1 < rb.ngroups) { /* out of order: a group skipped, or the end too early */
      checks += 2;
      if (rt_end(x, &(rt_result){0}, err, sizeof err)) fail(file, seed, "rt_end accepted a step with groups left");
      if (g1 + 1 < rb.ngroups && rt_micro(x, g1 + 1, rb.ngroups, NULL, err, sizeof err))
        fail(file, seed, "rt_micro accepted a micro-batch out of order");
      if (!rt_begin(x, &rb, params, err, sizeof err) || !staged_stat(x, rb0, lp, en, t1, err, sizeof err))
        break; /* a refused call ends the step: redo */
      for (int64_t h = 0; h < g1; h += micro)
        if (!rt_micro(x, h, h + micro < g1 ? h + micro : g1, NULL, err, sizeof err)) break;
    }
  }
  rt_result r;
  checks++;
  if (!rt_end(x, &r, err, sizeof err)) fail(file, seed, err);
  else if (!identical(&r, want, (int)want->nmetrics)) fail(file, seed, "rt_end: not the result of rt_run");
  free(lp), free(en);
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
  CgOptions co = {NULL, false, !gpu, prec_f64}; /* PTX only when the GPU runs it */
  rt_objective *o = cg_compile_and_open(p, &co, err, sizeof err);
  if (!o) {
    fprintf(stderr, "FAIL %s: %s\n", file, err);
    failures++;
  }
  programs++;
  if (o && (rt_desc(o)->flags & REIN_FINAL_SWEEP)) final_sweeps++;
  if (o && (rt_desc(o)->flags & REIN_STATS)) stats++;
  cur_flags = o ? rt_desc(o)->flags : 0;
  double *params = ir_xcalloc((size_t)g->nparams + 1, sizeof(double));
  for (int i = 0; i < g->nparams; i++) {
    params[i] = g->params[i].value;
    for (int k = 0; k < REIN_NUM_TRAINER_CONSTS; k++)
      if (g->params[i].kind == REIN_PARAM_TRAINER && !strcmp(g->params[i].name, rein_trainer_const_name(k)))
        params[i] = k == REIN_TC_MAX_NEW ? 7 : k == REIN_TC_GROUP_SIZE ? 3 : 5;
  }
  /* every backend through the same interface: the reference, and the variants */
  rt_backend *interp = cg_interp_backend(p), *interp_m = cg_interp_backend(p);
  rt_backend *cpu = o ? cg_backend_new("cpu", p, o, 1, err, sizeof err) : NULL;
  rt_backend *cpu_v[2] = {o ? cg_backend_new("cpu", p, o, 1, err, sizeof err) : NULL,
                          o ? cg_backend_new("cpu", p, o, 2, err, sizeof err) : NULL};
  rt_backend *gpu_be = NULL;
  if (o && gpu && !(gpu_be = cg_backend_new("gpu", p, o, 0, err, sizeof err))) {
    if (strstr(err, "no GPU")) {
      fprintf(stderr, "test_backend: SKIP: %s\n", err);
      exit(77);
    } fprintf(stderr, "FAIL %s: GPU: %s\n", file, err), failures++;
  }
  rt_exec *x = o ? rt_exec_new(o, RT_CPU, 2, err, sizeof err) : NULL;
  for (int bi = 0; o && bi < nbatches; bi++) {
    uint64_t seed = seed0 + (uint64_t)bi;
    Batch *b = random_batch(g, seed);
    CgBatch cb;
    cg_batch_make(&cb, g, b);
    rt_result want, got, alt;
    if (!run_backend(interp, &cb.rb, params, 0, &want, file) || !run_backend(cpu, &cb.rb, params, 0, &got, file)) {
      cg_batch_free(&cb);
      bt_free(b);
      break;
    }
    compare_results(file, seed, "cpu", g, &got, &want);
    /* micro-batched interpreter against the compiled code */
    if (run_backend(interp_m, &cb.rb, params, 1, &alt, file)) compare_results(file, seed, "interp micro 1", g, &got, &alt);
    /* determinism: threads and micro-batch sizes change nothing */
    static const int variants[][2] = {{0, 2}, {1, 1}, {2, 2}, {1, 2}};
    for (int v = 0; v < 4; v++) {
      checks++;
      if (!run_backend(cpu_v[variants[v][1] - 1], &cb.rb, params, variants[v][0], &alt, file)) continue;
      if (!identical(&alt, &got, g->nmetrics) && failures++ < 40)
        fprintf(stderr, "FAIL %s (batch seed %llu): micro-groups %d, %d threads: not bit-identical\n", file,
                (unsigned long long)seed, variants[v][0], variants[v][1]);
    }
    /* the staged step, micro-batches of 1 and 2 groups */
    test_staged(x, &cb.rb, params, 1, &got, file, seed);
    test_staged(x, &cb.rb, params, 2, &got, file, seed);
    if (gpu_be && run_backend(gpu_be, &cb.rb, params, 0, &alt, file)) {
      compare_results(file, seed, "gpu", g, &alt, &want);
      /* run to run: the same batch again gives the same bytes (the result is copied first: a run's
       * arrays are the backend's until its next run) */
      size_t nt = (size_t)alt.ntoks, nm = (size_t)g->nmetrics;
      double *first = ir_xcalloc(1 + nm + 2 * nt, sizeof(double));
      first[0] = alt.loss;
      if (nm) memcpy(first + 1, alt.metrics, nm * sizeof(double));
      for (int k = 0; k < 2; k++)
        for (size_t t = 0; t < nt; t++) first[1 + nm + k * nt + t] = rt_grad(&alt, k, (int64_t)t);
      checks++;
      bool same = run_backend(gpu_be, &cb.rb, params, 0, &alt, file) && !memcmp(&alt.loss, first, sizeof(double)) &&
                  (!nm || !memcmp(alt.metrics, first + 1, nm * sizeof(double)));
      for (int k = 0; k < 2 && same; k++)
        for (size_t t = 0; t < nt && same; t++)
          same = !memcmp(&(double){rt_grad(&alt, k, (int64_t)t)}, &first[1 + nm + k * nt + t], sizeof(double));
      if (!same) fail(file, seed, "gpu: a second run of the same batch is not bit-identical");
      free(first);
      if (run_backend(gpu_be, &cb.rb, params, 1, &alt, file)) compare_results(file, seed, "gpu micro 1", g, &alt, &want);
    }
    cg_batch_free(&cb);
    bt_free(b);
  }
  rt_exec_free(x);
  rt_backend_free(interp), rt_backend_free(interp_m), rt_backend_free(cpu);
  rt_backend_free(cpu_v[0]), rt_backend_free(cpu_v[1]), rt_backend_free(gpu_be);
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
    else if (!strcmp(argv[i], "--max-len") && i + 1 < argc && atoi(argv[i + 1]) > 0) max_len = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--precision") && i + 1 < argc && (!strcmp(argv[i + 1], "f32") || !strcmp(argv[i + 1], "f64")))
      prec_f64 = !strcmp(argv[++i], "f64");
    else {
      fprintf(stderr, "usage: test_backend [--batches N] [--seed S] [--gpu] [--precision f32|f64] [--max-len L] "
                    "FILE.rein...\n");
      return 2;
    }
  }
  if (i == argc) {
    fprintf(stderr, "test_backend: no programs\n");
    return 2;
  }
  for (; i < argc; i++) test_file(argv[i], nbatches, seed, gpu);
  printf("test_backend (%s): %d programs (%d with a final sweep, %d with a statistics stage), %d checks, %d failures\n",
         prec_f64 ? "f64" : "f32", programs, final_sweeps, stats, checks,
         failures);
  return failures ? 1 : 0;
}
