/* task_tok_hf.c — a model directory's own tokenizer as a TaskTok (rein/task.h): the Hugging Face
 * tokenizer.json and the chat template of tokenizer_config.json, through library reintok
 * (rein/tok.h).
 *
 * A prompt is what the reference's apply_chat_template(conversation, add_generation_prompt=True,
 * tokenize=True) gives: the item's conversation (or its prompt as the one user turn) rendered by
 * the chat template, then encoded without adding special tokens (the template writes them: a
 * second <bos> would be wrong).  A model without a chat template (a base model) encodes the item's
 * prompt text with the post-processor's specials, as the reference's tokenizer(text) does.  A
 * response is decoded up to its first eos id with special tokens skipped.  The eos ids, which stop
 * sampling: generation_config.json's eos_token_id (an int or a list), else tokenizer_config.json's
 * eos_token, else config.json's eos_token_id.
 */
#include "trn_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rein/tok.h"

typedef struct {
  Tok *t;
  char dir[TRN_PATH];
} Hf;

static int hf_ids(int32_t *ids, size_t n, int32_t **out, char *err, size_t errlen) {
  if (n == 0) {
    free(ids);
    return snprintf(err, errlen, "the prompt encodes to no tokens"), -1;
  }
  if (n > (size_t)TRN_MAX_TOKENS) {
    free(ids);
    return snprintf(err, errlen, "the prompt encodes to %zu tokens", n), -1;
  }
  *out = ids;
  return (int)n;
}

static int hf_prompt(TaskTok *k, const TaskItem *it, int32_t **out, char *err, size_t errlen) {
  Hf *h = k->state;
  const char *tmpl = tok_chat_template(h->t);
  int32_t *ids = NULL;
  size_t n = 0;
  *out = NULL;
  if (!tmpl) {
    if (!it->prompt)
      return snprintf(err, errlen, "a conversation needs a chat template, and %s/tokenizer_config.json has no "
                                   "'chat_template'", h->dir), -1;
    if (tok_encode(h->t, it->prompt, strlen(it->prompt), 1, &ids, &n, err, errlen)) return -1;
    return hf_ids(ids, n, out, err, errlen);
  }
  ChatMsg one = {"user", it->prompt}, *msgs = &one;
  int nm = 1;
  if (it->nmsgs) {
    msgs = rc_malloc((size_t)it->nmsgs * sizeof *msgs);
    for (int i = 0; i < it->nmsgs; i++) msgs[i] = (ChatMsg){it->msgs[i].role, it->msgs[i].content};
    nm = it->nmsgs;
  }
  char *text = chat_render(tmpl, msgs, nm, 1, tok_bos_token(h->t), tok_eos_token(h->t), err, errlen);
  if (msgs != &one) free(msgs);
  if (!text) return -1;
  int rc = tok_encode(h->t, text, strlen(text), 0, &ids, &n, err, errlen);
  free(text);
  if (rc) return -1;
  return hf_ids(ids, n, out, err, errlen);
}

static int hf_encode(TaskTok *k, const char *text, int32_t **out, char *err, size_t errlen) {
  Hf *h = k->state;
  size_t n = 0;
  *out = NULL;
  if (tok_encode(h->t, text, strlen(text), 0, out, &n, err, errlen)) return -1;
  if (n > (size_t)TRN_MAX_TOKENS) {
    free(*out);
    *out = NULL;
    return snprintf(err, errlen, "the text encodes to %zu tokens", n), -1;
  }
  return (int)n;
}

static char *hf_decode(TaskTok *k, const int32_t *ids, int n, int all_ids, char *err, size_t errlen) {
  Hf *h = k->state;
  int cut = n;
  for (int i = 0; i < n && !all_ids && cut == n; i++)
    for (int e = 0; e < k->neos; e++)
      if (ids[i] == k->eos[e]) cut = i;
  return tok_decode(h->t, ids, (size_t)cut, !all_ids, err, errlen);
}

static void hf_destroy(TaskTok *k) {
  Hf *h = k->state;
  tok_free(h->t);
  free(h);
}

int trn_model_tok(const char *dir, TaskTok **out, char *err, size_t errlen) {
  char path[TRN_PATH + 64];
  *out = NULL;
  snprintf(path, sizeof path, "%s/tokenizer.json", dir);
  if (access(path, F_OK) != 0) return 0;   /* the character tokenizer */
  Tok *t = tok_load(dir, err, errlen);
  if (!t) return -1;
  TaskTok *k = rc_calloc(1, sizeof *k);
  Hf *h = rc_calloc(1, sizeof *h);
  h->t = t;
  snprintf(h->dir, sizeof h->dir, "%s", dir);
  k->kind = "hf";
  k->vocab = tok_vocab_size(t);
  k->prompt = hf_prompt;
  k->encode = hf_encode;
  k->decode = hf_decode;
  k->destroy = hf_destroy;
  k->state = h;
  /* the stop ids: generation_config.json's, else tokenizer_config.json's eos_token, else
   * config.json's eos_token_id */
  TfmGenConfig gc;
  if (tfm_genconfig_load(dir, k->vocab, &gc, err, errlen)) {
    task_tok_free(k);
    return -1;
  }
  for (int i = 0; i < gc.n_eos && k->neos < TASK_MAX_EOS; i++) k->eos[k->neos++] = gc.eos[i];
  const char *eos = tok_eos_token(t);
  int id = eos ? tok_token_id(t, eos) : -1;
  if (!k->neos && eos && id < 0) {
    snprintf(err, errlen, "%s/tokenizer_config.json: field 'eos_token': '%s' is not a token of %s", dir, eos, path);
    task_tok_free(k);
    return -1;
  }
  if (!k->neos && id >= 0) k->eos[k->neos++] = id;
  if (!k->neos) {
    TfmConfig cfg;
    snprintf(path, sizeof path, "%s/config.json", dir);
    if (tfm_config_load(path, &cfg, err, errlen)) {
      task_tok_free(k);
      return -1;
    }
    for (int i = 0; i < cfg.n_eos && k->neos < TASK_MAX_EOS; i++) k->eos[k->neos++] = cfg.eos[i];
  }
  if (!k->neos) {
    snprintf(err, errlen, "%s: no end-of-sequence token: none of generation_config.json's 'eos_token_id', "
                          "tokenizer_config.json's 'eos_token' and config.json's 'eos_token_id' names one", dir);
    task_tok_free(k);
    return -1;
  }
  k->pad = k->eos[0];
  *out = k;
  return 0;
}
