/* rein/objective.h — the ABI between a compiled objective (`rein compile FILE -o NAME.so`) and
 * the runtime that runs it.  This header is all the two share: the compiler (compiler/cg*.c)
 * generates code and data that match it, and the runtime (runtime/objective.c) loads an
 * artifact through it without linking LLVM.
 *
 * An artifact is a shared object exporting one symbol, `rein_objective` (REIN_SYMBOL), a
 * rein_objective descriptor.  It names the objective, its params (with defaults), the inputs it
 * reads and its metrics, and lists the passes of its plan.  Each pass has up to four entry points,
 * present both as native functions (pointers below) and as PTX kernels of the same names in the
 * PTX text embedded for each GPU architecture:
 *
 *   begin(ctx)            batch-level values that the pass's sweep reads (one thread)
 *   groups(ctx, g0, g1)   the sweep over groups [g0, g1): on the CPU a loop (the runtime runs
 *                         disjoint ranges on different threads); on the GPU one block per group,
 *                         its threads splitting the sequences or tokens
 *   merge(ctx, g0, g1)    folds the per-group partial states of the pass's batch-level reductions
 *                         of groups g0..g1-1, in group order, into the running states (one thread)
 *   end(ctx)              finishes the pass's batch-level reductions and the batch-level values
 *                         computed from them (one thread)
 *
 * A training step runs: every PROLOGUE pass over the whole batch; every MICRO pass over each
 * micro-batch of whole groups (the caller has filled logp/entropy of those groups); `finish`
 * (finishes the reductions accumulated across micro-batches); every FINAL pass over the whole
 * batch; `outputs` (loss and metrics).  Each pass runs begin, groups, merge, end, skipping the
 * ones its flags say are empty.  Because partial states are kept per group and merged in group
 * order, results are bit-identical whatever the number of threads and the micro-batch size.
 *
 * Every field of rein_ctx is 8 bytes wide, so field K is at byte offset 8*K on every target
 * (host and nvptx64): the generated code indexes it that way (REIN_CTX_* below).
 */
#ifndef REIN_OBJECTIVE_H
#define REIN_OBJECTIVE_H

#include <stdint.h>

#define REIN_ABI_VERSION 1
#define REIN_MAGIC 0x4e494552u /* "REIN" */
#define REIN_SYMBOL "rein_objective"

/* levels, finest first */
enum { REIN_TOKEN = 0, REIN_SEQ = 1, REIN_GROUP = 2, REIN_BATCH = 3 };

/* built-in inputs (language.md §2), in this order; pos and len are computed from the shape */
enum {
  REIN_IN_LOGP, REIN_IN_ENTROPY, REIN_IN_OLD_LOGP, REIN_IN_REF_LOGP, REIN_IN_POS,
  REIN_IN_REWARD, REIN_IN_LEN, REIN_IN_TRUNCATED, REIN_IN_LAG, REIN_NUM_INPUTS
};

enum { REIN_STAGE_PROLOGUE = 1, REIN_STAGE_MICRO = 2, REIN_STAGE_FINAL = 3 };

/* rein_pass.flags */
enum { REIN_PASS_BEGIN = 1, REIN_PASS_GROUPS = 2, REIN_PASS_MERGE = 4, REIN_PASS_END = 8 };

/* rein_objective.flags */
enum {
  REIN_USES_UNIFORM = 1,   /* needs ctx->seed and ctx->step */
  REIN_FINAL_SWEEP = 2,    /* a FINAL pass reads logp/entropy of the whole batch */
  REIN_GRAD_LOGP = 4,      /* d loss / d logp is not identically zero */
  REIN_GRAD_ENTROPY = 8,   /* d loss / d entropy is not identically zero */
};

/* The state of the running reductions: 3 doubles each (count, and two op-specific values). */
#define REIN_STATE_DOUBLES 3

typedef struct rein_ctx {
  int64_t ngroups, nseqs, ntoks;   /* the whole batch */
  const int32_t *grp_seq;          /* (ngroups+1) first sequence of each group */
  const int32_t *seq_tok;          /* (nseqs+1)   first token of each sequence */
  const float *in[REIN_NUM_INPUTS];/* built-in inputs at their level (token or seq); the ones the
                                      objective does not read may be NULL; pos, len unused */
  const float *const *uin;         /* (nuinputs) user inputs at their declared level */
  const double *params;            /* (nparams) */
  double *slots;                   /* (nslots) batch-level values */
  double *tok_store;               /* (ntok_arrays * ntoks) values kept between passes */
  double *seq_store;               /* (nseq_arrays * nseqs) */
  double *grp_store;               /* (ngrp_arrays * ngroups) */
  double *records;                 /* (ngroups * nreductions * 3) per-group partial states */
  double *states;                  /* (nreductions * 3) running states; zero at step start */
  float *grad[2];                  /* (ntoks) d loss/d logp, d loss/d entropy (written) */
  double *scratch;                 /* (3 * (max(ntoks, nseqs) + 1)) for rank/argmax/argmin */
  uint64_t seed, step;             /* uniform() */
  int64_t g0, g1;                  /* the groups of the current view (micro-batch or batch) */
  double *out;                     /* (1 + nmetrics) written by outputs(): loss, metrics */
} rein_ctx;

/* word offsets of the fields, as the generated code uses them */
enum {
  REIN_CTX_NGROUPS = 0, REIN_CTX_NSEQS, REIN_CTX_NTOKS, REIN_CTX_GRP_SEQ, REIN_CTX_SEQ_TOK,
  REIN_CTX_IN, REIN_CTX_UIN = REIN_CTX_IN + REIN_NUM_INPUTS, REIN_CTX_PARAMS, REIN_CTX_SLOTS,
  REIN_CTX_TOK_STORE, REIN_CTX_SEQ_STORE, REIN_CTX_GRP_STORE, REIN_CTX_RECORDS, REIN_CTX_STATES,
  REIN_CTX_GRAD, REIN_CTX_SCRATCH = REIN_CTX_GRAD + 2, REIN_CTX_SEED, REIN_CTX_STEP, REIN_CTX_G0,
  REIN_CTX_G1, REIN_CTX_OUT, REIN_CTX_WORDS
};
_Static_assert(sizeof(rein_ctx) == 8 * REIN_CTX_WORDS, "rein_ctx: every field is one word");

typedef void (*rein_scalar_fn)(rein_ctx *ctx);
typedef void (*rein_range_fn)(rein_ctx *ctx, int64_t g0, int64_t g1);

typedef struct {
  const char *name;
  double value;                    /* default */
} rein_param;

typedef struct {
  const char *name;
  int64_t level;                   /* REIN_TOKEN or REIN_SEQ */
} rein_uinput;

typedef struct {
  int32_t stage;                   /* REIN_STAGE_* */
  int32_t loop;                    /* the finest level the sweep visits (REIN_BATCH: none) */
  int32_t flags;                   /* REIN_PASS_*: which entry points do work */
  int32_t index;                   /* position in the plan; entry names are rein_pINDEX_<entry> */
  rein_scalar_fn begin;
  rein_range_fn groups;
  rein_range_fn merge;
  rein_scalar_fn end;
} rein_pass;

typedef struct rein_objective {
  uint32_t magic;                  /* REIN_MAGIC */
  uint32_t abi_version;            /* REIN_ABI_VERSION */
  const char *name;
  const char *description;         /* may be "" */
  int32_t nparams, nuinputs, nmetrics, npasses;
  const rein_param *params;
  const rein_uinput *uinputs;
  const char *const *metrics;
  const rein_pass *passes;
  uint32_t inputs_used;            /* bit REIN_IN_* set: the objective reads that input */
  uint32_t flags;                  /* REIN_USES_UNIFORM, ... */
  int32_t ntok_arrays, nseq_arrays, ngrp_arrays, nslots;
  int32_t nreductions, nptx;
  rein_scalar_fn finish;           /* entry rein_finish */
  rein_scalar_fn outputs;          /* entry rein_outputs: writes ctx->out */
  const char *const *ptx_arch;     /* (nptx) "sm_80", "sm_90" */
  const char *const *ptx;          /* (nptx) PTX text with every entry point as a kernel */
} rein_objective;

#endif
