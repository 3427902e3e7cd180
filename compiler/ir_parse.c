/* ir_parse.c — reads the text form that ir_print writes, so graphs round-trip and tests can feed
 * hand-written IR to any later stage (`rein emit --grad x.ir`).
 *
 * The format is line-based; `#` starts a comment.  In order:
 *
 *     objective NAME ["description"]
 *     param NAME = NUMBER                     (any number of params)
 *     input LEVEL NAME                        (declared extra inputs)
 *     %I = OP ARGS : LEVEL TYPE               (nodes, numbered densely from %0)
 *     loss %I
 *     metric NAME %I
 *     grad logp|entropy %I
 *
 * where ARGS is, by op class:
 *     const NUMBER|true|false     input NAME     uinput NAME     param NAME     uniform
 *     OP %a[, %b[, %c]]                               element-wise
 *     OP[LEVEL[, ddof=1]] [%x] [from LEVEL] [if %f]   reductions, rank, argmax, argmin
 *     OP[seq] %x[, %gamma] [from token]              the scans cumsum, revcumsum
 *
 * Every node is checked as it is read (the verifier's rules, and that the written level and type
 * are the ones the op gives); errors are FILE:LINE:COL with a caret, like .rein diagnostics.
 */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ir.h"
#include "rein/common.h"

typedef struct {
  Diag *d;
  const SrcFile *f;
  const char *p, *line_end;  /* cursor within the current line */
  int line;
  const char *line_start;
  IrGraph *g;
} Rd;

static SrcRange at(Rd *r, const char *s, const char *e) {
  int c0 = (int)(s - r->line_start) + 1, c1 = (int)(e - r->line_start) + 1;
  if (c1 <= c0) c1 = c0 + 1;
  return diag_range(r->line, c0, r->line, c1);
}

static void skip_ws(Rd *r) {
  while (r->p < r->line_end && (*r->p == ' ' || *r->p == '\t' || *r->p == '\r')) r->p++;
  if (r->p < r->line_end && *r->p == '#') r->p = r->line_end;
}

static bool at_end(Rd *r) {
  skip_ws(r);
  return r->p >= r->line_end;
}

static bool err(Rd *r, const char *s, const char *e, const char *msg) {
  diag_error(r->d, at(r, s, e), "%s", msg);
  return false;
}

/* A word: identifier characters.  Returns its length (0 if none); *S is its start. */
static size_t word(Rd *r, const char **s) {
  skip_ws(r);
  *s = r->p;
  while (r->p < r->line_end && (isalnum((unsigned char)*r->p) || *r->p == '_')) r->p++;
  return (size_t)(r->p - *s);
}

static bool expect_word(Rd *r, const char *w, const char *what) {
  const char *s;
  size_t n = word(r, &s);
  if (n == strlen(w) && !strncmp(s, w, n)) return true;
  char msg[128];
  snprintf(msg, sizeof msg, "expected %s", what);
  return err(r, s, s + (n ? n : 1), msg);
}

static bool punct(Rd *r, char c) {
  skip_ws(r);
  if (r->p < r->line_end && *r->p == c) {
    r->p++;
    return true;
  }
  return false;
}

static bool expect_punct(Rd *r, char c) {
  if (punct(r, c)) return true;
  char msg[32];
  snprintf(msg, sizeof msg, "expected `%c`", c);
  return err(r, r->p, r->p + 1, msg);
}

static bool level(Rd *r, Level *lv) {
  const char *s;
  size_t n = word(r, &s);
  for (int i = 0; i < LV_COUNT; i++)
    if (n == strlen(bi_level_names[i]) && !strncmp(s, bi_level_names[i], n)) {
      *lv = (Level)i;
      return true;
    }
  return err(r, s, s + (n ? n : 1), "expected a level (token, seq, group or batch)");
}

static bool number(Rd *r, double *v) {
  skip_ws(r);
  const char *s = r->p;
  char buf[64];
  size_t n = 0;
  while (s + n < r->line_end && n < sizeof buf - 1 && !isspace((unsigned char)s[n]) && s[n] != ',' &&
         s[n] != ']' && s[n] != ':')
    n++;
  memcpy(buf, s, n);
  buf[n] = 0;
  char *end;
  errno = 0;
  *v = strtod(buf, &end);
  if (n == 0 || *end != 0 || (errno == ERANGE && !isinf(*v) && fabs(*v) > 1))
    return err(r, s, s + (n ? n : 1), "expected a number");
  r->p = s + n;
  return true;
}

/* %I referring to an existing node (BEFORE is the first index not yet defined). */
static bool ref(Rd *r, int before, int *out) {
  skip_ws(r);
  const char *s = r->p;
  if (!punct(r, '%')) return err(r, s, s + 1, "expected a node reference `%N`");
  const char *ds = r->p;
  long v = 0;
  while (r->p < r->line_end && isdigit((unsigned char)*r->p) && v < 100000000) v = v * 10 + (*r->p++ - '0');
  if (r->p == ds) return err(r, s, r->p + 1, "expected a node number after `%`");
  if (v >= before) return err(r, s, r->p, "refers to a node that is not defined before this line");
  *out = (int)v;
  return true;
}

static bool name_copy(Rd *r, char *buf, size_t cap, const char **s) {
  size_t n = word(r, s);
  if (n == 0 || n >= cap) return err(r, *s, *s + (n ? n : 1), "expected a name");
  memcpy(buf, *s, n);
  buf[n] = 0;
  return true;
}

static int find_op(const char *s, size_t n, bool bracket) {
  for (int i = 0; i < IR_NOPS; i++) {
    bool red = ir_ops[i].cls == 'r' || ir_ops[i].cls == 's';
    if (strlen(ir_ops[i].name) == n && !strncmp(ir_ops[i].name, s, n) && red == bracket) return i;
  }
  return -1;
}

/* %I = OP ARGS : LEVEL TYPE */
static bool node_line(Rd *r) {
  IrGraph *g = r->g;
  int self;
  const char *ls = r->p;
  skip_ws(r);
  const char *s0 = r->p;
  if (!ref(r, 1 << 30, &self)) return false;
  if (self != g->nn) {
    char msg[64];
    snprintf(msg, sizeof msg, "expected node %%%d here (nodes are numbered in order)", g->nn);
    return err(r, s0, r->p, msg);
  }
  if (!expect_punct(r, '=')) return false;
  const char *os;
  size_t on = word(r, &os);
  bool bracket = r->p < r->line_end && *r->p == '[';
  int op = find_op(os, on, bracket);
  if (op < 0) return err(r, os, os + (on ? on : 1), bracket ? "unknown reduction" : "unknown op");
  IrNode n = {.op = (IrOp)op, .a = {-1, -1, -1}, .type = TY_FLOAT};
  char cls = ir_ops[op].cls;
  char nm[256];
  const char *ns;
  if (cls == 'l') {
    switch (n.op) {
    case IR_CONST: {
      skip_ws(r);
      const char *s = r->p;
      size_t k = word(r, &s);
      if (k == 4 && !strncmp(s, "true", 4)) n.num = 1, n.type = TY_BOOL;
      else if (k == 5 && !strncmp(s, "false", 5)) n.num = 0, n.type = TY_BOOL;
      else {
        r->p = s;
        if (!number(r, &n.num)) return false;
      }
      n.level = LV_BATCH;
      break;
    }
    case IR_INPUT:
      if (!name_copy(r, nm, sizeof nm, &ns)) return false;
      n.idx = bi_find_input(nm);
      if (n.idx < 0) return err(r, ns, r->p, "not a built-in input");
      n.level = bi_inputs[n.idx].level;
      n.type = bi_inputs[n.idx].type;
      break;
    case IR_UINPUT:
    case IR_PARAM: {
      if (!name_copy(r, nm, sizeof nm, &ns)) return false;
      n.idx = -1;
      int cnt = n.op == IR_PARAM ? g->nparams : g->nuinputs;
      for (int i = 0; i < cnt; i++)
        if (!strcmp(n.op == IR_PARAM ? g->params[i].name : g->uinputs[i].name, nm)) n.idx = i;
      if (n.idx < 0)
        return err(r, ns, r->p, n.op == IR_PARAM ? "no param of this name was declared"
                                                 : "no input of this name was declared");
      n.level = n.op == IR_PARAM ? LV_BATCH : g->uinputs[n.idx].level;
      break;
    }
    case IR_UNIFORM: n.level = LV_SEQ; break;
    REIN_ELEM_OPS(OPS_CASE) /* not leaves */
    REIN_RED_OPS(OPS_CASE)
    case IR_NOPS: break;
    }
  } else if (cls == 'e') {
    for (int k = 0; k < ir_ops[op].nargs; k++) {
      if (k && !expect_punct(r, ',')) return false;
      if (!ref(r, g->nn, &n.a[k])) return false;
    }
    Level lv = LV_BATCH;
    for (int k = 0; k < ir_ops[op].nargs; k++)
      if (g->n[n.a[k]].level < lv) lv = g->n[n.a[k]].level;
    n.level = lv;
    /* ir_elem computes the type: build the node, read it, and take it back off */
    int j = ir_elem(g, n.op, n.a[0], n.a[1], n.a[2], n.rng);
    n.type = g->n[j].type;
    g->nn--;
  } else {
    if (!expect_punct(r, '[') || !level(r, &n.rlevel)) return false;
    if (punct(r, ',')) {
      if (!expect_word(r, "ddof", "`ddof`") || !expect_punct(r, '=')) return false;
      double dd;
      const char *s = r->p;
      if (!number(r, &dd)) return false;
      if (dd != 0 && dd != 1) return err(r, s, r->p, "ddof must be 0 or 1");
      n.ddof = (int)dd;
    }
    if (!expect_punct(r, ']')) return false;
    skip_ws(r);
    bool have_from = false;
    if (r->p < r->line_end && *r->p == '%' && !ref(r, g->nn, &n.a[0])) return false;
    if (OPS_A1_OPERAND(n.op) && n.a[0] >= 0 && punct(r, ',') && !ref(r, g->nn, &n.a[1])) return false;
    skip_ws(r);
    const char *save = r->p;
    const char *ws;
    size_t wn = word(r, &ws);
    if (wn == 4 && !strncmp(ws, "from", 4)) {
      if (!level(r, &n.elev)) return false;
      have_from = true;
      save = r->p;
      wn = word(r, &ws);
    }
    if (wn == 2 && !strncmp(ws, "if", 2)) {
      if (!ref(r, g->nn, &n.a[1])) return false;
    } else {
      r->p = save;
    }
    if (!have_from) {
      if (n.a[0] < 0) return err(r, os, os + on, "this reduction needs a value or `from LEVEL`");
      n.elev = g->n[n.a[0]].level;
    }
    if (cls == 's') {
      n.level = n.elev;
      n.type = OPS_IS_MASK(n.op) ? TY_BOOL : TY_FLOAT;
    } else {
      n.level = n.rlevel;
    }
  }
  const char *cs = r->p;
  if (!expect_punct(r, ':')) return false;
  Level lv;
  const char *lvs = r->p;
  if (!level(r, &lv)) return false;
  const char *ts;
  size_t tn = word(r, &ts);
  Type ty = tn == 5 && !strncmp(ts, "float", 5) ? TY_FLOAT : tn == 4 && !strncmp(ts, "bool", 4) ? TY_BOOL : TY_ERROR;
  if (ty == TY_ERROR) return err(r, ts, ts + (tn ? tn : 1), "expected a type (float or bool)");
  if (!at_end(r)) return err(r, r->p, r->line_end, "unexpected text at the end of the line");
  n.rng = at(r, ls, r->line_end);
  int i = ir_push(g, &n);
  const char *bad = ir_check_node(g, i);
  if (bad) return err(r, s0, r->line_end, bad);
  if (lv != n.level || ty != n.type) {
    char msg[160];
    snprintf(msg, sizeof msg, "this node is %s %s, not %s %s", bi_level_names[n.level],
             bi_type_names[n.type], bi_level_names[lv], bi_type_names[ty]);
    (void)cs;
    return err(r, lvs, r->line_end, msg);
  }
  return true;
}

static bool output_line(Rd *r, const char *kw, size_t kn, const char *ks) {
  IrGraph *g = r->g;
  char nm[256];
  const char *ns;
  int node;
  if (kn == 4 && !strncmp(ks, "loss", 4)) {
    if (g->loss >= 0) return err(r, ks, ks + kn, "a second loss");
    if (!ref(r, g->nn, &node)) return false;
    if (g->n[node].level != LV_BATCH || g->n[node].type != TY_FLOAT)
      return err(r, ks, r->p, "the loss must be a batch-level float");
    g->loss = node;
  } else if (kn == 6 && (!strncmp(ks, "metric", 6) || !strncmp(ks, "update", 6))) {
    bool upd = ks[0] == 'u';
    if (!name_copy(r, nm, sizeof nm, &ns)) return false;
    for (int i = 0; i < g->nmetrics; i++)
      if (!strcmp(g->metrics[i].name, nm))
        return err(r, ns, ns + strlen(nm), upd ? "a second update of this state" : "a second metric of this name");
    int st = -1;
    for (int i = 0; upd && i < g->nparams; i++)
      if (!strcmp(g->params[i].name, nm) && g->params[i].kind == REIN_PARAM_STATE) st = i;
    if (upd && st < 0) return err(r, ns, ns + strlen(nm), "no `state` of this name");
    if (!ref(r, g->nn, &node)) return false;
    if (g->n[node].level != LV_BATCH || (upd && g->n[node].type != TY_FLOAT))
      return err(r, ks, r->p, upd ? "an update must be a batch-level float" : "a metric must be batch-level");
    ir_add_metric(g, nm, node, st);
  } else {
    if (!name_copy(r, nm, sizeof nm, &ns)) return false;
    int k = !strcmp(nm, "logp") ? IR_GRAD_LOGP : !strcmp(nm, "entropy") ? IR_GRAD_ENTROPY : -1;
    if (k < 0) return err(r, ns, r->p, "expected `logp` or `entropy`");
    if (g->grad[k] >= 0) return err(r, ns, r->p, "this gradient is given twice");
    if (!ref(r, g->nn, &node)) return false;
    if (g->n[node].type != TY_FLOAT) return err(r, ks, r->p, "a gradient must be a float");
    g->grad[k] = node;
  }
  (void)kw;
  if (!at_end(r)) return err(r, r->p, r->line_end, "unexpected text at the end of the line");
  return true;
}

static bool declared(const IrGraph *g, const char *nm) {
  for (int i = 0; i < g->nparams; i++)
    if (!strcmp(g->params[i].name, nm)) return true;
  for (int i = 0; i < g->nuinputs; i++)
    if (!strcmp(g->uinputs[i].name, nm)) return true;
  return false;
}

static bool header_line(Rd *r, const char *ks, size_t kn) {
  IrGraph *g = r->g;
  char nm[256];
  const char *ns;
  if (kn == 5 && (!strncmp(ks, "param", 5) || !strncmp(ks, "state", 5))) {
    double v;
    if (!name_copy(r, nm, sizeof nm, &ns)) return false;
    if (declared(g, nm)) return err(r, ns, ns + strlen(nm), "a second param or input of this name");
    if (!expect_punct(r, '=') || !number(r, &v)) return false;
    ir_add_param(g, nm, v, ks[0] == 's' ? REIN_PARAM_STATE : REIN_PARAM_PARAM);
  } else if (kn == 7 && !strncmp(ks, "trainer", 7)) {
    if (!name_copy(r, nm, sizeof nm, &ns)) return false;
    if (declared(g, nm)) return err(r, ns, ns + strlen(nm), "a second param or input of this name");
    bool known = false;
    for (int k = 0; k < REIN_NUM_TRAINER_CONSTS; k++) known |= !strcmp(rein_trainer_const_name(k), nm);
    if (!known) return err(r, ns, ns + strlen(nm), "not a trainer constant (max_new, group_size, step)");
    ir_add_param(g, nm, NAN, REIN_PARAM_TRAINER);
  } else {
    Level lv;
    const char *ls = r->p;
    if (!level(r, &lv)) return false;
    if (lv > LV_SEQ) return err(r, ls, r->p, "an input is token or seq level");
    if (!name_copy(r, nm, sizeof nm, &ns)) return false;
    if (declared(g, nm)) return err(r, ns, ns + strlen(nm), "a second param or input of this name");
    ir_add_uinput(g, nm, lv);
  }
  if (!at_end(r)) return err(r, r->p, r->line_end, "unexpected text at the end of the line");
  return true;
}

/* objective NAME ["description"] */
static bool objective_line(Rd *r) {
  char nm[256];
  const char *ns;
  if (!name_copy(r, nm, sizeof nm, &ns)) return false;
  char *desc = NULL;
  skip_ws(r);
  if (r->p < r->line_end && *r->p == '"') {
    const char *s = ++r->p;
    desc = rc_malloc((size_t)(r->line_end - s) + 1);
    size_t k = 0;
    while (r->p < r->line_end && *r->p != '"') {
      if (*r->p == '\\' && r->p + 1 < r->line_end) r->p++;
      desc[k++] = *r->p++;
    }
    desc[k] = 0;
    if (r->p >= r->line_end) {
      free(desc);
      return err(r, s - 1, r->line_end, "unterminated description string");
    }
    r->p++;
  }
  r->g = ir_new(nm, desc);
  free(desc);
  if (!at_end(r)) return err(r, r->p, r->line_end, "unexpected text at the end of the line");
  return true;
}

IrGraph *ir_parse(Diag *d, const SrcFile *f) {
  Rd r = {d, f, NULL, NULL, 0, NULL, NULL};
  d->file = f;
  enum { HEAD, NODES, OUTS } phase = HEAD;
  bool ok = true;
  for (int ln = 0; ln < f->nlines && ok; ln++) {
    r.line = ln + 1;
    r.line_start = r.p = f->text + f->line_start[ln];
    r.line_end = ln + 1 < f->nlines ? f->text + f->line_start[ln + 1] : f->text + f->len;
    while (r.line_end > r.line_start && (r.line_end[-1] == '\n' || r.line_end[-1] == '\r')) r.line_end--;
    if (at_end(&r)) continue;
    if (!r.g) {
      ok = expect_word(&r, "objective", "`objective NAME` on the first line") && objective_line(&r);
      continue;
    }
    if (*r.p == '%') {
      if (phase == OUTS) ok = err(&r, r.p, r.line_end, "nodes must come before the outputs");
      else ok = node_line(&r);
      phase = NODES;
      continue;
    }
    const char *ks;
    size_t kn = word(&r, &ks);
    bool hd = (kn == 5 && !strncmp(ks, "param", 5)) || (kn == 5 && !strncmp(ks, "input", 5)) ||
              (kn == 5 && !strncmp(ks, "state", 5)) || (kn == 7 && !strncmp(ks, "trainer", 7));
    bool out = (kn == 4 && !strncmp(ks, "loss", 4)) || (kn == 6 && !strncmp(ks, "metric", 6)) ||
               (kn == 6 && !strncmp(ks, "update", 6)) ||
               (kn == 4 && !strncmp(ks, "grad", 4));
    if (hd) {
      ok = phase == HEAD ? header_line(&r, ks, kn)
                         : err(&r, ks, ks + kn, "params, states, trainer constants and inputs must come before the nodes");
    } else if (out) {
      phase = OUTS;
      ok = output_line(&r, ks, kn, ks);
    } else {
      ok = err(&r, ks, ks + (kn ? kn : 1),
               "expected `param`, `state`, `trainer`, `input`, a node `%N = ...`, `loss`, `metric`, `update` or `grad`");
    }
  }
  if (ok && !r.g) {
    diag_error(d, diag_range(1, 1, 1, 2), "empty IR file: expected `objective NAME`");
    ok = false;
  }
  if (ok && r.g->loss < 0) {
    diag_error(d, diag_range(f->nlines ? f->nlines : 1, 1, f->nlines ? f->nlines : 1, 2),
               "the IR has no `loss %%N` line");
    ok = false;
  }
  if (ok && !ir_verify(r.g, "reading the IR", d->out)) ok = false;
  if (!ok) {
    ir_free(r.g);
    return NULL;
  }
  return r.g;
}
