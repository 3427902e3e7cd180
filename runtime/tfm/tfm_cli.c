/* tfm_cli.c — `rein model info | init | convert | logprobs | generate`: inspecting and testing the executor
 * from the command line.  One option table (rein/opts.h) serves every subcommand and its --help;
 * each subcommand is one function.  Output is JSON on stdout; errors are one line on stderr,
 * "rein model[ SUB]: MESSAGE", with exit status 1 (2 for a bad command line).
 */
#include "tfm_internal.h"

#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rein/opts.h"

static void model_usage(FILE *f) {
  fprintf(f,
          "usage: rein model info (--config CONFIG.json | --model DIR)\n"
          "       rein model init --config CONFIG.json --seed N -o DIR [--save-dtype f32|bf16|f16]\n"
          "       rein model convert --model DIR -o DIR --save-dtype same|f32|bf16|f16\n"
          "       rein model logprobs --model DIR --tokens T,T,... [--tokens ...] [--threads N]\n"
          "       rein model generate --model DIR --prompt-tokens T,T,... [--prompt-tokens ...]\n"
          "                 --max-new N [--temperature T] [--top-p P] [--top-k K] [--stop T,T,...]\n"
          "                 [--seed S] [--samples G] [--threads N]\n");
}

/* A growing list of token ids, and for --tokens / --prompt-tokens the length of each sequence. */
typedef struct {
  int32_t *v;
  int n, cap;
  int *lens, nseqs;
} TokList;

/* The command line of every subcommand. */
typedef struct {
  const char *config, *model, *outdir, *save_dtype;
  TokList toks, stop;
  int have_stop, have_seed, have_temp, have_top_p, have_top_k;
  double temp, top_p, top_k, max_new, seed, samples, threads;
} CliArgs;

/* A list of token ids "1,2,3" (option WHAT) appended to L; the count, or -1 with ERR. */
static int parse_tokens(const char *what, const char *s, TokList *l, char *err, size_t errlen) {
  const char *p = s;
  int count = 0;
  if (!*p) goto bad;
  for (;;) {
    char *end;
    errno = 0;
    if (*p < '0' || *p > '9') goto bad; /* strtol would accept spaces and a sign */
    long x = strtol(p, &end, 10);
    if (end == p || errno || x < 0 || x > INT32_MAX) goto bad;
    if (l->n == l->cap) {
      l->cap = l->cap ? 2 * l->cap : 64;
      l->v = rc_realloc(l->v, (size_t)l->cap * sizeof(int32_t));
    }
    l->v[l->n++] = (int32_t)x;
    count++;
    if (!*end) return count;
    if (*end != ',') goto bad;
    p = end + 1;
  }
bad:
  snprintf(err, errlen, "%s '%s': expected comma-separated non-negative token ids", what, s);
  return -1;
}

/* One more sequence for --tokens / --prompt-tokens. */
static int add_seq(const char *what, const char *s, TokList *l, char *err, size_t errlen) {
  int k = parse_tokens(what, s, l, err, errlen);
  if (k < 0) return -1;
  l->lens = rc_realloc(l->lens, (size_t)(l->nseqs + 1) * sizeof(int));
  l->lens[l->nseqs++] = k;
  return 0;
}

static int opt_tokens(void *dst, const char *s, char *err, size_t errlen) {
  return add_seq("--tokens", s, dst, err, errlen);
}

static int opt_prompt(void *dst, const char *s, char *err, size_t errlen) {
  return add_seq("--prompt-tokens", s, dst, err, errlen);
}

/* --stop: token ids, or nothing (no stop tokens at all). */
static int opt_stop(void *dst, const char *s, char *err, size_t errlen) {
  return *s && parse_tokens("--stop", s, dst, err, errlen) < 0 ? -1 : 0;
}

static void print_json(json_t *o) {
  char *s = json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(9));
  puts(s);
  free(s);
  json_decref(o);
}

/* V as a JSON array; a non-finite value (JSON has none, and jansson would drop it) is the string
 * "nan", "inf" or "-inf", as in `rein eval`, and counted in *NONFINITE. */
static json_t *reals(const tfm_f *v, int n, long *nonfinite) {
  json_t *a = json_array();
  for (int i = 0; i < n; i++) {
    double x = (double)v[i];
    if (isfinite(x)) json_array_append_new(a, json_real(x));
    else json_array_append_new(a, json_string(isnan(x) ? "nan" : x > 0 ? "inf" : "-inf")), ++*nonfinite;
  }
  return a;
}

/* The exit status of a command that printed its result with NONFINITE non-finite values. */
static int finite_status(const char *cmd, long nonfinite) {
  if (!nonfinite) return 0;
  fprintf(stderr, "rein model %s: error: %ld printed values are not finite (printed as \"nan\"/\"inf\"); exit status %d\n",
          cmd, nonfinite, RC_EXIT_NONFINITE);
  return RC_EXIT_NONFINITE;
}

static json_t *ints(const int32_t *v, int n) {
  json_t *a = json_array();
  for (int i = 0; i < n; i++) json_array_append_new(a, json_integer(v[i]));
  return a;
}

/* rein model info: the parsed configuration and the parameter count, without reading any
 * weights.  Returns the exit status. */
static int cli_info(const CliArgs *a) {
  char p[4096], err[1024];
  if (!a->config && a->model) snprintf(p, sizeof p, "%s/config.json", a->model);
  else if (a->config) snprintf(p, sizeof p, "%s", a->config);
  else {
    fprintf(stderr, "rein model info: needs --config or --model\n");
    return 2;
  }
  TfmConfig cfg;
  if (tfm_config_load(p, &cfg, err, sizeof err)) {
    fprintf(stderr, "rein model info: %s\n", err);
    return 1;
  }
  TfmModel *m = tfm_model_new(&cfg, err, sizeof err);
  if (!m) {
    fprintf(stderr, "rein model info: %s\n", err);
    return 1;
  }
  size_t n = 0;
  for (int t = 0; t < m->ntensors; t++) n += m->tensors[t].n;
  static const char *rope[] = {"default", "linear", "llama3"};
  print_json(json_pack("{s:s,s:I,s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:b,s:b,s:b,s:b,s:f,s:f,s:s}", "model_type",
                       tfm_arch_name(cfg.arch), "params", (json_int_t)n, "tensors",
                       m->ntensors, "vocab_size", cfg.vocab, "hidden_size", cfg.dim, "num_hidden_layers",
                       cfg.n_layers, "num_attention_heads", cfg.n_heads, "num_key_value_heads", cfg.n_kv_heads,
                       "head_dim", cfg.head_dim, "intermediate_size", cfg.hidden, "tie_word_embeddings",
                       cfg.tie_embeddings, "qkv_bias", cfg.qkv_bias, "o_bias", cfg.o_bias, "qk_norm", cfg.qk_norm, "rms_norm_eps",
                       cfg.norm_eps, "rope_theta", cfg.rope_theta, "rope_scaling", rope[cfg.rope_kind]));
  tfm_model_free(m);
  return 0;
}

/* --save-dtype of SUB as TFM_DT_* (default: same), or -2 after a message. */
static int cli_dtype(const char *sub, const CliArgs *a) {
  int dt = a->save_dtype ? tfm_dtype_parse(a->save_dtype) : TFM_DT_SAME;
  if (dt == -2) fprintf(stderr, "rein model %s: --save-dtype '%s': expected same, f32, bf16 or f16\n", sub, a->save_dtype);
  return dt;
}

/* rein model init: a random model of --config written to -o. */
static int cli_init(const CliArgs *a) {
  if (!a->config || !a->outdir || !a->have_seed) {
    fprintf(stderr, "rein model init: needs --config, --seed and -o\n");
    return 2;
  }
  int dt = cli_dtype("init", a);
  if (dt == -2) return 2;
  char err[1024];
  TfmConfig cfg;
  TfmModel *m = NULL;
  char *text = rc_read_file(a->config, 64u << 20, NULL, err, sizeof err);
  if (!text || tfm_config_parse(text, a->config, &cfg, err, sizeof err) || !(m = tfm_model_new(&cfg, err, sizeof err))) {
    fprintf(stderr, "rein model init: %s\n", err);
    free(text);
    return 1;
  }
  tfm_model_init(m, (uint64_t)a->seed);
  int bad = tfm_model_save(m, a->outdir, text, dt, err, sizeof err);
  free(text);
  tfm_model_free(m);
  if (bad) {
    fprintf(stderr, "rein model init: %s\n", err);
    return 1;
  }
  return 0;
}

/* rein model convert: --model rewritten to -o in --save-dtype (its config.json copied). */
static int cli_convert(const CliArgs *a) {
  if (!a->model || !a->outdir || !a->save_dtype) {
    fprintf(stderr, "rein model convert: needs --model, -o and --save-dtype\n");
    return 2;
  }
  int dt = cli_dtype("convert", a);
  if (dt == -2) return 2;
  char err[1024], p[4096];
  TfmModel *m = tfm_model_load(a->model, err, sizeof err);
  snprintf(p, sizeof p, "%s/config.json", a->model);
  char *text = m ? rc_read_file(p, 64u << 20, NULL, err, sizeof err) : NULL;
  int bad = !text || tfm_model_save(m, a->outdir, text, dt, err, sizeof err);
  if (bad) fprintf(stderr, "rein model convert: %s\n", err);
  free(text);
  tfm_model_free(m);
  return bad;
}

/* rein model logprobs: log-probabilities and entropies of each --tokens sequence under M. */
static int cli_logprobs(TfmModel *m, const CliArgs *a) {
  const TokList *t = &a->toks;
  int nseqs = t->nseqs, ntok = t->n, rc = 1;
  char err[1024];
  int *off = rc_malloc((size_t)(nseqs + 1) * sizeof(int));
  int32_t *tgt = rc_malloc((size_t)ntok * sizeof(int32_t));
  tfm_f *lp = rc_malloc((size_t)ntok * sizeof(tfm_f)), *en = rc_malloc((size_t)ntok * sizeof(tfm_f));
  off[0] = 0;
  for (int s = 0; s < nseqs; s++) {
    off[s + 1] = off[s] + t->lens[s];
    for (int i = off[s]; i < off[s + 1]; i++) tgt[i] = i + 1 < off[s + 1] ? t->v[i + 1] : -1;
  }
  TfmBatch b = {nseqs, off, t->v, tgt, 1.0};
  if (tfm_forward(m, &b, lp, en, NULL, err, sizeof err)) {
    fprintf(stderr, "rein model logprobs: %s\n", err);
  } else {
    json_t *seqs = json_array();
    long bad = 0;
    for (int s = 0; s < nseqs; s++) {
      int o = off[s], L = t->lens[s];
      json_array_append_new(seqs, json_pack("{s:o,s:o,s:o}", "tokens", ints(t->v + o, L), "logp",
                                            reals(lp + o, L - 1, &bad), "entropy", reals(en + o, L - 1, &bad)));
    }
    print_json(json_pack("{s:o}", "sequences", seqs));
    rc = finite_status("logprobs", bad);
  }
  free(off);
  free(tgt);
  free(lp);
  free(en);
  return rc;
}

/* rein model generate: --samples continuations of each --prompt-tokens sequence under M (the
 * model's EOS tokens stop them unless --stop is given). */
static int cli_generate(TfmModel *m, CliArgs *a) {
  if (a->max_new < 1) {
    fprintf(stderr, "rein model generate: needs --max-new N\n");
    return 2;
  }
  TokList *stop = &a->stop;
  const TokList *t = &a->toks;
  /* generation_config.json: its eos ids stop (else config.json's), its sampling parameters are
   * the defaults; --stop, --temperature, --top-p, --top-k override them */
  TfmGenConfig gc;
  char gerr[1024];
  if (tfm_genconfig_load(a->model, m->cfg.vocab, &gc, gerr, sizeof gerr)) {
    fprintf(stderr, "rein model generate: %s\n", gerr);
    return 1;
  }
  if (!a->have_stop) {
    const int *eos = gc.n_eos ? gc.eos : m->cfg.eos;
    int n_eos = gc.n_eos ? gc.n_eos : m->cfg.n_eos;
    for (int i = 0; i < n_eos; i++) {
      if (stop->n == stop->cap) stop->v = rc_realloc(stop->v, (size_t)(stop->cap = stop->cap ? 2 * stop->cap : 8) * sizeof(int32_t));
      stop->v[stop->n++] = eos[i];
    }
  }
  if (!a->have_temp && gc.do_sample == 0) a->temp = 0;   /* the file asks for greedy decoding */
  else if (!a->have_temp && gc.has_temperature) a->temp = gc.temperature;
  if (!a->have_top_p && gc.has_top_p && gc.do_sample != 0) a->top_p = gc.top_p;
  if (!a->have_top_k && gc.has_top_k && gc.do_sample != 0) a->top_k = gc.top_k;
  int G = (int)a->samples, n = t->nseqs * G, rc = 1;
  char err[1024];
  int *off = rc_malloc((size_t)(n + 1) * sizeof(int));
  int32_t *pr = rc_malloc((size_t)t->n * G * sizeof(int32_t));
  off[0] = 0;
  for (int s = 0, src = 0; s < t->nseqs; src += t->lens[s], s++)
    for (int j = 0; j < G; j++) {
      int q = s * G + j;
      memcpy(pr + off[q], t->v + src, (size_t)t->lens[s] * sizeof(int32_t));
      off[q + 1] = off[q] + t->lens[s];
    }
  TfmSampling sp = {a->temp, a->top_p, (int)a->top_k, (int)a->max_new, stop->n, stop->v, (uint64_t)a->seed, 0};
  TfmGenOut go;
  if (tfm_generate(m, n, off, pr, &sp, &go, err, sizeof err)) {
    fprintf(stderr, "rein model generate: %s\n", err);
  } else {
    json_t *seqs = json_array();
    long bad = 0;
    for (int q = 0; q < n; q++) {
      size_t o = (size_t)q * go.max_new;
      json_array_append_new(seqs, json_pack("{s:o,s:o,s:o,s:o,s:b}", "prompt", ints(pr + off[q], off[q + 1] - off[q]),
                                            "tokens", ints(go.tokens + o, go.len[q]), "logp",
                                            reals(go.logp + o, go.len[q], &bad), "sample_logp",
                                            reals(go.sample_logp + o, go.len[q], &bad), "stopped", go.stopped[q]));
    }
    print_json(json_pack("{s:o}", "sequences", seqs));
    tfm_genout_free(&go);
    rc = finite_status("generate", bad);
  }
  free(off);
  free(pr);
  return rc;
}

/* logprobs and generate: load --model and check the token ids against its vocabulary; then run
 * subcommand SUB. */
static int cli_run_model(const char *sub, CliArgs *a) {
  if (!a->model || !a->toks.nseqs) {
    fprintf(stderr, "rein model %s: needs --model and at least one %s\n", sub,
            strcmp(sub, "logprobs") ? "--prompt-tokens" : "--tokens");
    return 2;
  }
  char err[1024];
  TfmModel *m = tfm_model_load(a->model, err, sizeof err);
  if (!m) {
    fprintf(stderr, "rein model %s: %s\n", sub, err);
    return 1;
  }
  int rc = -1;
  for (int i = 0; rc < 0 && i < a->toks.n; i++)
    if (a->toks.v[i] >= m->cfg.vocab) {
      fprintf(stderr, "rein model %s: token %d is outside the vocabulary of %s (size %d)\n", sub, a->toks.v[i], a->model,
              m->cfg.vocab);
      rc = 1;
    }
  if (rc < 0) rc = strcmp(sub, "logprobs") ? cli_generate(m, a) : cli_logprobs(m, a);
  tfm_model_free(m);
  return rc;
}

/* Parses the options after the subcommand into A; the exit status when the command is done
 * (help, or a bad command line), else -1. */
static int cli_parse(CliArgs *a, int argc, char **argv) {
  const RcOpt t[] = {
      {.name = "config", .kind = RC_OPT_STR, .dst = &a->config, .arg = "CONFIG.json", .help = "info, init: the configuration"},
      {.name = "model", .kind = RC_OPT_STR, .dst = &a->model, .arg = "DIR", .help = "the model directory"},
      {.name = "output", .letter = 'o', .kind = RC_OPT_STR, .dst = &a->outdir, .arg = "DIR", .help = "init, convert: the directory written"},
      {.name = "save-dtype", .kind = RC_OPT_STR, .dst = &a->save_dtype, .arg = "D",
       .help = "init, convert: same (the dtype loaded; init: f32), f32, bf16 or f16 (rounded to nearest even)"},
      {.name = "tokens", .kind = RC_OPT_FN, .dst = &a->toks, .fn = opt_tokens, .arg = "T,T,...",
       .help = "logprobs: a sequence (repeatable)"},
      {.name = "prompt-tokens", .kind = RC_OPT_FN, .dst = &a->toks, .fn = opt_prompt, .arg = "T,T,...",
       .help = "generate: a prompt (repeatable)"},
      {.name = "max-new", .kind = RC_OPT_NUM, .dst = &a->max_new, .lo = 1, .hi = 1e6, .arg = "N", .help = "generate: new tokens at most"},
      {.name = "temperature", .kind = RC_OPT_NUM, .dst = &a->temp, .seen = &a->have_temp, .lo = 0, .hi = 1e6, .arg = "T", .help = "generate: 0 is greedy (default: generation_config.json, else 1)"},
      {.name = "top-p", .kind = RC_OPT_NUM, .dst = &a->top_p, .seen = &a->have_top_p, .lo = 1e-9, .hi = 1, .arg = "P", .help = "generate: nucleus (default: generation_config.json, else 1)"},
      {.name = "top-k", .kind = RC_OPT_NUM, .dst = &a->top_k, .seen = &a->have_top_k, .lo = 0, .hi = 1e9, .arg = "K", .help = "generate: top-k (0: off; default: generation_config.json, else 0)"},
      {.name = "stop", .kind = RC_OPT_FN, .dst = &a->stop, .fn = opt_stop, .seen = &a->have_stop, .arg = "T,T,...",
       .help = "generate: stop tokens (default: the EOS ids of generation_config.json, else config.json's; empty: none)"},
      {.name = "seed", .kind = RC_OPT_NUM, .dst = &a->seed, .lo = 0, .hi = 9007199254740992.0, .seen = &a->have_seed,
       .arg = "S", .help = "init: the weights' seed; generate: the sampling seed"},
      {.name = "samples", .kind = RC_OPT_NUM, .dst = &a->samples, .lo = 1, .hi = 1e6, .arg = "G", .help = "generate: samples per prompt"},
      {.name = "threads", .kind = RC_OPT_NUM, .dst = &a->threads, .lo = 1, .hi = 1024, .arg = "N", .help = "CPU threads"},
      RC_OPTS_END};
  char err[1024];
  int k = rc_opts_parse(t, argc, argv, 2, err, sizeof err);
  if (k == RC_OPTS_HELP) {
    model_usage(stdout);
    printf("\n");
    rc_opts_help(stdout, t);
    return 0;
  }
  if (k == RC_OPTS_USAGE) {
    model_usage(stderr);
    return 2;
  }
  if (k == RC_OPTS_BAD) {
    fprintf(stderr, "rein model: %s\n", err);
    return 1;
  }
  if (k < argc) {
    fprintf(stderr, "rein model: unexpected argument '%s'\n", argv[k]);
    return 2;
  }
  return -1;
}

int tfm_cli_main(int argc, char **argv) {
  if (argc < 2) {
    model_usage(stderr);
    return 2;
  }
  const char *sub = argv[1];
  if (!strcmp(sub, "-h") || !strcmp(sub, "--help")) {
    model_usage(stdout);
    return 0;
  }
  CliArgs a = {.temp = 1, .top_p = 1, .max_new = -1, .samples = 1};
  int rc = cli_parse(&a, argc, argv);
  if (rc < 0) {
    if (a.threads > 0) omp_set_num_threads((int)a.threads);
    if (!strcmp(sub, "info")) rc = cli_info(&a);
    else if (!strcmp(sub, "init")) rc = cli_init(&a);
    else if (!strcmp(sub, "convert")) rc = cli_convert(&a);
    else if (!strcmp(sub, "logprobs") || !strcmp(sub, "generate")) rc = cli_run_model(sub, &a);
    else {
      fprintf(stderr, "rein model: unknown subcommand '%s'\n", sub);
      model_usage(stderr);
      rc = 2;
    }
  }
  free(a.toks.v);
  free(a.toks.lens);
  free(a.stop.v);
  return rc;
}

