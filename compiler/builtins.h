/* builtins.h — the tables of the language: levels, types, built-in inputs, functions, reductions
 * and operators.
 *
 * Each table is an X-macro, so the enum, the printed name and the properties of an entry are
 * written once (docs/language.md, "Built-in inputs" and "Expressions").  The functions and reductions are rows of the op tables of ops.h,
 * which also give the IR ops: adding a built-in function means adding one row there (and, if its
 * typing is not the default, a rule in sema_expr.c).
 */
#ifndef REIN_BUILTINS_H
#define REIN_BUILTINS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ops.h"
#include "rein/objective.h"

/* The four levels, finest first: a smaller value is finer. */
typedef enum { LV_TOKEN, LV_SEQ, LV_GROUP, LV_BATCH, LV_COUNT } Level;

typedef enum { TY_FLOAT, TY_BOOL, TY_ERROR } Type;

/* The built-in inputs (docs/language.md, "Built-in inputs") are the ABI's list, REIN_INPUT_LIST of rein/objective.h, so the
 * language and the ABI cannot disagree: IN_X == REIN_IN_X. */

/* The built-in functions are the element-wise ops of ops.h that have a language name (FN_ID for
 * every element-wise op, so FN_ID and IR_ID come from one row; the others have no name and are not
 * callable) and these three, which are not IR ops: clamp(x, lo, hi) is lowered to min(max(x, lo),
 * hi), uniform() is the IR leaf of that name, keepgrad(x) is x itself (the identity; it tells the
 * gradient-through-weight warning of sema_lint.c that the derivative through x is meant).
 * X(ID, name, arity, diff, IR op) */
#define REIN_FUNCS_EXTRA(X)                  \
  X(CLAMP, "clamp", 3, true, IR_NOPS)        \
  X(UNIFORM, "uniform", 0, false, IR_UNIFORM) \
  X(KEEPGRAD, "keepgrad", 1, true, IR_NOPS)

/* The reductions are the rows of REIN_RED_OPS in ops.h with a language name (RED_ID for every
 * row).  count takes a bool condition (or nothing); rank, cumsum and revcumsum return x's level,
 * not L.  These are reductions of the language that are not IR ops: lowering (ir_lower.c) expands
 * them into rank, count and filtered sums.  X(ID, name, min args, max args)
 *   median[L](x)          quantile 0.5, one value per element of L
 *   quantile[L](x, q)     q a constant in [0, 1], numpy's 'linear' interpolation
 *   topk[L](x, k)         bool at x's level: x is among the k largest of its siblings
 *   topfrac[L](x, p)      bool at x's level: among the ceil(p*n) largest of the n siblings */
#define REIN_REDS_EXTRA(X)        \
  X(MEDIAN, "median", 1, 1)       \
  X(QUANTILE, "quantile", 2, 2)   \
  X(TOPK, "topk", 2, 2)           \
  X(TOPFRAC, "topfrac", 2, 2)

/* X(ID, spelling, class, IR op) — operators; class: 'u' unary, 'a' arithmetic, 'c' comparison,
 * 'l' logical.  The IR op (ops.h) is the operator's meaning. */
#define REIN_OPS(X)               \
  X(OP_NEG, "-", 'u', IR_NEG)     \
  X(OP_NOT, "not", 'u', IR_NOT)   \
  X(OP_ADD, "+", 'a', IR_ADD)     \
  X(OP_SUB, "-", 'a', IR_SUB)     \
  X(OP_MUL, "*", 'a', IR_MUL)     \
  X(OP_DIV, "/", 'a', IR_DIV)     \
  X(OP_POW, "^", 'a', IR_POW)     \
  X(OP_LT, "<", 'c', IR_LT)       \
  X(OP_LE, "<=", 'c', IR_LE)      \
  X(OP_GT, ">", 'c', IR_GT)       \
  X(OP_GE, ">=", 'c', IR_GE)      \
  X(OP_EQ, "==", 'c', IR_EQ)      \
  X(OP_NE, "!=", 'c', IR_NE)      \
  X(OP_AND, "and", 'l', IR_AND)   \
  X(OP_OR, "or", 'l', IR_OR)

#define REIN_X_ENUM(id, ...) id,
#define REIN_X_INPUT_ENUM(ID, ...) IN_##ID,
typedef enum { REIN_INPUT_LIST(REIN_X_INPUT_ENUM) IN_COUNT } InputId;
#undef REIN_X_INPUT_ENUM
_Static_assert((int)IN_COUNT == REIN_NUM_INPUTS && (int)LV_BATCH == REIN_BATCH, "the ABI's inputs and levels");
typedef enum { REIN_OPS(REIN_X_ENUM) OP_COUNT } OpId;
#undef REIN_X_ENUM

/* The graph IR's ops (ops.h): the leaves, the element-wise ops, the reductions and sibling ops. */
#define REIN_X_ENUM(ID, ...) IR_##ID,
typedef enum { REIN_LEAF_OPS(REIN_X_ENUM) REIN_ELEM_OPS(REIN_X_ENUM) REIN_RED_OPS(REIN_X_ENUM) IR_NOPS } IrOp;
#undef REIN_X_ENUM
#define REIN_X_ENUM(ID, ...) FN_##ID,
typedef enum { REIN_ELEM_OPS(REIN_X_ENUM) REIN_FUNCS_EXTRA(REIN_X_ENUM) FN_COUNT } FuncId;
#undef REIN_X_ENUM
#define REIN_X_ENUM(ID, ...) RED_##ID,
typedef enum { REIN_RED_OPS(REIN_X_ENUM) REIN_REDS_EXTRA(REIN_X_ENUM) RED_COUNT_ } RedId;
#undef REIN_X_ENUM

/* name: NULL for the element-wise ops that are not functions and the IR-only reductions (they are
 * not callable); ir: the IR op it lowers to (IR_NOPS for clamp and REIN_REDS_EXTRA, which
 * lowering expands). */
typedef struct { const char *name; Level level; Type type; bool diff; } BiInput;
typedef struct { const char *name; int arity; bool diff; IrOp ir; } BiFunc;
typedef struct { const char *name; int min_args, max_args; bool ddof; IrOp ir; } BiRed;
typedef struct { const char *spelling; char cls; IrOp ir; } BiOp;

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
/* The language's reductions as a list for messages, "sum, mean, ... and rank", in BUF (CAP
 * bytes, truncated to fit); returns BUF. */
const char *bi_red_list(char *buf, size_t cap);
/* The language's built-in functions, the same way: "exp, log, ... and keepgrad" (every row of
 * bi_funcs with a name, so a new function appears in the messages by itself). */
const char *bi_func_list(char *buf, size_t cap);

/* SRC, the source text of a reduction call `name[L](...)`, with the level in its brackets replaced
 * by L, in BUF (size N).  False (BUF unspecified) when SRC does not start with NAME and a bracket,
 * or the result does not fit. */
bool bi_relevel(const char *src, const char *name, Level l, char *buf, size_t n);

/* Scalar semantics in float64 (bools are 0/1), from the `value` column of ops.h: the one
 * definition shared by sema's folding, the IR folder and the interpreter.  bi_eval_elem gives NaN
 * for an op that is not element-wise.  bi_apply_func takes the arguments in X; it is not defined
 * for FN_UNIFORM.  min/max return the first argument on ties, clamp(x, lo, hi) is
 * min(max(x, lo), hi), keepgrad(x) is x. */
double bi_eval_elem(IrOp op, double x, double y, double z);
double bi_apply_op(OpId op, double a, double b);
double bi_apply_func(FuncId f, const double *x);

/* True when X rounds to a finite float32 (|x| below FLT_MAX plus half an ulp at the top). */
bool bi_fits_f32(double x);


#endif
