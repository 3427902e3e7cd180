/* cg_value.c — the code of one value at the current element of a sweep: what cg.c's loop nests
 * and entry points call for each node.
 *
 * Reads of the context (ctx words, the index arrays that bound groups and sequences), leaves
 * (constants, params, inputs as float32 widened to float64, uniform draws, counts that are
 * shapes), loads of values an earlier pass stored, the element-wise ops as the `code` column of
 * REIN_ELEM_OPS (ops.h) says (the instruction sequences CG_W below, intrinsics and the kernel
 * library's routines), and the reduction states: started, fed one element, finished, merged
 * across a GPU block.  Everything is emitted at the builder's current position from the indices
 * in c->ix; where the loops are and which thread stores is cg.c's business, so nothing here
 * calls back into it.
 */
#include "cg_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rk_lib.h"

/* ---- declarations and calls; the context ---- */

LLVMValueRef cg_fn_decl(Cg *c, const char *name, LLVMTypeRef ret, LLVMTypeRef *args, int n) {
  LLVMValueRef f = LLVMGetNamedFunction(c->m, name);
  if (!f) f = LLVMAddFunction(c->m, name, LLVMFunctionType(ret, args, (unsigned)n, 0));
  return f;
}

LLVMValueRef cg_call(Cg *c, const char *name, LLVMTypeRef ret, LLVMValueRef *args, int n) {
  enum { MAX_ARGS = 8 }; /* rk_rank_thr has 8 */
  LLVMTypeRef at[MAX_ARGS];
  if (n > MAX_ARGS) abort(); /* a call the code generator writes with more arguments: a bug here */
  for (int k = 0; k < n; k++) at[k] = LLVMTypeOf(args[k]);
  LLVMValueRef f = cg_fn_decl(c, name, ret, at, n);
  return LLVMBuildCall2(c->b, LLVMGlobalGetValueType(f), f, args, (unsigned)n, "");
}

/* Loads ctx word K (once per function, in the entry block). */
LLVMValueRef cg_field(Cg *c, int k, bool isptr) {
  if (!c->field[k]) {
    LLVMValueRef ix = ci64(c, k);
    LLVMValueRef a = LLVMBuildGEP2(c->eb, c->i64, c->ctx, &ix, 1, "");
    c->field[k] = LLVMBuildLoad2(c->eb, isptr ? c->ptr : c->i64, a, "");
  }
  return c->field[k];
}

static LLVMValueRef load_i32_as_i64(Cg *c, LLVMValueRef base, LLVMValueRef i) {
  return LLVMBuildSExt(c->b, LLVMBuildLoad2(c->b, c->i32, gep(c, c->i32, base, i), ""), c->i64, "");
}

/* first sequence of group G, first token of sequence S */
LLVMValueRef cg_grp_seq(Cg *c, LLVMValueRef gi) { return load_i32_as_i64(c, cg_field(c, REIN_CTX_GRP_SEQ, true), gi); }
LLVMValueRef cg_seq_tok(Cg *c, LLVMValueRef s) { return load_i32_as_i64(c, cg_field(c, REIN_CTX_SEQ_TOK, true), s); }

/* The range [*lo, *hi) of elements of level E inside the current element of level R (R = batch:
 * the current view, groups g0..g1 of ctx). */
void cg_span(Cg *c, Level R, Level E, LLVMValueRef *lo, LLVMValueRef *hi) {
  LLVMValueRef r0, r1;
  if (R == LV_BATCH) {
    r0 = cg_field(c, REIN_CTX_G0, false);
    r1 = cg_field(c, REIN_CTX_G1, false);
  } else {
    r0 = c->ix[R];
    r1 = add1(c, r0);
  }
  if (R >= LV_GROUP && E <= LV_SEQ) r0 = cg_grp_seq(c, r0), r1 = cg_grp_seq(c, r1);
  if (R >= LV_SEQ && E == LV_TOKEN) r0 = cg_seq_tok(c, r0), r1 = cg_seq_tok(c, r1);
  *lo = r0;
  *hi = r1;
}

static LLVMValueRef to_f64(Cg *c, LLVMValueRef i64v) { return LLVMBuildSIToFP(c->b, i64v, c->f64, ""); }

/* ---- leaves and stored values ---- */

LLVMValueRef cg_store_addr(Cg *c, int i, LLVMValueRef *elt_index) {
  const IrNode *n = &c->g->n[i];
  if (c->sbuf[i]) /* an early scan in its buffer (cg.c, early_sweep): the current sequence's */
    return gep(c, c->f64, c->sbuf[i], LLVMBuildSub(c->b, elt_index ? *elt_index : c->ix[LV_TOKEN], c->sbuf_lo, ""));
  Level L = n->level;
  int arr = c->l->store[i];
  if (L == LV_BATCH) return gep(c, c->f64, cg_field(c, REIN_CTX_SLOTS, true), ci64(c, arr));
  static const int base_field[3] = {REIN_CTX_TOK_STORE, REIN_CTX_SEQ_STORE, REIN_CTX_GRP_STORE};
  static const int count_field[3] = {REIN_CTX_NTOKS, REIN_CTX_NSEQS, REIN_CTX_NGROUPS};
  LLVMValueRef off = LLVMBuildMul(c->b, ci64(c, arr), cg_field(c, count_field[L], false), "");
  off = LLVMBuildAdd(c->b, off, elt_index ? *elt_index : c->ix[L], "");
  return gep(c, c->f64, cg_field(c, base_field[L], true), off);
}

LLVMValueRef cg_input_array(Cg *c, const IrNode *n) {
  if (n->op == IR_INPUT) return cg_field(c, REIN_CTX_IN + n->idx, true);
  LLVMValueRef uin = cg_field(c, REIN_CTX_UIN, true);
  return LLVMBuildLoad2(c->b, c->ptr, gep(c, c->ptr, uin, ci64(c, n->idx)), "");
}

static LLVMValueRef input_value(Cg *c, const IrNode *n) {
  if (n->op == IR_INPUT && n->idx == IN_POS)
    return to_f64(c, LLVMBuildSub(c->b, c->ix[LV_TOKEN], cg_seq_tok(c, c->ix[LV_SEQ]), ""));
  if (n->op == IR_INPUT && n->idx == IN_LEN) {
    LLVMValueRef s = c->ix[LV_SEQ];
    return to_f64(c, LLVMBuildSub(c->b, cg_seq_tok(c, add1(c, s)), cg_seq_tok(c, s), ""));
  }
  Level L = n->op == IR_INPUT ? bi_inputs[n->idx].level : c->g->uinputs[n->idx].level;
  LLVMValueRef e = c->ix[L];
  return LLVMBuildFPExt(c->b, LLVMBuildLoad2(c->b, c->f32, gep(c, c->f32, cg_input_array(c, n), e), ""), c->f64, "");
}

/* count[R]() without a filter: the number of ELEV elements in the current R element. */
static LLVMValueRef shape_count(Cg *c, const IrNode *n) {
  if (n->rlevel == LV_BATCH) {
    static const int f[3] = {REIN_CTX_NTOKS, REIN_CTX_NSEQS, REIN_CTX_NGROUPS};
    return to_f64(c, cg_field(c, f[n->elev], false));
  }
  LLVMValueRef lo, hi;
  cg_span(c, n->rlevel, n->elev, &lo, &hi);
  return to_f64(c, LLVMBuildSub(c->b, hi, lo, ""));
}

static LLVMValueRef data_value(Cg *c, const IrNode *n) {
  if (n->op == IR_COUNT) return shape_count(c, n); /* count[L]() with no filter: a shape */
  switch (n->op) {
  case IR_CONST: return cf(c, n->num);
  case IR_PARAM:
    return LLVMBuildLoad2(c->b, c->f64, gep(c, c->f64, cg_field(c, REIN_CTX_PARAMS, true), ci64(c, n->idx)), "");
  case IR_INPUT:
  case IR_UINPUT: return input_value(c, n);
  case IR_UNIFORM: {
    LLVMValueRef gi = c->ix[LV_GROUP];
    LLVMValueRef a[4] = {cg_field(c, REIN_CTX_SEED, false), cg_field(c, REIN_CTX_STEP, false), gi,
                         LLVMBuildSub(c->b, c->ix[LV_SEQ], cg_grp_seq(c, gi), "")};
    return cg_call(c, "rk_uniform", c->f64, a, 4);
  }
  REIN_ELEM_OPS(OPS_CASE) /* not data (pl_is_data) */
  REIN_RED_OPS(OPS_CASE)
  case IR_NOPS: break;
  }
  abort();
}

/* A value of type f32 or f64 as type TY. */
static LLVMValueRef as_type(Cg *c, LLVMValueRef v, LLVMTypeRef ty) {
  LLVMTypeRef vt = LLVMTypeOf(v);
  if (vt == ty) return v;
  return ty == c->f32 ? LLVMBuildFPTrunc(c->b, v, ty, "") : LLVMBuildFPExt(c->b, v, ty, "");
}

bool cg_ranklt_in_place(const Cg *c, int i) {
  const IrNode *n = &c->g->n[i];
  int q = c->l->first[i]; /* the pass of the sibling op (it is not computed again elsewhere) */
  if (n->op != IR_RANKLT || c->gpu || q < 0) return false;
  const IrNode *x = &c->g->n[n->a[0]];
  return !pl_is_data(x) && c->l->store[n->a[0]] >= 0 && x->level == n->elev &&
         !cg_in_pass(&c->l->p->passes[q], n->a[0]);
}

int cg_ranklt_thr(const Cg *c, int i) { return c->l->thr[i] >= 0 && cg_ranklt_in_place(c, i) ? c->l->thr[i] : -1; }

/* ranklt[batch] node I's mask at the current element, from its threshold in slots S.. (mode,
 * key, position; rk_rank_thr): 1 where the mode is "all", or where the argument's key is below
 * the threshold's or equal to it at a position not after its. */
static LLVMValueRef ranklt_mask(Cg *c, int i, int s) {
  const IrNode *n = &c->g->n[i];
  LLVMValueRef slots = cg_field(c, REIN_CTX_SLOTS, true), x = cg_get(c, n->a[0]);
  LLVMValueRef mode = LLVMBuildLoad2(c->b, c->f64, gep(c, c->f64, slots, ci64(c, s)), "");
  LLVMValueRef t = LLVMBuildBitCast(c->b, LLVMBuildLoad2(c->b, c->f64, gep(c, c->f64, slots, ci64(c, s + 1)), ""),
                                    c->i64, "");
  LLVMValueRef pos = LLVMBuildFPToSI(c->b, LLVMBuildLoad2(c->b, c->f64, gep(c, c->f64, slots, ci64(c, s + 2)), ""),
                                     c->i64, ""); /* an integer below 2^53; -1 when unused */
  LLVMValueRef key = cg_call(c, "rk_rank_key", c->i64, &x, 1);
  LLVMValueRef below = LLVMBuildICmp(c->b, LLVMIntULT, key, t, "");
  LLVMValueRef tie = LLVMBuildAnd(c->b, LLVMBuildICmp(c->b, LLVMIntEQ, key, t, ""),
                                  LLVMBuildICmp(c->b, LLVMIntSLE, c->ix[n->elev], pos, ""), "");
  LLVMValueRef in = LLVMBuildAnd(c->b, fcmp(c, LLVMRealOEQ, mode, cf(c, 2)), LLVMBuildOr(c->b, below, tie, ""), "");
  return b2f(c, LLVMBuildOr(c->b, fcmp(c, LLVMRealOEQ, mode, cf(c, 1)), in, ""));
}

LLVMValueRef cg_get(Cg *c, int i) {
  if (c->val[i]) return as_type(c, c->val[i], c->f64);
  const IrNode *n = &c->g->n[i];
  if (pl_is_data(n)) return data_value(c, n);
  int s = cg_ranklt_thr(c, i);
  if (s >= 0) return ranklt_mask(c, i, s);
  return LLVMBuildLoad2(c->b, c->f64, cg_store_addr(c, i, NULL), "");
}

/* ---- element-wise ops ---- */

/* The element-wise op of node N on its argument values X of type T (f64, or f32 in a token loop
 * compiled for float arithmetic; ir_eval_elem's semantics), as the `code` column of REIN_ELEM_OPS
 * (ops.h) says: CALL(f) calls f, a routine of the kernel library or an LLVM intrinsic (in float:
 * its float version, see call_t); W is the instruction sequence CG_W below. */
#define K(v) LLVMConstReal(t, v)
#define B2F(bv) LLVMBuildSelect(b, bv, K(1), K(0), "")
#define NZ(v) LLVMBuildFCmp(b, LLVMRealUNE, v, K(0), "")
#define CG_CALL(f) call_t(c, f, t, x, ir_ops[n->op].nargs)
#define CG_FNEG LLVMBuildFNeg(b, x[0], "")
#define CG_NOT B2F(fcmp(c, LLVMRealOEQ, x[0], K(0)))
#define CG_SIGN                                                                                 \
  LLVMBuildSelect(b, fcmp(c, LLVMRealOGT, x[0], K(0)), K(1),                                    \
                  LLVMBuildSelect(b, fcmp(c, LLVMRealOLT, x[0], K(0)), K(-1), K(0), ""), "")
#define CG_ARG0 x[0]
#define CG_FADD LLVMBuildFAdd(b, x[0], x[1], "")
#define CG_FSUB LLVMBuildFSub(b, x[0], x[1], "")
#define CG_FMUL LLVMBuildFMul(b, x[0], x[1], "")
#define CG_FDIV LLVMBuildFDiv(b, x[0], x[1], "")
#define CG_MIN LLVMBuildSelect(b, fcmp(c, LLVMRealOLT, x[1], x[0]), x[1], x[0], "")
#define CG_MAX LLVMBuildSelect(b, fcmp(c, LLVMRealOGT, x[1], x[0]), x[1], x[0], "")
#define CG_LT B2F(fcmp(c, LLVMRealOLT, x[0], x[1]))
#define CG_LE B2F(fcmp(c, LLVMRealOLE, x[0], x[1]))
#define CG_GT B2F(fcmp(c, LLVMRealOGT, x[0], x[1]))
#define CG_GE B2F(fcmp(c, LLVMRealOGE, x[0], x[1]))
#define CG_EQ B2F(fcmp(c, LLVMRealOEQ, x[0], x[1]))
#define CG_NE B2F(fcmp(c, LLVMRealUNE, x[0], x[1]))
#define CG_AND B2F(LLVMBuildAnd(b, NZ(x[0]), NZ(x[1]), ""))
#define CG_OR B2F(LLVMBuildOr(b, NZ(x[0]), NZ(x[1]), ""))
#define CG_DMUL LLVMBuildSelect(b, fcmp(c, LLVMRealOEQ, x[0], K(0)), K(0), LLVMBuildFMul(b, x[0], x[1], ""), "")
#define CG_WHERE LLVMBuildSelect(b, NZ(x[0]), x[1], x[2], "")

/* The float32 routines of the kernel library (rk_lib.h); the others run in float64 on widened
 * arguments in a float loop. */
static const char *const float_routines[][2] = {
    {"rk_exp", "rk_expf"}, {"rk_log", "rk_logf"}, {"rk_sigmoid", "rk_sigmoidf"}};

/* Calls the float64 routine or intrinsic F (as ops.h names it) on X[N] of type T: itself for
 * f64; for f32 the intrinsic's .f32 overload, the library's float version, or F on widened
 * arguments with the result rounded to float. */
static LLVMValueRef call_t(Cg *c, const char *f, LLVMTypeRef t, LLVMValueRef *x, int n) {
  if (t == c->f64) return cg_call(c, f, t, x, n);
  size_t len = strlen(f);
  if (!strncmp(f, "llvm.", 5) && len > 4 && !strcmp(f + len - 4, ".f64")) {
    char name[64];
    snprintf(name, sizeof name, "%.*s.f32", (int)(len - 4), f);
    return cg_call(c, name, t, x, n);
  }
  for (size_t k = 0; k < sizeof float_routines / sizeof float_routines[0]; k++)
    if (!strcmp(f, float_routines[k][0])) return cg_call(c, float_routines[k][1], t, x, n);
  LLVMValueRef w[3];
  for (int k = 0; k < n; k++) w[k] = as_type(c, x[k], c->f64);
  return as_type(c, cg_call(c, f, c->f64, w, n), t);
}

static LLVMValueRef elem(Cg *c, const IrNode *n, LLVMValueRef *x, LLVMTypeRef t) {
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

/* ---- reduction states ---- */

/* The kernel library's reduction of each reduction op (the `state` column of REIN_RED_OPS). */
#define X_RK(ID, name, fn, cls, lo, hi, ddof, diff, state) [IR_##ID] = state,
static const int rk_ops[IR_NOPS] = {REIN_RED_OPS(X_RK)};
#undef X_RK
int cg_rk_op(IrOp op) { return rk_ops[op]; }

static LLVMValueRef st_ptr(Cg *c, LLVMValueRef st, int k) { return gep(c, c->f64, st, ci64(c, k)); }

void cg_state_zero(Cg *c, int i) {
  for (int k = 0; k < 3; k++) LLVMBuildStore(c->b, cf(c, 0), st_ptr(c, c->acc[i], k));
}

void cg_st_copy(Cg *c, LLVMValueRef dst, LLVMValueRef src) {
  for (int k = 0; k < 3; k++)
    LLVMBuildStore(c->b, LLVMBuildLoad2(c->b, c->f64, st_ptr(c, src, k), ""), st_ptr(c, dst, k));
}

static LLVMValueRef reassoc_fadd(Cg *c, LLVMValueRef x, LLVMValueRef y) {
  LLVMValueRef v = LLVMBuildFAdd(c->b, x, y, "");
  LLVMSetFastMathFlags(v, LLVMFastMathAllowReassoc);
  return v;
}

/* ---- block partials (cg_in_block) ----
 *
 * Float block sums.  A float32 token loop computes each token's value in float; summing them into
 * float64 costs a conversion of every vector to two and two float64 additions per reduction, about
 * a fifth of the instructions of the GRPO/PPO/REC token loops.  Summed in float over a block of at
 * most CG_BLOCK tokens (at most CG_BLOCK / 16 per vector lane, then the lanes' tree), a
 * block's partial has an error below about 2^-24 * 20 of the sum of its |values|; the blocks are
 * added to the float64 state in order, so the bits are the same for any threads or micro-batches.
 * The count is exact (a float holds integers to 2^24).  Only a reduction whose value goes to the
 * loss and the metrics alone (CgLayout.report) is summed so: a mean that whitens an advantage
 * (REINFORCE++'s mean[batch] of the returns) is subtracted from values near it, and that
 * cancellation turned the float partials' error into 2e-5 of the gradient.
 *
 * Block variances.  Welford's update is a division on one dependency chain per token (about 22
 * cycles), and a call that keeps the loop scalar.  A variance or standard deviation over tokens
 * (either precision) instead sums, in float64 over the block, the kept tokens' count n and their
 * deviations d = x - K from a shift K fixed for the block: S1 = sum d, S2 = sum d^2, a loop the
 * vectorizer widens.  The block is then the Welford state (n, K + S1/n, S2 - S1^2/n) and is merged
 * into the running state by Chan's formula (rk_merge).  K is the running mean before the block, or
 * while the state is empty the block's first value (when it is kept and finite; else 0), so d is
 * small beside x and S2 - S1^2/n cancels little: its relative error is about
 * 2^-53 (K - block mean)^2 / variance.  Order and bits are fixed as for the sums. */
enum { PART_N, PART_S1, PART_S2, PART_K };

/* An early reduction (PlPass.early) is accumulated token by token in its own loop: no blocks. */
static bool block_var(const Cg *c, int i) {
  const IrNode *n = &c->g->n[i];
  if (ir_ops[n->op].cls != 'r' || (c->ps && pl_early(c->ps, i))) return false;
  int op = cg_rk_op(n->op);
  return !c->gpu && n->elev == LV_TOKEN && (op == RK_VAR || op == RK_STD);
}

static bool block_sum(const Cg *c, int i) {
  const IrNode *n = &c->g->n[i];
  if (ir_ops[n->op].cls != 'r' || (c->ps && pl_early(c->ps, i))) return false;
  int op = cg_rk_op(n->op);
  return !c->gpu && c->tok_f32 && n->elev == LV_TOKEN && c->l->report[i] &&
         (op == RK_SUM || op == RK_MEAN || op == RK_COUNT);
}

bool cg_in_block(const Cg *c, int i) { return block_sum(c, i) || block_var(c, i); }
bool cg_block_shift(const Cg *c, int i) { return block_var(c, i); }

/* The partial's element type: float for a block sum, double for a block variance. */
static LLVMTypeRef part_type(Cg *c, int i) { return block_var(c, i) ? c->f64 : c->f32; }
static LLVMValueRef part_ptr(Cg *c, int i, int k) { return gep(c, part_type(c, i), c->part[i], ci64(c, k)); }
static LLVMValueRef part_load(Cg *c, int i, int k) { return LLVMBuildLoad2(c->b, part_type(c, i), part_ptr(c, i, k), ""); }

void cg_part_zero(Cg *c, int i) {
  LLVMTypeRef t = part_type(c, i);
  if (!c->part[i]) c->part[i] = LLVMBuildAlloca(c->eb, LLVMArrayType(t, block_var(c, i) ? 4 : 2), "part");
  for (int k = 0; k < (block_var(c, i) ? 3 : 2); k++) LLVMBuildStore(c->b, LLVMConstReal(t, 0), part_ptr(c, i, k));
  if (block_var(c, i)) { /* K: the running mean; while the state is empty, the block's first value */
    const IrNode *nd = &c->g->n[i];
    LLVMValueRef n = LLVMBuildLoad2(c->b, c->f64, st_ptr(c, c->acc[i], 0), "");
    LLVMValueRef m = LLVMBuildLoad2(c->b, c->f64, st_ptr(c, c->acc[i], 1), "");
    LLVMValueRef x0 = cg_get(c, nd->a[0]); /* at the first token: cg.c computed it there */
    LLVMValueRef ok = fcmp(c, LLVMRealOLT, cg_call(c, "llvm.fabs.f64", c->f64, &x0, 1), cf(c, INFINITY));
    if (nd->a[1] >= 0) ok = LLVMBuildAnd(c->b, ok, nz(c, cg_get(c, nd->a[1])), "");
    LLVMValueRef first = LLVMBuildSelect(c->b, ok, x0, cf(c, 0), "");
    LLVMBuildStore(c->b, LLVMBuildSelect(c->b, fcmp(c, LLVMRealOGT, n, cf(c, 0)), m, first, ""),
                   part_ptr(c, i, PART_K));
  }
}

void cg_part_flush(Cg *c, int i, LLVMValueRef ntok) {
  if (block_var(c, i)) {
    LLVMValueRef n = part_load(c, i, PART_N), s1 = part_load(c, i, PART_S1);
    LLVMValueRef s2 = part_load(c, i, PART_S2), k = part_load(c, i, PART_K);
    LLVMValueRef mean = LLVMBuildFAdd(c->b, k, LLVMBuildFDiv(c->b, s1, n, ""), "");
    LLVMValueRef m2 = LLVMBuildFSub(c->b, s2, LLVMBuildFDiv(c->b, LLVMBuildFMul(c->b, s1, s1, ""), n, ""), "");
    m2 = LLVMBuildSelect(c->b, fcmp(c, LLVMRealOLT, m2, cf(c, 0)), cf(c, 0), m2, ""); /* NaN stays */
    LLVMValueRef blk = LLVMBuildAlloca(c->eb, LLVMArrayType(c->f64, 3), "blk");
    LLVMValueRef v[3] = {n, mean, m2};
    for (int q = 0; q < 3; q++) LLVMBuildStore(c->b, v[q], st_ptr(c, blk, q));
    LLVMValueRef a[3] = {ci32(c, cg_rk_op(c->g->n[i].op)), c->acc[i], blk}; /* n = 0: no change */
    cg_call(c, "rk_merge", LLVMVoidTypeInContext(c->cx), a, 3);
    return;
  }
  for (int k = 0; k < 2; k++) {
    LLVMValueRef p = st_ptr(c, c->acc[i], k);
    LLVMValueRef v = LLVMBuildFPExt(c->b, part_load(c, i, k), c->f64, "");
    if (k == 0 && c->g->n[i].a[1] < 0) v = LLVMBuildSIToFP(c->b, ntok, c->f64, "");
    LLVMBuildStore(c->b, LLVMBuildFAdd(c->b, LLVMBuildLoad2(c->b, c->f64, p, ""), v, ""), p);
  }
}

/* Adds V to part K of reduction I (a reassociable sum: the vectorizer splits it into lanes). */
static void part_add(Cg *c, int i, int k, LLVMValueRef v) {
  LLVMBuildStore(c->b, reassoc_fadd(c, part_load(c, i, k), v), part_ptr(c, i, k));
}

/* Feeds the current element into reduction I's state. */
void cg_accumulate(Cg *c, int i) {
  const IrNode *n = &c->g->n[i];
  LLVMValueRef st = c->acc[i];
  LLVMValueRef keep = n->a[1] >= 0 ? nz(c, cg_get(c, n->a[1])) : LLVMConstInt(c->i1, 1, 0);
  LLVMValueRef x = n->a[0] >= 0 ? cg_get(c, n->a[0]) : cf(c, 1);
  int op = cg_rk_op(n->op);
  if (block_var(c, i)) {
    LLVMValueRef d = LLVMBuildSelect(c->b, keep, LLVMBuildFSub(c->b, x, part_load(c, i, PART_K), ""), cf(c, 0), "");
    part_add(c, i, PART_N, b2f(c, keep));
    part_add(c, i, PART_S1, d);
    part_add(c, i, PART_S2, LLVMBuildFMul(c->b, d, d, ""));
    return;
  }
  if (block_sum(c, i)) { /* the float partial of the current block */
    LLVMValueRef zero = LLVMConstReal(c->f32, 0);
    if (n->a[1] >= 0) /* without a filter the block's count is its length (cg_part_flush) */
      part_add(c, i, 0, LLVMBuildSelect(c->b, keep, LLVMConstReal(c->f32, 1), zero, ""));
    if (op != RK_COUNT) part_add(c, i, 1, LLVMBuildSelect(c->b, keep, LLVMBuildFPTrunc(c->b, x, c->f32, ""), zero, ""));
    return;
  }
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
  cg_call(c, "rk_acc", LLVMVoidTypeInContext(c->cx), a, 4);
}

LLVMValueRef cg_finish(Cg *c, const IrNode *n, LLVMValueRef st) {
  LLVMValueRef a[3] = {ci32(c, cg_rk_op(n->op)), ci32(c, n->ddof), st};
  return cg_call(c, "rk_finish", c->f64, a, 3);
}

void cg_block_reduce(Cg *c, int i) {
  LLVMValueRef a[2] = {ci32(c, cg_rk_op(c->g->n[i].op)), c->acc[i]};
  cg_call(c, "rk_block_reduce", LLVMVoidTypeInContext(c->cx), a, 2);
}

void cg_new_state(Cg *c, int i) {
  c->acc[i] = LLVMBuildAlloca(c->eb, LLVMArrayType(c->f64, 3), "st");
}

/* ---- the dispatch ---- */

/* [*lo, *hi] contains node I's value unless it is NaN: constants, and min/max of such bounds
 * (clamp(x, a, b) lowers to min(max(x, a), b)); infinite where nothing is known. */
static void bounds(const IrGraph *g, int i, double *lo, double *hi) {
  const IrNode *n = &g->n[i];
  *lo = -INFINITY, *hi = INFINITY;
  if (n->op == IR_CONST) *lo = *hi = n->num;
  if (n->op != IR_MIN && n->op != IR_MAX) return;
  double l0, h0, l1, h1;
  bounds(g, n->a[0], &l0, &h0);
  bounds(g, n->a[1], &l1, &h1);
  bool mn = n->op == IR_MIN;
  *lo = mn ? fmin(l0, l1) : fmax(l0, l1);
  *hi = mn ? fmin(h0, h1) : fmax(h0, h1);
}

/* Token values are computed in float when the module's token arithmetic is float32 (c->tok_f32);
 * everything else, and every reduction state, in float64.  A float exp whose argument is clamped
 * inside [-86, 88] (GRPO's and PPO's exp(clamp(logp - old_logp, -20, 20))) is rk_expf_near: the
 * same bits, without rk_expf's clamp and second scaling (8 of GRPO's 75 vector instructions per
 * 16 tokens). */
void cg_compute(Cg *c, int i) {
  const IrNode *n = &c->g->n[i];
  LLVMTypeRef t = c->tok_f32 && n->level == LV_TOKEN ? c->f32 : c->f64;
  LLVMValueRef x[3] = {NULL, NULL, NULL};
  for (int k = 0; k < ir_ops[n->op].nargs; k++) x[k] = as_type(c, cg_get(c, n->a[k]), t);
  double lo, hi;
  if (n->op == IR_EXP && t == c->f32 && (bounds(c->g, n->a[0], &lo, &hi), lo >= -86 && hi <= 88))
    c->val[i] = cg_call(c, "rk_expf_near", t, x, 1);
  else
    c->val[i] = elem(c, n, x, t);
}
