"""optim_ref.py: runs torch.optim and clip_grad_norm_ for tests/test_optim.lua.

Reads JSON from stdin: {"params": [{"shape": [...], "data": [...]}, ...],
"runs": [{"name", "kind": "SGD"|"AdamW", "opts": {...}, "lrs": [lr per step],
"grads": [[flat grad or null per param] per step]}],
"clips": [{"max_norm", "grads": [flat per param]}]}.
Writes {"runs": {name: {"params": [[flat per param] per step], "state": {key: flat}}},
"clips": [{"norm", "grads": [flat per param]}]}, all in float32 as torch.optim computes.
"""
import json
import sys

import torch


def params_of(specs):
    return [torch.tensor(s["data"], dtype=torch.float32).reshape(s["shape"]).requires_grad_()
            for s in specs]


def flat(t):
    return t.detach().reshape(-1).double().tolist()


def run(specs, r):
    ps = params_of(specs)
    opts = dict(r["opts"])
    if "betas" in opts:
        opts["betas"] = tuple(opts["betas"])
    opt = getattr(torch.optim, r["kind"])(ps, **opts)
    trace = []
    for lr, grads in zip(r["lrs"], r["grads"]):
        opt.param_groups[0]["lr"] = lr
        for p, g in zip(ps, grads):
            p.grad = None if g is None else torch.tensor(g, dtype=torch.float32).reshape(p.shape)
        opt.step()
        trace.append([flat(p) for p in ps])
    state = {}
    for i, p in enumerate(ps):
        for k, v in opt.state[p].items():
            if v is not None:
                state[f"{i + 1}.{k}"] = flat(v) if torch.is_tensor(v) else [v]
    return {"params": trace, "state": state}


def clip(specs, c):
    ps = params_of(specs)
    for p, g in zip(ps, c["grads"]):
        p.grad = torch.tensor(g, dtype=torch.float32).reshape(p.shape)
    norm = torch.nn.utils.clip_grad_norm_(ps, c["max_norm"])
    return {"norm": float(norm), "grads": [flat(p.grad) for p in ps]}


def main():
    torch.set_num_threads(1)
    job = json.load(sys.stdin)
    out = {"runs": {r["name"]: run(job["params"], r) for r in job["runs"]},
           "clips": [clip(job["params"], c) for c in job["clips"]]}
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
