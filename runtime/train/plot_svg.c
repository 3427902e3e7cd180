/* plot_svg.c — the document of `rein plot`: the layout of the panels (a grid of two columns, or
 * one row per metric and one column per facet), the title, the legend (one entry per label, and
 * a note saying what lines, bands and faint lines are), and the atomic write of the file.  The
 * SVG is a function of the input alone.
 */
#define _GNU_SOURCE
#include "plot_internal.h"
#include "rein/common.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- SVG ----------------------------------------------------------------------------------- */

enum {
  TITLE_H = 30,
  LEGEND_ROW = 20,
  LEGEND_SWATCH = 22,
};
#define PAD PLOT_PAD
#define CHAR_W 6.8 /* estimated width of one character at font-size 12 */

/* The legend's item positions: fills x/y (relative to the legend's origin) and returns the
 * number of rows, wrapping items that would pass `width`. */
static int legend_layout(const PlotCtx *c, double width, double *x, double *y) {
  double cx = 0;
  int row = 0;
  for (size_t i = 0; i < c->nlabels; i++) {
    double w = LEGEND_SWATCH + 6 + CHAR_W * (double)plot_text_chars(c->labels[i]) + 18;
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

/* The legend's note on what is drawn, or NULL when there is nothing to say (rc_malloc'd). */
static char *legend_note(const PlotCtx *c) {
  bool averaged = false, band = false;
  for (size_t k = 0; k < c->nlines; k++) averaged |= c->lines[k].nruns > 1;
  band = averaged && c->band != PLOT_BAND_NONE;
  char *avg = !averaged ? rc_strdup("")
              : plot_asprintf("line: mean over the runs sharing a label%s", !band ? ""
                              : c->band == PLOT_BAND_STD ? "; band: mean \xc2\xb1 1 std over them"
                                                          : "; band: min\xe2\x80\x93max over them");
  char *sm = c->smooth > 1 ? plot_asprintf("train values: centred moving average over %ld steps, raw faint behind",
                                           c->smooth)
                           : rc_strdup("");
  char *note = *avg || *sm ? plot_asprintf("%s%s%s", avg, *avg && *sm ? "; " : "", sm) : NULL;
  free(avg);
  free(sm);
  return note;
}

/* Writes the whole document for the panels `pm[0..np)` (metric ids). */
static void write_svg(FILE *f, const PlotCtx *c, const size_t *pm, size_t np) {
  const bool faceted = c->facet_level >= 0;
  size_t ncols = faceted ? c->nfacets : np > 1 ? 2 : 1;
  size_t npanels = faceted ? np * c->nfacets : np, nrows = (npanels + ncols - 1) / ncols;
  double width = PAD + (double)ncols * (PLOT_PANEL_W + PAD);
  double *lx = rc_realloc(NULL, c->nlabels * sizeof *lx), *ly = rc_realloc(NULL, c->nlabels * sizeof *ly);
  int lrows = legend_layout(c, width - 2 * PAD, lx, ly);
  char *note = legend_note(c);
  double top = PAD + (c->title ? TITLE_H : 0);
  double panels_y = top + (lrows + (note ? 1 : 0)) * LEGEND_ROW + 8;
  double height = panels_y + (double)nrows * (PLOT_PANEL_H + PAD);
  fputs("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n", f);
  fputs("<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"", f);
  plot_put_num(f, width);
  fputs("\" height=\"", f);
  plot_put_num(f, height);
  fputs("\" viewBox=\"0 0 ", f);
  plot_put_num(f, width);
  fputc(' ', f);
  plot_put_num(f, height);
  fputs("\" font-family=\"Helvetica, Arial, sans-serif\" font-size=\"11\">\n", f);
  if (c->title) {
    fputs("<title>", f);
    plot_xml_text(f, c->title);
    fputs("</title>\n", f);
  }
  fputs("<rect width=\"100%\" height=\"100%\" fill=\"#fff\"/>\n", f);
  if (c->title) {
    fprintf(f, "<text class=\"title\" x=\"%d\" y=\"%d\" font-size=\"16\" font-weight=\"bold\">", PAD, PAD + 16);
    plot_xml_text(f, c->title);
    fputs("</text>\n", f);
  }
  fputs("<g class=\"legend\" font-size=\"12\" transform=\"translate(", f);
  plot_put_num(f, PAD);
  fputc(',', f);
  plot_put_num(f, top);
  fputs(")\">\n", f);
  for (size_t l = 0; l < c->nlabels; l++) {
    fputs("<g class=\"legend-item\" data-run=\"", f);
    plot_xml_text(f, c->labels[l]);
    fputs("\">", f);
    bool banded = false;
    for (size_t k = 0; k < c->nlines; k++)
      banded |= c->lines[k].label == l && c->lines[k].nruns > 1 && c->band != PLOT_BAND_NONE;
    if (banded) { /* the band's color behind the line's, where this label has a band */
      fputs("<rect x=\"", f);
      plot_put_num(f, lx[l]);
      fputs("\" y=\"", f);
      plot_put_num(f, ly[l] + 4);
      fprintf(f, "\" width=\"%d\" height=\"12\" fill=\"%s\" fill-opacity=\"0.18\"/>", LEGEND_SWATCH,
              plot_color(l));
    }
    fputs("<line x1=\"", f);
    plot_put_num(f, lx[l]);
    fputs("\" y1=\"", f);
    plot_put_num(f, ly[l] + 10);
    fputs("\" x2=\"", f);
    plot_put_num(f, lx[l] + LEGEND_SWATCH);
    fputs("\" y2=\"", f);
    plot_put_num(f, ly[l] + 10);
    fprintf(f, "\" stroke=\"%s\"", plot_color(l));
    if (plot_dash(l)) fprintf(f, " stroke-dasharray=\"%s\"", plot_dash(l));
    fputs(" stroke-width=\"3\"/><text x=\"", f);
    plot_put_num(f, lx[l] + LEGEND_SWATCH + 6);
    fputs("\" y=\"", f);
    plot_put_num(f, ly[l] + 14);
    fputs("\">", f);
    plot_xml_text(f, c->labels[l]);
    fputs("</text></g>\n", f);
  }
  if (note) {
    fprintf(f, "<text class=\"legend-note\" x=\"0\" y=\"%d\" font-size=\"11\" fill=\"#555\">", lrows * LEGEND_ROW + 12);
    plot_xml_text(f, note);
    fputs("</text>\n", f);
  }
  fputs("</g>\n", f);
  free(note);
  free(lx);
  free(ly);
  PlotRanges g;
  plot_ranges(c, &g);
  for (size_t i = 0; i < npanels; i++) {
    size_t m = faceted ? pm[i / ncols] : pm[i], fa = faceted ? i % ncols : 0;
    plot_write_panel(f, c, &g, m, fa, PAD + (double)(i % ncols) * (PLOT_PANEL_W + PAD),
                     panels_y + (double)(i / ncols) * (PLOT_PANEL_H + PAD));
  }
  free(g.ylo);
  free(g.yhi);
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

