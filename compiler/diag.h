/* diag.h — source files, source ranges and compiler diagnostics.
 *
 * Every message the compiler prints about a .rein program goes through this module, so the
 * format is uniform:
 *
 *     FILE:LINE:COL: error: message
 *         3 | let x = foo + 1;
 *           |         ^~~
 *
 * Lines and columns are 1-based; columns count bytes, carets are aligned by code points (tabs are
 * copied), so UTF-8 in comments and strings does not shift them.  Diagnostics are written to a
 * FILE* (stderr for the driver, a memory stream or /dev/null for the fuzzer).
 */
#ifndef REIN_DIAG_H
#define REIN_DIAG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

typedef struct {
  int line, col; /* 1-based; col counts bytes */
} SrcPos;

typedef struct {
  SrcPos begin, end; /* end is exclusive */
} SrcRange;

/* A source file held in memory, NUL-terminated, with the offset of each line start. */
typedef struct {
  char *path;
  char *text;
  size_t len;
  size_t *line_start; /* line_start[i] = byte offset of line i+1 */
  int nlines;
} SrcFile;

typedef enum { DIAG_ERROR, DIAG_WARNING, DIAG_NOTE } DiagKind;

typedef struct {
  FILE *out;
  const SrcFile *file;
  int nerrors, nwarnings;
  int max_errors;   /* stop printing (and ask callers to stop) past this many errors */
  bool color;
} Diag;

/* The largest source file read (16 MiB; a 1 MB program already has 11 000 statements). */
enum { DIAG_MAX_FILE_BYTES = 16 << 20 };

/* Reads PATH into a SrcFile.  A directory, or a file (or endless stream) of more than
 * DIAG_MAX_FILE_BYTES, is an error.  On failure prints "PATH: error: ..." to d->out and returns NULL.
 * The text is checked before parsing: NUL bytes and invalid UTF-8 are reported with their line
 * and column, and the file is then rejected (returns NULL after the diagnostic). */
SrcFile *diag_read_file(Diag *d, const char *path);

/* Wraps an in-memory buffer (copied) as a SrcFile, with the same checks as diag_read_file. */
SrcFile *diag_file_from_buffer(Diag *d, const char *path, const char *data, size_t len);

void diag_free_file(SrcFile *f);

void diag_init(Diag *d, FILE *out);

/* Prints a diagnostic at RNG of the current file, with the source line and a caret. */
void diag_error(Diag *d, SrcRange rng, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void diag_warning(Diag *d, SrcRange rng, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void diag_note(Diag *d, SrcRange rng, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* True once max_errors errors were reported: callers stop early. */
bool diag_too_many(const Diag *d);

/* The text of range R of file F in BUF (size N): true when R lies on one line and its text fits
 * (at most N - 1 bytes); false otherwise (also for F NULL). */
bool diag_source_text(const SrcFile *f, SrcRange r, char *buf, size_t n);

/* Builds a range from two positions / merges two ranges. */
SrcRange diag_range(int l0, int c0, int l1, int c1);
SrcRange diag_span(SrcRange a, SrcRange b);

#endif
