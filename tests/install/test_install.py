"""The install step: `cmake --install BUILD --prefix P` gives a `rein` that works without the source
and build trees.

    /usr/bin/python3 tests/install/test_install.py --build BUILD --source SRC --cc CC [--keep]

It installs into a temporary prefix, checks the layout (bin/rein, lib/librein*.a,
include/rein/*.h, lib/pkgconfig/rein.pc, share/rein/std, share/rein/models/arith), then, from a
work directory outside both trees and with a minimal environment (env -i: PATH, HOME):
  * `rein check std:grpo` finds the installed standard library;
  * `rein build` makes a standalone trainer of examples/rec_ring_nois.rein (the one file copied
    from the source tree), which trains two steps on the linked-in shipped model;
  * `rein compile` makes the objective's shared object, and a C program built with
    `pkg-config --cflags --libs rein` opens it with rt_open and prints its name;
  * a C program built with `pkg-config --static --cflags --libs rein` loads a small byte-level
    tokenizer.json with tok_load, encodes with tok_encode and decodes back (libreintok and its
    Requires.private: PCRE2, utf8proc);
  * the prefix, moved elsewhere, still works (it is relocatable: rein and rein.pc find their
    files relative to themselves).
When strace is available, every file `rein` and the trainer touch is recorded, and none may be
under the source or build tree.  Exit status 0 when every check passes.
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile

FAILS = []


def check(ok, what):
    print(("ok    " if ok else "FAIL  ") + what)
    if not ok:
        FAILS.append(what)


def run(cmd, env, cwd, ok=True, timeout=600):
    p = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    if ok and p.returncode != 0:
        print("$ " + " ".join(cmd))
        print(p.stdout[-4000:])
        print(p.stderr[-4000:])
        check(False, "%s exits 0 (got %d)" % (os.path.basename(cmd[0]), p.returncode))
        raise SystemExit(1)
    return p


def have_strace(env, cwd):
    if not shutil.which("strace"):
        return False
    try:
        return subprocess.run(["strace", "-qq", "-o", os.devnull, "true"], env=env, cwd=cwd,
                              capture_output=True, timeout=60).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def traced(cmd, log, strace):
    """CMD under strace -f (file system calls into LOG), or as is."""
    if not strace:
        return cmd
    return ["strace", "-f", "-qq", "-e", "trace=%file", "-o", log] + cmd


def outside(log, trees):
    """The lines of strace LOG that name a path under one of TREES."""
    bad = []
    with open(log) as f:
        for line in f:
            if any('"' + t + "/" in line or '"' + t + '"' in line for t in trees):
                bad.append(line.strip())
    return bad


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", required=True)
    ap.add_argument("--source", required=True)
    ap.add_argument("--cc", required=True)
    ap.add_argument("--keep", action="store_true")
    a = ap.parse_args()
    build, source = os.path.realpath(a.build), os.path.realpath(a.source)
    tmp = tempfile.mkdtemp(prefix="rein_install_")
    try:
        prefix = os.path.join(tmp, "prefix")
        p = subprocess.run(["cmake", "--install", build, "--prefix", prefix], capture_output=True, text=True)
        check(p.returncode == 0, "cmake --install succeeds")
        if p.returncode:
            print(p.stdout, p.stderr)
            return 1
        for f in ["bin/rein", "lib/libreintrain.a", "lib/libreinrt.a", "lib/libreintfm.a", "lib/libreintok.a",
                  "include/rein/tok.h",
                  "lib/libreincommon.a", "lib/pkgconfig/rein.pc", "include/rein/runtime.h",
                  "include/rein/objective.h", "include/rein/common.h", "share/rein/std/grpo.rein",
                  "share/rein/std/rec_ring_nois.rein", "share/rein/models/arith/config.json",
                  "share/rein/models/arith/model.safetensors"]:
            check(os.path.isfile(os.path.join(prefix, f)), "installed " + f)

        work = os.path.join(tmp, "work")
        os.mkdir(work)
        shutil.copy(os.path.join(source, "examples", "rec_ring_nois.rein"), work)
        env = {"PATH": "/usr/bin:/bin", "HOME": work}
        for k in ("ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS"):
            if k in os.environ:
                env[k] = os.environ[k]
        strace = have_strace(env, work)
        print("strace: " + ("every file rein opens is checked" if strace else "not available, skipped"))
        trees = [build, source]

        def rein_in(pfx):
            return os.path.join(pfx, "bin", "rein")

        rein = rein_in(prefix)
        out = run([rein, "--version"], env, work).stdout
        check(out.startswith("rein "), "the installed rein runs")
        run([rein, "check", "std:grpo"], env, work)
        check(True, "rein check std:grpo finds the installed standard library")
        p = run([rein, "check", "std:no_such_objective"], env, work, ok=False)
        check(p.returncode == 1 and os.path.join(prefix, "share/rein/std/no_such_objective.rein") in p.stderr,
              "a missing std: objective names the installed path")

        # Each run once as is, then (with strace) once more traced; LeakSanitizer cannot run under
        # ptrace, so the traced runs of a sanitized build do without leak detection.
        tenv = dict(env, ASAN_OPTIONS=(env.get("ASAN_OPTIONS", "") + ":detect_leaks=0").lstrip(":"))
        run([rein, "build", "rec_ring_nois.rein", "-o", "trainer"], env, work)
        check(os.access(os.path.join(work, "trainer"), os.X_OK), "rein build makes a standalone trainer")
        if strace:
            log = os.path.join(tmp, "build.strace")
            run(traced([rein, "build", "rec_ring_nois.rein", "-o", "trainer2"], log, strace), tenv, work)
            bad = outside(log, trees)
            check(not bad, "rein build touches nothing in the source or build tree" +
                  ("" if not bad else ": " + bad[0]))

        args = ["--steps", "2", "--batch-prompts", "4", "--group", "4", "--eval-prompts", "8", "--max-new", "4",
                "--threads", "2", "--progress", "0"]
        run(["./trainer"] + args + ["--out", "run"], env, work)
        check(os.path.isdir(os.path.join(work, "run")), "the trainer trains two steps and writes its run")
        if strace:
            log = os.path.join(tmp, "train.strace")
            run(traced(["./trainer"] + args + ["--out", "run2"], log, strace), tenv, work)
            bad = outside(log, trees)
            check(not bad, "the trainer touches nothing in the source or build tree" +
                  ("" if not bad else ": " + bad[0]))

        run([rein, "compile", "rec_ring_nois.rein", "-o", "rec.so"], env, work)
        with open(os.path.join(work, "name.c"), "w") as f:
            f.write('#include <stdio.h>\n#include <rein/runtime.h>\n'
                    'int main(int argc, char **argv) {\n'
                    '  char err[512];\n'
                    '  rt_objective *o = argc > 1 ? rt_open(argv[1], err, sizeof err) : NULL;\n'
                    '  if (!o) { fprintf(stderr, "%s\\n", argc > 1 ? err : "usage: name OBJ.so"); return 1; }\n'
                    '  printf("%s\\n", rt_desc(o)->name);\n'
                    '  rt_close(o);\n'
                    '  return 0;\n'
                    '}\n')
        pcenv = dict(env, PKG_CONFIG_PATH=os.path.join(prefix, "lib", "pkgconfig"))
        flags = run(["pkg-config", "--cflags", "--libs", "rein"], pcenv, work).stdout.split()
        check(not any(t in " ".join(flags) for t in trees), "pkg-config names nothing in the source or build tree")
        run([a.cc, "name.c", "-o", "name"] + flags, env, work)
        out = run(["./name", "rec.so"], env, work).stdout.strip()
        check(out == "rec_ring_nois", "a C program linked with pkg-config --libs rein opens the objective (%r)" % out)

        # the tokenizer library: a byte-level BPE file for "ab c" (ids 4 5), NFC, one added token
        with open(os.path.join(work, "tokenizer.json"), "w") as f:
            f.write('{"added_tokens": [{"id": 6, "content": "<s>", "special": true}],'
                    ' "normalizer": {"type": "NFC"},'
                    ' "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false, "use_regex": true},'
                    ' "decoder": {"type": "ByteLevel"},'
                    ' "model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "c": 2, "\u0120": 3, "ab": 4,'
                    ' "\u0120c": 5}, "merges": ["a b", "\u0120 c"]}}')
        with open(os.path.join(work, "tok.c"), "w") as f:
            f.write('#include <stdio.h>\n#include <stdlib.h>\n#include <rein/tok.h>\n'
                    'int main(int argc, char **argv) {\n'
                    '  char err[512];\n'
                    '  Tok *t = argc > 2 ? tok_load(argv[1], err, sizeof err) : NULL;\n'
                    '  if (!t) { fprintf(stderr, "%s\\n", argc > 2 ? err : "usage: tok FILE TEXT"); return 1; }\n'
                    '  int32_t *ids; size_t n;\n'
                    '  if (tok_encode(t, argv[2], strlen(argv[2]), 1, &ids, &n, err, sizeof err)) {\n'
                    '    fprintf(stderr, "%s\\n", err); return 1; }\n'
                    '  for (size_t i = 0; i < n; i++) printf("%d ", ids[i]);\n'
                    '  char *s = tok_decode(t, ids, n, 0, err, sizeof err);\n'
                    '  printf("[%s]\\n", s ? s : err);\n'
                    '  free(s); free(ids); tok_free(t);\n'
                    '  return 0;\n'
                    '}\n')
        sflags = run(["pkg-config", "--cflags", "--libs", "rein"], pcenv, work).stdout.split()
        check(any("pcre2-8" in t for t in sflags) and any("utf8proc" in t for t in sflags) and "-lreintok" in sflags,
              "pkg-config --libs rein names libreintok, PCRE2 and utf8proc")
        run([a.cc, "-include", "string.h", "tok.c", "-o", "tok"] + sflags, env, work)
        out = run(["./tok", "tokenizer.json", "ab c<s>ab"], env, work).stdout.strip()
        check(out == "4 5 6 4 [ab c<s>ab]",
              "a C program linked with pkg-config --static --libs rein calls tok_load / tok_encode (%r)" % out)

        # relocatable: the same files under another prefix
        moved = os.path.join(tmp, "elsewhere")
        os.rename(prefix, moved)
        run([rein_in(moved), "check", "std:rec_ring_nois"], env, work)
        mvenv = dict(env, PKG_CONFIG_PATH=os.path.join(moved, "lib", "pkgconfig"))
        flags = run(["pkg-config", "--cflags", "--libs", "rein"], mvenv, work).stdout.split()
        run([a.cc, "name.c", "-o", "name2"] + flags, env, work)
        check(run(["./name2", "rec.so"], env, work).stdout.strip() == "rec_ring_nois",
              "a moved prefix still works (rein check std:, pkg-config)")
    finally:
        if a.keep:
            print("kept " + tmp)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    print("%d failure(s)" % len(FAILS))
    return 1 if FAILS else 0


if __name__ == "__main__":
    sys.exit(main())
