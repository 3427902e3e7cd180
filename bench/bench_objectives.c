/* bench_objectives.c — the compiled CPU objectives, in float64 and in float32 token arithmetic
 * (CgOptions.f64), against the interpreter, an eager PyTorch implementation (bench/torch_eager.py)
 * and memcpy, in one run.  Not a test: it prints a table.
 *
 *   bench_objectives [--tokens N]... [--threads T] [--repeat R] [--no-torch] [--no-interp]
 *                    [--cpu CPU] [--python PATH] [--torch-script PATH] FILE.rein...
 *
 * --cpu compiles for CPU (an LLVM name, as `rein compile --cpu`) instead of this machine's, to
 * measure, say, the AVX2 code of `haswell` on an AVX-512 machine.
 *
 * Each objective runs on a batch of N tokens: groups of 16 sequences of 256 tokens (logp, old_logp
 * in [-5, 0], rewards a mix of 0/1 and uniform values; every declared user input, at its level,
 * also in [-5, 0], like the log-probs it usually is; the trainer constants max_new = 256,
 * group_size = 16, step = 1).  "f64" and "f32" are the best of R full
 * steps of the runtime (prologue, micro-batch pass, final stage; one micro-batch) with T threads,
 * of the objective compiled with --precision f64 and f32 (the default); "interp" is one
 * evaluation by the reference interpreter (float64, node by node); "torch" is the best of R
 * loss+backward of the eager PyTorch implementation with T threads, for the objectives
 * `torch_eager.py --list` names (matched by program path); x_interp and x_torch are against f32.
 *
 * Bandwidth: the compulsory traffic of a step is every input array the objective reads (4 bytes
 * per element) plus every gradient it writes (4 bytes per token).  memcpy's bandwidth is measured
 * on a copy of that many bytes with T threads and counts its read and its write; "of memcpy" is
 * the ratio of the two bandwidths.  The machine may be shared: the R rounds interleave one f64
 * step, one f32 step and one memcpy, so the three see the same load, and the load average is
 * printed at the start and the end.  cpu64_s and cpu32_s are the least CPU seconds (all threads) of
 * a step: less sensitive than wall time to other jobs on the machine, and cpu_x their ratio.  The losses are checked against the interpreter (language.md's
 * criterion: 1e-5 relative or 1e-6 absolute); a miss is a warning on stderr.
 */
#define _GNU_SOURCE
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cg_eval.h"
#include "frontend.h"
#include "pipeline.h"

#include "bench_memcpy.h"

static uint64_t rng = 12345;
static double urand(void) {
  rng = rng * 6364136223846793005ull + 1442695040888963407ull;
  return (double)(rng >> 11) * (1.0 / 9007199254740992.0);
}

enum { GROUP = 16, SEQLEN = 256 };

typedef struct {
  Batch *b;    /* the interpreter's (float64, float32-rounded values) */
  rt_batch rb; /* the runtime's */
  float *in[IN_COUNT];
  float **uin; /* (nuin) the user inputs */
  int nuin;
  int32_t *grp_seq, *seq_tok;
} Data;

static void make_data(Data *d, const IrGraph *g, long ntoks, bool for_interp) {
  long nseq = ntoks / SEQLEN, ngroups = nseq / GROUP;
  nseq = ngroups * GROUP;
  ntoks = nseq * SEQLEN;
  memset(d, 0, sizeof *d);
  d->grp_seq = malloc(sizeof(int32_t) * (size_t)(ngroups + 1));
  d->seq_tok = malloc(sizeof(int32_t) * (size_t)(nseq + 1));
  for (long g = 0; g <= ngroups; g++) d->grp_seq[g] = (int32_t)(g * GROUP);
  for (long s = 0; s <= nseq; s++) d->seq_tok[s] = (int32_t)(s * SEQLEN);
  for (int k = 0; k < IN_COUNT; k++) {
    long n = bi_inputs[k].level == LV_TOKEN ? ntoks : nseq;
    d->in[k] = malloc(sizeof(float) * (size_t)(n + 1));
    for (long i = 0; i < n; i++) {
      double v;
      switch (k) {
      case IN_REWARD: v = urand() < 0.5 ? (urand() < 0.5 ? 0.0 : 1.0) : urand(); break;
      case IN_ENTROPY: v = 3 * urand(); break;
      case IN_TRUNCATED: v = urand() < 0.1; break;
      case IN_LAG: v = (double)(int)(urand() * 3); break;
      case IN_POS: v = (double)(i % SEQLEN); break;
      case IN_LEN: v = SEQLEN; break;
      default: v = -5 * urand(); break;
      }
      d->in[k][i] = (float)v;
    }
  }
  d->nuin = g->nuinputs;
  d->uin = calloc((size_t)d->nuin + 1, sizeof(float *));
  for (int k = 0; k < d->nuin; k++) {
    long n = g->uinputs[k].level == LV_TOKEN ? ntoks : nseq;
    d->uin[k] = malloc(sizeof(float) * (size_t)(n + 1));
    for (long i = 0; i < n; i++) d->uin[k][i] = (float)(-5 * urand());
  }
  rt_batch rb = {.ngroups = ngroups, .nseqs = nseq, .ntoks = ntoks, .grp_seq = d->grp_seq, .seq_tok = d->seq_tok,
                 .seed = 1};
  for (int k = 0; k < IN_COUNT; k++) rb.in[k] = d->in[k];
  rb.uin = (const float *const *)d->uin;
  d->rb = rb;
  if (!for_interp) return;
  int *nseqs = malloc(sizeof(int) * (size_t)ngroups), *lens = malloc(sizeof(int) * (size_t)nseq);
  for (long g = 0; g < ngroups; g++) nseqs[g] = GROUP;
  for (long s = 0; s < nseq; s++) lens[s] = SEQLEN;
  Level *lv = calloc((size_t)d->nuin + 1, sizeof(Level));
  for (int k = 0; k < d->nuin; k++) lv[k] = g->uinputs[k].level;
  d->b = bt_alloc((int)ngroups, nseqs, lens, d->nuin, lv);
  free(lv);
  for (int k = 0; k < d->nuin; k++) {
    long n = g->uinputs[k].level == LV_TOKEN ? ntoks : nseq;
    for (long i = 0; i < n; i++) d->b->uin[k][i] = d->uin[k][i];
  }
  for (int k = 0; k < IN_COUNT; k++) {
    long n = bi_inputs[k].level == LV_TOKEN ? ntoks : nseq;
    for (long i = 0; i < n; i++) d->b->in[k][i] = d->in[k][i];
  }
  d->b->seed = 1;
  free(nseqs);
  free(lens);
}

static void free_data(Data *d) {
  for (int k = 0; k < IN_COUNT; k++) free(d->in[k]);
  for (int k = 0; k < d->nuin; k++) free(d->uin[k]);
  free(d->uin);
  free(d->grp_seq);
  free(d->seq_tok);
  bt_free(d->b);
}

/* Runs the torch script; its best time, or NAN. */
static double torch_time(const char *python, const char *script, const char *objective, long ntoks, int threads,
                         int repeat) {
  char cmd[2048];
  snprintf(cmd, sizeof cmd, "%s %s --objective %s --tokens %ld --group-size %d --seq-len %d --threads %d --repeat %d",
           python, script, objective, ntoks, GROUP, SEQLEN, threads, repeat);
  FILE *p = popen(cmd, "r");
  if (!p) return NAN;
  char line[4096];
  double best = NAN;
  while (fgets(line, sizeof line, p)) {
    char *s = strstr(line, "\"best_s\":");
    if (s) best = strtod(s + 9, NULL);
  }
  if (pclose(p) != 0) return NAN;
  return best;
}

/* The torch script's name for program PATH (`--list`: "NAME PROGRAM" lines, PROGRAM relative to
 * the repository root, matched as a suffix of PATH's real path) into NAME, or false. */
static bool torch_name(const char *python, const char *script, const char *path, char *name, size_t n) {
  char cmd[2048], line[1024], *real = realpath(path, NULL);
  if (!real) return false;
  snprintf(cmd, sizeof cmd, "%s %s --list", python, script);
  FILE *p = popen(cmd, "r");
  bool found = false;
  while (p && fgets(line, sizeof line, p)) {
    char nm[256], prog[768];
    if (sscanf(line, "%255s %767s", nm, prog) != 2) continue;
    size_t lr = strlen(real), lp = strlen(prog);
    if (!found && lr > lp && real[lr - lp - 1] == '/' && !strcmp(real + lr - lp, prog))
      snprintf(name, n, "%s", nm), found = true;
  }
  if (p) pclose(p);
  free(real);
  return found;
}

/* The row's name: the file's base name, prefixed "ex_" for examples/ (lang/std has a gspo too). */
static const char *row_name(const char *path, char *buf, size_t n) {
  const char *s = strrchr(path, '/');
  s = s ? s + 1 : path;
  bool ex = strstr(path, "examples/") != NULL;
  snprintf(buf, n, "%s%s", ex ? "ex_" : "", s);
  char *dot = strrchr(buf, '.');
  if (dot) *dot = 0;
  return buf;
}

static double cpu_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* One step of X on D: its seconds (*CPU: the CPU seconds of all threads), or a negative number
 * with the message printed. */
static double step_time(rt_exec *x, Data *d, const double *params, rt_result *res, double *cpu) {
  char err[1024];
  double c0 = cpu_now(), t0 = bench_now();
  if (!rt_run(x, &d->rb, params, 0, res, err, sizeof err)) {
    fprintf(stderr, "%s\n", err);
    return -1;
  }
  double t = bench_now() - t0;
  *cpu = cpu_now() - c0;
  return t;
}

static bool spec_close(double got, double want) {
  double dd = fabs(got - want);
  return dd <= 1e-5 * fabs(want) || dd <= 1e-6;
}

static void print_load(const char *when) {
  double la[3];
  if (getloadavg(la, 3) == 3) printf("load average (%s): %.2f %.2f %.2f\n", when, la[0], la[1], la[2]);
}

int main(int argc, char **argv) {
  long sizes[8];
  int nsizes = 0, threads = omp_get_max_threads(), repeat = 5;
  bool torch = true, interp = true;
  const char *python = "/usr/bin/python3", *script = "bench/torch_eager.py", *cpu = NULL;
  int i = 1;
  for (; i < argc && argv[i][0] == '-'; i++) {
    if (!strcmp(argv[i], "--tokens") && i + 1 < argc && nsizes < 8) sizes[nsizes++] = atol(argv[++i]);
    else if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--repeat") && i + 1 < argc) repeat = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--cpu") && i + 1 < argc) cpu = argv[++i];
    else if (!strcmp(argv[i], "--no-torch")) torch = false;
    else if (!strcmp(argv[i], "--no-interp")) interp = false;
    else if (!strcmp(argv[i], "--python") && i + 1 < argc) python = argv[++i];
    else if (!strcmp(argv[i], "--torch-script") && i + 1 < argc) script = argv[++i];
    else {
      fprintf(stderr, "usage: bench_objectives [--tokens N]... [--threads T] [--repeat R] [--no-torch] [--no-interp] "
                      "[--cpu CPU] [--python PATH] [--torch-script PATH] FILE.rein...\n");
      return 2;
    }
  }
  if (repeat < 1) repeat = 1;
  if (nsizes == 0) sizes[nsizes++] = 1 << 20, sizes[nsizes++] = 1 << 24;
  printf("threads %d, best of %d interleaved rounds; groups of %d sequences of %d tokens\n", threads, repeat, GROUP,
         SEQLEN);
  print_load("start");
  printf("%-22s %9s %9s %9s %6s %9s %9s %6s %9s %9s %8s %8s %7s %7s %8s %8s %8s\n", "objective", "tokens", "f64_s",
         "f32_s", "f64/32", "cpu64_s", "cpu32_s", "cpu_x", "interp_s", "torch_s", "x_interp", "x_torch", "GB/s64",
         "GB/s32", "memcpy64", "memcpy32", "cpyGB/s");
  for (; i < argc; i++) {
    Diag dg;
    diag_init(&dg, stderr);
    FeUnit u;
    memset(&u, 0, sizeof u);
    if (!fe_check_file(&dg, argv[i], &u)) return 1;
    dg.file = u.file;
    PipeOptions po = {NULL, stdout, false};
    Plan *p = NULL;
    IrGraph *g = pipe_run(&u.prog, NULL, &dg, &po, &p);
    if (!g) return 1;
    char err[1024];
    rt_objective *o[2]; /* [0] float64, [1] float32 token arithmetic */
    for (int k = 0; k < 2; k++) {
      CgOptions co = {cpu, false, true, k == 0};
      o[k] = cg_compile_and_open(p, &co, err, sizeof err);
      if (!o[k]) {
        fprintf(stderr, "%s\n", err);
        return 1;
      }
    }
    const rein_objective *desc = rt_desc(o[1]);
    double *params = ir_xcalloc((size_t)g->nparams + 1, sizeof(double));
    for (int k = 0; k < g->nparams; k++) {
      params[k] = g->params[k].value;
      for (int t = 0; t < REIN_NUM_TRAINER_CONSTS; t++)
        if (g->params[k].kind == REIN_PARAM_TRAINER && !strcmp(g->params[k].name, rein_trainer_const_name(t)))
          params[k] = t == REIN_TC_MAX_NEW ? SEQLEN : t == REIN_TC_GROUP_SIZE ? GROUP : 1;
    }
    char name[256], tname[256];
    row_name(argv[i], name, sizeof name);
    bool has_torch = torch && torch_name(python, script, argv[i], tname, sizeof tname);
    for (int si = 0; si < nsizes; si++) {
      Data d;
      make_data(&d, g, sizes[si], interp);
      long ntoks = (long)d.rb.ntoks;
      size_t bytes = 0;
      for (int k = 0; k < IN_COUNT; k++)
        if ((desc->inputs_used >> k & 1) && k != IN_POS && k != IN_LEN)
          bytes += 4 * (size_t)(bi_inputs[k].level == LV_TOKEN ? ntoks : d.rb.nseqs);
      for (int k = 0; k < d.nuin; k++) bytes += 4 * (size_t)(g->uinputs[k].level == LV_TOKEN ? ntoks : d.rb.nseqs);
      if (desc->flags & REIN_GRAD_LOGP) bytes += 4 * (size_t)ntoks;
      if (desc->flags & REIN_GRAD_ENTROPY) bytes += 4 * (size_t)ntoks;
      char *src = malloc(bytes), *dst = malloc(bytes);
      memset(src, 1, bytes);
      memset(dst, 0, bytes);
      rt_exec *x[2];
      rt_result res[2];
      double best[3] = {INFINITY, INFINITY, INFINITY}, bestcpu[2] = {INFINITY, INFINITY};
      for (int k = 0; k < 2; k++) x[k] = rt_exec_new(o[k], RT_CPU, threads, err, sizeof err);
      for (int r = 0; r < repeat + 1; r++) { /* round 0 warms up: allocations, page faults */
        double t[3], cpu;
        for (int k = 0; k < 2; k++) {
          if ((t[k] = step_time(x[k], &d, params, &res[k], &cpu)) < 0) return 1;
          if (r > 0 && cpu < bestcpu[k]) bestcpu[k] = cpu;
        }
        t[2] = bench_memcpy(dst, src, bytes, threads);
        for (int k = 0; r > 0 && k < 3; k++)
          if (t[k] < best[k]) best[k] = t[k];
      }
      double ti = NAN;
      if (interp) {
        ItResult ir;
        double t0 = bench_now();
        it_eval(p, d.b, params, 0, &ir);
        ti = bench_now() - t0;
        for (int k = 0; k < 2; k++)
          if (!spec_close(res[k].loss, ir.loss))
            fprintf(stderr, "warning: %s (%s): compiled loss %.9g, interpreter %.9g\n", name, k ? "f32" : "f64",
                    res[k].loss, ir.loss);
        it_result_free(&ir);
      }
      double tt = has_torch ? torch_time(python, script, tname, ntoks, threads, repeat) : NAN;
      double mbw = 2.0 * (double)bytes / best[2];
      double bw64 = (double)bytes / best[0], bw32 = (double)bytes / best[1];
      printf("%-22s %9ld %9.5f %9.5f %6.2f %9.5f %9.5f %6.2f %9.4f %9.4f %8.1f %8.1f %7.2f %7.2f %7.0f%% %7.0f%% %8.2f\n",
             name, ntoks, best[0], best[1], best[0] / best[1], bestcpu[0], bestcpu[1], bestcpu[0] / bestcpu[1], ti, tt,
             ti / best[1], tt / best[1], bw64 / 1e9, bw32 / 1e9, 100 * bw64 / mbw, 100 * bw32 / mbw, mbw / 1e9);
      fflush(stdout);
      for (int k = 0; k < 2; k++) rt_exec_free(x[k]);
      free(src);
      free(dst);
      free_data(&d);
    }
    free(params);
    for (int k = 0; k < 2; k++) rt_close(o[k]);
    pl_free(p);
    ir_free(g);
    fe_free(&u);
  }
  print_load("end");
  return 0;
}
