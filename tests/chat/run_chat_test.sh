#!/bin/sh
# run_chat_test.sh ASSETS DRIVER CASES — the chat-template test (ctest `chat_templates`):
# chat_ref.cjs renders the cases with the reference renderer from ASSETS (tests/assets), into
# CASES; DRIVER (test_chat) renders them with chat_render and compares.  Exit 77 (skipped) when
# the npm assets or node are missing.
set -u
assets=$1 driver=$2 cases=$3
if [ ! -f "$assets/OK" ]; then
  echo "chat_templates: SKIP: npm assets missing in $assets (see the npm_assets test)" >&2
  exit 77
fi
if ! command -v node >/dev/null 2>&1; then
  echo "chat_templates: SKIP: node not installed" >&2
  exit 77
fi
node "$(dirname "$0")/chat_ref.cjs" "$assets" "$cases" || exit 1
exec "$driver" "$cases"
