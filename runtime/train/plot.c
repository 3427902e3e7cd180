/* plot.c — `rein plot`: the training curves of one or more runs, drawn as one SVG file.
 *
 * This file owns the command line; plot_data.c reads the trainer's metrics.jsonl files and
 * plot_svg.c renders.  It is self-contained (libc, libm and jansson only) because it is a
 * reporting tool that runs on a laptop against copied run directories, with no model, task or
 * objective code involved, and because an SVG made of a few dozen elements is simpler to write
 * by hand than to get from a plotting dependency.
 *
 * Reading.  Every line is a JSON object with "kind" ("train" / "eval"; absent means train, any
 * other kind is ignored), an integer "step", a "time" in seconds and flat numeric fields.  Only
 * the fields that will be plotted are kept.  When a (kind, step) pair appears twice (a resumed
 * run logs the steps after its checkpoint again) the later line replaces the earlier one whole.
 * Null values are skipped, and so are Python's NaN / Infinity tokens, which jansson would
 * otherwise reject.  An unparsable last line without its newline is a line the trainer is
 * still writing: it is skipped with a warning, so that a live run can be plotted.
 *
 * Rendering.  One panel per metric in a grid of two columns, one polyline per run per panel
 * (the runs' colors from a fixed palette, cycling with a dash pattern after ten runs), eval
 * points marked with dots, axes with "nice" 1/2/5 x 10^k ticks, and the legend at the top.  The
 * SVG is a function of the input alone (no dates, no process ids), so the same runs give the
 * same bytes, and panels and lines carry class/data- attributes for tests and scripts:
 *     <g class="panel" data-metric="NAME">  <polyline class="run" data-run="LABEL" points=...>
 */
#define _GNU_SOURCE
#include "rein/plot.h"
#include "plot_internal.h"
#include "rein/common.h"
#include "rein/opts.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

/* ---- command ------------------------------------------------------------------------------- */

static void usage(FILE *f) {
  fputs("usage: rein plot RUN... [-o OUT.svg] [--metric NAME]... [--x step|time] [--smooth W] [--title T]\n"
        "\n"
        "Draws the training curves of the runs as one SVG file (default plot.svg).  RUN is a run\n"
        "directory holding metrics.jsonl, or a .jsonl file.\n"
        "\n",
        f);
}

/* --metric NAME: one more panel (a repeat is ignored). */
static int opt_metric(void *dst, const char *arg, char *err, size_t errlen) {
  (void)err, (void)errlen;
  PlotCtx *c = dst;
  bool dup = false;
  for (size_t k = 0; k < c->nmetrics; k++) dup |= !strcmp(c->metrics[k], arg);
  if (!dup) c->metrics[c->nmetrics++] = arg;
  c->explicit_metrics = true;
  return 0;
}

/* --x step|time */
static int opt_x(void *dst, const char *arg, char *err, size_t errlen) {
  if (strcmp(arg, "step") && strcmp(arg, "time"))
    return snprintf(err, errlen, "--x: expected 'step' or 'time', got '%s'", arg), -1;
  *(bool *)dst = !strcmp(arg, "time");
  return 0;
}

/* --smooth W */
static int opt_smooth(void *dst, const char *arg, char *err, size_t errlen) {
  char *end;
  errno = 0;
  long w = strtol(arg, &end, 10);
  if (errno || end == arg || *end || w < 1 || w > 1000000)
    return snprintf(err, errlen, "--smooth: expected a whole number of points from 1 to 1000000, got '%s'", arg), -1;
  *(long *)dst = w;
  return 0;
}

static void free_ctx(PlotCtx *c) {
  for (size_t r = 0; r < c->nruns; r++) {
    PlotRun *run = &c->runs[r];
    for (size_t m = 0; run->raw && m < c->nmetrics; m++) free(run->raw[m].p);
    for (size_t m = 0; run->series && m < c->nmetrics; m++) free(run->series[m].p);
    free(run->raw);
    free(run->series);
    free(run->recs);
    free(run->label);
    free(run->path);
  }
  free(c->runs);
  free(c->metrics);
}

int plot_main(int argc, char **argv) {
  PlotCtx c = {.out = "plot.svg", .smooth = 1};
  const size_t ndefault = plot_ndefault_metrics;
  c.metrics = rc_realloc(NULL, ((size_t)argc + ndefault) * sizeof *c.metrics);
  const RcOpt t[] = {
      {.name = "output", .letter = 'o', .kind = RC_OPT_STR, .dst = &c.out, .arg = "OUT.svg",
       .help = "where to write (replaced whole, through a temporary file)"},
      {.name = "metric", .kind = RC_OPT_FN, .dst = &c, .fn = opt_metric, .arg = "NAME",
       .help = "a panel for NAME (repeatable; default: the common metrics some run has)"},
      {.name = "x", .kind = RC_OPT_FN, .dst = &c.x_time, .fn = opt_x, .arg = "step|time",
       .help = "the x axis: the step (default), or seconds since the run started"},
      {.name = "smooth", .kind = RC_OPT_FN, .dst = &c.smooth, .fn = opt_smooth, .arg = "W",
       .help = "trailing mean over W points of train curves (default 1: none)"},
      {.name = "title", .kind = RC_OPT_STR, .dst = &c.title, .arg = "T", .help = "a title above the legend"},
      RC_OPTS_END};
  int rc = 2;
  char err[512];
  int first = rc_opts_parse(t, argc, argv, 1, err, sizeof err);
  if (first == RC_OPTS_HELP) {
    usage(stdout);
    rc_opts_help(stdout, t);
    rc = 0;
    goto done;
  }
  if (first == RC_OPTS_USAGE) {
    usage(stderr);
    goto done;
  }
  if (first == RC_OPTS_BAD) {
    plot_error("%s", err);
    goto done;
  }
  if (first >= argc) {
    plot_error("no runs given");
    usage(stderr);
    goto done;
  }
  if (!*c.out) {
    plot_error("-o: empty output path");
    goto done;
  }
  rc = 1;
  if (!c.explicit_metrics)
    for (size_t k = 0; k < ndefault; k++)
      c.metrics[c.nmetrics++] = plot_default_metrics[k];
  c.nruns = (size_t)(argc - first);
  c.runs = rc_realloc(NULL, c.nruns * sizeof *c.runs);
  memset(c.runs, 0, c.nruns * sizeof *c.runs);
  for (size_t r = 0; r < c.nruns; r++) {
    const char *arg = argv[first + (int)r];
    struct stat st;
    bool is_dir = !stat(arg, &st) && S_ISDIR(st.st_mode);
    size_t n = strlen(arg);
    c.runs[r].path =
        is_dir ? plot_asprintf("%s%smetrics.jsonl", arg, n && arg[n - 1] == '/' ? "" : "/") : rc_strdup(arg);
    c.runs[r].label = plot_run_label(arg, is_dir);
    c.runs[r].raw = rc_realloc(NULL, c.nmetrics * sizeof *c.runs[r].raw);
    memset(c.runs[r].raw, 0, c.nmetrics * sizeof *c.runs[r].raw);
    c.runs[r].series = rc_realloc(NULL, c.nmetrics * sizeof *c.runs[r].series);
    memset(c.runs[r].series, 0, c.nmetrics * sizeof *c.runs[r].series);
  }
  for (size_t r = 0; r < c.nruns; r++) {
    if (!plot_read_run(&c, &c.runs[r])) goto done;
    plot_build_series(&c, &c.runs[r]);
  }
  plot_dedup_labels(&c);
  size_t *pm = rc_realloc(NULL, c.nmetrics * sizeof *pm), np = 0;
  for (size_t m = 0; m < c.nmetrics; m++) {
    bool any = false;
    for (size_t r = 0; r < c.nruns && !any; r++) any = c.runs[r].series[m].n > 0;
    if (any) pm[np++] = m;
    else if (c.explicit_metrics) {
      plot_error("no run has metric '%s'", c.metrics[m]);
      free(pm);
      goto done;
    }
  }
  if (!np) {
    plot_error("no run has any of the default metrics (reward_mean, eval_accuracy, accuracy, loss, ...); "
         "choose with --metric NAME");
    free(pm);
    goto done;
  }
  if (plot_write_output(&c, pm, np)) rc = 0;
  free(pm);
done:
  free_ctx(&c);
  return rc;
}
