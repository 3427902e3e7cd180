/* builtins.h — the tables of the language: levels, types, built-in inputs, functions, reductions
 * and operators.
 *
 * Each table is an X-macro, so the enum, the printed name and the properties of an entry are
 * written once (spec §2 and §4).  Adding a built-in means adding one line here and its typing
 * rule in sema.c.
 */
#ifndef REIN_BUILTINS_H
#define REIN_BUILTINS_H

#include <stdbool.h>
#include <stdint.h>

#include "rein/objective.h"

/* The four levels, finest first: a smaller value is finer. */
typedef enum { LV_TOKEN, LV_SEQ, LV_GROUP, LV_BATCH, LV_COUNT } Level;

typedef enum { TY_FLOAT, TY_BOOL, TY_ERROR } Type;

/* The built-in inputs (spec §2) are the ABI's list, REIN_INPUT_LIST of rein/objective.h, so the
 * language and the ABI cannot disagree: IN_X == REIN_IN_X. */

/* X(ID, name, arity) — element-wise functions; where/sg/uniform have their own typing rules. */
#define REIN_FUNCS(X)          \
  X(FN_EXP, "exp", 1)          \
  X(FN_LOG, "log", 1)          \
  X(FN_LOG1P, "log1p", 1)      \
  X(FN_EXPM1, "expm1", 1)      \
  X(FN_SQRT, "sqrt", 1)        \
  X(FN_ABS, "abs", 1)          \
  X(FN_SIGN, "sign", 1)        \
  X(FN_SIGMOID, "sigmoid", 1)  \
  X(FN_SOFTPLUS, "softplus", 1) \
  X(FN_TANH, "tanh", 1)        \
  X(FN_MIN, "min", 2)          \
  X(FN_MAX, "max", 2)          \
  X(FN_CLAMP, "clamp", 3)      \
  X(FN_POW, "pow", 2)          \
  X(FN_WHERE, "where", 3)      \
  X(FN_SG, "sg", 1)            \
  X(FN_UNIFORM, "uniform", 0)

/* X(ID, name, min args, max args, takes ddof=) — reductions op[L](x [, filter]).
 * count takes a bool condition (or nothing); rank returns x's level, not L. */
#define REIN_REDUCTIONS(X)                  \
  X(RED_SUM, "sum", 1, 2, false)            \
  X(RED_MEAN, "mean", 1, 2, false)          \
  X(RED_MAX, "max", 1, 2, false)            \
  X(RED_MIN, "min", 1, 2, false)            \
  X(RED_STD, "std", 1, 2, true)             \
  X(RED_VAR, "var", 1, 2, true)             \
  X(RED_LOGSUMEXP, "logsumexp", 1, 2, false) \
  X(RED_COUNT, "count", 0, 1, false)        \
  X(RED_RANK, "rank", 1, 1, false)

/* X(ID, spelling, class) — class: 'u' unary, 'a' arithmetic, 'c' comparison, 'l' logical. */
#define REIN_OPS(X)       \
  X(OP_NEG, "-", 'u')     \
  X(OP_NOT, "not", 'u')   \
  X(OP_ADD, "+", 'a')     \
  X(OP_SUB, "-", 'a')     \
  X(OP_MUL, "*", 'a')     \
  X(OP_DIV, "/", 'a')     \
  X(OP_POW, "^", 'a')     \
  X(OP_LT, "<", 'c')      \
  X(OP_LE, "<=", 'c')     \
  X(OP_GT, ">", 'c')      \
  X(OP_GE, ">=", 'c')     \
  X(OP_EQ, "==", 'c')     \
  X(OP_NE, "!=", 'c')     \
  X(OP_AND, "and", 'l')   \
  X(OP_OR, "or", 'l')

#define REIN_X_ENUM(id, ...) id,
#define REIN_X_INPUT_ENUM(ID, ...) IN_##ID,
typedef enum { REIN_INPUT_LIST(REIN_X_INPUT_ENUM) IN_COUNT } InputId;
#undef REIN_X_INPUT_ENUM
_Static_assert((int)IN_COUNT == REIN_NUM_INPUTS && (int)LV_BATCH == REIN_BATCH, "the ABI's inputs and levels");
typedef enum { REIN_FUNCS(REIN_X_ENUM) FN_COUNT } FuncId;
typedef enum { REIN_REDUCTIONS(REIN_X_ENUM) RED_COUNT_ } RedId;
typedef enum { REIN_OPS(REIN_X_ENUM) OP_COUNT } OpId;
#undef REIN_X_ENUM

typedef struct { const char *name; Level level; Type type; bool diff; } BiInput;
typedef struct { const char *name; int arity; } BiFunc;
typedef struct { const char *name; int min_args, max_args; bool ddof; } BiRed;
typedef struct { const char *spelling; char cls; } BiOp;

extern const BiInput bi_inputs[IN_COUNT];
extern const BiFunc bi_funcs[FN_COUNT];
extern const BiRed bi_reds[RED_COUNT_];
extern const BiOp bi_ops[OP_COUNT];
extern const char *const bi_level_names[LV_COUNT];
extern const char *const bi_type_names[3];

/* Lookups by name; -1 when NAME is not one. */
int bi_find_input(const char *name);
int bi_find_func(const char *name);
int bi_find_red(const char *name);

/* Scalar semantics in float64 (bools are 0/1).  bi_apply_func takes the arguments in X; it is
 * not defined for FN_UNIFORM.  min/max return the first argument on ties, clamp(x, lo, hi) is
 * min(max(x, lo), hi). */
double bi_apply_op(OpId op, double a, double b);
double bi_apply_func(FuncId f, const double *x);

/* True when X rounds to a finite float32 (|x| below FLT_MAX plus half an ulp at the top). */
bool bi_fits_f32(double x);


#endif
