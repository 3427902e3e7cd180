/* fuzz_chat.c — libFuzzer harness over the chat-template renderer (chat_render,
 * runtime/tok/chat_*.c): the chat_template of a tokenizer_config.json, a program from the model
 * directory, run on the conversation of a user.
 *
 * One input is a template and a conversation, cut at "\n@@\n": the first section is the
 * template, each later one a message whose first line is the role and the rest the content (a
 * section without a newline is a role with empty content).  add_generation_prompt is set when the
 * last message is not the assistant's; bos_token and eos_token are Llama-style strings.  The
 * render must succeed, with no more output than the renderer's limit, or fail with one message
 * "chat template[ line N]: ..."; the renderer's limits (steps, bytes, output, nesting) must bound
 * its time and memory below libFuzzer's (-timeout=10, -rss_limit_mb=2048).  Nothing may crash or
 * leak.
 */
#include "fuzz_util.h"

#include "chat_internal.h"
#include "rein/tok.h"

#define FZ_MAX_MSGS 64

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *text = fz_text(data, size);
  const char *sep = "\n@@\n";
  ChatMsg msgs[FZ_MAX_MSGS];
  int n = 0;
  char *cut = strstr(text, sep);
  if (cut) *cut = 0;
  /* (an input with a NUL byte: the template ends there, as a C string does) */
  while (cut && n < FZ_MAX_MSGS) {
    char *m = cut + 4, *next = strstr(m, sep);
    if (next) *next = 0;
    char *nl = strchr(m, '\n');
    if (nl) *nl = 0;
    msgs[n].role = m;
    msgs[n].content = nl ? nl + 1 : "";
    n++;
    cut = next;
  }
  int agp = !n || strcmp(msgs[n - 1].role, "assistant");
  char err[1024] = "";
  char *out = chat_render(text, msgs, n, agp, "<|begin_of_text|>", "<|eot_id|>", err, sizeof err);
  if (out) {
    if (strlen(out) > CHAT_MAX_OUTPUT) abort();
    free(out);
  } else if (strncmp(err, "chat template", 13)) {
    abort();
  }
  free(text);
  return 0;
}
