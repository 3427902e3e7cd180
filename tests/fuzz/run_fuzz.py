#!/usr/bin/env python3
"""Runs the libFuzzer harness for a fixed time from the checked-in seed corpus.

usage: run_fuzz.py FUZZER SEED_DIR WORK_DIR SECONDS [DICT [MAX_LEN]]

DICT is a libFuzzer dictionary (default: rein.dict, the language's tokens); MAX_LEN the largest
input tried (default 16384).  New inputs go to WORK_DIR (recreated each run), never into the
source tree.  The exit status is the fuzzer's: non-zero when it found a crash, a leak, a
sanitizer report or a timeout; then each input it saved for that is printed in base64 as well, so
the log keeps it after WORK_DIR is recreated by the next run.
"""
import os
import shutil
import subprocess
import sys

fuzzer, seeds, work, seconds = sys.argv[1:5]
here = os.path.dirname(os.path.abspath(__file__))
dictionary = sys.argv[5] if len(sys.argv) > 5 else os.path.join(here, "rein.dict")
max_len = sys.argv[6] if len(sys.argv) > 6 else "16384"
shutil.rmtree(work, ignore_errors=True)
os.makedirs(work)
cmd = [fuzzer, f"-max_total_time={seconds}", "-seed=1", "-timeout=10", "-rss_limit_mb=2048",
       f"-max_len={max_len}", f"-dict={dictionary}",
       f"-artifact_prefix={work}/", "-print_final_stats=1", work, seeds]
print(" ".join(cmd), flush=True)
rc = subprocess.call(cmd)
# A failure's input is written into WORK_DIR, which the next run recreates: print each one here
# too (base64), so that the log of a failed run -- CI's included -- keeps what to replay.
if rc != 0:
    import base64
    for name in sorted(os.listdir(work)):
        if name.split("-")[0] in ("crash", "timeout", "leak", "oom", "slow"):
            with open(os.path.join(work, name), "rb") as f:
                data = f.read()
            print(f"run_fuzz: {name} ({len(data)} bytes), base64:", flush=True)
            print(base64.b64encode(data[:65536]).decode(), flush=True)
sys.exit(rc)
