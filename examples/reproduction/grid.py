#!/usr/bin/python3
"""grid.py — the paper's off-policy experiment (Yao et al. 2025, §7.1 settings) run with Rein.

Four synchronisation settings × eleven algorithms × three seeds of `rein train` on the shipped
arithmetic model, each run one thread, several runs side by side.  docs/reproduction.md explains
the choices and reads the results; report.py draws the figures and tables from the run folders.

    examples/reproduction/grid.py [--out runs/grid] [--jobs 2] [--rein build/rein]
                                  [--only SETTING/ALGO ...] [--seeds 1 2 3] [--list]

Resumable: a finished run leaves OUT/SETTING/ALGO/seedK/DONE (its command and wall time); a run
folder without DONE is an interrupted run and is started again from scratch, so a killed grid
is continued by running the same command.  Only the standard library is used.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor, as_completed

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# The task and the optimiser, shared by every run (why these: docs/reproduction.md, "Setting").
STEPS = 300
COMMON = [
    "--task", "arith", "--digits", "2", "--ops", "+-",  # the shipped model's task
    "--steps", str(STEPS), "--batch-prompts", "32", "--group", "8", "--max-new", "8",
    "--lr", "3e-4", "--lr-schedule", "constant", "--weight-decay", "0", "--max-grad-norm", "1",
    "--temperature", "1",
    "--eval-every", "25", "--eval-prompts", "500", "--eval-temperature", "0",
    "--save-every", "0", "--keep", "1", "--log-samples", "0", "--progress", "0",
    "--threads", "1",
]

# name -> (sync_interval, sync_offset, what it means); the paper's §7.1 settings.
SETTINGS = {
    "onpolicy": (1, 0, "every batch from the current policy"),
    "stale10": (1, 10, "the explorer runs 10 steps ahead: each batch is about 10 steps old"),
    "periodic20": (20, 0, "weights pushed every 20 steps: batch staleness cycles 0..19"),
    "offline": (10 * STEPS, STEPS, "the explorer never syncs: every batch from the initial policy"),
}

# label -> library objective.  The paper's algorithms (docs/algorithms.md): eleven lines per panel.
ALGOS = {
    "REINFORCE": "reinforce",
    "GRPO": "grpo",
    "REC-OneSide-NoIS": "rec_oneside_nois",
    "REC-OneSide-IS": "rec_oneside_is",
    "REC-OneSide-NoIS (0.6, 2.0)": "rec_oneside_nois_wide",
    "REC-TwoSide-IS": "rec_twoside_is",
    "REC-Ring-NoIS": "rec_ring_nois",
    "OPMD": "opmd",
    "AsymRE": "asymre",
    "RED-Drop": "red_drop",
    "RED-Weight": "red_weight",
}

SEEDS = [1, 2, 3]


def run_dir(out, setting, algo, seed):
    return os.path.join(out, setting, ALGOS[algo], "seed%d" % seed)


def command(rein, out, setting, algo, seed):
    si, so, _ = SETTINGS[setting]
    return [rein, "train", "std:" + ALGOS[algo], *COMMON,
            "--sync-interval", str(si), "--sync-offset", str(so),
            "--seed", str(seed), "--out", run_dir(out, setting, algo, seed)]


def run_one(job):
    rein, out, setting, algo, seed = job
    d = run_dir(out, setting, algo, seed)
    cmd = command(rein, out, setting, algo, seed)
    if os.path.isdir(d):
        shutil.rmtree(d)  # an interrupted run: start it again
    os.makedirs(os.path.dirname(d), exist_ok=True)
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    t0 = time.monotonic()
    p = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    wall = time.monotonic() - t0
    if p.returncode != 0:
        return (d, wall, "exit %d: %s" % (p.returncode, p.stdout.strip().splitlines()[-1:]))
    tmp = os.path.join(d, "DONE.tmp")
    with open(tmp, "w") as f:
        json.dump({"command": cmd, "wall_s": round(wall, 3)}, f)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.rename(tmp, os.path.join(d, "DONE"))
    return (d, wall, None)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="runs/grid")
    ap.add_argument("--jobs", type=int, default=2, help="runs side by side, one thread each")
    ap.add_argument("--rein", default=os.path.join(ROOT, "build", "rein"))
    ap.add_argument("--seeds", type=int, nargs="+", default=SEEDS)
    ap.add_argument("--only", nargs="+", default=None, metavar="SETTING/OBJECTIVE",
                    help="restrict to these cells (e.g. offline/grpo)")
    ap.add_argument("--list", action="store_true", help="print the commands and exit")
    a = ap.parse_args()
    if not os.access(a.rein, os.X_OK):
        sys.exit("grid.py: %s: no rein executable (build first, or pass --rein)" % a.rein)
    jobs = []
    for setting in SETTINGS:
        for algo in ALGOS:
            if a.only and "%s/%s" % (setting, ALGOS[algo]) not in a.only:
                continue
            for seed in a.seeds:
                jobs.append((a.rein, a.out, setting, algo, seed))
    if a.list:
        for j in jobs:
            print(" ".join(command(*j)))
        return 0
    todo = [j for j in jobs if not os.path.exists(os.path.join(run_dir(*j[1:]), "DONE"))]
    print("grid.py: %d runs, %d finished, %d to run, %d at a time" %
          (len(jobs), len(jobs) - len(todo), len(todo), a.jobs), flush=True)
    t0 = time.monotonic()
    failed = 0
    with ThreadPoolExecutor(max_workers=a.jobs) as ex:
        futures = [ex.submit(run_one, j) for j in todo]
        for k, fut in enumerate(as_completed(futures), 1):
            d, wall, err = fut.result()
            failed += err is not None
            print("[%d/%d] %s %.0f s%s" % (k, len(todo), d, wall, "  FAILED " + err if err else ""),
                  flush=True)
    print("grid.py: %.1f min wall for %d runs, %d failed" %
          ((time.monotonic() - t0) / 60, len(todo), failed), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
