#!/usr/bin/env python3
"""One cache, two granularities (issue 8 acceptance): with an atoms=word
cache, every span of a student is a union of the spans that an
atoms=student cache of that student holds (its atoms), and the word span's
CoM (merge of its word atoms, method.md §2) equals the mass-weighted merge
of those student atoms: the composition law at work across caches.
Spans are computed with the oracle ../shared/tools/sra_ref.py from the
student's tokenization (sra-tokenize, checked against HF elsewhere).
Prints "ok - NAME" / "not ok - NAME" lines.
"""
import json
import os
import shutil
import tempfile

import numpy as np

from refkit import BUILD, MODEL, SHARED, check, finish, need_model, run  # noqa: E402

need_model("test_distill_ref")
import h5py  # noqa: E402  (after refkit: HDF5_PLUGIN_PATH)
import sra_ref  # noqa: E402


def docs_of(out):
    with h5py.File(os.path.join(out, "shard-00000-of-00001.h5"), "r") as f:
        text = f["docs/text"][:].tobytes()
        to, ao = f["docs/text_offsets"][:], f["docs/atom_offsets"][:]
        st, en, M = f["atoms/start"][:], f["atoms/end"][:], f["atoms/mass"][:].astype(np.float64)
        com = f["atoms/com/0"][:].astype(np.float64)
        return [(text[to[i]:to[i + 1]], list(zip(st[ao[i]:ao[i + 1]].tolist(), en[ao[i]:ao[i + 1]].tolist())),
                 M[ao[i]:ao[i + 1]], com[ao[i]:ao[i + 1]]) for i in range(len(to) - 1)]


def main():
    tmp = tempfile.mkdtemp(prefix="sra-distill-ref-")
    shakes = open(os.path.join(SHARED, "corpus", "tinyshakespeare.txt"), "rb").read()[:20000]
    data = os.path.join(tmp, "d.txt")
    open(data, "wb").write(shakes)
    for student in ("gpt2", "llama2"):
        tokj = os.path.join(SHARED, "tokenizers", student, "tokenizer.json")
        outs = {}
        for mode in ("word", "student"):
            outs[mode] = os.path.join(tmp, student + "-" + mode)
            run([os.path.join(BUILD, "sra-extract"), "--teacher", MODEL, "--data", data, "--max-bytes", "700",
                 "--out", outs[mode], "--dtype", "f32", "--topk", "4", "--atoms", mode, "--student-tokenizer", tokj,
                 "--quiet"])
        W, Sd = docs_of(outs["word"]), docs_of(outs["student"])
        texts = [d[0] for d in W]
        inp = "".join(json.dumps({"text": t.decode()}) + "\n" for t in texts).encode()
        toks = [json.loads(l) for l in run([os.path.join(BUILD, "sra-tokenize"), "--tokenizer", tokj, "--special"],
                                           inp).decode().splitlines()]
        union_bad = n_spans = 0
        worst = 0.0
        for (text, wat, wM, wcom), (text2, sat, sM, scom), tk in zip(W, Sd, toks):
            assert text == text2
            atoms = [(a, b, []) for a, b in wat]
            spans = sra_ref.spans_for_student(atoms, [tuple(o) for o in tk["offsets"]], text)
            edges = {a for a, _ in sat} | {b for _, b in sat}
            for a, b, ai, _ in spans:
                n_spans += 1
                inside = [j for j, (x, y) in enumerate(sat) if a <= x and y <= b]
                tiled = inside and sat[inside[0]][0] == a and sat[inside[-1]][1] == b and all(
                    sat[j][1] == sat[j + 1][0] for j in inside[:-1]) and a in edges and b in edges
                if not tiled:
                    union_bad += 1
                    continue
                c1, m1 = sra_ref.merge([ai], wcom, wM)
                c2, m2 = sra_ref.merge([inside], scom, sM)
                worst = max(worst, float(np.abs(c1 - c2).max() / max(np.abs(c2).max(), 1e-30)),
                            float(abs(m1[0] - m2[0]) / m2[0]))
        check("%s_word_spans_are_unions_of_student_atoms" % student, union_bad == 0 and n_spans > 500,
              "%d spans, %d not a union" % (n_spans, union_bad))
        check("%s_word_span_com_equals_merge_of_student_atoms" % student, worst < 1e-5, "max rel %.2e" % worst)
    shutil.rmtree(tmp, ignore_errors=True)
    finish()


if __name__ == "__main__":
    main()
