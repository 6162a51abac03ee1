"""Shared pieces of the end-to-end tests: write a model, its inputs and weights,
run `mithril run`, and compare the outputs with NumPy references computed in
the test (never with anything Mithril produced).

One generated project is built per model, and builds cost seconds on two cores,
so tests put many ops into one model with several outputs.
"""
import json
import os
import struct
import subprocess
import tempfile

import numpy as np

SAFETENSORS_DTYPES = {np.dtype(np.float32): "F32", np.dtype(np.float64): "F64", np.dtype(np.int32): "I32",
                      np.dtype(np.int64): "I64", np.dtype(np.bool_): "BOOL"}


def save_safetensors(path, tensors):
    """The safetensors layout written with struct + json, independently of the runtime's writer."""
    header, blobs, offset = {}, [], 0
    for name in sorted(tensors):
        a = np.ascontiguousarray(tensors[name])
        header[name] = {"dtype": SAFETENSORS_DTYPES[a.dtype], "shape": list(a.shape),
                        "data_offsets": [offset, offset + a.nbytes]}
        blobs.append(a.tobytes())
        offset += a.nbytes
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def load_safetensors(path):
    """The safetensors layout read with struct + json, independently of the runtime's reader."""
    dtypes = {code: dt for dt, code in SAFETENSORS_DTYPES.items()}
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        lo, hi = info["data_offsets"]
        out[name] = np.frombuffer(data[8 + n + lo:8 + n + hi], dtype=dtypes[info["dtype"]]).reshape(info["shape"])
    return out


def torch_weights(net, prefix=""):
    """A PyTorch module's state dict as a Mithril weights dict: float32 arrays, names with `prefix`,
    without BatchNorm's num_batches_tracked (Mithril has none)."""
    return {prefix + k: v.detach().numpy().astype(np.float32) for k, v in net.state_dict().items()
            if not k.endswith("num_batches_tracked")}


def randomize_batchnorm(torch, bn, gen):
    """Gives a BatchNorm layer random affine parameters and running statistics from the torch
    Generator `gen` (weight and variance in [0.5, 1.5), bias and mean in [-0.5, 0.5)), so that
    eval mode tests more than the identity."""
    c = bn.num_features
    with torch.no_grad():
        bn.weight.copy_(torch.rand(c, generator=gen) + 0.5)
        bn.bias.copy_(torch.rand(c, generator=gen) - 0.5)
        bn.running_mean.copy_(torch.rand(c, generator=gen) - 0.5)
        bn.running_var.copy_(torch.rand(c, generator=gen) + 0.5)


def mlp_weights(rng):
    """Weights for samples/mlp.yaml (784-512-512-10, PyTorch names and layouts), drawn as PyTorch's
    Linear initializes them: uniform within 1/sqrt(fan_in)."""
    w = {}
    for layer, (fan_in, fan_out) in zip([0, 2, 4], [(784, 512), (512, 512), (512, 10)]):
        bound = 1 / np.sqrt(fan_in)
        w[f"{layer}.weight"] = rng.uniform(-bound, bound, (fan_out, fan_in)).astype(np.float32)
        w[f"{layer}.bias"] = rng.uniform(-bound, bound, (fan_out,)).astype(np.float32)
    return w


def mlp_reference(x, w):
    """samples/mlp.yaml in NumPy float64, from the model's meaning (Linear is x @ W.T + b)."""
    h = np.maximum(x.astype(np.float64) @ w["0.weight"].T + w["0.bias"], 0)
    h = np.maximum(h @ w["2.weight"].T + w["2.bias"], 0)
    return h @ w["4.weight"].T + w["4.bias"]


def model_yaml(name, inputs, layers, outputs):
    """A model file: `inputs` maps names to example arrays (their shapes and dtypes are declared),
    `layers` are YAML flow mappings, one per layer."""
    lines = [f"name: {name}", "inputs:"]
    for n, a in inputs.items():
        lines.append(f"  {n}: {{shape: {list(a.shape)}, dtype: {a.dtype.name}}}")
    lines.append(f"outputs: [{', '.join(outputs)}]")
    lines.append("layers:")
    lines += [f"  - {l}" for l in layers]
    return "\n".join(lines) + "\n"


def shared_cache(tmp):
    """The build cache for a test: the one ctest shares across the whole run (MITHRIL_CACHE_DIR, set
    for every e2e test by tests/CMakeLists.txt, where the runtime is built once), else one of its own
    in `tmp`. Tests that examine the cache itself (build_cache, blas_choice) keep their own."""
    return os.environ.get("MITHRIL_CACHE_DIR") or os.path.join(tmp, "cache")


def runtime_prefix_arg(mithril, env=None):
    """`-DCMAKE_PREFIX_PATH=P` for a `mithril compile` project's CMake configure, P being the runtime
    prebuilt in the test's cache (`mithril runtime build`): the project then finds it with
    find_package and compiles only its own sources (tests/e2e/standalone_project.sh tests the
    bundled copy). When it cannot be had, a harmless setting: the project builds its bundled runtime."""
    p = subprocess.run([mithril, "runtime", "build"], capture_output=True, text=True, env=env or os.environ)
    path = p.stdout.strip()
    return f"-DCMAKE_PREFIX_PATH={path}" if p.returncode == 0 and path and "\n" not in path else "-DMITHRIL_BUNDLED_RUNTIME=ON"


class Runner:
    def __init__(self, mithril, tmp):
        self.mithril = mithril
        self.tmp = tmp
        self.env = dict(os.environ, MITHRIL_CACHE_DIR=shared_cache(tmp))
        self.failures = []

    def run(self, model_text, inputs, weights=None, extra=(), name="model"):
        """Runs the model; returns {output name: array}. On failure records it and returns None."""
        d = tempfile.mkdtemp(dir=self.tmp)
        self.last_dir = d
        path = os.path.join(d, f"{name}.yaml")
        with open(path, "w") as f:
            f.write(model_text)
        args = [self.mithril, "run", path]
        if weights is not None:
            save_safetensors(os.path.join(d, "w.safetensors"), weights)
            args += ["--weights", os.path.join(d, "w.safetensors")]
        return self._invoke(args + list(extra), inputs, d, f"{name}: mithril run")

    def run_grad(self, model_text, inputs, weights=None, grad_inputs=(), output_grads=None, extra=(), name="model"):
        """`mithril run --grad`: returns ({output: array}, {parameter or input: gradient}), or (None, None)
        on failure. `output_grads` maps outputs to dL/d(output) (default: ones)."""
        d = tempfile.mkdtemp(dir=self.tmp)
        args = ["--grad"]
        if grad_inputs:
            args += ["--grad-inputs", ",".join(grad_inputs)]
        for n, a in (output_grads or {}).items():
            np.save(os.path.join(d, f"d_{n}.npy"), a)
            args += ["--output-grad", f"{n}={os.path.join(d, 'd_' + n + '.npy')}"]
        outs = self.run(model_text, inputs, weights, list(args) + list(extra), name)
        if outs is None:
            return None, None
        gdir = os.path.join(self.last_dir, "out", "grad")
        grads = {f[:-4]: np.load(os.path.join(gdir, f)) for f in os.listdir(gdir) if f.endswith(".npy")}
        return outs, grads

    def grad_check(self, model_text, inputs, weights=None, grad_inputs=(), tol=1e-6, extra=(), name="model", expect=None):
        """`mithril run --check-grad` on a float64 model: every gradient (parameters and `grad_inputs`)
        against central finite differences; each must have max error < tol, with
        error = |analytic - numeric| / max(1, |numeric|). `expect` lists the gradients that must appear."""
        args = ["--check-grad"]
        if grad_inputs:
            args += ["--grad-inputs", ",".join(grad_inputs)]
        d = tempfile.mkdtemp(dir=self.tmp)
        path = os.path.join(d, f"{name}.yaml")
        with open(path, "w") as f:
            f.write(model_text)
        cmd = [self.mithril, "run", path] + args + list(extra)
        if weights is not None:
            save_safetensors(os.path.join(d, "w.safetensors"), weights)
            cmd += ["--weights", os.path.join(d, "w.safetensors")]
        for n, a in inputs.items():
            np.save(os.path.join(d, f"{n}.npy"), a)
            cmd += ["--input", f"{n}={os.path.join(d, n + '.npy')}"]
        p = subprocess.run(cmd, capture_output=True, text=True, env=self.env, timeout=900)
        if p.returncode != 0:
            self.failures.append(f"{name}: mithril run --check-grad failed (exit {p.returncode}):\n{p.stderr}")
            return
        seen = set()
        for line in p.stdout.splitlines():
            if not line.startswith("grad-check ") or line.startswith("grad-check max error"):
                continue
            gname = line[len("grad-check "):line.index(": ")]
            err = float(line.split("max error ")[1].split()[0])
            seen.add(gname)
            if err < tol:
                print(f"ok   {name}: d/d{gname} vs finite differences ({err:.2g})")
            else:
                self.failures.append(f"{name}: d/d{gname} differs from finite differences: {line}")
        for gname in expect or ():
            if gname not in seen:
                self.failures.append(f"{name}: no gradient for {gname} (got {sorted(seen)})")

    def run_binary(self, binary, inputs, what):
        """Runs a generated binary (from `mithril compile` + cmake) on `inputs`; returns its outputs or None."""
        return self._invoke([binary], inputs, tempfile.mkdtemp(dir=self.tmp), what)

    def _invoke(self, args, inputs, d, what):
        args = args + ["-o", os.path.join(d, "out")]
        for n, a in inputs.items():
            np.save(os.path.join(d, f"{n}.npy"), a)
            args += ["--input", f"{n}={os.path.join(d, n + '.npy')}"]
        p = subprocess.run(args, capture_output=True, text=True, env=self.env, timeout=900)
        if p.returncode != 0:
            self.failures.append(f"{what} failed (exit {p.returncode}):\n{p.stderr}")
            return None
        out = os.path.join(d, "out")
        return {f[:-4]: np.load(os.path.join(out, f)) for f in os.listdir(out) if f.endswith(".npy")}

    def check(self, what, got, want, rtol, atol):
        want = np.asarray(want)
        if got is None:
            self.failures.append(f"{what}: no output")
            return
        if got.shape != want.shape:
            self.failures.append(f"{what}: shape {got.shape}, expected {want.shape}")
            return
        if want.dtype == np.bool_ or np.issubdtype(want.dtype, np.integer):
            ok = np.array_equal(got, want)
            err = "values differ"
        else:
            ok = np.allclose(got, want, rtol=rtol, atol=atol, equal_nan=True)
            err = f"max abs error {np.nanmax(np.abs(got.astype(np.float64) - want)) if got.size else 0:.3g}"
        if ok:
            print(f"ok   {what}")
        else:
            self.failures.append(f"{what}: {err} (rtol {rtol}, atol {atol})")

    def finish(self):
        # Generated code must compile warning-free (-Wall -Wextra are on in every generated project).
        cache = self.env["MITHRIL_CACHE_DIR"]
        if os.path.isdir(cache):
            for entry in sorted(os.listdir(cache)):
                log = os.path.join(cache, entry, "build.log")
                if os.path.exists(log):
                    warnings = [l for l in open(log, errors="replace") if "warning:" in l]
                    if warnings:
                        self.failures.append(f"{entry}: the generated code compiles with warnings:\n" + "".join(warnings[:10]))
        for f in self.failures:
            print("FAIL:", f)
        return 1 if self.failures else 0
