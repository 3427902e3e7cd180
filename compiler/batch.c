/* batch.c — the batch JSON reader, on jansson (Debian's libjansson).
 *
 *     {"seed": 1, "step": 0,
 *      "groups": [[{"reward": 1.0, "logp": [...], "old_logp": [...], "ref_logp": [...],
 *                   "rollout_logp": [...], "entropy": [...], "truncated": false, "lag": 0,
 *                   "inputs": {"score": 0.3, "value": [...]}}, ...], ...]}
 *
 * Strict on purpose: a batch is produced by programs, so a typo ("rewrad"), a missing field the
 * objective reads, a length mismatch between token arrays, a non-number or a value outside float32
 * is an error naming group, sequence and field, never a silently different loss.  Fields the
 * objective does not read may be absent.  The length of a sequence is that of its first token
 * array in the order logp, entropy, old_logp, ref_logp, rollout_logp, then declared token inputs.
 */
#include "batch.h"

#include "rein/common.h"

#include <float.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
  const char *path;
  FILE *err;
  int gi, si;  /* current group / sequence, -1 if none */
} Rd;

static bool fail(Rd *r, const char *field, const char *fmt, ...) {
  fprintf(r->err, "%s: error: ", r->path);
  if (r->gi >= 0) fprintf(r->err, "group %d, ", r->gi);
  if (r->si >= 0) fprintf(r->err, "sequence %d, ", r->si);
  if (field) fprintf(r->err, "field `%s`: ", field);
  va_list ap;
  va_start(ap, fmt);
  vfprintf(r->err, fmt, ap);
  va_end(ap);
  fputc('\n', r->err);
  return false;
}

void bt_uses(const IrGraph *g, bool used_in[IN_COUNT], bool *used_uin, bool *uses_uniform) {
  memset(used_in, 0, sizeof(bool) * IN_COUNT);
  for (int i = 0; i < g->nuinputs; i++) used_uin[i] = false;
  *uses_uniform = false;
  for (int i = 0; i < g->nn; i++) {
    const IrNode *n = &g->n[i];
    if (n->op == IR_INPUT) used_in[n->idx] = true;
    if (n->op == IR_UINPUT) used_uin[n->idx] = true;
    if (n->op == IR_UNIFORM) *uses_uniform = true;
  }
}

static bool finite_f32(Rd *r, const char *field, json_t *v, int entry, double *out) {
  if (!json_is_number(v)) {
    if (entry >= 0) return fail(r, field, "entry %d is not a number", entry);
    return fail(r, field, "expected a number");
  }
  double x = json_number_value(v);
  if (!bi_fits_f32(x)) {
    if (entry >= 0) return fail(r, field, "entry %d (%.9g) is not a finite float32 value", entry, x);
    return fail(r, field, "%.9g is not a finite float32 value", x);
  }
  *out = x;
  return true;
}

static bool get_u64(Rd *r, json_t *root, const char *key, bool need, uint64_t *out) {
  json_t *v = json_object_get(root, key);
  *out = 0;
  if (!v) return need ? fail(r, key, "missing (the objective calls uniform(), which needs it)") : true;
  if (!json_is_integer(v) || json_integer_value(v) < 0)
    return fail(r, key, "expected a non-negative integer");
  *out = (uint64_t)json_integer_value(v);
  return true;
}

/* The keys a sequence object may have, in the order the unknown-field message lists them. */
static const char *const seq_keys[] = {"reward", "logp", "old_logp", "ref_logp", "rollout_logp", "entropy",
                                       "truncated", "lag", "inputs", NULL};

static bool known_seq_key(const char *k) {
  for (int i = 0; seq_keys[i]; i++)
    if (!strcmp(seq_keys[i], k)) return true;
  return false;
}

/* First pass over the groups: shapes.  Sets the sequence lengths in LEN (nseqs entries). */
static bool shapes(Rd *r, const IrGraph *g, json_t *groups, Batch *b, int **lens) {
  size_t ng = json_array_size(groups);
  int ns = 0;
  for (size_t gi = 0; gi < ng; gi++) {
    r->gi = (int)gi;
    json_t *grp = json_array_get(groups, gi);
    if (!json_is_array(grp)) return fail(r, NULL, "expected an array of sequences");
    if (json_array_size(grp) == 0) return fail(r, NULL, "a group needs at least one sequence");
    if (json_array_size(grp) > (1u << 24)) return fail(r, NULL, "too many sequences");
    ns += (int)json_array_size(grp);
    if (ns > (1 << 26)) return fail(r, NULL, "too many sequences in the batch");
  }
  r->gi = -1;
  b->ngroups = (int)ng;
  b->nseqs = ns;
  b->grp_seq = ir_xcalloc((size_t)ng + 1, sizeof(int));
  b->seq_grp = ir_xcalloc((size_t)ns, sizeof(int));
  b->seq_tok = ir_xcalloc((size_t)ns + 1, sizeof(int));
  *lens = ir_xcalloc((size_t)ns, sizeof(int));
  long long nt = 0;
  int s = 0;
  for (size_t gi = 0; gi < ng; gi++) {
    r->gi = (int)gi;
    json_t *grp = json_array_get(groups, gi);
    b->grp_seq[gi] = s;
    for (size_t si = 0; si < json_array_size(grp); si++, s++) {
      r->si = (int)si;
      json_t *sq = json_array_get(grp, si);
      if (!json_is_object(sq)) return fail(r, NULL, "expected an object");
      const char *key;
      json_t *val;
      json_object_foreach(sq, key, val) {
        if (!known_seq_key(key)) {
          char known[256] = "";
          for (int i = 0; seq_keys[i]; i++)
            snprintf(known + strlen(known), sizeof known - strlen(known), "%s%s", i ? ", " : "", seq_keys[i]);
          return fail(r, key, "unknown field (known: %s)", known);
        }
      }
      json_t *ui = json_object_get(sq, "inputs");
      if (ui && !json_is_object(ui)) return fail(r, "inputs", "expected an object");
      if (ui) {
        json_object_foreach(ui, key, val) {
          int k = -1;
          for (int i = 0; i < g->nuinputs; i++)
            if (!strcmp(g->uinputs[i].name, key)) k = i;
          if (k < 0) return fail(r, key, "the objective declares no input of this name");
        }
      }
      /* the length: the first token array present; the token fields are the built-in inputs
       * before pos, in the input list's order (objective.h), which is the order that defines a
       * sequence's length */
      const char *first = NULL;
      long long len = -1;
      for (int f = 0; f < IN_POS; f++) {
        const char *name = bi_inputs[f].name;
        json_t *a = json_object_get(sq, name);
        if (!a) continue;
        if (!json_is_array(a)) return fail(r, name, "expected an array of numbers");
        long long n = (long long)json_array_size(a);
        if (len < 0) len = n, first = name;
        else if (n != len)
          return fail(r, name, "has %lld entries, but `%s` has %lld", n, first, len);
      }
      for (int i = 0; i < g->nuinputs; i++) {
        if (g->uinputs[i].level != LV_TOKEN || !ui) continue;
        json_t *a = json_object_get(ui, g->uinputs[i].name);
        if (!a) continue;
        if (!json_is_array(a)) return fail(r, g->uinputs[i].name, "expected an array of numbers");
        long long n = (long long)json_array_size(a);
        if (len < 0) len = n, first = g->uinputs[i].name;
        else if (n != len)
          return fail(r, g->uinputs[i].name, "has %lld entries, but `%s` has %lld", n, first, len);
      }
      if (len < 0) return fail(r, NULL, "no token array (logp, entropy, ...): its length is unknown");
      (*lens)[s] = (int)len;
      b->seq_grp[s] = (int)gi;
      b->seq_tok[s] = (int)nt;
      nt += len;
      if (nt > (1LL << 30)) return fail(r, NULL, "too many tokens in the batch");
    }
    r->si = -1;
  }
  r->gi = -1;
  b->grp_seq[ng] = s;
  b->seq_tok[ns] = (int)nt;
  b->ntoks = (int)nt;
  b->tok_seq = ir_xcalloc((size_t)nt, sizeof(int));
  for (int q = 0; q < ns; q++)
    for (int t = b->seq_tok[q]; t < b->seq_tok[q + 1]; t++) b->tok_seq[t] = q;
  return true;
}

/* Reads token array A of field NAME (input K, or -1 for a user input).  Log-probabilities are at
 * most 0 and entropies at least 0: a batch that breaks that is a mistake upstream (logits, or a
 * sign), not data to train on. */
static bool read_tokens(Rd *r, int k, const char *name, json_t *a, double *dst) {
  for (size_t t = 0; t < json_array_size(a); t++) {
    if (!finite_f32(r, name, json_array_get(a, t), (int)t, &dst[t])) return false;
    bool logp = k == IN_LOGP || k == IN_OLD_LOGP || k == IN_REF_LOGP || k == IN_ROLLOUT_LOGP;
    if (logp && dst[t] > 0)
      return fail(r, name, "entry %d (%.9g) is positive: a log-probability is at most 0", (int)t, dst[t]);
    if (k == IN_ENTROPY && dst[t] < 0)
      return fail(r, name, "entry %d (%.9g) is negative: an entropy is at least 0", (int)t, dst[t]);
  }
  return true;
}

/* Second pass: values of the fields the objective uses. */
static bool values(Rd *r, const IrGraph *g, json_t *groups, Batch *b, const bool *used_in,
                   const bool *used_uin) {
  for (int k = 0; k < IN_COUNT; k++) {
    if (!used_in[k] || k == IN_POS || k == IN_LEN) continue;
    b->in[k] = ir_xcalloc((size_t)(bi_inputs[k].level == LV_TOKEN ? b->ntoks : b->nseqs), sizeof(double));
  }
  for (int k = 0; k < g->nuinputs; k++)
    if (used_uin[k])
      b->uin[k] = ir_xcalloc((size_t)(g->uinputs[k].level == LV_TOKEN ? b->ntoks : b->nseqs), sizeof(double));
  for (int s = 0; s < b->nseqs; s++) {
    r->gi = b->seq_grp[s];
    r->si = s - b->grp_seq[r->gi];
    json_t *sq = json_array_get(json_array_get(groups, (size_t)r->gi), (size_t)r->si);
    for (int k = 0; k < IN_COUNT; k++) {
      if (!b->in[k]) continue;
      const char *name = bi_inputs[k].name;
      json_t *v = json_object_get(sq, name);
      if (!v) return fail(r, name, "missing (the objective uses it)");
      if (bi_inputs[k].level == LV_TOKEN) {
        if (!read_tokens(r, k, name, v, b->in[k] + b->seq_tok[s])) return false;
      } else if (k == IN_TRUNCATED) {
        if (!json_is_boolean(v)) return fail(r, name, "expected true or false");
        b->in[k][s] = json_is_true(v);
      } else if (!finite_f32(r, name, v, -1, &b->in[k][s])) {
        return false;
      }
    }
    json_t *ui = json_object_get(sq, "inputs");
    for (int k = 0; k < g->nuinputs; k++) {
      if (!b->uin[k]) continue;
      const char *name = g->uinputs[k].name;
      json_t *v = ui ? json_object_get(ui, name) : NULL;
      if (!v) return fail(r, name, "missing from `inputs` (the objective declares `input %s %s`)",
                          bi_level_names[g->uinputs[k].level], name);
      if (g->uinputs[k].level == LV_TOKEN) {
        if (!read_tokens(r, -1, name, v, b->uin[k] + b->seq_tok[s])) return false;
      } else if (!finite_f32(r, name, v, -1, &b->uin[k][s])) {
        return false;
      }
    }
  }
  r->gi = r->si = -1;
  /* shape inputs */
  if (used_in[IN_POS]) {
    b->in[IN_POS] = ir_xcalloc((size_t)b->ntoks, sizeof(double));
    for (int t = 0; t < b->ntoks; t++) b->in[IN_POS][t] = t - b->seq_tok[b->tok_seq[t]];
  }
  if (used_in[IN_LEN]) {
    b->in[IN_LEN] = ir_xcalloc((size_t)b->nseqs, sizeof(double));
    for (int s = 0; s < b->nseqs; s++) b->in[IN_LEN][s] = b->seq_tok[s + 1] - b->seq_tok[s];
  }
  return true;
}

Batch *bt_read_json(const char *path, const IrGraph *g, FILE *err) {
  Rd r = {path, err, -1, -1};
  json_error_t je;
  char why[4400];
  size_t len;
  char *text = rc_read_file(path, BT_MAX_FILE_BYTES, &len, why, sizeof why);
  if (!text) {
    size_t n = strlen(path);   /* rc_read_file says "PATH: what" */
    fprintf(err, "%s: error: %s\n", path, !strncmp(why, path, n) && !strncmp(why + n, ": ", 2) ? why + n + 2 : why);
    return NULL;
  }
  json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
  free(text);
  if (!root) {
    if (je.line > 0) fprintf(err, "%s:%d:%d: error: %s\n", path, je.line, je.column, je.text);
    else fprintf(err, "%s: error: %s\n", path, je.text);
    return NULL;
  }
  Batch *b = ir_xcalloc(1, sizeof *b);
  b->nuin = g->nuinputs;
  b->uin = ir_xcalloc((size_t)g->nuinputs, sizeof(double *));
  bool used_in[IN_COUNT], uses_uniform;
  bool *used_uin = ir_xcalloc((size_t)g->nuinputs, sizeof(bool));
  bt_uses(g, used_in, used_uin, &uses_uniform);
  int *lens = NULL;
  bool ok = true;
  if (!json_is_object(root)) {
    ok = fail(&r, NULL, "expected a JSON object with a `groups` array");
  } else {
    const char *key;
    json_t *val;
    json_object_foreach(root, key, val) {
      bool tc = false;
      for (int k = 0; k < REIN_NUM_TRAINER_CONSTS; k++) tc |= !strcmp(key, rein_trainer_const_name(k));
      if (strcmp(key, "groups") && strcmp(key, "seed") && !tc) {
        ok = fail(&r, key, "unknown field (known: groups, seed, step, max_new, group_size)");
        break;
      }
    }
    for (int k = 0; k < REIN_NUM_TRAINER_CONSTS && ok; k++) {
      json_t *v = json_object_get(root, rein_trainer_const_name(k));
      b->tconst[k] = NAN;
      if (!v || k == REIN_TC_STEP) continue;   /* step: read below, with the seed */
      if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > (1 << 24))
        ok = fail(&r, rein_trainer_const_name(k), "expected an integer from 0 to 16777216");
      else b->tconst[k] = (double)json_integer_value(v);
    }
    json_t *groups = json_object_get(root, "groups");
    if (ok && !json_is_array(groups)) ok = fail(&r, "groups", "missing, or not an array of groups");
    if (ok && json_array_size(groups) == 0) ok = fail(&r, "groups", "the batch has no groups");
    ok = ok && get_u64(&r, root, "seed", uses_uniform, &b->seed) &&
         get_u64(&r, root, "step", uses_uniform, &b->step);
    if (ok && json_object_get(root, "step")) b->tconst[REIN_TC_STEP] = (double)b->step;
    ok = ok && shapes(&r, g, groups, b, &lens) && values(&r, g, groups, b, used_in, used_uin);
  }
  free(lens);
  free(used_uin);
  json_decref(root);
  if (!ok) {
    bt_free(b);
    return NULL;
  }
  return b;
}

void bt_free(Batch *b) {
  if (!b) return;
  free(b->grp_seq);
  free(b->seq_tok);
  free(b->seq_grp);
  free(b->tok_seq);
  for (int k = 0; k < IN_COUNT; k++) free(b->in[k]);
  for (int k = 0; k < b->nuin; k++) free(b->uin[k]);
  free(b->uin);
  free(b);
}

Batch *bt_alloc(int ngroups, const int *nseq, const int *lens, int nuin, const Level *levels) {
  Batch *b = ir_xcalloc(1, sizeof *b);
  b->ngroups = ngroups;
  b->grp_seq = ir_xcalloc((size_t)ngroups + 1, sizeof(int));
  for (int g = 0; g < ngroups; g++) b->grp_seq[g + 1] = b->grp_seq[g] + nseq[g];
  b->nseqs = b->grp_seq[ngroups];
  b->seq_grp = ir_xcalloc((size_t)b->nseqs, sizeof(int));
  b->seq_tok = ir_xcalloc((size_t)b->nseqs + 1, sizeof(int));
  for (int g = 0; g < ngroups; g++)
    for (int s = b->grp_seq[g]; s < b->grp_seq[g + 1]; s++) b->seq_grp[s] = g;
  for (int s = 0; s < b->nseqs; s++) b->seq_tok[s + 1] = b->seq_tok[s] + lens[s];
  b->ntoks = b->seq_tok[b->nseqs];
  b->tok_seq = ir_xcalloc((size_t)b->ntoks, sizeof(int));
  for (int s = 0; s < b->nseqs; s++)
    for (int t = b->seq_tok[s]; t < b->seq_tok[s + 1]; t++) b->tok_seq[t] = s;
  for (int k = 0; k < IN_COUNT; k++)
    b->in[k] = ir_xcalloc((size_t)(bi_inputs[k].level == LV_TOKEN ? b->ntoks : b->nseqs), sizeof(double));
  for (int t = 0; t < b->ntoks; t++) b->in[IN_POS][t] = t - b->seq_tok[b->tok_seq[t]];
  for (int s = 0; s < b->nseqs; s++) b->in[IN_LEN][s] = lens[s];
  b->nuin = nuin;
  b->uin = ir_xcalloc((size_t)nuin, sizeof(double *));
  for (int k = 0; k < nuin; k++)
    b->uin[k] = ir_xcalloc((size_t)(levels[k] == LV_TOKEN ? b->ntoks : b->nseqs), sizeof(double));
  return b;
}
