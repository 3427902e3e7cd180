/* ops.h — the op tables: one X-macro row per op of the graph IR, by family (leaf, element-wise,
 * reduction).  A row carries every fact about its op that is data: the IR's printed name, the
 * language's spelling, the arity, whether it has a derivative, the result type, the float64 value
 * (the one scalar semantics of constant folding and the interpreter), how the code generator
 * computes it (a routine of the kernel library rk_lib.c or an instruction sequence of cg_value.c) and,
 * for a reduction, the kernel library's state.  Everything else is generated from the rows: the
 * IR enum (ir.h), the language's function and reduction enums and lookups (builtins.h), the
 * interpreter's and the folder's scalar semantics (builtins.c), the printer and parser (ir.c,
 * ir_parse.c), sema's lists of names in messages, the code generator's dispatch (cg_value.c).
 *
 * What is code stays code, in switches over IrOp with no `default:` label, so that -Wswitch lists
 * every place a new op must be handled: the derivative (ad.c) and, for a reduction, its value in
 * the interpreter (interp.c).  A reduction's state in the kernel library (rk_lib.c) is a switch
 * over the int that compiled code passes, which the compiler cannot check.  Adding an op:
 * docs/compiler.md, "Adding an op".
 *
 * This header is macros only (no includes, no declarations), so any file may include it, the
 * freestanding rk_lib.c included; a column names things (RK_*, CG_*) only where a file expands it.
 */
#ifndef REIN_OPS_H
#define REIN_OPS_H

/* X(ID, name) — leaves: no arguments.  IR_ID. */
#define REIN_LEAF_OPS(X) \
  X(CONST, "const")      \
  X(INPUT, "input")      \
  X(UINPUT, "uinput")    \
  X(PARAM, "param")      \
  X(UNIFORM, "uniform")

/* X(ID, name, fn, nargs, diff, ty, value, code) — element-wise ops.  IR_ID, and FN_ID in the
 * language's function enum (builtins.h).
 *   name   the IR's printed name
 *   fn     the language's built-in function of that name, or 0 when the op is not one (it may
 *          still be an operator: REIN_OPS in builtins.h names its IR op)
 *   nargs  arguments, all used
 *   diff   the op passes a derivative to (some of) its float arguments: it has a rule in ad.c
 *   ty     argument and result types: 'f' floats to float, 'c' floats to bool (comparison),
 *          'l' bools to bool (logic), 's' the type of its argument (sg), 'w' where(bool, a, b):
 *          bool if a and b are, else float, 'd' dmul(float, any) to float
 *   value  its float64 value, an expression of the arguments x, y, z (bools are 0/1)
 *   code   how compiled code computes it: CALL("f") calls routine f (rk_lib.c, or an LLVM
 *          intrinsic) on the arguments; any other word W is the instruction sequence CG_W of cg_value.c
 */
#define REIN_ELEM_OPS(X)                                                                         \
  X(NEG, "neg", 0, 1, true, 'f', -x, FNEG)                                                       \
  X(NOT, "not", 0, 1, false, 'l', x == 0, NOT)                                                   \
  X(EXP, "exp", "exp", 1, true, 'f', exp(x), CALL("rk_exp"))                                     \
  X(LOG, "log", "log", 1, true, 'f', log(x), CALL("rk_log"))                                     \
  X(LOG1P, "log1p", "log1p", 1, true, 'f', log1p(x), CALL("rk_log1p"))                           \
  X(EXPM1, "expm1", "expm1", 1, true, 'f', expm1(x), CALL("rk_expm1"))                           \
  X(SQRT, "sqrt", "sqrt", 1, true, 'f', sqrt(x), CALL("llvm.sqrt.f64"))                          \
  X(ABS, "abs", "abs", 1, true, 'f', fabs(x), CALL("llvm.fabs.f64"))                             \
  X(SIGN, "sign", "sign", 1, false, 'f', x > 0 ? 1.0 : x < 0 ? -1.0 : 0.0, SIGN)                 \
  X(FLOOR, "floor", "floor", 1, false, 'f', floor(x), CALL("llvm.floor.f64"))                    \
  X(CEIL, "ceil", "ceil", 1, false, 'f', ceil(x), CALL("llvm.ceil.f64"))                         \
  X(SIGMOID, "sigmoid", "sigmoid", 1, true, 'f',                                                 \
    x >= 0 ? 1.0 / (1.0 + exp(-x)) : exp(x) / (1.0 + exp(x)), CALL("rk_sigmoid"))                \
  X(SOFTPLUS, "softplus", "softplus", 1, true, 'f',                                              \
    x > 0 ? x + log1p(exp(-x)) : log1p(exp(x)), CALL("rk_softplus"))                             \
  X(TANH, "tanh", "tanh", 1, true, 'f', tanh(x), CALL("rk_tanh"))                                \
  X(SG, "sg", "sg", 1, false, 's', x, ARG0)                                                      \
  X(ADD, "add", 0, 2, true, 'f', x + y, FADD)                                                    \
  X(SUB, "sub", 0, 2, true, 'f', x - y, FSUB)                                                    \
  X(MUL, "mul", 0, 2, true, 'f', x * y, FMUL)                                                    \
  X(DIV, "div", 0, 2, true, 'f', x / y, FDIV)                                                    \
  X(POW, "pow", "pow", 2, true, 'f', pow(x, y), CALL("rk_pow"))                                  \
  X(MIN, "min", "min", 2, true, 'f', y < x ? y : x, MIN) /* ties: the first */                   \
  X(MAX, "max", "max", 2, true, 'f', y > x ? y : x, MAX)                                         \
  X(LT, "lt", 0, 2, false, 'c', x < y, LT)                                                       \
  X(LE, "le", 0, 2, false, 'c', x <= y, LE)                                                      \
  X(GT, "gt", 0, 2, false, 'c', x > y, GT)                                                       \
  X(GE, "ge", 0, 2, false, 'c', x >= y, GE)                                                      \
  X(EQ, "eq", 0, 2, false, 'c', x == y, EQ)                                                      \
  X(NE, "ne", 0, 2, false, 'c', x != y, NE)                                                      \
  X(AND, "and", 0, 2, false, 'l', x != 0 && y != 0, AND)                                         \
  X(OR, "or", 0, 2, false, 'l', x != 0 || y != 0, OR)                                            \
  X(DMUL, "dmul", 0, 2, false, 'd', x == 0 ? 0.0 : x * y, DMUL)                                  \
  X(WHERE, "where", "where", 3, true, 'w', x != 0 ? y : z, WHERE)

/* X(ID, name, fn, cls, min args, max args, ddof, diff, state) — reductions op[L](x [, filter])
 * (cls 'r': one value per element of L) and sibling ops (cls 's': one value per element of x's
 * level).  IR_ID, and RED_ID in the language's reduction enum (builtins.h).  The scans cumsum and
 * revcumsum are sibling ops over the tokens of a sequence whose second argument (slot a[1]) is
 * the discount gamma, a float at seq level or coarser, not a filter.
 *   name   the IR's printed name
 *   fn     the language's reduction of that name, or 0 (argmax, argmin: autodiff's own;
 *          ranklt: topk's and topfrac's, ir_lower.c)
 *   min/max args  in the language: count takes a bool condition (or nothing), rank no filter
 *   ddof   takes ddof=
 *   diff   has a derivative (a rule in ad.c)
 *   state  the kernel library's reduction (rk_lib.h: its state, rk_acc, rk_merge, rk_finish),
 *          RK_NONE for the sibling ops (rk_rank, rk_rank_lt, rk_argext)
 * ranklt[L](x, k) is rank[L](x) < k as a bool, k (slot a[1]) a float at L or coarser: a select,
 * not a sort, finds the elements (rk_rank_lt).
 * The language's lists of reductions in messages follow this order. */
#define REIN_RED_OPS(X)                                                         \
  X(SUM, "sum", "sum", 'r', 1, 2, false, true, RK_SUM)                          \
  X(MEAN, "mean", "mean", 'r', 1, 2, false, true, RK_MEAN)                      \
  X(RMAX, "max", "max", 'r', 1, 2, false, true, RK_MAX)                         \
  X(RMIN, "min", "min", 'r', 1, 2, false, true, RK_MIN)                         \
  X(STD, "std", "std", 'r', 1, 2, true, true, RK_STD)                           \
  X(VAR, "var", "var", 'r', 1, 2, true, true, RK_VAR)                           \
  X(LSE, "logsumexp", "logsumexp", 'r', 1, 2, false, true, RK_LSE)              \
  X(COUNT, "count", "count", 'r', 0, 1, false, false, RK_COUNT)                 \
  X(RANK, "rank", "rank", 's', 1, 1, false, false, RK_NONE)                     \
  X(RANKLT, "ranklt", 0, 's', 2, 2, false, false, RK_NONE)                      \
  X(ARGMAX, "argmax", 0, 's', 1, 2, false, false, RK_NONE)                      \
  X(ARGMIN, "argmin", 0, 's', 1, 2, false, false, RK_NONE)                     \
  X(CUMSUM, "cumsum", "cumsum", 's', 1, 2, false, true, RK_NONE)                \
  X(RCUMSUM, "revcumsum", "revcumsum", 's', 1, 2, false, true, RK_NONE)

/* `case IR_ID:` for every row of a table: REIN_ELEM_OPS(OPS_CASE) in a switch lists the
 * element-wise ops without a default label. */
#define OPS_CASE(ID, ...) case IR_##ID:

/* The scans (cumsum, revcumsum): sibling ops whose a[1] is a discount, not a filter. */
#define OPS_IS_SCAN(op) ((op) == IR_CUMSUM || (op) == IR_RCUMSUM)
/* Sibling ops whose a[1] is an operand read once per element of the target level (a scan's
 * discount, ranklt's bound), not a filter. */
#define OPS_A1_OPERAND(op) (OPS_IS_SCAN(op) || (op) == IR_RANKLT)
/* Sibling ops whose value is a bool mask (argmax, argmin: the chosen element; ranklt). */
#define OPS_IS_MASK(op) ((op) == IR_ARGMAX || (op) == IR_ARGMIN || (op) == IR_RANKLT)

#endif
