/* tok_pre.c — normalizers and pre-tokenizers.
 *
 * Normalizers are Unicode normalization forms (utf8proc) and Prepend.  Pre-tokenizers cut a text
 * into pieces: Split with the file's own regular expression, compiled by PCRE2 in UTF and
 * Unicode-property mode, with the reference's five delimiter behaviors and invert; ByteLevel with
 * add_prefix_space and, when use_regex, GPT-2's pattern.  ByteLevel's byte -> character mapping is
 * not done here: the BPE model starts from each byte's symbol directly (tok_bpe.c).
 *
 * One translation is applied to patterns: the files are written for Oniguruma (the Rust
 * reference's engine), whose \s is Unicode's White_Space property, while PCRE2's \s in UCP mode
 * leaves out U+0085 (NEL); \s and \S are compiled as \p{White_Space} and \P{White_Space}.
 */
#include "tok_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

void tok_buf_add(TokBuf *b, const char *s, size_t n) {
  if (b->n + n + 1 > b->cap) {
    b->cap = 2 * (b->n + n + 1);
    b->buf = rc_realloc(b->buf, b->cap);
  }
  memcpy(b->buf + b->n, s, n);
  b->n += n;
  b->buf[b->n] = 0;
}

void tok_spans_add(TokSpans *s, size_t off, size_t len) {
  if (!len) return;
  if (s->n == s->cap) {
    s->cap = s->cap ? 2 * s->cap : 64;
    s->v = rc_realloc(s->v, s->cap * sizeof *s->v);
  }
  s->v[s->n].off = off;
  s->v[s->n].len = len;
  s->n++;
}

pcre2_code *tok_regex_compile(const char *pattern, int literal, char *err, size_t errlen) {
  TokBuf b = {0};
  if (literal) {
    tok_buf_add(&b, pattern, strlen(pattern));
  } else {
    for (const char *p = pattern; *p; p++) {
      if (p[0] == '\\' && (p[1] == 's' || p[1] == 'S')) {
        tok_buf_add(&b, p[1] == 's' ? "\\p{White_Space}" : "\\P{White_Space}", 15);
        p++;
      } else if (p[0] == '\\' && p[1]) {
        tok_buf_add(&b, p, 2);
        p++;
      } else {
        tok_buf_add(&b, p, 1);
      }
    }
  }
  int ecode;
  PCRE2_SIZE eoff;
  uint32_t opts = PCRE2_UTF | PCRE2_UCP | PCRE2_NO_UTF_CHECK | (literal ? PCRE2_LITERAL : 0);
  pcre2_code *re = pcre2_compile((PCRE2_SPTR)b.buf, b.n, opts, &ecode, &eoff, NULL);
  free(b.buf);
  if (!re) {
    char msg[256];
    pcre2_get_error_message(ecode, (PCRE2_UCHAR *)msg, sizeof msg);
    snprintf(err, errlen, "the regular expression does not compile (PCRE2, at offset %zu): %s", (size_t)eoff, msg);
    return NULL;
  }
  pcre2_jit_compile(re, PCRE2_JIT_COMPLETE); /* an interpreter fallback when JIT is unavailable */
  return re;
}

static int is_ascii(const char *s, size_t len) {
  for (size_t i = 0; i < len; i++)
    if ((unsigned char)s[i] >= 0x80) return 0;
  return 1;
}

int tok_normalize(const Tok *t, const char *s, size_t len, char **out, size_t *outlen, char *err,
                  size_t errlen) {
  char *cur = rc_malloc(len + 1);
  memcpy(cur, s, len);
  cur[len] = 0;
  size_t n = len;
  for (int i = 0; i < t->nnorms; i++) {
    const TokNorm *nm = &t->norms[i];
    int opts = UTF8PROC_STABLE;
    switch (nm->kind) {
    case TOK_NORM_PREPEND: {
      if (!n) continue;
      size_t pl = strlen(nm->prepend);
      char *o = rc_malloc(pl + n + 1);
      memcpy(o, nm->prepend, pl);
      memcpy(o + pl, cur, n + 1);
      free(cur);
      cur = o;
      n += pl;
      continue;
    }
    case TOK_NORM_NFC: opts |= UTF8PROC_COMPOSE; break;
    case TOK_NORM_NFD: opts |= UTF8PROC_DECOMPOSE; break;
    case TOK_NORM_NFKC: opts |= UTF8PROC_COMPOSE | UTF8PROC_COMPAT; break;
    case TOK_NORM_NFKD: opts |= UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT; break;
    }
    if (is_ascii(cur, n)) continue; /* every normalization form leaves ASCII alone */
    utf8proc_uint8_t *o = NULL;
    utf8proc_ssize_t r = utf8proc_map((const utf8proc_uint8_t *)cur, (utf8proc_ssize_t)n, &o, (utf8proc_option_t)opts);
    if (r < 0) {
      free(cur);
      snprintf(err, errlen, "normalizer: %s", utf8proc_errmsg(r));
      return -1;
    }
    free(cur);
    cur = (char *)o;
    n = (size_t)r;
  }
  *out = cur;
  *outlen = n;
  return 0;
}

/* The regions of s[0, len) that re matches (is_match 1) and the text between them (0).  An empty
 * match is no region but cuts the text between matches there, as in the reference (whose empty
 * matches become empty pieces, dropped): `(?=\p{Lu})` cuts "HelloWorld" into "Hello", "World".
 * With the other behaviors an empty match is an error naming the pre-tokenizer (tok_load.c
 * refuses the patterns it can tell match the empty string; this catches the rest). */
typedef struct {
  size_t start, end;
  int match;
} Region;

static int find_regions(Tok *t, const TokPre *p, const char *s, size_t len, Region **rv, size_t *rn,
                        size_t *rcap, char *err, size_t errlen) {
  pcre2_code *re = p->re;
  int cuts = p->kind == TOK_PRE_BYTELEVEL || p->behavior == TOK_SPLIT_ISOLATED || p->behavior == TOK_SPLIT_REMOVED;
  size_t pos = 0, prev = 0;
  *rn = 0;
#define PUSH(a, b, m)                                                                            \
  do {                                                                                           \
    if (*rn == *rcap) *rv = rc_realloc(*rv, (*rcap = *rcap ? 2 * *rcap : 64) * sizeof **rv);     \
    (*rv)[*rn].start = (a);                                                                      \
    (*rv)[*rn].end = (b);                                                                        \
    (*rv)[(*rn)++].match = (m);                                                                  \
  } while (0)
  while (pos <= len) {
    int rc = pcre2_match(re, (PCRE2_SPTR)s, len, pos, PCRE2_NO_UTF_CHECK, t->md, NULL);
    if (rc == PCRE2_ERROR_NOMATCH) break;
    if (rc < 0) {
      char msg[200];
      pcre2_get_error_message(rc, (PCRE2_UCHAR *)msg, sizeof msg);
      snprintf(err, errlen, "%s: %s: Split.pattern: matching failed: %s", t->path, p->field, msg);
      return -1;
    }
    PCRE2_SIZE *ov = pcre2_get_ovector_pointer(t->md);
    size_t ms = ov[0], me = ov[1];
    if (me == ms) { /* an empty match: a cut, then on from the next character */
      if (!cuts) {
        snprintf(err, errlen, "%s: %s: Split.pattern matched the empty string (at byte %zu of a piece), which is "
                 "not supported with behavior MergedWithPrevious, MergedWithNext or Contiguous", t->path, p->field, ms);
        return -1;
      }
      if (ms > prev) PUSH(prev, ms, 0);
      prev = ms;
      if (ms >= len) break;
      uint32_t c;
      int l = tok_utf8_get((const unsigned char *)s + ms, len - ms, &c);
      pos = ms + (size_t)(l > 0 ? l : 1);
      continue;
    }
    if (ms > prev) PUSH(prev, ms, 0);
    PUSH(ms, me, 1);
    prev = pos = me;
  }
  if (prev < len) PUSH(prev, len, 0);
#undef PUSH
  return 0;
}

/* The pieces of one span split by pre-tokenizer p, appended to out. */
static int split_span(Tok *t, const TokPre *p, TokSpan sp, const char *buf, TokSpans *out,
                      Region **rv, size_t *rcap, char *err, size_t errlen) {
  size_t rn;
  if (find_regions(t, p, buf + sp.off, sp.len, rv, &rn, rcap, err, errlen)) return -1;
  Region *r = *rv;
  if (p->kind == TOK_PRE_SPLIT && p->invert)
    for (size_t i = 0; i < rn; i++) r[i].match = !r[i].match;
  TokSplitBehavior beh = p->kind == TOK_PRE_SPLIT ? p->behavior : TOK_SPLIT_ISOLATED;
  /* fold the regions into pieces in place, as the reference's split does */
  size_t k = 0;
  int prev_match = 0;
  switch (beh) {
  case TOK_SPLIT_REMOVED:
    for (size_t i = 0; i < rn; i++)
      if (!r[i].match) r[k++] = r[i];
    break;
  case TOK_SPLIT_ISOLATED:
    k = rn;
    break;
  case TOK_SPLIT_MERGED_PREV:
    for (size_t i = 0; i < rn; i++) {
      if (r[i].match && !prev_match && k) r[k - 1].end = r[i].end;
      else r[k++] = r[i];
      prev_match = r[i].match;
    }
    break;
  case TOK_SPLIT_MERGED_NEXT: /* the same from the end */
    k = rn;
    for (size_t i = rn; i-- > 0;) {
      Region cur = r[i];
      if (cur.match && !prev_match && k < rn) r[k].start = cur.start;
      else r[--k] = cur;
      prev_match = cur.match;
    }
    memmove(r, r + k, (rn - k) * sizeof *r);
    k = rn - k;
    break;
  case TOK_SPLIT_CONTIGUOUS:
    for (size_t i = 0; i < rn; i++) {
      if (k && r[i].match == prev_match) r[k - 1].end = r[i].end;
      else r[k++] = r[i];
      prev_match = r[i].match;
    }
    break;
  }
  for (size_t i = 0; i < k; i++) tok_spans_add(out, sp.off + r[i].start, r[i].end - r[i].start);
  return 0;
}

int tok_pretokenize(Tok *t, TokBuf *b, size_t off, size_t len, TokSpans *out, char *err,
                    size_t errlen) {
  TokSpans cur = {0}, next = {0};
  tok_spans_add(&cur, off, len);
  Region *rv = NULL;
  size_t rcap = 0;
  int rc = 0;
  for (int i = 0; i < t->npres && !rc; i++) {
    const TokPre *p = &t->pres[i];
    next.n = 0;
    for (size_t k = 0; k < cur.n && !rc; k++) {
      TokSpan sp = cur.v[k];
      if (p->kind == TOK_PRE_BYTELEVEL && p->add_prefix_space && b->buf[sp.off] != ' ') {
        size_t at = b->n;
        if (b->n + sp.len + 2 > b->cap) b->buf = rc_realloc(b->buf, b->cap = 2 * (b->n + sp.len + 2));
        b->buf[b->n++] = ' ';
        memcpy(b->buf + b->n, b->buf + sp.off, sp.len); /* disjoint: the copy goes past the end */
        b->n += sp.len;
        b->buf[b->n] = 0;
        sp.off = at;
        sp.len++;
      }
      if (p->re) rc = split_span(t, p, sp, b->buf, &next, &rv, &rcap, err, errlen);
      else tok_spans_add(&next, sp.off, sp.len);
    }
    TokSpans tmp = cur;
    cur = next;
    next = tmp;
  }
  for (size_t k = 0; k < cur.n && !rc; k++) tok_spans_add(out, cur.v[k].off, cur.v[k].len);
  free(cur.v);
  free(next.v);
  free(rv);
  return rc;
}
