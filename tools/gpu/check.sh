#!/usr/bin/env bash
# tools/gpu/check.sh - the CUDA target's checks on a lent GPU, in one call of the device tool.
#
# The GPU machine has nvcc, CMake and Python with NumPy but cannot build Mithril itself, so the work
# is split: here (no GPU needed), `tools/gpu/check.sh --prepare` builds every CUDA program the
# target supports (tests/e2e/cuda_target.py with MITHRIL_GPU_KIT) and the CPU target's outputs for
# the same random inputs and weights into gpu-kit/ (git-ignored; under 64 MiB, the device tool's
# carry limit). There, `tools/gpu/check.sh` runs each program (all compiled with --grad), compares
# its outputs and gradients with the CPU's (rtol 1e-4, atol 1e-5, the gradients' atol scaled by
# their largest value), times it (--bench 50), checks a bad token id's error, trains digits_mlp and a
# tiny GPT with the training programs and compares their losses (1e-3 relative) and weights (1e-2 of
# each tensor's norm) with the CPU's runs, and writes the table to $OUT/cuda-check.md (commit it as
# tools/gpu/results/cuda-check-DATE.md). About a minute of device time; the script stops itself at
# 7 minutes.
#
#   tools/gpu/check.sh --prepare                       # here
#   device run: carry ["gpu-kit"], command "tools/gpu/check.sh", timeout_s 480
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
if [[ "${1:-}" == "--prepare" ]]; then
  [[ -x build/mithril ]] || tools/setup.sh
  MITHRIL_GPU_KIT="$PWD/gpu-kit" /usr/bin/python3 tests/e2e/cuda_target.py build/mithril "$PWD"
  du -sh gpu-kit
  exit 0
fi
[[ -d gpu-kit ]] || { echo "tools/gpu/check.sh: no gpu-kit/ (run tools/gpu/check.sh --prepare here, carry gpu-kit)" >&2; exit 2; }
out="${OUT:-$PWD/gpu-out}"
mkdir -p "$out"
nvidia-smi -L | tee "$out/gpu.txt"
export LD_LIBRARY_PATH="$PWD/gpu-kit/lib:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}"
py=$(command -v python3)
timeout 420 "$py" tests/e2e/cuda_target.py --check-kit "$PWD/gpu-kit" "$out/cuda-check.md"
