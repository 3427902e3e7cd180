/* fuzz_trainer.h — the minimal Trainer the checkpoint harnesses (fuzz_buffer.c, fuzz_ckpt.c)
 * need: default `rein train` options with 2 prompts x 2 responses per step, the tiny model of
 * fuzz_model.h with AdamW state, an objective descriptor that only names the objective (the
 * checkpoint code reads d->name and nothing else), and a buffer of explored rollouts.
 */
#ifndef REIN_FUZZ_TRAINER_H
#define REIN_FUZZ_TRAINER_H

#include "fuzz_model.h"
#include "trn_internal.h"

static const rein_objective fz_objective = {.magic = REIN_MAGIC, .abi_version = REIN_ABI_VERSION, .name = "fz"};

/* Frees every buffered rollout (the buffer array stays). */
static inline void fz_clear_buffer(Trainer *tr) {
  for (int i = 0; i < tr->nbuf; i++) trn_rollout_free(&tr->buf[i]);
  tr->nbuf = 0;
}

static inline void *fz_fill(size_t n, size_t esz) {
  void *p = calloc(n ? n : 1, esz);
  if (!p) abort();
  return p;
}

/* Appends explored batch E (2 groups of 2 responses, made from E so each differs) to the buffer. */
static inline void fz_push_rollout(Trainer *tr, int64_t e) {
  if (tr->nbuf == tr->capbuf) {
    tr->capbuf = tr->capbuf ? 2 * tr->capbuf : 8;
    tr->buf = realloc(tr->buf, (size_t)tr->capbuf * sizeof *tr->buf);
    if (!tr->buf) abort();
  }
  TrnRollout *r = &tr->buf[tr->nbuf++];
  memset(r, 0, sizeof *r);
  r->e = e, r->version = e - 1, r->nseq = 4, r->group = 2;
  static const int plen[4] = {3, 3, 4, 4}, rlen[4] = {2, 1, 5, 1};
  r->poff = fz_fill(5, sizeof(int));
  r->roff = fz_fill(5, sizeof(int));
  for (int s = 0; s < 4; s++) r->poff[s + 1] = r->poff[s] + plen[s], r->roff[s + 1] = r->roff[s] + rlen[s];
  r->prompt = fz_fill((size_t)r->poff[4], sizeof(int32_t));
  r->resp = fz_fill((size_t)r->roff[4], sizeof(int32_t));
  r->old_logp = fz_fill((size_t)r->roff[4], sizeof(float));
  for (int i = 0; i < r->poff[4]; i++) r->prompt[i] = i % 4 == 0 ? TASK_BOS : 3 + (int)((e + i) % 13);
  for (int i = 0; i < r->roff[4]; i++) r->resp[i] = 3 + (int)((e * 7 + i) % 13), r->old_logp[i] = -0.25f * (float)(i + 1);
  r->reward = fz_fill(4, sizeof(float));
  r->acc = fz_fill(4, sizeof(float));
  r->trunc = fz_fill(4, 1);
  for (int s = 0; s < 4; s++) r->reward[s] = r->acc[s] = (float)(s % 2), r->trunc[s] = s == 2;
  r->gen_s = 0.125;
}

/* The trainer, after T train steps, its run directory OUT. */
static inline void fz_trainer_init(Trainer *tr, const char *out) {
  memset(tr, 0, sizeof *tr);
  trn_opts_defaults(&tr->o, TRN_CMD_TRAIN);
  tr->o.batch_prompts = 2, tr->o.group = 2, tr->o.steps = 10, tr->o.threads = 1;
  snprintf(tr->o.out, sizeof tr->o.out, "%s", out);
  tr->prog = "fuzz";
  tr->d = &fz_objective;
  tr->m = fz_tiny_model();
  tr->m->opt = fz_fill(2 * tr->m->nparams, sizeof(tfm_f));
  for (size_t i = 0; i < 2 * tr->m->nparams; i++) tr->m->opt[i] = (tfm_f)(i % 5) * 0.001f;
  tr->t0 = rc_now();
}

#endif
