"""plot_groups.py — the checks of `rein plot`'s lines of several runs, run by test_plot.py.

A tiny hand-made grid grid/<setting>/<algorithm>/seed<k>/metrics.jsonl (2 settings x 2
algorithms x 3 seeds, 6 steps) with a seed that stopped early, a missing eval point, a NaN token
and a null.  The expected per-step mean, min-max band, population-std band, centred moving
average and raw mean are computed here from the values written, in plain Python, and compared
with the data- attributes of the SVG:
    <g class="panel" data-metric=M data-facet=F>
      <polyline class="run" data-run=L data-runs=N data-step data-mean data-lo data-hi data-n data-raw>
      <polygon class="band" data-run=L>   <polyline class="raw" data-run=L>
Also: rows = metrics and columns = facets, shared y ticks within a metric and shared x ticks,
RUN=LABEL, the legend and its note, determinism, and the errors (a seed directory without its
file, a directory level that does not exist, bad option values).
"""
import json
import math
import os
import xml.etree.ElementTree as ET

SVG = "{http://www.w3.org/2000/svg}"
SETTINGS = ["S1", "S2"]
ALGS = ["A", "B"]
STEPS = range(1, 7)


def reward(si, ai, k, s):
    """The reward_mean of a train line, or None (no value), or "NaN" (the bare token)."""
    if (si, ai, k, s) == (0, 0, 1, 2):
        return "NaN"
    if (si, ai, k, s) == (1, 1, 0, 3):
        return None
    return 0.1 * s + 0.05 * k * k + 0.3 * ai + 0.01 * si - 0.02 * (s % 2) * k


def last_step(si, ai, k):
    return 4 if (si, ai, k) == (0, 0, 2) else 6  # S1/A/seed2 stopped after step 4


def acc(si, ai, k, s):
    """eval_accuracy at the eval steps 2, 4, 6, or None when that eval is missing."""
    if (si, ai, k, s) == (0, 1, 1, 4):
        return None
    return 0.2 + 0.03 * s + 0.07 * k + 0.1 * ai + 0.005 * si


def write_grid(tmp):
    for si, st in enumerate(SETTINGS):
        for ai, al in enumerate(ALGS):
            for k in range(3):
                d = os.path.join(tmp, "grid", st, al, "seed%d" % k)
                os.makedirs(d, exist_ok=True)
                with open(os.path.join(d, "metrics.jsonl"), "w") as f:
                    for s in range(1, last_step(si, ai, k) + 1):
                        r = reward(si, ai, k, s)
                        line = json.dumps({"kind": "train", "step": s, "time": 2.0 * s, "loss": 1.0,
                                           "reward_mean": 0.0 if r == "NaN" else r})
                        if r == "NaN":
                            line = line.replace('"reward_mean": 0.0', '"reward_mean": NaN')
                        f.write(line + "\n")
                        if s % 2 == 0 and acc(si, ai, k, s) is not None:
                            f.write(json.dumps({"kind": "eval", "step": s, "eval_accuracy": acc(si, ai, k, s)}) + "\n")
    os.makedirs(os.path.join(tmp, "grid", "S1", "A", "seed3"), exist_ok=True)  # a seed without its file


def seed_series(metric, si, ai, k, w):
    """step -> (smoothed, raw) of one seed: finite values only; train values smoothed with the
    centred moving average over w points (window i - w//2 .. i + (w-1)//2, cut at the ends)."""
    pts = []
    for s in range(1, last_step(si, ai, k) + 1):
        v = reward(si, ai, k, s) if metric == "reward_mean" else (acc(si, ai, k, s) if s % 2 == 0 else None)
        if isinstance(v, float) and math.isfinite(v):
            pts.append((s, v))
    out = {}
    for i, (s, v) in enumerate(pts):
        if metric == "reward_mean":
            win = [q for _, q in pts[max(0, i - w // 2):i + (w - 1) // 2 + 1]]
            out[s] = (sum(win) / len(win), v)
        else:
            out[s] = (v, v)
    return out


def expected(metric, si, ai, w, band, seeds=(0, 1, 2)):
    """step -> (mean, lo, hi, n, raw mean) over the seeds that have the step."""
    per = [seed_series(metric, si, ai, k, w) for k in seeds]
    out = {}
    for s in sorted(set().union(*per)):
        ys = [p[s][0] for p in per if s in p]
        raws = [p[s][1] for p in per if s in p]
        m = sum(ys) / len(ys)
        if band == "std":
            sd = math.sqrt(sum((y - m) ** 2 for y in ys) / len(ys))
            lo, hi = m - sd, m + sd
        else:
            lo, hi = min(ys), max(ys)
        out[s] = (m, lo, hi, len(ys), sum(raws) / len(raws))
    return out


def nums(el, attr):
    v = el.get(attr)
    return None if v is None else [float(x) for x in v.split()]


def close(a, b):
    return a is not None and len(a) == len(b) and all(abs(x - y) <= 1e-6 * max(1.0, abs(y)) for x, y in zip(a, b))


def panels_of(path):
    root = ET.parse(path).getroot()
    out = []
    for g in root.iter(SVG + "g"):
        if g.get("class") != "panel":
            continue
        runs = {pl.get("data-run"): pl for pl in g.iter(SVG + "polyline") if pl.get("class") == "run"}
        raws = {pl.get("data-run"): pl for pl in g.iter(SVG + "polyline") if pl.get("class") == "raw"}
        bands = {pg.get("data-run"): pg for pg in g.iter(SVG + "polygon") if pg.get("class") == "band"}
        ticks = {}
        for t in g.iter(SVG + "g"):
            if t.get("class") in ("xticks", "yticks"):
                ticks[t.get("class")] = [x.text for x in t.iter(SVG + "text")]
        out.append({"metric": g.get("data-metric"), "facet": g.get("data-facet"), "runs": runs, "raws": raws,
                    "bands": bands, "ticks": ticks})
    legend = [g.get("data-run") for g in root.iter(SVG + "g") if g.get("class") == "legend-item"]
    notes = [t.text for t in root.iter(SVG + "text") if t.get("class") == "legend-note"]
    return out, legend, notes


def check_line(c, what, pl, exp, with_band=True, with_raw=False):
    steps = sorted(exp)
    c.check(nums(pl, "data-step") == [float(s) for s in steps],
            "%s: steps %s, expected %s" % (what, pl.get("data-step"), steps))
    c.check(close(nums(pl, "data-mean"), [exp[s][0] for s in steps]),
            "%s: mean %s, expected %s" % (what, pl.get("data-mean"), [exp[s][0] for s in steps]))
    if with_band:
        c.check(close(nums(pl, "data-lo"), [exp[s][1] for s in steps]),
                "%s: lo %s, expected %s" % (what, pl.get("data-lo"), [exp[s][1] for s in steps]))
        c.check(close(nums(pl, "data-hi"), [exp[s][2] for s in steps]),
                "%s: hi %s, expected %s" % (what, pl.get("data-hi"), [exp[s][2] for s in steps]))
        c.check(nums(pl, "data-n") == [float(exp[s][3]) for s in steps],
                "%s: n %s, expected %s" % (what, pl.get("data-n"), [exp[s][3] for s in steps]))
    if with_raw:
        c.check(close(nums(pl, "data-raw"), [exp[s][4] for s in steps]),
                "%s: raw %s, expected %s" % (what, pl.get("data-raw"), [exp[s][4] for s in steps]))


def check(c, run, read, tmp):
    """c: the Checker; run(args) -> (rc, out, err) in tmp; read(name) -> bytes."""
    write_grid(tmp)
    seeds = ["grid/%s/%s/seed%d" % (st, al, k) for st in SETTINGS for al in ALGS for k in range(3)]
    metrics = ["--metric", "reward_mean", "--metric", "eval_accuracy"]

    # --- the grid: rows = metrics, columns = settings, one line per algorithm ---------------------
    rc, _, err = run(seeds + ["--group", "1", "--facet", "2"] + metrics + ["-o", "grid.svg"])
    if c.check(rc == 0, "grid: exit %d %r" % (rc, err)):
        panels, legend, notes = panels_of(os.path.join(tmp, "grid.svg"))
        c.check([(p["metric"], p["facet"]) for p in panels] ==
                [(m, s) for m in ("reward_mean", "eval_accuracy") for s in SETTINGS],
                "grid: panels %s" % [(p["metric"], p["facet"]) for p in panels])
        c.check(legend == ALGS, "grid: legend %s" % legend)
        c.check(len(notes) == 1 and "mean" in notes[0] and "min\u2013max" in notes[0], "grid: note %s" % notes)
        for p in panels:
            si = SETTINGS.index(p["facet"])
            c.check(sorted(p["runs"]) == ALGS and sorted(p["bands"]) == ALGS and not p["raws"],
                    "grid %s/%s: lines %s bands %s raws %s" % (p["metric"], p["facet"], sorted(p["runs"]),
                                                               sorted(p["bands"]), sorted(p["raws"])))
            for ai, al in enumerate(ALGS):
                pl = p["runs"].get(al)
                if pl is None:
                    continue
                c.check(pl.get("data-runs") == "3", "grid: data-runs %s" % pl.get("data-runs"))
                exp = expected(p["metric"], si, ai, 1, "minmax")
                check_line(c, "grid %s/%s/%s" % (p["metric"], p["facet"], al), pl, exp)
                band = p["bands"].get(al)
                if band is not None:
                    c.check(len(band.get("points").split()) == 2 * len(exp), "grid: band vertices")
        by = {(p["metric"], p["facet"]): p for p in panels}
        for m in ("reward_mean", "eval_accuracy"):
            c.check(by[(m, "S1")]["ticks"]["yticks"] == by[(m, "S2")]["ticks"]["yticks"],
                    "%s: y axes not shared: %s" % (m, [by[(m, s)]["ticks"]["yticks"] for s in SETTINGS]))
        c.check(len({tuple(p["ticks"]["xticks"]) for p in panels}) == 1, "x axes not shared")
        c.check(by[("reward_mean", "S1")]["ticks"]["yticks"] != by[("eval_accuracy", "S1")]["ticks"]["yticks"],
                "metrics should not share y")
        rc, _, _ = run(seeds + ["--group", "1", "--facet", "2"] + metrics + ["-o", "grid2.svg"])
        c.check(rc == 0 and read("grid2.svg") == read("grid.svg"), "grid: output not deterministic")

    # --- --band std and --smooth 3 (raw mean faint behind the smoothed train line) ----------------
    rc, _, err = run(seeds[:6] + ["--group", "1", "--band", "std", "--smooth", "3"] + metrics + ["-o", "sm.svg"])
    if c.check(rc == 0, "std/smooth: exit %d %r" % (rc, err)):
        panels, legend, notes = panels_of(os.path.join(tmp, "sm.svg"))
        c.check(len(notes) == 1 and "\u00b1 1 std" in notes[0] and "centred moving average over 3" in notes[0],
                "std/smooth: note %s" % notes)
        for p in panels:
            raw_expected = p["metric"] == "reward_mean"
            c.check(sorted(p["raws"]) == (ALGS if raw_expected else []),
                    "std/smooth %s: raw lines %s" % (p["metric"], sorted(p["raws"])))
            for ai, al in enumerate(ALGS):
                if al in p["runs"]:
                    check_line(c, "std/smooth %s/%s" % (p["metric"], al), p["runs"][al],
                               expected(p["metric"], 0, ai, 3, "std"), with_raw=raw_expected)

    # --- RUN=LABEL: explicit labels average the runs that share them ------------------------------
    rc, _, err = run(["grid/S2/B/seed0=beta", "grid/S2/A/seed0=alpha", "grid/S2/A/seed2=alpha",
                      "--metric", "reward_mean", "--band", "none", "-o", "lab.svg"])
    if c.check(rc == 0, "labels: exit %d %r" % (rc, err)):
        panels, legend, notes = panels_of(os.path.join(tmp, "lab.svg"))
        c.check(legend == ["beta", "alpha"], "labels: legend %s" % legend)
        c.check(not panels[0]["bands"] and notes == ["line: mean over the runs sharing a label"],
                "--band none: bands %s, note %s" % (sorted(panels[0]["bands"]), notes))
        lines = panels[0]["runs"]
        if c.check(sorted(lines) == ["alpha", "beta"], "labels: lines %s" % sorted(lines)):
            c.check(lines["alpha"].get("data-runs") == "2" and lines["beta"].get("data-runs") == "1",
                    "labels: run counts")
            check_line(c, "labels alpha", lines["alpha"], expected("reward_mean", 1, 0, 1, "minmax", (0, 2)),
                       with_band=False)
            check_line(c, "labels beta", lines["beta"], expected("reward_mean", 1, 1, 1, "minmax", (0,)),
                       with_band=False)

    # --- errors -----------------------------------------------------------------------------------
    sentinel = b"<svg>old</svg>\n"
    with open(os.path.join(tmp, "keepg.svg"), "wb") as f:
        f.write(sentinel)
    for what, args, code, needle in [
            ("seed without its file", seeds[:3] + ["grid/S1/A/seed3", "--group", "1"], 1,
             "grid/S1/A/seed3/metrics.jsonl: cannot open"),
            ("no such level", seeds[:3] + ["--facet", "60"], 1, "no directory 60 levels above the run"),
            ("bad --band", seeds[:3] + ["--band", "iqr"], 2, "--band"),
            ("bad --group", seeds[:3] + ["--group", "-1"], 2, "level"),
            ("empty label", ["grid/S1/A/seed0="], 2, "empty label")]:
        rc, _, err = run(args + ["-o", "keepg.svg"])
        c.check(rc == code and needle in err, "%s: exit %d (expected %d), stderr %r" % (what, rc, code, err))
        c.check(read("keepg.svg") == sentinel, "%s: output clobbered" % what)
