"""test_binding.py — the Python binding (python/rein) against the PyTorch oracle and its contract.

Run by ctest (python_binding, python/CMakeLists.txt) with REIN_LIB, REIN_BIN, REIN_CACHE set;
by hand:  PYTHONPATH=python REIN_LIB=build/python/librein_runtime.so REIN_BIN=build/rein \
          /usr/bin/python3 python/tests/test_binding.py

  oracle      every lang/std objective (tests/oracle/torch_objectives.py, with the oracle's
              params), on the oracle runner's generated batches: loss, metrics and both gradients
              through the padded layout, the packed layout and the staged step with one group per
              micro-batch, within the runner's cpu tolerance (1e-5)
  autograd    the gradient reaches a model's parameters as the oracle's autograd gives it
  micro       micro-batches with their own forward passes sum to the whole batch's gradient
  misuse      bad inputs and a misused step raise clear exceptions; the objective stays usable
  cuda        skipped without a GPU
"""

import os
import sys
import tempfile
import unittest

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, "python"))
sys.path.insert(0, os.path.join(REPO, "tests", "oracle"))

import rein  # noqa: E402
import run_oracle as R  # noqa: E402
import torch_objectives as O  # noqa: E402

TOL = 1e-5  # the oracle runner's tolerance for the compiled float32 code (tests/oracle/README.md)
STD = [n for n, v in O.OBJECTIVES.items() if v[3].startswith("lang/std/")]
_objs = {}


def objective(name):
    if name not in _objs:
        fn, params, metrics, path = O.OBJECTIVES[name]
        _objs[name] = rein.Objective(os.path.join(REPO, path), **params)
    return _objs[name]


def close(a, b, tol=TOL):
    return O.is_close(float(a), float(b), tol, tol)


def inputs_of(obj, P, pick=lambda t: t):
    """The inputs OBJ reads, from the oracle's padded batch P (token inputs through PICK)."""
    seq = {"reward": P.reward, "truncated": P.truncated, "lag": P.lag}
    tok = {"old_logp": P.old_logp, "ref_logp": P.ref_logp, "rollout_logp": P.rollout_logp}
    tok.update(P.inputs)
    out = {}
    for n in obj.inputs:
        if n in ("logp", "entropy"):
            continue
        out[n] = seq[n] if n in seq else pick(tok[n])
    return out


class Oracle(unittest.TestCase):
    def test_every_std_objective(self):
        configs = [(n, O.OBJECTIVES[n][1]) for n in STD]
        bounds = R.bounds_for(configs)
        data = {}
        for kind in ("token", "unclipped", "gspo", "roll"):
            data[kind] = [R.Gen(7000 + k + {"token": 0, "unclipped": 300, "gspo": 500, "roll": 800}[kind], kind,
                                bounds).batch(k) for k in range(4)]
        worst, runs = 0.0, 0
        for name in STD:
            obj = objective(name)
            self.assertEqual(sorted(obj.metrics), sorted(O.OBJECTIVES[name][2]), name)
            for bi, batch in enumerate(data[O.BATCH_KIND[name]]):
                want = O.evaluate(name, batch)
                for mode in ("padded", "packed", "micro"):
                    got = self.run_mode(obj, batch, mode)
                    runs += 1
                    where = "%s batch %d %s" % (name, bi, mode)
                    self.assertTrue(close(got["loss"], want["loss"]), "%s: loss %r, oracle %r" % (
                        where, got["loss"], want["loss"]))
                    self.assertEqual(sorted(got["metrics"]), sorted(want["metrics"]), where)
                    for m, v in want["metrics"].items():
                        self.assertTrue(close(got["metrics"][m], v), "%s: metric %s %r, oracle %r" % (
                            where, m, got["metrics"][m], v))
                    for which in ("logp", "entropy"):
                        g, w = got["grad"][which], want["grad"][which]
                        self.assertEqual([[len(s) for s in grp] for grp in g], [[len(s) for s in grp] for grp in w])
                        for gi, grp in enumerate(w):
                            for si, seq in enumerate(grp):
                                for ti, v in enumerate(seq):
                                    a = g[gi][si][ti]
                                    worst = max(worst, abs(a - v) / max(1.0, abs(v)))
                                    self.assertTrue(close(a, v), "%s: d/d%s [%d][%d][%d] %r, oracle %r" % (
                                        where, which, gi, si, ti, a, v))
        print("oracle: %d lang/std objectives, %d runs (padded, packed, micro-batches of one group), "
              "largest gradient error %.2e" % (len(STD), runs, worst))

    def run_mode(self, obj, batch, mode):
        P = O.Padded(batch)
        logp = P.logp.detach().clone().requires_grad_(True)
        ent = P.entropy.detach().clone().requires_grad_(True)
        kw = dict(seed=P.seed, step=P.step)
        if mode == "packed":
            m = P.mask.bool()
            lp, en = logp[m], ent[m]
            offsets = torch.cat([torch.zeros(1, dtype=torch.long), torch.cumsum(P.lengths, 0)])
            loss, metrics = obj(lp, en, offsets=offsets, group=P.group, **kw, **inputs_of(obj, P, lambda t: t[m]))
            loss.backward()
            lossv = float(loss)
        elif mode == "padded":
            loss, metrics = obj(logp, ent, mask=P.mask, group=P.group, **kw, **inputs_of(obj, P))
            loss.backward()
            lossv = float(loss)
        else:
            with obj.step(mask=P.mask, group=P.group, **kw, **inputs_of(obj, P)) as s:
                if s.needs_stats:  # clip_cov, kl_cov: the whole batch's logp before the micro-batches
                    s.stat(logp.detach(), ent.detach())
                for mb in s.split(1):
                    s.micro(logp[mb.rows], ent[mb.rows]).backward()
            lossv, metrics = s.loss, s.metrics
        gl = logp.grad if logp.grad is not None else torch.zeros_like(logp)
        ge = ent.grad if ent.grad is not None else torch.zeros_like(ent)
        return {"loss": lossv, "metrics": metrics, "grad": {"logp": P.unpad(gl), "entropy": P.unpad(ge)}}


def toy_batch(seed=0, B=12, T=7, V=5, groups=4):
    """A tiny policy (one linear layer over position features) and a batch of its samples."""
    g = torch.Generator().manual_seed(seed)
    model = torch.nn.Linear(T, V * T).double()
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float64) * 0.5)
    feats = torch.randn(B, T, generator=g, dtype=torch.float64)
    tokens = torch.randint(0, V, (B, T), generator=g)
    lens = torch.randint(0, T + 1, (B,), generator=g)
    lens[0] = T
    mask = torch.arange(T).unsqueeze(0) < lens.unsqueeze(1)
    group = torch.arange(B) * groups // B
    reward = torch.randint(0, 2, (B,), generator=g).double()

    def logp_of(rows=slice(None)):
        logits = model(feats[rows]).view(-1, T, V)
        lp = torch.log_softmax(logits, -1)
        return lp.gather(-1, tokens[rows].unsqueeze(-1)).squeeze(-1)

    old = (logp_of().detach() + 0.3 * torch.randn(B, T, generator=g, dtype=torch.float64)).clamp(max=0)
    return model, logp_of, mask, group, reward, old


class Autograd(unittest.TestCase):
    def test_model_gradient_equals_oracle(self):
        obj = objective("grpo")
        model, logp_of, mask, group, reward, old = toy_batch()
        loss, _ = obj(logp_of(), old_logp=old, reward=reward, mask=mask, group=group)
        loss.backward()
        got = [p.grad.clone() for p in model.parameters()]
        model.zero_grad()

        class P:  # the oracle's view of the same batch, logp in the model's graph
            pass
        P.logp, P.old_logp, P.mask, P.reward, P.group = logp_of(), old, mask.double(), reward, group
        P.n_groups, P.S, P.T = int(group.max()) + 1, mask.shape[0], mask.shape[1]
        P.tok = lambda v: v.unsqueeze(1).expand(P.S, P.T)
        want_loss, _ = O.obj_grpo(P, dict(O.OBJECTIVES["grpo"][1]))
        want_loss.backward()
        self.assertTrue(close(loss, want_loss), (float(loss), float(want_loss)))
        for a, p in zip(got, model.parameters()):
            self.assertTrue(torch.allclose(a, p.grad, atol=TOL, rtol=TOL), (a - p.grad).abs().max())

    def test_entropy_gradient(self):
        obj = objective("entropy_bonus")
        logp = -torch.rand(3, 4, dtype=torch.float64)
        ent = torch.rand(3, 4, dtype=torch.float64, requires_grad=True)
        mask = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0], [0, 0, 0, 0]])
        loss, metrics = obj(logp, ent, mask=mask, group=[0, 0, 1])
        loss.backward()
        coef = obj.params["coef"]
        want = torch.where(mask.bool(), torch.full_like(ent, -coef / 6), torch.zeros_like(ent))
        self.assertTrue(torch.allclose(ent.grad, want, atol=1e-7), ent.grad)
        self.assertAlmostEqual(metrics["entropy_mean"], float((ent * mask).sum() / 6), places=6)


class Micro(unittest.TestCase):
    def test_accumulated_micro_batches_equal_whole_batch(self):
        for name in ("grpo", "dr_grpo", "gpg"):
            obj = objective(name)
            model, logp_of, mask, group, reward, old = toy_batch(seed=3)
            loss, metrics = obj(logp_of(), old_logp=old, reward=reward, mask=mask, group=group)
            loss.backward()
            whole = [p.grad.clone() for p in model.parameters()]
            for k in (1, 2, 3):
                model.zero_grad()
                with obj.step(mask=mask, group=group, old_logp=old, reward=reward) as s:
                    for mb in s.split(k):
                        s.micro(logp_of(mb.rows)).backward()  # a forward pass per micro-batch
                self.assertEqual(s.loss, float(loss), (name, k))  # bit-identical (objective.h)
                self.assertEqual(s.metrics, metrics)
                for a, p in zip(whole, model.parameters()):
                    self.assertTrue(torch.allclose(a, p.grad, atol=1e-12, rtol=1e-9), (name, k))

    def test_groups_inferred_and_explicit_packed(self):
        obj = objective("grpo")
        logp = -torch.rand(10, dtype=torch.float64, requires_grad=True)
        offsets, group = [0, 2, 5, 5, 10], [0, 0, 1, 1]
        kw = dict(old_logp=logp.detach() - 0.01, reward=[1.0, 0.0, 0.5, 0.0])
        loss, _ = obj(logp, offsets=offsets, group=group, **kw)
        (g_whole,) = torch.autograd.grad(loss, logp)
        parts = []
        with obj.step(offsets=offsets, group=group, **kw) as s:
            for mb in s.split(1):
                x = logp.detach()[mb.tokens].clone().requires_grad_(True)
                s.micro(x, groups=mb.groups).backward()
                parts.append(x.grad)
        self.assertTrue(torch.equal(torch.cat(parts), g_whole))
        self.assertEqual(s.loss, float(loss))


class Misuse(unittest.TestCase):
    def setUp(self):
        self.obj = objective("grpo")
        self.logp = -torch.rand(4, 3, dtype=torch.float64)
        self.kw = dict(old_logp=self.logp - 0.01, reward=torch.tensor([1.0, 0.0, 1.0, 0.0]),
                       mask=torch.ones(4, 3), group=torch.tensor([0, 0, 1, 1]))

    def raises(self, exc, text, fn, *a, **kw):
        with self.assertRaises(exc) as cm:
            fn(*a, **kw)
        self.assertIn(text, str(cm.exception))
        return str(cm.exception)

    def call(self, **over):
        kw = dict(self.kw)
        kw.update(over)
        logp = kw.pop("logp", self.logp)
        return self.obj(logp, **{k: v for k, v in kw.items() if v is not None})

    def test_bad_inputs(self):
        nan = self.logp.clone()
        nan[2, 1] = float("nan")
        msgs = [
            self.raises(ValueError, "mask: expected shape [4, 3]", self.call, mask=torch.ones(4, 4)),
            self.raises(TypeError, "logp: expected a floating-point tensor", self.call,
                        logp=torch.zeros(4, 3, dtype=torch.long)),
            self.raises(ValueError, "old_logp: expected shape [4, 3]", self.call, old_logp=torch.zeros(4, 2)),
            self.raises(ValueError, "reward: expected shape [4]", self.call, reward=torch.zeros(3)),
            self.raises(TypeError, "grpo reads `old_logp`", self.call, old_logp=None),
            self.raises(TypeError, "grpo reads `reward`", self.call, reward=None),
            self.raises(ValueError, "logp: 1 value is NaN or infinite, the first at [2, 1]", self.call, logp=nan),
            self.raises(ValueError, "reward: 1 value is NaN or infinite, the first at [3]", self.call,
                        reward=torch.tensor([1.0, 0.0, 1.0, float("inf")])),
            self.raises(ValueError, "logp: 4 values are positive", self.call, logp=self.logp.abs() * torch.tensor([0, 0, 1.0])),
            self.raises(TypeError, "unknown input `rewards`", self.call, rewards=torch.zeros(4)),
            self.raises(TypeError, "`pos` is computed", self.call, pos=torch.zeros(4, 3)),
            self.raises(TypeError, "group: required", self.call, group=None),
            self.raises(TypeError, "group: expected an integer tensor", self.call, group=torch.zeros(4)),
            self.raises(ValueError, "group id 0 are not adjacent", self.call, group=torch.tensor([0, 1, 1, 0])),
            self.raises(ValueError, "mask: values must be 0 or 1", self.call, mask=torch.full((4, 3), 0.5)),
            self.raises(ValueError, "logp: expected [B, T]", self.call, logp=self.logp[None]),
            self.raises(ValueError, "offsets: end at 9, but logp has 12 tokens", self.call, mask=None,
                        logp=self.logp.reshape(-1), offsets=[0, 3, 6, 9, 9]),
            self.raises(ValueError, "offsets: must not decrease", self.call, mask=None, logp=self.logp.reshape(-1),
                        offsets=[0, 6, 3, 9, 12]),
            self.raises(TypeError, "grpo has no param `eps`", self.obj.set, eps=0.1),
            self.raises(rein.ReinError, "cannot read", rein.Objective, "/nonexistent/x.rein"),
        ]
        with tempfile.TemporaryDirectory() as d:
            bad = os.path.join(d, "bad.rein")
            with open(bad, "w") as f:
                f.write("objective bad;\nloss = mean[batch](nosuch);\n")
            msgs.append(self.raises(rein.ReinError, "error", rein.Objective, bad))
            so = os.path.join(d, "fake.so")
            with open(so, "w") as f:
                f.write("not an ELF file\n")
            msgs.append(self.raises(rein.ReinError, "not an ELF", rein.Objective, so))
        self.assertTrue(close(self.call()[0], self.call()[0]))  # still usable
        print("misuse: %d bad inputs raised, e.g.:\n  %s" % (len(msgs), "\n  ".join(msgs[:3] + msgs[6:7])))

    def test_bad_steps(self):
        kw = dict(self.kw)
        self.raises(TypeError, "mask= [B, T] (padded layout) or offsets=", self.obj.step, group=kw["group"],
                    old_logp=kw["old_logp"], reward=kw["reward"])
        with self.obj.step(**kw) as s:
            self.raises(ValueError, "out of order", s.micro, self.logp[2:], groups=(1, 2))
            self.raises(ValueError, "not whole groups from group 0", s.micro, self.logp[:1])
            self.raises(ValueError, "not whole groups", s.micro, self.logp[:3])
            self.raises(rein.ReinError, "a step is already open", self.call)
            s.micro(self.logp[:2])
            self.raises(ValueError, "expected shape [2, 3]", s.micro, self.logp[:1], groups=(1, 2))
            s.micro(self.logp[2:])
        # exiting before every group was in a micro-batch
        with self.assertRaises(rein.ReinError) as cm:
            with self.obj.step(**kw) as s:
                s.micro(self.logp[:2])
        self.assertIn("groups [1, 2) were in no micro-batch", str(cm.exception))
        self.raises(rein.ReinError, "no step open", s.micro, self.logp[2:])
        with self.obj.step(**kw) as s:
            s.micro(self.logp)
            self.raises(ValueError, "every group of the batch is done", s.micro, self.logp[:2])
        self.assertTrue(close(s.loss, self.call()[0]))
        self.raises(TypeError, "logp and entropy are given per micro-batch", self.obj.step, logp=self.logp, **kw)



class Cuda(unittest.TestCase):
    def test_cuda(self):
        if not torch.cuda.is_available():
            self.skipTest("no GPU")
        obj = objective("grpo")
        model, logp_of, mask, group, reward, old = toy_batch()
        lp = logp_of().detach()
        loss_c, _ = obj(lp, old_logp=old, reward=reward, mask=mask, group=group)
        lg = lp.cuda().requires_grad_(True)
        loss_g, _ = obj(lg, old_logp=old.cuda(), reward=reward.cuda(), mask=mask, group=group)
        loss_g.backward()
        self.assertTrue(close(float(loss_g), float(loss_c)))


if __name__ == "__main__":
    unittest.main(verbosity=2)
