#!/usr/bin/env python3
"""End to end: training mode (`--mode train`) against PyTorch's train mode.

One model, built twice (train and eval; every other run reuses the cached
builds, as --seed is a run-time argument):
  x [4, 3, 6, 6] -> Conv2d(5, 3x3, padding 1) -> BatchNorm2d(eps 1e-3, momentum 0.3) -> Relu -> y
  ones [40000]   -> Dropout(p 0.25) -> d

BatchNorm2d, train: the output and the updated running_mean / running_var
(read back from --save-weights) against torch.nn.BatchNorm2d in train mode,
computed in float64 on the same float32 weights (rtol 1e-4, atol 1e-5). Eval:
the output against torch's eval mode and the running statistics unchanged.

Dropout, train: about p of the elements are zero (within 0.02 on 40,000),
every survivor is 1/(1-p); the same seed gives the same output, another seed a
different one. Eval: the identity.

Needs torch (Debian's python3-torch for /usr/bin/python3).
Usage: training_mode.py MITHRIL ROOT
"""
import os
import sys
import tempfile

import numpy as np

from harness import Runner, load_safetensors, model_yaml

RTOL, ATOL = 1e-4, 1e-5
P = 0.25
EPS, MOMENTUM = 1e-3, 0.3

try:
    import torch
    from torch import nn
except ImportError as e:
    print(f"training_mode.py needs torch for its reference (apt install python3-torch, run with /usr/bin/python3): {e}")
    sys.exit(1)




class Reference(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 5, 3, padding=1)
        self.bn = nn.BatchNorm2d(5, eps=EPS, momentum=MOMENTUM)

    def forward(self, x):
        return torch.relu(self.bn(self.conv(x)))


def main():
    mithril, _root = sys.argv[1], sys.argv[2]
    rng = np.random.default_rng(7)
    x = rng.uniform(-1, 1, (4, 3, 6, 6)).astype(np.float32)
    ones = np.ones(40000, np.float32)
    weights = {
        "conv.weight": rng.uniform(-0.5, 0.5, (5, 3, 3, 3)).astype(np.float32),
        "conv.bias": rng.uniform(-0.5, 0.5, (5,)).astype(np.float32),
        "bn.weight": rng.uniform(0.5, 1.5, (5,)).astype(np.float32),
        "bn.bias": rng.uniform(-0.5, 0.5, (5,)).astype(np.float32),
        "bn.running_mean": rng.uniform(-0.5, 0.5, (5,)).astype(np.float32),
        "bn.running_var": rng.uniform(0.5, 2.0, (5,)).astype(np.float32),
    }
    text = model_yaml("training_mode", {"x": x, "ones": ones}, [
        "{op: Conv2d, name: conv, input: x, output: c, args: {out_channels: 5, kernel_size: 3, padding: 1}}",
        f"{{op: BatchNorm2d, name: bn, input: c, output: b, args: {{eps: {EPS}, momentum: {MOMENTUM}}}}}",
        "{op: Relu, input: b, output: y}",
        f"{{op: Dropout, name: drop, input: ones, output: d, args: {{p: {P}}}}}",
    ], ["y", "d"])

    def torch_ref(train):
        m = Reference().double()
        m.load_state_dict({k: torch.from_numpy(v.astype(np.float64)) for k, v in weights.items()}, strict=False)
        m.train(train)
        with torch.no_grad():
            out = m(torch.from_numpy(x.astype(np.float64))).numpy()
        return out, m.bn.running_mean.numpy(), m.bn.running_var.numpy()

    with tempfile.TemporaryDirectory() as tmp:
        r = Runner(mithril, tmp)
        inputs = {"x": x, "ones": ones}

        def run(mode, seed, tag):
            saved = os.path.join(tmp, f"saved_{tag}.safetensors")
            got = r.run(text, inputs, weights, ["--mode", mode, "--seed", str(seed), "--save-weights", saved],
                        name=f"training_mode_{tag}")
            return got, (load_safetensors(saved) if got is not None and os.path.exists(saved) else None)

        # ---- train -----------------------------------------------------------
        got, saved = run("train", 1, "train1")
        want, want_mean, want_var = torch_ref(True)
        if got is not None:
            r.check("train: Conv2d -> BatchNorm2d -> Relu output (batch statistics)", got.get("y"), want, RTOL, ATOL)
            if saved is None:
                r.failures.append("train: --save-weights wrote nothing")
            else:
                r.check("train: updated bn.running_mean", saved.get("bn.running_mean"), want_mean, RTOL, ATOL)
                r.check("train: updated bn.running_var (unbiased batch variance)", saved.get("bn.running_var"),
                        want_var, RTOL, ATOL)
                r.check("train: bn.weight unchanged", saved.get("bn.weight"), weights["bn.weight"], 0, 0)
            d = got.get("d")
            if d is None or d.shape != ones.shape:
                r.failures.append(f"train: Dropout output shape {None if d is None else d.shape}, expected {ones.shape}")
            else:
                zeros = float(np.mean(d == 0))
                survivors = d[d != 0]
                scale = np.float32(1 / (1 - P))
                if abs(zeros - P) <= 0.02:
                    print(f"ok   train: Dropout zeroes {zeros:.4f} of the elements (p = {P})")
                else:
                    r.failures.append(f"train: Dropout zeroes {zeros:.4f} of the elements, expected {P} +- 0.02")
                r.check("train: Dropout survivors scaled by 1/(1-p)", survivors, np.full(survivors.shape, scale),
                        1e-6, 0)

                again, _ = run("train", 1, "train1_again")
                other, _ = run("train", 2, "train2")
                if again is not None:
                    if np.array_equal(again.get("d"), d):
                        print("ok   train: Dropout is deterministic for a seed")
                    else:
                        r.failures.append("train: Dropout gives different outputs for the same --seed")
                    r.check("train: BatchNorm output repeats", again.get("y"), got.get("y"), 0, 0)
                if other is not None:
                    od = other.get("d")
                    if od is not None and not np.array_equal(od, d) and abs(float(np.mean(od == 0)) - P) <= 0.02:
                        print("ok   train: another --seed gives another Dropout mask")
                    else:
                        r.failures.append("train: --seed 2 gives the same Dropout output as --seed 1 (or a wrong rate)")

        # ---- eval --------------------------------------------------------------
        got, saved = run("eval", 1, "eval")
        want, _, _ = torch_ref(False)
        if got is not None:
            r.check("eval: Conv2d -> BatchNorm2d -> Relu output (running statistics)", got.get("y"), want, RTOL, ATOL)
            r.check("eval: Dropout is the identity", got.get("d"), ones, 0, 0)
            if saved is None:
                r.failures.append("eval: --save-weights wrote nothing")
            else:
                r.check("eval: bn.running_mean unchanged", saved.get("bn.running_mean"), weights["bn.running_mean"], 0, 0)
                r.check("eval: bn.running_var unchanged", saved.get("bn.running_var"), weights["bn.running_var"], 0, 0)

        return r.finish()


if __name__ == "__main__":
    sys.exit(main())
