#!/usr/bin/env python3
"""CPU inference benchmark: Mithril's generated binaries against PyTorch eager
(Debian's python3-torch) in the same run, with the same thread count.

    /usr/bin/python3 tools/bench/bench_cpu.py [--threads 2] [--runs 200] [--only mlp]

For each row: both sides get the same weights and input; the generated binary
is timed by its own `--bench N` (median of N runs after a warm-up) and PyTorch
by the same loop in Python under torch.inference_mode(). Results are printed as
a table of medians and the ratio (PyTorch time / Mithril time: > 1 means Mithril
is faster) and written to tools/bench/results/cpu-<date>.md. PyTorch runs in a
fresh process per row, so its idle thread pool never competes with Mithril's. This is a
benchmark, not a test: the machines are shared and noisy; compare ratios from
one run, never absolute times across runs. bench_peers.py compares the same rows
with onnxruntime, PyTorch 2.x eager and torch.compile as well.
"""
import argparse
import os
import subprocess
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
from common import ROOT, cpu_model, parse_bench, save_safetensors  # noqa: E402

ROWS = [
    # name, sample, input name, shape (int: token ids below that bound), torch builder, output name
    ("MLP batch 1", "mlp", "input", (1, 784), "torch_mlp", "output"),
    ("MLP batch 64", "mlp", "input", (64, 784), "torch_mlp", "output"),
    ("LeNet batch 1", "lenet", "input", (1, 1, 28, 28), "torch_lenet", "output"),
    ("LeNet batch 64", "lenet", "input", (64, 1, 28, 28), "torch_lenet", "output"),
    ("ResNet-18 batch 1", "resnet18", "input", (1, 3, 224, 224), "torch_resnet18", "output"),
    ("GPT-2 small 1 x 64 tokens", "gpt2", "tokens", (1, 64), "torch_gpt2", "logits"),
]


def time_torch(builder_name, x, runs, threads):
    """PyTorch's side of a row, in a fresh process: a torch thread pool left alive in the
    benchmark's own process would otherwise compete with the next Mithril binary."""
    import torch

    torch.set_num_threads(threads)
    net = common.build(torch, builder_name).eval()  # the same weights the parent wrote for Mithril
    xt = torch.from_numpy(x)
    with torch.inference_mode():
        ref = net(xt).numpy()
        times = common.time_calls(lambda: net(xt), runs, max(1, runs // 10))
    return ref, float(np.median(times))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--only", default="", help="substring of the rows to run")
    ap.add_argument("--mithril", default=common.DEFAULT_MITHRIL)
    args = ap.parse_args()
    import torch

    torch.set_num_threads(1)  # the parent only makes weights; timing happens in time_torch
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        env = common.mithril_env(args.threads, os.path.join(tmp, "cache"))
        for name, sample, input_name, shape, builder, output_name in ROWS:
            if args.only and args.only not in name:
                continue
            net = common.build(torch, builder).eval()
            weights = common.weights_of(net)
            wpath = os.path.join(tmp, f"{sample}.safetensors")
            save_safetensors(wpath, weights)
            del net, weights
            x = common.make_input(shape, input_name == "tokens")
            xpath = os.path.join(tmp, "x.npy")
            np.save(xpath, x)
            p = subprocess.run([args.mithril, "run", os.path.join(ROOT, "samples", f"{sample}.yaml"), "--input",
                                f"{input_name}={xpath}", "--weights", wpath, "--bench", str(args.runs), "-o",
                                os.path.join(tmp, "out")], capture_output=True, text=True, env=env)
            if p.returncode != 0:
                rows.append((name, None, None, common.last_line(p.stderr)))
                continue
            ours = parse_bench(p.stdout)["median"]
            got = np.load(os.path.join(tmp, "out", f"{output_name}.npy"))
            ref, theirs = common.in_fresh_process(time_torch, builder, x, args.runs, args.threads)
            agree = np.allclose(got, ref, rtol=1e-3, atol=1e-3)
            rows.append((name, ours, theirs, "outputs agree" if agree else "OUTPUTS DIFFER"))

    date = common.today()
    lines = [f"# CPU inference, {date}", "",
             f"CPU: {cpu_model()}; threads: {args.threads}; runs: {args.runs} (median after warm-up);",
             f"PyTorch {torch.__version__} eager (Debian). Ratio = PyTorch time / Mithril time (> 1: Mithril faster).", ""]
    cells = []
    for name, ours, theirs, note in rows:
        if ours is None:
            cells.append((name, "-", "-", "-", f"not run: {note}"))
        else:
            cells.append((name, f"{ours:.4f}", f"{theirs:.4f}", f"{theirs / ours:.2f}x", note))
    lines += common.table(["run", "Mithril (ms)", "PyTorch eager (ms)", "ratio", "note"], cells)
    common.write_results("cpu", lines, date)


if __name__ == "__main__":
    main()
