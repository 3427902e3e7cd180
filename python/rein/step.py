"""step.py — the staged step of an objective (docs/python.md): Step runs rt_begin, rt_stat,
rt_micro and rt_end of rein/runtime.h, and _inject hands the kernel's gradients to autograd.

A Step is made by Objective.step (objective.py), which builds its batch (_Batch); the Step owns
the order of the stages: the statistics (stat(), objectives with a statistics stage), then the
micro-batches of whole groups in order (micro()), then the end (the context's exit: loss, metrics
and the states' updates).
"""

import ctypes
import math

import numpy as np
import torch

from . import _lib as L
from ._layout import _checked32, _shape, _tensor
from .errors import ReinError

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


def _as_array(p, t0, t1):
    """A float32 copy of entries [t0, t1) of the runtime's array P."""
    if t1 <= t0:
        return torch.zeros(0, dtype=torch.float32)
    return torch.from_numpy(np.ctypeslib.as_array(p, shape=(t1,))[t0:t1].copy())


class MicroBatch:
    """One micro-batch of Step.split: groups, rows (sequences) and tokens, as slices."""

    def __init__(self, groups, rows, tokens):
        self.groups, self.rows, self.tokens = groups, rows, tokens

    def __repr__(self):
        return "MicroBatch(groups=%s, rows=%s, tokens=%s)" % (self.groups, self.rows, self.tokens)


class Step:
    """The staged step (rt_begin / rt_stat / rt_micro / rt_end): made by Objective.step, used as a
    context.

    stat(logp, entropy=None) is the statistics stage, for objectives with one (needs_stats): the
    whole batch's logp (and entropy), in the step's layout, once, before the first micro-batch.
    Only their values are read (no gradient flows through them): compute them under
    torch.no_grad(), with the parameters that the micro-batches' forward passes will use.

    micro(logp, entropy=None, groups=None) runs one micro-batch of whole groups, the next in order
    (padded layout: the groups are found from logp's rows when groups= is omitted; packed layout:
    groups= (g0, g1) or slice(g0, g1) is required).  It returns a tensor whose backward() delivers
    the kernel's gradient of those tokens, final: summed over the micro-batches they equal the
    whole batch's.  Its value is the surrogate sum(grad * logp) of the micro-batch, not the loss:
    the loss and the metrics are known when the context ends, as .loss and .metrics.

    .state_used holds the states' values the step reads, .state their updates (set when the
    context ends; with advance_states they also become obj.states).  .stat_drift is the largest
    |logp - stat()'s logp| (and the same for entropy) over the micro-batches so far: the
    statistics are those of stat()'s values, so it should be 0."""

    def __init__(self, obj, batch, gpu, advance_states=True):
        self.obj, self.b, self.gpu = obj, batch, gpu
        self.layout = batch.layout
        self.ngroups = self.layout.G
        self.needs_stats = obj.needs_stats
        self.advance_states = bool(advance_states)
        self.loss, self.metrics, self.state = None, None, None
        self.state_used = dict(obj.states)
        self.stat_drift = 0.0
        self._stat = None  # the float32 logp/entropy that stat() gave the runtime
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
        obj = self.obj
        self.loss = float(r.loss)
        self.metrics = {m: float(r.metrics[k]) for m, k in obj._metric_index}
        self.state = {n: float(r.metrics[k]) for n, k in obj._updates.items()}
        obj.last_state = dict(self.state)
        bad = [n for n, v in self.state.items() if not math.isfinite(v)]
        if bad:  # as `rein train`: a state is never advanced to a value no later step could use
            raise ReinError("step: the update of state `%s` is not finite (%r); %s" % (
                bad[0], self.state[bad[0]], "the state keeps its value %r" % obj.states[bad[0]]
                if self.advance_states else "the states were not to advance"))
        if self.advance_states:
            obj.states.update(self.state)
        return False

    def stat(self, logp, entropy=None):
        """The statistics stage: LOGP (and ENTROPY) of the whole batch, in the step's layout
        ([B, T] padded, [N] packed), read as values only.  Once, before the first micro(); for
        an objective without a statistics stage it checks the values and does nothing else."""
        if self._next is None:
            raise ReinError("stat(): no step open (use it inside `with obj.step(...) as s:`)")
        if self._next > 0 or self._stat is not None:
            raise ReinError("stat(): comes once per step, before the first micro-batch")
        obj, lay = self.obj, self.layout
        logp = _tensor(logp, "logp")
        if logp.is_cuda != self.gpu:
            raise ValueError("logp: a %s tensor, but the step runs on the %s" % (
                logp.device.type, "GPU" if self.gpu else "CPU"))
        self.b.logp[:lay.N] = _checked32(lay.tokens(logp.detach(), "logp", grad=True), "logp", lay)
        if entropy is not None:
            ent = _tensor(entropy, "entropy").detach()
            self.b.entropy[:lay.N] = _checked32(lay.tokens(ent, "entropy", grad=True), "entropy", lay)
        elif "entropy" in obj.inputs:
            raise TypeError("%s reads `entropy`: pass entropy=... to stat() (the whole batch, like logp)" % obj.name)
        L.call(L.lib.rt_stat, obj._executor(self.gpu))
        self._stat = (self.b.logp[:lay.N].clone(), self.b.entropy[:lay.N].clone() if entropy is not None else None)

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
        if self.needs_stats and self._stat is None:
            raise ReinError("micro(): %s has a statistics stage: call stat(logp, entropy) with the whole batch's "
                            "logp/entropy (detached, e.g. under torch.no_grad()) before the first micro-batch "
                            "(docs/python.md, \"Statistics stage\")" % self.obj.name)
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
        if self._stat is not None and self.needs_stats:
            for k, buf in enumerate((self.b.logp, self.b.entropy)):
                if self._stat[k] is not None and t1 > t0:
                    d = float((buf[t0:t1].double() - self._stat[k][t0:t1].double()).abs().max())
                    self.stat_drift = max(self.stat_drift, d if d == d else float("inf"))
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
