#!/usr/bin/env bash
# run.sh BUILD - runs every test of the suite against the binaries in BUILD
# and ends with the line "N passed, N failed" (plus skips on the line above).
#
# Each test program prints TAP-like lines: "ok - name", "not ok - name",
# "skip - name: why". A program that exits non-zero without printing a
# failure (a crash, a sanitizer report) counts as one failed test.
# Shared assets: SRA_SHARED (default ../shared); missing assets are skipped
# loudly, and under CI=true they fail.
set -uo pipefail
BUILD=${1:-build}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
export SRA_BUILD=$(cd "$BUILD" && pwd)
export SRA_SHARED=${SRA_SHARED:-$ROOT/../shared}
export SRA_PY=${SRA_PY:-/usr/bin/python3}
export HDF5_PLUGIN_PATH=$SRA_BUILD/plugins
cd "$ROOT"

# Reference data from the real HF tokenizers, derived at test time (never
# committed): BPE words for test_bpe, whole pipelines for test_tokenizer.
# Regenerated when missing or older than its generator.
if NODE_PATH_HF=$(bash tests/hfref.sh "$SRA_BUILD"); then
    if [ ! -s "$SRA_BUILD/bpe_ref.jsonl" ] || [ tests/gen_bpe_ref.js -nt "$SRA_BUILD/bpe_ref.jsonl" ]; then
        NODE_PATH=$NODE_PATH_HF node tests/gen_bpe_ref.js "$SRA_SHARED" "$SRA_BUILD/bpe_ref.jsonl.tmp" >"$SRA_BUILD/gen_bpe_ref.log" 2>&1 &&
            mv "$SRA_BUILD/bpe_ref.jsonl.tmp" "$SRA_BUILD/bpe_ref.jsonl"
    fi
    if [ ! -s "$SRA_BUILD/tok_ref/index.txt" ] || [ tests/gen_tok_ref.js -nt "$SRA_BUILD/tok_ref/index.txt" ]; then
        rm -rf "$SRA_BUILD/tok_ref"
        NODE_PATH=$NODE_PATH_HF node tests/gen_tok_ref.js "$SRA_SHARED" "$SRA_BUILD/tok_ref" >"$SRA_BUILD/gen_tok_ref.log" 2>&1 ||
            rm -rf "$SRA_BUILD/tok_ref"
    fi
fi
[ -s "$SRA_BUILD/bpe_ref.jsonl" ] && export SRA_BPE_REF=$SRA_BUILD/bpe_ref.jsonl
[ -s "$SRA_BUILD/tok_ref/index.txt" ] && export SRA_TOK_REF=$SRA_BUILD/tok_ref

# Random checkpoints of every model family with their numpy reference
# outputs (tests/model_ref.py, float64), for test_teacher. Regenerated when
# missing or older than the script.
MR=$SRA_BUILD/model_ref
if [ ! -f "$MR/done" ] || [ tests/model_ref.py -nt "$MR/done" ] || [ tests/run.sh -nt "$MR/done" ]; then
    rm -rf "$MR" && mkdir -p "$MR"
    ok=1
    ids='[[1, 17, 250, 3, 99, 42, 7, 7, 180, 5, 64, 2, 11], [1, 200, 30, 4], [1, 9, 299, 0, 150, 33, 71, 88, 120, 6]]'
    for fam in llama_gqa_llama3rope qwen2_bias qwen3_qknorm mistral; do
        for dt in F32 BF16 F16; do
            d=$MR/${fam}_$dt
            if [ $dt = F32 ]; then
                "$SRA_PY" tests/model_ref.py make-random "$d" --family $fam --seed 7 >>"$MR/log" 2>&1 || ok=0
            else
                "$SRA_PY" tests/model_ref.py convert "$MR/${fam}_F32" "$d" --dtype $dt >>"$MR/log" 2>&1 || ok=0
            fi
            echo "$ids" > "$d/ids.json"
            "$SRA_PY" tests/model_ref.py forward "$d" --ids "$ids" --out "$d/ref" --mass-layer 2 --gen 6 >>"$MR/log" 2>&1 || ok=0
        done
    done
    for dt in F16 BF16; do
        "$SRA_PY" tests/model_ref.py convert "$SRA_SHARED/models/tinystories-656k" "$MR/tinystories_$dt" \
            --dtype $dt >>"$MR/log" 2>&1 || ok=0
    done
    [ $ok = 1 ] && touch "$MR/done"
fi
[ -f "$MR/done" ] && export SRA_MODEL_REF=$MR

pass=0; fail=0; skip=0; failed_names=()
run_one() { # name, command...
    local name=$1; shift
    local out rc
    local t0=$(date +%s.%N)
    out=$("$@" 2>&1); rc=$?
    local p f s
    p=$(grep -c '^ok - ' <<<"$out"); f=$(grep -c '^not ok - ' <<<"$out"); s=$(grep -c '^skip - ' <<<"$out")
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; out="$out"$'\n'"not ok - $name exited with status $rc"; fi
    pass=$((pass + p)); fail=$((fail + f)); skip=$((skip + s))
    local dt=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}')
    if [ "$f" -gt 0 ]; then
        failed_names+=("$name")
        echo "FAIL $name (${dt}s)"; sed 's/^/    /' <<<"$out"
    else
        echo "pass $name: $p ok, $s skipped (${dt}s)"
        grep '^skip - ' <<<"$out" | sed 's/^/    /'
    fi
}

for t in "$SRA_BUILD"/tests/test_*; do
    [ -x "$t" ] && run_one "$(basename "$t")" "$t"
done
for t in tests/test_*.py; do
    [ -f "$t" ] && run_one "$(basename "$t")" "$SRA_PY" "$t"
done
for t in tests/cli_*.sh; do
    [ -f "$t" ] && run_one "$(basename "$t")" bash "$t"
done

echo
[ ${#failed_names[@]} -gt 0 ] && echo "failed: ${failed_names[*]}"
echo "$skip skipped"
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
