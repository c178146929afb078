#!/usr/bin/env bash
# bench.sh BUILD - runs the benchmarks against the binaries in BUILD.
# Each benchmark prints a human table (and machine-readable lines); speeds
# are reported as ratios against peers measured in the same run.
set -euo pipefail
BUILD=${1:-build}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SHARED=${SRA_SHARED:-$ROOT/../shared}

echo "== bench-cache (cache write/read throughput, compression)"
"$BUILD/bench-cache"

echo
echo "== tokenizers: sra-tokenize vs Hugging Face tokenizers 0.22 (same corpus, documents, machine)"
if [ ! -d "$SHARED/corpus" ] || [ ! -x "$BUILD/sra-tokenize" ]; then
    echo "skipped: needs $SHARED/corpus and $BUILD/sra-tokenize"; exit 0
fi
TMP=$(mktemp -d /tmp/sra-bench-XXXXXX)
trap 'rm -rf "$TMP"' EXIT
cat "$SHARED/corpus/tinyshakespeare.txt" "$SHARED/corpus/moby-dick.txt" "$SHARED/corpus/sotu.txt" > "$TMP/corpus.txt"
# The peer: the real HF tokenizers through its npm binding (see shared/tools/README.md).
HFREF=${HFREF:-$ROOT/$BUILD/hfref}
have_hf=0
if command -v node >/dev/null; then
    if [ ! -d "$HFREF/node_modules/@anush008/tokenizers" ]; then
        (mkdir -p "$HFREF" && cd "$HFREF" && npm init -y >/dev/null 2>&1 &&
         npm install --silent @anush008/tokenizers@0.6.0 >/dev/null 2>&1) || true
    fi
    [ -d "$HFREF/node_modules/@anush008/tokenizers" ] && have_hf=1
fi
[ $have_hf = 1 ] || echo "(HF tokenizers not available: npm install failed; printing sra only)"
printf "%-10s %12s %12s %8s %14s\n" tokenizer "sra MB/s" "HF MB/s" ratio "sra 2 thr MB/s"
for t in gpt2 llama3 qwen3 mistral; do
    tj="$SHARED/tokenizers/$t/tokenizer.json"
    out=$("$BUILD/sra-tokenize" --tokenizer "$tj" --bench "$TMP/corpus.txt" --doc-bytes 4096 --threads 2)
    ours=$(awk '/1 thread:/ {print $3}' <<<"$out")
    two=$(awk '/2 threads:/ {print $3}' <<<"$out")
    hf=NA; ratio=NA
    if [ $have_hf = 1 ]; then
        hf=$(NODE_PATH="$HFREF/node_modules" node "$SHARED/tools/hf-bench.js" 4096 3 "$tj" 2>/dev/null |
             awk -F'\t' '/median/ {split($2, a, " "); print a[2]}')
        ratio=$(awk -v a="$ours" -v b="$hf" 'BEGIN {printf "%.1fx", a / b}')
    fi
    printf "%-10s %12s %12s %8s %14s\n" "$t" "$ours" "$hf" "$ratio" "$two"
done
