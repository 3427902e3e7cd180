#!/usr/bin/env python3
"""bench_vs_torch.py — the GRPO loss hand-written in PyTorch against lang/std/grpo.rein through the
binding, on the same batch: time of loss + backward to logp, and the peak memory it adds.

The batch: 64 groups x 8 responses, padded to T = 1024, response lengths uniform in 1..1024
(about 262k real tokens of 524k slots), float32 logp (a leaf: the policy's graph is left out, so
only the loss is measured).  Each variant runs in a fresh process: it builds the batch, touches it,
records its peak RSS, then runs the loss and backward REPS times; the table gives the median time
and the growth of the peak RSS (ru_maxrss) over the inputs' own.

    PYTHONPATH=python REIN_BIN=build/rein REIN_LIB=build/python/librein_runtime.so \
        /usr/bin/python3 examples/python/bench_vs_torch.py [--threads 1] [--reps 20]
"""

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, "python"))
sys.path.insert(0, HERE)

G, PER, T = 64, 8, 1024


def batch():
    g = torch.Generator().manual_seed(0)
    B = G * PER
    lens = torch.randint(1, T + 1, (B,), generator=g)
    mask = torch.arange(T).unsqueeze(0) < lens.unsqueeze(1)
    logp = -torch.rand(B, T, generator=g) * 3
    old = (logp + 0.1 * torch.randn(B, T, generator=g)).clamp(max=0)
    reward = torch.randint(0, 2, (B,), generator=g).float()
    group = torch.arange(B) // PER
    return logp, old, reward, group, mask


def child(variant, threads, reps):
    torch.set_num_threads(threads)
    logp0, old, reward, group, mask = batch()
    fmask = mask.float()
    if variant == "torch":
        from microbatch_bias import torch_grpo_terms

        def run(lp):
            L = torch_grpo_terms(lp, old, reward, group, fmask)
            return L.sum() / fmask.sum()
    else:
        import rein
        obj = rein.Objective(os.path.join(REPO, "lang", "std", "grpo.rein"), threads=threads)
        if variant == "rein":
            def run(lp):
                return obj(lp, old_logp=old, reward=reward, mask=mask, group=group)[0]
        else:  # packed: the caller already holds the tokens packed
            offsets = torch.cat([torch.zeros(1, dtype=torch.long), torch.cumsum(mask.sum(1), 0)])
            old_p = old[mask]
            logp0 = logp0[mask]

            def run(lp):
                return obj(lp, old_logp=old_p, reward=reward, offsets=offsets, group=group)[0]
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    times = []
    for _ in range(reps):
        lp = logp0.clone().requires_grad_(True)
        t = time.perf_counter()
        loss = run(lp)
        loss.backward()
        times.append(time.perf_counter() - t)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print("%s %.6f %.6f %d %.9g" % (variant, statistics.median(times), min(times), peak - base, float(loss)))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--child", default=None)
    args = ap.parse_args()
    if args.child:
        child(args.child, args.threads, args.reps)
        return
    _, _, _, _, mask = batch()
    print("GRPO loss + backward to logp: %d sequences x T = %d (%d tokens), %d thread%s, median of %d"
          % (G * PER, T, int(mask.sum()), args.threads, "s" if args.threads > 1 else "", args.reps))
    print("| variant | median ms | min ms | peak RSS growth MiB | loss |")
    print("|---|---|---|---|---|")
    for v in ("torch", "rein", "rein_packed"):
        out = subprocess.run([sys.executable, __file__, "--child", v, "--threads", str(args.threads),
                              "--reps", str(args.reps)], capture_output=True, text=True)
        if out.returncode != 0:
            print(out.stderr)
            sys.exit(1)
        name, med, mn, kib, loss = out.stdout.split()
        label = {"torch": "PyTorch, hand-written (padded)", "rein": "Rein, padded [B, T] + mask",
                 "rein_packed": "Rein, packed tokens + offsets"}[name]
        print("| %s | %.1f | %.1f | %.0f | %s |" % (label, 1e3 * float(med), 1e3 * float(mn), int(kib) / 1024, loss))


if __name__ == "__main__":
    main()
