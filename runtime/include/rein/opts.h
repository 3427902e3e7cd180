/* rein/opts.h — table-driven command-line options for the `rein` driver's subcommands (rein
 * check, emit, compile, build, eval, model), after the trainer's (runtime/train/trn_opts.c): one
 * table per command gives each option its name, kind, destination, range and help line, and
 * drives both the parsing (getopt_long underneath, so GNU permutation and its messages for
 * unknown options are kept) and the option list of the command's --help.
 *
 * Error convention: a bad value is reported as one line in the caller's (ERR, ERRLEN), which the
 * driver prints as "rein CMD: error: LINE" (or its command's older form); nothing here prints
 * except getopt's own message for an unknown option or a missing argument.
 */
#ifndef REIN_OPTS_H
#define REIN_OPTS_H

#include <stddef.h>
#include <stdio.h>

typedef enum {
  RC_OPT_FLAG, /* no argument: stores VALUE into the int at DST */
  RC_OPT_STR,  /* stores the argument (a pointer into argv) into the const char * at DST */
  RC_OPT_INT,  /* a whole decimal number in [LO, HI] into the int at DST */
  RC_OPT_NUM,  /* a number in [LO, HI] into the double at DST */
  RC_OPT_FN    /* calls FN(DST, argument, err, errlen); FN returns 0, or -1 with ERR */
} RcOptKind;

typedef int (*RcOptFn)(void *dst, const char *arg, char *err, size_t errlen);

typedef struct {
  const char *name;   /* long name without "--", or NULL for a one-letter option only */
  char letter;        /* the one-letter alias (-o), or 0 */
  RcOptKind kind;
  void *dst;
  int value;          /* FLAG: the value stored */
  double lo, hi;      /* INT, NUM: the range */
  RcOptFn fn;         /* FN */
  int *seen;          /* when not NULL, set to 1 when the option is given */
  const char *arg;    /* the argument's name in --help ("N", "FILE"); NULL for a flag */
  const char *help;   /* the help line */
  const char *bad;    /* INT, NUM: the message for a bad value, "--NAME BAD, not `ARG`"; NULL:
                       * "--NAME 'ARG': expected a number in [LO, HI]" */
} RcOpt;

/* A table ends with an entry whose name and letter are both 0.  -h / --help is implicit. */
#define RC_OPTS_END {0}

enum {
  RC_OPTS_HELP = -1,  /* -h or --help was given */
  RC_OPTS_USAGE = -2, /* an unknown option or a missing argument (getopt printed why) */
  RC_OPTS_BAD = -3    /* a bad value: ERR says which */
};

/* Parses the options of ARGV[FIRST..ARGC) against table T (once per process: getopt's state is
 * global).  Operands may come between options; they are moved to the end.  Returns the index of
 * the first operand (the operands are ARGV[ret..ARGC)), or one of RC_OPTS_*. */
int rc_opts_parse(const RcOpt *t, int argc, char **argv, int first, char *err, size_t errlen);

/* Prints "options:" and one line per option of T (and -h, --help) to F. */
void rc_opts_help(FILE *f, const RcOpt *t);

#endif
