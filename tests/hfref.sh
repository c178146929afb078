#!/usr/bin/env bash
# hfref.sh BUILD - makes sure the reference Hugging Face tokenizers (the real
# Rust library, 0.22, through its npm binding @anush008/tokenizers@0.6.0; see
# shared/tools/README.md) is installed under BUILD/hfref, and prints the
# NODE_PATH to use. Exits 1 (with the reason on stderr) if node or npm or
# the registry is not available.
set -uo pipefail
BUILD=${1:-build}
HFREF=${HFREF:-$(cd "$BUILD" && pwd)/hfref}
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    echo "hfref: node and npm are needed for the HF reference (apt-get install -y nodejs npm)" >&2
    exit 1
fi
if [ ! -d "$HFREF/node_modules/@anush008/tokenizers" ]; then
    mkdir -p "$HFREF" && cd "$HFREF" && npm init -y >/dev/null 2>&1 &&
        npm install --silent @anush008/tokenizers@0.6.0 >/dev/null 2>&1
fi
if ! NODE_PATH="$HFREF/node_modules" node -e "require('@anush008/tokenizers')" 2>/dev/null; then
    echo "hfref: could not install @anush008/tokenizers@0.6.0 into $HFREF" >&2
    exit 1
fi
echo "$HFREF/node_modules"
