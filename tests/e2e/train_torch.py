"""Training steps against PyTorch: SGD with momentum (Nesterov, weight decay) and AdamW
(with a step schedule) on the MLP and LeNet samples, from identical initial weights and data.

Each run is `mithril train` on .npy data with --val-split 0 and one batch per epoch, so
every step sees the same samples as PyTorch's step (the order inside the batch only
changes the summation order). After three steps every parameter must agree with
torch.optim's within 1e-5 relative, measured per tensor as ||ours - torch|| / ||torch||;
for SGD also entry by entry (max |ours - torch| / max |torch|). Adam's update divides
each entry by the root of its own squared gradient, so an entry whose gradient is near
zero turns rounding noise into a visible step: PyTorch's own float32 result differs
from its float64 one by 4e-4 entry by entry (1.8e-6 norm-wise) on the MLP case, and by
1.4e-4 when the batch is merely permuted; an entrywise bound would test that noise.
Also checks that gradient-norm clipping matches torch.nn.utils.clip_grad_norm_ and the
step schedule torch.optim.lr_scheduler.StepLR.
"""
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import shared_cache, load_safetensors, save_safetensors  # noqa: E402

TOL = 1e-5




def mlp():
    return nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(), nn.Linear(512, 10))


class LeNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, 5, padding=2)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1 = nn.Linear(400, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, 10)

    def forward(self, x):
        x = torch.max_pool2d(torch.relu(self.conv1(x)), 2)
        x = torch.max_pool2d(torch.relu(self.conv2(x)), 2)
        x = torch.flatten(x, 1)
        return self.fc3(torch.relu(self.fc2(torch.relu(self.fc1(x)))))


CASES = [
    # name, builder, sample, input shape, optimizer, mithril flags, torch optimizer factory, clip
    ("mlp sgd", mlp, "mlp", (32, 784), "sgd", ["--lr", "0.05", "--momentum", "0.9", "--nesterov", "--weight-decay", "0.001"],
     lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.001), 0.0),
    ("mlp adamw clip", mlp, "mlp", (32, 784), "adamw",
     ["--lr", "0.001", "--weight-decay", "0.01", "--clip-norm", "0.5", "--schedule", "step", "--step-size", "2", "--gamma", "0.5"],
     lambda p: torch.optim.AdamW(p, lr=0.001, weight_decay=0.01), 0.5),
    ("lenet sgd", LeNet, "lenet", (16, 1, 28, 28), "sgd", ["--lr", "0.05", "--momentum", "0.9", "--dampening", "0.1"],
     lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9, dampening=0.1), 0.0),
    ("lenet adamw", LeNet, "lenet", (16, 1, 28, 28), "adamw", ["--lr", "0.002", "--weight-decay", "0.05", "--beta1", "0.8"],
     lambda p: torch.optim.AdamW(p, lr=0.002, weight_decay=0.05, betas=(0.8, 0.999)), 0.0),
]
STEPS = 3

# Two outputs with their own losses, weights and reductions, regularization by name pattern,
# and BatchNorm, whose running statistics the training step updates.
TWO_HEADS = """name: two_heads
inputs:
  image: {shape: [N, 1, 6, 6]}
outputs: [a, b]
layers:
  - {op: Conv2d, name: conv, args: {out_channels: 4, kernel_size: 3}, input: image}
  - {op: BatchNorm2d, name: bn}
  - {op: Relu, name: relu}
  - {op: Flatten, name: flat, output: feat}
  - {op: Linear, name: head_a, args: {dimension: 3}, input: feat, output: a}
  - {op: Linear, name: head_b, args: {dimension: 3}, input: feat, output: b}
train:
  loss:
    - {output: a, op: CrossEntropy, weight: 0.7}
    - {output: b, op: CrossEntropy, weight: 0.3, reduction: sum, label_smoothing: 0.1}
  regularize:
    - {l2: 0.01, params: [conv.weight]}
    - {l1: 0.001, params: ["head_*.weight"]}
  optimizer: {kind: sgd, lr: 0.02, momentum: 0.9}
"""


class TwoHeads(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3)
        self.bn = nn.BatchNorm2d(4)
        self.head_a = nn.Linear(64, 3)
        self.head_b = nn.Linear(64, 3)

    def forward(self, x):
        f = torch.flatten(torch.relu(self.bn(self.conv(x))), 1)
        return self.head_a(f), self.head_b(f)


def two_heads_case(mithril, tmp, env, failures):
    torch.manual_seed(0)
    net = TwoHeads()
    rng = np.random.default_rng(2)
    x = rng.standard_normal((24, 1, 6, 6)).astype(np.float32)
    y = rng.integers(0, 3, 24).astype(np.int64)
    d = tempfile.mkdtemp(dir=tmp)
    np.save(os.path.join(d, "x.npy"), x)
    np.save(os.path.join(d, "y.npy"), y)
    init = {k: v.detach().numpy().copy() for k, v in net.state_dict().items() if "num_batches" not in k}
    save_safetensors(os.path.join(d, "init.safetensors"), init)
    model = os.path.join(d, "two_heads.yaml")
    with open(model, "w") as f:
        f.write(TWO_HEADS)
    p = subprocess.run([mithril, "train", model, "--data", os.path.join(d, "x.npy"), "--labels", os.path.join(d, "y.npy"),
                        "--val-split", "0", "--batch-size", "24", "--epochs", str(STEPS), "--weights",
                        os.path.join(d, "init.safetensors"), "-o", os.path.join(d, "run"), "--no-progress"],
                       capture_output=True, text=True, env=env)
    if p.returncode != 0:
        failures.append(f"two heads: mithril train failed:\n{p.stdout}\n{p.stderr}")
        return
    ours = load_safetensors(os.path.join(d, "run", "weights.safetensors"))
    o = torch.optim.SGD(net.parameters(), lr=0.02, momentum=0.9)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    for _ in range(STEPS):
        o.zero_grad()
        a, b = net(xt)
        loss = 0.7 * nn.functional.cross_entropy(a, yt) + 0.3 * nn.functional.cross_entropy(
            b, yt, reduction="sum", label_smoothing=0.1)
        loss = loss + 0.01 * (net.conv.weight ** 2).sum() + 0.001 * (net.head_a.weight.abs().sum() + net.head_b.weight.abs().sum())
        loss.backward()
        o.step()
    worst = 0.0
    for k, v in net.state_dict().items():
        if "num_batches" in k:
            continue
        ref = v.detach().numpy()
        err = float(np.abs(ours[k] - ref).max() / max(np.abs(ref).max(), 1e-12))
        worst = max(worst, err)
        if err > TOL:
            failures.append(f"two heads: {k} differs from torch by {err:.3g}")
    print(f"two heads, weighted losses, L1/L2 regularization, BatchNorm statistics: max relative difference {worst:.3g}")


def main():
    mithril, root = sys.argv[1], sys.argv[2]
    failures = []
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, MITHRIL_CACHE_DIR=shared_cache(tmp))
        for name, build, sample, shape, opt, flags, torch_opt, clip in CASES:
            torch.manual_seed(0)
            net = build().double().float()
            rng = np.random.default_rng(1)
            x = rng.standard_normal(shape).astype(np.float32)
            y = rng.integers(0, 10, shape[0]).astype(np.int64)
            d = tempfile.mkdtemp(dir=tmp)
            np.save(os.path.join(d, "x.npy"), x)
            np.save(os.path.join(d, "y.npy"), y)
            init = {k: v.detach().numpy().copy() for k, v in net.state_dict().items()}
            save_safetensors(os.path.join(d, "init.safetensors"), init)
            cmd = [mithril, "train", os.path.join(root, "samples", sample + ".yaml"), "--data", os.path.join(d, "x.npy"),
                   "--labels", os.path.join(d, "y.npy"), "--val-split", "0", "--batch-size", str(shape[0]), "--epochs",
                   str(STEPS), "--optimizer", opt, "--weights", os.path.join(d, "init.safetensors"), "-o",
                   os.path.join(d, "run"), "--no-progress"] + flags
            p = subprocess.run(cmd, capture_output=True, text=True, env=env)
            if p.returncode != 0:
                failures.append(f"{name}: mithril train failed:\n{p.stdout}\n{p.stderr}")
                continue
            ours = load_safetensors(os.path.join(d, "run", "weights.safetensors"))

            o = torch_opt(net.parameters())
            sched = torch.optim.lr_scheduler.StepLR(o, step_size=2, gamma=0.5) if "--schedule" in flags else None
            xt, yt = torch.from_numpy(x), torch.from_numpy(y)
            for _ in range(STEPS):
                o.zero_grad()
                loss = nn.functional.cross_entropy(net(xt), yt)
                loss.backward()
                if clip:
                    nn.utils.clip_grad_norm_(net.parameters(), clip)
                o.step()
                if sched:
                    sched.step()
            worst = 0.0
            for k, v in net.state_dict().items():
                ref = v.detach().numpy()
                if k not in ours:
                    failures.append(f"{name}: no '{k}' in weights.safetensors")
                    continue
                err = float(np.linalg.norm(ours[k] - ref) / max(np.linalg.norm(ref), 1e-12))
                entry = float(np.abs(ours[k] - ref).max() / max(np.abs(ref).max(), 1e-12))
                moved = float(np.abs(ref - init[k]).max() / max(np.abs(init[k]).max(), 1e-12))
                worst = max(worst, err)
                if err > TOL:
                    failures.append(f"{name}: {k} differs from torch by {err:.3g} (norm-wise; the steps moved it by {moved:.3g})")
                if opt == "sgd" and entry > TOL:
                    failures.append(f"{name}: {k} differs from torch by {entry:.3g} in one entry")
                if moved < 1e-4:
                    failures.append(f"{name}: {k} barely moved ({moved:.3g}); the test would not see a wrong update")
            print(f"{name}: {STEPS} steps, largest norm-wise relative difference from torch {worst:.3g}")
        two_heads_case(mithril, tmp, env, failures)
    if failures:
        print("\n".join(failures))
        sys.exit(1)
    print("all training steps agree with PyTorch")


if __name__ == "__main__":
    main()
