/* trn_buffer.c — the experience buffer's rollouts: freeing one, and the buffer file of a
 * checkpoint (buffer.bin: binary, little-endian, every count and offset checked on read, bad
 * files reported with the path and the field).  The loop (trn_loop.c) fills the buffer and the
 * checkpoints (trn_ckpt.c) save and restore it through these functions.
 */
#include "trn_internal.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void trn_rollout_free(TrnRollout *r) {
  free(r->poff);
  free(r->prompt);
  free(r->roff);
  free(r->resp);
  free(r->old_logp);
  free(r->reward);
  free(r->acc);
  free(r->trunc);
  free(r->uin);
  memset(r, 0, sizeof *r);
}

/* ---- the buffer file ---------------------------------------------------------------------- */

/* REINBUF2 adds each rollout's user inputs after gen_s: int32 nuin, then nuin * nseq floats;
 * REINBUF1 (no user inputs) is still read. */
#define BUF_MAGIC "REINBUF2"
#define BUF_MAGIC_V1 "REINBUF1"
#define BAD(...) (snprintf(err, errlen, __VA_ARGS__), -1)

static int wr(FILE *f, const void *p, size_t n) { return n == 0 || fwrite(p, 1, n, f) == n ? 0 : -1; }

int trn_buffer_save(const Trainer *tr, const char *path, char *err, size_t errlen) {
  char tmp[TRN_PATH + 96];
  FILE *f = rc_open_tmp(path, tmp, sizeof tmp, err, errlen);
  if (!f) return -1;
  int bad = wr(f, BUF_MAGIC, 8);
  int32_t n = tr->nbuf;
  bad |= wr(f, &n, 4);
  for (int i = 0; i < tr->nbuf; i++) {
    const TrnRollout *r = &tr->buf[i];
    int32_t h[2] = {r->nseq, r->group};
    bad |= wr(f, &r->e, 8) | wr(f, &r->version, 8) | wr(f, h, 8);
    bad |= wr(f, r->poff, 4 * ((size_t)r->nseq + 1)) | wr(f, r->prompt, 4 * (size_t)r->poff[r->nseq]);
    bad |= wr(f, r->roff, 4 * ((size_t)r->nseq + 1)) | wr(f, r->resp, 4 * (size_t)r->roff[r->nseq]);
    bad |= wr(f, r->old_logp, 4 * (size_t)r->roff[r->nseq]);
    bad |= wr(f, r->reward, 4 * (size_t)r->nseq) | wr(f, r->acc, 4 * (size_t)r->nseq) | wr(f, r->trunc, (size_t)r->nseq);
    bad |= wr(f, &r->gen_s, 8);
    int32_t nu = r->nuin;
    bad |= wr(f, &nu, 4) | wr(f, r->uin, 4 * (size_t)r->nuin * (size_t)r->nseq);
  }
  return rc_commit_file(f, bad, tmp, path, err, errlen);
}

typedef struct {
  const unsigned char *p;
  size_t n, at;
  const char *path;
  int k;   /* rollout index, for messages */
} Rd;

static int rd(Rd *r, void *dst, size_t n, const char *field, char *err, size_t errlen) {
  if (n > r->n - r->at) {
    snprintf(err, errlen, "%s: rollout %d: field '%s': truncated file", r->path, r->k, field);
    return -1;
  }
  memcpy(dst, r->p + r->at, n);
  r->at += n;
  return 0;
}

/* An offsets array: starts at 0, non-decreasing, ends within the file. */
static int offsets_ok(Rd *r, const int *o, int n, int min_step, const char *field, char *err, size_t errlen) {
  if (o[0] != 0) return snprintf(err, errlen, "%s: rollout %d: field '%s': does not start at 0", r->path, r->k, field), -1;
  for (int i = 0; i < n; i++)
    if ((int64_t)o[i + 1] - o[i] < min_step || o[i + 1] > (int)((r->n - r->at) / 4 + 1))
      return snprintf(err, errlen, "%s: rollout %d: field '%s': bad offset at %d", r->path, r->k, field, i + 1), -1;
  return 0;
}

static int load_rollout(Rd *d, TrnRollout *r, int vocab, int max_pos, int v1, int nuin, char *err, size_t errlen) {
  int32_t h[2];
  if (rd(d, &r->e, 8, "e", err, errlen) || rd(d, &r->version, 8, "version", err, errlen) ||
      rd(d, h, 8, "nseq", err, errlen))
    return -1;
  if (h[0] < 1 || h[1] < 1 || h[0] % h[1] || (size_t)h[0] > d->n / 4)
    return snprintf(err, errlen, "%s: rollout %d: field 'nseq': bad sizes (%d sequences, groups of %d)", d->path, d->k,
                    h[0], h[1]), -1;
  r->nseq = h[0], r->group = h[1];
  size_t ns = (size_t)r->nseq;
  r->poff = rc_malloc(4 * (ns + 1));
  r->roff = rc_malloc(4 * (ns + 1));
  if (rd(d, r->poff, 4 * (ns + 1), "poff", err, errlen) || offsets_ok(d, r->poff, r->nseq, 1, "poff", err, errlen))
    return -1;
  r->prompt = rc_malloc(4 * (size_t)r->poff[ns] + 1);
  if (rd(d, r->prompt, 4 * (size_t)r->poff[ns], "prompt", err, errlen)) return -1;
  if (rd(d, r->roff, 4 * (ns + 1), "roff", err, errlen) || offsets_ok(d, r->roff, r->nseq, 1, "roff", err, errlen))
    return -1;
  size_t nt = (size_t)r->roff[ns];
  r->resp = rc_malloc(4 * nt + 1);
  r->old_logp = rc_malloc(4 * nt + 1);
  r->reward = rc_malloc(4 * ns);
  r->acc = rc_malloc(4 * ns);
  r->trunc = rc_malloc(ns);
  if (rd(d, r->resp, 4 * nt, "resp", err, errlen) || rd(d, r->old_logp, 4 * nt, "old_logp", err, errlen) ||
      rd(d, r->reward, 4 * ns, "reward", err, errlen) || rd(d, r->acc, 4 * ns, "acc", err, errlen) ||
      rd(d, r->trunc, ns, "trunc", err, errlen) || rd(d, &r->gen_s, 8, "gen_s", err, errlen))
    return -1;
  int32_t nu = 0;
  if (!v1 && rd(d, &nu, 4, "nuin", err, errlen)) return -1;
  if (nu != nuin)
    return snprintf(err, errlen, "%s: rollout %d: field 'nuin': %d user inputs, the objective declares %d", d->path,
                    d->k, nu, nuin), -1;
  r->nuin = nu;
  r->uin = rc_malloc(4 * (size_t)nu * ns + 1);
  if (rd(d, r->uin, 4 * (size_t)nu * ns, "uin", err, errlen)) return -1;
  for (size_t i = 0; i < (size_t)nu * ns; i++)
    if (!isfinite(r->uin[i]))
      return snprintf(err, errlen, "%s: rollout %d: field 'uin': %g is not finite", d->path, d->k, r->uin[i]), -1;
  for (size_t i = 0; i < (size_t)r->poff[ns]; i++)
    if (r->prompt[i] < 0 || r->prompt[i] >= vocab)
      return snprintf(err, errlen, "%s: rollout %d: field 'prompt': token %d outside the vocabulary", d->path, d->k,
                      r->prompt[i]), -1;
  for (size_t i = 0; i < nt; i++) {
    if (r->resp[i] < 0 || r->resp[i] >= vocab)
      return snprintf(err, errlen, "%s: rollout %d: field 'resp': token %d outside the vocabulary", d->path, d->k,
                      r->resp[i]), -1;
    if (!(r->old_logp[i] <= 0))
      return snprintf(err, errlen, "%s: rollout %d: field 'old_logp': %g is not a log-probability", d->path, d->k,
                      r->old_logp[i]), -1;
  }
  for (size_t i = 0; i < ns; i++) {
    if (!isfinite(r->reward[i]))
      return snprintf(err, errlen, "%s: rollout %d: field 'reward': %g is not finite", d->path, d->k, r->reward[i]), -1;
    if (!(r->acc[i] >= 0 && r->acc[i] <= 1))
      return snprintf(err, errlen, "%s: rollout %d: field 'acc': %g is not in [0, 1]", d->path, d->k, r->acc[i]), -1;
    if (r->trunc[i] > 1)
      return snprintf(err, errlen, "%s: rollout %d: field 'trunc': %d is not 0 or 1", d->path, d->k, r->trunc[i]), -1;
    int len = (r->poff[i + 1] - r->poff[i]) + (r->roff[i + 1] - r->roff[i]);
    if (len > max_pos)
      return snprintf(err, errlen, "%s: rollout %d: field 'roff': sequence %zu has %d tokens, the model %d positions",
                      d->path, d->k, i, len, max_pos), -1;
  }
  return 0;
}

int trn_buffer_load(Trainer *tr, const char *path, char *err, size_t errlen) {
  FILE *f = fopen(path, "rb");
  if (!f) return snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno)), -1;
  size_t cap = 1 << 16, n = 0;
  unsigned char *p = rc_malloc(cap);
  for (size_t k; (k = fread(p + n, 1, cap - n, f)) > 0;) {
    n += k;
    if (n == cap) p = rc_realloc(p, cap *= 2);
  }
  fclose(f);
  Rd d = {p, n, 0, path, 0};
  int32_t cnt = 0;
  int rc = 0;
  int v1 = n >= 8 && !memcmp(p, BUF_MAGIC_V1, 8);
  if (n < 12 || (memcmp(p, BUF_MAGIC, 8) && !v1)) {
    snprintf(err, errlen, "%s: not a Rein experience buffer (bad magic)", path);
    rc = -1;
  } else {
    d.at = 8;
    memcpy(&cnt, p + 8, 4);
    d.at = 12;
    if (cnt < 0 || (size_t)cnt > n / 16) {
      snprintf(err, errlen, "%s: field 'count': %d rollouts cannot fit in %zu bytes", path, cnt, n);
      rc = -1;
    }
  }
  for (int i = 0; i < cnt && !rc; i++) {
    TrnRollout r = {0};
    d.k = i;
    rc = load_rollout(&d, &r, tr->m->cfg.vocab, tr->m->cfg.max_pos, v1, tr->d->nuinputs, err, errlen);
    if (!rc && r.e != tr->t + 1 + i) {
      snprintf(err, errlen, "%s: rollout %d: field 'e': explore step %lld does not follow train step %lld", path, i,
               (long long)r.e, (long long)tr->t);
      rc = -1;
    } else if (!rc && (r.nseq != tr->o.batch_prompts * tr->o.group || r.group != tr->o.group)) {
      snprintf(err, errlen, "%s: rollout %d: field 'nseq': %d sequences in groups of %d, the run has %d x %d", path, i,
               r.nseq, r.group, tr->o.batch_prompts, tr->o.group);
      rc = -1;
    }
    if (rc) {
      trn_rollout_free(&r);
      break;
    }
    if (tr->nbuf == tr->capbuf) {
      tr->capbuf = tr->capbuf ? 2 * tr->capbuf : 8;
      tr->buf = rc_realloc(tr->buf, (size_t)tr->capbuf * sizeof *tr->buf);
    }
    tr->buf[tr->nbuf++] = r;
  }
  if (!rc && d.at != n) {
    snprintf(err, errlen, "%s: %zu bytes after the last rollout", path, n - d.at);
    rc = -1;
  }
  free(p);
  return rc;
}
