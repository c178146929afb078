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
            settings.json|teacher_head.safetensors) ;;
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
check bad_mass nz "--mass 'heavy': expected last, last:L \(L >= 1\), attn" "$X" --teacher "$M" --data x.jsonl --out "$T/none" --mass heavy
check bad_mass_last_0 nz "--mass 'last:0': expected last, last:L \(L >= 1\)" \
    "$X" --teacher "$M" --data x.jsonl --out "$T/none" --mass last:0
check bad_mass_last_text nz "--mass 'last:x': expected last, last:L" "$X" --teacher "$M" --data x.jsonl --out "$T/none" --mass last:x
check bad_mass_last_empty nz "--mass 'last:': expected last, last:L" "$X" --teacher "$M" --data x.jsonl --out "$T/none" --mass last:
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
check mass_last_layer_range nz "--mass last:99: the teacher has attention layers 1..2" "${RUN[@]}" --out "$T/ml" --mass last:99

check bad_records_skipped 0 "^records: 44 .*; 4 bad records; shards: 1 made, 0 already complete, of 1" \
    logged "$T/j1.log" "${RUN[@]}" --out "$T/j1" --batch 8 --threads 2
check bad_records_summary 0 "skipped 4 bad records; the first: 10 21 32 43 " cat "$T/j1.log"
check bad_records_stats 0 '"bad_records":4,"first_bad":\[\{"record":10,.*"record":21,.*"record":32,.*"record":43,' \
    "$B/sra-inspect" "$T/j1/shard-00000-of-00001.h5"
check bad_records_manifest 0 "complete True, bad_records 4, records 44" manifest_is "$T/j1" true 4
# the default mass is the paper's last:L (method.md §9.1) with L resolved
# to the teacher's last layer, in the shard and in settings.json
check default_mass_last 0 "atoms +word +mass last:2$" "$B/sra-inspect" "$T/j1/shard-00000-of-00001.h5"
check default_mass_settings 0 '"mass":[[:space:]]*"last:2"' cat "$T/j1/settings.json"

check strict_fails nz "record 10: invalid JSON.*--strict" "${RUN[@]}" --out "$T/strict" --strict
check strict_leaves_no_shard 0 "nothing left" no_shard_left "$T/strict"

check settings_mismatch nz "setting 'topk' differs" "${RUN[@]}" --out "$T/j1" --topk 32
check settings_mismatch_mass nz "setting 'mass' differs: .*last:2.*attn:2" "${RUN[@]}" --out "$T/j1" --mass attn
check settings_mismatch_mass_layer nz "setting 'mass' differs: .*last:2.*last:1" "${RUN[@]}" --out "$T/j1" --mass last:1
# "last" and "last:2" name the default: the same settings, nothing to redo
check rerun_explicit_last 0 "shards: 0 made, 1 already complete" "${RUN[@]}" --out "$T/j1" --mass last:2
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

# ------------------- the teacher's LM head travels with the cache; --topk 0
# (issue 17). The head file is read back with plain numpy (header JSON +
# offsets) and compared with the checkpoint's tensor parsed the same way;
# TinyStories-656K is tied and stores only lm_head.weight (F32).
# head_matches DIR: teacher_head.safetensors holds exactly the teacher's
# head bytes, and manifest.json's teacher_head names its sha256 and shape.
head_matches() {
    "$PY" - "$1" "$M/model.safetensors" <<'PY'
import hashlib, json, struct, sys
import numpy as np
def tensors(path):
    b = open(path, "rb").read()
    (n,) = struct.unpack("<Q", b[:8])
    h = json.loads(b[8:8 + n])
    meta = h.pop("__metadata__", {})
    return b, {k: b[8 + n + v["data_offsets"][0]:8 + n + v["data_offsets"][1]] for k, v in h.items()}, h, meta
d = sys.argv[1]
raw, ht, hh, hmeta = tensors(d + "/teacher_head.safetensors")
_, mt, mh, _ = tensors(sys.argv[2])
name = "lm_head.weight" if "lm_head.weight" in mt else "model.embed_tokens.weight"
man = json.load(open(d + "/manifest.json"))["teacher_head"]
ok = list(ht) == ["lm_head.weight"] and ht["lm_head.weight"] == mt[name]
ok = ok and hh["lm_head.weight"]["dtype"] == mh[name]["dtype"] == man["dtype"]
ok = ok and hh["lm_head.weight"]["shape"] == mh[name]["shape"] == man["shape"] == [2048, 128]
ok = ok and man["sha256"] == hashlib.sha256(raw).hexdigest() and man["bytes"] == len(raw)
ok = ok and hmeta["source_tensor"] == name and hmeta["source_file"] == "model.safetensors"
w = np.frombuffer(ht["lm_head.weight"], dtype=np.float32).reshape(2048, 128)
print("head: %s %s, %d bytes, max |w| %.4f, sha256 %s" % (man["dtype"], man["shape"], man["bytes"], np.abs(w).max(), man["sha256"][:16]))
sys.exit(0 if ok else 1)
PY
}
# topk_absent DIR: no top-k datasets in the shards; h5py reads the rest
topk_absent() {
    "$PY" - "$1" <<'PY'
import glob, sys
import h5py
for p in sorted(glob.glob(sys.argv[1] + "/shard-*.h5")):
    with h5py.File(p, "r") as f:
        assert f.attrs["topk"] == 0 and f.attrs["format_version"] == 2, p
        assert not any(k in f["atoms"] for k in ("topk_ids", "topk_logprob", "tail_mass")), p
        n = f["atoms/mass"].shape[0]
print("no top-k datasets; %d atoms read with h5py" % n)
PY
}
bytes_of() { cat "$1"/shard-*.h5 | wc -c; }

check head_single_process 0 "head: F32 \[2048, 128\], 1048[0-9]+ bytes" head_matches "$T/j1"
check topk0_run 0 "shards: 1 made" "${RUN[@]}" --out "$T/z0" --topk 0
check topk0_no_datasets 0 "no top-k datasets" topk_absent "$T/z0"
check topk0_head 0 "head: F32" head_matches "$T/z0"
check topk0_smaller 0 "smaller" bash -c "a=\$(cat '$T'/z0/shard-*.h5 | wc -c); b=\$(cat '$T'/j1/shard-*.h5 | wc -c); echo \"topk 0: \$a bytes, topk 64: \$b bytes\"; [ \$a -lt \$b ] && echo smaller"
check topk0_same_coms 0 "^same" bash -c "'$PY' - '$T/z0' '$T/j1' <<'PY'
import glob, sys
import h5py, numpy as np
a, b = (h5py.File(sorted(glob.glob(d + '/shard-*.h5'))[0], 'r') for d in sys.argv[1:])
same = all(np.array_equal(a[k][()], b[k][()]) for k in ('atoms/com/0', 'atoms/mass', 'atoms/start', 'docs/text'))
print('same CoMs, masses, atoms and text' if same else 'different')
PY"
check topk0_inspect 0 "teacher head +.*teacher_head.safetensors: lm_head.weight F32 \[2048, 128\], 10[0-9]+ bytes \(1.00 MiB\), sha256 [0-9a-f]{64} \(verified" \
    "$B/sra-inspect" "$T/z0"
check topk0_inspect_shard 0 "top-k +none" "$B/sra-inspect" "$T/z0/shard-00000-of-00001.h5"
check topk_resume_differs nz "setting 'topk' differs" "${RUN[@]}" --out "$T/z0" --topk 64

# a head that differs from this teacher's is refused, not replaced
cp -r "$T/z0" "$T/zh" && "$PY" -c "
import sys; p = sys.argv[1]; b = bytearray(open(p, 'rb').read()); b[-5] ^= 1; open(p, 'wb').write(b)" "$T/zh/teacher_head.safetensors"
check head_differs_refused nz "teacher_head.safetensors exists and differs" "${RUN[@]}" --out "$T/zh" --topk 0
check head_corrupt_inspect nz "teacher_head.safetensors: sha256 is [0-9a-f]+, but .*manifest.json says" "$B/sra-inspect" "$T/zh"
check head_missing_finalize nz "teacher head is not usable: .*teacher_head.safetensors: missing" bash -c "rm '$T/zh/teacher_head.safetensors'; '$X' --finalize '$T/zh'"
check head_missing_manifest 0 "complete False" manifest_is "$T/zh" false

# --task I/T processes, then --finalize: the manifest gets the head
"${RUN[@]}" --out "$T/tk" --topk 0 --task 0/2 --quiet > "$T/tk0.log" 2>&1 & t0=$!
"${RUN[@]}" --out "$T/tk" --topk 0 --task 1/2 --quiet > "$T/tk1.log" 2>&1 & t1=$!
bgpids=("$t0" "$t1")
wait $t0; rt0=$?; wait $t1; rt1=$?
bgpids=()
check task_processes 0 "both exited 0" bash -c "cat '$T/tk0.log' '$T/tk1.log'; [ $rt0 = 0 ] && [ $rt1 = 0 ] && echo both exited 0"
check task_no_tmp 0 "no .tmp" bash -c "! ls -A '$T/tk' | grep -F .tmp && echo no .tmp left"
check task_finalize 0 "2 shards verified" "$X" --finalize "$T/tk"
check task_finalize_head 0 "head: F32 \[2048, 128\]" head_matches "$T/tk"
