#!/usr/bin/env python3
"""End to end: gradients of the conv and pool ops (Conv1d, Conv2d,
ConvTranspose2d, MaxPool1d, MaxPool2d, AvgPool2d, GlobalAvgPool2d).

One model holds every configuration, each layer reading its own input so that
a wrong data gradient points at one layer: stride, padding, dilation, groups
(depthwise too), no bias, 1x1 kernels (the direct gemm paths, with and without
stride, and a 1x1 transposed convolution whose output_padding makes the output
larger than the input), ceil_mode, count_include_pad, and symbolic N/H/W.
It is built twice:

1. float64, `--check-grad`: every parameter and every input against central
   finite differences (error < 1e-6 relative, see harness.grad_check).
2. float32 against PyTorch autograd (torch.nn.functional with the same weights,
   PyTorch layouts), a random gradient for every output: all gradients within
   rtol 1e-4 / atol 1e-5.

Max pooling inputs are permutations of well separated values (no ties, no
maximum within a finite-difference step of another).

Usage: grad_conv.py MITHRIL ROOT
"""
import sys
import tempfile

import numpy as np
import torch
import torch.nn.functional as F

from harness import Runner

# Values of the symbolic dims (inputs declared [N, C, H, W]).
SYM = {"N": 2, "H": 9, "W": 7}


def conv_layer(name, op, shape, out_ch, ks, bias=True, **kw):
    return dict(op=op, name=name, shape=shape, out_ch=out_ch, ks=ks, bias=bias, kw=kw)


def pool_layer(name, op, shape, **kw):
    return dict(op=op, name=name, shape=shape, kw=kw)


LAYERS = [
    conv_layer("c_basic", "Conv2d", (2, 3, 7, 6), 4, 3, padding=1),
    conv_layer("c_geom", "Conv2d", (2, 4, 9, 8), 6, [3, 2], bias=False, stride=[2, 1], padding=[1, 0],
               dilation=[1, 2], groups=2),
    conv_layer("c_pw", "Conv2d", (2, 4, 5, 5), 5, 1),                        # 1x1: gemm on x directly
    conv_layer("c_pw_s", "Conv2d", (2, 3, 6, 5), 4, 1, stride=2),            # 1x1 with stride: im2col
    conv_layer("c_dw", "Conv2d", (1, 4, 8, 7), 8, 3, stride=2, padding=2, dilation=2, groups=4),  # depthwise
    conv_layer("c_sym", "Conv2d", ("N", 3, "H", "W"), 4, 3, stride=2, padding=1),
    conv_layer("d_a", "Conv1d", (2, 4, 11), 6, 3, stride=2, padding=1, dilation=2),
    conv_layer("d_b", "Conv1d", (3, 6, 7), 6, 1, groups=3),
    conv_layer("d_c", "Conv1d", (2, 2, 9), 4, 4, bias=False, padding=3),
    conv_layer("t_a", "ConvTranspose2d", (2, 3, 4, 5), 4, 3, stride=2, padding=1, output_padding=1),
    conv_layer("t_b", "ConvTranspose2d", (2, 4, 3, 4), 6, [2, 3], bias=False, stride=[1, 2], output_padding=[1, 1],
               dilation=2, groups=2),
    conv_layer("t_pw", "ConvTranspose2d", (2, 4, 5, 4), 6, 1, groups=2),     # 1x1: gemm into the output
    conv_layer("t_pw_op", "ConvTranspose2d", (1, 2, 3, 3), 2, 1, dilation=2, output_padding=1),  # 1x1, larger output
    conv_layer("t_sym", "ConvTranspose2d", ("N", 3, "H", "W"), 2, 3, stride=2, padding=1, output_padding=1),
    pool_layer("mp_a", "MaxPool2d", (2, 3, 6, 6), kernel_size=2),
    pool_layer("mp_b", "MaxPool2d", (2, 3, 7, 7), kernel_size=3, stride=2, padding=1, ceil_mode=True),
    pool_layer("mp_c", "MaxPool2d", (2, 2, 7, 8), kernel_size=[2, 3], stride=[1, 2], dilation=[2, 1]),
    pool_layer("mp_d", "MaxPool2d", (1, 2, 5, 6), kernel_size=3, stride=1, padding=1),  # overlapping windows
    pool_layer("mp_e", "MaxPool2d", (2, 2, 7, 70), kernel_size=[3, 2], stride=[2, 1]),  # overlapping, all inside
    pool_layer("mp_sym", "MaxPool2d", ("N", 2, "H", "W"), kernel_size=3, stride=2, padding=1, ceil_mode=True),
    pool_layer("mq_a", "MaxPool1d", (2, 3, 10), kernel_size=3, stride=2, padding=1),
    pool_layer("mq_b", "MaxPool1d", (2, 3, 11), kernel_size=3, dilation=2, ceil_mode=True),
    pool_layer("mq_c", "MaxPool1d", (2, 3, 9), kernel_size=2),
    pool_layer("ap_a", "AvgPool2d", (2, 3, 7, 7), kernel_size=3, stride=2, padding=1, ceil_mode=True),
    pool_layer("ap_b", "AvgPool2d", (2, 3, 7, 7), kernel_size=3, stride=2, padding=1, ceil_mode=True,
               count_include_pad=False),
    pool_layer("ap_c", "AvgPool2d", (2, 2, 6, 7), kernel_size=[2, 3], stride=2, ceil_mode=True),
    pool_layer("ap_d", "AvgPool2d", (2, 2, 6, 6), kernel_size=2),
    pool_layer("ap_sym", "AvgPool2d", ("N", 2, "H", "W"), kernel_size=3, stride=1, padding=1,
               count_include_pad=False),
    pool_layer("gap", "GlobalAvgPool2d", (2, 3, 5, 4)),
    pool_layer("gap_sym", "GlobalAvgPool2d", ("N", 3, "H", "W")),
]


def concrete(shape):
    return tuple(SYM[d] if isinstance(d, str) else d for d in shape)


def yaml_val(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def is_conv(l):
    return l["op"].startswith("Conv")


def param_shapes(l):
    """PyTorch layouts: conv [out, in/groups, k...], transposed [in, out/groups, k...]."""
    if not is_conv(l):
        return {}
    spatial = len(l["shape"]) - 2
    ks = l["ks"] if isinstance(l["ks"], list) else [l["ks"]] * spatial
    groups = l["kw"].get("groups", 1)
    cin = l["shape"][1]
    if l["op"] == "ConvTranspose2d":
        w = (cin, l["out_ch"] // groups, *ks)
    else:
        w = (l["out_ch"], cin // groups, *ks)
    p = {f"{l['name']}.weight": w}
    if l["bias"]:
        p[f"{l['name']}.bias"] = (l["out_ch"],)
    return p


def model_text(t):
    lines = ["name: grad_conv", "inputs:"]
    for l in LAYERS:
        shape = ", ".join(str(d) for d in l["shape"])
        lines.append(f"  x_{l['name']}: {{shape: [{shape}], dtype: {t}}}")
    lines.append(f"outputs: [{', '.join(l['name'] + '_out' for l in LAYERS)}]")
    lines.append("layers:")
    for l in LAYERS:
        args = dict(l["kw"])
        if is_conv(l):
            args = {"out_channels": l["out_ch"], "kernel_size": l["ks"], "bias": l["bias"], **args}
        parts = [f"op: {l['op']}", f"name: {l['name']}", f"input: x_{l['name']}", f"output: {l['name']}_out"]
        if args:
            parts.append("args: {" + ", ".join(f"{k}: {yaml_val(v)}" for k, v in args.items()) + "}")
        lines.append("  - {" + ", ".join(parts) + "}")
    return "\n".join(lines) + "\n"


def torch_forward(l, x, p):
    kw, name = l["kw"], l["name"]
    op = l["op"]
    if is_conv(l):
        w, b = p[f"{name}.weight"], p.get(f"{name}.bias")
        fn = {"Conv2d": F.conv2d, "Conv1d": F.conv1d, "ConvTranspose2d": F.conv_transpose2d}[op]
        args = {k: (tuple(v) if isinstance(v, list) else v) for k, v in kw.items()}
        return fn(x, w, b, **args)
    if op == "GlobalAvgPool2d":
        return F.adaptive_avg_pool2d(x, 1)
    args = {k: (tuple(v) if isinstance(v, list) else v) for k, v in kw.items()}
    if op == "MaxPool2d":
        return F.max_pool2d(x, **args)
    if op == "MaxPool1d":
        return F.max_pool1d(x, **args)
    return F.avg_pool2d(x, **args)


def make_inputs(rng):
    inputs = {}
    for l in LAYERS:
        shape = concrete(l["shape"])
        if l["op"].startswith("MaxPool"):
            # Distinct values at least 0.05 apart: no ties, no near-ties for finite differences.
            n = int(np.prod(shape))
            inputs[f"x_{l['name']}"] = (rng.permutation(n) * 0.05 - n * 0.025).reshape(shape)
        else:
            inputs[f"x_{l['name']}"] = rng.uniform(-1, 1, shape)
    return inputs


def make_weights(rng):
    w = {}
    for l in LAYERS:
        for n, s in param_shapes(l).items():
            w[n] = rng.uniform(-0.5, 0.5, s)
    return w


def main():
    mithril = sys.argv[1]
    rng = np.random.default_rng(11)
    x64, w64 = make_inputs(rng), make_weights(rng)
    with tempfile.TemporaryDirectory() as tmp:
        r = Runner(mithril, tmp)
        # 1. float64: finite differences on every parameter and every input.
        r.grad_check(model_text("float64"), x64, w64, grad_inputs=list(x64), name="conv64",
                     expect=list(w64) + list(x64))

        # 2. float32 against PyTorch autograd, a random output gradient per output.
        x32 = {n: a.astype(np.float32) for n, a in x64.items()}
        w32 = {n: a.astype(np.float32) for n, a in w64.items()}
        pt = {n: torch.tensor(a, requires_grad=True) for n, a in w32.items()}
        want_out, want, dys = {}, {}, {}
        for l in LAYERS:
            xin = torch.tensor(x32[f"x_{l['name']}"], requires_grad=True)
            y = torch_forward(l, xin, pt)
            dy = rng.standard_normal(tuple(y.shape)).astype(np.float32)
            (y * torch.tensor(dy)).sum().backward()
            want_out[f"{l['name']}_out"] = y.detach().numpy()
            dys[f"{l['name']}_out"] = dy
            want[f"x_{l['name']}"] = xin.grad.numpy()
        for n, t in pt.items():
            want[n] = t.grad.numpy()
        outs, grads = r.run_grad(model_text("float32"), x32, w32, grad_inputs=list(x32), output_grads=dys,
                                 name="conv32")
        if outs is not None:
            for n, a in want_out.items():
                r.check(f"conv32 output {n} vs torch", outs.get(n), a, 1e-4, 1e-5)
            for n, a in want.items():
                r.check(f"conv32 d/d{n} vs torch", grads.get(n), a, 1e-4, 1e-5)
            extra = sorted(set(grads) - set(want))
            if extra:
                r.failures.append(f"conv32: unexpected gradients {extra}")
        return r.finish()


if __name__ == "__main__":
    sys.exit(main())
