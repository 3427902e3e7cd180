#!/usr/bin/env python3
"""Bad inputs to the trainer (`rein train`, `rein sft`): each must fail cleanly.

    /usr/bin/python3 tests/train/test_bad_inputs.py --rein build/rein [--keep] [--only SUBSTR] [--jobs N]

Every case runs one command that must fail and checks that
  * it exits with the status the code gives that class of error: 2 for a bad command line or
    config file (trn_opts_parse), 1 for a bad input file (dataset, model, checkpoint);
  * it did not crash: the status is positive (no signal), and stderr has no sanitizer report
    ("AddressSanitizer", "LeakSanitizer", "runtime error");
  * stderr names the offending file and the field or line (specific substrings);
  * it changed nothing: a fresh run that fails leaves no --out directory behind, and a failing
    --resume leaves every file of the run directory byte-identical (a failed resume must not
    cut metrics.jsonl, touch `latest` or a checkpoint).
Groups of cases:
  config   --config FILE.json: invalid JSON (path:line:col), not an object, unknown field, wrong
           types, out-of-range values, bad "set" entries, a missing file, an over-long string
  cli      unknown option, missing value, bad numbers, --set errors, --task, --model, --out
  data     --task gsm8k --train-data/--eval-data: missing file, invalid JSON line, missing
           fields, no '#### N', empty file (task_gsm8k.c: reported as PATH:LINE)
  resume   a good run stopped at step 2 with a batch explored ahead (--sync-offset 1), copied
           once per corruption: `latest`, state.json, buffer.bin, model/optim.safetensors,
           changed options, another objective, an empty or missing directory
  fresh    a fresh run into a directory that holds a run is refused, the files unchanged
  sft      `rein sft` with a bad --model-config / --model
and one positive control: the good run resumes (exit 0) and ends with ckpt-000004, so a broken
trainer is told apart from bad-input handling.  Runs are tiny (a 2-layer random model, 2 prompts
x 2 responses, 4 new tokens) and run --jobs at a time (default: one per CPU); each command has a
60 s timeout, a hang counts as a failure.
"""
import argparse
import concurrent.futures
import hashlib
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OBJ = os.path.join(ROOT, "lang", "std", "rec_oneside_nois.rein")
OBJ2 = os.path.join(ROOT, "examples", "rec_ring_nois.rein")
TIMEOUT = 60
SANITIZER = ("AddressSanitizer", "LeakSanitizer", "UndefinedBehaviorSanitizer", "runtime error")
TINY = {"model_type": "llama", "vocab_size": 17, "hidden_size": 32, "num_hidden_layers": 2,
        "num_attention_heads": 4, "num_key_value_heads": 2, "intermediate_size": 64,
        "max_position_embeddings": 64, "tie_word_embeddings": True, "bos_token_id": 1,
        "eos_token_id": 2, "initializer_range": 0.1}
GOOD_LINE = '{"question": "What is 1 + 1?", "answer": "1 + 1 = 2\\n#### 2"}'


class Ctx:
    """What every case needs: the binary, the work dir, the tiny model, the good run."""

    def __init__(self, rein, work, only):
        self.rein, self.work, self.only = rein, work, only
        self.ncases, self.fails, self.jobs = 0, [], []
        self.model = os.path.join(work, "tiny")
        self.good = os.path.join(work, "good")
        self.seq = 0

    def path(self, name):
        return os.path.join(self.work, name)

    def fresh_out(self):
        """A run directory that does not exist yet."""
        self.seq += 1
        return self.path("out-%03d" % self.seq)

    def common(self):
        return ["--model", self.model, "--steps", "4", "--batch-prompts", "2", "--group", "2",
                "--eval-prompts", "4", "--max-new", "4", "--threads", "1", "--progress", "0"]

    def train(self, *args, obj=OBJ):
        return [self.rein, "train", obj] + self.common() + list(args)

    def resume_args(self, out):
        return ["--sync-offset", "1", "--save-every", "2", "--out", out, "--resume"]


# ---- helpers -------------------------------------------------------------------------------

def slug(name):
    return "".join(c if c.isalnum() else "-" for c in name)


def write(path, data):
    """Writes DATA (str or bytes) to PATH; returns PATH."""
    with open(path, "wb" if isinstance(data, bytes) else "w") as f:
        f.write(data)
    return path


def write_json(path, obj):
    return write(path, json.dumps(obj))


def run(cmd, cwd=None):
    """(returncode, stdout, stderr); returncode None on a timeout."""
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, errors="replace", timeout=TIMEOUT, cwd=cwd)
        return p.returncode, p.stdout, p.stderr
    except subprocess.TimeoutExpired as e:
        err = e.stderr.decode(errors="replace") if isinstance(e.stderr, bytes) else (e.stderr or "")
        return None, "", err


def must(cmd, what):
    rc, out, err = run(cmd)
    if rc != 0:
        print(f"setup failed ({what}): rc {rc}\n  {' '.join(cmd)}\n{out[-2000:]}{err[-2000:]}", flush=True)
        raise SystemExit(1)


def snapshot(top):
    """{relative path: sha256} of every file under TOP (None when TOP does not exist).  A run
    directory's `lock` is left out: taking the lock writes the pid of its holder into it."""
    if not os.path.exists(top):
        return None
    h = {}
    for d, dirs, files in os.walk(top):
        dirs.sort()
        for f in sorted(files):
            p = os.path.join(d, f)
            if f == "lock" and d == top:
                continue
            with open(p, "rb") as fh:
                h[os.path.relpath(p, top)] = hashlib.sha256(fh.read()).hexdigest()
        for s in dirs:   # empty directories count too
            h.setdefault(os.path.relpath(os.path.join(d, s), top) + "/", "dir")
    return h


def diff_snapshots(a, b):
    if a == b:
        return None
    if a is None or b is None:
        return "directory " + ("appeared" if a is None else "vanished")
    gone = sorted(set(a) - set(b))
    new = sorted(set(b) - set(a))
    changed = sorted(k for k in set(a) & set(b) if a[k] != b[k])
    parts = [f"{w}: {', '.join(v)}" for w, v in (("lost", gone), ("new", new), ("changed", changed)) if v]
    return "; ".join(parts)


def case(ctx, name, cmd, rc, needles, unchanged=None, absent=None, cwd=None):
    """Queues a case: CMD must fail with status RC and print every string of NEEDLES to stderr.
    UNCHANGED: a directory whose files must be identical afterwards; ABSENT: a path that must
    still not exist afterwards (a fresh --out).  The snapshot is taken now, before any case runs."""
    if ctx.only and ctx.only not in name:
        return
    before = snapshot(unchanged) if unchanged else None

    def job():
        got, _, err = run(cmd, cwd=cwd)
        why = []
        if got is None:
            why.append(f"hung (killed after {TIMEOUT} s)")
        elif got < 0:
            why.append(f"killed by signal {-got}")
        elif got != rc:
            why.append(f"exit status {got}, expected {rc}")
        why += sanitizer(err)
        why += [f"stderr lacks {s!r}" for s in needles if s not in err]
        if unchanged:
            d = diff_snapshots(before, snapshot(unchanged))
            if d:
                why.append(f"{unchanged} changed: {d}")
        if absent and os.path.exists(absent):
            why.append(f"{absent} was created")
        return why, err

    ctx.jobs.append((name, job))


def sanitizer(err):
    for s in SANITIZER:
        if s in err:
            return [f"sanitizer report ({s})"]
    return []


def run_jobs(ctx, njobs):
    """Runs the queued cases, NJOBS at a time; prints one line per case in the queued order."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=njobs) as pool:
        futures = [(name, pool.submit(job)) for name, job in ctx.jobs]
        for name, fut in futures:
            why, err = fut.result()
            ctx.ncases += 1
            if not why:
                print(f"ok    {name}", flush=True)
                continue
            msg = err.strip().splitlines()
            shown = " | ".join(msg[-3:])[:600] if msg else "(no stderr)"
            print(f"FAIL  {name}: {'; '.join(why)}\n        stderr: {shown}", flush=True)
            ctx.fails.append(name)


# ---- the experience buffer (trn_ckpt.c: trn_buffer_save) -----------------------------------

BUF_FIELDS = (("poff", "i"), ("prompt", "i"), ("roff", "i"), ("resp", "i"), ("old_logp", "f"),
              ("reward", "f"), ("acc", "f"), ("trunc", "B"))


def buffer_load(path):
    with open(path, "rb") as f:
        b = f.read()
    assert b[:8] == b"REINBUF2", path
    at = 12
    rs = []

    def take(fmt, n):
        nonlocal at
        v = list(struct.unpack_from("<%d%s" % (n, fmt), b, at))
        at += n * struct.calcsize(fmt)
        return v

    for _ in range(struct.unpack_from("<i", b, 8)[0]):
        r = {}
        r["e"], r["version"] = take("q", 2)
        r["nseq"], r["group"] = take("i", 2)
        n = r["nseq"]
        r["poff"] = take("i", n + 1)
        r["prompt"] = take("i", r["poff"][-1])
        r["roff"] = take("i", n + 1)
        r["resp"] = take("i", r["roff"][-1])
        r["old_logp"] = take("f", r["roff"][-1])
        r["reward"], r["acc"], r["trunc"] = take("f", n), take("f", n), take("B", n)
        r["gen_s"] = take("d", 1)[0]
        r["nuin"] = take("i", 1)[0]
        r["uin"] = take("f", r["nuin"] * n)
        rs.append(r)
    assert at == len(b), path
    return rs


def buffer_save(path, rs):
    out = [b"REINBUF2", struct.pack("<i", len(rs))]
    for r in rs:
        out.append(struct.pack("<qqii", r["e"], r["version"], r["nseq"], r["group"]))
        for k, f in BUF_FIELDS:
            out.append(struct.pack("<%d%s" % (len(r[k]), f), *r[k]))
        out.append(struct.pack("<d", r["gen_s"]))
        out.append(struct.pack("<i", r["nuin"]))
        out.append(struct.pack("<%df" % len(r["uin"]), *r["uin"]))
    with open(path, "wb") as f:
        f.write(b"".join(out))


def buffer_edit(fn):
    """A corruption that loads buffer.bin, lets FN change the rollouts, and writes it back."""
    def edit(ck):
        p = os.path.join(ck, "buffer.bin")
        rs = buffer_load(p)
        fn(rs)
        buffer_save(p, rs)
    return edit


def empty_first_response(rs):
    """Drops the tokens of response 0 (a generated response has at least one)."""
    r = rs[0]
    k = r["roff"][1]
    r["roff"] = [0] + [x - k for x in r["roff"][1:]]
    r["resp"], r["old_logp"] = r["resp"][k:], r["old_logp"][k:]


def patch_bytes(name, at, data):
    def edit(ck):
        p = os.path.join(ck, name)
        with open(p, "r+b") as f:
            f.seek(at)
            f.write(data)
    return edit


def truncate(name, size):
    def edit(ck):
        p = os.path.join(ck, name)
        n = os.path.getsize(p)
        with open(p, "r+b") as f:
            f.truncate(size if size >= 0 else n + size)
    return edit


def append(name, data):
    def edit(ck):
        with open(os.path.join(ck, name), "ab") as f:
            f.write(data)
    return edit


def flip_last_bit(name, at=-1):
    """Flips the lowest bit of the file's byte AT (default the last): the data of the last tensor,
    or (at=-12) the low byte of the buffer's last gen_s, before its nuin = 0, so the file still
    parses."""
    def edit(ck):
        p = os.path.join(ck, name)
        with open(p, "rb") as f:
            b = bytearray(f.read())
        b[at] ^= 1
        write(p, bytes(b))
    return edit


def remove(name):
    return lambda ck: os.remove(os.path.join(ck, name))


def state_edit(fn):
    def edit(ck):
        p = os.path.join(ck, "state.json")
        with open(p) as f:
            s = json.load(f)
        fn(s)
        write_json(p, s)
    return edit


def replace(name, data):
    return lambda ck: write(os.path.join(ck, name), data)


# ---- setup ---------------------------------------------------------------------------------

def setup(ctx):
    cfg = write_json(ctx.path("tiny.json"), TINY)
    must([ctx.rein, "model", "init", "--config", cfg, "--seed", "3", "-o", ctx.model], "rein model init")
    must(ctx.train("--stop-at", "2", "--save-every", "2", "--sync-offset", "1", "--out", ctx.good), "the good run")
    with open(os.path.join(ctx.good, "latest")) as f:
        assert f.read() == "ckpt-000002\n"
    rs = buffer_load(os.path.join(ctx.good, "ckpt-000002", "buffer.bin"))
    assert len(rs) == 1 and rs[0]["e"] == 3 and rs[0]["nseq"] == 4, "the good run holds batch 3 explored ahead"
    cfg48 = write_json(ctx.path("tiny48.json"), dict(TINY, hidden_size=48))
    must([ctx.rein, "model", "init", "--config", cfg48, "--seed", "1", "-o", ctx.path("tiny48")], "model init 48")


# ---- cases ---------------------------------------------------------------------------------

def config_cases(ctx):
    def cfg(name, text, rc, needles):
        path = write(ctx.path(f"cfg-{slug(name)}.json"), text)
        out = ctx.fresh_out()
        case(ctx, f"config: {name}", ctx.train("--config", path, "--out", out), rc,
             [path + n if n.startswith(":") else n.replace("PATH", path) for n in needles], absent=out)

    cfg("invalid JSON", '{\n "lr": 0.1,\n "steps": }\n', 2, [":3:11: invalid JSON"])
    cfg("empty file", "", 2, ["PATH:", "invalid JSON"])
    cfg("duplicate key", '{"lr": 0.1, "lr": 0.2}', 2, [":1:", "duplicate"])
    cfg("not an object", "[1, 2]", 2, ["PATH: the config must be a JSON object"])
    cfg("unknown field", '{"lrr": 0.1}', 2, ["PATH: field 'lrr': unknown option"])
    cfg("resume is not a config key", '{"resume": true}', 2, ["PATH: field 'resume': unknown option"])
    cfg("sft-only key", '{"init-seed": 3}', 2, ["PATH: field 'init-seed': unknown option"])
    cfg("string for a number", '{"lr": "abc"}', 2, ["PATH: field 'lr'", "expected a number"])
    cfg("number for a string", '{"task": 5}', 2, ["PATH: field 'task': expected a string"])
    cfg("null value", '{"lr": null}', 2, ["PATH: field 'lr': expected a string, number or boolean"])
    cfg("fraction for an integer", '{"group": 2.5}', 2, ["PATH: field 'group'", "expected an integer"])
    # a JSON boolean is not a number: "steps": true must not mean 1 step
    cfg("boolean for a number", '{"steps": true}', 2, ["PATH: field 'steps'"])
    cfg("negative lr", '{"lr": -1}', 2, ["PATH: field 'lr' '-1': expected a number in [0, 10]"])
    cfg("group 0", '{"group": 0}', 2, ["PATH: field 'group' '0': expected an integer in [1, 1024]"])
    cfg("bad bool", '{"format-term": "maybe"}', 2, ["PATH: field 'format-term'", "expected true or false"])
    cfg("bad task value", '{"task": "nope"}', 2, ["'nope'", "expected arith or gsm8k"])
    cfg("set not an object", '{"set": 3}', 2, ["PATH: field 'set': expected an object"])
    cfg("set entry not a number", '{"set": {"eps_low": "x"}}', 2,
        ["PATH: field 'set': parameter 'eps_low': expected a number"])
    cfg("set entry empty name", '{"set": {"": 1}}', 2, ["PATH: field 'set': bad parameter name"])
    # the objective has no such param: the message must say it came from the config file
    cfg("set entry unknown param", '{"set": {"nope": 1}}', 1, ["PATH", "'nope'", "(params: eps_low eps_high)"])

    missing = ctx.path("no-such-config.json")
    out = ctx.fresh_out()
    case(ctx, "config: nonexistent file", ctx.train("--config", missing, "--out", out), 2,
         [missing + ": cannot read the config file", "No such file"], absent=out)
    out = ctx.fresh_out()
    case(ctx, "config: --config without FILE", ctx.train("--out", out, "--config"), 2,
         ["--config: missing FILE"], absent=out)

    # a string longer than the option's buffer must be refused, as on the command line, not cut
    # short: here the cut "./././..." would put the run into the working directory
    cwd = ctx.path("cwd-long")
    os.mkdir(cwd)
    path = write_json(ctx.path("cfg-long-out.json"), {"out": "./" * 520 + "run"})
    case(ctx, "config: over-long string", ctx.train("--config", path), 2,
         [path + ": field 'out'", "too long"], unchanged=cwd, cwd=cwd)


def cli_cases(ctx):
    def cli(name, args, rc, needles, obj=OBJ):
        out = ctx.fresh_out()
        cmd = ctx.train("--out", out, *args, obj=obj) if obj else [ctx.rein, "train"] + ctx.common() + ["--out", out]
        case(ctx, f"cli: {name}", cmd, rc, needles, absent=out)

    cli("unknown option", ["--bogus", "1"], 2, ["unknown option '--bogus'"])
    cli("sft-only option", ["--model-config", ctx.path("tiny.json")], 2, ["unknown option '--model-config'"])
    cli("stray argument", ["stray"], 2, ["unexpected argument 'stray'"])
    cli("missing value", ["--lr"], 2, ["--lr: missing value"])
    cli("bad number", ["--lr", "abc"], 2, ["--lr 'abc': expected a number in [0, 10]"])
    cli("lr out of range", ["--lr", "-1"], 2, ["--lr '-1'"])
    cli("lr overflow", ["--lr", "1e999"], 2, ["--lr '1e999'"])
    cli("integer with a fraction", ["--group", "2.5"], 2, ["--group '2.5': expected an integer in [1, 1024]"])
    # sizes whose product is checked before anything is allocated (issue 14, case 3; this segfaulted)
    cli("sequences per step", ["--batch-prompts", "1000000", "--group", "1024"], 2,
        ["--batch-prompts 1000000 x --group 1024 = 1024000000 sequences per step: the limit is 1048576"])
    cli("tokens per step", ["--batch-prompts", "1000", "--group", "1000", "--max-new", "10000"], 2,
        ["response tokens per step: the limit is 1073741824"])
    # endless inputs stop at a limit (issue 14, case 4)
    cli("config is endless", ["--config", "/dev/zero"], 2, ["/dev/zero: cannot read the config file", "larger than"])
    cli("dataset is endless", ["--task", "gsm8k", "--train-data", "/dev/zero"], 1,
        ["/dev/zero:1: longer than 16777216 bytes"])
    # the rule of `rein eval --set` (issue 14, case 11)
    cli("set beyond float32", ["--set", "eps_low=1e300"], 2, ["--set: eps_low=1e+300 is not a finite float32 value"])
    cli("negative seed", ["--seed", "-1"], 2, ["--seed '-1': expected a non-negative integer"])
    cli("bad bool", ["--resume=maybe"], 2, ["--resume 'maybe': expected true or false"])
    cli("bad lr-schedule", ["--lr-schedule", "foo"], 2, ["--lr-schedule 'foo'"])
    cli("empty --out", ["--out", ""], 2, ["--out: empty path"])
    cli("--out too long", ["--out", "x" * 2000], 2, ["--out: value too long"])
    cli("--set without =", ["--set", "eps_low"], 2, ["--set 'eps_low': expected NAME=VALUE"])
    cli("--set bad value", ["--set", "eps_low=abc"], 2, ["--set 'eps_low=abc': expected a finite number"])
    cli("--set unknown param", ["--set", "nope=1"], 1,
        ["--set nope: objective 'rec_oneside_nois' has no param 'nope' (params: eps_low eps_high)"])
    cli("--task nope", ["--task", "nope"], 2, ["--task 'nope': expected arith or gsm8k"])
    cli("--task gsm8k without data", ["--task", "gsm8k"], 2, ["--task gsm8k needs --train-data"])
    cli("--model nonexistent", ["--model", "/nonexistent/model"], 1, ["/nonexistent/model/config.json"])
    cli("no objective file", [], 2, ["usage: rein train FILE.rein"], obj=None)
    missing = ctx.path("no-such.rein")
    cli("nonexistent objective", [], 1, [missing, "cannot open"], obj=missing)
    afile = write(ctx.path("a-file"), "x\n")
    case(ctx, "cli: --out is a file", ctx.train("--out", afile), 1, [afile + ": exists and is not a directory"])


def data_cases(ctx):
    good = write(ctx.path("good.jsonl"), GOOD_LINE + "\n")

    def data(name, text, needles, flag="--train-data"):
        path = write(ctx.path(f"data-{slug(name)}.jsonl"), text)
        out = ctx.fresh_out()
        extra = ["--train-data", good, "--eval-data", path] if flag == "--eval-data" else ["--train-data", path]
        case(ctx, f"data: {name}", ctx.train("--task", "gsm8k", *extra, "--out", out), 1,
             [n.replace("PATH", path) for n in needles], absent=out)

    missing = ctx.path("no-such.jsonl")
    out = ctx.fresh_out()
    case(ctx, "data: missing file", ctx.train("--task", "gsm8k", "--train-data", missing, "--out", out), 1,
         [missing + ": cannot open"], absent=out)
    data("invalid JSON line", GOOD_LINE + "\n{not json\n", ["PATH:2: not a JSON object"])
    data("not an object", GOOD_LINE + "\n[1, 2]\n", ["PATH:2: not a JSON object"])
    data("no answer", GOOD_LINE + "\n\n" + '{"question": "q"}\n', ["PATH:3: field 'answer': missing or not a string"])
    data("no question", GOOD_LINE + '\n{"answer": "#### 4"}\n', ["PATH:2: field 'question': missing or not a string"])
    data("answer without ####", GOOD_LINE + '\n{"question": "q", "answer": "42"}\n',
         ["PATH:2: field 'answer': no final '#### N'"])
    data("#### without a number", GOOD_LINE + '\n{"question": "q", "answer": "5 apples ####"}\n',
         ["PATH:2: field 'answer': no final '#### N'"])
    data("empty file", "", ["PATH: no items"])
    data("blank lines only", "\n\n\r\n", ["PATH: no items"])
    data("bad eval line", GOOD_LINE + "\n{oops\n", ["PATH:2: not a JSON object"], flag="--eval-data")


def resume_cases(ctx):
    ck = "ckpt-000002"

    def res(name, corrupt, needles, extra=(), obj=OBJ):
        """Copies the good run, corrupts the copy; --resume must fail and change nothing."""
        if ctx.only and ctx.only not in "resume: " + name:
            return
        d = ctx.path("res-" + slug(name))
        shutil.copytree(ctx.good, d)
        if corrupt:
            corrupt(os.path.join(d, ck))
        needles = [n.replace("CK", os.path.join(d, ck)).replace("OUT", d) for n in needles]
        case(ctx, "resume: " + name, ctx.train(*ctx.resume_args(d), *extra, obj=obj), 1, needles, unchanged=d)

    # latest
    res("latest garbage", lambda c: write(os.path.join(c, "..", "latest"), "hello\n"),
        ["OUT/latest: expected the name of a checkpoint (ckpt-NNNNNN), got 'hello'"])
    res("latest names a missing checkpoint", lambda c: write(os.path.join(c, "..", "latest"), "ckpt-000009\n"),
        ["OUT/latest names ckpt-000009, which has no state.json", "No such file"])
    res("checkpoint directory missing", lambda c: shutil.rmtree(c),
        ["OUT/latest names ckpt-000002, which has no state.json", "No such file"])
    res("latest missing", lambda c: os.remove(os.path.join(c, "..", "latest")),
        ["OUT/latest: cannot open", "nothing to resume"])
    # state.json
    res("state.json invalid JSON", replace("state.json", '{"step": 2,\n oops}'), ["CK/state.json:2:", "invalid JSON", "'oops'"])
    res("state.json missing", remove("state.json"), ["which has no state.json", "No such file"])
    res("state.json not an object", replace("state.json", "[1]"), ["CK/state.json: expected a JSON object"])
    res("state step missing", state_edit(lambda s: s.pop("step")),
        ["CK/state.json: field 'step': expected a non-negative integer"])
    res("state step negative", state_edit(lambda s: s.update(step=-1)),
        ["CK/state.json: field 'step': expected a non-negative integer"])
    res("state step disagrees with the optimizer", state_edit(lambda s: s.update(step=1)),
        ["CK/optim.safetensors: field 'step': 2 optimizer steps, the checkpoint is of step 1"])
    res("state format wrong", state_edit(lambda s: s.update(format="rein-checkpoint-9")),
        ["CK/state.json: field 'format': expected \"rein-checkpoint-2\" (or \"rein-checkpoint-1\")"])
    res("state files missing", state_edit(lambda s: s.pop("files")),
        ["CK/state.json: field 'files': expected the checkpoint's files with their checksums"])
    res("state file checksum malformed", state_edit(lambda s: s["files"]["buffer.bin"].update(xxh3="zz")),
        ["CK/state.json: field 'files.buffer.bin'"])
    res("state next_explore not above step", state_edit(lambda s: s.update(next_explore=2)),
        ["CK/state.json: field 'next_explore'"])
    res("state time negative", state_edit(lambda s: s.update(time=-1)), ["CK/state.json: field 'time'"])
    res("state options missing", state_edit(lambda s: s.pop("options")),
        ["CK/state.json: field 'options': expected an object"])
    res("state option absent", state_edit(lambda s: s["options"].pop("lr")),
        ["CK/state.json: option 'lr' was (absent) in the run"])
    res("other objective", None,
        ["CK/state.json: field 'objective': the run trains 'rec_oneside_nois', not 'rec_ring_nois'"], obj=OBJ2)
    res("changed --lr", None, ["CK/state.json: option 'lr' was 0.0003 in the run, now 0.001"], extra=["--lr", "0.001"])
    res("changed --set", None, ["CK/state.json: option 'set'"], extra=["--set", "eps_low=0.3"])
    # buffer.bin
    res("buffer missing", remove("buffer.bin"), ["CK/buffer.bin: cannot open"])
    res("buffer bad magic", patch_bytes("buffer.bin", 0, b"XXXXXXXX"),
        ["CK/buffer.bin: not a Rein experience buffer (bad magic)"])
    res("buffer truncated in the header", truncate("buffer.bin", 20),
        ["CK/buffer.bin: rollout 0: field 'version': truncated file"])
    res("buffer truncated at the end", truncate("buffer.bin", -8),
        ["CK/buffer.bin: rollout 0: field 'gen_s': truncated file"])
    res("buffer truncated in the middle", truncate("buffer.bin", 100), ["CK/buffer.bin: rollout 0: field 'poff'"])
    res("buffer trailing bytes", append("buffer.bin", b"abc"), ["CK/buffer.bin: 3 bytes after the last rollout"])
    res("buffer negative count", patch_bytes("buffer.bin", 8, struct.pack("<i", -1)),
        ["CK/buffer.bin: field 'count': -1 rollouts cannot fit"])
    res("buffer huge nseq", patch_bytes("buffer.bin", 28, struct.pack("<i", 2**31 - 1)),
        ["CK/buffer.bin: rollout 0: field 'nseq': bad sizes"])
    res("buffer prompt token id", buffer_edit(lambda rs: rs[0]["prompt"].__setitem__(0, 999)),
        ["CK/buffer.bin: rollout 0: field 'prompt': token 999 outside the vocabulary"])
    res("buffer negative response token", buffer_edit(lambda rs: rs[0]["resp"].__setitem__(1, -3)),
        ["CK/buffer.bin: rollout 0: field 'resp': token -3 outside the vocabulary"])
    res("buffer old_logp positive", buffer_edit(lambda rs: rs[0]["old_logp"].__setitem__(0, 0.5)),
        ["CK/buffer.bin: rollout 0: field 'old_logp': 0.5 is not a log-probability"])
    res("buffer reward nan", buffer_edit(lambda rs: rs[0]["reward"].__setitem__(1, float("nan"))),
        ["CK/buffer.bin: rollout 0: field 'reward'"])
    # the message must name the corrupted field, 'trunc' (a 0/1 flag), not 'reward'
    res("buffer trunc flag", buffer_edit(lambda rs: rs[0]["trunc"].__setitem__(0, 7)),
        ["CK/buffer.bin: rollout 0: field 'trunc'"])
    # offsets: the check itself must not overflow (INT_MIN - previous offset)
    res("buffer poff INT_MIN", buffer_edit(lambda rs: rs[0]["poff"].__setitem__(2, -2**31)),
        ["CK/buffer.bin: rollout 0: field 'poff'"])
    res("buffer empty response", buffer_edit(empty_first_response), ["CK/buffer.bin: rollout 0: field 'roff'"])
    res("buffer wrong explore step", buffer_edit(lambda rs: rs[0].update(e=7)),
        ["CK/buffer.bin: rollout 0: field 'e': explore step 7"])
    res("buffer extra rollout", buffer_edit(lambda rs: rs.append(dict(rs[0], e=4))),
        ["CK/buffer.bin: holds 2 batches, state.json says 1"])
    res("buffer no rollouts", buffer_edit(lambda rs: rs.clear()), ["CK/buffer.bin: holds 0 batches"])
    # bytes that still parse but are not the ones written (issue 14, case 8): the checksums
    res("model bit flip", flip_last_bit("model.safetensors"),
        ["CK/model.safetensors: checksum mismatch", "the file was changed or replaced"])
    res("buffer bit flip", flip_last_bit("buffer.bin", -12), ["CK/buffer.bin: checksum mismatch"])
    res("config whitespace", append("config.json", b"\n"), ["CK/config.json: checksum mismatch"])
    res("optim bit flip", flip_last_bit("optim.safetensors"), ["CK/optim.safetensors: checksum mismatch"])
    # the safetensors files
    res("model truncated", truncate("model.safetensors", -30000), ["CK/model.safetensors: tensor", "truncated"])
    res("model truncated in the header", truncate("model.safetensors", 100),
        ["CK/model.safetensors: header length", "exceeds the file size"])
    res("model missing", remove("model.safetensors"), ["CK/model.safetensors: cannot open"])
    res("model header not JSON", replace("model.safetensors", struct.pack("<Q", 16) + b"{not json here!}"),
        ["CK/model.safetensors: header is not a JSON object"])
    res("model of another shape", lambda c: shutil.copy(ctx.path("tiny48/model.safetensors"),
                                                         os.path.join(c, "model.safetensors")),
        ["CK/model.safetensors: tensor 'model.embed_tokens.weight': shape [17,48], expected [17,32]"])
    res("optim missing", remove("optim.safetensors"), ["CK/optim.safetensors: cannot open"])
    res("optim truncated", truncate("optim.safetensors", 1000), ["CK/optim.safetensors: header length"])
    res("optim is the model", lambda c: shutil.copy(os.path.join(c, "model.safetensors"),
                                                     os.path.join(c, "optim.safetensors")),
        ["CK/optim.safetensors: tensor 'model.embed_tokens.weight': unexpected"])

    # no run to resume
    empty = ctx.path("res-empty")
    os.mkdir(empty)
    case(ctx, "resume: empty directory", ctx.train(*ctx.resume_args(empty)), 1,
         [empty + "/latest: cannot open", "nothing to resume"], unchanged=empty)
    out = ctx.fresh_out()
    case(ctx, "resume: nonexistent directory", ctx.train(*ctx.resume_args(out)), 1,
         [out + ": no such run directory", "nothing to resume"], absent=out)


def fresh_cases(ctx):
    d = ctx.path("fresh-over-run")
    shutil.copytree(ctx.good, d)
    case(ctx, "fresh: a run directory", ctx.train("--out", d), 1,
         [d + " already holds a run", "--resume"], unchanged=d)
    d2 = ctx.path("fresh-over-latest")
    os.makedirs(d2, exist_ok=True)
    write(os.path.join(d2, "latest"), "ckpt-000002\n")
    case(ctx, "fresh: a directory with only latest", ctx.train("--out", d2), 1,
         [d2 + " already holds a run"], unchanged=d2)
    d3 = ctx.path("fresh-over-metrics")
    os.makedirs(d3, exist_ok=True)
    write(os.path.join(d3, "metrics.jsonl"), '{"kind":"eval","step":0}\n')
    case(ctx, "fresh: a directory with only metrics.jsonl", ctx.train("--out", d3), 1,
         [d3 + " already holds a run"], unchanged=d3)


def sft_cases(ctx):
    def sft(name, args, rc, needles):
        out = ctx.fresh_out()
        cmd = [ctx.rein, "sft", "--steps", "2", "--batch-prompts", "2", "--eval-prompts", "4", "--max-new", "4",
               "--threads", "1", "--progress", "0", "--out", out] + args
        case(ctx, f"sft: {name}", cmd, rc, needles, absent=out)

    missing = ctx.path("no-such-model-config.json")
    sft("nonexistent --model-config", ["--model-config", missing], 1, [missing + ": cannot open"])
    bad = write(ctx.path("sft-bad.json"), '{\n "vocab_size": 17,\n oops\n}\n')
    sft("invalid JSON --model-config", ["--model-config", bad], 1, [bad + ": not valid JSON (line 3"])
    arr = write(ctx.path("sft-array.json"), "[1]\n")
    sft("--model-config not an object", ["--model-config", arr], 1, [arr + ": expected a JSON object"])
    rng = write_json(ctx.path("sft-range.json"), dict(TINY, vocab_size=-3))
    sft("--model-config out of range", ["--model-config", rng], 1, [rng + ": field 'vocab_size'"])
    small = write_json(ctx.path("sft-small-vocab.json"), dict(TINY, vocab_size=8))
    sft("vocabulary too small", ["--model-config", small], 1, ["the model's vocabulary (8) is smaller"])
    sft("no model", [], 2, ["rein sft needs --model DIR or --model-config"])
    sft("nonexistent --model", ["--model", "/nonexistent/model"], 1, ["/nonexistent/model/config.json"])
    sft("train-only option", ["--model-config", ctx.path("tiny.json"), "--group", "2"], 2,
        ["unknown option '--group'"])
    cfg = write_json(ctx.path("sft-cfg.json"), {"sync-offset": 1})
    sft("train-only config key", ["--model-config", ctx.path("tiny.json"), "--config", cfg], 2,
        [cfg + ": field 'sync-offset': unknown option"])


def positive_control(ctx):
    """The good run resumes: exit 0, ckpt-000004 is the latest, metrics reach step 4."""
    name = "control: the good run resumes to ckpt-000004"
    if ctx.only and ctx.only not in name:
        return
    d = ctx.path("res-control")
    shutil.copytree(ctx.good, d)

    def job():
        rc, _, err = run(ctx.train(*ctx.resume_args(d)))
        why = [] if rc == 0 else [f"exit status {rc}"]
        why += sanitizer(err)
        latest = os.path.join(d, "latest")
        if not os.path.exists(latest) or open(latest).read() != "ckpt-000004\n":
            why.append("latest is not ckpt-000004")
        if not os.path.isfile(os.path.join(d, "ckpt-000004", "state.json")):
            why.append("no ckpt-000004/state.json")
        try:
            with open(os.path.join(d, "metrics.jsonl")) as f:
                steps = [json.loads(line)["step"] for line in f if '"train"' in line]
            if steps != [1, 2, 3, 4]:
                why.append(f"train records of steps {steps}, expected [1, 2, 3, 4]")
        except (OSError, ValueError, KeyError) as e:
            why.append(f"metrics.jsonl: {e}")
        return why, err

    ctx.jobs.append((name, job))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rein", required=True, help="the rein binary")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    ap.add_argument("--only", default="", help="run only the cases whose name contains this")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="cases run at once")
    a = ap.parse_args()
    rein = os.path.abspath(a.rein)
    work = tempfile.mkdtemp(prefix="rein-bad-inputs-")
    ctx = Ctx(rein, work, a.only)
    try:
        setup(ctx)
        positive_control(ctx)
        config_cases(ctx)
        cli_cases(ctx)
        data_cases(ctx)
        resume_cases(ctx)
        fresh_cases(ctx)
        sft_cases(ctx)
        run_jobs(ctx, max(1, a.jobs))
    finally:
        if a.keep:
            print("work directory kept:", work)
        else:
            shutil.rmtree(work, ignore_errors=True)
    if ctx.fails:
        print(f"FAIL {len(ctx.fails)} of {ctx.ncases} cases: " + ", ".join(ctx.fails))
        return 1
    print(f"ok {ctx.ncases} cases")
    return 0


if __name__ == "__main__":
    sys.exit(main())
