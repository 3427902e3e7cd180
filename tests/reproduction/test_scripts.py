#!/usr/bin/python3
"""The reproduction scripts (examples/reproduction): grid.py runs every cell once, skips finished
runs, restarts interrupted ones and reports failures; report.py's table holds the right numbers
and its figures the right lines.  A stand-in `rein` (this file, called with `train`) writes a
small metrics.jsonl whose values follow from the seed, so the expected table is computed here
independently; `plot` is passed on to the real rein.

    test_scripts.py --rein BUILD/rein
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
GRID = os.path.join(ROOT, "examples", "reproduction", "grid.py")
REPORT = os.path.join(ROOT, "examples", "reproduction", "report.py")
FAILS = []


def check(ok, what):
    print(("ok   " if ok else "FAIL ") + what)
    if not ok:
        FAILS.append(what)


def fake_values(seed):
    """eval accuracy at steps 0, 25, 50 and train reward at steps 1..60 of a stand-in run."""
    ev = {0: 0.5, 25: 0.5 + 0.01 * seed, 50: 0.4 + 0.1 * seed}
    tr = {s: 0.1 * seed + 0.001 * s for s in range(1, 61)}
    return ev, tr


def fake_train(argv):
    a = dict(zip(argv[::2], argv[1::2]))  # every option of grid.py's command has a value
    out, seed = a["--out"], int(a["--seed"])
    log = os.environ["FAKE_REIN_LOG"]
    with open(log, "a") as f:
        f.write(out + "\n")
    if os.environ.get("FAKE_REIN_FAIL") and os.environ["FAKE_REIN_FAIL"] in out:
        print("rein train: error: the stand-in fails here", file=sys.stderr)
        return 1
    os.makedirs(out, exist_ok=True)
    ev, tr = fake_values(seed)
    with open(os.path.join(out, "metrics.jsonl"), "w") as f:
        for s in range(0, 61):
            if s in tr:
                f.write(json.dumps({"kind": "train", "step": s, "time": s, "reward_mean": tr[s]}) + "\n")
            if s in ev:
                f.write(json.dumps({"kind": "eval", "step": s, "time": s, "eval_accuracy": ev[s]}) + "\n")
    return 0


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "train":
        return fake_train(sys.argv[3:])  # argv[2] is std:NAME
    if len(sys.argv) > 1 and sys.argv[1] == "plot":
        return subprocess.call([os.environ["REAL_REIN"]] + sys.argv[1:])
    ap = argparse.ArgumentParser()
    ap.add_argument("--rein", required=True)
    a = ap.parse_args()
    work = tempfile.mkdtemp(prefix="rein_repro_")
    try:
        fake = os.path.join(work, "rein")
        with open(fake, "w") as f:
            f.write("#!/bin/sh\nexec /usr/bin/python3 %s \"$@\"\n" % os.path.abspath(__file__))
        os.chmod(fake, 0o755)
        log = os.path.join(work, "calls")
        env = dict(os.environ, FAKE_REIN_LOG=log, REAL_REIN=os.path.abspath(a.rein))
        runs = os.path.join(work, "runs")
        cells = ["offline/grpo", "stale10/red_drop"]
        grid = ["/usr/bin/python3", GRID, "--out", runs, "--rein", fake, "--jobs", "2", "--only"] + cells

        def calls():
            if not os.path.exists(log):
                return []
            with open(log) as f:
                out = f.read().split()
            os.remove(log)
            return out

        p = subprocess.run(grid, env=env, capture_output=True, text=True)
        first = calls()
        check(p.returncode == 0 and len(first) == 6 and len(set(first)) == 6,
              "grid.py runs each of 2 cells x 3 seeds once (%d calls, exit %d)" % (len(first), p.returncode))
        check(all(os.path.exists(os.path.join(d, "DONE")) for d in first), "every run leaves DONE")
        subprocess.run(grid, env=env, capture_output=True, text=True)
        check(calls() == [], "a second grid.py runs nothing: finished runs are skipped")
        # an interrupted run: a folder without DONE, with a stale file in it
        victim = os.path.join(runs, "offline", "grpo", "seed2")
        os.remove(os.path.join(victim, "DONE"))
        with open(os.path.join(victim, "stale"), "w") as f:
            f.write("x")
        subprocess.run(grid, env=env, capture_output=True, text=True)
        check(calls() == [victim] and not os.path.exists(os.path.join(victim, "stale")),
              "an interrupted run (no DONE) is run again from a clean folder, and only it")
        # a failing run: reported, exit 1, no DONE
        os.remove(os.path.join(victim, "DONE"))
        p = subprocess.run(grid, env=dict(env, FAKE_REIN_FAIL="offline/grpo/seed2"), capture_output=True, text=True)
        calls()
        check(p.returncode == 1 and "FAILED" in p.stdout and "stand-in fails" in p.stdout
              and not os.path.exists(os.path.join(victim, "DONE")),
              "a failing run makes grid.py exit 1 naming it, and leaves no DONE")
        subprocess.run(grid, env=env, capture_output=True, text=True)
        calls()

        # list: the real options parse (rein train --help names each one)
        p = subprocess.run(["/usr/bin/python3", GRID, "--list", "--out", runs, "--rein", a.rein],
                           capture_output=True, text=True)
        cmds = p.stdout.splitlines()
        check(len(cmds) == 4 * 11 * 3, "--list prints 132 commands (got %d)" % len(cmds))
        helptext = subprocess.run([a.rein, "train", "--help"], capture_output=True, text=True)
        helptext = helptext.stdout + helptext.stderr
        opts = sorted(set(re.findall(r" (--[a-z-]+)", cmds[0])))
        missing = [o for o in opts if o not in helptext]
        check(not missing, "every option grid.py passes is a rein train option (missing: %s)" % missing)

        out = os.path.join(work, "report")
        p = subprocess.run(["/usr/bin/python3", REPORT, "--runs", runs, "--out", out, "--rein", fake],
                           env=env, capture_output=True, text=True)
        check(p.returncode == 0, "report.py succeeds: " + p.stderr.strip()[-300:])
        with open(os.path.join(out, "results.md")) as f:
            table = f.read()

        def mean_std(xs):
            m = sum(xs) / len(xs)
            return "%.3f ± %.3f" % (m, (sum((x - m) ** 2 for x in xs) / len(xs)) ** 0.5)

        seeds = [1, 2, 3]
        evs = [fake_values(s)[0] for s in seeds]
        trs = [fake_values(s)[1] for s in seeds]
        row = "| GRPO | 3 | %s | %s | %s | %s | %s | %s |" % (
            mean_std([e[0] for e in evs]), mean_std([e[50] for e in evs]),
            mean_std([(e[25] + e[50]) / 2 for e in evs]),
            mean_std([max(e.values()) for e in evs]), mean_std([min(e.values()) for e in evs]),
            mean_std([sum(t[s] for s in range(11, 61)) / 50 for t in trs]))
        offline = table[table.index("## offline"):]
        check(row in offline, "results.md's offline GRPO row is " + row)
        check("| REINFORCE | 0 | – |" in offline, "a cell with no runs says n = 0")
        with open(os.path.join(out, "c2_importance_sampling.svg")) as f:
            svg = f.read()
        check('data-run="GRPO"' in svg and 'data-facet="offline"' in svg and 'data-facet="stale10"' not in svg,
              "the C2 figure has a GRPO line and an offline column only (no C2 runs in stale10)")
        with open(os.path.join(out, "c7_data_shaping.svg")) as f:
            svg7 = f.read()
        check('data-run="RED-Drop"' in svg7, "the C7 figure has the RED-Drop line")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if FAILS:
        print("FAIL: %d checks failed" % len(FAILS))
        return 1
    print("all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
