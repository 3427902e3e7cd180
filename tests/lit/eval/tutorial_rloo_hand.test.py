"""Compares a `rein eval` output file (argv[1]) with the hand-computed RLOO example of
tutorial_rloo_hand.test, within the absolute tolerance argv[2]; exits 1 naming the first field
that differs."""
import json
import sys

WANT = {"loss": 0.5, "metrics": {"adv_abs": 0.4},
        "grad": {"logp": [[[-0.2, -0.2], [1 / 15], [], [1 / 15]], [[0.0]]],
                 "entropy": [[[0.0, 0.0], [0.0], [], [0.0]], [[0.0]]]}}


def walk(got, want, where):
    if isinstance(want, dict):
        if sorted(got) != sorted(want):
            sys.exit("%s: keys %s, expected %s" % (where, sorted(got), sorted(want)))
        for k in want:
            walk(got[k], want[k], where + "." + k)
    elif isinstance(want, list):
        if not isinstance(got, list) or len(got) != len(want):
            sys.exit("%s: %r, expected %d entries" % (where, got, len(want)))
        for i, (a, b) in enumerate(zip(got, want)):
            walk(a, b, "%s[%d]" % (where, i))
    elif not isinstance(got, (int, float)) or abs(got - want) > TOL:
        sys.exit("%s: %r, expected %r (tolerance %g)" % (where, got, want, TOL))


TOL = float(sys.argv[2])
with open(sys.argv[1]) as f:
    walk(json.load(f), WANT, "output")
