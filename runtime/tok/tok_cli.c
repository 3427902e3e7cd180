/* tok_cli.c — `rein tokenize --tokenizer DIR [--decode] [--no-special] TEXT|-`.
 *
 * Encodes TEXT (or standard input, for -) and prints the ids on one line, separated by spaces;
 * with --decode reads ids (separated by spaces, commas or newlines) and prints the text.
 * --no-special: encode without the post-processor's special tokens (e.g. Llama 3's BOS); decode
 * without the special tokens.  Errors are one line, "rein tokenize: error: MESSAGE"; exit 1 for
 * bad input, 2 for a bad command line.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rein/common.h"
#include "rein/opts.h"
#include "tok_internal.h"

#define TOK_CLI_MAX_INPUT ((size_t)1 << 30)

static void cli_usage(FILE *f) {
  fprintf(f, "usage: rein tokenize --tokenizer DIR [--decode] [--no-special] TEXT|-\n");
}

static char *read_stdin(size_t *len) {
  size_t cap = 1 << 16, n = 0;
  char *b = rc_malloc(cap);
  size_t got;
  while ((got = fread(b + n, 1, cap - n - 1, stdin)) > 0) {
    n += got;
    if (n > TOK_CLI_MAX_INPUT) break;
    if (cap - n - 1 == 0) b = rc_realloc(b, cap *= 2);
  }
  b[n] = 0;
  *len = n;
  return b;
}

/* Ids "1 2,3\n4" -> *ids; 0, or -1 with err. */
static int parse_ids(const char *s, int32_t **ids, size_t *n, char *err, size_t errlen) {
  size_t cap = 0;
  *ids = NULL;
  *n = 0;
  for (const char *p = s;;) {
    while (*p == ' ' || *p == ',' || *p == '\n' || *p == '\t' || *p == '\r') p++;
    if (!*p) return 0;
    char *end;
    errno = 0;
    long v = (*p >= '0' && *p <= '9') ? strtol(p, &end, 10) : -1;
    if (v < 0 || errno || v > INT32_MAX) {
      snprintf(err, errlen, "expected token ids, got `%.20s`", p);
      return -1;
    }
    if (*n == cap) *ids = rc_realloc(*ids, (cap = cap ? 2 * cap : 64) * sizeof **ids);
    (*ids)[(*n)++] = (int32_t)v;
    p = end;
  }
}

int tok_cli_main(int argc, char **argv) {
  const char *dir = NULL;
  int decode = 0, no_special = 0;
  const RcOpt t[] = {
      {.name = "tokenizer", .kind = RC_OPT_STR, .dst = &dir, .arg = "DIR", .help = "a model directory (tokenizer.json) or a tokenizer.json"},
      {.name = "decode", .kind = RC_OPT_FLAG, .dst = &decode, .value = 1, .help = "read ids, print the text"},
      {.name = "no-special", .kind = RC_OPT_FLAG, .dst = &no_special, .value = 1,
       .help = "encode: no post-processor tokens (BOS); decode: skip special tokens"},
      RC_OPTS_END};
  char err[1024];
  int k = rc_opts_parse(t, argc, argv, 1, err, sizeof err);
  if (k == RC_OPTS_HELP) {
    cli_usage(stdout);
    printf("\n");
    rc_opts_help(stdout, t);
    return 0;
  }
  if (k == RC_OPTS_USAGE) {
    cli_usage(stderr);
    return 2;
  }
  if (k == RC_OPTS_BAD) {
    fprintf(stderr, "rein tokenize: error: %s\n", err);
    return 2;
  }
  if (!dir || k != argc - 1) {
    cli_usage(stderr);
    return 2;
  }
  Tok *tk = tok_load(dir, err, sizeof err);
  if (!tk) {
    fprintf(stderr, "rein tokenize: error: %s\n", err);
    return 1;
  }
  size_t len;
  char *text = strcmp(argv[k], "-") ? rc_strdup(argv[k]) : read_stdin(&len);
  if (strcmp(argv[k], "-")) len = strlen(text);
  int status = 0;
  if (decode) {
    int32_t *ids;
    size_t n;
    char *s = NULL;
    if (parse_ids(text, &ids, &n, err, sizeof err) || !(s = tok_decode(tk, ids, n, no_special, err, sizeof err))) {
      fprintf(stderr, "rein tokenize: error: %s\n", err);
      status = 1;
    } else {
      fputs(s, stdout);
      fputc('\n', stdout);
    }
    free(s);
    free(ids);
  } else {
    int32_t *ids;
    size_t n;
    if (tok_encode(tk, text, len, !no_special, &ids, &n, err, sizeof err)) {
      fprintf(stderr, "rein tokenize: error: %s\n", err);
      status = 1;
    } else {
      for (size_t i = 0; i < n; i++) printf(i ? " %d" : "%d", ids[i]);
      printf("\n");
      free(ids);
    }
  }
  free(text);
  tok_free(tk);
  if (fflush(stdout)) status = 1;
  return status;
}
