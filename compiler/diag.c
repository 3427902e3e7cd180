/* diag.c — reading source files and printing diagnostics with a caret.
 *
 * Owns the one place where bytes from disk become a SrcFile: the file is read whole, checked for
 * NUL bytes and for well-formed UTF-8 (a program is text; rejecting bad bytes here means the
 * lexer never sees them), and indexed by line so that any diagnostic can print its source line.
 */
#include "diag.h"

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "rein/common.h"

enum { DIAG_DEFAULT_MAX_ERRORS = 20 };

void diag_init(Diag *d, FILE *out) {
  memset(d, 0, sizeof *d);
  d->out = out;
  d->max_errors = DIAG_DEFAULT_MAX_ERRORS;
}

SrcRange diag_range(int l0, int c0, int l1, int c1) {
  SrcRange r = {{l0, c0}, {l1, c1}};
  return r;
}

SrcRange diag_span(SrcRange a, SrcRange b) {
  SrcRange r = a;
  if (b.end.line > r.end.line || (b.end.line == r.end.line && b.end.col > r.end.col))
    r.end = b.end;
  if (b.begin.line < r.begin.line || (b.begin.line == r.begin.line && b.begin.col < r.begin.col))
    r.begin = b.begin;
  return r;
}

bool diag_source_text(const SrcFile *f, SrcRange r, char *buf, size_t n) {
  int len = r.end.col - r.begin.col;
  if (!f || r.begin.line != r.end.line || len <= 0 || (size_t)len >= n || r.begin.line < 1 ||
      r.begin.line > f->nlines || r.begin.col < 1)
    return false;
  size_t off = f->line_start[r.begin.line - 1] + (size_t)r.begin.col - 1;
  if (off + (size_t)len > f->len || memchr(f->text + off, '\n', (size_t)len)) return false;
  memcpy(buf, f->text + off, (size_t)len);
  buf[len] = 0;
  return true;
}

bool diag_too_many(const Diag *d) { return d->nerrors >= d->max_errors; }

/* Length of the UTF-8 sequence starting at p (at most n bytes available), or 0 if it is not a
 * well-formed sequence (overlong forms, surrogates and code points past U+10FFFF are rejected). */
static int utf8_seq_len(const unsigned char *p, size_t n) {
  unsigned c = p[0];
  if (c < 0x80) return 1;
  int len;
  uint32_t cp, min;
  if ((c & 0xE0) == 0xC0) { len = 2; cp = c & 0x1F; min = 0x80; }
  else if ((c & 0xF0) == 0xE0) { len = 3; cp = c & 0x0F; min = 0x800; }
  else if ((c & 0xF8) == 0xF0) { len = 4; cp = c & 0x07; min = 0x10000; }
  else return 0;
  if ((size_t)len > n) return 0;
  for (int i = 1; i < len; i++) {
    if ((p[i] & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (p[i] & 0x3F);
  }
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
  return len;
}

static void report_at_offset(Diag *d, const SrcFile *f, size_t off, const char *what) {
  int line = 1;
  size_t ls = 0;
  for (size_t i = 0; i < off; i++)
    if (f->text[i] == '\n') { line++; ls = i + 1; }
  fprintf(d->out, "%s:%d:%zu: error: %s\n", f->path, line, off - ls + 1, what);
  d->nerrors++;
}

static void index_lines(SrcFile *f) {
  int n = 1;
  for (size_t i = 0; i < f->len; i++)
    if (f->text[i] == '\n') n++;
  f->line_start = rc_malloc(sizeof(size_t) * (size_t)n);
  f->nlines = n;
  int k = 0;
  f->line_start[k++] = 0;
  for (size_t i = 0; i < f->len; i++)
    if (f->text[i] == '\n') f->line_start[k++] = i + 1;
}

/* Checks the text; returns false (after one diagnostic) when it contains a NUL byte or
 * malformed UTF-8. */
static bool check_text(Diag *d, const SrcFile *f) {
  const unsigned char *p = (const unsigned char *)f->text;
  for (size_t i = 0; i < f->len;) {
    if (p[i] == 0) {
      report_at_offset(d, f, i, "NUL byte in source file");
      return false;
    }
    int n = utf8_seq_len(p + i, f->len - i);
    if (n == 0) {
      char msg[96];
      snprintf(msg, sizeof msg, "invalid UTF-8 byte 0x%02X in source file", p[i]);
      report_at_offset(d, f, i, msg);
      return false;
    }
    i += (size_t)n;
  }
  return true;
}

SrcFile *diag_file_from_buffer(Diag *d, const char *path, const char *data, size_t len) {
  SrcFile *f = rc_calloc(1, sizeof *f);
  f->path = rc_strdup(path);
  f->text = rc_malloc(len + 1);
  if (len) memcpy(f->text, data, len);
  f->text[len] = 0;
  f->len = len;
  index_lines(f);
  if (!check_text(d, f)) {
    diag_free_file(f);
    return NULL;
  }
  return f;
}

SrcFile *diag_read_file(Diag *d, const char *path) {
  FILE *fp = fopen(path, "rb");
  if (!fp) {
    fprintf(d->out, "%s: error: cannot open: %s\n", path, strerror(errno));
    d->nerrors++;
    return NULL;
  }
  /* Sizes are checked before and while reading: an endless input (/dev/zero, a pipe) stops at
   * the limit instead of growing without bound. */
  struct stat st;
  const char *why = NULL;
  char size[64] = "";
  if (fstat(fileno(fp), &st) == 0 && S_ISDIR(st.st_mode)) why = "is a directory";
  else if (S_ISREG(st.st_mode) && st.st_size > DIAG_MAX_FILE_BYTES)
    snprintf(size, sizeof size, "%lld bytes", (long long)st.st_size), why = "file too large";
  size_t cap = 4096, len = 0;
  char *buf = NULL;
  bool bad = false;
  int err = 0;
  while (!why) {
    if (!buf || len == cap) buf = rc_realloc(buf, buf ? (cap *= 2) : cap);
    size_t got = fread(buf + len, 1, cap - len, fp);
    len += got;
    if (len > DIAG_MAX_FILE_BYTES) {
      snprintf(size, sizeof size, "more than %d bytes", DIAG_MAX_FILE_BYTES);
      why = "file too large";
    }
    if (got == 0) break;
  }
  bad = ferror(fp);
  err = errno;
  fclose(fp);
  if (why && size[0]) fprintf(d->out, "%s: error: %s (%s; the limit is %d)\n", path, why, size, DIAG_MAX_FILE_BYTES);
  else if (why) fprintf(d->out, "%s: error: %s\n", path, why);
  else if (bad) fprintf(d->out, "%s: error: cannot read: %s\n", path, strerror(err));
  if (why || bad) {
    d->nerrors++;
    free(buf);
    return NULL;
  }
  SrcFile *f = diag_file_from_buffer(d, path, buf ? buf : "", len);
  free(buf);
  return f;
}

void diag_free_file(SrcFile *f) {
  if (!f) return;
  free(f->path);
  free(f->text);
  free(f->line_start);
  free(f);
}

/* Prints the source line of R and a caret line underneath: '^' at the start of the range and
 * '~' under the rest of it on that line. */
static void print_caret(Diag *d, SrcRange r) {
  const SrcFile *f = d->file;
  if (!f || r.begin.line < 1 || r.begin.line > f->nlines) return;
  size_t s = f->line_start[r.begin.line - 1];
  size_t e = s;
  while (e < f->len && f->text[e] != '\n') e++;
  if (e > s && f->text[e - 1] == '\r') e--;
  /* Very long lines (a 1 MB one-liner) are cut around the caret so a message stays readable. */
  size_t col0 = (size_t)(r.begin.col > 0 ? r.begin.col - 1 : 0);
  size_t from = s, to = e;
  const size_t window = 160;
  if (to - from > window) {
    size_t at = s + (col0 < e - s ? col0 : e - s);
    from = at > s + window / 2 ? at - window / 2 : s;
    while (from > s && (((unsigned char)f->text[from]) & 0xC0) == 0x80) from--;
    to = from + window < e ? from + window : e;
    while (to < e && (((unsigned char)f->text[to]) & 0xC0) == 0x80) to++;
  }
  fprintf(d->out, "%5d | %s%.*s%s\n", r.begin.line, from > s ? "..." : "", (int)(to - from),
          f->text + from, to < e ? "..." : "");
  fprintf(d->out, "      | %s", from > s ? "   " : "");
  size_t caret = s + col0;
  /* One line: underline the range (at least the caret); several lines: to the end of this one. */
  size_t stop = r.end.line != r.begin.line ? to
                : r.end.col > r.begin.col   ? s + (size_t)r.end.col - 1
                                            : caret + 1;
  if (stop > to) stop = to;
  for (size_t i = from; i < caret && i < to;) {
    unsigned char c = (unsigned char)f->text[i];
    fputc(c == '\t' ? '\t' : ' ', d->out);
    int n = utf8_seq_len((const unsigned char *)f->text + i, f->len - i);
    i += n > 0 ? (size_t)n : 1;
  }
  fputc('^', d->out);
  for (size_t i = caret + 1; i < stop;) {
    int n = utf8_seq_len((const unsigned char *)f->text + i, f->len - i);
    if ((((unsigned char)f->text[i]) & 0xC0) != 0x80) fputc('~', d->out);
    i += n > 0 ? (size_t)n : 1;
  }
  fputc('\n', d->out);
}

static void vreport(Diag *d, DiagKind k, SrcRange r, const char *fmt, va_list ap) {
  static const char *names[] = {"error", "warning", "note"};
  if (k == DIAG_ERROR) {
    if (d->nerrors == d->max_errors) {
      fprintf(d->out, "%s: fatal error: too many errors emitted, stopping now\n",
              d->file ? d->file->path : "rein");
      d->nerrors++;
    }
    if (d->nerrors > d->max_errors) return;
    d->nerrors++;
  } else if (d->nerrors > d->max_errors) {
    return; /* after "too many errors", nothing more */
  } else if (k == DIAG_WARNING) {
    d->nwarnings++;
  }
  fprintf(d->out, "%s:%d:%d: %s: ", d->file ? d->file->path : "rein", r.begin.line,
          r.begin.col, names[k]);
  vfprintf(d->out, fmt, ap);
  fputc('\n', d->out);
  print_caret(d, r);
}

void diag_error(Diag *d, SrcRange r, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vreport(d, DIAG_ERROR, r, fmt, ap);
  va_end(ap);
}

void diag_warning(Diag *d, SrcRange r, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vreport(d, DIAG_WARNING, r, fmt, ap);
  va_end(ap);
}

void diag_note(Diag *d, SrcRange r, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vreport(d, DIAG_NOTE, r, fmt, ap);
  va_end(ap);
}
