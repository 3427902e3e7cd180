/* plot_data.c — the data side of `rein plot`: reading the trainer's metrics.jsonl files into
 * per-metric series of each run, smoothing them, and the small text helpers every part of the
 * command uses.  How lines are read (kinds, resumed runs, NaN tokens, a line still being
 * written) is described at the top of plot.c.
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

const char *const plot_default_metrics[] = {"reward_mean", "eval_accuracy", "accuracy",
                                              "loss",        "entropy",       "kl_behaviour",
                                              "clip_frac",   "response_len",  "lag"};
const size_t plot_ndefault_metrics = sizeof plot_default_metrics / sizeof *plot_default_metrics;

/* ---- small helpers ------------------------------------------------------------------------- */

__attribute__((format(printf, 1, 2))) void plot_error(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs("rein plot: error: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
}

char *plot_asprintf(const char *fmt, ...) {
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
void plot_fmt_num(char *buf, size_t len, int prec, double v) {
  if (v == 0) v = 0; /* -0 -> +0 */
  snprintf(buf, len, "%.*g", prec, v);
}

/* Writes s as XML character data / attribute text: escapes & < > ", and replaces what XML 1.0
 * cannot hold (control characters, malformed UTF-8, surrogates, U+FFFE/U+FFFF) with '?', so a
 * run directory with an odd name still gives a well-formed file. */
void plot_xml_text(FILE *f, const char *s) {
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
size_t plot_text_chars(const char *s) {
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
    plot_error("%s:%ld: expected a JSON object", r->path, lineno);
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
    plot_error("%s:%ld: missing 'step'", r->path, lineno);
    return false;
  }
  if (!json_is_integer(step)) {
    plot_error("%s:%ld: 'step' is not an integer", r->path, lineno);
    return false;
  }
  json_t *time = json_object_get(o, "time");
  if (c->x_time && !time) {
    plot_error("%s:%ld: missing 'time' (needed by --x time)", r->path, lineno);
    return false;
  }
  if (c->x_time && !json_is_number(time) && !json_is_null(time)) {
    plot_error("%s:%ld: 'time' is not a number", r->path, lineno);
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
bool plot_read_run(const PlotCtx *c, PlotRun *r) {
  FILE *f = fopen(r->path, "r");
  if (!f) {
    plot_error("%s: cannot open: %s", r->path, strerror(errno));
    return false;
  }
  char *line = NULL;
  size_t cap = 0;
  long len;
  long lineno = 0;
  bool ok = true;
  errno = 0;
  while (ok && (len = rc_read_line(f, &line, &cap, 64u << 20)) != -1) {
    lineno++;
    if (len == -2) {
      plot_error("%s:%ld: a line longer than 64 MiB", r->path, lineno);
      ok = false;
      break;
    }
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
      plot_error("%s:%ld: invalid JSON: %s", r->path, lineno, e.text);
      ok = false;
      break;
    }
    ok = add_record(c, r, o, lineno);
    json_decref(o);
  }
  if (ok && ferror(f)) {
    plot_error("%s: cannot read: %s", r->path, strerror(errno ? errno : EIO));
    ok = false;
  }
  free(line);
  fclose(f);
  if (ok && r->nrec == 0) {
    plot_error("%s: no records", r->path);
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

/* The centred moving average over w points of s's train points, in x order: point i (of the T
 * train points) becomes the mean of the raw values of train points i - w/2 .. i + (w-1)/2 (w/2
 * rounded down, so an even window reaches one point further back), the window cut at both ends
 * of the series (fewer points there, never padded).  Eval points keep their values. */
static void smooth_train(PlotSeries *s, size_t w) {
  size_t *t = rc_realloc(NULL, (s->n ? s->n : 1) * sizeof *t), nt = 0;
  for (size_t i = 0; i < s->n; i++)
    if (s->p[i].kind == KIND_TRAIN) t[nt++] = i;
  size_t back = w / 2, ahead = (w - 1) / 2;
  size_t a = 0, b = 0; /* the window [a, b) over t, and its sum */
  double sum = 0;
  for (size_t i = 0; i < nt; i++) {
    size_t na = i > back ? i - back : 0, nb = i + ahead + 1 < nt ? i + ahead + 1 : nt;
    if (i % 1024 == 0) { /* re-add the window now and then so rounding does not drift */
      a = b = na;
      sum = 0;
    }
    for (; b < nb; b++) sum += s->p[t[b]].raw;
    for (; a < na; a++) sum -= s->p[t[a]].raw;
    s->p[t[i]].y = sum / (double)(nb - na);
  }
  free(t);
}

/* Turns r's raw points into plottable series: drops lines replaced by a later line of the same
 * kind and step, keeps one point per step (the later line's) within a metric, picks x, sorts by
 * x, skips non-finite values, and smooths the train points with a centred moving average over
 * c->smooth train points (eval points are drawn as they are; see smooth_train). */
void plot_build_series(const PlotCtx *c, PlotRun *r) {
  PlotKey *keys = rc_realloc(NULL, r->nrec * sizeof *keys);
  for (size_t i = 0; i < r->nrec; i++) keys[i] = (PlotKey){r->recs[i].kind, r->recs[i].step, i};
  qsort(keys, r->nrec, sizeof *keys, cmp_key); /* nrec >= 1 */
  for (size_t i = 0; i + 1 < r->nrec; i++)
    if (keys[i].kind == keys[i + 1].kind && keys[i].step == keys[i + 1].step)
      r->recs[keys[i].idx].dead = true;
  free(keys);
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
      s->p[s->n++] = (PlotPt){x, q->v, q->v, q->step, rec->kind};
    }
    if (s->n > 1) qsort(s->p, s->n, sizeof *s->p, cmp_pt);
    if (c->smooth > 1) smooth_train(s, (size_t)c->smooth);
    /* a sum of huge values may overflow: drop what became non-finite */
    size_t j = 0;
    for (size_t i = 0; i < s->n; i++)
      if (isfinite(s->p[i].y)) s->p[j++] = s->p[i];
    s->n = j;
    free(v->p);
    *v = (PlotRawVec){0};
  }
}
