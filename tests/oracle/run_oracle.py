#!/usr/bin/python3
"""Differential test: `rein eval` against the float64 PyTorch oracle (torch_objectives.py).

For every objective it generates seeded random ragged batches (language.md section 6), runs

    rein eval FILE --batch B.json --backend interp [--set NAME=VALUE ...] [--micro-groups 1]

and compares the loss, every metric and d loss / d logp, d loss / d entropy token by token with
the oracle: |rein - oracle| <= atol + rtol * |oracle| (1e-6, 1e-6 by default).

Usage: /usr/bin/python3 tests/oracle/run_oracle.py --rein build/rein [--seed S] [--batches N]
           [--set NAME=VALUE ...] [--only NAME ...] [--out-dir DIR]
Exit status 0 when everything agrees; 1 on any mismatch (each one named: objective, batch seed
and file, options, field, indices, both values); 2 on a usage or setup error.
"""

import argparse
import json
import math
import os
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)

import torch_objectives as O  # noqa: E402

# One extra configuration per objective with non-default params, so that params really reach
# the program (None: the objective has no params).
VARIANTS = {
    "reinforce": None,
    "grpo": {"eps_low": 0.1, "eps_high": 0.3},
    "rec_oneside_nois": {"eps_low": 0.3, "eps_high": 0.1},
    "rec_oneside_is": {"eps_low": 0.3, "eps_high": 0.1},
    "rec_twoside_nois": {"eps_low": 0.3, "eps_high": 0.1},
    "rec_twoside_is": {"eps_low": 0.3, "eps_high": 0.1},
    "rec_ring_is": {"eps_low": 0.3, "eps_high": 0.1, "eps_low2": 0.5, "eps_high2": 1.5},
    "rec_ring_nois": {"eps_low": 0.3, "eps_high": 0.1, "eps_low2": 0.5, "eps_high2": 1.5},
    "opmd": {"c": 0.2},
    "asymre": {"c": 0.2},
    "red_weight": {"T": 0.5},
    "red_drop": None,
    "gspo": {"eps_low": 1e-3, "eps_high": 2e-3},
    "opmd_kl": {"c": 0.05, "kl_coef": 0.1, "ent_coef": 0.01},
}

DYADIC = [0.0, 1.0, 0.5, -0.25, 1.5]  # all-equal groups: the group mean is exact in float32
GSM8K = [-0.1, 0.1, 0.9, 1.1]
MARGIN = 1e-5  # min |log ratio - log boundary| of generated ratios (far above float32 error)


def f32(x):
    """The float64 value of the nearest float32: every input is exactly representable in both."""
    return float(np.float32(x))


class Gen:
    """Seeded batch generator.  kind 'token': token ratios spread over [0.2, 4] for the REC /
    GRPO / REINFORCE family; kind 'gspo': per-sequence geometric-mean ratios around GSPO's
    narrow band (and far from it)."""

    def __init__(self, seed, kind, rho_bounds, s_bounds):
        self.rng = np.random.default_rng(seed)
        self.seed, self.kind = seed, kind
        self.log_rb = [math.log(b) for b in rho_bounds]
        self.log_sb = [math.log(b) for b in s_bounds]

    def u(self, a, b):
        return float(self.rng.uniform(a, b))

    def near(self, x, bounds):
        return any(abs(x - b) < MARGIN for b in bounds)

    def pair(self, d):
        """(logp, old_logp) float32 values, both <= 0, with logp - old_logp close to d."""
        u = self.u(0.02, 4.0)
        if d >= 0:
            lp = -u
            ob = lp - d
        else:
            ob = -u
            lp = ob + d
        return f32(lp), f32(ob)

    def token_delta(self, region=None):
        """log rho: 35% inside the (0.8, 1.2) band, else uniform in log over [0.2, 4]; or
        uniform inside a forced region (lo, hi) of rho."""
        if region is not None:
            return self.u(math.log(region[0]), math.log(region[1]))
        if self.rng.random() < 0.35:
            return self.u(math.log(0.8), math.log(1.2))
        return self.u(math.log(0.2), math.log(4.0))

    def tokens(self, n, regions=None):
        lp, ob = [], []
        for t in range(n):
            while True:
                reg = regions[t % len(regions)] if regions else None
                a, b = self.pair(self.token_delta(reg))
                if not self.near(a - b, self.log_rb):
                    break
            lp.append(a)
            ob.append(b)
        return lp, ob

    def gspo_tokens(self, n, region=None):
        """Token log-ratios whose mean (log s) lies, in turn or at random, below, inside or
        above GSPO's default band [1 - 3e-4, 1 + 4e-4], near it (+-3e-3) or far (+-0.5)."""
        if n == 0:
            return [], []
        while True:
            r = self.rng.random() if region is None else region
            if r < 0.35:
                target = self.u(math.log(1 - 3e-4), math.log(1 + 4e-4))
            elif r < 0.7:
                target = self.u(-3e-3, 3e-3)
            else:
                target = self.u(-0.5, 0.5)
            noise = self.rng.uniform(-0.3, 0.3, size=n)
            noise -= noise.mean()
            lp, ob = [], []
            for d in target + noise:
                a, b = self.pair(float(d))
                lp.append(a)
                ob.append(b)
            mean = sum(a - b for a, b in zip(lp, ob)) / n
            if not self.near(mean, self.log_sb):
                return lp, ob

    def rewards(self, kind, n):
        if kind == "binary":
            return [float(self.rng.integers(0, 2)) for _ in range(n)]
        if kind == "continuous":
            return [f32(self.u(-1.0, 2.0)) for _ in range(n)]
        if kind == "gsm8k":
            return [f32(GSM8K[self.rng.integers(0, 4)]) for _ in range(n)]
        if kind == "equal":
            v = DYADIC[self.rng.integers(0, len(DYADIC))]
            return [v] * n
        raise ValueError(kind)

    def group_ok(self, rs):
        """No advantage may be a float32-rounding-sized non-zero (its sign decides masks): an
        all-equal group must use a dyadic reward (mean exact), others need |r - mean| >= 1e-3."""
        if len(rs) == 1:
            return True
        if all(r == rs[0] for r in rs):
            return rs[0] in DYADIC
        mu = sum(rs) / len(rs)
        return all(abs(r - mu) >= 1e-3 for r in rs)

    def seq(self, reward, n, regions=None, truncated=None, gregion=None):
        if self.kind == "gspo":
            lp, ob = self.gspo_tokens(n, gregion)
        else:
            lp, ob = self.tokens(n, regions)
        return {
            "reward": reward,
            "logp": lp,
            "old_logp": ob,
            "ref_logp": [f32(-self.u(0.02, 5.0)) for _ in range(n)],
            "entropy": [f32(self.u(0.0, 4.0)) for _ in range(n)],
            "truncated": bool(self.rng.random() < 0.25) if truncated is None else truncated,
            "lag": int(self.rng.integers(0, 5)),
        }

    def ntok(self):
        return 0 if self.rng.random() < 0.15 else int(self.rng.integers(1, 10))

    def batch(self, index):
        groups = []
        if index == 0:
            # fixed structure: a one-sequence group, an all-equal group with an empty sequence,
            # a binary group whose tokens cycle through every ratio region (GSPO: whose
            # sequence ratios are inside, near and far from the band), a continuous group
            regions = [(0.2, 0.4), (0.42, 0.78), (0.82, 1.18), (1.22, 2.9), (3.1, 4.0)]
            groups.append([self.seq(f32(self.u(-1, 2)), 5, regions)])
            v = DYADIC[self.rng.integers(1, len(DYADIC))]
            groups.append([self.seq(v, 4), self.seq(v, 0), self.seq(v, 6)])
            groups.append([self.seq(r, 5, regions, gregion=gr) for r, gr in
                           zip((1.0, 0.0, 1.0, 0.0, 1.0, 0.0), (0.1, 0.1, 0.5, 0.5, 0.9, 0.9))])
            groups.append([self.seq(r, self.ntok())
                           for r in self.rewards_ok("continuous", 4)])
        else:
            for _ in range(int(self.rng.integers(1, 6))):
                n = int(self.rng.integers(1, 7))
                kind = ["binary", "continuous", "gsm8k", "equal"][self.rng.integers(0, 4)]
                grp = [self.seq(r, self.ntok()) for r in self.rewards_ok(kind, n)]
                groups.append(grp)
        if self.kind == "gspo" and index == 1:
            # long sequences for long_frac: 512 is not > 512
            groups.append([self.seq(r, n) for r, n in
                           zip(self.rewards_ok("continuous", 3), (512, 513, 600))])
        if self.kind == "gspo" and index == 2:
            for grp in groups:  # mean_tokens over no sequence is 0
                for s in grp:
                    s["truncated"] = True
        if sum(len(s["logp"]) for g in groups for s in g) == 0:
            groups[0][0] = self.seq(groups[0][0]["reward"], 3)
        return {"seed": self.seed, "step": 0, "groups": groups}

    def rewards_ok(self, kind, n):
        for _ in range(1000):
            rs = self.rewards(kind, n)
            if self.group_ok(rs):
                return rs
        return [DYADIC[1]] * n


def bounds_for(configs):
    """Ratio boundaries (token level) and sequence-ratio boundaries (GSPO) of every param set."""
    rho, s = set(), set()
    for name, p in configs:
        if name == "gspo":
            s.update([1 - p["eps_low"], 1 + p["eps_high"]])
        else:
            if "eps_low" in p:
                rho.update([1 - p["eps_low"], 1 + p["eps_high"]])
            if "eps_low2" in p:
                rho.update([1 - p["eps_low2"], 1 + p["eps_high2"]])
    return sorted(b for b in rho if b > 0), sorted(b for b in s if b > 0)


def parse_nums(x):
    if isinstance(x, str):
        return {"nan": float("nan"), "inf": float("inf"), "-inf": float("-inf")}[x]
    if isinstance(x, list):
        return [parse_nums(v) for v in x]
    if isinstance(x, dict):
        return {k: parse_nums(v) for k, v in x.items()}
    return float(x) if isinstance(x, (int, float)) and not isinstance(x, bool) else x


class Mismatch(Exception):
    pass


class Stats:
    def __init__(self):
        self.runs = 0
        self.err = {"loss": 0.0, "metrics": 0.0, "grad.logp": 0.0, "grad.entropy": 0.0}
        self.failures = []

    def see(self, field, a, b):
        d = abs(a - b)
        if not math.isnan(d):
            key = field if field in self.err else "metrics"
            self.err[key] = max(self.err[key], d)


def compare(got, want, stats, atol, rtol):
    """Yields mismatch descriptions (field, indices, rein value, oracle value)."""
    out = []

    def num(field, a, b):
        if not isinstance(a, float):
            out.append("%s: rein printed %r, oracle %r" % (field, a, b))
            return
        stats.see(field.split("[")[0] if field.startswith("grad") else field, a, b)
        if not O.is_close(a, b, atol, rtol):
            out.append("%s: rein %.12g, oracle %.12g, |diff| %.3g > %.3g"
                       % (field, a, b, abs(a - b), atol + rtol * abs(b)))

    num("loss", got.get("loss"), want["loss"])
    gm = got.get("metrics", {})
    if sorted(gm) != sorted(want["metrics"]):
        out.append("metrics: rein prints %s, the oracle defines %s"
                   % (sorted(gm), sorted(want["metrics"])))
    for k, v in want["metrics"].items():
        if k in gm:
            num("metrics." + k, gm[k], v)
    for which in ("logp", "entropy"):
        G = got.get("grad", {}).get(which)
        W = want["grad"][which]
        if G is None:
            out.append("grad.%s: missing in rein's output" % which)
            continue
        if len(G) != len(W):
            out.append("grad.%s: %d groups, oracle %d" % (which, len(G), len(W)))
            continue
        for g, (Gg, Wg) in enumerate(zip(G, W)):
            if len(Gg) != len(Wg):
                out.append("grad.%s[%d]: %d sequences, oracle %d" % (which, g, len(Gg), len(Wg)))
                continue
            for s, (Gs, Ws) in enumerate(zip(Gg, Wg)):
                if len(Gs) != len(Ws):
                    out.append("grad.%s[%d][%d]: %d tokens, oracle %d"
                               % (which, g, s, len(Gs), len(Ws)))
                    continue
                for t, (a, b) in enumerate(zip(Gs, Ws)):
                    num("grad.%s[group %d][seq %d][token %d]" % (which, g, s, t), a, b)
    return out


def run_rein(rein, path, batch_file, params, micro, backend="interp"):
    cmd = [rein, "eval", path, "--batch", batch_file, "--backend", backend]
    for k, v in sorted(params.items()):
        cmd += ["--set", "%s=%r" % (k, v)]
    if micro:
        cmd += ["--micro-groups", "1"]
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                       timeout=60)
    if p.returncode != 0:
        raise Mismatch("rein exited with status %d: %s" % (p.returncode, p.stderr.strip()[:2000]))
    try:
        return parse_nums(json.loads(p.stdout)), cmd
    except (ValueError, KeyError) as e:
        raise Mismatch("rein printed invalid JSON (%s): %s" % (e, p.stdout[:500]))


def coverage(batches, name):
    """Facts about the generated data that the comparison relies on; a missing one is a
    generator problem, reported as an error (the test would be weaker than it claims)."""
    seen = set()
    for _, b in batches:
        P = O.Padded(b)
        A = O.adv_mean_baseline(P.reward, P.group, P.n_groups)
        for i, (g, j) in enumerate(P.index):
            n = int(P.lengths[i])
            grp = b["groups"][g]
            if n == 0:
                seen.add("empty sequence")
            if len(grp) == 1:
                seen.add("one-sequence group")
            if len(grp) > 1 and all(s["reward"] == grp[0]["reward"] for s in grp):
                seen.add("all-equal group")
            if grp[0]["reward"] not in (0.0, 1.0) and len(grp) > 1 and float(A[i]) != 0:
                seen.add("continuous rewards")
            if set(s["reward"] for s in grp) == {0.0, 1.0}:
                seen.add("binary rewards")
            if name == "gspo":
                if n == 0:
                    continue
                lr = float((P.logp[i, :n] - P.old_logp[i, :n]).mean())
                region = ("below" if lr < math.log(1 - 3e-4)
                          else "above" if lr > math.log(1 + 4e-4) else "inside")
                sign = "A>0" if A[i] > 0 else "A<0" if A[i] < 0 else None
                if sign:
                    seen.add("seq ratio %s band, %s" % (region, sign))
                continue
            for t in range(n):
                rho = math.exp(float(P.logp[i, t] - P.old_logp[i, t]))
                region = ("<=0.4" if rho <= 0.4 else "(0.4,0.8)" if rho < 0.8 else
                          "[0.8,1.2]" if rho <= 1.2 else "(1.2,3)" if rho < 3 else ">=3")
                sign = "A>0" if A[i] > 0 else "A<0" if A[i] < 0 else "A=0"
                seen.add("rho %s, %s" % (region, sign))
    need = {"empty sequence", "one-sequence group", "all-equal group", "continuous rewards",
            "binary rewards"}
    if name == "gspo":
        need |= {"seq ratio %s band, %s" % (r, s)
                 for r in ("below", "inside", "above") for s in ("A>0", "A<0")}
    else:
        need |= {"rho %s, %s" % (r, s) for r in ("<=0.4", "(0.4,0.8)", "[0.8,1.2]", "(1.2,3)",
                                                  ">=3") for s in ("A>0", "A<0")}
        need.add("rho [0.8,1.2], A=0")
    return sorted(need - seen)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rein", required=True, help="path to the rein binary")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--batches", type=int, default=6, help="random batches per objective (>= 4)")
    ap.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                    help="an extra configuration for every objective that has these params")
    ap.add_argument("--only", nargs="*", help="objectives to test (default: all)")
    ap.add_argument("--atol", type=float, default=1e-6)
    ap.add_argument("--rtol", type=float, default=1e-6)
    ap.add_argument("--backend", default="interp", help="rein eval --backend (default interp; "
                    "a float32 backend needs looser --atol/--rtol)")
    ap.add_argument("--no-micro", action="store_true", help="skip the --micro-groups 1 runs")
    ap.add_argument("--out-dir", default=None, help="where batch files are written "
                    "(default /tmp/rein-oracle-SEED)")
    ap.add_argument("--max-report", type=int, default=20, help="mismatches printed per objective")
    args = ap.parse_args()

    if args.batches < 4:
        ap.error("--batches must be at least 4")
    rein = os.path.abspath(args.rein)
    if not os.access(rein, os.X_OK):
        print("run_oracle: %s is not an executable" % rein, file=sys.stderr)
        return 2
    names = args.only or list(O.OBJECTIVES)
    for n in names:
        if n not in O.OBJECTIVES:
            print("run_oracle: unknown objective %s (known: %s)"
                  % (n, ", ".join(O.OBJECTIVES)), file=sys.stderr)
            return 2
    user = {}
    for s in args.set:
        if "=" not in s:
            ap.error("--set wants NAME=VALUE, got %r" % s)
        k, v = s.split("=", 1)
        user[k.strip()] = float(v)
    if user and not any(set(user) & set(O.OBJECTIVES[n][1]) for n in names):
        ap.error("no selected objective has a param among %s" % sorted(user))

    # parameter configurations per objective: defaults, the built-in variant, the user's --set
    configs = {}
    for n in names:
        defaults = O.OBJECTIVES[n][1]
        cfgs = [{}]
        if VARIANTS.get(n):
            cfgs.append(dict(VARIANTS[n]))
        mine = {k: v for k, v in user.items() if k in defaults}
        if mine:
            cfgs.append(mine)
        configs[n] = cfgs
    full = [(n, dict(O.OBJECTIVES[n][1], **c)) for n in names for c in configs[n]]
    rho_b, s_b = bounds_for(full)

    out_dir = args.out_dir or "/tmp/rein-oracle-%d" % args.seed
    os.makedirs(out_dir, exist_ok=True)
    data = {}
    for kind in ("token", "gspo"):
        data[kind] = []
        for k in range(args.batches):
            bseed = args.seed * 1000 + k + (500 if kind == "gspo" else 0)
            b = Gen(bseed, kind, rho_b, s_b).batch(k)
            path = os.path.join(out_dir, "%s-%d.json" % (kind, bseed))
            with open(path, "w") as f:
                json.dump(b, f)
            data[kind].append((bseed, b, path))

    t0 = time.time()
    failed = []
    print("rein %s, seed %d, %d batches per objective, tolerance %g + %g*|oracle|%s"
          % (rein, args.seed, args.batches, args.atol, args.rtol,
             "" if args.no_micro else ", whole batch and --micro-groups 1"))
    for n in names:
        kind = "gspo" if n == "gspo" else "token"
        missing = coverage([(s, b) for s, b, _ in data[kind]], n)
        if missing:
            print("run_oracle: the generated %s batches (seed %d) miss: %s; use more --batches"
                  % (kind, args.seed, ", ".join(missing)), file=sys.stderr)
            return 2
        for cfg in configs[n][1:]:
            if all(O.evaluate(n, b, cfg) == O.evaluate(n, b, {}) for _, b, _ in data[kind]):
                print("run_oracle: --set %s does not change %s's result on any batch, so it "
                      "cannot show that the params are used" % (cfg, n), file=sys.stderr)
                return 2
        path = os.path.join(ROOT, O.OBJECTIVES[n][3])
        st = Stats()
        for cfg in configs[n]:
            for bseed, b, bpath in data[kind]:
                want = O.evaluate(n, b, cfg)
                for micro in ([False] if args.no_micro else [False, True]):
                    st.runs += 1
                    where = ("%s batch seed %d (%s)%s%s"
                             % (n, bseed, bpath, " --micro-groups 1" if micro else "",
                                "".join(" --set %s=%r" % kv for kv in sorted(cfg.items()))))
                    try:
                        got, cmd = run_rein(rein, path, bpath, cfg, micro, args.backend)
                    except (Mismatch, subprocess.TimeoutExpired) as e:
                        st.failures.append("%s: %s" % (where, e))
                        continue
                    for msg in compare(got, want, st, args.atol, args.rtol):
                        st.failures.append("%s: %s" % (where, msg))
        e = st.err
        print("%-17s %2d batches %3d runs  max|err| loss %.2e  metrics %.2e  d/dlogp %.2e  "
              "d/dentropy %.2e  %s"
              % (n, args.batches, st.runs, e["loss"], e["metrics"], e["grad.logp"],
                 e["grad.entropy"], "OK" if not st.failures else
                 "FAIL (%d mismatches)" % len(st.failures)), flush=True)
        for msg in st.failures[:args.max_report]:
            print("  MISMATCH " + msg)
        if len(st.failures) > args.max_report:
            print("  ... %d more" % (len(st.failures) - args.max_report))
        if st.failures:
            failed.append(n)
    print("%.1f s" % (time.time() - t0))
    if failed:
        print("run_oracle: rein disagrees with the oracle on: %s (batch files in %s)"
              % (", ".join(failed), out_dir), file=sys.stderr)
        return 1
    print("run_oracle: all %d objectives agree" % len(names))
    return 0


if __name__ == "__main__":
    sys.exit(main())
