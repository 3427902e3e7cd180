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
 */
#include "rein/tfm.h"

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

static void bench_one(const char *name, int repeat, double *train_tps, double *gen_tps) {
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
    bench_one(names[k], repeat, &tr[k], &gn[k]);
    if (torch) {
      have_torch[k] = run_torch(torch, names[k], threads, repeat, &ttr[k], &tgn[k]) == 0;
      if (!have_torch[k]) fprintf(stderr, "bench_tfm: %s failed for %s\n", torch, names[k]);
    }
  }
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
