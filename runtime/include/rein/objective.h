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
 * A training step runs: every PROLOGUE pass over the whole batch; if the objective has
 * REIN_STATS, every STAT pass over the whole batch once the caller has filled logp/entropy of
 * every group (batch statistics of values the loss sees through sg only: the trainer runs a
 * forward-only pass over all micro-batches first); every MICRO pass over each
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

#include "random.h"

#define REIN_ABI_VERSION 3
#define REIN_MAGIC 0x4e494552u /* "REIN" */
#define REIN_SYMBOL "rein_objective"

/* levels, finest first */
enum { REIN_TOKEN = 0, REIN_SEQ = 1, REIN_GROUP = 2, REIN_BATCH = 3 };

/* The built-in inputs (docs/language.md, built-in inputs), in ABI order: the compiler's language tables, the batch
 * reader, the runtime and the trainer all expand this list.  The token inputs come first (the
 * ones before POS are per-token floats of the batch).
 * X(ID, spelling, level, is_bool, differentiable); pos and len are computed from the shape. */
#define REIN_INPUT_LIST(X)                    \
  X(LOGP, "logp", REIN_TOKEN, 0, 1)           \
  X(ENTROPY, "entropy", REIN_TOKEN, 0, 1)     \
  X(OLD_LOGP, "old_logp", REIN_TOKEN, 0, 0)   \
  X(REF_LOGP, "ref_logp", REIN_TOKEN, 0, 0)   \
  X(ROLLOUT_LOGP, "rollout_logp", REIN_TOKEN, 0, 0) \
  X(POS, "pos", REIN_TOKEN, 0, 0)             \
  X(REWARD, "reward", REIN_SEQ, 0, 0)         \
  X(LEN, "len", REIN_SEQ, 0, 0)               \
  X(TRUNCATED, "truncated", REIN_SEQ, 1, 0)   \
  X(LAG, "lag", REIN_SEQ, 0, 0)

#define REIN_X_INPUT_ENUM(ID, name, level, is_bool, diff) REIN_IN_##ID,
enum { REIN_INPUT_LIST(REIN_X_INPUT_ENUM) REIN_NUM_INPUTS };
#undef REIN_X_INPUT_ENUM

/* The spelling of input K (REIN_IN_*), or NULL. */
static inline const char *rein_input_name(int k) {
#define REIN_X_INPUT_NAME(ID, name, level, is_bool, diff) if (k == REIN_IN_##ID) return name;
  REIN_INPUT_LIST(REIN_X_INPUT_NAME)
#undef REIN_X_INPUT_NAME
  return 0;
}

/* The entry points of a pass, in the order of rein_pass's pointers; X(ID, suffix). */
#define REIN_ENTRY_LIST(X) X(BEGIN, "begin") X(GROUPS, "groups") X(MERGE, "merge") X(END, "end")
#define REIN_X_ENTRY_ENUM(ID, suffix) REIN_ENTRY_##ID,
enum { REIN_ENTRY_LIST(REIN_X_ENTRY_ENUM) REIN_NUM_ENTRIES };
#undef REIN_X_ENTRY_ENUM
/* The two entry points of the whole objective. */
#define REIN_FINISH_NAME "rein_finish"
#define REIN_OUTPUTS_NAME "rein_outputs"

/* The symbol (and PTX kernel name) of entry ENTRY (REIN_ENTRY_*) of pass PASS: "rein_p<PASS>_<suffix>",
 * written into BUF (at least 32 bytes).  Freestanding: no stdio. */
static inline const char *rein_entry_name(char *buf, int pass, int entry) {
  const char *suffix = "";
#define REIN_X_ENTRY_NAME(ID, s) if (entry == REIN_ENTRY_##ID) suffix = s;
  REIN_ENTRY_LIST(REIN_X_ENTRY_NAME)
#undef REIN_X_ENTRY_NAME
  char digits[12];
  int n = 0, k = 0;
  unsigned u = pass < 0 ? 0u : (unsigned)pass;
  do digits[n++] = (char)('0' + u % 10); while ((u /= 10) && n < 11);
  buf[k++] = 'r', buf[k++] = 'e', buf[k++] = 'i', buf[k++] = 'n', buf[k++] = '_', buf[k++] = 'p';
  while (n) buf[k++] = digits[--n];
  buf[k++] = '_';
  while (*suffix) buf[k++] = *suffix++;
  buf[k] = 0;
  return buf;
}

/* uniform() of the language: the draw of sequence SEQ (its index within its group) of group GROUP
 * in step STEP of a run seeded SEED, a multiple of 2^-24 in [0, 1).  The interpreter, the CPU code
 * and the PTX kernels all call this function, so the draws agree bit for bit. */
static inline double rein_uniform(uint64_t seed, uint64_t step, uint64_t group, uint64_t seq) {
  uint64_t h = rein_mix64(rein_mix64(rein_mix64(rein_mix64(seed) ^ step) ^ group) ^ seq);
  return (double)(h >> 40) * (1.0 / 16777216.0);
}

/* rein_pass.stage, in the order a step runs them */
enum { REIN_STAGE_PROLOGUE = 1, REIN_STAGE_STAT = 2, REIN_STAGE_MICRO = 3, REIN_STAGE_FINAL = 4 };

/* rein_pass.flags.  REIN_PASS_GRADS_ONLY: the pass writes gradients that are prologue or data
 * values and reads no token input (the last pass; the runtime runs it after the micro stage's
 * other sweeps, not chunk by chunk with them: it would only interleave its writes with their
 * reads).  A runtime may ignore it. */
enum { REIN_PASS_BEGIN = 1, REIN_PASS_GROUPS = 2, REIN_PASS_MERGE = 4, REIN_PASS_END = 8, REIN_PASS_GRADS_ONLY = 16 };

/* rein_objective.flags */
enum {
  REIN_USES_UNIFORM = 1,   /* needs ctx->seed and ctx->step */
  REIN_FINAL_SWEEP = 2,    /* a FINAL pass reads logp/entropy of the whole batch */
  REIN_GRAD_LOGP = 4,      /* d loss / d logp is not identically zero */
  REIN_GRAD_ENTROPY = 8,   /* d loss / d entropy is not identically zero */
  REIN_STATS = 16,         /* STAT passes: logp/entropy of every group are needed before the
                              first MICRO pass */
};

/* The constants a trainer supplies (language.md): params of kind REIN_PARAM_TRAINER carry one of
 * these names.  X(ID, spelling, meaning). */
#define REIN_TRAINER_CONST_LIST(X)                                                  \
  X(MAX_NEW, "max_new", "the sampling limit on response tokens (--max-new)")        \
  X(GROUP_SIZE, "group_size", "responses sampled per prompt (--group)")             \
  X(STEP, "step", "the 1-based training step")

#define REIN_X_TCONST_ENUM(ID, name, meaning) REIN_TC_##ID,
enum { REIN_TRAINER_CONST_LIST(REIN_X_TCONST_ENUM) REIN_NUM_TRAINER_CONSTS };
#undef REIN_X_TCONST_ENUM

/* The spelling of trainer constant K (REIN_TC_*), or NULL. */
static inline const char *rein_trainer_const_name(int k) {
#define REIN_X_TCONST_NAME(ID, name, meaning) if (k == REIN_TC_##ID) return name;
  REIN_TRAINER_CONST_LIST(REIN_X_TCONST_NAME)
#undef REIN_X_TCONST_NAME
  return 0;
}

/* rein_param.kind: where a batch-level scalar of the objective gets its value.
 *   PARAM    a hyper-parameter: its default, or what the user sets;
 *   STATE    carried from one training step to the next: the default is the first step's value,
 *            then the runtime's caller replaces it after each step by the metric `update` (the
 *            program's `update NAME = ...;`, computed from the whole step);
 *   TRAINER  a trainer constant (REIN_TRAINER_CONST_LIST): no default (value NaN). */
enum { REIN_PARAM_PARAM = 0, REIN_PARAM_STATE = 1, REIN_PARAM_TRAINER = 2 };

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
  float *grad[2];                  /* (ntoks) d loss/d logp, d loss/d entropy (written); on x86 a
                                      token loop's blocks are cut where the array's 64-byte lines
                                      start: any array works, 64-byte aligned ones (the CPU
                                      runtime's) give the same bits whatever the allocator */
  double *scratch;                 /* (6 * (max(ntoks, nseqs) + 1)) for rank/argmax/argmin/scans:
                                      3 regions over tokens, 3 over sequences or groups */
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
  double value;                    /* default (REIN_PARAM_TRAINER: NaN) */
  int32_t kind;                    /* REIN_PARAM_* */
  int32_t update;                  /* STATE: the index in metrics of its next value; else -1 */
} rein_param;

typedef struct {
  const char *name;
  int64_t level;                   /* REIN_TOKEN or REIN_SEQ */
} rein_uinput;

typedef struct {
  int32_t stage;                   /* REIN_STAGE_* */
  int32_t loop;                    /* the finest level the sweep visits (REIN_BATCH: none) */
  int32_t flags;                   /* REIN_PASS_*: which entry points do work */
  int32_t index;                   /* position in the plan; entry names: rein_entry_name */
  rein_scalar_fn begin;            /* the entries in REIN_ENTRY_LIST order */
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
  const char *const *metrics;      /* the outputs after the loss, by name: a state's update is
                                      listed under the state's name (rein_param.update) */
  const rein_pass *passes;
  uint32_t inputs_used;            /* bit REIN_IN_* set: the objective reads that input */
  uint32_t flags;                  /* REIN_USES_UNIFORM, ... */
  int32_t ntok_arrays, nseq_arrays, ngrp_arrays, nslots;
  int32_t nreductions, nptx;
  rein_scalar_fn finish;           /* entry REIN_FINISH_NAME */
  rein_scalar_fn outputs;          /* entry REIN_OUTPUTS_NAME: writes ctx->out */
  const char *const *ptx_arch;     /* (nptx) "sm_80", "sm_90" */
  const char *const *ptx;          /* (nptx) PTX text with every entry point as a kernel */
} rein_objective;

#endif
