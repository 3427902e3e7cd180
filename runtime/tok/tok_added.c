/* tok_added.c — added tokens (added_tokens of tokenizer.json) found in the text.
 *
 * They are matched before pre-tokenization, leftmost-longest: the first position where any added
 * token starts wins, and there the longest one.  Tokens with normalized: false are matched in the
 * raw text; those with normalized: true in the normalized text of what lies between the first
 * ones, by their own content normalized the same way (so a token written in NFD matches the NFC
 * text of a file whose normalizer is NFC, as in the reference).  lstrip / rstrip make the token take the whitespace (Unicode White_Space) on its left /
 * right with it.  Candidates are indexed by their first byte, longest first.
 */
#include "tok_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

static const Tok *sort_tok;
static int by_len_desc(const void *a, const void *b) {
  int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
  int32_t lx = sort_tok->added[x].match_len, ly = sort_tok->added[y].match_len;
  return lx != ly ? (ly > lx) - (ly < lx) : (x > y) - (x < y);
}

int tok_added_index(Tok *t, char *err, size_t errlen) {
  for (int i = 0; i < t->nadded; i++) {
    TokAdded *a = &t->added[i];
    a->match = a->content;
    a->match_len = a->len;
    if (a->normalized && t->nnorms) {
      char *ns, msg[256];
      size_t nl;
      if (tok_normalize(t, a->content, (size_t)a->len, &ns, &nl, msg, sizeof msg)) {
        snprintf(err, errlen, "%s: added_tokens: id %d: %s", t->path, a->id, msg);
        return -1;
      }
      if (!nl || nl > INT32_MAX) {
        free(ns);
        snprintf(err, errlen, "%s: added_tokens: id %d: the normalized content is empty", t->path, a->id);
        return -1;
      }
      a->norm_content = ns;
      a->match = ns;
      a->match_len = (int32_t)nl;
    }
  }
  for (int i = 0; i < t->nadded; i++) {
    unsigned b = (unsigned char)t->added[i].match[0];
    t->first_idx[b] = rc_realloc(t->first_idx[b], (size_t)(t->first_n[b] + 1) * sizeof(int32_t));
    t->first_idx[b][t->first_n[b]++] = i;
    if (t->added[i].normalized) t->any_normalized_added = 1;
  }
  sort_tok = t;
  for (int b = 0; b < 256; b++)
    if (t->first_n[b] > 1) qsort(t->first_idx[b], (size_t)t->first_n[b], sizeof(int32_t), by_len_desc);
  sort_tok = NULL;
  return 0;
}

static int is_white(uint32_t c) {
  if ((c >= 9 && c <= 13) || c == 0x85) return 1;
  utf8proc_category_t k = utf8proc_category((utf8proc_int32_t)c);
  return k == UTF8PROC_CATEGORY_ZS || k == UTF8PROC_CATEGORY_ZL || k == UTF8PROC_CATEGORY_ZP;
}

/* The length of the whitespace character ending at s[end) (not before from), or 0. */
static size_t white_before(const char *s, size_t from, size_t end) {
  if (end <= from) return 0;
  size_t i = end - 1;
  while (i > from && ((unsigned char)s[i] & 0xc0) == 0x80) i--;
  uint32_t c;
  int l = tok_utf8_get((const unsigned char *)s + i, end - i, &c);
  return l > 0 && (size_t)l == end - i && is_white(c) ? end - i : 0;
}

int tok_added_find(const Tok *t, const char *s, size_t len, size_t from, int norm, int *which,
                   size_t *start, size_t *end) {
  for (size_t i = from; i < len; i++) {
    unsigned b = (unsigned char)s[i];
    for (int k = 0; k < t->first_n[b]; k++) {
      const TokAdded *a = &t->added[t->first_idx[b][k]];
      if (a->normalized != norm || (size_t)a->match_len > len - i || memcmp(s + i, a->match, (size_t)a->match_len))
        continue;
      size_t st = i, en = i + (size_t)a->match_len, w;
      if (a->lstrip)
        while ((w = white_before(s, from, st)) > 0) st -= w;
      if (a->rstrip)
        for (;;) {
          uint32_t c;
          int l = en < len ? tok_utf8_get((const unsigned char *)s + en, len - en, &c) : -1;
          if (l <= 0 || !is_white(c)) break;
          en += (size_t)l;
        }
      *which = t->first_idx[b][k];
      *start = st;
      *end = en;
      return 1;
    }
  }
  return 0;
}
