"""pretrained_ref.py train DIR: a small torchvision-layout ResNet (one BasicBlock per stage,
widths 16-128, a 3x3 one-channel stem without max-pool) trained in PyTorch for 2 epochs on 2000
Fashion-MNIST images ($LAT_DATA), saved as DIR/torch_resnet.safetensors.
pretrained_ref.py check DIR CKPT: loads CKPT (written by lat) into the same architecture with
strict=True and writes its eval-mode logits on the first 64 test images to DIR/torch_logits.safetensors."""
import gzip
import os
import sys

import numpy as np
import torch
from torchvision.models.resnet import BasicBlock, ResNet

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gpt2_ref import read_safetensors, write_safetensors  # noqa: E402

DATA = os.path.join(os.environ.get("LAT_DATA", "data"), "fashion-mnist")


def idx(name):
    raw = gzip.open(os.path.join(DATA, name)).read()
    ndim = raw[3]
    shape = [int.from_bytes(raw[4 + 4 * k:8 + 4 * k], "big") for k in range(ndim)]
    return np.frombuffer(raw[4 + 4 * ndim:], dtype=np.uint8).reshape(shape)


def model():
    m = ResNet(BasicBlock, [1, 1, 1, 1], num_classes=10, width_per_group=64)
    # widths 16..128 instead of 64..512, a small-image stem: torchvision's classes, its names
    m.inplanes = 16
    m.conv1 = torch.nn.Conv2d(1, 16, 3, 1, 1, bias=False)
    m.bn1 = torch.nn.BatchNorm2d(16)
    m.maxpool = torch.nn.Identity()
    m.layer1 = m._make_layer(BasicBlock, 16, 1)
    m.layer2 = m._make_layer(BasicBlock, 32, 1, stride=2)
    m.layer3 = m._make_layer(BasicBlock, 64, 1, stride=2)
    m.layer4 = m._make_layer(BasicBlock, 128, 1, stride=2)
    m.fc = torch.nn.Linear(128, 10)
    return m


folder = sys.argv[2]
torch.manual_seed(0)
if sys.argv[1] == "train":
    x = torch.from_numpy(idx("train-images-idx3-ubyte.gz")[:2000].astype(np.float32) / 255).unsqueeze(1)
    y = torch.from_numpy(idx("train-labels-idx1-ubyte.gz")[:2000].astype(np.int64))
    m = model()
    opt = torch.optim.SGD(m.parameters(), lr=0.05, momentum=0.9)
    for _ in range(2):
        perm = torch.randperm(2000)
        for k in range(0, 2000, 64):
            b = perm[k:k + 64]
            opt.zero_grad()
            torch.nn.functional.cross_entropy(m(x[b]), y[b]).backward()
            opt.step()
    write_safetensors(os.path.join(folder, "torch_resnet.safetensors"), {k: v.numpy() for k, v in m.state_dict().items()})
else:
    arrays, _ = read_safetensors(sys.argv[3])
    m = model()
    m.load_state_dict({k: torch.from_numpy(v) for k, v in arrays.items()}, strict=True)
    m.eval()
    x = torch.from_numpy(idx("t10k-images-idx3-ubyte.gz")[:64].astype(np.float32) / 255).unsqueeze(1)
    with torch.no_grad():
        write_safetensors(os.path.join(folder, "torch_logits.safetensors"), {"logits": m(x).numpy()})
