/* tok_bpe.c — the BPE model.
 *
 * A piece starts as one symbol per character (per byte, through the byte-level alphabet, when the
 * pre-tokenizer is ByteLevel); the pair of neighbours with the lowest merge rank is merged, the
 * leftmost first among equal ranks, until no neighbouring pair has a merge.  Pairs wait in a
 * binary min-heap keyed (rank, position); an entry whose pair has changed since it was pushed is
 * recognised on pop (its rank no longer is the pair's) and dropped.  With ignore_merges (Llama 3),
 * a piece that is itself in the vocabulary is that token.  Results of pieces shorter than 256
 * bytes are cached (piece bytes -> ids), the cache being emptied when it reaches its bound.
 */
#include "tok_internal.h"

#include <stdlib.h>
#include <string.h>

#define TOK_CACHE_SLOTS (1u << 16)          /* at most half of them used */
#define TOK_CACHE_BYTES ((size_t)4 << 20)
#define TOK_CACHE_MAXLEN 256

void tok_bytelevel_init(Tok *t) {
  /* GPT-2's alphabet: the printable bytes stand for themselves, the others for 256, 257, ... in
   * byte order */
  uint32_t n = 0;
  for (int b = 0; b < 256; b++) {
    int printable = (b >= '!' && b <= '~') || (b >= 0xa1 && b <= 0xac) || (b >= 0xae);
    t->byte_char[b] = printable ? (uint32_t)b : 256 + n++;
  }
  for (int b = 0; b < 256; b++) {
    char u[4];
    int l = tok_utf8_put(t->byte_char[b], u);
    t->byte_id[b] = tok_strmap_get(&t->ids, t->tokens, t->token_len, u, (size_t)l);
  }
}

void tok_cache_free(TokCache *c) {
  free(c->hash);
  free(c->off);
  free(c->plen);
  free(c->ids_off);
  free(c->nids);
  free(c->bytes);
  free(c->ids);
  memset(c, 0, sizeof *c);
}

static void cache_clear(TokCache *c) {
  if (!c->hash) {
    c->mask = TOK_CACHE_SLOTS - 1;
    c->hash = rc_malloc(TOK_CACHE_SLOTS * sizeof *c->hash);
    c->off = rc_malloc(TOK_CACHE_SLOTS * sizeof *c->off);
    c->plen = rc_malloc(TOK_CACHE_SLOTS * sizeof *c->plen);
    c->ids_off = rc_malloc(TOK_CACHE_SLOTS * sizeof *c->ids_off);
    c->nids = rc_malloc(TOK_CACHE_SLOTS * sizeof *c->nids);
    c->bytes = rc_malloc(c->capbytes = TOK_CACHE_BYTES);
    c->ids = rc_malloc((c->capids = TOK_CACHE_BYTES) * sizeof *c->ids);
  }
  memset(c->hash, 0, TOK_CACHE_SLOTS * sizeof *c->hash);
  c->n = c->nbytes = c->nids_used = 0;
}

static void push_id(int32_t **ids, size_t *n, size_t *cap, int32_t id) {
  if (*n == *cap) *ids = rc_realloc(*ids, (*cap = *cap ? 2 * *cap : 256) * sizeof **ids);
  (*ids)[(*n)++] = id;
}

/* Min-heap of (rank << 32 | position). */
static void heap_push(uint64_t *h, size_t *n, uint64_t x) {
  size_t i = (*n)++;
  while (i) {
    size_t p = (i - 1) / 2;
    if (h[p] <= x) break;
    h[i] = h[p];
    i = p;
  }
  h[i] = x;
}

static uint64_t heap_pop(uint64_t *h, size_t *n) {
  uint64_t top = h[0], x = h[--*n];
  size_t i = 0;
  for (;;) {
    size_t c = 2 * i + 1;
    if (c >= *n) break;
    if (c + 1 < *n && h[c + 1] < h[c]) c++;
    if (x <= h[c]) break;
    h[i] = h[c];
    i = c;
  }
  if (*n) h[i] = x;
  return top;
}

/* Push the pair starting at symbol i, if it has a merge. */
static void push_pair(const Tok *t, uint64_t *heap, size_t *hn, int32_t i) {
  int32_t j = t->sym_next[i], m;
  if (j < 0 || t->sym_id[i] < 0 || t->sym_id[j] < 0) return;
  int32_t r = tok_pairmap_get(&t->merges, t->sym_id[i], t->sym_id[j], &m);
  if (r >= 0) heap_push(heap, hn, (uint64_t)(uint32_t)r << 32 | (uint32_t)i);
}

/* BPE of one piece, appended to *ids (no cache). */
static void bpe_merge(Tok *t, const char *s, size_t len, int32_t **ids, size_t *n, size_t *cap) {
  if (len + 1 > t->sym_cap) {
    t->sym_cap = 2 * (len + 1);
    t->sym_id = rc_realloc(t->sym_id, t->sym_cap * sizeof *t->sym_id);
    t->sym_prev = rc_realloc(t->sym_prev, t->sym_cap * sizeof *t->sym_prev);
    t->sym_next = rc_realloc(t->sym_next, t->sym_cap * sizeof *t->sym_next);
    t->heap = rc_realloc(t->heap, 2 * t->sym_cap * sizeof *t->heap);
  }
  /* symbols, indexed by their first byte's position; the piece as the vocabulary spells it */
  if (4 * len + 1 > t->mapped_cap) t->mapped = rc_realloc(t->mapped, t->mapped_cap = 4 * len + 1);
  size_t ml = 0;
  int32_t last = -1, first = -1;
  for (size_t i = 0; i < len;) {
    int32_t id;
    size_t l;
    if (t->byte_level) {
      id = t->byte_id[(unsigned char)s[i]];
      ml += (size_t)tok_utf8_put(t->byte_char[(unsigned char)s[i]], t->mapped + ml);
      l = 1;
    } else {
      uint32_t c;
      int cl = tok_utf8_get((const unsigned char *)s + i, len - i, &c);
      l = cl > 0 ? (size_t)cl : 1;
      id = tok_strmap_get(&t->ids, t->tokens, t->token_len, s + i, l);
      memcpy(t->mapped + ml, s + i, l);
      ml += l;
    }
    int32_t p = (int32_t)i;
    t->sym_id[p] = id;
    t->sym_prev[p] = last;
    t->sym_next[p] = -1;
    if (last >= 0) t->sym_next[last] = p;
    else first = p;
    last = p;
    i += l;
  }
  if (t->ignore_merges) {
    int32_t whole = tok_strmap_get(&t->ids, t->tokens, t->token_len, t->mapped, ml);
    if (whole >= 0) {
      push_id(ids, n, cap, whole);
      return;
    }
  }
  size_t hn = 0;
  for (int32_t i = first; i >= 0; i = t->sym_next[i]) push_pair(t, t->heap, &hn, i);
  while (hn) {
    uint64_t top = heap_pop(t->heap, &hn);
    int32_t i = (int32_t)(uint32_t)top, rank = (int32_t)(top >> 32);
    int32_t j = t->sym_next[i], m;
    if (t->sym_id[i] < 0 || j < 0 || t->sym_id[j] < 0) continue; /* i was merged away */
    if (tok_pairmap_get(&t->merges, t->sym_id[i], t->sym_id[j], &m) != rank) continue; /* stale */
    t->sym_id[i] = m;
    t->sym_id[j] = -2; /* gone */
    int32_t k = t->sym_next[j];
    t->sym_next[i] = k;
    if (k >= 0) t->sym_prev[k] = i;
    if (t->sym_prev[i] >= 0) push_pair(t, t->heap, &hn, t->sym_prev[i]);
    push_pair(t, t->heap, &hn, i);
  }
  for (int32_t i = first; i >= 0; i = t->sym_next[i]) {
    if (t->sym_id[i] >= 0) push_id(ids, n, cap, t->sym_id[i]);
    else if (t->unk_id >= 0) push_id(ids, n, cap, t->unk_id); /* a character outside the vocabulary */
  }
}

void tok_bpe_piece(Tok *t, const char *s, size_t len, int32_t **ids, size_t *n, size_t *cap) {
  if (len >= TOK_CACHE_MAXLEN) {
    bpe_merge(t, s, len, ids, n, cap);
    return;
  }
  TokCache *c = &t->cache;
  if (!c->hash) cache_clear(c);
  uint64_t h = rc_hash_bytes(s, len) | 1;
  size_t slot = h & c->mask;
  for (; c->hash[slot]; slot = (slot + 1) & c->mask)
    if (c->hash[slot] == h && c->plen[slot] == len && !memcmp(c->bytes + c->off[slot], s, len)) {
      for (uint32_t k = 0; k < c->nids[slot]; k++) push_id(ids, n, cap, c->ids[c->ids_off[slot] + k]);
      return;
    }
  size_t before = *n;
  bpe_merge(t, s, len, ids, n, cap);
  size_t got = *n - before;
  if (2 * (c->n + 1) > c->mask || c->nbytes + len > c->capbytes || c->nids_used + got > c->capids) {
    cache_clear(c);
    for (slot = h & c->mask; c->hash[slot]; slot = (slot + 1) & c->mask) {}
  }
  c->hash[slot] = h;
  c->off[slot] = (uint32_t)c->nbytes;
  c->plen[slot] = (uint32_t)len;
  memcpy(c->bytes + c->nbytes, s, len);
  c->nbytes += len;
  c->ids_off[slot] = (uint32_t)c->nids_used;
  c->nids[slot] = (uint32_t)got;
  if (got) memcpy(c->ids + c->nids_used, *ids + before, got * sizeof **ids); /* (none: *ids may be NULL) */
  c->nids_used += got;
  c->n++;
}
