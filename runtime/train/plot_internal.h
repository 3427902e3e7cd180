/* plot_internal.h — what the files of `rein plot` share: the runs' data as read from
 * metrics.jsonl (plot_data.c), the lines the runs are grouped into and their per-step mean and
 * band (plot_agg.c), the options, and the functions the command (plot.c) calls to read, group
 * and draw (plot_svg.c for the document, plot_panel.c for one panel).
 */
#ifndef REIN_PLOT_INTERNAL_H
#define REIN_PLOT_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

enum { KIND_TRAIN = 0, KIND_EVAL = 1 };

/* The band drawn around a line that averages several runs. */
typedef enum { PLOT_BAND_MINMAX, PLOT_BAND_STD, PLOT_BAND_NONE } PlotBand;

typedef struct {
  int64_t step;
  double time; /* NAN when absent or null */
  int kind;
  bool dead;   /* replaced by a later line with the same kind and step */
} PlotRec;

typedef struct {
  int64_t step;
  size_t rec; /* index into PlotRun.recs; increases with the line number */
  double v;
} PlotRaw;

typedef struct {
  PlotRaw *p;
  size_t n, cap;
} PlotRawVec;

/* One point of one run's series: y smoothed (train points, --smooth), raw as logged. */
typedef struct {
  double x, y, raw;
  int64_t step;
  int kind;
} PlotPt;

typedef struct {
  PlotPt *p; /* sorted by x, one point per step */
  size_t n;
} PlotSeries;

typedef struct {
  const char *arg;    /* the RUN operand, without "=LABEL" */
  bool is_dir;
  char *path;         /* the file read, as named in messages */
  char *label;        /* the legend label */
  bool shared_label;  /* from RUN=LABEL or --group: runs with this label are averaged */
  char *facet;        /* the --facet name, or NULL */
  PlotRec *recs;
  size_t nrec, caprec;
  PlotRawVec *raw;    /* one per candidate metric */
  PlotSeries *series; /* one per candidate metric */
} PlotRun;

/* One step of a line: over the line's runs that have a finite value there, the mean of their
 * (smoothed) values, the band around it, and the mean of their raw values. */
typedef struct {
  double x; /* the mean of the runs' x at this step (the step itself with --x step) */
  int64_t step;
  double mean, lo, hi, raw;
  int n;    /* the runs averaged */
  bool eval; /* some run's point here came from an eval line */
} PlotAggPt;

typedef struct {
  PlotAggPt *p; /* sorted by x */
  size_t n;
  bool smoothed; /* some point's mean differs from its raw mean (draw the raw line) */
} PlotAgg;

/* One drawn line: the runs of one facet that share a label. */
typedef struct {
  size_t label; /* index into PlotCtx.labels: the color and the legend entry */
  size_t facet; /* index into PlotCtx.facets: the column of panels */
  size_t *runs;
  size_t nruns;
  PlotAgg *agg; /* one per candidate metric */
} PlotLine;

typedef struct {
  const char *out;
  const char *title;
  bool x_time;
  long smooth;
  PlotBand band;
  long group_level; /* --group N, or -1 */
  long facet_level; /* --facet N, or -1 */
  bool explicit_metrics;
  const char **metrics; /* the candidate metrics: --metric values, or the default list */
  size_t nmetrics;
  PlotRun *runs;
  size_t nruns;
  char **labels; /* distinct, in order of first appearance */
  size_t nlabels;
  char **facets; /* distinct, in order of first appearance; one "" without --facet */
  size_t nfacets;
  PlotLine *lines;
  size_t nlines;
} PlotCtx;

/* The metrics plotted when no --metric is given, in panel order. */
extern const char *const plot_default_metrics[];
extern const size_t plot_ndefault_metrics;

/* "rein plot: error: ..." on stderr. */
__attribute__((format(printf, 1, 2))) void plot_error(const char *fmt, ...);
/* A formatted string (rc_malloc'd). */
__attribute__((format(printf, 1, 2))) char *plot_asprintf(const char *fmt, ...);
/* A number as "%.*g" (prec significant digits), never "-0". */
void plot_fmt_num(char *buf, size_t len, int prec, double v);
/* S as XML text, with what XML cannot hold replaced by '?'. */
void plot_xml_text(FILE *f, const char *s);
/* The number of code points of UTF-8 S. */
size_t plot_text_chars(const char *s);

/* plot_data.c: reads run R's metrics.jsonl (R->path) keeping C's candidate metrics; false after
 * printing the error. */
bool plot_read_run(const PlotCtx *c, PlotRun *r);
/* The plotted series of every candidate metric of R (sorted, deduplicated, smoothed). */
void plot_build_series(const PlotCtx *c, PlotRun *r);

/* plot_agg.c: the name LEVEL directories above run R (0: the run itself) into *name
 * (rc_malloc'd); false after printing the error. */
bool plot_level_name(const PlotRun *r, long level, char **name);
/* Gives every run its label and facet and groups the runs into c->lines with their per-step
 * means and bands; false after printing the error. */
bool plot_group_runs(PlotCtx *c);

/* plot_panel.c: the data range of the panels and the drawing of one panel. */
typedef struct {
  double xlo, xhi;  /* shared by every panel */
  double *ylo, *yhi; /* per candidate metric, shared by the panels of that metric */
} PlotRanges;
void plot_ranges(const PlotCtx *c, PlotRanges *g);
/* The stroke color of label L, and its dash pattern (NULL: solid). */
const char *plot_color(size_t l);
const char *plot_dash(size_t l);
/* Draws the panel of metric M and facet F with its top-left corner at (px, py). */
void plot_write_panel(FILE *f, const PlotCtx *c, const PlotRanges *g, size_t m, size_t fa, double px,
                      double py);
/* A number as %.6g. */
void plot_put_num(FILE *f, double v);

/* The size of a panel, and of the gap around and between panels. */
enum { PLOT_PANEL_W = 460, PLOT_PANEL_H = 280, PLOT_PAD = 16 };

/* plot_svg.c: writes the SVG of panels PM[0..NP) (indices of candidate metrics) to C->out
 * atomically; false after printing the error. */
bool plot_write_output(const PlotCtx *c, const size_t *pm, size_t np);

#endif
