/* task.h — verifiable tasks for RL training: where prompts come from, how text becomes tokens,
 * and how a response is scored.
 *
 * A task is a small interface struct (Task) with plain C functions, so a user adds a task or a
 * reward by filling one in.  Built in:
 *   - "arith": seeded multi-digit arithmetic (add / subtract / multiply), an unbounded generator
 *     with a held-out evaluation split, character-level tokenizer; each item has the extra
 *     `difficulty`, the number of digits of its two operands;
 *   - "gsm8k": a GSM8K-format JSONL file ("question", "answer" ending in "#### N") with the
 *     reference reward of docs/algorithms.md, the GSM8K reward: exact match of the final number, optionally plus the
 *     +/-0.1 format term.
 * Items are a pure function of (task, split, index): the trainer can regenerate any of them.
 */
#ifndef REIN_TASK_H
#define REIN_TASK_H

#include <stddef.h>
#include <stdint.h>

enum { TASK_TRAIN = 0, TASK_EVAL = 1 };

/* Extras: named numbers a task may attach to an item (a dataset field such as a difficulty) or
 * to a scored response (a reward command's further outputs).  The trainer hands them to the
 * objective's declared `input seq NAME;` by name: an item's extras go to every response of its
 * group, a response's to that response (docs/trainer.md).  nextra 0 and NULL arrays: none.  Both
 * arrays are owned by the struct (malloc'd, each name too) and freed by task_item_free /
 * task_reward_free; names are unique within one struct. */

typedef struct {
  char *prompt;  /* the text the policy continues */
  char *answer;  /* the reference answer, canonical form (e.g. "-42") */
  int nextra;          /* per-item extras (see above) */
  char **extra_names;  /* (nextra) */
  double *extra_vals;  /* (nextra) */
} TaskItem;

typedef struct {
  double reward;    /* what the advantages use */
  double accuracy;  /* 0 or 1: what "accuracy" metrics report */
  double format;    /* the format term included in reward (0 when off) */
  int nextra;          /* per-response extras (see above) */
  char **extra_names;  /* (nextra) */
  double *extra_vals;  /* (nextra) */
} TaskReward;

/* Character-level tokenizer: ids 0 <pad>, 1 <bos>, 2 <eos>, then one id per character of
 * `chars` in order. */
typedef struct {
  char chars[256];
  int nchars;
  int id_of[256];  /* byte -> id, -1 when not in the vocabulary */
} TaskTokenizer;
enum { TASK_PAD = 0, TASK_BOS = 1, TASK_EOS = 2, TASK_FIRST_CHAR = 3 };

void task_tok_init(TaskTokenizer *t, const char *chars);
int task_tok_vocab(const TaskTokenizer *t);
/* Encode text (with a leading <bos> when bos) into out (cap ids); returns the count, or -1 with
 * err naming the first character outside the vocabulary, or -2 when cap is too small. */
int task_tok_encode(const TaskTokenizer *t, const char *text, int bos, int32_t *out, int cap,
                    char *err, size_t errlen);
/* Decode ids up to the first <eos> (specials skipped) into a new string. */
char *task_tok_decode(const TaskTokenizer *t, const int32_t *ids, int n);

typedef struct Task Task;
struct Task {
  const char *name;
  TaskTokenizer tok;
  /* Items in a split: 0 for an unbounded generator. */
  uint64_t (*count)(const Task *t, int split);
  /* Item `index` of `split` (a pure function of them), every field of *out filled (no extras:
   * nextra 0); returns -1 with err on failure. */
  int (*item)(const Task *t, int split, uint64_t index, TaskItem *out, char *err, size_t errlen);
  /* Score a decoded response against an item (the caller frees it with task_reward_free). */
  TaskReward (*reward)(const Task *t, const TaskItem *item, const char *response);
  void (*destroy)(Task *t);
  void *state;
};

void task_item_free(TaskItem *it);
void task_reward_free(TaskReward *r);
/* Appends extra NAME = VALUE to an item's or a response's arrays (*N, *NAMES, *VALS); NAME is
 * copied.  -1 when NAME is already there. */
int task_extra_add(int *n, char ***names, double **vals, const char *name, double value);
/* The value of extra NAME among N (NAMES, VALS) into *OUT: 0, or -1 when absent. */
int task_extra_get(int n, char *const *names, const double *vals, const char *name, double *out);
void task_free(Task *t);

/* arith: operands of 1..digits digits, the operators in ops (a subset of "+-*"), items of a
 * split drawn from (seed, split, index); an item belongs to the evaluation split iff a hash of
 * its (a, op, b) is 0 mod 10, so the two splits never share a problem. */
Task *task_arith_new(int digits, const char *ops, uint64_t seed, char *err, size_t errlen);

/* gsm8k: train and eval JSONL files (eval may be NULL: then no eval split); format_term adds
 * +0.1 / -0.1 for the <think>...</think><answer>...</answer> format. */
Task *task_gsm8k_new(const char *train_path, const char *eval_path, int format_term, char *err,
                     size_t errlen);

/* The rewards, usable on their own. */
/* 1 when the response, up to its end, is exactly the answer (surrounding spaces ignored). */
double task_exact_match(const char *response, const char *answer);
/* The last number in s (after "####" when present): digits with an optional sign, thousands
 * commas and a decimal part, written canonically into out ("1,000.50" -> "1000.5").
 * Returns 0, or -1 when s has no number. */
int task_last_number(const char *s, char *out, size_t outlen);
/* Whether s has the R1 format: <think>...</think>, whitespace, <answer>...</answer>, then only
 * whitespace to the end of a line (Python's re.match of
 * .*?<think>.*?</think>\s*<answer>.*?</answer>\s*$ with DOTALL | MULTILINE). */
int task_r1_format(const char *s);
/* GSM8K's reward of a response against a canonical reference number (see task_gsm8k.c). */
TaskReward task_gsm8k_score(const char *response, const char *answer, int format_term);

#endif
