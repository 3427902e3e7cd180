/* test_tfm.c — tests of the transformer executor in C, built twice:
 *   test_tfm64 (library reintfm64, every value float64): finite-difference checks of the RMSNorm
 *     and rotary kernels and of every parameter tensor of five whole models (Llama untied with
 *     GQA, Llama tied with attention bias and llama3 rope scaling, Qwen2 with one kv head, Qwen3
 *     untied with GQA and head_dim != hidden/heads, Qwen3 tied with attention bias and one kv
 *     head),
 *     micro-batch accumulation, AdamW against a scalar reference, KV-cache generation against the
 *     full forward, safetensors round trip;
 *   both: the table-driven rotary kernel against the reference one, bit for bit;
 *   test_tfm32 (reintfm, float32): the matrix-product kernel against its naive reference, the
 *     same generation and micro-batch checks at float32 tolerance, and bit-identical results when
 *     a step or a generation is repeated.
 * Usage: test_tfmNN WORKDIR (scratch directory for the checkpoint files).
 */
#include "rein/tfm.h"
#include "../../runtime/tfm/tfm_internal.h"

#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef TFM_F64
#define TOL_GEN 1e-9
#define TOL_MICRO 1e-10
#else
#define TOL_GEN 2e-4
#define TOL_MICRO 2e-5
#endif

#include "check.h"

static uint64_t rng = 0x1234567;
static double urand(void) {
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return (rng >> 11) * 0x1p-53;
}
static double nrand(void) { return sqrt(-2 * log(urand() + 1e-300)) * cos(6.283185307179586 * urand()); }

static const char *CONFIGS[] = {
    "{\"model_type\":\"llama\",\"vocab_size\":23,\"hidden_size\":16,\"num_hidden_layers\":2,"
    "\"num_attention_heads\":4,\"num_key_value_heads\":2,\"intermediate_size\":24,\"rms_norm_eps\":1e-5,"
    "\"rope_theta\":100.0,\"eos_token_id\":2}",
    "{\"model_type\":\"llama\",\"vocab_size\":19,\"hidden_size\":12,\"num_hidden_layers\":2,"
    "\"num_attention_heads\":2,\"head_dim\":8,\"intermediate_size\":20,\"tie_word_embeddings\":true,"
    "\"attention_bias\":true,\"rope_theta\":500.0,\"rope_scaling\":{\"rope_type\":\"llama3\",\"factor\":4.0,"
    "\"low_freq_factor\":1.0,\"high_freq_factor\":4.0,\"original_max_position_embeddings\":16}}",
    ("{\"model_type\":\"qwen2\",\"vocab_size\":17,\"hidden_size\":16,\"num_hidden_layers\":1,"
     "\"num_attention_heads\":4,\"num_key_value_heads\":1,\"intermediate_size\":16,\"tie_word_embeddings\":true}"),
    /* Wide enough that a 129-token batch splits its products across threads. */
    ("{\"model_type\":\"qwen2\",\"vocab_size\":97,\"hidden_size\":64,\"num_hidden_layers\":2,"
     "\"num_attention_heads\":8,\"num_key_value_heads\":2,\"intermediate_size\":128}"),
    /* Qwen3: per-head q/k norm, head_dim 6 != 16/4, GQA, untied, no bias; a small eps so the
     * norm's division matters. */
    ("{\"model_type\":\"qwen3\",\"vocab_size\":21,\"hidden_size\":16,\"num_hidden_layers\":2,"
     "\"num_attention_heads\":4,\"num_key_value_heads\":2,\"head_dim\":6,\"intermediate_size\":20,"
     "\"rms_norm_eps\":1e-6,\"rope_theta\":1000.0,\"tie_word_embeddings\":false,\"eos_token_id\":3}"),
    /* Qwen3 tied, attention_bias (q, k, v and o), one kv head, head_dim 10 != 12/3. */
    ("{\"model_type\":\"qwen3\",\"vocab_size\":18,\"hidden_size\":12,\"num_hidden_layers\":2,"
     "\"num_attention_heads\":3,\"num_key_value_heads\":1,\"head_dim\":10,\"intermediate_size\":16,"
     "\"attention_bias\":true,\"tie_word_embeddings\":true}"),
};
/* The models the finite-difference, micro-batch and generation checks run on. */
static const int CHECKED[] = {0, 1, 2, 4, 5};
#define NCHECKED (int)(sizeof CHECKED / sizeof *CHECKED)

static TfmModel *make_model(int which) {
  char err[512];
  TfmConfig cfg;
  if (tfm_config_parse(CONFIGS[which], "test", &cfg, err, sizeof err)) {
    fprintf(stderr, "config %d: %s\n", which, err);
    exit(1);
  }
  TfmModel *m = tfm_model_new(&cfg, err, sizeof err);
  tfm_model_init(m, 7 + which);
  /* Make outputs far from uniform: larger matrices, norms away from 1, non-zero biases. */
  for (int t = 0; t < m->ntensors; t++) {
    TfmTensor *T = &m->tensors[t];
    for (size_t i = 0; i < T->n; i++)
      m->params[T->off + i] = T->ndim == 2 ? (tfm_f)(0.35 * nrand()) : (tfm_f)(T->name[strlen(T->name) - 1] == 's' ? 0.3 * nrand() : 1 + 0.3 * nrand());
  }
  return m;
}

/* A ragged batch: lengths 1, 5, 9 (targets from position 1; the middle sequence from 2). */
typedef struct {
  int S, N, off[8];
  int32_t tok[64], tgt[64];
  tfm_f glp[64], gen[64];
} Batch;

static void make_batch(const TfmModel *m, Batch *b) {
  int lens[] = {1, 5, 9}, first[] = {1, 2, 1};
  b->S = 3;
  b->off[0] = 0;
  for (int s = 0; s < 3; s++) b->off[s + 1] = b->off[s] + lens[s];
  b->N = b->off[3];
  for (int n = 0; n < b->N; n++) b->tok[n] = (int32_t)(urand() * m->cfg.vocab);
  for (int s = 0; s < 3; s++)
    for (int n = b->off[s]; n < b->off[s + 1]; n++) {
      int i = n - b->off[s];
      int has = i + 1 < lens[s] && i + 1 >= first[s];
      b->tgt[n] = has ? b->tok[n + 1] : -1;
      b->glp[n] = has ? (tfm_f)nrand() : 0;
      b->gen[n] = has ? (tfm_f)(0.5 * nrand()) : 0;
    }
}

/* The temperature of the batches below (fd_model also checks the gradient of logits / T). */
static double temp_ = 1.0;

/* loss = sum glp*logp + gen*entropy. */
__attribute__((unused)) static double loss_of(TfmModel *m, const Batch *b) {
  tfm_f lp[64], en[64];
  char err[256];
  TfmBatch tb = {b->S, b->off, b->tok, b->tgt, temp_};
  if (tfm_forward(m, &tb, lp, en, NULL, err, sizeof err)) {
    fprintf(stderr, "forward: %s\n", err);
    exit(1);
  }
  double L = 0;
  for (int n = 0; n < b->N; n++) L += b->glp[n] * lp[n] + b->gen[n] * en[n];
  return L;
}

static void grads_of(TfmModel *m, const Batch *b, int micro) {
  tfm_f lp[64], en[64];
  char err[256];
  tfm_zero_grad(m);
  for (int s0 = 0; s0 < b->S; s0 += micro) {
    int s1 = s0 + micro < b->S ? s0 + micro : b->S, base = b->off[s0], off[8];
    for (int s = s0; s <= s1; s++) off[s - s0] = b->off[s] - base;
    TfmBatch tb = {s1 - s0, off, b->tok + base, b->tgt + base, temp_};
    TfmActs *a;
    if (tfm_forward(m, &tb, lp + base, en + base, &a, err, sizeof err)) exit(1);
    tfm_backward(m, a, b->glp + base, b->gen + base);
  }
}

#ifdef TFM_F64
/* Every tensor: central differences at up to 12 elements (the first, the last, random ones). */
static void fd_model(int which) {
  TfmModel *m = make_model(which);
  Batch b;
  make_batch(m, &b);
  grads_of(m, &b, b.S);
  double worst = 0;
  int nontrivial = 0;
  const char *wname = "";
  for (int t = 0; t < m->ntensors; t++) {
    const TfmTensor *T = &m->tensors[t];
    for (int k = 0; k < 12; k++) {
      size_t i = k == 0 ? 0 : k == 1 ? T->n - 1 : (size_t)(urand() * T->n);
      tfm_f *p = &m->params[T->off + i], save = *p;
      double h = 1e-5;
      *p = save + h;
      double lp = loss_of(m, &b);
      *p = save - h;
      double lm = loss_of(m, &b);
      *p = save;
      double fd = (lp - lm) / (2 * h), an = m->grads[T->off + i];
      double err = fabs(fd - an) / (1e-6 + fabs(fd) + fabs(an));
      if (fabs(fd - an) < 1e-9) err = 0;
      nontrivial += fabs(an) > 1e-4;
      if (err > worst) {
        worst = err;
        wname = T->name;
      }
      CHECK(err < 1e-5, "model %d %s[%zu]: analytic %.10g, finite difference %.10g", which, T->name, i, an, fd);
    }
  }
  printf("fd model %d (temperature %g): %d tensors, %d of %d checked elements with |grad| > 1e-4, worst relative "
         "error %.2e (%s)\n", which, temp_, m->ntensors, nontrivial, 12 * m->ntensors, worst, wname);
  CHECK(nontrivial > 6 * m->ntensors, "model %d: too few non-zero gradients for the check to mean much", which);
  tfm_model_free(m);
}

/* RMSNorm backward against finite differences of sum(c * y). */
static void fd_rmsnorm(void) {
  enum { N = 3, D = 7 };
  double x[N * D], w[D], c[N * D], y[N * D], r[N], dx[N * D] = {0}, dw[D] = {0};
  for (int i = 0; i < N * D; i++) x[i] = nrand(), c[i] = nrand();
  for (int j = 0; j < D; j++) w[j] = 1 + 0.3 * nrand();
  tfm_rmsnorm(N, D, x, w, 1e-5, y, r);
  tfm_rmsnorm_bwd(N, D, x, w, r, c, dx, dw);
  double worst = 0;
  for (int which = 0; which < 2; which++)
    for (int i = 0; i < (which ? D : N * D); i++) {
      double *p = which ? &w[i] : &x[i], s = *p, L[2];
      for (int k = 0; k < 2; k++) {
        *p = s + (k ? -1e-6 : 1e-6);
        tfm_rmsnorm(N, D, x, w, 1e-5, y, r);
        L[k] = 0;
        for (int q = 0; q < N * D; q++) L[k] += c[q] * y[q];
      }
      *p = s;
      double fd = (L[0] - L[1]) / 2e-6, an = which ? dw[i] : dx[i];
      double e = fabs(fd - an) / (1e-6 + fabs(fd));
      worst = e > worst ? e : worst;
      CHECK(e < 1e-6, "rmsnorm d%s[%d]: %.10g vs %.10g", which ? "w" : "x", i, an, fd);
    }
  printf("fd rmsnorm: worst relative error %.2e\n", worst);
}

/* The rotary embedding is a rotation: its backward (dir -1) is its transpose. */
static void check_rope(void) {
  enum { N = 5, NH = 3, HD = 8 };
  double x[N * NH * HD], y[N * NH * HD], inv[HD / 2];
  int pos[N] = {0, 1, 2, 7, 30};
  for (int i = 0; i < HD / 2; i++) inv[i] = pow(100.0, -2.0 * i / HD);
  for (int i = 0; i < N * NH * HD; i++) x[i] = nrand(), y[i] = nrand();
  double rx[N * NH * HD], ry[N * NH * HD];
  memcpy(rx, x, sizeof x);
  memcpy(ry, y, sizeof y);
  tfm_rope(N, NH, HD, rx, pos, inv, 1);
  tfm_rope(N, NH, HD, ry, pos, inv, -1);
  double a = 0, b = 0, back = 0;
  for (int i = 0; i < N * NH * HD; i++) a += rx[i] * y[i], b += x[i] * ry[i];
  tfm_rope(N, NH, HD, rx, pos, inv, -1);
  for (int i = 0; i < N * NH * HD; i++) back = fmax(back, fabs(rx[i] - x[i]));
  CHECK(fabs(a - b) < 1e-12 && back < 1e-13, "rope: <Rx,y> %.15g vs <x,R^T y> %.15g, round trip %.2e", a, b, back);
  /* Position 0 is the identity. */
  memcpy(rx, x, sizeof x);
  tfm_rope(N, NH, HD, rx, pos, inv, 1);
  for (int i = 0; i < NH * HD; i++) CHECK(rx[i] == x[i], "rope at position 0 changed element %d", i);
}

/* AdamW against a scalar transcription of torch.optim.AdamW + clip_grad_norm_. */
static void check_adamw(void) {
  TfmModel *m = make_model(0);
  Batch b;
  make_batch(m, &b);
  size_t n = m->nparams;
  double *p = malloc(n * sizeof(double)), *mm = calloc(n, sizeof(double)), *vv = calloc(n, sizeof(double));
  for (size_t i = 0; i < n; i++) p[i] = m->params[i];
  TfmAdamW o = {.lr = 1e-2, .beta1 = 0.8, .beta2 = 0.95, .eps = 1e-6, .weight_decay = 0.1, .max_grad_norm = 0.5};
  for (int step = 1; step <= 3; step++) {
    grads_of(m, &b, b.S);
    double ss = 0;
    for (size_t i = 0; i < n; i++) ss += m->grads[i] * m->grads[i];
    double norm = sqrt(ss), sc = fmin(1, o.max_grad_norm / (norm + 1e-6));
    for (int t = 0; t < m->ntensors; t++) {
      const TfmTensor *T = &m->tensors[t];
      for (size_t i = T->off; i < T->off + T->n; i++) {
        double g = m->grads[i] * sc;
        if (T->decay) p[i] *= 1 - o.lr * o.weight_decay;
        mm[i] = o.beta1 * mm[i] + (1 - o.beta1) * g;
        vv[i] = o.beta2 * vv[i] + (1 - o.beta2) * g * g;
        double mh = mm[i] / (1 - pow(o.beta1, step)), vh = vv[i] / (1 - pow(o.beta2, step));
        p[i] -= o.lr * mh / (sqrt(vh) + o.eps);
      }
    }
    double got = tfm_adamw_step(m, &o);
    CHECK(fabs(got - norm) <= 1e-12 * norm, "adamw: grad norm %.15g vs %.15g", got, norm);
    CHECK(norm > o.max_grad_norm, "adamw test should clip (norm %g)", norm);
  }
  double worst = 0;
  for (size_t i = 0; i < n; i++) worst = fmax(worst, fabs(p[i] - m->params[i]));
  CHECK(worst < 1e-12, "adamw: parameters differ from the reference by %.3g after 3 steps", worst);
  printf("adamw: 3 steps, max difference from the reference %.2e\n", worst);
  free(p);
  free(mm);
  free(vv);
  tfm_model_free(m);
}
#else
/* Does tfm_gemm take gemm_rows for its shapes on this host (x86-64 with AVX-512)? */
static int gemm_rows_host(void) {
#if defined(__x86_64__)
  return __builtin_cpu_supports("avx512f");
#else
  return 0;
#endif
}

/* The matrix product against its naive reference, every transpose combination, with the sizes
 * that make it split across threads and the ones that do not. */
static void check_gemm(void) {
  /* The second row's sizes and (2..32, *, *) with tb go to gemm_rows on an AVX-512 host: edge tiles
   * in M and N, K below, at and past a multiple of 16, split and unsplit across the threads; 33
   * rows is the first too many. */
  int sizes[][3] = {{1, 1, 1}, {3, 70, 5}, {97, 33, 64}, {200, 129, 40}, {64, 512, 80}, {513, 17, 300},
                    {2, 3, 16}, {5, 37, 15}, {16, 1024, 384}, {17, 613, 33}, {32, 900, 100}, {33, 70, 20}};
  for (unsigned k = 0; k < sizeof sizes / sizeof *sizes; k++)
    for (int ta = 0; ta < 2; ta++)
      for (int tb = 0; tb < 2; tb++) {
        int M = sizes[k][0], N = sizes[k][1], K = sizes[k][2];
        tfm_f *A = malloc(sizeof(tfm_f) * M * K), *B = malloc(sizeof(tfm_f) * K * N),
              *C = malloc(sizeof(tfm_f) * M * N), *R = malloc(sizeof(tfm_f) * M * N);
        for (int i = 0; i < M * K; i++) A[i] = (tfm_f)nrand();
        for (int i = 0; i < K * N; i++) B[i] = (tfm_f)nrand();
        for (int i = 0; i < M * N; i++) C[i] = R[i] = (tfm_f)nrand();
        tfm_gemm(ta, tb, M, N, K, A, ta ? M : K, B, tb ? K : N, 0.5f, C, N);
        tfm_gemm_ref(ta, tb, M, N, K, A, ta ? M : K, B, tb ? K : N, 0.5f, R, N);
        double worst = 0;
        for (int i = 0; i < M * N; i++) worst = fmax(worst, fabs(C[i] - R[i]) / (1 + fabs(R[i])));
        CHECK(worst < 1e-5 * sqrt(K), "gemm %dx%dx%d ta=%d tb=%d: relative error %.3g", M, N, K, ta, tb, worst);
#ifndef TFM_F64
        /* gemm_rows: the same bits on one thread as on all of them (another split of the columns;
         * OpenBLAS's products promise this only for the same thread count). */
        if (!ta && tb && M >= 2 && M <= TFM_GEMM_ROWS_MAX && gemm_rows_host()) {
          tfm_gemm(ta, tb, M, N, K, A, ta ? M : K, B, tb ? K : N, 0, C, N);
          memcpy(R, C, sizeof(tfm_f) * M * N);
          int nt = omp_get_max_threads();
          omp_set_num_threads(1);
          tfm_gemm(ta, tb, M, N, K, A, ta ? M : K, B, tb ? K : N, 0, C, N);
          omp_set_num_threads(nt);
          CHECK(!memcmp(C, R, sizeof(tfm_f) * M * N), "gemm %dx%dx%d ta=%d tb=%d: one thread and %d differ", M, N,
                K, ta, tb, nt);
        }
#endif
        free(A);
        free(B);
        free(C);
        free(R);
      }
}

/* The decode step's attention row against its plain reference: key counts across the 16-key
 * blocks, head widths below, at and past multiples of 16 and of 64. */
static void check_attend_row(void) {
  int Ls[] = {1, 15, 16, 17, 40, 129}, hds[] = {8, 16, 30, 64, 80, 128};
  for (unsigned a = 0; a < sizeof Ls / sizeof *Ls; a++)
    for (unsigned h = 0; h < sizeof hds / sizeof *hds; h++) {
      int L = Ls[a], hd = hds[h], stride = 2 * hd + 3;
      tfm_f *q = malloc(sizeof(tfm_f) * hd), *K = malloc(sizeof(tfm_f) * L * stride),
            *V = malloc(sizeof(tfm_f) * L * stride), o[128], r[128];
      double *sc = malloc(sizeof(double) * L);
      for (int i = 0; i < hd; i++) q[i] = (tfm_f)nrand();
      for (int i = 0; i < L * stride; i++) K[i] = (tfm_f)nrand(), V[i] = (tfm_f)nrand();
      tfm_attend_row(L, hd, 1 / sqrt(hd), q, K, V, stride, sc, o);
      tfm_attend_row_ref(L, hd, 1 / sqrt(hd), q, K, V, stride, sc, r);
      double worst = 0;
      for (int d = 0; d < hd; d++) worst = fmax(worst, fabs(o[d] - r[d]) / (1 + fabs(r[d])));
      CHECK(worst < 1e-5, "attend_row L=%d hd=%d: relative error %.3g", L, hd, worst);
      free(q);
      free(K);
      free(V);
      free(sc);
    }
}

/* The flush mode (tfm_fp_begin): subnormals are zero inside it, on every thread of the team,
 * IEEE again after it; the executor's calls run in it and give each thread its own mode back. */
#if defined(__x86_64__)
#include <xmmintrin.h>
static unsigned csr_of[64];
static void read_modes(void) {
#pragma omp parallel
  csr_of[omp_get_thread_num() & 63] = _mm_getcsr() & 0xffc0u;   /* the mode, not the flags */
}
static void check_flush(void) {
  unsigned before[64];
  read_modes();
  memcpy(before, csr_of, sizeof before);
  /* A product with a subnormal operand, split across the threads (16 columns each). */
  enum { M = 4, N = 64 * 16, K = 8 };
  static tfm_f A[M * K], B[K * N], C[M * N];
  for (int i = 0; i < M * K; i++) A[i] = 0x1p-130f;   /* subnormal */
  for (int i = 0; i < K * N; i++) B[i] = 1;
  int nonzero = 0;
  tfm_gemm(0, 0, M, N, K, A, K, B, N, 0, C, N);
  for (int i = 0; i < M * N; i++) nonzero += C[i] != 0;
  CHECK(nonzero == M * N, "IEEE mode: %d of %d products of subnormals are non-zero", nonzero, M * N);
  tfm_fp_begin();
  tfm_fp_begin();   /* nested */
  tfm_fp_end();
  nonzero = 0;
  tfm_gemm(0, 0, M, N, K, A, K, B, N, 0, C, N);
  for (int i = 0; i < M * N; i++) nonzero += C[i] != 0;
  CHECK(nonzero == 0, "flush mode: %d of %d products of subnormals are non-zero", nonzero, M * N);
  tfm_fp_end();
  read_modes();
  CHECK(!memcmp(before, csr_of, sizeof before), "tfm_fp_end did not restore every thread's mode");
  /* A backward from subnormal dlogp: every gradient is exactly zero (in IEEE arithmetic the head's
   * dz = dlogp (onehot - p) and dW = dz^T xf would be subnormal, not zero). */
  TfmModel *m = make_model(0);
  Batch b;
  make_batch(m, &b);
  for (int n = 0; n < b.N; n++) {
    b.glp[n] = b.tgt[n] >= 0 ? 0x1p-128f : 0;
    b.gen[n] = 0;
  }
  grads_of(m, &b, b.S);
  size_t nz = 0;
  for (size_t i = 0; i < m->nparams; i++) nz += m->grads[i] != 0;
  CHECK(nz == 0, "backward from subnormal dlogp: %zu of %zu gradients are non-zero", nz, m->nparams);
  read_modes();
  CHECK(!memcmp(before, csr_of, sizeof before), "forward/backward changed a thread's floating-point mode");
  int off[2] = {0, 3};
  int32_t prompt[3] = {1, 2, 3};
  TfmSampling s = {1.0, 1, 0, 4, 0, NULL, 5, 0};
  TfmGenOut o;
  char err[256];
  CHECK(!tfm_generate(m, 1, off, prompt, &s, &o, err, sizeof err), "generate: %s", err);
  tfm_genout_free(&o);
  read_modes();
  CHECK(!memcmp(before, csr_of, sizeof before), "generate changed a thread's floating-point mode");
  tfm_model_free(m);
}
#endif

/* Repeating a step or a generation gives the same bits. */
static void check_determinism(void) {
  TfmModel *m = make_model(0);
  Batch b;
  make_batch(m, &b);
  grads_of(m, &b, b.S);
  tfm_f *g1 = malloc(m->nparams * sizeof(tfm_f));
  memcpy(g1, m->grads, m->nparams * sizeof(tfm_f));
  grads_of(m, &b, b.S);
  CHECK(!memcmp(g1, m->grads, m->nparams * sizeof(tfm_f)), "gradients differ between two identical steps");
  free(g1);
  tfm_model_free(m);
  /* Many forwards of a long sequence: the products are split across threads, each block a
   * concurrent BLAS call (a BLAS build that is not thread-safe fails this now and then). */
  m = make_model(3);
  enum { T = 129 };
  int32_t tok[T], tgt[T];
  int off[2] = {0, T};
  tfm_f lp0[T], lp[T], en[T];
  char err[256];
  for (int i = 0; i < T; i++) tok[i] = (int32_t)((7 * i) % m->cfg.vocab);
  for (int i = 0; i < T; i++) tgt[i] = i + 1 < T ? tok[i + 1] : -1;
  TfmBatch tb = {1, off, tok, tgt, 1.0};
  tfm_forward(m, &tb, lp0, en, NULL, err, sizeof err);
  int differ = 0;
  for (int r = 0; r < 200; r++) {
    tfm_forward(m, &tb, lp, en, NULL, err, sizeof err);
    differ += memcmp(lp, lp0, sizeof lp) != 0;
  }
  CHECK(!differ, "%d of 200 repeated forwards differ from the first", differ);
  tfm_model_free(m);
}
#endif

/* The table-driven rotary kernel (tfm_rope_tab, used by training and generation) gives the
 * reference tfm_rope's bits, both directions, at every position of its table; an odd half width
 * and a scaled frequency set cover the loops' edges. */
static void check_rope_tab(void) {
  enum { N = 7, NH = 3, HD = 10, P = 40 };
  tfm_f x[N * NH * HD], a[N * NH * HD], b[N * NH * HD];
  double inv[HD / 2];
  int pos[N] = {0, 1, 2, 7, 30, 39, 5};
  for (int i = 0; i < HD / 2; i++) inv[i] = pow(10000.0, -2.0 * i / HD) / (i == 3 ? 8.0 : 1.0);
  for (int i = 0; i < N * NH * HD; i++) x[i] = (tfm_f)nrand();
  double *tab = tfm_rope_table(P, HD / 2, inv);
  CHECK(tab != NULL, "rope table: out of memory");
  for (int dir = -1; dir <= 1 && tab; dir += 2) {
    memcpy(a, x, sizeof x);
    memcpy(b, x, sizeof x);
    tfm_rope(N, NH, HD, a, pos, inv, dir);
    tfm_rope_tab(N, NH, HD, b, pos, tab, dir);
    int same = 1;
    for (int i = 0; i < N * NH * HD; i++) same &= memcmp(&a[i], &b[i], sizeof a[i]) == 0;
    CHECK(same, "rope: the table kernel differs from the reference in direction %d", dir);
  }
  free(tab);
}

/* Micro-batches of 1 and 2 sequences accumulate to the whole batch's gradient. */
static void check_micro(int which) {
  TfmModel *m = make_model(which);
  Batch b;
  make_batch(m, &b);
  grads_of(m, &b, b.S);
  tfm_f *g = malloc(m->nparams * sizeof(tfm_f));
  memcpy(g, m->grads, m->nparams * sizeof(tfm_f));
  for (int micro = 1; micro <= 2; micro++) {
    grads_of(m, &b, micro);
    double worst = 0, scale = 0;
    for (size_t i = 0; i < m->nparams; i++) {
      worst = fmax(worst, fabs(g[i] - m->grads[i]));
      scale = fmax(scale, fabs(g[i]));
    }
    CHECK(worst <= TOL_MICRO * (1 + scale), "model %d micro %d: gradients differ by %.3g (scale %.3g)", which, micro, worst, scale);
  }
  free(g);
  tfm_model_free(m);
}

/* Generation with the KV cache: its logp equals the full forward's over the generated sequence;
 * greedy is the argmax; the same seed gives the same tokens; a sequence's tokens do not depend
 * on the others in the call; stop tokens end a sequence. */
static void check_generate(int which) {
  TfmModel *m = make_model(which);
  char err[256];
  int V = m->cfg.vocab;
  int off[4] = {0, 3, 4, 9};
  int32_t prompt[9];
  for (int i = 0; i < 9; i++) prompt[i] = (int32_t)(urand() * V);
  double temps[] = {1.0, 0.7, 0.0};
  for (int k = 0; k < 3; k++) {
    TfmSampling s = {temps[k], k == 1 ? 0.9 : 1, k == 1 ? 5 : 0, 7, 0, NULL, 42 + k, 0};
    TfmGenOut o, o2;
    CHECK(!tfm_generate(m, 3, off, prompt, &s, &o, err, sizeof err), "generate: %s", err);
    CHECK(!tfm_generate(m, 3, off, prompt, &s, &o2, err, sizeof err), "generate: %s", err);
    CHECK(!memcmp(o.tokens, o2.tokens, 3 * 7 * sizeof(int32_t)) && !memcmp(o.logp, o2.logp, 3 * 7 * sizeof(tfm_f)),
          "model %d T=%g: the same seed gave different output", which, temps[k]);
    tfm_genout_free(&o2);
    /* Sequence 2's tokens do not depend on the other sequences of the call. */
    int32_t other[9];
    memcpy(other, prompt, sizeof other);
    for (int i = 0; i < 4; i++) other[i] = (int32_t)((other[i] + 1 + i) % V);
    CHECK(!tfm_generate(m, 3, off, other, &s, &o2, err, sizeof err), "generate: %s", err);
    int same = o2.len[2] == o.len[2];
    for (int t = 0; same && t < o.len[2]; t++) same = o2.tokens[2 * 7 + t] == o.tokens[2 * 7 + t];
    CHECK(same, "model %d T=%g: sequence 2 changed when the other prompts changed", which, temps[k]);
    tfm_genout_free(&o2);
    /* Full forward over prompt + generated tokens. */
    for (int q = 0; q < 3; q++) {
      int L = off[q + 1] - off[q], T = L + o.len[q];
      int32_t tok[32], tgt[32];
      tfm_f lp[32], en[32];
      for (int i = 0; i < L; i++) tok[i] = prompt[off[q] + i];
      for (int i = 0; i < o.len[q]; i++) tok[L + i] = o.tokens[q * 7 + i];
      for (int i = 0; i < T; i++) tgt[i] = i + 1 < T && i + 1 >= L ? tok[i + 1] : -1;
      int boff[2] = {0, T};
      TfmBatch tb = {1, boff, tok, tgt, 1.0};
      tfm_forward(m, &tb, lp, en, NULL, err, sizeof err);
      for (int i = 0; i < o.len[q]; i++) {
        double want = lp[L - 1 + i], got = o.logp[q * 7 + i];
        CHECK(fabs(want - got) <= TOL_GEN * (1 + fabs(want)), "model %d T=%g seq %d token %d: generate logp %.9g, forward %.9g",
              which, temps[k], q, i, got, want);
        if (temps[k] == 0) CHECK(o.sample_logp[q * 7 + i] == 0, "greedy sample_logp must be 0");
        if (temps[k] == 1.0) CHECK(o.sample_logp[q * 7 + i] == o.logp[q * 7 + i] || fabs(o.sample_logp[q * 7 + i] - o.logp[q * 7 + i]) < 1e-6,
                                   "T=1 without filters: sample_logp %g != logp %g", o.sample_logp[q * 7 + i], o.logp[q * 7 + i]);
        if (k == 1) CHECK(o.sample_logp[q * 7 + i] >= o.logp[q * 7 + i] - 5, "filtered log q implausibly small");
      }
      CHECK(o.len[q] == 7, "without stop tokens every sequence runs to max_new");
    }
    tfm_genout_free(&o);
  }
  /* A stop token: take the token greedy decoding emits first for prompt 0, and stop on it. */
  TfmSampling g = {0, 1, 0, 7, 0, NULL, 1, 0};
  TfmGenOut o;
  tfm_generate(m, 1, off, prompt, &g, &o, err, sizeof err);
  int32_t stop = o.tokens[2];
  int first = 0;
  while (o.tokens[first] != stop) first++;
  tfm_genout_free(&o);
  g.nstop = 1;
  g.stop = &stop;
  tfm_generate(m, 1, off, prompt, &g, &o, err, sizeof err);
  CHECK(o.len[0] == first + 1 && o.stopped[0] && o.tokens[first] == stop, "stop token: len %d (want %d), stopped %d",
        o.len[0], first + 1, o.stopped[0]);
  tfm_genout_free(&o);
  tfm_model_free(m);
}

/* Save and load give the same parameters; bf16 and f16 decode known values. */
static void check_roundtrip(const char *dir) {
  TfmModel *m = make_model(1);
  char err[512];
  CHECK(!tfm_model_save(m, dir, NULL, TFM_DT_SAME, err, sizeof err), "save: %s", err);
  TfmModel *m2 = tfm_model_load(dir, err, sizeof err);
  CHECK(m2 != NULL, "load: %s", err);
  if (m2) {
    double worst = 0;
    for (size_t i = 0; i < m->nparams; i++) worst = fmax(worst, fabs((double)(float)m->params[i] - m2->params[i]));
    CHECK(worst == 0, "round trip changed parameters by %g", worst);
    CHECK(m2->cfg.tie_embeddings && m2->cfg.rope_kind == TFM_ROPE_LLAMA3 && m2->cfg.o_bias, "round trip lost config fields");
    tfm_model_free(m2);
  }
  tfm_model_free(m);
}

/* Resume: 2 steps, save weights and AdamW state, then a third step in the original and in a
 * model loaded from the files give the same parameters (bit-identical in float32). */
static void check_resume(const char *dir) {
  TfmModel *m = make_model(0);
  Batch b;
  make_batch(m, &b);
  TfmAdamW o = {.lr = 1e-2, .beta1 = 0.9, .beta2 = 0.99, .eps = 1e-8, .weight_decay = 0.1, .max_grad_norm = 1.0};
  for (int k = 0; k < 2; k++) {
    grads_of(m, &b, b.S);
    tfm_adamw_step(m, &o);
  }
  char err[512], p[4096];
  snprintf(p, sizeof p, "%s/optimizer.safetensors", dir);
  CHECK(!tfm_model_save(m, dir, NULL, TFM_DT_SAME, err, sizeof err), "save: %s", err);
  CHECK(!tfm_opt_save(m, p, 0, err, sizeof err), "opt save: %s", err);
  TfmModel *r = tfm_model_load(dir, err, sizeof err);
  CHECK(r != NULL, "load: %s", err);
  if (!r) return;
  CHECK(!tfm_opt_load(r, p, err, sizeof err), "opt load: %s", err);
  CHECK(r->step == 2, "resumed step %ld, want 2", r->step);
  grads_of(m, &b, b.S);
  tfm_adamw_step(m, &o);
  grads_of(r, &b, b.S);
  tfm_adamw_step(r, &o);
  double worst = 0;
  for (size_t i = 0; i < m->nparams; i++) worst = fmax(worst, fabs((double)m->params[i] - r->params[i]));
#ifdef TFM_F64
  CHECK(worst < 1e-5, "resumed step differs by %.3g", worst); /* the files are float32 */
#else
  CHECK(worst == 0, "resumed step differs by %.3g (must be bit-identical)", worst);
#endif
  /* The state of another model is rejected, naming the tensor. */
  TfmModel *other = make_model(2);
  CHECK(tfm_opt_load(other, p, err, sizeof err) != 0 && strstr(err, "tensor '") && strstr(err, p),
        "loading another model's optimizer state must fail naming the file and tensor: %s", err);
  tfm_model_free(other);
  tfm_model_free(r);
  tfm_model_free(m);
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: test_tfm WORKDIR\n");
    return 2;
  }
#ifdef TFM_F64
  fd_rmsnorm();
  check_rope();
  for (int k = 0; k < NCHECKED; k++) fd_model(CHECKED[k]);
  temp_ = 0.6;   /* the head's logits / T and its backward (tfm_head.c) */
  fd_model(CHECKED[0]);
  temp_ = 1.0;
  check_adamw();
#else
  check_gemm();
  check_attend_row();
#if defined(__x86_64__)
  check_flush();
#endif
  check_determinism();
#endif
  check_rope_tab();
  for (int k = 0; k < NCHECKED; k++) check_micro(CHECKED[k]);
  for (int k = 0; k < NCHECKED; k++) check_generate(CHECKED[k]);
  check_roundtrip(argv[1]);
  check_resume(argv[1]);
  if (failures) {
    fprintf(stderr, "%d failure(s)\n", failures);
    return 1;
  }
  printf("ok\n");
  return 0;
}
