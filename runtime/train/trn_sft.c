/* trn_sft.c — `rein sft`: the warm start.  Next-token training of a policy on the task's
 * demonstrations (<bos> prompt answer <eos>, loss on the answer and <eos> only: the mean of
 * -log p over those tokens of the batch), AdamW with the same schedule options as `rein train`,
 * greedy evaluation on the held-out split every --eval-every steps (JSON lines on stdout), and
 * the final model written to --out as a model directory (config.json + model.safetensors, each
 * atomically).  The shipped arithmetic checkpoint is made by this command (README, "The shipped
 * model").  Steps are a pure function of (options, seed, thread count): reruns give the same bits.
 */
#include "trn_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The demonstration batch of step T: B items of the training split. */
static int sft_batch(const Task *task, const TrnOpts *o, int64_t t, TfmBatch *b, int **offp, int32_t **tokp,
                     int32_t **tgtp, int *ntgt, int max_pos, char *err, size_t errlen) {
  int B = o->batch_prompts;
  int *off = calloc((size_t)B + 1, sizeof(int));
  int32_t *tok = NULL, *tgt = NULL;
  size_t cap = 0;
  *ntgt = 0;
  for (int i = 0; i < B; i++) {
    TaskItem it = {0};
    int32_t *p = NULL, *a = NULL;
    int np = -1, na = -1;
    char *ans = NULL;
    if (task->item(task, TASK_TRAIN, (uint64_t)(t - 1) * (uint64_t)B + (uint64_t)i, &it, err, errlen) == 0) {
      np = trn_encode(task, it.prompt, 1, &p, err, errlen);
      ans = it.answer;
      if (np >= 0) na = trn_encode(task, ans, 0, &a, err, errlen);
    }
    if (np < 0 || na < 0) {
      free(p), free(a), task_item_free(&it), free(off), free(tok), free(tgt);
      return -1;
    }
    int L = np + na + 1;   /* <bos> prompt answer <eos>; inputs are all but the last */
    if (L > max_pos) {
      snprintf(err, errlen, "demonstration of %d tokens exceeds the model's %d positions", L, max_pos);
      free(p), free(a), task_item_free(&it), free(off), free(tok), free(tgt);
      return -1;
    }
    if ((size_t)off[i] + (size_t)L > cap) {
      cap = 2 * (cap + (size_t)L);
      tok = realloc(tok, cap * sizeof *tok);
      tgt = realloc(tgt, cap * sizeof *tgt);
    }
    int32_t *x = tok + off[i], *y = tgt + off[i];
    for (int j = 0; j < np; j++) x[j] = p[j];
    for (int j = 0; j < na; j++) x[np + j] = a[j];
    for (int j = 0; j < L - 1; j++) {
      int32_t next = j + 1 < np + na ? x[j + 1] : TASK_EOS;
      y[j] = j >= np - 1 ? next : -1;
      *ntgt += y[j] >= 0;
    }
    off[i + 1] = off[i] + L - 1;
    free(p), free(a);
    task_item_free(&it);
  }
  *b = (TfmBatch){B, off, tok, tgt};
  *offp = off, *tokp = tok, *tgtp = tgt;
  return 0;
}

int trn_sft_main(int argc, char **argv) {
  TrnOpts o;
  char err[2048] = "";
  trn_opts_defaults(&o, TRN_CMD_SFT);
  int pr = trn_opts_parse(&o, TRN_CMD_SFT, argc, argv, err, sizeof err);
  if (pr == 1) {
    trn_opts_usage(stdout, TRN_CMD_SFT, "rein sft");
    return 0;
  }
  if (pr < 0) {
    fprintf(stderr, "rein sft: error: %s\n", err);
    return 2;
  }
  Task *task = trn_make_task(&o, err, sizeof err);
  TfmModel *m = NULL;
  int rc = task ? 0 : -1;
  if (!rc && o.model[0]) {
    if (!(m = tfm_model_load(o.model, err, sizeof err))) rc = -1;
  } else if (!rc) {
    TfmConfig cfg;
    if (tfm_config_load(o.model_config, &cfg, err, sizeof err) || !(m = tfm_model_new(&cfg, err, sizeof err))) rc = -1;
    else tfm_model_init(m, o.init_seed);
  }
  if (!rc && m->cfg.vocab < task_tok_vocab(&task->tok)) {
    snprintf(err, sizeof err, "the model's vocabulary (%d) is smaller than the task tokenizer's (%d)", m->cfg.vocab,
             task_tok_vocab(&task->tok));
    rc = -1;
  }
  int prog = o.progress < 0 ? isatty(2) : o.progress;
  double t0 = rc_now();
  for (int64_t t = 0; !rc && t <= o.steps; t++) {
    if (t > 0) {
      TfmBatch b;
      int *off;
      int32_t *tok, *tgt;
      int ntgt;
      if (sft_batch(task, &o, t, &b, &off, &tok, &tgt, &ntgt, m->cfg.max_pos, err, sizeof err)) {
        rc = -1;
        break;
      }
      int N = off[b.nseq];
      tfm_f *lp = calloc((size_t)N, sizeof(tfm_f)), *en = calloc((size_t)N, sizeof(tfm_f));
      tfm_f *dl = calloc((size_t)N, sizeof(tfm_f)), *de = calloc((size_t)N, sizeof(tfm_f));
      TfmActs *acts = NULL;
      double loss = 0;
      if (tfm_forward(m, &b, lp, en, &acts, err, sizeof err)) rc = -1;
      else {
        for (int i = 0; i < N; i++)
          if (tgt[i] >= 0) loss -= lp[i], dl[i] = (tfm_f)(-1.0 / ntgt);
        loss /= ntgt;
        tfm_zero_grad(m);
        tfm_backward(m, acts, dl, de);
        TfmAdamW opt = {trn_lr_at(&o, t), o.beta1, o.beta2, o.adam_eps, o.weight_decay, o.max_grad_norm};
        tfm_adamw_step(m, &opt);
        if (!isfinite(loss)) {
          snprintf(err, sizeof err, "step %lld: the loss is not finite", (long long)t);
          rc = -1;
        }
      }
      free(lp), free(en), free(dl), free(de), free(off), free(tok), free(tgt);
      char line[64];
      snprintf(line, sizeof line, "loss %.4f", loss);
      trn_progress(prog, t, o.steps, rc_now() - t0, 0, line);
    }
    if (!rc && ((o.eval_every > 0 && t % o.eval_every == 0) || t == o.steps)) {
      double acc, rew, len;
      if (trn_eval(m, task, &o, t, &acc, &rew, &len, err, sizeof err)) rc = -1;
      else {
        if (prog) fputc('\n', stderr);
        printf("{\"kind\":\"eval\",\"step\":%lld,\"time\":%.3f,\"eval_accuracy\":%.6g,\"eval_reward\":%.6g}\n",
               (long long)t, rc_now() - t0, acc, rew);
        fflush(stdout);
      }
    }
  }
  if (prog) fputc('\n', stderr);
  if (!rc && (rc_mkdir_p(o.out, err, sizeof err) || tfm_model_save(m, o.out, NULL, err, sizeof err))) rc = -1;
  if (rc) fprintf(stderr, "rein sft: error: %s\n", err);
  tfm_model_free(m);
  task_free(task);
  return rc ? 1 : 0;
}
