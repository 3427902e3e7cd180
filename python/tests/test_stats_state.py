"""test_stats_state.py — the binding on objectives with a statistics stage, states, trainer
constants and user inputs, against `rein eval` (the float64 interpreter) and float64 PyTorch.

Run by ctest (python_stats_state, python/CMakeLists.txt) with REIN_LIB, REIN_BIN, REIN_CACHE set;
by hand:  PYTHONPATH=python REIN_LIB=build/python/librein_runtime.so REIN_BIN=build/rein \
          /usr/bin/python3 python/tests/test_stats_state.py

  stats   examples/python/snis_topent.rein (self-normalised importance weights on the batch's top-20%
          entropy tokens: a statistics stage): Step.stat + micro-batches of 1, 2, 3 groups
          (padded and packed) give the per-token gradients of `rein eval` on the whole batch
          and of a float64 PyTorch implementation written here, bit-identical across splits; a
          model trained with the two-pass loop gets the whole batch's parameter gradient; the
          per-micro-batch statistics (what a naive loop computes) are measurably different;
          misuse of stat() raises
  state   examples/ppo_adaptive_kl.rein: the update equals `rein eval`'s "state" and the PyTorch
          formula, over two steps (the second reads the first's update); the staged step gives
          the same; set / reset_states / advance_states
  consts  data/running_scale.rein: trainer constants (step=, group_size via set) and a user
          `input seq`, against `rein eval`; missing ones raise rein eval's errors; an update that
          overflows raises and leaves the state alone
"""

import json
import math
import os
import subprocess
import sys
import tempfile
import unittest

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, "python"))

import rein  # noqa: E402
from rein._compile import _child_env, find_rein  # noqa: E402

TOL = 1e-5  # float32 kernels against float64 references (the oracle runner's cpu tolerance)
SNIS = os.path.join(REPO, "examples", "python", "snis_topent.rein")
PPO_KL = os.path.join(REPO, "examples", "ppo_adaptive_kl.rein")
SCALE = os.path.join(HERE, "data", "running_scale.rein")


def close(a, b, tol=TOL):
    return abs(float(a) - float(b)) <= tol + tol * abs(float(b))


def assert_close_t(tc, got, want, what, tol=TOL):
    got, want = torch.as_tensor(got, dtype=torch.float64), torch.as_tensor(want, dtype=torch.float64)
    tc.assertEqual(tuple(got.shape), tuple(want.shape), what)
    err = (got - want).abs() - tol * want.abs()
    k = int(torch.argmax(err)) if err.numel() else 0
    tc.assertTrue(err.numel() == 0 or float(err.max()) <= tol,
                  "%s: entry %d is %r, want %r" % (what, k, float(got.reshape(-1)[k]), float(want.reshape(-1)[k])))


def make_batch(seed, sizes=(3, 2, 4, 3), T=9):
    """A padded batch of len(SIZES) groups; every value float32-exact (the binding reads float32),
    held as float64.  Lengths 0..T (one empty sequence); entropies continuous (no ties)."""
    g = torch.Generator().manual_seed(seed)
    B = sum(sizes)
    lens = torch.randint(1, T + 1, (B,), generator=g)
    lens[1] = 0
    lens[-1] = T
    mask = torch.arange(T)[None, :] < lens[:, None]
    f32 = lambda t: t.float().double()  # noqa: E731
    b = dict(
        mask=mask,
        group=torch.repeat_interleave(torch.arange(len(sizes)) * 7 + 3, torch.tensor(sizes)),
        logp=f32(-torch.rand(B, T, generator=g) * 2 - 0.01),
        entropy=f32(torch.rand(B, T, generator=g) * 3),
        old_logp=f32(-torch.rand(B, T, generator=g) * 2 - 0.01),
        ref_logp=f32(-torch.rand(B, T, generator=g) * 2 - 0.01),
        reward=f32(torch.randint(0, 2, (B,), generator=g).double() + torch.rand(B, generator=g) * 0.1),
    )
    return b


def rein_eval(source, b, fields=(), top=None, sets=(), uinputs=None, expect_rc=0):
    """`rein eval SOURCE` on padded batch B (token FIELDS and reward), top-level keys TOP,
    --set SETS, per-sequence user inputs UINPUTS {name: [S]}: the parsed JSON."""
    groups, cur, prev = [], None, None
    for s in range(b["mask"].shape[0]):
        gid = int(b["group"][s])
        if gid != prev:
            cur, prev = [], gid
            groups.append(cur)
        m = b["mask"][s]
        seq = {"reward": float(b["reward"][s])}
        for f in fields:
            seq[f] = [float(v) for v in b[f][s][m]]
        if uinputs:
            seq["inputs"] = {n: float(v[s]) for n, v in uinputs.items()}
        cur.append(seq)
    doc = dict(top or {})
    doc["groups"] = groups
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "batch.json")
        with open(path, "w") as f:
            json.dump(doc, f)
        cmd = [find_rein(), "eval", source, "--batch", path] + ["--set=%s=%r" % kv for kv in sets]
        p = subprocess.run(cmd, capture_output=True, text=True, env=_child_env())
    if p.returncode != expect_rc:
        raise AssertionError("%s: exit %d, want %d\n%s" % (" ".join(cmd), p.returncode, expect_rc, p.stderr))
    return json.loads(p.stdout), p.stderr


def flat_grad(nested):
    """rein eval's gradient [group][seq][token] as the batch's tokens in order."""
    return torch.tensor([t for grp in nested for seq in grp for t in seq], dtype=torch.float64)


def ngroups(b):
    return len(torch.unique_consecutive(b["group"]))


# ---- float64 PyTorch: the objectives written out here, independently of the compiler ----------

def torch_snis(logp, entropy, b, frac=0.2, beta=0.01, micro=None):
    """snis_topent's loss on padded LOGP/ENTROPY (differentiable), its metrics.  MICRO (a list
    of row slices): the statistics (mean w, the top entropy tokens) of each micro-batch on its
    own, as a naive micro-batched loop would compute them; the loss's own normalizer stays global."""
    m, group, reward = b["mask"], b["group"], b["reward"]
    B = m.shape[0]
    _, gidx = torch.unique_consecutive(group, return_inverse=True)
    G = int(gidx.max()) + 1
    cnt = torch.zeros(G, dtype=torch.float64).index_add_(0, gidx, torch.ones(B, dtype=torch.float64))
    gmean = torch.zeros(G, dtype=torch.float64).index_add_(0, gidx, reward) / cnt
    adv = (reward - gmean[gidx])[:, None]
    w = torch.exp((logp - b["old_logp"]).detach())
    e = entropy.detach()

    def stats(rows):
        mm = m[rows]
        wmean = w[rows][mm].mean()
        vals = e[rows][mm]
        k = math.ceil(frac * vals.numel() - 1e-9)
        top = torch.zeros(vals.numel(), dtype=torch.bool)
        top[torch.topk(vals, k).indices] = True
        grid = torch.zeros_like(mm)
        grid[mm] = top
        return wmean.expand(mm.shape), grid

    parts = [stats(r) for r in (micro or [slice(0, B)])]
    wmean = torch.cat([p[0] for p in parts])
    top = torch.cat([p[1] for p in parts])
    term = torch.where(top & m, w / wmean * adv * logp, torch.zeros_like(logp))
    loss = -term[m].sum() / B - beta * entropy[m].mean()
    return loss, {"top_frac": float(top[m].double().mean()), "w_mean": float(w[m].mean())}


def torch_kl_update(b, coef, kl_target=0.01, horizon=10000):
    m = b["mask"]
    d = (b["ref_logp"] - b["logp"])[m]
    kl = float((torch.exp(d) - d - 1).mean())
    return coef * (1 + min(max(kl / kl_target - 1, -0.2), 0.2) * m.shape[0] / horizon)


class Stats(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.obj = rein.Objective(SNIS)
        cls.b = make_batch(11)

    def two_pass(self, obj, b, k, packed=False):
        """Step.stat on the whole batch, then micro-batches of K groups, each with its own leaf
        tensors: the per-token gradients (batch order), the loss and metrics, the drift."""
        m = b["mask"]
        N = int(m.sum())
        gl, ge = torch.zeros(N, dtype=torch.float64), torch.zeros(N, dtype=torch.float64)
        if packed:
            lens = m.sum(1)
            kw = dict(offsets=torch.cat([torch.zeros(1, dtype=torch.int64), torch.cumsum(lens, 0)]),
                      old_logp=b["old_logp"][m])
            lp_all, en_all = b["logp"][m], b["entropy"][m]
        else:
            kw = dict(mask=m, old_logp=b["old_logp"])
            lp_all, en_all = b["logp"], b["entropy"]
        with obj.step(group=b["group"], reward=b["reward"], **kw) as s:
            self.assertTrue(s.needs_stats)
            s.stat(lp_all, en_all)
            for mb in s.split(k):
                sel = mb.tokens if packed else mb.rows
                lp = lp_all[sel].clone().requires_grad_()
                en = en_all[sel].clone().requires_grad_()
                if packed:
                    s.micro(lp, en, groups=mb.groups).backward()
                    gl[mb.tokens], ge[mb.tokens] = lp.grad, en.grad
                else:
                    s.micro(lp, en).backward()
                    gl[mb.tokens], ge[mb.tokens] = lp.grad[m[mb.rows]], en.grad[m[mb.rows]]
        return gl, ge, s.loss, s.metrics, s.stat_drift

    def test_two_pass_equals_rein_eval_and_torch(self):
        obj, b = self.obj, self.b
        ev, _ = rein_eval(SNIS, b, fields=("logp", "entropy", "old_logp"))
        lp = b["logp"].clone().requires_grad_()
        en = b["entropy"].clone().requires_grad_()
        tloss, tmetrics = torch_snis(lp, en, b)
        tloss.backward()
        m = b["mask"]
        want_l, want_e = lp.grad[m], en.grad[m]
        self.assertGreater(float(want_l.abs().max()), 1e-3)  # the selection is not empty
        assert_close_t(self, flat_grad(ev["grad"]["logp"]), want_l, "rein eval vs torch, d/d logp")
        assert_close_t(self, flat_grad(ev["grad"]["entropy"]), want_e, "rein eval vs torch, d/d entropy")
        self.assertTrue(close(ev["loss"], tloss), (ev["loss"], float(tloss)))
        first = None
        for packed in (False, True):
            for k in (1, 2, 3, ngroups(b)):
                gl, ge, loss, metrics, drift = self.two_pass(obj, b, k, packed)
                what = "%s, %d groups per micro-batch" % ("packed" if packed else "padded", k)
                assert_close_t(self, gl, flat_grad(ev["grad"]["logp"]), what + ": d/d logp vs rein eval")
                assert_close_t(self, ge, flat_grad(ev["grad"]["entropy"]), what + ": d/d entropy vs rein eval")
                assert_close_t(self, gl, want_l, what + ": d/d logp vs torch")
                self.assertTrue(close(loss, ev["loss"]) and close(loss, tloss), (what, loss, ev["loss"]))
                for name in ("top_frac", "w_mean"):
                    self.assertTrue(close(metrics[name], ev["metrics"][name]), (what, name))
                    self.assertTrue(close(metrics[name], tmetrics[name]), (what, name))
                self.assertEqual(drift, 0.0)
                if first is None:
                    first = (gl, ge, loss, metrics)
                else:  # the kernel's gradients are bit-identical for any split
                    self.assertTrue(torch.equal(gl, first[0]) and torch.equal(ge, first[1]), what)
                    self.assertEqual((loss, metrics), first[2:], what)
        # the one-call API runs the statistics itself
        lp2 = b["logp"].clone().requires_grad_()
        loss, metrics = obj(lp2, b["entropy"], mask=m, group=b["group"], old_logp=b["old_logp"],
                            reward=b["reward"])
        loss.backward()
        self.assertTrue(torch.equal(lp2.grad[m], first[0]))
        self.assertEqual(float(loss), first[2])

    def test_naive_statistics_differ(self):
        """What the statistics stage prevents: each micro-batch's own mean(w) and top 20%."""
        b = self.b
        rows = [slice(0, 3), slice(3, 5), slice(5, 9), slice(9, 12)]
        lp = b["logp"].clone().requires_grad_()
        torch_snis(lp, b["entropy"], b, micro=rows)[0].backward()
        naive = lp.grad[b["mask"]]
        gl = self.two_pass(self.obj, b, 1)[0]
        self.assertGreater(float((naive - gl).abs().max()), 1e-3)

    def test_training_loop(self):
        """A model's parameter gradient through the two-pass loop (forward-only pass for the
        statistics, then forward + backward per micro-batch) equals the whole batch's gradient of
        the PyTorch loss."""
        b = self.b
        B, T = b["mask"].shape
        V = 6
        torch.manual_seed(5)
        emb = torch.nn.Parameter(torch.randn(B, T, V, dtype=torch.float64))
        tokens = torch.randint(0, V, (B, T))

        def forward(rows):
            lsm = torch.log_softmax(emb[rows], -1)
            logp = lsm.gather(-1, tokens[rows].unsqueeze(-1)).squeeze(-1)
            return logp, -(lsm.exp() * lsm).sum(-1)

        lp, en = forward(slice(0, B))
        torch_snis(lp, en, b)[0].backward()
        want = emb.grad.clone()
        for k in (1, 3):
            emb.grad = None
            with self.obj.step(mask=b["mask"], group=b["group"], old_logp=b["old_logp"], reward=b["reward"]) as s:
                with torch.no_grad():
                    parts = [forward(mb.rows) for mb in s.split(k)]
                s.stat(torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts]))
                for mb in s.split(k):
                    s.micro(*forward(mb.rows)).backward()
            rel = float((emb.grad - want).norm() / want.norm())
            self.assertLess(rel, 1e-6, "%d groups per micro-batch" % k)

    def test_misuse(self):
        b, obj = self.b, self.obj
        kw = dict(mask=b["mask"], group=b["group"], old_logp=b["old_logp"], reward=b["reward"])
        with obj.step(**kw) as s:
            with self.assertRaisesRegex(rein.ReinError, "has a statistics stage: call stat"):
                s.micro(b["logp"][:3], b["entropy"][:3])
            with self.assertRaisesRegex(TypeError, "reads `entropy`: pass entropy=... to stat"):
                s.stat(b["logp"])
            with self.assertRaisesRegex(ValueError, r"logp: expected shape \[12, 9\] \(the batch"):
                s.stat(b["logp"][:3], b["entropy"][:3])
            bad = b["logp"].clone()
            bad[2, 0] = 0.5
            with self.assertRaisesRegex(ValueError, r"logp: 1 value is positive .* at \[2, 0\]"):
                s.stat(bad, b["entropy"])
            s.stat(b["logp"], b["entropy"])
            with self.assertRaisesRegex(rein.ReinError, "once per step"):
                s.stat(b["logp"], b["entropy"])
            for mb in s.split(2):  # a micro-batch whose logp moved since stat(): reported
                s.micro(b["logp"][mb.rows] - 0.25, b["entropy"][mb.rows])
        self.assertAlmostEqual(s.stat_drift, 0.25, places=6)
        with self.assertRaisesRegex(rein.ReinError, "no step open"):
            s.stat(b["logp"], b["entropy"])
        # an objective without a statistics stage accepts stat() and ignores it
        grpo = rein.Objective("std:grpo")
        self.assertFalse(grpo.needs_stats)
        with grpo.step(**kw) as s:
            s.stat(b["logp"], None)
            s.micro(b["logp"])
        self.assertTrue(math.isfinite(s.loss))


class State(unittest.TestCase):
    def test_adaptive_kl(self):
        obj = rein.Objective(PPO_KL)
        self.assertEqual(obj.states, {"kl_coef": 0.1})
        self.assertEqual(obj.state_init, {"kl_coef": 0.1})
        self.assertEqual(obj.trainer, {"max_new": None})
        self.assertEqual(sorted(obj.metrics), ["clip_frac", "kl_ref"])  # the update is not a metric
        fields = ("logp", "old_logp", "ref_logp")
        coef = 0.1
        for step, seed in enumerate((21, 22)):
            b = make_batch(seed)
            kw = dict(mask=b["mask"], group=b["group"], old_logp=b["old_logp"], ref_logp=b["ref_logp"],
                      reward=b["reward"], max_new=12)
            self.assertEqual(obj.states["kl_coef"], coef)
            ev, _ = rein_eval(PPO_KL, b, fields, top={"max_new": 12}, sets=[("kl_coef", coef)] if step else [])
            lp = b["logp"].clone().requires_grad_()
            loss, metrics = obj(lp, **kw)
            loss.backward()
            want = torch_kl_update(b, coef)
            self.assertNotEqual(want, coef)
            self.assertTrue(close(obj.last_state["kl_coef"], ev["state"]["kl_coef"]), (obj.last_state, ev["state"]))
            self.assertTrue(close(obj.last_state["kl_coef"], want), (obj.last_state, want))
            self.assertTrue(close(loss, ev["loss"]))
            for name in obj.metrics:
                self.assertTrue(close(metrics[name], ev["metrics"][name]), name)
            assert_close_t(self, lp.grad[b["mask"]], flat_grad(ev["grad"]["logp"]), "d/d logp, step %d" % step)
            self.assertEqual(obj.states, obj.last_state)  # advanced: the next step reads the update
            # the staged step reads the same state and gives the same update, without advancing
            prev = dict(obj.states)
            obj.set(kl_coef=coef)
            with obj.step(advance_states=False, **kw) as s:
                for mb in s.split(2):
                    s.micro(b["logp"][mb.rows])
            self.assertEqual(s.state_used, {"kl_coef": coef})
            self.assertEqual(s.state, prev)
            self.assertEqual(obj.states, {"kl_coef": coef})
            obj.set(kl_coef=prev["kl_coef"])
            coef = prev["kl_coef"]
        obj.reset_states()
        self.assertEqual(obj.states, {"kl_coef": 0.1})

    def test_trainer_constants_and_user_inputs(self):
        obj = rein.Objective(SCALE)
        self.assertEqual(obj.trainer, {"group_size": None, "step": None})
        self.assertEqual(obj.uinputs, {"bonus": 1})
        b = make_batch(31)
        bonus = torch.linspace(-0.5, 0.5, b["mask"].shape[0]).float()
        kw = dict(mask=b["mask"], group=b["group"], reward=b["reward"])
        lp = b["logp"]
        with self.assertRaisesRegex(TypeError, "reads the trainer constant `group_size`, which this step lacks: "
                                    r"pass group_size=N .* obj.set\(group_size=N\)"):
            obj(lp, bonus=bonus, step=3, **kw)
        with self.assertRaisesRegex(TypeError, r"reads the trainer constant `step`, which this step lacks: pass "
                                    r"step=N \(the 1-based training step\)"):
            obj(lp, bonus=bonus, group_size=3, **kw)
        with self.assertRaisesRegex(TypeError, r"running_scale reads `bonus`: pass bonus=\.\.\. \(one value per "
                                    "sequence\\)"):
            obj(lp, step=3, group_size=3, **kw)
        with self.assertRaisesRegex(TypeError, "unknown input `bonsu` .*trainer constants: group_size, step"):
            obj(lp, step=3, group_size=3, bonus=bonus, bonsu=bonus, **kw)
        with self.assertRaisesRegex(ValueError, "trainer constant group_size: must be a finite float32 value"):
            obj.set(group_size=float("inf"))
        with self.assertRaisesRegex(TypeError, r"has no param `scal` \(params: decay; states: scale; trainer "
                                    "constants: group_size, step\\)"):
            obj.set(scal=2)
        obj.set(group_size=3, scale=1.5)
        out = {}
        for k in (0, 1):  # the one-call API, and the staged step with keywords
            if k == 0:
                loss, metrics = obj(lp, step=3, bonus=bonus, advance_states=False, **kw)
                out[k] = (float(loss), metrics, obj.last_state)
            else:
                with obj.step(step=3, bonus=bonus, advance_states=False, **kw) as s:
                    for mb in s.split(1):
                        s.micro(lp[mb.rows])
                out[k] = (s.loss, s.metrics, s.state)
        self.assertEqual(out[0], out[1])
        self.assertEqual(obj.states, {"scale": 1.5})
        ev, _ = rein_eval(SCALE, b, ("logp",), top={"step": 3, "group_size": 3}, sets=[("scale", 1.5)],
                          uinputs={"bonus": bonus})
        self.assertTrue(close(out[0][0], ev["loss"]))
        self.assertEqual(out[0][1]["at_step"], 3.0)
        self.assertTrue(close(out[0][2]["scale"], ev["state"]["scale"]))
        r = b["reward"] + bonus.double()  # a sequence-level value: its batch mean is over sequences
        self.assertTrue(close(out[0][2]["scale"], 0.9 * 1.5 + 0.1 * float(torch.exp(r).mean())))
        # an update that overflows: an error, and the state keeps its value
        big = b["reward"] + 800
        with self.assertRaisesRegex(rein.ReinError, r"the update of state `scale` is not finite \(inf\); the "
                                    "state keeps its value 1.5"):
            obj(lp, step=3, bonus=bonus, mask=b["mask"], group=b["group"], reward=big)
        self.assertEqual(obj.states, {"scale": 1.5})
        self.assertEqual(obj.last_state["scale"], float("inf"))
        # and the objective is still usable
        obj(lp, step=4, bonus=bonus, **kw)
        self.assertTrue(close(obj.states["scale"], ev["state"]["scale"]))


if __name__ == "__main__":
    unittest.main(verbosity=2)
