/* ir.h — the graph IR: a static DAG of level-typed nodes, the form every middle-end pass, the
 * plan, the interpreter and (later) the back ends work on.
 *
 * A graph is an array of nodes in topological order: a node's arguments always have smaller
 * indices, so "for i in 0..n" is a valid evaluation order and "for i in n..0" a valid reverse
 * sweep (autodiff).  Node i prints as %i.  Every node has a level (token < seq < group < batch)
 * and a type (float or bool); an argument of a coarser level than its consumer is broadcast.
 *
 * The op tables of ops.h list every op with its printed name, arity and properties; the enum, the
 * name table, the property table, the printer, the text parser and the verifier are all generated
 * from or driven by them.  Adding an op: docs/compiler.md, "Adding an op".
 *
 * Reductions (class 'r') have a target level `rlevel` and an element level `elev` (the level of
 * the elements summed over; the value x may be that level or coarser, the filter likewise).  Slot
 * a[0] is the value (absent, -1, for count) and a[1] the optional filter.  Sibling ops (class 's':
 * rank, argmax, argmin, cumsum, revcumsum) are like reductions but give one value per element at
 * `elev`; for the scans cumsum/revcumsum ([seq] over tokens) a[1] is the discount, not a filter.
 *
 * The graph owns all its memory (nodes, names); ir_free releases it.
 */
#ifndef REIN_IR_H
#define REIN_IR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "ast.h"
#include "builtins.h"
#include "diag.h"

/* The ops, their enum IrOp (builtins.h) and every fact about them that is data come from the op
 * tables of ops.h; ir_ops gives those facts by op:
 *   cls    'l' leaf, 'e' element-wise, 'r' reduction, 's' sibling op (value per element)
 *   nargs  slots used (element-wise ops); reductions and sibling ops use a[0]=x, a[1]=filter
 *   diff   the op passes a derivative to (some of) its float arguments
 *   ty     element-wise ops: argument and result types (the `ty` column of REIN_ELEM_OPS) */
typedef struct {
  const char *name;
  char cls;
  int nargs;
  bool diff;
  char ty;
} IrOpInfo;
extern const IrOpInfo ir_ops[IR_NOPS];

/* dmul(g, d) is the adjoint product: g*d, but exactly 0 when g is 0 (even if d is Inf or NaN), so
 * a gradient that `where` cut off stays zero through the rest of the chain. */

typedef struct {
  IrOp op;
  Level level;     /* level of the value */
  Type type;       /* TY_FLOAT or TY_BOOL */
  int a[3];        /* argument node indices, -1 when absent */
  Level rlevel;    /* reductions / sibling ops: the level reduced to ([L]) */
  Level elev;      /* reductions / sibling ops: the level of the elements */
  int ddof;        /* std/var */
  int idx;         /* input: InputId; uinput/param: index into the graph's tables */
  double num;      /* const: the value (bools 0/1) */
  SrcRange rng;    /* where it came from (the .rein or .ir source), for diagnostics */
} IrNode;

typedef struct {
  char *name;
  double value;    /* default (a trainer constant: NaN) */
  int kind;        /* REIN_PARAM_* of rein/objective.h: param, state, trainer constant */
} IrParam;

typedef struct {
  char *name;
  Level level;
} IrUInput;

typedef struct {
  char *name;
  int node;
  int state;       /* -1: a metric; else the state param whose next value this is (`update`) */
} IrMetric;

enum { IR_GRAD_LOGP, IR_GRAD_ENTROPY, IR_NGRADS };
extern const char *const ir_grad_names[IR_NGRADS]; /* "logp", "entropy" */

/* Zeroed allocation of N elements of SZ bytes (at least one byte); when memory runs out, the
 * project's out-of-memory policy (rein/common.h): "rein: out of memory (N bytes)" and exit
 * status 3.  Shared by the middle end's files. */
void *ir_xcalloc(size_t n, size_t sz);

typedef struct {
  char *objective;   /* name */
  char *desc;        /* description, may be NULL */
  IrNode *n;
  int nn, cap;
  IrParam *params;
  int nparams;
  IrUInput *uinputs;
  int nuinputs;
  IrMetric *metrics;
  int nmetrics;
  int loss;             /* node of the loss, -1 before lowering */
  int grad[IR_NGRADS];  /* d loss / d logp and d entropy; -1 when absent (zero) */
} IrGraph;

/* ---- construction ---- */
IrGraph *ir_new(const char *objective, const char *desc);
void ir_free(IrGraph *g);
int ir_add_param(IrGraph *g, const char *name, double value, int kind);
int ir_add_uinput(IrGraph *g, const char *name, Level level);
/* STATE: -1 for a metric, else the param whose update this output is (named as the param). */
void ir_add_metric(IrGraph *g, const char *name, int node, int state);

/* Appends node N (its level and type must be set) and returns its index.  No checks: passes
 * build well-formed nodes and the verifier checks the result. */
int ir_push(IrGraph *g, const IrNode *n);

/* Convenience constructors used by lowering and autodiff: they compute level and type from the
 * arguments (the finest argument level; bool for comparisons and logic).  RNG is recorded. */
int ir_const(IrGraph *g, double v, Type t, SrcRange rng);
int ir_elem(IrGraph *g, IrOp op, int x, int y, int z, SrcRange rng);
/* A reduction or sibling op: value X (-1 for count), filter F (-1 for none), to RLEVEL over
 * elements of level ELEV. */
int ir_reduce(IrGraph *g, IrOp op, int x, int f, Level rlevel, Level elev, int ddof, SrcRange rng);

/* Appends a copy of node N with its arguments renamed through REMAP (old index → new), the level
 * and type of an element-wise op recomputed from the new arguments.  Returns the new index. */
int ir_copy(IrGraph *g, const IrNode *n, const int *remap);

/* The value of element-wise op OP on scalar arguments (float64; bools are 0/1): bi_eval_elem, the
 * one scalar semantics shared by constant folding and the interpreter. */
double ir_eval_elem(IrOp op, double x, double y, double z);

/* Number of argument slots node N uses and whether slot i may be -1. */
int ir_nslots(const IrNode *n);

/* ---- passes over a whole graph ---- */
/* Copies the nodes of G in order through REMAP: for each node, MAP(ctx, g, new, old, i) returns
 * the index in NEW that node i of G becomes (after remapping its arguments via remap[]).  Outputs
 * are remapped at the end.  Used by fold, CSE and DCE; returns the new graph and frees G. */
typedef int (*IrMapFn)(void *ctx, IrGraph *ng, const IrGraph *g, int i, const int *remap);
IrGraph *ir_rebuild(IrGraph *g, IrMapFn map, void *ctx);

/* Extends MARK (size g->nn; the roots set by the caller) to every node a marked node depends on. */
void ir_mark_ancestors(const IrGraph *g, bool *mark);
/* Marks (in DEP, size g->nn) every node whose value depends on logp or entropy. */
void ir_depends(const IrGraph *g, bool *dep);
/* Marks every node with a non-zero derivative path to logp or entropy (not through sg,
 * comparisons, logic, sign, count, rank, argmax/argmin, dmul's second operand). */
void ir_differentiable(const IrGraph *g, bool *diff);
/* Marks (in PATH, size g->nn) the loss and every node the loss reaches through arguments that
 * pass a derivative (the mirror of ir_differentiable: not through sg, comparisons, ...).  A node
 * that is differentiable but not on this path enters the loss only through sg. */
void ir_loss_path(const IrGraph *g, bool *path);

/* ---- text form ---- */
/* Prints G deterministically: header (objective, params, inputs), one node per line, outputs. */
void ir_print(FILE *out, const IrGraph *g);
/* Reads the text form from F; diagnostics (FILE:LINE:COL with caret) go to D.  NULL on error.
 * Node source ranges are set to their line in F. */
IrGraph *ir_parse(Diag *d, const SrcFile *f);
/* Prints a number in the shortest form that reads back to the same double. */
void ir_print_num(FILE *out, double v);
/* Prints S in double quotes with `"` and `\` escaped (also valid JSON for printable text). */
void ir_print_quoted(FILE *out, const char *s);

/* Checks every structural rule (topological order, arity, levels, types, outputs).  Prints
 * "internal error: ... after PASS" diagnostics to OUT and returns false on the first violation. */
bool ir_verify(const IrGraph *g, const char *after, FILE *out);
/* The verifier's rule for node I alone: NULL if it holds, else what is wrong (a static string). */
const char *ir_check_node(const IrGraph *g, int i);

/* ---- the passes, one per file ---- */
IrGraph *ir_lower(const Program *prog);  /* ir_lower.c: checked AST → IR */
/* ir_lower.c: PROG with checked expression LOSS (a term of its loss) as the loss, no metrics */
IrGraph *ir_lower_loss(const Program *prog, const Expr *loss);
IrGraph *ir_fold(IrGraph *g);   /* ir_fold.c: constant folding and trivial identities */
IrGraph *ir_weigh(IrGraph *g);  /* ir_weigh.c: token reductions of sequence values over sequences */
IrGraph *ir_cse(IrGraph *g);    /* ir_cse.c: common-subexpression elimination */
IrGraph *ir_dce(IrGraph *g);    /* ir_dce.c: removes nodes no output needs */

#endif
