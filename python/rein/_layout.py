"""_layout.py — where the tokens of a batch are, and the checks on its values (docs/python.md).

_Layout maps the two layouts (padded [B, T] + mask, packed [N] + offsets) and the group ids onto
the ABI's offsets (grp_seq, seq_tok) and gathers token / sequence inputs out of them; _checked32
converts a value to the float32 host copy the runtime reads, with the batch reader's checks
(finite; log-probabilities at most 0; entropies at least 0), naming the first bad value's position.
"""

import ctypes
import math

import torch

from . import _lib as L

_LOGPROBS = ("logp", "old_logp", "ref_logp", "rollout_logp")  # at most 0, as the batch reader checks (README)
_I32_MAX = 2**31 - 1

def _tensor(x, name):
    if isinstance(x, torch.Tensor):
        return x
    try:
        return torch.as_tensor(x)
    except Exception:
        raise TypeError("%s: expected a tensor, got %s" % (name, type(x).__name__)) from None


def _shape(t):
    return "[" + ", ".join(str(s) for s in t.shape) + "]"


def _int_tensor(x, name):
    t = _tensor(x, name)
    if t.dtype.is_floating_point or t.dtype == torch.bool or t.is_complex():
        raise TypeError("%s: expected an integer tensor, got %s" % (name, t.dtype))
    return t.detach().cpu().to(torch.int64)


def _buf(n):
    """A float32 host buffer of N values (at least one, so that its pointer is never NULL), NaN."""
    return torch.full((max(n, 1),), float("nan"), dtype=torch.float32)


def _fptr(t):
    return ctypes.cast(t.data_ptr(), L.c_float_p)


class _Layout:
    """Where the tokens of a batch are: grp_seq [G+1], seq_tok [S+1] (int32, the ABI's offsets),
    and for the padded layout the flat positions [N] of the response tokens in the [B, T] grid."""

    def __init__(self, group, mask=None, shape=None, offsets=None, ntoks=None):
        if offsets is not None:
            self.kind = "packed"
            off = _int_tensor(offsets, "offsets")
            if off.dim() != 1 or off.numel() < 2:
                raise ValueError("offsets: expected a 1-D tensor [S+1] (the first token of each sequence, "
                                 "then the number of tokens), got shape %s" % _shape(off))
            if int(off[0]) != 0:
                raise ValueError("offsets: must start at 0, starts at %d" % int(off[0]))
            d = off[1:] - off[:-1]
            if bool((d < 0).any()):
                k = int(torch.nonzero(d < 0)[0])
                raise ValueError("offsets: must not decrease (offsets[%d] = %d > offsets[%d] = %d)"
                                 % (k, int(off[k]), k + 1, int(off[k + 1])))
            if ntoks is not None and int(off[-1]) != ntoks:
                raise ValueError("offsets: end at %d, but logp has %d tokens" % (int(off[-1]), ntoks))
            self.S, self.N, self.T = off.numel() - 1, int(off[-1]), None
            self.seq_tok64 = off
            self.flat = None
        else:
            self.kind = "padded"
            if mask is None:
                m = torch.ones(shape, dtype=torch.bool)
            else:
                m = _tensor(mask, "mask").detach().cpu()
                if m.is_complex():
                    raise TypeError("mask: expected a bool or 0/1 tensor, got %s" % m.dtype)
                if shape is not None and tuple(m.shape) != tuple(shape):
                    raise ValueError("mask: expected shape %s (logp's), got %s"
                                     % (list(shape), _shape(m)))
                if m.dim() != 2:
                    raise ValueError("mask: expected a 2-D tensor [B, T], got shape %s" % _shape(m))
                if m.dtype != torch.bool:
                    if not bool(((m == 0) | (m == 1)).all()):
                        raise ValueError("mask: values must be 0 or 1")
                    m = m != 0
            self.S, self.T = m.shape
            self.flat = torch.nonzero(m.reshape(-1)).squeeze(1)
            self.N = self.flat.numel()
            self.seq_tok64 = torch.cat([torch.zeros(1, dtype=torch.int64), torch.cumsum(m.sum(1), 0)])
        if self.S == 0:
            raise ValueError("empty batch: no sequence")
        if self.N > _I32_MAX or self.S > _I32_MAX:
            raise ValueError("batch too large: %d tokens, %d sequences (the ABI's offsets are int32)"
                             % (self.N, self.S))
        if group is None:
            raise TypeError("group: required, the group id of every sequence (shape [%d]); the "
                            "sequences of one group must be adjacent" % self.S)
        g = _int_tensor(group, "group")
        if tuple(g.shape) != (self.S,):
            raise ValueError("group: expected shape [%d] (one id per sequence), got %s" % (self.S, _shape(g)))
        starts = torch.cat([torch.zeros(1, dtype=torch.int64), torch.nonzero(g[1:] != g[:-1]).squeeze(1) + 1])
        ids = g[starts].tolist()
        if len(set(ids)) != len(ids):
            seen = {}
            for k, i in enumerate(ids):
                if i in seen:
                    raise ValueError("group: the sequences of group id %d are not adjacent (sequences %d and %d); "
                                     "order the batch by group" % (i, int(starts[seen[i]]), int(starts[k])))
                seen[i] = k
        self.grp_seq64 = torch.cat([starts, torch.tensor([self.S])])
        self.G = len(ids)
        self.grp_seq = self.grp_seq64.to(torch.int32).contiguous()
        self.seq_tok = self.seq_tok64.to(torch.int32).contiguous()

    def where(self, t, s0=0):
        """User coordinates of token T (index into the batch's tokens)."""
        if self.kind == "packed":
            return "[%d]" % t
        r, c = divmod(int(self.flat[t]), self.T)
        return "[%d, %d]" % (r - s0, c)

    def tokens(self, x, name, s0=None, s1=None, grad=False):
        """Token input X as a 1-D tensor of the tokens of sequences [s0, s1) (default: all), in
        X's dtype and on its device; differentiable when GRAD."""
        x = _tensor(x, name)
        whole = s0 is None
        if whole:
            s0, s1 = 0, self.S
        t0, t1 = int(self.seq_tok64[s0]), int(self.seq_tok64[s1])
        if self.kind == "packed":
            want = (t1 - t0,)
        else:
            want = (s1 - s0, self.T)
        if tuple(x.shape) != want:
            where = ("sequences %d..%d of the batch" % (s0, s1 - 1)) if not whole else "the batch"
            raise ValueError("%s: expected shape %s (%s, %s layout), got %s"
                             % (name, list(want), where, self.kind, _shape(x)))
        if x.is_complex() or (grad and not x.dtype.is_floating_point):
            raise TypeError("%s: expected a floating-point tensor, got %s" % (name, x.dtype))
        if not grad:
            x = x.detach()
        if self.kind == "packed":
            return x
        idx = self.flat[t0:t1] - s0 * self.T
        return x.reshape(-1).index_select(0, idx.to(x.device))

    def seqs(self, x, name):
        x = _tensor(x, name)
        if tuple(x.shape) != (self.S,):
            raise ValueError("%s: expected shape [%d] (one value per sequence), got %s" % (name, self.S, _shape(x)))
        if x.is_complex():
            raise TypeError("%s: expected a real tensor, got %s" % (name, x.dtype))
        return x.detach()


def _checked32(v, name, layout, t0=0, s0=0, level=L.TOKEN):
    """V (1-D, any real dtype, any device) as float32 on the host, finite, with the sign checks of
    log-probabilities and entropies.  ValueError naming the first bad value's position."""
    a = v.detach().to("cpu", torch.float32).contiguous()
    if a.numel() == 0:
        return a
    # the fast path: one sum (NaN and infinities make it non-finite) and one max or min
    if math.isfinite(float(a.sum(dtype=torch.float64))) and (
            (name not in _LOGPROBS or float(a.max()) <= 0) and (name != "entropy" or float(a.min()) >= 0)):
        return a
    bad = ~torch.isfinite(a)
    why = "NaN or infinite"
    if not bool(bad.any()):
        if name in _LOGPROBS:
            bad, why = a > 0, "positive (log-probabilities are at most 0)"
        elif name == "entropy":
            bad, why = a < 0, "negative (entropies are at least 0)"
    if bool(bad.any()):
        k = int(torch.nonzero(bad)[0])
        at = layout.where(t0 + k, s0) if level == L.TOKEN else "[%d]" % k
        raise ValueError("%s: %d value%s %s, the first at %s: %r" % (
            name, int(bad.sum()), "s are" if int(bad.sum()) > 1 else " is", why, at, float(a[k])))
    return a
