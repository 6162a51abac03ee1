#!/usr/bin/env python3
"""End to end: the layout pass (channels-last for the convolutions whose kernels gain by it) against
PyTorch, and against the same program built with --no-pass layout.

One model, batch 2, an odd 15 x 13 image, 72 channels (a whole block of 64 channels and a rest of 8
in the depthwise kernel), BatchNorm in eval mode with random running statistics:
  stem: Conv2d 8->72 1x1 with bias, BatchNorm, ReLU                    -> h1
  dw1:  depthwise 3x3 pad 1 with bias, BatchNorm, ReLU                  -> h2
  pw1:  Conv2d 72->72 1x1 without bias, BatchNorm, + h1 (residual)      -> r1  (a model output, read by dw2 too)
  dw2:  depthwise 3x3 stride 2 padding 2 dilation 2, ReLU               -> h4
  pw2:  Conv2d 72->16 1x1                                               -> h5  (a model output, read by dense)
  dense: Conv2d 16->8 3x3 pad 1 (no channels-last kernel)               -> h6
  gap: GlobalAvgPool2d of h4                                            -> g

Checked:
  - `mithril check --dump-ir layout` puts stem, dw1, pw1 and dw2 channels-last (attribute layout
    NHWC), leaves `dense` channels-first (no channels-last kernel) and pw2 too: h4 needs a
    channels-first copy for gap anyway, which pw2 then reads, while channels-last pw2 would add a
    transpose of h5 for dense and the output (a pointwise convolution is as fast either way). The
    transposes: the model's input once (Permute [0, 2, 3, 1]) and channels-first copies of r1 (an
    output) and h4 only (Permute [0, 3, 1, 2]), none of h1 or h2;
  - every output against PyTorch's float64 forward pass on the same float32 weights: rtol 1e-4,
    atol 1e-5 (float32 sums of at most 72 products);
  - every output against --no-pass layout: rtol 1e-5, atol 1e-6 (the same products summed in
    another order);
  - the pass leaves a model without depthwise or pointwise convolutions alone (samples/tiny_resnet.yaml:
    no NHWC, no Permute) and programs with gradients too (`--grad`).

Needs torch (Debian's python3-torch for /usr/bin/python3).
Usage: layout.py MITHRIL ROOT
"""
import os
import subprocess
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Runner, randomize_batchnorm, torch_weights  # noqa: E402

try:
    import torch
    from torch import nn
except ImportError as e:
    print(f"layout.py needs torch for its reference (apt install python3-torch, run with /usr/bin/python3): {e}")
    sys.exit(1)

MODEL = """
name: separable
inputs:
  x: {shape: [N, 8, 15, 13]}
outputs: [r1, h5, h6, g]
layers:
  - {op: Conv2d, name: stem, args: {out_channels: 72, kernel_size: 1}, input: x, output: c0}
  - {op: BatchNorm2d, name: stem_bn, input: c0, output: b0}
  - {op: Relu, input: b0, output: h1}
  - {op: Conv2d, name: dw1, args: {out_channels: 72, kernel_size: 3, padding: 1, groups: 72}, input: h1, output: c1}
  - {op: BatchNorm2d, name: dw1_bn, input: c1, output: b1}
  - {op: Relu, input: b1, output: h2}
  - {op: Conv2d, name: pw1, args: {out_channels: 72, kernel_size: 1, bias: false}, input: h2, output: c2}
  - {op: BatchNorm2d, name: pw1_bn, input: c2, output: b2}
  - {op: Add, left: b2, right: h1, output: r1}
  - {op: Conv2d, name: dw2, args: {out_channels: 72, kernel_size: 3, stride: 2, padding: 2, dilation: 2, groups: 72}, input: r1, output: c3}
  - {op: Relu, input: c3, output: h4}
  - {op: Conv2d, name: pw2, args: {out_channels: 16, kernel_size: 1}, input: h4, output: h5}
  - {op: Conv2d, name: dense, args: {out_channels: 8, kernel_size: 3, padding: 1}, input: h5, output: h6}
  - {op: GlobalAvgPool2d, name: gap, input: h4, output: g}
"""
OUTPUTS = ["r1", "h5", "h6", "g"]
RTOL, ATOL = 1e-4, 1e-5
SAME_RTOL, SAME_ATOL = 1e-5, 1e-6


class Separable(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(8, 72, 1)
        self.stem_bn = nn.BatchNorm2d(72)
        self.dw1 = nn.Conv2d(72, 72, 3, padding=1, groups=72)
        self.dw1_bn = nn.BatchNorm2d(72)
        self.pw1 = nn.Conv2d(72, 72, 1, bias=False)
        self.pw1_bn = nn.BatchNorm2d(72)
        self.dw2 = nn.Conv2d(72, 72, 3, stride=2, padding=2, dilation=2, groups=72)
        self.pw2 = nn.Conv2d(72, 16, 1)
        self.dense = nn.Conv2d(16, 8, 3, padding=1)

    def forward(self, x):
        h1 = torch.relu(self.stem_bn(self.stem(x)))
        h2 = torch.relu(self.dw1_bn(self.dw1(h1)))
        r1 = self.pw1_bn(self.pw1(h2)) + h1
        h4 = torch.relu(self.dw2(r1))
        h5 = self.pw2(h4)
        h6 = self.dense(h5)
        g = h4.mean(dim=(2, 3), keepdim=True)
        return [r1, h5, h6, g]


def dump(mithril, path, *extra):
    res = subprocess.run([mithril, "check", path, "--shape", "N=2", "--dump-ir", "layout", *extra],
                         capture_output=True, text=True)
    return res.returncode, res.stdout + res.stderr


def layer_line(lines, op, layer):
    found = [ln for ln in lines if f"= {op}(" in ln and ln.rstrip().endswith(f"# {layer}")]
    return found[0] if found else None


def main():
    mithril, root = sys.argv[1], sys.argv[2]
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(3)
    net = Separable()
    for bn in [net.stem_bn, net.dw1_bn, net.pw1_bn]:
        randomize_batchnorm(torch, bn, gen)
    net.eval()
    weights = torch_weights(net)
    x = torch.randn((2, 8, 15, 13), generator=gen).numpy().astype(np.float32)
    with torch.no_grad():
        ref = [t.numpy() for t in net.double()(torch.from_numpy(x).double())]

    with tempfile.TemporaryDirectory() as tmp:
        r = Runner(mithril, tmp)
        path = os.path.join(tmp, "separable.yaml")
        with open(path, "w") as f:
            f.write(MODEL)
        rc, ir = dump(mithril, path)
        if rc != 0:
            r.failures.append(f"mithril check --dump-ir layout exited {rc}: {ir}")
        else:
            lines = ir.splitlines()
            for layer, nhwc in [("stem", True), ("dw1", True), ("pw1", True), ("dw2", True), ("pw2", False),
                                ("dense", False)]:
                line = layer_line(lines, "Conv2d", layer)
                if line is None or ('"layout":"NHWC"' in line) != nhwc:
                    r.failures.append(f"--dump-ir layout: {layer} should {'' if nhwc else 'not '}be channels-last:\n{ir}")
                else:
                    print(f"ok   --dump-ir layout: {layer} {'channels-last' if nhwc else 'channels-first'}")
            permutes = sorted(ln.rstrip().split("# ")[-1] for ln in lines if "= Permute(" in ln)
            # The input once (named after it); back to channels-first: r1 (an output; dw2 reads the
            # channels-last one) and h4 (gap and pw2).
            want = sorted(["x.to_nhwc", "pw1.to_nchw", "dw2.to_nchw"])
            if permutes != want:
                r.failures.append(f"--dump-ir layout: transposes {permutes}, expected {want}:\n{ir}")
            else:
                print(f"ok   --dump-ir layout: transposes only at the boundaries ({', '.join(permutes)})")
        # Left alone: dense 3x3 convolutions only; and programs with gradients.
        rc, ir = dump(mithril, os.path.join(root, "samples", "tiny_resnet.yaml"))
        if rc != 0 or "NHWC" in ir or "Permute(" in ir:
            r.failures.append(f"tiny_resnet: the layout pass should change nothing (exit {rc}):\n{ir}")
        else:
            print("ok   tiny_resnet: every convolution channels-first, no transposes")
        rc, ir = dump(mithril, path, "--grad")
        if rc != 0 or "NHWC" in ir or "Permute(" in ir:
            r.failures.append(f"--grad: the layout pass should leave programs with gradients alone (exit {rc}):\n{ir}")
        else:
            print("ok   --grad: no channels-last convolutions in a program with gradients")

        got = r.run(MODEL, {"x": x}, weights, name="separable")
        off = r.run(MODEL, {"x": x}, weights, extra=["--no-pass", "layout"], name="separable_off")
        for i, name in enumerate(OUTPUTS):
            g = None if got is None else got.get(name)
            u = None if off is None else off.get(name)
            r.check(f"{name} against PyTorch", g, ref[i], RTOL, ATOL)
            r.check(f"{name} against --no-pass layout", g, u, SAME_RTOL, SAME_ATOL)
        return r.finish()


if __name__ == "__main__":
    sys.exit(main())
