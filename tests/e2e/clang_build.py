#!/usr/bin/env python3
"""A generated project builds with clang 14, warning-free, and computes what NumPy does.

`mithril compile samples/mlp.yaml` writes the project (with its copy of the runtime);
CMake builds it with CXX=clang++-14 and -Werror (-Wall -Wextra come from the project);
the binary runs on samples/data/mlp_input.npy with weights written here by struct + json,
and its output is compared with harness.mlp_reference (NumPy float64, rtol/atol 1e-5).
Then lenet's generated source is compiled (syntax only) with clang too, so the
convolution and pooling kernel templates are instantiated under clang as well.

Exits 77 (skipped) when clang++-14 is not installed (tools/setup.sh installs it).
"""
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import mlp_reference, mlp_weights, save_safetensors  # noqa: E402

CLANG = "clang++-14"


def run(cmd, **kw):
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=600, **kw)
    if p.returncode != 0:
        sys.exit(f"FAIL: {' '.join(cmd)} exited {p.returncode}\n{p.stdout}\n{p.stderr}")
    return p


def main():
    mithril, root = sys.argv[1], sys.argv[2]
    clang = shutil.which(CLANG)
    if not clang:
        print(f"skipped: {CLANG} is not installed")
        return 77
    with tempfile.TemporaryDirectory() as tmp:
        proj, build = os.path.join(tmp, "mlp"), os.path.join(tmp, "mlp", "build")
        run([mithril, "compile", os.path.join(root, "samples", "mlp.yaml"), "-o", proj, "--max", "N=8"])
        run(["cmake", "-S", proj, "-B", build, f"-DCMAKE_CXX_COMPILER={clang}", "-DCMAKE_CXX_FLAGS=-Werror"],
            env=dict(os.environ, CXX=clang))
        p = run(["cmake", "--build", build, "-j", "2"])
        if "warning:" in p.stdout + p.stderr:
            sys.exit("FAIL: clang build has warnings\n" + p.stdout + p.stderr)
        # The build really used clang (a CXX from the environment or a cached compiler would not).
        found = [os.path.join(d, f) for d, _, fs in os.walk(os.path.join(build, "CMakeFiles"))
                 for f in fs if f == "CMakeCXXCompiler.cmake"]
        if not found or 'set(CMAKE_CXX_COMPILER_ID "Clang")' not in open(found[0]).read():
            sys.exit("FAIL: the project was not configured with clang")
        print("mlp project: built warning-free with clang 14")

        rng = np.random.default_rng(11)
        w = mlp_weights(rng)
        wpath = os.path.join(tmp, "w.safetensors")
        save_safetensors(wpath, w)
        x_path = os.path.join(root, "samples", "data", "mlp_input.npy")
        out = os.path.join(tmp, "out")
        run([os.path.join(build, "mlp"), "--input", f"input={x_path}", "--weights", wpath, "-o", out])
        got = np.load(os.path.join(out, "output.npy"))
        ref = mlp_reference(np.load(x_path), w)
        if got.shape != ref.shape or got.dtype != np.float32 or not np.allclose(got, ref, rtol=1e-5, atol=1e-5):
            sys.exit(f"FAIL: clang-built mlp: {got.dtype}{list(got.shape)} differs from NumPy "
                     f"(max abs error {np.abs(got.astype(np.float64) - ref).max() if got.shape == ref.shape else '-'})")
        print(f"mlp output: matches NumPy, max abs error {np.abs(got - ref).max():.2e}")

        lenet = os.path.join(tmp, "lenet")
        run([mithril, "compile", os.path.join(root, "samples", "lenet.yaml"), "-o", lenet, "--shape", "N=2", "--grad"])
        p = run([clang, "-std=c++20", "-fsyntax-only", "-Wall", "-Wextra", "-Werror", "-fopenmp", "-march=native",
                 "-I", os.path.join(lenet, "runtime", "include"), os.path.join(lenet, "lenet.cpp")])
        print("lenet source (conv, pool, gradients): compiles warning-free with clang 14")
    return 0


if __name__ == "__main__":
    sys.exit(main())
