/* plot.c — `rein plot`: the training curves of one or more runs, drawn as one SVG file.
 *
 * This file owns the command line; plot_data.c reads the trainer's metrics.jsonl files,
 * plot_agg.c groups runs into lines (seeds averaged into a mean and a band), plot_panel.c draws
 * a panel and plot_svg.c the document.  It is self-contained (libc, libm and jansson only)
 * because it is a reporting tool that runs on a laptop against copied run directories, with no
 * model, task or objective code involved, and because an SVG of a few panels is simpler to write
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
 * Lines.  A run is labelled by RUN=LABEL, else by the name of the directory --group N levels
 * above it, else by its own directory's name (made distinct with "#2", ...).  Runs that share a
 * label given by RUN=LABEL or --group form one line per facet: their per-step mean, drawn over
 * a band (min–max by default, --band std for ±1 standard deviation); --smooth W smooths each
 * run's train points with a centred moving average before averaging, and the unsmoothed mean is
 * drawn faintly behind.
 *
 * Rendering.  One panel per metric in two columns, or, with --facet N, one row per metric and
 * one column per name of the directory N levels above the runs; panels of one metric share
 * their y axis and all panels share the x axis.  Labels take colors from a fixed palette
 * (cycling with a dash pattern after ten), eval points are marked with dots, axes have "nice"
 * 1/2/5 x 10^k ticks, and the legend is at the top.  The SVG is a function of the input alone
 * (no dates, no process ids), so the same runs give the same bytes, and its elements carry
 * class/data- attributes for tests and scripts:
 *     <g class="panel" data-metric="NAME" [data-facet="F"]>
 *       <polygon class="band" data-run="LABEL" ...>        (a line of several runs)
 *       <polyline class="raw" data-run="LABEL" ...>        (a smoothed line's raw mean)
 *       <polyline class="run" data-run="LABEL" data-runs="N" data-step="S..." data-mean="Y..."
 *                 [data-lo="..." data-hi="..." data-n="..."] [data-raw="..."] points=...>
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
  fputs("usage: rein plot RUN[=LABEL]... [-o OUT.svg] [--metric NAME]... [--group N] [--facet N]\n"
        "                 [--band minmax|std|none] [--smooth W] [--x step|time] [--title T]\n"
        "\n"
        "Draws the training curves of the runs as one SVG file (default plot.svg).  RUN is a run\n"
        "directory holding metrics.jsonl, or a .jsonl file.  Runs that share a LABEL (given as\n"
        "RUN=LABEL, or by --group) are drawn as one line: their mean per step over a band.\n"
        "\n",
        f);
}

/* --group N, --facet N: a directory level, 0 (the run's own directory) to 64. */
static int opt_level(void *dst, const char *arg, char *err, size_t errlen) {
  char *end;
  errno = 0;
  long v = strtol(arg, &end, 10);
  if (errno || end == arg || *end || v < 0 || v > 64)
    return snprintf(err, errlen, "expected a directory level from 0 (the run's own) to 64, got '%s'", arg), -1;
  *(long *)dst = v;
  return 0;
}

/* --band minmax|std|none */
static int opt_band(void *dst, const char *arg, char *err, size_t errlen) {
  static const char *const names[] = {[PLOT_BAND_MINMAX] = "minmax", [PLOT_BAND_STD] = "std",
                                      [PLOT_BAND_NONE] = "none"};
  for (int b = 0; b < 3; b++)
    if (!strcmp(arg, names[b])) {
      *(PlotBand *)dst = (PlotBand)b;
      return 0;
    }
  return snprintf(err, errlen, "--band: expected 'minmax', 'std' or 'none', got '%s'", arg), -1;
}

/* Splits operand ARG into the run's path and its LABEL: ARG is a path when it exists as given;
 * otherwise the last '=' whose left side exists splits it, or the first '=' when none does (the
 * path then fails to open, with its name in the message).  *label is NULL without '='. */
static char *split_operand(const char *arg, char **label) {
  struct stat st;
  *label = NULL;
  const char *eq = strchr(arg, '=');
  if (!eq || !stat(arg, &st)) return rc_strdup(arg);
  const char *cut = eq;
  for (const char *q = strrchr(arg, '='); q > arg; q--) {
    if (*q != '=') continue;
    char *left = strndup(arg, (size_t)(q - arg));
    bool exists = left && !stat(left, &st);
    free(left);
    if (exists) {
      cut = q;
      break;
    }
  }
  *label = rc_strdup(cut + 1);
  char *path = rc_realloc(NULL, (size_t)(cut - arg) + 1);
  memcpy(path, arg, (size_t)(cut - arg));
  path[cut - arg] = 0;
  return path;
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
  for (size_t k = 0; k < c->nlines; k++) {
    for (size_t m = 0; c->lines[k].agg && m < c->nmetrics; m++) free(c->lines[k].agg[m].p);
    free(c->lines[k].agg);
    free(c->lines[k].runs);
  }
  free(c->lines);
  for (size_t i = 0; i < c->nlabels; i++) free(c->labels[i]);
  free(c->labels);
  for (size_t i = 0; i < c->nfacets; i++) free(c->facets[i]);
  free(c->facets);
  for (size_t r = 0; r < c->nruns; r++) {
    PlotRun *run = &c->runs[r];
    free((char *)run->arg);
    free(run->facet);
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
  PlotCtx c = {.out = "plot.svg", .smooth = 1, .group_level = -1, .facet_level = -1};
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
       .help = "centred moving average over W points of train curves, raw faint behind (default 1: none)"},
      {.name = "group", .kind = RC_OPT_FN, .dst = &c.group_level, .fn = opt_level, .arg = "N",
       .help = "label runs by the directory N levels up (1: the parent); runs sharing it are averaged"},
      {.name = "facet", .kind = RC_OPT_FN, .dst = &c.facet_level, .fn = opt_level, .arg = "N",
       .help = "one column of panels per directory N levels up, one row per metric"},
      {.name = "band", .kind = RC_OPT_FN, .dst = &c.band, .fn = opt_band, .arg = "minmax|std|none",
       .help = "the band around an averaged line: min-max over runs (default), mean +-1 std, none"},
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
    PlotRun *run = &c.runs[r];
    char *label;
    char *arg = split_operand(argv[first + (int)r], &label);
    run->arg = arg;
    if (label && !*label) {
      plot_error("%s: empty label after '='", argv[first + (int)r]);
      free(label);
      rc = 2;
      goto done;
    }
    run->label = label;
    run->shared_label = label != NULL;
    struct stat st;
    run->is_dir = !stat(arg, &st) && S_ISDIR(st.st_mode);
    size_t n = strlen(arg);
    run->path =
        run->is_dir ? plot_asprintf("%s%smetrics.jsonl", arg, n && arg[n - 1] == '/' ? "" : "/") : rc_strdup(arg);
    run->raw = rc_realloc(NULL, c.nmetrics * sizeof *run->raw);
    memset(run->raw, 0, c.nmetrics * sizeof *run->raw);
    run->series = rc_realloc(NULL, c.nmetrics * sizeof *run->series);
    memset(run->series, 0, c.nmetrics * sizeof *run->series);
  }
  for (size_t r = 0; r < c.nruns; r++) {
    if (!plot_read_run(&c, &c.runs[r])) goto done;
    plot_build_series(&c, &c.runs[r]);
  }
  if (!plot_group_runs(&c)) goto done;
  size_t *pm = rc_realloc(NULL, c.nmetrics * sizeof *pm), np = 0;
  for (size_t m = 0; m < c.nmetrics; m++) {
    bool any = false;
    for (size_t k = 0; k < c.nlines && !any; k++) any = c.lines[k].agg[m].n > 0;
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
