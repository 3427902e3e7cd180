/* trn_common.c — pieces both training commands use: the learning-rate schedule, evaluation on
 * the held-out split, the progress line, file helpers (the tokenizer files copied into every
 * model directory written), and the embedded default checkpoint.
 */
#define _GNU_SOURCE
#include "trn_internal.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "rein/common.h"

int trn_start(Trainer *tr, int cmd, const char *prog, rt_objective *obj, int argc, char **argv) {
  char err[2048] = "";
  trn_opts_defaults(&tr->o, cmd);
  int pr = trn_opts_parse(&tr->o, cmd, argc, argv, err, sizeof err);
  if (pr == 1) {
    trn_opts_usage(stdout, cmd, prog);
    return 0;
  }
  if (pr < 0) {
    fprintf(stderr, "%s: error: %s\n", prog, err);
    return 2;
  }
  tr->prog = prog;
  tr->obj = obj;
  tr->d = rt_desc(obj);
  tr->t0 = rc_now();
  return -1;
}

int trn_check_vocab(const Trainer *tr, char *err, size_t errlen) {
  if (tr->m->cfg.vocab >= tr->task->tk->vocab) return 0;
  snprintf(err, errlen, "the model's vocabulary (%d) is smaller than the task tokenizer's (%d)", tr->m->cfg.vocab,
           tr->task->tk->vocab);
  return -1;
}

double trn_elapsed(const Trainer *tr) { return tr->time_before + (rc_now() - tr->t0); }

int trn_save_dtype(const TrnOpts *o, const TfmModel *m) {
  int dt = tfm_dtype_parse(o->save_dtype);   /* checked when the options were parsed */
  return dt < 0 ? m->dtype : dt;
}

double trn_lr_at(const TrnOpts *o, int64_t t) {
  if (o->warmup > 0 && t <= o->warmup) return o->lr * (double)t / (double)o->warmup;
  if (!strcmp(o->lr_schedule, "constant") || o->steps <= o->warmup) return o->lr;
  double f = (double)(t - o->warmup) / (double)(o->steps - o->warmup);
  if (f > 1) f = 1;
  if (!strcmp(o->lr_schedule, "cosine")) return o->lr_min + (o->lr - o->lr_min) * 0.5 * (1 + cos(M_PI * f));
  return o->lr - (o->lr - o->lr_min) * f;
}

Task *trn_make_task(const TrnOpts *o, char *err, size_t errlen) {
  if (!strcmp(o->task, "arith")) {
    Task *t = task_arith_new(o->digits, o->ops, o->task_seed, err, errlen);
    if (t && o->reward_cmd[0] && !(t->scorer = task_scorer_start(o->reward_cmd, o->reward_timeout, err, errlen))) {
      task_free(t);
      return NULL;
    }
    return t;
  }
  TaskTok *tok = NULL;
  if (o->model[0] && trn_model_tok(o->model, &tok, err, errlen)) return NULL;
  TaskData d = {.train_path = o->train_data, .eval_path = o->eval_data[0] ? o->eval_data : NULL,
                .format_term = o->format_term, .prompt_field = o->messages_field[0] ? NULL : o->prompt_field,
                .messages_field = o->messages_field[0] ? o->messages_field : NULL, .answer_field = o->answer_field,
                .tok = tok};
  Task *t = !strcmp(o->task, "gsm8k") ? task_gsm8k_open(&d, err, errlen) : task_jsonl_open(&d, err, errlen);
  if (!t) {
    task_tok_free(tok);
    return NULL;
  }
  if (o->reward_cmd[0] && !(t->scorer = task_scorer_start(o->reward_cmd, o->reward_timeout, err, errlen))) {
    task_free(t);
    return NULL;
  }
  return t;
}

int trn_apply_genconfig(TrnOpts *o, const TfmModel *m, const char *prog, char *err, size_t errlen) {
  if (!o->model[0]) return 0;
  TfmGenConfig gc;
  if (tfm_genconfig_load(o->model, m->cfg.vocab, &gc, err, errlen)) return -1;
  if (!gc.found) return 0;
  if (gc.do_sample == 0) return 0;   /* greedy in the file: RL samples all the same */
  char said[160] = "";
  size_t n = 0;
  if (gc.has_temperature && !trn_opts_given(o, "temperature"))
    o->temperature = gc.temperature, n += (size_t)snprintf(said + n, sizeof said - n, " temperature %g", gc.temperature);
  if (gc.has_top_p && !trn_opts_given(o, "top-p"))
    o->top_p = gc.top_p, n += (size_t)snprintf(said + n, sizeof said - n, " top-p %g", gc.top_p);
  if (gc.has_top_k && !trn_opts_given(o, "top-k"))
    o->top_k = gc.top_k, n += (size_t)snprintf(said + n, sizeof said - n, " top-k %d", gc.top_k);
  if (n) fprintf(stderr, "%s: sampling from %s/generation_config.json:%s (options given explicitly win)\n", prog,
                 o->model, said);
  return 0;
}

const char *const trn_model_files[TRN_NMODEL_FILES] = {"tokenizer.json", "tokenizer_config.json",
                                                      "generation_config.json"};

int trn_copy_model_files(const char *src, const char *dst, char *err, size_t errlen) {
  for (int i = 0; i < TRN_NMODEL_FILES; i++) {
    char from[TRN_PATH + 64], to[TRN_PATH + 128];
    snprintf(from, sizeof from, "%s/%s", src, trn_model_files[i]);
    snprintf(to, sizeof to, "%s/%s", dst, trn_model_files[i]);
    struct stat sb;
    if (stat(from, &sb) && errno == ENOENT) continue;
    size_t n = 0;
    char *data = rc_read_file(from, (size_t)1 << 30, &n, err, errlen);   /* the tokenizer's own limit */
    if (!data) return -1;
    int rc = rc_write_atomic(to, data, n, err, errlen);
    free(data);
    if (rc) return -1;
  }
  return 0;
}

static json_t *jtext(const char *s) {
  char *c = task_utf8_clean(s);
  json_t *j = json_string(c);
  free(c);
  return j;
}

/* One logged sample, appended to ARR. */
static void sample_line(json_t *arr, int64_t step, const TaskItem *it, const char *prompt, const int32_t *pids,
                        int np, const char *resp, const TaskReward *r, int stopped) {
  json_t *j = json_object(), *ids = json_array();
  for (int i = 0; i < np; i++) json_array_append_new(ids, json_integer(pids[i]));
  json_object_set_new(j, "step", json_integer(step));
  json_object_set_new(j, "prompt", jtext(prompt));
  json_object_set_new(j, "prompt_ids", ids);
  json_object_set_new(j, "response", jtext(resp));
  json_object_set_new(j, "answer", jtext(it->answer));
  json_object_set_new(j, "reward", json_real(r->reward));
  json_object_set_new(j, "accuracy", json_real(r->accuracy));
  json_object_set_new(j, "stopped", json_boolean(stopped));
  json_array_append_new(arr, j);
}

int trn_eval(TfmModel *m, Task *task, const TrnOpts *o, int64_t step, const char *samples, double *acc,
             double *reward, double *len, TrnEvalExtras *xs, char *err, size_t errlen) {
  xs->n = 0;
  uint64_t n = (uint64_t)o->eval_prompts, cnt = task->count(task, TASK_EVAL);
  if (cnt && n > cnt) n = cnt;
  if (task->count(task, TASK_TRAIN) && cnt == 0) {
    *acc = *reward = *len = NAN;   /* a dataset without a held-out file */
    return 0;
  }
  TaskItem *items = rc_calloc(n, sizeof *items);
  int *off = rc_calloc(n + 1, sizeof *off);
  int32_t *prompt = NULL;
  size_t cap = 0;
  int rc = 0;
  TaskTok *tk = task->tk;
  for (uint64_t i = 0; i < n && !rc; i++) {
    int32_t *ids = NULL;
    int k = -1;
    if (task->item(task, TASK_EVAL, i, &items[i], err, errlen) || (k = tk->prompt(tk, &items[i], &ids, err, errlen)) < 0) {
      rc = -1;
      break;
    }
    if ((size_t)off[i] + (size_t)k > cap) {
      cap = 2 * (cap + (size_t)k);
      prompt = rc_realloc(prompt, cap * sizeof *prompt);
    }
    memcpy(prompt + off[i], ids, (size_t)k * sizeof *ids);
    off[i + 1] = off[i] + k;
    free(ids);
  }
  TfmGenOut g = {0};
  TfmSampling s = {o->eval_temperature, 1.0, 0, o->max_new, tk->neos, tk->eos,
                   rein_mix64(o->seed ^ 0x6576616cull) ^ rein_mix64((uint64_t)step), 0};
  if (!rc && tfm_generate(m, (int)n, off, prompt, &s, &g, err, errlen)) rc = -1;
  double sa = 0, sr = 0, sl = 0;
  int xcnt[TRN_MAX_XNAMES] = {0};
  json_t *logged = samples && o->log_samples > 0 ? json_array() : NULL;
  for (uint64_t i = 0; i < n && !rc; i++) {
    const int32_t *resp = g.tokens + i * (uint64_t)g.max_new;
    char *text = tk->decode(tk, resp, g.len[i], 0, err, errlen);
    TaskReward r;
    if (!text || task_score(task, &items[i], text, &r, err, errlen)) {
      if (text) {
        size_t l = strlen(err);
        snprintf(err + l, errlen > l ? errlen - l : 0, "; while scoring evaluation response %llu at step %lld",
                 (unsigned long long)i, (long long)step);
      }
      free(text);
      rc = -1;
      break;
    }
    if (logged && i < (uint64_t)o->log_samples) {
      char *ptext = tk->decode(tk, prompt + off[i], off[i + 1] - off[i], 1, err, errlen);
      if (!ptext) {
        free(text);
        task_reward_free(&r);
        rc = -1;
        break;
      }
      sample_line(logged, step, &items[i], ptext, prompt + off[i], off[i + 1] - off[i], text, &r, g.stopped[i]);
      free(ptext);
    }
    free(text);
    sa += r.accuracy, sr += r.reward, sl += g.len[i];
    for (int k = 0; k < r.nextra && !rc; k++) {   /* the command's extra fields, summed by name */
      int j = 0;
      while (j < xs->n && strcmp(xs->name[j], r.extra_names[k])) j++;
      if (j == TRN_MAX_XNAMES) {
        snprintf(err, errlen, "reward command '%s': more than %d different extra fields in the evaluation at step %lld",
                 o->reward_cmd, TRN_MAX_XNAMES, (long long)step);
        rc = -1;
      } else {
        if (j == xs->n) snprintf(xs->name[xs->n++], sizeof xs->name[0], "%s", r.extra_names[k]), xs->mean[j] = 0;
        xs->mean[j] += r.extra_vals[k], xcnt[j]++;
      }
    }
    task_reward_free(&r);
  }
  if (!rc && logged) {   /* one file per evaluation, written atomically: a rerun after --resume rewrites it */
    size_t tlen = 0, tcap = 4096;
    char *buf = rc_malloc(tcap);
    buf[0] = 0;
    size_t i;
    json_t *j;
    json_array_foreach(logged, i, j) {
      char *line = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(10));
      size_t l = strlen(line);
      if (tlen + l + 2 > tcap) buf = rc_realloc(buf, tcap = 2 * (tlen + l + 2));
      memcpy(buf + tlen, line, l);
      tlen += l;
      buf[tlen++] = '\n';
      buf[tlen] = 0;
      free(line);
    }
    rc = rc_write_text(samples, buf, err, errlen);
    free(buf);
  }
  json_decref(logged);
  if (!rc) *acc = sa / (double)n, *reward = sr / (double)n, *len = sl / (double)n;
  for (int k = 0; k < xs->n; k++) xs->mean[k] /= xcnt[k];   /* each name was seen at least once */
  tfm_genout_free(&g);
  for (uint64_t i = 0; i < n; i++) task_item_free(&items[i]);
  free(items);
  free(off);
  free(prompt);
  return rc;
}

static void hms(char *b, size_t n, double s) {
  if (!(s >= 0) || s > 1e7) s = 0;
  long x = (long)(s + 0.5);
  if (x >= 3600) snprintf(b, n, "%ld:%02ld:%02ld", x / 3600, x / 60 % 60, x % 60);
  else snprintf(b, n, "%ld:%02ld", x / 60, x % 60);
}

void trn_progress(int on, int64_t t, int64_t total, double elapsed, double done_at_start, const char *extra) {
  if (!on) return;
  /* ETA from this process's rate (steps done before a resume do not count) */
  double frac = total ? (double)t / (double)total : 1;
  int w = 24, fill = (int)(frac * w);
  char bar[32];
  for (int i = 0; i < w; i++) bar[i] = i < fill ? '#' : '.';
  bar[w] = 0;
  char el[32], eta[32];
  hms(el, sizeof el, elapsed);
  double done = (double)t - done_at_start;
  hms(eta, sizeof eta, done > 0 ? elapsed / done * (double)(total - t) : 0);
  fprintf(stderr, "\r%lld/%lld [%s] %3.0f%% %s<%s %s\033[K", (long long)t, (long long)total, bar, 100 * frac, el,
          done > 0 ? eta : "?", extra);
  fflush(stderr);
}

/* The shipped checkpoint, linked in by trn_blob.S. */
extern const char trn_blob_config[], trn_blob_config_end[];
extern const char trn_blob_weights[], trn_blob_weights_end[];

static int dump(const char *path, const char *a, const char *b, char *err, size_t errlen) {
  FILE *f = fopen(path, "wb");
  if (!f) return snprintf(err, errlen, "%s: %s", path, strerror(errno)), -1;
  int bad = fwrite(a, 1, (size_t)(b - a), f) != (size_t)(b - a);
  bad |= fclose(f) != 0;
  if (bad) return snprintf(err, errlen, "%s: write failed", path), -1;
  return 0;
}

TfmModel *trn_default_model(char *err, size_t errlen) {
  /* the executor reads model directories: unpack into a private temporary one */
  const char *tmpdir = getenv("TMPDIR");
  char dir[4096], cfg[4200], st[4200];
  snprintf(dir, sizeof dir, "%s/rein-model-XXXXXX", tmpdir && *tmpdir ? tmpdir : "/tmp");
  if (!mkdtemp(dir)) {
    snprintf(err, errlen, "cannot create a temporary directory %s: %s", dir, strerror(errno));
    return NULL;
  }
  snprintf(cfg, sizeof cfg, "%s/config.json", dir);
  snprintf(st, sizeof st, "%s/model.safetensors", dir);
  TfmModel *m = NULL;
  if (!dump(cfg, trn_blob_config, trn_blob_config_end, err, errlen) &&
      !dump(st, trn_blob_weights, trn_blob_weights_end, err, errlen))
    m = tfm_model_load(dir, err, errlen);
  unlink(cfg);
  unlink(st);
  rmdir(dir);
  return m;
}
