/* frontend.c — the front-end pipeline: source file → parse → sema.  See frontend.h. */
#include "frontend.h"

#include <string.h>

#include "parse.h"
#include "sema.h"

static bool run(Diag *d, FeUnit *u) {
  if (!u->file) return false;
  if (u->file->len > FE_MAX_FILE_BYTES) {
    fprintf(d->out, "%s: error: file too large (%zu bytes; the limit is %d)\n", u->file->path,
            u->file->len, FE_MAX_FILE_BYTES);
    d->nerrors++;
    return false;
  }
  const Diag saved = *d;
  d->file = u->file;
  u->parsed = parse_program(u->file, d, &u->arena, &u->prog);
  /* Semantic analysis of a program with syntax errors would mostly report their echoes. */
  u->ok = u->parsed && sema_check(&u->prog, d, &u->arena);
  d->file = saved.file;
  return u->ok;
}

bool fe_check_buffer(Diag *d, const char *name, const char *data, size_t len, FeUnit *u) {
  memset(u, 0, sizeof *u);
  u->file = diag_file_from_buffer(d, name, data, len);
  return run(d, u);
}

bool fe_check_file(Diag *d, const char *path, FeUnit *u) {
  memset(u, 0, sizeof *u);
  u->file = diag_read_file(d, path);
  return run(d, u);
}

void fe_free(FeUnit *u) {
  ast_arena_free(&u->arena);
  diag_free_file(u->file);
  memset(u, 0, sizeof *u);
}
