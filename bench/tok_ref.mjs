// tok_ref.mjs — the reference side of bench_tok: encode every line of CORPUS with the Hugging
// Face tokenizer in JavaScript; prints "SECONDS IDS" for the best of REPEAT passes.
//   node tok_ref.mjs NODE_MODULES TOKDIR CORPUS REPEAT
import fs from "fs";
import path from "path";
import { pathToFileURL } from "url";
const [nm, dir, corpus, repeat] = process.argv.slice(2);
const mod = await import(pathToFileURL(path.join(nm, "@huggingface/tokenizers/dist/tokenizers.mjs")).href);
const rd = (f) => JSON.parse(fs.readFileSync(path.join(dir, f), "utf8"));
const tk = new mod.Tokenizer(rd("tokenizer.json"), rd("tokenizer_config.json"));
const docs = fs.readFileSync(corpus, "utf8").split("\n");
let best = Infinity, n = 0;
for (let r = 0; r < Number(repeat); r++) {
  const t0 = process.hrtime.bigint();
  n = 0;
  for (const d of docs) n += tk.encode(d, { add_special_tokens: false }).ids.length;
  best = Math.min(best, Number(process.hrtime.bigint() - t0) / 1e9);
}
console.log(`${best} ${n}`);
