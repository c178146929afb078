#!/usr/bin/env bash
# CLI contract of sra-train (issue 7): a run writes its resolved config,
# metrics with held-out bits/byte, checkpoints and a final Hugging Face
# folder that sra-generate reads; 10 steps + checkpoint + 10 resumed steps
# give the very losses of 20 uninterrupted steps; a JSON config equals the
# same flags; mismatches and bad values are refused with a message naming
# them; sra-plot draws the curves.
set -uo pipefail
B=${SRA_BUILD:-build}
S=${SRA_SHARED:-../shared}
TOKJ=$S/models/tinystories-656k/tokenizer.json
CORPUS=$S/corpus/tinyshakespeare.txt
T=$(mktemp -d /tmp/sra-cli-train-XXXXXX)
trap 'rm -rf "$T"' EXIT
for f in "$TOKJ" "$CORPUS"; do
    if [ ! -f "$f" ]; then
        if [ "${CI:-}" = true ]; then echo "not ok - missing $f"; exit 1; fi
        echo "skip - cli_train: missing $f (set SRA_SHARED)"; exit 0
    fi
done
. "$(dirname "$0")/lib_cli.sh"

head -c 120000 "$CORPUS" > "$T/train.txt"
tail -c 12000 "$CORPUS" > "$T/eval.txt"
common=(--tokenizer "$TOKJ" --data "$T/train.txt" --eval "$T/eval.txt" --d-model 32 --layers 2 --heads 2
        --seq 32 --batch 4 --warmup 5 --lr 5e-3 --eval-every 10 --ckpt-every 10 --threads 2 --quiet)
losses() { grep -v eval_ "$1/metrics.jsonl" | sed -n 's/.*"step": \([0-9]*\), "loss": \([-0-9.]*\).*/\1 \2/p'; }

check help 0 "usage: sra-train" "$B/sra-train" --help
check missing_flags nz "--tokenizer, --data \\(or --cache\\) and --out are required" "$B/sra-train" --data x
check unknown_flag nz "unknown option '--bogus'" "$B/sra-train" --bogus 1
check bad_value nz "--batch 'x': not a valid value" "$B/sra-train" --batch x
check bad_heads nz "heads must divide d_model" "$B/sra-train" "${common[@]}" --heads 3 --steps 1 --out "$T/bad"

check full_20_steps 0 "" "$B/sra-train" "${common[@]}" --steps 20 --out "$T/full"
check metrics_eval_bpb 0 '"eval_bpb": [0-9.]+' cat "$T/full/metrics.jsonl"
check resolved_config 0 '"d_model":[[:space:]]+32' cat "$T/full/train_config.json"
check checkpoints 0 "step-00000020" cat "$T/full/ckpt/latest"
check ckpt_is_hf_folder 0 "model.safetensors" ls "$T/full/ckpt/step-00000010"
losses "$T/full" > "$T/a"
check loss_falls 0 "falls" awk 'NR==1{a=$2} {b=$2} END{if (b < a - 0.5) print "falls", a, b; else print "flat", a, b}' "$T/a"

check first_10 0 "" "$B/sra-train" "${common[@]}" --steps 20 --stop-after 10 --out "$T/split"
check stopped_at_10 0 "step-00000010" cat "$T/split/ckpt/latest"
check resume_to_20 0 "" "$B/sra-train" "${common[@]}" --steps 20 --out "$T/split" --resume
losses "$T/split" > "$T/b"
check resume_identical 0 "^20 identical" bash -c "[ \$(wc -l < '$T/a') = 20 ] && cmp -s '$T/a' '$T/b' && echo '20 identical' || diff '$T/a' '$T/b'"
check resume_other_lr nz "'lr' is 0.005 in the checkpoint" "$B/sra-train" "${common[@]}" --steps 30 --lr 1e-3 --out "$T/split" --resume

# the same run from a JSON config file (keys = flags)
cat > "$T/cfg.json" <<JSON
{"tokenizer": "$TOKJ", "data": ["$T/train.txt"], "eval": ["$T/eval.txt"], "d_model": 32, "layers": 2,
 "heads": 2, "seq": 32, "batch": 4, "warmup": 5, "lr": 5e-3, "eval_every": 10, "ckpt_every": 10, "steps": 20}
JSON
check config_file 0 "" "$B/sra-train" --config "$T/cfg.json" --out "$T/cfg" --threads 2 --quiet
losses "$T/cfg" > "$T/c"
check config_equals_flags 0 "^same" bash -c "cmp -s '$T/a' '$T/c' && echo same"
echo '{"d_model": "wide"}' > "$T/bad.json"
check config_bad_type nz "key 'd_model' has the wrong type" "$B/sra-train" --config "$T/bad.json"
echo '{"colour": 1}' > "$T/bad2.json"
check config_unknown_key nz "unknown key 'colour'" "$B/sra-train" --config "$T/bad2.json"

# gradient accumulation: 2 micro-batches of 2 draw the same 4 windows as one
# batch of 4, so the losses agree to float summation order
check accum_run 0 "" "$B/sra-train" "${common[@]}" --steps 5 --batch 2 --accum 2 --eval-every 0 --out "$T/accum"
check batch4_run 0 "" "$B/sra-train" "${common[@]}" --steps 5 --batch 4 --eval-every 0 --out "$T/b4"
losses "$T/accum" > "$T/d"; losses "$T/b4" > "$T/e"
check accum_equals_batch 0 "^close" bash -c "paste '$T/d' '$T/e' | awk '{d=\$2-\$4; if (d<0) d=-d; if (d>m) m=d} END {if (NR==5 && m<1e-4) print \"close\", m; else print \"far\", NR, m}'"
# start from a Hugging Face checkpoint (the TinyStories teacher, its own tokenizer)
check from_hf 0 "" "$B/sra-train" --tokenizer "$TOKJ" --data "$T/train.txt" --from "$S/models/tinystories-656k" \
    --seq 64 --batch 2 --steps 3 --eval-every 0 --out "$T/from" --quiet
check from_hf_config 0 '"hidden_size": 128' cat "$T/from/final/config.json"
check generate_from_final 0 "." "$B/sra-generate" --model "$T/full/final" --prompt "ROMEO:" --steps 8
check mismatched_tokenizer nz "do not belong together" "$B/sra-train" --tokenizer "$S/tokenizers/gpt2/tokenizer.json" \
    --data "$T/train.txt" --from "$S/models/tinystories-656k" --steps 1 --out "$T/mm" --quiet
if command -v gnuplot >/dev/null; then
    check plot_svg 0 "loss.svg \(20 steps, 2 evaluations\)" tools/sra-plot "$T/full"
    check plot_is_svg 0 "<svg" head -c 200 "$T/full/loss.svg"
else
    if [ "${CI:-}" = true ]; then echo "not ok - gnuplot missing"; else echo "skip - plot: gnuplot not installed"; fi
fi
