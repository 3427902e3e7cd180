/* exec_gpu.c — the GPU backend: the artifact's PTX through the CUDA driver API.
 *
 * libcuda.so.1 is opened with dlopen when a GPU executor is asked for, and the dozen driver
 * functions used are looked up by their versioned names (the _v2 entry points, stable since
 * CUDA 4), declared here so that building needs no CUDA headers.  No GPU, no driver, or a device
 * older than sm_80 gives a "no GPU: ..." message, never a crash.
 *
 * Buffers live on the device: the batch is copied once per step (logp and entropy micro-batch by
 * micro-batch, as the trainer computes them), a device copy of rein_ctx holds the device
 * pointers, and only the loss, metrics and gradients come back (the gradients of each
 * micro-batch after its passes).  Groups kernels run
 * one block per group (256 threads when the pass sweeps sequences or tokens, 32 otherwise);
 * begin/merge/end/finish/outputs run as one thread.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "exec.h"
#include "rein/common.h"

typedef int CUresult;
typedef int CUdevice;
typedef struct CUctx_st *CUcontext;
typedef struct CUmod_st *CUmodule;
typedef struct CUfunc_st *CUfunction;
typedef struct CUstream_st *CUstream;
typedef unsigned long long CUdeviceptr;
enum { CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR = 75, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR = 76 };

#define CU_FUNCS(X)                                                                                 \
  X(cuInit, CUresult, (unsigned))                                                                   \
  X(cuDeviceGetCount, CUresult, (int *))                                                            \
  X(cuDeviceGet, CUresult, (CUdevice *, int))                                                       \
  X(cuDeviceGetAttribute, CUresult, (int *, int, CUdevice))                                         \
  X(cuDevicePrimaryCtxRetain, CUresult, (CUcontext *, CUdevice))                                    \
  X(cuDevicePrimaryCtxRelease_v2, CUresult, (CUdevice))                                             \
  X(cuCtxSetCurrent, CUresult, (CUcontext))                                                         \
  X(cuCtxSynchronize, CUresult, (void))                                                             \
  X(cuModuleLoadData, CUresult, (CUmodule *, const void *))                                         \
  X(cuModuleUnload, CUresult, (CUmodule))                                                           \
  X(cuModuleGetFunction, CUresult, (CUfunction *, CUmodule, const char *))                          \
  X(cuMemAlloc_v2, CUresult, (CUdeviceptr *, size_t))                                               \
  X(cuMemFree_v2, CUresult, (CUdeviceptr))                                                          \
  X(cuMemcpyHtoD_v2, CUresult, (CUdeviceptr, const void *, size_t))                                 \
  X(cuMemcpyDtoH_v2, CUresult, (void *, CUdeviceptr, size_t))                                       \
  X(cuMemsetD8_v2, CUresult, (CUdeviceptr, unsigned char, size_t))                                  \
  X(cuLaunchKernel, CUresult, (CUfunction, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, \
                               unsigned, CUstream, void **, void **))                               \
  X(cuGetErrorString, CUresult, (CUresult, const char **))

typedef struct {
  void *dl;
#define X(name, ret, args) ret(*name) args;
  CU_FUNCS(X)
#undef X
} Cu;

enum { B_GRP_SEQ, B_SEQ_TOK, B_IN, B_UIN_DATA = B_IN + REIN_NUM_INPUTS, B_UIN_PTRS, B_PARAMS, B_SLOTS, B_TOK, B_SEQ,
       B_GRP, B_RECORDS, B_STATES, B_GRAD, B_SCRATCH, B_OUT, B_CTX, B_COUNT };

typedef struct {
  rt_exec base;
  Cu cu;
  CUdevice dev;
  CUcontext cx;
  CUmodule mod;
  CUfunction *fn;    /* (npasses * 4) then finish, outputs */
  CUdeviceptr buf[B_COUNT];
  size_t cap[B_COUNT];
  rein_ctx ctx;      /* host copy of the device ctx (device pointers) */
  double *out;
  float *grad;
  int64_t ntoks;
  size_t in_off[REIN_NUM_INPUTS]; /* byte offset of each input in B_IN */
  const float *in_host[REIN_NUM_INPUTS];
  char *err;
  size_t errlen;
} GpuExec;

static bool cu_ok(GpuExec *x, CUresult r, const char *what) {
  if (r == 0) return true;
  const char *s = NULL;
  if (x->cu.cuGetErrorString) x->cu.cuGetErrorString(r, &s);
  snprintf(x->err, x->errlen, "GPU: %s failed: %s (CUDA error %d)", what, s ? s : "unknown", r);
  return false;
}

static void gpu_free(rt_exec *xb) {
  GpuExec *x = (GpuExec *)xb;
  for (int k = 0; k < B_COUNT; k++)
    if (x->buf[k]) x->cu.cuMemFree_v2(x->buf[k]);
  if (x->mod) x->cu.cuModuleUnload(x->mod);
  if (x->cx) x->cu.cuDevicePrimaryCtxRelease_v2(x->dev);
  if (x->cu.dl) dlclose(x->cu.dl);
  free(x->fn);
  free(x->out);
  free(x->grad);
  free(x);
}

/* Device buffer K of at least N bytes (contents undefined). */
static bool dev_buf(GpuExec *x, int k, size_t n) {
  if (n == 0) n = 8;
  if (n <= x->cap[k]) return true;
  if (x->buf[k]) x->cu.cuMemFree_v2(x->buf[k]);
  x->buf[k] = 0;
  x->cap[k] = 0;
  if (!cu_ok(x, x->cu.cuMemAlloc_v2(&x->buf[k], n), "cuMemAlloc")) return false;
  x->cap[k] = n;
  return true;
}

static bool upload(GpuExec *x, int k, const void *p, size_t n) {
  return dev_buf(x, k, n) && (n == 0 || cu_ok(x, x->cu.cuMemcpyHtoD_v2(x->buf[k], p, n), "cuMemcpyHtoD"));
}

static bool gpu_prepare(rt_exec *xb, const rt_batch *b, const double *params, char *err, size_t errlen) {
  GpuExec *x = (GpuExec *)xb;
  const rein_objective *d = xb->d;
  x->err = err, x->errlen = errlen;
  rein_ctx *c = &x->ctx;
  memset(c, 0, sizeof *c);
  c->ngroups = b->ngroups, c->nseqs = b->nseqs, c->ntoks = b->ntoks;
  c->seed = b->seed, c->step = b->step;
  size_t nt = (size_t)b->ntoks, ns = (size_t)b->nseqs, ng = (size_t)b->ngroups;
  bool ok = upload(x, B_GRP_SEQ, b->grp_seq, 4 * (ng + 1)) && upload(x, B_SEQ_TOK, b->seq_tok, 4 * (ns + 1)) &&
            upload(x, B_PARAMS, params, 8 * (size_t)d->nparams);
  /* inputs: one buffer, each read input at its level */
  size_t off = 0, offs[REIN_NUM_INPUTS] = {0};
#define X(ID, name, lv, is_bool, diff) lv,
  static const int level[REIN_NUM_INPUTS] = {REIN_INPUT_LIST(X)};
#undef X
  for (int k = 0; ok && k < REIN_NUM_INPUTS; k++) {
    offs[k] = off;
    if (b->in[k] && (d->inputs_used >> k & 1)) off += 4 * (level[k] ? ns : nt);
  }
  ok = ok && dev_buf(x, B_IN, off);
  for (int k = 0; ok && k < REIN_NUM_INPUTS; k++) {
    x->in_off[k] = offs[k];
    x->in_host[k] = b->in[k];
    if (!b->in[k] || !(d->inputs_used >> k & 1)) continue;
    c->in[k] = (const float *)(uintptr_t)(x->buf[B_IN] + offs[k]);
    if (k == REIN_IN_LOGP || k == REIN_IN_ENTROPY) continue;   /* per micro-batch: gpu_inputs */
    size_t n = 4 * (level[k] ? ns : nt);
    ok = n == 0 || cu_ok(x, x->cu.cuMemcpyHtoD_v2(x->buf[B_IN] + offs[k], b->in[k], n), "cuMemcpyHtoD");
  }
  /* user inputs: data, then the table of device pointers */
  size_t uoff = 0;
  for (int k = 0; k < d->nuinputs; k++) uoff += 4 * (d->uinputs[k].level == REIN_SEQ ? ns : nt);
  ok = ok && dev_buf(x, B_UIN_DATA, uoff) && dev_buf(x, B_UIN_PTRS, 8 * (size_t)d->nuinputs);
  uoff = 0;
  CUdeviceptr *uptr = rc_calloc((size_t)d->nuinputs + 1, sizeof *uptr);
  for (int k = 0; ok && k < d->nuinputs; k++) {
    size_t n = 4 * (d->uinputs[k].level == REIN_SEQ ? ns : nt);
    uptr[k] = x->buf[B_UIN_DATA] + uoff;
    ok = n == 0 || cu_ok(x, x->cu.cuMemcpyHtoD_v2(uptr[k], b->uin[k], n), "cuMemcpyHtoD");
    uoff += n;
  }
  ok = ok && (d->nuinputs == 0 || upload(x, B_UIN_PTRS, uptr, 8 * (size_t)d->nuinputs));
  free(uptr);
  size_t big = (nt > ns ? nt : ns) + 1;
  ok = ok && dev_buf(x, B_SLOTS, 8 * (size_t)d->nslots) && dev_buf(x, B_TOK, 8 * (size_t)d->ntok_arrays * nt) &&
       dev_buf(x, B_SEQ, 8 * (size_t)d->nseq_arrays * ns) && dev_buf(x, B_GRP, 8 * (size_t)d->ngrp_arrays * ng) &&
       dev_buf(x, B_RECORDS, 24 * ng * (size_t)d->nreductions) && dev_buf(x, B_STATES, 24 * (size_t)d->nreductions) &&
       dev_buf(x, B_GRAD, 8 * nt) && dev_buf(x, B_SCRATCH, 48 * big) && dev_buf(x, B_OUT, 8 * (1 + (size_t)d->nmetrics)) &&
       dev_buf(x, B_CTX, sizeof(rein_ctx));
  ok = ok && (d->nreductions == 0 ||
              cu_ok(x, x->cu.cuMemsetD8_v2(x->buf[B_STATES], 0, 24 * (size_t)d->nreductions), "cuMemset")) &&
       (nt == 0 || cu_ok(x, x->cu.cuMemsetD8_v2(x->buf[B_GRAD], 0, 8 * nt), "cuMemset"));
  if (!ok) return false;
#define DP(k) ((void *)(uintptr_t)x->buf[k])
  c->grp_seq = DP(B_GRP_SEQ), c->seq_tok = DP(B_SEQ_TOK);
  c->uin = DP(B_UIN_PTRS), c->params = DP(B_PARAMS), c->slots = DP(B_SLOTS);
  c->tok_store = DP(B_TOK), c->seq_store = DP(B_SEQ), c->grp_store = DP(B_GRP);
  c->records = DP(B_RECORDS), c->states = DP(B_STATES), c->scratch = DP(B_SCRATCH), c->out = DP(B_OUT);
  c->grad[0] = DP(B_GRAD);
  c->grad[1] = (float *)(uintptr_t)(x->buf[B_GRAD] + 4 * nt);
#undef DP
  x->ntoks = b->ntoks;
  free(x->grad);
  free(x->out);
  x->grad = rc_calloc(2 * nt + 1, sizeof(float));
  x->out = rc_calloc(1 + (size_t)d->nmetrics, sizeof(double));
  return upload(x, B_CTX, c, sizeof *c);
}

static void gpu_view(rt_exec *xb, int64_t g0, int64_t g1) {
  GpuExec *x = (GpuExec *)xb;
  x->ctx.g0 = g0, x->ctx.g1 = g1;
  /* g0 and g1 are adjacent words of the ctx */
  x->cu.cuMemcpyHtoD_v2(x->buf[B_CTX] + 8 * REIN_CTX_G0, &x->ctx.g0, 16);
}

static bool launch(GpuExec *x, CUfunction f, unsigned grid, unsigned block, int64_t g0, int64_t g1) {
  void *args[3] = {&x->buf[B_CTX], &g0, &g1};
  return cu_ok(x, x->cu.cuLaunchKernel(f, grid, 1, 1, block, 1, 1, 0, NULL, args, NULL), "cuLaunchKernel");
}

static bool gpu_scalar(rt_exec *xb, int pass, int entry) {
  GpuExec *x = (GpuExec *)xb;
  int k = pass < 0 ? 4 * xb->d->npasses + (entry == RT_FINISH ? 0 : 1) : 4 * pass + entry;
  return launch(x, x->fn[k], 1, 1, 0, 0);
}

static bool gpu_range(rt_exec *xb, int pass, int entry, int64_t g0, int64_t g1) {
  GpuExec *x = (GpuExec *)xb;
  CUfunction f = x->fn[4 * pass + entry];
  if (entry == RT_MERGE) return launch(x, f, 1, 1, g0, g1);
  unsigned block = xb->d->passes[pass].loop <= REIN_SEQ ? 256 : 32;
  /* grids are at most 2^31-1 blocks wide */
  for (int64_t a = g0; a < g1; a += 1 << 30) {
    int64_t b = a + (1 << 30) < g1 ? a + (1 << 30) : g1;
    if (!launch(x, f, (unsigned)(b - a), block, a, b)) return false;
  }
  return true;
}

static bool gpu_sweep(rt_exec *xb, const int *passes, int n, int64_t g0, int64_t g1) {
  for (int j = 0; j < n; j++)
    if (!gpu_range(xb, passes[j], RT_GROUPS, g0, g1)) return false;
  return true;
}

/* logp and entropy of tokens [t0, t1), when the objective reads them */
static bool gpu_inputs(rt_exec *xb, int64_t t0, int64_t t1, char *err, size_t errlen) {
  GpuExec *x = (GpuExec *)xb;
  x->err = err, x->errlen = errlen;
  static const int ks[2] = {REIN_IN_LOGP, REIN_IN_ENTROPY};
  for (int j = 0; j < 2; j++) {
    int k = ks[j];
    if (!x->in_host[k] || !(xb->d->inputs_used >> k & 1) || t1 <= t0) continue;
    if (!cu_ok(x, x->cu.cuMemcpyHtoD_v2(x->buf[B_IN] + x->in_off[k] + 4 * (size_t)t0, x->in_host[k] + t0,
                                        4 * (size_t)(t1 - t0)), "cuMemcpyHtoD"))
      return false;
  }
  return true;
}

/* the gradients of tokens [t0, t1) into the host copy */
static bool gpu_grads(rt_exec *xb, int64_t t0, int64_t t1, const float *grad[2], char *err, size_t errlen) {
  GpuExec *x = (GpuExec *)xb;
  x->err = err, x->errlen = errlen;
  size_t nt = (size_t)x->ntoks, n = 4 * (size_t)(t1 - t0);
  if (!cu_ok(x, x->cu.cuCtxSynchronize(), "a kernel")) return false;
  for (int k = 0; k < 2 && t1 > t0; k++)
    if (!cu_ok(x, x->cu.cuMemcpyDtoH_v2(x->grad + k * nt + (size_t)t0, x->buf[B_GRAD] + 4 * (k * nt + (size_t)t0), n),
               "cuMemcpyDtoH"))
      return false;
  grad[0] = x->grad;
  grad[1] = x->grad + nt;
  return true;
}

static bool gpu_fetch(rt_exec *xb, rt_result *r, char *err, size_t errlen) {
  GpuExec *x = (GpuExec *)xb;
  x->err = err, x->errlen = errlen;
  const rein_objective *d = xb->d;
  if (!cu_ok(x, x->cu.cuCtxSynchronize(), "a kernel") ||
      !cu_ok(x, x->cu.cuMemcpyDtoH_v2(x->out, x->buf[B_OUT], 8 * (1 + (size_t)d->nmetrics)), "cuMemcpyDtoH"))
    return false;
  r->loss = x->out[0];
  r->metrics = x->out + 1;
  return true;
}

static const RtOps gpu_ops = {gpu_prepare, gpu_view, gpu_scalar, gpu_range, gpu_sweep, gpu_inputs, gpu_grads,
                              gpu_fetch, gpu_free};

rt_exec *rt_gpu_new(const rein_objective *d, char *err, size_t errlen) {
  GpuExec *x = rc_calloc(1, sizeof *x);
  x->base.ops = &gpu_ops;
  x->err = err, x->errlen = errlen;
  x->cu.dl = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
  if (!x->cu.dl) {
    snprintf(err, errlen, "no GPU: the CUDA driver (libcuda.so.1) is not installed");
    gpu_free(&x->base);
    return NULL;
  }
#define X(name, ret, args)                                                                   \
  x->cu.name = (ret(*) args)dlsym(x->cu.dl, #name);                                          \
  if (!x->cu.name) {                                                                         \
    snprintf(err, errlen, "no GPU: libcuda.so.1 lacks %s (driver too old)", #name);          \
    gpu_free(&x->base);                                                                      \
    return NULL;                                                                             \
  }
  CU_FUNCS(X)
#undef X
  int n = 0, major = 0, minor = 0;
  if (x->cu.cuInit(0) != 0 || x->cu.cuDeviceGetCount(&n) != 0 || n == 0) {
    snprintf(err, errlen, "no GPU: the CUDA driver finds no device");
    gpu_free(&x->base);
    return NULL;
  }
  if (!cu_ok(x, x->cu.cuDeviceGet(&x->dev, 0), "cuDeviceGet") ||
      !cu_ok(x, x->cu.cuDeviceGetAttribute(&major, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, x->dev), "cuDeviceGetAttribute") ||
      !cu_ok(x, x->cu.cuDeviceGetAttribute(&minor, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, x->dev), "cuDeviceGetAttribute")) {
    gpu_free(&x->base);
    return NULL;
  }
  /* the newest PTX not newer than the device; the driver JIT-compiles it */
  const char *want = major >= 9 ? "sm_90" : "sm_80";
  const char *ptx = NULL;
  for (int k = 0; k < d->nptx; k++)
    if (!strcmp(d->ptx_arch[k], want)) ptx = d->ptx[k];
  if (major >= 8 && !ptx) {
    snprintf(err, errlen, "the objective was compiled without PTX for %s (rebuild it with `rein compile`)", want);
    gpu_free(&x->base);
    return NULL;
  }
  if (major < 8) {
    snprintf(err, errlen, "no GPU: device 0 has compute capability %d.%d; the objective has PTX for sm_80 and sm_90",
             major, minor);
    gpu_free(&x->base);
    return NULL;
  }
  if (!cu_ok(x, x->cu.cuDevicePrimaryCtxRetain(&x->cx, x->dev), "cuDevicePrimaryCtxRetain") ||
      !cu_ok(x, x->cu.cuCtxSetCurrent(x->cx), "cuCtxSetCurrent") ||
      !cu_ok(x, x->cu.cuModuleLoadData(&x->mod, ptx), "loading the PTX")) {
    if (!x->mod) x->cx = x->cx; /* released by gpu_free */
    gpu_free(&x->base);
    return NULL;
  }
  x->fn = rc_calloc(4 * (size_t)d->npasses + 2, sizeof(CUfunction));
  for (int k = 0; k < REIN_NUM_ENTRIES * d->npasses + 2; k++) {
    char buf[32];
    const char *name = k < REIN_NUM_ENTRIES * d->npasses ? rein_entry_name(buf, k / REIN_NUM_ENTRIES, k % REIN_NUM_ENTRIES)
                       : k == REIN_NUM_ENTRIES * d->npasses ? REIN_FINISH_NAME : REIN_OUTPUTS_NAME;
    if (!cu_ok(x, x->cu.cuModuleGetFunction(&x->fn[k], x->mod, name), name)) {
      gpu_free(&x->base);
      return NULL;
    }
  }
  return &x->base;
}
