#!/usr/bin/env python3
"""`mithril compile -o DIR` puts the project in place whole or not at all.

- A new DIR is written; compiling again replaces the project generated before (a file the new one
  lacks is gone) and keeps its build/ folder; a folder that is not a generated project and not
  empty gets the files added, as before.
- Failures: a write that fails half-way (a file size limit, RLIMIT_FSIZE, which binds root too;
  and, where a private mount namespace is allowed, a full tmpfs) and an output path under a
  regular file. Each gives one message naming the file and the system's reason, exit 1, and
  leaves DIR as it was, with nothing beside it.
"""
import os
import resource
import signal
import subprocess
import sys
import tempfile


def tree(path):
    """Every file under `path` with its bytes, for comparing a folder before and after."""
    out = {}
    for d, _, files in os.walk(path):
        for f in files:
            p = os.path.join(d, f)
            with open(p, "rb") as fh:
                out[os.path.relpath(p, path)] = fh.read()
    return out


def main():
    mithril, root = sys.argv[1], sys.argv[2]
    model = os.path.join(root, "samples", "mlp.yaml")
    failures = []

    def compile_to(out, limit=None):
        def small_files():
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
        return subprocess.run([mithril, "compile", model, "-o", out, "--max", "N=4"], capture_output=True, text=True,
                              timeout=120, preexec_fn=small_files if limit else None)

    def expect_error(what, p, *parts):
        lines = p.stderr.splitlines()
        if p.returncode != 1 or len(lines) != 1 or p.stdout or not all(part in lines[0] for part in parts):
            failures.append(f"{what}: expected exit 1 and one line with {parts}, got exit {p.returncode}:\n"
                            f"{p.stdout}{p.stderr}")
        else:
            print(f"ok   {what}: {lines[0]}")

    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "proj")
        p = compile_to(out)
        if p.returncode != 0 or not os.path.isfile(os.path.join(out, "CMakeLists.txt")):
            return finish([f"compile into a new folder: exit {p.returncode}\n{p.stderr}"])
        fresh = tree(out)
        print(f"ok   a new folder: {len(fresh)} files")

        # Again, over the project: replaced, but build/ is kept.
        with open(os.path.join(out, "stale.cpp"), "w") as f:
            f.write("// a file the new project does not have\n")
        os.makedirs(os.path.join(out, "build"))
        with open(os.path.join(out, "build", "CMakeCache.txt"), "w") as f:
            f.write("# the user's build\n")
        p = compile_to(out)
        got = tree(out)
        if p.returncode != 0:
            failures.append(f"compile over a generated project: exit {p.returncode}\n{p.stderr}")
        elif "stale.cpp" in got or got.pop("build/CMakeCache.txt", None) != b"# the user's build\n" or got != fresh:
            failures.append("compile over a generated project: expected the new project plus the old build/ folder, got "
                            f"{sorted(set(got) ^ set(fresh))} differing")
        else:
            print("ok   over a generated project: replaced, build/ kept")

        # A folder of the user's that is not empty: the files are added.
        mine = os.path.join(tmp, "mine")
        os.makedirs(mine)
        with open(os.path.join(mine, "notes.txt"), "w") as f:
            f.write("mine\n")
        p = compile_to(mine)
        got = tree(mine)
        if p.returncode != 0 or got.pop("notes.txt", None) != b"mine\n" or got != fresh:
            failures.append(f"compile into a folder that is not a project: exit {p.returncode}, "
                            f"files {sorted(set(got) ^ set(fresh))} differ\n{p.stderr}")
        else:
            print("ok   into another folder: files added, its own kept")

        # Failures half-way: 16 KiB per file is less than the largest runtime sources.
        before = tree(out)
        p = compile_to(out, limit=16384)
        expect_error("write fails over a project", p, out + "/", "cannot write the generated file: File too large")
        if tree(out) != before:
            failures.append("write fails over a project: the project generated before changed")
        new = os.path.join(tmp, "new")
        p = compile_to(new, limit=16384)
        expect_error("write fails into a new folder", p, new + "/", "cannot write the generated file: File too large")
        if os.path.exists(new):
            failures.append("write fails into a new folder: the folder exists")
        p = compile_to(mine, limit=16384)
        expect_error("write fails into another folder", p, mine + "/", "File too large")
        if tree(mine) != dict(fresh, **{"notes.txt": b"mine\n"}):
            failures.append("write fails into another folder: the folder changed")

        with open(os.path.join(tmp, "a_file"), "w") as f:
            f.write("not a folder\n")
        p = compile_to(os.path.join(tmp, "a_file", "proj"))
        expect_error("output under a regular file", p, os.path.join(tmp, "a_file", "proj") + ": error: cannot create the output folder:")

        # A full file system: a 256 KiB tmpfs in a private mount namespace (gone with it), if allowed.
        full = os.path.join(tmp, "full")
        os.makedirs(full)
        probe = subprocess.run(["unshare", "--mount", "true"], capture_output=True)
        if probe.returncode != 0:
            print("skip a full file system: no private mount namespace here (unshare --mount)")
        else:
            script = ('mount -t tmpfs -o size=256k none "$1" || exit 99; "$2" compile "$3" -o "$1/proj" --max N=4; '
                      'echo "exit $?" >&2; ls -A "$1" >&2')
            p = subprocess.run(["unshare", "--mount", "sh", "-c", script, "sh", full, mithril, model], capture_output=True,
                               text=True, timeout=120)
            lines = p.stderr.splitlines()
            if p.returncode == 99:
                print("skip a full file system: cannot mount a tmpfs here")
            elif (len(lines) != 2 or lines[1] != "exit 1" or "No space left on device" not in lines[0]
                  or full + "/proj/" not in lines[0]):
                failures.append(f"a full file system: expected one message, exit 1 and an empty file system, got:\n{p.stderr}")
            else:
                print(f"ok   a full file system: {lines[0]}")

        leftovers = [e for e in os.listdir(tmp) if e.startswith(".")]
        if leftovers:
            failures.append(f"temporary folders left beside the output: {leftovers}")
    return finish(failures)


def finish(failures):
    for f in failures:
        print("FAIL:", f)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
