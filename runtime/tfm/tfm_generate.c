/* tfm_generate.c — the rollout path: batched sampling with a KV cache.
 *
 * One function, step(), runs the model on a set of rows, each row a (sequence, position, token):
 * it writes the rows' keys and values into the cache first, then attends every row to its
 * sequence's cache entries 0..position.  The prefill is one step with all prompt tokens of all
 * sequences as rows; each decode step has one row per unfinished sequence.  Logits are formed
 * only for the rows that sample.
 *
 * Sampling of sequence s at generation step t uses the uniform number u(seed, s, t) of a
 * counter-based generator, so a sequence's tokens depend only on its prompt, the model, the
 * sampling settings and (seed, s): not on the other sequences or the thread count.
 * For each sampled token we record log p under the policy at temperature 1, log p_T under the
 * policy at the sampling temperature (softmax(logits / T) over the whole vocabulary, before any
 * top-k / top-p: what the trainer's forward computes) and log q under the distribution sampled
 * from (p_T, then top-k, then top-p, renormalized).
 */
#include "tfm_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
  int B, maxlen, kvd;
  tfm_f *K, *V;  /* per layer (B, maxlen, KV*hd) */
  double *rope;  /* tfm_rope_table of the positions 0..maxlen-1 */
} Cache;

static tfm_f *cache_at(const Cache *c, tfm_f *base, int layer, int b, int pos) {
  return base + (((size_t)layer * c->B + b) * c->maxlen + pos) * c->kvd;
}

/* Run R rows (seq[r], pos[r], tok[r]) through the model, filling the cache; the final hidden
 * state (after the last norm) of row r goes to out[r] (R,D). */
static void step(const TfmModel *m, Cache *kc, int R, const int *seq, const int *pos,
                 const int32_t *tok, tfm_f *out) {
  const TfmConfig *c = &m->cfg;
  int D = c->dim, H = c->n_heads, KV = c->n_kv_heads, hd = c->head_dim, I = c->hidden,
      qd = H * hd, kvd = KV * hd, per = H / KV;
  size_t need = (size_t)R * (3 * D + qd + 2 * kvd + qd + 2 * I + 1 + H + KV);
  tfm_f *mem = rc_malloc((need + 1) * sizeof(tfm_f));
  tfm_f *x = mem, *xn = x + (size_t)R * D, *q = xn + (size_t)R * D, *k = q + (size_t)R * qd,
        *v = k + (size_t)R * kvd, *ao = v + (size_t)R * kvd, *g = ao + (size_t)R * qd,
        *u = g + (size_t)R * I, *r = u + (size_t)R * I, *rh = r + R; /* rh: (R*(H+KV)) q/k norm */
  const tfm_f *E = m->params + m->embed;
  for (int i = 0; i < R; i++) memcpy(x + (size_t)i * D, E + (size_t)tok[i] * D, D * sizeof(tfm_f));
  double scale = 1.0 / sqrt((double)hd);
  for (int l = 0; l < c->n_layers; l++) {
    const TfmLayerW *w = &m->layers[l];
    tfm_rmsnorm(R, D, x, m->params + w->attn_norm, c->norm_eps, xn, r);
    tfm_gemm(0, 1, R, qd, D, xn, D, m->params + w->wq, D, 0, q, qd);
    tfm_gemm(0, 1, R, kvd, D, xn, D, m->params + w->wk, D, 0, k, kvd);
    tfm_gemm(0, 1, R, kvd, D, xn, D, m->params + w->wv, D, 0, v, kvd);
    if (w->bq != TFM_ABSENT) {
      tfm_add_bias(R, qd, q, m->params + w->bq);
      tfm_add_bias(R, kvd, k, m->params + w->bk);
      tfm_add_bias(R, kvd, v, m->params + w->bv);
    }
    if (c->qk_norm) { /* per head, in place (the kernel reads a row before writing it) */
      tfm_rmsnorm(R * H, hd, q, m->params + w->qn, c->norm_eps, q, rh);
      tfm_rmsnorm(R * KV, hd, k, m->params + w->kn, c->norm_eps, k, rh + (size_t)R * H);
    }
    tfm_rope_tab(R, H, hd, q, pos, kc->rope, 1);
    tfm_rope_tab(R, KV, hd, k, pos, kc->rope, 1);
    for (int i = 0; i < R; i++) {
      memcpy(cache_at(kc, kc->K, l, seq[i], pos[i]), k + (size_t)i * kvd, kvd * sizeof(tfm_f));
      memcpy(cache_at(kc, kc->V, l, seq[i], pos[i]), v + (size_t)i * kvd, kvd * sizeof(tfm_f));
    }
#pragma omp parallel
    {
      double *sc = rc_malloc(((size_t)kc->maxlen + 1) * sizeof(double));
#pragma omp for schedule(monotonic: dynamic, 4)
      for (int t = 0; t < R * H; t++) {
        int i = t / H, h = t % H, gk = h / per;
        const tfm_f *K = cache_at(kc, kc->K, l, seq[i], 0) + (size_t)gk * hd,
                    *V = cache_at(kc, kc->V, l, seq[i], 0) + (size_t)gk * hd;
        tfm_attend_row(pos[i] + 1, hd, scale, q + ((size_t)i * H + h) * hd, K, V, kc->kvd, sc,
                       ao + ((size_t)i * H + h) * hd);
      }
      free(sc);
    }
    tfm_gemm(0, 1, R, D, qd, ao, qd, m->params + w->wo, qd, 1, x, D);
    if (w->bo != TFM_ABSENT) tfm_add_bias(R, D, x, m->params + w->bo);
    tfm_rmsnorm(R, D, x, m->params + w->mlp_norm, c->norm_eps, xn, r);
    tfm_gemm(0, 1, R, I, D, xn, D, m->params + w->wg, D, 0, g, I);
    tfm_gemm(0, 1, R, I, D, xn, D, m->params + w->wu, D, 0, u, I);
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < (size_t)R * I; i++) g[i] = tfm_silu(g[i]) * u[i];
    tfm_gemm(0, 1, R, D, I, g, I, m->params + w->wd, I, 1, x, D);
  }
  tfm_rmsnorm(R, D, x, m->params + m->norm, c->norm_eps, out, r);
  free(mem);
}

static double uniform(uint64_t seed, int s, int t) {
  uint64_t key = rein_mix64(rein_mix64(seed) + (uint64_t)s);
  return (rein_mix64(key ^ rein_mix64((uint64_t)t + 0x51ed27ull)) >> 11) * 0x1p-53;
}

typedef struct {
  double y;
  int j;
} Cand;

static int cand_cmp(const void *a, const void *b) {
  const Cand *x = a, *y = b;
  if (x->y != y->y) return x->y > y->y ? -1 : 1;
  return x->j - y->j;
}

/* Sample from logits z (V) with settings s and uniform u; *lp = log p(tok) at temperature 1,
 * *lt = log p_T(tok) at the sampling temperature before the filters (greedy: *lp), *lq = log q(tok)
 * under the sampling distribution.  cand: scratch of V entries. */
static int sample_row(const tfm_f *z, int V, const TfmSampling *s, double u, Cand *cand, double *lp,
                      double *lt, double *lq) {
  double H, lse1 = tfm_row_stats(z, V, &H);
  int tok = 0;
  if (s->temperature <= 0) {
    for (int j = 1; j < V; j++)
      if (z[j] > z[tok]) tok = j;
    *lp = *lt = z[tok] - lse1;
    *lq = 0;
    return tok;
  }
  int n = V;
  for (int j = 0; j < V; j++) cand[j] = (Cand){z[j] / s->temperature, j};
  int sorted = 0;
  if ((s->top_k > 0 && s->top_k < V) || s->top_p < 1) {
    qsort(cand, (size_t)V, sizeof *cand, cand_cmp);
    sorted = 1;
  }
  double mx = sorted ? cand[0].y : -INFINITY;
  if (!sorted)
    for (int j = 0; j < n; j++) mx = cand[j].y > mx ? cand[j].y : mx;
  if (s->top_k > 0 && s->top_k < n) n = s->top_k;
  double tot = 0;
  for (int j = 0; j < n; j++) tot += exp(cand[j].y - mx);
  double totv = tot;   /* p_T's normalizer, over the whole vocabulary */
  for (int j = n; j < V; j++) totv += exp(cand[j].y - mx);
  if (s->top_p < 1) {
    double cum = 0;
    int keep = n;
    for (int j = 0; j < n; j++) {
      cum += exp(cand[j].y - mx) / tot;
      if (cum >= s->top_p) {
        keep = j + 1;
        break;
      }
    }
    n = keep;
    tot = 0;
    for (int j = 0; j < n; j++) tot += exp(cand[j].y - mx);
  }
  double target = u * tot, cum = 0;
  int pick = n - 1;
  for (int j = 0; j < n; j++) {
    cum += exp(cand[j].y - mx);
    if (cum > target) {
      pick = j;
      break;
    }
  }
  tok = cand[pick].j;
  *lp = z[tok] - lse1;
  *lt = s->temperature == 1 ? *lp : cand[pick].y - mx - log(totv);   /* at 1: logp's bits, as before */
  *lq = cand[pick].y - mx - log(tot);
  return tok;
}

void tfm_genout_free(TfmGenOut *o) {
  free(o->tokens);
  free(o->logp);
  free(o->temp_logp);
  free(o->sample_logp);
  free(o->len);
  free(o->stopped);
  memset(o, 0, sizeof *o);
}

static int generate(TfmModel *m, int nseq, const int *off, const int32_t *prompt,
                    const TfmSampling *s, TfmGenOut *out, char *err, size_t errlen) {
  memset(out, 0, sizeof *out);
  const TfmConfig *c = &m->cfg;
  int V = c->vocab, D = c->dim;
  if (nseq < 1 || s->max_new < 1 || off[0] != 0) {
    snprintf(err, errlen, "generate: need at least one prompt and max_new >= 1");
    return -1;
  }
  if (!(s->temperature >= 0) || !(s->top_p > 0 && s->top_p <= 1) || s->top_k < 0) {
    snprintf(err, errlen, "generate: temperature must be >= 0, top_p in (0, 1], top_k >= 0");
    return -1;
  }
  int maxp = 0;
  for (int b = 0; b < nseq; b++) {
    int L = off[b + 1] - off[b];
    if (L < 1) {
      snprintf(err, errlen, "generate: prompt %d is empty", b);
      return -1;
    }
    maxp = L > maxp ? L : maxp;
    for (int i = off[b]; i < off[b + 1]; i++)
      if (prompt[i] < 0 || prompt[i] >= V) {
        snprintf(err, errlen, "generate: prompt %d: token %d is outside the vocabulary (size %d)", b, prompt[i], V);
        return -1;
      }
  }
  Cache kc = {nseq, maxp + s->max_new, c->n_kv_heads * c->head_dim, NULL, NULL, NULL};
  size_t csz = (size_t)c->n_layers * nseq * kc.maxlen * kc.kvd;
  kc.K = rc_malloc((csz + 1) * sizeof(tfm_f));
  kc.V = rc_malloc((csz + 1) * sizeof(tfm_f));
  kc.rope = tfm_rope_table(kc.maxlen, c->head_dim / 2, m->inv_freq);
  int Np = off[nseq];
  int R = Np > nseq ? Np : nseq;
  int *seq = rc_malloc((size_t)R * sizeof(int)), *pos = rc_malloc((size_t)R * sizeof(int)),
      *rowof = rc_malloc((size_t)nseq * sizeof(int));
  int32_t *tok = rc_malloc((size_t)R * sizeof(int32_t));
  tfm_f *hid = rc_malloc(((size_t)R * D + 1) * sizeof(tfm_f)), *hsel = rc_malloc(((size_t)nseq * D + 1) * sizeof(tfm_f)),
        *z = rc_malloc(((size_t)nseq * V + 1) * sizeof(tfm_f));
  int rc = -1, *live = NULL;
  if (!kc.K || !kc.V || !kc.rope || !hid || !z) {
    snprintf(err, errlen, "generate: out of memory for the KV cache");
    goto done;
  }
  size_t on = (size_t)nseq * s->max_new;
  out->nseq = nseq;
  out->max_new = s->max_new;
  out->tokens = rc_calloc(on, sizeof(int32_t));
  out->logp = rc_calloc(on, sizeof(tfm_f));
  out->temp_logp = rc_calloc(on, sizeof(tfm_f));
  out->sample_logp = rc_calloc(on, sizeof(tfm_f));
  out->len = rc_calloc((size_t)nseq, sizeof(int));
  out->stopped = rc_calloc((size_t)nseq, sizeof(int));
  live = rc_malloc((size_t)nseq * sizeof(int));

  /* Prefill: every prompt token is a row; the last one of each prompt samples. */
  for (int b = 0; b < nseq; b++)
    for (int i = off[b]; i < off[b + 1]; i++) {
      seq[i] = b;
      pos[i] = i - off[b];
      tok[i] = prompt[i];
    }
  step(m, &kc, Np, seq, pos, tok, hid);
  int nlive = nseq;
  for (int b = 0; b < nseq; b++) {
    live[b] = b;
    rowof[b] = off[b + 1] - 1;
  }
  for (int t = 0; t < s->max_new && nlive > 0; t++) {
    /* Logits of the live rows: (nlive, V). */
    for (int i = 0; i < nlive; i++) memcpy(hsel + (size_t)i * D, hid + (size_t)rowof[live[i]] * D, D * sizeof(tfm_f));
    tfm_gemm(0, 1, nlive, V, D, hsel, D, m->params + m->head, D, 0, z, V);
#pragma omp parallel
    {
      Cand *cand = rc_malloc((size_t)V * sizeof(Cand));
#pragma omp for schedule(static)
      for (int i = 0; i < nlive; i++) {
        int b = live[i];
        double lp, lt, lq;
        int tk = sample_row(z + (size_t)i * V, V, s, uniform(s->seed, s->seq0 + b, t), cand, &lp, &lt, &lq);
        size_t o = (size_t)b * s->max_new + t;
        out->tokens[o] = tk;
        out->logp[o] = (tfm_f)lp;
        out->temp_logp[o] = (tfm_f)lt;
        out->sample_logp[o] = (tfm_f)lq;
        out->len[b] = t + 1;
        for (int q = 0; q < s->nstop; q++)
          if (s->stop[q] == tk) out->stopped[b] = 1;
      }
      free(cand);
    }
    /* Next rows: the sequences that go on. */
    int n2 = 0;
    for (int i = 0; i < nlive; i++) {
      int b = live[i];
      if (out->stopped[b] || t + 1 >= s->max_new) continue;
      live[n2] = b;
      seq[n2] = b;
      pos[n2] = off[b + 1] - off[b] + t;
      tok[n2] = out->tokens[(size_t)b * s->max_new + t];
      rowof[b] = n2;
      n2++;
    }
    nlive = n2;
    if (nlive) step(m, &kc, nlive, seq, pos, tok, hid);
  }
  rc = 0;
done:
  free(live);
  free(kc.K);
  free(kc.V);
  free(kc.rope);
  free(seq);
  free(pos);
  free(rowof);
  free(tok);
  free(hid);
  free(hsel);
  free(z);
  return rc;
}

int tfm_generate(TfmModel *m, int nseq, const int *off, const int32_t *prompt,
                 const TfmSampling *s, TfmGenOut *out, char *err, size_t errlen) {
  tfm_fp_begin();
  int rc = generate(m, nseq, off, prompt, s, out, err, errlen);
  tfm_fp_end();
  return rc;
}
