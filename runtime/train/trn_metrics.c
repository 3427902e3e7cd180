/* trn_metrics.c — the metrics writer of both training commands: one JSON object per line, a
 * "train" record per step and an "eval" record per evaluation (docs/trainer.md, "What a run
 * writes").  `rein train` writes them to OUT/metrics.jsonl, `rein sft` to stdout, so `rein plot`
 * reads either.  Non-finite values are written as null (JSON has no NaN).
 */
#include "trn_internal.h"

#include <jansson.h>
#include <math.h>
#include <stdlib.h>

static json_t *num(double v) { return isfinite(v) ? json_real(v) : json_null(); }

static void emit(FILE *f, json_t *j) {
  char *s = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(10));
  fprintf(f, "%s\n", s);
  fflush(f);
  free(s);
  json_decref(j);
}

void trn_metrics_eval(const Trainer *tr, double acc, double reward, double len, const TrnEvalExtras *xs,
                      double eval_s) {
  json_t *j = json_object();
  json_object_set_new(j, "kind", json_string("eval"));
  json_object_set_new(j, "step", json_integer(tr->t));
  json_object_set_new(j, "time", json_real(trn_elapsed(tr)));
  json_object_set_new(j, "eval_accuracy", num(acc));
  json_object_set_new(j, "eval_reward", num(reward));
  /* the reward command's extra fields: the mean over the evaluated responses whose answer had it
   * (eval_reward_NAME, as eval_reward beside the train records' reward_mean: `rein plot` keeps
   * a train and an eval value of one name at one step as one point) */
  for (int k = 0; xs && k < xs->n; k++) {
    char key[64];
    snprintf(key, sizeof key, "eval_reward_%s", xs->name[k]);
    json_object_set_new(j, key, num(xs->mean[k]));
  }
  json_object_set_new(j, "eval_response_len", num(len));
  json_object_set_new(j, "eval_s", json_real(eval_s));
  emit(tr->metrics, j);
}

void trn_metrics_train(const Trainer *tr, const TrnStepStats *st, const TrnRollout *r, int rl, double rollout_tok_s,
                       double rollout_s) {
  json_t *j = json_object();
  json_object_set_new(j, "kind", json_string("train"));
  json_object_set_new(j, "step", json_integer(tr->t));
  json_object_set_new(j, "time", json_real(trn_elapsed(tr)));
  json_object_set_new(j, "loss", num(st->loss));
  for (int k = 0; k < tr->d->nmetrics; k++) json_object_set_new(j, tr->d->metrics[k], num(st->metrics[k]));
  if (rl) {
    json_object_set_new(j, "reward_mean", num(st->reward_mean));
    json_object_set_new(j, "reward_std", num(st->reward_std));
    json_object_set_new(j, "accuracy", num(st->acc));
    /* the reward command's extra fields: the mean over the sequences whose answer had it */
    for (int k = 0; k < r->nextra; k++) {
      double sum = 0;
      int cnt = 0;
      for (int s = 0; s < r->nseq; s++) {
        float v = r->extra[(size_t)s * (size_t)r->nextra + (size_t)k];
        if (!isnan(v)) sum += v, cnt++;
      }
      char key[64];
      snprintf(key, sizeof key, "reward_%s", tr->xname[k]);
      json_object_set_new(j, key, num(cnt ? sum / cnt : NAN));
    }
  }
  json_object_set_new(j, "entropy", num(st->entropy));
  if (rl) {
    json_object_set_new(j, "kl_behaviour", num(st->kl));
    json_object_set_new(j, "lag", json_integer((tr->t - 1) - r->version));
    json_object_set_new(j, "version", json_integer(r->version));
  }
  json_object_set_new(j, "response_len", num(st->len));
  if (rl) json_object_set_new(j, "truncated", num(st->trunc));
  json_object_set_new(j, "grad_norm", num(st->grad_norm));
  json_object_set_new(j, "lr", num(st->lr));
  /* rollout speed over the batches explored since the last step (0 when none were) */
  if (rl) json_object_set_new(j, "rollout_tok_s", num(rollout_tok_s));
  long ntrain = 0;
  for (int s = 0; s < r->nseq; s++) ntrain += (r->poff[s + 1] - r->poff[s]) + (r->roff[s + 1] - r->roff[s]) - 1;
  json_object_set_new(j, "train_tok_s", num((double)ntrain / st->train_s));
  /* where the step's time went, in seconds (timing: varies run to run) */
  if (rl) json_object_set_new(j, "t_rollout", num(rollout_s));
  json_object_set_new(j, "t_ref", num(st->ref_s));
  json_object_set_new(j, "t_forward", num(st->fwd_s));
  json_object_set_new(j, "t_objective", num(st->obj_s));
  json_object_set_new(j, "t_backward", num(st->bwd_s));
  json_object_set_new(j, "t_optimizer", num(st->opt_s));
  emit(tr->metrics, j);
}
