/* builtins.c — the instances of the X-macro tables of builtins.h and ops.h, name lookups over them
 * and the scalar semantics of the element-wise ops (the `value` column of ops.h). */
#include "builtins.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#define X_INPUT(ID, name, lv, is_bool, diff) [IN_##ID] = {name, (Level)(lv), (is_bool) ? TY_BOOL : TY_FLOAT, diff},
const BiInput bi_inputs[IN_COUNT] = {REIN_INPUT_LIST(X_INPUT)};
#undef X_INPUT

#define X_ELEM(ID, name, fn, nargs, diff, ...) [FN_##ID] = {fn, nargs, diff, IR_##ID},
#define X_FUNC(ID, name, arity, diff, ir) [FN_##ID] = {name, arity, diff, ir},
const BiFunc bi_funcs[FN_COUNT] = {REIN_ELEM_OPS(X_ELEM) REIN_FUNCS_EXTRA(X_FUNC)};
#undef X_ELEM
#undef X_FUNC

#define X_RED(ID, name, fn, cls, lo, hi, ddof, ...) [RED_##ID] = {fn, lo, hi, ddof, IR_##ID},
#define X_RED_EXTRA(ID, name, lo, hi) [RED_##ID] = {name, lo, hi, false, IR_NOPS},
const BiRed bi_reds[RED_COUNT_] = {REIN_RED_OPS(X_RED) REIN_REDS_EXTRA(X_RED_EXTRA)};
#undef X_RED
#undef X_RED_EXTRA

#define X_OP(id, sp, cls, ir) [id] = {sp, cls, ir},
const BiOp bi_ops[OP_COUNT] = {REIN_OPS(X_OP)};
#undef X_OP

const char *const bi_level_names[LV_COUNT] = {"token", "seq", "group", "batch"};
const char *const bi_type_names[3] = {"float", "bool", "error"};

int bi_find_input(const char *name) {
  for (int i = 0; i < IN_COUNT; i++)
    if (!strcmp(bi_inputs[i].name, name)) return i;
  return -1;
}

int bi_find_func(const char *name) {
  for (int i = 0; i < FN_COUNT; i++)
    if (bi_funcs[i].name && !strcmp(bi_funcs[i].name, name)) return i;
  return -1;
}

int bi_find_red(const char *name) {
  for (int i = 0; i < RED_COUNT_; i++)
    if (bi_reds[i].name && !strcmp(bi_reds[i].name, name)) return i;
  return -1;
}

/* The names that are not NULL among NAMES[0..N) joined by ", " with " and " before the last,
 * e.g. "sum, mean and rank", into BUF (CAP bytes, truncated to fit). */
static const char *join_names(const char *const *names, int n, char *buf, size_t cap) {
  int k = 0, last = -1;
  for (int i = 0; i < n; i++)
    if (names[i]) last = i;
  size_t len = 0;
  buf[0] = 0;
  for (int i = 0; i < n && len < cap; i++) {
    if (!names[i]) continue;
    const char *sep = k++ == 0 ? "" : i == last ? " and " : ", ";
    len += (size_t)snprintf(buf + len, cap - len, "%s%s", sep, names[i]);
  }
  return buf;
}

const char *bi_red_list(char *buf, size_t cap) {
  const char *names[RED_COUNT_];
  for (int i = 0; i < RED_COUNT_; i++) names[i] = bi_reds[i].name;
  return join_names(names, RED_COUNT_, buf, cap);
}

const char *bi_func_list(char *buf, size_t cap) {
  const char *names[FN_COUNT];
  for (int i = 0; i < FN_COUNT; i++) names[i] = bi_funcs[i].name;
  return join_names(names, FN_COUNT, buf, cap);
}

bool bi_relevel(const char *src, const char *name, Level l, char *buf, size_t n) {
  size_t k = strlen(name);
  if (strncmp(src, name, k)) return false;
  const char *open = src + k;
  while (*open == ' ' || *open == '\t') open++;
  const char *close = *open == '[' ? strchr(open, ']') : NULL;
  if (!close) return false;
  int w = snprintf(buf, n, "%.*s%s%s", (int)(open + 1 - src), src, bi_level_names[l], close);
  return w >= 0 && (size_t)w < n;
}

/* ---- scalar semantics (float64), shared by constant folding and the reference interpreter ---- */

double bi_eval_elem(IrOp op, double x, double y, double z) {
  switch (op) {
#define X_VALUE(ID, name, fn, nargs, diff, ty, value, code) \
  case IR_##ID: return value;
  REIN_ELEM_OPS(X_VALUE)
#undef X_VALUE
  REIN_LEAF_OPS(OPS_CASE)
  REIN_RED_OPS(OPS_CASE)
  case IR_NOPS: break;
  }
  return NAN;
}

double bi_apply_op(OpId op, double a, double b) { return bi_eval_elem(bi_ops[op].ir, a, b, 0); }

double bi_apply_func(FuncId f, const double *x) {
  if (f == FN_CLAMP) {
    double m = x[1] > x[0] ? x[1] : x[0];
    return x[2] < m ? x[2] : m;
  }
  if (f == FN_KEEPGRAD) return x[0];
  return bi_eval_elem(bi_funcs[f].ir, x[0], x[1], x[2]);
}

bool bi_fits_f32(double x) { return fabs(x) < 0x1.ffffffp+127; }
