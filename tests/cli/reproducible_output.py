#!/usr/bin/env python3
"""The same model gives byte-identical generated files (and so one build-cache entry, keyed by
their hash) whatever the working directory and however the model's path is written.

A model in a folder `proj/` imports a block from `proj/blocks/`. It is compiled with
`mithril compile` from `proj/` (`main.yaml`), from its parent (`proj/main.yaml`), from an
unrelated folder by an absolute path, and by a path with `..` in it; forward, `--grad` and
`--train` (a train: section whose data file sits beside the model). Every tree must equal the
first byte for byte, and no generated file may contain the temporary folder's path (but for the
training data's paths, which the program reads: absolute, the same from any folder). The layer
comments name the imported file relative to the model's folder (`blocks/block.yaml:`).
"""
import os
import subprocess
import sys
import tempfile

MAIN = """\
name: repro
import: blocks/block.yaml
inputs:
  input: {shape: [N, 3, 8, 8]}
layers:
  - {op: Conv2d, name: stem, args: {out_channels: 4, kernel_size: 3, padding: 1}}
  - {op: Block, name: block1}
  - MaxPool2d: {kernel_size: 2}
  - Flatten
  - {op: Linear, name: head, args: {dimension: 3}}
train:
  data: data/train.npy
  labels: data/labels.npy
  epochs: 1
  batch_size: 2
"""

BLOCK = """\
name: Block
inputs:
  input: {shape: [N, 4, H, W]}
layers:
  - {op: Conv2d, name: conv, args: {out_channels: 4, kernel_size: 3, padding: 1}}
  - Relu
"""


def tree(path):
    out = {}
    for d, dirs, files in os.walk(path):
        dirs[:] = [x for x in dirs if x != "build"]
        for f in files:
            p = os.path.join(d, f)
            with open(p, "rb") as fh:
                out[os.path.relpath(p, path)] = fh.read()
    return out


def main():
    mithril = os.path.abspath(sys.argv[1])
    failures = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = os.path.realpath(tmp)
        proj = os.path.join(tmp, "proj")
        os.makedirs(os.path.join(proj, "blocks"))
        os.makedirs(os.path.join(proj, "data"))
        other = os.path.join(tmp, "elsewhere", "deeper")
        os.makedirs(other)
        with open(os.path.join(proj, "main.yaml"), "w") as f:
            f.write(MAIN)
        with open(os.path.join(proj, "blocks", "block.yaml"), "w") as f:
            f.write(BLOCK)
        # (The data files need not exist to compile; the paths reach the program's defaults.)
        ways = [
            ("from the model's folder", proj, "main.yaml"),
            ("from its parent", tmp, os.path.join("proj", "main.yaml")),
            ("by absolute path from elsewhere", other, os.path.join(proj, "main.yaml")),
            ("through ..", other, os.path.join("..", "..", "proj", "blocks", "..", "main.yaml")),
        ]
        for kind, extra in (("forward", []), ("--grad", ["--grad"]), ("--train", ["--train"])):
            first = None
            for k, (what, cwd, path) in enumerate(ways):
                out = os.path.join(tmp, "out", f"{kind.strip('-')}{k}")
                r = subprocess.run([mithril, "compile", path, "-o", out, "--max", "N=4", "--max", "H=8", "--max", "W=8", *extra],
                                   cwd=cwd, capture_output=True, text=True)
                if r.returncode != 0:
                    failures.append(f"{kind}, {what}: mithril compile failed ({r.returncode}): {r.stderr.strip()}")
                    continue
                t = tree(out)
                # Only the training data's paths may be absolute (the program reads them, from any folder).
                leaked = [f for f, b in t.items()
                          if any(tmp.encode() in line and b"cfg.data =" not in line and b"cfg.labels =" not in line
                                 for line in b.splitlines())]
                if leaked:
                    failures.append(f"{kind}, {what}: the temporary folder's path is in {leaked}")
                if first is None:
                    first = (what, t)
                    src = b"".join(b for f, b in t.items() if f.endswith(".cpp") and not f.startswith("runtime"))
                    if b"blocks/block.yaml:" not in src:
                        failures.append(f"{kind}: no layer comment names blocks/block.yaml relative to the model's folder")
                    if b"main.yaml:" not in src:
                        failures.append(f"{kind}: no layer comment names main.yaml")
                    continue
                if t.keys() != first[1].keys():
                    failures.append(f"{kind}, {what}: files differ from {first[0]}: {sorted(t.keys() ^ first[1].keys())}")
                diff = sorted(f for f in t.keys() & first[1].keys() if t[f] != first[1][f])
                if diff:
                    f0 = diff[0]
                    a, b = first[1][f0].decode(errors="replace").splitlines(), t[f0].decode(errors="replace").splitlines()
                    line = next((i for i in range(min(len(a), len(b))) if a[i] != b[i]), min(len(a), len(b)))
                    failures.append(f"{kind}, {what}: {diff} differ from {first[0]}; first at {f0}:{line + 1}: "
                                    f"{a[line] if line < len(a) else ''!r} vs {b[line] if line < len(b) else ''!r}")
    for f in failures:
        print("FAIL:", f)
    print(f"{'FAILED' if failures else 'OK'}: generated projects are byte-identical across working directories and paths")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
