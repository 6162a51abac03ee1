#!/usr/bin/env python3
"""The include edges between the compiler's layers, and a check that they point one way.

The compiler's folders form layers, lowest first:

    support -> ir -> ops -> frontend -> passes -> codegen -> driver -> api -> cli

A file may include headers of its own layer and of lower ones; an include of a
higher layer is an upward edge, and so is an include of the runtime's kernel
headers (mithril/rt/kernels*), which the compiler must not depend on. The
upward edges that exist today are listed in tools/layers_baseline.txt (the
runtime/IR issue removes them); this script fails on any other, so no new one
is added, and on a listed one that is gone, so the list only shrinks.

    tools/check_layers.py            check (exit 1 on a new upward edge)
    tools/check_layers.py --list     print every edge between folders, with counts
    tools/check_layers.py --update   rewrite the baseline from the tree
"""
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COMPILER = os.path.join(ROOT, "compiler")
BASELINE = os.path.join(ROOT, "tools", "layers_baseline.txt")
LAYERS = ["support", "ir", "ops", "frontend", "passes", "codegen", "driver", "api", "cli"]
RANK = {name: i for i, name in enumerate(LAYERS)}
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)


def edges():
    """(file, included header, upward?) for every include of another compiler folder or of the runtime."""
    out = []
    for layer in LAYERS:
        folder = os.path.join(COMPILER, layer)
        for dirpath, _, names in os.walk(folder):
            for name in sorted(names):
                if not name.endswith((".h", ".cpp")):
                    continue
                path = os.path.join(dirpath, name)
                rel = os.path.relpath(path, COMPILER)
                with open(path, encoding="utf-8") as f:
                    for inc in INCLUDE.findall(f.read()):
                        top = inc.split("/")[0]
                        if inc.startswith("mithril/rt/kernels"):
                            out.append((rel, inc, True))
                        elif top in RANK and top != layer:
                            out.append((rel, inc, RANK[top] > RANK[layer]))
    return out


def main():
    all_edges = edges()
    upward = sorted(f"{src} -> {inc}" for src, inc, up in all_edges if up)
    if "--list" in sys.argv:
        counts = {}
        for src, inc, up in all_edges:
            key = (src.split("/")[0], inc.split("/")[0] if not inc.startswith("mithril/") else "runtime", up)
            counts[key] = counts.get(key, 0) + 1
        for (a, b, up), n in sorted(counts.items()):
            print(f"{a:9} -> {b:9} {n:3} include(s){'   UPWARD' if up else ''}")
        return 0
    if "--update" in sys.argv:
        with open(BASELINE, "w") as f:
            f.write("# Upward include edges that exist today (tools/check_layers.py); remove a line when its edge is gone.\n")
            f.write("".join(e + "\n" for e in upward))
        print(f"wrote {len(upward)} edges to {os.path.relpath(BASELINE, ROOT)}")
        return 0
    with open(BASELINE, encoding="utf-8") as f:
        known = {l.strip() for l in f if l.strip() and not l.startswith("#")}
    new = [e for e in upward if e not in known]
    gone = sorted(known - set(upward))
    for e in new:
        print(f"new upward include: {e} (layers, lowest first: {' -> '.join(LAYERS)}; no runtime kernel headers)")
    for e in gone:
        print(f"gone from the tree, remove it from tools/layers_baseline.txt: {e}")
    print(f"{len(upward)} upward edges, all known" if not new and not gone else "")
    print(f"{0 if new or gone else 1} passed, {1 if new or gone else 0} failed")
    return 1 if new or gone else 0


if __name__ == "__main__":
    sys.exit(main())
