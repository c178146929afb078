#!/usr/bin/python3
"""Independent numpy (float64) reference for the HF decoder families the C
teacher engine runs (llama incl. llama3 rope, qwen2 q/k/v bias, qwen3 q/k
norm, mistral), plus a writer of tiny random checkpoints and a dtype converter.

    model_ref.py make-random OUT_DIR --family FAMILY [--seed N]
    model_ref.py forward MODEL_DIR --ids '[[1,2,3],[1,5]]' --out OUT_DIR
                 [--mass-layer L] [--hidden-layers 0,1,2] [--gen N]
    model_ref.py convert SRC_DIR DST_DIR --dtype {F16,BF16}

Notation in docstrings: T tokens, C hidden size, NH query heads, NKV key/value
heads, HS head size, I MLP size, V vocabulary, L layers.
Needs only numpy (no torch, no safetensors package).
"""
import argparse
import json
import math
import os
import struct
import sys

import numpy as np

# ---------------------------------------------------------------- safetensors

def _decode(raw, dtype, shape):
    """Raw little-endian bytes -> float32 array of `shape` (F32/F16/BF16/F64)."""
    if dtype == "F32":
        a = np.frombuffer(raw, "<f4")
    elif dtype == "F16":
        a = np.frombuffer(raw, "<f2").astype(np.float32)
    elif dtype == "BF16":  # bf16 = top 16 bits of an f32
        a = (np.frombuffer(raw, "<u2").astype(np.uint32) << 16).view(np.float32)
    elif dtype == "F64":
        a = np.frombuffer(raw, "<f8").astype(np.float32)
    else:
        raise ValueError(f"unsupported safetensors dtype {dtype}")
    return a.reshape(shape)


def read_safetensors(path, aliases=True):
    """Returns ({name: float32 array}, metadata dict or {}), tensors in file order.
    A metadata entry whose key is missing and whose value is a stored tensor
    name is an alias (the tied-embedding quirk: embed_tokens -> lm_head);
    aliases=False returns the stored tensors only."""
    with open(path, "rb") as f:
        blob = f.read()
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + n].decode("utf-8"))
    meta = header.pop("__metadata__", None) or {}
    base = 8 + n
    items = sorted(header.items(), key=lambda kv: kv[1]["data_offsets"][0])
    tensors = {}
    for name, h in items:
        a, b = h["data_offsets"]
        tensors[name] = _decode(blob[base + a:base + b], h["dtype"], h["shape"])
    for alias, target in meta.items():
        if aliases and alias not in tensors and target in tensors:
            tensors[alias] = tensors[target]
    return tensors, meta


def f32_to_bf16_bits(x):
    """float32 array -> uint16 bf16 bits, round to nearest even (NaN stays NaN)."""
    u = np.ascontiguousarray(x, np.float32).view(np.uint32).astype(np.uint64)
    r = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)
    nan = np.isnan(x)
    r[nan] = ((u[nan] >> 16) | 0x40).astype(np.uint16)  # keep sign, force quiet
    return r


def encode(x, dtype):
    """float array -> raw bytes in safetensors `dtype` (F32, F16 or BF16)."""
    x = np.asarray(x, np.float32)
    if dtype == "F32":
        return x.astype("<f4").tobytes()
    if dtype == "F16":
        return x.astype("<f2").tobytes()
    if dtype == "BF16":
        return f32_to_bf16_bits(x).astype("<u2").tobytes()
    raise ValueError(dtype)


def write_safetensors(path, tensors, dtype="F32", metadata=None):
    """tensors: {name: array} in the order to store; all stored as `dtype`."""
    header, chunks, off = {}, [], 0
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    for name, arr in tensors.items():
        raw = encode(arr, dtype)
        header[name] = {"dtype": dtype, "shape": list(np.shape(arr)),
                        "data_offsets": [off, off + len(raw)]}
        chunks.append(raw)
        off += len(raw)
    h = json.dumps(header, separators=(",", ":")).encode("utf-8")
    h += b" " * ((-(8 + len(h))) % 8)  # data block starts at a multiple of 8
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(chunks))

# ---------------------------------------------------------------------- model

class Model:
    """Config + float64 weights of a checkpoint directory."""

    def __init__(self, d):
        with open(os.path.join(d, "config.json")) as f:
            cfg = json.load(f)
        w, _ = read_safetensors(os.path.join(d, "model.safetensors"))
        self.cfg, self.w = cfg, {k: v.astype(np.float64) for k, v in w.items()}
        self.type = cfg.get("model_type", "llama")
        if cfg.get("hidden_act", "silu") != "silu":
            raise NotImplementedError("hidden_act " + cfg["hidden_act"])
        if self.type == "qwen2" and cfg.get("use_sliding_window"):
            raise NotImplementedError("qwen2 use_sliding_window")
        self.C = cfg["hidden_size"]
        self.NH = cfg["num_attention_heads"]
        self.NKV = cfg.get("num_key_value_heads") or self.NH
        self.HS = cfg.get("head_dim") or self.C // self.NH
        self.L = cfg["num_hidden_layers"]
        self.eps = cfg.get("rms_norm_eps", 1e-6)
        self.window = cfg.get("sliding_window") if self.type == "mistral" else None
        self.inv_freq = rope_inv_freq(self.HS, cfg.get("rope_theta", 10000.0),
                                      cfg.get("rope_scaling"))
        self.embed = self.w["model.embed_tokens.weight"]
        tied = cfg.get("tie_word_embeddings", False) or "lm_head.weight" not in self.w
        self.lm_head = self.embed if tied else self.w["lm_head.weight"]


def rope_inv_freq(hs, theta, scaling=None):
    """[HS/2] inverse frequencies: default 1/theta^(2i/HS), 'linear', 'llama3'."""
    inv = 1.0 / theta ** (np.arange(0, hs, 2, dtype=np.float64) / hs)
    kind = (scaling or {}).get("rope_type", (scaling or {}).get("type", "default"))
    if kind == "default":
        return inv
    if kind == "linear":
        return inv / scaling["factor"]
    if kind == "llama3":
        factor, lo, hi = scaling["factor"], scaling["low_freq_factor"], scaling["high_freq_factor"]
        orig = scaling["original_max_position_embeddings"]
        wavelen = 2 * math.pi / inv
        smooth = (orig / wavelen - lo) / (hi - lo)
        mid = (1 - smooth) * inv / factor + smooth * inv
        return np.where(wavelen > orig / lo, inv / factor,
                        np.where(wavelen < orig / hi, inv, mid))
    raise NotImplementedError("rope_type " + kind)


def rms_norm(x, w, eps):
    """x [..., D], w [D] -> x / sqrt(mean(x^2) + eps) * w."""
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * w


def apply_rope(x, inv_freq):
    """x [T, heads, HS], rotate_half layout (pairs i and i + HS/2), positions 0..T-1."""
    ang = np.arange(x.shape[0], dtype=np.float64)[:, None] * inv_freq[None, :]  # [T, HS/2]
    cos, sin = np.cos(ang)[:, None, :], np.sin(ang)[:, None, :]
    a, b = x[..., :x.shape[-1] // 2], x[..., x.shape[-1] // 2:]
    return np.concatenate([a * cos - b * sin, b * cos + a * sin], axis=-1)


def linear(x, w, b=None):
    """x [T, in], w [out, in], b [out] or None -> [T, out]."""
    y = x @ w.T
    return y if b is None else y + b


def softmax(s):
    """Row softmax over the last axis; -inf entries get probability 0."""
    e = np.exp(s - np.max(s, axis=-1, keepdims=True))
    return e / np.sum(e, axis=-1, keepdims=True)


def attention(m, i, x):
    """Layer i self-attention on normed x [T, C] -> (out [T, C], probs [NH, T, T])."""
    p, T = f"model.layers.{i}.self_attn.", x.shape[0]
    w = m.w
    q = linear(x, w[p + "q_proj.weight"], w.get(p + "q_proj.bias")).reshape(T, m.NH, m.HS)
    k = linear(x, w[p + "k_proj.weight"], w.get(p + "k_proj.bias")).reshape(T, m.NKV, m.HS)
    v = linear(x, w[p + "v_proj.weight"], w.get(p + "v_proj.bias")).reshape(T, m.NKV, m.HS)
    if p + "q_norm.weight" in w:  # qwen3: per-head RMSNorm over HS, before rope
        q = rms_norm(q, w[p + "q_norm.weight"], m.eps)
        k = rms_norm(k, w[p + "k_norm.weight"], m.eps)
    q, k = apply_rope(q, m.inv_freq), apply_rope(k, m.inv_freq)
    group = m.NH // m.NKV  # query head h reads kv head h // group
    k, v = np.repeat(k, group, axis=1), np.repeat(v, group, axis=1)
    scores = np.einsum("qhd,khd->hqk", q, k) / math.sqrt(m.HS)
    qi, ki = np.arange(T)[:, None], np.arange(T)[None, :]
    masked = ki > qi
    if m.window:
        masked |= qi - ki >= m.window
    probs = softmax(np.where(masked, -np.inf, scores))
    out = np.einsum("hqk,khd->qhd", probs, v).reshape(T, m.NH * m.HS)
    return linear(out, w[p + "o_proj.weight"], w.get(p + "o_proj.bias")), probs


def mlp(m, i, x):
    """SiLU-gated MLP of layer i: x [T, C] -> down(silu(gate x) * up x) [T, C]."""
    p = f"model.layers.{i}.mlp."
    g = linear(x, m.w[p + "gate_proj.weight"])
    return linear(g / (1 + np.exp(-g)) * linear(x, m.w[p + "up_proj.weight"]),
                  m.w[p + "down_proj.weight"])


def token_mass(probs):
    """probs [NH, T, T] causal -> m [T]: m_i = 1/NH sum_h mean_{q>=i} A_h[q, i]."""
    T = probs.shape[-1]
    return probs.mean(axis=0).sum(axis=0) / (T - np.arange(T))


def forward(m, ids, mass_layer=None):
    """One sequence ids [T] -> dict of float64 arrays: logits [T, V],
    final_hidden [T, C], hidden [L+1, T, C] (0 = embeddings, l = residual
    after layer l), attn [T, T] (head mean at mass_layer, 1-based, default L)
    and mass [T]."""
    mass_layer = mass_layer or m.L
    if not 1 <= mass_layer <= m.L:
        raise ValueError(f"mass layer {mass_layer} not in 1..{m.L}")
    x = m.embed[np.asarray(ids, dtype=np.int64)]
    hidden = [x]
    for i in range(m.L):
        p = f"model.layers.{i}."
        a, probs = attention(m, i, rms_norm(x, m.w[p + "input_layernorm.weight"], m.eps))
        x = x + a
        x = x + mlp(m, i, rms_norm(x, m.w[p + "post_attention_layernorm.weight"], m.eps))
        hidden.append(x)
        if i + 1 == mass_layer:
            attn, mass = probs.mean(axis=0), token_mass(probs)
    final = rms_norm(x, m.w["model.norm.weight"], m.eps)
    return {"logits": final @ m.lm_head.T, "final_hidden": final,
            "hidden": np.stack(hidden), "attn": attn, "mass": mass}


def greedy(m, ids, n):
    """n argmax steps with full recompute, no stop at EOS -> list of new ids."""
    ids, new = list(ids), []
    for _ in range(n):
        t = int(np.argmax(forward(m, ids)["logits"][-1]))
        ids.append(t)
        new.append(t)
    return new

# ------------------------------------------------------------ random models

FAMILIES = {
    "llama_gqa_llama3rope": dict(
        model_type="llama", architectures=["LlamaForCausalLM"], num_hidden_layers=3,
        rope_theta=500000.0, tie_word_embeddings=False, attention_bias=False,
        rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                      "high_freq_factor": 4.0, "original_max_position_embeddings": 64}),
    "qwen2_bias": dict(
        model_type="qwen2", architectures=["Qwen2ForCausalLM"], num_hidden_layers=2,
        rope_theta=1000000.0, tie_word_embeddings=True, use_sliding_window=False,
        sliding_window=None),
    "qwen3_qknorm": dict(
        model_type="qwen3", architectures=["Qwen3ForCausalLM"], num_hidden_layers=2,
        head_dim=32, rope_theta=1000000.0, tie_word_embeddings=False,
        attention_bias=False, use_sliding_window=False, sliding_window=None),
    "mistral": dict(
        model_type="mistral", architectures=["MistralForCausalLM"], num_hidden_layers=3,
        rope_theta=10000.0, tie_word_embeddings=False, sliding_window=None),
}


def make_random(out_dir, family, seed=0):
    """Writes config.json + F32 model.safetensors of a tiny random model."""
    cfg = dict(hidden_size=64, num_attention_heads=4, num_key_value_heads=2,
               intermediate_size=96, vocab_size=300, max_position_embeddings=256,
               rms_norm_eps=1e-6, hidden_act="silu", bos_token_id=1, eos_token_id=2,
               torch_dtype="float32", rope_scaling=None)
    cfg.update(FAMILIES[family])
    rng = np.random.default_rng(seed)
    C, I, V = cfg["hidden_size"], cfg["intermediate_size"], cfg["vocab_size"]
    NH, NKV = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    HS = cfg.get("head_dim") or C // NH
    W = lambda *s: rng.normal(0.0, 0.05, s)
    N = lambda n: 1.0 + rng.normal(0.0, 0.1, n)
    t = {"model.embed_tokens.weight": W(V, C)}
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        t[p + "input_layernorm.weight"] = N(C)
        for name, rows in (("q", NH * HS), ("k", NKV * HS), ("v", NKV * HS)):
            t[p + f"self_attn.{name}_proj.weight"] = W(rows, C)
            if family == "qwen2_bias":
                t[p + f"self_attn.{name}_proj.bias"] = W(rows)
        t[p + "self_attn.o_proj.weight"] = W(C, NH * HS)
        if family == "qwen3_qknorm":
            t[p + "self_attn.q_norm.weight"] = N(HS)
            t[p + "self_attn.k_norm.weight"] = N(HS)
        t[p + "post_attention_layernorm.weight"] = N(C)
        t[p + "mlp.gate_proj.weight"] = W(I, C)
        t[p + "mlp.up_proj.weight"] = W(I, C)
        t[p + "mlp.down_proj.weight"] = W(C, I)
    t["model.norm.weight"] = N(C)
    if not cfg["tie_word_embeddings"]:
        t["lm_head.weight"] = W(V, C)
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    write_safetensors(os.path.join(out_dir, "model.safetensors"), t, "F32", {"format": "pt"})


def convert(src, dst, dtype):
    """Copies config.json; rewrites model.safetensors as `dtype`, keeping
    __metadata__ (aliases are not materialized)."""
    stored, meta = read_safetensors(os.path.join(src, "model.safetensors"), aliases=False)
    os.makedirs(dst, exist_ok=True)
    with open(os.path.join(src, "config.json"), "rb") as f:
        cfg = f.read()
    with open(os.path.join(dst, "config.json"), "wb") as f:
        f.write(cfg)
    write_safetensors(os.path.join(dst, "model.safetensors"), stored, dtype, meta)

# ------------------------------------------------------------------------ cli

def cmd_forward(a):
    m = Model(a.model_dir)
    batch = json.loads(a.ids)
    if batch and isinstance(batch[0], int):
        batch = [batch]
    layers = [int(s) for s in a.hidden_layers.split(",")] if a.hidden_layers else None
    os.makedirs(a.out, exist_ok=True)
    save = lambda name, x: np.save(os.path.join(a.out, name), np.asarray(x, np.float32))
    for b, ids in enumerate(batch):  # each sequence alone: padding cannot matter
        r = forward(m, ids, a.mass_layer)
        save(f"logits_{b}.npy", r["logits"])
        save(f"final_hidden_{b}.npy", r["final_hidden"])
        save(f"hidden_{b}.npy", r["hidden"] if layers is None else r["hidden"][layers])
        save(f"mass_{b}.npy", r["mass"])
        save(f"attn_{b}.npy", r["attn"])
        if a.gen:
            with open(os.path.join(a.out, f"greedy_{b}.json"), "w") as f:
                json.dump({"prompt_ids": ids, "new_ids": greedy(m, ids, a.gen)}, f)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("make-random")
    p.add_argument("out_dir")
    p.add_argument("--family", required=True, choices=sorted(FAMILIES))
    p.add_argument("--seed", type=int, default=0)
    p = sub.add_parser("forward")
    p.add_argument("model_dir")
    p.add_argument("--ids", required=True, help="JSON list of id lists")
    p.add_argument("--out", required=True)
    p.add_argument("--mass-layer", type=int, default=None, help="1-based, default last")
    p.add_argument("--hidden-layers", default=None, help="e.g. 0,1,2 (default all)")
    p.add_argument("--gen", type=int, default=0, help="greedy steps to save")
    p = sub.add_parser("convert")
    p.add_argument("src")
    p.add_argument("dst")
    p.add_argument("--dtype", required=True, choices=["F16", "BF16"])
    a = ap.parse_args(argv)
    if a.cmd == "make-random":
        make_random(a.out_dir, a.family, a.seed)
    elif a.cmd == "forward":
        cmd_forward(a)
    else:
        convert(a.src, a.dst, a.dtype)


if __name__ == "__main__":
    sys.exit(main())
