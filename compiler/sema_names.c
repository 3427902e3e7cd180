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

/* The Levenshtein distance of A and B (99 when either is longer than 64 bytes), for the
 * suggestion of sema_unknown_name. */
static int edit_distance(const char *a, const char *b) {
  size_t la = strlen(a), lb = strlen(b);
  if (la > 64 || lb > 64) return 99;
  int row[65];
  for (size_t j = 0; j <= lb; j++) row[j] = (int)j;
  for (size_t i = 1; i <= la; i++) {
    int prev = row[0];
    row[0] = (int)i;
    for (size_t j = 1; j <= lb; j++) {
      int cur = row[j];
      int sub = prev + (a[i - 1] != b[j - 1]);
      int del = row[j] + 1, ins = row[j - 1] + 1;
      row[j] = sub < del ? (sub < ins ? sub : ins) : (del < ins ? del : ins);
      prev = cur;
    }
  }
  return row[lb];
}

/* Reports an unknown name with a suggestion when a visible name is within edit distance 2. */
void sema_unknown_name(Sema *s, const char *name, SrcRange at) {
  const char *best = NULL;
  int bestd = strlen(name) > 3 ? 3 : 2;
  for (size_t i = 0; i < s->globals.cap; i++) {
    const char *k = s->globals.slots[i].key;
    if (!k) continue;
    int dist = edit_distance(name, k);
    if (dist < bestd || (dist == bestd && best && strcmp(k, best) < 0)) { bestd = dist; best = k; }
  }
  for (int i = 0; i < IN_COUNT; i++) {
    int dist = edit_distance(name, bi_inputs[i].name);
    if (dist < bestd) { bestd = dist; best = bi_inputs[i].name; }
  }
  if (best) diag_error(s->d, at, "unknown name `%s`; did you mean `%s`?", name, best);
  else diag_error(s->d, at, "unknown name `%s`", name);
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
