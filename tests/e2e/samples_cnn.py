#!/usr/bin/env python3
"""End to end: samples/lenet.yaml and samples/tiny_resnet.yaml (batch 2) against PyTorch.

The same networks are built in torch (eval mode: BatchNorm uses its running
statistics), given random weights (torch's default initializers, plus random
BatchNorm affine parameters and running statistics so it is not the identity),
and those weights are written under the model's parameter names (PyTorch
state-dict names: `conv1.weight`, `block1.1.running_var`, ...). The reference
is torch's forward pass in float64 on the same float32 weights; Mithril runs in
float32. Tolerance rtol 1e-4, atol 1e-5.

Needs torch (Debian's python3-torch for /usr/bin/python3).
Usage: samples_cnn.py MITHRIL ROOT
"""
import os
import sys
import tempfile

import numpy as np

from harness import Runner, torch_weights

RTOL, ATOL = 1e-4, 1e-5

try:
    import torch
    from torch import nn
except ImportError as e:
    print(f"samples_cnn.py needs torch for its reference (apt install python3-torch, run with /usr/bin/python3): {e}")
    sys.exit(1)


class LeNet(nn.Module):
    """samples/lenet.yaml."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, 5, padding=2)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1 = nn.Linear(400, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, 10)

    def forward(self, x):
        x = nn.functional.max_pool2d(torch.relu(self.conv1(x)), 2)
        x = nn.functional.max_pool2d(torch.relu(self.conv2(x)), 2)
        x = torch.flatten(x, 1)
        return self.fc3(torch.relu(self.fc2(torch.relu(self.fc1(x)))))


class ResBlock(nn.Module):
    """The sample's ResBlock; its unnamed layers are named by position (0 conv1, 1 bn1, 2 relu, 3 conv2, 4 add)."""

    def __init__(self, channels=16):
        super().__init__()
        self.add_module("0", nn.Conv2d(channels, channels, 3, padding=1))
        self.add_module("1", nn.BatchNorm2d(channels))
        self.add_module("3", nn.Conv2d(channels, channels, 3, padding=1))

    def forward(self, x):
        m = self._modules
        return x + m["3"](torch.relu(m["1"](m["0"](x))))


class TinyResNet(nn.Module):
    """samples/tiny_resnet.yaml."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 16, 3, padding=1)
        self.block1 = ResBlock()
        self.block2 = ResBlock()
        self.head = nn.Linear(16, 10)

    def forward(self, x):
        x = self.block2(self.block1(self.stem(x)))
        x = nn.functional.adaptive_avg_pool2d(x, 1)
        return self.head(torch.flatten(x, 1))


def randomize_batchnorm(net, gen):
    for mod in net.modules():
        if isinstance(mod, nn.BatchNorm2d):
            c = mod.num_features
            with torch.no_grad():
                mod.weight.copy_(torch.rand(c, generator=gen) + 0.5)
                mod.bias.copy_(torch.rand(c, generator=gen) - 0.5)
                mod.running_mean.copy_(torch.rand(c, generator=gen) - 0.5)
                mod.running_var.copy_(torch.rand(c, generator=gen) + 0.5)


def main():
    mithril, root = sys.argv[1], sys.argv[2]
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(1)
    cases = [("lenet", LeNet(), "input", (2, 1, 28, 28), "output"),
             ("tiny_resnet", TinyResNet(), "image", (2, 3, 32, 32), "logits")]
    with tempfile.TemporaryDirectory() as tmp:
        r = Runner(mithril, tmp)
        for name, net, in_name, in_shape, out_name in cases:
            randomize_batchnorm(net, gen)
            net.eval()
            weights = torch_weights(net)
            x = torch.randn(in_shape, generator=gen).numpy().astype(np.float32)
            with torch.no_grad():
                ref = net.double()(torch.from_numpy(x).double()).numpy()
            with open(os.path.join(root, "samples", f"{name}.yaml")) as f:
                text = f.read()
            got = r.run(text, {in_name: x}, weights, name=name)
            g = None if got is None else got.get(out_name)
            if g is not None and g.shape == ref.shape:
                print(f"{name}: max abs error {np.abs(g.astype(np.float64) - ref).max():.3g} "
                      f"(outputs up to {np.abs(ref).max():.3g})")
            r.check(f"{name} batch 2 {out_name}", g, ref, RTOL, ATOL)
        return r.finish()


if __name__ == "__main__":
    sys.exit(main())
