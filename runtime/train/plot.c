/* plot.c — `rein plot`: the training curves of one or more runs, drawn as one SVG file.
 *
 * This module owns the whole command: the command line, reading the trainer's metrics.jsonl
 * files, and rendering.  It is self-contained (libc, libm and jansson only) because it is a
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
#include "rein/common.h"

#include <errno.h>
#include <getopt.h>
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

/* ---- data ---------------------------------------------------------------------------------- */

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

static const char *const default_metrics[] = {"reward_mean", "eval_accuracy", "accuracy",
                                              "loss",        "entropy",       "kl_behaviour",
                                              "clip_frac",   "response_len",  "lag"};

static const char *const palette[] = {"#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f",
                                      "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#7f7f7f"};
#define NPALETTE (sizeof palette / sizeof *palette)
static const char *const dashes[] = {NULL, "6 3", "2 2", "8 3 2 3"};
#define NDASHES (sizeof dashes / sizeof *dashes)

/* ---- small helpers ------------------------------------------------------------------------- */

__attribute__((format(printf, 1, 2))) static void perr(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs("rein plot: error: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
}

static char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *xasprintf(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  if (n < 0) n = 0;
  char *s = rc_realloc(NULL, (size_t)n + 1);
  va_start(ap, fmt);
  vsnprintf(s, (size_t)n + 1, fmt, ap);
  va_end(ap);
  return s;
}

/* A number as "%.*g" (prec significant digits), never "-0". */
static void fmt_num(char *buf, size_t len, int prec, double v) {
  if (v == 0) v = 0; /* -0 -> +0 */
  snprintf(buf, len, "%.*g", prec, v);
}

/* Writes s as XML character data / attribute text: escapes & < > ", and replaces what XML 1.0
 * cannot hold (control characters, malformed UTF-8, surrogates, U+FFFE/U+FFFF) with '?', so a
 * run directory with an odd name still gives a well-formed file. */
static void xml_text(FILE *f, const char *s) {
  const unsigned char *p = (const unsigned char *)s;
  while (*p) {
    unsigned c = *p;
    if (c < 0x80) {
      if (c == '&') fputs("&amp;", f);
      else if (c == '<') fputs("&lt;", f);
      else if (c == '>') fputs("&gt;", f);
      else if (c == '"') fputs("&quot;", f);
      else if (c < 0x20 || c == 0x7f) fputc('?', f);
      else fputc((int)c, f);
      p++;
      continue;
    }
    int n = c >= 0xf0 && c <= 0xf4 ? 4 : c >= 0xe0 ? (c <= 0xef ? 3 : 0) : c >= 0xc2 ? 2 : 0;
    uint32_t cp = n == 4 ? c & 7 : n == 3 ? c & 15 : c & 31;
    int k = 1;
    for (; k < n && (p[k] & 0xc0) == 0x80; k++) cp = cp << 6 | (p[k] & 0x3f);
    bool ok = n && k == n && !(n == 3 && cp < 0x800) && !(n == 4 && (cp < 0x10000 || cp > 0x10ffff)) &&
              !(cp >= 0xd800 && cp <= 0xdfff) && cp != 0xfffe && cp != 0xffff;
    if (ok) fwrite(p, 1, (size_t)n, f);
    else fputc('?', f);
    p += ok ? n : 1;
  }
}

/* The number of characters (UTF-8 code points) of s, for estimating text widths. */
static size_t text_chars(const char *s) {
  size_t n = 0;
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) n += (*p & 0xc0) != 0x80;
  return n;
}

/* ---- reading ------------------------------------------------------------------------------- */

/* A copy of line[0..len) in which the bare tokens NaN, Infinity and -Infinity outside strings
 * (Python's json writes them for non-finite floats) become null.  Caller frees. */
static char *nan_to_null(const char *line, size_t len, size_t *outlen) {
  char *o = rc_realloc(NULL, 2 * len + 1);
  size_t j = 0;
  bool in_str = false;
  for (size_t i = 0; i < len;) {
    char c = line[i];
    if (in_str) {
      o[j++] = c;
      if (c == '\\' && i + 1 < len) o[j++] = line[++i];
      else if (c == '"') in_str = false;
      i++;
      continue;
    }
    if (c == '"') in_str = true;
    static const char *const toks[] = {"-Infinity", "Infinity", "NaN"};
    size_t hit = 0;
    bool boundary_before = i == 0 || strchr(" \t:,[", line[i - 1]);
    for (size_t t = 0; boundary_before && !hit && t < 3; t++) {
      size_t n = strlen(toks[t]);
      if (i + n <= len && !memcmp(line + i, toks[t], n) &&
          (i + n == len || strchr(" \t\r,]}", line[i + n]))) hit = n;
    }
    if (hit) {
      memcpy(o + j, "null", 4);
      j += 4;
      i += hit;
    } else {
      o[j++] = c;
      i++;
    }
  }
  o[j] = 0;
  *outlen = j;
  return o;
}

/* The id of `key` among the candidate metrics, or -1.  *hint is the id after the last hit:
 * fields come in the same order on every line, so it usually matches at once. */
static int metric_id(const PlotCtx *c, const char *key, size_t *hint) {
  if (*hint < c->nmetrics && !strcmp(c->metrics[*hint], key)) return (int)(*hint)++;
  for (size_t k = 0; k < c->nmetrics; k++)
    if (!strcmp(c->metrics[k], key)) {
      *hint = k + 1;
      return (int)k;
    }
  return -1;
}

/* Stores one parsed line in r.  Returns false (and prints PATH:LINE: MESSAGE) on a line that is
 * a JSON value but not a record; unknown kinds are accepted and ignored. */
static bool add_record(const PlotCtx *c, PlotRun *r, json_t *o, long lineno) {
  if (!json_is_object(o)) {
    perr("%s:%ld: expected a JSON object", r->path, lineno);
    return false;
  }
  json_t *kind = json_object_get(o, "kind");
  int k = KIND_TRAIN;
  if (kind && json_is_string(kind)) {
    const char *ks = json_string_value(kind);
    if (!strcmp(ks, "eval")) k = KIND_EVAL;
    else if (strcmp(ks, "train")) return true; /* some other record type: not a curve point */
  }
  json_t *step = json_object_get(o, "step");
  if (!step || json_is_null(step)) {
    perr("%s:%ld: missing 'step'", r->path, lineno);
    return false;
  }
  if (!json_is_integer(step)) {
    perr("%s:%ld: 'step' is not an integer", r->path, lineno);
    return false;
  }
  json_t *time = json_object_get(o, "time");
  if (c->x_time && !time) {
    perr("%s:%ld: missing 'time' (needed by --x time)", r->path, lineno);
    return false;
  }
  if (c->x_time && !json_is_number(time) && !json_is_null(time)) {
    perr("%s:%ld: 'time' is not a number", r->path, lineno);
    return false;
  }
  if (r->nrec == r->caprec) {
    r->caprec = r->caprec ? 2 * r->caprec : 256;
    r->recs = rc_realloc(r->recs, r->caprec * sizeof *r->recs);
  }
  size_t ri = r->nrec++;
  PlotRec *rec = &r->recs[ri];
  rec->step = json_integer_value(step);
  rec->time = json_is_number(time) ? json_number_value(time) : NAN;
  rec->kind = k;
  rec->dead = false;
  const char *key;
  json_t *val;
  size_t hint = 0;
  json_object_foreach(o, key, val) {
    if (!json_is_number(val) || !strcmp(key, "step")) continue;
    int id = metric_id(c, key, &hint);
    if (id < 0) continue;
    PlotRawVec *v = &r->raw[id];
    if (v->n == v->cap) {
      v->cap = v->cap ? 2 * v->cap : 64;
      v->p = rc_realloc(v->p, v->cap * sizeof *v->p);
    }
    v->p[v->n++] = (PlotRaw){rec->step, ri, json_number_value(val)};
  }
  return true;
}

/* Reads r->path into r->recs / r->raw.  Returns false after printing the error. */
static bool read_run(const PlotCtx *c, PlotRun *r) {
  FILE *f = fopen(r->path, "r");
  if (!f) {
    perr("%s: cannot open: %s", r->path, strerror(errno));
    return false;
  }
  char *line = NULL;
  size_t cap = 0;
  ssize_t len;
  long lineno = 0;
  bool ok = true;
  errno = 0;
  while (ok && (len = getline(&line, &cap, f)) != -1) {
    lineno++;
    bool complete = len > 0 && line[len - 1] == '\n';
    size_t n = (size_t)len;
    while (n && (line[n - 1] == '\n' || line[n - 1] == '\r')) n--;
    size_t s = 0;
    while (s < n && (line[s] == ' ' || line[s] == '\t')) s++;
    if (s == n) continue;
    size_t clen;
    char *clean = nan_to_null(line, n, &clen);
    json_error_t e;
    json_t *o = json_loadb(clean, clen, 0, &e);
    free(clean);
    if (!o) {
      if (!complete) {
        fprintf(stderr, "rein plot: warning: %s:%ld: skipping an incomplete last line\n", r->path, lineno);
        break;
      }
      perr("%s:%ld: invalid JSON: %s", r->path, lineno, e.text);
      ok = false;
      break;
    }
    ok = add_record(c, r, o, lineno);
    json_decref(o);
  }
  if (ok && ferror(f)) {
    perr("%s: cannot read: %s", r->path, strerror(errno ? errno : EIO));
    ok = false;
  }
  free(line);
  fclose(f);
  if (ok && r->nrec == 0) {
    perr("%s: no records", r->path);
    ok = false;
  }
  return ok;
}

typedef struct {
  int kind;
  int64_t step;
  size_t idx;
} PlotKey;

static int cmp_key(const void *a, const void *b) {
  const PlotKey *x = a, *y = b;
  if (x->kind != y->kind) return x->kind < y->kind ? -1 : 1;
  if (x->step != y->step) return x->step < y->step ? -1 : 1;
  return x->idx < y->idx ? -1 : x->idx > y->idx;
}

static int cmp_raw(const void *a, const void *b) {
  const PlotRaw *x = a, *y = b;
  if (x->step != y->step) return x->step < y->step ? -1 : 1;
  return x->rec < y->rec ? -1 : x->rec > y->rec;
}

static int cmp_pt(const void *a, const void *b) {
  const PlotPt *x = a, *y = b;
  if (x->x != y->x) return x->x < y->x ? -1 : 1;
  return x->step < y->step ? -1 : x->step > y->step;
}

/* Turns r's raw points into plottable series: drops lines replaced by a later line of the same
 * kind and step, keeps one point per step (the later line's) within a metric, picks x, sorts by
 * x, skips non-finite values, and smooths train points with a trailing mean over c->smooth train
 * points (eval points are drawn as they are). */
static void build_series(const PlotCtx *c, PlotRun *r) {
  PlotKey *keys = rc_realloc(NULL, r->nrec * sizeof *keys);
  for (size_t i = 0; i < r->nrec; i++) keys[i] = (PlotKey){r->recs[i].kind, r->recs[i].step, i};
  qsort(keys, r->nrec, sizeof *keys, cmp_key); /* nrec >= 1 */
  for (size_t i = 0; i + 1 < r->nrec; i++)
    if (keys[i].kind == keys[i + 1].kind && keys[i].step == keys[i + 1].step)
      r->recs[keys[i].idx].dead = true;
  free(keys);
  double *win = rc_realloc(NULL, (size_t)c->smooth * sizeof *win);
  for (size_t m = 0; m < c->nmetrics; m++) {
    PlotRawVec *v = &r->raw[m];
    PlotSeries *s = &r->series[m];
    if (v->n > 1) qsort(v->p, v->n, sizeof *v->p, cmp_raw);
    s->p = rc_realloc(NULL, v->n * sizeof *s->p);
    s->n = 0;
    for (size_t i = 0; i < v->n; i++) {
      const PlotRaw *q = &v->p[i];
      const PlotRec *rec = &r->recs[q->rec];
      if (rec->dead) continue;
      if (s->n && s->p[s->n - 1].step == q->step) s->n--; /* same step from a train and an eval line */
      double x = c->x_time ? rec->time : (double)q->step;
      if (!isfinite(x) || !isfinite(q->v)) continue;
      s->p[s->n++] = (PlotPt){x, q->v, q->step, rec->kind};
    }
    if (s->n > 1) qsort(s->p, s->n, sizeof *s->p, cmp_pt);
    /* trailing mean over the last `smooth` train values; win is a ring of them */
    double sum = 0;
    size_t seen = 0;
    for (size_t i = 0; c->smooth > 1 && i < s->n; i++) {
      if (s->p[i].kind != KIND_TRAIN) continue;
      size_t slot = seen % (size_t)c->smooth;
      if (seen >= (size_t)c->smooth) sum -= win[slot];
      win[slot] = s->p[i].y;
      sum += s->p[i].y;
      seen++;
      size_t cnt = seen < (size_t)c->smooth ? seen : (size_t)c->smooth;
      if (seen % 4096 == 0) { /* re-add the window now and then so rounding does not drift */
        sum = 0;
        for (size_t k = 0; k < cnt; k++) sum += win[k];
      }
      s->p[i].y = sum / (double)cnt;
    }
    /* a sum of huge values may overflow: drop what became non-finite */
    size_t j = 0;
    for (size_t i = 0; i < s->n; i++)
      if (isfinite(s->p[i].y)) s->p[j++] = s->p[i];
    s->n = j;
    free(v->p);
    *v = (PlotRawVec){0};
  }
  free(win);
}

/* ---- labels -------------------------------------------------------------------------------- */

/* The legend label of RUN (a directory, or a file): the directory's name, or the file's name
 * without ".jsonl" — except for a file named metrics.jsonl, which is labelled by its directory
 * like the run it belongs to.  Caller frees. */
static char *run_label(const char *arg, bool is_dir) {
  char *p = rc_strdup(arg);
  size_t n = strlen(p);
  while (n > 1 && p[n - 1] == '/') p[--n] = 0;
  char *base = strrchr(p, '/');
  base = base ? base + 1 : p;
  if (!is_dir && !strcmp(base, "metrics.jsonl")) {
    if (base == p) {
      free(p);
      return run_label(".", true);
    }
    base[-1] = 0;
    char *dir = rc_strdup(p);
    free(p);
    char *l = run_label(*dir ? dir : "/", true);
    free(dir);
    return l;
  }
  if (is_dir && (!strcmp(base, ".") || !strcmp(base, "..") || !strcmp(base, "/"))) {
    char *real = realpath(p, NULL);
    if (real) {
      char *b = strrchr(real, '/');
      if (b && b[1]) {
        char *l = rc_strdup(b + 1);
        free(real);
        free(p);
        return l;
      }
      free(real);
    }
  }
  char *l = rc_strdup(base);
  size_t ln = strlen(l);
  if (!is_dir && ln > 6 && !strcmp(l + ln - 6, ".jsonl")) l[ln - 6] = 0;
  free(p);
  return l;
}

/* Makes the labels distinct: a label equal to an earlier one gets "#2", "#3", ... */
static void dedup_labels(PlotCtx *c) {
  for (size_t i = 1; i < c->nruns; i++) {
    char *base = c->runs[i].label;
    char *cand = rc_strdup(base);
    for (int k = 2;; k++) {
      bool clash = false;
      for (size_t j = 0; j < i && !clash; j++) clash = !strcmp(c->runs[j].label, cand);
      if (!clash) break;
      free(cand);
      cand = xasprintf("%s#%d", base, k);
    }
    free(base);
    c->runs[i].label = cand;
  }
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
      fmt_num(a->label[i], sizeof a->label[i], prec, a->tick[i]);
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
  fmt_num(b, sizeof b, 6, v);
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
    double w = LEGEND_SWATCH + 6 + CHAR_W * (double)text_chars(c->runs[i].label) + 18;
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
  xml_text(f, c->metrics[m]);
  fputs("\" transform=\"translate(", f);
  put_num(f, px);
  fputc(',', f);
  put_num(f, py);
  fputs(")\">\n", f);
  fprintf(f, "<text class=\"panel-title\" x=\"%d\" y=\"18\" font-size=\"13\" font-weight=\"bold\">", ML);
  xml_text(f, c->metrics[m]);
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
    xml_text(f, c->runs[r].label);
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
      xml_text(f, c->runs[r].label);
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
    xml_text(f, c->title);
    fputs("</title>\n", f);
  }
  fputs("<rect width=\"100%\" height=\"100%\" fill=\"#fff\"/>\n", f);
  if (c->title) {
    fprintf(f, "<text class=\"title\" x=\"%d\" y=\"%d\" font-size=\"16\" font-weight=\"bold\">", PAD,
            PAD + 16);
    xml_text(f, c->title);
    fputs("</text>\n", f);
  }
  fputs("<g class=\"legend\" font-size=\"12\" transform=\"translate(", f);
  put_num(f, PAD);
  fputc(',', f);
  put_num(f, top);
  fputs(")\">\n", f);
  for (size_t r = 0; r < c->nruns; r++) {
    fputs("<g class=\"legend-item\" data-run=\"", f);
    xml_text(f, c->runs[r].label);
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
    xml_text(f, c->runs[r].label);
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
static bool write_output(const PlotCtx *c, const size_t *pm, size_t np) {
  char *tmp = xasprintf("%s.tmp.%ld", c->out, (long)getpid());
  FILE *f = fopen(tmp, "w");
  if (!f) {
    perr("%s: cannot write: %s", tmp, strerror(errno));
    free(tmp);
    return false;
  }
  write_svg(f, c, pm, np);
  int err = ferror(f) ? (errno ? errno : EIO) : 0;
  if (fclose(f) && !err) err = errno ? errno : EIO;
  if (!err && rename(tmp, c->out)) err = errno;
  if (err) {
    perr("%s: cannot write: %s", c->out, strerror(err));
    unlink(tmp);
  }
  free(tmp);
  return !err;
}

/* ---- command ------------------------------------------------------------------------------- */

static void usage(FILE *f) {
  fputs("usage: rein plot RUN... [-o OUT.svg] [--metric NAME]... [--x step|time] [--smooth W] [--title T]\n"
        "\n"
        "Draws the training curves of the runs as one SVG file (default plot.svg).  RUN is a run\n"
        "directory holding metrics.jsonl, or a .jsonl file.\n"
        "\n"
        "  -o, --output OUT.svg  where to write (replaced whole, through a temporary file)\n"
        "  --metric NAME         a panel for NAME (repeatable; default: those of reward_mean,\n"
        "                        eval_accuracy, accuracy, loss, entropy, kl_behaviour, clip_frac,\n"
        "                        response_len, lag that some run has)\n"
        "  --x step|time         the x axis: the step (default), or seconds since the run started\n"
        "  --smooth W            trailing mean over W points of train curves (default 1: none)\n"
        "  --title T             a title above the legend\n",
        f);
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

enum { O_METRIC = 256, O_X, O_SMOOTH, O_TITLE };

int plot_main(int argc, char **argv) {
  static const struct option opts[] = {{"output", required_argument, 0, 'o'},
                                       {"metric", required_argument, 0, O_METRIC},
                                       {"x", required_argument, 0, O_X},
                                       {"smooth", required_argument, 0, O_SMOOTH},
                                       {"title", required_argument, 0, O_TITLE},
                                       {"help", no_argument, 0, 'h'},
                                       {0, 0, 0, 0}};
  PlotCtx c = {.out = "plot.svg", .smooth = 1};
  const size_t ndefault = sizeof default_metrics / sizeof *default_metrics;
  c.metrics = rc_realloc(NULL, ((size_t)argc + ndefault) * sizeof *c.metrics);
  int rc = 2, opt;
  optind = 0; /* full getopt reset (glibc, musl): plot_main may run more than once in a process */
  while ((opt = getopt_long(argc, argv, "o:h", opts, NULL)) != -1) {
    switch (opt) {
    case 'o': c.out = optarg; break;
    case O_METRIC: {
      bool dup = false;
      for (size_t k = 0; k < c.nmetrics; k++) dup |= !strcmp(c.metrics[k], optarg);
      if (!dup) c.metrics[c.nmetrics++] = optarg;
      c.explicit_metrics = true;
      break;
    }
    case O_X:
      if (strcmp(optarg, "step") && strcmp(optarg, "time")) {
        perr("--x: expected 'step' or 'time', got '%s'", optarg);
        goto done;
      }
      c.x_time = !strcmp(optarg, "time");
      break;
    case O_SMOOTH: {
      char *end;
      errno = 0;
      long w = strtol(optarg, &end, 10);
      if (errno || end == optarg || *end || w < 1 || w > 1000000) {
        perr("--smooth: expected a whole number of points from 1 to 1000000, got '%s'", optarg);
        goto done;
      }
      c.smooth = w;
      break;
    }
    case O_TITLE: c.title = optarg; break;
    case 'h': usage(stdout); rc = 0; goto done;
    default: usage(stderr); goto done;
    }
  }
  if (optind >= argc) {
    perr("no runs given");
    usage(stderr);
    goto done;
  }
  if (!*c.out) {
    perr("-o: empty output path");
    goto done;
  }
  rc = 1;
  if (!c.explicit_metrics)
    for (size_t k = 0; k < ndefault; k++)
      c.metrics[c.nmetrics++] = default_metrics[k];
  c.nruns = (size_t)(argc - optind);
  c.runs = rc_realloc(NULL, c.nruns * sizeof *c.runs);
  memset(c.runs, 0, c.nruns * sizeof *c.runs);
  for (size_t r = 0; r < c.nruns; r++) {
    const char *arg = argv[optind + (int)r];
    struct stat st;
    bool is_dir = !stat(arg, &st) && S_ISDIR(st.st_mode);
    size_t n = strlen(arg);
    c.runs[r].path =
        is_dir ? xasprintf("%s%smetrics.jsonl", arg, n && arg[n - 1] == '/' ? "" : "/") : rc_strdup(arg);
    c.runs[r].label = run_label(arg, is_dir);
    c.runs[r].raw = rc_realloc(NULL, c.nmetrics * sizeof *c.runs[r].raw);
    memset(c.runs[r].raw, 0, c.nmetrics * sizeof *c.runs[r].raw);
    c.runs[r].series = rc_realloc(NULL, c.nmetrics * sizeof *c.runs[r].series);
    memset(c.runs[r].series, 0, c.nmetrics * sizeof *c.runs[r].series);
  }
  for (size_t r = 0; r < c.nruns; r++) {
    if (!read_run(&c, &c.runs[r])) goto done;
    build_series(&c, &c.runs[r]);
  }
  dedup_labels(&c);
  size_t *pm = rc_realloc(NULL, c.nmetrics * sizeof *pm), np = 0;
  for (size_t m = 0; m < c.nmetrics; m++) {
    bool any = false;
    for (size_t r = 0; r < c.nruns && !any; r++) any = c.runs[r].series[m].n > 0;
    if (any) pm[np++] = m;
    else if (c.explicit_metrics) {
      perr("no run has metric '%s'", c.metrics[m]);
      free(pm);
      goto done;
    }
  }
  if (!np) {
    perr("no run has any of the default metrics (reward_mean, eval_accuracy, accuracy, loss, ...); "
         "choose with --metric NAME");
    free(pm);
    goto done;
  }
  if (write_output(&c, pm, np)) rc = 0;
  free(pm);
done:
  free_ctx(&c);
  return rc;
}
