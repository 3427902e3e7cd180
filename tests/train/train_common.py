"""Facts the trainer's end-to-end tests share (one place for each).

TIMING: the metrics.jsonl fields that measure time, which differ from run to run and are left
out when two runs' metrics are compared for equality.
"""
TIMING = {"time", "eval_s", "rollout_tok_s", "train_tok_s", "t_rollout", "t_ref", "t_forward", "t_objective",
          "t_backward", "t_optimizer"}
