#!/usr/bin/python3
"""test_plot.py — end-to-end checks of `rein plot` on synthetic metrics.jsonl files.

    /usr/bin/python3 tests/plot/test_plot.py BINARY

BINARY is run as `BINARY plot ARGS...` (the rein driver, or any program that hands its
arguments from `plot` on to plot_main).  The script writes synthetic runs into a temporary
directory, runs the command and parses the SVG with xml.etree: panels
(<g class="panel" data-metric=...>), one polyline per run per panel
(<polyline class="run" data-run=...>) with one point per distinct step that carries the metric,
increasing x, the legend, escaping, determinism; and the error cases (missing run, invalid JSON,
missing 'step', unknown metric, empty file): exit 1, a message naming the path (and line), and an
existing output file left untouched; then plot_groups.py's checks of lines that average
several runs.  Prints `ok N checks`; exits 1 on any failure, 2 if the
binary cannot be run.  Standard library only.
"""
import json
import math
import os
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import plot_groups  # noqa: E402  (the lines of several runs: labels, seeds averaged, facets)

SVG = "{http://www.w3.org/2000/svg}"
DEFAULT_METRICS = ["reward_mean", "eval_accuracy", "accuracy", "loss", "entropy", "kl_behaviour",
                   "clip_frac", "response_len", "lag"]
SAN_TEXT = ("Sanitizer", "runtime error", "Segmentation", "Aborted", "core dumped", "(null)")


class Checker:
    def __init__(self):
        self.n = 0
        self.failures = []

    def check(self, cond, what):
        self.n += 1
        if not cond:
            self.failures.append(what)
            print("FAIL:", what)
        return cond


def write_jsonl(path, records, raw_lines=()):
    """records: dicts (or raw strings) written one a line."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        for r in records:
            f.write((r if isinstance(r, str) else json.dumps(r)) + "\n")
        for line in raw_lines:
            f.write(line)


def run_a():
    """Train steps 1..20 and eval every 5; crashed after step 17 and resumed from 14 with its
    clock restarted, so steps 15..17 are logged twice and the second copy wins whole: entropy,
    which the resumed lines of steps 15 and 16 lack, has no point there."""
    recs = []
    for s in range(1, 18):
        recs.append({"kind": "train", "step": s, "time": 2.0 * s, "loss": 1.0 / s, "reward_mean": 0.02 * s,
                     "accuracy": 0.01 * s, "entropy": 1.5, "kl_behaviour": 0.0, "lag": 0, "version": s - 1,
                     "response_len": 10 + s, "lr": 1e-5, "note": "first"})
        if s % 5 == 0:
            recs.append({"kind": "eval", "step": s, "time": 2.0 * s + 0.5, "eval_accuracy": 0.03 * s,
                         "eval_reward": 0.1, "eval_response_len": 12})
    for s in range(15, 21):
        recs.append({"kind": "train", "step": s, "time": 0.5 * s, "loss": 0.5 / s, "reward_mean": 0.021 * s,
                     "accuracy": 0.011 * s, "kl_behaviour": 0.001, "lag": 1, "version": s - 2,
                     "response_len": 9 + s, "lr": 1e-5, "note": "resumed"})
        if s >= 17:
            recs[-1]["entropy"] = 1.4
        if s % 5 == 0:
            recs.append({"kind": "eval", "step": s, "time": 0.5 * s + 0.25, "eval_accuracy": 0.031 * s,
                         "eval_reward": 0.2, "eval_response_len": 13})
    return recs


def run_b():
    """Train steps 1..12 (null loss at step 3, a NaN token at step 5, non-numeric and nested
    fields), eval at 4, 8, 12, and a clip_frac from the objective.  The eval line of step 8 also
    has an "accuracy": one point at step 8, the eval line's, which comes later."""
    lines = []
    for s in range(1, 13):
        rec = {"kind": "train", "step": s, "time": 1.25 * s, "loss": None if s == 3 else 2.0 / s,
               "reward_mean": 0.05 * s, "accuracy": 0.04 * s, "entropy": 1.0 + 0.01 * s,
               "kl_behaviour": 0.002,
               "lag": 0, "response_len": 20, "clip_frac": 0.1, "tags": ["x"], "cfg": {"a": 1}, "flag": True}
        line = json.dumps(rec)
        if s == 5:
            line = line.replace('"loss": %s' % json.dumps(2.0 / s), '"loss": NaN')
        lines.append(line)
        if s % 4 == 0:
            lines.append(json.dumps({"kind": "eval", "step": s, "time": 1.25 * s + 0.1,
                                     "eval_accuracy": 0.05 * s, "accuracy": 0.5 if s == 8 else None}))
    return lines


def expected_steps(lines):
    """metric -> sorted distinct steps carrying it as a finite number, after dropping lines that
    a later line of the same kind and step replaces."""
    last = {}
    for i, line in enumerate(lines):
        rec = json.loads(line) if isinstance(line, str) else line
        last[(rec.get("kind", "train"), rec["step"])] = rec
    out = {}
    for (_, step), rec in last.items():
        for k, v in rec.items():
            if k in ("step", "kind") or isinstance(v, bool) or not isinstance(v, (int, float)):
                continue
            if math.isfinite(v):
                out.setdefault(k, set()).add(step)
    return {k: sorted(v) for k, v in out.items()}


def read(*path):
    with open(os.path.join(*path), "rb") as f:
        return f.read()


def run(binary, args, cwd):
    try:
        p = subprocess.run([binary, "plot"] + args, cwd=cwd, capture_output=True, text=True, timeout=30)
    except OSError as e:
        print("cannot run %s: %s" % (binary, e))
        sys.exit(2)
    return p.returncode, p.stdout, p.stderr


def parse_svg(path):
    root = ET.parse(path).getroot()
    panels = []
    for g in root.iter(SVG + "g"):
        if g.get("class") == "panel":
            lines = {}
            for pl in g.iter(SVG + "polyline"):
                if pl.get("class") == "run":
                    pts = [tuple(float(c) for c in p.split(",")) for p in pl.get("points").split()]
                    lines.setdefault(pl.get("data-run"), []).append(pts)
            panels.append((g.get("data-metric"), lines, g))
    legend = [g.get("data-run") for g in root.iter(SVG + "g") if g.get("class") == "legend-item"]
    return root, panels, legend


def main():
    if len(sys.argv) != 2:
        print(__doc__)
        return 2
    binary = os.path.abspath(sys.argv[1])
    if not os.access(binary, os.X_OK):
        print("not an executable: %s" % binary)
        return 2
    c = Checker()
    with tempfile.TemporaryDirectory(prefix="rein_plot_") as tmp:
        a_lines, b_lines = run_a(), run_b()
        write_jsonl(os.path.join(tmp, "runA", "metrics.jsonl"), a_lines)
        write_jsonl(os.path.join(tmp, "runB", "metrics.jsonl"), b_lines)
        expect = {"runA": expected_steps(a_lines),
                  "runB": expected_steps([l.replace("NaN", "null") for l in b_lines])}

        def clean_stderr(err, what):
            c.check(not any(t in err for t in SAN_TEXT),
                    "%s: crash/sanitizer text on stderr:\n%s" % (what, err))

        # --- the default panels --------------------------------------------------------------
        rc, _, err = run(binary, ["runA", "runB", "-o", "out.svg"], tmp)
        clean_stderr(err, "default")
        if not c.check(rc == 0, "default plot: exit %d, stderr %r" % (rc, err)):
            return report(c)
        root, panels, legend = parse_svg(os.path.join(tmp, "out.svg"))
        want = [m for m in DEFAULT_METRICS if any(m in e for e in expect.values())]
        c.check([p[0] for p in panels] == want, "panels %s, expected %s" % ([p[0] for p in panels], want))
        c.check(legend == ["runA", "runB"], "legend %s" % legend)
        for metric, lines, _ in panels:
            runs = [r for r in ("runA", "runB") if metric in expect[r]]
            c.check(sorted(lines) == runs,
                    "%s: polylines for %s, expected %s" % (metric, sorted(lines), runs))
            for r, pls in lines.items():
                c.check(len(pls) == 1, "%s/%s: %d polylines" % (metric, r, len(pls)))
                pts = pls[0]
                n = len(expect[r].get(metric, []))
                c.check(len(pts) == n, "%s/%s: %d points, expected %d" % (metric, r, len(pts), n))
                xs = [p[0] for p in pts]
                c.check(all(x1 < x2 for x1, x2 in zip(xs, xs[1:])), "%s/%s: x not increasing" % (metric, r))
                c.check(all(math.isfinite(v) for p in pts for v in p),
                        "%s/%s: non-finite coordinate" % (metric, r))
        text = read(tmp, "out.svg")
        c.check(b"nan" not in text.lower() and b"inf" not in text.lower(), "nan/inf in the SVG")
        c.check(not [f for f in os.listdir(tmp) if ".tmp." in f], "temporary file left behind")
        rc, _, _ = run(binary, ["runA", "runB", "-o", "again.svg"], tmp)
        c.check(rc == 0 and read(tmp, "again.svg") == text, "output not deterministic")

        # --- default output name, plain .jsonl file, label collisions, one run -----------------
        rc, _, err = run(binary, ["runB"], tmp)
        c.check(rc == 0 and os.path.exists(os.path.join(tmp, "plot.svg")),
                "default output plot.svg: %r" % err)
        write_jsonl(os.path.join(tmp, "x", "runA", "metrics.jsonl"), a_lines)
        write_jsonl(os.path.join(tmp, "files", "sweep-lr3.jsonl"), b_lines)
        rc, _, err = run(binary, ["runA/", "x/runA", "files/sweep-lr3.jsonl", "-o", "lab.svg"], tmp)
        if c.check(rc == 0, "labels: exit %d %r" % (rc, err)):
            _, panels, legend = parse_svg(os.path.join(tmp, "lab.svg"))
            c.check(legend == ["runA", "runA#2", "sweep-lr3"], "labels %s" % legend)
            c.check(sorted(panels[0][1]) == ["runA", "runA#2", "sweep-lr3"],
                    "panel runs %s" % sorted(panels[0][1]))

        # --- --metric: exactly those panels, in that order ------------------------------------
        rc, _, err = run(binary, ["runA", "runB", "--metric", "eval_accuracy", "-o", "ev.svg"], tmp)
        if c.check(rc == 0, "--metric eval_accuracy: exit %d %r" % (rc, err)):
            _, panels, _ = parse_svg(os.path.join(tmp, "ev.svg"))
            c.check([p[0] for p in panels] == ["eval_accuracy"],
                    "--metric eval_accuracy: %s" % [p[0] for p in panels])
        rc, _, err = run(binary, ["runA", "runB", "--metric", "lr", "--metric", "loss", "-o", "m2.svg"], tmp)
        if c.check(rc == 0, "--metric lr --metric loss: exit %d %r" % (rc, err)):
            _, panels, _ = parse_svg(os.path.join(tmp, "m2.svg"))
            c.check([p[0] for p in panels] == ["lr", "loss"], "--metric order: %s" % [p[0] for p in panels])
            c.check(sorted(panels[0][1]) == ["runA"], "lr: only runA has it: %s" % sorted(panels[0][1]))

        # --- --smooth: train lines smoothed, eval lines not, same point counts -----------------
        rc, _, err = run(binary, ["runA", "runB", "--smooth", "4", "-o", "sm.svg"], tmp)
        if c.check(rc == 0, "--smooth 4: exit %d %r" % (rc, err)):
            _, plain, _ = parse_svg(os.path.join(tmp, "out.svg"))
            _, smooth, _ = parse_svg(os.path.join(tmp, "sm.svg"))
            pd, sd = {p[0]: p[1] for p in plain}, {p[0]: p[1] for p in smooth}
            c.check(pd["eval_accuracy"] == sd["eval_accuracy"], "--smooth changed the eval line")
            c.check(pd["loss"]["runB"] != sd["loss"]["runB"], "--smooth did not change the train line")
            c.check(all(len(pd[m][r][0]) == len(sd[m][r][0]) for m in pd for r in pd[m]),
                    "--smooth changed counts")

        # --- --x time, --title escaping -------------------------------------------------------
        title = 'A & B <"lr">'
        rc, _, err = run(binary, ["runA", "runB", "--x", "time", "--title", title, "-o", "t.svg"], tmp)
        if c.check(rc == 0, "--x time: exit %d %r" % (rc, err)):
            root, panels, _ = parse_svg(os.path.join(tmp, "t.svg"))
            titles = [t.text for t in root.iter(SVG + "text") if t.get("class") == "title"]
            c.check(titles == [title], "title %r" % titles)
            loss = dict((p[0], p[1]) for p in panels)["loss"]
            xs = [p[0] for p in loss["runA"][0]]
            c.check(len(xs) == len(expect["runA"]["loss"]) and xs == sorted(xs), "--x time: x not sorted")

        # --- a single point, a constant series ------------------------------------------------
        write_jsonl(os.path.join(tmp, "one", "metrics.jsonl"),
                    [{"kind": "train", "step": 7, "time": 1.0, "loss": 3.0, "entropy": 0.0}])
        rc, _, err = run(binary, ["one", "-o", "one.svg"], tmp)
        if c.check(rc == 0, "single point: exit %d %r" % (rc, err)):
            root, panels, _ = parse_svg(os.path.join(tmp, "one.svg"))
            c.check([p[0] for p in panels] == ["loss", "entropy"], "single point panels")
            c.check(len(list(root.iter(SVG + "circle"))) == 2, "single point: no dots")
            c.check(b"nan" not in read(tmp, "one.svg").lower(), "single point: nan")

        # --- a line still being written is skipped with a warning -----------------------------
        write_jsonl(os.path.join(tmp, "live", "metrics.jsonl"), b_lines,
                    ['{"kind": "train", "step": 13, "lo'])
        rc, _, err = run(binary, ["live", "-o", "live.svg"], tmp)
        c.check(rc == 0 and "metrics.jsonl:%d:" % (len(b_lines) + 1) in err and "warning" in err,
                "live run: exit %d %r" % (rc, err))

        # --- errors: exit 1, a message naming the file, the old output untouched --------------
        sentinel = b"<svg>old</svg>\n"
        with open(os.path.join(tmp, "keep.svg"), "wb") as f:
            f.write(sentinel)
        bad_json = a_lines[:2] + ['{"kind": "train", "step": 3, "loss": 0.5,}'] + a_lines[2:]
        write_jsonl(os.path.join(tmp, "badjson", "metrics.jsonl"), bad_json)
        write_jsonl(os.path.join(tmp, "nostep", "metrics.jsonl"), [{"kind": "train", "step": 1, "loss": 1},
                                                                   {"kind": "train", "loss": 2}])
        write_jsonl(os.path.join(tmp, "notobj", "metrics.jsonl"), ["[1, 2]"])
        write_jsonl(os.path.join(tmp, "empty", "metrics.jsonl"), [])
        write_jsonl(os.path.join(tmp, "blank", "metrics.jsonl"), ["", "  "])
        cases = [
            ("missing run", ["runA", "nosuchrun"], ["nosuchrun", "cannot open"]),
            ("dir without metrics", ["runA", "files"], ["files/metrics.jsonl", "cannot open"]),
            ("invalid JSON", ["runA", "badjson"], ["badjson/metrics.jsonl:3: invalid JSON"]),
            ("missing step", ["nostep"], ["nostep/metrics.jsonl:2: missing 'step'"]),
            ("not an object", ["notobj"], ["notobj/metrics.jsonl:1:"]),
            ("unknown metric", ["runA", "--metric", "loss", "--metric", "bogus"],
             ["rein plot: error: no run has metric 'bogus'"]),
            ("empty file", ["runA", "empty"], ["empty/metrics.jsonl: no records"]),
            ("blank lines only", ["blank"], ["blank/metrics.jsonl: no records"]),
            ("an endless file", ["runA", "/dev/zero"], ["/dev/zero:1: a line longer than 64 MiB"]),
        ]
        for what, args, needles in cases:
            rc, out, err = run(binary, args + ["-o", "keep.svg"], tmp)
            clean_stderr(err, what)
            c.check(rc == 1, "%s: exit %d, expected 1" % (what, rc))
            c.check(all(n in err for n in needles) and err.startswith("rein plot: error: "),
                    "%s: stderr %r lacks %s" % (what, err, needles))
            c.check(len(err.strip().splitlines()) == 1, "%s: %d stderr lines" % (what, len(err.splitlines())))
            c.check(read(tmp, "keep.svg") == sentinel, "%s: output clobbered" % what)
        c.check(not [f for f in os.listdir(tmp) if ".tmp." in f], "temporary file left behind after errors")
        for what, args in [("no runs", []), ("bad --smooth", ["runA", "--smooth", "0"]),
                           ("bad --x", ["runA", "--x", "epoch"]),
                           ("unknown option", ["runA", "--frobnicate"])]:
            rc, _, err = run(binary, args + ["-o", "keep.svg"], tmp)
            clean_stderr(err, what)
            c.check(rc == 2 and err, "%s: exit %d (usage error expected)" % (what, rc))
            c.check(read(tmp, "keep.svg") == sentinel, "%s: output clobbered" % what)
        rc, out, _ = run(binary, ["--help"], tmp)
        c.check(rc == 0 and out.startswith("usage: rein plot"), "--help")

        # --- several runs to a line (RUN=LABEL, --group), --facet, --band, --smooth -------------
        plot_groups.check(c, lambda args: run(binary, args, tmp), lambda name: read(tmp, name), tmp)
    return report(c)


def report(c):
    if c.failures:
        print("FAILED %d of %d checks" % (len(c.failures), c.n))
        return 1
    print("ok %d checks" % c.n)
    return 0


if __name__ == "__main__":
    sys.exit(main())
