/* tfm_head.c — the fused, chunked output head of the training path.
 *
 * For the rows that have a target, logits z = xf W^T / T (W the head, or the embedding when
 * tied; T the batch's temperature, 1 leaving the products as they are) are formed a chunk of
 * rows at a time, so (rows, V) logits never exist for the whole batch:
 *   forward:  lse = logsumexp(z), logp = z[target] - lse, entropy H = -sum p log p;
 *   backward: the chunk's logits are recomputed, then
 *             dz = dlogp (onehot - p) - dentropy p (log p + H), divided by T,
 *             dxf[rows] = dz W and dW += dz^T xf[rows].
 * The chunk is sized so its logits take at most about 4 MiB.
 */
#include "tfm_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Rows with a target, in order. */
static int target_rows(int N, const int32_t *tgt, int *rows) {
  int M = 0;
  for (int n = 0; n < N; n++)
    if (tgt[n] >= 0) rows[M++] = n;
  return M;
}

static int chunk_rows(int V) {
  int C = (int)((1u << 20) / (unsigned)V);
  return C < 8 ? 8 : C > 512 ? 512 : C;
}

static void gather(int C, int D, const int *rows, const tfm_f *x, tfm_f *buf) {
#pragma omp parallel for schedule(static)
  for (int i = 0; i < C; i++) memcpy(buf + (size_t)i * D, x + (size_t)rows[i] * D, D * sizeof(tfm_f));
}

/* Row I of the chunk's logits Z divided by the temperature T (nothing to do at 1: the same bits
 * as without a temperature). */
static void scale_row(tfm_f *z, int V, int i, double T) {
  if (T == 1) return;
  tfm_f *zr = z + (size_t)i * V;
  for (int j = 0; j < V; j++) zr[j] = (tfm_f)(zr[j] / T);
}

void tfm_head_forward(const TfmModel *m, int N, const tfm_f *xf, const int32_t *tgt, double T, double *lse,
                      double *ent, tfm_f *logp, tfm_f *entropy) {
  int D = m->cfg.dim, V = m->cfg.vocab, C = chunk_rows(V);
  const tfm_f *W = m->params + m->head;
  int *rows = rc_malloc(((size_t)N + 1) * sizeof(int));
  int M = target_rows(N, tgt, rows);
  tfm_f *buf = rc_malloc(((size_t)C * D + 1) * sizeof(tfm_f)), *z = rc_malloc(((size_t)C * V + 1) * sizeof(tfm_f));
  for (int n = 0; n < N; n++) {
    logp[n] = entropy[n] = 0;
    lse[n] = ent[n] = 0;
  }
  for (int r0 = 0; r0 < M; r0 += C) {
    int Cn = M - r0 < C ? M - r0 : C;
    gather(Cn, D, rows + r0, xf, buf);
    tfm_gemm(0, 1, Cn, V, D, buf, D, W, D, 0, z, V);  // (Cn,V)
#pragma omp parallel for schedule(static)
    for (int i = 0; i < Cn; i++) {
      int n = rows[r0 + i];
      scale_row(z, V, i, T);
      double H, L = tfm_row_stats(z + (size_t)i * V, V, &H);
      lse[n] = L;
      ent[n] = H;
      logp[n] = (tfm_f)(z[(size_t)i * V + tgt[n]] - L);
      entropy[n] = (tfm_f)H;
    }
  }
  free(rows);
  free(buf);
  free(z);
}

void tfm_head_backward(TfmModel *m, int N, const tfm_f *xf, const int32_t *tgt, double T, const double *lse,
                       const double *ent, const tfm_f *dlogp, const tfm_f *dentropy, tfm_f *dxf) {
  int D = m->cfg.dim, V = m->cfg.vocab, C = chunk_rows(V);
  const tfm_f *W = m->params + m->head;
  tfm_f *dW = m->grads + m->head;
  int *rows = rc_malloc(((size_t)N + 1) * sizeof(int));
  int M = target_rows(N, tgt, rows);
  tfm_f *buf = rc_malloc(((size_t)C * D + 1) * sizeof(tfm_f)), *z = rc_malloc(((size_t)C * V + 1) * sizeof(tfm_f)),
        *dbuf = rc_malloc(((size_t)C * D + 1) * sizeof(tfm_f));
  for (int r0 = 0; r0 < M; r0 += C) {
    int Cn = M - r0 < C ? M - r0 : C;
    gather(Cn, D, rows + r0, xf, buf);
    tfm_gemm(0, 1, Cn, V, D, buf, D, W, D, 0, z, V);  // (Cn,V) logits again
#pragma omp parallel for schedule(static)
    for (int i = 0; i < Cn; i++) {
      int n = rows[r0 + i];
      double L = lse[n], H = ent[n], gl = dlogp[n], ge = dentropy[n];
      scale_row(z, V, i, T);
      tfm_f *zr = z + (size_t)i * V;
      for (int j = 0; j < V; j++) {
        double lp = zr[j] - L, p = tfm_exp(lp);
        zr[j] = (tfm_f)(-gl * p - ge * p * (lp + H));
      }
      zr[tgt[n]] += (tfm_f)gl;
      scale_row(z, V, i, T);   /* d/d(xf W^T) = (d/dz) / T */
    }
    tfm_gemm(1, 0, V, D, Cn, z, V, buf, D, 1, dW, D);     // dW += dz^T buf
    tfm_gemm(0, 0, Cn, D, V, z, V, W, D, 0, dbuf, D);     // dbuf = dz W
#pragma omp parallel for schedule(static)
    for (int i = 0; i < Cn; i++) {
      tfm_f *dst = dxf + (size_t)rows[r0 + i] * D;
      for (int j = 0; j < D; j++) dst[j] += dbuf[(size_t)i * D + j];
    }
  }
  free(rows);
  free(buf);
  free(z);
  free(dbuf);
}
