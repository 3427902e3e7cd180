/* tok_cli.c — `rein tokenize --tokenizer DIR [--decode] [--no-special] TEXT|-`.
 *
 * Encodes TEXT (or standard input, for -) and prints the ids on one line, separated by spaces;
 * with --decode reads ids (separated by spaces, commas or newlines) and prints the text.
 * --no-special: encode without the post-processor's special tokens (e.g. Llama 3's BOS); decode
 * without the special tokens.  Errors are one line, "rein tokenize: error: MESSAGE"; exit 1 for
 * bad input, 2 for a bad command line.  Hostile input is an error, never a crash or a silently
 * different result: standard input past TOK_CLI_MAX_INPUT, text that is not UTF-8, an id that is
 * negative, huge, malformed or not in the vocabulary (checked here, before tok_decode).
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

/* Standard input, at most TOK_CLI_MAX_INPUT bytes; NULL with err when longer or unreadable. */
static char *read_stdin(size_t *len, char *err, size_t errlen) {
  size_t cap = 1 << 16, n = 0;
  char *b = rc_malloc(cap);
  size_t got;
  while ((got = fread(b + n, 1, cap - n - 1, stdin)) > 0) {
    n += got;
    if (n > TOK_CLI_MAX_INPUT) {
      snprintf(err, errlen, "standard input: longer than %zu bytes (limit)", TOK_CLI_MAX_INPUT);
      free(b);
      return NULL;
    }
    if (cap - n - 1 == 0) b = rc_realloc(b, cap *= 2);
  }
  if (ferror(stdin)) {
    snprintf(err, errlen, "standard input: cannot read (%s)", strerror(errno));
    free(b);
    return NULL;
  }
  b[n] = 0;
  *len = n;
  return b;
}

/* Ids "1 2,3\n4" (len bytes) -> *ids; 0, or -1 with err.  Each must be an id of a vocabulary of
 * vocab tokens. */
static int parse_ids(const char *s, size_t len, int vocab, int32_t **ids, size_t *n, char *err, size_t errlen) {
  size_t cap = 0;
  *ids = NULL;
  *n = 0;
  if (strlen(s) != len) {
    snprintf(err, errlen, "expected token ids, got a NUL byte (at %zu)", strlen(s));
    return -1;
  }
  for (const char *p = s;;) {
    while (*p == ' ' || *p == ',' || *p == '\n' || *p == '\t' || *p == '\r') p++;
    if (!*p) return 0;
    const char *q = p + (*p == '-' || *p == '+');
    size_t digits = strspn(q, "0123456789");
    int sep = !q[digits] || strchr(" ,\n\t\r", q[digits]);
    if (!digits || !sep) {
      size_t w = strcspn(p, " ,\n\t\r");
      snprintf(err, errlen, "expected token ids (integers separated by spaces or commas), got `%.*s`",
               (int)(w > 40 ? 40 : w), p);
      return -1;
    }
    errno = 0;
    long long v = strtoll(p, NULL, 10);
    if (*p == '-' || errno || v >= vocab) {
      int w = (int)(q - p) + (digits > 40 ? 40 : (int)digits);
      snprintf(err, errlen, "id %.*s (at %zu) is not in the vocabulary of %d tokens", w, p, *n, vocab);
      return -1;
    }
    if (*n == cap) *ids = rc_realloc(*ids, (cap = cap ? 2 * cap : 64) * sizeof **ids);
    (*ids)[(*n)++] = (int32_t)v;
    p = q + digits;
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
  size_t len = 0;
  char *text = strcmp(argv[k], "-") ? rc_strdup(argv[k]) : read_stdin(&len, err, sizeof err);
  if (!text) {
    fprintf(stderr, "rein tokenize: error: %s\n", err);
    tok_free(tk);
    return 1;
  }
  if (strcmp(argv[k], "-")) len = strlen(text);
  int status = 0;
  if (decode) {
    int32_t *ids;
    size_t n;
    char *s = NULL;
    if (parse_ids(text, len, tok_vocab_size(tk), &ids, &n, err, sizeof err) ||
        !(s = tok_decode(tk, ids, n, no_special, err, sizeof err))) {
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
