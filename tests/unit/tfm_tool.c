/* tfm_tool.c — one training step of the transformer executor from files, for the PyTorch oracle
 * (tests/oracle/run_tfm_oracle.py).
 *
 *   tfm_tool step --model DIR --batch B.json --out OUTDIR [--lr X] [--beta1 X] [--beta2 X]
 *                 [--eps X] [--weight-decay X] [--max-grad-norm X] [--micro K] [--threads N]
 *
 * B.json: {"sequences": [[tok...]...], "first_target": [k...] (default 1),
 *          "dlogp": [[L-1 numbers]...], "dentropy": [[L-1 numbers]...]}.
 * Token i >= first_target of a sequence is predicted from the tokens before it; its logp and
 * entropy are reported at index i-1 (0 where there is no target).  Writes OUTDIR/out.json
 * ({"logp", "entropy", "grad_norm"}), OUTDIR/grads.safetensors (before clipping) and the model
 * after one AdamW step (OUTDIR/config.json, OUTDIR/model.safetensors).  --micro K runs the
 * sequences in micro-batches of K, accumulating the gradients.
 */
#include "rein/tfm.h"

#include <jansson.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static int fail(const char *msg, const char *what) {
  fprintf(stderr, "tfm_tool: %s%s%s\n", msg, what ? ": " : "", what ? what : "");
  return 1;
}

int main(int argc, char **argv) {
  if (argc < 2 || strcmp(argv[1], "step")) return fail("usage: tfm_tool step --model DIR --batch B.json --out DIR [...]", NULL);
  const char *model = NULL, *batch = NULL, *out = NULL;
  TfmAdamW o = tfm_adamw_defaults();
  int micro = 0;
  for (int i = 2; i + 1 < argc; i += 2) {
    const char *k = argv[i], *v = argv[i + 1];
    if (!strcmp(k, "--model")) model = v;
    else if (!strcmp(k, "--batch")) batch = v;
    else if (!strcmp(k, "--out")) out = v;
    else if (!strcmp(k, "--lr")) o.lr = atof(v);
    else if (!strcmp(k, "--beta1")) o.beta1 = atof(v);
    else if (!strcmp(k, "--beta2")) o.beta2 = atof(v);
    else if (!strcmp(k, "--eps")) o.eps = atof(v);
    else if (!strcmp(k, "--weight-decay")) o.weight_decay = atof(v);
    else if (!strcmp(k, "--max-grad-norm")) o.max_grad_norm = atof(v);
    else if (!strcmp(k, "--micro")) micro = atoi(v);
    else if (!strcmp(k, "--threads")) omp_set_num_threads(atoi(v));
    else return fail("unknown option", k);
  }
  if (!model || !batch || !out) return fail("needs --model, --batch and --out", NULL);
  char err[1024];
  TfmModel *m = tfm_model_load(model, err, sizeof err);
  if (!m) return fail(err, NULL);
  json_error_t je;
  json_t *B = json_load_file(batch, 0, &je);
  json_t *seqs = json_object_get(B, "sequences"), *ft = json_object_get(B, "first_target"),
         *dl = json_object_get(B, "dlogp"), *de = json_object_get(B, "dentropy");
  if (!json_is_array(seqs) || !json_is_array(dl) || !json_is_array(de)) return fail("bad batch file", batch);
  int S = (int)json_array_size(seqs), N = 0;
  for (int s = 0; s < S; s++) N += (int)json_array_size(json_array_get(seqs, s));
  int *off = calloc((size_t)S + 1, sizeof(int));
  int32_t *tok = calloc((size_t)N + 1, sizeof(int32_t)), *tgt = calloc((size_t)N + 1, sizeof(int32_t));
  tfm_f *glp = calloc((size_t)N + 1, sizeof(tfm_f)), *gen = calloc((size_t)N + 1, sizeof(tfm_f)),
        *lp = calloc((size_t)N + 1, sizeof(tfm_f)), *en = calloc((size_t)N + 1, sizeof(tfm_f));
  for (int s = 0; s < S; s++) {
    json_t *q = json_array_get(seqs, s);
    int L = (int)json_array_size(q), f = ft ? (int)json_integer_value(json_array_get(ft, s)) : 1;
    off[s + 1] = off[s] + L;
    for (int i = 0; i < L; i++) {
      int n = off[s] + i;
      tok[n] = (int32_t)json_integer_value(json_array_get(q, i));
      tgt[n] = -1;
      if (i + 1 < L && i + 1 >= f) {
        tgt[n] = (int32_t)json_integer_value(json_array_get(q, i + 1));
        glp[n] = (tfm_f)json_number_value(json_array_get(json_array_get(dl, s), i));
        gen[n] = (tfm_f)json_number_value(json_array_get(json_array_get(de, s), i));
      }
    }
  }
  if (micro <= 0) micro = S;
  tfm_zero_grad(m);
  for (int s0 = 0; s0 < S; s0 += micro) {
    int s1 = s0 + micro < S ? s0 + micro : S, base = off[s0];
    int *moff = malloc((size_t)(s1 - s0 + 1) * sizeof(int));
    for (int s = s0; s <= s1; s++) moff[s - s0] = off[s] - base;
    TfmBatch b = {s1 - s0, moff, tok + base, tgt + base, 1.0};
    TfmActs *a;
    if (tfm_forward(m, &b, lp + base, en + base, &a, err, sizeof err)) return fail(err, NULL);
    tfm_backward(m, a, glp + base, gen + base);
    free(moff);
  }
  mkdir(out, 0777);
  char p[4096];
  snprintf(p, sizeof p, "%s/grads.safetensors", out);
  if (tfm_st_write(m, m->grads, TFM_DT_F32, p, err, sizeof err)) return fail(err, NULL);
  double gn = tfm_adamw_step(m, &o);
  if (tfm_model_save(m, out, NULL, TFM_DT_SAME, err, sizeof err)) return fail(err, NULL);
  json_t *jl = json_array(), *je2 = json_array();
  for (int s = 0; s < S; s++) {
    json_t *a = json_array(), *b = json_array();
    for (int n = off[s]; n + 1 < off[s + 1]; n++) {
      json_array_append_new(a, json_real(lp[n]));
      json_array_append_new(b, json_real(en[n]));
    }
    json_array_append_new(jl, a);
    json_array_append_new(je2, b);
  }
  snprintf(p, sizeof p, "%s/out.json", out);
  json_t *res = json_pack("{s:o,s:o,s:f}", "logp", jl, "entropy", je2, "grad_norm", gn);
  if (json_dump_file(res, p, JSON_COMPACT | JSON_REAL_PRECISION(9))) return fail("cannot write", p);
  json_decref(res);
  json_decref(B);
  tfm_model_free(m);
  free(off);
  free(tok);
  free(tgt);
  free(glp);
  free(gen);
  free(lp);
  free(en);
  return 0;
}
