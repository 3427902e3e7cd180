/* plot_svg.c — the drawing side of `rein plot`: "nice" axes, panels, polylines, the legend and
 * the SVG document (written atomically).  The SVG is a function of the input alone.
 */
#define _GNU_SOURCE
#include "plot_internal.h"
#include "rein/common.h"

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


static const char *const palette[] = {"#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f",
                                      "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#7f7f7f"};
#define NPALETTE (sizeof palette / sizeof *palette)
static const char *const dashes[] = {NULL, "6 3", "2 2", "8 3 2 3"};
#define NDASHES (sizeof dashes / sizeof *dashes)

/* ---- axes ---------------------------------------------------------------------------------- */

#define MAX_TICKS 16

typedef struct {
  double lo, hi;            /* the axis range */
  double tick[MAX_TICKS];
  char label[MAX_TICKS][32];
  int nticks;
} PlotAxis;

/* The 1/2/5 x 10^k tick step (at least min_step) that covers [lo, hi] with the number of ticks
 * closest to five (ties: the larger step).  half = hi/2 - lo/2 > 0, finite. */
static double nice_step(double lo, double hi, double half, double min_step) {
  double e0 = pow(10, floor(log10(half / 2.5)));
  double best = 0, best_err = INFINITY;
  for (int d = -1; d <= 1; d++)
    for (int i = 0; i < 3; i++) {
      static const double m[] = {1, 2, 5};
      double st = m[i] * e0 * pow(10, d);
      if (!isfinite(st) || st <= 0 || st < min_step) continue;
      double err = fabs(ceil(hi / st) - floor(lo / st) + 1 - 5);
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

/* ---- SVG ----------------------------------------------------------------------------------- */

enum {
  PAD = 16,         /* around and between panels */
  PANEL_W = 460,
  PANEL_H = 280,
  ML = 64,          /* plot area margins inside a panel */
  MR = 14,
  MT = 28,
  MB = 36,
  TITLE_H = 30,
  LEGEND_ROW = 20,
  LEGEND_SWATCH = 22,
};
#define CHAR_W 6.8 /* estimated width of one character at font-size 12 */

static void put_num(FILE *f, double v) {
  char b[32];
  plot_fmt_num(b, sizeof b, 6, v);
  fputs(b, f);
}

static void stroke_attrs(FILE *f, size_t run) {
  fprintf(f, " stroke=\"%s\"", palette[run % NPALETTE]);
  const char *d = dashes[(run / NPALETTE) % NDASHES];
  if (d) fprintf(f, " stroke-dasharray=\"%s\"", d);
}

/* The legend's item positions: fills x/y (relative to the legend's origin) and returns the
 * number of rows, wrapping items that would pass `width`. */
static int legend_layout(const PlotCtx *c, double width, double *x, double *y) {
  double cx = 0;
  int row = 0;
  for (size_t i = 0; i < c->nruns; i++) {
    double w = LEGEND_SWATCH + 6 + CHAR_W * (double)plot_text_chars(c->runs[i].label) + 18;
    if (cx > 0 && cx + w > width) {
      cx = 0;
      row++;
    }
    x[i] = cx;
    y[i] = row * LEGEND_ROW;
    cx += w;
  }
  return row + 1;
}

/* Draws panel `m` (metric c->metrics[m]) with its top-left corner at (px, py). */
static void write_panel(FILE *f, const PlotCtx *c, size_t m, double px, double py) {
  double xlo = INFINITY, xhi = -INFINITY, ylo = INFINITY, yhi = -INFINITY;
  for (size_t r = 0; r < c->nruns; r++) {
    const PlotSeries *s = &c->runs[r].series[m];
    for (size_t i = 0; i < s->n; i++) {
      xlo = fmin(xlo, s->p[i].x);
      xhi = fmax(xhi, s->p[i].x);
      ylo = fmin(ylo, s->p[i].y);
      yhi = fmax(yhi, s->p[i].y);
    }
  }
  const double w = PANEL_W - ML - MR, h = PANEL_H - MT - MB;
  fputs("<g class=\"panel\" data-metric=\"", f);
  plot_xml_text(f, c->metrics[m]);
  fputs("\" transform=\"translate(", f);
  put_num(f, px);
  fputc(',', f);
  put_num(f, py);
  fputs(")\">\n", f);
  fprintf(f, "<text class=\"panel-title\" x=\"%d\" y=\"18\" font-size=\"13\" font-weight=\"bold\">", ML);
  plot_xml_text(f, c->metrics[m]);
  fputs("</text>\n", f);
  if (!(xlo <= xhi)) { /* no run has a point here (only with --metric and all values null) */
    fprintf(f, "<rect class=\"frame\" x=\"%d\" y=\"%d\" width=\"%g\" height=\"%g\" fill=\"none\" "
            "stroke=\"#999\"/>\n</g>\n", ML, MT, w, h);
    return;
  }
  PlotAxis ax, ay;
  fit_axis(&ax, xlo, xhi, c->x_time ? 0 : 1);
  fit_axis(&ay, ylo, yhi, 0);
  /* grid */
  fputs("<g class=\"grid\" stroke=\"#e6e6e6\" stroke-width=\"1\">\n", f);
  for (int i = 0; i < ax.nticks; i++) {
    double x = ML + axis_pos(&ax, ax.tick[i], w);
    fputs("<line x1=\"", f);
    put_num(f, x);
    fprintf(f, "\" y1=\"%d\" x2=\"", MT);
    put_num(f, x);
    fprintf(f, "\" y2=\"%g\"/>\n", MT + h);
  }
  for (int i = 0; i < ay.nticks; i++) {
    double y = MT + h - axis_pos(&ay, ay.tick[i], h);
    fprintf(f, "<line x1=\"%d\" y1=\"", ML);
    put_num(f, y);
    fprintf(f, "\" x2=\"%g\" y2=\"", ML + w);
    put_num(f, y);
    fputs("\"/>\n", f);
  }
  fputs("</g>\n", f);
  fprintf(f, "<rect class=\"frame\" x=\"%d\" y=\"%d\" width=\"%g\" height=\"%g\" fill=\"none\" "
          "stroke=\"#999\"/>\n",
          ML, MT, w, h);
  /* tick labels */
  fputs("<g class=\"xticks\" text-anchor=\"middle\" fill=\"#333\">\n", f);
  for (int i = 0; i < ax.nticks; i++) {
    fputs("<text x=\"", f);
    put_num(f, ML + axis_pos(&ax, ax.tick[i], w));
    fprintf(f, "\" y=\"%g\">%s</text>\n", MT + h + 15, ax.label[i]);
  }
  fputs("</g>\n<g class=\"yticks\" text-anchor=\"end\" fill=\"#333\">\n", f);
  for (int i = 0; i < ay.nticks; i++) {
    fprintf(f, "<text x=\"%d\" y=\"", ML - 5);
    put_num(f, MT + h - axis_pos(&ay, ay.tick[i], h) + 4);
    fprintf(f, "\">%s</text>\n", ay.label[i]);
  }
  fputs("</g>\n", f);
  fprintf(f, "<text class=\"xlabel\" x=\"%g\" y=\"%g\" text-anchor=\"end\" fill=\"#666\">%s</text>\n", ML + w,
          MT + h + 30.0, c->x_time ? "time (s)" : "step");
  /* one line per run, eval points (and lone points) as dots */
  for (size_t r = 0; r < c->nruns; r++) {
    const PlotSeries *s = &c->runs[r].series[m];
    if (!s->n) continue;
    fputs("<polyline class=\"run\" data-run=\"", f);
    plot_xml_text(f, c->runs[r].label);
    fputs("\" fill=\"none\"", f);
    stroke_attrs(f, r);
    fputs(" stroke-width=\"1.5\" stroke-linejoin=\"round\" points=\"", f);
    for (size_t i = 0; i < s->n; i++) {
      if (i) fputc(' ', f);
      put_num(f, ML + axis_pos(&ax, s->p[i].x, w));
      fputc(',', f);
      put_num(f, MT + h - axis_pos(&ay, s->p[i].y, h));
    }
    fputs("\"/>\n", f);
    for (size_t i = 0; i < s->n; i++) {
      if (s->n > 1 && s->p[i].kind != KIND_EVAL) continue;
      fputs("<circle class=\"point\" data-run=\"", f);
      plot_xml_text(f, c->runs[r].label);
      fputs("\" cx=\"", f);
      put_num(f, ML + axis_pos(&ax, s->p[i].x, w));
      fputs("\" cy=\"", f);
      put_num(f, MT + h - axis_pos(&ay, s->p[i].y, h));
      fprintf(f, "\" r=\"%s\" fill=\"%s\"/>\n", s->n > 1 ? "2.5" : "3", palette[r % NPALETTE]);
    }
  }
  fputs("</g>\n", f);
}

/* Writes the whole document for the panels `pm[0..np)` (metric ids). */
static void write_svg(FILE *f, const PlotCtx *c, const size_t *pm, size_t np) {
  size_t ncols = np > 1 ? 2 : 1, nrows = (np + ncols - 1) / ncols;
  double width = PAD + (double)ncols * (PANEL_W + PAD);
  double *lx = rc_realloc(NULL, c->nruns * sizeof *lx), *ly = rc_realloc(NULL, c->nruns * sizeof *ly);
  int lrows = legend_layout(c, width - 2 * PAD, lx, ly);
  double top = PAD + (c->title ? TITLE_H : 0);
  double panels_y = top + lrows * LEGEND_ROW + 8;
  double height = panels_y + (double)nrows * (PANEL_H + PAD);
  fputs("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n", f);
  fputs("<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"", f);
  put_num(f, width);
  fputs("\" height=\"", f);
  put_num(f, height);
  fputs("\" viewBox=\"0 0 ", f);
  put_num(f, width);
  fputc(' ', f);
  put_num(f, height);
  fputs("\" font-family=\"Helvetica, Arial, sans-serif\" font-size=\"11\">\n", f);
  if (c->title) {
    fputs("<title>", f);
    plot_xml_text(f, c->title);
    fputs("</title>\n", f);
  }
  fputs("<rect width=\"100%\" height=\"100%\" fill=\"#fff\"/>\n", f);
  if (c->title) {
    fprintf(f, "<text class=\"title\" x=\"%d\" y=\"%d\" font-size=\"16\" font-weight=\"bold\">", PAD,
            PAD + 16);
    plot_xml_text(f, c->title);
    fputs("</text>\n", f);
  }
  fputs("<g class=\"legend\" font-size=\"12\" transform=\"translate(", f);
  put_num(f, PAD);
  fputc(',', f);
  put_num(f, top);
  fputs(")\">\n", f);
  for (size_t r = 0; r < c->nruns; r++) {
    fputs("<g class=\"legend-item\" data-run=\"", f);
    plot_xml_text(f, c->runs[r].label);
    fputs("\"><line x1=\"", f);
    put_num(f, lx[r]);
    fputs("\" y1=\"", f);
    put_num(f, ly[r] + 10);
    fputs("\" x2=\"", f);
    put_num(f, lx[r] + LEGEND_SWATCH);
    fputs("\" y2=\"", f);
    put_num(f, ly[r] + 10);
    fputc('"', f);
    stroke_attrs(f, r);
    fputs(" stroke-width=\"3\"/><text x=\"", f);
    put_num(f, lx[r] + LEGEND_SWATCH + 6);
    fputs("\" y=\"", f);
    put_num(f, ly[r] + 14);
    fputs("\">", f);
    plot_xml_text(f, c->runs[r].label);
    fputs("</text></g>\n", f);
  }
  fputs("</g>\n", f);
  free(lx);
  free(ly);
  for (size_t i = 0; i < np; i++)
    write_panel(f, c, pm[i], PAD + (double)(i % ncols) * (PANEL_W + PAD),
                panels_y + (double)(i / ncols) * (PANEL_H + PAD));
  fputs("</svg>\n", f);
}

/* Writes the SVG to c->out through a temporary file in the same directory and rename(), so an
 * existing file is replaced whole or not at all.  Returns false after printing the error. */
bool plot_write_output(const PlotCtx *c, const size_t *pm, size_t np) {
  char *tmp = plot_asprintf("%s.tmp.%ld", c->out, (long)getpid());
  FILE *f = fopen(tmp, "w");
  if (!f) {
    plot_error("%s: cannot write: %s", tmp, strerror(errno));
    free(tmp);
    return false;
  }
  write_svg(f, c, pm, np);
  int err = ferror(f) ? (errno ? errno : EIO) : 0;
  if (fclose(f) && !err) err = errno ? errno : EIO;
  if (!err && rename(tmp, c->out)) err = errno;
  if (err) {
    plot_error("%s: cannot write: %s", c->out, strerror(err));
    unlink(tmp);
  }
  free(tmp);
  return !err;
}

