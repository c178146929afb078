"""Checks of tests/model_ref.py, the numpy reference the C teacher engine is
compared to, before it is trusted:

- on the real TinyStories-656K checkpoint it reproduces the shared reference
  outputs (made by different code, shared/tools/llama_ref.py);
- a sequence's outputs do not depend on the rest of the batch, and prefixes
  agree (causality);
- masses (method.md §3) have the closed form of a uniform-attention toy and
  satisfy sum_i (T - i) m_i = T on every family;
- family features change what they should (llama3 rope, qwen2 bias, qwen3
  q/k norm, mistral sliding window, tied embeddings);
- convert round-trips F16/BF16 within their precision, BF16 rounds to
  nearest even, and safetensors files are well formed.
Run with /usr/bin/python3 (numpy only).
"""
import json
import math
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import traceback

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import model_ref as mr  # noqa: E402

SCRIPT = os.path.join(HERE, "model_ref.py")
SHARED = os.environ.get("SRA_SHARED", os.path.join(HERE, "..", "..", "shared"))
TS = os.path.join(SHARED, "models", "tinystories-656k")
CI = os.environ.get("CI") == "true"
FAMILIES = sorted(mr.FAMILIES)
TMP = tempfile.mkdtemp(prefix="sra-model-ref-")
results = []


class Skip(Exception):
    pass


def test(fn):
    try:
        fn()
        print(f"ok - {fn.__name__}")
    except Skip as e:
        if CI:
            print(f"not ok - {fn.__name__}: {e} (CI=true)")
            results.append(fn.__name__)
        else:
            print(f"skip - {fn.__name__}: {e}")
    except Exception:
        print(f"not ok - {fn.__name__}")
        print("    " + traceback.format_exc().replace("\n", "\n    "))
        results.append(fn.__name__)
    sys.stdout.flush()


def cli(*args):
    subprocess.run([sys.executable, SCRIPT, *args], check=True)


def random_model(family, seed=0):
    d = os.path.join(TMP, f"{family}-{seed}")
    if not os.path.isdir(d):
        cli("make-random", d, "--family", family, "--seed", str(seed))
    return d


def load_out(d, b):
    return {k: np.load(os.path.join(d, f"{k}_{b}.npy"))
            for k in ("logits", "final_hidden", "hidden", "mass", "attn")}


def edit_model(src, dst, cfg_edit=None, w_edit=None):
    """Copy of a checkpoint with config / weight edits (F32)."""
    cfg = json.load(open(os.path.join(src, "config.json")))
    w, meta = mr.read_safetensors(os.path.join(src, "model.safetensors"), aliases=False)
    w = {k: v.copy() for k, v in w.items()}
    if cfg_edit:
        cfg_edit(cfg)
    if w_edit:
        w_edit(w)
    os.makedirs(dst, exist_ok=True)
    json.dump(cfg, open(os.path.join(dst, "config.json"), "w"))
    mr.write_safetensors(os.path.join(dst, "model.safetensors"), w, "F32", meta)
    return dst


@test
def tinystories_matches_shared_reference():
    ref = os.path.join(TS, "reference")
    if not os.path.isfile(os.path.join(ref, "index.json")):
        raise Skip(f"shared reference missing in {ref} (set SRA_SHARED)")
    names = [e["name"] for e in json.load(open(os.path.join(ref, "index.json")))]
    batch = [json.load(open(os.path.join(ref, n, "ids.json")))["ids"] for n in names]
    out = os.path.join(TMP, "ts")
    cli("forward", TS, "--ids", json.dumps(batch), "--out", out, "--gen", "40")
    err = {}
    for b, n in enumerate(names):
        r, g = load_out(out, b), json.load(open(os.path.join(ref, n, "greedy.json")))
        pairs = [("logits", r["logits"], "logits.npy"),
                 ("hidden_states", r["hidden"], "hidden_states.npy"),
                 ("final_hidden", r["final_hidden"], "final_hidden.npy"),
                 ("attn_last_mean", r["attn"], "attn_last_mean.npy")]
        for key, got, fname in pairs:
            want = np.load(os.path.join(ref, n, fname))
            assert got.shape == want.shape, (n, key, got.shape, want.shape)
            err[key] = max(err.get(key, 0.0), float(np.max(np.abs(got - want))))
        ours = json.load(open(os.path.join(out, f"greedy_{b}.json")))
        assert ours["prompt_ids"] == g["prompt_ids"] == batch[b], n
        assert ours["new_ids"] == g["new_ids"], (n, ours["new_ids"], g["new_ids"])
        # mass = column sums of the head-mean attention / number of queries
        T = len(batch[b])
        want = np.load(os.path.join(ref, n, "attn_last_mean.npy")).sum(0) / (T - np.arange(T))
        err["mass"] = max(err.get("mass", 0.0), float(np.max(np.abs(r["mass"] - want))))
    print("# max abs error vs shared reference: " +
          ", ".join(f"{k} {v:.2e}" for k, v in err.items()))
    assert err["logits"] < 1e-4 and err["hidden_states"] < 1e-4, err
    assert err["final_hidden"] < 1e-4 and err["attn_last_mean"] < 1e-5, err
    assert err["mass"] < 1e-5, err


@test
def batch_independence_and_causality():
    rng = np.random.default_rng(5)
    for fam in FAMILIES:
        d = random_model(fam)
        seqs = [[1] + rng.integers(3, 300, n).tolist() for n in (17, 4, 30)]
        cli("forward", d, "--ids", json.dumps(seqs), "--out", os.path.join(TMP, "b3-" + fam))
        cli("forward", d, "--ids", json.dumps(seqs[1:2]), "--out", os.path.join(TMP, "b1-" + fam))
        a, s = load_out(os.path.join(TMP, "b3-" + fam), 1), load_out(os.path.join(TMP, "b1-" + fam), 0)
        for k in a:
            assert np.array_equal(a[k], s[k]), (fam, k)
        m = mr.Model(d)  # a prefix's outputs equal the full sequence's first rows
        full, pre = mr.forward(m, seqs[2]), mr.forward(m, seqs[2][:9])
        for k in ("logits", "final_hidden"):
            assert np.allclose(full[k][:9], pre[k], rtol=0, atol=1e-12), (fam, k)
        assert np.allclose(full["hidden"][:, :9], pre["hidden"], rtol=0, atol=1e-12), fam


@test
def mass_uniform_attention_closed_form():
    """q_proj = 0 -> every score 0 -> A[q, i] = 1/(q+1) (0-based q), so
    m_i = (1/(T-i)) sum_{q=i}^{T-1} 1/(q+1) = (H_T - H_i)/(T - i)."""
    def cfg(c):
        c["num_hidden_layers"] = 1

    def w(t):
        for k in [k for k in t if k.startswith("model.layers.") and not k.startswith("model.layers.0.")]:
            del t[k]
        t["model.layers.0.self_attn.q_proj.weight"][:] = 0
    d = edit_model(random_model("llama_gqa_llama3rope"), os.path.join(TMP, "uniform"), cfg, w)
    T = 12
    out = os.path.join(TMP, "uniform-out")
    cli("forward", d, "--ids", json.dumps([list(range(1, T + 1))]), "--out", out, "--mass-layer", "1")
    got = np.load(os.path.join(out, "mass_0.npy")).astype(np.float64)
    H = np.concatenate([[0.0], np.cumsum(1.0 / np.arange(1, T + 1))])
    want = np.array([(H[T] - H[i]) / (T - i) for i in range(T)])
    assert np.max(np.abs(got - want)) < 1e-6, (got, want)
    assert abs(got[0] - H[T] / T) < 1e-6 and abs(got[-1] - 1.0 / T) < 1e-6


@test
def mass_sums_on_every_family():
    """Each query row sums to 1, so sum_i |Q_i| m_i = T; the last key is seen
    only by itself; --mass-layer picks the layer; --hidden-layers selects."""
    for fam in FAMILIES:
        d, m = random_model(fam), mr.Model(random_model(fam))
        ids = list(range(1, 24))
        T = len(ids)
        for layer in range(1, m.L + 1):
            out = os.path.join(TMP, f"mass-{fam}-{layer}")
            cli("forward", d, "--ids", json.dumps([ids]), "--out", out,
                "--mass-layer", str(layer), "--hidden-layers", "0," + str(layer))
            r = load_out(out, 0)
            mass, attn = r["mass"].astype(np.float64), r["attn"].astype(np.float64)
            assert abs(np.sum((T - np.arange(T)) * mass) - T) < 1e-4, fam
            assert np.allclose(attn.sum(1), 1, atol=1e-5) and not np.triu(attn, 1).any(), fam
            assert abs(mass[-1] - attn[-1, -1]) < 1e-7 and np.all(mass > 0), fam
            want = mr.forward(m, ids, layer)
            assert np.allclose(mass, want["mass"], atol=1e-6), (fam, layer)
            assert np.allclose(r["hidden"], want["hidden"][[0, layer]], atol=1e-5), fam
            assert r["hidden"].shape == (2, T, m.C)


@test
def llama3_rope_frequencies():
    """HS 16, theta 5e5, factor 8, low 1, high 4, original 64: by hand."""
    inv = mr.rope_inv_freq(16, 500000.0, mr.FAMILIES["llama_gqa_llama3rope"]["rope_scaling"])
    for i, got in enumerate(inv):
        base = 500000.0 ** (-2 * i / 16)
        wl = 2 * math.pi / base
        if wl < 16:
            want = base
        elif wl > 64:
            want = base / 8
        else:
            s = (64 / wl - 1) / 3
            want = (1 - s) * base / 8 + s * base
        assert abs(got - want) <= 1e-15 * base, (i, got, want)
    b = 500000.0 ** (-2 / 16)  # index 1 falls in the smooth band
    assert 16 < 2 * math.pi / b < 64 and inv[0] == 1.0 and abs(inv[7] - b ** 7 / 8) < 1e-20
    assert np.allclose(mr.rope_inv_freq(16, 1e4, {"rope_type": "linear", "factor": 4.0}),
                       mr.rope_inv_freq(16, 1e4) / 4, rtol=1e-15)
    m = mr.Model(random_model("llama_gqa_llama3rope"))
    ids = list(range(1, 40))
    a = mr.forward(m, ids)["logits"]
    m.inv_freq = mr.rope_inv_freq(m.HS, 500000.0)
    assert np.max(np.abs(a - mr.forward(m, ids)["logits"])) > 1e-6, "llama3 scaling had no effect"


@test
def family_features_take_effect():
    ids = list(range(1, 20))
    # qwen3: per-head q/k RMSNorm makes logits invariant to scaling q_proj/k_proj
    for fam, invariant in (("qwen3_qknorm", True), ("mistral", False)):
        m = mr.Model(random_model(fam))
        m.eps = 0.0  # eps would break the exact scale invariance by ~1e-5
        assert (m.HS, m.NH * m.HS) == ((32, 128) if invariant else (16, 64)), fam
        a = mr.forward(m, ids)["logits"]
        for i in range(m.L):
            for n in ("q", "k"):
                m.w[f"model.layers.{i}.self_attn.{n}_proj.weight"] *= 3.0
        diff = np.max(np.abs(a - mr.forward(m, ids)["logits"]))
        assert (diff < 1e-9) if invariant else (diff > 1e-6), (fam, diff)
    # qwen2: biases exist and matter; embeddings are tied (no lm_head stored)
    d = random_model("qwen2_bias")
    w, _ = mr.read_safetensors(os.path.join(d, "model.safetensors"))
    assert "lm_head.weight" not in w and "model.layers.0.self_attn.q_proj.bias" in w
    assert "model.layers.0.self_attn.o_proj.bias" not in w
    m = mr.Model(d)
    assert m.lm_head is m.embed
    a = mr.forward(m, ids)["logits"]
    m.w["model.layers.1.self_attn.k_proj.bias"][:] = 0
    assert np.max(np.abs(a - mr.forward(m, ids)["logits"])) > 1e-6
    # mistral sliding window: masks keys with q - k >= window
    m = mr.Model(random_model("mistral"))
    assert m.window is None
    full = mr.forward(m, ids)
    m.window = len(ids)
    assert np.array_equal(full["logits"], mr.forward(m, ids)["logits"])
    m.window = 3
    r = mr.forward(m, ids)
    assert not np.tril(r["attn"], -3).any() and np.allclose(r["attn"].sum(1), 1)
    assert np.allclose(r["logits"][:3], full["logits"][:3], atol=1e-12)
    assert np.max(np.abs(r["logits"][3:] - full["logits"][3:])) > 1e-6


@test
def safetensors_format():
    for fam in FAMILIES:
        path = os.path.join(random_model(fam), "model.safetensors")
        blob = open(path, "rb").read()
        (n,) = struct.unpack("<Q", blob[:8])
        header = json.loads(blob[8:8 + n])
        assert (8 + n) % 8 == 0 and blob[8 + n - 1:8 + n] in (b" ", b"}")
        ends = sorted(h["data_offsets"] for k, h in header.items() if k != "__metadata__")
        assert ends[0][0] == 0 and ends[-1][1] == len(blob) - 8 - n
        assert all(a[1] == b[0] for a, b in zip(ends, ends[1:]))
        cfg = json.load(open(os.path.join(os.path.dirname(path), "config.json")))
        assert cfg["num_key_value_heads"] == 2 and cfg["num_attention_heads"] == 4
        assert cfg["hidden_size"] == 64 and cfg["vocab_size"] == 300
        assert header["model.layers.0.mlp.down_proj.weight"]["shape"] == [64, 96]
        hs = cfg.get("head_dim", 16)
        assert header["model.layers.0.self_attn.k_proj.weight"]["shape"] == [2 * hs, 64]
        assert header["model.layers.0.self_attn.o_proj.weight"]["shape"] == [64, 4 * hs]


@test
def bf16_round_to_nearest_even():
    bits = np.array([0x3F808000, 0x3F818000, 0x3F808001, 0x3F807FFF, 0xBF818000,
                     0x7F7FFFFF, 0x00000001, 0x7F800000], np.uint32)
    want = [0x3F80, 0x3F82, 0x3F81, 0x3F80, 0xBF82, 0x7F80, 0x0000, 0x7F80]
    assert mr.f32_to_bf16_bits(bits.view(np.float32)).tolist() == want
    nan = mr.f32_to_bf16_bits(np.array([np.nan], np.float32))
    assert np.isnan(mr._decode(nan.tobytes(), "BF16", [1]))[0]


@test
def convert_round_trips():
    ids = [list(range(1, 30))]
    for fam in FAMILIES:
        src = random_model(fam)
        w32, _ = mr.read_safetensors(os.path.join(src, "model.safetensors"))
        cli("forward", src, "--ids", json.dumps(ids), "--out", os.path.join(TMP, "c32-" + fam))
        l32 = np.load(os.path.join(TMP, "c32-" + fam, "logits_0.npy"))
        for dtype, rel, tiny, ltol in (("F16", 2.0 ** -11, 2.0 ** -25, 2e-3),
                                       ("BF16", 2.0 ** -8, 0.0, 2e-2)):
            dst = os.path.join(TMP, f"{fam}-{dtype}")
            cli("convert", src, dst, "--dtype", dtype)
            assert open(os.path.join(dst, "config.json")).read() == open(os.path.join(src, "config.json")).read()
            w, meta = mr.read_safetensors(os.path.join(dst, "model.safetensors"))
            assert meta == {"format": "pt"} and list(w) == list(w32), fam
            for k, a in w32.items():
                err = np.abs(w[k] - a)
                assert np.all(err <= rel * np.abs(a) + tiny), (fam, dtype, k, float(err.max()))
            back = os.path.join(TMP, f"{fam}-{dtype}-back")
            cli("convert", dst, back, "--dtype", dtype)  # idempotent: exact bytes
            assert open(os.path.join(dst, "model.safetensors"), "rb").read() == \
                open(os.path.join(back, "model.safetensors"), "rb").read()
            out = os.path.join(TMP, f"c-{fam}-{dtype}")
            cli("forward", dst, "--ids", json.dumps(ids), "--out", out)
            d = float(np.max(np.abs(np.load(os.path.join(out, "logits_0.npy")) - l32)))
            assert d < ltol, (fam, dtype, d)


@test
def convert_keeps_tied_alias():
    if not os.path.isfile(os.path.join(TS, "model.safetensors")):
        raise Skip(f"TinyStories checkpoint missing in {TS} (set SRA_SHARED)")
    ids = json.dumps([[1, 80, 147, 201, 282, 57]])
    cli("forward", TS, "--ids", ids, "--out", os.path.join(TMP, "ts32"))
    l32 = np.load(os.path.join(TMP, "ts32", "logits_0.npy"))
    for dtype, tol in (("F16", 0.02), ("BF16", 0.2)):
        dst = os.path.join(TMP, "ts-" + dtype)
        cli("convert", TS, dst, "--dtype", dtype)
        stored, meta = mr.read_safetensors(os.path.join(dst, "model.safetensors"), aliases=False)
        assert meta.get("model.embed_tokens.weight") == "lm_head.weight"
        assert "model.embed_tokens.weight" not in stored and len(stored) == 20
        cli("forward", dst, "--ids", ids, "--out", os.path.join(TMP, "ts-out-" + dtype))
        d = float(np.max(np.abs(np.load(os.path.join(TMP, "ts-out-" + dtype, "logits_0.npy")) - l32)))
        print(f"# TinyStories {dtype} vs F32: max |logit diff| {d:.2e}")
        assert d < tol, (dtype, d)


shutil.rmtree(TMP, ignore_errors=True)
sys.exit(1 if results else 0)
