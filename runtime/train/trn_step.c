/* trn_step.c — the train step (trn_internal.h), for `rein train` and `rein sft`, in one process or
 * as one rank of a data-parallel run (docs/distributed.md).
 *
 * Every forward is at the rollout temperature (logits / --temperature; sft: 1), the policy's and
 * the reference's alike.  With --old-logp recompute a forward-only pass of the current weights
 * gives old_logp before the prologue, and the rollout's recorded log-probs are rollout_logp
 * (docs/trainer.md, "Sampling temperature and old log-probs").
 *
 * One process: pack the batch's sequences (prompt + response, causal within each, no padding),
 * run the compiled objective's prologue on the whole batch (rt_begin), then for each micro-batch
 * of whole groups: one forward to per-token logp and entropy of its response tokens (keeping its
 * activations), the objective's micro-batch passes (rt_micro, whose global normalizers come from
 * the prologue), the backward from its dlogp / dentropy — so one forward per micro-batch, and
 * only one micro-batch's activations live at a time — then the objective's final stage (rt_end:
 * loss and metrics), clip and AdamW.
 *
 * R ranks: each rank runs the transformer on its own share of the groups (trn_shard_groups: whole
 * micro-batches of the single process's split, in rank order) and the objective on the whole
 * batch, so every value the objective computes is the single process's, bit for bit:
 *   - the prologue (rt_begin) reads no logp: every rank has the whole batch (explored shares are
 *     gathered, trn_shard.c) and runs it; ref_logp is computed per share and all-gathered first;
 *   - a statistics stage (rt_stat) reads logp/entropy of every token: each rank runs its
 *     forward-only passes, the per-token values are all-gathered (8 bytes a token), then rt_stat;
 *   - the gradients of a group's tokens depend only on those and the group's own values: each
 *     rank skips the other ranks' groups (rt_skip) and runs rt_micro and the backward on its own;
 *   - the loss and metrics: once each rank's logp/entropy are all-gathered, every rank runs the
 *     objective a second time on the whole batch with the single process's micro-batches
 *     (rt_begin .. rt_end; objective arithmetic only, no transformer), merging every batch-level
 *     reduction's per-group states in group order exactly as one process does;
 *   - the weight gradients are summed across ranks in rank order (trn_dist_sum), the same bits
 *     on every rank, so the clip and AdamW steps leave the same weights everywhere.
 */
#include "trn_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "rein/common.h"
#include "trn_dist.h"

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

/* The sub-batch of sequences [s0, s1) of P (offsets rebased into OFF) at temperature T. */
static TfmBatch sub_batch(const Packed *p, int s0, int s1, int *off, double T) {
  for (int s = s0; s <= s1; s++) off[s - s0] = p->off[s] - p->off[s0];
  return (TfmBatch){s1 - s0, off, p->tok + p->off[s0], p->tgt + p->off[s0], T};
}

/* A forward-only pass of model M (no activations kept) over this rank's groups [GA, GB) of P in
 * micro-batches of MG groups of G sequences: the logp, and with EN the entropy, of every response
 * token into LP / EN (ntoks floats each), all-gathered so every rank has the whole batch's (BOUND:
 * every rank's first token).  Adds its seconds to *SECS.  -1 with ERR. */
static int forward_tokens(const Trainer *tr, TfmModel *M, const Packed *p, int G, int ga, int gb, int mg,
                          const int *bound, float *lp, float *en, double *secs, char *err, size_t errlen) {
  tfm_f *pl = rc_calloc((size_t)p->N + 1, sizeof(tfm_f)), *pe = rc_calloc((size_t)p->N + 1, sizeof(tfm_f));
  int *off = rc_malloc(((size_t)mg * (size_t)G + 1) * sizeof(int)), me = trn_dist_rank(), rc = 0;
  double t0 = rc_now();
  for (int g0 = ga; g0 < gb && !rc; g0 += mg) {
    int g1 = g0 + mg < gb ? g0 + mg : gb;
    TfmBatch b = sub_batch(p, g0 * G, g1 * G, off, tr->o.temperature);
    rc = tfm_forward(M, &b, pl + p->off[g0 * G], pe + p->off[g0 * G], NULL, err, errlen);
  }
  *secs += rc_now() - t0;
  for (int i = bound[me]; i < bound[me + 1] && !rc; i++) {
    lp[i] = (float)pl[p->pos[i]];
    if (en) en[i] = (float)pe[p->pos[i]];
  }
  if (!rc) rc = trn_shard_gather_floats(lp, bound, err, errlen);
  if (!rc && en) rc = trn_shard_gather_floats(en, bound, err, errlen);
  free(pl), free(pe), free(off);
  return rc;
}

/* The objective on the whole batch B with every token's logp/entropy known, on the single
 * process's micro-batches of MG groups: its loss and metrics (a rank of a data-parallel run). */
static int whole_objective(Trainer *tr, const rt_batch *b, int mg, rt_result *res, char *err, size_t errlen) {
  if (!rt_begin(tr->x, b, tr->params, err, errlen) || !rt_stat(tr->x, err, errlen)) return -1;
  for (int64_t g0 = 0; g0 < b->ngroups; g0 += mg)
    if (!rt_micro(tr->x, g0, g0 + mg < b->ngroups ? g0 + mg : b->ngroups, NULL, err, errlen)) return -1;
  return rt_end(tr->x, res, err, errlen) ? 0 : -1;
}

/* The train step (trn_internal.h): the objective's stages around one forward and one backward
 * per micro-batch of this rank's groups. */
int trn_train_step(Trainer *tr, const TrnRollout *r, TrnStepStats *st, char *err, size_t errlen) {
  const TrnOpts *o = &tr->o;
  const rein_objective *d = tr->d;
  double t0 = rc_now();
  Packed p;
  pack(r, &p);
  int nseq = r->nseq, G = r->group, ngroups = nseq / G, ntoks = r->roff[nseq];
  int mg = o->micro_groups > 0 && o->micro_groups < ngroups ? o->micro_groups : ngroups;
  int R = trn_dist_size(), me = trn_dist_rank(), ga = 0, gb = 0;
  /* this rank's groups [ga, gb), and every rank's first token (bound[R] = ntoks) */
  int *bound = rc_malloc(((size_t)R + 1) * sizeof(int));
  for (int q = 0; q < R; q++) {
    int a, e;
    trn_shard_groups(ngroups, mg, q, R, &a, &e);
    bound[q] = r->roff[a * G];
    if (q == me) ga = a, gb = e;
  }
  bound[R] = ntoks;
  tfm_f *lp = rc_calloc((size_t)p.N + 1, sizeof(tfm_f)), *en = rc_calloc((size_t)p.N + 1, sizeof(tfm_f));
  tfm_f *dlp = rc_calloc((size_t)p.N + 1, sizeof(tfm_f)), *den = rc_calloc((size_t)p.N + 1, sizeof(tfm_f));
  float *in_lp = rc_malloc((size_t)ntoks * sizeof(float) + 1), *in_en = rc_malloc((size_t)ntoks * sizeof(float) + 1);
  float *in_ref = NULL, *in_lag = rc_malloc((size_t)nseq * sizeof(float)), *in_tr = rc_malloc((size_t)nseq * sizeof(float));
  int32_t *gs = rc_malloc(((size_t)ngroups + 1) * sizeof(int32_t)), *sq = rc_malloc(((size_t)nseq + 1) * sizeof(int32_t));
  int *off = rc_malloc(((size_t)nseq + 1) * sizeof(int));
  int rc = 0;
  /* the reference policy's logp (at the rollout temperature, as verl's), micro-batch by
   * micro-batch without activations: the prologue may read it, so it is complete before rt_begin */
  double tp;
  if (tr->ref) {
    in_ref = rc_malloc((size_t)ntoks * sizeof(float) + 1);
    rc = forward_tokens(tr, tr->ref, &p, G, ga, gb, mg, bound, in_ref, NULL, &st->ref_s, err, errlen);
  }
  /* --old-logp recompute: old_logp is the policy's before the step, the same forward-only pass
   * (which is also the statistics stage's logp/entropy: the weights have not moved), and the
   * rollout engine's log-probs are rollout_logp */
  const float *in_old = r->old_logp, *in_roll = NULL;
  float *in_rec = NULL;
  int have_lp = 0;
  if (!rc && tr->recompute) {
    rc = forward_tokens(tr, tr->m, &p, G, ga, gb, mg, bound, in_lp, in_en, &st->fwd_s, err, errlen);
    in_rec = rc_malloc((size_t)ntoks * sizeof(float) + 1);
    memcpy(in_rec, in_lp, (size_t)ntoks * sizeof(float));
    in_old = in_rec, in_roll = r->old_logp, have_lp = 1;
  }
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
  b.in[REIN_IN_OLD_LOGP] = in_old;
  b.in[REIN_IN_REF_LOGP] = in_ref;
  b.in[REIN_IN_ROLLOUT_LOGP] = in_roll;
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
    if (!have_lp) rc = forward_tokens(tr, tr->m, &p, G, ga, gb, mg, bound, in_lp, in_en, &st->fwd_s, err, errlen);
    tp = rc_now();
    if (!rc && !rt_stat(tr->x, err, errlen)) rc = -1;
    st->obj_s += rc_now() - tp;
  }
  if (!rc) tfm_zero_grad(tr->m);
  /* the other ranks' groups before this rank's: their gradients are theirs */
  if (!rc && ga > 0 && !rt_skip(tr->x, ga, err, errlen)) rc = -1;
  /* one forward per micro-batch: its logp/entropy feed the objective, whose gradients of the
   * micro-batch's tokens are complete after rt_micro (runtime.h), then the backward */
  for (int g0 = ga; g0 < gb && !rc; g0 += mg) {
    int g1 = g0 + mg < gb ? g0 + mg : gb;
    TfmBatch tb = sub_batch(&p, g0 * G, g1 * G, off, o->temperature);
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
  if (R == 1) {
    if (!rc && !rt_end(tr->x, &res, err, errlen)) rc = -1;
  } else {
    /* the weight gradients summed in rank order; every token's logp/entropy on every rank; the
     * loss and metrics of the whole batch */
    _Static_assert(sizeof(tfm_f) == sizeof(float), "the trainer's model is float32");
    if (!rc) rc = trn_dist_sum(tr->m->grads, tr->m->nparams, err, errlen);
    if (!rc) rc = trn_shard_gather_floats(in_lp, bound, err, errlen);
    if (!rc) rc = trn_shard_gather_floats(in_en, bound, err, errlen);
    if (!rc) rc = whole_objective(tr, &b, mg, &res, err, errlen);
  }
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
  free(lp), free(en), free(dlp), free(den), free(in_lp), free(in_en), free(in_ref), free(in_rec), free(in_lag),
      free(in_tr);
  free(gs), free(sq), free(off), free(uin), free(bound);
  packed_free(&p);
  return rc;
}

