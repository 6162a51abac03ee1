#!/usr/bin/env python3
"""End to end: `mithril run --blas blis` and `--blas openblas` on samples/mlp.yaml agree.

The same input and weights (batch 1: the gemv path; batch 64: gemm, with the
skinny 64 x 10 x 512 output layer) run through a binary linking BLIS and one
linking OpenBLAS. Checked: the two outputs agree to 1e-5 relative (|blis -
openblas| <= 1e-5 * (|openblas| + max |openblas|): float32, the libraries sum in
different orders), both match a NumPy float64 reference computed here (rtol 1e-5,
atol 1e-5, as mlp_run.py), each binary links the library asked for (ldd), the two
are built in different cache folders, and `compile --blas blis` writes a project
whose CMakeLists.txt selects BLIS. Bad values of --blas are one error, exit 1.

Exits 77 (skipped) with a message when BLIS is not installed (tools/setup.sh
installs libblis-dev): then `mithril run --blas blis` must fail with the one
error naming libblis-dev.
"""
import glob
import os
import subprocess
import sys
import tempfile

import numpy as np

from harness import mlp_reference, mlp_weights, save_safetensors

SKIP = 77


def main():
    mithril, root = sys.argv[1], sys.argv[2]
    model = os.path.join(root, "samples", "mlp.yaml")
    rng = np.random.default_rng(11)
    failures = []
    with tempfile.TemporaryDirectory() as tmp:
        cache = os.path.join(tmp, "cache")
        env = dict(os.environ, MITHRIL_CACHE_DIR=cache)
        # The models are built in a cache of this test's own (it counts the builds there); the
        # runtimes they link come from the run's shared cache, where each is built once.
        if os.environ.get("MITHRIL_CACHE_DIR"):
            os.makedirs(cache)
            for blas in ("openblas", "blis"):
                p = subprocess.run([mithril, "runtime", "build", "--blas", blas], capture_output=True, text=True)
                entry = os.path.dirname(p.stdout.strip())
                if p.returncode == 0 and os.path.isdir(entry):
                    os.symlink(entry, os.path.join(cache, os.path.basename(entry)))
        w = mlp_weights(rng)
        wpath = os.path.join(tmp, "w.safetensors")
        save_safetensors(wpath, w)

        def run(*args):
            return subprocess.run([mithril, "run", model, *args], capture_output=True, text=True, env=env, timeout=900)

        # Bad values: rejected before anything is built.
        for sub in (["run", model], ["compile", model, "-o", os.path.join(tmp, "never")], ["train", model]):
            p = subprocess.run([mithril, *sub, "--blas", "mkl"], capture_output=True, text=True, env=env)
            if p.returncode != 1 or "mkl" not in p.stderr or "openblas" not in p.stderr or "blis" not in p.stderr:
                failures.append(f"`{sub[0]} --blas mkl`: exit {p.returncode}, stderr {p.stderr!r}")
            else:
                print(f"{sub[0]} --blas mkl rejected: {p.stderr.strip().splitlines()[0]}")

        # compile: the choice is written into the project (its default; -DMITHRIL_BLAS overrides it).
        for blas in ("blis", "openblas"):
            proj = os.path.join(tmp, f"proj_{blas}")
            subprocess.run([mithril, "compile", model, "-o", proj, "--shape", "N=2", "--blas", blas], check=True,
                           capture_output=True, env=env)
            with open(os.path.join(proj, "CMakeLists.txt")) as f:
                if f'set(MITHRIL_BLAS "{blas}" CACHE' not in f.read():
                    failures.append(f"compile --blas {blas}: CMakeLists.txt does not select {blas}")

        for batch in (1, 64):
            x = rng.standard_normal((batch, 784)).astype(np.float32)
            xpath = os.path.join(tmp, f"x{batch}.npy")
            np.save(xpath, x)
            ref = mlp_reference(x, w)
            outs = {}
            for blas in ("openblas", "blis"):
                before = set(glob.glob(os.path.join(cache, "*", "build", "mlp")))
                out = os.path.join(tmp, f"out_{blas}_{batch}")
                p = run("--input", f"input={xpath}", "--weights", wpath, "-o", out, "--blas", blas)
                if p.returncode != 0:
                    if blas == "blis" and "libblis-dev" in p.stderr:
                        lines = p.stderr.strip().splitlines()
                        if p.returncode != 1 or len([l for l in lines if "error:" in l]) != 1:
                            failures.append(f"missing BLIS is not one clean error: exit {p.returncode}\n{p.stderr}")
                            break
                        print(f"SKIPPED: BLIS is not installed (install libblis-dev, as tools/setup.sh does): "
                              f"{lines[-1]}")
                        sys.exit(SKIP if not failures else 1)
                    failures.append(f"batch {batch}, --blas {blas}: exit {p.returncode}\n{p.stderr}")
                    continue
                got = np.load(os.path.join(out, "output.npy"))
                outs[blas] = got
                if got.shape != ref.shape or not np.allclose(got, ref, rtol=1e-5, atol=1e-5):
                    failures.append(f"batch {batch}, --blas {blas}: differs from NumPy by {np.abs(got - ref).max()}")
                # The binary built for this run links the library asked for, in a cache folder of its own.
                new = sorted(set(glob.glob(os.path.join(cache, "*", "build", "mlp"))) - before)
                if len(new) != 1:
                    failures.append(f"batch {batch}, --blas {blas}: expected one new cached build, found {new}")
                    continue
                libs = subprocess.run(["ldd", new[0]], capture_output=True, text=True).stdout
                want, other = ("libblis", "libopenblas") if blas == "blis" else ("libopenblas", "libblis")
                if want not in libs or other in libs:
                    failures.append(f"batch {batch}, --blas {blas}: the binary does not link {want} alone:\n{libs}")
            if len(outs) == 2:
                a, b = outs["blis"], outs["openblas"]
                err = np.abs(a - b)
                bound = 1e-5 * (np.abs(b) + np.abs(b).max())
                if not (err <= bound).all():
                    failures.append(f"batch {batch}: BLIS and OpenBLAS differ by {err.max()} (bound {bound.min()})")
                else:
                    print(f"batch {batch}: BLIS and OpenBLAS agree, max difference {err.max():.2e}; "
                          f"NumPy error {np.abs(a - ref).max():.2e} / {np.abs(b - ref).max():.2e}")
        # A second run with the same choice reuses its build.
        xpath = os.path.join(tmp, "x1.npy")
        p = run("--input", f"input={xpath}", "--weights", wpath, "-o", os.path.join(tmp, "again"), "--blas", "blis")
        if p.returncode != 0 or "building" in p.stderr:
            failures.append(f"second --blas blis run was not cached: exit {p.returncode}\n{p.stderr}")
    for f in failures:
        print("FAIL:", f)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
