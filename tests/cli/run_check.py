#!/usr/bin/env python3
"""Runs `mithril check` on one model file and compares what it prints with the
expectations written in the file itself (or, for JSON, in FILE.check):

    # ARGS: --shape input=2,3        extra command-line arguments
    # CHECK: 7:5: error: unknown op  stderr must hold `FILE:7:5: error: unknown op...`
    # CHECK-WARNING: 3:3: warning: layer '1' (Relu) is dead
    # CHECK-OUT: trainable parameters: 10     stdout must hold this text

An error expectation also requires exit status 1, exactly one line on stderr
and nothing on stdout; without one, exit status 0.
"""
import os
import subprocess
import sys


def main():
    mithril, model = sys.argv[1], sys.argv[2]
    spec = model + ".check" if os.path.exists(model + ".check") else model
    args, errors, warnings, outs = [], [], [], []
    with open(spec, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            for prefix, dest in (("# ARGS:", None), ("# CHECK:", errors), ("# CHECK-WARNING:", warnings), ("# CHECK-OUT:", outs)):
                if line.startswith(prefix):
                    value = line[len(prefix):].strip()
                    if dest is None:
                        args += value.split()
                    else:
                        dest.append(value)
    if not (errors or warnings or outs):
        sys.exit(f"{spec}: no CHECK lines")
    rel = os.path.relpath(model)
    p = subprocess.run([mithril, "check", rel, *args], capture_output=True, text=True, timeout=60)
    failures = []
    if errors:
        if p.returncode != 1:
            failures.append(f"expected exit status 1, got {p.returncode}")
        lines = [l for l in p.stderr.splitlines() if l.strip()]
        if len(lines) != 1:
            failures.append(f"expected exactly one line on stderr, got {len(lines)}")
        if p.stdout:
            failures.append("expected nothing on stdout")
    elif p.returncode != 0:
        failures.append(f"expected success, got exit status {p.returncode}")
    for e in errors + warnings:
        want = f"{rel}:{e}" if e[:1].isdigit() else e
        if want not in p.stderr:
            failures.append(f"stderr lacks: {want}")
    for o in outs:
        if o not in p.stdout:
            failures.append(f"stdout lacks: {o}")
    if "internal compiler error" in p.stderr:
        failures.append("internal compiler error")
    if failures:
        print(f"$ {mithril} check {rel} {' '.join(args)}\n--- stdout\n{p.stdout}--- stderr\n{p.stderr}---")
        for fl in failures:
            print("FAIL:", fl)
        sys.exit(1)
    print(f"ok: {rel}")


if __name__ == "__main__":
    main()
