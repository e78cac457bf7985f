"""train_step.py: the PyTorch half of train_step.sh: the same training step (forward,
cross-entropy, backward, SGD update) on the same architectures; prints the median ms.
usage: train_step.py THREADS gpt|resnet [repeats]"""
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

from lm_parity import GPT


class Block(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.c1, self.b1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout)
        self.c2, self.b2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout)
        self.sc = None
        if stride != 1 or cin != cout:
            self.sc = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        y = self.b2(self.c2(F.relu(self.b1(self.c1(x)))))
        return F.relu(y + (self.sc(x) if self.sc is not None else x))


def resnet():
    layers, cin = [nn.Conv2d(1, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU()], 16
    for s, c in enumerate((16, 32, 64)):
        for b in range(2):
            layers.append(Block(cin, c, 2 if (b == 0 and s > 0) else 1))
            cin = c
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(cin, 10))


def main():
    torch.set_num_threads(int(sys.argv[1]))
    which = sys.argv[2]
    repeats = int(sys.argv[3]) if len(sys.argv) > 3 else 10
    if which == "gpt":
        m, V = GPT(258, 128, 128, 4, 4), 258
        x, y = torch.randint(0, 258, (32, 128)), torch.randint(0, 258, (32, 128))
    else:
        m, V = resnet(), 10
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
