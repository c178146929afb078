#!/usr/bin/env python3
"""sra-extract against independent references (issue 6 acceptance).

Runs build/sra-extract on the TinyStories-656k teacher and recomputes every
stored value from scratch in numpy:
  - atoms: ../shared/tools/sra_ref.py (atoms_from, boundaries) on the
    teacher's tokenization (sra-tokenize, itself checked against HF
    tokenizers by test_tokenizer);
  - hidden states, attention and logits: ../shared/tools/llama_ref.py (a
    float64 numpy forward), and for the reference prompts the stored
    reference files (final_hidden.npy, attn_last_mean.npy, hidden_states.npy);
  - mass (attn:L, self:L, uniform), CoM, the composition law and top-k with
    the tail: the formulas of method.md §2-§4 written here / in sra_ref;
  - mass last:L (method.md §9.1, the default): sra_ref.last_query_mass on
    the attention row of each stored piece's last token, layer 2 from
    llama_ref's attn_last, layer 1 recomputed here from llama_ref's weights,
    norm and RoPE (last_row_attention);
Also: every word-atom boundary is a teacher token boundary; merging atoms
into the GPT-2 student's spans equals the CoM taken directly over the span;
--max-tokens pieces tile each document, never cut an atom, and hold the
values of the teacher run over [BOS] + the piece's tokens; prompt/response
records keep their loss start.

Prints one "ok - NAME" / "not ok - NAME" line per check (tests/run.sh counts
them) with the largest difference seen.
"""
import json
import os
import shutil
import tempfile

import numpy as np

from refkit import BUILD, MODEL, SHARED, check, finish, need_model, run  # noqa: E402

need_model("test_extract_ref")
import h5py  # noqa: E402  (after refkit: HDF5_PLUGIN_PATH)
import llama_ref  # noqa: E402
import sra_ref  # noqa: E402

GPT2 = os.path.join(SHARED, "tokenizers", "gpt2", "tokenizer.json")


def tokenize(tok, texts, special):
    inp = "".join(json.dumps({"text": t}) + "\n" for t in texts).encode()
    args = [os.path.join(BUILD, "sra-tokenize"), "--tokenizer", tok] + (["--special"] if special else [])
    return [json.loads(l) for l in run(args, inp).decode().splitlines()]


def extract(out, data, *flags):
    run([os.path.join(BUILD, "sra-extract"), "--teacher", MODEL, "--data", data, "--out", out, "--quiet"]
        + list(flags))


def read_cache(out):
    """All documents of every shard of an output folder, in order."""
    docs = []
    shards = sorted(f for f in os.listdir(out) if f.startswith("shard-") and f.endswith(".h5"))
    for name in shards:
        with h5py.File(os.path.join(out, name), "r") as f:
            text = f["docs/text"][:].tobytes()
            to, ao = f["docs/text_offsets"][:], f["docs/atom_offsets"][:]
            layers = list(f.attrs["layers"])
            com = []
            for j in range(len(layers)):
                d = f["atoms/com/%d" % j]
                a = d[:]
                if d.attrs.get("dtype", b"") in (b"bfloat16", "bfloat16"):
                    a = (a.astype(np.uint32) << 16).view(np.float32)
                com.append(a.astype(np.float64))
            A = {k: f["atoms/" + k][:] for k in ("start", "end", "mass", "topk_ids", "topk_logprob", "tail_mass")}
            for i in range(len(to) - 1):
                a0, a1 = ao[i], ao[i + 1]
                docs.append({
                    "text": text[to[i]:to[i + 1]], "record": int(f["docs/record"][i]),
                    "loss_start": int(f["docs/loss_start"][i]),
                    "atoms": list(zip(A["start"][a0:a1].tolist(), A["end"][a0:a1].tolist())),
                    "mass": A["mass"][a0:a1].astype(np.float64),
                    "com": {L: c[a0:a1] for L, c in zip(layers, com)},
                    "ids": A["topk_ids"][a0:a1], "lp": A["topk_logprob"][a0:a1].astype(np.float64),
                    "tail": A["tail_mass"][a0:a1].astype(np.float64)})
    return docs


def rel(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-30)) if a.size else 0.0


def log_softmax(x):
    x = x - x.max(-1, keepdims=True)
    return x - np.log(np.exp(x).sum(-1, keepdims=True))


def self_mass(h):
    """method.md §3 self:L, written from the text: h / std, h h^T / sqrt(d),
    diagonal masked, row softmax, column mean over the other rows."""
    x = h / h.std(-1, keepdims=True)
    s = x @ x.T / np.sqrt(h.shape[1])
    np.fill_diagonal(s, -np.inf)
    a = np.exp(s - s.max(-1, keepdims=True))
    a /= a.sum(-1, keepdims=True)
    return a.sum(0) / (len(h) - 1)


def topk_check(doc, logits_rows, k):
    """Stored ids, log-probs and tail against log_softmax of the float64
    logits at each atom's last token. Ids must agree except where two
    probabilities tie within float32 noise."""
    worst_lp, worst_tail, id_bad = 0.0, 0.0, 0
    for a, row in enumerate(logits_rows):
        lp = log_softmax(row)
        order = np.argsort(-lp, kind="stable")[:k]
        got = doc["ids"][a]
        for j in range(k):
            if got[j] != order[j] and abs(lp[got[j]] - lp[order[j]]) > 1e-5:
                id_bad += 1
        worst_lp = max(worst_lp, float(np.abs(doc["lp"][a] - lp[got]).max()))
        tail = 1.0 - np.exp(lp[got]).sum()
        worst_tail = max(worst_tail, abs(doc["tail"][a] - tail))
    return id_bad, worst_lp, worst_tail


def last_row_attention(model, ids, layer):
    """(H, T) attention probabilities of the last query of ids in layer
    `layer` (1-based), from llama_ref's forward: its residual stream before
    that layer, then the layer's norm, q/k projections and RoPE, written
    here from the Llama definition (method.md §9.1 needs one row only)."""
    r = model.forward(ids)
    x = r["hidden_states"][layer - 1]
    T, H, KV, hd = len(ids), model.H, model.KV, model.hd
    p = "model.layers.%d." % (layer - 1)
    h = model.rmsnorm(x, model.W[p + "input_layernorm.weight"])
    q = (h @ model.W[p + "self_attn.q_proj.weight"].T).reshape(T, H, hd)
    k = (h @ model.W[p + "self_attn.k_proj.weight"].T).reshape(T, KV, hd)
    pos = np.arange(T)
    q, k = model.rope(q, pos), model.rope(k, pos)
    k = np.repeat(k, H // KV, axis=1)
    s = np.einsum("hd,shd->hs", q[-1], k) / np.sqrt(hd)    # the last query sees every key
    a = np.exp(s - s.max(-1, keepdims=True))
    return a / a.sum(-1, keepdims=True), r


def piece_sequences(pieces, atoms, ids, MT):
    """For the stored pieces of one record (in order): (piece, byte offset
    of the piece in the record, its atoms in record bytes, the teacher
    sequence it was run as, its atoms with token indices in that sequence).
    The sequence is BOS + the body tokens after the previous piece up to
    its last atom's last token (the last piece: to the end, when that fits)."""
    out, pos, prev_last, T = [], 0, None, len(ids)
    for k, p in enumerate(pieces):
        mine = [(a + pos, b + pos) for a, b in p["atoms"]]
        ai = [j for j, (a, b, _) in enumerate(atoms) if (a, b) in set(mine)]
        first = 1 if prev_last is None else prev_last + 1
        last = atoms[ai[-1]][2][-1]
        if k == len(pieces) - 1 and 1 + (T - 1 - first + 1) <= MT:
            last = T - 1
        seq = [ids[0]] + ids[first:last + 1]
        shift = [(a, b, [i - first + 1 for i in idx]) for a, b, idx in (atoms[j] for j in ai)]
        out.append((p, pos, mine, seq, shift))
        prev_last = atoms[ai[-1]][2][-1]
        pos += len(p["text"])
    return out


def cache_mass_attr(out):
    with h5py.File(os.path.join(out, sorted(f for f in os.listdir(out) if f.endswith(".h5"))[0]), "r") as f:
        m = f.attrs["mass"]
    return m.decode() if isinstance(m, bytes) else str(m)


def atoms_of(offsets, text, mode="word"):
    return sra_ref.atoms_from([tuple(o) for o in offsets], text, mode)


def main():
    tmp = tempfile.mkdtemp(prefix="sra-extract-ref-")
    ref_dir = os.path.join(MODEL, "reference")
    index = json.load(open(os.path.join(ref_dir, "index.json")))
    prompts = [json.loads(l) for l in open(os.path.join(ref_dir, "prompts.jsonl"))]
    shakes = open(os.path.join(SHARED, "corpus", "tinyshakespeare.txt"), "rb").read().decode()
    texts = [p["text"] for p in prompts]                                   # the reference prompts
    texts += [p["text"] + i["new_text"] for p, i in zip(prompts[:3], index[:3])]
    texts += [shakes[:700], shakes[5000:5600]]
    texts += ["  Spaces\u00a0and\ttabs\n\n  and a  double  space.  "]
    data = os.path.join(tmp, "data.jsonl")
    with open(data, "w") as f:
        for t in texts:
            f.write(json.dumps({"text": t}) + "\n")
    model = llama_ref.Llama(MODEL)
    toks = tokenize(os.path.join(MODEL, "tokenizer.json"), texts, True)
    stud = tokenize(GPT2, texts, False)
    fwd = [model.forward(t["ids"]) for t in toks]

    # --- A: word atoms, attn mass, layers 0, 1 and final, f32, top-16
    outA = os.path.join(tmp, "A")
    extract(outA, data, "--mass", "attn", "--layers", "0,1,final", "--dtype", "f32", "--topk", "16",
            "--student-tokenizer", GPT2)
    docs = read_cache(outA)
    check("A_docs", len(docs) == len(texts) and all(d["text"] == t.encode() for d, t in zip(docs, texts)),
          "%d docs" % len(docs))
    w_mass = w_com = w_lp = w_tail = w_merge = 0.0
    id_bad = 0
    bound_bad = atoms_bad = 0
    for d, t, tk, st, r in zip(docs, texts, toks, stud, fwd):
        text = t.encode()
        atoms = atoms_of(tk["offsets"], text)
        atoms_bad += [(a, b) for a, b, _ in atoms] != d["atoms"]
        BT = set(sra_ref.boundaries([tuple(o) for o in tk["offsets"]], text))
        bound_bad += sum(a not in BT or b not in BT for a, b in d["atoms"])
        m = sra_ref.attn_mass(r["attn_last"].mean(0))
        for L in (0, 1, -1):
            h = r["final_hidden"] if L == -1 else r["hidden_states"][L]
            com, M = sra_ref.atom_com(atoms, h, m)
            w_com = max(w_com, rel(d["com"][L], com))
        w_mass = max(w_mass, rel(d["mass"], M))
        last = [idx[-1] for _, _, idx in atoms]
        b, wl, wt = topk_check(d, r["logits"][last], 16)
        id_bad, w_lp, w_tail = id_bad + b, max(w_lp, wl), max(w_tail, wt)
        # composition law: merging the cache's atoms into the student's
        # spans equals the CoM taken directly over each span's tokens
        spans = sra_ref.spans_for_student(atoms, [tuple(o) for o in st["offsets"]], text)
        groups = [ai for _, _, ai, _ in spans]
        mc, mM = sra_ref.merge(groups, d["com"][-1], d["mass"])
        direct = [(a, b, sorted(i for k in ai for i in atoms[k][2])) for a, b, ai, _ in spans]
        dc, dM = sra_ref.atom_com(direct, r["final_hidden"], m)
        w_merge = max(w_merge, rel(mc, dc), rel(mM, dM))
    check("A_word_atoms_match_oracle", atoms_bad == 0, "%d documents differ" % atoms_bad)
    check("A_atom_edges_are_teacher_boundaries", bound_bad == 0, "%d edges are not" % bound_bad)
    check("A_mass_attn", w_mass < 1e-5, "max rel %.2e" % w_mass)
    check("A_com_layers_0_1_final", w_com < 1e-5, "max rel %.2e" % w_com)
    check("A_topk_ids", id_bad == 0, "%d ids differ" % id_bad)
    check("A_topk_logprob_f16", w_lp < 8e-3, "max abs %.2e" % w_lp)
    check("A_tail_mass", w_tail < 1e-5, "max abs %.2e" % w_tail)
    check("A_composition_law_gpt2_spans", w_merge < 1e-5, "max rel %.2e" % w_merge)

    # the reference files themselves (the prompts' ids are the stored ids)
    w_ref = 0.0
    ids_ok = True
    for d, p in zip(docs, index):
        rd = os.path.join(ref_dir, p["name"])
        ids = json.load(open(os.path.join(rd, "ids.json")))["ids"]
        tk = tokenize(os.path.join(MODEL, "tokenizer.json"), [d["text"].decode()], True)[0]
        ids_ok &= tk["ids"] == ids
        atoms = atoms_of(tk["offsets"], d["text"])
        m = sra_ref.attn_mass(np.load(os.path.join(rd, "attn_last_mean.npy")).astype(np.float64))
        com, M = sra_ref.atom_com(atoms, np.load(os.path.join(rd, "final_hidden.npy")).astype(np.float64), m)
        c1, _ = sra_ref.atom_com(atoms, np.load(os.path.join(rd, "hidden_states.npy"))[1].astype(np.float64), m)
        w_ref = max(w_ref, rel(d["com"][-1], com), rel(d["mass"], M), rel(d["com"][1], c1))
    check("A_agrees_with_reference_files", ids_ok and w_ref < 1e-4, "ids %s, max rel %.2e" % (ids_ok, w_ref))

    # --- B: bf16 default, self:1 mass, token atoms
    outB = os.path.join(tmp, "B")
    extract(outB, data, "--mass", "self:1", "--atoms", "token", "--topk", "4")
    docsB = read_cache(outB)
    w_self = w_bf = 0.0
    tok_atoms_ok = True
    for d, t, tk, r in zip(docsB, texts, toks, fwd):
        atoms = atoms_of(tk["offsets"], t.encode(), "token")
        tok_atoms_ok &= [(a, b) for a, b, _ in atoms] == d["atoms"]
        m = np.maximum(self_mass(r["hidden_states"][1]), 1e-6)
        com, M = sra_ref.atom_com(atoms, r["final_hidden"], m)
        w_self = max(w_self, rel(d["mass"], M))
        w_bf = max(w_bf, float((np.abs(d["com"][-1] - com) / np.maximum(np.abs(com), 1e-3)).max()))
    check("B_token_atoms_match_oracle", tok_atoms_ok)
    check("B_mass_self_1", w_self < 1e-4, "max rel %.2e" % w_self)
    check("B_com_bf16", w_bf <= 2.0 ** -8 + 1e-6, "max rel per element %.2e (bf16 rounding 3.9e-3)" % w_bf)

    # --- C: uniform mass, student atoms, prompt/response, --max-tokens 24
    pr = [(t[: len(t) // 3], t[len(t) // 3:]) for t in texts]
    dataC = os.path.join(tmp, "pr.jsonl")
    with open(dataC, "w") as f:
        for p, q in pr:
            f.write(json.dumps({"q": p, "a": q}) + "\n")
    outC = os.path.join(tmp, "C")
    MT = 24
    extract(outC, dataC, "--prompt-field", "q", "--response-field", "a", "--max-tokens", str(MT), "--mass",
            "uniform", "--atoms", "student", "--student-tokenizer", GPT2, "--dtype", "f32", "--topk", "8")
    docsC = read_cache(outC)
    tile_ok = loss_ok = atoms_ok = True
    w_piece = w_plp = 0.0
    pid_bad = 0
    split = 0
    for rec, (t, tk, st) in enumerate(zip(texts, toks, stud)):
        text = t.encode()
        pieces = [d for d in docsC if d["record"] == rec]
        split += len(pieces) > 1
        tile_ok &= b"".join(p["text"] for p in pieces) == text
        atoms = sra_ref.atoms_from([tuple(o) for o in tk["offsets"]], text, "student",
                                   [tuple(o) for o in st["offsets"]])
        ls = len(pr[rec][0].encode())
        got_atoms = []
        for p, pos, mine, seq, shift in piece_sequences(pieces, atoms, tk["ids"], MT):
            loss_ok &= p["loss_start"] == min(max(ls - pos, 0), len(p["text"]))
            got_atoms += mine
            if len(seq) > MT:
                tile_ok = False
            r = model.forward(seq)
            com, M = sra_ref.atom_com(shift, r["final_hidden"], np.ones(len(seq)))
            w_piece = max(w_piece, rel(p["com"][-1], com), rel(p["mass"], M))
            b, wl, _ = topk_check(p, r["logits"][[idx[-1] for _, _, idx in shift]], 8)
            pid_bad, w_plp = pid_bad + b, max(w_plp, wl)
        atoms_ok &= got_atoms == [(a, b) for a, b, _ in atoms]
    check("C_some_records_split", split >= 3, "%d records cut into pieces" % split)
    check("C_pieces_tile_documents", tile_ok)
    check("C_pieces_never_cut_an_atom", atoms_ok)
    check("C_loss_start_per_piece", loss_ok)
    check("C_piece_values_uniform_mass", w_piece < 1e-5 and pid_bad == 0 and w_plp < 8e-3,
          "max rel %.2e, %d ids differ, log-prob %.2e" % (w_piece, pid_bad, w_plp))

    # --- D: the default mass (last = last:2, method.md §9.1) and last:1,
    # word atoms, f32, whole documents and --max-tokens pieces (each piece
    # is its own sequence of a right-padded batch: its own last token is
    # the query, the keys its BOS and tokens)
    L = model.L
    for name, flags, layer, MTD in (("D_last_default_whole", [], L, 512),
                                     ("D_last_default_pieces", ["--max-tokens", "20"], L, 20),
                                     ("D_last_1_pieces", ["--mass", "last:1", "--max-tokens", "28"], 1, 28)):
        outD = os.path.join(tmp, name)
        extract(outD, data, "--layers", "1,final", "--dtype", "f32", "--topk", "4", *flags)
        attr = cache_mass_attr(outD)
        check(name + "_mass_attribute", attr == "last:%d" % layer, "recorded %r" % attr)
        docsD = read_cache(outD)
        w_m = w_c = w_row = 0.0
        n_pieces = n_split = 0
        tile_ok = True
        for rec, (t, tk) in enumerate(zip(texts, toks)):
            atoms = atoms_of(tk["offsets"], t.encode())
            pieces = [d for d in docsD if d["record"] == rec]
            tile_ok &= b"".join(p["text"] for p in pieces) == t.encode()
            n_split += len(pieces) > 1
            for p, _, _, seq, shift in piece_sequences(pieces, atoms, tk["ids"], MTD):
                row, r = last_row_attention(model, seq, layer)
                if layer == L:  # llama_ref's own last-layer attention: the same row
                    w_row = max(w_row, float(np.abs(row - r["attn_last"][:, -1, :]).max()))
                m = sra_ref.last_query_mass(row)
                for key, h in ((1, r["hidden_states"][1]), (-1, r["final_hidden"])):
                    com, M = sra_ref.atom_com(shift, h, m)
                    w_c = max(w_c, rel(p["com"][key], com))
                w_m = max(w_m, rel(p["mass"], M))
                n_pieces += 1
        split_ok = n_split == 0 if MTD == 512 else n_split >= 3
        check(name + "_pieces", tile_ok and split_ok, "%d pieces, %d records split" % (n_pieces, n_split))
        if layer == L:
            check(name + "_row_is_llama_ref_attn_last", w_row < 1e-12, "max abs %.2e" % w_row)
        check(name + "_mass", w_m < 1e-5, "max rel %.2e over %d pieces" % (w_m, n_pieces))
        check(name + "_com_layers_1_final", w_c < 1e-5, "max rel %.2e" % w_c)
    shutil.rmtree(tmp, ignore_errors=True)
    finish()


if __name__ == "__main__":
    main()
