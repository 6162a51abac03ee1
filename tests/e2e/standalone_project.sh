#!/usr/bin/env bash
# The generated project is deterministic (two compiles give identical bytes) and
# builds from a copy in a fresh folder with plain CMake, warning-free, without
# the compiler: the copy holds its own runtime. With an installed runtime of the
# kind it needs (`mithril runtime build --prefix P`, found by find_package) it
# uses that one and compiles only its own sources; with one of another kind
# (portable vs -march=native) it falls back to its bundled copy.
set -euo pipefail
mithril="$1"; root="$2"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$mithril" compile "$root/samples/mlp.yaml" -o "$tmp/a" --max N=8 > /dev/null
"$mithril" compile "$root/samples/mlp.yaml" -o "$tmp/b" --max N=8 > /dev/null
diff -r "$tmp/a" "$tmp/b"
cp -r "$tmp/a" "$tmp/elsewhere"
rm -rf "$tmp/a" "$tmp/b"
cmake -S "$tmp/elsewhere" -B "$tmp/elsewhere/build" -DCMAKE_CXX_FLAGS="-Werror" \
  -DCMAKE_DISABLE_FIND_PACKAGE_mithril_runtime=ON > "$tmp/configure.log"
grep -q "Mithril runtime: bundled" "$tmp/configure.log" || { cat "$tmp/configure.log"; exit 1; }
cmake --build "$tmp/elsewhere/build" -j 2 > "$tmp/build.log" 2>&1 || { cat "$tmp/build.log"; exit 1; }
if grep -q "warning:" "$tmp/build.log"; then cat "$tmp/build.log"; exit 1; fi
"$tmp/elsewhere/build/mlp" --help | grep -q "inputs: input (float32)"
# fully static shapes (what `mithril run` generates) must be warning-free too; built portable
# (no -march=native), which takes the BLAS path where native builds use the packed GEMM kernel
"$mithril" compile "$root/samples/lenet.yaml" -o "$tmp/static" --shape N=2 > /dev/null 2>&1 || \
  "$mithril" compile "$root/samples/mlp.yaml" -o "$tmp/static" --shape N=2 > /dev/null
# The installed runtime below is built for this CPU: this portable build must not take it.
"$mithril" runtime build --prefix "$tmp/prefix" > "$tmp/prefix.txt" 2> "$tmp/runtime.log" || { cat "$tmp/runtime.log"; exit 1; }
cmake -S "$tmp/static" -B "$tmp/static/build" -DCMAKE_CXX_FLAGS="-Werror" -DMITHRIL_PORTABLE=ON \
  -DCMAKE_PREFIX_PATH="$tmp/prefix" > "$tmp/static.cfg"
grep -q "Mithril runtime: bundled" "$tmp/static.cfg" || { cat "$tmp/static.cfg"; exit 1; }
cmake --build "$tmp/static/build" -j 2 > "$tmp/static.log" 2>&1 || { cat "$tmp/static.log"; exit 1; }
# The installed runtime: found, used, and only the model's sources compiled.
[ "$(cat "$tmp/prefix.txt")" = "$tmp/prefix" ] || { echo "runtime build printed $(cat "$tmp/prefix.txt")"; exit 1; }
cmake -S "$tmp/elsewhere" -B "$tmp/installed" -DCMAKE_CXX_FLAGS="-Werror" -DCMAKE_PREFIX_PATH="$tmp/prefix" > "$tmp/installed.cfg"
grep -q "Mithril runtime: installed, $tmp/prefix/lib/cmake/mithril_runtime" "$tmp/installed.cfg" || { cat "$tmp/installed.cfg"; exit 1; }
cmake --build "$tmp/installed" -j 2 > "$tmp/installed.log" 2>&1 || { cat "$tmp/installed.log"; exit 1; }
if grep -q "warning:" "$tmp/installed.log"; then cat "$tmp/installed.log"; exit 1; fi
if grep -q "mithril_runtime_core.dir" "$tmp/installed.log"; then echo "the bundled runtime was built:"; cat "$tmp/installed.log"; exit 1; fi
"$tmp/installed/mlp" --help | grep -q "inputs: input (float32)"
# A second `runtime build` into the same prefix finds it built.
"$mithril" runtime build --prefix "$tmp/prefix" > "$tmp/prefix2.txt" 2> "$tmp/runtime2.log"
if [ -s "$tmp/runtime2.log" ]; then echo "the second runtime build built again:"; cat "$tmp/runtime2.log"; exit 1; fi
echo "standalone project: deterministic, builds warning-free from a copy, with its bundled runtime or an installed one"
