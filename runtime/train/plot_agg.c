/* plot_agg.c — how `rein plot` turns runs into drawn lines: each run's label and facet (from
 * RUN=LABEL, the run's directory name, or the name of a directory above it with --group /
 * --facet), the lines (the runs of one facet that share a label), and each line's per-step
 * mean and band over its runs.
 *
 * A line's point at step s averages the runs of the line that have a finite value of the metric
 * at s (after each run's own smoothing), so a run that stopped early or skipped an evaluation
 * simply does not count there; the point records how many did (PlotAggPt.n).  The band is the
 * minimum and maximum of those values, or the mean ± one population standard deviation
 * (divided by n, not n - 1) with --band std.  The raw mean is the same average of the values
 * as logged, drawn faintly behind a smoothed line.
 */
#define _GNU_SOURCE
#include "plot_internal.h"
#include "rein/common.h"

#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* ---- names from paths ---------------------------------------------------------------------- */

/* The names of the path P from the run upwards into names[0..*n) (rc_malloc'd, each and the
 * array): [0] the run — a directory's name, a file's name without ".jsonl", or, for a file named
 * metrics.jsonl, its directory's name — then each directory above it.  "." and ".." stay as
 * they are (the caller resolves them). */
static char **path_names(const char *p, bool is_dir, size_t *n) {
  char *s = rc_strdup(p);
  size_t cap = 8, k = 0;
  char **v = rc_realloc(NULL, cap * sizeof *v);
  for (char *save = NULL, *tok = strtok_r(s, "/", &save); tok; tok = strtok_r(NULL, "/", &save)) {
    if (k == cap) v = rc_realloc(v, (cap *= 2) * sizeof *v);
    v[k++] = rc_strdup(tok);
  }
  free(s);
  if (!is_dir && k && !strcmp(v[k - 1], "metrics.jsonl")) free(v[--k]);
  else if (!is_dir && k) {
    size_t ln = strlen(v[k - 1]);
    if (ln > 6 && !strcmp(v[k - 1] + ln - 6, ".jsonl")) v[k - 1][ln - 6] = 0;
  }
  for (size_t i = 0; i < k / 2; i++) { /* upwards from the run */
    char *t = v[i];
    v[i] = v[k - 1 - i];
    v[k - 1 - i] = t;
  }
  *n = k;
  return v;
}

static void free_names(char **v, size_t n) {
  for (size_t i = 0; i < n; i++) free(v[i]);
  free(v);
}

/* Whether names[0..=level] exist and none is "." or "..". */
static bool names_usable(char **v, size_t n, long level) {
  if ((size_t)level >= n) return false;
  for (long i = 0; i <= level; i++)
    if (!strcmp(v[i], ".") || !strcmp(v[i], "..")) return false;
  return true;
}

bool plot_level_name(const PlotRun *r, long level, char **name) {
  size_t n;
  char **v = path_names(r->arg, r->is_dir, &n);
  if (!names_usable(v, n, level)) { /* "runs/../x", ".", or too few names: the absolute path */
    free_names(v, n);
    char *real = realpath(r->arg, NULL);
    v = path_names(real ? real : r->arg, r->is_dir, &n);
    free(real);
  }
  bool ok = names_usable(v, n, level);
  if (ok) *name = rc_strdup(v[level]);
  else if (level == 0) *name = rc_strdup("/"); /* the root directory itself */
  else plot_error("%s: no directory %ld level%s above the run", r->arg, level, level == 1 ? "" : "s");
  free_names(v, n);
  return ok || level == 0;
}

/* ---- labels, facets, lines ----------------------------------------------------------------- */

/* The index of S in v[0..*n), appended when absent. */
static size_t intern(char ***v, size_t *n, const char *s) {
  for (size_t i = 0; i < *n; i++)
    if (!strcmp((*v)[i], s)) return i;
  *v = rc_realloc(*v, (*n + 1) * sizeof **v);
  (*v)[*n] = rc_strdup(s);
  return (*n)++;
}

/* A run's own label (its directory's name) made distinct from every label before it and from
 * every shared label: "NAME#2", "NAME#3", ... — two runs that merely share a directory name are
 * not seeds of one thing. */
static void dedup_own_labels(PlotCtx *c) {
  for (size_t i = 0; i < c->nruns; i++) {
    PlotRun *r = &c->runs[i];
    if (r->shared_label) continue;
    char *cand = rc_strdup(r->label);
    for (int k = 2;; k++) {
      bool clash = false;
      for (size_t j = 0; j < c->nruns && !clash; j++)
        clash = j != i && (j < i || c->runs[j].shared_label) && !strcmp(c->runs[j].label, cand);
      if (!clash) break;
      free(cand);
      cand = plot_asprintf("%s#%d", r->label, k);
    }
    free(r->label);
    r->label = cand;
  }
}

typedef struct {
  int64_t step;
  size_t run; /* position among the line's runs */
  double x, y, raw;
  int kind;
} AggIn;

static int cmp_in(const void *a, const void *b) {
  const AggIn *p = a, *q = b;
  if (p->step != q->step) return p->step < q->step ? -1 : 1;
  return p->run < q->run ? -1 : p->run > q->run;
}

static int cmp_out(const void *a, const void *b) {
  const PlotAggPt *p = a, *q = b;
  if (p->x != q->x) return p->x < q->x ? -1 : 1;
  return p->step < q->step ? -1 : p->step > q->step;
}

/* The per-step mean, band and raw mean of metric m over line l's runs. */
static void aggregate(const PlotCtx *c, PlotLine *l, size_t m) {
  size_t total = 0;
  for (size_t k = 0; k < l->nruns; k++) total += c->runs[l->runs[k]].series[m].n;
  AggIn *in = rc_realloc(NULL, (total ? total : 1) * sizeof *in);
  size_t ni = 0;
  for (size_t k = 0; k < l->nruns; k++) {
    const PlotSeries *s = &c->runs[l->runs[k]].series[m];
    for (size_t i = 0; i < s->n; i++) in[ni++] = (AggIn){s->p[i].step, k, s->p[i].x, s->p[i].y, s->p[i].raw, s->p[i].kind};
  }
  if (ni > 1) qsort(in, ni, sizeof *in, cmp_in);
  PlotAgg *a = &l->agg[m];
  a->p = rc_realloc(NULL, (ni ? ni : 1) * sizeof *a->p);
  a->n = 0;
  a->smoothed = false;
  for (size_t i = 0; i < ni;) {
    size_t j = i;
    double sx = 0, sy = 0, sr = 0, lo = INFINITY, hi = -INFINITY;
    bool eval = false;
    for (; j < ni && in[j].step == in[i].step; j++) {
      sx += in[j].x, sy += in[j].y, sr += in[j].raw;
      lo = fmin(lo, in[j].y), hi = fmax(hi, in[j].y);
      eval |= in[j].kind == KIND_EVAL;
    }
    double n = (double)(j - i), mean = sy / n;
    if (c->band == PLOT_BAND_STD) {
      double ss = 0;
      for (size_t k = i; k < j; k++) ss += (in[k].y - mean) * (in[k].y - mean);
      double sd = sqrt(ss / n);
      lo = mean - sd, hi = mean + sd;
    }
    PlotAggPt pt = {sx / n, in[i].step, mean, lo, hi, sr / n, (int)(j - i), eval};
    if (isfinite(pt.x) && isfinite(pt.mean) && isfinite(pt.lo) && isfinite(pt.hi) && isfinite(pt.raw)) {
      a->p[a->n++] = pt;
      a->smoothed |= pt.mean != pt.raw;
    }
    i = j;
  }
  free(in);
  if (a->n > 1) qsort(a->p, a->n, sizeof *a->p, cmp_out);
}

bool plot_group_runs(PlotCtx *c) {
  for (size_t i = 0; i < c->nruns; i++) {
    PlotRun *r = &c->runs[i];
    if (!r->label) {
      long level = c->group_level >= 0 ? c->group_level : 0;
      if (!plot_level_name(r, level, &r->label)) return false;
      r->shared_label = c->group_level >= 0;
    }
    if (c->facet_level >= 0 && !plot_level_name(r, c->facet_level, &r->facet)) return false;
  }
  dedup_own_labels(c);
  for (size_t i = 0; i < c->nruns; i++) {
    const PlotRun *r = &c->runs[i];
    size_t la = intern(&c->labels, &c->nlabels, r->label);
    size_t fa = intern(&c->facets, &c->nfacets, r->facet ? r->facet : "");
    size_t k = 0;
    while (k < c->nlines && !(c->lines[k].label == la && c->lines[k].facet == fa)) k++;
    if (k == c->nlines) {
      c->lines = rc_realloc(c->lines, (c->nlines + 1) * sizeof *c->lines);
      c->lines[c->nlines++] = (PlotLine){.label = la, .facet = fa};
    }
    PlotLine *l = &c->lines[k];
    l->runs = rc_realloc(l->runs, (l->nruns + 1) * sizeof *l->runs);
    l->runs[l->nruns++] = i;
  }
  for (size_t k = 0; k < c->nlines; k++) {
    PlotLine *l = &c->lines[k];
    l->agg = rc_realloc(NULL, c->nmetrics * sizeof *l->agg);
    for (size_t m = 0; m < c->nmetrics; m++) aggregate(c, l, m);
  }
  return true;
}
