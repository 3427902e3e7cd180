/* tok_map.c — the base of the library: UTF-8 encoding and decoding, and the two hash tables of a
 * tokenizer: token string -> id (over the strings a Tok already holds, so the table is only ids)
 * and merge pair -> (rank, merged id).  Open addressing with linear probing, sized to at most half
 * full; they only grow while a file is loaded.
 */
#include "tok_internal.h"

#include <string.h>

static size_t map_cap(size_t expect) {
  size_t cap = 16;
  while (cap < 2 * expect + 1) cap <<= 1;
  return cap;
}

void tok_strmap_init(TokStrMap *m, size_t expect) {
  size_t cap = map_cap(expect);
  m->slot = rc_malloc(cap * sizeof *m->slot);
  memset(m->slot, 0xff, cap * sizeof *m->slot);
  m->mask = cap - 1;
  m->n = 0;
}

void tok_strmap_free(TokStrMap *m) {
  free(m->slot);
  m->slot = NULL;
}

static void strmap_grow(TokStrMap *m, char *const *strs, const int32_t *lens) {
  TokStrMap big;
  tok_strmap_init(&big, 2 * (m->n + 1));
  for (size_t i = 0; i <= m->mask; i++)
    if (m->slot[i] >= 0) tok_strmap_put(&big, strs, lens, m->slot[i]);
  free(m->slot);
  *m = big;
}

void tok_strmap_put(TokStrMap *m, char *const *strs, const int32_t *lens, int32_t id) {
  if (2 * (m->n + 1) > m->mask) strmap_grow(m, strs, lens);
  const char *s = strs[id];
  size_t len = (size_t)lens[id];
  size_t i = rc_hash_bytes(s, len) & m->mask;
  for (;; i = (i + 1) & m->mask) {
    int32_t o = m->slot[i];
    if (o < 0) {
      m->slot[i] = id;
      m->n++;
      return;
    }
    if ((size_t)lens[o] == len && !memcmp(strs[o], s, len)) {
      m->slot[i] = id;
      return;
    }
  }
}

int32_t tok_strmap_get(const TokStrMap *m, char *const *strs, const int32_t *lens, const char *s,
                       size_t len) {
  size_t i = rc_hash_bytes(s, len) & m->mask;
  for (;; i = (i + 1) & m->mask) {
    int32_t o = m->slot[i];
    if (o < 0) return -1;
    if ((size_t)lens[o] == len && !memcmp(strs[o], s, len)) return o;
  }
}

static size_t pair_hash(uint64_t k) {
  k ^= k >> 33;
  k *= 0xff51afd7ed558ccdULL;
  k ^= k >> 33;
  k *= 0xc4ceb9fe1a85ec53ULL;
  k ^= k >> 33;
  return (size_t)k;
}

void tok_pairmap_init(TokPairMap *m, size_t expect) {
  size_t cap = map_cap(expect);
  m->key = rc_calloc(cap, sizeof *m->key);
  m->rank = rc_malloc(cap * sizeof *m->rank);
  m->merged = rc_malloc(cap * sizeof *m->merged);
  m->mask = cap - 1;
  m->n = 0;
}

void tok_pairmap_free(TokPairMap *m) {
  free(m->key);
  free(m->rank);
  free(m->merged);
  m->key = NULL;
  m->rank = m->merged = NULL;
}

int tok_pairmap_put(TokPairMap *m, int32_t a, int32_t b, int32_t rank, int32_t merged) {
  if (2 * (m->n + 1) > m->mask) {
    TokPairMap big;
    tok_pairmap_init(&big, 2 * (m->n + 1));
    for (size_t i = 0; i <= m->mask; i++)
      if (m->key[i]) {
        uint64_t k = m->key[i] - 1;
        tok_pairmap_put(&big, (int32_t)(k >> 32), (int32_t)(uint32_t)k, m->rank[i], m->merged[i]);
      }
    tok_pairmap_free(m);
    *m = big;
  }
  uint64_t key = ((uint64_t)(uint32_t)a << 32 | (uint32_t)b) + 1;
  for (size_t i = pair_hash(key) & m->mask;; i = (i + 1) & m->mask) {
    if (!m->key[i]) {
      m->key[i] = key;
      m->rank[i] = rank;
      m->merged[i] = merged;
      m->n++;
      return 1;
    }
    if (m->key[i] == key) {
      m->rank[i] = rank;
      m->merged[i] = merged;
      return 0;
    }
  }
}

int32_t tok_pairmap_get(const TokPairMap *m, int32_t a, int32_t b, int32_t *merged) {
  uint64_t key = ((uint64_t)(uint32_t)a << 32 | (uint32_t)b) + 1;
  for (size_t i = pair_hash(key) & m->mask;; i = (i + 1) & m->mask) {
    if (!m->key[i]) return -1;
    if (m->key[i] == key) {
      *merged = m->merged[i];
      return m->rank[i];
    }
  }
}

int tok_utf8_put(uint32_t c, char *o) {
  if (c < 0x80) { o[0] = (char)c; return 1; }
  if (c < 0x800) { o[0] = (char)(0xc0 | c >> 6); o[1] = (char)(0x80 | (c & 63)); return 2; }
  if (c < 0x10000) {
    o[0] = (char)(0xe0 | c >> 12); o[1] = (char)(0x80 | (c >> 6 & 63)); o[2] = (char)(0x80 | (c & 63));
    return 3;
  }
  o[0] = (char)(0xf0 | c >> 18); o[1] = (char)(0x80 | (c >> 12 & 63));
  o[2] = (char)(0x80 | (c >> 6 & 63)); o[3] = (char)(0x80 | (c & 63));
  return 4;
}

int tok_utf8_get(const unsigned char *s, size_t n, uint32_t *c) {
  unsigned b = s[0];
  if (b < 0x80) { *c = b; return 1; }
  int len;
  uint32_t v, min;
  if (b >= 0xc2 && b <= 0xdf) { len = 2; v = b & 0x1f; min = 0x80; }
  else if (b >= 0xe0 && b <= 0xef) { len = 3; v = b & 0x0f; min = 0x800; }
  else if (b >= 0xf0 && b <= 0xf4) { len = 4; v = b & 0x07; min = 0x10000; }
  else return -1;
  if ((size_t)len > n) return -1;
  for (int i = 1; i < len; i++) {
    if ((s[i] & 0xc0) != 0x80) return -1;
    v = v << 6 | (s[i] & 0x3f);
  }
  if (v < min || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff)) return -1;
  *c = v;
  return len;
}
