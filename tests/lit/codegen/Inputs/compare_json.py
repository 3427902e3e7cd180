"""compare_json.py A.json B.json RTOL: the same structure; numbers within RTOL relative (+1e-9)."""
import json
import math
import sys


def walk(a, b, path):
    if isinstance(a, dict):
        assert isinstance(b, dict) and sorted(a) == sorted(b), path
        for k in a:
            walk(a[k], b[k], path + "." + k)
    elif isinstance(a, list):
        assert isinstance(b, list) and len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            walk(x, y, "%s[%d]" % (path, i))
    else:
        x, y = float(a), float(b)
        if math.isnan(x) or math.isnan(y) or math.isinf(x) or math.isinf(y):
            assert str(x) == str(y), "%s: %r vs %r" % (path, a, b)
        else:
            assert abs(x - y) <= tol * abs(y) + 1e-9, "%s: %r vs %r" % (path, a, b)


tol = float(sys.argv[3])
walk(json.load(open(sys.argv[1])), json.load(open(sys.argv[2])), "")
