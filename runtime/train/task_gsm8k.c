/* task_gsm8k.c — a GSM8K-format dataset task and its reference reward (docs/algorithms.md, the GSM8K reward).
 *
 * Each non-empty line of the JSONL files is {"question": ..., "answer": "... #### N"}; every
 * line is checked on load and a bad one is reported as PATH:LINE with the field.  The prompt is
 * the question and a newline (with the format term on, an instruction to answer in
 * <think>...</think><answer>...</answer> follows the question).  The reward:
 *   accuracy = 1 when the last number of the response (of its first <answer>...</answer> when
 *              there is one) equals N, compared in canonical form ("1,000.0" == "1000");
 *   format   = +0.1 / -0.1 for the R1 format (task_r1_format), when enabled;
 *   reward   = accuracy + format.
 */
#include "rein/task.h"
#include "rein/common.h"

#include <jansson.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The longest dataset line read (a GSM8K item is about 1 KB). */
#define TASK_MAX_LINE (16 << 20)

typedef struct {
  char **q, **a;  /* question, canonical reference number */
  uint64_t n;
} Split;

typedef struct {
  Split split[2];
  int format_term;
} Gsm;

static const char *INSTRUCTION =
    "\nThink in <think> </think>, then give the final answer in <answer> </answer>.\n";

/* Loads the items of PATH into SP; every question must encode with TOK (checked here, so a bad
 * line is reported as PATH:LINE when the run starts, not when it is first sampled). */
static int encodes(const TaskTokenizer *tok, const char *text, const char *path, long lineno, char *err,
                   size_t errlen) {
  size_t n = strlen(text) + 2;
  int32_t *ids = rc_malloc(n * sizeof *ids);
  char why[256];
  int k = task_tok_encode(tok, text, 1, ids, (int)(n < (size_t)1 << 30 ? n : (size_t)1 << 30), why, sizeof why);
  free(ids);
  if (k >= 0) return 1;
  snprintf(err, errlen, "%s:%ld: field 'question': %s", path, lineno,
           k == -1 ? why : "longer than the tokenizer takes");
  return 0;
}

static int load_split(const char *path, const TaskTokenizer *tok, Split *sp, char *err, size_t errlen) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
    return -1;
  }
  char *line = NULL;
  size_t cap = 0;
  long len;
  long lineno = 0;
  uint64_t ncap = 0;
  int rc = -1;
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
    json_t *q = json_object_get(o, "question"), *a = json_object_get(o, "answer");
    char num[128];
    if (!json_is_string(q)) {
      snprintf(err, errlen, "%s:%ld: field 'question': missing or not a string", path, lineno);
    } else if (!json_is_string(a)) {
      snprintf(err, errlen, "%s:%ld: field 'answer': missing or not a string", path, lineno);
    } else if (!strstr(json_string_value(a), "####") || task_last_number(json_string_value(a), num, sizeof num)) {
      snprintf(err, errlen, "%s:%ld: field 'answer': no final '#### N'", path, lineno);
    } else if (!encodes(tok, json_string_value(q), path, lineno, err, errlen)) {
      /* err says which character */
    } else {
      if (sp->n == ncap) {
        ncap = ncap ? 2 * ncap : 256;
        sp->q = rc_realloc(sp->q, ncap * sizeof *sp->q);
        sp->a = rc_realloc(sp->a, ncap * sizeof *sp->a);
      }
      sp->q[sp->n] = rc_strdup(json_string_value(q));
      sp->a[sp->n] = rc_strdup(num);
      sp->n++;
      json_decref(o);
      continue;
    }
    json_decref(o);
    goto done;
  }
  if (!sp->n) {
    snprintf(err, errlen, "%s: no items", path);
    goto done;
  }
  rc = 0;
done:
  free(line);
  fclose(f);
  return rc;
}

static uint64_t gsm_count(const Task *t, int split) { return ((const Gsm *)t->state)->split[split].n; }

static int gsm_item(const Task *t, int split, uint64_t index, TaskItem *out, char *err, size_t errlen) {
  const Gsm *g = t->state;
  const Split *sp = &g->split[split];
  if (!sp->n) {
    snprintf(err, errlen, "gsm8k: no %s split", split == TASK_EVAL ? "evaluation" : "training");
    return -1;
  }
  const char *q = sp->q[index % sp->n];
  size_t n = strlen(q) + strlen(INSTRUCTION) + 2;
  *out = (TaskItem){0};
  out->prompt = rc_malloc(n);
  snprintf(out->prompt, n, "%s%s", q, g->format_term ? INSTRUCTION : "\n");
  out->answer = rc_strdup(sp->a[index % sp->n]);
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
  free(g);
}

Task *task_gsm8k_new(const char *train_path, const char *eval_path, int format_term, char *err,
                     size_t errlen) {
  Task *t = rc_calloc(1, sizeof *t);
  Gsm *g = rc_calloc(1, sizeof *g);
  g->format_term = format_term;
  t->name = "gsm8k";
  t->count = gsm_count;
  t->item = gsm_item;
  t->reward = gsm_reward;
  t->destroy = gsm_destroy;
  t->state = g;
  /* Bytes: tab, newline, printable ASCII and every non-ASCII byte (UTF-8 passes through). */
  char chars[256];
  int k = 0;
  chars[k++] = '\t';
  chars[k++] = '\n';
  for (int c = 32; c < 127; c++) chars[k++] = (char)c;
  for (int c = 128; c < 256 && k < 253; c++) chars[k++] = (char)c;
  chars[k] = 0;
  task_tok_init(&t->tok, chars);
  if (load_split(train_path, &t->tok, &g->split[TASK_TRAIN], err, errlen) ||
      (eval_path && load_split(eval_path, &t->tok, &g->split[TASK_EVAL], err, errlen))) {
    task_free(t);
    return NULL;
  }
  return t;
}
