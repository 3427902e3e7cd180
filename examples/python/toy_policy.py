#!/usr/bin/env python3
"""toy_policy.py — a small torch.nn policy trained with a compiled Rein objective as its loss.

The task: a prompt p in 0..V-1; the answer is a sequence whose token t should be (p + 2t) mod V;
responses have random lengths (1..T tokens, padded to [B, T] with a response mask), the reward is
the fraction of correct tokens.  Each step samples G responses to each of P prompts (one group per
prompt), then takes two Adam steps on the Rein loss (PPO-style: the second one is off-policy, so
the clipping of the objective matters).  The policy embeds each (prompt, position) and maps it through tanh and a linear layer to logits.

    PYTHONPATH=python REIN_BIN=build/rein REIN_LIB=build/python/librein_runtime.so \
        /usr/bin/python3 examples/python/toy_policy.py [--objective lang/std/grpo.rein] [--check]

--check exits 1 unless greedy accuracy ends above 0.9 and reward rose by 0.4 (the python_example test).
"""

import argparse
import os
import sys
import time

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, "python"))
import rein  # noqa: E402

V, T = 6, 6


class Policy(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = torch.nn.Embedding(V * T, 16)
        self.net = torch.nn.Sequential(torch.nn.Tanh(), torch.nn.Linear(16, V))

    def forward(self, prompts):
        """Log-probabilities [B, T, V] of every token at every position."""
        return torch.log_softmax(self.net(self.embed(prompts.unsqueeze(1) * T + torch.arange(T))), -1)


def target(prompts):
    return (prompts.unsqueeze(1) + 2 * torch.arange(T).unsqueeze(0)) % V


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--objective", default=os.path.join(REPO, "lang", "std", "grpo.rein"))
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--prompts", type=int, default=16)
    ap.add_argument("--group", type=int, default=8)
    ap.add_argument("--check", action="store_true")
    args = ap.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(1)
    t_start = time.time()
    obj = rein.Objective(args.objective, threads=1)
    print("objective %s (%s), inputs %s" % (obj.name, obj.description, ", ".join(obj.inputs)))
    policy = Policy()
    opt = torch.optim.Adam(policy.parameters(), lr=0.01)
    evalp = torch.arange(V)
    first = last = None
    for step in range(args.steps + 1):
        with torch.no_grad():
            greedy = (policy(evalp).argmax(-1) == target(evalp)).float().mean().item()
        prompts = torch.randint(0, V, (args.prompts,)).repeat_interleave(args.group)
        group = torch.arange(args.prompts).repeat_interleave(args.group)
        with torch.no_grad():
            lp_all = policy(prompts)
            tokens = torch.distributions.Categorical(logits=lp_all).sample()
        lens = torch.randint(1, T + 1, (prompts.shape[0],))
        mask = torch.arange(T).unsqueeze(0) < lens.unsqueeze(1)
        reward = ((tokens == target(prompts)) & mask).sum(1).float() / lens.float()
        old_logp = lp_all.gather(-1, tokens.unsqueeze(-1)).squeeze(-1)
        if step % 50 == 0:
            print("step %3d  reward %.3f  greedy accuracy %.3f" % (step, reward.mean().item(), greedy))
        first = first if first is not None else (reward.mean().item(), greedy)
        last = (reward.mean().item(), greedy)
        if step == args.steps:
            break
        for _ in range(2):
            logp = policy(prompts).gather(-1, tokens.unsqueeze(-1)).squeeze(-1)
            kw = {"old_logp": old_logp, "reward": reward}
            loss, metrics = obj(logp, mask=mask, group=group, **{k: v for k, v in kw.items() if k in obj.inputs})
            opt.zero_grad()
            loss.backward()
            opt.step()
    secs = time.time() - t_start
    print("reward %.3f -> %.3f, greedy accuracy %.3f -> %.3f in %.1f s" % (first[0], last[0], first[1], last[1], secs))
    if args.check and not (last[1] > 0.9 and last[0] > first[0] + 0.4):
        print("FAIL: the policy did not learn enough")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
