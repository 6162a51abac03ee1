#!/usr/bin/env python3
"""End to end: the fuse-pool pass (a pooling into the epilogue of the convolution it reads) against
PyTorch, and against the same program with --no-pass fuse-pool.

One model, batch 3, with the poolings the pass takes and those it must leave:
  a: Conv2d 3->5, 3x3 pad 1 on 9x10, BatchNorm, ReLU, MaxPool 2x2       (odd height: the last row dropped)
  b: Conv2d 5->4, 3x3 on a's 4x5, ReLU, AvgPool 3x3 stride 2 pad 1,
     count_include_pad false, ceil_mode                                   (windows clipped at the borders)
  c: Conv2d 5->6, 1x1, MaxPool 3x3 stride 2 pad 1 dilation 1, ceil_mode   (ResNet's stem pooling, small)
  d: Conv2d 3->4, 5x5 pad 2, MaxPool 2x2 on 9x10 -> its output is also a model output: not fused
  e: Conv2d 3->2, 3x3 pad 1 on a 70x70 input, MaxPool 2x2: 4900-element planes, over fuse-pool's
     limit (4096): not fused
Outputs a..e as model outputs (a pooled, b, c, d's convolution and pooling, e).

Checked:
  - `mithril check --dump-ir fuse-pool` shows the pooling layers a, b and c inside their
    convolutions (attribute pool) and d's and e's poolings as layers of their own;
  - every output against PyTorch's float64 forward pass on the same float32 weights (BatchNorm in
    eval mode with random running statistics): rtol 1e-4, atol 1e-5 (float32 sums of at most 45
    products);
  - every output against the program built with --no-pass fuse-pool: identical up to float
    rounding, rtol 1e-6, atol 1e-7 (the same kernels and the same order of operations per element);
  - NaN in an input element propagates through a fused max pooling to the windows that hold it.

Needs torch (Debian's python3-torch for /usr/bin/python3).
Usage: fuse_pool.py MITHRIL ROOT
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
    import torch.nn.functional as F
except ImportError as e:
    print(f"fuse_pool.py needs torch for its reference (apt install python3-torch, run with /usr/bin/python3): {e}")
    sys.exit(1)

MODEL = """
name: pools
inputs:
  x: {shape: [N, 3, 9, 10]}
  big: {shape: [N, 3, 70, 70]}
outputs: [pa, pb, pc, hd, pd, pe]
layers:
  - {op: Conv2d, name: ca, args: {out_channels: 5, kernel_size: 3, padding: 1}, input: x, output: ha}
  - {op: BatchNorm2d, name: bna, input: ha, output: ba}
  - {op: Relu, name: ra, input: ba, output: qa}
  - {op: MaxPool2d, name: pool_a, args: {kernel_size: 2}, input: qa, output: pa}
  - {op: Conv2d, name: cb, args: {out_channels: 4, kernel_size: 3}, input: pa, output: hb}
  - {op: Relu, name: rb, input: hb, output: qb}
  - {op: AvgPool2d, name: pool_b, args: {kernel_size: 3, stride: 2, padding: 1, count_include_pad: false, ceil_mode: true}, input: qb, output: pb}
  - {op: Conv2d, name: cc, args: {out_channels: 6, kernel_size: 1}, input: pa, output: hc}
  - {op: MaxPool2d, name: pool_c, args: {kernel_size: 3, stride: 2, padding: 1, ceil_mode: true}, input: hc, output: pc}
  - {op: Conv2d, name: cd, args: {out_channels: 4, kernel_size: 5, padding: 2}, input: x, output: hd}
  - {op: MaxPool2d, name: pool_d, args: {kernel_size: 2}, input: hd, output: pd}
  - {op: Conv2d, name: ce, args: {out_channels: 2, kernel_size: 3, padding: 1}, input: big, output: he}
  - {op: MaxPool2d, name: pool_e, args: {kernel_size: 2}, input: he, output: pe}
"""
OUTPUTS = ["pa", "pb", "pc", "hd", "pd", "pe"]
RTOL, ATOL = 1e-4, 1e-5
SAME_RTOL, SAME_ATOL = 1e-6, 1e-7


class Pools(nn.Module):
    def __init__(self):
        super().__init__()
        self.ca = nn.Conv2d(3, 5, 3, padding=1)
        self.bna = nn.BatchNorm2d(5)
        self.cb = nn.Conv2d(5, 4, 3)
        self.cc = nn.Conv2d(5, 6, 1)
        self.cd = nn.Conv2d(3, 4, 5, padding=2)
        self.ce = nn.Conv2d(3, 2, 3, padding=1)

    def forward(self, x, big):
        pa = F.max_pool2d(torch.relu(self.bna(self.ca(x))), 2)
        pb = F.avg_pool2d(torch.relu(self.cb(pa)), 3, stride=2, padding=1, count_include_pad=False, ceil_mode=True)
        pc = F.max_pool2d(self.cc(pa), 3, stride=2, padding=1, ceil_mode=True)
        hd = self.cd(x)
        pd = F.max_pool2d(hd, 2)
        pe = F.max_pool2d(self.ce(big), 2)
        return [pa, pb, pc, hd, pd, pe]


def dump_ir(mithril, path):
    res = subprocess.run([mithril, "check", path, "--dump-ir", "fuse-pool"], capture_output=True, text=True)
    return res.returncode, res.stdout + res.stderr


def main():
    mithril = sys.argv[1]
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(2)
    net = Pools()
    randomize_batchnorm(torch, net.bna, gen)
    net.eval()
    weights = torch_weights(net)
    x = torch.randn((3, 3, 9, 10), generator=gen).numpy().astype(np.float32)
    big = torch.randn((3, 3, 70, 70), generator=gen).numpy().astype(np.float32)
    with torch.no_grad():
        ref = [t.numpy() for t in net.double()(torch.from_numpy(x).double(), torch.from_numpy(big).double())]

    with tempfile.TemporaryDirectory() as tmp:
        r = Runner(mithril, tmp)
        path = os.path.join(tmp, "pools.yaml")
        with open(path, "w") as f:
            f.write(MODEL)
        rc, ir = dump_ir(mithril, path)
        if rc != 0:
            r.failures.append(f"mithril check --dump-ir fuse-pool exited {rc}: {ir}")
        else:
            # IR lines: `%7 = Conv2d(...) {..., "pool":{"op":"MaxPool2d","name":"pool_a",...}} : [...]  # ca`
            lines = ir.splitlines()
            for layer, conv, fused in [("pool_a", "ca", True), ("pool_b", "cb", True), ("pool_c", "cc", True),
                                       ("pool_d", "cd", False), ("pool_e", "ce", False)]:
                conv_line = [ln for ln in lines if "= Conv2d(" in ln and ln.rstrip().endswith(f"# {conv}")]
                in_conv = bool(conv_line) and f'"name":"{layer}"' in conv_line[0]
                as_layer = any("Pool2d(" in ln and ln.rstrip().endswith(f"# {layer}") for ln in lines)
                if in_conv != fused or as_layer == fused:
                    r.failures.append(f"--dump-ir fuse-pool: {layer} should {'' if fused else 'not '}be inside "
                                      f"{conv}:\n{ir}")
                else:
                    print(f"ok   --dump-ir fuse-pool: {layer} {'inside' if fused else 'apart from'} {conv}")
        got = r.run(MODEL, {"x": x, "big": big}, weights, name="pools")
        unfused = r.run(MODEL, {"x": x, "big": big}, weights, extra=["--no-pass", "fuse-pool"], name="pools_off")
        for i, name in enumerate(OUTPUTS):
            g = None if got is None else got.get(name)
            u = None if unfused is None else unfused.get(name)
            r.check(f"{name} against PyTorch", g, ref[i], RTOL, ATOL)
            r.check(f"{name} against --no-pass fuse-pool", g, u, SAME_RTOL, SAME_ATOL)

        # A NaN in the input of ca's window reaches every pooled value whose windows read it.
        xn = x.copy()
        xn[1, 0, 4, 4] = np.nan
        got = r.run(MODEL, {"x": xn, "big": big}, weights, name="pools")
        with torch.no_grad():
            refn = net(torch.from_numpy(xn).double(), torch.from_numpy(big).double())[0].numpy()
        g = None if got is None else got.get("pa")
        if g is None:
            r.failures.append("NaN input: no output pa")
        elif not np.array_equal(np.isnan(g), np.isnan(refn)):
            r.failures.append(f"NaN input: NaNs of pa at {np.argwhere(np.isnan(g)).tolist()}, PyTorch's at "
                   f"{np.argwhere(np.isnan(refn)).tolist()}")
        else:
            print(f"NaN input: {int(np.isnan(g).sum())} NaNs in pa, where PyTorch has them")
        return r.finish()


if __name__ == "__main__":
    sys.exit(main())
