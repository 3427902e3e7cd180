/* rc_hash.c — content checksums of files (rein/common.h), for checkpoints: XXH3-64 from the
 * xxHash library (Debian's libxxhash-dev), streamed so a file of any size takes constant memory. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "rein/common.h"

uint64_t rc_hash_bytes(const void *data, size_t n) { return XXH3_64bits(data, n); }

int rc_hash_file(const char *path, uint64_t *hash, uint64_t *size, char *err, size_t errlen) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    snprintf(err, errlen, "%s: cannot open (%s)", path, strerror(errno));
    return -1;
  }
  XXH3_state_t *st = XXH3_createState();
  if (!st) {
    fprintf(stderr, "rein: out of memory (xxHash state)\n");
    exit(RC_EXIT_OOM);
  }
  XXH3_64bits_reset(st);
  unsigned char buf[1 << 16];
  uint64_t n = 0;
  size_t k;
  while ((k = fread(buf, 1, sizeof buf, f)) > 0) {
    XXH3_64bits_update(st, buf, k);
    n += k;
  }
  int bad = ferror(f);
  fclose(f);
  *hash = XXH3_64bits_digest(st);
  XXH3_freeState(st);
  *size = n;
  if (bad) {
    snprintf(err, errlen, "%s: read error", path);
    return -1;
  }
  return 0;
}
