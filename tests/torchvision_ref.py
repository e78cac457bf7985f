"""torchvision_ref.py DIR: torchvision's resnet18 with random weights and random batch-norm
running statistics, in eval mode, saved as DIR/resnet18.safetensors (its state_dict as it is,
num_batches_tracked int64 included), with a batch DIR/input.safetensors and its logits
DIR/logits.safetensors; then, if DIR/lat_resnet18.safetensors exists, loads it back into a new
resnet18 with strict=True and writes the logits it gives as DIR/roundtrip.safetensors."""
import os
import sys

import numpy as np
import torch
import torchvision

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gpt2_ref import read_safetensors, write_safetensors  # noqa: E402

folder = sys.argv[1]
torch.manual_seed(7)
x = torch.rand(2, 3, 64, 64)
if os.path.exists(os.path.join(folder, "lat_resnet18.safetensors")):
    arrays, _ = read_safetensors(os.path.join(folder, "lat_resnet18.safetensors"))
    m = torchvision.models.resnet18()
    m.load_state_dict({k: torch.from_numpy(v) for k, v in arrays.items()}, strict=True)
    m.eval()
    with torch.no_grad():
        write_safetensors(os.path.join(folder, "roundtrip.safetensors"), {"logits": m(x).numpy()})
    sys.exit(0)

m = torchvision.models.resnet18()
with torch.no_grad():
    for mod in m.modules():
        if isinstance(mod, torch.nn.BatchNorm2d):
            mod.running_mean.uniform_(-0.2, 0.2)
            mod.running_var.uniform_(0.5, 1.5)
            mod.weight.uniform_(0.5, 1.5)
            mod.bias.uniform_(-0.1, 0.1)
            mod.num_batches_tracked.fill_(3)
m.eval()
with torch.no_grad():
    logits = m(x)
write_safetensors(os.path.join(folder, "resnet18.safetensors"), {k: v.numpy() for k, v in m.state_dict().items()})
write_safetensors(os.path.join(folder, "input.safetensors"), {"x": x.numpy()})
write_safetensors(os.path.join(folder, "logits.safetensors"), {"logits": logits.numpy()})
