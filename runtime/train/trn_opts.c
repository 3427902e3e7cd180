/* trn_opts.c — the trainer's options: one table gives every option its name, type, range, the
 * commands it applies to and its help line, and drives the command line, the JSON config file
 * (--config; keys are the same names, "set" an object of objective params), the usage text and
 * the JSON dump kept in a run directory.  The command line wins over the file.
 */
#include "rein/train.h"
#include "rein/common.h"
#include "rein/tfm.h"

#include <errno.h>
#include <float.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { K_INT, K_U64, K_DBL, K_STR, K_BOOL };
enum { T = TRN_CMD_TRAIN, S = TRN_CMD_SFT, TS = TRN_CMD_TRAIN | TRN_CMD_SFT };

typedef struct {
  const char *name;
  int kind;
  size_t off, size;      /* size: for K_STR, the buffer */
  double lo, hi;         /* range of numbers */
  int cmds;
  const char *help;
} Opt;

#define O_(f) offsetof(TrnOpts, f), sizeof(((TrnOpts *)0)->f)
static const Opt opts[] = {
    {"model", K_STR, O_(model), 0, 0, TS, "DIR: the policy (config.json + model.safetensors); default: the "
                                          "shipped arithmetic checkpoint (train) / --model-config (sft)"},
    {"model-config", K_STR, O_(model_config), 0, 0, S, "CONFIG.json: start from a random init of this config"},
    {"init-seed", K_U64, O_(init_seed), 0, 0, S, "seed of that random init"},
    {"task", K_STR, O_(task), 0, 0, TS, "arith | gsm8k | jsonl"},
    {"digits", K_INT, O_(digits), 1, 9, TS, "arith: operands have 1..DIGITS digits"},
    {"ops", K_STR, O_(ops), 0, 0, TS, "arith: operators, a subset of +-*"},
    {"task-seed", K_U64, O_(task_seed), 0, 0, TS, "arith: seed of the problem generator"},
    {"train-data", K_STR, O_(train_data), 0, 0, TS, "gsm8k, jsonl: training JSONL"},
    {"eval-data", K_STR, O_(eval_data), 0, 0, TS, "gsm8k, jsonl: held-out JSONL"},
    {"format-term", K_BOOL, O_(format_term), 0, 1, TS, "gsm8k: add the +/-0.1 R1 format term"},
    {"prompt-field", K_STR, O_(prompt_field), 0, 0, TS, "jsonl: the field holding the prompt (a string)"},
    {"messages-field", K_STR, O_(messages_field), 0, 0, TS,
     "jsonl: the field holding a conversation instead ([{role, content}], for a chat template)"},
    {"answer-field", K_STR, O_(answer_field), 0, 0, TS, "jsonl: the field holding the reference answer"},
    {"reward-cmd", K_STR, O_(reward_cmd), 0, 0, T,
     "CMD: rewards from this command (sh -c), one JSON line per response (docs/trainer.md)"},
    {"reward-timeout", K_DBL, O_(reward_timeout), 1e-3, 1e6, T, "seconds the reward command may take per answer"},
    {"steps", K_INT, O_(steps), 1, 1e8, TS, "optimizer steps"},
    {"batch-prompts", K_INT, O_(batch_prompts), 1, 1e6, TS, "prompts per step"},
    {"group", K_INT, O_(group), 1, 1024, T, "responses per prompt (repeat_times)"},
    {"micro-groups", K_INT, O_(micro_groups), 0, 1e6, T, "whole groups per micro-batch (0: the whole batch)"},
    {"sync-interval", K_INT, O_(sync_interval), 1, 1e8, T, "explorer pulls weights every N train steps"},
    {"sync-offset", K_INT, O_(sync_offset), 0, 1e8, T, "explorer runs up to K steps ahead"},
    {"lr", K_DBL, O_(lr), 0, 10, TS, "learning rate (peak)"},
    {"lr-schedule", K_STR, O_(lr_schedule), 0, 0, TS, "constant | cosine | linear (decay after warmup)"},
    {"lr-min", K_DBL, O_(lr_min), 0, 10, TS, "learning rate at the end of a decay"},
    {"warmup", K_INT, O_(warmup), 0, 1e8, TS, "linear warmup steps"},
    {"weight-decay", K_DBL, O_(weight_decay), 0, 10, TS, "AdamW decoupled weight decay (matrices)"},
    {"max-grad-norm", K_DBL, O_(max_grad_norm), 0, 1e30, TS, "global grad-norm clip (0: none)"},
    {"beta1", K_DBL, O_(beta1), 0, 0.999999, TS, "AdamW beta1"},
    {"beta2", K_DBL, O_(beta2), 0, 0.999999999, TS, "AdamW beta2"},
    {"adam-eps", K_DBL, O_(adam_eps), 1e-30, 1, TS, "AdamW epsilon"},
    {"temperature", K_DBL, O_(temperature), 0, 100, T, "rollout temperature"},
    {"top-p", K_DBL, O_(top_p), 1e-9, 1, T, "rollout nucleus"},
    {"top-k", K_INT, O_(top_k), 0, 1e9, T, "rollout top-k (0: off)"},
    {"old-logp", K_STR, O_(old_logp), 0, 0, T, "rollout | recompute: old_logp is the rollout engine's log-prob, or "
                                               "recomputed by the trainer before each step (the engine's is then "
                                               "rollout_logp)"},
    {"max-new", K_INT, O_(max_new), 1, 1e6, TS, "response tokens at most"},
    {"eval-every", K_INT, O_(eval_every), 0, 1e8, TS, "evaluate every N steps (0: only at the start and end)"},
    {"eval-prompts", K_INT, O_(eval_prompts), 1, 1e7, TS, "held-out prompts per evaluation"},
    {"eval-temperature", K_DBL, O_(eval_temperature), 0, 100, TS, "0: greedy"},
    {"log-samples", K_INT, O_(log_samples), 0, 1e6, T, "decoded samples per evaluation in OUT/samples/ (0: none)"},
    {"out", K_STR, O_(out), 0, 0, TS, "run directory (sft: the model directory written)"},
    {"save-every", K_INT, O_(save_every), 0, 1e8, T, "checkpoint every N steps (0: only at the end)"},
    {"keep", K_INT, O_(keep), 0, 1e6, T, "checkpoints kept (0: all)"},
    {"save-dtype", K_STR, O_(save_dtype), 0, 0, TS, "same | f32 | bf16 | f16: the dtype of the model files written "
                                                    "(same: the one --model came in)"},
    {"stop-at", K_INT, O_(stop_at), 0, 1e8, T, "stop after step N with a checkpoint (--resume continues)"},
    {"time-limit", K_DBL, O_(time_limit), 0, 1e9, T, "stop with a checkpoint after S seconds of the run (0: none)"},
    {"resume", K_BOOL, O_(resume), 0, 1, T, "continue the run in --out from its latest checkpoint"},
    {"progress", K_INT, O_(progress), -1, 1, TS, "progress bar: 1 on, 0 off, -1 when stderr is a terminal"},
    {"threads", K_INT, O_(threads), 0, 4096, TS, "CPU threads (0: OpenMP's default)"},
    {"shard-explore", K_INT, O_(shard_explore), 0, 1, T, "under mpirun, 1: each rank explores its share of "
                                                         "the prompts (faster; behaviour logp may differ from "
                                                         "one process's in the last bit), 0: every rank all"},
    {"explorer-ranks", K_INT, O_(explorer_ranks), 0, 1e6, T, "under mpirun: the last K ranks sample rollouts "
                                                             "(sharing each batch's prompts) while the others "
                                                             "train (0: every rank does both)"},
    {"seed", K_U64, O_(seed), 0, 0, TS, "seed of sampling and of the objective's uniform()"},
};
#define NOPTS ((int)(sizeof opts / sizeof opts[0]))
_Static_assert(sizeof opts / sizeof opts[0] <= 64, "TrnOpts.given has 64 bits");

void trn_opts_defaults(TrnOpts *o, int cmd) {
  memset(o, 0, sizeof *o);
  strcpy(o->task, "arith");
  o->digits = 2;
  strcpy(o->ops, "+-");
  o->task_seed = 1;
  o->format_term = 1;
  strcpy(o->prompt_field, "prompt");
  strcpy(o->answer_field, "answer");
  o->reward_timeout = 60;
  o->log_samples = 4;
  o->group = 8;
  o->sync_interval = 1;
  o->beta1 = 0.9, o->beta2 = 0.999, o->adam_eps = 1e-8;
  o->max_grad_norm = 1.0;
  strcpy(o->lr_schedule, "constant");
  o->temperature = 1.0, o->top_p = 1.0;
  strcpy(o->old_logp, "rollout");
  o->max_new = 8;
  o->eval_prompts = 200;
  o->keep = 3;
  strcpy(o->save_dtype, "same");
  o->progress = -1;
  o->seed = 42;
  if (cmd == TRN_CMD_SFT) {
    o->steps = 2000, o->batch_prompts = 64, o->lr = 3e-3, o->warmup = 50, o->weight_decay = 0;
    o->eval_every = 500;
    strcpy(o->out, "sft-model");
  } else {
    /* the main job (README): REC on the shipped arithmetic model, about 6.5 minutes on 2 cores */
    o->steps = 2400, o->batch_prompts = 32, o->lr = 3e-4, o->weight_decay = 0;
    o->eval_every = 200, o->eval_prompts = 1000;
    o->save_every = 400;
    strcpy(o->out, "run");
  }
}

static const Opt *find(const char *name, int cmd) {
  for (int i = 0; i < NOPTS; i++)
    if (!strcmp(opts[i].name, name) && (opts[i].cmds & cmd)) return &opts[i];
  return NULL;
}

/* Sets option P from text V; WHERE prefixes messages ("--lr" or "FILE: field 'lr'"). */
static int set_text(TrnOpts *o, const Opt *p, const char *v, const char *where, char *err, size_t errlen) {
  char *dst = (char *)o + p->off;
  o->given |= 1ull << (p - opts);
  char *end;
  errno = 0;
  switch (p->kind) {
  case K_STR:
    if (strlen(v) >= p->size) return snprintf(err, errlen, "%s: value too long", where), -1;
    strcpy(dst, v);
    return 0;
  case K_BOOL:
    if (!strcmp(v, "1") || !strcmp(v, "true") || !strcmp(v, "yes")) *(int *)dst = 1;
    else if (!strcmp(v, "0") || !strcmp(v, "false") || !strcmp(v, "no")) *(int *)dst = 0;
    else return snprintf(err, errlen, "%s '%s': expected true or false", where, v), -1;
    return 0;
  case K_U64: {
    unsigned long long x = strtoull(v, &end, 10);
    if (end == v || *end || errno || *v == '-')
      return snprintf(err, errlen, "%s '%s': expected a non-negative integer", where, v), -1;
    *(uint64_t *)dst = x;
    return 0;
  }
  case K_INT: {
    long x = strtol(v, &end, 10);
    if (end == v || *end || errno || x < p->lo || x > p->hi)
      return snprintf(err, errlen, "%s '%s': expected an integer in [%.0f, %.0f]", where, v, p->lo, p->hi), -1;
    *(int *)dst = (int)x;
    return 0;
  }
  default: {
    double x = strtod(v, &end);
    if (end == v || *end || errno || !(x >= p->lo && x <= p->hi))
      return snprintf(err, errlen, "%s '%s': expected a number in [%g, %g]", where, v, p->lo, p->hi), -1;
    *(double *)dst = x;
    return 0;
  }
  }
}

/* --set NAME=VALUE (later settings of a name replace earlier ones). */
static int add_set(TrnOpts *o, const char *name, double v, const char *where, char *err, size_t errlen) {
  if (!*name || strlen(name) >= sizeof o->set_name[0])
    return snprintf(err, errlen, "%s: bad parameter name '%s'", where, name), -1;
  if (!(fabs(v) <= FLT_MAX))   /* the rule of `rein eval --set`: params reach float32 code */
    return snprintf(err, errlen, "%s: %s=%g is not a finite float32 value", where, name, v), -1;
  for (int i = 0; i < o->nset; i++)
    if (!strcmp(o->set_name[i], name)) return o->set_value[i] = v, 0;
  if (o->nset == TRN_MAX_SET) return snprintf(err, errlen, "%s: more than %d parameters set", where, TRN_MAX_SET), -1;
  strcpy(o->set_name[o->nset], name);
  o->set_value[o->nset++] = v;
  return 0;
}

static int parse_set(TrnOpts *o, const char *arg, char *err, size_t errlen) {
  const char *eq = strchr(arg, '=');
  char name[64];
  if (!eq || eq == arg || (size_t)(eq - arg) >= sizeof name)
    return snprintf(err, errlen, "--set '%s': expected NAME=VALUE", arg), -1;
  memcpy(name, arg, (size_t)(eq - arg));
  name[eq - arg] = 0;
  char *end;
  errno = 0;
  double v = strtod(eq + 1, &end);
  if (end == eq + 1 || *end || errno || !isfinite(v))
    return snprintf(err, errlen, "--set '%s': expected a finite number after '='", arg), -1;
  return add_set(o, name, v, "--set", err, errlen);
}

/* The JSON config file PATH: an object whose keys are option names (and "set"). */
static int load_config(TrnOpts *o, int cmd, const char *path, char *err, size_t errlen) {
  json_error_t je;
  char why[TRN_PATH + 256];
  size_t len;
  char *text = rc_read_file(path, 16u << 20, &len, why, sizeof why);
  if (!text) return snprintf(err, errlen, "%s: cannot read the config file: %s", path, why), -1;
  json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
  free(text);
  if (!root) return snprintf(err, errlen, "%s:%d:%d: invalid JSON: %s", path, je.line, je.column, je.text), -1;
  int rc = 0;
  if (!json_is_object(root)) {
    snprintf(err, errlen, "%s: the config must be a JSON object", path);
    rc = -1;
  }
  const char *key;
  json_t *v;
  char where[TRN_PATH + 96];
  json_object_foreach(root, key, v) {
    if (rc) break;
    snprintf(where, sizeof where, "%s: field '%s'", path, key);
    if (!strcmp(key, "set")) {
      if (!json_is_object(v)) {
        snprintf(err, errlen, "%s: expected an object of NAME: number", where);
        rc = -1;
        break;
      }
      const char *pk;
      json_t *pv;
      json_object_foreach(v, pk, pv) {
        if (!json_is_number(pv)) {
          snprintf(err, errlen, "%s: parameter '%s': expected a number", where, pk);
          rc = -1;
          break;
        }
        if ((rc = add_set(o, pk, json_number_value(pv), where, err, errlen))) break;
        snprintf(o->set_from, sizeof o->set_from, "%s", path);
      }
      continue;
    }
    const Opt *p = find(key, cmd);
    if (!p || !strcmp(key, "resume")) {
      snprintf(err, errlen, "%s: unknown option", where);
      rc = -1;
      break;
    }
    char text[TRN_PATH];
    if (json_is_string(v) && strlen(json_string_value(v)) >= sizeof text) {
      snprintf(err, errlen, "%s: value too long", where);
      rc = -1;
      break;
    }
    if (json_is_boolean(v) && p->kind != K_BOOL) {
      snprintf(err, errlen, "%s: expected a %s, not a boolean", where, p->kind == K_STR ? "string" : "number");
      rc = -1;
      break;
    }
    if (json_is_string(v)) snprintf(text, sizeof text, "%s", json_string_value(v));
    else if (json_is_integer(v)) snprintf(text, sizeof text, "%lld", (long long)json_integer_value(v));
    else if (json_is_real(v)) snprintf(text, sizeof text, "%.17g", json_real_value(v));
    else if (json_is_boolean(v)) snprintf(text, sizeof text, "%d", json_is_true(v));
    else {
      snprintf(err, errlen, "%s: expected a string, number or boolean", where);
      rc = -1;
      break;
    }
    if (p->kind == K_STR && !json_is_string(v)) {
      snprintf(err, errlen, "%s: expected a string", where);
      rc = -1;
      break;
    }
    rc = set_text(o, p, text, where, err, errlen);
  }
  json_decref(root);
  return rc;
}

/* Checks that hold between options. */
static int validate(const TrnOpts *o, int cmd, char *err, size_t errlen) {
  if (strcmp(o->task, "arith") && strcmp(o->task, "gsm8k") && strcmp(o->task, "jsonl"))
    return snprintf(err, errlen, "--task '%s': expected arith, gsm8k or jsonl", o->task), -1;
  if (strcmp(o->task, "arith") && !o->train_data[0])
    return snprintf(err, errlen, "--task %s needs --train-data FILE.jsonl", o->task), -1;
  if (trn_opts_given(o, "prompt-field") && o->messages_field[0])
    return snprintf(err, errlen, "--prompt-field and --messages-field: give one of them, not both"), -1;
  if (!o->prompt_field[0] || !o->answer_field[0])
    return snprintf(err, errlen, "--%s-field: empty name", o->prompt_field[0] ? "answer" : "prompt"), -1;
  if (strcmp(o->lr_schedule, "constant") && strcmp(o->lr_schedule, "cosine") && strcmp(o->lr_schedule, "linear"))
    return snprintf(err, errlen, "--lr-schedule '%s': expected constant, cosine or linear", o->lr_schedule), -1;
  if (!o->out[0]) return snprintf(err, errlen, "--out: empty path"), -1;
  if (strcmp(o->old_logp, "rollout") && strcmp(o->old_logp, "recompute"))
    return snprintf(err, errlen, "--old-logp '%s': expected rollout or recompute", o->old_logp), -1;
  if (tfm_dtype_parse(o->save_dtype) == -2)
    return snprintf(err, errlen, "--save-dtype '%s': expected same, f32, bf16 or f16", o->save_dtype), -1;
  /* sizes of one step, before anything is allocated: token offsets are int */
  if ((int64_t)o->batch_prompts * o->group > TRN_MAX_SEQS)
    return snprintf(err, errlen, "--batch-prompts %d x --group %d = %lld sequences per step: the limit is %d",
                    o->batch_prompts, o->group, (long long)o->batch_prompts * o->group, TRN_MAX_SEQS), -1;
  if ((int64_t)o->batch_prompts * o->group * o->max_new > TRN_MAX_TOKENS)
    return snprintf(err, errlen,
                    "--batch-prompts %d x --group %d x --max-new %d = %lld response tokens per step: the limit is %d",
                    o->batch_prompts, o->group, o->max_new, (long long)o->batch_prompts * o->group * o->max_new,
                    TRN_MAX_TOKENS), -1;
  if (cmd == TRN_CMD_SFT && !o->model[0] && !o->model_config[0])
    return snprintf(err, errlen, "rein sft needs --model DIR or --model-config CONFIG.json"), -1;
  return 0;
}

int trn_opts_parse(TrnOpts *o, int cmd, int argc, char **argv, char *err, size_t errlen) {
  /* the config file first, wherever it appears */
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "--config") || !strncmp(a, "--config=", 9)) {
      const char *path = a[8] == '=' ? a + 9 : (i + 1 < argc ? argv[++i] : NULL);
      if (!path) return snprintf(err, errlen, "--config: missing FILE"), -1;
      if (load_config(o, cmd, path, err, errlen)) return -1;
    }
  }
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "-h") || !strcmp(a, "--help")) return 1;
    if (strncmp(a, "--", 2) && strcmp(a, "-o"))
      return snprintf(err, errlen, "unexpected argument '%s'", a), -1;
    char name[64];
    const char *val = NULL;
    const char *eq = strchr(a, '=');
    const char *nm = !strcmp(a, "-o") ? "out" : a + 2;
    size_t nl = eq ? (size_t)(eq - nm) : strlen(nm);
    if (nl >= sizeof name) return snprintf(err, errlen, "unknown option '%s'", a), -1;
    memcpy(name, nm, nl);
    name[nl] = 0;
    if (eq) val = eq + 1;
    const Opt *p = find(name, cmd);
    int is_set = !strcmp(name, "set"), is_config = !strcmp(name, "config");
    if (!p && !is_set && !is_config) return snprintf(err, errlen, "unknown option '--%s'", name), -1;
    if (p && p->kind == K_BOOL && !val) {
      *(int *)((char *)o + p->off) = 1;
      o->given |= 1ull << (p - opts);
      continue;
    }
    if (!val) {
      if (i + 1 >= argc) return snprintf(err, errlen, "--%s: missing value", name), -1;
      val = argv[++i];
    }
    if (is_config) continue;
    char where[80];
    snprintf(where, sizeof where, "--%s", name);
    if (is_set ? parse_set(o, val, err, errlen) : set_text(o, p, val, where, err, errlen)) return -1;
  }
  return validate(o, cmd, err, errlen);
}

char *trn_opts_json(const TrnOpts *o, int cmd) {
  json_t *root = json_object();
  for (int i = 0; i < NOPTS; i++) {
    const Opt *p = &opts[i];
    if (!(p->cmds & cmd) || !strcmp(p->name, "resume") || !strcmp(p->name, "progress")) continue;
    const char *src = (const char *)o + p->off;
    json_t *v;
    switch (p->kind) {
    case K_STR: v = json_string(src); break;
    case K_BOOL: v = json_boolean(*(const int *)src); break;
    case K_INT: v = json_integer(*(const int *)src); break;
    case K_U64: {
      char b[32];
      snprintf(b, sizeof b, "%llu", (unsigned long long)*(const uint64_t *)src);
      v = json_string(b);   /* beyond JSON's exact integers */
      break;
    }
    default: v = json_real(*(const double *)src); break;
    }
    json_object_set_new(root, p->name, v);
  }
  json_t *set = json_object();
  for (int i = 0; i < o->nset; i++) json_object_set_new(set, o->set_name[i], json_real(o->set_value[i]));
  json_object_set_new(root, "set", set);
  char *s = json_dumps(root, JSON_INDENT(1) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(17));
  json_decref(root);
  return s;
}

int trn_opts_given(const TrnOpts *o, const char *name) {
  for (int i = 0; i < NOPTS; i++)
    if (!strcmp(opts[i].name, name)) return (int)(o->given >> i & 1);
  return 0;
}

void trn_opts_usage(FILE *f, int cmd, const char *prog) {
  if (cmd == TRN_CMD_SFT) fprintf(f, "usage: %s [--config FILE.json] [OPTIONS]\n\n", prog);
  else fprintf(f, "usage: %s [--config FILE.json] [--set NAME=VALUE]... [OPTIONS]\n\n", prog);
  TrnOpts d;
  trn_opts_defaults(&d, cmd);
  for (int i = 0; i < NOPTS; i++) {
    const Opt *p = &opts[i];
    if (!(p->cmds & cmd)) continue;
    const char *src = (const char *)&d + p->off;
    char def[64] = "";
    switch (p->kind) {
    case K_STR: snprintf(def, sizeof def, "%s", *src ? src : "-"); break;
    case K_BOOL: snprintf(def, sizeof def, "%s", *(const int *)src ? "on" : "off"); break;
    case K_INT: snprintf(def, sizeof def, "%d", *(const int *)src); break;
    case K_U64: snprintf(def, sizeof def, "%llu", (unsigned long long)*(const uint64_t *)src); break;
    default: snprintf(def, sizeof def, "%g", *(const double *)src); break;
    }
    fprintf(f, "  --%-17s %s [%s]\n", p->name, p->help, def);
  }
  if (cmd == TRN_CMD_TRAIN) fprintf(f, "  --set NAME=VALUE    an objective param\n");
  fprintf(f, "  --config FILE.json  options as a JSON object (same names; \"set\": {NAME: VALUE})\n");
}
