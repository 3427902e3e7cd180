/* task.c — the task interface's shared parts: the character tokenizer (and its TaskTok), items,
 * the dispatch of a response to the task's reward or its external scorer, and the reward
 * functions (exact match, the final number of a text, the R1 format test), usable by any task.
 */
#include "rein/task.h"
#include "rein/common.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void task_tok_init(TaskTokenizer *t, const char *chars) {
  memset(t, 0, sizeof *t);
  for (int i = 0; i < 256; i++) t->id_of[i] = -1;
  for (const unsigned char *p = (const unsigned char *)chars; *p && t->nchars < 253; p++)
    if (t->id_of[*p] < 0) {
      t->id_of[*p] = TASK_FIRST_CHAR + t->nchars;
      t->chars[t->nchars++] = (char)*p;
    }
}

int task_tok_vocab(const TaskTokenizer *t) { return TASK_FIRST_CHAR + t->nchars; }

int task_tok_encode(const TaskTokenizer *t, const char *text, int bos, int32_t *out, int cap,
                    char *err, size_t errlen) {
  int n = 0;
  if (bos) {
    if (n >= cap) return -2;
    out[n++] = TASK_BOS;
  }
  for (const unsigned char *p = (const unsigned char *)text; *p; p++) {
    if (t->id_of[*p] < 0) {
      if (isprint(*p)) snprintf(err, errlen, "character '%c' (offset %ld) is not in the vocabulary", *p, (long)(p - (const unsigned char *)text));
      else snprintf(err, errlen, "byte 0x%02x (offset %ld) is not in the vocabulary", *p, (long)(p - (const unsigned char *)text));
      return -1;
    }
    if (n >= cap) return -2;
    out[n++] = t->id_of[*p];
  }
  return n;
}

char *task_tok_decode(const TaskTokenizer *t, const int32_t *ids, int n) {
  char *s = rc_malloc((size_t)n + 1);
  int k = 0;
  for (int i = 0; i < n && ids[i] != TASK_EOS; i++)
    if (ids[i] >= TASK_FIRST_CHAR && ids[i] < TASK_FIRST_CHAR + t->nchars) s[k++] = t->chars[ids[i] - TASK_FIRST_CHAR];
  s[k] = 0;
  return s;
}

/* ---- the character tokenizer as a TaskTok ---- */

static int ctk_text(const TaskTokenizer *t, const char *text, int bos, int32_t **ids, char *err, size_t errlen) {
  size_t n = strlen(text) + 2;
  if (n > (size_t)1 << 30) return snprintf(err, errlen, "longer than the tokenizer takes"), -1;
  *ids = rc_malloc(n * sizeof **ids);
  int k = task_tok_encode(t, text, bos, *ids, (int)n, err, errlen);
  if (k < 0) {
    if (k == -2) snprintf(err, errlen, "longer than the tokenizer takes");
    free(*ids);
    *ids = NULL;
    return -1;
  }
  return k;
}

static int ctk_prompt(TaskTok *k, const TaskItem *it, int32_t **ids, char *err, size_t errlen) {
  if (!it->prompt)
    return snprintf(err, errlen, "a conversation needs a chat template: a model directory with tokenizer.json and "
                                 "tokenizer_config.json (this one has the character tokenizer)"), -1;
  return ctk_text(k->state, it->prompt, 1, ids, err, errlen);
}

static int ctk_encode(TaskTok *k, const char *text, int32_t **ids, char *err, size_t errlen) {
  return ctk_text(k->state, text, 0, ids, err, errlen);
}

static char *ctk_decode(TaskTok *k, const int32_t *ids, int n, int all_ids, char *err, size_t errlen) {
  (void)err, (void)errlen, (void)all_ids;   /* a character prompt has <bos> alone, and no <eos> */
  return task_tok_decode(k->state, ids, n);
}

TaskTok *task_tok_char(const TaskTokenizer *t) {
  TaskTok *k = rc_calloc(1, sizeof *k);
  k->kind = "char";
  k->vocab = task_tok_vocab(t);
  k->neos = 1;
  k->eos[0] = TASK_EOS;
  k->pad = TASK_PAD;
  k->prompt = ctk_prompt;
  k->encode = ctk_encode;
  k->decode = ctk_decode;
  k->state = (void *)t;
  return k;
}

void task_tok_free(TaskTok *k) {
  if (k && k->destroy) k->destroy(k);
  free(k);
}

void task_item_free(TaskItem *it) {
  free(it->prompt);
  free(it->answer);
  for (int i = 0; i < it->nmsgs; i++) {
    free(it->msgs[i].role);
    free(it->msgs[i].content);
  }
  free(it->msgs);
  it->prompt = it->answer = NULL;
  it->msgs = NULL;
  it->nmsgs = 0;
  task_extras_free(&it->nextra, &it->extra_names, &it->extra_vals);
}

void task_free(Task *t) {
  if (t && t->destroy) t->destroy(t);
  if (t) {
    task_tok_free(t->tk);
    task_scorer_stop(t->scorer);
  }
  free(t);
}

int task_score(Task *t, const TaskItem *it, const char *response, TaskReward *out, char *err, size_t errlen) {
  if (t->scorer) {
    /* the prompt a scorer sees: the item's text, or the last user turn of its conversation */
    const char *prompt = it->prompt;
    for (int i = 0; i < it->nmsgs; i++)
      if (!strcmp(it->msgs[i].role, "user")) prompt = it->msgs[i].content;
    return task_scorer_score(t->scorer, prompt ? prompt : "", response, it->answer, out, err, errlen);
  }
  *out = t->reward(t, it, response);
  return 0;
}

double task_exact_match(const char *response, const char *answer) {
  while (isspace((unsigned char)*response)) response++;
  size_t n = strlen(response);
  while (n && isspace((unsigned char)response[n - 1])) n--;
  return strlen(answer) == n && !strncmp(response, answer, n) ? 1.0 : 0.0;
}

int task_last_number(const char *s, char *out, size_t outlen) {
  const char *h = strstr(s, "####");
  if (h) s = h + 4;
  const char *best = NULL;
  size_t blen = 0;
  for (const char *p = s; *p;) {
    if (isdigit((unsigned char)*p)) {
      const char *b = p;
      if (b > s && b[-1] == '-') b--;
      int dot = 0;   /* one decimal part: "1.5.0" is 1.5 then 0 (two dots made "1.5." canonical) */
      while (isdigit((unsigned char)*p) || (*p == ',' && isdigit((unsigned char)p[1])) ||
             (*p == '.' && !dot && isdigit((unsigned char)p[1])))
        dot |= *p++ == '.';
      best = b;
      blen = (size_t)(p - b);
    } else {
      p++;
    }
  }
  if (!best) return -1;
  /* Canonical: no commas, no trailing fractional zeros, no "-0". */
  char buf[128];
  size_t k = 0;
  for (size_t i = 0; i < blen && k + 1 < sizeof buf; i++)
    if (best[i] != ',') buf[k++] = best[i];
  buf[k] = 0;
  char *dot = strchr(buf, '.');
  if (dot) {
    char *e = buf + strlen(buf) - 1;
    while (e > dot && *e == '0') *e-- = 0;
    if (e == dot) *dot = 0;
  }
  char *digits = buf[0] == '-' ? buf + 1 : buf;
  while (digits[0] == '0' && isdigit((unsigned char)digits[1])) memmove(digits, digits + 1, strlen(digits));
  if (!strcmp(buf, "-0")) strcpy(buf, "0");
  snprintf(out, outlen, "%s", buf);
  return 0;
}

static int is_ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

/* After </answer> at p: whitespace, then the end of the string or of a line. */
static int ends_line(const char *p) {
  for (;; p++) {
    if (!*p || *p == '\n') return 1;
    if (!is_ws(*p)) return 0;
  }
}

int task_r1_format(const char *s) {
  const char *think = strstr(s, "<think>");
  if (!think) return 0;
  /* Any </think> after the first <think> (a later <think> only narrows the choice). */
  for (const char *ct = strstr(think + 7, "</think>"); ct; ct = strstr(ct + 1, "</think>")) {
    const char *p = ct + 8;
    while (is_ws(*p)) p++;
    if (strncmp(p, "<answer>", 8)) continue;
    for (const char *ca = strstr(p + 8, "</answer>"); ca; ca = strstr(ca + 1, "</answer>"))
      if (ends_line(ca + 9)) return 1;
  }
  return 0;
}
