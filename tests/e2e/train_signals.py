#!/usr/bin/env python3
"""`mithril train`'s training program ends with mithril.

For each way of stopping mithril while the training program (its child) runs, the program must be
gone within a few seconds:
- SIGTERM and SIGINT sent to mithril (as `kill` does) are passed on to the program, once: it stops
  after its step, says "interrupted at epoch ..." and exits; mithril waits for it, then exits;
- SIGKILL: mithril cannot pass anything on, so the program gets SIGTERM from the kernel
  (PR_SET_PDEATHSIG) and stops the same way.

This test makes itself a child subreaper, so the program, orphaned by SIGKILL, becomes its child:
it can then be waited for (and leaves no zombie). The first case pays for the build.
"""
import ctypes
import os
import signal
import subprocess
import sys
import tempfile
import time

PR_SET_CHILD_SUBREAPER = 36
GONE_WITHIN = 10  # seconds; the program stops after its current step (milliseconds)


def children(pid):
    """The pids whose parent is `pid`."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        if int(stat[stat.rindex(")") + 2:].split()[1]) == pid:
            out.append(int(entry))
    return out


def program_of(pid, cache):
    """The process under mithril `pid` (its child, or further down) that runs a binary from the build cache."""
    todo = children(pid)
    while todo:
        c = todo.pop()
        try:
            if os.readlink(f"/proc/{c}/exe").startswith(cache):
                return c
        except OSError:
            pass
        todo += children(c)
    return None


def wait_gone(pid, seconds):
    """Waits for `pid` to end and reaps it when it is our child (mithril, or the program once we
    adopted it as the subreaper). Its wait status (None when unknown), or "running" after `seconds`."""
    t0 = time.time()
    while time.time() - t0 < seconds:
        try:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                return status
        except ChildProcessError:  # not (yet) ours: look it up
            try:
                with open(f"/proc/{pid}/stat") as f:
                    if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                        return None
            except FileNotFoundError:
                return None
        time.sleep(0.05)
    return "running"


def main():
    mithril, root = sys.argv[1], sys.argv[2]
    model = os.path.join(root, "samples", "digits_mlp.yaml")
    if ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        print("FAIL: prctl(PR_SET_CHILD_SUBREAPER) failed")
        return 1
    failures = []
    with tempfile.TemporaryDirectory() as tmp:
        cache = os.path.realpath(os.path.join(tmp, "cache"))
        env = dict(os.environ, MITHRIL_CACHE_DIR=cache)
        for i, sig in enumerate((signal.SIGTERM, signal.SIGKILL, signal.SIGINT)):
            what = sig.name
            out_path, err_path = os.path.join(tmp, f"{what}.out"), os.path.join(tmp, f"{what}.err")
            with open(out_path, "w") as out, open(err_path, "w") as err:
                m = subprocess.Popen([mithril, "train", model, "-o", os.path.join(tmp, f"run{i}"), "--epochs", "100000",
                                      "--no-progress"], stdout=out, stderr=err, env=env)
            # Wait for the program's first line, "training ...": its signal handlers are in place then.
            t0 = time.time()
            program = None
            while m.poll() is None and time.time() - t0 < 600:
                program = program_of(m.pid, cache)
                if program is not None and "training " in open(out_path).read():
                    break
                time.sleep(0.05)
            if program is None or m.poll() is not None:
                m.kill()
                m.wait()
                failures.append(f"{what}: the training program never started (mithril exit {m.returncode}):\n"
                                + open(err_path).read()[-2000:])
                break
            t1 = time.time()
            os.kill(m.pid, sig)
            m_status = wait_gone(m.pid, GONE_WITHIN)
            p_status = wait_gone(program, GONE_WITHIN)
            if p_status == "running":
                failures.append(f"{what}: the training program still runs {GONE_WITHIN} s after mithril got {what}")
                os.kill(program, signal.SIGKILL)
                wait_gone(program, GONE_WITHIN)
            if m_status == "running":
                failures.append(f"{what}: mithril still runs {GONE_WITHIN} s after {what}")
                m.kill()
                m.wait()
            text = open(err_path).read()
            # Exactly one signal reached the program: it stopped after its step (a second one ends it at once).
            if p_status != "running" and "interrupted at epoch" not in text:
                failures.append(f"{what}: the program did not stop after its step:\n{text[-2000:]}")
            if p_status != "running" and m_status != "running":
                print(f"{what}: mithril (exit {os.waitstatus_to_exitcode(m_status) if m_status is not None else '?'}) "
                      f"and the training program ended within {time.time() - t1:.1f} s "
                      f"({t1 - t0:.1f} s to start, the first with the build)")
    for f in failures:
        print("FAIL:", f)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
