/* ir_cse.c — common-subexpression elimination by hash-consing.
 *
 * Two nodes are the same when op, arguments (after renaming), levels, ddof, table index and the
 * bits of the constant agree.  Every op is pure (uniform() is a function of the batch position),
 * so merging is always sound.  Inlined fn bodies and the mean/count nodes that autodiff creates
 * next to the primal ones are merged here.
 */
#include <stdlib.h>
#include <string.h>

#include "ir.h"

typedef struct {
  int *slot;  /* open addressing: new-graph node index or -1 */
  size_t cap;
} Cse;

static uint64_t mix(uint64_t h, uint64_t v) {
  h ^= v + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
  return h * 0xff51afd7ed558ccdull;
}

static uint64_t node_hash(const IrNode *n) {
  uint64_t bits;
  memcpy(&bits, &n->num, sizeof bits);
  uint64_t h = mix(n->op, (uint64_t)n->level);
  for (int k = 0; k < 3; k++) h = mix(h, (uint64_t)(int64_t)n->a[k]);
  h = mix(h, (uint64_t)n->rlevel * 31 + (uint64_t)n->elev);
  h = mix(h, (uint64_t)n->ddof * 131 + (uint64_t)n->idx);
  h = mix(h, (uint64_t)n->type);
  return mix(h, bits);
}

static bool node_same(const IrNode *x, const IrNode *y) {
  return x->op == y->op && x->level == y->level && x->type == y->type && x->a[0] == y->a[0] &&
         x->a[1] == y->a[1] && x->a[2] == y->a[2] && x->rlevel == y->rlevel &&
         x->elev == y->elev && x->ddof == y->ddof && x->idx == y->idx &&
         memcmp(&x->num, &y->num, sizeof x->num) == 0;
}

static int cse_map(void *ctx, IrGraph *ng, const IrGraph *g, int i, const int *remap) {
  Cse *C = ctx;
  int j = ir_copy(ng, &g->n[i], remap);
  IrNode *n = &ng->n[j];
  for (size_t h = node_hash(n) & (C->cap - 1);; h = (h + 1) & (C->cap - 1)) {
    if (C->slot[h] < 0) {
      C->slot[h] = j;
      return j;
    }
    if (node_same(&ng->n[C->slot[h]], n)) {
      ng->nn--; /* drop the copy just pushed: it is the last node */
      return C->slot[h];
    }
  }
}

IrGraph *ir_cse(IrGraph *g) {
  Cse C = {NULL, 16};
  while (C.cap < 2 * (size_t)g->nn + 16) C.cap *= 2;
  C.slot = ir_xcalloc(C.cap, sizeof *C.slot);
  for (size_t i = 0; i < C.cap; i++) C.slot[i] = -1;
  g = ir_rebuild(g, cse_map, &C);
  free(C.slot);
  return g;
}
