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
one run, never absolute times across runs.
"""
import argparse
import datetime
import multiprocessing
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
sys.path.insert(0, os.path.join(ROOT, "tests", "e2e"))  # the harness, and the ResNet-18 reference
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


def torch_resnet18(torch):
    from samples_more import ResNet18
    return ResNet18()


def torch_gpt2(torch):
    """GPT-2 small with Mithril's parameter names (so state_dict() is our weights file)."""
    nn, F = torch.nn, torch.nn.functional
    V, C, H, L, CTX = 50257, 768, 12, 12, 1024

    class Attn(nn.Module):
        def __init__(self):
            super().__init__()
            self.qkv, self.proj = nn.Linear(C, 3 * C), nn.Linear(C, C)

        def forward(self, x):
            n, t, _ = x.shape
            q, k, v = self.qkv(x).split(C, -1)
            q, k, v = (z.view(n, t, H, C // H).transpose(1, 2) for z in (q, k, v))
            s = (q @ k.transpose(-1, -2)) / (C // H) ** 0.5
            s = s.masked_fill(torch.triu(torch.ones(t, t, dtype=torch.bool), 1), float("-inf"))
            return self.proj((s.softmax(-1) @ v).transpose(1, 2).reshape(n, t, C))

    class Mlp(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc, self.proj = nn.Linear(C, 4 * C), nn.Linear(4 * C, C)

        def forward(self, x):
            return self.proj(F.gelu(self.fc(x), approximate="tanh"))

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.ln_1, self.attn, self.ln_2, self.mlp = nn.LayerNorm(C), Attn(), nn.LayerNorm(C), Mlp()

        def forward(self, x):
            x = x + self.attn(self.ln_1(x))
            return x + self.mlp(self.ln_2(x))

    class GPT2(nn.Module):
        def __init__(self):
            super().__init__()
            self.wte = nn.Parameter(torch.randn(V, C) * 0.02)
            self.wpe = nn.Embedding(CTX, C)
            self.h = nn.ModuleList(Block() for _ in range(L))
            self.ln_f = nn.LayerNorm(C)

        def forward(self, tokens):
            x = self.wte[tokens] + self.wpe(torch.arange(tokens.shape[1]))
            for b in self.h:
                x = b(x)
            return self.ln_f(x) @ self.wte.T

    return GPT2()


ROWS = [
    # name, sample, input name, shape (int: token ids below that bound), torch builder, output name
    ("MLP batch 1", "mlp", "input", (1, 784), torch_mlp, "output"),
    ("MLP batch 64", "mlp", "input", (64, 784), torch_mlp, "output"),
    ("LeNet batch 1", "lenet", "input", (1, 1, 28, 28), torch_lenet, "output"),
    ("LeNet batch 64", "lenet", "input", (64, 1, 28, 28), torch_lenet, "output"),
    ("ResNet-18 batch 1", "resnet18", "input", (1, 3, 224, 224), torch_resnet18, "output"),
    ("GPT-2 small 1 x 64 tokens", "gpt2", "tokens", (1, 64), torch_gpt2, "logits"),
]


def time_torch(builder_name, x, runs, threads):
    """PyTorch's side of a row, in a fresh process: a torch thread pool left alive in the
    benchmark's own process would otherwise compete with the next Mithril binary."""
    import torch

    torch.set_num_threads(threads)
    torch.manual_seed(0)  # the same weights the parent wrote for Mithril
    net = globals()[builder_name](torch).eval()
    xt = torch.from_numpy(x)
    times = []
    with torch.inference_mode():
        ref = net(xt).numpy()
        for _ in range(max(1, runs // 10)):
            net(xt)
        for _ in range(runs):
            t = time.perf_counter()
            net(xt)
            times.append((time.perf_counter() - t) * 1e3)
    return ref, float(np.median(times))


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

    torch.set_num_threads(1)  # the parent only makes weights; timing happens in time_torch
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), MITHRIL_NUM_THREADS=str(args.threads))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        env["MITHRIL_CACHE_DIR"] = os.path.join(tmp, "cache")
        for name, sample, input_name, shape, build, output_name in ROWS:
            if args.only and args.only not in name:
                continue
            torch.manual_seed(0)
            net = build(torch).eval()
            weights = {k: v.detach().numpy() for k, v in net.state_dict().items() if not k.endswith("num_batches_tracked")}
            wpath = os.path.join(tmp, f"{sample}.safetensors")
            save_safetensors(wpath, weights)
            if input_name == "tokens":
                x = np.random.default_rng(0).integers(0, 50257, shape).astype(np.int64)
            else:
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
            got = np.load(os.path.join(tmp, "out", f"{output_name}.npy"))
            del net, weights
            with multiprocessing.get_context("spawn").Pool(1) as pool:
                ref, theirs = pool.apply(time_torch, (build.__name__, x, args.runs, args.threads))
            agree = np.allclose(got, ref, rtol=1e-3, atol=1e-3)
            rows.append((name, ours, theirs, "outputs agree" if agree else "OUTPUTS DIFFER"))

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
