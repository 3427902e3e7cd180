/* rc_mem.c — checked allocation, the runtime's one out-of-memory policy (rein/common.h): print
 * what could not be had and exit with RC_EXIT_OOM.  A zero-byte request returns a unique
 * pointer, so callers never see NULL. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rein/common.h"

static void *oom(size_t n) {
  fprintf(stderr, "rein: out of memory (%zu bytes)\n", n);
  exit(RC_EXIT_OOM);
}

void *rc_malloc(size_t n) {
  void *p = malloc(n ? n : 1);
  return p ? p : oom(n);
}

void *rc_calloc(size_t n, size_t size) {
  if (size && n > (size_t)-1 / size) return oom((size_t)-1);
  void *p = calloc(n ? n : 1, size ? size : 1);
  return p ? p : oom(n * size);
}

void *rc_calloc_lines(size_t n, size_t size) {
  if (size && n > ((size_t)-1 - 63) / size) return oom((size_t)-1);
  size_t bytes = ((n ? n : 1) * (size ? size : 1) + 63) & ~(size_t)63;
  void *p = aligned_alloc(64, bytes);
  if (!p) return oom(bytes);
  return memset(p, 0, bytes);
}

void *rc_realloc(void *p, size_t n) {
  void *q = realloc(p, n ? n : 1);
  return q ? q : oom(n);
}

char *rc_strdup(const char *s) {
  size_t n = strlen(s) + 1;
  return memcpy(rc_malloc(n), s, n);
}
