"""Shared pieces of the CPU benchmarks in tools/bench (bench_cpu.py, bench_train.py,
bench_peers.py): the PyTorch models with Mithril's parameter names, weights files,
the inputs, running Mithril's generated binaries with --bench, timing loops, peak
resident memory, the CPU's name and the result tables.

Nothing here imports torch at module level: the builders take the torch module as
an argument, so the same code serves Debian's PyTorch 1.13 and the PyTorch 2.x of
bench_peers.py's virtual environment (whose python also imports this module).
"""
import datetime
import json
import math
import multiprocessing
import os
import platform
import re
import resource
import struct
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "e2e"))  # the harness, and the ResNet-18 reference
from harness import save_safetensors  # noqa: E402,F401  (re-exported for the scripts)

DEFAULT_MITHRIL = os.path.join(ROOT, "build", "mithril")
VOCAB = 50257  # GPT-2's


# --- models: PyTorch with Mithril's parameter names (state_dict() is our weights file) -------------

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


def torch_mobilenet(torch):
    """MobileNet v1 (samples/mobilenet.yaml) with Mithril's parameter names."""
    nn = torch.nn

    class Separable(nn.Module):
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.dw = nn.Conv2d(cin, cin, 3, stride=stride, padding=1, groups=cin, bias=False)
            self.dw_bn = nn.BatchNorm2d(cin)
            self.pw = nn.Conv2d(cin, cout, 1, bias=False)
            self.pw_bn = nn.BatchNorm2d(cout)

        def forward(self, x):
            return torch.relu(self.pw_bn(self.pw(torch.relu(self.dw_bn(self.dw(x))))))

    class MobileNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = nn.Conv2d(3, 32, 3, stride=2, padding=1, bias=False)
            self.stem_bn = nn.BatchNorm2d(32)
            blocks = [(32, 64, 1), (64, 128, 2), (128, 128, 1), (128, 256, 2), (256, 256, 1), (256, 512, 2)] + \
                [(512, 512, 1)] * 5 + [(512, 1024, 2), (1024, 1024, 1)]
            for i, (cin, cout, stride) in enumerate(blocks):
                self.add_module(f"b{i + 1}", Separable(cin, cout, stride))
            self.n = len(blocks)
            self.fc = nn.Linear(1024, 1000)

        def forward(self, x):
            x = torch.relu(self.stem_bn(self.stem(x)))
            for i in range(self.n):
                x = getattr(self, f"b{i + 1}")(x)
            return self.fc(x.mean((2, 3)))

    return MobileNet()


def torch_gpt2(torch):
    """GPT-2 small with Mithril's parameter names (so state_dict() is our weights file)."""
    nn, F = torch.nn, torch.nn.functional
    V, C, H, L, CTX = VOCAB, 768, 12, 12, 1024

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


BUILDERS = {f.__name__: f for f in (torch_mlp, torch_lenet, torch_resnet18, torch_mobilenet, torch_gpt2)}


def build(torch, builder_name, seed=0):
    """The model with the weights torch.manual_seed(seed) gives it."""
    torch.manual_seed(seed)
    return BUILDERS[builder_name](torch)


# --- weights and inputs -----------------------------------------------------------------------------

def weights_of(net, prefix=""):
    """The state dict as NumPy arrays, without BatchNorm's num_batches_tracked (Mithril has none)."""
    return {prefix + k: v.detach().numpy() for k, v in net.state_dict().items() if not k.endswith("num_batches_tracked")}


NP_DTYPES = {"F32": np.float32, "F64": np.float64, "I32": np.int32, "I64": np.int64, "BOOL": np.bool_}


def load_weights(torch, net, path):
    """Read a weights file written from weights_of() straight into net's parameters and buffers
    (one tensor at a time, no second copy of the model in memory: the peers' peak memory is their
    own); every parameter must be there with its shape and dtype. The layout is read with struct
    and json, independently of Mithril's runtime."""
    state = net.state_dict()  # detached tensors sharing the parameters' memory
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
        header.pop("__metadata__", None)
        missing = [k for k in state if k not in header and not k.endswith("num_batches_tracked")]
        unexpected = [k for k in header if k not in state]
        if missing or unexpected:
            raise RuntimeError(f"weights {path}: missing {missing[:3]}, unexpected {unexpected[:3]}")
        for name, h in header.items():
            a = state[name].numpy()
            begin, end = h["data_offsets"]
            if list(a.shape) != h["shape"] or a.dtype != NP_DTYPES[h["dtype"]] or not a.flags.c_contiguous:
                raise RuntimeError(f"weights {path}: {name} is {h['dtype']}{h['shape']}, the model's {a.dtype}{list(a.shape)}")
            f.seek(8 + n + begin)
            if f.readinto(memoryview(a).cast("B")) != end - begin:
                raise RuntimeError(f"weights {path}: {name} is cut short")
    return net


def make_input(shape, tokens):
    """The benchmark's input: token ids below GPT-2's vocabulary, or standard normal floats (seed 0)."""
    rng = np.random.default_rng(0)
    if tokens:
        return rng.integers(0, VOCAB, shape).astype(np.int64)
    return rng.standard_normal(shape).astype(np.float32)


# --- Mithril's generated binaries -------------------------------------------------------------------

def mithril_env(threads, cache_dir):
    """The environment for `mithril run` / `mithril train`: the thread count and a private build cache."""
    return dict(os.environ, OMP_NUM_THREADS=str(threads), MITHRIL_NUM_THREADS=str(threads), MITHRIL_CACHE_DIR=cache_dir)


def parse_bench(stdout):
    """`--bench N`'s report: {median, min, max} in ms and peak (MiB; None when not printed)."""
    m = re.search(r"median ([0-9.]+) ms[^(\n]*\(min ([0-9.]+), max ([0-9.]+)", stdout)
    if not m:
        m = re.search(r"median ([0-9.]+) ms", stdout)
        if not m:
            raise ValueError("no `median ... ms` in the output of --bench: " + stdout.strip()[-200:])
        med = float(m.group(1))
        out = {"median": med, "min": med, "max": med}
    else:
        out = {"median": float(m.group(1)), "min": float(m.group(2)), "max": float(m.group(3))}
    p = re.search(r"peak resident memory ([0-9.]+) MiB", stdout)
    out["peak"] = float(p.group(1)) if p else None
    return out


def last_line(stderr, default="failed"):
    """The last non-empty line of a failed command's stderr (the error), for a table's note column."""
    lines = [l for l in (stderr or "").strip().splitlines() if l.strip()]
    return lines[-1].strip() if lines else default


def train_step_command(mithril, sample, shape, classes, weights, runs, threads, tmp):
    """`mithril train ... --bench runs` with AdamW (lr 1e-4, weight decay 0.01) on one batch of `shape`,
    and the batch (x, y) PyTorch gets for the same step. MLP/LeNet: `shape[0]` random samples and
    labels, the whole data set (no validation split); GPT-2: a random token file, windows of shape[1]."""
    rng = np.random.default_rng(0)
    cmd = [mithril, "train", os.path.join(ROOT, "samples", sample + ".yaml"), "--optimizer", "adamw", "--lr", "1e-4",
           "--weight-decay", "0.01", "--batch-size", str(shape[0]), "--val-split", "0", "--weights", weights, "--bench",
           str(runs), "--threads", str(threads)]
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
    return cmd, x, y


# --- timing and memory ------------------------------------------------------------------------------

def time_calls(fn, runs, warmup):
    """Call fn `warmup` times, then time `runs` calls; the times in ms."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1e3)
    return times


def summary(times):
    """{median, min, max} of times."""
    return {"median": float(np.median(times)), "min": float(np.min(times)), "max": float(np.max(times))}


def peak_rss():
    """This process's peak resident memory in bytes (VmHWM: its own address space's
    high-water mark; ru_maxrss is inherited from the parent across fork and exec)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def reset_peak_rss():
    """Restart VmHWM from the current resident size (Linux >= 4.0); False when that is not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def in_fresh_process(fn, *args):
    """fn(*args) in a new interpreter (spawn): a torch thread pool left alive in the benchmark's own
    process would otherwise compete with the next binary it times. fn must be a module-level function."""
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(fn, args)


# --- reports ----------------------------------------------------------------------------------------

def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def fmt(v, digits=4):
    """v with `digits` significant digits, never in exponent notation."""
    if v is None or not math.isfinite(v):
        return "-"
    if v == 0:
        return "0"
    return f"{v:.{max(0, digits - 1 - math.floor(math.log10(abs(v))))}f}"


def table(header, rows):
    """A Markdown table: header is a list of column titles, rows lists of cells (str())."""
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return lines


def today():
    return datetime.date.today().isoformat()


def write_results(prefix, lines, date=None):
    """Print the report and write it to tools/bench/results/<prefix>-<date>.md; returns the path."""
    text = "\n".join(lines) + "\n"
    print(text)
    out = os.path.join(HERE, "results", f"{prefix}-{date or today()}.md")
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out, "w") as f:
        f.write(text)
    print("written to", os.path.relpath(out, ROOT))
    return out
