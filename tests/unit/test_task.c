/* test_task.c — the tasks and rewards: the arithmetic generator (determinism, correct answers,
 * disjoint splits), the tokenizer, exact match, the final-number extraction, the R1 format test
 * (expectations from Python's re.match with DOTALL | MULTILINE, see the table), the GSM8K
 * reader's reward and its errors on bad lines, and the explorer/trainer version schedule of
 * docs/algorithms.md, the off-policy schedule for its four settings.
 * Usage: test_task WORKDIR
 */
#include "rein/sched.h"
#include "rein/task.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

static void check_arith(void) {
  char err[256];
  Task *t = task_arith_new(3, "+-*", 42, err, sizeof err);
  CHECK(t != NULL, "arith: %s", err);
  int seen_op[3] = {0};
  for (uint64_t i = 0; i < 2000; i++)
    for (int split = 0; split < 2; split++) {
      TaskItem a, b;
      CHECK(!t->item(t, split, i, &a, err, sizeof err), "item: %s", err);
      CHECK(!t->item(t, split, i, &b, err, sizeof err), "item: %s", err);
      CHECK(!strcmp(a.prompt, b.prompt) && !strcmp(a.answer, b.answer), "item %llu is not a pure function", (unsigned long long)i);
      long x, y;
      char op;
      CHECK(sscanf(a.prompt, "%ld%c%ld=", &x, &op, &y) == 3, "prompt '%s'", a.prompt);
      long want = op == '+' ? x + y : op == '-' ? x - y : x * y;
      char ws[32];
      snprintf(ws, sizeof ws, "%ld", want);
      CHECK(!strcmp(ws, a.answer), "%s has answer %s, want %s", a.prompt, a.answer, ws);
      CHECK(x >= 0 && x < 1000 && y >= 0 && y < 1000, "operands of %s out of range", a.prompt);
      seen_op[op == '+' ? 0 : op == '-' ? 1 : 2] = 1;
      TaskReward r = t->reward(t, &a, a.answer);
      CHECK(r.reward == 1 && r.accuracy == 1, "the answer itself must score 1");
      r = t->reward(t, &a, "x");
      CHECK(r.reward == 0, "a wrong answer must score 0");
      /* The evaluation problems never appear among the training ones (checked on 2000 of each). */
      if (split == TASK_EVAL) {
        for (uint64_t j = 0; j < 50; j++) {
          TaskItem c;
          t->item(t, TASK_TRAIN, i * 50 + j, &c, err, sizeof err);
          CHECK(strcmp(c.prompt, a.prompt), "eval problem %s also in training", a.prompt);
          task_item_free(&c);
        }
      }
      task_item_free(&a);
      task_item_free(&b);
      if (split == TASK_EVAL && i >= 40) break;
    }
  CHECK(seen_op[0] && seen_op[1] && seen_op[2], "every operator appears");
  /* Tokenizer round trip and errors. */
  int32_t ids[64];
  int n = task_tok_encode(&t->tok, "12*34=408", 1, ids, 64, err, sizeof err);
  CHECK(n == 10 && ids[0] == TASK_BOS, "encode: %d", n);
  ids[n++] = TASK_EOS;
  ids[n++] = t->tok.id_of['7'];
  char *s = task_tok_decode(&t->tok, ids, n);
  CHECK(!strcmp(s, "12*34=408"), "decode gave '%s'", s);
  free(s);
  CHECK(task_tok_encode(&t->tok, "1/2", 0, ids, 64, err, sizeof err) == -1 && strstr(err, "'/'"), "bad char: %s", err);
  CHECK(task_tok_vocab(&t->tok) == 3 + 14, "vocab %d", task_tok_vocab(&t->tok));
  task_free(t);
  CHECK(!task_arith_new(0, "+", 1, err, sizeof err) && strstr(err, "digits"), "digits 0 accepted");
  CHECK(!task_arith_new(2, "+/", 1, err, sizeof err) && strstr(err, "operators"), "op / accepted");
}

static void check_rewards(void) {
  CHECK(task_exact_match(" 42 ", "42") == 1 && task_exact_match("420", "42") == 0 && task_exact_match("", "42") == 0, "exact match");
  struct { const char *in, *want; } nums[] = {
      {"so 1,000.50 apples", "1000.5"}, {"#### 72", "72"}, {"a 3 then -4", "-4"}, {"x 007 y", "7"},
      {"5.0", "5"}, {"-0", "0"}, {"He had 12 #### 1,234", "1234"}, {"3.14.", "3.14"},
      /* one decimal point per number (the GSM8K fuzzer found "-0,200.5.0" read as "-200.5.") */
      {"#### -0,200.5.0", "0"}, {"1.5.7", "7"}};
  char out[64];
  for (unsigned i = 0; i < sizeof nums / sizeof *nums; i++) {
    CHECK(!task_last_number(nums[i].in, out, sizeof out) && !strcmp(out, nums[i].want), "last number of '%s': '%s', want '%s'",
          nums[i].in, out, nums[i].want);
  }
  CHECK(task_last_number("no digits", out, sizeof out) == -1, "no number must fail");
  /* Expectations from Python: re.match(r".*?<think>.*?</think>\s*<answer>.*?</answer>\s*$", s, re.DOTALL | re.MULTILINE). */
  struct { const char *s; int want; } fm[] = {
      {"<think>a</think><answer>5</answer>", 1},
      {"<think>a</think> \n <answer>5</answer>  ", 1},
      {"<think>a</think><answer>5</answer>\nmore text", 1},
      {"<think>a</think><answer>5</answer> more", 0},
      {"x <think>a</think>\n<answer>5</answer>\n", 1},
      {"<answer>5</answer><think>a</think>", 0},
      {"<think>a</think>b<answer>5</answer>", 0},
      {"<think></think><answer></answer>", 1},
      {"<think>a</think><answer>5</answer>x</answer>", 1},
      {"<think>a</think><answer>5</answer>x</answer>\n", 1},
      {"<think>a</think>x</think><answer>1</answer>", 1},
      {"<think><think>a</think><answer>1", 0},
      {"", 0},
      {"<think>a</think><answer>5</answer>\r\n", 1},
      {"<think>a</think><answer>5</answer> \t", 1}};
  for (unsigned i = 0; i < sizeof fm / sizeof *fm; i++)
    CHECK(task_r1_format(fm[i].s) == fm[i].want, "r1 format of case %u: %d, want %d", i, task_r1_format(fm[i].s), fm[i].want);
  TaskReward r = task_gsm8k_score("<think>6*12</think><answer>The total is 72.</answer>", "72", 1);
  CHECK(r.accuracy == 1 && r.format > 0.09 && r.reward > 1.09, "gsm8k: right + format: %g %g", r.accuracy, r.format);
  r = task_gsm8k_score("72 but <answer>71</answer>", "72", 1);
  CHECK(r.accuracy == 0 && r.format < 0 && r.reward < -0.09, "gsm8k: the <answer> region decides");
  r = task_gsm8k_score("it is 1,000", "1000", 0);
  CHECK(r.accuracy == 1 && r.format == 0 && r.reward == 1, "gsm8k: commas, no format term");
}

static void write_file(const char *path, const char *text) {
  FILE *f = fopen(path, "w");
  fputs(text, f);
  fclose(f);
}

static void check_gsm8k(const char *dir) {
  char p[4096], q[4096], err[512];
  snprintf(p, sizeof p, "%s/train.jsonl", dir);
  snprintf(q, sizeof q, "%s/test.jsonl", dir);
  write_file(p, "{\"question\": \"Tom has 3 apples and buys 4. How many?\", \"answer\": \"3+4=7\\n#### 7\"}\n\n"
                "{\"question\": \"Q2\", \"answer\": \"a lot\\n#### 1,200\"}\n");
  write_file(q, "{\"question\": \"Q3\", \"answer\": \"#### -5\"}\n");
  Task *t = task_gsm8k_new(p, q, 1, err, sizeof err);
  CHECK(t != NULL, "gsm8k: %s", err);
  if (t) {
    CHECK(t->count(t, TASK_TRAIN) == 2 && t->count(t, TASK_EVAL) == 1, "counts");
    TaskItem it;
    CHECK(!t->item(t, TASK_TRAIN, 1, &it, err, sizeof err) && !strcmp(it.answer, "1200") && !strncmp(it.prompt, "Q2\n", 3), "item 1");
    TaskReward r = t->reward(t, &it, "<think>x</think><answer>1200</answer>");
    CHECK(r.reward > 1.09, "reward %g", r.reward);
    task_item_free(&it);
    task_free(t);
  }
  struct { const char *text, *want; } bad[] = {
      {"{\"question\": \"q\", \"answer\": \"no final\"}\n", ":1: field 'answer': no final '#### N'"},
      {"\n{\"answer\": \"#### 1\"}\n", ":2: field 'question'"},
      {"{\"question\": \"q\", \"answer\": 5}\n", ":1: field 'answer'"},
      {"{\"question\": \"q\", \"answer\": \"#### 1\"}\nnot json\n", ":2: not a JSON object"},
      {"", ": no items"},
      /* a character outside the vocabulary is found on load, with the line (issue 14, case 10) */
      {"{\"question\": \"q\", \"answer\": \"#### 1\"}\n{\"question\": \"carriage\\rreturn\", \"answer\": \"#### 2\"}\n",
       ":2: field 'question': byte 0x0d (offset 8) is not in the vocabulary"}};
  for (unsigned i = 0; i < sizeof bad / sizeof *bad; i++) {
    write_file(p, bad[i].text);
    t = task_gsm8k_new(p, NULL, 0, err, sizeof err);
    CHECK(!t && strstr(err, p) && strstr(err, bad[i].want), "bad file %u: '%s', want '%s'", i, err, bad[i].want);
    task_free(t);
  }
  snprintf(q, sizeof q, "%s/missing.jsonl", dir);
  t = task_gsm8k_new(q, NULL, 0, err, sizeof err);
  CHECK(!t && strstr(err, "cannot open"), "missing file: %s", err);
}

/* The four settings of docs/algorithms.md, "The off-policy schedule". */
static void check_sched(void) {
  for (int e = 1; e <= 160; e++) {
    /* 1. offline (300, 199): every batch from the initial policy. */
    CHECK(rt_sched_version(e, 300, 199) == 0, "offline: batch %d from %lld", e, (long long)rt_sched_version(e, 300, 199));
    /* 3. periodic (20, 0): batches 1-20 from θ0, 21-40 from θ20, ...; staleness cycles 0..19. */
    CHECK(rt_sched_version(e, 20, 0) == 20 * ((e - 1) / 20), "periodic: batch %d", e);
    CHECK(rt_sched_lag(e, 20, 0) == (e - 1) % 20, "periodic lag: batch %d", e);
    /* 4. on-policy (1, 0): batch e from θ_{e-1}, lag 0. */
    CHECK(rt_sched_version(e, 1, 0) == e - 1 && rt_sched_lag(e, 1, 0) == 0, "on-policy: batch %d", e);
    /* 2. fixed lag (1, 10): the first 11 batches from θ0, then lag exactly 10. */
    if (e <= 11) CHECK(rt_sched_version(e, 1, 10) == 0, "lag 10: batch %d", e);
    else CHECK(rt_sched_lag(e, 1, 10) == 10, "lag 10: batch %d has lag %lld", e, (long long)rt_sched_lag(e, 1, 10));
  }
  CHECK(rt_sched_version(21, 20, 0) == 20 && rt_sched_version(20, 20, 0) == 0, "periodic boundary");
  /* Every version is a past trainer step (available when the batch is generated). */
  for (int n = 1; n <= 7; n++)
    for (int k = 0; k <= 9; k++)
      for (int e = 1; e <= 60; e++) {
        int64_t v = rt_sched_version(e, n, k);
        CHECK(v >= 0 && v <= e - 1 && v % n == 0 && v >= rt_sched_version(e - 1 > 0 ? e - 1 : 1, n, k),
              "n %d k %d batch %d: version %lld", n, k, e, (long long)v);
      }
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: test_task WORKDIR\n");
    return 2;
  }
  check_arith();
  check_rewards();
  check_gsm8k(argv[1]);
  check_sched();
  if (failures) {
    fprintf(stderr, "%d failure(s)\n", failures);
    return 1;
  }
  printf("ok\n");
  return 0;
}
