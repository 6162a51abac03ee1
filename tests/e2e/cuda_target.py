"""The CUDA target (mithril compile --target cuda), without or with a GPU.

Everywhere:
  * `mithril targets` describes both targets; an unknown one is an error listing them;
  * the samples whose every op the CUDA target has code for compile to CUDA projects, and those
    projects build with nvcc, warnings as errors (host and device code), in one CMake build (one
    runtime for all, so the suite pays for it once; device code for sm_90 unless
    MITHRIL_CUDA_ARCH says otherwise);
  * the other samples, --grad and --train give one clear error and write nothing.
With a GPU (nvidia-smi lists one): each program runs on random inputs and its outputs match the
CPU target's within rtol 1e-4, atol 1e-5 (float32; cuBLAS without TF32, softmax and layer norm
summing in float: docs/codegen.md); a bad token id is one error naming the layer. Without one,
the runs are skipped with a notice (tools/gpu/check.sh runs this script on a lent GPU).

usage: cuda_target.py MITHRIL REPO
"""
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np

MITHRIL, REPO = sys.argv[1], sys.argv[2]
NVCC = shutil.which("nvcc") or ("/usr/local/cuda/bin/nvcc" if os.path.exists("/usr/local/cuda/bin/nvcc") else None)
RTOL, ATOL = 1e-4, 1e-5

# Samples the CUDA target compiles: (name, extra args, {input: (shape, kind)}).
GPT_SMALL = ["--arg", "layers=2", "--arg", "dim=64", "--arg", "heads=4", "--arg", "vocab=97", "--arg", "context=32"]
PROGRAMS = [
    ("mlp", [], {"input": ((4, 784), "float")}),
    ("digits_mlp", [], {"pixels": ((4, 64), "float")}),
    ("two_tower", [], {"query": ((4, 32), "float"), "item": ((4, 48), "float")}),
    ("char_gpt", [], {"tokens": ((2, 16), "tokens:128")}),
    ("gpt2", GPT_SMALL, {"tokens": ((2, 16), "tokens:97")}),
]
# Samples with ops the CUDA target has no code for yet: the error names the layer and the op.
UNSUPPORTED = {"lenet": "Conv2d", "digits_cnn": "Conv2d", "resnet18": "Conv2d", "mobilenet": "Conv2d",
               "tiny_resnet": "Conv2d"}

failures = []


def run(args, **kw):
    return subprocess.run(args, capture_output=True, text=True, **kw)


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL:", what)


def has_gpu():
    smi = shutil.which("nvidia-smi")
    if not smi:
        return False
    p = run([smi, "-L"])
    return p.returncode == 0 and "GPU" in p.stdout


with tempfile.TemporaryDirectory() as tmp:
    # --- mithril targets ---------------------------------------------------------------------------
    p = run([MITHRIL, "targets"])
    check(p.returncode == 0 and "cpu\n" in p.stdout and "cuda\n" in p.stdout and "CUDA C++20" in p.stdout,
          "mithril targets lists cpu and cuda: " + p.stdout + p.stderr)
    p = run([MITHRIL, "targets", "cuda"])
    check(p.returncode == 0 and "has code for:" in p.stdout and "Linear" in p.stdout and "not yet:" in p.stdout
          and "Conv2d" in p.stdout.split("not yet:")[1], "mithril targets cuda lists its ops: " + p.stdout)
    p = run([MITHRIL, "targets", "tpu"])
    check(p.returncode != 0 and "unknown target 'tpu'; available: cpu, cuda" in p.stderr, "unknown target: " + p.stderr)
    p = run([MITHRIL, "compile", os.path.join(REPO, "samples", "mlp.yaml"), "--target", "metal", "-o", os.path.join(tmp, "x")])
    check(p.returncode != 0 and "unknown target 'metal'" in p.stderr and not os.path.exists(os.path.join(tmp, "x")),
          "compile --target metal: " + p.stderr)

    # --- what the CUDA target does not do yet: one clear error, nothing written --------------------
    for sample, op in UNSUPPORTED.items():
        out = os.path.join(tmp, "no-" + sample)
        p = run([MITHRIL, "compile", os.path.join(REPO, "samples", sample + ".yaml"), "--target", "cuda", "--max", "N=2",
                 "-o", out])
        check(p.returncode != 0 and f"({op}): the CUDA target does not support {op} yet" in p.stderr
              and p.stderr.count("error:") == 1 and not os.path.exists(out), f"{sample} on cuda: " + p.stderr)
    for flag, text in (("--grad", "does not generate backward passes yet"), ("--train", "does not generate training programs yet")):
        out = os.path.join(tmp, "no" + flag)
        p = run([MITHRIL, "compile", os.path.join(REPO, "samples", "mlp.yaml"), "--target", "cuda", flag, "-o", out])
        check(p.returncode != 0 and text in p.stderr and not os.path.exists(out), f"cuda {flag}: " + p.stderr)

    # --- every supported sample: generate, then one CMake build of all ------------------------------
    projects = []
    for name, extra, _ in PROGRAMS:
        out = os.path.join(tmp, name)
        p = run([MITHRIL, "compile", os.path.join(REPO, "samples", name + ".yaml"), "--target", "cuda", "--max", "N=4",
                 "--max", "B=4", "--max", "T=16", "-o", out] + extra)
        check(p.returncode == 0 and os.path.exists(os.path.join(out, name + ".cu")), f"compile {name} --target cuda: " + p.stderr)
        if p.returncode == 0:
            src = open(os.path.join(out, name + ".cu")).read()
            check("rt::cuda::" in src and "__device__" in src or name == "mlp", f"{name}.cu launches device code")
            projects.append((name, out))
    if not NVCC:
        print("SKIP: no nvcc (the CUDA Toolkit at /usr/local/cuda): the generated CUDA was not compiled")
    elif projects:
        # One project holding every program: the first one's CMakeLists.txt (its runtime, flags and
        # architecture logic) plus an executable per other program.
        first_name, first = projects[0]
        lists = open(os.path.join(first, "CMakeLists.txt")).read()
        for name, out in projects[1:]:
            lists += (f"add_executable({name} {out}/main.cpp {out}/{name}.cu)\n"
                      f"target_include_directories({name} PRIVATE {out})\n"
                      f"target_link_libraries({name} PRIVATE mithril_runtime mithril_runtime_cuda)\n")
        open(os.path.join(first, "CMakeLists.txt"), "w").write(lists)
        arch = os.environ.get("MITHRIL_CUDA_ARCH") or ("" if has_gpu() else "90")
        build = os.path.join(tmp, "build")
        cfg = ["cmake", "-S", first, "-B", build, "-G", "Ninja", "-DMITHRIL_WERROR=ON", f"-DCMAKE_CUDA_COMPILER={NVCC}"]
        if arch:
            cfg.append(f"-DCMAKE_CUDA_ARCHITECTURES={arch}")
        p = run(cfg)
        check(p.returncode == 0, "configure the CUDA projects: " + p.stdout[-3000:] + p.stderr[-3000:])
        if p.returncode == 0:
            p = run(["cmake", "--build", build, "-j", str(min(4, os.cpu_count() or 2))])
            check(p.returncode == 0, "build the CUDA projects with nvcc, warnings as errors:\n" + p.stdout[-6000:] + p.stderr[-3000:])
            if p.returncode == 0:
                print(f"built {len(projects)} CUDA programs with nvcc (-Werror): " + ", ".join(n for n, _ in projects))

            # --- on a GPU: the same outputs as the CPU target --------------------------------------------
            if p.returncode == 0 and not has_gpu():
                # Without a GPU a program says so, once, and exits non-zero.
                x = os.path.join(tmp, "x.npy")
                np.save(x, np.zeros((4, 784), np.float32))
                q = run([os.path.join(build, "mlp"), "--input", f"input={x}", "-o", os.path.join(tmp, "none")])
                check(q.returncode != 0 and "no CUDA device" in q.stderr and q.stderr.count("\n") == 1
                      and not os.path.exists(os.path.join(tmp, "none")), "mlp without a GPU: " + q.stdout + q.stderr)
                print("SKIP (no GPU here): the CUDA programs were built, not run; tools/gpu/check.sh runs them on a lent GPU")
            elif p.returncode == 0:
                rng = np.random.default_rng(7)
                for (name, extra, inputs), (_, out) in zip(PROGRAMS, projects):
                    model = os.path.join(REPO, "samples", name + ".yaml")
                    args = []
                    for iname, (shape, kind) in inputs.items():
                        a = (rng.integers(0, int(kind.split(":")[1]), shape).astype(np.int64) if kind.startswith("tokens")
                             else rng.standard_normal(shape).astype(np.float32))
                        path = os.path.join(tmp, f"{name}_{iname}.npy")
                        np.save(path, a)
                        args += ["--input", f"{iname}={path}"]
                    weights = os.path.join(tmp, name + ".safetensors")
                    cpu_out, gpu_out = os.path.join(tmp, name + "-cpu"), os.path.join(tmp, name + "-gpu")
                    q = run([MITHRIL, "run", model, "--max", "N=4", "--max", "B=4", "--max", "T=16", "-o", cpu_out,
                             "--save-weights", weights] + extra + args)
                    check(q.returncode == 0, f"{name} on the CPU: " + q.stderr)
                    q = run([os.path.join(build, name), "--weights", weights, "-o", gpu_out] + args)
                    check(q.returncode == 0, f"{name} on the GPU: " + q.stdout + q.stderr)
                    if q.returncode != 0:
                        continue
                    for f in sorted(os.listdir(cpu_out)):
                        if not f.endswith(".npy"):
                            continue
                        c, g = np.load(os.path.join(cpu_out, f)), np.load(os.path.join(gpu_out, f))
                        ok = c.shape == g.shape and np.allclose(g, c, rtol=RTOL, atol=ATOL)
                        err = float(np.max(np.abs(g - c))) if c.shape == g.shape else float("nan")
                        check(ok, f"{name} {f}: GPU vs CPU max abs error {err:.3g}")
                        print(f"{name} {f}: max abs error {err:.3g} (rtol {RTOL}, atol {ATOL})")
                    q = run([os.path.join(build, name), "--bench", "20"] + args)
                    print(f"{name} --bench 20: {q.stdout.strip().splitlines()[0] if q.stdout.strip() else q.stderr}")
                # A token id out of range: one error naming the embedding layer.
                bad = os.path.join(tmp, "bad_tokens.npy")
                np.save(bad, np.full((2, 16), 1000, dtype=np.int64))
                q = run([os.path.join(build, "char_gpt"), "--input", f"tokens={bad}", "-o", os.path.join(tmp, "bad")])
                check(q.returncode != 0 and "index 1000 is out of range [0, 128)" in q.stderr, "bad token on the GPU: " + q.stderr)

if failures:
    print(f"{len(failures)} failure(s)")
    sys.exit(1)
print("ok")
