/* test_chat_limits.c — chat_render's guards, which need no reference: runaway templates (output,
 * steps, nesting) and bad calls (no template, invalid UTF-8, a message without a role) fail with
 * a message naming the limit or the input, never a crash or a hang; and a render after a failed
 * one works (the failed one left nothing behind).  Exit 0 when every check holds.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rein/tok.h"

static int fails;

static void expect_error(const char *what, const char *tmpl, const ChatMsg *m, int n, const char *needle) {
  char err[512] = "";
  char *out = chat_render(tmpl, m, n, 1, NULL, NULL, err, sizeof err);
  if (out || !strstr(err, needle)) {
    printf("FAIL %s: %s (wanted an error containing \"%s\")\n", what, out ? "rendered" : err, needle);
    fails++;
  }
  free(out);
}

int main(void) {
  ChatMsg m[2] = {{"user", "hi"}, {"assistant", "hello"}};
  char *big = malloc(5000);
  strcpy(big, "{% for i in range(100000) %}");
  memset(big + strlen(big), 'x', 4000);
  strcpy(big + strlen("{% for i in range(100000) %}") + 4000, "{% endfor %}");
  expect_error("output limit", big, m, 2, "writes more than 16 MiB (limit)");
  free(big);
  char *steps = malloc(4000);   /* many cheap steps per iteration: the step limit comes first */
  strcpy(steps, "{% for i in range(1000000) %}");
  for (int i = 0; i < 50; i++) strcat(steps, "{% if false %}{% endif %}");
  strcat(steps, "{% endfor %}");
  expect_error("step limit", steps, m, 2, "steps (limit)");
  free(steps);
  expect_error("memory limit", "{% set ns = namespace(s='x') %}{% for i in range(40) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}",
               m, 2, "MiB of memory (limit)");
  expect_error("range limit", "{% for i in range(100000000) %}{% endfor %}", m, 2, "range() longer than");
  char *deep = malloc(20000);
  size_t k = 0;
  k += (size_t)sprintf(deep + k, "{{ ");
  for (int i = 0; i < 5000; i++) deep[k++] = '(';
  deep[k++] = '1';
  for (int i = 0; i < 5000; i++) deep[k++] = ')';
  strcpy(deep + k, " }}");
  expect_error("parser nesting", deep, m, 2, "nests deeper");
  k = (size_t)sprintf(deep, "{{ 1");
  for (int i = 0; i < 4000; i++) k += (size_t)sprintf(deep + k, "+1");
  strcpy(deep + k, " }}");
  expect_error("evaluator nesting", deep, m, 2, "nests deeper");
  free(deep);
  expect_error("no template", NULL, m, 2, "no template");
  expect_error("invalid UTF-8 template", "a\xff", m, 2, "not valid UTF-8");
  ChatMsg bad[1] = {{"user", "\xc3("}};
  expect_error("invalid UTF-8 content", "x", bad, 1, "messages[0]: not valid UTF-8");
  ChatMsg norole[1] = {{NULL, "x"}};
  expect_error("no role", "x", norole, 1, "messages[0]: no role");
  expect_error("break outside a loop", "{% break %}", m, 2, "outside a for loop");
  expect_error("error names the line", "line1\nline2\n{{ x|nope }}", m, 2, "chat template line 3:");
  expect_error("integer overflow", "{{ 9007199254740992 * 4 }}", m, 2, "beyond 2^53");
  expect_error("division by zero", "{{ 1 / 0 }}", m, 2, "division by zero");
  char err[256];
  char *out = chat_render("{{ messages|length }}{{ bos_token is defined }}{{ messages[1].content }}", m, 2, 0,
                          NULL, NULL, err, sizeof err);
  if (!out || strcmp(out, "2falsehello") != 0) {
    printf("FAIL render after failures: %s\n", out ? out : err);
    fails++;
  }
  free(out);
  printf("test_chat_limits: %s\n", fails ? "FAILED" : "all checks hold");
  return fails ? 1 : 0;
}
