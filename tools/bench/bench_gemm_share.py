#!/usr/bin/env python3
"""GEMM efficiency of Mithril's GEMM-dominated runs: the share of time in matrix products, and the
time Mithril takes for its Linear layers against the BLAS's own best on the same shapes.

    /usr/bin/python3 tools/bench/bench_gemm_share.py [--threads 2] [--mithril build/mithril]
        [--only NAME] [--min-time 0.2] [--no-write]

For each run (MLP batch 1 and 64, GPT-2 small 1 x 64 tokens; with --train also the training steps
of MLP batch 64 and GPT-2 4 x 64):
  1. `mithril check --json` gives every Linear layer's product: M (the rows: every input dimension
     but the last), N (its `dimension`), K (its input features); in a training step each Linear
     also has its data gradient (M x K x N, dY W) and its weight gradient (N x K x M, dY^T X);
  2. `mithril run --bench R --profile` (or `mithril train`) times the program and every layer; the
     profile's "by op" lines give the time of all Linear layers (in training also LinearGradWeight
     and the backward MatMuls, the data gradients) and its last line the share of all matrix
     products and convolutions;
  3. tools/bench/gemm's gemm_bench, built once against OpenBLAS and once against BLIS, times each
     distinct shape alone, warm and repeated, as the library's cblas_sgemm and as mithril::rt::gemm
      (gemv for one-row products): the best of the four is "the BLAS's best" for that shape. It is
     timed warm: its operands stay in cache from call to call, while in a model the weights of
     large layers come from memory (GPT-2's), so the comparison favours the BLAS.
The BLAS's time for a run's products is the sum over its products of 2*M*N*K / best GFLOP/s;
efficiency = that time / Mithril's time for the same layers (1.0: as fast as the best library
call on each shape alone; above 1: faster, which Mithril's packed kernel and its epilogues can be).
Written to tools/bench/results/gemm-share-<date>.md unless --no-write. A benchmark, not a test.
"""
import argparse
import json
import os
import re
import subprocess
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import common  # noqa: E402
from bench_gemm import LIBS, build  # noqa: E402

# name, sample, input name, input shape, tokens?, runs
INFER = [
    ("MLP batch 1", "mlp", "input", (1, 784), False, 2000),
    ("MLP batch 64", "mlp", "input", (64, 784), False, 300),
    ("GPT-2 small 1 x 64 tokens", "gpt2", "tokens", (1, 64), True, 10),
]
# name, sample, batch shape, classes, steps
TRAIN = [
    ("MLP training step, batch 64", "mlp", (64, 784), 10, 100),
    ("GPT-2 small training step, 4 x 64 tokens", "gpt2", (4, 64), common.VOCAB, 3),
]
# The profile's ops (op (pass)) that compute those products: a Linear's data gradient is a MatMul.
INFER_OPS = ["Linear (forward)"]
TRAIN_OPS = ["Linear (forward)", "LinearGradWeight (backward)", "MatMul (backward)"]


def linear_products(mithril, model, shape_args, train):
    """[(M, N, K, ta, tb, what)] of every Linear layer (and its gradients in training: the data
    gradient only where the layer's input is not a model input)."""
    p = subprocess.run([mithril, "check", model, "--json"] + shape_args, capture_output=True, text=True, check=True)
    summary = json.loads(p.stdout)
    model_inputs = {i["name"] for i in summary["inputs"]}
    out = []
    for layer in summary["layers"]:
        if layer["op"] != "Linear":
            continue
        xs, ys = layer["inputs"][0]["shape"], layer["outputs"][0]["shape"]
        if not all(isinstance(d, int) for d in xs + ys):
            raise ValueError(f"{layer['name']}: symbolic shape {xs} -> {ys}; bind it")
        M, K, N = int(np.prod(xs[:-1])), xs[-1], ys[-1]
        out.append((M, N, K, 0, 1, "forward"))
        if train:
            if layer["inputs"][0]["name"] not in model_inputs:
                out.append((M, K, N, 0, 0, "data gradient"))
            out.append((N, K, M, 1, 0, "weight gradient"))
    return out


def parse_profile(text):
    """{"op (pass)": ms per run} from the profile's "by op" lines, and the matrix-product share line."""
    ops, share = {}, None
    in_ops = False
    for line in text.splitlines():
        if line.startswith("by op:"):
            in_ops = True
            continue
        m = re.match(r"matrix products and convolutions: ([0-9.]+)% of the time, ([0-9.]+) GFLOP per (?:run|step), "
                     r"([0-9.]+) GFLOP/s", line)
        if m:
            share = {"share": float(m.group(1)), "gflop": float(m.group(2)), "gflops": float(m.group(3))}
            in_ops = False
            continue
        if in_ops:
            m = re.match(r"\s*[0-9.]+%\s+([0-9.]+)\s+(?:[0-9.]+\s+)?(\w+) \((\w+)\): (\d+)", line)
            if m:
                key = f"{m.group(2)} ({m.group(3)})"
                ops[key] = ops.get(key, 0.0) + float(m.group(1))
    return ops, share


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--mithril", default=common.DEFAULT_MITHRIL)
    ap.add_argument("--only", help="just the run of this name")
    ap.add_argument("--train", action="store_true", help="also the training steps (GPT-2's takes minutes to build)")
    ap.add_argument("--min-time", type=float, default=0.2, help="seconds of timing per shape and way in gemm_bench")
    ap.add_argument("--build-dir", default=os.path.join(tempfile.gettempdir(), "mithril-bench-gemm"))
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()

    tmp = tempfile.mkdtemp(prefix="mithril-gemm-share-")
    cache = os.path.join(tmp, "cache")
    env = common.mithril_env(args.threads, cache)
    runs = []  # (name, products, profile ops, share, median ms, products' ops)
    for name, sample, in_name, shape, tokens, reps in INFER:
        if args.only and args.only != name:
            continue
        model = os.path.join(common.ROOT, "samples", sample + ".yaml")
        shape_arg = ["--shape", f"{in_name}={','.join(map(str, shape))}"]
        products = linear_products(args.mithril, model, shape_arg, False)
        x = os.path.join(tmp, f"{sample}-{'x'.join(map(str, shape))}.npy")
        np.save(x, common.make_input(shape, tokens))
        print(f"bench_gemm_share: {name}: {len(products)} products; running", file=sys.stderr)
        p = subprocess.run([args.mithril, "run", model, "--input", f"{in_name}={x}", "--bench", str(reps), "--profile",
                            "-o", os.path.join(tmp, "out")], capture_output=True, text=True, env=env, check=True)
        ops, share = parse_profile(p.stdout)
        runs.append((name, products, ops, share, common.parse_bench(p.stdout)["median"], INFER_OPS))
    if args.train:
        for name, sample, shape, classes, steps in TRAIN:
            if args.only and args.only != name:
                continue
            model = os.path.join(common.ROOT, "samples", sample + ".yaml")
            shape_arg = ["--shape", f"input={shape[0]},{shape[1]}" if sample == "mlp" else f"tokens={shape[0]},{shape[1]}"]
            products = linear_products(args.mithril, model, shape_arg, True)
            # bench_peers' training command, with the model's own initial weights (--seed) instead of a file.
            cmd, _, _ = common.train_step_command(args.mithril, sample, shape, classes, "-", steps, args.threads, tmp)
            i = cmd.index("--weights")
            del cmd[i:i + 2]
            print(f"bench_gemm_share: {name}: {len(products)} products; running", file=sys.stderr)
            p = subprocess.run(cmd + ["--profile"], capture_output=True, text=True, env=env, check=True)
            ops, share = parse_profile(p.stdout)
            runs.append((name, products, ops, share, common.parse_bench(p.stdout)["median"], TRAIN_OPS))
    if not runs:
        sys.exit(f"bench_gemm_share: no run named {args.only!r}")

    # Every distinct shape, timed by gemm_bench against each library.
    shapes = sorted({(M, N, K, ta, tb) for _, products, *_ in runs for (M, N, K, ta, tb, _) in products})
    shapes_file = os.path.join(tmp, "shapes.txt")
    with open(shapes_file, "w") as f:
        for (M, N, K, ta, tb) in shapes:
            f.write(f"{M} {N} {K} {ta} {tb} {M}x{N}x{K}\n")
    best = {}  # shape -> (GFLOP/s, how)
    for lib, label in LIBS:
        binary, why = build(lib, args.build_dir)
        if binary is None:
            print(f"bench_gemm_share: {label} could not be built; left out:\n  " + "\n  ".join(why), file=sys.stderr)
            continue
        print(f"bench_gemm_share: timing {len(shapes)} shapes with {label}", file=sys.stderr)
        genv = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
        genv.pop("MITHRIL_NUM_THREADS", None)
        p = subprocess.run([binary, "--threads", str(args.threads), "--min-time", str(args.min_time), "--shapes",
                            shapes_file], capture_output=True, text=True, env=genv, check=True)
        for line in p.stdout.splitlines():
            row = json.loads(line)
            key = (row["M"], row["N"], row["K"], row["ta"], row["tb"])
            for col, how in (("sgemm_gflops", f"{label} sgemm"), ("rt_gemm_gflops", f"{label} rt::gemm")):
                if row[col] > best.get(key, (0, ""))[0]:
                    best[key] = (row[col], how)

    lines = [f"# GEMM efficiency of Mithril's runs, {common.today()}", "",
             f"CPU: {common.cpu_model()}; threads: {args.threads}. Mithril: the profile of `mithril run/train --bench "
             "--profile` (time in the Linear layers, and in training their gradients: LinearGradWeight and the "
             "backward MatMuls). BLAS's best: per shape the fastest of OpenBLAS and BLIS, each as cblas_sgemm and "
             "as mithril::rt::gemm (gemv for one-row products), timed alone, warm and repeated by "
             "tools/bench/gemm (median of at least "
             f"{args.min_time} s); summed over the run's products as 2*M*N*K / GFLOP/s. Efficiency = BLAS's time / "
             "Mithril's time for the same products (> 1: Mithril's layers faster than the best library call).", ""]
    rows = []
    for name, products, ops, share, median, names in runs:
        mine = sum(ops.get(o, 0.0) for o in names)
        flop = sum(2.0 * M * N * K for (M, N, K, *_) in products)
        blas_ms = sum(2.0 * M * N * K / (best[(M, N, K, ta, tb)][0] * 1e9) * 1e3
                      for (M, N, K, ta, tb, _) in products if (M, N, K, ta, tb) in best)
        rows.append([name, f"{median:.4g}", f"{share['share']:.1f}%" if share else "-",
                     f"{share['gflops']:.1f}" if share else "-", f"{mine:.4g}", f"{flop / (mine * 1e6):.1f}" if mine else "-",
                     f"{blas_ms:.4g}", f"{flop / (blas_ms * 1e6):.1f}" if blas_ms else "-",
                     f"{blas_ms / mine:.2f}" if mine and blas_ms else "-"])
    lines += common.table(["run", "median (ms)", "share in products and convolutions", "their GFLOP/s",
                           "Mithril's products (ms)", "GFLOP/s", "BLAS's best (ms)", "GFLOP/s", "efficiency"], rows)
    lines += ["", "Per shape (GFLOP/s of the BLAS's best, and which call):", ""]
    lines += common.table(["M x N x K", "op(A), op(B)", "GFLOP/s", "call", "in"],
                          [[f"{M} x {N} x {K}", f"{'A^T' if ta else 'A'}, {'B^T' if tb else 'B'}",
                            f"{best[(M, N, K, ta, tb)][0]:.1f}" if (M, N, K, ta, tb) in best else "-",
                            best.get((M, N, K, ta, tb), (0, "-"))[1],
                            ", ".join(sorted({n for n, prods, *_ in runs
                                              if any(p[:5] == (M, N, K, ta, tb) for p in prods)}))]
                           for (M, N, K, ta, tb) in shapes])
    if args.no_write:
        print("\n".join(lines))
    else:
        common.write_results("gemm-share", lines)


if __name__ == "__main__":
    main()
