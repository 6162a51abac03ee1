#!/usr/bin/env python3
"""End to end: gradients of the normalization, softmax and attention ops.

One model holds LayerNorm (last dim with a symbolic batch, two trailing dims,
no affine, no bias), GroupNorm (affine, not affine), BatchNorm2d (affine with
eps, not affine), Softmax / LogSoftmax along several axes, and
ScaledDotProductAttention (default scale, causal with a given scale, a bool
mask broadcast over the batch, a float mask); each layer reads its own input
so a failure points at one op. It is checked

  1. in float64 against central finite differences (--check-grad, error
     < 1e-6), every parameter and every data input (masks excepted), in
     evaluation (BatchNorm with its running statistics as constants) and in
     training (`--mode train`: batch statistics, the gradient flowing through
     the mean and variance);
  2. in float32 against PyTorch autograd (torch.nn.functional.layer_norm,
     group_norm, batch_norm with training False and True, softmax,
     log_softmax, and attention written out as softmax(q k^T * scale + mask) v),
     with random output gradients, rtol 1e-4 / atol 1e-5; once more with
     parameter gradients only (no input gradients, two parameters frozen).

Usage: grad_norm.py MITHRIL ROOT
"""
import math
import sys
import tempfile

import numpy as np
import torch

from harness import Runner

RTOL, ATOL = 1e-4, 1e-5
N_SYM = 2  # the value of the symbolic batch size N


class Model:
    def __init__(self, rng):
        self.rng = rng
        self.inputs = {}     # name -> (declared shape, array in float64)
        self.masks = set()   # inputs that get no gradient
        self.weights = {}    # float64
        self.layers = []
        self.refs = {}       # output -> fn(torch inputs dict, torch params dict, train) -> tensor

    def input(self, name, shape, lo=-1.0, hi=1.0, declared=None, array=None):
        a = array if array is not None else self.rng.uniform(lo, hi, shape)
        self.inputs[name] = (declared or list(shape), a)
        return name

    def param(self, name, shape, lo=-1.0, hi=1.0):
        self.weights[name] = self.rng.uniform(lo, hi, shape)

    def layer(self, op, name, ports, args, ref):
        parts = [f"op: {op}", f"name: {name}"] + [f"{p}: {v}" for p, v in ports.items()] + [f"output: {name}_out"]
        if args:
            parts.append("args: {" + ", ".join(f"{k}: {v}" for k, v in args.items()) + "}")
        self.layers.append("{" + ", ".join(parts) + "}")
        self.refs[f"{name}_out"] = ref

    def text(self, dtype):
        lines = ["name: grad_norm", "inputs:"]
        for n, (shape, a) in self.inputs.items():
            t = "bool" if a.dtype == np.bool_ else dtype
            lines.append(f"  {n}: {{shape: [{', '.join(str(d) for d in shape)}], dtype: {t}}}")
        lines.append(f"outputs: [{', '.join(self.refs)}]")
        lines.append("layers:")
        lines += [f"  - {l}" for l in self.layers]
        return "\n".join(lines) + "\n"

    def arrays(self, dtype):
        return {n: (a if a.dtype == np.bool_ else a.astype(dtype)) for n, (_, a) in self.inputs.items()}

    def grad_inputs(self):
        return [n for n in self.inputs if n not in self.masks]


def build(rng):
    m = Model(rng)
    F = torch.nn.functional

    # LayerNorm: last dim (symbolic batch N), two trailing dims, no affine, no bias.
    m.input("ln_a_x", (N_SYM, 3, 5), declared=["N", 3, 5])
    m.param("ln_a.weight", (5,), 0.5, 1.5)
    m.param("ln_a.bias", (5,))
    m.layer("LayerNorm", "ln_a", {"input": "ln_a_x"}, None,
            lambda x, p, tr: F.layer_norm(x["ln_a_x"], (5,), p["ln_a.weight"], p["ln_a.bias"]))
    m.input("ln_b_x", (2, 3, 4, 3))
    m.param("ln_b.weight", (4, 3), 0.5, 1.5)
    m.param("ln_b.bias", (4, 3))
    m.layer("LayerNorm", "ln_b", {"input": "ln_b_x"}, {"normalized_shape": [4, 3], "eps": 0.01},
            lambda x, p, tr: F.layer_norm(x["ln_b_x"], (4, 3), p["ln_b.weight"], p["ln_b.bias"], eps=0.01))
    m.input("ln_c_x", (4, 7))
    m.layer("LayerNorm", "ln_c", {"input": "ln_c_x"}, {"elementwise_affine": "false"},
            lambda x, p, tr: F.layer_norm(x["ln_c_x"], (7,)))
    m.input("ln_d_x", (3, 70))  # more than one 64-column block for the weight gradient
    m.param("ln_d.weight", (70,), 0.5, 1.5)
    m.layer("LayerNorm", "ln_d", {"input": "ln_d_x"}, {"bias": "false"},
            lambda x, p, tr: F.layer_norm(x["ln_d_x"], (70,), p["ln_d.weight"]))

    # GroupNorm: affine over [N, C, L], not affine over [N, C, H, W].
    m.input("gn_a_x", (2, 6, 4))
    m.param("gn_a.weight", (6,), 0.5, 1.5)
    m.param("gn_a.bias", (6,))
    m.layer("GroupNorm", "gn_a", {"input": "gn_a_x"}, {"num_groups": 3},
            lambda x, p, tr: F.group_norm(x["gn_a_x"], 3, p["gn_a.weight"], p["gn_a.bias"]))
    m.input("gn_b_x", (3, 4, 3, 2))
    m.layer("GroupNorm", "gn_b", {"input": "gn_b_x"}, {"num_groups": 2, "affine": "false", "eps": 0.001},
            lambda x, p, tr: F.group_norm(x["gn_b_x"], 2, eps=0.001))

    # BatchNorm2d: affine with eps 1e-3, and not affine; running statistics as weights (state).
    for name, shape, affine, eps in [("bn_a", (3, 4, 2, 3), True, 0.001), ("bn_b", (2, 3, 3, 2), False, 1e-5)]:
        C = shape[1]
        m.input(f"{name}_x", shape, -1.0, 2.0)
        m.param(f"{name}.running_mean", (C,), -0.5, 0.5)
        m.param(f"{name}.running_var", (C,), 0.5, 2.0)
        if affine:
            m.param(f"{name}.weight", (C,), 0.5, 1.5)
            m.param(f"{name}.bias", (C,))

        def bn(x, p, tr, name=name, affine=affine, eps=eps):
            # clones: batch_norm updates the running statistics in training
            return F.batch_norm(x[f"{name}_x"], p[f"{name}.running_mean"].detach().clone(),
                                p[f"{name}.running_var"].detach().clone(),
                                p[f"{name}.weight"] if affine else None, p[f"{name}.bias"] if affine else None,
                                training=tr, momentum=0.1, eps=eps)
        m.layer("BatchNorm2d", name, {"input": f"{name}_x"}, {"affine": str(affine).lower(), "eps": eps}, bn)

    # Softmax / LogSoftmax along the last, a middle and the first axis.
    for name, op, shape, axis, declared in [("sm_a", "Softmax", (N_SYM, 5), -1, ["N", 5]),
                                            ("sm_b", "Softmax", (2, 4, 3), 1, None),
                                            ("lsm_a", "LogSoftmax", (3, 6), -1, None),
                                            ("lsm_b", "LogSoftmax", (4, 2, 3), 0, None)]:
        m.input(f"{name}_x", shape, -2.0, 2.0, declared=declared)
        f = F.softmax if op == "Softmax" else F.log_softmax
        m.layer(op, name, {"input": f"{name}_x"}, {"axis": axis},
                lambda x, p, tr, name=name, f=f, axis=axis: f(x[f"{name}_x"], dim=axis))

    # ScaledDotProductAttention: L != S and E != Ev; default scale, causal, bool and float masks.
    def attention(name, qs, ks, vs, args, mask=None, mask_kind=None):
        for port, s in (("q", qs), ("k", ks), ("v", vs)):
            m.input(f"{name}_{port}", s)
        ports = {"query": f"{name}_q", "key": f"{name}_k", "value": f"{name}_v"}
        if mask is not None:
            m.input(f"{name}_mask", mask.shape, array=mask)
            m.masks.add(f"{name}_mask")
            ports["mask"] = f"{name}_mask"
        scale = args.get("scale", 1 / math.sqrt(qs[-1]))
        causal = args.get("causal") == "true"

        def ref(x, p, tr):
            s = x[f"{name}_q"] @ x[f"{name}_k"].transpose(-1, -2) * scale
            if causal:
                L, S = s.shape[-2:]
                s = s.masked_fill(torch.ones(L, S, dtype=torch.bool).triu(1), float("-inf"))
            if mask_kind == "bool":
                s = s.masked_fill(~x[f"{name}_mask"], float("-inf"))
            elif mask_kind == "float":
                s = s + x[f"{name}_mask"]
            return torch.softmax(s, dim=-1) @ x[f"{name}_v"]
        m.layer("ScaledDotProductAttention", name, ports, args, ref)

    attention("att_a", (2, 3, 4), (2, 5, 4), (2, 5, 6), {})
    attention("att_b", (2, 2, 4, 3), (2, 2, 4, 3), (2, 2, 4, 2), {"causal": "true", "scale": 0.7})
    bmask = np.ones((3, 5), dtype=np.bool_)
    bmask[0, 1:4] = False
    bmask[2, 0] = False
    bmask[1, 4] = False
    attention("att_c", (2, 3, 4), (2, 5, 4), (2, 5, 3), {}, bmask, "bool")
    attention("att_d", (2, 3, 4), (2, 5, 4), (2, 5, 3), {"scale": 0.5}, rng.uniform(-1, 1, (2, 3, 5)), "float")
    return m


def torch_grads(m, dys, train):
    """Outputs and gradients by PyTorch autograd in float64, from the float32 values."""
    x = {n: (torch.tensor(a) if a.dtype == np.bool_ else torch.tensor(a.astype(np.float32).astype(np.float64),
                                                                        requires_grad=n not in m.masks))
         for n, (_, a) in m.inputs.items()}
    state = {n for n in m.weights if n.endswith(".running_mean") or n.endswith(".running_var")}
    p = {n: torch.tensor(a.astype(np.float32).astype(np.float64), requires_grad=n not in state)
         for n, a in m.weights.items()}
    outs, loss = {}, 0
    for o, ref in m.refs.items():
        y = ref(x, p, train)
        outs[o] = y.detach().numpy()
        loss = loss + (y * torch.tensor(dys[o].astype(np.float64))).sum()
    loss.backward()
    grads = {n: t.grad.numpy() for n, t in {**x, **p}.items() if t.requires_grad}
    return outs, grads


def main():
    mithril = sys.argv[1]
    rng = np.random.default_rng(11)
    m = build(rng)
    with tempfile.TemporaryDirectory() as tmp:
        r = Runner(mithril, tmp)
        params = [n for n in m.weights if not n.endswith(("running_mean", "running_var"))]
        expect = params + m.grad_inputs()

        # 1. float64 against finite differences, evaluation and training.
        for mode in ("eval", "train"):
            r.grad_check(m.text("float64"), m.arrays(np.float64), m.weights, grad_inputs=m.grad_inputs(),
                         extra=["--mode", mode], name=f"grad_norm64_{mode}", expect=expect)

        # 2. float32 against PyTorch autograd, random output gradients.
        w32 = {n: a.astype(np.float32) for n, a in m.weights.items()}
        dys = None
        for mode in ("eval", "train"):
            want_out, want = torch_grads(m, dys or {}, mode == "train") if dys else (None, None)
            if dys is None:
                # output shapes from one torch evaluation, then the random gradients
                probe, _ = torch_grads(m, {o: np.zeros(1) for o in m.refs}, False)
                dys = {o: rng.standard_normal(a.shape).astype(np.float32) for o, a in probe.items()}
                want_out, want = torch_grads(m, dys, mode == "train")
            outs, grads = r.run_grad(m.text("float32"), m.arrays(np.float32), w32, grad_inputs=m.grad_inputs(),
                                     output_grads=dys, extra=["--mode", mode], name=f"grad_norm32_{mode}")
            if outs is None:
                continue
            for o in m.refs:
                r.check(f"{mode} float32 output {o} vs torch", outs.get(o), want_out[o], RTOL, ATOL)
            for n in want:
                r.check(f"{mode} float32 d/d{n} vs torch", grads.get(n), want[n], RTOL, ATOL)
            extra = sorted(set(grads) - set(want))
            if extra:
                r.failures.append(f"{mode}: unexpected gradients {extra}")

        # Parameters only (no input gradients: the backward kernels skip dx), two of them frozen
        # (GroupNormGrad then gives the bias gradient alone, LayerNormGrad the weight's alone).
        frozen = ["gn_a.weight", "ln_a.bias"]
        _, want = torch_grads(m, dys, False)
        outs, grads = r.run_grad(m.text("float32"), m.arrays(np.float32), w32, output_grads=dys,
                                 extra=["--freeze", frozen[0], "--freeze", frozen[1]], name="grad_norm32_params")
        if grads is not None:
            names = [n for n in params if n not in frozen]
            if sorted(grads) != sorted(names):
                r.failures.append(f"params only: gradients {sorted(grads)}, expected {sorted(names)}")
            for n in names:
                r.check(f"params only: float32 d/d{n} vs torch", grads.get(n), want[n], RTOL, ATOL)
        return r.finish()


if __name__ == "__main__":
    sys.exit(main())
