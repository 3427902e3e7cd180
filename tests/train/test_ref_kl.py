#!/usr/bin/python3
"""The reference policy reaches the objective as itself: `ref_logp` is the initial model's
log-probs, not the behaviour policy's (`old_logp`) nor the current policy's (`logp`).

    /usr/bin/python3 tests/train/test_ref_kl.py --rein build/rein [--keep]

A short stale run (--sync-interval 2 --sync-offset 3, docs/algorithms.md "The off-policy
schedule": steps 1-5 train on batches sampled by version 0, the initial model; steps 6-7 on
version 2; step 8 on version 4) of tests/train/ref_wiring.rein, whose metrics say where the
trainer's ref_logp lies. The independent value of the reference's log-probs: on a batch sampled
by version 0, the behaviour policy *is* the initial model, so old_logp (the sampler's log-probs)
is the reference's, up to the float32 rounding of two computations of the same model's
forward. Checks:
  - version 0 batches: |ref_logp − old_logp| ≤ 1e-5 on every token, and the logged KL to the
    reference equals the same estimator computed from old_logp (1e-5 relative);
  - later versions: ref_logp is far from old_logp (> 0.05 on some token, every such step), and
    the logged KL differs from the one computed from old_logp on some step (a trainer that passed
    old_logp as ref_logp fails here: it would be 0 and equal);
  - step 1: ref_logp equals logp (the policy is still the initial model); from step 2 on it does
    not (> 0.05: a trainer that passed logp, or a reference that followed the policy, fails);
  - a run stopped after step 6 and resumed logs the same metrics: the reference after --resume is
    still the initial model, not the checkpoint's.
Exit status: 0 all passed, 1 a check failed.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
OBJ = os.path.join(HERE, "ref_wiring.rein")
from train_common import TIMING  # noqa: E402
FAILS = []


def check(cond, what):
    print(("ok    " if cond else "FAIL  ") + what, flush=True)
    if not cond:
        FAILS.append(what)


def run(cmd):
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if p.returncode != 0:
        print("command failed:", " ".join(cmd), "\n", p.stdout[-3000:], p.stderr[-3000:], flush=True)
        raise SystemExit(1)
    return p


def train_records(out):
    with open(os.path.join(out, "metrics.jsonl")) as f:
        return [r for r in map(json.loads, f) if r["kind"] == "train"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rein", required=True)
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="rein-ref-kl-")
    try:
        cfg = {"model_type": "llama", "vocab_size": 17, "hidden_size": 32, "num_hidden_layers": 2,
               "num_attention_heads": 4, "num_key_value_heads": 2, "intermediate_size": 64,
               "max_position_embeddings": 64, "tie_word_embeddings": True, "bos_token_id": 1,
               "eos_token_id": 2, "initializer_range": 0.1}
        with open(os.path.join(work, "tiny.json"), "w") as f:
            json.dump(cfg, f)
        model = os.path.join(work, "tiny")
        run([args.rein, "model", "init", "--config", os.path.join(work, "tiny.json"), "--seed", "3", "-o", model])
        common = [args.rein, "train", OBJ, "--model", model, "--steps", "8", "--batch-prompts", "6", "--group", "4",
                  "--micro-groups", "2", "--sync-interval", "2", "--sync-offset", "3", "--lr", "3e-3",
                  "--eval-every", "0", "--save-every", "3", "--threads", "2", "--progress", "0", "--max-new", "6",
                  "--seed", "7"]
        a, b = os.path.join(work, "a"), os.path.join(work, "b")
        run(common + ["--out", a])
        recs = train_records(a)
        check([r["version"] for r in recs] == [0, 0, 0, 0, 0, 2, 2, 4],
              f"the schedule: versions {[r['version'] for r in recs]} (5 steps on the initial model's batches)")
        v0 = [r for r in recs if r["version"] == 0]
        later = [r for r in recs if r["version"] > 0]

        check(all(r["ref_old_max"] <= 1e-5 for r in v0),
              "batches sampled by the initial model: ref_logp = old_logp on every token (max |diff| "
              f"{max(r['ref_old_max'] for r in v0):.2g})")
        check(all(abs(r["kl_ref"] - r["kl_ref_from_old"]) <= 1e-5 * max(1.0, abs(r["kl_ref"])) for r in v0) and
              any(r["kl_ref"] > 1e-3 for r in v0),
              "there the logged KL to the reference equals k3 computed from the initial model's sampled log-probs "
              f"({[round(r['kl_ref'], 5) for r in v0]})")
        check(len(later) == 3 and all(r["ref_old_max"] > 0.05 for r in later),
              "batches sampled by later versions: ref_logp is not old_logp (max |diff| "
              f"{[round(r['ref_old_max'], 3) for r in later]})")
        check(any(abs(r["kl_ref"] - r["kl_ref_from_old"]) > 1e-3 for r in later),
              "and the logged KL to the reference is not the KL to the behaviour policy "
              f"({[(round(r['kl_ref'], 4), round(r['kl_ref_from_old'], 4)) for r in later]})")
        check(recs[0]["ref_cur_max"] <= 1e-5 and all(r["ref_cur_max"] > 0.05 for r in recs[1:]),
              "ref_logp = logp at step 1 only (the reference does not follow the policy): "
              f"{[round(r['ref_cur_max'], 3) for r in recs]}")

        # stopped and resumed: the reference is still the initial model
        run(common + ["--out", b, "--stop-at", "6"])
        run(common + ["--out", b, "--resume"])
        strip = [{k: v for k, v in r.items() if k not in TIMING} for r in recs]
        rb = [{k: v for k, v in r.items() if k not in TIMING} for r in train_records(b)]
        check(rb == strip, "a run stopped after step 6 and resumed logs the same metrics (ref_old_max, "
              "kl_ref, ...): after --resume the reference is still the initial model")
    finally:
        if args.keep:
            print("work directory kept:", work)
        else:
            shutil.rmtree(work, ignore_errors=True)
    if FAILS:
        print(f"{len(FAILS)} check(s) failed")
        return 1
    print("all reference-policy checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
