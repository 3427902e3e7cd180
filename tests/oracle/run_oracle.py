#!/usr/bin/python3
"""Differential test: `rein eval` against the float64 PyTorch oracle (torch_objectives.py).

For every objective it generates seeded random ragged batches (language.md section 6), runs

    rein eval FILE --batch B.json --backend B [--set NAME=VALUE ...] [--micro-groups 1]

on every requested backend B (default: interp and cpu) and compares the loss, every metric and
d loss / d logp, d loss / d entropy token by token with the oracle:
|rein - oracle| <= atol + rtol * |oracle|, with atol = rtol = 1e-6 for the float64 interpreter and
1e-5 for the float32 back ends cpu and gpu (language.md section 5).

Usage: /usr/bin/python3 tests/oracle/run_oracle.py --rein build/rein [--seed S] [--batches N]
           [--backend B ...] [--backends B1,B2] [--set NAME=VALUE ...] [--only NAME ...]
           [--jobs J] [--out-dir DIR]
Exit status 0 when everything agrees; 1 on any mismatch (each one named: objective, backend,
batch seed and file, options, field, indices, both values); 2 on a usage or setup error; 77 when
every requested backend was skipped (gpu where rein says "no GPU").
"""

import argparse
import json
import math
import os
import tempfile
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)

import torch_objectives as O  # noqa: E402
import tutorial_objectives as T  # noqa: E402  (adds the tut_ objectives to O.OBJECTIVES)

# One extra configuration per objective with non-default params, so that params really reach
# the program (None: the objective has no params).
VARIANTS = {
    "reinforce": None,
    "grpo": {"eps_low": 0.1, "eps_high": 0.3, "clip_c": 1.5},
    "rec_oneside_nois": {"eps_low": 0.3, "eps_high": 0.1},
    "rec_oneside_is": {"eps_low": 0.3, "eps_high": 0.1},
    "rec_twoside_nois": {"eps_low": 0.3, "eps_high": 0.1},
    "rec_twoside_is": {"eps_low": 0.3, "eps_high": 0.1},
    "rec_ring_nois": {"eps_low": 0.3, "eps_high": 0.1, "eps_low2": 0.5, "eps_high2": 1.5},
    "rec_ring_is": {"eps_low": 0.3, "eps_high": 0.1, "eps_low2": 0.5, "eps_high2": 1.5},
    "rec_oneside_nois_wide": {"eps_low": 0.5, "eps_high": 1.5},
    "rec_oneside_is_wide": {"eps_low": 0.5, "eps_high": 1.5},
    "rec_gspo_nois": {"eps_low": 1e-3, "eps_high": 2e-3},
    "rec_gspo_is": {"eps_low": 1e-3, "eps_high": 2e-3},
    "opmd": {"c": 0.2},
    "opmd_seq": {"tau": 0.5},
    "asymre": {"c": 0.2},
    "red_drop": None,
    "red_weight": {"T": 0.5},
    "ppo_dual_clip": {"eps_low": 0.1, "eps_high": 0.3, "clip_c": 2.0},
    "gspo": {"eps_low": 1e-3, "eps_high": 2e-3},
    "gspo_sg": {"eps_low": 1e-3, "eps_high": 2e-3},
    "cispo": {"eps_low": 0.3, "eps_high": 0.1},
    "cispo_trl": {"eps_max": 2.0},
    "sapo": {"tau_pos": 0.5, "tau_neg": 2.0},
    "gmpo": {"eps_low": 0.2, "eps_high": 0.3},
    "gpg": None,
    "dr_grpo": {"eps_low": 0.1, "eps_high": 0.3, "max_new": 16.0},
    "dapo": {"eps_low": 0.1, "eps_high": 0.3},
    "kl_k1": {"coef": 0.05},
    "kl_k2": {"coef": 0.05},
    "kl_k3": {"coef": 0.05},
    "kl_abs": {"coef": 0.05},
    "entropy_bonus": {"coef": 0.1},
    "ppo_tis": {"eps_low": 0.1, "eps_high": 0.3, "cap": 1.5},
    "ppo_mis": {"eps_low": 0.1, "eps_high": 0.3, "lo": 0.8, "hi": 2.5},
    "sft": None,
    "reinforce_pp": {"beta": 0.5, "eps": 0.3},
    "rloo": {"eps_low": 0.1, "eps_high": 0.3, "clip_c": 2.0},
    "reinforce_pp_baseline": {"eps_low": 0.1, "eps_high": 0.3, "clip_c": 2.0},
    "clip_cov": {"eps_low": 0.1, "eps_high": 0.3, "clip_cov_ratio": 0.15, "clip_cov_lb": 0.3,
                 "clip_cov_ub": 3.0},
    "kl_cov": {"kl_cov_ratio": 0.5, "ppo_kl_coef": 0.5},
    "grpo_delta": {"eps_low": 0.1, "eps_high": 0.3, "delta": 2.5},
    "kl_k3_is": {"coef": 0.05},
    "scan_order_ops": {"gamma": 0.5},
    "ex_rec_ring_nois": {"eps_low": 0.3, "eps_high": 0.1, "eps_low2": 0.5, "eps_high2": 1.5},
    "ex_gspo": {"eps_low": 1e-3, "eps_high": 2e-3},
    "ex_opmd_kl": {"c": 0.05, "kl_coef": 0.1, "ent_coef": 0.01},
}
VARIANTS.update(T.VARIANTS)

# Backends of `rein eval` and their default tolerance (atol = rtol): the interpreter evaluates in
# float64; the compiled back ends in float32, which language.md section 5 allows 1e-5 relative.
BACKENDS = {"interp": 1e-6, "cpu": 1e-5, "gpu": 1e-5}
DEFAULT_BACKENDS = ["interp", "cpu"]

DYADIC = [0.0, 1.0, 0.5, -0.25, 1.5]  # all-equal groups: the group mean is exact in float32
GSM8K = [-0.1, 0.1, 0.9, 1.1]
BATCH_MAX_NEW = 20480  # every generated batch's max_new (tutorial_objectives.py: the same)
MARGIN = 1e-5  # min |log ratio - log boundary| of generated ratios (far above float32 error)
K3_CAP = 10.0  # verl's clamp of the k3 value: generated k3 values stay 1e-3 away from it
K3_MARGIN = 1e-3
EXTREME = 21.5  # |log ratio| of the tokens that exercise the clamps at +-20 (batch 3)
# roll batches: old_logp at most -ROLL_DEPTH, so that a rollout_logp = old_logp - log rho_roll,
# rho_roll >= 1/4 (ROLL_RANGE), is a log-probability too (at most 0, as the batch reader checks)
ROLL_DEPTH = 1.5
GSPO_EXTREME = 10.5  # mean log ratio of the sequences that exercise gspo_sg's clamp at 10


RHO_FIXED = [0.4, 0.8, 1.2, 3.0]  # the REC regions, always told apart
S_FIXED = [1 - 3e-4, 1 + 4e-4]  # GSPO's default band
ROLL_FIXED = [0.5, 2.0, 5.0]  # the default cap, lo and hi of ppo_tis / ppo_mis
RHO_RANGE, S_RANGE, ROLL_RANGE = (0.2, 4.0), (math.exp(-0.5), math.exp(0.5)), (0.25, 8.0)


def intervals(bounds, lo, hi):
    """The intervals of [lo, hi] between consecutive boundaries (ratio space)."""
    pts = [lo] + sorted(b for b in set(bounds) if lo < b < hi) + [hi]
    return list(zip(pts[:-1], pts[1:]))


def region_of(x, bounds):
    """The interval of the sorted boundary list that holds x, as a printable name."""
    bs = sorted(set(bounds))
    k = sum(1 for b in bs if b < x)
    lo = bs[k - 1] if k > 0 else 0.0
    hi = bs[k] if k < len(bs) else float("inf")
    return "(%.6g, %.6g)" % (lo, hi)


def f32(x):
    """The float64 value of the nearest float32: every input is exactly representable in both."""
    return float(np.float32(x))


class Gen:
    """Seeded batch generator.  kind 'token': token ratios spread over [0.2, 4] for the REC /
    PPO / REINFORCE family; kind 'gspo': per-sequence geometric-mean ratios around GSPO's
    narrow band (and far from it); kind 'roll': token batches whose sequences also carry the
    built-in token input rollout_logp, with rollout ratios exp(old_logp - rollout_logp) over [0.25, 8];
    kind 'unclipped': 'token' without batch 3's extreme group (for a surrogate whose ratio nothing
    bounds, where float32 cannot hold the cancellation of +-A*e^21.5).
    bounds: {"rho": token ratio, "s": sequence ratio, "roll": rollout ratio boundaries}."""

    def __init__(self, seed, kind, bounds):
        self.rng = np.random.default_rng(seed)
        self.seed, self.kind = seed, kind
        self.log_rb = [math.log(b) for b in bounds.get("rho", [])]
        self.log_sb = [math.log(b) for b in bounds.get("s", [])]
        self.log_roll = [math.log(b) for b in bounds.get("roll", [])]
        self.rho_regions = intervals(list(bounds.get("rho", [])) + RHO_FIXED, *RHO_RANGE)
        self.s_regions = intervals(list(bounds.get("s", [])) + S_FIXED, *S_RANGE)
        self.roll_regions = intervals(list(bounds.get("roll", [])) + ROLL_FIXED, *ROLL_RANGE)

    def u(self, a, b):
        return float(self.rng.uniform(a, b))

    def near(self, x, bounds):
        return any(abs(x - b) < MARGIN for b in bounds)

    def pair(self, d):
        """(logp, old_logp) float32 values, both <= 0 (roll batches: old_logp <= -ROLL_DEPTH),
        with logp - old_logp close to d."""
        u = self.u(0.02, 4.0) + (ROLL_DEPTH if self.kind == "roll" else 0.0)
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

    def ref(self, lp):
        """A ref_logp for a token with logp lp: |logp - ref| >= MARGIN (abs) and the k3 value
        e^u - u - 1 (u = ref - logp) at least K3_MARGIN away from verl's clamp at 10."""
        while True:
            r = f32(-self.u(0.02, 5.0))
            u = r - lp
            if abs(u) >= MARGIN and abs(math.expm1(u) - u - K3_CAP) >= K3_MARGIN:
                return r

    def roll(self, ob, region=None):
        """A rollout_logp for a token with old_logp ob: log(rho_roll) = ob - roll is 30 % inside
        [0.8, 1.25], else uniform in log over [0.25, 8], or uniform in log inside a forced region;
        MARGIN away from every roll boundary."""
        while True:
            if region is not None:
                d = self.u(math.log(region[0]), math.log(region[1]))
            elif self.rng.random() < 0.3:
                d = self.u(math.log(0.8), math.log(1.25))
            else:
                d = self.u(math.log(0.25), math.log(8.0))
            r = f32(ob - d)
            if not self.near(ob - r, self.log_roll):
                return r

    def gspo_tokens(self, n, region=None):
        """Token log-ratios whose mean (log s) lies at random inside GSPO's default band
        [1 - 3e-4, 1 + 4e-4], near it (+-3e-3) or far (+-0.5), or inside a given region (lo, hi)
        of s."""
        if n == 0:
            return [], []
        while True:
            r = self.rng.random()
            if region is not None:
                target = self.u(math.log(region[0]), math.log(region[1]))
            elif r < 0.35:
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

    def seq(self, reward, n, regions=None, truncated=None, gregion=None, deltas=None,
            roll_regions=None):
        if deltas is not None:  # given log ratios (the clamp tests); None: an ordinary token
            lp, ob = [], []
            for d in deltas:
                a, b = self.pair(d) if d is not None else [x[0] for x in self.tokens(1)]
                lp.append(a)
                ob.append(b)
        elif self.kind == "gspo":
            lp, ob = self.gspo_tokens(n, gregion)
        else:
            lp, ob = self.tokens(n, regions)
        out = {
            "reward": reward,
            "logp": lp,
            "old_logp": ob,
            "ref_logp": [self.ref(a) for a in lp],
            "entropy": [f32(self.u(0.0, 4.0)) for _ in lp],
            "truncated": bool(self.rng.random() < 0.25) if truncated is None else truncated,
            "lag": int(self.rng.integers(0, 5)),
        }
        if self.kind == "roll":
            out["rollout_logp"] = [
                self.roll(b, roll_regions[t % len(roll_regions)] if roll_regions else None)
                for t, b in enumerate(ob)]
        return out

    def extreme_group(self):
        """Batch 3: a binary group whose tokens go past the clamps.  token / roll kinds: log
        ratios of +-21.5 (past verl's clamp(Delta, -20, 20)) and, for roll, a rollout ratio past
        the same clamp; gspo kind: sequences whose mean log ratio is 10.5 (past gspo_sg's 10)."""
        if self.kind == "gspo":
            seqs = []
            for r in (1.0, 0.0):
                noise = self.rng.uniform(-0.3, 0.3, size=4)
                seqs.append(self.seq(r, 4, deltas=[float(x) for x in GSPO_EXTREME + noise
                                                   - noise.mean()]))
            return seqs
        seqs = []
        for r in (1.0, 0.0):
            s = self.seq(r, 3, deltas=[EXTREME, -EXTREME, None])  # None: an ordinary token
            if self.kind == "roll":
                ob = s["old_logp"]
                # past the clamp both ways, each on the token whose old_logp leaves room for
                # a rollout_logp <= 0 (token 0's is below -EXTREME)
                s["rollout_logp"][0] = f32(ob[0] + EXTREME)
                s["rollout_logp"][1] = f32(ob[1] - EXTREME)
            seqs.append(s)
        return seqs

    def ntok(self):
        return 0 if self.rng.random() < 0.15 else int(self.rng.integers(1, 10))

    def batch(self, index):
        groups = []
        if index == 0:
            # fixed structure: a one-sequence group, an all-equal group with an empty sequence,
            # a binary group whose tokens cycle through every ratio region between the
            # boundaries of every configuration (and rollout ratio region; GSPO: two sequences,
            # A > 0 and A < 0, per sequence-ratio region), a continuous group
            regions, rr = self.rho_regions, self.roll_regions
            nr = max(len(regions), len(rr))
            groups.append([self.seq(f32(self.u(-1, 2)), nr, regions, roll_regions=rr)])
            v = DYADIC[self.rng.integers(1, len(DYADIC))]
            groups.append([self.seq(v, 4), self.seq(v, 0), self.seq(v, 6)])
            if self.kind == "gspo":
                groups.append([self.seq(r, int(self.rng.integers(1, 10)), gregion=reg)
                               for reg in self.s_regions for r in (1.0, 0.0)])
            else:
                groups.append([self.seq(r, nr, regions[k:] + regions[:k],
                                        roll_regions=rr[k:] + rr[:k])
                               for k, r in enumerate((1.0, 0.0, 1.0, 0.0, 1.0, 0.0))])
            groups.append([self.seq(r, self.ntok())
                           for r in self.rewards_ok("continuous", 4)])
        else:
            for _ in range(int(self.rng.integers(1, 6))):
                n = int(self.rng.integers(1, 7))
                kind = ["binary", "continuous", "gsm8k", "equal"][self.rng.integers(0, 4)]
                grp = [self.seq(r, self.ntok()) for r in self.rewards_ok(kind, n)]
                groups.append(grp)
        if index == 3 and self.kind != "unclipped":
            groups.append(self.extreme_group())
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
        # the trainer constant max_new (the sampling limit; docs/language.md), as the trainer
        # would supply it: objectives that read it (tut_dapo_overlong) default to the same value
        return {"seed": self.seed, "step": 0, "max_new": BATCH_MAX_NEW, "groups": groups}

    def rewards_ok(self, kind, n):
        for _ in range(1000):
            rs = self.rewards(kind, n)
            if self.group_ok(rs):
                return rs
        return [DYADIC[1]] * n


def bounds_for(configs):
    """The union over every (objective, params) that will run of the boundaries of
    torch_objectives.boundaries: {"rho": [...], "s": [...], "roll": [...]}."""
    out = {"rho": set(), "s": set(), "roll": set()}
    for name, p in configs:
        for k, v in O.boundaries(name, p).items():
            out[k].update(v)
    return {k: sorted(v) for k, v in out.items()}


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
    """Per (objective, backend): runs, failures, and the largest error of each field, as
    |rein - oracle| / max(1, |oracle|) (absolute below 1, relative above: comparable with the
    tolerance when atol = rtol)."""

    def __init__(self):
        self.runs = 0
        self.err = {"loss": 0.0, "metrics": 0.0, "grad.logp": 0.0, "grad.entropy": 0.0}
        self.failures = []

    def see(self, field, a, b):
        if math.isinf(b) and a == b:
            return
        d = abs(a - b) / max(1.0, abs(b))
        if not math.isnan(d):
            key = field if field in self.err else "metrics"
            self.err[key] = max(self.err[key], d)

    def merge(self, other):
        self.runs += other.runs
        self.failures += other.failures
        for k, v in other.err.items():
            self.err[k] = max(self.err[k], v)


def compare(got, want, stats, atol, rtol):
    """Returns mismatch descriptions (field, indices, rein value, oracle value)."""
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
    gs, ws = got.get("state"), want.get("state")
    if (gs is None) != (ws is None) or (ws is not None and sorted(gs) != sorted(ws)):
        out.append("state: rein prints %s, the oracle defines %s"
                   % (sorted(gs or {}), sorted(ws or {})))
    elif ws is not None:
        for k, v in ws.items():
            num("state." + k, gs[k], v)
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


class NoGPU(Exception):
    pass


def run_rein(rein, path, batch_file, params, micro, backend="interp"):
    cmd = [rein, "eval", path, "--batch", batch_file, "--backend", backend]
    for k, v in sorted(params.items()):
        cmd += ["--set", "%s=%r" % (k, v)]
    if micro:
        cmd += ["--micro-groups", "1"]
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                       timeout=120)
    if p.returncode != 0:
        if backend == "gpu" and "no GPU" in p.stderr:
            raise NoGPU(p.stderr.strip().splitlines()[-1] if p.stderr.strip() else "no GPU")
        raise Mismatch("rein exited with status %d: %s" % (p.returncode, p.stderr.strip()[:2000]))
    try:
        return parse_nums(json.loads(p.stdout)), cmd
    except (ValueError, KeyError) as e:
        raise Mismatch("rein printed invalid JSON (%s): %s" % (e, p.stdout[:500]))


KL_NAMES = ("kl_k1", "kl_k2", "kl_k3", "kl_abs", "ex_opmd_kl", "kl_k3_is")
CLAMP_NAMES = ("ppo_dual_clip", "dr_grpo", "dapo", "ppo_tis", "ppo_mis", "rloo",
               "reinforce_pp_baseline", "grpo_delta", "sapo")


def coverage(batches, name, bounds):
    """Facts about the generated data that the comparison relies on; a missing one is a
    generator problem, reported as an error (the test would be weaker than it claims).
    bounds: bounds_for() of every configuration that runs; every ratio region between them
    (token ratios in [0.2, 4]; GSPO: sequence ratios in [e^-0.5, e^0.5]) must hold data with
    A > 0 and with A < 0."""
    kind = O.BATCH_KIND[name]
    rho_b = sorted(set(bounds["rho"]) | set(RHO_FIXED))
    s_b = sorted(set(bounds["s"]) | set(S_FIXED))
    roll_b = sorted(set(bounds["roll"]) | set(ROLL_FIXED))
    seen = set()
    for _, b in batches:
        P = O.Padded(b)
        A = O.adv_mean_baseline(P.reward, P.group, P.n_groups)
        for i, (g, j) in enumerate(P.index):
            n = int(P.lengths[i])
            grp = b["groups"][g]
            sign = "A>0" if A[i] > 0 else "A<0" if A[i] < 0 else "A=0"
            if n == 0:
                seen.add("empty sequence")
            if len(grp) == 1:
                seen.add("one-sequence group")
                if n > 0 and grp[0]["reward"] != 0:  # verl's A = r there, not 0
                    seen.add("one-sequence group, r != 0, with tokens")
            if len(grp) > 1 and all(s["reward"] == grp[0]["reward"] for s in grp):
                seen.add("all-equal group")
            if grp[0]["reward"] not in (0.0, 1.0) and len(grp) > 1 and float(A[i]) != 0:
                seen.add("continuous rewards")
            if set(s["reward"] for s in grp) == {0.0, 1.0}:
                seen.add("binary rewards")
            if kind == "gspo":
                if n == 0:
                    continue
                lr = float((P.logp[i, :n] - P.old_logp[i, :n]).mean())
                seen.add("seq ratio %s, %s" % (region_of(math.exp(lr), s_b), sign))
                if lr > 10:
                    seen.add("seq log ratio > 10, %s" % sign)
                continue
            for t in range(n):
                d = float(P.logp[i, t] - P.old_logp[i, t])
                seen.add("rho %s, %s" % (region_of(math.exp(d), rho_b), sign))
                if abs(d) > 20:
                    seen.add("|log rho| > 20, %s" % sign)
                u = float(P.ref_logp[i, t] - P.logp[i, t])
                seen.add("logp %s ref_logp" % (">" if u < 0 else "<"))
                seen.add("k3 %s 10" % (">" if math.expm1(u) - u > 10 else "<"))
                if kind == "roll":
                    lr = float(P.old_logp[i, t] - P.rollout_logp[i, t])
                    seen.add("roll ratio %s" % region_of(math.exp(min(lr, 20.0)), roll_b))
                    if abs(lr) > 20:
                        seen.add("|log roll ratio| > 20")
    need = {"empty sequence", "one-sequence group", "one-sequence group, r != 0, with tokens",
            "all-equal group", "continuous rewards", "binary rewards"}
    if kind == "gspo":
        need |= {"seq ratio %s, %s" % (region_of(math.sqrt(a * b), s_b), sg)
                 for a, b in intervals(s_b, *S_RANGE) for sg in ("A>0", "A<0")}
        if name == "gspo_sg":
            need |= {"seq log ratio > 10, A>0", "seq log ratio > 10, A<0"}
    else:
        need |= {"rho %s, %s" % (region_of(math.sqrt(a * b), rho_b), sg)
                 for a, b in intervals(rho_b, *RHO_RANGE) for sg in ("A>0", "A<0")}
        need.add("rho %s, A=0" % region_of(1.0, rho_b))
        if name in KL_NAMES:
            need |= {"logp > ref_logp", "logp < ref_logp", "k3 > 10", "k3 < 10"}
        if name in CLAMP_NAMES:
            need |= {"|log rho| > 20, A>0", "|log rho| > 20, A<0"}
        if kind == "roll":
            need |= {"roll ratio %s" % region_of(math.sqrt(a * b), roll_b)
                     for a, b in intervals(roll_b, *ROLL_RANGE)}
            need.add("|log roll ratio| > 20")
    return sorted(need - seen)


def parse_backends(args, ap):
    """--backend B (repeatable) and --backends B1,B2 together; default interp and cpu."""
    names = list(args.backend or [])
    for x in args.backends or []:
        names += [y.strip() for y in x.split(",") if y.strip()]
    if not names:
        names = list(DEFAULT_BACKENDS)
    out = []
    for n in names:
        if n not in BACKENDS:
            ap.error("unknown backend %r (known: %s)" % (n, ", ".join(BACKENDS)))
        if n not in out:
            out.append(n)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rein", required=True, help="path to the rein binary")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--batches", type=int, default=4,
                    help="random batches per objective and batch kind (>= 4, default 4)")
    ap.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                    help="an extra configuration for every objective that has these params")
    ap.add_argument("--only", nargs="*", help="objectives to test (default: all)")
    ap.add_argument("--backend", action="append", metavar="B",
                    help="a rein eval --backend to compare (interp, cpu, gpu); repeatable")
    ap.add_argument("--backends", action="append", metavar="B1,B2",
                    help="comma-separated backends (default: interp,cpu); gpu is skipped "
                    "cleanly where rein says 'no GPU'")
    ap.add_argument("--atol", type=float, default=None,
                    help="absolute tolerance for every backend (default: 1e-6 for interp, "
                    "1e-5 for cpu and gpu)")
    ap.add_argument("--rtol", type=float, default=None, help="relative tolerance, likewise")
    ap.add_argument("--no-micro", action="store_true", help="skip the --micro-groups 1 runs")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1,
                    help="rein processes run at once (default: the number of CPUs)")
    ap.add_argument("--out-dir", default=None, help="where batch files are written "
                    "(default: a new temporary folder of this run, removed at the end)")
    ap.add_argument("--max-report", type=int, default=20, help="mismatches printed per objective")
    args = ap.parse_args()

    if args.batches < 4:
        ap.error("--batches must be at least 4")
    backends = parse_backends(args, ap)
    tol = {b: (BACKENDS[b] if args.atol is None else args.atol,
               BACKENDS[b] if args.rtol is None else args.rtol) for b in backends}
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
    torch.set_num_threads(1)

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
    bounds = bounds_for(full)

    # a folder of this run's own: two runs at once (ctest -j, another build tree) must not
    # overwrite each other's batch files
    own = None
    if args.out_dir:
        out_dir = args.out_dir
        os.makedirs(out_dir, exist_ok=True)
    else:
        own = tempfile.TemporaryDirectory(prefix="rein-oracle-%d-" % args.seed)
        out_dir = own.name
    data = {}
    kinds = sorted({O.BATCH_KIND[n] for n in names})
    for kind in kinds:
        data[kind] = []
        for k in range(args.batches):
            bseed = args.seed * 1000 + k + {"token": 0, "unclipped": 300, "gspo": 500,
                                          "roll": 800}[kind]
            b = Gen(bseed, kind, bounds).batch(k)
            path = os.path.join(out_dir, "%s-%d.json" % (kind, bseed))
            with open(path, "w") as f:
                json.dump(b, f)
            data[kind].append((bseed, b, path))

    t0 = time.time()
    print("rein %s, seed %d, %d batches per objective, backends %s (tolerance %s)%s"
          % (rein, args.seed, args.batches, ", ".join(backends),
             ", ".join("%s %g + %g*|oracle|" % (b, tol[b][0], tol[b][1]) for b in backends),
             "" if args.no_micro else ", whole batch and --micro-groups 1"))

    # The gpu backend is skipped, cleanly, where rein says "no GPU" (only when it was asked for).
    skipped = {}
    if "gpu" in backends:
        n0 = names[0]
        _, _, bpath0 = data[O.BATCH_KIND[n0]][0]
        try:
            run_rein(rein, os.path.join(ROOT, O.OBJECTIVES[n0][3]), bpath0, {}, False, "gpu")
        except NoGPU as e:
            skipped["gpu"] = str(e)
            print("gpu: SKIP (%s)" % e)
        except Mismatch:
            pass  # reported by the comparison below
    live = [b for b in backends if b not in skipped]

    # Setup checks first (exit 2), then every rein run in a pool of --jobs processes.
    plan = []
    for n in names:
        kind = O.BATCH_KIND[n]
        missing = coverage([(s, b) for s, b, _ in data[kind]], n, bounds)
        if missing:
            print("run_oracle: the generated %s batches (seed %d) miss, for %s: %s; use more "
                  "--batches" % (kind, args.seed, n, ", ".join(missing)), file=sys.stderr)
            return 2
        base = [O.evaluate(n, b, {}) for _, b, _ in data[kind]]
        for cfg in configs[n][1:]:
            if all(O.evaluate(n, b, cfg) == w for (_, b, _), w in zip(data[kind], base)):
                print("run_oracle: --set %s does not change %s's result on any batch, so it "
                      "cannot show that the params are used" % (cfg, n), file=sys.stderr)
                return 2
        plan.append((n, kind, base))

    pool = ThreadPoolExecutor(max_workers=max(1, args.jobs))

    def job(n, backend, cfg, bseed, bpath, micro, want):
        st = Stats()
        st.runs = 1
        where = ("%s [%s] batch seed %d (%s)%s%s"
                 % (n, backend, bseed, bpath, " --micro-groups 1" if micro else "",
                    "".join(" --set %s=%r" % kv for kv in sorted(cfg.items()))))
        try:
            got, _ = run_rein(rein, os.path.join(ROOT, O.OBJECTIVES[n][3]), bpath, cfg, micro,
                              backend)
        except NoGPU as e:
            st.failures.append("%s: rein says %s, but an earlier gpu run worked" % (where, e))
            return st
        except (Mismatch, subprocess.TimeoutExpired) as e:
            st.failures.append("%s: %s" % (where, e))
            return st
        for msg in compare(got, want, st, *tol[backend]):
            st.failures.append("%s: %s" % (where, msg))
        return st

    futures = []
    for n, kind, base in plan:
        per_backend = {b: [] for b in live}
        for ci, cfg in enumerate(configs[n]):
            for bi, (bseed, b, bpath) in enumerate(data[kind]):
                want = base[bi] if ci == 0 else O.evaluate(n, b, cfg)
                for backend in live:
                    for micro in ([False] if args.no_micro else [False, True]):
                        per_backend[backend].append(pool.submit(
                            job, n, backend, cfg, bseed, bpath, micro, want))
        futures.append((n, per_backend))

    failed = []
    for n, per_backend in futures:
        for backend, futs in per_backend.items():
            st = Stats()
            for f in futs:
                st.merge(f.result())
            e = st.err
            print("%-21s %-6s %2d batches %3d runs  max err loss %.1e  metrics %.1e  "
                  "d/dlogp %.1e  d/dentropy %.1e  %s"
                  % (n, backend, args.batches, st.runs, e["loss"], e["metrics"], e["grad.logp"],
                     e["grad.entropy"], "OK" if not st.failures else
                     "FAIL (%d mismatches)" % len(st.failures)), flush=True)
            for msg in st.failures[:args.max_report]:
                print("  MISMATCH " + msg)
            if len(st.failures) > args.max_report:
                print("  ... %d more" % (len(st.failures) - args.max_report))
            if st.failures:
                failed.append("%s [%s]" % (n, backend))
    pool.shutdown()
    print("%.1f s" % (time.time() - t0))
    if failed:
        print("run_oracle: rein disagrees with the oracle on: %s (batch files in %s)"
              % (", ".join(failed), out_dir), file=sys.stderr)
        return 1
    if not live:
        print("run_oracle: SKIP: no requested backend is available (%s)"
              % "; ".join("%s: %s" % kv for kv in skipped.items()))
        return 77
    print("run_oracle: all %d objectives agree on %s%s"
          % (len(names), ", ".join(live),
             "".join(" (%s skipped: %s)" % kv for kv in skipped.items())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
