#!/usr/bin/env python3
"""Bad input to `mithril run` and to generated binaries: each case must give one
clear message naming the tensor or file, a non-zero exit, and no output files.
All cases share one cached build of samples/mlp.yaml (batch 2).
"""
import os
import subprocess
import sys
import tempfile

import numpy as np

from harness import shared_cache, save_safetensors


def main():
    mithril, root = sys.argv[1], sys.argv[2]
    model = os.path.join(root, "samples", "mlp.yaml")
    rng = np.random.default_rng(11)
    failures = []
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, MITHRIL_CACHE_DIR=shared_cache(tmp))
        path = lambda name: os.path.join(tmp, name)
        x = rng.standard_normal((2, 784)).astype(np.float32)
        np.save(path("x.npy"), x)
        np.save(path("x64.npy"), x.astype(np.float64))
        np.save(path("other.npy"), x)
        raw = open(path("x.npy"), "rb").read()
        open(path("truncated.npy"), "wb").write(raw[: len(raw) // 2])
        open(path("garbage.npy"), "wb").write(b"not a numpy file at all")
        w = {f"{l}.weight": rng.standard_normal(s).astype(np.float32) for l, s in [(0, (512, 784)), (2, (512, 512)), (4, (10, 512))]}
        w.update({f"{l}.bias": rng.standard_normal(n).astype(np.float32) for l, n in [(0, 512), (2, 512), (4, 10)]})
        save_safetensors(path("w.safetensors"), w)
        good = open(path("w.safetensors"), "rb").read()
        open(path("corrupt.safetensors"), "wb").write(good[:8] + b"{ this is not json" + good[30:])
        open(path("short.safetensors"), "wb").write(good[: len(good) - 1000])
        open(path("a_file"), "w").write("x")

        cases = [
            ("an extra input", ["--input", f"input={path('x.npy')}", "--input", f"extra={path('other.npy')}"],
             "the model has no input or dimension 'extra'"),
            ("an input of the wrong dtype", ["--input", f"input={path('x64.npy')}"],
             "input 'input': expected float32, file"),
            ("a truncated .npy", ["--input", f"input={path('truncated.npy')}"], "truncated.npy"),
            ("a file that is not .npy", ["--input", f"input={path('garbage.npy')}"], "garbage.npy"),
            ("a corrupt safetensors header", ["--input", f"input={path('x.npy')}", "--weights", path("corrupt.safetensors")],
             "corrupt.safetensors"),
            ("a truncated safetensors file", ["--input", f"input={path('x.npy')}", "--weights", path("short.safetensors")],
             "short.safetensors"),
            ("an unwritable output folder", ["--input", f"input={path('x.npy')}", "-o", os.path.join(path("a_file"), "out")],
             "cannot create output folder"),
        ]
        for what, args, expect in cases:
            out = path("out-" + what.replace(" ", "_"))
            if "-o" not in args:
                args = args + ["-o", out]
            p = subprocess.run([mithril, "run", model, *args], capture_output=True, text=True, env=env, timeout=600)
            lines = [l for l in p.stderr.splitlines() if l.strip() and not l.startswith("mithril: building")]
            ok = p.returncode != 0 and expect in p.stderr and len(lines) == 1 and not os.path.exists(out)
            print(f"{'ok  ' if ok else 'FAIL'} {what}: {lines[-1] if lines else '(no message)'}")
            if not ok:
                failures.append(f"{what}: exit {p.returncode}, expected one line with {expect!r}, got:\n{p.stderr}")
    for f in failures:
        print("FAIL:", f)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
