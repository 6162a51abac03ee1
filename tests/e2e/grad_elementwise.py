#!/usr/bin/env python3
"""End to end: gradients of the elementwise ops (unary with a derivative,
zero-gradient Sign/Floor/Ceil, StopGradient, binary arithmetic with
broadcasting both ways and scalar operands, Where, Cast) and of MatMul (every
rank combination, 1-D operands, broadcast batch dims) and Linear (2-D and 3-D
inputs, with and without bias).

Usage: grad_elementwise.py MITHRIL ROOT

1. A float64 model, each layer on inputs of its own: `--check-grad` against
   central finite differences (tol 1e-6). Inputs stay away from kinks (ReLU
   at 0, Clip's bounds, max ties) and outside each op's domain edges.
2. The same layers in float32 against PyTorch 1.13 autograd with a random
   dL/d(output) per output (rtol 1e-4, atol 1e-5), plus Cast f32 <-> f64.
   torch.maximum/minimum split the gradient evenly at ties (checked here on
   exact ties); torch.clamp passes it at the bounds.
"""
import sys
import tempfile

import numpy as np
import torch
import torch.nn.functional as F

from harness import Runner, model_yaml

RTOL32, ATOL32 = 1e-4, 1e-5


def away(rng, shape, lo=0.2, hi=1.5):
    """Values with |v| in [lo, hi], random signs: away from 0."""
    return rng.choice([-1.0, 1.0], shape) * rng.uniform(lo, hi, shape)


def pos(rng, shape):
    return rng.uniform(0.4, 2.0, shape)


# unary: name, op, args, input maker, torch function
UNARY = [
    ("neg", "Neg", {}, away, torch.neg),
    ("abs", "Abs", {}, away, torch.abs),
    ("exp", "Exp", {}, away, torch.exp),
    ("log", "Log", {}, pos, torch.log),
    ("sqrt", "Sqrt", {}, pos, torch.sqrt),
    ("rsqrt", "Rsqrt", {}, pos, torch.rsqrt),
    ("recip", "Reciprocal", {}, away, torch.reciprocal),
    ("sin", "Sin", {}, away, torch.sin),
    ("cos", "Cos", {}, away, torch.cos),
    ("tanh", "Tanh", {}, away, torch.tanh),
    ("sigmoid", "Sigmoid", {}, away, torch.sigmoid),
    ("relu", "Relu", {}, away, torch.relu),
    ("lrelu", "LeakyRelu", {"negative_slope": 0.1}, away, lambda x: F.leaky_relu(x, 0.1)),
    ("elu", "Elu", {"alpha": 0.7}, away, lambda x: F.elu(x, 0.7)),
    ("gelu", "Gelu", {}, away, F.gelu),
    ("gelu_tanh", "Gelu", {"approximate": "tanh"}, away, lambda x: F.gelu(x, approximate="tanh")),
    ("silu", "Silu", {}, away, F.silu),
    # beta x crosses the threshold for x > 0.75: both branches
    ("softplus", "Softplus", {"beta": 2.0, "threshold": 1.5}, away, lambda x: F.softplus(x, 2.0, 1.5)),
    ("erf", "Erf", {}, away, torch.erf),
    ("clip", "Clip", {"min": -0.5, "max": 0.7}, lambda r, s: away(r, s, 0.1, 1.2) + 0.013, lambda x: torch.clamp(x, -0.5, 0.7)),
    ("clip_lo", "Clip", {"min": 0.3}, away, lambda x: torch.clamp(x, min=0.3)),
    ("identity", "Identity", {}, away, lambda x: x),
    ("sign", "Sign", {}, away, torch.sign),
    ("floor", "Floor", {}, lambda r, s: r.uniform(-3, 3, s).round() + r.uniform(0.2, 0.8, s), torch.floor),
    ("ceil", "Ceil", {}, lambda r, s: r.uniform(-3, 3, s).round() + r.uniform(0.2, 0.8, s), torch.ceil),
    ("stopgrad", "StopGradient", {}, away, lambda x: x.detach()),
]

# binary: name, op, left shape, right shape, left maker, right maker
BIN_SHAPES = [("bb", (3, 1, 4), (2, 4)), ("lb", (4,), (3, 4)), ("rs", (2, 3), ()), ("ls", (), (2, 3)), ("eq", (2, 3), (2, 3))]
BINARY = [
    ("add", "Add", torch.add),
    ("sub", "Subtract", torch.sub),
    ("mul", "Multiply", torch.mul),
    ("div", "Divide", torch.div),
    ("pow", "Power", torch.pow),
    # (not "max...": the harness skips grad-check lines starting "grad-check max", its summary line)
    ("vmax", "Maximum", torch.maximum),
    ("vmin", "Minimum", torch.minimum),
]

MATMUL = [("v_v", (4,), (4,)), ("v_m", (4,), (4, 3)), ("m_v", (3, 4), (4,)), ("m_m", (3, 4), (4, 5)),
          ("b_m", (2, 3, 4), (4, 5)), ("m_b", (3, 4), (2, 4, 5)), ("bb", (2, 1, 3, 4), (5, 4, 2)),
          ("b_v", (2, 3, 4), (4,)), ("v_b", (4,), (2, 4, 5)), ("b_b", (2, 3, 4), (2, 4, 2))]

LINEAR = [("lin2", (5, 4), True), ("lin3", (2, 3, 4), True), ("lin2nb", (5, 4), False), ("lin3nb", (2, 3, 4), False)]


def flow(args):
    return "{" + ", ".join(f"{k}: {v}" for k, v in args.items()) + "}"


def build(rng):
    """Inputs (float64), layers, outputs, grad inputs, and a torch function of the torch inputs per output."""
    inputs, layers, outputs, ref = {}, [], [], {}
    for name, op, args, make, fn in UNARY:
        inputs[f"{name}_x"] = make(rng, (3, 4))
        layers.append(f"{{op: {op}, name: {name}, input: {name}_x, output: {name}, args: {flow(args)}}}")
        outputs.append(name)
        ref[name] = (lambda fn, name: lambda T: fn(T[f"{name}_x"]))(fn, name)
    for bname, op, fn in BINARY:
        for sname, ls, rs in BIN_SHAPES:
            if sname == "eq" and op not in ("Maximum", "Minimum"):
                continue
            n = f"{bname}_{sname}"
            left = pos(rng, ls) if op == "Power" else away(rng, ls)
            right = away(rng, rs, 0.3, 1.6)
            if sname == "eq":  # exact ties in half the entries: torch splits the gradient evenly
                right = left.copy()
                right[0] += 0.5
            inputs[f"{n}_l"], inputs[f"{n}_r"] = left, right
            layers.append(f"{{op: {op}, name: {n}, left: {n}_l, right: {n}_r, output: {n}}}")
            outputs.append(n)
            ref[n] = (lambda fn, n: lambda T: fn(T[f"{n}_l"], T[f"{n}_r"]))(fn, n)
    # Where: condition [3, 4], left [2, 3, 4], right [4], all broadcast
    inputs["where_c"] = rng.uniform(0, 1, (3, 4)) < 0.5
    inputs["where_l"], inputs["where_r"] = away(rng, (2, 3, 4)), away(rng, (4,))
    layers.append("{op: Where, name: where, condition: where_c, left: where_l, right: where_r, output: where}")
    outputs.append("where")
    ref["where"] = lambda T: torch.where(T["where_c"], T["where_l"], T["where_r"])
    for n, ls, rs in MATMUL:
        inputs[f"mm_{n}_l"], inputs[f"mm_{n}_r"] = rng.standard_normal(ls), rng.standard_normal(rs)
        layers.append(f"{{op: MatMul, name: mm_{n}, left: mm_{n}_l, right: mm_{n}_r, output: mm_{n}}}")
        outputs.append(f"mm_{n}")
        ref[f"mm_{n}"] = (lambda n: lambda T: torch.matmul(T[f"mm_{n}_l"], T[f"mm_{n}_r"]))(n)
    weights = {}
    for n, shape, bias in LINEAR:
        inputs[f"{n}_x"] = rng.standard_normal(shape)
        weights[f"{n}.weight"] = rng.standard_normal((3, shape[-1]))
        if bias:
            weights[f"{n}.bias"] = rng.standard_normal(3)
        layers.append(f"{{op: Linear, name: {n}, input: {n}_x, output: {n}, args: {{dimension: 3, bias: {str(bias).lower()}}}}}")
        outputs.append(n)
        ref[n] = (lambda n, bias: lambda T: F.linear(T[f"{n}_x"], T[f"{n}.weight"], T[f"{n}.bias"] if bias else None))(n, bias)
    grad_inputs = [k for k, v in inputs.items() if v.dtype.kind == "f"]
    return inputs, weights, layers, outputs, grad_inputs, ref


def cast32(d):
    return {k: (v.astype(np.float32) if v.dtype.kind == "f" else v) for k, v in d.items()}


def main():
    mithril = sys.argv[1]
    rng = np.random.default_rng(11)
    inputs, weights, layers, outputs, gi, ref = build(rng)
    tmp = tempfile.mkdtemp(prefix="mithril_grad_elementwise_")
    r = Runner(mithril, tmp)

    # ---- 1. float64: finite differences ----------------------------------------------
    # (the exact ties of Maximum/Minimum are left to the PyTorch comparison: finite differences
    # are not defined there; so is StopGradient, whose input the forward pass does depend on)
    fd_layers = [l for l in layers if "_eq," not in l and "stopgrad," not in l]
    fd_outputs = [o for o in outputs if not o.endswith("_eq") and o != "stopgrad"]
    fd_inputs = {k: v for k, v in inputs.items() if "_eq_" not in k and k != "stopgrad_x"}
    fd_gi = [k for k in gi if k in fd_inputs]
    r.grad_check(model_yaml("grad_elementwise64", fd_inputs, fd_layers, fd_outputs), fd_inputs, weights, grad_inputs=fd_gi,
                 tol=1e-6, name="elementwise float64", expect=fd_gi + list(weights))

    # ---- 2. float32 against PyTorch autograd, plus Cast ---------------------------------
    in32, w32 = cast32(inputs), cast32(weights)
    in32["cast_x"] = away(rng, (3, 4)).astype(np.float32)
    in32["cast_d"] = away(rng, (2, 3))
    layers32 = layers + ["{op: Cast, name: c64, input: cast_x, output: c64, args: {dtype: float64}}",
                         "{op: Exp, name: cexp, input: c64, output: cexp}",
                         "{op: Cast, name: c32, input: cexp, output: cast_up_down, args: {dtype: float32}}",
                         "{op: Cast, name: cd32, input: cast_d, output: cast_down, args: {dtype: float32}}"]
    outputs32 = outputs + ["cast_up_down", "cast_down"]
    ref["cast_up_down"] = lambda T: torch.exp(T["cast_x"].double()).float()
    ref["cast_down"] = lambda T: T["cast_d"].float()
    gi32 = gi + ["cast_x", "cast_d"]
    T = {k: torch.tensor(v, requires_grad=k in gi32) for k, v in in32.items()}
    T.update({k: torch.tensor(v, requires_grad=True) for k, v in w32.items()})
    ograds = {}
    total = 0
    for o in outputs32:
        y = ref[o](T)
        g = rng.uniform(-1, 1, tuple(y.shape)).astype(np.float32 if y.dtype == torch.float32 else np.float64)
        ograds[o] = g
        if y.requires_grad:
            total = total + (y * torch.tensor(g)).sum()
    total.backward()
    _, grads = r.run_grad(model_yaml("grad_elementwise32", in32, layers32, outputs32), in32, w32, grad_inputs=gi32,
                          output_grads=ograds, name="elementwise float32")
    if grads is not None:
        for k in gi32 + list(w32):
            want = T[k].grad.numpy() if T[k].grad is not None else np.zeros(T[k].shape, T[k].detach().numpy().dtype)
            r.check(f"float32 vs torch: d/d{k}", grads.get(k), want, RTOL32, ATOL32)
    sys.exit(r.finish())


if __name__ == "__main__":
    main()
