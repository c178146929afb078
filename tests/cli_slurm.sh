#!/usr/bin/env bash
# Extraction on SLURM (issue 10), tested on a real single-node cluster that
# this script starts from the Debian packages (munge, slurm-wlm) on
# localhost, in a temporary folder, and stops again:
#   - without Slurm: sra-extract stops cleanly on SIGTERM/SIGINT (exit
#     128+signal, one clear line, no *.tmp, complete shards kept, the rerun
#     resumes to identical bytes); --task I/T and the submitter refuse bad
#     arguments; the sbatch script says so when it cannot find the binary;
#   - a 4-task array (tools/sra-extract-slurm, --task over --shards 8) plus
#     its finalize job equals a single-process extraction, byte for byte;
#   - the same with one task requeued mid-shard (`scontrol requeue`, i.e.
#     SIGTERM from slurmstepd, as on preemption): the task says it stopped,
#     leaves no .tmp, keeps its complete shard, runs again and the result
#     is identical again.
# Every daemon and job it started is stopped on exit, failure included.
# The cluster part needs root (slurmd must be root to start jobs) and the
# packages; without them it is skipped, loudly (under CI=true it fails).
# About 45 s on 2 busy cores.
set -uo pipefail
B=${SRA_BUILD:-build}
S=${SRA_SHARED:-../shared}
PY=${SRA_PY:-/usr/bin/python3}
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
M=$S/models/tinystories-656k
CORPUS=$S/corpus/tinyshakespeare.txt
SAME=$HERE/h5_same.py
SUBMIT=$ROOT/tools/sra-extract-slurm
SBATCH_SCRIPT=$ROOT/tools/sra-extract.sbatch
export PATH=$PATH:/usr/sbin:/sbin
T=$(mktemp -d /tmp/sra-cli-slurm-XXXXXX)
D=$T/slurm                  # the cluster: munge key and socket, slurm.conf, state, logs
MARK="SRA_SLURM_TEST=$T"    # in the environment of every daemon and job we start (cleanup finds them by it)
bgpids=() munge_pid="" ctld_pid="" slurmd_pid="" cluster_up=0 watchdog="" any_failed=0

# ------------------------------------------------------------ clean-up

# pids of processes whose environment carries MARK (slurmstepd, job steps)
marked_pids() {
    local f p
    for f in /proc/[0-9]*/environ; do
        p=${f#/proc/}; p=${p%/environ}
        [ "$p" = $$ ] && continue
        grep -qzxF -- "$MARK" "$f" 2>/dev/null && echo "$p"
    done
}

# stop_pid PID SECONDS: SIGTERM, then SIGKILL when it has not gone by then
stop_pid() {
    local p=$1 i
    [ -n "$p" ] || return 0
    kill "$p" 2>/dev/null || return 0
    for ((i = 0; i < $2 * 10; i++)); do kill -0 "$p" 2>/dev/null || return 0; sleep 0.1; done
    kill -9 "$p" 2>/dev/null
}

diagnostics() {
    echo "    --- diagnostics ($D) ---"
    if [ "$cluster_up" = 1 ]; then
        timeout 10 squeue -t all -o '%.18i %.9P %.24j %.10T %.10M %.20r' 2>&1 | sed 's/^/    /'
    fi
    local f
    for f in "$D"/log/* "$T"/logs/*; do
        [ -f "$f" ] || continue
        echo "    --- tail ${f#$T/} ---"; tail -n 15 "$f" | sed 's/^/    /'
    done
}

cleanup() {
    local p sl
    trap '' INT TERM # finish cleaning up, whatever comes
    if [ -n "$watchdog" ]; then
        sl=$(pgrep -P "$watchdog"); kill "$watchdog" 2>/dev/null
        [ -n "$sl" ] && kill $sl 2>/dev/null
        wait "$watchdog" 2>/dev/null
    fi
    [ "$any_failed" = 1 ] && diagnostics
    for p in "${bgpids[@]}"; do kill -9 "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
    if [ "$cluster_up" = 1 ]; then
        timeout 10 scancel --quiet --user="$(id -un)" 2>/dev/null
        for ((p = 0; p < 100; p++)); do
            [ -z "$(timeout 5 squeue -h -o %i 2>/dev/null)" ] && break
            sleep 0.1
        done
    fi
    stop_pid "$slurmd_pid" 10
    stop_pid "$ctld_pid" 10
    stop_pid "$munge_pid" 5
    for p in "$slurmd_pid" "$ctld_pid" "$munge_pid"; do [ -n "$p" ] && wait "$p" 2>/dev/null; done
    # what a daemon left running (slurmstepd, a job step): found by MARK
    for p in $(marked_pids); do kill -9 "$p" 2>/dev/null; done
    rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
# never hang a CI run, whatever a daemon does
( sleep 300; echo "not ok - cli_slurm: watchdog: still running after 300 s"; kill -TERM $$ ) & watchdog=$!

. "$HERE/lib_cli.sh"
require cli_slurm "$M/model.safetensors" "$CORPUS" "$B/sra-extract"
# jobs run in another folder: absolute paths (the teacher path is also
# recorded in every shard, so the reference must use the same string)
B=$(cd "$B" && pwd)
M=$(cd "$M" && pwd)
CORPUS=$(cd "$(dirname "$CORPUS")" && pwd)/$(basename "$CORPUS")
X=$B/sra-extract
export HDF5_PLUGIN_PATH=${HDF5_PLUGIN_PATH:-$B/plugins}

# every check goes through check(); a failure also dumps the daemon logs at exit
scheck() {
    local out
    out=$(check "$@")
    echo "$out"
    [[ $out == "not ok"* ]] && any_failed=1
    return 0
}

# ----------------------------------------------------------------- data
# 250 KB of Tiny Shakespeare cut into 169 records of <= 1500 bytes, 8
# shards (~21 records each, ~1-3 s per shard on one thread here).
TXT=$T/shakespeare.txt
head -c 250000 "$CORPUS" > "$TXT"
EXTRACT_ARGS=(--teacher "$M" --data "$TXT" --max-bytes 1500 --shards 8 --threads 1)

# the reference: one process, every shard, finalize
scheck reference 0 "" "$X" "${EXTRACT_ARGS[@]}" --quiet --out "$T/ref"

# ------------------------------------------------ helpers (no Slurm yet)

# manifest_complete DIR: manifest.json says complete with 8 shards
manifest_complete() {
    "$PY" - "$1" <<'EOF'
import json, sys
m = json.load(open(sys.argv[1] + "/manifest.json"))
n = sum(1 for s in m["shards"] if s.get("complete"))
print("manifest: complete %s, %d of %d shards, records %s" % (m.get("complete"), n, len(m["shards"]), m.get("records")))
sys.exit(0 if m.get("complete") is True and n == len(m["shards"]) == 8 else 1)
EOF
}

# no_tmp DIR: no *.tmp file in DIR
no_tmp() {
    local left
    left=$(compgen -G "$1/*.tmp")
    if [ -n "$left" ]; then echo "left behind: $left"; return 1; fi
    echo "no .tmp in $(cd "$1" && echo *)"
}

# wait_for SECONDS COMMAND...: runs COMMAND every 0.1 s until it succeeds;
# fails after SECONDS
wait_for() {
    local limit=$1 i; shift
    for ((i = 0; i < limit * 10; i++)); do "$@" && return 0; sleep 0.1; done
    return 1
}

# tmp_of DIR K: the unfinished shard K is there
tmp_of() { [ -e "$(printf '%s/shard-%05d-of-00008.h5.tmp' "$1" "$2")" ]; }

# ------------------------------------- (c) signals and flags, no Slurm

check_exit() { # WANT_RC LOG: prints LOG, succeeds when the recorded status is WANT_RC
    cat "$2"; local rc; rc=$(cat "$2.rc")
    [ "$rc" = "$1" ] || { echo "(exit $rc, wanted $1)"; return 1; }
}

# signal_run OUT SECONDS SIGNAL CONDITION: the extraction into OUT in the
# background (log OUT.log, exit status OUT.log.rc); SIGNAL once CONDITION
# holds (or the run has ended, or SECONDS passed), then waits for it.
signal_run() {
    local out=$1 secs=$2 sig=$3 cond=$4 sp
    ( "$X" "${EXTRACT_ARGS[@]}" --quiet --out "$out" > "$out.log" 2>&1; echo $? > "$out.log.rc" ) & sp=$!
    bgpids=("$sp")
    wait_for "$secs" eval "$cond || ! kill -0 $sp 2>/dev/null"
    pkill -"$sig" -P "$sp" -x sra-extract 2>/dev/null
    wait "$sp"
    bgpids=()
}

# SIGTERM mid-shard: the first shard is complete and a .tmp is being
# written; the process stops within a record, removes that .tmp and exits
# 143 with one line saying what happened and what to do.
signal_run "$T/sig" 60 TERM '[ -e "$T/sig/shard-00000-of-00008.h5" ] && tmp_of "$T/sig" 1'
scheck sigterm_exit_143 0 "stopped by SIGTERM while making shard 1 of 8 \(its partial file was removed\).*run the same command again to resume" \
    check_exit 143 "$T/sig.log"
scheck sigterm_no_tmp 0 "no .tmp" no_tmp "$T/sig"
scheck sigterm_keeps_complete 0 "shard-00000-of-00008.h5" ls "$T/sig"
scheck sigterm_no_manifest 0 "no manifest" bash -c "[ ! -e '$T/sig/manifest.json' ] && echo no manifest"
scheck sigterm_resume 0 "shards: [1-7] made, [1-7] already complete, of 8" "$X" "${EXTRACT_ARGS[@]}" --out "$T/sig"
scheck sigterm_resume_kept 0 "complete True, 8 of 8" manifest_complete "$T/sig"
scheck sigterm_resume_same 0 "^same \(exact\)" "$PY" "$SAME" --exact "$T/sig" "$T/ref"

# SIGINT (Ctrl-C) early: exit 130, nothing partial left
signal_run "$T/int" 20 INT '[ -e "$T/int/settings.json" ]'
scheck sigint_exit_130 0 "stopped by SIGINT (while|before) .*; run the same command again to resume" check_exit 130 "$T/int.log"
scheck sigint_no_tmp 0 "no .tmp" no_tmp "$T/int"

# --task validation
RUN=("$X" --teacher "$M" --data "$TXT" --out "$T/none")
scheck task_index_too_big nz "--task '4/4': expected I/T with 0 <= I < T \(SLURM arrays: --array=0-3\)" "${RUN[@]}" --task 4/4
scheck task_index_negative nz "--task '-1/4': expected I/T with 0 <= I < T" "${RUN[@]}" --task -1/4
scheck task_count_zero nz "--task '0/0': T must be at least 1" "${RUN[@]}" --task 0/0
scheck task_not_a_fraction nz "--task 'two': expected I/T \(SLURM: \\\$SLURM_ARRAY_TASK_ID/\\\$SLURM_ARRAY_TASK_COUNT\)" \
    "${RUN[@]}" --task two
scheck task_and_shard nz "--task and --shard exclude each other" "${RUN[@]}" --task 0/2 --shard 0/2
scheck task_in_usage 0 "--task I/T +array task I of T" "$X" --help
scheck task_beyond_shards 0 "task 2 of 3 has no shard to make \(--shards 2 is below the task count\)" \
    "$X" --teacher "$M" --data "$TXT" --max-bytes 1500 --shards 2 --task 2/3 --out "$T/few"

# the submitter refuses what cannot work, before calling sbatch
scheck submit_needs_out nz "need --out DIR" "$SUBMIT" --tasks 4 -- --teacher "$M" --data "$TXT"
scheck submit_needs_tasks nz "--tasks T is required" "$SUBMIT" -- --out "$T/x"
scheck submit_bad_tasks nz "--tasks '0': expected a whole number" "$SUBMIT" --tasks 0 -- --out "$T/x"
scheck submit_bad_tasks_text nz "--tasks 'four': expected a whole number" "$SUBMIT" --tasks four -- --out "$T/x"
scheck submit_no_task_flag nz "--task: the array tasks add --task I/T themselves" \
    "$SUBMIT" --tasks 2 -- --out "$T/x" --task 0/2
scheck submit_dry_run_array 0 "^sbatch .*--array=0-3 .*sra-extract.sbatch --teacher .* --out " \
    "$SUBMIT" --tasks 4 --dry-run -- --teacher "$M" --data "$TXT" --out "$T/x"
scheck submit_dry_run_finalize 0 "^sbatch .*--dependency=afterok:ARRAY .*sra-extract.sbatch --finalize " \
    "$SUBMIT" --tasks 4 --dry-run -- --teacher "$M" --data "$TXT" --out "$T/x"
# the sbatch script, run as Slurm would run a spooled copy of it
cp "$SBATCH_SCRIPT" "$T/slurm_script"
scheck sbatch_no_binary nz "cannot find sra-extract: looked for .*SRA_BUILD=/nonexistent" \
    env -i PATH=/usr/bin:/bin SRA_BUILD=/nonexistent SLURM_SUBMIT_DIR=/nonexistent bash "$T/slurm_script" --help
mkdir -p "$T/submit" && ln -s "$B" "$T/submit/build"
scheck sbatch_finds_submit_dir 0 "usage: sra-extract" \
    env -i PATH=/usr/bin:/bin SLURM_SUBMIT_DIR="$T/submit" bash "$T/slurm_script" --help
scheck sbatch_array_from_zero nz "the array must be --array=0-\(T-1\)" \
    env -i PATH=/usr/bin:/bin SRA_BUILD="$B" SLURM_ARRAY_TASK_ID=1 SLURM_ARRAY_TASK_MIN=1 SLURM_ARRAY_TASK_MAX=4 \
    SLURM_ARRAY_TASK_COUNT=4 bash "$T/slurm_script" --help

# ------------------------------------------------------ the cluster

need_cluster() { # why: skip, or fail under CI
    if [ "${CI:-}" = true ]; then echo "not ok - slurm_cluster: $1"; any_failed=1; exit 1; fi
    echo "skip - slurm_cluster: $1"; exit 0
}
[ "$(id -u)" = 0 ] || need_cluster "not root (munged, slurmctld and slurmd are started here as root)"
for c in munged slurmctld slurmd sbatch squeue scontrol sinfo scancel; do
    command -v "$c" >/dev/null || need_cluster "$c not found (Debian: apt-get install slurm-wlm munge)"
done

H=$(hostname -s)
mkdir -p "$D"/munge "$D"/state "$D/spool/slurmd-$H" "$D"/log "$T"/logs
chmod 711 "$T" "$D" "$D/munge" # munged wants its socket reachable by all
head -c 1024 /dev/urandom > "$D/munge/key"
chmod 600 "$D/munge/key"
env "$MARK" munged -F --force --key-file="$D/munge/key" --socket="$D/munge/sock" --pid-file="$D/munge/pid" \
    --log-file="$D/log/munged.log" --seed-file="$D/munge/seed" > "$D/log/munged.out" 2>&1 & munge_pid=$!
# two free ports (bound and released at once; the daemons take them next)
read -r P1 P2 < <("$PY" -c '
import socket
s = [socket.socket() for _ in range(2)]
for x in s: x.bind(("127.0.0.1", 0))
print(*[x.getsockname()[1] for x in s])')
cat > "$D/slurm.conf" <<EOF
ClusterName=sratest
SlurmctldHost=$H(127.0.0.1)
SlurmctldPort=$P1
SlurmdPort=$P2
AuthType=auth/munge
AuthInfo=socket=$D/munge/sock
CredType=cred/munge
SlurmUser=root
SlurmdUser=root
StateSaveLocation=$D/state
SlurmdSpoolDir=$D/spool/slurmd-%n
SlurmctldPidFile=$D/slurmctld.pid
SlurmdPidFile=$D/slurmd.pid
SlurmctldLogFile=$D/log/slurmctld.log
SlurmdLogFile=$D/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SchedulerType=sched/builtin
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
MpiDefault=none
ReturnToService=2
KillWait=10
MinJobAge=600
NodeName=$H NodeAddr=127.0.0.1 CPUs=2 State=UNKNOWN
PartitionName=debug Nodes=$H Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:4
EOF
export SLURM_CONF=$D/slurm.conf
if wait_for 10 test -S "$D/munge/sock"; then
    env "$MARK" slurmctld -D -i -f "$SLURM_CONF" > "$D/log/slurmctld.out" 2>&1 & ctld_pid=$!
    env "$MARK" slurmd -D -f "$SLURM_CONF" -N "$H" > "$D/log/slurmd.out" 2>&1 & slurmd_pid=$!
    cluster_up=1
fi
node_idle() { [ "$(timeout 5 sinfo -h -N -o %T 2>/dev/null)" = idle ]; }
cluster_ready() {
    local t0=$SECONDS
    [ "$cluster_up" = 1 ] || { echo "munged did not create its socket"; return 1; }
    wait_for 40 node_idle || { echo "the node is not idle after 40 s: $(timeout 5 sinfo -N 2>&1)"; return 1; }
    echo "node $H idle after $((SECONDS - t0)) s"
}
scheck slurm_cluster_up 0 "idle after" cluster_ready
node_idle || exit 1

# job_state ID: the states of ID's jobs (array tasks: one a line)
job_state() { timeout 10 squeue -h -t all -j "$1" -o %T 2>/dev/null; }
# wait_job ID SECONDS: until ID has ended; prints its state
wait_job() {
    local i st
    for ((i = 0; i < $2 * 5; i++)); do
        st=$(job_state "$1")
        case $st in
            COMPLETED|FAILED|CANCELLED|TIMEOUT|NODE_FAIL|OUT_OF_MEMORY|BOOT_FAIL|DEADLINE|PREEMPTED)
                echo "job $1: $st after $((i / 5)) s"; [ "$st" = COMPLETED ]; return ;;
        esac
        sleep 0.2
    done
    echo "job $1: still '$st' after $2 s"; return 1
}
# submit DIR: the array and its finalize job; sets jid and fid (empty
# when sbatch failed, its message in $T/submit.log)
submit() {
    jid="" fid=""
    (cd "$T" && env "$MARK" SRA_BUILD="$B" "$SUBMIT" --tasks 4 --logs "$T/logs" --parsable -- \
        "${EXTRACT_ARGS[@]}" --out "$1") > "$T/submit.log" 2>&1 &&
        read -r jid fid < "$T/submit.log"
}
submitted() { cat "$T/submit.log"; [ -n "$fid" ] && echo "array job $jid, finalize job $fid"; }

# ---------------------------------------- (a) a 4-task array + finalize
t0=$SECONDS
submit "$T/a"
scheck array_submitted 0 "array job [0-9]+, finalize job [0-9]+" submitted
[ -n "$fid" ] || exit 1
scheck array_finalized 0 "COMPLETED" wait_job "$fid" 90
echo "# (a) array + finalize: $((SECONDS - t0)) s" >&2
# the states of the array's tasks, on one line
task_states() { job_state "$1" | sort | tr '\n' ' '; echo; }
scheck array_tasks_completed 0 "^COMPLETED COMPLETED COMPLETED COMPLETED $" task_states "$jid"
scheck array_task_made_two 0 "shards: 2 made, 0 already complete, of 8" cat "$T/logs/sra-extract-${jid}_2.log"
scheck array_manifest 0 "complete True, 8 of 8 shards, records 169" manifest_complete "$T/a"
scheck array_task_log 0 "sra-extract.sbatch: job .* task 3 restart 0" cat "$T/logs/sra-extract-${jid}_3.log"
scheck array_finalize_log 0 "8 shards verified, 169 records" cat "$T/logs/sra-extract-$fid.log"
scheck array_same_as_one_process 0 "^same \(exact\)" "$PY" "$SAME" --exact "$T/a" "$T/ref"

# ------------------------- (b) one task requeued in the middle of a shard
# Task I makes shards I and I+4. Once some task has finished its first
# shard and is writing shard K = I+4, it is paused (SIGSTOP) so that the
# requeue surely lands mid-shard, `scontrol requeue` makes slurmstepd send
# it SIGTERM, and SIGCONT lets it act on it. The requeued task waits
# (PENDING, BeginTime: Slurm holds requeued jobs ~2 minutes) until
# StartTime=now releases it; it then makes shard K only.
t0=$SECONDS
submit "$T/b"
scheck requeue_submitted 0 "array job [0-9]+, finalize job [0-9]+" submitted
[ -n "$fid" ] || exit 1
K="" I="" pid=""
for ((n = 0; n < 600; n++)); do
    [ -n "$pid" ] && break
    for k in 4 5 6 7; do
        tmp_of "$T/b" "$k" || continue
        pid=$(pgrep -f -- "--out $T/b --task $((k - 4))/4" | head -n 1)
        [ -n "$pid" ] || continue
        kill -STOP "$pid"
        if tmp_of "$T/b" "$k"; then K=$k I=$((k - 4)); break; fi
        kill -CONT "$pid"; pid=""  # it finished meanwhile: look again
    done
    [ -z "$pid" ] && sleep 0.1
done
caught() { [ -n "$pid" ] && echo "task $I paused while writing shard $K (pid $pid)"; }
scheck requeue_caught_mid_shard 0 "task [0-3] paused" caught
[ -n "$pid" ] || exit 1
scheck requeue_command 0 "" timeout 20 scontrol requeue "${jid}_$I"
kill -CONT "$pid" 2>/dev/null
gone() { ! kill -0 "$pid" 2>/dev/null; }
exited() { wait_for 30 gone && echo "exited"; }
scheck requeue_task_stopped 0 "exited" exited
LOG=$T/logs/sra-extract-${jid}_$I.log
scheck requeue_clean_stop_line 0 "stopped by SIGTERM while making shard $K of 8 \(its partial file was removed\)" cat "$LOG"
scheck requeue_partial_removed 0 "gone" bash -c "[ ! -e '$(printf '%s/shard-%05d-of-00008.h5.tmp' "$T/b" "$K")' ] && echo gone"
scheck requeue_first_shard_kept 0 "$(printf 'shard-%05d-of-00008.h5' "$I")" ls "$T/b"
state_reason() { timeout 10 squeue -h -t all -j "${jid}_$I" -o '%T %r' 2>/dev/null; }
pending() { [[ $(state_reason) == PENDING* ]]; }
requeued() { wait_for 20 pending; echo "task $I: $(state_reason)"; }
scheck requeue_pending 0 "PENDING" requeued
t1=$SECONDS
scheck requeue_release 0 "" timeout 20 scontrol update jobid="${jid}_$I" StartTime=now
scheck requeue_finalized 0 "COMPLETED" wait_job "$fid" 90
echo "# (b) array + requeue + finalize: $((SECONDS - t0)) s" >&2
scheck requeue_ran_twice 0 "restart 1" cat "$LOG"
echo "# (b) requeued task released after $((t1 - t0)) s, finalize done $((SECONDS - t1)) s later" >&2
scheck requeue_made_one_shard 0 "shards: 1 made, 1 already complete, of 8" sed -n '/restart 1/,$p' "$LOG"
scheck requeue_no_tmp 0 "no .tmp" no_tmp "$T/b"
scheck requeue_manifest 0 "complete True, 8 of 8 shards, records 169" manifest_complete "$T/b"
scheck requeue_same_as_one_process 0 "^same \(exact\)" "$PY" "$SAME" --exact "$T/b" "$T/ref"
exit 0
