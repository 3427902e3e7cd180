/* trn_internal.h — what the trainer's files share: the experience buffer's rollouts, the trainer
 * state, the train step (trn_loop.c; `rein sft` runs the same one), and the checkpoint functions
 * (trn_ckpt.c) the loop calls.
 */
#ifndef REIN_TRN_INTERNAL_H
#define REIN_TRN_INTERNAL_H

#include <stdio.h>

#include "rein/task.h"
#include "rein/tfm.h"
#include "rein/train.h"
#include "rein/common.h"

#define TRN_MAX_XNAMES 64

/* One explored batch: batch_prompts groups of `group` responses, all from policy `version`. */
typedef struct {
  int64_t e, version;      /* explore step (1-based) and the trainer step of its weights */
  int nseq, group;
  int *poff;               /* (nseq+1) */
  int32_t *prompt;         /* (poff[nseq]) prompt ids of every sequence (with <bos>) */
  int *roff;               /* (nseq+1) */
  int32_t *resp;           /* (roff[nseq]) response ids (ending in <eos> unless truncated) */
  float *old_logp;         /* (roff[nseq]) the rollout engine's (behaviour) log-prob of each response
                              token, log softmax(logits / temperature)[token], before top-k /
                              top-p: old_logp, or with --old-logp recompute rollout_logp */
  float *reward, *acc;     /* (nseq) */
  uint8_t *trunc;          /* (nseq) 1: hit max-new without <eos> */
  int nuin;                /* the objective's user inputs (all seq level) */
  float *uin;              /* (nuin * nseq) input k of sequence s at [k * nseq + s]: the response's
                              reward extra of that name, else its item's extra (task.h) */
  int nextra;              /* extra reward fields known when it was explored (Trainer.xname) */
  float *extra;            /* (nseq * nextra) field k of sequence s at [s * nextra + k]; NaN: absent */
  double gen_s;            /* seconds the generation took (metrics only) */
} TrnRollout;

void trn_rollout_free(TrnRollout *r);

typedef struct {
  TrnOpts o;
  const char *prog;
  rt_objective *obj;
  const rein_objective *d;
  rt_exec *x;
  double *params;          /* (d->nparams) */
  Task *task;
  TfmModel *m, *ref;       /* ref: NULL unless the objective reads ref_logp */
  int recompute;           /* --old-logp recompute: old_logp from m before each step */
  int64_t t;               /* train steps done */
  int64_t next_e;          /* the next batch to explore */
  TrnRollout *buf;         /* FIFO of explored batches not yet trained on, by e */
  int nbuf, capbuf;
  double time_before;      /* seconds of the run before this process (resume) */
  double t0;               /* monotonic start of this process's part */
  FILE *metrics;
  int lock_fd;             /* OUT/lock, held for the life of the run (-1: none) */
  int nxname;              /* the reward command's extra fields, in order of first appearance */
  char xname[TRN_MAX_XNAMES][TASK_EXTRA_NAME];
} Trainer;

/* What a train step reports (metrics: d->nmetrics values, the caller's array). */
typedef struct {
  double loss, *metrics, grad_norm, lr, entropy, kl, train_s, reward_mean, reward_std, acc, len, trunc;
  /* seconds of the step's phases: the reference policy's forward, the policy's forwards, the
   * objective (rt_begin + rt_micro + rt_end), the backwards, clipping and AdamW */
  double ref_s, fwd_s, obj_s, bwd_s, opt_s;
} TrnStepStats;

/* Train step tr->t + 1 on rollout R (trn_loop.c), for `rein train` and `rein sft` alike: the
 * objective's prologue on the whole batch (rt_begin), then for each micro-batch of
 * tr->o.micro_groups whole groups (0: one) one forward keeping activations, the objective's
 * micro-batch passes (rt_micro: the gradients of its tokens) and the backward, then its final
 * stage (rt_end: loss and metrics), clipping and AdamW.  Uses tr->o, d, m, ref (when the
 * objective reads ref_logp), x, params and t; does not advance t.  -1 with ERR on failure. */
int trn_train_step(Trainer *tr, const TrnRollout *r, TrnStepStats *st, char *err, size_t errlen);

/* What explores batch E with the current weights into the buffer's end (trn_loop.c's); -1 with ERR. */
typedef int (*TrnExploreFn)(Trainer *tr, int64_t e, char *err, size_t errlen);

/* A separate explorer (trn_explorer.c, --explorer-ranks).  trn_explorer_check: whether O's
 * --explorer-ranks fits the world (call on every rank before any collective); trn_explorer_is:
 * whether this rank explores.  trn_explorer_run: the explorer's whole part of the run, each batch
 * explored by EXPLORE.  On the
 * trainer ranks: trn_explorer_receive takes the explorer's batches into the buffer while the next
 * is <= UPTO_E or was explored with a version <= VERSION (and <= o.steps); trn_explorer_sync,
 * after each step that does not stop the run, sends the weights to every explorer when a batch
 * needs version tr->t (rank 0); trn_explorer_end, after the run (or its stop), ends the
 * explorers.  -1 with ERR. */
int trn_explorer_check(const TrnOpts *o, char *err, size_t errlen);
int trn_explorer_is(const TrnOpts *o);
int trn_explorer_run(Trainer *tr, TrnExploreFn explore, char *err, size_t errlen);
int trn_explorer_receive(Trainer *tr, int64_t upto_e, int64_t version, char *err, size_t errlen);
int trn_explorer_sync(Trainer *tr, char *err, size_t errlen);
int trn_explorer_end(Trainer *tr, char *err, size_t errlen);

/* Data-parallel shares (trn_shard.c, docs/distributed.md).  [*A, *B): rank R's part of N items
 * split among NR ranks in contiguous ranges, in rank order. */
void trn_shard_range(int n, int r, int nr, int *a, int *b);
/* Rank R's groups [*GA, *GB) of a step of NGROUPS groups in micro-batches of MG: whole
 * micro-batches of the single process's split while there are at least NR of them, else the
 * groups split evenly. */
void trn_shard_groups(int ngroups, int mg, int r, int nr, int *ga, int *gb);
/* Every rank's explored SHARE (its prompts, in rank order) gathered into WHOLE, the batch one
 * process would have explored.  NX0: tr->nxname before the share was explored (its exploration
 * added its new extra fields' names); the shares' new names join tr->xname in rank order, the
 * order of first appearance in which one process registers them.  -1 with ERR. */
int trn_shard_gather_rollout(Trainer *tr, const TrnRollout *share, int nx0, TrnRollout *whole, char *err,
                             size_t errlen);
/* R as one byte string *P (malloc'd, *N bytes), with the names of tr's extra fields, and back:
 * the rollout R of the bytes P (N of them), its new extra fields' names joining tr->xname, as
 * when exploring it.  From one process to another of the same build (no byte-order checks). */
void trn_rollout_to_bytes(const Trainer *tr, const TrnRollout *r, void **p, size_t *n);
int trn_rollout_from_bytes(Trainer *tr, const void *p, size_t n, TrnRollout *r, char *err, size_t errlen);
/* A (BOUND[NR] floats) completed on every rank: rank r's values are at [BOUND[r], BOUND[r+1]). */
int trn_shard_gather_floats(float *a, const int *bound, char *err, size_t errlen);

/* The reward command's extra fields over an evaluation: each name (in order of first appearance)
 * and its mean over the evaluated responses whose answer had it. */
typedef struct {
  int n;
  char name[TRN_MAX_XNAMES][TASK_EXTRA_NAME];
  double mean[TRN_MAX_XNAMES];
} TrnEvalExtras;

/* The metrics writer (trn_metrics.c): one JSON line to tr->metrics.  The record of an evaluation
 * at step tr->t (with eval_reward_NAME for each extra field of XS); the record of train step tr->t on
 * rollout R with stats ST (RL: the reinforcement fields too — reward, accuracy, kl_behaviour, lag,
 * version, truncated, rollout speed — which `rein sft` does not have). */
void trn_metrics_eval(const Trainer *tr, double acc, double reward, double len, const TrnEvalExtras *xs,
                      double eval_s);
void trn_metrics_train(const Trainer *tr, const TrnStepStats *st, const TrnRollout *r, int rl, double rollout_tok_s,
                       double rollout_s);

/* The start of rein train and rein sft: the options of command CMD (TRN_CMD_*) parsed from ARGV
 * into TR, the objective OBJ attached, the clock started.  -1 to go on, or the exit status to
 * return (0 after --help; 2 after a bad command line, said on stderr as "PROG: error: ..."). */
int trn_start(Trainer *tr, int cmd, const char *prog, rt_objective *obj, int argc, char **argv);
/* -1 with ERR when the model's vocabulary cannot hold the task tokenizer's ids. */
int trn_check_vocab(const Trainer *tr, char *err, size_t errlen);

/* Seconds since the run started (across resumes). */
double trn_elapsed(const Trainer *tr);

/* Writes the checkpoint of the trainer's state after step tr->t: OUT/ckpt-NNNNNN (model,
 * AdamW state, buffer, state.json) built under a temporary name and renamed, then OUT/latest
 * replaced atomically, then checkpoints beyond --keep removed.  -1 with ERR on failure. */
int trn_ckpt_save(Trainer *tr, char *err, size_t errlen);
/* Removes what interrupted saves left in OUT (.ckpt-*.tmp.PID and .old.PID directories, *.tmp.PID
 * files); call with OUT locked.  The number removed, or -1 with ERR. */
int trn_ckpt_clean(const char *out, char *err, size_t errlen);
/* True when OUT holds a checkpoint directory (ckpt-NNNNNN). */
int trn_ckpt_any(const char *out);
/* Restores the state of OUT/latest into TR (model weights and AdamW state into tr->m, buffer,
 * counters); metrics.jsonl is cut back to the checkpoint's step.  -1 with ERR on failure. */
int trn_ckpt_load(Trainer *tr, char *err, size_t errlen);

/* Write and read the experience buffer (binary, little-endian, checked on read). */
int trn_buffer_save(const Trainer *tr, const char *path, char *err, size_t errlen);
int trn_buffer_load(Trainer *tr, const char *path, char *err, size_t errlen);

/* The files of a model directory that carry its tokenizer and generation defaults, copied with
 * the weights into every model directory the trainer writes (checkpoints, `rein sft -o`) when the
 * source directory (--model) has them: tokenizer.json, tokenizer_config.json,
 * generation_config.json. */
#define TRN_NMODEL_FILES 3
extern const char *const trn_model_files[TRN_NMODEL_FILES];
/* Copies each of trn_model_files that directory SRC holds into directory DST, each written
 * atomically (rc_write_atomic); a file SRC lacks is skipped.  0, or -1 with ERR. */
int trn_copy_model_files(const char *src, const char *dst, char *err, size_t errlen);

/* The embedded arithmetic checkpoint (trn_blob.S), loaded as a model. */
TfmModel *trn_default_model(char *err, size_t errlen);

/* The dtype (TFM_DT_F32/BF16/F16) of the model files written for M under --save-dtype: "same"
 * is the dtype M's weights came in. */
int trn_save_dtype(const TrnOpts *o, const TfmModel *m);
/* The learning rate of step T (1-based) of O's schedule. */
double trn_lr_at(const TrnOpts *o, int64_t t);
/* The tokenizer of model directory DIR as a TaskTok (task_tok_hf.c): its tokenizer.json (with
 * tokenizer_config.json's chat template, and the eos ids of generation_config.json,
 * tokenizer_config.json or config.json) when it has one; *tok NULL when it has none (the task
 * then uses its character tokenizer).  -1 with ERR for a tokenizer that cannot be read. */
int trn_model_tok(const char *dir, TaskTok **tok, char *err, size_t errlen);
/* The task of O (--task and its options) with its tokenizer — the model directory's own
 * (tokenizer.json) when it has one, else the character tokenizer — and, with --reward-cmd, its
 * external scorer started; NULL with ERR. */
Task *trn_make_task(const TrnOpts *o, char *err, size_t errlen);
/* generation_config.json of the policy's directory (O->model), checked against M's vocabulary:
 * with do_sample not false, its temperature / top_p / top_k replace the defaults of the options
 * not set explicitly (said on stderr).  (Its eos ids are the stop ids of a Hugging Face tokenizer,
 * trn_model_tok; the character tokenizer's <eos> is its own.)  Call before the run directory's
 * config.json is written.  -1 with ERR. */
int trn_apply_genconfig(TrnOpts *o, const TfmModel *m, const char *prog, char *err, size_t errlen);
/* Evaluation on the first eval_prompts held-out items: accuracy, reward, mean response length,
 * and in *XS the reward command's extra fields (n 0 without a command or without extras).
 * SAMPLES (NULL: none): the path of a JSONL file written atomically with the first
 * o->log_samples items' prompt, response, answer, reward and accuracy. */
int trn_eval(TfmModel *m, Task *task, const TrnOpts *o, int64_t step, const char *samples, double *acc,
             double *reward, double *len, TrnEvalExtras *xs, char *err, size_t errlen);
/* Progress line on stderr. */
void trn_progress(int on, int64_t t, int64_t total, double elapsed, double done_at_start, const char *extra);

#endif
