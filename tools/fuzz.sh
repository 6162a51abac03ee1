#!/usr/bin/env bash
# Runs the libFuzzer targets of tests/fuzz (docs/security.md, "Fuzzing").
#
#   tools/fuzz.sh [SECONDS] [TARGET...]      e.g. tools/fuzz.sh 300 npy safetensors
#
# Configures build-fuzz/ with clang++-14 and MITHRIL_FUZZ=ON (ASan + UBSan +
# libFuzzer), builds the targets (model, npy, safetensors, dataset; default all)
# and runs each for SECONDS (default 60) on a copy of its seed corpus
# (tests/fuzz/corpus/<target>, plus samples/*.yaml for model) in
# build-fuzz/fuzz-corpus/<target>/, which keeps what the runs add; the seeds in
# the repository are not changed. Each input may take 10 s and 2 GB at most.
# Findings (crash-*, timeout-*, oom-*, leak-* files: the input that failed) and
# each run's log go to $MITHRIL_FUZZ_FINDINGS/<target>/ (default
# build-fuzz/findings). Exits 1 when any target had a finding.
# Reproduce one with: build-fuzz/tests/fuzz/fuzz_<target> FILE
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="${MITHRIL_FUZZ_BUILD_DIR:-$ROOT/build-fuzz}"
FINDINGS="${MITHRIL_FUZZ_FINDINGS:-$BUILD/findings}"
ALL=(model npy safetensors dataset)

secs="${1:-60}"
if [ $# -gt 0 ]; then shift; fi
if ! [[ "$secs" =~ ^[0-9]+$ ]]; then
  echo "tools/fuzz.sh: SECONDS must be a whole number, got '$secs' (usage: tools/fuzz.sh [SECONDS] [TARGET...])" >&2
  exit 2
fi
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then targets=("${ALL[@]}"); fi
for t in "${targets[@]}"; do
  if [[ ! " ${ALL[*]} " =~ " $t " ]]; then
    echo "tools/fuzz.sh: unknown target '$t' (targets: ${ALL[*]})" >&2
    exit 2
  fi
done
if ! command -v clang++-14 > /dev/null; then
  echo "tools/fuzz.sh: needs clang++-14 and libclang-rt-14-dev (tools/setup.sh installs them)" >&2
  exit 2
fi

cmake -S "$ROOT" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_CXX_COMPILER=clang++-14 -DMITHRIL_FUZZ=ON > /dev/null
cmake --build "$BUILD" -j "${MITHRIL_FUZZ_JOBS:-2}" --target "${targets[@]/#/fuzz_}"

status=0
for t in "${targets[@]}"; do
  corpus="$BUILD/fuzz-corpus/$t"
  out="$FINDINGS/$t"
  mkdir -p "$corpus" "$out"
  seeds=("$ROOT/tests/fuzz/corpus/$t"/*)
  if [ "$t" = model ]; then seeds+=("$ROOT"/samples/*.yaml); fi
  for f in "${seeds[@]}"; do  # seeds not yet there (what earlier runs added stays)
    [ -e "$corpus/$(basename "$f")" ] || cp "$f" "$corpus/"
  done
  dict=()
  if [ -f "$ROOT/tests/fuzz/$t.dict" ]; then dict=(-dict="$ROOT/tests/fuzz/$t.dict"); fi
  echo "fuzz_$t: ${secs} s on $corpus; findings go to $out/"
  if "$BUILD/tests/fuzz/fuzz_$t" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
       -artifact_prefix="$out/" "${dict[@]}" "$corpus" > "$out/log.txt" 2>&1; then
    grep -E "stat::number_of_executed_units|stat::peak_rss_mb" "$out/log.txt" | tr '\n' ' ' | sed "s/^/fuzz_$t: /"
    echo
  else
    status=1
    echo "fuzz_$t: FINDING: $(grep -m1 -E 'ERROR:|runtime error:|deadly signal|Timeout|out-of-memory' "$out/log.txt" || echo 'see the log')"
    echo "fuzz_$t: input saved in $out/ (log: $out/log.txt); reproduce with: $BUILD/tests/fuzz/fuzz_$t FILE"
  fi
done
exit $status
