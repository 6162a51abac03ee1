#!/usr/bin/env python3
"""End to end: every optimizing pass preserves results.

Usage: passes_off.py MITHRIL ROOT

The sample models, compiled with all passes on (the default) and with all optional passes off
(`--no-pass all`: simplify, fold, cse, dce, fold-batchnorm, fuse-elementwise, fuse-epilogue,
fuse-pool, layout, pack-weights), on the same weights and inputs:
  - outputs and the gradients of every parameter (`mithril run --grad`, dL/d(output) = ones), in
    eval mode and, for the BatchNorm model, in train mode;
  - the outputs of the forward program alone (no --grad: where fold-batchnorm, fuse-epilogue,
    fuse-pool, layout and pack-weights act) against the outputs of the run with every pass off;
  - a short training run (digits MLP, one epoch, same seed): the trained weights.
The samples give the passes little to do, so one more model is written to give each of them work
(x * 1, constant arithmetic, a repeated subexpression, a Reshape chain, Log(Softmax), elementwise
chains); its IR must differ with the passes on, and its numbers must not.
Tolerance: the passes change which loops compute a value and where constants are rounded (fold
computes in double, a fused loop may contract a multiply and an add), not what is computed, so the
two agree to float32 rounding: max |on - off| <= 1e-5 * max(1, max |off|) per tensor (outputs,
gradients and trained weights alike).
"""
import os
import subprocess
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import shared_cache, load_safetensors  # noqa: E402

TOL = 1e-5

# Something for every pass: times_one (simplify), five (fold), scale_b (cse), split/join (reshape
# chain), log_probs (Log of Softmax), the Tanh/Relu/Multiply chain (fuse-elementwise), unused (dce).
WORKOUT = """
name: workout
inputs:
  x: {shape: [N, 16]}
outputs: [y, z]
layers:
  - {op: Linear, name: fc, args: {dimension: 8}, input: x, output: h}
  - {op: Constant, name: one, args: {value: 1.0}, output: one}
  - {op: Multiply, name: times_one, left: h, right: one, output: h1}
  - {op: Constant, name: two, args: {value: 2.0}, output: two}
  - {op: Constant, name: three, args: {value: 3.0}, output: three}
  - {op: Add, name: five, left: two, right: three, output: c5}
  - {op: Multiply, name: scale_a, left: h1, right: c5, output: a}
  - {op: Multiply, name: scale_b, left: h1, right: c5, output: b}
  - {op: Add, name: both, left: a, right: b, output: s}
  - {op: Tanh, name: squash, input: s, output: t}
  - {op: Multiply, name: half, left: t, right: two, output: t2}
  - {op: Relu, name: act, input: t2, output: r}
  - {op: Reshape, name: split, args: {shape: [-1, 2, 4]}, input: r, output: r3}
  - {op: Reshape, name: join, args: {shape: [-1, 8]}, input: r3, output: r2}
  - {op: Softmax, name: probs, args: {axis: -1}, input: r2, output: p}
  - {op: Log, name: log_probs, input: p, output: y}
  - {op: Exp, name: unused, input: h, output: dead}
  - {op: Sigmoid, name: gate, input: s, output: z}
"""


def run(mithril, args, env):
    p = subprocess.run([mithril] + args, capture_output=True, text=True, env=env, timeout=1800)
    if p.returncode != 0:
        raise RuntimeError(f"mithril {' '.join(args)} failed (exit {p.returncode}):\n{p.stderr}")
    return p.stdout


def load_dir(d):
    out = {}
    for root, _, files in os.walk(d):
        for f in files:
            if f.endswith(".npy"):
                out[os.path.relpath(os.path.join(root, f), d)[:-4]] = np.load(os.path.join(root, f))
    return out


def compare(what, on, off, failures):
    if sorted(on) != sorted(off):
        failures.append(f"{what}: different tensors: {sorted(on)} vs {sorted(off)}")
        return
    worst = 0.0
    for n in on:
        a, b = np.asarray(on[n], np.float64), np.asarray(off[n], np.float64)
        if a.shape != b.shape:
            failures.append(f"{what}: {n} has shape {a.shape} with passes on, {b.shape} off")
            continue
        err = float(np.max(np.abs(a - b))) / max(1.0, float(np.max(np.abs(b)))) if a.size else 0.0
        worst = max(worst, err)
        if not err <= TOL:
            failures.append(f"{what}: {n} differs with passes on and off: relative error {err:.3g} > {TOL}")
    print(f"ok   {what}: {len(on)} tensors agree (worst relative difference {worst:.2g})" if worst <= TOL else
          f"FAIL {what}")


def main():
    mithril, root = sys.argv[1], sys.argv[2]
    samples = os.path.join(root, "samples")
    rng = np.random.default_rng(5)
    cases = [
        ("mlp", {"input": rng.standard_normal((3, 784)).astype(np.float32)}, []),
        ("lenet", {"input": rng.standard_normal((2, 1, 28, 28)).astype(np.float32)}, []),
        ("tiny_resnet", {"image": rng.standard_normal((2, 3, 32, 32)).astype(np.float32)}, []),
        ("tiny_resnet", {"image": rng.standard_normal((2, 3, 32, 32)).astype(np.float32)}, ["--mode", "train"]),
        ("two_tower", {"query": rng.standard_normal((4, 32)).astype(np.float32),
                       "item": rng.standard_normal((4, 48)).astype(np.float32)}, []),
        ("char_gpt", {"tokens": rng.integers(0, 128, (2, 16)).astype(np.int64)}, []),
    ]
    failures = []
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, MITHRIL_CACHE_DIR=shared_cache(tmp))
        workout = os.path.join(tmp, "workout.yaml")
        with open(workout, "w") as f:
            f.write(WORKOUT)
        ir_on = run(mithril, ["check", workout, "--grad", "--dump-ir", "fuse-elementwise"], env)
        ir_off = run(mithril, ["check", workout, "--grad", "--dump-ir", "autodiff", "--no-pass", "all"], env)
        missing = [op for op in ("LogSoftmax(", "FusedElementwise(") if op not in ir_on]
        # What must have gone: five folded to a Constant, the others removed or merged.
        gone = [name for name in ("times_one", "scale_b", "five", "split", "unused")
                if any(line.endswith(f"# {name}") and "Constant(" not in line for line in ir_on.splitlines())]
        if missing or gone or ir_on == ir_off:
            failures.append(f"workout: the passes did not do their work (missing {missing}, still there {gone}):\n{ir_on}")
        else:
            print("ok   workout: simplify, fold, cse, dce and fuse-elementwise changed the IR")
        cases.append((workout, {"x": rng.standard_normal((5, 16)).astype(np.float32)}, []))
        for k, (sample, inputs, extra) in enumerate(cases):
            what = f"{os.path.basename(sample)}{' ' + ' '.join(extra) if extra else ''}"
            d = os.path.join(tmp, f"case{k}")
            os.makedirs(d)
            args = []
            for n, a in inputs.items():
                np.save(os.path.join(d, f"{n}.npy"), a)
                args += ["--input", f"{n}={os.path.join(d, n + '.npy')}"]
            model = sample if sample.endswith(".yaml") else os.path.join(samples, sample + ".yaml")
            w = os.path.join(d, "w.safetensors")
            try:
                run(mithril, ["run", model, "--grad", "--seed", "3", "--save-weights", w, "-o", os.path.join(d, "on")] + args + extra, env)
                run(mithril, ["run", model, "--grad", "--weights", w, "--no-pass", "all", "-o", os.path.join(d, "off")] + args + extra, env)
                run(mithril, ["run", model, "--weights", w, "-o", os.path.join(d, "forward")] + args + extra, env)
            except RuntimeError as e:
                failures.append(f"{what}: {e}")
                continue
            off = load_dir(os.path.join(d, "off"))
            compare(what, load_dir(os.path.join(d, "on")), off, failures)
            compare(what + ", forward program", load_dir(os.path.join(d, "forward")),
                    {n: a for n, a in off.items() if "/" not in n}, failures)

        # A short training run: the same seed, data order and steps give the same weights.
        trained = {}
        for label, extra in (("on", []), ("off", ["--no-pass", "all"])):
            rundir = os.path.join(tmp, f"train_{label}")
            try:
                run(mithril, ["train", os.path.join(samples, "digits_mlp.yaml"), "--epochs", "1", "--no-progress", "-o", rundir] + extra, env)
                trained[label] = load_safetensors(os.path.join(rundir, "weights.safetensors"))
            except RuntimeError as e:
                failures.append(f"digits_mlp training ({label}): {e}")
        if len(trained) == 2:
            compare("digits_mlp, one epoch of training", trained["on"], trained["off"], failures)

    for f in failures:
        print("FAIL", f)
    if failures:
        sys.exit(1)
    print("passes_off: all passes on and all off agree")


if __name__ == "__main__":
    main()
