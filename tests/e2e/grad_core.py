#!/usr/bin/env python3
"""End to end: what the autodiff pass itself must get right, on ops whose rules
are simple (Linear, Tanh, Add, Multiply), so a failure points at the pass:

- a value read by several layers (gradients summed), a residual connection;
- one composite model used twice (separate parameters), tied weights (one
  parameter used by two layers: gradients summed);
- an integer input next to a float one (no gradient, no error);
- two outputs whose gradients are both given (--output-grad);
- a frozen parameter (--freeze): no gradient file, the others unchanged;
- gradients of a data input (--grad-inputs).

Checked against central finite differences in float64 (--check-grad, error
< 1e-6 relative, see harness.grad_check) and against PyTorch autograd in
float32 (rtol 1e-4, atol 1e-5: float32 sums of a few hundred terms).

Usage: grad_core.py MITHRIL ROOT
"""
import os
import sys
import tempfile

import numpy as np

from harness import Runner

import torch

MODEL = """
name: core
inputs:
  x: {{shape: [N, 4], dtype: {t}}}
  k: {{shape: [N, 4], dtype: int64}}
outputs: [y, z]
models:
  Block:
    layers:
      - {{op: Linear, args: {{dimension: 4}}, name: fc, output: h}}
      - {{op: Tanh, input: h, output: a}}
      - {{op: Add, left: input, right: a, output: output}}
layers:
  - {{op: Block, input: x, name: b1, output: h1}}
  - {{op: Block, input: h1, name: b2, output: h2}}
  - {{op: Linear, args: {{dimension: 4, bias: false}}, weight: tied, input: h2, name: t1, output: h3}}
  - {{op: Linear, args: {{dimension: 4, bias: false}}, weight: tied, input: h3, name: t2, output: h4}}
  - {{op: Cast, args: {{dtype: {t}}}, input: k, output: kf}}
  - {{op: Multiply, left: h4, right: kf, output: y}}
  - {{op: Multiply, left: h2, right: h2, output: sq}}
  - {{op: Linear, args: {{dimension: 2}}, input: sq, name: head, output: z}}
"""

PARAMS = {"b1.fc.weight": (4, 4), "b1.fc.bias": (4,), "b2.fc.weight": (4, 4), "b2.fc.bias": (4,),
          "tied": (4, 4), "head.weight": (2, 4), "head.bias": (2,)}


def reference(w, x, k, dy, dz, freeze=()):
    """The same model in PyTorch; returns outputs and the gradients autograd gives."""
    p = {n: torch.tensor(a, requires_grad=n not in freeze) for n, a in w.items()}
    xt = torch.tensor(x, requires_grad=True)

    def block(v, pre):
        return v + torch.tanh(v @ p[pre + ".fc.weight"].T + p[pre + ".fc.bias"])

    h2 = block(block(xt, "b1"), "b2")
    h4 = (h2 @ p["tied"].T) @ p["tied"].T
    y = h4 * torch.tensor(k).to(h4.dtype)
    z = (h2 * h2) @ p["head.weight"].T + p["head.bias"]
    (y * torch.tensor(dy)).sum().backward(retain_graph=True)
    (z * torch.tensor(dz)).sum().backward()
    grads = {n: t.grad.numpy() for n, t in p.items() if t.grad is not None}
    grads["x"] = xt.grad.numpy()
    return {"y": y.detach().numpy(), "z": z.detach().numpy()}, grads


def main():
    mithril = sys.argv[1]
    rng = np.random.default_rng(7)
    with tempfile.TemporaryDirectory() as tmp:
        r = Runner(mithril, tmp)
        # float64: finite differences on every parameter and the input x.
        w64 = {n: rng.uniform(-0.7, 0.7, s) for n, s in PARAMS.items()}
        x64 = rng.uniform(-1, 1, (3, 4))
        k = rng.integers(-2, 3, (3, 4)).astype(np.int64)
        r.grad_check(MODEL.format(t="float64"), {"x": x64, "k": k}, w64, grad_inputs=["x"], name="core64",
                     expect=list(PARAMS) + ["x"])

        # float32 against PyTorch autograd, both output gradients given.
        w = {n: a.astype(np.float32) for n, a in w64.items()}
        x = x64.astype(np.float32)
        dy = rng.standard_normal((3, 4)).astype(np.float32)
        dz = rng.standard_normal((3, 2)).astype(np.float32)
        model = MODEL.format(t="float32")
        outs, grads = r.run_grad(model, {"x": x, "k": k}, w, grad_inputs=["x"], output_grads={"y": dy, "z": dz}, name="core32")
        want_out, want = reference(w, x, k, dy, dz)
        if outs is not None:
            for n in ("y", "z"):
                r.check(f"core32 output {n}", outs[n], want_out[n], 1e-5, 1e-6)
            for n in want:
                r.check(f"core32 d/d{n} vs torch", grads.get(n), want[n], 1e-4, 1e-5)
            extra = sorted(set(grads) - set(want))
            if extra:
                r.failures.append(f"core32: unexpected gradients {extra}")

        # Frozen: b1 and the bias of head get no gradient; the rest is unchanged.
        outs, grads = r.run_grad(model, {"x": x, "k": k}, w, output_grads={"y": dy, "z": dz},
                                 extra=["--freeze", "b1", "--freeze", "head.bias"], name="frozen")
        _, want = reference(w, x, k, dy, dz, freeze=("b1.fc.weight", "b1.fc.bias", "head.bias"))
        del want["x"]
        if grads is not None:
            if sorted(grads) != sorted(want):
                r.failures.append(f"frozen: gradients {sorted(grads)}, expected {sorted(want)}")
            for n in want:
                r.check(f"frozen d/d{n} vs torch", grads.get(n), want[n], 1e-4, 1e-5)

        # Output gradients default to ones.
        outs, grads = r.run_grad(model, {"x": x, "k": k}, w, name="ones")
        _, want = reference(w, x, k, np.ones_like(dy), np.ones_like(dz))
        if grads is not None:
            r.check("default output gradients: d/dtied", grads.get("tied"), want["tied"], 1e-4, 1e-5)
        return r.finish()


if __name__ == "__main__":
    sys.exit(main())
