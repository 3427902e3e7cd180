/* cg.h — the back ends: a plan becomes an LLVM module (cg.c), which is linked with the kernel
 * support library and optimized for the host CPU or NVPTX (cg_target.c), and packaged with its
 * descriptor and PTX as a shared object (cg_artifact.c).  The ABI is runtime/include/rein/
 * objective.h.  Evaluating a plan on a batch (the interpreter, the runtime's executors) is
 * cg_eval.h's, apart from the code generator's files.
 */
#ifndef REIN_CG_H
#define REIN_CG_H

#include <llvm-c/Core.h>
#include <stdio.h>

#include "plan.h"
/* Evaluation (batch.h, interp.h, rein/backend.h, the loader) is cg_eval.h's. */

typedef enum { CG_CPU, CG_GPU } CgTarget;

/* ---- cg_layout.c ---- */
/* Where every value lives between passes: the "memory plan" of the objective. */
typedef struct {
  const Plan *p;
  int *store;    /* per node: index of its array at its level (token/seq/group), or its slot
                    (batch level); -1 when it lives only in registers */
  int *red;      /* per node: index of its running state (batch-level reductions), else -1 */
  int *first;    /* per node: the first plan pass computing it, which stores it (a later pass that
                    computes it again, rematerialized, does not: the array already holds it), or -1 */
  bool *report;  /* per node: its value reaches the loss and metrics only (no gradient, no value
                    a gradient or a state update depends on): how exactly it is summed changes no
                    update */
  bool *xread;   /* per node: some pass reads its array without computing it (or the synthetic
                    pass writes it as a gradient); a scan that is not xread lives in a buffer in
                    each pass that computes it, on the CPU (cg.c, early_sweep) */
  int *thr;      /* per node: for ranklt[batch], the first of 3 slots that hold its threshold on the
                    CPU (cg_ranklt_thr, rk_rank_thr), else -1 */
  int narrays[LV_COUNT]; /* arrays per level; narrays[LV_BATCH] is the number of slots */
  int nred;
  int gradpass;  /* 1 when a synthetic pass writes gradients that are prologue or data values */
} CgLayout;

void cg_layout(CgLayout *l, const Plan *p);
void cg_layout_free(CgLayout *l);

/* True when gradient output node I is written by the synthetic pass (not computed by a micro
 * pass: a prologue or data value). */
bool cg_grad_synthetic(const Plan *p, int i);
/* The number of passes in the artifact: the plan's, plus the synthetic gradient pass. */
int cg_npasses(const CgLayout *l);
/* Stage, loop level and REIN_PASS_* flags of artifact pass K. */
void cg_pass_info(const CgLayout *l, int k, int *stage, int *loop, int *flags);

/* The code generator's options (rein compile / emit flags). */
typedef struct {
  const char *cpu;        /* host CPU name for the CPU target; NULL: this machine's */
  bool no_opt;            /* skip the optimization pipeline (rein emit --llvm -O0) */
  bool no_ptx;            /* an artifact without PTX (host code only; faster to build) */
  bool f64;               /* --precision f64: token loops in float64 too (the default, false,
                             computes token-level element-wise values in float32 on the CPU) */
} CgOptions;

/* ---- cg.c (with cg_value.c) ---- */
/* Builds the module of the objective for target T in context CX: every entry point named in
 * rein/objective.h, calling rk_* routines that cg_link_support provides.  O->f64: all arithmetic
 * in float64; otherwise (CPU only; the GPU is always float64) the token-level element-wise values
 * are computed in float32, and every reduction, and every coarser value, in float64; O->cpu sets
 * the width of the float token loops (cg_float_lanes). */
LLVMModuleRef cg_module(LLVMContextRef cx, const CgLayout *l, CgTarget t, const CgOptions *o);

/* ---- cg_target.c ---- */
/* The lanes of a float token loop that computes exp, log or sigmoid: 16 (a 512-bit vector) on
 * this machine when its CPU has AVX-512 (LLVMGetHostCPUFeatures lists +avx512f), else 8 (256
 * bits).  A CPU named by O->cpu gets 8: the LLVM C API does not tell a named CPU's features.
 * Measured (docs/performance.md): 16 lanes make GRPO's token loop 1.2-1.3x faster on AVX-512;
 * on AVX2 they are no faster than 8. */
int cg_float_lanes(const CgOptions *o);
/* Is the host (the CPU target's triple) x86-64?  Its synthetic gradient pass writes whole cache
 * lines with non-temporal stores (cg.c, fill_grad), and so do its micro passes' token loops
 * (cg.c, nt_tokens). */
bool cg_host_x86(void);
/* A function whose token loops' gradient stores, once widened, are to be made non-temporal: its
 * string attribute CG_NT_ATTR gives the lanes (a vector of them is aligned by construction), and
 * the stores carry the alias scope cg_nt_scope (which no other access names: it changes no alias
 * query, and the loop vectorizer keeps it on the widened store).  cg_finish_module marks them. */
#define CG_NT_ATTR "rein-nt-grads"
LLVMMetadataRef cg_nt_scope(LLVMContextRef cx);

/* Links the support library (and libdevice for the GPU) into M, internalizes everything but the
 * entry points and optimizes for T (ARCH: "sm_80"/"sm_90" for the GPU).  False with a message
 * in ERR (size ERRLEN) on failure. */
bool cg_finish_module(LLVMModuleRef m, CgTarget t, const char *arch, const CgOptions *o, char *err,
                      size_t errlen);
/* PTX text of M for ARCH (malloc'd), or NULL with ERR. */
char *cg_emit_ptx(LLVMModuleRef m, const char *arch, char *err, size_t errlen);
/* Writes M as a host object file to PATH. */
bool cg_emit_object(LLVMModuleRef m, const CgOptions *o, const char *path, char *err, size_t errlen);
/* libdevice, the CUDA toolkit's math library (PTX needs it; without it artifacts are CPU-only). */
#ifndef REIN_LIBDEVICE
#define REIN_LIBDEVICE "/usr/local/cuda/nvvm/libdevice/libdevice.10.bc"
#endif
/* The GPU architectures every artifact carries. */
extern const char *const cg_archs[];
#define CG_NARCHS 2

/* ---- cg_artifact.c ---- */
/* Compiles plan P to the shared object OUT (written to a temporary name, then renamed).  Messages
 * go to ERR.  False on failure. */
bool cg_compile(const Plan *p, const char *out, const CgOptions *o, FILE *err);
/* The same linked, with a main() and the runtime's static libraries, into the standalone trainer
 * executable OUT (rein/train.h; no LLVM in it). */
bool cg_build_trainer(const Plan *p, const char *out, const CgOptions *o, FILE *err);

#endif
