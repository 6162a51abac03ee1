#!/usr/bin/env python3
"""CPU inference benchmark: Mithril's generated binaries against PyTorch eager
(Debian's python3-torch) in the same run, with the same thread count.

    /usr/bin/python3 tools/bench/bench_cpu.py [--threads 2] [--runs 200] [--only mlp]

For each row: both sides get the same weights and input; the generated binary
is timed by its own `--bench N` (median of N runs after a warm-up) and PyTorch
by the same loop in Python under torch.inference_mode(). Results are printed as
a table of medians and the ratio (PyTorch time / Mithril time: > 1 means Mithril
is faster) and written to tools/bench/results/cpu-<date>.md. This is a
benchmark, not a test: the machines are shared and noisy; compare ratios from
one run, never absolute times across runs.
"""
import argparse
import datetime
import os
import platform
import re
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "e2e"))
from harness import save_safetensors  # noqa: E402


def torch_mlp(torch):
    nn = torch.nn
    return nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(), nn.Linear(512, 10))


def torch_lenet(torch):
    nn = torch.nn
    m = nn.Sequential()
    m.add_module("conv1", nn.Conv2d(1, 6, 5, padding=2))
    m.add_module("1", nn.ReLU())
    m.add_module("2", nn.MaxPool2d(2))
    m.add_module("conv2", nn.Conv2d(6, 16, 5))
    m.add_module("4", nn.ReLU())
    m.add_module("5", nn.MaxPool2d(2))
    m.add_module("6", nn.Flatten())
    m.add_module("fc1", nn.Linear(400, 120))
    m.add_module("8", nn.ReLU())
    m.add_module("fc2", nn.Linear(120, 84))
    m.add_module("10", nn.ReLU())
    m.add_module("fc3", nn.Linear(84, 10))
    return m


ROWS = [
    # name, sample, input name, shape, torch builder
    ("MLP batch 1", "mlp", "input", (1, 784), torch_mlp),
    ("MLP batch 64", "mlp", "input", (64, 784), torch_mlp),
    ("LeNet batch 1", "lenet", "input", (1, 1, 28, 28), torch_lenet),
    ("LeNet batch 64", "lenet", "input", (64, 1, 28, 28), torch_lenet),
]


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--only", default="", help="substring of the rows to run")
    ap.add_argument("--mithril", default=os.path.join(ROOT, "build", "mithril"))
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), MITHRIL_NUM_THREADS=str(args.threads))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        env["MITHRIL_CACHE_DIR"] = os.path.join(tmp, "cache")
        for name, sample, input_name, shape, build in ROWS:
            if args.only and args.only not in name:
                continue
            torch.manual_seed(0)
            net = build(torch).eval()
            weights = {k: v.detach().numpy() for k, v in net.state_dict().items()}
            wpath = os.path.join(tmp, f"{sample}.safetensors")
            save_safetensors(wpath, weights)
            x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
            xpath = os.path.join(tmp, "x.npy")
            np.save(xpath, x)
            p = subprocess.run([args.mithril, "run", os.path.join(ROOT, "samples", f"{sample}.yaml"), "--input",
                                f"{input_name}={xpath}", "--weights", wpath, "--bench", str(args.runs), "-o",
                                os.path.join(tmp, "out")], capture_output=True, text=True, env=env)
            if p.returncode != 0:
                rows.append((name, None, None, p.stderr.strip().splitlines()[-1] if p.stderr.strip() else "failed"))
                continue
            m = re.search(r"median ([0-9.]+) ms", p.stdout)
            ours = float(m.group(1))
            got = np.load(os.path.join(tmp, "out", "output.npy"))
            xt = torch.from_numpy(x)
            times = []
            with torch.inference_mode():
                ref = net(xt).numpy()
                for _ in range(max(1, args.runs // 10)):
                    net(xt)
                for _ in range(args.runs):
                    t = time.perf_counter()
                    net(xt)
                    times.append((time.perf_counter() - t) * 1e3)
            agree = np.allclose(got, ref, rtol=1e-4, atol=1e-4)
            rows.append((name, ours, float(np.median(times)), "outputs agree" if agree else "OUTPUTS DIFFER"))

    date = datetime.date.today().isoformat()
    lines = [f"# CPU inference, {date}", "",
             f"CPU: {cpu_model()}; threads: {args.threads}; runs: {args.runs} (median after warm-up);",
             f"PyTorch {torch.__version__} eager (Debian). Ratio = PyTorch time / Mithril time (> 1: Mithril faster).", "",
             "| run | Mithril (ms) | PyTorch eager (ms) | ratio | note |", "| --- | --- | --- | --- | --- |"]
    for name, ours, theirs, note in rows:
        if ours is None:
            lines.append(f"| {name} | - | - | - | not run: {note} |")
        else:
            lines.append(f"| {name} | {ours:.4f} | {theirs:.4f} | {theirs / ours:.2f}x | {note} |")
    text = "\n".join(lines) + "\n"
    print(text)
    out = os.path.join(HERE, "results", f"cpu-{date}.md")
    with open(out, "w") as f:
        f.write(text)
    print("written to", os.path.relpath(out, ROOT))


if __name__ == "__main__":
    main()
