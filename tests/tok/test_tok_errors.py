#!/usr/bin/env python3
"""test_tok_errors.py — bad tokenizer files through `rein tokenize`: each must fail with exit
status 1 and one line naming the file, the JSON field and what is wrong (runtime/tok/tok_load.c),
never a crash or a silently different encoding.  A tiny byte-level BPE file, written here, is the
base of every case; it is first checked to load and encode.  Then hostile inputs through the
command line (cli_cases): a directory without tokenizer.json, a directory, a FIFO or a 1 GB file in
its place, invalid UTF-8 text, ids out of range, negative, huge or malformed, empty input — each
one line and exit status 1, or the correct (empty) result and 0.

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
    ("duplicate added id", mutate(["added_tokens"], [{"id": 6, "content": "<s>"}, {"id": 6, "content": "<t>"}]),
     ["added_tokens[1]", "id 6", "earlier added token"]),
    ("control characters", mutate(["model", "vocab", "a\nb"], "x"), ["model.vocab", "a\\x0ab"]),
    ("empty-match Split, merged", mutate(["pre_tokenizer"], {"type": "Sequence", "pretokenizers": [
        {"type": "Split", "pattern": {"Regex": "b?"}, "behavior": "MergedWithPrevious"},
        {"type": "ByteLevel", "add_prefix_space": False, "use_regex": False}]}),
     ["pre_tokenizer.pretokenizers[0]", "empty string", "MergedWithPrevious"]),
    ("template id in a hole", mutate(["post_processor"], {"type": "TemplateProcessing", "single": [
        {"SpecialToken": {"id": "<s>"}}, {"Sequence": {"id": "A"}}],
        "special_tokens": {"<s>": {"id": "<s>", "ids": [3, 7]}}}) | {"added_tokens": [
            {"id": 9, "content": "<s>", "special": True}]},   # ids 6..8 are holes
     ["post_processor.single[0]", "ids[1]", "not an id of the vocabulary"]),
    # a bare lookahead: PCRE2 gives it a minimum length of 1, so the empty match is caught at encoding
    ("empty match at encoding", mutate(["pre_tokenizer"], {"type": "Sequence", "pretokenizers": [
        {"type": "Split", "pattern": {"Regex": "(?=b)"}, "behavior": "MergedWithNext"},
        {"type": "ByteLevel", "add_prefix_space": False, "use_regex": False}]}),
     ["pre_tokenizer.pretokenizers[0]", "matched the empty string", "MergedWithNext"]),
    ("empty-match Split, contiguous", mutate(["pre_tokenizer"], {"type": "Split", "pattern": {"Regex": "x*"},
                                                                 "behavior": "Contiguous"}),
     ["pre_tokenizer", "empty string", "Contiguous"]),
]


def cli_cases(rein, tmp, good):
    """Hostile inputs through the command line: (name, argv after `rein tokenize`, stdin bytes,
    expected exit status, words of the one-line message (status 1) or the exact output (0))."""
    d = lambda name: os.path.join(tmp, name)
    os.makedirs(d("nofile"))
    os.makedirs(d("isdir/tokenizer.json"))
    os.makedirs(d("fifo"))
    os.mkfifo(d("fifo/tokenizer.json"))
    os.makedirs(d("big"))
    with open(d("big/tokenizer.json"), "wb") as f:   # 1 GB, sparse: refused before any read
        f.truncate(1 << 30)
    os.makedirs(d("holes"))
    tj = base()
    tj["added_tokens"][0]["id"] = 9                   # ids 6..8 are holes
    with open(d("holes/tokenizer.json"), "w") as f:
        json.dump(tj, f)
    os.makedirs(d("bare"))                            # no normalizer, pre-tokenizer, post-processor, decoder
    tj = {"model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2}, "merges": ["a b"]}}
    with open(d("bare/tokenizer.json"), "w") as f:
        json.dump(tj, f)
    cases = [
        ("no tokenizer.json", ["--tokenizer", d("nofile"), "ab"], None, 1,
         [d("nofile") + "/tokenizer.json", "cannot open"]),
        ("tokenizer.json is a directory", ["--tokenizer", d("isdir"), "ab"], None, 1,
         [d("isdir") + "/tokenizer.json", "is a directory"]),
        ("tokenizer.json is a FIFO", ["--tokenizer", d("fifo"), "ab"], None, 1,
         [d("fifo") + "/tokenizer.json", "not a regular file"]),
        ("1 GB tokenizer.json", ["--tokenizer", d("big"), "ab"], None, 1,
         [d("big") + "/tokenizer.json", "larger than", "limit"]),
        ("invalid UTF-8 argument", ["--tokenizer", good, b"a\xc3".decode("utf-8", "surrogateescape")], None, 1,
         ["not valid UTF-8", "byte 1"]),
        ("invalid UTF-8 stdin", ["--tokenizer", good, "-"], b"ab\xff", 1, ["not valid UTF-8", "byte 2"]),
        ("id out of range", ["--tokenizer", good, "--decode", "4 99"], None, 1, ["id 99", "at 1", "7 tokens"]),
        ("id in a hole", ["--tokenizer", d("holes"), "--decode", "4,7"], None, 1, ["id 7", "at 1"]),
        ("negative id", ["--tokenizer", good, "--decode", "--", "-5"], None, 1, ["id -5", "at 0"]),
        ("negative id, stdin", ["--tokenizer", good, "--decode", "-"], b"4\n-1\n", 1, ["id -1", "at 1"]),
        ("huge id", ["--tokenizer", good, "--decode", "99999999999999999999"], None, 1,
         ["id 99999999999999999999", "not in the vocabulary"]),
        ("id 2^31", ["--tokenizer", good, "--decode", "2147483648"], None, 1, ["id 2147483648"]),
        ("not an id", ["--tokenizer", good, "--decode", "4 1e3"], None, 1, ["expected token ids", "`1e3`"]),
        ("NUL among ids", ["--tokenizer", good, "--decode", "-"], b"4\x005", 1, ["NUL byte"]),
        ("empty text", ["--tokenizer", good, ""], None, 0, "\n"),
        ("empty stdin", ["--tokenizer", good, "-"], b"", 0, "\n"),
        ("no ids", ["--tokenizer", good, "--decode", " ,\n"], None, 0, "\n"),
        ("ids, spaces and commas", ["--tokenizer", good, "--decode", "4, 5,6"], None, 0, "ab c<s>\n"),
        ("components absent", ["--tokenizer", d("bare"), "abab"], None, 0, "2 2\n"),
    ]
    fails = 0
    for name, argv, stdin, want_rc, want in cases:
        try:
            r = subprocess.run([rein, "tokenize"] + argv, input=stdin if stdin is not None else b"",
                               capture_output=True, timeout=60)
        except subprocess.TimeoutExpired:
            print(f"FAIL {name}: hangs")
            fails += 1
            continue
        msg = r.stderr.decode("utf-8", "replace").strip()
        if want_rc == 0:
            ok = r.returncode == 0 and r.stdout.decode() == want and not msg
        else:
            ok = (r.returncode == want_rc and len(msg.splitlines()) == 1 and msg.startswith("rein tokenize: error: ")
                  and all(w in msg for w in want))
        print(f"{'ok  ' if ok else 'FAIL'} {name}: rc={r.returncode} {msg or repr(r.stdout.decode())}")
        fails += not ok
    if os.geteuid() != 0:   # root reads a file without read permission
        os.makedirs(d("unreadable"))
        with open(d("unreadable/tokenizer.json"), "w") as f:
            json.dump(base(), f)
        os.chmod(d("unreadable/tokenizer.json"), 0)
        r = subprocess.run([rein, "tokenize", "--tokenizer", d("unreadable"), "ab"], capture_output=True, text=True)
        ok = r.returncode == 1 and "cannot open" in r.stderr and d("unreadable") in r.stderr
        print(f"{'ok  ' if ok else 'FAIL'} unreadable tokenizer.json: rc={r.returncode} {r.stderr.strip()}")
        fails += not ok
    else:
        print("skip unreadable tokenizer.json: running as root")
    return fails


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
        fails += cli_cases(rein, tmp, good)
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
