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
high-water mark (VmHWM; ru_maxrss would carry over the benchmark script's own
peak into the processes it starts): for PyTorch it includes the interpreter and
libtorch (the baseline column shows how much was resident before the first step). No optimizer update:
that is issue 5's benchmark. Ratios from one run only; the machine is noisy.
"""
import argparse
import os
import subprocess
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
from common import ROOT, cpu_model, parse_bench, peak_rss, save_safetensors  # noqa: E402

ROWS = [
    # name, sample, input, shape, classes, builder, output, runs
    ("MLP batch 64", "mlp", "input", (64, 784), 10, "torch_mlp", "output", 100),
    ("LeNet batch 64", "lenet", "input", (64, 1, 28, 28), 10, "torch_lenet", "output", 100),
    ("ResNet-18 batch 8", "resnet18", "input", (8, 3, 224, 224), 1000, "torch_resnet18", "output", 5),
    ("GPT-2 small 4 x 64 tokens", "gpt2", "tokens", (4, 64), 50257, "torch_gpt2", "logits", 3),
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
    net = common.build(torch, builder_name).train()
    xt, yt = torch.from_numpy(x), torch.from_numpy(labels)
    baseline = peak_rss()

    def step():
        for p in net.parameters():
            p.grad = None
        out = net(xt)
        loss = torch.nn.functional.cross_entropy(out.reshape(-1, out.shape[-1]) if x.dtype == np.int64 else out, yt.reshape(-1))
        loss.backward()
        return loss.item()

    loss = step()
    times = common.time_calls(step, runs, max(1, runs // 10) - 1)
    peak = peak_rss()
    return loss, float(np.median(times)), peak, baseline


def time_torch_step(builder_name, x, labels, runs, threads):
    import torch

    torch.set_num_threads(threads)
    net = common.build(torch, builder_name).train()
    opt = torch.optim.AdamW(net.parameters(), lr=1e-4, weight_decay=0.01)
    xt, yt = torch.from_numpy(x), torch.from_numpy(labels)

    def step():
        opt.zero_grad(set_to_none=True)
        out = net(xt)
        loss = torch.nn.functional.cross_entropy(out.reshape(-1, out.shape[-1]), yt.reshape(-1))
        loss.backward()
        opt.step()

    times = common.time_calls(step, runs, max(1, runs // 10))
    return float(np.median(times)), peak_rss()


STEP_ROWS = [
    # name, sample, input shape, classes, builder, runs
    ("MLP batch 64", "mlp", (64, 784), 10, "torch_mlp", 100),
    ("LeNet batch 64", "lenet", (64, 1, 28, 28), 10, "torch_lenet", 100),
    ("GPT-2 small 4 x 64 tokens", "gpt2", (4, 64), 50257, "torch_gpt2", 3),
]


def step_rows(args, env, tmp):
    rows = []
    for name, sample, shape, classes, builder, runs in STEP_ROWS:
        if args.only and args.only not in name:
            continue
        import torch

        wpath = os.path.join(tmp, f"{sample}_step.safetensors")
        save_safetensors(wpath, common.weights_of(common.build(torch, builder)))
        cmd, x, y = common.train_step_command(args.mithril, sample, shape, classes, wpath, runs, args.threads, tmp)
        p = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if p.returncode != 0:
            rows.append((name, None, None, None, None, common.last_line(p.stderr)))
            continue
        ours = parse_bench(p.stdout)
        theirs, peak = common.in_fresh_process(time_torch_step, builder, x, y, runs, args.threads)
        rows.append((name, ours["median"], theirs, ours["peak"], peak / 2**20, ""))
    return rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--only", default="")
    ap.add_argument("--mithril", default=common.DEFAULT_MITHRIL)
    args = ap.parse_args()
    import torch

    torch.set_num_threads(1)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        env = common.mithril_env(args.threads, os.path.join(tmp, "cache"))
        for name, sample, in_name, shape, classes, builder, out_name, runs in ROWS:
            if args.only and args.only not in name:
                continue
            wpath = os.path.join(tmp, f"{sample}.safetensors")
            save_safetensors(wpath, common.weights_of(common.build(torch, builder), prefix="net."))
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
                rows.append((name, None, None, None, None, None, common.last_line(p.stderr)))
                continue
            bench = parse_bench(p.stdout)
            ours, our_peak = bench["median"], bench["peak"]
            our_loss = float(np.load(os.path.join(tmp, "out", "loss.npy")))
            loss, theirs, peak, base = common.in_fresh_process(time_torch, builder, x, labels, runs, args.threads)
            agree = abs(loss - our_loss) <= 1e-3 * max(1.0, abs(loss))
            rows.append((name, ours, theirs, our_peak, peak / 2**20, base / 2**20,
                         "losses agree" if agree else f"LOSSES DIFFER ({our_loss} vs {loss})"))

        steps = step_rows(args, env, tmp)

    date = common.today()
    lines = [f"# CPU training step (forward, loss, backward), {date}", "",
             f"CPU: {cpu_model()}; threads: {args.threads}; median after warm-up.",
             f"PyTorch {torch.__version__} eager (Debian). Ratio = PyTorch time / Mithril time (> 1: Mithril faster).", ""]
    cells = []
    for name, ours, theirs, mp, tp, tb, note in rows:
        if ours is None:
            cells.append((name, "-", "-", "-", "-", "-", "-", f"not run: {note}"))
        else:
            cells.append((name, f"{ours:.2f}", f"{theirs:.2f}", f"{theirs / ours:.2f}x", f"{mp:.0f}", f"{tp:.0f}", f"{tb:.0f}", note))
    lines += common.table(["run", "Mithril (ms)", "PyTorch (ms)", "ratio", "Mithril peak RSS (MiB)", "PyTorch peak RSS (MiB)",
                           "PyTorch before first step", "note"], cells)
    lines += ["", "## Training step with AdamW (forward, loss, backward, update), steps per second", ""]
    cells = []
    for name, ours, theirs, mp, tp, note in steps:
        if ours is None:
            cells.append((name, "-", "-", "-", "-", "-", f"not run: {note}"))
        else:
            cells.append((name, f"{1e3 / ours:.2f}", f"{1e3 / theirs:.2f}", f"{theirs / ours:.2f}x", f"{mp:.0f}", f"{tp:.0f}", note))
    lines += common.table(["run", "Mithril steps/s", "PyTorch steps/s", "ratio", "Mithril peak RSS (MiB)", "PyTorch peak RSS (MiB)",
                           "note"], cells)
    common.write_results("train", lines, date)


if __name__ == "__main__":
    main()
