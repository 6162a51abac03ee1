#!/usr/bin/env python3
"""Compile time and generated-project build time of the sample models.

For each sample: `mithril compile` (model file to generated C++ source, the
compiler's own time) with the shapes the peer benchmark uses, then the
generated project configured and built from scratch with plain CMake
(`cmake -S -B`, `cmake --build -j JOBS`, Release as generated), each timed as
wall-clock seconds of one run (the build is what `mithril run` does on a
model's first run; later runs reuse its cache). Writes
tools/bench/results/build-<date>.md. A benchmark, not a test.

    /usr/bin/python3 tools/bench/bench_build.py [--jobs 2] [--only gpt2]
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

# (sample, shape bindings as bench_peers compiles them)
SAMPLES = [
    ("mlp", ["--shape", "N=64"]),
    ("lenet", ["--shape", "N=64"]),
    ("resnet18", ["--shape", "N=1"]),
    ("gpt2", ["--shape", "N=1", "--shape", "T=64"]),
]


def timed(cmd, **kw):
    t0 = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True, **kw)
    return time.perf_counter() - t0, p


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mithril", default=os.path.join(common.ROOT, "build", "mithril"))
    ap.add_argument("--jobs", type=int, default=2, help="parallel build jobs (the machine's cores)")
    ap.add_argument("--only", default="", help="samples whose name contains this")
    ap.add_argument("--no-write", action="store_true", help="print the table only")
    args = ap.parse_args()

    rows, failures = [], []
    with tempfile.TemporaryDirectory(prefix="mithril-bench-build-") as tmp:
        for sample, shapes in SAMPLES:
            if args.only not in sample:
                continue
            print(f"{sample} ...", file=sys.stderr, flush=True)
            out = os.path.join(tmp, sample)
            model = os.path.join(common.ROOT, "samples", sample + ".yaml")
            t_compile, p = timed([args.mithril, "compile", model, "-o", out] + shapes)
            if p.returncode != 0:
                failures.append(f"{sample}: compile failed: {common.last_line(p.stderr)}")
                continue
            lines = sum(1 for name in os.listdir(out) if name.endswith(".cpp")
                        for _ in open(os.path.join(out, name)))
            t_config, p = timed(["cmake", "-S", out, "-B", os.path.join(out, "build")])
            if p.returncode != 0:
                failures.append(f"{sample}: cmake failed: {common.last_line(p.stdout + p.stderr)}")
                continue
            t_build, p = timed(["cmake", "--build", os.path.join(out, "build"), "-j", str(args.jobs)])
            if p.returncode != 0:
                failures.append(f"{sample}: build failed: {common.last_line(p.stdout + p.stderr)}")
                continue
            rows.append([sample, " ".join(shapes[1::2]), f"{t_compile:.3f}", str(lines), f"{t_config:.1f}",
                         f"{t_build:.1f}", f"{t_config + t_build:.1f}"])
            shutil.rmtree(out, ignore_errors=True)

    lines = [f"# Compile and build times of the sample models, {common.today()}", "",
             f"CPU: {common.cpu_model()}; build jobs: {args.jobs}; one run each (wall-clock seconds). "
             "`compile`: `mithril compile` (model file to source); `.cpp lines`: the generated sources "
             "next to the runtime; `configure` and `build`: the generated project with plain CMake from scratch, "
             "the runtime's sources included.", ""]
    lines += common.table(["sample", "shapes", "compile (s)", ".cpp lines", "configure (s)", "build (s)",
                           "configure + build (s)"], rows)
    if failures:
        lines += ["", "Failures:", ""] + [f"- {f}" for f in failures]
    if args.no_write:
        print("\n".join(lines))
    else:
        common.write_results("build", lines)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
