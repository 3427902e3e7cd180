/* builtins.c — the instances of the X-macro tables of builtins.h and name lookups over them. */
#include "builtins.h"

#include <math.h>
#include <string.h>

#define X_INPUT(ID, name, lv, is_bool, diff) [IN_##ID] = {name, (Level)(lv), (is_bool) ? TY_BOOL : TY_FLOAT, diff},
const BiInput bi_inputs[IN_COUNT] = {REIN_INPUT_LIST(X_INPUT)};
#undef X_INPUT

#define X_FUNC(id, name, arity) [id] = {name, arity},
const BiFunc bi_funcs[FN_COUNT] = {REIN_FUNCS(X_FUNC)};
#undef X_FUNC

#define X_RED(id, name, lo, hi, ddof) [id] = {name, lo, hi, ddof},
const BiRed bi_reds[RED_COUNT_] = {REIN_REDUCTIONS(X_RED)};
#undef X_RED

#define X_OP(id, sp, cls) [id] = {sp, cls},
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
    if (!strcmp(bi_funcs[i].name, name)) return i;
  return -1;
}

int bi_find_red(const char *name) {
  for (int i = 0; i < RED_COUNT_; i++)
    if (!strcmp(bi_reds[i].name, name)) return i;
  return -1;
}

/* ---- scalar semantics (float64), shared by constant folding and the reference interpreter ---- */

double bi_apply_op(OpId op, double a, double b) {
  switch (op) {
  case OP_NEG: return -a;
  case OP_NOT: return a == 0;
  case OP_ADD: return a + b;
  case OP_SUB: return a - b;
  case OP_MUL: return a * b;
  case OP_DIV: return a / b;
  case OP_POW: return pow(a, b);
  case OP_LT: return a < b;
  case OP_LE: return a <= b;
  case OP_GT: return a > b;
  case OP_GE: return a >= b;
  case OP_EQ: return a == b;
  case OP_NE: return a != b;
  case OP_AND: return a != 0 && b != 0;
  case OP_OR: return a != 0 || b != 0;
  case OP_COUNT: break;
  }
  return NAN;
}

double bi_apply_func(FuncId f, const double *x) {
  switch (f) {
  case FN_EXP: return exp(x[0]);
  case FN_LOG: return log(x[0]);
  case FN_LOG1P: return log1p(x[0]);
  case FN_EXPM1: return expm1(x[0]);
  case FN_SQRT: return sqrt(x[0]);
  case FN_ABS: return fabs(x[0]);
  case FN_SIGN: return x[0] > 0 ? 1.0 : x[0] < 0 ? -1.0 : 0.0;
  case FN_SIGMOID: return x[0] >= 0 ? 1.0 / (1.0 + exp(-x[0])) : exp(x[0]) / (1.0 + exp(x[0]));
  case FN_SOFTPLUS: return x[0] > 0 ? x[0] + log1p(exp(-x[0])) : log1p(exp(x[0]));
  case FN_TANH: return tanh(x[0]);
  case FN_MIN: return x[1] < x[0] ? x[1] : x[0];
  case FN_MAX: return x[1] > x[0] ? x[1] : x[0];
  case FN_CLAMP: {
    double m = x[1] > x[0] ? x[1] : x[0];
    return x[2] < m ? x[2] : m;
  }
  case FN_POW: return pow(x[0], x[1]);
  case FN_WHERE: return x[0] != 0 ? x[1] : x[2];
  case FN_SG: return x[0];
  case FN_UNIFORM:
  case FN_COUNT: break;
  }
  return NAN;
}

bool bi_fits_f32(double x) { return fabs(x) < 0x1.ffffffp+127; }
