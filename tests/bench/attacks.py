"""attacks.py: the PyTorch half of attacks.sh: the workloads of attacks.lua, written as a PyTorch
user would: a forward hook adds the perturbation at the site, every step runs the whole model,
torch.autograd.grad takes the gradient with respect to the perturbation alone (the weights do not
require gradients during an attack). Prints 'name<TAB>median ms' per workload.
usage: attacks.py THREADS [repeats [only [--memory]]]
With --memory: 'name<TAB>MiB', the peak resident memory while the workloads ran less the resident
memory before them (see attacks.lua)."""
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

from lm_parity import GPT


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout)
        self.conv2, self.bn2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        y = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        return F.relu(y + (self.downsample(x) if self.downsample is not None else x))


class ResNet(nn.Module):
    """lat.models.ResNet{widths = {16, 32, 64}, blocks = {2, 2, 2}} in torchvision's layout"""

    def __init__(self):
        super().__init__()
        self.conv1, self.bn1, self.relu = nn.Conv2d(1, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU()
        cin = 16
        for i, c in enumerate((16, 32, 64)):
            blocks = [BasicBlock(cin if b == 0 else c, c, 2 if (b == 0 and i > 0) else 1) for b in range(2)]
            setattr(self, f"layer{i + 1}", nn.Sequential(*blocks))
            cin = c
        self.fc = nn.Linear(64, 10)

    def forward(self, x):
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(x.mean((2, 3)))


class SmallCNN(nn.Module):
    def __init__(self, w=32):
        super().__init__()
        self.block1 = nn.Sequential(nn.Conv2d(1, w, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
        self.block2 = nn.Sequential(nn.Conv2d(w, 2 * w, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
        self.fc = nn.Linear(2 * w * 49, 10)

    def forward(self, x):
        return self.fc(self.block2(self.block1(x)).flatten(1))


NAMES = ["resnet pgd relu (early)", "resnet pgd layer2 (middle)", "resnet pgd layer3 (late)", "resnet pgd input",
         "gpt pgd h.0 (early)", "gpt pgd h.1 (middle)", "gpt pgd h.3 (late)", "smallcnn pgd block1",
         "resnet LAT step layer2", "resnet AT step input"]


def loss_of(out, y):
    return F.cross_entropy(out.reshape(-1, out.shape[-1]), y.reshape(-1))


def l2_norm(d):
    return d.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, *([1] * (d.dim() - 1)))


def pgd(model, x, y, site, eps, steps):
    """L2 PGD from zero at the output of module `site` (None: the input); returns the perturbation"""
    alpha = 2.5 * eps / steps
    state = {"delta": None}

    def add(_m, _inp, out):
        if state["delta"] is None:
            state["delta"] = torch.zeros_like(out, requires_grad=True)
        return out + state["delta"]

    handle = site.register_forward_hook(add) if site is not None else None
    if site is None:
        state["delta"] = torch.zeros_like(x, requires_grad=True)

    def forward():
        return model(x + state["delta"]) if site is None else model(x)

    for _ in range(steps):
        g, = torch.autograd.grad(loss_of(forward(), y), state["delta"])
        with torch.no_grad():
            d = state["delta"] + alpha * g / l2_norm(g)
            d = d * (eps / l2_norm(d)).clamp(max=1)
        state["delta"] = d.requires_grad_()
    with torch.no_grad():
        forward()  # the final perturbation's effect
    if handle is not None:
        handle.remove()
    return state["delta"].detach()


def train_step(model, opt, x, y, site, eps):
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    delta = pgd(model, x, y, site, eps, 5)
    for p in model.parameters():
        p.requires_grad_(True)
    model.train()
    if site is None:
        out = model(x + delta)
    else:
        handle = site.register_forward_hook(lambda _m, _i, out: out + delta)
        out = model(x)
        handle.remove()
    opt.zero_grad()
    loss_of(out, y).backward()
    opt.step()


def status_kb(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])


def timeit(fn, repeats):
    fn()
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        ts.append((time.perf_counter() - t0) * 1000)
    ts.sort()
    n = len(ts)
    return ts[n // 2] if n % 2 else (ts[n // 2 - 1] + ts[n // 2]) / 2


def main():
    torch.set_num_threads(int(sys.argv[1]))
    repeats = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    only = sys.argv[3] if len(sys.argv) > 3 else ""
    memory = len(sys.argv) > 4 and sys.argv[4] == "--memory"
    torch.manual_seed(2)
    x, y = torch.rand(128, 1, 28, 28), torch.randint(0, 10, (128,))
    ids, next_ids = torch.randint(0, 258, (32, 128)), torch.randint(0, 258, (32, 128))
    net, gpt, cnn = ResNet().eval(), GPT(258, 128, 128, 4, 4).eval(), SmallCNN().eval()
    for m in (net, gpt, cnn):
        for p in m.parameters():
            p.requires_grad_(False)
    h = gpt.transformer.h

    def attack(model, inputs, labels, site, eps):
        return lambda: pgd(model, inputs, labels, site, eps, 10)

    def step(where):
        def run():
            train_step(state["model"], state["opt"], x, y, where(state["model"]), 2.0 if where(state["model"]) is not None else 0.5)
        state = {}
        state["model"] = ResNet()
        state["opt"] = torch.optim.SGD(state["model"].parameters(), lr=0.01)
        return run

    makers = [
        lambda: attack(net, x, y, net.relu, 2.0),
        lambda: attack(net, x, y, net.layer2, 2.0),
        lambda: attack(net, x, y, net.layer3, 2.0),
        lambda: attack(net, x, y, None, 0.5),
        lambda: attack(gpt, ids, next_ids, h[0], 4.0),
        lambda: attack(gpt, ids, next_ids, h[1], 4.0),
        lambda: attack(gpt, ids, next_ids, h[3], 4.0),
        lambda: attack(cnn, x, y, cnn.block1, 2.0),
        lambda: step(lambda m: m.layer2),
        lambda: step(lambda m: None),
    ]
    workloads = zip(NAMES, makers)
    rss_before = status_kb("VmRSS")
    for name, make in workloads:
        if only in name:
            ms = timeit(make(), repeats)
            if memory:
                print(f"{name}\t{(status_kb('VmHWM') - rss_before) / 1024:.1f}", flush=True)
            else:
                print(f"{name}\t{ms:.2f}", flush=True)


if __name__ == "__main__":
    main()
