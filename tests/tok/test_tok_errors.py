#!/usr/bin/env python3
"""test_tok_errors.py — bad tokenizer files through `rein tokenize`: each must fail with exit
status 1 and one line naming the file, the JSON field and what is wrong (runtime/tok/tok_load.c),
never a crash or a silently different encoding.  A tiny byte-level BPE file, written here, is the
base of every case; it is first checked to load and encode.

Usage: test_tok_errors.py REIN
"""
import copy
import json
import os
import subprocess
import sys
import tempfile


def base():
    # byte-level alphabet for "ab c" plus two merges
    vocab = {"a": 0, "b": 1, "c": 2, "Ġ": 3, "ab": 4, "Ġc": 5}
    return {"version": "1.0", "truncation": None, "padding": None,
            "added_tokens": [{"id": 6, "content": "<s>", "single_word": False, "lstrip": False,
                              "rstrip": False, "normalized": False, "special": True}],
            "normalizer": {"type": "NFC"},
            "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "use_regex": True},
            "post_processor": {"type": "ByteLevel"},
            "decoder": {"type": "ByteLevel"},
            "model": {"type": "BPE", "vocab": vocab, "merges": ["a b", ["Ġ", "c"]]}}


def mutate(path, value):
    """A copy of the base file with the field at PATH (a list of keys) set to VALUE (or deleted
    when VALUE is DELETE)."""
    t = copy.deepcopy(base())
    o = t
    for k in path[:-1]:
        o = o[k]
    if value is DELETE:
        del o[path[-1]]
    else:
        o[path[-1]] = value
    return t


DELETE = object()
CASES = [
    # (name, tokenizer.json text, words the message must contain)
    ("normalizer", mutate(["normalizer"], {"type": "BertNormalizer"}), ["normalizer", "BertNormalizer", "not supported"]),
    ("nested normalizer", mutate(["normalizer"], {"type": "Sequence", "normalizers": [{"type": "NFC"}, {"type": "Lowercase"}]}),
     ["normalizer.normalizers[1]", "Lowercase"]),
    ("pre-tokenizer", mutate(["pre_tokenizer"], {"type": "Metaspace"}), ["pre_tokenizer", "Metaspace", "not supported"]),
    ("model", mutate(["model", "type"], "WordPiece"), ["model.type", "WordPiece", "not supported"]),
    ("decoder", mutate(["decoder"], {"type": "WordPiece"}), ["decoder", "WordPiece", "not supported"]),
    ("post-processor", mutate(["post_processor"], {"type": "BertProcessing"}), ["post_processor", "BertProcessing"]),
    ("dropout", mutate(["model", "dropout"], 0.1), ["model.dropout"]),
    ("byte_fallback", mutate(["model", "byte_fallback"], True), ["model.byte_fallback"]),
    ("truncation", mutate(["truncation"], {"max_length": 5}), ["truncation"]),
    ("missing vocab", mutate(["model", "vocab"], DELETE), ["model.vocab", "missing"]),
    ("missing merges", mutate(["model", "merges"], DELETE), ["model.merges", "missing"]),
    ("bad merge", mutate(["model", "merges"], ["a b", "b c"]), ["model.merges[1]", "\"bc\" is not in the vocabulary"]),
    ("merge shape", mutate(["model", "merges"], ["a b", "abc"]), ["model.merges[1]", "two tokens"]),
    ("merge array", mutate(["model", "merges"], [["a", "b", "c"]]), ["model.merges[0]"]),
    ("vocab id", mutate(["model", "vocab", "a"], "zero"), ["model.vocab", "\"a\""]),
    ("bad regex", mutate(["pre_tokenizer"], {"type": "Split", "pattern": {"Regex": "(ab"}, "behavior": "Isolated", "invert": False}),
     ["pre_tokenizer", "Split.pattern", "PCRE2"]),
    ("bad behavior", mutate(["pre_tokenizer"], {"type": "Split", "pattern": {"Regex": "a"}, "behavior": "Sideways"}),
     ["pre_tokenizer", "Sideways"]),
    ("added content", mutate(["added_tokens"], [{"id": 6, "content": ""}]), ["added_tokens[0]", "content"]),
    ("single_word", mutate(["added_tokens"], [{"id": 6, "content": "<s>", "single_word": True}]), ["added_tokens[0]", "single_word"]),
    ("malformed JSON", None, ["(JSON)", "line"]),
]


def main():
    rein = sys.argv[1]
    fails = 0
    with tempfile.TemporaryDirectory() as tmp:
        good = os.path.join(tmp, "good")
        os.makedirs(good)
        with open(os.path.join(good, "tokenizer.json"), "w") as f:
            json.dump(base(), f)
        r = subprocess.run([rein, "tokenize", "--tokenizer", good, "ab c<s>ab"], capture_output=True, text=True)
        if r.returncode != 0 or r.stdout.split() != ["4", "5", "6", "4"]:
            print(f"base file: expected ids 4 5 6 4, got rc={r.returncode} {r.stdout!r} {r.stderr!r}")
            return 1
        for i, (name, tj, words) in enumerate(CASES):
            d = os.path.join(tmp, f"case{i}")
            os.makedirs(d)
            with open(os.path.join(d, "tokenizer.json"), "w") as f:
                f.write(json.dumps(tj) if tj is not None else '{"model": {"type": "BPE", ')
            r = subprocess.run([rein, "tokenize", "--tokenizer", d, "ab"], capture_output=True, text=True)
            msg = r.stderr.strip()
            ok = r.returncode == 1 and "tokenizer.json" in msg and all(w in msg for w in words) and len(msg.splitlines()) == 1
            print(f"{'ok  ' if ok else 'FAIL'} {name}: rc={r.returncode} {msg}")
            fails += not ok
        # invalid UTF-8 text and an id outside the vocabulary
        r = subprocess.run([rein, "tokenize", "--tokenizer", good, "-"], input=b"a\xffb", capture_output=True)
        ok = r.returncode == 1 and b"not valid UTF-8" in r.stderr
        print(f"{'ok  ' if ok else 'FAIL'} invalid UTF-8: rc={r.returncode} {r.stderr.decode().strip()}")
        fails += not ok
        r = subprocess.run([rein, "tokenize", "--tokenizer", good, "--decode", "4 99"], capture_output=True, text=True)
        ok = r.returncode == 1 and "id 99" in r.stderr
        print(f"{'ok  ' if ok else 'FAIL'} bad id: rc={r.returncode} {r.stderr.strip()}")
        fails += not ok
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
