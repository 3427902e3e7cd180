/* tok_encode.c — tok_encode: text -> ids, through the components tok_load.c read.
 *
 *   1. the text is cut at the added tokens with normalized: false (raw text, tok_added.c);
 *   2. each section between them is normalized (tok_pre.c), then cut at the added tokens with
 *      normalized: true;
 *   3. each remaining section is pre-tokenized into pieces (tok_pre.c), and each piece goes
 *      through the BPE model (tok_bpe.c);
 *   4. with add_special, the post-processor's template puts its special tokens around the ids.
 */
#include "tok_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
  int32_t *v;
  size_t n, cap;
} IdList;

static void add_id(IdList *l, int32_t id) {
  if (l->n == l->cap) l->v = rc_realloc(l->v, (l->cap = l->cap ? 2 * l->cap : 256) * sizeof *l->v);
  l->v[l->n++] = id;
}

/* Step 3 for s[0, len). */
static int encode_plain(Tok *t, const char *s, size_t len, IdList *out, char *err, size_t errlen) {
  if (!len) return 0;
  TokBuf b = {0};
  TokSpans sp = {0};
  tok_buf_add(&b, s, len);
  int rc = tok_pretokenize(t, &b, 0, len, &sp, err, errlen);
  for (size_t i = 0; i < sp.n && !rc; i++) tok_bpe_piece(t, b.buf + sp.v[i].off, sp.v[i].len, &out->v, &out->n, &out->cap);
  free(b.buf);
  free(sp.v);
  return rc;
}

/* Steps 2 and 3 for a section of raw text. */
static int encode_section(Tok *t, const char *s, size_t len, IdList *out, char *err, size_t errlen) {
  if (!len) return 0;
  if (!t->nnorms && !t->any_normalized_added) return encode_plain(t, s, len, out, err, errlen);
  char *ns;
  size_t nl;
  if (tok_normalize(t, s, len, &ns, &nl, err, errlen)) return -1;
  size_t pos = 0, st, en;
  int which, rc = 0;
  while (!rc && t->any_normalized_added && tok_added_find(t, ns, nl, pos, 1, &which, &st, &en)) {
    rc = encode_plain(t, ns + pos, st - pos, out, err, errlen);
    add_id(out, t->added[which].id);
    pos = en;
  }
  if (!rc) rc = encode_plain(t, ns + pos, nl - pos, out, err, errlen);
  free(ns);
  return rc;
}

int tok_encode(Tok *t, const char *text, size_t len, int add_special, int32_t **ids, size_t *n,
               char *err, size_t errlen) {
  *ids = NULL;
  *n = 0;
  for (size_t i = 0; i < len;) {
    uint32_t c;
    int l = tok_utf8_get((const unsigned char *)text + i, len - i, &c);
    if (l < 0) {
      snprintf(err, errlen, "the text is not valid UTF-8 (byte %zu)", i);
      return -1;
    }
    i += (size_t)l;
  }
  IdList seq = {0};
  size_t pos = 0, st, en;
  int which, rc = 0;
  while (!rc && tok_added_find(t, text, len, pos, 0, &which, &st, &en)) {
    rc = encode_section(t, text + pos, st - pos, &seq, err, errlen);
    add_id(&seq, t->added[which].id);
    pos = en;
  }
  if (!rc) rc = encode_section(t, text + pos, len - pos, &seq, err, errlen);
  if (rc) {
    free(seq.v);
    return -1;
  }
  if (!add_special || !t->has_tmpl) {
    *ids = seq.v ? seq.v : rc_malloc(sizeof **ids);
    *n = seq.n;
    return 0;
  }
  IdList out = {0};
  for (int k = 0; k < t->ntmpl; k++) {
    if (t->tmpl[k] >= 0) add_id(&out, t->tmpl[k]);
    else
      for (size_t i = 0; i < seq.n; i++) add_id(&out, seq.v[i]);
  }
  free(seq.v);
  *ids = out.v ? out.v : rc_malloc(sizeof **ids);
  *n = out.n;
  return 0;
}
