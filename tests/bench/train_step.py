"""train_step.py: the PyTorch half of train_step.sh: the same training step (forward,
cross-entropy, backward, SGD update) on the same architectures; prints the median ms.
usage: train_step.py THREADS gpt|resnet [repeats]"""
import sys
import time

import torch
import torch.nn.functional as F

from attacks import ResNet
from lm_parity import GPT


def main():
    torch.set_num_threads(int(sys.argv[1]))
    which = sys.argv[2]
    repeats = int(sys.argv[3]) if len(sys.argv) > 3 else 10
    if which == "gpt":
        m, V = GPT(258, 128, 128, 4, 4), 258
        x, y = torch.randint(0, 258, (32, 128)), torch.randint(0, 258, (32, 128))
    else:
        m, V = ResNet(), 10
        x, y = torch.rand(128, 1, 28, 28), torch.randint(0, 10, (128,))
    opt = torch.optim.SGD(m.parameters(), lr=0.01)
    times = []
    for i in range(repeats + 3):
        t0 = time.perf_counter()
        opt.zero_grad()
        F.cross_entropy(m(x).reshape(-1, V), y.reshape(-1)).backward()
        opt.step()
        if i >= 3:
            times.append((time.perf_counter() - t0) * 1000)
    times.sort()
    print(f"{times[(len(times) - 1) // 2]:.2f}")


if __name__ == "__main__":
    main()
