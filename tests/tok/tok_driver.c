/* tok_driver.c — the C side of the tokenizer comparison (tests/tok/test_tok.py).
 *
 *   tok_driver TOKDIR IN.json OUT.jsonl
 * IN.json is an array of strings; OUT.jsonl gets one line per string,
 *   {"ids": [...], "ids_sp": [...], "dec": "..."}
 * the ids without and with the post-processor's special tokens, and decode(ids).  Exit 1 with a
 * message on any error.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>

#include "rein/tok.h"

static json_t *id_array(const int32_t *ids, size_t n) {
  json_t *a = json_array();
  for (size_t i = 0; i < n; i++) json_array_append_new(a, json_integer(ids[i]));
  return a;
}

int main(int argc, char **argv) {
  if (argc != 4) {
    fprintf(stderr, "usage: tok_driver TOKDIR IN.json OUT.jsonl\n");
    return 2;
  }
  char err[1024];
  Tok *t = tok_load(argv[1], err, sizeof err);
  if (!t) {
    fprintf(stderr, "tok_driver: %s\n", err);
    return 1;
  }
  json_error_t je;
  json_t *in = json_load_file(argv[2], 0, &je);
  FILE *out = fopen(argv[3], "w");
  if (!json_is_array(in) || !out) {
    fprintf(stderr, "tok_driver: cannot read %s or write %s\n", argv[2], argv[3]);
    return 1;
  }
  int status = 0;
  for (size_t i = 0; i < json_array_size(in) && !status; i++) {
    json_t *s = json_array_get(in, i);
    int32_t *ids, *ids_sp;
    size_t n, n_sp;
    if (tok_encode(t, json_string_value(s), json_string_length(s), 0, &ids, &n, err, sizeof err) ||
        tok_encode(t, json_string_value(s), json_string_length(s), 1, &ids_sp, &n_sp, err, sizeof err)) {
      fprintf(stderr, "tok_driver: string %zu: %s\n", i, err);
      status = 1;
      break;
    }
    char *dec = tok_decode(t, ids, n, 0, err, sizeof err);
    if (!dec) {
      fprintf(stderr, "tok_driver: string %zu: decode: %s\n", i, err);
      status = 1;
    } else {
      json_t *o = json_pack("{s:o,s:o,s:s}", "ids", id_array(ids, n), "ids_sp", id_array(ids_sp, n_sp), "dec", dec);
      char *line = json_dumps(o, JSON_COMPACT | JSON_ENSURE_ASCII);
      fprintf(out, "%s\n", line);
      free(line);
      json_decref(o);
    }
    free(dec);
    free(ids);
    free(ids_sp);
  }
  if (fclose(out)) status = 1;
  json_decref(in);
  tok_free(t);
  return status;
}
