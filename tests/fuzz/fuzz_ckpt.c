/* fuzz_ckpt.c — libFuzzer harness over resuming from a checkpoint (trn_ckpt_load,
 * runtime/train/trn_ckpt.c), with the fuzz input as the checkpoint's state.json.
 *
 * At start a real checkpoint is written once by trn_ckpt_save from the trainer of
 * fuzz_trainer.h after train step 1, with one explored batch buffered, into a fresh temporary
 * run directory (removed at exit).  Each input replaces that checkpoint's state.json and the
 * whole resume runs: the state's fields and options are checked, the model, the AdamW state and
 * the buffer are read, and their sizes and XXH3 checksums compared with state.json's "files".
 * The other files never change, so the valid state.json (the seed that REIN_FUZZ_WRITE_SEEDS=DIR
 * writes) resumes successfully and mutations of it reach every check.  The loader must succeed
 * or fail with a message, never crash or leak.
 */
#include "fuzz_util.h"

#include <sys/stat.h>

#include "fuzz_trainer.h"

static char fz_dir[64];

static void fz_remove(void) {
  static const char *const files[] = {"config.json", "model.safetensors", "optim.safetensors", "buffer.bin",
                                      "state.json", NULL};
  char p[256];
  for (int i = 0; files[i]; i++) {
    snprintf(p, sizeof p, "%s/ckpt-000001/%s", fz_dir, files[i]);
    unlink(p);
  }
  snprintf(p, sizeof p, "%s/ckpt-000001", fz_dir);
  rmdir(p);
  snprintf(p, sizeof p, "%s/latest", fz_dir);
  unlink(p);
  snprintf(p, sizeof p, "%s/metrics.jsonl", fz_dir);
  unlink(p);
  rmdir(fz_dir);
}

static void fz_setup(Trainer *tr) {
  snprintf(fz_dir, sizeof fz_dir, "/tmp/rein-fuzz-ckpt-XXXXXX");
  if (!mkdtemp(fz_dir)) abort();
  atexit(fz_remove);
  fz_trainer_init(tr, fz_dir);
  tr->t = 1, tr->m->step = 1, tr->next_e = 3;
  fz_push_rollout(tr, 2);
  char err[1024];
  if (trn_ckpt_save(tr, err, sizeof err)) {
    fprintf(stderr, "%s\n", err);
    abort();
  }
  /* the valid state.json must resume */
  fz_clear_buffer(tr);
  if (trn_ckpt_load(tr, err, sizeof err) || tr->t != 1 || tr->next_e != 3 || tr->nbuf != 1) {
    fprintf(stderr, "the checkpoint just written does not resume: %s\n", err);
    abort();
  }
  const char *seeds = fz_seed_dir();
  if (seeds) {
    char p[256];
    snprintf(p, sizeof p, "%s/ckpt-000001/state.json", fz_dir);
    size_t n;
    unsigned char *s = fz_read_all(p, &n);
    if (!s) abort();
    fz_write_seed(seeds, "state.json", s, n);
    free(s);
    fz_remove();
    _exit(0);
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static Trainer tr;
  if (!tr.m) fz_setup(&tr);
  char p[256], err[2048];
  snprintf(p, sizeof p, "%s/ckpt-000001/state.json", fz_dir);
  FILE *f = fopen(p, "wb");
  if (!f || fwrite(data, 1, size, f) != size || fclose(f)) abort();
  fz_clear_buffer(&tr);
  tr.t = 0, tr.next_e = 0, tr.time_before = 0;
  if (trn_ckpt_load(&tr, err, sizeof err) == 0 && (tr.t < 0 || tr.next_e <= tr.t || tr.nbuf != tr.next_e - 1 - tr.t))
    abort();
  fz_clear_buffer(&tr);
  return 0;
}
