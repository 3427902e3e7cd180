#!/usr/bin/env python3
"""stats_two_pass.py — the two-pass micro-batched loop for an objective with a statistics stage.

snis_topent.rein (next to this file) trains on the batch's top-20% entropy tokens with
self-normalised importance weights: the weights' batch mean and the entropy ranking are batch
statistics of logp/entropy that the loss sees through sg only.  A micro-batch cannot compute them
alone, so a step first runs a forward-only pass over every micro-batch and gives the whole batch's
(detached) logp/entropy to Step.stat, then runs the usual forward + backward per micro-batch
(docs/python.md, "Objectives with a statistics stage").

The policy and task are toy_policy.py's.  Each batch takes two Adam steps (the second off-policy,
so the importance weights are not 1), each accumulated over micro-batches of 2 groups.

    PYTHONPATH=python REIN_BIN=build/rein REIN_LIB=build/python/librein_runtime.so \
        /usr/bin/python3 examples/python/stats_two_pass.py [--check]

--check exits 1 unless every accumulated gradient equals the whole batch's gradient of the
one-call API (relative error below 1e-5) and the reward rose by 0.3 (the python_example test).
"""

import argparse
import os
import sys
import time

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, "python"))
sys.path.insert(0, HERE)
import rein  # noqa: E402
from toy_policy import T, V, Policy, target  # noqa: E402


def flat_grad(model):
    return torch.cat([p.grad.reshape(-1) for p in model.parameters()])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--prompts", type=int, default=16)
    ap.add_argument("--group", type=int, default=8)
    ap.add_argument("--groups-per-micro", type=int, default=2)
    ap.add_argument("--check", action="store_true")
    args = ap.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(1)
    t_start = time.time()
    obj = rein.Objective(os.path.join(HERE, "snis_topent.rein"), threads=1, frac=0.2, beta=0.001)
    print("objective %s (%s), statistics stage: %s" % (obj.name, obj.description, obj.needs_stats))
    policy = Policy()
    opt = torch.optim.Adam(policy.parameters(), lr=0.02)
    first = last = None
    worst = 0.0
    for step in range(args.steps + 1):
        prompts = torch.randint(0, V, (args.prompts,)).repeat_interleave(args.group)
        group = torch.arange(args.prompts).repeat_interleave(args.group)
        with torch.no_grad():
            tokens = torch.distributions.Categorical(logits=policy(prompts)).sample()
        lens = torch.randint(1, T + 1, (prompts.shape[0],))
        mask = torch.arange(T).unsqueeze(0) < lens.unsqueeze(1)
        reward = ((tokens == target(prompts)) & mask).sum(1).float() / lens.float()

        def forward(rows):
            """logp and entropy [rows, T] of the sampled tokens under the current policy."""
            lsm = policy(prompts[rows])
            return lsm.gather(-1, tokens[rows].unsqueeze(-1)).squeeze(-1), -(lsm.exp() * lsm).sum(-1)

        with torch.no_grad():
            old_logp = forward(slice(None))[0]
        if step % 50 == 0:
            print("step %3d  reward %.3f" % (step, reward.mean().item()))
        first = first if first is not None else reward.mean().item()
        last = reward.mean().item()
        if step == args.steps:
            break
        for _ in range(2):
            opt.zero_grad()
            with obj.step(mask=mask, group=group, old_logp=old_logp, reward=reward) as s:
                micro = s.split(args.groups_per_micro)
                with torch.no_grad():  # pass 1: forward only, for the batch statistics
                    parts = [forward(mb.rows) for mb in micro]
                s.stat(torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts]))
                for mb in micro:       # pass 2: forward + backward per micro-batch, as usual
                    s.micro(*forward(mb.rows)).backward()
            if args.check:  # the same gradient from the whole batch in one call
                g = flat_grad(policy).clone()
                opt.zero_grad()
                loss, _ = obj(*forward(slice(None)), mask=mask, group=group, old_logp=old_logp, reward=reward)
                loss.backward()
                want = flat_grad(policy)
                worst = max(worst, float((g - want).norm() / want.norm().clamp_min(1e-30)))
                assert abs(float(loss) - s.loss) <= 1e-6 * max(1.0, abs(s.loss)), (float(loss), s.loss)
                for p, gp in zip(policy.parameters(), torch.split(g, [p.numel() for p in policy.parameters()])):
                    p.grad = gp.reshape(p.shape).clone()
            opt.step()
    secs = time.time() - t_start
    print("reward %.3f -> %.3f in %.1f s" % (first, last, secs))
    if args.check:
        print("largest relative error of the two-pass gradient against the whole batch's: %.2e" % worst)
        if not (worst < 1e-5 and last > first + 0.3):
            print("FAIL: %s" % ("the gradients differ" if worst >= 1e-5 else "the policy did not learn enough"))
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
