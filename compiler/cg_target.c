/* cg_target.c — from a module of entry points to machine code: links the kernel support library
 * (rk_lib.c, embedded as bitcode for both targets) and, for the GPU, libdevice; internalizes every
 * function except the entry points (rein_*), so the optimizer inlines and then drops the rest;
 * runs LLVM's O3 pipeline for the target; and emits a host object file or PTX text.
 *
 * The host target is this machine's CPU (its name and features from LLVM) unless CgOptions.cpu
 * names another; code is position-independent, for a shared object.  The GPU targets are
 * nvptx64-nvidia-cuda for sm_80 and sm_90 (PTX ISA 7.8, which both ptxas versions accept).
 */
#include <llvm-c/Analysis.h>
#include <llvm-c/BitReader.h>
#include <llvm-c/Linker.h>
#include <llvm-c/Target.h>
#include <llvm-c/TargetMachine.h>
#include <llvm-c/Transforms/PassBuilder.h>
#include <stdlib.h>
#include <string.h>

#include "cg.h"

const char *const cg_archs[] = {"sm_80", "sm_90", NULL};

/* rk_lib.c as bitcode (generated at build time by compiler/embed.cmake) */
extern const unsigned char rk_bc_host[], rk_bc_nvptx[];
extern const unsigned long rk_bc_host_len, rk_bc_nvptx_len;

static void init_targets(void) {
  static int done;
  if (done) return;
  done = 1;
  LLVMInitializeX86TargetInfo();
  LLVMInitializeX86Target();
  LLVMInitializeX86TargetMC();
  LLVMInitializeX86AsmPrinter();
  LLVMInitializeNVPTXTargetInfo();
  LLVMInitializeNVPTXTarget();
  LLVMInitializeNVPTXTargetMC();
  LLVMInitializeNVPTXAsmPrinter();
}

/* A malloc'd copy of LLVM string S (disposed), or of DFLT when S is NULL. */
static char *llvm_str(char *s, const char *dflt) {
  char *r = strdup(s ? s : dflt);
  if (s) LLVMDisposeMessage(s);
  if (!r) abort();
  return r;
}

static LLVMTargetMachineRef machine(CgTarget t, const char *arch, const CgOptions *o, char *err, size_t errlen) {
  init_targets();
  char *triple = llvm_str(t == CG_GPU ? NULL : LLVMGetDefaultTargetTriple(), "nvptx64-nvidia-cuda");
  LLVMTargetRef target;
  char *msg = NULL;
  if (LLVMGetTargetFromTriple(triple, &target, &msg)) {
    snprintf(err, errlen, "no LLVM target for %s: %s", triple, msg ? msg : "");
    LLVMDisposeMessage(msg);
    free(triple);
    return NULL;
  }
  char *cpu, *features;
  if (t == CG_GPU) {
    cpu = strdup(arch);
    features = strdup("+ptx78");
  } else if (o && o->cpu) {
    cpu = strdup(o->cpu);
    features = strdup("");
  } else {
    cpu = llvm_str(LLVMGetHostCPUName(), "");
    features = llvm_str(LLVMGetHostCPUFeatures(), "");
  }
  LLVMTargetMachineRef tm = LLVMCreateTargetMachine(target, triple, cpu, features, LLVMCodeGenLevelAggressive,
                                                    LLVMRelocPIC, LLVMCodeModelDefault);
  free(triple);
  free(cpu);
  free(features);
  if (!tm) snprintf(err, errlen, "cannot create the LLVM target machine");
  return tm;
}

static bool link_bitcode(LLVMModuleRef m, const void *data, size_t len, const char *what, char *err, size_t errlen) {
  LLVMMemoryBufferRef buf = LLVMCreateMemoryBufferWithMemoryRangeCopy(data, len, what);
  LLVMModuleRef lib;
  if (LLVMParseBitcodeInContext2(LLVMGetModuleContext(m), buf, &lib)) {
    LLVMDisposeMemoryBuffer(buf);
    snprintf(err, errlen, "cannot read %s", what);
    return false;
  }
  LLVMDisposeMemoryBuffer(buf);
  /* the library's functions take the target's CPU and features from the module they join, and
   * are inlined into the kernels (rk_lib.c is written for that) */
  if (!strncmp(what, "the kernel library", 18)) {
    unsigned kind = LLVMGetEnumAttributeKindForName("alwaysinline", 12);
    LLVMAttributeRef always = LLVMCreateEnumAttribute(LLVMGetModuleContext(m), kind, 0);
    for (LLVMValueRef f = LLVMGetFirstFunction(lib); f; f = LLVMGetNextFunction(f)) {
      if (LLVMIsDeclaration(f)) continue;
      static const char *const strip[] = {"target-cpu", "target-features", "tune-cpu"};
      for (int k = 0; k < 3; k++)
        LLVMRemoveStringAttributeAtIndex(f, LLVMAttributeFunctionIndex, strip[k], (unsigned)strlen(strip[k]));
      unsigned nk = LLVMGetEnumAttributeKindForName("noinline", 8);
      LLVMRemoveEnumAttributeAtIndex(f, LLVMAttributeFunctionIndex, nk);
      LLVMAddAttributeAtIndex(f, LLVMAttributeFunctionIndex, always);
    }
  }
  LLVMSetTarget(lib, LLVMGetTarget(m));
  LLVMSetDataLayout(lib, LLVMGetDataLayoutStr(m));
  if (LLVMLinkModules2(m, lib)) {
    snprintf(err, errlen, "cannot link %s", what);
    return false;
  }
  return true;
}

static bool link_file(LLVMModuleRef m, const char *path, char *err, size_t errlen) {
  LLVMMemoryBufferRef buf;
  char *msg = NULL;
  if (LLVMCreateMemoryBufferWithContentsOfFile(path, &buf, &msg)) {
    snprintf(err, errlen, "cannot read libdevice %s: %s (install the CUDA toolkit at /usr/local/cuda)", path,
             msg ? msg : "");
    LLVMDisposeMessage(msg);
    return false;
  }
  bool ok = link_bitcode(m, LLVMGetBufferStart(buf), LLVMGetBufferSize(buf), path, err, errlen);
  LLVMDisposeMemoryBuffer(buf);
  return ok;
}

static bool exported(const char *name) { return !strncmp(name, "rein_", 5); }

/* Everything but the entry points and the descriptor becomes internal; the optimizer inlines
 * the support routines and drops what no entry point uses. */
static void internalize(LLVMModuleRef m) {
  for (LLVMValueRef f = LLVMGetFirstFunction(m); f; f = LLVMGetNextFunction(f)) {
    size_t n;
    const char *name = LLVMGetValueName2(f, &n);
    if (!LLVMIsDeclaration(f) && !exported(name)) LLVMSetLinkage(f, LLVMInternalLinkage);
  }
  for (LLVMValueRef v = LLVMGetFirstGlobal(m); v; v = LLVMGetNextGlobal(v)) {
    size_t n;
    const char *name = LLVMGetValueName2(v, &n);
    if (!LLVMIsDeclaration(v) && !exported(name) && LLVMGetLinkage(v) != LLVMPrivateLinkage)
      LLVMSetLinkage(v, LLVMInternalLinkage);
  }
}

/* NVPTX before LLVM 20 finds kernels through !nvvm.annotations as well as the calling
 * convention; both are set. */
static void annotate_kernels(LLVMModuleRef m) {
  LLVMContextRef cx = LLVMGetModuleContext(m);
  for (LLVMValueRef f = LLVMGetFirstFunction(m); f; f = LLVMGetNextFunction(f)) {
    if (LLVMGetFunctionCallConv(f) != LLVMPTXKernelCallConv) continue;
    LLVMMetadataRef md[3] = {LLVMValueAsMetadata(f), LLVMMDStringInContext2(cx, "kernel", 6),
                             LLVMValueAsMetadata(LLVMConstInt(LLVMInt32TypeInContext(cx), 1, 0))};
    LLVMAddNamedMetadataOperand(m, "nvvm.annotations", LLVMMetadataAsValue(cx, LLVMMDNodeInContext2(cx, md, 3)));
  }
}

bool cg_finish_module(LLVMModuleRef m, CgTarget t, const char *arch, const CgOptions *o, char *err, size_t errlen) {
  LLVMTargetMachineRef tm = machine(t, arch, o, err, errlen);
  if (!tm) return false;
  char *triple = LLVMGetTargetMachineTriple(tm);
  LLVMSetTarget(m, triple);
  LLVMDisposeMessage(triple);
  LLVMTargetDataRef td = LLVMCreateTargetDataLayout(tm);
  char *dl = LLVMCopyStringRepOfTargetData(td);
  LLVMSetDataLayout(m, dl);
  LLVMDisposeMessage(dl);
  LLVMDisposeTargetData(td);
  bool ok = t == CG_GPU ? link_bitcode(m, rk_bc_nvptx, rk_bc_nvptx_len, "the kernel library (nvptx)", err, errlen) &&
                              link_file(m, REIN_LIBDEVICE, err, errlen)
                        : link_bitcode(m, rk_bc_host, rk_bc_host_len, "the kernel library (host)", err, errlen);
  if (ok) {
    internalize(m);
    if (t == CG_GPU) {
      annotate_kernels(m);
      /* libdevice asks __nvvm_reflect whether to flush denormals: no */
      LLVMContextRef cx = LLVMGetModuleContext(m);
      LLVMAddModuleFlag(m, LLVMModuleFlagBehaviorOverride, "nvvm-reflect-ftz", 16,
                        LLVMValueAsMetadata(LLVMConstInt(LLVMInt32TypeInContext(cx), 0, 0)));
    }
    char *msg = NULL;
    if (LLVMVerifyModule(m, LLVMReturnStatusAction, &msg)) {
      snprintf(err, errlen, "internal error: the generated module does not verify: %s", msg);
      ok = false;
    }
    LLVMDisposeMessage(msg);
  }
  if (ok) {
    LLVMPassBuilderOptionsRef po = LLVMCreatePassBuilderOptions();
    const char *pipeline = o && o->no_opt ? "globaldce" : "default<O3>";
    LLVMErrorRef e = LLVMRunPasses(m, pipeline, tm, po);
    if (e) {
      char *msg = LLVMGetErrorMessage(e);
      snprintf(err, errlen, "LLVM pipeline failed: %s", msg);
      LLVMDisposeErrorMessage(msg);
      ok = false;
    }
    LLVMDisposePassBuilderOptions(po);
  }
  LLVMDisposeTargetMachine(tm);
  return ok;
}

char *cg_emit_ptx(LLVMModuleRef m, const char *arch, char *err, size_t errlen) {
  LLVMTargetMachineRef tm = machine(CG_GPU, arch, NULL, err, errlen);
  if (!tm) return NULL;
  LLVMMemoryBufferRef buf = NULL;
  char *msg = NULL;
  char *ptx = NULL;
  if (LLVMTargetMachineEmitToMemoryBuffer(tm, m, LLVMAssemblyFile, &msg, &buf)) {
    snprintf(err, errlen, "PTX emission failed: %s", msg ? msg : "");
    LLVMDisposeMessage(msg);
  } else {
    size_t n = LLVMGetBufferSize(buf);
    ptx = malloc(n + 1);
    if (!ptx) abort();
    memcpy(ptx, LLVMGetBufferStart(buf), n);
    ptx[n] = 0;
    LLVMDisposeMemoryBuffer(buf);
  }
  LLVMDisposeTargetMachine(tm);
  return ptx;
}

bool cg_emit_object(LLVMModuleRef m, const CgOptions *o, const char *path, char *err, size_t errlen) {
  LLVMTargetMachineRef tm = machine(CG_CPU, NULL, o, err, errlen);
  if (!tm) return false;
  char *msg = NULL;
  bool ok = !LLVMTargetMachineEmitToFile(tm, m, path, LLVMObjectFile, &msg);
  if (!ok) snprintf(err, errlen, "cannot write the object file %s: %s", path, msg ? msg : "");
  LLVMDisposeMessage(msg);
  LLVMDisposeTargetMachine(tm);
  return ok;
}
