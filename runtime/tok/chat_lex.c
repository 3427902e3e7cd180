/* chat_lex.c — a chat template's source to tokens, as the reference renderer reads it.
 *
 * @huggingface/jinja's Template preprocesses the source before tokenizing, with the options
 * Hugging Face chat templates are written for (trim_blocks and lstrip_blocks on, as transformers
 * configures Python's Jinja):
 *   1. one trailing "\n" of the template is dropped;
 *   2. lstrip_blocks: spaces and tabs between a line start (after \n, \r, U+2028, U+2029) and
 *      "{%", "{#" or "{-" are removed;
 *   3. trim_blocks: the "\n" right after "%}", "#}" or "-}" is removed — anywhere in the source,
 *      text and string literals included, as the reference does it.
 * Then text runs to the next "{%", "{{" or "{#"; "{%-", "{{-", "{#-" strip the trailing JavaScript
 * whitespace of the text before, "-%}", "-}}", "-#}" the leading whitespace after.  Inside tags a
 * '-' or '+' after an operator or an opening bracket is a sign (folded into a following number).
 * Every token keeps the line of the original source it starts on, for error messages.
 */
#include "chat_internal.h"

#include <string.h>

typedef struct {   /* text with the original line of each byte */
  char *s;
  int *ln;
  size_t n;
} ChatSrc;

static int chat_line_start(const ChatSrc *a, size_t i) {
  if (i == 0) return 1;
  char p = a->s[i - 1];
  if (p == '\n' || p == '\r') return 1;
  return i >= 3 && (unsigned char)a->s[i - 3] == 0xE2 && (unsigned char)a->s[i - 2] == 0x80 &&
         ((unsigned char)p == 0xA8 || (unsigned char)p == 0xA9);
}

/* Steps 2 and 3 of the preprocessing (above), from a into a fresh copy. */
static ChatSrc chat_preprocess(ChatCtx *c, const ChatSrc *a) {
  ChatSrc b = {chat_alloc(c, a->n + 1), chat_alloc(c, (a->n + 1) * sizeof(int)), 0};
  for (size_t i = 0; i < a->n;) {   /* lstrip_blocks */
    if (chat_line_start(a, i)) {
      size_t j = i;
      while (j < a->n && (a->s[j] == ' ' || a->s[j] == '\t')) j++;
      if (j > i && j + 1 < a->n && a->s[j] == '{' &&
          (a->s[j + 1] == '%' || a->s[j + 1] == '#' || a->s[j + 1] == '-')) {
        for (int k = 0; k < 2; k++, j++, b.n++) { b.s[b.n] = a->s[j]; b.ln[b.n] = a->ln[j]; }
        i = j;
        continue;
      }
    }
    b.s[b.n] = a->s[i];
    b.ln[b.n++] = a->ln[i++];
  }
  ChatSrc d = {chat_alloc(c, b.n + 1), chat_alloc(c, (b.n + 1) * sizeof(int)), 0};
  for (size_t i = 0; i < b.n;) {   /* trim_blocks */
    if (i + 2 < b.n && (b.s[i] == '#' || b.s[i] == '%' || b.s[i] == '-') && b.s[i + 1] == '}' &&
        b.s[i + 2] == '\n') {
      for (int k = 0; k < 2; k++, i++, d.n++) { d.s[d.n] = b.s[i]; d.ln[d.n] = b.ln[i]; }
      i++;
      continue;
    }
    d.s[d.n] = b.s[i];
    d.ln[d.n++] = b.ln[i++];
  }
  d.ln[d.n] = d.n ? d.ln[d.n - 1] : 1;
  return d;
}

typedef struct {
  ChatCtx *c;
  ChatSrc src;
  size_t pos;
  ChatTok *t;
  int n, cap;
} ChatLex;

static void chat_push(ChatLex *L, ChatTokKind k, const char *s, size_t n, size_t at) {
  if (L->n == L->cap) {
    int cap = L->cap ? L->cap * 2 : 256;
    ChatTok *t = chat_alloc(L->c, (size_t)cap * sizeof *t);
    if (L->n) memcpy(t, L->t, (size_t)L->n * sizeof *t);
    L->t = t;
    L->cap = cap;
  }
  L->t[L->n++] = (ChatTok){k, s, n, L->src.ln[at]};
}

static _Noreturn void chat_lex_fail(ChatLex *L, const char *msg, char ch) {
  if (ch) chat_fail(L->c, L->src.ln[L->pos], "%s '%c'", msg, ch);
  chat_fail(L->c, L->src.ln[L->pos], "%s", msg);
}

static int chat_isdigit(char ch) { return ch >= '0' && ch <= '9'; }
static int chat_isword(char ch) {
  return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || chat_isdigit(ch) || ch == '_';
}

/* The reference's consumeWhile: the input may not end while the predicate holds. */
static void chat_digits(ChatLex *L) {
  while (L->pos < L->src.n && chat_isdigit(L->src.s[L->pos])) L->pos++;
  if (L->pos >= L->src.n) chat_lex_fail(L, "unexpected end of the template inside a tag", 0);
}

static int chat_hex(char ch) {
  if (ch >= '0' && ch <= '9') return ch - '0';
  if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
  if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
  return -1;
}

/* A string literal's value (pos after the opening quote; leaves pos on the closing one). */
static void chat_string(ChatLex *L, char quote, size_t at) {
  ChatBuf b = {0};
  const char *s = L->src.s;
  for (;;) {
    if (L->pos >= L->src.n) chat_lex_fail(L, "unterminated string literal", 0);
    char ch = s[L->pos];
    if (ch == quote) break;
    L->pos++;
    if (ch != '\\') { chat_buf_addc(L->c, &b, ch); continue; }
    if (L->pos >= L->src.n) chat_lex_fail(L, "unterminated string literal", 0);
    char e = s[L->pos++];
    const char *simple = strchr("ntrbfv'\"\\", e);
    if (e && simple) {
      chat_buf_addc(L->c, &b, "\n\t\r\b\f\v'\"\\"[simple - "ntrbfv'\"\\"]);
    } else if (e == 'x' || e == 'u') {
      int nd = e == 'x' ? 2 : 4;
      long cp = 0;
      for (int k = 0; k < nd; k++) {
        int h = L->pos + (size_t)k < L->src.n ? chat_hex(s[L->pos + (size_t)k]) : -1;
        if (h < 0) chat_lex_fail(L, "invalid hexadecimal escape in a string literal", 0);
        cp = cp * 16 + h;
      }
      L->pos += (size_t)nd;
      if (cp == 0 || (cp >= 0xD800 && cp <= 0xDFFF))
        chat_lex_fail(L, "a NUL or surrogate escape is outside the supported subset", 0);
      char u[3];
      size_t un = 0;
      if (cp < 0x80) u[un++] = (char)cp;
      else if (cp < 0x800) { u[un++] = (char)(0xC0 | (cp >> 6)); u[un++] = (char)(0x80 | (cp & 0x3F)); }
      else {
        u[un++] = (char)(0xE0 | (cp >> 12));
        u[un++] = (char)(0x80 | ((cp >> 6) & 0x3F));
        u[un++] = (char)(0x80 | (cp & 0x3F));
      }
      chat_buf_add(L->c, &b, u, un);
    } else {
      chat_lex_fail(L, "unknown escape in a string literal:", e);
    }
  }
  chat_push(L, CT_STR, b.p ? b.p : "", b.len, at);
}

static const struct { const char *seq; ChatTokKind kind; } chat_rules[] = {
  {"{%", CT_OPEN_STMT}, {"%}", CT_CLOSE_STMT}, {"{{", CT_OPEN_EXPR}, {"}}", CT_CLOSE_EXPR},
  {"(", CT_LPAREN}, {")", CT_RPAREN}, {"{", CT_LBRACE}, {"}", CT_RBRACE}, {"[", CT_LBRACKET},
  {"]", CT_RBRACKET}, {",", CT_COMMA}, {".", CT_DOT}, {":", CT_COLON}, {"|", CT_PIPE},
  {"<=", CT_CMP}, {">=", CT_CMP}, {"==", CT_CMP}, {"!=", CT_CMP}, {"<", CT_CMP}, {">", CT_CMP},
  {"+", CT_ADD}, {"-", CT_ADD}, {"~", CT_ADD}, {"**", CT_POW}, {"*", CT_MUL}, {"//", CT_MUL},
  {"/", CT_MUL}, {"%", CT_MUL}, {"=", CT_EQUALS},
};

static void chat_strip_text(ChatLex *L) {
  if (!L->n || L->t[L->n - 1].kind != CT_TEXT) return;
  ChatTok *t = &L->t[L->n - 1];
  size_t k;
  while (t->n && (k = chat_ws_back(t->s, t->s + t->n)) > 0) t->n -= k;
  if (!t->n) L->n--;
}

static void chat_skip_ws(ChatLex *L) {
  size_t k;
  while (L->pos < L->src.n && (k = chat_ws_len(L->src.s + L->pos, L->src.s + L->src.n)) > 0) L->pos += k;
}

/* One step of the reference's tokenizer loop; returns after pushing at most one token. */
static void chat_lex_step(ChatLex *L, int *curly) {
  const char *s = L->src.s;
  size_t n = L->src.n;
  int last = L->n ? (int)L->t[L->n - 1].kind : -1;
  if (last < 0 || last == CT_CLOSE_STMT || last == CT_CLOSE_EXPR || last == CT_COMMENT) {
    size_t end = L->pos;
    while (end < n && !(s[end] == '{' && end + 1 < n &&
                        (s[end + 1] == '%' || s[end + 1] == '{' || s[end + 1] == '#'))) end++;
    if (end > L->pos) {
      chat_push(L, CT_TEXT, s + L->pos, end - L->pos, L->pos);
      L->pos = end;
      return;
    }
  }
  if (s[L->pos] == '{' && L->pos + 1 < n) {
    char nx = s[L->pos + 1];
    if (nx == '#') {
      size_t at = L->pos;
      L->pos += 2;
      int before = L->pos < n && s[L->pos] == '-';
      if (before) L->pos++;
      const char *e = NULL;
      for (size_t k = L->pos; k + 1 < n; k++)
        if (s[k] == '#' && s[k + 1] == '}') { e = s + k; break; }
      if (!e) chat_lex_fail(L, "unclosed comment {# ... #}", 0);
      int after = e > s + L->pos && e[-1] == '-';
      if (before) chat_strip_text(L);
      chat_push(L, CT_COMMENT, s + L->pos, (size_t)(e - s) - L->pos, at);
      L->pos = (size_t)(e - s) + 2;
      if (after) chat_skip_ws(L);
      return;
    }
    if (L->pos + 2 < n && s[L->pos + 2] == '-' && (nx == '%' || nx == '{')) {
      chat_strip_text(L);
      chat_push(L, nx == '%' ? CT_OPEN_STMT : CT_OPEN_EXPR, s + L->pos, 2, L->pos);
      if (nx == '{') *curly = 0;
      L->pos += 3;
      return;
    }
  }
  chat_skip_ws(L);
  if (L->pos >= n) chat_lex_fail(L, "unexpected end of the template inside a tag", 0);
  char ch = s[L->pos];
  if (ch == '-' && L->pos + 2 < n && s[L->pos + 2] == '}' &&
      (s[L->pos + 1] == '%' || s[L->pos + 1] == '}')) {
    chat_push(L, s[L->pos + 1] == '%' ? CT_CLOSE_STMT : CT_CLOSE_EXPR, s + L->pos + 1, 2, L->pos);
    L->pos += 3;
    chat_skip_ws(L);
    return;
  }
  if ((ch == '-' || ch == '+') && last != CT_IDENT && last != CT_NUM && last != CT_STR &&
      last != CT_RPAREN && last != CT_RBRACKET) {
    if (last == CT_TEXT || last < 0) chat_lex_fail(L, "unexpected character", ch);
    size_t at = L->pos++;
    chat_digits(L);
    size_t end = L->pos;
    if (end > at + 1 && s[end] == '.' && end + 1 < n && chat_isdigit(s[end + 1])) {
      L->pos++;
      chat_digits(L);
    }
    chat_push(L, L->pos > at + 1 ? CT_NUM : CT_UNARY, s + at, L->pos - at, at);
    return;
  }
  for (size_t r = 0; r < sizeof chat_rules / sizeof chat_rules[0]; r++) {
    size_t len = strlen(chat_rules[r].seq);
    if (chat_rules[r].kind == CT_CLOSE_EXPR && *curly > 0) continue;
    if (L->pos + len <= n && !memcmp(s + L->pos, chat_rules[r].seq, len)) {
      ChatTokKind k = chat_rules[r].kind;
      chat_push(L, k, s + L->pos, len, L->pos);
      if (k == CT_OPEN_EXPR) *curly = 0;
      else if (k == CT_LBRACE) ++*curly;
      else if (k == CT_RBRACE) --*curly;
      L->pos += len;
      return;
    }
  }
  if (ch == '\'' || ch == '"') {
    size_t at = L->pos++;
    chat_string(L, ch, at);
    L->pos++;
    return;
  }
  if (chat_isdigit(ch)) {
    size_t at = L->pos;
    chat_digits(L);
    if (last != CT_DOT && s[L->pos] == '.' && L->pos + 1 < n && chat_isdigit(s[L->pos + 1])) {
      L->pos++;
      chat_digits(L);
    }
    chat_push(L, CT_NUM, s + at, L->pos - at, at);
    return;
  }
  if (chat_isword(ch)) {
    size_t at = L->pos;
    while (L->pos < n && chat_isword(s[L->pos])) L->pos++;
    if (L->pos >= n) chat_lex_fail(L, "unexpected end of the template inside a tag", 0);
    chat_push(L, CT_IDENT, s + at, L->pos - at, at);
    return;
  }
  if ((unsigned char)ch >= 0x80) chat_lex_fail(L, "unexpected non-ASCII character inside a tag", 0);
  chat_lex_fail(L, "unexpected character", ch);
}

ChatTok *chat_lex(ChatCtx *c, const char *src, size_t len, int *ntok) {
  ChatSrc a = {chat_strndup(c, src, len), chat_alloc(c, (len + 1) * sizeof(int)), len};
  int line = 1;
  for (size_t i = 0; i < len; i++) {
    a.ln[i] = line;
    if (src[i] == '\n') line++;
  }
  if (a.n && a.s[a.n - 1] == '\n') a.n--;
  ChatLex L = {c, chat_preprocess(c, &a), 0, NULL, 0, 0};
  int curly = 0;
  while (L.pos < L.src.n) chat_lex_step(&L, &curly);
  *ntok = L.n;
  return L.t;
}
