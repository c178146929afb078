#!/usr/bin/env python3
"""The paper preset end to end (issue 17 acceptance): sra-train's loss terms
on real documents equal ../shared/tools/sra_ref.py §9 computed from
independent pieces.

The chain under test: sra-extract (TinyStories-656K teacher, mass last:L,
head stored in the cache) -> sra-train --preset paper (loader, exact-string
shared vocabulary, head rows, spans, student masses, losses). The
reference side reads the cache's atoms with h5py, the teacher head from
the teacher's own checkpoint, runs the student with the numpy forward of
../shared/tools/llama_ref.py (float64), weighs its tokens with
sra_ref.last_query_mass of that forward's last-layer attention, builds the
spans with sra_ref.spans_for_student and the loss with sra_ref.paper_losses.
Students: ../shared/models/stories260k (pretrained, its own 512-token
tokenizer) and a random student with the GPT-2 tokenizer.

How a step's values are isolated: sra-train runs one document per step
(--batch 1, one chunk of the cache, read in order) with a learning rate so
small (1e-30) that no float32 weight changes, so step i's metrics are the
terms of document i under the initial weights; final/ and the checkpoint's
projection are those weights. A second run with the whole cache as one
batch checks the batch formula (token-mean CE, sequence-mean terms).
Variants: two layer pairs (--layer-map, a cache with --layers 1,final);
uniform span weights + spans over the whole text + exact boundaries + tau^2.
Prints "ok - NAME" / "not ok - NAME" lines.
"""
import json
import os
import shutil
import tempfile

import numpy as np

from refkit import BUILD, MODEL, SHARED, check, finish, need_model, run  # noqa: E402

need_model("test_paper_ref")
import h5py  # noqa: E402  (after refkit: HDF5_PLUGIN_PATH)
import llama_ref  # noqa: E402
import sra_ref  # noqa: E402

TOL = 1e-5

# Documents of our own, in the teacher's domain: prompt + response records
# (the response is where spans and CE start), and plain texts (empty prompt);
# a paragraph break and a double space, where raw and canonical boundaries
# differ (--boundaries exact).
RECORDS = [
    ("Question: What did the dog find?\nAnswer:", " The dog found a red ball under the big tree. He was very happy."),
    ("", "Once upon a time, there was a little girl named Mia. She liked to play in the garden with her cat.\n\n"
     "One day, the cat ran  away. Mia looked for it everywhere."),
    ("Tell me a story about a bird.\n", "A small bird lived in a tall tree. One day it flew to the park and saw a boy "
     "with a kite. The boy smiled and said, \"Hello, bird!\""),
    ("", "Tom and Sue went to the beach. They built a big sand castle, but the waves came and took it away. "
     "Sue was sad, so Tom gave her a hug."),
    ("Write one sentence.", " The sun was warm and the sky was blue."),
]


def cache_docs(out):
    """Every stored document of a one-shard cache, in order."""
    with h5py.File(os.path.join(out, "shard-00000-of-00001.h5"), "r") as f:
        text = f["docs/text"][:].tobytes()
        to, ao, ls = f["docs/text_offsets"][:], f["docs/atom_offsets"][:], f["docs/loss_start"][:]
        st, en = f["atoms/start"][:], f["atoms/end"][:]
        M = f["atoms/mass"][:].astype(np.float64)
        layers = list(f.attrs["layers"])
        coms = {}
        for j, l in enumerate(layers):
            c = f["atoms/com/%d" % j][:]
            coms[int(l)] = c.astype(np.float64)
        docs = []
        for i in range(len(to) - 1):
            a, b = ao[i], ao[i + 1]
            docs.append({"text": text[to[i]:to[i + 1]], "loss_start": int(ls[i]),
                         "atoms": [(int(s), int(e), []) for s, e in zip(st[a:b], en[a:b])],
                         "M": M[a:b], "com": {l: c[a:b] for l, c in coms.items()}})
        return docs


def exact_spans(atoms, offsets_S):
    """Spans with the student's raw token edges (--boundaries exact): method.md
    §9.7. Boundaries: starts/ends of non-empty tokens that no token strictly
    contains; cuts shared with the atoms' edges; same grouping as the oracle."""
    toks = sorted((s, e) for s, e in offsets_S if e > s)
    cand = sorted({p for t in toks for p in t})
    B, k, reach = set(), 0, -1
    for p in cand:
        while k < len(toks) and toks[k][0] < p:
            reach = max(reach, toks[k][1])
            k += 1
        if reach <= p:
            B.add(p)
    cuts = sorted(B & ({a for a, _, _ in atoms} | {b for _, b, _ in atoms}))
    spans = []
    for a, b in zip(cuts, cuts[1:]):
        ai = [i for i, (s, e, _) in enumerate(atoms) if a <= s and e <= b]
        si = [j for j, (s, e) in enumerate(offsets_S) if e > s and a <= s and e <= b]
        if ai and si:
            spans.append((a, b, ai, si))
    return spans


def reference(doc, tok, lm, head_S, head_T, ids_T, ids_S, P, T, opt):
    """The terms of one document under sra_ref §9 (opt: the run's switches)."""
    text, ls = doc["text"], doc["loss_start"]
    n = len(tok["ids"])
    Tb = min(n, T)
    ids = tok["ids"][:Tb]
    offs = [tuple(o) for o in tok["offsets"][:Tb]]
    r = lm.forward(ids)
    # CE on the response: next tokens whose bytes end after loss_start
    # (template tokens with an empty range: those starting at or after it)
    nll, cnt = 0.0, 0
    lsm = r["logits"] - r["logits"].max(-1, keepdims=True)
    lsm = lsm - np.log(np.exp(lsm).sum(-1, keepdims=True))
    for j in range(Tb):
        if j + 1 >= n:
            continue
        s, e = tok["offsets"][j + 1]
        if (e > ls) if e > s else (s >= ls):
            nll -= lsm[j, tok["ids"][j + 1]]
            cnt += 1
    w = sra_ref.last_query_mass(r["attn_last"][:, -1, :])       # the student's own last query, floored
    if opt.get("exact"):
        spans = exact_spans(doc["atoms"], offs)
    else:
        spans = sra_ref.spans_for_student(doc["atoms"], offs, text)
    if not opt.get("spans_all") and ls > 0:
        c = sra_ref.canon_map(text)
        spans = [s for s in spans if s[0] >= c[ls]]
    groups = [ai for _, _, ai, _ in spans]
    out = {"ce_sum": nll, "ce_n": cnt, "spans": len(spans), "span": 0.0, "geo": 0.0, "logit": 0.0}
    if not spans:
        return out
    pairs = opt.get("pairs", [(-1, -1, 1.0)])

    def student_com(layer):
        h = r["final_hidden"] if layer == -1 else r["hidden_states"][layer]
        return np.stack([(w[si, None] * h[si]).sum(0) / w[si].sum() for _, _, _, si in spans])

    comT_f, M_T = sra_ref.merge(groups, doc["com"][-1], doc["M"])
    W = np.full(len(spans), 1.0 / len(spans)) if opt.get("uniform") else sra_ref.salience(M_T)
    dT = head_T.shape[1]
    for p, (tl, sl, pw) in enumerate(pairs):
        cT, _ = sra_ref.merge(groups, doc["com"][tl], doc["M"])
        out["span"] += pw * sra_ref.l_span(W, student_com(sl), cT, P[p * dT:(p + 1) * dT])
    tl, sl, _ = pairs[-1]
    cT, _ = sra_ref.merge(groups, doc["com"][tl], doc["M"])
    out["geo"] = sra_ref.l_geo(W, student_com(sl), cT)
    tau = opt.get("tau", 2.0)
    out["logit"] = sra_ref.head_logit_kl(head_T, head_S, ids_T, ids_S, comT_f, student_com(-1), tau) * \
        (tau * tau if opt.get("tau2") else 1.0)
    return out


def torch_grad_norm(model_dir, doc, tok, head_T, ids_T, ids_S, P_np, T, opt):
    """The global gradient norm (every student parameter and P) of one
    document's total loss, by PyTorch float64 autograd, with the token
    weights detached (method.md §9.1: constants). The spans and CE rows are
    the reference's (the value test above checks them)."""
    import math
    import torch
    import torch_ref
    cfg, Pm = torch_ref.load_model(model_dir)
    F64 = torch.float64
    text, ls = doc["text"], doc["loss_start"]
    n = len(tok["ids"])
    Tb = min(n, T)
    ids = torch.tensor(tok["ids"][:Tb])
    offs = [tuple(o) for o in tok["offsets"][:Tb]]
    H, KV, hd = cfg.H, cfg.KV, cfg.hd
    x = Pm["model.embed_tokens.weight"][ids]
    inv = 1.0 / cfg.theta ** (torch.arange(0, hd, 2, dtype=F64) / hd)
    ang = torch.arange(Tb, dtype=F64)[:, None] * inv[None, :]
    cos, sin = torch.cos(ang).repeat(1, 2), torch.sin(ang).repeat(1, 2)
    mask = torch.triu(torch.full((Tb, Tb), float("-inf"), dtype=F64), 1)
    hidden = [x]
    for l in range(cfg.L):
        p = "model.layers.%d." % l
        h = torch_ref._rmsnorm(x, Pm[p + "input_layernorm.weight"], cfg.eps)
        q = (h @ Pm[p + "self_attn.q_proj.weight"].t()).view(Tb, H, hd).transpose(0, 1)
        k = (h @ Pm[p + "self_attn.k_proj.weight"].t()).view(Tb, KV, hd).transpose(0, 1)
        v = (h @ Pm[p + "self_attn.v_proj.weight"].t()).view(Tb, KV, hd).transpose(0, 1)
        q, k = torch_ref._rope(q, cos, sin), torch_ref._rope(k, cos, sin)
        k, v = k.repeat_interleave(H // KV, 0), v.repeat_interleave(H // KV, 0)
        a = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(hd) + mask, -1)       # H,T,T
        x = x + (a @ v).transpose(0, 1).reshape(Tb, H * hd) @ Pm[p + "self_attn.o_proj.weight"].t()
        h = torch_ref._rmsnorm(x, Pm[p + "post_attention_layernorm.weight"], cfg.eps)
        g, u = h @ Pm[p + "mlp.gate_proj.weight"].t(), h @ Pm[p + "mlp.up_proj.weight"].t()
        x = x + (torch.nn.functional.silu(g) * u) @ Pm[p + "mlp.down_proj.weight"].t()
        hidden.append(x)
    final = torch_ref._rmsnorm(x, Pm["model.norm.weight"], cfg.eps)
    head = Pm["model.embed_tokens.weight"] if cfg.tied else Pm["lm_head.weight"]
    logp = torch.log_softmax(final @ head.t(), -1)
    rows = [j for j in range(Tb) if j + 1 < n and ((tok["offsets"][j + 1][1] > ls) if
            tok["offsets"][j + 1][1] > tok["offsets"][j + 1][0] else (tok["offsets"][j + 1][0] >= ls))]
    ce = -sum(logp[j, tok["ids"][j + 1]] for j in rows) / len(rows)
    w = a.detach().sum(0)[-1]
    w = torch.clamp(w / w.sum(), min=1e-6)
    spans = sra_ref.spans_for_student(doc["atoms"], offs, text)
    c = sra_ref.canon_map(text)
    spans = [sp for sp in spans if ls == 0 or sp[0] >= c[ls]]
    groups = [ai for _, _, ai, _ in spans]
    P = torch.tensor(P_np, dtype=F64, requires_grad=True)
    dT = head_T.shape[1]

    def com_S(layer):
        hs = final if layer == -1 else hidden[layer]
        return torch.stack([(w[si, None] * hs[si]).sum(0) / w[si].sum() for _, _, _, si in spans])

    def gram(m):
        m = m / m.norm(dim=1, keepdim=True)
        return m @ m.t()
    _, M_T = sra_ref.merge(groups, doc["com"][-1], doc["M"])
    W = torch.tensor(sra_ref.salience(M_T), dtype=F64)
    span = 0
    pairs = opt.get("pairs", [(-1, -1, 1.0)])
    for pi, (tl, sl, pw) in enumerate(pairs):
        cT = torch.tensor(sra_ref.merge(groups, doc["com"][tl], doc["M"])[0], dtype=F64)
        pr = com_S(sl) @ P[pi * dT:(pi + 1) * dT].t()
        span = span + pw * (W * (1 - torch.nn.functional.cosine_similarity(pr, cT, dim=1))).sum()
    tl, sl, _ = pairs[-1]
    cT = torch.tensor(sra_ref.merge(groups, doc["com"][tl], doc["M"])[0], dtype=F64)
    ww = W[:, None] * W[None, :] * (1 - torch.eye(len(spans), dtype=F64))
    geo = (ww * (gram(com_S(sl)) - gram(cT)) ** 2).sum() / ww.sum()
    cTf = torch.tensor(sra_ref.merge(groups, doc["com"][-1], doc["M"])[0], dtype=F64)
    zT = cTf @ torch.tensor(head_T[ids_T], dtype=F64).t() / 2.0
    zS = com_S(-1) @ head[torch.tensor(ids_S)].t() / 2.0
    lT, lS = torch.log_softmax(zT, -1), torch.log_softmax(zS, -1)
    logit = (lT.exp() * (lT - lS)).sum()
    total = 0.5 * ce + 0.5 * (span + 50 * geo + logit)
    total.backward()
    ss = sum(float((t.grad ** 2).sum()) for t in Pm.values() if t.grad is not None) + float((P.grad ** 2).sum())
    return math.sqrt(ss), float(total)


def rel(a, b):
    return abs(a - b) / max(abs(b), 1e-12)


def main():
    tmp = tempfile.mkdtemp(prefix="sra-paper-ref-")
    data = os.path.join(tmp, "d.jsonl")
    with open(data, "w") as f:
        for p, r in RECORDS:
            f.write(json.dumps({"prompt": p, "response": r}) + "\n")
    caches = {}
    for name, extra in (("final", []), ("layers", ["--layers", "1,final"])):
        caches[name] = os.path.join(tmp, "cache-" + name)
        run([os.path.join(BUILD, "sra-extract"), "--teacher", MODEL, "--data", data, "--prompt-field", "prompt",
             "--response-field", "response", "--out", caches[name], "--dtype", "f32", "--topk", "0", "--quiet"] + extra)
    teacher = llama_ref.load_safetensors(os.path.join(MODEL, "model.safetensors"))
    head_T = teacher.get("lm_head.weight", teacher["model.embed_tokens.weight"]).astype(np.float64)
    with h5py.File(os.path.join(caches["final"], "shard-00000-of-00001.h5"), "r") as f:
        check("cache mass rule is last:2 (the default)", f.attrs["mass"].decode() == "last:2", f.attrs["mass"].decode())
    students = [("stories260k", os.path.join(SHARED, "models", "stories260k", "tokenizer.json"),
                 ["--from", os.path.join(SHARED, "models", "stories260k")]),
                ("gpt2", os.path.join(SHARED, "tokenizers", "gpt2", "tokenizer.json"),
                 ["--d-model", "64", "--layers", "2", "--heads", "4", "--seed", "3"])]
    variants = [("paper", "final", [], {}),
                ("paper, two layer pairs", "layers", ["--layer-map", "1:1,-1:-1:3"],
                 {"pairs": [(1, 1, 0.25), (-1, -1, 0.75)]}),
                ("paper, uniform span weights, all spans, exact boundaries, tau^2", "final",
                 ["--span-weights", "uniform", "--spans", "all", "--boundaries", "exact", "--tau2", "1"],
                 {"uniform": True, "spans_all": True, "exact": True, "tau2": True})]
    T = 96
    for sname, tokj, model_args in students:
        ids_T, ids_S = sra_ref.exact_shared_ids(os.path.join(MODEL, "tokenizer.json"), tokj)
        for vname, cname, vargs, opt in variants:
            docs = cache_docs(caches[cname])
            n = len(docs)
            outs = {}
            for mode, batch, steps in (("doc", 1, n), ("batch", n, 1)):
                out = os.path.join(tmp, "run-%d" % len(os.listdir(tmp)))
                run([os.path.join(BUILD, "sra-train"), "--cache", caches[cname], "--tokenizer", tokj, "--out", out,
                     "--batch", str(batch), "--seq", str(T), "--steps", str(steps), "--lr", "1e-30", "--min-lr", "1e-30", "--warmup", "0",
                     "--eval-every", "0", "--ckpt-every", str(steps), "--threads", "1", "--quiet"] + model_args + vargs)
                outs[mode] = out
            lm = llama_ref.Llama(os.path.join(outs["doc"], "final"))
            head_S = lm.lm_head
            ckpt = sorted(d for d in os.listdir(os.path.join(outs["doc"], "ckpt")) if d.startswith("step-"))[-1]
            P = llama_ref.load_safetensors(os.path.join(outs["doc"], "ckpt", ckpt, "extra.safetensors"))
            P = P["proj.weight"].astype(np.float64)
            inp = "".join(json.dumps({"text": d["text"].decode()}) + "\n" for d in docs).encode()
            toks = [json.loads(l) for l in run([os.path.join(BUILD, "sra-tokenize"), "--tokenizer", tokj, "--special"],
                                               inp).decode().splitlines()]
            met = [json.loads(l) for l in open(os.path.join(outs["doc"], "metrics.jsonl")) if '"ce"' in l]
            refs = [reference(d, t, lm, head_S, head_T, ids_T, ids_S, P, T, opt) for d, t in zip(docs, toks)]
            worst = {k: 0.0 for k in ("ce", "span", "geo", "logit", "loss")}
            bad = []
            for i, (m, r) in enumerate(zip(met, refs)):
                ce = r["ce_sum"] / r["ce_n"] if r["ce_n"] else 0.0
                total = 0.5 * ce + 0.5 * (r["span"] + 50 * r["geo"] + r["logit"])
                if m["spans"] != r["spans"]:
                    bad.append("doc %d: %d spans, reference %d" % (i, m["spans"], r["spans"]))
                for k, v in (("ce", ce), ("span", r["span"]), ("geo", r["geo"]), ("logit", r["logit"]),
                             ("loss", total)):
                    e = rel(m[k], v)
                    worst[k] = max(worst[k], e)
                    if e > TOL:
                        bad.append("doc %d %s: %.9g vs reference %.9g" % (i, k, m[k], v))
            nonzero = all(r["spans"] > 0 for r in refs) and all(r["logit"] > 0 and r["geo"] > 0 for r in refs)
            check("%s, %s: %d documents, every term equals sra_ref §9 (1e-5 relative)" % (sname, vname, n),
                  len(met) == n and not bad and nonzero,
                  ("; ".join(bad[:4]) if bad else "worst " + ", ".join("%s %.1e" % kv for kv in worst.items())) +
                  ("" if nonzero else "; a document without spans or with a zero term: the check is too weak"))
            if "uniform" not in opt:  # gradients: the whole loss through PyTorch autograd
                gerr = []
                for i, (d, t) in enumerate(zip(docs, toks)):
                    gn, tot = torch_grad_norm(os.path.join(outs["doc"], "final"), d, t, head_T, ids_T, ids_S, P, T, opt)
                    gerr.append(rel(met[i]["grad_norm"], gn))
                check("%s, %s: gradient norm (student + P) of every document equals PyTorch float64 autograd (1e-4)"
                      % (sname, vname), max(gerr) <= 1e-4, "worst %.1e" % max(gerr))
            if not vargs:  # the switches the variants turn must change the reference, or they test nothing
                for sw in ("spans_all", "exact", "uniform"):
                    alt = [reference(d, t, lm, head_S, head_T, ids_T, ids_S, P, T, {sw: True})
                           for d, t in zip(docs, toks)]
                    moved = max(rel(a["span"], r["span"]) for a, r in zip(alt, refs))
                    check("%s: --%s changes the reference (span term moves %.1e)" % (sname, sw, moved), moved > 1e-3)
            # the batch: CE is the token mean, the other terms sequence means
            mb = [json.loads(l) for l in open(os.path.join(outs["batch"], "metrics.jsonl")) if '"ce"' in l][0]
            ce = sum(r["ce_sum"] for r in refs) / sum(r["ce_n"] for r in refs)
            terms = {k: float(np.mean([r[k] for r in refs])) for k in ("span", "geo", "logit")}
            total = 0.5 * ce + 0.5 * (terms["span"] + 50 * terms["geo"] + terms["logit"])
            errs = [rel(mb["ce"], ce), rel(mb["loss"], total)] + [rel(mb[k], v) for k, v in terms.items()]
            check("%s, %s: one batch of %d, loss %.6f = 0.5 CE + 0.5 mean(span + 50 geo + logit)" %
                  (sname, vname, n, total), max(errs) <= TOL, "worst %.1e" % max(errs))
    shutil.rmtree(tmp, ignore_errors=True)
    finish()


if __name__ == "__main__":
    main()
