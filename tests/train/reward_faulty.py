#!/usr/bin/env python3
"""A reward command for tests/train/test_byo.py: exact match, like examples/reward_exact.py, with
a fault on request.  REIN_TEST_FAULT=MODE:N misbehaves at the N-th request (1-based):
  die        exit with status 3 without answering
  hang       never answer (sleeps)
  malformed  answer a line that is not JSON
  noreward   answer a JSON object without "reward"
REIN_TEST_EXTRA=1 adds the numeric fields "digits" (digits in the response) and "one" (always 1)
and a string field "why", which the trainer ignores.  REIN_TEST_LOG=PATH appends every request.
"""
import json
import os
import sys
import time


def main():
    mode, n = os.environ.get("REIN_TEST_FAULT", "none:0").split(":")
    n = int(n)
    extra = os.environ.get("REIN_TEST_EXTRA") == "1"
    log = os.environ.get("REIN_TEST_LOG")
    for i, line in enumerate(sys.stdin, 1):
        req = json.loads(line)
        if log:
            with open(log, "a") as f:
                f.write(line)
        if i == n:
            print(f"reward_faulty: {mode} at request {i}", file=sys.stderr, flush=True)
            if mode == "die":
                sys.exit(3)
            if mode == "hang":
                time.sleep(3600)
            if mode == "malformed":
                print("this is not json", flush=True)
                continue
            if mode == "noreward":
                print('{"accuracy": 1}', flush=True)
                continue
        right = float(req["response"].strip() == req["answer"].strip())
        out = {"reward": right, "accuracy": right}
        if extra:
            out.update(digits=sum(c.isdigit() for c in req["response"]), one=1, why="exact match")
        print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
