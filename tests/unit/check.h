/* check.h — the assertion of the C unit tests: CHECK(cond, fmt, ...) reports file, line and a
 * formatted message, counts the failure in `failures` and goes on. */
#ifndef REIN_TEST_CHECK_H
#define REIN_TEST_CHECK_H

#include <stdio.h>

static int failures;
#define CHECK(cond, ...)                                   \
  do {                                                     \
    if (!(cond)) {                                         \
      fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__); \
      fprintf(stderr, __VA_ARGS__);                        \
      fputc('\n', stderr);                                 \
      failures++;                                          \
    }                                                      \
  } while (0)

#endif
