/* task.h — verifiable tasks for RL training: where prompts come from, how text becomes tokens,
 * and how a response is scored.
 *
 * A task is a small interface struct (Task) with plain C functions, so a user adds a task or a
 * reward by filling one in.  Built in:
 *   - "arith": seeded multi-digit arithmetic (add / subtract / multiply), an unbounded generator
 *     with a held-out evaluation split, character-level tokenizer; each item has the extra
 *     `difficulty`, the number of digits of its two operands;
 *   - "gsm8k": a GSM8K-format JSONL file ("question", "answer" ending in "#### N") with the
 *     reference reward of docs/algorithms.md (the GSM8K reward): exact match of the final number, optionally plus the
 *     +/-0.1 format term;
 *   - "jsonl": any JSONL dataset whose prompt (a string, or a list of chat messages) and reference
 *     answer fields are named by the user; its reward comes from an external command.
 * How text becomes tokens is a second small interface, TaskTok: the character tokenizer of the
 * built-in tasks, or a model's own Hugging Face tokenizer and chat template (task_tok_hf,
 * runtime/train/task_tok_hf.c); the trainer codes against TaskTok and never knows which.
 * Rewards: the task's C function, or an external command that stays running and answers one
 * JSON line per response (TaskScorer).
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
  char *role;     /* "system", "user", "assistant" */
  char *content;
} TaskMsg;

typedef struct {
  char *prompt;   /* the text the policy continues (character tokenizer; the user's turn of a chat) */
  char *answer;   /* the reference answer, canonical form (e.g. "-42") */
  TaskMsg *msgs;  /* the conversation a chat template renders (NULL: one user turn, `prompt`) */
  int nmsgs;
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

/* How the trainer turns an item into prompt ids and response ids back into text.  A TaskTok is
 * owned by the task it is given to.  Sampling stops at any of eos[0..neos); the response ids it
 * decodes end at (and exclude) the first of them. */
#define TASK_MAX_EOS 8
typedef struct TaskTok TaskTok;
struct TaskTok {
  const char *kind;           /* "char" or "hf" */
  int vocab;                  /* ids 0 .. vocab-1 */
  int neos;
  int32_t eos[TASK_MAX_EOS];
  int32_t pad;
  /* The prompt ids of an item (*ids malloc'd; the count, or -1 with err). */
  int (*prompt)(TaskTok *k, const TaskItem *it, int32_t **ids, char *err, size_t errlen);
  /* Plain text to ids, no special tokens added (`rein sft`'s answers); the count, or -1. */
  int (*encode)(TaskTok *k, const char *text, int32_t **ids, char *err, size_t errlen);
  /* Response ids to a new string, up to the first eos with special tokens skipped; with
   * all_ids, every id and the special tokens written out (prompts, for logs).  NULL with err. */
  char *(*decode)(TaskTok *k, const int32_t *ids, int n, int all_ids, char *err, size_t errlen);
  void (*destroy)(TaskTok *k);
  void *state;
};

/* The character tokenizer T as a TaskTok (T must outlive it): the prompt is <bos> + its text,
 * eos {TASK_EOS}, pad TASK_PAD. */
TaskTok *task_tok_char(const TaskTokenizer *t);
void task_tok_free(TaskTok *k);

typedef struct TaskScorer TaskScorer;

typedef struct Task Task;
struct Task {
  const char *name;
  TaskTokenizer tok;    /* the character tokenizer of the built-in tasks */
  TaskTok *tk;          /* what the trainer encodes and decodes with (owned) */
  TaskScorer *scorer;   /* an external reward command replacing `reward` (owned; NULL: none) */
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
/* Frees an extras triple (*N, *NAMES, *VALS) and empties it. */
void task_extras_free(int *n, char ***names, double **vals);
/* Appends extra NAME = VALUE to an item's or a response's arrays (*N, *NAMES, *VALS); NAME is
 * copied.  -1 when NAME is already there. */
int task_extra_add(int *n, char ***names, double **vals, const char *name, double value);
/* The value of extra NAME among N (NAMES, VALS) into *OUT: 0, or -1 when absent. */
int task_extra_get(int n, char *const *names, const double *vals, const char *name, double *out);
void task_free(Task *t);

/* ---- rewards from outside: an external command ----
 * The command (run by /bin/sh -c) is started once and stays running; for each response it reads
 * one JSON line {"prompt", "response", "answer"} on stdin and writes one JSON line
 * {"reward": number, "accuracy": number in [0, 1], ...} on stdout; further numeric fields (at most
 * TASK_MAX_EXTRA, names of letters, digits and '_' shorter than TASK_EXTRA_NAME) are the scored
 * response's extras (TaskReward), which the trainer logs and the objective's inputs may name.  Its stderr is
 * passed through.  Each answer must come within timeout_s seconds.  A command that dies, hangs
 * past the timeout or answers anything else is an error naming the command and what it did. */
#define TASK_MAX_EXTRA 16
#define TASK_EXTRA_NAME 48   /* bytes of an extra field's name, its NUL included */

TaskScorer *task_scorer_start(const char *cmd, double timeout_s, char *err, size_t errlen);
int task_scorer_score(TaskScorer *s, const char *prompt, const char *response, const char *answer,
                      TaskReward *out, char *err, size_t errlen);
/* Closes its stdin, waits up to the timeout for it to exit, then kills it.  NULL is a no-op. */
void task_scorer_stop(TaskScorer *s);

/* Scores a decoded response of item IT into OUT (free it with task_reward_free): through t->scorer
 * when the task has one (its extra fields are OUT's extras), else t->reward.  -1 with err when the
 * command fails (then OUT holds nothing to free). */
int task_score(Task *t, const TaskItem *it, const char *response, TaskReward *out, char *err, size_t errlen);

/* The dataset tasks' inputs.  tok: the tokenizer (owned by the task on success, freed by the
 * caller on failure); NULL: the character tokenizer.  Every line is checked on load, including
 * that its prompt encodes with tok: a bad one is reported as PATH:LINE with the field. */
typedef struct {
  const char *train_path, *eval_path;   /* eval_path NULL: no evaluation split */
  int format_term;                      /* gsm8k */
  const char *system_prompt;            /* gsm8k with a chat template: the system turn (NULL: R1) */
  const char *prompt_field, *messages_field, *answer_field;   /* jsonl (one of the first two) */
  TaskTok *tok;
} TaskData;

Task *task_gsm8k_open(const TaskData *d, char *err, size_t errlen);
/* jsonl: each line an object with d->prompt_field (a string: the prompt) or d->messages_field (a
 * list of {"role", "content"} strings: the conversation, for a chat template) and
 * d->answer_field (a string, or a number kept as its JSON text).  Its own reward is exact match
 * of the response with the answer (surrounding spaces ignored); an attached scorer replaces it. */
Task *task_jsonl_open(const TaskData *d, char *err, size_t errlen);

/* S with every byte that is not part of valid UTF-8 replaced by U+FFFD (a new string): text for
 * JSON, which must be UTF-8, from responses that may end inside a character. */
char *task_utf8_clean(const char *s);

/* The system prompt of GSM8K on a chat model (R1-style; docs/algorithms.md, the GSM8K reward). */
extern const char *const task_r1_system_prompt;

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
