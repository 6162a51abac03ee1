#!/usr/bin/env python3
"""End to end: `mithril run --bench N --profile` (and `mithril train --bench N --profile`).

The table must list every layer of LeNet (forward pass), and a total FLOP count of the
matrix products and convolutions equal to the one counted here from the
architecture (two FLOPs per multiply-add: conv = 2 * output elements * C/groups
* kernel area, linear = 2 * rows * in * out), for the forward pass alone and
with --grad (weight gradients: the forward count again; data gradients for every
layer but the first, whose input is data). The shares must add up to 100%.
--profile without --bench is an error.

Usage: profile_run.py MITHRIL ROOT
"""
import os
import re
import subprocess
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import shared_cache  # noqa: E402

N = 2
# LeNet (samples/lenet.yaml): (name, flops of one forward pass at batch N)
LAYERS = [("conv1", 2 * N * 6 * 28 * 28 * (1 * 5 * 5)), ("conv2", 2 * N * 16 * 10 * 10 * (6 * 5 * 5)),
          ("fc1", 2 * N * 400 * 120), ("fc2", 2 * N * 120 * 84), ("fc3", 2 * N * 84 * 10)]


def run(args, env):
    return subprocess.run(args, capture_output=True, text=True, env=env, timeout=600)


def main():
    mithril, root = sys.argv[1], os.path.abspath(sys.argv[2])
    failures = []
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, MITHRIL_CACHE_DIR=shared_cache(tmp), OMP_NUM_THREADS="1")
        x = os.path.join(tmp, "x.npy")
        np.save(x, np.random.default_rng(0).standard_normal((N, 1, 28, 28)).astype(np.float32))
        lenet = os.path.join(root, "samples", "lenet.yaml")
        forward = sum(f for _, f in LAYERS)
        backward = forward + sum(f for name, f in LAYERS if name != "conv1")
        for extra, expected in (([], forward), (["--grad"], forward + backward)):
            p = run([mithril, "run", lenet, "--input", f"input={x}", "--bench", "5", "--profile", *extra], env)
            what = "run --profile" + (" --grad" if extra else "")
            if p.returncode != 0:
                failures.append(f"{what}: exit {p.returncode}: {p.stderr.strip()}")
                continue
            out = p.stdout
            m = re.search(r"matrix products and convolutions: ([\d.]+)% of the time, ([\d.e+-]+) GFLOP per run", out)
            if not m:
                failures.append(f"{what}: no matrix-product line in:\n{out}")
                continue
            flops = float(m.group(2)) * 1e9
            if abs(flops - expected) > 5e-4 * expected:  # printed with 4 significant digits
                failures.append(f"{what}: {flops:.6g} FLOP per run, counted {expected}")
            else:
                print(f"ok   {what}: {flops:.4g} FLOP per run (counted {expected})")
            rows = re.findall(r"^\s+([\d.]+)%\s+([\d.]+)\s+(?:[\d.]+)?\s+(\S+) \((\w+), (\w+)\)$", out, re.M)
            names = {r[2] for r in rows}
            for name, _ in LAYERS if not extra else []:  # with --grad, 33 layers: only the top 25 are listed
                if name not in names:
                    failures.append(f"{what}: layer {name} missing from the table:\n{out}")
            passes = {r[4] for r in rows}
            want = {"forward", "backward"} if extra else {"forward"}
            if passes != want:
                failures.append(f"{what}: passes {sorted(passes)}, expected {sorted(want)}")
            total = sum(float(r[0]) for r in rows)
            if abs(total - 100) > 0.5 and "more layers" not in out:
                failures.append(f"{what}: layer shares add up to {total}%")
            print(f"ok   {what}: {len(rows)} layers listed, passes {sorted(passes)}")

        p = run([mithril, "run", lenet, "--input", f"input={x}", "--profile"], env)
        if p.returncode == 0 or "--profile times the --bench runs" not in p.stderr:
            failures.append(f"run --profile without --bench: exit {p.returncode}, stderr {p.stderr.strip()!r}")
        else:
            print("ok   run --profile without --bench is an error")

        # Training: forward, backward and the optimizer's updates, per layer.
        p = run([mithril, "train", os.path.join(root, "samples", "digits_mlp.yaml"), "--bench", "3", "--profile"], env)
        if p.returncode != 0:
            failures.append(f"train --profile: exit {p.returncode}: {p.stderr.strip()}")
        else:
            passes = set(re.findall(r"^\s+[\d.]+%.*\((?:\w+), (\w+)\)$", p.stdout, re.M))
            if not {"forward", "backward", "update"} <= passes:
                failures.append(f"train --profile: passes {sorted(passes)} in:\n{p.stdout}")
            else:
                print("ok   train --profile: forward, backward and update layers")
    for f in failures:
        print("FAIL", f)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
