"""The CUDA target (mithril compile --target cuda), without or with a GPU.

Everywhere:
  * `mithril targets` describes both targets; an unknown one is an error listing them;
  * the samples whose every op the CUDA target has code for compile to CUDA projects, and those
    projects build with nvcc, warnings as errors (host and device code), in one CMake build (one
    runtime for all, so the suite pays for it once; device code for sm_90 unless
    MITHRIL_CUDA_ARCH says otherwise);
  * an op it has no code for yet and --train give one clear error and write nothing.
  * the same projects built for the CPU's emulation of CUDA (-DMITHRIL_CUDA_EMULATE=ON, the
    runtime's cuda/emulate.h: the generated kernels and the runtime's, threads, blocks, barriers
    and shuffles run on the CPU) run on random inputs, and their outputs match the CPU target's
    within rtol 1e-4, atol 1e-5; a bad token id is one error naming the layer. This checks the
    generated code's logic everywhere, not the GPU's arithmetic or speed.
  * every program is compiled with --grad: the emulated ones also compare their gradients (atol
    scaled by the tensor's largest value); train_mode runs batch norm with batch statistics;
    Dropout in training is checked by its masks' statistics (its masks are not the CPU's);
  * training programs (compile --train --target cuda) build too; digits_mlp and a tiny GPT train,
    emulated, to the CPU's losses (relative 1e-4) and weights (1e-3 of each tensor's norm).
With a GPU (nvidia-smi lists one): the nvcc-built programs run the same comparison (float32; cuBLAS
without TF32, softmax and layer norm summing in float: docs/codegen.md; training within 1e-3 and
1e-2). Without one, those runs are skipped with a notice (tools/gpu/check.sh runs this script's
kit on a lent GPU).

usage: cuda_target.py MITHRIL REPO          (MITHRIL_GPU_KIT=DIR: also write the kit tools/gpu/check.sh runs)
       cuda_target.py --check-kit KIT REPORT    (on a GPU machine: run the kit's programs, write REPORT)
"""
import atexit
import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import runtime_prefix_arg  # noqa: E402

KIT_MODE = len(sys.argv) > 1 and sys.argv[1] == "--check-kit"  # tools/gpu/check.sh, on the GPU machine
MITHRIL, REPO = (None, None) if KIT_MODE else (sys.argv[1], sys.argv[2])
NVCC = shutil.which("nvcc") or ("/usr/local/cuda/bin/nvcc" if os.path.exists("/usr/local/cuda/bin/nvcc") else None)
RTOL, ATOL = 1e-4, 1e-5

# Samples the CUDA target compiles: (name, extra args, {input: (shape, kind)}).
GPT_SMALL = ["--arg", "layers=2", "--arg", "dim=64", "--arg", "heads=4", "--arg", "vocab=97", "--arg", "context=32"]
PROGRAMS = [
    ("mlp", [], {"input": ((4, 784), "float")}),
    ("digits_mlp", [], {"pixels": ((4, 64), "float")}),
    ("two_tower", [], {"query": ((4, 32), "float"), "item": ((4, 48), "float")}),
    ("char_gpt", [], {"tokens": ((2, 16), "tokens:128")}),
    ("gpt2", GPT_SMALL, {"tokens": ((2, 16), "tokens:97")}),
    ("lenet", [], {"input": ((2, 1, 28, 28), "float")}),
    ("digits_cnn", [], {"image": ((2, 1, 8, 8), "float")}),
    ("tiny_resnet", [], {"image": ((2, 3, 32, 32), "float")}),
    ("resnet18", [], {"input": ((1, 3, 224, 224), "float")}),
    ("mobilenet", [], {"image": ((1, 3, 224, 224), "float")}),
]
# Models of this test's own (ops no sample uses), written next to the generated projects.
CUSTOM = {"reductions": """name: reductions
inputs:
  x: {shape: [N, 6, 5, 7]}
outputs: [sum_all, mean_hw, max_c, min_first_last, var_w, lse_c, prod_w, tail, every_other, joined]
layers:
  - {op: Sum, name: sum_all, input: x, output: sum_all}
  - {op: Mean, name: mean_hw, input: x, args: {axis: [2, 3]}, output: mean_hw}
  - {op: Max, name: max_c, input: x, args: {axis: 1, keepdim: true}, output: max_c}
  - {op: Min, name: min_first_last, input: x, args: {axis: [0, 3]}, output: min_first_last}
  - {op: Variance, name: var_w, input: x, args: {axis: -1}, output: var_w}
  - {op: LogSumExp, name: lse_c, input: x, args: {axis: 1}, output: lse_c}
  - {op: Prod, name: prod_w, input: x, args: {axis: 3}, output: prod_w}
  - {op: Slice, name: tail, input: x, args: {axis: 3, start: 2}, output: tail}
  - {op: Slice, name: every_other, input: x, args: {axis: 1, start: -1, step: -2}, output: every_other}
  - {op: Concat, name: joined, input: [x, tail], args: {axis: -1}, output: joined}
"""}
CUSTOM["losses"] = """name: losses
inputs:
  x: {shape: [N, 12]}
  target: {shape: [N], dtype: int64}
outputs: [ce_mean, ce_sum, probs, logp, attended]
layers:
  - {op: Linear, name: proj, input: x, args: {dimension: 5}, output: logits}
  - {op: CrossEntropy, name: ce_mean, input: logits, target: target, args: {label_smoothing: 0.1}, output: ce_mean}
  - {op: CrossEntropy, name: ce_sum, input: logits, target: target, args: {reduction: sum, ignore_index: 2}, output: ce_sum}
  - {op: Softmax, name: probs, input: logits, output: probs}
  - {op: LogSoftmax, name: logp, input: logits, output: logp}
  - {op: Reshape, name: seq, input: x, args: {shape: [-1, 3, 4]}, output: seq}
  - {op: ScaledDotProductAttention, name: attended, query: seq, key: seq, value: seq, output: attended}
"""
# Training-mode forward and backward (compiled and run with --mode train): batch norm with the batch's
# statistics (and its backward through them); Dropout's p is 0 here (its masks are the target's own).
CUSTOM["train_mode"] = """name: train_mode
inputs:
  x: {shape: [N, 3, 6, 6]}
outputs: [y]
layers:
  - {op: Conv2d, name: conv, input: x, args: {out_channels: 4, kernel_size: 3, padding: 1}}
  - {op: BatchNorm2d, name: bn}
  - {op: Relu, name: act}
  - {op: Dropout, name: drop, args: {p: 0.0}}
  - {op: GlobalAvgPool2d, name: pool}
  - {op: Flatten, name: flat}
  - {op: Linear, name: head, args: {dimension: 3}, output: y}
"""
# Dropout in training on the CUDA target: its own masks; checked by their statistics.
DROPOUT_MODEL = """name: dropout_only
inputs:
  x: {shape: [N, 4096]}
layers:
  - {op: Dropout, name: drop, args: {p: 0.25}}
"""
PROGRAMS.append(("reductions", ["--grad-inputs", "x"], {"x": ((3, 6, 5, 7), "float")}))
PROGRAMS.append(("train_mode", ["--mode", "train"], {"x": ((4, 3, 6, 6), "float")}))
PROGRAMS.append(("losses", [], {"x": ((4, 12), "float"), "target": ((4,), "tokens:5")}))
# The other losses, every reduction, and the gradients w.r.t. the float targets too (--grad-inputs t).
CUSTOM["pointwise_losses"] = """name: pointwise_losses
inputs:
  x: {shape: [N, 6]}
  t: {shape: [N, 6]}
  c: {shape: [N], dtype: int64}
outputs: [mse, l1, huber, bce, kl, nll, nll_none]
layers:
  - {op: Linear, name: proj, input: x, args: {dimension: 6}, output: z}
  - {op: MSE, name: mse, input: z, target: t, output: mse}
  - {op: L1, name: l1, input: z, target: t, args: {reduction: sum}, output: l1}
  - {op: Huber, name: huber, input: z, target: t, args: {reduction: none, delta: 0.5}, output: huber}
  - {op: BinaryCrossEntropy, name: bce, input: z, target: t, output: bce}
  - {op: LogSoftmax, name: logp, input: z, output: logp}
  - {op: LogSoftmax, name: logq, input: t, output: logq}
  - {op: KLDivergence, name: kl, input: logp, target: logq, args: {reduction: batchmean, log_target: true}, output: kl}
  - {op: NLL, name: nll, input: logp, target: c, args: {ignore_index: 1}, output: nll}
  - {op: NLL, name: nll_none, input: logp, target: c, args: {reduction: none}, output: nll_none}
"""
PROGRAMS.append(("pointwise_losses", ["--grad-inputs", "t"], {"x": ((4, 6), "float"), "t": ((4, 6), "float"), "c": ((4,), "tokens:6")}))
# ArgMax/ArgMin, Gather, Expand, Pad, GroupNorm and ConvTranspose2d, with the gradients of the last five.
CUSTOM["index_ops"] = """name: index_ops
inputs:
  x: {shape: [N, 5, 4]}
  idx: {shape: [3], dtype: int64}
outputs: [best, worst, picked, wide, padded, grouped, up]
layers:
  - {op: ArgMax, name: best, input: x, args: {axis: 1}, output: best}
  - {op: ArgMin, name: worst, input: x, output: worst}
  - {op: Gather, name: picked, input: x, indices: idx, args: {axis: 1}, output: picked}
  - {op: Reshape, name: col, input: x, args: {shape: [-1, 5, 4, 1]}, output: col}
  - {op: Expand, name: wide, input: col, args: {shape: [2, -1, -1, -1, 3]}, output: wide}
  - {op: Pad, name: padded, input: x, args: {pads: [1, 2, 0, 1], value: 0.5}, output: padded}
  - {op: Reshape, name: img, input: x, args: {shape: [-1, 4, 5, 1]}, output: img}
  - {op: GroupNorm, name: grouped, input: img, args: {num_groups: 2}, output: grouped}
  - {op: ConvTranspose2d, name: up, input: img, args: {out_channels: 6, kernel_size: 3, stride: 2, padding: 1, output_padding: 1, groups: 2}, output: up}
"""
PROGRAMS.append(("index_ops", ["--grad-inputs", "x"], {"x": ((2, 5, 4), "float"), "idx": ((3,), "tokens:5")}))
# Every program is compiled with --grad (its forward pass is the same code); these also run their
# backward pass here, emulated (the big CNNs' direct convolution gradients are too slow emulated).
GRAD_RUNS = {"mlp", "digits_mlp", "two_tower", "char_gpt", "gpt2", "lenet", "digits_cnn", "tiny_resnet", "reductions", "losses",
             "train_mode", "pointwise_losses", "index_ops"}
# Training programs (compile --train --target cuda): all built with nvcc; the first two also trained
# emulated, their losses and weights compared with `mithril train` on the CPU (the same seed and data).
TINY_GPT = """name: tiny_gpt
import: {repo}/samples/gpt2.yaml
inputs:
  tokens: {{shape: [N, T], dtype: int64}}
outputs: [logits]
layers:
  - op: gpt2
    name: gpt
    args: {{vocab: 128, context: 16, dim: 32, heads: 2, layers: 1, dropout: 0.0}}
    tokens: tokens
    logits: logits
train:
  data: {repo}/samples/data/gnu-licenses.txt
  format: bytes
  shape: {{T: 16}}
  loss: CrossEntropy
  optimizer: {{kind: adamw, lr: 0.003, weight_decay: 0.01}}
  clip_norm: 1.0
  epochs: 2
  batch_size: 4
  steps_per_epoch: 5
  val_split: 0.1
  val_batches: 2
  seed: 0
"""
TRAINERS = [("digits_mlp", ["--epochs", "2"], True), ("tiny_gpt", [], True), ("digits_cnn", ["--epochs", "1"], False)]
TRAIN_DATA = {"digits_mlp": "samples/data/digits.csv.gz", "tiny_gpt": "samples/data/gnu-licenses.txt"}  # for the GPU kit
CUSTOM_DIR = tempfile.mkdtemp(prefix="mithril-cuda-models-")
atexit.register(shutil.rmtree, CUSTOM_DIR, True)
if not KIT_MODE:
    CUSTOM["tiny_gpt"] = TINY_GPT.format(repo=os.path.abspath(REPO))
    CUSTOM["dropout_only"] = DROPOUT_MODEL
for _name, _text in CUSTOM.items():
    open(os.path.join(CUSTOM_DIR, _name + ".yaml"), "w").write(_text)


def read_safetensors(path):
    """{name: float array} of a safetensors file (float32 and float64 only)."""
    import json
    raw = open(path, "rb").read()
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8:8 + n])
    out = {}
    for k, v in header.items():
        if k == "__metadata__":
            continue
        a, b = v["data_offsets"]
        dt = {"F32": np.float32, "F64": np.float64}[v["dtype"]]
        out[k] = np.frombuffer(raw[8 + n + a:8 + n + b], dtype=dt).reshape(v["shape"])
    return out


def compare_training(trainer, ref_run, run_dir, where, data=None, loss_tol=1e-4, weight_tol=1e-3):
    """Runs a training program and compares its epochs' losses (relative 1e-4) and final weights (each
    tensor's difference at most 1e-3 of its norm: Adam's m / sqrt(v) turns rounding differences in
    near-zero gradients into steps of up to lr) with the CPU run's. Returns a line."""
    import json
    name = os.path.basename(trainer)
    q = run([trainer, "-o", run_dir, "--no-progress"] + (["--data", data] if data else []))
    check(q.returncode == 0, f"{name} on the {where}: " + q.stdout[-2000:] + q.stderr[-2000:])
    if q.returncode != 0:
        return f"| {name} | training | failed: {(q.stderr.strip().splitlines() or ['?'])[-1]} | |"
    ref = [json.loads(l) for l in open(os.path.join(ref_run, "metrics.jsonl"))]
    got = [json.loads(l) for l in open(os.path.join(run_dir, "metrics.jsonl"))]
    worst = 0.0
    for r, g in zip(ref, got):
        for k in ("train_loss", "val_loss"):
            worst = max(worst, abs(r[k] - g[k]) / max(abs(r[k]), 1e-12))
    ok = len(ref) == len(got) and worst <= loss_tol
    check(ok, f"{name} on the {where}: losses {[(g['train_loss'], g['val_loss']) for g in got]} vs the CPU's "
              f"{[(r['train_loss'], r['val_loss']) for r in ref]}")
    wr, wg = read_safetensors(os.path.join(ref_run, "weights.safetensors")), read_safetensors(os.path.join(run_dir, "weights.safetensors"))
    def rel(k):
        return float(np.linalg.norm(wg[k].astype(np.float64) - wr[k]) / max(np.linalg.norm(wr[k].astype(np.float64)), 1e-30))
    werr = max((rel(k) for k in wr if k in wg and wr[k].size and wg[k].shape == wr[k].shape), default=0.0)
    wok = set(wr) == set(wg) and all(wg[k].shape == wr[k].shape for k in wr) and werr <= weight_tol
    check(wok, f"{name} on the {where}: final weights differ from the CPU's by up to {werr:.3g} of their norm")
    losses = ", ".join(f"{g['train_loss']:.4f}/{g['val_loss']:.4f}" for g in got)
    return (f"| {name} | {len(got)} epochs, train/val loss {losses} | losses within {worst:.2g} relative, weights within "
            f"{werr:.2g} of their norm: {'ok' if ok and wok else 'FAIL'} | |")


def model_path(name):
    return os.path.join(CUSTOM_DIR, name + ".yaml") if name in CUSTOM else os.path.join(REPO, "samples", name + ".yaml")


# Every op has CUDA code now; what is missing is a case of one: softmax over another axis than the last.
UNSUPPORTED_MODEL = """name: softmax_first
inputs:
  x: {shape: [N, 8]}
layers:
  - {op: Softmax, name: sm, args: {axis: 0}}
"""

failures = []
T0 = time.time()


def stamp(what):
    print(f"[{time.time() - T0:6.1f} s] {what}", flush=True)


def run(args, **kw):
    return subprocess.run(args, capture_output=True, text=True, **kw)


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL:", what)


def has_gpu():
    smi = shutil.which("nvidia-smi")
    if not smi:
        return False
    p = run([smi, "-L"])
    return p.returncode == 0 and "GPU" in p.stdout


def make_references(refdir):
    """Random inputs, weights and the CPU target's outputs for every program: refdir/NAME/{in_*.npy,
    weights.safetensors, cpu/*.npy}; returns [(name, refdir/NAME, [input args])]."""
    rng = np.random.default_rng(7)
    refs = []
    for name, extra, inputs in PROGRAMS:
        d = os.path.join(refdir, name)
        os.makedirs(d, exist_ok=True)
        args = []
        for iname, (shape, kind) in inputs.items():
            a = (rng.integers(0, int(kind.split(":")[1]), shape).astype(np.int64) if kind.startswith("tokens")
                 else rng.standard_normal(shape).astype(np.float32))
            np.save(os.path.join(d, f"in_{iname}.npy"), a)
            args.append((iname, f"in_{iname}.npy"))
        q = run([MITHRIL, "run", model_path(name), "-o", os.path.join(d, "cpu"), "--save-weights", os.path.join(d, "weights.safetensors")] + extra +
                [x for i, f in args for x in ("--input", f"{i}={os.path.join(d, f)}")] + (["--grad"] if name in GRAD_RUNS else []))
        check(q.returncode == 0, f"{name} on the CPU (the reference): " + q.stderr)
        refs.append((name, d, args))
    return refs


def compare_on_gpu(bindir, refs, outdir, rtol=RTOL, atol=ATOL, where="GPU", bench=True):
    """Runs bindir/NAME on each reference's inputs and weights and compares with the CPU's outputs;
    a bad token id must be one error naming the embedding layer. Returns the report's lines."""
    lines = []
    for name, d, args in refs:
        out = os.path.join(outdir, name)
        inputs = [x for i, f in args for x in ("--input", f"{i}={os.path.join(d, f)}")]
        grad = ["--grad"] if os.path.isdir(os.path.join(d, "cpu", "grad")) else []
        if not os.path.exists(os.path.join(bindir, name)):
            check(False, f"{name} on the {where}: not built")
            continue
        q = run([os.path.join(bindir, name), "--weights", os.path.join(d, "weights.safetensors"), "-o", out] + inputs + grad)
        check(q.returncode == 0, f"{name} on the {where}: " + q.stdout + q.stderr)
        if q.returncode != 0:
            lines.append(f"| {name} | - | failed: {(q.stderr.strip().splitlines() or ['?'])[-1]} | |")
            continue
        files = [f for f in sorted(os.listdir(os.path.join(d, "cpu"))) if f.endswith(".npy")]
        if grad:
            files += ["grad/" + f for f in sorted(os.listdir(os.path.join(d, "cpu", "grad"))) if f.endswith(".npy")]
        for f in files:
            c, g = np.load(os.path.join(d, "cpu", f)), np.load(os.path.join(out, f))
            same = c.shape == g.shape
            err = float(np.max(np.abs(g.astype(np.float64) - c))) if same and c.size else 0.0
            rel = float(np.linalg.norm(g.astype(np.float64) - c) / max(np.linalg.norm(c.astype(np.float64)), 1e-30)) if same else float("nan")
            # Gradients sum over the batch in another order: atol relative to the tensor's own scale.
            scale = float(np.max(np.abs(c))) if f.startswith("grad/") and c.size else 1.0
            ok = same and bool(np.allclose(g, c, rtol=rtol, atol=atol * max(scale, 1.0)))
            check(ok, f"{name} {f}: {where} vs CPU max abs error {err:.3g}")
            timing = ""
            if bench:
                q2 = run([os.path.join(bindir, name), "--weights", os.path.join(d, "weights.safetensors"), "--bench", "50"] + inputs)
                timing = q2.stdout.strip().splitlines()[0] if q2.returncode == 0 and q2.stdout.strip() else "bench failed"
            lines.append(f"| {name} | {f} | max abs {err:.3g}, relative {rel:.3g}: {'ok' if ok else 'FAIL'} | {timing} |")
    for name, d, args in refs:
        if name != "char_gpt":
            continue
        bad = os.path.join(outdir, "bad_tokens.npy")
        os.makedirs(outdir, exist_ok=True)
        np.save(bad, np.full((2, 16), 1000, dtype=np.int64))
        q = run([os.path.join(bindir, name), "--input", f"tokens={bad}", "-o", os.path.join(outdir, "bad")])
        ok = q.returncode != 0 and "index 1000 is out of range [0, 128)" in q.stderr
        check(ok, f"bad token on the {where}: " + q.stderr)
        lines.append(f"| char_gpt | token 1000 of 128 | {'one error naming the layer: ok' if ok else 'FAIL: ' + q.stderr.strip()} | |")
    return lines


def write_kit(kit, bindir, refs, trainers=()):
    """What tools/gpu/check.sh needs on a GPU machine that cannot build Mithril: the programs (built
    here for sm_90), the references, and the shared libraries the programs need beyond the CUDA
    Toolkit's and glibc's."""
    shutil.rmtree(kit, ignore_errors=True)
    os.makedirs(os.path.join(kit, "bin"))
    os.makedirs(os.path.join(kit, "lib"))
    for name, _, _ in refs:
        shutil.copy2(os.path.join(bindir, name), os.path.join(kit, "bin", name))
    shutil.copytree(os.path.dirname(refs[0][1]), os.path.join(kit, "refs"))
    for line in run(["ldd", os.path.join(bindir, refs[0][0])]).stdout.splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[2].startswith("/") and any(k in parts[0] for k in ("openblas", "gfortran", "quadmath", "gomp")):
            shutil.copy2(parts[2], os.path.join(kit, "lib", parts[0]))
    with open(os.path.join(kit, "programs.txt"), "w") as f:
        for name, d, args in refs:
            f.write(name + " " + " ".join(f"{i}={fn}" for i, fn in args) + "\n")
    # Training programs: the binaries, their data, and the CPU runs (refs/train-NAME).
    os.makedirs(os.path.join(kit, "data"), exist_ok=True)
    with open(os.path.join(kit, "trainers.txt"), "w") as f:
        for name in trainers:
            shutil.copy2(os.path.join(bindir, name + "_trainer"), os.path.join(kit, "bin", name + "_trainer"))
            data = os.path.join(REPO, TRAIN_DATA[name])
            shutil.copy2(data, os.path.join(kit, "data", os.path.basename(data)))
            f.write(f"{name} {os.path.basename(data)}\n")
    print("wrote the GPU kit", kit)


def check_kit(kit, report):
    """On a GPU machine: the kit's programs against its CPU references; the table goes to `report`."""
    refs = []
    for line in open(os.path.join(kit, "programs.txt")):
        name, *args = line.split()
        refs.append((name, os.path.join(kit, "refs", name), [tuple(a.split("=", 1)) for a in args]))
    gpu = (run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"]).stdout.strip()
           if shutil.which("nvidia-smi") else "none found (nvidia-smi missing)")
    lines = ["# CUDA target on a GPU: outputs against the CPU target", "",
             f"GPU: {gpu}. Programs built with nvcc for sm_90 by tests/e2e/cuda_target.py (MITHRIL_GPU_KIT); "
             f"tolerance rtol {RTOL}, atol {ATOL} (float32).", "",
             "| program | output | GPU vs CPU | --bench 50 (batch of the reference inputs) |", "| --- | --- | --- | --- |"]
    with tempfile.TemporaryDirectory() as tmp:
        lines += compare_on_gpu(os.path.join(kit, "bin"), refs, tmp)
        # Training: a GPU sums in other orders than the CPU, so looser bounds than the emulation's.
        trainers_txt = os.path.join(kit, "trainers.txt")
        for line in open(trainers_txt) if os.path.exists(trainers_txt) else []:
            name, data = line.split()
            lines.append(compare_training(os.path.join(kit, "bin", name + "_trainer"), os.path.join(kit, "refs", "train-" + name),
                                          os.path.join(tmp, "train-" + name), "GPU", data=os.path.join(kit, "data", data),
                                          loss_tol=1e-3, weight_tol=1e-2))
    lines += ["", f"{len(failures)} failure(s)" if failures else "every check passed"]
    open(report, "w").write("\n".join(lines) + "\n")
    print("\n".join(lines))
    sys.exit(1 if failures else 0)


if KIT_MODE:
    check_kit(sys.argv[2], sys.argv[3])

with tempfile.TemporaryDirectory() as tmp:
    # --- mithril targets ---------------------------------------------------------------------------
    p = run([MITHRIL, "targets"])
    check(p.returncode == 0 and "cpu\n" in p.stdout and "cuda\n" in p.stdout and "CUDA C++20" in p.stdout,
          "mithril targets lists cpu and cuda: " + p.stdout + p.stderr)
    p = run([MITHRIL, "targets", "cuda"])
    check(p.returncode == 0 and "has code for:" in p.stdout and "Linear" in p.stdout and "internal ops" in p.stdout
          and "OptimizerStep" in p.stdout, "mithril targets cuda lists its ops: " + p.stdout)
    p = run([MITHRIL, "targets", "tpu"])
    check(p.returncode != 0 and "unknown target 'tpu'; available: cpu, cuda" in p.stderr, "unknown target: " + p.stderr)
    p = run([MITHRIL, "compile", os.path.join(REPO, "samples", "mlp.yaml"), "--target", "metal", "-o", os.path.join(tmp, "x")])
    check(p.returncode != 0 and "unknown target 'metal'" in p.stderr and not os.path.exists(os.path.join(tmp, "x")),
          "compile --target metal: " + p.stderr)

    # --- what the CUDA target does not do yet: one clear error, nothing written --------------------
    model = os.path.join(tmp, "softmax_first.yaml")
    open(model, "w").write(UNSUPPORTED_MODEL)
    out = os.path.join(tmp, "no-softmax")
    p = run([MITHRIL, "compile", model, "--target", "cuda", "--max", "N=2", "-o", out])
    check(p.returncode != 0 and "softmax_first.yaml:5:5: error: layer 'sm' (Softmax): an axis other than the last is not "
          "supported by the CUDA target yet" in p.stderr and p.stderr.count("error:") == 1 and not os.path.exists(out),
          "Softmax over axis 0 on cuda: " + p.stderr)
    # --emulate-gpu is for GPU targets only.
    np.save(os.path.join(tmp, "x784.npy"), np.zeros((1, 784), np.float32))
    p = run([MITHRIL, "run", os.path.join(REPO, "samples", "mlp.yaml"), "--emulate-gpu", "--input", "input=" + os.path.join(tmp, "x784.npy"),
             "-o", os.path.join(tmp, "emu-cpu")])
    check(p.returncode != 0 and "--emulate-gpu: error: only GPU targets are emulated" in p.stderr, "--emulate-gpu on the CPU: " + p.stderr)

    # --- every supported sample: generate, then one CMake build of all ------------------------------
    projects = []
    for name, extra, _ in PROGRAMS:
        out = os.path.join(tmp, name)
        p = run([MITHRIL, "compile", model_path(name), "--target", "cuda", "--grad", "--max", "N=4",
                 "--max", "B=4", "--max", "T=16", "-o", out] + extra)
        check(p.returncode == 0 and os.path.exists(os.path.join(out, name + ".cu")), f"compile {name} --target cuda: " + p.stderr)
        if p.returncode == 0:
            src = open(os.path.join(out, name + ".cu")).read()
            check("rt::cuda::" in src and "__device__" in src or name == "mlp", f"{name}.cu launches device code")
            projects.append((name, out))
    # Dropout in training: its masks' statistics (the CPU's masks are drawn otherwise).
    out = os.path.join(tmp, "dropout_only")
    p = run([MITHRIL, "compile", model_path("dropout_only"), "--target", "cuda", "--mode", "train", "--grad", "--grad-inputs", "x",
             "--max", "N=4", "-o", out])
    check(p.returncode == 0, "compile dropout_only --mode train --target cuda: " + p.stderr)
    if p.returncode == 0:
        projects.append(("dropout_only", out))
    # Training programs.
    trainers = []
    for name, flags, _ in TRAINERS:
        out = os.path.join(tmp, "train-" + name)
        p = run([MITHRIL, "compile", model_path(name), "--train", "--target", "cuda", "-o", out] + flags)
        check(p.returncode == 0 and os.path.exists(os.path.join(out, name + "_train.cu")), f"compile {name} --train --target cuda: " + p.stderr)
        if p.returncode == 0:
            trainers.append((name, out))
    def build_together(build, emulate):
        """One CMake project holding every program: the first one's CMakeLists.txt (its runtime, flags
        and architecture logic) plus an executable per other program; True when it built."""
        first_name, first = projects[0]
        lists = open(os.path.join(first, "CMakeLists.txt")).read()
        if not os.path.exists(os.path.join(first, "CMakeLists.txt.orig")):
            open(os.path.join(first, "CMakeLists.txt.orig"), "w").write(lists)
        lists = open(os.path.join(first, "CMakeLists.txt.orig")).read()
        for name, out in projects[1:]:
            lists += (f"add_executable({name} {out}/main.cpp {out}/{name}.cu)\n"
                      f"target_include_directories({name} PRIVATE {out})\n"
                      f"target_link_libraries({name} PRIVATE ${{MITHRIL_CUDA_PROGRAM_LIBRARIES}})\n")
            if emulate:
                lists += f"set_source_files_properties({out}/{name}.cu PROPERTIES LANGUAGE CXX)\n"
        for name, out in trainers:
            lists += (f"add_executable({name}_trainer {out}/main.cpp {out}/{name}.cu {out}/{name}_train.cu)\n"
                      f"target_include_directories({name}_trainer PRIVATE {out})\n"
                      f"target_link_libraries({name}_trainer PRIVATE ${{MITHRIL_TRAIN_LIBRARY}} ${{MITHRIL_CUDA_PROGRAM_LIBRARIES}})\n")
            if emulate:
                lists += f"set_source_files_properties({out}/{name}.cu {out}/{name}_train.cu PROPERTIES LANGUAGE CXX)\n"
        open(os.path.join(first, "CMakeLists.txt"), "w").write(lists)
        # The runtime's host part prebuilt (`mithril runtime build`, shared with the suite's other tests):
        # each build compiles only the CUDA part of the runtime. The kit keeps the bundled copy (its
        # programs must not depend on this machine's cache).
        prefix = "-DMITHRIL_BUNDLED_RUNTIME=ON" if os.environ.get("MITHRIL_GPU_KIT") else runtime_prefix_arg(MITHRIL)
        cfg = ["cmake", "-S", first, "-B", build, "-G", "Ninja", "-DMITHRIL_WERROR=ON", prefix]
        if emulate:  # -O1: builds in half the time of -O3 and the programs still run in seconds
            cfg += ["-DMITHRIL_CUDA_EMULATE=ON", "-DCMAKE_CXX_FLAGS_RELEASE=-O1 -DNDEBUG"]
        else:
            cfg.append(f"-DCMAKE_CUDA_COMPILER={NVCC}")
            # Programs that will run (a GPU here, or the kit for one): SASS for the GPU, optimized. A
            # compile check only: PTX for sm_90 (every device function still compiled, its warnings
            # errors; ptxas skipped) at -O1, in 60% of the time.
            runs = has_gpu() or bool(os.environ.get("MITHRIL_GPU_KIT"))
            arch = os.environ.get("MITHRIL_CUDA_ARCH") or ("" if has_gpu() else "90" if runs else "90-virtual")
            if arch:
                cfg.append(f"-DCMAKE_CUDA_ARCHITECTURES={arch}")
            if not runs:
                cfg += ["-DCMAKE_CUDA_FLAGS_RELEASE=-O1 -DNDEBUG", "-DCMAKE_CXX_FLAGS_RELEASE=-O1 -DNDEBUG"]
        what = "for the CUDA emulation" if emulate else "with nvcc"
        p = run(cfg)
        check(p.returncode == 0, f"configure the CUDA projects {what}: " + p.stdout[-3000:] + p.stderr[-3000:])
        if p.returncode != 0:
            return False
        p = run(["cmake", "--build", build, "-j", str(min(4, os.cpu_count() or 2))])
        check(p.returncode == 0, f"build the CUDA projects {what}, warnings as errors:\n" + p.stdout[-6000:] + p.stderr[-3000:])
        if p.returncode == 0:
            print(f"built {len(projects)} CUDA programs and {len(trainers)} training programs {what} (-Werror): " +
                  ", ".join(n for n, _ in projects + trainers))
        return p.returncode == 0

    stamp("generated the projects")
    refs = make_references(os.path.join(tmp, "refs")) if projects else []
    train_refs = {}
    for name, flags, emulated in TRAINERS:
        if not emulated or not any(n == name for n, _ in trainers):
            continue
        ref_run = os.path.join(tmp, "refs", "train-" + name)
        q = run([MITHRIL, "train", model_path(name), "-o", ref_run, "--no-progress"] + flags)
        check(q.returncode == 0, f"mithril train {name} (the CPU reference): " + q.stdout[-2000:] + q.stderr[-2000:])
        if q.returncode == 0:
            train_refs[name] = ref_run
    stamp("ran the CPU references")
    # --- everywhere: the generated CUDA, emulated on the CPU, against the CPU target ---------------
    emulated = projects and build_together(os.path.join(tmp, "emulated"), emulate=True)
    stamp("built for the emulation")
    if emulated:
        emu = os.path.join(tmp, "emulated")
        for line in compare_on_gpu(emu, refs, os.path.join(tmp, "emu-out"), where="CUDA emulation", bench=False):
            print(line)
        # --profile: the layers' device times (events around each layer's launches; host clocks here).
        d = dict((n, (dd, a)) for n, dd, a in refs).get("digits_mlp")
        if d:
            q = run([os.path.join(emu, "digits_mlp"), "--weights", os.path.join(d[0], "weights.safetensors"), "--bench", "3", "--profile",
                     "--grad"] + [x for i, f in d[1] for x in ("--input", f"{i}={os.path.join(d[0], f)}")])
            check(q.returncode == 0 and "emulated on the CPU" in q.stdout and all(k in q.stdout for k in ("fc1", "head", "Linear", "backward")),
                  "digits_mlp --bench 3 --profile, emulated: " + q.stdout[-3000:] + q.stderr[-2000:])
        for name, ref_run in train_refs.items():
            print(compare_training(os.path.join(emu, name + "_trainer"), ref_run, os.path.join(tmp, "emu-train-" + name), "CUDA emulation"))
        # Dropout's masks: about p of the elements zeroed, the rest scaled by 1/(1-p), and the gradient
        # (dy = 1) through the same mask.
        ones = os.path.join(tmp, "ones.npy")
        np.save(ones, np.ones((4, 4096), np.float32))
        q = run([os.path.join(emu, "dropout_only"), "--input", f"x={ones}", "--grad", "-o", os.path.join(tmp, "drop")])
        check(q.returncode == 0, "dropout_only emulated: " + q.stderr)
        if q.returncode == 0:
            y = np.load(os.path.join(tmp, "drop", "output.npy"))
            dx = np.load(os.path.join(tmp, "drop", "grad", "x.npy"))
            zeros = float(np.mean(y == 0))
            check(abs(zeros - 0.25) < 0.02 and bool(np.all((y == 0) | np.isclose(y, 1 / 0.75))) and bool(np.array_equal(y, dx)),
                  f"Dropout(p=0.25) in training, emulated: {zeros:.4f} zeroed, values {np.unique(y)[:4]}, gradient equal: {np.array_equal(y, dx)}")
            print(f"| dropout_only | output, grad/x | {zeros:.4f} of 16384 zeroed (p = 0.25), the rest 1/(1-p), gradient through the same mask |  |")
        stamp("ran the emulated programs")
    if not NVCC:
        print("SKIP: no nvcc (the CUDA Toolkit at /usr/local/cuda): the generated CUDA was not compiled for a GPU")
    elif projects:
        build = os.path.join(tmp, "build")
        built = build_together(build, emulate=False)
        stamp("built with nvcc")
        if built:
            kit = os.environ.get("MITHRIL_GPU_KIT")
            if kit:
                write_kit(kit, build, refs, [n for n in train_refs])
            # --- on a GPU: the same outputs as the CPU target --------------------------------------------
            if not has_gpu():
                # Without a GPU a program says so, once, and exits non-zero.
                x = os.path.join(tmp, "x.npy")
                np.save(x, np.zeros((4, 784), np.float32))
                q = run([os.path.join(build, "mlp"), "--input", f"input={x}", "-o", os.path.join(tmp, "none")])
                check(q.returncode != 0 and "no CUDA device" in q.stderr and q.stderr.count("\n") == 1
                      and not os.path.exists(os.path.join(tmp, "none")), "mlp without a GPU: " + q.stdout + q.stderr)
                # mithril run --target cuda: a CMake build in the cache, then the program (no GPU: its message).
                env = dict(os.environ, MITHRIL_CACHE_DIR=os.path.join(tmp, "run-cache"))
                runcmd = [MITHRIL, "run", os.path.join(REPO, "samples", "mlp.yaml"), "--target", "cuda", "--input", f"input={x}",
                          "-o", os.path.join(tmp, "run-out")]
                q = run(runcmd, env=env)
                check(q.returncode == 1 and "mithril: building mlp for CUDA" in q.stderr and "no CUDA device" in q.stderr,
                      "mithril run --target cuda without a GPU: " + q.stderr[-3000:])
                q = run(runcmd, env=env)
                check(q.returncode == 1 and "building" not in q.stderr and "no CUDA device" in q.stderr,
                      "mithril run --target cuda again (cached): " + q.stderr[-3000:])
                print("SKIP (no GPU here): the nvcc-built programs were built, not run; tools/gpu/check.sh runs them on a lent GPU")
            else:
                for line in compare_on_gpu(build, refs, os.path.join(tmp, "gpu")):
                    print(line)

if failures:
    print(f"{len(failures)} failure(s)")
    sys.exit(1)
print("ok")
