/* fuzz_buffer.c — libFuzzer harness over the experience buffer reader (trn_buffer_load,
 * runtime/train/trn_buffer.c): a checkpoint's buffer.bin, read on `rein train --resume`.
 *
 * The trainer (fuzz_trainer.h) is set up once, after train step 0 of a run with 2 prompts x 2
 * responses.  Each input is the buffer file; the reader must load it or fail with a message
 * naming the file, never crash, read out of bounds or leak.  Loaded rollouts are checked against
 * what the train step indexes (offsets inside the arrays, tokens inside the vocabulary) and
 * freed.  Seeds (REIN_FUZZ_WRITE_SEEDS=DIR): buffers of 0, 1 and 3 rollouts written by
 * trn_buffer_save.
 */
#include "fuzz_util.h"

#include "fuzz_trainer.h"

static void fz_write_seeds(Trainer *tr, const char *dir) {
  char p[4096], err[512];
  for (int n = 0; n <= 3; n += n ? 2 : 1) {
    fz_clear_buffer(tr);
    for (int i = 0; i < n; i++) fz_push_rollout(tr, tr->t + 1 + i);
    snprintf(p, sizeof p, "%s/buffer-%d.bin", dir, n);
    if (trn_buffer_save(tr, p, err, sizeof err)) abort();
  }
  _exit(0);   /* not exit: libFuzzer reports an exit from the target */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static Trainer tr;
  if (!tr.m) {
    fz_trainer_init(&tr, "/nonexistent");
    if (fz_seed_dir()) fz_write_seeds(&tr, fz_seed_dir());
  }
  const char *path = fz_input_path(data, size);
  char err[1024];
  if (trn_buffer_load(&tr, path, err, sizeof err)) {
    if (strncmp(err, path, strlen(path))) abort();
  } else {
    for (int k = 0; k < tr.nbuf; k++) {
      const TrnRollout *r = &tr.buf[k];
      if (r->nseq != tr.o.batch_prompts * tr.o.group || r->group != tr.o.group || r->e != tr.t + 1 + k) abort();
      for (int s = 0; s < r->nseq; s++)
        if (r->poff[s + 1] <= r->poff[s] || r->roff[s + 1] <= r->roff[s] ||
            r->poff[s + 1] - r->poff[s] + r->roff[s + 1] - r->roff[s] > tr.m->cfg.max_pos)
          abort();
      for (int i = 0; i < r->roff[r->nseq]; i++)
        if (r->resp[i] < 0 || r->resp[i] >= tr.m->cfg.vocab) abort();
    }
  }
  fz_clear_buffer(&tr);
  return 0;
}
