"""test_examples.py — the examples of examples/python run and show what they claim (ctest
python_example): the toy policy learns with a Rein loss (toy_policy.py --check), and verl-style
accumulation is biased where Rein's staged step is not (microbatch_bias.py --check), and the
two-pass loop of an objective with a statistics stage gives the whole batch's gradient while a
policy learns with it (stats_two_pass.py --check)."""

import os
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
status = 0
for script in ("toy_policy.py", "microbatch_bias.py", "stats_two_pass.py"):
    t = time.time()
    p = subprocess.run([sys.executable, os.path.join(REPO, "examples", "python", script), "--check"])
    print("%s: %s (%.1f s)" % (script, "ok" if p.returncode == 0 else "FAIL, exit %d" % p.returncode, time.time() - t))
    status |= p.returncode != 0
sys.exit(status)
