/* chat_mem.c — the render context of the chat-template renderer: its arena, its byte budget, its
 * error exit and its growable buffers, and the JavaScript whitespace set the reference trims.
 *
 * Everything one render creates (tokens, nodes, values, strings) lives in one arena, freed at once
 * by chat_free_all; nothing is freed piecemeal, so a value may be shared freely.  The arena's
 * total is bounded (CHAT_MAX_BYTES): a runaway template fails with an error instead of exhausting
 * memory.  Errors leave through chat_fail, a longjmp to chat_render's frame, which frees the arena.
 */
#include "chat_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rein/common.h"

struct ChatChunk {
  ChatChunk *next;
  size_t used, cap;
  _Alignas(16) unsigned char data[];
};

#define CHAT_CHUNK (64u << 10)

void *chat_alloc(ChatCtx *c, size_t n) {
  n = (n + 15) & ~(size_t)15;
  ChatChunk *h = c->chunks;
  if (!h || h->cap - h->used < n) {
    size_t cap = n > CHAT_CHUNK ? n : CHAT_CHUNK;
    if (c->bytes + cap > CHAT_MAX_BYTES)
      chat_fail(c, c->line, "the template needs more than %u MiB of memory (limit)",
                CHAT_MAX_BYTES >> 20);
    h = rc_malloc(sizeof *h + cap);
    h->next = c->chunks;
    h->used = 0;
    h->cap = cap;
    c->chunks = h;
    c->bytes += cap;
  }
  void *p = h->data + h->used;
  h->used += n;
  memset(p, 0, n);
  return p;
}

char *chat_strndup(ChatCtx *c, const char *s, size_t n) {
  char *p = chat_alloc(c, n + 1);
  if (n) memcpy(p, s, n);
  p[n] = 0;
  return p;
}

void chat_free_all(ChatCtx *c) {
  while (c->chunks) {
    ChatChunk *n = c->chunks->next;
    free(c->chunks);
    c->chunks = n;
  }
  c->bytes = 0;
}

void chat_fail(ChatCtx *c, int line, const char *fmt, ...) {
  if (c->err && c->errlen) {
    int k = line > 0 ? snprintf(c->err, c->errlen, "chat template line %d: ", line)
                     : snprintf(c->err, c->errlen, "chat template: ");
    if (k >= 0 && (size_t)k < c->errlen) {
      va_list ap;
      va_start(ap, fmt);
      vsnprintf(c->err + k, c->errlen - (size_t)k, fmt, ap);
      va_end(ap);
    }
  }
  longjmp(c->jb, 1);
}

void chat_buf_add(ChatCtx *c, ChatBuf *b, const char *s, size_t n) {
  if (b->len + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 64;
    while (cap < b->len + n + 1) cap *= 2;
    char *p = chat_alloc(c, cap);
    if (b->len) memcpy(p, b->p, b->len);
    b->p = p;
    b->cap = cap;
  }
  if (n) memcpy(b->p + b->len, s, n);
  b->len += n;
  b->p[b->len] = 0;
}

void chat_buf_addc(ChatCtx *c, ChatBuf *b, char ch) { chat_buf_add(c, b, &ch, 1); }

/* The code point of the UTF-8 sequence at p, or -1 (sets *len). */
static long chat_cp(const unsigned char *p, const unsigned char *end, size_t *len) {
  if (p >= end) return -1;
  if (p[0] < 0x80) { *len = 1; return p[0]; }
  if ((p[0] & 0xE0) == 0xC0 && end - p >= 2) { *len = 2; return ((p[0] & 0x1F) << 6) | (p[1] & 0x3F); }
  if ((p[0] & 0xF0) == 0xE0 && end - p >= 3) {
    *len = 3;
    return ((p[0] & 0x0F) << 12) | ((p[1] & 0x3F) << 6) | (p[2] & 0x3F);
  }
  return -1;   /* 4-byte sequences are never whitespace */
}

static int chat_is_ws(long cp) {
  if (cp <= 32) return cp == 32 || (cp >= 9 && cp <= 13);
  return cp == 0xA0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 ||
         cp == 0x2029 || cp == 0x202F || cp == 0x205F || cp == 0x3000 || cp == 0xFEFF;
}

size_t chat_ws_len(const char *p, const char *end) {
  size_t len = 0;
  long cp = chat_cp((const unsigned char *)p, (const unsigned char *)end, &len);
  return cp >= 0 && chat_is_ws(cp) ? len : 0;
}

size_t chat_ws_back(const char *start, const char *end) {
  for (size_t k = 1; k <= 3 && (size_t)(end - start) >= k; k++) {
    unsigned char b = (unsigned char)end[-(long)k];
    if (k == 1 ? b < 0x80 : (b & 0xC0) != 0x80) return chat_ws_len(end - k, end) == k ? k : 0;
  }
  return 0;
}
