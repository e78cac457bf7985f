"""torch_ref.py: computes reference results with PyTorch for the Lua op tests.

Reads JSON from stdin: a list of cases, each {"expr": Python expression over the named inputs,
"inputs": {name: {"shape": [...], "dtype": "float32"|"int32"|"uint8", "data": [...]}},
"wrt": [names to differentiate], "gout": [flat upstream gradient] or null}.
Evaluates each in float64 (integers as int64) and writes JSON to stdout: a list of
{"shape": [...], "out": [...], "grads": {name: [...]}} or {"error": message}.
Run with Debian's /usr/bin/python3, which has python3-torch.
"""
import json
import sys

import torch
import torch.nn.functional as F  # noqa: F401  (used by the expressions)


def tensor(spec):
    # float() also reads the strings "nan", "inf" and "-inf" that stand for what JSON lacks
    t = torch.tensor([float(v) for v in spec["data"]], dtype=torch.float64).reshape(spec["shape"])
    if spec["dtype"] == "int32":
        return t.long()
    if spec["dtype"] == "uint8":
        return t.to(torch.uint8)
    return t


def attention(q, k, v, heads, causal=False, pad=None):
    """Multi-head attention on [B, T, D] written out with plain torch ops."""
    B, T, D = q.shape
    hd = D // heads
    q, k, v = (t.reshape(B, T, heads, hd).transpose(1, 2) for t in (q, k, v))
    s = q @ k.transpose(-1, -2) / hd ** 0.5
    if causal:
        s = s.masked_fill(torch.ones(T, T, dtype=torch.bool).triu(1), float("-inf"))
    if pad is not None:
        s = s.masked_fill(pad.reshape(B, 1, 1, T) == 0, float("-inf"))
    return (s.softmax(-1) @ v).transpose(1, 2).reshape(B, T, D)


def mhsa(x, wqkv, bqkv, wo, bo, heads, causal=False, pad=None):
    """Multi-head self-attention as lat.nn builds it (the reference for lat.nn)."""
    q, k, v = F.linear(x, wqkv, bqkv).split(x.shape[-1], dim=-1)
    return F.linear(attention(q, k, v, heads, causal, pad), wo, bo)


def run(case):
    env = {"torch": torch, "F": F, "mhsa": mhsa, "attention": attention}
    for name, spec in case["inputs"].items():
        t = tensor(spec)
        if name in case["wrt"]:
            t.requires_grad_(True)
        env[name] = t
    out = eval(case["expr"], env)
    res = {"shape": list(out.shape), "out": out.detach().double().reshape(-1).tolist(), "grads": {}}
    if case["wrt"]:
        gout = torch.tensor([float(v) for v in case["gout"]], dtype=torch.float64).reshape(out.shape)
        grads = torch.autograd.grad(out, [env[n] for n in case["wrt"]], gout, allow_unused=True)
        for name, g in zip(case["wrt"], grads):
            g = torch.zeros_like(env[name]) if g is None else g
            res["grads"][name] = g.reshape(-1).tolist()
    return res


def main():
    torch.set_num_threads(1)
    cases = json.load(sys.stdin)
    results = []
    for case in cases:
        try:
            results.append(run(case))
        except Exception as e:  # reported per case, so one bad row does not hide the others
            results.append({"error": f"{type(e).__name__}: {e}"})
    json.dump(results, sys.stdout)


if __name__ == "__main__":
    main()
