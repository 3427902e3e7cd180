/* fuzz_safetensors.c — libFuzzer harness over the safetensors readers (runtime/tfm/
 * tfm_safetensors.c): tfm_st_read (model.safetensors, and each shard of a sharded model) and
 * tfm_opt_load (a checkpoint's optim.safetensors: two tensor sets, or three with the F32 masters, and "step" in the metadata).
 *
 * The model (fuzz_model.h) is built once.  Each input is read as a weights file and as an
 * optimizer file; each reader must succeed or fail with a message naming the file, never crash,
 * read outside its buffers or leak.  Seeds (REIN_FUZZ_WRITE_SEEDS=DIR): the model's weights and
 * AdamW state as written by tfm_st_write / tfm_opt_save; BF16 and F16 variants are hand-made in
 * corpus_safetensors/.
 */
#include "fuzz_util.h"

#include "fuzz_model.h"

static void fz_write_seeds(TfmModel *m, const char *dir) {
  char p[4096], err[512];
  snprintf(p, sizeof p, "%s/model.safetensors", dir);
  if (tfm_st_write(m, m->params, TFM_DT_F32, p, err, sizeof err)) abort();
  m->opt = calloc(2 * m->nparams, sizeof(tfm_f));
  for (size_t i = 0; i < 2 * m->nparams; i++) m->opt[i] = (tfm_f)(i % 7) * (i < m->nparams ? 0.01f : 0.0001f);
  m->step = 3;
  snprintf(p, sizeof p, "%s/optim.safetensors", dir);
  if (tfm_opt_save(m, p, 1, err, sizeof err)) abort();
  _exit(0);   /* not exit: libFuzzer reports an exit from the target */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static TfmModel *m;
  static unsigned char *seen;
  if (!m) {
    m = fz_tiny_model();
    if (fz_seed_dir()) fz_write_seeds(m, fz_seed_dir());
    seen = calloc((size_t)m->ntensors, 1);
  }
  const char *path = fz_input_path(data, size);
  char err[1024];
  memset(seen, 0, (size_t)m->ntensors);
  if (tfm_st_read(m, path, seen, NULL, err, sizeof err) && strncmp(err, path, strlen(path))) abort();
  if (tfm_opt_load(m, path, err, sizeof err) && strncmp(err, path, strlen(path))) abort();
  return 0;
}
