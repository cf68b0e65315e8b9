#!/usr/bin/env bash
# A machine without the CUDA toolkit builds with -DGALORE_CUDA=OFF. This build
# has CUDA, so nothing else would notice when host code starts calling a
# CUDA-side function that has no CPU stub (src/backend/device_plan_cpu.cpp,
# cpu_backend.cpp): configure that variant at -O0 (only the link matters) in
# <build>/cpu_only_check and link every tool. Incremental after the first run.
set -euo pipefail
BIN="${GALORE_BIN:?run through ctest}"
cd "${GALORE_ROOT:-.}"
DIR="$BIN/../cpu_only_check"
cmake -S . -B "$DIR" -DGALORE_CUDA=OFF -DCMAKE_BUILD_TYPE=None -DCMAKE_CXX_FLAGS="-O0 -g0" >"$DIR.log" 2>&1 ||
  { cat "$DIR.log"; echo "FAIL: configuring the CPU-only build"; exit 1; }
TOOLS=()
for f in src/tools/*.cpp; do t=$(basename "$f" .cpp); TOOLS+=("${t//_/-}"); done
cmake --build "$DIR" -j "$(nproc)" --target "${TOOLS[@]}" >>"$DIR.log" 2>&1 ||
  { grep -E "error|undefined reference" "$DIR.log" | head -n 20; echo "FAIL: the CPU-only build (-DGALORE_CUDA=OFF) does not build; log: $DIR.log"; exit 1; }
"$DIR/bin/galore-train" --config configs/tiny.json --print-config >/dev/null ||
  { echo "FAIL: the CPU-only galore-train does not run"; exit 1; }
echo "CPU-only build links: ${TOOLS[*]}"
