/* parser.y — the grammar of the Rein language (docs/language.md, "Statements" and "Expressions"), as a reentrant bison parser.
 *
 * It builds the raw AST (ast.h) with a source range on every node and leaves every question of
 * meaning (names, levels, types) to sema.c.  Syntax errors are reported in the project's format
 * by parse_report_syntax_error below and the parser recovers at the next `;`, so one run reports
 * several errors.  Operator precedence is encoded in the rules (one nonterminal per level, as in
 * docs/language.md) rather than with %left/%right, so that a chained comparison can get its own message.
 * The readable summary of this grammar is lang/grammar.ebnf.
 */
%define api.pure full
%define api.prefix {rein_yy}
%define api.token.prefix {TOK_}
%define api.location.type {SrcRange}
%define parse.error custom
%locations
%param {void *scanner}
%parse-param {ParseCtx *p}

%code requires {
#include "ast.h"
#include "parse.h"
}

%code provides {
int rein_yylex(REIN_YYSTYPE *lval, SrcRange *lloc, void *scanner);
}

%code {
#include <string.h>

#define YYLLOC_DEFAULT(Cur, Rhs, N)                         \
  do {                                                      \
    if (N) {                                                \
      (Cur).begin = YYRHSLOC(Rhs, 1).begin;                 \
      (Cur).end = YYRHSLOC(Rhs, N).end;                     \
    } else {                                                \
      (Cur).begin = (Cur).end = YYRHSLOC(Rhs, 0).end;       \
    }                                                       \
  } while (0)

static void rein_yyerror(SrcRange *loc, void *scanner, ParseCtx *p, const char *msg);

/* Rejects a subtree deeper than PARSE_MAX_DEPTH (so later recursive passes cannot overflow the
 * stack) and stops the parse. */
#define CHECK_DEPTH(e, loc)                                                           \
  do {                                                                                \
    if ((e)->depth > PARSE_MAX_DEPTH) {                                               \
      diag_error(p->diag, (loc), "expression nested too deeply (more than %d levels)", \
                 PARSE_MAX_DEPTH);                                                    \
      p->fatal = true;                                                                \
      YYABORT;                                                                        \
    }                                                                                 \
  } while (0)

static Decl *named_decl(ParseCtx *p, DeclKind k, SrcRange all, const char *name, SrcRange nr) {
  Decl *d = ast_decl(p->arena, k, all);
  d->name = name;
  d->name_rng = nr;
  ast_program_add(p->arena, p->prog, d);
  return d;
}
}

%union {
  double num;
  const char *str;
  Level level;
  OpId op;
  Expr *expr;
  AstArgList args;
}

%token OBJECTIVE "`objective`" PARAM "`param`" CONST "`const`" INPUT "`input`" FN "`fn`"
%token LET "`let`" LOSS "`loss`" METRIC "`metric`" STATE "`state`" UPDATE "`update`" TRUE "`true`" FALSE "`false`"
%token AND "`and`" OR "`or`" NOT "`not`"
%token <level> LEVEL "a level"
%token <num> NUMBER "a number"
%token <str> IDENT "a name" STRING "a string"
%token LE "`<=`" GE "`>=`" EQ "`==`" NE "`!=`" LT "`<`" GT "`>`" ASSIGN "`=`"
%token PLUS "`+`" MINUS "`-`" STAR "`*`" SLASH "`/`" CARET "`^`" COMMA "`,`" SEMI "`;`"
%token LPAREN "`(`" RPAREN "`)`" LBRACKET "`[`" RBRACKET "`]`"

%type <expr> expr or_expr and_expr not_expr cmp_expr add_expr mul_expr unary pow_expr primary
%type <op> cmp_op
%type <args> args arglist params paramlist
%type <level> level

%%

/* program = { stmt } */
program
  : %empty
  | program stmt
  ;

/* stmt = "objective" NAME [STRING] ";" | "param" NAME "=" expr ";" | "const" NAME "=" expr ";"
 *      | "input" LEVEL NAME ";" | "fn" NAME "(" [NAME {"," NAME}] ")" "=" expr ";"
 *      | "let" NAME "=" expr ";" | "loss" "=" expr ";" | "metric" NAME "=" expr ";"
 *      | "state" NAME "=" expr ";" | "update" NAME "=" expr ";" */
stmt
  : OBJECTIVE IDENT STRING SEMI {
      Decl *d = named_decl(p, DECL_OBJECTIVE, @$, $2, @2);
      d->desc = $3;
    }
  | OBJECTIVE IDENT SEMI        { named_decl(p, DECL_OBJECTIVE, @$, $2, @2); }
  | PARAM IDENT ASSIGN expr SEMI { named_decl(p, DECL_PARAM, @$, $2, @2)->body = $4; }
  | CONST IDENT ASSIGN expr SEMI { named_decl(p, DECL_CONST, @$, $2, @2)->body = $4; }
  | INPUT level IDENT SEMI {
      Decl *d = named_decl(p, DECL_INPUT, @$, $3, @3);
      d->level = $2;
      if ($2 != LV_TOKEN && $2 != LV_SEQ && $2 != LV_COUNT) {
        diag_error(p->diag, @2, "an input is a token or a seq value, not %s (group and batch "
                   "values are computed from them with reductions)", bi_level_names[$2]);
        d->bad = true;
      }
    }
  | FN IDENT LPAREN params RPAREN ASSIGN expr SEMI {
      Decl *d = named_decl(p, DECL_FN, @$, $2, @2);
      d->params = $4.names;
      d->param_rngs = $4.rngs;
      d->nparams = $4.n;
      d->body = $7;
    }
  | LET IDENT ASSIGN expr SEMI    { named_decl(p, DECL_LET, @$, $2, @2)->body = $4; }
  | LOSS ASSIGN expr SEMI         { named_decl(p, DECL_LOSS, @$, NULL, @1)->body = $3; }
  | METRIC IDENT ASSIGN expr SEMI { named_decl(p, DECL_METRIC, @$, $2, @2)->body = $4; }
  | STATE IDENT ASSIGN expr SEMI  { named_decl(p, DECL_STATE, @$, $2, @2)->body = $4; }
  | UPDATE IDENT ASSIGN expr SEMI { named_decl(p, DECL_UPDATE, @$, $2, @2)->body = $4; }
  | error SEMI                    { yyerrok; }
  ;

/* LEVEL = "token" | "seq" | "group" | "batch" */
level
  : LEVEL { $$ = $1; }
  | IDENT {
      diag_error(p->diag, @1, "unknown level `%s`; the levels are token, seq, group and batch", $1);
      $$ = LV_COUNT; /* no level: reported once; sema does not run after a syntax error */
    }
  ;

params
  : %empty    { memset(&$$, 0, sizeof $$); }
  | paramlist { $$ = $1; }
  ;

paramlist
  : IDENT                 { memset(&$$, 0, sizeof $$); ast_args_push(p->arena, &$$, $1, @1, NULL); }
  | paramlist COMMA IDENT { $$ = $1; ast_args_push(p->arena, &$$, $3, @3, NULL); }
  ;

/* expr = or_expr */
expr : or_expr ;

/* or_expr = and_expr { "or" and_expr } */
or_expr
  : and_expr
  | or_expr OR and_expr { $$ = ast_binary(p->arena, @$, OP_OR, $1, $3); CHECK_DEPTH($$, @$); }
  ;

/* and_expr = not_expr { "and" not_expr } */
and_expr
  : not_expr
  | and_expr AND not_expr { $$ = ast_binary(p->arena, @$, OP_AND, $1, $3); CHECK_DEPTH($$, @$); }
  ;

/* not_expr = "not" not_expr | cmp_expr */
not_expr
  : cmp_expr
  | NOT not_expr { $$ = ast_unary(p->arena, @$, OP_NOT, $2); CHECK_DEPTH($$, @$); }
  ;

/* cmp_expr = add_expr [ cmp_op add_expr ]      (comparisons do not chain) */
cmp_expr
  : add_expr
  | cmp_expr cmp_op add_expr {
      if ($1->kind == AST_BINARY && bi_ops[$1->id].cls == 'c' && !$1->paren)
        diag_error(p->diag, @2, "comparisons do not chain: `a < b < c` must be written "
                   "`a < b and b < c`");
      $$ = ast_binary(p->arena, @$, $2, $1, $3);
      CHECK_DEPTH($$, @$);
    }
  ;

cmp_op
  : LT { $$ = OP_LT; } | LE { $$ = OP_LE; } | GT { $$ = OP_GT; }
  | GE { $$ = OP_GE; } | EQ { $$ = OP_EQ; } | NE { $$ = OP_NE; }
  ;

/* add_expr = mul_expr { ("+" | "-") mul_expr } */
add_expr
  : mul_expr
  | add_expr PLUS mul_expr  { $$ = ast_binary(p->arena, @$, OP_ADD, $1, $3); CHECK_DEPTH($$, @$); }
  | add_expr MINUS mul_expr { $$ = ast_binary(p->arena, @$, OP_SUB, $1, $3); CHECK_DEPTH($$, @$); }
  ;

/* mul_expr = unary { ("*" | "/") unary } */
mul_expr
  : unary
  | mul_expr STAR unary  { $$ = ast_binary(p->arena, @$, OP_MUL, $1, $3); CHECK_DEPTH($$, @$); }
  | mul_expr SLASH unary { $$ = ast_binary(p->arena, @$, OP_DIV, $1, $3); CHECK_DEPTH($$, @$); }
  ;

/* unary = "-" unary | pow_expr */
unary
  : MINUS unary { $$ = ast_unary(p->arena, @$, OP_NEG, $2); CHECK_DEPTH($$, @$); }
  | pow_expr
  ;

/* pow_expr = primary [ "^" unary ]      (right-associative: 2^3^2 = 2^(3^2), -x^2 = -(x^2)) */
pow_expr
  : primary
  | primary CARET unary { $$ = ast_binary(p->arena, @$, OP_POW, $1, $3); CHECK_DEPTH($$, @$); }
  ;

/* primary = NUMBER | "true" | "false" | NAME | NAME "(" args ")"
 *         | NAME "[" LEVEL "]" "(" args ")" | "(" expr ")" */
primary
  : NUMBER { $$ = ast_num(p->arena, @$, $1); }
  | TRUE   { $$ = ast_bool(p->arena, @$, true); }
  | FALSE  { $$ = ast_bool(p->arena, @$, false); }
  | IDENT  { $$ = ast_name(p->arena, @$, $1); }
  | IDENT LPAREN args RPAREN {
      $$ = ast_call(p->arena, @$, $1, false, LV_BATCH, $3.args, $3.names, $3.rngs, $3.n);
      CHECK_DEPTH($$, @$);
    }
  | IDENT LBRACKET level RBRACKET LPAREN args RPAREN {
      $$ = ast_call(p->arena, @$, $1, true, $3, $6.args, $6.names, $6.rngs, $6.n);
      CHECK_DEPTH($$, @$);
    }
  | LPAREN expr RPAREN { $$ = $2; $$->paren = true; }
  ;

/* args = [ arg { "," arg } ];  arg = expr | NAME "=" expr */
args
  : %empty  { memset(&$$, 0, sizeof $$); }
  | arglist { $$ = $1; }
  ;

arglist
  : expr                              { memset(&$$, 0, sizeof $$); ast_args_push(p->arena, &$$, NULL, @1, $1); }
  | IDENT ASSIGN expr                 { memset(&$$, 0, sizeof $$); ast_args_push(p->arena, &$$, $1, @1, $3); }
  | arglist COMMA expr                { $$ = $1; ast_args_push(p->arena, &$$, NULL, @3, $3); }
  | arglist COMMA IDENT ASSIGN expr   { $$ = $1; ast_args_push(p->arena, &$$, $3, @3, $5); }
  ;

%%

/* Reports a syntax error as "unexpected X, expected Y".  When a `;` would have been accepted and
 * the unexpected token starts a later line, the message points just after the previous token
 * ("expected `;` after this"), which is where the semicolon is missing. */
static int yyreport_syntax_error(const yypcontext_t *ctx, void *scanner, ParseCtx *p) {
  (void)scanner;
  if (p->fatal) return 0;
  enum { MAXLIST = 5 };
  yysymbol_kind_t exp[YYNTOKENS];
  int nexp = yypcontext_expected_tokens(ctx, exp, YYNTOKENS);
  yysymbol_kind_t tok = yypcontext_token(ctx);
  SrcRange at = *yypcontext_location(ctx);
  if (tok == YYSYMBOL_YYEOF) { /* point just after the last token, not at trailing comments */
    at.begin = at.end = p->prev_tok.end;
    at.end.col++;
  }

  char what[160];
  if (tok == YYSYMBOL_YYEOF) {
    snprintf(what, sizeof what, "unexpected end of file");
  } else if (tok == YYSYMBOL_IDENT || tok == YYSYMBOL_NUMBER || tok == YYSYMBOL_LEVEL ||
             tok == YYSYMBOL_STRING) {
    const SrcFile *f = p->file;
    size_t off = f->line_start[at.begin.line - 1] + (size_t)at.begin.col - 1;
    int n = at.end.line == at.begin.line ? at.end.col - at.begin.col : 1;
    if (n > 40) n = 40;
    const char *kind = tok == YYSYMBOL_IDENT    ? "name"
                       : tok == YYSYMBOL_NUMBER ? "number"
                       : tok == YYSYMBOL_LEVEL  ? "level"
                                                : "string";
    snprintf(what, sizeof what, "unexpected %s `%.*s`", kind, n, f->text + off);
  } else {
    snprintf(what, sizeof what, "unexpected %s", yysymbol_name(tok));
  }

  bool semi = false, stmt = false, operand = false;
  for (int i = 0; i < nexp; i++) {
    if (exp[i] == YYSYMBOL_SEMI) semi = true;
    if (exp[i] == YYSYMBOL_LET) stmt = true;
    if (exp[i] == YYSYMBOL_NUMBER) operand = true;
  }
  if (stmt) {
    diag_error(p->diag, at, "%s; expected a statement (objective, param, const, input, fn, let, "
               "loss or metric)", what);
  } else if (semi && (tok == YYSYMBOL_YYEOF || at.begin.line > p->prev_tok.end.line)) {
    SrcRange after = {p->prev_tok.end, p->prev_tok.end};
    after.end.col++;
    diag_error(p->diag, after, "expected `;` after this (%s)", what);
  } else if (operand) {
    diag_error(p->diag, at, "%s, expected an expression", what);
  } else if (nexp > 0 && nexp <= MAXLIST) {
    char list[400] = "";
    size_t len = 0;
    for (int i = 0; i < nexp; i++) {
      const char *sep = i == 0 ? "" : i == nexp - 1 ? " or " : ", ";
      int w = snprintf(list + len, sizeof list - len, "%s%s", sep, yysymbol_name(exp[i]));
      if (w < 0 || (size_t)w >= sizeof list - len) break;
      len += (size_t)w;
    }
    diag_error(p->diag, at, "%s, expected %s", what, list);
  } else {
    diag_error(p->diag, at, "%s", what);
  }
  return 0;
}

static void rein_yyerror(SrcRange *loc, void *scanner, ParseCtx *p, const char *msg) {
  (void)scanner;
  if (p->fatal) return;
  /* Bison calls this only for "memory exhausted": a construct nested past its stack. */
  diag_error(p->diag, *loc, "input nested too deeply for the parser (%s)", msg);
  p->fatal = true;
}

typedef void *yyscan_t;
int rein_yylex_init_extra(ParseCtx *extra, yyscan_t *scanner);
int rein_yylex_destroy(yyscan_t scanner);
struct yy_buffer_state *rein_yy_scan_bytes(const char *bytes, int len, yyscan_t scanner);

bool parse_program(const SrcFile *file, Diag *diag, Arena *arena, Program *prog) {
  ParseCtx p;
  memset(&p, 0, sizeof p);
  p.arena = arena;
  p.diag = diag;
  p.prog = prog;
  p.file = file;
  p.line = 1;
  p.col = 1;
  prog->file = file;
  int before = diag->nerrors;
  yyscan_t scanner;
  rein_yylex_init_extra(&p, &scanner);
  rein_yy_scan_bytes(file->text, (int)file->len, scanner);
  int rc = rein_yyparse(scanner, &p);
  rein_yylex_destroy(scanner);
  return rc == 0 && diag->nerrors == before;
}
