"""objective.py — a compiled Rein objective as a PyTorch loss (docs/python.md).

Objective(source, **params)        compiles (or loads a .so) and opens it
obj(logp, entropy=None, *, mask= | offsets=, group=, **inputs) -> (loss, metrics)
obj.step(*, mask= | offsets=, group=, **inputs) -> Step (step.py): the staged step, stat() for
                                   an objective with a statistics stage, one micro() per
                                   micro-batch of whole groups, loss, metrics and states at the end
Params, states (carried across steps) and trainer constants are the descriptor's params of the
three kinds: obj.params, obj.states, obj.trainer; _param_array puts them in the descriptor's order.

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

import torch

from . import _lib as L
from ._compile import compile_objective
from ._layout import _buf, _checked32, _fptr, _Layout, _shape, _tensor
from .errors import ReinError
from .step import Step, _inject

_F32_MAX = 3.4028234663852886e38


class _Batch:
    """The host arrays of one step (rt_batch) and everything they point into, kept alive."""

    def __init__(self, obj, layout, inputs, seed, step):
        self.layout = lay = layout
        if "logp" in inputs or "entropy" in inputs:
            raise TypeError("step(): logp and entropy are given per micro-batch, to micro() (and for the "
                            "statistics stage, once for the whole batch, to stat())")
        # trainer constants given to this call (a user input may reuse such a name only when the
        # program does not read the constant, so the two never clash)
        inputs = dict(inputs)
        tconst = {n: inputs.pop(n) for n in list(inputs) if n in obj.trainer and n not in obj.uinputs}
        if step is not None and "step" in obj.trainer:
            tconst["step"] = step
        self.params = obj._param_array(tconst)
        for name in inputs:
            if name in L.COMPUTED:
                raise TypeError("`%s` is computed from the layout; do not pass it" % name)
            if name not in L.INPUT_INDEX and name not in obj.uinputs:
                extra = "; trainer constants: %s" % ", ".join(obj.trainer) if obj.trainer else ""
                raise TypeError("unknown input `%s` (%s reads: %s%s)" % (name, obj.name, ", ".join(obj.inputs), extra))
        for name in obj.inputs:
            if name not in ("logp", "entropy") and inputs.get(name) is None:
                raise TypeError("%s reads `%s`: pass %s=... (%s)" % (
                    obj.name, name, name, "one value per token" if obj._level(name) == L.TOKEN else
                    "one value per sequence"))
        c = self.c = L.Batch()
        c.ngroups, c.nseqs, c.ntoks = lay.G, lay.S, lay.N
        c.grp_seq = ctypes.cast(lay.grp_seq.data_ptr(), L.c_int32_p)
        c.seq_tok = ctypes.cast(lay.seq_tok.data_ptr(), L.c_int32_p)
        c.seed, c.step = _u64(seed, "seed"), _u64(0 if step is None else step, "step")
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


def _finite(v, name, what):
    """V as a float, finite and representable in float32 (the ABI's inputs; `rein eval --set`)."""
    try:
        v = float(v)
    except (TypeError, ValueError):
        raise TypeError("%s %s: expected a number, got %r" % (what, name, v)) from None
    if not math.isfinite(v) or abs(v) > _F32_MAX:
        raise ValueError("%s %s: must be a finite float32 value, got %r" % (what, name, v))
    return v


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
      params   the objective's params, states or trainer constants by name (obj.set(...) later)
    Attributes: name, description, params and defaults (the hyper-parameters, in the descriptor's
    order), states and state_init (the states: the values the next step reads, the program's
    initial values), last_state (the updates of the last step), trainer (the trainer constants it
    reads: {name: value set with set(), or None}), metrics (names, without the states' updates),
    inputs (what a call must give, besides mask/offsets/group), uinputs ({name: level}),
    needs_stats (the objective has a statistics stage: Step.stat before the micro-batches).
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
        # every descriptor param in order: (name, kind); its value comes from params, states or trainer
        self._pspec = [(d.params[k].name.decode(), int(d.params[k].kind)) for k in range(d.nparams)]
        vals = [d.params[k].value for k in range(d.nparams)]
        self.defaults = {n: v for (n, kd), v in zip(self._pspec, vals) if kd == L.PARAM_PARAM}
        self.params = dict(self.defaults)
        self.state_init = {n: v for (n, kd), v in zip(self._pspec, vals) if kd == L.PARAM_STATE}
        self.states = dict(self.state_init)
        self.last_state = None
        self.trainer = {n: None for n, kd in self._pspec if kd == L.PARAM_TRAINER}
        # the outputs after the loss: metrics, and each state's update (listed under the state's name)
        self._updates = {d.params[k].name.decode(): int(d.params[k].update) for k in range(d.nparams)
                         if d.params[k].kind == L.PARAM_STATE}
        upd = set(self._updates.values())
        self._metric_index = [(d.metrics[k].decode(), k) for k in range(d.nmetrics) if k not in upd]
        self.metrics = [m for m, _ in self._metric_index]
        self.uinputs = {d.uinputs[k].name.decode(): int(d.uinputs[k].level) for k in range(d.nuinputs)}
        self.flags = int(d.flags)
        self.needs_stats = bool(self.flags & L.STATS)
        self.inputs = [n for k, (n, _, _) in enumerate(L.INPUTS)
                       if d.inputs_used >> k & 1 and n not in L.COMPUTED] + list(self.uinputs)
        self.threads = int(threads)
        self._busy = False
        self.set(**params)

    def set(self, **values):
        """Sets params, states (the value the next step reads) and trainer constants (the value
        of every later step that is not given one) by name, like `rein eval --set NAME=VALUE`;
        TypeError for a name the objective does not have, ValueError for a value that is not a
        finite float32 number."""
        for k, v in values.items():
            where = (self.params if k in self.params else self.states if k in self.states
                     else self.trainer if k in self.trainer else None)
            if where is None:
                more = "".join("; %s: %s" % (what, ", ".join(d)) for what, d in (
                    ("states", self.states), ("trainer constants", self.trainer)) if d)
                raise TypeError("%s has no param `%s` (params: %s%s)" % (
                    self.name, k, ", ".join(self.defaults) or "none", more))
            where[k] = _finite(v, k, "state" if where is self.states else
                               "trainer constant" if where is self.trainer else "param")
        return self

    def reset_states(self):
        """Every state back to its initial value (the program's, state_init)."""
        self.states = dict(self.state_init)
        return self

    def _param_array(self, tconst):
        """The values of every descriptor param for one step (rt_begin's PARAMS): the params, the
        states, and the trainer constants of TCONST (this call's) or else of set()."""
        out = []
        for name, kind in self._pspec:
            if kind == L.PARAM_PARAM:
                out.append(self.params[name])
            elif kind == L.PARAM_STATE:
                out.append(self.states[name])
            else:
                v = tconst.get(name, self.trainer[name])
                if v is None:
                    how = "step=N (the 1-based training step)" if name == "step" else "%s=N" % name
                    raise TypeError("%s reads the trainer constant `%s`, which this step lacks: pass %s to the "
                                    "call or to step(), or set it once with obj.set(%s=N)" % (
                                        self.name, name, how, name))
                out.append(_finite(v, name, "trainer constant"))
        return (ctypes.c_double * max(len(out), 1))(*out)

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

    def __call__(self, logp, entropy=None, *, mask=None, offsets=None, group=None, seed=0, step=None,
                 advance_states=True, **inputs):
        """The loss of the whole batch and its metrics: (loss tensor, {metric: float}).
        loss.backward() delivers d loss/d logp (and d loss/d entropy) into their graphs.  The
        statistics stage, if any, reads the same (detached) logp/entropy; the states' updates are
        in last_state and, with ADVANCE_STATES, become the states of the next call."""
        lay = self._layout(logp, mask, offsets, group)
        with self.step(layout=lay, seed=seed, step=step, advance_states=advance_states, **inputs) as s:
            if self.needs_stats:
                s.stat(logp, entropy)
            s.micro(logp, entropy, groups=(0, lay.G), _whole=True)
        dtype = torch.float64 if logp.dtype == torch.float64 else torch.float32
        return _inject(s.loss, *s._grads, dtype, logp.device), s.metrics

    def step(self, *, mask=None, offsets=None, group=None, seed=0, step=None, layout=None, device=None,
             advance_states=True, **inputs):
        """The staged step over a whole batch (every input but logp/entropy): a context manager.

            with obj.step(mask=mask, group=group, reward=r, old_logp=old) as s:
                if s.needs_stats:                          # a statistics stage: the whole batch first
                    with torch.no_grad():
                        s.stat(policy_logp(all_rows))
                for mb in s.split(groups_per_micro=2):
                    s.micro(policy_logp(mb.rows)).backward()
            s.loss, s.metrics, s.state

        SEED and STEP feed uniform(); STEP is also the trainer constant `step`.  Other trainer
        constants the objective reads (max_new, group_size) are keywords too, or come from set().
        With ADVANCE_STATES the states' updates become obj.states when the step ends.

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
        return Step(self, b, gpu, advance_states)
