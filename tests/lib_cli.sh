# lib_cli.sh - sourced by the tests/cli_*.sh scripts (named so that tests/run.sh does not run it).
#
#   check NAME WANT PATTERN COMMAND...
# runs COMMAND, and prints "ok - NAME" when its exit status is as WANT says
# (0: success, nz: failure) and its stdout+stderr match the extended regex
# PATTERN; otherwise "not ok - NAME" with the reason and the first lines of
# the output (tests/run.sh counts these lines).
check() {
    local name=$1 want=$2 pat=$3; shift 3
    local out rc
    out=$("$@" 2>&1); rc=$?
    if { [ "$want" = 0 ] && [ $rc -ne 0 ]; } || { [ "$want" = nz ] && [ $rc -eq 0 ]; }; then
        echo "not ok - $name (exit $rc)"; sed 's/^/    /' <<<"$out" | head -20; return
    fi
    if ! grep -qE -- "$pat" <<<"$out"; then
        echo "not ok - $name (no /$pat/)"; sed 's/^/    /' <<<"$out" | head -20; return
    fi
    echo "ok - $name"
}

# teacher_stories MODEL_DIR: the TinyStories teacher's reference prompts
# with their continuations, as JSONL {"text": ...}: stories it knows.
teacher_stories() {
    "${SRA_PY:-/usr/bin/python3}" - "$1/reference" <<'PY'
import json, sys
d = sys.argv[1]
idx = json.load(open(d + "/index.json"))
pr = [json.loads(l) for l in open(d + "/prompts.jsonl")]
for p, i in zip(pr, idx):
    print(json.dumps({"text": p["text"] + i["new_text"]}))
PY
}

# require NAME FILE...: every FILE must exist, and /usr/bin/python3 (SRA_PY)
# must have h5py and numpy; otherwise the test skips loudly, or fails
# under CI=true, where missing assets are an error.
require() {
    local name=$1 f why=""; shift
    for f in "$@"; do [ -f "$f" ] || { why="missing $f (set SRA_SHARED / SRA_BUILD)"; break; }; done
    if [ -z "$why" ] && ! "${SRA_PY:-/usr/bin/python3}" -c "import h5py, numpy" 2>/dev/null; then
        why="${SRA_PY:-/usr/bin/python3} lacks h5py or numpy (set SRA_PY)"
    fi
    [ -z "$why" ] && return 0
    if [ "${CI:-}" = true ]; then echo "not ok - $name: $why"; exit 1; fi
    echo "skip - $name: $why"; exit 0
}
