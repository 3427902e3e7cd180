/* fuzz_util.h — what the reader harnesses (fuzz_<reader>.c) share: the fuzz input as a file
 * path (a memfd, /proc/self/fd/N, rewritten for every input, so no disk I/O and nothing left
 * behind), a sink for messages, and the seed writer switch.
 *
 * Several readers take a path, not a buffer; a memfd gives them a real file (fopen, open, fstat
 * and pread all work) whose contents are exactly the input.  A harness whose seeds are binary
 * (safetensors, buffer.bin) or made by the code itself (state.json) writes them into the
 * directory named by REIN_FUZZ_WRITE_SEEDS when that variable is set, then exits: that is how
 * its corpus_<reader>/ seeds were made (docs/compiler.md, "Fuzzing the readers").
 */
#ifndef REIN_FUZZ_UTIL_H
#define REIN_FUZZ_UTIL_H

#define _GNU_SOURCE
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The input as the contents of one memfd, named by the returned path. */
static inline const char *fz_input_path(const uint8_t *data, size_t size) {
  static int fd = -1;
  static char path[64];
  if (fd < 0) {
    fd = memfd_create("rein-fuzz-input", 0);
    if (fd < 0) abort();
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
  }
  if (ftruncate(fd, 0)) abort();
  for (size_t at = 0; at < size;) {
    ssize_t k = pwrite(fd, data + at, size - at, (off_t)at);
    if (k <= 0) abort();
    at += (size_t)k;
  }
  return path;
}

/* A copy of the input with a terminating NUL (for readers of text). */
static inline char *fz_text(const uint8_t *data, size_t size) {
  char *t = malloc(size + 1);
  if (!t) abort();
  memcpy(t, data, size);
  t[size] = 0;
  return t;
}

/* Where diagnostics written to a FILE go. */
static inline FILE *fz_sink(void) {
  static FILE *sink;
  if (!sink) sink = fopen("/dev/null", "w");
  if (!sink) abort();
  return sink;
}

/* The directory to write seeds into, or NULL (fuzzing). */
static inline const char *fz_seed_dir(void) {
  const char *d = getenv("REIN_FUZZ_WRITE_SEEDS");
  return d && *d ? d : NULL;
}

/* Writes SIZE bytes to DIR/NAME (seed writing; aborts on failure). */
static inline void fz_write_seed(const char *dir, const char *name, const void *data, size_t size) {
  char p[4096];
  snprintf(p, sizeof p, "%s/%s", dir, name);
  FILE *f = fopen(p, "wb");
  if (!f || fwrite(data, 1, size, f) != size || fclose(f)) {
    fprintf(stderr, "cannot write %s\n", p);
    abort();
  }
}

/* Reads a whole file (seed writing); NULL when it cannot. */
static inline unsigned char *fz_read_all(const char *path, size_t *n) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  size_t cap = 1 << 16;
  unsigned char *p = malloc(cap);
  *n = 0;
  for (size_t k; p && (k = fread(p + *n, 1, cap - *n, f)) > 0;)
    if ((*n += k) == cap) p = realloc(p, cap *= 2);
  fclose(f);
  return p;
}

#endif
