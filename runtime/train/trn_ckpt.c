/* trn_ckpt.c — checkpoints of a training run and resuming from them.
 *
 * OUT/ckpt-NNNNNN/ holds everything the loop needs to continue bit-identically on the CPU:
 *   config.json + model.safetensors   the policy (a model directory: `rein model`, --model), in
 *                                     --save-dtype
 *   tokenizer.json, tokenizer_config.json, generation_config.json
 *                                     copied from --model when it has them, so the checkpoint is a
 *                                     model directory with the run's tokenizer (not read on resume:
 *                                     the run's tokenizer is --model's)
 *   optim.safetensors                 AdamW's m, v and step count (F32, exact for float32), and
 *                                     the F32 master weights when the model file was rounded
 *                                     (BF16/F16): resuming continues from them, not the rounding
 *   buffer.bin                        the explored batches not yet trained on (sync_offset)
 *   state.json                        step, next explore step, elapsed time, the run's options,
 *                                     and the size and XXH3-64 of each file above ("files"; the
 *                                     tokenizer files only when present)
 * It is written as OUT/.ckpt-NNNNNN.tmp.PID and renamed; then OUT/latest (the name of the newest
 * checkpoint) is replaced atomically; only then are checkpoints beyond --keep removed.  So a
 * crash at any point leaves the previous checkpoint and `latest` intact.  On resume every file is
 * read and checked for structure first (so a damaged file gets the most precise message), then
 * its checksum is compared with state.json's: a bit flip or a file copied from another checkpoint
 * that still parses is refused rather than resumed from.
 *
 * Sampling and the objective's randomness are counter-based (keyed by seed and step), so no
 * generator state is saved.  On resume the options that shape the computation must equal the
 * checkpoint's; only the eval/save cadence, keep, stop-at, time-limit, save-dtype, threads and
 * explorer-ranks may change (threads changes results: a warning says so).  `steps` may not: the explorer's schedule and the
 * learning-rate schedule depend on it.
 */
#define _GNU_SOURCE
#include "trn_internal.h"
#include "trn_dist.h"

#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define BAD(...) (snprintf(err, errlen, __VA_ARGS__), -1)

/* ---- checkpoints --------------------------------------------------------------------------- */

/* The format written: version 2 records each file's size and XXH3-64 in state.json ("files"),
 * verified on resume; version 1 (no checksums) is still read, with a warning. */
#define CKPT_FORMAT "rein-checkpoint-2"
#define CKPT_FORMAT_V1 "rein-checkpoint-1"
static const char *const ckpt_files[] = {"config.json", "model.safetensors", "optim.safetensors", "buffer.bin"};
#define NCKPT_FILES (int)(sizeof ckpt_files / sizeof *ckpt_files)

/* Checks every file of checkpoint DIR against FILES (state.json's "files", from STATE): the
 * checkpoint's own files, which must be recorded, then the model directory's tokenizer files
 * (trn_model_files) that are recorded (a checkpoint of a model without them has none). */
static int verify_files(const char *dir, const char *state, json_t *files, char *err, size_t errlen) {
  for (int i = 0; i < NCKPT_FILES + TRN_NMODEL_FILES; i++) {
    const char *name = i < NCKPT_FILES ? ckpt_files[i] : trn_model_files[i - NCKPT_FILES];
    json_t *f = json_object_get(files, name);
    if (!f && i >= NCKPT_FILES) continue;
    json_t *bytes = json_object_get(f, "bytes"), *hx = json_object_get(f, "xxh3");
    if (!json_is_integer(bytes) || !json_is_string(hx) || strlen(json_string_value(hx)) != 16)
      return BAD("%s: field 'files.%s': expected {\"bytes\": N, \"xxh3\": \"16 hex digits\"}", state, name);
    char p[TRN_PATH + 128];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    uint64_t h, n;
    if (rc_hash_file(p, &h, &n, err, errlen)) return -1;
    char hex[17];
    snprintf(hex, sizeof hex, "%016llx", (unsigned long long)h);
    if (n != (uint64_t)json_integer_value(bytes) || strcmp(hex, json_string_value(hx)))
      return BAD("%s: checksum mismatch: %llu bytes with XXH3 %s, but %s recorded %lld bytes with XXH3 %s when the "
                 "checkpoint was written (the file was changed or replaced)",
                 p, (unsigned long long)n, hex, state, (long long)json_integer_value(bytes), json_string_value(hx));
  }
  return 0;
}

/* Removes DIR and the files in it (checkpoints hold no subdirectories). */
static void remove_dir(const char *dir) {
  DIR *d = opendir(dir);
  if (!d) return;
  struct dirent *e;
  char p[TRN_PATH + 512];
  while ((e = readdir(d)))
    if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
      snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
      unlink(p);
    }
  closedir(d);
  rmdir(dir);
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* True when NAME is a checkpoint's: ckpt-NNNNNN (fixed width, so names sort by step). */
static int ckpt_name(const char *name) {
  return !strncmp(name, "ckpt-", 5) && strlen(name) == 11 && strspn(name + 5, "0123456789") == 6;
}

/* Removes the oldest OUT/ckpt-* beyond KEEP (names sort by step: fixed width). */
static void prune(const char *out, int keep) {
  if (keep <= 0) return;
  DIR *d = opendir(out);
  if (!d) return;
  char **names = NULL;
  int n = 0, cap = 0;
  struct dirent *e;
  while ((e = readdir(d)))
    if (ckpt_name(e->d_name)) {
      if (n == cap) names = rc_realloc(names, (size_t)(cap = cap ? 2 * cap : 16) * sizeof *names);
      names[n++] = rc_strdup(e->d_name);
    }
  closedir(d);
  if (n) qsort(names, (size_t)n, sizeof *names, cmp_str);
  char p[TRN_PATH + 64];
  for (int i = 0; i < n; i++) {
    if (i < n - keep) {
      snprintf(p, sizeof p, "%s/%s", out, names[i]);
      remove_dir(p);
    }
    free(names[i]);
  }
  free(names);
}

/* True when NAME is a temporary of an interrupted save: .ckpt-NNNNNN.tmp.PID or .old.PID (a
 * checkpoint directory), or FILE.tmp.PID (rc_write_atomic's temporaries). */
static int stale_name(const char *name) {
  const char *t = strstr(name, ".tmp."), *o = strstr(name, ".old.");
  const char *k = t ? t : o;
  if (!k || !k[5] || strspn(k + 5, "0123456789") != strlen(k + 5)) return 0;
  return t || !strncmp(name, ".ckpt-", 6);
}

int trn_ckpt_any(const char *out) {
  DIR *d = opendir(out);
  if (!d) return 0;
  struct dirent *e;
  int any = 0;
  while (!any && (e = readdir(d)))
    any = ckpt_name(e->d_name);
  closedir(d);
  return any;
}

int trn_ckpt_clean(const char *out, char *err, size_t errlen) {
  DIR *d = opendir(out);
  if (!d) return 0;
  struct dirent *e;
  char p[TRN_PATH + 512];
  int n = 0;
  while ((e = readdir(d)))
    if (stale_name(e->d_name)) {
      snprintf(p, sizeof p, "%s/%s", out, e->d_name);
      struct stat st;
      if (lstat(p, &st)) continue;
      if (S_ISDIR(st.st_mode)) remove_dir(p);
      else unlink(p);
      n++;
    }
  closedir(d);
  if (n && rc_fsync_dir(out, err, errlen)) return -1;
  return n;
}

int trn_ckpt_save(Trainer *tr, char *err, size_t errlen) {
  const TrnOpts *o = &tr->o;
  char name[32], dir[TRN_PATH + 64], tmp[TRN_PATH + 96], p[TRN_PATH + 128];
  snprintf(name, sizeof name, "ckpt-%06lld", (long long)tr->t);
  snprintf(dir, sizeof dir, "%s/%s", o->out, name);
  snprintf(tmp, sizeof tmp, "%s/.%s.tmp.%d", o->out, name, (int)getpid());
  remove_dir(tmp);
  int dt = trn_save_dtype(o, tr->m);
  if (tfm_model_save(tr->m, tmp, NULL, dt, err, errlen)) return -1;
  snprintf(p, sizeof p, "%s/optim.safetensors", tmp);
  int rc = tfm_opt_save(tr->m, p, dt != TFM_DT_F32, err, errlen);
  snprintf(p, sizeof p, "%s/buffer.bin", tmp);
  if (!rc) rc = trn_buffer_save(tr, p, err, errlen);
  /* the source model's tokenizer files: the checkpoint is a model directory with its tokenizer */
  if (!rc && o->model[0]) rc = trn_copy_model_files(o->model, tmp, err, errlen);
  if (!rc) {
    json_t *s = json_object();
    json_object_set_new(s, "format", json_string(CKPT_FORMAT));
    json_object_set_new(s, "objective", json_string(tr->d->name));
    json_object_set_new(s, "step", json_integer(tr->t));
    json_object_set_new(s, "next_explore", json_integer(tr->next_e));
    json_object_set_new(s, "time", json_real(trn_elapsed(tr)));
    /* the objective's states (values carried across steps), exactly: the bits of each double */
    json_t *states = json_object();
    for (int k = 0; k < tr->d->nparams; k++) {
      if (tr->d->params[k].kind != REIN_PARAM_STATE) continue;
      uint64_t bits;
      memcpy(&bits, &tr->params[k], 8);
      char hex[17];
      snprintf(hex, sizeof hex, "%016llx", (unsigned long long)bits);
      json_object_set_new(states, tr->d->params[k].name, json_pack("{s:f,s:s}", "value", tr->params[k], "bits", hex));
    }
    json_object_set_new(s, "states", states);
    char *oj = trn_opts_json(o, TRN_CMD_TRAIN);
    json_object_set_new(s, "options", json_loads(oj, 0, NULL));
    free(oj);
    json_t *files = json_object();
    for (int i = 0; !rc && i < NCKPT_FILES + TRN_NMODEL_FILES; i++) {
      const char *fname = i < NCKPT_FILES ? ckpt_files[i] : trn_model_files[i - NCKPT_FILES];
      uint64_t h, n;
      snprintf(p, sizeof p, "%s/%s", tmp, fname);
      struct stat sb;
      if (i >= NCKPT_FILES && stat(p, &sb) && errno == ENOENT) continue;   /* not in the source model */
      if ((rc = rc_hash_file(p, &h, &n, err, errlen))) break;
      char hex[17];
      snprintf(hex, sizeof hex, "%016llx", (unsigned long long)h);
      json_object_set_new(files, fname, json_pack("{s:I,s:s}", "bytes", (json_int_t)n, "xxh3", hex));
    }
    json_object_set_new(s, "files", files);
    char *text = json_dumps(s, JSON_INDENT(1) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(17));
    json_decref(s);
    snprintf(p, sizeof p, "%s/state.json", tmp);
    if (!rc) rc = rc_write_text(p, text, err, errlen);
    free(text);
  }
  if (!rc) {
    /* a checkpoint of the same step (a run extended past its end) is replaced whole */
    char old[TRN_PATH + 96];
    snprintf(old, sizeof old, "%s/.%s.old.%d", o->out, name, (int)getpid());
    int had = rename(dir, old) == 0;
    if (rename(tmp, dir)) {
      snprintf(err, errlen, "%s: cannot rename the checkpoint into place: %s", dir, strerror(errno));
      if (had) rename(old, dir);
      rc = -1;
    } else {
      if (had) remove_dir(old);
      rc = rc_fsync_dir(o->out, err, errlen);   /* the checkpoint's name is on disk */
    }
  }
  if (rc) {
    remove_dir(tmp);
    return -1;
  }
  snprintf(p, sizeof p, "%s/latest", o->out);
  char line[48];
  snprintf(line, sizeof line, "%s\n", name);
  if (rc_write_text(p, line, err, errlen)) return -1;
  prune(o->out, o->keep);
  return 0;
}

/* Options that may differ between a run and its resumption. */
static int may_change(const char *key) {
  static const char *const ok[] = {"eval-every", "save-every", "keep",        "threads",        "out",
                                   "stop-at",    "time-limit", "save-dtype",  "log-samples",    "reward-timeout",
                                   "explorer-ranks", NULL};
  for (int i = 0; ok[i]; i++)
    if (!strcmp(key, ok[i])) return 1;
  return 0;
}

/* Options added after the checkpoint format (their absence from a checkpoint means the default). */
static int added_later(const char *key) {
  static const char *const later[] = {"prompt-field", "messages-field", "answer-field", "reward-cmd", "explorer-ranks",
                                      "old-logp", NULL};
  for (int i = 0; later[i]; i++)
    if (!strcmp(key, later[i])) return 1;
  return 0;
}

/* Cuts OUT/metrics.jsonl back to the records of steps <= STEP (rewritten through a temporary). */
static int cut_metrics(const Trainer *tr, int64_t step, char *err, size_t errlen) {
  char path[TRN_PATH + 64];
  snprintf(path, sizeof path, "%s/metrics.jsonl", tr->o.out);
  FILE *f = fopen(path, "r");
  if (!f) return 0;
  size_t cap = 4096, n = 0;
  char *keep = rc_malloc(cap), *line = NULL;
  size_t lcap = 0;
  long len;
  keep[0] = 0;
  while ((len = rc_read_line(f, &line, &lcap, 64u << 20)) > 0 || len == -2) {
    if (len == -2) {   /* not a line the trainer wrote: it cannot be kept */
      free(line);
      free(keep);
      fclose(f);
      return snprintf(err, errlen, "%s: a line longer than 64 MiB", path), -1;
    }
    json_t *j = json_loads(line, 0, NULL);
    json_t *s = j ? json_object_get(j, "step") : NULL;
    int ok = s && json_is_integer(s) && json_integer_value(s) <= step && line[len - 1] == '\n';
    json_decref(j);
    if (!ok) continue;
    if (n + (size_t)len + 1 > cap) keep = rc_realloc(keep, cap = 2 * (n + (size_t)len + 1));
    memcpy(keep + n, line, (size_t)len + 1);
    n += (size_t)len;
  }
  free(line);
  fclose(f);
  int rc = rc_write_text(path, keep, err, errlen);
  free(keep);
  return rc;
}

int trn_ckpt_load(Trainer *tr, char *err, size_t errlen) {
  const TrnOpts *o = &tr->o;
  char p[TRN_PATH + 128], dir[TRN_PATH + 64];
  snprintf(p, sizeof p, "%s/latest", o->out);
  FILE *f = fopen(p, "r");
  if (!f && trn_ckpt_any(o->out))
    return snprintf(err, errlen,
                    "%s: cannot open: %s (nothing to resume), yet %s holds checkpoints (ckpt-NNNNNN): write the name "
                    "of the one to resume from into %s",
                    p, strerror(errno), o->out, p), -1;
  if (!f) return snprintf(err, errlen, "%s: cannot open: %s (nothing to resume)", p, strerror(errno)), -1;
  char name[64] = "";
  int got = fgets(name, sizeof name, f) != NULL;
  fclose(f);
  name[strcspn(name, "\n")] = 0;
  if (!got || !ckpt_name(name))
    return snprintf(err, errlen, "%s: expected the name of a checkpoint (ckpt-NNNNNN), got '%s'", p, name), -1;
  snprintf(dir, sizeof dir, "%s/%s", o->out, name);
  /* state.json */
  snprintf(p, sizeof p, "%s/state.json", dir);
  json_error_t je;
  if (access(p, F_OK) != 0)
    return snprintf(err, errlen, "%s/latest names %s, which has no state.json (%s)", o->out, name, strerror(errno)), -1;
  size_t slen;
  char *stext = rc_read_file(p, 64u << 20, &slen, err, errlen);
  if (!stext) return -1;
  json_t *s = json_loadb(stext, slen, JSON_REJECT_DUPLICATES, &je);
  free(stext);
  if (!s) return snprintf(err, errlen, "%s:%d:%d: invalid JSON: %s", p, je.line, je.column, je.text), -1;
  if (!json_is_object(s)) {
    json_decref(s);
    return snprintf(err, errlen, "%s: expected a JSON object", p), -1;
  }
  int rc = 0;
  json_t *step = json_object_get(s, "step"), *ne = json_object_get(s, "next_explore"), *tm = json_object_get(s, "time");
  json_t *opts = json_object_get(s, "options"), *fmt = json_object_get(s, "format");
  json_t *obj = json_object_get(s, "objective");
  json_t *files = json_object_get(s, "files");
  int v1 = json_is_string(fmt) && !strcmp(json_string_value(fmt), CKPT_FORMAT_V1);
  if (!json_is_string(fmt) || (!v1 && strcmp(json_string_value(fmt), CKPT_FORMAT)))
    rc = BAD("%s: field 'format': expected \"" CKPT_FORMAT "\" (or \"" CKPT_FORMAT_V1 "\")", p);
  else if (!v1 && !json_is_object(files))
    rc = BAD("%s: field 'files': expected the checkpoint's files with their checksums", p);
  else if (!json_is_integer(step) || json_integer_value(step) < 0)
    rc = BAD("%s: field 'step': expected a non-negative integer", p);
  else if (!json_is_integer(ne) || json_integer_value(ne) <= json_integer_value(step))
    rc = BAD("%s: field 'next_explore': expected an integer above 'step'", p);
  else if (!json_is_number(tm) || json_number_value(tm) < 0)
    rc = BAD("%s: field 'time': expected a non-negative number", p);
  else if (!json_is_string(obj) || strcmp(json_string_value(obj), tr->d->name))
    rc = BAD("%s: field 'objective': the run trains '%s', not '%s'", p,
                  json_is_string(obj) ? json_string_value(obj) : "?", tr->d->name);
  else if (!json_is_object(opts))
    rc = BAD("%s: field 'options': expected an object", p);
  if (!rc) {
    char *now = trn_opts_json(o, TRN_CMD_TRAIN);
    json_t *cur = json_loads(now, 0, NULL);
    free(now);
    /* an option added after checkpoints existed is absent from older ones: the run had its default */
    TrnOpts defo;
    trn_opts_defaults(&defo, TRN_CMD_TRAIN);
    char *dtext = trn_opts_json(&defo, TRN_CMD_TRAIN);
    json_t *defs = json_loads(dtext, 0, NULL);
    free(dtext);
    const char *key;
    json_t *v;
    json_object_foreach(cur, key, v) {
      if (may_change(key)) continue;
      json_t *was = json_object_get(opts, key);
      if (!was && added_later(key)) was = json_object_get(defs, key);
      if (!was || !json_equal(was, v)) {
        size_t fl = JSON_ENCODE_ANY | JSON_REAL_PRECISION(15);   /* 3e-4, not 0.00029999999999999997 */
        char *a = was ? json_dumps(was, fl) : rc_strdup("(absent)"), *b = json_dumps(v, fl);
        snprintf(err, errlen, "%s: option '%s' was %s in the run, now %s: resume with the run's options", p, key, a, b);
        free(a);
        free(b);
        rc = -1;
        break;
      }
    }
    json_t *th = json_object_get(opts, "threads");
    if (!rc && th && json_is_integer(th) && json_integer_value(th) != o->threads)
      fprintf(stderr, "%s: warning: --threads differs from the run's (%lld): results will not be bit-identical to an "
                      "uninterrupted run\n", tr->prog, (long long)json_integer_value(th));
    json_decref(cur);
    json_decref(defs);
  }
  char state[TRN_PATH + 128];
  snprintf(state, sizeof state, "%s", p);
  json_t *sums = v1 ? NULL : json_incref(files);
  if (!rc && v1)
    fprintf(stderr, "%s: warning: %s: a checkpoint without checksums (written by an older rein)\n", tr->prog, p);
  /* the states: every state of the objective, with its exact bits (older checkpoints have no
   * field 'states': then the objective must have none) */
  json_t *states = json_object_get(s, "states");
  for (int k = 0; !rc && k < tr->d->nparams; k++) {
    const char *nm = tr->d->params[k].name;
    if (tr->d->params[k].kind != REIN_PARAM_STATE) continue;
    json_t *e = states ? json_object_get(states, nm) : NULL, *bits = e ? json_object_get(e, "bits") : NULL;
    const char *h = json_is_string(bits) ? json_string_value(bits) : "";
    char *end;
    unsigned long long u = strtoull(h, &end, 16);
    double v;
    memcpy(&v, &(uint64_t){u}, 8);
    if (strlen(h) != 16 || *end || !isfinite(v))
      rc = BAD("%s: field 'states': state '%s' of objective '%s' is %s", p, nm, tr->d->name,
               !e ? "missing" : "not 16 hex digits of a finite double ('bits')");
    else
      tr->params[k] = v;
  }
  if (!rc && states && !json_is_object(states)) rc = BAD("%s: field 'states': expected an object", p);
  if (!rc) {
    tr->t = json_integer_value(step);
    tr->next_e = json_integer_value(ne);
    tr->time_before = json_number_value(tm);
  }
  json_decref(s);
  if (rc) {
    json_decref(sums);
    return -1;
  }
  /* the policy and the optimizer */
  unsigned char *seen = rc_calloc((size_t)tr->m->ntensors, 1);
  snprintf(p, sizeof p, "%s/model.safetensors", dir);
  rc = tfm_st_read(tr->m, p, seen, NULL, err, errlen);   /* rounded, when optim has masters */
  for (int i = 0; !rc && i < tr->m->ntensors; i++)
    if (!seen[i]) rc = BAD("%s: tensor '%s': missing", p, tr->m->tensors[i].name);
  free(seen);
  snprintf(p, sizeof p, "%s/optim.safetensors", dir);
  if (!rc) rc = tfm_opt_load(tr->m, p, err, errlen);
  if (!rc && tr->m->step != tr->t)
    rc = BAD("%s: field 'step': %ld optimizer steps, the checkpoint is of step %lld", p, tr->m->step,
                  (long long)tr->t);
  snprintf(p, sizeof p, "%s/buffer.bin", dir);
  if (!rc) rc = trn_buffer_load(tr, p, err, errlen);
  if (!rc && tr->nbuf != tr->next_e - 1 - tr->t)
    rc = BAD("%s: holds %d batches, state.json says %lld were explored ahead", p, tr->nbuf,
                  (long long)(tr->next_e - 1 - tr->t));
  /* every file read and checked for structure; now their bytes are the ones written */
  if (!rc && sums) rc = verify_files(dir, state, sums, err, errlen);
  json_decref(sums);
  if (!rc && trn_dist_rank() == 0) rc = cut_metrics(tr, tr->t, err, errlen);   /* rank 0 owns it */
  return rc;
}
