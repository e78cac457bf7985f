"""lm_parity.py: the PyTorch half of the language-model parity run (tests/bench/lm_parity.sh).

Reads what lm_parity.lua wrote (initial weights, tokens, the batch and learning rate of every
step), builds the same GPT in PyTorch, trains it on the same batches with torch.optim.AdamW and
the same gradient clipping, and compares the validation loss in bits per byte with lat's.
usage: lm_parity.py DIR [max relative difference, default 0.02]
"""
import json
import math
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

DTYPES = {"F32": np.float32, "I32": np.int32, "U8": np.uint8}


def read_safetensors(path):
    """A reader of its own (no lat code): 8-byte header length, JSON header, raw data."""
    raw = open(path, "rb").read()
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8:8 + n])
    meta = header.pop("__metadata__", {})
    data = raw[8 + n:]
    out = {}
    for name, t in header.items():
        b, e = t["data_offsets"]
        out[name] = np.frombuffer(data[b:e], dtype=DTYPES[t["dtype"]]).reshape(t["shape"]).copy()
    return out, meta


class Block(nn.Module):
    def __init__(self, d, heads):
        super().__init__()
        self.heads = heads
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.qkv, self.out = nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.fc, self.proj = nn.Linear(d, 4 * d), nn.Linear(4 * d, d)

    def forward(self, x):
        B, T, D = x.shape
        hd = D // self.heads
        q, k, v = self.qkv(self.ln1(x)).split(D, dim=-1)
        q, k, v = (t.reshape(B, T, self.heads, hd).transpose(1, 2) for t in (q, k, v))
        s = (q @ k.transpose(-1, -2)) / math.sqrt(hd)
        s = s.masked_fill(torch.ones(T, T, dtype=torch.bool).triu(1), float("-inf"))
        y = (s.softmax(-1) @ v).transpose(1, 2).reshape(B, T, D)
        x = x + self.out(y)
        return x + self.proj(F.gelu(self.fc(self.ln2(x))))


class GPT(nn.Module):
    def __init__(self, vocab, max_len, d, heads, layers):
        super().__init__()
        self.tok, self.pos = nn.Embedding(vocab, d), nn.Embedding(max_len, d)
        self.blocks = nn.ModuleList(Block(d, heads) for _ in range(layers))
        self.ln_f = nn.LayerNorm(d)
        self.head = nn.Linear(d, vocab, bias=False)

    def forward(self, ids):
        x = self.tok(ids) + self.pos(torch.arange(ids.shape[1]))
        for b in self.blocks:
            x = b(x)
        return self.head(self.ln_f(x))


def load_lat_weights(model, tensors):
    """lat's names -> this module's names."""
    names = {"embed.tok.weight": "tok.weight", "embed.pos.weight": "pos.weight",
             "ln_f.weight": "ln_f.weight", "ln_f.bias": "ln_f.bias", "head.weight": "head.weight"}
    for i in range(len(model.blocks)):
        for lat_name, ours in [("ln1", "ln1"), ("ln2", "ln2"), ("attn.qkv", "qkv"), ("attn.out", "out"),
                               ("mlp.fc", "fc"), ("mlp.proj", "proj")]:
            for p in ("weight", "bias"):
                names[f"blocks.{i + 1}.{lat_name}.{p}"] = f"blocks.{i}.{ours}.{p}"
    state = {ours: torch.from_numpy(tensors[lat]) for lat, ours in names.items()}
    model.load_state_dict(state, strict=True)


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
    load_lat_weights(model, init)
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
