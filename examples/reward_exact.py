#!/usr/bin/env python3
"""A reward command for `rein train --reward-cmd` (docs/trainer.md, "Rewards from a command").

The trainer starts this program once and keeps it running.  For every response it writes one
JSON line to our stdin,

    {"prompt": "...", "response": "...", "answer": "..."}

and waits (at most --reward-timeout seconds) for one JSON line on our stdout,

    {"reward": 1.0, "accuracy": 1.0, "length": 7}

"reward" is what the advantages use, "accuracy" (0..1) what the accuracy metrics report; any
other numeric field (here "length") becomes the metric reward_length of the train records
(eval_reward_length of the evaluation records).
Print nothing else on stdout (use stderr for messages) and flush after every line.  The program
ends when its stdin closes.

This one scores exact match of the response with the answer, surrounding spaces ignored:

    rein train std:grpo --task jsonl --train-data train.jsonl --eval-data eval.jsonl \\
        --reward-cmd 'python3 examples/reward_exact.py'
"""
import json
import sys


def main():
    for line in sys.stdin:
        req = json.loads(line)
        right = req["response"].strip() == req["answer"].strip()
        print(json.dumps({"reward": float(right), "accuracy": float(right),
                          "length": len(req["response"])}), flush=True)


if __name__ == "__main__":
    main()
