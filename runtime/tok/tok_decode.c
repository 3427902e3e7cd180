/* tok_decode.c — tok_decode (ids -> text through the file's decoder) and the lookups of tok.h.
 *
 * The ByteLevel decoder turns each token's characters back into the bytes they stand for and
 * reads the bytes as UTF-8, a malformed sequence becoming U+FFFD as the WHATWG decoder does (one
 * per maximal ill-formed subpart); added tokens are written as they are.  Without a decoder the
 * tokens are joined by spaces, as the reference does.  Nothing else is done to the text (the
 * clean_up_tokenization_spaces of tokenizer_config.json belongs to the Python transformers
 * library, not to the tokenizer).
 */
#include "tok_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Append bytes p[0, n) read as UTF-8, malformed subparts replaced by U+FFFD. */
static void add_lossy(TokBuf *o, const unsigned char *p, size_t n) {
  size_t i = 0;
  while (i < n) {
    unsigned b = p[i];
    if (b < 0x80) {
      tok_buf_add(o, (const char *)p + i, 1);
      i++;
      continue;
    }
    size_t need;
    unsigned lo = 0x80, hi = 0xbf;
    if (b >= 0xc2 && b <= 0xdf) need = 1;
    else if (b >= 0xe0 && b <= 0xef) { need = 2; if (b == 0xe0) lo = 0xa0; if (b == 0xed) hi = 0x9f; }
    else if (b >= 0xf0 && b <= 0xf4) { need = 3; if (b == 0xf0) lo = 0x90; if (b == 0xf4) hi = 0x8f; }
    else { tok_buf_add(o, "\xef\xbf\xbd", 3); i++; continue; }
    size_t k = 1;
    for (; k <= need && i + k < n; k++) {
      unsigned c = p[i + k];
      if (c < lo || c > hi) break;
      lo = 0x80;
      hi = 0xbf;
    }
    if (k == need + 1) tok_buf_add(o, (const char *)p + i, k);
    else tok_buf_add(o, "\xef\xbf\xbd", 3);
    i += k;
  }
}

char *tok_decode(const Tok *t, const int32_t *ids, size_t n, int skip_special, char *err,
                 size_t errlen) {
  /* the inverse of the byte-level alphabet: code points 0..323 */
  int inv[324];
  for (int c = 0; c < 324; c++) inv[c] = -1;
  for (int b = 0; b < 256; b++) inv[t->byte_char[b]] = b;
  TokBuf out = {0}, pend = {0};
  tok_buf_add(&out, "", 0);
  int first = 1;
  for (size_t i = 0; i < n; i++) {
    int32_t id = ids[i];
    if (id < 0 || id >= t->ntokens || !t->tokens[id]) {
      snprintf(err, errlen, "id %d (at %zu) is not in the vocabulary of %d tokens", id, i, t->ntokens);
      free(out.buf);
      free(pend.buf);
      return NULL;
    }
    if (skip_special && t->is_special[id]) continue;
    const char *s = t->tokens[id];
    size_t len = (size_t)t->token_len[id];
    if (!t->decoder_bytelevel) {
      if (!first) tok_buf_add(&out, " ", 1);
      tok_buf_add(&out, s, len);
    } else if (t->is_added[id]) {
      add_lossy(&out, (const unsigned char *)pend.buf, pend.n);
      pend.n = 0;
      tok_buf_add(&out, s, len);
    } else {
      for (size_t k = 0; k < len;) {
        uint32_t c;
        int l = tok_utf8_get((const unsigned char *)s + k, len - k, &c);
        if (l < 0) l = 1, c = 0xfffd;
        if (c < 324 && inv[c] >= 0) {
          char byte = (char)inv[c];
          tok_buf_add(&pend, &byte, 1);
        } else {
          tok_buf_add(&pend, s + k, (size_t)l); /* not of the alphabet: the character itself */
        }
        k += (size_t)l;
      }
    }
    first = 0;
  }
  add_lossy(&out, (const unsigned char *)pend.buf, pend.n);
  free(pend.buf);
  return out.buf;
}

int tok_vocab_size(const Tok *t) { return t->ntokens; }

int tok_token_id(const Tok *t, const char *token) {
  return tok_strmap_get(&t->ids, t->tokens, t->token_len, token, strlen(token));
}

const char *tok_id_token(const Tok *t, int id) {
  return id >= 0 && id < t->ntokens ? t->tokens[id] : NULL;
}

int tok_is_special(const Tok *t, int id) { return id >= 0 && id < t->ntokens && t->is_special[id]; }

const char *tok_chat_template(const Tok *t) { return t->chat_template; }
const char *tok_bos_token(const Tok *t) { return t->bos_token; }
const char *tok_eos_token(const Tok *t) { return t->eos_token; }
