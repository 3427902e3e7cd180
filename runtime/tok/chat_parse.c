/* chat_parse.c — chat-template tokens to a syntax tree, with the reference renderer's grammar.
 *
 * Statements: {% set %} (an expression, a tuple, a namespace attribute; or a block set ...
 * {% endset %}), {% if %}/{% elif %}/{% else %}/{% endif %}, {% for %} (with an `if` filter and
 * an {% else %} block), {% break %}, {% continue %}; comments; text; {{ expression }}.
 * Macros, call blocks and filter blocks are outside the subset: an error names them.
 * Expression precedence, lowest first (as @huggingface/jinja parses; note that `|` binds tighter
 * than `is`, which binds tighter than `**`, `*`, `+`, and that comparisons do not chain):
 *   ternary (a if c else b; a if c) < or < and < not < comparison/in/not in < + - ~ < * / // % <
 *   ** < is [not] test < | filter < unary sign < call/member/subscript < primary.
 * Deeply nested input fails with an error (CHAT_MAX_DEPTH) instead of overflowing the stack.
 */
#include "chat_internal.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
  ChatCtx *c;
  const ChatTok *t;
  int n, pos, depth;
} ChatParser;

typedef struct {
  ChatNode **v;
  int n, cap;
} ChatVec;

static void chat_vec_push(ChatCtx *c, ChatVec *v, ChatNode *x) {
  if (v->n == v->cap) {
    int cap = v->cap ? v->cap * 2 : 8;
    ChatNode **p = chat_alloc(c, (size_t)cap * sizeof *p);
    if (v->n) memcpy(p, v->v, (size_t)v->n * sizeof *p);
    v->v = p;
    v->cap = cap;
  }
  v->v[v->n++] = x;
}

static int chat_line(const ChatParser *P) {
  if (P->pos < P->n) return P->t[P->pos].line;
  return P->n ? P->t[P->n - 1].line : 1;
}

static _Noreturn void chat_perr(ChatParser *P, const char *what) {
  if (P->pos >= P->n) chat_fail(P->c, chat_line(P), "%s, but the template ends", what);
  const ChatTok *t = &P->t[P->pos];
  chat_fail(P->c, t->line, "%s, found '%.*s'", what, t->kind == CT_TEXT ? 0 : (int)t->n, t->s);
}

static ChatNode *chat_node(ChatParser *P, ChatNodeKind k, int line) {
  ChatNode *x = chat_alloc(P->c, sizeof *x);
  x->kind = k;
  x->line = line;
  return x;
}

static int chat_is(const ChatParser *P, ChatTokKind k) { return P->pos < P->n && P->t[P->pos].kind == k; }
static int chat_is_ident(const ChatParser *P, int off, const char *name) {
  int i = P->pos + off;
  return i < P->n && P->t[i].kind == CT_IDENT && P->t[i].n == strlen(name) &&
         !memcmp(P->t[i].s, name, P->t[i].n);
}
static int chat_is_stmt(const ChatParser *P, const char *name) {
  return chat_is(P, CT_OPEN_STMT) && chat_is_ident(P, 1, name);
}
static void chat_expect(ChatParser *P, ChatTokKind k, const char *what) {
  if (!chat_is(P, k)) chat_perr(P, what);
  P->pos++;
}

static ChatNode *chat_expr(ChatParser *P);
static ChatNode *chat_primary(ChatParser *P);
static ChatNode *chat_any(ChatParser *P);

static void chat_enter(ChatParser *P) {
  if (++P->depth > CHAT_MAX_DEPTH)
    chat_fail(P->c, chat_line(P), "the template nests deeper than %d levels (limit)", CHAT_MAX_DEPTH);
}

/* body := any* up to {% <one of names> %}; fails naming the block when the template ends. */
static void chat_body(ChatParser *P, ChatVec *v, const char *const *names, const char *block, int line) {
  for (;;) {
    if (P->pos >= P->n)
      chat_fail(P->c, line, "unclosed {%% %s %%} (no {%% end%s %%} before the end of the template)",
                block, block);
    for (int k = 0; names[k]; k++)
      if (chat_is_stmt(P, names[k])) return;
    chat_vec_push(P->c, v, chat_any(P));
  }
}

/* sequence := expr (',' expr)*   — a tuple when there is a comma.  primary: loop targets. */
static ChatNode *chat_sequence(ChatParser *P, int primary) {
  int line = chat_line(P);
  ChatNode *first = primary ? chat_primary(P) : chat_expr(P);
  if (!chat_is(P, CT_COMMA)) return first;
  ChatVec v = {0};
  chat_vec_push(P->c, &v, first);
  while (chat_is(P, CT_COMMA)) {
    P->pos++;
    chat_vec_push(P->c, &v, primary ? chat_primary(P) : chat_expr(P));
  }
  ChatNode *x = chat_node(P, CN_TUPLE, line);
  x->list = v.v;
  x->nlist = v.n;
  return x;
}

/* args := '(' (expr | ident '=' expr) (',' ...)* ')' */
static void chat_args(ChatParser *P, ChatNode *x) {
  chat_expect(P, CT_LPAREN, "expected '('");
  ChatVec v = {0};
  int kw = 0;
  while (!chat_is(P, CT_RPAREN)) {
    if (chat_is(P, CT_MUL) || chat_is(P, CT_POW))
      chat_fail(P->c, chat_line(P), "argument unpacking (* / **) is outside the supported subset");
    ChatNode *a = chat_expr(P);
    if (chat_is(P, CT_EQUALS)) {
      if (a->kind != CN_IDENT) chat_perr(P, "expected an identifier before '=' in arguments");
      P->pos++;
      ChatNode *k = chat_node(P, CN_KWARG, a->line);
      k->s = a->s;
      k->n = a->n;
      k->a = chat_expr(P);
      a = k;
      kw = 1;
    } else if (kw) {
      chat_fail(P->c, a->line, "a positional argument follows keyword arguments");
    }
    chat_vec_push(P->c, &v, a);
    if (chat_is(P, CT_COMMA)) P->pos++;
    else if (!chat_is(P, CT_RPAREN)) chat_perr(P, "expected ',' or ')' in arguments");
  }
  P->pos++;
  x->list = v.v;
  x->nlist = v.n;
}

/* member := primary ('.' ident | '.' int | '[' expr ']' | '[' slice ']')* */
static ChatNode *chat_member(ChatParser *P, ChatNode *obj) {
  while (chat_is(P, CT_DOT) || chat_is(P, CT_LBRACKET)) {
    int computed = chat_is(P, CT_LBRACKET), line = chat_line(P);
    P->pos++;
    ChatNode *m = chat_node(P, CN_MEMBER, line);
    m->a = obj;
    m->flag = computed;
    if (!computed) {
      m->b = chat_primary(P);
      if (m->b->kind != CN_IDENT && m->b->kind != CN_INT)
        chat_fail(P->c, line, "expected a name or an integer after '.'");
    } else {
      ChatNode *part[3] = {0};
      int np = 0, slice = 0;
      while (!chat_is(P, CT_RBRACKET)) {
        if (np == 3) chat_fail(P->c, line, "a slice has at most three parts");
        if (chat_is(P, CT_COLON)) { np++; P->pos++; slice = 1; continue; }
        part[np++] = chat_expr(P);
        if (chat_is(P, CT_COLON)) { P->pos++; slice = 1; }
        else if (!chat_is(P, CT_RBRACKET)) chat_perr(P, "expected ':' or ']' in a subscript");
      }
      if (np == 0) chat_fail(P->c, line, "an empty subscript []");
      P->pos++;
      if (slice) {
        ChatNode *s = chat_node(P, CN_SLICE, line);
        s->a = part[0];
        s->b = part[1];
        s->c = part[2];
        m->b = s;
      } else {
        m->b = part[0];
      }
    }
    obj = m;
  }
  return obj;
}

static ChatNode *chat_call_chain(ChatParser *P, ChatNode *callee) {
  while (chat_is(P, CT_LPAREN)) {
    ChatNode *x = chat_node(P, CN_CALL, chat_line(P));
    x->a = callee;
    chat_args(P, x);
    callee = chat_member(P, x);
  }
  return callee;
}

/* primary := number | string+ | ident | '(' sequence ')' | '[' exprs ']' | '{' expr ':' expr ... '}' */
static ChatNode *chat_primary(ChatParser *P) {
  if (P->pos >= P->n) chat_perr(P, "expected an expression");
  const ChatTok *t = &P->t[P->pos++];
  ChatNode *x;
  switch (t->kind) {
    case CT_NUM: {
      char buf[64];
      if (t->n >= sizeof buf) chat_fail(P->c, t->line, "number literal too long");
      memcpy(buf, t->s, t->n);
      buf[t->n] = 0;
      if (memchr(t->s, '.', t->n)) {
        x = chat_node(P, CN_FLOAT, t->line);
        x->f = strtod(buf, NULL);
      } else {
        x = chat_node(P, CN_INT, t->line);
        errno = 0;
        double d = strtod(buf, NULL);
        if (fabs(d) > 9007199254740992.0)
          chat_fail(P->c, t->line, "integer literal %s beyond 2^53 (the reference's numbers are doubles)", buf);
        x->i = (int64_t)d;
      }
      return x;
    }
    case CT_STR: {
      ChatBuf b = {0};
      chat_buf_add(P->c, &b, t->s, t->n);
      while (chat_is(P, CT_STR)) {
        chat_buf_add(P->c, &b, P->t[P->pos].s, P->t[P->pos].n);
        P->pos++;
      }
      x = chat_node(P, CN_STR, t->line);
      x->s = b.p ? b.p : "";
      x->n = b.len;
      return x;
    }
    case CT_IDENT:
      x = chat_node(P, CN_IDENT, t->line);
      x->s = t->s;
      x->n = t->n;
      return x;
    case CT_LPAREN:
      chat_enter(P);
      x = chat_sequence(P, 0);
      P->depth--;
      chat_expect(P, CT_RPAREN, "expected ')'");
      return x;
    case CT_LBRACKET: {
      chat_enter(P);
      ChatVec v = {0};
      while (!chat_is(P, CT_RBRACKET)) {
        chat_vec_push(P->c, &v, chat_expr(P));
        if (chat_is(P, CT_COMMA)) P->pos++;
        else if (!chat_is(P, CT_RBRACKET)) chat_perr(P, "expected ',' or ']' in a list");
      }
      P->pos++;
      P->depth--;
      x = chat_node(P, CN_LIST, t->line);
      x->list = v.v;
      x->nlist = v.n;
      return x;
    }
    case CT_LBRACE: {
      chat_enter(P);
      ChatVec k = {0}, v = {0};
      while (!chat_is(P, CT_RBRACE)) {
        chat_vec_push(P->c, &k, chat_expr(P));
        chat_expect(P, CT_COLON, "expected ':' in a dict literal");
        chat_vec_push(P->c, &v, chat_expr(P));
        if (chat_is(P, CT_COMMA)) P->pos++;
        else if (!chat_is(P, CT_RBRACE)) chat_perr(P, "expected ',' or '}' in a dict literal");
      }
      P->pos++;
      P->depth--;
      x = chat_node(P, CN_DICT, t->line);
      x->list = k.v;
      x->nlist = k.n;
      x->list2 = v.v;
      x->nlist2 = v.n;
      return x;
    }
    case CT_TEXT: case CT_EQUALS: case CT_RPAREN: case CT_OPEN_STMT: case CT_CLOSE_STMT:
    case CT_OPEN_EXPR: case CT_CLOSE_EXPR: case CT_RBRACKET: case CT_RBRACE: case CT_COMMA:
    case CT_DOT: case CT_COLON: case CT_PIPE: case CT_ADD: case CT_MUL: case CT_POW: case CT_CMP:
    case CT_UNARY: case CT_COMMENT:
      break;
  }
  P->pos--;
  chat_perr(P, "expected an expression");
}

/* unary := ('-' | '+') unary | call_member */
static ChatNode *chat_unary_sign(ChatParser *P) {
  if ((chat_is(P, CT_UNARY) || chat_is(P, CT_ADD)) &&
      (P->t[P->pos].s[0] == '-' || P->t[P->pos].s[0] == '+') && P->t[P->pos].n == 1) {
    ChatNode *x = chat_node(P, CN_UNARY, chat_line(P));
    x->s = P->t[P->pos].s;
    x->n = 1;
    P->pos++;
    chat_enter(P);
    x->a = chat_unary_sign(P);
    P->depth--;
    return x;
  }
  return chat_call_chain(P, chat_member(P, chat_primary(P)));
}

/* filter := unary ('|' ident args?)* */
static ChatNode *chat_filter_expr(ChatParser *P) {
  ChatNode *x = chat_unary_sign(P);
  while (chat_is(P, CT_PIPE)) {
    P->pos++;
    if (!chat_is(P, CT_IDENT)) chat_perr(P, "expected a filter name after '|'");
    ChatNode *f = chat_node(P, CN_FILTER, chat_line(P));
    f->s = P->t[P->pos].s;
    f->n = P->t[P->pos].n;
    P->pos++;
    f->a = x;
    if (chat_is(P, CT_LPAREN)) {
      f->flag = 1;
      chat_args(P, f);
      if (chat_is(P, CT_DOT) || chat_is(P, CT_LBRACKET) || chat_is(P, CT_LPAREN))
        chat_fail(P->c, f->line, "a subscript or call after a filter call is outside the supported subset");
    }
    x = f;
  }
  return x;
}

/* test := filter ('is' 'not'? ident)* */
static ChatNode *chat_test_expr(ChatParser *P) {
  ChatNode *x = chat_filter_expr(P);
  while (chat_is_ident(P, 0, "is")) {
    P->pos++;
    ChatNode *t = chat_node(P, CN_TEST, chat_line(P));
    if (chat_is_ident(P, 0, "not")) { t->flag = 1; P->pos++; }
    if (!chat_is(P, CT_IDENT)) chat_perr(P, "expected a test name after 'is'");
    t->s = P->t[P->pos].s;
    t->n = P->t[P->pos].n;
    P->pos++;
    if (chat_is(P, CT_LPAREN))
      chat_fail(P->c, t->line, "a test with arguments (is %.*s(...)) is outside the supported subset",
                (int)t->n, t->s);
    t->a = x;
    x = t;
  }
  return x;
}

static ChatNode *chat_binary(ChatParser *P, const ChatTok *op, ChatNode *l, ChatNode *r) {
  ChatNode *x = chat_node(P, CN_BINARY, op->line);
  x->s = op->s;
  x->n = op->n;
  x->a = l;
  x->b = r;
  return x;
}

/* power := test ('**' test)*   (left-associative, as Jinja) */
static ChatNode *chat_power(ChatParser *P) {
  ChatNode *x = chat_test_expr(P);
  while (chat_is(P, CT_POW)) {
    const ChatTok *op = &P->t[P->pos++];
    x = chat_binary(P, op, x, chat_test_expr(P));
  }
  return x;
}

/* mul := power (('*' | '/' | '//' | '%') power)* */
static ChatNode *chat_mul(ChatParser *P) {
  ChatNode *x = chat_power(P);
  while (chat_is(P, CT_MUL)) {
    const ChatTok *op = &P->t[P->pos++];
    x = chat_binary(P, op, x, chat_power(P));
  }
  return x;
}

/* add := mul (('+' | '-' | '~') mul)* */
static ChatNode *chat_add(ChatParser *P) {
  ChatNode *x = chat_mul(P);
  while (chat_is(P, CT_ADD)) {
    const ChatTok *op = &P->t[P->pos++];
    x = chat_binary(P, op, x, chat_mul(P));
  }
  return x;
}

/* compare := add (('==' | '!=' | '<' | '>' | '<=' | '>=' | 'in' | 'not' 'in') add)* */
static ChatNode *chat_compare(ChatParser *P) {
  static const ChatTok not_in = {CT_IDENT, "not in", 6, 0};
  ChatNode *x = chat_add(P);
  for (;;) {
    const ChatTok *op;
    if (chat_is_ident(P, 0, "not") && chat_is_ident(P, 1, "in")) { op = &not_in; P->pos += 2; }
    else if (chat_is_ident(P, 0, "in") || chat_is(P, CT_CMP)) op = &P->t[P->pos++];
    else return x;
    int line = P->t[P->pos - 1].line;
    x = chat_binary(P, op, x, chat_add(P));
    x->line = line;
  }
}

/* not := 'not' not | compare */
static ChatNode *chat_not(ChatParser *P) {
  if (!chat_is_ident(P, 0, "not")) return chat_compare(P);
  ChatNode *x = chat_node(P, CN_UNARY, chat_line(P));
  x->s = "not";
  x->n = 3;
  P->pos++;
  chat_enter(P);
  x->a = chat_not(P);
  P->depth--;
  return x;
}

/* and := not ('and' not)*;  or := and ('or' and)* */
static ChatNode *chat_and(ChatParser *P) {
  ChatNode *x = chat_not(P);
  while (chat_is_ident(P, 0, "and")) {
    const ChatTok *op = &P->t[P->pos++];
    x = chat_binary(P, op, x, chat_not(P));
  }
  return x;
}
static ChatNode *chat_or(ChatParser *P) {
  ChatNode *x = chat_and(P);
  while (chat_is_ident(P, 0, "or")) {
    const ChatTok *op = &P->t[P->pos++];
    x = chat_binary(P, op, x, chat_and(P));
  }
  return x;
}

/* expr := or ('if' or ('else' expr)?)? */
static ChatNode *chat_expr(ChatParser *P) {
  chat_enter(P);
  ChatNode *a = chat_or(P);
  if (chat_is_ident(P, 0, "if")) {
    ChatNode *x = chat_node(P, CN_SELECT, chat_line(P));
    P->pos++;
    x->b = chat_or(P);
    x->a = a;
    if (chat_is_ident(P, 0, "else")) {
      P->pos++;
      x->kind = CN_TERNARY;
      x->a = x->b;
      x->b = a;
      x->c = chat_expr(P);
    }
    a = x;
  }
  P->depth--;
  return a;
}

static void chat_end_tag(ChatParser *P, const char *name) {
  if (!chat_is_stmt(P, name)) chat_perr(P, "expected a closing tag");
  P->pos += 2;
  chat_expect(P, CT_CLOSE_STMT, "expected '%}'");
}

/* if := expr '%}' body ({% elif %} if | {% else %} body)? — the caller eats {% endif %} */
static ChatNode *chat_if(ChatParser *P, int line) {
  static const char *const stops[] = {"elif", "else", "endif", NULL}, *const end[] = {"endif", NULL};
  ChatNode *x = chat_node(P, CN_IF, line);
  x->a = chat_expr(P);
  chat_expect(P, CT_CLOSE_STMT, "expected '%}' after the if condition");
  ChatVec body = {0}, alt = {0};
  chat_body(P, &body, stops, "if", line);
  if (chat_is_stmt(P, "elif")) {
    int l2 = P->t[P->pos].line;
    P->pos += 2;
    chat_enter(P);
    chat_vec_push(P->c, &alt, chat_if(P, l2));
    P->depth--;
  } else if (chat_is_stmt(P, "else")) {
    P->pos += 2;
    chat_expect(P, CT_CLOSE_STMT, "expected '%}' after else");
    chat_body(P, &alt, end, "if", line);
  }
  x->list = body.v;
  x->nlist = body.n;
  x->list2 = alt.v;
  x->nlist2 = alt.n;
  return x;
}

/* statement := '{%' (set | if | for | break | continue) '%}' */
static ChatNode *chat_statement(ChatParser *P) {
  int line = chat_line(P);
  P->pos++;
  if (!chat_is(P, CT_IDENT)) chat_perr(P, "expected a statement name after '{%'");
  const ChatTok *name = &P->t[P->pos++];
  ChatNode *x;
  chat_enter(P);
#define IS(w) (name->n == strlen(w) && !memcmp(name->s, w, name->n))
  if (IS("set")) {
    static const char *const end[] = {"endset", NULL};
    x = chat_node(P, CN_SET, line);
    x->a = chat_sequence(P, 0);
    if (chat_is(P, CT_EQUALS)) {
      P->pos++;
      x->b = chat_sequence(P, 0);
    } else {
      chat_expect(P, CT_CLOSE_STMT, "expected '=' or '%}' in set");
      ChatVec body = {0};
      chat_body(P, &body, end, "set", line);
      x->list = body.v;
      x->nlist = body.n;
      P->pos += 2;
    }
    chat_expect(P, CT_CLOSE_STMT, "expected '%}' to end set");
  } else if (IS("if")) {
    x = chat_if(P, line);
    chat_end_tag(P, "endif");
  } else if (IS("for")) {
    static const char *const stops[] = {"endfor", "else", NULL}, *const end[] = {"endfor", NULL};
    x = chat_node(P, CN_FOR, line);
    x->a = chat_sequence(P, 1);
    if (x->a->kind != CN_IDENT && x->a->kind != CN_TUPLE)
      chat_fail(P->c, line, "expected a name or a tuple of names as the loop variable");
    if (!chat_is_ident(P, 0, "in")) chat_perr(P, "expected 'in' after the loop variable");
    P->pos++;
    x->b = chat_expr(P);
    chat_expect(P, CT_CLOSE_STMT, "expected '%}' after the loop head");
    ChatVec body = {0}, alt = {0};
    chat_body(P, &body, stops, "for", line);
    if (chat_is_stmt(P, "else")) {
      P->pos += 2;
      chat_expect(P, CT_CLOSE_STMT, "expected '%}' after else");
      chat_body(P, &alt, end, "for", line);
    }
    x->list = body.v;
    x->nlist = body.n;
    x->list2 = alt.v;
    x->nlist2 = alt.n;
    chat_end_tag(P, "endfor");
  } else if (IS("break") || IS("continue")) {
    x = chat_node(P, IS("break") ? CN_BREAK : CN_CONTINUE, line);
    chat_expect(P, CT_CLOSE_STMT, "expected '%}'");
  } else if (IS("macro") || IS("call") || IS("filter") || IS("generation") || IS("include") ||
             IS("import") || IS("extends") || IS("block") || IS("raw") || IS("with")) {
    chat_fail(P->c, line, "{%% %.*s %%} is outside the supported subset", (int)name->n, name->s);
  } else {
    chat_fail(P->c, line, "unknown statement {%% %.*s %%} (or a closing tag without its opening one)",
              (int)name->n, name->s);
  }
#undef IS
  P->depth--;
  return x;
}

static ChatNode *chat_any(ChatParser *P) {
  const ChatTok *t = &P->t[P->pos];
  ChatNode *x;
  switch (t->kind) {
    case CT_COMMENT:
      P->pos++;
      return chat_node(P, CN_COMMENT, t->line);
    case CT_TEXT:
      P->pos++;
      x = chat_node(P, CN_STR, t->line);
      x->s = t->s;
      x->n = t->n;
      return x;
    case CT_OPEN_STMT:
      return chat_statement(P);
    case CT_OPEN_EXPR:
      P->pos++;
      x = chat_expr(P);
      chat_expect(P, CT_CLOSE_EXPR, "expected '}}'");
      return x;
    case CT_NUM: case CT_STR: case CT_IDENT: case CT_EQUALS: case CT_LPAREN: case CT_RPAREN:
    case CT_CLOSE_STMT: case CT_CLOSE_EXPR: case CT_LBRACKET: case CT_RBRACKET: case CT_LBRACE:
    case CT_RBRACE: case CT_COMMA: case CT_DOT: case CT_COLON: case CT_PIPE: case CT_ADD:
    case CT_MUL: case CT_POW: case CT_CMP: case CT_UNARY:
      break;
  }
  chat_perr(P, "unexpected token outside a tag");
}

ChatNode **chat_parse(ChatCtx *c, const ChatTok *t, int ntok, int *n) {
  ChatParser P = {c, t, ntok, 0, 0};
  ChatVec v = {0};
  while (P.pos < P.n) chat_vec_push(c, &v, chat_any(&P));
  *n = v.n;
  return v.v;
}
