"""Float64 PyTorch reference implementations of Rein's standard objectives.

Written from the formulas of ../shared/spec/algorithms.md (sections 1-4, 9) and
../shared/spec/peer-losses.md (GSPO), in the style of the reference code (Trinity-RFT): the
ragged batch is padded to [num_seqs, T_max] tensors with a response mask m, every sequence carries
its group index, and the token-mean is sum(v * m) / sum(m).  The .rein programs are what is under
test; they were read only for parameter names, defaults, metric names and the conventions Rein
chose where algorithms.md offers options (population std, empty reductions give 0, no +1e-8 in
the token-mean).

Gradients come from torch autograd: the padded logp and entropy tensors are leaves with
requires_grad, so d loss / d logp and d loss / d entropy per token are exactly what the formulas
imply (padding positions are masked out and dropped when the gradients are unpadded).

Only /usr/bin/python3 has torch (Debian python3-torch).  Everything is torch.float64.
"""

import math

import torch

DT = torch.float64


# --------------------------------------------------------------------------------------------
# The padded batch


class Padded:
    """A batch of language.md section 6 padded to [S, T] tensors.

    S = number of sequences of the whole batch (groups flattened in order), T = max(1, longest
    sequence).  mask[i, t] = 1 for t < len_i.  group[i] = index of sequence i's group.
    """

    def __init__(self, batch):
        groups = batch["groups"]
        self.n_groups = len(groups)
        self.index = []  # (group, position in group) of each flattened sequence
        seqs = []
        for g, grp in enumerate(groups):
            for j, seq in enumerate(grp):
                self.index.append((g, j))
                seqs.append(seq)
        self.S = len(seqs)
        lens = [len(s.get("logp", [])) for s in seqs]
        self.T = max([1] + lens)
        S, T = self.S, self.T

        def pad(field):
            out = torch.zeros(S, T, dtype=DT)
            for i, s in enumerate(seqs):
                vals = s.get(field)
                if vals is None:
                    vals = [0.0] * lens[i]
                if len(vals) != lens[i]:
                    raise ValueError("sequence %s: %s has %d values, logp %d"
                                     % (self.index[i], field, len(vals), lens[i]))
                if lens[i]:
                    out[i, :lens[i]] = torch.tensor(vals, dtype=DT)
            return out

        self.logp = pad("logp").requires_grad_(True)
        self.entropy = pad("entropy").requires_grad_(True)
        self.old_logp = pad("old_logp")
        self.ref_logp = pad("ref_logp")
        self.lengths = torch.tensor(lens, dtype=torch.long)
        self.len = self.lengths.to(DT)
        self.mask = (torch.arange(T).unsqueeze(0) < self.lengths.unsqueeze(1)).to(DT)
        self.pos = torch.arange(T, dtype=DT).unsqueeze(0).expand(S, T) * self.mask
        self.reward = torch.tensor([float(s.get("reward", 0.0)) for s in seqs], dtype=DT)
        self.truncated = torch.tensor([bool(s.get("truncated", False)) for s in seqs],
                                      dtype=torch.bool)
        self.lag = torch.tensor([float(s.get("lag", 0)) for s in seqs], dtype=DT)
        self.group = torch.tensor([g for g, _ in self.index], dtype=torch.long)
        self.seed = int(batch.get("seed", 0))
        self.step = int(batch.get("step", 0))

    def tok(self, seq_value):
        """Broadcast a per-sequence [S] value to the tokens: [S, T]."""
        return seq_value.unsqueeze(1).expand(self.S, self.T)

    def unpad(self, t):
        """[S, T] tensor -> nested list group -> sequence -> token (floats)."""
        out = [[] for _ in range(self.n_groups)]
        for i, (g, _) in enumerate(self.index):
            n = int(self.lengths[i])
            out[g].append([float(x) for x in t[i, :n]])
        return out


# --------------------------------------------------------------------------------------------
# Reductions (Rein's conventions: an empty mean is 0; the token-mean is exactly sum / N)


def token_mean(v, m, eps=0.0):
    """masked_mean of algorithms.md section 1: sum(v*m) / (sum(m) + eps).

    Rein uses eps = 0 (and 0 for an empty batch); the golden numbers of section 9 use eps = 1e-8.
    The masked-out entries are replaced by 0 first (torch.where), as in the later reference code.
    """
    s = torch.where(m > 0, v, torch.zeros_like(v)).sum()
    n = m.sum()
    if float(n) + eps == 0.0:
        return s * 0.0
    return s / (n + eps)


def group_mean(x, group, n_groups):
    """Mean of a per-sequence value over each group, broadcast back to the sequences ([S])."""
    sums = torch.zeros(n_groups, dtype=DT).index_add(0, group, x)
    cnt = torch.zeros(n_groups, dtype=DT).index_add(0, group, torch.ones_like(x))
    mean = torch.where(cnt > 0, sums / cnt.clamp(min=1.0), torch.zeros_like(sums))
    return mean[group]


def group_std(x, group, n_groups, ddof=0):
    """Per-group standard deviation, broadcast to sequences.  ddof=0: population (what Rein's
    std[group] and the REC advantage use); ddof=1: Bessel (torch.std), one element gives 0."""
    mu = group_mean(x, group, n_groups)
    sq = torch.zeros(n_groups, dtype=DT).index_add(0, group, (x - mu) ** 2)
    cnt = torch.zeros(n_groups, dtype=DT).index_add(0, group, torch.ones_like(x))
    denom = cnt - ddof
    var = torch.where(denom > 0, sq / denom.clamp(min=1.0), torch.zeros_like(sq))
    return torch.sqrt(var)[group]


# --------------------------------------------------------------------------------------------
# Advantages (algorithms.md section 2), one scalar per sequence


def adv_mean_baseline(reward, group, n_groups):
    """REC advantage, std_normalize = false: A = r - group mean (one-sequence group: A = 0)."""
    return reward - group_mean(reward, group, n_groups)


def adv_zscore(reward, group, n_groups, eps=1e-6, ddof=0):
    """REC advantage with std_normalize (population std, ddof=0) or Trinity grpo (ddof=1):
    A = (r - mean) / (std + eps)."""
    return (reward - group_mean(reward, group, n_groups)) / (
        group_std(reward, group, n_groups, ddof) + eps)


# --------------------------------------------------------------------------------------------
# The REC per-token loss (algorithms.md section 3.2), advantage given


def keep_one_side(A, rho, eps_low, eps_high):
    return ((A >= 0) & (rho <= 1 + eps_high)) | ((A <= 0) & (rho >= 1 - eps_low))


def keep_two_side(A, rho, eps_low, eps_high):
    return (rho >= 1 - eps_low) & (rho <= 1 + eps_high)


def keep_ring(A, rho, eps_low, eps_high, eps_low2, eps_high2):
    return (((rho >= 1 - eps_low) & (rho <= 1 + eps_high))
            | ((A >= 0) & (rho <= 1 - eps_low2))
            | ((A <= 0) & (rho >= 1 + eps_high2)))


def rec_token_terms(A, logp, old_logp, clip_mode="none", weight="none", eps_low=0.2,
                    eps_high=0.2, eps_low2=0.6, eps_high2=2.0, regularizer="none", c=0.0,
                    T=1.0):
    """Steps 1-3 of section 3.2 on [S, T] tensors.  A is the (constant) advantage broadcast to
    the tokens.  Returns (L, M): the per-token loss L = -Atilde*M*logp + R and the keep-mask M."""
    rho = torch.exp(logp - old_logp).detach()
    A = A.detach()
    if clip_mode == "none":
        M = torch.ones_like(rho, dtype=torch.bool)
    elif clip_mode == "one-side":
        M = keep_one_side(A, rho, eps_low, eps_high)
    elif clip_mode == "two-side":
        M = keep_two_side(A, rho, eps_low, eps_high)
    elif clip_mode == "ring":
        M = keep_ring(A, rho, eps_low, eps_high, eps_low2, eps_high2)
    else:
        raise ValueError(clip_mode)
    if weight == "none":
        At = A
    elif weight == "importance_sampling":
        At = A * rho
    elif weight == "advantage":
        At = A * torch.exp(A / T)
    else:
        raise ValueError(weight)
    if regularizer == "none":
        R = torch.zeros_like(logp)
    elif regularizer == "k2":
        R = c * (logp - old_logp) ** 2
    elif regularizer == "forward-kl":
        R = -c * logp
    else:
        raise ValueError(regularizer)
    L = -At * M.to(DT) * logp + R
    return L, M


def rec_loss(A, logp, old_logp, m, eps=0.0, **kw):
    """Step 4: (pg_loss, clip_frac) = (token-mean(L), token-mean(not M))."""
    L, M = rec_token_terms(A, logp, old_logp, **kw)
    return token_mean(L, m, eps), token_mean((~M).to(DT), m, eps)


def ppo_clip_token_loss(A, logp, old_logp, eps_low, eps_high):
    """-min(rho*A, clip(rho, 1-eps_low, 1+eps_high)*A) with rho = exp(logp - old_logp) NOT
    detached (the gradient flows through rho)."""
    rho = torch.exp(logp - old_logp)
    return -torch.minimum(rho * A, torch.clamp(rho, 1 - eps_low, 1 + eps_high) * A)


# --------------------------------------------------------------------------------------------
# The objectives: f(P, params) -> (loss tensor, {metric: tensor})


def _adv(P):
    return P.tok(adv_mean_baseline(P.reward, P.group, P.n_groups))


def obj_reinforce(P, p):
    L, _ = rec_token_terms(_adv(P), P.logp, P.old_logp)
    return token_mean(L, P.mask), {}


def _rec(clip_mode, weight):
    def f(P, p):
        loss, clip_frac = rec_loss(_adv(P), P.logp, P.old_logp, P.mask, clip_mode=clip_mode,
                                   weight=weight, **p)
        return loss, {"clip_frac": clip_frac}
    return f


def obj_rec_ring_nois(P, p):
    loss, clip_frac = rec_loss(_adv(P), P.logp, P.old_logp, P.mask, clip_mode="ring",
                               weight="none", **p)
    ratio = torch.exp(P.logp - P.old_logp).detach()
    return loss, {"clip_frac": clip_frac, "ratio_mean": token_mean(ratio, P.mask)}


def obj_grpo(P, p):
    A = P.tok(adv_zscore(P.reward, P.group, P.n_groups, eps=1e-6, ddof=0))
    L = ppo_clip_token_loss(A, P.logp, P.old_logp, p["eps_low"], p["eps_high"])
    return token_mean(L, P.mask), {}


def obj_opmd(P, p):
    L, _ = rec_token_terms(_adv(P), P.logp, P.old_logp, regularizer="k2", c=p["c"])
    return token_mean(L, P.mask), {}


def obj_asymre(P, p):
    L, _ = rec_token_terms(_adv(P), P.logp, P.old_logp, regularizer="forward-kl", c=p["c"])
    return token_mean(L, P.mask), {}


def obj_red_weight(P, p):
    L, _ = rec_token_terms(_adv(P), P.logp, P.old_logp, weight="advantage", T=p["T"])
    return token_mean(L, P.mask), {}


M64 = (1 << 64) - 1


def splitmix64(x):
    z = (x + 0x9E3779B97F4A7C15) & M64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return z ^ (z >> 31)


def rein_uniform(seed, step, group, seq):
    """uniform() as docs/language.md defines it: SplitMix64 chained over (seed, step, group index
    in the batch, sequence index in the group), top 24 bits scaled by 2^-24."""
    h = splitmix64(splitmix64(splitmix64(splitmix64(seed) ^ step) ^ group) ^ seq)
    return (h >> 40) / 16777216.0


def adv_red_drop(P):
    """REC advantage with drop = "balance" (algorithms.md section 2.1): positives r >= group mean;
    when negatives outnumber positives, n_neg - n_pos of them are dropped at random (A = 0) and
    the mean is taken over the kept ones; kept samples get A = r - mean(kept).  The random choice
    is Rein's seeded one: the n_pos negatives with the smallest uniform() draw (ties: earlier
    sequence first) are kept.  A one-sequence group keeps its sample, A = r - r = 0 (the
    reference code fails there; Rein's documented choice)."""
    A = torch.zeros(P.S, dtype=DT)
    r = P.reward
    for g in range(P.n_groups):
        idx = [i for i in range(P.S) if int(P.group[i]) == g]
        mu0 = sum(float(r[i]) for i in idx) / len(idx)
        pos = [i for i in idx if float(r[i]) >= mu0]
        neg = [i for i in idx if float(r[i]) < mu0]
        draws = sorted(neg, key=lambda i: (rein_uniform(P.seed, P.step, g, P.index[i][1]), i))
        kept = set(pos) | set(draws[:len(pos)])
        mu = sum(float(r[i]) for i in kept) / len(kept)
        for i in kept:
            A[i] = float(r[i]) - mu
    return A


def obj_red_drop(P, p):
    L, _ = rec_token_terms(P.tok(adv_red_drop(P)), P.logp, P.old_logp)
    return token_mean(L, P.mask), {}


def k3(logp, ref_logp):
    """k3 KL estimator of algorithms.md section 1: e^{ref-l} - 1 - (ref - l)."""
    u = ref_logp - logp
    return torch.exp(u) - 1 - u


def obj_opmd_kl(P, p):
    """OPMD (k2, c) + kl_coef * k3(logp, ref_logp) - ent_coef * entropy, token-mean."""
    L, _ = rec_token_terms(_adv(P), P.logp, P.old_logp, regularizer="k2", c=p["c"])
    L = L + p["kl_coef"] * k3(P.logp, P.ref_logp) - p["ent_coef"] * P.entropy
    sigma = group_std(P.reward, P.group, P.n_groups, ddof=0)
    # adv_std: mean over the groups of (population std + 1e-6)
    per_group = torch.zeros(P.n_groups, dtype=DT).index_add(0, P.group, sigma)
    cnt = torch.zeros(P.n_groups, dtype=DT).index_add(0, P.group, torch.ones_like(sigma))
    adv_std = ((per_group / cnt) + 1e-6).mean()
    return token_mean(L, P.mask), {
        "kl_ref": token_mean(k3(P.logp.detach(), P.ref_logp), P.mask),
        "entropy_m": token_mean(P.entropy.detach(), P.mask),
        "adv_std": adv_std,
    }


def gspo_seq_ratio(logp, old_logp, m, lengths):
    """s_i = exp(masked mean over the sequence's tokens of (logp - old_logp)); gradient flows
    through every token (the direct form of TRL `sequence` / OpenRLHF / Liger).  An empty
    sequence has mean 0, so s = 1."""
    d = torch.where(m > 0, logp - old_logp, torch.zeros_like(logp)).sum(1)
    n = lengths.to(DT)
    mean = torch.where(n > 0, d / n.clamp(min=1.0), torch.zeros_like(d))
    return torch.exp(mean)


def obj_gspo(P, p):
    el, eh = p["eps_low"], p["eps_high"]
    A = adv_zscore(P.reward, P.group, P.n_groups, eps=1e-6, ddof=0)
    s = gspo_seq_ratio(P.logp, P.old_logp, P.mask, P.lengths)
    per_seq = -torch.minimum(s * A, torch.clamp(s, 1 - el, 1 + eh) * A)
    loss = per_seq.mean()  # mean over the sequences of the batch (empty ones included)
    sd = s.detach()
    clipped = ((sd < 1 - el) | (sd > 1 + eh)).to(DT)
    not_trunc = ~P.truncated
    if int(not_trunc.sum()) > 0:
        mean_tokens = P.len[not_trunc].mean()
    else:
        mean_tokens = torch.zeros((), dtype=DT)
    return loss, {
        "seq_clip_frac": clipped.mean(),
        "long_frac": (P.len > 512).to(DT).sum() / P.S,
        "mean_tokens": mean_tokens,
    }


# name -> (function, default params, metric names, file relative to the repository root)
REC_P = {"eps_low": 0.2, "eps_high": 0.2}
RING_P = {"eps_low": 0.2, "eps_high": 0.2, "eps_low2": 0.6, "eps_high2": 2.0}
OBJECTIVES = {
    "reinforce": (obj_reinforce, {}, [], "lang/std/reinforce.rein"),
    "grpo": (obj_grpo, dict(REC_P), [], "lang/std/grpo.rein"),
    "rec_oneside_nois": (_rec("one-side", "none"), dict(REC_P), ["clip_frac"],
                         "lang/std/rec_oneside_nois.rein"),
    "rec_oneside_is": (_rec("one-side", "importance_sampling"), dict(REC_P), ["clip_frac"],
                       "lang/std/rec_oneside_is.rein"),
    "rec_twoside_nois": (_rec("two-side", "none"), dict(REC_P), ["clip_frac"],
                         "lang/std/rec_twoside_nois.rein"),
    "rec_twoside_is": (_rec("two-side", "importance_sampling"), dict(REC_P), ["clip_frac"],
                       "lang/std/rec_twoside_is.rein"),
    "rec_ring_is": (_rec("ring", "importance_sampling"), dict(RING_P), ["clip_frac"],
                    "lang/std/rec_ring_is.rein"),
    "rec_ring_nois": (obj_rec_ring_nois, dict(RING_P), ["clip_frac", "ratio_mean"],
                      "examples/rec_ring_nois.rein"),
    "opmd": (obj_opmd, {"c": 0.1}, [], "lang/std/opmd.rein"),
    "asymre": (obj_asymre, {"c": 0.1}, [], "lang/std/asymre.rein"),
    "red_weight": (obj_red_weight, {"T": 1.0}, [], "lang/std/red_weight.rein"),
    "red_drop": (obj_red_drop, {}, [], "lang/std/red_drop.rein"),
    "gspo": (obj_gspo, {"eps_low": 3e-4, "eps_high": 4e-4},
             ["seq_clip_frac", "long_frac", "mean_tokens"], "examples/gspo.rein"),
    "opmd_kl": (obj_opmd_kl, {"c": 0.1, "kl_coef": 0.0, "ent_coef": 0.0},
                ["kl_ref", "entropy_m", "adv_std"], "examples/opmd_kl.rein"),
}


def evaluate(name, batch, overrides=None):
    """Evaluate objective `name` on a batch dict (language.md section 6).

    Returns {"loss": float, "metrics": {name: float}, "grad": {"logp": nested, "entropy": nested}}
    in the shape `rein eval` prints.
    """
    fn, defaults, metric_names, _ = OBJECTIVES[name]
    params = dict(defaults)
    for k, v in (overrides or {}).items():
        if k not in params:
            raise KeyError("objective %s has no param %s" % (name, k))
        params[k] = float(v)
    P = Padded(batch)
    loss, metrics = fn(P, params)
    assert sorted(metrics) == sorted(metric_names), (name, sorted(metrics))
    if loss.requires_grad:
        gl, ge = torch.autograd.grad(loss, [P.logp, P.entropy], allow_unused=True)
    else:  # no token at all: the loss is a constant 0
        gl, ge = None, None
    gl = torch.zeros_like(P.logp) if gl is None else gl
    ge = torch.zeros_like(P.entropy) if ge is None else ge
    return {
        "loss": float(loss),
        "metrics": {k: float(v) for k, v in metrics.items()},
        "grad": {"logp": P.unpad(gl), "entropy": P.unpad(ge)},
    }


def is_close(a, b, atol=1e-6, rtol=1e-6):
    """|a - b| <= atol + rtol*|b|, with NaN == NaN and equal infinities equal."""
    if math.isnan(b):
        return math.isnan(a)
    if math.isinf(b):
        return a == b
    if math.isnan(a) or math.isinf(a):
        return False
    return abs(a - b) <= atol + rtol * abs(b)
