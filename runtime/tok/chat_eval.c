/* chat_eval.c — the chat-template interpreter, and chat_render (rein/tok.h).
 *
 * Runs the syntax tree of chat_parse.c as @huggingface/jinja runs its own:
 *   - scopes: the template's top level is one scope (the globals namespace, range,
 *     raise_exception, true/false/none and True/False/None, then messages,
 *     add_generation_prompt, bos_token, eos_token); each {% for %} opens one scope for the whole
 *     loop (so a {% set %} in the body survives into the next iteration, not past the loop);
 *     {% if %} opens none; {% set %} always writes the innermost scope; a name is looked up
 *     innermost first, undefined when nowhere;
 *   - operators follow the reference (chat_value.c's conversions): `and`/`or` return an operand;
 *     + - * on two integers give an integer, / a float; % is JavaScript's remainder; + concatenates
 *     when one side is a string and lists when both are; `in` looks in lists, strings and dict
 *     keys; undefined ~ x writes "" for undefined; any other operation on undefined or none fails;
 *   - member access: a dict's key, else its methods; a list's or string's index (negative counts
 *     from the end, out of range is undefined) or its methods; anything of undefined is undefined;
 *   - for: over a list or a dict's keys; loop.index/index0/revindex/revindex0/first/last/length/
 *     previtem/nextitem; `for x in xs if c`; {% else %} renders when no iteration completed (the
 *     reference's rule: one ended by break or continue does not count).
 * Division or remainder by zero fails (the reference would write NaN or Infinity).
 * The limits of chat_internal.h bound steps, recursion, memory and output.
 */
#include "chat_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rein/common.h"
#include "rein/tok.h"

typedef struct ChatScope ChatScope;
struct ChatScope {
  ChatVal *vars;   /* a CV_DICT */
  ChatScope *parent;
};

enum { CHAT_NEXT, CHAT_BREAK, CHAT_CONTINUE };
#define CHAT_LOOP_KEYS 9

static ChatVal *chat_eval(ChatCtx *c, ChatScope *sc, const ChatNode *x);
static int chat_exec(ChatCtx *c, ChatScope *sc, ChatNode **body, int n, ChatBuf *out);

static int chat_eq(const char *s, size_t n, const char *w) { return n == strlen(w) && !memcmp(s, w, n); }

static ChatVal *chat_lookup(ChatCtx *c, ChatScope *sc, const char *name, size_t n) {
  for (; sc; sc = sc->parent) {
    ChatVal *v = chat_dict_get(sc->vars, name, n);
    if (v) return v;
  }
  return chat_undef(c);
}

static void chat_setvar(ChatCtx *c, ChatScope *sc, const char *name, size_t n, ChatVal *v) {
  ChatVal *d = sc->vars;
  for (int i = 0; i < d->len; i++)
    if (d->keys[i]->n == n && !memcmp(d->keys[i]->s, name, n)) {
      d->items[i] = v;
      return;
    }
  chat_dict_set(c, d, chat_str(c, name, n), v);
}

static void chat_enter(ChatCtx *c, int line) {
  c->line = line;
  if (++c->steps > CHAT_MAX_STEPS) chat_fail(c, line, "the template runs more than %ld steps (limit)", CHAT_MAX_STEPS);
  if (++c->depth > CHAT_MAX_EVAL) chat_fail(c, line, "the template nests deeper than %d levels (limit)", CHAT_MAX_EVAL);
}

/* Arguments of a call: positional values, keyword arguments in a dict (NULL when none). */
static ChatVal **chat_eval_args(ChatCtx *c, ChatScope *sc, const ChatNode *x, int *nargs, ChatVal **kw) {
  ChatVal **a = chat_alloc(c, (size_t)(x->nlist + 1) * sizeof *a);
  int n = 0;
  *kw = NULL;
  for (int i = 0; i < x->nlist; i++) {
    const ChatNode *y = x->list[i];
    if (y->kind == CN_KWARG) {
      if (!*kw) *kw = chat_dict(c, CV_DICT);
      ChatVal *key = chat_str(c, y->s, y->n);
      if (chat_dict_get(*kw, y->s, y->n)) chat_fail(c, y->line, "keyword argument '%.*s' given twice", (int)y->n, y->s);
      chat_dict_set(c, *kw, key, chat_eval(c, sc, y->a));
    } else {
      a[n++] = chat_eval(c, sc, y);
    }
  }
  *nargs = n;
  return a;
}

/* A slice [a:b:c] of a list, or of a string by code points (Python's rules). */
static ChatVal *chat_slice(ChatCtx *c, ChatScope *sc, ChatVal *obj, const ChatNode *s) {
  if (obj->k != CV_LIST && obj->k != CV_STR) chat_fail(c, s->line, "slice of a %s", chat_kind_name(obj->k));
  const ChatNode *part[3] = {s->a, s->b, s->c};
  int has[3];
  int64_t v[3];
  for (int i = 0; i < 3; i++) {
    ChatVal *p = part[i] ? chat_eval(c, sc, part[i]) : NULL;
    if (p && p->k != CV_INT && p->k != CV_UNDEF) chat_fail(c, s->line, "slice bounds must be integers");
    has[i] = p && p->k == CV_INT;
    v[i] = has[i] ? p->i : 0;
  }
  /* the units: list items, or the code points of the string */
  int64_t len = 0;
  size_t *off = NULL;
  if (obj->k == CV_LIST) len = obj->len;
  else {
    off = chat_alloc(c, (obj->n + 1) * sizeof *off);
    for (size_t i = 0; i < obj->n; i += chat_utf8_len((unsigned char)obj->s[i])) off[len++] = i;
    off[len] = obj->n;
  }
  int64_t step = has[2] ? v[2] : 1, start, stop;
  if (step == 0) chat_fail(c, s->line, "slice step must not be zero");
  if (step > 0) {
    start = !has[0] ? 0 : v[0] < 0 ? (len + v[0] > 0 ? len + v[0] : 0) : (v[0] < len ? v[0] : len);
    stop = !has[1] ? len : v[1] < 0 ? (len + v[1] > 0 ? len + v[1] : 0) : (v[1] < len ? v[1] : len);
  } else {
    start = !has[0] ? len - 1 : v[0] < 0 ? (len + v[0] > -1 ? len + v[0] : -1) : (v[0] < len - 1 ? v[0] : len - 1);
    stop = !has[1] ? -1 : v[1] < -1 ? (len + v[1] > -1 ? len + v[1] : -1) : (v[1] < len - 1 ? v[1] : len - 1);
  }
  ChatVal *r = obj->k == CV_LIST ? chat_list(c) : NULL;
  ChatBuf b = {0};
  chat_buf_add(c, &b, "", 0);
  for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step) {
    if (r) chat_list_push(c, r, obj->items[i]);
    else chat_buf_add(c, &b, obj->s + off[i], off[i + 1] - off[i]);
  }
  return r ? r : chat_str(c, b.p, b.len);
}

/* s[i] of a string: the UTF-16 code unit i, as JavaScript's String.prototype.at. */
static ChatVal *chat_str_at(ChatCtx *c, ChatVal *s, int64_t i) {
  int64_t len = chat_utf16_len(s->s, s->n);
  if (i < 0) i += len;
  if (i < 0 || i >= len) return chat_undef(c);
  int64_t u = 0;
  for (size_t p = 0; p < s->n;) {
    size_t l = chat_utf8_len((unsigned char)s->s[p]);
    int w = l == 4 ? 2 : 1;
    if (i < u + w) {
      if (w == 2) chat_fail(c, c->line, "indexing half of a character outside the BMP (the reference's UTF-16)");
      return chat_str(c, s->s + p, l);
    }
    u += w;
    p += l;
  }
  return chat_undef(c);
}

static ChatVal *chat_member(ChatCtx *c, ChatScope *sc, const ChatNode *x) {
  ChatVal *obj = chat_eval(c, sc, x->a), *prop, *v = NULL;
  if (x->flag && x->b->kind == CN_SLICE) return chat_slice(c, sc, obj, x->b);
  if (x->flag) prop = chat_eval(c, sc, x->b);
  else if (x->b->kind == CN_INT) prop = chat_int(c, x->b->i);
  else prop = chat_str(c, x->b->s, x->b->n);
  c->line = x->line;
  if (obj->k == CV_DICT || obj->k == CV_NS) {
    if (prop->k != CV_STR) chat_fail(c, x->line, "a %s key must be a string, got %s", chat_kind_name(obj->k), chat_kind_name(prop->k));
    v = chat_dict_get(obj, prop->s, prop->n);
    if (!v && obj->k == CV_DICT) v = chat_dict_member(c, obj, prop->s, prop->n);
  } else if (obj->k == CV_LIST || obj->k == CV_STR) {
    if (prop->k == CV_INT) {
      if (obj->k == CV_STR) return chat_str_at(c, obj, prop->i);
      int64_t i = prop->i < 0 ? prop->i + obj->len : prop->i;
      v = i >= 0 && i < obj->len ? obj->items[i] : NULL;
    } else if (prop->k == CV_STR) {
      if (obj->k == CV_STR) v = chat_str_member(c, obj, prop->s, prop->n);
      else if (chat_eq(prop->s, prop->n, "length")) v = chat_int(c, obj->len);
    } else {
      chat_fail(c, x->line, "a %s index must be an integer or a name, got %s", chat_kind_name(obj->k), chat_kind_name(prop->k));
    }
  } else if (prop->k != CV_STR) {
    chat_fail(c, x->line, "cannot index a %s with a %s", chat_kind_name(obj->k), chat_kind_name(prop->k));
  }
  return v ? v : chat_undef(c);
}

static int chat_isnum(const ChatVal *v) { return v->k == CV_INT || v->k == CV_FLOAT; }
static double chat_numv(const ChatVal *v) { return v->k == CV_FLOAT ? v->f : (double)v->i; }

static ChatVal *chat_concat(ChatCtx *c, ChatVal *l, ChatVal *r) {
  ChatBuf b = {0};
  chat_buf_add(c, &b, "", 0);
  if (l->k != CV_UNDEF) chat_concat_text(c, &b, l);
  if (r->k != CV_UNDEF) chat_concat_text(c, &b, r);
  return chat_str(c, b.p, b.len);
}

static ChatVal *chat_arith(ChatCtx *c, const ChatNode *x, ChatVal *l, ChatVal *r) {
  const char *op = x->s;
  size_t n = x->n;
  double a = chat_numv(l), b = chat_numv(r);
  int isf = l->k == CV_FLOAT || r->k == CV_FLOAT;
  if (n == 1 && (op[0] == '+' || op[0] == '-' || op[0] == '*')) {
    double v = op[0] == '+' ? a + b : op[0] == '-' ? a - b : a * b;
    if (isf) return chat_float(c, v);
    if (fabs(v) > 9007199254740992.0) chat_fail(c, x->line, "integer beyond 2^53 (the reference's numbers are doubles)");
    return chat_int(c, (int64_t)v);
  }
  if ((op[0] == '/' || op[0] == '%') && b == 0)
    chat_fail(c, x->line, "division by zero (the reference would write NaN or Infinity)");
  if (chat_eq(op, n, "/")) return chat_float(c, a / b);
  if (chat_eq(op, n, "//")) return isf ? chat_float(c, floor(a / b)) : chat_int(c, (int64_t)floor(a / b));
  if (chat_eq(op, n, "%")) return isf ? chat_float(c, fmod(a, b)) : chat_int(c, l->i % r->i);
  if (chat_eq(op, n, "<")) return chat_bool(c, a < b);
  if (chat_eq(op, n, ">")) return chat_bool(c, a > b);
  if (chat_eq(op, n, "<=")) return chat_bool(c, a <= b);
  if (chat_eq(op, n, ">=")) return chat_bool(c, a >= b);
  return NULL;
}

static ChatVal *chat_binary(ChatCtx *c, ChatScope *sc, const ChatNode *x) {
  const char *op = x->s;
  size_t n = x->n;
  ChatVal *l = chat_eval(c, sc, x->a);
  if (chat_eq(op, n, "and")) return chat_truthy(l) ? chat_eval(c, sc, x->b) : l;
  if (chat_eq(op, n, "or")) return chat_truthy(l) ? l : chat_eval(c, sc, x->b);
  ChatVal *r = chat_eval(c, sc, x->b), *v = NULL;
  c->line = x->line;
  int in = chat_eq(op, n, "in"), notin = chat_eq(op, n, "not in");
  if (chat_eq(op, n, "==")) return chat_bool(c, chat_loose_eq(c, l, r));
  if (chat_eq(op, n, "!=")) return chat_bool(c, !chat_loose_eq(c, l, r));
  if (chat_isnum(l) && chat_isnum(r) && !chat_eq(op, n, "~") && !chat_eq(op, n, "**")) {
    v = chat_arith(c, x, l, r);
  } else if (l->k == CV_UNDEF || r->k == CV_UNDEF) {
    if (r->k == CV_UNDEF && (in || notin)) return chat_bool(c, notin);
    if (chat_eq(op, n, "~") && l->k != CV_NONE && r->k != CV_NONE) return chat_concat(c, l, r);
    chat_fail(c, x->line, "operator '%.*s' on an undefined value (%s %.*s %s)", (int)n, op,
              chat_kind_name(l->k), (int)n, op, chat_kind_name(r->k));
  } else if (l->k == CV_NONE || r->k == CV_NONE) {
    chat_fail(c, x->line, "operator '%.*s' on none", (int)n, op);
  } else if (chat_eq(op, n, "~")) {
    return chat_concat(c, l, r);
  } else if (chat_eq(op, n, "**") && (chat_isnum(l) || l->k == CV_BOOL) && (chat_isnum(r) || r->k == CV_BOOL)) {
    double a = chat_numv(l), b = chat_numv(r), p = pow(a, b);
    if (a == 0 && b < 0) chat_fail(c, x->line, "0 cannot be raised to a negative power");
    if (!isfinite(p)) chat_fail(c, x->line, "the power is not a finite real number");
    if (l->k == CV_FLOAT || r->k == CV_FLOAT || b < 0) return chat_float(c, p);
    if (fabs(p) > 9007199254740992.0) chat_fail(c, x->line, "integer beyond 2^53 (the reference's numbers are doubles)");
    return chat_int(c, (int64_t)p);
  } else if (l->k == CV_LIST && r->k == CV_LIST) {
    if (chat_eq(op, n, "+")) {
      ChatVal *s = chat_list(c);
      for (int i = 0; i < l->len; i++) chat_list_push(c, s, l->items[i]);
      for (int i = 0; i < r->len; i++) chat_list_push(c, s, r->items[i]);
      return s;
    }
  } else if (r->k == CV_LIST && (in || notin)) {
    int found = 0;
    for (int i = 0; i < r->len && !found; i++) found = chat_strict_eq(r->items[i], l);
    return chat_bool(c, found != notin);
  }
  if (v) return v;
  if ((l->k == CV_STR || r->k == CV_STR) && chat_eq(op, n, "+")) return chat_concat(c, l, r);
  if (l->k == CV_STR && r->k == CV_STR && (in || notin)) {
    int found = 0;
    for (size_t i = 0; i + l->n <= r->n && !found; i++) found = !memcmp(r->s + i, l->s, l->n);
    return chat_bool(c, found != notin);
  }
  if (l->k == CV_STR && r->k == CV_DICT && (in || notin))
    return chat_bool(c, (chat_dict_get(r, l->s, l->n) != NULL) != notin);
  chat_fail(c, x->line, "operator '%.*s' between a %s and a %s is not defined", (int)n, op,
            chat_kind_name(l->k), chat_kind_name(r->k));
}

static ChatVal *chat_eval_node(ChatCtx *c, ChatScope *sc, const ChatNode *x) {
  switch (x->kind) {
    case CN_STR: return chat_str_ref(c, x->s, x->n);
    case CN_INT: return chat_int(c, x->i);
    case CN_FLOAT: return chat_float(c, x->f);
    case CN_IDENT: return chat_lookup(c, sc, x->s, x->n);
    case CN_LIST: case CN_TUPLE: {
      ChatVal *l = chat_list(c);
      l->tuple = x->kind == CN_TUPLE;
      for (int i = 0; i < x->nlist; i++) chat_list_push(c, l, chat_eval(c, sc, x->list[i]));
      return l;
    }
    case CN_DICT: {
      ChatVal *d = chat_dict(c, CV_DICT);
      for (int i = 0; i < x->nlist; i++) {
        ChatVal *k = chat_eval(c, sc, x->list[i]);
        if (k->k != CV_STR) chat_fail(c, x->line, "dict keys must be strings, got %s", chat_kind_name(k->k));
        chat_dict_set(c, d, k, chat_eval(c, sc, x->list2[i]));
      }
      return d;
    }
    case CN_MEMBER: return chat_member(c, sc, x);
    case CN_CALL: {
      int nargs;
      ChatVal *kw, **args = chat_eval_args(c, sc, x, &nargs, &kw);
      ChatVal *f = chat_eval(c, sc, x->a);
      c->line = x->line;
      if (f->k == CV_UNDEF && x->a->kind == CN_IDENT)
        chat_fail(c, x->line, "unknown function '%.*s'", (int)x->a->n, x->a->s);
      return chat_call(c, f, args, nargs, kw);
    }
    case CN_FILTER: {
      ChatVal *v = chat_eval(c, sc, x->a);
      int nargs = 0;
      ChatVal *kw = NULL, **args = NULL;
      if (x->flag) {
        if (chat_eq(x->s, x->n, "selectattr") || chat_eq(x->s, x->n, "rejectattr"))
          for (int i = 0; i < x->nlist; i++)
            if (x->list[i]->kind != CN_STR)
              chat_fail(c, x->line, "the arguments of %.*s must be string literals", (int)x->n, x->s);
        args = chat_eval_args(c, sc, x, &nargs, &kw);
      }
      c->line = x->line;
      return chat_filter(c, x->s, x->n, v, x->flag, args, nargs, kw);
    }
    case CN_TEST: {
      ChatVal *v = chat_eval(c, sc, x->a);
      c->line = x->line;
      return chat_bool(c, chat_test(c, x->s, x->n, v) != x->flag);
    }
    case CN_UNARY: {
      ChatVal *v = chat_eval(c, sc, x->a);
      if (x->s[0] == 'n') return chat_bool(c, !chat_truthy(v));
      int neg = x->s[0] == '-';
      if (v->k == CV_FLOAT) return chat_float(c, neg ? -v->f : v->f);
      if (v->k == CV_INT || v->k == CV_BOOL) return chat_int(c, neg ? -v->i : v->i);
      chat_fail(c, x->line, "unary '%c' of a %s", x->s[0], chat_kind_name(v->k));
    }
    case CN_BINARY: return chat_binary(c, sc, x);
    case CN_TERNARY: return chat_truthy(chat_eval(c, sc, x->a)) ? chat_eval(c, sc, x->b) : chat_eval(c, sc, x->c);
    case CN_SELECT: return chat_truthy(chat_eval(c, sc, x->b)) ? chat_eval(c, sc, x->a) : chat_undef(c);
    case CN_SLICE: case CN_KWARG: case CN_IF: case CN_FOR: case CN_SET: case CN_BREAK:
    case CN_CONTINUE: case CN_COMMENT:
      break;
  }
  chat_fail(c, x->line, "a statement where an expression belongs");
}

static ChatVal *chat_eval(ChatCtx *c, ChatScope *sc, const ChatNode *x) {
  chat_enter(c, x->line);
  ChatVal *v = chat_eval_node(c, sc, x);
  c->depth--;
  return v;
}

static void chat_set(ChatCtx *c, ChatScope *sc, const ChatNode *x) {
  ChatVal *rhs;
  if (x->b) {
    rhs = chat_eval(c, sc, x->b);
  } else {
    ChatBuf b = {0};
    chat_buf_add(c, &b, "", 0);
    if (chat_exec(c, sc, x->list, x->nlist, &b) != CHAT_NEXT)
      chat_fail(c, x->line, "break or continue inside a block set");
    rhs = chat_str(c, b.p, b.len);
  }
  const ChatNode *a = x->a;
  c->line = x->line;
  if (a->kind == CN_IDENT) {
    chat_setvar(c, sc, a->s, a->n, rhs);
  } else if (a->kind == CN_TUPLE) {
    if (rhs->k != CV_LIST) chat_fail(c, x->line, "cannot unpack a %s in set", chat_kind_name(rhs->k));
    if (rhs->len != a->nlist) chat_fail(c, x->line, "too %s items to unpack in set", a->nlist > rhs->len ? "few" : "many");
    for (int i = 0; i < a->nlist; i++) {
      if (a->list[i]->kind != CN_IDENT) chat_fail(c, x->line, "set can unpack only into names");
      chat_setvar(c, sc, a->list[i]->s, a->list[i]->n, rhs->items[i]);
    }
  } else if (a->kind == CN_MEMBER) {
    ChatVal *obj = chat_eval(c, sc, a->a);
    if (obj->k != CV_NS) chat_fail(c, x->line, "set can assign attributes only of a namespace(), not of a %s", chat_kind_name(obj->k));
    if (a->flag || a->b->kind != CN_IDENT) chat_fail(c, x->line, "set of a namespace attribute needs a name (ns.name)");
    chat_dict_set(c, obj, chat_str(c, a->b->s, a->b->n), rhs);
  } else {
    chat_fail(c, x->line, "set can assign only a name, names, or a namespace attribute");
  }
}

static void chat_bind(ChatCtx *c, ChatScope *sc, const ChatNode *var, ChatVal *v) {
  if (var->kind == CN_IDENT) { chat_setvar(c, sc, var->s, var->n, v); return; }
  for (int j = 0; j < var->nlist; j++) {
    if (var->list[j]->kind != CN_IDENT) chat_fail(c, var->line, "loop variables must be names");
    chat_setvar(c, sc, var->list[j]->s, var->list[j]->n, v->items[j]);
  }
}

static void chat_for(ChatCtx *c, ChatScope *outer, const ChatNode *x, ChatBuf *out) {
  ChatScope *sc = chat_alloc(c, sizeof *sc);
  sc->vars = chat_dict(c, CV_DICT);
  sc->parent = outer;
  const ChatNode *test = NULL, *it = x->b, *var = x->a;
  if (it->kind == CN_SELECT) { test = it->b; it = it->a; }
  ChatVal *seq = chat_eval(c, sc, it);
  c->line = x->line;
  if (seq->k == CV_DICT) {
    ChatVal *k = chat_list(c);
    for (int i = 0; i < seq->len; i++) chat_list_push(c, k, seq->keys[i]);
    seq = k;
  }
  if (seq->k != CV_LIST) chat_fail(c, x->line, "for: cannot iterate over a %s", chat_kind_name(seq->k));
  ChatVal *items = chat_list(c);
  for (int i = 0; i < seq->len; i++) {
    ChatVal *v = seq->items[i];
    if (var->kind == CN_TUPLE) {
      if (v->k != CV_LIST) chat_fail(c, x->line, "for: cannot unpack a %s", chat_kind_name(v->k));
      if (v->len != var->nlist) chat_fail(c, x->line, "for: too %s items to unpack", var->nlist > v->len ? "few" : "many");
    }
    if (test) {
      ChatScope *ts = chat_alloc(c, sizeof *ts);
      ts->vars = chat_dict(c, CV_DICT);
      ts->parent = sc;
      chat_bind(c, ts, var, v);
      if (!chat_truthy(chat_eval(c, ts, test))) continue;
    }
    chat_list_push(c, items, v);
  }
  static const char *const names[CHAT_LOOP_KEYS] = {"index", "index0", "revindex", "revindex0", "first",
                                                    "last", "length", "previtem", "nextitem"};
  ChatVal **keys = chat_alloc(c, CHAT_LOOP_KEYS * sizeof *keys);
  for (int k = 0; k < CHAT_LOOP_KEYS; k++) keys[k] = chat_str_ref(c, names[k], strlen(names[k]));
  int none = 1;
  for (int i = 0; i < items->len; i++) {
    int64_t len = items->len;
    ChatVal *loop = chat_dict(c, CV_DICT), *undef = chat_undef(c);
    ChatVal *vals[CHAT_LOOP_KEYS] = {
      chat_int(c, i + 1), chat_int(c, i), chat_int(c, len - i), chat_int(c, len - i - 1),
      chat_bool(c, i == 0), chat_bool(c, i == len - 1), chat_int(c, len),
      i > 0 ? items->items[i - 1] : undef, i < len - 1 ? items->items[i + 1] : undef};
    loop->keys = keys;   /* shared, never written: a loop object is read-only */
    loop->items = chat_alloc(c, CHAT_LOOP_KEYS * sizeof *loop->items);
    memcpy(loop->items, vals, sizeof vals);
    loop->len = loop->cap = CHAT_LOOP_KEYS;
    chat_setvar(c, sc, "loop", 4, loop);
    chat_bind(c, sc, var, items->items[i]);
    int r = chat_exec(c, sc, x->list, x->nlist, out);
    if (r == CHAT_CONTINUE) continue;
    if (r == CHAT_BREAK) break;
    none = 0;
  }
  if (none && chat_exec(c, sc, x->list2, x->nlist2, out) != CHAT_NEXT)
    chat_fail(c, x->line, "break or continue in the else block of a for loop");
}

/* Append s[0..n) to out (written: bytes already appended there), within the output limit. */
static void chat_emit(ChatCtx *c, ChatBuf *out, const char *s, size_t n, size_t written) {
  c->out_len += n + written;
  if (c->out_len > CHAT_MAX_OUTPUT)
    chat_fail(c, c->line, "the template writes more than %u MiB (limit)", CHAT_MAX_OUTPUT >> 20);
  chat_buf_add(c, out, s, n);
}

static int chat_exec(ChatCtx *c, ChatScope *sc, ChatNode **body, int n, ChatBuf *out) {
  for (int i = 0; i < n; i++) {
    const ChatNode *x = body[i];
    chat_enter(c, x->line);
    int r = CHAT_NEXT;
    switch (x->kind) {
      case CN_COMMENT: break;
      case CN_STR: chat_emit(c, out, x->s, x->n, 0); break;
      case CN_IF: {
        int t = chat_truthy(chat_eval(c, sc, x->a));
        r = t ? chat_exec(c, sc, x->list, x->nlist, out) : chat_exec(c, sc, x->list2, x->nlist2, out);
        break;
      }
      case CN_FOR: chat_for(c, sc, x, out); break;
      case CN_SET: chat_set(c, sc, x); break;
      case CN_BREAK: r = CHAT_BREAK; break;
      case CN_CONTINUE: r = CHAT_CONTINUE; break;
      case CN_INT: case CN_FLOAT: case CN_IDENT: case CN_LIST: case CN_TUPLE: case CN_DICT:
      case CN_MEMBER: case CN_SLICE: case CN_CALL: case CN_KWARG: case CN_FILTER: case CN_TEST:
      case CN_UNARY: case CN_BINARY: case CN_TERNARY: case CN_SELECT: {
        ChatVal *v = chat_eval(c, sc, x);
        c->line = x->line;
        size_t before = out->len;
        chat_to_text(c, out, v);
        chat_emit(c, out, NULL, 0, out->len - before);
        break;
      }
    }
    c->depth--;
    if (r != CHAT_NEXT) return r;
  }
  return CHAT_NEXT;
}

static int chat_utf8_ok(const char *s) {
  const unsigned char *p = (const unsigned char *)s;
  while (*p) {
    size_t l = chat_utf8_len(*p);
    if (l == 1 && *p >= 0x80) return 0;
    for (size_t k = 1; k < l; k++)
      if ((p[k] & 0xC0) != 0x80) return 0;
    long cp = l == 1 ? p[0] : l == 2 ? ((p[0] & 0x1F) << 6 | (p[1] & 0x3F))
            : l == 3 ? ((p[0] & 0x0F) << 12 | (p[1] & 0x3F) << 6 | (p[2] & 0x3F))
                     : ((long)(p[0] & 0x07) << 18 | (p[1] & 0x3F) << 12 | (p[2] & 0x3F) << 6 | (p[3] & 0x3F));
    if ((l == 2 && cp < 0x80) || (l == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) ||
        (l == 4 && (cp < 0x10000 || cp > 0x10FFFF)))
      return 0;
    p += l;
  }
  return 1;
}

static void chat_global(ChatCtx *c, ChatScope *g, const char *name, ChatVal *v) {
  chat_dict_set(c, g->vars, chat_cstr(c, name), v);
}

static char *chat_run(ChatCtx *c, const char *tmpl, const ChatMsg *msgs, int n, int agp, const char *bos,
                      const char *eos) {
  size_t len = strlen(tmpl);
  if (len > CHAT_MAX_TEMPLATE) chat_fail(c, 0, "the template is longer than %u bytes (limit)", CHAT_MAX_TEMPLATE);
  if (!chat_utf8_ok(tmpl)) chat_fail(c, 0, "the template is not valid UTF-8");
  int ntok, nbody;
  ChatTok *t = chat_lex(c, tmpl, len, &ntok);
  ChatNode **body = chat_parse(c, t, ntok, &nbody);
  ChatScope *g = chat_alloc(c, sizeof *g);
  g->vars = chat_dict(c, CV_DICT);
  chat_global(c, g, "namespace", chat_func(c, CF_NAMESPACE, NULL));
  chat_global(c, g, "false", chat_bool(c, 0));
  chat_global(c, g, "true", chat_bool(c, 1));
  chat_global(c, g, "none", chat_none(c));
  chat_global(c, g, "raise_exception", chat_func(c, CF_RAISE, NULL));
  chat_global(c, g, "range", chat_func(c, CF_RANGE, NULL));
  chat_global(c, g, "True", chat_bool(c, 1));
  chat_global(c, g, "False", chat_bool(c, 0));
  chat_global(c, g, "None", chat_none(c));
  ChatVal *list = chat_list(c);
  for (int i = 0; i < n; i++) {
    if (!msgs[i].role) chat_fail(c, 0, "messages[%d]: no role", i);
    if (!chat_utf8_ok(msgs[i].role) || (msgs[i].content && !chat_utf8_ok(msgs[i].content)))
      chat_fail(c, 0, "messages[%d]: not valid UTF-8", i);
    ChatVal *m = chat_dict(c, CV_DICT);
    chat_dict_set(c, m, chat_cstr(c, "role"), chat_cstr(c, msgs[i].role));
    chat_dict_set(c, m, chat_cstr(c, "content"), msgs[i].content ? chat_cstr(c, msgs[i].content) : chat_none(c));
    chat_list_push(c, list, m);
  }
  chat_global(c, g, "messages", list);
  chat_global(c, g, "add_generation_prompt", chat_bool(c, agp));
  if (bos) {
    if (!chat_utf8_ok(bos)) chat_fail(c, 0, "bos_token: not valid UTF-8");
    chat_global(c, g, "bos_token", chat_cstr(c, bos));
  }
  if (eos) {
    if (!chat_utf8_ok(eos)) chat_fail(c, 0, "eos_token: not valid UTF-8");
    chat_global(c, g, "eos_token", chat_cstr(c, eos));
  }
  ChatBuf out = {0};
  chat_buf_add(c, &out, "", 0);
  int r = chat_exec(c, g, body, nbody, &out);
  if (r != CHAT_NEXT) chat_fail(c, c->line, "{%% %s %%} outside a for loop", r == CHAT_BREAK ? "break" : "continue");
  return rc_strdup(out.p);
}

char *chat_render(const char *tmpl, const ChatMsg *msgs, int n, int add_generation_prompt,
                  const char *bos_token, const char *eos_token, char *err, size_t errlen) {
  if (!tmpl || n < 0 || (n > 0 && !msgs)) {
    if (err && errlen) snprintf(err, errlen, "chat_render: no template or no messages");
    return NULL;
  }
  ChatCtx *c = rc_calloc(1, sizeof *c);
  c->err = err;
  c->errlen = errlen;
  if (setjmp(c->jb)) {
    chat_free_all(c);
    free(c);
    return NULL;
  }
  char *res = chat_run(c, tmpl, msgs, n, add_generation_prompt, bos_token, eos_token);
  chat_free_all(c);
  free(c);
  return res;
}
