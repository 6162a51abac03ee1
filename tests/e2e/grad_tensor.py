#!/usr/bin/env python3
"""End to end: gradients of the shape ops (Reshape .. Pad, Arange, Constant) and
the reductions (Sum .. LogSumExp, ArgMax/ArgMin).

Usage: grad_tensor.py MITHRIL ROOT

Each layer reads its own model input (so a failure names the op) and writes a
model output; every float input gets a gradient (--grad-inputs).
  1. float64: `mithril run --check-grad` against central finite differences
     (inputs away from max/min ties; Prod is multilinear, so its zeros are exact).
  2. float32 against PyTorch autograd with random output gradients, including
     max/min ties (torch.amax/amin share the gradient evenly) and Prod with zeros.
  3. The float32 model with a symbolic batch dim N, compiled once with --max N=4
     and run at N=3: Mean/Variance counts, Slice, Pad and Concat over N.
"""
import json
import os
import shlex
import subprocess
import sys
import tempfile

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Runner, runtime_prefix_arg  # noqa: E402

RTOL, ATOL = 1e-4, 1e-5
SYMBOLIC = {"sn": "[N, 3, 4]"}  # declared shapes that differ from the example arrays


def distinct(rng, *shape):
    """Values at least 0.05 apart (no max/min ties), in random order."""
    n = int(np.prod(shape))
    return (rng.permutation(n) * 0.05 - n * 0.025 + rng.uniform(0, 0.01, n)).reshape(shape)


def cases(rng, N):
    """(inputs float64, layers, outputs, torch reference taking a dict of tensors -> {output: tensor})."""
    x = {
        "r_in": rng.standard_normal((2, 3, 4)),
        "fl_in": rng.standard_normal((2, 3, 2, 2)),
        "tr_in": rng.standard_normal((2, 3, 4)),
        "pe_in": rng.standard_normal((2, 3, 4)),
        "sq_in": rng.standard_normal((2, 1, 3, 1)),
        "us_in": rng.standard_normal((2, 3)),
        "ex_in": rng.standard_normal((3, 1)),
        "ca_a": rng.standard_normal((2, 3)),
        "ca_b": rng.standard_normal((2, 1)),
        "sp_in": rng.standard_normal((2, 6)),
        "sl_in": rng.standard_normal((5, 4)),
        "ga_in": rng.standard_normal((5, 3)),
        "pd_in": rng.standard_normal((2, 3)),
        "su_in": rng.standard_normal((2, 3, 4)),
        "me_in": rng.standard_normal((2, 3, 4)),
        "mx_in": distinct(rng, 2, 3, 4),
        "mn_in": distinct(rng, 2, 3, 4),
        "pr_in": rng.uniform(0.5, 1.5, (3, 4)) * rng.choice([-1, 1], (3, 4)),
        "pr2_in": rng.uniform(0.5, 1.5, (3, 2, 4)),
        "va_in": rng.standard_normal((3, 4, 5)),
        "ls_in": rng.standard_normal((3, 4, 5)),
        "am_in": distinct(rng, 3, 4),
        "ar_in": rng.standard_normal((2, 5)),
        "co_in": rng.standard_normal((2, 3)),
        "sn": rng.standard_normal((N, 3, 4)),
    }
    x["pr_in"][0, 1] = 0.0                       # one zero in row 0
    x["pr_in"][1, 0] = x["pr_in"][1, 3] = 0.0    # two zeros in row 1
    layers, outs = [], []

    def layer(op, name, args=None, output=None, **ports):
        d = {"op": op, "name": name}
        if args:
            d["args"] = args
        d.update(ports)
        d["output"] = output or name
        layers.append(json.dumps(d))
        if output is None:
            outs.append(name)

    layer("Reshape", "reshape", {"shape": [4, -1]}, input="r_in")
    layer("Reshape", "reshape0", {"shape": [0, 12]}, input="r_in")
    layer("Flatten", "flatten", {"start_dim": 1, "end_dim": 2}, input="fl_in")
    layer("Transpose", "transpose", {"dim0": 0, "dim1": -1}, input="tr_in")
    layer("Permute", "permute", {"dims": [2, 0, -2]}, input="pe_in")
    layer("Squeeze", "squeeze", {"axis": 1}, input="sq_in")
    layer("Unsqueeze", "unsqueeze", {"axis": [0, -1]}, input="us_in")
    layer("Expand", "expand", {"shape": [2, 3, 4]}, input="ex_in")
    layer("Concat", "concat", {"axis": 1}, input=["ca_a", "ca_b", "ca_a"])
    layer("Split", "split", {"axis": 1, "sizes": [1, 2, 3]}, output=["sp0", "sp1", "sp2"], input="sp_in")
    outs += ["sp0", "sp2"]  # sp1 reaches no output: its part of the gradient is 0
    layer("Slice", "slice_rev", {"axis": 0, "start": 4, "stop": 0, "step": -2}, input="sl_in")
    layer("Slice", "slice_step", {"axis": 1, "start": 1, "stop": 100, "step": 2}, input="sl_in")
    layer("Constant", "gidx", {"value": [[0, 2, 0], [-1, 2, 4]], "dtype": "int64"}, output="gidx")
    layer("Constant", "gidx32", {"value": [2, 2, -3], "dtype": "int32"}, output="gidx32")
    layer("Gather", "gather0", {"axis": 0}, input="ga_in", indices="gidx")
    layer("Gather", "gather1", {"axis": -1}, input="ga_in", indices="gidx32")
    layer("Pad", "pad", {"pads": [1, 2, 0, 1], "value": 0.5}, input="pd_in")
    layer("Sum", "sum02", {"axis": [0, 2]}, input="su_in")
    layer("Sum", "sum_all", None, input="su_in")
    layer("Mean", "mean02k", {"axis": [0, 2], "keepdim": True}, input="me_in")
    layer("Mean", "mean_last", {"axis": -1}, input="me_in")
    layer("Max", "max1", {"axis": 1}, input="mx_in")
    layer("Max", "max_allk", {"keepdim": True}, input="mx_in")
    layer("Min", "min02", {"axis": [0, 2]}, input="mn_in")
    layer("Prod", "prod1", {"axis": 1}, input="pr_in")
    layer("Prod", "prod02", {"axis": [0, 2]}, input="pr2_in")
    layer("Variance", "var02", {"axis": [0, 2]}, input="va_in")
    layer("Variance", "var1k_c0", {"axis": 1, "correction": 0, "keepdim": True}, input="va_in")
    layer("LogSumExp", "lse02", {"axis": [0, 2]}, input="ls_in")
    layer("LogSumExp", "lse_all", None, input="ls_in")
    layer("ArgMax", "argmax1", {"axis": 1}, input="am_in")
    layer("ArgMin", "argmin", None, input="am_in")
    layer("Arange", "arange", {"dtype": "float64"}, output="arange", input="ar_in")
    layer("Multiply", "ar_mul", None, left="ar_in", right="arange")
    layer("Constant", "cst", {"value": [1.5, -2, 3], "dtype": "float64"}, output="cst")
    layer("Multiply", "co_mul", None, left="co_in", right="cst")
    # The symbolic batch dim N.
    layer("Sum", "sn_sum0", {"axis": 0}, input="sn")
    layer("Mean", "sn_mean02", {"axis": [0, 2]}, input="sn")
    layer("Variance", "sn_var0", {"axis": 0}, input="sn")
    layer("Max", "sn_max0", {"axis": 0}, input="sn")
    layer("Slice", "sn_slice", {"axis": 0, "start": 1}, input="sn")
    layer("Concat", "sn_cat", {"axis": 0}, input=["sn", "sn"])
    layer("Pad", "sn_pad", {"pads": [1, 1, 0, 0, 2, 0]}, input="sn")
    layer("Reshape", "sn_reshape", {"shape": [0, -1]}, input="sn")
    layer("Transpose", "sn_tr", {"dim0": 0, "dim1": 2}, input="sn")
    layer("Constant", "snidx", {"value": [0, -1, 0], "dtype": "int64"}, output="snidx")
    layer("Gather", "sn_gather", {"axis": 0}, input="sn", indices="snidx")

    gidx = torch.tensor([[0, 2, 0], [-1 % 5, 2, 4]])
    gidx32 = torch.tensor([2, 2, -3 % 3])

    def ref(t):
        r = {
            "reshape": t["r_in"].reshape(4, -1), "reshape0": t["r_in"].reshape(2, 12),
            "flatten": t["fl_in"].flatten(1, 2), "transpose": t["tr_in"].transpose(0, -1),
            "permute": t["pe_in"].permute(2, 0, 1), "squeeze": t["sq_in"].squeeze(1),
            "unsqueeze": t["us_in"][None, :, :, None], "expand": t["ex_in"].expand(2, 3, 4),
            "concat": torch.cat([t["ca_a"], t["ca_b"], t["ca_a"]], 1),
            "slice_rev": t["sl_in"].flip(0)[0:4:2], "slice_step": t["sl_in"][:, 1::2],
            "gather0": t["ga_in"][gidx], "gather1": t["ga_in"][:, gidx32],
            "pad": torch.nn.functional.pad(t["pd_in"], (1, 2, 0, 1), value=0.5),
            "sum02": t["su_in"].sum((0, 2)), "sum_all": t["su_in"].sum(),
            "mean02k": t["me_in"].mean((0, 2), keepdim=True), "mean_last": t["me_in"].mean(-1),
            "max1": t["mx_in"].amax(1), "max_allk": t["mx_in"].amax((0, 1, 2), keepdim=True),
            "min02": t["mn_in"].amin((0, 2)), "prod1": t["pr_in"].prod(1),
            "prod02": t["pr2_in"].prod(2).prod(0),
            "var02": t["va_in"].var((0, 2), unbiased=True), "var1k_c0": t["va_in"].var(1, unbiased=False, keepdim=True),
            "lse02": t["ls_in"].logsumexp((0, 2)), "lse_all": t["ls_in"].logsumexp((0, 1, 2)),
            "ar_mul": t["ar_in"] * torch.arange(5, dtype=t["ar_in"].dtype),
            "co_mul": t["co_in"] * torch.tensor([1.5, -2, 3], dtype=t["co_in"].dtype),
            "sn_sum0": t["sn"].sum(0), "sn_mean02": t["sn"].mean((0, 2)), "sn_var0": t["sn"].var(0),
            "sn_max0": t["sn"].amax(0), "sn_slice": t["sn"][1:], "sn_cat": torch.cat([t["sn"], t["sn"]], 0),
            "sn_pad": torch.nn.functional.pad(t["sn"], (1, 1, 0, 0, 2, 0)),
            "sn_reshape": t["sn"].reshape(t["sn"].shape[0], -1), "sn_tr": t["sn"].transpose(0, 2),
            "sn_gather": t["sn"][[0, -1, 0]],
        }
        sp = torch.split(t["sp_in"], [1, 2, 3], 1)
        r["sp0"], r["sp2"] = sp[0], sp[2]
        return r

    return x, layers, outs, ref


def model_text(name, inputs, layers, outs, dtype, symbolic):
    lines = [f"name: {name}", "inputs:"]
    for n, a in inputs.items():
        shape = SYMBOLIC.get(n, str(list(a.shape))) if symbolic else str(list(a.shape))
        lines.append(f"  {n}: {{shape: {shape}, dtype: {dtype}}}")
    lines.append(f"outputs: [{', '.join(outs)}]")
    lines.append("layers:")
    lines += [f"  - {l.replace('float64', dtype)}" for l in layers]
    return "\n".join(lines) + "\n"


def torch_grads(inputs, ref, ograds):
    t = {n: torch.tensor(a, dtype=torch.float64, requires_grad=True) for n, a in inputs.items()}
    outs = ref(t)
    names = sorted(outs)
    torch.autograd.backward([outs[n] for n in names], [torch.tensor(ograds[n], dtype=torch.float64) for n in names])
    return {n: np.zeros(v.shape) if v.grad is None else v.grad.numpy() for n, v in t.items()}


def compare(r, tag, grads, want):
    for n, w in want.items():
        g = None if grads is None else grads.get(n)
        if g is not None and g.dtype != np.float32:
            r.failures.append(f"{tag} d/d{n}: dtype {g.dtype}, expected float32")
            continue
        r.check(f"{tag} d/d{n} vs torch", g, w, RTOL, ATOL)


def main():
    mithril, _root = sys.argv[1], sys.argv[2]
    rng = np.random.default_rng(20240612)
    with tempfile.TemporaryDirectory() as tmp:
        r = Runner(mithril, tmp)

        # 1. float64 against finite differences.
        x, layers, outs, _ = cases(rng, 2)
        text = model_text("grad_tensor64", x, layers, outs, "float64", symbolic=False)
        r.grad_check(text, x, grad_inputs=list(x), tol=1e-6, name="grad_tensor64", expect=list(x))

        # 2. float32 against torch, with ties for Max/Min and zeros for Prod.
        x, layers, outs, ref = cases(rng, 2)
        x["mx_in"][0, :, 1] = x["mx_in"][0, 2, 1]        # a 3-way tie along axis 1
        x["mx_in"][1, 0, 0] = x["mx_in"].max()            # a tie for the overall max
        x["mn_in"][0, 1, :] = x["mn_in"].min()            # 4 ties (2 results)
        x32 = {n: a.astype(np.float32) for n, a in x.items()}
        x64 = {n: a.astype(np.float64) for n, a in x32.items()}
        want_out = {n: v.detach() for n, v in ref({n: torch.tensor(a) for n, a in x64.items()}).items()}
        ograds = {n: rng.standard_normal(v.shape).astype(np.float32) for n, v in want_out.items()}
        want = torch_grads(x64, ref, {n: g.astype(np.float64) for n, g in ograds.items()})
        text32 = model_text("grad_tensor32", x32, layers, outs, "float32", symbolic=True)
        _, grads = r.run_grad(text32, x32, grad_inputs=list(x32), output_grads=ograds, name="grad_tensor32")
        compare(r, "f32", grads, want)

        # 3. N left to run time: one binary (--max N=4), run at N=3.
        xs, _, _, _ = cases(rng, 3)
        xs = {n: a.astype(np.float32) for n, a in xs.items()}
        xs64 = {n: a.astype(np.float64) for n, a in xs.items()}
        outs_s = ref({n: torch.tensor(a) for n, a in xs64.items()})
        og_s = {n: rng.standard_normal(v.shape).astype(np.float32) for n, v in outs_s.items()}
        want_s = torch_grads(xs64, ref, {n: g.astype(np.float64) for n, g in og_s.items()})
        proj = os.path.join(tmp, "sym")
        model = os.path.join(tmp, "grad_tensor32.yaml")
        with open(model, "w") as f:
            f.write(text32)
        c = subprocess.run([mithril, "compile", model, "-o", proj, "--max", "N=4", "--grad", "--grad-inputs", ",".join(xs)],
                           capture_output=True, text=True)
        if c.returncode != 0:
            r.failures.append(f"symbolic: mithril compile --grad failed: {c.stderr}")
        else:
            b = subprocess.run(f"cmake -S {proj} -B {proj}/b {shlex.quote(runtime_prefix_arg(mithril))} -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_FLAGS=-Werror "
                               f"> {proj}/build.log 2>&1 && cmake --build {proj}/b -j 2 >> {proj}/build.log 2>&1", shell=True)
            if b.returncode != 0:
                log = open(os.path.join(proj, "build.log"), errors="replace").read()
                r.failures.append(f"symbolic: the --max N=4 project does not build with -Werror:\n{log[-3000:]}")
            else:
                d = tempfile.mkdtemp(dir=tmp)
                args = [os.path.join(proj, "b", "grad_tensor32"), "--grad"]
                for n, a in og_s.items():
                    np.save(os.path.join(d, f"d_{n}.npy"), a)
                    args += ["--output-grad", f"{n}={os.path.join(d, 'd_' + n + '.npy')}"]
                got = r._invoke(args, xs, d, "symbolic N=3 run --grad")
                if got is not None:
                    gdir = os.path.join(d, "out", "grad")
                    grads = {f[:-4]: np.load(os.path.join(gdir, f)) for f in os.listdir(gdir) if f.endswith(".npy")}
                    compare(r, "N=3", grads, want_s)
        sys.exit(r.finish())


if __name__ == "__main__":
    main()
