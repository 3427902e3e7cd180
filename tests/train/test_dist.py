#!/usr/bin/env python3
"""Data-parallel training on MPI (docs/distributed.md): `mpirun -np N rein train ...` against the
single process, on this machine's cores (--oversubscribe).

    /usr/bin/python3 tests/train/test_dist.py --rein build/rein CASE

CASE:
  np2     2 ranks vs one process: step 1's loss and every metric are bit-identical (the objective
          runs on every rank on the whole batch, with the per-group states merged in group
          order); the weight gradients are summed in rank order, so later steps agree within
          the stated tolerance (relative 1e-5 over 4 steps); two 2-rank runs are bit-identical
          (metrics, model and AdamW state); --shard-explore 1 (each rank samples its prompts)
          gives the same rollouts within float32 rounding of the behaviour logp
  np3     3 ranks: the same against one process; a 3-rank run stopped (--stop-at) and resumed
          equals the uninterrupted 3-rank run bit for bit
  faults  ranks started with different options end the job with a message naming the rank; a
          rank killed mid-run ends the job (non-zero status) and leaves the last checkpoint
          intact: the run resumes from it to the end
  explorer  --explorer-ranks 1 (rollout on a rank of its own, concurrent with training, with the
          sync_interval 2 / sync_offset 1 schedule): 1 trainer + 1 explorer equals one process bit
          for bit (metrics, and every checkpoint's model, AdamW state and buffer of batches explored
          ahead); 2 trainers + 1 explorer within the data-parallel tolerance; stopped (--stop-at)
          and resumed equals the uninterrupted run; bad --explorer-ranks refused with a message;
          prints the steps/s of one process and of 1 trainer + 1 explorer (the machine's load too)
  explorers  --explorer-ranks 2 (1 trainer + 2 explorers splitting each batch's prompts as
          --shard-explore does): step 1 samples one process's tokens (metrics equal but for the
          rounding of the behaviour logp) and equals -np 2 --shard-explore 1 bit for bit; stopped
          and resumed equals the uninterrupted run (weights, AdamW state, metrics); an explorer
          without a prompt refused with a message
Exits 77 (skipped) when mpirun is missing or the build has no MPI.
"""
import argparse
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from train_common import TIMING  # noqa: E402
FAILS = []
ENV = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1", OMPI_MCA_rmaps_base_oversubscribe="1",
           ASAN_OPTIONS=os.environ.get("ASAN_OPTIONS", "") + ":detect_leaks=0")   # MPI's own allocations
TOL = 1e-5


def check(cond, what):
    print(("ok    " if cond else "FAIL  ") + what, flush=True)
    if not cond:
        FAILS.append(what)


def run(cmd, timeout=300, ok=True):
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=ENV)
    if ok and p.returncode != 0:
        print("command failed:", " ".join(cmd), "\n", p.stdout[-3000:], p.stderr[-3000:], flush=True)
        raise SystemExit(1)
    return p


def mpirun(n):
    return ["mpirun", "--oversubscribe", "--bind-to", "none", "-np", str(n)]


def records(d):
    with open(os.path.join(d, "metrics.jsonl")) as f:
        return [{k: v for k, v in json.loads(line).items() if k not in TIMING} for line in f]


def sha(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def buffer_bytes(path):
    """buffer.bin (runtime/train/trn_buffer.c's layout) with each rollout's generation time (a
    timing field) zeroed, and the number of rollouts."""
    b = bytearray(open(path, "rb").read())
    assert b[:8] == b"REINBUF2", path
    n, at = int.from_bytes(b[8:12], "little"), 12
    for _ in range(n):
        nseq = int.from_bytes(b[at + 16:at + 20], "little", signed=True)
        at += 24
        np_ = int.from_bytes(b[at + 4 * nseq:at + 4 * nseq + 4], "little")
        at += 4 * (nseq + 1) + 4 * np_
        nr = int.from_bytes(b[at + 4 * nseq:at + 4 * nseq + 4], "little")
        at += 4 * (nseq + 1) + 8 * nr + 9 * nseq
        b[at:at + 8] = bytes(8)   # gen_s
        nu = int.from_bytes(b[at + 8:at + 12], "little")
        at += 12 + 4 * nu * nseq
    return bytes(b), n


def close(a, b, tol):
    """Records A and B equal, floats within relative TOL; the worst field."""
    worst, bad = 0.0, None
    if [(r["kind"], r["step"]) for r in a] != [(r["kind"], r["step"]) for r in b]:
        return False, "different records"
    for x, y in zip(a, b):
        if x.keys() != y.keys():
            return False, f"fields differ at {x['kind']} {x['step']}"
        for k in x:
            if isinstance(x[k], float) or isinstance(y[k], float):
                e = abs(x[k] - y[k]) / max(abs(x[k]), abs(y[k]), 1e-30)
                if abs(x[k] - y[k]) > 1e-12 and e > worst:
                    worst, bad = e, f"{x['kind']} {x['step']} {k}: {x[k]} vs {y[k]}"
            elif x[k] != y[k]:
                return False, f"{x['kind']} {x['step']} {k}: {x[k]} vs {y[k]}"
    return worst <= tol, f"worst relative difference {worst:.2e} ({bad})"


def tiny_model(rein, work):
    cfg = {"model_type": "llama", "vocab_size": 17, "hidden_size": 32, "num_hidden_layers": 2,
           "num_attention_heads": 4, "num_key_value_heads": 2, "intermediate_size": 64,
           "max_position_embeddings": 64, "tie_word_embeddings": True, "bos_token_id": 1,
           "eos_token_id": 2, "initializer_range": 0.1}
    path = os.path.join(work, "tiny.json")
    with open(path, "w") as f:
        json.dump(cfg, f)
    out = os.path.join(work, "tiny")
    run([rein, "model", "init", "--config", path, "--seed", "3", "-o", out])
    return out


def common(rein, work, steps=4):
    # ref_logp (opmd_kl's KL term), micro-batches, sync_offset > 0: batches explored ahead
    return [rein, "train", os.path.join(ROOT, "examples", "opmd_kl.rein"), "--model", tiny_model(rein, work),
            "--steps", str(steps), "--batch-prompts", "6", "--group", "4", "--micro-groups", "2",
            "--sync-interval", "2", "--sync-offset", "1", "--lr", "3e-3", "--set", "kl_coef=0.05", "--eval-every",
            "4", "--eval-prompts", "8", "--threads", "1", "--progress", "0", "--max-new", "6", "--seed", "7"]


def against_one(n, cmd, work):
    one, dist = os.path.join(work, "one"), os.path.join(work, f"np{n}")
    run(cmd + ["--out", one])
    run(mpirun(n) + cmd + ["--out", dist])
    a, b = records(one), records(dist)
    step1 = lambda rs: [r for r in rs if r["kind"] == "train" and r["step"] == 1][0]   # noqa: E731
    s1a, s1b = step1(a), step1(b)
    ga, gb = s1a.pop("grad_norm"), s1b.pop("grad_norm")
    gn = abs(ga - gb) / max(abs(ga), 1e-30)
    check(s1a == s1b, f"{n} ranks: step 1's loss and metrics equal one process's bit for bit")
    check(gn < 1e-6, f"{n} ranks: step 1's gradient norm within float32 summation order ({gn:.1e})")
    ok, what = close(a, b, TOL)
    check(ok, f"{n} ranks: every step within relative {TOL:g} of one process: {what}")
    return dist


def case_np2(rein, work):
    cmd = common(rein, work)
    d1 = against_one(2, cmd, work)
    d2 = os.path.join(work, "np2b")
    run(mpirun(2) + cmd + ["--out", d2])
    check(records(d1) == records(d2), "two 2-rank runs: metrics.jsonl identical (timing aside)")
    for f in ("model.safetensors", "optim.safetensors"):
        check(sha(os.path.join(d1, "ckpt-000004", f)) == sha(os.path.join(d2, "ckpt-000004", f)),
              f"two 2-rank runs: {f} bit-identical")
    # each rank samples its prompts: the same tokens and rewards; the behaviour logp can differ in
    # its last bit (the rollout's matrix products see fewer rows).  Step 1 is on-policy, so its
    # loss, kl_behaviour and gradient are that rounding noise (AdamW then scales the noise up to a
    # full step, which is why only step 1 is compared)
    d3 = os.path.join(work, "np2s")
    run(mpirun(2) + cmd + ["--out", d3, "--shard-explore", "1"])
    noise = ("loss", "kl_behaviour", "grad_norm")
    a = [r for r in records(os.path.join(work, "one")) if r["kind"] == "train" and r["step"] == 1][0]
    b = [r for r in records(d3) if r["kind"] == "train" and r["step"] == 1][0]
    check({k: v for k, v in a.items() if k not in noise} == {k: v for k, v in b.items() if k not in noise} and
          all(abs(a[k] - b[k]) < 1e-7 for k in noise),
          "--shard-explore 1: step 1 sampled the same tokens (reward, accuracy, lengths, entropy equal), the "
          f"loss differs by rounding only ({a['loss']:.3g} vs {b['loss']:.3g}); differing: " +
          str([k for k in a if a[k] != b.get(k)]))


def case_np3(rein, work):
    cmd = common(rein, work, steps=6) + ["--save-every", "2"]
    d = against_one(3, cmd, work)
    s = os.path.join(work, "np3stop")
    p = run(mpirun(3) + cmd + ["--out", s, "--stop-at", "3"])
    check("stopped after step 3" in p.stderr and p.stderr.count("stopped after") == 1,
          "3 ranks --stop-at 3: stopped with one message (rank 0's)")
    run(mpirun(3) + cmd + ["--out", s, "--resume"])
    for f in ("model.safetensors", "optim.safetensors"):
        check(sha(os.path.join(d, "ckpt-000006", f)) == sha(os.path.join(s, "ckpt-000006", f)),
              f"3 ranks stopped and resumed: {f} bit-identical to the uninterrupted 3-rank run")
    ra, rb = records(d), records(s)
    check([r for r in rb if not (r["kind"] == "eval" and r["step"] == 3)] == ra,
          "3 ranks stopped and resumed: metrics.jsonl identical apart from the evaluation at the stop")


def case_faults(rein, work):
    cmd = common(rein, work)
    out = os.path.join(work, "mismatch")
    p = run(mpirun(1) + cmd + ["--out", out] + [":"] + ["-np", "1"] + cmd + ["--out", out, "--lr", "1e-3"],
            ok=False)
    check(p.returncode != 0 and "rank 1 has a different configuration" in p.stderr,
          "ranks with different options: the job ends, naming the rank: " + p.stderr.strip().splitlines()[0][:160]
          if p.stderr.strip() else "no message")
    check(not os.path.exists(os.path.join(out, "metrics.jsonl")), "... before anything is written")
    # a rank killed mid-run
    cmd = common(rein, work, steps=400) + ["--save-every", "1", "--keep", "2", "--eval-every", "0"]
    out = os.path.join(work, "killed")
    proc = subprocess.Popen(mpirun(2) + cmd + ["--out", out], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=ENV)
    deadline = time.time() + 120
    while time.time() < deadline and not os.path.exists(os.path.join(out, "ckpt-000003")):
        time.sleep(0.05)
    kids = subprocess.run(["ps", "-o", "pid=,args=", "--ppid", str(proc.pid)], capture_output=True,
                          text=True).stdout.split("\n")
    ranks = [int(k.split()[0]) for k in kids if " train " in k]
    check(len(ranks) == 2, f"two rank processes under mpirun ({ranks})")
    if ranks:
        os.kill(ranks[-1], signal.SIGKILL)
    try:
        _, err = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
        check(False, "a killed rank ends the job (it hung)")
        return
    check(proc.returncode != 0 and ("killed" in err or "signal" in err or "exited" in err),
          f"a killed rank ends the job with status {proc.returncode} and mpirun's message")
    latest = open(os.path.join(out, "latest")).read().strip()
    check(os.path.exists(os.path.join(out, latest, "state.json")), f"the last checkpoint ({latest}) is intact")
    p = run(mpirun(2) + cmd + ["--out", out, "--resume", "--stop-at", "6"], ok=False)
    check(p.returncode == 0 and "stopped after step 6" in p.stderr,
          "the run resumes from it (to --stop-at 6): " + p.stderr.strip()[-200:])


def case_explorer(rein, work):
    cmd = common(rein, work, steps=6) + ["--save-every", "2"]
    one, e2 = os.path.join(work, "one"), os.path.join(work, "e2")
    t0 = time.time()
    run(cmd + ["--out", one])
    t_one = time.time() - t0
    t0 = time.time()
    run(mpirun(2) + cmd + ["--out", e2, "--explorer-ranks", "1"])
    t_e2 = time.time() - t0
    check(records(one) == records(e2), "1 trainer + 1 explorer: metrics.jsonl identical to one process's "
          "(timing aside)")
    for c in ("ckpt-000002", "ckpt-000004", "ckpt-000006"):
        for f in ("model.safetensors", "optim.safetensors"):
            check(sha(os.path.join(one, c, f)) == sha(os.path.join(e2, c, f)),
                  f"1 trainer + 1 explorer: {c}/{f} bit-identical to one process's")
        ba, na = buffer_bytes(os.path.join(one, c, "buffer.bin"))
        bb, nb = buffer_bytes(os.path.join(e2, c, "buffer.bin"))
        check(ba == bb, f"1 trainer + 1 explorer: {c}/buffer.bin ({na} batches explored ahead) identical to one "
              "process's (generation times aside)")
    check(buffer_bytes(os.path.join(one, "ckpt-000002", "buffer.bin"))[1] > 0, "... step 2's holds a batch")
    # 2 trainers: the weight gradients are summed in rank order (docs/distributed.md's tolerance)
    e3 = os.path.join(work, "e3")
    run(mpirun(3) + cmd + ["--out", e3, "--explorer-ranks", "1"])
    a, b = records(one), records(e3)
    s1 = lambda rs: {k: v for k, v in [r for r in rs if r["kind"] == "train" and r["step"] == 1][0].items()   # noqa: E731
                     if k != "grad_norm"}
    check(s1(a) == s1(b), "2 trainers + 1 explorer: step 1's loss and metrics equal one process's bit for bit")
    ok, what = close(a, b, TOL)
    check(ok, f"2 trainers + 1 explorer: every step within relative {TOL:g} of one process: {what}")
    # stopped after step 3 (the checkpoint holds batches 4 and 5, explored ahead) and resumed
    s = os.path.join(work, "e2stop")
    p = run(mpirun(2) + cmd + ["--out", s, "--explorer-ranks", "1", "--stop-at", "3"])
    check("stopped after step 3" in p.stderr, "1 trainer + 1 explorer --stop-at 3: stopped")
    check(buffer_bytes(os.path.join(s, "ckpt-000003", "buffer.bin"))[1] == 2,
          "... its checkpoint holds batches 4 and 5 (explored ahead with version 2)")
    run(mpirun(2) + cmd + ["--out", s, "--resume", "--explorer-ranks", "1"])
    for f in ("model.safetensors", "optim.safetensors"):
        check(sha(os.path.join(one, "ckpt-000006", f)) == sha(os.path.join(s, "ckpt-000006", f)),
              f"stopped and resumed with the explorer: {f} bit-identical to one process's")
    check([r for r in records(s) if not (r["kind"] == "eval" and r["step"] == 3)] == records(one),
          "stopped and resumed with the explorer: metrics.jsonl identical apart from the evaluation at the stop")
    # refused
    p = run(cmd + ["--out", os.path.join(work, "k1"), "--explorer-ranks", "1"], ok=False)
    check(p.returncode != 0 and "needs more ranks than explorers" in p.stderr,
          "--explorer-ranks 1 in one process: refused with a message")
    # throughput: steps 2 to 6 by the run's own clock (start-up and the first evaluation aside), and
    # the wall clock of the whole run (mpirun's start-up included); a measurement, not a check
    def rate(d):
        with open(os.path.join(d, "metrics.jsonl")) as f:
            t = [r["time"] for r in map(json.loads, f) if r["kind"] == "train"]
        return (len(t) - 1) / (t[-1] - t[0])
    print(f"info  throughput: one process {rate(one):.2f} steps/s (whole run {t_one:.1f} s), 1 trainer + 1 "
          f"explorer {rate(e2):.2f} steps/s (whole run {t_e2:.1f} s); load average {os.getloadavg()[0]:.1f} on "
          f"{os.cpu_count()} cores", flush=True)


def case_explorers(rein, work):
    cmd = common(rein, work, steps=6) + ["--save-every", "2"]
    one, k2, sh = os.path.join(work, "one"), os.path.join(work, "k2"), os.path.join(work, "np2s")
    run(cmd + ["--out", one])
    run(mpirun(3) + cmd + ["--out", k2, "--explorer-ranks", "2"])
    # the explorers sample their shares of the prompts as --shard-explore does: the same tokens as
    # one process, a behaviour logp that can differ in its last bit (so, as for --shard-explore,
    # step 1 only: its loss, kl_behaviour and gradient are that rounding noise)
    step1 = lambda d: [r for r in records(d) if r["kind"] == "train" and r["step"] == 1][0]   # noqa: E731
    noise = ("loss", "kl_behaviour", "grad_norm")
    a, b = step1(one), step1(k2)
    check({k: v for k, v in a.items() if k not in noise} == {k: v for k, v in b.items() if k not in noise} and
          all(abs(a[k] - b[k]) < 1e-7 for k in noise),
          "1 trainer + 2 explorers: step 1 sampled one process's tokens (reward, accuracy, lengths, entropy "
          f"equal), the loss differs by rounding only ({a['loss']:.3g} vs {b['loss']:.3g}); differing: " +
          str([k for k in a if a[k] != b.get(k)]))
    check([(r["kind"], r["step"]) for r in records(one)] == [(r["kind"], r["step"]) for r in records(k2)],
          "1 trainer + 2 explorers: the same train and eval records as one process")
    # ... split exactly as --shard-explore splits among 2 ranks: step 1's behaviour logp are the
    # same bits, so its loss and metrics are (the gradient norm within the rank-order sum)
    run(mpirun(2) + cmd + ["--out", sh, "--shard-explore", "1"])
    a = step1(sh)
    ga, gb = a.pop("grad_norm"), b.pop("grad_norm")
    gn = abs(ga - gb) / max(abs(gb), 1e-30)
    check(a == b and gn < 1e-6, "1 trainer + 2 explorers: step 1's loss and metrics equal -np 2 --shard-explore "
          f"1's bit for bit (gradient norm within {gn:.1e})")
    # stopped after step 3 (batches 4 and 5 explored ahead, in the checkpoint) and resumed with 2
    # explorers: the uninterrupted run's weights, AdamW state and metrics
    s = os.path.join(work, "k2stop")
    p = run(mpirun(3) + cmd + ["--out", s, "--explorer-ranks", "2", "--stop-at", "3"])
    check("stopped after step 3" in p.stderr, "1 trainer + 2 explorers --stop-at 3: stopped")
    check(buffer_bytes(os.path.join(s, "ckpt-000003", "buffer.bin"))[1] == 2,
          "... its checkpoint holds batches 4 and 5 (explored ahead with version 2)")
    run(mpirun(3) + cmd + ["--out", s, "--resume", "--explorer-ranks", "2"])
    for f in ("model.safetensors", "optim.safetensors"):
        check(sha(os.path.join(k2, "ckpt-000006", f)) == sha(os.path.join(s, "ckpt-000006", f)),
              f"1 trainer + 2 explorers stopped and resumed: {f} bit-identical to the uninterrupted run")
    check([r for r in records(s) if not (r["kind"] == "eval" and r["step"] == 3)] == records(k2),
          "1 trainer + 2 explorers stopped and resumed: metrics.jsonl identical apart from the evaluation at the "
          "stop")
    # refused: an explorer without a prompt
    p = run(mpirun(3) + cmd + ["--out", os.path.join(work, "few"), "--explorer-ranks", "2", "--batch-prompts", "1"],
            ok=False)
    check(p.returncode != 0 and "fewer than the 2 explorer ranks" in p.stderr,
          "--explorer-ranks 2 --batch-prompts 1: refused with a message")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rein", required=True)
    ap.add_argument("--mpi", default="ON")
    ap.add_argument("case", choices=["np2", "np3", "faults", "explorer", "explorers"])
    a = ap.parse_args()
    if not shutil.which("mpirun") or a.mpi not in ("ON", "TRUE", "1"):
        print("SKIP: mpirun or an MPI build is missing (install libopenmpi-dev openmpi-bin and build again)")
        sys.exit(77)
    work = tempfile.mkdtemp(prefix="rein-dist-")
    try:
        {"np2": case_np2, "np3": case_np3, "faults": case_faults, "explorer": case_explorer,
         "explorers": case_explorers}[a.case](os.path.abspath(a.rein), work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"{len(FAILS)} failure(s)" if FAILS else "all passed")
    sys.exit(1 if FAILS else 0)


if __name__ == "__main__":
    main()
