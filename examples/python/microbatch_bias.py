#!/usr/bin/env python3
"""microbatch_bias.py — gradient accumulation with a token-mean loss, verl-style, against Rein's
staged step.

One batch of 4 groups x 4 responses whose lengths differ a lot (2 to 64 tokens), a small policy,
the GRPO loss (lang/std/grpo.rein: group z-scored advantage, PPO clip, token-mean over the whole
batch).  The reference is the gradient of the whole batch in one pass.  Then the same batch in
micro-batches of whole groups, gradients accumulated:

  PyTorch, verl-style   each micro-batch's loss is its own token-mean, divided by the number of
                        micro-batches (loss / gradient_accumulation): the tokens of a short
                        micro-batch weigh more than those of a long one, so the sum is biased
  Rein                  with obj.step(...) as s: s.micro(logp_mb).backward() per micro-batch: the
                        normalizer (the batch's token count) is computed over the whole batch in
                        the prologue, so the accumulated gradient is the whole batch's

    PYTHONPATH=python REIN_BIN=build/rein REIN_LIB=build/python/librein_runtime.so \
        /usr/bin/python3 examples/python/microbatch_bias.py [--check]
"""

import argparse
import os
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, "python"))
import rein  # noqa: E402

V, T, GROUPS, PER = 8, 64, 4, 4
EPS = 0.2


class Policy(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = torch.nn.Embedding(T, 16)
        self.out = torch.nn.Linear(16, V)

    def forward(self, tokens):  # [B, T] -> logp of those tokens [B, T]
        lp = torch.log_softmax(self.out(torch.tanh(self.embed(torch.arange(T)))), -1)
        return lp.unsqueeze(0).expand(tokens.shape[0], T, V).gather(-1, tokens.unsqueeze(-1)).squeeze(-1)


def torch_grpo_terms(logp, old_logp, reward, group, mask):
    """The per-token GRPO loss, hand-written in PyTorch (the formula of lang/std/grpo.rein)."""
    n = int(group.max()) + 1
    cnt = torch.zeros(n).index_add_(0, group, torch.ones_like(reward))
    mean = torch.zeros(n).index_add_(0, group, reward) / cnt
    std = (torch.zeros(n).index_add_(0, group, (reward - mean[group]) ** 2) / cnt).sqrt()
    adv = ((reward - mean[group]) / (std[group] + 1e-6)).unsqueeze(1)
    ratio = torch.exp((logp - old_logp).clamp(-20, 20))
    L = torch.max(-ratio * adv, -ratio.clamp(1 - EPS, 1 + EPS) * adv)
    L = torch.where(adv < 0, torch.min(L, -3.0 * adv), L)  # the dual clip, clip_c = 3
    return L * mask


def grads(model):
    return torch.cat([p.grad.reshape(-1) for p in model.parameters()])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--check", action="store_true", help="exit 1 unless Rein matches and verl-style does not")
    args = ap.parse_args()
    torch.manual_seed(1)
    model = Policy()
    B = GROUPS * PER
    tokens = torch.randint(0, V, (B, T))
    lens = torch.tensor([2, 3, 4, 5, 60, 62, 63, 64, 8, 30, 12, 50, 64, 2, 40, 9])
    mask = (torch.arange(T).unsqueeze(0) < lens.unsqueeze(1)).float()
    group = torch.arange(B) // PER
    reward = torch.tensor([1., 0, 0, 1, 0, 1, 1, 1, 0, 0, 1, 0, 1, 1, 0, 0])
    with torch.no_grad():
        old = model(tokens) + 0.05 * torch.randn(B, T)  # slightly off-policy: some tokens clip
        old = old.clamp(max=0)
    obj = rein.Objective(os.path.join(REPO, "lang", "std", "grpo.rein"), threads=1)

    model.zero_grad()  # the reference: the whole batch, PyTorch
    L = torch_grpo_terms(model(tokens), old, reward, group, mask)
    (L.sum() / mask.sum()).backward()
    g_whole = grads(model).clone()

    model.zero_grad()  # Rein, whole batch
    loss, _ = obj(model(tokens), old_logp=old, reward=reward, mask=mask, group=group)
    loss.backward()
    g_rein_whole = grads(model).clone()

    def rel(g):
        return (g - g_whole).norm().item() / g_whole.norm().item()

    def cos(g):
        return torch.nn.functional.cosine_similarity(g, g_whole, 0).item()

    print("gradient vs the whole-batch PyTorch gradient (|g - g_whole| / |g_whole|, cosine)")
    print("  %-50s %10.2e  %.6f" % ("Rein, whole batch", rel(g_rein_whole), cos(g_rein_whole)))
    ok = rel(g_rein_whole) < 1e-5
    for k in (1, 2):
        n_micro = GROUPS // k
        model.zero_grad()  # verl-style accumulation: token-mean per micro-batch, / n_micro
        for m in range(n_micro):
            rows = slice(m * k * PER, (m + 1) * k * PER)
            Lm = torch_grpo_terms(model(tokens[rows]), old[rows], reward[rows], group[rows] - m * k, mask[rows])
            (Lm.sum() / mask[rows].sum() / n_micro).backward()
        g_verl = grads(model).clone()
        model.zero_grad()  # Rein's staged step, the same micro-batches
        with obj.step(mask=mask, group=group, old_logp=old, reward=reward) as s:
            for mb in s.split(k):
                s.micro(model(tokens[mb.rows])).backward()
        g_rein = grads(model).clone()
        print("  %-50s %10.2e  %.6f" % ("PyTorch, verl-style, %d micro-batches of %d group%s" % (
            n_micro, k, "s" if k > 1 else ""), rel(g_verl), cos(g_verl)))
        print("  %-50s %10.2e  %.6f" % ("Rein obj.step, %d micro-batches of %d group%s" % (
            n_micro, k, "s" if k > 1 else ""), rel(g_rein), cos(g_rein)))
        ok = ok and rel(g_rein) < 1e-5 and rel(g_verl) > 1e-2
        print("  (Rein: loss %.6f, the whole batch's %.6f)" % (s.loss, float(loss)))
    if args.check and not ok:
        print("FAIL: expected Rein to match the whole batch and verl-style accumulation not to")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
