#!/usr/bin/env bash
# CLI contract of sra-bpe: a tokenizer.json trained on 200 KB of
# tinyshakespeare loads in sra-tokenize, round-trips held-out text, has
# exactly the requested vocabulary, is the same file every time, and - the
# real proof - the real HF tokenizers (tests/hfref.sh) give the same ids and
# offsets as sra-tokenize with it. Misuse gets a message naming the flag or
# file and a non-zero exit.
set -uo pipefail
B=${SRA_BUILD:-build}
S=${SRA_SHARED:-../shared}
PY=${SRA_PY:-/usr/bin/python3}
T=$(mktemp -d /tmp/sra-cli-XXXXXX)
trap 'rm -rf "$T"' EXIT

. "$(dirname "$0")/lib_cli.sh"

C=$S/corpus/tinyshakespeare.txt
if [ ! -f "$C" ]; then
    if [ "${CI:-}" = true ]; then echo "not ok - shared corpus missing: $C"; exit 1; fi
    echo "skip - cli_bpe: shared corpus missing: $C (set SRA_SHARED)"; exit 0
fi

head -c 200000 "$C" > "$T/train.txt"
# Held-out text: later lines of the play, plus texts that hit the corners
# (the special token inside text, Unicode, emoji, digits, whitespace runs).
"$PY" - "$C" "$T/held.jsonl" <<'PYEOF'
import json, sys
data = open(sys.argv[1], encoding="utf-8").read()[600000:640000]
paras = [p for p in data.split("\n\n") if p.strip()][:150]
extra = ["", " ", "Hello world", "  two  spaces   and\ttabs\n\n", "<|endoftext|>First Citizen:<|endoftext|>",
         "x<|endoftext|> y", "caf\u00e9 na\u00efve \u00fcber \u00df", "\u65e5\u672c\u8a9e \u0645\u0631\u062d\u0628\u0627",
         "emoji \U0001F600\U0001F44D\U0001F3FD!", "1234567 89 3.14159", "don't you'll we've I'm 'tis",
         "\r\nCRLF\r\n", "\u00a0nbsp\u3000ideographic", "zzzzzzzzzzzzqqqqqq"]
with open(sys.argv[2], "w") as f:
    for t in paras + extra:
        f.write(json.dumps({"text": t}) + "\n")
PYEOF

TJ=$T/tok.json
check train 0 "vocabulary 1000 = 256 bytes \+ 743 merged \+ 1 special" \
    "$B/sra-bpe" --data "$T/train.txt" --vocab-size 1000 --special "<|endoftext|>" --out "$TJ"
check no_tmp_left 0 "^gone$" bash -c "[ ! -e '$TJ.tmp' ] && echo gone"
check vocab_size 0 "^1000 contiguous$" "$PY" - "$TJ" <<'PYEOF'
import json, sys
d = json.load(open(sys.argv[1]))
ids = sorted(list(d["model"]["vocab"].values()) + [a["id"] for a in d["added_tokens"]])
m = d["model"]
ok = (ids == list(range(len(ids))) and m["type"] == "BPE" and d["pre_tokenizer"]["type"] == "ByteLevel"
      and d["decoder"]["type"] == "ByteLevel" and d["normalizer"] is None
      and d["added_tokens"] == [{"id": 999, "content": "<|endoftext|>", "single_word": False, "lstrip": False,
                                 "rstrip": False, "normalized": False, "special": True}]
      and len(m["merges"]) == 743 and m["vocab"]["\u0120"] == 32)
print(len(ids), "contiguous" if ok else "wrong shape")
PYEOF
"$B/sra-bpe" --data "$T/train.txt" --vocab-size 1000 --special "<|endoftext|>" --out "$T/tok2.json" >/dev/null 2>&1
check deterministic 0 "^same$" bash -c "cmp '$TJ' '$T/tok2.json' && echo same"

# Our tokenizer loads it and encodes; decode(encode(x)) == x.
"$B/sra-tokenize" --tokenizer "$TJ" < "$T/held.jsonl" > "$T/ours.jsonl" 2>"$T/err"
check encode 0 "^164 lines$" bash -c "[ -s '$T/ours.jsonl' ] && echo \$(wc -l < '$T/ours.jsonl') lines || cat '$T/err'"
"$PY" -c "import json,sys; [print(json.dumps(json.loads(l)['ids'])) for l in open(sys.argv[1])]" "$T/ours.jsonl" |
    "$B/sra-tokenize" --tokenizer "$TJ" --decode > "$T/dec.jsonl" 2>>"$T/err"
check roundtrip 0 "^164 round-trip, special 999$" "$PY" - "$T/held.jsonl" "$T/dec.jsonl" "$T/ours.jsonl" <<'PYEOF'
import json, sys
held, dec, enc = [[json.loads(l) for l in open(p)] for p in sys.argv[1:]]
n = sum(h["text"] == d["text"] for h, d in zip(held, dec))
sp = [e["ids"] for h, e in zip(held, enc) if h["text"].startswith("<|endoftext|>First")][0][0]
for h, d in zip(held, dec):
    if h["text"] != d["text"]: print("differs:", json.dumps(h["text"])[:80])
print(n if len(held) == len(dec) else "lines missing", "round-trip, special", sp)
PYEOF
check compression 0 "^ok [0-9.]+ bytes/token$" "$PY" - "$T/held.jsonl" "$T/ours.jsonl" <<'PYEOF'
import json, sys
held, enc = [[json.loads(l) for l in open(p)] for p in sys.argv[1:]]
b = sum(len(h["text"].encode()) for h in held); t = sum(len(e["ids"]) for e in enc)
print("ok" if b / t > 2.0 else "poor", "%.2f bytes/token" % (b / t))
PYEOF

# The real HF tokenizers (0.22 through its npm binding) on the same texts.
if NODE_PATH_HF=$(bash "$(dirname "$0")/hfref.sh" "$B" 2>"$T/hferr"); then
    NODE_PATH=$NODE_PATH_HF node "$S/tools/hf-encode.js" "$TJ" "$T/held.jsonl" "$T/hf.jsonl" 2>"$T/err"
    check hf_agrees 0 "^164 agree$" "$PY" - "$T/hf.jsonl" "$T/ours.jsonl" <<'PYEOF'
import json, sys
hf, ours = [[json.loads(l) for l in open(p)] for p in sys.argv[1:]]
n = 0
for h, o in zip(hf, ours):
    if (h["ids"], h["offsets"]) == (o["ids"], o["offsets"]) and h["decoded"] == h["text"]: n += 1
    else: print("differs:", json.dumps(h["text"])[:80])
print(n, "agree" if len(hf) == len(ours) > 0 else "lines missing")
PYEOF
elif [ "${CI:-}" = true ]; then
    echo "not ok - hf_agrees: HF reference unavailable: $(cat "$T/hferr")"
else
    echo "skip - hf_agrees: HF reference unavailable: $(cat "$T/hferr")"
fi

# Other inputs: JSONL, several files, --max-bytes, no specials.
"$PY" -c "
import json, sys
for p in open(sys.argv[1], encoding='utf-8').read().split('\n\n'): print(json.dumps({'body': p}))" "$T/train.txt" > "$T/train.jsonl"
check jsonl_field 0 "vocabulary 600 = 256 bytes \+ 344 merged \+ 0 special" \
    "$B/sra-bpe" --data "$T/train.jsonl" --text-field body --data "$T/train.txt" --vocab-size 600 --out "$T/j.json"
check max_bytes 0 "^sra-bpe: 5000 bytes, 1 records" \
    "$B/sra-bpe" --data "$T/train.txt" --max-bytes 5000 --vocab-size 300 --out "$T/m.json"
check early_stop 0 "stopped at vocabulary [0-9]+ < --vocab-size 5000: no pair occurs 50 times" \
    "$B/sra-bpe" --data "$T/train.txt" --max-bytes 20000 --vocab-size 5000 --min-frequency 50 --out "$T/e.json"
check early_stop_loads 0 '^\{"ids": \[' bash -c "echo '{\"text\": \"Hello world\"}' | '$B/sra-tokenize' --tokenizer '$T/e.json'"

# Errors.
check missing_data nz "$T/none.txt" "$B/sra-bpe" --data "$T/none.txt" --vocab-size 300 --out "$T/x.json"
check small_vocab nz "--vocab-size 256: must be between 256 bytes \+ 1 special token = 257" \
    "$B/sra-bpe" --data "$T/train.txt" --vocab-size 256 --special "<|endoftext|>" --out "$T/x.json"
check bad_vocab nz "--vocab-size: expected a non-negative integer, got '1k'" \
    "$B/sra-bpe" --data "$T/train.txt" --vocab-size 1k --out "$T/x.json"
check bad_min_freq nz "--min-frequency: expected a positive integer, got '0'" \
    "$B/sra-bpe" --data "$T/train.txt" --vocab-size 300 --min-frequency 0 --out "$T/x.json"
check unwritable nz "--out $T/no/dir/t.json: cannot write $T/no/dir/t.json.tmp" \
    "$B/sra-bpe" --data "$T/train.txt" --max-bytes 1000 --vocab-size 300 --out "$T/no/dir/t.json"
check no_out nz "--out PATH is required" "$B/sra-bpe" --data "$T/train.txt" --vocab-size 300
check no_data nz "--data FILE is required" "$B/sra-bpe" --vocab-size 300 --out "$T/x.json"
: > "$T/empty.txt"
check empty_data nz "no text to train on in --data $T/empty.txt" \
    "$B/sra-bpe" --data "$T/empty.txt" --vocab-size 300 --out "$T/x.json"
check special_twice nz "--special 'a' is given twice" \
    "$B/sra-bpe" --data "$T/train.txt" --vocab-size 300 --special a --special a --out "$T/x.json"
check special_clash nz "--special 'e' is also a learned token" \
    "$B/sra-bpe" --data "$T/train.txt" --max-bytes 1000 --vocab-size 300 --special e --out "$T/x.json"
check bad_flag nz "unknown or incomplete option '--frobnicate'" "$B/sra-bpe" --frobnicate
check help 0 "usage: sra-bpe" "$B/sra-bpe" --help
check nothing_written 0 "^clean$" bash -c "[ ! -e '$T/x.json' ] && [ ! -e '$T/x.json.tmp' ] && echo clean"
