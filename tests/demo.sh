#!/usr/bin/env bash
# demo.sh BUILD - the main job on a default that needs no flags.
#
# With the shared assets beside the repository (SRA_SHARED, default
# ../shared) it runs the whole pipeline small: the real TinyStories-656K
# teacher samples its own stories (fixed seeds, disjoint training and
# held-out sets), sra-extract runs it over the training stories, and
# sra-train distills two students that use a different tokenizer (GPT-2)
# from that cache, one with cross-entropy only (ce) and one with SRA, and
# prints their held-out bits per byte beside the teacher's. A few minutes
# on 2 cores. (The self-contained demo with its own generated data,
# tokenizers and teacher is issue 9.)
# Without the assets it writes a synthetic cache shard and inspects it.
set -euo pipefail
B=${1:-build}
OUT=$B/demo
S=${SRA_SHARED:-../shared}
M=$S/models/tinystories-656k
mkdir -p "$OUT"
if [ ! -f "$M/model.safetensors" ] || [ ! -f "$S/corpus/tinyshakespeare.txt" ]; then
    echo "== ($M not found: set SRA_SHARED for the full pipeline; showing the cache format instead)"
    echo "== writing a synthetic cache shard: $OUT/demo.h5"
    "$B/tests/cache_fixture" write "$OUT/demo.h5" --docs 2000 --d 256 --k 64 --layers 1
    "$B/sra-inspect" "$OUT/demo.h5"
    exit 0
fi
rm -rf "$OUT/cache" "$OUT/ce" "$OUT/sra"
echo "== 0/3 sra-generate: 800 training and 80 held-out stories sampled from the teacher (seeds 1.., 100001..)"
G=("$B/sra-generate" --model "$M" --prompt "Once upon a time" --steps 250 --temperature 1 --stop-eos --jsonl)
"${G[@]}" --samples 800 --seed 1 > "$OUT/train.jsonl"
"${G[@]}" --samples 80 --seed 100001 > "$OUT/heldout.jsonl"
echo "== 1/3 sra-extract: the teacher over the training stories -> $OUT/cache"
"$B/sra-extract" --teacher "$M" --data "$OUT/train.jsonl" --out "$OUT/cache"
"$B/sra-inspect" "$OUT/cache/shard-00000-of-00001.h5" | sed -n '1,12p'
GPT2=$S/tokenizers/gpt2/tokenizer.json
common=(--cache "$OUT/cache" --tokenizer "$GPT2" --eval "$OUT/heldout.jsonl" --d-model 64 --layers 2 --heads 4
        --seq 256 --batch 8 --steps 150 --warmup 15 --lr 3e-3 --eval-every 50)
echo "== 2/3 sra-train --method ce (student: GPT-2 tokenizer, d=64, 2 layers)"
"$B/sra-train" "${common[@]}" --method ce --out "$OUT/ce"
echo "== 3/3 sra-train --method sra (same student, same steps)"
"$B/sra-train" "${common[@]}" --method sra --out "$OUT/sra"
# the teacher on the same held-out text, with its own tokenizer (--steps 0: evaluate only)
"$B/sra-train" --tokenizer "$M/tokenizer.json" --data "$OUT/heldout.jsonl" --eval "$OUT/heldout.jsonl" --from "$M" \
    --seq 256 --batch 8 --steps 0 --out "$OUT/teacher" --quiet
bpb() { grep eval_bpb "$1/metrics.jsonl" 2>/dev/null | tail -1 | sed 's/.*"eval_bpb": \([0-9.]*\).*/\1/'; }
echo
echo "held-out bits per byte (lower is better; 150 steps of a 3.3M-parameter student):"
printf "  %-10s %s\n" "teacher" "$(bpb "$OUT/teacher") (TinyStories-656K on its own samples)" \
    ce "$(bpb "$OUT/ce")" sra "$(bpb "$OUT/sra")"
echo "outputs: $OUT/cache (teacher cache), $OUT/ce and $OUT/sra (metrics.jsonl, checkpoints, final/ students)"
echo "plot: tools/sra-plot $OUT/sra ; generate: $B/sra-generate --model $OUT/sra/final --prompt 'Once upon a time' --steps 30"
