#!/usr/bin/env python3
"""CPU training benchmarks, Mithril's generated code against PyTorch eager (Debian's
python3-torch) in the same run, with the same thread count, weights, inputs and labels:

1. forward + cross-entropy loss + backward (the gradient issue's table);
2. a whole training step with AdamW (forward, loss, backward, update), as steps per
   second: Mithril's generated training program (`mithril train ... --bench N`) against
   `opt.zero_grad(); cross_entropy(net(x), y).backward(); opt.step()`.

    /usr/bin/python3 tools/bench/bench_train.py [--threads 2] [--only GPT]

Mithril: the sample is imported into a model that adds `CrossEntropy`, compiled
with --grad, and timed by the binary's `--grad --bench N` (median of N forward
and backward passes after a warm-up; BatchNorm in training mode). PyTorch: the
same step (`loss = cross_entropy(net(x), y); loss.backward()`, gradients reset to
None between steps) in a fresh process. Peak resident memory is each process's
ru_maxrss: for PyTorch it includes the interpreter and libtorch (the baseline
column shows how much was resident before the first step). No optimizer update:
that is issue 5's benchmark. Ratios from one run only; the machine is noisy.
"""
import argparse
import datetime
import multiprocessing
import os
import re
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "e2e"))
from bench_cpu import cpu_model, torch_gpt2, torch_lenet, torch_mlp, torch_resnet18  # noqa: E402
from harness import save_safetensors  # noqa: E402

ROWS = [
    # name, sample, input, shape, classes, builder, output, runs
    ("MLP batch 64", "mlp", "input", (64, 784), 10, torch_mlp, "output", 100),
    ("LeNet batch 64", "lenet", "input", (64, 1, 28, 28), 10, torch_lenet, "output", 100),
    ("ResNet-18 batch 8", "resnet18", "input", (8, 3, 224, 224), 1000, torch_resnet18, "output", 5),
    ("GPT-2 small 4 x 64 tokens", "gpt2", "tokens", (4, 64), 50257, torch_gpt2, "logits", 3),
]


def wrapper(sample, in_name, shape, dtype, out_name, classes, tokens):
    lines = [f"name: {sample}_train", f"import: {os.path.join(ROOT, 'samples', sample + '.yaml')}", "inputs:",
             f"  {in_name}: {{shape: {list(shape)}, dtype: {dtype}}}",
             f"  labels: {{shape: {list(shape if tokens else shape[:1])}, dtype: int64}}", "outputs: [loss]", "layers:",
             f"  - {{op: {sample}, name: net, {in_name}: {in_name}, {out_name}: logits}}"]
    if tokens:
        lines += [f"  - {{op: Reshape, args: {{shape: [-1, {classes}]}}, input: logits, output: rows}}",
                  "  - {op: Reshape, args: {shape: [-1]}, input: labels, output: targets}",
                  "  - {op: CrossEntropy, input: rows, target: targets, output: loss}"]
    else:
        lines.append("  - {op: CrossEntropy, input: logits, target: labels, output: loss}")
    return "\n".join(lines) + "\n"


def time_torch(builder_name, x, labels, runs, threads):
    import torch

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    net = globals()[builder_name](torch).train()
    xt, yt = torch.from_numpy(x), torch.from_numpy(labels)
    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

    def step():
        for p in net.parameters():
            p.grad = None
        out = net(xt)
        loss = torch.nn.functional.cross_entropy(out.reshape(-1, out.shape[-1]) if x.dtype == np.int64 else out, yt.reshape(-1))
        loss.backward()
        return loss.item()

    loss = step()
    for _ in range(max(1, runs // 10) - 1):
        step()
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        step()
        times.append((time.perf_counter() - t) * 1e3)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return loss, float(np.median(times)), peak, baseline


def time_torch_step(builder_name, x, labels, runs, threads):
    import torch

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    net = globals()[builder_name](torch).train()
    opt = torch.optim.AdamW(net.parameters(), lr=1e-4, weight_decay=0.01)
    xt, yt = torch.from_numpy(x), torch.from_numpy(labels)

    def step():
        opt.zero_grad(set_to_none=True)
        out = net(xt)
        loss = torch.nn.functional.cross_entropy(out.reshape(-1, out.shape[-1]), yt.reshape(-1))
        loss.backward()
        opt.step()

    for _ in range(max(1, runs // 10)):
        step()
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        step()
        times.append((time.perf_counter() - t) * 1e3)
    return float(np.median(times)), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


STEP_ROWS = [
    # name, sample, input shape, classes, builder, runs
    ("MLP batch 64", "mlp", (64, 784), 10, torch_mlp, 100),
    ("LeNet batch 64", "lenet", (64, 1, 28, 28), 10, torch_lenet, 100),
    ("GPT-2 small 4 x 64 tokens", "gpt2", (4, 64), 50257, torch_gpt2, 3),
]


def step_rows(args, env, tmp):
    rows = []
    for name, sample, shape, classes, build, runs in STEP_ROWS:
        if args.only and args.only not in name:
            continue
        import torch

        torch.manual_seed(0)
        net = build(torch)
        wpath = os.path.join(tmp, f"{sample}_step.safetensors")
        save_safetensors(wpath, {k: v.detach().numpy() for k, v in net.state_dict().items() if not k.endswith("num_batches_tracked")})
        del net
        rng = np.random.default_rng(0)
        cmd = [args.mithril, "train", os.path.join(ROOT, "samples", sample + ".yaml"), "--optimizer", "adamw", "--lr", "1e-4",
               "--weight-decay", "0.01", "--batch-size", str(shape[0]), "--val-split", "0", "--weights", wpath, "--bench", str(runs),
               "--threads", str(args.threads)]
        if sample == "gpt2":
            tokens = rng.integers(0, classes, 100000).astype(np.uint16)
            tokens.tofile(os.path.join(tmp, "tokens.bin"))
            cmd += ["--data", os.path.join(tmp, "tokens.bin"), "--format", "tokens", "--shape", f"T={shape[1]}", "--arg", "dropout=0.0"]
            x = tokens[: shape[0] * shape[1]].astype(np.int64).reshape(shape)
            y = tokens[1: shape[0] * shape[1] + 1].astype(np.int64).reshape(shape)
        else:
            x = rng.standard_normal(shape).astype(np.float32)
            y = rng.integers(0, classes, shape[0]).astype(np.int64)
            np.save(os.path.join(tmp, "sx.npy"), x)
            np.save(os.path.join(tmp, "sy.npy"), y)
            cmd += ["--data", os.path.join(tmp, "sx.npy"), "--labels", os.path.join(tmp, "sy.npy")]
        p = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if p.returncode != 0:
            rows.append((name, None, None, None, None, (p.stderr.strip().splitlines() or ["failed"])[-1]))
            continue
        ours = float(re.search(r"median ([0-9.]+) ms", p.stdout).group(1))
        our_peak = float(re.search(r"peak resident memory ([0-9.]+) MiB", p.stdout).group(1))
        with multiprocessing.get_context("spawn").Pool(1) as pool:
            theirs, peak = pool.apply(time_torch_step, (build.__name__, x, y, runs, args.threads))
        rows.append((name, ours, theirs, our_peak, peak / 2**20, ""))
    return rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--only", default="")
    ap.add_argument("--mithril", default=os.path.join(ROOT, "build", "mithril"))
    args = ap.parse_args()
    import torch

    torch.set_num_threads(1)
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), MITHRIL_NUM_THREADS=str(args.threads))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        env["MITHRIL_CACHE_DIR"] = os.path.join(tmp, "cache")
        for name, sample, in_name, shape, classes, build, out_name, runs in ROWS:
            if args.only and args.only not in name:
                continue
            torch.manual_seed(0)
            net = build(torch)
            weights = {"net." + k: v.detach().numpy() for k, v in net.state_dict().items()
                       if not k.endswith("num_batches_tracked")}
            del net
            wpath = os.path.join(tmp, f"{sample}.safetensors")
            save_safetensors(wpath, weights)
            del weights
            rng = np.random.default_rng(0)
            tokens = in_name == "tokens"
            x = rng.integers(0, 50257, shape).astype(np.int64) if tokens else rng.standard_normal(shape).astype(np.float32)
            labels = rng.integers(0, classes, shape if tokens else shape[:1]).astype(np.int64)
            model = os.path.join(tmp, f"{sample}_train.yaml")
            with open(model, "w") as f:
                f.write(wrapper(sample, in_name, shape, "int64" if tokens else "float32", out_name, classes, tokens))
            np.save(os.path.join(tmp, "x.npy"), x)
            np.save(os.path.join(tmp, "y.npy"), labels)
            p = subprocess.run([args.mithril, "run", model, "--mode", "train", "--grad", "--input", f"{in_name}={tmp}/x.npy",
                                "--input", f"labels={tmp}/y.npy", "--weights", wpath, "--bench", str(runs), "-o",
                                os.path.join(tmp, "out")], capture_output=True, text=True, env=env)
            if p.returncode != 0:
                rows.append((name, None, None, None, None, None, (p.stderr.strip().splitlines() or ["failed"])[-1]))
                continue
            ours = float(re.search(r"median ([0-9.]+) ms", p.stdout).group(1))
            our_peak = float(re.search(r"peak resident memory ([0-9.]+) MiB", p.stdout).group(1))
            our_loss = float(np.load(os.path.join(tmp, "out", "loss.npy")))
            with multiprocessing.get_context("spawn").Pool(1) as pool:
                loss, theirs, peak, base = pool.apply(time_torch, (build.__name__, x, labels, runs, args.threads))
            agree = abs(loss - our_loss) <= 1e-3 * max(1.0, abs(loss))
            rows.append((name, ours, theirs, our_peak, peak / 2**20, base / 2**20,
                         "losses agree" if agree else f"LOSSES DIFFER ({our_loss} vs {loss})"))

        steps = step_rows(args, env, tmp)

    date = datetime.date.today().isoformat()
    lines = [f"# CPU training step (forward, loss, backward), {date}", "",
             f"CPU: {cpu_model()}; threads: {args.threads}; median after warm-up.",
             f"PyTorch {torch.__version__} eager (Debian). Ratio = PyTorch time / Mithril time (> 1: Mithril faster).", "",
             "| run | Mithril (ms) | PyTorch (ms) | ratio | Mithril peak RSS (MiB) | PyTorch peak RSS (MiB) | PyTorch before first step | note |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for name, ours, theirs, mp, tp, tb, note in rows:
        if ours is None:
            lines.append(f"| {name} | - | - | - | - | - | - | not run: {note} |")
        else:
            lines.append(f"| {name} | {ours:.2f} | {theirs:.2f} | {theirs / ours:.2f}x | {mp:.0f} | {tp:.0f} | {tb:.0f} | {note} |")
    lines += ["", f"## Training step with AdamW (forward, loss, backward, update), steps per second", "",
              "| run | Mithril steps/s | PyTorch steps/s | ratio | Mithril peak RSS (MiB) | PyTorch peak RSS (MiB) | note |",
              "| --- | --- | --- | --- | --- | --- | --- |"]
    for name, ours, theirs, mp, tp, note in steps:
        if ours is None:
            lines.append(f"| {name} | - | - | - | - | - | not run: {note} |")
        else:
            lines.append(f"| {name} | {1e3 / ours:.2f} | {1e3 / theirs:.2f} | {theirs / ours:.2f}x | {mp:.0f} | {tp:.0f} | {note} |")
    text = "\n".join(lines) + "\n"
    print(text)
    out = os.path.join(HERE, "results", f"train-{date}.md")
    with open(out, "w") as f:
        f.write(text)
    print("written to", os.path.relpath(out, ROOT))


if __name__ == "__main__":
    main()
