#!/usr/bin/env bash
# The generated project is deterministic (two compiles give identical bytes) and
# builds from a copy in a fresh folder with plain CMake, warning-free, without
# the compiler: the copy holds its own runtime.
set -euo pipefail
mithril="$1"; root="$2"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$mithril" compile "$root/samples/mlp.yaml" -o "$tmp/a" --max N=8 > /dev/null
"$mithril" compile "$root/samples/mlp.yaml" -o "$tmp/b" --max N=8 > /dev/null
diff -r "$tmp/a" "$tmp/b"
cp -r "$tmp/a" "$tmp/elsewhere"
rm -rf "$tmp/a" "$tmp/b"
cmake -S "$tmp/elsewhere" -B "$tmp/elsewhere/build" -DCMAKE_CXX_FLAGS="-Werror" > /dev/null
cmake --build "$tmp/elsewhere/build" -j 2 > "$tmp/build.log" 2>&1 || { cat "$tmp/build.log"; exit 1; }
if grep -q "warning:" "$tmp/build.log"; then cat "$tmp/build.log"; exit 1; fi
"$tmp/elsewhere/build/mlp" --help | grep -q "inputs: input (float32)"
# fully static shapes (what `mithril run` generates) must be warning-free too; built portable
# (no -march=native), which takes the BLAS path where native builds use the packed GEMM kernel
"$mithril" compile "$root/samples/lenet.yaml" -o "$tmp/static" --shape N=2 > /dev/null 2>&1 || \
  "$mithril" compile "$root/samples/mlp.yaml" -o "$tmp/static" --shape N=2 > /dev/null
cmake -S "$tmp/static" -B "$tmp/static/build" -DCMAKE_CXX_FLAGS="-Werror" -DMITHRIL_PORTABLE=ON > /dev/null
cmake --build "$tmp/static/build" -j 2 > "$tmp/static.log" 2>&1 || { cat "$tmp/static.log"; exit 1; }
echo "standalone project: deterministic, builds warning-free from a copy"
