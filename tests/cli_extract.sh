#!/usr/bin/env bash
# CLI contract of sra-extract (extract/extract.h): clear errors for bad
# flags, bad records skipped and counted (or fatal with --strict, leaving no
# shard), settings mismatches refused, payload independent of --batch and
# --threads, resume after kill -9, shards made by separate processes then
# --finalize, and a damaged shard made again. Contents are compared with
# tests/h5_same.py, which is itself checked to see a one-byte difference.
set -uo pipefail
B=${SRA_BUILD:-build}
S=${SRA_SHARED:-../shared}
PY=${SRA_PY:-/usr/bin/python3}
M=$S/models/tinystories-656k
CORPUS=$S/corpus/tinyshakespeare.txt
STOK=$S/tokenizers/gpt2/tokenizer.json
X=$B/sra-extract
SAME="$(dirname "$0")/h5_same.py"
export HDF5_PLUGIN_PATH=${HDF5_PLUGIN_PATH:-$B/plugins}
T=$(mktemp -d /tmp/sra-cli-extract-XXXXXX)
bgpids=()
cleanup() {
    for p in "${bgpids[@]}"; do kill -9 "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
    rm -rf "$T"
}
trap cleanup EXIT
. "$(dirname "$0")/lib_cli.sh"
require cli_extract "$M/model.safetensors" "$CORPUS" "$STOK"

# ---------------------------------------------------------------- helpers

# expect_rc WANT COMMAND...: runs COMMAND, prints its output; fails unless
# its exit status is exactly WANT.
expect_rc() {
    local want=$1; shift
    "$@"; local rc=$?
    [ "$rc" -eq "$want" ] || { echo "(exit $rc, wanted $want)"; return 1; }
}

# logged LOG COMMAND...: runs COMMAND, its output also into LOG.
logged() {
    local log=$1; shift
    "$@" > "$log" 2>&1; local rc=$?
    cat "$log"
    return $rc
}

# manifest_is DIR COMPLETE BAD: manifest.json says "complete": COMPLETE
# (true/false) and, when BAD is given, "bad_records": BAD.
manifest_is() {
    "$PY" - "$@" <<'EOF'
import json, sys
d, complete = sys.argv[1], sys.argv[2] == "true"
m = json.load(open(d + "/manifest.json"))
ok = m.get("complete") is complete
if len(sys.argv) > 3:
    ok = ok and m.get("bad_records") == int(sys.argv[3])
print("manifest: complete %s, bad_records %s, records %s" % (m.get("complete"), m.get("bad_records"), m.get("records")))
sys.exit(0 if ok else 1)
EOF
}

# no_shard_left DIR: DIR holds no shard file a reader could take, and no *.tmp.
no_shard_left() {
    local left
    left=$(cd "$1" && ls -A | grep -E '^shard-|\.tmp$')
    if [ -n "$left" ]; then echo "left behind: $left"; return 1; fi
    echo "nothing left: $(cd "$1" && ls -A | tr '\n' ' ')"
}

# after_kill DIR N: no manifest.json; every shard-*.h5 is a complete shard
# that sra-inspect opens; anything else shard-like ends in .tmp and is
# refused by the reader; fewer than N complete shards (the kill was mid-run).
after_kill() {
    local d=$1 n=$2 f base complete=0
    if [ ! -d "$d" ]; then echo "$d: no output folder (did sra-extract start? $(cat "$T/k.log"))"; return 1; fi
    if [ -e "$d/manifest.json" ]; then echo "manifest.json exists after kill -9"; return 1; fi
    for f in "$d"/*; do
        base=${f##*/}
        case $base in
            settings.json) ;;
            shard-[0-9][0-9][0-9][0-9][0-9]-of-[0-9][0-9][0-9][0-9][0-9].h5)
                if ! "$B/sra-inspect" "$f" >/dev/null 2>&1; then echo "$base: named complete but not readable"; return 1; fi
                complete=$((complete + 1)) ;;
            *.tmp)
                if "$B/sra-inspect" "$f" >/dev/null 2>&1; then echo "$base: a reader accepts a .tmp file"; return 1; fi
                echo "leftover $base (refused by the reader)" ;;
            *) echo "unexpected file $base"; return 1 ;;
        esac
    done
    echo "$complete complete shards at the kill"
    if [ "$complete" -lt 1 ] || [ "$complete" -ge "$n" ]; then
        echo "the kill did not land mid-run ($complete of $n shards complete): make the data larger"; return 1
    fi
}

# flip DIR DATASET|@ATTR: changes one bit of one shard (h5py, in place).
flip() {
    "$PY" - "$@" <<'EOF'
import glob, sys
import h5py, numpy as np
d, what = sys.argv[1], sys.argv[2]
with h5py.File(sorted(glob.glob(d + "/shard-*.h5"))[-1], "r+") as f:
    if what.startswith("@"):
        v = f.attrs[what[1:]]
        f.attrs.modify(what[1:], np.bytes_(v[:-1] + bytes([v[-1] ^ 1])))
    else:
        a = f[what][()]
        b = a.reshape(-1).view(np.uint8)
        b[len(b) // 2] ^= 1
        f[what][...] = b.view(a.dtype).reshape(a.shape)
EOF
}

# ------------------------------------------------------------------ flags

check help 0 "usage: sra-extract" "$X" --help
check missing_flags nz "--teacher, --data and --out are required" "$X" --teacher "$M" --out "$T/none"
check missing_value nz "--out: missing its value" "$X" --teacher "$M" --data x.jsonl --out
check bad_shard nz "--shard '2/2': expected I/N" "$X" --teacher "$M" --data x.jsonl --out "$T/none" --shard 2/2
check bad_shard_text nz "--shard 'one': expected I/N" "$X" --teacher "$M" --data x.jsonl --out "$T/none" --shard one
check bad_mass nz "--mass 'heavy': expected attn" "$X" --teacher "$M" --data x.jsonl --out "$T/none" --mass heavy
check bad_atoms nz "--atoms 'letters': expected word, token or student" \
    "$X" --teacher "$M" --data x.jsonl --out "$T/none" --atoms letters
check bad_topk nz "--topk '-1': expected an integer" "$X" --teacher "$M" --data x.jsonl --out "$T/none" --topk -1
check unknown_flag nz "unknown option '--frobnicate'" "$X" --teacher "$M" --data x.jsonl --out "$T/none" --frobnicate 1

# ------------------------------------------------- a JSONL with bad records
# 44 records (0..43), 4 of them bad: 10 (not JSON), 21 (no "text"),
# 32 (only spaces: no atom), 43 (invalid UTF-8); plus a blank line, which
# is no record. Texts vary in length so that batches pad.
D=$T/stories.jsonl
names=(Lily Tom Ben Mia Sam Zoe Max)
things=(ball cat tree boat cake kite dog)
moods=(happy sad big small red)
story() {
    local i=$1 extra="" j
    for ((j = 0; j < i % 6; j++)); do extra+=" They played with the ${things[(i + j) % 7]} all day."; done
    printf '{"id": %d, "text": "Once upon a time, %s found a %s. It was %s and %s smiled.%s"}\n' \
        "$i" "${names[i % 7]}" "${things[(i * 3) % 7]}" "${moods[i % 5]}" "${names[(i + 2) % 7]}" "$extra"
}
{
    for ((i = 0; i < 10; i++)); do story $i; done
    echo 'this line is not JSON'                      # record 10
    for ((i = 11; i < 21; i++)); do story $i; done
    echo ''                                           # blank: no record
    echo '{"id": 21, "title": "no text field"}'       # record 21
    for ((i = 22; i < 32; i++)); do story $i; done
    echo '{"id": 32, "text": "      "}'               # record 32
    for ((i = 33; i < 43; i++)); do story $i; done
    printf '{"id": 43, "text": "bad \xff\xfe bytes"}\n' # record 43
} > "$D"

RUN=("$X" --teacher "$M" --data "$D")
check student_needs_tokenizer nz "--atoms student needs --student-tokenizer" "${RUN[@]}" --out "$T/st0" --atoms student
check mass_layer_range nz "--mass attn:9: the teacher has attention layers 1..2" "${RUN[@]}" --out "$T/ml" --mass attn:9

check bad_records_skipped 0 "^records: 44 .*; 4 bad records; shards: 1 made, 0 already complete, of 1" \
    logged "$T/j1.log" "${RUN[@]}" --out "$T/j1" --batch 8 --threads 2
check bad_records_summary 0 "skipped 4 bad records; the first: 10 21 32 43 " cat "$T/j1.log"
check bad_records_stats 0 '"bad_records":4,"first_bad":\[\{"record":10,.*"record":21,.*"record":32,.*"record":43,' \
    "$B/sra-inspect" "$T/j1/shard-00000-of-00001.h5"
check bad_records_manifest 0 "complete True, bad_records 4, records 44" manifest_is "$T/j1" true 4

check strict_fails nz "record 10: invalid JSON.*--strict" "${RUN[@]}" --out "$T/strict" --strict
check strict_leaves_no_shard 0 "nothing left" no_shard_left "$T/strict"

check settings_mismatch nz "setting 'topk' differs" "${RUN[@]}" --out "$T/j1" --topk 32
check rerun_same_settings 0 "shards: 0 made, 1 already complete" "${RUN[@]}" --out "$T/j1" --batch 8 --threads 2

# the payload does not depend on --batch or --threads
check batch_threads_invariant_run 0 "shards: 1 made" "${RUN[@]}" --out "$T/j2" --batch 1 --threads 1
check batch_threads_invariant 0 "^same \(exact\)" "$PY" "$SAME" --exact "$T/j1" "$T/j2"
check threads_invariant_run 0 "shards: 1 made" "${RUN[@]}" --out "$T/j3" --batch 8 --threads 1
check threads_invariant 0 "^same \(exact\)" "$PY" "$SAME" --exact "$T/j1" "$T/j3"
check student_atoms 0 "shards: 1 made" "${RUN[@]}" --out "$T/st" --atoms student --student-tokenizer "$STOK" --batch 3

# h5_same.py itself: it must see one changed bit, and usage errors exit 2
cp -r "$T/j1" "$T/f1" && flip "$T/f1" atoms/com/0
check h5_same_sees_one_bit 0 "different: .*/atoms/com/0: differs" expect_rc 1 "$PY" "$SAME" "$T/j1" "$T/f1"
cp -r "$T/j1" "$T/f2" && flip "$T/f2" docs/text
check h5_same_sees_text_bit 0 "different: .*/docs/text: differs" expect_rc 1 "$PY" "$SAME" "$T/j1" "$T/f2"
cp -r "$T/j1" "$T/f3" && flip "$T/f3" @mass
check h5_same_sees_attribute 0 "different: .*root attribute mass" expect_rc 1 "$PY" "$SAME" "$T/j1" "$T/f3"
check h5_same_other_data 0 "different: " expect_rc 1 "$PY" "$SAME" "$T/j1" "$T/st"
check h5_same_usage 0 "usage: h5_same.py" expect_rc 2 "$PY" "$SAME" "$T/j1"

# ------------------------------------------- shards by separate processes
"${RUN[@]}" --out "$T/p" --shard 0/2 --quiet > "$T/p0.log" 2>&1 & p0=$!
"${RUN[@]}" --out "$T/p" --shard 1/2 --quiet > "$T/p1.log" 2>&1 & p1=$!
bgpids=("$p0" "$p1")
wait $p0; rc0=$?; wait $p1; rc1=$?
bgpids=()
check shard_processes 0 "both exited 0" bash -c "cat '$T/p0.log' '$T/p1.log'; [ $rc0 = 0 ] && [ $rc1 = 0 ] && echo both exited 0"
check shard_processes_no_manifest 0 "no manifest" bash -c "[ ! -e '$T/p/manifest.json' ] && echo no manifest"
check finalize 0 "2 shards verified, 44 records" "$X" --finalize "$T/p"
check finalize_manifest 0 "complete True, bad_records 4" manifest_is "$T/p" true 4
check shards_equal_one_process 0 "^same: .*\(2 shards\).*\(1 shards\)" "$PY" "$SAME" "$T/p" "$T/j1"
check shards_not_exact 0 "shard count: 2 vs 1" expect_rc 1 "$PY" "$SAME" --exact "$T/p" "$T/j1"
cp -r "$T/p" "$T/pm" && rm "$T/pm/shard-00001-of-00002.h5"
check finalize_missing nz "shard-00001-of-00002.h5: missing" "$X" --finalize "$T/pm"
check finalize_missing_manifest 0 "complete False" manifest_is "$T/pm" false

# --------------------------------------------------- kill -9, then resume
# A slice of Tiny Shakespeare, 6 shards: ~4 s on 2 cores (the killed run
# uses one thread, so the first shard takes ~1 s and five remain).
TXT=$T/shakespeare.txt
head -c 250000 "$CORPUS" > "$TXT"
KRUN=("$X" --teacher "$M" --data "$TXT" --max-bytes 1500 --shards 6)
"${KRUN[@]}" --out "$T/k" --threads 1 --quiet > "$T/k.log" 2>&1 & kp=$!
bgpids=("$kp")
for ((i = 0; i < 600; i++)); do
    compgen -G "$T/k/shard-*-of-00006.h5" > /dev/null && break
    kill -0 "$kp" 2>/dev/null || break
    sleep 0.05
done
kill -9 "$kp" 2>/dev/null; wait "$kp" 2>/dev/null
bgpids=()
check kill9_leaves_no_false_shard 0 "complete shards at the kill" after_kill "$T/k" 6
check kill9_resume 0 "shards: [1-5] made, [1-5] already complete, of 6" "${KRUN[@]}" --out "$T/k"
check kill9_resume_manifest 0 "complete True" manifest_is "$T/k" true 0
check kill9_resume_no_tmp 0 "no .tmp" bash -c "! ls -A '$T/k' | grep -F .tmp && echo no .tmp left"
check uninterrupted 0 "shards: 6 made, 0 already complete, of 6" "${KRUN[@]}" --out "$T/u"
check kill9_resume_same 0 "^same \(exact\)" "$PY" "$SAME" --exact "$T/k" "$T/u"

# ------------------------------------------ a truncated shard is made again
cp -r "$T/u" "$T/tr"
head -c 20000 "$T/u/shard-00002-of-00006.h5" > "$T/tr/shard-00002-of-00006.h5"
check truncated_remade 0 "shards: 1 made, 5 already complete, of 6" logged "$T/tr.log" "${KRUN[@]}" --out "$T/tr"
check truncated_detected 0 "shard-00002-of-00006.h5: .*making it again" cat "$T/tr.log"
check truncated_remade_same 0 "^same \(exact\)" "$PY" "$SAME" --exact "$T/u" "$T/tr"
