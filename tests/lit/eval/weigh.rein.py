"""Compares two `rein eval` outputs (argv[1] the reference, argv[2]) value by value: loss, every
metric, every gradient entry, within argv[3] relative to max(1, |reference|)."""
import json
import sys

ref, got, tol = json.load(open(sys.argv[1])), json.load(open(sys.argv[2])), float(sys.argv[3])
bad = []


def walk(a, b, where):
    if isinstance(a, dict):
        assert sorted(a) == sorted(b), where
        for k in a:
            walk(a[k], b[k], where + "." + k)
    elif isinstance(a, list):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            walk(x, y, "%s[%d]" % (where, i))
    elif abs(a - b) > tol * max(1.0, abs(a)):
        bad.append("%s: %r against %r" % (where, b, a))


walk(ref, got, "")
print("\n".join(bad) if bad else "ok: every value within %g" % tol)
sys.exit(1 if bad else 0)
