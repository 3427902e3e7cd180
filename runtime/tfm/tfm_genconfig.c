/* tfm_genconfig.c — reads a model directory's generation_config.json (Hugging Face's sampling
 * defaults) into a TfmGenConfig.
 *
 * Owns the one reading of that file for every command: `rein model generate` takes its stop ids
 * and default temperature / top_p / top_k from it, and so does the trainer (docs/executor.md,
 * "Bring your own model").  Fields the executor has no use for (max_new_tokens,
 * repetition_penalty, pad_token_id, transformers_version, ...) are ignored; the fields it reads
 * are checked, and a bad one is an error naming the file and the field — never a silent default.
 */
#include "tfm_internal.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define GC_BAD(...) (snprintf(err, errlen, __VA_ARGS__), -1)

/* One token id of field KEY: an integer in [0, vocab). */
static int gc_id(const char *path, const char *key, json_t *v, int vocab, int *out, char *err, size_t errlen) {
  if (!json_is_integer(v))
    return GC_BAD("%s: field '%s': expected an integer or a list of integers", path, key);
  json_int_t x = json_integer_value(v);
  if (x < 0 || x >= vocab)
    return GC_BAD("%s: field '%s': token id %lld is outside the vocabulary (vocab_size %d)", path, key, (long long)x,
                  vocab);
  *out = (int)x;
  return 0;
}

/* A number field in [lo, hi] (lo_open: lo excluded); absent or null leaves *has at 0. */
static int gc_num(json_t *o, const char *path, const char *key, double lo, int lo_open, double hi, int *has,
                  double *out, char *err, size_t errlen) {
  json_t *v = json_object_get(o, key);
  if (!v || json_is_null(v)) return 0;
  if (!json_is_number(v)) return GC_BAD("%s: field '%s': expected a number", path, key);
  double x = json_number_value(v);
  if (!(lo_open ? x > lo : x >= lo) || !(x <= hi))
    return GC_BAD("%s: field '%s': %g is outside %s%g, %g]", path, key, x, lo_open ? "(" : "[", lo, hi);
  *has = 1;
  *out = x;
  return 0;
}

int tfm_genconfig_load(const char *dir, int vocab, TfmGenConfig *g, char *err, size_t errlen) {
  memset(g, 0, sizeof *g);
  g->bos = -1;
  g->do_sample = -1;
  char path[4200];
  snprintf(path, sizeof path, "%s/generation_config.json", dir);
  if (access(path, F_OK) != 0) return 0;
  size_t len;
  char *text = rc_read_file(path, 16u << 20, &len, err, errlen);
  if (!text) return -1;
  json_error_t je;
  json_t *o = json_loadb(text, len, 0, &je);
  free(text);
  if (!o) return GC_BAD("%s:%d:%d: invalid JSON: %s", path, je.line, je.column, je.text);
  int rc = -1;
  if (!json_is_object(o)) {
    GC_BAD("%s: expected a JSON object", path);
    goto done;
  }
  g->found = 1;
  json_t *eos = json_object_get(o, "eos_token_id");
  if (json_is_array(eos)) {
    size_t i;
    json_t *e;
    if (json_array_size(eos) > TFM_MAX_EOS) {
      GC_BAD("%s: field 'eos_token_id': more than %d ids", path, TFM_MAX_EOS);
      goto done;
    }
    json_array_foreach(eos, i, e) {
      if (gc_id(path, "eos_token_id", e, vocab, &g->eos[g->n_eos], err, errlen)) goto done;
      g->n_eos++;
    }
  } else if (eos && !json_is_null(eos)) {
    if (gc_id(path, "eos_token_id", eos, vocab, &g->eos[0], err, errlen)) goto done;
    g->n_eos = 1;
  }
  json_t *bos = json_object_get(o, "bos_token_id");
  if (bos && !json_is_null(bos) && gc_id(path, "bos_token_id", bos, vocab, &g->bos, err, errlen)) goto done;
  json_t *ds = json_object_get(o, "do_sample");
  if (ds && !json_is_null(ds)) {
    if (!json_is_boolean(ds)) {
      GC_BAD("%s: field 'do_sample': expected true or false", path);
      goto done;
    }
    g->do_sample = json_is_true(ds);
  }
  double k = 0;
  if (gc_num(o, path, "temperature", 0, 0, 1e6, &g->has_temperature, &g->temperature, err, errlen) ||
      gc_num(o, path, "top_p", 0, 1, 1, &g->has_top_p, &g->top_p, err, errlen) ||
      gc_num(o, path, "top_k", 0, 0, 1e9, &g->has_top_k, &k, err, errlen))
    goto done;
  if (g->has_top_k && k != (double)(int)k) {
    GC_BAD("%s: field 'top_k': expected an integer", path);
    goto done;
  }
  g->top_k = (int)k;
  rc = 0;
done:
  json_decref(o);
  return rc;
}
