/* cg_cache.c — the artifact cache: a compiled objective is kept in $XDG_CACHE_HOME/rein (or
 * ~/.cache/rein), under the XXH3-64 of everything its code depends on — the checked graph and its
 * plan as text, the code-generation options, the CPU the code is for (name and features) and the
 * `rein` executable itself (its bytes: a rebuilt compiler never reuses an old artifact) — so
 * `rein train`, `rein sft` and `rein eval --backend cpu|gpu` start without running LLVM when the
 * objective was compiled before.
 *
 * Each entry is KEY.so with KEY.sum beside it (the XXH3-64 of KEY.so, written after the .so is in
 * place): an entry whose .so does not match its .sum (a partial write, a bit flip, a file
 * replaced) is removed and compiled again.  Both are written under temporary names and renamed.
 * The cache never makes a command fail: when it cannot be read or written the objective is
 * compiled to a temporary file, as without it.  REIN_NO_CACHE=1 turns it off.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <llvm-c/TargetMachine.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cg_eval.h"
#include "rein/common.h"

/* The directory of the cache in DIR (created); false when there is none to use. */
static bool cache_dir(char *dir, size_t n) {
  const char *off = getenv("REIN_NO_CACHE");
  if (off && *off && strcmp(off, "0")) return false;
  const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
  int k;
  if (xdg && *xdg == '/') k = snprintf(dir, n, "%s/rein", xdg);
  else if (home && *home == '/') k = snprintf(dir, n, "%s/.cache/rein", home);
  else return false;
  char err[256];
  return k > 0 && (size_t)k < n && rc_mkdir_p(dir, err, sizeof err) == 0;
}

/* The XXH3-64 and size of the running executable, read once per process (a test that compiles
 * hundreds of programs hashes its multi-megabyte binary once, not each time). */
static bool exe_identity(uint64_t *hash, uint64_t *size) {
  static int state;   /* 0 not yet, 1 known, -1 unreadable */
  static uint64_t h, n;
  char err[256];
  if (!state) state = rc_hash_file("/proc/self/exe", &h, &n, err, sizeof err) ? -1 : 1;
  *hash = h, *size = n;
  return state > 0;
}

/* The key of plan P compiled with CO, as 16 hex digits in KEY; false when it cannot be made. */
static bool cache_key(const Plan *p, const CgOptions *co, char key[17]) {
  uint64_t exe_hash, exe_size;
  if (!exe_identity(&exe_hash, &exe_size)) return false;
  char *text = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&text, &len);
  if (!f) return false;
  fprintf(f, "rein %s\nexe %016llx %llu\nopt %d ptx %d f64 %d\n", REIN_VERSION,
          (unsigned long long)exe_hash, (unsigned long long)exe_size, co->no_opt, !co->no_ptx, co->f64);
  if (co->cpu && strcmp(co->cpu, "native")) {
    fprintf(f, "cpu %s\n", co->cpu);
  } else {
    char *name = LLVMGetHostCPUName(), *features = LLVMGetHostCPUFeatures();
    fprintf(f, "cpu %s %s\n", name ? name : "", features ? features : "");
    LLVMDisposeMessage(name);
    LLVMDisposeMessage(features);
  }
  ir_print(f, p->g);
  pl_print(f, p);
  if (fclose(f) != 0) {
    free(text);
    return false;
  }
  snprintf(key, 17, "%016llx", (unsigned long long)rc_hash_bytes(text, len));
  free(text);
  return true;
}

/* True when PATH's XXH3-64 is the one written in SUM. */
static bool entry_ok(const char *path, const char *sum) {
  char err[256], want[64] = "", have[17];
  uint64_t h, n;
  char *text = rc_read_file(sum, 64, NULL, err, sizeof err);
  if (!text) return false;
  snprintf(want, sizeof want, "%s", text);
  free(text);
  if (rc_hash_file(path, &h, &n, err, sizeof err)) return false;
  snprintf(have, sizeof have, "%016llx", (unsigned long long)h);
  return !strncmp(want, have, 16) && (want[16] == '\n' || want[16] == 0);
}

rt_objective *cg_cache_open(const Plan *p, const CgOptions *co, char *err, size_t errlen) {
  char dir[4096], key[17];
  if (!cache_dir(dir, sizeof dir) || !cache_key(p, co, key)) return NULL;
  char so[4200], sum[4200], tmp[4300];
  snprintf(so, sizeof so, "%s/%s.so", dir, key);
  snprintf(sum, sizeof sum, "%s/%s.sum", dir, key);
  char why[1024];
  if (access(so, F_OK) == 0) {
    if (entry_ok(so, sum)) {
      rt_objective *o = rt_open(so, why, sizeof why);
      if (o) return o;
    }
    unlink(sum);   /* stale or damaged: compiled again below */
    unlink(so);
  }
  snprintf(tmp, sizeof tmp, "%s/.%s.so.tmp.%ld", dir, key, (long)getpid());
  if (!cg_compile(p, tmp, co, stderr)) {
    unlink(tmp);
    snprintf(err, errlen, "compilation failed");
    return NULL;
  }
  /* opened under its temporary name, so another process that removes or replaces the entry
   * meanwhile cannot take it away from this one */
  rt_objective *o = rt_open(tmp, err, errlen);
  uint64_t h, n;
  if (o && rc_hash_file(tmp, &h, &n, why, sizeof why) == 0 && rename(tmp, so) == 0) {
    char line[32];
    snprintf(line, sizeof line, "%016llx\n", (unsigned long long)h);
    rc_write_text(sum, line, why, sizeof why);   /* without it the entry is a miss next time */
  } else {
    unlink(tmp);
  }
  return o;
}
