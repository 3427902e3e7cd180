/* frontend.h — the front end as one call: read, parse, check.
 *
 * Used by the driver (rein check / rein emit --ast) and by the fuzzer, so both exercise exactly
 * the same path.  A FeUnit owns everything the front end allocated for one file.
 */
#ifndef REIN_FRONTEND_H
#define REIN_FRONTEND_H

#include "ast.h"
#include "diag.h"

enum { FE_MAX_FILE_BYTES = DIAG_MAX_FILE_BYTES };

typedef struct {
  SrcFile *file;
  Arena arena;
  Program prog;
  bool parsed;  /* the file was read and parsed without syntax errors */
  bool ok;      /* ... and passed semantic analysis */
} FeUnit;

/* Runs the front end on the file at PATH (or, with fe_check_buffer, on LEN bytes of DATA shown as
 * NAME in messages).  Diagnostics go to D.  Returns u->ok; the unit must be freed with fe_free
 * whatever the result. */
bool fe_check_file(Diag *d, const char *path, FeUnit *u);
bool fe_check_buffer(Diag *d, const char *name, const char *data, size_t len, FeUnit *u);
void fe_free(FeUnit *u);

#endif
