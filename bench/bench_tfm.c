/* bench_tfm.c — training and generation speed of the CPU transformer executor, against the
 * PyTorch eager implementation (bench/tfm_torch.py) on the same machine, in one run.
 *
 *   bench_tfm [--threads N] [--repeat R] [--torch bench/tfm_torch.py | --no-torch]
 *             [--only train|gen] [1m] [20m] [rl]
 *
 * Workloads (1m and 20m the same in tfm_torch.py):
 *   1m:  Llama, vocab 512, dim 128, 4 layers, 4 heads (2 kv), MLP 384, tied    (~0.85M params)
 *   20m: Llama, vocab 8192, dim 384, 8 layers, 6 heads (2 kv), MLP 1024, untied (~19M params)
 *   train: 16 sequences of 128 tokens, every position a target; one step = forward, backward
 *          from dlogp = -1/N and dentropy = 1e-3/N, AdamW.  tokens/s = 2048 / step time.
 *   generate: 16 prompts of 16 tokens, 112 new tokens each at temperature 1 with the KV cache.
 *          tokens/s = 1792 / time.
 *   rl:  the executor's share of `rein train`'s main job (README): the shipped arithmetic model's
 *        shape (vocab 17, dim 128, 4 layers, 4 heads (4 kv), MLP 384, tied), a step on 256
 *        sequences of 11 tokens and a generation of 3 tokens after 256 prompts of 8.  Rein only.
 *
 * The machine may be shared, so the two sides are measured in interleaved pairs: the PyTorch
 * script runs as a server (--serve) that times one step or one generation per request, and each
 * of the R pairs runs Rein's and PyTorch's (alternating which goes first) back to back, after a
 * warm-up of each.  Reported: each side's median rate, and the median and the range (min-max) of
 * the R per-pair ratios, which cancel load that changes on the scale of a pair.  The load
 * average (/proc/loadavg) is printed at the start and the end.
 *
 * Against the machine's limits, in the same run:
 *   train: the step's matrix-product FLOPs (6·N·P for the layers' matrices, 8·M·V·D for the head
 *          with its recomputation, the causal attention products) over the step time, as a share
 *          of the rate tfm_gemm itself reaches on one large (2048 × 1024 × 1024) product;
 *   generate: the bytes of weights each decode step must read (all parameters, float32) over
 *          the time per step, as a share of a 2-thread memcpy's bandwidth (read + write).
 */
#include "rein/tfm.h"
#include "../runtime/tfm/tfm_internal.h"

#include <omp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + 1e-9 * t.tv_nsec;
}

static int cmpd(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static double median(const double *x, int n) {
  double *t = malloc((size_t)n * sizeof *t);
  memcpy(t, x, (size_t)n * sizeof *t);
  qsort(t, (size_t)n, sizeof *t, cmpd);
  double r = n % 2 ? t[n / 2] : 0.5 * (t[n / 2 - 1] + t[n / 2]);
  free(t);
  return r;
}

static void minmax(const double *x, int n, double *lo, double *hi) {
  *lo = *hi = x[0];
  for (int i = 1; i < n; i++) {
    *lo = x[i] < *lo ? x[i] : *lo;
    *hi = x[i] > *hi ? x[i] : *hi;
  }
}

static const char *config_of(const char *name) {
  if (!strcmp(name, "1m"))
    return "{\"model_type\":\"llama\",\"vocab_size\":512,\"hidden_size\":128,\"num_hidden_layers\":4,"
           "\"num_attention_heads\":4,\"num_key_value_heads\":2,\"intermediate_size\":384,\"tie_word_embeddings\":true}";
  if (!strcmp(name, "20m"))
    return "{\"model_type\":\"llama\",\"vocab_size\":8192,\"hidden_size\":384,\"num_hidden_layers\":8,"
           "\"num_attention_heads\":6,\"num_key_value_heads\":2,\"intermediate_size\":1024,\"tie_word_embeddings\":false}";
  if (!strcmp(name, "rl"))
    return "{\"model_type\":\"llama\",\"vocab_size\":17,\"hidden_size\":128,\"num_hidden_layers\":4,"
           "\"num_attention_heads\":4,\"num_key_value_heads\":4,\"intermediate_size\":384,\"tie_word_embeddings\":true}";
  return NULL;
}

/* The work of a config: S sequences of L tokens per training step; S prompts of P tokens and NEW
 * new tokens each in a generation. */
typedef struct {
  int S, L, P, NEW;
} Work;

static Work work_of(const char *name) {
  if (!strcmp(name, "rl")) return (Work){256, 11, 8, 3};
  return (Work){16, 128, 16, 112};
}

/* The FLOPs of one training step of m on w.S sequences of w.L tokens, M = S*(L-1) target rows. */
static double train_flops(const TfmModel *m, Work w) {
  const TfmConfig *c = &m->cfg;
  double D = c->dim, qd = (double)c->n_heads * c->head_dim, kvd = (double)c->n_kv_heads * c->head_dim;
  double Pm = c->n_layers * (2 * D * qd + 2 * D * kvd + 3 * D * c->hidden);
  double N = (double)w.S * w.L, M = (double)w.S * (w.L - 1);
  double attn = 6.0 * w.S * (double)w.L * w.L * c->head_dim * c->n_heads * c->n_layers; /* fwd 2, bwd 4 (causal half) */
  return 6 * N * Pm + 8 * M * c->vocab * D + attn;
}

/* tfm_gemm's rate on one large product (GFLOP/s), the best of 3. */
static double gemm_rate(void) {
  int M = 2048, N = 1024, K = 1024;
  tfm_f *A = malloc(sizeof(tfm_f) * M * K), *B = malloc(sizeof(tfm_f) * N * K), *C = malloc(sizeof(tfm_f) * M * N);
  for (long i = 0; i < (long)M * K; i++) A[i] = (tfm_f)((i % 17) * 0.01);
  for (long i = 0; i < (long)N * K; i++) B[i] = (tfm_f)((i % 13) * 0.01);
  double best = 1e9;
  for (int r = 0; r < 4; r++) {
    double t0 = now();
    tfm_gemm(0, 1, M, N, K, A, K, B, K, 0, C, N);
    double t = now() - t0;
    if (r && t < best) best = t;
  }
  free(A);
  free(B);
  free(C);
  return 2.0 * M * N * K / best / 1e9;
}

/* A 2-thread memcpy's bandwidth (GB/s, read + write), 256 MiB, the best of 3. */
static double memcpy_rate(void) {
  size_t n = 256u << 20;
  char *a = malloc(n), *b = malloc(n);
  memset(a, 1, n);
  memset(b, 2, n);
  double best = 1e9;
  for (int r = 0; r < 4; r++) {
    double t0 = now();
#pragma omp parallel for schedule(static)
    for (int k = 0; k < 64; k++) memcpy(b + (size_t)k * (n / 64), a + (size_t)k * (n / 64), n / 64);
    double t = now() - t0;
    if (r && t < best) best = t;
  }
  free(a);
  free(b);
  return 2.0 * n / best / 1e9;
}

/* --- the PyTorch server ----------------------------------------------------------------------- */

typedef struct {
  pid_t pid;
  FILE *to, *from;
} Torch;

/* Start `python3 SCRIPT --serve --config NAME ...`; 0 when it answered "ready". */
static int torch_start(Torch *t, const char *script, const char *name, int threads) {
  int in[2], out[2];
  if (pipe(in) || pipe(out)) return -1;
  t->pid = fork();
  if (t->pid < 0) return -1;
  if (t->pid == 0) {
    dup2(in[0], 0);
    dup2(out[1], 1);
    close(in[1]);
    close(out[0]);
    char th[16];
    snprintf(th, sizeof th, "%d", threads);
    execl("/usr/bin/python3", "python3", script, "--serve", "--config", name, "--threads", th, (char *)NULL);
    _exit(127);
  }
  close(in[0]);
  close(out[1]);
  t->to = fdopen(in[1], "w");
  t->from = fdopen(out[0], "r");
  char line[256];
  return fgets(line, sizeof line, t->from) && !strncmp(line, "ready", 5) ? 0 : -1;
}

/* One timed request ("train" or "gen"); returns its seconds, or -1. */
static double torch_run(Torch *t, const char *what) {
  char line[256];
  fprintf(t->to, "%s\n", what);
  fflush(t->to);
  if (!fgets(line, sizeof line, t->from)) return -1;
  return atof(line);
}

static void torch_stop(Torch *t) {
  if (t->to) fclose(t->to);
  if (t->from) fclose(t->from);
  if (t->pid > 0) waitpid(t->pid, NULL, 0);
}

static void loadavg(const char *when) {
  char b[128] = "?";
  FILE *f = fopen("/proc/loadavg", "r");
  if (f) {
    if (!fgets(b, sizeof b, f)) snprintf(b, sizeof b, "?\n");
    fclose(f);
  }
  printf("load average (%s): %s", when, b);
}

/* --- Rein's side ----------------------------------------------------------------------------- */

typedef struct {
  TfmModel *m;
  Work w;
  int N, *off, *poff;
  int32_t *tok, *tgt;
  tfm_f *lp, *en, *gl, *ge;
  TfmAdamW o;
} Rein;

static void rein_setup(Rein *r, const char *name) {
  char err[512];
  TfmConfig cfg;
  if (tfm_config_parse(config_of(name), name, &cfg, err, sizeof err)) {
    fprintf(stderr, "%s\n", err);
    exit(1);
  }
  r->m = tfm_model_new(&cfg, err, sizeof err);
  tfm_model_init(r->m, 1);
  Work w = r->w = work_of(name);
  int N = r->N = w.S * w.L;
  r->off = malloc((w.S + 1) * sizeof(int));
  r->poff = malloc((w.S + 1) * sizeof(int));
  r->tok = malloc(N * sizeof(int32_t));
  r->tgt = malloc(N * sizeof(int32_t));
  r->lp = malloc(N * sizeof(tfm_f));
  r->en = malloc(N * sizeof(tfm_f));
  r->gl = malloc(N * sizeof(tfm_f));
  r->ge = malloc(N * sizeof(tfm_f));
  uint64_t x = 88172645463325252ull;
  for (int i = 0; i < N; i++) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    r->tok[i] = (int32_t)(x % (uint64_t)cfg.vocab);
  }
  for (int s = 0; s <= w.S; s++) r->off[s] = s * w.L, r->poff[s] = s * w.P;
  for (int i = 0; i < N; i++) {
    r->tgt[i] = (i + 1) % w.L ? r->tok[i + 1] : -1;
    r->gl[i] = r->tgt[i] >= 0 ? -1.0f / N : 0;
    r->ge[i] = r->tgt[i] >= 0 ? 1e-3f / N : 0;
  }
  r->o = tfm_adamw_defaults();
}

static double rein_train(Rein *r) {
  char err[512];
  TfmBatch b = {r->w.S, r->off, r->tok, r->tgt, 1.0};
  double t0 = now();
  TfmActs *a;
  tfm_zero_grad(r->m);
  if (tfm_forward(r->m, &b, r->lp, r->en, &a, err, sizeof err)) {
    fprintf(stderr, "%s\n", err);
    exit(1);
  }
  tfm_backward(r->m, a, r->gl, r->ge);
  tfm_adamw_step(r->m, &r->o);
  return now() - t0;
}

static double rein_gen(Rein *r) {
  char err[512];
  TfmSampling sp = {1.0, 1.0, 0, r->w.NEW, 0, NULL, 7, 0};
  TfmGenOut go;
  double t0 = now();
  if (tfm_generate(r->m, r->w.S, r->poff, r->tok, &sp, &go, err, sizeof err)) {
    fprintf(stderr, "%s\n", err);
    exit(1);
  }
  double t = now() - t0;
  tfm_genout_free(&go);
  return t;
}

static void rein_free(Rein *r) {
  tfm_model_free(r->m);
  free(r->off);
  free(r->poff);
  free(r->tok);
  free(r->tgt);
  free(r->lp);
  free(r->en);
  free(r->gl);
  free(r->ge);
}

/* One workload: warm-up, then R interleaved pairs.  ours/theirs: tokens/s medians; ratio: the
 * median per-pair ratio and its range (0 without the baseline). */
typedef struct {
  double ours, theirs, ratio, lo, hi;
} Result;

static Result measure(Rein *r, Torch *t, int is_train, int repeat) {
  double tokens = is_train ? r->N : (double)r->w.S * r->w.NEW;
  double *a = malloc(repeat * sizeof(double)), *b = malloc(repeat * sizeof(double)),
         *q = malloc(repeat * sizeof(double));
  const char *what = is_train ? "train" : "gen";
  (void)(is_train ? rein_train(r) : rein_gen(r));
  if (t && torch_run(t, what) < 0) t = NULL;
  int nq = 0; /* pairs with a baseline time */
  for (int k = 0; k < repeat; k++) {
    if (t && k % 2) b[nq] = torch_run(t, what);
    a[k] = is_train ? rein_train(r) : rein_gen(r);
    if (t && !(k % 2)) b[nq] = torch_run(t, what);
    if (t && b[nq] < 0) {
      fprintf(stderr, "bench_tfm: the PyTorch server stopped answering\n");
      t = NULL;
    }
    if (t) q[nq] = b[nq] / a[k], nq++;
  }
  Result res = {tokens / median(a, repeat), 0, 0, 0, 0};
  if (nq) {
    res.theirs = tokens / median(b, nq);
    res.ratio = median(q, nq);
    minmax(q, nq, &res.lo, &res.hi);
  }
  free(a);
  free(b);
  free(q);
  return res;
}

int main(int argc, char **argv) {
  int threads = 2, repeat = 5, only = 0; /* 1 train, 2 gen */
  const char *torch = "bench/tfm_torch.py";
  const char *names[3];
  int nn = 0;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--repeat") && i + 1 < argc) repeat = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--torch") && i + 1 < argc) torch = argv[++i];
    else if (!strcmp(argv[i], "--no-torch")) torch = NULL;
    else if (!strcmp(argv[i], "--only") && i + 1 < argc && !strcmp(argv[i + 1], "train")) only = 1, i++;
    else if (!strcmp(argv[i], "--only") && i + 1 < argc && !strcmp(argv[i + 1], "gen")) only = 2, i++;
    else if (config_of(argv[i]) && nn < 3) names[nn++] = argv[i];
    else {
      fprintf(stderr, "usage: bench_tfm [--threads N] [--repeat R] [--torch SCRIPT | --no-torch] "
                      "[--only train|gen] [1m] [20m] [rl]\n");
      return 2;
    }
  }
  if (!nn) names[nn++] = "1m", names[nn++] = "20m";
  if (repeat < 1) repeat = 1;
  signal(SIGPIPE, SIG_IGN);
  omp_set_num_threads(threads);
  printf("threads %d, %d interleaved pairs after a warm-up (medians; ratio range min-max)\n", threads, repeat);
  loadavg("start");
  Result tr[3] = {{0}}, gn[3] = {{0}};
  double flops[3] = {0}, bytes[3] = {0};
  for (int k = 0; k < nn; k++) {
    Rein r;
    rein_setup(&r, names[k]);
    Torch t = {0}, *tp = NULL;
    if (torch && strcmp(names[k], "rl")) {
      if (torch_start(&t, torch, names[k], threads) == 0) tp = &t;
      else fprintf(stderr, "bench_tfm: %s failed for %s\n", torch, names[k]);
    }
    if (only != 2) {
      tr[k] = measure(&r, tp, 1, repeat);
      flops[k] = train_flops(r.m, r.w) * tr[k].ours / r.N;
    }
    if (only != 1) {
      gn[k] = measure(&r, tp, 0, repeat);
      bytes[k] = 4.0 * r.m->nparams * r.w.NEW * gn[k].ours / (r.w.S * r.w.NEW); /* a decode step per new token */
    }
    printf("  %-4s params %.2fM\n", names[k], r.m->nparams / 1e6);
    torch_stop(&t);
    rein_free(&r);
  }
  loadavg("end");
  double gr = gemm_rate(), mr = memcpy_rate();
  printf("\ntfm_gemm on 2048x1024x1024: %.1f GFLOP/s; memcpy: %.1f GB/s\n", gr, mr);
  for (int k = 0; k < nn; k++)
    printf("  %-4s train %.1f GFLOP/s = %.0f%% of tfm_gemm's rate; generate reads weights at %.1f GB/s = %.0f%% of memcpy\n",
           names[k], flops[k] / 1e9, 100 * flops[k] / 1e9 / gr, bytes[k] / 1e9, 100 * bytes[k] / 1e9 / mr);
  printf("\n| config | train tok/s (rein) | train tok/s (torch) | ratio (range) | generate tok/s (rein) | "
         "generate tok/s (torch) | ratio (range) |\n");
  printf("|---|---|---|---|---|---|---|\n");
  for (int k = 0; k < nn; k++) {
    printf("| %s | %.0f |", names[k], tr[k].ours);
    if (tr[k].ratio > 0) printf(" %.0f | %.2fx (%.2f-%.2f) |", tr[k].theirs, tr[k].ratio, tr[k].lo, tr[k].hi);
    else printf(" - | - |");
    printf(" %.0f |", gn[k].ours);
    if (gn[k].ratio > 0) printf(" %.0f | %.2fx (%.2f-%.2f) |\n", gn[k].theirs, gn[k].ratio, gn[k].lo, gn[k].hi);
    else printf(" - | - |\n");
  }
  return 0;
}
