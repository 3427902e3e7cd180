// realvocab_ref.mjs — the reference prompt ids of tests/train/test_realvocab.py: the chat template
// of tokenizer_config.json rendered by @huggingface/jinja (add_generation_prompt), then encoded by
// @huggingface/tokenizers without adding special tokens — what the Hugging Face
// apply_chat_template(conversation, add_generation_prompt=True, tokenize=True) gives.
//   node realvocab_ref.mjs NODE_MODULES TOKDIR IN.json OUT.json
// IN.json: a list of conversations ([{role, content}, ...]), or of {"text": "..."} for a model
// without a chat template (encoded with add_special_tokens, as tokenizer(text) does); OUT.json: a
// list of {"text", "ids"}.
import fs from "fs";
import path from "path";
import { pathToFileURL } from "url";

const [nm, dir, inPath, outPath] = process.argv.slice(2);
const toks = await import(pathToFileURL(path.join(nm, "@huggingface/tokenizers/dist/tokenizers.mjs")).href);
const jinja = await import(pathToFileURL(path.join(nm, "@huggingface/jinja/dist/index.js")).href);
const readJson = (f) => JSON.parse(fs.readFileSync(path.join(dir, f), "utf8"));
const cfg = readJson("tokenizer_config.json");
const tk = new toks.Tokenizer(readJson("tokenizer.json"), cfg);
const tmpl = new jinja.Template(cfg.chat_template);
const special = (v) => (v && typeof v === "object" ? v.content : v);
const out = [];
for (const messages of JSON.parse(fs.readFileSync(inPath, "utf8"))) {
  if (!Array.isArray(messages)) {
    out.push({ text: messages.text, ids: tk.encode(messages.text, { add_special_tokens: true }).ids });
    continue;
  }
  const vars = { messages, add_generation_prompt: true };
  if (special(cfg.bos_token) != null) vars.bos_token = special(cfg.bos_token);
  if (special(cfg.eos_token) != null) vars.eos_token = special(cfg.eos_token);
  const text = tmpl.render(vars);
  out.push({ text, ids: tk.encode(text, { add_special_tokens: false }).ids });
}
fs.writeFileSync(outPath, JSON.stringify(out));
