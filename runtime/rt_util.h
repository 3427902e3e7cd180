/* rt_util.h — small pieces shared by the runtime's modules. */
#ifndef REIN_RT_UTIL_H
#define REIN_RT_UTIL_H

#include <stdint.h>

/* splitmix64's finalizer: the counter-based generator behind model init, sampling and task
 * items (the same function as the compiler's builtins.c and rk_lib.c, which are compiled
 * separately). */
static inline uint64_t rt_mix64(uint64_t z) {
  z += 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

#endif
