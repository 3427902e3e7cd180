/* plan.c — staging, the micro-batch decomposability check and pass fusion (see plan.h).
 *
 * Passes are numbered by a longest-path rule over the nodes of one stage, in topological order:
 *   pass(n) = max(1, need(a, n) for each argument a computed in the same stage)
 *   need(a, n) = pass(a) + 1  if a is ready in its pass only at a level coarser than n uses it
 *                             (n's level, or n's element level if n is itself a reduction): a
 *                             reduction to R is ready at R, and so is anything computed from it
 *                             in the same pass -- but an early reduction (below) is ready at
 *                             token level,
 *              = pass(a) + 1  if n is a sibling op (it needs all of a's siblings), but not an
 *                             early scan,
 *              = pass(a)      otherwise.
 * Early: a reduction to seq over tokens, or a scan, whose same-pass arguments are all pure
 * (element-wise values whose same-pass arguments are pure in turn: nothing of the pass that needs
 * a sweep) can be computed before the pass's token loop, by a loop of its own over each
 * sequence's tokens (cg.c, early_sweep); a reduction is listed as early (PlPass.early) only when
 * the pass reads it at token level.
 * This is the fewest sweeps: a node goes into the first pass in which all its inputs are
 * complete.  The scans (cumsum, revcumsum) are sibling ops at [seq]: they read only the tokens of
 * their own sequence, so they run in whichever stage their argument does, micro-batch included
 * (the plan's print says so); rank, argmax and argmin at [group] are as safe, micro-batches
 * holding whole groups; at [batch] over a logp-dependent value they wait for the final stage.
 * GRPO and the REC family come out as a two-pass prologue (group mean/std, then the advantage)
 * and a single token pass that computes the loss partial and the gradient; GMPO and GSPO-sg, whose
 * per-sequence mean is early, as well.
 *
 * Rematerialization: a token-level element-wise value is computed again in each pass (and in the
 * micro stage) that reads it rather than stored as a float64 array per token and read back: an
 * element-wise op costs less than 16 bytes of memory traffic a token (make_passes, pl_plan).  So
 * is a prologue scan that the micro stage reads (pl_plan): an add a token.  A metric of prologue
 * token values goes to the micro passes, unless a prologue sweep computes its values anyway
 * (prologue_swept).
 */
#include "plan.h"
#include "rein/common.h"

#include <stdlib.h>
#include <string.h>

bool pl_is_data(const IrNode *n) {
  return ir_ops[n->op].cls == 'l' || (n->op == IR_COUNT && n->a[1] < 0);
}

/* Can node I be computed again in a later pass or stage (rematerialized) rather than read from
 * its array: a token-level element-wise value. */
static bool pl_remat(const IrGraph *g, int i) {
  return g->n[i].level == LV_TOKEN && ir_ops[g->n[i].op].cls == 'e';
}

/* Marks in SIB the arguments of node I when it is a sibling op (rank, argmax, a scan): it gathers
 * them from their arrays, outside any pass's loop, so they are not rematerialized. */
static void mark_sibling_args(const IrGraph *g, int i, bool *sib) {
  if (ir_ops[g->n[i].op].cls != 's') return;
  for (int k = 0; k < ir_nslots(&g->n[i]); k++)
    if (g->n[i].a[k] >= 0) sib[g->n[i].a[k]] = true;
}

static Level use_level(const IrNode *n) {
  return ir_ops[n->op].cls == 'e' ? n->level : n->elev;
}

/* Is early-able reduction R (make_passes) read at token level in its own pass (by a token value
 * or a reduction over tokens), directly or through same-pass element-wise values?  Only then does
 * it get an early loop; otherwise it is swept with the pass's token loop as any reduction. */
static bool early_read(const IrGraph *g, const bool *member, const int *pass, int r) {
  bool *from = ir_xcalloc((size_t)g->nn, sizeof(bool)); /* same-pass values computed from R */
  bool read = false;
  from[r] = true;
  for (int i = r + 1; i < g->nn && !read; i++) {
    const IrNode *n = &g->n[i];
    if (!member[i] || pass[i] != pass[r]) continue;
    bool hit = false;
    for (int k = 0; k < ir_nslots(n); k++) hit = hit || (n->a[k] >= 0 && from[n->a[k]]);
    from[i] = hit && ir_ops[n->op].cls == 'e';
    read = hit && use_level(n) == LV_TOKEN;
  }
  free(from);
  return read;
}

/* Groups the nodes with member[i] into passes of stage S, appended to P.
 *
 * Each node gets a pass and a "ready level": within its own pass, its value can be read by uses
 * at that level or coarser.  A reduction is ready at its target level (once the loop that
 * accumulates it closes); an element-wise node is ready where its latest same-pass argument is
 * (a seq value computed from a same-pass seq reduction exists only after that sequence's tokens
 * were swept); everything from an earlier pass, and rank/argmax/argmin (whose inputs are all
 * complete), are ready everywhere (LV_TOKEN). */
static void make_passes(Plan *P, PlStage S, const bool *member) {
  const IrGraph *g = P->g;
  int *pass = ir_xcalloc((size_t)g->nn, sizeof(int));
  Level *ready = ir_xcalloc((size_t)g->nn, sizeof(Level));
  /* pure[i]: an element-wise value computed from its pass's pure values only (and from what
   * earlier passes, stages and the data hold), none of the pass's reductions or sibling ops: the
   * code has it before a sequence's early loop, or computes it in that loop */
  bool *pure = ir_xcalloc((size_t)g->nn, sizeof(bool)), *early = ir_xcalloc((size_t)g->nn, sizeof(bool));
  int maxp = 0;
  for (int i = 0; i < g->nn; i++) {
    if (!member[i]) continue;
    const IrNode *n = &g->n[i];
    char cls = ir_ops[n->op].cls;
    int p = 1;
    for (int k = 0; k < ir_nslots(n); k++) {
      int a = n->a[k];
      if (a < 0 || !member[a]) continue;
      int need = pass[a];
      if (ready[a] > use_level(n)) need++;
      if (need > p) p = need;
    }
    bool chain = true; /* every argument of pass P is pure */
    for (int k = 0; k < ir_nslots(n); k++) {
      int a = n->a[k];
      if (a >= 0 && member[a] && pass[a] == p && !pure[a]) chain = false;
    }
    /* a sibling op needs its argument's siblings complete: the next pass -- but a scan of a value
     * computed from nothing else of its pass is early: the pass's early loop computes the
     * argument, and the scan runs on it before the pass's token loop */
    bool scan_early = OPS_IS_SCAN(n->op) && chain;
    for (int k = 0; cls == 's' && !scan_early && k < ir_nslots(n); k++) {
      int a = n->a[k];
      if (a >= 0 && member[a] && pass[a] + 1 > p) p = pass[a] + 1;
    }
    Level r = LV_TOKEN;
    for (int k = 0; k < ir_nslots(n); k++) {
      int a = n->a[k];
      if (a >= 0 && member[a] && pass[a] == p && ready[a] > r) r = ready[a];
    }
    pure[i] = chain && cls == 'e'; /* P is final for everything but a sibling op */
    early[i] = (chain && cls == 'r' && n->rlevel == LV_SEQ && n->elev == LV_TOKEN) || scan_early;
    if (cls == 'r') r = early[i] ? LV_TOKEN : n->rlevel;
    if (cls == 's') r = LV_TOKEN;
    pass[i] = p;
    ready[i] = r;
    if (p > maxp) maxp = p;
  }
  /* rematerialization across passes: a pass that reads a token-level element-wise value of an
   * earlier pass computes it again, with the token-level element-wise values it comes from, so
   * no float64 array per token is written in one sweep and read in the next (16 bytes a token
   * each; gmpo's clip masks).  Its other arguments are complete before that earlier pass ends:
   * coarser values, arrays of siblings, inputs.  Not the argument of a sibling op of the pass
   * (rank, argmax, a scan): the sibling gathers it from its array, outside the pass's loop. */
  size_t nn = (size_t)g->nn;
  bool *in = ir_xcalloc(nn * (size_t)(maxp + 1), sizeof(bool)), *sib = ir_xcalloc(nn, sizeof(bool));
  for (int i = 0; i < g->nn; i++)
    if (member[i]) in[(size_t)pass[i] * nn + (size_t)i] = true;
  for (int p = 2; p <= maxp; p++) {
    memset(sib, 0, nn);
    for (int i = 0; i < g->nn; i++)
      if (member[i] && pass[i] == p) mark_sibling_args(g, i, sib);
    for (int i = g->nn - 1; i >= 0; i--) {
      if (!in[(size_t)p * nn + (size_t)i] || ir_ops[g->n[i].op].cls == 's') continue;
      const IrNode *n = &g->n[i];
      for (int k = 0; k < ir_nslots(n); k++) {
        int a = n->a[k];
        if (a >= 0 && member[a] && pass[a] < p && !sib[a] && pl_remat(g, a)) in[(size_t)p * nn + (size_t)a] = true;
      }
    }
  }
  free(sib);
  for (int p = 1; p <= maxp; p++) {
    PlPass ps = {S, p, LV_BATCH, ir_xcalloc((size_t)g->nn, sizeof(int)), 0, ir_xcalloc((size_t)g->nn, sizeof(int)), 0};
    for (int i = 0; i < g->nn; i++) {
      if (!in[(size_t)p * nn + (size_t)i]) continue;
      ps.nodes[ps.nnodes++] = i;
      if (use_level(&g->n[i]) < ps.loop) ps.loop = use_level(&g->n[i]);
      if (early[i] && (ir_ops[g->n[i].op].cls == 's' || early_read(g, member, pass, i))) ps.early[ps.nearly++] = i;
    }
    P->passes = rc_realloc(P->passes, sizeof *P->passes * (size_t)(P->npasses + 1));
    P->passes[P->npasses++] = ps;
  }
  free(in);
  free(pass);
  free(ready);
  free(pure);
  free(early);
}

bool pl_early(const PlPass *ps, int i) {
  for (int j = 0; j < ps->nearly; j++)
    if (ps->early[j] == i) return true;
  return false;
}

/* Which differentiable input node I's value depends on (logp if both), for messages. */
static const char *dep_name(const IrGraph *g, int i) {
  bool *seen = ir_xcalloc((size_t)g->nn, sizeof(bool));
  bool logp = false;
  seen[i] = true;
  ir_mark_ancestors(g, seen);
  for (int j = 0; j <= i; j++)
    if (seen[j] && g->n[j].op == IR_INPUT && g->n[j].idx == IN_LOGP) logp = true;
  free(seen);
  return logp ? "logp" : "entropy";
}

/* After the rejection of batch-level reduction or ranking C: when the same operation per group is
 * well-formed where the loss uses it (C's elements are finer than groups, and every use of C on
 * the way to the loss is per sequence or per token, or C is a ranking, which keeps its level),
 * a note that `[group]` can be split (micro-batches hold whole groups), with C's source rewritten.
 * A use at group level or coarser (`mean[batch](logp)^2` as the loss) would change level: no note. */
static void group_note(const Plan *P, int c, Diag *d) {
  const IrGraph *g = P->g;
  bool *cone = ir_xcalloc((size_t)g->nn, sizeof(bool));
  cone[g->loss] = true;
  ir_mark_ancestors(g, cone);
  /* A culprit made by autodiff (the argmax of max[batch]) stands for the loss's reduction that
   * it came from: the one with its source range. */
  for (int j = 0; j < g->nn && !cone[c]; j++) {
    const IrNode *m = &g->n[j];
    if (cone[j] && ir_ops[m->op].cls != 'e' && ir_ops[m->op].cls != 'l' && m->rlevel == LV_BATCH &&
        !memcmp(&m->rng, &g->n[c].rng, sizeof m->rng))
      c = j;
  }
  const IrNode *n = &g->n[c];
  bool safe = cone[c] && c != g->loss && n->elev < LV_GROUP;
  for (int j = c + 1; j < g->nn && safe && ir_ops[n->op].cls == 'r'; j++)
    for (int k = 0; k < ir_nslots(&g->n[j]); k++)
      if (cone[j] && g->n[j].a[k] == c && g->n[j].level >= LV_GROUP) safe = false;
  free(cone);
  if (!safe) return;
  char src[128], re[160];
  const char *name = ir_ops[n->op].name;
  if (!diag_source_text(d->file, n->rng, src, sizeof src) || !bi_relevel(src, name, LV_GROUP, re, sizeof re))
    snprintf(re, sizeof re, "%s[group](...)", name);
  diag_note(d, n->rng, "if a statistic per group is meant, `%s` can be split: micro-batches hold "
            "whole groups", re);
}

/* The gradient output OUT depends on a value only available after the last micro-batch: report
 * the first batch-level reduction of a logp/entropy-dependent value on which it depends. */
static void reject(const Plan *P, int out, const char *which, Diag *d) {
  const IrGraph *g = P->g;
  bool *cone = ir_xcalloc((size_t)g->nn, sizeof(bool));
  cone[out] = true;
  ir_mark_ancestors(g, cone);
  int culprit = -1;
  for (int j = 0; j < g->nn && culprit < 0; j++) {
    if (!cone[j] || P->avail[j] != PL_FINAL) continue;
    bool origin = true;
    for (int k = 0; k < ir_nslots(&g->n[j]); k++)
      if (g->n[j].a[k] >= 0 && P->avail[g->n[j].a[k]] == PL_FINAL) origin = false;
    if (origin) culprit = j;
  }
  free(cone);
  if (culprit < 0) culprit = out;
  const IrNode *c = &g->n[culprit];
  diag_error(d, c->rng, "this %s over the whole batch depends on `%s`, and the gradient with "
             "respect to `%s` depends on its value, so the batch cannot be split into "
             "micro-batches", c->op == IR_RANK || c->op == IR_RANKLT ? "ranking" : "reduction",
             dep_name(g, culprit), which);
  diag_note(d, c->rng, "a batch-level reduction of logp or entropy may enter the loss only "
            "linearly (sums and constant multiples of mean[batch](...) and sum[batch](...)) or "
            "through sg() only (then it is computed before the micro-batches); metrics may use it "
            "freely");
  group_note(P, culprit, d);
}

/* The nodes a prologue token sweep computes or reads whatever else the plan decides: the token
 * arguments of a reduction over tokens or a scan that a gradient needs (CONE) and that reads no
 * logp or entropy (DEP), and, through element-wise token values, their arguments in turn (reverse
 * topological order: a node's readers are decided before it).  Inputs included. */
static bool *prologue_swept(const IrGraph *g, const bool *dep, const bool *cone) {
  bool *sw = ir_xcalloc((size_t)g->nn, sizeof(bool));
  for (int i = g->nn - 1; i >= 0; i--) {
    const IrNode *n = &g->n[i];
    if (dep[i] || pl_is_data(n)) continue;
    char cls = ir_ops[n->op].cls;
    bool sweep = cone[i] && (cls == 'r' || OPS_IS_SCAN(n->op)) && n->elev == LV_TOKEN;
    if (!sweep && !(sw[i] && cls == 'e' && n->level == LV_TOKEN)) continue;
    for (int k = 0; k < ir_nslots(n); k++) {
      int a = n->a[k];
      if (a >= 0 && g->n[a].level == LV_TOKEN) sw[a] = true;
    }
  }
  return sw;
}

Plan *pl_plan(const IrGraph *g, Diag *d) {
  Plan *P = ir_xcalloc(1, sizeof *P);
  P->g = g;
  int nn = g->nn;
  P->stage = ir_xcalloc((size_t)nn, sizeof(PlStage));
  P->avail = ir_xcalloc((size_t)nn, sizeof(PlStage));
  P->partial = ir_xcalloc((size_t)nn, sizeof(bool));
  P->in_final = ir_xcalloc((size_t)nn, sizeof(bool));
  P->in_stat = ir_xcalloc((size_t)nn, sizeof(bool));
  bool *dep = ir_xcalloc((size_t)nn, sizeof(bool));
  ir_depends(g, dep);
  /* statistics: batch-level values of logp/entropy whose value a gradient needs but through
   * which the loss is not differentiated (it sees them through sg only) */
  bool *diff = ir_xcalloc((size_t)nn, sizeof(bool)), *path = ir_xcalloc((size_t)nn, sizeof(bool));
  bool *cone = ir_xcalloc((size_t)nn, sizeof(bool));
  ir_differentiable(g, diff);
  ir_loss_path(g, path);
  for (int k = 0; k < IR_NGRADS; k++)
    if (g->grad[k] >= 0) cone[g->grad[k]] = true;
  ir_mark_ancestors(g, cone);
  bool *swept = prologue_swept(g, dep, cone);
  for (int i = 0; i < nn; i++) {
    const IrNode *n = &g->n[i];
    if (pl_is_data(n)) {
      P->stage[i] = P->avail[i] = dep[i] ? PL_MICRO : PL_DATA;
      continue;
    }
    PlStage s = dep[i] ? PL_MICRO : PL_PRO;
    for (int k = 0; k < ir_nslots(n); k++)
      if (n->a[k] >= 0 && P->avail[n->a[k]] > s) s = P->avail[n->a[k]];
    char cls = ir_ops[n->op].cls;
    bool batch = (cls == 's' || cls == 'r') && n->rlevel == LV_BATCH;
    if (s == PL_MICRO && batch && cone[i] && !(diff[i] && path[i])) s = PL_STAT;
    /* a batch-level reduction over tokens that no gradient needs (a metric of prologue values,
     * such as ppo_mis's mis_frac) is accumulated by the micro passes, which sweep the tokens
     * anyway, rather than by a prologue sweep of its own -- unless the prologue sweeps the
     * values it reduces anyway (REINFORCE++'s kl_mean: the micro pass would read ref_logp for it
     * alone) */
    if (s == PL_PRO && cls == 'r' && n->rlevel == LV_BATCH && n->elev == LV_TOKEN && !cone[i]) {
      bool all = true;
      for (int k = 0; k < ir_nslots(n); k++) all = all && (n->a[k] < 0 || swept[n->a[k]]);
      if (!all) s = PL_MICRO;
    }
    if (s == PL_MICRO && cls == 's' && n->rlevel == LV_BATCH) s = PL_FINAL;
    P->stage[i] = P->avail[i] = s;
    if (s == PL_MICRO && cls == 'r' && n->rlevel == LV_BATCH) {
      P->partial[i] = true;
      P->avail[i] = PL_FINAL;
    }
  }
  free(dep);
  free(diff);
  free(path);
  free(cone);
  free(swept);

  for (int k = 0; k < IR_NGRADS; k++) {
    if (g->grad[k] >= 0 && P->avail[g->grad[k]] == PL_FINAL) {
      reject(P, g->grad[k], ir_grad_names[k], d);
      pl_free(P);
      return NULL;
    }
  }

  /* the final stage: final nodes plus the micro values they read below batch level */
  for (int i = nn - 1; i >= 0; i--) {
    if (P->stage[i] == PL_FINAL) P->in_final[i] = true;
    if (!P->in_final[i]) continue;
    const IrNode *n = &g->n[i];
    for (int k = 0; k < ir_nslots(n); k++) {
      int a = n->a[k];
      if (a >= 0 && P->stage[a] == PL_MICRO && !P->partial[a] && !pl_is_data(&g->n[a]))
        P->in_final[a] = true;
    }
  }
  /* the statistics stage: statistics plus the micro values they read (at any level) */
  for (int i = nn - 1; i >= 0; i--) {
    if (P->stage[i] == PL_STAT) P->in_stat[i] = P->stats = true;
    if (!P->in_stat[i]) continue;
    const IrNode *n = &g->n[i];
    for (int k = 0; k < ir_nslots(n); k++) {
      int a = n->a[k];
      if (a >= 0 && P->stage[a] == PL_MICRO && !pl_is_data(&g->n[a])) P->in_stat[a] = true;
    }
  }
  /* rematerialization: the token-level element-wise prologue values a micro pass reads, and
   * those they are computed from, are computed in the micro pass again (reverse topological
   * order: a node's consumers are marked before it).  So is a prologue scan, with its argument:
   * in the micro pass its argument is computed from data and earlier stages alone, so the scan
   * is early there (make_passes), and on the CPU a scan that no pass reads from its array runs
   * in a buffer that stays in the cache (cg.c, early_sweep): one dependent add a token instead of
   * a float64 array per token written by the prologue and read back (REINFORCE++'s returns) */
  P->in_micro = ir_xcalloc((size_t)nn, sizeof(bool));
  bool *sib = ir_xcalloc((size_t)nn, sizeof(bool)); /* read by a micro sibling op: stays in its array */
  for (int i = 0; i < nn; i++)
    if (P->stage[i] == PL_MICRO) mark_sibling_args(g, i, sib);
  for (int i = nn - 1; i >= 0; i--) {
    const IrNode *n = &g->n[i];
    bool scan = P->in_micro[i] && OPS_IS_SCAN(n->op); /* rematerialized itself: its arguments too */
    if ((P->stage[i] != PL_MICRO && !P->in_micro[i]) || (ir_ops[n->op].cls == 's' && !scan)) continue;
    for (int k = 0; k < ir_nslots(n); k++) {
      int a = n->a[k];
      if (a >= 0 && P->stage[a] == PL_PRO && !sib[a] && (pl_remat(g, a) || OPS_IS_SCAN(g->n[a].op)))
        P->in_micro[a] = true;
    }
  }
  free(sib);
  /* a rematerialized value that nothing outside the micro passes reads (no prologue value, no
   * statistic or final value, not a gradient the synthetic pass writes) is a micro value only:
   * no prologue pass computes it, and a prologue that swept the tokens for it alone is gone
   * (reverse topological order: every reader is decided before its arguments) */
  bool *needed = ir_xcalloc((size_t)nn, sizeof(bool)); /* read outside the micro passes */
  for (int k = 0; k < IR_NGRADS; k++)
    if (g->grad[k] >= 0) needed[g->grad[k]] = true;
  for (int i = nn - 1; i >= 0; i--) {
    const IrNode *n = &g->n[i];
    if (pl_is_data(n)) continue;
    if (P->in_micro[i] && !needed[i]) {
      P->in_micro[i] = false;
      P->stage[i] = P->avail[i] = PL_MICRO;
    }
    bool outside = P->stage[i] == PL_PRO || P->stage[i] == PL_STAT || P->stage[i] == PL_FINAL || P->in_stat[i] ||
                   P->in_final[i];
    for (int k = 0; outside && k < ir_nslots(n); k++)
      if (n->a[k] >= 0) needed[n->a[k]] = true;
  }
  free(needed);
  bool *member = ir_xcalloc((size_t)nn, sizeof(bool));
  for (PlStage s = PL_PRO; s <= PL_FINAL; s++) {
    for (int i = 0; i < nn; i++)
      member[i] = !pl_is_data(&g->n[i]) && (s == PL_FINAL   ? P->in_final[i]
                                            : s == PL_STAT  ? P->in_stat[i]
                                            : s == PL_MICRO ? P->stage[i] == s || P->in_micro[i]
                                                            : P->stage[i] == s);
    make_passes(P, s, member);
  }
  free(member);
  for (int i = 0; i < P->npasses; i++)
    if (P->passes[i].stage == PL_FINAL && P->passes[i].loop < LV_BATCH) P->final_sweep = true;
  return P;
}

void pl_free(Plan *p) {
  if (!p) return;
  for (int i = 0; i < p->npasses; i++) free(p->passes[i].nodes), free(p->passes[i].early);
  free(p->passes);
  free(p->stage);
  free(p->avail);
  free(p->partial);
  free(p->in_final);
  free(p->in_stat);
  free(p->in_micro);
  free(p);
}

static void print_outputs(FILE *out, const Plan *p, const PlPass *ps) {
  const IrGraph *g = p->g;
  for (int j = 0; j < ps->nnodes; j++) {
    int i = ps->nodes[j];
    if (OPS_IS_SCAN(g->n[i].op) && ps->stage == PL_MICRO)
      fprintf(out, "    scan %%%d = %s[seq] (within each sequence: micro-batch safe)\n", i,
              ir_ops[g->n[i].op].name);
    if (pl_early(ps, i))
      fprintf(out, "    early %%%d = %s[seq] (%s, before the pass's)\n", i, ir_ops[g->n[i].op].name,
              OPS_IS_SCAN(g->n[i].op) ? "of the values its sweep of each sequence's tokens computes"
                                      : "its own sweep of each sequence's tokens");
    if (p->partial[i] && ps->stage == PL_MICRO)
      fprintf(out, "    partial %%%d = %s[batch] (combined across micro-batches)\n", i,
              ir_ops[g->n[i].op].name);
    if (ps->stage == PL_STAT && p->stage[i] == PL_STAT)
      fprintf(out, "    statistic %%%d = %s[batch] (read by the micro-batch passes)\n", i, ir_ops[g->n[i].op].name);
    const char *when = p->partial[i] ? " (complete after the last micro-batch)" : "";
    if (i == g->loss) fprintf(out, "    loss = %%%d%s\n", i, when);
    for (int m = 0; m < g->nmetrics; m++)
      if (g->metrics[m].node == i)
        fprintf(out, "    %s %s = %%%d%s\n", g->metrics[m].state >= 0 ? "update" : "metric", g->metrics[m].name, i,
                when);
    for (int k = 0; k < IR_NGRADS; k++)
      if (g->grad[k] == i && ps->stage == PL_MICRO)
        fprintf(out, "    grad %s = %%%d%s%s%s\n", ir_grad_names[k], i,
                g->n[i].level > LV_TOKEN ? " (a " : "",
                g->n[i].level > LV_TOKEN ? bi_level_names[g->n[i].level] : "",
                g->n[i].level > LV_TOKEN ? " value, written to each of its tokens)" : "");
  }
}

void pl_print(FILE *out, const Plan *p) {
  const IrGraph *g = p->g;
  static const char *const title[PL_NSTAGES] = {
      "", "prologue (once per batch, whole batch)",
      "statistics (after a forward-only pass over every micro-batch, whole batch)",
      "micro-batch (each micro-batch of whole groups)", "final (after the last micro-batch)"};
  fprintf(out, "plan %s\n", g->objective);
  for (PlStage s = PL_PRO; s <= PL_FINAL; s++) {
    if (s == PL_STAT && !p->stats) continue;
    int np = 0;
    for (int i = 0; i < p->npasses; i++) np += p->passes[i].stage == s;
    fprintf(out, "%s: %d pass%s\n", title[s], np, np == 1 ? "" : "es");
    for (int i = 0; i < p->npasses; i++) {
      const PlPass *ps = &p->passes[i];
      if (ps->stage != s) continue;
      fprintf(out, "  pass %d over %s:", ps->index,
              ps->loop == LV_BATCH ? "batch scalars" : bi_level_names[ps->loop]);
      for (int j = 0; j < ps->nnodes; j++) fprintf(out, " %%%d", ps->nodes[j]);
      fputc('\n', out);
      print_outputs(out, p, ps);
    }
  }
  /* outputs that are data or prologue values (e.g. a constant gradient) are written from them */
  for (int k = 0; k < IR_NGRADS; k++) {
    int i = g->grad[k];
    if (i >= 0 && p->stage[i] != PL_MICRO)
      fprintf(out, "grad %s = %%%d (%s value, broadcast to tokens)\n", ir_grad_names[k], i,
              p->stage[i] == PL_DATA ? "constant or input" : p->stage[i] == PL_STAT ? "statistics" : "prologue");
  }
  for (int m = 0; m < g->nmetrics; m++) {
    int i = g->metrics[m].node;
    if (p->stage[i] == PL_DATA)
      fprintf(out, "%s %s = %%%d (constant)\n", g->metrics[m].state >= 0 ? "update" : "metric", g->metrics[m].name, i);
  }
  if (p->stats)
    fprintf(out, "the statistics stage needs logp/entropy of the whole batch before the first micro-batch: the "
                 "trainer runs one extra forward per micro-batch (without activations) and keeps logp/entropy "
                 "of every token (8 bytes a token)\n");
  if (p->final_sweep) fprintf(out, "the final stage sweeps the whole batch again: the runtime keeps logp/entropy of every micro-batch\n");
}
