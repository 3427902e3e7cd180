/* tok.h — Hugging Face tokenizers and chat templates, in C (library reintok, runtime/tok/).
 *
 * A model directory as users bring it holds tokenizer.json (the tokenizer), tokenizer_config.json
 * (added-token flags, bos/eos names, the chat_template) and generation_config.json.  This header
 * is the contract the rest of Rein codes against:
 *   - tok_*   a tokenizer.json of the byte-level BPE family (GPT-2, SmolLM, Qwen2/2.5/3, Llama 3,
 *             DeepSeek): normalizer, pre-tokenizer, BPE model, added/special tokens,
 *             post-processor and decoder, each as the file describes it.  A component the library
 *             does not implement is an error naming it, never a silently different encoding.
 *   - chat_*  the chat_template of tokenizer_config.json rendered for a conversation, byte for
 *             byte as the Hugging Face reference renders it.
 * Errors: functions that can fail return NULL or -1 and write one line into err (errlen bytes):
 * the file, the JSON field, what is wrong.  Nothing here exits the process except on out of
 * memory (rc_xmalloc's policy).
 */
#ifndef REIN_TOK_H
#define REIN_TOK_H

#include <stddef.h>
#include <stdint.h>

typedef struct Tok Tok;

/* Load a tokenizer: path is a model directory (tokenizer.json, and tokenizer_config.json when
 * present) or a tokenizer.json file.  NULL with err on failure. */
Tok *tok_load(const char *path, char *err, size_t errlen);
void tok_free(Tok *t);

/* Ids run 0 .. tok_vocab_size(t) - 1 (the model's vocabulary and the added tokens). */
int tok_vocab_size(const Tok *t);

/* Encode len bytes of UTF-8 text.  add_special: apply the post-processor (e.g. Llama 3's BOS),
 * as the reference's add_special_tokens.  Special/added tokens written in the text are matched
 * as the file says.  *ids gets a new array (free it) of *n ids.  Returns 0, or -1 with err (e.g.
 * invalid UTF-8).  A Tok caches pre-token pieces: it is not safe to encode from two threads at
 * once on the same Tok. */
int tok_encode(Tok *t, const char *text, size_t len, int add_special, int32_t **ids, size_t *n,
               char *err, size_t errlen);

/* Decode ids to a new NUL-terminated string (free it) through the file's decoder;
 * skip_special drops special tokens as the reference's skip_special_tokens.  NULL with err for an
 * id outside the vocabulary. */
char *tok_decode(const Tok *t, const int32_t *ids, size_t n, int skip_special, char *err,
                 size_t errlen);

/* The id of a token's exact string (vocabulary or added token), or -1. */
int tok_token_id(const Tok *t, const char *token);
/* The string of an id (as stored in the file), or NULL when out of range. */
const char *tok_id_token(const Tok *t, int id);
/* Whether id is a special added token. */
int tok_is_special(const Tok *t, int id);

/* From tokenizer_config.json (NULL when absent): the chat_template source and the bos / eos
 * token strings. */
const char *tok_chat_template(const Tok *t);
const char *tok_bos_token(const Tok *t);
const char *tok_eos_token(const Tok *t);

/* `rein tokenize` (runtime/tok/tok_cli.c): argv[0] is "tokenize"; returns the exit status. */
int tok_cli_main(int argc, char **argv);

/* ---- chat templates ---- */

typedef struct {
  const char *role;     /* "system", "user", "assistant" */
  const char *content;
} ChatMsg;

/* Render template (a chat_template's Jinja source) for the conversation msgs[0..n), with
 * add_generation_prompt and the bos_token / eos_token variables (NULL: undefined), into a new
 * string (free it).  NULL with err naming the template line and the construct for a template the
 * renderer cannot run, or for an error the template raises itself (raise_exception). */
char *chat_render(const char *tmpl, const ChatMsg *msgs, int n, int add_generation_prompt,
                  const char *bos_token, const char *eos_token, char *err, size_t errlen);

#endif
