/* fuzz_frontend.c — libFuzzer harness over the whole front end.
 *
 * Every input goes through fe_check_buffer (read checks, lexer, parser, sema) with diagnostics
 * written to /dev/null, and a program that checks is printed with ast_print_program, so the
 * caret printer and the AST printer are fuzzed too.  Everything is freed per input: a leak shows
 * up as a LeakSanitizer report.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "frontend.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static FILE *sink;
  if (!sink) sink = fopen("/dev/null", "w");
  if (!sink) return 0;
  Diag d;
  diag_init(&d, sink);
  FeUnit u;
  if (fe_check_buffer(&d, "fuzz.rein", (const char *)data, size, &u)) ast_print_program(sink, &u.prog);
  fe_free(&u);
  return 0;
}
