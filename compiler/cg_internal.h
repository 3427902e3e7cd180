/* cg_internal.h — what the files of the LLVM code generator share; not part of cg.h's interface.
 *
 * The lowering of a plan to LLVM IR is three files, and calls go one way only (down this list):
 *
 *   cg.c         the module: one function per entry point of rein/objective.h, the loop nest of
 *                a pass's sweep and the layout of each level's body, rank/argmax/argmin, the
 *                stores between passes and the gradient writes, thread 0 guards and barriers
 *   cg_value.c   one value at the current element: ctx fields, index ranges, loads of inputs and
 *                stored values, the element-wise ops (the `code` column of ops.h), reduction
 *                states (start, accumulate, finish, block-wide merge)
 *   cg_layout.c  the memory plan (cg_layout: which values are stored, where) and the facts about
 *                each pass (phases, entry points, flags); no LLVM
 *
 * The emitter's state is one Cg, owned by cg_module for the duration of one module.  cg.c sets
 * the current function (cg.c's fn_begin), pass and element indices (ix); cg_value.c emits at the
 * builder's position and reads them.
 */
#ifndef REIN_CG_INTERNAL_H
#define REIN_CG_INTERNAL_H

#include "cg.h"

#include "rein/objective.h"

/* ---- cg_layout.c ---- */

/* Phase of a node in its pass: post when it needs a reduction that closes at its own level. */
enum { PH_PRE, PH_POST };

/* Sets PHASE[i] (an array of g->nn, indexed by node) to PH_PRE or PH_POST for every node i of
 * pass PS; other entries are left as they are. */
void cg_phases(const CgLayout *l, const PlPass *ps, char *phase);

/* ---- the emitter's state ---- */
typedef struct {
  LLVMContextRef cx;
  LLVMModuleRef m;
  LLVMBuilderRef b;   /* the code */
  LLVMBuilderRef eb;  /* the entry block: allocas and loads of ctx fields */
  bool gpu;
  bool tok_f32;       /* token-level element-wise values in float (CPU, CgOptions.f64 false) */
  int tok_lanes;      /* the width of a float token loop with exp/log/sigmoid (cg_float_lanes) */
  bool nt_fill;       /* coarser-level gradients are written by fill_grad (CPU, x86 host) */
  const CgLayout *l;
  const IrGraph *g;
  LLVMTypeRef f64, f32, i32, i64, i1, ptr, vd;
  /* the current function */
  LLVMValueRef fn, ctx;
  LLVMBasicBlockRef entry;
  LLVMValueRef field[REIN_CTX_WORDS];  /* loaded ctx words, lazily */
  LLVMValueRef ix[LV_COUNT];           /* the current group, sequence, token (i64) */
  LLVMValueRef *val;                   /* per node: its value in this function (same pass) */
  LLVMValueRef *acc;                   /* per reduction node: its state (alloca [3 x double]) */
  LLVMValueRef *part;                  /* per reduction node: its block partial (cg_in_block) */
  LLVMValueRef *sbuf, sbuf_lo;         /* per early scan in a buffer: its base at the current
                                          sequence, whose first token is sbuf_lo (cg.c,
                                          early_sweep; cg_store_addr reads it) */
  LLVMValueRef tid, ntid;              /* GPU: thread index and count (i64); CPU: 0 and 1 */
  /* the current pass */
  const PlPass *ps;
  int pass_index;
  char *phase;
  Level par;        /* the level split among threads; LV_COUNT when none */
  bool write_grads; /* this pass writes gradients (the micro stage) */
  bool fill_used;   /* this function has non-temporal stores (it ends with a fence) */
  bool nt_grads;    /* the current token loop's gradient stores are marked for them (nt_tokens) */
} Cg;

/* Constants, and the few one-instruction helpers both files use. */
static inline LLVMValueRef cf(Cg *c, double v) { return LLVMConstReal(c->f64, v); }
static inline LLVMValueRef ci64(Cg *c, long long v) { return LLVMConstInt(c->i64, (unsigned long long)v, 1); }
static inline LLVMValueRef ci32(Cg *c, int v) { return LLVMConstInt(c->i32, (unsigned long long)v, 1); }
static inline LLVMValueRef gep(Cg *c, LLVMTypeRef t, LLVMValueRef base, LLVMValueRef i) {
  return LLVMBuildGEP2(c->b, t, base, &i, 1, "");
}
static inline LLVMValueRef add1(Cg *c, LLVMValueRef v) { return LLVMBuildAdd(c->b, v, ci64(c, 1), ""); }
/* bool (i1) to 0.0/1.0; a double compared with 0 (true when nonzero, NaN included) */
static inline LLVMValueRef b2f(Cg *c, LLVMValueRef b) { return LLVMBuildSelect(c->b, b, cf(c, 1), cf(c, 0), ""); }
static inline LLVMValueRef fcmp(Cg *c, LLVMRealPredicate p, LLVMValueRef x, LLVMValueRef y) {
  return LLVMBuildFCmp(c->b, p, x, y, "");
}
static inline LLVMValueRef nz(Cg *c, LLVMValueRef x) { return fcmp(c, LLVMRealUNE, x, cf(c, 0)); }

/* ---- cg_value.c ---- */

/* The function NAME of the module, declared with type RET(ARGS[N]) if it is not there yet. */
LLVMValueRef cg_fn_decl(Cg *c, const char *name, LLVMTypeRef ret, LLVMTypeRef *args, int n);
/* A call of NAME (declared from the types of ARGS[N], N <= 8) returning RET, at the builder. */
LLVMValueRef cg_call(Cg *c, const char *name, LLVMTypeRef ret, LLVMValueRef *args, int n);
/* ctx word K (REIN_CTX_*) as a pointer (ISPTR) or an i64, loaded once per function in the entry
 * block. */
LLVMValueRef cg_field(Cg *c, int k, bool isptr);
/* The first sequence of group GI, the first token of sequence S (i64; GI + 1 and S + 1 give the
 * ends). */
LLVMValueRef cg_grp_seq(Cg *c, LLVMValueRef gi);
LLVMValueRef cg_seq_tok(Cg *c, LLVMValueRef s);
/* The range [*lo, *hi) of elements of level E inside the current element of level R (c->ix[R];
 * R = batch: the current view, groups g0..g1 of ctx). */
void cg_span(Cg *c, Level R, Level E, LLVMValueRef *lo, LLVMValueRef *hi);

/* The float array of input or user-input node N (not pos or len, which are computed). */
LLVMValueRef cg_input_array(Cg *c, const IrNode *n);
/* Is node I one of pass PS's nodes (cg_layout.c)? */
bool cg_in_pass(const PlPass *ps, int i);
/* The address of stored node I (c->l->store[i] >= 0) at element *ELT_INDEX of its level, or at
 * the current one (c->ix) when ELT_INDEX is NULL; batch-level values are slots. */
LLVMValueRef cg_store_addr(Cg *c, int i, LLVMValueRef *elt_index);
/* Does ranklt node I read its argument in place: on the CPU, an array of the argument's level that
 * an earlier pass stored, the elements of the rlevel's element in a row (cg.c, sibling)? */
bool cg_ranklt_in_place(const Cg *c, int i);
/* The first of the 3 slots of ranklt[batch] node I's threshold when it has one: read in place,
 * rk_rank_thr writes the threshold and no marks, and every read of the mask compares the argument
 * with it (cg_get); else -1. */
int cg_ranklt_thr(const Cg *c, int i);
/* The value of node I at the current element: computed in this function (c->val), a leaf (const,
 * param, input, uniform, unfiltered count), or loaded from where an earlier pass stored it. */
LLVMValueRef cg_get(Cg *c, int i);
/* Computes element-wise node I from its arguments' values (cg_get) into c->val[i]. */
void cg_compute(Cg *c, int i);

/* The kernel library's reduction (RkOp) of reduction op OP. */
int cg_rk_op(IrOp op);
/* Reduction I's state c->acc[i] in the entry block (not initialized): an alloca [3 x double]. */
void cg_new_state(Cg *c, int i);
/* Reduction I's state := empty. */
void cg_state_zero(Cg *c, int i);
/* DST := SRC (3 doubles each). */
void cg_st_copy(Cg *c, LLVMValueRef dst, LLVMValueRef src);
/* Feeds the current element into reduction I's state c->acc[i] (value and filter by cg_get). */
void cg_accumulate(Cg *c, int i);
/* The value of reduction node N from its state ST. */
LLVMValueRef cg_finish(Cg *c, const IrNode *n, LLVMValueRef st);
/* GPU: merges the block's per-thread states of reduction I (c->acc[i]) into each thread's. */
void cg_block_reduce(Cg *c, int i);

/* Is node I a reduction accumulated block by block (cg_value.c: a sum, mean or count over the tokens of
 * a float32 token loop whose value goes to the loss and metrics only, summed in float; a variance
 * or standard deviation over tokens, by shifted sums; CPU only)?  cg.c then cuts the token loop
 * into blocks of at most CG_BLOCK tokens and calls cg_part_zero before each and
 * cg_part_flush after it, which merges the block's partial into the state (for a reduction
 * without a filter, with the block's NTOK tokens as its count: nothing counts them one by one);
 * cg_accumulate feeds a token into the partial c->part[i]. */
#define CG_BLOCK 256
bool cg_in_block(const Cg *c, int i);
/* Is node I a block variance, whose shift cg_part_zero takes from the values at the block's
 * first token (which cg.c computes there before calling it)? */
bool cg_block_shift(const Cg *c, int i);
void cg_part_zero(Cg *c, int i);
void cg_part_flush(Cg *c, int i, LLVMValueRef ntok);

/* The CPU's token loops prefetch their arrays this many tokens ahead (2 KB of floats; 256 and
 * 512 measured alike, 1024 and 4096 slower), at most CG_PREFETCH_STREAMS arrays (cg.c,
 * prefetch_tokens). */
#define CG_PREFETCH 512
#define CG_PREFETCH_STREAMS 16

#endif
