"""Checks `rein eval lang/std/sapo.rein` (output file argv[2]) on the two-response batch argv[1]
against verl's SAPO loss worked out here in float64: A = +-(1/2)/(Bessel std + 1e-6),
r = exp(clamp(Delta, -20, 20)), L = -(4/tau)*sigmoid(tau*(r - 1))*A, seq-mean-token-mean; the
gradient d L/d logp = -A*f'(r)*r inside the clamp and 0 outside.  Absolute tolerance argv[3]."""
import json
import math
import sys

with open(sys.argv[1]) as f:
    seqs = json.load(f)["groups"][0]
with open(sys.argv[2]) as f:
    got = json.load(f)
tol = float(sys.argv[3])
assert [s["reward"] for s in seqs] == [1, 0]
a = 0.5 / (math.sqrt(0.5) + 1e-6)


def sig(x):
    return 1 / (1 + math.exp(-x))


loss, grads = 0.0, []
for s, adv in zip(seqs, (a, -a)):
    tau = 1.0 if adv > 0 else 1.05
    n = len(s["logp"])
    g = []
    for lp, old in zip(s["logp"], s["old_logp"]):
        d = lp - old
        r = math.exp(min(max(d, -20.0), 20.0))
        z = sig(tau * (r - 1))
        loss += -(4 / tau) * z * adv / n / len(seqs)
        inside = -20.0 < d < 20.0
        g.append(-4 * z * (1 - z) * r * adv / n / len(seqs) if inside else 0.0)
    grads.append(g)

checks = [("loss", got["loss"], loss)]
for i, g in enumerate(grads):
    for t, x in enumerate(g):
        checks.append(("grad.logp[0][%d][%d]" % (i, t), got["grad"]["logp"][0][i][t], x))
for where, x, want in checks:
    if abs(x - want) > tol:
        sys.exit("%s: %r, expected %r (tolerance %g)" % (where, x, want, tol))
