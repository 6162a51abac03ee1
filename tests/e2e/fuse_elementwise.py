#!/usr/bin/env python3
"""End to end: the fuse-elementwise pass changes loops, never numbers.

Usage: fuse_elementwise.py MITHRIL ROOT

One model with two chains after a Linear:
  y = Tanh(Relu(Linear(x) * 2 + shift))            shift: [5], broadcast against [N, 5]
  z = Where(p, Sigmoid(Cast(p) * h), y)            p = h > 0 is read twice: it stays in memory
Fused, the first chain is one loop (scale, offset, act, squash) and the second one too (posf, gate,
soft, sel). With gradients the backward pass also reads a (ReluGrad), pf and sg, so the forward
chains split there, and the backward pass's chains (TanhGrad, ReluGrad, the Multiply by 2, ...) fuse.

Checked:
  - the IR (`mithril check --dump-ir fuse-elementwise`, with and without --grad) has those FusedElementwise nodes, and
    none with --no-pass fuse-elementwise;
  - outputs and gradients (of fc.weight, fc.bias, x and shift, dL/dy = dL/dz = ones) of the fused
    program against NumPy references written here from the ops' definitions, float64 in:
    float32 results, rtol 1e-5 / atol 1e-6 for outputs, rtol 1e-4 / atol 1e-5 for gradients (sums
    over the batch);
  - the fused outputs against the unfused program's: the same model with every intermediate a
    model output (nothing can fuse then) and, where `mithril run` offers it, --no-pass
    fuse-elementwise. Tolerance: float rounding, rtol 1e-6 / atol 1e-7 (the per-element expressions
    are the same; the C++ compiler may contract a multiply and an add into one FMA in the fused loop);
  - float64 gradients of the fused program against central finite differences (error < 1e-6,
    see harness.grad_check).
"""
import os
import subprocess
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Runner  # noqa: E402

MODEL = """
name: fuse
inputs:
  x: {{shape: [N, 8], dtype: {t}}}
  shift: {{shape: [5], dtype: {t}}}
outputs: [{outputs}]
layers:
  - {{op: Linear, args: {{dimension: 5}}, name: fc, input: x, output: h}}
  - {{op: Constant, args: {{value: 2.0, dtype: {t}}}, name: two, output: two}}
  - {{op: Multiply, left: h, right: two, name: scale, output: s}}
  - {{op: Add, left: s, right: shift, name: offset, output: a}}
  - {{op: Relu, input: a, name: act, output: r}}
  - {{op: Tanh, input: r, name: squash, output: y}}
  - {{op: Constant, args: {{value: 0.0, dtype: {t}}}, name: zero, output: zero}}
  - {{op: Greater, left: h, right: zero, name: pos, output: p}}
  - {{op: Cast, args: {{dtype: {t}}}, input: p, name: posf, output: pf}}
  - {{op: Multiply, left: pf, right: h, name: gate, output: g}}
  - {{op: Sigmoid, input: g, name: soft, output: sg}}
  - {{op: Where, condition: p, left: sg, right: y, name: sel, output: z}}
"""
FUSED = "y, z"
UNFUSABLE = "y, z, s, a, r, pf, g, sg"  # every intermediate a model output: nothing fuses

TOL_OUT = (1e-5, 1e-6)
TOL_GRAD = (1e-4, 1e-5)
TOL_SAME = (1e-6, 1e-7)


def reference(w, x, shift):
    """Outputs and gradients (dL/dy = dL/dz = ones) in float64, from the ops' definitions."""
    W, b = w["fc.weight"].astype(np.float64), w["fc.bias"].astype(np.float64)
    x, shift = x.astype(np.float64), shift.astype(np.float64)
    h = x @ W.T + b
    a = h * 2 + shift
    r = np.maximum(a, 0)
    y = np.tanh(r)
    p = h > 0
    g = p.astype(np.float64) * h
    sg = 1 / (1 + np.exp(-g))
    z = np.where(p, sg, y)
    dy = np.ones_like(y) + np.where(p, 0.0, 1.0)  # y's own gradient plus the Where's right branch
    da = dy * (1 - y * y) * (a > 0)
    dsg = np.where(p, 1.0, 0.0)
    dh = 2 * da + dsg * sg * (1 - sg) * p  # Cast(p) has no gradient
    grads = {"fc.weight": dh.T @ x, "fc.bias": dh.sum(0), "x": dh @ W, "shift": da.sum(0)}
    return {"y": y, "z": z}, grads


def fused_nodes(mithril, path, env, extra=()):
    """The names of the FusedElementwise nodes in the IR after the pass (`mithril check --dump-ir
    fuse-elementwise`: plain `check` summarizes the layers as written); None and the error on failure."""
    p = subprocess.run([mithril, "check", path, "--dump-ir", "fuse-elementwise", *extra], capture_output=True, text=True, env=env, timeout=300)
    if p.returncode != 0:
        return None, p.stderr
    return [line.split("# ")[-1].strip() for line in p.stdout.splitlines() if "FusedElementwise(" in line], ""


def main():
    mithril = sys.argv[1]
    rng = np.random.default_rng(11)
    with tempfile.TemporaryDirectory() as tmp:
        r = Runner(mithril, tmp)
        w64 = {"fc.weight": rng.uniform(-0.6, 0.6, (5, 8)), "fc.bias": rng.uniform(-0.3, 0.3, (5,))}
        x64 = rng.uniform(-1, 1, (6, 8))
        shift64 = rng.uniform(-0.5, 0.5, (5,))
        w = {n: a.astype(np.float32) for n, a in w64.items()}
        x, shift = x64.astype(np.float32), shift64.astype(np.float32)
        inputs = {"x": x, "shift": shift}
        model = MODEL.format(t="float32", outputs=FUSED)

        # The IR: what fuses.
        path = os.path.join(tmp, "fuse.yaml")
        with open(path, "w") as f:
            f.write(model)
        names, err = fused_nodes(mithril, path, r.env)
        if names is None:
            r.failures.append(f"mithril check --ir failed:\n{err}")
        elif sorted(names) == ["posf+gate+soft+sel", "scale+offset+act+squash"]:
            print(f"ok   fused {names}")  # p (read twice) and h (a Linear's) stay in memory
        else:
            r.failures.append(f"fused {names}, expected scale+offset+act+squash and posf+gate+soft+sel")
        # With gradients the backward pass reads a, pf and sg too: the forward chains split there,
        # and the backward chains fuse.
        grad_names, err = fused_nodes(mithril, path, r.env, ["--grad", "--grad-inputs", "x,shift"])
        if grad_names is None:
            r.failures.append(f"mithril check --ir --grad failed:\n{err}")
        elif "scale+offset" in grad_names and "act+squash" in grad_names and any(".grad" in n for n in grad_names):
            print(f"ok   fused with --grad {grad_names}")
        else:
            r.failures.append(f"fused with --grad: {grad_names}")
        off, err = fused_nodes(mithril, path, r.env, ["--no-pass", "fuse-elementwise"])
        if off is None or off:
            r.failures.append(f"--no-pass fuse-elementwise still fuses: {off or err}")

        # Fused: outputs and gradients against NumPy.
        want_out, want_grad = reference(w, x, shift)
        outs, grads = r.run_grad(model, inputs, w, grad_inputs=["x", "shift"], name="fused")
        if outs is not None:
            for n in ("y", "z"):
                r.check(f"fused output {n} vs numpy", outs.get(n), want_out[n], *TOL_OUT)
            for n in want_grad:
                r.check(f"fused d/d{n} vs numpy", grads.get(n), want_grad[n], *TOL_GRAD)

        # Unfused: the same chains with every intermediate kept, and --no-pass where run has it.
        plain = r.run(MODEL.format(t="float32", outputs=UNFUSABLE), inputs, w, name="unfusable")
        if outs is not None and plain is not None:
            for n in ("y", "z"):
                diff = float(np.max(np.abs(outs[n].astype(np.float64) - plain[n]))) if n in outs and n in plain else None
                r.check(f"fused output {n} vs unfused (max abs difference {diff})", outs.get(n), plain.get(n), *TOL_SAME)
        run_help = subprocess.run([mithril, "run", "--help"], capture_output=True, text=True).stdout
        if "--no-pass" in run_help:
            outs_off, grads_off = r.run_grad(model, inputs, w, grad_inputs=["x", "shift"], extra=["--no-pass", "fuse-elementwise"],
                                             name="nopass")
            if outs is not None and outs_off is not None:
                for n in ("y", "z"):
                    r.check(f"fused output {n} vs --no-pass fuse-elementwise", outs.get(n), outs_off.get(n), *TOL_SAME)
                for n in want_grad:
                    r.check(f"fused d/d{n} vs --no-pass fuse-elementwise", grads.get(n), grads_off.get(n), *TOL_SAME)
        else:
            print("note: `mithril run` has no --no-pass; compared with the unfusable variant only")

        # float64: the fused backward pass against finite differences.
        r.grad_check(MODEL.format(t="float64", outputs=FUSED), {"x": x64, "shift": shift64}, w64, grad_inputs=["x", "shift"],
                     name="fused64", expect=["fc.weight", "fc.bias", "x", "shift"])
        return r.finish()


if __name__ == "__main__":
    sys.exit(main())
