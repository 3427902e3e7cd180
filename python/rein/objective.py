"""objective.py — a compiled Rein objective as a PyTorch loss (docs/python.md).

Objective(source, **params)        compiles (or loads a .so) and opens it
obj(logp, entropy=None, *, mask= | offsets=, group=, **inputs) -> (loss, metrics)
obj.step(*, mask= | offsets=, group=, **inputs) -> Step: the staged step, one micro() per
                                   micro-batch of whole groups, loss and metrics at the end

The batch: groups -> sequences -> tokens.  Two layouts:
  padded  logp [B, T] (one row per sequence), mask [B, T] (the response tokens; default all),
          group [B]; token inputs [B, T], sequence inputs [B]
  packed  logp [N] (the tokens of every sequence, one after the other), offsets [S+1] (the first
          token of each sequence, then N), group [S]; token inputs [N], sequence inputs [S]
The sequences of a group must be adjacent; groups are numbered 0.. in order of appearance.

The gradient goes through autograd: the returned loss is a tensor whose backward() delivers the
kernel's d loss/d logp (and d loss/d entropy) to the graph that produced logp (and entropy).
"""

import ctypes
import math

import numpy as np
import torch

from . import _lib as L
from ._compile import compile_objective
from .errors import ReinError

_LOGPROBS = ("logp", "old_logp", "ref_logp")  # at most 0, as the batch reader checks (README)
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


class _Inject(torch.autograd.Function):
    """Returns VALUE; its backward gives d/d logp_tok = G_LOGP, d/d ent_tok = G_ENT (times the
    incoming gradient): the kernel's gradients, injected into the caller's graph."""

    @staticmethod
    def forward(ctx, value, g_logp, g_ent, logp_tok, ent_tok):
        ctx.save_for_backward(g_logp, g_ent)
        return value

    @staticmethod
    def backward(ctx, gout):
        g_logp, g_ent = ctx.saved_tensors
        gl = gout.to(g_logp.dtype) * g_logp if ctx.needs_input_grad[3] else None
        ge = gout.to(g_ent.dtype) * g_ent if ctx.needs_input_grad[4] else None
        return None, None, None, gl, ge


def _inject(value, g_logp, g_ent, logp_tok, ent_tok, out_dtype, device):
    v = torch.tensor(value, dtype=out_dtype, device=device)
    gl = g_logp.to(device=logp_tok.device, dtype=logp_tok.dtype)
    if ent_tok is not None and g_ent is not None:
        ge = g_ent.to(device=ent_tok.device, dtype=ent_tok.dtype)
    else:
        ge = torch.zeros(0)
    if not (logp_tok.requires_grad or (ent_tok is not None and ent_tok.requires_grad)):
        return v
    return _Inject.apply(v, gl, ge, logp_tok, ent_tok)


class _Batch:
    """The host arrays of one step (rt_batch) and everything they point into, kept alive."""

    def __init__(self, obj, layout, inputs, seed, step):
        self.layout = lay = layout
        if "logp" in inputs or "entropy" in inputs:
            raise TypeError("step(): logp and entropy are given per micro-batch, to micro()")
        for name in inputs:
            if name in L.COMPUTED:
                raise TypeError("`%s` is computed from the layout; do not pass it" % name)
            if name not in L.INPUT_INDEX and name not in obj.uinputs:
                raise TypeError("unknown input `%s` (%s reads: %s)" % (name, obj.name, ", ".join(obj.inputs)))
        for name in obj.inputs:
            if name not in ("logp", "entropy") and inputs.get(name) is None:
                raise TypeError("%s reads `%s`: pass %s=... (%s)" % (
                    obj.name, name, name, "one value per token" if obj._level(name) == L.TOKEN else
                    "one value per sequence"))
        c = self.c = L.Batch()
        c.ngroups, c.nseqs, c.ntoks = lay.G, lay.S, lay.N
        c.grp_seq = ctypes.cast(lay.grp_seq.data_ptr(), L.c_int32_p)
        c.seq_tok = ctypes.cast(lay.seq_tok.data_ptr(), L.c_int32_p)
        c.seed, c.step = _u64(seed, "seed"), _u64(step, "step")
        self.keep = [lay.grp_seq, lay.seq_tok]
        self.gpu = False

        def convert(name, x, level):
            if isinstance(x, torch.Tensor) and x.is_cuda:
                self.gpu = True
            v = lay.tokens(x, name) if level == L.TOKEN else lay.seqs(x, name)
            if name == "truncated" or v.dtype == torch.bool:
                v = v.to(torch.float32)
            a = _checked32(v, name, lay, level=level)
            if a.numel() and a.data_ptr() == v.data_ptr():
                a = a.clone()  # the step owns its inputs: the caller may change theirs before rt_end
            if a.numel() == 0:  # never a NULL pointer
                a = torch.zeros(1, dtype=torch.float32)
            self.keep.append(a)
            return _fptr(a)

        for name, x in inputs.items():
            if x is None or name not in L.INPUT_INDEX:
                continue
            k = L.INPUT_INDEX[name]
            c.inp[k] = convert(name, x, L.INPUTS[k][1])
        self.logp, self.entropy = _buf(lay.N), _buf(lay.N)
        c.inp[L.INPUT_INDEX["logp"]] = _fptr(self.logp)
        c.inp[L.INPUT_INDEX["entropy"]] = _fptr(self.entropy)
        names = list(obj.uinputs)
        self.uin = (L.c_float_p * max(len(names), 1))()
        for k, name in enumerate(names):
            self.uin[k] = convert(name, inputs[name], obj.uinputs[name])
        c.uin = ctypes.cast(self.uin, ctypes.POINTER(L.c_float_p))
        self.params = (ctypes.c_double * max(len(obj.params), 1))(*obj.params.values())


def _u64(v, name):
    v = int(v)
    if not 0 <= v < 2**64:
        raise ValueError("%s: must be in [0, 2^64), got %d" % (name, v))
    return v


def _as_array(p, t0, t1):
    """A float32 copy of entries [t0, t1) of the runtime's array P."""
    if t1 <= t0:
        return torch.zeros(0, dtype=torch.float32)
    return torch.from_numpy(np.ctypeslib.as_array(p, shape=(t1,))[t0:t1].copy())


class Objective:
    """A compiled Rein objective used as a PyTorch loss.

    Objective(source, *, threads=0, cpu=None, **params)
      source   a .rein file or std:NAME (compiled through `rein compile`, cached), or a compiled .so
      threads  CPU threads of the executor (0: OpenMP's default)
      params   the objective's params by name (the others keep their defaults); obj.set(...) later
    Attributes: name, description, params (dict, in the descriptor's order), defaults, metrics
    (names), inputs (what a call must give, besides mask/offsets/group), uinputs ({name: level}).
    """

    def __init__(self, source, *, threads=0, cpu=None, **params):
        self._h = None
        self._exec = {}
        src = str(source)
        self.path = src if src.endswith(".so") else compile_objective(src, cpu)
        err = L.errbuf()
        h = L.lib.rt_open(self.path.encode(), err, len(err))
        if not h:
            raise ReinError(err.value.decode(errors="replace"))
        self._h = h
        d = L.lib.rt_desc(h).contents
        self.name = d.name.decode()
        self.description = d.description.decode()
        self.defaults = {d.params[k].name.decode(): d.params[k].value for k in range(d.nparams)}
        self.params = dict(self.defaults)
        self.metrics = [d.metrics[k].decode() for k in range(d.nmetrics)]
        self.uinputs = {d.uinputs[k].name.decode(): int(d.uinputs[k].level) for k in range(d.nuinputs)}
        self.flags = int(d.flags)
        self.inputs = [n for k, (n, _, _) in enumerate(L.INPUTS)
                       if d.inputs_used >> k & 1 and n not in L.COMPUTED] + list(self.uinputs)
        self.threads = int(threads)
        self._busy = False
        self.set(**params)

    def set(self, **params):
        """Sets params by name; TypeError for a name the objective does not have."""
        for k, v in params.items():
            if k not in self.defaults:
                raise TypeError("%s has no param `%s` (params: %s)" % (
                    self.name, k, ", ".join(self.defaults) or "none"))
            v = float(v)
            if v != v or v in (float("inf"), float("-inf")):
                raise ValueError("param %s: must be finite, got %r" % (k, v))
            self.params[k] = v
        return self

    def _level(self, name):
        return self.uinputs[name] if name in self.uinputs else L.INPUTS[L.INPUT_INDEX[name]][1]

    def _executor(self, gpu):
        if self._h is None:
            raise ReinError("objective %s is closed" % self.name)
        x = self._exec.get(gpu)
        if x is None:
            err = L.errbuf()
            x = L.lib.rt_exec_new(self._h, L.DEVICE_GPU if gpu else L.DEVICE_CPU, self.threads, err, len(err))
            if not x:
                raise ReinError(err.value.decode(errors="replace"))
            self._exec[gpu] = x
        return x

    def close(self):
        for x in self._exec.values():
            L.lib.rt_exec_free(x)
        self._exec = {}
        if self._h:
            L.lib.rt_close(self._h)
            self._h = None

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    def __repr__(self):
        return "rein.Objective(%s)" % ", ".join([repr(self.name)] + ["%s=%g" % kv for kv in self.params.items()])

    def _layout(self, logp, mask, offsets, group):
        logp = _tensor(logp, "logp")
        if offsets is not None:
            if mask is not None:
                raise TypeError("give mask= (padded layout) or offsets= (packed layout), not both")
            if logp.dim() != 1:
                raise ValueError("logp: the packed layout (offsets=) takes 1-D tokens [N], got shape %s" % _shape(logp))
            return _Layout(group, offsets=offsets, ntoks=logp.shape[0])
        if logp.dim() != 2:
            raise ValueError("logp: expected [B, T] (padded, with mask= and group=) or [N] with offsets= "
                             "(packed), got shape %s" % _shape(logp))
        return _Layout(group, mask=mask, shape=tuple(logp.shape))

    def __call__(self, logp, entropy=None, *, mask=None, offsets=None, group=None, seed=0, step=0, **inputs):
        """The loss of the whole batch and its metrics: (loss tensor, {metric: float}).
        loss.backward() delivers d loss/d logp (and d loss/d entropy) into their graphs."""
        lay = self._layout(logp, mask, offsets, group)
        with self.step(layout=lay, seed=seed, step=step, **inputs) as s:
            s.micro(logp, entropy, groups=(0, lay.G), _whole=True)
        dtype = torch.float64 if logp.dtype == torch.float64 else torch.float32
        return _inject(s.loss, *s._grads, dtype, logp.device), s.metrics

    def step(self, *, mask=None, offsets=None, group=None, seed=0, step=0, layout=None, device=None, **inputs):
        """The staged step over a whole batch (every input but logp/entropy): a context manager.

            with obj.step(mask=mask, group=group, reward=r, old_logp=old) as s:
                for mb in s.split(groups_per_micro=2):
                    s.micro(policy_logp(mb.rows)).backward()
            s.loss, s.metrics

        The padded layout needs mask= [B, T] (the grid of the micro-batches' logp rows); the packed
        layout offsets= [S+1].  device="cuda" runs the GPU executor (also chosen when an input is
        a CUDA tensor)."""
        if layout is None:
            if mask is None and offsets is None:
                raise TypeError("step(): give mask= [B, T] (padded layout) or offsets= [S+1] (packed layout)")
            if mask is not None and offsets is not None:
                raise TypeError("give mask= (padded layout) or offsets= (packed layout), not both")
            layout = _Layout(group, mask=mask) if offsets is None else _Layout(group, offsets=offsets)
        b = _Batch(self, layout, inputs, seed, step)
        gpu = b.gpu or (device is not None and torch.device(device).type == "cuda")
        return Step(self, b, gpu)


class MicroBatch:
    """One micro-batch of Step.split: groups, rows (sequences) and tokens, as slices."""

    def __init__(self, groups, rows, tokens):
        self.groups, self.rows, self.tokens = groups, rows, tokens

    def __repr__(self):
        return "MicroBatch(groups=%s, rows=%s, tokens=%s)" % (self.groups, self.rows, self.tokens)


class Step:
    """The staged step (rt_begin / rt_micro / rt_end): made by Objective.step, used as a context.

    micro(logp, entropy=None, groups=None) runs one micro-batch of whole groups, the next in order
    (padded layout: the groups are found from logp's rows when groups= is omitted; packed layout:
    groups= (g0, g1) or slice(g0, g1) is required).  It returns a tensor whose backward() delivers
    the kernel's gradient of those tokens, final: summed over the micro-batches they equal the
    whole batch's.  Its value is the surrogate sum(grad * logp) of the micro-batch, not the loss:
    the loss and the metrics are known when the context ends, as .loss and .metrics."""

    def __init__(self, obj, batch, gpu):
        self.obj, self.b, self.gpu = obj, batch, gpu
        self.layout = batch.layout
        self.ngroups = self.layout.G
        self.loss, self.metrics = None, None
        self._next = None

    def __enter__(self):
        if self.obj._busy:
            raise ReinError("%s: a step is already open on this objective (one at a time)" % self.obj.name)
        x = self.obj._executor(self.gpu)
        L.call(L.lib.rt_begin, x, ctypes.byref(self.b.c), self.b.params)
        self.obj._busy = True
        self._next = 0
        return self

    def __exit__(self, et, ev, tb):
        if self._next is None:
            return False
        nxt, self._next = self._next, None
        self.obj._busy = False
        if et is not None:
            return False  # the step is abandoned; the next rt_begin starts afresh
        if nxt != self.ngroups:
            raise ReinError("step: groups [%d, %d) were in no micro-batch; every group must be in one micro() "
                            "before the step ends" % (nxt, self.ngroups))
        r = L.Result()
        L.call(L.lib.rt_end, self.obj._executor(self.gpu), ctypes.byref(r))
        self.loss = float(r.loss)
        self.metrics = {m: float(r.metrics[k]) for k, m in enumerate(self.obj.metrics)}
        return False

    def split(self, groups_per_micro):
        """The micro-batches of GROUPS_PER_MICRO whole groups (the last may have fewer), in order."""
        k = int(groups_per_micro)
        if k < 1:
            raise ValueError("split: groups_per_micro must be at least 1, got %d" % k)
        lay = self.layout
        out = []
        for g0 in range(0, lay.G, k):
            g1 = min(g0 + k, lay.G)
            s0, s1 = int(lay.grp_seq64[g0]), int(lay.grp_seq64[g1])
            out.append(MicroBatch(slice(g0, g1), slice(s0, s1),
                                  slice(int(lay.seq_tok64[s0]), int(lay.seq_tok64[s1]))))
        return out

    def _groups(self, logp, groups):
        lay, g0 = self.layout, self._next
        if groups is None:
            if lay.kind == "packed":
                raise TypeError("micro(): groups=(g0, g1) is required with the packed layout")
            x = _tensor(logp, "logp")
            rows = x.shape[0] if x.dim() == 2 else 0
            base = int(lay.grp_seq64[g0])
            hit = torch.nonzero(lay.grp_seq64 == base + rows)
            if rows <= 0 or hit.numel() == 0:
                raise ValueError("micro(): logp of shape %s is not whole groups from group %d on (the next "
                                 "groups end after %s rows); micro-batches are whole groups, in order" % (
                                     _shape(x), g0, ", ".join(str(int(v) - base) for v in lay.grp_seq64[g0 + 1:g0 + 4])))
            return g0, int(hit[0])
        if isinstance(groups, slice):
            if groups.step not in (None, 1):
                raise ValueError("micro(): groups must be a contiguous range, got %s" % groups)
            a, b = groups.start if groups.start is not None else g0, groups.stop
        else:
            a, b = groups
        a, b = int(a), int(b)
        if a != g0:
            raise ValueError("micro(): groups [%d, %d) are out of order: the next micro-batch starts at group %d "
                             "(micro-batches are whole groups, in order, each once)" % (a, b, g0))
        if not a < b <= lay.G:
            raise ValueError("micro(): groups [%d, %d) are not a range of the batch's %d groups" % (a, b, lay.G))
        return a, b

    def micro(self, logp, entropy=None, *, groups=None, _whole=False):
        if self._next is None:
            raise ReinError("micro(): no step open (use it inside `with obj.step(...) as s:`)")
        if self._next >= self.ngroups:
            raise ValueError("micro(): every group of the batch is done (%d groups); the step is complete"
                             % self.ngroups)
        obj, lay = self.obj, self.layout
        g0, g1 = self._groups(logp, groups)
        s0, s1 = int(lay.grp_seq64[g0]), int(lay.grp_seq64[g1])
        t0, t1 = int(lay.seq_tok64[s0]), int(lay.seq_tok64[s1])
        logp = _tensor(logp, "logp")
        if logp.is_cuda != self.gpu:
            raise ValueError("logp: a %s tensor, but the step runs on the %s" % (
                logp.device.type, "GPU" if self.gpu else "CPU"))
        logp_tok = lay.tokens(logp, "logp", s0, s1, grad=True)
        self.b.logp[t0:t1] = _checked32(logp_tok, "logp", lay, t0, s0)
        ent_tok = None
        if entropy is not None:
            ent_tok = lay.tokens(entropy, "entropy", s0, s1, grad=True)
            self.b.entropy[t0:t1] = _checked32(ent_tok, "entropy", lay, t0, s0)
        elif "entropy" in obj.inputs:
            raise TypeError("%s reads `entropy`: pass entropy=... (one value per token, like logp)" % obj.name)
        grads = (L.c_float_p * 2)()
        L.call(L.lib.rt_micro, obj._executor(self.gpu), g0, g1, grads)
        self._next = g1
        gl = _as_array(grads[0], t0, t1)
        ge = _as_array(grads[1], t0, t1) if ent_tok is not None else None
        self._grads = (gl, ge, logp_tok, ent_tok)
        if _whole:  # Objective.__call__ injects the loss itself
            return None
        value = float((gl.double() * self.b.logp[t0:t1].double()).sum())
        if ent_tok is not None:
            value += float((ge.double() * self.b.entropy[t0:t1].double()).sum())
        dtype = torch.float64 if logp.dtype == torch.float64 else torch.float32
        return _inject(value, gl, ge, logp_tok, ent_tok, dtype, logp.device)
