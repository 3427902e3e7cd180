/* test_artifact.c — the loader rejects bad artifacts with a message naming the file, and never
 * crashes: a truncated shared object, a wrong ABI version, a bad magic number, a shared object
 * without the descriptor symbol, a file that is not a shared object, a missing file.  It also
 * opens a good artifact and checks the descriptor it reads (the ABI's struct layout).
 *
 *   test_artifact WORKDIR   (uses `rein compile`'s code path and the system C compiler, cc)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cg.h"
#include "frontend.h"
#include "pipeline.h"
#include "rein/runtime.h"

static int failures;

static void expect(bool ok, const char *what) {
  if (!ok) {
    fprintf(stderr, "FAIL: %s\n", what);
    failures++;
  }
}

static char *slurp(const char *path, size_t *n) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  fseek(f, 0, SEEK_END);
  *n = (size_t)ftell(f);
  fseek(f, 0, SEEK_SET);
  char *buf = malloc(*n + 1);
  if (fread(buf, 1, *n, f) != *n) *n = 0;
  fclose(f);
  return buf;
}

static void spit(const char *path, const char *buf, size_t n) {
  FILE *f = fopen(path, "wb");
  fwrite(buf, 1, n, f);
  fclose(f);
}

/* rt_open(PATH) must fail with a message containing PATH and every string in WANT. */
static void expect_reject(const char *path, const char *want1, const char *want2) {
  char err[1024] = "";
  rt_objective *o = rt_open(path, err, sizeof err);
  char what[1500];
  snprintf(what, sizeof what, "%s rejected (message: %s)", path, err);
  expect(o == NULL, what);
  expect(strstr(err, path) != NULL, what);
  expect(strstr(err, want1) != NULL, what);
  if (want2) expect(strstr(err, want2) != NULL, what);
  rt_close(o);
}

static const char *const src =
    "objective t \"a test\";\n"
    "param beta = 0.5;\n"
    "input seq bonus;\n"
    "metric m = mean[batch](bonus);\n"
    "loss = -mean[batch](exp(logp - old_logp) * (reward + beta * bonus));\n";

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: test_artifact WORKDIR\n");
    return 2;
  }
  const char *dir = argv[1];
  char good[4096], path[4200];
  snprintf(good, sizeof good, "%s/good.so", dir);

  Diag d;
  diag_init(&d, stderr);
  FeUnit u;
  memset(&u, 0, sizeof u);
  if (!fe_check_buffer(&d, "t.rein", src, strlen(src), &u)) return 1;
  PipeOptions po = {NULL, stdout, false};
  Plan *p = NULL;
  IrGraph *g = pipe_run(&u.prog, NULL, &d, &po, &p);
  CgOptions co = {NULL, false, false, false};
  if (!g || !cg_compile(p, good, &co, stderr)) return 1;

  /* the good one, and what its descriptor says */
  char err[1024] = "";
  rt_objective *o = rt_open(good, err, sizeof err);
  expect(o != NULL, err);
  if (o) {
    const rein_objective *r = rt_desc(o);
    expect(!strcmp(r->name, "t") && !strcmp(r->description, "a test"), "name and description");
    expect(r->nparams == 1 && !strcmp(r->params[0].name, "beta") && r->params[0].value == 0.5, "params");
    expect(r->nuinputs == 1 && !strcmp(r->uinputs[0].name, "bonus") && r->uinputs[0].level == REIN_SEQ, "inputs");
    expect(r->nmetrics == 1 && !strcmp(r->metrics[0], "m"), "metrics");
    expect((r->inputs_used & (1u << REIN_IN_LOGP | 1u << REIN_IN_OLD_LOGP | 1u << REIN_IN_REWARD)) ==
               (1u << REIN_IN_LOGP | 1u << REIN_IN_OLD_LOGP | 1u << REIN_IN_REWARD),
           "inputs used");
    expect((r->flags & REIN_GRAD_LOGP) && !(r->flags & REIN_GRAD_ENTROPY), "gradient flags");
    if (access(REIN_LIBDEVICE, R_OK) == 0)
      expect(r->nptx == 2 && !strcmp(r->ptx_arch[0], "sm_80") && strstr(r->ptx[1], ".target sm_90"), "ptx");
    else
      expect(r->nptx == 0, "no ptx without the CUDA toolkit");
    rt_close(o);
  }

  size_t n = 0;
  char *bytes = slurp(good, &n);
  expect(bytes && n > 1000, "read the artifact");

  /* truncated */
  snprintf(path, sizeof path, "%s/truncated.so", dir);
  spit(path, bytes, n / 3);
  expect_reject(path, "cannot load the objective", NULL);

  /* wrong ABI version / bad magic: patch the descriptor's first two words */
  const char magic[8] = {'R', 'E', 'I', 'N', (char)REIN_ABI_VERSION, 0, 0, 0};
  char *hit = NULL;
  for (size_t i = 0; i + 8 <= n && !hit; i++)
    if (!memcmp(bytes + i, magic, 8)) hit = bytes + i;
  expect(hit != NULL, "find the descriptor's magic and version");
  if (hit) {
    hit[4] = 7;
    snprintf(path, sizeof path, "%s/abi7.so", dir);
    spit(path, bytes, n);
    expect_reject(path, "ABI version 7", "recompile");
    hit[4] = 1;
    hit[0] = 'X';
    snprintf(path, sizeof path, "%s/magic.so", dir);
    spit(path, bytes, n);
    expect_reject(path, "bad magic", NULL);
  }

  /* a shared object without the symbol */
  snprintf(path, sizeof path, "%s/empty.c", dir);
  spit(path, "int not_an_objective = 1;\n", 26);
  char cmd[9000];
  snprintf(cmd, sizeof cmd, "cc -shared -fPIC -o %s/nosym.so %s/empty.c", dir, dir);
  expect(system(cmd) == 0, cmd);
  snprintf(path, sizeof path, "%s/nosym.so", dir);
  expect_reject(path, "no symbol `rein_objective`", NULL);

  /* not a shared object; missing */
  snprintf(path, sizeof path, "%s/text.so", dir);
  spit(path, "hello\n", 6);
  expect_reject(path, "cannot load the objective", NULL);
  snprintf(path, sizeof path, "%s/missing.so", dir);
  expect_reject(path, "cannot load the objective", NULL);

  free(bytes);
  pl_free(p);
  ir_free(g);
  fe_free(&u);
  printf("test_artifact: %d failures\n", failures);
  return failures ? 1 : 0;
}
