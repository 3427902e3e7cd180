/* chat_value.c — the values of the chat-template interpreter and their conversions to text.
 *
 * The reference renderer runs in JavaScript, so its conversions are JavaScript's, and these
 * follow them (docs/chat-templates.md):
 *   - {{ v }}: undefined and none write nothing; booleans "true"/"false"; integers in decimal;
 *     floats as Number.prototype.toString, except that an integral float keeps ".0" ("2.0");
 *     lists and dicts as JSON with undefined written "undefined".
 *   - `~` and `+` with a string use String(v): a float 2.0 becomes "2" there.
 *   - == is JavaScript's loose equality on the underlying values (1 == "1", none == undefined;
 *     lists and dicts equal only to themselves).
 *   - tojson is JSON.stringify with Python's separators (", " and ": "), non-ASCII kept.
 * Integers are exact up to 2^53 (the reference's numbers are doubles); beyond, an error.
 */
#include "chat_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static ChatVal *chat_new(ChatCtx *c, ChatKind k) {
  ChatVal *v = chat_alloc(c, sizeof *v);
  v->k = k;
  return v;
}

ChatVal *chat_undef(ChatCtx *c) { return chat_new(c, CV_UNDEF); }
ChatVal *chat_none(ChatCtx *c) { return chat_new(c, CV_NONE); }
ChatVal *chat_bool(ChatCtx *c, int b) {
  ChatVal *v = chat_new(c, CV_BOOL);
  v->i = b != 0;
  return v;
}
ChatVal *chat_int(ChatCtx *c, int64_t i) {
  if (i > ((int64_t)1 << 53) || i < -((int64_t)1 << 53))
    chat_fail(c, c->line, "integer beyond 2^53 (the reference's numbers are doubles)");
  ChatVal *v = chat_new(c, CV_INT);
  v->i = i;
  return v;
}
ChatVal *chat_float(ChatCtx *c, double f) {
  ChatVal *v = chat_new(c, CV_FLOAT);
  v->f = f;
  return v;
}
ChatVal *chat_str(ChatCtx *c, const char *s, size_t n) {
  ChatVal *v = chat_new(c, CV_STR);
  v->s = chat_strndup(c, s, n);
  v->n = n;
  return v;
}
ChatVal *chat_str_ref(ChatCtx *c, const char *s, size_t n) {
  ChatVal *v = chat_new(c, CV_STR);
  v->s = s;
  v->n = n;
  return v;
}
ChatVal *chat_cstr(ChatCtx *c, const char *s) { return chat_str(c, s, strlen(s)); }
ChatVal *chat_list(ChatCtx *c) { return chat_new(c, CV_LIST); }
ChatVal *chat_dict(ChatCtx *c, ChatKind k) { return chat_new(c, k); }
ChatVal *chat_func(ChatCtx *c, ChatFn fn, ChatVal *self) {
  ChatVal *v = chat_new(c, CV_FUNC);
  v->fn = fn;
  v->self = self;
  return v;
}

static void chat_grow(ChatCtx *c, ChatVal *l, int keys) {
  if (l->len < l->cap) return;
  int cap = l->cap ? l->cap * 2 : 4;
  ChatVal **it = chat_alloc(c, (size_t)cap * sizeof *it);
  if (l->len) memcpy(it, l->items, (size_t)l->len * sizeof *it);
  l->items = it;
  if (keys) {
    ChatVal **k = chat_alloc(c, (size_t)cap * sizeof *k);
    if (l->len) memcpy(k, l->keys, (size_t)l->len * sizeof *k);
    l->keys = k;
  }
  l->cap = cap;
}

void chat_list_push(ChatCtx *c, ChatVal *l, ChatVal *v) {
  chat_grow(c, l, 0);
  l->items[l->len++] = v;
}

ChatVal *chat_dict_get(const ChatVal *d, const char *key, size_t n) {
  for (int i = 0; i < d->len; i++)
    if (d->keys[i]->n == n && !memcmp(d->keys[i]->s, key, n)) return d->items[i];
  return NULL;
}

void chat_dict_set(ChatCtx *c, ChatVal *d, ChatVal *key, ChatVal *v) {
  for (int i = 0; i < d->len; i++)
    if (d->keys[i]->n == key->n && !memcmp(d->keys[i]->s, key->s, key->n)) {
      d->items[i] = v;
      return;
    }
  chat_grow(c, d, 1);
  d->keys[d->len] = key;
  d->items[d->len++] = v;
}

const char *chat_kind_name(ChatKind k) {
  switch (k) {
    case CV_UNDEF: return "undefined";
    case CV_NONE: return "none";
    case CV_BOOL: return "boolean";
    case CV_INT: return "integer";
    case CV_FLOAT: return "float";
    case CV_STR: return "string";
    case CV_LIST: return "list";
    case CV_DICT: return "dict";
    case CV_NS: return "namespace";
    case CV_FUNC: return "function";
  }
  return "?";
}

int chat_truthy(const ChatVal *v) {
  switch (v->k) {
    case CV_UNDEF: case CV_NONE: return 0;
    case CV_BOOL: case CV_INT: return v->i != 0;
    case CV_FLOAT: return v->f != 0 && !isnan(v->f);
    case CV_STR: return v->n > 0;
    case CV_LIST: case CV_DICT: return v->len > 0;
    case CV_NS: case CV_FUNC: return 1;
  }
  return 0;
}

/* JavaScript's ToNumber of a string (StringToNumber), or NAN. */
static double chat_str_number(const char *s, size_t n) {
  const char *e = s + n;
  size_t k;
  while (s < e && (k = chat_ws_len(s, e)) > 0) s += k;
  while (e > s && (k = chat_ws_back(s, e)) > 0) e -= k;
  if (s == e) return 0;
  char buf[128];
  if ((size_t)(e - s) >= sizeof buf) return NAN;
  memcpy(buf, s, (size_t)(e - s));
  buf[e - s] = 0;
  if (buf[0] == '0' && (buf[1] == 'x' || buf[1] == 'X' || buf[1] == 'o' || buf[1] == 'O' ||
                        buf[1] == 'b' || buf[1] == 'B')) {
    int base = buf[1] == 'x' || buf[1] == 'X' ? 16 : buf[1] == 'o' || buf[1] == 'O' ? 8 : 2;
    double v = 0;
    if (!buf[2]) return NAN;
    for (const char *p = buf + 2; *p; p++) {
      int d = *p >= '0' && *p <= '9' ? *p - '0' : *p >= 'a' && *p <= 'f' ? *p - 'a' + 10
            : *p >= 'A' && *p <= 'F' ? *p - 'A' + 10 : 99;
      if (d >= base) return NAN;
      v = v * base + d;
    }
    return v;
  }
  const char *p = buf;
  if (*p == '+' || *p == '-') p++;
  if (!strcmp(p, "Infinity")) return buf[0] == '-' ? -INFINITY : INFINITY;
  /* StrDecimalLiteral: digits [. digits] [e[+-]digits] or . digits [...] */
  const char *q = p;
  int digits = 0;
  while (*q >= '0' && *q <= '9') q++, digits++;
  if (*q == '.') { q++; while (*q >= '0' && *q <= '9') q++, digits++; }
  if (!digits) return NAN;
  if (*q == 'e' || *q == 'E') {
    q++;
    if (*q == '+' || *q == '-') q++;
    if (!(*q >= '0' && *q <= '9')) return NAN;
    while (*q >= '0' && *q <= '9') q++;
  }
  if (*q) return NAN;
  return strtod(buf, NULL);
}

static int chat_is_num(const ChatVal *v) { return v->k == CV_INT || v->k == CV_FLOAT || v->k == CV_BOOL; }
static double chat_num(const ChatVal *v) { return v->k == CV_FLOAT ? v->f : (double)v->i; }

int chat_loose_eq(ChatCtx *c, const ChatVal *a, const ChatVal *b) {
  int an = a->k == CV_UNDEF || a->k == CV_NONE, bn = b->k == CV_UNDEF || b->k == CV_NONE;
  if (an || bn) return an && bn;
  if (a->k == CV_STR && b->k == CV_STR) return a->n == b->n && !memcmp(a->s, b->s, a->n);
  if (chat_is_num(a) && chat_is_num(b)) return chat_num(a) == chat_num(b);
  if (a->k == CV_STR && chat_is_num(b)) return chat_str_number(a->s, a->n) == chat_num(b);
  if (b->k == CV_STR && chat_is_num(a)) return chat_str_number(b->s, b->n) == chat_num(a);
  if (a->k == b->k || (a->k >= CV_LIST && b->k >= CV_LIST))
    return a == b;   /* lists, dicts, namespaces, functions: identity */
  /* JavaScript would compare a container's string form with the scalar */
  chat_fail(c, c->line, "comparing a %s with a %s is outside the supported subset",
            chat_kind_name(a->k), chat_kind_name(b->k));
}

int chat_strict_eq(const ChatVal *a, const ChatVal *b) {
  if ((a->k == CV_INT || a->k == CV_FLOAT) && (b->k == CV_INT || b->k == CV_FLOAT))
    return chat_num(a) == chat_num(b);
  if (a->k != b->k) return 0;
  switch (a->k) {
    case CV_UNDEF: case CV_NONE: return 1;
    case CV_BOOL: return a->i == b->i;
    case CV_STR: return a->n == b->n && !memcmp(a->s, b->s, a->n);
    case CV_INT: case CV_FLOAT: case CV_LIST: case CV_DICT: case CV_NS: case CV_FUNC: return a == b;
  }
  return 0;
}

void chat_js_number(ChatCtx *c, ChatBuf *b, double x) {
  if (isnan(x)) { chat_buf_add(c, b, "NaN", 3); return; }
  if (isinf(x)) { chat_buf_add(c, b, x < 0 ? "-Infinity" : "Infinity", x < 0 ? 9 : 8); return; }
  if (x == 0) { chat_buf_addc(c, b, '0'); return; }
  if (x < 0) { chat_buf_addc(c, b, '-'); x = -x; }
  /* the shortest digits that read back as x, and the decimal exponent */
  char e[40];
  int prec = 1;
  for (; prec <= 17; prec++) {
    snprintf(e, sizeof e, "%.*e", prec - 1, x);
    if (strtod(e, NULL) == x) break;
  }
  char dig[20];
  int k = 0;
  const char *p = e;
  for (; *p && *p != 'e'; p++)
    if (*p >= '0' && *p <= '9') dig[k++] = *p;
  while (k > 1 && dig[k - 1] == '0') k--;
  int n = atoi(p + 1) + 1;   /* x = 0.d1d2... * 10^n */
  char out[64];
  int o = 0;
  if (k <= n && n <= 21) {
    for (int i = 0; i < k; i++) out[o++] = dig[i];
    for (int i = k; i < n; i++) out[o++] = '0';
  } else if (0 < n && n <= 21) {
    for (int i = 0; i < k; i++) { if (i == n) out[o++] = '.'; out[o++] = dig[i]; }
  } else if (-6 < n && n <= 0) {
    out[o++] = '0';
    out[o++] = '.';
    for (int i = 0; i < -n; i++) out[o++] = '0';
    for (int i = 0; i < k; i++) out[o++] = dig[i];
  } else {
    out[o++] = dig[0];
    if (k > 1) { out[o++] = '.'; for (int i = 1; i < k; i++) out[o++] = dig[i]; }
    o += snprintf(out + o, sizeof out - (size_t)o, "e%c%d", n - 1 >= 0 ? '+' : '-', abs(n - 1));
  }
  chat_buf_add(c, b, out, (size_t)o);
}

static void chat_int_text(ChatCtx *c, ChatBuf *b, int64_t i) {
  char t[32];
  int k = snprintf(t, sizeof t, "%lld", (long long)i);
  chat_buf_add(c, b, t, (size_t)k);
}

void chat_to_text(ChatCtx *c, ChatBuf *b, const ChatVal *v) {
  switch (v->k) {
    case CV_UNDEF: case CV_NONE: return;
    case CV_BOOL: chat_buf_add(c, b, v->i ? "true" : "false", v->i ? 4 : 5); return;
    case CV_INT: chat_int_text(c, b, v->i); return;
    case CV_FLOAT:
      if (v->f == 0 && signbit(v->f)) chat_buf_add(c, b, "-0.0", 4);
      else if (isfinite(v->f) && v->f == floor(v->f) && fabs(v->f) < 1e21) {
        char t[400];
        int k = snprintf(t, sizeof t, "%.1f", v->f);
        chat_buf_add(c, b, t, (size_t)k);
      } else {
        chat_js_number(c, b, v->f);
      }
      return;
    case CV_STR: chat_buf_add(c, b, v->s, v->n); return;
    case CV_LIST: case CV_DICT: case CV_NS: chat_json(c, b, v, -1, 0, 0); return;
    case CV_FUNC: break;
  }
  chat_fail(c, c->line, "cannot write a function as text");
}

void chat_concat_text(ChatCtx *c, ChatBuf *b, const ChatVal *v) {
  switch (v->k) {
    case CV_BOOL: case CV_INT: case CV_STR: chat_to_text(c, b, v); return;
    case CV_FLOAT: chat_js_number(c, b, v->f); return;
    case CV_UNDEF: case CV_NONE: case CV_LIST: case CV_DICT: case CV_NS: case CV_FUNC: break;
  }
  chat_fail(c, c->line, "cannot concatenate a %s as text (outside the supported subset)",
            chat_kind_name(v->k));
}

static void chat_json_str(ChatCtx *c, ChatBuf *b, const char *s, size_t n) {
  chat_buf_addc(c, b, '"');
  for (size_t i = 0; i < n; i++) {
    unsigned char ch = (unsigned char)s[i];
    const char *esc = ch == '"' ? "\\\"" : ch == '\\' ? "\\\\" : ch == '\b' ? "\\b" : ch == '\f' ? "\\f"
                    : ch == '\n' ? "\\n" : ch == '\r' ? "\\r" : ch == '\t' ? "\\t" : NULL;
    if (esc) chat_buf_add(c, b, esc, 2);
    else if (ch < 0x20) {
      char u[8];
      snprintf(u, sizeof u, "\\u%04x", ch);
      chat_buf_add(c, b, u, 6);
    } else chat_buf_addc(c, b, (char)ch);
  }
  chat_buf_addc(c, b, '"');
}

static void chat_json_pad(ChatCtx *c, ChatBuf *b, int indent, int depth) {
  chat_buf_addc(c, b, '\n');
  for (int i = 0; i < indent * depth; i++) chat_buf_addc(c, b, ' ');
}

void chat_json(ChatCtx *c, ChatBuf *b, const ChatVal *v, int indent, int undef_null, int depth) {
  if (depth > CHAT_MAX_DEPTH) chat_fail(c, c->line, "tojson: nesting deeper than %d", CHAT_MAX_DEPTH);
  switch (v->k) {
    case CV_UNDEF:
      if (undef_null) chat_buf_add(c, b, "null", 4);
      else chat_buf_add(c, b, "undefined", 9);
      return;
    case CV_NONE: chat_buf_add(c, b, "null", 4); return;
    case CV_BOOL: case CV_INT: chat_to_text(c, b, v); return;
    case CV_FLOAT:
      if (isfinite(v->f)) chat_js_number(c, b, v->f);
      else chat_buf_add(c, b, "null", 4);
      return;
    case CV_STR: chat_json_str(c, b, v->s, v->n); return;
    case CV_LIST: case CV_DICT: case CV_NS: {
      int is_list = v->k == CV_LIST;
      chat_buf_addc(c, b, is_list ? '[' : '{');
      for (int i = 0; i < v->len; i++) {
        if (i) chat_buf_add(c, b, indent > 0 ? "," : ", ", indent > 0 ? 1 : 2);
        if (indent > 0) chat_json_pad(c, b, indent, depth + 1);
        if (!is_list) {
          chat_json_str(c, b, v->keys[i]->s, v->keys[i]->n);
          chat_buf_add(c, b, ": ", 2);
        }
        chat_json(c, b, v->items[i], indent, undef_null, depth + 1);
      }
      if (indent > 0 && v->len) chat_json_pad(c, b, indent, depth);
      chat_buf_addc(c, b, is_list ? ']' : '}');
      return;
    }
    case CV_FUNC: break;
  }
  chat_fail(c, c->line, "cannot convert a function to JSON");
}

size_t chat_utf8_len(unsigned char b) {
  return b < 0x80 ? 1 : (b & 0xE0) == 0xC0 ? 2 : (b & 0xF0) == 0xE0 ? 3 : (b & 0xF8) == 0xF0 ? 4 : 1;
}

int64_t chat_utf16_len(const char *s, size_t n) {
  int64_t k = 0;
  for (size_t i = 0; i < n;) {
    size_t l = chat_utf8_len((unsigned char)s[i]);
    k += l == 4 ? 2 : 1;
    i += l;
  }
  return k;
}
