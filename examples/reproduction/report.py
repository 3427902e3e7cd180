#!/usr/bin/python3
"""report.py — the figures and tables of docs/reproduction.md, from the runs of grid.py.

    examples/reproduction/report.py [--runs runs/grid] [--out docs/reproduction] [--rein build/rein]

Writes one SVG per claim (drawn by `rein plot`: one column of panels per sync setting, rows
reward_mean (smoothed, raw faint behind) and eval_accuracy, one line per algorithm, the mean over
seeds with a min-max band) and results.md: per setting and algorithm, held-out accuracy at the
start, at the end, its mean over the evaluations after step 0 (how fast and how well it learns:
the area under the curve), its best and its worst along the run, and the training reward of the
last 50 steps, each as the mean over seeds +- the population std, with the number of seeds.  It reads
only metrics.jsonl and DONE files; the same runs give the same bytes.  Only the standard library
is used.
"""
import argparse
import json
import math
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import grid  # noqa: E402  (the settings, algorithms and seeds: one place)

# claim -> (title, algorithms drawn).  docs/reproduction.md reads each figure.
FIGURES = {
    "c2_importance_sampling": ("C2: GRPO vs REC-OneSide with and without IS",
                               ["GRPO", "REC-OneSide-NoIS", "REC-OneSide-IS"]),
    "c3_clipping": ("C3: REINFORCE with and without a clipping mask",
                    ["REINFORCE", "REC-OneSide-NoIS", "REC-TwoSide-IS", "REC-Ring-NoIS"]),
    "c4_wide_range": ("C4: one-side range (0.2, 0.2) vs (0.6, 2.0)",
                      ["REC-OneSide-NoIS", "REC-OneSide-NoIS (0.6, 2.0)", "REINFORCE"]),
    "c5_ring": ("C5: REC-Ring between two-side and one-side",
                ["REC-TwoSide-IS", "REC-Ring-NoIS", "REC-OneSide-NoIS"]),
    "c6_regularized": ("C6: OPMD and AsymRE as regularized REINFORCE",
                       ["REINFORCE", "OPMD", "AsymRE", "REC-OneSide-NoIS"]),
    "c7_data_shaping": ("C7: RED-Drop and RED-Weight",
                        ["REINFORCE", "RED-Drop", "RED-Weight", "REC-OneSide-NoIS"]),
}
LAST = 50  # training steps averaged for the final reward


def read_run(d):
    """(train reward by step, eval accuracy by step) of one finished run; later lines of a step
    replace earlier ones, as rein plot does."""
    train, ev = {}, {}
    with open(os.path.join(d, "metrics.jsonl")) as f:
        for line in f:
            r = json.loads(line)
            if r.get("kind", "train") == "train" and r.get("reward_mean") is not None:
                train[r["step"]] = r["reward_mean"]
            elif r.get("kind") == "eval" and r.get("eval_accuracy") is not None:
                ev[r["step"]] = r["eval_accuracy"]
    return train, ev


def stats(xs):
    m = sum(xs) / len(xs)
    return m, math.sqrt(sum((x - m) ** 2 for x in xs) / len(xs))


def cell(xs):
    if not xs:
        return "–"
    m, s = stats(xs)
    return "%.3f ± %.3f" % (m, s)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", default="runs/grid")
    ap.add_argument("--out", default=os.path.join(grid.ROOT, "docs", "reproduction"))
    ap.add_argument("--rein", default=os.path.join(grid.ROOT, "build", "rein"))
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)

    done = {}  # (setting, algo) -> [run dirs]
    walls = []
    for s in grid.SETTINGS:
        for algo in grid.ALGOS:
            for seed in grid.SEEDS:
                d = grid.run_dir(a.runs, s, algo, seed)
                if os.path.exists(os.path.join(d, "DONE")):
                    done.setdefault((s, algo), []).append(d)
                    with open(os.path.join(d, "DONE")) as f:
                        walls.append(json.load(f)["wall_s"])
    if not done:
        sys.exit("report.py: no finished runs under %s (run grid.py first)" % a.runs)

    for name, (title, algos) in FIGURES.items():
        args = [a.rein, "plot", "-o", os.path.join(a.out, name + ".svg"), "--facet", "2",
                "--metric", "reward_mean", "--metric", "eval_accuracy", "--smooth", "25",
                "--title", title]
        runs = ["%s=%s" % (d, algo) for s in grid.SETTINGS for algo in algos
                for d in done.get((s, algo), [])]
        if not runs:
            print("report.py: %s: no finished runs of %s yet, figure not drawn" % (name, ", ".join(algos)))
            continue
        subprocess.run(args + runs, check=True)

    rows = ["# Reproduction grid: measured results",
            "",
            "Written by `examples/reproduction/report.py` from the runs of `examples/reproduction/grid.py`;",
            "do not edit by hand.  Each cell is the mean over seeds ± the population std (n = seeds).",
            "Held-out accuracy is greedy, on 500 prompts the training never sees; \"train reward\" is",
            "the mean reward of the sampled responses over the last %d steps." % LAST,
            "",
            "%d finished runs; the sum of their wall-clock times is %.1f core-hours (one thread each)."
            % (len(walls), sum(walls) / 3600), ""]
    for s, (si, so, what) in grid.SETTINGS.items():
        rows += ["## %s (sync_interval %d, sync_offset %d): %s" % (s, si, so, what), "",
                 "| algorithm | n | accuracy at step 0 | at the end | mean over the run | best | worst "
                 "| train reward, last %d steps |" % LAST,
                 "|---|---|---|---|---|---|---|---|"]
        for algo in grid.ALGOS:
            runs = [read_run(d) for d in done.get((s, algo), [])]
            if not runs:
                rows.append("| %s | 0 | – | – | – | – | – | – |" % algo)
                continue
            first = [ev[min(ev)] for _, ev in runs]
            last = [ev[max(ev)] for _, ev in runs]
            auc = [sum(v for k, v in ev.items() if k > 0) / max(1, sum(1 for k in ev if k > 0))
                   for _, ev in runs]
            best = [max(ev.values()) for _, ev in runs]
            worst = [min(ev.values()) for _, ev in runs]
            rew = []
            for tr, _ in runs:
                top = max(tr)
                xs = [v for k, v in tr.items() if k > top - LAST]
                rew.append(sum(xs) / len(xs))
            rows.append("| %s | %d | %s | %s | %s | %s | %s | %s |" %
                        (algo, len(runs), cell(first), cell(last), cell(auc), cell(best), cell(worst),
                         cell(rew)))
        rows.append("")
    tmp = os.path.join(a.out, "results.md.tmp")
    with open(tmp, "w") as f:
        f.write("\n".join(rows))
    os.replace(tmp, os.path.join(a.out, "results.md"))
    print("report.py: %d runs -> %s" % (len(walls), a.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
