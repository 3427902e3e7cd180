/* task_gsm8k.c — a GSM8K-format dataset task and its reference reward (docs/algorithms.md, the GSM8K reward).
 *
 * Each non-empty line of the JSONL files is {"question": ..., "answer": "... #### N"}; every
 * line is checked on load and a bad one is reported as PATH:LINE with the field.  The prompt is
 * the question and a newline (with the format term on, an instruction to answer in
 * <think>...</think><answer>...</answer> follows the question); for a model with a chat template
 * the item is also a conversation, the R1 system prompt of docs/algorithms.md, the GSM8K reward then the question
 * as the user's turn, and the task's TaskTok chooses which it encodes.  The reward:
 *   accuracy = 1 when the last number of the response (of its first <answer>...</answer> when
 *              there is one) equals N, compared in canonical form ("1,000.0" == "1000");
 *   format   = +0.1 / -0.1 for the R1 format (task_r1_format), when enabled;
 *   reward   = accuracy + format.
 */
#include "task_internal.h"
#include "rein/common.h"

#include <jansson.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
  char **q, **a;  /* question, canonical reference number */
  uint64_t n;
} Split;

typedef struct {
  Split split[2];
  int format_term;
  char *system;   /* the system turn of a chat prompt */
} Gsm;

static const char *INSTRUCTION =
    "\nThink in <think> </think>, then give the final answer in <answer> </answer>.\n";

/* DeepSeek-R1's prompt, the one the reference GSM8K workflow uses as its system turn. */
const char *const task_r1_system_prompt =
    "A conversation between User and Assistant. The user asks a question, and the Assistant solves it. The "
    "assistant first thinks about the reasoning process in the mind and then provides the user with the answer. "
    "The reasoning process and answer are enclosed within <think> </think> and <answer> </answer> tags, "
    "respectively, i.e., <think> reasoning process here </think> <answer> answer here </answer>.";

static void make_item(const Gsm *g, const char *q, const char *a, TaskItem *out) {
  memset(out, 0, sizeof *out);
  size_t n = strlen(q) + strlen(INSTRUCTION) + 2;
  out->prompt = rc_malloc(n);
  snprintf(out->prompt, n, "%s%s", q, g->format_term ? INSTRUCTION : "\n");
  out->answer = rc_strdup(a);
  out->nmsgs = 2;
  out->msgs = rc_calloc(2, sizeof *out->msgs);
  out->msgs[0] = (TaskMsg){rc_strdup("system"), rc_strdup(g->system)};
  out->msgs[1] = (TaskMsg){rc_strdup("user"), rc_strdup(q)};
}

/* Every question must encode with the task's tokenizer (task_data_prompt_ok). */
static int encodes(Task *t, const char *q, const char *path, long lineno, char *err, size_t errlen) {
  TaskItem it;
  make_item(t->state, q, "0", &it);
  int rc = task_data_prompt_ok(t, &it, path, lineno, "question", err, errlen);
  task_item_free(&it);
  return rc == 0;
}

typedef struct {
  Task *t;
  const char *path;
  Split *sp;
  uint64_t cap;
} GsmLoad;

/* One line {"question", "answer"} of a split's file into L->sp. */
static int gsm_line(void *ctx, json_t *o, long lineno, char *err, size_t errlen) {
  GsmLoad *L = ctx;
  Split *sp = L->sp;
  json_t *q = json_object_get(o, "question"), *a = json_object_get(o, "answer");
  char num[128];
  if (!json_is_string(q))
    return snprintf(err, errlen, "%s:%ld: field 'question': missing or not a string", L->path, lineno), -1;
  if (!json_is_string(a))
    return snprintf(err, errlen, "%s:%ld: field 'answer': missing or not a string", L->path, lineno), -1;
  if (!strstr(json_string_value(a), "####") || task_last_number(json_string_value(a), num, sizeof num))
    return snprintf(err, errlen, "%s:%ld: field 'answer': no final '#### N'", L->path, lineno), -1;
  if (!encodes(L->t, json_string_value(q), L->path, lineno, err, errlen)) return -1;  /* err says why */
  if (sp->n == L->cap) {
    L->cap = L->cap ? 2 * L->cap : 256;
    sp->q = rc_realloc(sp->q, L->cap * sizeof *sp->q);
    sp->a = rc_realloc(sp->a, L->cap * sizeof *sp->a);
  }
  sp->q[sp->n] = rc_strdup(json_string_value(q));
  sp->a[sp->n] = rc_strdup(num);
  sp->n++;
  return 0;
}

static int load_split(const char *path, Task *t, Split *sp, char *err, size_t errlen) {
  GsmLoad L = {t, path, sp, 0};
  return task_data_lines(path, gsm_line, &L, err, errlen) < 0 ? -1 : 0;
}

static uint64_t gsm_count(const Task *t, int split) { return ((const Gsm *)t->state)->split[split].n; }

static int gsm_item(const Task *t, int split, uint64_t index, TaskItem *out, char *err, size_t errlen) {
  const Gsm *g = t->state;
  const Split *sp = &g->split[split];
  if (!sp->n) {
    snprintf(err, errlen, "gsm8k: no %s split", split == TASK_EVAL ? "evaluation" : "training");
    return -1;
  }
  make_item(g, sp->q[index % sp->n], sp->a[index % sp->n], out);
  return 0;
}

TaskReward task_gsm8k_score(const char *response, const char *answer, int format_term) {
  const char *b = strstr(response, "<answer>"), *e = b ? strstr(b + 8, "</answer>") : NULL;
  char region[4096], num[128];
  if (b && e) {
    size_t n = (size_t)(e - b - 8) < sizeof region - 1 ? (size_t)(e - b - 8) : sizeof region - 1;
    memcpy(region, b + 8, n);
    region[n] = 0;
  } else {
    snprintf(region, sizeof region, "%s", response);
  }
  TaskReward r = {0};
  /* "####" in a response is just text: look at the region's last number. */
  const char *last = region;
  for (const char *h = strstr(region, "####"); h; h = strstr(h + 1, "####")) last = h + 4;
  if (!task_last_number(last, num, sizeof num) && !strcmp(num, answer)) r.accuracy = 1;
  if (format_term) r.format = task_r1_format(response) ? 0.1 : -0.1;
  r.reward = r.accuracy + r.format;
  return r;
}

static TaskReward gsm_reward(const Task *t, const TaskItem *it, const char *response) {
  return task_gsm8k_score(response, it->answer, ((const Gsm *)t->state)->format_term);
}

static void gsm_destroy(Task *t) {
  Gsm *g = t->state;
  for (int s = 0; s < 2; s++) {
    for (uint64_t i = 0; i < g->split[s].n; i++) {
      free(g->split[s].q[i]);
      free(g->split[s].a[i]);
    }
    free(g->split[s].q);
    free(g->split[s].a);
  }
  free(g->system);
  free(g);
}

/* Bytes of the character tokenizer: tab, newline, printable ASCII and every non-ASCII byte (UTF-8
 * passes through). */
static void byte_chars(char chars[256]) {
  int k = 0;
  chars[k++] = '\t';
  chars[k++] = '\n';
  for (int c = 32; c < 127; c++) chars[k++] = (char)c;
  for (int c = 128; c < 256 && k < 253; c++) chars[k++] = (char)c;
  chars[k] = 0;
}

void task_data_tok(Task *t, TaskTok *tok) {
  char chars[256];
  byte_chars(chars);
  task_tok_init(&t->tok, chars);
  t->tk = tok ? tok : task_tok_char(&t->tok);
}

int task_data_prompt_ok(Task *t, const TaskItem *it, const char *path, long lineno, const char *field,
                        char *err, size_t errlen) {
  int32_t *ids = NULL;
  char why[512];
  int k = t->tk->prompt(t->tk, it, &ids, why, sizeof why);
  free(ids);
  if (k >= 0) return 0;
  snprintf(err, errlen, "%s:%ld: field '%s': %s", path, lineno, field, why);
  return -1;
}

long task_data_lines(const char *path, TaskLineFn fn, void *ctx, char *err, size_t errlen) {
  FILE *f = fopen(path, "rb");
  if (!f) return snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno)), -1;
  char *line = NULL;
  size_t cap = 0;
  long len, lineno = 0, items = 0, rc = -1;
  while ((len = rc_read_line(f, &line, &cap, TASK_MAX_LINE)) >= 0 || len == -2) {
    lineno++;
    if (len == -2) {
      snprintf(err, errlen, "%s:%ld: longer than %d bytes", path, lineno, TASK_MAX_LINE);
      goto done;
    }
    while (len && (line[len - 1] == '\n' || line[len - 1] == '\r')) line[--len] = 0;
    if (!len) continue;
    json_error_t je;
    json_t *o = json_loadb(line, (size_t)len, 0, &je);
    if (!o || !json_is_object(o)) {
      snprintf(err, errlen, "%s:%ld: not a JSON object (%s)", path, lineno, o ? "other value" : je.text);
      json_decref(o);
      goto done;
    }
    int bad = fn(ctx, o, lineno, err, errlen);
    json_decref(o);
    if (bad) goto done;
    items++;
  }
  if (!items) {
    snprintf(err, errlen, "%s: no items", path);
    goto done;
  }
  rc = lineno;
done:
  free(line);
  fclose(f);
  return rc;
}

Task *task_gsm8k_open(const TaskData *d, char *err, size_t errlen) {
  Task *t = rc_calloc(1, sizeof *t);
  Gsm *g = rc_calloc(1, sizeof *g);
  g->format_term = d->format_term;
  g->system = rc_strdup(d->system_prompt ? d->system_prompt : task_r1_system_prompt);
  t->name = "gsm8k";
  t->count = gsm_count;
  t->item = gsm_item;
  t->reward = gsm_reward;
  t->destroy = gsm_destroy;
  t->state = g;
  task_data_tok(t, d->tok);
  if (load_split(d->train_path, t, &g->split[TASK_TRAIN], err, errlen) ||
      (d->eval_path && load_split(d->eval_path, t, &g->split[TASK_EVAL], err, errlen))) {
    if (d->tok) t->tk = NULL;   /* the caller's on failure */
    task_free(t);
    return NULL;
  }
  return t;
}

Task *task_gsm8k_new(const char *train_path, const char *eval_path, int format_term, char *err,
                     size_t errlen) {
  TaskData d = {.train_path = train_path, .eval_path = eval_path, .format_term = format_term};
  return task_gsm8k_open(&d, err, errlen);
}
