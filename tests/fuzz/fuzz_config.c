/* fuzz_config.c — libFuzzer harness over the model config reader (tfm_config_parse,
 * runtime/tfm/tfm_config.c): the config.json of every model directory (--model, `rein model`,
 * checkpoints).
 *
 * Each input is the config text.  The parser must accept it or fail with "PATH: field 'X': ...",
 * never crash or leak.  An accepted config must satisfy what the executor assumes (positive
 * sizes, an even head_dim, kv heads dividing heads, token ids inside the vocabulary); when it
 * describes a small model (at most 2^16 parameters) the model is also built (tfm_model_new: the
 * tensor table, the rotary frequencies with the config's scaling) and freed.
 */
#include "fuzz_util.h"

#include "rein/tfm.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *text = fz_text(data, size), err[512];
  TfmConfig c;
  int rc = tfm_config_parse(text, "config.json", &c, err, sizeof err);
  free(text);
  if (rc) {
    if (strncmp(err, "config.json: ", 13)) abort();   /* every message names the file */
    return 0;
  }
  if (c.vocab < 1 || c.dim < 1 || c.n_layers < 1 || c.n_heads < 1 || c.n_kv_heads < 1 || c.hidden < 1 ||
      c.max_pos < 1 || c.head_dim < 2 || c.head_dim % 2 || c.n_heads % c.n_kv_heads || c.n_eos > TFM_MAX_EOS ||
      c.bos >= c.vocab || !(c.norm_eps > 0) || !(c.rope_theta > 0))
    abort();
  for (int i = 0; i < c.n_eos; i++)
    if (c.eos[i] < 0 || c.eos[i] >= c.vocab) abort();
  double D = c.dim, qd = (double)c.n_heads * c.head_dim, kvd = (double)c.n_kv_heads * c.head_dim;
  double total = 2.0 * c.vocab * D + c.n_layers * (2 * D + 2 * D * qd + 2 * D * kvd + 3 * D * c.hidden + qd + 2 * kvd + D) + D;
  if (total <= 65536) {
    TfmModel *m = tfm_model_new(&c, err, sizeof err);
    if (m) {
      for (int i = 0; i < c.head_dim / 2; i++)
        if (!(m->inv_freq[i] == m->inv_freq[i])) abort();   /* NaN rotary frequency */
      tfm_model_free(m);
    }
  }
  return 0;
}
