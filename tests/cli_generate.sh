#!/usr/bin/env bash
# CLI contract of sra-generate: greedy ids equal the numpy reference's
# (shared/models/tinystories-656k/reference/*/greedy.json), text output,
# sampling repeatable by seed, and clear errors with a non-zero exit.
set -uo pipefail
B=${SRA_BUILD:-build}
S=${SRA_SHARED:-../shared}
PY=${SRA_PY:-/usr/bin/python3}
M=$S/models/tinystories-656k
T=$(mktemp -d /tmp/sra-cli-XXXXXX)
trap 'rm -rf "$T"' EXIT
if [ ! -f "$M/model.safetensors" ]; then
    if [ "${CI:-}" = true ]; then echo "not ok - missing $M"; exit 1; fi
    echo "skip - cli_generate: missing $M (set SRA_SHARED)"; exit 0
fi

. "$(dirname "$0")/lib_cli.sh"

for p in once lily-tom dog-sad; do
    text=$("$PY" -c "import json,sys; print(json.load(open(sys.argv[1]))['text'])" "$M/reference/$p/ids.json")
    want=$("$PY" -c "import json,sys; print(' '.join(map(str, json.load(open(sys.argv[1]))['new_ids'])))" "$M/reference/$p/greedy.json")
    check "greedy_ids_$p" 0 "^$want\$" "$B/sra-generate" --model "$M" --prompt "$text" --steps 40 --ids
done
check greedy_text 0 "Once upon a time, a little girl named Lily lived in a small house" \
    "$B/sra-generate" --model "$M" --prompt "Once upon a time" --steps 16
a=$("$B/sra-generate" --model "$M" --prompt "Once upon a time" --steps 20 --temperature 0.9 --top-p 0.9 --seed 5 --ids)
check seed_repeatable 0 "^$a\$" "$B/sra-generate" --model "$M" --prompt "Once upon a time" --steps 20 --temperature 0.9 --top-p 0.9 --seed 5 --ids
check help 0 "usage: sra-generate" "$B/sra-generate" --help
check no_model nz "--model DIR and --prompt TEXT are required" "$B/sra-generate" --prompt hi
check bad_temperature nz "--temperature -1: expected a number" "$B/sra-generate" --model "$M" --prompt hi --temperature -1
check missing_dir nz "$T/none" "$B/sra-generate" --model "$T/none" --prompt hi
check too_long nz "exceed max_position_embeddings 512" "$B/sra-generate" --model "$M" --prompt hi --steps 600
mkdir -p "$T/m" && cp "$M/tokenizer.json" "$M/config.json" "$T/m/" && head -c 100000 "$M/model.safetensors" > "$T/m/model.safetensors"
check truncated_weights nz "model.safetensors" "$B/sra-generate" --model "$T/m" --prompt hi
