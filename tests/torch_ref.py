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
    t = torch.tensor(spec["data"], dtype=torch.float64).reshape(spec["shape"])
    if spec["dtype"] == "int32":
        return t.long()
    if spec["dtype"] == "uint8":
        return t.to(torch.uint8)
    return t


def run(case):
    env = {"torch": torch, "F": F}
    for name, spec in case["inputs"].items():
        t = tensor(spec)
        if name in case["wrt"]:
            t.requires_grad_(True)
        env[name] = t
    out = eval(case["expr"], env)
    res = {"shape": list(out.shape), "out": out.detach().double().reshape(-1).tolist(), "grads": {}}
    if case["wrt"]:
        gout = torch.tensor(case["gout"], dtype=torch.float64).reshape(out.shape)
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
