#!/bin/sh
# install-deps.sh — install everything Rein needs to build and test, on Debian 12 (run as root).
#
# Idempotent and quiet when everything is already present: it asks dpkg first and only calls
# apt-get when a package is missing.  Every dependency of the project is named here and in the
# README; nothing is installed by hand.
set -eu

PKGS="
  build-essential cmake ninja-build
  flex bison
  llvm-19-dev llvm-19-tools clang-19 libclang-rt-19-dev libomp-19-dev
  python3 python3-torch python3-numpy
  libjansson-dev pkg-config libopenblas-pthread-dev libxxhash-dev
  libpcre2-dev libutf8proc-dev
  libopenmpi-dev openmpi-bin
"

# Node.js runs the test oracles only (the Hugging Face tokenizer and Jinja reference
# implementations, fetched from the npm registry by tests/assets/fetch-npm-assets.sh).  A Node.js
# from another source that already brings npm is kept as it is.
PKGS="$PKGS nodejs"
if ! command -v npm >/dev/null 2>&1; then PKGS="$PKGS npm"; fi

missing=""
for p in $PKGS; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing="$missing $p"
  fi
done

if [ -n "$missing" ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "install-deps.sh: missing packages:$missing (run as root to install them)" >&2
    exit 1
  fi
  echo "install-deps.sh: installing$missing"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # shellcheck disable=SC2086
  apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi
