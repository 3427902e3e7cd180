#!/usr/bin/python3
"""Claim C1 of the paper (group-relative REINFORCE is the gradient of a pairwise consistency loss,
for any sample set), checked numerically through `rein eval` on a tabular softmax policy.

    /usr/bin/python3 tests/claims/test_c1_pairwise.py --rein build/rein [--seeds N] [-v]

The claim (Yao et al. 2025, Sec. 2.2; docs/algorithms.md, "The paper's algorithms"): with
a_i = r_i − τ·(log π_θ(y_i|x) − log π_θt(y_i|x)) and, per group of K responses to a prompt x,

    L̂(θ) = (1/K²)·Σ_{i<j} (a_i − a_j)²,

    ∇L̂ at θ = θ_t  =  −(2τ/K)·Σ_i (r_i − r̄)·∇log π_θt(y_i|x)

whatever the responses are: drawn from π_θt or not, duplicated, with all-equal rewards, one
response (0). L̂ is tests/claims/pairwise_consistency.rein, written from the formula with the
pairwise sum as group sums, Σ_{i<j}(a_i − a_j)² = K·Σ_i a_i² − (Σ_i a_i)², summed over groups.

The policy: a table of logits θ[(x, prefix)] over a vocabulary of V tokens, for X contexts and
every prefix shorter than LMAX tokens; a response is 0..LMAX tokens, log π(y|x) the sum of
log softmax(θ[(x, y_<t)])[y_t]. The batch file holds logp = log π_θ and old_logp = log π_θt per
token (float32 values, as the batch format requires). `rein eval` gives d loss / d logp per
token; this file chains it through the table (d log π(a | row) / d θ[row] = e_a − softmax(θ[row]))
in float64 numpy and compares with the right-hand side, computed here from the table alone.

Checks, on seeded random batches (several K per batch, τ from 0.05 to 3):
 1. at θ = θ_t (logp = old_logp exactly), the chained gradient of the surrogate equals
    −(2τ/K)·Σ(r_i − r̄)·∇log π(y_i) summed over groups, to float64 rounding (1e-11 relative to
    the largest entry);
 2. the same gradient against std:reinforce's through `rein eval`: std:reinforce is
    −(1/N)·Σ_{i,t} (r_i − r̄)·logp_{i,t} (token-mean, N the batch's tokens), so per token
        d L̂ / d logp_{i,t} = (2τ·N / K_g) · d L_reinforce / d logp_{i,t}
    for a token of a response in a group of K_g; with one-token responses and G groups of equal
    K (N = G·K) the constant is 2τ·G for the whole gradient, checked on its own batches;
 3. the loss value equals (1/K²)·Σ_{i<j}(a_i − a_j)² by a double loop, here and at θ ≠ θ_t;
 4. at θ ≠ θ_t the surrogate's gradient is the general −(2τ/K)·Σ(a_i − ā)·∇log π_θ(y_i) and
    differs from the REINFORCE expression by more than 1e-3 relative (so check 1 can fail);
 5. wrong surrogates fail check 1: τ dropped from a_i, ordered pairs (i ≠ j, twice L̂), the
    mean over groups instead of the sum, 1/K instead of 1/K².
The cpu backend (float32 token loops) is run on the first batches at a tolerance of 1e-5.

Exit status: 0 all passed, 1 a check failed, 2 usage or setup error, 77 numpy missing (skip).
"""
import argparse
import itertools
import json
import os
import subprocess
import sys
import tempfile

try:
    import numpy as np
except ImportError:
    print("SKIP: numpy is not importable by", sys.executable)
    sys.exit(77)

HERE = os.path.dirname(os.path.abspath(__file__))
SURROGATE = os.path.join(HERE, "pairwise_consistency.rein")

V, X, LMAX = 3, 4, 3          # vocabulary, contexts, longest response
TAUS = [0.05, 0.25, 0.7, 1.0, 3.0]
FAILS = []
SEEN = set()                  # sample-set and reward kinds drawn, for the coverage check


def check(cond, what, verbose=True):
    if verbose or not cond:
        print(("ok    " if cond else "FAIL  ") + what, flush=True)
    if not cond:
        FAILS.append(what)
    return cond


# ---- the tabular policy ----------------------------------------------------------------------

def all_rows():
    """Row index of every (context, prefix) with a prefix shorter than LMAX."""
    rows = [(x, p) for x in range(X) for n in range(LMAX) for p in itertools.product(range(V), repeat=n)]
    return {r: k for k, r in enumerate(rows)}


ROWS = all_rows()


def softmax(theta):
    z = np.exp(theta - theta.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


def log_softmax(theta):
    m = theta.max(axis=1, keepdims=True)
    return theta - m - np.log(np.exp(theta - m).sum(axis=1, keepdims=True))


def token_rows(x, y):
    return [ROWS[(x, tuple(y[:t]))] for t in range(len(y))]


def grad_logpi(theta, x, y):
    """∇_θ log π_θ(y | x): Σ_t (e_{y_t} − softmax(θ[row_t])) in row_t."""
    g = np.zeros_like(theta)
    p = softmax(theta)
    for t, r in enumerate(token_rows(x, y)):
        g[r] -= p[r]
        g[r, y[t]] += 1.0
    return g


def chain(theta, groups, dlogp):
    """∇_θ of a loss from its d loss / d logp per token (rein's answer)."""
    g = np.zeros_like(theta)
    p = softmax(theta)
    for (x, resp, _), dg in zip(groups, dlogp):
        for y, dy in zip(resp, dg):
            if len(dy) != len(y):
                raise SystemExit(f"rein returned {len(dy)} gradients for a {len(y)}-token response")
            for t, r in enumerate(token_rows(x, y)):
                g[r] -= dy[t] * p[r]
                g[r, y[t]] += dy[t]
    return g


# ---- sample sets -----------------------------------------------------------------------------

def f32(v):
    return float(np.float32(v))


def sample_group(rng, theta_t, K, one_token):
    """K responses to a random context, from one of several distributions, with rewards."""
    x = int(rng.integers(X))
    p = softmax(theta_t)
    kind = rng.choice(["on_policy", "uniform", "duplicates", "least_likely", "mixed"])

    def length():
        return 1 if one_token else int(rng.integers(0 if kind == "mixed" else 1, LMAX + 1))

    def draw(how):
        y, n = [], length()
        for _ in range(n):
            r = ROWS[(x, tuple(y))]
            if how == "on_policy":
                y.append(int(rng.choice(V, p=p[r])))
            elif how == "least_likely":
                y.append(int(np.argmin(p[r])))
            else:
                y.append(int(rng.integers(V)))
        return tuple(y)

    SEEN.add(str(kind))
    if kind == "duplicates":
        one = draw("uniform")
        resp = [one] * K
    elif kind == "mixed":
        resp = [draw(rng.choice(["on_policy", "uniform", "least_likely"])) for _ in range(K)]
    else:
        resp = [draw(kind) for _ in range(K)]
    rkind = rng.choice(["binary", "continuous", "equal"])
    SEEN.add(f"rewards {rkind}" if K > 1 else "K = 1")
    if rkind == "binary":
        rew = [f32(v) for v in rng.integers(0, 2, K)]
    elif rkind == "continuous":
        rew = [f32(v) for v in rng.uniform(-1.0, 2.0, K)]
    else:
        rew = [f32(rng.uniform(-1.0, 2.0))] * K
    return (x, resp, rew)


def batch_json(groups, theta, theta_t):
    lp, lpt = log_softmax(theta), log_softmax(theta_t)
    out = []
    for x, resp, rew in groups:
        seqs = []
        for y, r in zip(resp, rew):
            rows = token_rows(x, y)
            seqs.append({"reward": r,
                         "logp": [f32(lp[rr, a]) for rr, a in zip(rows, y)],
                         "old_logp": [f32(lpt[rr, a]) for rr, a in zip(rows, y)]})
        out.append(seqs)
    return {"groups": out}


# ---- independent right-hand sides -----------------------------------------------------------

def reinforce_rhs(theta, groups, tau):
    """Σ_g −(2τ/K)·Σ_i (r_i − r̄)·∇log π_θ(y_i), float64."""
    g = np.zeros_like(theta)
    for x, resp, rew in groups:
        K, rbar = len(resp), sum(rew) / len(rew)
        for y, r in zip(resp, rew):
            g += -(2.0 * tau / K) * (r - rbar) * grad_logpi(theta, x, y)
    return g


def seq_a(batch, groups, tau):
    """a_i = r_i − τ·(Σ_t logp − Σ_t old_logp) from the batch file's (float32) values."""
    out = []
    for seqs in batch["groups"]:
        out.append([s["reward"] - tau * (sum(s["logp"]) - sum(s["old_logp"])) for s in seqs])
    return out


def pairwise_loss(a):
    tot = 0.0
    for ag in a:
        K = len(ag)
        tot += sum((ag[i] - ag[j]) ** 2 for i in range(K) for j in range(i + 1, K)) / K ** 2
    return tot


# ---- running rein ----------------------------------------------------------------------------

class Rein:
    def __init__(self, exe, work):
        self.exe, self.work, self.n = exe, work, 0

    def eval(self, program, batch, tau=None, backend="interp"):
        self.n += 1
        path = os.path.join(self.work, f"batch-{self.n}.json")
        with open(path, "w") as f:
            json.dump(batch, f)
        cmd = [self.exe, "eval", program, "--batch", path, "--backend", backend]
        if tau is not None:
            cmd += ["--set", f"tau={tau!r}"]
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        if p.returncode != 0:
            print("command failed:", " ".join(cmd), "\n", p.stdout[-2000:], p.stderr[-2000:], flush=True)
            raise SystemExit(1)
        return json.loads(p.stdout)


def close(got, want, rel):
    """max |got − want| within rel · max(1, max |want|); returns (ok, error, scale)."""
    scale = max(1.0, float(np.max(np.abs(want))) if np.size(want) else 1.0)
    err = float(np.max(np.abs(np.asarray(got) - np.asarray(want)))) if np.size(want) else 0.0
    return err <= rel * scale, err, scale


# ---- the checks ------------------------------------------------------------------------------

def make_batch(rng, theta_t, one_token=False, equal_k=None):
    G = int(rng.integers(3, 8))
    groups = [sample_group(rng, theta_t, equal_k or int(rng.choice([1, 2, 3, 5, 8])), one_token)
              for _ in range(G)]
    # and one group that moves the policy for sure (the others may all be K = 1, duplicates or
    # all-equal rewards, whose gradient is 0): distinct rewards, at least one token
    x, resp, _ = sample_group(rng, theta_t, equal_k or 4, True)
    rew = [f32(v) for v in rng.uniform(-1.0, 2.0, len(resp))]
    groups.insert(int(rng.integers(len(groups) + 1)), (x, resp, rew))
    return groups


def surrogate_grad(theta, groups, tau, a_values):
    """Σ_g −(2τ/K)·Σ_i (a_i − ā)·∇log π_θ(y_i): the surrogate's gradient at any θ."""
    g = np.zeros_like(theta)
    for (x, resp, _), ag in zip(groups, a_values):
        K, abar = len(resp), sum(ag) / len(ag)
        for y, ai in zip(resp, ag):
            g += -(2.0 * tau / K) * (ai - abar) * grad_logpi(theta, x, y)
    return g


def run_case(rein, seed, tau, verbose, backend="interp", tol=1e-11):
    rng = np.random.default_rng(seed)
    theta_t = rng.normal(0.0, 1.5, (len(ROWS), V))
    groups = make_batch(rng, theta_t)
    tag = f"seed {seed}, tau {tau}, {backend}, K {[len(g[1]) for g in groups]}"
    kinds = []

    # at θ = θ_t
    b = batch_json(groups, theta_t, theta_t)
    res = rein.eval(SURROGATE, b, tau, backend)
    got = chain(theta_t, groups, res["grad"]["logp"])
    want = reinforce_rhs(theta_t, groups, tau)
    ok, err, scale = close(got, want, tol)
    check(ok and np.max(np.abs(want)) > 0, f"{tag}: at theta_t, grad of L-hat = -(2tau/K) sum (r_i - rbar) "
          f"grad log pi(y_i) (max error {err:.2e}, scale {scale:.2f})", verbose)
    lw = pairwise_loss(seq_a(b, groups, tau))
    check(abs(res["loss"] - lw) <= tol * max(1.0, abs(lw)),
          f"{tag}: at theta_t the loss is (1/K^2) sum_(i<j) (r_i - r_j)^2 = {lw:.6g} (rein {res['loss']:.6g})", verbose)

    # against std:reinforce, token by token and chained
    rf = rein.eval("std:reinforce", b, None, backend)
    N = sum(len(y) for _, resp, _ in groups for y in resp)
    scaled = [[[(2.0 * tau * N / len(resp)) * d for d in dy] for dy in dg]
              for (_, resp, _), dg in zip(groups, rf["grad"]["logp"])]
    flat_s = np.array([d for dg in res["grad"]["logp"] for dy in dg for d in dy])
    flat_r = np.array([d for dg in scaled for dy in dg for d in dy])
    ok, err, _ = close(flat_s, flat_r, tol)
    check(ok, f"{tag}: d L-hat/d logp = (2 tau N / K_g) * d reinforce/d logp per token, N = {N} "
          f"(max error {err:.2e})", verbose)
    ok, err, _ = close(chain(theta_t, groups, scaled), want, tol)
    check(ok, f"{tag}: std:reinforce's gradient, scaled and chained, is the same right-hand side "
          f"(max error {err:.2e})", verbose)

    # at θ ≠ θ_t: the general gradient, not REINFORCE's
    theta = theta_t + rng.normal(0.0, 0.3, theta_t.shape)
    b2 = batch_json(groups, theta, theta_t)
    a2 = seq_a(b2, groups, tau)
    res2 = rein.eval(SURROGATE, b2, tau, backend)
    got2 = chain(theta, groups, res2["grad"]["logp"])
    ok, err, scale = close(got2, surrogate_grad(theta, groups, tau, a2), tol)
    check(ok, f"{tag}: at theta != theta_t, grad of L-hat = -(2tau/K) sum (a_i - abar) grad log pi_theta(y_i) "
          f"(max error {err:.2e})", verbose)
    lw2 = pairwise_loss(a2)
    check(abs(res2["loss"] - lw2) <= tol * max(1.0, abs(lw2)),
          f"{tag}: at theta != theta_t the loss is the pairwise double loop {lw2:.6g} (rein {res2['loss']:.6g})",
          verbose)
    _, diff, _ = close(got2, reinforce_rhs(theta, groups, tau), 0)
    size = float(np.max(np.abs(got2)))
    check(diff > 1e-3 * size, f"{tag}: at theta != theta_t it differs from the REINFORCE expression "
          f"(by {diff:.3g}, the gradient's largest entry {size:.3g})", verbose)
    return groups, theta_t


def run_equal_k(rein, seed, tau, verbose):
    """One-token responses, G groups of equal K: the whole gradient is 2τ·G times std:reinforce's."""
    rng = np.random.default_rng(1000 + seed)
    theta_t = rng.normal(0.0, 1.5, (len(ROWS), V))
    K = int(rng.choice([2, 4, 8]))
    groups = make_batch(rng, theta_t, one_token=True, equal_k=K)
    G = len(groups)
    b = batch_json(groups, theta_t, theta_t)
    res = rein.eval(SURROGATE, b, tau)
    rf = rein.eval("std:reinforce", b)
    got = chain(theta_t, groups, res["grad"]["logp"])
    rfg = chain(theta_t, groups, rf["grad"]["logp"])
    ok, err, _ = close(got, 2.0 * tau * G * rfg, 1e-11)
    check(ok, f"one-token, G = {G} groups of K = {K}, tau {tau}: grad L-hat = 2 tau G * grad L_reinforce "
          f"(max error {err:.2e})", verbose)
    ok, err, _ = close(got, reinforce_rhs(theta_t, groups, tau), 1e-11)
    check(ok, f"one-token, G = {G}, K = {K}, tau {tau}: and = -(2tau/K) sum (r_i - rbar) grad log pi "
          f"(max error {err:.2e})", verbose)


MUTANTS = [
    ("tau dropped from a_i", "reward - tau * (sum[seq](logp)", "reward - 1 * (sum[seq](logp)"),
    ("ordered pairs (sum over i != j)", "(k * sum[group](a^2) - sum[group](a)^2)",
     "2 * (k * sum[group](a^2) - sum[group](a)^2)"),
    ("mean over groups", "loss = sum[batch](pairs);", "loss = mean[batch](pairs);"),
    ("1/K in place of 1/K^2", "/ k^2;", "/ k;"),
]


def run_mutants(rein, work):
    text = open(SURROGATE).read()
    for name, old, new in MUTANTS:
        if text.count(old) != 1:
            check(False, f"mutant '{name}': the text {old!r} is in the surrogate once")
            continue
        path = os.path.join(work, "mutant.rein")
        with open(path, "w") as f:
            f.write(text.replace(old, new))
        worst = 0.0
        for seed in range(3):
            rng = np.random.default_rng(seed)
            theta_t = rng.normal(0.0, 1.5, (len(ROWS), V))
            groups = make_batch(rng, theta_t)
            tau = 0.25
            res = rein.eval(path, batch_json(groups, theta_t, theta_t), tau)
            _, err, scale = close(chain(theta_t, groups, res["grad"]["logp"]), reinforce_rhs(theta_t, groups, tau), 0)
            worst = max(worst, err / scale)
        check(worst > 1e-6, f"a wrong surrogate fails check 1: {name} (relative error {worst:.3g})")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rein", required=True)
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args()
    if not os.access(args.rein, os.X_OK):
        print(f"error: {args.rein} is not an executable", file=sys.stderr)
        return 2
    p = subprocess.run([args.rein, "check", SURROGATE], capture_output=True, text=True)
    if not check(p.returncode == 0 and p.stdout == "" and p.stderr == "",
                 f"rein check {os.path.basename(SURROGATE)}: no diagnostic {p.stderr.strip()[:200]}"):
        return 1
    with tempfile.TemporaryDirectory(prefix="rein-c1-") as work:
        rein = Rein(args.rein, work)
        for s in range(args.seeds):
            run_case(rein, s, TAUS[s % len(TAUS)], args.verbose)
        want = {"on_policy", "uniform", "duplicates", "least_likely", "mixed", "rewards binary",
                "rewards continuous", "rewards equal", "K = 1"}
        check(want <= SEEN, f"the random batches hold every kind of sample set: {sorted(SEEN)}")
        if not args.verbose:
            print(f"{'FAIL' if FAILS else 'ok  '}  checks 1-4 on {args.seeds} random batches (interp)", flush=True)
        for s in range(2):
            run_case(rein, s, TAUS[s % len(TAUS)], args.verbose, backend="cpu", tol=1e-5)
        for s in range(len(TAUS)):
            run_equal_k(rein, s, TAUS[s], args.verbose)
        run_mutants(rein, work)
    if FAILS:
        print(f"{len(FAILS)} check(s) failed")
        return 1
    print("all C1 checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
