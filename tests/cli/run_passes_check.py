#!/usr/bin/env python3
"""Runs `mithril opt` on one golden pass test (tests/passes/*.mir) and checks its output against
the directives written in the file's leading comment lines, a small FileCheck:

    # RUN: --pass simplify,dce        the arguments after `mithril opt FILE` (--verify-each is added)
    # CHECK: Relu(%0:input)          a later output line (after the previous match) holds this text
    # CHECK-NEXT: return output=%2    the line right after the previous match holds it
    # CHECK-NOT: Identity(            no line between the previous match and the next one holds it
    # CHECK-ERROR: 7:5: error: unknown op   exit status 1, one line on stderr holding `FILE:7:5: error: ...`

Without CHECK-ERROR the command must exit 0. Usage: run_passes_check.py MITHRIL FILE.mir
"""
import os
import subprocess
import sys


def filecheck(lines, directives):
    """Failures of the CHECK, CHECK-NEXT and CHECK-NOT directives on the output lines."""
    pos = 0          # first line a CHECK may match
    last = None      # the line the previous CHECK or CHECK-NEXT matched
    pending_not = []
    for kind, pat in directives:
        if kind == "CHECK-NOT":
            pending_not.append(pat)
            continue
        if kind == "CHECK":
            hit = next((i for i in range(pos, len(lines)) if pat in lines[i]), None)
            if hit is None:
                return [f"CHECK: '{pat}' not found after line {pos}"]
        else:  # CHECK-NEXT
            if last is None:
                return [f"CHECK-NEXT: '{pat}' has no CHECK before it"]
            hit = last + 1
            if hit >= len(lines) or pat not in lines[hit]:
                got = lines[hit] if hit < len(lines) else "<end of output>"
                return [f"CHECK-NEXT: '{pat}' not on line {hit + 1}, which is: {got}"]
        for n in pending_not:
            for i in range(pos, hit):
                if n in lines[i]:
                    return [f"CHECK-NOT: '{n}' found on line {i + 1}: {lines[i]}"]
        pending_not = []
        pos, last = hit + 1, hit
    for n in pending_not:
        for i in range(pos, len(lines)):
            if n in lines[i]:
                return [f"CHECK-NOT: '{n}' found on line {i + 1}: {lines[i]}"]
    return []


def main():
    mithril, case = sys.argv[1], sys.argv[2]
    args, directives, errors = [], [], []
    with open(case, encoding="utf-8") as f:
        for line in f:
            s = line.strip()
            if not s.startswith("#"):
                continue
            body = s[1:].strip()
            for kind in ("RUN", "CHECK-NEXT", "CHECK-NOT", "CHECK-ERROR", "CHECK"):
                if body.startswith(kind + ":"):
                    value = body[len(kind) + 1:].strip()
                    if kind == "RUN":
                        args += value.split()
                    elif kind == "CHECK-ERROR":
                        errors.append(value)
                    else:
                        directives.append((kind, value))
                    break
    if not (directives or errors):
        sys.exit(f"{case}: no CHECK lines")
    rel = os.path.relpath(case)
    cmd = [mithril, "opt", rel, "--verify-each", *args]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    failures = []
    if errors:
        lines = [l for l in p.stderr.splitlines() if l.strip()]
        if p.returncode != 1:
            failures.append(f"expected exit status 1, got {p.returncode}")
        if len(lines) != 1:
            failures.append(f"expected one line on stderr, got {len(lines)}")
        for e in errors:
            if not any(l.startswith(f"{rel}:{e}") or (l.startswith(rel) and e in l) for l in lines):
                failures.append(f"no error '{rel}:{e}' on stderr")
    else:
        if p.returncode != 0:
            failures.append(f"exit status {p.returncode}")
        failures += filecheck(p.stdout.splitlines(), directives)
    if failures:
        print(" ".join(cmd))
        print("--- stdout\n" + p.stdout + "--- stderr\n" + p.stderr)
        for f in failures:
            print("FAIL: " + f)
        sys.exit(1)
    print(f"ok {case}")


if __name__ == "__main__":
    main()
