#!/usr/bin/env bash
# Sets up Mithril on a Debian (bookworm) machine and builds it into build/.
#
# Installs the Debian packages Mithril needs, but only those missing, so a
# second run is quiet and quick; then configures and builds with CMake/Ninja.
# Warnings are errors when CI=true (or MITHRIL_WERROR=ON).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="${MITHRIL_BUILD_DIR:-$ROOT/build}"

PACKAGES=(
  cmake ninja-build g++ pkg-config          # toolchain
  nlohmann-json3-dev libcli11-dev libyaml-cpp-dev libfmt-dev catch2   # compiler
  libopenblas-dev libopenblas0-openmp zlib1g-dev   # runtime and generated code (the OpenMP build shares one thread pool)
  libblis-dev libblis-openmp-dev   # BLIS, the second BLAS of generated projects (--blas blis), its OpenMP build too
  python3-numpy python3-yaml python3-jsonschema python3-torch   # references in tests (run with /usr/bin/python3)
  clang-14 libclang-rt-14-dev libomp-14-dev   # generated projects built with clang (e2e/clang_build), tools/fuzz.sh
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  echo "mithril setup: installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

WERROR=OFF
if [ "${CI:-}" = "true" ] || [ "${MITHRIL_WERROR:-}" = "ON" ]; then WERROR=ON; fi
cmake -S "$ROOT" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMITHRIL_WERROR="$WERROR" >/dev/null
cmake --build "$BUILD" -j "$(nproc)"
test -x "$BUILD/mithril"   # the build must have produced the compiler
