/* cg_artifact.c — `rein compile`: the shared object of an objective.  One host module holds the
 * native entry points, the PTX text of the GPU module for each architecture (as strings) and the
 * descriptor `rein_objective` (rein/objective.h) pointing at all of it; it is emitted as an
 * object file and linked into a shared object by the system C compiler driver ($REIN_CC, else
 * cc).  The output is written to a temporary name in the same directory and renamed, so an
 * existing artifact is replaced whole or not at all.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "rein/objective.h"
#include "cg.h"
#include "rein/common.h"

extern char **environ;

typedef struct {
  LLVMContextRef cx;
  LLVMModuleRef m;
  LLVMTypeRef i32, i64, f64, ptr;
  int nstr;
} Desc;

static LLVMValueRef str(Desc *d, const char *s) {
  char name[32];
  snprintf(name, sizeof name, ".rein.str%d", d->nstr++);
  LLVMValueRef init = LLVMConstStringInContext(d->cx, s, (unsigned)strlen(s), 0);
  LLVMValueRef g = LLVMAddGlobal(d->m, LLVMTypeOf(init), name);
  LLVMSetInitializer(g, init);
  LLVMSetGlobalConstant(g, 1);
  LLVMSetLinkage(g, LLVMPrivateLinkage);
  return g;
}

static LLVMValueRef array(Desc *d, LLVMTypeRef t, LLVMValueRef *v, int n, const char *name) {
  if (n == 0) return LLVMConstNull(d->ptr);
  LLVMValueRef init = LLVMConstArray2(t, v, (uint64_t)n);
  LLVMValueRef g = LLVMAddGlobal(d->m, LLVMTypeOf(init), name);
  LLVMSetInitializer(g, init);
  LLVMSetGlobalConstant(g, 1);
  LLVMSetLinkage(g, LLVMPrivateLinkage);
  return g;
}

static LLVMValueRef i32c(Desc *d, long v) { return LLVMConstInt(d->i32, (unsigned long long)v, 1); }

static LLVMValueRef fnref(Desc *d, const char *name) {
  LLVMValueRef f = LLVMGetNamedFunction(d->m, name);
  return f ? f : LLVMConstNull(d->ptr);
}

/* Adds the descriptor to host module M of layout L, with PTX[a] for cg_archs[a]. */
static void add_descriptor(Desc *d, const CgLayout *l, char **ptx, int narchs) {
  const IrGraph *g = l->p->g;
  LLVMContextRef cx = d->cx;
  /* params */
  LLVMTypeRef pt_f[4] = {d->ptr, d->f64, d->i32, d->i32};
  LLVMTypeRef param_t = LLVMStructTypeInContext(cx, pt_f, 4, 0);
  LLVMValueRef *pv = ir_xcalloc((size_t)g->nparams + 1, sizeof *pv);
  for (int i = 0; i < g->nparams; i++) {
    int update = -1;
    for (int m = 0; m < g->nmetrics; m++)
      if (g->metrics[m].state == i) update = m;
    LLVMValueRef f[4] = {str(d, g->params[i].name), LLVMConstReal(d->f64, g->params[i].value),
                         i32c(d, g->params[i].kind), i32c(d, update)};
    pv[i] = LLVMConstStructInContext(cx, f, 4, 0);
  }
  /* user inputs */
  LLVMTypeRef ut_f[2] = {d->ptr, d->i64};
  LLVMTypeRef uin_t = LLVMStructTypeInContext(cx, ut_f, 2, 0);
  LLVMValueRef *uv = ir_xcalloc((size_t)g->nuinputs + 1, sizeof *uv);
  for (int i = 0; i < g->nuinputs; i++) {
    LLVMValueRef f[2] = {str(d, g->uinputs[i].name), LLVMConstInt(d->i64, (unsigned long long)g->uinputs[i].level, 0)};
    uv[i] = LLVMConstStructInContext(cx, f, 2, 0);
  }
  /* metrics */
  LLVMValueRef *mv = ir_xcalloc((size_t)g->nmetrics + 1, sizeof *mv);
  for (int i = 0; i < g->nmetrics; i++) mv[i] = str(d, g->metrics[i].name);
  /* passes */
  LLVMTypeRef ps_f[8] = {d->i32, d->i32, d->i32, d->i32, d->ptr, d->ptr, d->ptr, d->ptr};
  LLVMTypeRef pass_t = LLVMStructTypeInContext(cx, ps_f, 8, 0);
  int np = cg_npasses(l);
  LLVMValueRef *sv = ir_xcalloc((size_t)np + 1, sizeof *sv);
  for (int k = 0; k < np; k++) {
    int stage, loop, flags;
    cg_pass_info(l, k, &stage, &loop, &flags);
    LLVMValueRef f[8] = {i32c(d, stage), i32c(d, loop), i32c(d, flags), i32c(d, k)};
    for (int e = 0; e < REIN_NUM_ENTRIES; e++) {
      char name[32];
      f[4 + e] = fnref(d, rein_entry_name(name, k, e));
    }
    sv[k] = LLVMConstStructInContext(cx, f, 8, 0);
  }
  /* inputs read, flags */
  bool used_in[IN_COUNT] = {0}, uses_uniform = false;
  uint32_t inputs = 0, flags = 0;
  for (int i = 0; i < g->nn; i++) {
    if (g->n[i].op == IR_INPUT) used_in[g->n[i].idx] = true;
    if (g->n[i].op == IR_UNIFORM) uses_uniform = true;
  }
  for (int k = 0; k < IN_COUNT; k++)
    if (used_in[k]) inputs |= 1u << k;
  if (uses_uniform) flags |= REIN_USES_UNIFORM;
  if (l->p->final_sweep) flags |= REIN_FINAL_SWEEP;
  if (l->p->stats) flags |= REIN_STATS;
  if (g->grad[IR_GRAD_LOGP] >= 0) flags |= REIN_GRAD_LOGP;
  if (g->grad[IR_GRAD_ENTROPY] >= 0) flags |= REIN_GRAD_ENTROPY;
  LLVMValueRef archs[CG_NARCHS], ptxs[CG_NARCHS];
  for (int a = 0; a < narchs; a++) {
    archs[a] = str(d, cg_archs[a]);
    ptxs[a] = str(d, ptx[a]);
  }
  LLVMValueRef f[24] = {
      LLVMConstInt(d->i32, REIN_MAGIC, 0), i32c(d, REIN_ABI_VERSION), str(d, g->objective),
      str(d, g->desc ? g->desc : ""), i32c(d, g->nparams), i32c(d, g->nuinputs), i32c(d, g->nmetrics), i32c(d, np),
      array(d, param_t, pv, g->nparams, ".rein.params"), array(d, uin_t, uv, g->nuinputs, ".rein.uinputs"),
      array(d, d->ptr, mv, g->nmetrics, ".rein.metrics"), array(d, pass_t, sv, np, ".rein.passes"),
      LLVMConstInt(d->i32, inputs, 0), LLVMConstInt(d->i32, flags, 0), i32c(d, l->narrays[LV_TOKEN]),
      i32c(d, l->narrays[LV_SEQ]), i32c(d, l->narrays[LV_GROUP]), i32c(d, l->narrays[LV_BATCH]), i32c(d, l->nred),
      i32c(d, narchs), fnref(d, REIN_FINISH_NAME), fnref(d, REIN_OUTPUTS_NAME),
      array(d, d->ptr, archs, narchs, ".rein.archs"), array(d, d->ptr, ptxs, narchs, ".rein.ptx")};
  LLVMTypeRef ft[24];
  for (int k = 0; k < 24; k++) ft[k] = LLVMTypeOf(f[k]);
  LLVMValueRef init = LLVMConstStructInContext(cx, f, 24, 0);
  LLVMValueRef gd = LLVMAddGlobal(d->m, LLVMStructTypeInContext(cx, ft, 24, 0), REIN_SYMBOL);
  LLVMSetInitializer(gd, init);
  LLVMSetGlobalConstant(gd, 1);
  free(pv);
  free(uv);
  free(mv);
  free(sv);
}

/* Runs ARGV, waiting; its output goes to ERR's descriptor.  True on exit status 0. */
static bool run(char *const *argv, FILE *err) {
  fflush(err);
  pid_t pid;
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, fileno(err), 1);
  int rc = posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ);
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0) {
    fprintf(err, "rein: error: cannot run `%s`: %s (set REIN_CC to a C compiler driver)\n", argv[0], strerror(rc));
    return false;
  }
  int st;
  while (waitpid(pid, &st, 0) < 0)
    if (errno != EINTR) return false;
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
    fprintf(err, "rein: error: `%s` failed linking\n", argv[0]);
    return false;
  }
  return true;
}

/* Adds `int main(int argc, char **argv) { return trn_standalone_main(argc, argv, &rein_objective); }`
 * to host module M (rein/train.h): the entry point of a standalone trainer. */
static void add_main(LLVMContextRef cx, LLVMModuleRef m) {
  LLVMTypeRef i32 = LLVMInt32TypeInContext(cx), ptr = LLVMPointerTypeInContext(cx, 0);
  LLVMTypeRef mt = LLVMFunctionType(i32, (LLVMTypeRef[]){i32, ptr}, 2, 0);
  LLVMTypeRef tt = LLVMFunctionType(i32, (LLVMTypeRef[]){i32, ptr, ptr}, 3, 0);
  LLVMValueRef mainf = LLVMAddFunction(m, "main", mt);
  LLVMValueRef tm = LLVMAddFunction(m, "trn_standalone_main", tt);
  LLVMBuilderRef b = LLVMCreateBuilderInContext(cx);
  LLVMPositionBuilderAtEnd(b, LLVMAppendBasicBlockInContext(cx, mainf, "entry"));
  LLVMValueRef args[] = {LLVMGetParam(mainf, 0), LLVMGetParam(mainf, 1), LLVMGetNamedGlobal(m, REIN_SYMBOL)};
  LLVMBuildRet(b, LLVMBuildCall2(b, tt, tm, args, 3, "rc"));
  LLVMDisposeBuilder(b);
}

/* The link line of a standalone trainer: the runtime's static libraries from the build tree or
 * the install prefix (rein_paths.h) and their system dependencies (rein_link.h, generated by
 * runtime/CMakeLists.txt). */
#include "rein_link.h"
#include "rein_paths.h"

static bool build(const Plan *p, const char *out, const CgOptions *o, FILE *err, bool exe);

bool cg_compile(const Plan *p, const char *out, const CgOptions *o, FILE *err) { return build(p, out, o, err, false); }

bool cg_build_trainer(const Plan *p, const char *out, const CgOptions *o, FILE *err) {
  return build(p, out, o, err, true);
}

static bool build(const Plan *p, const char *out, const CgOptions *o, FILE *err, bool exe) {
  CgLayout l;
  cg_layout(&l, p);
  char msg[1024] = "";
  bool ok = true;
  char *ptx[CG_NARCHS] = {0};
  LLVMContextRef cx = LLVMContextCreate();
  /* the GPU module, once per architecture */
  int narchs = o && o->no_ptx ? 0 : CG_NARCHS;
  if (narchs && access(REIN_LIBDEVICE, R_OK) != 0) {
    /* without the CUDA toolkit the artifact still runs on the CPU */
    fprintf(err, "rein: warning: %s not found (no CUDA toolkit): the objective gets no PTX and runs on the "
                 "CPU only\n", REIN_LIBDEVICE);
    narchs = 0;
  }
  for (int a = 0; ok && a < narchs; a++) {
    LLVMModuleRef gm = cg_module(cx, &l, CG_GPU, o);
    ok = cg_finish_module(gm, CG_GPU, cg_archs[a], o, msg, sizeof msg) &&
         (ptx[a] = cg_emit_ptx(gm, cg_archs[a], msg, sizeof msg)) != NULL;
    LLVMDisposeModule(gm);
  }
  LLVMModuleRef m = ok ? cg_module(cx, &l, CG_CPU, o) : NULL;
  if (ok) {
    Desc d = {cx, m, LLVMInt32TypeInContext(cx), LLVMInt64TypeInContext(cx), LLVMDoubleTypeInContext(cx),
              LLVMPointerTypeInContext(cx, 0), 0};
    add_descriptor(&d, &l, ptx, narchs);
    ok = cg_finish_module(m, CG_CPU, NULL, o, msg, sizeof msg);
    if (ok && exe) add_main(cx, m);
  }
  /* temporaries next to OUT, so the rename cannot cross file systems */
  size_t n = strlen(out) + 32;
  char *obj = rc_malloc(n), *tmp = rc_malloc(n);
  snprintf(obj, n, "%s.%d.o", out, (int)getpid());
  snprintf(tmp, n, "%s.%d.tmp", out, (int)getpid());
  if (ok) ok = cg_emit_object(m, o, obj, msg, sizeof msg);
  if (!ok && msg[0]) fprintf(err, "rein: error: %s\n", msg);
  if (ok && !exe) {
    const char *cc = getenv("REIN_CC");
    char *argv[] = {(char *)(cc && *cc ? cc : "cc"), "-shared", "-o", tmp, obj, "-Wl,-z,noexecstack", NULL};
    ok = run(argv, err);
  } else if (ok) {
    /* the compiler that built the runtime libraries links them (sanitizer runtimes included) */
    /* the runtime's libraries from the build tree or the install prefix (rein_paths.h) */
    const char *cc = getenv("REIN_CC");
    const char *libs[16], *sys[] = {REIN_TRAINER_SYSLIBS};
    int nl = rp_trainer_libs(libs, 16);
    size_t ns = sizeof sys / sizeof sys[0];
    char **argv = rc_calloc((size_t)nl + ns + 8, sizeof *argv);
    int k = 0;
    argv[k++] = (char *)(cc && *cc ? cc : REIN_TRAINER_CC);
    argv[k++] = "-o";
    argv[k++] = tmp;
    argv[k++] = obj;
    for (int i = 0; i < nl; i++) argv[k++] = (char *)libs[i];
    for (size_t i = 0; i < ns; i++) argv[k++] = (char *)sys[i];
    argv[k++] = "-Wl,-z,noexecstack";
    ok = run(argv, err);
    free(argv);
  }
  if (ok && rename(tmp, out) != 0) {
    fprintf(err, "rein: error: cannot write %s: %s\n", out, strerror(errno));
    ok = false;
  }
  unlink(obj);
  unlink(tmp);
  free(obj);
  free(tmp);
  if (m) LLVMDisposeModule(m);
  LLVMContextDispose(cx);
  for (int a = 0; a < CG_NARCHS; a++) free(ptx[a]);
  cg_layout_free(&l);
  return ok;
}
