/* rein/random.h — the one pseudo-random generator of Rein, header-only and freestanding.
 *
 * Everything that draws a random number (model initialisation, sampling, task items, the
 * trainer's shuffles, and through rein_uniform in rein/objective.h the objective language's
 * uniform() in the interpreter, the CPU code and the PTX kernels) goes through rein_mix64, so a
 * draw is a pure function of its key and results repeat bit for bit on every backend.  It is
 * splitmix64's finalizer used as a counter-based generator: the key mixes the seed with the
 * counters that identify the draw.
 */
#ifndef REIN_RANDOM_H
#define REIN_RANDOM_H

#include <stdint.h>

static inline uint64_t rein_mix64(uint64_t z) {
  z += 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

#endif
