/* sema_names.c — the names of a program: the symbol tables, what to say about a name that is not
 * visible where it is used, and the words sema's messages are made of.
 *
 * Everything here answers a question about a name or phrases a message; nothing builds checked
 * nodes.  It sits below the rest of sema (sema_expr.c and sema.c call it; it calls neither), so the
 * table and the wording of "unknown name ...; did you mean ...?", "used before its definition",
 * "a let", "a seq value" are written once for the statements and the expressions alike.
 */
#include "sema_internal.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rein/common.h"

/* ---- a string-keyed hash table (open addressing; SymTab is in sema_internal.h) ---- */

static uint64_t hash_str(const char *s) {
  uint64_t h = 1469598103934665603ull;
  for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
  return h;
}

Decl *sema_tab_get(const SymTab *t, const char *key) {
  if (!t->cap) return NULL;
  for (size_t i = hash_str(key) & (t->cap - 1);; i = (i + 1) & (t->cap - 1)) {
    if (!t->slots[i].key) return NULL;
    if (!strcmp(t->slots[i].key, key)) return t->slots[i].val;
  }
}

void sema_tab_put(SymTab *t, const char *key, Decl *val) {
  if (2 * (t->n + 1) > t->cap) {
    size_t cap = t->cap ? t->cap * 2 : 64;
    SymTab big = {rc_calloc(cap, sizeof(SymSlot)), cap, 0};
    for (size_t i = 0; i < t->cap; i++)
      if (t->slots[i].key) sema_tab_put(&big, t->slots[i].key, t->slots[i].val);
    free(t->slots);
    *t = big;
  }
  size_t i = hash_str(key) & (t->cap - 1);
  while (t->slots[i].key && strcmp(t->slots[i].key, key)) i = (i + 1) & (t->cap - 1);
  if (!t->slots[i].key) t->n++;
  t->slots[i].key = key;
  t->slots[i].val = val;
}

/* ---- the words of messages ---- */

/* Writes a short description of raw expression E for messages: its source text in backticks
 * when it is short and on one line, otherwise "this expression". */
const char *sema_describe(Sema *s, const Expr *e, char *buf, size_t n) {
  const SrcFile *f = s->prog->file;
  SrcRange r = e->rng;
  if (f && r.begin.line == r.end.line && r.end.col > r.begin.col && r.end.col - r.begin.col <= 40 &&
      r.begin.line <= f->nlines) {
    size_t off = f->line_start[r.begin.line - 1] + (size_t)r.begin.col - 1;
    snprintf(buf, n, "`%.*s`", r.end.col - r.begin.col, f->text + off);
  } else {
    snprintf(buf, n, "this expression");
  }
  return buf;
}

bool sema_source(Sema *s, SrcRange r, char *buf, size_t n) {
  return r.end.col - r.begin.col <= 60 && diag_source_text(s->prog->file, r, buf, n);
}

const char *sema_with_level(Sema *s, const Expr *call, Level l, char *buf, size_t n) {
  char src[64], re[96];
  if (sema_source(s, call->rng, src, sizeof src) && bi_relevel(src, call->name, l, re, sizeof re))
    snprintf(buf, n, "`%s`", re);
  else
    snprintf(buf, n, "`%s[%s](...)`", call->name, bi_level_names[l]);
  return buf;
}

/* "a let", "an input", ... */
const char *sema_a_kind(DeclKind k) {
  static const char *s[] = {"an objective", "a param",  "a const", "an input", "a fn",
                            "a let",        "a loss",   "a metric", "a state", "an update"};
  return s[k];
}

/* "a token value", "a seq value" ... */
const char *sema_a_level(Level l) {
  static const char *s[] = {"a token value", "a seq value", "a group value", "a batch value"};
  return s[l];
}

/* ---- names that are not visible ---- */

/* The optimal-string-alignment distance of A and B (Levenshtein plus the transposition of two
 * adjacent characters, so `sdt` is 1 from `std`; 99 when either is longer than 64 bytes), for the
 * suggestions below. */
static int edit_distance(const char *a, const char *b) {
  size_t la = strlen(a), lb = strlen(b);
  if (la > 64 || lb > 64) return 99;
  int d[65][65];
  for (size_t i = 0; i <= la; i++) d[i][0] = (int)i;
  for (size_t j = 0; j <= lb; j++) d[0][j] = (int)j;
  for (size_t i = 1; i <= la; i++)
    for (size_t j = 1; j <= lb; j++) {
      int sub = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]);
      int del = d[i - 1][j] + 1, ins = d[i][j - 1] + 1;
      int v = sub < del ? (sub < ins ? sub : ins) : (del < ins ? del : ins);
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] && d[i - 2][j - 2] + 1 < v)
        v = d[i - 2][j - 2] + 1;
      d[i][j] = v;
    }
  return d[la][lb];
}

/* Names from other languages and libraries, and what Rein calls the same thing: the suggestion
 * when edit distance would find nothing (or something else). */
static const struct { const char *alias, *name; } synonyms[] = {
    {"clip", "clamp"},          {"clamp_", "clamp"},        {"stopgrad", "sg"},
    {"stop_gradient", "sg"},    {"stop_grad", "sg"},        {"stopgradient", "sg"},
    {"detach", "sg"},           {"no_grad", "sg"},          {"nograd", "sg"},
    {"ln", "log"},              {"power", "pow"},           {"logistic", "sigmoid"},
    {"minimum", "min"},         {"maximum", "max"},         {"select", "where"},
    {"ifelse", "where"},        {"if_else", "where"},       {"absolute", "abs"},
    {"avg", "mean"},            {"average", "mean"},        {"total", "sum"},
    {"stddev", "std"},          {"stdev", "std"},           {"sd", "std"},
    {"variance", "var"},        {"lse", "logsumexp"},       {"log_sum_exp", "logsumexp"},
    {"argsort", "rank"},        {"length", "len"},          {"seq_len", "len"},
    {"seqlen", "len"},          {"num_tokens", "len"},      {"logprob", "logp"},
    {"logprobs", "logp"},       {"log_prob", "logp"},       {"log_probs", "logp"},
    {"old_logprob", "old_logp"}, {"old_logprobs", "old_logp"}, {"ref_logprob", "ref_logp"},
    {"ref_logprobs", "ref_logp"}, {"rewards", "reward"},    {"keep_grad", "keepgrad"},
    {"rollout_logprob", "rollout_logp"}, {"rollout_logprobs", "rollout_logp"}, {"rollout_log_probs", "rollout_logp"},
};

/* Keeps CAND as *BEST when it is closer to NAME than *BESTD (ties: the alphabetically first). */
static void consider(const char *name, const char *cand, const char **best, int *bestd) {
  if (!cand) return;
  int dist = edit_distance(name, cand);
  if (dist < *bestd || (dist == *bestd && *best && strcmp(cand, *best) < 0)) {
    *bestd = dist;
    *best = cand;
  }
}

const char *sema_suggest(Sema *s, const char *name, SemaNameKind want, SemaNameKind *got) {
  for (size_t i = 0; i < sizeof synonyms / sizeof *synonyms; i++)
    if (!strcmp(synonyms[i].alias, name)) {
      const char *t = synonyms[i].name;
      *got = bi_find_func(t) >= 0 ? SEMA_NAME_FUNC : bi_find_red(t) >= 0 ? SEMA_NAME_RED : SEMA_NAME_VALUE;
      return t;
    }
  /* Within distance 2 (1 for names of 3 characters or fewer) among the names of WANT's kind. */
  const char *best = NULL;
  int bestd = strlen(name) > 3 ? 3 : 2;
  *got = want;
  switch (want) {
  case SEMA_NAME_VALUE:
  case SEMA_NAME_FUNC:
    for (size_t i = 0; i < s->globals.cap; i++) {
      const SymSlot *e = &s->globals.slots[i];
      if (e->key && (e->val->kind == DECL_FN) == (want == SEMA_NAME_FUNC))
        consider(name, e->key, &best, &bestd);
    }
    if (want == SEMA_NAME_VALUE)
      for (int i = 0; i < IN_COUNT; i++) consider(name, bi_inputs[i].name, &best, &bestd);
    else
      for (int i = 0; i < FN_COUNT; i++) consider(name, bi_funcs[i].name, &best, &bestd);
    break;
  case SEMA_NAME_RED:
    for (int i = 0; i < RED_COUNT_; i++) consider(name, bi_reds[i].name, &best, &bestd);
    break;
  }
  return best;
}

/* Reports an unknown name with a suggestion when a visible name is close to it. */
void sema_unknown_name(Sema *s, const char *name, SrcRange at) {
  SemaNameKind got;
  const char *best = sema_suggest(s, name, SEMA_NAME_VALUE, &got);
  if (best && got == SEMA_NAME_VALUE)
    diag_error(s->d, at, "unknown name `%s`; did you mean `%s`?", name, best);
  else if (best)
    diag_error(s->d, at, "unknown name `%s`; did you mean the %s `%s`?", name,
               got == SEMA_NAME_FUNC ? "function" : "reduction", best);
  else
    diag_error(s->d, at, "unknown name `%s`", name);
}

void sema_mark_used(Sema *s, const Expr *raw) {
  if (!raw) return;
  if (raw->kind == AST_NAME || raw->kind == AST_CALL) {
    bool param = false;
    if (s->env)
      for (int i = 0; i < s->env->fn->nparams; i++)
        if (!strcmp(s->env->fn->params[i], raw->name)) param = true;
    Decl *d = param ? NULL : sema_tab_get(&s->globals, raw->name);
    if (d) d->uses++;
  }
  if (raw->kind == AST_UNARY || raw->kind == AST_BINARY || raw->kind == AST_CALL)
    for (int i = 0; i < raw->nargs; i++) sema_mark_used(s, raw->args[i]);
}

/* Resolves the case of a name that is not visible at AT but is declared somewhere in the file:
 * in its own definition (recursion), later in the file (use before definition, with a note), or
 * earlier by a definition that was rejected and already reported (silent).  CALL: the name is
 * called.  Returns false when NAME is declared nowhere, for the caller's "unknown" message. */
bool sema_declared_elsewhere(Sema *s, const char *name, SrcRange at, bool call) {
  Decl *later = sema_tab_get(&s->all, name);
  if (!later) return false;
  later->uses++; /* reported here: not also "unused" */
  if (later->checking) {
    if (call)
      diag_error(s->d, at, "fn `%s` calls itself; fns are inlined and cannot be recursive", name);
    else
      diag_error(s->d, at, "`%s` is used in its own definition (%s cannot be recursive)", name,
                 sema_a_kind(later->kind));
  } else if (later->index > s->cur_index) {
    if (call)
      diag_error(s->d, at, "%s `%s` is used before its definition",
                 ast_decl_kind_name(later->kind), name);
    else
      diag_error(s->d, at, "`%s` is used before its definition", name);
    diag_note(s->d, later->name_rng, "`%s` is defined here", name);
  }
  return true;
}
