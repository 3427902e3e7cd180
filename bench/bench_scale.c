/* bench_scale.c — the executor on a real-sized model (docs/performance.md, "A 0.5B model"): the
 * time of loading it, of generating, and of one training step, with the bytes of each of the
 * model's allocations, so the peak RSS that /usr/bin/time -v reports can be accounted for.
 *
 *   bench_scale --model DIR (generate | train) [--threads N] [--seqs S] [--len L] [--new K]
 *               [--steps T]
 *
 *   generate: one prompt of L tokens (default 32), K new tokens (default 32) at temperature 1 with
 *             the KV cache; tokens/s = K / time (prefill included).
 *   train:    S sequences (default 2) of L tokens (default 128), every position after the first a
 *             target; one step = forward, backward from dlogp = -1/N, dentropy = 1e-3/N, AdamW
 *             with clipping; tokens/s = S*L / step time.  --steps T (default 1) repeats the step
 *             on the same batch: the first one also pays the first touch of the gradients and
 *             the AdamW state (page faults), the later ones show the steady state.
 * Tokens are drawn from a fixed generator over the whole vocabulary.  The model's weights are
 * whatever DIR holds (random ones from `rein model init` for the measurement).
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

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static int32_t token(int V) {
  rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
  return (int32_t)(rng % (uint64_t)V);
}

static double gib(size_t elems) { return (double)elems * sizeof(tfm_f) / (1u << 30); }

int main(int argc, char **argv) {
  const char *model = NULL, *mode = NULL;
  int threads = 2, S = 2, L = -1, K = 32, steps = 1;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--model") && i + 1 < argc) model = argv[++i];
    else if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--seqs") && i + 1 < argc) S = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--len") && i + 1 < argc) L = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--new") && i + 1 < argc) K = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--steps") && i + 1 < argc) steps = atoi(argv[++i]);
    else if (!strcmp(argv[i], "generate") || !strcmp(argv[i], "train")) mode = argv[i];
    else mode = NULL, i = argc;
  }
  if (!model || !mode || threads < 1 || S < 1 || K < 1 || steps < 1) {
    fprintf(stderr, "usage: bench_scale --model DIR (generate | train) [--threads N] [--seqs S] [--len L] [--new K] "
                    "[--steps T]\n");
    return 2;
  }
  int train = !strcmp(mode, "train");
  if (L < 0) L = train ? 128 : 32;
  if (L < 2) return fprintf(stderr, "bench_scale: --len must be at least 2\n"), 2;
  omp_set_num_threads(threads);
  char err[1024];
  double t0 = now();
  TfmModel *m = tfm_model_load(model, err, sizeof err);
  if (!m) return fprintf(stderr, "bench_scale: %s\n", err), 1;
  double t_load = now() - t0;
  int V = m->cfg.vocab;
  printf("model %s: %zu parameter slots (%.2f GiB of %s), loaded in %.1f s, %d threads\n", model, m->nparams,
         gib(m->nparams), sizeof(tfm_f) == 4 ? "float32" : "float64", t_load, threads);
  if (!train) {
    int32_t *prompt = malloc((size_t)L * sizeof *prompt);
    for (int i = 0; i < L; i++) prompt[i] = token(V);
    int off[2] = {0, L};
    TfmSampling s = {.temperature = 1, .top_p = 1, .max_new = K, .seed = 1};
    TfmGenOut g;
    t0 = now();
    if (tfm_generate(m, 1, off, prompt, &s, &g, err, sizeof err)) return fprintf(stderr, "bench_scale: %s\n", err), 1;
    double t = now() - t0;
    printf("generate: prompt %d, %d new tokens in %.2f s = %.2f tokens/s\n", L, g.len[0], t, g.len[0] / t);
    tfm_genout_free(&g);
    free(prompt);
  } else {
    int N = S * L;
    int *off = malloc((size_t)(S + 1) * sizeof *off);
    int32_t *tok = malloc((size_t)N * sizeof *tok), *tgt = malloc((size_t)N * sizeof *tgt);
    tfm_f *lp = malloc((size_t)N * sizeof *lp), *en = malloc((size_t)N * sizeof *en);
    tfm_f *dlp = malloc((size_t)N * sizeof *dlp), *den = malloc((size_t)N * sizeof *den);
    for (int i = 0; i < N; i++) tok[i] = token(V);
    for (int q = 0; q <= S; q++) off[q] = q * L;
    for (int i = 0; i < N; i++) {
      tgt[i] = (i + 1) % L ? tok[i + 1] : -1;
      dlp[i] = tgt[i] >= 0 ? (tfm_f)(-1.0 / N) : 0;
      den[i] = tgt[i] >= 0 ? (tfm_f)(1e-3 / N) : 0;
    }
    TfmBatch b = {S, off, tok, tgt, 1.0};
    TfmAdamW o = tfm_adamw_defaults();
    TfmActs *a;
    for (int step = 1; step <= steps; step++) {
      t0 = now();
      tfm_zero_grad(m);
      if (tfm_forward(m, &b, lp, en, &a, err, sizeof err)) return fprintf(stderr, "bench_scale: %s\n", err), 1;
      double t1 = now();
      tfm_backward(m, a, dlp, den);
      double t2 = now();
      double norm = tfm_adamw_step(m, &o);
      double t3 = now();
      double mlp = 0;
      for (int i = 0; i < N; i++) mlp += tgt[i] >= 0 ? lp[i] : 0;
      printf("train step %d: %d x %d tokens: forward %.2f s, backward %.2f s, AdamW %.2f s; %.2f s = %.1f tokens/s "
             "(mean logp %.3f, grad norm %.3g)\n",
             step, S, L, t1 - t0, t2 - t1, t3 - t2, t3 - t0, N / (t3 - t0), mlp / (N - S), norm);
    }
    printf("allocations: params %.2f GiB, grads %.2f GiB, AdamW m+v %.2f GiB, activation workspace %.2f GiB\n",
           gib(m->nparams), gib(m->nparams), gib(2 * m->nparams), gib(m->ws_cap));
    free(off), free(tok), free(tgt), free(lp), free(en), free(dlp), free(den);
  }
  tfm_model_free(m);
  return 0;
}
