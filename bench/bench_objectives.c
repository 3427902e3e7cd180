/* bench_objectives.c — the compiled CPU objectives against the interpreter, an eager PyTorch
 * implementation (bench/torch_eager.py) and memcpy, in one run.  Not a test: it prints a table.
 *
 *   bench_objectives [--tokens N]... [--threads T] [--repeat R] [--no-torch] [--no-interp]
 *                    [--python PATH] [--torch-script PATH] FILE.rein...
 *
 * Each objective runs on a batch of N tokens: groups of 16 sequences of 256 tokens (logp, old_logp
 * in [-5, 0], rewards a mix of 0/1 and uniform values).  "compiled" is the best of R full steps
 * of the runtime (prologue, micro-batch pass, final stage; one micro-batch) with T threads;
 * "interp" is one evaluation by the reference interpreter (float64, node by node); "torch" is the
 * best of R loss+backward of the eager PyTorch implementation with T threads.
 *
 * Bandwidth: the compulsory traffic of a step is every input array the objective reads (4 bytes
 * per element) plus every gradient it writes (4 bytes per token).  memcpy's bandwidth is measured
 * on a copy of that many bytes with T threads and counts its read and its write; "of memcpy" is
 * the ratio of the two bandwidths.
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

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

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
  int32_t *grp_seq, *seq_tok;
} Data;

static void make_data(Data *d, long ntoks, bool for_interp) {
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
  rt_batch rb = {.ngroups = ngroups, .nseqs = nseq, .ntoks = ntoks, .grp_seq = d->grp_seq, .seq_tok = d->seq_tok,
                 .seed = 1};
  for (int k = 0; k < IN_COUNT; k++) rb.in[k] = d->in[k];
  d->rb = rb;
  if (!for_interp) return;
  int *nseqs = malloc(sizeof(int) * (size_t)ngroups), *lens = malloc(sizeof(int) * (size_t)nseq);
  for (long g = 0; g < ngroups; g++) nseqs[g] = GROUP;
  for (long s = 0; s < nseq; s++) lens[s] = SEQLEN;
  d->b = bt_alloc((int)ngroups, nseqs, lens, 0, NULL);
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
  free(d->grp_seq);
  free(d->seq_tok);
  bt_free(d->b);
}

static double memcpy_bw(size_t bytes, int threads, int repeat) {
  char *src = malloc(bytes), *dst = malloc(bytes);
  memset(src, 1, bytes);
  memset(dst, 0, bytes);
  double best = INFINITY;
  for (int r = 0; r < repeat + 1; r++) {
    double t0 = now();
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int k = 0; k < threads; k++) {
      size_t lo = bytes * (size_t)k / (size_t)threads, hi = bytes * (size_t)(k + 1) / (size_t)threads;
      memcpy(dst + lo, src + lo, hi - lo);
    }
    double t = now() - t0;
    if (r > 0 && t < best) best = t; /* the first copy faults the pages in */
  }
  free(src);
  free(dst);
  return 2.0 * (double)bytes / best;
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

static const char *basename_noext(const char *path, char *buf, size_t n) {
  const char *s = strrchr(path, '/');
  s = s ? s + 1 : path;
  snprintf(buf, n, "%s", s);
  char *dot = strrchr(buf, '.');
  if (dot) *dot = 0;
  return buf;
}

int main(int argc, char **argv) {
  long sizes[8];
  int nsizes = 0, threads = omp_get_max_threads(), repeat = 5;
  bool torch = true, interp = true;
  const char *python = "/usr/bin/python3", *script = "bench/torch_eager.py";
  int i = 1;
  for (; i < argc && argv[i][0] == '-'; i++) {
    if (!strcmp(argv[i], "--tokens") && i + 1 < argc && nsizes < 8) sizes[nsizes++] = atol(argv[++i]);
    else if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--repeat") && i + 1 < argc) repeat = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--no-torch")) torch = false;
    else if (!strcmp(argv[i], "--no-interp")) interp = false;
    else if (!strcmp(argv[i], "--python") && i + 1 < argc) python = argv[++i];
    else if (!strcmp(argv[i], "--torch-script") && i + 1 < argc) script = argv[++i];
    else {
      fprintf(stderr, "usage: bench_objectives [--tokens N]... [--threads T] [--repeat R] [--no-torch] [--no-interp] "
                      "[--python PATH] [--torch-script PATH] FILE.rein...\n");
      return 2;
    }
  }
  if (nsizes == 0) sizes[nsizes++] = 1 << 20, sizes[nsizes++] = 1 << 24;
  printf("threads %d, best of %d; groups of %d sequences of %d tokens\n", threads, repeat, GROUP, SEQLEN);
  printf("%-18s %9s %11s %11s %11s %9s %9s %9s %10s\n", "objective", "tokens", "compiled_s", "interp_s", "torch_s",
         "x_interp", "x_torch", "GB/s", "of_memcpy");
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
    CgOptions co = {NULL, false, true};
    rt_objective *o = cg_compile_and_open(p, &co, err, sizeof err);
    if (!o) {
      fprintf(stderr, "%s\n", err);
      return 1;
    }
    const rein_objective *desc = rt_desc(o);
    double *params = ir_xcalloc((size_t)g->nparams + 1, sizeof(double));
    for (int k = 0; k < g->nparams; k++) params[k] = g->params[k].value;
    char name[256];
    basename_noext(argv[i], name, sizeof name);
    for (int si = 0; si < nsizes; si++) {
      Data d;
      make_data(&d, sizes[si], interp);
      long ntoks = (long)d.rb.ntoks;
      rt_exec *x = rt_exec_new(o, RT_CPU, threads, err, sizeof err);
      rt_result res;
      double best = INFINITY;
      for (int r = 0; r < repeat + 1; r++) {
        double t0 = now();
        if (!rt_run(x, &d.rb, params, 0, &res, err, sizeof err)) {
          fprintf(stderr, "%s\n", err);
          return 1;
        }
        double t = now() - t0;
        if (r > 0 && t < best) best = t; /* the first run allocates */
      }
      double ti = NAN;
      if (interp) {
        ItResult ir;
        double t0 = now();
        it_eval(p, d.b, params, 0, &ir);
        ti = now() - t0;
        if (fabs(ir.loss - res.loss) > 1e-5 * fabs(ir.loss) + 1e-9)
          fprintf(stderr, "warning: %s: compiled loss %.9g, interpreter %.9g\n", name, res.loss, ir.loss);
        it_result_free(&ir);
      }
      double tt = torch ? torch_time(python, script, name, ntoks, threads, repeat) : NAN;
      size_t bytes = 0;
      for (int k = 0; k < IN_COUNT; k++)
        if ((desc->inputs_used >> k & 1) && k != IN_POS && k != IN_LEN)
          bytes += 4 * (size_t)(bi_inputs[k].level == LV_TOKEN ? ntoks : d.rb.nseqs);
      if (desc->flags & REIN_GRAD_LOGP) bytes += 4 * (size_t)ntoks;
      if (desc->flags & REIN_GRAD_ENTROPY) bytes += 4 * (size_t)ntoks;
      double bw = (double)bytes / best, mbw = memcpy_bw(bytes, threads, repeat);
      printf("%-18s %9ld %11.5f %11.4f %11.4f %9.1f %9.1f %9.2f %9.0f%%\n", name, ntoks, best, ti, tt, ti / best,
             tt / best, bw / 1e9, 100 * bw / mbw);
      fflush(stdout);
      rt_exec_free(x);
      free_data(&d);
    }
    free(params);
    rt_close(o);
    pl_free(p);
    ir_free(g);
    fe_free(&u);
  }
  return 0;
}
