#!/usr/bin/python3
"""Eager PyTorch baseline (CPU; CUDA with --device cuda, torch.compile with --compile) for three Rein objectives: loss + d loss / d logp via autograd.

The objectives are written the way a practitioner writes them inside a training framework
(TRL / verl / Trinity style): the batch is a padded [B, L] tensor pair (logp, old_logp) with a
response mask, B = n_groups * group_size sequences laid out group by group, advantages are
computed from the per-sequence rewards with a `.view(-1, G)` group reduction, the per-token loss
is reduced with a masked mean and the gradient comes from `loss.backward()` on the leaf `logp`.

Semantics are exactly those of the Rein programs (defaults included):

  grpo              lang/std/grpo.rein
      A     = (r - mean_g(r)) / (std_g(r) + 1e-6)          population std (ddof = 0)
      ratio = exp(logp - old_logp)                         NOT detached
      loss  = token-mean( -min(ratio*A, clamp(ratio, 1-0.2, 1+0.2)*A) )
  rec_oneside_nois  lang/std/rec_oneside_nois.rein
      A     = r - mean_g(r)
      ratio = sg(exp(logp - old_logp))
      keep  = (A >= 0 and ratio <= 1+0.2) or (A <= 0 and ratio >= 1-0.2)   (inclusive)
      loss  = token-mean( where(keep, -A*logp, 0) )        metric clip_frac = token-mean(!keep)
  gspo              examples/gspo.rein
      A     = (r - mean_g(r)) / (std_g(r) + 1e-6)          population std
      s     = exp(mean over the sequence's tokens of (logp - old_logp))   gradient through all
      loss  = mean over SEQUENCES of -min(s*A, clamp(s, 1-3e-4, 1+4e-4)*A)

"token-mean" is the mean over all response tokens of the batch (sum(v*m) / sum(m), no +eps).

Usage (only /usr/bin/python3 has torch):
  bench/torch_eager.py --list
      -> one line "NAME PROGRAM" per objective implemented here (bench_objectives reads it)
  bench/torch_eager.py --objective grpo|rec_oneside_nois|gspo --tokens N [--group-size 16]
        [--seq-len 256] [--threads T] [--repeat R] [--warmup W] [--metrics]
        [--malloc-cache] [--omp-wait-policy default|active|passive] [--device cpu|cuda] [--compile]
      -> one JSON line {"objective", "tokens", "threads", "best_s", "median_s", ...}
  bench/torch_eager.py --objective OBJ --check DIR [--rein build/rein] [--backend interp,cpu]
      -> writes small batches (Rein batch JSON) into DIR, runs `rein eval` on them and compares
         loss and d loss/d logp with this implementation in float64 (1e-5 relative); exit 1 on
         a mismatch.
"""

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time



def _reexec_with_env():
    """--malloc-cache and --omp-wait-policy are environment settings that glibc and libgomp read
    only at process start: set them and re-execute this script before torch is imported."""
    argv = sys.argv[1:]
    want = {}
    if "--malloc-cache" in argv:
        # keep freed tensor memory in the heap (no munmap / trim), so that steady-state
        # repetitions do not page-fault on every fresh 4 MiB temporary
        want["MALLOC_MMAP_THRESHOLD_"] = str(1 << 32)
        want["MALLOC_TRIM_THRESHOLD_"] = str(1 << 36)
    for i, a in enumerate(argv):
        if a.startswith("--omp-wait-policy"):
            v = a.split("=", 1)[1] if "=" in a else (argv[i + 1] if i + 1 < len(argv) else "")
            if v and v != "default":
                want["OMP_WAIT_POLICY"] = v.upper()
    if any(os.environ.get(k) != v for k, v in want.items()):
        env = dict(os.environ)
        env.update(want)
        os.execve(sys.executable, [sys.executable] + sys.argv, env)


if __name__ == "__main__":
    _reexec_with_env()

import torch  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

# name -> (program file relative to the repository root, default params of that program)
OBJECTIVES = {
    "grpo": ("lang/std/grpo.rein", {"eps_low": 0.2, "eps_high": 0.2}),
    "rec_oneside_nois": ("lang/std/rec_oneside_nois.rein", {"eps_low": 0.2, "eps_high": 0.2}),
    "gspo": ("examples/gspo.rein", {"eps_low": 3e-4, "eps_high": 4e-4}),
}


# --------------------------------------------------------------------------------------------
# The objectives, practitioner style.  Inputs:
#   logp, old_logp : [B, L] float (logp is the leaf with requires_grad)
#   mask           : [B, L] float, 1 on response tokens, 0 on padding
#   reward         : [B] float, sequences laid out group after group, G per group
# Each returns (loss, metrics) where metrics is a dict of detached scalars (or {} when
# with_metrics is False).


def masked_mean(x, mask):
    """Token-mean over the whole batch: sum(x * m) / sum(m)."""
    return (x * mask).sum() / mask.sum()


def group_zscore_advantage(reward, G, eps=1e-6):
    """(r - group mean) / (group population std + eps), one value per sequence."""
    r = reward.view(-1, G)
    mean = r.mean(dim=1, keepdim=True)
    std = r.std(dim=1, unbiased=False, keepdim=True)  # population std (Rein's std[group])
    return ((r - mean) / (std + eps)).view(-1)


def group_mean_baseline_advantage(reward, G):
    """r - group mean, one value per sequence."""
    r = reward.view(-1, G)
    return (r - r.mean(dim=1, keepdim=True)).view(-1)


def grpo_loss(logp, old_logp, mask, reward, G, eps_low=0.2, eps_high=0.2, with_metrics=False):
    adv = group_zscore_advantage(reward, G).unsqueeze(1)  # [B, 1]
    ratio = torch.exp(logp - old_logp)  # not detached: gradient flows through the ratio
    pg1 = ratio * adv
    pg2 = torch.clamp(ratio, 1.0 - eps_low, 1.0 + eps_high) * adv
    per_token = -torch.minimum(pg1, pg2)
    loss = masked_mean(per_token, mask)
    metrics = {}
    if with_metrics:  # what a trainer logs; grpo.rein declares no metric
        with torch.no_grad():
            metrics["clip_frac"] = masked_mean((pg2 < pg1).to(logp.dtype), mask)
    return loss, metrics


def rec_oneside_nois_loss(logp, old_logp, mask, reward, G, eps_low=0.2, eps_high=0.2,
                          with_metrics=False):
    adv = group_mean_baseline_advantage(reward, G).unsqueeze(1)  # [B, 1]
    with torch.no_grad():
        ratio = torch.exp(logp - old_logp)  # sg(): used only as a mask
        keep = ((adv >= 0) & (ratio <= 1.0 + eps_high)) | ((adv <= 0) & (ratio >= 1.0 - eps_low))
    per_token = torch.where(keep, -adv * logp, torch.zeros_like(logp))
    loss = masked_mean(per_token, mask)
    metrics = {}
    if with_metrics:
        with torch.no_grad():
            metrics["clip_frac"] = masked_mean((~keep).to(logp.dtype), mask)
    return loss, metrics


def gspo_loss(logp, old_logp, mask, reward, G, eps_low=3e-4, eps_high=4e-4, with_metrics=False,
              lengths=None, truncated=None):
    adv = group_zscore_advantage(reward, G)  # [B]
    n_tok = mask.sum(dim=1)  # [B]
    seq_mean = ((logp - old_logp) * mask).sum(dim=1) / n_tok.clamp(min=1.0)  # empty seq: 0
    s = torch.exp(seq_mean)  # sequence ratio, gradient through every token
    per_seq = -torch.minimum(s * adv, torch.clamp(s, 1.0 - eps_low, 1.0 + eps_high) * adv)
    loss = per_seq.mean()  # mean over the sequences of the batch
    metrics = {}
    if with_metrics:
        with torch.no_grad():
            sd = s.detach()
            metrics["seq_clip_frac"] = ((sd < 1.0 - eps_low) | (sd > 1.0 + eps_high)).to(
                logp.dtype).mean()
            ln = n_tok if lengths is None else lengths
            metrics["long_frac"] = (ln > 512).to(logp.dtype).sum() / ln.numel()
            if truncated is not None:
                keep = ~truncated
                metrics["mean_tokens"] = (ln * keep).sum() / keep.sum().clamp(min=1)
    return loss, metrics


LOSSES = {"grpo": grpo_loss, "rec_oneside_nois": rec_oneside_nois_loss, "gspo": gspo_loss}


def loss_and_grad(name, logp, old_logp, mask, reward, G, params, with_metrics=False, fn=None, **extra):
    """One training-step's worth of objective work: build the loss from the leaf logp and
    backpropagate.  Returns (loss, d loss / d logp, metrics).  FN: the loss function to use in
    place of LOSSES[name] (its torch.compile'd form)."""
    logp.grad = None
    loss, metrics = (fn or LOSSES[name])(logp, old_logp, mask, reward, G, with_metrics=with_metrics,
                                 **params, **({} if name != "gspo" else extra))
    loss.backward()
    return loss, logp.grad, metrics


# --------------------------------------------------------------------------------------------
# Benchmark batch


def make_bench_batch(n_groups, G, L, seed=0, dtype=torch.float32):
    """Random padded batch: every sequence has exactly L tokens (mask all ones, as a trainer
    still carries it).  logp, old_logp ~ U[-5, 0] independently; reward per sequence is a
    Bernoulli(0.5) in {0, 1} with probability 1/2 and a U[0, 1) value otherwise."""
    g = torch.Generator().manual_seed(seed)
    B = n_groups * G
    logp = -5.0 * torch.rand(B, L, generator=g, dtype=dtype)
    old_logp = -5.0 * torch.rand(B, L, generator=g, dtype=dtype)
    mask = torch.ones(B, L, dtype=dtype)
    binary = (torch.rand(B, generator=g) < 0.5).to(dtype)
    uni = torch.rand(B, generator=g, dtype=dtype)
    coin = torch.rand(B, generator=g) < 0.5
    reward = torch.where(coin, binary, uni)
    truncated = torch.rand(B, generator=g) < 0.1
    lengths = mask.sum(dim=1)
    return logp, old_logp, mask, reward, truncated, lengths


def bench(args):
    if args.threads:
        torch.set_num_threads(args.threads)
    G, L = args.group_size, args.seq_len
    n_groups = args.tokens // (G * L)
    if n_groups < 1:
        sys.exit("--tokens %d is less than one group (%d x %d tokens)" % (args.tokens, G, L))
    tokens = n_groups * G * L
    name = args.objective
    params = dict(OBJECTIVES[name][1])
    logp0, old_logp, mask, reward, truncated, lengths = (
        t.to(args.device) for t in make_bench_batch(n_groups, G, L, args.seed))
    logp = logp0.clone().requires_grad_(True)
    extra = {"lengths": lengths, "truncated": truncated} if name == "gspo" else {}
    if args.compile and not hasattr(torch, "compile"):
        sys.exit("torch %s has no torch.compile (2.0 or newer needed)" % torch.__version__)
    fn = torch.compile(LOSSES[name]) if args.compile else None
    cuda = args.device.startswith("cuda")

    times = []
    for i in range(args.warmup + args.repeat):
        t0 = time.perf_counter()
        loss, grad, metrics = loss_and_grad(name, logp, old_logp, mask, reward, G, params,
                                            with_metrics=args.metrics, fn=fn, **extra)
        if cuda:
            torch.cuda.synchronize()
        # Reading the values forces nothing extra on CPU (eager ops are synchronous), but keep
        # the loss and the gradient alive until the clock stops, as a trainer would use them.
        t1 = time.perf_counter()
        if i >= args.warmup:
            times.append(t1 - t0)
        assert grad is not None and grad.shape == logp.shape
        del loss, grad, metrics
    out = {
        "objective": name,
        "tokens": tokens,
        "threads": torch.get_num_threads(),
        "device": torch.cuda.get_device_name() if cuda else "cpu",
        "compile": bool(args.compile),
        "best_s": min(times),
        "median_s": statistics.median(times),
        "repeat": args.repeat,
        "warmup": args.warmup,
        "groups": n_groups,
        "group_size": G,
        "seq_len": L,
        "metrics": bool(args.metrics),
        "torch": torch.__version__,
        "malloc_cache": bool(args.malloc_cache),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "default"),
    }
    if tokens != args.tokens:
        out["requested_tokens"] = args.tokens
    print(json.dumps(out))


# --------------------------------------------------------------------------------------------
# Check mode: agreement with `rein eval`


def f32_list(t):
    """Python floats of float32 values (exact in float64, so Rein parses the same float32)."""
    return [float(x) for x in t.to(torch.float32).tolist()]


def make_check_batch(name, n_groups, G, lengths, seed):
    """A small batch in float32, designed so that every branch is exercised:
    group 0: binary rewards (mixed), group 1: all-equal binary rewards (A = 0 exactly),
    other groups: uniform rewards.  Half the sequences have ratios 10% of eps inside or
    outside a clip boundary (token ratios; GSPO: the sequence ratio), the others an
    independent old_logp in [-5, 0] (ratios mostly far outside).  Returns a dict of float32 tensors + lengths."""
    g = torch.Generator().manual_seed(seed)
    B = n_groups * G
    L = max([1] + lengths)
    el, eh = OBJECTIVES[name][1]["eps_low"], OBJECTIVES[name][1]["eps_high"]
    targets = [1 - 1.1 * el, 1 - 0.9 * el, 1.0, 1 + 0.9 * eh, 1 + 1.1 * eh]
    logp = torch.zeros(B, L, dtype=torch.float32)
    old = torch.zeros(B, L, dtype=torch.float32)
    mask = torch.zeros(B, L, dtype=torch.float32)
    reward = torch.zeros(B, dtype=torch.float32)
    truncated = torch.zeros(B, dtype=torch.bool)
    for i in range(B):
        n = lengths[i]
        lp = -5.0 * torch.rand(n, generator=g, dtype=torch.float32)
        if i % 2 == 0:
            # ratios just inside and just outside both clip boundaries (10% of eps away), so
            # that a wrong eps or a wrong branch changes the result: per token for the token
            # ratio, per sequence (plus zero-mean noise) for GSPO's sequence ratio
            if name == "gspo":
                k = i // 2
                noise = 1e-5 * (2 * torch.rand(n, generator=g, dtype=torch.float64) - 1)
                noise = noise - noise.mean() if n else noise
                ol = lp - (math.log(targets[k % len(targets)]) + noise).to(torch.float32)
            else:
                sel = [(t + i) % len(targets) for t in range(n)]
                ol = lp - torch.tensor([math.log(targets[j]) for j in sel], dtype=torch.float32)
        else:
            ol = -5.0 * torch.rand(n, generator=g, dtype=torch.float32)
        logp[i, :n] = lp
        old[i, :n] = ol
        mask[i, :n] = 1.0
        grp = i // G
        if grp == 0:
            reward[i] = float(i % 3 == 0)
        elif grp == 1:
            reward[i] = 1.0
        else:
            reward[i] = float(torch.rand(1, generator=g))
        truncated[i] = bool(torch.rand(1, generator=g) < 0.3)
    return {"logp": logp, "old_logp": old, "mask": mask, "reward": reward,
            "truncated": truncated, "lengths": lengths, "G": G, "n_groups": n_groups}


def near_boundary(name, b, params, margin=1e-5):
    """True when a ratio lies within `margin` (relative) of a clip boundary, where float32 and
    float64 may legitimately take different branches."""
    lp, ol, m = b["logp"].double(), b["old_logp"].double(), b["mask"].double()
    lo, hi = 1.0 - params["eps_low"], 1.0 + params["eps_high"]
    if name == "gspo":
        n = m.sum(1).clamp(min=1.0)
        r = torch.exp(((lp - ol) * m).sum(1) / n)
        sel = torch.ones_like(r, dtype=torch.bool)
    else:
        r = torch.exp(lp - ol)
        sel = m > 0
    d = torch.minimum((r - lo).abs() / lo, (r - hi).abs() / hi)
    return bool((d[sel] < margin).any())


def batch_json(b, seed):
    G, n_groups = b["G"], b["n_groups"]
    groups = []
    for gi in range(n_groups):
        grp = []
        for j in range(G):
            i = gi * G + j
            n = b["lengths"][i]
            grp.append({
                "reward": float(b["reward"][i]),
                "logp": f32_list(b["logp"][i, :n]),
                "old_logp": f32_list(b["old_logp"][i, :n]),
                "truncated": bool(b["truncated"][i]),
                "lag": 0,
            })
        groups.append(grp)
    return {"seed": seed, "step": 0, "groups": groups}


def torch_eval(name, b, dtype):
    params = dict(OBJECTIVES[name][1])
    logp = b["logp"].to(dtype).clone().requires_grad_(True)
    extra = {}
    if name == "gspo":
        extra = {"lengths": torch.tensor(b["lengths"], dtype=dtype), "truncated": b["truncated"]}
    loss, grad, metrics = loss_and_grad(name, logp, b["old_logp"].to(dtype), b["mask"].to(dtype),
                                        b["reward"].to(dtype), b["G"], params,
                                        with_metrics=True, **extra)
    return float(loss), grad.detach().clone(), {k: float(v) for k, v in metrics.items()}


def compare(name, b, rein_out, dtype, rtol):
    """Max relative errors of loss and grad; |a - b| <= rtol * |ref| + atol, where atol is
    rtol * 1e-3 * max|grad_ref| (so exact zeros must stay (almost) zero)."""
    loss_ref, g_ref, metrics = torch_eval(name, b, dtype)
    loss_r = float(rein_out["loss"])
    bad = []
    loss_err = abs(loss_r - loss_ref) / max(abs(loss_ref), 1e-30)
    if abs(loss_r - loss_ref) > rtol * abs(loss_ref) + 1e-9:
        bad.append("loss: rein %r torch %r" % (loss_r, loss_ref))
    gl = rein_out["grad"]["logp"]
    gmax = float(g_ref.abs().max())
    atol = rtol * 1e-3 * gmax
    max_rel = 0.0
    n_zero = 0
    G = b["G"]
    if len(gl) != b["n_groups"]:
        bad.append("grad: %d groups, expected %d" % (len(gl), b["n_groups"]))
        return loss_ref, loss_r, loss_err, max_rel, n_zero, metrics, bad
    for gi, grp in enumerate(gl):
        if len(grp) != G:
            bad.append("grad: group %d has %d seqs, expected %d" % (gi, len(grp), G))
            continue
        for j, seq in enumerate(grp):
            i = gi * G + j
            n = b["lengths"][i]
            if len(seq) != n:
                bad.append("grad: group %d seq %d has %d tokens, expected %d" % (gi, j, len(seq), n))
                continue
            for t, v in enumerate(seq):
                ref = float(g_ref[i, t])
                if ref == 0.0:
                    n_zero += 1
                err = abs(v - ref)
                if ref != 0.0:
                    max_rel = max(max_rel, err / abs(ref))
                elif err > 0:
                    max_rel = max(max_rel, err / max(gmax, 1e-30))
                if err > rtol * abs(ref) + atol:
                    bad.append("grad[%d][%d][%d]: rein %r torch %r" % (gi, j, t, v, ref))
    # padding positions must receive zero gradient
    pad_grad = float((g_ref * (1 - b["mask"].to(g_ref.dtype))).abs().max())
    if pad_grad != 0.0:
        bad.append("torch gradient on padding: %r" % pad_grad)
    return loss_ref, loss_r, loss_err, max_rel, n_zero, metrics, bad


def check(args):
    name = args.objective
    prog = os.path.join(ROOT, OBJECTIVES[name][0])
    params = OBJECTIVES[name][1]
    rein = args.rein
    if not os.path.isabs(rein) and not os.path.exists(rein):
        rein = os.path.join(ROOT, rein)
    os.makedirs(args.check, exist_ok=True)
    G, n_groups, T = 4, 3, 5
    layouts = [("uniform", [T] * (n_groups * G))]
    if not args.no_ragged:
        # extra: ragged lengths (mask handling), including an empty sequence
        layouts.append(("ragged", [5, 1, 3, 0, 4, 2, 5, 5, 1, 2, 3, 4]))
    ok = True
    results = []
    for layout, lengths in layouts:
        seed = args.seed
        while True:
            b = make_check_batch(name, n_groups, G, lengths, seed)
            if not near_boundary(name, b, params):
                break
            seed += 1000
        path = os.path.join(args.check, "%s_%s.json" % (name, layout))
        with open(path, "w") as f:
            json.dump(batch_json(b, seed), f)
        for backend in args.backend.split(","):
            cmd = [rein, "eval", prog, "--batch", path, "--backend", backend]
            p = subprocess.run(cmd, capture_output=True, text=True)
            if p.returncode != 0:
                print("FAIL %s: %s exited %d: %s" % (name, " ".join(cmd), p.returncode,
                                                     p.stderr.strip()), file=sys.stderr)
                ok = False
                continue
            out = json.loads(p.stdout)
            res = {"objective": name, "layout": layout, "backend": backend, "batch": path}
            for dtype, rtol, tag in ((torch.float64, args.rtol, "f64"),
                                     (torch.float32, args.rtol32, "f32")):
                loss_ref, loss_r, loss_err, g_err, n_zero, metrics, bad = compare(
                    name, b, out, dtype, rtol)
                res[tag] = {"loss_torch": loss_ref, "loss_rein": loss_r,
                            "loss_rel_err": loss_err, "grad_max_rel_err": g_err,
                            "zero_grads": n_zero, "mismatches": len(bad)}
                if tag == "f64":
                    # metrics the program declares, for information (compared loosely)
                    rm = out.get("metrics", {})
                    res["metrics"] = {k: [rm.get(k), metrics.get(k)] for k in rm}
                    for k in rm:
                        if k in metrics and abs(rm[k] - metrics[k]) > 1e-5 * abs(metrics[k]) + 1e-6:
                            bad.append("metric %s: rein %r torch %r" % (k, rm[k], metrics[k]))
                if bad:
                    ok = False
                    for line in bad[:20]:
                        print("FAIL %s %s %s %s: %s" % (name, layout, backend, tag, line),
                              file=sys.stderr)
            results.append(res)
            print(json.dumps(res))
    print(json.dumps({"objective": name, "check": "ok" if ok else "MISMATCH"}))
    return 0 if ok else 1


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--objective", choices=sorted(OBJECTIVES))
    ap.add_argument("--list", action="store_true",
                    help="print NAME PROGRAM (relative to the repository root) per objective, and exit")
    ap.add_argument("--tokens", type=int, default=1 << 20)
    ap.add_argument("--group-size", type=int, default=16)
    ap.add_argument("--seq-len", type=int, default=256)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1, help="untimed repetitions first")
    ap.add_argument("--metrics", action="store_true",
                    help="also compute the metrics a trainer logs (clip_frac ...) in the timing")
    ap.add_argument("--malloc-cache", action="store_true",
                    help="re-run with glibc MALLOC_MMAP_THRESHOLD_/MALLOC_TRIM_THRESHOLD_ raised "
                         "(freed tensors stay mapped: no page faults in steady state)")
    ap.add_argument("--omp-wait-policy", choices=["default", "active", "passive"],
                    default="default", help="re-run with OMP_WAIT_POLICY set (libgomp)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="cpu", help="torch device of the benchmark (cpu, cuda)")
    ap.add_argument("--compile", action="store_true",
                    help="torch.compile the loss (give --warmup 2 or more: the first calls compile)")
    ap.add_argument("--check", metavar="BATCH_OUT_DIR")
    ap.add_argument("--rein", default="build/rein")
    ap.add_argument("--backend", default="interp,cpu", help="comma-separated rein backends")
    ap.add_argument("--rtol", type=float, default=1e-5, help="check tolerance vs float64")
    ap.add_argument("--rtol32", type=float, default=1e-4,
                    help="check tolerance of the float32 torch path (sanity)")
    ap.add_argument("--no-ragged", action="store_true",
                    help="check only the ragged-free batch")
    args = ap.parse_args()
    if args.list:
        for name in sorted(OBJECTIVES):
            print(name, OBJECTIVES[name][0])
        return
    if not args.objective:
        ap.error("--objective is required (or --list)")
    if args.check:
        sys.exit(check(args))
    if args.repeat < 1:
        sys.exit("--repeat must be >= 1")
    bench(args)


if __name__ == "__main__":
    main()
