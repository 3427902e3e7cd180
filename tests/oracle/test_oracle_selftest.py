"""Self-test of the PyTorch oracle (no rein needed).

Checks torch_objectives.py against the hand-computed golden numbers of algorithms.md section 9
(G1 advantages, G2 per-token losses and gradients, G3 mask truth table) and against the derived
identities of sections 3.3 and peer-losses.md (GRPO's gradient equals REC-OneSide-IS's; the GSPO
direct-form gradient), so that a wrong oracle cannot pass rein off as right.

Run: /usr/bin/python3 tests/oracle/test_oracle_selftest.py
"""

import math
import os
import random
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import torch  # noqa: E402

import torch_objectives as O  # noqa: E402

DT = torch.float64


def t(x):
    return torch.tensor(x, dtype=DT)


# G2 inputs: one response with 3 tokens, the third masked out.
G2_MASK = t([[1.0, 1.0, 0.0]])
G2_L = [[-1.0, -2.0, -0.5]]
G2_B = t([[-1.1, -1.5, -0.5]])


def g2(A, eps=1e-8, **kw):
    """Loss, clipfrac and d loss / d logp of the inner REC function on the G2 tokens."""
    logp = t(G2_L).requires_grad_(True)
    At = torch.full((1, 3), float(A), dtype=DT)
    loss, cf = O.rec_loss(At, logp, G2_B, G2_MASK, eps=eps, **kw)
    (g,) = torch.autograd.grad(loss, [logp])
    return float(loss), float(cf), [float(x) for x in g[0]]


class G1Advantages(unittest.TestCase):
    r = t([1, 0, 0, 0, 1, 0, 0, 0])
    grp = torch.zeros(8, dtype=torch.long)

    def test_mean_baseline(self):
        A = O.adv_mean_baseline(self.r, self.grp, 1)
        for i, a in enumerate(A.tolist()):
            self.assertAlmostEqual(a, 0.75 if self.r[i] == 1 else -0.25, places=15)

    def test_population_std(self):
        s = O.group_std(self.r, self.grp, 1, ddof=0)
        self.assertAlmostEqual(float(s[0]), 0.4330127019, places=10)
        A = O.adv_zscore(self.r, self.grp, 1, eps=1e-6, ddof=0)
        self.assertAlmostEqual(float(A[0]), 1.7320468076, places=9)
        self.assertAlmostEqual(float(A[1]), -0.5773489359, places=9)

    def test_bessel_std(self):
        s = O.group_std(self.r, self.grp, 1, ddof=1)
        self.assertAlmostEqual(float(s[0]), 0.4629100499, places=10)
        A = O.adv_zscore(self.r, self.grp, 1, eps=1e-6, ddof=1)
        self.assertAlmostEqual(float(A[0]), 1.6201816746, places=9)
        self.assertAlmostEqual(float(A[1]), -0.5400605582, places=9)

    def test_red_weight_coefficient(self):
        # -Atilde*logp with logp = -1 is Atilde = A*exp(A/T)
        A = O.adv_mean_baseline(self.r, self.grp, 1).unsqueeze(1)
        logp = torch.full((8, 1), -1.0, dtype=DT)
        L, M = O.rec_token_terms(A, logp, logp, weight="advantage", T=1.0)
        self.assertAlmostEqual(float(L[0, 0]), 1.5877500125, places=9)
        self.assertAlmostEqual(float(L[1, 0]), -0.1947001958, places=9)
        self.assertAlmostEqual(float(L.sum()), 2.0072988503, places=9)
        self.assertTrue(bool(M.all()))

    def test_singleton_and_equal_groups(self):
        r = t([0.7, 0.5, 0.5, 0.5, 1.0, 0.0])
        grp = torch.tensor([0, 1, 1, 1, 2, 2])
        self.assertEqual(O.adv_mean_baseline(r, grp, 3).tolist()[:4], [0.0] * 4)
        self.assertEqual(O.adv_zscore(r, grp, 3).tolist()[:4], [0.0] * 4)
        self.assertEqual(O.group_std(r, grp, 3, ddof=1).tolist()[0], 0.0)
        self.assertAlmostEqual(float(O.adv_zscore(r, grp, 3)[4]), 0.5 / (0.5 + 1e-6), places=12)


class G2PerToken(unittest.TestCase):
    rho = [math.exp(0.1), math.exp(-0.5), 1.0]

    def test_ratios(self):
        self.assertAlmostEqual(self.rho[0], 1.1051709181, places=10)
        self.assertAlmostEqual(self.rho[1], 0.6065306597, places=10)

    def check(self, A, expect_loss, expect_cf, exact=None, places=9, **kw):
        """expect_loss: the table's value (with the code's +1e-8; rows printed in short form,
        e.g. 0.375, are compared to 8 places); exact: the value with Rein's exact sum / N."""
        loss, cf, _ = g2(A, eps=1e-8, **kw)
        self.assertAlmostEqual(loss, expect_loss, places=places)
        self.assertAlmostEqual(cf, expect_cf, places=8)
        loss0, cf0, _ = g2(A, eps=0.0, **kw)  # Rein's token-mean: exactly sum / N
        self.assertAlmostEqual(cf0, expect_cf, places=14)
        if exact is not None:
            self.assertAlmostEqual(loss0, exact, places=13)

    def test_reinforce(self):
        self.check(0.75, 1.124999994, 0.0, exact=1.125)
        self.check(-0.25, -0.375, 0.0, exact=-0.375, places=8)

    def test_oneside_nois(self):
        self.check(0.75, 1.124999994, 0.0, exact=1.125, clip_mode="one-side")
        self.check(-0.25, -0.125, 0.5, exact=-0.125, places=8, clip_mode="one-side")

    def test_twoside_nois(self):
        self.check(0.75, 0.375, 0.5, exact=0.375, places=8, clip_mode="two-side")

    def test_oneside_is(self):
        exact = 0.75 * (self.rho[0] * 1.0 + self.rho[1] * 2.0) / 2
        self.check(0.75, 0.8693370847, 0.0, exact=exact, clip_mode="one-side",
                   weight="importance_sampling")

    def test_ring_nois(self):
        self.check(0.75, 0.375, 0.5, exact=0.375, places=8, clip_mode="ring", eps_low2=0.6, eps_high2=2.0)

    def test_regularizers(self):
        base, _, _ = g2(0.75, eps=0.0, clip_mode="one-side")
        k2, _, _ = g2(0.75, eps=0.0, clip_mode="one-side", regularizer="k2", c=0.1)
        fkl, _, _ = g2(0.75, eps=0.0, clip_mode="one-side", regularizer="forward-kl", c=0.1)
        self.assertAlmostEqual(k2 - base, 0.013, places=12)
        self.assertAlmostEqual(fkl - base, 0.15, places=12)
        # the regulariser is not masked: the same on the two-side row where token 2 is masked
        b2, _, _ = g2(0.75, eps=0.0, clip_mode="two-side")
        k2b, _, _ = g2(0.75, eps=0.0, clip_mode="two-side", regularizer="k2", c=0.1)
        self.assertAlmostEqual(k2b - b2, 0.013, places=12)

    def test_red_weight(self):
        self.check(0.75, 2.3816250068, 0.0, exact=0.75 * math.exp(0.75) * 1.5,
                   weight="advantage", T=1.0)

    def test_gradients(self):
        _, _, g = g2(0.75, eps=0.0, clip_mode="one-side")
        for a, b in zip(g, [-0.375, -0.375, 0.0]):
            self.assertAlmostEqual(a, b, places=14)
        _, _, g = g2(0.75, eps=0.0, clip_mode="one-side", regularizer="k2", c=0.1)
        for a, b in zip(g, [-0.365, -0.425, 0.0]):
            self.assertAlmostEqual(a, b, places=14)

    def test_whole_path_through_evaluate(self):
        # The G2 response as sequence 0 of a 4-sequence group whose other members have no
        # tokens: A = 1 - 0.25 = 0.75, N = 2 tokens.
        seq = {"reward": 1.0, "logp": [-1.0, -2.0], "old_logp": [-1.1, -1.5],
               "ref_logp": [-1.0, -1.0], "entropy": [0.5, 0.5], "truncated": False, "lag": 0}
        empty = {"reward": 0.0, "logp": [], "old_logp": [], "ref_logp": [], "entropy": [],
                 "truncated": False, "lag": 0}
        batch = {"seed": 1, "step": 0, "groups": [[seq, dict(empty), dict(empty), dict(empty)]]}
        out = O.evaluate("rec_oneside_nois", batch)
        self.assertAlmostEqual(out["loss"], 1.125, places=13)
        self.assertEqual(out["metrics"], {"clip_frac": 0.0})
        self.assertEqual(out["grad"]["logp"][0][1:], [[], [], []])
        for a, b in zip(out["grad"]["logp"][0][0], [-0.375, -0.375]):
            self.assertAlmostEqual(a, b, places=14)
        self.assertEqual(out["grad"]["entropy"][0][0], [0.0, 0.0])
        self.assertAlmostEqual(O.evaluate("rec_oneside_is", batch)["loss"],
                               0.75 * (self.rho[0] + 2 * self.rho[1]) / 2, places=13)
        out = O.evaluate("rec_ring_nois", batch)
        self.assertAlmostEqual(out["loss"], 0.375, places=13)
        self.assertAlmostEqual(out["metrics"]["clip_frac"], 0.5, places=13)
        self.assertAlmostEqual(out["metrics"]["ratio_mean"], (self.rho[0] + self.rho[1]) / 2,
                               places=13)
        self.assertAlmostEqual(O.evaluate("opmd", batch)["loss"], 1.125 + 0.013, places=13)
        self.assertAlmostEqual(O.evaluate("asymre", batch)["loss"], 1.125 + 0.15, places=13)
        self.assertAlmostEqual(O.evaluate("red_weight", batch)["loss"],
                               0.75 * math.exp(0.75) * 1.5, places=12)
        # A = -0.25: move the tokens to a reward-0 sequence of the same group
        seq0 = dict(seq, reward=0.0)
        batch = {"groups": [[dict(empty, reward=1.0), seq0, dict(empty), dict(empty)]]}
        out = O.evaluate("rec_oneside_nois", batch)
        self.assertAlmostEqual(out["loss"], -0.125, places=13)
        self.assertAlmostEqual(out["metrics"]["clip_frac"], 0.5, places=13)
        self.assertAlmostEqual(O.evaluate("reinforce", batch)["loss"], -0.375, places=13)
        out = O.evaluate("opmd", batch, {"c": 0.2})
        self.assertAlmostEqual(out["loss"], -0.375 + 0.026, places=13)


class G3MaskTable(unittest.TestCase):
    # rho: (one A>0, one A<0, two-side, ring A>0, ring A<0, wide one-side A>0, wide A<0)
    TABLE = {
        0.3: "KXXKXKX",
        0.5: "KXXXXKK",
        0.9: "KKKKKKK",
        1.1: "KKKKKKK",
        1.5: "XKXXXKK",
        3.5: "XKXXKXK",
    }

    def test_table(self):
        for rho, row in self.TABLE.items():
            r = t([rho])
            pos, neg = t([0.75]), t([-0.25])
            got = [
                O.keep_one_side(pos, r, 0.2, 0.2), O.keep_one_side(neg, r, 0.2, 0.2),
                O.keep_two_side(pos, r, 0.2, 0.2),
                O.keep_ring(pos, r, 0.2, 0.2, 0.6, 2.0), O.keep_ring(neg, r, 0.2, 0.2, 0.6, 2.0),
                O.keep_one_side(pos, r, 0.6, 2.0), O.keep_one_side(neg, r, 0.6, 2.0),
            ]
            self.assertEqual("".join("K" if bool(g[0]) else "X" for g in got), row, rho)
            self.assertEqual(bool(O.keep_two_side(neg, r, 0.2, 0.2)[0]), row[2] == "K")

    def test_zero_advantage_and_inclusive_bounds(self):
        z = t([0.0])
        for rho in (0.1, 0.5, 1.0, 2.0, 10.0):
            self.assertTrue(bool(O.keep_one_side(z, t([rho]), 0.2, 0.2)[0]))
        # ring with A = 0: kept iff in [0.8, 1.2] or <= 0.4 or >= 3.0
        for rho, k in ((0.3, True), (0.5, False), (1.0, True), (2.0, False), (3.5, True)):
            self.assertEqual(bool(O.keep_ring(z, t([rho]), 0.2, 0.2, 0.6, 2.0)[0]), k, rho)
        # inclusive comparisons (exact binary boundaries)
        self.assertTrue(bool(O.keep_one_side(t([1.0]), t([1.25]), 0.25, 0.25)[0]))
        self.assertTrue(bool(O.keep_one_side(t([-1.0]), t([0.75]), 0.25, 0.25)[0]))
        self.assertTrue(bool(O.keep_two_side(t([1.0]), t([0.75]), 0.25, 0.25)[0]))
        self.assertTrue(bool(O.keep_ring(t([1.0]), t([0.5]), 0.25, 0.25, 0.5, 2.0)[0]))
        self.assertTrue(bool(O.keep_ring(t([-1.0]), t([3.0]), 0.25, 0.25, 0.5, 2.0)[0]))


def random_batch(seed, n_groups=4):
    rng = random.Random(seed)
    groups = []
    for _ in range(n_groups):
        grp = []
        for _ in range(rng.randint(1, 6)):
            n = rng.randint(0, 7)
            lp = [-rng.uniform(0.05, 3.0) for _ in range(n)]
            grp.append({"reward": rng.choice([0.0, 1.0, rng.uniform(-1, 2)]),
                        "logp": lp,
                        "old_logp": [x - rng.uniform(-1.5, 1.4) for x in lp],
                        "ref_logp": [-rng.uniform(0.05, 3.0) for _ in range(n)],
                        "entropy": [rng.uniform(0, 3) for _ in range(n)],
                        "truncated": rng.random() < 0.3, "lag": 0})
        groups.append(grp)
    return {"groups": groups}


class DerivedIdentities(unittest.TestCase):
    def test_grpo_gradient_equals_rec_oneside_is(self):
        """algorithms.md 3.3: the PPO-clip surrogate (rho not detached) has exactly the gradient
        of REC-OneSide-IS with the same advantage; the loss values differ."""
        for seed in range(5):
            P = O.Padded(random_batch(seed))
            A = P.tok(O.adv_zscore(P.reward, P.group, P.n_groups))
            L = O.ppo_clip_token_loss(A, P.logp, P.old_logp, 0.2, 0.2)
            (g1,) = torch.autograd.grad(O.token_mean(L, P.mask), [P.logp])
            loss2, _ = O.rec_loss(A, P.logp, P.old_logp, P.mask, clip_mode="one-side",
                                  weight="importance_sampling")
            (g2_,) = torch.autograd.grad(loss2, [P.logp])
            self.assertTrue(torch.allclose(g1 * P.mask, g2_ * P.mask, rtol=1e-12, atol=1e-15))
            self.assertGreater(float((g1 * P.mask).abs().sum()), 0.0)

    def test_grpo_value(self):
        P = O.Padded(random_batch(11))
        A = P.tok(O.adv_zscore(P.reward, P.group, P.n_groups)).detach()
        rho = torch.exp(P.logp - P.old_logp).detach()
        # max(-A rho, -A clip(rho)) written per case
        clipped = torch.clamp(rho, 0.8, 1.2)
        expect = (torch.maximum(-A * rho, -A * clipped) * P.mask).sum() / P.mask.sum()
        out = O.evaluate("grpo", random_batch(11))
        self.assertAlmostEqual(out["loss"], float(expect), places=12)

    def test_gspo_gradient(self):
        """d/dl_{i,t} of -(1/B) sum_i min(s_i A_i, clip(s_i) A_i) = -(1/B) A_i s_i / |y_i| when
        the unclipped branch is the minimum (or s is inside the band), else 0."""
        el, eh = 0.05, 0.08
        for seed in range(5):
            b = random_batch(100 + seed)
            rng = random.Random(seed)
            for grp in b["groups"]:
                for sq in grp:  # sequence ratios near 1, so that every branch occurs
                    sq["old_logp"] = [x - rng.uniform(-0.12, 0.12) for x in sq["logp"]]
            out = O.evaluate("gspo", b, {"eps_low": el, "eps_high": eh})
            P = O.Padded(b)
            A = O.adv_zscore(P.reward, P.group, P.n_groups)
            s = O.gspo_seq_ratio(P.logp, P.old_logp, P.mask, P.lengths).detach()
            inside = (s >= 1 - el) & (s <= 1 + eh)
            unclipped_min = (s * A) <= (torch.clamp(s, 1 - el, 1 + eh) * A)
            active = inside | unclipped_min
            for i, (g, j) in enumerate(P.index):
                n = int(P.lengths[i])
                exp_g = -float(A[i] * s[i]) / n / P.S if (n and bool(active[i])) else 0.0
                for x in out["grad"]["logp"][g][j]:
                    self.assertAlmostEqual(x, exp_g, places=13)
            self.assertEqual(out["metrics"]["long_frac"], 0.0)
            nt = [len(s_["logp"]) for grp in b["groups"] for s_ in grp if not s_["truncated"]]
            self.assertAlmostEqual(out["metrics"]["mean_tokens"],
                                   sum(nt) / len(nt) if nt else 0.0, places=13)
            self.assertAlmostEqual(out["metrics"]["seq_clip_frac"],
                                   float((~inside).to(DT).mean()), places=13)

    def test_entropy_gradient(self):
        b = random_batch(7)
        out = O.evaluate("opmd_kl", b, {"ent_coef": 0.01})
        N = sum(len(s["logp"]) for grp in b["groups"] for s in grp)
        for grp in out["grad"]["entropy"]:
            for seq in grp:
                for x in seq:
                    self.assertAlmostEqual(x, -0.01 / N, places=15)
        out = O.evaluate("opmd", b)
        self.assertTrue(all(x == 0.0 for grp in out["grad"]["entropy"] for s in grp for x in s))

    def test_reinforce_gradient_closed_form(self):
        b = random_batch(3)
        out = O.evaluate("reinforce", b)
        P = O.Padded(b)
        A = O.adv_mean_baseline(P.reward, P.group, P.n_groups)
        N = float(P.mask.sum())
        for i, (g, j) in enumerate(P.index):
            for x in out["grad"]["logp"][g][j]:
                self.assertAlmostEqual(x, -float(A[i]) / N, places=14)

    def test_empty_batch(self):
        b = {"groups": [[{"reward": 1.0, "logp": [], "old_logp": []}]]}
        out = O.evaluate("reinforce", b)
        self.assertEqual(out["loss"], 0.0)
        self.assertEqual(out["grad"]["logp"], [[[]]])


class RunnerMachinery(unittest.TestCase):
    """run_oracle's generator and comparison, without rein: the comparison must catch a
    perturbed gradient, a missing token, an extra metric and a printed NaN."""

    def setUp(self):
        import run_oracle
        self.R = run_oracle
        rb, sb = run_oracle.bounds_for([("rec_ring_nois", O.OBJECTIVES["rec_ring_nois"][1]),
                                        ("gspo", O.OBJECTIVES["gspo"][1])])
        self.batch = run_oracle.Gen(7, "token", rb, sb).batch(0)
        self.gbatch = run_oracle.Gen(8, "gspo", rb, sb).batch(0)
        self.rb, self.sb = rb, sb

    def test_inputs_are_float32_and_away_from_boundaries(self):
        import numpy as np
        for grp in self.batch["groups"]:
            for s in grp:
                for field in ("logp", "old_logp", "ref_logp", "entropy"):
                    for x in s[field]:
                        self.assertEqual(float(np.float32(x)), x)
                for a, b in zip(s["logp"], s["old_logp"]):
                    self.assertTrue(all(abs((a - b) - math.log(r)) >= self.R.MARGIN
                                        for r in self.rb))
        # batch 0 alone already holds every ratio region for both signs of A
        missing = self.R.coverage([(0, self.batch)], "rec_ring_nois")
        self.assertFalse([m for m in missing if m.startswith("rho")], missing)
        missing = self.R.coverage([(0, self.gbatch)], "gspo")
        self.assertFalse([m for m in missing if "inside" in m], missing)

    def compare(self, got, want):
        return self.R.compare(got, want, self.R.Stats(), 1e-6, 1e-6)

    def test_compare(self):
        import copy
        want = O.evaluate("rec_ring_nois", self.batch)
        self.assertEqual(self.compare(copy.deepcopy(want), want), [])
        g, s, t = next((g, s, t) for g, grp in enumerate(want["grad"]["logp"])
                       for s, seq in enumerate(grp) for t, x in enumerate(seq) if abs(x) > 1e-3)
        got = copy.deepcopy(want)
        got["grad"]["logp"][g][s][t] *= 1.01
        (msg,) = self.compare(got, want)
        self.assertIn("grad.logp[group %d][seq %d][token %d]" % (g, s, t), msg)
        got = copy.deepcopy(want)
        got["grad"]["entropy"][2][1][3] = 1e-5
        self.assertEqual(len(self.compare(got, want)), 1)
        got = copy.deepcopy(want)
        got["grad"]["logp"][2][1].pop()
        self.assertIn("tokens", self.compare(got, want)[0])
        got = copy.deepcopy(want)
        got["metrics"]["other"] = 0.0
        self.assertIn("metrics", self.compare(got, want)[0])
        got = copy.deepcopy(want)
        got["loss"] = self.R.parse_nums("nan")
        self.assertIn("loss", self.compare(got, want)[0])
        got = copy.deepcopy(want)
        got["metrics"]["clip_frac"] += 2e-6
        self.assertIn("metrics.clip_frac", self.compare(got, want)[0])


class Tolerance(unittest.TestCase):
    def test_is_close(self):
        self.assertTrue(O.is_close(1.0 + 1.5e-6, 1.0))
        self.assertFalse(O.is_close(1.0 + 3e-6, 1.0))
        self.assertTrue(O.is_close(float("nan"), float("nan")))
        self.assertFalse(O.is_close(0.0, float("nan")))
        self.assertTrue(O.is_close(float("inf"), float("inf")))
        self.assertFalse(O.is_close(float("-inf"), float("inf")))


if __name__ == "__main__":
    unittest.main()
