/* trn_explorer.c — rollout on ranks of its own (`--explorer-ranks K`, docs/distributed.md): the
 * off-policy schedule of docs/trainer.md with real concurrency.
 *
 * Under `mpirun -np N`, ranks [0, N-K) train (data-parallel among themselves, trn_step.c; rank 0
 * writes the run directory) and the last K explore.  Every explorer keeps its own copy of the
 * weights.  Batch e must be sampled from θ_{v(e)}, v(e) = rt_sched_version(e, n, k): trainer rank
 * 0 sends the weights after train step s to every explorer (one message each) whenever a batch
 * needs version s (s > 0; version 0 is the initial policy every rank loaded), and the explorers
 * sample every batch whose version they hold; the first explorer sends each finished batch to
 * every trainer rank at once without waiting for it to be received — so the explorers run ahead
 * of the trainers exactly as far as the schedule allows, while they train.  With K > 1 the
 * explorers split each batch's prompts among themselves as --shard-explore splits them among
 * ranks (the explore function, trn_loop.c: the same seed per sequence) and gather the shares
 * within their group in rank order; the explorers after the first drop the gathered batch.  Every
 * explorer receives the same messages from rank 0, so all of them take part in the same gathers.
 * Sampling is keyed by (seed, e) and the weights of version v are the same bits as the single
 * process's, so every batch is the single process's (with K > 1, up to the last bit of a
 * behaviour logp, as with --shard-explore).
 *
 * The trainers take batch t+1 before step t+1 (the explorer's batches arrive in order).  A
 * checkpoint after step t holds, as in one process, the batches explored with versions <= t-1 and
 * not yet trained on: the trainers receive those before rank 0 saves.  After the last step, or
 * when the run stops early (--stop-at, --time-limit), rank 0 sends every explorer an empty
 * message instead of weights and the explorers end; every batch sampled by then has been
 * received.  On --resume each explorer loads the checkpoint's weights (version t) and continues
 * from its next batch; the trainers hold the checkpoint's buffer.  Messages: trn_dist_send /
 * trn_dist_recv (trn_dist.h).
 */
#include "trn_internal.h"

#include <stdlib.h>
#include <string.h>

#include "rein/sched.h"
#include "trn_dist.h"

enum { EXP_TAG_BATCH = 71, EXP_TAG_WEIGHTS = 72 };

int trn_explorer_check(const TrnOpts *o, char *err, size_t errlen) {
  int k = o->explorer_ranks, n = trn_dist_world_size();
  if (!k) return 0;
  if (n <= k)
    return snprintf(err, errlen, "--explorer-ranks %d needs more ranks than explorers: start the trainer with "
                    "mpirun -np N, N > %d (the first N-%d ranks train)", k, k, k), -1;
  if (o->batch_prompts < k)
    return snprintf(err, errlen, "--batch-prompts %d is fewer than the %d explorer ranks: every explorer samples "
                    "at least one prompt of each batch", o->batch_prompts, k), -1;
  if (o->shard_explore)
    return snprintf(err, errlen, "--shard-explore 1 with --explorer-ranks %d: the explorer ranks do all the "
                    "rollout, the trainer ranks none", k), -1;
  return 0;
}

int trn_explorer_is(const TrnOpts *o) {
  return o->explorer_ranks > 0 && trn_dist_world_rank() >= trn_dist_world_size() - o->explorer_ranks;
}

/* The next message of trainer rank 0: the weights of a version (into tr->m, *HAVE that version),
 * or the end of the run (*DONE). */
static int recv_weights(Trainer *tr, int64_t *have, int *done, char *err, size_t errlen) {
  void *p = NULL;
  size_t n = 0, want = sizeof(int64_t) + tr->m->nparams * sizeof(tfm_f);
  if (trn_dist_recv(0, EXP_TAG_WEIGHTS, &p, &n, err, errlen)) return -1;
  if (n == 0) {
    *done = 1;
  } else if (n != want) {
    free(p);
    return snprintf(err, errlen, "internal error: the explorer received %zu bytes of weights, expected %zu", n,
                    want), -1;
  } else {
    memcpy(have, p, sizeof *have);
    memcpy(tr->m->params, (char *)p + sizeof *have, n - sizeof *have);
  }
  free(p);
  return 0;
}

int trn_explorer_run(Trainer *tr, TrnExploreFn explore, char *err, size_t errlen) {
  const TrnOpts *o = &tr->o;
  int ntrain = trn_dist_world_size() - o->explorer_ranks, done = 0, rc = 0;
  int64_t have = tr->t;   /* the version of the weights held: 0, or the checkpoint's step */
  for (int i = 0; i < tr->nbuf; i++) trn_rollout_free(&tr->buf[i]);   /* the trainers hold those */
  tr->nbuf = 0;
  while (!rc && tr->next_e <= o->steps) {
    int64_t v = rt_sched_version(tr->next_e, o->sync_interval, o->sync_offset);
    while (!rc && !done && have < v) rc = recv_weights(tr, &have, &done, err, errlen);
    if (rc || done) break;
    if (have != v) {
      rc = -1;
      snprintf(err, errlen, "internal error: explore step %lld needs version %lld, the explorer holds %lld",
               (long long)tr->next_e, (long long)v, (long long)have);
      break;
    }
    if (explore(tr, tr->next_e, err, errlen)) {
      rc = -1;
      break;
    }
    TrnRollout *r = &tr->buf[--tr->nbuf];
    void *p = NULL;
    size_t n = 0;
    if (trn_dist_rank() > 0) {   /* the first explorer sends the gathered batch */
      trn_rollout_free(r);
      tr->next_e++;
      continue;
    }
    trn_rollout_to_bytes(tr, r, &p, &n);
    trn_rollout_free(r);
    for (int d = 0; d < ntrain && !rc; d++) {
      void *q = p;
      if (d + 1 < ntrain) q = memcpy(rc_malloc(n + 1), p, n);
      rc = trn_dist_send(d, EXP_TAG_BATCH, q, n, err, errlen);
    }
    tr->next_e++;
  }
  /* the trainers end the run with an empty message */
  while (!rc && !done) rc = recv_weights(tr, &have, &done, err, errlen);
  if (!rc) rc = trn_dist_flush(err, errlen);
  return rc;
}

int trn_explorer_receive(Trainer *tr, int64_t upto_e, int64_t version, char *err, size_t errlen) {
  const TrnOpts *o = &tr->o;
  int from = trn_dist_world_size() - o->explorer_ranks;
  while (tr->next_e <= o->steps &&
         (tr->next_e <= upto_e || rt_sched_version(tr->next_e, o->sync_interval, o->sync_offset) <= version)) {
    void *p = NULL;
    size_t n = 0;
    TrnRollout r;
    if (trn_dist_recv(from, EXP_TAG_BATCH, &p, &n, err, errlen)) return -1;
    int rc = trn_rollout_from_bytes(tr, p, n, &r, err, errlen);
    free(p);
    if (rc) return -1;
    if (r.e != tr->next_e) {
      snprintf(err, errlen, "internal error: the explorer sent batch %lld, expected %lld", (long long)r.e,
               (long long)tr->next_e);
      trn_rollout_free(&r);
      return -1;
    }
    if (tr->nbuf == tr->capbuf) {
      tr->capbuf = tr->capbuf ? 2 * tr->capbuf : 8;
      tr->buf = rc_realloc(tr->buf, (size_t)tr->capbuf * sizeof *tr->buf);
    }
    tr->buf[tr->nbuf++] = r;
    tr->next_e++;
  }
  return 0;
}

int trn_explorer_sync(Trainer *tr, char *err, size_t errlen) {
  const TrnOpts *o = &tr->o;
  int64_t e = tr->t + 1 + o->sync_offset;   /* the first batch that can need version t */
  if (trn_dist_rank() != 0 || tr->t == 0 || e > o->steps ||
      rt_sched_version(e, o->sync_interval, o->sync_offset) != tr->t)
    return 0;
  size_t n = tr->m->nparams * sizeof(tfm_f);
  for (int x = trn_dist_world_size() - o->explorer_ranks; x < trn_dist_world_size(); x++) {
    char *p = rc_malloc(sizeof tr->t + n);   /* one buffer per message: the layer frees each */
    memcpy(p, &tr->t, sizeof tr->t);
    memcpy(p + sizeof tr->t, tr->m->params, n);
    if (trn_dist_send(x, EXP_TAG_WEIGHTS, p, sizeof tr->t + n, err, errlen)) return -1;
  }
  return 0;
}

int trn_explorer_end(Trainer *tr, char *err, size_t errlen) {
  int w = trn_dist_world_size();
  for (int x = w - tr->o.explorer_ranks; x < w && trn_dist_rank() == 0; x++)
    if (trn_dist_send(x, EXP_TAG_WEIGHTS, rc_malloc(1), 0, err, errlen)) return -1;
  return trn_dist_flush(err, errlen);
}
