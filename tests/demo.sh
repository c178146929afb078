#!/usr/bin/env bash
# demo.sh BUILD - the main job on an embedded default.
# Until the end-to-end demo lands (issue 9), this writes a synthetic teacher
# cache with the test fixture generator and shows what sra-inspect sees in it.
set -euo pipefail
B=${1:-build}
OUT=$B/demo
mkdir -p "$OUT"
echo "== writing a synthetic cache shard: $OUT/demo.h5"
"$B/tests/cache_fixture" write "$OUT/demo.h5" --docs 2000 --d 256 --k 64 --layers 1
echo "== sra-inspect $OUT/demo.h5"
"$B/sra-inspect" "$OUT/demo.h5"
echo "== sra-inspect --doc 0 --atoms 8 $OUT/demo.h5"
"$B/sra-inspect" --doc 0 --atoms 8 "$OUT/demo.h5"
echo
echo "The shard is plain HDF5. Read it from Python with:"
echo "  HDF5_PLUGIN_PATH=$B/plugins /usr/bin/python3 -c \"import h5py; f = h5py.File('$OUT/demo.h5'); print(f['atoms/com/0'][:2])\""
