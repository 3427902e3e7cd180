/* plot_panel.c — one panel of `rein plot`: the data ranges the panels share (x across all
 * panels, y across the panels of one metric), "nice" axes, and the panel's bands, faint raw
 * lines, mean lines and eval dots with their class/data- attributes (listed at the top of
 * plot.c).  The colors of the labels live here too.
 */
#define _GNU_SOURCE
#include "plot_internal.h"
#include "rein/common.h"

#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const palette[] = {"#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f",
                                      "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#7f7f7f"};
#define NPALETTE (sizeof palette / sizeof *palette)
static const char *const dashes[] = {NULL, "6 3", "2 2", "8 3 2 3"};
#define NDASHES (sizeof dashes / sizeof *dashes)

const char *plot_color(size_t l) { return palette[l % NPALETTE]; }
const char *plot_dash(size_t l) { return dashes[(l / NPALETTE) % NDASHES]; }

void plot_put_num(FILE *f, double v) {
  char b[32];
  plot_fmt_num(b, sizeof b, 6, v);
  fputs(b, f);
}

/* ---- axes ---------------------------------------------------------------------------------- */

#define MAX_TICKS 16

typedef struct {
  double lo, hi;            /* the axis range */
  double tick[MAX_TICKS];
  char label[MAX_TICKS][32];
  int nticks;
} PlotAxis;

/* The 1/2/5 x 10^k tick step (at least min_step) that covers [lo, hi] with the number of ticks
 * closest to five and the least axis beyond the data (ties: the larger step).  half = hi/2 - lo/2 > 0, finite. */
static double nice_step(double lo, double hi, double half, double min_step) {
  double e0 = pow(10, floor(log10(half / 2.5)));
  double best = 0, best_err = INFINITY;
  for (int d = -1; d <= 1; d++)
    for (int i = 0; i < 3; i++) {
      static const double m[] = {1, 2, 5};
      double st = m[i] * e0 * pow(10, d);
      if (!isfinite(st) || st <= 0 || st < min_step) continue;
      double klo = floor(lo / st), khi = ceil(hi / st);
      /* about five ticks, and little of the axis beyond the data: 0..3000 for data ending at
       * 2400 loses to 0..2500 */
      double err = fabs(khi - klo + 1 - 5) + 2 * (1 - (hi - lo) / ((khi - klo) * st));
      if (isfinite(err) && err <= best_err) best = st, best_err = err;
    }
  if (best > 0) return best;
  return min_step > 0 ? min_step : half;
}

/* Fits an axis to the data range [lo, hi] (finite, lo <= hi): pads a zero-width range, picks a
 * 1/2/5 x 10^k tick step giving about five ticks (at least min_step), and widens the range to
 * whole steps where that stays finite.  Tick labels are %.6g, or more digits when %.6g would
 * print two ticks alike. */
static void fit_axis(PlotAxis *a, double lo, double hi, double min_step) {
  if (lo == hi) { /* a constant series: pad by 10% (one side only where the other overflows) */
    double d = fabs(lo) < 1e-290 ? 1 : fabs(lo) * 0.1;
    if (d < min_step) d = min_step;
    lo = isfinite(lo - d) ? lo - d : lo;
    hi = isfinite(hi + d) ? hi + d : hi;
  }
  double half = hi / 2 - lo / 2; /* finite even when hi - lo is not */
  if (!(half >= 1e-290)) { /* a range in the subnormals: scales and log10 need room */
    lo -= 1;
    hi += 1;
    half = hi / 2 - lo / 2;
  }
  double step = nice_step(lo, hi, half, min_step);
  double klo = floor(lo / step), khi = ceil(hi / step);
  if (!isfinite(klo) || !isfinite(khi)) klo = khi = NAN;
  else if (khi - klo > MAX_TICKS - 1) khi = klo + MAX_TICKS - 1; /* only at the far end of precision */
  a->lo = isfinite(klo * step) && klo * step <= lo ? klo * step : lo;
  a->hi = isfinite(khi * step) && khi * step >= hi ? khi * step : hi;
  a->nticks = 0;
  for (int i = 0; isfinite(klo) && i <= (int)(khi - klo); i++) {
    double t = (klo + i) * step;
    if (isfinite(t) && t >= a->lo && t <= a->hi && !(a->nticks && t == a->tick[a->nticks - 1]))
      a->tick[a->nticks++] = t; /* (equal neighbours only at the far end of precision) */
  }
  for (int prec = 6; prec <= 17; prec++) {
    bool distinct = true;
    for (int i = 0; i < a->nticks; i++) {
      plot_fmt_num(a->label[i], sizeof a->label[i], prec, a->tick[i]);
      if (i && !strcmp(a->label[i], a->label[i - 1])) distinct = false;
    }
    if (distinct) break;
  }
}

/* v's position in [0, len] along the axis (finite for any finite v inside the range). */
static double axis_pos(const PlotAxis *a, double v, double len) {
  return (v / 2 - a->lo / 2) / (a->hi / 2 - a->lo / 2) * len;
}

/* ---- ranges -------------------------------------------------------------------------------- */

/* Whether line l's panel shows a band (several runs, and --band is not none). */
static bool has_band(const PlotCtx *c, const PlotLine *l) { return l->nruns > 1 && c->band != PLOT_BAND_NONE; }

void plot_ranges(const PlotCtx *c, PlotRanges *g) {
  g->xlo = INFINITY, g->xhi = -INFINITY;
  g->ylo = rc_realloc(NULL, c->nmetrics * sizeof *g->ylo);
  g->yhi = rc_realloc(NULL, c->nmetrics * sizeof *g->yhi);
  for (size_t m = 0; m < c->nmetrics; m++) {
    g->ylo[m] = INFINITY, g->yhi[m] = -INFINITY;
    for (size_t k = 0; k < c->nlines; k++) {
      const PlotLine *l = &c->lines[k];
      const PlotAgg *a = &l->agg[m];
      for (size_t i = 0; i < a->n; i++) {
        const PlotAggPt *p = &a->p[i];
        g->xlo = fmin(g->xlo, p->x), g->xhi = fmax(g->xhi, p->x);
        g->ylo[m] = fmin(g->ylo[m], p->mean), g->yhi[m] = fmax(g->yhi[m], p->mean);
        if (has_band(c, l)) g->ylo[m] = fmin(g->ylo[m], p->lo), g->yhi[m] = fmax(g->yhi[m], p->hi);
        if (a->smoothed) g->ylo[m] = fmin(g->ylo[m], p->raw), g->yhi[m] = fmax(g->yhi[m], p->raw);
      }
    }
  }
}

/* ---- one panel ----------------------------------------------------------------------------- */

enum {
  ML = 64, /* plot area margins inside a panel */
  MR = 14,
  MT = 28,
  MB = 36,
};

typedef struct {
  PlotAxis x, y;
  double w, h;
} Frame;

/* One vertex "X,Y" in pixels, to a tenth of a pixel (the long series make most of the file). */
static void put_xy(FILE *f, const Frame *fr, double x, double y) {
  double px = ML + axis_pos(&fr->x, x, fr->w), py = MT + fr->h - axis_pos(&fr->y, y, fr->h);
  px = round(px * 10) / 10 + 0.0, py = round(py * 10) / 10 + 0.0; /* + 0.0: no "-0" */
  fprintf(f, "%.1f,%.1f", px, py);
}

static void put_label_attr(FILE *f, const PlotCtx *c, const PlotLine *l) {
  fputs(" data-run=\"", f);
  plot_xml_text(f, c->labels[l->label]);
  fputc('"', f);
}

enum { F_MEAN, F_LO, F_HI, F_RAW, F_N };

/* name="v v v ...": one field of every point of a, at 7 significant digits. */
static void put_list(FILE *f, const char *name, const PlotAgg *a, int field) {
  fprintf(f, " %s=\"", name);
  for (size_t i = 0; i < a->n; i++) {
    const PlotAggPt *p = &a->p[i];
    char b[32];
    if (i) fputc(' ', f);
    double v = field == F_MEAN ? p->mean : field == F_LO ? p->lo : field == F_HI ? p->hi : field == F_RAW ? p->raw : p->n;
    plot_fmt_num(b, sizeof b, 7, v);
    fputs(b, f);
  }
  fputc('"', f);
}

static void write_axes(FILE *f, const PlotCtx *c, const Frame *fr, const char *metric) {
  fputs("<g class=\"grid\" stroke=\"#e6e6e6\" stroke-width=\"1\">\n", f);
  for (int i = 0; i < fr->x.nticks; i++) {
    double x = ML + axis_pos(&fr->x, fr->x.tick[i], fr->w);
    fputs("<line x1=\"", f);
    plot_put_num(f, x);
    fprintf(f, "\" y1=\"%d\" x2=\"", MT);
    plot_put_num(f, x);
    fprintf(f, "\" y2=\"%g\"/>\n", MT + fr->h);
  }
  for (int i = 0; i < fr->y.nticks; i++) {
    double y = MT + fr->h - axis_pos(&fr->y, fr->y.tick[i], fr->h);
    fprintf(f, "<line x1=\"%d\" y1=\"", ML);
    plot_put_num(f, y);
    fprintf(f, "\" x2=\"%g\" y2=\"", ML + fr->w);
    plot_put_num(f, y);
    fputs("\"/>\n", f);
  }
  fputs("</g>\n", f);
  fprintf(f, "<rect class=\"frame\" x=\"%d\" y=\"%d\" width=\"%g\" height=\"%g\" fill=\"none\" stroke=\"#999\"/>\n",
          ML, MT, fr->w, fr->h);
  fputs("<g class=\"xticks\" text-anchor=\"middle\" fill=\"#333\">\n", f);
  for (int i = 0; i < fr->x.nticks; i++) {
    fputs("<text x=\"", f);
    plot_put_num(f, ML + axis_pos(&fr->x, fr->x.tick[i], fr->w));
    fprintf(f, "\" y=\"%g\">%s</text>\n", MT + fr->h + 15, fr->x.label[i]);
  }
  fputs("</g>\n<g class=\"yticks\" text-anchor=\"end\" fill=\"#333\">\n", f);
  for (int i = 0; i < fr->y.nticks; i++) {
    fprintf(f, "<text x=\"%d\" y=\"", ML - 5);
    plot_put_num(f, MT + fr->h - axis_pos(&fr->y, fr->y.tick[i], fr->h) + 4);
    fprintf(f, "\">%s</text>\n", fr->y.label[i]);
  }
  fputs("</g>\n", f);
  fprintf(f, "<text class=\"xlabel\" x=\"%g\" y=\"%g\" text-anchor=\"middle\" fill=\"#555\">%s</text>\n",
          ML + fr->w / 2, MT + fr->h + 31.0, c->x_time ? "time (s)" : "step");
  fprintf(f, "<text class=\"ylabel\" transform=\"translate(13,%g) rotate(-90)\" text-anchor=\"middle\" "
          "fill=\"#555\">", MT + fr->h / 2);
  plot_xml_text(f, metric);
  fputs("</text>\n", f);
}

void plot_write_panel(FILE *f, const PlotCtx *c, const PlotRanges *g, size_t m, size_t fa, double px,
                      double py) {
  const bool faceted = c->facet_level >= 0;
  fputs("<g class=\"panel\" data-metric=\"", f);
  plot_xml_text(f, c->metrics[m]);
  if (faceted) {
    fputs("\" data-facet=\"", f);
    plot_xml_text(f, c->facets[fa]);
  }
  fputs("\" transform=\"translate(", f);
  plot_put_num(f, px);
  fputc(',', f);
  plot_put_num(f, py);
  fputs(")\">\n", f);
  fprintf(f, "<text class=\"panel-title\" x=\"%d\" y=\"18\" font-size=\"13\" font-weight=\"bold\">", ML);
  if (faceted) {
    plot_xml_text(f, c->facets[fa]);
    fputs(" \xc2\xb7 ", f); /* U+00B7 middle dot */
  }
  plot_xml_text(f, c->metrics[m]);
  fputs("</text>\n", f);
  Frame fr = {.w = PLOT_PANEL_W - ML - MR, .h = PLOT_PANEL_H - MT - MB};
  if (!(g->xlo <= g->xhi) || !(g->ylo[m] <= g->yhi[m])) { /* no point at all (all values null) */
    fprintf(f, "<rect class=\"frame\" x=\"%d\" y=\"%d\" width=\"%g\" height=\"%g\" fill=\"none\" "
            "stroke=\"#999\"/>\n</g>\n", ML, MT, fr.w, fr.h);
    return;
  }
  fit_axis(&fr.x, g->xlo, g->xhi, c->x_time ? 0 : 1);
  fit_axis(&fr.y, g->ylo[m], g->yhi[m], 0);
  write_axes(f, c, &fr, c->metrics[m]);
  /* bands at the back, then the faint raw lines, then the lines and their dots */
  for (size_t k = 0; k < c->nlines; k++) {
    const PlotLine *l = &c->lines[k];
    const PlotAgg *a = &l->agg[m];
    if (l->facet != fa || !a->n || !has_band(c, l)) continue;
    fputs("<polygon class=\"band\"", f);
    put_label_attr(f, c, l);
    fprintf(f, " fill=\"%s\" fill-opacity=\"0.18\" stroke=\"none\" points=\"", plot_color(l->label));
    for (size_t i = 0; i < a->n; i++) {
      if (i) fputc(' ', f);
      put_xy(f, &fr, a->p[i].x, a->p[i].hi);
    }
    for (size_t i = a->n; i-- > 0;) {
      fputc(' ', f);
      put_xy(f, &fr, a->p[i].x, a->p[i].lo);
    }
    fputs("\"/>\n", f);
  }
  for (size_t k = 0; k < c->nlines; k++) {
    const PlotLine *l = &c->lines[k];
    const PlotAgg *a = &l->agg[m];
    if (l->facet != fa || !a->smoothed) continue;
    fputs("<polyline class=\"raw\"", f);
    put_label_attr(f, c, l);
    fprintf(f, " fill=\"none\" stroke=\"%s\" stroke-opacity=\"0.22\" stroke-width=\"0.8\" points=\"",
            plot_color(l->label));
    for (size_t i = 0; i < a->n; i++) {
      if (i) fputc(' ', f);
      put_xy(f, &fr, a->p[i].x, a->p[i].raw);
    }
    fputs("\"/>\n", f);
  }
  for (size_t k = 0; k < c->nlines; k++) {
    const PlotLine *l = &c->lines[k];
    const PlotAgg *a = &l->agg[m];
    if (l->facet != fa || !a->n) continue;
    fputs("<polyline class=\"run\"", f);
    put_label_attr(f, c, l);
    fprintf(f, " data-runs=\"%zu\" data-step=\"", l->nruns);
    for (size_t i = 0; i < a->n; i++) fprintf(f, i ? " %" PRId64 : "%" PRId64, a->p[i].step);
    fputc('"', f);
    put_list(f, "data-mean", a, F_MEAN);
    if (has_band(c, l)) {
      put_list(f, "data-lo", a, F_LO);
      put_list(f, "data-hi", a, F_HI);
    }
    if (l->nruns > 1) put_list(f, "data-n", a, F_N);
    if (a->smoothed) put_list(f, "data-raw", a, F_RAW);
    fprintf(f, " fill=\"none\" stroke=\"%s\"", plot_color(l->label));
    if (plot_dash(l->label)) fprintf(f, " stroke-dasharray=\"%s\"", plot_dash(l->label));
    fputs(" stroke-width=\"1.6\" stroke-linejoin=\"round\" points=\"", f);
    for (size_t i = 0; i < a->n; i++) {
      if (i) fputc(' ', f);
      put_xy(f, &fr, a->p[i].x, a->p[i].mean);
    }
    fputs("\"/>\n", f);
    for (size_t i = 0; i < a->n; i++) {
      if (a->n > 1 && !a->p[i].eval) continue;
      fputs("<circle class=\"point\"", f);
      put_label_attr(f, c, l);
      fputs(" cx=\"", f);
      plot_put_num(f, ML + axis_pos(&fr.x, a->p[i].x, fr.w));
      fputs("\" cy=\"", f);
      plot_put_num(f, MT + fr.h - axis_pos(&fr.y, a->p[i].mean, fr.h));
      fprintf(f, "\" r=\"%s\" fill=\"%s\"/>\n", a->n > 1 ? "2.5" : "3", plot_color(l->label));
    }
  }
  fputs("</g>\n", f);
}
