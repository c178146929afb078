#!/usr/bin/env bash
# CLI contract of sra-stories: the same seed gives the same bytes, story i
# of --seed S is story 0 of --seed S+i, --jsonl lines parse, lengths stay in
# range, grammar fix-ups hold (a/an, capitals, quotes, was/were), pronouns
# agree with the cast, and the long-range structure is there (the hero's
# name recurs, a lost object is found as the same object, the opening
# weather comes back at the end). Misuse gets a message and a non-zero exit.
set -uo pipefail
B=${SRA_BUILD:-build}
PY=${SRA_PY:-/usr/bin/python3}
T=$(mktemp -d /tmp/sra-cli-XXXXXX)
trap 'rm -rf "$T"' EXIT

. "$(dirname "$0")/lib_cli.sh"
S=$B/sra-stories

cat > "$T/ana.py" <<'PYEOF'
import json, re, sys

def sentences(s):
    # the rule sra-stories documents: . ! ? outside quotes before a space or
    # the end, and a closing quote after . ! ? before the end or a capital
    q = k = 0
    n = len(s)
    for i, c in enumerate(s):
        if c == '"':
            q = not q
            if not q and i > 0 and s[i - 1] in ".!?" and (i + 1 == n or (s[i + 1] == " " and i + 2 < n and s[i + 2].isupper())):
                k += 1
        elif not q and c in ".!?" and (i + 1 == n or s[i + 1] == " "):
            k += 1
    return k

def load(path, seed0):
    out = []
    for i, line in enumerate(open(path, encoding="utf-8")):
        d = json.loads(line)
        assert set(d) == {"text", "seed"}, d.keys()
        assert d["seed"] == seed0 + i, (d["seed"], seed0 + i)
        assert isinstance(d["text"], str) and d["text"], i
        out.append(d["text"])
    return out

cmd, path, seed0 = sys.argv[1], sys.argv[2], int(sys.argv[3])
texts = load(path, seed0)
if cmd == "valid":
    print("%d stories, seeds %d..%d" % (len(texts), seed0, seed0 + len(texts) - 1))
elif cmd == "sizes":
    lo, hi, wlo, whi = map(int, sys.argv[4:8])
    s = [sentences(t) for t in texts]
    w = [len(t.split()) for t in texts]
    bad = sum(1 for a, b in zip(s, w) if not (lo <= a <= hi and wlo <= b <= whi))
    print("sentences %d..%d words %d..%d out of range %d" % (min(s), max(s), min(w), max(w), bad))
elif cmd == "grammar":
    rules = {
        "a before a vowel": r"\b[aA] [aeiouAEIOU]",
        "an before a consonant": r"\b[aA]n [^aeiouAEIOU]",
        "lowercase sentence start": r"[.!?] [a-z]|^[^A-Z]",
        "lowercase quote start": r'(^| )"[a-z]',
        "template leftovers": r"[\[\]{}|^]",
        "spacing": r"  | [,.!?]|,,",
        "he/she were": r"\b([Hh]e|[Ss]he) were\b",
        "they was": r"\b[Tt]hey was\b",
    }
    bad = {k: sum(1 for t in texts if re.search(r, t)) for k, r in rules.items()}
    bad["odd quotes"] = sum(1 for t in texts if t.count('"') % 2)
    print("grammar faults: %d %s" % (sum(bad.values()), {k: v for k, v in bad.items() if v}))
elif cmd == "pronouns":
    # (name, pronoun) pairs the grammar ties together within one sentence
    pats = [r"\b([A-Z]\w+) had (?:a|an|some) [^.!?\"]* that (he|she|they) loved",
            r"\b([A-Z]\w+) said to (himself|herself|themselves)",
            r"\b([A-Z]\w+) wanted to [^.!?\"]*, but (he|she|they) (?:was|were)",
            r"\b([A-Z]\w+) put (his|her|their) ",
            r"\b([A-Z]\w+) always kept (his|her|their) ",
            r"\b([A-Z]\w+) was (?:very |more )careful with (his|her|their) "]
    g = {"he": "m", "his": "m", "himself": "m", "she": "f", "her": "f", "herself": "f",
         "they": "n", "their": "n", "themselves": "n", "boy": "m", "girl": "f", "kid": "n"}
    checked = bad = 0
    for t in texts:
        ties = []
        m = re.match(r"(?:Once upon a time, there was|There once was) an? \w+ (boy|girl|kid) (?:named|called) (\w+)", t)
        if m:
            ties.append((m.group(2), g[m.group(1)]))
        for p in pats:
            ties += [(name, g[pron]) for name, pron in re.findall(p, t)]
        if len({name for name, _ in ties}) < len(set(ties)):
            bad += 1
        if len(ties) >= 2:
            checked += 1
    print("pronoun checks: %d stories with 2+ ties, %d inconsistent" % (checked, bad))
elif cmd == "structure":
    n = len(texts)
    name_rec = lost = lost_same = weather_back = 0
    back = {"sunny": "sun", "cloudy": "clouds", "windy": "wind", "rainy": "rain", "snowy": "snow"}
    for t in texts:
        first = re.split(r"(?<=[.!?]) ", t, 1)
        hero = re.findall(r"(?:named|called) ([A-Z]\w+)|^([A-Z]\w+) was", first[0])
        hero = [a or b for a, b in hero]
        if hero and t.count(hero[0]) >= 3:
            name_rec += 1
        m = re.search(r"had (?:a|an|some) ([^.]+?) that (?:he|she|they) loved", t)
        f = re.search(r"there (?:was|were) (?:his|her|their) (.+?)!", t)
        if f:
            lost += 1
            if m and m.group(1) == f.group(1):
                lost_same += 1
        w = re.search(r"One (sunny|cloudy|windy|rainy|snowy) (morning|afternoon|evening)", t)
        rest = t[w.end():] if w else ""
        if w and re.search(r"\b%s\b" % back[w.group(1)], rest):
            weather_back += 1
    print("hero name 3+ times: %d%%; lost objects found as the same object: %d of %d; weather recalled: %d%%"
          % (100 * name_rec // n, lost_same, lost, 100 * weather_back // n))
PYEOF

# Determinism: the same command gives the same bytes, text and JSONL.
"$S" --n 300 --seed 10 --jsonl > "$T/a.jsonl"
"$S" --n 300 --seed 10 --jsonl > "$T/b.jsonl"
check same_seed_same_bytes 0 "" cmp "$T/a.jsonl" "$T/b.jsonl"
"$S" --n 20 --seed 10 > "$T/a.txt"
"$S" --n 20 --seed 10 > "$T/b.txt"
check same_seed_same_bytes_text 0 "" cmp "$T/a.txt" "$T/b.txt"
"$S" --n 20 --seed 11 > "$T/c.txt"
check other_seed_other_text nz "" cmp -s "$T/a.txt" "$T/c.txt"
# Story i of --seed S is story 0 of --seed S+i (JSONL line i; text line 2i+1).
check story_i_is_seed_plus_i 0 "^ok$" bash -c '
    for i in 0 1 7 123 299; do
        [ "$(sed -n "$((i + 1))p" "$2")" = "$("$1" --n 1 --seed $((10 + i)) --jsonl)" ] || { echo "story $i differs"; exit 1; }
    done
    for i in 0 5 19; do
        [ "$(sed -n "$((2 * i + 1))p" "$3")" = "$("$1" --n 1 --seed $((10 + i)))" ] || { echo "text story $i differs"; exit 1; }
    done; echo ok' _ "$S" "$T/a.jsonl" "$T/a.txt"
check text_blank_line_between 0 "^20 stories, 19 blank lines$" bash -c \
    'echo "$(grep -c . "$1") stories, $(grep -c "^$" "$1") blank lines"' _ "$T/a.txt"
check huge_seed_wraps 0 '"seed": 18446744073709551615\}.*"seed": 0\}' bash -c \
    '"$1" --n 2 --seed 18446744073709551615 --jsonl | tr "\n" " "' _ "$S"

# JSONL parses; lengths; grammar; pronouns; long-range structure.
check jsonl_valid 0 "^300 stories, seeds 10\.\.309$" "$PY" "$T/ana.py" valid "$T/a.jsonl" 10
"$S" --n 2000 --seed 5000 --jsonl > "$T/big.jsonl"
check sizes_default 0 "out of range 0$" "$PY" "$T/ana.py" sizes "$T/big.jsonl" 5000 12 22 80 250
"$S" --n 300 --seed 7 --jsonl --min-sentences 20 --max-sentences 25 > "$T/long.jsonl"
check sizes_20_25 0 "out of range 0$" "$PY" "$T/ana.py" sizes "$T/long.jsonl" 7 20 25 0 100000
"$S" --n 300 --seed 7 --jsonl --min-sentences 17 --max-sentences 17 > "$T/exact17.jsonl"
check sizes_exact_17 0 "^sentences 17\.\.17 .*out of range 0$" "$PY" "$T/ana.py" sizes "$T/exact17.jsonl" 7 17 17 0 100000
"$S" --n 300 --seed 7 --jsonl --min-sentences 28 --max-sentences 28 > "$T/exact.jsonl"
check sizes_exact_28 0 "^sentences 28\.\.28 .*out of range 0$" "$PY" "$T/ana.py" sizes "$T/exact.jsonl" 7 28 28 0 100000
check grammar 0 "^grammar faults: 0 " "$PY" "$T/ana.py" grammar "$T/big.jsonl" 5000
check pronouns 0 "^pronoun checks: ([3-9][0-9]{2}|[0-9]{4,}) stories with 2\+ ties, 0 inconsistent$" \
    "$PY" "$T/ana.py" pronouns "$T/big.jsonl" 5000
check structure 0 "^hero name 3\+ times: (9[5-9]|100)%; lost objects found as the same object: ([0-9]+) of \2; weather recalled: 100%$" \
    "$PY" "$T/ana.py" structure "$T/big.jsonl" 5000
check fast 0 "^10000 stories$" bash -c '"$1" --n 10000 --seed 1 --jsonl | wc -l | sed "s/$/ stories/"' _ "$S"

# Usage and errors.
check help 0 "usage: sra-stories --n N" "$S" --help
check no_n nz "--n N is required" "$S" --seed 3
check n_not_a_number nz "--n abc: expected an integer in \[0, 100000000\]" "$S" --n abc
check n_negative nz "--n -1: expected an integer" "$S" --n -1
check seed_junk nz "--seed 1x: expected an integer" "$S" --n 1 --seed 1x
check min_zero nz "--min-sentences 0: expected an integer in \[1, 28\]" "$S" --n 1 --min-sentences 0
check max_below_plot nz "--max-sentences 5: expected an integer in \[17, 1000\]" "$S" --n 1 --max-sentences 5
check min_above_max nz "--min-sentences 25 is more than --max-sentences 20" "$S" --n 1 --min-sentences 25 --max-sentences 20
check unknown_flag nz "unknown or incomplete option '--bogus'" "$S" --n 1 --bogus
check missing_value nz "unknown or incomplete option '--seed'" "$S" --n 1 --seed
check n_zero 0 "^$" "$S" --n 0
