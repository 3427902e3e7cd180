/* tfm_train.c — the training path: forward over a packed batch keeping the activations, and
 * backward from per-token dlogp / dentropy into the gradient allocation.
 *
 * Shapes: N tokens in the batch (all sequences packed), D model dim, H query heads, KV key/value
 * heads, hd head dim, I MLP hidden dim, V vocabulary.  Per layer the forward keeps:
 *   X (N,D) the residual stream entering the layer, xn1 (N,D) and r1 (N) its RMSNorm,
 *   q (N,H*hd) k v (N,KV*hd) after the rotary embedding, with Qwen3's q/k norm also qp (N,H*hd)
 *   kp (N,KV*hd) the projections before the norm and rq (N*H) rk (N*KV) its inverse RMS per head,
 *   P the attention probabilities
 *   (per sequence s: (H, L_s, L_s)), ao (N,H*hd) the attention output before o_proj,
 *   Xm (N,D) the residual stream after attention, xn2 (N,D) and r2 (N) its RMSNorm,
 *   g u (N,I) the gate and up projections.
 * The output head (tfm_head.c) keeps nothing but the per-row log-normalizer and entropy: its
 * logits are recomputed chunk by chunk in the backward.
 */
#include "tfm_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
  tfm_f *X, *xn1, *r1, *q, *k, *v, *P, *ao, *Xm, *xn2, *r2, *g, *u;
  tfm_f *qp, *kp, *rq, *rk;   /* Qwen3 q/k norm only (else NULL) */
} LayerActs;

struct TfmActs {
  int N, nseq;
  int *off;        /* (nseq+1) */
  int32_t *tok;    /* (N) */
  int32_t *tgt;    /* (N) */
  int *pos;        /* (N) position inside its sequence */
  size_t *poff;    /* (nseq+1) offsets of each sequence's (H, L, L) block in P */
  double *rope;    /* tfm_rope_table of the positions 0..longest sequence - 1 */
  LayerActs *L;
  tfm_f *Xf, *xf, *rf;  /* final residual (N,D), its norm (N,D) and rinv (N) */
  double *lse, *ent;    /* (N) head statistics */
  double temperature;   /* the batch's: the head divides the logits by it */
  tfm_f *scr;           /* backward scratch */
  tfm_f *mem;           /* one allocation behind every array above: the model's workspace */
  TfmModel *owner;      /* when mem is owner->ws */
};

void tfm_head_forward(const TfmModel *m, int N, const tfm_f *xf, const int32_t *tgt, double T, double *lse,
                      double *ent, tfm_f *logp, tfm_f *entropy);
void tfm_head_backward(TfmModel *m, int N, const tfm_f *xf, const int32_t *tgt, double T, const double *lse,
                       const double *ent, const tfm_f *dlogp, const tfm_f *dentropy, tfm_f *dxf);

static tfm_f *P(const TfmModel *m, size_t off) { return m->params + off; }
static tfm_f *G(const TfmModel *m, size_t off) { return m->grads + off; }

void tfm_acts_free(TfmActs *a) {
  if (!a) return;
  free(a->off);
  free(a->tok);
  free(a->tgt);
  free(a->pos);
  free(a->poff);
  free(a->rope);
  free(a->L);
  free(a->lse);
  free(a->ent);
  if (a->owner) a->owner->ws_busy = 0;
  else free(a->mem);
  free(a);
}

/* Causal attention of one sequence for the query heads of kv head g, by matrix products:
 * S = Q_h K_g^T (the full L×L; the upper triangle is then masked), P = softmax(S·scale) row by
 * row over j <= i, O_h = P V_g.  q (L,H,hd), k v (L,KV,hd) for this sequence; P (H,L,L) keeps
 * the probabilities (zeros above the diagonal); ao (L,H,hd). */
static void attn_fwd(int L, int H, int KV, int hd, int g, const tfm_f *q, const tfm_f *k,
                     const tfm_f *v, tfm_f *Pm, tfm_f *ao) {
  int per = H / KV, qs = H * hd, ks = KV * hd;
  double scale = 1.0 / sqrt((double)hd);
  for (int h = g * per; h < (g + 1) * per; h++) {
    tfm_f *Ph = Pm + (size_t)h * L * L;
    tfm_gemm1(0, 1, L, L, hd, q + (size_t)h * hd, qs, k + (size_t)g * hd, ks, 0, Ph, L);  // (L,L)
    for (int i = 0; i < L; i++) {
      tfm_f *pr = Ph + (size_t)i * L;
      double mx = -INFINITY, sum = 0;
      for (int j = 0; j <= i; j++) {
        pr[j] = (tfm_f)(pr[j] * scale);
        mx = pr[j] > mx ? pr[j] : mx;
      }
      for (int j = 0; j <= i; j++) {
        double e = tfm_exp(pr[j] - mx);
        pr[j] = (tfm_f)e;
        sum += e;
      }
      tfm_f inv = (tfm_f)(1.0 / sum);
      for (int j = 0; j <= i; j++) pr[j] *= inv;
      for (int j = i + 1; j < L; j++) pr[j] = 0;
    }
    tfm_gemm1(0, 0, L, hd, L, Ph, L, v + (size_t)g * hd, ks, 0, ao + (size_t)h * hd, qs);  // (L,hd)
  }
}

/* Backward of attn_fwd for kv head g: dq for the group's heads; dk, dv for kv head g (written,
 * not added).  Per head: dP = dO V^T, dS = P ∘ (dP − rowsum(P ∘ dP)) · scale, dQ = dS K,
 * dK += dS^T Q, dV += P^T dO.  ds: (L,L) scratch. */
static void attn_bwd(int L, int H, int KV, int hd, int g, const tfm_f *q, const tfm_f *k,
                     const tfm_f *v, const tfm_f *Pm, const tfm_f *dao, tfm_f *dq, tfm_f *dk,
                     tfm_f *dv, tfm_f *ds) {
  int per = H / KV, qs = H * hd, ks = KV * hd;
  tfm_f scale = (tfm_f)(1.0 / sqrt((double)hd));
  for (int j = 0; j < L; j++) {
    memset(dk + ((size_t)j * KV + g) * hd, 0, hd * sizeof(tfm_f));
    memset(dv + ((size_t)j * KV + g) * hd, 0, hd * sizeof(tfm_f));
  }
  for (int h = g * per; h < (g + 1) * per; h++) {
    const tfm_f *Ph = Pm + (size_t)h * L * L, *doh = dao + (size_t)h * hd;
    tfm_gemm1(0, 1, L, L, hd, doh, qs, v + (size_t)g * hd, ks, 0, ds, L);  // dP (L,L)
    for (int i = 0; i < L; i++) {
      const tfm_f *pr = Ph + (size_t)i * L;
      tfm_f *dr = ds + (size_t)i * L;
      double dot = 0;
      for (int j = 0; j <= i; j++) dot += (double)pr[j] * dr[j];
      for (int j = 0; j <= i; j++) dr[j] = (tfm_f)(pr[j] * (dr[j] - dot)) * scale;
      for (int j = i + 1; j < L; j++) dr[j] = 0;
    }
    tfm_gemm1(0, 0, L, hd, L, ds, L, k + (size_t)g * hd, ks, 0, dq + (size_t)h * hd, qs);
    tfm_gemm1(1, 0, L, hd, L, ds, L, q + (size_t)h * hd, qs, 1, dk + (size_t)g * hd, ks);
    tfm_gemm1(1, 0, L, hd, L, Ph, L, doh, qs, 1, dv + (size_t)g * hd, ks);
  }
}

static int check_batch(const TfmModel *m, const TfmBatch *b, char *err, size_t errlen) {
  if (b->nseq < 0 || !b->offsets || b->offsets[0] != 0) {
    snprintf(err, errlen, "batch: offsets must start at 0");
    return -1;
  }
  if (!(b->temperature > 0 && b->temperature < INFINITY)) {
    snprintf(err, errlen, "batch: temperature %g: expected a finite number above 0", b->temperature);
    return -1;
  }
  for (int s = 0; s < b->nseq; s++)
    if (b->offsets[s + 1] <= b->offsets[s]) {
      snprintf(err, errlen, "batch: sequence %d is empty or the offsets decrease", s);
      return -1;
    }
  int N = b->offsets[b->nseq];
  for (int i = 0; i < N; i++) {
    if (b->tokens[i] < 0 || b->tokens[i] >= m->cfg.vocab) {
      snprintf(err, errlen, "batch: token %d at position %d is outside the vocabulary (size %d)", b->tokens[i], i, m->cfg.vocab);
      return -1;
    }
    if (b->targets[i] >= m->cfg.vocab || b->targets[i] < -1) {
      snprintf(err, errlen, "batch: target %d at position %d is outside the vocabulary (size %d)", b->targets[i], i, m->cfg.vocab);
      return -1;
    }
  }
  return 0;
}

static int forward(TfmModel *m, const TfmBatch *b, tfm_f *logp, tfm_f *entropy, TfmActs **acts_out,
                   char *err, size_t errlen) {
  if (acts_out) *acts_out = NULL;
  if (check_batch(m, b, err, errlen)) return -1;
  const TfmConfig *c = &m->cfg;
  int N = b->offsets[b->nseq], D = c->dim, H = c->n_heads, KV = c->n_kv_heads, hd = c->head_dim,
      I = c->hidden, NL = c->n_layers, qd = H * hd, kvd = KV * hd;
  TfmActs *a = rc_calloc(1, sizeof *a);
  a->N = N;
  a->nseq = b->nseq;
  a->temperature = b->temperature;
  a->off = rc_malloc((size_t)(b->nseq + 1) * sizeof(int));
  memcpy(a->off, b->offsets, (size_t)(b->nseq + 1) * sizeof(int));
  a->tok = rc_malloc((size_t)N * sizeof(int32_t) + 1);
  a->tgt = rc_malloc((size_t)N * sizeof(int32_t) + 1);
  memcpy(a->tok, b->tokens, (size_t)N * sizeof(int32_t));
  memcpy(a->tgt, b->targets, (size_t)N * sizeof(int32_t));
  a->pos = rc_malloc((size_t)N * sizeof(int) + 1);
  a->poff = rc_malloc((size_t)(b->nseq + 1) * sizeof(size_t));
  a->poff[0] = 0;
  int Lmax = 1;
  for (int s = 0; s < b->nseq; s++) {
    size_t Ls = (size_t)(b->offsets[s + 1] - b->offsets[s]);
    Lmax = (int)Ls > Lmax ? (int)Ls : Lmax;
    for (int i = b->offsets[s]; i < b->offsets[s + 1]; i++) a->pos[i] = i - b->offsets[s];
    a->poff[s + 1] = a->poff[s] + (size_t)H * Ls * Ls;
  }
  size_t nP = a->poff[b->nseq];
  int qkn = c->qk_norm;
  size_t per_layer = (size_t)N * (4 * D + 2 + 2 * qd + 2 * kvd + 2 * I) + nP;
  size_t nscr = 2 * (size_t)N * D + 3 * (size_t)N * I + 2 * (size_t)N * qd + 2 * (size_t)N * kvd;
  if (qkn) {
    per_layer += (size_t)N * (qd + kvd + H + KV);
    nscr += (size_t)N * (qd + kvd);
  }
  size_t total = per_layer * NL + (size_t)N * (2 * D + 1) + nscr + 1;
  if (!m->ws_busy) {
    if (m->ws_cap < total) {
      free(m->ws);
      m->ws = rc_malloc(total * sizeof(tfm_f));
      m->ws_cap = m->ws ? total : 0;
    }
    if (m->ws) {
      a->mem = m->ws;
      a->owner = m;
      m->ws_busy = 1;
    }
  } else {
    a->mem = rc_malloc(total * sizeof(tfm_f));
  }
  a->lse = rc_malloc(((size_t)N + 1) * sizeof(double));
  a->ent = rc_malloc(((size_t)N + 1) * sizeof(double));
  a->L = rc_calloc((size_t)NL, sizeof *a->L);
  a->rope = tfm_rope_table(Lmax, hd / 2, m->inv_freq);
  if (!a->mem || !a->lse || !a->ent || !a->L || !a->rope) {
    snprintf(err, errlen, "batch: out of memory for the activations of %d tokens", N);
    tfm_acts_free(a);
    return -1;
  }
  tfm_f *p = a->mem;
#define TAKE(n) (p += (n), p - (n))
  for (int l = 0; l < NL; l++) {
    LayerActs *A = &a->L[l];
    A->X = TAKE((size_t)N * D);
    A->xn1 = TAKE((size_t)N * D);
    A->r1 = TAKE((size_t)N);
    A->q = TAKE((size_t)N * qd);
    A->k = TAKE((size_t)N * kvd);
    A->v = TAKE((size_t)N * kvd);
    A->P = TAKE(nP);
    A->ao = TAKE((size_t)N * qd);
    A->Xm = TAKE((size_t)N * D);
    A->xn2 = TAKE((size_t)N * D);
    A->r2 = TAKE((size_t)N);
    A->g = TAKE((size_t)N * I);
    A->u = TAKE((size_t)N * I);
    if (qkn) {
      A->qp = TAKE((size_t)N * qd);
      A->kp = TAKE((size_t)N * kvd);
      A->rq = TAKE((size_t)N * H);
      A->rk = TAKE((size_t)N * KV);
    }
  }
  a->Xf = TAKE((size_t)N * D);
  a->xf = TAKE((size_t)N * D);
  a->rf = TAKE((size_t)N);
  a->scr = TAKE(nscr);
#undef TAKE

  /* x = embed[tok] */
  tfm_f *x0 = NL ? a->L[0].X : a->Xf;
  const tfm_f *E = P(m, m->embed);
#pragma omp parallel for schedule(static)
  for (int n = 0; n < N; n++) memcpy(x0 + (size_t)n * D, E + (size_t)a->tok[n] * D, D * sizeof(tfm_f));

  for (int l = 0; l < NL; l++) {
    LayerActs *A = &a->L[l];
    const TfmLayerW *w = &m->layers[l];
    tfm_f *Xnext = l + 1 < NL ? a->L[l + 1].X : a->Xf;
    tfm_rmsnorm(N, D, A->X, P(m, w->attn_norm), c->norm_eps, A->xn1, A->r1);
    /* With the q/k norm the projections go to qp, kp and their per-head norms to q, k. */
    tfm_f *qo = qkn ? A->qp : A->q, *ko = qkn ? A->kp : A->k;
    tfm_gemm(0, 1, N, qd, D, A->xn1, D, P(m, w->wq), D, 0, qo, qd);
    tfm_gemm(0, 1, N, kvd, D, A->xn1, D, P(m, w->wk), D, 0, ko, kvd);
    tfm_gemm(0, 1, N, kvd, D, A->xn1, D, P(m, w->wv), D, 0, A->v, kvd);
    if (w->bq != TFM_ABSENT) {
      tfm_add_bias(N, qd, qo, P(m, w->bq));
      tfm_add_bias(N, kvd, ko, P(m, w->bk));
      tfm_add_bias(N, kvd, A->v, P(m, w->bv));
    }
    if (qkn) {
      tfm_rmsnorm(N * H, hd, A->qp, P(m, w->qn), c->norm_eps, A->q, A->rq);
      tfm_rmsnorm(N * KV, hd, A->kp, P(m, w->kn), c->norm_eps, A->k, A->rk);
    }
    tfm_rope_tab(N, H, hd, A->q, a->pos, a->rope, 1);
    tfm_rope_tab(N, KV, hd, A->k, a->pos, a->rope, 1);
#pragma omp parallel for schedule(monotonic: dynamic, 1)
    for (int t = 0; t < b->nseq * KV; t++) {
      int s = t / KV, g = t % KV, o = a->off[s], Ls = a->off[s + 1] - o;
      attn_fwd(Ls, H, KV, hd, g, A->q + (size_t)o * qd, A->k + (size_t)o * kvd, A->v + (size_t)o * kvd,
               A->P + a->poff[s], A->ao + (size_t)o * qd);
    }
    /* Xm = X + ao Wo^T (+ bo) */
    memcpy(A->Xm, A->X, (size_t)N * D * sizeof(tfm_f));
    tfm_gemm(0, 1, N, D, qd, A->ao, qd, P(m, w->wo), qd, 1, A->Xm, D);
    if (w->bo != TFM_ABSENT) tfm_add_bias(N, D, A->Xm, P(m, w->bo));
    tfm_rmsnorm(N, D, A->Xm, P(m, w->mlp_norm), c->norm_eps, A->xn2, A->r2);
    tfm_gemm(0, 1, N, I, D, A->xn2, D, P(m, w->wg), D, 0, A->g, I);
    tfm_gemm(0, 1, N, I, D, A->xn2, D, P(m, w->wu), D, 0, A->u, I);
    /* Xnext = Xm + h Wd^T with h = silu(g) * u, formed in the backward scratch. */
    tfm_f *h = a->scr;
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < (size_t)N * I; i++) {
      h[i] = tfm_silu(A->g[i]) * A->u[i];
    }
    memcpy(Xnext, A->Xm, (size_t)N * D * sizeof(tfm_f));
    tfm_gemm(0, 1, N, D, I, h, I, P(m, w->wd), I, 1, Xnext, D);
  }
  tfm_rmsnorm(N, D, a->Xf, P(m, m->norm), c->norm_eps, a->xf, a->rf);
  tfm_head_forward(m, N, a->xf, a->tgt, a->temperature, a->lse, a->ent, logp, entropy);
  if (acts_out) *acts_out = a;
  else tfm_acts_free(a);
  return 0;
}

int tfm_forward(TfmModel *m, const TfmBatch *b, tfm_f *logp, tfm_f *entropy, TfmActs **acts_out,
                char *err, size_t errlen) {
  tfm_fp_begin();
  int rc = forward(m, b, logp, entropy, acts_out, err, errlen);
  tfm_fp_end();
  return rc;
}

void tfm_zero_grad(TfmModel *m) {
  if (!m->grads) m->grads = rc_calloc(m->nparams, sizeof(tfm_f));
  else memset(m->grads, 0, m->nparams * sizeof(tfm_f));
}

static void backward(TfmModel *m, TfmActs *a, const tfm_f *dlogp, const tfm_f *dentropy) {
  const TfmConfig *c = &m->cfg;
  int N = a->N, D = c->dim, H = c->n_heads, KV = c->n_kv_heads, hd = c->head_dim, I = c->hidden,
      NL = c->n_layers, qd = H * hd, kvd = KV * hd;
  size_t Dn = (size_t)N * D;
  /* Scratch: dx (N,D) the gradient of the residual stream; dxn (N,D); dI (2 × N,I) for the MLP
   * (dh then dg, du); dq (N,qd) dao (N,qd); dk dv (N,kvd). */
  int Lmax = 1;
  for (int s = 0; s < a->nseq; s++) Lmax = a->off[s + 1] - a->off[s] > Lmax ? a->off[s + 1] - a->off[s] : Lmax;
  tfm_f *dx = a->scr, *dxn = dx + Dn, *dh = dxn + Dn, *dg = dh + (size_t)N * I, *du = dg + (size_t)N * I,
        *dq = du + (size_t)N * I, *dao = dq + (size_t)N * qd, *dk = dao + (size_t)N * qd,
        *dv = dk + (size_t)N * kvd;
  /* With the q/k norm: dqp (N,qd) and dkp (N,kvd), the gradients before the norm. */
  tfm_f *dqp = c->qk_norm ? dv + (size_t)N * kvd : dq, *dkp = c->qk_norm ? dqp + (size_t)N * qd : dk;

  /* Head and final norm. */
  memset(dxn, 0, Dn * sizeof(tfm_f));
  tfm_head_backward(m, N, a->xf, a->tgt, a->temperature, a->lse, a->ent, dlogp, dentropy, dxn);
  memset(dx, 0, Dn * sizeof(tfm_f));
  tfm_rmsnorm_bwd(N, D, a->Xf, P(m, m->norm), a->rf, dxn, dx, G(m, m->norm));

  for (int l = NL - 1; l >= 0; l--) {
    LayerActs *A = &a->L[l];
    const TfmLayerW *w = &m->layers[l];
    /* MLP: out = h Wd^T with h = silu(g) * u (h rebuilt into dg's space first, sigmoid(g) kept
     * in du's space for the gradients below; silu(g) = g * sigmoid(g) as in tfm_silu). */
    tfm_f *h = dg, *sgm = du;
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < (size_t)N * I; i++) {
      tfm_f sg = tfm_sigmoid(A->g[i]);
      sgm[i] = sg;
      h[i] = A->g[i] * sg * A->u[i];
    }
    tfm_gemm(1, 0, D, I, N, dx, D, h, I, 1, G(m, w->wd), I);       /* dWd += dx^T h */
    tfm_gemm(0, 0, N, I, D, dx, D, P(m, w->wd), I, 0, dh, I);      /* dh = dx Wd */
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < (size_t)N * I; i++) {
      double gg = A->g[i], sg = du[i]; /* sigmoid(g), stored above (du is sgm) */
      du[i] = (tfm_f)(dh[i] * gg * sg);
      dg[i] = (tfm_f)(dh[i] * A->u[i] * sg * (1 + gg * (1 - sg)));
    }
    tfm_gemm(1, 0, I, D, N, dg, I, A->xn2, D, 1, G(m, w->wg), D);  /* dWg += dg^T xn2 */
    tfm_gemm(1, 0, I, D, N, du, I, A->xn2, D, 1, G(m, w->wu), D);
    tfm_gemm(0, 0, N, D, I, dg, I, P(m, w->wg), D, 0, dxn, D);     /* dxn2 = dg Wg + du Wu */
    tfm_gemm(0, 0, N, D, I, du, I, P(m, w->wu), D, 1, dxn, D);
    tfm_rmsnorm_bwd(N, D, A->Xm, P(m, w->mlp_norm), A->r2, dxn, dx, G(m, w->mlp_norm));

    /* Attention: Xm = X + ao Wo^T + bo. */
    if (w->bo != TFM_ABSENT) tfm_bias_bwd(N, D, dx, G(m, w->bo));
    tfm_gemm(1, 0, D, qd, N, dx, D, A->ao, qd, 1, G(m, w->wo), qd);
    tfm_gemm(0, 0, N, qd, D, dx, D, P(m, w->wo), qd, 0, dao, qd);
#pragma omp parallel
    {
      tfm_f *tmp = rc_malloc(((size_t)Lmax * Lmax + 1) * sizeof(tfm_f));
#pragma omp for schedule(monotonic: dynamic, 1)
      for (int t = 0; t < a->nseq * KV; t++) {
        int s = t / KV, g = t % KV, o = a->off[s], Ls = a->off[s + 1] - o;
        attn_bwd(Ls, H, KV, hd, g, A->q + (size_t)o * qd, A->k + (size_t)o * kvd, A->v + (size_t)o * kvd,
                 A->P + a->poff[s], dao + (size_t)o * qd, dq + (size_t)o * qd, dk + (size_t)o * kvd,
                 dv + (size_t)o * kvd, tmp);
      }
      free(tmp);
    }
    tfm_rope_tab(N, H, hd, dq, a->pos, a->rope, -1);
    tfm_rope_tab(N, KV, hd, dk, a->pos, a->rope, -1);
    if (c->qk_norm) {
      memset(dqp, 0, (size_t)N * qd * sizeof(tfm_f));
      memset(dkp, 0, (size_t)N * kvd * sizeof(tfm_f));
      tfm_rmsnorm_bwd(N * H, hd, A->qp, P(m, w->qn), A->rq, dq, dqp, G(m, w->qn));
      tfm_rmsnorm_bwd(N * KV, hd, A->kp, P(m, w->kn), A->rk, dk, dkp, G(m, w->kn));
    }
    if (w->bq != TFM_ABSENT) {
      tfm_bias_bwd(N, qd, dqp, G(m, w->bq));
      tfm_bias_bwd(N, kvd, dkp, G(m, w->bk));
      tfm_bias_bwd(N, kvd, dv, G(m, w->bv));
    }
    tfm_gemm(1, 0, qd, D, N, dqp, qd, A->xn1, D, 1, G(m, w->wq), D);
    tfm_gemm(1, 0, kvd, D, N, dkp, kvd, A->xn1, D, 1, G(m, w->wk), D);
    tfm_gemm(1, 0, kvd, D, N, dv, kvd, A->xn1, D, 1, G(m, w->wv), D);
    tfm_gemm(0, 0, N, D, qd, dqp, qd, P(m, w->wq), D, 0, dxn, D);
    tfm_gemm(0, 0, N, D, kvd, dkp, kvd, P(m, w->wk), D, 1, dxn, D);
    tfm_gemm(0, 0, N, D, kvd, dv, kvd, P(m, w->wv), D, 1, dxn, D);
    tfm_rmsnorm_bwd(N, D, A->X, P(m, w->attn_norm), A->r1, dxn, dx, G(m, w->attn_norm));
  }
  /* Embedding: dE[tok[n]] += dx[n], columns in parallel, rows in order. */
  tfm_f *dE = G(m, m->embed);
#pragma omp parallel for schedule(static)
  for (int j0 = 0; j0 < D; j0 += 16) {
    int j1 = j0 + 16 < D ? j0 + 16 : D;
    for (int n = 0; n < N; n++) {
      tfm_f *row = dE + (size_t)a->tok[n] * D;
      for (int j = j0; j < j1; j++) row[j] += dx[(size_t)n * D + j];
    }
  }
  tfm_acts_free(a);
}

void tfm_backward(TfmModel *m, TfmActs *a, const tfm_f *dlogp, const tfm_f *dentropy) {
  if (!m->grads) tfm_zero_grad(m);
  tfm_fp_begin();
  backward(m, a, dlogp, dentropy);
  tfm_fp_end();
}
