#!/usr/bin/env python3
"""The build cache of `mithril run` under concurrent use, and after a killed build.

All cases share one fresh cache folder, so the generated project is built once:

1. A `mithril run` is killed (SIGKILL) while it builds. The build's processes (CMake, make, the
   compilers) must end with it, and its cache entry must not look complete
   (no marker `complete`); a stand-in binary is then put where the build would leave the real one:
   an entry without the marker must never be used, so this binary must never run.
2. Two `mithril run` of the same model start at once: one removes the unfinished entry and builds,
   the other says it waits for that build; both succeed with the same output.
3. A third run uses the cached build without building or waiting.
"""
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

DEADLINE = 600  # seconds for one build on a loaded machine


def entries(cache):
    """The cache's entry folders (lock files and hidden temporary folders aside)."""
    if not os.path.isdir(cache):
        return []
    return [os.path.join(cache, e) for e in sorted(os.listdir(cache))
            if not e.startswith(".") and os.path.isdir(os.path.join(cache, e))]


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
    model = os.path.join(root, "samples", "mlp.yaml")
    x = os.path.join(root, "samples", "data", "mlp_input.npy")
    failures = []
    with tempfile.TemporaryDirectory() as tmp:
        cache = os.path.realpath(os.path.join(tmp, "cache"))
        env = dict(os.environ, MITHRIL_CACHE_DIR=cache)

        def start(out, stderr=subprocess.PIPE):
            return subprocess.Popen([mithril, "run", model, "--input", f"input={x}", "-o", os.path.join(tmp, out)],
                                    stdout=subprocess.PIPE, stderr=stderr, text=True, env=env)

        # 1. Killed while the compilers run: wait for make's first "Building CXX object" in build.log.
        err_path = os.path.join(tmp, "killed.err")
        with open(err_path, "w") as err:
            p = start("killed", stderr=err)  # a file: a pipe would make us wait for whatever holds it open
        t0 = time.time()
        while time.time() - t0 < 120 and p.poll() is None:
            logs = [os.path.join(e, "build.log") for e in entries(cache)]
            if any(os.path.exists(l) and "Building CXX object" in open(l, errors="replace").read() for l in logs):
                break
            time.sleep(0.05)
        if p.poll() is not None:
            print(open(err_path).read())
            return fail([f"the first run ended (exit {p.returncode}) before it could be killed while building"])
        t0 = time.time()
        p.kill()
        p.wait()
        # The build (CMake, make, the compilers) ends with mithril.
        while users(cache) and time.time() - t0 < 10:
            time.sleep(0.1)
        left = users(cache)
        if left:
            failures.append("processes of the killed build still run 10 s later:\n" + "\n".join(left))
        else:
            print(f"killed build: its processes ended within {time.time() - t0:.1f} s")
        found = entries(cache)
        if len(found) != 1:
            return fail([f"expected one cache entry after the killed build, found {found}"])
        entry = found[0]
        if os.path.exists(os.path.join(entry, "complete")):
            failures.append("the killed build left an entry marked complete")
        name = os.path.basename(entry).rsplit("-", 1)[0]
        fake = os.path.join(entry, "build", name)
        os.makedirs(os.path.dirname(fake), exist_ok=True)
        with open(fake, "w") as f:
            f.write("#!/bin/sh\necho 'the binary of an unfinished build ran' >&2\nexit 42\n")
        os.chmod(fake, 0o755)
        print(f"killed build: entry {os.path.basename(entry)} left unmarked; stand-in binary planted")

        # 2. Two runs at once.
        t0 = time.time()
        a, b = start("a"), start("b")
        results = []
        for proc in (a, b):
            try:
                out, err = proc.communicate(timeout=DEADLINE)
            except subprocess.TimeoutExpired:
                proc.kill()
                out, err = proc.communicate()
            results.append((proc.returncode, err))
        print(f"two concurrent runs: {time.time() - t0:.1f} s")
        for tag, (rc, err) in zip("ab", results):
            if rc != 0:
                failures.append(f"concurrent run {tag}: exit {rc}\n{err}")
            if "unfinished build ran" in err:
                failures.append(f"concurrent run {tag} used the killed build's entry")
        errs = [err for _, err in results]
        building = [e for e in errs if "mithril: building" in e]
        waiting = [e for e in errs if "waiting for another build" in e]
        if len(building) != 1 or len(waiting) != 1 or building[0] is waiting[0]:
            failures.append("expected one run to build and the other to wait for it; stderr:\n" + "\n---\n".join(errs))
        if not failures:
            ya, yb = (np.load(os.path.join(tmp, d, "output.npy")) for d in "ab")
            if ya.shape != (4, 10) or not np.array_equal(ya, yb):
                failures.append(f"the two runs' outputs differ (shapes {ya.shape}, {yb.shape})")
        if not os.path.exists(os.path.join(entry, "complete")):
            failures.append("the finished build is not marked complete")

        # 3. Cached.
        p = subprocess.run([mithril, "run", model, "--input", f"input={x}", "-o", os.path.join(tmp, "c")],
                           capture_output=True, text=True, env=env, timeout=DEADLINE)
        if p.returncode != 0 or "building" in p.stderr or "waiting" in p.stderr:
            failures.append(f"third run: exit {p.returncode}, expected the cached build without waiting:\n{p.stderr}")
        elif not np.array_equal(np.load(os.path.join(tmp, "c", "output.npy")), np.load(os.path.join(tmp, "a", "output.npy"))):
            failures.append("third run: another output")
        else:
            print("third run: cached")
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
