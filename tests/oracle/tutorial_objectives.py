"""Float64 PyTorch oracles of the tutorial's objectives (docs/tutorial.md, examples/tutorial_*.rein).

Written from the published formulas as docs/tutorial.md states them, not from the .rein files
(which were read for param and metric names only), and on purpose in a different shape from the
programs: the leave-one-out baseline is a loop over the other responses, the overlong penalty is
the paper's three cases, the best response is found by scanning the group.  Importing this module
adds the objectives to torch_objectives.OBJECTIVES (prefix `tut_`), so run_oracle.py compares
them like every other objective: loss, metrics and both gradients on the seeded batches, whole and
in micro-batches, through the interpreter and the compiled code, at the defaults and at VARIANTS.

Conventions shared with torch_objectives.py: the batch is padded to [S, T] with a mask, the
token-mean is exactly sum / N, "mean over responses" counts every response of the batch (empty
ones included), and gradients come from autograd on the padded logp.
"""

import math

import torch

import torch_objectives as O

DT = O.DT


def _groups(P):
    """The sequence indices of each group, in batch order."""
    out = [[] for _ in range(P.n_groups)]
    for i, (g, _) in enumerate(P.index):
        out[g].append(i)
    return out


def tut_rloo(P, p):
    """RLOO: A_i = r_i - mean of the other responses' rewards (0 in a one-response group);
    loss = mean over responses of -A_i * sum_t logp_it; metric adv_abs = mean |A_i|."""
    A = torch.zeros(P.S, dtype=DT)
    for idx in _groups(P):
        if len(idx) < 2:
            continue
        for i in idx:
            others = [float(P.reward[j]) for j in idx if j != i]
            A[i] = float(P.reward[i]) - sum(others) / len(others)
    per_seq = -A * O.seq_sum(P.logp, P.mask)
    return per_seq.mean(), {"adv_abs": A.abs().mean()}


def overlong_penalty(length, max_len, cache_len):
    """DAPO's soft overlong punishment of a response of `length` tokens."""
    expected = max_len - cache_len
    if length <= expected:
        return 0.0
    if length <= max_len:
        return (expected - length) / cache_len
    return -1.0


def tut_dapo_overlong(P, p):
    """Length-shaped reward r + penalty (max_new: the trainer constant; run_oracle.py's batches
    carry 20480, the default here, and the variant --sets it), group z-score with the Bessel std + 1e-6, PPO-clip with
    r = exp(clamp(logp - old_logp, +-20)) and (eps_low, eps_high), token-mean."""
    pen = torch.tensor([overlong_penalty(int(n), p["max_new"], p["cache_len"])
                        for n in P.lengths], dtype=DT)
    shaped = P.reward + pen
    A = O.adv_zscore(shaped, P.group, P.n_groups, eps=1e-6, ddof=1)
    L, _, _ = O.ppo_clip_terms(P.tok(A), P.logp, P.old_logp, p["eps_low"], p["eps_high"])
    return O.token_mean(L, P.mask), {"overlong_penalty": pen.mean(),
                                     "overlong_frac": (pen < 0).to(DT).mean()}


def tut_best_of_group(P, p):
    """Only the first response with the group's top reward learns, with A = its margin over the
    best of the others; loss -A * logp, token-mean; metric margin = mean A over those responses
    (over the groups with more than one response, plus one-response groups at A = 0)."""
    A = torch.zeros(P.S, dtype=DT)
    best_ids = []
    for idx in _groups(P):
        top = max(float(P.reward[i]) for i in idx)
        best = next(i for i in idx if float(P.reward[i]) == top)
        best_ids.append(best)
        if len(idx) > 1:
            A[best] = top - max(float(P.reward[j]) for j in idx if j != best)
    margin = A[best_ids].mean()
    return O.token_mean(-P.tok(A) * P.logp, P.mask), {"margin": margin}


def tut_seq_tis(P, p):
    """REINFORCE (A = r - group mean) times the detached, truncated sequence importance weight
    w_i = min(exp(clamp(sum_t (logp - old_logp), +-20)), cap), token-mean; metrics: the share of
    responses with exp(clamped log-weight) > cap, and the mean weight over responses."""
    log_w = torch.clamp(O.seq_sum(P.logp - P.old_logp, P.mask), -20.0, 20.0).detach()
    raw = torch.exp(log_w)
    w = torch.clamp(raw, max=p["cap"])
    A = O.adv_mean_baseline(P.reward, P.group, P.n_groups)
    L = -P.tok(w * A) * P.logp
    return O.token_mean(L, P.mask), {"trunc_frac": (raw > p["cap"]).to(DT).mean(),
                                     "w_mean": w.mean()}



def _median(vals):
    """The median of a list: the middle value, or the mean of the two middle ones."""
    v = sorted(vals)
    n = len(v)
    return v[n // 2] if n % 2 else 0.5 * (v[n // 2 - 1] + v[n // 2])


def tut_median_baseline(P, p):
    """A = r - median of the group's rewards; -A * logp, token-mean; metrics: the mean |A| over
    the responses and the share of responses with A = 0."""
    A = torch.zeros(P.S, dtype=DT)
    for idx in _groups(P):
        med = _median([float(P.reward[i]) for i in idx])
        for i in idx:
            A[i] = float(P.reward[i]) - med
    return O.token_mean(-P.tok(A) * P.logp, P.mask), {"adv_abs": A.abs().mean(),
                                                      "zero_frac": (A == 0).to(DT).mean()}



def tut_entropy_8020(P, p):
    """Top ceil(keep_top * N - 1e-9) of the batch's N tokens by entropy (ties: the earlier token
    in batch order) keep DAPO's per-token loss (A_z1, PPO-clip with clamped log-ratio), the rest
    0; token-mean over all N.  Metrics: the share selected, the lowest selected entropy."""
    toks = [(i, t) for i in range(P.S) for t in range(int(P.lengths[i]))]
    order = sorted(range(len(toks)), key=lambda k: (-float(P.entropy[toks[k]]), k))
    n_hot = max(0, math.ceil(p["keep_top"] * len(toks) - 1e-9))
    hot = torch.zeros(P.S, P.T, dtype=torch.bool)
    for k in order[:n_hot]:
        hot[toks[k]] = True
    A = O.adv_zscore(P.reward, P.group, P.n_groups, eps=1e-6, ddof=1)
    L, _, _ = O.ppo_clip_terms(P.tok(A), P.logp, P.old_logp, p["eps_low"], p["eps_high"])
    loss = O.token_mean(torch.where(hot, L, torch.zeros_like(L)), P.mask)
    cut = min((float(P.entropy[toks[k]]) for k in order[:n_hot]), default=0.0)
    return loss, {"hot_frac": O.token_mean(hot.to(DT), P.mask),
                  "entropy_cut": torch.tensor(cut, dtype=DT)}


def tut_adaptive_kl(P, p):
    """PPO's adaptive KL penalty: -token-mean(r * A_z) + beta * d, d = token-mean of
    (r - 1) - log r, r = exp(clamp(logp - old_logp, +-20)); the next beta doubles when
    d > 1.5 * kl_target, halves when d < kl_target / 1.5, else stays.  beta is a state whose
    initial value is the param `beta`."""
    A = P.tok(O.adv_zscore(P.reward, P.group, P.n_groups, eps=1e-6, ddof=0))
    delta = torch.clamp(P.logp - P.old_logp, -20.0, 20.0)
    r = torch.exp(delta)
    d = O.token_mean(r - 1 - delta, P.mask)
    beta = p["beta"]
    loss = -O.token_mean(r * A, P.mask) + beta * d
    dv = float(d)
    if dv > 1.5 * p["kl_target"]:
        nxt = 2 * beta
    elif dv < p["kl_target"] / 1.5:
        nxt = beta / 2
    else:
        nxt = beta
    return loss, {"kl_old": d.detach()}, {"beta": nxt}


TUTORIAL = {
    "tut_rloo": (tut_rloo, {}, ["adv_abs"], "examples/tutorial_rloo.rein"),
    "tut_dapo_overlong": (tut_dapo_overlong,
                          {"eps_low": 0.2, "eps_high": 0.28, "max_new": 20480.0,
                           "cache_len": 4096.0},
                          ["overlong_penalty", "overlong_frac"],
                          "examples/tutorial_dapo_overlong.rein"),
    "tut_best_of_group": (tut_best_of_group, {}, ["margin"],
                          "examples/tutorial_best_of_group.rein"),
    "tut_seq_tis": (tut_seq_tis, {"cap": 2.0}, ["trunc_frac", "w_mean"],
                    "examples/tutorial_seq_tis.rein"),
    "tut_median_baseline": (tut_median_baseline, {}, ["adv_abs", "zero_frac"],
                            "examples/tutorial_median_baseline.rein"),
    "tut_entropy_8020": (tut_entropy_8020, {"eps_low": 0.2, "eps_high": 0.28, "keep_top": 0.2},
                         ["hot_frac", "entropy_cut"], "examples/tutorial_entropy_8020.rein"),
    "tut_adaptive_kl": (tut_adaptive_kl, {"kl_target": 0.01, "beta": 1.0}, ["kl_old"],
                        "examples/tutorial_adaptive_kl.rein"),
}

# One non-default configuration each (run_oracle.py checks that it changes the answer).  The
# generated responses have at most 9 tokens, so the DAPO variant shrinks max_new to make the
# penalty bite: zero up to 4 tokens, then -1/8 per token; it never reaches -1, so a shaped reward
# never lands a rounding error away from another one (0.9 - 1 against -0.1).
VARIANTS = {
    "tut_rloo": None,
    "tut_dapo_overlong": {"max_new": 12.0, "cache_len": 8.0},
    "tut_best_of_group": None,
    "tut_seq_tis": {"cap": 1.5},
    "tut_median_baseline": None,
    "tut_entropy_8020": {"keep_top": 0.5},
    "tut_adaptive_kl": {"kl_target": 0.25, "beta": 0.5},
}

O.OBJECTIVES.update(TUTORIAL)
O.BATCH_KIND.update({n: "token" for n in TUTORIAL})
