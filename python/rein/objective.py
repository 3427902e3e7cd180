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

import torch

from . import _lib as L
from ._compile import compile_objective
from ._layout import _buf, _checked32, _fptr, _Layout, _shape, _tensor
from .errors import ReinError
from .step import Step, _inject


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
