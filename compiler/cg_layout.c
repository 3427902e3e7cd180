/* cg_layout.c — the memory plan of a compiled objective and the facts about its passes, for the
 * code generator (cg.c), the artifact's descriptor (cg_artifact.c) and `rein emit` (rein.c).
 *
 * A value lives in registers inside its pass; a value read by another pass (or a batch-level
 * value, or a sibling op's result, or a gradient the synthetic pass writes) gets an array of its
 * level (CgLayout.store), batch-level values a slot; batch-level reductions get a running state
 * (CgLayout.red).  The same plan decides each pass's entry points and flags (cg_pass_info) and
 * the phase of each node in its level's body (cg_phases: before or after the reductions that
 * close there).  This is bookkeeping over the plan only: no LLVM here, so the descriptor and the
 * code agree by construction.
 */
#include "cg_internal.h"

#include <stdlib.h>
#include <string.h>

/* A gradient written by the synthetic pass: a data value (e.g. logp itself) or a prologue value,
 * which no micro-batch pass computes. */
bool cg_grad_synthetic(const Plan *p, int i) {
  return pl_is_data(&p->g->n[i]) || p->stage[i] != PL_MICRO;
}

bool cg_in_pass(const PlPass *ps, int i) {
  for (int j = 0; j < ps->nnodes; j++)
    if (ps->nodes[j] == i) return true;
  return false;
}

/* REPORT[i] := node i's value reaches the loss and the metrics and nothing else: it is one of
 * them, or every node that reads it is such a node (the nodes are in topological order).  A state
 * update (`update`, IrMetric.state >= 0) is not a report: the next step computes with it. */
static void reports(const IrGraph *g, bool *report) {
  bool *used = ir_xcalloc((size_t)g->nn, sizeof(bool));
  for (int i = 0; i < g->nn; i++) report[i] = true;
  for (int k = 0; k < IR_NGRADS; k++)
    if (g->grad[k] >= 0) report[g->grad[k]] = false;
  for (int m = 0; m < g->nmetrics; m++)
    if (g->metrics[m].state >= 0) report[g->metrics[m].node] = false;
  for (int j = g->nn - 1; j >= 0; j--) {
    bool out = j == g->loss;
    for (int m = 0; m < g->nmetrics; m++) out = out || g->metrics[m].node == j;
    if (!used[j] && !out) report[j] = false; /* dead, or read by nothing the outputs need */
    for (int k = 0; k < ir_nslots(&g->n[j]); k++) {
      int a = g->n[j].a[k];
      if (a < 0) continue;
      used[a] = true;
      if (!report[j]) report[a] = false;
    }
  }
  free(used);
}

void cg_layout(CgLayout *l, const Plan *p) {
  const IrGraph *g = p->g;
  memset(l, 0, sizeof *l);
  l->p = p;
  l->store = ir_xcalloc((size_t)g->nn, sizeof(int));
  l->red = ir_xcalloc((size_t)g->nn, sizeof(int));
  l->first = ir_xcalloc((size_t)g->nn, sizeof(int));
  l->report = ir_xcalloc((size_t)g->nn, sizeof(bool));
  l->xread = ir_xcalloc((size_t)g->nn, sizeof(bool));
  l->thr = ir_xcalloc((size_t)g->nn, sizeof(int));
  reports(g, l->report);
  bool *need = ir_xcalloc((size_t)g->nn, sizeof(bool));
  for (int i = 0; i < g->nn; i++) l->store[i] = l->red[i] = l->first[i] = -1;
  for (int q = 0; q < p->npasses; q++) {
    const PlPass *ps = &p->passes[q];
    for (int j = 0; j < ps->nnodes; j++) {
      int i = ps->nodes[j];
      const IrNode *n = &g->n[i];
      if (l->first[i] < 0) l->first[i] = q;
      if (ir_ops[n->op].cls == 's' || n->level == LV_BATCH) need[i] = true;
      for (int k = 0; k < ir_nslots(n); k++) {
        int a = n->a[k];
        if (a >= 0 && !pl_is_data(&g->n[a]) && !cg_in_pass(ps, a)) need[a] = l->xread[a] = true;
      }
    }
  }
  for (int k = 0; k < IR_NGRADS; k++) {
    int i = g->grad[k];
    if (i < 0 || !cg_grad_synthetic(p, i)) continue;
    l->gradpass = 1;
    if (!pl_is_data(&g->n[i])) need[i] = l->xread[i] = true;
  }
  for (int i = 0; i < g->nn; i++) {
    const IrNode *n = &g->n[i];
    if (pl_is_data(n)) continue;
    if (need[i]) l->store[i] = l->narrays[n->level]++;
    if (ir_ops[n->op].cls == 'r' && n->rlevel == LV_BATCH) l->red[i] = l->nred++;
  }
  for (int i = 0; i < g->nn; i++) { /* after every node's own slot: the threshold's three */
    l->thr[i] = -1;
    if (g->n[i].op == IR_RANKLT && g->n[i].rlevel == LV_BATCH) {
      l->thr[i] = l->narrays[LV_BATCH];
      l->narrays[LV_BATCH] += 3;
    }
  }
  free(need);
}

void cg_layout_free(CgLayout *l) {
  free(l->store);
  free(l->red);
  free(l->first);
  free(l->report);
  free(l->xread);
  free(l->thr);
  memset(l, 0, sizeof *l);
}

int cg_npasses(const CgLayout *l) { return l->p->npasses + l->gradpass; }

void cg_phases(const CgLayout *l, const PlPass *ps, char *phase) {
  const IrGraph *g = l->p->g;
  for (int j = 0; j < ps->nnodes; j++) {
    int i = ps->nodes[j];
    const IrNode *n = &g->n[i];
    char cls = ir_ops[n->op].cls;
    phase[i] = cls == 'r' && !pl_early(ps, i) ? PH_POST : PH_PRE; /* early: before the token loop */
    if (cls != 'e') continue;
    for (int k = 0; k < ir_nslots(n); k++) {
      int a = n->a[k];
      if (a >= 0 && cg_in_pass(ps, a) && g->n[a].level == n->level && ir_ops[g->n[a].op].cls != 's' &&
          phase[a] == PH_POST)
        phase[i] = PH_POST;
    }
  }
}

void cg_pass_info(const CgLayout *l, int k, int *stage, int *loop, int *flags) {
  const Plan *p = l->p;
  const IrGraph *g = p->g;
  static const int stages[PL_NSTAGES] = {0, REIN_STAGE_PROLOGUE, REIN_STAGE_STAT, REIN_STAGE_MICRO,
                                                REIN_STAGE_FINAL};
  if (k == p->npasses) { /* the synthetic gradient pass */
    *stage = REIN_STAGE_MICRO;
    *loop = REIN_TOKEN;
    *flags = REIN_PASS_GROUPS | REIN_PASS_GRADS_ONLY;
    return;
  }
  const PlPass *ps = &p->passes[k];
  char *phase = ir_xcalloc((size_t)g->nn, 1);
  cg_phases(l, ps, phase);
  *stage = stages[ps->stage];
  *loop = ps->loop;
  *flags = ps->loop < LV_BATCH ? REIN_PASS_GROUPS : 0;
  for (int j = 0; j < ps->nnodes; j++) {
    int i = ps->nodes[j];
    const IrNode *n = &g->n[i];
    if (l->red[i] >= 0) {
      *flags |= REIN_PASS_MERGE;
      if (!p->partial[i]) *flags |= REIN_PASS_END;
    } else if (n->level == LV_BATCH) {
      *flags |= phase[i] == PH_POST ? REIN_PASS_END : REIN_PASS_BEGIN;
    } else if (ir_ops[n->op].cls == 's' && n->rlevel == LV_BATCH) {
      *flags |= REIN_PASS_BEGIN;
    }
  }
  free(phase);
}
