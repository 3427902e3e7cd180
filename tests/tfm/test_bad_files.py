#!/usr/bin/python3
"""test_bad_files.py — feed malformed model directories to `rein model logprobs` (and bad
configs / output dirs to `rein model init`) and check that each is rejected cleanly.

    /usr/bin/python3 tests/tfm/test_bad_files.py --rein build/rein [--work DIR] [--keep]
        [--only SUBSTR]... [--strict] [--list] [--timeout S] [--self-check]

A clean rejection is: exit status 1 (not 0, not a signal, not 134/139, not a sanitizer's exit
code), nothing on stdout, one to MAX_LINES lines on stderr that name the offending file path and,
where the case has one, the tensor name or config field in single quotes ('...'), and no
sanitizer / crash text.  A few control cases (valid F32, F16 and BF16 files, a sharded model,
a re-serialized file) must be ACCEPTED, which shows that the helpers here write files the loader
reads, so a rejection is due to the one corruption of each case.

Every case starts from a copy of a model written by `rein model init` (tiny Llama or Qwen2
config), corrupts one thing and runs the binary.  One line per case (PASS/FAIL + reason, with the
stderr of failures), then a summary.  Exit 0 iff every case passes; 2 if the binary cannot run.

--self-check needs no binary: it builds the base models with numpy, applies every safetensors
corruption and runs a strict Python reader over the result, to check that each corrupted file is
malformed in the way the case says (and each control file is valid).

stdlib + numpy only.
"""
import argparse
import collections
import json
import os
import re
import shutil
import signal
import struct
import subprocess
import sys
import tempfile

import numpy as np

MAX_LINES = 4
SAN_TEXT = ("AddressSanitizer", "LeakSanitizer", "UndefinedBehaviorSanitizer", "MemorySanitizer",
            "ThreadSanitizer", "runtime error", "Segmentation", "segmentation fault",
            "Aborted", "core dumped", "double free", "free(): ", "malloc(): ", "(null)",
            "stack smashing")
TOKENS = "1,2,3"

TINY = collections.OrderedDict([
    ("model_type", "llama"),
    ("vocab_size", 40),
    ("hidden_size", 16),
    ("num_hidden_layers", 2),
    ("num_attention_heads", 2),
    ("num_key_value_heads", 1),
    ("intermediate_size", 32),
    ("rms_norm_eps", 1e-6),
    ("rope_theta", 10000.0),
    ("tie_word_embeddings", False),
    ("hidden_act", "silu"),
    ("max_position_embeddings", 64),
    ("eos_token_id", 2),
])
TINY_QWEN = collections.OrderedDict(TINY)
TINY_QWEN["model_type"] = "qwen2"
TINY_TIED = collections.OrderedDict(TINY)
TINY_TIED["tie_word_embeddings"] = True

ST = "model.safetensors"
IDX = "model.safetensors.index.json"
CFG = "config.json"
SHARD1 = "model-00001-of-00002.safetensors"
SHARD2 = "model-00002-of-00002.safetensors"

# --------------------------------------------------------------------------------------------
# safetensors helpers
# --------------------------------------------------------------------------------------------
DTYPE_SIZE = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1,
              "U64": 8, "U32": 4, "U16": 2, "U8": 1, "BOOL": 1, "F8_E4M3": 1, "F8_E5M2": 1}


class SafeTensors:
    """A parsed safetensors file: meta (the __metadata__ dict or None), entries (name -> the
    header dict, in header order) and data (the bytes after the header)."""

    def __init__(self, entries, data, meta=None):
        self.entries = entries
        self.data = data
        self.meta = meta

    @classmethod
    def load(cls, path):
        with open(path, "rb") as f:
            raw = f.read()
        (n,) = struct.unpack("<Q", raw[:8])
        hdr = json.loads(raw[8:8 + n].decode("utf-8"), object_pairs_hook=collections.OrderedDict)
        meta = hdr.pop("__metadata__", None)
        return cls(hdr, raw[8 + n:], meta)

    def tensor_bytes(self, name):
        b, e = self.entries[name]["data_offsets"]
        return self.data[b:e]

    def tensors(self):
        """[(name, dtype, shape, bytes)] in header order."""
        return [(k, v["dtype"], list(v["shape"]), self.tensor_bytes(k)) for k, v in self.entries.items()]

    def header_obj(self):
        h = collections.OrderedDict()
        if self.meta is not None:
            h["__metadata__"] = self.meta
        h.update(self.entries)
        return h

    def save(self, path):
        write_raw(path, header_text(self.header_obj()), self.data)

    @classmethod
    def pack(cls, tensors, meta=None, order=None):
        """Build from [(name, dtype, shape, bytes)], data laid out contiguously in `order`
        (a list of names; default: the list order), header in list order."""
        by_name = {t[0]: t for t in tensors}
        entries = collections.OrderedDict((t[0], None) for t in tensors)
        data = bytearray()
        for name in (order or [t[0] for t in tensors]):
            _, dt, shape, b = by_name[name]
            entries[name] = collections.OrderedDict(
                [("dtype", dt), ("shape", list(shape)), ("data_offsets", [len(data), len(data) + len(b)])])
            data += b
        return cls(entries, bytes(data), meta)


def header_text(obj):
    return json.dumps(obj, separators=(",", ":"))


def write_raw(path, header, data, n=None):
    """header: str or bytes, padded with spaces to a multiple of 8 (as the format's writers do);
    n: the header length to write (default: the true one)."""
    hb = header.encode("utf-8") if isinstance(header, str) else header
    hb += b" " * (-len(hb) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hb) if n is None else n))
        f.write(hb)
        f.write(data)


def to_dtype(b, src, dst):
    """Convert raw tensor bytes from src dtype (F32) to dst."""
    assert src == "F32"
    x = np.frombuffer(b, dtype="<f4")
    if dst == "F32":
        return x.astype("<f4").tobytes()
    if dst == "F16":
        return x.astype("<f2").tobytes()
    if dst == "F64":
        return x.astype("<f8").tobytes()
    if dst == "I64":
        return np.round(x * 1000).astype("<i8").tobytes()
    if dst == "I32":
        return np.round(x * 1000).astype("<i4").tobytes()
    if dst == "BF16":
        u = x.view("<u4").astype(np.uint64)
        u = (u + 0x7FFF + ((u >> 16) & 1)) >> 16      # round to nearest even
        return u.astype("<u2").tobytes()
    raise ValueError(dst)


def expected_tensors(cfg):
    """The tensor names and shapes a config implies (Hugging Face Llama / Qwen2 names)."""
    V, D, L = cfg["vocab_size"], cfg["hidden_size"], cfg["num_hidden_layers"]
    H = cfg["num_attention_heads"]
    KV = cfg.get("num_key_value_heads") or H
    hd = cfg.get("head_dim") or D // H
    I = cfg["intermediate_size"]
    qwen = cfg["model_type"] == "qwen2"
    bias = qwen or cfg.get("attention_bias", False)
    out = collections.OrderedDict()
    out["model.embed_tokens.weight"] = [V, D]
    for i in range(L):
        p = "model.layers.%d." % i
        out[p + "input_layernorm.weight"] = [D]
        out[p + "self_attn.q_proj.weight"] = [H * hd, D]
        if bias:
            out[p + "self_attn.q_proj.bias"] = [H * hd]
        out[p + "self_attn.k_proj.weight"] = [KV * hd, D]
        if bias:
            out[p + "self_attn.k_proj.bias"] = [KV * hd]
        out[p + "self_attn.v_proj.weight"] = [KV * hd, D]
        if bias:
            out[p + "self_attn.v_proj.bias"] = [KV * hd]
        out[p + "self_attn.o_proj.weight"] = [D, H * hd]
        if bias and not qwen:
            out[p + "self_attn.o_proj.bias"] = [D]
        out[p + "post_attention_layernorm.weight"] = [D]
        out[p + "mlp.gate_proj.weight"] = [I, D]
        out[p + "mlp.up_proj.weight"] = [I, D]
        out[p + "mlp.down_proj.weight"] = [D, I]
    out["model.norm.weight"] = [D]
    if not cfg.get("tie_word_embeddings", False):
        out["lm_head.weight"] = [V, D]
    return out


def py_init(cfg, d, seed=1):
    """A numpy stand-in for `rein model init` (used by --self-check only)."""
    os.makedirs(d, exist_ok=True)
    rng = np.random.default_rng(seed)
    ts = []
    for name, shape in expected_tensors(cfg).items():
        if name.endswith("norm.weight"):
            a = np.ones(shape, "<f4")
        elif name.endswith(".bias"):
            a = np.zeros(shape, "<f4")
        else:
            a = (rng.standard_normal(shape) * 0.02).astype("<f4")
        ts.append((name, "F32", shape, a.tobytes()))
    SafeTensors.pack(ts, {"format": "pt"}).save(os.path.join(d, ST))
    with open(os.path.join(d, CFG), "w") as f:
        json.dump(cfg, f, indent=2)


def config_problem(c):
    """A Python restatement of the config rules (for --self-check)."""
    if not isinstance(c, dict):
        return "not an object"
    if c.get("model_type") not in ("llama", "qwen2"):
        return "'model_type'"
    for k in ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size"):
        if type(c.get(k)) is not int or not 1 <= c[k] <= 10 ** 9:
            return "'%s'" % k
    kv = c.get("num_key_value_heads", c["num_attention_heads"])
    if type(kv) is not int or kv < 1 or c["num_attention_heads"] % kv:
        return "'num_key_value_heads'"
    hd = c.get("head_dim")
    if hd is None and c["hidden_size"] % c["num_attention_heads"]:
        return "'num_attention_heads'"
    hd = hd if hd is not None else c["hidden_size"] // c["num_attention_heads"]
    if type(hd) is not int or hd < 2 or hd % 2:
        return "'head_dim'"
    D, V, I, L = c["hidden_size"], c["vocab_size"], c["intermediate_size"], c["num_hidden_layers"]
    qd, kvd = c["num_attention_heads"] * hd, kv * hd
    if 2 * V * D + L * (2 * qd * D + 2 * kvd * D + 3 * I * D) > 4e9:
        return "too large"
    for k in ("rms_norm_eps", "rope_theta"):
        if k in c and (type(c[k]) not in (int, float) or c[k] <= 0):
            return "'%s'" % k
    for k in ("tie_word_embeddings", "mlp_bias", "use_sliding_window", "attention_bias"):
        if k in c and type(c[k]) is not bool:
            return "'%s'" % k
    if c.get("mlp_bias") or c.get("use_sliding_window"):
        return "'mlp_bias' / 'use_sliding_window'"
    if c.get("hidden_act", "silu") != "silu":
        return "'hidden_act'"
    rs = c.get("rope_scaling")
    if rs is not None and (not isinstance(rs, dict) or
                           rs.get("rope_type", rs.get("type")) not in ("default", "linear", "llama3")):
        return "'rope_scaling'"
    e = c.get("eos_token_id")
    if e is not None and type(e) is not int and not (isinstance(e, list) and all(type(x) is int for x in e)):
        return "'eos_token_id'"
    for k in ("bos_token_id", "eos_token_id"):
        ids = c.get(k)
        for x in ids if isinstance(ids, list) else [ids]:
            if x is not None and (type(x) is not int or not 0 <= x < V):
                return "'%s'" % k
    return None


def strict_check(d, ignore=True):
    """A strict Python reader of a model dir: returns None if valid, else an error string.
    Used by --self-check to show each corruption is real.  ignore: skip the entries the loader
    ignores on purpose (rotary_emb.inv_freq; lm_head.weight in a tied model)."""
    try:
        def no_dup(kv):
            if len(set(k for k, _ in kv)) != len(kv):
                raise ValueError("duplicate key")
            return collections.OrderedDict(kv)
        cfg = json.load(open(os.path.join(d, CFG)), object_pairs_hook=no_dup)
    except (OSError, ValueError) as e:
        return "config: %s" % e
    bad = config_problem(cfg)
    if bad:
        return "config: %s" % bad
    try:
        exp = expected_tensors(cfg)
    except (KeyError, TypeError, ZeroDivisionError) as e:
        return "config: %r" % e
    files = []
    if os.path.exists(os.path.join(d, IDX)):
        try:
            idx = json.load(open(os.path.join(d, IDX)))
            files = sorted(set(idx["weight_map"].values()))
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
            return "index: %r" % e
    else:
        files = [ST]
    seen = {}
    for fn in files:
        p = os.path.join(d, fn)
        try:
            raw = open(p, "rb").read()
        except OSError as e:
            return "%s: %s" % (fn, e)
        if len(raw) < 8:
            return "%s: shorter than 8 bytes" % fn
        (n,) = struct.unpack("<Q", raw[:8])
        if 8 + n > len(raw):
            return "%s: header length past the end" % fn
        pairs = []
        try:
            hdr = json.loads(raw[8:8 + n].decode("utf-8"), object_pairs_hook=lambda kv: pairs.append(kv) or dict(kv))
        except (ValueError, UnicodeDecodeError) as e:
            return "%s: header not JSON: %s" % (fn, e)
        if not isinstance(hdr, dict):
            return "%s: header not an object" % fn
        top = pairs[-1]
        if len(set(k for k, _ in top)) != len(top):
            return "%s: duplicate key" % fn
        data_len = len(raw) - 8 - n
        spans = []
        for k, v in hdr.items():
            if k == "__metadata__":
                if not isinstance(v, dict) or not all(isinstance(x, str) for x in v.values()):
                    return "%s: bad __metadata__" % fn
                continue
            if not isinstance(v, dict):
                return "%s: '%s' not an object" % (fn, k)
            dt, sh, off = v.get("dtype"), v.get("shape"), v.get("data_offsets")
            if dt not in ("F32", "F16", "BF16"):
                return "%s: '%s' dtype %r" % (fn, k, dt)
            if not isinstance(sh, list) or not all(type(x) is int and x >= 0 for x in sh):
                return "%s: '%s' bad shape %r" % (fn, k, sh)
            if not isinstance(off, list) or len(off) != 2 or not all(type(x) is int and x >= 0 for x in off):
                return "%s: '%s' bad offsets %r" % (fn, k, off)
            if off[0] > off[1]:
                return "%s: '%s' begin > end" % (fn, k)
            if off[1] > data_len:
                return "%s: '%s' past the end" % (fn, k)
            if int(np.prod(sh, dtype=object)) * DTYPE_SIZE[dt] != off[1] - off[0]:
                return "%s: '%s' size mismatch" % (fn, k)
            if k not in exp:
                if ignore and (k.endswith("rotary_emb.inv_freq") or
                               (k == "lm_head.weight" and cfg.get("tie_word_embeddings"))):
                    spans.append(tuple(off))     # ignored by the loader (as by transformers)
                    continue
                return "%s: unexpected '%s'" % (fn, k)
            if sh != exp[k]:
                return "%s: '%s' shape %r, expected %r" % (fn, k, sh, exp[k])
            if k in seen:
                return "%s: '%s' in two shards" % (fn, k)
            seen[k] = fn
            spans.append(tuple(off))
        spans.sort()
        pos = 0
        for b, e in spans:
            if b != pos:
                return "%s: data has holes or overlaps" % fn
            pos = e
        if pos != data_len:
            return "%s: trailing bytes after the data" % fn
    for k in exp:
        if k not in seen:
            return "missing '%s'" % k
    return None


# --------------------------------------------------------------------------------------------
# mutations (each takes the model dir)
# --------------------------------------------------------------------------------------------
def p_st(d):
    return os.path.join(d, ST)


def raw_bytes(d, name=ST):
    with open(os.path.join(d, name), "rb") as f:
        return f.read()


def put_bytes(d, b, name=ST):
    with open(os.path.join(d, name), "wb") as f:
        f.write(b)


def hdr_split(d):
    raw = raw_bytes(d)
    (n,) = struct.unpack("<Q", raw[:8])
    return raw, n


def edit_entry(name, fn):
    """Apply fn(entry, st) to one header entry and save (data unchanged)."""
    def m(d):
        st = SafeTensors.load(p_st(d))
        fn(st.entries[name], st)
        st.save(p_st(d))
    return m


def edit_header(fn):
    """Apply fn(header OrderedDict incl. __metadata__) -> obj and save it, data unchanged."""
    def m(d):
        st = SafeTensors.load(p_st(d))
        write_raw(p_st(d), header_text(fn(st.header_obj())), st.data)
    return m


def repack(fn, **kw):
    """fn(list of (name, dtype, shape, bytes)) -> new list; packed contiguously and saved."""
    def m(d):
        st = SafeTensors.load(p_st(d))
        ts = fn([list(t) for t in st.tensors()])
        SafeTensors.pack([tuple(t) for t in ts], st.meta, **kw).save(p_st(d))
    return m


def set_tensor(name, dtype=None, shape=None, data=None):
    def f(ts):
        for t in ts:
            if t[0] == name:
                if dtype is not None:
                    t[3] = to_dtype(t[3], t[1], dtype)
                    t[1] = dtype
                if shape is not None:
                    t[2] = shape
                if data is not None:
                    t[3] = data(t[3])
        return ts
    return f


def drop_tensor(name):
    return lambda ts: [t for t in ts if t[0] != name]


def add_tensor(name, shape, after=None):
    def f(ts):
        n = int(np.prod(shape))
        new = [name, "F32", shape, np.zeros(n, "<f4").tobytes()]
        out = []
        for t in ts:
            out.append(t)
            if t[0] == after:
                out.append(new)
        if after is None:
            out.append(new)
        return out
    return f


def add_tensor_data(name, shape, make, first=False):
    def f(ts):
        t = [name, "F32", shape, make(int(np.prod(shape)))]
        return [t] + ts if first else ts + [t]
    return f


def two_shards_same_tensor(d):
    """Shards where model.norm.weight is stored in both files."""
    shard()(d)
    s1 = SafeTensors.load(os.path.join(d, SHARD1))
    s2 = SafeTensors.load(os.path.join(d, SHARD2))
    norm = [t for t in s2.tensors() if t[0] == NORM]
    SafeTensors.pack(s1.tensors() + norm, s1.meta).save(os.path.join(d, SHARD1))


def edit_index(fn):
    def m(d):
        p = os.path.join(d, IDX)
        i = json.load(open(p), object_pairs_hook=collections.OrderedDict)
        with open(p, "w") as f:
            json.dump(fn(i), f, indent=2)
    return m


def set_wm(i, name, fname):
    i["weight_map"][name] = fname
    return i


def convert_all(dtype):
    return lambda ts: [[t[0], dtype, t[2], to_dtype(t[3], t[1], dtype)] for t in ts]


def edit_config(fn):
    def m(d):
        p = os.path.join(d, CFG)
        c = json.load(open(p), object_pairs_hook=collections.OrderedDict)
        c = fn(c)
        with open(p, "w") as f:
            if isinstance(c, str):
                f.write(c)
            else:
                json.dump(c, f, indent=2)
    return m


def cfg_set(**kv):
    def f(c):
        for k, v in kv.items():
            c[k] = v
        return c
    return f


def cfg_del(*keys):
    def f(c):
        for k in keys:
            c.pop(k, None)
        return c
    return f


def remove(name):
    return lambda d: os.remove(os.path.join(d, name))


def seq(*ms):
    def m(d):
        for x in ms:
            x(d)
    return m


def shard(drop_shard=None, drop_from_all=None, index_text=None, index_fn=None):
    """Split model.safetensors into two shards + an index, remove model.safetensors; then
    optionally delete one shard file, drop a tensor from the shards (keeping it in the index),
    replace the index text, or edit the index object."""
    def m(d):
        st = SafeTensors.load(p_st(d))
        ts = st.tensors()
        half = len(ts) // 2
        wm = collections.OrderedDict()
        for fname, part in ((SHARD1, ts[:half]), (SHARD2, ts[half:])):
            for t in part:
                wm[t[0]] = fname
            part = [t for t in part if t[0] != drop_from_all]
            SafeTensors.pack(part, st.meta).save(os.path.join(d, fname))
        os.remove(p_st(d))
        idx = collections.OrderedDict([("metadata", {"total_size": len(st.data)}), ("weight_map", wm)])
        if index_fn:
            idx = index_fn(idx)
        with open(os.path.join(d, IDX), "w") as f:
            f.write(index_text if index_text is not None else json.dumps(idx, indent=2))
        if drop_shard:
            os.remove(os.path.join(d, drop_shard))
    return m


# --- raw-level safetensors corruptions -------------------------------------------------------
def m_empty(d):
    put_bytes(d, b"")


def m_short(d):
    put_bytes(d, raw_bytes(d)[:5])


def m_only_len(d):
    put_bytes(d, raw_bytes(d)[:8])


def m_hdr_len_past_eof(d):
    raw, n = hdr_split(d)
    put_bytes(d, struct.pack("<Q", len(raw) - 8 + 1) + raw[8:])


def m_hdr_len_huge(d):
    raw, n = hdr_split(d)
    put_bytes(d, struct.pack("<Q", 0xFFFFFFFFFFFFFFFF) + raw[8:])


def m_hdr_len_2p63(d):
    raw, n = hdr_split(d)
    put_bytes(d, struct.pack("<Q", 1 << 63) + raw[8:])


def m_hdr_len_wrap(d):
    # 8 + n wraps to 0 in unsigned 64-bit arithmetic
    raw, n = hdr_split(d)
    put_bytes(d, struct.pack("<Q", (1 << 64) - 8) + raw[8:])


def m_hdr_len_zero(d):
    raw, n = hdr_split(d)
    put_bytes(d, struct.pack("<Q", 0) + raw[8:])


def m_hdr_len_short(d):
    raw, n = hdr_split(d)
    put_bytes(d, struct.pack("<Q", n - 24) + raw[8:])


def m_hdr_garbage(d):
    raw, n = hdr_split(d)
    st = SafeTensors.load(p_st(d))
    write_raw(p_st(d), b"\x89PNG this is {not json" + b"\xff" * 20, st.data)


def m_hdr_array(d):
    st = SafeTensors.load(p_st(d))
    write_raw(p_st(d), "[1, 2, 3]", st.data)


def m_hdr_string(d):
    st = SafeTensors.load(p_st(d))
    write_raw(p_st(d), '"model.norm.weight"', st.data)


def m_hdr_nul(d):
    # a NUL byte inside the header JSON (a C reader may stop there and see truncated JSON, or
    # accept a prefix): must be an error either way
    st = SafeTensors.load(p_st(d))
    h = header_text(st.header_obj())
    write_raw(p_st(d), h[:len(h) // 2].encode() + b"\x00" + h[len(h) // 2:].encode(), st.data)


def m_hdr_trailing_garbage(d):
    st = SafeTensors.load(p_st(d))
    write_raw(p_st(d), header_text(st.header_obj()) + ' {"x": 1}', st.data)


def m_truncate_data(d):
    raw, n = hdr_split(d)
    put_bytes(d, raw[:8 + n + (len(raw) - 8 - n) // 2])


def m_truncate_one_byte(d):
    put_bytes(d, raw_bytes(d)[:-1])


def m_duplicate_key(d):
    st = SafeTensors.load(p_st(d))
    h = header_text(st.header_obj())
    # a second, self-consistent entry for model.norm.weight pointing at other data
    dup = ',"model.norm.weight":{"dtype":"F32","shape":[16],"data_offsets":[0,64]}'
    write_raw(p_st(d), h[:-1] + dup + "}", st.data)


def m_overlap(d):
    # two tensors of the same shape share one data range (valid offsets, nothing past the end)
    st = SafeTensors.load(p_st(d))
    a = st.entries["model.layers.0.input_layernorm.weight"]
    st.entries["model.layers.0.post_attention_layernorm.weight"]["data_offsets"] = list(a["data_offsets"])
    st.save(p_st(d))


def m_hdr_len_one_short(d):
    # the header ends in padding, so one byte less is still a JSON object: every tensor's data
    # would start one byte early (issue 14, case 6)
    st = SafeTensors.load(p_st(d))
    hb = header_text(st.header_obj()).encode("utf-8")
    hb += b" " * (8 - len(hb) % 8)
    write_raw(p_st(d), hb, st.data, n=len(hb) - 1)


def m_gap(d):
    # 8 unused bytes before the first tensor, every offset shifted by 8: a gap in the data buffer
    st = SafeTensors.load(p_st(d))
    for e in st.entries.values():
        e["data_offsets"] = [x + 8 for x in e["data_offsets"]]
    st.data = b"\0" * 8 + st.data
    st.save(p_st(d))


def m_trailing_data(d):
    put_bytes(d, raw_bytes(d) + b"\0" * 64)


def m_offsets_past_end(name, how):
    def f(e, st):
        b, en = e["data_offsets"]
        nb = en - b
        L = len(st.data)
        if how == "straddle":       # starts inside the file, ends past it
            e["data_offsets"] = [L - nb // 2, L - nb // 2 + nb]
        elif how == "after":        # starts exactly at the end
            e["data_offsets"] = [L, L + nb]
        elif how == "far":          # far past the end (1 TiB)
            e["data_offsets"] = [1 << 40, (1 << 40) + nb]
        elif how == "i64max":       # end = INT64_MAX: begin + header offset overflows
            e["data_offsets"] = [(1 << 63) - 1 - nb, (1 << 63) - 1]
        elif how == "u64":          # offsets >= 2^63 (out of int64 range)
            e["data_offsets"] = [(1 << 64) - 1 - nb, (1 << 64) - 1]
    return edit_entry(name, f)


def m_begin_gt_end(name):
    def f(e, st):
        b, en = e["data_offsets"]
        e["data_offsets"] = [en, b]
    return edit_entry(name, f)


def m_size(name, delta):
    def f(e, st):
        b, en = e["data_offsets"]
        e["data_offsets"] = [b, en + delta]
    return edit_entry(name, f)


def m_entry(name, **kv):
    def f(e, st):
        for k, v in kv.items():
            if v is Ellipsis:
                e.pop(k, None)
            else:
                e[k] = v
    return edit_entry(name, f)


def m_entry_replace(name, value):
    def f(h):
        h[name] = value
        return h
    return edit_header(f)


def m_metadata(value):
    def f(h):
        new = collections.OrderedDict([("__metadata__", value)])
        for k, v in h.items():
            if k != "__metadata__":
                new[k] = v
        return new
    return edit_header(f)


def m_shape_overflow(name):
    # shape product 2^64 elements * 4 bytes: wraps to 0 in 64-bit arithmetic; offsets say 0 bytes
    def f(e, st):
        b, en = e["data_offsets"]
        e["shape"] = [1 << 32, 1 << 32]
        e["data_offsets"] = [b, b]
    return edit_entry(name, f)


def m_shape_overflow32(name):
    # 2^16 * 2^16 = 2^32 elements: wraps to 0 in 32-bit int arithmetic
    def f(e, st):
        b, en = e["data_offsets"]
        e["shape"] = [1 << 16, 1 << 16]
        e["data_offsets"] = [b, b]
    return edit_entry(name, f)


def m_is_dir(d):
    os.remove(p_st(d))
    os.mkdir(p_st(d))


def m_symlink_dangling(d):
    os.remove(p_st(d))
    os.symlink(os.path.join(d, "nowhere.safetensors"), p_st(d))


# --------------------------------------------------------------------------------------------
# cases
# --------------------------------------------------------------------------------------------
EMB = "model.embed_tokens.weight"
NORM = "model.norm.weight"
HEAD = "lm_head.weight"
K0 = "model.layers.0.self_attn.k_proj.weight"
Q1 = "model.layers.1.self_attn.q_proj.weight"
V1 = "model.layers.1.self_attn.v_proj.weight"
G0 = "model.layers.0.mlp.gate_proj.weight"
D1 = "model.layers.1.mlp.down_proj.weight"
LN0 = "model.layers.0.input_layernorm.weight"


class Case:
    """kind: 'logprobs' (run logprobs on the mutated dir) or 'custom' (run(ctx) -> list of
    failure reasons).  paths: file names relative to the model dir (or absolute), any of which
    must appear in stderr ('' entry: the model dir itself).  names: names any of which must
    appear in single quotes (a name starting with 're:' is a regex).  also: substrings that must
    all appear.  ok: the run must succeed instead (a control)."""

    def __init__(self, name, desc, mutate=None, base="llama", paths=(ST,), names=None, also=(),
                 ok=False, tokens=TOKENS, strict=False, run=None, compare=None, rcs=(1,),
                 max_lines=MAX_LINES):
        self.name, self.desc, self.mutate, self.base = name, desc, mutate, base
        self.rcs, self.max_lines = rcs, max_lines
        self.paths, self.names, self.also, self.ok = paths, names, also, ok
        self.tokens, self.strict, self.run, self.compare = tokens, strict, run, compare


def cases():
    C = []
    a = C.append
    # --- controls: the helpers write files the loader accepts ---------------------------------
    a(Case("ctl_valid", "the model from `rein model init` is accepted", ok=True, compare="exact"))
    a(Case("ctl_repacked", "re-serialized by this script (same tensors) is accepted",
           repack(lambda ts: ts), ok=True, compare="exact"))
    a(Case("ctl_reordered", "data section in reverse tensor order is accepted",
           lambda d: repack(lambda ts: ts, order=[t[0] for t in reversed(SafeTensors.load(p_st(d)).tensors())])(d),
           ok=True, compare="exact"))
    a(Case("ctl_f16", "all tensors F16 is accepted", repack(convert_all("F16")), ok=True, compare="close"))
    a(Case("ctl_bf16", "all tensors BF16 is accepted", repack(convert_all("BF16")), ok=True, compare="close"))
    a(Case("ctl_sharded", "two shards + model.safetensors.index.json is accepted", shard(), ok=True,
           compare="exact"))
    a(Case("ctl_qwen2", "a Qwen2 model from `rein model init` is accepted", base="qwen2", ok=True))
    a(Case("ctl_tied", "a tied-embeddings model from `rein model init` is accepted", base="tied", ok=True))
    a(Case("ctl_tied_head_ignored", "tied config + a stored lm_head.weight that differs from the "
           "embedding: accepted, output identical to the tied model (the embedding is the head)",
           repack(add_tensor_data(HEAD, [40, 16], lambda n: (np.random.default_rng(5).standard_normal(n) * 3)
                                  .astype("<f4").tobytes(), first=True)), base="tied", ok=True, compare="exact"))
    a(Case("ctl_inv_freq_ignored", "an extra model.layers.0.self_attn.rotary_emb.inv_freq is ignored",
           repack(add_tensor("model.layers.0.self_attn.rotary_emb.inv_freq", [4])), ok=True, compare="exact"))
    a(Case("ctl_max_token", "--tokens 1,39 (vocab 40) is accepted", ok=True, tokens="1,39"))

    # --- safetensors: framing -----------------------------------------------------------------
    a(Case("st_empty", "model.safetensors is empty (0 bytes)", m_empty))
    a(Case("st_short", "model.safetensors is 5 bytes (shorter than the 8-byte length)", m_short))
    a(Case("st_only_length", "model.safetensors is just the 8-byte length", m_only_len))
    a(Case("st_hdr_len_past_eof", "header length = file size - 8 + 1 (one byte past the end)", m_hdr_len_past_eof))
    a(Case("st_hdr_len_huge", "header length = 2^64-1", m_hdr_len_huge))
    a(Case("st_hdr_len_2p63", "header length = 2^63", m_hdr_len_2p63))
    a(Case("st_hdr_len_wrap", "header length = 2^64-8 (8 + N wraps to 0)", m_hdr_len_wrap))
    a(Case("st_hdr_len_zero", "header length = 0 (empty header)", m_hdr_len_zero))
    a(Case("st_hdr_len_short", "header length 24 bytes short (JSON cut)", m_hdr_len_short))
    a(Case("st_hdr_not_json", "header is binary garbage, not JSON", m_hdr_garbage))
    a(Case("st_hdr_array", "header JSON is an array, not an object", m_hdr_array))
    a(Case("st_hdr_string", "header JSON is a string, not an object", m_hdr_string))
    a(Case("st_hdr_nul", "header JSON contains a NUL byte in the middle", m_hdr_nul))
    a(Case("st_hdr_trailing", "header has a second JSON value after the object", m_hdr_trailing_garbage))
    a(Case("st_truncated_data", "file cut in the middle of the data section", m_truncate_data))
    a(Case("st_truncated_1byte", "file one byte short of the data section's end", m_truncate_one_byte))
    # --- safetensors: offsets -----------------------------------------------------------------
    a(Case("st_offsets_straddle", "data_offsets of %s run past the end of the file" % Q1,
           m_offsets_past_end(Q1, "straddle"), names=[Q1]))
    a(Case("st_offsets_after", "data_offsets of %s start at the end of the data" % Q1,
           m_offsets_past_end(Q1, "after"), names=[Q1]))
    a(Case("st_offsets_far", "data_offsets of %s are 1 TiB past the end" % EMB,
           m_offsets_past_end(EMB, "far"), names=[EMB]))
    a(Case("st_offsets_i64max", "data_offsets of %s end at INT64_MAX (overflow when added)" % NORM,
           m_offsets_past_end(NORM, "i64max"), names=[NORM]))
    a(Case("st_offsets_u64", "data_offsets of %s near 2^64 (beyond int64: a JSON parser may refuse "
           "the whole header, so the tensor name is not required)" % NORM, m_offsets_past_end(NORM, "u64")))
    a(Case("st_begin_gt_end", "data_offsets of %s have begin > end" % K0, m_begin_gt_end(K0), names=[K0]))
    a(Case("st_size_short", "data_offsets of %s span 4 bytes less than shape x 4" % G0,
           m_size(G0, -4), names=[G0]))
    a(Case("st_size_long", "data_offsets of %s span 4 bytes more than shape x 4" % LN0,
           m_size(LN0, 4), names=[LN0]))
    a(Case("st_offsets_negative", "data_offsets of %s are [-64, 0]" % NORM,
           m_entry(NORM, data_offsets=[-64, 0]), names=[NORM]))
    a(Case("st_offsets_float", "data_offsets of %s are floats" % NORM,
           lambda d: edit_entry(NORM, lambda e, st: e.__setitem__(
               "data_offsets", [float(e["data_offsets"][0]), float(e["data_offsets"][1])]))(d), names=[NORM]))
    a(Case("st_offsets_three", "data_offsets of %s has three entries" % NORM,
           lambda d: edit_entry(NORM, lambda e, st: e.__setitem__(
               "data_offsets", e["data_offsets"] + [e["data_offsets"][1]]))(d), names=[NORM]))
    a(Case("st_offsets_missing", "entry %s has no data_offsets" % NORM, m_entry(NORM, data_offsets=...), names=[NORM]))
    # --- safetensors: dtype / shape -----------------------------------------------------------
    for dt in ("I64", "F64", "I32"):
        a(Case("st_dtype_%s" % dt.lower(), "%s stored (consistently) as %s" % (D1, dt),
               repack(set_tensor(D1, dtype=dt)), names=[D1], also=(dt,)))
    a(Case("st_dtype_unknown", "%s has dtype \"Q4_K\" (unknown)" % LN0, m_entry(LN0, dtype="Q4_K"), names=[LN0]))
    a(Case("st_dtype_missing", "entry %s has no dtype" % LN0, m_entry(LN0, dtype=...), names=[LN0]))
    a(Case("st_dtype_not_string", "entry %s has dtype 4" % LN0, m_entry(LN0, dtype=4), names=[LN0]))
    a(Case("st_entry_not_object", "entry %s is the number 5" % NORM, m_entry_replace(NORM, 5), names=[NORM]))
    a(Case("st_shape_missing", "entry %s has no shape" % NORM, m_entry(NORM, shape=...), names=[NORM]))
    a(Case("st_shape_not_array", "entry %s has shape 16 (not a list)" % NORM, m_entry(NORM, shape=16), names=[NORM]))
    a(Case("st_shape_negative", "shape of %s is [-40, -16] (offsets unchanged)" % EMB,
           m_entry(EMB, shape=[-40, -16]), names=[EMB]))
    a(Case("st_shape_negative1", "shape of %s is [-16]" % NORM, m_entry(NORM, shape=[-16]), names=[NORM]))
    a(Case("st_shape_float", "shape of %s is [40.0, 16.0]" % EMB, m_entry(EMB, shape=[40.0, 16.0]), names=[EMB]))
    a(Case("st_shape_string", "shape of %s is [\"16\"]" % NORM, m_entry(NORM, shape=["16"]), names=[NORM]))
    a(Case("st_shape_overflow64", "shape of %s is [2^32, 2^32] with 0-byte offsets (size wraps to 0)" % EMB,
           m_shape_overflow(EMB), names=[EMB]))
    a(Case("st_shape_overflow32", "shape of %s is [2^16, 2^16] with 0-byte offsets" % EMB,
           m_shape_overflow32(EMB), names=[EMB]))
    a(Case("st_shape_empty", "shape of %s is [] (a scalar)" % NORM, m_entry(NORM, shape=[]), names=[NORM]))
    a(Case("st_long_name", "an extra tensor with a 5000-character name",
           repack(add_tensor("model." + "x" * 5000 + ".weight", [4]))))
    a(Case("st_missing_tensor", "%s deleted from header and data" % NORM, repack(drop_tensor(NORM)), names=[NORM]))
    a(Case("st_missing_lm_head", "%s deleted (untied config)" % HEAD, repack(drop_tensor(HEAD)), names=[HEAD]))
    a(Case("st_missing_layer_tensor", "%s deleted" % V1, repack(drop_tensor(V1)), names=[V1]))
    a(Case("st_wrong_shape", "%s is [41, 16] (data extended to match)" % EMB,
           repack(set_tensor(EMB, shape=[41, 16], data=lambda b: b + b"\0" * 64)), names=[EMB]))
    a(Case("st_wrong_shape_transposed", "%s is [16, 8] instead of [8, 16] (same size)" % K0,
           repack(set_tensor(K0, shape=[16, 8])), names=[K0]))
    a(Case("st_wrong_ndim", "%s is [1, 16] instead of [16]" % NORM, repack(set_tensor(NORM, shape=[1, 16])), names=[NORM]))
    a(Case("st_wrong_ndim_flat", "%s is [640] instead of [40, 16]" % EMB, repack(set_tensor(EMB, shape=[640])), names=[EMB]))
    a(Case("st_extra_tensor", "extra tensor model.layers.0.mlp.gate_proj.bias [32]",
           repack(add_tensor("model.layers.0.mlp.gate_proj.bias", [32], after=G0)),
           names=["model.layers.0.mlp.gate_proj.bias"]))
    a(Case("st_extra_layer", "extra tensor model.layers.2.input_layernorm.weight (config: 2 layers)",
           repack(add_tensor("model.layers.2.input_layernorm.weight", [16])),
           names=["model.layers.2.input_layernorm.weight"]))
    a(Case("st_duplicate_key", "header names %s twice (JSON duplicate key)" % NORM, m_duplicate_key))
    a(Case("st_missing_file", "model.safetensors does not exist (no index either)", remove(ST)))
    a(Case("st_is_directory", "model.safetensors is a directory", m_is_dir))
    a(Case("st_dangling_symlink", "model.safetensors is a dangling symlink", m_symlink_dangling))
    # the data offsets tile the data buffer exactly: no overlap, gap or trailing byte
    a(Case("st_overlap", "two norm tensors share one data range", m_overlap,
           names=[LN0, "model.layers.0.post_attention_layernorm.weight"]))
    a(Case("st_trailing_data", "64 bytes after the last tensor's data", m_trailing_data, also=("tile",)))
    a(Case("st_hdr_len_one_short", "header length one byte short, the JSON still whole (padding)",
           m_hdr_len_one_short, also=("tile",)))
    a(Case("st_gap", "8 unused bytes before the first tensor's data", m_gap, also=("tile",)))
    # strict: safetensors rules that do not make the read unsafe
    a(Case("st_metadata_not_strings", "__metadata__ {\"format\": 5} (strict)", m_metadata({"format": 5}), strict=True))
    # --- shards --------------------------------------------------------------------------------
    a(Case("idx_missing_shard", "index names %s, which does not exist" % SHARD2, shard(drop_shard=SHARD2),
           paths=(SHARD2,)))
    a(Case("idx_not_json", "model.safetensors.index.json is not JSON",
           shard(index_text='{"weight_map": {'), paths=(IDX,)))
    a(Case("idx_no_weight_map", "model.safetensors.index.json has no weight_map",
           shard(index_fn=lambda i: collections.OrderedDict([("metadata", {})])), paths=(IDX,)))
    a(Case("idx_weight_map_not_object", "weight_map is a list",
           shard(index_fn=lambda i: collections.OrderedDict([("weight_map", [SHARD1, SHARD2])])), paths=(IDX,)))
    a(Case("idx_tensor_not_in_shard", "index lists %s but no shard contains it" % NORM,
           shard(drop_from_all=NORM), paths=(IDX, SHARD1, SHARD2, ""), names=[NORM]))
    a(Case("idx_empty_weight_map", "weight_map is {} (no shards: every tensor missing)",
           shard(index_fn=lambda i: collections.OrderedDict([("weight_map", {})])), paths=(IDX,),
           names=["re:[a-z_.0-9]+\\.weight"]))
    a(Case("idx_tensor_in_two_shards", "%s stored in both shards" % NORM, two_shards_same_tensor,
           paths=(SHARD1, SHARD2, IDX), names=[NORM]))
    a(Case("idx_shard_outside_dir", "weight_map names ../outside.safetensors",
           seq(shard(), edit_index(lambda i: set_wm(i, NORM, "../outside.safetensors"))), paths=(IDX,)))
    a(Case("idx_corrupt_shard", "the second shard is truncated mid-data",
           seq(shard(), lambda d: put_bytes(d, raw_bytes(d, SHARD2)[:len(raw_bytes(d, SHARD2)) - 100], SHARD2)),
           paths=(SHARD2,)))

    # --- config --------------------------------------------------------------------------------
    def cc(name, desc, fn, field, base="llama", paths=(CFG,)):
        a(Case(name, desc, edit_config(fn), base=base, paths=paths, names=[field] if isinstance(field, str) else field))
    a(Case("cfg_missing", "config.json does not exist", remove(CFG), paths=(CFG,)))
    a(Case("cfg_empty", "config.json is empty", edit_config(lambda c: ""), paths=(CFG,)))
    a(Case("cfg_not_json", "config.json is not JSON", edit_config(lambda c: '{"model_type": "llama",'), paths=(CFG,)))
    a(Case("cfg_not_object", "config.json is a JSON array", edit_config(lambda c: "[1, 2]"), paths=(CFG,)))
    a(Case("cfg_is_directory", "config.json is a directory",
           lambda d: (os.remove(os.path.join(d, CFG)), os.mkdir(os.path.join(d, CFG))), paths=(CFG,)))
    cc("cfg_missing_hidden_size", "hidden_size missing", cfg_del("hidden_size"), "hidden_size")
    cc("cfg_missing_model_type", "model_type missing", cfg_del("model_type"), "model_type")
    cc("cfg_missing_vocab", "vocab_size missing", cfg_del("vocab_size"), "vocab_size")
    cc("cfg_hidden_size_string", "hidden_size is \"16\"", cfg_set(hidden_size="16"), "hidden_size")
    cc("cfg_hidden_size_float", "hidden_size is 16.5", cfg_set(hidden_size=16.5), "hidden_size")
    cc("cfg_layers_zero", "num_hidden_layers is 0", cfg_set(num_hidden_layers=0), "num_hidden_layers")
    cc("cfg_vocab_negative", "vocab_size is -40", cfg_set(vocab_size=-40), "vocab_size")
    cc("cfg_heads_zero", "num_attention_heads is 0", cfg_set(num_attention_heads=0), "num_attention_heads")
    cc("cfg_kv_heads_zero", "num_key_value_heads is 0", cfg_set(num_key_value_heads=0), "num_key_value_heads")
    cc("cfg_vocab_huge", "vocab_size is 2^40", cfg_set(vocab_size=1 << 40), "vocab_size")
    # sizes that pass the per-field checks but make a model far too large to allocate: must be a
    # config error (naming config.json), not a crash or an allocator abort
    a(Case("cfg_layers_huge", "num_hidden_layers 10^9", edit_config(cfg_set(num_hidden_layers=10 ** 9)), paths=(CFG,)))
    a(Case("cfg_heads_huge", "num_attention_heads = num_key_value_heads = head_dim = 10^9",
           edit_config(cfg_set(num_attention_heads=10 ** 9, num_key_value_heads=10 ** 9, head_dim=10 ** 9)),
           paths=(CFG,)))
    a(Case("cfg_head_dim_huge", "head_dim 10^9", edit_config(cfg_set(head_dim=10 ** 9)), paths=(CFG,)))
    a(Case("cfg_intermediate_huge", "intermediate_size 2*10^8 (x hidden 16 = 3.2e9 per matrix)",
           edit_config(cfg_set(intermediate_size=2 * 10 ** 8)), paths=(CFG,)))
    cc("cfg_heads_not_dividing", "num_attention_heads 3 does not divide hidden_size 16 (no head_dim)",
       cfg_set(num_attention_heads=3, num_key_value_heads=1), ["num_attention_heads", "hidden_size"])
    cc("cfg_kv_not_dividing", "num_key_value_heads 3 does not divide num_attention_heads 4",
       cfg_set(num_attention_heads=4, num_key_value_heads=3), ["num_key_value_heads", "num_attention_heads"])
    cc("cfg_head_dim_odd", "head_dim 7 (odd)", cfg_set(head_dim=7), "head_dim")
    cc("cfg_model_type_gpt2", "model_type \"gpt2\"", cfg_set(model_type="gpt2"), "model_type")
    cc("cfg_model_type_int", "model_type 1", cfg_set(model_type=1), "model_type")
    cc("cfg_hidden_act_gelu", "hidden_act \"gelu\"", cfg_set(hidden_act="gelu"), "hidden_act")
    cc("cfg_rope_yarn", "rope_scaling type \"yarn\"",
       cfg_set(rope_scaling={"type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32}), "rope_scaling")
    cc("cfg_rope_dynamic", "rope_scaling rope_type \"dynamic\"",
       cfg_set(rope_scaling={"rope_type": "dynamic", "factor": 2.0}), "rope_scaling")
    cc("cfg_rope_not_object", "rope_scaling is \"linear\" (a string)", cfg_set(rope_scaling="linear"), "rope_scaling")
    cc("cfg_mlp_bias", "mlp_bias true", cfg_set(mlp_bias=True), "mlp_bias")
    cc("cfg_sliding_window", "use_sliding_window true (qwen2)", cfg_set(use_sliding_window=True),
       "use_sliding_window", base="qwen2")
    cc("cfg_rms_eps_negative", "rms_norm_eps -1e-6", cfg_set(rms_norm_eps=-1e-6), "rms_norm_eps")
    cc("cfg_rope_theta_string", "rope_theta \"10000\"", cfg_set(rope_theta="10000"), "rope_theta")
    cc("cfg_tie_string", "tie_word_embeddings \"false\"", cfg_set(tie_word_embeddings="false"), "tie_word_embeddings")
    cc("cfg_eos_string", "eos_token_id \"</s>\"", cfg_set(eos_token_id="</s>"), "eos_token_id")
    # token ids are never truncated and lie in the vocabulary; duplicate keys are refused (issue 14, 11)
    cc("cfg_eos_huge", "eos_token_id 10^15", cfg_set(eos_token_id=10 ** 15), "eos_token_id")
    cc("cfg_eos_list_outside", "eos_token_id [2, 40] with vocab_size 40", cfg_set(eos_token_id=[2, 40]), "eos_token_id")
    cc("cfg_bos_negative", "bos_token_id -1", cfg_set(bos_token_id=-1), "bos_token_id")
    cc("cfg_bos_string", "bos_token_id \"<s>\"", cfg_set(bos_token_id="<s>"), "bos_token_id")
    a(Case("cfg_duplicate_key", "config.json names vocab_size twice",
           edit_config(lambda c: json.dumps(c, indent=2)[:-2] + ',\n  "vocab_size": 41\n}'), paths=(CFG,),
           also=("duplicate",)))
    # config valid, but disagrees with the tensors: the error is about model.safetensors
    cc("cfgx_intermediate", "config intermediate_size 48, tensors have 32",
       cfg_set(intermediate_size=48), "re:model\\.layers\\.\\d+\\.mlp\\.\\w+_proj\\.weight", paths=(ST, CFG))
    cc("cfgx_vocab", "config vocab_size 41, tensors have 40", cfg_set(vocab_size=41), [EMB, HEAD], paths=(ST, CFG))
    cc("cfgx_more_layers", "config says 3 layers, file has 2", cfg_set(num_hidden_layers=3),
       "re:model\\.layers\\.2\\.[a-z_.]+", paths=(ST, CFG))
    cc("cfgx_fewer_layers", "config says 1 layer, file has 2 (extra layer-1 tensors)",
       cfg_set(num_hidden_layers=1), "re:model\\.layers\\.1\\.[a-z_.]+", paths=(ST, CFG))
    a(Case("cfgx_tied_with_head", "config tie_word_embeddings true, file has lm_head.weight (strict: "
           "the loader ignores it on purpose, see ctl_tied_head_ignored)", edit_config(cfg_set(tie_word_embeddings=True)),
           paths=(ST, CFG), names=[HEAD], strict=True))
    a(Case("st_ignored_entry_bad", "tied model; the ignored lm_head.weight entry has offsets past the end "
           "(strict)", seq(repack(add_tensor(HEAD, [40, 16])), m_offsets_past_end(HEAD, "far")), base="tied",
           names=[HEAD], strict=True))
    cc("cfgx_qwen2_on_llama", "model_type qwen2 on a Llama file (q/k/v biases missing)",
       cfg_set(model_type="qwen2"), "re:model\\.layers\\.\\d+\\.self_attn\\.[qkv]_proj\\.bias", paths=(ST, CFG))
    a(Case("qwen_missing_bias", "qwen2: model.layers.1.self_attn.k_proj.bias deleted",
           repack(drop_tensor("model.layers.1.self_attn.k_proj.bias")), base="qwen2",
           names=["model.layers.1.self_attn.k_proj.bias"]))
    a(Case("qwen_bias_shape", "qwen2: model.layers.0.self_attn.q_proj.bias is [8] instead of [16]",
           repack(set_tensor("model.layers.0.self_attn.q_proj.bias", shape=[8], data=lambda b: b[:32])),
           base="qwen2", names=["model.layers.0.self_attn.q_proj.bias"]))
    a(Case("llama_extra_bias", "llama (attention_bias false) with model.layers.0.self_attn.q_proj.bias",
           repack(add_tensor("model.layers.0.self_attn.q_proj.bias", [16])),
           names=["model.layers.0.self_attn.q_proj.bias"]))
    a(Case("model_dir_missing", "--model names a directory that does not exist",
           lambda d: shutil.rmtree(d), paths=("",)))

    # --- --tokens ---------------------------------------------------------------------------------
    def tc(name, desc, tokens, also):
        a(Case(name, desc, None, tokens=tokens, paths=None, also=also))
    tc("tok_out_of_range", "--tokens 1,999 (vocab 40)", "1,999", ("999", "40"))
    tc("tok_vocab", "--tokens 1,40 (vocab 40: one past the last)", "1,40", ("40",))
    tc("tok_negative", "--tokens 1,-1", "1,-1", ("-1",))
    tc("tok_huge", "--tokens 1,99999999999999999999", "1,99999999999999999999", ("99999999999999999999",))
    tc("tok_2p32", "--tokens 1,4294967297 (2^32+1: 1 if truncated to 32 bits)", "1,4294967297", ("4294967297",))
    tc("tok_empty_item", "--tokens 1,,2", "1,,2", ("tokens",))
    tc("tok_alpha", "--tokens a", "a", ("tokens",))
    tc("tok_trailing_junk", "--tokens 1,2x", "1,2x", ("tokens",))
    tc("tok_float", "--tokens 1,2.5", "1,2.5", ("tokens",))
    tc("tok_empty", "--tokens ''", "", ("tokens",))
    tc("tok_trailing_comma", "--tokens 1,2,", "1,2,", ("tokens",))
    a(Case("tok_missing_value", "--tokens given no value (a usage error: exit 1 or 2, usage text allowed)",
           None, tokens=None, paths=None, also=("tokens",), rcs=(1, 2), max_lines=None))
    a(Case("tok_space", "--tokens ' 1, 2' (strict)", None, tokens=" 1, 2", paths=None, also=("tokens",), strict=True))
    a(Case("tok_plus", "--tokens +1,2 (strict)", None, tokens="+1,2", paths=None, also=("tokens",), strict=True))

    a(Case("nonfinite_weights", "model.norm.weight all NaN: logprobs/generate print \"nan\", exit 4",
           run=run_nonfinite))

    # --- rein model init ---------------------------------------------------------------------------
    a(Case("init_no_temp_files", "init into a new dir, then again over it: only config.json and "
           "model.safetensors", run=run_init_clean))
    a(Case("init_bad_config_no_clobber", "init with a bad config into a dir holding sentinels: "
           "exit 1, sentinels unchanged, nothing added", run=run_init_no_clobber))
    a(Case("init_bad_config_no_create", "init with a bad config into a new dir: exit 1, dir not created",
           run=run_init_no_create))
    a(Case("init_missing_config", "init --config naming a file that does not exist", run=run_init_missing_config))
    a(Case("init_out_parent_is_file", "init -o FILE/sub (parent is a regular file)", run=run_init_parent_file))
    return C


# --------------------------------------------------------------------------------------------
# running
# --------------------------------------------------------------------------------------------
class Ctx:
    def __init__(self, rein, work, timeout):
        self.rein, self.work, self.timeout = rein, work, timeout
        self.bases = {}
        self.base_out = {}


def run_cmd(ctx, args):
    try:
        p = subprocess.run([ctx.rein] + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           stdin=subprocess.DEVNULL, timeout=ctx.timeout)
        return p.returncode, p.stdout, p.stderr
    except subprocess.TimeoutExpired as e:
        return "timeout", e.stdout or b"", e.stderr or b""


def rc_text(rc):
    if rc == "timeout":
        return "timed out"
    if isinstance(rc, int) and rc < 0:
        try:
            return "killed by %s" % signal.Signals(-rc).name
        except ValueError:
            return "killed by signal %d" % -rc
    return "exit %s" % rc


def check_reject(rc, out, err, paths=(), names=None, also=(), rcs=(1,), max_lines=MAX_LINES):
    """Reasons a run is not a clean rejection ([] when it is)."""
    why = []
    e = err.decode("utf-8", "replace")
    if rc not in rcs:
        why.append("%s (expected exit %s)" % (rc_text(rc), " or ".join(map(str, rcs))))
    if out:
        why.append("stdout not empty (%d bytes)" % len(out))
    for s in SAN_TEXT:
        if s in e:
            why.append("stderr contains %r" % s)
    lines = [l for l in e.splitlines() if l.strip()]
    if not lines:
        why.append("stderr empty")
    elif max_lines and len(lines) > max_lines:
        why.append("stderr has %d lines (at most %d)" % (len(lines), max_lines))
    if paths and not any(p in e for p in paths):
        why.append("stderr does not name the file (%s)" % " or ".join(paths))
    if names:
        found = False
        for n in names:
            if n.startswith("re:"):
                found = found or re.search("'" + n[3:] + "'", e) is not None
            else:
                found = found or ("'%s'" % n) in e
        if not found:
            why.append("stderr does not name %s" % " or ".join(
                ("/%s/" % n[3:]) if n.startswith("re:") else "'%s'" % n for n in names))
    for s in also:
        if s not in e:
            why.append("stderr does not mention %r" % s)
    return why


def floats(b):
    return [float(x) for x in re.findall(rb"[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?|nan|inf", b)]


def logprobs_args(d, tokens):
    a = ["model", "logprobs", "--model", d]
    return a + (["--tokens", tokens] if tokens is not None else ["--tokens"])


def run_case(ctx, c):
    if c.run:
        return c.run(ctx)
    base = ctx.bases.get(c.base)
    if base is None:
        return ["no base model (%s): `rein model init` failed" % c.base]
    d = os.path.join(ctx.work, "cases", c.name)
    if os.path.lexists(d):
        shutil.rmtree(d)
    shutil.copytree(base, d, symlinks=True)
    if c.mutate:
        c.mutate(d)
    rc, out, err = run_cmd(ctx, logprobs_args(d, c.tokens))
    if c.ok:
        why = []
        if rc != 0:
            why.append("%s (expected 0: a control must be accepted)" % rc_text(rc))
        if not out.strip():
            why.append("stdout empty")
        e = err.decode("utf-8", "replace")
        for s in SAN_TEXT:
            if s in e:
                why.append("stderr contains %r" % s)
        ref = ctx.base_out.get(c.base)
        if not why and c.compare and ref is not None and c.name != "ctl_valid":
            if c.compare == "exact" and out != ref:
                why.append("output differs from the unmodified model's")
            elif c.compare == "close":
                fa, fb = floats(out), floats(ref)
                if len(fa) != len(fb):
                    why.append("output has %d numbers, the F32 model's %d" % (len(fa), len(fb)))
                else:
                    dmax = max([abs(x - y) for x, y in zip(fa, fb)] + [0.0])
                    if not dmax < 0.05:
                        why.append("output differs from the F32 model's by %g" % dmax)
        if why:
            why.append("stderr: %s" % e.strip()[:2000])
        return why
    paths = None
    if c.paths is not None:
        paths = [os.path.join(d, p) if p else d for p in c.paths]
    why = check_reject(rc, out, err, paths=paths, names=c.names, also=c.also, rcs=c.rcs,
                       max_lines=c.max_lines)
    return why + (["stderr was: %s" % show(err)] if why else [])


def show(err):
    e = err.decode("utf-8", "replace").rstrip("\n")
    if len(e) > 3000:
        e = e[:3000] + "...[%d more bytes]" % (len(e) - 3000)
    return "\n        | " + e.replace("\n", "\n        | ") if e else "(empty)"


def snapshot(d):
    out = {}
    for root, dirs, files in os.walk(d):
        for f in dirs + files:
            p = os.path.join(root, f)
            rel = os.path.relpath(p, d)
            if os.path.isdir(p) and not os.path.islink(p):
                out[rel + "/"] = None
            else:
                with open(p, "rb") as fh:
                    out[rel] = fh.read()
    return out


def write_config(path, cfg):
    with open(path, "w") as f:
        if isinstance(cfg, str):
            f.write(cfg)
        else:
            json.dump(cfg, f, indent=2)


def bad_config(ctx):
    p = os.path.join(ctx.work, "bad_config.json")
    c = collections.OrderedDict(TINY)
    c["hidden_size"] = "16"
    write_config(p, c)
    return p


def run_init_clean(ctx):
    d = os.path.join(ctx.work, "cases", "init_no_temp_files")
    shutil.rmtree(d, ignore_errors=True)
    cfg = os.path.join(ctx.work, "tiny_llama.json")
    why = []
    for attempt in ("new dir", "existing dir"):
        rc, out, err = run_cmd(ctx, ["model", "init", "--config", cfg, "--seed", "1", "-o", d])
        if rc != 0:
            return ["init into %s: %s: %s" % (attempt, rc_text(rc), show(err))]
        names = sorted(os.listdir(d)) if os.path.isdir(d) else None
        if names != [CFG, ST]:
            why.append("after init into %s the dir holds %s (expected only %s, %s)" % (attempt, names, CFG, ST))
    return why


def run_nonfinite(ctx):
    """NaN weights: logprobs and generate print the non-finite values explicitly ("nan") and exit 4
    with a message, instead of an empty "logp":[] and exit 0 (issue 14, case 5)."""
    d = os.path.join(ctx.work, "cases", "nonfinite_weights")
    shutil.rmtree(d, ignore_errors=True)
    shutil.copytree(ctx.bases["llama"], d, symlinks=True)
    repack(set_tensor("model.norm.weight", data=lambda b: struct.pack("<f", float("nan")) * (len(b) // 4)))(d)
    why = []
    for sub, args in (("logprobs", logprobs_args(d, TOKENS)),
                      ("generate", ["model", "generate", "--model", d, "--prompt-tokens", TOKENS, "--max-new", "3"])):
        rc, out, err = run_cmd(ctx, args)
        e = err.decode("utf-8", "replace")
        if rc != 4:
            why.append("%s: %s (expected exit 4)" % (sub, rc_text(rc)))
        if "not finite" not in e:
            why.append("%s: stderr does not say the values are not finite: %s" % (sub, show(err)))
        try:
            seqs = json.loads(out)["sequences"]
            if not seqs or not all(len(s["logp"]) == len(s["tokens"]) - (1 if sub == "logprobs" else 0) for s in seqs):
                why.append("%s: values were dropped from logp: %s" % (sub, out[:300]))
            if not any(x == "nan" for s in seqs for x in s["logp"]):
                why.append("%s: no \"nan\" printed: %s" % (sub, out[:300]))
        except (ValueError, KeyError, TypeError) as x:
            why.append("%s: stdout is not the expected JSON (%s): %s" % (sub, x, out[:300]))
    return why


def run_init_no_clobber(ctx):
    d = os.path.join(ctx.work, "cases", "init_bad_config_no_clobber")
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    put_bytes(d, b"SENTINEL model.safetensors -- must survive a failed init\n", ST)
    put_bytes(d, b'{"sentinel": true}\n', CFG)
    before = snapshot(d)
    bc = bad_config(ctx)
    rc, out, err = run_cmd(ctx, ["model", "init", "--config", bc, "--seed", "1", "-o", d])
    why = check_reject(rc, out, err, paths=[bc], names=["hidden_size"])
    after = snapshot(d)
    if after != before:
        added = sorted(set(after) - set(before))
        changed = sorted(k for k in before if k in after and after[k] != before[k])
        gone = sorted(set(before) - set(after))
        why.append("dir changed: added %s, changed %s, removed %s" % (added, changed, gone))
    return why + (["stderr was: %s" % show(err)] if why else [])


def run_init_no_create(ctx):
    d = os.path.join(ctx.work, "cases", "init_bad_config_no_create", "out")
    shutil.rmtree(os.path.dirname(d), ignore_errors=True)
    os.makedirs(os.path.dirname(d))
    bc = bad_config(ctx)
    rc, out, err = run_cmd(ctx, ["model", "init", "--config", bc, "--seed", "1", "-o", d])
    why = check_reject(rc, out, err, paths=[bc], names=["hidden_size"])
    if os.path.lexists(d):
        why.append("the output dir was created (holds %s)" % (sorted(os.listdir(d)) if os.path.isdir(d) else "?"))
    return why + (["stderr was: %s" % show(err)] if why else [])


def run_init_missing_config(ctx):
    d = os.path.join(ctx.work, "cases", "init_missing_config", "out")
    shutil.rmtree(os.path.dirname(d), ignore_errors=True)
    os.makedirs(os.path.dirname(d))
    cfg = os.path.join(ctx.work, "no_such_config.json")
    rc, out, err = run_cmd(ctx, ["model", "init", "--config", cfg, "--seed", "1", "-o", d])
    why = check_reject(rc, out, err, paths=[cfg])
    if os.path.lexists(d):
        why.append("the output dir was created")
    return why + (["stderr was: %s" % show(err)] if why else [])


def run_init_parent_file(ctx):
    top = os.path.join(ctx.work, "cases", "init_out_parent_is_file")
    shutil.rmtree(top, ignore_errors=True)
    os.makedirs(top)
    f = os.path.join(top, "plainfile")
    put_bytes(top, b"not a directory\n", "plainfile")
    d = os.path.join(f, "sub")
    cfg = os.path.join(ctx.work, "tiny_llama.json")
    rc, out, err = run_cmd(ctx, ["model", "init", "--config", cfg, "--seed", "1", "-o", d])
    why = check_reject(rc, out, err, paths=[f])
    if open(f, "rb").read() != b"not a directory\n":
        why.append("the file in the way was changed")
    if sorted(os.listdir(top)) != ["plainfile"]:
        why.append("files left in %s: %s" % (top, sorted(os.listdir(top))))
    return why + (["stderr was: %s" % show(err)] if why else [])


BASE_CFGS = {"llama": TINY, "qwen2": TINY_QWEN, "tied": TINY_TIED}


def build_bases(ctx, py=False):
    """Write the tiny configs and one init'ed model per base; returns setup failure lines."""
    fails = []
    for b, cfg in BASE_CFGS.items():
        cp = os.path.join(ctx.work, "tiny_%s.json" % b)
        write_config(cp, cfg)
        d = os.path.join(ctx.work, "base_%s" % b)
        shutil.rmtree(d, ignore_errors=True)
        if py:
            py_init(cfg, d)
            ctx.bases[b] = d
            continue
        rc, out, err = run_cmd(ctx, ["model", "init", "--config", cp, "--seed", "1", "-o", d])
        if rc != 0 or not os.path.isfile(os.path.join(d, ST)):
            fails.append("init of the %s base model: %s: %s" % (b, rc_text(rc), show(err)))
            continue
        ctx.bases[b] = d
        rc, out, err = run_cmd(ctx, logprobs_args(d, TOKENS))
        if rc == 0:
            ctx.base_out[b] = out
    return fails


def self_check(work, selected):
    """Apply every safetensors/config/shard corruption to numpy-built models and check each with
    strict_check (no binary needed)."""
    ctx = Ctx(None, work, 0)
    build_bases(ctx, py=True)
    npass = nfail = 0
    for c in selected:
        if c.run or c.mutate is None:
            continue
        d = os.path.join(work, "cases", c.name)
        shutil.rmtree(d, ignore_errors=True)
        shutil.copytree(ctx.bases[c.base], d, symlinks=True)
        try:
            c.mutate(d)
            res = strict_check(d, ignore=not c.strict)
        except Exception as e:          # a broken mutation is a bug in this script
            res = "mutation raised %r" % e
            good = False
        else:
            good = (res is None) if c.ok else (res is not None and not res.startswith("mutation"))
        npass += good
        nfail += not good
        print("%s %-28s %s" % ("ok  " if good else "BAD ", c.name, res or "valid"))
    print("self-check: %d ok, %d bad" % (npass, nfail))
    return 0 if nfail == 0 else 1


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rein", help="path to the rein binary")
    ap.add_argument("--work", help="work dir (default: a temporary dir, removed unless --keep)")
    ap.add_argument("--keep", action="store_true", help="keep the work dir")
    ap.add_argument("--only", action="append", default=[], help="run cases whose name contains this")
    ap.add_argument("--strict", action="store_true", help="also run the strict-format cases")
    ap.add_argument("--list", action="store_true", help="list the cases and exit")
    ap.add_argument("--timeout", type=float, default=60.0, help="seconds per run (default 60)")
    ap.add_argument("--self-check", action="store_true",
                    help="check the corruptions with a Python reader; no binary needed")
    args = ap.parse_args()

    allc = cases()
    sel = [c for c in allc if (args.strict or not c.strict or args.only)
           and (not args.only or any(o in c.name for o in args.only))]
    if args.list:
        for c in allc:
            print("%-28s %s" % (c.name, c.desc))
        return 0

    tmp = None
    if args.work:
        work = os.path.abspath(args.work)
        os.makedirs(work, exist_ok=True)
    else:
        tmp = work = tempfile.mkdtemp(prefix="rein_bad_files_")
    try:
        if args.self_check:
            return self_check(work, sel)
        if not args.rein:
            ap.error("--rein PATH is required (or --self-check)")
        rein = os.path.abspath(args.rein)
        if not (os.path.isfile(rein) and os.access(rein, os.X_OK)):
            print("cannot run %s" % rein, file=sys.stderr)
            return 2
        ctx = Ctx(rein, work, args.timeout)
        setup = build_bases(ctx)
        for s in setup:
            print("SETUP FAIL %s" % s)
        npass = 0
        failed = []
        for c in sel:
            try:
                why = run_case(ctx, c)
            except Exception as e:
                why = ["the test itself raised %r" % e]
            if why:
                failed.append(c.name)
                print("FAIL %s: %s\n     %s" % (c.name, c.desc, "\n     ".join(why)))
            else:
                npass += 1
                print("PASS %s: %s" % (c.name, c.desc))
            sys.stdout.flush()
        print("\n%d/%d cases passed%s" % (npass, len(sel), "" if not failed else "; failed: " + " ".join(failed)))
        if setup:
            print("setup failed: %d" % len(setup))
        return 0 if not failed and not setup else 1
    finally:
        if tmp and not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
        elif args.keep or args.work:
            print("work dir: %s" % work)


if __name__ == "__main__":
    sys.exit(main())
