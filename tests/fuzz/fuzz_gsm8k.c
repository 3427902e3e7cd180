/* fuzz_gsm8k.c — libFuzzer harness over the GSM8K JSONL reader (task_gsm8k_new,
 * runtime/train/task_gsm8k.c): `--task gsm8k --train-data FILE.jsonl`.
 *
 * Each input is the training file.  The reader must load it or fail with "PATH:LINE: field 'X':
 * ...", never crash or leak.  On a loaded task the first items are made, their prompts encoded
 * with the task's tokenizer (what the trainer does), and the reward is checked on a response in
 * the R1 format whose answer is the item's reference: the canonical number must match itself
 * (accuracy 1, format +0.1).
 */
#include "fuzz_util.h"

#include "rein/task.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *path = fz_input_path(data, size);
  char err[1024];
  Task *t = task_gsm8k_new(path, NULL, 1, err, sizeof err);
  if (!t) {
    if (strncmp(err, path, strlen(path))) abort();
    return 0;
  }
  uint64_t n = t->count(t, TASK_TRAIN);
  if (n == 0 || t->count(t, TASK_EVAL) != 0) abort();
  for (uint64_t i = 0; i < n && i < 4; i++) {
    TaskItem it;
    if (t->item(t, TASK_TRAIN, i, &it, err, sizeof err)) abort();
    size_t cap = strlen(it.prompt) + 2;
    int32_t *ids = malloc(cap * sizeof *ids);
    if (!ids || task_tok_encode(&t->tok, it.prompt, 1, ids, (int)cap, err, sizeof err) < 1) abort();
    free(ids);
    size_t rl = strlen(it.answer) + 64;
    char *resp = malloc(rl);
    if (!resp) abort();
    snprintf(resp, rl, "<think>so</think> <answer>%s</answer>", it.answer);
    TaskReward r = t->reward(t, &it, resp);
    if (r.accuracy != 1 || r.format != 0.1) abort();
    free(resp);
    task_item_free(&it);
  }
  if (t->item(t, TASK_EVAL, 0, &(TaskItem){0}, err, sizeof err) == 0) abort();
  task_free(t);
  return 0;
}
