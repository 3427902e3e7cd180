/* trn_loop.c — the off-policy RL loop (`rein train`, standalone trainers).
 *
 * One process plays both explorer and trainer of docs/algorithms.md, the off-policy schedule, in an order that gives
 * exactly the weights the real asynchronous system would: batch e must come from θ_{v(e)} with
 * v(e) = rt_sched_version(e, n, k), which is never later than θ_{e-1}.  So whenever the trainer
 * reaches version s (at the start, s = 0, and after each step), the explorer generates every
 * batch e with v(e) == s and appends it to the FIFO buffer; train step t then consumes batch t.
 * With sync_offset k the buffer holds up to k + n batches generated ahead.  With --explorer-ranks
 * the explorer is a rank of its own (trn_explorer.c) sampling the same batches with the same
 * weights concurrently; this loop then receives them instead of exploring.
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
#include "trn_dist.h"

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

/* The extras of a batch's scored responses W (one per sequence) into R: each name gets the index
 * of its first appearance in the run (tr->xname); a sequence whose answer lacks a field has NaN. */
static int keep_extras(Trainer *tr, TrnRollout *r, const TaskReward *w, char *err, size_t errlen) {
  for (int q = 0; q < r->nseq; q++)
    for (int k = 0; k < w[q].nextra; k++) {
      int j = 0;
      while (j < tr->nxname && strcmp(tr->xname[j], w[q].extra_names[k])) j++;
      if (j == tr->nxname) {
        if (j == TRN_MAX_XNAMES)
          return snprintf(err, errlen, "reward command '%s': more than %d different extra fields in the run",
                          tr->o.reward_cmd, TRN_MAX_XNAMES), -1;
        snprintf(tr->xname[tr->nxname++], sizeof tr->xname[0], "%s", w[q].extra_names[k]);
      }
    }
  if (!tr->nxname) return 0;
  r->nextra = tr->nxname;
  r->extra = rc_malloc((size_t)r->nseq * (size_t)r->nextra * sizeof(float));
  for (size_t i = 0; i < (size_t)r->nseq * (size_t)r->nextra; i++) r->extra[i] = NAN;
  for (int q = 0; q < r->nseq; q++)
    for (int k = 0; k < w[q].nextra; k++)
      for (int j = 0; j < tr->nxname; j++)
        if (!strcmp(tr->xname[j], w[q].extra_names[k]))
          r->extra[(size_t)q * (size_t)r->nextra + (size_t)j] = (float)w[q].extra_vals[k];
  return 0;
}

/* Explores batch E with the current weights, B prompts of G responses each.  Every rank explores
 * the whole batch (one process, or a data-parallel run: the same bits everywhere), or with
 * --shard-explore 1, and on each of several explorer ranks (--explorer-ranks K > 1, where
 * trn_dist_size() is the explorer group's), its share, prompts [p0, p1) (trn_shard_range), drawn
 * as the whole batch would draw them; every rank's share is then gathered, so every rank buffers
 * the whole batch (the rollout's matrix products see fewer rows, which can change the last bit of
 * a behaviour logp).  The trainer ranks of --explorer-ranks never call this. */
static int explore(Trainer *tr, int64_t e, char *err, size_t errlen) {
  const TrnOpts *o = &tr->o;
  int p0 = 0, p1 = o->batch_prompts, nx0 = tr->nxname;
  int shard = (o->shard_explore || o->explorer_ranks) && trn_dist_size() > 1;
  if (shard) trn_shard_range(o->batch_prompts, trn_dist_rank(), trn_dist_size(), &p0, &p1);
  int B = p1 - p0, G = o->group, nseq = B * G;
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
    if (tr->task->item(tr->task, TASK_TRAIN, train_index(tr, e, p0 + i), &items[i], err, errlen) ||
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
    if (!rc && (int64_t)r.poff[i * G] + (int64_t)G * k + (int64_t)o->batch_prompts * G * o->max_new > TRN_MAX_TOKENS) {
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
                   rein_mix64(o->seed ^ 0x6578706cull) ^ rein_mix64((uint64_t)e), p0 * G};
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
    TaskReward *ws = rc_calloc((size_t)nseq, sizeof *ws);   /* each response's score, kept for its extras */
    for (int q = 0; q < nseq && !rc; q++) {
      const int32_t *ids = g.tokens + (size_t)q * (size_t)g.max_new;
      for (int j = 0; j < g.len[q]; j++) {
        r.resp[r.roff[q] + j] = ids[j];
        /* the behaviour log-prob (the rollout engine's report): the policy's at the sampling
         * temperature, over the whole vocabulary (top-k / top-p only choose what is drawn) */
        r.old_logp[r.roff[q] + j] = (float)g.temp_logp[(size_t)q * (size_t)g.max_new + (size_t)j];
      }
      char *text = tk->decode(tk, ids, g.len[q], 0, err, errlen);
      TaskReward w = {0};
      if (!text || task_score(tr->task, &items[q / G], text, &w, err, errlen)) {
        if (text) {
          size_t n = strlen(err);
          snprintf(err + n, errlen > n ? errlen - n : 0, "; while scoring response %d of explore step %lld", p0 * G + q,
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
                   "reward)", nm, tr->d->name, tr->task->name, (long long)e, p0 + q / G, q % G);
          rc = -1;
        } else if (!isfinite(v) || fabs(v) > 3.4e38) {
          snprintf(err, errlen, "input '%s': task '%s' gave %g for explore step %lld, prompt %d, response %d: not a "
                   "finite float32", nm, tr->task->name, v, (long long)e, p0 + q / G, q % G);
          rc = -1;
        } else {
          r.uin[(size_t)k * (size_t)nseq + (size_t)q] = (float)v;
        }
      }
      ws[q] = w;
    }
    if (!rc) rc = keep_extras(tr, &r, ws, err, errlen);
    for (int q = 0; q < nseq; q++) task_reward_free(&ws[q]);
    free(ws);
  }
  tfm_genout_free(&g);
  for (int i = 0; i < B; i++) task_item_free(&items[i]);
  free(items);
  if (!rc && shard) {
    TrnRollout w;
    rc = trn_shard_gather_rollout(tr, &r, nx0, &w, err, errlen);
    trn_rollout_free(&r);
    r = w;
  }
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

/* Evaluates the policy and logs it: rank 0's work (every rank holds the same weights). */
static int do_eval(Trainer *tr, double *acc_out, char *err, size_t errlen) {
  if (trn_dist_rank() > 0) return 0;
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

/* *FLAG on every rank replaced by rank 0's. */
static int rank0_flag(int *flag, char *err, size_t errlen) {
  unsigned char v = (unsigned char)*flag;
  void *all = NULL;
  size_t *counts = rc_malloc((size_t)trn_dist_size() * sizeof *counts);
  int rc = trn_dist_allgather(&v, 1, &all, counts, err, errlen);
  if (!rc) *flag = ((unsigned char *)all)[0];
  free(all), free(counts);
  return rc;
}

/* The loop from tr->t to o.steps; the trainer is set up (fresh or resumed). */
static int run_loop(Trainer *tr, char *err, size_t errlen) {
  const TrnOpts *o = &tr->o;
  int lead = trn_dist_rank() == 0;   /* rank 0 logs, evaluates and saves */
  int prog = lead && (o->progress < 0 ? isatty(2) : o->progress);
  double *metrics = rc_calloc((size_t)tr->d->nmetrics + 1, sizeof(double));
  double eval_acc = NAN, gen_s = 0;
  long gen_tok = 0;
  int64_t t_start = tr->t;
  int rc = 0;
  if (tr->t == 0) rc = do_eval(tr, &eval_acc, err, errlen);
  char line[256] = "";
  while (!rc && tr->t < o->steps) {
    /* a separate explorer's batch t+1 arrives (its rollout overlapped the previous steps) */
    if (o->explorer_ranks ? trn_explorer_receive(tr, tr->t + 1, -1, err, errlen)
                          : explore_ready(tr, &gen_s, &gen_tok, err, errlen)) {
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
    if (o->explorer_ranks) gen_s += r.gen_s, gen_tok += r.roff[r.nseq];
    TrnStepStats st = {0};
    st.metrics = metrics;
    rc = trn_train_step(tr, &r, &st, err, errlen);
    if (!rc) {
      tr->t++;
      if (lead) trn_metrics_train(tr, &st, &r, 1, gen_s > 0 ? (double)gen_tok / gen_s : 0, gen_s);
      gen_s = 0, gen_tok = 0;
      if (o->eval_every > 0 && tr->t % o->eval_every == 0 && tr->t < o->steps) rc = do_eval(tr, &eval_acc, err, errlen);
      if (!rc && tr->t == o->steps) rc = do_eval(tr, &eval_acc, err, errlen);
      int stop = tr->t < o->steps && ((o->stop_at > 0 && tr->t >= o->stop_at) ||
                                      (o->time_limit > 0 && trn_elapsed(tr) >= o->time_limit));
      /* the clocks of the ranks differ: rank 0's decides */
      if (!rc && o->time_limit > 0 && trn_dist_size() > 1) rc = rank0_flag(&stop, err, errlen);
      /* a run that stops early is evaluated where it stops */
      if (!rc && stop && !(o->eval_every > 0 && tr->t % o->eval_every == 0)) rc = do_eval(tr, &eval_acc, err, errlen);
      /* the explorer samples version t while the trainers go on */
      if (!rc && !stop && o->explorer_ranks) rc = trn_explorer_sync(tr, err, errlen);
      int save = (o->save_every > 0 && tr->t % o->save_every == 0) || tr->t == o->steps || stop;
      /* a checkpoint holds the batches one process would have explored by now: versions <= t-1 */
      if (!rc && save && o->explorer_ranks) rc = trn_explorer_receive(tr, 0, tr->t - 1, err, errlen);
      if (!rc && lead && save) rc = trn_ckpt_save(tr, err, errlen);
      if (!rc && stop) {
        if (prog) fputc('\n', stderr);
        if (lead) fprintf(stderr, "%s: stopped after step %lld of %d (%s); continue with --resume\n", tr->prog,
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
  tr->recompute = !strcmp(tr->o.old_logp, "recompute");
  if ((d->inputs_used & (1u << REIN_IN_ROLLOUT_LOGP)) && !tr->recompute) {
    snprintf(err, errlen, "objective '%s' reads rollout_logp (the rollout engine's log-probs beside a recomputed "
             "old_logp): train it with --old-logp recompute; under --old-logp %s, old_logp is the rollout engine's "
             "log-prob itself", d->name, tr->o.old_logp);
    return -1;
  }
  return 0;
}

/* The rollout temperature, once generation_config.json may have set it: the policy's log-probs
 * are those of logits / T, so greedy decoding (T = 0) has none to train on. */
static int check_temperature(const Trainer *tr, char *err, size_t errlen) {
  if (tr->o.temperature > 0) return 0;
  snprintf(err, errlen, "%s 0 (greedy): rein train samples rollouts from softmax(logits / T) and trains on those "
           "log-probs, so T must be above 0 (greedy decoding is for evaluation: --eval-temperature 0)",
           trn_opts_given(&tr->o, "temperature") ? "--temperature" : "the temperature of generation_config.json,");
  return -1;
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

/* The checks that make a data-parallel run one run: every rank has the same options, objective
 * and initial weights (a hash of each), and a prompt of each batch to explore. */
static int dist_check(const Trainer *tr, char *err, size_t errlen) {
  int R = trn_dist_size();
  if (R == 1) return 0;
  if (tr->o.batch_prompts < R - tr->o.explorer_ranks)
    return snprintf(err, errlen, "--batch-prompts %d is fewer than the %d %sranks: every rank %s at least one "
                    "prompt of each batch", tr->o.batch_prompts, R - tr->o.explorer_ranks,
                    tr->o.explorer_ranks ? "trainer " : "", tr->o.explorer_ranks ? "trains on" : "explores"), -1;
  char *cfg = trn_opts_json(&tr->o, TRN_CMD_TRAIN);
  const rein_objective *d = tr->d;
  uint64_t h[4] = {rc_hash_bytes(cfg, strlen(cfg)), rc_hash_bytes(d->name, strlen(d->name)),
                   (uint64_t)d->nparams << 32 | (uint64_t)d->nmetrics << 16 | (uint64_t)d->npasses,
                   rc_hash_bytes(tr->m->params, tr->m->nparams * sizeof(tfm_f))};
  free(cfg);
  return trn_dist_same("configuration (options)", h[0], err, errlen) ||
         trn_dist_same("objective", h[1] ^ rein_mix64(h[2]), err, errlen) ||
         trn_dist_same("policy (initial weights)", h[3], err, errlen) ? -1 : 0;
}

int trn_main(const char *prog, rt_objective *obj, int argc, char **argv) {
  Trainer tr = {.lock_fd = -1};
  char err[2048] = "";
  if (trn_dist_init(err, sizeof err)) {
    fprintf(stderr, "%s: error: %s\n", prog, err);
    return 1;
  }
  int lead = trn_dist_rank() == 0;
  int status = trn_start(&tr, TRN_CMD_TRAIN, prog, obj, argc, argv);
  if (status >= 0) {
    trn_dist_finalize();
    return status;
  }
  tr.next_e = 1;
  int rc = trn_explorer_check(&tr.o, err, sizeof err), explorer = trn_explorer_is(&tr.o);
  if (!rc) rc = set_params(&tr, err, sizeof err);
  if (!rc && !(tr.task = trn_make_task(&tr.o, err, sizeof err))) rc = -1;
  if (!rc && !(tr.m = load_policy(&tr.o, err, sizeof err))) rc = -1;
  if (!rc) rc = trn_check_vocab(&tr, err, sizeof err);
  if (!rc) rc = trn_apply_genconfig(&tr.o, tr.m, prog, err, sizeof err);
  if (!rc) rc = check_temperature(&tr, err, sizeof err);
  if (!rc && (tr.d->inputs_used & (1u << REIN_IN_REF_LOGP)) && !(tr.ref = load_policy(&tr.o, err, sizeof err)))
    rc = -1;
  if (!rc && !(tr.x = rt_exec_new(obj, RT_CPU, tr.o.threads, err, sizeof err))) rc = -1;
  if (!rc) rc = dist_check(&tr, err, sizeof err);
  /* rank 0 owns the run directory (lock, config.json, metrics.jsonl, checkpoints); the others
   * read its checkpoint once rank 0 has cleaned it, and learn from rank 0 whether to resume */
  if (!rc && lead) rc = open_run_dir(&tr, err, sizeof err);
  if (!rc && trn_dist_size() > 1) rc = rank0_flag(&tr.o.resume, err, sizeof err);
  if (!rc && tr.o.resume) rc = trn_ckpt_load(&tr, err, sizeof err);
  if (!rc && lead) rc = open_metrics(&tr, err, sizeof err);
  if (!rc && lead && tr.o.resume && tr.t >= tr.o.steps)
    fprintf(stderr, "%s: the run in %s is complete (%lld steps)\n", prog, tr.o.out, (long long)tr.t);
  /* with --explorer-ranks the world splits in trainers and explorers (trn_explorer.c) */
  if (!rc && tr.o.explorer_ranks) rc = trn_dist_split(tr.o.explorer_ranks, err, sizeof err);
  if (!rc && explorer) rc = trn_explorer_run(&tr, explore, err, sizeof err);
  if (!rc && !explorer) rc = run_loop(&tr, err, sizeof err);
  if (!rc && !explorer && tr.o.explorer_ranks) rc = trn_explorer_end(&tr, err, sizeof err);
  if (rc && trn_dist_world_size() > 1) {
    /* one rank's failure ends the job; the last checkpoint (written atomically) stays intact */
    fprintf(stderr, "%s: error (rank %d of %d): %s\n", prog, trn_dist_world_rank(), trn_dist_world_size(), err);
    trn_dist_abort(1);
  }
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
  trn_dist_finalize();
  return rc ? 1 : 0;
}
