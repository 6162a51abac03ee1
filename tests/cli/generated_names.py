#!/usr/bin/env python3
"""Generated C++ names things (issue 21, part 4), checked on samples/lenet.yaml.

- Intermediates are named after the layer that makes them: `conv1_out`, `fc1_out` are declared
  and passed to kernels, and no arena buffer is called `v2`, `v8` or `t7`.
- Kernel geometry goes by name: conv2d gets an rt::k::Conv2dGeom `geom` with designated
  initializers (`.c_in = 1`, `.kernel_h = 5`, `.pad_h = 2`), the pooling fused into it an
  rt::k::Pool2dGeom; no call passes conv2d's sixteen sizes positionally.
- With --grad, gradients read `d_<name>` (`d_conv1_weight`), and the program still builds
  names for every value (no `_grad` suffix left over).
- Names stay bounded: no identifier in the file is longer than 64 characters.
"""
import os
import re
import subprocess
import sys
import tempfile


def compile_model(mithril, model, out, *extra):
    r = subprocess.run([mithril, "compile", model, "-o", out, "--max", "N=8", *extra], capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"mithril compile {' '.join(extra)} failed ({r.returncode}):\n{r.stderr}")
    with open(os.path.join(out, "lenet.cpp")) as f:
        return f.read()


def main():
    mithril, root = sys.argv[1], sys.argv[2]
    model = os.path.join(root, "samples", "lenet.yaml")
    failures = []

    def check(cond, what):
        if not cond:
            failures.append(what)

    with tempfile.TemporaryDirectory() as tmp:
        src = compile_model(mithril, model, os.path.join(tmp, "fwd"))
        buffers = dict(re.findall(r"^\s*\w+\* const (\w+) = reinterpret_cast<\w+\*>\(arena \+ \d+\);  // (.*)$", src, re.M))
        check(buffers, "no arena buffers declared (the pattern of the declarations changed?)")
        for name in ("conv1_out", "conv2_out", "fc1_out", "fc2_out", "output"):
            check(name in buffers, f"no arena buffer named {name}; buffers: {sorted(buffers)}")
        anonymous = [b for b in buffers if re.fullmatch(r"[vt]\d+(_\d+)?", b)]
        check(not anonymous, f"buffers named by number: {anonymous}")
        # The names are used, not only declared: conv2 reads conv1's output, fc2 fc1's.
        check(re.search(r"rt::k::conv2d\(\w+, conv1_out, conv2_weight, conv2_bias, geom,", src),
              "conv2 does not read conv1_out through a geometry struct")
        check(re.search(r"gemm_packed\(fc2_out, fc1_out,", src) or re.search(r"\bfc1_out\b.*\bfc2_out\b|\bfc2_out\b.*\bfc1_out\b", src),
              "fc2 does not read fc1_out into fc2_out")
        # Geometry by name.
        geoms = re.findall(r"const rt::k::Conv2dGeom geom\{(.*?)\};", src, re.S)
        check(len(geoms) == 2, f"expected 2 Conv2dGeom declarations (conv1, conv2), found {len(geoms)}")
        if geoms:
            fields = dict(re.findall(r"\.(\w+) = ([^,]+)", geoms[0]))
            want = {"c_in": "1", "h": "28", "w": "28", "c_out": "6", "kernel_h": "5", "kernel_w": "5", "pad_h": "2",
                    "pad_w": "2", "stride_h": "1", "groups": "1", "out_h": "28", "out_w": "28"}
            for k, v in want.items():
                check(fields.get(k, "").strip() == v, f"conv1's geometry: .{k} = {fields.get(k)!r}, expected {v}")
        check(re.search(r"const rt::k::Pool2dGeom pool_geom\{.*?\.kernel_h = 2, \.kernel_w = 2", src, re.S),
              "the fused max pooling has no Pool2dGeom")
        check("max_pool2d_plane(" in src and re.search(r"max_pool2d_plane\([^;]*pool_geom\);", src),
              "max_pool2d_plane is not called with pool_geom")
        positional = re.findall(r"rt::k::conv2d\([^;]*?(?:\d+, ){10}", src)
        check(not positional, f"conv2d still called with positional sizes: {positional[:1]}")

        # Without fusion (passes off), the unnamed layers' outputs are named after their op.
        plain = compile_model(mithril, model, os.path.join(tmp, "plain"), "--no-pass", "all")
        plain_buffers = re.findall(r"^\s*\w+\* const (\w+) = reinterpret_cast<\w+\*>\(arena", plain, re.M)
        check("conv1_out" in plain_buffers, f"--no-pass all: no conv1_out in {plain_buffers}")
        check(any(re.fullmatch(r"relu_\d+_out", b) for b in plain_buffers), f"--no-pass all: no relu_<i>_out in {plain_buffers}")
        check(any(re.fullmatch(r"max_pool2d_\d+_out", b) for b in plain_buffers),
              f"--no-pass all: no max_pool2d_<i>_out in {plain_buffers}")
        check(re.search(r"rt::k::max_pool2d\(\w+, static_cast<int64_t\*>\(nullptr\), \w+, geom\);", plain),
              "--no-pass all: max_pool2d is not called with a Pool2dGeom")

        grad = compile_model(mithril, model, os.path.join(tmp, "grad"), "--grad")
        for name in ("d_conv1_weight", "d_conv1_bias", "d_fc3_weight", "d_output"):
            check(re.search(rf"\b{name}\b", grad), f"--grad: no {name}")
        leftover = sorted(set(re.findall(r"\b\w+_grad\b", grad)) - {"kGradients"})
        leftover = [w for w in leftover if not w.startswith(("conv2d_grad", "max_pool2d_grad", "avg_pool2d_grad", "conv_grad"))]
        check(not leftover, f"--grad: identifiers still named *_grad: {leftover[:8]}")
        check("rt::k::conv2d_grad_weight(" in grad and re.search(r"conv2d_grad_weight\([^;]*geom,", grad),
              "--grad: conv2d_grad_weight is not called with a Conv2dGeom")

        for text, what in ((src, "forward"), (plain, "--no-pass all"), (grad, "--grad")):
            long = [w for w in set(re.findall(r"\b[A-Za-z_]\w*\b", text)) if len(w) > 64]
            check(not long, f"{what}: identifiers longer than 64 characters: {long[:3]}")

    for f in failures:
        print("FAIL:", f)
    print(f"{'FAILED' if failures else 'OK'}: generated names and geometry structs")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
