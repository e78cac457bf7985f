"""gpt2_lat_step.py: the PyTorch half of gpt2_lat_step.sh: the same LAT step on the same GPT-2
small (tests/gpt2_ref.py, Hugging Face's layout): a clean forward without gradients (lat's PGD
takes the clean activations first), 6 L2 PGD steps on the residual stream after block h.5 (zero
start, gradient normalised per example, step 2.5 * eps / steps, projection onto the per-example
ball), a final forward without gradients, then a training step on the perturbed loss with AdamW.
Prints the seconds of the timed step (after one warm-up step) and the adversarial loss.
usage: gpt2_lat_step.py THREADS [batch len steps layers]"""
import os
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from gpt2_ref import GPT2LMHeadModel, config  # noqa: E402


def main():
    threads = int(sys.argv[1])
    B, T, steps, layers = (int(v) for v in (sys.argv[2:6] if len(sys.argv) > 5 else (4, 128, 6, 12)))
    torch.set_num_threads(threads)
    torch.manual_seed(1)
    c = config("small")
    c["n_layer"] = layers
    model = GPT2LMHeadModel(c)
    V, eps, site = c["vocab_size"], 1.0, 5
    ids, y = torch.randint(0, V, (B, T)), torch.randint(0, V, (B, T))
    delta = None
    model.transformer.h[site].register_forward_hook(lambda m, inp, out: out + delta if delta is not None else out)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5)

    def loss_of():
        return F.cross_entropy(model(ids).reshape(-1, V), y.reshape(-1))

    def step():
        nonlocal delta
        model.eval()
        with torch.no_grad():
            delta = None
            loss_of()
        delta = torch.zeros(B, T, c["n_embd"], requires_grad=True)
        alpha = 2.5 * eps / steps
        for _ in range(steps):
            g, = torch.autograd.grad(-loss_of(), delta)
            with torch.no_grad():
                d = delta - alpha * g / g.norm(dim=(1, 2), keepdim=True).clamp(min=1e-12)
                d = d * (eps / d.norm(dim=(1, 2), keepdim=True).clamp(min=1e-12)).clamp(max=1)
            delta = d.requires_grad_()
        delta = delta.detach()
        with torch.no_grad():
            loss_of()
        model.train()
        opt.zero_grad()
        loss = loss_of()
        loss.backward()
        opt.step()
        delta = None
        return loss.item()

    for i in range(2):
        t0 = time.perf_counter()
        loss = step()
        seconds = time.perf_counter() - t0
        print(f"torch step {i + 1}: {seconds:.2f} s, adversarial loss {loss:.4f}", file=sys.stderr)
    print(f"{seconds:.3f} {loss:.4f}")


if __name__ == "__main__":
    main()
