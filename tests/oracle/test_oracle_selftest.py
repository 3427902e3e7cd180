"""Self-test of the PyTorch oracle (no rein needed).

Checks torch_objectives.py against the hand-computed numbers of docs/algorithms.md ("Hand-computed
checks": G1 advantages, G2 per-token losses and gradients, G3 mask truth table) and against the
derived identities of its REC and peer sections (GRPO's gradient equals REC-OneSide-IS's with the
same advantage, away from the dual clip; the GSPO
direct-form gradient), and the tutorial's oracles on hand-worked cases, so that a wrong oracle
cannot pass rein off as right.

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

    def test_verl_grpo_advantage(self):
        # peer-losses 2.4 (verl): a group of one takes mean 0 and std 1; others the mean and the
        # Bessel std.  Group 1 {1, 0}: mean 0.5, std sqrt(0.5); group 2 {0.5, 0.5, 0.5}: A = 0.
        r = t([0.7, 1.0, 0.0, 0.5, 0.5, 0.5])
        grp = torch.tensor([0, 1, 1, 2, 2, 2])
        A = O.adv_verl_grpo(r, grp, 3).tolist()
        self.assertAlmostEqual(A[0], 0.7 / 1.000001, places=14)
        self.assertAlmostEqual(A[1], 0.5 / (math.sqrt(0.5) + 1e-6), places=13)
        self.assertAlmostEqual(A[2], -0.5 / (math.sqrt(0.5) + 1e-6), places=13)
        self.assertEqual(A[3:], [0.0] * 3)
        self.assertEqual(O.adv_verl_grpo(r, grp, 3, norm_by_std=False).tolist(),
                         [0.7, 0.5, -0.5, 0.0, 0.0, 0.0])


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
        out = O.evaluate("ex_rec_ring_nois", batch)
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
        """Trinity's ppo loss written per case: max(-A rho, -A clip(rho)), and for A < 0 at most
        -3A (the dual clip)."""
        P = O.Padded(random_batch(11))
        A = P.tok(O.adv_zscore(P.reward, P.group, P.n_groups)).detach()
        rho = torch.exp(P.logp - P.old_logp).detach()
        clipped = torch.clamp(rho, 0.8, 1.2)
        L = torch.maximum(-A * rho, -A * clipped)
        L = torch.where(A < 0, torch.minimum(L, -3.0 * A), L)
        expect = (L * P.mask).sum() / P.mask.sum()
        out = O.evaluate("grpo", random_batch(11))
        self.assertAlmostEqual(out["loss"], float(expect), places=12)
        # the batch must exercise the dual clip, or the case above is not tested
        self.assertGreater(float((((A < 0) & (rho > 3.0)).to(A.dtype) * P.mask).sum()), 0.0)

    def test_grpo_gradient_is_rec_oneside_is_without_dual_clip(self):
        """GRPO's gradient is REC-OneSide-IS's except on A < 0 tokens with rho > 3, where GRPO's
        is zero (the dual clip) and REC-OneSide-IS's is not."""
        for seed in range(5):
            P = O.Padded(random_batch(seed))
            loss, _ = O.OBJECTIVES["grpo"][0](P, dict(O.REC_P, clip_c=3.0))
            (g1,) = torch.autograd.grad(loss, [P.logp])
            A = P.tok(O.adv_zscore(P.reward, P.group, P.n_groups))
            loss2, _ = O.rec_loss(A, P.logp, P.old_logp, P.mask, clip_mode="one-side",
                                  weight="importance_sampling")
            (g2,) = torch.autograd.grad(loss2, [P.logp])
            rho = torch.exp(P.logp - P.old_logp).detach()
            dual = ((A < 0) & (rho > 3.0)).detach() & (P.mask > 0)
            same = (P.mask > 0) & ~dual
            self.assertTrue(torch.allclose(g1[same], g2[same], rtol=1e-12, atol=1e-15))
            self.assertTrue(bool((g1[dual] == 0).all()))
            if bool(dual.any()):
                self.assertGreater(float(g2[dual].abs().sum()), 0.0)

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
            out = O.evaluate("ex_gspo", b, {"eps_low": el, "eps_high": eh})
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
        out = O.evaluate("ex_opmd_kl", b, {"ent_coef": 0.01})
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


def on_policy(b, roll=False):
    """The batch with old_logp := logp (r = 1 everywhere) and, with roll, rollout_logp := old_logp."""
    for grp in b["groups"]:
        for sq in grp:
            sq["old_logp"] = list(sq["logp"])
            if roll:
                sq["rollout_logp"] = list(sq["logp"])
    return b


def with_roll(b, seed):
    rng = random.Random(seed)
    for grp in b["groups"]:
        for sq in grp:
            sq["rollout_logp"] = [x - rng.uniform(-1.6, 1.6) for x in sq["old_logp"]]
    return b


def grad_logp(out):
    return [x for grp in out["grad"]["logp"] for sq in grp for x in sq]


def per_token(P, f):
    """[f(i) for every token of every sequence i], in the order of grad_logp."""
    return [f(i) for i in range(P.S) for _ in range(int(P.lengths[i]))]


class PeerIdentities(unittest.TestCase):
    """Closed forms of the objectives of docs/objectives.md that peer-losses.md adds."""

    def assertListClose(self, got, want, places=13):
        self.assertEqual(len(got), len(want))
        for a, b in zip(got, want):
            self.assertAlmostEqual(a, b, places=places)

    def test_on_policy_token_mean_gradients(self):
        """r = 1: every PPO-style token-mean loss (dual clip, DAPO, CISPO both, TIS and MIS with
        roll = old) has the policy-gradient gradient -A_z1/N (peer-losses 2.1: 'the gradient
        equals the PG gradient on-policy')."""
        for seed in range(4):
            b = on_policy(random_batch(200 + seed), roll=True)
            P = O.Padded(b)
            A = O.adv_verl_grpo(P.reward, P.group, P.n_groups)
            N = float(P.mask.sum())
            want = per_token(P, lambda i: -float(A[i]) / N)
            for name in ("ppo_dual_clip", "dapo", "cispo", "cispo_trl", "ppo_tis", "ppo_mis"):
                out = O.evaluate(name, b)
                self.assertListClose(grad_logp(out), want)
                self.assertEqual(set(out["metrics"].values()) - {0.0}, set(), name)
            # the loss values: -A*r = -A (PPO family), -A*logp (CISPO)
            self.assertAlmostEqual(O.evaluate("dapo", b)["loss"],
                                   float(O.token_mean(-P.tok(A), P.mask)), places=13)
            self.assertAlmostEqual(O.evaluate("cispo", b)["loss"],
                                   float(O.token_mean(-P.tok(A) * P.logp.detach(), P.mask)),
                                   places=13)

    def test_on_policy_sequence_gradients(self):
        """r = 1, so s_i = R_i = 1: GSPO and GMPO give -A_z1/(S*|y_i|), GSPO's stop-gradient
        form and SAPO (f'(1) = 1) -A_z1/(B*|y_i|) with B the sequences that have tokens (verl's
        seq-mean); REC-GSPO (both) -A_mean/(S*|y_i|); Dr.GRPO -A_0/(S*max_new); GPG
        -alpha*A_0/N (A_0: R - group mean, R in a group of one, verl); opmd_seq -A_mean/S."""
        emptied = 0  # zero-token sequences seen, where B and S differ
        for seed in range(4):
            b = on_policy(random_batch(300 + seed))
            P = O.Padded(b)
            Az = O.adv_verl_grpo(P.reward, P.group, P.n_groups)
            Am = O.adv_mean_baseline(P.reward, P.group, P.n_groups)
            A0 = O.adv_verl_grpo(P.reward, P.group, P.n_groups, norm_by_std=False)
            S, N = P.S, float(P.mask.sum())
            B = sum(1 for i in range(S) if int(P.lengths[i]) > 0)
            emptied += S - B
            for name, n in (("gspo", S), ("gspo_sg", B), ("gmpo", S), ("sapo", B)):
                self.assertListClose(grad_logp(O.evaluate(name, b)),
                                     per_token(P, lambda i: -float(Az[i]) / (n * float(P.len[i]))))
            for name in ("rec_gspo_nois", "rec_gspo_is"):
                out = O.evaluate(name, b)
                self.assertListClose(grad_logp(out),
                                     per_token(P, lambda i: -float(Am[i]) / (S * float(P.len[i]))))
                self.assertEqual(out["metrics"]["clip_frac"], 0.0)
            out = O.evaluate("dr_grpo", b, {"max_new": 16.0})
            self.assertListClose(grad_logp(out), per_token(P, lambda i: -float(A0[i]) / (S * 16)))
            nz = sum(1 for grp in b["groups"] for sq in grp if sq["reward"] != 0)
            alpha = S / max(1, nz)
            self.assertListClose(grad_logp(O.evaluate("gpg", b)),
                                 per_token(P, lambda i: -alpha * float(A0[i]) / N))
            self.assertListClose(grad_logp(O.evaluate("opmd_seq", b)),
                                 per_token(P, lambda i: -float(Am[i]) / S))
            # SAPO's value on-policy: f(1) = (4/tau)*sigmoid(0) = 2/tau
            tau = [1.0 if float(a) > 0 else 1.05 for a in Az]
            per_seq = [-2.0 / tau[i] * float(Az[i]) if int(P.lengths[i]) else 0.0
                       for i in range(S)]
            self.assertAlmostEqual(O.evaluate("sapo", b)["loss"], sum(per_seq) / B, places=13)
        self.assertGreater(emptied, 0)

    def test_gspo_direct_and_sg_same_gradient(self):
        """peer-losses 2.1: with A constant in a sequence, the direct form (s_i differentiable,
        seq-mean) and the stop-gradient form (seq-mean-token-mean) have the same gradient up to
        their denominators: the direct form divides by every sequence (S), verl's
        seq-mean-token-mean by the B with tokens.  The sums differ only by the zero-token
        sequences: the direct form adds max(-A, -A*clip(1)) = -A each, verl leaves them out."""
        el, eh = 0.05, 0.08
        for seed in range(6):
            b = random_batch(400 + seed)
            rng = random.Random(seed)
            for grp in b["groups"]:
                for sq in grp:  # sequence ratios near 1, so that every branch occurs
                    sq["old_logp"] = [x - rng.uniform(-0.12, 0.12) for x in sq["logp"]]
            d = O.evaluate("gspo", b, {"eps_low": el, "eps_high": eh})
            g = O.evaluate("gspo_sg", b, {"eps_low": el, "eps_high": eh})
            P = O.Padded(b)
            S = P.S
            B = sum(1 for i in range(S) if int(P.lengths[i]) > 0)
            self.assertListClose([x * S for x in grad_logp(d)], [x * B for x in grad_logp(g)],
                                 places=12)
            self.assertEqual(d["metrics"], g["metrics"])
            A = O.adv_verl_grpo(P.reward, P.group, P.n_groups)
            empty = sum(-float(A[i]) for i in range(P.S) if int(P.lengths[i]) == 0)
            self.assertAlmostEqual(d["loss"] * S - g["loss"] * B, empty, places=12)
            self.assertGreater(sum(abs(x) for x in grad_logp(d)), 0.0)

    def test_rec_gspo_is_gradient_equals_gspo_sg(self):
        """The sequence-level analogue of algorithms.md 3.3: with the same advantage, REC-GSPO-IS
        (-A*s_i*keep_i*logp, s detached) has the gradient of the stop-gradient GSPO surrogate,
        and REC-GSPO-NoIS has it divided by s_i on kept sequences."""
        el, eh = 0.05, 0.08
        for seed in range(6):
            b = random_batch(500 + seed)
            rng = random.Random(seed)
            for grp in b["groups"]:
                for sq in grp:
                    sq["old_logp"] = [x - rng.uniform(-0.12, 0.12) for x in sq["logp"]]
            P = O.Padded(b)
            A = O.adv_verl_grpo(P.reward, P.group, P.n_groups)
            l1, cf_ppo = O.gspo_sg_terms(A, P, el, eh)
            (g1,) = torch.autograd.grad(l1, [P.logp])
            # gspo_sg's seq-mean is verl's, over the B sequences with tokens; REC-GSPO's over all S
            g1 = g1 * sum(1 for i in range(P.S) if int(P.lengths[i]) > 0) / P.S
            l2, cf_rec = O.rec_gspo_terms(A, P, el, eh, "is")
            (g2,) = torch.autograd.grad(l2, [P.logp])
            self.assertTrue(torch.allclose(g1 * P.mask, g2 * P.mask, rtol=1e-12, atol=1e-16))
            l3, _ = O.rec_gspo_terms(A, P, el, eh, "none")
            (g3,) = torch.autograd.grad(l3, [P.logp])
            s = O.gspo_seq_ratio(P.logp, P.old_logp, P.mask, P.lengths).detach()
            self.assertTrue(torch.allclose(g3 * P.tok(s) * P.mask, g2 * P.mask, rtol=1e-12,
                                           atol=1e-16))
            # both clip fractions count tokens (the reference's masked_mean of not M): a
            # sequence outside the band counts |y_i| times, in REC's (dropped) and in PPO's
            # (clipped branch taken, here for every token of the sequence)
            keep = O.keep_one_side(A, s, el, eh)
            by_hand = (sum(int(P.lengths[i]) for i in range(P.S) if not bool(keep[i]))
                       / float(P.lengths.sum()))
            self.assertAlmostEqual(float(cf_rec), by_hand, places=14)
            self.assertAlmostEqual(float(cf_ppo), by_hand, places=14)

    def test_ppo_family_gradient_equals_rec_oneside_is(self):
        """algorithms.md 3.3 for the peers' PPO-clip: DAPO's gradient is REC-OneSide-IS's with
        A_z1, Dr.GRPO's is REC-OneSide-IS's with verl's R - group mean (R in a group of one)
        times N/(S*max_new), TIS's is min(rho, C) times it."""
        for seed in range(4):
            b = with_roll(random_batch(600 + seed), seed)
            P = O.Padded(b)
            N, S = float(P.mask.sum()), P.S
            Az = P.tok(O.adv_verl_grpo(P.reward, P.group, P.n_groups))
            A0 = P.tok(O.adv_verl_grpo(P.reward, P.group, P.n_groups, norm_by_std=False))

            def rec_is_grad(A, el, eh):
                loss, _ = O.rec_loss(A, P.logp, P.old_logp, P.mask, clip_mode="one-side",
                                     weight="importance_sampling", eps_low=el, eps_high=eh)
                (g,) = torch.autograd.grad(loss, [P.logp])
                return P.unpad(g)

            def flat(x):
                return [v for grp in x for sq in grp for v in sq]

            ref = flat(rec_is_grad(Az, 0.2, 0.28))
            self.assertListClose(grad_logp(O.evaluate("dapo", b)), ref, places=14)
            ref = flat(rec_is_grad(A0, 0.1, 0.3))
            out = O.evaluate("dr_grpo", b, {"eps_low": 0.1, "eps_high": 0.3, "max_new": 16.0})
            self.assertListClose(grad_logp(out), [x * N / (S * 16) for x in ref], places=14)
            ref = flat(rec_is_grad(Az, 0.2, 0.2))
            rho = P.unpad(torch.exp(P.old_logp - P.rollout_logp))
            w = [min(x, 2.0) for x in flat(rho)]
            self.assertListClose(grad_logp(O.evaluate("ppo_tis", b)),
                                 [a * c for a, c in zip(ref, w)], places=14)
            m = [x if 0.5 <= x <= 5.0 else 0.0 for x in flat(rho)]
            self.assertListClose(grad_logp(O.evaluate("ppo_mis", b)),
                                 [a * c for a, c in zip(ref, m)], places=14)
            # a cap above every rho and a mask range around all of them: the same function
            t = O.evaluate("ppo_tis", b, {"cap": 1e9})
            mi = O.evaluate("ppo_mis", b, {"lo": 0.0, "hi": 1e9})
            self.assertAlmostEqual(t["loss"], mi["loss"], places=13)
            self.assertListClose(grad_logp(t), grad_logp(mi), places=14)
            self.assertEqual(t["metrics"]["tis_frac"], 0.0)
            self.assertEqual(mi["metrics"]["mis_frac"], 0.0)

    def test_cispo_closed_forms(self):
        """CISPO's gradient is -w*A_z1/N with the detached weight w = clip(r, 1-el, 1+eh) (verl)
        or min(r, eps_max) (TRL), on every token; clip_frac counts r outside the range (TRL: only
        where A > 0)."""
        for seed in range(3):
            b = random_batch(650 + seed)
            P = O.Padded(b)
            A = O.adv_verl_grpo(P.reward, P.group, P.n_groups)
            N = float(P.mask.sum())
            r = [math.exp(x - y) for grp in b["groups"] for sq in grp
                 for x, y in zip(sq["logp"], sq["old_logp"])]
            a = per_token(P, lambda i: float(A[i]))
            out = O.evaluate("cispo", b, {"eps_low": 0.3, "eps_high": 0.1})
            self.assertListClose(grad_logp(out), [-min(max(x, 0.7), 1.1) * y / N
                                                  for x, y in zip(r, a)])
            self.assertAlmostEqual(out["metrics"]["clip_frac"],
                                   sum(1 for x in r if x < 0.7 or x > 1.1) / N, places=14)
            out = O.evaluate("cispo_trl", b, {"eps_max": 2.0})
            self.assertListClose(grad_logp(out), [-min(x, 2.0) * y / N for x, y in zip(r, a)])
            self.assertAlmostEqual(out["metrics"]["clip_frac"],
                                   sum(1 for x, y in zip(r, a) if x > 2.0 and y > 0) / N, places=14)
            self.assertGreater(sum(1 for x, y in zip(r, a) if x > 2.0 and y <= 0), 0)
            self.assertGreater(out["metrics"]["clip_frac"], 0.0)

    def test_ppo_dual_clip_by_hand(self):
        """One binary group (A_z1 = +-a, a = 0.5/(sqrt(0.5) + 1e-6)), five tokens:
        A>0, r = 1.5: clipped, L = -1.2a, no gradient;  A>0, r = 0.5: L = -0.5a, grad -0.5a/5;
        A<0, r = 4: L_clip = 4a > 3a, dual clip: L = 3a, no gradient;
        A<0, r = 0.5: clipped (0.8a > 0.5a), no gradient;  A<0, r = 2: L = 2a, grad 2a/5."""
        lp = [-1.0, -1.0]
        b = {"groups": [[
            {"reward": 1.0, "logp": lp, "old_logp": [-1.0 - math.log(1.5), -1.0 + math.log(2)]},
            {"reward": 0.0, "logp": lp + [-1.0],
             "old_logp": [-1.0 - math.log(4), -1.0 + math.log(2), -1.0 - math.log(2)]}]]}
        a = 0.5 / (math.sqrt(0.5) + 1e-6)
        out = O.evaluate("ppo_dual_clip", b)
        self.assertAlmostEqual(out["loss"], (-1.2 - 0.5 + 3 + 0.8 + 2) * a / 5, places=13)
        self.assertAlmostEqual(out["metrics"]["clip_frac"], 0.4, places=15)
        self.assertAlmostEqual(out["metrics"]["dual_clip_frac"], 0.2, places=15)
        self.assertListClose(grad_logp(out), [0.0, -0.5 * a / 5, 0.0, 0.0, 2 * a / 5])
        # with clip_c = 5 the dual clip never binds: L = 4a, no gradient either (clip branch
        # not taken, the unclipped one is: grad 4a/5)
        out = O.evaluate("ppo_dual_clip", b, {"clip_c": 5.0})
        self.assertAlmostEqual(out["metrics"]["dual_clip_frac"], 0.0)
        self.assertAlmostEqual(grad_logp(out)[2], 4 * a / 5, places=13)

    def test_sapo_log_ratio_clamp(self):
        """verl clamps Delta to [-20, 20] before exp: a token with Delta = -20.5 takes r = e^-20
        in the value and has gradient 0; the other token (Delta = 0) has f(1) = 2/tau, f'(1) = 1."""
        b = {"groups": [[{"reward": 1.0, "logp": [-21.5, -1.0], "old_logp": [-1.0, -1.0]},
                         {"reward": 0.0, "logp": [-1.0], "old_logp": [-1.0]}]]}
        a = 0.5 / (math.sqrt(0.5) + 1e-6)
        sig = 1 / (1 + math.exp(-(math.exp(-20.0) - 1)))
        out = O.evaluate("sapo", b)
        want = (-(4 * sig + 2) * a / 2 + 2 / 1.05 * a) / 2
        self.assertAlmostEqual(out["loss"], want, places=15)
        self.assertListClose(grad_logp(out), [0.0, -a / 4, a / 2], places=15)

    def test_gmpo_zero_token_response(self):
        """verl's geo_mean takes the masked mean of A over the response's tokens: a zero-token
        response adds 0 to the value (not -A) and counts in the sequence denominator."""
        b = {"groups": [[{"reward": 1.0, "logp": [-1.0], "old_logp": [-1.0]},
                         {"reward": 0.0, "logp": [], "old_logp": []},
                         {"reward": 0.5, "logp": [-1.0], "old_logp": [-1.0]}]]}
        a = 0.5 / (0.5 + 1e-6)  # Bessel std of (1, 0, 0.5) is 0.5
        out = O.evaluate("gmpo", b)
        self.assertAlmostEqual(out["loss"], -a / 3, places=15)
        self.assertListClose(grad_logp(out), [-a / 3, 0.0], places=15)

    def test_gmpo_by_hand(self):
        """One sequence per sign, Delta = (0.6, -0.6, 0.1), eps 0.4: A > 0 clips the upper side
        (0.6 -> 0.4), A < 0 the lower (-0.6 -> -0.4)."""
        lp = [-1.0, -1.0, -1.0]
        ob = [-1.6, -0.4, -1.1]
        b = {"groups": [[{"reward": 1.0, "logp": lp, "old_logp": ob},
                         {"reward": 0.0, "logp": lp, "old_logp": ob}]]}
        a = 0.5 / (math.sqrt(0.5) + 1e-6)
        Rp, Rn = math.exp((0.4 - 0.6 + 0.1) / 3), math.exp((0.6 - 0.4 + 0.1) / 3)
        out = O.evaluate("gmpo", b)
        self.assertAlmostEqual(out["loss"], (-a * Rp + a * Rn) / 2, places=13)
        self.assertAlmostEqual(out["metrics"]["clip_frac"], 2 / 6, places=15)
        self.assertListClose(grad_logp(out), [0.0, -a * Rp / 6, -a * Rp / 6,
                                              a * Rn / 6, 0.0, a * Rn / 6])

    def test_kl_estimators(self):
        """At logp = ref_logp every estimator is 0, and so is every gradient but k1's (coef/N).
        Elsewhere: k2' = coef*(l - ref)/N, k3' = coef*(1 - e^u)/N (0 where the value clamp at 10
        binds), abs' = coef*sign(l - ref)/N; the metric kl has no coef."""
        b = random_batch(700)
        for grp in b["groups"]:
            for sq in grp:
                sq["ref_logp"] = list(sq["logp"])
        N = sum(len(sq["logp"]) for grp in b["groups"] for sq in grp)
        for name, g0 in (("kl_k1", 0.001 / N), ("kl_k2", 0.0), ("kl_k3", 0.0), ("kl_abs", 0.0)):
            out = O.evaluate(name, b)
            self.assertEqual(out["loss"], 0.0, name)
            self.assertEqual(out["metrics"]["kl"], 0.0, name)
            self.assertListClose(grad_logp(out), [g0] * N, places=15)
        b = random_batch(701)
        lp = [x for grp in b["groups"] for sq in grp for x in sq["logp"]]
        ref = [x for grp in b["groups"] for sq in grp for x in sq["ref_logp"]]
        N = len(lp)
        u = [r - x for x, r in zip(lp, ref)]
        k3 = [min(math.exp(v) - v - 1, 10.0) for v in u]
        self.assertTrue(any(k == 10.0 for k in k3) and any(k < 10.0 for k in k3))
        c = 0.05
        cases = {
            "kl_k1": ([x - r for x, r in zip(lp, ref)], [c / N] * N),
            "kl_k2": ([0.5 * (x - r) ** 2 for x, r in zip(lp, ref)],
                      [c * (x - r) / N for x, r in zip(lp, ref)]),
            "kl_k3": (k3, [c * (1 - math.exp(v)) / N if k < 10 else 0.0 for v, k in zip(u, k3)]),
            "kl_abs": ([abs(x - r) for x, r in zip(lp, ref)],
                       [c * math.copysign(1, x - r) / N for x, r in zip(lp, ref)]),
        }
        for name, (vals, grads) in cases.items():
            out = O.evaluate(name, b, {"coef": c})
            self.assertAlmostEqual(out["metrics"]["kl"], sum(vals) / N, places=12)
            self.assertAlmostEqual(out["loss"], c * sum(vals) / N, places=13)
            self.assertListClose(grad_logp(out), grads, places=14)
            self.assertTrue(all(x == 0.0 for grp in out["grad"]["entropy"] for sq in grp
                                for x in sq))

    def test_entropy_bonus(self):
        b = random_batch(800)
        H = [x for grp in b["groups"] for sq in grp for x in sq["entropy"]]
        out = O.evaluate("entropy_bonus", b, {"coef": 0.1})
        self.assertAlmostEqual(out["loss"], -0.1 * sum(H) / len(H), places=14)
        self.assertAlmostEqual(out["metrics"]["entropy_mean"], sum(H) / len(H), places=14)
        self.assertTrue(all(x == 0.0 for x in grad_logp(out)))
        for grp in out["grad"]["entropy"]:
            for sq in grp:
                for x in sq:
                    self.assertAlmostEqual(x, -0.1 / len(H), places=16)

    def test_opmd_seq_and_gpg_closed_forms(self):
        b = random_batch(900)
        P = O.Padded(b)
        A = O.adv_mean_baseline(P.reward, P.group, P.n_groups)
        D = [sum(x - y for x, y in zip(sq["logp"], sq["old_logp"]))
             for grp in b["groups"] for sq in grp]
        out = O.evaluate("opmd_seq", b, {"tau": 0.5})
        L = [-float(A[i]) * sum(sq["logp"]) + 0.25 * D[i] ** 2
             for i, sq in enumerate(sq for grp in b["groups"] for sq in grp)]
        self.assertAlmostEqual(out["loss"], sum(L) / P.S, places=12)
        self.assertListClose(grad_logp(out),
                             per_token(P, lambda i: (-float(A[i]) + 0.5 * D[i]) / P.S))
        # GPG: alpha = #sequences / #(R != 0) over the whole batch
        b = {"groups": [[{"reward": r, "logp": [-1.0, -0.5], "old_logp": [-1.0, -0.5]}
                         for r in (1.0, 0.0, 0.0, 0.0)],
                        [{"reward": 0.5, "logp": [-2.0], "old_logp": [-2.0]},
                         {"reward": 0.5, "logp": [], "old_logp": []}]]}
        out = O.evaluate("gpg", b)  # alpha = 6/3 = 2; A = 2*(0.75, -0.25 x3), 2*(0, 0); N = 9
        self.assertListClose(grad_logp(out), [-1.5 / 9] * 2 + [0.5 / 9] * 6 + [0.0])


class RunnerMachinery(unittest.TestCase):
    """run_oracle's generator and comparison, without rein: the comparison must catch a
    perturbed gradient, a missing token, an extra metric and a printed NaN."""

    def setUp(self):
        import run_oracle
        self.R = run_oracle
        cfgs = [(n, dict(O.OBJECTIVES[n][1], **(run_oracle.VARIANTS[n] or {})))
                for n in O.OBJECTIVES] + [(n, O.OBJECTIVES[n][1]) for n in O.OBJECTIVES]
        self.bounds = run_oracle.bounds_for(cfgs)
        self.batch = run_oracle.Gen(7, "token", self.bounds).batch(0)
        self.gbatch = run_oracle.Gen(8, "gspo", self.bounds).batch(0)
        self.rbatch = run_oracle.Gen(9, "roll", self.bounds).batch(0)
        self.rb = self.bounds["rho"]

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
        for grp in self.rbatch["groups"]:
            for s in grp:
                roll = s["rollout_logp"]
                self.assertEqual(len(roll), len(s["logp"]))
                for r, b in zip(roll, s["old_logp"]):
                    self.assertEqual(float(np.float32(r)), r)
                    self.assertTrue(all(abs((b - r) - math.log(x)) >= self.R.MARGIN
                                        for x in self.bounds["roll"]))
                for a, r in zip(s["logp"], s["ref_logp"]):  # k3's clamp at 10 and |.| at 0
                    u = r - a
                    self.assertGreaterEqual(abs(u), self.R.MARGIN)
                    self.assertGreaterEqual(abs(math.expm1(u) - u - 10), self.R.K3_MARGIN)
        # batch 0 alone already holds every ratio region between the boundaries of every
        # configuration, for both signs of A (GSPO: every sequence-ratio region; roll: every
        # rollout-ratio region)
        missing = self.R.coverage([(0, self.batch)], "rec_ring_nois", self.bounds)
        self.assertFalse([m for m in missing if m.startswith("rho")], missing)
        missing = self.R.coverage([(0, self.gbatch)], "gspo", self.bounds)
        self.assertFalse([m for m in missing if m.startswith("seq ratio")], missing)
        missing = self.R.coverage([(0, self.rbatch)], "ppo_tis", self.bounds)
        self.assertFalse([m for m in missing if m.startswith("roll ratio (")], missing)
        # batch 3 carries the tokens past the clamps (|log ratio| > 20; GSPO: mean > 10)
        for kind, name in (("token", "dapo"), ("roll", "ppo_mis"), ("gspo", "gspo_sg")):
            b3 = self.R.Gen(10, kind, self.bounds).batch(3)
            missing = self.R.coverage([(0, b3)], name, self.bounds)
            self.assertFalse([m for m in missing if "> 20" in m or "> 10" in m], missing)

    def test_backend_options(self):
        import argparse
        ap = argparse.ArgumentParser()
        ns = argparse.Namespace
        self.assertEqual(self.R.parse_backends(ns(backend=None, backends=None), ap),
                         ["interp", "cpu"])
        self.assertEqual(self.R.parse_backends(ns(backend=["interp", "cpu"], backends=None), ap),
                         ["interp", "cpu"])
        self.assertEqual(self.R.parse_backends(ns(backend=None, backends=["interp,cpu,gpu"]),
                                               ap), ["interp", "cpu", "gpu"])
        self.assertEqual(self.R.BACKENDS, {"interp": 1e-6, "cpu": 1e-5, "gpu": 1e-5})

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


class TutorialHand(unittest.TestCase):
    """The tutorial's oracles (tutorial_objectives.py) on cases worked out by hand."""

    @classmethod
    def setUpClass(cls):
        import tutorial_objectives  # noqa: F401  (registers the tut_ objectives)

    def test_rloo(self):
        # docs/tutorial.md step 1: A = (1, -1/3, -1/3, -1/3) and 0; S = 5
        b = {"groups": [[{"reward": 1, "logp": [-1, -2]}, {"reward": 0, "logp": [-0.5]},
                         {"reward": 0, "logp": []}, {"reward": 0, "logp": [-1]}],
                        [{"reward": 0.7, "logp": [-0.25]}]]}
        out = O.evaluate("tut_rloo", b)
        self.assertAlmostEqual(out["loss"], 0.5, places=14)
        self.assertAlmostEqual(out["metrics"]["adv_abs"], 0.4, places=14)
        g = out["grad"]["logp"]
        for got, want in ((g[0][0][0], -0.2), (g[0][0][1], -0.2), (g[0][1][0], 1 / 15),
                          (g[0][3][0], 1 / 15), (g[1][0][0], 0.0)):
            self.assertAlmostEqual(got, want, places=14)

    def test_overlong_penalty(self):
        import tutorial_objectives as T
        # L_max = 12, L_cache = 8: free up to 4 tokens, then -1/8 per token, -1 past 12
        for n, want in ((0, 0.0), (4, 0.0), (5, -0.125), (6, -0.25), (12, -1.0), (13, -1.0)):
            self.assertEqual(T.overlong_penalty(n, 12.0, 8.0), want)
        # DAPO's defaults: nothing below 16384 tokens, -0.5 at 18432
        self.assertEqual(T.overlong_penalty(16384, 20480.0, 4096.0), 0.0)
        self.assertEqual(T.overlong_penalty(18432, 20480.0, 4096.0), -0.5)

    def test_best_of_group(self):
        # group 0: rewards (0.2, 0.9, 0.4): the second response learns with A = 0.9 - 0.4;
        # group 1: a tie at the top, so the margin is 0; N = 4 tokens
        b = {"groups": [[{"reward": 0.2, "logp": [-1]}, {"reward": 0.9, "logp": [-2]},
                         {"reward": 0.4, "logp": [-1]}],
                        [{"reward": 1, "logp": [-1]}, {"reward": 1, "logp": []}]]}
        out = O.evaluate("tut_best_of_group", b)
        self.assertAlmostEqual(out["loss"], -0.5 * -2 / 4, places=14)
        self.assertAlmostEqual(out["grad"]["logp"][0][1][0], -0.5 / 4, places=14)
        self.assertEqual(out["grad"]["logp"][0][0][0], 0.0)
        self.assertAlmostEqual(out["metrics"]["margin"], 0.25, places=14)

    def test_median_baseline(self):
        # rewards (0, 10, 1, 2): median 1.5, A = (-1.5, 8.5, -0.5, 0.5); (1, 1, 0): median 1
        b = {"groups": [[{"reward": 0, "logp": [-1]}, {"reward": 10, "logp": [-1]},
                         {"reward": 1, "logp": [-1]}, {"reward": 2, "logp": [-1]}],
                        [{"reward": 1, "logp": [-2]}, {"reward": 1, "logp": []},
                         {"reward": 0, "logp": [-1]}]]}
        out = O.evaluate("tut_median_baseline", b)
        g = out["grad"]["logp"]
        for got, want in ((g[0][0][0], 1.5 / 6), (g[0][1][0], -8.5 / 6), (g[0][2][0], 0.5 / 6),
                          (g[0][3][0], -0.5 / 6), (g[1][0][0], 0.0), (g[1][2][0], 1 / 6)):
            self.assertAlmostEqual(got, want, places=14)
        self.assertAlmostEqual(out["metrics"]["zero_frac"], 2 / 7, places=14)
        self.assertAlmostEqual(out["metrics"]["adv_abs"], (1.5 + 8.5 + 0.5 + 0.5 + 1) / 7, places=14)

    def test_entropy_8020(self):
        # 10 tokens, entropies 0..9 spread over two groups: the top ceil(0.2*10) = 2 are 9 and 8;
        # an equal entropy goes to the earlier token (the two 7s at keep_top 0.3: only the first)
        H = [[0, 9, 3], [7, 1], [8, 2, 7], [4, 5]]
        b = {"groups": [[{"reward": 1, "logp": [-1] * 3, "old_logp": [-1] * 3, "entropy": H[0]},
                         {"reward": 0, "logp": [-1] * 2, "old_logp": [-1] * 2, "entropy": H[1]}],
                        [{"reward": 1, "logp": [-1] * 3, "old_logp": [-1] * 3, "entropy": H[2]},
                         {"reward": 0, "logp": [-1] * 2, "old_logp": [-1] * 2, "entropy": H[3]}]]}
        out = O.evaluate("tut_entropy_8020", b)
        g = out["grad"]["logp"]
        a = 0.5 / (math.sqrt(0.5) + 1e-6)  # A_z1 of (1, 0): +-0.5 / Bessel std sqrt(0.5)
        self.assertAlmostEqual(g[0][0][1], -a / 10, places=12)   # entropy 9, A > 0, r = 1
        self.assertAlmostEqual(g[1][0][0], -a / 10, places=12)   # entropy 8
        self.assertEqual([x for grp in g for seq in grp for x in seq].count(0.0), 8)
        self.assertAlmostEqual(out["metrics"]["hot_frac"], 0.2, places=14)
        self.assertEqual(out["metrics"]["entropy_cut"], 8.0)
        g3 = O.evaluate("tut_entropy_8020", b, {"keep_top": 0.3})["grad"]["logp"]
        self.assertNotEqual(g3[0][1][0], 0.0)  # the first 7 (group 0, sequence 1)
        self.assertEqual(g3[1][0][2], 0.0)     # the second 7

    def test_adaptive_kl(self):
        # one token per response, Delta = log 2 and log 0.5: d = ((1 - log 2) + (-0.5 + log 2))/2
        # = 0.25; the next beta doubles at kl_target 0.1 (0.25 > 0.15), halves at 0.5
        # (0.25 < 0.333), stays at 0.2
        lg2 = math.log(2.0)
        b = {"groups": [[{"reward": 1, "logp": [-1], "old_logp": [-1 - lg2]},
                         {"reward": 0, "logp": [-1], "old_logp": [-1 + lg2]}]]}
        for target, nxt in ((0.1, 2.0), (0.5, 0.5), (0.2, 1.0)):
            out = O.evaluate("tut_adaptive_kl", b, {"kl_target": target})
            self.assertAlmostEqual(out["metrics"]["kl_old"], 0.25, places=14)
            self.assertEqual(out["state"], {"beta": nxt})
        # d loss/d logp = -r*A/N + beta*(r - 1)/N, A = +-1/(0.5 + 1e-6)
        a = 0.5 / (0.5 + 1e-6)
        self.assertAlmostEqual(out["grad"]["logp"][0][0][0], (-2 * a + 1) / 2, places=12)
        self.assertAlmostEqual(out["grad"]["logp"][0][1][0], (0.5 * a - 0.5) / 2, places=12)

    def test_seq_tis(self):
        # one group (1, 0): A = +-0.5; response 0 has log-weight log 3 (w = 3, truncated to 2),
        # response 1 log-weight log 0.5; N = 3
        lg3, lg5 = math.log(3.0), math.log(0.5)
        b = {"groups": [[{"reward": 1, "logp": [-1, -1], "old_logp": [-1 - lg3 / 2, -1 - lg3 / 2]},
                         {"reward": 0, "logp": [-2], "old_logp": [-2 - lg5]}]]}
        out = O.evaluate("tut_seq_tis", b)
        self.assertAlmostEqual(out["grad"]["logp"][0][0][0], -2 * 0.5 / 3, places=12)
        self.assertAlmostEqual(out["grad"]["logp"][0][1][0], 0.5 * 0.5 / 3, places=12)
        self.assertAlmostEqual(out["metrics"]["trunc_frac"], 0.5, places=14)
        self.assertAlmostEqual(out["metrics"]["w_mean"], 1.25, places=12)


class NewPeerObjectives(unittest.TestCase):
    """rloo, reinforce_pp_baseline, clip_cov, kl_cov, grpo_delta, kl_k3_is: autograd against
    central finite differences of the oracle's own loss, and closed forms."""
    NAMES = ("rloo", "reinforce_pp_baseline", "clip_cov", "kl_cov", "grpo_delta", "kl_k3_is")
    CONFIGS = {"clip_cov": {"clip_cov_ratio": 0.15, "clip_cov_lb": 0.3, "clip_cov_ub": 3.0},
               "kl_cov": {"kl_cov_ratio": 0.5}, "grpo_delta": {"delta": 2.5}}

    def test_finite_differences(self):
        """d loss/d logp of every token = (loss(l + h) - loss(l - h))/2h, h = 1e-6, within
        1e-7 + 1e-5*|g| (a batch where no selection sits within h of a flip)."""
        b = random_batch(1600)
        b["seed"], b["step"] = 3, 0
        h = 1e-6
        for name in self.NAMES:
            cfg = self.CONFIGS.get(name, {})
            out = O.evaluate(name, b, cfg)
            g = grad_logp(out)
            self.assertTrue(any(abs(x) > 1e-4 for x in g), name)
            k = 0
            for grp in b["groups"]:
                for sq in grp:
                    for t in range(len(sq["logp"])):
                        x = sq["logp"][t]
                        sq["logp"][t] = x + h
                        up = O.evaluate(name, b, cfg)["loss"]
                        sq["logp"][t] = x - h
                        dn = O.evaluate(name, b, cfg)["loss"]
                        sq["logp"][t] = x
                        fd = (up - dn) / (2 * h)
                        self.assertLess(abs(fd - g[k]), 1e-7 + 1e-5 * abs(g[k]),
                                        "%s token %d: autograd %r, differences %r" % (name, k, g[k], fd))
                        k += 1

    def test_selections_happen(self):
        """The finite-difference batch exercises what the files select: Clip-Cov picks and
        KL-Cov penalises some tokens, the delta cap binds on some token."""
        b = random_batch(1600)
        b["seed"], b["step"] = 3, 0
        self.assertGreater(O.evaluate("clip_cov", b, self.CONFIGS["clip_cov"])["metrics"]["clip_frac"], 0)
        self.assertGreater(O.evaluate("kl_cov", b, self.CONFIGS["kl_cov"])["metrics"]["cov_frac"], 0)
        self.assertGreater(O.evaluate("grpo_delta", b, {"delta": 1.5})["metrics"]["delta_frac"], 0)

    def test_rloo_and_baseline_closed_forms(self):
        """On-policy (old_logp = logp) every token's gradient is -A/N: RLOO's A = n/(n-1)*(r - mean)
        (r for one response, verl); REINFORCE++-baseline's A = (a - mean)/sqrt(var_1 + 1e-8) over
        the tokens, a = r - group mean (r for one response: verl's mean 0)."""
        b = random_batch(1601)
        for grp in b["groups"]:
            for sq in grp:
                sq["old_logp"] = list(sq["logp"])
        N = sum(len(sq["logp"]) for grp in b["groups"] for sq in grp)
        want_rloo, toks, ones = [], [], 0
        for grp in b["groups"]:
            n = len(grp)
            mu = sum(sq["reward"] for sq in grp) / n if n > 1 else 0.0
            ones += n == 1 and grp[0]["reward"] != 0 and len(grp[0]["logp"]) > 0
            for sq in grp:
                a = n / (n - 1) * (sq["reward"] - mu) if n > 1 else sq["reward"]
                want_rloo += [-a / N] * len(sq["logp"])
                toks += [sq["reward"] - mu] * len(sq["logp"])
        self.assertGreater(ones, 0)  # the batch has a one-response group where A = r matters
        self.assertListClose(grad_logp(O.evaluate("rloo", b)), want_rloo, places=14)
        m = sum(toks) / N
        sd = math.sqrt(sum((x - m) ** 2 for x in toks) / (N - 1) + 1e-8)
        self.assertListClose(grad_logp(O.evaluate("reinforce_pp_baseline", b)),
                             [-(x - m) / sd / N for x in toks], places=12)

    def test_kl_k3_is_and_delta_closed_forms(self):
        """kl_k3_is: loss coef*mean(r*k3), gradient coef*r*(l - ref)/N (the ratio not detached).
        grpo_delta: a token with A < 0 and r > delta has loss -delta*A and no gradient."""
        b = random_batch(1602)
        toks = [(x, o, r) for grp in b["groups"] for sq in grp
                for x, o, r in zip(sq["logp"], sq["old_logp"], sq["ref_logp"])]
        N, c = len(toks), 0.05
        out = O.evaluate("kl_k3_is", b, {"coef": c})
        vals = [math.exp(x - o) * (math.exp(r - x) - (r - x) - 1) for x, o, r in toks]
        self.assertAlmostEqual(out["loss"], c * sum(vals) / N, places=12)
        self.assertListClose(grad_logp(out), [c * math.exp(x - o) * (x - r) / N for x, o, r in toks],
                             places=12)
        b = {"groups": [[{"reward": 1, "logp": [-1.0], "old_logp": [-1.0 - math.log(6.0)]},
                         {"reward": 0, "logp": [-1.0], "old_logp": [-1.0 - math.log(6.0)]}]]}
        a = 0.5 / (math.sqrt(0.5) + 1e-4)  # A = +-0.5/(Bessel std of (1, 0) + 1e-4)
        out = O.evaluate("grpo_delta", b, {"delta": 4.0})
        self.assertAlmostEqual(out["loss"], (-1.2 * a + 4.0 * a) / 2, places=12)
        self.assertEqual(grad_logp(out), [0.0, 0.0])
        self.assertEqual(out["metrics"]["delta_frac"], 0.5)

    def assertListClose(self, a, b, places=12):
        self.assertEqual(len(a), len(b))
        for x, y in zip(a, b):
            self.assertAlmostEqual(x, y, places=places)


if __name__ == "__main__":
    unittest.main()
