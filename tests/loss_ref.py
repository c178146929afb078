#!/usr/bin/env python3
"""PyTorch float64 reference of the distillation losses (train/loss.h) for
tests/test_loss.c: values and autograd gradients, written from method.md
§4-§6 and loss.h's contract, independently of train/loss.c.

    loss_ref.py IN.json OUT.json

IN.json: {"cases": [CASE, ...]}, each CASE an object with "fn" and flat
arrays (row-major) plus their sizes:
    span_cos, span_mse: S dS dT, W (S), cS (S*dS), cT (S*dT), P (dT*dS)
    geo:                S dS dT, W, cS, cT
    logit_kl:           V_S K k tau, z (V_S), t_ids (k), t_lp (k),
                        t_key (teacher vocab), s_key (V_S)
    uld:                V_S k, z, t_lp
    mined:              V_S k, z, t_ids, t_lp, t2s (teacher vocab)
    head_kl:            S K dS dT V_S tau tau2, W (S, optional: absent =
                        every span weight 1), cS (S*dS), cT (S*dT),
                        WT (K*dT), WS (V_S*dS), s_ids (K)
OUT.json: {"results": [{"loss": L, "grads": {NAME: flat list},
"shared_mass": m (logit_kl), "sra_ref": L from ../shared/tools/sra_ref.py
(span_cos, geo, logit_kl, head_kl; null where it has no value)}, ...]}.

sra_ref.py comes from $SRA_SHARED/tools (default /work/shared/tools).
Run with /usr/bin/python3 (torch, numpy, regex).
"""
import json
import os
import sys

import numpy as np
import torch

SHARED = os.environ.get("SRA_SHARED") or "/work/shared"
sys.path.insert(0, os.path.join(SHARED, "tools"))
import sra_ref  # noqa: E402

torch.set_default_dtype(torch.float64)
EPS_NORM = 1e-12


def t64(x, shape=None, grad=False):
    t = torch.tensor(x, dtype=torch.float64)
    if shape is not None:
        t = t.reshape(shape)
    return t.requires_grad_(grad)


def unit_rows(c):
    """c / max(|c|, 1e-12) row-wise (the floored norm is a constant)."""
    return c / torch.linalg.norm(c, dim=1, keepdim=True).clamp_min(EPS_NORM)


def span_cos(c):
    S, dS, dT = c["S"], c["dS"], c["dT"]
    W = t64(c["W"])
    cS, P = t64(c["cS"], (S, dS), True), t64(c["P"], (dT, dS), True)
    cT = t64(c["cT"], (S, dT))
    y = cS @ P.T
    cos = (unit_rows(y) * unit_rows(cT)).sum(1)
    L = (W * (1 - cos)).sum()
    L.backward()
    ref = sra_ref.l_span(W.numpy(), cS.detach().numpy(), cT.numpy(), P.detach().numpy())
    return L, {"cS": cS.grad, "P": P.grad}, {"sra_ref": ref}


def span_mse(c):
    S, dS, dT = c["S"], c["dS"], c["dT"]
    W = t64(c["W"])
    cS, P = t64(c["cS"], (S, dS), True), t64(c["P"], (dT, dS), True)
    cT = t64(c["cT"], (S, dT))

    def ln(x):  # LayerNorm without affine, biased variance, eps 1e-5
        mu = x.mean(1, keepdim=True)
        var = ((x - mu) ** 2).mean(1, keepdim=True)
        return (x - mu) / torch.sqrt(var + 1e-5)

    L = (W * ((ln(cS @ P.T) - ln(cT)) ** 2).mean(1)).sum()
    L.backward()
    return L, {"cS": cS.grad, "P": P.grad}, {}


def geo(c):
    S, dS, dT = c["S"], c["dS"], c["dT"]
    W = t64(c["W"])
    cS, cT = t64(c["cS"], (S, dS), True), t64(c["cT"], (S, dT))
    hS, hT = unit_rows(cS), unit_rows(cT)
    D = hS @ hS.T - hT @ hT.T
    w = torch.outer(W, W) * (1 - torch.eye(S))
    L = (w * D ** 2).sum() / w.sum() if w.sum() > 0 else (cS * 0).sum()
    L.backward()
    ref = sra_ref.l_geo(W.numpy(), cS.detach().numpy(), cT.numpy())
    return L, {"cS": cS.grad}, {"sra_ref": ref}


def logit_kl(c):
    V, K, tau = c["V_S"], c["K"], c["tau"]
    z = t64(c["z"], None, True)
    t_key, s_key = c["t_key"], torch.tensor(c["s_key"])
    # teacher: exp(log-prob) of each top-k id with a key, summed per key
    pT = torch.zeros(K)
    for i, lp in zip(c["t_ids"], c["t_lp"]):
        if i >= 0 and t_key[i] >= 0:
            pT[t_key[i]] += float(np.exp(lp))
    mass = float(pT.sum())
    # student: the full softmax summed per key, in log space (a key whose
    # logits all sit far below the max keeps its mass): log pS(key) =
    # logsumexp of log_softmax(z) over the key's ids (ids without a key
    # dropped); the per-key max is a constant shift (no gradient)
    lsm = torch.log_softmax(z, 0)
    has = s_key >= 0
    ks, ls = s_key[has], lsm[has]
    kmax = torch.full((K,), -np.inf).scatter_reduce(0, ks, ls.detach(), reduce="amax", include_self=True)
    lpS = torch.log(torch.zeros(K).index_add(0, ks, torch.exp(ls - kmax[ks]))) + kmax
    if mass == 0:
        L = (z * 0).sum()
        ref = None
    else:
        lqT = torch.log(pT) / tau
        lqT = lqT - torch.logsumexp(lqT, 0)
        lqS = lpS / tau
        lqS = lqS - torch.logsumexp(lqS, 0)
        m = pT > 0
        L = tau * tau * (torch.exp(lqT[m]) * (lqT[m] - lqS[m])).sum()
        ref = sra_ref.kl_pooled(pT.numpy(), torch.exp(lpS).detach().numpy(), tau=tau)
    L.backward()
    return L, {"z": z.grad}, {"sra_ref": ref, "shared_mass": mass}


def uld(c):
    V, k = c["V_S"], c["k"]
    z = t64(c["z"], None, True)
    pS = torch.sort(torch.softmax(z, 0), descending=True).values
    pT = torch.sort(torch.exp(t64(c["t_lp"])), descending=True).values
    n = max(V, k)
    pS = torch.cat([pS, torch.zeros(n - V)])
    pT = torch.cat([pT, torch.zeros(n - k)])
    L = (pS - pT).abs().sum()
    L.backward()
    return L, {"z": z.grad}, {}


def mined(c):
    V = c["V_S"]
    z = t64(c["z"], None, True)
    q = torch.zeros(V)
    for i, lp in zip(c["t_ids"], c["t_lp"]):
        if i >= 0 and c["t2s"][i] >= 0:
            q[c["t2s"][i]] += float(np.exp(lp))
    if q.sum() == 0:
        L = (z * 0).sum()
    else:
        q = q / q.sum()
        m = q > 0
        L = (q[m] * (torch.log(q[m]) - torch.log_softmax(z, 0)[m])).sum()
    L.backward()
    return L, {"z": z.grad}, {}


def head_kl(c):
    """method.md §9.2: each side's LM head on its span CoMs, over the shared
    pairs; f * sum_s w_s KL(softmax(zT/tau) || softmax(zS/tau))."""
    S, K, dS, dT, V, tau = c["S"], c["K"], c["dS"], c["dT"], c["V_S"], c["tau"]
    f = tau * tau if c["tau2"] else 1.0
    w = t64(c["W"]) if "W" in c else torch.ones(S)
    cS, WS = t64(c["cS"], (S, dS), True), t64(c["WS"], (V, dS), True)
    cT, WT = t64(c["cT"], (S, dT)), t64(c["WT"], (K, dT))
    ids = torch.tensor(c["s_ids"], dtype=torch.int64)
    lT = torch.log_softmax(cT @ WT.T / tau, 1)
    lS = torch.log_softmax(cS @ WS[ids].T / tau, 1)
    L = f * (w * (torch.exp(lT) * (lT - lS)).sum(1)).sum()
    L.backward()
    # the oracle: its head_T is the full teacher head, here the K rows in
    # pair order (ids_T = 0..K-1); it has no weights and no tau^2, so a
    # weighted case sums it span by span
    a = dict(head_T=WT.numpy(), head_S=WS.detach().numpy(), ids_T=np.arange(K), ids_S=np.array(c["s_ids"]), tau=tau)
    cSn, cTn = cS.detach().numpy(), cT.numpy()
    if "W" in c:
        ref = f * sum(float(c["W"][s]) * sra_ref.head_logit_kl(com_T=cTn[s:s + 1], com_S=cSn[s:s + 1], **a)
                      for s in range(S))
    else:
        ref = f * sra_ref.head_logit_kl(com_T=cTn, com_S=cSn, **a)
    return L, {"cS": cS.grad, "WS": WS.grad}, {"sra_ref": ref}


FNS = {"span_cos": span_cos, "span_mse": span_mse, "geo": geo, "logit_kl": logit_kl, "uld": uld, "mined": mined,
       "head_kl": head_kl}


def main():
    cases = json.load(open(sys.argv[1]))["cases"]
    out = []
    for c in cases:
        L, grads, extra = FNS[c["fn"]](c)
        r = {"loss": float(L), "grads": {k: [float(x) for x in g.reshape(-1)] for k, g in grads.items()}}
        for key, v in extra.items():  # sra_ref has no norm guard: NaN on a zero row
            r[key] = v if v is None or np.isfinite(v) else None
        out.append(r)
    with open(sys.argv[2], "w") as f:
        json.dump({"results": out}, f)


if __name__ == "__main__":
    main()
