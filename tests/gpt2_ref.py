"""gpt2_ref.py: GPT-2 in plain PyTorch with Hugging Face's parameter names and layout
(transformer.wte/wpe/h.N/ln_f, Conv1D weights [in, out], lm_head tied to wte, gelu_new = the tanh
GELU, layer_norm_epsilon), written here because transformers is not installed; and safetensors
written and read with numpy alone.

As a script it is the PyTorch half of tests/test_gpt2.lua: gpt2_ref.py DIR [tiny|small] writes
DIR/config.json, DIR/model.safetensors (random weights, seed 0), DIR/ids.safetensors (a batch of
token ids and targets) and DIR/torch.safetensors (logits, loss, some gradients, a greedy continuation)."""
import json
import math
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

DTYPES = {"F32": np.float32, "I32": np.int32, "I64": np.int64, "U8": np.uint8}
NAMES = {np.dtype(v): k for k, v in DTYPES.items()}


def read_safetensors(path):
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


def write_safetensors(path, arrays, metadata=None):
    header, blobs, offset = {}, [], 0
    if metadata:
        header["__metadata__"] = metadata
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name]).reshape(np.shape(arrays[name]))  # keeps 0-d arrays 0-d
        blobs.append(a.tobytes())
        header[name] = {"dtype": NAMES[a.dtype], "shape": list(a.shape), "data_offsets": [offset, offset + a.nbytes]}
        offset += a.nbytes
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(len(text).to_bytes(8, "little") + text + b"".join(blobs))


class Conv1D(nn.Module):
    def __init__(self, n_in, n_out):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(n_in, n_out) * 0.02)
        self.bias = nn.Parameter(torch.zeros(n_out))

    def forward(self, x):
        return torch.addmm(self.bias, x.reshape(-1, x.shape[-1]), self.weight).reshape(*x.shape[:-1], -1)


ACT = {"gelu_new": lambda x: F.gelu(x, approximate="tanh"), "gelu_pytorch_tanh": lambda x: F.gelu(x, approximate="tanh"),
       "gelu": F.gelu}


class Attention(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.heads, d = c["n_head"], c["n_embd"]
        self.c_attn, self.c_proj = Conv1D(d, 3 * d), Conv1D(d, d)

    def forward(self, x):
        B, T, D = x.shape
        q, k, v = self.c_attn(x).split(D, dim=-1)
        q, k, v = (t.reshape(B, T, self.heads, D // self.heads).transpose(1, 2) for t in (q, k, v))
        s = (q @ k.transpose(-1, -2)) / math.sqrt(D // self.heads)
        s = s.masked_fill(torch.ones(T, T, dtype=torch.bool).triu(1), float("-inf"))
        return self.c_proj((s.softmax(-1) @ v).transpose(1, 2).reshape(B, T, D))


class MLP(nn.Module):
    def __init__(self, c):
        super().__init__()
        d = c["n_embd"]
        inner = c.get("n_inner") or 4 * d
        self.c_fc, self.c_proj, self.act = Conv1D(d, inner), Conv1D(inner, d), ACT[c["activation_function"]]

    def forward(self, x):
        return self.c_proj(self.act(self.c_fc(x)))


class Block(nn.Module):
    def __init__(self, c):
        super().__init__()
        d, eps = c["n_embd"], c["layer_norm_epsilon"]
        self.ln_1, self.attn, self.ln_2, self.mlp = nn.LayerNorm(d, eps=eps), Attention(c), nn.LayerNorm(d, eps=eps), MLP(c)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class GPT2Model(nn.Module):
    def __init__(self, c):
        super().__init__()
        d = c["n_embd"]
        self.wte, self.wpe = nn.Embedding(c["vocab_size"], d), nn.Embedding(c["n_positions"], d)
        nn.init.normal_(self.wte.weight, std=0.02)
        nn.init.normal_(self.wpe.weight, std=0.02)
        self.h = nn.ModuleList(Block(c) for _ in range(c["n_layer"]))
        self.ln_f = nn.LayerNorm(d, eps=c["layer_norm_epsilon"])

    def forward(self, ids):
        x = self.wte(ids) + self.wpe(torch.arange(ids.shape[1]))
        for b in self.h:
            x = b(x)
        return self.ln_f(x)


class GPT2LMHeadModel(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.transformer = GPT2Model(c)
        self.lm_head = nn.Linear(c["n_embd"], c["vocab_size"], bias=False)
        if c.get("tie_word_embeddings", True):
            self.lm_head.weight = self.transformer.wte.weight

    def forward(self, ids):
        return self.lm_head(self.transformer(ids))

    def load(self, arrays):
        """A state as lat or Hugging Face saves it (a tied lm_head.weight may be left out)."""
        state = {k: torch.from_numpy(v) for k, v in arrays.items()}
        if "lm_head.weight" not in state and self.lm_head.weight is self.transformer.wte.weight:
            state["lm_head.weight"] = state["transformer.wte.weight"]
        self.load_state_dict(state, strict=True)


def config(shape):
    c = {"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"], "activation_function": "gelu_new",
         "layer_norm_epsilon": 1e-5, "n_inner": None, "tie_word_embeddings": True,
         "resid_pdrop": 0.1, "embd_pdrop": 0.1, "attn_pdrop": 0.1}
    if shape == "small":
        c.update(n_layer=12, n_head=12, n_embd=768, n_positions=1024, n_ctx=1024, vocab_size=50257)
    else:
        c.update(n_layer=2, n_head=4, n_embd=32, n_positions=64, n_ctx=64, vocab_size=50257, layer_norm_epsilon=1e-6)
    return c


def save_pretrained(model, c, folder):
    """config.json and model.safetensors as save_pretrained writes them (the tied lm_head left out)."""
    state = {k: v.detach().numpy() for k, v in model.state_dict().items() if k != "lm_head.weight" or not c.get("tie_word_embeddings", True)}
    write_safetensors(folder + "/model.safetensors", state, {"format": "pt"})
    json.dump(c, open(folder + "/config.json", "w"), indent=2)


# the gradients of the loss compared with lat's (wte's holds both of its uses, embedding and lm_head)
GRADS = ["transformer.wte.weight", "transformer.wpe.weight", "transformer.h.0.attn.c_attn.weight",
         "transformer.h.0.ln_1.bias", "transformer.h.1.mlp.c_proj.weight", "transformer.ln_f.weight"]


def main():
    folder, shape = sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else "tiny"
    torch.manual_seed(0)
    torch.set_num_threads(1)
    c = config(shape)
    model = GPT2LMHeadModel(c).eval()
    with torch.no_grad():  # LayerNorms and biases away from 1 and 0, so that a misplaced one shows
        for name, p in model.named_parameters():
            if name.endswith("bias") or "ln_" in name:
                p.add_(torch.randn_like(p) * 0.1)
    save_pretrained(model, c, folder)
    B, T = (4, 128) if shape == "small" else (3, 16)
    ids = torch.randint(0, c["vocab_size"], (B, T))
    y = torch.randint(0, c["vocab_size"], (B, T))
    write_safetensors(folder + "/ids.safetensors", {"ids": ids.int().numpy(), "y": y.int().numpy()})
    logits = model(ids)
    loss = F.cross_entropy(logits.reshape(-1, c["vocab_size"]), y.reshape(-1))
    loss.backward()
    grads = {"grad." + name: p.grad.numpy() for name, p in model.named_parameters() if name in GRADS}
    logits = logits.detach()
    with torch.no_grad():
        seq = ids[:1, :5]
        for _ in range(8):  # greedy continuation of the first five tokens of row 0
            seq = torch.cat([seq, model(seq)[:, -1].argmax(-1, keepdim=True)], 1)
    write_safetensors(folder + "/torch.safetensors", {"logits": logits.numpy(), "loss": loss.detach().reshape(1).numpy(),
                                                     "greedy": seq[0, 5:].int().numpy(), **grads})


if __name__ == "__main__":
    main()
