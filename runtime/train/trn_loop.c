/* trn_loop.c — the off-policy RL loop (`rein train`, standalone trainers).
 *
 * One process plays both explorer and trainer of algorithms.md §7.1, in an order that gives
 * exactly the weights the real asynchronous system would: batch e must come from θ_{v(e)} with
 * v(e) = rt_sched_version(e, n, k), which is never later than θ_{e-1}.  So whenever the trainer
 * reaches version s (at the start, s = 0, and after each step), the explorer generates every
 * batch e with v(e) == s and appends it to the FIFO buffer; train step t then consumes batch t.
 * With sync_offset k the buffer holds up to k + n batches generated ahead.
 *
 * A train step: pack the batch's sequences (prompt + response, causal within each, no padding),
 * run the compiled objective's prologue on the whole batch (rt_begin), then for each micro-batch
 * of whole groups: one forward to per-token logp and entropy of its response tokens (keeping its
 * activations), the objective's micro-batch passes (rt_micro, whose global normalizers come from
 * the prologue), the backward from its dlogp / dentropy — so one forward per micro-batch, and
 * only one micro-batch's activations live at a time — then the objective's final stage (rt_end:
 * loss and metrics), clip and AdamW.  Metrics go to OUT/metrics.jsonl, one JSON line per step
 * and per evaluation.
 */
#define _GNU_SOURCE
#include "trn_internal.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "rein/sched.h"
#include "rein/common.h"

/* Item index of prompt i of explore step e in the training split: consecutive for a generator;
 * for a dataset of N items, epoch by epoch, each epoch a seeded permutation. */
static uint64_t train_index(const Trainer *tr, int64_t e, int i) {
  uint64_t j = (uint64_t)(e - 1) * (uint64_t)tr->o.batch_prompts + (uint64_t)i;
  uint64_t n = tr->task->count(tr->task, TASK_TRAIN);
  if (!n) return j;
  /* a permutation of [0, n) by cycle-walking a keyed bijection of the next power of two */
  uint64_t epoch = j / n, x = j % n, mask = 1;
  while (mask < n) mask <<= 1;
  mask -= 1;
  uint64_t key = rein_mix64(tr->o.seed ^ rein_mix64(epoch + 0x5eed));
  do {
    for (int r = 0; r < 4; r++) {
      x = (x * 0x9e3779b97f4a7c15ull + (key >> (8 * r))) & mask;   /* odd multiplier: bijective mod 2^k */
      x ^= (x >> 3) & mask;
    }
  } while (x >= n);
  return x;
}

/* The extra fields of a batch's answers EX (one per sequence) into R: each name gets the index of
 * its first appearance in the run (tr->xname); a sequence whose answer lacks a field has NaN. */
static int keep_extras(Trainer *tr, TrnRollout *r, const TaskExtra *ex, char *err, size_t errlen) {
  for (int q = 0; q < r->nseq; q++)
    for (int k = 0; k < ex[q].n; k++) {
      int j = 0;
      while (j < tr->nxname && strcmp(tr->xname[j], ex[q].name[k])) j++;
      if (j == tr->nxname) {
        if (j == TRN_MAX_XNAMES)
          return snprintf(err, errlen, "reward command '%s': more than %d different extra fields in the run",
                          tr->o.reward_cmd, TRN_MAX_XNAMES), -1;
        snprintf(tr->xname[tr->nxname++], sizeof tr->xname[0], "%s", ex[q].name[k]);
      }
    }
  if (!tr->nxname) return 0;
  r->nextra = tr->nxname;
  r->extra = rc_malloc((size_t)r->nseq * (size_t)r->nextra * sizeof(float));
  for (size_t i = 0; i < (size_t)r->nseq * (size_t)r->nextra; i++) r->extra[i] = NAN;
  for (int q = 0; q < r->nseq; q++)
    for (int k = 0; k < ex[q].n; k++)
      for (int j = 0; j < tr->nxname; j++)
        if (!strcmp(tr->xname[j], ex[q].name[k])) r->extra[(size_t)q * (size_t)r->nextra + (size_t)j] = (float)ex[q].value[k];
  return 0;
}

/* Explores batch E with the current weights: B prompts, G responses each. */
static int explore(Trainer *tr, int64_t e, char *err, size_t errlen) {
  const TrnOpts *o = &tr->o;
  int B = o->batch_prompts, G = o->group, nseq = B * G;
  TrnRollout r = {0};
  r.e = e;
  r.version = rt_sched_version(e, o->sync_interval, o->sync_offset);
  r.nseq = nseq, r.group = G;
  r.poff = rc_calloc((size_t)nseq + 1, sizeof(int));
  TaskTok *tk = tr->task->tk;
  TaskItem *items = rc_calloc((size_t)B, sizeof *items);
  size_t cap = 0;
  int rc = 0;
  for (int i = 0; i < B && !rc; i++) {
    int32_t *ids = NULL;
    int k = -1;
    if (tr->task->item(tr->task, TASK_TRAIN, train_index(tr, e, i), &items[i], err, errlen) ||
        (k = tk->prompt(tk, &items[i], &ids, err, errlen)) < 0) {
      rc = -1;
      break;
    }
    if (k + o->max_new > tr->m->cfg.max_pos) {
      snprintf(err, errlen, "prompt of %d tokens + max-new %d exceeds the model's %d positions", k, o->max_new,
               tr->m->cfg.max_pos);
      rc = -1;
    }
    /* the packed batch holds every prompt and every response: checked before the offsets grow */
    if (!rc && (int64_t)r.poff[i * G] + (int64_t)G * k + (int64_t)nseq * o->max_new > TRN_MAX_TOKENS) {
      snprintf(err, errlen, "explore step %lld: the batch's prompts and responses exceed %d tokens (--batch-prompts "
               "x --group x (prompt + --max-new)): lower one of them", (long long)e, TRN_MAX_TOKENS);
      rc = -1;
    }
    for (int g = 0; g < G && !rc; g++) {
      int s = i * G + g;
      if ((size_t)r.poff[s] + (size_t)k > cap) {
        cap = 2 * (cap + (size_t)k);
        r.prompt = rc_realloc(r.prompt, cap * sizeof(int32_t));
      }
      memcpy(r.prompt + r.poff[s], ids, (size_t)k * sizeof(int32_t));
      r.poff[s + 1] = r.poff[s] + k;
    }
    free(ids);
  }
  TfmGenOut g = {0};
  TfmSampling s = {o->temperature, o->top_p, o->top_k, o->max_new, tk->neos, tk->eos,
                   rein_mix64(o->seed ^ 0x6578706cull) ^ rein_mix64((uint64_t)e)};
  double t0 = rc_now();
  if (!rc && tfm_generate(tr->m, nseq, r.poff, r.prompt, &s, &g, err, errlen)) rc = -1;
  r.gen_s = rc_now() - t0;
  if (!rc) {
    r.roff = rc_calloc((size_t)nseq + 1, sizeof(int));
    for (int q = 0; q < nseq; q++) r.roff[q + 1] = r.roff[q] + g.len[q];
    int nt = r.roff[nseq];
    r.resp = rc_malloc((size_t)nt * sizeof(int32_t) + 1);
    r.old_logp = rc_malloc((size_t)nt * sizeof(float) + 1);
    r.reward = rc_malloc((size_t)nseq * sizeof(float));
    r.acc = rc_malloc((size_t)nseq * sizeof(float));
    r.trunc = rc_malloc((size_t)nseq);
    r.nuin = tr->d->nuinputs;
    r.uin = rc_malloc((size_t)r.nuin * (size_t)nseq * sizeof(float) + 1);
    TaskExtra *ex = rc_malloc((size_t)nseq * sizeof *ex);
    for (int q = 0; q < nseq && !rc; q++) {
      const int32_t *ids = g.tokens + (size_t)q * (size_t)g.max_new;
      for (int j = 0; j < g.len[q]; j++) {
        r.resp[r.roff[q] + j] = ids[j];
        /* the behaviour log-prob: the policy's at temperature 1 (the rollout engine's report) */
        r.old_logp[r.roff[q] + j] = (float)g.logp[(size_t)q * (size_t)g.max_new + (size_t)j];
      }
      char *text = tk->decode(tk, ids, g.len[q], 0, err, errlen);
      TaskReward w;
      if (!text || task_score(tr->task, &items[q / G], text, &w, &ex[q], err, errlen)) {
        if (text) {
          size_t n = strlen(err);
          snprintf(err + n, errlen > n ? errlen - n : 0, "; while scoring response %d of explore step %lld", q,
                   (long long)e);
        }
        free(text);
        rc = -1;
        break;
      }
      free(text);
      r.reward[q] = (float)w.reward;
      r.acc[q] = (float)w.accuracy;
      r.trunc[q] = !g.stopped[q];
      /* the objective's user inputs: the response's reward extra, else its item's */
      for (int k = 0; k < r.nuin && !rc; k++) {
        const char *nm = tr->d->uinputs[k].name;
        const TaskItem *it = &items[q / G];
        double v;
        if (task_extra_get(w.nextra, w.extra_names, w.extra_vals, nm, &v) &&
            task_extra_get(it->nextra, it->extra_names, it->extra_vals, nm, &v)) {
          snprintf(err, errlen, "input '%s' of objective '%s': task '%s' supplied no value of that name for explore "
                   "step %lld, prompt %d, response %d (expected a field of the item or an extra output of its "
                   "reward)", nm, tr->d->name, tr->task->name, (long long)e, q / G, q % G);
          rc = -1;
        } else if (!isfinite(v) || fabs(v) > 3.4e38) {
          snprintf(err, errlen, "input '%s': task '%s' gave %g for explore step %lld, prompt %d, response %d: not a "
                   "finite float32", nm, tr->task->name, v, (long long)e, q / G, q % G);
          rc = -1;
        } else {
          r.uin[(size_t)k * (size_t)nseq + (size_t)q] = (float)v;
        }
      }
      task_reward_free(&w);
    }
    if (!rc) rc = keep_extras(tr, &r, ex, err, errlen);
    free(ex);
  }
  tfm_genout_free(&g);
  for (int i = 0; i < B; i++) task_item_free(&items[i]);
  free(items);
  if (rc) {
    trn_rollout_free(&r);
    return -1;
  }
  if (tr->nbuf == tr->capbuf) {
    tr->capbuf = tr->capbuf ? 2 * tr->capbuf : 8;
    tr->buf = rc_realloc(tr->buf, (size_t)tr->capbuf * sizeof *tr->buf);
  }
  tr->buf[tr->nbuf++] = r;
  return 0;
}

/* A packed training batch of rollout R: inputs prompt ++ response[:-1], targets the next token on
 * response positions, -1 elsewhere; pos[i] the packed position of response token i. */
typedef struct {
  int *off;               /* (nseq+1) */
  int32_t *tok, *tgt;     /* (N) */
  int *pos;               /* (ntoks) */
  int N;
} Packed;

static void pack(const TrnRollout *r, Packed *p) {
  int nseq = r->nseq;
  p->off = rc_calloc((size_t)nseq + 1, sizeof(int));
  for (int s = 0; s < nseq; s++)
    p->off[s + 1] = p->off[s] + (r->poff[s + 1] - r->poff[s]) + (r->roff[s + 1] - r->roff[s]) - 1;
  p->N = p->off[nseq];
  p->tok = rc_malloc((size_t)p->N * sizeof(int32_t));
  p->tgt = rc_malloc((size_t)p->N * sizeof(int32_t));
  p->pos = rc_malloc((size_t)r->roff[nseq] * sizeof(int) + 1);
  for (int s = 0; s < nseq; s++) {
    int P = r->poff[s + 1] - r->poff[s], L = r->roff[s + 1] - r->roff[s], o = p->off[s];
    for (int i = 0; i < P + L - 1; i++) {
      p->tok[o + i] = i < P ? r->prompt[r->poff[s] + i] : r->resp[r->roff[s] + i - P];
      p->tgt[o + i] = i >= P - 1 ? r->resp[r->roff[s] + i - P + 1] : -1;
    }
    for (int j = 0; j < L; j++) p->pos[r->roff[s] + j] = o + P - 1 + j;
  }
}

static void packed_free(Packed *p) {
  free(p->off);
  free(p->tok);
  free(p->tgt);
  free(p->pos);
}

/* The sub-batch of sequences [s0, s1) of P (offsets rebased into OFF). */
static TfmBatch sub_batch(const Packed *p, int s0, int s1, int *off) {
  for (int s = s0; s <= s1; s++) off[s - s0] = p->off[s] - p->off[s0];
  return (TfmBatch){s1 - s0, off, p->tok + p->off[s0], p->tgt + p->off[s0]};
}

/* The train step (trn_internal.h): the objective's stages around one forward and one backward
 * per micro-batch. */
int trn_train_step(Trainer *tr, const TrnRollout *r, TrnStepStats *st, char *err, size_t errlen) {
  const TrnOpts *o = &tr->o;
  const rein_objective *d = tr->d;
  double t0 = rc_now();
  Packed p;
  pack(r, &p);
  int nseq = r->nseq, G = r->group, ngroups = nseq / G, ntoks = r->roff[nseq];
  int mg = o->micro_groups > 0 && o->micro_groups < ngroups ? o->micro_groups : ngroups;
  tfm_f *lp = rc_calloc((size_t)p.N + 1, sizeof(tfm_f)), *en = rc_calloc((size_t)p.N + 1, sizeof(tfm_f));
  tfm_f *dlp = rc_calloc((size_t)p.N + 1, sizeof(tfm_f)), *den = rc_calloc((size_t)p.N + 1, sizeof(tfm_f));
  float *in_lp = rc_malloc((size_t)ntoks * sizeof(float) + 1), *in_en = rc_malloc((size_t)ntoks * sizeof(float) + 1);
  float *in_ref = NULL, *in_lag = rc_malloc((size_t)nseq * sizeof(float)), *in_tr = rc_malloc((size_t)nseq * sizeof(float));
  int32_t *gs = rc_malloc(((size_t)ngroups + 1) * sizeof(int32_t)), *sq = rc_malloc(((size_t)nseq + 1) * sizeof(int32_t));
  int *off = rc_malloc(((size_t)nseq + 1) * sizeof(int));
  int rc = 0;
  /* the reference policy's logp, micro-batch by micro-batch without activations: the prologue
   * may read it, so it is complete before rt_begin */
  double tp = rc_now();
  if (tr->ref) {
    tfm_f *rl = rc_calloc((size_t)p.N + 1, sizeof(tfm_f)), *re = rc_calloc((size_t)p.N + 1, sizeof(tfm_f));
    in_ref = rc_malloc((size_t)ntoks * sizeof(float) + 1);
    for (int g0 = 0; g0 < ngroups && !rc; g0 += mg) {
      int g1 = g0 + mg < ngroups ? g0 + mg : ngroups;
      TfmBatch b = sub_batch(&p, g0 * G, g1 * G, off);
      rc = tfm_forward(tr->ref, &b, rl + p.off[g0 * G], re + p.off[g0 * G], NULL, err, errlen);
    }
    for (int i = 0; i < ntoks; i++) in_ref[i] = (float)rl[p.pos[i]];
    free(rl);
    free(re);
  }
  if (tr->ref) st->ref_s = rc_now() - tp;
  float lag = (float)((tr->t + 1 - 1) - r->version);
  for (int s = 0; s < nseq; s++) in_lag[s] = lag, in_tr[s] = r->trunc[s];
  for (int g = 0; g <= ngroups; g++) gs[g] = g * G;
  for (int s = 0; s <= nseq; s++) sq[s] = r->roff[s];
  const float **uin = rc_calloc((size_t)d->nuinputs + 1, sizeof *uin);
  for (int k = 0; k < d->nuinputs; k++) uin[k] = r->uin + (size_t)k * (size_t)nseq;
  rt_batch b = {.ngroups = ngroups, .nseqs = nseq, .ntoks = ntoks, .grp_seq = gs, .seq_tok = sq,
                .seed = o->seed, .step = (uint64_t)(tr->t + 1), .uin = uin};
  /* the trainer constants of this step */
  for (int k = 0; k < d->nparams; k++) {
    if (d->params[k].kind != REIN_PARAM_TRAINER) continue;
    const char *nm = d->params[k].name;
    tr->params[k] = !strcmp(nm, rein_trainer_const_name(REIN_TC_MAX_NEW))      ? o->max_new
                    : !strcmp(nm, rein_trainer_const_name(REIN_TC_GROUP_SIZE)) ? G
                                                                                : (double)(tr->t + 1);
  }
  b.in[REIN_IN_LOGP] = in_lp;
  b.in[REIN_IN_ENTROPY] = in_en;
  b.in[REIN_IN_OLD_LOGP] = r->old_logp;
  b.in[REIN_IN_REF_LOGP] = in_ref;
  b.in[REIN_IN_REWARD] = r->reward;
  b.in[REIN_IN_TRUNCATED] = in_tr;
  b.in[REIN_IN_LAG] = in_lag;
  tp = rc_now();
  if (!rc && !rt_begin(tr->x, &b, tr->params, err, errlen)) rc = -1;
  st->obj_s += rc_now() - tp;
  /* the statistics stage (plan: batch statistics of values the loss sees through sg only) needs
   * logp/entropy of the whole batch first: a forward-only pass over every micro-batch, keeping
   * two floats a token; the forward+backward below computes the same values again */
  if (!rc && (d->flags & REIN_STATS)) {
    for (int g0 = 0; g0 < ngroups && !rc; g0 += mg) {
      int g1 = g0 + mg < ngroups ? g0 + mg : ngroups;
      TfmBatch tb = sub_batch(&p, g0 * G, g1 * G, off);
      tp = rc_now();
      rc = tfm_forward(tr->m, &tb, lp + p.off[g0 * G], en + p.off[g0 * G], NULL, err, errlen);
      st->fwd_s += rc_now() - tp;
    }
    for (int i = 0; i < ntoks && !rc; i++) in_lp[i] = (float)lp[p.pos[i]], in_en[i] = (float)en[p.pos[i]];
    tp = rc_now();
    if (!rc && !rt_stat(tr->x, err, errlen)) rc = -1;
    st->obj_s += rc_now() - tp;
  }
  if (!rc) tfm_zero_grad(tr->m);
  /* one forward per micro-batch: its logp/entropy feed the objective, whose gradients of the
   * micro-batch's tokens are complete after rt_micro (runtime.h), then the backward */
  for (int g0 = 0; g0 < ngroups && !rc; g0 += mg) {
    int g1 = g0 + mg < ngroups ? g0 + mg : ngroups;
    TfmBatch tb = sub_batch(&p, g0 * G, g1 * G, off);
    TfmActs *a = NULL;
    const float *grad[2];
    tp = rc_now();
    rc = tfm_forward(tr->m, &tb, lp + p.off[g0 * G], en + p.off[g0 * G], &a, err, errlen);
    st->fwd_s += rc_now() - tp;
    if (rc) break;
    for (int i = sq[g0 * G]; i < sq[g1 * G]; i++) in_lp[i] = (float)lp[p.pos[i]], in_en[i] = (float)en[p.pos[i]];
    tp = rc_now();
    int ok = rt_micro(tr->x, g0, g1, grad, err, errlen);
    st->obj_s += rc_now() - tp;
    if (!ok) {
      tfm_acts_free(a);
      rc = -1;
      break;
    }
    for (int i = sq[g0 * G]; i < sq[g1 * G]; i++) dlp[p.pos[i]] = grad[0][i], den[p.pos[i]] = grad[1][i];
    tp = rc_now();
    tfm_backward(tr->m, a, dlp + p.off[g0 * G], den + p.off[g0 * G]);
    st->bwd_s += rc_now() - tp;
  }
  rt_result res = {0};
  tp = rc_now();
  if (!rc && !rt_end(tr->x, &res, err, errlen)) rc = -1;
  st->obj_s += rc_now() - tp;
  if (!rc && !isfinite(res.loss)) {
    snprintf(err, errlen, "step %lld: the loss is not finite (%g)", (long long)tr->t + 1, res.loss);
    rc = -1;
  }
  if (!rc) {
    st->loss = res.loss;
    for (int k = 0; k < d->nmetrics; k++) st->metrics[k] = res.metrics[k];
    /* states: the record of this step shows the value the step used (under the state's name,
     * the name of its update output); the next step reads the update */
    for (int k = 0; k < d->nparams; k++) {
      if (d->params[k].kind != REIN_PARAM_STATE) continue;
      double next = res.metrics[d->params[k].update];
      st->metrics[d->params[k].update] = tr->params[k];
      if (!isfinite(next)) {
        snprintf(err, errlen, "step %lld: the update of state '%s' is not finite (%g)", (long long)tr->t + 1,
                 d->params[k].name, next);
        rc = -1;
      }
      tr->params[k] = next;
    }
    TfmAdamW opt = {trn_lr_at(o, tr->t + 1), o->beta1, o->beta2, o->adam_eps, o->weight_decay, o->max_grad_norm};
    st->lr = opt.lr;
    tp = rc_now();
    st->grad_norm = tfm_adamw_step(tr->m, &opt);
    st->opt_s = rc_now() - tp;
    if (!isfinite(st->grad_norm)) {
      snprintf(err, errlen, "step %lld: the gradient is not finite", (long long)tr->t + 1);
      rc = -1;
    }
    /* token means: entropy, and KL(behaviour || policy) by the k3 estimator */
    double se = 0, sk = 0;
    for (int i = 0; i < ntoks; i++) {
      double lr_ = (double)in_lp[i] - (double)r->old_logp[i];
      se += in_en[i];
      sk += exp(lr_) - lr_ - 1;
    }
    st->entropy = se / ntoks, st->kl = sk / ntoks;
    double sr = 0, sr2 = 0, sa = 0, stc = 0;
    for (int s = 0; s < nseq; s++) sr += r->reward[s], sa += r->acc[s], stc += r->trunc[s];
    for (int s = 0; s < nseq; s++) sr2 += (r->reward[s] - sr / nseq) * (r->reward[s] - sr / nseq);
    st->reward_mean = sr / nseq, st->reward_std = sqrt(sr2 / nseq), st->acc = sa / nseq;
    st->len = (double)ntoks / nseq;
    st->trunc = stc / nseq;
  }
  st->train_s = rc_now() - t0;
  free(lp), free(en), free(dlp), free(den), free(in_lp), free(in_en), free(in_ref), free(in_lag), free(in_tr);
  free(gs), free(sq), free(off), free(uin);
  packed_free(&p);
  return rc;
}

static int do_eval(Trainer *tr, double *acc_out, char *err, size_t errlen) {
  double acc, rew, len, t0 = rc_now();
  char samples[TRN_PATH + 64] = "";
  if (tr->o.log_samples > 0) {
    snprintf(samples, sizeof samples, "%s/samples", tr->o.out);
    if (rc_mkdir_p(samples, err, errlen)) return -1;
    snprintf(samples, sizeof samples, "%s/samples/eval-%06lld.jsonl", tr->o.out, (long long)tr->t);
  }
  TrnEvalExtras xs;
  if (trn_eval(tr->m, tr->task, &tr->o, tr->t, samples[0] ? samples : NULL, &acc, &rew, &len, &xs, err, errlen))
    return -1;
  trn_metrics_eval(tr, acc, rew, len, &xs, rc_now() - t0);
  *acc_out = acc;
  /* without a terminal (a log file) the progress bar is replaced by one line per evaluation */
  if (tr->o.progress < 0 && !isatty(2))
    fprintf(stderr, "%s: step %lld/%d: held-out accuracy %.3f, reward %.3f (%.0f s)\n", tr->prog, (long long)tr->t,
            tr->o.steps, acc, rew, trn_elapsed(tr));
  return 0;
}

/* Explores every batch whose policy version is the trainer's current one. */
static int explore_ready(Trainer *tr, double *gen_s, long *gen_tok, char *err, size_t errlen) {
  while (tr->next_e <= tr->o.steps && rt_sched_version(tr->next_e, tr->o.sync_interval, tr->o.sync_offset) <= tr->t) {
    if (explore(tr, tr->next_e, err, errlen)) return -1;
    *gen_s += tr->buf[tr->nbuf - 1].gen_s;
    *gen_tok += tr->buf[tr->nbuf - 1].roff[tr->buf[tr->nbuf - 1].nseq];
    tr->next_e++;
  }
  return 0;
}

/* The loop from tr->t to o.steps; the trainer is set up (fresh or resumed). */
static int run_loop(Trainer *tr, char *err, size_t errlen) {
  const TrnOpts *o = &tr->o;
  int prog = o->progress < 0 ? isatty(2) : o->progress;
  double *metrics = rc_calloc((size_t)tr->d->nmetrics + 1, sizeof(double));
  double eval_acc = NAN, gen_s = 0;
  long gen_tok = 0;
  int64_t t_start = tr->t;
  int rc = 0;
  if (tr->t == 0) rc = do_eval(tr, &eval_acc, err, errlen);
  char line[256] = "";
  while (!rc && tr->t < o->steps) {
    if (explore_ready(tr, &gen_s, &gen_tok, err, errlen)) {
      rc = -1;
      break;
    }
    if (tr->nbuf == 0 || tr->buf[0].e != tr->t + 1) {
      snprintf(err, errlen, "internal error: batch %lld is not in the buffer", (long long)tr->t + 1);
      rc = -1;
      break;
    }
    TrnRollout r = tr->buf[0];
    memmove(tr->buf, tr->buf + 1, (size_t)(tr->nbuf - 1) * sizeof *tr->buf);
    tr->nbuf--;
    TrnStepStats st = {0};
    st.metrics = metrics;
    rc = trn_train_step(tr, &r, &st, err, errlen);
    if (!rc) {
      tr->t++;
      trn_metrics_train(tr, &st, &r, 1, gen_s > 0 ? (double)gen_tok / gen_s : 0, gen_s);
      gen_s = 0, gen_tok = 0;
      if (o->eval_every > 0 && tr->t % o->eval_every == 0 && tr->t < o->steps) rc = do_eval(tr, &eval_acc, err, errlen);
      if (!rc && tr->t == o->steps) rc = do_eval(tr, &eval_acc, err, errlen);
      int stop = tr->t < o->steps && ((o->stop_at > 0 && tr->t >= o->stop_at) ||
                                      (o->time_limit > 0 && trn_elapsed(tr) >= o->time_limit));
      /* a run that stops early is evaluated where it stops */
      if (!rc && stop && !(o->eval_every > 0 && tr->t % o->eval_every == 0)) rc = do_eval(tr, &eval_acc, err, errlen);
      if (!rc && ((o->save_every > 0 && tr->t % o->save_every == 0) || tr->t == o->steps || stop))
        rc = trn_ckpt_save(tr, err, errlen);
      if (!rc && stop) {
        if (prog) fputc('\n', stderr);
        fprintf(stderr, "%s: stopped after step %lld of %d (%s); continue with --resume\n", tr->prog,
                (long long)tr->t, o->steps, o->stop_at > 0 && tr->t >= o->stop_at ? "--stop-at" : "--time-limit");
        trn_rollout_free(&r);
        break;
      }
      snprintf(line, sizeof line, "reward %.3f acc %.3f eval %.3f", st.reward_mean, st.acc, eval_acc);
      trn_progress(prog, tr->t, o->steps, trn_elapsed(tr), (double)t_start, line);
    }
    trn_rollout_free(&r);
  }
  if (prog) fputc('\n', stderr);
  free(metrics);
  return rc;
}

/* Objective params: descriptor defaults, then --set (each name must be a param). */
static int set_params(Trainer *tr, char *err, size_t errlen) {
  const rein_objective *d = tr->d;
  tr->params = rc_calloc((size_t)d->nparams + 1, sizeof(double));
  for (int i = 0; i < d->nparams; i++) tr->params[i] = d->params[i].value;
  for (int k = 0; k < tr->o.nset; k++) {
    int found = 0;
    for (int i = 0; i < d->nparams; i++)
      if (!strcmp(d->params[i].name, tr->o.set_name[k])) {
        if (d->params[i].kind == REIN_PARAM_TRAINER) {
          snprintf(err, errlen, "--set %s: '%s' is a trainer constant: the trainer supplies it (max_new from "
                   "--max-new, group_size from --group, step from the step count)", tr->o.set_name[k],
                   tr->o.set_name[k]);
          return -1;
        }
        tr->params[i] = tr->o.set_value[k], found = 1;
      }
    if (!found) {
      int n = snprintf(err, errlen, "--set %s%s%s%s: objective '%s' has no param '%s' (params:", tr->o.set_name[k],
                       tr->o.set_from[0] ? " (or " : "", tr->o.set_from, tr->o.set_from[0] ? ": field 'set')" : "",
                       d->name, tr->o.set_name[k]);
      for (int i = 0; i < d->nparams && n > 0 && (size_t)n < errlen; i++)
        n += snprintf(err + n, errlen - (size_t)n, " %s", d->params[i].name);
      if (n > 0 && (size_t)n < errlen) snprintf(err + n, errlen - (size_t)n, "%s)", d->nparams ? "" : " none");
      return -1;
    }
  }
  for (int k = 0; k < d->nuinputs; k++)
    if (d->uinputs[k].level != REIN_SEQ) {
      snprintf(err, errlen, "objective '%s' declares 'input token %s': the trainer supplies seq inputs only (one "
                            "number per response, from the task's item fields or reward outputs)", d->name,
               d->uinputs[k].name);
      return -1;
    }
  return 0;
}

static TfmModel *load_policy(const TrnOpts *o, char *err, size_t errlen) {
  return o->model[0] ? tfm_model_load(o->model, err, errlen) : trn_default_model(err, errlen);
}

/* The run directory: a fresh run refuses a directory that already holds one. */
/* Opens OUT for the run: creates it (fresh run) or checks it is there (--resume), takes its lock
 * for the life of the run, removes what interrupted saves left, and writes config.json for a fresh
 * run.  A --resume of a run killed before its first checkpoint starts it again from step 0. */
static int open_run_dir(Trainer *tr, char *err, size_t errlen) {
  TrnOpts *o = &tr->o;
  char path[TRN_PATH + 64], latest[TRN_PATH + 64];
  struct stat st;
  if (o->resume) {   /* nothing to create: the run must be there */
    if (stat(o->out, &st) || !S_ISDIR(st.st_mode))
      return snprintf(err, errlen, "%s: no such run directory (nothing to resume)", o->out), -1;
  } else if (rc_mkdir_p(o->out, err, errlen)) {
    return -1;
  }
  if ((tr->lock_fd = rc_lock_dir(o->out, err, errlen)) < 0) return -1;
  int stale = trn_ckpt_clean(o->out, err, errlen);
  if (stale < 0) return -1;
  if (stale)
    fprintf(stderr, "%s: removed %d temporaries of an interrupted save from %s\n", tr->prog, stale, o->out);
  snprintf(path, sizeof path, "%s/metrics.jsonl", o->out);
  snprintf(latest, sizeof latest, "%s/latest", o->out);
  int has_metrics = access(path, F_OK) == 0, has_latest = access(latest, F_OK) == 0;
  if (o->resume && !has_latest && has_metrics && !trn_ckpt_any(o->out)) {
    /* killed before its first checkpoint: there is no state to continue, so start again */
    fprintf(stderr, "%s: %s has no checkpoint yet (the run stopped before its first save): starting it again "
                    "from step 0\n", tr->prog, o->out);
    if (unlink(path)) return snprintf(err, errlen, "%s: cannot remove: %s", path, strerror(errno)), -1;
    o->resume = 0;
    has_metrics = 0;
  } else if (o->resume) {
    return 0;
  }
  if (has_metrics || has_latest) {
    snprintf(err, errlen, "%s already holds a run (metrics.jsonl or latest): pass --resume to continue it, or "
                          "choose another --out", o->out);
    return -1;
  }
  char *cfg = trn_opts_json(o, TRN_CMD_TRAIN), cpath[TRN_PATH + 64];
  snprintf(cpath, sizeof cpath, "%s/config.json", o->out);
  int rc = rc_write_text(cpath, cfg, err, errlen);
  free(cfg);
  return rc;
}

static int open_metrics(Trainer *tr, char *err, size_t errlen) {
  char path[TRN_PATH + 64];
  snprintf(path, sizeof path, "%s/metrics.jsonl", tr->o.out);
  tr->metrics = fopen(path, "a");
  if (!tr->metrics) return snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno)), -1;
  return 0;
}

int trn_main(const char *prog, rt_objective *obj, int argc, char **argv) {
  Trainer tr = {.lock_fd = -1};
  char err[2048] = "";
  int status = trn_start(&tr, TRN_CMD_TRAIN, prog, obj, argc, argv);
  if (status >= 0) return status;
  tr.next_e = 1;
  int rc = set_params(&tr, err, sizeof err);
  if (!rc && !(tr.task = trn_make_task(&tr.o, err, sizeof err))) rc = -1;
  if (!rc && !(tr.m = load_policy(&tr.o, err, sizeof err))) rc = -1;
  if (!rc) rc = trn_check_vocab(&tr, err, sizeof err);
  if (!rc) rc = trn_apply_genconfig(&tr.o, tr.m, prog, err, sizeof err);
  if (!rc && (tr.d->inputs_used & (1u << REIN_IN_REF_LOGP)) && !(tr.ref = load_policy(&tr.o, err, sizeof err)))
    rc = -1;
  if (!rc && !(tr.x = rt_exec_new(obj, RT_CPU, tr.o.threads, err, sizeof err))) rc = -1;
  if (!rc) rc = open_run_dir(&tr, err, sizeof err);
  if (!rc && tr.o.resume) rc = trn_ckpt_load(&tr, err, sizeof err);
  if (!rc) rc = open_metrics(&tr, err, sizeof err);
  if (!rc && tr.o.resume && tr.t >= tr.o.steps)
    fprintf(stderr, "%s: the run in %s is complete (%lld steps)\n", prog, tr.o.out, (long long)tr.t);
  if (!rc) rc = run_loop(&tr, err, sizeof err);
  if (rc) fprintf(stderr, "%s: error: %s\n", prog, err);
  if (tr.metrics) fclose(tr.metrics);
  if (tr.lock_fd >= 0) close(tr.lock_fd);
  for (int i = 0; i < tr.nbuf; i++) trn_rollout_free(&tr.buf[i]);
  free(tr.buf);
  free(tr.params);
  if (tr.x) rt_exec_free(tr.x);
  tfm_model_free(tr.m);
  tfm_model_free(tr.ref);
  task_free(tr.task);
  return rc ? 1 : 0;
}
