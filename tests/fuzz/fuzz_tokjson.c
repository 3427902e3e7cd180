/* fuzz_tokjson.c — libFuzzer harness over the tokenizer reader (tok_load, runtime/tok/tok_load.c)
 * and, for what it accepts, the encoder and the decoder (tok_encode, tok_decode): the
 * tokenizer.json and tokenizer_config.json of every model directory (`rein tokenize`, chat
 * templates, the trainer's tasks).
 *
 * One input is up to three sections, cut at the first "\n#config\n" and the first "\n#text\n"
 * after it (each optional): tokenizer.json, tokenizer_config.json, and a text.  The files are
 * written into a private model directory (made once under /dev/shm, or $TMPDIR, and removed at
 * exit) and the directory is loaded with tok_load.  The load must succeed or fail with one line
 * naming the file; a loaded tokenizer encodes a fixed set of strings (added-token names of Qwen
 * and Llama, whitespace runs, NEL, accents in both normal forms, CJK, emoji, numbers) and the
 * text section, with and without the post-processor; every id must lie in the vocabulary, decode
 * (with and without the special tokens) and have a string that maps back to an id.  Text that is
 * not UTF-8 must be refused with a message.  Nothing may crash, hang or leak.
 */
#include "fuzz_util.h"

#include <sys/stat.h>

#include "rein/tok.h"

static char fz_dir[256];

static void fz_cleanup(void) {
  char p[320];
  snprintf(p, sizeof p, "%s/tokenizer.json", fz_dir);
  unlink(p);
  snprintf(p, sizeof p, "%s/tokenizer_config.json", fz_dir);
  unlink(p);
  rmdir(fz_dir);
}

/* The model directory, made on the first call. */
static const char *fz_model_dir(void) {
  if (fz_dir[0]) return fz_dir;
  struct stat st;
  const char *base = !stat("/dev/shm", &st) && S_ISDIR(st.st_mode) && !access("/dev/shm", W_OK) ? "/dev/shm"
                     : getenv("TMPDIR") && *getenv("TMPDIR")                                      ? getenv("TMPDIR")
                                                                                                  : "/tmp";
  snprintf(fz_dir, sizeof fz_dir, "%s/rein-fuzz-tok-XXXXXX", base);
  if (!mkdtemp(fz_dir)) abort();
  atexit(fz_cleanup);
  return fz_dir;
}

/* Write (or, for NULL, remove) DIR/NAME. */
static void fz_put(const char *dir, const char *name, const uint8_t *data, size_t size) {
  char p[320];
  snprintf(p, sizeof p, "%s/%s", dir, name);
  if (!data) {
    unlink(p);
    return;
  }
  FILE *f = fopen(p, "wb");
  if (!f || (size && fwrite(data, 1, size, f) != size) || fclose(f)) abort();
}

static const uint8_t *fz_find(const uint8_t *s, size_t n, const char *sep) {
  size_t k = strlen(sep);
  for (size_t i = 0; i + k <= n; i++)
    if (!memcmp(s + i, sep, k)) return s + i;
  return NULL;
}

static void fz_check_ids(Tok *t, const int32_t *ids, size_t n) {
  int vocab = tok_vocab_size(t);
  char err[512];
  for (size_t i = 0; i < n; i++) {
    if (ids[i] < 0 || ids[i] >= vocab) abort();
    const char *s = tok_id_token(t, ids[i]);
    if (!s || tok_token_id(t, s) < 0) abort(); /* an emitted id has a string, which has an id */
  }
  for (int skip = 0; skip < 2; skip++) {
    char *d = tok_decode(t, ids, n, skip, err, sizeof err);
    if (!d) abort(); /* every id is in the vocabulary */
    free(d);
  }
}

static void fz_encode(Tok *t, const char *text, size_t len) {
  char err[512];
  for (int special = 0; special < 2; special++) {
    int32_t *ids;
    size_t n;
    if (tok_encode(t, text, len, special, &ids, &n, err, sizeof err)) {
      if (!err[0] || ids || n) abort();
      continue;
    }
    fz_check_ids(t, ids, n);
    free(ids);
  }
}

static const char *const fz_texts[] = {
    "Hello, world! It's 2024: don't I'll we've",
    "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n",
    "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nx<|eot_id|>",
    "  multiple   spaces\n\n\ttabs \r\n end  ",
    "caf\xc3\xa9 cafe\xcc\x81 \xef\xac\x81 \xe2\x85\xa0",   /* é, e + U+0301, the fi ligature, Ⅰ */
    "\xc2\x85nel\xe2\x80\xa8ls\xe3\x80\x80ideo",            /* U+0085, U+2028, U+3000 */
    "\xe6\x95\xb0\xe5\xad\x97 123456789 \xf0\x9f\x98\x80!!", /* CJK, digits, emoji */
    "",
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *dir = fz_model_dir();
  const uint8_t *cfg = fz_find(data, size, "\n#config\n");
  const uint8_t *json_end = cfg ? cfg : data + size, *text = NULL, *end = data + size;
  if (cfg) {
    cfg += 9;
    text = fz_find(cfg, (size_t)(end - cfg), "\n#text\n");
  } else {
    text = fz_find(data, size, "\n#text\n");
    if (text) json_end = text;
  }
  const uint8_t *cfg_end = text ? text : end;
  if (text) text += 7;
  fz_put(dir, "tokenizer.json", data, (size_t)(json_end - data));
  fz_put(dir, "tokenizer_config.json", cfg, cfg ? (size_t)(cfg_end - cfg) : 0);

  char err[1024] = "";
  Tok *t = tok_load(dir, err, sizeof err);
  if (!t) {
    if (!strstr(err, dir) || strchr(err, '\n')) abort(); /* one line naming the file */
    return 0;
  }
  for (size_t i = 0; i < sizeof fz_texts / sizeof *fz_texts; i++) fz_encode(t, fz_texts[i], strlen(fz_texts[i]));
  if (text) fz_encode(t, (const char *)text, (size_t)(end - text));
  tok_free(t);
  return 0;
}
