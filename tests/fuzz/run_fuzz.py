#!/usr/bin/env python3
"""Runs the libFuzzer harness for a fixed time from the checked-in seed corpus.

usage: run_fuzz.py FUZZER SEED_DIR WORK_DIR SECONDS [DICT [MAX_LEN]]

DICT is a libFuzzer dictionary (default: rein.dict, the language's tokens); MAX_LEN the largest
input tried (default 16384).  New inputs go to WORK_DIR (recreated each run), never into the
source tree.  The exit status is the fuzzer's: non-zero when it found a crash, a leak, a
sanitizer report or a timeout.
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
sys.exit(rc)
