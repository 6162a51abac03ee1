#!/usr/bin/env python3
"""sgemm on the shapes of Mithril's models: OpenBLAS against BLIS, at one thread count.

    /usr/bin/python3 tools/bench/bench_gemm.py [--threads 2] [--min-time 0.3] [--build-dir DIR] [--no-write]

Builds tools/bench/gemm (the runtime plus gemm_bench.cpp) once per BLAS library
(-DMITHRIL_BLAS=openblas and blis, the same library search as generated projects),
runs each build and prints one table: GFLOP/s (2*M*N*K / median time of a call)
of the library's cblas_sgemm called as is, and of mithril::rt::gemm, which runs
one-row and one-column shapes of at least 2^17 multiply-adds as gemv (the
per-shape rule of runtime/src/blas.cpp, docs/performance.md "GEMM per shape"). Written to tools/bench/results/gemm-<date>.md
unless --no-write. A benchmark, not a test: the machines are shared and noisy;
compare columns of one run, not runs.
"""
import argparse
import datetime
import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
LIBS = [("openblas", "OpenBLAS"), ("blis", "BLIS")]


sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import cpu_model  # noqa: E402


def build(lib, build_dir):
    """Configures and builds gemm_bench for one library; returns the binary's path, or None with the reason."""
    out = os.path.join(build_dir, lib)
    cfg = subprocess.run(["cmake", "-S", os.path.join(HERE, "gemm"), "-B", out, "-DCMAKE_BUILD_TYPE=Release",
                          f"-DMITHRIL_BLAS={lib}"], capture_output=True, text=True)
    if cfg.returncode != 0:
        return None, (cfg.stdout + cfg.stderr).strip().splitlines()[-12:]
    b = subprocess.run(["cmake", "--build", out, "-j", "2", "--target", "gemm_bench"], capture_output=True, text=True)
    if b.returncode != 0:
        return None, (b.stdout + b.stderr).strip().splitlines()[-12:]
    return os.path.join(out, "gemm_bench"), None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--min-time", type=float, default=0.3, help="seconds of timing per shape and way (at least 5 groups)")
    ap.add_argument("--build-dir", default=os.path.join(tempfile.gettempdir(), "mithril-bench-gemm"))
    ap.add_argument("--no-write", action="store_true", help="print the table only")
    args = ap.parse_args()

    results = {}  # (shape name, lib) -> row
    order, missing = [], []
    for lib, label in LIBS:
        binary, why = build(lib, args.build_dir)
        if binary is None:
            print(f"bench_gemm: {label} could not be built; left out:\n  " + "\n  ".join(why), file=sys.stderr)
            missing.append(label)
            continue
        env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
        env.pop("MITHRIL_NUM_THREADS", None)
        p = subprocess.run([binary, "--threads", str(args.threads), "--min-time", str(args.min_time)],
                           capture_output=True, text=True, env=env, check=True)
        for line in p.stdout.splitlines():
            row = json.loads(line)
            assert row["blas"] == lib, f"{binary} links {row['blas']}, not {lib}"
            if row["name"] not in order:
                order.append(row["name"])
            results[(row["name"], lib)] = row
            print(f"{label:9s} {row['name']:50s} sgemm {row['sgemm_gflops']:8.2f}  rt::gemm {row['rt_gemm_gflops']:8.2f} GFLOP/s",
                  file=sys.stderr)

    date = datetime.date.today().isoformat()
    lines = [f"# sgemm: OpenBLAS and BLIS on the shapes of Mithril's models, {date}", "",
             f"CPU: {cpu_model()}; threads: {args.threads}; GFLOP/s = 2*M*N*K / median time of a call "
             f"(at least {args.min_time} s per cell, after warm-up). `sgemm`: the library's cblas_sgemm as called; "
             "`rt::gemm`: Mithril's wrapper, which runs M = 1 and N = 1 from 2^17 multiply-adds on as gemv "
             "(runtime/src/blas.cpp). "
             "Debian bookworm: OpenBLAS 0.3.21 (OpenMP build), BLIS 0.9.0 (OpenMP build). "
             "BLIS/OpenBLAS compares the rt::gemm columns (> 1: BLIS faster).", ""]
    if missing:
        lines += [f"Not measured (could not be built): {', '.join(missing)}.", ""]
    lines += ["| shape | M x N x K | op(A), op(B) | OpenBLAS sgemm | OpenBLAS rt::gemm | BLIS sgemm | BLIS rt::gemm | BLIS/OpenBLAS |",
              "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for name in order:
        any_row = results.get((name, "openblas")) or results.get((name, "blis"))
        cells = []
        for lib, _ in LIBS:
            r = results.get((name, lib))
            cells += [f"{r['sgemm_gflops']:.1f}", f"{r['rt_gemm_gflops']:.1f}"] if r else ["-", "-"]
        o, b = results.get((name, "openblas")), results.get((name, "blis"))
        ratio = f"{b['rt_gemm_gflops'] / o['rt_gemm_gflops']:.2f}x" if o and b else "-"
        ops = f"{'A^T' if any_row['ta'] else 'A'}, {'B^T' if any_row['tb'] else 'B'}"
        lines.append(f"| {name} | {any_row['M']} x {any_row['N']} x {any_row['K']} | {ops} | "
                     + " | ".join(cells) + f" | {ratio} |")
    text = "\n".join(lines) + "\n"
    print(text)
    if not args.no_write:
        out = os.path.join(HERE, "results", f"gemm-{date}.md")
        os.makedirs(os.path.dirname(out), exist_ok=True)
        with open(out, "w") as f:
            f.write(text)
        print(f"wrote {out}")


if __name__ == "__main__":
    main()
