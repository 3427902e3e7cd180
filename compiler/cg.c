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
 * On the CPU, a token loop whose pass has block reductions (cg_in_block: float sums for the loss
 * and metrics, shifted sums for variances) runs inside a loop over blocks of CG_BLOCK tokens; each
 * block's partials start before it and join the reduction states after it.
 * Values live in registers inside their pass; a value read by another pass is stored in an array
 * of its level (CgLayout.store); batch-level values always live in slots.  Batch-level
 * reductions are accumulated per group into `records`, then merged in group order into `states`
 * by the pass's merge function, which makes the result independent of threads and micro-batches.
 *
 * On the GPU a groups function is a kernel with one block per group.  The pass's finest level is
 * the parallel one: its loop is split among the block's threads, reductions over its elements are
 * per-thread states merged by rk_block_reduce when they close; coarser values are computed by
 * every thread alike (uniform), and only thread 0 stores them.
 *
 * This file is the structure: the entry points, the loop nests and the order of each level's
 * body, the stores, and on the GPU the thread-0 guards and barriers.  The code of one value at
 * the current element (leaves, loads, element-wise ops, reduction states) is cg_value.c's; the
 * memory plan and the phase of each node are cg_layout.c's.  Both are below this file: they never
 * call into it.
 */
#include "cg_internal.h"

#include <llvm-c/DebugInfo.h>

#include <stdlib.h>
#include <string.h>

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

/* Closes loop L; WIDTH > 0 asks the loop vectorizer for that many lanes, not interleaved
 * (llvm.loop metadata): a widened token loop fills the vector registers already, and a second
 * copy spilled them (GRPO's loop: 8 % slower, CISPO's 16 %). */
static void loop_end_width(Cg *c, Loop *L, unsigned width) {
  LLVMValueRef next = LLVMBuildAdd(c->b, L->phi, L->step, "");
  LLVMBasicBlockRef latch = LLVMGetInsertBlock(c->b);
  LLVMAddIncoming(L->phi, &next, &latch, 1);
  LLVMValueRef br = LLVMBuildBr(c->b, L->head);
  if (width) {
    LLVMMetadataRef self = LLVMTemporaryMDNode(c->cx, NULL, 0);
    LLVMMetadataRef w[2] = {LLVMMDStringInContext2(c->cx, "llvm.loop.vectorize.width", 25),
                            LLVMValueAsMetadata(ci32(c, (int)width))};
    LLVMMetadataRef w2[2] = {LLVMMDStringInContext2(c->cx, "llvm.loop.interleave.count", 26),
                             LLVMValueAsMetadata(ci32(c, 1))};
    LLVMMetadataRef ops[3] = {self, LLVMMDNodeInContext2(c->cx, w, 2), LLVMMDNodeInContext2(c->cx, w2, 2)};
    LLVMMetadataRef loop = LLVMMDNodeInContext2(c->cx, ops, 3);
    LLVMMetadataReplaceAllUsesWith(self, loop);
    LLVMSetMetadata(br, LLVMGetMDKindIDInContext(c->cx, "llvm.loop", 9), LLVMMetadataAsValue(c->cx, loop));
  }
  LLVMPositionBuilderAtEnd(c->b, L->exit);
}

static void loop_end(Cg *c, Loop *L) { loop_end_width(c, L, 0); }

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
  if (c->gpu) cg_call(c, "llvm.nvvm.barrier0", LLVMVoidTypeInContext(c->cx), NULL, 0);
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
  c->fill_used = false;
  c->nt_grads = false;
  memset(c->ix, 0, sizeof c->ix);
  memset(c->val, 0, sizeof(LLVMValueRef) * (size_t)c->g->nn);
  memset(c->acc, 0, sizeof(LLVMValueRef) * (size_t)c->g->nn);
  memset(c->part, 0, sizeof(LLVMValueRef) * (size_t)c->g->nn);
  memset(c->sbuf, 0, sizeof(LLVMValueRef) * (size_t)c->g->nn);
  if (c->gpu) {
    c->tid = LLVMBuildZExt(c->eb, LLVMBuildCall2(c->eb, LLVMFunctionType(c->i32, NULL, 0, 0),
                                                 cg_fn_decl(c, "llvm.nvvm.read.ptx.sreg.tid.x", c->i32, NULL, 0), NULL, 0, ""),
                           c->i64, "tid");
    c->ntid = LLVMBuildZExt(c->eb, LLVMBuildCall2(c->eb, LLVMFunctionType(c->i32, NULL, 0, 0),
                                                  cg_fn_decl(c, "llvm.nvvm.read.ptx.sreg.ntid.x", c->i32, NULL, 0), NULL, 0, ""),
                            c->i64, "ntid");
  } else {
    c->tid = ci64(c, 0);
    c->ntid = ci64(c, 1);
  }
}

static void fn_end(Cg *c) {
  if (c->fill_used) /* fill_grad's non-temporal stores are weakly ordered: done before returning */
    cg_call(c, "llvm.x86.sse.sfence", LLVMVoidTypeInContext(c->cx), NULL, 0);
  LLVMBuildRetVoid(c->b);
  LLVMBuildBr(c->eb, LLVMGetNextBasicBlock(c->entry));
}

/* ---- the sweep: stores, sibling ops, the body of each level ---- */

/* Gradient value V (float, the same for every token of the range: a value of a coarser level)
 * into GP[lo..hi), on an x86 host (c->nt_fill).  The whole 64-byte lines inside the range are
 * written by non-temporal stores of 16 lanes: a gradient array is the largest write of a step and
 * is overwritten whole, so reading it into the cache first (a plain store's read for ownership)
 * would double its traffic.  The partial lines at either end get plain stores; the values are the
 * same either way. */
static void fill_grad(Cg *c, LLVMValueRef gp, LLVMValueRef v, LLVMValueRef lo, LLVMValueRef hi) {
  LLVMValueRef addr = LLVMBuildPtrToInt(c->b, gep(c, c->f32, gp, lo), c->i64, "");
  LLVMValueRef pad = LLVMBuildAnd(c->b, LLVMBuildNeg(c->b, addr, ""), ci64(c, 63), ""); /* bytes to a line */
  pad = LLVMBuildLShr(c->b, pad, ci64(c, 2), "");
  LLVMValueRef a = LLVMBuildAdd(c->b, lo, pad, "");
  a = LLVMBuildSelect(c->b, LLVMBuildICmp(c->b, LLVMIntSLT, a, hi, ""), a, hi, "");
  LLVMValueRef z = LLVMBuildAdd(c->b, a, LLVMBuildAnd(c->b, LLVMBuildSub(c->b, hi, a, ""), ci64(c, -16), ""), "");
  LLVMValueRef ends[3][2] = {{lo, a}, {a, z}, {z, hi}};
  LLVMTypeRef vt = LLVMVectorType(c->f32, 16);
  LLVMValueRef splat = LLVMBuildShuffleVector(c->b, LLVMBuildInsertElement(c->b, LLVMGetPoison(vt), v, ci32(c, 0), ""),
                                              LLVMGetPoison(vt), LLVMConstNull(LLVMVectorType(c->i32, 16)), "");
  c->fill_used = true; /* the function ends with a fence (fn_end) */
  for (int r = 0; r < 3; r++) {
    Loop L;
    LLVMValueRef t = loop_begin(c, &L, ends[r][0], ends[r][1], ci64(c, r == 1 ? 16 : 1));
    LLVMValueRef st = LLVMBuildStore(c->b, r == 1 ? splat : v, gep(c, c->f32, gp, t));
    if (r == 1) {
      LLVMSetAlignment(st, 64);
      LLVMMetadataRef one = LLVMValueAsMetadata(ci32(c, 1));
      LLVMSetMetadata(st, LLVMGetMDKindIDInContext(c->cx, "nontemporal", 11),
                      LLVMMetadataAsValue(c->cx, LLVMMDNodeInContext2(c->cx, &one, 1)));
    }
    loop_end(c, &L);
  }
}

/* Writes value V of the current element of level L to the gradient K of each of its tokens. */
static void write_grad(Cg *c, int k, Level L, LLVMValueRef v) {
  LLVMValueRef gp = cg_field(c, REIN_CTX_GRAD + k, true);
  LLVMValueRef v32 = LLVMBuildFPTrunc(c->b, v, c->f32, "");
  if (L == LV_TOKEN) {
    LLVMValueRef st = LLVMBuildStore(c->b, v32, gep(c, c->f32, gp, c->ix[LV_TOKEN]));
    if (c->nt_grads) /* the mark cg_target.c looks for once the store is widened (nt_tokens) */
      LLVMSetMetadata(st, LLVMGetMDKindIDInContext(c->cx, "alias.scope", 11),
                      LLVMMetadataAsValue(c->cx, cg_nt_scope(c->cx)));
    return;
  }
  LLVMValueRef lo, hi;
  cg_span(c, L, LV_TOKEN, &lo, &hi);
  if (c->nt_fill) {
    fill_grad(c, gp, v32, lo, hi);
    return;
  }
  Loop lp;
  LLVMValueRef t = loop_split(c, &lp, lo, hi, L != c->par); /* a uniform value: split the writes */
  LLVMBuildStore(c->b, v32, gep(c, c->f32, gp, t));
  loop_end(c, &lp);
}

/* Is node I stored by the current pass?  A token value is stored by the first pass that computes
 * it only: a later pass that computes it again (rematerialized) would write the same values once
 * more (KL-Cov's micro pass wrote -cov's 8 bytes a token for nothing). */
static bool stores(const Cg *c, int i) {
  const IrNode *n = &c->g->n[i];
  if (c->l->store[i] < 0 || ir_ops[n->op].cls == 's') return false; /* a sibling's routine writes it */
  return n->level != LV_TOKEN || c->l->first[i] == c->pass_index;
}

/* Stores node I (computed at the current element of its level), and writes it as a gradient. */
static void store_out(Cg *c, int i) {
  const IrNode *n = &c->g->n[i];
  bool uniform = n->level != c->par;
  if (stores(c, i)) {
    LLVMBasicBlockRef after = guard_begin(c, uniform);
    LLVMBuildStore(c->b, cg_get(c, i), cg_store_addr(c, i, NULL));
    guard_end(c, after);
  }
  if (!c->write_grads) return;
  for (int k = 0; k < IR_NGRADS; k++)
    if (c->g->grad[k] == i) write_grad(c, k, n->level, cg_get(c, i));
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
  cg_span(c, at, inner, &lo, &hi);
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
  LLVMBuildStore(c->b, cg_get(c, n->a[0]), gep(c, c->f64, d->vals, off));
  if (d->keeps) {
    LLVMValueRef k = n->a[1] >= 0 ? b2f(c, nz(c, cg_get(c, n->a[1]))) : cf(c, 1);
    LLVMBuildStore(c->b, k, gep(c, c->f64, d->keeps, off));
  }
}

/* The size of one of the 6 regions of ctx scratch: max(ntoks, nseqs) + 1 doubles (i64). */
static LLVMValueRef scratch_region(Cg *c) {
  LLVMValueRef nt = cg_field(c, REIN_CTX_NTOKS, false), ns = cg_field(c, REIN_CTX_NSEQS, false);
  return add1(c, LLVMBuildSelect(c->b, LLVMBuildICmp(c->b, LLVMIntSGT, nt, ns, ""), nt, ns, ""));
}

/* rank/ranklt/argmax/argmin/cumsum/revcumsum node I over the children of the current element of
 * its rlevel: gathers the argument into scratch (ranklt on the host: reads an earlier pass's array
 * of it in place), then rk_rank/rk_rank_lt/rk_argext/rk_scan write the node's array. */
static void sibling(Cg *c, int i) {
  const IrNode *n = &c->g->n[i];
  LLVMBasicBlockRef after = guard_begin(c, true);
  LLVMValueRef lo, hi;
  if (n->rlevel == LV_BATCH) {
    LLVMValueRef g0 = cg_field(c, REIN_CTX_G0, false), g1 = cg_field(c, REIN_CTX_G1, false);
    lo = cg_grp_seq(c, g0), hi = cg_grp_seq(c, g1);
    if (n->elev == LV_TOKEN) lo = cg_seq_tok(c, lo), hi = cg_seq_tok(c, hi);
    if (n->elev == LV_GROUP) lo = g0, hi = g1;
  } else {
    cg_span(c, n->rlevel, n->elev, &lo, &hi);
  }
  LLVMValueRef cnt = LLVMBuildSub(c->b, hi, lo, "");
  /* scratch regions of max(ntoks, nseqs) + 1 each: values, keeps / indices, temporaries; three
   * for siblings over tokens and three more for siblings over sequences or groups.  The element
   * index ranges [lo, hi) of one level are disjoint between the units that threads work on at
   * once, but a token range and a sequence range may overlap: rank[seq] of a token value and
   * rank[group] of a sequence value in one pass would otherwise share scratch across threads. */
  LLVMValueRef reg = scratch_region(c);
  LLVMValueRef sc = cg_field(c, REIN_CTX_SCRATCH, true);
  if (n->elev != LV_TOKEN) sc = gep(c, c->f64, sc, LLVMBuildMul(c->b, reg, ci64(c, 3), ""));
  SibData d = {i, lo, gep(c, c->f64, sc, lo), NULL};
  LLVMValueRef r2 = gep(c, c->f64, sc, LLVMBuildAdd(c->b, reg, lo, ""));
  LLVMValueRef r3 = gep(c, c->f64, sc, LLVMBuildAdd(c->b, LLVMBuildMul(c->b, reg, ci64(c, 2), ""), lo, ""));
  if (n->op == IR_ARGMAX || n->op == IR_ARGMIN) d.keeps = r2;
  /* ranklt reads its argument in place where it is an array of the argument's level (a value of
   * an earlier pass, the elements [lo, hi) in a row): KL-Cov's and Clip-Cov's select read the
   * 16M float64 values of -cov where the statistics pass stored them, without a copy on one
   * thread first (a third of the select's time); the others are gathered into scratch */
  LLVMValueRef x = d.vals;
  int thr = cg_ranklt_thr(c, i);
  if (cg_ranklt_in_place(c, i)) {
    LLVMValueRef e = lo;
    x = cg_store_addr(c, n->a[0], &e);
  } else {
    for_each(c, n->rlevel, n->elev, n->rlevel, sib_gather, &d);
  }
  LLVMValueRef elt = lo;
  LLVMValueRef out = cg_store_addr(c, i, &elt);
  if (OPS_IS_SCAN(n->op)) { /* rlevel seq: the discount is read at the current sequence */
    LLVMValueRef gamma = n->a[1] >= 0 ? cg_get(c, n->a[1]) : cf(c, 1);
    LLVMValueRef a[5] = {d.vals, cnt, gamma, ci32(c, n->op == IR_CUMSUM ? 1 : -1), out};
    cg_call(c, "rk_scan", LLVMVoidTypeInContext(c->cx), a, 5);
  } else if (n->op == IR_RANK) {
    LLVMValueRef a[5] = {d.vals, cnt, out, r2, r3};
    cg_call(c, "rk_rank", LLVMVoidTypeInContext(c->cx), a, 5);
  } else if (thr >= 0) { /* ranklt[batch] read in place: a threshold, no marks */
    LLVMValueRef ts = gep(c, c->f64, cg_field(c, REIN_CTX_SLOTS, true), ci64(c, thr));
    LLVMValueRef a[8] = {x, cnt, cg_get(c, n->a[1]), ts, out, d.vals, r2, r3};
    cg_call(c, "rk_rank_thr", LLVMVoidTypeInContext(c->cx), a, 8);
    LLVMValueRef p = gep(c, c->f64, ts, ci64(c, 2)); /* the position in the batch's tokens */
    LLVMBuildStore(c->b, LLVMBuildFAdd(c->b, LLVMBuildLoad2(c->b, c->f64, p, ""), LLVMBuildSIToFP(c->b, lo, c->f64, ""), ""), p);
  } else if (n->op == IR_RANKLT) { /* the bound is read at the current element of the rlevel */
    LLVMValueRef a[7] = {x, cnt, cg_get(c, n->a[1]), out, d.vals, r2, r3};
    cg_call(c, "rk_rank_lt", LLVMVoidTypeInContext(c->cx), a, 7);
  } else {
    LLVMValueRef a[5] = {d.vals, d.keeps, cnt, ci32(c, n->op == IR_ARGMAX ? 1 : -1), out};
    cg_call(c, "rk_argext", LLVMVoidTypeInContext(c->cx), a, 5);
  }
  guard_end(c, after);
  barrier(c);
}

/* Does reduction I close at level L?  (Batch reductions close per group, into records.) */
static bool closes_at(const IrNode *n, Level L) {
  return n->rlevel == L || (L == LV_GROUP && n->rlevel == LV_BATCH);
}

/* Is the pass's token loop widened to c->tok_lanes lanes (cg_float_lanes: a whole vector register
 * of float, 8 or 16)?  Every float token loop: the vectorizer's own choice, 4 lanes, is set by
 * the float64 reduction accumulators and leaves most of each vector unused.  This was once kept
 * to loops that compute exp, log or sigmoid, because 8 lanes with the vectorizer's 4 copies
 * (interleave) had spilled opmd_seq's accumulators; with one copy (loop_end_width) and
 * prefetching, widening all of them made GMPO's two micro passes 1.19x faster and no objective
 * slower beyond 3 % (opmd; docs/performance.md). */
static bool tok_wide(const Cg *c) { return c->tok_f32; }

/* Is gradient K a token value that the current pass computes (and, in the micro stage, writes)? */
static bool token_grad(const Cg *c, int k) {
  int i = c->g->grad[k];
  return i >= 0 && c->g->n[i].level == LV_TOKEN && cg_in_pass(c->ps, i);
}

/* Does the pass's token loop write its token-level gradient with non-temporal stores?  On an
 * x86 host (c->nt_fill), the micro pass's float token loop, widened to c->tok_lanes lanes: its
 * blocks are cut so that each but the first starts where the gradient's address is a multiple of
 * a vector (the first, shorter than a vector, never runs the vector body), and after LLVM's
 * pipeline cg_target.c makes the widened gradient stores of such a function (attribute
 * CG_NT_ATTR, alias scope cg_nt_scope) aligned and non-temporal.  The token loop cannot say so
 * itself: the vectorizer widens no non-temporal store whose alignment it cannot prove.  A plain
 * store reads each line of the gradient before writing it (the measured gains: docs/performance.md,
 * "non-temporal token gradients").  The first block's
 * end comes from the gradient's address: any array is safe, and the runtime's, 64-byte aligned,
 * give the same blocks, hence the same bits, run after run. */
static int nt_grad_of(const Cg *c) {
  int found = -1;
  for (int k = 0; k < IR_NGRADS; k++)
    if (token_grad(c, k)) found = found < 0 ? k : IR_NGRADS; /* two: their arrays' alignments could differ */
  return found;
}

static bool nt_tokens(const Cg *c) {
  if (c->gpu || !c->nt_fill || !c->write_grads || !tok_wide(c)) return false;
  int k = nt_grad_of(c);
  return k >= 0 && k < IR_NGRADS;
}

/* Does the pass accumulate any reduction over its tokens block by block (cg_in_block)? */
static bool has_blocks(const Cg *c) {
  for (int j = 0; j < c->ps->nnodes; j++)
    if (cg_in_block(c, c->ps->nodes[j])) return true;
  return false;
}

/* Starts the partials of the pass's block reductions for the block starting at token LO: the
 * pass's token values are computed at LO first, for the shift of a block variance
 * (cg_part_zero), then forgotten (the token loop computes them again at each token). */
static void block_start(Cg *c, LLVMValueRef lo) {
  c->ix[LV_TOKEN] = lo;
  bool shift = false; /* a block variance, whose shift reads the first token's values */
  for (int j = 0; j < c->ps->nnodes; j++) shift = shift || cg_block_shift(c, c->ps->nodes[j]);
  for (int j = 0; shift && j < c->ps->nnodes; j++) {
    int i = c->ps->nodes[j];
    if (c->g->n[i].level == LV_TOKEN && ir_ops[c->g->n[i].op].cls == 'e') cg_compute(c, i);
  }
  for (int j = 0; j < c->ps->nnodes; j++)
    if (cg_in_block(c, c->ps->nodes[j])) cg_part_zero(c, c->ps->nodes[j]);
  for (int j = 0; j < c->ps->nnodes; j++)
    if (c->g->n[c->ps->nodes[j]].level == LV_TOKEN) c->val[c->ps->nodes[j]] = NULL;
  c->ix[LV_TOKEN] = NULL;
}

/* Ends the partials of the pass's block reductions for a block of NTOK tokens. */
static void block_end(Cg *c, LLVMValueRef ntok) {
  for (int j = 0; j < c->ps->nnodes; j++)
    if (cg_in_block(c, c->ps->nodes[j])) cg_part_flush(c, c->ps->nodes[j], ntok);
}

static void prefetch(Cg *c, LLVMValueRef p, bool write) {
  LLVMTypeRef at[4] = {c->ptr, c->i32, c->i32, c->i32};
  LLVMValueRef f = cg_fn_decl(c, "llvm.prefetch.p0", LLVMVoidTypeInContext(c->cx), at, 4);
  LLVMValueRef a[4] = {p, ci32(c, write), ci32(c, 3), ci32(c, 1)}; /* all cache levels, data */
  LLVMBuildCall2(c->b, LLVMGlobalGetValueType(f), f, a, 4, "");
}

/* One array that prefetch_tokens fetches: the float array of input or user-input node ID (KIND
 * 'i') or of gradient ID ('g', written); or the float64 array of node ID, of an earlier pass
 * ('s') or of this one ('w', written). */
typedef struct {
  char kind;
  int id;
} CgStream;

static void add_stream(CgStream *st, int *n, char kind, int id) {
  for (int q = 0; q < *n; q++)
    if (st[q].kind == kind && st[q].id == id) return;
  if (*n < CG_PREFETCH_STREAMS) st[(*n)++] = (CgStream){kind, id};
}

/* Before a token loop over [LO, HI) on the CPU: the pass's token arrays, CG_PREFETCH tokens
 * ahead, one prefetch a cache line -- the float inputs and user inputs it reads, the float64
 * arrays of earlier passes it reads, and, for writing, the gradients and float64 arrays it writes
 * token by token, an early scan's among them (at most CG_PREFETCH_STREAMS arrays; REINFORCE++'s
 * prologue 1.09x faster with its scan's).  A token loop computes between its loads,
 * so fewer of them are in flight than in a copy, and the hardware prefetcher alone left them
 * waiting (perf: the loop's first load held a third of GRPO's samples); with this GRPO's micro
 * pass went from 62 % to 78 % of memcpy's rate (docs/performance.md).  A prefetch past the end
 * of an array is harmless: it never faults. */
static void prefetch_tokens(Cg *c, LLVMValueRef lo, LLVMValueRef hi) {
  const IrGraph *g = c->g;
  CgStream st[CG_PREFETCH_STREAMS];
  int n = 0;
  for (int j = 0; j < c->ps->nnodes; j++) {
    const IrNode *nd = &g->n[c->ps->nodes[j]];
    if (ir_ops[nd->op].cls == 's') continue; /* gathered outside the token loop (sibling) */
    for (int k = 0; k < ir_nslots(nd); k++) {
      int a = nd->a[k];
      if (a < 0 || g->n[a].level != LV_TOKEN) continue;
      const IrNode *x = &g->n[a];
      if ((x->op == IR_INPUT && x->idx != IN_POS && x->idx != IN_LEN) || x->op == IR_UINPUT)
        add_stream(st, &n, 'i', a);
      else if (cg_ranklt_thr(c, a) >= 0) { /* no marks: the argument is read instead */
        int xa = x->a[0];
        if (!cg_in_pass(c->ps, xa)) add_stream(st, &n, 's', xa);
      } else if (!pl_is_data(x) && c->l->store[a] >= 0 && !cg_in_pass(c->ps, a))
        add_stream(st, &n, 's', a);
    }
  }
  for (int k = 0; c->write_grads && !nt_tokens(c) && k < IR_NGRADS; k++) /* nt: need no line first */
    if (token_grad(c, k)) add_stream(st, &n, 'g', k);
  for (int j = 0; j < c->ps->nnodes; j++) { /* the float64 arrays it writes (store_out, early_sweep) */
    int i = c->ps->nodes[j];
    if (g->n[i].level == LV_TOKEN && (stores(c, i) || pl_early(c->ps, i)) && !c->sbuf[i]) add_stream(st, &n, 'w', i);
  }
  if (n == 0) return;
  LLVMValueRef base[CG_PREFETCH_STREAMS];
  for (int q = 0; q < n; q++) { /* the base pointers, before the loop */
    base[q] = NULL;
    if (st[q].kind == 'i') base[q] = cg_input_array(c, &g->n[st[q].id]);
    if (st[q].kind == 'g') base[q] = cg_field(c, REIN_CTX_GRAD + st[q].id, true);
  }
  Loop lp;
  LLVMValueRef t = loop_begin(c, &lp, lo, hi, ci64(c, 16)); /* 16 floats a 64-byte line */
  LLVMValueRef at = LLVMBuildAdd(c->b, t, ci64(c, CG_PREFETCH), "");
  for (int q = 0; q < n; q++) {
    if (st[q].kind != 's' && st[q].kind != 'w') {
      prefetch(c, gep(c, c->f32, base[q], at), st[q].kind == 'g');
      continue;
    }
    for (int h = 0; h < 16; h += 8) { /* 8 doubles a line */
      LLVMValueRef e = LLVMBuildAdd(c->b, at, ci64(c, h), "");
      prefetch(c, cg_store_addr(c, st[q].id, &e), st[q].kind == 'w');
    }
  }
  loop_end(c, &lp);
}

/* The early reductions and scans of the pass (PlPass.early), at the current sequence: a loop over
 * its tokens computes the token values they read, accumulates the reductions (zeroed in step 1)
 * and writes each scan's argument into the scan's own array; then rk_scan runs in place (it reads
 * each element before it writes it) and the reductions are finished -- all before the sequence's
 * "pre" values and its token loop, which can read them.  The sequence's tokens are then in the
 * cache for that loop: GMPO's and GSPO's per-sequence mean had a pass of its own, a second sweep
 * of the batch's logp and old_logp, and REINFORCE++'s returns a pass that stored their argument
 * as a float64 array and another that copied it into scratch for rk_scan. */
static void early_sweep(Cg *c) {
  const PlPass *ps = c->ps;
  const IrGraph *g = c->g;
  if (!ps->nearly) return;
  bool scans = false;
  bool *need = ir_xcalloc((size_t)g->nn, sizeof(bool)); /* the token values they read */
  for (int j = 0; j < ps->nearly; j++) need[ps->early[j]] = true;
  for (int j = ps->nnodes - 1; j >= 0; j--) {
    const IrNode *n = &g->n[ps->nodes[j]];
    for (int k = 0; need[ps->nodes[j]] && k < ir_nslots(n); k++)
      if (n->a[k] >= 0 && cg_in_pass(ps, n->a[k]) && g->n[n->a[k]].level == LV_TOKEN) need[n->a[k]] = true;
  }
  LLVMValueRef lo, hi;
  cg_span(c, LV_SEQ, LV_TOKEN, &lo, &hi);
  /* a scan no pass reads from its array (each computes it: plan.c rematerializes a prologue scan
   * in the micro pass) runs in a region of ctx scratch at its group's first token instead, which
   * every sequence of the group reuses, so it stays in the cache: the array's lines would be
   * read for ownership, written back, and read again by the next pass (REINFORCE++'s returns).
   * The scratch is free here: sibling ops use it only inside their own calls, at step 2.  Up to
   * the 6 regions; the CPU only (on the GPU, thread 0 scans the array). */
  int nbuf = 0;
  for (int j = 0; !c->gpu && j < ps->nearly; j++) {
    int i = ps->early[j];
    if (!OPS_IS_SCAN(g->n[i].op) || c->l->xread[i] || nbuf == 6) continue;
    LLVMValueRef at = cg_seq_tok(c, cg_grp_seq(c, c->ix[LV_GROUP]));
    at = LLVMBuildAdd(c->b, at, LLVMBuildMul(c->b, scratch_region(c), ci64(c, nbuf++), ""), "");
    c->sbuf[i] = gep(c, c->f64, cg_field(c, REIN_CTX_SCRATCH, true), at);
    c->sbuf_lo = lo;
  }
  if (!c->gpu) prefetch_tokens(c, lo, hi); /* the pass's arrays: its token loop follows */
  Loop lp;
  c->ix[LV_TOKEN] = loop_split(c, &lp, lo, hi, LV_TOKEN == c->par);
  for (int j = 0; j < ps->nnodes; j++) {
    int i = ps->nodes[j];
    if (need[i] && g->n[i].level == LV_TOKEN && ir_ops[g->n[i].op].cls == 'e') cg_compute(c, i); /* plan.c: pure */
  }
  for (int j = 0; j < ps->nearly; j++) {
    int i = ps->early[j];
    if (ir_ops[g->n[i].op].cls == 'r') {
      cg_accumulate(c, i);
      continue;
    }
    scans = true; /* a scan: its argument into its array, at this token */
    LLVMValueRef t = c->ix[LV_TOKEN];
    LLVMBuildStore(c->b, cg_get(c, g->n[i].a[0]), cg_store_addr(c, i, &t));
  }
  loop_end_width(c, &lp, tok_wide(c) ? c->tok_lanes : 0);
  c->ix[LV_TOKEN] = NULL;
  for (int j = 0; j < ps->nnodes; j++)
    if (g->n[ps->nodes[j]].level == LV_TOKEN) c->val[ps->nodes[j]] = NULL;
  if (scans) { /* GPU: every thread's elements are written; thread 0 scans; all see the result */
    barrier(c);
    LLVMBasicBlockRef after = guard_begin(c, true);
    for (int j = 0; j < ps->nearly; j++) {
      int i = ps->early[j];
      const IrNode *n = &g->n[i];
      if (ir_ops[n->op].cls != 's') continue;
      LLVMValueRef elt = lo;
      LLVMValueRef out = cg_store_addr(c, i, &elt);
      LLVMValueRef gamma = n->a[1] >= 0 ? cg_get(c, n->a[1]) : cf(c, 1);
      LLVMValueRef a[5] = {out, LLVMBuildSub(c->b, hi, lo, ""), gamma, ci32(c, n->op == IR_CUMSUM ? 1 : -1), out};
      cg_call(c, "rk_scan", LLVMVoidTypeInContext(c->cx), a, 5);
    }
    guard_end(c, after);
    barrier(c);
  }
  for (int j = 0; j < ps->nearly; j++) {
    int i = ps->early[j];
    if (ir_ops[g->n[i].op].cls != 'r') continue;
    if (c->gpu && g->n[i].elev == c->par) cg_block_reduce(c, i);
    c->val[i] = cg_finish(c, &g->n[i], c->acc[i]);
  }
  free(need);
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
      if (!c->acc[i]) cg_new_state(c, i);
      cg_state_zero(c, i);
    }
  }
  for (int j = 0; j < ps->nnodes; j++) {
    int i = ps->nodes[j];
    if (ir_ops[g->n[i].op].cls == 's' && g->n[i].rlevel == L && !pl_early(ps, i)) sibling(c, i);
  }
  /* 3: the "pre" values; at a sequence with early reductions or scans, those that need none of
   * them first (the early loop may read them: plan.c's pure values), then early_sweep, then the
   * rest */
  bool *late = ir_xcalloc((size_t)g->nn, sizeof(bool)); /* computed from an early node of the pass */
  for (int j = 0; L == LV_SEQ && j < ps->nnodes; j++) {
    int i = ps->nodes[j];
    late[i] = pl_early(ps, i);
    for (int k = 0; k < ir_nslots(&g->n[i]); k++)
      if (g->n[i].a[k] >= 0 && late[g->n[i].a[k]]) late[i] = true;
  }
  for (int round = 0; round < 2; round++) {
    if (round == 1 && L == LV_SEQ) early_sweep(c);
    for (int j = 0; j < ps->nnodes; j++) {
      int i = ps->nodes[j];
      if (g->n[i].level == L && ir_ops[g->n[i].op].cls == 'e' && c->phase[i] == PH_PRE && late[i] == (round == 1))
        cg_compute(c, i);
    }
  }
  free(late);
  /* 4 */
  if (L > ps->loop) {
    Level E = (Level)(L - 1);
    LLVMValueRef lo, hi;
    cg_span(c, L, E, &lo, &hi);
    Loop lp, lb;
    bool nt = E == LV_TOKEN && nt_tokens(c);
    bool blocks = E == LV_TOKEN && (has_blocks(c) || nt);
    if (blocks) { /* blocks of CG_BLOCK tokens, each with fresh partials */
      LLVMValueRef a = NULL; /* nt: the first token whose gradient starts a vector (nt_tokens) */
      if (nt) {
        int k = nt_grad_of(c);
        LLVMValueRef gp = cg_field(c, REIN_CTX_GRAD + k, true);
        LLVMValueRef addr = LLVMBuildPtrToInt(c->b, gep(c, c->f32, gp, lo), c->i64, "");
        LLVMValueRef pad = LLVMBuildAnd(c->b, LLVMBuildNeg(c->b, addr, ""), ci64(c, 4 * c->tok_lanes - 1), "");
        a = LLVMBuildAdd(c->b, lo, LLVMBuildLShr(c->b, pad, ci64(c, 2), ""), "");
      }
      LLVMValueRef b0 = loop_begin(c, &lb, lo, hi, ci64(c, CG_BLOCK));
      LLVMValueRef b1 = LLVMBuildAdd(c->b, b0, ci64(c, CG_BLOCK), "");
      if (nt) b1 = LLVMBuildSelect(c->b, LLVMBuildICmp(c->b, LLVMIntSLT, b0, a, ""), a, b1, "");
      hi = LLVMBuildSelect(c->b, LLVMBuildICmp(c->b, LLVMIntSLT, b1, hi, ""), b1, hi, "");
      if (nt) lb.step = LLVMBuildSub(c->b, hi, b0, "");
      lo = b0;
      block_start(c, lo);
    }
    c->nt_grads = nt;
    if (nt) {
      c->fill_used = true; /* the function ends with a fence (fn_end) */
      char lanes[8];
      snprintf(lanes, sizeof lanes, "%d", c->tok_lanes);
      LLVMAttributeRef at = LLVMCreateStringAttribute(c->cx, CG_NT_ATTR, (unsigned)strlen(CG_NT_ATTR), lanes,
                                                      (unsigned)strlen(lanes));
      LLVMAddAttributeAtIndex(c->fn, LLVMAttributeFunctionIndex, at);
    }
    if (E == LV_TOKEN && !c->gpu) prefetch_tokens(c, lo, hi);
    c->ix[E] = loop_split(c, &lp, lo, hi, E == c->par);
    emit_level(c, E);
    loop_end_width(c, &lp, E == LV_TOKEN && tok_wide(c) ? c->tok_lanes : 0);
    c->ix[E] = NULL;
    c->nt_grads = false;
    if (blocks) {
      block_end(c, LLVMBuildSub(c->b, hi, lo, ""));
      loop_end(c, &lb);
    }
    for (int j = 0; j < ps->nnodes; j++) {
      int i = ps->nodes[j];
      const IrNode *n = &g->n[i];
      if (c->gpu && ir_ops[n->op].cls == 'r' && closes_at(n, L) && n->elev == c->par && !pl_early(ps, i))
        cg_block_reduce(c, i);
    }
  }
  /* 5, 6 */
  for (int j = 0; j < ps->nnodes; j++) {
    int i = ps->nodes[j];
    const IrNode *n = &g->n[i];
    if (ir_ops[n->op].cls == 'r' && n->rlevel == L && !pl_early(ps, i)) c->val[i] = cg_finish(c, n, c->acc[i]);
    if (n->level == L && ir_ops[n->op].cls == 'e' && c->phase[i] == PH_POST) cg_compute(c, i);
  }
  /* 7 */
  for (int j = 0; j < ps->nnodes; j++) {
    int i = ps->nodes[j];
    const IrNode *n = &g->n[i];
    if (ir_ops[n->op].cls == 'r' && n->elev == L && !pl_early(ps, i)) cg_accumulate(c, i);
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
      cg_st_copy(c, gep(c, c->f64, cg_field(c, REIN_CTX_RECORDS, true), off), c->acc[i]);
    }
    guard_end(c, after);
  }
  /* 8 (a sibling op's array is written by its routine: store_out only writes it as a gradient,
   * which a scan can be) */
  for (int j = 0; j < ps->nnodes; j++) {
    int i = ps->nodes[j];
    if (g->n[i].level == L) store_out(c, i);
  }
  if (L == LV_SEQ) memset(c->sbuf, 0, sizeof(LLVMValueRef) * (size_t)g->nn); /* set per sequence */
}

/* ---- the entry points and the module ---- */

static void set_pass(Cg *c, int k) {
  const Plan *p = c->l->p;
  c->pass_index = k;
  c->ps = k < p->npasses ? &p->passes[k] : NULL;
  memset(c->phase, 0, (size_t)c->g->nn);
  if (c->ps) cg_phases(c->l, c->ps, c->phase);
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
      cg_compute(c, i);
      LLVMBuildStore(c->b, c->val[i], cg_store_addr(c, i, NULL));
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
                                      cg_fn_decl(c, "llvm.nvvm.read.ptx.sreg.ctaid.x", c->i32, NULL, 0), NULL, 0, "");
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
    cg_span(c, LV_GROUP, LV_SEQ, &lo, &hi);
    Loop ls, lt;
    c->ix[LV_SEQ] = loop_begin(c, &ls, lo, hi, ci64(c, 1));
    cg_span(c, LV_SEQ, LV_TOKEN, &lo, &hi);
    int per_token[IR_NGRADS], nper = 0; /* the gradients that are token values */
    for (int q = 0; q < IR_NGRADS; q++) {
      int i = g->grad[q];
      if (i < 0 || !cg_grad_synthetic(c->l->p, i)) continue;
      if (g->n[i].level > LV_TOKEN)
        write_grad(c, q, LV_SEQ, cg_get(c, i)); /* one value for the sequence's tokens */
      else
        per_token[nper++] = q;
    }
    if (nper) {
      c->ix[LV_TOKEN] = loop_split(c, &lt, lo, hi, true);
      for (int j = 0; j < nper; j++) write_grad(c, per_token[j], LV_TOKEN, cg_get(c, g->grad[per_token[j]]));
      loop_end(c, &lt);
    }
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
    LLVMValueRef a[3] = {ci32(c, cg_rk_op(c->g->n[i].op)),
                         gep(c, c->f64, cg_field(c, REIN_CTX_STATES, true), ci64(c, 3 * r)),
                         gep(c, c->f64, cg_field(c, REIN_CTX_RECORDS, true), off)};
    cg_call(c, "rk_merge", LLVMVoidTypeInContext(c->cx), a, 3);
  }
  loop_end(c, &lp);
  fn_end(c);
}

static LLVMValueRef state_of(Cg *c, int i) {
  return gep(c, c->f64, cg_field(c, REIN_CTX_STATES, true), ci64(c, 3 * c->l->red[i]));
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
      c->val[i] = cg_finish(c, n, state_of(c, i));
      LLVMBuildStore(c->b, c->val[i], cg_store_addr(c, i, NULL));
    } else if (n->level == LV_BATCH && ir_ops[n->op].cls == 'e' && c->phase[i] == PH_POST) {
      cg_compute(c, i);
      LLVMBuildStore(c->b, c->val[i], cg_store_addr(c, i, NULL));
    }
  }
  fn_end(c);
}

/* rein_finish: the reductions accumulated across micro-batches. */
static void emit_finish(Cg *c) {
  fn_begin(c, REIN_FINISH_NAME, false);
  for (int i = 0; i < c->g->nn; i++)
    if (c->l->red[i] >= 0 && c->l->p->partial[i])
      LLVMBuildStore(c->b, cg_finish(c, &c->g->n[i], state_of(c, i)), cg_store_addr(c, i, NULL));
  fn_end(c);
}

/* rein_outputs: out[0] = loss, out[1 + m] = metric m. */
static void emit_outputs(Cg *c) {
  fn_begin(c, REIN_OUTPUTS_NAME, false);
  LLVMValueRef out = cg_field(c, REIN_CTX_OUT, true);
  LLVMBuildStore(c->b, cg_get(c, c->g->loss), gep(c, c->f64, out, ci64(c, 0)));
  for (int m = 0; m < c->g->nmetrics; m++)
    LLVMBuildStore(c->b, cg_get(c, c->g->metrics[m].node), gep(c, c->f64, out, ci64(c, 1 + m)));
  fn_end(c);
}

LLVMModuleRef cg_module(LLVMContextRef cx, const CgLayout *l, CgTarget t, const CgOptions *o) {
  Cg cs = {0}, *c = &cs;
  c->cx = cx;
  c->gpu = t == CG_GPU;
  c->tok_f32 = !c->gpu && !o->f64;
  c->tok_lanes = c->tok_f32 ? cg_float_lanes(o) : 0;
  c->nt_fill = !c->gpu && cg_host_x86();
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
  c->part = ir_xcalloc((size_t)c->g->nn, sizeof(LLVMValueRef));
  c->sbuf = ir_xcalloc((size_t)c->g->nn, sizeof(LLVMValueRef));
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
  free(c->part);
  free(c->sbuf);
  free(c->phase);
  return c->m;
}
