// tok_ref.mjs — the reference side of the tokenizer comparison (tests/tok/test_tok.py): the
// Hugging Face tokenizer in JavaScript (@huggingface/tokenizers), run by Debian's node.
//   node tok_ref.mjs NODE_MODULES TOKDIR IN.json OUT.jsonl
// One line per string of IN.json: {"ids": [...], "ids_sp": [...], "dec": "..."}: encode without
// and with add_special_tokens, and decode(ids) without clean_up_tokenization_spaces.
import fs from "fs";
import path from "path";
import { pathToFileURL } from "url";

const [nm, dir, inPath, outPath] = process.argv.slice(2);
const mod = await import(pathToFileURL(path.join(nm, "@huggingface/tokenizers/dist/tokenizers.mjs")).href);
const readJson = (f) => JSON.parse(fs.readFileSync(path.join(dir, f), "utf8"));
const cfgPath = path.join(dir, "tokenizer_config.json");
const tk = new mod.Tokenizer(readJson("tokenizer.json"), fs.existsSync(cfgPath) ? readJson("tokenizer_config.json") : {});
const lines = [];
for (const s of JSON.parse(fs.readFileSync(inPath, "utf8"))) {
  const ids = tk.encode(s, { add_special_tokens: false }).ids;
  const ids_sp = tk.encode(s, { add_special_tokens: true }).ids;
  const dec = ids.length ? tk.decode(ids, { clean_up_tokenization_spaces: false }) : "";
  lines.push(JSON.stringify({ ids, ids_sp, dec }));
}
fs.writeFileSync(outPath, lines.join("\n") + "\n");
