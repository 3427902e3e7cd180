#!/usr/bin/python3
"""Differential test: Rein's CPU transformer executor against the float64 PyTorch oracle.

    /usr/bin/python3 tests/oracle/run_tfm_oracle.py --rein build/rein --tool build/tests/tfm_tool
        [--work DIR] [--only init,logprobs,dtypes,shards,step,generate] [--keep]

Tiny seeded models (written here as safetensors, far-from-uniform random weights) in four
configurations: llama untied GQA; llama tied + attention_bias + llama3 rope; qwen2 tied KV=1;
llama with an explicit head_dim != D/H and linear rope. What is compared (tests/oracle/
README_tfm.md has the tolerances):

  init      `rein model init`: tensor names / shapes, norms 1, biases 0, matrix std, seeding
  logprobs  `rein model logprobs`, ragged packed sequences: logp / entropy per token
  dtypes    BF16, F16 and mixed-dtype checkpoints (the oracle uses the rounded weights)
  shards    a two-file checkpoint with model.safetensors.index.json
  step      `tfm_tool step`: logp / entropy, every gradient, grad_norm, the AdamW step (with and
            without clipping and weight decay, defaults), --micro 1 / 2 against the whole batch
  generate  `rein model generate`: logp, sample_logp (T 1, T 1.3, T 0.7 + top-k + top-p, greedy),
            greedy == argmax, seeds, --samples, --stop and eos_token_id, and the sampled
            frequencies against the filtered distribution (chi-square)

Exit 0 when everything agrees, 1 on any mismatch (each named), 2 on a usage error.
"""

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
import traceback

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import tfm_oracle as O  # noqa: E402

torch.set_num_threads(2)

# ------------------------------------------------------------------------------------------------
# configurations
# ------------------------------------------------------------------------------------------------

BASE = dict(num_hidden_layers=2, hidden_act="silu", max_position_embeddings=256,
            initializer_range=0.02, bos_token_id=1)
CONFIGS = {
    "llama_gqa": dict(BASE, model_type="llama", vocab_size=61, hidden_size=32,
                      num_attention_heads=4, num_key_value_heads=2, intermediate_size=48,
                      rms_norm_eps=1e-5, rope_theta=10000.0, tie_word_embeddings=False,
                      attention_bias=False, rope_scaling=None, eos_token_id=2),
    # theta 100 and original_max_position_embeddings 64 put the four rope frequencies (hd 8) in
    # all three llama3 branches: kept, interpolated (two), divided by factor
    "llama_tied_bias_llama3": dict(BASE, model_type="llama", vocab_size=53, hidden_size=24,
                                   num_attention_heads=3, num_key_value_heads=3,
                                   intermediate_size=40, rms_norm_eps=1e-5, rope_theta=100.0,
                                   tie_word_embeddings=True, attention_bias=True,
                                   rope_scaling={"rope_type": "llama3", "factor": 8.0,
                                                 "low_freq_factor": 1.0,
                                                 "high_freq_factor": 4.0,
                                                 "original_max_position_embeddings": 64},
                                   eos_token_id=[2, 3]),
    "qwen2_tied_kv1": dict(BASE, model_type="qwen2", vocab_size=97, hidden_size=48,
                           num_attention_heads=6, num_key_value_heads=1, intermediate_size=64,
                           rms_norm_eps=1e-6, rope_theta=1000000.0, tie_word_embeddings=True,
                           eos_token_id=2),
    "llama_headdim_linear": dict(BASE, model_type="llama", vocab_size=50, hidden_size=20,
                                 num_attention_heads=4, num_key_value_heads=2, head_dim=8,
                                 intermediate_size=44, rms_norm_eps=1e-2, rope_theta=500.0,
                                 tie_word_embeddings=False,
                                 rope_scaling={"type": "linear", "factor": 2.0}),
    # (rms_norm_eps 1e-2 makes the eps placement, sqrt(mean(x^2) + eps), visible)
    # Qwen3: per-head q/k RMSNorm before RoPE, head_dim 12 != 32/4, GQA 4/2, no bias, untied
    "qwen3_gqa_headdim": dict(BASE, model_type="qwen3", vocab_size=67, hidden_size=32,
                              num_attention_heads=4, num_key_value_heads=2, head_dim=12,
                              intermediate_size=40, rms_norm_eps=1e-6, rope_theta=1000000.0,
                              tie_word_embeddings=False, attention_bias=False,
                              eos_token_id=2),
    # Qwen3 tied with attention_bias (q, k, v and o), one kv head, head_dim 6 != 24/3
    "qwen3_tied_bias_kv1": dict(BASE, model_type="qwen3", vocab_size=45, hidden_size=24,
                                num_attention_heads=3, num_key_value_heads=1, head_dim=6,
                                intermediate_size=36, rms_norm_eps=1e-6, rope_theta=10000.0,
                                tie_word_embeddings=True, attention_bias=True),
}

ATOL = 1e-4           # logp, entropy, sample_logp (absolute)
GRAD_RTOL = 1e-4      # gradients: max|diff| <= GRAD_RTOL * max(1, max|g|) per tensor
NORM_RTOL = 1e-4      # grad_norm (relative)
STEP_ATOL = 2e-6      # parameters after the step (absolute, + 1e-6 * |p|)


# ------------------------------------------------------------------------------------------------
# reporting and running
# ------------------------------------------------------------------------------------------------


class Report:
    def __init__(self):
        self.n_ok, self.fails, self.notes, self.verbose = 0, [], [], False

    def check(self, name, cond, detail=""):
        if cond:
            self.n_ok += 1
            if self.verbose:
                print(f"  ok    {name}" + (f"  [{detail}]" if detail else ""))
        else:
            self.fails.append(f"{name}: {detail}")
            print(f"  FAIL  {name}" + (f"  [{detail}]" if detail else ""))
        return bool(cond)

    def note(self, msg):
        self.notes.append(msg)
        print(f"  note  {msg}")


R = Report()


class RunError(Exception):
    pass


def run(cmd, timeout=120):
    t0 = time.time()
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if p.returncode != 0:
        raise RunError(f"exit {p.returncode} ({time.time() - t0:.1f}s): {' '.join(cmd)}\n"
                       f"stderr: {p.stderr.strip()[-2000:]}")
    return p.stdout


def run_json(cmd):
    out = run(cmd)
    try:
        return json.loads(out)
    except json.JSONDecodeError as e:
        raise RunError(f"not JSON ({e}): {' '.join(cmd)}\nstdout: {out[:500]}")


def toks_arg(seq):
    return ",".join(str(t) for t in seq)


def maxdiff(a, b):
    a = torch.as_tensor(a, dtype=torch.float64)
    b = torch.as_tensor(b, dtype=torch.float64)
    if a.shape != b.shape:
        return float("inf")
    return float((a - b).abs().max()) if a.numel() else 0.0


def write_model(d, cfg_dict, params, dtype="F32", shards=1):
    if os.path.exists(d):
        shutil.rmtree(d)
    O.save_model_dir(d, cfg_dict, params, dtype=dtype, shards=shards)
    return d


def random_seqs(gen, V, lens):
    return [torch.randint(0, V, (n,), generator=gen).tolist() for n in lens]


# ------------------------------------------------------------------------------------------------
# the checks
# ------------------------------------------------------------------------------------------------


def check_init(ctx, name, cd):
    """`rein model init`: the checkpoint it writes."""
    cfg = O.load_config(cd)
    cpath = os.path.join(ctx.work, f"{name}_config.json")
    with open(cpath, "w") as f:
        json.dump(cd, f)
    dirs = []
    for seed in (7, 7, 8):
        d = os.path.join(ctx.work, f"{name}_init_{len(dirs)}")
        shutil.rmtree(d, ignore_errors=True)
        run([ctx.rein, "model", "init", "--config", cpath, "--seed", str(seed), "-o", d])
        dirs.append(d)
    with open(os.path.join(dirs[0], "config.json")) as f:
        R.check(f"[{name}] init: config.json is the input", json.load(f) == cd)
    P = O.read_safetensors(os.path.join(dirs[0], "model.safetensors"))
    shapes = O.param_shapes(cfg)
    R.check(f"[{name}] init: tensor names", set(P) == set(shapes),
            f"extra {sorted(set(P) - set(shapes))[:4]}, missing {sorted(set(shapes) - set(P))[:4]}")
    bad = [n for n in shapes if n in P and tuple(P[n].shape) != shapes[n]]
    R.check(f"[{name}] init: tensor shapes", not bad, f"{bad[:4]}")
    if set(P) != set(shapes) or bad:
        return
    ir = cd["initializer_range"]
    norms = [n for n in P if n.endswith("norm.weight")]
    biases = [n for n in P if n.endswith(".bias")]
    mats = [n for n in P if P[n].dim() == 2]
    R.check(f"[{name}] init: norm weights are 1", all(bool((P[n] == 1).all()) for n in norms))
    R.check(f"[{name}] init: biases are 0", all(bool((P[n] == 0).all()) for n in biases),
            f"{len(biases)} bias tensors")
    allm = torch.cat([P[n].reshape(-1).double() for n in mats])
    std, mean = float(allm.std()), float(allm.mean())
    R.check(f"[{name}] init: matrices ~ N(0, initializer_range)",
            abs(std / ir - 1) < 0.05 and abs(mean) < 0.05 * ir,
            f"std {std:.5f} vs {ir}, mean {mean:.2e}")
    stds = {n: float(P[n].double().std()) for n in mats}
    worst = max(stds, key=lambda n: abs(stds[n] / ir - 1))
    R.check(f"[{name}] init: every matrix has std ~ initializer_range",
            abs(stds[worst] / ir - 1) < 0.25, f"worst {worst}: {stds[worst]:.5f}")
    P2 = O.read_safetensors(os.path.join(dirs[1], "model.safetensors"))
    P3 = O.read_safetensors(os.path.join(dirs[2], "model.safetensors"))
    R.check(f"[{name}] init: same seed gives the same weights",
            all(torch.equal(P[n], P2[n]) for n in P))
    R.check(f"[{name}] init: another seed gives other weights",
            all(not torch.equal(P[n], P3[n]) for n in mats))


def check_logprobs(ctx, name, cd, mdir, params, seqs, label="logprobs"):
    """`rein model logprobs` against the oracle on the weights `params` (float32 values)."""
    cmd = [ctx.rein, "model", "logprobs", "--model", mdir]
    for s in seqs:
        cmd += ["--tokens", toks_arg(s)]
    out = run_json(cmd)
    m = O.TfmModel(O.load_config(cd), params)
    with torch.no_grad():
        ref = m.token_logp_entropy(seqs)
    got = out.get("sequences", [])
    if not R.check(f"[{name}] {label}: one result per sequence", len(got) == len(seqs),
                   f"{len(got)} vs {len(seqs)}"):
        return out
    wl = we = 0.0
    shape_ok = True
    for s, g, (lp, en) in zip(seqs, got, ref):
        shape_ok &= g.get("tokens") == s and len(g["logp"]) == len(s) - 1 \
            and len(g["entropy"]) == len(s) - 1
        wl = max(wl, maxdiff(g["logp"], lp))
        we = max(we, maxdiff(g["entropy"], en))
    R.check(f"[{name}] {label}: tokens echoed, L-1 values each", shape_ok)
    R.check(f"[{name}] {label}: logp and entropy ({len(seqs)} seqs, lengths "
            f"{[len(s) for s in seqs]})", wl <= ATOL and we <= ATOL,
            f"max|dlogp| {wl:.2e}, max|dent| {we:.2e}, tol {ATOL}")
    return out


def check_repeatable(ctx, name, mdir, seqs, runs=6):
    """The same command, run again and again with 2 threads, prints the same bytes (Rein
    promises bit-identical results for the same inputs and thread count). A data race between
    the threads shows up here, more often on a loaded machine."""
    cmd = [ctx.rein, "model", "logprobs", "--model", mdir, "--threads", "2"]
    for s in seqs:
        cmd += ["--tokens", toks_arg(s)]
    outs = [run(cmd) for _ in range(runs)]
    n = len(set(outs))
    R.check(f"[{name}] logprobs --threads 2 repeatable ({runs} runs, lengths "
            f"{[len(s) for s in seqs]})", n == 1, f"{n} different outputs")


def make_step_batch(gen, V, lens, first):
    seqs = random_seqs(gen, V, lens)
    # values before first_target are random too: Rein must ignore them
    dl = [(torch.randn(n - 1, generator=gen, dtype=torch.float64)).tolist() for n in lens]
    de = [(0.5 * torch.randn(n - 1, generator=gen, dtype=torch.float64)).tolist() for n in lens]
    return {"sequences": seqs, "first_target": first, "dlogp": dl, "dentropy": de}


def oracle_step(cd, params, batch):
    """float64 forward / backward: (logp, entropy per sequence, grads {name: tensor})."""
    cfg = O.load_config(cd)
    m = O.TfmModel(cfg, params, requires_grad=True)
    seqs, first = batch["sequences"], batch.get("first_target") or [1] * len(batch["sequences"])
    res = m.token_logp_entropy(seqs, first_target=first)
    loss = 0.0
    for i, (lp, en) in enumerate(res):
        keep = (torch.arange(1, len(seqs[i])) >= first[i]).to(torch.float64)
        dl = torch.tensor(batch["dlogp"][i], dtype=torch.float64) * keep
        de = torch.tensor(batch["dentropy"][i], dtype=torch.float64) * keep
        loss = loss + (dl * lp).sum() + (de * en).sum()
    loss.backward()
    grads = {n: p.grad.detach().clone() if p.grad is not None else torch.zeros_like(p)
             for n, p in m.params.items()}
    return [(lp.detach(), en.detach()) for lp, en in res], grads


def run_tool_step(ctx, mdir, batch, tag, label, flags):
    bpath = os.path.join(ctx.work, f"{tag}_batch.json")
    with open(bpath, "w") as f:
        json.dump(batch, f)
    od = os.path.join(ctx.work, f"{tag}_out")
    shutil.rmtree(od, ignore_errors=True)
    os.makedirs(od)
    run([ctx.tool, "step", "--model", mdir, "--batch", bpath, "--out", od] + flags)
    with open(os.path.join(od, "out.json")) as f:
        out = json.load(f)
    grads = O.read_safetensors(os.path.join(od, "grads.safetensors"))
    dts = set(O.safetensors_dtypes(os.path.join(od, "grads.safetensors")).values())
    R.check(f"{label}: grads.safetensors is F32", dts == {"F32"}, f"{sorted(dts)}")
    newp = O.load_model_dir(od)
    R.check(f"{label}: OUTDIR/config.json written", os.path.exists(os.path.join(od, "config.json")))
    return out, grads, newp


def compare_grads(label, got, ref):
    if not R.check(f"{label}: gradient tensor names", set(got) == set(ref),
                   f"extra {sorted(set(got) - set(ref))[:3]}, "
                   f"missing {sorted(set(ref) - set(got))[:3]}"):
        return
    worst, wname, wmax = -1.0, "", 0.0
    for n in ref:
        gmax = float(ref[n].abs().max())
        d = maxdiff(got[n], ref[n]) / max(1.0, gmax)
        if d > worst:
            worst, wname, wmax = d, n, gmax
    R.check(f"{label}: every gradient (max|diff| / max(1, max|g|))", worst <= GRAD_RTOL,
            f"worst {wname}: {worst:.2e} (max|g| {wmax:.3g}), tol {GRAD_RTOL}")


def compare_params(label, got, ref, tol_of=None):
    worst, wname = -1.0, ""
    for n in ref:
        tol = STEP_ATOL + 1e-6 * ref[n].abs()
        if tol_of is not None:
            tol = torch.maximum(tol, tol_of[n])
        d = float(((got[n].double() - ref[n]).abs() / tol).max())
        if d > worst:
            worst, wname = d, n
    return worst, wname


def check_step(ctx, name, cd, mdir, params, gen):
    cfg = O.load_config(cd)
    V = cfg.vocab_size
    batch = make_step_batch(gen, V, [6, 13, 2, 9, 41, 4, 70], [1, 4, 1, 3, 9, 2, 1])
    ref_le, ref_g = oracle_step(cd, params, batch)
    ref_norm = math.sqrt(sum(float((g ** 2).sum()) for g in ref_g.values()))

    cases = [  # (tag, hyper-parameters, extra flags)
        ("noclip_wd", dict(lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.1,
                           max_grad_norm=0.0), []),
        ("clip", dict(lr=1e-3, beta1=0.8, beta2=0.99, eps=1e-2, weight_decay=0.05,
                      max_grad_norm=0.25 * ref_norm), []),
    ]
    if name == "llama_gqa":
        cases.append(("defaults", dict(lr=1e-5, beta1=0.9, beta2=0.999, eps=1e-8,
                                       weight_decay=0.01, max_grad_norm=1.0), None))
    results = {}
    for tag, hp, extra in cases:
        label = f"[{name}] step/{tag}"
        if extra is None:
            flags = []
        else:
            flags = ["--lr", repr(hp["lr"]), "--beta1", repr(hp["beta1"]), "--beta2",
                     repr(hp["beta2"]), "--eps", repr(hp["eps"]), "--weight-decay",
                     repr(hp["weight_decay"]), "--max-grad-norm", repr(hp["max_grad_norm"])]
        out, g, newp = run_tool_step(ctx, mdir, batch, f"{name}_{tag}", label, flags)
        results[tag] = (out, g, newp, flags)
        # forward outputs (zeros before first_target)
        wl = max(maxdiff(out["logp"][i], ref_le[i][0]) for i in range(len(ref_le)))
        we = max(maxdiff(out["entropy"][i], ref_le[i][1]) for i in range(len(ref_le)))
        R.check(f"{label}: logp / entropy (first_target {batch['first_target']})",
                wl <= ATOL and we <= ATOL, f"max|dlogp| {wl:.2e}, max|dent| {we:.2e}")
        compare_grads(label, g, ref_g)
        gn = float(out["grad_norm"])
        R.check(f"{label}: grad_norm (pre-clip)", abs(gn - ref_norm) <= NORM_RTOL * ref_norm,
                f"{gn:.7g} vs {ref_norm:.7g}")
        if not R.check(f"{label}: parameter names after the step", set(newp) == set(params)):
            continue
        # (1) the optimizer exactly: AdamW applied to Rein's own gradients
        own, _ = O.adamw_reference(params, g, **hp)
        w, wn = compare_params(label, newp, own)
        R.check(f"{label}: params == clip + torch AdamW on Rein's own grads", w <= 1,
                f"worst {wn}: {w:.2f} x tol ({STEP_ATOL} + 1e-6|p|)")
        # (2) end to end: AdamW applied to the oracle's gradients. Where |g| is at float32
        # noise level the first Adam step is ~ lr * sign(g): allow 2 lr there.
        orc, _ = O.adamw_reference(params, ref_g, **hp)
        noise = {n: GRAD_RTOL * max(1.0, float(ref_g[n].abs().max())) for n in ref_g}
        loose = {n: torch.where(ref_g[n].abs() < 100 * noise[n] * (hp["eps"] < 1e-4),
                                torch.full_like(ref_g[n], 2 * hp["lr"] + STEP_ATOL),
                                torch.zeros_like(ref_g[n])) for n in ref_g}
        w, wn = compare_params(label, newp, orc, loose)
        R.check(f"{label}: params == clip + torch AdamW on the oracle's grads", w <= 1,
                f"worst {wn}: {w:.2f} x tol")
        # the case is sensitive to what it claims to test
        if tag == "clip":
            unclipped, _ = O.adamw_reference(params, ref_g, **dict(hp, max_grad_norm=0.0))
            d = max(maxdiff(unclipped[n], orc[n]) for n in orc)
            R.check(f"{label}: clipping is active and visible in the step", d > 100 * STEP_ATOL,
                    f"norm {ref_norm:.3g} > max {hp['max_grad_norm']:.3g}; step differs by {d:.2e}")
        if tag == "noclip_wd":
            nodecay, _ = O.adamw_reference(params, ref_g, **dict(hp, weight_decay=0.0))
            d2 = max(maxdiff(nodecay[n], orc[n]) for n in orc if orc[n].dim() == 2)
            d1 = max(maxdiff(nodecay[n], orc[n]) for n in orc if orc[n].dim() == 1)
            R.check(f"{label}: decay visible on matrices, none on 1-D tensors",
                    d2 > 5 * STEP_ATOL and d1 == 0.0, f"matrices {d2:.2e}, 1-D {d1:.1e}")

    # micro-batches: the same gradients (up to float rounding) as the whole batch
    out0, g0, _, flags0 = results["noclip_wd"]
    hp0 = cases[0][1]
    for k in (1, 2):
        label = f"[{name}] step/micro {k}"
        out, g, newp = run_tool_step(ctx, mdir, batch, f"{name}_micro{k}", label,
                                     flags0 + ["--micro", str(k)])
        # float32 with another GEMM blocking: relative to the size of the log-probs (|logp| ~ log V)
        wl = max(maxdiff(out["logp"][i], out0["logp"][i]) for i in range(len(ref_le)))
        scale = max(1.0, max(float(torch.as_tensor(out0["logp"][i]).abs().max()) for i in range(len(ref_le))))
        R.check(f"{label}: logp equals the whole batch", wl <= 1e-5 * scale, f"{wl:.2e} (scale {scale:.1f})")
        worst, wname = 0.0, ""
        for n in g0:
            d = maxdiff(g[n], g0[n]) / max(1.0, float(g0[n].abs().max()))
            if d > worst:
                worst, wname = d, n
        R.check(f"{label}: grads equal the whole batch", worst <= 1e-5,
                f"worst {wname}: {worst:.2e}")
        gn, gn0 = float(out["grad_norm"]), float(out0["grad_norm"])
        R.check(f"{label}: grad_norm equals the whole batch", abs(gn - gn0) <= 1e-5 * gn0,
                f"{gn:.8g} vs {gn0:.8g}")
        own, _ = O.adamw_reference(params, g, **hp0)
        w, wn = compare_params(label, newp, own)
        R.check(f"{label}: params == torch AdamW on its grads", w <= 1, f"{wn}: {w:.2f} x tol")


def check_dtypes(ctx, name, cd, params, seqs):
    for dt in ("BF16", "F16"):
        d = write_model(os.path.join(ctx.work, f"{name}_{dt}"), cd, params, dtype=dt)
        rounded = O.load_model_dir(d)
        changed = max(maxdiff(rounded[n], params[n]) for n in params)
        R.check(f"[{name}] {dt}: the file really holds rounded weights", changed > 0,
                f"max weight change {changed:.1e}")
        check_logprobs(ctx, name, cd, d, rounded, seqs, label=f"{dt} checkpoint logprobs")
    # one file with three dtypes
    mix = {n: ("F16" if n == "model.embed_tokens.weight" else
               "F32" if n.endswith("norm.weight") else "BF16") for n in params}
    d = os.path.join(ctx.work, f"{name}_mixed")
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(cd, f)
    O.write_safetensors(os.path.join(d, "model.safetensors"), params, mix)
    check_logprobs(ctx, name, cd, d, O.load_model_dir(d), seqs,
                   label="mixed F16/BF16/F32 checkpoint logprobs")


def check_shards(ctx, name, cd, params, seqs, single_out):
    d = write_model(os.path.join(ctx.work, f"{name}_sharded"), cd, params, shards=2)
    R.check(f"[{name}] shards: two files + index written",
            len([f for f in os.listdir(d) if f.endswith(".safetensors")]) == 2)
    out = check_logprobs(ctx, name, cd, d, params, seqs, label="sharded checkpoint logprobs")
    w = max(max(maxdiff(a["logp"], b["logp"]), maxdiff(a["entropy"], b["entropy"]))
            for a, b in zip(out["sequences"], single_out["sequences"]))
    R.check(f"[{name}] shards: same output as the single file", w <= 1e-6, f"{w:.1e}")


def gen_cmd(ctx, mdir, prompts, max_new, T=None, top_k=None, top_p=None, seed=None,
            samples=None, stop=None):
    cmd = [ctx.rein, "model", "generate", "--model", mdir, "--max-new", str(max_new)]
    for p in prompts:
        cmd += ["--prompt-tokens", toks_arg(p)]
    for flag, v in (("--temperature", T), ("--top-k", top_k), ("--top-p", top_p),
                    ("--seed", seed), ("--samples", samples)):
        if v is not None:
            cmd += [flag, str(v)]
    if stop is not None:
        cmd += ["--stop", toks_arg(stop)]
    return cmd


def verify_generation(label, model, out, prompts, max_new, T, top_k, top_p, samples, stopset):
    """Everything about one generate output that can be checked token by token."""
    seqs = out.get("sequences", [])
    expected_prompts = [p for p in prompts for _ in range(samples)]
    if not R.check(f"{label}: {len(expected_prompts)} sequences, prompts in order "
                   f"(each repeated --samples times)",
                   len(seqs) == len(expected_prompts) and
                   all(s["prompt"] == p for s, p in zip(seqs, expected_prompts)),
                   f"got {[s.get('prompt') for s in seqs][:6]}"):
        return
    struct_bad, stop_bad = [], []
    for i, s in enumerate(seqs):
        n = len(s["tokens"])
        if not (1 <= n <= max_new and len(s["logp"]) == n and len(s["sample_logp"]) == n):
            struct_bad.append(i)
            continue
        toks = s["tokens"]
        early = [t for t in toks[:-1] if t in stopset]
        should_stop = toks[-1] in stopset
        if early or bool(s["stopped"]) != should_stop or (not should_stop and n != max_new):
            stop_bad.append((i, toks, s["stopped"]))
    R.check(f"{label}: lengths (1..max-new, one logp / sample_logp per token)", not struct_bad,
            f"bad sequences {struct_bad}")
    R.check(f"{label}: stopping (stop set {sorted(stopset)})", not stop_bad, f"{stop_bad[:2]}")
    if struct_bad:
        return
    full = [s["prompt"] + s["tokens"] for s in seqs]
    with torch.no_grad():
        logits = model.forward_packed(full)
    wl = ws = 0.0
    outside, ambiguous, greedy_bad, near_ties = [], 0, [], 0
    for i, s in enumerate(seqs):
        P = len(s["prompt"])
        for j, t in enumerate(s["tokens"]):
            lg = logits[i][P - 1 + j]
            wl = max(wl, abs(s["logp"][j] - float(torch.log_softmax(lg, -1)[t])))
            if T == 0:
                top2 = torch.topk(lg, 2).values
                if float(top2[0] - top2[1]) < 1e-4:
                    near_ties += 1
                elif t != int(lg.argmax()):
                    greedy_bad.append((i, j, t, int(lg.argmax())))
                ws = max(ws, abs(s["sample_logp"][j]))
                continue
            flp, cut = O.filtered_logprobs(lg, T, top_k or 0, top_p if top_p else 1.0)
            if top_k and top_k < lg.numel():
                sv = torch.sort(lg, descending=True).values
                if float(sv[top_k - 1] - sv[top_k]) / T < 1e-5:
                    ambiguous += 1
                    continue
            if cut is not None and min(abs(cut[0] - top_p), abs(cut[1] - top_p)) < 1e-5:
                ambiguous += 1
                continue
            if not math.isfinite(float(flp[t])):
                outside.append((i, j, t))
                continue
            ws = max(ws, abs(s["sample_logp"][j] - float(flp[t])))
    R.check(f"{label}: logp == oracle log_softmax at T=1", wl <= ATOL, f"max|d| {wl:.2e}")
    if T == 0:
        R.check(f"{label}: greedy tokens == oracle argmax, sample_logp 0",
                not greedy_bad and ws == 0.0,
                f"mismatches {greedy_bad[:3]}, max|sample_logp| {ws:.1e}, near ties skipped "
                f"{near_ties}")
    else:
        R.check(f"{label}: sampled tokens inside the filtered support", not outside,
                f"{outside[:3]}")
        R.check(f"{label}: sample_logp == oracle filtered distribution "
                f"(T {T}, top-k {top_k}, top-p {top_p})", ws <= ATOL,
                f"max|d| {ws:.2e}" + (f", {ambiguous} boundary cases skipped" if ambiguous
                                      else ""))


def chi2_sf(x, k):
    """Survival function of chi-square with k dof (Wilson-Hilferty)."""
    if k <= 0:
        return 1.0
    z = ((x / k) ** (1 / 3) - (1 - 2 / (9 * k))) / math.sqrt(2 / (9 * k))
    return 0.5 * math.erfc(z / math.sqrt(2))


def check_sampling_frequencies(ctx, name, mdir, model, prompt, T, top_k, top_p, n, seed):
    label = f"[{name}] generate frequencies (T {T}, top-k {top_k}, top-p {top_p}, n {n})"
    out = run_json(gen_cmd(ctx, mdir, [prompt], 1, T=T, top_k=top_k, top_p=top_p, seed=seed,
                           samples=n))
    with torch.no_grad():
        lg = model.forward_packed([prompt])[0][-1]
    flp, _ = O.filtered_logprobs(lg, T, top_k or 0, top_p or 1.0)
    p = flp.exp().numpy()
    counts = np.zeros_like(p)
    for s in out["sequences"]:
        counts[s["tokens"][0]] += 1
    if not R.check(f"{label}: no token outside the support", counts[p == 0].sum() == 0,
                   f"{int(counts[p == 0].sum())} outside"):
        return
    exp = p * n
    # pool the rare categories (expected count < 5) into one
    big = exp >= 5
    obs = list(counts[big]) + ([counts[~big & (p > 0)].sum()] if (~big & (p > 0)).any() else [])
    ex = list(exp[big]) + ([exp[~big & (p > 0)].sum()] if (~big & (p > 0)).any() else [])
    x2 = sum((o - e) ** 2 / e for o, e in zip(obs, ex) if e > 0)
    pv = chi2_sf(x2, len(ex) - 1)
    R.check(f"{label}: chi-square against the filtered distribution", pv > 1e-4,
            f"chi2 {x2:.1f}, dof {len(ex) - 1}, p {pv:.3g}")


def check_generate(ctx, name, cd, mdir, params, gen):
    cfg = O.load_config(cd)
    model = O.TfmModel(cfg, params)
    V = cfg.vocab_size
    prompts = random_seqs(gen, V, [3, 1, 6])
    eos = set(cfg.eos_token_ids)
    mx = 10
    lab = f"[{name}] generate"
    # longer: ragged prompts, 48 new tokens (no stop token: all of them), cache well past 64
    lp = random_seqs(gen, V, [30, 2, 17, 55])
    nostop = next(t for t in range(V - 1, -1, -1) if t not in eos)
    ol = run_json(gen_cmd(ctx, mdir, lp, 48, T=0.8, top_k=20, seed=6, stop=[nostop]))
    verify_generation(f"{lab} longer T0.8/k20", model, ol, lp, 48, 0.8, 20, None, 1,
                      {nostop})
    # T = 1 (no filter): sample_logp == logp
    o1 = run_json(gen_cmd(ctx, mdir, prompts, mx, T=1.0, seed=11))
    verify_generation(f"{lab} T1", model, o1, prompts, mx, 1.0, None, None, 1, eos)
    d = max(maxdiff(s["logp"], s["sample_logp"]) for s in o1["sequences"])
    R.check(f"{lab} T1: sample_logp == logp at T 1 without filters", d <= 1e-6, f"{d:.1e}")
    o1b = run_json(gen_cmd(ctx, mdir, prompts, mx, T=1.0, seed=11))
    R.check(f"{lab} T1: same seed, same output", o1b == o1)
    o1c = run_json(gen_cmd(ctx, mdir, prompts, mx, T=1.0, seed=12))
    if [s["tokens"] for s in o1c["sequences"]] == [s["tokens"] for s in o1["sequences"]]:
        R.note(f"{lab}: seeds 11 and 12 gave the same tokens (possible but suspicious)")
    # default temperature is 1
    od = run_json(gen_cmd(ctx, mdir, prompts, mx, seed=11))
    R.check(f"{lab}: no --temperature == --temperature 1", od == o1)
    # T 1.3, no filter
    o2 = run_json(gen_cmd(ctx, mdir, prompts, mx, T=1.3, seed=5))
    verify_generation(f"{lab} T1.3", model, o2, prompts, mx, 1.3, None, None, 1, eos)
    # T 0.7 + top-k 5 + top-p 0.9, with --samples 3
    o3 = run_json(gen_cmd(ctx, mdir, prompts, mx, T=0.7, top_k=5, top_p=0.9, seed=21, samples=3))
    verify_generation(f"{lab} T0.7/k5/p0.9 x3", model, o3, prompts, mx, 0.7, 5, 0.9, 3, eos)
    o3b = run_json(gen_cmd(ctx, mdir, prompts, mx, T=0.7, top_k=5, top_p=0.9, seed=21,
                           samples=3))
    R.check(f"{lab} T0.7/k5/p0.9 x3: same seed, same output", o3b == o3)
    reps = [tuple(s["tokens"]) for s in o3["sequences"][:3]]
    if len(set(reps)) == 1:
        R.note(f"{lab}: the 3 samples of prompt 0 are identical (possible but suspicious)")
    # top-p alone and top-k alone
    o4 = run_json(gen_cmd(ctx, mdir, prompts, mx, T=1.0, top_p=0.8, seed=3))
    verify_generation(f"{lab} T1/p0.8", model, o4, prompts, mx, 1.0, None, 0.8, 1, eos)
    o5 = run_json(gen_cmd(ctx, mdir, prompts, mx, T=0.9, top_k=3, seed=4))
    verify_generation(f"{lab} T0.9/k3", model, o5, prompts, mx, 0.9, 3, None, 1, eos)
    # greedy, with no stop at all: --stop given with a token that never appears
    og = run_json(gen_cmd(ctx, mdir, prompts, mx, T=0))
    verify_generation(f"{lab} greedy", model, og, prompts, mx, 0, None, None, 1, eos)
    R.check(f"{lab} greedy: deterministic without a seed",
            run_json(gen_cmd(ctx, mdir, prompts, mx, T=0, seed=99)) == og)
    # --stop: pick a token of the greedy output (its first occurrence ends the sequence)
    used = set(t for s in og["sequences"] for t in s["tokens"]) | eos
    nostop_tok = next(t for t in range(V - 1, -1, -1) if t not in used)
    ogl = run_json(gen_cmd(ctx, mdir, prompts, mx, T=0, stop=[nostop_tok]))
    long_ = [s["tokens"] for s in ogl["sequences"]]
    verify_generation(f"{lab} greedy --stop (absent)", model, ogl, prompts, mx, 0, None, None,
                      1, {nostop_tok})
    R.check(f"{lab} greedy --stop (absent): eos no longer stops, all {mx} tokens",
            all(len(t) == mx for t in long_), f"lengths {[len(t) for t in long_]}")
    cand = long_[0]
    stop_tok = cand[min(3, len(cand) - 1)]
    stops = [stop_tok, nostop_tok]
    ost = run_json(gen_cmd(ctx, mdir, prompts, mx, T=0, stop=stops))
    exp_tokens = []
    for t in long_:
        k = next((j for j, x in enumerate(t) if x in stops), None)
        exp_tokens.append(t if k is None else t[:k + 1])
    got_tokens = [s["tokens"] for s in ost["sequences"]]
    R.check(f"{lab} greedy --stop {stops}: truncated at the first stop token, stopped true",
            got_tokens == exp_tokens and ost["sequences"][0]["stopped"] is True and
            all(s["stopped"] == (s["tokens"][-1] in stops) for s in ost["sequences"]),
            f"got {got_tokens}, expected {exp_tokens}")
    # eos_token_id from config.json (no --stop)
    d2 = os.path.join(ctx.work, f"{name}_eos")
    shutil.copytree(mdir, d2, dirs_exist_ok=True)
    cd2 = dict(cd, eos_token_id=stop_tok)
    with open(os.path.join(d2, "config.json"), "w") as f:
        json.dump(cd2, f)
    oe = run_json(gen_cmd(ctx, d2, prompts, mx, T=0))
    exp_e = []
    for t in long_:
        k = next((j for j, x in enumerate(t) if x == stop_tok), None)
        exp_e.append(t if k is None else t[:k + 1])
    R.check(f"{lab} greedy, eos_token_id {stop_tok} in config.json: stops there",
            [s["tokens"] for s in oe["sequences"]] == exp_e and oe["sequences"][0]["stopped"],
            f"got {[s['tokens'] for s in oe['sequences']]}, expected {exp_e}")
    oe2 = run_json(gen_cmd(ctx, d2, prompts, mx, T=0, stop=[nostop_tok]))
    R.check(f"{lab} greedy, eos_token_id {stop_tok} in config.json and --stop {nostop_tok}: "
            f"--stop replaces eos", [s["tokens"] for s in oe2["sequences"]] == long_,
            f"got {[s['tokens'] for s in oe2['sequences']]}, expected {long_}")
    # the sampler really draws from the filtered distribution
    if name in ("llama_gqa", "qwen2_tied_kv1"):
        check_sampling_frequencies(ctx, name, mdir, model, prompts[0], 0.7, 5, 0.9, 3000, 31)
        check_sampling_frequencies(ctx, name, mdir, model, prompts[2], 1.5, None, None, 3000, 32)


# ------------------------------------------------------------------------------------------------


SECTIONS = ["init", "logprobs", "dtypes", "shards", "step", "generate"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rein", required=True)
    ap.add_argument("--tool", default=None, help="build/tests/tfm_tool (needed for 'step')")
    ap.add_argument("--work", default=None, help="work directory (default: a temporary one)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary work directory")
    ap.add_argument("--only", default=",".join(SECTIONS),
                    help="comma-separated sections: " + ",".join(SECTIONS))
    ap.add_argument("--configs", default=",".join(CONFIGS))
    ap.add_argument("-v", "--verbose", action="store_true", help="print every passing check")
    ap.add_argument("--threads", type=int, default=0,
                    help="OMP_NUM_THREADS for every Rein process (default: inherited); the "
                         "repeatability check always uses --threads 2")
    a = ap.parse_args()
    if a.threads > 0:
        os.environ["OMP_NUM_THREADS"] = str(a.threads)
    R.verbose = a.verbose
    only = [s for s in a.only.split(",") if s]
    bad = [s for s in only if s not in SECTIONS] + \
        [c for c in a.configs.split(",") if c not in CONFIGS]
    if bad:
        print(f"unknown section / config: {bad}", file=sys.stderr)
        return 2
    if not os.access(a.rein, os.X_OK):
        print(f"--rein {a.rein}: not an executable", file=sys.stderr)
        return 2
    if "step" in only and (not a.tool or not os.access(a.tool, os.X_OK)):
        print(f"--tool {a.tool}: not an executable (needed for 'step'; or leave it out with "
              f"--only)", file=sys.stderr)
        return 2
    a.rein = os.path.abspath(a.rein)
    a.tool = os.path.abspath(a.tool) if a.tool else None
    tmp = None
    if a.work is None:
        tmp = tempfile.mkdtemp(prefix="tfm_oracle_")
        a.work = tmp
    os.makedirs(a.work, exist_ok=True)
    a.work = os.path.abspath(a.work)
    # run private copies, so that a rebuild during the run cannot mix two versions
    for attr in ("rein", "tool"):
        src = getattr(a, attr)
        if src:
            dst = os.path.join(a.work, "bin_" + os.path.basename(src))
            shutil.copy2(src, dst)
            setattr(a, attr, dst)

    t0 = time.time()
    for ci, name in enumerate(a.configs.split(",")):
        cd = CONFIGS[name]
        cfg = O.load_config(cd)
        print(f"== {name}: {cfg.model_type} V {cfg.vocab_size} D {cfg.hidden_size} "
              f"H {cfg.num_attention_heads} KV {cfg.num_key_value_heads} hd {cfg.head_dim} "
              f"I {cfg.intermediate_size} tied {cfg.tie_word_embeddings} qkv_bias {cfg.qkv_bias} "
              f"o_bias {cfg.o_bias} rope {cfg.rope_scaling}")
        params = O.random_params(cfg, seed=1000 + ci)
        mdir = write_model(os.path.join(a.work, f"{name}_f32"), cd, params)
        gen = torch.Generator().manual_seed(2000 + ci)
        seqs = random_seqs(gen, cfg.vocab_size, [1, 5, 13, 8, 2])
        single_out = None
        n_ok0, n_fail0 = R.n_ok, len(R.fails)
        for sec in only:
            try:
                if sec == "init":
                    check_init(a, name, cd)
                elif sec == "logprobs":
                    single_out = check_logprobs(a, name, cd, mdir, params, seqs)
                    longer = random_seqs(gen, cfg.vocab_size, [17, 1, 100, 33, 64, 3, 129])
                    check_logprobs(a, name, cd, mdir, params, longer, label="longer logprobs")
                    check_repeatable(a, name, mdir, longer)
                elif sec == "dtypes":
                    check_dtypes(a, name, cd, params, seqs)
                elif sec == "shards" and ci % 2 == 0:
                    if single_out is None:
                        single_out = run_json([a.rein, "model", "logprobs", "--model", mdir] +
                                              sum((["--tokens", toks_arg(s)] for s in seqs), []))
                    check_shards(a, name, cd, params, seqs, single_out)
                elif sec == "step":
                    check_step(a, name, cd, mdir, params, gen)
                elif sec == "generate":
                    check_generate(a, name, cd, mdir, params, gen)
            except (RunError, KeyError, ValueError, TypeError, OSError, IndexError,
                    json.JSONDecodeError, subprocess.TimeoutExpired) as e:
                msg = str(e) if isinstance(e, RunError) else traceback.format_exc(limit=3)
                R.check(f"[{name}] {sec}: ran to completion", False, msg.strip())
        print(f"   {R.n_ok - n_ok0} checks passed, {len(R.fails) - n_fail0} failed")
    dt = time.time() - t0
    print()
    if R.notes:
        print(f"{len(R.notes)} note(s): " + "; ".join(R.notes))
    if R.fails:
        print(f"FAIL: {len(R.fails)} of {R.n_ok + len(R.fails)} checks failed ({dt:.1f}s)")
        for f in R.fails:
            print("  - " + f.splitlines()[0][:300])
        print(f"work directory: {a.work}")
        return 1
    print(f"PASS: all {R.n_ok} checks ({dt:.1f}s)")
    if tmp and not a.keep:
        shutil.rmtree(tmp, ignore_errors=True)
    elif tmp:
        print(f"work directory: {a.work}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
