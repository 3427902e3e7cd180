/* objective.c — the loader of compiled objectives and the step driver shared by the back ends.
 *
 * rt_open dlopens an artifact and checks its descriptor before anything else reads it: the
 * magic and ABI version first (they are the first two words in every version), then counts and
 * entry points.  rt_begin, rt_stat, rt_micro and rt_end drive one step, stage by stage, through a small
 * executor interface (RtOps, exec.h): the CPU one is in this file, the GPU one in exec_gpu.c.
 * The driver runs the stages in the order rein/objective.h gives and checks that the caller's
 * calls follow it; each executor only knows how to prepare buffers, call an entry point, move
 * a micro-batch's inputs and gradients, and fetch the results.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <elf.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "exec.h"
#include "rein/common.h"

struct rt_objective {
  void *dl;
  const rein_objective *d;
  char *path;
};

#define FAIL(...) (snprintf(err, errlen, __VA_ARGS__), false)

static bool check_desc(const rein_objective *d, const char *path, char *err, size_t errlen) {
  if (d->magic != REIN_MAGIC) return FAIL("%s: not a Rein objective (bad magic number in `%s`)", path, REIN_SYMBOL);
  if (d->abi_version != REIN_ABI_VERSION)
    return FAIL("%s: compiled for objective ABI version %u, this runtime reads version %d (recompile it with "
                "`rein compile`)", path, d->abi_version, REIN_ABI_VERSION);
  const int32_t *cnt[] = {&d->nparams, &d->nuinputs, &d->nmetrics, &d->npasses, &d->ntok_arrays, &d->nseq_arrays,
                          &d->ngrp_arrays, &d->nslots, &d->nreductions, &d->nptx};
  static const char *const names[] = {"nparams", "nuinputs", "nmetrics", "npasses", "ntok_arrays", "nseq_arrays",
                                      "ngrp_arrays", "nslots", "nreductions", "nptx"};
  for (size_t k = 0; k < sizeof cnt / sizeof *cnt; k++)
    if (*cnt[k] < 0 || *cnt[k] > 100000) return FAIL("%s: descriptor field `%s` is %d", path, names[k], *cnt[k]);
  if (!d->name || !d->description) return FAIL("%s: descriptor has no name", path);
  if ((d->nparams && !d->params) || (d->nuinputs && !d->uinputs) || (d->nmetrics && !d->metrics) ||
      (d->npasses && !d->passes) || (d->nptx && (!d->ptx || !d->ptx_arch)))
    return FAIL("%s: descriptor has a NULL table", path);
  if (!d->finish || !d->outputs) return FAIL("%s: descriptor lacks the entry point " REIN_FINISH_NAME " or " REIN_OUTPUTS_NAME, path);
  for (int k = 0; k < d->npasses; k++) {
    const rein_pass *p = &d->passes[k];
    if (p->stage < REIN_STAGE_PROLOGUE || p->stage > REIN_STAGE_FINAL || p->loop < REIN_TOKEN || p->loop > REIN_BATCH)
      return FAIL("%s: pass %d has stage %d, loop %d", path, k, p->stage, p->loop);
    if (p->stage == REIN_STAGE_STAT && !(d->flags & REIN_STATS))
      return FAIL("%s: pass %d is a statistics pass, but the descriptor lacks REIN_STATS", path, k);
    if (!p->begin || !p->groups || !p->merge || !p->end) return FAIL("%s: pass %d lacks an entry point", path, k);
  }
  for (int k = 0; k < d->nparams; k++) {
    const rein_param *p = &d->params[k];
    if (!p->name || p->kind < REIN_PARAM_PARAM || p->kind > REIN_PARAM_TRAINER ||
        (p->kind == REIN_PARAM_STATE) != (p->update >= 0) || p->update >= d->nmetrics)
      return FAIL("%s: param %d is malformed", path, k);
  }
  for (int k = 0; k < d->nuinputs; k++)
    if (!d->uinputs[k].name || (d->uinputs[k].level != REIN_TOKEN && d->uinputs[k].level != REIN_SEQ))
      return FAIL("%s: user input %d is malformed", path, k);
  return true;
}

/* dlopen maps a shared object's segments as its headers say; a truncated file would fault (SIGBUS)
 * on first touch instead of failing.  So the ELF headers are checked against the file's size
 * first: every segment and the section table must lie inside the file. */
static bool check_elf(const char *path, char *err, size_t errlen) {
  FILE *f = fopen(path, "rb");
  if (!f) return true; /* dlopen reports it */
  Elf64_Ehdr eh;
  bool ok = fread(&eh, sizeof eh, 1, f) == 1;
  fseek(f, 0, SEEK_END);
  long size = ftell(f);
  if (!ok || memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0) {
    fclose(f);
    return FAIL("%s: cannot load the objective: not an ELF shared object", path);
  }
  if (eh.e_ident[EI_CLASS] != ELFCLASS64 || eh.e_phentsize != sizeof(Elf64_Phdr) ||
      eh.e_phoff + (uint64_t)eh.e_phnum * sizeof(Elf64_Phdr) > (uint64_t)size ||
      (eh.e_shoff && eh.e_shoff + (uint64_t)eh.e_shnum * eh.e_shentsize > (uint64_t)size)) {
    fclose(f);
    return FAIL("%s: cannot load the objective: truncated or corrupt ELF headers", path);
  }
  for (int k = 0; ok && k < eh.e_phnum; k++) {
    Elf64_Phdr ph;
    if (fseek(f, (long)(eh.e_phoff + (uint64_t)k * sizeof ph), SEEK_SET) != 0 || fread(&ph, sizeof ph, 1, f) != 1 ||
        ph.p_offset + ph.p_filesz > (uint64_t)size)
      ok = FAIL("%s: cannot load the objective: truncated file (segment %d ends past the end)", path, k);
  }
  fclose(f);
  return ok;
}

rt_objective *rt_open(const char *path, char *err, size_t errlen) {
  if (!check_elf(path, err, errlen)) return NULL;
  /* dlopen searches the library path for a bare name: make it a path */
  char *p = rc_malloc(strlen(path) + 3);
  sprintf(p, "%s%s", strchr(path, '/') ? "" : "./", path);
  void *dl = dlopen(p, RTLD_NOW | RTLD_LOCAL);
  if (!dl) {
    const char *e = dlerror();
    snprintf(err, errlen, "%s: cannot load the objective: %s", path, e ? e : "unknown error");
    free(p);
    return NULL;
  }
  const rein_objective *d = dlsym(dl, REIN_SYMBOL);
  if (!d) {
    snprintf(err, errlen, "%s: not a Rein objective (no symbol `%s`)", path, REIN_SYMBOL);
  } else if (check_desc(d, path, err, errlen)) {
    rt_objective *o = rc_calloc(1, sizeof *o);
    o->dl = dl;
    o->d = d;
    o->path = p;
    return o;
  }
  dlclose(dl);
  free(p);
  return NULL;
}

rt_objective *rt_wrap(const rein_objective *d, const char *name, char *err, size_t errlen) {
  if (!check_desc(d, name, err, errlen)) return NULL;
  rt_objective *o = rc_calloc(1, sizeof *o);
  o->d = d;
  o->path = rc_strdup(name);
  return o;
}

void rt_close(rt_objective *o) {
  if (!o) return;
  if (o->dl) dlclose(o->dl);
  free(o->path);
  free(o);
}

const rein_objective *rt_desc(const rt_objective *o) { return o->d; }

/* ---------------------------------------------------------------------------------------------
 * The CPU backend: the entry points are called directly; a groups sweep is split into chunks of
 * groups run by OpenMP threads (any split gives the same bits: states are kept per group).
 */

typedef struct {
  rt_exec base;
  rein_ctx ctx;
  double *slots, *store[3], *records, *states, *scratch, *out;
  float *grad[2]; /* d loss/d logp, d loss/d entropy: apart, so an unused one stays zero */
  size_t cap[10];
} CpuExec;

/* Grows *P to hold N elements of SZ bytes: a larger array, zeroed, when it has fewer; 64-byte
 * aligned, a cache line: the compiled code writes a gradient's whole lines with non-temporal
 * stores and cuts its token loops where they start (cg.c, nt_tokens) -- any array works, but
 * only arrays that start where the lines do give the same cuts, hence the same bits, whatever
 * the allocator returns. */
static void *grow(void *p, size_t *cap, size_t n, size_t sz) {
  if (n == 0) n = 1;
  if (n > *cap) {
    free(p);
    p = rc_calloc_lines(n, sz);
    *cap = n;
  }
  return p;
}

static bool cpu_prepare(rt_exec *xb, const rt_batch *b, const double *params, char *err, size_t errlen) {
  CpuExec *x = (CpuExec *)xb;
  const rein_objective *d = xb->d;
  rein_ctx *c = &x->ctx;
  memset(c, 0, sizeof *c);
  c->ngroups = b->ngroups, c->nseqs = b->nseqs, c->ntoks = b->ntoks;
  c->grp_seq = b->grp_seq, c->seq_tok = b->seq_tok;
  for (int k = 0; k < REIN_NUM_INPUTS; k++) c->in[k] = b->in[k];
  c->uin = b->uin;
  c->params = params;
  c->seed = b->seed, c->step = b->step;
  int64_t cnt[3] = {b->ntoks, b->nseqs, b->ngroups};
  int32_t narr[3] = {d->ntok_arrays, d->nseq_arrays, d->ngrp_arrays};
  for (int l = 0; l < 3; l++) x->store[l] = grow(x->store[l], &x->cap[l], (size_t)narr[l] * (size_t)cnt[l], sizeof(double));
  x->slots = grow(x->slots, &x->cap[3], (size_t)d->nslots, sizeof(double));
  x->records = grow(x->records, &x->cap[4], (size_t)b->ngroups * (size_t)d->nreductions * 3, sizeof(double));
  x->states = grow(x->states, &x->cap[5], (size_t)d->nreductions * 3, sizeof(double));
  size_t big = (size_t)(b->ntoks > b->nseqs ? b->ntoks : b->nseqs) + 1;
  x->scratch = grow(x->scratch, &x->cap[6], 6 * big, sizeof(double));
  x->out = grow(x->out, &x->cap[7], 1 + (size_t)d->nmetrics, sizeof(double));
  /* a gradient the objective has is written for every token by its passes; the other is zero
   * from grow's calloc on, as nothing writes it (no memset per step: 64 MB at 16M tokens) */
  for (int k = 0; k < 2; k++) x->grad[k] = grow(x->grad[k], &x->cap[8 + k], (size_t)b->ntoks, sizeof(float));
  memset(x->states, 0, sizeof(double) * (size_t)d->nreductions * 3);
  c->tok_store = x->store[0], c->seq_store = x->store[1], c->grp_store = x->store[2];
  c->slots = x->slots, c->records = x->records, c->states = x->states, c->scratch = x->scratch;
  c->grad[0] = x->grad[0], c->grad[1] = x->grad[1];
  c->out = x->out;
  (void)err, (void)errlen;
  return true;
}

static void cpu_view(rt_exec *xb, int64_t g0, int64_t g1) {
  CpuExec *x = (CpuExec *)xb;
  x->ctx.g0 = g0, x->ctx.g1 = g1;
}

static bool cpu_scalar(rt_exec *xb, int pass, int entry) {
  CpuExec *x = (CpuExec *)xb;
  const rein_objective *d = xb->d;
  if (pass < 0) {
    (entry == RT_FINISH ? d->finish : d->outputs)(&x->ctx);
    return true;
  }
  const rein_pass *p = &d->passes[pass];
  (entry == RT_BEGIN ? p->begin : p->end)(&x->ctx);
  return true;
}

static int cpu_threads(const rt_exec *xb) { return xb->nthreads > 0 ? xb->nthreads : omp_get_max_threads(); }

/* The groups functions of the NPASS passes PASSES over groups [g0, g1), cut into NCHUNKS chunks of
 * whole groups: each chunk goes through every pass, in order, before the next chunk, and the
 * chunks are spread over THREADS OpenMP threads (any cut gives the same bits: states are kept per
 * group). */
static void cpu_chunks(CpuExec *x, const int *passes, int npass, int64_t g0, int64_t g1, int64_t nchunks,
                       int threads) {
  const rein_pass *ps = x->base.d->passes;
  rein_ctx *c = &x->ctx;
  int64_t n = g1 - g0;
#pragma omp parallel for schedule(monotonic: dynamic, 1) num_threads(threads) if (threads > 1 && nchunks > 1)
  for (int64_t k = 0; k < nchunks; k++)
    for (int j = 0; j < npass; j++) ps[passes[j]].groups(c, g0 + n * k / nchunks, g0 + n * (k + 1) / nchunks);
}

static bool cpu_range(rt_exec *xb, int pass, int entry, int64_t g0, int64_t g1) {
  CpuExec *x = (CpuExec *)xb;
  if (entry == RT_MERGE) {
    xb->d->passes[pass].merge(&x->ctx, g0, g1);
    return true;
  }
  int64_t n = g1 - g0;
  int threads = cpu_threads(xb);
  int64_t nchunks = threads <= 1 || n < 2 ? 1 : n < 8 * (int64_t)threads ? n : 8 * (int64_t)threads;
  cpu_chunks(x, &pass, 1, g0, g1, nchunks, threads);
  return true;
}

/* Chunks of about CPU_SWEEP_TOKENS tokens (with 8 per thread at least): a chunk's inputs and
 * gradient (tens of bytes a token) stay in a core's L2 cache from one pass to the next. */
#define CPU_SWEEP_TOKENS 32768

static bool cpu_sweep(rt_exec *xb, const int *passes, int npass, int64_t g0, int64_t g1) {
  int threads = cpu_threads(xb);
  int64_t n = g1 - g0, ntoks = xb->b.seq_tok[xb->b.grp_seq[g1]] - xb->b.seq_tok[xb->b.grp_seq[g0]];
  int64_t nchunks = ntoks / CPU_SWEEP_TOKENS > 8 * (int64_t)threads ? ntoks / CPU_SWEEP_TOKENS : 8 * (int64_t)threads;
  cpu_chunks((CpuExec *)xb, passes, npass, g0, g1, nchunks < n ? nchunks : n, threads);
  return true;
}

/* the passes read the caller's arrays in place */
static bool cpu_inputs(rt_exec *xb, int64_t t0, int64_t t1, char *err, size_t errlen) {
  (void)xb, (void)t0, (void)t1, (void)err, (void)errlen;
  return true;
}

static bool cpu_grads(rt_exec *xb, int64_t t0, int64_t t1, const float *grad[2], char *err, size_t errlen) {
  CpuExec *x = (CpuExec *)xb;
  grad[0] = x->ctx.grad[0];
  grad[1] = x->ctx.grad[1];
  (void)t0, (void)t1, (void)err, (void)errlen;
  return true;
}

static bool cpu_fetch(rt_exec *xb, rt_result *r, char *err, size_t errlen) {
  CpuExec *x = (CpuExec *)xb;
  r->loss = x->out[0];
  r->metrics = x->out + 1;
  (void)err, (void)errlen;
  return true;
}

static void cpu_free(rt_exec *xb) {
  CpuExec *x = (CpuExec *)xb;
  for (int l = 0; l < 3; l++) free(x->store[l]);
  free(x->slots);
  free(x->records);
  free(x->states);
  free(x->scratch);
  free(x->out);
  free(x->grad[0]);
  free(x->grad[1]);
  free(x);
}

static const RtOps cpu_ops = {cpu_prepare, cpu_view, cpu_scalar, cpu_range, cpu_sweep, cpu_inputs, cpu_grads,
                               cpu_fetch, cpu_free};

rt_exec *rt_exec_new(rt_objective *o, rt_device device, int nthreads, char *err, size_t errlen) {
  rt_exec *x;
  if (device == RT_GPU) {
    x = rt_gpu_new(o->d, err, errlen);
    if (!x) return NULL;
  } else {
    CpuExec *cx = rc_calloc(1, sizeof *cx);
    cx->base.ops = &cpu_ops;
    x = &cx->base;
  }
  x->d = o->d;
  x->nthreads = nthreads;
  x->next_g = -1;
  return x;
}

void rt_exec_free(rt_exec *x) {
  if (!x) return;
  x->ops->free(x);
}

/* ---------------------------------------------------------------------------------------------
 * The step driver.
 */

static bool run_pass(rt_exec *x, int k, int64_t g0, int64_t g1) {
  const rein_pass *p = &x->d->passes[k];
  const RtOps *ops = x->ops;
  return (!(p->flags & REIN_PASS_BEGIN) || ops->scalar(x, k, RT_BEGIN)) &&
         (!(p->flags & REIN_PASS_GROUPS) || ops->range(x, k, RT_GROUPS, g0, g1)) &&
         (!(p->flags & REIN_PASS_MERGE) || ops->range(x, k, RT_MERGE, g0, g1)) &&
         (!(p->flags & REIN_PASS_END) || ops->scalar(x, k, RT_END));
}

/* The passes of STAGE over groups [g0, g1), one after another; the micro stage's group sweeps
 * together (ops->sweep), when more than one pass sweeps and none ends: a micro pass reads no
 * batch value of an earlier micro pass (a batch reduction of the stage is a partial, read in the
 * final stage only; plan.h), so only its begin must come first and its merge after.  A pass that
 * only writes gradients (REIN_PASS_GRADS_ONLY, the last) runs after the others' sweep: chunk by
 * chunk with them it made sft's step 5-8 % slower. */
static bool run_stage(rt_exec *x, int stage, int64_t g0, int64_t g1) {
  const rein_objective *d = x->d;
  x->ops->view(x, g0, g1);
  int sweeps[64], nsweep = 0;
  bool together = stage == REIN_STAGE_MICRO;
  for (int k = 0; k < d->npasses; k++)
    if (d->passes[k].stage == stage) {
      if (d->passes[k].flags & REIN_PASS_END) together = false;
      if ((d->passes[k].flags & REIN_PASS_GROUPS) && !(d->passes[k].flags & REIN_PASS_GRADS_ONLY)) {
        if (nsweep == (int)(sizeof sweeps / sizeof *sweeps)) together = false;
        else sweeps[nsweep++] = k;
      }
    }
  if (!together || nsweep < 2) {
    for (int k = 0; k < d->npasses; k++)
      if (d->passes[k].stage == stage && !run_pass(x, k, g0, g1)) return false;
    return true;
  }
  const RtOps *ops = x->ops;
  for (int k = 0; k < d->npasses; k++)
    if (d->passes[k].stage == stage && (d->passes[k].flags & REIN_PASS_BEGIN) && !ops->scalar(x, k, RT_BEGIN))
      return false;
  if (!ops->sweep(x, sweeps, nsweep, g0, g1)) return false;
  for (int k = 0; k < d->npasses; k++) {
    const rein_pass *p = &d->passes[k];
    if (p->stage != stage) continue;
    if ((p->flags & REIN_PASS_GRADS_ONLY) && (p->flags & REIN_PASS_GROUPS) && !ops->range(x, k, RT_GROUPS, g0, g1))
      return false;
    if ((p->flags & REIN_PASS_MERGE) && !ops->range(x, k, RT_MERGE, g0, g1)) return false;
  }
  return true;
}

static bool failed(rt_exec *x, bool ok, char *err, size_t errlen) {
  if (!ok) {
    x->next_g = -1;
    if (!err[0]) snprintf(err, errlen, "the %s backend failed", x->ops == &cpu_ops ? "CPU" : "GPU");
  }
  return ok;
}

bool rt_begin(rt_exec *x, const rt_batch *b, const double *params, char *err, size_t errlen) {
  const rein_objective *d = x->d;
  x->next_g = -1;
  if (b->ngroups < 1 || b->nseqs < b->ngroups || b->ntoks < 0 || !b->grp_seq || !b->seq_tok)
    return FAIL("batch: malformed shape (%lld groups, %lld sequences, %lld tokens)", (long long)b->ngroups,
                (long long)b->nseqs, (long long)b->ntoks);
  for (int k = 0; k < REIN_NUM_INPUTS; k++)
    if ((d->inputs_used >> k & 1) && k != REIN_IN_POS && k != REIN_IN_LEN && !b->in[k])
      return FAIL("batch: the objective reads `%s`, which the batch lacks", rein_input_name(k));
  if (d->nuinputs && !b->uin) return FAIL("batch: the objective reads user inputs, which the batch lacks");
  for (int k = 0; k < d->nuinputs; k++)
    if (!b->uin[k]) return FAIL("batch: the objective reads `%s`, which the batch lacks", d->uinputs[k].name);
  x->b = *b;
  x->stats_done = false;
  x->skipped = false;
  err[0] = 0;
  bool ok = x->ops->prepare(x, b, params, err, errlen) && run_stage(x, REIN_STAGE_PROLOGUE, 0, b->ngroups);
  if (ok) x->next_g = 0;
  return failed(x, ok, err, errlen);
}

bool rt_stat(rt_exec *x, char *err, size_t errlen) {
  if (x->next_g < 0) return FAIL("rt_stat: no step begun (rt_begin)");
  if (x->next_g > 0 || x->stats_done) return FAIL("rt_stat: must come once, before the first rt_micro");
  if (!(x->d->flags & REIN_STATS)) {
    x->stats_done = true;   /* nothing to compute */
    return true;
  }
  err[0] = 0;
  bool ok = x->ops->inputs(x, 0, x->b.ntoks, err, errlen) && run_stage(x, REIN_STAGE_STAT, 0, x->b.ngroups);
  if (ok) x->stats_done = true;
  return failed(x, ok, err, errlen);
}

bool rt_micro(rt_exec *x, int64_t g0, int64_t g1, const float *grad[2], char *err, size_t errlen) {
  if (x->next_g < 0) return FAIL("rt_micro: no step begun (rt_begin)");
  if ((x->d->flags & REIN_STATS) && !x->stats_done)
    return FAIL("rt_micro: objective `%s` has a statistics stage: call rt_stat, with logp/entropy of the whole "
                "batch, before the first micro-batch", x->d->name);
  if (g0 != x->next_g || g1 <= g0 || g1 > x->b.ngroups)
    return FAIL("rt_micro: groups [%lld, %lld) do not follow the micro-batches so far (next group %lld of %lld)",
                (long long)g0, (long long)g1, (long long)x->next_g, (long long)x->b.ngroups);
  int64_t t0 = x->b.seq_tok[x->b.grp_seq[g0]], t1 = x->b.seq_tok[x->b.grp_seq[g1]];
  err[0] = 0;
  bool ok = x->ops->inputs(x, t0, t1, err, errlen) && run_stage(x, REIN_STAGE_MICRO, g0, g1) &&
            x->ops->grads(x, t0, t1, x->grad, err, errlen);
  if (ok) {
    x->next_g = g1;
    if (grad) grad[0] = x->grad[0], grad[1] = x->grad[1];
  }
  return failed(x, ok, err, errlen);
}

bool rt_skip(rt_exec *x, int64_t g1, char *err, size_t errlen) {
  if (x->next_g < 0) return FAIL("rt_skip: no step begun (rt_begin)");
  if ((x->d->flags & REIN_STATS) && !x->stats_done)
    return FAIL("rt_skip: objective `%s` has a statistics stage: call rt_stat first", x->d->name);
  if (g1 < x->next_g || g1 > x->b.ngroups)
    return FAIL("rt_skip: group %lld is not between the next group %lld and the batch's %lld", (long long)g1,
                (long long)x->next_g, (long long)x->b.ngroups);
  if (g1 > x->next_g) x->skipped = true;
  x->next_g = g1;
  return true;
}

bool rt_end(rt_exec *x, rt_result *r, char *err, size_t errlen) {
  if (x->next_g != x->b.ngroups)
    return FAIL("rt_end: %s", x->next_g < 0 ? "no step begun (rt_begin)" : "some groups were in no micro-batch");
  if (x->skipped)
    return FAIL("rt_end: the step skipped groups (rt_skip): only the gradients of its micro-batches are valid");
  err[0] = 0;
  int64_t ngroups = x->b.ngroups;
  bool ok = x->ops->scalar(x, -1, RT_FINISH) && run_stage(x, REIN_STAGE_FINAL, 0, ngroups) &&
            x->ops->scalar(x, -1, RT_OUTPUTS) && x->ops->fetch(x, r, err, errlen);
  if (ok) {
    r->grad[0] = r->grad[1] = NULL;
    r->grad32[0] = x->grad[0], r->grad32[1] = x->grad[1];
    r->nmetrics = x->d->nmetrics, r->ntoks = x->b.ntoks;
    x->next_g = -1;
  }
  return failed(x, ok, err, errlen);
}

bool rt_run(rt_exec *x, const rt_batch *b, const double *params, int64_t micro_groups, rt_result *r, char *err,
            size_t errlen) {
  if (!rt_begin(x, b, params, err, errlen) || !rt_stat(x, err, errlen)) return false;
  int64_t step = micro_groups > 0 ? micro_groups : b->ngroups;
  for (int64_t g0 = 0; g0 < b->ngroups; g0 += step)
    if (!rt_micro(x, g0, g0 + step < b->ngroups ? g0 + step : b->ngroups, NULL, err, errlen)) return false;
  return rt_end(x, r, err, errlen);
}
