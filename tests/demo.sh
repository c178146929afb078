#!/usr/bin/env bash
# demo.sh BUILD - the whole pipeline on an embedded default, nothing needed
# outside the repository (issue 9):
#   1. sra-stories writes training and held-out stories from our own
#      probabilistic grammar (disjoint seed ranges);
#   2. sra-bpe trains two different tokenizers on them: a byte-level BPE of
#      1024 tokens for the teacher, plain bytes (257 tokens) for the students;
#   3. sra-train trains the teacher (a small Llama) on the stories;
#   4. sra-extract runs the teacher once and writes its cache;
#   5. sra-train distills two identical students with the byte tokenizer,
#      one with cross-entropy only (ce), one with SRA (the default preset,
#      paper: method.md §9; the cache carries the teacher head it needs);
#   6. a table of held-out bits per byte: teacher, ce, sra.
# TEACHER=DIR DATA=FILE (make demo TEACHER=... DATA=...) runs steps 4-6 on
# a Hugging Face teacher and a user's data instead: held-out = the last
# tenth of DATA's records, students use a 1024-token BPE trained on DATA.
# DEMO_STEPS scales the training (default 300 student steps).
set -euo pipefail
B=${1:-build}
OUT=$B/demo
STEPS=${DEMO_STEPS:-300}
mkdir -p "$OUT"
rm -rf "$OUT/cache" "$OUT/ce" "$OUT/sra" "$OUT/teacher" "$OUT/teacher_eval"
t0=$(date +%s)
say() { echo "== [$(( $(date +%s) - t0 ))s] $*"; }

if [ -n "${TEACHER:-}" ] || [ -n "${DATA:-}" ]; then
    [ -n "${TEACHER:-}" ] && [ -n "${DATA:-}" ] || { echo "demo: give both TEACHER=DIR and DATA=FILE" >&2; exit 2; }
    [ -f "$TEACHER/config.json" ] || { echo "demo: $TEACHER/config.json: no such file (TEACHER is a Hugging Face model folder)" >&2; exit 2; }
    [ -f "$DATA" ] || { echo "demo: $DATA: no such file" >&2; exit 2; }
    say "splitting $DATA: the last tenth of its lines is held out"
    n=$(wc -l < "$DATA"); h=$(( n / 10 > 0 ? n / 10 : 1 ))
    ext=${DATA##*.}; [ "$ext" = jsonl ] || ext=txt
    head -n $(( n - h )) "$DATA" > "$OUT/train.$ext"; tail -n "$h" "$DATA" > "$OUT/heldout.$ext"
    TRAIN=$OUT/train.$ext; HELD=$OUT/heldout.$ext; TDIR=$TEACHER
    say "sra-bpe: a 1024-token student tokenizer trained on the data"
    "$B/sra-bpe" --data "$TRAIN" --vocab-size 1024 --special "<|endoftext|>" --out "$OUT/student_tokenizer.json"
else
    say "1/6 sra-stories: 2000 training stories (seeds 1..), 200 held-out (seeds 1000000..)"
    "$B/sra-stories" --n 2000 --seed 1 --jsonl > "$OUT/train.jsonl"
    "$B/sra-stories" --n 200 --seed 1000000 --jsonl > "$OUT/heldout.jsonl"
    TRAIN=$OUT/train.jsonl; HELD=$OUT/heldout.jsonl
    echo "   $(wc -c < "$TRAIN") bytes of training text; a story:"; head -1 "$TRAIN" | cut -c1-240
    say "2/6 sra-bpe: teacher tokenizer (BPE, 1024) and student tokenizer (bytes, 257)"
    "$B/sra-bpe" --data "$TRAIN" --vocab-size 1024 --special "<|endoftext|>" --out "$OUT/teacher_tokenizer.json"
    "$B/sra-bpe" --data "$TRAIN" --vocab-size 257 --special "<|endoftext|>" --out "$OUT/student_tokenizer.json"
    say "3/6 sra-train: the teacher (d=128, 4 layers, BPE tokens)"
    "$B/sra-train" --tokenizer "$OUT/teacher_tokenizer.json" --data "$TRAIN" --eval "$HELD" --d-model 128 --layers 4 \
        --heads 4 --seq 256 --batch 8 --steps $(( STEPS * 2 )) --warmup 30 --lr 3e-3 --eval-every 100 \
        --eval-max-windows 64 --ckpt-every 0 --out "$OUT/teacher"
    TDIR=$OUT/teacher/final
fi
say "4/6 sra-extract: the teacher over the training data -> $OUT/cache"
# documents are cut into pieces of at most 96 teacher tokens (between atoms)
# so that the students, which read 256 tokens of each cached document, see
# all of the text rather than the first lines of every story
"$B/sra-extract" --teacher "$TDIR" --data "$TRAIN" --out "$OUT/cache" --max-tokens 96
common=(--cache "$OUT/cache" --tokenizer "$OUT/student_tokenizer.json" --eval "$HELD" --d-model 64 --layers 2
        --heads 4 --seq 256 --batch 8 --steps "$STEPS" --warmup 20 --lr 3e-3 --eval-every 100
        --eval-max-windows 64 --ckpt-every 0)
say "5/6 sra-train --method ce: the student (d=64, 2 layers, its own tokenizer)"
"$B/sra-train" "${common[@]}" --method ce --out "$OUT/ce"
say "5/6 sra-train --method sra (preset paper, the default): the same student, the same steps, distilled"
"$B/sra-train" "${common[@]}" --method sra --out "$OUT/sra"
# the teacher on the held-out text with its own tokenizer (--steps 0: evaluate only)
"$B/sra-train" --tokenizer "$TDIR/tokenizer.json" --data "$HELD" --eval "$HELD" --from "$TDIR" --seq 256 --batch 8 \
    --steps 0 --eval-max-windows 64 --out "$OUT/teacher_eval" --quiet
bpb() { grep eval_bpb "$1/metrics.jsonl" | tail -1 | sed 's/.*"eval_bpb": \([0-9.]*\).*/\1/'; }
say "6/6 held-out bits per byte (lower is better; every number measured in this run)"
printf "  %-8s %s\n" teacher "$(bpb "$OUT/teacher_eval")" ce "$(bpb "$OUT/ce")" sra "$(bpb "$OUT/sra")"
echo "outputs: $OUT/cache (teacher cache), $OUT/ce and $OUT/sra (metrics.jsonl, final/ students)"
echo "next: tools/sra-plot $OUT/sra ; $B/sra-generate --model $OUT/sra/final --prompt 'Once' --steps 60"
