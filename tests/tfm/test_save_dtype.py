#!/usr/bin/python3
"""test_save_dtype.py — the dtypes `rein model` writes (--save-dtype), against PyTorch's and
numpy's own rounding.

    /usr/bin/python3 tests/tfm/test_save_dtype.py --rein build/rein [--work DIR]

A Qwen3-shaped model is written in F32 by the oracle's safetensors writer (tests/oracle), its
embedding holding the hard cases: ties exactly halfway between two BF16 / F16 values (even and
odd), values that round up into the next binade and to infinity, F16 subnormals and values
below half the smallest one, signed zeros, infinities and NaNs, then normal values over 60
binades.  Then:

  - `rein model convert --save-dtype bf16`: every BF16 bit pattern equals torch's
    `tensor.to(torch.bfloat16)` (round to nearest, ties to even); a NaN stays a NaN;
  - `--save-dtype f16`: every F16 bit pattern equals numpy's `astype(float16)`;
  - the BF16 model converted with `--save-dtype same` is BF16 again with the same bytes (the
    dtype a model came in is what `same` writes), and with `f32` holds exactly the BF16 values;
  - `rein model init --save-dtype bf16` writes BF16, and logprobs of that model equal those of
    the same init in F32 rounded by torch (read back by the oracle's reader);
  - a bad --save-dtype is a usage error naming the value.

Exit 0 when every check passes.
"""
import argparse
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "oracle"))
import tfm_oracle as O  # noqa: E402

CONFIG = {"model_type": "qwen3", "vocab_size": 64, "hidden_size": 32, "num_hidden_layers": 1,
          "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 12,
          "intermediate_size": 24, "tie_word_embeddings": False, "rms_norm_eps": 1e-6,
          "rope_theta": 10000.0}

failures = 0


def check(cond, what):
    global failures
    print(("ok   " if cond else "FAIL ") + what)
    if not cond:
        failures += 1


def run(cmd, ok=True):
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    if ok and p.returncode != 0:
        print("FAIL: " + " ".join(cmd) + "\n" + p.stderr)
        sys.exit(1)
    return p


def raw_tensors(path):
    """{name: (dtype, numpy array of the raw bit patterns or values)} straight from the file."""
    with open(path, "rb") as f:
        blob = f.read()
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + n])
    data = blob[8 + n:]
    out = {}
    for k, v in header.items():
        if k == "__metadata__":
            continue
        b, e = v["data_offsets"]
        dt = {"F32": "<u4", "BF16": "<u2", "F16": "<u2"}[v["dtype"]]
        out[k] = (v["dtype"], np.frombuffer(data[b:e], dtype=dt))
    return out


def hard_values(n):
    """n float32 values: the rounding's hard cases first, then normal values of every scale."""
    u = []
    for hi in (0x3f80, 0x3f81, 0x4000, 0x7f7f, 0x0001, 0x8001):   # BF16 ties, even and odd
        u += [hi << 16 | 0x8000, hi << 16 | 0x7fff, hi << 16 | 0x8001, hi << 16 | 0xffff]
    f = np.array(u, dtype=np.uint32).view(np.float32).tolist()
    f += [1 + 2 ** -11, 1 + 3 * 2 ** -11, 1 + 2 ** -11 + 2 ** -23,     # F16 ties and just above
          65504.0, 65519.99, 65520.0, 70000.0, -65520.0,              # the F16 overflow edge
          2.0 ** -24, 2.0 ** -25, 1.5 * 2.0 ** -25, 2.0 ** -26, 3 * 2.0 ** -25, 6e-5, 6.1e-5,
          2.0 ** -14 - 2.0 ** -25,                                     # subnormals, min normal
          0.0, -0.0, float("inf"), float("-inf"), float("nan"), -float("nan"),
          3.4e38, -3.4e38, 1e-40, -1e-45]
    rng = np.random.default_rng(5)
    rest = n - len(f)
    f += (rng.standard_normal(rest) * np.exp2(rng.integers(-30, 30, rest))).astype(np.float32).tolist()
    return torch.tensor(f, dtype=torch.float32)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rein", required=True)
    ap.add_argument("--work")
    a = ap.parse_args()
    work = a.work or tempfile.mkdtemp(prefix="rein-save-dtype-")
    os.makedirs(work, exist_ok=True)
    cfg = O.load_config(CONFIG)
    params = O.random_params(cfg, 3)
    emb = params["model.embed_tokens.weight"]
    params["model.embed_tokens.weight"] = hard_values(emb.numel()).view(emb.shape)
    f32 = os.path.join(work, "f32")
    shutil.rmtree(f32, ignore_errors=True)
    O.save_model_dir(f32, CONFIG, params, "F32")

    # BF16 against torch
    bf = os.path.join(work, "bf16")
    run([a.rein, "model", "convert", "--model", f32, "-o", bf, "--save-dtype", "bf16"])
    got = raw_tensors(os.path.join(bf, "model.safetensors"))
    check(all(d == "BF16" for d, _ in got.values()) and set(got) == set(params),
          f"--save-dtype bf16: all {len(got)} tensors BF16")
    bad, nans = 0, 0
    for name, t in params.items():
        want = t.reshape(-1).to(torch.bfloat16).view(torch.int16).numpy().view(np.uint16)
        have = got[name][1]
        isn = np.isnan(t.reshape(-1).numpy())
        nans += int(isn.sum())
        bad += int((want[~isn] != have[~isn]).sum())
        # a NaN stays a NaN: exponent all ones, mantissa not zero
        bad += int((((have[isn] & 0x7f80) != 0x7f80) | ((have[isn] & 0x7f) == 0)).sum())
    total = sum(t.numel() for t in params.values())
    check(bad == 0, f"BF16 bits equal torch's round-to-nearest-even on {total} values "
                    f"({nans} NaNs kept NaN): {bad} differ")

    # F16 against numpy
    hf = os.path.join(work, "f16")
    run([a.rein, "model", "convert", "--model", f32, "-o", hf, "--save-dtype", "f16"])
    got = raw_tensors(os.path.join(hf, "model.safetensors"))
    bad = 0
    for name, t in params.items():
        x = t.reshape(-1).numpy()
        with np.errstate(over="ignore"):   # the overflow to infinity is one of the cases
            want = x.astype(np.float16).view(np.uint16)
        have = got[name][1]
        isn = np.isnan(x)
        bad += int((want[~isn] != have[~isn]).sum())
        bad += int((((have[isn] & 0x7c00) != 0x7c00) | ((have[isn] & 0x3ff) == 0)).sum())
        bad += got[name][0] != "F16"
    check(bad == 0, f"F16 bits equal numpy's astype(float16) (subnormals, overflow to inf, NaN): {bad} differ")

    # same: the dtype the model came in
    same = os.path.join(work, "same")
    run([a.rein, "model", "convert", "--model", bf, "-o", same, "--save-dtype", "same"])
    with open(os.path.join(bf, "model.safetensors"), "rb") as f1, \
            open(os.path.join(same, "model.safetensors"), "rb") as f2:
        check(f1.read() == f2.read(), "a BF16 model converted with --save-dtype same is the same BF16 file")
    wide = os.path.join(work, "wide")
    run([a.rein, "model", "convert", "--model", bf, "-o", wide, "--save-dtype", "f32"])
    w, b = O.read_safetensors(os.path.join(wide, "model.safetensors")), O.read_safetensors(
        os.path.join(bf, "model.safetensors"))
    check(all(torch.equal(w[n].nan_to_num(7.0), b[n].nan_to_num(7.0)) for n in w) and
          all(d == "F32" for d, _ in raw_tensors(os.path.join(wide, "model.safetensors")).values()),
          "the BF16 model converted to f32 holds exactly the BF16 values")

    # init in BF16 == init in F32 rounded by torch
    cpath = os.path.join(work, "config.json")
    with open(cpath, "w") as f:
        json.dump(CONFIG, f)
    i32, i16 = os.path.join(work, "init32"), os.path.join(work, "init16")
    run([a.rein, "model", "init", "--config", cpath, "--seed", "9", "-o", i32])
    run([a.rein, "model", "init", "--config", cpath, "--seed", "9", "-o", i16, "--save-dtype", "bf16"])
    p32 = O.read_safetensors(os.path.join(i32, "model.safetensors"))
    p16 = O.read_safetensors(os.path.join(i16, "model.safetensors"))
    check(all(d == "BF16" for d, _ in raw_tensors(os.path.join(i16, "model.safetensors")).values()) and
          all(torch.equal(p32[n].to(torch.bfloat16).to(torch.float32), p16[n]) for n in p32),
          "rein model init --save-dtype bf16 writes the F32 init rounded as torch rounds it")
    toks = ",".join(str(t) for t in (1, 5, 9, 33, 2, 60, 7))
    lp = json.loads(run([a.rein, "model", "logprobs", "--model", i16, "--tokens", toks]).stdout)
    ref = O.TfmModel(O.load_config(CONFIG), p16).token_logp_entropy([[int(t) for t in toks.split(",")]])[0][0]
    d = float((torch.tensor(lp["sequences"][0]["logp"], dtype=torch.float64) - ref).abs().max())
    check(d < 1e-4, f"the BF16 model's logprobs equal the float64 oracle on its weights ({d:.1e})")

    p = run([a.rein, "model", "convert", "--model", f32, "-o", os.path.join(work, "x"), "--save-dtype", "fp8"],
            ok=False)
    check(p.returncode == 2 and "'fp8'" in p.stderr, "--save-dtype fp8 is a usage error naming the value: "
          + p.stderr.strip())
    p = run([a.rein, "model", "convert", "--model", f32, "-o", os.path.join(work, "x")], ok=False)
    check(p.returncode == 2 and "--save-dtype" in p.stderr, "convert without --save-dtype is a usage error")
    if not a.work:
        shutil.rmtree(work, ignore_errors=True)
    print("PASS" if not failures else f"{failures} failure(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
