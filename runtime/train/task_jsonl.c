/* task_jsonl.c — bring your own dataset: a JSONL file whose field names the user gives.
 *
 * Each non-empty line is a JSON object with either a prompt field (a string, encoded as it is, or
 * as the user's turn of a chat template) or a messages field (a conversation: a non-empty list of
 * {"role": "system" | "user" | "assistant", "content": string}, rendered by the model's chat
 * template), and a reference answer field (a string, or a number kept as its JSON text).  Every
 * line is checked when the task is opened — JSON, fields, types, and that the prompt encodes with
 * the task's tokenizer — and the first bad one is reported as PATH:LINE: field 'NAME': problem.
 * The task's own reward is exact match with the answer; rewards of any other kind come from an
 * external command (task_rcmd.c) that the trainer attaches with --reward-cmd.
 */
#include "task_internal.h"
#include "rein/common.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
  TaskItem *it;
  uint64_t n;
} JlSplit;

typedef struct {
  JlSplit split[2];
  char *prompt_field, *messages_field, *answer_field;
} Jsonl;

static void copy_item(const TaskItem *a, TaskItem *b) {
  memset(b, 0, sizeof *b);
  b->prompt = a->prompt ? rc_strdup(a->prompt) : NULL;
  b->answer = rc_strdup(a->answer);
  b->nmsgs = a->nmsgs;
  if (a->nmsgs) b->msgs = rc_calloc((size_t)a->nmsgs, sizeof *b->msgs);
  for (int i = 0; i < a->nmsgs; i++) b->msgs[i] = (TaskMsg){rc_strdup(a->msgs[i].role), rc_strdup(a->msgs[i].content)};
  for (int i = 0; i < a->nextra; i++)
    task_extra_add(&b->nextra, &b->extra_names, &b->extra_vals, a->extra_names[i], a->extra_vals[i]);
}

/* The item of one parsed line O into IT; -1 with "PATH:LINE: field ..." in err. */
static int parse_item(const Jsonl *J, json_t *o, const char *path, long ln, TaskItem *it, char *err, size_t errlen) {
  memset(it, 0, sizeof *it);
  if (J->messages_field) {
    json_t *m = json_object_get(o, J->messages_field);
    if (!json_is_array(m) || !json_array_size(m))
      return snprintf(err, errlen, "%s:%ld: field '%s': missing, or not a non-empty list of messages", path, ln,
                      J->messages_field), -1;
    if (json_array_size(m) > 4096)
      return snprintf(err, errlen, "%s:%ld: field '%s': more than 4096 messages", path, ln, J->messages_field), -1;
    it->nmsgs = (int)json_array_size(m);
    it->msgs = rc_calloc((size_t)it->nmsgs, sizeof *it->msgs);
    for (int i = 0; i < it->nmsgs; i++) {
      json_t *e = json_array_get(m, (size_t)i), *r = json_object_get(e, "role"), *c = json_object_get(e, "content");
      if (!json_is_object(e))
        return snprintf(err, errlen, "%s:%ld: field '%s[%d]': expected an object {\"role\", \"content\"}", path, ln,
                        J->messages_field, i), -1;
      if (!json_is_string(r) || (strcmp(json_string_value(r), "system") && strcmp(json_string_value(r), "user") &&
                                 strcmp(json_string_value(r), "assistant")))
        return snprintf(err, errlen, "%s:%ld: field '%s[%d].role': expected \"system\", \"user\" or \"assistant\"",
                        path, ln, J->messages_field, i), -1;
      if (!json_is_string(c))
        return snprintf(err, errlen, "%s:%ld: field '%s[%d].content': missing or not a string", path, ln,
                        J->messages_field, i), -1;
      it->msgs[i] = (TaskMsg){rc_strdup(json_string_value(r)), rc_strdup(json_string_value(c))};
    }
  } else {
    json_t *p = json_object_get(o, J->prompt_field);
    if (!json_is_string(p))
      return snprintf(err, errlen, "%s:%ld: field '%s': missing or not a string", path, ln, J->prompt_field), -1;
    it->prompt = rc_strdup(json_string_value(p));
  }
  json_t *a = json_object_get(o, J->answer_field);
  if (json_is_string(a)) it->answer = rc_strdup(json_string_value(a));
  else if (json_is_number(a)) it->answer = json_dumps(a, JSON_ENCODE_ANY | JSON_REAL_PRECISION(17));
  else
    return snprintf(err, errlen, "%s:%ld: field '%s': missing, or not a string or a number", path, ln,
                    J->answer_field), -1;
  /* every other numeric field is an extra of the item: the objective's `input seq NAME;` reads it */
  const char *key;
  json_t *v;
  json_object_foreach(o, key, v) {
    if (!json_is_number(v) || !strcmp(key, J->answer_field)) continue;
    double x = json_number_value(v);
    if (!isfinite(x) || fabs(x) > 3.4e38)
      return snprintf(err, errlen, "%s:%ld: field '%s': %g is not a finite float32", path, ln, key, x), -1;
    task_extra_add(&it->nextra, &it->extra_names, &it->extra_vals, key, x);
  }
  return 0;
}

typedef struct {
  Task *t;
  const char *path;
  JlSplit *sp;
  uint64_t cap;
} JlLoad;

/* One line of a split's file into L->sp: its item, whose prompt must encode. */
static int jl_line(void *ctx, json_t *o, long ln, char *err, size_t errlen) {
  JlLoad *L = ctx;
  const Jsonl *J = L->t->state;
  TaskItem it;
  if (parse_item(J, o, L->path, ln, &it, err, errlen) ||
      task_data_prompt_ok(L->t, &it, L->path, ln, J->messages_field ? J->messages_field : J->prompt_field, err,
                          errlen)) {
    task_item_free(&it);
    return -1;
  }
  JlSplit *sp = L->sp;
  if (sp->n == L->cap) sp->it = rc_realloc(sp->it, (L->cap = L->cap ? 2 * L->cap : 256) * sizeof *sp->it);
  sp->it[sp->n++] = it;
  return 0;
}

static int load_split(Task *t, const char *path, JlSplit *sp, char *err, size_t errlen) {
  JlLoad L = {t, path, sp, 0};
  return task_data_lines(path, jl_line, &L, err, errlen) < 0 ? -1 : 0;
}

static uint64_t jl_count(const Task *t, int split) { return ((const Jsonl *)t->state)->split[split].n; }

static int jl_item(const Task *t, int split, uint64_t index, TaskItem *out, char *err, size_t errlen) {
  const JlSplit *sp = &((const Jsonl *)t->state)->split[split];
  if (!sp->n) {
    snprintf(err, errlen, "jsonl: no %s split", split == TASK_EVAL ? "evaluation" : "training");
    return -1;
  }
  copy_item(&sp->it[index % sp->n], out);
  return 0;
}

static TaskReward jl_reward(const Task *t, const TaskItem *it, const char *response) {
  (void)t;
  double acc = task_exact_match(response, it->answer);
  return (TaskReward){.reward = acc, .accuracy = acc};
}

static void jl_destroy(Task *t) {
  Jsonl *J = t->state;
  for (int s = 0; s < 2; s++) {
    for (uint64_t i = 0; i < J->split[s].n; i++) task_item_free(&J->split[s].it[i]);
    free(J->split[s].it);
  }
  free(J->prompt_field);
  free(J->messages_field);
  free(J->answer_field);
  free(J);
}

Task *task_jsonl_open(const TaskData *d, char *err, size_t errlen) {
  if (d->prompt_field && d->messages_field) {
    snprintf(err, errlen, "jsonl: give a prompt field or a messages field, not both");
    return NULL;
  }
  Task *t = rc_calloc(1, sizeof *t);
  Jsonl *J = rc_calloc(1, sizeof *J);
  J->messages_field = d->messages_field ? rc_strdup(d->messages_field) : NULL;
  J->prompt_field = d->messages_field ? NULL : rc_strdup(d->prompt_field ? d->prompt_field : "prompt");
  J->answer_field = rc_strdup(d->answer_field ? d->answer_field : "answer");
  t->name = "jsonl";
  t->count = jl_count;
  t->item = jl_item;
  t->reward = jl_reward;
  t->destroy = jl_destroy;
  t->state = J;
  task_data_tok(t, d->tok);
  if (load_split(t, d->train_path, &J->split[TASK_TRAIN], err, errlen) ||
      (d->eval_path && load_split(t, d->eval_path, &J->split[TASK_EVAL], err, errlen))) {
    if (d->tok) t->tk = NULL;   /* the caller's on failure */
    task_free(t);
    return NULL;
  }
  return t;
}
