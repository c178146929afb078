#!/usr/bin/env python3
"""Oracle for tests/test_vocab.c: the shared vocabulary of two tokenizer.json
files as ../shared/tools/sra_ref.py defines it, written independently of
train/vocab.c.

    vocab_ref.py TEACHER_TOKENIZER_JSON STUDENT_TOKENIZER_JSON OUT.txt

OUT.txt, plain text:
    strip K          shared keys of pool=strip (sra_ref.shared_strings over
                     sra_ref.token_bytes_table, method.md §4)
    exact N          shared pairs of pool=exact (sra_ref.exact_shared_ids,
                     method.md §9.3), then N lines "teacher_id student_id"
                     in the oracle's order (increasing student id)
sra_ref.py comes from $SRA_SHARED/tools (default ../shared/tools).
"""
import os
import sys

SHARED = os.environ.get("SRA_SHARED") or "../shared"
sys.path.insert(0, os.path.join(SHARED, "tools"))
import sra_ref  # noqa: E402


def main():
    tok_t, tok_s, out = sys.argv[1:4]
    shared = sra_ref.shared_strings(sra_ref.token_bytes_table(tok_t), sra_ref.token_bytes_table(tok_s))
    ids_t, ids_s = sra_ref.exact_shared_ids(tok_t, tok_s)
    with open(out, "w") as f:
        f.write(f"strip {len(shared)}\n")
        f.write(f"exact {len(ids_t)}\n")
        for a, b in zip(ids_t, ids_s):
            f.write(f"{int(a)} {int(b)}\n")


if __name__ == "__main__":
    main()
