#!/usr/bin/python3
"""Derive the golden vectors of algorithms.md §9 (G1-G3) in plain Python float64 and write the
batches (tests/golden/*.json) and tests/golden/expected.json.

This is the independent check of the expected numbers: nothing here uses rein.  Every value is
recomputed from the formulas of algorithms.md §2.1, §3.2 and §3.3, and the numbers that §9
prints (advantages, the G2 loss table, the gradient check, the G3 truth table) are asserted
against the literals copied from §9 before anything is written.

Run:  /usr/bin/python3 tests/golden/gen_expected.py   (from anywhere; rewrites the files)
      /usr/bin/python3 tests/golden/gen_expected.py --check   (exit 1 if the files on disk differ)
"""
import json
import math
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REL = "tests/golden/"          # program and batch paths in expected.json are relative to the repo root

# --------------------------------------------------------------------------------------------
# Helpers


def close(x, y, rel=1e-9, abs_=1e-10):
    return abs(x - y) <= max(rel * abs(y), abs_)


def check(cond, what):
    if not cond:
        raise SystemExit("gen_expected: §9 check failed: " + what)


def check_close(x, y, what, rel=1e-9, abs_=1e-10):
    check(close(x, y, rel, abs_), "%s: computed %.17g, §9 says %.17g" % (what, x, y))


def mean(v):
    return sum(v) / len(v) if v else 0.0


def pstd(v, ddof=0):
    if len(v) - ddof <= 0:
        return 0.0
    m = mean(v)
    return math.sqrt(sum((x - m) ** 2 for x in v) / (len(v) - ddof))


def seq(logp, old_logp=None, reward=None, A=None):
    s = {}
    if reward is not None:
        s["reward"] = reward
    s["logp"] = list(logp)
    if old_logp is not None:
        s["old_logp"] = list(old_logp)
    if A is not None:
        s["inputs"] = {"A": A}
    return s


def ntokens(batch):
    return sum(len(s["logp"]) for g in batch["groups"] for s in g)


# --------------------------------------------------------------------------------------------
# Keep masks of algorithms.md §3.2, step 1 (comparisons inclusive)

def keep_none(A, rho, e):
    return True


def keep_oneside(A, rho, e):
    return (A >= 0 and rho <= 1 + e["eps_high"]) or (A <= 0 and rho >= 1 - e["eps_low"])


def keep_twoside(A, rho, e):
    return 1 - e["eps_low"] <= rho <= 1 + e["eps_high"]


def keep_ring(A, rho, e):
    return ((1 - e["eps_low"] <= rho <= 1 + e["eps_high"])
            or (A >= 0 and rho <= 1 - e["eps_low2"])
            or (A <= 0 and rho >= 1 + e["eps_high2"]))


EPS_DEFAULT = {"eps_low": 0.2, "eps_high": 0.2, "eps_low2": 0.6, "eps_high2": 2.0}


def rec(batch, keep, weight="none", k2=0.0, fkl=0.0, T=1.0, eps=None, adv=None):
    """algorithms.md §3.2 steps 1-4 and §3.3: per-token L = -Ã·M·ℓ + R, token-mean, and
    dL/dℓ = (-Ã·M + R')/N.  A is the sequence's input A, or adv[g][s] when given."""
    e = dict(EPS_DEFAULT)
    e.update(eps or {})
    N = ntokens(batch)
    pg = reg = 0.0
    masked = 0
    grad = []
    for gi, g in enumerate(batch["groups"]):
        gg = []
        for si, s in enumerate(g):
            A = adv[gi][si] if adv is not None else s["inputs"]["A"]
            gs = []
            for l, b in zip(s["logp"], s["old_logp"]):
                rho = math.exp(l - b)
                M = keep(A, rho, e)
                masked += (not M)
                if weight == "none":
                    At = A
                elif weight == "is":
                    At = A * rho
                elif weight == "advantage":
                    At = A * math.exp(A / T)
                else:
                    raise ValueError(weight)
                pg += -At * M * l
                reg += k2 * (l - b) ** 2 - fkl * l
                gs.append((-At * M + 2 * k2 * (l - b) - fkl) / N)
            gg.append(gs)
        grad.append(gg)
    return {"loss": (pg + reg) / N, "pg": pg / N, "reg": reg / N,
            "clip_frac": masked / N, "grad": grad}


def group_adv(batch, kind):
    """algorithms.md §2.1 / §2.2 advantages per group (no drop)."""
    out = []
    for g in batch["groups"]:
        r = [s["reward"] for s in g]
        mu = mean(r)
        if kind == "rec":
            out.append([x - mu for x in r])
        elif kind == "rec_std":
            sd = pstd(r)
            out.append([(x - mu) / (sd + 1e-6) for x in r])
        elif kind == "bessel":
            sd = pstd(r, 1)
            out.append([(x - mu) / (sd + 1e-6) for x in r])
        else:
            raise ValueError(kind)
    return out


def seq_grad(batch, coef):
    """Gradient of -mean[batch](coef_seq * logp): -coef/N for every token of the sequence."""
    N = ntokens(batch)
    return [[[-coef[gi][si] / N for _ in s["logp"]] for si, s in enumerate(g)]
            for gi, g in enumerate(batch["groups"])]


def seq_loss(batch, coef):
    N = ntokens(batch)
    return -sum(coef[gi][si] * l for gi, g in enumerate(batch["groups"])
                for si, s in enumerate(g) for l in s["logp"]) / N


# --------------------------------------------------------------------------------------------
# Batches

R9 = [1, 0, 0, 0, 1, 0, 0, 0]            # §9 G1 group
L2 = [-1.0, -2.0]                          # §9 G2: the two unmasked tokens (the masked third is absent)
B2 = [-1.1, -1.5]
RHOS = [0.3, 0.5, 0.9, 1.1, 1.5, 3.5]      # §9 G3 rows


def g1_group(rewards, lp_pos, lp_neg):
    """One token per sequence.  All negatives share one logp so that RED-Drop's loss does not
    depend on which negatives the draw drops; positives take lp_pos in order."""
    it = iter(lp_pos)
    return [seq([next(it) if r >= mean(rewards) else lp_neg], reward=float(r)) for r in rewards]


batches = {}
batches["g1.json"] = {"seed": 1, "step": 0,
                      "groups": [g1_group(R9, [-0.5, -1.0], -2.0)]}
batches["g1_seed2.json"] = {"seed": 2, "step": 5,
                            "groups": [g1_group(R9, [-0.5, -1.0], -2.0)]}
batches["g1_multi.json"] = {"seed": 3, "step": 1, "groups": [
    g1_group(R9, [-0.5, -1.0], -2.0),
    g1_group([0, 1, 0, 0, 0, 0, 1, 0], [-0.25, -0.75], -1.5),
    g1_group([0.5, 0.5, 0.5], [-1.0, -2.0, -3.0], None),
]}
batches["g2_pos.json"] = {"seed": 1, "step": 0, "groups": [[seq(L2, B2, A=0.75)]]}
batches["g2_neg.json"] = {"seed": 1, "step": 0, "groups": [[seq(L2, B2, A=-0.25)]]}
batches["g2_pos_neg.json"] = {"seed": 1, "step": 0,
                              "groups": [[seq(L2, B2, A=0.75)], [seq(L2, B2, A=-0.25)]]}


def g2_std(token_seq):
    """The §9 G1 group whose sequence `token_seq` carries the G2 tokens; the others have zero
    tokens.  Its advantage from the rewards is then the G2 A (0.75 for a positive, -0.25 for a
    negative) and the token-mean denominator is 2."""
    return {"seed": 1, "step": 0, "groups": [[
        seq(L2 if i == token_seq else [], B2 if i == token_seq else [], reward=float(r))
        for i, r in enumerate(R9)]]}


batches["g2_std_pos.json"] = g2_std(0)
batches["g2_std_neg.json"] = g2_std(1)
# REC-GSPO (§3.2 clip_mode gspo-one-side): one group with rewards (1, 0), so A = +0.5 / -0.5.  The
# positive has three tokens with Δ = 0.5 each (s = e^0.5, far above 1 + eps_high: dropped), the
# negative one token with Δ = 0 (s = 1: kept).  Token-weighted pg_clipfrac = 3/4, where the share
# of sequences would be 1/2.
batches["gspo_clip.json"] = {"seed": 1, "step": 0, "groups": [[
    seq([-1.0, -2.0, -0.5], [-1.5, -2.5, -1.0], reward=1.0),
    seq([-1.0], [-1.0], reward=0.0)]]}
batches["g3.json"] = {"seed": 1, "step": 0, "groups": [
    [seq([math.log(r) - 2.0], [-2.0], A=a) for r in RHOS + [1.0, 1.0]] for a in (1.0, -0.5)]}
# old_logp = -2 and logp = log(rho) - 2 (both proper log-probabilities), so ratio = rho.
# 6 ratios + 2 at rho = 1 (kept by every mode) per sign, so N = 16 and a kept token's gradient
# -A/N is exactly -0.0625 (A = 1) or +0.03125 (A = -0.5); A = -0.5 rather than -1 so that the
# loss does not cancel between the groups.

# --------------------------------------------------------------------------------------------
# §9 literal checks

# G1
a = group_adv(batches["g1.json"], "rec")[0]
check(a == [0.75, -0.25, -0.25, -0.25, 0.75, -0.25, -0.25, -0.25], "G1 REC advantages")
check_close(pstd(R9), 0.4330127019, "G1 sigma_pop")
a = group_adv(batches["g1.json"], "rec_std")[0]
check_close(a[0], 1.7320468076, "G1 REC std A+")
check_close(a[1], -0.5773489359, "G1 REC std A-")
check_close(pstd(R9, 1), 0.4629100499, "G1 sigma_bessel")
a = group_adv(batches["g1.json"], "bessel")[0]
check_close(a[0], 1.6201816746, "G1 grpo A+")
check_close(a[1], -0.5400605582, "G1 grpo A-")
check_close(pstd(R9) / pstd(R9, 1), math.sqrt(7 / 8), "G1 sqrt(8/7) factor")
check_close(0.75 * math.exp(0.75), 1.5877500125, "G1 RED-Weight +")
check_close(-0.25 * math.exp(-0.25), -0.1947001958, "G1 RED-Weight -")
check_close(2 * 0.75 * math.exp(0.75) + 6 * -0.25 * math.exp(-0.25), 2.0072988503, "G1 RED-Weight sum")
check(mean([1, 1, 0, 0]) == 0.5, "G1 RED-Drop mu")

# G2 (§9 values include the code's +1e-8; Rein's token-mean has none, so compare loosely)
pos, neg = batches["g2_pos.json"], batches["g2_neg.json"]
rho = [math.exp(l - b) for l, b in zip(L2, B2)]
check_close(rho[0], 1.1051709181, "G2 rho1")
check_close(rho[1], 0.6065306597, "G2 rho2")
G2_TABLE = [  # (batch, keep, weight, §9 pg_loss, §9 clipfrac)
    (pos, keep_none, "none", 1.125, 0.0),
    (pos, keep_oneside, "none", 1.125, 0.0),
    (pos, keep_twoside, "none", 0.375, 0.5),
    (pos, keep_oneside, "is", 0.8693370847, 0.0),
    (neg, keep_none, "none", -0.375, 0.0),
    (neg, keep_oneside, "none", -0.125, 0.5),
    (pos, keep_ring, "none", 0.375, 0.5),
    (pos, keep_none, "advantage", 2.3816250068, 0.0),
]
for bt, kp, w, lv, cf in G2_TABLE:
    r = rec(bt, kp, w)
    # §9 prints round values (1.125) exactly and the others with the code's +1e-8 in the
    # denominator: 8 significant digits agree either way, all 10 with the +1e-8 put back
    check_close(r["loss"], lv, "G2 %s %s loss" % (kp.__name__, w), rel=1e-8)
    if lv not in (1.125, 0.375, -0.375, -0.125):
        check_close(r["loss"] * 2 / (2 + 1e-8), lv, "G2 %s %s loss (+1e-8)" % (kp.__name__, w))
    check(r["clip_frac"] == cf, "G2 %s clipfrac" % kp.__name__)
check_close(1.125 * 2 / (2 + 1e-8), 1.124999994, "G2 REINFORCE with +1e-8", rel=1e-9)
check_close(rec(pos, keep_none, k2=0.1)["reg"], 0.013, "G2 + k2")
check_close(0.1 * (L2[0] - B2[0]) ** 2, 0.001, "G2 k2 token 1")
check_close(0.1 * (L2[1] - B2[1]) ** 2, 0.025, "G2 k2 token 2")
check_close(rec(pos, keep_none, fkl=0.1)["reg"], 0.15, "G2 + forward-kl")
check_close(0.75 * math.exp(0.75) * 3 / (2 + 1e-8), 2.3816250068, "G2 RED-Weight = 1.58775*1.5")
g = rec(pos, keep_oneside)["grad"][0][0]
check_close(g[0], -0.375, "G2 grad 1")
check_close(g[1], -0.375, "G2 grad 2")
g = rec(pos, keep_oneside, k2=0.1)["grad"][0][0]
check_close(g[0], -0.365, "G2 k2 grad 1")
check_close(g[1], -0.425, "G2 k2 grad 2")

# G3: the table as printed in §9 (K kept, X masked); columns one-side A>0, A<0, two-side,
# ring A>0, ring A<0, wide one-side A>0, A<0.
G3_TABLE = {0.3: "KXXKXKX", 0.5: "KXXXXKK", 0.9: "KKKKKKK", 1.1: "KKKKKKK",
            1.5: "XKXXXKK", 3.5: "XKXXKXK"}
WIDE = {"eps_low": 0.6, "eps_high": 2.0}
G3_COLS = [(keep_oneside, 1, None), (keep_oneside, -1, None), (keep_twoside, None, None),
           (keep_ring, 1, None), (keep_ring, -1, None), (keep_oneside, 1, WIDE),
           (keep_oneside, -1, WIDE)]
for r_ in RHOS:
    for col, (kp, sgn, ep) in enumerate(G3_COLS):
        e = dict(EPS_DEFAULT)
        e.update(ep or {})
        for s_ in ([sgn] if sgn else [1, -1]):       # two-side: both signs must agree
            got = "K" if kp(s_, r_, e) else "X"
            check(got == G3_TABLE[r_][col], "G3 rho=%g col %d A=%+d" % (r_, col, s_))
    # boundaries: no rho of the table lies within 0.05 of a mask boundary, so float32 ratios
    # (exp of a float32 log) cannot flip a cell
    for bnd in (0.8, 1.2, 0.4, 3.0):
        check(abs(r_ - bnd) >= 0.05, "G3 rho %g near boundary %g" % (r_, bnd))

# --------------------------------------------------------------------------------------------
# Cases

cases = []


def add(name, program, batch, source, expect, tol="exact", sets=None, multisets=None,
        program_dir=REL):
    c = {"name": name, "source": source, "program": program_dir + program, "batch": REL + batch}
    if sets:
        c["set"] = sets
    c["tol"] = tol
    c["expect"] = expect
    if multisets:
        c["grad_multisets"] = multisets
    cases.append(c)


F32 = "f32"
MIXED_F32 = {"*": "exact", "loss": F32, "grad": F32}     # exact metrics, rounded loss / gradient

# ---- G1 ------------------------------------------------------------------------------------
for bname, tag in (("g1.json", ""), ("g1_multi.json", "-multi")):
    bt = batches[bname]
    N = ntokens(bt)
    multi = tag != ""
    src_multi = ("; batch = the §9 group, a permuted copy and a constant group (0.5, 0.5, 0.5) "
                 "whose advantages are 0 (§2.1: all equal => A = 0)") if multi else ""

    adv = group_adv(bt, "rec")
    flat = [x for g in adv for x in g]
    add("G1-rec" + tag, "g1_rec.rein", bname,
        "§9 G1 REC std_normalize=false: A = +0.75 / -0.25 (mu = 0.25)" + src_multi,
        {"loss": seq_loss(bt, adv),
         "metrics": {"a_pos": 0.75, "a_neg": -0.25,
                     "pos_sum": sum(x for x in flat if x > 0), "neg_sum": sum(x for x in flat if x < 0),
                     "a_sum": sum(flat), "n_pos": float(sum(x > 0 for x in flat)),
                     "n_neg": float(sum(x < 0 for x in flat)),
                     "mu_max": max(mean([s["reward"] for s in g]) for g in bt["groups"])},
         "grad": {"logp": seq_grad(bt, adv)}},
        tol=MIXED_F32 if multi else "exact")

    for prog, kind, sig, ap, an, src in (
            ("g1_rec_std.rein", "rec_std", 0.4330127019, 1.7320468076, -0.5773489359,
             "§9 G1 REC std_normalize=true (population std + 1e-6): sigma = 0.4330127019, "
             "A = +1.7320468076 / -0.5773489359"),
            ("g1_grpo_bessel.rein", "bessel", 0.4629100499, 1.6201816746, -0.5400605582,
             "§9 G1 Trinity grpo (Bessel std + 1e-6): sigma = 0.4629100499, "
             "A = +1.6201816746 / -0.5400605582")):
        adv = group_adv(bt, kind)
        flat = [x for g in adv for x in g]
        check_close(max(flat), ap, "G1 " + kind + " a_pos")
        check_close(min(flat), an, "G1 " + kind + " a_neg")
        sd = max(pstd([s["reward"] for s in g], 1 if kind == "bessel" else 0) for g in bt["groups"])
        check_close(sd, sig, "G1 " + kind + " sigma")
        add("G1-" + kind + tag, prog, bname, src + src_multi,
            {"loss": seq_loss(bt, adv),
             "metrics": {"a_pos": max(flat), "a_neg": min(flat),
                         "pos_sum": sum(x for x in flat if x > 0),
                         "neg_sum": sum(x for x in flat if x < 0), "sigma_max": sd},
             "grad": {"logp": seq_grad(bt, adv)}},
            tol=F32)

    adv = group_adv(bt, "rec")
    w = [[x * math.exp(x) for x in g] for g in adv]
    flat = [x for g in w for x in g]
    wsum = sum(flat)
    check_close(wsum, 2.0072988503 * (2 if multi else 1), "G1 RED-Weight w_sum" + tag)
    add("G1-red-weight" + tag, "g1_red_weight.rein", bname,
        "§9 G1 RED-Weight A*e^A (T = 1): +1.5877500125 / -0.1947001958, group sum 2.0072988503"
        + src_multi,
        {"loss": seq_loss(bt, w),
         "metrics": {"w_pos": max(flat), "w_neg": min(flat), "w_sum": wsum,
                     "a_pos": 0.75, "a_neg": -0.25},
         "grad": {"logp": seq_grad(bt, w)}},
        tol={"*": F32, "metrics.a_pos": "exact", "metrics.a_neg": "exact"})

# RED-Drop: which negatives are dropped depends on the seeded uniform(); the counts, the values
# and (all negatives of a group share one logp) the loss do not.  Per-sequence gradients of the
# negatives are checked as a multiset: n_pos of them -(-0.5)/N, the rest exactly 0.


def red_drop_expect(bt):
    N = ntokens(bt)
    grad, ms = [], []
    pg = 0.0
    n_kept = n_drop = n_kept_neg = 0
    for gi, g in enumerate(bt["groups"]):
        r = [s["reward"] for s in g]
        mu0 = mean(r)
        P = [x >= mu0 for x in r]
        npos, nneg = sum(P), len(r) - sum(P)
        ndrop = max(0, nneg - npos)
        kept_r = [x for x, p in zip(r, P) if p] + [x for x, p in zip(r, P) if not p][:nneg - ndrop]
        mu = mean(kept_r) if len(kept_r) > 1 else 0.0
        gg, vals, seqs = [], [], []
        for si, (s, p) in enumerate(zip(g, P)):
            if p:
                A = r[si] - mu
                gg.append([-A / N for _ in s["logp"]])
                pg += -A * sum(s["logp"])
            else:
                gg.append(None)            # checked through the multiset
                seqs.append([gi, si])
        negl = [s["logp"] for s, p in zip(g, P) if not p]
        for k in range(nneg):
            A = (r[[i for i, p in enumerate(P) if not p][0]] - mu) if k < nneg - ndrop else 0.0
            vals += [-A / N] * len(negl[k])
            pg += -A * sum(negl[k])
        if seqs:
            ms.append({"field": "logp", "seqs": seqs, "values": sorted(vals)})
        grad.append(gg)
        n_kept += npos + nneg - ndrop
        n_drop += ndrop
        n_kept_neg += nneg - ndrop
    return pg / N, grad, ms, n_kept, n_drop, n_kept_neg


for bname, tag in (("g1.json", ""), ("g1_seed2.json", "-seed2"), ("g1_multi.json", "-multi")):
    bt = batches[bname]
    N = ntokens(bt)
    loss, grad, ms, nk, nd, nkn = red_drop_expect(bt)
    if bname != "g1_multi.json":
        check(nk == 4 and nd == 4 and nkn == 2 and nd / len(R9) == 0.5, "G1 RED-Drop counts")
    add("G1-red-drop" + tag, "g1_red_drop.rein", bname,
        "§9 G1 RED-Drop: P = {0, 4}, 4 of 6 negatives dropped, kept mu = 0.5, "
        "A = +0.5 / -0.5 / 0 (dropped), drop_balance = 0.5"
        + ("; seed 2, step 5" if tag == "-seed2" else "")
        + ("; three groups (each drops its own surplus; the constant group keeps all, A = 0)"
           if tag == "-multi" else ""),
        {"loss": loss,
         "metrics": {"n_kept": float(nk), "n_dropped": float(nd), "n_kept_neg": float(nkn),
                     "drop_frac": nd / len(R9) if tag != "-multi" else nd / sum(len(g) for g in bt["groups"]),
                     "a_pos": 0.5, "a_neg": -0.5, "kept_neg_a": -0.5 * nkn, "dropped_abs": 0.0,
                     "mu_max": 0.5},
         "grad": {"logp": grad}},
        tol="exact" if tag != "-multi" else dict(MIXED_F32, **{"metrics.drop_frac": F32}),
        multisets=ms)
    if tag == "-multi":
        n_seqs = sum(len(g) for g in bt["groups"])
        check(nd == 8 and n_seqs == 19, "G1 multi RED-Drop: 4 + 4 of 19 dropped")
        add("G1-std-red-drop-multi", "red_drop.rein", bname,
            "§9 G1 RED-Drop through lang/std/red_drop.rein on three groups (8, 8, 3 sequences): "
            "4 + 4 + 0 dropped, drop_balance = 8/19, the share of the batch's sequences",
            {"loss": loss, "metrics": {"drop_balance": nd / n_seqs}, "grad": {"logp": grad}},
            tol=dict(MIXED_F32, **{"metrics.drop_balance": F32}), multisets=ms,
            program_dir="lang/std/")
    if tag == "":
        add("G1-std-red-drop", "red_drop.rein", bname,
            "§9 G1 RED-Drop through lang/std/red_drop.rein: 4 of 8 dropped, drop_balance "
            "(#dropped / #sequences, §2.1's per-group #dropped / N) = 0.5",
            {"loss": loss, "metrics": {"drop_balance": nd / len(R9)}, "grad": {"logp": grad}},
            multisets=ms, program_dir="lang/std/")
        adv = group_adv(bt, "rec")
        add("G1-std-reinforce", "reinforce.rein", bname,
            "§9 G1 REC A = +0.75 / -0.25 through lang/std/reinforce.rein (gradient -A/8)",
            {"loss": seq_loss(bt, adv), "metrics": {}, "grad": {"logp": seq_grad(bt, adv)}},
            program_dir="lang/std/")

# ---- G2 ------------------------------------------------------------------------------------
GSRC = "§9 G2 (tokens l = (-1, -2), b = (-1.1, -1.5); masked third token absent)"


def g2_expect(r, metrics):
    m = {}
    for k in metrics:
        m[k] = {"clip_frac": r["clip_frac"], "pg_loss": r["pg"], "reg_loss": r["reg"]}[k]
    return {"loss": r["loss"], "metrics": m, "grad": {"logp": r["grad"]}}


def g2(name, prog, bname, src, keep, weight="none", k2=0.0, fkl=0.0, metrics=("clip_frac",),
       tol="exact", sets=None, eps=None, T=1.0):
    r = rec(batches[bname], keep, weight, k2=k2, fkl=fkl, eps=eps, T=T)
    add(name, prog, bname, GSRC + ": " + src, g2_expect(r, metrics), tol=tol, sets=sets)
    return r


g2("G2-reinforce-pos", "g2_reinforce.rein", "g2_pos.json",
   "row REINFORCE, A = 0.75: pg_loss 1.125, grad (-0.375, -0.375)", keep_none, metrics=())
g2("G2-oneside-nois-pos", "g2_oneside_nois.rein", "g2_pos.json",
   "row REC-OneSide-NoIS (0.2, 0.2), A = 0.75: 1.125, both kept, clipfrac 0; "
   "gradient check (-0.375, -0.375)", keep_oneside)
g2("G2-twoside-nois-pos", "g2_twoside_nois.rein", "g2_pos.json",
   "row REC-TwoSide-NoIS, A = 0.75: 0.375, token 2 masked (rho = 0.607 < 0.8), clipfrac 0.5",
   keep_twoside)
g2("G2-oneside-is-pos", "g2_oneside_is.rein", "g2_pos.json",
   "row REC-OneSide-IS, A = 0.75: 0.8693370847, clipfrac 0", keep_oneside, "is",
   tol={"*": F32, "metrics": "exact"})
g2("G2-reinforce-neg", "g2_reinforce.rein", "g2_neg.json",
   "row REINFORCE, A = -0.25: -0.375", keep_none, metrics=())
g2("G2-oneside-nois-neg", "g2_oneside_nois.rein", "g2_neg.json",
   "row REC-OneSide-NoIS, A = -0.25: -0.125, token 2 masked (rho < 0.8 with A < 0), clipfrac 0.5",
   keep_oneside)
g2("G2-ring-nois-pos", "g2_ring_nois.rein", "g2_pos.json",
   "row REC-Ring-NoIS (0.2, 0.2, 0.6, 2.0), A = 0.75: 0.375, token 2 (rho = 0.607 in (0.4, 0.8)) "
   "masked, clipfrac 0.5", keep_ring)
r = g2("G2-oneside-nois-k2-pos", "g2_oneside_nois_k2.rein", "g2_pos.json",
       "row REC-OneSide-NoIS + k2 c = 0.1: 1.125 + 0.013 (token terms 0.001, 0.025); "
       "gradient check with k2 (-0.365, -0.425)", keep_oneside, k2=0.1,
       metrics=("pg_loss", "reg_loss", "clip_frac"),
       tol={"*": F32, "metrics.pg_loss": "exact", "metrics.clip_frac": "exact"})
check_close(r["loss"], 1.138, "G2 1.125 + 0.013")
g2("G2-oneside-nois-k2-c0-pos", "g2_oneside_nois_k2.rein", "g2_pos.json",
   "row REC-OneSide-NoIS with the k2 program at --set c=0: the regulariser vanishes, "
   "back to 1.125 / (-0.375, -0.375)", keep_oneside, k2=0.0,
   metrics=("pg_loss", "reg_loss", "clip_frac"), sets={"c": "0"})
g2("G2-oneside-nois-k2-neg", "g2_oneside_nois_k2.rein", "g2_neg.json",
   "rows REC-OneSide-NoIS A = -0.25 (-0.125, token 2 masked) + k2 c = 0.1 (+0.013, not masked)",
   keep_oneside, k2=0.1, metrics=("pg_loss", "reg_loss", "clip_frac"),
   tol={"*": F32, "metrics.pg_loss": "exact", "metrics.clip_frac": "exact"})
r = g2("G2-ring-nois-k2-pos", "g2_ring_nois_k2.rein", "g2_pos.json",
       "rows REC-Ring-NoIS (0.375) + k2 c = 0.1 (+0.013): the masked token 2 keeps the k2 "
       "gradient 2c(l-b)/N = -0.05 (§3.2: R not masked)", keep_ring, k2=0.1, tol=F32)
check_close(r["grad"][0][0][1], -0.05, "G2 ring+k2 masked-token grad")
r = g2("G2-reinforce-fkl-pos", "g2_reinforce_fkl.rein", "g2_pos.json",
       "rows REINFORCE (1.125) + forward-kl c = 0.1 (+0.15, token terms 0.1, 0.2) = AsymRE 1.275, "
       "grad -(A + c)/2", keep_none, fkl=0.1, metrics=("pg_loss", "reg_loss"),
       tol={"*": F32, "metrics.pg_loss": "exact"})
check_close(r["loss"], 1.275, "G2 1.125 + 0.15")
g2("G2-reinforce-fkl-c0.2-pos", "g2_reinforce_fkl.rein", "g2_pos.json",
   "rows REINFORCE + forward-kl with --set c=0.2 (G2.sh's AsymRE value): 1.125 + 0.3",
   keep_none, fkl=0.2, metrics=("pg_loss", "reg_loss"), sets={"c": "0.2"},
   tol={"*": F32, "metrics.pg_loss": "exact"})
r = g2("G2-twoside-nois-fkl-pos", "g2_twoside_nois_fkl.rein", "g2_pos.json",
       "rows REC-TwoSide-NoIS (0.375) + forward-kl c = 0.1 (+0.15): the masked token 2 keeps "
       "-c/N = -0.05 (§3.2, §6.4: not masked)", keep_twoside, fkl=0.1,
       tol={"*": F32, "metrics": "exact"})
check_close(r["loss"], 0.525, "G2 0.375 + 0.15")
g2("G2-red-weight-pos", "g2_red_weight.rein", "g2_pos.json",
   "row RED-Weight T = 1, A = 0.75: 2.3816250068 (= 1.58775 * 1.5), clipfrac 0 (no mask)",
   keep_none, "advantage", metrics=(), tol=F32)
g2("G2-red-weight-T2-pos", "g2_red_weight.rein", "g2_pos.json",
   "§3.2 weight = advantage with --set T=2: -A*e^(A/2)*l (derived, not a §9 row)",
   keep_none, "advantage", metrics=(), tol=F32, sets={"T": "2"}, T=2.0)
# Two groups (micro-batches of one group each must keep the global denominator N = 4)
g2("G2-oneside-nois-2groups", "g2_oneside_nois.rein", "g2_pos_neg.json",
   "rows REC-OneSide-NoIS A = 0.75 and A = -0.25 in one batch of two groups, N = 4: "
   "(2.25 - 0.25)/4 = 0.5, clipfrac 1/4", keep_oneside)
g2("G2-oneside-nois-k2-2groups", "g2_oneside_nois_k2.rein", "g2_pos_neg.json",
   "rows REC-OneSide-NoIS + k2 c = 0.1 for A = 0.75 and A = -0.25 in two groups, N = 4",
   keep_oneside, k2=0.1, metrics=("pg_loss", "reg_loss", "clip_frac"),
   tol={"*": F32, "metrics.pg_loss": "exact", "metrics.clip_frac": "exact"})
g2("G2-ring-nois-2groups", "g2_ring_nois.rein", "g2_pos_neg.json",
   "rows REC-Ring-NoIS for A = 0.75 (token 2 masked) and A = -0.25 (token 2: rho < 0.8, "
   "not >= 3.0, masked) in two groups, N = 4", keep_ring)

# The standard library and the examples on the same tokens, A from rewards: the §9 G1 group with
# the G2 tokens on one sequence and zero tokens on the seven others.
sp, sn = batches["g2_std_pos.json"], batches["g2_std_neg.json"]
adv_p, adv_n = group_adv(sp, "rec"), group_adv(sn, "rec")
check(adv_p[0][0] == 0.75 and adv_n[0][1] == -0.25, "G2 std advantages")


def std_case(name, prog, bname, adv, src, keep, weight="none", k2=0.0, fkl=0.0, metrics=(),
             tol="exact", pdir="lang/std/", extra=None):
    r = rec(batches[bname], keep, weight, k2=k2, fkl=fkl, adv=adv)
    e = g2_expect(r, metrics)
    e["metrics"].update(extra or {})
    add(name, prog, bname, GSRC + ", A from the rewards of the §9 G1 group (other sequences "
        "have zero tokens): " + src, e, tol=tol, program_dir=pdir)


std_case("G2-std-reinforce-pos", "reinforce.rein", "g2_std_pos.json", adv_p,
         "row REINFORCE, A = 0.75: 1.125", keep_none)
std_case("G2-std-reinforce-neg", "reinforce.rein", "g2_std_neg.json", adv_n,
         "row REINFORCE, A = -0.25: -0.375", keep_none)
std_case("G2-std-oneside-nois-pos", "rec_oneside_nois.rein", "g2_std_pos.json", adv_p,
         "row REC-OneSide-NoIS, A = 0.75: 1.125, clipfrac 0", keep_oneside, metrics=("clip_frac",))
std_case("G2-std-oneside-nois-neg", "rec_oneside_nois.rein", "g2_std_neg.json", adv_n,
         "row REC-OneSide-NoIS, A = -0.25: -0.125, clipfrac 0.5", keep_oneside,
         metrics=("clip_frac",))
std_case("G2-std-twoside-nois-pos", "rec_twoside_nois.rein", "g2_std_pos.json", adv_p,
         "row REC-TwoSide-NoIS, A = 0.75: 0.375, clipfrac 0.5", keep_twoside,
         metrics=("clip_frac",))
std_case("G2-std-oneside-is-pos", "rec_oneside_is.rein", "g2_std_pos.json", adv_p,
         "row REC-OneSide-IS, A = 0.75: 0.8693370847", keep_oneside, "is",
         metrics=("clip_frac",), tol={"*": F32, "metrics": "exact"})
std_case("G2-std-twoside-is-pos", "rec_twoside_is.rein", "g2_std_pos.json", adv_p,
         "§3.2 two-side + importance_sampling, A = 0.75 (derived, not a §9 row): "
         "0.75*rho1*1/2, token 2 masked", keep_twoside, "is", metrics=("clip_frac",),
         tol={"*": F32, "metrics": "exact"})
std_case("G2-std-ring-is-pos", "rec_ring_is.rein", "g2_std_pos.json", adv_p,
         "§3.2 ring + importance_sampling, A = 0.75 (derived, not a §9 row): "
         "0.75*rho1*1/2, token 2 masked", keep_ring, "is", metrics=("clip_frac",),
         tol={"*": F32, "metrics": "exact"})
std_case("G2-example-ring-nois-pos", "rec_ring_nois.rein", "g2_std_pos.json", adv_p,
         "row REC-Ring-NoIS, A = 0.75: 0.375, clipfrac 0.5 (examples/rec_ring_nois.rein; "
         "ratio_mean = (rho1 + rho2)/2)", keep_ring, metrics=("clip_frac",),
         tol={"*": "exact", "metrics.ratio_mean": F32}, pdir="examples/",
         extra={"ratio_mean": (rho[0] + rho[1]) / 2})
std_case("G2-std-opmd-pos", "opmd.rein", "g2_std_pos.json", adv_p,
         "rows REINFORCE + k2 c = 0.1: 1.125 + 0.013, grad (-0.365, -0.425)", keep_none, k2=0.1,
         tol=F32)
std_case("G2-std-asymre-pos", "asymre.rein", "g2_std_pos.json", adv_p,
         "rows REINFORCE + forward-kl c = 0.1: 1.125 + 0.15 = 1.275", keep_none, fkl=0.1, tol=F32)
std_case("G2-std-red-weight-pos", "red_weight.rein", "g2_std_pos.json", adv_p,
         "row RED-Weight T = 1, A = 0.75: 2.3816250068", keep_none, "advantage", tol=F32)

# GRPO (lang/std/grpo.rein): the PPO-clip surrogate with the population-std advantage of §9 G1
# (A = 1.7320468076).  §3.3: its gradient equals REC-OneSide-IS's, -A*rho/N on tokens the
# one-side mask keeps (both here: rho1 in the band, rho2 < 0.8 with A > 0); its loss value is
# -mean(min(rho*A, clip(rho)*A)) = -A*(rho1 + rho2)/2, not REC's.
A_std = group_adv(sp, "rec_std")[0][0]
check_close(A_std, 1.7320468076, "G2 grpo A")
r_is = rec(sp, keep_oneside, "is", adv=[[A_std] * 8])
ppo = -sum(min(x * A_std, min(max(x, 0.8), 1.2) * A_std) for x in rho) / 2
add("G2-std-grpo-pos", "grpo.rein", "g2_std_pos.json",
    GSRC + ", A from the §9 G1 rewards with population std (+1.7320468076): §3.3 "
    "REC-OneSide-IS has exactly the PPO/GRPO clipped-surrogate gradient (-A*rho/2 per token); "
    "the PPO loss value is -A*(rho1 + rho2)/2; A > 0, so the dual clip is inactive "
    "(dual_clip_frac 0), and neither token takes the clipped branch strictly (rho1 in the "
    "band, rho2 < 0.8 with A > 0: -A*0.8 < -A*rho2), so clip_frac 0",
    {"loss": ppo, "metrics": {"clip_frac": 0.0, "dual_clip_frac": 0.0},
     "grad": {"logp": r_is["grad"]}}, tol={"*": F32, "metrics": "exact"},
    program_dir="lang/std/")

# REC-GSPO (lang/std/rec_gspo_*.rein), §3.2 gspo-one-side: s_i = exp(mean_t Δ), the one-side rule
# on s_i with eps = (3e-4, 4e-4), loss seq-mean-token-mean of -A*(s_i)*keep_i*ℓ, and
# pg_clipfrac = masked_mean(¬M, m): the sequence's mask counted once per token.


def rec_gspo_expect(batch, weight, el=3e-4, eh=4e-4):
    adv = group_adv(batch, "rec")
    S = sum(len(g) for g in batch["groups"])
    loss, dropped_tokens, grad = 0.0, 0, []
    for gi, g in enumerate(batch["groups"]):
        gg = []
        for si, sq in enumerate(g):
            A, n = adv[gi][si], len(sq["logp"])
            sr = math.exp(mean([l - b for l, b in zip(sq["logp"], sq["old_logp"])]))
            keep = (A >= 0 and sr <= 1 + eh) or (A <= 0 and sr >= 1 - el)
            w = A * (sr if weight == "is" else 1.0) * keep
            loss += -w * mean(sq["logp"]) / S
            dropped_tokens += 0 if keep else n
            gg.append([-w / (S * n)] * n)
        grad.append(gg)
    return {"loss": loss, "metrics": {"clip_frac": dropped_tokens / ntokens(batch)},
            "grad": {"logp": grad}}


for prog in ("rec_gspo_nois.rein", "rec_gspo_is.rein"):
    e = rec_gspo_expect(batches["gspo_clip.json"], "is" if "_is" in prog else "none")
    check(e["loss"] == -0.25 and e["metrics"]["clip_frac"] == 0.75
          and e["grad"]["logp"] == [[[0.0, 0.0, 0.0], [0.25]]], "REC-GSPO by hand")
    add("GSPO-std-" + prog[:-5].replace("_", "-"), prog, "gspo_clip.json",
        "§3.2 gspo-one-side (derived, not a §9 row): A = +0.5 with s = e^0.5 over 3 tokens "
        "(dropped), A = -0.5 with s = 1 over 1 token (kept); loss (0 + 0.5*(-1))/2 = -0.25, "
        "grad (0, 0, 0 | 0.25); pg_clipfrac = masked_mean(not M, m) = 3/4 (the share of "
        "sequences would be 1/2)", e, program_dir="lang/std/")

# ---- G3 ------------------------------------------------------------------------------------
g3 = batches["g3.json"]
for name, prog, keep, eps, sets, cols in (
        ("G3-oneside", "g3_oneside.rein", keep_oneside, None, None,
         "columns one-side A>0 (group 0) and one-side A<0 (group 1)"),
        ("G3-wide-oneside", "g3_oneside.rein", keep_oneside, WIDE,
         {"eps_low": "0.6", "eps_high": "2.0"},
         "column wide one-side (0.6, 2.0) A>0 / A<0, via --set"),
        ("G3-twoside", "g3_twoside.rein", keep_twoside, None, None,
         "column two-side, for A>0 (group 0) and A<0 (group 1)"),
        ("G3-ring", "g3_ring.rein", keep_ring, None, None,
         "columns ring (0.2, 0.2, 0.6, 2.0) A>0 (group 0) and A<0 (group 1)")):
    r = rec(g3, keep, eps=eps)
    # masks from the gradient: kept = -A/16, masked = exactly 0
    mp = sum(1 for x in r["grad"][0] if x[0] == 0.0)
    mn = sum(1 for x in r["grad"][1] if x[0] == 0.0)
    add(name, prog, "g3.json",
        "§9 G3 mask truth table, " + cols + "; rho = (0.3, 0.5, 0.9, 1.1, 1.5, 3.5, 1, 1), "
        "one token each, old_logp = -2, logp = log(rho) - 2; A = +1 (group 0) / -0.5 (group 1); "
        "kept token gradient -A/16 = -0.0625 / +0.03125, masked exactly 0",
        {"loss": r["loss"],
         "metrics": {"clip_frac": r["clip_frac"], "masked_pos": float(mp), "masked_neg": float(mn)},
         "grad": {"logp": r["grad"]}},
        tol={"*": "exact", "loss": F32}, sets=sets)

# --------------------------------------------------------------------------------------------
# Output

expected = {
    "comment": "Golden vectors of algorithms.md §9 (G1-G3). Generated by gen_expected.py "
               "(plain float64, checked against the §9 literals); read by run_golden.py. "
               "Paths are relative to the repository root. 'tol' names a tolerance class, "
               "either for the whole case or per field ('loss', 'metrics', 'metrics.NAME', "
               "'grad', 'grad.logp'; '*' = default). In gradients an expected 0 must be exactly 0, "
               "and null marks a sequence checked through grad_multisets instead.",
    "tolerances": {
        "exact": {"rel": 1e-9, "abs": 0.0,
                  "why": "values exactly representable and exactly computed in float32"},
        "f32": {"rel": 1e-5, "abs": 1e-6,
                "why": "language.md §5: float32 arithmetic, within 1e-5 relative or 1e-6 "
                       "absolute of a float64 evaluation"},
    },
    "cases": cases,
}


def dump(obj):
    return json.dumps(obj, indent=1, ensure_ascii=False) + "\n"


def dump_batch(b):
    """One sequence per line, so that the batches stay readable."""
    head = {k: v for k, v in b.items() if k != "groups"}
    lines = [json.dumps(head)[:-1] + ', "groups": [']
    for gi, g in enumerate(b["groups"]):
        lines.append("  [")
        for si, s in enumerate(g):
            lines.append("    " + json.dumps(s) + ("," if si + 1 < len(g) else ""))
        lines.append("  ]" + ("," if gi + 1 < len(b["groups"]) else ""))
    lines.append("]}")
    text = "\n".join(lines) + "\n"
    assert json.loads(text) == b
    return text


def main():
    files = {os.path.join(HERE, k): dump_batch(v) for k, v in batches.items()}
    files[os.path.join(HERE, "expected.json")] = dump(expected)
    if "--check" in sys.argv[1:]:
        bad = [p for p, t in files.items()
               if not os.path.exists(p) or open(p, encoding="utf-8").read() != t]
        for p in bad:
            print("gen_expected: out of date:", os.path.relpath(p, HERE))
        print("gen_expected: %d cases, %d files, %s" % (len(cases), len(files),
                                                         "stale" if bad else "up to date"))
        return 1 if bad else 0
    for p, t in files.items():
        with open(p, "w", encoding="utf-8") as f:
            f.write(t)
    print("gen_expected: all §9 checks passed; wrote %d cases and %d files" % (len(cases), len(files)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
