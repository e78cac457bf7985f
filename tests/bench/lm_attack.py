"""lm_attack.py: the PyTorch half of lm_attack.sh: the same PGD step (forward with a perturbation
added to the residual stream before a block by a forward pre-hook, gradient with respect to the
perturbation alone) on the same architecture; prints the median milliseconds per step.
usage: lm_attack.py THREADS [repeats batch len dim heads layers block]"""
import sys
import time

import torch
import torch.nn.functional as F

from lm_parity import GPT


def main():
    threads = int(sys.argv[1])
    repeats, B, T, D, H, L, block = (int(v) for v in (sys.argv[2:9] if len(sys.argv) > 8 else (20, 32, 128, 128, 4, 4, 2)))
    torch.set_num_threads(threads)
    model = GPT(258, T, D, H, L).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    ids = torch.randint(0, 258, (B, T))
    y = torch.randint(0, 258, (B, T))
    delta = torch.zeros(B, T, D, requires_grad=True)
    model.transformer.h[block - 1].register_forward_pre_hook(lambda m, inp: (inp[0] + delta,))
    times = []
    for i in range(repeats + 3):
        t0 = time.perf_counter()
        loss = F.cross_entropy(model(ids).reshape(-1, 258), y.reshape(-1))
        g, = torch.autograd.grad(loss, delta)
        with torch.no_grad():
            delta += 1e-3 * g
        if i >= 3:
            times.append((time.perf_counter() - t0) * 1000)
    times.sort()
    print(f"{times[(len(times) - 1) // 2]:.3f}")


if __name__ == "__main__":
    main()
