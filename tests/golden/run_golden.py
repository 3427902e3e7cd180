#!/usr/bin/python3
"""Golden tests of algorithms.md §9 (G1-G3) against `rein eval`.

    /usr/bin/python3 tests/golden/run_golden.py --rein build/rein [--backend interp]
                     [--only SUBSTRING] [--no-micro] [--check-only] [-v]

For every case of tests/golden/expected.json it runs

    rein eval PROGRAM --batch BATCH --backend interp [--set NAME=VALUE ...]

parses the JSON printed on stdout ({"loss", "metrics", "grad": {"logp", "entropy"}}), and
compares loss, every metric (the set of metric names must match exactly) and the per-token
gradients with the case's tolerance.  Then it runs the same command with `--micro-groups 1`
(micro-batches of one group each) and requires the same results, both against the expectation
and against the whole-batch run.  Before any of that, every program must pass `rein check`.

One line per case; on a mismatch the line names the case, the run, the field, the expected and
the obtained value.  Exit status: 0 all passed, 1 some case failed, 2 usage or setup error.
"""
import argparse
import json
import math
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
NONFINITE = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}


# --------------------------------------------------------------------------------------------
# Numbers and tolerances

def as_number(v):
    """A JSON value as a float, or None when it is not a number ("nan"/"inf"/"-inf" allowed)."""
    if isinstance(v, bool):
        return None
    if isinstance(v, (int, float)):
        return float(v)
    if isinstance(v, str) and v in NONFINITE:
        return NONFINITE[v]
    return None


def fmt(v):
    if isinstance(v, float):
        return repr(v)
    return json.dumps(v)


class Tol:
    def __init__(self, name, rel, abs_):
        self.name, self.rel, self.abs = name, rel, abs_

    def ok(self, exp, got, exact_zero=False):
        """got within tolerance of exp; both floats.  exact_zero: an expected 0 must be 0."""
        if math.isnan(exp):
            return math.isnan(got)
        if math.isinf(exp) or math.isinf(got) or math.isnan(got):
            return exp == got
        if exact_zero and exp == 0.0:
            return got == 0.0
        return abs(got - exp) <= max(self.rel * abs(exp), self.abs)

    def __str__(self):
        return "%s: rel %g, abs %g" % (self.name, self.rel, self.abs)


def self_test():
    """The comparator must be able to fail (guards against a suite that cannot fail)."""
    exact = Tol("exact", 1e-9, 0.0)
    f32 = Tol("f32", 1e-5, 1e-6)
    assert exact.ok(1.125, 1.125)
    assert not exact.ok(1.125, 1.1250001)
    assert not exact.ok(0.0, 1e-300)
    assert f32.ok(0.8693370890628429, 0.86933714)
    assert not f32.ok(0.8693370890628429, 0.8694)
    assert not f32.ok(0.0, 1e-7, exact_zero=True)
    assert f32.ok(0.0, -0.0, exact_zero=True)
    assert not f32.ok(-0.0625, 0.0)
    assert not f32.ok(math.nan, 0.0) and f32.ok(math.nan, math.nan)
    assert not f32.ok(1.0, math.nan) and not f32.ok(math.inf, 1e300)
    assert as_number(True) is None and as_number("x") is None and as_number("-inf") == -math.inf


# --------------------------------------------------------------------------------------------
# Comparison


class Case:
    def __init__(self, spec, tols):
        self.spec = spec
        self.name = spec["name"]
        self.tols = tols
        t = spec.get("tol", "exact")
        self.tolmap = {"*": t} if isinstance(t, str) else dict(t)
        for k, v in self.tolmap.items():
            if v not in tols:
                raise SystemExit("run_golden: case %s: unknown tolerance %r for %r" % (self.name, v, k))

    def tol(self, field):
        """field like 'loss', 'metrics.clip_frac', 'grad.logp': the most specific entry wins."""
        parts = field.split(".")
        for n in range(len(parts), 0, -1):
            key = ".".join(parts[:n])
            if key in self.tolmap:
                return self.tols[self.tolmap[key]]
        return self.tols[self.tolmap.get("*", "exact")]


def compare_value(errs, field, exp, got, tol, exact_zero=False):
    e = as_number(exp)
    g = as_number(got)
    if e is None:
        errs.append("%s: bad expected value %s in expected.json" % (field, fmt(exp)))
    elif g is None:
        errs.append("%s: expected %s, got %s (not a number)" % (field, fmt(exp), fmt(got)))
    elif not tol.ok(e, g, exact_zero):
        why = "must be exactly 0" if exact_zero and e == 0.0 else str(tol)
        errs.append("%s: expected %s, got %s (%s)" % (field, fmt(exp), fmt(got), why))


def compare_grad(errs, field, exp, got, tol):
    """exp, got: group -> sequence -> token.  A null expected sequence is skipped (checked
    through a multiset); an expected 0 must be exactly 0."""
    if not isinstance(got, list) or len(got) != len(exp):
        errs.append("%s: expected %d groups, got %s" % (field, len(exp), fmt(got)[:200]))
        return
    for gi, (eg, gg) in enumerate(zip(exp, got)):
        if not isinstance(gg, list) or len(gg) != len(eg):
            errs.append("%s[%d]: expected %d sequences, got %s" % (field, gi, len(eg), fmt(gg)[:200]))
            continue
        for si, (es, gs) in enumerate(zip(eg, gg)):
            if not isinstance(gs, list):
                errs.append("%s[%d][%d]: expected a token list, got %s" % (field, gi, si, fmt(gs)[:200]))
                continue
            if es is None:
                continue
            if len(gs) != len(es):
                errs.append("%s[%d][%d]: expected %d tokens, got %d: %s"
                            % (field, gi, si, len(es), len(gs), fmt(gs)[:200]))
                continue
            for ti, (et, gt) in enumerate(zip(es, gs)):
                compare_value(errs, "%s[%d][%d][%d]" % (field, gi, si, ti), et, gt, tol,
                              exact_zero=True)


def all_zero(v):
    if isinstance(v, list):
        return all(all_zero(x) for x in v)
    n = as_number(v)
    return n is not None and n == 0.0


def compare_result(case, out):
    """Compare one rein eval output with the case's expectation; returns a list of errors."""
    errs = []
    exp = case.spec["expect"]
    if not isinstance(out, dict):
        return ["output: not a JSON object"]
    compare_value(errs, "loss", exp["loss"], out.get("loss"), case.tol("loss"))

    got_m = out.get("metrics")
    if got_m is None:
        got_m = {}
    if not isinstance(got_m, dict):
        errs.append("metrics: expected an object, got %s" % fmt(got_m)[:200])
        got_m = {}
    for k, v in exp.get("metrics", {}).items():
        if k not in got_m:
            errs.append("metrics.%s: expected %s, missing" % (k, fmt(v)))
        else:
            compare_value(errs, "metrics." + k, v, got_m[k], case.tol("metrics." + k))
    for k in got_m:
        if k not in exp.get("metrics", {}):
            errs.append("metrics.%s: unexpected metric (got %s)" % (k, fmt(got_m[k])))

    grad = out.get("grad")
    if not isinstance(grad, dict):
        errs.append("grad: expected an object, got %s" % fmt(grad)[:200])
        return errs
    for f, eg in exp.get("grad", {}).items():
        if f not in grad:
            errs.append("grad.%s: missing" % f)
        else:
            compare_grad(errs, "grad." + f, eg, grad[f], case.tol("grad." + f))
    # d loss / d entropy is zero when the loss does not use entropy: absent, null or zeros
    for f in ("entropy", "logp"):
        if f not in exp.get("grad", {}) and grad.get(f) is not None and not all_zero(grad[f]):
            errs.append("grad.%s: expected absent or all 0 (not used by the loss), got %s"
                        % (f, fmt(grad[f])[:200]))

    for ms in case.spec.get("grad_multisets", []):
        f = ms["field"]
        vals = []
        g = grad.get(f)
        try:
            for gi, si in ms["seqs"]:
                vals += [as_number(x) for x in g[gi][si]]
        except (TypeError, IndexError, KeyError):
            errs.append("grad.%s: sequences %s not found" % (f, ms["seqs"]))
            continue
        label = "grad.%s multiset over sequences %s" % (f, ms["seqs"])
        if len(vals) != len(ms["values"]) or any(v is None for v in vals):
            errs.append("%s: expected %s, got %s" % (label, ms["values"], vals))
            continue
        tol = case.tol("grad." + f)
        sub = []
        for e, v in zip(sorted(ms["values"]), sorted(vals)):
            compare_value(sub, label, e, v, tol, exact_zero=True)
        if sub:
            errs.append("%s: expected %s, got %s (%s)" % (label, sorted(ms["values"]), sorted(vals), tol))
    return errs


def compare_runs(case, full, micro):
    """--micro-groups 1 must reproduce the whole-batch run, field by field."""
    errs = []
    if not isinstance(full, dict) or not isinstance(micro, dict):
        return errs
    compare_value(errs, "loss (vs whole batch)", full.get("loss"), micro.get("loss"), case.tol("loss"))
    fm, mm = full.get("metrics") or {}, micro.get("metrics") or {}
    if isinstance(fm, dict) and isinstance(mm, dict):
        for k in fm:
            if as_number(fm[k]) is not None:
                compare_value(errs, "metrics.%s (vs whole batch)" % k, fm[k], mm.get(k),
                              case.tol("metrics." + k))
    fg, mg = full.get("grad") or {}, micro.get("grad") or {}
    if isinstance(fg, dict) and isinstance(mg, dict):
        for f in ("logp", "entropy"):
            a, b = fg.get(f), mg.get(f)
            if a is None or b is None:
                if (a is None) != (b is None) and not all_zero(a if a is not None else b):
                    errs.append("grad.%s (vs whole batch): present in one run only" % f)
                continue
            try:
                compare_grad(errs, "grad.%s (vs whole batch)" % f, a, b, case.tol("grad." + f))
            except TypeError:
                errs.append("grad.%s (vs whole batch): malformed" % f)
    return errs


# --------------------------------------------------------------------------------------------
# Running rein


def run_rein(args, argv):
    try:
        p = subprocess.run([args.rein] + argv, cwd=ROOT, capture_output=True, text=True,
                           timeout=args.timeout)
    except subprocess.TimeoutExpired:
        return None, "timed out after %gs" % args.timeout
    except OSError as e:
        return None, "cannot run %s: %s" % (args.rein, e)
    if p.returncode != 0:
        tail = (p.stderr or p.stdout).strip().splitlines()[-3:]
        return None, "exit status %d: %s" % (p.returncode, " | ".join(tail))
    try:
        out = json.loads(p.stdout)
    except ValueError as e:
        return None, "stdout is not JSON (%s): %s" % (e, p.stdout.strip()[:200])
    return out, None


def eval_argv(case, args, micro):
    s = case.spec
    argv = ["eval", s["program"], "--batch", s["batch"], "--backend", args.backend]
    for k, v in s.get("set", {}).items():
        argv += ["--set", "%s=%s" % (k, v)]
    if micro:
        argv += ["--micro-groups", "1"]
    return argv


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rein", required=True, help="path to the rein binary")
    ap.add_argument("--backend", default="interp")
    ap.add_argument("--expected", default=os.path.join(HERE, "expected.json"))
    ap.add_argument("--only", action="append", default=[],
                    help="run only cases whose name contains this (repeatable)")
    ap.add_argument("--no-micro", action="store_true", help="skip the --micro-groups 1 runs")
    ap.add_argument("--check-only", action="store_true", help="only `rein check` the programs")
    ap.add_argument("--timeout", type=float, default=120.0)
    ap.add_argument("-v", "--verbose", action="store_true", help="print the commands")
    args = ap.parse_args()
    args.rein = os.path.abspath(args.rein)

    self_test()
    try:
        with open(args.expected, encoding="utf-8") as f:
            spec = json.load(f)
        tols = {k: Tol(k, v["rel"], v["abs"]) for k, v in spec["tolerances"].items()}
        cases = [Case(c, tols) for c in spec["cases"]]
    except (OSError, ValueError, KeyError) as e:
        print("run_golden: cannot read %s: %s" % (args.expected, e))
        return 2
    if not os.access(args.rein, os.X_OK):
        print("run_golden: %s is not an executable" % args.rein)
        return 2
    if args.only:
        cases = [c for c in cases if any(o in c.name for o in args.only)]
        if not cases:
            print("run_golden: no case matches %s" % args.only)
            return 2
    names = [c.name for c in cases]
    if len(set(names)) != len(names):
        print("run_golden: duplicate case names in expected.json")
        return 2

    failed = 0
    programs = sorted({c.spec["program"] for c in cases})
    for prog in programs:
        p = subprocess.run([args.rein, "check", prog], cwd=ROOT, capture_output=True, text=True)
        if p.returncode != 0:
            failed += 1
            print("FAIL check %s: exit status %d: %s" % (prog, p.returncode,
                                                       " | ".join(p.stderr.strip().splitlines()[:3])))
        elif args.verbose:
            print("ok   check %s" % prog)
    print("rein check: %d programs, %d failed" % (len(programs), failed))
    if args.check_only:
        return 1 if failed else 0

    nfail_cases = 0
    for case in cases:
        errs = []
        argv = eval_argv(case, args, False)
        if args.verbose:
            print("  $ rein " + " ".join(argv))
        full, err = run_rein(args, argv)
        if err:
            errs.append("[whole batch] rein %s: %s" % (" ".join(argv), err))
        else:
            errs += ["[whole batch] " + e for e in compare_result(case, full)]
        if not args.no_micro:
            argv = eval_argv(case, args, True)
            if args.verbose:
                print("  $ rein " + " ".join(argv))
            micro, err = run_rein(args, argv)
            if err:
                errs.append("[--micro-groups 1] rein %s: %s" % (" ".join(argv), err))
            else:
                errs += ["[--micro-groups 1] " + e for e in compare_result(case, micro)]
                if full is not None:
                    errs += ["[--micro-groups 1] " + e for e in compare_runs(case, full, micro)]
        if errs:
            nfail_cases += 1
            print("FAIL %s (%s)" % (case.name, case.spec["source"]))
            for e in errs:
                print("     %s: %s" % (case.name, e))
        else:
            print("PASS %s" % case.name)
    print("golden: %d cases, %d passed, %d failed%s" % (
        len(cases), len(cases) - nfail_cases, nfail_cases,
        "" if args.no_micro else " (each also with --micro-groups 1)"))
    return 1 if (nfail_cases or failed) else 0


if __name__ == "__main__":
    sys.exit(main())
