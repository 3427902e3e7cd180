/* chat_filter.c — the library of the chat-template interpreter: filters, tests, the methods of
 * strings and dicts, and the global functions (namespace, range, raise_exception).
 *
 * Each behaves as @huggingface/jinja's does, including where that differs from Python's Jinja
 * (docs/chat-templates.md): strip/lstrip/rstrip ignore their argument and remove all whitespace;
 * capitalize leaves the rest of the string as it is; a string's length counts UTF-16 code units;
 * dict.get without a default gives none.  Case mapping (upper, lower, capitalize) is done for
 * ASCII text only: text with other characters fails rather than risk a different mapping.
 * What the reference has but this subset does not (sort, unique, dictsort, int/float parsing of
 * strings, tests with arguments, ...) fails with an error naming it.
 */
#include "chat_internal.h"

#include <math.h>
#include <string.h>

#define CHAT_MAX_RANGE 1000000

static int chat_eq(const char *s, size_t n, const char *w) { return n == strlen(w) && !memcmp(s, w, n); }

static ChatVal *chat_kwarg(ChatVal *kw, const char *name) { return kw ? chat_dict_get(kw, name, strlen(name)) : NULL; }

/* The positional argument i, else keyword argument name, else NULL. */
static ChatVal *chat_arg(ChatVal **args, int nargs, int i, ChatVal *kw, const char *name) {
  if (i < nargs) return args[i];
  return name ? chat_kwarg(kw, name) : NULL;
}

static void chat_only_kw(ChatCtx *c, ChatVal *kw, const char *what, const char *const *known) {
  for (int i = 0; kw && i < kw->len; i++) {
    int ok = 0;
    for (int k = 0; known[k]; k++) ok |= chat_eq(kw->keys[i]->s, kw->keys[i]->n, known[k]);
    if (!ok)
      chat_fail(c, c->line, "%s: keyword argument '%.*s' is outside the supported subset", what,
                (int)kw->keys[i]->n, kw->keys[i]->s);
  }
}

static void chat_ascii_only(ChatCtx *c, const ChatVal *s, const char *what) {
  for (size_t i = 0; i < s->n; i++)
    if ((unsigned char)s->s[i] >= 0x80)
      chat_fail(c, c->line, "%s of non-ASCII text is outside the supported subset", what);
}

static ChatVal *chat_case(ChatCtx *c, const ChatVal *s, int upper, const char *what) {
  chat_ascii_only(c, s, what);
  ChatVal *r = chat_str(c, s->s, s->n);
  char *p = (char *)r->s;
  for (size_t i = 0; i < r->n; i++) {
    if (upper && p[i] >= 'a' && p[i] <= 'z') p[i] = (char)(p[i] - 32);
    if (!upper && p[i] >= 'A' && p[i] <= 'Z') p[i] = (char)(p[i] + 32);
  }
  return r;
}

static int chat_wordc(char ch) {
  return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '_';
}

/* JavaScript's trim / trimStart / trimEnd (which: 3 both, 1 start, 2 end). */
static ChatVal *chat_trim(ChatCtx *c, const ChatVal *s, int which) {
  const char *a = s->s, *e = s->s + s->n;
  size_t k;
  if (which & 1) while (a < e && (k = chat_ws_len(a, e)) > 0) a += k;
  if (which & 2) while (e > a && (k = chat_ws_back(a, e)) > 0) e -= k;
  return chat_str(c, a, (size_t)(e - a));
}

static const char *chat_find(const char *h, size_t hn, const char *n, size_t nn) {
  if (nn == 0) return h;
  for (size_t i = 0; i + nn <= hn; i++)
    if (h[i] == n[0] && !memcmp(h + i, n, nn)) return h + i;
  return NULL;
}

static ChatVal *chat_need_str(ChatCtx *c, ChatVal *v, const char *what) {
  if (!v || v->k != CV_STR)
    chat_fail(c, c->line, "%s: expected a string argument, got %s", what, v ? chat_kind_name(v->k) : "none");
  return v;
}

static ChatVal *chat_split(ChatCtx *c, const ChatVal *s, ChatVal *sep, ChatVal *maxv) {
  int64_t max = -1;
  if (maxv && maxv->k != CV_INT) chat_fail(c, c->line, "split: maxsplit must be an integer");
  if (maxv) max = maxv->i;
  ChatVal *r = chat_list(c);
  const char *p = s->s, *e = s->s + s->n;
  size_t k;
  if (!sep || sep->k == CV_NONE || sep->k == CV_UNDEF) {
    while (p < e && (k = chat_ws_len(p, e)) > 0) p += k;
    while (p < e) {
      const char *w = p;
      while (p < e && !chat_ws_len(p, e)) p += chat_utf8_len((unsigned char)*p);
      if (max >= 0 && r->len >= max) { chat_list_push(c, r, chat_str(c, w, (size_t)(e - w))); return r; }
      chat_list_push(c, r, chat_str(c, w, (size_t)(p - w)));
      while (p < e && (k = chat_ws_len(p, e)) > 0) p += k;
    }
    return r;
  }
  chat_need_str(c, sep, "split");
  if (sep->n == 0) chat_fail(c, c->line, "split: empty separator");
  for (;;) {
    const char *f = (max < 0 || r->len < max) ? chat_find(p, (size_t)(e - p), sep->s, sep->n) : NULL;
    if (!f) { chat_list_push(c, r, chat_str(c, p, (size_t)(e - p))); return r; }
    chat_list_push(c, r, chat_str(c, p, (size_t)(f - p)));
    p = f + sep->n;
  }
}

static ChatVal *chat_replace(ChatCtx *c, const ChatVal *s, ChatVal **args, int nargs, ChatVal *kw) {
  ChatVal *old = chat_need_str(c, chat_arg(args, nargs, 0, NULL, NULL), "replace");
  ChatVal *new = chat_need_str(c, chat_arg(args, nargs, 1, NULL, NULL), "replace");
  ChatVal *cnt = chat_arg(args, nargs, 2, kw, "count");
  int64_t left = -1;
  if (cnt && cnt->k != CV_NONE && cnt->k != CV_INT) chat_fail(c, c->line, "replace: count must be an integer");
  if (cnt && cnt->k == CV_INT) left = cnt->i < 0 ? -1 : cnt->i;
  ChatBuf b = {0};
  chat_buf_add(c, &b, "", 0);
  const char *p = s->s, *e = s->s + s->n;
  if (old->n == 0) {   /* before every character and at the end */
    for (;;) {
      if (left != 0) { chat_buf_add(c, &b, new->s, new->n); if (left > 0) left--; }
      if (p >= e) break;
      size_t l = chat_utf8_len((unsigned char)*p);
      chat_buf_add(c, &b, p, l);
      p += l;
    }
  } else {
    const char *f;
    while (left != 0 && (f = chat_find(p, (size_t)(e - p), old->s, old->n)) != NULL) {
      chat_buf_add(c, &b, p, (size_t)(f - p));
      chat_buf_add(c, &b, new->s, new->n);
      p = f + old->n;
      if (left > 0) left--;
    }
    chat_buf_add(c, &b, p, (size_t)(e - p));
  }
  return chat_str(c, b.p, b.len);
}

static int chat_affix(ChatCtx *c, const ChatVal *s, ChatVal *arg, int end, const char *what) {
  if (!arg) chat_fail(c, c->line, "%s() needs an argument", what);
  int nx = arg->k == CV_LIST ? arg->len : 1;
  for (int i = 0; i < nx; i++) {
    ChatVal *x = arg->k == CV_LIST ? arg->items[i] : arg;
    if (x->k != CV_STR) chat_fail(c, c->line, "%s(): the argument must be a string or a tuple of strings", what);
    if (x->n <= s->n && !memcmp(s->s + (end ? s->n - x->n : 0), x->s, x->n)) return 1;
  }
  return 0;
}

static ChatVal *chat_items(ChatCtx *c, const ChatVal *d, int what) {   /* 0 items, 1 keys, 2 values */
  ChatVal *r = chat_list(c);
  for (int i = 0; i < d->len; i++) {
    if (what == 1) { chat_list_push(c, r, d->keys[i]); continue; }
    if (what == 2) { chat_list_push(c, r, d->items[i]); continue; }
    ChatVal *pair = chat_list(c);
    chat_list_push(c, pair, d->keys[i]);
    chat_list_push(c, pair, d->items[i]);
    chat_list_push(c, r, pair);
  }
  return r;
}

static ChatVal *chat_namespace(ChatCtx *c, ChatVal **args, int nargs, ChatVal *kw) {
  ChatVal *ns = chat_dict(c, CV_NS);
  if (nargs > 1) chat_fail(c, c->line, "namespace() takes at most one positional argument");
  if (nargs == 1) {
    ChatVal *src = args[0];
    if (src->k == CV_DICT) {
      for (int i = 0; i < src->len; i++) chat_dict_set(c, ns, src->keys[i], src->items[i]);
    } else if (src->k == CV_LIST) {
      for (int i = 0; i < src->len; i++) {
        ChatVal *p = src->items[i];
        if (p->k != CV_LIST || p->len != 2 || p->items[0]->k != CV_STR)
          chat_fail(c, c->line, "namespace() expects [key, value] pairs with string keys");
        chat_dict_set(c, ns, p->items[0], p->items[1]);
      }
    } else {
      chat_fail(c, c->line, "namespace() cannot take a %s", chat_kind_name(src->k));
    }
  }
  for (int i = 0; kw && i < kw->len; i++) chat_dict_set(c, ns, kw->keys[i], kw->items[i]);
  return ns;
}

static ChatVal *chat_range(ChatCtx *c, ChatVal **args, int nargs, ChatVal *kw) {
  if (kw || nargs < 1 || nargs > 3) chat_fail(c, c->line, "range() takes 1 to 3 integer arguments");
  int64_t v[3] = {0, 0, 1};
  for (int i = 0; i < nargs; i++) {
    if (args[i]->k != CV_INT) chat_fail(c, c->line, "range(): arguments must be integers");
    v[nargs == 1 ? 1 : i] = args[i]->i;
  }
  if (v[2] == 0) chat_fail(c, c->line, "range() step must not be zero");
  ChatVal *r = chat_list(c);
  for (int64_t i = v[0]; v[2] > 0 ? i < v[1] : i > v[1]; i += v[2]) {
    if (r->len >= CHAT_MAX_RANGE) chat_fail(c, c->line, "range() longer than %d items (limit)", CHAT_MAX_RANGE);
    chat_list_push(c, r, chat_int(c, i));
  }
  return r;
}

ChatVal *chat_call(ChatCtx *c, const ChatVal *f, ChatVal **args, int nargs, ChatVal *kw) {
  if (f->k != CV_FUNC) {
    chat_fail(c, c->line, "cannot call a %s%s", chat_kind_name(f->k),
              f->k == CV_UNDEF ? " (an unknown function or method?)" : "");
  }
  ChatVal *s = f->self;
  switch (f->fn) {
    case CF_NAMESPACE: return chat_namespace(c, args, nargs, kw);
    case CF_RANGE: return chat_range(c, args, nargs, kw);
    case CF_RAISE: {
      ChatBuf b = {0};
      chat_buf_add(c, &b, "", 0);
      if (nargs > 0) chat_concat_text(c, &b, args[0]);
      chat_fail(c, c->line, "raise_exception: %s", b.p);
    }
    case CF_UPPER: return chat_case(c, s, 1, "upper");
    case CF_LOWER: return chat_case(c, s, 0, "lower");
    case CF_STRIP: return chat_trim(c, s, 3);
    case CF_LSTRIP: return chat_trim(c, s, 1);
    case CF_RSTRIP: return chat_trim(c, s, 2);
    case CF_TITLE: {
      ChatVal *r = chat_str(c, s->s, s->n);
      char *p = (char *)r->s;
      for (size_t i = 0; i < r->n; i++)
        if (p[i] >= 'a' && p[i] <= 'z' && (i == 0 || !chat_wordc(p[i - 1]))) p[i] = (char)(p[i] - 32);
      return r;
    }
    case CF_CAPITALIZE: {
      if (s->n && (unsigned char)s->s[0] >= 0x80)
        chat_fail(c, c->line, "capitalize of non-ASCII text is outside the supported subset");
      ChatVal *r = chat_str(c, s->s, s->n);
      if (r->n && r->s[0] >= 'a' && r->s[0] <= 'z') ((char *)r->s)[0] = (char)(r->s[0] - 32);
      return r;
    }
    case CF_STARTSWITH: return chat_bool(c, chat_affix(c, s, nargs ? args[0] : NULL, 0, "startswith"));
    case CF_ENDSWITH: return chat_bool(c, chat_affix(c, s, nargs ? args[0] : NULL, 1, "endswith"));
    case CF_SPLIT:
      if (kw) chat_fail(c, c->line, "split: keyword arguments are outside the supported subset");
      return chat_split(c, s, nargs > 0 ? args[0] : NULL, nargs > 1 ? args[1] : NULL);
    case CF_REPLACE: {
      static const char *const known[] = {"count", NULL};
      chat_only_kw(c, kw, "replace", known);
      return chat_replace(c, s, args, nargs, kw);
    }
    case CF_GET: {
      ChatVal *key = nargs > 0 ? args[0] : NULL;
      if (!key || key->k != CV_STR) chat_fail(c, c->line, "get(): the key must be a string");
      ChatVal *v = chat_dict_get(s, key->s, key->n);
      return v ? v : nargs > 1 ? args[1] : chat_none(c);
    }
    case CF_ITEMS: return chat_items(c, s, 0);
    case CF_KEYS: return chat_items(c, s, 1);
    case CF_VALUES: return chat_items(c, s, 2);
  }
  chat_fail(c, c->line, "unknown function");
}

ChatVal *chat_str_member(ChatCtx *c, ChatVal *s, const char *name, size_t n) {
  static const struct { const char *name; ChatFn fn; } m[] = {
    {"upper", CF_UPPER}, {"lower", CF_LOWER}, {"strip", CF_STRIP}, {"lstrip", CF_LSTRIP},
    {"rstrip", CF_RSTRIP}, {"title", CF_TITLE}, {"capitalize", CF_CAPITALIZE},
    {"startswith", CF_STARTSWITH}, {"endswith", CF_ENDSWITH}, {"split", CF_SPLIT},
    {"replace", CF_REPLACE},
  };
  if (chat_eq(name, n, "length")) return chat_int(c, chat_utf16_len(s->s, s->n));
  for (size_t i = 0; i < sizeof m / sizeof m[0]; i++)
    if (chat_eq(name, n, m[i].name)) return chat_func(c, m[i].fn, s);
  return NULL;
}

ChatVal *chat_dict_member(ChatCtx *c, ChatVal *d, const char *name, size_t n) {
  if (chat_eq(name, n, "get")) return chat_func(c, CF_GET, d);
  if (chat_eq(name, n, "items")) return chat_func(c, CF_ITEMS, d);
  if (chat_eq(name, n, "keys")) return chat_func(c, CF_KEYS, d);
  if (chat_eq(name, n, "values")) return chat_func(c, CF_VALUES, d);
  return NULL;
}

int chat_test(ChatCtx *c, const char *name, size_t n, const ChatVal *v) {
  ChatKind k = v->k;
  if (chat_eq(name, n, "defined")) return k != CV_UNDEF;
  if (chat_eq(name, n, "undefined")) return k == CV_UNDEF;
  if (chat_eq(name, n, "none")) return k == CV_NONE;
  if (chat_eq(name, n, "boolean")) return k == CV_BOOL;
  if (chat_eq(name, n, "true")) return k == CV_BOOL && v->i;
  if (chat_eq(name, n, "false")) return k == CV_BOOL && !v->i;
  if (chat_eq(name, n, "string")) return k == CV_STR;
  if (chat_eq(name, n, "number")) return k == CV_INT || k == CV_FLOAT;
  if (chat_eq(name, n, "integer")) return k == CV_INT;
  if (chat_eq(name, n, "iterable")) return (k == CV_LIST && !v->tuple) || k == CV_STR;
  if (chat_eq(name, n, "mapping")) return k == CV_DICT;
  if (chat_eq(name, n, "sequence")) return k == CV_LIST || k == CV_DICT || k == CV_STR;
  if (chat_eq(name, n, "callable")) return k == CV_FUNC;
  if (chat_eq(name, n, "odd") || chat_eq(name, n, "even")) {
    if (k != CV_INT) chat_fail(c, c->line, "test '%.*s' on a %s", (int)n, name, chat_kind_name(k));
    return (v->i % 2 != 0) == (name[0] == 'o');
  }
  chat_fail(c, c->line, "unknown test 'is %.*s' (or outside the supported subset)", (int)n, name);
}

static _Noreturn void chat_bad_filter(ChatCtx *c, const char *name, size_t n, const ChatVal *v) {
  chat_fail(c, c->line, "unknown filter '%.*s' for a %s (or outside the supported subset)", (int)n, name,
            chat_kind_name(v->k));
}

static ChatVal *chat_indent(ChatCtx *c, const ChatVal *s, ChatVal *width, ChatVal *first, ChatVal *blank) {
  ChatBuf pad = {0}, b = {0};
  chat_buf_add(c, &pad, "", 0);
  chat_buf_add(c, &b, "", 0);
  if (!width) width = chat_int(c, 4);
  if (width->k == CV_STR) chat_buf_add(c, &pad, width->s, width->n);
  else if (width->k == CV_INT) for (int64_t i = 0; i < width->i && i < 4096; i++) chat_buf_addc(c, &pad, ' ');
  else chat_fail(c, c->line, "indent: width must be an integer or a string");
  const char *p = s->s, *e = s->s + s->n;
  for (int line = 0;; line++) {
    const char *nl = memchr(p, '\n', (size_t)(e - p));
    const char *le = nl ? nl : e;
    if (!((line == 0 && !(first && chat_truthy(first))) || (le == p && !(blank && chat_truthy(blank)))))
      chat_buf_add(c, &b, pad.p, pad.len);
    chat_buf_add(c, &b, p, (size_t)(le - p));
    if (!nl) break;
    chat_buf_addc(c, &b, '\n');
    p = nl + 1;
  }
  return chat_str(c, b.p, b.len);
}

/* The join of list items as JavaScript's Array.prototype.join writes them. */
static void chat_join_item(ChatCtx *c, ChatBuf *b, const ChatVal *x) {
  if (x->k == CV_UNDEF || x->k == CV_NONE) return;
  chat_concat_text(c, b, x);
}

static ChatVal *chat_join(ChatCtx *c, ChatVal *v, ChatVal *sep) {
  ChatBuf b = {0};
  chat_buf_add(c, &b, "", 0);
  if (sep && sep->k != CV_STR) chat_fail(c, c->line, "join: the separator must be a string");
  if (v->k == CV_STR) {
    for (size_t i = 0; i < v->n;) {
      size_t l = chat_utf8_len((unsigned char)v->s[i]);
      if (i && sep) chat_buf_add(c, &b, sep->s, sep->n);
      chat_buf_add(c, &b, v->s + i, l);
      i += l;
    }
  } else {
    for (int i = 0; i < v->len; i++) {
      if (i && sep) chat_buf_add(c, &b, sep->s, sep->n);
      chat_join_item(c, &b, v->items[i]);
    }
  }
  return chat_str(c, b.p, b.len);
}

/* map(attribute='a.b') and selectattr's lookup: a dotted path through dicts and lists. */
static ChatVal *chat_path(ChatCtx *c, ChatVal *v, const char *p, size_t n) {
  const char *e = p + n;
  for (;;) {
    const char *d = memchr(p, '.', (size_t)(e - p));
    const char *pe = d ? d : e;
    if (v->k == CV_DICT || v->k == CV_NS) {
      v = chat_dict_get(v, p, (size_t)(pe - p));
      if (!v) return chat_undef(c);
    } else {
      return chat_undef(c);   /* list indices in paths are outside the subset: undefined */
    }
    if (!d) return v;
    p = d + 1;
  }
}

static ChatVal *chat_filter_call(ChatCtx *c, const char *name, size_t n, ChatVal *v, ChatVal **args,
                                 int nargs, ChatVal *kw) {
  if (chat_eq(name, n, "tojson")) {
    static const char *const known[] = {"indent", NULL};
    chat_only_kw(c, kw, "tojson", known);
    ChatVal *ind = chat_kwarg(kw, "indent");
    if (ind && ind->k != CV_INT && ind->k != CV_NONE) chat_fail(c, c->line, "tojson: indent must be an integer");
    ChatBuf b = {0};
    chat_buf_add(c, &b, "", 0);
    chat_json(c, &b, v, ind && ind->k == CV_INT ? (int)(ind->i > 64 ? 64 : ind->i) : -1, 1, 0);
    return chat_str(c, b.p, b.len);
  }
  if (chat_eq(name, n, "join")) {
    if (v->k != CV_STR && v->k != CV_LIST) chat_bad_filter(c, name, n, v);
    ChatVal *sep = chat_arg(args, nargs, 0, kw, "separator");
    return chat_join(c, v, sep ? sep : NULL);
  }
  if (chat_eq(name, n, "default")) {
    ChatVal *d = nargs > 0 ? args[0] : chat_str(c, "", 0);
    ChatVal *flag = chat_arg(args, nargs, 1, kw, "boolean");
    if (flag && flag->k != CV_BOOL) chat_fail(c, c->line, "default: the flag must be a boolean");
    return v->k == CV_UNDEF || (flag && flag->i && !chat_truthy(v)) ? d : v;
  }
  if (v->k == CV_LIST && (chat_eq(name, n, "selectattr") || chat_eq(name, n, "rejectattr"))) {
    int sel = name[0] == 's';
    for (int i = 0; i < v->len; i++)
      if (v->items[i]->k != CV_DICT && v->items[i]->k != CV_NS)
        chat_fail(c, c->line, "%.*s can only be applied to a list of dicts", (int)n, name);
    if (nargs < 1 || nargs > 2 || kw) chat_fail(c, c->line, "%.*s takes an attribute and an optional test name", (int)n, name);
    ChatVal *attr = chat_need_str(c, args[0], "selectattr"), *test = nargs > 1 ? chat_need_str(c, args[1], "selectattr") : NULL;
    ChatVal *r = chat_list(c);
    for (int i = 0; i < v->len; i++) {
      ChatVal *a = chat_dict_get(v->items[i], attr->s, attr->n);
      int ok = a ? (test ? chat_test(c, test->s, test->n, a) : chat_truthy(a)) : 0;
      if (ok == sel) chat_list_push(c, r, v->items[i]);
    }
    return r;
  }
  if (v->k == CV_LIST && chat_eq(name, n, "map")) {
    static const char *const known[] = {"attribute", "default", NULL};
    chat_only_kw(c, kw, "map", known);
    ChatVal *attr = chat_kwarg(kw, "attribute"), *d = chat_kwarg(kw, "default");
    if (!attr) chat_fail(c, c->line, "map without attribute= is outside the supported subset");
    chat_need_str(c, attr, "map");
    ChatVal *r = chat_list(c);
    for (int i = 0; i < v->len; i++) {
      if (v->items[i]->k != CV_DICT && v->items[i]->k != CV_NS) chat_fail(c, c->line, "map: items must be dicts");
      ChatVal *x = chat_path(c, v->items[i], attr->s, attr->n);
      chat_list_push(c, r, x->k == CV_UNDEF && d ? d : x);
    }
    return r;
  }
  if (v->k == CV_STR && chat_eq(name, n, "indent"))
    return chat_indent(c, v, chat_arg(args, nargs, 0, kw, "width"), chat_arg(args, nargs, 1, kw, "first"),
                       chat_arg(args, nargs, 2, kw, "blank"));
  if (v->k == CV_STR && chat_eq(name, n, "replace")) return chat_replace(c, v, args, nargs, kw);
  if (v->k == CV_DICT) {
    ChatVal *f = chat_dict_member(c, v, name, n);
    if (f) return chat_call(c, f, args, nargs, kw);
  }
  chat_bad_filter(c, name, n, v);
}

ChatVal *chat_filter(ChatCtx *c, const char *name, size_t n, ChatVal *v, int call, ChatVal **args,
                     int nargs, ChatVal *kw) {
  if (call) return chat_filter_call(c, name, n, v, args, nargs, kw);
  if (chat_eq(name, n, "safe")) return v;
  if (chat_eq(name, n, "tojson")) return chat_filter_call(c, name, n, v, NULL, 0, NULL);
  switch (v->k) {
    case CV_LIST:
      if (chat_eq(name, n, "list")) return v;
      if (chat_eq(name, n, "length")) return chat_int(c, v->len);
      if (chat_eq(name, n, "first") || chat_eq(name, n, "last")) {
        if (!v->len) chat_fail(c, c->line, "filter '%.*s' of an empty list", (int)n, name);
        return v->items[name[0] == 'f' ? 0 : v->len - 1];
      }
      if (chat_eq(name, n, "reverse")) {
        ChatVal *r = chat_list(c);
        for (int i = v->len - 1; i >= 0; i--) chat_list_push(c, r, v->items[i]);
        return r;
      }
      if (chat_eq(name, n, "join")) return chat_join(c, v, NULL);
      if (chat_eq(name, n, "string")) {
        ChatBuf b = {0};
        chat_buf_add(c, &b, "", 0);
        chat_json(c, &b, v, -1, 0, 0);
        return chat_str(c, b.p, b.len);
      }
      break;
    case CV_STR:
      if (chat_eq(name, n, "length")) return chat_int(c, chat_utf16_len(v->s, v->n));
      if (chat_eq(name, n, "upper")) return chat_case(c, v, 1, "upper");
      if (chat_eq(name, n, "lower")) return chat_case(c, v, 0, "lower");
      if (chat_eq(name, n, "title")) return chat_call(c, chat_func(c, CF_TITLE, v), NULL, 0, NULL);
      if (chat_eq(name, n, "capitalize")) return chat_call(c, chat_func(c, CF_CAPITALIZE, v), NULL, 0, NULL);
      if (chat_eq(name, n, "trim")) return chat_trim(c, v, 3);
      if (chat_eq(name, n, "indent")) return chat_indent(c, v, NULL, NULL, NULL);
      if (chat_eq(name, n, "join") || chat_eq(name, n, "string")) return v;
      break;
    case CV_INT: case CV_FLOAT:
      if (chat_eq(name, n, "abs")) return v->k == CV_INT ? chat_int(c, v->i < 0 ? -v->i : v->i) : chat_float(c, fabs(v->f));
      if (chat_eq(name, n, "int")) return v->k == CV_INT ? v : isfinite(v->f) ? chat_int(c, (int64_t)trunc(v->f))
                                                             : (chat_fail(c, c->line, "int of a non-finite float"), v);
      if (chat_eq(name, n, "float")) return chat_float(c, v->k == CV_INT ? (double)v->i : v->f);
      if (chat_eq(name, n, "string")) {
        ChatBuf b = {0};
        chat_buf_add(c, &b, "", 0);
        chat_to_text(c, &b, v);
        return chat_str(c, b.p, b.len);
      }
      break;
    case CV_DICT:
      if (chat_eq(name, n, "items")) return chat_items(c, v, 0);
      if (chat_eq(name, n, "length")) return chat_int(c, v->len);
      if (chat_eq(name, n, "keys")) return chat_items(c, v, 1);
      if (chat_eq(name, n, "values")) return chat_items(c, v, 2);
      break;
    case CV_BOOL:
      if (chat_eq(name, n, "bool")) return v;
      if (chat_eq(name, n, "int")) return chat_int(c, v->i);
      if (chat_eq(name, n, "float")) return chat_float(c, (double)v->i);
      if (chat_eq(name, n, "string")) return chat_cstr(c, v->i ? "true" : "false");
      break;
    case CV_UNDEF: case CV_NONE: case CV_NS: case CV_FUNC:
      break;
  }
  chat_bad_filter(c, name, n, v);
}
