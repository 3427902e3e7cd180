#!/usr/bin/python3
"""test_genconfig.py — generation_config.json in `rein model generate` (tfm_genconfig.c).

    /usr/bin/python3 tests/tfm/test_genconfig.py --rein build/rein

On a tiny random model (vocabulary 17): without the file, config.json's eos stops; with it, every
id of its eos_token_id list stops (an int or a list), and no sequence runs past one; its
temperature / top_p / top_k are the defaults, equal to passing them on the command line;
do_sample false means greedy; explicit --temperature / --top-p / --top-k / --stop win over the
file; a bad file (invalid JSON, an id outside the vocabulary, top_p 2, a string temperature, too
many eos ids) is an error naming the file and the field, exit 1.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

FAILS = []


def check(cond, what):
    print(("ok    " if cond else "FAIL  ") + what, flush=True)
    if not cond:
        FAILS.append(what)


def gen(rein, model, *extra, ok=True):
    cmd = [rein, "model", "generate", "--model", model, "--prompt-tokens", "1,5,6", "--prompt-tokens", "1,7",
           "--samples", "6", "--max-new", "12", "--seed", "11"] + list(extra)
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if ok and p.returncode != 0:
        print("command failed:", " ".join(cmd), p.stderr)
        raise SystemExit(1)
    return p if not ok else json.loads(p.stdout)["sequences"]


def toks(seqs):
    return [s["tokens"] for s in seqs]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rein", required=True)
    args = ap.parse_args()
    rein = os.path.abspath(args.rein)
    work = tempfile.mkdtemp(prefix="rein-genconfig-")
    try:
        cfg = {"model_type": "llama", "vocab_size": 17, "hidden_size": 32, "num_hidden_layers": 1,
               "num_attention_heads": 2, "intermediate_size": 64, "max_position_embeddings": 64,
               "bos_token_id": 1, "eos_token_id": 2, "initializer_range": 0.5}
        with open(os.path.join(work, "c.json"), "w") as f:
            json.dump(cfg, f)
        model = os.path.join(work, "m")
        subprocess.run([rein, "model", "init", "--config", os.path.join(work, "c.json"), "--seed", "4", "-o", model],
                       check=True, capture_output=True)
        gc = os.path.join(model, "generation_config.json")

        def write(obj):
            with open(gc, "w") as f:
                f.write(obj if isinstance(obj, str) else json.dumps(obj))

        plain = gen(rein, model)
        check(all((2 not in s["tokens"][:-1]) and (s["stopped"] == (s["tokens"][-1] == 2)) for s in plain),
              "no file: config.json's eos (2) stops")
        stops = [3, 4, 9, 12]
        write({"eos_token_id": stops})
        listed = gen(rein, model)
        check(all(not set(s["tokens"][:-1]) & set(stops) and s["stopped"] == (s["tokens"][-1] in stops)
                  for s in listed), "eos_token_id list: every listed id stops, none appears before the end")
        check(any(s["stopped"] for s in listed) and any(s["tokens"][-1] != stops[0] for s in listed if s["stopped"]),
              "... and more than the first id of the list stopped a sequence")
        check(toks(listed) == toks(gen(rein, model, "--stop", ",".join(map(str, stops)))),
              "the same as --stop with those ids")
        write({"eos_token_id": 9})
        check(all(s["stopped"] == (s["tokens"][-1] == 9) and 9 not in s["tokens"][:-1] for s in gen(rein, model)),
              "eos_token_id as an int")
        check(all(len(s["tokens"]) == 12 and not s["stopped"] for s in gen(rein, model, "--stop", "")),
              "--stop '' overrides the file: no stop token at all")
        os.remove(gc)
        ref = toks(gen(rein, model, "--temperature", "0.7", "--top-p", "0.9", "--top-k", "5"))
        write({"do_sample": True, "temperature": 0.7, "top_p": 0.9, "top_k": 5})
        check(toks(gen(rein, model)) == ref, "temperature / top_p / top_k of the file are the defaults")
        other = toks(gen(rein, model, "--temperature", "1.3", "--top-p", "1", "--top-k", "0"))
        os.remove(gc)
        check(other == toks(gen(rein, model, "--temperature", "1.3")) and other != ref,
              "explicit --temperature / --top-p / --top-k override the file")
        write({"do_sample": False, "temperature": 0.7})
        check(toks(gen(rein, model)) == toks(gen(rein, model, "--temperature", "0")) and
              toks(gen(rein, model, "--temperature", "1")) != toks(gen(rein, model)),
              "do_sample false: greedy unless --temperature is given")
        write({"eos_token_id": 2, "max_new_tokens": 100, "repetition_penalty": 1.1, "transformers_version": "4.51.0",
               "pad_token_id": None})
        check(toks(gen(rein, model)) == toks(plain), "fields the executor does not use are ignored")
        bad = [("invalid JSON", '{"eos_token_id": [1,', "generation_config.json:1:"),
               ("eos outside the vocabulary", {"eos_token_id": [2, 17]}, "field 'eos_token_id': token id 17 is outside"),
               ("eos a string", {"eos_token_id": "2"}, "field 'eos_token_id': expected an integer"),
               ("too many eos ids", {"eos_token_id": list(range(9))}, "field 'eos_token_id': more than 8 ids"),
               ("top_p 2", {"top_p": 2}, "field 'top_p': 2 is outside (0, 1]"),
               ("temperature a string", {"temperature": "hot"}, "field 'temperature': expected a number"),
               ("top_k fractional", {"top_k": 2.5}, "field 'top_k': expected an integer"),
               ("do_sample a number", {"do_sample": 1}, "field 'do_sample': expected true or false"),
               ("not an object", "[1]", "generation_config.json: expected a JSON object")]
        for name, obj, needle in bad:
            write(obj)
            p = gen(rein, model, ok=False)
            check(p.returncode == 1 and gc in p.stderr and needle in p.stderr and not p.stdout,
                  f"bad file ({name}): exit 1, '{needle}' ({p.stderr.strip()})")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if FAILS:
        print(f"FAIL {len(FAILS)} checks")
        return 1
    print("all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
