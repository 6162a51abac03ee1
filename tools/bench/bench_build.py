#!/usr/bin/env python3
"""What the first `mithril run` of a model costs, with and without the runtime prebuilt.

For MLP (samples/mlp.yaml), LeNet (samples/lenet.yaml) and GPT-2 small
(samples/gpt2.yaml as it is: 12 layers, width 768, vocabulary 50257, 124M parameters
initialized by the run; tokens [1, 16]), two wall-clock times of one `mithril run` each:

- cold: an empty build cache, so the run builds the runtime (CMake, once per key)
  and then the model: what every first run cost before the runtime was prebuilt;
- warm: a cache where `mithril run ...` has never built this model but the runtime
  is built (`mithril runtime build`, done once before, untimed): the model's own
  sources only, compiled directly against the prebuilt runtime.

Prints both, their ratio (goal: warm at most a quarter of cold) and the machine
(CPU model, AVX-512 or AVX2, cores); writes tools/bench/results/build-<date>.md
unless --no-write. A benchmark, not a test. A runtime installed beside the
mithril binary would make the cold run warm too: the script says so and stops.

    /usr/bin/python3 tools/bench/bench_build.py [--only gpt2] [--no-write]
"""
import argparse
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

GPT2_SMALL = []  # the sample's own configuration: GPT-2 small


def inputs(sample, tmp):
    """The --input arguments of one run of `sample` (files written into tmp)."""
    rng = np.random.default_rng(0)
    if sample == "mlp":
        return ["--input", f"input={os.path.join(common.ROOT, 'samples', 'data', 'mlp_input.npy')}"]
    if sample == "lenet":
        path, arr, name = os.path.join(tmp, "lenet_input.npy"), rng.standard_normal((2, 1, 28, 28)).astype(np.float32), "input"
    else:
        path, arr, name = os.path.join(tmp, "gpt2_tokens.npy"), rng.integers(0, 50257, (1, 16)).astype(np.int64), "tokens"
    np.save(path, arr)
    return ["--input", f"{name}={path}"]


def timed_run(mithril, sample, cache, tmp, tag):
    args = [mithril, "run", os.path.join(common.ROOT, "samples", sample + ".yaml"), *inputs(sample, tmp),
            "-o", os.path.join(tmp, f"{sample}-{tag}")] + (GPT2_SMALL if sample == "gpt2" else [])
    t0 = time.perf_counter()
    p = subprocess.run(args, capture_output=True, text=True, env=dict(os.environ, MITHRIL_CACHE_DIR=cache))
    return time.perf_counter() - t0, p


def vector_isa():
    flags = open("/proc/cpuinfo").read() if os.path.exists("/proc/cpuinfo") else ""
    return "AVX-512" if " avx512f" in flags else "AVX2" if " avx2" in flags else "neither AVX2 nor AVX-512"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mithril", default=os.path.join(common.ROOT, "build", "mithril"))
    ap.add_argument("--only", default="", help="samples whose name contains this")
    ap.add_argument("--no-write", action="store_true", help="print the table only")
    args = ap.parse_args()

    rows, failures = [], []
    with tempfile.TemporaryDirectory(prefix="mithril-bench-build-") as tmp:
        warm_cache = os.path.join(tmp, "warm-cache")
        t0 = time.perf_counter()
        p = subprocess.run([args.mithril, "runtime", "build"], capture_output=True, text=True,
                           env=dict(os.environ, MITHRIL_CACHE_DIR=warm_cache))
        if p.returncode != 0:
            sys.exit(f"mithril runtime build failed:\n{p.stderr}")
        if "building the runtime" not in p.stderr:
            sys.exit(f"mithril uses an installed runtime ({p.stdout.strip()}): a cold run cannot be measured here")
        print(f"runtime build alone: {time.perf_counter() - t0:.1f} s", file=sys.stderr)
        for sample in ("mlp", "lenet", "gpt2"):
            if args.only not in sample:
                continue
            print(f"{sample} ...", file=sys.stderr, flush=True)
            t_cold, p = timed_run(args.mithril, sample, os.path.join(tmp, f"cold-{sample}"), tmp, "cold")
            if p.returncode != 0 or "building the runtime" not in p.stderr:
                failures.append(f"{sample}: cold run (exit {p.returncode}) did not build the runtime: {common.last_line(p.stderr)}")
                continue
            t_warm, p = timed_run(args.mithril, sample, warm_cache, tmp, "warm")
            if p.returncode != 0 or f"building {sample}" not in p.stderr or "building the runtime" in p.stderr:
                failures.append(f"{sample}: warm run (exit {p.returncode}) did not build just the model: {common.last_line(p.stderr)}")
                continue
            rows.append([sample, f"{t_cold:.1f}", f"{t_warm:.1f}", f"{t_warm / t_cold:.2f}",
                         "yes" if t_warm <= t_cold / 4 else "no"])

    lines = [f"# First `mithril run` of a model: cold cache vs runtime prebuilt, {common.today()}", "",
             f"CPU: {common.cpu_model()} ({vector_isa()}), {os.cpu_count()} cores; one run each, wall-clock seconds. "
             "`cold`: empty cache (runtime + model); `warm`: runtime prebuilt, model never built; "
             "goal: warm <= cold / 4.", ""]
    lines += common.table(["sample", "cold (s)", "warm (s)", "warm / cold", "<= 1/4"], rows)
    if failures:
        lines += ["", "Failures:", ""] + [f"- {f}" for f in failures]
    if args.no_write:
        print("\n".join(lines))
    else:
        common.write_results("build", lines)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
