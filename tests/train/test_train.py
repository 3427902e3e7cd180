#!/usr/bin/env python3
"""End-to-end tests of the trainer (`rein train`, `rein build`, `rein sft`, `rein plot`).

    /usr/bin/python3 tests/train/test_train.py --rein build/rein CASE [--keep]

CASE:
  e2e     a short run from the shipped arithmetic model with a REC objective: the training
          reward and the held-out accuracy rise; metrics.jsonl has every documented field and
          every metric the objective declares; `rein plot` renders the run
  resume  a run stopped after step 3 (--stop-at) and resumed ends bit-identical to the run done
          in one go: same model and AdamW state bytes, same metrics (timing fields aside);
          sync_offset > 0 so the checkpoint holds explored batches; micro-batches, ref_logp;
          the policy version and lag of every batch follow docs/algorithms.md, the off-policy
          schedule; with --save-dtype bf16 the checkpoints' weights are BF16 (torch's rounding of the F32 run's) and optim
          holds the F32 masters, so stopping and resuming from them changes no step
  build   `rein build` makes a standalone trainer without LLVM that gives the same bits as
          `rein train`; `rein sft` trains a model that `rein model` loads
  state   an objective with a state (kl_coef, updated after every step), trainer constants
          (max_new, group_size, step), an input from the task's data (arith's `difficulty`) and a
          statistics stage (self-normalised importance weights): the state is logged, saved in
          the checkpoint and restored, and a run stopped and resumed is bit-identical; --set of a
          trainer constant is refused
  group1  `--group 1` with the peers' objectives (std:ppo_dual_clip, std:gpg): a group of one
          response takes verl's mean 0 (and std 1), so its advantage is r, not 0, and a step whose
          batch has a non-zero reward has a non-zero gradient and changes the weights
  faults  one run per directory (the lock names the holder's pid); a run killed before its first
          checkpoint resumes by starting again; temporaries of interrupted saves are removed; a
          kill -9 mid-run resumes bit-identically
  logp    the sampling temperature and --old-logp (docs/trainer.md): at --temperature 0.5 with
          --top-k 5 the recorded old_logp of every sampled token is log softmax(logits / 0.5) of
          the float64 PyTorch oracle (not the T = 1 nor the top-k-renormalized value), the
          entropy the objective sees is the oracle's at T 0.5, and on-policy kl_behaviour is 0
          to rounding; --old-logp recompute: std:ppo_tis trains with a finite loss, the
          recomputed old_logp equals the step's first forward, differs from rollout_logp when
          stale (--sync-offset 2) and agrees with it on-policy; the refusals (rollout_logp
          without recompute, --temperature 0, a bad --old-logp) name the fix
"""
import argparse
import hashlib
import json
import math
import os
import shutil
import subprocess
import sys
import struct
import tempfile

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tests", "oracle"))
import tfm_oracle as O  # noqa: E402
from train_common import TIMING  # noqa: E402
FAILS = []


def check(cond, what):
    print(("ok    " if cond else "FAIL  ") + what, flush=True)
    if not cond:
        FAILS.append(what)


def run(cmd, timeout=600, ok=True):
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if ok and p.returncode != 0:
        print("command failed:", " ".join(cmd), "\n", p.stdout[-3000:], p.stderr[-3000:], flush=True)
        raise SystemExit(1)
    return p


def records(run_dir):
    with open(os.path.join(run_dir, "metrics.jsonl")) as f:
        return [json.loads(line) for line in f]


def sha(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def strip(recs):
    return [{k: v for k, v in r.items() if k not in TIMING} for r in recs]


def tensor_dtypes(path):
    """{name: dtype} from a safetensors header."""
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        return {k: v["dtype"] for k, v in json.loads(f.read(n)).items() if k != "__metadata__"}


def tiny_model(rein, work, name="tiny"):
    cfg = {"model_type": "llama", "vocab_size": 17, "hidden_size": 32, "num_hidden_layers": 2,
           "num_attention_heads": 4, "num_key_value_heads": 2, "intermediate_size": 64,
           "max_position_embeddings": 64, "tie_word_embeddings": True, "bos_token_id": 1,
           "eos_token_id": 2, "initializer_range": 0.1}
    path = os.path.join(work, name + ".json")
    with open(path, "w") as f:
        json.dump(cfg, f)
    out = os.path.join(work, name)
    run([rein, "model", "init", "--config", path, "--seed", "3", "-o", out])
    return path, out


def case_e2e(rein, work):
    out = os.path.join(work, "runs", "e2e")   # --out creates its parents, as in the README's main job
    obj = os.path.join(ROOT, "examples", "rec_ring_nois.rein")
    run([rein, "train", obj, "--steps", "200", "--batch-prompts", "16", "--lr", "5e-4", "--eval-every", "100",
         "--eval-prompts", "200", "--save-every", "0", "--threads", "2", "--progress", "0", "--out", out])
    recs = records(out)
    train = [r for r in recs if r["kind"] == "train"]
    evals = [r for r in recs if r["kind"] == "eval"]
    check(len(train) == 200 and [r["step"] for r in train] == list(range(1, 201)), "one train record per step")
    check([r["step"] for r in evals] == [0, 100, 200], "evaluations at steps 0, 100, 200")
    fields = {"loss", "clip_frac", "reward_mean", "reward_std", "accuracy", "entropy", "kl_behaviour", "lag",
              "version", "response_len", "truncated", "grad_norm", "lr", "rollout_tok_s", "train_tok_s", "time",
              "t_rollout", "t_ref", "t_forward", "t_objective", "t_backward", "t_optimizer"}
    check(all(fields <= set(r) for r in train), "train records carry every field: " + ", ".join(sorted(fields)))
    check(all(r["t_ref"] == 0 and r["t_forward"] > 0 and r["t_backward"] > 0 and r["t_objective"] > 0 and
              r["t_optimizer"] > 0 and r["t_rollout"] >= 0 for r in train),
          "the phase timings: no reference policy here, every other phase took time")
    check(all(math.isfinite(r["loss"]) and r["lag"] == 0 and r["version"] == r["step"] - 1 for r in train),
          "on-policy by default: version = step - 1, lag 0, finite loss")
    first = sum(r["reward_mean"] for r in train[:40]) / 40
    last = sum(r["reward_mean"] for r in train[-40:]) / 40
    check(last > first + 0.03, f"training reward rises: first 40 steps {first:.3f}, last 40 {last:.3f}")
    check(evals[-1]["eval_accuracy"] > evals[0]["eval_accuracy"],
          f"held-out accuracy rises: {evals[0]['eval_accuracy']:.3f} -> {evals[-1]['eval_accuracy']:.3f}")
    check(os.path.isdir(os.path.join(out, "ckpt-000200")) and open(os.path.join(out, "latest")).read() == "ckpt-000200\n",
          "final checkpoint written and named in latest")
    svg = os.path.join(work, "e2e.svg")
    run([rein, "plot", out, "-o", svg])
    text = open(svg).read()
    check('data-metric="reward_mean"' in text and 'data-metric="eval_accuracy"' in text, "rein plot renders the run")


def version(e, n, k):
    return n * max(0, (e - 1 - k) // n)


def case_resume(rein, work):
    _, model = tiny_model(rein, work)
    obj = os.path.join(ROOT, "examples", "opmd_kl.rein")
    common = [rein, "train", obj, "--model", model, "--steps", "8", "--batch-prompts", "6", "--group", "4",
              "--micro-groups", "2", "--sync-interval", "2", "--sync-offset", "3", "--lr", "3e-3", "--set",
              "kl_coef=0.05", "--eval-every", "4", "--eval-prompts", "16", "--save-every", "4", "--threads", "2",
              "--progress", "0", "--max-new", "6", "--seed", "7"]
    a, b = os.path.join(work, "a"), os.path.join(work, "b")
    run(common + ["--out", a])
    p = run(common + ["--out", b, "--stop-at", "3"])
    check("stopped after step 3" in p.stderr, "--stop-at stops after step 3 with a message")
    state = json.load(open(os.path.join(b, "ckpt-000003", "state.json")))
    check(state["step"] == 3 and state["next_explore"] > 4,
          f"the checkpoint of step 3 holds batches explored ahead (next explore step {state['next_explore']})")
    run(common + ["--out", b, "--resume"])
    for f in ("model.safetensors", "optim.safetensors"):
        check(sha(os.path.join(a, "ckpt-000008", f)) == sha(os.path.join(b, "ckpt-000008", f)),
              f"resumed run's {f} is bit-identical to the uninterrupted run's")
    ra, rb = strip(records(a)), strip(records(b))
    # the stopped run also evaluated where it stopped (step 3): one record more
    extra = [r for r in rb if r not in ra]
    check([r for r in rb if r not in extra] == ra and [(r["kind"], r["step"]) for r in extra] == [("eval", 3)],
          f"metrics.jsonl identical apart from timing ({len(ra)} records) and the evaluation at the stop")
    train = [r for r in records(a) if r["kind"] == "train"]
    check([r["version"] for r in train] == [version(e, 2, 3) for e in range(1, 9)],
          "policy versions follow n*max(0, floor((e-1-k)/n)) for n=2, k=3: " + str([r["version"] for r in train]))
    check([r["lag"] for r in train] == [e - 1 - version(e, 2, 3) for e in range(1, 9)], "lag = (e-1) - version")
    check(all("kl_ref" in r for r in train) and any(r["kl_ref"] > 0 for r in train[1:]),
          "ref_logp reaches the objective (kl_ref > 0 once the policy moved)")
    # resuming a finished run does nothing and changes nothing
    before = sha(os.path.join(b, "ckpt-000008", "model.safetensors"))
    p = run(common + ["--out", b, "--resume"])
    check("complete" in p.stderr and sha(os.path.join(b, "ckpt-000008", "model.safetensors")) == before,
          "resuming a complete run says so and changes nothing")
    # --save-dtype bf16: the checkpoints' model files are rounded, optim keeps the F32 masters, so
    # a run stopped and resumed from a BF16 checkpoint trains exactly as the F32 run did
    c = os.path.join(work, "c")
    p = run(common + ["--out", c, "--stop-at", "3", "--save-dtype", "bf16"])
    st = os.path.join(c, "ckpt-000003")
    dts = set(tensor_dtypes(os.path.join(st, "model.safetensors")).values())
    opt = tensor_dtypes(os.path.join(st, "optim.safetensors"))
    check(dts == {"BF16"} and set(opt.values()) == {"F32"} and
          sum(n.endswith(".master") for n in opt) == sum(n.endswith(".exp_avg") for n in opt) > 0,
          f"--save-dtype bf16: model.safetensors is BF16 ({dts}), optim.safetensors holds F32 masters")
    run(common + ["--out", c, "--resume", "--save-dtype", "bf16"])
    check(sha(os.path.join(a, "ckpt-000008", "optim.safetensors")) !=
          sha(os.path.join(c, "ckpt-000008", "optim.safetensors")) and
          strip(records(c)) == strip(records(b)),
          "a run checkpointed in BF16 and resumed from it computes every step as the F32 runs "
          "(metrics.jsonl identical apart from timing): it went on from the masters")
    ma = O.read_safetensors(os.path.join(a, "ckpt-000008", "optim.safetensors"))
    mc = O.read_safetensors(os.path.join(c, "ckpt-000008", "optim.safetensors"))
    fa = O.read_safetensors(os.path.join(a, "ckpt-000008", "model.safetensors"))
    fc = O.read_safetensors(os.path.join(c, "ckpt-000008", "model.safetensors"))
    check(all(torch.equal(ma[n], mc[n]) for n in ma) and
          all(torch.equal(mc[n + ".master"], fa[n]) for n in fa) and
          all(torch.equal(fa[n].to(torch.bfloat16).to(torch.float32), fc[n]) for n in fa),
          "its final masters and moments equal the F32 run's weights and moments bit for bit, and its "
          "BF16 weights are those rounded as torch rounds")


def case_state(rein, work):
    _, model = tiny_model(rein, work)
    obj = os.path.join(ROOT, "tests", "train", "stateful.rein")
    common = [rein, "train", obj, "--model", model, "--steps", "6", "--batch-prompts", "4", "--group", "4",
              "--micro-groups", "1", "--sync-interval", "1", "--sync-offset", "2", "--lr", "3e-3",
              "--eval-every", "3", "--eval-prompts", "8", "--save-every", "3", "--threads", "2", "--progress", "0",
              "--max-new", "5", "--seed", "3"]
    a, b = os.path.join(work, "sa"), os.path.join(work, "sb")
    run(common + ["--out", a])
    run(common + ["--out", b, "--stop-at", "2"])
    state = json.load(open(os.path.join(b, "ckpt-000002", "state.json")))
    check("kl_coef" in state.get("states", {}) and len(state["states"]["kl_coef"]["bits"]) == 16,
          f"the checkpoint holds the state with its bits: {state.get('states')}")
    run(common + ["--out", b, "--resume"])
    for f in ("model.safetensors", "optim.safetensors"):
        check(sha(os.path.join(a, "ckpt-000006", f)) == sha(os.path.join(b, "ckpt-000006", f)),
              f"with a state: the resumed run's {f} is bit-identical to the uninterrupted run's")
    sa = json.load(open(os.path.join(a, "ckpt-000006", "state.json")))["states"]
    sb = json.load(open(os.path.join(b, "ckpt-000006", "state.json")))["states"]
    check(sa == sb, f"the final state is bit-identical after a resume: {sa} {sb}")
    ra, rb = strip(records(a)), strip(records(b))
    extra = [r for r in rb if r not in ra]
    check([r for r in rb if r not in extra] == ra and [(r["kind"], r["step"]) for r in extra] == [("eval", 2)],
          "with a state: metrics.jsonl identical apart from timing and the evaluation at the stop")
    train = [r for r in records(a) if r["kind"] == "train"]
    kc = [r["kl_coef"] for r in train]
    check(kc[0] == 0.05 and len(set(kc)) > 1 and all(x > 0 for x in kc),
          f"metrics.jsonl logs the state each step used, starting at its initial value: {kc}")
    # the update rule, recomputed from the logged KL: next = cur * (1 + clamp(kl/target - 1, -0.2, 0.2) * 0.5)
    want = [c * (1 + min(max(r["kl_ref"] / 0.001 - 1, -0.2), 0.2) * 0.5) for c, r in zip(kc, train)]
    check(all(abs(w - n) <= 1e-6 * abs(n) for w, n in zip(want[:-1], kc[1:])),
          "each step's state is the previous step's update (recomputed from the logged kl_ref)")
    check([r["step_seen"] for r in train] == list(range(1, 7)) and all(r["group_seen"] == 4 for r in train),
          "the trainer constants step and group_size reach the objective")
    check(all(2 <= r["difficulty_mean"] <= 4 for r in train),
          "the input `difficulty` comes from the arith items (2 to 4 digits): "
          + str([round(r["difficulty_mean"], 3) for r in train]))
    p = run(common[:-4] + ["--set", "max_new=3", "--out", os.path.join(work, "sc")], ok=False)
    check(p.returncode != 0 and "trainer constant" in p.stderr, "--set of a trainer constant is refused: "
          + p.stderr.strip()[-200:])


def case_build(rein, work):
    cfg, model = tiny_model(rein, work)
    obj = os.path.join(ROOT, "examples", "rec_ring_nois.rein")
    exe = os.path.join(work, "trainer")
    run([rein, "build", obj, "-o", exe])
    check(os.access(exe, os.X_OK), "rein build writes an executable")
    ldd = run(["ldd", exe], ok=False).stdout
    check("LLVM" not in ldd, "the standalone trainer does not link LLVM")
    check("usage" in run([exe, "--help"]).stdout, "the standalone trainer has --help")
    args = ["--model", model, "--steps", "3", "--batch-prompts", "4", "--group", "4", "--eval-prompts", "8",
            "--threads", "2", "--progress", "0", "--max-new", "5"]
    x, y = os.path.join(work, "x"), os.path.join(work, "y")
    run([exe] + args + ["--out", x])
    run([rein, "train", obj] + args + ["--out", y])
    check(sha(os.path.join(x, "ckpt-000003", "model.safetensors")) == sha(os.path.join(y, "ckpt-000003",
                                                                                     "model.safetensors")),
          "standalone trainer and rein train give the same model bits")
    check(strip(records(x)) == strip(records(y)), "and the same metrics")
    # a config file gives the same run as the command line
    conf = os.path.join(work, "run.json")
    with open(conf, "w") as f:
        json.dump({"model": model, "steps": 3, "batch-prompts": 4, "group": 4, "eval-prompts": 8, "threads": 2,
                   "max-new": 5}, f)
    z = os.path.join(work, "z")
    run([exe, "--config", conf, "--progress", "0", "--out", z])
    check(strip(records(z)) == strip(records(x)), "options from --config equal the command line's")
    # the GSM8K task end to end: a tiny model over its 228-token vocabulary, two steps
    g = {"model_type": "qwen2", "vocab_size": 228, "hidden_size": 32, "num_hidden_layers": 1,
         "num_attention_heads": 2, "num_key_value_heads": 1, "intermediate_size": 48,
         "max_position_embeddings": 1024, "tie_word_embeddings": True, "eos_token_id": 2}
    gcfg, gdir = os.path.join(work, "g.json"), os.path.join(work, "gmodel")
    json.dump(g, open(gcfg, "w"))
    run([rein, "model", "init", "--config", gcfg, "--seed", "1", "-o", gdir])
    data = os.path.join(work, "gsm.jsonl")
    with open(data, "w") as f:
        for q, a in (("What is 2+3?", "2+3=5\n#### 5"), ("Tom has 4 apples and eats 1. How many are left?",
                                                        "4-1=3\n#### 3"), ("Half of 10?", "10/2=5\n#### 5")):
            f.write(json.dumps({"question": q, "answer": a}) + "\n")
    gout = os.path.join(work, "gsm_run")
    run([rein, "train", obj, "--task", "gsm8k", "--train-data", data, "--eval-data", data, "--model", gdir,
         "--steps", "2", "--batch-prompts", "2", "--group", "3", "--max-new", "12", "--eval-prompts", "3",
         "--threads", "2", "--progress", "0", "--out", gout])
    grecs = records(gout)
    check(len([r for r in grecs if r["kind"] == "train"]) == 2 and
          [r["eval_accuracy"] for r in grecs if r["kind"] == "eval"] == [0.0, 0.0],
          "the gsm8k task trains end to end and evaluates on its held-out file")
    check(all(abs(r["reward_mean"] + 0.1) < 1e-6 for r in grecs if r["kind"] == "train"),
          "an untrained model's responses get the format penalty -0.1 and no accuracy")
    # sft: a few steps from a random init; the result loads and its loss falls
    sft = os.path.join(work, "sft")
    p = run([rein, "sft", "--model-config", cfg, "--init-seed", "1", "--steps", "40", "--batch-prompts", "16",
             "--eval-every", "20", "--eval-prompts", "8", "--threads", "2", "--progress", "0", "-o", sft])
    lines = [json.loads(s) for s in p.stdout.splitlines() if s.startswith("{")]
    check([r["step"] for r in lines if r["kind"] == "eval"] == [0, 20, 40], "rein sft evaluates at steps 0, 20, 40")
    train = [r for r in lines if r["kind"] == "train"]
    check([r["step"] for r in train] == list(range(1, 41)) and all("grad_norm" in r and "lr" in r for r in train)
          and not any("reward_mean" in r for r in train),
          "rein sft writes metrics.jsonl's train records on stdout (no reward fields)")
    check(sum(r["loss"] for r in train[-5:]) < sum(r["loss"] for r in train[:5]), "the sft loss falls")
    info = run([rein, "model", "info", "--model", sft]).stdout
    check("parameters" in info or "params" in info, "the sft model loads with rein model info")
    out2 = os.path.join(work, "sft2")
    run([rein, "sft", "--model-config", cfg, "--init-seed", "1", "--steps", "40", "--batch-prompts", "16",
         "--eval-every", "20", "--eval-prompts", "8", "--threads", "2", "--progress", "0", "-o", out2])
    check(sha(os.path.join(sft, "model.safetensors")) == sha(os.path.join(out2, "model.safetensors")),
          "rein sft is reproducible: same options, same bits")


def case_faults(rein, work):
    """The run directory under faults (issue 14, cases 7 and 9): one run at a time (flock on
    OUT/lock, the holder's pid in the message); what interrupted saves left is removed on start;
    a run killed before its first checkpoint resumes by starting again; a kill -9 mid-run resumes
    bit-identically from the last checkpoint."""
    import signal
    import time
    _, model = tiny_model(rein, work)
    obj = os.path.join(ROOT, "examples", "rec_ring_nois.rein")
    common = [rein, "train", obj, "--model", model, "--batch-prompts", "4", "--group", "4", "--lr", "3e-3",
              "--eval-every", "0", "--eval-prompts", "8", "--threads", "1", "--progress", "0", "--max-new", "6",
              "--seed", "5"]
    # a second process on the same directory is refused while the first runs
    busy = os.path.join(work, "busy")
    first = subprocess.Popen(common + ["--steps", "100000", "--save-every", "1000", "--out", busy],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    lock = os.path.join(busy, "lock")
    for _ in range(600):
        if os.path.exists(os.path.join(busy, "metrics.jsonl")):
            break
        time.sleep(0.05)
    p = run(common + ["--steps", "4", "--out", busy, "--resume"], ok=False)
    held = open(lock).read().strip() if os.path.exists(lock) else ""
    check(p.returncode == 1 and f"is in use by another run (pid {first.pid}" in p.stderr,
          f"a --resume while the run is live is refused, naming its pid ({held}): {p.stderr.strip()[:300]}")
    p = run(common + ["--steps", "4", "--out", busy], ok=False)
    check(p.returncode == 1 and "is in use by another run" in p.stderr, "so is a fresh run into the same directory")
    # killed before its first checkpoint: --resume starts it again
    first.send_signal(signal.SIGKILL)
    first.wait()
    check(not os.path.exists(os.path.join(busy, "latest")), "the killed run had no checkpoint yet")
    p = run(common + ["--steps", "4", "--save-every", "2", "--out", busy, "--resume"], ok=False)
    check(p.returncode == 0 and "no checkpoint yet" in p.stderr and
          [r["step"] for r in records(busy) if r["kind"] == "train"] == [1, 2, 3, 4],
          "a --resume of a run killed before its first checkpoint starts it again: " + p.stderr.strip()[-300:])
    # a kill -9 mid-run, then --resume, ends bit-identical to an uninterrupted run
    ref, cut = os.path.join(work, "ref"), os.path.join(work, "cut")
    run(common + ["--steps", "12", "--save-every", "3", "--out", ref])
    victim = subprocess.Popen(common + ["--steps", "12", "--save-every", "3", "--out", cut],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(2000):
        if os.path.exists(os.path.join(cut, "ckpt-000006")):
            break
        time.sleep(0.01)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    # what an interrupted save leaves, as a kill at the wrong moment would
    os.makedirs(os.path.join(cut, ".ckpt-000009.tmp.99999"), exist_ok=True)
    with open(os.path.join(cut, ".ckpt-000009.tmp.99999", "model.safetensors"), "wb") as f:
        f.write(b"\0" * 1000)
    with open(os.path.join(cut, "latest.tmp.99999"), "w") as f:
        f.write("ckpt-0000")
    p = run(common + ["--steps", "12", "--save-every", "3", "--out", cut, "--resume"], ok=False)
    left = [n for n in os.listdir(cut) if ".tmp." in n or ".old." in n]
    check(p.returncode == 0 and "temporaries of an interrupted save" in p.stderr and not left,
          f"stale temporaries are removed on resume (left: {left}): {p.stderr.strip()[-300:]}")
    check(sha(os.path.join(ref, "ckpt-000012", "model.safetensors")) ==
          sha(os.path.join(cut, "ckpt-000012", "model.safetensors")),
          "a run killed with SIGKILL and resumed ends bit-identical to the uninterrupted run")


def case_group1(rein, work):
    start = O.read_safetensors(os.path.join(ROOT, "models", "arith", "model.safetensors"))
    for name in ("ppo_dual_clip", "gpg"):
        out = os.path.join(work, "g1_" + name)
        run([rein, "train", "std:" + name, "--group", "1", "--steps", "3", "--batch-prompts", "8",
             "--eval-every", "0", "--eval-prompts", "8", "--save-every", "0", "--threads", "2",
             "--progress", "0", "--out", out])
        train = [r for r in records(out) if r["kind"] == "train"]
        rewarded = [r for r in train if r["reward_mean"] != 0]
        check(len(train) == 3 and rewarded and all(r["grad_norm"] > 0 and r["loss"] != 0 for r in rewarded),
              f"std:{name} --group 1: every step with a non-zero reward has a loss and a gradient "
              f"(reward_mean, loss, grad_norm): {[(r['reward_mean'], r['loss'], r['grad_norm']) for r in train]}")
        end = O.read_safetensors(os.path.join(out, "ckpt-000003", "model.safetensors"))
        check(any(not torch.equal(start[n], end[n]) for n in start),
              f"std:{name} --group 1: the weights change")


def read_buffer(path):
    """The rollouts of a checkpoint's buffer.bin (runtime/train/trn_buffer.c, REINBUF2):
    [{e, version, prompts: [[ids]], resps: [[ids]], old_logp: [[floats]]}]."""
    with open(path, "rb") as f:
        data = f.read()
    assert data[:8] == b"REINBUF2", data[:8]
    at = [8]

    def take(fmt, n=1):
        size = struct.calcsize("<" + fmt) * n
        vals = struct.unpack_from("<%d%s" % (n, fmt), data, at[0])
        at[0] += size
        return list(vals)

    out = []
    for _ in range(take("i")[0]):
        e, ver = take("q", 2)
        nseq, _group = take("i", 2)
        poff = take("i", nseq + 1)
        prompt = take("i", poff[-1])
        roff = take("i", nseq + 1)
        resp = take("i", roff[-1])
        olp = take("f", roff[-1])
        take("f", 2 * nseq)    # reward, acc
        take("B", nseq)        # trunc
        take("d")              # gen_s
        take("f", take("i")[0] * nseq)
        out.append({"e": e, "version": ver,
                    "prompts": [prompt[poff[s]:poff[s + 1]] for s in range(nseq)],
                    "resps": [resp[roff[s]:roff[s + 1]] for s in range(nseq)],
                    "old_logp": [olp[roff[s]:roff[s + 1]] for s in range(nseq)]})
    return out


def case_logp(rein, work):
    _, model = tiny_model(rein, work)
    T, K = 0.5, 5
    # --lr 0: the weights never move, so the checkpoint's model is the policy that sampled; batch 2
    # (sync offset 1) was explored with version 0 and waits in the checkpoint after step 1
    out = os.path.join(work, "temp")
    common = [rein, "train", "std:grpo", "--model", model, "--steps", "2", "--batch-prompts", "4", "--group", "4",
              "--max-new", "6", "--temperature", str(T), "--top-k", str(K), "--lr", "0", "--sync-offset", "1",
              "--eval-prompts", "4", "--save-every", "0", "--threads", "2", "--progress", "0", "--out", out]
    run(common + ["--stop-at", "1"])
    ck = os.path.join(out, "ckpt-000001")
    (b2,) = read_buffer(os.path.join(ck, "buffer.bin"))
    check(b2["e"] == 2 and b2["version"] == 0, "the checkpoint after step 1 holds batch 2 of version 0")
    m = O.TfmModel(O.load_config(os.path.join(ck, "config.json")), O.load_model_dir(ck))
    seqs = [p + r for p, r in zip(b2["prompts"], b2["resps"])]
    d_t = d_one = d_cut = 0.0
    ent, ntok = 0.0, 0
    for s, lg in enumerate(m.forward_packed(seqs)):
        P, resp = len(b2["prompts"][s]), b2["resps"][s]
        z = lg[P - 1:P - 1 + len(resp)]
        tgt = torch.tensor(resp)[:, None]
        lt = torch.log_softmax(z / T, -1)
        l1 = torch.log_softmax(z, -1).gather(1, tgt)[:, 0]
        kth = torch.topk(z, K, -1).values[:, -1:]
        lq = torch.log_softmax((z / T).masked_fill(z < kth, float("-inf")), -1).gather(1, tgt)[:, 0]
        got = torch.tensor(b2["old_logp"][s], dtype=torch.float64)
        d_t = max(d_t, float((got - lt.gather(1, tgt)[:, 0]).abs().max()))
        d_one = max(d_one, float((got - l1).abs().max()))
        d_cut = max(d_cut, float((got - lq).abs().max()))
        ent += float(-(lt.exp() * lt).sum(-1).sum())
        ntok += len(resp)
    check(d_t < 2e-5, f"old_logp = log softmax(logits / {T}) of the oracle, before top-k (max |diff| {d_t:.1e})")
    check(d_one > 1e-2 and d_cut > 1e-2,
          f"... which is neither the T = 1 log-prob ({d_one:.2f} away) nor top-k's renormalized one ({d_cut:.2f})")
    run(common + ["--resume"])
    train = [r for r in records(out) if r["kind"] == "train"]
    check(len(train) == 2 and all(r["kl_behaviour"] < 1e-9 for r in train),
          "on-policy kl_behaviour is 0 to rounding at T 0.5: the trainer's logp is of logits / T (%s)"
          % [r["kl_behaviour"] for r in train])
    check(abs(train[1]["entropy"] - ent / ntok) < 1e-5,
          f"the entropy the objective sees is the oracle's at T 0.5 ({train[1]['entropy']:.6f} vs {ent / ntok:.6f})")

    # --old-logp recompute
    probe = os.path.join(ROOT, "tests", "train", "logp_probe.rein")
    base = [rein, "train", "--steps", "4", "--batch-prompts", "6", "--group", "4", "--eval-prompts", "4",
            "--save-every", "0", "--threads", "2", "--progress", "0", "--old-logp", "recompute"]
    out = os.path.join(work, "tis")
    run(base[:2] + ["std:ppo_tis"] + base[2:] + ["--out", out])
    train = [r for r in records(out) if r["kind"] == "train"]
    check(len(train) == 4 and all(math.isfinite(r["loss"]) and math.isfinite(r["tis_frac"]) for r in train),
          "rein train std:ppo_tis --old-logp recompute: 4 steps, finite loss and tis_frac")
    gaps = {}
    for name, sync in (("stale", ["--sync-interval", "1", "--sync-offset", "2"]),
                       ("onpolicy", ["--sync-interval", "1", "--sync-offset", "0"])):
        out = os.path.join(work, name)
        run(base[:2] + [probe] + base[2:] + sync + ["--lr", "3e-3", "--out", out])
        gaps[name] = [r for r in records(out) if r["kind"] == "train"]
    st, on = gaps["stale"], gaps["onpolicy"]
    check(all(r["logp_old_gap"] == 0 for r in st + on),
          "recomputed old_logp is the policy's before the step: equal to the step's first forward")
    check(st[0]["old_roll_gap"] < 1e-4 and all(r["old_roll_gap"] > 1e-3 for r in st[1:]),
          "stale (sync 1/2): recomputed old_logp differs from rollout_logp once the weights moved %s"
          % [r["old_roll_gap"] for r in st])
    check(all(r["old_roll_gap"] < 1e-4 for r in on),
          "on-policy (sync 1/0): recomputed old_logp = rollout_logp to rounding %s" % [r["old_roll_gap"] for r in on])

    # refusals
    p = run([rein, "train", "std:ppo_tis", "--steps", "1", "--out", os.path.join(work, "no")], ok=False)
    check(p.returncode != 0 and "objective 'ppo_tis' reads rollout_logp" in p.stderr and
          "--old-logp recompute" in p.stderr and not os.path.exists(os.path.join(work, "no")),
          "an objective reading rollout_logp without --old-logp recompute is refused: " + p.stderr.strip()[-200:])
    p = run([rein, "train", "std:grpo", "--temperature", "0", "--steps", "1", "--out", os.path.join(work, "t0")],
            ok=False)
    check(p.returncode != 0 and "--temperature 0 (greedy)" in p.stderr and "--eval-temperature 0" in p.stderr,
          "--temperature 0 is refused for training: " + p.stderr.strip()[-200:])
    p = run([rein, "train", "std:grpo", "--old-logp", "behaviour", "--steps", "1", "--out", os.path.join(work, "b")],
            ok=False)
    check(p.returncode == 2 and "--old-logp 'behaviour': expected rollout or recompute" in p.stderr,
          "a bad --old-logp is a usage error: " + p.stderr.strip()[-200:])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rein", required=True)
    ap.add_argument("case", choices=["e2e", "resume", "state", "build", "faults", "group1", "logp"])
    ap.add_argument("--keep", action="store_true")
    a = ap.parse_args()
    work = tempfile.mkdtemp(prefix="rein_train_")
    try:
        {"e2e": case_e2e, "resume": case_resume, "state": case_state, "build": case_build,
         "faults": case_faults, "group1": case_group1, "logp": case_logp}[a.case](
            os.path.abspath(a.rein), work)
    finally:
        if a.keep:
            print("work directory:", work)
        else:
            shutil.rmtree(work, ignore_errors=True)
    if FAILS:
        print(f"FAIL: {len(FAILS)} checks failed")
        sys.exit(1)
    print("ok")


if __name__ == "__main__":
    main()
