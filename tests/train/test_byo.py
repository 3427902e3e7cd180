#!/usr/bin/env python3
"""Bring your own task: the generic JSONL task and rewards from an external command.

    /usr/bin/python3 tests/train/test_byo.py --rein build/rein CASE [--keep]

CASE:
  jsonl    `--task jsonl` with configurable field names on arithmetic problems written as JSONL,
           from a small random model over the dataset tasks' byte-level character tokenizer: the
           run completes, its rewards are the built-in exact match (checked against re-scoring
           the logged samples), the decoded samples are logged per evaluation; bad lines are
           reported as PATH:LINE with the field
  reward   `--reward-cmd` on the arithmetic task from the shipped model (about half its answers
           are right): the example command examples/reward_exact.py gives bit-identical results
           to the task's built-in exact match; extra numeric fields become reward_<name>
           metrics of train records and eval_reward_<name> of evaluation records (the mean over
           its responses, recomputed from the requests) and survive a stop and --resume bit-identically; a command that answers a
           malformed line, omits "reward", dies, or hangs past --reward-timeout stops the run
           with a clear error and status 1, the last checkpoint intact, and --resume with a
           working command then ends bit-identical to an uninterrupted run
"""
import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HERE = os.path.dirname(os.path.abspath(__file__))
from train_common import TIMING  # noqa: E402
FAILS = []


def check(cond, what):
    print(("ok    " if cond else "FAIL  ") + what, flush=True)
    if not cond:
        FAILS.append(what)


def run(cmd, timeout=600, ok=True, env=None):
    e = dict(os.environ)
    e.update(env or {})
    t0 = time.monotonic()
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=e)
    p.seconds = time.monotonic() - t0
    if ok and p.returncode != 0:
        print("command failed:", " ".join(cmd), "\n", p.stdout[-3000:], p.stderr[-3000:], flush=True)
        raise SystemExit(1)
    return p


def records(run_dir):
    with open(os.path.join(run_dir, "metrics.jsonl")) as f:
        return [json.loads(line) for line in f]


def strip(recs):
    return [{k: v for k, v in r.items() if k not in TIMING} for r in recs]


def sha(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def problems(work, n, seed, name):
    """Two-digit additions and subtractions as {"q": "37+45=", "a": "82"} lines (written here)."""
    import random
    rnd = random.Random(seed)
    path = os.path.join(work, name)
    with open(path, "w") as f:
        for _ in range(n):
            a, b, op = rnd.randint(0, 99), rnd.randint(0, 99), rnd.choice("+-")
            f.write(json.dumps({"q": f"{a}{op}{b}=", "a": str(a + b if op == "+" else a - b), "id": _}) + "\n")
    return path


def common(rein, work, task):
    obj = os.path.join(ROOT, "lang", "std", "grpo.rein")
    loop = ["--steps", "3", "--batch-prompts", "4", "--group", "4", "--max-new", "4", "--eval-prompts", "4",
            "--eval-every", "1", "--save-every", "1", "--threads", "2", "--progress", "0", "--seed", "5", "--lr", "1e-3"]
    if task == "arith":
        return [rein, "train", obj] + loop
    train = problems(work, 64, 1, "train.jsonl")
    ev = problems(work, 16, 2, "eval.jsonl")
    # a random model over the byte-level character tokenizer of the dataset tasks (228 ids)
    cfg = {"model_type": "llama", "vocab_size": 228, "hidden_size": 32, "num_hidden_layers": 1,
           "num_attention_heads": 2, "intermediate_size": 64, "max_position_embeddings": 64,
           "tie_word_embeddings": True, "initializer_range": 0.1}
    with open(os.path.join(work, "byte.json"), "w") as f:
        json.dump(cfg, f)
    model = os.path.join(work, "byte-model")
    run([rein, "model", "init", "--config", os.path.join(work, "byte.json"), "--seed", "1", "-o", model])
    return [rein, "train", obj, "--model", model, "--task", "jsonl", "--train-data", train, "--eval-data", ev,
            "--prompt-field", "q", "--answer-field", "a"] + loop


def case_jsonl(rein, work):
    cmd = common(rein, work, "jsonl")
    out = os.path.join(work, "plain")
    run(cmd + ["--out", out])
    recs = records(out)
    train = [r for r in recs if r["kind"] == "train"]
    evals = [r for r in recs if r["kind"] == "eval"]
    check([r["step"] for r in train] == [1, 2, 3] and [r["step"] for r in evals] == [0, 1, 2, 3],
          "three train records and four evaluations")
    check(all(0 <= r["reward_mean"] <= 1 and r["reward_mean"] == r["accuracy"] for r in train),
          "exact-match rewards in [0, 1], equal to the accuracy")
    cfg = json.load(open(os.path.join(out, "config.json")))
    check(cfg["task"] == "jsonl" and cfg["prompt-field"] == "q" and cfg["answer-field"] == "a",
          "config.json records the task and its field names")
    # the logged samples: one file per evaluation, each a re-scorable record
    ev = [json.loads(l) for l in open(os.path.join(work, "eval.jsonl"))]
    for step, rec in zip([0, 1, 2, 3], evals):
        path = os.path.join(out, "samples", f"eval-{step:06d}.jsonl")
        ok = os.path.exists(path)
        s = [json.loads(l) for l in open(path)] if ok else []
        ok = ok and len(s) == 4 and all(x["step"] == step for x in s)
        ok = ok and all(x["prompt"] == ev[i]["q"] and x["answer"] == ev[i]["a"] for i, x in enumerate(s))
        ok = ok and all(x["reward"] == float(x["response"].strip() == x["answer"]) for x in s)
        ok = ok and abs(sum(x["reward"] for x in s) / 4 - rec["eval_reward"]) < 1e-9
        check(ok, f"samples/eval-{step:06d}.jsonl: the 4 evaluated prompts, answers and responses; re-scoring gives "
                  f"the logged rewards and their mean is eval_reward")
    check(os.path.isdir(os.path.join(out, "ckpt-000003")), "checkpoint written")
    # generation_config.json of the model: its sampling parameters unless given explicitly
    model = cmd[cmd.index("--model") + 1]
    with open(os.path.join(model, "generation_config.json"), "w") as f:
        json.dump({"do_sample": True, "temperature": 0.5, "top_k": 7, "eos_token_id": 2}, f)
    one = [x if x != "3" else "1" for x in cmd]   # --steps 1
    p = run(one + ["--out", os.path.join(work, "gc")])
    cfg = json.load(open(os.path.join(work, "gc", "config.json")))
    check("generation_config.json: temperature 0.5 top-k 7" in p.stderr and cfg["temperature"] == 0.5 and
          cfg["top-k"] == 7 and cfg["top-p"] == 1, "the model's generation_config.json sets the rollout sampling "
          "(said on stderr, recorded in config.json)")
    run(one + ["--out", os.path.join(work, "gc2"), "--temperature", "1"])
    cfg = json.load(open(os.path.join(work, "gc2", "config.json")))
    check(cfg["temperature"] == 1 and cfg["top-k"] == 7, "an explicit --temperature wins over the file")
    os.remove(os.path.join(model, "generation_config.json"))
    # --messages-field on a model with the character tokenizer: no chat template to render it
    msgs = os.path.join(work, "msgs.jsonl")
    with open(msgs, "w") as f:
        f.write(json.dumps({"m": [{"role": "user", "content": "1+1="}], "a": "2"}) + "\n")
    base = [rein, "train", os.path.join(ROOT, "lang", "std", "grpo.rein"), "--task", "jsonl", "--progress", "0",
            "--answer-field", "a", "--out", os.path.join(work, "never")]
    p = run(base + ["--train-data", msgs, "--messages-field", "m"], ok=False)
    check(p.returncode == 1 and f"{msgs}:1: field 'm': a conversation needs a chat template" in p.stderr,
          "a conversation with the character tokenizer: PATH:LINE: field: needs a chat template")
    bad = [
        ("not JSON", "{\"q\": \"1+1=\", \"a\": \"2\"}\n[1,2\n", ["q"], ":2: not a JSON object"),
        ("prompt missing", "{\"a\": \"2\"}\n", ["q"], ":1: field 'q': missing or not a string"),
        ("prompt not a string", "{\"q\": 5, \"a\": \"2\"}\n", ["q"], ":1: field 'q': missing or not a string"),
        ("answer missing", "{\"q\": \"1+1=\"}\n", ["q"], ":1: field 'a': missing, or not a string or a number"),
        ("answer a list", "{\"q\": \"1+1=\", \"a\": [2]}\n", ["q"], ":1: field 'a': missing, or not a string"),
        ("prompt outside the vocabulary", "{\"q\": \"one\\u0001\", \"a\": \"2\"}\n", ["q"],
         ":1: field 'q': byte 0x01 (offset 3) is not in the vocabulary"),
        ("messages not a list", "{\"m\": \"hi\", \"a\": \"2\"}\n", None, ":1: field 'm': missing, or not a non-empty list"),
        ("message role", "{\"m\": [{\"role\": \"robot\", \"content\": \"x\"}], \"a\": \"2\"}\n", None,
         ":1: field 'm[0].role': expected \"system\", \"user\" or \"assistant\""),
        ("message content", "{\"m\": [{\"role\": \"user\"}], \"a\": \"2\"}\n", None,
         ":1: field 'm[0].content': missing or not a string"),
        ("empty file", "\n", ["q"], ": no items"),
    ]
    for name, text, pf, needle in bad:
        path = os.path.join(work, "bad.jsonl")
        with open(path, "w") as f:
            f.write(text)
        args = ["--prompt-field", "q"] if pf else ["--messages-field", "m"]
        p = run(base + ["--train-data", path] + args, ok=False)
        check(p.returncode == 1 and (path + needle) in p.stderr and not os.path.exists(os.path.join(work, "never")),
              f"bad line ({name}): exit 1, '{path + needle}' ({p.stderr.strip()[-160:]})")
    p = run(base + ["--train-data", msgs, "--messages-field", "m", "--prompt-field", "q"], ok=False)
    check(p.returncode == 2 and "give one of them, not both" in p.stderr, "--prompt-field with --messages-field: exit 2")
    p = run([rein, "train", os.path.join(ROOT, "lang", "std", "grpo.rein"), "--task", "jsonl"], ok=False)
    check(p.returncode == 2 and "--task jsonl needs --train-data" in p.stderr, "--task jsonl without data: exit 2")


def case_reward(rein, work):
    cmd = common(rein, work, "arith")
    faulty = f"{sys.executable} {os.path.join(HERE, 'reward_faulty.py')}"
    # 1. the example command is the built-in exact match, bit for bit
    builtin, example = os.path.join(work, "builtin"), os.path.join(work, "example")
    run(cmd + ["--out", builtin])
    log = os.path.join(work, "requests.jsonl")
    run(cmd + ["--out", example, "--reward-cmd", f"{sys.executable} {os.path.join(ROOT, 'examples', 'reward_exact.py')}"])
    a, b = strip(records(builtin)), strip(records(example))
    b_no_len = [{k: v for k, v in r.items() if k not in ("reward_length", "eval_reward_length")} for r in b]
    check(a == b_no_len, "examples/reward_exact.py gives the same metrics as the built-in exact match")
    check(0 < sum(r.get("reward_mean", 0) for r in a) < 3, "some rewards are 1, some 0")
    check(sha(os.path.join(builtin, "ckpt-000003", "model.safetensors")) ==
          sha(os.path.join(example, "ckpt-000003", "model.safetensors")), "... and the same model bits")
    check(all(("reward_length" if r["kind"] == "train" else "eval_reward_length") in r for r in b),
          "its extra field 'length' is logged as reward_length on train records, eval_reward_length on evaluation "
          "records")
    # 2. extra fields, a stop with batches explored ahead, and --resume
    ex = cmd + ["--reward-cmd", faulty, "--sync-offset", "1"]
    env = {"REIN_TEST_EXTRA": "1", "REIN_TEST_LOG": log}
    full, part = os.path.join(work, "extra"), os.path.join(work, "extra_resumed")
    run(ex + ["--out", full], env=env)
    reqs = [json.loads(l) for l in open(log)]
    check(all(set(r) == {"prompt", "response", "answer"} for r in reqs) and reqs[0]["prompt"].endswith("="),
          "each request is {prompt, response, answer}")
    check(len(reqs) == 4 * 4 + 3 * 4 * 4, f"one request per response: 4 evaluations x 4 + 3 batches x 16 ({len(reqs)})")
    train = [r for r in records(full) if r["kind"] == "train"]
    check(all(r["reward_one"] == 1 and 0 <= r["reward_digits"] <= 4 for r in train) and
          all("reward_why" not in r for r in train), "numeric extra fields are metrics reward_<name>; strings are ignored")
    # on evaluation records: the means over the evaluation's responses.  The evaluations are the
    # requests whose prompt is a held-out one (the first 4 requests are the step-0 evaluation's;
    # the arithmetic task's held-out split is disjoint from training), 4 per evaluation in order.
    held = {r["prompt"] for r in reqs[:4]}
    evreqs = [r for r in reqs if r["prompt"] in held]
    evals = [r for r in records(full) if r["kind"] == "eval"]
    ok = len(evreqs) == 4 * len(evals) == 16
    for i, r in enumerate(evals):
        chunk = evreqs[4 * i:4 * i + 4]
        digits = sum(sum(c.isdigit() for c in q["response"]) for q in chunk) / 4
        exact = sum(q["response"].strip() == q["answer"].strip() for q in chunk) / 4
        ok &= r.get("eval_reward_one") == 1 and abs(r.get("eval_reward_digits", -1) - digits) < 1e-9 and \
            abs(r["eval_reward"] - exact) < 1e-9 and "eval_reward_why" not in r and "reward_one" not in r
    check(ok, "evaluation records carry eval_reward_<name>: the mean over the evaluation's responses, recomputed "
          "from the requests")
    run(ex + ["--out", part, "--stop-at", "1"], env=env)
    run(ex + ["--out", part, "--resume"], env=env)
    check(strip(records(full)) == strip(records(part)) and
          sha(os.path.join(full, "ckpt-000003", "model.safetensors")) ==
          sha(os.path.join(part, "ckpt-000003", "model.safetensors")),
          "stopped after step 1 (a batch with extras in the buffer) and resumed: bit-identical metrics and model")
    # 3. faults: answer 25 is in the batch of step 2 (4 evaluation answers, 16 for step 1, the step-1
    #    checkpoint, 4 evaluation answers, then the first of step 2's batch)
    ref = os.path.join(work, "ref")
    run(cmd + ["--out", ref, "--reward-cmd", faulty])
    faults = [("malformed", "malformed:25", [], "answer 25 is not a JSON object", 60),
              ("no reward", "noreward:25", [], "answer 25: field 'reward': missing or not a finite number", 60),
              ("dies", "die:25", [], "exited with status 3 (answer 25)", 60),
              ("hangs", "hang:25", ["--reward-timeout", "1"], "no answer within 1 s (answer 25)", 30)]
    for name, fault, extra_args, needle, limit in faults:
        out = os.path.join(work, "fault_" + fault.split(":")[0])
        p = run(cmd + ["--out", out, "--reward-cmd", faulty] + extra_args, ok=False, env={"REIN_TEST_FAULT": fault})
        latest = open(os.path.join(out, "latest")).read().strip() if os.path.exists(os.path.join(out, "latest")) else ""
        intact = latest == "ckpt-000001" and all(
            sha(os.path.join(out, "ckpt-000001", f)) == sha(os.path.join(ref, "ckpt-000001", f))
            for f in ("model.safetensors", "optim.safetensors"))
        check(p.returncode == 1 and needle in p.stderr and f"reward command '{faulty}'" in p.stderr,
              f"{name}: exit 1 with '{needle}' naming the command ({p.stderr.strip().splitlines()[-1][-200:]})")
        check("; while scoring response 0 of explore step 2" in p.stderr, f"{name}: the error says which response it was")
        check(intact and not os.path.exists(os.path.join(out, "ckpt-000002")),
              f"{name}: the step-1 checkpoint is intact and latest names it")
        check(p.seconds < limit, f"{name}: the run ended in {p.seconds:.1f} s")
        if name == "dies":
            check("reward_faulty: die at request 25" in p.stderr, "the command's stderr is passed through")
            run(cmd + ["--out", out, "--reward-cmd", faulty, "--resume"])
            check(sha(os.path.join(out, "ckpt-000003", "model.safetensors")) ==
                  sha(os.path.join(ref, "ckpt-000003", "model.safetensors")) and
                  strip(records(out)) == strip(records(ref)),
                  "dies: --resume with a working command ends bit-identical to the uninterrupted run")
    p = run(cmd + ["--out", os.path.join(work, "nocmd"), "--reward-cmd", "/nonexistent/reward"], ok=False)
    check(p.returncode == 1 and "reward command '/nonexistent/reward' exited with status 127 (answer 1); while scoring "
          "evaluation response 0 at step 0" in p.stderr, "a command that does not exist: exit 1, status 127 at the first answer")
    p = run(cmd + ["--out", os.path.join(work, "timeout0"), "--reward-timeout", "0"], ok=False)
    check(p.returncode == 2 and "--reward-timeout '0'" in p.stderr, "--reward-timeout 0: exit 2")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rein", required=True)
    ap.add_argument("case", choices=["jsonl", "reward"])
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="rein-byo-")
    try:
        {"jsonl": case_jsonl, "reward": case_reward}[args.case](os.path.abspath(args.rein), work)
    finally:
        if args.keep:
            print("work directory:", work)
        else:
            shutil.rmtree(work, ignore_errors=True)
    if FAILS:
        print(f"FAIL {len(FAILS)} checks: " + "; ".join(FAILS))
        return 1
    print("all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
