#!/usr/bin/env bash
# CLI contract of sra-tokenize: encode/decode through the CLI agree with the
# HF reference files (shared/reference/tokenize, made by the real HF
# tokenizers), and every kind of misuse gets a message naming the line or
# file and a non-zero exit.
set -uo pipefail
B=${SRA_BUILD:-build}
S=${SRA_SHARED:-../shared}
PY=${SRA_PY:-/usr/bin/python3}
T=$(mktemp -d /tmp/sra-cli-XXXXXX)
trap 'rm -rf "$T"' EXIT

. "$(dirname "$0")/lib_cli.sh"

G=$S/tokenizers/gpt2/tokenizer.json
L=$S/tokenizers/llama2/tokenizer.json
if [ ! -f "$G" ] || [ ! -f "$L" ]; then
    if [ "${CI:-}" = true ]; then echo "not ok - shared tokenizers missing in $S"; exit 1; fi
    echo "skip - cli_tokenize: shared tokenizers missing in $S (set SRA_SHARED)"; exit 0
fi

# Whole reference files through the CLI: ids, offsets, tokens, ids_special
# and decoded text must be HF's on every line.
for t in gpt2 llama2; do
    ref=$S/reference/tokenize/$t.jsonl
    tj=$S/tokenizers/$t/tokenizer.json
    "$B/sra-tokenize" --tokenizer "$tj" --tokens < "$ref" > "$T/$t.enc" 2>"$T/err" || true
    "$B/sra-tokenize" --tokenizer "$tj" --special < "$ref" > "$T/$t.sp" 2>>"$T/err" || true
    "$PY" -c "import json,sys; [print(json.dumps(json.loads(l)['ids'])) for l in open(sys.argv[1])]" "$ref" |
        "$B/sra-tokenize" --tokenizer "$tj" --decode > "$T/$t.dec" 2>>"$T/err" || true
    check "reference_$t" 0 "^190 agree$" "$PY" - "$ref" "$T/$t.enc" "$T/$t.sp" "$T/$t.dec" <<'PYEOF'
import json, sys
ref, enc, sp, dec = [[json.loads(l) for l in open(p)] for p in sys.argv[1:]]
n = 0
for r, e, s, d in zip(ref, enc, sp, dec):
    if (e["ids"], e["offsets"], e["tokens"], s["ids"], d["text"]) == (r["ids"], r["offsets"], r["tokens"], r["ids_special"], r["decoded"]):
        n += 1
    else:
        print("differs:", r["name"])
print(n, "agree" if len(ref) == len(enc) == len(sp) == len(dec) else "lines missing")
PYEOF
done

check hello 0 '^\{"ids": \[15496, 995\], "offsets": \[\[0, 5\], \[5, 11\]\]\}$' \
    bash -c "echo '{\"text\": \"Hello world\"}' | '$B/sra-tokenize' --tokenizer '$G' --jsonl"
check bos 0 '"ids": \[1, ' bash -c "echo '{\"text\": \"Hello\"}' | '$B/sra-tokenize' --tokenizer '$L' --special"
check decode_plain 0 '^\{"text": "Hello world"\}$' bash -c "echo '15496 995' | '$B/sra-tokenize' --tokenizer '$G' --decode"
check decode_object 0 '^Hello world$' bash -c "echo '{\"ids\": [15496, 995]}' | '$B/sra-tokenize' --tokenizer '$G' --decode --text"
check skip_special 0 '^\{"text": "Hello"\}$' bash -c "echo '[1, 15043]' | '$B/sra-tokenize' --tokenizer '$L' --decode --skip-special"
check empty_text 0 '^\{"ids": \[\], "offsets": \[\]\}$' bash -c "echo '{\"text\": \"\"}' | '$B/sra-tokenize' --tokenizer '$G'"
printf '{"text": "ok"}\n{"text": "a\xffb"}\n' > "$T/bad_utf8.jsonl"
check invalid_utf8 nz "stdin line 2: invalid UTF-8 at byte 1" bash -c "'$B/sra-tokenize' --tokenizer '$G' < '$T/bad_utf8.jsonl'"
check bad_json nz "stdin line 1: expected a JSON object with a \"text\" string" \
    bash -c "echo '[1, 2]' | '$B/sra-tokenize' --tokenizer '$G'"
check bad_id nz "stdin line 1: element 1 is not a token id in 0..50256" \
    bash -c "echo '[1, 50257]' | '$B/sra-tokenize' --tokenizer '$G' --decode"
check bad_id_text nz "stdin line 1: id 0 is not a token id" bash -c "echo 'x' | '$B/sra-tokenize' --tokenizer '$G' --decode"
check missing_tokenizer nz "$T/none.json: cannot open" "$B/sra-tokenize" --tokenizer "$T/none.json"
echo '{"model": {"type": "Unigram"}}' > "$T/unigram.json"
check unsupported_model nz 'unigram.json: model.type = "Unigram"' "$B/sra-tokenize" --tokenizer "$T/unigram.json"
echo '{"model": ' > "$T/broken.json"
check broken_json nz "broken.json: not valid JSON" "$B/sra-tokenize" --tokenizer "$T/broken.json"
check no_tokenizer nz "--tokenizer PATH is required" "$B/sra-tokenize"
check bad_flag nz "unknown or incomplete option '--frobnicate'" "$B/sra-tokenize" --tokenizer "$G" --frobnicate
check help 0 "usage: sra-tokenize" "$B/sra-tokenize" --help
check bench_missing nz "--bench $T/none.txt: No such file" "$B/sra-tokenize" --tokenizer "$G" --bench "$T/none.txt"
head -c 200000 "$S/corpus/moby-dick.txt" > "$T/small.txt"
check bench 0 "^1 thread: [0-9.]+ MB/s.*tokens" "$B/sra-tokenize" --tokenizer "$G" --bench "$T/small.txt" --runs 1 --threads 2
