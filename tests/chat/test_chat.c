/* test_chat.c CASES.json — chat_render (rein/tok.h) against the reference renderer.
 *
 * CASES.json is written by chat_ref.cjs: each case a template, a conversation, the generation
 * flag, the bos/eos tokens, and either the text @huggingface/jinja rendered (compared byte for
 * byte; the first difference is printed with context, as escaped text) or the substring Rein's
 * error message must contain.  Exit 0 when every case agrees, 1 otherwise, 2 on a bad input.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rein/tok.h"

static void show(const char *label, const char *s, size_t from, size_t to) {
  printf("  %s: \"", label);
  for (size_t i = from; i < to && s[i]; i++) {
    unsigned char ch = (unsigned char)s[i];
    if (ch == '\n') printf("\\n");
    else if (ch == '\t') printf("\\t");
    else if (ch == '"' || ch == '\\') printf("\\%c", ch);
    else if (ch < 0x20) printf("\\x%02x", ch);
    else putchar(ch);
  }
  printf("\"\n");
}

static int check(json_t *c) {
  const char *name = json_string_value(json_object_get(c, "name"));
  const char *tmpl = json_string_value(json_object_get(c, "template"));
  json_t *msgs = json_object_get(c, "messages");
  if (!name || !tmpl || !json_is_array(msgs)) {
    printf("bad case\n");
    return 0;
  }
  size_t n = json_array_size(msgs);
  ChatMsg *m = calloc(n ? n : 1, sizeof *m);
  for (size_t i = 0; i < n; i++) {
    m[i].role = json_string_value(json_object_get(json_array_get(msgs, i), "role"));
    m[i].content = json_string_value(json_object_get(json_array_get(msgs, i), "content"));
  }
  char err[512] = "";
  char *out = chat_render(tmpl, m, (int)n, json_is_true(json_object_get(c, "add_generation_prompt")),
                          json_string_value(json_object_get(c, "bos_token")),
                          json_string_value(json_object_get(c, "eos_token")), err, sizeof err);
  free(m);
  const char *want = json_string_value(json_object_get(c, "expected"));
  const char *want_err = json_string_value(json_object_get(c, "error"));
  int ok = 1;
  if (want_err) {
    if (out) {
      printf("FAIL %s: rendered, but an error containing \"%s\" was expected\n", name, want_err);
      ok = 0;
    } else if (!strstr(err, want_err)) {
      printf("FAIL %s: error \"%s\" does not contain \"%s\"\n", name, err, want_err);
      ok = 0;
    }
  } else if (!out) {
    printf("FAIL %s: %s\n", name, err);
    ok = 0;
  } else if (strcmp(out, want) != 0) {
    size_t i = 0;
    while (out[i] && out[i] == want[i]) i++;
    size_t from = i > 60 ? i - 60 : 0;
    printf("FAIL %s: first difference at byte %zu (rein %zu bytes, reference %zu bytes)\n", name, i,
           strlen(out), strlen(want));
    show("rein     ", out, from, i + 40);
    show("reference", want, from, i + 40);
    ok = 0;
  }
  free(out);
  return ok;
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: test_chat CASES.json\n");
    return 2;
  }
  json_error_t je;
  json_t *cases = json_load_file(argv[1], 0, &je);
  if (!json_is_array(cases)) {
    fprintf(stderr, "test_chat: %s: %s\n", argv[1], je.text);
    return 2;
  }
  size_t n = json_array_size(cases), bad = 0;
  for (size_t i = 0; i < n; i++) bad += !check(json_array_get(cases, i));
  printf("test_chat: %zu of %zu cases agree with @huggingface/jinja\n", n - bad, n);
  json_decref(cases);
  return bad ? 1 : 0;
}
