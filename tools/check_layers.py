#!/usr/bin/env python3
"""The include edges between the compiler's layers, and a check that they point one way.

The compiler's folders form layers, lowest first:

    support -> ir -> ops -> frontend -> passes -> codegen -> driver -> api -> cli

A file may include headers of its own layer and of lower ones; an include of a
higher layer is an upward edge, and the check fails on every one (there are no
exceptions and no baseline: move the code to the layer it belongs to instead).

The runtime (runtime/, headers mithril/rt/...) stands apart: the compiler's plan
must not depend on the kernels of the machine the compiler runs on, so no file
under compiler/ includes a runtime header. What the plan needs to know of a
kernel is stated in the compiler (compiler/ops/cpu_kernels.h, proven equal to the
kernels by tests/runtime/test_cpu_kernel_facts.cpp). The one exception is the
runtime's readers of the file formats the user hands the compiler, so both read
them alike: RUNTIME_FILE_FORMATS below, each for one file, with its reason.

    tools/check_layers.py            check (exit 1 on an upward edge or a runtime include)
    tools/check_layers.py --list     print every edge between folders, with counts
"""
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COMPILER = os.path.join(ROOT, "compiler")
LAYERS = ["support", "ir", "ops", "frontend", "passes", "codegen", "driver", "api", "cli"]
RANK = {name: i for i, name in enumerate(LAYERS)}
INCLUDE = re.compile(r'^\s*#\s*include\s+[<"]([^">]+)[">]', re.M)
# Text that is not the file's own code: raw string literals (generated code that program.cpp
# writes, `#include "mithril/rt/runtime.h"` included) and block comments.
NOT_CODE = re.compile(r'R"([^()\\\s]{0,16})\((?:.|\n)*?\)\1"|/\*(?:.|\n)*?\*/')
RUNTIME = "mithril/rt/"
# (file under compiler/, runtime header): the runtime's readers of user files, nothing else.
RUNTIME_FILE_FORMATS = {
    ("cli/main.cpp", "mithril/rt/npy.h"): "`mithril run --input NAME=FILE.npy`: the shapes that specialize the code",
    ("codegen/program.cpp", "mithril/rt/safetensors.h"): "`--embed-weights`: the weights file read into the block",
}


def edges():
    """(file, included header, kind) for every include of another compiler folder or of the runtime.

    kind: "down" (same or lower layer), "up" (a higher layer), "runtime" (a runtime header)."""
    out = []
    for layer in LAYERS:
        folder = os.path.join(COMPILER, layer)
        for dirpath, _, names in os.walk(folder):
            for name in sorted(names):
                if not name.endswith((".h", ".cpp")):
                    continue
                path = os.path.join(dirpath, name)
                rel = os.path.relpath(path, COMPILER).replace(os.sep, "/")
                with open(path, encoding="utf-8") as f:
                    for inc in INCLUDE.findall(NOT_CODE.sub("", f.read())):
                        top = inc.split("/")[0]
                        if inc.startswith(RUNTIME):
                            out.append((rel, inc, "runtime"))
                        elif top in RANK and top != layer:
                            out.append((rel, inc, "up" if RANK[top] > RANK[layer] else "down"))
    return out


def problems(all_edges):
    """The edges the rule forbids, as messages."""
    out = []
    for src, inc, kind in all_edges:
        if kind == "up":
            out.append(f"upward include: {src} -> {inc} (layers, lowest first: {' -> '.join(LAYERS)})")
        elif kind == "runtime" and (src, inc) not in RUNTIME_FILE_FORMATS:
            out.append(f"runtime include: {src} -> {inc} (the compiler does not include runtime headers; "
                       "state what the plan needs of a kernel in compiler/ops/cpu_kernels.h)")
    return sorted(out)


def self_test():
    """The rule itself, on made-up edges (so a broken classifier cannot pass silently)."""
    assert problems([("ir/graph.cpp", "ops/registry.h", "up")])
    assert problems([("ops/conv.cpp", "mithril/rt/kernels/conv.h", "runtime")])
    assert problems([("codegen/plan.cpp", "mithril/rt/safetensors.h", "runtime")])
    assert not problems([("codegen/program.cpp", "mithril/rt/safetensors.h", "runtime")])
    assert not problems([("passes/fuse.cpp", "ir/surgery.h", "down")])
    code = 'x = R"CPP(\n#include "mithril/rt/runtime.h"\n)CPP";\n#include "ops/emit.h"\n'
    assert INCLUDE.findall(NOT_CODE.sub("", code)) == ["ops/emit.h"]


def main():
    self_test()
    all_edges = edges()
    if "--list" in sys.argv:
        counts = {}
        for src, inc, kind in all_edges:
            key = (src.split("/")[0], "runtime" if kind == "runtime" else inc.split("/")[0], kind)
            counts[key] = counts.get(key, 0) + 1
        for (a, b, kind), n in sorted(counts.items()):
            print(f"{a:9} -> {b:9} {n:3} include(s){'   UPWARD' if kind == 'up' else ''}")
        return 0
    bad = problems(all_edges)
    for p in bad:
        print(p)
    if not bad:
        print(f"{len(all_edges)} include edges between compiler folders, none upward; "
              f"runtime headers only in {', '.join(sorted(s for s, _ in RUNTIME_FILE_FORMATS))}")
    print(f"{0 if bad else 1} passed, {1 if bad else 0} failed")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
