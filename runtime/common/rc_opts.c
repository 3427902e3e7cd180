/* rc_opts.c — the table-driven option parser of the driver's subcommands (rein/opts.h): builds
 * getopt_long's tables from an RcOpt table, stores each value by its kind, and prints the table
 * as help.
 */
#include "rein/opts.h"

#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "rein/common.h"

static int rc_opts_count(const RcOpt *t) {
  int n = 0;
  while (t[n].name || t[n].letter) n++;
  return n;
}

/* The getopt code of entry I: its letter, or 256 + I for a long-only option. */
static int rc_opts_code(const RcOpt *t, int i) { return t[i].letter ? t[i].letter : 256 + i; }

/* Stores ARG into entry P; 0, or -1 with ERR. */
static int rc_opts_store(const RcOpt *p, const char *arg, char *err, size_t errlen) {
  char *end;
  char name[64];
  if (p->name) snprintf(name, sizeof name, "--%s", p->name);
  else snprintf(name, sizeof name, "-%c", p->letter);
  if (p->seen) *p->seen = 1;
  switch (p->kind) {
  case RC_OPT_FLAG: *(int *)p->dst = p->value; return 0;
  case RC_OPT_STR: *(const char **)p->dst = arg; return 0;
  case RC_OPT_FN: return p->fn(p->dst, arg, err, errlen);
  case RC_OPT_INT: {
    errno = 0;
    long v = strtol(arg, &end, 10);
    if (*arg && !*end && !errno && v >= p->lo && v <= p->hi) {
      *(int *)p->dst = (int)v;
      return 0;
    }
    if (p->bad) snprintf(err, errlen, "%s %s, not `%s`", name, p->bad, arg);
    else snprintf(err, errlen, "%s '%s': expected an integer in [%.0f, %.0f]", name, arg, p->lo, p->hi);
    return -1;
  }
  case RC_OPT_NUM: {
    errno = 0;
    double v = strtod(arg, &end);
    if (end != arg && !*end && !errno && v >= p->lo && v <= p->hi) {
      *(double *)p->dst = v;
      return 0;
    }
    if (p->bad) snprintf(err, errlen, "%s %s, not `%s`", name, p->bad, arg);
    else snprintf(err, errlen, "%s '%s': expected a number in [%g, %g]", name, arg, p->lo, p->hi);
    return -1;
  }
  }
  return -1;
}

int rc_opts_parse(const RcOpt *t, int argc, char **argv, int first, char *err, size_t errlen) {
  int n = rc_opts_count(t);
  struct option *lo = rc_calloc((size_t)n + 2, sizeof *lo);
  char *so = rc_calloc((size_t)n * 2 + 3, 1);
  int nl = 0, ns = 0;
  so[ns++] = 'h';
  for (int i = 0; i < n; i++) {
    int has_arg = t[i].kind == RC_OPT_FLAG ? no_argument : required_argument;
    if (t[i].name) lo[nl++] = (struct option){t[i].name, has_arg, NULL, rc_opts_code(t, i)};
    if (t[i].letter) {
      so[ns++] = t[i].letter;
      if (has_arg == required_argument) so[ns++] = ':';
    }
  }
  lo[nl++] = (struct option){"help", no_argument, NULL, 'h'};
  optind = first;
  int c, ret = 0;
  while (ret == 0 && (c = getopt_long(argc, argv, so, lo, NULL)) != -1) {
    if (c == 'h') ret = RC_OPTS_HELP;
    else if (c == '?' || c == ':') ret = RC_OPTS_USAGE;
    else {
      int i = 0;
      while (i < n && rc_opts_code(t, i) != c) i++;
      if (i == n) ret = RC_OPTS_USAGE;
      else if (rc_opts_store(&t[i], optarg, err, errlen)) ret = RC_OPTS_BAD;
    }
  }
  free(lo);
  free(so);
  return ret ? ret : optind;
}

void rc_opts_help(FILE *f, const RcOpt *t) {
  fprintf(f, "options:\n");
  for (int i = 0; t[i].name || t[i].letter; i++) {
    char head[80];
    int k = 0;
    if (t[i].letter) k += snprintf(head + k, sizeof head - (size_t)k, "-%c%s", t[i].letter, t[i].name ? ", " : "");
    if (t[i].name) k += snprintf(head + k, sizeof head - (size_t)k, "--%s", t[i].name);
    if (t[i].arg) snprintf(head + k, sizeof head - (size_t)k, " %s", t[i].arg);
    fprintf(f, "  %-24s %s\n", head, t[i].help ? t[i].help : "");
  }
  fprintf(f, "  %-24s %s\n", "-h, --help", "show this help");
}
