/* tfm_config.c — reads a Hugging Face config.json into a TfmConfig.
 *
 * Owns the mapping from Hugging Face's field names and defaults (for model_type "llama", "qwen2"
 * and "qwen3") to the executor's configuration, the architectures' names, and every check that a config describes a model this
 * executor computes exactly: anything it would silently compute differently (another activation,
 * sliding-window attention, an MLP bias, a rope scaling it does not implement) is an error that
 * names the field.
 */
#include "tfm_internal.h"

#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int cfg_fail(char *err, size_t errlen, const char *path, const char *field,
                    const char *fmt, ...) {
  char msg[256];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  if (field)
    snprintf(err, errlen, "%s: field '%s': %s", path, field, msg);
  else
    snprintf(err, errlen, "%s: %s", path, msg);
  return -1;
}

/* An integer field: required (def < 0 means required) and >= lo. */
static int get_int(json_t *o, const char *path, const char *key, long def, long lo, int *out,
                   char *err, size_t errlen) {
  json_t *v = json_object_get(o, key);
  if (!v || json_is_null(v)) {
    if (def < 0) return cfg_fail(err, errlen, path, key, "missing (required)");
    *out = (int)def;
    return 0;
  }
  if (!json_is_integer(v)) return cfg_fail(err, errlen, path, key, "expected an integer");
  json_int_t x = json_integer_value(v);
  if (x < lo || x > 1000000000)
    return cfg_fail(err, errlen, path, key, "%lld is out of range (at least %ld)", (long long)x, lo);
  *out = (int)x;
  return 0;
}

/* A special token id V (field KEY): absent or null leaves *OUT alone; otherwise an integer in
 * [0, VOCAB) — never truncated to fit. */
static int get_token_id(const char *path, const char *key, json_t *v, int vocab, int *out, char *err,
                        size_t errlen) {
  if (!v || json_is_null(v)) return 0;
  if (!json_is_integer(v)) return cfg_fail(err, errlen, path, key, "expected an integer or a list of integers");
  json_int_t x = json_integer_value(v);
  if (x < 0 || x >= vocab)
    return cfg_fail(err, errlen, path, key, "token id %lld is outside the vocabulary (vocab_size %d)", (long long)x,
                    vocab);
  *out = (int)x;
  return 0;
}

static int get_num(json_t *o, const char *path, const char *key, double def, double *out,
                   int positive, char *err, size_t errlen) {
  json_t *v = json_object_get(o, key);
  if (!v || json_is_null(v)) {
    *out = def;
    return 0;
  }
  if (!json_is_number(v)) return cfg_fail(err, errlen, path, key, "expected a number");
  double x = json_number_value(v);
  if (!isfinite(x) || (positive && x <= 0))
    return cfg_fail(err, errlen, path, key, "%g is not a positive number", x);
  *out = x;
  return 0;
}

static int get_bool(json_t *o, const char *path, const char *key, int def, int *out, char *err,
                    size_t errlen) {
  json_t *v = json_object_get(o, key);
  if (!v || json_is_null(v)) {
    *out = def;
    return 0;
  }
  if (!json_is_boolean(v)) return cfg_fail(err, errlen, path, key, "expected true or false");
  *out = json_is_true(v);
  return 0;
}

/* rope_scaling: null, {"rope_type"|"type": "default"|"linear"|"llama3", ...}. */
static int get_rope_scaling(json_t *o, const char *path, TfmConfig *c, char *err, size_t errlen) {
  json_t *rs = json_object_get(o, "rope_scaling");
  c->rope_kind = TFM_ROPE_DEFAULT;
  if (!rs || json_is_null(rs)) return 0;
  if (!json_is_object(rs)) return cfg_fail(err, errlen, path, "rope_scaling", "expected an object or null");
  json_t *t = json_object_get(rs, "rope_type");
  if (!t) t = json_object_get(rs, "type");
  if (!t || !json_is_string(t))
    return cfg_fail(err, errlen, path, "rope_scaling", "no \"rope_type\" string");
  const char *ty = json_string_value(t);
  if (!strcmp(ty, "default")) return 0;
  if (get_num(rs, path, "factor", -1, &c->rope_factor, 1, err, errlen)) return -1;
  if (c->rope_factor <= 0) return cfg_fail(err, errlen, path, "rope_scaling", "no \"factor\"");
  if (!strcmp(ty, "linear")) {
    c->rope_kind = TFM_ROPE_LINEAR;
    return 0;
  }
  if (!strcmp(ty, "llama3")) {
    c->rope_kind = TFM_ROPE_LLAMA3;
    if (get_num(rs, path, "low_freq_factor", 1, &c->rope_low_freq, 1, err, errlen) ||
        get_num(rs, path, "high_freq_factor", 4, &c->rope_high_freq, 1, err, errlen) ||
        get_int(rs, path, "original_max_position_embeddings", 8192, 1, &c->rope_orig_max, err, errlen))
      return -1;
    if (c->rope_high_freq <= c->rope_low_freq)
      return cfg_fail(err, errlen, path, "rope_scaling", "high_freq_factor must exceed low_freq_factor");
    return 0;
  }
  return cfg_fail(err, errlen, path, "rope_scaling", "rope type \"%s\" is not supported (default, linear, llama3)", ty);
}

/* The architectures: model_type and the class named in "architectures", by TFM_* value. */
static const struct {
  int arch;
  const char *model_type, *class_name;
} ARCHS[] = {
    {TFM_LLAMA, "llama", "LlamaForCausalLM"},
    {TFM_QWEN2, "qwen2", "Qwen2ForCausalLM"},
    {TFM_QWEN3, "qwen3", "Qwen3ForCausalLM"},
};
#define NARCHS (int)(sizeof ARCHS / sizeof *ARCHS)

const char *tfm_arch_name(int arch) {
  for (int i = 0; i < NARCHS; i++)
    if (ARCHS[i].arch == arch) return ARCHS[i].model_type;
  return "?";
}

const char *tfm_arch_class(int arch) {
  for (int i = 0; i < NARCHS; i++)
    if (ARCHS[i].arch == arch) return ARCHS[i].class_name;
  return "?";
}

/* layer_types (Qwen3, newer Qwen2 configs): every entry must be "full_attention". */
static int check_layer_types(json_t *o, const char *path, char *err, size_t errlen) {
  json_t *lt = json_object_get(o, "layer_types");
  if (!lt || json_is_null(lt)) return 0;
  if (!json_is_array(lt)) return cfg_fail(err, errlen, path, "layer_types", "expected a list of strings");
  size_t i;
  json_t *e;
  json_array_foreach(lt, i, e) {
    if (!json_is_string(e) || strcmp(json_string_value(e), "full_attention"))
      return cfg_fail(err, errlen, path, "layer_types", "entry %zu is not \"full_attention\" (sliding-window attention is not supported)", i);
  }
  return 0;
}

int tfm_config_parse(const char *text, const char *path, TfmConfig *c, char *err, size_t errlen) {
  memset(c, 0, sizeof *c);
  json_error_t je;
  json_t *o = json_loads(text, JSON_REJECT_DUPLICATES, &je);
  if (!o) return cfg_fail(err, errlen, path, NULL, "not valid JSON (line %d: %s)", je.line, je.text);
  int rc = -1;
  if (!json_is_object(o)) {
    cfg_fail(err, errlen, path, NULL, "expected a JSON object");
    goto done;
  }
  json_t *mt = json_object_get(o, "model_type");
  if (!mt || !json_is_string(mt)) {
    cfg_fail(err, errlen, path, "model_type", "missing (required: \"llama\", \"qwen2\" or \"qwen3\")");
    goto done;
  }
  for (int i = 0; i < NARCHS; i++)
    if (!strcmp(json_string_value(mt), ARCHS[i].model_type)) c->arch = ARCHS[i].arch;
  if (!c->arch) {
    cfg_fail(err, errlen, path, "model_type", "\"%s\" is not supported (llama, qwen2, qwen3)", json_string_value(mt));
    goto done;
  }
  if (get_int(o, path, "vocab_size", -1, 1, &c->vocab, err, errlen) ||
      get_int(o, path, "hidden_size", -1, 1, &c->dim, err, errlen) ||
      get_int(o, path, "num_hidden_layers", -1, 1, &c->n_layers, err, errlen) ||
      get_int(o, path, "num_attention_heads", -1, 1, &c->n_heads, err, errlen) ||
      get_int(o, path, "num_key_value_heads", c->n_heads, 1, &c->n_kv_heads, err, errlen) ||
      get_int(o, path, "intermediate_size", -1, 1, &c->hidden, err, errlen) ||
      get_int(o, path, "max_position_embeddings", 2048, 1, &c->max_pos, err, errlen))
    goto done;
  json_t *hd = json_object_get(o, "head_dim");
  if (hd && !json_is_null(hd)) {
    if (get_int(o, path, "head_dim", -1, 2, &c->head_dim, err, errlen)) goto done;
  } else if (c->arch == TFM_QWEN3) {
    c->head_dim = 128; /* Qwen3Config's default: not hidden_size / num_attention_heads */
  } else {
    if (c->dim % c->n_heads) {
      cfg_fail(err, errlen, path, "num_attention_heads", "%d does not divide hidden_size %d (and no head_dim is given)", c->n_heads, c->dim);
      goto done;
    }
    c->head_dim = c->dim / c->n_heads;
  }
  if (c->head_dim % 2) {
    cfg_fail(err, errlen, path, "head_dim", "%d is odd (rotary embeddings rotate pairs)", c->head_dim);
    goto done;
  }
  if (c->n_heads % c->n_kv_heads) {
    cfg_fail(err, errlen, path, "num_key_value_heads", "%d does not divide num_attention_heads %d", c->n_kv_heads, c->n_heads);
    goto done;
  }
  {
    /* Bound the parameter count (in double: the fields alone can overflow any integer). */
    double D = c->dim, qd = (double)c->n_heads * c->head_dim, kvd = (double)c->n_kv_heads * c->head_dim;
    double layer = 2 * D + 2 * D * qd + 2 * D * kvd + 3 * D * c->hidden + qd + 2 * kvd + D + 2.0 * c->head_dim;
    double total = 2.0 * c->vocab * D + c->n_layers * layer + D;
    if (total > TFM_MAX_PARAMS) {
      cfg_fail(err, errlen, path, NULL, "%.3g parameters: more than this executor holds (%.3g)", total, (double)TFM_MAX_PARAMS);
      goto done;
    }
  }
  if (get_num(o, path, "rms_norm_eps", 1e-6, &c->norm_eps, 1, err, errlen) ||
      get_num(o, path, "rope_theta", 10000.0, &c->rope_theta, 1, err, errlen) ||
      get_num(o, path, "initializer_range", 0.02, &c->init_range, 1, err, errlen) ||
      get_bool(o, path, "tie_word_embeddings", 0, &c->tie_embeddings, err, errlen))
    goto done;
  json_t *act = json_object_get(o, "hidden_act");
  if (act && !json_is_null(act) && (!json_is_string(act) || strcmp(json_string_value(act), "silu"))) {
    cfg_fail(err, errlen, path, "hidden_act", "only \"silu\" is supported");
    goto done;
  }
  int mlp_bias = 0, sliding = 0;
  if (get_bool(o, path, "mlp_bias", 0, &mlp_bias, err, errlen) ||
      get_bool(o, path, "use_sliding_window", 0, &sliding, err, errlen))
    goto done;
  if (mlp_bias) {
    cfg_fail(err, errlen, path, "mlp_bias", "true is not supported");
    goto done;
  }
  if (sliding) {
    cfg_fail(err, errlen, path, "use_sliding_window", "true is not supported");
    goto done;
  }
  if (check_layer_types(o, path, err, errlen)) goto done;
  if (c->arch == TFM_QWEN2) {
    c->qkv_bias = 1;
  } else { /* Llama and Qwen3: attention_bias puts a bias on q, k, v and o */
    int ab = 0;
    if (get_bool(o, path, "attention_bias", 0, &ab, err, errlen)) goto done;
    c->qkv_bias = c->o_bias = ab;
  }
  c->qk_norm = c->arch == TFM_QWEN3;
  if (get_rope_scaling(o, path, c, err, errlen)) goto done;
  c->bos = -1;
  if (get_token_id(path, "bos_token_id", json_object_get(o, "bos_token_id"), c->vocab, &c->bos, err, errlen))
    goto done;
  json_t *eos = json_object_get(o, "eos_token_id");
  if (eos && json_is_array(eos)) {
    size_t i;
    json_t *e;
    json_array_foreach(eos, i, e) {
      int id;
      if (get_token_id(path, "eos_token_id", e, c->vocab, &id, err, errlen)) goto done;
      if (id >= 0 && c->n_eos < TFM_MAX_EOS) c->eos[c->n_eos++] = id;
    }
  } else {
    int id = -1;
    if (get_token_id(path, "eos_token_id", eos, c->vocab, &id, err, errlen)) goto done;
    if (id >= 0) c->eos[c->n_eos++] = id;
  }
  rc = 0;
done:
  json_decref(o);
  return rc;
}

int tfm_config_load(const char *path, TfmConfig *cfg, char *err, size_t errlen) {
  char *text = rc_read_file(path, 64u << 20, NULL, err, errlen);
  if (!text) return -1;
  int rc = tfm_config_parse(text, path, cfg, err, errlen);
  free(text);
  return rc;
}
