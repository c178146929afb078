#!/usr/bin/env python3
"""Reference data for tests/test_spans.c from the oracle ../shared/tools/sra_ref.py.

    spans_ref.py BUILD SHARED OUTDIR

Texts: ../shared/reference/texts.jsonl, the TinyStories prompts and a few
whitespace cases. Tokenizations come from the project's own CLI
(BUILD/sra-tokenize): teacher = the TinyStories-656k tokenizer with its BOS
(--special; its offsets overlap, method.md §1), students = gpt2 and llama2
(llama2 with its BOS). Writes OUTDIR/ref.jsonl, one line per
(text, student, atoms mode):
    hex (the text's bytes), student, mode, seed, C, offT, offS,
    canon, BT, BS, W, atoms [[a, b, [idx]]], spans [[a, b, [ai], [si]]],
    com (A, C), M (A), scom (G, C), sM (G)
Hidden states (T, C) and masses (T) are drawn from a 64-bit LCG seeded by
`seed`; test_spans.c draws the same numbers (see draw()). Masses are floored
at 1e-6 per token before atom_com, as the oracle's attn_mass does.
Needs /usr/bin/python3 with python3-numpy and python3-regex.
"""
import json
import os
import subprocess
import sys

import numpy as np

C = 8
MASK = (1 << 64) - 1
EXTRA = [
    "  Hello  world  ",
    "a\u00a0\u00a0b \u3000c",
    "tab\tand\nnewline\r\n\r\nend",
    "it's 42 apples, don't   you think?\n",
    " x",
    "x ",
]


def draw(seed, T):
    """hidden (T, C) float32 in [-1, 1), mass (T) float32 with exact zeros and
    values below the floor (all exactly representable)."""
    x = ((seed + 1) * 0x9E3779B97F4A7C15) & MASK

    def nxt():
        nonlocal x
        x = (x * 6364136223846793005 + 1442695040888963407) & MASK
        return x >> 40

    hidden = np.zeros((T, C), np.float32)
    for i in range(T):
        for c in range(C):
            hidden[i, c] = nxt() / 2.0**24 * 2.0 - 1.0
    mass = np.zeros(T, np.float32)
    for i in range(T):
        r = nxt()
        if r % 5 == 0:
            mass[i] = 0.0
        elif r % 5 == 1:
            mass[i] = r / 2.0**48
        else:
            mass[i] = r / 2.0**24
    return hidden, mass


def tokenize(build, tokenizer, texts, special):
    cmd = [os.path.join(build, "sra-tokenize"), "--tokenizer", tokenizer] + (["--special"] if special else [])
    inp = "".join(json.dumps({"text": t}) + "\n" for t in texts)
    out = subprocess.run(cmd, input=inp.encode(), stdout=subprocess.PIPE, check=True).stdout
    lines = out.decode().splitlines()
    assert len(lines) == len(texts), (tokenizer, len(lines), len(texts))
    return [json.loads(l)["offsets"] for l in lines]


def main():
    build, shared, outdir = sys.argv[1:4]
    sys.path.insert(0, os.path.join(shared, "tools"))
    import sra_ref as R

    texts = [json.loads(l)["text"] for l in open(os.path.join(shared, "reference/texts.jsonl"))]
    texts += [json.loads(l)["text"] for l in open(os.path.join(shared, "models/tinystories-656k/reference/prompts.jsonl"))]
    texts += EXTRA
    teacher = tokenize(build, os.path.join(shared, "models/tinystories-656k/tokenizer.json"), texts, True)
    students = {
        "gpt2": tokenize(build, os.path.join(shared, "tokenizers/gpt2/tokenizer.json"), texts, False),
        "llama2": tokenize(build, os.path.join(shared, "tokenizers/llama2/tokenizer.json"), texts, True),
    }
    with open(os.path.join(outdir, "ref.jsonl"), "w") as f:
        for i, t in enumerate(texts):
            b = t.encode()
            offT = teacher[i]
            canon = [int(v) for v in R.canon_map(b)]
            BT = R.boundaries(offT, b)
            W = R.word_boundaries(b)
            hidden, mass = draw(i, len(offT))
            m = np.maximum(mass.astype(np.float64), 1e-6)
            for sname, soffs in students.items():
                offS = soffs[i]
                for mode in ("word", "token", "student"):
                    atoms = R.atoms_from(offT, b, mode, offS)
                    spans = R.spans_for_student(atoms, offS, b)
                    rec = {"hex": b.hex(), "student": sname, "mode": mode, "seed": i, "C": C,
                           "offT": offT, "offS": offS, "canon": canon, "BT": BT,
                           "BS": R.boundaries(offS, b), "W": W,
                           "atoms": [[a, e, idx] for a, e, idx in atoms],
                           "spans": [[a, e, ai, si] for a, e, ai, si in spans],
                           "com": [], "M": [], "scom": [], "sM": []}
                    if atoms:
                        com, M = R.atom_com(atoms, hidden.astype(np.float64), m)
                        rec["com"], rec["M"] = com.tolist(), M.tolist()
                        if spans:
                            sc, sM = R.merge([ai for _, _, ai, _ in spans], com, M)
                            rec["scom"], rec["sM"] = sc.tolist(), sM.tolist()
                    f.write(json.dumps(rec) + "\n")


if __name__ == "__main__":
    main()
