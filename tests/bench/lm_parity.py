"""lm_parity.py: the PyTorch half of the language-model parity run (tests/bench/lm_parity.sh).

Reads what lm_parity.lua wrote (initial weights, tokens, the batch and learning rate of every
step), builds the same GPT in PyTorch, trains it on the same batches with torch.optim.AdamW and
the same gradient clipping, and compares the validation loss in bits per byte with lat's.
usage: lm_parity.py DIR [max relative difference, default 0.02]
"""
import json
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from gpt2_ref import GPT2LMHeadModel, read_safetensors  # noqa: E402


def GPT(vocab, max_len, d, heads, layers):
    """lat.models.GPT's defaults in Hugging Face's layout: exact GELU, tied lm_head."""
    return GPT2LMHeadModel({"vocab_size": vocab, "n_positions": max_len, "n_embd": d, "n_head": heads, "n_layer": layers,
                            "activation_function": "gelu", "layer_norm_epsilon": 1e-5, "tie_word_embeddings": True})


def windows(tokens, index, T):
    x = np.stack([tokens[w * T:w * T + T] for w in index])
    y = np.stack([tokens[w * T + 1:w * T + T + 1] for w in index])
    return torch.from_numpy(x).long(), torch.from_numpy(y).long()


def main():
    out = sys.argv[1]
    tolerance = float(sys.argv[2]) if len(sys.argv) > 2 else 0.02
    cfg = json.load(open(out + "/config.json"))
    lat_res = json.load(open(out + "/lat.json"))
    torch.set_num_threads(lat_res["threads"])
    init, meta = read_safetensors(out + "/init.safetensors")
    data, _ = read_safetensors(out + "/data.safetensors")
    T = cfg["len"]
    model = GPT(258, T, cfg["dim"], cfg["heads"], cfg["layers"])
    model.load(init)  # lat's names are Hugging Face's
    opt = torch.optim.AdamW(model.parameters(), lr=cfg["lr"], weight_decay=cfg["weight_decay"])
    t0 = time.time()
    losses = []
    model.train()
    for step in range(cfg["steps"]):
        for g in opt.param_groups:
            g["lr"] = float(data["lrs"][step])
        x, y = windows(data["train_tokens"], data["windows"][step], T)
        loss = F.cross_entropy(model(x).reshape(-1, 258), y.reshape(-1))
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg["clip"])
        opt.step()
        losses.append(loss.item())
    seconds = time.time() - t0
    model.eval()
    with torch.no_grad():
        total, count = 0.0, 0
        nval = lat_res["val_windows"]
        for start in range(0, nval, 64):
            x, y = windows(data["val_tokens"], range(start, min(nval, start + 64)), T)
            total += F.cross_entropy(model(x).reshape(-1, 258), y.reshape(-1), reduction="sum").item()
            count += y.numel()
    bpb = total / count / math.log(2)
    lat_bpb = lat_res["val_bits_per_byte"]
    rel = abs(lat_bpb - bpb) / bpb
    print(f"PyTorch: {cfg['steps']} steps in {seconds:.1f} s, final train loss {losses[-1]:.4f}, "
          f"validation {bpb:.4f} bits/byte")
    print(f"validation bits/byte: lat {lat_bpb:.4f}, PyTorch {bpb:.4f}, relative difference {100 * rel:.2f}% "
          f"(limit {100 * tolerance:.0f}%); step time lat/PyTorch {lat_res['seconds'] / seconds:.2f}")
    for s in sorted({0, 1, 9, len(losses) // 2, len(losses) - 1}):
        print(f"  step {s + 1:5d}: train loss lat {lat_res['train_losses'][s]:.4f}  PyTorch {losses[s]:.4f}")
    json.dump({"lat_bpb": lat_bpb, "torch_bpb": bpb, "relative_difference": rel,
               "lat_seconds": lat_res["seconds"], "torch_seconds": seconds}, open(out + "/parity.json", "w"))
    sys.exit(0 if rel <= tolerance else 1)


if __name__ == "__main__":
    main()
