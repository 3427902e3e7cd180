/* bench_tfm.c — training and generation speed of the CPU transformer executor, against the
 * PyTorch eager implementation (bench/tfm_torch.py) on the same machine, in one run.
 *
 *   bench_tfm [--threads N] [--repeat R] [--torch bench/tfm_torch.py | --no-torch] [1m] [20m]
 *
 * Workloads (the same in tfm_torch.py):
 *   1m:  Llama, vocab 512, dim 128, 4 layers, 4 heads (2 kv), MLP 384, tied    (~0.85M params)
 *   20m: Llama, vocab 8192, dim 384, 8 layers, 6 heads (2 kv), MLP 1024, untied (~19M params)
 *   train: 16 sequences of 128 tokens, every position a target; one step = forward, backward
 *          from dlogp = -1/N and dentropy = 1e-3/N, AdamW.  tokens/s = 2048 / step time.
 *   generate: 16 prompts of 16 tokens, 112 new tokens each at temperature 1 with the KV cache.
 *          tokens/s = 1792 / time.
 * Times are the median of R repeats after one warm-up.
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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + 1e-9 * t.tv_nsec;
}

static int cmpd(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static const char *config_of(const char *name) {
  if (!strcmp(name, "1m"))
    return "{\"model_type\":\"llama\",\"vocab_size\":512,\"hidden_size\":128,\"num_hidden_layers\":4,"
           "\"num_attention_heads\":4,\"num_key_value_heads\":2,\"intermediate_size\":384,\"tie_word_embeddings\":true}";
  if (!strcmp(name, "20m"))
    return "{\"model_type\":\"llama\",\"vocab_size\":8192,\"hidden_size\":384,\"num_hidden_layers\":8,"
           "\"num_attention_heads\":6,\"num_key_value_heads\":2,\"intermediate_size\":1024,\"tie_word_embeddings\":false}";
  return NULL;
}

enum { S = 16, L = 128, P = 16, NEW = 112 };

/* The FLOPs of one training step of m on S sequences of L tokens, M = S*(L-1) target rows. */
static double train_flops(const TfmModel *m) {
  const TfmConfig *c = &m->cfg;
  double D = c->dim, qd = (double)c->n_heads * c->head_dim, kvd = (double)c->n_kv_heads * c->head_dim;
  double Pm = c->n_layers * (2 * D * qd + 2 * D * kvd + 3 * D * c->hidden);
  double N = (double)S * L, M = (double)S * (L - 1);
  double attn = 6.0 * S * (double)L * L * c->head_dim * c->n_heads * c->n_layers; /* fwd 2, bwd 4 (causal half) */
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

static double g_flops[2], g_bytes[2];

static void bench_one(const char *name, int repeat, double *train_tps, double *gen_tps, int k_out) {
  char err[512];
  TfmConfig cfg;
  if (tfm_config_parse(config_of(name), name, &cfg, err, sizeof err)) {
    fprintf(stderr, "%s\n", err);
    exit(1);
  }
  TfmModel *m = tfm_model_new(&cfg, err, sizeof err);
  tfm_model_init(m, 1);
  int N = S * L, off[S + 1];
  int32_t *tok = malloc(N * sizeof(int32_t)), *tgt = malloc(N * sizeof(int32_t));
  tfm_f *lp = malloc(N * sizeof(tfm_f)), *en = malloc(N * sizeof(tfm_f)), *gl = malloc(N * sizeof(tfm_f)),
        *ge = malloc(N * sizeof(tfm_f));
  uint64_t r = 88172645463325252ull;
  for (int i = 0; i < N; i++) {
    r ^= r << 13, r ^= r >> 7, r ^= r << 17;
    tok[i] = (int32_t)(r % (uint64_t)cfg.vocab);
  }
  for (int s = 0; s <= S; s++) off[s] = s * L;
  for (int i = 0; i < N; i++) {
    tgt[i] = (i + 1) % L ? tok[i + 1] : -1;
    gl[i] = tgt[i] >= 0 ? -1.0f / N : 0;
    ge[i] = tgt[i] >= 0 ? 1e-3f / N : 0;
  }
  TfmBatch b = {S, off, tok, tgt};
  TfmAdamW o = tfm_adamw_defaults();
  double *t = malloc((repeat + 1) * sizeof(double));
  for (int k = 0; k <= repeat; k++) {
    double t0 = now();
    TfmActs *a;
    tfm_zero_grad(m);
    tfm_forward(m, &b, lp, en, &a, err, sizeof err);
    tfm_backward(m, a, gl, ge);
    tfm_adamw_step(m, &o);
    t[k] = now() - t0;
  }
  qsort(t + 1, repeat, sizeof(double), cmpd);
  *train_tps = N / t[1 + repeat / 2];
  g_flops[k_out] = train_flops(m) / t[1 + repeat / 2];

  int poff[S + 1];
  for (int s = 0; s <= S; s++) poff[s] = s * P;
  TfmSampling sp = {1.0, 1.0, 0, NEW, 0, NULL, 7};
  for (int k = 0; k <= repeat; k++) {
    TfmGenOut go;
    double t0 = now();
    if (tfm_generate(m, S, poff, tok, &sp, &go, err, sizeof err)) {
      fprintf(stderr, "%s\n", err);
      exit(1);
    }
    t[k] = now() - t0;
    tfm_genout_free(&go);
  }
  qsort(t + 1, repeat, sizeof(double), cmpd);
  *gen_tps = S * NEW / t[1 + repeat / 2];
  g_bytes[k_out] = 4.0 * m->nparams * NEW / t[1 + repeat / 2]; /* one decode step per new token */
  printf("  %-4s params %.2fM\n", name, m->nparams / 1e6);
  free(t);
  free(tok);
  free(tgt);
  free(lp);
  free(en);
  free(gl);
  free(ge);
  tfm_model_free(m);
}

/* Run the PyTorch script for one config; it prints {"train_tok_s": x, "gen_tok_s": y}. */
static int run_torch(const char *script, const char *name, int threads, int repeat, double *tr, double *gn) {
  char cmd[4096], line[4096];
  snprintf(cmd, sizeof cmd, "/usr/bin/python3 %s --config %s --threads %d --repeat %d", script, name, threads, repeat);
  FILE *p = popen(cmd, "r");
  if (!p) return -1;
  int ok = 0;
  while (fgets(line, sizeof line, p)) {
    char *a = strstr(line, "\"train_tok_s\":"), *b = strstr(line, "\"gen_tok_s\":");
    if (a && b) {
      *tr = atof(a + 14);
      *gn = atof(b + 12);
      ok = 1;
    }
  }
  return pclose(p) == 0 && ok ? 0 : -1;
}

int main(int argc, char **argv) {
  int threads = 2, repeat = 3;
  const char *torch = "bench/tfm_torch.py";
  const char *names[2];
  int nn = 0;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--repeat") && i + 1 < argc) repeat = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--torch") && i + 1 < argc) torch = argv[++i];
    else if (!strcmp(argv[i], "--no-torch")) torch = NULL;
    else if (config_of(argv[i]) && nn < 2) names[nn++] = argv[i];
    else {
      fprintf(stderr, "usage: bench_tfm [--threads N] [--repeat R] [--torch SCRIPT | --no-torch] [1m] [20m]\n");
      return 2;
    }
  }
  if (!nn) names[nn++] = "1m", names[nn++] = "20m";
  if (repeat < 1) repeat = 1;
  omp_set_num_threads(threads);
  printf("threads %d, repeat %d (median)\n", threads, repeat);
  double tr[2], gn[2], ttr[2] = {0}, tgn[2] = {0};
  int have_torch[2] = {0};
  for (int k = 0; k < nn; k++) {
    bench_one(names[k], repeat, &tr[k], &gn[k], k);
    if (torch) {
      have_torch[k] = run_torch(torch, names[k], threads, repeat, &ttr[k], &tgn[k]) == 0;
      if (!have_torch[k]) fprintf(stderr, "bench_tfm: %s failed for %s\n", torch, names[k]);
    }
  }
  double gr = gemm_rate(), mr = memcpy_rate();
  printf("\ntfm_gemm on 2048x1024x1024: %.1f GFLOP/s; memcpy: %.1f GB/s\n", gr, mr);
  for (int k = 0; k < nn; k++)
    printf("  %-4s train %.1f GFLOP/s = %.0f%% of tfm_gemm's rate; generate reads weights at %.1f GB/s = %.0f%% of memcpy\n",
           names[k], g_flops[k] / 1e9, 100 * g_flops[k] / 1e9 / gr, g_bytes[k] / 1e9, 100 * g_bytes[k] / 1e9 / mr);
  printf("\n| config | train tok/s (rein) | train tok/s (torch) | ratio | generate tok/s (rein) | generate tok/s (torch) | ratio |\n");
  printf("|---|---|---|---|---|---|---|\n");
  for (int k = 0; k < nn; k++) {
    if (have_torch[k])
      printf("| %s | %.0f | %.0f | %.2fx | %.0f | %.0f | %.2fx |\n", names[k], tr[k], ttr[k], tr[k] / ttr[k], gn[k], tgn[k], gn[k] / tgn[k]);
    else
      printf("| %s | %.0f | - | - | %.0f | - | - |\n", names[k], tr[k], gn[k]);
  }
  return 0;
}
