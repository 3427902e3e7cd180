/* tfm_optim.c — global gradient norm, clipping and AdamW (decoupled weight decay) over the single
 * parameter / gradient / state allocations.
 *
 * Matches torch.optim.AdamW with torch.nn.utils.clip_grad_norm_ applied first.  Weight decay
 * applies to matrices (embeddings and projections), not to norm weights or biases — the usual
 * choice for decoder LMs.  The norm is summed in fixed 64Ki-element blocks, then the blocks in
 * order, so it does not depend on the thread count.
 */
#include "tfm_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

TfmAdamW tfm_adamw_defaults(void) {
  TfmAdamW o = {.lr = 1e-5, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8, .weight_decay = 0.01, .max_grad_norm = 1.0};
  return o;
}

#define NORM_BLOCK 65536

double tfm_grad_norm(const TfmModel *m) {
  if (!m->grads) return 0;
  size_t nb = (m->nparams + NORM_BLOCK - 1) / NORM_BLOCK;
  double *part = rc_calloc(nb + 1, sizeof(double));
#pragma omp parallel for schedule(static)
  for (size_t b = 0; b < nb; b++) {
    size_t i0 = b * NORM_BLOCK, i1 = i0 + NORM_BLOCK < m->nparams ? i0 + NORM_BLOCK : m->nparams;
    double s = 0;
    for (size_t i = i0; i < i1; i++) s += (double)m->grads[i] * m->grads[i];
    part[b] = s;
  }
  double s = 0;
  for (size_t b = 0; b < nb; b++) s += part[b];
  free(part);
  return sqrt(s);
}

double tfm_adamw_step(TfmModel *m, const TfmAdamW *o) {
  if (!m->grads) tfm_zero_grad(m);
  if (!m->opt) m->opt = rc_calloc(2 * m->nparams, sizeof(tfm_f));
  double norm = tfm_grad_norm(m);
  double scale = 1;
  if (o->max_grad_norm > 0 && isfinite(norm)) {
    scale = o->max_grad_norm / (norm + 1e-6);
    if (scale > 1) scale = 1;
  }
  m->step++;
  double bc1 = 1 - pow(o->beta1, (double)m->step), bc2 = 1 - pow(o->beta2, (double)m->step);
  double step = o->lr / bc1, sbc2 = sqrt(bc2);
  tfm_f *mm = m->opt, *vv = m->opt + m->nparams;
  for (int t = 0; t < m->ntensors; t++) {
    const TfmTensor *T = &m->tensors[t];
    double decay = T->decay ? 1 - o->lr * o->weight_decay : 1;
    tfm_f *p = m->params + T->off, *g = m->grads + T->off, *m1 = mm + T->off, *v1 = vv + T->off;
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < T->n; i++) {
      double gi = g[i] * scale;
      double mi = o->beta1 * m1[i] + (1 - o->beta1) * gi;
      double vi = o->beta2 * v1[i] + (1 - o->beta2) * gi * gi;
      m1[i] = (tfm_f)mi;
      v1[i] = (tfm_f)vi;
      double pi = p[i] * decay;
      p[i] = (tfm_f)(pi - step * mi / (sqrt(vi) / sbc2 + o->eps));
    }
  }
  return norm;
}
