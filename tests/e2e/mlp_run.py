#!/usr/bin/env python3
"""End to end: `mithril run samples/mlp.yaml` against NumPy on the same weights.

The reference (harness.mlp_reference) is written from the model's meaning (Linear is x @ W.T + b,
PyTorch layout), not from anything Mithril generates. The weights file is
written with struct + json (the safetensors layout), independently of the
runtime's writer. Tolerance: float32, rtol 1e-5, atol 1e-5 (BLAS summation order).

Also checks bad input: a wrong-shaped .npy, a missing input, a weights file
lacking a parameter: each one message and a non-zero exit.
"""
import os
import shlex
import subprocess
import sys
import tempfile

import numpy as np

from harness import runtime_prefix_arg, shared_cache, mlp_reference, mlp_weights, save_safetensors


def main():
    mithril, root = sys.argv[1], sys.argv[2]
    model = os.path.join(root, "samples", "mlp.yaml")
    rng = np.random.default_rng(7)
    failures = []
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, MITHRIL_CACHE_DIR=shared_cache(tmp))
        w = mlp_weights(rng)
        wpath = os.path.join(tmp, "w.safetensors")
        save_safetensors(wpath, w)

        def run(*args):
            return subprocess.run([mithril, "run", model, *args], capture_output=True, text=True, env=env, timeout=600)

        for batch in (1, 5):
            x = rng.standard_normal((batch, 784)).astype(np.float32)
            xpath = os.path.join(tmp, f"x{batch}.npy")
            np.save(xpath, x)
            out = os.path.join(tmp, f"out{batch}")
            p = run("--input", f"input={xpath}", "--weights", wpath, "-o", out)
            if p.returncode != 0:
                failures.append(f"batch {batch}: exit {p.returncode}\n{p.stderr}")
                continue
            ref = mlp_reference(x, w)
            got = np.load(os.path.join(out, "output.npy"))
            if got.shape != ref.shape or got.dtype != np.float32 or not np.allclose(got, ref, rtol=1e-5, atol=1e-5):
                failures.append(f"batch {batch}: outputs differ, max abs error {np.abs(got - ref).max()}")
            else:
                print(f"batch {batch}: ok, max abs error {np.abs(got - ref).max():.2e}")

        # Bad input.
        bad = os.path.join(tmp, "bad.npy")
        np.save(bad, np.zeros((2, 100), np.float32))
        short = dict(w)
        del short["2.bias"]
        spath = os.path.join(tmp, "short.safetensors")
        save_safetensors(spath, short)
        xpath = os.path.join(tmp, "x1.npy")
        cases = [
            (["--input", f"input={bad}", "--weights", wpath], "[N, 784]"),
            (["--weights", wpath], "missing input 'input'"),
            (["--input", f"input={xpath}", "--weights", spath], "has no parameter '2.bias'"),
            (["--input", f"input={os.path.join(tmp, 'nope.npy')}"], "nope.npy"),
        ]
        for args, expect in cases:
            p = run(*args)
            if p.returncode == 0 or expect not in p.stderr:
                failures.append(f"bad input {args}: exit {p.returncode}, stderr lacks {expect!r}:\n{p.stderr}")
            else:
                print(f"bad input rejected: {p.stderr.strip().splitlines()[-1]}")
        # One binary for every batch size up to the compiled bound (N stays symbolic).
        proj = os.path.join(tmp, "proj")
        subprocess.run([mithril, "compile", model, "-o", proj, "--max", "N=4"], check=True, capture_output=True)
        b = subprocess.run(f"cmake -S {proj} -B {proj}/b {shlex.quote(runtime_prefix_arg(mithril, env))} > /dev/null && cmake --build {proj}/b -j 2 > /dev/null",
                           shell=True)
        if b.returncode != 0:
            failures.append("the --max N=4 project does not build")
        else:
            for batch in (1, 3, 4, 5):
                x = rng.standard_normal((batch, 784)).astype(np.float32)
                xp = os.path.join(tmp, f"xs{batch}.npy")
                np.save(xp, x)
                out = os.path.join(tmp, f"outs{batch}")
                p = subprocess.run([os.path.join(proj, "b", "mlp"), "--input", f"input={xp}", "--weights", wpath, "-o", out],
                                   capture_output=True, text=True)
                if batch <= 4:
                    h = np.maximum(x.astype(np.float64) @ w["0.weight"].T + w["0.bias"], 0)
                    h = np.maximum(h @ w["2.weight"].T + w["2.bias"], 0)
                    ref = h @ w["4.weight"].T + w["4.bias"]
                    ok = p.returncode == 0 and np.allclose(np.load(os.path.join(out, "output.npy")), ref, rtol=1e-5, atol=1e-5)
                    print(f"symbolic N: batch {batch} {'ok' if ok else 'FAILED'}")
                    if not ok:
                        failures.append(f"symbolic N, batch {batch}: exit {p.returncode} {p.stderr}")
                elif p.returncode == 0 or "exceeds the bound compiled in, 4" not in p.stderr or os.path.exists(out):
                    failures.append(f"batch 5 over the bound 4 was not refused cleanly: exit {p.returncode} {p.stderr}")
                else:
                    print(f"symbolic N: batch 5 refused: {p.stderr.strip()}")
        # --embed-weights: the weights compiled into the binary, used when no --weights is given.
        emb = os.path.join(tmp, "embedded")
        subprocess.run([mithril, "compile", model, "-o", emb, "--shape", "N=2", "--weights", wpath, "--embed-weights"],
                       check=True, capture_output=True)
        b = subprocess.run(f"cmake -S {emb} -B {emb}/b {shlex.quote(runtime_prefix_arg(mithril, env))} > /dev/null && cmake --build {emb}/b -j 2 > /dev/null", shell=True)
        x = rng.standard_normal((2, 784)).astype(np.float32)
        xp = os.path.join(tmp, "xe.npy")
        np.save(xp, x)
        p = subprocess.run([os.path.join(emb, "b", "mlp"), "--input", f"input={xp}", "-o", os.path.join(tmp, "oute")],
                           capture_output=True, text=True)
        h = np.maximum(x.astype(np.float64) @ w["0.weight"].T + w["0.bias"], 0)
        h = np.maximum(h @ w["2.weight"].T + w["2.bias"], 0)
        ref = h @ w["4.weight"].T + w["4.bias"]
        if b.returncode != 0 or p.returncode != 0 or not np.allclose(np.load(os.path.join(tmp, "oute", "output.npy")), ref,
                                                                      rtol=1e-5, atol=1e-5):
            failures.append(f"embedded weights: build {b.returncode}, run {p.returncode} {p.stderr}")
        else:
            print("embedded weights: ok")
        # A weights file that does not match the model is refused at compile time, and nothing is written.
        bad_w = dict(w)
        bad_w["4.weight"] = bad_w["4.weight"][:9]
        bpath = os.path.join(tmp, "badshape.safetensors")
        save_safetensors(bpath, bad_w)
        p = subprocess.run([mithril, "compile", model, "-o", os.path.join(tmp, "never"), "--shape", "N=2", "--weights", bpath],
                           capture_output=True, text=True)
        if p.returncode != 1 or "parameter '4.weight' expected float32[10,512], file holds float32[9,512]" not in p.stderr \
                or os.path.exists(os.path.join(tmp, "never")):
            failures.append(f"mismatched weights at compile time: exit {p.returncode} {p.stderr}")
        else:
            print(f"mismatched weights refused: {p.stderr.strip()}")
    for f in failures:
        print("FAIL:", f)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
