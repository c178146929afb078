#!/usr/bin/env bash
# CLI contract of sra-inspect: output on a good shard, --doc, and a clear
# message + non-zero exit on every kind of misuse or bad file.
set -uo pipefail
B=${SRA_BUILD:-build}
T=$(mktemp -d /tmp/sra-cli-XXXXXX)
trap 'rm -rf "$T"' EXIT
"$B/tests/cache_fixture" write "$T/a.h5" --docs 12 --d 32 --k 6 >/dev/null || { echo "not ok - fixture"; exit 1; }

. "$(dirname "$0")/lib_cli.sh"

check summary 0 "12 docs, [0-9]+ atoms" "$B/sra-inspect" "$T/a.h5"
check summary_tables 0 "/atoms/com/0 +12[0-9]x32|/atoms/com/0 +[0-9]+x32" "$B/sra-inspect" "$T/a.h5"
check summary_filters 0 "shuffle\+zstd\(3\)" "$B/sra-inspect" "$T/a.h5"
check doc_dump 0 "doc 3: record 7" "$B/sra-inspect" --doc 3 "$T/a.h5"
check doc_tokens 0 'next: "' "$B/sra-inspect" --doc 0 "$T/a.h5"
check doc_out_of_range nz "document 12 out of range" "$B/sra-inspect" --doc 12 "$T/a.h5"
check help 0 "usage: sra-inspect" "$B/sra-inspect" --help
check no_args nz "usage" "$B/sra-inspect"
check bad_flag nz "unknown option --frobnicate" "$B/sra-inspect" --frobnicate "$T/a.h5"
check bad_number nz "expected a non-negative integer" "$B/sra-inspect" --doc x "$T/a.h5"
check missing_file nz "$T/nope.h5: cannot open" "$B/sra-inspect" "$T/nope.h5"
echo hello > "$T/text.h5"
check not_hdf5 nz "text.h5: not an HDF5 file" "$B/sra-inspect" "$T/text.h5"
cp "$T/a.h5" "$T/a.h5.tmp"
check leftover_tmp nz "a.h5.tmp: a leftover temporary file" "$B/sra-inspect" "$T/a.h5.tmp"
head -c 20000 "$T/a.h5" > "$T/trunc.h5"
check truncated nz "trunc.h5: .*truncated" "$B/sra-inspect" "$T/trunc.h5"
# several files: the good one is printed, the bad one fails the run
check mixed nz "text.h5: not an HDF5 file" "$B/sra-inspect" "$T/a.h5" "$T/text.h5"
# the teacher head line (cache_head.h): a lone shard has no folder manifest;
# a folder whose manifest names no head (made before the head travelled)
# says so and still inspects; --doc wants a shard, not a folder
check head_lone_shard 0 "teacher head +none known: no manifest.json" "$B/sra-inspect" "$T/a.h5"
mkdir "$T/old" && cp "$T/a.h5" "$T/old/shard-00000-of-00001.h5"
echo '{"format": "sra-cache-manifest", "complete": true, "docs": 12, "shards": [{"file": "shard-00000-of-00001.h5", "docs": 12, "atoms": 5, "bytes": 1000}]}' > "$T/old/manifest.json"
check head_none_folder 0 "teacher head +none: .*no \"teacher_head\".*re-extract" "$B/sra-inspect" "$T/old"
check head_none_folder_shards 0 "shard +shard-00000-of-00001.h5: 12 docs" "$B/sra-inspect" "$T/old"
check head_none_shard 0 "teacher head +none: " "$B/sra-inspect" "$T/old/shard-00000-of-00001.h5"
check folder_doc nz "is a folder: --doc needs a shard file" "$B/sra-inspect" --doc 0 "$T/old"
check folder_no_manifest nz "manifest.json: cannot read" "$B/sra-inspect" "$T"
