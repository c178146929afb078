#!/usr/bin/python3
"""Independent PyTorch (float64) reference for the C trainer: forward, loss,
gradients and AdamW steps of a Llama-family student (HF LlamaForCausalLM
semantics), written in plain torch (no transformers). Run it with Debian's
/usr/bin/python3 (numpy + python3-torch).

    torch_ref.py forward MODEL_DIR BATCH_JSON OUT_DIR
    torch_ref.py grads   MODEL_DIR BATCH_JSON OUT_DIR
    torch_ref.py adamw   MODEL_DIR BATCH_JSON OUT_DIR --steps N --lr LR
                 --beta1 B1 --beta2 B2 --eps E --weight-decay WD [--clip C]
                 [--warmup W --total S [--min-lr M]]
    torch_ref.py selftest

Model directory
  config.json: hidden_size, num_hidden_layers, num_attention_heads,
  num_key_value_heads (default = heads), head_dim (default hidden/heads),
  intermediate_size, vocab_size, rms_norm_eps, rope_theta (default 10000),
  tie_word_embeddings (default false), attention_bias (default false),
  model_type "llama" (attention_bias true: q, k, v and o have biases) or
  "qwen2" (q, k, v have biases, o none, whatever attention_bias says).
  rope_scaling must be null (rope_parameters with rope_type "default" is
  read for its rope_theta); hidden_act must be silu.
  model.safetensors: F32, F16, BF16 or F64 tensors under the HF names
  model.embed_tokens.weight, model.layers.{l}.input_layernorm.weight,
  model.layers.{l}.self_attn.{q,k,v,o}_proj.weight (+ .bias),
  model.layers.{l}.post_attention_layernorm.weight,
  model.layers.{l}.mlp.{gate,up,down}_proj.weight, model.norm.weight,
  lm_head.weight. The embeddings are tied when tie_word_embeddings is true or
  lm_head.weight is absent; a "__metadata__" entry {missing name: stored
  name} is an alias (a tied checkpoint may store only lm_head.weight).

Forward (all float64)
  x = embed[ids]; per layer: h = RMSNorm(x) (x / sqrt(mean(x^2) + eps) * w);
  q, k, v = h W^T (+ b); RoPE in HF's rotate_half layout (pairs i, i + hd/2,
  inv_freq_i = theta^(-2i/hd), positions 0..T-1 in every row whatever the
  padding); scores q k^T / sqrt(hd), causal mask and key padding mask
  (valid = 0 keys are never seen), softmax, GQA (query head h reads kv head
  h // (H/KV)); a query at a padding position gets a zero attention output
  (the C attention_forward's contract); o_proj (+ b), residual;
  h = RMSNorm(x); x += down(silu(gate h) * up h); final RMSNorm;
  logits = h lm_head^T.

Batch file (JSON)
  {"ids": [[...], ...]       B rows of equal length T, ids in [0, V)
   "targets": [[...], ...]   same shape, in [-1, V); -1 = not counted
                             (optional for forward)
   "valid": [[0/1, ...]]}    optional, same shape; 1 = a real token,
                             0 = padding (masked as a key); default all 1
  loss = sum over counted positions of -log softmax(logits)[target] divided
  by the number of counted positions (at least one is required).

Outputs
  forward: OUT_DIR/logits.npy (float32, B x T x V).
  grads:   OUT_DIR/loss.json {"loss": float, "count": int};
           OUT_DIR/grads.safetensors: d loss / d parameter for every
           parameter, F32, HF names (tied: only model.embed_tokens.weight,
           holding the sum of the embedding and the lm_head uses);
           OUT_DIR/logits.npy as for forward.
  adamw:   N steps of torch.optim.AdamW on the same batch every step.
           Weight decay (decoupled, p -= lr * wd * p) on the 2-D tensors only
           (embeddings, all projection weights, lm_head); none on the 1-D
           ones (norm weights, biases). --clip C: torch.nn.utils.
           clip_grad_norm_(params, C), i.e. g *= min(1, C / (norm + 1e-6)),
           norm the global L2 norm over all gradients. Learning rate: LR for
           every step, or with --warmup W --total S (and --min-lr M, default
           0), for step s = 0..N-1:
             s < W:  LR * (s + 1) / W
             else:   M + 0.5 * (LR - M) * (1 + cos(pi * min(1, (s - W) / max(1, S - W))))
           A tied embedding is one tensor, updated once per step.
           OUT_DIR/params.safetensors: the parameters after N steps (F32, HF
           names, tied: no lm_head.weight); OUT_DIR/losses.json
           {"loss": [loss before step s's update, s = 0..N-1],
            "lr": [lr of step s], "grad_norm": [global L2 norm of the
            gradients of step s before clipping],
            "final_loss": loss at the parameters after the N steps}.

Errors (missing or malformed file, bad batch, unsupported config) print
"torch_ref.py: error: ..." to stderr and exit 1 (usage errors exit 2).
selftest prints "ok - NAME" / "not ok - NAME" lines and exits 1 on any
failure; it cross-checks the forward against llama_ref.py from
$SRA_SHARED/tools (default /work/shared/tools) and, for the bias variants,
against tests/model_ref.py.
"""
import argparse
import json
import math
import os
import struct
import sys
import tempfile

import numpy as np

try:
    import torch
except ImportError:  # pragma: no cover
    sys.stderr.write("torch_ref.py: error: needs torch (apt-get install python3-torch; "
                     "run with /usr/bin/python3)\n")
    sys.exit(1)

F64 = torch.float64


class RefError(Exception):
    """A user-facing error: bad input file, unsupported config."""


# ---------------------------------------------------------------- safetensors

_NP = {"F32": "<f4", "F16": "<f2", "F64": "<f8"}


def read_safetensors(path):
    """{name: float64 ndarray}. Format: u64 little-endian header length n,
    n bytes of JSON {name: {dtype, shape, data_offsets [begin, end)}} with
    offsets relative to the data that follows, optional "__metadata__"."""
    try:
        with open(path, "rb") as f:
            blob = f.read()
    except OSError as e:
        raise RefError(f"{path}: {e.strerror}")
    if len(blob) < 8:
        raise RefError(f"{path}: too short for a safetensors file")
    (n,) = struct.unpack("<Q", blob[:8])
    if 8 + n > len(blob):
        raise RefError(f"{path}: header length {n} past the end of the file")
    try:
        header = json.loads(blob[8:8 + n].decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise RefError(f"{path}: bad header JSON: {e}")
    if not isinstance(header, dict):
        raise RefError(f"{path}: header is not a JSON object")
    meta = header.pop("__metadata__", None) or {}
    base, out = 8 + n, {}
    for name, h in header.items():
        try:
            dt, shape, (a, b) = h["dtype"], [int(s) for s in h["shape"]], h["data_offsets"]
        except (KeyError, TypeError, ValueError):
            raise RefError(f"{path}: tensor {name}: malformed header entry")
        raw = blob[base + a:base + b]
        count = int(np.prod(shape)) if shape else 1
        if dt == "BF16":  # bf16 = the top 16 bits of an f32
            width = 2
        elif dt in _NP:
            width = np.dtype(_NP[dt]).itemsize
        else:
            raise RefError(f"{path}: tensor {name}: dtype {dt} not supported (F32, F16, BF16, F64)")
        if b < a or len(raw) != b - a or b - a != count * width:
            raise RefError(f"{path}: tensor {name}: data_offsets [{a}, {b}) do not fit "
                           f"shape {shape} {dt} or the file")
        if dt == "BF16":
            arr = (np.frombuffer(raw, "<u2").astype(np.uint32) << 16).view(np.float32)
        else:
            arr = np.frombuffer(raw, _NP[dt])
        out[name] = arr.astype(np.float64).reshape(shape)
    for alias, target in meta.items():
        if alias not in out and isinstance(target, str) and target in out:
            out[alias] = out[target]
    return out


def write_safetensors(path, tensors, dtype="F32"):
    """tensors: {name: array} in the order to store. Header padded with spaces
    to a multiple of 8 bytes. dtype F32 (default), F64, F16 or BF16 (rounded
    to nearest even); the last two exist for the selftest's loader checks."""
    header, chunks, off = {}, [], 0
    for name, a in tensors.items():
        a = np.ascontiguousarray(np.asarray(a, dtype=np.float64))
        if dtype == "BF16":
            u = a.astype(np.float32).view(np.uint32).astype(np.uint64)
            raw = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype("<u2").tobytes()
        else:
            raw = a.astype(_NP[dtype]).tobytes()
        header[name] = {"dtype": dtype, "shape": list(a.shape), "data_offsets": [off, off + len(raw)]}
        chunks.append(raw)
        off += len(raw)
    h = json.dumps(header, separators=(",", ":")).encode("utf-8")
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for c in chunks:
            f.write(c)


# ---------------------------------------------------------------------- model

class Config:
    def __init__(self, model_dir):
        path = os.path.join(model_dir, "config.json")
        c = _load_json(path)
        if not isinstance(c, dict):
            raise RefError(f"{path}: not a JSON object")

        def need(key):
            if not isinstance(c.get(key), int) or isinstance(c.get(key), bool) or c[key] <= 0:
                raise RefError(f"{path}: {key}: missing or not a positive integer")
            return c[key]

        self.model_type = c.get("model_type", "llama")
        if self.model_type not in ("llama", "qwen2"):
            raise RefError(f"{path}: model_type {self.model_type!r} not supported (llama, qwen2)")
        if c.get("hidden_act", "silu") != "silu":
            raise RefError(f"{path}: hidden_act {c['hidden_act']!r} not supported (silu)")
        if c.get("rope_scaling") is not None:
            raise RefError(f"{path}: rope_scaling must be null")
        self.D = need("hidden_size")
        self.L = need("num_hidden_layers")
        self.H = need("num_attention_heads")
        self.KV = c.get("num_key_value_heads") or self.H
        self.hd = c.get("head_dim") or self.D // self.H
        self.I = need("intermediate_size")
        self.V = need("vocab_size")
        self.eps = float(c.get("rms_norm_eps", 1e-6))
        self.theta = float(c.get("rope_theta", 10000.0))
        rp = c.get("rope_parameters")
        if isinstance(rp, dict):
            if rp.get("rope_type", "default") != "default":
                raise RefError(f"{path}: rope_parameters.rope_type {rp.get('rope_type')!r} not supported")
            self.theta = float(rp.get("rope_theta", self.theta))
        self.tied = bool(c.get("tie_word_embeddings", False))
        ab = bool(c.get("attention_bias", False))
        self.qkv_bias = self.model_type == "qwen2" or ab
        self.o_bias = self.model_type == "llama" and ab
        if self.H % self.KV:
            raise RefError(f"{path}: num_attention_heads {self.H} not a multiple of "
                           f"num_key_value_heads {self.KV}")
        if self.hd % 2:
            raise RefError(f"{path}: head_dim {self.hd} is odd")


def param_shapes(cfg):
    """[(HF name, shape)] in checkpoint order; tied: no lm_head.weight."""
    D, H, KV, hd, I, V = cfg.D, cfg.H, cfg.KV, cfg.hd, cfg.I, cfg.V
    out = [("model.embed_tokens.weight", (V, D))]
    for l in range(cfg.L):
        p = f"model.layers.{l}."
        out.append((p + "input_layernorm.weight", (D,)))
        for n, rows in (("q", H * hd), ("k", KV * hd), ("v", KV * hd)):
            out.append((p + f"self_attn.{n}_proj.weight", (rows, D)))
            if cfg.qkv_bias:
                out.append((p + f"self_attn.{n}_proj.bias", (rows,)))
        out.append((p + "self_attn.o_proj.weight", (D, H * hd)))
        if cfg.o_bias:
            out.append((p + "self_attn.o_proj.bias", (D,)))
        out.append((p + "post_attention_layernorm.weight", (D,)))
        out.append((p + "mlp.gate_proj.weight", (I, D)))
        out.append((p + "mlp.up_proj.weight", (I, D)))
        out.append((p + "mlp.down_proj.weight", (D, I)))
    out.append(("model.norm.weight", (D,)))
    if not cfg.tied:
        out.append(("lm_head.weight", (V, D)))
    return out


def load_model(model_dir):
    """-> (Config, {HF name: float64 leaf tensor requiring grad}) in checkpoint
    order. A checkpoint without lm_head.weight counts as tied."""
    if not os.path.isdir(model_dir):
        raise RefError(f"{model_dir}: not a directory")
    cfg = Config(model_dir)
    w = read_safetensors(os.path.join(model_dir, "model.safetensors"))
    if "lm_head.weight" not in w:
        cfg.tied = True
    params = {}
    for name, shape in param_shapes(cfg):
        if name not in w:
            raise RefError(f"{model_dir}/model.safetensors: missing tensor {name}")
        if tuple(w[name].shape) != tuple(shape):
            raise RefError(f"{model_dir}/model.safetensors: {name} has shape "
                           f"{list(w[name].shape)}, expected {list(shape)}")
        params[name] = torch.tensor(w[name], dtype=F64, requires_grad=True)
    return cfg, params


def _rmsnorm(x, w, eps):
    return x * torch.rsqrt((x * x).mean(-1, keepdim=True) + eps) * w


def _linear(x, P, name, bias):
    y = x @ P[name + ".weight"].t()
    return y + P[name + ".bias"] if bias else y


def _rope(x, cos, sin):
    """x (B, heads, T, hd), cos/sin (T, hd): HF rotate_half."""
    half = x.shape[-1] // 2
    rot = torch.cat([-x[..., half:], x[..., :half]], -1)
    return x * cos + rot * sin


def forward(cfg, P, ids, valid):
    """ids (B, T) int64, valid (B, T) bool -> logits (B, T, V) float64."""
    B, T = ids.shape
    H, KV, hd = cfg.H, cfg.KV, cfg.hd
    x = P["model.embed_tokens.weight"][ids]                           # B,T,D
    inv = 1.0 / cfg.theta ** (torch.arange(0, hd, 2, dtype=F64) / hd)
    ang = torch.arange(T, dtype=F64)[:, None] * inv[None, :]          # T,hd/2
    cos, sin = torch.cos(ang).repeat(1, 2), torch.sin(ang).repeat(1, 2)
    causal = torch.tril(torch.ones(T, T, dtype=torch.bool))
    see = causal[None, None] & valid[:, None, None, :]                # B,1,T,T
    # A padding query's row may see no key at all: let it see everything so
    # the softmax stays finite, then zero its output.
    see = see | ~valid[:, None, :, None]
    qmask = valid[:, None, :, None].to(F64)                           # B,1,T,1
    for l in range(cfg.L):
        p = f"model.layers.{l}."
        h = _rmsnorm(x, P[p + "input_layernorm.weight"], cfg.eps)
        q = _linear(h, P, p + "self_attn.q_proj", cfg.qkv_bias).view(B, T, H, hd).transpose(1, 2)
        k = _linear(h, P, p + "self_attn.k_proj", cfg.qkv_bias).view(B, T, KV, hd).transpose(1, 2)
        v = _linear(h, P, p + "self_attn.v_proj", cfg.qkv_bias).view(B, T, KV, hd).transpose(1, 2)
        q, k = _rope(q, cos, sin), _rope(k, cos, sin)
        k = k.repeat_interleave(H // KV, dim=1)                       # head h -> kv h // (H/KV)
        v = v.repeat_interleave(H // KV, dim=1)
        s = (q @ k.transpose(-1, -2)) / math.sqrt(hd)
        a = torch.softmax(s.masked_fill(~see, float("-inf")), dim=-1) * qmask
        o = (a @ v).transpose(1, 2).reshape(B, T, H * hd)
        x = x + _linear(o, P, p + "self_attn.o_proj", cfg.o_bias)
        h = _rmsnorm(x, P[p + "post_attention_layernorm.weight"], cfg.eps)
        g = h @ P[p + "mlp.gate_proj.weight"].t()
        u = h @ P[p + "mlp.up_proj.weight"].t()
        x = x + (torch.nn.functional.silu(g) * u) @ P[p + "mlp.down_proj.weight"].t()
    x = _rmsnorm(x, P["model.norm.weight"], cfg.eps)
    head = P["model.embed_tokens.weight"] if cfg.tied else P["lm_head.weight"]
    return x @ head.t()


def loss_of(logits, targets):
    """Mean of -log p(target) over targets >= 0 -> (loss tensor, count)."""
    counted = targets >= 0
    count = int(counted.sum())
    if count == 0:
        raise RefError("batch: no counted target (all -1)")
    logp = torch.log_softmax(logits, dim=-1)
    nll = -logp[counted].gather(1, targets[counted][:, None]).sum()
    return nll / count, count


# ---------------------------------------------------------------------- batch

def _load_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except OSError as e:
        raise RefError(f"{path}: {e.strerror}")
    except ValueError as e:
        raise RefError(f"{path}: bad JSON: {e}")


def _grid(path, b, key, B, T, lo, hi):
    rows = b[key]
    if not isinstance(rows, list) or len(rows) != B:
        raise RefError(f"{path}: {key}: expected a list of {B} rows")
    for r, row in enumerate(rows):
        if not isinstance(row, list) or len(row) != T:
            raise RefError(f"{path}: {key}[{r}]: expected a list of {T} integers")
        for t, v in enumerate(row):
            if not isinstance(v, int) or isinstance(v, bool) or not lo <= v < hi:
                raise RefError(f"{path}: {key}[{r}][{t}] = {v!r}: expected an integer in [{lo}, {hi})")
    return torch.tensor(rows, dtype=torch.int64)


def load_batch(path, V, need_targets=True):
    """-> ids (B,T) int64, targets (B,T) int64 or None, valid (B,T) bool."""
    b = _load_json(path)
    if not isinstance(b, dict) or "ids" not in b:
        raise RefError(f"{path}: expected an object with \"ids\"")
    ids = b["ids"]
    if not isinstance(ids, list) or not ids or not isinstance(ids[0], list) or not ids[0]:
        raise RefError(f"{path}: ids: expected a non-empty list of non-empty rows")
    B, T = len(ids), len(ids[0])
    ids = _grid(path, b, "ids", B, T, 0, V)
    targets = None
    if "targets" in b:
        targets = _grid(path, b, "targets", B, T, -1, V)
    elif need_targets:
        raise RefError(f"{path}: missing \"targets\"")
    valid = _grid(path, b, "valid", B, T, 0, 2).bool() if b.get("valid") is not None \
        else torch.ones(B, T, dtype=torch.bool)
    return ids, targets, valid


# ------------------------------------------------------------------- commands

def _out_dir(d):
    try:
        os.makedirs(d, exist_ok=True)
    except OSError as e:
        raise RefError(f"{d}: {e.strerror}")


def _write_json(path, obj):
    with open(path, "w") as f:
        json.dump(obj, f)
        f.write("\n")


def _save_logits(out, logits):
    np.save(os.path.join(out, "logits.npy"), logits.detach().numpy().astype(np.float32))


def cmd_forward(a):
    cfg, P = load_model(a.model_dir)
    ids, _, valid = load_batch(a.batch, cfg.V, need_targets=False)
    _out_dir(a.out_dir)
    with torch.no_grad():
        _save_logits(a.out_dir, forward(cfg, P, ids, valid))


def cmd_grads(a):
    cfg, P = load_model(a.model_dir)
    ids, targets, valid = load_batch(a.batch, cfg.V)
    _out_dir(a.out_dir)
    logits = forward(cfg, P, ids, valid)
    loss, count = loss_of(logits, targets)
    loss.backward()
    _write_json(os.path.join(a.out_dir, "loss.json"), {"loss": float(loss), "count": count})
    write_safetensors(os.path.join(a.out_dir, "grads.safetensors"),
                      {n: (p.grad if p.grad is not None else torch.zeros_like(p)).numpy()
                       for n, p in P.items()})
    _save_logits(a.out_dir, logits)


def lr_at(s, a):
    """The learning rate of step s (0-based); see the docstring."""
    if a.warmup is None:
        return a.lr
    if s < a.warmup:
        return a.lr * (s + 1) / a.warmup
    frac = min(1.0, (s - a.warmup) / max(1, a.total - a.warmup))
    return a.min_lr + 0.5 * (a.lr - a.min_lr) * (1.0 + math.cos(math.pi * frac))


def cmd_adamw(a):
    if a.steps < 1:
        raise RefError("--steps must be at least 1")
    if (a.warmup is None) != (a.total is None):
        raise RefError("--warmup and --total go together")
    if a.warmup is not None and (a.warmup < 0 or a.total < 0):
        raise RefError("--warmup and --total must be >= 0")
    cfg, P = load_model(a.model_dir)
    ids, targets, valid = load_batch(a.batch, cfg.V)
    _out_dir(a.out_dir)
    decay = [p for p in P.values() if p.dim() >= 2]
    other = [p for p in P.values() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": a.weight_decay},
                             {"params": other, "weight_decay": 0.0}],
                            lr=a.lr, betas=(a.beta1, a.beta2), eps=a.eps)
    hist = {"loss": [], "lr": [], "grad_norm": []}
    for s in range(a.steps):
        lr = lr_at(s, a)
        for g in opt.param_groups:
            g["lr"] = lr
        opt.zero_grad()
        loss, _ = loss_of(forward(cfg, P, ids, valid), targets)
        loss.backward()
        for p in P.values():
            if p.grad is None:
                p.grad = torch.zeros_like(p)
        norm = float(torch.sqrt(sum((p.grad * p.grad).sum() for p in P.values())))
        if a.clip is not None:
            torch.nn.utils.clip_grad_norm_(list(P.values()), a.clip)
        opt.step()
        hist["loss"].append(float(loss))
        hist["lr"].append(lr)
        hist["grad_norm"].append(norm)
    with torch.no_grad():
        hist["final_loss"] = float(loss_of(forward(cfg, P, ids, valid), targets)[0])
    write_safetensors(os.path.join(a.out_dir, "params.safetensors"),
                      {n: p.detach().numpy() for n, p in P.items()})
    _write_json(os.path.join(a.out_dir, "losses.json"), hist)


# ------------------------------------------------------------------- selftest

VARIANTS = {
    # name: config overrides on top of the base (llama, untied, MHA, no bias)
    "llama_untied": dict(),
    "llama_tied_gqa": dict(tie_word_embeddings=True, num_key_value_heads=2, head_dim=6),
    "llama_bias_gqa": dict(attention_bias=True, num_key_value_heads=1),
    "qwen2_tied": dict(model_type="qwen2", tie_word_embeddings=True, num_key_value_heads=2),
}


def make_model(d, overrides, seed, dtype="F32"):
    """A tiny random checkpoint in directory d; returns its config dict."""
    c = dict(model_type="llama", hidden_size=16, num_hidden_layers=2, num_attention_heads=4,
             num_key_value_heads=4, intermediate_size=24, vocab_size=23, rms_norm_eps=1e-5,
             rope_theta=10000.0, tie_word_embeddings=False, attention_bias=False,
             rope_scaling=None, hidden_act="silu")
    c.update(overrides)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(c, f)

    class _C:  # param_shapes needs only these fields
        pass
    k = _C()
    k.D, k.L, k.H, k.I, k.V = c["hidden_size"], c["num_hidden_layers"], c["num_attention_heads"], \
        c["intermediate_size"], c["vocab_size"]
    k.KV = c["num_key_value_heads"]
    k.hd = c.get("head_dim") or k.D // k.H
    k.tied = c["tie_word_embeddings"]
    k.qkv_bias = c["model_type"] == "qwen2" or c["attention_bias"]
    k.o_bias = c["model_type"] == "llama" and c["attention_bias"]
    rng = np.random.default_rng(seed)
    t = {}
    for name, shape in param_shapes(k):
        if name.endswith("norm.weight"):
            t[name] = 1.0 + 0.2 * rng.standard_normal(shape)
        elif name.endswith(".bias"):
            t[name] = 0.3 * rng.standard_normal(shape)
        else:
            t[name] = rng.standard_normal(shape) / math.sqrt(shape[1]) * 1.5
    write_safetensors(os.path.join(d, "model.safetensors"),
                      {n: v.astype(np.float32) for n, v in t.items()}, dtype)
    return c


def make_batch(path, V, seed):
    """B = 3, T = 7: row 0 full, row 1 right-padded (last 2), row 2
    left-padded (first 2); a few -1 targets; targets at padding are -1."""
    rng = np.random.default_rng(seed)
    B, T = 3, 7
    ids = rng.integers(0, V, (B, T))
    tg = rng.integers(0, V, (B, T))
    valid = np.ones((B, T), dtype=int)
    valid[1, -2:] = 0
    valid[2, :2] = 0
    tg[valid == 0] = -1
    tg[0, 0] = -1
    tg[1, 2] = -1
    batch = {"ids": ids.tolist(), "targets": tg.tolist(), "valid": valid.tolist()}
    with open(path, "w") as f:
        json.dump(batch, f)
    return batch


def _import_from(directory, module):
    import importlib.util
    path = os.path.join(directory, module + ".py")
    if not os.path.exists(path):
        return None
    spec = importlib.util.spec_from_file_location(module + "_sr", path)
    m = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(m)
    return m


class _Tap:
    def __init__(self):
        self.failed = 0

    def check(self, ok, name, detail=""):
        print(("ok - " if ok else "not ok - ") + name + (f"  ({detail})" if detail else ""), flush=True)
        if not ok:
            self.failed += 1


def _numpy_adamw_step(p, g, lr, b1, b2, eps, wd):
    """First AdamW step from m = v = 0 (bias-corrected), decoupled decay."""
    m = (1 - b1) * g
    v = (1 - b2) * g * g
    mhat, vhat = m / (1 - b1), v / (1 - b2)
    return p * (1 - lr * wd) - lr * mhat / (np.sqrt(vhat) + eps)


def selftest(_a=None):
    import time
    t0 = time.time()
    tap = _Tap()
    shared = os.environ.get("SRA_SHARED", "/work/shared")
    llama_ref = _import_from(os.path.join(shared, "tools"), "llama_ref")
    model_ref = _import_from(os.path.dirname(os.path.abspath(__file__)), "model_ref")
    tap.check(llama_ref is not None, "import llama_ref", os.path.join(shared, "tools"))
    with tempfile.TemporaryDirectory(prefix="torch_ref_") as tmp:
        for vi, (vname, over) in enumerate(VARIANTS.items()):
            md = os.path.join(tmp, vname)
            c = make_model(md, over, seed=100 + vi)
            V = c["vocab_size"]
            bpath = os.path.join(tmp, vname + "_batch.json")
            batch = make_batch(bpath, V, seed=200 + vi)
            cfg, P = load_model(md)
            ids, targets, valid = load_batch(bpath, V)
            W = {n: p.detach().numpy().copy() for n, p in P.items()}

            # forward against llama_ref (no bias) or model_ref (bias), per row on
            # the row's real tokens: rows 0, 1 (right padding) only, since
            # left padding shifts nothing in our positions (0..T-1 per row).
            out = os.path.join(tmp, vname + "_fwd")
            main(["forward", md, bpath, out])
            lg32 = np.load(os.path.join(out, "logits.npy"))
            with torch.no_grad():
                lg = forward(cfg, P, ids, valid).numpy()
            ok = lg32.shape == (3, 7, V) and lg32.dtype == np.float32 and \
                np.allclose(lg32, lg, rtol=1e-6, atol=1e-6)
            tap.check(ok, f"{vname}: forward writes logits.npy (float32, B x T x V)")
            has_bias = cfg.qkv_bias or cfg.o_bias
            ref = None
            if not has_bias and llama_ref is not None:
                m, refname = llama_ref.Llama(md), "llama_ref"
                ref = lambda row: m.forward(row)["logits"]
            elif has_bias and model_ref is not None:
                m, refname = model_ref.Model(md), "model_ref"
                ref = lambda row: model_ref.forward(m, row)["logits"]
            if ref is not None:
                err = 0.0
                for r, n in ((0, 7), (1, 5)):
                    rl = ref(batch["ids"][r][:n])
                    err = max(err, float(np.max(np.abs(rl - lg[r, :n])) / max(1.0, np.max(np.abs(rl)))))
                tap.check(err <= 1e-9, f"{vname}: forward vs {refname} (rows, right padding)",
                          f"max err {err:.2e}")
            # padding keys are masked: changing ids at padding positions leaves
            # the logits of real positions unchanged; padding queries see zeros.
            ids2 = ids.clone()
            ids2[~valid] = (ids2[~valid] + 5) % V
            with torch.no_grad():
                lg2 = forward(cfg, P, ids2, valid).numpy()
            vm = valid.numpy()
            tap.check(np.max(np.abs(lg2[vm] - lg[vm])) < 1e-12, f"{vname}: padding keys masked")

            # grads subcommand against central finite differences
            gout = os.path.join(tmp, vname + "_grads")
            main(["grads", md, bpath, gout])
            with open(os.path.join(gout, "loss.json")) as f:
                lj = json.load(f)
            G = read_safetensors(os.path.join(gout, "grads.safetensors"))
            with torch.no_grad():
                l0, cnt = loss_of(forward(cfg, P, ids, valid), targets)
            nct = int((np.array(batch["targets"]) >= 0).sum())
            tap.check(abs(lj["loss"] - float(l0)) < 1e-12 and lj["count"] == cnt == nct,
                      f"{vname}: loss.json", f"loss {lj['loss']:.6f}, count {lj['count']}")
            tap.check(sorted(G) == sorted(P) and all(G[n].shape == W[n].shape for n in P)
                      and (("lm_head.weight" in G) != cfg.tied),
                      f"{vname}: grads.safetensors names and shapes")

            def loss_at(name, idx, val):
                with torch.no_grad():
                    keep = P[name][idx].item()
                    P[name][idx] = val
                    lv = float(loss_of(forward(cfg, P, ids, valid), targets)[0])
                    P[name][idx] = keep
                return lv
            rng = np.random.default_rng(300 + vi)
            names = ["model.embed_tokens.weight", "model.layers.0.self_attn.q_proj.weight",
                     "model.layers.0.self_attn.k_proj.weight", "model.layers.1.self_attn.v_proj.weight",
                     "model.layers.0.self_attn.o_proj.weight", "model.layers.1.mlp.gate_proj.weight",
                     "model.layers.0.mlp.up_proj.weight", "model.layers.1.mlp.down_proj.weight",
                     "model.layers.0.input_layernorm.weight",
                     "model.layers.1.post_attention_layernorm.weight", "model.norm.weight"]
            names += [n for n in P if n.endswith(".bias") or n == "lm_head.weight"]
            worst, h = 0.0, 1e-5
            for name in names:
                shape = W[name].shape
                picks = [tuple(int(rng.integers(0, s)) for s in shape) for _ in range(3)]
                if name == "model.embed_tokens.weight":  # a row in use (and, tied, every row)
                    picks[0] = (int(batch["ids"][0][3]), picks[0][1])
                for idx in picks:
                    x0 = W[name][idx]
                    fd = (loss_at(name, idx, x0 + h) - loss_at(name, idx, x0 - h)) / (2 * h)
                    rel = abs(G[name][idx] - fd) / max(abs(fd), 1e-3)
                    worst = max(worst, rel)
            tap.check(worst <= 1e-6, f"{vname}: grads vs central differences "
                      f"({len(names)} tensors x 3 entries)", f"max rel err {worst:.2e}")

            # adamw: one step against numpy, with an active clip and decay
            lr, b1, b2, eps, wd = 1e-2, 0.9, 0.95, 1e-8, 0.1
            Pg = {n: torch.tensor(W[n], requires_grad=True) for n in W}
            loss_of(forward(cfg, Pg, ids, valid), targets)[0].backward()
            g64 = {n: (Pg[n].grad if Pg[n].grad is not None else torch.zeros_like(Pg[n])).numpy()
                   for n in Pg}
            norm = math.sqrt(sum(float((g * g).sum()) for g in g64.values()))
            clip = 0.5 * norm
            aout = os.path.join(tmp, vname + "_adamw")
            main(["adamw", md, bpath, aout, "--steps", "1", "--lr", str(lr), "--beta1", str(b1),
                  "--beta2", str(b2), "--eps", str(eps), "--weight-decay", str(wd), "--clip", repr(clip)])
            Pt = read_safetensors(os.path.join(aout, "params.safetensors"))
            with open(os.path.join(aout, "losses.json")) as f:
                hist = json.load(f)
            coef = min(1.0, clip / (norm + 1e-6))
            err = 0.0
            for n in W:
                want = _numpy_adamw_step(W[n], g64[n] * coef, lr, b1, b2, eps, wd if W[n].ndim == 2 else 0.0)
                err = max(err, float(np.max(np.abs(Pt[n] - want) / np.maximum(1.0, np.abs(want)))))
            ok = err <= 2e-7 and sorted(Pt) == sorted(W) and abs(hist["loss"][0] - float(l0)) < 1e-12 \
                and abs(hist["grad_norm"][0] - norm) <= 1e-12 * norm and hist["lr"] == [lr]
            tap.check(ok, f"{vname}: adamw step 1 vs numpy (clip active, decay on 2-D only)",
                      f"max rel err {err:.2e} (F32 output)")

        # schedule + several steps (untied variant)
        md = os.path.join(tmp, "llama_untied")
        bpath = os.path.join(tmp, "llama_untied_batch.json")
        aout = os.path.join(tmp, "sched")
        main(["adamw", md, bpath, aout, "--steps", "6", "--lr", "3e-3", "--beta1", "0.9", "--beta2",
              "0.999", "--eps", "1e-8", "--weight-decay", "0.01", "--warmup", "2", "--min-lr", "3e-4",
              "--total", "5"])
        with open(os.path.join(aout, "losses.json")) as f:
            hist = json.load(f)
        want = [1.5e-3, 3e-3] + [3e-4 + 0.5 * 2.7e-3 * (1 + math.cos(math.pi * min(1, k / 3)))
                                 for k in range(4)]
        tap.check(len(hist["lr"]) == 6 and np.allclose(hist["lr"], want, rtol=1e-14, atol=0),
                  "adamw: warmup + cosine schedule", " ".join(f"{x:.3g}" for x in hist["lr"]))
        tap.check(hist["loss"][-1] < hist["loss"][0] and hist["final_loss"] < hist["loss"][-1],
                  "adamw: loss goes down over 6 steps",
                  f"{hist['loss'][0]:.4f} -> {hist['final_loss']:.4f}")

        # loader: F16 / BF16 checkpoints and a metadata-aliased tied embedding
        for dt, tol in (("F16", 1e-3), ("BF16", 8e-3)):
            d = os.path.join(tmp, "dt_" + dt)
            make_model(d, {}, seed=7, dtype=dt)
            d32 = os.path.join(tmp, "dt_F32")
            make_model(d32, {}, seed=7)
            a, b = read_safetensors(os.path.join(d, "model.safetensors")), \
                read_safetensors(os.path.join(d32, "model.safetensors"))
            err = max(float(np.max(np.abs(a[n] - b[n]) / np.maximum(1, np.abs(b[n])))) for n in b)
            tap.check(err <= tol, f"loader: {dt} checkpoint", f"max rel diff {err:.1e}")
        d = os.path.join(tmp, "alias")
        make_model(d, dict(tie_word_embeddings=True), seed=9)
        st = read_safetensors(os.path.join(d, "model.safetensors"))
        st["lm_head.weight"] = st.pop("model.embed_tokens.weight")
        path = os.path.join(d, "model.safetensors")
        write_safetensors(path, st)
        with open(path, "rb") as f:  # add the alias to the header by hand
            blob = f.read()
        (n,) = struct.unpack("<Q", blob[:8])
        hdr = json.loads(blob[8:8 + n])
        hdr["__metadata__"] = {"model.embed_tokens.weight": "lm_head.weight"}
        hb = json.dumps(hdr).encode()
        hb += b" " * (-len(hb) % 8)
        with open(path, "wb") as f:
            f.write(struct.pack("<Q", len(hb)) + hb + blob[8 + n:])
        cfg2, P2 = load_model(d)
        tap.check(cfg2.tied and "lm_head.weight" not in P2 and
                  np.array_equal(P2["model.embed_tokens.weight"].detach().numpy(), st["lm_head.weight"]),
                  "loader: tied embedding stored as lm_head.weight + __metadata__ alias")
        with open(os.path.join(tmp, "alias", "model.safetensors"), "rb") as f:
            tap.check(struct.unpack("<Q", f.read(8))[0] % 8 == 0, "writer: header padded to 8 bytes")

        # errors: missing files, bad JSON, bad batch -> exit 1 with a message
        bad = os.path.join(tmp, "bad.json")
        with open(bad, "w") as f:
            f.write("{\"ids\": [[1, 2]")
        badb = os.path.join(tmp, "badb.json")
        with open(badb, "w") as f:
            json.dump({"ids": [[1, 2], [3]], "targets": [[1, 2], [3]]}, f)
        cases = [["grads", os.path.join(tmp, "nope"), bpath, os.path.join(tmp, "e1")],
                 ["grads", md, os.path.join(tmp, "nope.json"), os.path.join(tmp, "e2")],
                 ["grads", md, bad, os.path.join(tmp, "e3")],
                 ["forward", md, badb, os.path.join(tmp, "e4")]]
        codes = []
        import io
        import contextlib
        for argv in cases:
            err = io.StringIO()
            with contextlib.redirect_stderr(err):
                codes.append(main(argv))
            codes[-1] = (codes[-1], "error:" in err.getvalue())
        tap.check(all(c == (1, True) for c in codes), "errors: missing model, missing batch, bad JSON, "
                  "ragged batch exit 1 with a message", str(codes))
    dt = time.time() - t0
    print(f"# {tap.failed} failed, {dt:.1f} s", flush=True)
    return 1 if tap.failed else 0


# ----------------------------------------------------------------------- main

def main(argv=None):
    ap = argparse.ArgumentParser(prog="torch_ref.py", description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    for name, fn, help_ in (("forward", cmd_forward, "write logits.npy"),
                            ("grads", cmd_grads, "write loss.json, grads.safetensors, logits.npy"),
                            ("adamw", cmd_adamw, "N AdamW steps: params.safetensors, losses.json")):
        p = sub.add_parser(name, help=help_)
        p.add_argument("model_dir")
        p.add_argument("batch")
        p.add_argument("out_dir")
        p.set_defaults(fn=fn)
        if name == "adamw":
            p.add_argument("--steps", type=int, required=True)
            p.add_argument("--lr", type=float, required=True)
            p.add_argument("--beta1", type=float, required=True)
            p.add_argument("--beta2", type=float, required=True)
            p.add_argument("--eps", type=float, required=True)
            p.add_argument("--weight-decay", type=float, required=True)
            p.add_argument("--clip", type=float)
            p.add_argument("--warmup", type=int)
            p.add_argument("--total", type=int)
            p.add_argument("--min-lr", type=float, default=0.0)
    p = sub.add_parser("selftest", help="check this reference against llama_ref and finite differences")
    p.set_defaults(fn=selftest)
    a = ap.parse_args(argv)
    try:
        rc = a.fn(a)
    except RefError as e:
        sys.stderr.write(f"torch_ref.py: error: {e}\n")
        return 1
    return rc or 0


if __name__ == "__main__":
    sys.exit(main())
