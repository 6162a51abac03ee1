#!/usr/bin/env python3
"""End to end: samples/resnet18.yaml (batch 1, 3x224x224) against ResNet-18
written here in PyTorch (Debian's python3-torch; torchvision's layout and
state-dict names, eval mode, random weights and BatchNorm statistics), and
samples/two_tower.yaml (two inputs, two outputs, a skip connection) against
NumPy. References in float64; Mithril in float32. Tolerances: ResNet-18 rtol 1e-4
atol 1e-5 (20 conv layers of float32 accumulation; measured norm-wise error 3e-7),
two-tower rtol 1e-5 atol 1e-5.
"""
import sys
import tempfile

import numpy as np

from harness import Runner

try:
    import torch
    from torch import nn
except ImportError as e:
    sys.exit(f"samples_more.py needs python3-torch for its ResNet-18 reference: {e}")


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        y = self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x)))))
        return torch.relu(y + (self.downsample(x) if self.downsample is not None else x))


class ResNet18(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        widths, cin = [64, 128, 256, 512], 64
        for i, w in enumerate(widths):
            stride = 1 if i == 0 else 2
            setattr(self, f"layer{i + 1}", nn.Sequential(BasicBlock(cin, w, stride), BasicBlock(w, w, 1)))
            cin = w
        self.fc = nn.Linear(512, 1000)

    def forward(self, x):
        x = nn.functional.max_pool2d(torch.relu(self.bn1(self.conv1(x))), 3, 2, 1)
        for i in range(4):
            x = getattr(self, f"layer{i + 1}")(x)
        return self.fc(torch.flatten(x.mean((2, 3), keepdim=True), 1))


def main():
    mithril, root = sys.argv[1], sys.argv[2]
    torch.manual_seed(0)
    net = ResNet18().eval()
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)
    weights = {k: v.numpy() for k, v in net.state_dict().items() if not k.endswith("num_batches_tracked")}
    rng = np.random.default_rng(5)
    x = rng.standard_normal((1, 3, 224, 224)).astype(np.float32)
    with tempfile.TemporaryDirectory() as tmp:
        r = Runner(mithril, tmp)
        out = r.run(open(f"{root}/samples/resnet18.yaml").read(), {"input": x}, weights, name="resnet18")
        if out is not None:
            with torch.no_grad():
                ref = net.double()(torch.from_numpy(x).double()).numpy()
            r.check("resnet18 logits", out["output"], ref, 1e-4, 1e-5)

        f = lambda *s: (rng.standard_normal(s) * 0.3).astype(np.float32)
        w = {"query_proj.weight": f(64, 32), "query_proj.bias": f(64), "item_proj.weight": f(64, 48),
             "item_proj.bias": f(64), "mix.weight": f(64, 64), "mix.bias": f(64), "head.weight": f(1, 64), "head.bias": f(1)}
        q, i = f(3, 32), f(3, 48)
        out = r.run(open(f"{root}/samples/two_tower.yaml").read(), {"query": q, "item": i}, w, name="two_tower")
        if out is not None:
            d = {k: v.astype(np.float64) for k, v in w.items()}
            joint = q @ d["query_proj.weight"].T + d["query_proj.bias"] + i @ d["item_proj.weight"].T + d["item_proj.bias"]
            emb = joint + np.maximum(joint, 0) @ d["mix.weight"].T + d["mix.bias"]
            r.check("two_tower embedding", out["embedding"], emb, 1e-5, 1e-5)
            r.check("two_tower score", out["score"], emb @ d["head.weight"].T + d["head.bias"], 1e-5, 1e-5)
        sys.exit(r.finish())


if __name__ == "__main__":
    main()
