"""_compile.py — turning a `.rein` program into an artifact through the `rein` binary, with a
cache keyed by the source and the binary.

The binary: $REIN_BIN; `rein` on PATH; the build trees build/ and build-test/ of the repository
that holds this package.  The cache: $REIN_CACHE, else $XDG_CACHE_HOME/rein, else ~/.cache/rein;
an artifact is written under a temporary name and renamed, so concurrent processes never read a
half-written one.
"""

import hashlib
import os
import shutil
import subprocess

from .errors import ReinError


def find_rein():
    env = os.environ.get("REIN_BIN")
    if env:
        if not os.access(env, os.X_OK):
            raise ReinError("REIN_BIN=%s is not an executable" % env)
        return env
    found = shutil.which("rein")
    if found:
        return found
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    for b in ("build", "build-test"):
        p = os.path.join(repo, b, "rein")
        if os.access(p, os.X_OK):
            return p
    raise ReinError("the `rein` binary was not found (set REIN_BIN, put rein on PATH, or load a "
                    "compiled .so instead)")


def _child_env():
    """The environment of `rein`: this one, less a preloaded shared ASan runtime (a Python process
    that loads a REIN_SANITIZE build of librein_runtime.so preloads it; a sanitized `rein` carries
    its own, static, and refuses to start with both)."""
    env = dict(os.environ)
    pre = [p for p in env.get("LD_PRELOAD", "").replace(":", " ").split() if "libclang_rt.asan" not in p]
    if pre:
        env["LD_PRELOAD"] = " ".join(pre)
    else:
        env.pop("LD_PRELOAD", None)
    return env


def cache_dir():
    d = os.environ.get("REIN_CACHE")
    if not d:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        d = os.path.join(base, "rein")
    os.makedirs(d, exist_ok=True)
    return d


def compile_objective(source, cpu=None):
    """The path of the artifact of SOURCE (a .rein file or std:NAME), compiling it if the cache has
    none for this source text and this rein binary."""
    rein = find_rein()
    h = hashlib.sha256()
    if source.startswith("std:"):
        h.update(source.encode())
        stem = source[4:]
    else:
        try:
            with open(source, "rb") as f:
                h.update(f.read())
        except OSError as e:
            raise ReinError("%s: cannot read the objective: %s" % (source, e.strerror)) from None
        stem = os.path.splitext(os.path.basename(source))[0]
    st = os.stat(rein)
    h.update(("\0%s\0%d\0%d\0%s" % (os.path.realpath(rein), st.st_size, st.st_mtime_ns, cpu or "")).encode())
    d = cache_dir()
    out = os.path.join(d, "%s-%s.so" % (stem, h.hexdigest()[:20]))
    if os.path.exists(out):
        return out
    tmp = os.path.join(d, ".%s-%d.tmp.so" % (stem, os.getpid()))
    cmd = [rein, "compile", source, "-o", tmp] + (["--cpu", cpu] if cpu else [])
    p = subprocess.run(cmd, capture_output=True, text=True, env=_child_env())
    if p.returncode != 0:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise ReinError("rein compile %s failed (exit %d):\n%s" % (source, p.returncode, (p.stderr or p.stdout).rstrip()))
    os.replace(tmp, out)
    return out
