#!/usr/bin/env python3
"""Mithril's generated code against the fastest CPU peers, in one run on the same
machine with the same threads, weights and inputs:

- onnxruntime (PyPI) on ONNX files exported from the same PyTorch models with
  Debian's PyTorch 1.13 (torch.onnx.export, opset 14);
- PyTorch 2.x (PyPI) eager and torch.compile (inductor);
- PyTorch 1.13 eager (Debian's python3-torch).

    /usr/bin/python3 tools/bench/bench_peers.py [--threads 2] [--only SUBSTRING] [--runs 200]
                                                [--skip-compile] [--skip-setup]

Inference: MLP and LeNet at batch 1 and 64, ResNet-18 at batch 1, GPT-2 small on
1 x 64 tokens. Training steps (forward, cross-entropy, backward, AdamW with lr 1e-4
and weight decay 0.01): MLP and LeNet at batch 64, GPT-2 small on 4 x 64 tokens,
against the three PyTorch builds, with every side's peak resident memory.

onnxruntime and PyTorch 2.x live in a virtual environment outside the repository,
~/.cache/mithril-bench/venv (--venv), which the first run creates with
`/usr/bin/python3 -m venv` and `pip install torch onnxruntime numpy` (about 5.5 GB:
the PyPI torch wheel pulls in CUDA libraries; PyTorch's CPU-only index is used
instead when it can be reached). Later runs reuse it; --skip-setup never creates it
(the peers that need it then show "-").

Every side runs in its own process, one after the other: Mithril's generated binary
(`mithril run --bench N` / `mithril train --bench N`, which print the median, min and
max of N runs after a warm-up), then this script again as a worker (`--worker JOB`)
under the venv's python for onnxruntime, PyTorch 2.x and torch.compile and under
/usr/bin/python3 for PyTorch 1.13. The workers load the weights (safetensors) and
inputs (.npy) the parent wrote, fix the threads (torch.set_num_threads, inter-op
threads 1; onnxruntime intra_op_num_threads, inter_op_num_threads 1, sequential
execution; OMP_NUM_THREADS and MKL_NUM_THREADS for all), warm up, time the same
number of runs as Mithril and report the times, their peak resident memory (VmHWM)
and their outputs. PyTorch eager runs under torch.inference_mode(), torch.compile
under torch.no_grad(); for training, torch.compile compiles the model and the
optimizer step. Inference outputs are compared with Mithril's (max abs difference
in the note column); training rows report whether the peers' first-step losses agree
with each other (Mithril's training step is checked against PyTorch by the tests and
bench_train.py).

The tables (medians with min and max, ratios = peer median / Mithril median, so > 1
means Mithril is faster; peak resident memory) are printed and written to
tools/bench/results/peers-<date>.md with the CPU model. A side that fails shows "-"
and a short note; the run goes on. --only SUBSTRING picks rows by "inference NAME"
or "training NAME" (e.g. --only training, --only "MLP batch 1"). --runs N: timed runs
of the quickest rows; slower rows get a fixed fraction of N (at least 3). This is a
benchmark, not a test: nothing here runs in CI, the machines are shared and noisy,
compare ratios from one run, never absolute times across runs. --rounds R measures each
row R times, every side once per round in turn, and reports the median of the rounds'
medians (min and max over all runs): a burst of load from the machine's neighbours then
slows one round of one side, not the row (seen here: ResNet-18's Mithril median 32 ms
in one row and 19 ms alone a minute later).
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.request

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
from common import ROOT, fmt, save_safetensors  # noqa: E402

DEBIAN_PYTHON = "/usr/bin/python3"
BENCH_CACHE = os.path.join(os.path.expanduser("~"), ".cache", "mithril-bench")
DEFAULT_VENV = os.path.join(BENCH_CACHE, "venv")
CPU_INDEX = "https://download.pytorch.org/whl/cpu"
OPSETS = (14, 17)  # the first that exports wins
SETTLE_S = 10  # s of pause before each Mithril measurement
WORKER_TIMEOUT = 3600  # s, per process (torch.compile of GPT-2 on two cores takes minutes)

INFER_ROWS = [
    # name, sample, input name, shape, torch builder, output name, share of --runs
    ("MLP batch 1", "mlp", "input", (1, 784), "torch_mlp", "output", 1.0),
    ("MLP batch 64", "mlp", "input", (64, 784), "torch_mlp", "output", 0.5),
    ("LeNet batch 1", "lenet", "input", (1, 1, 28, 28), "torch_lenet", "output", 1.0),
    ("LeNet batch 64", "lenet", "input", (64, 1, 28, 28), "torch_lenet", "output", 0.25),
    ("ResNet-18 batch 1", "resnet18", "input", (1, 3, 224, 224), "torch_resnet18", "output", 0.1),
    ("MobileNet v1 batch 1", "mobilenet", "image", (1, 3, 224, 224), "torch_mobilenet", "logits", 0.1),
    ("GPT-2 small 1 x 64 tokens", "gpt2", "tokens", (1, 64), "torch_gpt2", "logits", 0.05),
]
TRAIN_ROWS = [
    # name, sample, input shape, classes, torch builder, share of --runs
    ("MLP batch 64", "mlp", (64, 784), 10, "torch_mlp", 0.25),
    ("LeNet batch 64", "lenet", (64, 1, 28, 28), 10, "torch_lenet", 0.15),
    ("GPT-2 small 4 x 64 tokens", "gpt2", (4, 64), common.VOCAB, "torch_gpt2", 0.015),
]
# column key, title, which python ("venv" or "debian"), worker peer
INFER_PEERS = [("ort", "onnxruntime", "venv", "ort"), ("torch2", "PyTorch 2.x eager", "venv", "eager"),
               ("compile", "torch.compile", "venv", "compile"), ("torch113", "PyTorch 1.13 eager", "debian", "eager")]
TRAIN_PEERS = INFER_PEERS[1:]


# --- the worker: one peer's side of one row, in its own process ---------------------------------------

def setup_torch(threads):
    import torch

    torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass
    return torch


def load_net(torch, job):
    return common.load_weights(torch, common.build(torch, job["builder"]), job["weights"])


def work_export(job):
    import warnings

    warnings.filterwarnings("ignore")
    torch = setup_torch(job["threads"])
    net = load_net(torch, job).eval()
    x = torch.from_numpy(np.load(job["x"]))
    errors = []
    for opset in OPSETS:
        try:
            with torch.no_grad():
                torch.onnx.export(net, (x,), job["onnx"], input_names=[job["input_name"]], output_names=[job["output_name"]],
                                  opset_version=opset, do_constant_folding=True)
            return {"version": torch.__version__, "opset": opset}
        except Exception as e:  # noqa: BLE001 (any exporter failure: try the next opset, then report)
            errors.append(f"opset {opset}: {type(e).__name__}: {e}")
    raise RuntimeError("; ".join(errors))


def finish(times, first_ms, baseline, steady_peak):
    r = common.summary(times)
    r.update(first_ms=first_ms, baseline=baseline, peak=common.peak_rss(), steady_peak=steady_peak)
    return r


def work_infer(job):
    x = np.load(job["x"])
    runs, warmup = job["runs"], job["warmup"]
    if job["peer"] == "ort":
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.intra_op_num_threads = job["threads"]
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        sess = ort.InferenceSession(job["onnx"], so, providers=["CPUExecutionProvider"])
        feed, names = {job["input_name"]: x}, [job["output_name"]]
        baseline = common.peak_rss()
        t = time.perf_counter()
        out = sess.run(names, feed)[0]
        first_ms = (time.perf_counter() - t) * 1e3
        np.save(job["out"], out)
        steady = common.reset_peak_rss()
        times = common.time_calls(lambda: sess.run(names, feed), runs, warmup)
        r = finish(times, first_ms, baseline, common.peak_rss() if steady else None)
        r["version"] = ort.__version__
        return r

    torch = setup_torch(job["threads"])
    net = load_net(torch, job).eval()
    xt = torch.from_numpy(x)
    if job["peer"] == "compile":
        fn, mode = torch.compile(net), torch.no_grad
    else:
        fn, mode = net, torch.inference_mode
    baseline = common.peak_rss()
    with mode():
        t = time.perf_counter()
        out = fn(xt)
        first_ms = (time.perf_counter() - t) * 1e3
        np.save(job["out"], out.numpy())
        steady = common.reset_peak_rss()
        times = common.time_calls(lambda: fn(xt), runs, warmup)
    r = finish(times, first_ms, baseline, common.peak_rss() if steady else None)
    r["version"] = torch.__version__
    return r


def work_train(job):
    torch = setup_torch(job["threads"])
    net = load_net(torch, job).train()
    opt = torch.optim.AdamW(net.parameters(), lr=1e-4, weight_decay=0.01)
    xt, yt = torch.from_numpy(np.load(job["x"])), torch.from_numpy(np.load(job["y"]))
    model, update = net, opt.step
    if job["peer"] == "compile":
        model = torch.compile(net)

        @torch.compile(fullgraph=False)
        def update():
            opt.step()

    def step():
        opt.zero_grad(set_to_none=True)
        out = model(xt)
        loss = torch.nn.functional.cross_entropy(out.reshape(-1, out.shape[-1]), yt.reshape(-1))
        loss.backward()
        update()
        return loss

    baseline = common.peak_rss()
    t = time.perf_counter()
    loss = float(step().detach())
    first_ms = (time.perf_counter() - t) * 1e3
    # a compiled optimizer step compiles again once its state exists: warm up past that before the timed steps
    for _ in range(job["warmup"] - 1):
        step()
    steady = common.reset_peak_rss()
    times = common.time_calls(step, job["runs"], 0)
    r = finish(times, first_ms, baseline, common.peak_rss() if steady else None)
    r.update(version=torch.__version__, loss=loss)
    return r


def worker(job_path):
    with open(job_path) as f:
        job = json.load(f)
    try:
        result = {"export": work_export, "infer": work_infer, "train": work_train}[job["task"]](job)
    except Exception as e:  # noqa: BLE001 (reported in the table's note column)
        traceback.print_exc()
        result = {"error": f"{type(e).__name__}: {e}"}
    with open(job["result"], "w") as f:
        json.dump(result, f)
    return 1 if "error" in result else 0


# --- the parent --------------------------------------------------------------------------------------

def short(text, n=110):
    text = " ".join(str(text).split())
    return text if len(text) <= n else text[: n - 3] + "..."


def reachable(url):
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status == 200
    except Exception:  # noqa: BLE001 (no route, DNS, TLS, timeout: all mean "use PyPI")
        return False


def venv_python(venv, skip_setup):
    """The venv's python with torch 2.x and onnxruntime, creating the venv when needed;
    (python or None, why not)."""
    py = os.path.join(venv, "bin", "python")

    def ready():
        return os.path.exists(py) and subprocess.run([py, "-c", "import torch, onnxruntime, numpy"],
                                                     capture_output=True).returncode == 0

    if ready():
        return py, None
    if skip_setup:
        return None, f"no torch 2.x / onnxruntime venv at {venv} (--skip-setup)"
    print(f"setting up {venv} (torch, onnxruntime, numpy from PyPI; several GB, once)", flush=True)
    try:
        if not os.path.exists(py):
            subprocess.run([DEBIAN_PYTHON, "-m", "venv", venv], check=True)
        pip = [py, "-m", "pip", "install"]
        if reachable(CPU_INDEX + "/torch/"):  # the CPU-only wheel: a fraction of PyPI's CUDA build
            subprocess.run(pip + ["torch", "--index-url", CPU_INDEX], check=True)
        subprocess.run(pip + ["torch", "onnxruntime", "numpy"], check=True)
    except (OSError, subprocess.CalledProcessError) as e:
        return None, short(f"setting up {venv} failed: {e}")
    return (py, None) if ready() else (None, f"{venv} cannot import torch and onnxruntime")


class Runner:
    def __init__(self, args, tmp, pythons):
        self.args, self.tmp, self.pythons = args, tmp, pythons
        self.mithril_env = common.mithril_env(args.threads, os.path.join(tmp, "cache"))
        t = str(args.threads)
        self.peer_env = dict(os.environ, OMP_NUM_THREADS=t, MKL_NUM_THREADS=t, TORCHINDUCTOR_COMPILE_THREADS="1",
                             TORCHINDUCTOR_CACHE_DIR=os.path.join(tmp, "inductor"), PYTHONWARNINGS="ignore")
        self.jobs = 0
        self.weights = {}
        self.versions = {}

    def runs(self, share):
        return max(3, round(self.args.runs * share))

    def weights_file(self, torch, sample, builder):
        """One weights file per model (Debian's torch, seed 0), shared by every side and row."""
        if sample not in self.weights:
            path = os.path.join(self.tmp, f"{sample}.safetensors")
            save_safetensors(path, common.weights_of(common.build(torch, builder)))
            self.weights[sample] = path
        return self.weights[sample]

    def mithril(self, cmd):
        # Let the machine settle after the previous row's PyTorch processes (gigabytes freed): Mithril's
        # training steps measured right after them ran up to 2x slower than alone (2026-11-25).
        time.sleep(SETTLE_S)
        try:
            p = subprocess.run(cmd, capture_output=True, text=True, env=self.mithril_env, timeout=WORKER_TIMEOUT)
        except subprocess.TimeoutExpired:
            return {"error": f"timed out after {WORKER_TIMEOUT} s"}
        except OSError as e:
            return {"error": short(e)}
        if p.returncode != 0:
            return {"error": short(common.last_line(p.stderr))}
        try:
            return common.parse_bench(p.stdout)
        except ValueError as e:
            return {"error": short(e)}

    def worker(self, which, job):
        """One side in its own process: this script with --worker under `which` python."""
        python, why = self.pythons[which]
        if python is None:
            return {"error": why}
        self.jobs += 1
        job = dict(job, threads=self.args.threads, result=os.path.join(self.tmp, f"result{self.jobs}.json"))
        path = os.path.join(self.tmp, f"job{self.jobs}.json")
        with open(path, "w") as f:
            json.dump(job, f)
        try:
            p = subprocess.run([python, os.path.abspath(__file__), "--worker", path], capture_output=True, text=True,
                               env=self.peer_env, timeout=WORKER_TIMEOUT)
        except subprocess.TimeoutExpired:
            return {"error": f"timed out after {WORKER_TIMEOUT} s"}
        except OSError as e:
            return {"error": short(e)}
        if os.path.exists(job["result"]):
            with open(job["result"]) as f:
                r = json.load(f)
        else:  # killed, or crashed in native code
            r = {"error": common.last_line(p.stderr, f"exit status {p.returncode}")}
        if "error" in r:
            r["error"] = short(r["error"])
        return r

    def infer_row(self, torch, name, sample, input_name, shape, builder, output_name, share):
        tmp, runs = self.tmp, self.runs(share)
        x = common.make_input(shape, input_name == "tokens")
        xpath = os.path.join(tmp, "x.npy")
        np.save(xpath, x)
        wpath = self.weights_file(torch, sample, builder)
        outdir = os.path.join(tmp, "out")
        cells = {"mithril": self.mithril([self.args.mithril, "run", os.path.join(ROOT, "samples", f"{sample}.yaml"), "--input",
                                          f"{input_name}={xpath}", "--weights", wpath, "--bench", str(runs), "-o", outdir])}
        got = None if "error" in cells["mithril"] else np.load(os.path.join(outdir, f"{output_name}.npy"))
        job = {"task": "infer", "builder": builder, "weights": wpath, "x": xpath, "input_name": input_name,
               "output_name": output_name, "runs": runs}
        for key, _, which, peer in INFER_PEERS:
            if key == "compile" and self.args.skip_compile:
                cells[key] = {"error": "skipped (--skip-compile)"}
                continue
            out = os.path.join(tmp, f"{key}.npy")
            j = dict(job, peer=peer, out=out, warmup=max(3 if peer == "compile" else 2, runs // 10))
            if key == "ort" and self.pythons[which][0] is not None:
                j["onnx"] = os.path.join(tmp, f"{sample}-{'x'.join(map(str, shape))}.onnx")
                exported = self.worker("debian", dict(job, task="export", onnx=j["onnx"]))
                if "error" in exported:
                    cells[key] = {"error": short("ONNX export failed: " + exported["error"])}
                    continue
                self.versions["export"] = f"PyTorch {exported['version']}, opset {exported['opset']}"
            cells[key] = r = self.worker(which, j)
            if "error" not in r:
                self.versions[key] = r["version"]
                if got is not None:
                    theirs = np.load(out)
                    r["diff"] = float(np.max(np.abs(theirs.astype(np.float64) - got))) if theirs.shape == got.shape else None
                    r["agree"] = r["diff"] is not None and bool(np.allclose(got, theirs, rtol=1e-3, atol=1e-3))
                os.remove(out)
            if "onnx" in j and os.path.exists(j["onnx"]):
                os.remove(j["onnx"])
        notes = []
        if got is not None:
            diffs = [f"{title} {diff_text(cells[k])}" for k, title, _, _ in INFER_PEERS if "diff" in cells[k]]
            if diffs:
                notes.append("max abs diff vs Mithril: " + ", ".join(diffs))
        if "first_ms" in cells.get("compile", {}):
            notes.append(f"torch.compile first call {cells['compile']['first_ms'] / 1e3:.1f} s")
        return name, runs, cells, notes

    def train_row(self, torch, name, sample, shape, classes, builder, share):
        tmp, runs = self.tmp, self.runs(share)
        wpath = self.weights_file(torch, sample, builder)
        cmd, x, y = common.train_step_command(self.args.mithril, sample, shape, classes, wpath, runs, self.args.threads, tmp)
        cells = {"mithril": self.mithril(cmd)}
        xpath, ypath = os.path.join(tmp, "tx.npy"), os.path.join(tmp, "ty.npy")
        np.save(xpath, x)
        np.save(ypath, y)
        job = {"task": "train", "builder": builder, "weights": wpath, "x": xpath, "y": ypath, "runs": runs}
        for key, _, which, peer in TRAIN_PEERS:
            if key == "compile" and self.args.skip_compile:
                cells[key] = {"error": "skipped (--skip-compile)"}
                continue
            cells[key] = r = self.worker(which, dict(job, peer=peer, warmup=max(3 if peer == "compile" else 2, runs // 10)))
            if "error" not in r:
                self.versions[key] = r["version"]
        notes = []
        losses = {title: cells[k]["loss"] for k, title, _, _ in TRAIN_PEERS if "loss" in cells[k]}
        if len(losses) > 1:
            ref = list(losses.values())[0]
            spread = max(abs(v - ref) for v in losses.values())
            if spread <= 1e-4 * max(1.0, abs(ref)):
                notes.append(f"first-step losses agree ({ref:.4f}" + (f", spread {spread:.0e})" if spread else ", identical)"))
            else:
                notes.append("FIRST-STEP LOSSES DIFFER: " + ", ".join(f"{t} {v:.6f}" for t, v in losses.items()))
        if "first_ms" in cells.get("compile", {}):
            notes.append(f"torch.compile first step {cells['compile']['first_ms'] / 1e3:.1f} s")
        if cells.get("compile", {}).get("steady_peak"):
            notes.append(f"torch.compile {cells['compile']['steady_peak'] / 2**20:.0f} MiB peak in the timed steps")
        before = [f"{t} {cells[k]['baseline'] / 2**20:.0f}" for k, t, _, _ in TRAIN_PEERS if "baseline" in cells[k]]
        if before:
            notes.append("MiB before the first step: " + ", ".join(before))
        return name, runs, cells, notes


def merge_rounds(rounds):
    """One row from the same row measured in several rounds: per side, the median of the rounds'
    medians, the min and max over all runs, the rest from its first successful round."""
    name, runs, _, notes = rounds[0]
    cells = {}
    for key in rounds[0][2]:
        ok = [r[2][key] for r in rounds if "error" not in r[2][key]]
        if not ok:
            cells[key] = rounds[0][2][key]
            continue
        cell = dict(ok[0])
        if len(ok) > 1 and all("median" in c for c in ok):
            cell["median"] = float(np.median([c["median"] for c in ok]))
            cell["min"] = min(c["min"] for c in ok)
            cell["max"] = max(c["max"] for c in ok)
        cells[key] = cell
    return name, runs, cells, notes


def diff_text(cell):
    if cell.get("diff") is None:
        return "SHAPES DIFFER"
    d = f"{cell['diff']:.0e}".replace("e-0", "e-").replace("e+00", "")
    return d if cell.get("agree") else d + " (DIFFERS)"


def time_cell(cell):
    if "error" in cell:
        return "-"
    return f"{fmt(cell['median'])} ({fmt(cell['min'])}–{fmt(cell['max'])})"


def ratio_cell(cell, ours):
    if "error" in cell or "error" in ours:
        return "-"
    return fmt(cell["median"] / ours["median"], 3) + "x"


def error_notes(cells, peers):
    """'side, side: error' for the sides that failed (one entry per distinct error; skipped ones left out)."""
    by_error = {}
    for k, t in [("mithril", "Mithril")] + [(k, t) for k, t, _, _ in peers]:
        e = cells.get(k, {}).get("error")
        if e and not e.startswith("skipped"):
            by_error.setdefault(e, []).append(t)
    return [f"{', '.join(titles)}: {e}" for e, titles in by_error.items()]


def tables(rows, peers, memory):
    titles = [t for _, t, _, _ in peers]
    times = [[name, runs, time_cell(cells["mithril"])] + [time_cell(cells[k]) for k, _, _, _ in peers]
             for name, runs, cells, _ in rows]
    lines = common.table(["run", "runs", "Mithril (ms)"] + [f"{t} (ms)" for t in titles], times) + [""]
    ratios = [[name] + [ratio_cell(cells[k], cells["mithril"]) for k, _, _, _ in peers]
              + ["; ".join(error_notes(cells, peers) + ([] if memory else notes))]
              for name, runs, cells, notes in rows]
    lines += common.table(["run"] + [f"{t} / Mithril" for t in titles] + ["note"], ratios)
    if memory:
        mem = [[name] + [fmt(c["peak"] / (1 if k == "mithril" else 2**20), 3) if c.get("peak") else "-"
                         for k, c in ((k, cells[k]) for k in ["mithril"] + [k for k, _, _, _ in peers])]
               + ["; ".join(notes)] for name, runs, cells, notes in rows]
        lines += ["", "Peak resident memory (MiB, VmHWM of each process: PyTorch's include the interpreter and libtorch,"
                  " torch.compile's its compilation):", ""]
        lines += common.table(["run", "Mithril"] + titles + ["note"], mem)
    return lines


def git_commit():
    try:
        head = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", ROOT, "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                               text=True).stdout.strip()
        return head + (" with local changes" if dirty else "") if head else "unknown"
    except OSError:
        return "unknown"


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--worker":
        sys.exit(worker(sys.argv[2]))
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=2, help="threads of every side (default 2)")
    ap.add_argument("--only", default="", help='rows whose "inference NAME" / "training NAME" contains this')
    ap.add_argument("--runs", type=int, default=200, help="timed runs of the quickest rows; slower rows get a share of it")
    ap.add_argument("--rounds", type=int, default=1, help="measure each row this many times, the sides in turn, "
                    "and take the median of the rounds' medians (default 1)")
    ap.add_argument("--skip-compile", action="store_true", help="leave out torch.compile (minutes of compiling)")
    ap.add_argument("--skip-setup", action="store_true", help="never create the venv (its peers show '-' when it is missing)")
    ap.add_argument("--venv", default=DEFAULT_VENV, help=f"the torch 2.x / onnxruntime environment (default {DEFAULT_VENV})")
    ap.add_argument("--mithril", default=common.DEFAULT_MITHRIL)
    args = ap.parse_args()
    infer = [r for r in INFER_ROWS if args.only in f"inference {r[0]}"]
    train = [r for r in TRAIN_ROWS if args.only in f"training {r[0]}"]
    if not infer and not train:
        sys.exit(f"no row matches --only {args.only!r}")

    import torch  # Debian's: makes the weights (seed 0) every side loads

    torch.set_num_threads(1)
    pythons = {"debian": (DEBIAN_PYTHON, None), "venv": venv_python(args.venv, args.skip_setup)}
    if pythons["venv"][0] is None:
        print("note:", pythons["venv"][1], flush=True)
    with tempfile.TemporaryDirectory(prefix="mithril-peers-") as tmp:
        r = Runner(args, tmp, pythons)
        infer_rows, train_rows = [], []
        for row in infer:
            print("inference", row[0], "...", flush=True)
            infer_rows.append(merge_rounds([r.infer_row(torch, *row) for _ in range(args.rounds)]))
        for row in train:
            print("training", row[0], "...", flush=True)
            train_rows.append(merge_rounds([r.train_row(torch, *row) for _ in range(args.rounds)]))

    v = r.versions
    peers = [f"onnxruntime {v.get('ort', '?')} (PyPI; ONNX exported with {v.get('export', '?')})"] if infer_rows else []
    peers += [f"PyTorch {v.get('torch2', v.get('compile', '?'))} eager and torch.compile (PyPI, inductor)",
              f"PyTorch {v.get('torch113', torch.__version__)} eager (Debian)"]
    date = common.today()
    lines = [f"# Mithril against its peers on CPU, {date}", "",
             f"CPU: {common.cpu_model()}; threads: {args.threads} for every side (inter-op threads 1); "
             f"Mithril at {git_commit()}.",
             "Peers: " + "; ".join(peers) + ".",
             "Each side in its own process with the same weights and inputs. Times: median (min–max) in ms of the "
             "row's runs after a warm-up. Ratio = peer median / Mithril median (> 1: Mithril faster)."]
    if args.rounds > 1:
        lines[-1] += (f" Each row was measured in {args.rounds} rounds (every side once per round, in turn): "
                      "the median is the median of the rounds' medians, min and max over all runs.")
    if infer_rows:
        lines += ["", "## Inference", ""] + tables(infer_rows, INFER_PEERS, memory=False)
    if train_rows:
        lines += ["", "## Training step (forward, cross-entropy, backward, AdamW lr 1e-4, weight decay 0.01)", ""]
        lines += tables(train_rows, TRAIN_PEERS, memory=True)
    common.write_results("peers", lines, date)


if __name__ == "__main__":
    main()
