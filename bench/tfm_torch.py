#!/usr/bin/python3
"""PyTorch eager (CPU, float32) baseline for bench/bench_tfm.c: the same two workloads on the same
models, so that Rein's transformer executor can be compared with plain PyTorch on one machine.

    /usr/bin/python3 bench/tfm_torch.py --config 1m|20m [--threads T] [--repeat R] [--check]
      -> one JSON line {"config", "params", "threads", "repeat", "train_tok_s", "gen_tok_s", ...}
    /usr/bin/python3 bench/tfm_torch.py --serve --config 1m|20m [--threads T]
      -> prints "ready", then answers each line "train" or "gen" on stdin with the seconds of one
         training step or one generation (bench_tfm runs it so as to interleave the two sides)

Workloads (as in bench_tfm.c):
  1m:  Llama, vocab 512, dim 128, 4 layers, 4 heads (2 kv), MLP 384, tied
  20m: Llama, vocab 8192, dim 384, 8 layers, 6 heads (2 kv), MLP 1024, untied
  train:    16 sequences of 128 tokens (bench_tfm.c's xorshift token stream); every position except
            the last of a sequence has a target.  One step = zero_grad, forward (the head only at the
            127 positions per sequence that have a target: [16, 127, V] logits), log_softmax over
            the full vocabulary, logp of the targets and the entropy, loss = sum(dlogp*logp +
            dentropy*entropy) with dlogp = -1/N, dentropy = 1e-3/N (N = 2048), loss.backward(),
            clip_grad_norm_(1.0), torch.optim.AdamW (lr 1e-5, betas (0.9, 0.999), eps 1e-8,
            weight decay 0.01 on 2-D tensors only) -- Rein's tfm_adamw_defaults().
            tokens/s = 2048 / step time.
  generate: 16 prompts of 16 tokens (the first 256 tokens of the same stream), 112 new tokens each
            at temperature 1 with a KV cache: one batched prefill of the 16 prompts, then one
            forward of 16 rows per decode step; torch.multinomial sampling of the whole batch, and
            the log-prob of each sampled token (Rein's tfm_generate returns it too).
            tokens/s = 16*112 / time.
  One warm-up, then R timed repeats; the median is reported.
  Threads: torch.set_num_threads(T), and OPENBLAS_NUM_THREADS = OMP_NUM_THREADS = T,
  OMP_WAIT_POLICY = PASSIVE unless already set in the environment (see below; "env" in the JSON).

The model is the one of tests/oracle/tfm_oracle.py (load_config, param_shapes, random_params,
rope_inv_freq; Hugging Face Llama semantics).  The oracle's own forward loops over the sequences in
Python for attention and for logp/entropy, and its generate() samples one row at a time in float64,
so the timed path uses the batched eager implementation below instead, written the way a plain
eager PyTorch Llama is written (Hugging Face style): nn.Parameter leaves, F.embedding / F.linear,
RMSNorm, rotate-half RoPE from precomputed cos/sin tables, causal attention on a [B, H, L, hd]
batch, SwiGLU MLP.  torch 1.13 (Debian's python3-torch) has no scaled_dot_product_attention, so
attention is the explicit "eager" form: scores = q k^T / sqrt(hd), masked_fill of the causal mask,
softmax, @ v.  Grouped-query attention is done without copying K/V (repeat_kv): the `rep` query
heads that share a kv head are laid out as one [rep*L, hd] block, so one batched matmul per kv head
serves them all.  No torch.compile, no fused kernels; generation runs under torch.no_grad().

--check (not timed) verifies this implementation before trusting its numbers:
  * float64 logits, logp, entropy and every parameter gradient equal the oracle's TfmModel
    (forward_packed / token_logp_entropy, autograd) on a few sequences;
  * the logits (and sampled-token logp) produced during KV-cache generation equal a full forward
    over prompt + generated tokens, for every sequence of the batch (float32: max abs diff
    <= 1e-4; float64: <= 1e-10);
  * a few training steps at lr 1e-3 on the benchmark batch decrease the loss.
"""

import argparse
import json
import math
import os
import statistics
import sys
import time


def _threads_from_argv(default=2):
    a = sys.argv[1:]
    for i, x in enumerate(a):
        if x == "--threads" and i + 1 < len(a):
            return a[i + 1]
        if x.startswith("--threads="):
            return x.split("=", 1)[1]
    return str(default)


# Thread setup, before torch is imported (these are read when the libraries load; a value already
# in the environment is kept):
# * Debian's torch does its GEMMs in OpenBLAS (the pthreads build), whose thread count
#   torch.set_num_threads() does not change: OPENBLAS_NUM_THREADS = OMP_NUM_THREADS = --threads.
# * OMP_WAIT_POLICY=PASSIVE: torch's own kernels run on libgomp threads, which by default spin
#   after every parallel region, while OpenBLAS's separate pthreads do the GEMMs; on a 2-core
#   machine the two pools then fight over the cores, and the default made training ~2x and
#   generation ~4x slower than this setting (slower than 1 thread).  A pip wheel (MKL / oneDNN
#   GEMMs on the same OpenMP pool) has no such conflict, so this is what a fair baseline needs.
for _v, _x in (("OPENBLAS_NUM_THREADS", _threads_from_argv()), ("OMP_NUM_THREADS", _threads_from_argv()),
               ("OMP_WAIT_POLICY", "PASSIVE")):
    os.environ.setdefault(_v, _x)

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "oracle"))
import tfm_oracle  # noqa: E402

CONFIGS = {
    "1m": dict(model_type="llama", vocab_size=512, hidden_size=128, num_hidden_layers=4,
               num_attention_heads=4, num_key_value_heads=2, intermediate_size=384,
               tie_word_embeddings=True),
    "20m": dict(model_type="llama", vocab_size=8192, hidden_size=384, num_hidden_layers=8,
                num_attention_heads=6, num_key_value_heads=2, intermediate_size=1024,
                tie_word_embeddings=False),
}

S, L, P, NEW = 16, 128, 16, 112      # sequences, sequence length, prompt length, new tokens
N = S * L


def bench_tokens(vocab: int) -> torch.Tensor:
    """bench_tfm.c's token stream: xorshift64 from 88172645463325252, mod vocab; [S, L]."""
    r, out, M = 88172645463325252, [], (1 << 64) - 1
    for _ in range(N):
        r ^= (r << 13) & M
        r ^= r >> 7
        r ^= (r << 17) & M
        out.append(r % vocab)
    return torch.tensor(out, dtype=torch.long).view(S, L)


class Llama:
    """Batched eager Llama / Qwen2 decoder on tfm_oracle's parameter names and semantics."""

    def __init__(self, cfg, params, dtype=torch.float32, max_pos=L):
        self.cfg, self.dtype = cfg, dtype
        self.p = {n: torch.nn.Parameter(params[n].detach().to(dtype).clone())
                  for n in tfm_oracle.param_shapes(cfg)}
        g = self.p.get
        self.emb = g("model.embed_tokens.weight")
        self.head = self.emb if cfg.tie_word_embeddings else g("lm_head.weight")
        self.norm = g("model.norm.weight")
        self.layers = []
        for i in range(cfg.num_hidden_layers):
            a = f"model.layers.{i}."
            self.layers.append(tuple(g(a + s) for s in (
                "input_layernorm.weight",
                "self_attn.q_proj.weight", "self_attn.q_proj.bias",
                "self_attn.k_proj.weight", "self_attn.k_proj.bias",
                "self_attn.v_proj.weight", "self_attn.v_proj.bias",
                "self_attn.o_proj.weight", "self_attn.o_proj.bias",
                "post_attention_layernorm.weight",
                "mlp.gate_proj.weight", "mlp.up_proj.weight", "mlp.down_proj.weight")))
        self.H, self.KV, self.hd = cfg.num_attention_heads, cfg.num_key_value_heads, cfg.head_dim
        self.rep = self.H // self.KV
        self.eps = cfg.rms_norm_eps
        self.scale = 1.0 / math.sqrt(self.hd)
        # rotary tables [max_pos, hd] (both halves), computed once in float64
        ang = torch.arange(max_pos, dtype=torch.float64)[:, None] * tfm_oracle.rope_inv_freq(cfg)[None]
        ang = torch.cat([ang, ang], dim=-1)
        self.cos, self.sin = ang.cos().to(dtype), ang.sin().to(dtype)
        # causal mask for the grouped query layout: row r*T + i (query i) sees keys j <= start + i
        self._masks = {}

    def parameters(self):
        return list(self.p.values())     # unique leaves (a tied head is the embedding itself)

    def nparams(self):
        return sum(t.numel() for t in self.p.values())

    def _mask(self, T, start):
        key = (T, start)
        if key not in self._masks:
            m = torch.ones(T, start + T, dtype=torch.bool).triu(start + 1)   # True = masked out
            self._masks[key] = m.repeat(self.rep, 1)                            # [rep*T, start+T]
        return self._masks[key]

    def _rms(self, x, w):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * w

    @staticmethod
    def _rope(x, cos, sin):
        h = x.shape[-1] // 2
        return x * cos + torch.cat([-x[..., h:], x[..., :h]], dim=-1) * sin

    def forward(self, tokens, cache=None, start=0, last_only=False, drop_last=False):
        """tokens [B, T] at positions start..start+T-1 -> logits [B, T, V] ([B, V] with
        last_only, [B, T-1, V] with drop_last: the head is applied only where it is needed).
        With a cache (list of (K, V) [B, KV, cap, hd] per layer), the new keys and values are
        written at start.. and attention covers positions 0..start+T-1."""
        B, T = tokens.shape
        H, KV, hd, rep = self.H, self.KV, self.hd, self.rep
        cos, sin = self.cos[start:start + T], self.sin[start:start + T]
        mask = self._mask(T, start) if T > 1 else None
        x = F.embedding(tokens, self.emb)
        for li, (w_in, wq, bq, wk, bk, wv, bv, wo, bo, w_post, wg, wu, wd) in enumerate(self.layers):
            h = self._rms(x, w_in)
            q = F.linear(h, wq, bq).view(B, T, H, hd).transpose(1, 2)        # [B, H, T, hd]
            k = F.linear(h, wk, bk).view(B, T, KV, hd).transpose(1, 2)       # [B, KV, T, hd]
            v = F.linear(h, wv, bv).view(B, T, KV, hd).transpose(1, 2)
            q, k = self._rope(q, cos, sin), self._rope(k, cos, sin)
            if cache is not None:
                ck, cv = cache[li]
                ck[:, :, start:start + T] = k
                cv[:, :, start:start + T] = v
                k, v = ck[:, :, :start + T], cv[:, :, :start + T]
            # query head j uses kv head j // rep: group the rep heads of a kv head as rows
            qg = q.reshape(B, KV, rep * T, hd)
            sc = torch.matmul(qg, k.transpose(-1, -2)) * self.scale           # [B, KV, rep*T, S]
            if mask is not None:
                sc = sc.masked_fill(mask, float("-inf"))
            att = torch.matmul(torch.softmax(sc, dim=-1), v)                  # [B, KV, rep*T, hd]
            att = att.view(B, H, T, hd).transpose(1, 2).reshape(B, T, H * hd)
            x = x + F.linear(att, wo, bo)
            h = self._rms(x, w_post)
            x = x + F.linear(F.silu(F.linear(h, wg)) * F.linear(h, wu), wd)
        if last_only:
            x = x[:, -1]
        elif drop_last:
            x = x[:, :-1]
        return F.linear(self._rms(x, self.norm), self.head)

    def logp_entropy(self, tokens):
        """tokens [B, L] -> (logp [B, L-1] of tokens[:, 1:], entropy [B, L-1])."""
        logits = self.forward(tokens, drop_last=True)       # the last position has no target
        lp = torch.log_softmax(logits, dim=-1)
        logp = lp.gather(-1, tokens[:, 1:, None]).squeeze(-1)
        ent = -(lp.exp() * lp).sum(-1)
        return logp, ent

    def new_cache(self, B, cap):
        return [(torch.zeros(B, self.KV, cap, self.hd, dtype=self.dtype),
                 torch.zeros(B, self.KV, cap, self.hd, dtype=self.dtype)) for _ in self.layers]

    @torch.no_grad()
    def generate(self, prompts, max_new, temperature=1.0, generator=None, record=False):
        """prompts [B, P] -> (tokens [B, max_new], logp at T=1 [B, max_new], recorded logits)."""
        B, Pn = prompts.shape
        cache = self.new_cache(B, Pn + max_new)
        out = torch.empty(B, max_new, dtype=torch.long)
        out_lp = torch.empty(B, max_new, dtype=self.dtype)
        rec = []
        logits = self.forward(prompts, cache, 0, last_only=True)                # [B, V]
        for t in range(max_new):
            if record:
                rec.append(logits.clone())
            lp = torch.log_softmax(logits, dim=-1)
            probs = lp.exp() if temperature == 1.0 else torch.softmax(logits / temperature, -1)
            nxt = torch.multinomial(probs, 1, generator=generator)              # [B, 1]
            out[:, t:t + 1] = nxt
            out_lp[:, t:t + 1] = lp.gather(-1, nxt)
            if t == max_new - 1:
                break
            logits = self.forward(nxt, cache, Pn + t, last_only=True)
        return out, out_lp, rec


def make_optimizer(model, lr=1e-5, wd=0.01):
    ps = model.parameters()
    decay = [p for p in ps if p.dim() == 2]
    nodecay = [p for p in ps if p.dim() != 2]
    groups = [{"params": decay, "weight_decay": wd}]
    if nodecay:
        groups.append({"params": nodecay, "weight_decay": 0.0})
    return torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.999), eps=1e-8)


def train_step(model, opt, tokens):
    opt.zero_grad(set_to_none=True)
    logp, ent = model.logp_entropy(tokens)
    loss = (-1.0 / N) * logp.sum() + (1e-3 / N) * ent.sum()   # sum(dlogp*logp + dent*ent)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    return loss.detach()


def timed(fn, repeat):
    ts = []
    for _ in range(repeat + 1):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts[1:]), ts


def check(cfg, W, tokens, prompts):
    ok = True

    def report(name, good, detail):
        nonlocal ok
        print(("ok   " if good else "FAIL ") + name + f"  ({detail})", file=sys.stderr)
        ok = ok and bool(good)

    # 1. float64: logits, logp/entropy and gradients against the oracle
    seqs = tokens[:3, :40]
    ref = tfm_oracle.TfmModel(cfg, W, dtype=torch.float64, requires_grad=True)
    mine = Llama(cfg, W, dtype=torch.float64)
    d = max(float((a - b).abs().max())
            for a, b in zip(ref.forward_packed(seqs.tolist()), mine.forward(seqs).detach()))
    report("float64 logits == oracle forward_packed", d < 1e-10, f"max |d| {d:.1e}")
    g = torch.Generator().manual_seed(3)
    dl = torch.randn(3, 39, dtype=torch.float64, generator=g)
    de = torch.randn(3, 39, dtype=torch.float64, generator=g)
    r = ref.token_logp_entropy(seqs.tolist())
    lr_ = sum((dl[i] * r[i][0] + de[i] * r[i][1]).sum() for i in range(3))
    lr_.backward()
    lp, en = mine.logp_entropy(seqs)
    d = max(float((lp - torch.stack([x[0] for x in r])).abs().max()),
            float((en - torch.stack([x[1] for x in r])).abs().max()))
    report("float64 logp / entropy == oracle", d < 1e-10, f"max |d| {d:.1e}")
    (dl * lp + de * en).sum().backward()
    d = max(float((ref.params[n].grad - mine.p[n].grad).abs().max()) for n in mine.p)
    report("float64 gradients == oracle autograd", d < 1e-9, f"max |d| {d:.1e}")

    # 2. KV-cache generation logits == a full forward over prompt + generated tokens, for every
    #    sequence of the batch: float32 (the benchmark) within 1e-4, float64 within 1e-10
    for dtype, tol in ((torch.float32, 1e-4), (torch.float64, 1e-10)):
        m = Llama(cfg, W, dtype=dtype)
        toks, lps, rec = m.generate(prompts, NEW, generator=torch.Generator().manual_seed(1),
                                    record=True)
        with torch.no_grad():
            full = m.forward(torch.cat([prompts, toks], dim=1))[:, P - 1:P - 1 + NEW]
        d = float((torch.stack(rec, dim=1) - full).abs().max())
        what = str(dtype).replace("torch.", "")
        report(f"{what} KV-cache generation logits == full forward", d <= tol,
               f"max |d| {d:.1e}, max |logit| {float(full.abs().max()):.1f}")
        lp_full = torch.log_softmax(full, -1).gather(-1, toks[..., None])[..., 0]
        d = float((lp_full - lps).abs().max())
        report(f"{what} generated logp == full-forward logp", d <= tol, f"max |d| {d:.1e}")

    # 3. training: the loss decreases at a large learning rate
    m = Llama(cfg, W)
    opt = make_optimizer(m, lr=1e-3)
    losses = [float(train_step(m, opt, tokens)) for _ in range(6)]
    report("loss decreases over 6 steps at lr 1e-3", losses[-1] < losses[0] and
           all(b < a for a, b in zip(losses, losses[1:])), " ".join(f"{x:.4f}" for x in losses))
    return ok


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", choices=sorted(CONFIGS), default="1m")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--check", action="store_true", help="run the correctness checks first")
    ap.add_argument("--serve", action="store_true", help="time one request per stdin line")
    a = ap.parse_args()
    torch.set_num_threads(max(1, a.threads))

    cfg = tfm_oracle.load_config(CONFIGS[a.config])
    # weights: the oracle's random_params at an initializer-like scale (matrices N(0, 0.02));
    # speed does not depend on the values
    W = tfm_oracle.random_params(cfg, a.seed, std=0.02, emb_std=0.02)
    tokens = bench_tokens(cfg.vocab_size)                       # [16, 128]
    prompts = tokens.reshape(-1)[:S * P].view(S, P).clone()     # [16, 16]

    if a.check and not check(cfg, W, tokens, prompts):
        print("tfm_torch: check FAILED", file=sys.stderr)
        sys.exit(1)

    model = Llama(cfg, W)
    opt = make_optimizer(model)
    gen = torch.Generator().manual_seed(7)
    if a.serve:
        print("ready", flush=True)
        for line in sys.stdin:
            what = line.strip()
            if what not in ("train", "gen"):
                break
            t0 = time.perf_counter()
            if what == "train":
                train_step(model, opt, tokens)
            else:
                model.generate(prompts, NEW, 1.0, gen)
            print(f"{time.perf_counter() - t0:.6f}", flush=True)
        return
    repeat = max(1, a.repeat)
    t_train, train_all = timed(lambda: train_step(model, opt, tokens), repeat)
    t_gen, gen_all = timed(lambda: model.generate(prompts, NEW, 1.0, gen), repeat)
    print(json.dumps({
        "config": a.config, "params": model.nparams(), "threads": torch.get_num_threads(),
        "repeat": repeat, "torch": torch.__version__,
        "env": {v: os.environ.get(v) for v in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS",
                                                "OMP_WAIT_POLICY")},
        "train_tok_s": N / t_train, "gen_tok_s": S * NEW / t_gen,
        "train_step_s": t_train, "gen_s": t_gen,
        "train_times_s": [round(t, 4) for t in train_all],
        "gen_times_s": [round(t, 4) for t in gen_all]}), flush=True)


if __name__ == "__main__":
    main()
