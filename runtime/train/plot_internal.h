/* plot_internal.h — what the three files of `rein plot` share: the runs' data as read from
 * metrics.jsonl (plot_data.c), the options, and the functions the command (plot.c) calls to read
 * (plot_data.c) and draw (plot_svg.c).
 */
#ifndef REIN_PLOT_INTERNAL_H
#define REIN_PLOT_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

enum { KIND_TRAIN = 0, KIND_EVAL = 1 };

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

typedef struct {
  double x, y;
  int64_t step;
  int kind;
} PlotPt;

typedef struct {
  PlotPt *p; /* sorted by x; y already smoothed */
  size_t n;
} PlotSeries;

typedef struct {
  char *label;
  char *path;        /* the file read, as named in messages */
  PlotRec *recs;
  size_t nrec, caprec;
  PlotRawVec *raw;   /* one per candidate metric */
  PlotSeries *series; /* one per candidate metric */
} PlotRun;

typedef struct {
  const char *out;
  const char *title;
  bool x_time;
  long smooth;
  bool explicit_metrics;
  const char **metrics; /* the candidate metrics: --metric values, or the default list */
  size_t nmetrics;
  PlotRun *runs;
  size_t nruns;
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
/* The label of a run given as ARG (a run directory when IS_DIR, else a file). */
char *plot_run_label(const char *arg, bool is_dir);
/* Makes the runs' labels distinct. */
void plot_dedup_labels(PlotCtx *c);

/* plot_svg.c: writes the SVG of panels PM[0..NP) (indices of candidate metrics) to C->out
 * atomically; false after printing the error. */
bool plot_write_output(const PlotCtx *c, const size_t *pm, size_t np);

#endif
