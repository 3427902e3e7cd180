/* trn_sft.c — `rein sft`: the warm start, as an ordinary objective.  Next-token training of a
 * policy on the task's demonstrations: each demonstration becomes a one-sequence group of a rollout
 * (prompt <bos> prompt, response answer <eos>) and goes through `rein train`'s packer and train
 * step (trn_train_step) with the compiled objective the driver passes, lang/std/sft.rein
 * (loss = -mean[batch](logp): the mean of -log p over the answer and <eos> tokens of the batch).
 * AdamW with the same schedule options as `rein train`, greedy evaluation on the held-out split
 * every --eval-every steps, the records of `rein train`'s metrics.jsonl on stdout (trn_metrics.c:
 * a train record per step, an eval record per evaluation), and the final model written to --out as a model
 * directory (config.json + model.safetensors, and --model's tokenizer.json, tokenizer_config.json
 * and generation_config.json when it has them; each file atomically).  The shipped arithmetic checkpoint
 * is made by this command (README, "The shipped model").  Steps are a pure function of (options,
 * seed, thread count): reruns on one machine give the same bits.
 */
#include "trn_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The demonstrations of step T as a rollout: B one-sequence groups, prompt <bos> prompt, response
 * answer <eos>; the behaviour log-probs, rewards and flags are zero (an objective for `rein sft`
 * reads logp and entropy only). */
static int sft_rollout(const Task *task, const TrnOpts *o, int64_t t, int max_pos, TrnRollout *r, char *err,
                       size_t errlen) {
  int B = o->batch_prompts;
  memset(r, 0, sizeof *r);
  r->e = t, r->version = t - 1, r->nseq = B, r->group = 1;
  r->poff = rc_calloc((size_t)B + 1, sizeof(int));
  r->roff = rc_calloc((size_t)B + 1, sizeof(int));
  size_t pcap = 0, rcap = 0;
  for (int i = 0; i < B; i++) {
    TaskItem it = {0};
    int32_t *p = NULL, *a = NULL;
    int np = -1, na = -1;
    if (task->item(task, TASK_TRAIN, (uint64_t)(t - 1) * (uint64_t)B + (uint64_t)i, &it, err, errlen) == 0) {
      np = task->tk->prompt(task->tk, &it, &p, err, errlen);
      if (np >= 0) na = task->tk->encode(task->tk, it.answer, &a, err, errlen);
    }
    task_item_free(&it);
    if (np >= 0 && na >= 0 && np + na + 1 > max_pos) {
      snprintf(err, errlen, "demonstration of %d tokens exceeds the model's %d positions", np + na + 1, max_pos);
      np = -1;
    }
    if (np < 0 || na < 0) {
      free(p), free(a);
      trn_rollout_free(r);
      return -1;
    }
    if ((size_t)r->poff[i] + (size_t)np > pcap) pcap = 2 * (pcap + (size_t)np), r->prompt = rc_realloc(r->prompt, pcap * 4);
    if ((size_t)r->roff[i] + (size_t)na + 1 > rcap) rcap = 2 * (rcap + (size_t)na + 1), r->resp = rc_realloc(r->resp, rcap * 4);
    memcpy(r->prompt + r->poff[i], p, (size_t)np * sizeof(int32_t));
    memcpy(r->resp + r->roff[i], a, (size_t)na * sizeof(int32_t));
    r->resp[r->roff[i] + na] = task->tk->eos[0];
    r->poff[i + 1] = r->poff[i] + np;
    r->roff[i + 1] = r->roff[i] + na + 1;
    free(p), free(a);
  }
  int nt = r->roff[B];
  r->old_logp = rc_calloc((size_t)nt + 1, sizeof(float));
  r->reward = rc_calloc((size_t)B + 1, sizeof(float));
  r->acc = rc_calloc((size_t)B + 1, sizeof(float));
  r->trunc = rc_calloc((size_t)B + 1, 1);
  return 0;
}

/* The objective may read only what a demonstration has: logp and entropy (and the shape). */
static int sft_check_objective(const rein_objective *d, char *err, size_t errlen) {
  uint32_t ok = 1u << REIN_IN_LOGP | 1u << REIN_IN_ENTROPY | 1u << REIN_IN_POS | 1u << REIN_IN_LEN;
  for (int k = 0; k < REIN_NUM_INPUTS; k++)
    if ((d->inputs_used >> k & 1) && !(ok >> k & 1))
      return snprintf(err, errlen, "objective '%s' reads `%s`, which rein sft does not provide (demonstrations "
                                   "have logp and entropy only)", d->name, rein_input_name(k)), -1;
  if (d->nuinputs > 0)
    return snprintf(err, errlen, "objective '%s' declares input '%s', which rein sft does not provide", d->name,
                    d->uinputs[0].name), -1;
  return 0;
}

int trn_sft_run(const char *prog, rt_objective *obj, int argc, char **argv) {
  Trainer tr = {.lock_fd = -1};
  TrnOpts *o = &tr.o;
  char err[2048] = "";
  int status = trn_start(&tr, TRN_CMD_SFT, prog, obj, argc, argv);
  if (status >= 0) return status;
  tr.metrics = stdout;   /* the records of metrics.jsonl, one per line */
  tr.params = rc_calloc((size_t)tr.d->nparams + 1, sizeof(double));
  for (int i = 0; i < tr.d->nparams; i++) tr.params[i] = tr.d->params[i].value;
  int rc = sft_check_objective(tr.d, err, sizeof err);
  if (!rc && !(tr.task = trn_make_task(o, err, sizeof err))) rc = -1;
  if (!rc && o->model[0]) {
    if (!(tr.m = tfm_model_load(o->model, err, sizeof err))) rc = -1;
  } else if (!rc) {
    TfmConfig cfg;
    if (tfm_config_load(o->model_config, &cfg, err, sizeof err) || !(tr.m = tfm_model_new(&cfg, err, sizeof err)))
      rc = -1;
    else tfm_model_init(tr.m, o->init_seed);
  }
  if (!rc) rc = trn_check_vocab(&tr, err, sizeof err);
  if (!rc && !(tr.x = rt_exec_new(obj, RT_CPU, o->threads, err, sizeof err))) rc = -1;
  double *metrics = rc_calloc((size_t)tr.d->nmetrics + 1, sizeof(double));
  int prog_on = o->progress < 0 ? isatty(2) : o->progress;
  for (int64_t t = 0; !rc && t <= o->steps; t++) {
    if (t > 0) {
      TrnRollout r;
      TrnStepStats st = {0};
      st.metrics = metrics;
      if (sft_rollout(tr.task, o, t, tr.m->cfg.max_pos, &r, err, sizeof err)) {
        rc = -1;
        break;
      }
      tr.t = t - 1;
      rc = trn_train_step(&tr, &r, &st, err, sizeof err);
      tr.t = t;
      if (!rc) trn_metrics_train(&tr, &st, &r, 0, 0, 0);
      trn_rollout_free(&r);
      char line[64];
      snprintf(line, sizeof line, "loss %.4f", st.loss);
      trn_progress(prog_on, t, o->steps, rc_now() - tr.t0, 0, line);
    }
    if (!rc && ((o->eval_every > 0 && t % o->eval_every == 0) || t == o->steps)) {
      double acc, rew, len, t0 = rc_now();
      tr.t = t;
      TrnEvalExtras xs;
      if (trn_eval(tr.m, tr.task, o, t, NULL, &acc, &rew, &len, &xs, err, sizeof err)) rc = -1;
      else {
        if (prog_on) fputc('\n', stderr);
        trn_metrics_eval(&tr, acc, rew, len, &xs, rc_now() - t0);
      }
    }
  }
  if (prog_on) fputc('\n', stderr);
  if (!rc && (rc_mkdir_p(o->out, err, sizeof err) || tfm_model_save(tr.m, o->out, NULL, trn_save_dtype(o, tr.m), err, sizeof err))) rc = -1;
  if (!rc && o->model[0] && trn_copy_model_files(o->model, o->out, err, sizeof err)) rc = -1;   /* its tokenizer */
  if (rc) fprintf(stderr, "%s: error: %s\n", prog, err);
  free(metrics);
  free(tr.params);
  rt_exec_free(tr.x);
  tfm_model_free(tr.m);
  task_free(tr.task);
  return rc ? 1 : 0;
}
