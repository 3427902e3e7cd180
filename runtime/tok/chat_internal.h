/* chat_internal.h — the private interface of the chat-template renderer (runtime/tok/chat_*.c).
 *
 * chat_render (rein/tok.h) runs a Hugging Face chat_template, a program in a subset of Jinja, the
 * way the reference renderer @huggingface/jinja runs it (docs/chat-templates.md lists the subset
 * and where the reference differs from Python's Jinja).  The pipeline, one file per stage:
 *   chat_mem.c     the per-render context: one arena that owns every token, node, value and
 *                  string of a render (freed at once), the byte budget, the error exit
 *                  (chat_fail longjmps out with "chat template line N: ..."), growable buffers,
 *                  the JavaScript whitespace set.
 *   chat_lex.c     the reference's preprocessing (trailing newline, lstrip_blocks, trim_blocks)
 *                  and its tokenizer, with whitespace control ("{%-", "-%}", ...).
 *   chat_parse.c   tokens → an AST (ChatNode) by the reference's precedence.
 *   chat_value.c   values: constructors, truthiness, equality, string conversion (JavaScript's
 *                  number formatting), JSON (tojson), UTF-16 string lengths.
 *   chat_filter.c  filters, tests, the methods of strings and dicts, the global functions.
 *   chat_eval.c    the interpreter (scopes, statements, expressions) and chat_render itself.
 * Dependencies run one way: mem ← lex ← parse ← eval and mem ← value ← filter ← eval.
 */
#ifndef REIN_CHAT_INTERNAL_H
#define REIN_CHAT_INTERNAL_H

#include <setjmp.h>
#include <stddef.h>
#include <stdint.h>

/* ---- limits: a template that exceeds one fails with an error naming it ---- */
#define CHAT_MAX_TEMPLATE  (1u << 20)      /* template source bytes */
#define CHAT_MAX_BYTES     (256u << 20)    /* arena bytes of one render (values, strings, AST) */
#define CHAT_MAX_OUTPUT    (16u << 20)     /* rendered bytes */
#define CHAT_MAX_STEPS     4000000L        /* evaluated nodes */
#define CHAT_MAX_DEPTH     200             /* nesting of expressions and blocks (parser) */
#define CHAT_MAX_EVAL      2000            /* evaluator recursion (long operator chains) */

/* ---- context and memory (chat_mem.c) ---- */
typedef struct ChatChunk ChatChunk;
typedef struct {
  jmp_buf jb;
  char *err;
  size_t errlen;
  ChatChunk *chunks;
  size_t bytes;     /* allocated so far */
  long steps;       /* nodes evaluated so far */
  int depth;        /* evaluator recursion depth */
  int line;         /* template line of what runs now (for errors raised below the evaluator) */
  size_t out_len;   /* bytes rendered so far (all buffers) */
} ChatCtx;

void *chat_alloc(ChatCtx *c, size_t n);
char *chat_strndup(ChatCtx *c, const char *s, size_t n);
void chat_free_all(ChatCtx *c);
/* Write "chat template line N: <message>" (line <= 0: "chat template: <message>") into c->err
 * and leave the render. */
_Noreturn void chat_fail(ChatCtx *c, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

typedef struct {
  char *p;
  size_t len, cap;
} ChatBuf;
void chat_buf_add(ChatCtx *c, ChatBuf *b, const char *s, size_t n);
void chat_buf_addc(ChatCtx *c, ChatBuf *b, char ch);

/* Byte length of the JavaScript whitespace character (String.prototype.trim's set: \t \n \v \f
 * \r space, U+00A0, U+1680, U+2000-U+200A, U+2028, U+2029, U+202F, U+205F, U+3000, U+FEFF) that
 * starts at p (before end), or 0.  chat_ws_back: the one that ends at end (after start), or 0. */
size_t chat_ws_len(const char *p, const char *end);
size_t chat_ws_back(const char *start, const char *end);

/* ---- tokens (chat_lex.c) ---- */
typedef enum {
  CT_TEXT, CT_NUM, CT_STR, CT_IDENT, CT_EQUALS, CT_LPAREN, CT_RPAREN, CT_OPEN_STMT, CT_CLOSE_STMT,
  CT_OPEN_EXPR, CT_CLOSE_EXPR, CT_LBRACKET, CT_RBRACKET, CT_LBRACE, CT_RBRACE, CT_COMMA, CT_DOT,
  CT_COLON, CT_PIPE, CT_ADD, CT_MUL, CT_POW, CT_CMP, CT_UNARY, CT_COMMENT
} ChatTokKind;

typedef struct {
  ChatTokKind kind;
  const char *s;   /* the token's text (string literals: the unescaped value) */
  size_t n;
  int line;        /* line in the template as written */
} ChatTok;

/* Preprocess and tokenize src (len bytes); *ntok tokens, arena-owned. */
ChatTok *chat_lex(ChatCtx *c, const char *src, size_t len, int *ntok);

/* ---- syntax tree (chat_parse.c) ---- */
typedef enum {
  CN_STR, CN_INT, CN_FLOAT, CN_IDENT, CN_LIST, CN_TUPLE, CN_DICT, CN_MEMBER, CN_SLICE, CN_CALL,
  CN_KWARG, CN_FILTER, CN_TEST, CN_UNARY, CN_BINARY, CN_TERNARY, CN_SELECT,
  CN_IF, CN_FOR, CN_SET, CN_BREAK, CN_CONTINUE, CN_COMMENT
} ChatNodeKind;

typedef struct ChatNode ChatNode;
struct ChatNode {
  ChatNodeKind kind;
  int line;
  const char *s;      /* STR value; IDENT, FILTER, TEST, KWARG name; UNARY, BINARY operator */
  size_t n;
  int64_t i;          /* INT */
  double f;           /* FLOAT */
  int flag;           /* MEMBER: computed ([...]); FILTER: call form; TEST: negated */
  ChatNode *a, *b, *c;
  /* MEMBER a.b; SLICE a:b:c; CALL a(list); KWARG s=a; FILTER a|s(list); TEST a is s; UNARY s a;
   * BINARY a s b; TERNARY b if a else c; SELECT a if b; IF a: list else list2;
   * FOR a in b: list else list2; SET a = b, or a = rendered list; LIST/TUPLE list;
   * DICT list: list2 */
  ChatNode **list, **list2;
  int nlist, nlist2;
};

/* Parse tokens into the top-level statement list (*n statements). */
ChatNode **chat_parse(ChatCtx *c, const ChatTok *t, int ntok, int *n);

/* ---- values (chat_value.c) ---- */
typedef enum {
  CV_UNDEF, CV_NONE, CV_BOOL, CV_INT, CV_FLOAT, CV_STR, CV_LIST, CV_DICT, CV_NS, CV_FUNC
} ChatKind;

/* Functions: the globals, and the methods of strings and dicts bound to their receiver. */
typedef enum {
  CF_NAMESPACE, CF_RAISE, CF_RANGE,
  CF_UPPER, CF_LOWER, CF_STRIP, CF_LSTRIP, CF_RSTRIP, CF_TITLE, CF_CAPITALIZE, CF_STARTSWITH,
  CF_ENDSWITH, CF_SPLIT, CF_REPLACE,
  CF_GET, CF_ITEMS, CF_KEYS, CF_VALUES
} ChatFn;

typedef struct ChatVal ChatVal;
struct ChatVal {
  ChatKind k;
  int tuple;          /* a LIST written as a tuple (a, b) */
  int64_t i;          /* BOOL, INT (|i| <= 2^53: the reference's numbers are doubles) */
  double f;           /* FLOAT */
  const char *s;      /* STR bytes (UTF-8, not NUL-terminated) */
  size_t n;
  ChatVal **items;    /* LIST items; DICT/NS values */
  ChatVal **keys;     /* DICT/NS keys (strings), in insertion order */
  int len, cap;
  ChatFn fn;          /* FUNC */
  ChatVal *self;      /* FUNC: the receiver of a method */
};

ChatVal *chat_undef(ChatCtx *c);
ChatVal *chat_none(ChatCtx *c);
ChatVal *chat_bool(ChatCtx *c, int b);
ChatVal *chat_int(ChatCtx *c, int64_t i);     /* fails beyond 2^53 */
ChatVal *chat_float(ChatCtx *c, double f);
ChatVal *chat_str(ChatCtx *c, const char *s, size_t n);   /* s is copied */
ChatVal *chat_cstr(ChatCtx *c, const char *s);
/* A string over s, not copied: s must outlive the render (arena or static text). */
ChatVal *chat_str_ref(ChatCtx *c, const char *s, size_t n);
ChatVal *chat_list(ChatCtx *c);
ChatVal *chat_dict(ChatCtx *c, ChatKind k);  /* CV_DICT or CV_NS */
ChatVal *chat_func(ChatCtx *c, ChatFn fn, ChatVal *self);
void chat_list_push(ChatCtx *c, ChatVal *l, ChatVal *v);
void chat_dict_set(ChatCtx *c, ChatVal *d, ChatVal *key, ChatVal *v);
ChatVal *chat_dict_get(const ChatVal *d, const char *key, size_t n);   /* NULL when absent */

const char *chat_kind_name(ChatKind k);
int chat_truthy(const ChatVal *v);
/* JavaScript's loose ==, as the reference compares (lists and dicts by identity; a
 * container against a scalar fails). */
int chat_loose_eq(ChatCtx *c, const ChatVal *a, const ChatVal *b);
/* JavaScript's === on the reference's values (for `in` on lists). */
int chat_strict_eq(const ChatVal *a, const ChatVal *b);
/* The text {{ v }} writes (the reference's toString); fails for a function. */
void chat_to_text(ChatCtx *c, ChatBuf *b, const ChatVal *v);
/* The text `~` and `+` use (JavaScript's String(v.value)); fails for lists, dicts, functions. */
void chat_concat_text(ChatCtx *c, ChatBuf *b, const ChatVal *v);
/* JavaScript's Number.prototype.toString of x. */
void chat_js_number(ChatCtx *c, ChatBuf *b, double x);
/* JSON as the reference's tojson writes it; indent < 0: none; undef_null: undefined → null
 * (else "undefined", as the reference's string conversion of lists and dicts writes it). */
void chat_json(ChatCtx *c, ChatBuf *b, const ChatVal *v, int indent, int undef_null, int depth);
/* Length of UTF-8 text in UTF-16 code units (JavaScript's string length). */
int64_t chat_utf16_len(const char *s, size_t n);
/* Byte length of the UTF-8 sequence starting with byte b (1 for an invalid lead). */
size_t chat_utf8_len(unsigned char b);

/* ---- filters, tests, methods, globals (chat_filter.c) ---- */
/* Apply filter name to v.  call: written with parentheses; args[0..nargs) positional,
 * kw (a DICT or NULL) the keyword arguments. */
ChatVal *chat_filter(ChatCtx *c, const char *name, size_t nlen, ChatVal *v, int call,
                     ChatVal **args, int nargs, ChatVal *kw);
/* Run test name on v (`v is name`). */
int chat_test(ChatCtx *c, const char *name, size_t nlen, const ChatVal *v);
/* Call function f. */
ChatVal *chat_call(ChatCtx *c, const ChatVal *f, ChatVal **args, int nargs, ChatVal *kw);
/* The method or property name of a string (NULL when it has none: the reference's builtins). */
ChatVal *chat_str_member(ChatCtx *c, ChatVal *s, const char *name, size_t n);
/* The builtin method name of a dict (get, items, keys, values), or NULL. */
ChatVal *chat_dict_member(ChatCtx *c, ChatVal *d, const char *name, size_t n);

#endif
