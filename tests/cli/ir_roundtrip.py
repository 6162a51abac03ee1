#!/usr/bin/env python3
"""The IR's text form reads back exactly: for every sample (samples/*.yaml) and program kind, the
IR `mithril check` prints parses back (`mithril opt FILE.mir`, no passes) into a graph that prints
the same text, byte for byte.

Program kinds: the forward graph (`check --ir`), with gradients (`--grad`), the code generation
pipeline (`--codegen`: fusion, layout, pack-weights, as `mithril run` plans it) and, for samples
with a `train:` section, the training step (`--train`: loss, backward pass, optimizer, fusion).
A few hand-written graphs add names that need escaping. Usage: ir_roundtrip.py MITHRIL ROOT
"""
import glob
import os
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor

KINDS = {"forward": [], "grad": ["--grad"], "codegen": ["--codegen"], "train": ["--train"]}

HOSTILE = r'''name: "we\"ird \\ näme"
inputs:
  "in put\"x": {shape: [N, 4]}
outputs: ["out\\put #1"]
layers:
  - {op: Linear, name: "fc \"1\" # not a comment", args: {dimension: 3}, input: "in put\"x", output: "h\\x"}
  - {op: Relu, name: " lead", input: "h\\x", output: "out\\put #1"}
'''


def run(mithril, args):
    p = subprocess.run([mithril, *args], capture_output=True, text=True, timeout=120)
    return p.returncode, p.stdout, p.stderr


def main():
    mithril, root = sys.argv[1], sys.argv[2]
    work = tempfile.mkdtemp(prefix="ir_roundtrip_")
    models = sorted(glob.glob(os.path.join(root, "samples", "*.yaml")))
    hostile = os.path.join(work, "hostile.yaml")
    with open(hostile, "w", encoding="utf-8") as f:
        f.write(HOSTILE)
    models.append(hostile)
    jobs = []
    for m in models:
        with open(m, encoding="utf-8") as f:
            has_train = "\ntrain:" in "\n" + f.read()
        for kind, extra in KINDS.items():
            if kind == "train" and not has_train:
                continue
            jobs.append((m, kind, extra))

    def one(job):
        m, kind, extra = job
        name = f"{os.path.basename(m)} ({kind})"
        rc, ir, err = run(mithril, ["check", m, "--ir", "--verify-each", *extra])
        if rc != 0:
            return f"{name}: mithril check --ir {' '.join(extra)} failed ({rc}): {err}"
        mir = os.path.join(work, f"{os.path.basename(m)}.{kind}.mir")
        with open(mir, "w", encoding="utf-8") as f:
            f.write(ir)
        rc, back, err = run(mithril, ["opt", mir])
        if rc != 0:
            return f"{name}: mithril opt failed ({rc}): {err}"
        if back != ir:
            a, b = ir.splitlines(), back.splitlines()
            k = next((i for i in range(min(len(a), len(b))) if a[i] != b[i]), min(len(a), len(b)))
            return (f"{name}: printed again differs at line {k + 1}:\n  first:  {a[k] if k < len(a) else '<end>'}\n"
                    f"  second: {b[k] if k < len(b) else '<end>'}")
        print(f"ok   {name}: {len(ir.splitlines())} lines")
        return None

    with ThreadPoolExecutor(max_workers=2) as pool:
        failures = [f for f in pool.map(one, jobs) if f]
    kinds = sorted({k for _, k, _ in jobs})
    print(f"{len(jobs) - len(failures)}/{len(jobs)} round trips exact ({len(models)} models; kinds: {', '.join(kinds)})")
    for f in failures:
        print("FAIL " + f)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
