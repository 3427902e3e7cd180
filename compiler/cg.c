/* cg.c — lowering of a plan to LLVM IR, one function per entry point of rein/objective.h, for
 * the host CPU and for NVPTX from the same code (the differences are a handful of `c->gpu`
 * branches: how the group is chosen, how a loop is split among threads, and the block-wide
 * merges of partial reduction states).
 *
 * A pass is one sweep: for each group, for each of its sequences, for each of its tokens (as
 * deep as the pass's loop level).  Each level's body is laid out as
 *     1 start the reductions that close at this level       4 the loop over the finer level
 *     2 rank/argmax/argmin over this element's children     5 finish the reductions closing here
 *     3 "pre" values: need nothing from the inner loop       6 "post" values: need step 5
 *                                                            7 feed values of this level into
 *                                                              coarser reductions; 8 store them
 * The plan's readiness rule guarantees every use is dominated by its definition in this layout.
 * Values live in registers inside their pass; a value read by another pass is stored in an array
 * of its level (CgLayout.store); batch-level values always live in slots.  Batch-level
 * reductions are accumulated per group into `records`, then merged in group order into `states`
 * by the pass's merge function, which makes the result independent of threads and micro-batches.
 *
 * On the GPU a groups function is a kernel with one block per group.  The pass's finest level is
 * the parallel one: its loop is split among the block's threads, reductions over its elements are
 * per-thread states merged by rk_block_reduce when they close; coarser values are computed by
 * every thread alike (uniform), and only thread 0 stores them.
 */
#include "cg.h"

#include <stdlib.h>
#include <string.h>

#include "rein/objective.h"
#include "rk_lib.h"


/* ---------------------------------------------------------------------------------------------
 * The layout: which values are stored, and where.
 */

/* A gradient written by the synthetic pass: a data value (e.g. logp itself) or a prologue value,
 * which no micro-batch pass computes. */
bool cg_grad_synthetic(const Plan *p, int i) {
  return pl_is_data(&p->g->n[i]) || p->stage[i] != PL_MICRO;
}

static bool in_pass(const PlPass *ps, int i) {
  for (int j = 0; j < ps->nnodes; j++)
    if (ps->nodes[j] == i) return true;
  return false;
}

void cg_layout(CgLayout *l, const Plan *p) {
  const IrGraph *g = p->g;
  memset(l, 0, sizeof *l);
  l->p = p;
  l->store = ir_xcalloc((size_t)g->nn, sizeof(int));
  l->red = ir_xcalloc((size_t)g->nn, sizeof(int));
  l->pass_of = ir_xcalloc((size_t)g->nn, sizeof(int));
  bool *need = ir_xcalloc((size_t)g->nn, sizeof(bool));
  for (int i = 0; i < g->nn; i++) l->store[i] = l->red[i] = l->pass_of[i] = -1;
  for (int q = 0; q < p->npasses; q++) {
    const PlPass *ps = &p->passes[q];
    for (int j = 0; j < ps->nnodes; j++) {
      int i = ps->nodes[j];
      const IrNode *n = &g->n[i];
      if (ps->stage != PL_FINAL || l->pass_of[i] < 0) l->pass_of[i] = q;
      if (ir_ops[n->op].cls == 's' || n->level == LV_BATCH) need[i] = true;
      for (int k = 0; k < ir_nslots(n); k++) {
        int a = n->a[k];
        if (a >= 0 && !pl_is_data(&g->n[a]) && !in_pass(ps, a)) need[a] = true;
      }
    }
  }
  for (int k = 0; k < IR_NGRADS; k++) {
    int i = g->grad[k];
    if (i < 0 || !cg_grad_synthetic(p, i)) continue;
    l->gradpass = 1;
    if (!pl_is_data(&g->n[i])) need[i] = true;
  }
  for (int i = 0; i < g->nn; i++) {
    const IrNode *n = &g->n[i];
    if (pl_is_data(n)) continue;
    if (need[i]) l->store[i] = l->narrays[n->level]++;
    if (ir_ops[n->op].cls == 'r' && n->rlevel == LV_BATCH) l->red[i] = l->nred++;
  }
  free(need);
}

void cg_layout_free(CgLayout *l) {
  free(l->store);
  free(l->red);
  free(l->pass_of);
  memset(l, 0, sizeof *l);
}

int cg_npasses(const CgLayout *l) { return l->p->npasses + l->gradpass; }

/* Phase of node I in its pass: post when it needs a reduction that closes at its own level. */
enum { PH_PRE, PH_POST };

static void phases(const CgLayout *l, const PlPass *ps, char *phase) {
  const IrGraph *g = l->p->g;
  for (int j = 0; j < ps->nnodes; j++) {
    int i = ps->nodes[j];
    const IrNode *n = &g->n[i];
    char cls = ir_ops[n->op].cls;
    phase[i] = cls == 'r' ? PH_POST : PH_PRE;
    if (cls != 'e') continue;
    for (int k = 0; k < ir_nslots(n); k++) {
      int a = n->a[k];
      if (a >= 0 && in_pass(ps, a) && g->n[a].level == n->level && ir_ops[g->n[a].op].cls != 's' &&
          phase[a] == PH_POST)
        phase[i] = PH_POST;
    }
  }
}

void cg_pass_info(const CgLayout *l, int k, int *stage, int *loop, int *flags) {
  const Plan *p = l->p;
  const IrGraph *g = p->g;
  static const int stages[PL_NSTAGES] = {0, REIN_STAGE_PROLOGUE, REIN_STAGE_MICRO, REIN_STAGE_FINAL};
  if (k == p->npasses) { /* the synthetic gradient pass */
    *stage = REIN_STAGE_MICRO;
    *loop = REIN_TOKEN;
    *flags = REIN_PASS_GROUPS;
    return;
  }
  const PlPass *ps = &p->passes[k];
  char *phase = ir_xcalloc((size_t)g->nn, 1);
  phases(l, ps, phase);
  *stage = stages[ps->stage];
  *loop = ps->loop;
  *flags = ps->loop < LV_BATCH ? REIN_PASS_GROUPS : 0;
  for (int j = 0; j < ps->nnodes; j++) {
    int i = ps->nodes[j];
    const IrNode *n = &g->n[i];
    if (l->red[i] >= 0) {
      *flags |= REIN_PASS_MERGE;
      if (!p->partial[i]) *flags |= REIN_PASS_END;
    } else if (n->level == LV_BATCH) {
      *flags |= phase[i] == PH_POST ? REIN_PASS_END : REIN_PASS_BEGIN;
    } else if (ir_ops[n->op].cls == 's' && n->rlevel == LV_BATCH) {
      *flags |= REIN_PASS_BEGIN;
    }
  }
  free(phase);
}

/* ---------------------------------------------------------------------------------------------
 * The emitter.
 */

typedef struct {
  LLVMContextRef cx;
  LLVMModuleRef m;
  LLVMBuilderRef b;   /* the code */
  LLVMBuilderRef eb;  /* the entry block: allocas and loads of ctx fields */
  bool gpu;
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
  LLVMValueRef tid, ntid;              /* GPU: thread index and count (i64); CPU: 0 and 1 */
  /* the current pass */
  const PlPass *ps;
  int pass_index;
  char *phase;
  Level par;        /* the level split among threads; LV_COUNT when none */
  bool write_grads; /* this pass writes gradients (the micro stage) */
} Cg;

static LLVMValueRef cf(Cg *c, double v) { return LLVMConstReal(c->f64, v); }
static LLVMValueRef ci64(Cg *c, long long v) { return LLVMConstInt(c->i64, (unsigned long long)v, 1); }
static LLVMValueRef ci32(Cg *c, int v) { return LLVMConstInt(c->i32, (unsigned long long)v, 1); }

static LLVMValueRef fn_decl(Cg *c, const char *name, LLVMTypeRef ret, LLVMTypeRef *args, int n) {
  LLVMValueRef f = LLVMGetNamedFunction(c->m, name);
  if (!f) f = LLVMAddFunction(c->m, name, LLVMFunctionType(ret, args, (unsigned)n, 0));
  return f;
}

static LLVMValueRef call(Cg *c, const char *name, LLVMTypeRef ret, LLVMValueRef *args, int n) {
  LLVMTypeRef at[6];
  for (int k = 0; k < n; k++) at[k] = LLVMTypeOf(args[k]);
  LLVMValueRef f = fn_decl(c, name, ret, at, n);
  return LLVMBuildCall2(c->b, LLVMGlobalGetValueType(f), f, args, (unsigned)n, "");
}

/* Loads ctx word K (once per function, in the entry block). */
static LLVMValueRef field(Cg *c, int k, bool isptr) {
  if (!c->field[k]) {
    LLVMValueRef ix = ci64(c, k);
    LLVMValueRef a = LLVMBuildGEP2(c->eb, c->i64, c->ctx, &ix, 1, "");
    c->field[k] = LLVMBuildLoad2(c->eb, isptr ? c->ptr : c->i64, a, "");
  }
  return c->field[k];
}

static LLVMValueRef gep(Cg *c, LLVMTypeRef t, LLVMValueRef base, LLVMValueRef i) {
  return LLVMBuildGEP2(c->b, t, base, &i, 1, "");
}

static LLVMValueRef load_i32_as_i64(Cg *c, LLVMValueRef base, LLVMValueRef i) {
  return LLVMBuildSExt(c->b, LLVMBuildLoad2(c->b, c->i32, gep(c, c->i32, base, i), ""), c->i64, "");
}

/* first sequence of group G, first token of sequence S */
static LLVMValueRef grp_seq(Cg *c, LLVMValueRef gi) { return load_i32_as_i64(c, field(c, REIN_CTX_GRP_SEQ, true), gi); }
static LLVMValueRef seq_tok(Cg *c, LLVMValueRef s) { return load_i32_as_i64(c, field(c, REIN_CTX_SEQ_TOK, true), s); }
static LLVMValueRef add1(Cg *c, LLVMValueRef v) { return LLVMBuildAdd(c->b, v, ci64(c, 1), ""); }

/* The range [*lo, *hi) of elements of level E inside the current element of level R (R = batch:
 * the current view, groups g0..g1 of ctx). */
static void span(Cg *c, Level R, Level E, LLVMValueRef *lo, LLVMValueRef *hi) {
  LLVMValueRef r0, r1;
  if (R == LV_BATCH) {
    r0 = field(c, REIN_CTX_G0, false);
    r1 = field(c, REIN_CTX_G1, false);
  } else {
    r0 = c->ix[R];
    r1 = add1(c, r0);
  }
  if (R >= LV_GROUP && E <= LV_SEQ) r0 = grp_seq(c, r0), r1 = grp_seq(c, r1);
  if (R >= LV_SEQ && E == LV_TOKEN) r0 = seq_tok(c, r0), r1 = seq_tok(c, r1);
  *lo = r0;
  *hi = r1;
}

static LLVMValueRef to_f64(Cg *c, LLVMValueRef i64v) { return LLVMBuildSIToFP(c->b, i64v, c->f64, ""); }

/* ---- loops ---- */
typedef struct {
  LLVMBasicBlockRef head, exit;
  LLVMValueRef phi, step;
} Loop;

static LLVMValueRef loop_begin(Cg *c, Loop *L, LLVMValueRef lo, LLVMValueRef hi, LLVMValueRef step) {
  LLVMBasicBlockRef pre = LLVMGetInsertBlock(c->b);
  L->head = LLVMAppendBasicBlockInContext(c->cx, c->fn, "loop");
  LLVMBasicBlockRef body = LLVMAppendBasicBlockInContext(c->cx, c->fn, "body");
  L->exit = LLVMAppendBasicBlockInContext(c->cx, c->fn, "done");
  L->step = step;
  LLVMBuildBr(c->b, L->head);
  LLVMPositionBuilderAtEnd(c->b, L->head);
  L->phi = LLVMBuildPhi(c->b, c->i64, "i");
  LLVMAddIncoming(L->phi, &lo, &pre, 1);
  LLVMBuildCondBr(c->b, LLVMBuildICmp(c->b, LLVMIntSLT, L->phi, hi, ""), body, L->exit);
  LLVMPositionBuilderAtEnd(c->b, body);
  return L->phi;
}

static void loop_end(Cg *c, Loop *L) {
  LLVMValueRef next = LLVMBuildAdd(c->b, L->phi, L->step, "");
  LLVMBasicBlockRef latch = LLVMGetInsertBlock(c->b);
  LLVMAddIncoming(L->phi, &next, &latch, 1);
  LLVMBuildBr(c->b, L->head);
  LLVMPositionBuilderAtEnd(c->b, L->exit);
}

/* A loop over [lo, hi), split among the block's threads when PARALLEL (GPU). */
static LLVMValueRef loop_split(Cg *c, Loop *L, LLVMValueRef lo, LLVMValueRef hi, bool parallel) {
  if (c->gpu && parallel) return loop_begin(c, L, LLVMBuildAdd(c->b, lo, c->tid, ""), hi, c->ntid);
  return loop_begin(c, L, lo, hi, ci64(c, 1));
}

/* GPU: code up to guard_end runs in thread 0 only (stores of uniform values). */
static LLVMBasicBlockRef guard_begin(Cg *c, bool need) {
  if (!c->gpu || !need) return NULL;
  LLVMBasicBlockRef then = LLVMAppendBasicBlockInContext(c->cx, c->fn, "t0");
  LLVMBasicBlockRef after = LLVMAppendBasicBlockInContext(c->cx, c->fn, "t0done");
  LLVMBuildCondBr(c->b, LLVMBuildICmp(c->b, LLVMIntEQ, c->tid, ci64(c, 0), ""), then, after);
  LLVMPositionBuilderAtEnd(c->b, then);
  return after;
}

static void guard_end(Cg *c, LLVMBasicBlockRef after) {
  if (!after) return;
  LLVMBuildBr(c->b, after);
  LLVMPositionBuilderAtEnd(c->b, after);
}

static void barrier(Cg *c) {
  if (c->gpu) call(c, "llvm.nvvm.barrier0", LLVMVoidTypeInContext(c->cx), NULL, 0);
}

/* ---- values ---- */
static LLVMValueRef get(Cg *c, int i);

static LLVMValueRef store_addr(Cg *c, int i, LLVMValueRef *elt_index) {
  const IrNode *n = &c->g->n[i];
  Level L = n->level;
  int arr = c->l->store[i];
  if (L == LV_BATCH) return gep(c, c->f64, field(c, REIN_CTX_SLOTS, true), ci64(c, arr));
  static const int base_field[3] = {REIN_CTX_TOK_STORE, REIN_CTX_SEQ_STORE, REIN_CTX_GRP_STORE};
  static const int count_field[3] = {REIN_CTX_NTOKS, REIN_CTX_NSEQS, REIN_CTX_NGROUPS};
  LLVMValueRef off = LLVMBuildMul(c->b, ci64(c, arr), field(c, count_field[L], false), "");
  off = LLVMBuildAdd(c->b, off, elt_index ? *elt_index : c->ix[L], "");
  return gep(c, c->f64, field(c, base_field[L], true), off);
}

static LLVMValueRef input_value(Cg *c, const IrNode *n) {
  LLVMValueRef base, e;
  Level L;
  if (n->op == IR_INPUT) {
    if (n->idx == IN_POS)
      return to_f64(c, LLVMBuildSub(c->b, c->ix[LV_TOKEN], seq_tok(c, c->ix[LV_SEQ]), ""));
    if (n->idx == IN_LEN) {
      LLVMValueRef s = c->ix[LV_SEQ];
      return to_f64(c, LLVMBuildSub(c->b, seq_tok(c, add1(c, s)), seq_tok(c, s), ""));
    }
    base = field(c, REIN_CTX_IN + n->idx, true);
    L = bi_inputs[n->idx].level;
  } else {
    LLVMValueRef uin = field(c, REIN_CTX_UIN, true);
    base = LLVMBuildLoad2(c->b, c->ptr, gep(c, c->ptr, uin, ci64(c, n->idx)), "");
    L = c->g->uinputs[n->idx].level;
  }
  e = c->ix[L];
  return LLVMBuildFPExt(c->b, LLVMBuildLoad2(c->b, c->f32, gep(c, c->f32, base, e), ""), c->f64, "");
}

/* count[R]() without a filter: the number of ELEV elements in the current R element. */
static LLVMValueRef shape_count(Cg *c, const IrNode *n) {
  if (n->rlevel == LV_BATCH) {
    static const int f[3] = {REIN_CTX_NTOKS, REIN_CTX_NSEQS, REIN_CTX_NGROUPS};
    return to_f64(c, field(c, f[n->elev], false));
  }
  LLVMValueRef lo, hi;
  span(c, n->rlevel, n->elev, &lo, &hi);
  return to_f64(c, LLVMBuildSub(c->b, hi, lo, ""));
}

static LLVMValueRef data_value(Cg *c, const IrNode *n) {
  if (n->op == IR_COUNT) return shape_count(c, n); /* count[L]() with no filter: a shape */
  switch (n->op) {
  case IR_CONST: return cf(c, n->num);
  case IR_PARAM:
    return LLVMBuildLoad2(c->b, c->f64, gep(c, c->f64, field(c, REIN_CTX_PARAMS, true), ci64(c, n->idx)), "");
  case IR_INPUT:
  case IR_UINPUT: return input_value(c, n);
  case IR_UNIFORM: {
    LLVMValueRef gi = c->ix[LV_GROUP];
    LLVMValueRef a[4] = {field(c, REIN_CTX_SEED, false), field(c, REIN_CTX_STEP, false), gi,
                         LLVMBuildSub(c->b, c->ix[LV_SEQ], grp_seq(c, gi), "")};
    return call(c, "rk_uniform", c->f64, a, 4);
  }
  REIN_ELEM_OPS(OPS_CASE) /* not data (pl_is_data) */
  REIN_RED_OPS(OPS_CASE)
  case IR_NOPS: break;
  }
  abort();
}

static LLVMValueRef get(Cg *c, int i) {
  if (c->val[i]) return c->val[i];
  const IrNode *n = &c->g->n[i];
  if (pl_is_data(n)) return data_value(c, n);
  return LLVMBuildLoad2(c->b, c->f64, store_addr(c, i, NULL), "");
}

static LLVMValueRef b2f(Cg *c, LLVMValueRef b) { return LLVMBuildSelect(c->b, b, cf(c, 1), cf(c, 0), ""); }
static LLVMValueRef fcmp(Cg *c, LLVMRealPredicate p, LLVMValueRef x, LLVMValueRef y) {
  return LLVMBuildFCmp(c->b, p, x, y, "");
}
static LLVMValueRef nz(Cg *c, LLVMValueRef x) { return fcmp(c, LLVMRealUNE, x, cf(c, 0)); }

/* The element-wise op of node N on its argument values X (ir_eval_elem's semantics), as the `code`
 * column of REIN_ELEM_OPS (ops.h) says: CALL(f) calls f, a routine of the kernel library or an
 * LLVM intrinsic; W is the instruction sequence CG_W below. */
#define CG_CALL(f) call(c, f, c->f64, x, ir_ops[n->op].nargs)
#define CG_FNEG LLVMBuildFNeg(b, x[0], "")
#define CG_NOT b2f(c, fcmp(c, LLVMRealOEQ, x[0], cf(c, 0)))
#define CG_SIGN                                                                                 \
  LLVMBuildSelect(b, fcmp(c, LLVMRealOGT, x[0], cf(c, 0)), cf(c, 1),                            \
                  LLVMBuildSelect(b, fcmp(c, LLVMRealOLT, x[0], cf(c, 0)), cf(c, -1), cf(c, 0), ""), "")
#define CG_ARG0 x[0]
#define CG_FADD LLVMBuildFAdd(b, x[0], x[1], "")
#define CG_FSUB LLVMBuildFSub(b, x[0], x[1], "")
#define CG_FMUL LLVMBuildFMul(b, x[0], x[1], "")
#define CG_FDIV LLVMBuildFDiv(b, x[0], x[1], "")
#define CG_MIN LLVMBuildSelect(b, fcmp(c, LLVMRealOLT, x[1], x[0]), x[1], x[0], "")
#define CG_MAX LLVMBuildSelect(b, fcmp(c, LLVMRealOGT, x[1], x[0]), x[1], x[0], "")
#define CG_LT b2f(c, fcmp(c, LLVMRealOLT, x[0], x[1]))
#define CG_LE b2f(c, fcmp(c, LLVMRealOLE, x[0], x[1]))
#define CG_GT b2f(c, fcmp(c, LLVMRealOGT, x[0], x[1]))
#define CG_GE b2f(c, fcmp(c, LLVMRealOGE, x[0], x[1]))
#define CG_EQ b2f(c, fcmp(c, LLVMRealOEQ, x[0], x[1]))
#define CG_NE b2f(c, fcmp(c, LLVMRealUNE, x[0], x[1]))
#define CG_AND b2f(c, LLVMBuildAnd(b, nz(c, x[0]), nz(c, x[1]), ""))
#define CG_OR b2f(c, LLVMBuildOr(b, nz(c, x[0]), nz(c, x[1]), ""))
#define CG_DMUL LLVMBuildSelect(b, fcmp(c, LLVMRealOEQ, x[0], cf(c, 0)), cf(c, 0), LLVMBuildFMul(b, x[0], x[1], ""), "")
#define CG_WHERE LLVMBuildSelect(b, nz(c, x[0]), x[1], x[2], "")
static LLVMValueRef elem(Cg *c, const IrNode *n, LLVMValueRef *x) {
  LLVMBuilderRef b = c->b;
  switch (n->op) {
#define X_CG(ID, name, fn, nargs, diff, ty, value, code) \
  case IR_##ID: return CG_##code;
    REIN_ELEM_OPS(X_CG)
#undef X_CG
  REIN_LEAF_OPS(OPS_CASE) /* not element-wise */
  REIN_RED_OPS(OPS_CASE)
  case IR_NOPS: break;
  }
  abort();
}

/* The kernel library's reduction of each reduction op (the `state` column of REIN_RED_OPS). */
#define X_RK(ID, name, fn, cls, lo, hi, ddof, diff, state) [IR_##ID] = state,
static const int rk_ops[IR_NOPS] = {REIN_RED_OPS(X_RK)};
#undef X_RK
static int rk_op(IrOp op) { return rk_ops[op]; }

static LLVMValueRef st_ptr(Cg *c, LLVMValueRef st, int k) { return gep(c, c->f64, st, ci64(c, k)); }

static void st_zero(Cg *c, LLVMValueRef st) {
  for (int k = 0; k < 3; k++) LLVMBuildStore(c->b, cf(c, 0), st_ptr(c, st, k));
}

static void st_copy(Cg *c, LLVMValueRef dst, LLVMValueRef src) {
  for (int k = 0; k < 3; k++)
    LLVMBuildStore(c->b, LLVMBuildLoad2(c->b, c->f64, st_ptr(c, src, k), ""), st_ptr(c, dst, k));
}

static LLVMValueRef reassoc_fadd(Cg *c, LLVMValueRef x, LLVMValueRef y) {
  LLVMValueRef v = LLVMBuildFAdd(c->b, x, y, "");
  LLVMSetFastMathFlags(v, LLVMFastMathAllowReassoc);
  return v;
}

/* Feeds the current element into reduction I's state. */
static void accumulate(Cg *c, int i) {
  const IrNode *n = &c->g->n[i];
  LLVMValueRef st = c->acc[i];
  LLVMValueRef keep = n->a[1] >= 0 ? nz(c, get(c, n->a[1])) : LLVMConstInt(c->i1, 1, 0);
  LLVMValueRef x = n->a[0] >= 0 ? get(c, n->a[0]) : cf(c, 1);
  int op = rk_op(n->op);
  if (op == RK_SUM || op == RK_MEAN || op == RK_COUNT) {
    LLVMValueRef p0 = st_ptr(c, st, 0);
    LLVMValueRef cnt = LLVMBuildLoad2(c->b, c->f64, p0, "");
    LLVMBuildStore(c->b, reassoc_fadd(c, cnt, b2f(c, keep)), p0);
    if (op != RK_COUNT) {
      LLVMValueRef p1 = st_ptr(c, st, 1);
      LLVMValueRef s = LLVMBuildLoad2(c->b, c->f64, p1, "");
      LLVMBuildStore(c->b, reassoc_fadd(c, s, LLVMBuildSelect(c->b, keep, x, cf(c, 0), "")), p1);
    }
    return;
  }
  LLVMValueRef a[4] = {ci32(c, op), st, x, LLVMBuildZExt(c->b, keep, c->i32, "")};
  call(c, "rk_acc", LLVMVoidTypeInContext(c->cx), a, 4);
}

static LLVMValueRef finish(Cg *c, const IrNode *n, LLVMValueRef st) {
  LLVMValueRef a[3] = {ci32(c, rk_op(n->op)), ci32(c, n->ddof), st};
  return call(c, "rk_finish", c->f64, a, 3);
}

static void block_reduce(Cg *c, int i) {
  LLVMValueRef a[2] = {ci32(c, rk_op(c->g->n[i].op)), c->acc[i]};
  call(c, "rk_block_reduce", LLVMVoidTypeInContext(c->cx), a, 2);
}

/* ---- functions ---- */

/* Starts function NAME with params (ctx[, g0, g1]). */
static void fn_begin(Cg *c, const char *name, bool range) {
  LLVMTypeRef args[3] = {c->ptr, c->i64, c->i64};
  LLVMTypeRef ft = LLVMFunctionType(LLVMVoidTypeInContext(c->cx), args, range ? 3 : 1, 0);
  c->fn = LLVMAddFunction(c->m, name, ft);
  if (c->gpu) LLVMSetFunctionCallConv(c->fn, LLVMPTXKernelCallConv);
  c->ctx = LLVMGetParam(c->fn, 0);
  c->entry = LLVMAppendBasicBlockInContext(c->cx, c->fn, "entry");
  LLVMBasicBlockRef start = LLVMAppendBasicBlockInContext(c->cx, c->fn, "start");
  LLVMPositionBuilderAtEnd(c->eb, c->entry);
  LLVMPositionBuilderAtEnd(c->b, start);
  memset(c->field, 0, sizeof c->field);
  memset(c->ix, 0, sizeof c->ix);
  memset(c->val, 0, sizeof(LLVMValueRef) * (size_t)c->g->nn);
  memset(c->acc, 0, sizeof(LLVMValueRef) * (size_t)c->g->nn);
  if (c->gpu) {
    c->tid = LLVMBuildZExt(c->eb, LLVMBuildCall2(c->eb, LLVMFunctionType(c->i32, NULL, 0, 0),
                                                 fn_decl(c, "llvm.nvvm.read.ptx.sreg.tid.x", c->i32, NULL, 0), NULL, 0, ""),
                           c->i64, "tid");
    c->ntid = LLVMBuildZExt(c->eb, LLVMBuildCall2(c->eb, LLVMFunctionType(c->i32, NULL, 0, 0),
                                                  fn_decl(c, "llvm.nvvm.read.ptx.sreg.ntid.x", c->i32, NULL, 0), NULL, 0, ""),
                            c->i64, "ntid");
  } else {
    c->tid = ci64(c, 0);
    c->ntid = ci64(c, 1);
  }
}

static void fn_end(Cg *c) {
  LLVMBuildRetVoid(c->b);
  LLVMBuildBr(c->eb, LLVMGetNextBasicBlock(c->entry));
}

static LLVMValueRef new_state(Cg *c) {
  return LLVMBuildAlloca(c->eb, LLVMArrayType(c->f64, 3), "st");
}

/* Writes value V of the current element of level L to the gradient K of each of its tokens. */
static void write_grad(Cg *c, int k, Level L, LLVMValueRef v) {
  LLVMValueRef gp = field(c, REIN_CTX_GRAD + k, true);
  LLVMValueRef v32 = LLVMBuildFPTrunc(c->b, v, c->f32, "");
  if (L == LV_TOKEN) {
    LLVMBuildStore(c->b, v32, gep(c, c->f32, gp, c->ix[LV_TOKEN]));
    return;
  }
  LLVMValueRef lo, hi;
  span(c, L, LV_TOKEN, &lo, &hi);
  Loop lp;
  LLVMValueRef t = loop_split(c, &lp, lo, hi, L != c->par); /* a uniform value: split the writes */
  LLVMBuildStore(c->b, v32, gep(c, c->f32, gp, t));
  loop_end(c, &lp);
}

/* Stores node I (computed at the current element of its level), and writes it as a gradient. */
static void store_out(Cg *c, int i) {
  const IrNode *n = &c->g->n[i];
  bool uniform = n->level != c->par;
  if (c->l->store[i] >= 0 && ir_ops[n->op].cls != 's') {
    LLVMBasicBlockRef after = guard_begin(c, uniform);
    LLVMBuildStore(c->b, get(c, i), store_addr(c, i, NULL));
    guard_end(c, after);
  }
  if (!c->write_grads) return;
  for (int k = 0; k < IR_NGRADS; k++)
    if (c->g->grad[k] == i) write_grad(c, k, n->level, get(c, i));
}

/* Calls FN(c, data) once per element of level E inside the current element of level R, with
 * c->ix set, sequentially (GPU: by the calling thread). */
typedef void (*EachFn)(Cg *c, void *data);
static void for_each(Cg *c, Level R, Level E, Level at, EachFn fn, void *data) {
  if (at == E) {
    fn(c, data);
    return;
  }
  LLVMValueRef lo, hi;
  Level inner = (Level)(at - 1);
  span(c, at, inner, &lo, &hi);
  Loop lp;
  LLVMValueRef saved = c->ix[inner];
  c->ix[inner] = loop_begin(c, &lp, lo, hi, ci64(c, 1));
  for_each(c, R, E, inner, fn, data);
  loop_end(c, &lp);
  c->ix[inner] = saved;
  (void)R;
}

typedef struct {
  int node;
  LLVMValueRef lo, vals, keeps;
} SibData;

static void sib_gather(Cg *c, void *data) {
  SibData *d = data;
  const IrNode *n = &c->g->n[d->node];
  LLVMValueRef off = LLVMBuildSub(c->b, c->ix[n->elev], d->lo, "");
  LLVMBuildStore(c->b, get(c, n->a[0]), gep(c, c->f64, d->vals, off));
  if (d->keeps) {
    LLVMValueRef k = n->a[1] >= 0 ? b2f(c, nz(c, get(c, n->a[1]))) : cf(c, 1);
    LLVMBuildStore(c->b, k, gep(c, c->f64, d->keeps, off));
  }
}

/* rank/argmax/argmin node I over the children of the current element of its rlevel: gathers
 * the argument into scratch, then rk_rank/rk_argext write the node's array. */
static void sibling(Cg *c, int i) {
  const IrNode *n = &c->g->n[i];
  LLVMBasicBlockRef after = guard_begin(c, true);
  LLVMValueRef lo, hi;
  if (n->rlevel == LV_BATCH) {
    LLVMValueRef g0 = field(c, REIN_CTX_G0, false), g1 = field(c, REIN_CTX_G1, false);
    lo = grp_seq(c, g0), hi = grp_seq(c, g1);
    if (n->elev == LV_TOKEN) lo = seq_tok(c, lo), hi = seq_tok(c, hi);
    if (n->elev == LV_GROUP) lo = g0, hi = g1;
  } else {
    span(c, n->rlevel, n->elev, &lo, &hi);
  }
  LLVMValueRef cnt = LLVMBuildSub(c->b, hi, lo, "");
  /* scratch regions of max(ntoks, nseqs) + 1 each: values, keeps / indices, temporaries */
  LLVMValueRef nt = field(c, REIN_CTX_NTOKS, false), ns = field(c, REIN_CTX_NSEQS, false);
  LLVMValueRef reg = add1(c, LLVMBuildSelect(c->b, LLVMBuildICmp(c->b, LLVMIntSGT, nt, ns, ""), nt, ns, ""));
  LLVMValueRef sc = field(c, REIN_CTX_SCRATCH, true);
  SibData d = {i, lo, gep(c, c->f64, sc, lo), NULL};
  LLVMValueRef r2 = gep(c, c->f64, sc, LLVMBuildAdd(c->b, reg, lo, ""));
  LLVMValueRef r3 = gep(c, c->f64, sc, LLVMBuildAdd(c->b, LLVMBuildMul(c->b, reg, ci64(c, 2), ""), lo, ""));
  if (n->op != IR_RANK) d.keeps = r2;
  for_each(c, n->rlevel, n->elev, n->rlevel, sib_gather, &d);
  LLVMValueRef elt = lo;
  LLVMValueRef out = store_addr(c, i, &elt);
  if (n->op == IR_RANK) {
    LLVMValueRef a[5] = {d.vals, cnt, out, r2, r3};
    call(c, "rk_rank", LLVMVoidTypeInContext(c->cx), a, 5);
  } else {
    LLVMValueRef a[5] = {d.vals, d.keeps, cnt, ci32(c, n->op == IR_ARGMAX ? 1 : -1), out};
    call(c, "rk_argext", LLVMVoidTypeInContext(c->cx), a, 5);
  }
  guard_end(c, after);
  barrier(c);
}

static void compute(Cg *c, int i) {
  const IrNode *n = &c->g->n[i];
  LLVMValueRef x[3] = {NULL, NULL, NULL};
  for (int k = 0; k < ir_ops[n->op].nargs; k++) x[k] = get(c, n->a[k]);
  c->val[i] = elem(c, n, x);
}

/* Does reduction I close at level L?  (Batch reductions close per group, into records.) */
static bool closes_at(const IrNode *n, Level L) {
  return n->rlevel == L || (L == LV_GROUP && n->rlevel == LV_BATCH);
}

/* The body for the current element of level L (ix[L] set) of the pass's sweep. */
static void emit_level(Cg *c, Level L) {
  const PlPass *ps = c->ps;
  const IrGraph *g = c->g;
  /* 1, 2, 3 */
  for (int j = 0; j < ps->nnodes; j++) {
    int i = ps->nodes[j];
    const IrNode *n = &g->n[i];
    char cls = ir_ops[n->op].cls;
    if (cls == 'r' && closes_at(n, L)) {
      if (!c->acc[i]) c->acc[i] = new_state(c);
      st_zero(c, c->acc[i]);
    }
  }
  for (int j = 0; j < ps->nnodes; j++) {
    int i = ps->nodes[j];
    if (ir_ops[g->n[i].op].cls == 's' && g->n[i].rlevel == L) sibling(c, i);
  }
  for (int j = 0; j < ps->nnodes; j++) {
    int i = ps->nodes[j];
    if (g->n[i].level == L && ir_ops[g->n[i].op].cls == 'e' && c->phase[i] == PH_PRE) compute(c, i);
  }
  /* 4 */
  if (L > ps->loop) {
    Level E = (Level)(L - 1);
    LLVMValueRef lo, hi;
    span(c, L, E, &lo, &hi);
    Loop lp;
    c->ix[E] = loop_split(c, &lp, lo, hi, E == c->par);
    emit_level(c, E);
    loop_end(c, &lp);
    c->ix[E] = NULL;
    for (int j = 0; j < ps->nnodes; j++) {
      int i = ps->nodes[j];
      const IrNode *n = &g->n[i];
      if (c->gpu && ir_ops[n->op].cls == 'r' && closes_at(n, L) && n->elev == c->par) block_reduce(c, i);
    }
  }
  /* 5, 6 */
  for (int j = 0; j < ps->nnodes; j++) {
    int i = ps->nodes[j];
    const IrNode *n = &g->n[i];
    if (ir_ops[n->op].cls == 'r' && n->rlevel == L) c->val[i] = finish(c, n, c->acc[i]);
    if (n->level == L && ir_ops[n->op].cls == 'e' && c->phase[i] == PH_POST) compute(c, i);
  }
  /* 7 */
  for (int j = 0; j < ps->nnodes; j++) {
    int i = ps->nodes[j];
    const IrNode *n = &g->n[i];
    if (ir_ops[n->op].cls == 'r' && n->elev == L) accumulate(c, i);
  }
  if (L == LV_GROUP) { /* the group's partial states of batch reductions */
    LLVMBasicBlockRef after = NULL;
    for (int j = 0; j < ps->nnodes; j++) {
      int i = ps->nodes[j];
      int r = c->l->red[i];
      if (r < 0) continue;
      if (!after) after = guard_begin(c, true);
      LLVMValueRef off = LLVMBuildMul(c->b, c->ix[LV_GROUP], ci64(c, 3 * c->l->nred), "");
      off = LLVMBuildAdd(c->b, off, ci64(c, 3 * r), "");
      st_copy(c, gep(c, c->f64, field(c, REIN_CTX_RECORDS, true), off), c->acc[i]);
    }
    guard_end(c, after);
  }
  /* 8 */
  for (int j = 0; j < ps->nnodes; j++) {
    int i = ps->nodes[j];
    if (g->n[i].level == L && ir_ops[g->n[i].op].cls != 's') store_out(c, i);
  }
}

static void set_pass(Cg *c, int k) {
  const Plan *p = c->l->p;
  c->pass_index = k;
  c->ps = k < p->npasses ? &p->passes[k] : NULL;
  memset(c->phase, 0, (size_t)c->g->nn);
  if (c->ps) phases(c->l, c->ps, c->phase);
  c->par = LV_COUNT;
  if (c->ps && c->ps->loop <= LV_SEQ) c->par = c->ps->loop;
  c->write_grads = c->ps && c->ps->stage == PL_MICRO;
}

/* begin: batch-level values that need nothing of this pass's sweep, and rank[batch] & co. */
static void emit_begin(Cg *c, int k) {
  char name[64];
  rein_entry_name(name, k, REIN_ENTRY_BEGIN);
  fn_begin(c, name, false);
  const PlPass *ps = c->ps;
  for (int j = 0; ps && j < ps->nnodes; j++) {
    int i = ps->nodes[j];
    const IrNode *n = &c->g->n[i];
    if (ir_ops[n->op].cls == 's' && n->rlevel == LV_BATCH) sibling(c, i);
    if (n->level == LV_BATCH && ir_ops[n->op].cls == 'e' && c->phase[i] == PH_PRE) {
      compute(c, i);
      LLVMBuildStore(c->b, c->val[i], store_addr(c, i, NULL));
    }
  }
  fn_end(c);
}

static void emit_groups(Cg *c, int k) {
  char name[64];
  rein_entry_name(name, k, REIN_ENTRY_GROUPS);
  fn_begin(c, name, true);
  LLVMValueRef g0 = LLVMGetParam(c->fn, 1), g1 = LLVMGetParam(c->fn, 2);
  if (!c->ps) { /* the synthetic pass: gradients that are prologue or data values */
    c->par = LV_TOKEN;
  }
  Loop lp;
  LLVMBasicBlockRef skip = NULL;
  if (c->gpu) {
    LLVMValueRef bid = LLVMBuildCall2(c->b, LLVMFunctionType(c->i32, NULL, 0, 0),
                                      fn_decl(c, "llvm.nvvm.read.ptx.sreg.ctaid.x", c->i32, NULL, 0), NULL, 0, "");
    c->ix[LV_GROUP] = LLVMBuildAdd(c->b, g0, LLVMBuildZExt(c->b, bid, c->i64, ""), "g");
    LLVMBasicBlockRef body = LLVMAppendBasicBlockInContext(c->cx, c->fn, "group");
    skip = LLVMAppendBasicBlockInContext(c->cx, c->fn, "out");
    LLVMBuildCondBr(c->b, LLVMBuildICmp(c->b, LLVMIntSLT, c->ix[LV_GROUP], g1, ""), body, skip);
    LLVMPositionBuilderAtEnd(c->b, body);
  } else {
    c->ix[LV_GROUP] = loop_begin(c, &lp, g0, g1, ci64(c, 1));
  }
  if (c->ps) {
    emit_level(c, LV_GROUP);
  } else {
    const IrGraph *g = c->g;
    LLVMValueRef lo, hi;
    span(c, LV_GROUP, LV_SEQ, &lo, &hi);
    Loop ls, lt;
    c->ix[LV_SEQ] = loop_begin(c, &ls, lo, hi, ci64(c, 1));
    span(c, LV_SEQ, LV_TOKEN, &lo, &hi);
    c->ix[LV_TOKEN] = loop_split(c, &lt, lo, hi, true);
    for (int q = 0; q < IR_NGRADS; q++) {
      int i = g->grad[q];
      if (i >= 0 && cg_grad_synthetic(c->l->p, i)) {
        LLVMValueRef gp = field(c, REIN_CTX_GRAD + q, true);
        LLVMBuildStore(c->b, LLVMBuildFPTrunc(c->b, get(c, i), c->f32, ""), gep(c, c->f32, gp, c->ix[LV_TOKEN]));
      }
    }
    loop_end(c, &lt);
    loop_end(c, &ls);
  }
  if (c->gpu) {
    LLVMBuildBr(c->b, skip);
    LLVMPositionBuilderAtEnd(c->b, skip);
  } else {
    loop_end(c, &lp);
  }
  fn_end(c);
}

/* merge: the records of groups g0..g1-1, in order, into the running states. */
static void emit_merge(Cg *c, int k) {
  char name[64];
  rein_entry_name(name, k, REIN_ENTRY_MERGE);
  fn_begin(c, name, true);
  Loop lp;
  LLVMValueRef gi = loop_begin(c, &lp, LLVMGetParam(c->fn, 1), LLVMGetParam(c->fn, 2), ci64(c, 1));
  for (int j = 0; c->ps && j < c->ps->nnodes; j++) {
    int i = c->ps->nodes[j];
    int r = c->l->red[i];
    if (r < 0) continue;
    LLVMValueRef off = LLVMBuildAdd(c->b, LLVMBuildMul(c->b, gi, ci64(c, 3 * c->l->nred), ""), ci64(c, 3 * r), "");
    LLVMValueRef a[3] = {ci32(c, rk_op(c->g->n[i].op)),
                         gep(c, c->f64, field(c, REIN_CTX_STATES, true), ci64(c, 3 * r)),
                         gep(c, c->f64, field(c, REIN_CTX_RECORDS, true), off)};
    call(c, "rk_merge", LLVMVoidTypeInContext(c->cx), a, 3);
  }
  loop_end(c, &lp);
  fn_end(c);
}

static LLVMValueRef state_of(Cg *c, int i) {
  return gep(c, c->f64, field(c, REIN_CTX_STATES, true), ci64(c, 3 * c->l->red[i]));
}

/* end: finishes the pass's batch reductions (not the micro-batch partials) and the batch values
 * computed from them. */
static void emit_end(Cg *c, int k) {
  char name[64];
  rein_entry_name(name, k, REIN_ENTRY_END);
  fn_begin(c, name, false);
  const Plan *p = c->l->p;
  for (int j = 0; c->ps && j < c->ps->nnodes; j++) {
    int i = c->ps->nodes[j];
    const IrNode *n = &c->g->n[i];
    if (c->l->red[i] >= 0 && !p->partial[i]) {
      c->val[i] = finish(c, n, state_of(c, i));
      LLVMBuildStore(c->b, c->val[i], store_addr(c, i, NULL));
    } else if (n->level == LV_BATCH && ir_ops[n->op].cls == 'e' && c->phase[i] == PH_POST) {
      compute(c, i);
      LLVMBuildStore(c->b, c->val[i], store_addr(c, i, NULL));
    }
  }
  fn_end(c);
}

/* rein_finish: the reductions accumulated across micro-batches. */
static void emit_finish(Cg *c) {
  fn_begin(c, REIN_FINISH_NAME, false);
  for (int i = 0; i < c->g->nn; i++)
    if (c->l->red[i] >= 0 && c->l->p->partial[i])
      LLVMBuildStore(c->b, finish(c, &c->g->n[i], state_of(c, i)), store_addr(c, i, NULL));
  fn_end(c);
}

/* rein_outputs: out[0] = loss, out[1 + m] = metric m. */
static void emit_outputs(Cg *c) {
  fn_begin(c, REIN_OUTPUTS_NAME, false);
  LLVMValueRef out = field(c, REIN_CTX_OUT, true);
  LLVMBuildStore(c->b, get(c, c->g->loss), gep(c, c->f64, out, ci64(c, 0)));
  for (int m = 0; m < c->g->nmetrics; m++)
    LLVMBuildStore(c->b, get(c, c->g->metrics[m].node), gep(c, c->f64, out, ci64(c, 1 + m)));
  fn_end(c);
}

LLVMModuleRef cg_module(LLVMContextRef cx, const CgLayout *l, CgTarget t) {
  Cg cs = {0}, *c = &cs;
  c->cx = cx;
  c->gpu = t == CG_GPU;
  c->l = l;
  c->g = l->p->g;
  c->m = LLVMModuleCreateWithNameInContext(c->g->objective, cx);
  c->b = LLVMCreateBuilderInContext(cx);
  c->eb = LLVMCreateBuilderInContext(cx);
  c->f64 = LLVMDoubleTypeInContext(cx);
  c->f32 = LLVMFloatTypeInContext(cx);
  c->i32 = LLVMInt32TypeInContext(cx);
  c->i64 = LLVMInt64TypeInContext(cx);
  c->i1 = LLVMInt1TypeInContext(cx);
  c->ptr = LLVMPointerTypeInContext(cx, 0);
  c->val = ir_xcalloc((size_t)c->g->nn, sizeof(LLVMValueRef));
  c->acc = ir_xcalloc((size_t)c->g->nn, sizeof(LLVMValueRef));
  c->phase = ir_xcalloc((size_t)c->g->nn, 1);
  for (int k = 0; k < cg_npasses(l); k++) {
    int stage, loop, flags;
    cg_pass_info(l, k, &stage, &loop, &flags);
    set_pass(c, k);
    /* every entry point exists (an empty one returns at once), so the runtime can call any */
    emit_begin(c, k);
    set_pass(c, k);
    emit_groups(c, k);
    set_pass(c, k);
    emit_merge(c, k);
    set_pass(c, k);
    emit_end(c, k);
  }
  set_pass(c, cg_npasses(l));
  emit_finish(c);
  emit_outputs(c);
  LLVMDisposeBuilder(c->b);
  LLVMDisposeBuilder(c->eb);
  free(c->val);
  free(c->acc);
  free(c->phase);
  return c->m;
}
