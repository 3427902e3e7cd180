/* tfm_cli.c — `rein model init | logprobs | generate`: inspecting and testing the executor from
 * the command line.  Output is JSON on stdout; errors are one line on stderr and exit status 1.
 */
#include "tfm_internal.h"

#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <limits.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void model_usage(FILE *f) {
  fprintf(f,
          "usage: rein model info (--config CONFIG.json | --model DIR)\n"
          "       rein model init --config CONFIG.json --seed N -o DIR\n"
          "       rein model logprobs --model DIR --tokens T,T,... [--tokens ...] [--threads N]\n"
          "       rein model generate --model DIR --prompt-tokens T,T,... [--prompt-tokens ...]\n"
          "                 --max-new N [--temperature T] [--top-p P] [--top-k K] [--stop T,T,...]\n"
          "                 [--seed S] [--samples G] [--threads N]\n");
}

/* A list of token ids "1,2,3" appended to *v (n, cap). */
static int parse_tokens(const char *what, const char *s, int32_t **v, int *n, int *cap) {
  const char *p = s;
  int count = 0;
  if (!*p) goto bad;
  for (;;) {
    char *end;
    errno = 0;
    if (*p < '0' || *p > '9') goto bad; /* strtol would accept spaces and a sign */
    long x = strtol(p, &end, 10);
    if (end == p || errno || x < 0 || x > INT32_MAX) goto bad;
    if (*n == *cap) {
      *cap = *cap ? 2 * *cap : 64;
      *v = realloc(*v, (size_t)*cap * sizeof(int32_t));
    }
    (*v)[(*n)++] = (int32_t)x;
    count++;
    if (!*end) return count;
    if (*end != ',') goto bad;
    p = end + 1;
  }
bad:
  fprintf(stderr, "rein model: %s '%s': expected comma-separated non-negative token ids\n", what, s);
  return -1;
}

static int parse_num(const char *what, const char *s, double lo, double hi, double *out) {
  char *end;
  errno = 0;
  double x = strtod(s, &end);
  if (end == s || *end || errno || !(x >= lo && x <= hi)) {
    fprintf(stderr, "rein model: %s '%s': expected a number in [%g, %g]\n", what, s, lo, hi);
    return -1;
  }
  *out = x;
  return 0;
}

static void print_json(json_t *o) {
  char *s = json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(9));
  puts(s);
  free(s);
  json_decref(o);
}

static json_t *reals(const tfm_f *v, int n) {
  json_t *a = json_array();
  for (int i = 0; i < n; i++) json_array_append_new(a, json_real((double)v[i]));
  return a;
}

static json_t *ints(const int32_t *v, int n) {
  json_t *a = json_array();
  for (int i = 0; i < n; i++) json_array_append_new(a, json_integer(v[i]));
  return a;
}

enum { O_CONFIG = 256, O_MODEL, O_TOKENS, O_PROMPT, O_MAXNEW, O_TEMP, O_TOPP, O_TOPK, O_STOP,
       O_SEED, O_SAMPLES, O_THREADS };

static const struct option model_opts[] = {
    {"config", required_argument, 0, O_CONFIG},   {"model", required_argument, 0, O_MODEL},
    {"tokens", required_argument, 0, O_TOKENS},   {"prompt-tokens", required_argument, 0, O_PROMPT},
    {"max-new", required_argument, 0, O_MAXNEW},  {"temperature", required_argument, 0, O_TEMP},
    {"top-p", required_argument, 0, O_TOPP},      {"top-k", required_argument, 0, O_TOPK},
    {"stop", required_argument, 0, O_STOP},       {"seed", required_argument, 0, O_SEED},
    {"samples", required_argument, 0, O_SAMPLES}, {"threads", required_argument, 0, O_THREADS},
    {"output", required_argument, 0, 'o'},        {"help", no_argument, 0, 'h'},
    {0, 0, 0, 0}};

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
  const char *config = NULL, *model = NULL, *outdir = NULL;
  int32_t *toks = NULL, *stop = NULL;
  int ntok = 0, ctok = 0, nstop = 0, cstop = 0, have_stop = 0;
  int *lens = NULL, nseqs = 0;
  double temp = 1, top_p = 1, top_k = 0, max_new = -1, seed = 0, samples = 1, threads = 0;
  int have_seed = 0, rc = 1;
  TfmModel *m = NULL;
  char err[1024];
  optind = 2;
  int c;
  while ((c = getopt_long(argc, argv, "o:h", model_opts, NULL)) != -1) {
    switch (c) {
    case O_CONFIG: config = optarg; break;
    case O_MODEL: model = optarg; break;
    case 'o': outdir = optarg; break;
    case O_TOKENS:
    case O_PROMPT: {
      int k = parse_tokens(c == O_TOKENS ? "--tokens" : "--prompt-tokens", optarg, &toks, &ntok, &ctok);
      if (k < 0) goto done;
      lens = realloc(lens, (size_t)(nseqs + 1) * sizeof(int));
      lens[nseqs++] = k;
      break;
    }
    case O_STOP:
      have_stop = 1;
      if (*optarg && parse_tokens("--stop", optarg, &stop, &nstop, &cstop) < 0) goto done;
      break;
    case O_MAXNEW: if (parse_num("--max-new", optarg, 1, 1e6, &max_new)) goto done; break;
    case O_TEMP: if (parse_num("--temperature", optarg, 0, 1e6, &temp)) goto done; break;
    case O_TOPP: if (parse_num("--top-p", optarg, 1e-9, 1, &top_p)) goto done; break;
    case O_TOPK: if (parse_num("--top-k", optarg, 0, 1e9, &top_k)) goto done; break;
    case O_SEED: if (parse_num("--seed", optarg, 0, 9007199254740992.0, &seed)) goto done; have_seed = 1; break;
    case O_SAMPLES: if (parse_num("--samples", optarg, 1, 1e6, &samples)) goto done; break;
    case O_THREADS: if (parse_num("--threads", optarg, 1, 1024, &threads)) goto done; break;
    case 'h': model_usage(stdout); rc = 0; goto done;
    default: model_usage(stderr); rc = 2; goto done;
    }
  }
  if (optind < argc) {
    fprintf(stderr, "rein model: unexpected argument '%s'\n", argv[optind]);
    rc = 2;
    goto done;
  }
  if (threads > 0) omp_set_num_threads((int)threads);

  if (!strcmp(sub, "info")) {
    /* The parsed configuration and the parameter count, without reading any weights. */
    char p[4096];
    if (!config && model) snprintf(p, sizeof p, "%s/config.json", model);
    else if (config) snprintf(p, sizeof p, "%s", config);
    else {
      fprintf(stderr, "rein model info: needs --config or --model\n");
      rc = 2;
      goto done;
    }
    TfmConfig cfg;
    if (tfm_config_load(p, &cfg, err, sizeof err)) {
      fprintf(stderr, "rein model info: %s\n", err);
      goto done;
    }
    m = tfm_model_new(&cfg, err, sizeof err);
    if (!m) {
      fprintf(stderr, "rein model info: %s\n", err);
      goto done;
    }
    size_t n = 0;
    for (int t = 0; t < m->ntensors; t++) n += m->tensors[t].n;
    static const char *rope[] = {"default", "linear", "llama3"};
    print_json(json_pack("{s:s,s:I,s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:b,s:b,s:b,s:f,s:f,s:s}", "model_type",
                         cfg.arch == TFM_QWEN2 ? "qwen2" : "llama", "params", (json_int_t)n, "tensors",
                         m->ntensors, "vocab_size", cfg.vocab, "hidden_size", cfg.dim, "num_hidden_layers",
                         cfg.n_layers, "num_attention_heads", cfg.n_heads, "num_key_value_heads", cfg.n_kv_heads,
                         "head_dim", cfg.head_dim, "intermediate_size", cfg.hidden, "tie_word_embeddings",
                         cfg.tie_embeddings, "qkv_bias", cfg.qkv_bias, "o_bias", cfg.o_bias, "rms_norm_eps",
                         cfg.norm_eps, "rope_theta", cfg.rope_theta, "rope_scaling", rope[cfg.rope_kind]));
    rc = 0;
    goto done;
  }

  if (!strcmp(sub, "init")) {
    if (!config || !outdir || !have_seed) {
      fprintf(stderr, "rein model init: needs --config, --seed and -o\n");
      rc = 2;
      goto done;
    }
    TfmConfig cfg;
    char *text = rc_read_file(config, 64u << 20, NULL, err, sizeof err);
    if (!text || tfm_config_parse(text, config, &cfg, err, sizeof err) || !(m = tfm_model_new(&cfg, err, sizeof err))) {
      fprintf(stderr, "rein model init: %s\n", err);
      free(text);
      goto done;
    }
    tfm_model_init(m, (uint64_t)seed);
    int bad = tfm_model_save(m, outdir, text, err, sizeof err);
    free(text);
    if (bad) {
      fprintf(stderr, "rein model init: %s\n", err);
      goto done;
    }
    rc = 0;
    goto done;
  }

  if (strcmp(sub, "logprobs") && strcmp(sub, "generate")) {
    fprintf(stderr, "rein model: unknown subcommand '%s'\n", sub);
    model_usage(stderr);
    rc = 2;
    goto done;
  }
  if (!model || !nseqs) {
    fprintf(stderr, "rein model %s: needs --model and at least one %s\n", sub,
            strcmp(sub, "logprobs") ? "--prompt-tokens" : "--tokens");
    rc = 2;
    goto done;
  }
  m = tfm_model_load(model, err, sizeof err);
  if (!m) {
    fprintf(stderr, "rein model %s: %s\n", sub, err);
    goto done;
  }
  for (int i = 0; i < ntok; i++)
    if (toks[i] >= m->cfg.vocab) {
      fprintf(stderr, "rein model %s: token %d is outside the vocabulary of %s (size %d)\n", sub, toks[i], model, m->cfg.vocab);
      goto done;
    }

  if (!strcmp(sub, "logprobs")) {
    int *off = malloc((size_t)(nseqs + 1) * sizeof(int));
    int32_t *tgt = malloc((size_t)ntok * sizeof(int32_t));
    tfm_f *lp = malloc((size_t)ntok * sizeof(tfm_f)), *en = malloc((size_t)ntok * sizeof(tfm_f));
    off[0] = 0;
    for (int s = 0; s < nseqs; s++) {
      off[s + 1] = off[s] + lens[s];
      for (int i = off[s]; i < off[s + 1]; i++) tgt[i] = i + 1 < off[s + 1] ? toks[i + 1] : -1;
    }
    TfmBatch b = {nseqs, off, toks, tgt};
    if (tfm_forward(m, &b, lp, en, NULL, err, sizeof err)) {
      fprintf(stderr, "rein model logprobs: %s\n", err);
    } else {
      json_t *seqs = json_array();
      for (int s = 0; s < nseqs; s++) {
        int o = off[s], L = lens[s];
        json_array_append_new(seqs, json_pack("{s:o,s:o,s:o}", "tokens", ints(toks + o, L), "logp",
                                              reals(lp + o, L - 1), "entropy", reals(en + o, L - 1)));
      }
      print_json(json_pack("{s:o}", "sequences", seqs));
      rc = 0;
    }
    free(off);
    free(tgt);
    free(lp);
    free(en);
    goto done;
  }

  /* generate */
  if (max_new < 1) {
    fprintf(stderr, "rein model generate: needs --max-new N\n");
    rc = 2;
    goto done;
  }
  if (!have_stop)
    for (int i = 0; i < m->cfg.n_eos; i++) {
      if (nstop == cstop) stop = realloc(stop, (size_t)(cstop = cstop ? 2 * cstop : 8) * sizeof(int32_t));
      stop[nstop++] = m->cfg.eos[i];
    }
  int G = (int)samples, n = nseqs * G;
  int *off = malloc((size_t)(n + 1) * sizeof(int));
  int32_t *pr = malloc((size_t)ntok * G * sizeof(int32_t));
  off[0] = 0;
  for (int s = 0, src = 0; s < nseqs; src += lens[s], s++)
    for (int j = 0; j < G; j++) {
      int q = s * G + j;
      memcpy(pr + off[q], toks + src, (size_t)lens[s] * sizeof(int32_t));
      off[q + 1] = off[q] + lens[s];
    }
  TfmSampling sp = {temp, top_p, (int)top_k, (int)max_new, nstop, stop, (uint64_t)seed};
  TfmGenOut go;
  if (tfm_generate(m, n, off, pr, &sp, &go, err, sizeof err)) {
    fprintf(stderr, "rein model generate: %s\n", err);
  } else {
    json_t *seqs = json_array();
    for (int q = 0; q < n; q++) {
      size_t o = (size_t)q * go.max_new;
      json_array_append_new(seqs, json_pack("{s:o,s:o,s:o,s:o,s:b}", "prompt", ints(pr + off[q], off[q + 1] - off[q]),
                                            "tokens", ints(go.tokens + o, go.len[q]), "logp", reals(go.logp + o, go.len[q]),
                                            "sample_logp", reals(go.sample_logp + o, go.len[q]), "stopped", go.stopped[q]));
    }
    print_json(json_pack("{s:o}", "sequences", seqs));
    tfm_genout_free(&go);
    rc = 0;
  }
  free(off);
  free(pr);
done:
  tfm_model_free(m);
  free(toks);
  free(stop);
  free(lens);
  return rc;
}
