#!/usr/bin/python3
"""An independent PyTorch implementation of the Llama / Qwen2 / Qwen3 decoder, for testing Rein's executor.

Written from the Hugging Face formulas (not from Rein's C code). Every computation is plain
PyTorch in the dtype the model is built with (float64 by default), so that it can serve as a
reference for the float32 C executor.

The architecture (Hugging Face names and semantics):

    x = embed_tokens[tok]
    for every layer:
        h = rmsnorm(x) * input_layernorm                       rmsnorm(x) = x / sqrt(mean(x^2) + eps)
        q, k, v = h Wq^T + bq, h Wk^T + bk, h Wv^T + bv         (bias: qwen2 always; llama, qwen3 when attention_bias)
        qwen3 only: every head of q and k (hd values) rmsnorm'ed, times q_norm / k_norm (hd weights)
        q, k = rope(q, pos), rope(k, pos)                       "rotate_half": pair (i, i + hd/2)
        a = causal softmax(q k^T / sqrt(hd)) v                  grouped-query: q head j uses kv head j // (H/KV)
        x = x + a Wo^T (+ bo: llama / qwen3 attention_bias only)
        h = rmsnorm(x) * post_attention_layernorm
        x = x + (silu(h Wg^T) * (h Wu^T)) Wd^T
    logits = (rmsnorm(x) * norm) W_head^T                       W_head = lm_head, or embed_tokens when tied

Rotary frequencies: inv_freq[i] = theta^(-2i/hd), i < hd/2, then rope_scaling: "linear" divides by
factor; "llama3" is the Hugging Face llama3 formula (long wavelengths divided by factor, short ones
kept, a smooth interpolation between).

Contents:
    load_config(path_or_dict)       -> Config (defaults filled in)
    read_safetensors / write_safetensors / load_model_dir / save_model_dir
    random_params(cfg, seed)        -> {name: float32 tensor}, far from uniform outputs (for tests)
    TfmModel(cfg, params, dtype)    -> .forward_packed(seqs) (logits per sequence),
                                       .token_logp_entropy(seqs), .prefill(prompts) / .decode(cache, tok)
    filtered_logprobs(logits, T, top_k, top_p) -> log-probs of the distribution a sampler draws from
    generate(model, prompts, max_new, ...) -> batched KV-cache sampling (for benchmarks)
    adamw_reference(...)            -> clip_grad_norm_ + torch.optim.AdamW, the Rein step semantics

Run `/usr/bin/python3 tests/oracle/tfm_oracle.py --selftest` to check the oracle against itself
(KV-cache decode == packed forward, packing == per-sequence, rope == complex rotation, gradcheck...).
"""

import json
import math
import os
import struct
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch

# ---------------------------------------------------------------------------------------------
# configuration
# ---------------------------------------------------------------------------------------------


@dataclass
class Config:
    model_type: str
    vocab_size: int
    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    head_dim: int
    intermediate_size: int
    rms_norm_eps: float
    rope_theta: float
    tie_word_embeddings: bool
    qkv_bias: bool
    o_bias: bool
    qk_norm: bool
    rope_scaling: Optional[dict]
    eos_token_ids: List[int] = field(default_factory=list)
    raw: dict = field(default_factory=dict)


def load_config(src) -> Config:
    """A config.json path, a directory holding one, or an already parsed dict."""
    if isinstance(src, dict):
        c = src
    else:
        path = os.path.join(src, "config.json") if os.path.isdir(src) else src
        with open(path) as f:
            c = json.load(f)
    mt = c.get("model_type", "llama")
    if mt not in ("llama", "qwen2", "qwen3"):
        raise ValueError(f"model_type {mt!r}: only llama, qwen2 and qwen3")
    D = int(c["hidden_size"])
    H = int(c["num_attention_heads"])
    KV = int(c.get("num_key_value_heads") or H)
    # Qwen3's configuration defaults head_dim to 128, the others to hidden / heads
    hd = int(c.get("head_dim") or (128 if mt == "qwen3" else D // H))
    if H % KV:
        raise ValueError("num_attention_heads must be a multiple of num_key_value_heads")
    act = c.get("hidden_act", "silu")
    if act != "silu":
        raise ValueError(f"hidden_act {act!r}: only silu")
    attn_bias = bool(c.get("attention_bias", False))
    eos = c.get("eos_token_id")
    eos = [] if eos is None else ([int(eos)] if isinstance(eos, int) else [int(e) for e in eos])
    return Config(
        model_type=mt,
        vocab_size=int(c["vocab_size"]),
        hidden_size=D,
        num_hidden_layers=int(c["num_hidden_layers"]),
        num_attention_heads=H,
        num_key_value_heads=KV,
        head_dim=hd,
        intermediate_size=int(c["intermediate_size"]),
        rms_norm_eps=float(c.get("rms_norm_eps", 1e-6)),
        rope_theta=float(c.get("rope_theta", 10000.0)),
        tie_word_embeddings=bool(c.get("tie_word_embeddings", False)),
        qkv_bias=True if mt == "qwen2" else attn_bias,
        o_bias=False if mt == "qwen2" else attn_bias,
        qk_norm=mt == "qwen3",
        rope_scaling=c.get("rope_scaling"),
        eos_token_ids=eos,
        raw=dict(c),
    )


def param_shapes(cfg: Config) -> Dict[str, tuple]:
    """Every tensor of the checkpoint, with its shape, in a fixed order."""
    D, H, KV, hd, I, V = (cfg.hidden_size, cfg.num_attention_heads, cfg.num_key_value_heads,
                          cfg.head_dim, cfg.intermediate_size, cfg.vocab_size)
    s = {"model.embed_tokens.weight": (V, D)}
    for i in range(cfg.num_hidden_layers):
        p = f"model.layers.{i}."
        s[p + "input_layernorm.weight"] = (D,)
        s[p + "self_attn.q_proj.weight"] = (H * hd, D)
        s[p + "self_attn.k_proj.weight"] = (KV * hd, D)
        s[p + "self_attn.v_proj.weight"] = (KV * hd, D)
        if cfg.qkv_bias:
            s[p + "self_attn.q_proj.bias"] = (H * hd,)
            s[p + "self_attn.k_proj.bias"] = (KV * hd,)
            s[p + "self_attn.v_proj.bias"] = (KV * hd,)
        s[p + "self_attn.o_proj.weight"] = (D, H * hd)
        if cfg.o_bias:
            s[p + "self_attn.o_proj.bias"] = (D,)
        if cfg.qk_norm:
            s[p + "self_attn.q_norm.weight"] = (hd,)
            s[p + "self_attn.k_norm.weight"] = (hd,)
        s[p + "post_attention_layernorm.weight"] = (D,)
        s[p + "mlp.gate_proj.weight"] = (I, D)
        s[p + "mlp.up_proj.weight"] = (I, D)
        s[p + "mlp.down_proj.weight"] = (D, I)
    s["model.norm.weight"] = (D,)
    if not cfg.tie_word_embeddings:
        s["lm_head.weight"] = (V, D)
    return s


def rope_inv_freq(cfg: Config) -> torch.Tensor:
    """float64 inverse frequencies [hd/2], rope_scaling applied."""
    hd = cfg.head_dim
    i = torch.arange(hd // 2, dtype=torch.float64)
    inv = cfg.rope_theta ** (-2.0 * i / hd)
    rs = cfg.rope_scaling
    if not rs:
        return inv
    kind = rs.get("rope_type", rs.get("type", "default"))
    if kind == "default":
        return inv
    factor = float(rs["factor"])
    if kind == "linear":
        return inv / factor
    if kind == "llama3":
        low = float(rs.get("low_freq_factor", 1.0))
        high = float(rs.get("high_freq_factor", 4.0))
        old = float(rs.get("original_max_position_embeddings", 8192))
        low_wavelen, high_wavelen = old / low, old / high
        wavelen = 2 * math.pi / inv
        out = torch.where(wavelen > low_wavelen, inv / factor, inv)
        smooth = (old / wavelen - low) / (high - low)
        smoothed = (1 - smooth) * out / factor + smooth * out
        medium = (wavelen >= high_wavelen) & (wavelen <= low_wavelen)
        return torch.where(medium, smoothed, out)
    raise ValueError(f"rope_scaling type {kind!r} not supported")


# ---------------------------------------------------------------------------------------------
# safetensors (own reader / writer: json + struct + numpy)
# ---------------------------------------------------------------------------------------------

_ST_DTYPES = {"F32": 4, "F16": 2, "BF16": 2, "F64": 8}


def read_safetensors(path: str) -> Dict[str, torch.Tensor]:
    """{name: float32 tensor}. F16 and BF16 are converted exactly to float32, F64 kept."""
    with open(path, "rb") as f:
        blob = f.read()
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + n].decode("utf-8"))
    data = memoryview(blob)[8 + n:]
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        dt, shape = info["dtype"], tuple(info["shape"])
        b, e = info["data_offsets"]
        count = int(np.prod(shape)) if shape else 1
        if dt not in _ST_DTYPES:
            raise ValueError(f"{path}: {name}: dtype {dt} not supported")
        if e - b != count * _ST_DTYPES[dt]:
            raise ValueError(f"{path}: {name}: data_offsets do not match the shape")
        raw = bytes(data[b:e])
        if dt == "F32":
            a = np.frombuffer(raw, dtype="<f4").astype(np.float32)
        elif dt == "F64":
            a = np.frombuffer(raw, dtype="<f8").astype(np.float64)
        elif dt == "F16":
            a = np.frombuffer(raw, dtype="<f2").astype(np.float32)
        else:  # BF16: the upper half of a float32
            a = (np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16).view(np.float32)
        out[name] = torch.from_numpy(a.reshape(shape).copy())
    return out


def safetensors_dtypes(path: str) -> Dict[str, str]:
    """{name: dtype string} from the header only."""
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n).decode("utf-8"))
    return {k: v["dtype"] for k, v in header.items() if k != "__metadata__"}


def _to_bytes(t: torch.Tensor, dt: str) -> bytes:
    t = t.detach().cpu().contiguous()
    if dt == "F32":
        return t.to(torch.float32).numpy().astype("<f4").tobytes()
    if dt == "F64":
        return t.to(torch.float64).numpy().astype("<f8").tobytes()
    if dt == "F16":
        return t.to(torch.float32).numpy().astype("<f2").tobytes()  # round to nearest even
    if dt == "BF16":  # torch rounds to nearest even
        return t.to(torch.bfloat16).view(torch.int16).numpy().astype("<i2").tobytes()
    raise ValueError(dt)


def write_safetensors(path: str, tensors: Dict[str, torch.Tensor], dtype="F32", metadata=None):
    """dtype: "F32" | "F16" | "BF16" | "F64", or a dict {name: dtype} for mixed files."""
    header, chunks, off = {}, [], 0
    for name, t in tensors.items():
        dt = dtype[name] if isinstance(dtype, dict) else dtype
        b = _to_bytes(t, dt)
        header[name] = {"dtype": dt, "shape": list(t.shape), "data_offsets": [off, off + len(b)]}
        chunks.append(b)
        off += len(b)
    header["__metadata__"] = dict(metadata or {"format": "pt"})
    h = json.dumps(header, separators=(",", ":")).encode("utf-8")
    h += b" " * ((8 - len(h) % 8) % 8)  # align the data section, as the reference writer does
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for c in chunks:
            f.write(c)


def load_model_dir(d: str) -> Dict[str, torch.Tensor]:
    """model.safetensors, or the shards of model.safetensors.index.json."""
    idx = os.path.join(d, "model.safetensors.index.json")
    if os.path.exists(idx):
        with open(idx) as f:
            wm = json.load(f)["weight_map"]
        out = {}
        for fn in sorted(set(wm.values())):
            part = read_safetensors(os.path.join(d, fn))
            for k, v in part.items():
                if wm.get(k) == fn:
                    out[k] = v
        missing = set(wm) - set(out)
        if missing:
            raise ValueError(f"{d}: tensors missing from the shards: {sorted(missing)[:5]}")
        return out
    return read_safetensors(os.path.join(d, "model.safetensors"))


def save_model_dir(d: str, config: dict, params: Dict[str, torch.Tensor], dtype="F32",
                   shards: int = 1):
    """config.json + model.safetensors (or `shards` files and model.safetensors.index.json)."""
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(config, f, indent=1)
    if shards <= 1:
        write_safetensors(os.path.join(d, "model.safetensors"), params, dtype)
        return
    names = list(params)
    per = -(-len(names) // shards)
    wm = {}
    for s in range(shards):
        fn = f"model-{s + 1:05d}-of-{shards:05d}.safetensors"
        part = {n: params[n] for n in names[s * per:(s + 1) * per]}
        write_safetensors(os.path.join(d, fn), part, dtype)
        wm.update({n: fn for n in part})
    with open(os.path.join(d, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {}, "weight_map": wm}, f, indent=1)


def random_params(cfg: Config, seed: int, std: float = 0.2, emb_std: float = 0.6
                  ) -> Dict[str, torch.Tensor]:
    """float32 test weights: norms ~ 1 + noise, nonzero biases, matrices N(0, std)."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    for name, shape in param_shapes(cfg).items():
        if name.endswith("norm.weight"):  # layernorms, the final norm, qwen3's q_norm / k_norm
            t = 1.0 + 0.2 * torch.randn(shape, generator=g, dtype=torch.float64)
        elif name.endswith(".bias"):
            t = 0.3 * torch.randn(shape, generator=g, dtype=torch.float64)
        elif name == "model.embed_tokens.weight":
            t = emb_std * torch.randn(shape, generator=g, dtype=torch.float64)
        elif name == "lm_head.weight":
            t = 0.3 * torch.randn(shape, generator=g, dtype=torch.float64)
        else:
            t = std * torch.randn(shape, generator=g, dtype=torch.float64)
        out[name] = t.to(torch.float32)
    return out


# ---------------------------------------------------------------------------------------------
# the model
# ---------------------------------------------------------------------------------------------


def rmsnorm(x: torch.Tensor, w: torch.Tensor, eps: float) -> torch.Tensor:
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def rotate_half_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """x [..., T, hd]; cos/sin [T, hd/2]. Pairs (i, i + hd/2)."""
    h = x.shape[-1] // 2
    x1, x2 = x[..., :h], x[..., h:]
    return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1)


class KVCache:
    """Per layer k, v [B, KV, cap, hd]; lens[b] = cached positions of sequence b."""

    def __init__(self, n_layers, B, KV, cap, hd, dtype):
        self.k = [torch.zeros(B, KV, cap, hd, dtype=dtype) for _ in range(n_layers)]
        self.v = [torch.zeros(B, KV, cap, hd, dtype=dtype) for _ in range(n_layers)]
        self.lens = torch.zeros(B, dtype=torch.long)
        self.cap = cap

    def grow(self, need: int):
        if need <= self.cap:
            return
        cap = max(need, 2 * self.cap)
        for lst in (self.k, self.v):
            for i, t in enumerate(lst):
                n = torch.zeros(t.shape[0], t.shape[1], cap, t.shape[3], dtype=t.dtype)
                n[:, :, :self.cap] = t
                lst[i] = n
        self.cap = cap


class TfmModel:
    """The decoder. params: {HF name: tensor}; they are converted to `dtype` (float64 default).

    With requires_grad=True the converted tensors are autograd leaves (self.params); when the head
    is tied, lm_head is the same leaf as embed_tokens, so its gradient is the sum.
    """

    def __init__(self, cfg, params: Dict[str, torch.Tensor], dtype=torch.float64,
                 requires_grad=False):
        self.cfg = cfg if isinstance(cfg, Config) else load_config(cfg)
        self.dtype = dtype
        shapes = param_shapes(self.cfg)
        missing = [n for n in shapes if n not in params]
        if missing:
            raise ValueError(f"missing tensors: {missing[:5]}")
        self.params = {}
        for n, shp in shapes.items():
            t = params[n]
            if tuple(t.shape) != tuple(shp):
                raise ValueError(f"{n}: shape {tuple(t.shape)}, expected {shp}")
            self.params[n] = t.detach().to(dtype).clone().requires_grad_(requires_grad)
        self.inv_freq = rope_inv_freq(self.cfg)

    # -- pieces ---------------------------------------------------------------------------------
    def _p(self, name):
        return self.params.get(name)

    def head(self):
        return self.params["model.embed_tokens.weight" if self.cfg.tie_word_embeddings
                           else "lm_head.weight"]

    def _cos_sin(self, pos: torch.Tensor):
        ang = pos.to(torch.float64)[:, None] * self.inv_freq[None, :]
        return torch.cos(ang).to(self.dtype), torch.sin(ang).to(self.dtype)

    def _lin(self, x, w, b=None):
        y = x @ self._p(w).t()
        if b is not None and b in self.params:
            y = y + self._p(b)
        return y

    def _qkv(self, i, h, pos):
        """h [T, D], pos [T] -> q [H, T, hd], k, v [KV, T, hd], rope applied."""
        c, p = self.cfg, f"model.layers.{i}.self_attn."
        T, hd = h.shape[0], c.head_dim
        q = self._lin(h, p + "q_proj.weight", p + "q_proj.bias").view(T, -1, hd).transpose(0, 1)
        k = self._lin(h, p + "k_proj.weight", p + "k_proj.bias").view(T, -1, hd).transpose(0, 1)
        if c.qk_norm:  # per head over its hd values, before the rotary embedding
            q = rmsnorm(q, self._p(p + "q_norm.weight"), c.rms_norm_eps)
            k = rmsnorm(k, self._p(p + "k_norm.weight"), c.rms_norm_eps)
        v = self._lin(h, p + "v_proj.weight", p + "v_proj.bias").view(T, -1, hd).transpose(0, 1)
        cos, sin = self._cos_sin(pos)
        return rotate_half_rope(q, cos, sin), rotate_half_rope(k, cos, sin), v

    def _mlp(self, i, x):
        p = f"model.layers.{i}."
        h = rmsnorm(x, self._p(p + "post_attention_layernorm.weight"), self.cfg.rms_norm_eps)
        g = torch.nn.functional.silu(self._lin(h, p + "mlp.gate_proj.weight"))
        u = self._lin(h, p + "mlp.up_proj.weight")
        return x + self._lin(g * u, p + "mlp.down_proj.weight")

    def _final(self, x):
        return rmsnorm(x, self._p("model.norm.weight"), self.cfg.rms_norm_eps) @ self.head().t()

    # -- packed forward -------------------------------------------------------------------------
    def _packed_hidden(self, seqs: Sequence[Sequence[int]], cache=None):
        """The final residual stream [sum L_s, D] of the packed sequences (linear layers over all
        tokens at once, attention causal inside each sequence only), and the offsets.  With a
        cache, sequence s's keys and values (before the GQA repeat) are stored in its slot s."""
        c = self.cfg
        lens = [len(s) for s in seqs]
        if min(lens) < 1:
            raise ValueError("empty sequence")
        toks = torch.tensor([t for s in seqs for t in s], dtype=torch.long)
        pos = torch.cat([torch.arange(n) for n in lens])
        offs = np.cumsum([0] + lens)
        x = self.params["model.embed_tokens.weight"][toks]
        rep = c.num_attention_heads // c.num_key_value_heads
        scale = 1.0 / math.sqrt(c.head_dim)
        for i in range(c.num_hidden_layers):
            p = f"model.layers.{i}."
            h = rmsnorm(x, self._p(p + "input_layernorm.weight"), c.rms_norm_eps)
            q, k, v = self._qkv(i, h, pos)
            outs = []
            for s in range(len(seqs)):
                a, b = offs[s], offs[s + 1]
                n = b - a
                if cache is not None:
                    cache.k[i][s, :, :n] = k[:, a:b]
                    cache.v[i][s, :, :n] = v[:, a:b]
                kk = k[:, a:b].repeat_interleave(rep, dim=0)
                vv = v[:, a:b].repeat_interleave(rep, dim=0)
                sc = (q[:, a:b] @ kk.transpose(1, 2)) * scale                # [H, n, n]
                causal = torch.ones(n, n, dtype=torch.bool).tril()
                sc = sc.masked_fill(~causal, float("-inf"))
                outs.append(torch.softmax(sc, dim=-1) @ vv)                   # [H, n, hd]
            att = torch.cat(outs, dim=1).transpose(0, 1).reshape(x.shape[0], -1)
            x = x + self._lin(att, p + "self_attn.o_proj.weight", p + "self_attn.o_proj.bias")
            x = self._mlp(i, x)
        return x, offs

    def forward_packed(self, seqs: Sequence[Sequence[int]]) -> List[torch.Tensor]:
        """Logits [L_s, V] for every sequence of the packed batch."""
        x, offs = self._packed_hidden(seqs)
        logits = self._final(x)
        return [logits[offs[s]:offs[s + 1]] for s in range(len(seqs))]

    def token_logp_entropy(self, seqs, first_target=None):
        """Per sequence: (logp [L-1], entropy [L-1]) where entry j is about token j+1 given
        tokens[:j+1]. With first_target, entries for tokens with index < first_target are 0
        (they take no part in any loss)."""
        res = []
        for s_i, lg in enumerate(self.forward_packed(seqs)):
            s = seqs[s_i]
            lp = torch.log_softmax(lg[:-1], dim=-1)
            tgt = torch.tensor(s[1:], dtype=torch.long)
            logp = lp.gather(1, tgt[:, None])[:, 0]
            ent = -(lp.exp() * lp).sum(-1)
            if first_target is not None and first_target[s_i] > 1:
                keep = torch.arange(1, len(s)) >= first_target[s_i]
                logp = torch.where(keep, logp, torch.zeros_like(logp))
                ent = torch.where(keep, ent, torch.zeros_like(ent))
            res.append((logp, ent))
        return res

    # -- incremental (KV cache) -----------------------------------------------------------------
    @torch.no_grad()
    def prefill(self, prompts: Sequence[Sequence[int]], extra: int = 64):
        """Run the prompts (ragged) and cache their keys / values. Returns (cache, logits [B, V]
        of each prompt's last position). `extra`: cache room beyond the longest prompt."""
        c = self.cfg
        lens = [len(p) for p in prompts]
        cache = KVCache(c.num_hidden_layers, len(prompts), c.num_key_value_heads,
                        max(lens) + extra, c.head_dim, self.dtype)
        x, offs = self._packed_hidden(prompts, cache)
        cache.lens = torch.tensor(lens, dtype=torch.long)
        last = torch.tensor([o - 1 for o in offs[1:]], dtype=torch.long)
        return cache, self._final(x[last])

    @torch.no_grad()
    def decode(self, cache: KVCache, tokens) -> torch.Tensor:
        """One token per sequence (batched): appends to the cache, returns logits [B, V]."""
        c = self.cfg
        toks = torch.as_tensor(tokens, dtype=torch.long)
        B = toks.shape[0]
        cache.grow(int(cache.lens.max()) + 1)
        pos = cache.lens.clone()
        x = self.params["model.embed_tokens.weight"][toks]                 # [B, D]
        rep = c.num_attention_heads // c.num_key_value_heads
        KV, hd = c.num_key_value_heads, c.head_dim
        scale = 1.0 / math.sqrt(hd)
        bi = torch.arange(B)
        L = int(pos.max()) + 1
        valid = torch.arange(L)[None, :] <= pos[:, None]                  # [B, L]
        for i in range(c.num_hidden_layers):
            p = f"model.layers.{i}."
            h = rmsnorm(x, self._p(p + "input_layernorm.weight"), c.rms_norm_eps)
            q, k, v = self._qkv(i, h, pos)            # q [H, B, hd]; k, v [KV, B, hd]
            cache.k[i][bi, :, pos] = k.transpose(0, 1)
            cache.v[i][bi, :, pos] = v.transpose(0, 1)
            K = cache.k[i][:, :, :L]                                       # [B, KV, L, hd]
            Vv = cache.v[i][:, :, :L]
            qg = q.transpose(0, 1).reshape(B, KV, rep, hd)                 # head j -> kv j//rep
            sc = (qg @ K.transpose(2, 3)) * scale                          # [B, KV, rep, L]
            sc = sc.masked_fill(~valid[:, None, None, :], float("-inf"))
            att = (torch.softmax(sc, dim=-1) @ Vv).reshape(B, -1)          # [B, H*hd]
            x = x + self._lin(att, p + "self_attn.o_proj.weight", p + "self_attn.o_proj.bias")
            x = self._mlp(i, x)
        cache.lens = cache.lens + 1
        return self._final(x)


# ---------------------------------------------------------------------------------------------
# sampling distribution and the optimizer step
# ---------------------------------------------------------------------------------------------


def filtered_logprobs(logits: torch.Tensor, temperature: float = 1.0, top_k: int = 0,
                      top_p: float = 1.0):
    """Log-probs [V] of the distribution a sampler draws from: logits / T, keep the k largest
    (top_k > 0), renormalize, then keep the smallest prefix (by descending prob) whose
    cumulative prob >= top_p (at least one token), renormalize. -inf outside the support.
    Also returns the cumulative prob at the top-p cut and just before it (for ambiguity checks)."""
    lg = logits.to(torch.float64) / temperature
    V = lg.shape[-1]
    if 0 < top_k < V:
        kth = torch.topk(lg, top_k).values[-1]
        lg = lg.masked_fill(lg < kth, float("-inf"))
    lp = torch.log_softmax(lg, dim=-1)
    cut_info = None
    if top_p < 1.0:
        pr = lp.exp()
        order = torch.argsort(pr, descending=True)
        cum = torch.cumsum(pr[order], 0)
        n = int((cum < top_p).sum().item()) + 1          # smallest prefix with cum >= p
        n = min(max(n, 1), V)
        keep = torch.zeros(V, dtype=torch.bool)
        keep[order[:n]] = True
        lg = lg.masked_fill(~keep, float("-inf"))
        lp = torch.log_softmax(lg, dim=-1)
        cut_info = (float(cum[n - 2]) if n >= 2 else 0.0, float(cum[n - 1]))
    return lp, cut_info


@torch.no_grad()
def generate(model: "TfmModel", prompts, max_new: int, temperature: float = 1.0, top_k: int = 0,
             top_p: float = 1.0, seed: int = 0, stop=()):
    """Batched sampling with the KV cache (prefill, then one decode step per token for all live
    sequences). temperature 0 = greedy. Returns per prompt (tokens, logp at T=1, stopped).
    Not Rein's random stream: only the distributions are comparable, not the draws."""
    g = torch.Generator().manual_seed(seed)
    B = len(prompts)
    cache, logits = model.prefill(prompts, extra=max_new)
    toks = [[] for _ in range(B)]
    lps = [[] for _ in range(B)]
    done = [False] * B
    stop = set(stop)
    for step in range(max_new):
        nxt = []
        for b in range(B):
            lg = logits[b]
            if done[b]:
                nxt.append(0)               # a dead sequence still feeds a token (ignored)
                continue
            if temperature == 0:
                t = int(lg.argmax())
            else:
                lp, _ = filtered_logprobs(lg, temperature, top_k, top_p)
                t = int(torch.multinomial(lp.exp(), 1, generator=g))
            toks[b].append(t)
            lps[b].append(float(torch.log_softmax(lg.to(torch.float64), -1)[t]))
            done[b] = t in stop
            nxt.append(t)
        if all(done) or step == max_new - 1:
            break
        logits = model.decode(cache, nxt)
    return [(toks[b], lps[b], done[b]) for b in range(B)]


def adamw_reference(params: Dict[str, torch.Tensor], grads: Dict[str, torch.Tensor], lr, beta1,
                    beta2, eps, weight_decay, max_grad_norm):
    """One step from fresh optimizer state: torch.nn.utils.clip_grad_norm_ (when max_grad_norm
    > 0) and torch.optim.AdamW, weight decay on 2-D tensors only. float64.
    Returns (new params {name: tensor}, pre-clip global grad norm)."""
    names = list(params)
    ps = {n: torch.nn.Parameter(params[n].detach().to(torch.float64).clone()) for n in names}
    for n in names:
        ps[n].grad = grads[n].detach().to(torch.float64).clone()
    allp = [ps[n] for n in names]
    norm = float(torch.sqrt(sum((p.grad ** 2).sum() for p in allp)))
    if max_grad_norm > 0:
        torch.nn.utils.clip_grad_norm_(allp, max_grad_norm)
    decay = [ps[n] for n in names if ps[n].dim() == 2]
    nodecay = [ps[n] for n in names if ps[n].dim() != 2]
    groups = [{"params": decay, "weight_decay": weight_decay}]
    if nodecay:
        groups.append({"params": nodecay, "weight_decay": 0.0})
    opt = torch.optim.AdamW(groups, lr=lr, betas=(beta1, beta2), eps=eps)
    opt.step()
    return {n: ps[n].detach() for n in names}, norm


# ---------------------------------------------------------------------------------------------
# self-test of the oracle (no Rein involved)
# ---------------------------------------------------------------------------------------------


def _naive_logits(m: "TfmModel", seq: List[int]) -> torch.Tensor:
    """Slow textbook forward of one sequence (loops over positions and heads), for the self-test."""
    c, P = m.cfg, m.params
    hd, H, KV = c.head_dim, c.num_attention_heads, c.num_key_value_heads
    grp = H // KV

    def rms(v, w):
        return v / math.sqrt(float((v * v).mean()) + c.rms_norm_eps) * w

    def rot(v, t):
        out = v.clone()
        for i in range(hd // 2):
            a = t * float(m.inv_freq[i])
            x1, x2 = v[i], v[i + hd // 2]
            out[i] = x1 * math.cos(a) - x2 * math.sin(a)
            out[i + hd // 2] = x2 * math.cos(a) + x1 * math.sin(a)
        return out

    def lin(v, n):
        y = P[n + ".weight"] @ v
        return y + P[n + ".bias"] if n + ".bias" in P else y

    xs = [P["model.embed_tokens.weight"][t].clone() for t in seq]
    for li in range(c.num_hidden_layers):
        p = f"model.layers.{li}."
        hs = [rms(x, P[p + "input_layernorm.weight"]) for x in xs]
        qs = [lin(h, p + "self_attn.q_proj") for h in hs]
        ks = [lin(h, p + "self_attn.k_proj") for h in hs]
        if c.qk_norm:
            qs = [torch.cat([rms(q[j * hd:(j + 1) * hd], P[p + "self_attn.q_norm.weight"])
                             for j in range(H)]) for q in qs]
            ks = [torch.cat([rms(k[j * hd:(j + 1) * hd], P[p + "self_attn.k_norm.weight"])
                             for j in range(KV)]) for k in ks]
        vs = [lin(h, p + "self_attn.v_proj") for h in hs]
        new = []
        for t in range(len(seq)):
            heads = []
            for j in range(H):
                kvh = j // grp
                qj = rot(qs[t][j * hd:(j + 1) * hd], t)
                sc = [float(qj @ rot(ks[u][kvh * hd:(kvh + 1) * hd], u)) / math.sqrt(hd)
                      for u in range(t + 1)]
                mx = max(sc)
                e = [math.exp(z - mx) for z in sc]
                heads.append(sum(e[u] / sum(e) * vs[u][kvh * hd:(kvh + 1) * hd]
                                 for u in range(t + 1)))
            new.append(xs[t] + lin(torch.cat(heads), p + "self_attn.o_proj"))
        xs = []
        for x in new:
            h = rms(x, P[p + "post_attention_layernorm.weight"])
            g = lin(h, p + "mlp.gate_proj")
            xs.append(x + lin(g / (1 + torch.exp(-g)) * lin(h, p + "mlp.up_proj"),
                              p + "mlp.down_proj"))
    W = m.head()
    return torch.stack([W @ rms(x, P["model.norm.weight"]) for x in xs])



def _selftest():
    torch.manual_seed(0)
    ok = True

    def check(name, cond, detail=""):
        nonlocal ok
        print(("ok   " if cond else "FAIL ") + name + (f"  ({detail})" if detail else ""))
        ok = ok and bool(cond)

    cfgs = [
        dict(model_type="llama", vocab_size=41, hidden_size=32, num_hidden_layers=2,
             num_attention_heads=4, num_key_value_heads=2, intermediate_size=40,
             rms_norm_eps=1e-5, rope_theta=10000.0, tie_word_embeddings=False),
        dict(model_type="llama", vocab_size=37, hidden_size=24, num_hidden_layers=2,
             num_attention_heads=3, intermediate_size=40, rms_norm_eps=1e-5, rope_theta=100.0,
             tie_word_embeddings=True, attention_bias=True,
             rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                           "high_freq_factor": 4.0, "original_max_position_embeddings": 64}),
        dict(model_type="qwen2", vocab_size=29, hidden_size=48, num_hidden_layers=2,
             num_attention_heads=6, num_key_value_heads=1, intermediate_size=64,
             rms_norm_eps=1e-6, rope_theta=1e6, tie_word_embeddings=True),
        dict(model_type="qwen3", vocab_size=31, hidden_size=20, num_hidden_layers=2,
             num_attention_heads=4, num_key_value_heads=2, head_dim=6, intermediate_size=36,
             rms_norm_eps=1e-6, rope_theta=1e6, tie_word_embeddings=False, attention_bias=True),
    ]
    for ci, cd in enumerate(cfgs):
        cfg = load_config(cd)
        P = random_params(cfg, 100 + ci)
        m = TfmModel(cfg, P)
        g = torch.Generator().manual_seed(ci)
        seqs = [torch.randint(0, cfg.vocab_size, (n,), generator=g).tolist() for n in (1, 7, 12)]
        packed = m.forward_packed(seqs)
        single = [m.forward_packed([s])[0] for s in seqs]
        d = max(float((a - b).abs().max()) for a, b in zip(packed, single))
        check(f"cfg{ci}: packed == one at a time", d < 1e-12, f"{d:.2e}")

        # KV cache: prefill ragged prompts, decode the rest batched, equal to the packed logits
        full = [s + torch.randint(0, cfg.vocab_size, (5,), generator=g).tolist() for s in seqs]
        ref = m.forward_packed(full)
        cache, last = m.prefill(seqs, extra=2)      # extra=2 forces the cache to grow
        d = max(float((last[b] - ref[b][len(seqs[b]) - 1]).abs().max()) for b in range(3))
        for t in range(5):
            lg = m.decode(cache, [full[b][len(seqs[b]) + t] for b in range(3)])
            d = max([d] + [float((lg[b] - ref[b][len(seqs[b]) + t]).abs().max())
                           for b in range(3)])
        check(f"cfg{ci}: KV-cache decode == packed forward", d < 1e-11, f"{d:.2e}")

        # rope against the complex-number formulation
        T, hd = 9, cfg.head_dim
        xx = torch.randn(2, T, hd, dtype=torch.float64)
        cos, sin = m._cos_sin(torch.arange(T))
        r1 = rotate_half_rope(xx, cos, sin)
        zc = torch.complex(xx[..., :hd // 2], xx[..., hd // 2:])
        ang = torch.arange(T, dtype=torch.float64)[:, None] * m.inv_freq[None]
        zr = zc * torch.polar(torch.ones_like(ang), ang)
        r2 = torch.cat([zr.real, zr.imag], -1)
        check(f"cfg{ci}: rotate_half rope == complex rotation",
              float((r1 - r2).abs().max()) < 1e-12)

        # the whole forward against a naive per-position, per-head loop (explicit kv head j//rep)
        s = seqs[2]
        d = float((_naive_logits(m, s) - packed[2]).abs().max())
        check(f"cfg{ci}: packed forward == naive per-position loop", d < 1e-11, f"{d:.1e}")

        # logp / entropy consistent with the logits; probabilities sum to one
        le = m.token_logp_entropy(seqs)
        check(f"cfg{ci}: length-1 sequence has no targets", le[0][0].numel() == 0)
        lp = torch.log_softmax(ref[1], -1)
        check(f"cfg{ci}: softmax sums to 1", float((lp.exp().sum(-1) - 1).abs().max()) < 1e-12)

        # greedy generation through the cache == argmax of the packed forward, step by step
        out = generate(m, seqs, 6, temperature=0)
        d = 0.0
        ok_tokens = True
        for b, (tk, lps, _) in enumerate(out):
            lg = m.forward_packed([seqs[b] + tk])[0]
            for j, t in enumerate(tk):
                row = lg[len(seqs[b]) - 1 + j]
                ok_tokens &= t == int(row.argmax())
                d = max(d, abs(lps[j] - float(torch.log_softmax(row, -1)[t])))
        check(f"cfg{ci}: generate(greedy) == packed argmax", ok_tokens and d < 1e-11, f"{d:.1e}")

    # llama3 inv_freq: all three branches against hand-computed values
    cfg = load_config(cfgs[1])
    inv = rope_inv_freq(cfg)
    base = 100.0 ** (-2.0 * torch.arange(4, dtype=torch.float64) / 8)
    wl = 2 * math.pi / base
    exp = []
    for b, w in zip(base.tolist(), wl.tolist()):
        if w < 16:
            exp.append(b)
        elif w > 64:
            exp.append(b / 8)
        else:
            sm = (64 / w - 1) / 3
            exp.append((1 - sm) * b / 8 + sm * b)
    d = float((inv - torch.tensor(exp, dtype=torch.float64)).abs().max())
    check("llama3 inv_freq (high / medium / low branches)", d < 1e-14,
          str([round(v, 6) for v in inv.tolist()]))

    # autograd against central finite differences on a tiny model (float64)
    cd = dict(cfgs[0], vocab_size=11, hidden_size=8, num_attention_heads=2,
              num_key_value_heads=1, intermediate_size=6, num_hidden_layers=1)
    cfg = load_config(cd)
    P = random_params(cfg, 5)
    seqs = [[1, 4, 2, 7], [3, 9, 9]]
    dl = [torch.randn(3, dtype=torch.float64), torch.randn(2, dtype=torch.float64)]
    de = [torch.randn(3, dtype=torch.float64), torch.randn(2, dtype=torch.float64)]

    def loss_of(params):
        mm = TfmModel(cfg, params, requires_grad=True)
        r = mm.token_logp_entropy(seqs, first_target=[2, 1])
        return mm, sum((dl[i] * r[i][0] + de[i] * r[i][1]).sum() for i in range(2))

    mm, L = loss_of(P)
    L.backward()
    worst = 0.0
    gen = torch.Generator().manual_seed(1)
    for n in mm.params:
        flat = mm.params[n].detach().reshape(-1)
        for j in torch.randint(0, flat.numel(), (3,), generator=gen).tolist():
            hstep = 1e-6
            vals = []
            for sgn in (1, -1):
                P2 = {k: v.to(torch.float64).clone() for k, v in mm.params.items()}
                P2[n].view(-1)[j] += sgn * hstep
                with torch.no_grad():
                    m2 = TfmModel(cfg, P2)
                    r = m2.token_logp_entropy(seqs, first_target=[2, 1])
                    vals.append(float(sum((dl[i] * r[i][0] + de[i] * r[i][1]).sum()
                                          for i in range(2))))
            fd = (vals[0] - vals[1]) / (2 * hstep)
            worst = max(worst, abs(fd - float(mm.params[n].grad.view(-1)[j])))
    check("autograd == finite differences", worst < 1e-6, f"{worst:.1e}")

    # adamw_reference against the closed form of a first AdamW step
    P = {"w": torch.randn(3, 4, dtype=torch.float64), "b": torch.randn(4, dtype=torch.float64)}
    G = {"w": torch.randn(3, 4, dtype=torch.float64), "b": torch.randn(4, dtype=torch.float64)}
    lr, b1, b2, eps, wd, mx = 1e-2, 0.8, 0.95, 1e-3, 0.1, 0.5
    new, nrm = adamw_reference(P, G, lr, b1, b2, eps, wd, mx)
    n2 = math.sqrt(sum(float((g ** 2).sum()) for g in G.values()))
    worst = abs(nrm - n2)
    for k in P:
        g = G[k] * min(1.0, mx / (n2 + 1e-6))
        m_hat = (1 - b1) * g / (1 - b1)
        v_hat = (1 - b2) * g * g / (1 - b2)
        wdk = wd if P[k].dim() == 2 else 0.0
        exp = P[k] * (1 - lr * wdk) - lr * m_hat / (v_hat.sqrt() + eps)
        worst = max(worst, float((new[k] - exp).abs().max()))
    check("adamw_reference == closed-form first step", worst < 1e-14, f"{worst:.1e}")

    # safetensors round trip (F32 exact; BF16/F16 rounding to nearest)
    import tempfile
    with tempfile.TemporaryDirectory() as td:
        t = {"a": torch.randn(3, 5), "b": torch.tensor([1.0, 1.00390625, 1.005859375, -3.3e-3])}
        for dt, tol in (("F32", 0), ("BF16", 2 ** -8), ("F16", 2 ** -11)):
            write_safetensors(os.path.join(td, "x.safetensors"), t, dt)
            r = read_safetensors(os.path.join(td, "x.safetensors"))
            rel = max(float(((r[k] - t[k]).abs() / t[k].abs().clamp_min(1e-3)).max()) for k in t)
            check(f"safetensors {dt} round trip", rel <= tol, f"max rel {rel:.1e}")
        r = read_safetensors(os.path.join(td, "x.safetensors"))
    # filtered distribution: support sizes
    lg = torch.tensor([3.0, 2.0, 1.0, 0.5, 0.0, -1.0], dtype=torch.float64)
    lp, _ = filtered_logprobs(lg, 1.0, top_k=4)
    check("top-k keeps k", int(torch.isfinite(lp).sum()) == 4)
    pr = torch.softmax(lg, -1)
    lp, _ = filtered_logprobs(lg, 1.0, top_p=float(pr[0] + 1e-9))
    check("top-p keeps the smallest prefix", int(torch.isfinite(lp).sum()) == 2)
    lp, _ = filtered_logprobs(lg, 1.0, top_p=1e-9)
    check("top-p keeps at least one", int(torch.isfinite(lp).sum()) == 1)
    print("selftest:", "PASS" if ok else "FAIL")
    return ok


if __name__ == "__main__":
    import sys
    if "--selftest" in sys.argv:
        sys.exit(0 if _selftest() else 1)
    print(__doc__)
