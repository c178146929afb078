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
echo "== teacher forward: ~100M-parameter random Llama, T=512 (extract/teacher.h) vs OpenBLAS sgemm in the same run"
"$BUILD/bench-forward" --T 512 --reps 5
echo "(BF16 and F16 weights, converted inside each matmul:)"
"$BUILD/bench-forward" --T 512 --reps 5 --dtype BF16 | grep -E "^forward|forward /|RSS|BENCH_JSON"
"$BUILD/bench-forward" --T 512 --reps 5 --dtype F16 | grep -E "^forward|forward /|RSS|BENCH_JSON"
echo "(B=4 sequences of 512, an extraction batch:)"
"$BUILD/bench-forward" --T 512 --B 4 --reps 3 | grep -E "^forward|forward /|BENCH_JSON"

echo
echo "== sra-extract vs the bare teacher forward on the same sequences, same run (extract/extract.h)"
if [ -f "$SHARED/models/tinystories-656k/model.safetensors" ]; then
    EXT=$(mktemp -d /tmp/sra-bench-ext-XXXXXX)
    head -c 300000 "$SHARED/corpus/tinyshakespeare.txt" > "$EXT/shakespeare.txt"
    echo "-- TinyStories-656k (real, tiny: the worst case for overhead), 300 KB of Shakespeare"
    "$BUILD/bench-extract" --teacher "$SHARED/models/tinystories-656k" --data "$EXT/shakespeare.txt"
    echo "-- ~110M random Llama (bench-forward's) with the Llama-2 tokenizer, 24 KB of Moby-Dick"
    "$BUILD/bench-forward" --write-model "$EXT/t110"
    cp "$SHARED/tokenizers/llama2/tokenizer.json" "$EXT/t110/"
    head -c 24000 "$SHARED/corpus/moby-dick.txt" > "$EXT/moby.txt"
    "$BUILD/bench-extract" --teacher "$EXT/t110" --data "$EXT/moby.txt" --batch 4
    rm -rf "$EXT"
else
    echo "skipped: needs $SHARED/models/tinystories-656k"
fi

echo
echo "== sra-train: distillation step time, sra (paper and v1 presets) vs ce on the same student and data; loader waits (train/distill.h)"
if [ -f "$SHARED/models/tinystories-656k/model.safetensors" ]; then
    DST=$(mktemp -d /tmp/sra-bench-dst-XXXXXX)
    head -c 120000 "$SHARED/corpus/tinyshakespeare.txt" > "$DST/d.txt"
    # the paper preset's cache (sra-extract's defaults: mass last, the teacher head stored) and a v1 cache (mass attn)
    "$BUILD/sra-extract" --teacher "$SHARED/models/tinystories-656k" --data "$DST/d.txt" --max-bytes 1000 --out "$DST/cache" --quiet
    "$BUILD/sra-extract" --teacher "$SHARED/models/tinystories-656k" --data "$DST/d.txt" --max-bytes 1000 --mass attn \
        --out "$DST/cache-v1" --quiet
    for tok in gpt2 llama2; do
        for m in ce paper v1; do
            case $m in ce) a=(--method ce --cache "$DST/cache") ;; paper) a=(--method sra --preset paper --cache "$DST/cache") ;;
                       v1) a=(--method sra --preset v1 --cache "$DST/cache-v1") ;; esac
            "$BUILD/sra-train" "${a[@]}" --tokenizer "$SHARED/tokenizers/$tok/tokenizer.json" --d-model 128 \
                --layers 2 --heads 4 --seq 128 --batch 8 --steps 40 --eval-every 0 --ckpt-every 0 \
                --out "$DST/$tok-$m" --quiet
        done
        /usr/bin/python3 - "$DST/$tok-ce/metrics.jsonl" "$DST/$tok-paper/metrics.jsonl" "$DST/$tok-v1/metrics.jsonl" "$tok" \
            "$DST/$tok-paper/train_config.json" <<'PY'
import json, sys
def steps(p):
    L = [json.loads(l) for l in open(p) if "eval_" not in l]
    per = (L[-1]["seconds"] - L[9]["seconds"]) / (len(L) - 10)     # steps 11..40, after warm-up
    return per, L[-1].get("loader_wait_s", 0.0), L[-1]["seconds"], sum(l.get("spans", 0) for l in L[10:]) / (len(L) - 10)
ce, pa, v1 = steps(sys.argv[1]), steps(sys.argv[2]), steps(sys.argv[3])
print("student %-7s d=128 L=2, batch 8 x 128: ce %.3f s/step; paper %.3f s/step (%.2fx ce, target <= 1.3x); "
      "v1 %.3f s/step (%.2fx ce); %.0f spans/step; loader wait %.2f%% of the paper run (target < 1%%)"
      % (sys.argv[4], ce[0], pa[0], pa[0] / ce[0], v1[0], v1[0] / ce[0], pa[3], 100 * pa[1] / pa[2]))
print('BENCH_JSON {"bench":"distill","student":"%s","ce_s":%.4f,"paper_s":%.4f,"v1_s":%.4f,"paper_x":%.4f,'
      '"v1_x":%.4f,"loader_wait":%.5f}' % (sys.argv[4], ce[0], pa[0], v1[0], pa[0] / ce[0], v1[0] / ce[0], pa[1] / pa[2]))
PY
    done
    echo
    echo "== sra-train-mpi: data-parallel distillation, 1 vs 2 ranks on this machine (train/dist.h; GPT-2 student as above)"
    if [ -x "$BUILD/sra-train-mpi" ] && command -v mpirun > /dev/null; then
        export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
        NC=$(nproc)
        MT=(--cache "$DST/cache" --tokenizer "$SHARED/tokenizers/gpt2/tokenizer.json" --d-model 128 --layers 2 --heads 4
            --seq 128 --steps 30 --eval-every 0 --ckpt-every 0 --method sra --quiet)
        "$BUILD/sra-train" "${MT[@]}" --batch 8 --threads 1 --out "$DST/p1t1"
        "$BUILD/sra-train" "${MT[@]}" --batch 8 --threads "$NC" --out "$DST/p1tn"
        mpirun -np 2 --oversubscribe "$BUILD/sra-train-mpi" "${MT[@]}" --batch 4 --threads 1 --out "$DST/p2t1"
        /usr/bin/python3 - "$DST" "$NC" <<'PY'
import json, sys
d, nc = sys.argv[1], int(sys.argv[2])
def run(name):
    L = [json.loads(l) for l in open("%s/%s/metrics.jsonl" % (d, name)) if "eval_" not in l]
    L = L[10:]                                  # steps 11..30, after warm-up
    per = (L[-1]["seconds"] - L[0]["seconds"]) / (len(L) - 1)
    ar = sum(x.get("allreduce_s", 0.0) for x in L) / len(L)
    return per, 8 * 128 / per, ar
a, b, c = run("p1t1"), run("p1tn"), run("p2t1")
print("global batch 8 x 128 tokens per step, %d cores:" % nc)
print("  1 process, 1 thread         %.3f s/step  %7.0f tok/s" % (a[0], a[1]))
print("  1 process, %d threads        %.3f s/step  %7.0f tok/s" % (nc, b[0], b[1]))
print("  2 ranks x 1 thread (mpirun) %.3f s/step  %7.0f tok/s  all-reduce %.4f s/step (%.1f%% of the step)"
      % (c[0], c[1], c[2], 100 * c[2] / c[0]))
print("  2-rank efficiency: %.0f%% of 2 x one single-threaded process; %.2fx the %d-thread process"
      % (100 * c[1] / (2 * a[1]), c[1] / b[1], nc))
print('BENCH_JSON {"bench":"mpi","tok_s_1x1":%.1f,"tok_s_1x%d":%.1f,"tok_s_2x1":%.1f,"allreduce_s":%.5f,"efficiency":%.4f}'
      % (a[1], nc, b[1], c[1], c[2], c[1] / (2 * a[1])))
PY
    else
        echo "skipped: build it with make MPI=1 (Debian openmpi-bin libopenmpi-dev)"
    fi
    rm -rf "$DST"
else
    echo "skipped: needs $SHARED/models/tinystories-656k"
fi

echo
echo "== layers: matmul and attention vs sgemm peak (train/layers.h)"
"$BUILD/bench-layers"

echo
echo "== tokenizers: sra-tokenize vs Hugging Face tokenizers 0.22 (same corpus, documents, machine)"
if [ ! -d "$SHARED/corpus" ] || [ ! -x "$BUILD/sra-tokenize" ]; then
    echo "skipped: needs $SHARED/corpus and $BUILD/sra-tokenize"; exit 0
fi
TMP=$(mktemp -d /tmp/sra-bench-XXXXXX)
trap 'rm -rf "$TMP"' EXIT
cat "$SHARED/corpus/tinyshakespeare.txt" "$SHARED/corpus/moby-dick.txt" "$SHARED/corpus/sotu.txt" > "$TMP/corpus.txt"
# The peer: the real HF tokenizers through its npm binding (see shared/tools/README.md).
have_hf=0
NODE_PATH_HF=$(bash "$ROOT/tests/hfref.sh" "$BUILD") && have_hf=1
[ $have_hf = 1 ] || echo "(HF tokenizers not available: npm install failed; printing sra only)"
NT=$(nproc)
echo "single thread: documents of ~4 KB encoded one after another (hf-bench.js); all cores ($NT): sra threads vs HF encodeBatch"
printf "%-12s %10s %10s %7s   %12s %12s %7s\n" tokenizer "sra MB/s" "HF MB/s" ratio "sra ${NT}thr" "HF batch" ratio
for t in gpt2 llama3 qwen3 mistral llama2 gemma3 deepseek_v3; do
    tj="$SHARED/tokenizers/$t/tokenizer.json"
    out=$("$BUILD/sra-tokenize" --tokenizer "$tj" --bench "$TMP/corpus.txt" --doc-bytes 4096 --threads "$NT")
    ours=$(awk '/^1 thread:/ {print $3}' <<<"$out")
    many=$(awk '/threads:/ {print $3}' <<<"$out")
    [ "$NT" -gt 1 ] || many=$ours
    hf=NA; ratio=NA; hfb=NA; ratiob=NA
    if [ $have_hf = 1 ]; then
        hf=$(NODE_PATH="$NODE_PATH_HF" node "$SHARED/tools/hf-bench.js" 4096 3 "$tj" 2>/dev/null |
             awk -F'\t' '/median/ {split($2, a, " "); print a[2]}')
        hfb=$(HF_BENCH_BATCH=1 NODE_PATH="$NODE_PATH_HF" node "$SHARED/tools/hf-bench.js" 4096 3 "$tj" 2>/dev/null |
             awk -F'\t' '/median/ {split($2, a, " "); print a[2]}')
        ratio=$(awk -v a="$ours" -v b="$hf" 'BEGIN {if (b > 0) printf "%.1fx", a / b; else print "NA"}')
        ratiob=$(awk -v a="$many" -v b="$hfb" 'BEGIN {if (b > 0) printf "%.1fx", a / b; else print "NA"}')
    fi
    printf "%-12s %10s %10s %7s   %12s %12s %7s\n" "$t" "$ours" "$hf" "$ratio" "$many" "$hfb" "$ratiob"
done
