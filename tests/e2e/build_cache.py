#!/usr/bin/env python3
"""The build cache of `mithril run` under concurrent use, and after killed builds.

The cache holds two kinds of entries: the runtime (ROOT/runtime-BLAS-KEY, built with CMake once
for every model) and each model's program (ROOT/NAME-HASH, the model's own sources compiled
against that runtime). All cases share one fresh cache folder:

1. A `mithril run` is killed (SIGKILL) while the runtime builds. The build's processes (CMake,
   ninja or make, the compilers) must end with it, and the runtime's entry must not look complete
   (no marker `complete`).
2. Two `mithril run` of the same model start at once: one builds (the runtime again, then the
   model), the other says it waits for that build; both succeed with the same output.
3. A run of another model is killed while its sources compile (the runtime is built): its
   processes end, its entry is unmarked, and a stand-in binary is then put where the build would
   leave the real one: an entry without the marker must never be used, so this binary must never
   run. The next run rebuilds that model, and not the runtime.
4. A run of the first model uses the cached build without building or waiting.
5. With --blas blis (when BLIS is installed), two runs of different models start at once: they need
   the BLIS runtime, a cache entry of its own; one builds it, the other waits for it.
"""
import glob
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

DEADLINE = 600  # seconds for one build on a loaded machine


def entries(cache, prefix=""):
    """The cache's entry folders whose names start with `prefix` (lock files and hidden temporary folders aside)."""
    if not os.path.isdir(cache):
        return []
    return [os.path.join(cache, e) for e in sorted(os.listdir(cache))
            if not e.startswith(".") and e.startswith(prefix) and os.path.isdir(os.path.join(cache, e))]


def users(path):
    """The processes whose working folder or command line names something under `path`."""
    out = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmdline = f.read().replace(b"\0", b" ").decode(errors="replace")
            if path in cmdline or os.readlink(f"/proc/{pid}/cwd").startswith(path):
                with open(f"/proc/{pid}/stat") as f:
                    if f.read().rsplit(")", 1)[1].split()[0] != "Z":  # a zombie has ended
                        out.append(f"{pid}: {cmdline[:200]}")
        except OSError:
            pass
    return out


def main():
    mithril, root = sys.argv[1], sys.argv[2]
    x = os.path.join(root, "samples", "data", "mlp_input.npy")
    failures = []
    with tempfile.TemporaryDirectory() as tmp:
        cache = os.path.realpath(os.path.join(tmp, "cache"))
        env = dict(os.environ, MITHRIL_CACHE_DIR=cache)
        # A second model: the MLP under another name (its own cache entry, the same runtime).
        models = {"mlp": os.path.join(root, "samples", "mlp.yaml"), "mlp_b": os.path.join(tmp, "mlp_b.yaml")}
        with open(models["mlp"]) as f:
            text = f.read()
        assert "\nname: mlp\n" in text, "samples/mlp.yaml no longer has the line `name: mlp`"
        with open(models["mlp_b"], "w") as f:
            f.write(text.replace("\nname: mlp\n", "\nname: mlp_b\n", 1))

        def start(out, model="mlp", stderr=subprocess.PIPE, extra=()):
            return subprocess.Popen([mithril, "run", models[model], "--input", f"input={x}", "-o", os.path.join(tmp, out),
                                     *extra], stdout=subprocess.PIPE, stderr=stderr, text=True, env=env)

        def kill_while_compiling(out, model, prefix):
            """Starts a run, kills it once an entry named prefix* logs a compile, returns the entry."""
            err_path = os.path.join(tmp, out + ".err")
            with open(err_path, "w") as err:
                p = start(out, model, stderr=err)  # a file: a pipe would make us wait for whatever holds it open
            t0 = time.time()
            while time.time() - t0 < 300 and p.poll() is None:
                logs = [os.path.join(e, "build.log") for e in entries(cache, prefix)]
                if any(os.path.exists(l) and "Building CXX object" in open(l, errors="replace").read() for l in logs):
                    break
                time.sleep(0.05)
            if p.poll() is not None:
                print(open(err_path).read())
                failures.append(f"{out}: the run ended (exit {p.returncode}) before it could be killed while building")
                return None
            t0 = time.time()
            p.kill()
            p.wait()
            # The build (CMake, the build tool, the compilers) ends with mithril.
            while users(cache) and time.time() - t0 < 10:
                time.sleep(0.1)
            left = users(cache)
            if left:
                failures.append(f"{out}: processes of the killed build still run 10 s later:\n" + "\n".join(left))
            else:
                print(f"{out}: its processes ended within {time.time() - t0:.1f} s")
            found = entries(cache, prefix)
            if len(found) != 1:
                failures.append(f"{out}: expected one cache entry {prefix}* after the killed build, found {found}")
                return None
            if os.path.exists(os.path.join(found[0], "complete")):
                failures.append(f"{out}: the killed build left an entry marked complete")
            return found[0]

        def finish(procs):
            results = []
            for proc in procs:
                try:
                    out, err = proc.communicate(timeout=DEADLINE)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    out, err = proc.communicate()
                results.append((proc.returncode, err))
            return results

        # 1. Killed while the runtime builds (a fresh cache: the first run builds the runtime first).
        rt_entry = kill_while_compiling("killed_runtime", "mlp", "runtime-openblas-")
        if rt_entry is None:
            return fail(failures)
        if entries(cache, "mlp-"):
            failures.append("the model's entry exists although its runtime was never built")
        print(f"killed runtime build: entry {os.path.basename(rt_entry)} left unmarked")

        # 2. Two runs of the same model at once.
        t0 = time.time()
        results = finish([start("a"), start("b")])
        print(f"two concurrent runs: {time.time() - t0:.1f} s")
        for tag, (rc, err) in zip("ab", results):
            if rc != 0:
                failures.append(f"concurrent run {tag}: exit {rc}\n{err}")
        errs = [err for _, err in results]
        building = [e for e in errs if "mithril: building mlp " in e]
        waiting = [e for e in errs if "waiting for another build of mlp " in e]
        runtime = [e for e in errs if "mithril: building the runtime (openblas" in e]
        if len(building) != 1 or len(waiting) != 1 or building[0] is waiting[0]:
            failures.append("expected one run to build and the other to wait for it; stderr:\n" + "\n---\n".join(errs))
        if len(runtime) != 1 or runtime[0] is not (building[0] if building else None):
            failures.append("expected the building run to rebuild the killed runtime, once; stderr:\n" + "\n---\n".join(errs))
        if not failures:
            ya, yb = (np.load(os.path.join(tmp, d, "output.npy")) for d in "ab")
            if ya.shape != (4, 10) or not np.array_equal(ya, yb):
                failures.append(f"the two runs' outputs differ (shapes {ya.shape}, {yb.shape})")
        if not os.path.exists(os.path.join(rt_entry, "complete")):
            failures.append("the rebuilt runtime is not marked complete")
        model_entries = entries(cache, "mlp-")
        if len(model_entries) != 1 or not os.path.exists(os.path.join(model_entries[0], "complete")):
            failures.append(f"the finished model build is not one entry marked complete: {model_entries}")

        # 3. Killed while the other model's sources compile; a stand-in binary in its unmarked entry.
        entry = kill_while_compiling("killed_model", "mlp_b", "mlp_b-")
        if entry is not None:
            fake = os.path.join(entry, "build", "mlp_b")
            os.makedirs(os.path.dirname(fake), exist_ok=True)
            with open(fake, "w") as f:
                f.write("#!/bin/sh\necho 'the binary of an unfinished build ran' >&2\nexit 42\n")
            os.chmod(fake, 0o755)
            print(f"killed model build: entry {os.path.basename(entry)} left unmarked; stand-in binary planted")
            (rc, err), = finish([start("b2", "mlp_b")])
            if rc != 0 or "unfinished build ran" in err:
                failures.append(f"run after the killed model build: exit {rc}\n{err}")
            elif "mithril: building mlp_b " not in err or "building the runtime" in err:
                failures.append(f"run after the killed model build: expected mlp_b rebuilt and the runtime not:\n{err}")
            elif not np.array_equal(np.load(os.path.join(tmp, "b2", "output.npy")), np.load(os.path.join(tmp, "a", "output.npy"))):
                failures.append("mlp_b (the same layers, the same seed) gave another output than mlp")
            else:
                print("killed model build: redone, the runtime reused")

        # 4. Cached.
        p = subprocess.run([mithril, "run", models["mlp"], "--input", f"input={x}", "-o", os.path.join(tmp, "c")],
                           capture_output=True, text=True, env=env, timeout=DEADLINE)
        if p.returncode != 0 or "building" in p.stderr or "waiting" in p.stderr:
            failures.append(f"third run: exit {p.returncode}, expected the cached build without waiting:\n{p.stderr}")
        elif not np.array_equal(np.load(os.path.join(tmp, "c", "output.npy")), np.load(os.path.join(tmp, "a", "output.npy"))):
            failures.append("third run: another output")
        else:
            print("third run: cached")

        # 5. Two models needing the BLIS runtime at once: its own entry, built once.
        if not (glob.glob("/usr/include/*/blis-*/cblas.h") or glob.glob("/usr/include/blis/cblas.h")):
            print("BLIS is not installed: the --blas blis runtime entry is not tested")
        else:
            t0 = time.time()
            results = finish([start("blis_a", "mlp", extra=("--blas", "blis")),
                              start("blis_b", "mlp_b", extra=("--blas", "blis"))])
            print(f"two concurrent --blas blis runs of two models: {time.time() - t0:.1f} s")
            errs = [err for _, err in results]
            for tag, (rc, err) in zip(("mlp", "mlp_b"), results):
                if rc != 0:
                    failures.append(f"--blas blis run of {tag}: exit {rc}\n{err}")
            building = [e for e in errs if "mithril: building the runtime (blis" in e]
            waiting = [e for e in errs if "waiting for another build of the runtime (blis)" in e]
            if len(building) != 1 or len(waiting) != 1 or building[0] is waiting[0]:
                failures.append("expected one --blas blis run to build the BLIS runtime and the other to wait for it; "
                                "stderr:\n" + "\n---\n".join(errs))
            blis = entries(cache, "runtime-blis-")
            if len(blis) != 1 or not os.path.exists(os.path.join(blis[0], "complete")) or len(entries(cache, "runtime-")) != 2:
                failures.append(f"expected one complete runtime-blis-* entry beside the OpenBLAS one: {entries(cache, 'runtime-')}")
            if not failures:
                ref = np.load(os.path.join(tmp, "a", "output.npy"))
                for d in ("blis_a", "blis_b"):
                    y = np.load(os.path.join(tmp, d, "output.npy"))
                    if not np.allclose(y, ref, rtol=1e-5, atol=1e-5):
                        failures.append(f"{d}: the BLIS build's output differs from OpenBLAS's")
                print("--blas blis: its own runtime entry, built once for two models")

        leftovers = [e for e in os.listdir(cache) if e.startswith(".")]
        if leftovers:
            failures.append(f"temporary folders left in the cache: {leftovers}")
    return fail(failures)


def fail(failures):
    for f in failures:
        print("FAIL:", f)
    if not failures:
        print("build cache: concurrent runs share one build; an unfinished entry is rebuilt")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
