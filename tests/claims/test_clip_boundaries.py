#!/usr/bin/python3
"""Clip boundaries: ratios exactly on 1 ± ε (and one double either side) through `rein eval`.

    /usr/bin/python3 tests/claims/test_clip_boundaries.py --rein build/rein [-v]

The REC masks of docs/algorithms.md ("The REC family") compare inclusively: one-side keeps
A ≥ 0 ∧ ρ ≤ 1 + ε_h and A ≤ 0 ∧ ρ ≥ 1 − ε_l, two-side keeps 1 − ε_l ≤ ρ ≤ 1 + ε_h, ring adds
A ≥ 0 ∧ ρ ≤ 1 − ε'_l and A ≤ 0 ∧ ρ ≥ 1 + ε'_h. PPO's clipped surrogate max(−A·r, −A·clip(r))
(docs/algorithms.md, "PPO-clip and the dual clip") keeps the gradient of −A·r where the two
branches tie (r exactly on a bound), and counts a token as clipped only when −A·clip(r) > −A·r
(strict); verl's torch form gives the same gradient there (torch.maximum splits a tie in halves
and torch.clamp passes the gradient on its bounds, so both halves carry −A·r'), which this file
also checks with torch autograd when torch is importable. (One double outside a bound, −A·r and
−A·clip(r) can round to the same value: torch then gives half the gradient, Rein the whole.) The dual clip min(L, −c·A) keeps L on a
tie (Rein's documented min(a, b) rule: a on a tie), which is Rein's choice: verl's torch.min would
give half the gradient there.

Inputs. `rein eval` (the float64 interpreter) reads the batch's numbers as doubles and computes
ρ = exp(logp − old_logp) with the C library's exp, and the bounds as 1 ± ε from a `--set` double.
For every bound b this file searches doubles d near log b for one with exp(d) == b exactly (Python's
math.exp is the same C library function), and for the nearest d with exp(d) just below and just
above b; a token then gets logp = −d, old_logp = −2d (d > 0) or logp = 2d, old_logp = d (d < 0),
so that logp − old_logp == d exactly. Bounds that no double reaches exactly (1 + 2.0 = 3 under
glibc's exp) get the two neighbours only. A probe objective first checks, in Rein's own
arithmetic, that exactly the intended tokens have ρ == b, ρ > b and ρ < b.

Every token is on one response of a group with A > 0, one with A < 0 (rewards 1 and 0) and one
with A = 0 (a group of equal rewards). The expected keep-mask, loss, d loss / d logp per token and
clip_frac come from the formulas above in Python float64; rein must match them to 1e-12. Then a
copy of each file with one inclusive comparison made strict (or the tie rule flipped) must fail.

Exit status: 0 all passed, 1 a check failed, 2 usage or setup error.
"""
import argparse
import json
import math
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
STD = os.path.join(ROOT, "lang", "std")
FAILS = []
TOL = 1e-12

PROBE = """objective ratio_probe "where rho = exp(logp - old_logp) lies against 1 + e and 1 - e";
param e = 0.2;
let r = sg(exp(logp - old_logp));
loss = -mean[batch](logp);
metric hi_eq = sum[batch](r == 1 + e);
metric hi_gt = sum[batch](r > 1 + e);
metric lo_eq = sum[batch](r == 1 - e);
metric lo_lt = sum[batch](r < 1 - e);
"""


def check(cond, what, verbose=True):
    if verbose or not cond:
        print(("ok    " if cond else "FAIL  ") + what, flush=True)
    if not cond:
        FAILS.append(what)
    return cond


# ---- ratios on and beside a bound -----------------------------------------------------------

def around(b, span=400):
    """(d_on or None, d_below, d_above): exp(d_on) == b, exp(d_below) < b and exp(d_above) > b
    the nearest such doubles."""
    d = math.log(b)
    for _ in range(span):
        d = math.nextafter(d, -math.inf)
    on, below, above = None, None, None
    for _ in range(2 * span):
        v = math.exp(d)
        if v == b and on is None:
            on = d
        if v < b:
            below = d
        if v > b and above is None:
            above = d
        d = math.nextafter(d, math.inf)
    if below is None or above is None:
        raise SystemExit(f"setup: no double d with exp(d) just below/above {b!r}")
    return on, below, above


def token(d):
    if d > 0:
        return -d, -2.0 * d
    if d < 0:
        return 2.0 * d, d
    return -0.5, -0.5


def ratio_points(bounds):
    """The list of d: for each bound, on it (when reachable), one double below, one above; and 0."""
    ds, exact = [0.0], {}
    for b in sorted(set(bounds)):
        on, below, above = around(b)
        ds += [below, above] + ([on] if on is not None else [])
        exact[b] = on is not None
    return ds, exact


def make_batch(ds):
    seq = {"logp": [token(d)[0] for d in ds], "old_logp": [token(d)[1] for d in ds]}
    return {"groups": [[dict(seq, reward=1.0), dict(seq, reward=0.0)],
                       [dict(seq, reward=0.5), {"reward": 0.5, "logp": [], "old_logp": []}]]}


# ---- the expected values --------------------------------------------------------------------

def rec_keep(mode, A, rho, p):
    lo, hi = 1 - p["eps_low"], 1 + p["eps_high"]
    band = lo <= rho <= hi
    if mode == "two":
        return band
    if mode == "one":
        return (A >= 0 and rho <= hi) or (A <= 0 and rho >= lo)
    return band or (A >= 0 and rho <= 1 - p["eps_low2"]) or (A <= 0 and rho >= 1 + p["eps_high2"])


def adv_values(batch, kind):
    """Per group, per sequence: A_mean, A_z (population std) or A_z1 (Bessel), + 1e-6 on σ."""
    out = []
    for g in batch["groups"]:
        r = [s["reward"] for s in g]
        mu = sum(r) / len(r)
        if kind == "mean":
            out.append([x - mu for x in r])
            continue
        dd = 1 if kind == "z1" else 0
        var = sum((x - mu) ** 2 for x in r) / (len(r) - dd)
        out.append([(x - mu) / (math.sqrt(var) + 1e-6) for x in r])
    return out


def expected_rec(batch, mode, is_, p):
    A = adv_values(batch, "mean")
    N = sum(len(s["logp"]) for g in batch["groups"] for s in g)
    loss, grads, dropped, keeps = 0.0, [], 0, []
    for g, ag in zip(batch["groups"], A):
        gg = []
        for s, a in zip(g, ag):
            gs = []
            for lp, olp in zip(s["logp"], s["old_logp"]):
                rho = math.exp(lp - olp)
                m = rec_keep(mode, a, rho, p)
                keeps.append((a, rho, m))
                w = a * (rho if is_ else 1.0) if m else 0.0
                loss += -w * lp
                gs.append(-w / N)
                dropped += not m
            gg.append(gs)
        grads.append(gg)
    return {"loss": loss / N, "grad": grads, "metrics": {"clip_frac": dropped / N}}, keeps


def expected_ppo(batch, name, p):
    """max(−A·r, −A·clip(r)) per token, and min(·, −c·A) for A < 0 in the dual-clip files, with
    Rein's tie rule (the first argument on a tie); dr_grpo divides by #sequences · max_new."""
    kind = {"ppo_dual_clip": "z1", "dapo": "z1", "grpo": "z", "dr_grpo": "mean"}[name]
    A = adv_values(batch, kind)
    N = sum(len(s["logp"]) for g in batch["groups"] for s in g)
    S = sum(len(g) for g in batch["groups"])
    lo, hi = 1 - p["eps_low"], 1 + p["eps_high"]
    tot, grads, clipped, dual = 0.0, [], 0, 0
    for g, ag in zip(batch["groups"], A):
        gg = []
        for s, a in zip(g, ag):
            gs = []
            for lp, olp in zip(s["logp"], s["old_logp"]):
                rho = math.exp(lp - olp)
                l1, l2 = -a * rho, -a * min(max(rho, lo), hi)
                take1 = l1 >= l2
                L = l1 if take1 else l2
                dL = -a * rho if take1 or lo < rho < hi else 0.0
                clipped += l2 > l1
                if name in DUAL and a < 0:
                    l3 = -p["clip_c"] * a
                    dual += L > l3
                    if not L <= l3:       # min(L, l3) keeps L on a tie
                        L, dL = l3, 0.0
                tot += L
                gs.append(dL)
            gg.append(gs)
        grads.append(gg)
    den = S * p["max_new"] if name == "dr_grpo" else N
    out = {"loss": tot / den, "grad": [[[x / den for x in s] for s in g] for g in grads],
           "metrics": {"clip_frac": clipped / N}}
    if name in DUAL:
        out["metrics"]["dual_clip_frac"] = dual / N
    return out


def torch_ppo_grads(batch, p):
    """verl's form in torch autograd, at the same ratios: r = ρ·exp(ℓ − sg(ℓ)) has the value ρ
    exactly and d r / d ℓ = ρ; max(−A·r, −A·clamp(r)), token-mean, A_z1 (dapo)."""
    import torch
    A = adv_values(batch, "z1")
    N = sum(len(s["logp"]) for g in batch["groups"] for s in g)
    out = []
    for g, ag in zip(batch["groups"], A):
        gg = []
        for s, a in zip(g, ag):
            if not s["logp"]:
                gg.append([])
                continue
            lp = torch.tensor(s["logp"], dtype=torch.float64, requires_grad=True)
            rho = torch.tensor([math.exp(x - y) for x, y in zip(s["logp"], s["old_logp"])], dtype=torch.float64)
            r = rho * torch.exp(lp - lp.detach())
            loss = torch.maximum(-a * r, -a * torch.clamp(r, 1 - p["eps_low"], 1 + p["eps_high"])).sum() / N
            loss.backward()
            gg.append([float(x) for x in lp.grad])
        out.append(gg)
    return out


# ---- running rein and comparing --------------------------------------------------------------

def rein_eval(exe, program, batch_path, params):
    cmd = [exe, "eval", program, "--batch", batch_path, "--backend", "interp"]
    for k, v in sorted(params.items()):
        cmd += ["--set", f"{k}={v!r}"]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if p.returncode != 0:
        print("command failed:", " ".join(cmd), "\n", p.stdout[-2000:], p.stderr[-2000:], flush=True)
        raise SystemExit(1)
    return json.loads(p.stdout)


def differences(got, want):
    """The list of mismatches (field, where, got, want) beyond TOL."""
    bad = []

    def cmp(field, g, w):
        if not abs(g - w) <= TOL * max(1.0, abs(w)):
            bad.append((field, g, w))
    cmp("loss", got["loss"], want["loss"])
    if set(got["metrics"]) != set(want["metrics"]):
        bad.append(("metric names", sorted(got["metrics"]), sorted(want["metrics"])))
    for k, w in want["metrics"].items():
        if k in got["metrics"]:
            cmp(k, got["metrics"][k], w)
    gl = got["grad"]["logp"]
    if [[len(s) for s in g] for g in gl] != [[len(s) for s in g] for g in want["grad"]]:
        return bad + [("grad shape", gl, want["grad"])]
    for gi, (gg, wg) in enumerate(zip(gl, want["grad"])):
        for si, (gs, ws) in enumerate(zip(gg, wg)):
            for ti, (x, y) in enumerate(zip(gs, ws)):
                cmp(f"d/dlogp[{gi}][{si}][{ti}]", x, y)
    return bad


REC = {  # file: (mode, importance weight)
    "rec_oneside_nois": ("one", False), "rec_oneside_is": ("one", True),
    "rec_oneside_nois_wide": ("one", False), "rec_oneside_is_wide": ("one", True),
    "rec_twoside_nois": ("two", False), "rec_twoside_is": ("two", True),
    "rec_ring_nois": ("ring", False), "rec_ring_is": ("ring", True),
}
DEFAULTS = {"eps_low": 0.2, "eps_high": 0.2, "eps_low2": 0.6, "eps_high2": 2.0}
CONFIGS = {  # the files' defaults, and params whose bounds exp reaches exactly
    "rec_oneside_nois": [{}, {"eps_low": 0.25, "eps_high": 0.5}],
    "rec_oneside_is": [{}, {"eps_low": 0.25, "eps_high": 0.5}],
    "rec_oneside_nois_wide": [{}, {"eps_low": 0.5, "eps_high": 1.5}],
    "rec_oneside_is_wide": [{}, {"eps_low": 0.5, "eps_high": 1.5}],
    "rec_twoside_nois": [{}, {"eps_low": 0.3, "eps_high": 0.1}],
    "rec_twoside_is": [{}, {"eps_low": 0.3, "eps_high": 0.1}],
    "rec_ring_nois": [{}, {"eps_low": 0.25, "eps_high": 0.5, "eps_low2": 0.75, "eps_high2": 1.5}],
    "rec_ring_is": [{}, {"eps_low": 0.25, "eps_high": 0.5, "eps_low2": 0.75, "eps_high2": 1.5}],
    "ppo_dual_clip": [{}, {"eps_low": 0.25, "eps_high": 0.5, "clip_c": 2.5}],
    "dapo": [{}, {"eps_low": 0.3, "eps_high": 0.1}],
    "grpo": [{}, {"eps_low": 0.25, "eps_high": 0.5, "clip_c": 2.5}],
    "dr_grpo": [{"max_new": 16.0}, {"eps_low": 0.25, "eps_high": 0.5, "max_new": 16.0}],
}
FILE_DEFAULTS = {
    "rec_oneside_nois_wide": {"eps_low": 0.6, "eps_high": 2.0},
    "rec_oneside_is_wide": {"eps_low": 0.6, "eps_high": 2.0},
    "ppo_dual_clip": {"clip_c": 3.0},
    "dapo": {"eps_high": 0.28},
}
DUAL = {"ppo_dual_clip", "grpo"}  # the files with the dual clip min(L, −c·A) for A < 0

# One inclusive comparison made strict, or a tie rule flipped: each must fail.
MUTANTS = [
    ("rec_oneside_nois", "ratio <= 1 + eps_high", "ratio < 1 + eps_high"),
    ("rec_oneside_nois", "ratio >= 1 - eps_low", "ratio > 1 - eps_low"),
    ("rec_twoside_is", "ratio <= 1 + eps_high", "ratio < 1 + eps_high"),
    ("rec_twoside_is", "ratio >= 1 - eps_low", "ratio > 1 - eps_low"),
    ("rec_ring_nois", "ratio <= 1 - eps_low2", "ratio < 1 - eps_low2"),
    ("rec_ring_nois", "ratio >= 1 + eps_high2", "ratio > 1 + eps_high2"),
    ("rec_ring_nois", "(ratio >= 1 - eps_low and ratio <= 1 + eps_high)",
     "(ratio > 1 - eps_low and ratio < 1 + eps_high)"),
    ("ppo_dual_clip", "max(l1, l2)", "max(l2, l1)"),
    ("dapo", "max(plain, clipped)", "max(clipped, plain)"),
    ("dapo", "clipped > plain", "clipped >= plain"),
]


def bounds_of(name, p):
    b = [1 - p["eps_low"], 1 + p["eps_high"]]
    if REC.get(name, ("",))[0] == "ring":
        b += [1 - p["eps_low2"], 1 + p["eps_high2"]]
    if name in DUAL:
        b.append(p["clip_c"])
    return b


def run_config(exe, work, name, program, sets, verbose, expect_fail=False):
    p = dict(DEFAULTS, clip_c=3.0)
    p.update(FILE_DEFAULTS.get(name, {}))
    p.update(sets)
    ds, exact = ratio_points(bounds_of(name, p))
    batch = make_batch(ds)
    path = os.path.join(work, f"{name}-{len(os.listdir(work))}.json")
    with open(path, "w") as f:
        json.dump(batch, f)
    tag = f"{name} {sets or 'defaults'}"
    if not expect_fail:
        # the premise, in Rein's own arithmetic: which tokens sit on, above and below each bound
        probe = os.path.join(work, "probe.rein")
        with open(probe, "w") as f:
            f.write(PROBE)
        for b in bounds_of(name, p):
            e, upper = (b - 1, True) if b > 1 else (1 - b, False)
            got = rein_eval(exe, probe, path, {"e": e})["metrics"]
            rhos = [math.exp(d) for d in ds] * 3          # three responses carry the tokens
            bb = 1 + e if upper else 1 - e
            want_eq = sum(r == bb for r in rhos)
            want_out = sum((r > bb) if upper else (r < bb) for r in rhos)
            key = "hi" if upper else "lo"
            got_out = got["hi_gt"] if upper else got["lo_lt"]
            check(bb == b and got[key + "_eq"] == want_eq and got_out == want_out and
                  want_eq == (3 if exact[b] else 0),
                  f"{tag}: in rein's arithmetic {want_eq} tokens have rho == {b!r} exactly and "
                  f"{want_out} lie beyond it", verbose)
    got = rein_eval(exe, program, path, sets)
    if name in REC:
        want, keeps = expected_rec(batch, REC[name][0], REC[name][1], p)
        # the data straddles every bound: kept on it, dropped one double beyond it, for some A
        straddle = any(m for _, _, m in keeps) and any(not m for _, _, m in keeps)
    else:
        want, straddle = expected_ppo(batch, name, p), True
    bad = differences(got, want)
    if expect_fail:
        return bool(bad)
    check(straddle and not bad, f"{tag}: {len(ds)} ratios on and beside {sorted(set(bounds_of(name, p)))}: loss, "
          f"metrics and d/dlogp as the inclusive rule gives" + (f"; first mismatch {bad[0]}" if bad else ""),
          verbose)
    if name == "dapo":
        try:
            import torch  # noqa: F401
        except ImportError:
            print(f"note  {tag}: torch not importable, verl's torch form not checked")
            return False
        # torch.maximum splits every tie in halves: where r is one double outside a bound and
        # −A·r rounds to −A·clip(r), torch gives half the gradient and Rein (max keeps its first
        # argument) the whole; such tokens are left out here, and counted
        tg = torch_ppo_grads(batch, p)
        A = adv_values(batch, "z1")
        lo, hi = 1 - p["eps_low"], 1 + p["eps_high"]
        worst, rounding_ties = 0.0, 0
        for g, h, bg, ag in zip(tg, want["grad"], batch["groups"], A):
            for s, t, seq, a in zip(g, h, bg, ag):
                for x, y, lp, olp in zip(s, t, seq["logp"], seq["old_logp"]):
                    rho = math.exp(lp - olp)
                    if -a * rho == -a * min(max(rho, lo), hi) and not lo <= rho <= hi:
                        rounding_ties += 1
                        continue
                    worst = max(worst, abs(x - y))
        check(worst <= TOL, f"{tag}: verl's torch form (torch.maximum, torch.clamp) has the same gradient "
              f"on the bounds (max difference {worst:.2e}; {rounding_ties} tokens outside the band whose "
              f"two branches round to the same value left out)", verbose)
    return False


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rein", required=True)
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args()
    if not os.access(args.rein, os.X_OK):
        print(f"error: {args.rein} is not an executable", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="rein-clipb-") as work:
        n = 0
        for name, configs in CONFIGS.items():
            for sets in configs:
                run_config(args.rein, work, name, os.path.join(STD, name + ".rein"), sets, args.verbose)
                n += 1
        if not args.verbose:
            print(f"{'FAIL' if FAILS else 'ok  '}  {n} configurations of {len(CONFIGS)} files on their bounds", flush=True)
        for name, old, new in MUTANTS:
            text = open(os.path.join(STD, name + ".rein")).read()
            if text.count(old) != 1:
                check(False, f"mutant of {name}: {old!r} occurs once in the file")
                continue
            path = os.path.join(work, name + ".rein")
            with open(path, "w") as f:
                f.write(text.replace(old, new))
            caught = any(run_config(args.rein, work, name, path, sets, False, expect_fail=True)
                         for sets in CONFIGS[name])
            check(caught, f"a mutant of {name} fails: {old!r} -> {new!r}")
    if FAILS:
        print(f"{len(FAILS)} check(s) failed")
        return 1
    print("all clip-boundary checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
