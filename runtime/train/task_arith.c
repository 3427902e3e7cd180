/* task_arith.c — the built-in arithmetic task: "37+45=" -> "82".
 *
 * Item i of a split is drawn from a counter-based generator keyed by (seed, split, i, attempt):
 * an operator from `ops`, then two operands whose digit counts are uniform in 1..digits.  A
 * problem belongs to the evaluation split iff a hash of (a, op, b) is 0 mod 10; each split
 * redraws (next attempt) until it gets one of its own, so no evaluation problem is ever trained
 * on.  The reward is exact match of the response with the answer.
 */
#include "rein/task.h"
#include "rein/common.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
  int digits;
  char ops[4];
  uint64_t seed;
} Arith;

static long operand(uint64_t r, int digits) {
  int d = 1 + (int)(r % (uint64_t)digits);
  long lo = 1, hi;
  for (int i = 1; i < d; i++) lo *= 10;
  hi = lo * 10;
  if (d == 1) lo = 0;
  return lo + (long)((r >> 16) % (uint64_t)(hi - lo));
}

static int split_of(long a, char op, long b) {
  return rein_mix64((uint64_t)a * 1000003u ^ (uint64_t)op * 7919u ^ rein_mix64((uint64_t)b)) % 10 == 0 ? TASK_EVAL : TASK_TRAIN;
}

static uint64_t arith_count(const Task *t, int split) {
  (void)t;
  (void)split;
  return 0;
}

static int arith_item(const Task *t, int split, uint64_t index, TaskItem *out, char *err, size_t errlen) {
  const Arith *A = t->state;
  int nops = (int)strlen(A->ops);
  uint64_t key = rein_mix64(rein_mix64(A->seed) ^ rein_mix64((uint64_t)split + 0x1234)) ^ rein_mix64(index);
  for (uint64_t attempt = 0; attempt < 100000; attempt++) {
    uint64_t r0 = rein_mix64(key + 3 * attempt), r1 = rein_mix64(key + 3 * attempt + 1), r2 = rein_mix64(key + 3 * attempt + 2);
    char op = A->ops[r0 % (uint64_t)nops];
    long a = operand(r1, A->digits), b = operand(r2, A->digits);
    if (split_of(a, op, b) != split) continue;
    long c = op == '+' ? a + b : op == '-' ? a - b : a * b;
    char p[64], s[32];
    snprintf(p, sizeof p, "%ld%c%ld=", a, op, b);
    snprintf(s, sizeof s, "%ld", c);
    *out = (TaskItem){.prompt = rc_strdup(p), .answer = rc_strdup(s)};
    /* an extra for objectives that declare `input seq difficulty;`: the operands' digits */
    int nd = (int)strlen(p) - 2 - (a < 0) - (b < 0);
    task_extra_add(&out->nextra, &out->extra_names, &out->extra_vals, "difficulty", nd);
    return 0;
  }
  snprintf(err, errlen, "arith: no problem of split %d found", split);
  return -1;
}

static TaskReward arith_reward(const Task *t, const TaskItem *it, const char *response) {
  (void)t;
  double acc = task_exact_match(response, it->answer);
  return (TaskReward){.reward = acc, .accuracy = acc};
}

static void arith_destroy(Task *t) { free(t->state); }

Task *task_arith_new(int digits, const char *ops, uint64_t seed, char *err, size_t errlen) {
  if (digits < 1 || digits > 9) {
    snprintf(err, errlen, "arith: digits must be in 1..9 (got %d)", digits);
    return NULL;
  }
  if (!*ops || strlen(ops) > 3 || strspn(ops, "+-*") != strlen(ops)) {
    snprintf(err, errlen, "arith: operators must be a subset of \"+-*\" (got \"%s\")", ops);
    return NULL;
  }
  Task *t = rc_calloc(1, sizeof *t);
  Arith *A = rc_calloc(1, sizeof *A);
  A->digits = digits;
  snprintf(A->ops, sizeof A->ops, "%s", ops);
  A->seed = seed;
  t->name = "arith";
  task_tok_init(&t->tok, "0123456789+-*=");
  t->count = arith_count;
  t->item = arith_item;
  t->reward = arith_reward;
  t->destroy = arith_destroy;
  t->state = A;
  return t;
}
