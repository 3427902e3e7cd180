/* trn_shard.c — what each rank of a data-parallel run holds of a step, and how the shares become
 * the whole again (docs/distributed.md).  The MPI calls themselves are trn_dist.h's.
 *
 * A step's groups are split into contiguous ranges, one per rank, in rank order: so whatever is
 * gathered from the ranks and concatenated in rank order is in group order, exactly the array a
 * single process would hold.  Exploration is split the same way by prompt (a prompt is a group).
 * Explored shares travel as one byte string each (rollout_pack); every rank rebuilds the whole
 * batch, so every rank holds the same experience buffer as a single process.
 */
#include "trn_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "trn_dist.h"

void trn_shard_range(int n, int r, int R, int *a, int *b) {
  *a = (int)((int64_t)n * r / R);
  *b = (int)((int64_t)n * (r + 1) / R);
}

void trn_shard_groups(int ngroups, int mg, int r, int R, int *ga, int *gb) {
  int nmb = (ngroups + mg - 1) / mg;
  if (nmb >= R) {   /* whole micro-batches of the single process's split */
    int a, b;
    trn_shard_range(nmb, r, R, &a, &b);
    *ga = a * mg, *gb = b * mg < ngroups ? b * mg : ngroups;
  } else {
    trn_shard_range(ngroups, r, R, ga, gb);
  }
}

/* A growing byte string. */
typedef struct {
  char *p;
  size_t n, cap;
} Bytes;

static void put(Bytes *b, const void *src, size_t n) {
  if (b->n + n > b->cap) {
    b->cap = 2 * (b->n + n) + 64;
    b->p = rc_realloc(b->p, b->cap);
  }
  if (n) memcpy(b->p + b->n, src, n);
  b->n += n;
}

/* Reads N bytes at *P (advanced) into DST. */
static void get(const char **p, void *dst, size_t n) {
  if (n) memcpy(dst, *p, n);
  *p += n;
}

/* R as bytes: the header, the names of its extra fields NAMES (NX of them), then the arrays. */
static void rollout_pack(const TrnRollout *r, int nx, char (*names)[48], Bytes *b) {
  int32_t h[5] = {r->nseq, r->group, r->nuin, nx, r->nextra};
  int64_t ev[2] = {r->e, r->version};
  put(b, ev, sizeof ev);
  put(b, h, sizeof h);
  put(b, &r->gen_s, sizeof r->gen_s);
  put(b, names, (size_t)nx * 48);
  size_t ns = (size_t)r->nseq, np = (size_t)r->poff[ns], nr = (size_t)r->roff[ns];
  put(b, r->poff, (ns + 1) * sizeof(int));
  put(b, r->roff, (ns + 1) * sizeof(int));
  put(b, r->prompt, np * sizeof(int32_t));
  put(b, r->resp, nr * sizeof(int32_t));
  put(b, r->old_logp, nr * sizeof(float));
  put(b, r->reward, ns * sizeof(float));
  put(b, r->acc, ns * sizeof(float));
  put(b, r->trunc, ns);
  put(b, r->uin, (size_t)r->nuin * ns * sizeof(float));
  put(b, r->extra, (size_t)r->nextra * ns * sizeof(float));
}

int trn_shard_gather_rollout(Trainer *tr, const TrnRollout *share, int nx0, TrnRollout *whole, char *err,
                             size_t errlen) {
  int R = trn_dist_size();
  Bytes b = {0};
  rollout_pack(share, tr->nxname, tr->xname, &b);
  tr->nxname = nx0;   /* the names before this batch: the shares' new ones join in rank order */
  void *all = NULL;
  size_t *counts = rc_malloc((size_t)R * sizeof *counts);
  if (trn_dist_allgather(b.p, b.n, &all, counts, err, errlen)) return free(b.p), free(counts), -1;
  free(b.p);
  /* the shares' headers first: sizes of the whole */
  const char **at = rc_malloc((size_t)R * sizeof *at);
  int32_t (*h)[5] = rc_malloc((size_t)R * sizeof *h);
  int64_t ev[2] = {0, 0};
  int nseq = 0, np = 0, nr = 0;
  double gen_s = 0;
  TrnRollout w = {0};
  size_t off = 0;
  for (int r = 0; r < R; r++) {
    const char *p = (const char *)all + off;
    off += counts[r];
    get(&p, ev, sizeof ev);
    get(&p, h[r], sizeof h[r]);
    double g;
    get(&p, &g, sizeof g);
    gen_s = g > gen_s ? g : gen_s;   /* the ranks generate at the same time */
    /* the extra fields' names in the order of their first appearance, rank by rank */
    for (int k = 0; k < h[r][3]; k++, p += 48) {
      int j = 0;
      while (j < tr->nxname && strcmp(tr->xname[j], p)) j++;
      if (j == tr->nxname) {
        if (j == TRN_MAX_XNAMES)
          return free(all), free(counts), free(at), free(h),
                 snprintf(err, errlen, "reward command '%s': more than %d different extra fields in the run",
                          tr->o.reward_cmd, TRN_MAX_XNAMES), -1;
        snprintf(tr->xname[tr->nxname++], sizeof tr->xname[0], "%s", p);
      }
    }
    at[r] = p;
    const int *po = (const int *)p, *ro = po + h[r][0] + 1;
    nseq += h[r][0], np += po[h[r][0]], nr += ro[h[r][0]];
  }
  w.e = ev[0], w.version = ev[1], w.nseq = nseq, w.group = h[0][1], w.nuin = h[0][2], w.gen_s = gen_s;
  w.poff = rc_calloc((size_t)nseq + 1, sizeof(int));
  w.roff = rc_calloc((size_t)nseq + 1, sizeof(int));
  w.prompt = rc_malloc((size_t)np * sizeof(int32_t) + 1);
  w.resp = rc_malloc((size_t)nr * sizeof(int32_t) + 1);
  w.old_logp = rc_malloc((size_t)nr * sizeof(float) + 1);
  w.reward = rc_malloc((size_t)nseq * sizeof(float) + 1);
  w.acc = rc_malloc((size_t)nseq * sizeof(float) + 1);
  w.trunc = rc_malloc((size_t)nseq + 1);
  w.uin = rc_malloc((size_t)w.nuin * (size_t)nseq * sizeof(float) + 1);
  if (tr->nxname) {
    w.nextra = tr->nxname;
    w.extra = rc_malloc((size_t)nseq * (size_t)w.nextra * sizeof(float));
    for (size_t i = 0; i < (size_t)nseq * (size_t)w.nextra; i++) w.extra[i] = NAN;
  }
  int s0 = 0;
  for (int r = 0; r < R; r++) {
    const char *p = at[r];
    int ns = h[r][0], nx = h[r][3], ne = h[r][4];
    int *po = rc_malloc(((size_t)ns + 1) * sizeof(int)), *ro = rc_malloc(((size_t)ns + 1) * sizeof(int));
    get(&p, po, ((size_t)ns + 1) * sizeof(int));
    get(&p, ro, ((size_t)ns + 1) * sizeof(int));
    for (int s = 0; s < ns; s++) {
      w.poff[s0 + s + 1] = w.poff[s0] + po[s + 1];
      w.roff[s0 + s + 1] = w.roff[s0] + ro[s + 1];
    }
    get(&p, w.prompt + w.poff[s0], (size_t)po[ns] * sizeof(int32_t));
    get(&p, w.resp + w.roff[s0], (size_t)ro[ns] * sizeof(int32_t));
    get(&p, w.old_logp + w.roff[s0], (size_t)ro[ns] * sizeof(float));
    get(&p, w.reward + s0, (size_t)ns * sizeof(float));
    get(&p, w.acc + s0, (size_t)ns * sizeof(float));
    get(&p, w.trunc + s0, (size_t)ns);
    for (int k = 0; k < w.nuin; k++) get(&p, w.uin + (size_t)k * (size_t)nseq + s0, (size_t)ns * sizeof(float));
    /* field k of the share is its name k's column of the whole */
    const char *names = at[r] - (size_t)nx * 48;
    for (int s = 0; s < ns; s++)
      for (int k = 0; k < ne; k++) {
        float v;
        get(&p, &v, sizeof v);
        int j = 0;
        while (strcmp(tr->xname[j], names + (size_t)k * 48)) j++;
        w.extra[(size_t)(s0 + s) * (size_t)w.nextra + (size_t)j] = v;
      }
    free(po), free(ro);
    s0 += ns;
  }
  free(all), free(counts), free(at), free(h);
  *whole = w;
  return 0;
}

int trn_shard_gather_floats(float *a, const int *bound, char *err, size_t errlen) {
  int me = trn_dist_rank(), R = trn_dist_size();
  if (R == 1) return 0;
  void *all = NULL;
  size_t *counts = rc_malloc((size_t)R * sizeof *counts);
  int rc = trn_dist_allgather(a + bound[me], (size_t)(bound[me + 1] - bound[me]) * sizeof(float), &all, counts,
                              err, errlen);
  if (!rc) {
    size_t n = 0;
    for (int r = 0; r < R; r++) n += counts[r];
    if (n != (size_t)bound[R] * sizeof(float))
      rc = -1, snprintf(err, errlen, "internal error: the ranks' tokens do not make the batch");
    else
      memcpy(a, all, n);
  }
  free(all), free(counts);
  return rc;
}
