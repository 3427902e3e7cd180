"""Float64 PyTorch reference implementations of Rein's standard objectives.

Written from the formulas of docs/algorithms.md (notation, advantages, the REC family, the paper's
and the peer algorithms, KL terms, hand-computed checks) and the table of docs/objectives.md, in the style of the
reference code (Trinity-RFT): the ragged batch is padded to [num_seqs, T_max] tensors with a
response mask m, every sequence carries its group index, and the token-mean is sum(v * m) / sum(m).
The .rein programs are what is under test; they were read only for parameter names, defaults,
metric names and the choices their header comments document where the sources offer options
(population vs Bessel std, empty reductions give 0, no +1e-8 in the token-mean, seq-mean over
every sequence including zero-token ones, strict "clipped branch taken" tests, metrics without
the coefficient).

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

        self.inputs = {}  # extra token inputs (language.md section 6, "inputs": {NAME: [...]})
        for name in sorted({k for s in seqs for k in (s.get("inputs") or {})}):
            self.inputs[name] = pad_input(seqs, name, lens, S, T)
        self.logp = pad("logp").requires_grad_(True)
        self.entropy = pad("entropy").requires_grad_(True)
        self.old_logp = pad("old_logp")
        self.ref_logp = pad("ref_logp")
        self.rollout_logp = pad("rollout_logp")
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


def pad_input(seqs, name, lens, S, T):
    """An extra token input of every sequence ("inputs": {name: [...]}), padded to [S, T]."""
    out = torch.zeros(S, T, dtype=DT)
    for i, s in enumerate(seqs):
        vals = (s.get("inputs") or {}).get(name)
        if vals is None:
            raise ValueError("sequence %d: input %s is missing" % (i, name))
        if len(vals) != lens[i]:
            raise ValueError("sequence %d: input %s has %d values, logp %d"
                             % (i, name, len(vals), lens[i]))
        if lens[i]:
            out[i, :lens[i]] = torch.tensor(vals, dtype=DT)
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


def seq_sum(v, m):
    """Per-sequence masked sum over the tokens: [S, T] -> [S]."""
    return torch.where(m > 0, v, torch.zeros_like(v)).sum(1)


def seq_token_mean(v, m):
    """Per-sequence masked mean over the tokens, [S, T] -> [S]; a zero-token sequence gives 0."""
    n = m.sum(1)
    return torch.where(n > 0, seq_sum(v, m) / n.clamp(min=1.0), torch.zeros_like(n))


def seq_mean(x):
    """seq-mean: the mean over all the batch's sequences (zero-token ones included), [S] -> []."""
    return x.mean()


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
    # the paper's GRPO: Trinity's ppo loss (dual clip always on, clip_ratio_c = 3 by default)
    # with the REC advantage under std_normalize (population std + 1e-6)
    A = P.tok(adv_zscore(P.reward, P.group, P.n_groups, eps=1e-6, ddof=0))
    L, clipped, dual = ppo_dual_clip_terms(A, P.logp, P.old_logp, p["eps_low"], p["eps_high"],
                                           p["clip_c"])
    return token_mean(L, P.mask), {"clip_frac": token_mean(clipped.to(DT), P.mask),
                                   "dual_clip_frac": token_mean(dual.to(DT), P.mask)}


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
    reference code fails there; Rein's documented choice).  Returns (A, dropped): dropped[i] is
    1.0 for a dropped sequence."""
    A = torch.zeros(P.S, dtype=DT)
    dropped = torch.ones(P.S, dtype=DT)
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
            dropped[i] = 0.0
    return A, dropped


def obj_red_drop(P, p):
    A, dropped = adv_red_drop(P)
    L, _ = rec_token_terms(P.tok(A), P.logp, P.old_logp)
    # drop_balance: the share of the batch's sequences dropped (the reference's per-group
    # #dropped / N, over the whole batch)
    return token_mean(L, P.mask), {"drop_balance": dropped.sum() / P.S}


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


# --------------------------------------------------------------------------------------------
# The objectives added with docs/objectives.md's table (peer-losses.md section 2 and
# algorithms.md sections 3-5), written from the table's formulas.  A_z1 is the peers' GRPO
# advantage (section 2.4) as verl computes it: (r - group mean) / (Bessel std + 1e-6), and a group
# of one response takes mean 0 and std 1, so A = r / (1 + 1e-6) there.  seq-mean counts every
# sequence of the batch, zero-token ones included (the table: "mean over the batch's sequences"),
# except verl's forced seq-mean-token-mean (gspo_sg, sapo), which counts only the sequences with
# tokens (seq_mean_nonempty).


def adv_verl_grpo(reward, group, n_groups, eps=1e-6, norm_by_std=True):
    """verl's GRPO outcome advantage (peer-losses 2.4), group by group: a group of n >= 2 responses
    has mean mu and Bessel std sigma (torch.std); a group of one has mu = 0, sigma = 1.
    A = (r - mu) / (sigma + eps), or r - mu without the std (Dr.GRPO).  [S] -> [S]."""
    A = torch.zeros_like(reward)
    for g in range(n_groups):
        idx = (group == g).nonzero().flatten()
        r = reward[idx]
        if len(idx) == 1:
            mu, sigma = 0.0, 1.0
        else:
            mu, sigma = r.mean(), r.std(unbiased=True)
        A[idx] = (r - mu) / (sigma + eps) if norm_by_std else r - mu
    return A


def _adv_z1(P):
    return adv_verl_grpo(P.reward, P.group, P.n_groups)


def seq_mean_nonempty(x, lengths):
    """verl's seq-mean (agg_loss, seq-mean-*): the mean of a per-sequence value over the sequences
    with at least one token; 0 when there is none.  [S] -> []."""
    keep = lengths > 0
    n = int(keep.sum())
    if n == 0:
        return x.sum() * 0.0
    return torch.where(keep, x, torch.zeros_like(x)).sum() / n


def ppo_clip_terms(A, logp, old_logp, eps_low, eps_high, clamp_delta=True):
    """verl's PPO-clip per token: r = exp(clamp(logp - old_logp, -20, 20)) NOT detached,
    L = max(-A*r, -A*clip(r, 1-eps_low, 1+eps_high)).  Returns (L, clipped, r) where clipped is
    'the clipped branch is taken' (-A*clip(r) > -A*r, strict), detached."""
    d = logp - old_logp
    if clamp_delta:
        d = torch.clamp(d, -20.0, 20.0)
    r = torch.exp(d)
    l_un = -A * r
    l_cl = -A * torch.clamp(r, 1 - eps_low, 1 + eps_high)
    return torch.maximum(l_un, l_cl), (l_cl > l_un).detach(), r


def rec_wide(weight):
    # the one-side mask with the wide default range (0.6, 2.0): same function, other defaults
    return _rec("one-side", weight)


def rec_gspo_terms(A, P, eps_low, eps_high, weight):
    """REC-GSPO (algorithms.md section 3.2, clip_mode gspo-one-side): s_i = sg(exp(masked mean of
    logp - old_logp)); keep_i = one-side rule on s_i; L = -A*(s_i)*keep_i*logp (IS: times s_i).
    Returns (loss seq-mean-token-mean, clip fraction).  The clip fraction is the reference's
    pg_clipfrac = masked_mean(not M, m) with the sequence's mask M broadcast to its tokens: the
    share of the batch's tokens in dropped sequences (0 for a batch without tokens)."""
    s = gspo_seq_ratio(P.logp, P.old_logp, P.mask, P.lengths).detach()
    keep = keep_one_side(A, s, eps_low, eps_high)
    w = A * s if weight == "is" else A
    L = -P.tok(w * keep.to(DT)) * P.logp
    return seq_mean(seq_token_mean(L, P.mask)), token_mean(P.tok((~keep).to(DT)), P.mask)


def _rec_gspo(weight):
    def f(P, p):
        loss, cf = rec_gspo_terms(adv_mean_baseline(P.reward, P.group, P.n_groups), P,
                                  p["eps_low"], p["eps_high"], weight)
        return loss, {"clip_frac": cf}
    return f


def obj_opmd_seq(P, p):
    """Paper form of OPMD (algorithms.md section 5.4): per sequence
    -A*sum_t logp + (tau/2)*(sum_t (logp - old_logp))^2, seq-mean."""
    A = adv_mean_baseline(P.reward, P.group, P.n_groups)
    per_seq = -A * seq_sum(P.logp, P.mask) + p["tau"] / 2 * seq_sum(P.logp - P.old_logp,
                                                                      P.mask) ** 2
    return seq_mean(per_seq), {}


def ppo_dual_clip_terms(A, logp, old_logp, eps_low, eps_high, clip_c):
    """peer-losses 2.1: L = L_clip for A >= 0, min(L_clip, -c*A) for A < 0.  Returns
    (L, clipped, dual): dual = A < 0 and L_clip > -c*A (strict)."""
    L, clipped, _ = ppo_clip_terms(A, logp, old_logp, eps_low, eps_high)
    cap = -clip_c * A
    neg = A < 0
    dual = (neg & (L > cap)).detach()
    return torch.where(neg, torch.minimum(L, cap), L), clipped, dual


def obj_ppo_dual_clip(P, p):
    A = P.tok(_adv_z1(P))
    L, clipped, dual = ppo_dual_clip_terms(A, P.logp, P.old_logp, p["eps_low"], p["eps_high"],
                                           p["clip_c"])
    return token_mean(L, P.mask), {"clip_frac": token_mean(clipped.to(DT), P.mask),
                                   "dual_clip_frac": token_mean(dual.to(DT), P.mask)}


def gspo_direct_terms(A, P, eps_low, eps_high):
    """GSPO direct form: s_i = exp(mean_t Delta) with the gradient through every token; per
    sequence max(-A*s, -A*clip(s)), seq-mean.  Returns (loss, token-mean of 'clipped branch')."""
    s = gspo_seq_ratio(P.logp, P.old_logp, P.mask, P.lengths)
    l_un = -A * s
    l_cl = -A * torch.clamp(s, 1 - eps_low, 1 + eps_high)
    clipped = P.tok((l_cl > l_un).detach().to(DT))
    return seq_mean(torch.maximum(l_un, l_cl)), token_mean(clipped, P.mask)


def gspo_sg_terms(A, P, eps_low, eps_high):
    """GSPO stop-gradient form: s_it = exp(min(sg(mean_t Delta) + logp - sg(logp), 10)); per token
    max(-A*s_it, -A*clip(s_it)), seq-mean-token-mean over the sequences with tokens (verl).
    Returns (loss, clip_frac token-mean)."""
    d = torch.where(P.mask > 0, P.logp - P.old_logp, torch.zeros_like(P.logp)).sum(1)
    mean = torch.where(P.len > 0, d / P.len.clamp(min=1.0), torch.zeros_like(d)).detach()
    s = torch.exp(torch.clamp(P.tok(mean) + (P.logp - P.logp.detach()), max=10.0))
    At = P.tok(A)
    l_un = -At * s
    l_cl = -At * torch.clamp(s, 1 - eps_low, 1 + eps_high)
    L = torch.maximum(l_un, l_cl)
    return (seq_mean_nonempty(seq_token_mean(L, P.mask), P.lengths),
            token_mean((l_cl > l_un).detach().to(DT), P.mask))


def obj_gspo_std(P, p):
    loss, cf = gspo_direct_terms(_adv_z1(P), P, p["eps_low"], p["eps_high"])
    return loss, {"clip_frac": cf}


def obj_gspo_sg(P, p):
    loss, cf = gspo_sg_terms(_adv_z1(P), P, p["eps_low"], p["eps_high"])
    return loss, {"clip_frac": cf}


def obj_cispo(P, p):
    """verl CISPO: -sg(clip(r, 1-el, 1+eh))*A_z1*logp, token-mean; clip_frac: r outside."""
    A = P.tok(_adv_z1(P))
    r = torch.exp(P.logp - P.old_logp).detach()
    lo, hi = 1 - p["eps_low"], 1 + p["eps_high"]
    L = -torch.clamp(r, lo, hi) * A * P.logp
    return token_mean(L, P.mask), {"clip_frac": token_mean(((r < lo) | (r > hi)).to(DT),
                                                           P.mask)}


def obj_cispo_trl(P, p):
    """TRL/Liger CISPO: -sg(min(r, eps_max))*A_z1*logp, token-mean; clip_frac: TRL's
    cispo_clip_ratio, the token share with r > eps_max and A > 0."""
    A = P.tok(_adv_z1(P))
    r = torch.exp(P.logp - P.old_logp).detach()
    L = -torch.clamp(r, max=p["eps_max"]) * A * P.logp
    capped = (r > p["eps_max"]) & (A > 0)
    return token_mean(L, P.mask), {"clip_frac": token_mean(capped.to(DT), P.mask)}


def sapo_terms(A, P, tau_pos, tau_neg):
    """SAPO per token: f = (4/tau)*sigmoid(tau*(r - 1)), tau = tau_pos if A > 0 else tau_neg,
    L = -f*A, r = exp(clamp(logp - old_logp, -20, 20)) not detached (verl clamps the log-ratio);
    seq-mean-token-mean over the sequences with tokens (verl)."""
    At = P.tok(A)
    tau = torch.where(At > 0, torch.full_like(At, tau_pos), torch.full_like(At, tau_neg))
    r = torch.exp(torch.clamp(P.logp - P.old_logp, -20.0, 20.0))
    f = 4.0 / tau * torch.sigmoid(tau * (r - 1))
    return seq_mean_nonempty(seq_token_mean(-f * At, P.mask), P.lengths)


def obj_sapo(P, p):
    return sapo_terms(_adv_z1(P), P, p["tau_pos"], p["tau_neg"]), {}


def gmpo_terms(A, P, eps_low, eps_high):
    """GMPO: D~ = sgn(A)*min(sgn(A)*D, sgn(A)*clip(D, -el, eh)); R_i = exp(masked mean of D~);
    loss = seq-mean of -Abar_i*R_i with Abar_i verl's masked mean of A over the response's tokens
    (0 for a zero-token response); clip_frac = token-mean of sgn(A)*clip(D) < sgn(A)*D
    (strict)."""
    sg_a = P.tok(torch.sign(A))
    D = P.logp - P.old_logp
    Dc = torch.clamp(D, -eps_low, eps_high)
    Dt = sg_a * torch.minimum(sg_a * D, sg_a * Dc)
    R = torch.exp(seq_token_mean(Dt, P.mask))
    Abar = seq_token_mean(P.tok(A), P.mask)
    clipped = (sg_a * Dc < sg_a * D).detach().to(DT)
    return seq_mean(-Abar * R), token_mean(clipped, P.mask)


def obj_gmpo(P, p):
    loss, cf = gmpo_terms(_adv_z1(P), P, p["eps_low"], p["eps_high"])
    return loss, {"clip_frac": cf}


def adv_gpg(P):
    """GPG advantage (peer-losses 2.4, f_norm = 1): alpha*(R - mu_g), mu_g the group mean and 0
    for a group of one response (verl's compute_gpg_outcome_advantage),
    alpha = #sequences of the batch / max(1, #sequences with R != 0)."""
    nz = float((P.reward != 0).sum())
    alpha = P.S / max(1.0, nz)
    return alpha * adv_verl_grpo(P.reward, P.group, P.n_groups, norm_by_std=False)


def obj_gpg(P, p):
    return token_mean(-P.tok(adv_gpg(P)) * P.logp, P.mask), {}


def obj_dr_grpo(P, p):
    """Dr.GRPO: PPO-clip with A = R - group mean (the mean taken as 0 for a group of one
    response: verl's GRPO estimator without the std), sum over tokens / (#sequences * max_new),
    with max_new the trainer constant (TRL's max_completion_length; the batch's "max_new")."""
    A = P.tok(adv_verl_grpo(P.reward, P.group, P.n_groups, norm_by_std=False))
    L, clipped, _ = ppo_clip_terms(A, P.logp, P.old_logp, p["eps_low"], p["eps_high"])
    loss = seq_sum(L, P.mask).sum() / (P.S * p["max_new"])
    return loss, {"clip_frac": token_mean(clipped.to(DT), P.mask)}


def obj_dapo(P, p):
    A = P.tok(_adv_z1(P))
    L, clipped, _ = ppo_clip_terms(A, P.logp, P.old_logp, p["eps_low"], p["eps_high"])
    return token_mean(L, P.mask), {"clip_frac": token_mean(clipped.to(DT), P.mask)}


def kl_estimator(kind, logp, ref_logp):
    """peer-losses 2.2, per token; k3 with verl's clamps (u to +-20, the value to +-10)."""
    if kind == "k1":
        return logp - ref_logp
    if kind == "k2":
        return 0.5 * (logp - ref_logp) ** 2
    if kind == "k3":
        u = torch.clamp(ref_logp - logp, -20.0, 20.0)
        return torch.clamp(torch.exp(u) - u - 1, -10.0, 10.0)
    if kind == "abs":
        return torch.abs(logp - ref_logp)
    raise ValueError(kind)


def _kl(kind):
    def f(P, p):
        k = kl_estimator(kind, P.logp, P.ref_logp)
        return p["coef"] * token_mean(k, P.mask), {"kl": token_mean(k.detach(), P.mask)}
    return f


def obj_entropy_bonus(P, p):
    # the table names the metric `entropy`; Rein cannot declare a metric with the name of a
    # built-in input the program uses (docs/language.md), so the file calls it entropy_mean
    H = token_mean(P.entropy, P.mask)
    return -p["coef"] * H, {"entropy_mean": H.detach()}


def roll_ratio(P):
    """peer-losses 2.5 (verl decoupled): rho = exp(clamp(old_logp - rollout_logp, +-20)), constant."""
    return torch.exp(torch.clamp(P.old_logp - P.rollout_logp, -20.0, 20.0))


def obj_ppo_tis(P, p):
    A = P.tok(_adv_z1(P))
    L, _, _ = ppo_clip_terms(A, P.logp, P.old_logp, p["eps_low"], p["eps_high"])
    rho = roll_ratio(P)
    w = torch.clamp(rho, max=p["cap"])
    return token_mean(w * L, P.mask), {"tis_frac": token_mean((rho > p["cap"]).to(DT), P.mask)}


def obj_ppo_mis(P, p):
    A = P.tok(_adv_z1(P))
    L, _, _ = ppo_clip_terms(A, P.logp, P.old_logp, p["eps_low"], p["eps_high"])
    rho = roll_ratio(P)
    keep = (rho >= p["lo"]) & (rho <= p["hi"])
    Lw = torch.where(keep, rho * L, torch.zeros_like(L))
    return token_mean(Lw, P.mask), {"mis_frac": token_mean((~keep).to(DT), P.mask)}


def obj_reinforce_pp(P, p):
    """REINFORCE++ (OpenRLHF `reinforce`, peer-losses 2.3-2.4): token reward r_t = -beta*k1_t,
    k1 = old_logp - ref_logp (no gradient), plus the sequence reward on its last token; returns
    G_t = sum_{s>=t} r_s (gamma = 1) by flipping, cumsum and flipping back; whitened over every
    valid token of the batch with rstd = var.clamp(min=1e-8).rsqrt() (population variance); then
    PPO-clip with r = exp(logp - old_logp), token-mean."""
    m = P.mask
    kl = (P.old_logp - P.ref_logp) * m
    T = P.T
    last = torch.zeros_like(m)
    for i in range(P.S):
        n = int(P.lengths[i])
        if n:
            last[i, n - 1] = 1.0
    r = (last * P.tok(P.reward) - p["beta"] * kl) * m
    G = torch.flip(torch.cumsum(torch.flip(r, [1]), 1), [1]) * m
    assert G.shape[1] == T
    mean = token_mean(G, m)
    var = token_mean((G - mean) ** 2, m)
    A = ((G - mean) * var.clamp(min=1e-8).rsqrt()).detach()
    L = ppo_clip_token_loss(A, P.logp, P.old_logp, p["eps"], p["eps"])
    rho = torch.exp(P.logp - P.old_logp)
    return token_mean(L, m), {"kl_mean": token_mean(kl, m),
                              "clip_frac": token_mean(((rho - 1).abs() > p["eps"]).to(DT), m)}


def _quantile(v, q):
    """numpy's/torch's 'linear' quantile of a 1-d tensor; 0 for an empty one (Rein's rule)."""
    return torch.quantile(v, q, interpolation="linear") if v.numel() else v.sum() * 0.0


def _top_first(v, k):
    """Indicator of the k largest entries of a 1-d tensor, ties to the earlier entry: a stable
    sort of -v, the first k."""
    order = torch.sort(-v.detach(), stable=True).indices
    out = torch.zeros_like(v, dtype=torch.bool)
    out[order[:k]] = True
    return out


def obj_scan_order_ops(P, p):
    """tests/backend/scan_order_ops.rein: revcumsum with a discount (a backward loop), cumsum,
    median per group, quantile 0.3 per sequence (gradient to the two interpolated entries),
    topfrac 0.5 per sequence (ceil(0.5 n) entries) or topk 1 per group, floor and ceil."""
    m = P.mask
    x = torch.exp(P.logp - P.old_logp) * P.tok(P.reward) * m
    cols = [None] * P.T
    nxt = torch.zeros(P.S, dtype=DT)
    for t in range(P.T - 1, -1, -1):
        nxt = x[:, t] + p["gamma"] * nxt * m[:, t]
        cols[t] = nxt
    ret = torch.stack(cols, 1) * m
    run = torch.cumsum((P.logp - P.ref_logp) * m, 1)
    base = torch.zeros(P.S, dtype=DT)
    top1 = torch.zeros(P.S, dtype=torch.bool)
    for g in range(P.n_groups):
        idx = (P.group == g).nonzero().flatten()
        base[idx] = _quantile(P.reward[idx], 0.5)
        top1[idx] = _top_first(P.reward[idx], 1)
    q = torch.stack([_quantile(P.logp[i, :int(P.lengths[i])], 0.3) for i in range(P.S)])
    keep = torch.zeros(P.S, P.T, dtype=torch.bool)
    for i in range(P.S):
        n = int(P.lengths[i])
        if n:
            keep[i, :n] = _top_first(P.old_logp[i, :n], math.ceil(0.5 * n - 1e-9))
    keep = keep | P.tok(top1)
    v = torch.where(keep, ret - P.tok(base), torch.zeros_like(ret)) \
        + 0.1 * run * torch.floor(P.pos / 2) + P.tok(q * torch.ceil(P.reward))
    valid = m > 0
    return -token_mean(v, m), {"med": _quantile(P.old_logp[valid], 0.5),
                               "q90": _quantile(P.logp[valid], 0.9)}


def obj_sft(P, p):
    # supervised fine-tuning (rein sft): the token-mean of -log p over the batch
    return -token_mean(P.logp, P.mask), {}


# ---- RLOO, REINFORCE++-baseline, Clip-Cov, KL-Cov, TRL's delta clip, importance-corrected k3 ----
# Written from verl's `rloo` / `reinforce_plus_plus_baseline` advantage estimators and `vanilla`,
# `clip_cov`, `kl_cov` policy losses, TRL's GRPO loss with `delta` and `use_bias_correction_kl`,
# with Rein's documented choices (batch-level statistics, a seeded per-response draw for Clip-Cov).
# A one-response group gets verl's value: A = r for RLOO, mean 0 for the REINFORCE++-baseline.


def adv_rloo(P):
    """RLOO: A_i = r_i - (sum of the other rewards of the group)/(n - 1), by an explicit loop over
    each group's other members; a one-response group keeps its reward, A = r (verl's
    compute_rloo_outcome_advantage rescales only groups of more than one response)."""
    A = P.reward.clone()
    for i in range(P.S):
        others = [j for j in range(P.S) if j != i and int(P.group[j]) == int(P.group[i])]
        if others:
            A[i] = P.reward[i] - sum(float(P.reward[j]) for j in others) / len(others)
    return A


def _dual_clip_result(A_tok, P, p):
    L, clipped, dual = ppo_dual_clip_terms(A_tok, P.logp, P.old_logp, p["eps_low"],
                                           p["eps_high"], p["clip_c"])
    return token_mean(L, P.mask), {"clip_frac": token_mean(clipped.to(DT), P.mask),
                                   "dual_clip_frac": token_mean(dual.to(DT), P.mask)}


def obj_rloo(P, p):
    return _dual_clip_result(P.tok(adv_rloo(P)), P, p)


def obj_reinforce_pp_baseline(P, p):
    """verl reinforce_plus_plus_baseline: score - group mean (a one-response group has mean 0, so
    its score stays r) tiled over the response's tokens, then masked_whiten over the batch's valid
    tokens: (x - mean) * rsqrt(unbiased var + 1e-8) (the 1e-8 of verl's masked_mean count left
    out)."""
    a = adv_verl_grpo(P.reward, P.group, P.n_groups, norm_by_std=False)
    valid = P.mask > 0
    x = P.tok(a)[valid]
    n = x.numel()
    if n > 1:
        mu = x.mean()
        var = ((x - mu) ** 2).sum() / (n - 1)
        A = (P.tok(a) - mu) * torch.rsqrt(var + 1e-8)
    else:
        A = torch.zeros(P.S, P.T, dtype=DT)
    return _dual_clip_result(A * P.mask, P, p)


def _cov_tokens(A_tok, P):
    """Per valid token (flattened in batch order): (A - mean A)*(logp - mean logp), detached, the
    means over the batch's valid tokens; with the flat indices (row, column)."""
    valid = (P.mask > 0).nonzero().tolist()
    a = torch.stack([A_tok[i, t] for i, t in valid]) if valid else torch.zeros(0, dtype=DT)
    lp = torch.stack([P.logp[i, t].detach() for i, t in valid]) if valid else torch.zeros(0, dtype=DT)
    if not valid:
        return valid, a
    return valid, (a - a.mean()) * (lp - lp.mean())


def obj_clip_cov(P, p):
    """verl clip_cov: pg1 = -A r, pg2 = -A clip(r) (r = exp(logp - old_logp), no clamp); candidates
    are valid tokens with not(pg2 > pg1) and lb < cov < ub; min(max(1, int(ratio*N)), #candidates)
    of them are chosen and get corr = 0; loss = token-mean(max(pg1, pg2)*corr).  The choice, in
    place of verl's randperm: candidates sorted by their response's rein_uniform draw, largest
    first, then by batch order."""
    A = P.tok(_adv_z1(P))
    r = torch.exp(P.logp - P.old_logp)
    pg1 = -A * r
    pg2 = -A * torch.clamp(r, 1 - p["eps_low"], 1 + p["eps_high"])
    by_origin = (pg2 > pg1).detach()
    valid, cov = _cov_tokens(A, P)
    cand = [k for k, (i, t) in enumerate(valid)
            if not bool(by_origin[i, t]) and p["clip_cov_lb"] < float(cov[k]) < p["clip_cov_ub"]]
    clip_num = max(int(p["clip_cov_ratio"] * len(valid)), 1)

    def draw(k):
        i = valid[k][0]
        g, j = P.index[i]
        return rein_uniform(P.seed, P.step, g, j)

    chosen = sorted(cand, key=lambda k: (-draw(k), k))[:clip_num]
    corr = torch.ones(P.S, P.T, dtype=DT)
    for k in chosen:
        corr[valid[k][0], valid[k][1]] = 0.0
    L = torch.maximum(pg1, pg2) * corr
    return token_mean(L, P.mask), {"clip_frac": token_mean((corr == 0).to(DT), P.mask),
                                   "ppo_kl": token_mean(-(P.logp - P.old_logp).detach(), P.mask)}


def obj_kl_cov(P, p):
    """verl kl_cov: pg = -A r (no clip); on the max(1, int(N*ratio)) valid tokens with the
    largest cov, pg = -A r + coef*|logp - old_logp|; token-mean.  Ties: earlier token first."""
    A = P.tok(_adv_z1(P))
    d = P.logp - P.old_logp
    r = torch.exp(d)
    valid, cov = _cov_tokens(A, P)
    sel = torch.zeros(P.S, P.T, dtype=torch.bool)
    if valid:
        k = max(1, int(len(valid) * p["kl_cov_ratio"]))
        order = torch.sort(-cov, stable=True).indices[:k]
        for q in order.tolist():
            sel[valid[q][0], valid[q][1]] = True
    L = torch.where(sel, -A * r + p["ppo_kl_coef"] * d.abs(), -A * r)
    return token_mean(L, P.mask), {"ppo_kl": token_mean(d.abs().detach(), P.mask),
                                   "cov_frac": token_mean(sel.to(DT), P.mask)}


def obj_grpo_delta(P, p):
    """TRL GRPO loss with delta: coef_1 = exp(logp - old_logp); coef_2 = clamp(coef_1, 1-el, 1+eh);
    coef_1 capped at delta; per token -min(coef_1*A, coef_2*A); A = (r - mean)/(Bessel std + 1e-4);
    token-mean (loss_type dapo).  Metrics: TRL's low/high clip ratios on the capped coef_1, and
    the share with A < 0 and r > delta."""
    A = P.tok(adv_zscore(P.reward, P.group, P.n_groups, eps=1e-4, ddof=1))
    c1 = torch.exp(P.logp - P.old_logp)
    c2 = torch.clamp(c1, 1 - p["eps_low"], 1 + p["eps_high"])
    c1d = torch.clamp(c1, max=p["delta"])
    L = -torch.minimum(c1d * A, c2 * A)
    m = P.mask
    low = ((c1d < 1 - p["eps_low"]) & (A < 0)).detach().to(DT)
    high = ((c1d > 1 + p["eps_high"]) & (A > 0)).detach().to(DT)
    cap = ((A < 0) & (c1 > p["delta"])).detach().to(DT)
    return token_mean(L, m), {"clip_low": token_mean(low, m), "clip_high": token_mean(high, m),
                              "delta_frac": token_mean(cap, m)}


def obj_kl_k3_is(P, p):
    """TRL use_bias_correction_kl: per_token_kl = (exp(ref - logp) - (ref - logp) - 1) * coef_1,
    coef_1 = exp(logp - old_logp) with its gradient; coef * token-mean; metric kl without coef."""
    k3 = torch.exp(P.ref_logp - P.logp) - (P.ref_logp - P.logp) - 1
    k = k3 * torch.exp(P.logp - P.old_logp)
    return p["coef"] * token_mean(k, P.mask), {"kl": token_mean(k.detach(), P.mask)}


# name -> (function, default params, metric names, file relative to the repository root).
# Names starting with ex_ are the examples/ programs (compositions with extra metrics).
REC_P = {"eps_low": 0.2, "eps_high": 0.2}
RING_P = {"eps_low": 0.2, "eps_high": 0.2, "eps_low2": 0.6, "eps_high2": 2.0}
WIDE_P = {"eps_low": 0.6, "eps_high": 2.0}
GSPO_P = {"eps_low": 3e-4, "eps_high": 4e-4}
OBJECTIVES = {
    "reinforce": (obj_reinforce, {}, [], "lang/std/reinforce.rein"),
    "grpo": (obj_grpo, dict(REC_P, clip_c=3.0), ["clip_frac", "dual_clip_frac"],
             "lang/std/grpo.rein"),
    "rec_oneside_nois": (_rec("one-side", "none"), dict(REC_P), ["clip_frac"],
                         "lang/std/rec_oneside_nois.rein"),
    "rec_oneside_is": (_rec("one-side", "importance_sampling"), dict(REC_P), ["clip_frac"],
                       "lang/std/rec_oneside_is.rein"),
    "rec_twoside_nois": (_rec("two-side", "none"), dict(REC_P), ["clip_frac"],
                         "lang/std/rec_twoside_nois.rein"),
    "rec_twoside_is": (_rec("two-side", "importance_sampling"), dict(REC_P), ["clip_frac"],
                       "lang/std/rec_twoside_is.rein"),
    "rec_ring_nois": (_rec("ring", "none"), dict(RING_P), ["clip_frac"],
                      "lang/std/rec_ring_nois.rein"),
    "rec_ring_is": (_rec("ring", "importance_sampling"), dict(RING_P), ["clip_frac"],
                    "lang/std/rec_ring_is.rein"),
    "rec_oneside_nois_wide": (rec_wide("none"), dict(WIDE_P), ["clip_frac"],
                              "lang/std/rec_oneside_nois_wide.rein"),
    "rec_oneside_is_wide": (rec_wide("importance_sampling"), dict(WIDE_P), ["clip_frac"],
                            "lang/std/rec_oneside_is_wide.rein"),
    "rec_gspo_nois": (_rec_gspo("none"), dict(GSPO_P), ["clip_frac"],
                      "lang/std/rec_gspo_nois.rein"),
    "rec_gspo_is": (_rec_gspo("is"), dict(GSPO_P), ["clip_frac"], "lang/std/rec_gspo_is.rein"),
    "opmd": (obj_opmd, {"c": 0.1}, [], "lang/std/opmd.rein"),
    "opmd_seq": (obj_opmd_seq, {"tau": 0.2}, [], "lang/std/opmd_seq.rein"),
    "asymre": (obj_asymre, {"c": 0.1}, [], "lang/std/asymre.rein"),
    "red_drop": (obj_red_drop, {}, ["drop_balance"], "lang/std/red_drop.rein"),
    "red_weight": (obj_red_weight, {"T": 1.0}, [], "lang/std/red_weight.rein"),
    "ppo_dual_clip": (obj_ppo_dual_clip, dict(REC_P, clip_c=3.0),
                      ["clip_frac", "dual_clip_frac"], "lang/std/ppo_dual_clip.rein"),
    "gspo": (obj_gspo_std, dict(GSPO_P), ["clip_frac"], "lang/std/gspo.rein"),
    "gspo_sg": (obj_gspo_sg, dict(GSPO_P), ["clip_frac"], "lang/std/gspo_sg.rein"),
    "cispo": (obj_cispo, dict(REC_P), ["clip_frac"], "lang/std/cispo.rein"),
    "cispo_trl": (obj_cispo_trl, {"eps_max": 5.0}, ["clip_frac"], "lang/std/cispo_trl.rein"),
    "sapo": (obj_sapo, {"tau_pos": 1.0, "tau_neg": 1.05}, [], "lang/std/sapo.rein"),
    "gmpo": (obj_gmpo, {"eps_low": 0.4, "eps_high": 0.4}, ["clip_frac"], "lang/std/gmpo.rein"),
    "gpg": (obj_gpg, {}, [], "lang/std/gpg.rein"),
    # max_new: the trainer constant, the generated batches' "max_new" (run_oracle.py's
    # BATCH_MAX_NEW); a variant changes it with --set, as rein eval allows
    "dr_grpo": (obj_dr_grpo, dict(REC_P, max_new=20480.0), ["clip_frac"],
                "lang/std/dr_grpo.rein"),
    "dapo": (obj_dapo, {"eps_low": 0.2, "eps_high": 0.28}, ["clip_frac"], "lang/std/dapo.rein"),
    "kl_k1": (_kl("k1"), {"coef": 0.001}, ["kl"], "lang/std/kl_k1.rein"),
    "kl_k2": (_kl("k2"), {"coef": 0.001}, ["kl"], "lang/std/kl_k2.rein"),
    "kl_k3": (_kl("k3"), {"coef": 0.001}, ["kl"], "lang/std/kl_k3.rein"),
    "kl_abs": (_kl("abs"), {"coef": 0.001}, ["kl"], "lang/std/kl_abs.rein"),
    "entropy_bonus": (obj_entropy_bonus, {"coef": 0.01}, ["entropy_mean"],
                      "lang/std/entropy_bonus.rein"),
    "ppo_tis": (obj_ppo_tis, dict(REC_P, cap=2.0), ["tis_frac"], "lang/std/ppo_tis.rein"),
    "ppo_mis": (obj_ppo_mis, dict(REC_P, lo=0.5, hi=5.0), ["mis_frac"],
                "lang/std/ppo_mis.rein"),
    "sft": (obj_sft, {}, [], "lang/std/sft.rein"),
    "scan_order_ops": (obj_scan_order_ops, {"gamma": 0.9}, ["med", "q90"],
                       "tests/backend/scan_order_ops.rein"),
    "reinforce_pp": (obj_reinforce_pp, {"beta": 0.01, "eps": 0.2}, ["kl_mean", "clip_frac"],
                     "lang/std/reinforce_pp.rein"),
    "rloo": (obj_rloo, dict(REC_P, clip_c=3.0), ["clip_frac", "dual_clip_frac"],
             "lang/std/rloo.rein"),
    "reinforce_pp_baseline": (obj_reinforce_pp_baseline, dict(REC_P, clip_c=3.0),
                              ["clip_frac", "dual_clip_frac"], "lang/std/reinforce_pp_baseline.rein"),
    "clip_cov": (obj_clip_cov, dict(REC_P, clip_cov_ratio=0.0002, clip_cov_lb=1.0, clip_cov_ub=5.0),
                 ["clip_frac", "ppo_kl"], "lang/std/clip_cov.rein"),
    "kl_cov": (obj_kl_cov, {"kl_cov_ratio": 0.0002, "ppo_kl_coef": 0.1}, ["ppo_kl", "cov_frac"],
               "lang/std/kl_cov.rein"),
    "grpo_delta": (obj_grpo_delta, dict(REC_P, delta=4.0), ["clip_low", "clip_high", "delta_frac"],
                   "lang/std/grpo_delta.rein"),
    "kl_k3_is": (obj_kl_k3_is, {"coef": 0.001}, ["kl"], "lang/std/kl_k3_is.rein"),
    "ex_rec_ring_nois": (obj_rec_ring_nois, dict(RING_P), ["clip_frac", "ratio_mean"],
                         "examples/rec_ring_nois.rein"),
    "ex_gspo": (obj_gspo, dict(GSPO_P), ["seq_clip_frac", "long_frac", "mean_tokens"],
                "examples/gspo.rein"),
    "ex_opmd_kl": (obj_opmd_kl, {"c": 0.1, "kl_coef": 0.0, "ent_coef": 0.0},
                   ["kl_ref", "entropy_m", "adv_std"], "examples/opmd_kl.rein"),
}

# Which generated batches an objective runs on: "token" (token ratios spread over [0.2, 4]),
# "gspo" (sequence ratios around GSPO's narrow band), "roll" (token batches that also carry the
# built-in input rollout_logp).
BATCH_KIND = {n: "token" for n in OBJECTIVES}
BATCH_KIND.update({n: "gspo" for n in ("ex_gspo", "gspo", "gspo_sg", "rec_gspo_nois",
                                       "rec_gspo_is")})
BATCH_KIND.update({n: "roll" for n in ("ppo_tis", "ppo_mis")})
# "unclipped": token batches without batch 3's ratios of e^+-21.5.  kl_cov's -A*r has no clamp or
# clip, and the +-A*e^21.5 of two responses cancel to a loss of order 1: float32 cannot hold that.
BATCH_KIND.update({n: "unclipped" for n in ("kl_cov",)})


def boundaries(name, p):
    """Where a tiny change of the input flips a branch of objective `name` with params p:
    {"rho": token ratios exp(logp - old_logp), "s": sequence ratios, "roll": rollout ratios
    exp(old_logp - rollout_logp)}.  The generator keeps its data at least a margin away."""
    out = {"rho": set(), "s": set(), "roll": set()}
    kind = BATCH_KIND[name]
    if name == "gmpo":  # clip in log space
        out["rho"].update([math.exp(-p["eps_low"]), math.exp(p["eps_high"])])
    elif kind == "gspo":
        out["s"].update([1 - p["eps_low"], 1 + p["eps_high"]])
    elif "eps_low" in p:
        out["rho"].update([1 - p["eps_low"], 1 + p["eps_high"]])
    if "eps" in p:  # a symmetric clip (reinforce_pp)
        out["rho"].update([1 - p["eps"], 1 + p["eps"]])
    if "eps_low2" in p:
        out["rho"].update([1 - p["eps_low2"], 1 + p["eps_high2"]])
    if "clip_c" in p:  # the dual clip binds where r = c (c > 1 + eps_high)
        out["rho"].add(p["clip_c"])
    if "eps_max" in p:
        out["rho"].add(p["eps_max"])
    if "delta" in p:  # grpo_delta's cap of the unclipped ratio
        out["rho"].add(p["delta"])
    if "cap" in p:
        out["roll"].add(p["cap"])
    if "lo" in p:
        out["roll"].update([p["lo"], p["hi"]])
    return {k: sorted(b for b in v if b > 0) for k, v in out.items()}


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
    res = fn(P, params)  # (loss, metrics) or, for an objective with states, (loss, metrics, states)
    loss, metrics = res[0], res[1]
    states = res[2] if len(res) > 2 else None
    assert sorted(metrics) == sorted(metric_names), (name, sorted(metrics))
    if loss.requires_grad:
        gl, ge = torch.autograd.grad(loss, [P.logp, P.entropy], allow_unused=True)
    else:  # no token at all: the loss is a constant 0
        gl, ge = None, None
    gl = torch.zeros_like(P.logp) if gl is None else gl
    ge = torch.zeros_like(P.entropy) if ge is None else ge
    out = {
        "loss": float(loss),
        "metrics": {k: float(v) for k, v in metrics.items()},
        "grad": {"logp": P.unpad(gl), "entropy": P.unpad(ge)},
    }
    if states is not None:  # the states' values for the next step, as `rein eval` prints them
        out["state"] = {k: float(v) for k, v in states.items()}
    return out


def is_close(a, b, atol=1e-6, rtol=1e-6):
    """|a - b| <= atol + rtol*|b|, with NaN == NaN and equal infinities equal."""
    if math.isnan(b):
        return math.isnan(a)
    if math.isinf(b):
        return a == b
    if math.isnan(a) or math.isinf(a):
        return False
    return abs(a - b) <= atol + rtol * abs(b)
