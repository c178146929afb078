#!/usr/bin/env bash
# bench.sh BUILD - runs the benchmarks against the binaries in BUILD.
# Each benchmark prints a human table and one "BENCH_JSON {...}" line; speeds
# are reported as ratios against peers measured in the same run.
set -euo pipefail
BUILD=${1:-build}

echo "== bench-cache (cache write/read throughput, compression)"
"$BUILD/bench-cache"
