/* gpu_check.c — the GPU executor against the CPU executor, and the GPU benchmark, with no LLVM.
 *
 *   gpu_check [--batches N] [--seed S] ARTIFACT.so...
 *   gpu_check --bench [--tokens N]... [--repeat R] ARTIFACT.so...
 *   gpu_check --probe            exit 0 when the CUDA driver finds a device, else 77
 *
 * It links the runtime alone (rein/runtime.h), so that it runs on a device machine that has the
 * CUDA driver but neither LLVM nor the compiler: the artifacts are made beforehand by
 * `rein compile` (tests/gpu/prepare.sh), and each carries its CPU code and its PTX.
 *
 * Check mode: for every artifact, on N seeded random ragged batches (empty sequences, one-sequence
 * groups, every built-in and user input), the GPU executor's loss, metrics and both gradients must
 * agree with the CPU executor's (|a - b| <= 1e-5 |b| + 1e-9, non-finite values exactly), with one
 * micro-batch and with micro-batches of one group, and a second GPU run of the same batch must be
 * bit-identical to the first (run-to-run determinism).  The CPU executor is itself held to the
 * reference interpreter by the ctests backend_suite and backend_random.
 *
 * Bench mode: for every artifact and N (rounded down to whole groups of 16 sequences of 256
 * tokens), the best of R GPU steps (rt_run, one micro-batch, host batch in and results out, as
 * the executor runs a step), and the device-to-device copy bandwidth of the same number of bytes
 * (cuMemcpyDtoD, counting read and write).  Traffic of a step: every built-in input the artifact
 * may read plus both gradients, 4 bytes an element.  Prints one JSON line per measurement.
 *
 * Exit status: 0 all agree, 1 a mismatch or failure, 77 no GPU (no libcuda.so.1, cuInit fails,
 * no device), 2 usage.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "rein/runtime.h"

enum { GROUP = 16, SEQLEN = 256, SKIP = 77 };

static int failures, checks;

static uint64_t rng;
static double urand(void) {
  rng = rng * 6364136223846793005ull + 1442695040888963407ull;
  return (double)(rng >> 11) * (1.0 / 9007199254740992.0);
}
static float uniform(double lo, double hi) { return (float)(lo + (hi - lo) * urand()); }

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* A batch and the arrays it points at. */
typedef struct {
  rt_batch b;
  int32_t *grp_seq, *seq_tok;
  float *in[REIN_NUM_INPUTS];
  float **uin;
  int nuin;
} Data;

/* Fills D: ragged (NG groups of random sizes) when BENCH_TOKS is 0, else whole groups of GROUP
 * sequences of SEQLEN tokens. */
static void make_data(Data *d, const rein_objective *desc, uint64_t seed, long bench_toks) {
  memset(d, 0, sizeof *d);
  rng = seed * 0x9e3779b97f4a7c15ull + 17;
  long ng, ns, nt = 0;
  if (bench_toks) {
    ng = bench_toks / (GROUP * SEQLEN);
    ns = ng * GROUP;
  } else {
    ng = 1 + (long)(urand() * 5);
    ns = 0;
  }
  d->grp_seq = malloc(sizeof(int32_t) * (size_t)(ng + 1) + 1);
  int32_t lens[64];
  d->grp_seq[0] = 0;
  for (long g = 0; g < ng; g++) {
    int n = bench_toks ? GROUP : 1 + (int)(urand() * 4);
    if (!bench_toks)
      for (int s = 0; s < n; s++) lens[ns + s] = urand() < 0.15 ? 0 : 1 + (int)(urand() * 7);
    if (!bench_toks) ns += n;
    d->grp_seq[g + 1] = bench_toks ? (int32_t)((g + 1) * GROUP) : (int32_t)ns;
  }
  d->seq_tok = malloc(sizeof(int32_t) * (size_t)(ns + 1));
  d->seq_tok[0] = 0;
  for (long s = 0; s < ns; s++) d->seq_tok[s + 1] = (int32_t)(nt += bench_toks ? SEQLEN : lens[s]);
  for (int k = 0; k < REIN_NUM_INPUTS; k++) {
    bool tok = k <= REIN_IN_POS;
    d->in[k] = malloc(sizeof(float) * (size_t)((tok ? nt : ns) + 1));
  }
  for (long s = 0; s < ns; s++) {
    int32_t a = d->seq_tok[s], e = d->seq_tok[s + 1];
    for (int32_t t = a; t < e; t++) {
      d->in[REIN_IN_LOGP][t] = uniform(-5, 0);
      d->in[REIN_IN_OLD_LOGP][t] = uniform(-5, 0);
      d->in[REIN_IN_REF_LOGP][t] = uniform(-5, 0);
      d->in[REIN_IN_ROLLOUT_LOGP][t] = 0.9f * d->in[REIN_IN_OLD_LOGP][t] - 0.05f * (float)(t % 3);
      d->in[REIN_IN_ENTROPY][t] = uniform(0, 3);
      d->in[REIN_IN_POS][t] = (float)(t - a);
    }
    d->in[REIN_IN_REWARD][s] = urand() < 0.3 ? 1.0f : uniform(-1, 2);
    d->in[REIN_IN_LEN][s] = (float)(e - a);
    d->in[REIN_IN_TRUNCATED][s] = urand() < 0.3 ? 1.0f : 0.0f;
    d->in[REIN_IN_LAG][s] = (float)(int)(urand() * 4);
  }
  d->nuin = desc->nuinputs;
  d->uin = calloc((size_t)d->nuin + 1, sizeof(float *));
  for (int k = 0; k < d->nuin; k++) {
    long n = desc->uinputs[k].level == REIN_TOKEN ? nt : ns;
    d->uin[k] = malloc(sizeof(float) * (size_t)(n + 1));
    for (long i = 0; i < n; i++) d->uin[k][i] = uniform(-2, 2);
  }
  d->b.ngroups = ng, d->b.nseqs = ns, d->b.ntoks = nt;
  d->b.grp_seq = d->grp_seq, d->b.seq_tok = d->seq_tok;
  for (int k = 0; k < REIN_NUM_INPUTS; k++) d->b.in[k] = d->in[k];
  d->b.uin = (const float *const *)d->uin;
  d->b.seed = rng >> 7;
  d->b.step = rng >> 50;
}

static void free_data(Data *d) {
  free(d->grp_seq), free(d->seq_tok);
  for (int k = 0; k < REIN_NUM_INPUTS; k++) free(d->in[k]);
  for (int k = 0; k < d->nuin; k++) free(d->uin[k]);
  free(d->uin);
}

/* The descriptor's defaults; trainer constants 7 (max_new), 3 (group_size), 5 (step), as in test_backend. */
static double *make_params(const rein_objective *d) {
  double *p = calloc((size_t)d->nparams + 1, sizeof(double));
  for (int i = 0; i < d->nparams; i++) {
    p[i] = d->params[i].value;
    for (int k = 0; k < REIN_NUM_TRAINER_CONSTS; k++)
      if (d->params[i].kind == REIN_PARAM_TRAINER && !strcmp(d->params[i].name, rein_trainer_const_name(k)))
        p[i] = k == REIN_TC_MAX_NEW ? 7 : k == REIN_TC_GROUP_SIZE ? 3 : 5;
  }
  return p;
}

/* A result copied out of the executor (its own is valid until the next run). */
typedef struct {
  double *v; /* loss, metrics, grad[0], grad[1] */
  size_t n;
} Copy;

static void copy_result(Copy *c, const rt_result *r) {
  c->n = 1 + (size_t)r->nmetrics + 2 * (size_t)r->ntoks;
  c->v = realloc(c->v, sizeof(double) * (c->n + 1));
  c->v[0] = r->loss;
  if (r->nmetrics) memcpy(c->v + 1, r->metrics, sizeof(double) * (size_t)r->nmetrics);
  for (int k = 0; k < 2; k++)
    for (int64_t t = 0; t < r->ntoks; t++) c->v[1 + r->nmetrics + k * r->ntoks + t] = rt_grad(r, k, t);
}

static bool close_enough(double a, double b) {
  if (!isfinite(a) || !isfinite(b)) return isnan(a) ? isnan(b) : a == b;
  return fabs(a - b) <= 1e-5 * fabs(b) + 1e-9;
}

static void fail(const char *file, uint64_t seed, const char *what) {
  if (failures++ < 40) fprintf(stderr, "FAIL %s (batch seed %llu): %s\n", file, (unsigned long long)seed, what);
}

static void compare(const char *file, uint64_t seed, const char *what, const Copy *got, const Copy *want) {
  checks++;
  for (size_t i = 0; i < want->n; i++)
    if (!close_enough(got->v[i], want->v[i])) {
      char m[256];
      snprintf(m, sizeof m, "%s: value %zu is %.17g, the CPU's %.17g", what, i, got->v[i], want->v[i]);
      fail(file, seed, m);
      return;
    }
}

static bool run(rt_exec *x, const Data *d, const double *p, int64_t micro, Copy *c, const char *file, uint64_t seed) {
  char err[1024];
  rt_result r;
  if (!rt_run(x, &d->b, p, micro, &r, err, sizeof err)) {
    fail(file, seed, err);
    return false;
  }
  copy_result(c, &r);
  return true;
}

/* The GPU executor of O, or NULL: *SKIP then says whether that is because there is no GPU (said on
 * stderr) rather than a failure (reported through fail()). */
static rt_exec *gpu_exec(rt_objective *o, const char *file, bool *skip) {
  char err[1024];
  rt_exec *gpu = rt_exec_new(o, RT_GPU, 0, err, sizeof err);
  *skip = !gpu && strstr(err, "no GPU");
  if (*skip) fprintf(stderr, "gpu_check: SKIP: %s\n", err);
  else if (!gpu) fail(file, 0, err);
  return gpu;
}

/* Returns SKIP when there is no GPU. */
static int check_file(const char *file, int nbatches, uint64_t seed0) {
  char err[1024];
  rt_objective *o = rt_open(file, err, sizeof err);
  if (!o) {
    fail(file, 0, err);
    return 0;
  }
  rt_exec *cpu = rt_exec_new(o, RT_CPU, 2, err, sizeof err);
  if (!cpu) fail(file, 0, err);
  bool skip;
  rt_exec *gpu = gpu_exec(o, file, &skip);
  if (!gpu) {
    rt_exec_free(cpu), rt_close(o);
    return skip ? SKIP : 0;
  }
  const rein_objective *desc = rt_desc(o);
  double *p = make_params(desc);
  Copy want = {0}, got = {0}, again = {0};
  for (int bi = 0; cpu && bi < nbatches; bi++) {
    uint64_t seed = seed0 + (uint64_t)bi;
    Data d;
    make_data(&d, desc, seed, 0);
    if (run(cpu, &d, p, 0, &want, file, seed)) {
      if (run(gpu, &d, p, 0, &got, file, seed)) {
        compare(file, seed, "gpu", &got, &want);
        checks++;
        if (run(gpu, &d, p, 0, &again, file, seed) &&
            (again.n != got.n || memcmp(again.v, got.v, sizeof(double) * got.n)))
          fail(file, seed, "gpu: a second run of the same batch is not bit-identical");
      }
      if (run(gpu, &d, p, 1, &got, file, seed)) compare(file, seed, "gpu micro 1", &got, &want);
    }
    free_data(&d);
  }
  free(want.v), free(got.v), free(again.v), free(p);
  rt_exec_free(cpu), rt_exec_free(gpu), rt_close(o);
  return 0;
}

/* --- the device copy bandwidth: the driver API directly (rein/runtime.h has no copy) */
static struct {
  void *dl;
  int (*init)(unsigned);
  int (*dev_get)(int *, int);
  int (*ctx_retain)(void **, int);
  int (*ctx_set)(void *);
  int (*sync)(void);
  int (*alloc)(unsigned long long *, size_t);
  int (*free)(unsigned long long);
  int (*dtod)(unsigned long long, unsigned long long, size_t);
} cu;

/* Best of R device-to-device copies of BYTES, in bytes moved (read + write) per second; 0 on failure. */
static double copy_bandwidth(size_t bytes, int repeat) {
  if (!cu.dl) {
    if (!(cu.dl = dlopen("libcuda.so.1", RTLD_NOW))) return 0;
    *(void **)&cu.init = dlsym(cu.dl, "cuInit");
    *(void **)&cu.dev_get = dlsym(cu.dl, "cuDeviceGet");
    *(void **)&cu.ctx_retain = dlsym(cu.dl, "cuDevicePrimaryCtxRetain");
    *(void **)&cu.ctx_set = dlsym(cu.dl, "cuCtxSetCurrent");
    *(void **)&cu.sync = dlsym(cu.dl, "cuCtxSynchronize");
    *(void **)&cu.alloc = dlsym(cu.dl, "cuMemAlloc_v2");
    *(void **)&cu.free = dlsym(cu.dl, "cuMemFree_v2");
    *(void **)&cu.dtod = dlsym(cu.dl, "cuMemcpyDtoD_v2");
  }
  int dev;
  void *cx;
  unsigned long long a = 0, b = 0;
  if (!cu.init || !cu.dtod || cu.init(0) || cu.dev_get(&dev, 0) || cu.ctx_retain(&cx, dev) || cu.ctx_set(cx) ||
      cu.alloc(&a, bytes) || cu.alloc(&b, bytes)) {
    if (a) cu.free(a);
    return 0;
  }
  double best = 1e30;
  for (int i = 0; i < repeat + 1; i++) {
    double t0 = now();
    if (cu.dtod(b, a, bytes) || cu.sync()) break;
    double t = now() - t0;
    if (i && t < best) best = t; /* the first is a warm-up */
  }
  cu.free(a), cu.free(b);
  return best < 1e30 ? 2.0 * (double)bytes / best : 0;
}

static int bench_file(const char *file, const long *toks, int ntoks, int repeat) {
  char err[1024];
  rt_objective *o = rt_open(file, err, sizeof err);
  if (!o) {
    fail(file, 0, err);
    return 0;
  }
  bool skip;
  rt_exec *gpu = gpu_exec(o, file, &skip);
  if (!gpu) {
    rt_close(o);
    return skip ? SKIP : 0;
  }
  const rein_objective *desc = rt_desc(o);
  double *p = make_params(desc);
  for (int i = 0; i < ntoks; i++) {
    Data d;
    make_data(&d, desc, 1, toks[i]);
    /* compulsory traffic: 5 token inputs + 4 sequence inputs read, 2 gradients written (the
     * executor copies every built-in input; user inputs counted at their level) */
    double bytes = 4.0 * (5.0 * (double)d.b.ntoks + 4.0 * (double)d.b.nseqs + 2.0 * (double)d.b.ntoks);
    for (int k = 0; k < desc->nuinputs; k++)
      bytes += 4.0 * (double)(desc->uinputs[k].level == REIN_TOKEN ? d.b.ntoks : d.b.nseqs);
    double best = 1e30;
    rt_result r;
    for (int k = 0; k < repeat + 1; k++) {
      double t0 = now();
      if (!rt_run(gpu, &d.b, p, 0, &r, err, sizeof err)) {
        fail(file, 0, err);
        break;
      }
      double t = now() - t0;
      if (k && t < best) best = t; /* the first is a warm-up (module load, allocation) */
    }
    double bw = copy_bandwidth((size_t)bytes / 2, repeat);
    if (best < 1e30)
      printf("{\"objective\": \"%s\", \"tokens\": %lld, \"gpu_step_s\": %.6g, \"traffic_bytes\": %.0f, "
             "\"step_GBps\": %.6g, \"dtod_copy_GBps\": %.6g, \"share_of_copy\": %.4g, \"loss\": %.9g}\n",
             desc->name, (long long)d.b.ntoks, best, bytes, bytes / best * 1e-9, bw * 1e-9,
             bw > 0 ? bytes / best / bw : 0.0, r.loss);
    fflush(stdout);
    free_data(&d);
  }
  free(p);
  rt_exec_free(gpu), rt_close(o);
  return 0;
}

/* 0 when libcuda.so.1 loads and finds a device, else SKIP with the reason. */
static int probe(void) {
  void *dl = dlopen("libcuda.so.1", RTLD_NOW);
  int (*init)(unsigned) = NULL, (*count)(int *) = NULL;
  if (dl) *(void **)&init = dlsym(dl, "cuInit"), *(void **)&count = dlsym(dl, "cuDeviceGetCount");
  int n = 0;
  const char *why = !dl ? "libcuda.so.1 is not installed" : !init || !count ? "libcuda.so.1 lacks cuInit"
                    : init(0) ? "cuInit fails" : count(&n) || !n ? "the CUDA driver finds no device" : NULL;
  if (why) fprintf(stderr, "gpu_check: no GPU: %s\n", why);
  return why ? SKIP : 0;
}

int main(int argc, char **argv) {
  int nbatches = 3, repeat = 5, ntoks = 0;
  long toks[8];
  uint64_t seed = 1;
  bool bench = false;
  int i = 1;
  for (; i < argc && argv[i][0] == '-'; i++) {
    if (!strcmp(argv[i], "--batches") && i + 1 < argc) nbatches = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--seed") && i + 1 < argc) seed = strtoull(argv[++i], NULL, 10);
    else if (!strcmp(argv[i], "--repeat") && i + 1 < argc) repeat = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--tokens") && i + 1 < argc && ntoks < 8) toks[ntoks++] = atol(argv[++i]);
    else if (!strcmp(argv[i], "--bench")) bench = true;
    else if (!strcmp(argv[i], "--probe")) return probe();
    else break;
  }
  if (i == argc || argv[i][0] == '-' || nbatches < 1 || repeat < 1) {
    fprintf(stderr, "usage: gpu_check [--batches N] [--seed S] ARTIFACT.so...\n"
                    "       gpu_check --bench [--tokens N]... [--repeat R] ARTIFACT.so...\n");
    return 2;
  }
  if (bench && !ntoks) toks[ntoks++] = 1L << 24;
  for (int k = 0; k < ntoks; k++)
    if (toks[k] < GROUP * SEQLEN) {
      fprintf(stderr, "gpu_check: --tokens %ld: at least %d\n", toks[k], GROUP * SEQLEN);
      return 2;
    }
  int programs = 0;
  for (; i < argc; i++, programs++)
    if ((bench ? bench_file(argv[i], toks, ntoks, repeat) : check_file(argv[i], nbatches, seed)) == SKIP) return SKIP;
  if (!bench) printf("gpu_check: %d artifacts, %d checks, %d failures\n", programs, checks, failures);
  return failures ? 1 : 0;
}
