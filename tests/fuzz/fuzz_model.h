/* fuzz_model.h — the tiny model the runtime harnesses share (fuzz_safetensors.c, fuzz_buffer.c,
 * fuzz_ckpt.c): a Qwen2-style decoder (q/k/v biases), 2 layers, hidden 8, 2 query heads sharing
 * 1 key/value head, MLP 16, vocabulary 16, tied embeddings, 32 positions; about 1 400 parameters,
 * so a whole model.safetensors is a 6 KB seed.
 */
#ifndef REIN_FUZZ_MODEL_H
#define REIN_FUZZ_MODEL_H

#include "rein/tfm.h"

static const char FZ_CONFIG[] =
    "{\"model_type\": \"qwen2\", \"vocab_size\": 16, \"hidden_size\": 8, \"num_hidden_layers\": 2,\n"
    " \"num_attention_heads\": 2, \"num_key_value_heads\": 1, \"intermediate_size\": 16,\n"
    " \"max_position_embeddings\": 32, \"tie_word_embeddings\": true, \"bos_token_id\": 1,\n"
    " \"eos_token_id\": 2}\n";

/* A new tiny model, randomly initialized (seed 1). */
static inline TfmModel *fz_tiny_model(void) {
  TfmConfig c;
  char err[512];
  if (tfm_config_parse(FZ_CONFIG, "fz-config.json", &c, err, sizeof err)) {
    fprintf(stderr, "%s\n", err);
    abort();
  }
  TfmModel *m = tfm_model_new(&c, err, sizeof err);
  if (!m) {
    fprintf(stderr, "%s\n", err);
    abort();
  }
  tfm_model_init(m, 1);
  return m;
}

#endif
