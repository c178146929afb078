#!/usr/bin/env bash
# Data-parallel sra-train over OpenMPI (issue 10; trainer.h, dist.h):
# `mpirun -np 2 sra-train-mpi --batch 4` against one process with
# `--batch 4 --accum 2` (the same global batch of 8 documents): the same
# losses, term by term, and the same evaluations over 50 distillation steps
# and 20 language-model steps; rank 0 alone writes; a resume with another
# world size is refused; killing one rank ends the job with mpirun's error
# naming it, and --resume continues from the last checkpoint to the very
# numbers of an uninterrupted run; SIGTERM (scancel, preemption) stops every
# rank after the same step with a checkpoint, for one process too.
set -uo pipefail
B=${SRA_BUILD:-build}
S=${SRA_SHARED:-../shared}
PY=${SRA_PY:-/usr/bin/python3}
M=$S/models/tinystories-656k
CORPUS=$S/corpus/tinyshakespeare.txt
T=$(mktemp -d /tmp/sra-cli-mpi-XXXXXX)
bgpids=()
cleanup() {
    for p in "${bgpids[@]}"; do kill -9 "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
    pkill -9 -f "$T/" 2>/dev/null
    rm -rf "$T"
}
trap cleanup EXIT
need() { # need WHAT WHY: skip loudly, or fail under CI
    if [ "${CI:-}" = true ]; then echo "not ok - cli_mpi: $1 ($2)"; exit 1; fi
    echo "skip - cli_mpi: $1 ($2)"; exit 0
}
for f in "$M/model.safetensors" "$CORPUS"; do [ -f "$f" ] || need "missing $f" "set SRA_SHARED"; done
command -v mpirun >/dev/null || need "no mpirun" "Debian openmpi-bin; make deps"
[ -x "$B/sra-train-mpi" ] || need "no $B/sra-train-mpi" "make MPI=1 (make test builds it when mpicc is installed)"
. "$(dirname "$0")/lib_cli.sh"

# mpirun as root needs these; one slot per rank is all this test asks for
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
MPI=(mpirun -np 2 --oversubscribe "$B/sra-train-mpi")

# a small cache: the teacher's reference stories and some Shakespeare
teacher_stories "$M" > "$T/data.jsonl"
head -c 40000 "$CORPUS" > "$T/extra.txt"
tail -c 6000 "$CORPUS" > "$T/eval.txt"
check extract 0 "" "$B/sra-extract" --teacher "$M" --data "$T/data.jsonl" --data "$T/extra.txt" --max-bytes 400 \
    --out "$T/cache" --quiet
TOK=$M/tokenizer.json
# the student uses a tokenizer that is not the teacher's: sra-bpe on the data
check bpe 0 "" "$B/sra-bpe" --data "$T/extra.txt" --vocab-size 400 --out "$T/stu.json"
TR=(--tokenizer "$T/stu.json" --eval "$T/eval.txt" --d-model 32 --layers 2 --heads 2 --seq 64 --lr 3e-3 --warmup 5
    --eval-every 25 --eval-max-windows 6 --quiet)

# compare A B: every step's loss terms and every evaluation, relative to
# float-reduction tolerance (the gradient sums of 2 ranks and of 2
# accumulated micro-batches add the same numbers in another order)
compare() {
    "$PY" - "$1/metrics.jsonl" "$2/metrics.jsonl" "${3:-1e-4}" <<'PY'
import json, sys
a = [json.loads(l) for l in open(sys.argv[1])]
b = [json.loads(l) for l in open(sys.argv[2])]
tol = float(sys.argv[3])
steps_a = [x for x in a if "loss" in x]
steps_b = [x for x in b if "loss" in x]
assert len(a) == len(b) and len(steps_a) == len(steps_b), (len(a), len(b))
worst, where = 0.0, ""
for x, y in zip(a, b):
    assert x["step"] == y["step"]
    for k in ("loss", "ce", "span", "geo", "logit", "eval_loss", "eval_bpb", "grad_norm"):
        if k in x:
            d = abs(x[k] - y[k]) / max(abs(y[k]), 1e-3)
            if d > worst: worst, where = d, "%s@%d" % (k, x["step"])
    for k in ("spans", "logit_spans", "eval_tokens", "eval_bytes"):
        if k in x and x[k] != y[k]:
            worst, where = float("inf"), "%s@%d: %d vs %d" % (k, x["step"], x[k], y[k])
print("same" if worst <= tol else "differ", "max rel diff %.3g (%s) over %d steps" % (worst, where, len(steps_a)))
PY
}
has_ranks() { grep -q '"ranks": 2, "allreduce_s": ' "$1/metrics.jsonl" && echo yes; }

# ---------------------------------------------------------------- equivalence
D=("${TR[@]}" --cache "$T/cache" --method sra --steps 50 --ckpt-every 10)
check one_process 0 "" "$B/sra-train" "${D[@]}" --batch 4 --accum 2 --threads 1 --out "$T/one"
check two_ranks 0 "" "${MPI[@]}" "${D[@]}" --batch 4 --out "$T/two"
check two_ranks_equal_one_process_50_steps 0 "^same" compare "$T/one" "$T/two"
check metrics_name_ranks_and_allreduce 0 "^yes" has_ranks "$T/two"
check only_rank0_writes 0 "^ok" bash -c "[ \$(ls '$T/two/ckpt' | grep -c step-) = 5 ] && [ -f '$T/two/final/model.safetensors' ] && echo ok"
# the data are split, not duplicated: 2 ranks with --batch 4 differ from 2 x --batch 4 --accum 1 of one process
check one_process_batch4 0 "" "$B/sra-train" "${D[@]}" --batch 4 --threads 1 --out "$T/b4"
check ranks_read_different_documents 0 "^differ" compare "$T/b4" "$T/two" 1e-4
L=(--tokenizer "$T/stu.json" --data "$T/extra.txt" --eval "$T/eval.txt" --d-model 32 --layers 2 --heads 2 --seq 64
   --steps 20 --warmup 5 --eval-every 10 --eval-max-windows 6 --quiet)
check lm_one_process 0 "" "$B/sra-train" "${L[@]}" --batch 2 --accum 2 --threads 1 --out "$T/lm1"
check lm_two_ranks 0 "" "${MPI[@]}" "${L[@]}" --batch 2 --out "$T/lm2"
check lm_two_ranks_equal_one_process 0 "^same" compare "$T/lm1" "$T/lm2"
check resume_other_world_refused nz "written by 1 rank and this run has 2: the global batch" \
    "${MPI[@]}" "${L[@]}" --batch 2 --steps 25 --resume --out "$T/lm1"

# ---------------------------------------------------------------- a rank dies
R=("${TR[@]}" --cache "$T/cache" --method sra --steps 400 --ckpt-every 10 --batch 4)
check uninterrupted_short 0 "" "${MPI[@]}" "${R[@]}" --stop-after 150 --out "$T/ref"
rank_pid() { # the pid of sra-train-mpi rank $1 writing into $2
    local p
    for p in $(pgrep -f "sra-train-mpi.*$2"); do
        tr '\0' '\n' < /proc/$p/environ 2>/dev/null | grep -qx "OMPI_COMM_WORLD_RANK=$1" && [ "$(cat /proc/$p/comm)" = sra-train-mpi ] && echo "$p"
    done
}
"${MPI[@]}" "${R[@]}" --out "$T/kill" > "$T/kill.log" 2>&1 & mp=$!; bgpids+=($mp)
for _ in $(seq 300); do [ -f "$T/kill/ckpt/latest" ] && break; sleep 0.1; done
victim=$(rank_pid 1 "$T/kill")
if [ -n "$victim" ]; then kill -9 $victim; fi
for _ in $(seq 300); do kill -0 $mp 2>/dev/null || break; sleep 0.1; done
if kill -0 $mp 2>/dev/null; then echo "not ok - killed_rank_ends_job (mpirun still running 30 s after rank 1 was killed)"; kill -9 $mp
else
    wait $mp; rc=$?
    if [ -n "$victim" ] && [ $rc -ne 0 ] && grep -q "rank 1 .*exited on signal 9" "$T/kill.log"; then echo "ok - killed_rank_ends_job (mpirun exit $rc)"
    else echo "not ok - killed_rank_ends_job (victim '${victim}', exit $rc)"; sed 's/^/    /' "$T/kill.log" | head; fi
fi
at=$(cat "$T/kill/ckpt/latest" 2>/dev/null)
check resume_after_kill 0 "" "${MPI[@]}" "${R[@]}" --stop-after $((150 - 10#${at#step-})) --resume --out "$T/kill"
check resumed_equals_uninterrupted 0 "^same" compare "$T/ref" "$T/kill" 0

# ---------------------------------------------------------------- SIGTERM
stop_test() { # stop_test NAME OUT COMMAND...: SIGTERM to every process of the run
    local name=$1 out=$2; shift 2
    "$@" --out "$out" > "$out.log" 2>&1 & local p=$!; bgpids+=($p)
    for _ in $(seq 300); do [ -f "$out/ckpt/latest" ] && break; sleep 0.1; done
    sleep 0.3
    pkill -TERM -f -- "--out $out\$" 2>/dev/null
    for _ in $(seq 300); do kill -0 $p 2>/dev/null || break; sleep 0.1; done
    wait $p; local rc=$?
    local n; n=$(sed -n 's/.*stopped by a signal after step \([0-9]*\); checkpoint .*/\1/p' "$out.log" | head -1)
    if [ $rc -ne 0 ] && [ -n "$n" ] && [ "$(cat "$out/ckpt/latest")" = "$(printf 'step-%08d' "$n")" ]; then
        echo "ok - $name (stopped after step $n, exit $rc)"
    else echo "not ok - $name (exit $rc)"; sed 's/^/    /' "$out.log" | head; fi
}
stop_test sigterm_stops_all_ranks_with_checkpoint "$T/term" "${MPI[@]}" "${R[@]}"
at=$(cat "$T/term/ckpt/latest" 2>/dev/null)
check resume_after_sigterm 0 "" "${MPI[@]}" "${R[@]}" --stop-after $((150 - 10#${at#step-})) --resume --out "$T/term"
check sigterm_resumed_equals_uninterrupted 0 "^same" compare "$T/ref" "$T/term" 0
# one process: the same stop, and exit status 143; an evaluation every
# step, so the stop lands on a due one (it must still be written)
check single_reference 0 "" "$B/sra-train" "${R[@]}" --eval-every 1 --threads 1 --stop-after 40 --out "$T/sref"
"$B/sra-train" "${R[@]}" --eval-every 1 --threads 1 --out "$T/sterm" > "$T/sterm.log" 2>&1 & p=$!; bgpids+=($p)
for _ in $(seq 300); do [ -f "$T/sterm/ckpt/latest" ] && break; sleep 0.1; done
kill -TERM $p; wait $p; rc=$?
if [ $rc = 143 ] && grep -q "stopped by a signal after step" "$T/sterm.log"; then echo "ok - single_process_sigterm_exit_143"
else echo "not ok - single_process_sigterm_exit_143 (exit $rc)"; sed 's/^/    /' "$T/sterm.log" | head; fi
at=$(cat "$T/sterm/ckpt/latest" 2>/dev/null)
check single_resume_after_sigterm 0 "" "$B/sra-train" "${R[@]}" --eval-every 1 --threads 1 --stop-after $((40 - 10#${at#step-})) --resume --out "$T/sterm"
check single_sigterm_resumed_equals_uninterrupted 0 "^same" compare "$T/sref" "$T/sterm" 0
