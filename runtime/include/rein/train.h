/* train.h — the trainer: the off-policy RL loop that trains a transformer policy (tfm.h) with a
 * compiled objective (runtime.h) on a verifiable task (task.h), and the supervised warm start.
 *
 *   trn_main     `rein train FILE [options]` and the standalone trainer made by `rein build`:
 *                explore (G responses per prompt) -> experience buffer -> train steps, with
 *                sync_interval / sync_offset as in docs/algorithms.md, the off-policy schedule (sched.h), micro-batches
 *                of whole groups, periodic evaluation, atomic checkpoints, --resume;
 *   trn_sft_run  `rein sft [options]`: next-token training on the task's demonstrations.
 *
 * Options come from a JSON config file (--config FILE) and the command line (which wins); every
 * option has one name used in both places (docs/trainer.md lists them).  A run directory holds
 * metrics.jsonl, config.json (the effective options) and the checkpoints.
 */
#ifndef REIN_TRAIN_H
#define REIN_TRAIN_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "runtime.h"

#define TRN_MAX_SET 32
#define TRN_PATH 1024
/* The largest step: sequences (batch_prompts x group) and tokens (prompt and response) of one
 * explored batch, checked before anything is allocated so offsets fit an int. */
#define TRN_MAX_SEQS (1 << 20)
#define TRN_MAX_TOKENS (1 << 30)

typedef struct {
  /* policy */
  char model[TRN_PATH];        /* model directory; "" = the embedded arithmetic checkpoint */
  char model_config[TRN_PATH]; /* sft only: a config.json to initialize a fresh model from */
  uint64_t init_seed;          /* sft only: seed of that random init */
  /* task */
  char task[16];               /* "arith", "gsm8k" or "jsonl" */
  int digits;
  char ops[8];
  uint64_t task_seed;
  char train_data[TRN_PATH], eval_data[TRN_PATH];
  int format_term;
  char prompt_field[64], messages_field[64], answer_field[64];   /* jsonl */
  char reward_cmd[TRN_PATH];   /* an external reward command ("" = the task's reward) */
  double reward_timeout;       /* seconds per answer of that command */
  /* loop */
  int steps, batch_prompts, group, micro_groups, sync_interval, sync_offset;
  /* optimizer */
  double lr, lr_min, beta1, beta2, adam_eps, weight_decay, max_grad_norm;
  char lr_schedule[16];        /* "constant", "cosine" or "linear" (after warmup) */
  int warmup;
  /* sampling */
  double temperature, top_p;   /* temperature > 0: every policy log-prob is of logits / temperature */
  int top_k, max_new;
  char old_logp[16];           /* "rollout": old_logp is the rollout engine's log-prob; "recompute":
                                  the trainer's forward with its weights before the step, and the
                                  engine's is rollout_logp (docs/trainer.md) */
  /* evaluation */
  int eval_every, eval_prompts;
  double eval_temperature;
  int log_samples;             /* decoded samples logged per evaluation (OUT/samples/) */
  /* run */
  char out[TRN_PATH];
  int save_every, keep, resume, progress, threads;
  int shard_explore;           /* data-parallel runs: 1: each rank explores its share of the prompts */
  int explorer_ranks;          /* under mpirun: the last K ranks explore, the others train (0: none) */
  char save_dtype[8];          /* model files written: "same" (the dtype --model came in), "f32",
                                  "bf16" or "f16"; rounded ones keep F32 masters in optim */
  int stop_at;                 /* stop (with a checkpoint) after this step; 0: run to the end */
  double time_limit;           /* stop (with a checkpoint) once the run has taken this long (s) */
  uint64_t seed;
  /* objective params (--set NAME=VALUE) */
  int nset;
  char set_name[TRN_MAX_SET][64];
  double set_value[TRN_MAX_SET];
  char set_from[TRN_PATH];     /* the config file that set params ("" when none did) */
  uint64_t given;              /* bit i: option i of the table was set (command line or --config) */
} TrnOpts;

enum { TRN_CMD_TRAIN = 1, TRN_CMD_SFT = 2 };

/* Defaults for CMD (the two commands differ in lr, steps and batch). */
void trn_opts_defaults(TrnOpts *o, int cmd);
/* Parses argv[1..argc) (after the command name and, for train, the objective) into O: first the
 * --config file, then the other options in order.  Returns 0, 1 for --help (usage printed), or
 * -1 with a message in ERR ("--lr 'x': expected a number", "CONFIG.json: field 'lr': ..."). */
int trn_opts_parse(TrnOpts *o, int cmd, int argc, char **argv, char *err, size_t errlen);
/* The options as a JSON object text (malloc'd); the keys are the option names. */
char *trn_opts_json(const TrnOpts *o, int cmd);
void trn_opts_usage(FILE *f, int cmd, const char *prog);
/* Whether option NAME was set explicitly (command line or --config), not left at its default. */
int trn_opts_given(const TrnOpts *o, const char *name);

/* `rein train` after compilation, and the standalone trainer: PROG names the program in
 * messages, O the objective (owned by the caller).  Returns the exit status. */
int trn_main(const char *prog, rt_objective *o, int argc, char **argv);
/* `rein sft [options]` as an ordinary objective: O (owned by the caller) is the compiled
 * lang/std/sft.rein, or any objective that reads only logp and entropy; each demonstration is a
 * one-sequence group through `rein train`'s packer and train step.  PROG names the program in
 * messages; argv[0] is "sft".  Returns the exit status. */
int trn_sft_run(const char *prog, rt_objective *o, int argc, char **argv);
/* The entry point of a standalone trainer: `rein build` links the objective's descriptor and a
 * main() that calls this. */
int trn_standalone_main(int argc, char **argv, const rein_objective *d);

#endif
