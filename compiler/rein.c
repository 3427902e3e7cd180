/* rein.c — the `rein` driver: one binary, one subcommand per job (spec §6).
 *
 *   rein check FILE...        parse and type-check; diagnostics on stderr; exit 1 on error
 *   rein emit --ast FILE      print the checked syntax tree (deterministic, for golden tests)
 *
 * Exit status: 0 success (warnings allowed), 1 errors in the input, 2 bad command line.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "frontend.h"

#ifndef REIN_VERSION
#define REIN_VERSION "0.1.0"
#endif

static void usage(FILE *out) {
  fprintf(out,
          "usage: rein COMMAND [OPTIONS] FILE...\n"
          "\n"
          "commands:\n"
          "  check FILE...        parse and type-check Rein objectives\n"
          "  emit --ast FILE      print the checked syntax tree\n"
          "\n"
          "options:\n"
          "  -h, --help           show this help\n"
          "  --version            print the version\n"
          "  --max-errors N       stop after N errors (default 20)\n");
}

static int parse_max_errors(const char *s, int *out) {
  char *end;
  long v = strtol(s, &end, 10);
  if (*s == 0 || *end != 0 || v < 1 || v > 100000) {
    fprintf(stderr, "rein: error: --max-errors needs a number from 1 to 100000, not `%s`\n", s);
    return 0;
  }
  *out = (int)v;
  return 1;
}

/* rein check [--max-errors N] FILE... */
static int cmd_check(int argc, char **argv) {
  static const struct option opts[] = {{"max-errors", required_argument, 0, 'm'},
                                       {"help", no_argument, 0, 'h'},
                                       {0, 0, 0, 0}};
  int max_errors = 20, c;
  while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
    if (c == 'm' && parse_max_errors(optarg, &max_errors)) continue;
    if (c == 'h') { usage(stdout); return 0; }
    return 2;
  }
  if (optind >= argc) {
    fprintf(stderr, "rein check: error: no input files\n");
    return 2;
  }
  int status = 0;
  for (int i = optind; i < argc; i++) {
    Diag d;
    diag_init(&d, stderr);
    d.max_errors = max_errors;
    FeUnit u;
    if (!fe_check_file(&d, argv[i], &u)) status = 1;
    fe_free(&u);
  }
  return status;
}

/* rein emit --ast FILE */
static int cmd_emit(int argc, char **argv) {
  enum { EMIT_NONE, EMIT_AST } what = EMIT_NONE;
  static const struct option opts[] = {{"ast", no_argument, 0, 'a'},
                                       {"help", no_argument, 0, 'h'},
                                       {0, 0, 0, 0}};
  int c;
  while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
    if (c == 'a') what = EMIT_AST;
    else if (c == 'h') { usage(stdout); return 0; }
    else return 2;
  }
  if (what == EMIT_NONE) {
    fprintf(stderr, "rein emit: error: say what to emit (--ast)\n");
    return 2;
  }
  if (optind + 1 != argc) {
    fprintf(stderr, "rein emit: error: expected exactly one input file\n");
    return 2;
  }
  Diag d;
  diag_init(&d, stderr);
  FeUnit u;
  int status = 1;
  if (fe_check_file(&d, argv[optind], &u)) {
    ast_print_program(stdout, &u.prog);
    status = fflush(stdout) == 0 ? 0 : 1;
  }
  fe_free(&u);
  return status;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    usage(stderr);
    return 2;
  }
  const char *cmd = argv[1];
  if (!strcmp(cmd, "-h") || !strcmp(cmd, "--help") || !strcmp(cmd, "help")) {
    usage(stdout);
    return 0;
  }
  if (!strcmp(cmd, "--version")) {
    printf("rein %s\n", REIN_VERSION);
    return 0;
  }
  if (!strcmp(cmd, "check")) return cmd_check(argc - 1, argv + 1);
  if (!strcmp(cmd, "emit")) return cmd_emit(argc - 1, argv + 1);
  fprintf(stderr, "rein: error: unknown command `%s` (try `rein --help`)\n", cmd);
  return 2;
}
