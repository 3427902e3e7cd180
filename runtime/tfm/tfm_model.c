/* tfm_model.c — the model's memory: tensor table, the single parameter allocation, random
 * initialization, and loading/saving a model directory (config.json + safetensors).
 *
 * Parameters, gradients and the AdamW state are each one allocation with the same layout: the
 * tensor table gives every Hugging Face tensor name its element offset (aligned to 16 elements)
 * and shape, so a backend or a checkpoint writer walks one array.
 */
#include "tfm_internal.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Append a tensor to the table; returns its element offset. */
static size_t add_tensor(TfmModel *m, int *cap, const char *name, int64_t r, int64_t c) {
  if (m->ntensors == *cap) {
    *cap = *cap ? 2 * *cap : 64;
    m->tensors = rc_realloc(m->tensors, (size_t)*cap * sizeof *m->tensors);
  }
  TfmTensor *t = &m->tensors[m->ntensors++];
  memset(t, 0, sizeof *t);
  snprintf(t->name, sizeof t->name, "%s", name);
  t->ndim = c ? 2 : 1;
  t->shape[0] = r;
  t->shape[1] = c;
  t->n = (size_t)r * (size_t)(c ? c : 1);
  t->off = m->nparams;
  t->decay = t->ndim == 2;
  m->nparams += (t->n + 15) & ~(size_t)15;
  return t->off;
}

/* Rotary inverse frequencies with the configured scaling (Hugging Face's formulas). */
static void rope_freqs(const TfmConfig *c, double *inv) {
  int half = c->head_dim / 2;
  for (int i = 0; i < half; i++) {
    double f = pow(c->rope_theta, -2.0 * i / c->head_dim);
    if (c->rope_kind == TFM_ROPE_LINEAR) {
      f /= c->rope_factor;
    } else if (c->rope_kind == TFM_ROPE_LLAMA3) {
      double low_wl = c->rope_orig_max / c->rope_low_freq;
      double high_wl = c->rope_orig_max / c->rope_high_freq;
      double wl = 2 * M_PI / f;
      if (wl > low_wl) {
        f /= c->rope_factor;
      } else if (wl >= high_wl) {
        double s = (c->rope_orig_max / wl - c->rope_low_freq) / (c->rope_high_freq - c->rope_low_freq);
        f = (1 - s) * f / c->rope_factor + s * f;
      }
    }
    inv[i] = f;
  }
}

TfmModel *tfm_model_new(const TfmConfig *cfg, char *err, size_t errlen) {
  TfmModel *m = rc_calloc(1, sizeof *m);
  m->cfg = *cfg;
  m->dtype = TFM_DT_F32;
  const TfmConfig *c = &m->cfg;
  int cap = 0;
  int64_t D = c->dim, qd = (int64_t)c->n_heads * c->head_dim, kvd = (int64_t)c->n_kv_heads * c->head_dim;
  char nm[80];
  m->embed = add_tensor(m, &cap, "model.embed_tokens.weight", c->vocab, D);
  m->layers = rc_calloc((size_t)c->n_layers, sizeof *m->layers);
  if (!m->layers) {
    snprintf(err, errlen, "out of memory for %d layers", c->n_layers);
    tfm_model_free(m);
    return NULL;
  }
  for (int l = 0; l < c->n_layers; l++) {
    TfmLayerW *w = &m->layers[l];
#define T(field, suffix, r, cc) \
  (snprintf(nm, sizeof nm, "model.layers.%d.%s", l, suffix), w->field = add_tensor(m, &cap, nm, r, cc))
    T(attn_norm, "input_layernorm.weight", D, 0);
    T(wq, "self_attn.q_proj.weight", qd, D);
    if (c->qkv_bias) T(bq, "self_attn.q_proj.bias", qd, 0);
    else w->bq = TFM_ABSENT;
    T(wk, "self_attn.k_proj.weight", kvd, D);
    if (c->qkv_bias) T(bk, "self_attn.k_proj.bias", kvd, 0);
    else w->bk = TFM_ABSENT;
    T(wv, "self_attn.v_proj.weight", kvd, D);
    if (c->qkv_bias) T(bv, "self_attn.v_proj.bias", kvd, 0);
    else w->bv = TFM_ABSENT;
    T(wo, "self_attn.o_proj.weight", D, qd);
    if (c->o_bias) T(bo, "self_attn.o_proj.bias", D, 0);
    else w->bo = TFM_ABSENT;
    if (c->qk_norm) {
      T(qn, "self_attn.q_norm.weight", c->head_dim, 0);
      T(kn, "self_attn.k_norm.weight", c->head_dim, 0);
    } else {
      w->qn = w->kn = TFM_ABSENT;
    }
    T(mlp_norm, "post_attention_layernorm.weight", D, 0);
    T(wg, "mlp.gate_proj.weight", c->hidden, D);
    T(wu, "mlp.up_proj.weight", c->hidden, D);
    T(wd, "mlp.down_proj.weight", D, c->hidden);
#undef T
  }
  m->norm = add_tensor(m, &cap, "model.norm.weight", D, 0);
  m->head = c->tie_embeddings ? m->embed : add_tensor(m, &cap, "lm_head.weight", c->vocab, D);
  m->params = rc_calloc(m->nparams, sizeof(tfm_f));
  m->inv_freq = rc_calloc((size_t)c->head_dim / 2 + 1, sizeof(double));
  if (!m->params || !m->inv_freq) {
    snprintf(err, errlen, "out of memory for %zu parameters", m->nparams);
    tfm_model_free(m);
    return NULL;
  }
  rope_freqs(c, m->inv_freq);
  return m;
}

void tfm_model_free(TfmModel *m) {
  if (!m) return;
  free(m->tensors);
  free(m->layers);
  free(m->params);
  free(m->grads);
  free(m->opt);
  free(m->inv_freq);
  free(m->ws);
  free(m);
}

const TfmTensor *tfm_model_tensor(const TfmModel *m, const char *name) {
  for (int i = 0; i < m->ntensors; i++)
    if (!strcmp(m->tensors[i].name, name)) return &m->tensors[i];
  return NULL;
}

void tfm_model_init(TfmModel *m, uint64_t seed) {
  for (int t = 0; t < m->ntensors; t++) {
    const TfmTensor *T = &m->tensors[t];
    tfm_f *p = m->params + T->off;
    size_t len = strlen(T->name);
    if (T->ndim == 1) {
      int is_bias = len > 5 && !strcmp(T->name + len - 5, ".bias");
      for (size_t i = 0; i < T->n; i++) p[i] = is_bias ? 0 : 1;
      continue;
    }
    uint64_t key = rein_mix64(seed ^ rein_mix64((uint64_t)t + 1));
    for (size_t i = 0; i < T->n; i++) {
      /* Box-Muller on two uniforms in (0, 1]. */
      double u1 = ((rein_mix64(key + 2 * i) >> 11) + 1) * 0x1p-53;
      double u2 = (rein_mix64(key + 2 * i + 1) >> 11) * 0x1p-53;
      p[i] = (tfm_f)(m->cfg.init_range * sqrt(-2 * log(u1)) * cos(2 * M_PI * u2));
    }
  }
}

/* --- model directories -------------------------------------------------------------------- */

static int file_exists(const char *p) {
  struct stat st;
  return stat(p, &st) == 0;
}

/* Shards from model.safetensors.index.json: the distinct files of "weight_map". */
static int load_shards(TfmModel *m, const char *dir, const char *index, unsigned char *seen,
                       size_t *counts, char *err, size_t errlen) {
  json_error_t je;
  size_t len;
  char *text = rc_read_file(index, 64u << 20, &len, err, errlen);
  if (!text) return -1;
  json_t *o = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
  free(text);
  if (!o) {
    snprintf(err, errlen, "%s: not valid JSON (line %d: %s)", index, je.line, je.text);
    return -1;
  }
  json_t *wm = json_object_get(o, "weight_map");
  int rc = -1;
  if (!json_is_object(wm)) {
    snprintf(err, errlen, "%s: field 'weight_map': missing or not an object", index);
    goto done;
  }
  /* Distinct shard names, in the order they first appear. */
  const char *names[1024];
  int nnames = 0;
  const char *k;
  json_t *v;
  json_object_foreach(wm, k, v) {
    if (!json_is_string(v) || strchr(json_string_value(v), '/')) {
      snprintf(err, errlen, "%s: field 'weight_map': tensor '%s': expected a file name", index, k);
      goto done;
    }
    int dup = 0;
    for (int i = 0; i < nnames; i++) dup |= !strcmp(names[i], json_string_value(v));
    if (!dup) {
      if (nnames == 1024) {
        snprintf(err, errlen, "%s: more than 1024 shards", index);
        goto done;
      }
      names[nnames++] = json_string_value(v);
    }
  }
  for (int i = 0; i < nnames; i++) {
    char p[4096];
    snprintf(p, sizeof p, "%s/%s", dir, names[i]);
    if (tfm_st_read(m, p, seen, counts, err, errlen)) goto done;
  }
  rc = 0;
done:
  json_decref(o);
  return rc;
}

TfmModel *tfm_model_load(const char *dir, char *err, size_t errlen) {
  char p[4096];
  TfmConfig cfg;
  snprintf(p, sizeof p, "%s/config.json", dir);
  if (tfm_config_load(p, &cfg, err, errlen)) return NULL;
  TfmModel *m = tfm_model_new(&cfg, err, errlen);
  if (!m) return NULL;
  unsigned char *seen = rc_calloc((size_t)m->ntensors, 1);
  char idx[4096];
  snprintf(idx, sizeof idx, "%s/model.safetensors.index.json", dir);
  snprintf(p, sizeof p, "%s/model.safetensors", dir);
  int rc;
  size_t counts[TFM_NDT] = {0};
  if (!file_exists(p) && file_exists(idx)) {
    rc = load_shards(m, dir, idx, seen, counts, err, errlen);
    snprintf(p, sizeof p, "%s", idx);
  } else {
    rc = tfm_st_read(m, p, seen, counts, err, errlen);
  }
  /* the dtype the weights came in: the one holding the most elements (F32 on a tie) */
  for (int d = 0; d < TFM_NDT; d++)
    if (counts[d] > counts[m->dtype]) m->dtype = d;
  for (int i = 0; !rc && i < m->ntensors; i++)
    if (!seen[i]) {
      snprintf(err, errlen, "%s: tensor '%s': missing", p, m->tensors[i].name);
      rc = -1;
    }
  free(seen);
  if (rc) {
    tfm_model_free(m);
    return NULL;
  }
  return m;
}

/* A config.json for cfg (used when the original text is not at hand), its torch_dtype that of
 * the weights written (dtype). */
static char *config_json(const TfmConfig *c, int dtype) {
  static const char *const torch_dtype[] = {"float32", "bfloat16", "float16"};
  json_t *o = json_object();
  json_object_set_new(o, "model_type", json_string(tfm_arch_name(c->arch)));
  json_object_set_new(o, "architectures", json_pack("[s]", tfm_arch_class(c->arch)));
  json_object_set_new(o, "vocab_size", json_integer(c->vocab));
  json_object_set_new(o, "hidden_size", json_integer(c->dim));
  json_object_set_new(o, "num_hidden_layers", json_integer(c->n_layers));
  json_object_set_new(o, "num_attention_heads", json_integer(c->n_heads));
  json_object_set_new(o, "num_key_value_heads", json_integer(c->n_kv_heads));
  json_object_set_new(o, "head_dim", json_integer(c->head_dim));
  json_object_set_new(o, "intermediate_size", json_integer(c->hidden));
  json_object_set_new(o, "max_position_embeddings", json_integer(c->max_pos));
  json_object_set_new(o, "rms_norm_eps", json_real(c->norm_eps));
  json_object_set_new(o, "rope_theta", json_real(c->rope_theta));
  json_object_set_new(o, "tie_word_embeddings", json_boolean(c->tie_embeddings));
  json_object_set_new(o, "hidden_act", json_string("silu"));
  json_object_set_new(o, "initializer_range", json_real(c->init_range));
  if (c->arch != TFM_QWEN2) json_object_set_new(o, "attention_bias", json_boolean(c->qkv_bias));
  if (c->rope_kind == TFM_ROPE_LINEAR)
    json_object_set_new(o, "rope_scaling", json_pack("{s:s,s:f}", "rope_type", "linear", "factor", c->rope_factor));
  else if (c->rope_kind == TFM_ROPE_LLAMA3)
    json_object_set_new(o, "rope_scaling", json_pack("{s:s,s:f,s:f,s:f,s:i}", "rope_type", "llama3", "factor",
                                                     c->rope_factor, "low_freq_factor", c->rope_low_freq,
                                                     "high_freq_factor", c->rope_high_freq,
                                                     "original_max_position_embeddings", c->rope_orig_max));
  if (c->bos >= 0) json_object_set_new(o, "bos_token_id", json_integer(c->bos));
  if (c->n_eos == 1) json_object_set_new(o, "eos_token_id", json_integer(c->eos[0]));
  if (c->n_eos > 1) {
    json_t *a = json_array();
    for (int i = 0; i < c->n_eos; i++) json_array_append_new(a, json_integer(c->eos[i]));
    json_object_set_new(o, "eos_token_id", a);
  }
  json_object_set_new(o, "torch_dtype", json_string(torch_dtype[dtype]));
  char *s = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
  json_decref(o);
  return s;
}

int tfm_model_save(const TfmModel *m, const char *dir, const char *config_text, int dtype,
                   char *err, size_t errlen) {
  if (dtype == TFM_DT_SAME) dtype = m->dtype;
  if (dtype < 0 || dtype >= TFM_NDT) {
    snprintf(err, errlen, "%s: no dtype %d to write", dir, dtype);
    return -1;
  }
  if (mkdir(dir, 0777) && errno != EEXIST) {
    snprintf(err, errlen, "%s: cannot create directory (%s)", dir, strerror(errno));
    return -1;
  }
  char p[4096];
  snprintf(p, sizeof p, "%s/model.safetensors", dir);
  if (tfm_st_write(m, m->params, dtype, p, err, errlen)) return -1;
  snprintf(p, sizeof p, "%s/config.json", dir);
  char *gen = config_text ? NULL : config_json(&m->cfg, dtype);
  int rc = rc_write_text(p, config_text ? config_text : gen, err, errlen);
  free(gen);
  return rc;
}
