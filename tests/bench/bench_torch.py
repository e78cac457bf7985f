"""bench_torch.py: PyTorch side of lat's benchmarks (see run.sh). Prints one line per workload:
'name<TAB>median_ms'. Usage: bench_torch.py THREADS [REPEATS]."""
import math
import statistics
import sys
import time

import torch
import torch.nn.functional as F


BLOCK = 0.1  # seconds: a repeat is a block of calls timed as a whole, as in bench.lua


def timeit(fn, repeats, warmup=3):
    t0 = time.perf_counter()
    for _ in range(warmup):
        fn()
    calls = max(1, math.ceil(BLOCK / ((time.perf_counter() - t0) / warmup)))
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(calls):
            fn()
        ts.append((time.perf_counter() - t0) / calls)
    return statistics.median(ts) * 1000


def main():
    threads = int(sys.argv[1])
    repeats = int(sys.argv[2]) if len(sys.argv) > 2 else 10
    only = sys.argv[3].split(",") if len(sys.argv) > 3 else None
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    work = {}

    a, b = torch.randn(1024, 1024), torch.randn(1024, 1024)
    work["matmul 1024^3"] = lambda: a @ b

    x = torch.randn(128, 784, requires_grad=True)
    w = torch.randn(256, 784, requires_grad=True)
    bias = torch.randn(256, requires_grad=True)
    g = torch.randn(128, 256)

    def linear():
        y = F.linear(x, w, bias)
        torch.autograd.grad(y, [x, w, bias], g)
    work["linear 128x784->256 f+b"] = linear

    def conv_case(c, o, wrt):
        xc = torch.randn(128, c, 28, 28, requires_grad=True)
        wc = (torch.randn(o, c, 3, 3) * 0.1).requires_grad_(True)
        bc = torch.randn(o, requires_grad=True)
        gc = torch.randn(128, o, 28, 28)
        ins = {"x": xc, "w": wc, "b": bc}
        targets = [ins[k] for k in wrt]

        def run():
            y = F.conv2d(xc, wc, bc, padding=1)
            torch.autograd.grad(y, targets, gc)
        return run
    work["conv 1->32 f+b (x,w,b)"] = conv_case(1, 32, "xwb")
    work["conv 32->64 f+b (x,w,b)"] = conv_case(32, 64, "xwb")
    work["conv 1->32 f+b (x only)"] = conv_case(1, 32, "x")
    work["conv 32->64 f+b (x only)"] = conv_case(32, 64, "x")

    xp = torch.randn(128, 32, 28, 28, requires_grad=True)
    gp = torch.randn(128, 32, 14, 14)
    work["max_pool2d 2x2 f+b"] = lambda: torch.autograd.grad(F.max_pool2d(xp, 2), [xp], gp)
    work["avg_pool2d 2x2 f+b"] = lambda: torch.autograd.grad(F.avg_pool2d(xp, 2), [xp], gp)

    xe, ye = torch.randn(128, 32, 14, 14), torch.randn(128, 32, 14, 14)
    be = torch.randn(1, 32, 1, 1)
    dims = (1, 2, 3)
    work["clamp 128x32x14x14"] = lambda: xe.clamp(-0.5, 0.5)
    work["add 128x32x14x14"] = lambda: xe + ye
    work["add broadcast 1x32x1x1"] = lambda: xe + be
    work["mul scalar 128x32x14x14"] = lambda: xe * 0.5
    work["norm per example"] = lambda: xe.norm(2, dims, True)
    work["l2 project per example"] = lambda: xe * (2.0 / xe.norm(2, dims, True).clamp(1e-12)).clamp(max=1)

    for name, fn in work.items():
        if only and not any(o in name for o in only):
            continue
        print(f"{name}\t{timeit(fn, repeats):.3f}", flush=True)


if __name__ == "__main__":
    main()
