#!/usr/bin/env bash
# The GPU check, for a fresh GPU machine with no network: build for the card
# present, run the gpu-labelled tests, run compute-sanitizer (memcheck and
# racecheck) over the kernel tests, run scripts/bench.sh, and print a
# summary table last (the benchmark table just above it). Meant to finish within 8 minutes.
# (The build for one architecture took 215 s wall at -j2 on the 2-core dev box,
# session 8; the lent machine has 16 cores.)
#
# Usage:  bash scripts/gpu_check.sh
#   env:  BUILD_DIR (default build-gpu)   JOBS (default nproc)
#         OUT       folder for the full logs (default $BUILD_DIR/gpu_check_logs;
#                   on the lent machine $OUT is the folder that comes back)
#         BUDGET_S  total seconds to stay under (default 470)
#         SKIP_SANITIZER=1, SKIP_BENCH=1
#
# Dependencies: the build needs the Debian -dev packages that scripts/setup.sh
# installs. The lent machines cannot fetch anything, so when a package is
# missing there, carry them: on this (networked) machine run
#     bash scripts/gpu_check.sh --fetch-deps      # .debs into .gpu_deps/ (gitignore it)
# and carry `.gpu_deps` with the device call (24 MB; delete .gpu_deps/root
# first if an earlier run left it); this script then unpacks them into
# .gpu_deps/root (never into /) and points CMake, pkg-config, the compiler and
# the linker there. Checked on the dev box (2026-11-28) with every file of
# those packages hidden by bind mounts in a private mount namespace: configure,
# build and run used only the carried copies.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

DEB_PACKAGES=(libcli11-dev nlohmann-json3-dev libspdlog-dev libspdlog1.10 libfmt-dev libfmt9
  libsentencepiece-dev libsentencepiece0 libprotobuf-lite32 libgtest-dev zlib1g-dev libeigen3-dev
  liblapacke-dev liblapacke libtmglib-dev libtmglib3 liblapack-dev liblapack3 libblas-dev libblas3
  libopenblas-dev libopenblas0 libopenblas0-pthread libopenblas-pthread-dev libgfortran5)

if [ "${1:-}" = "--fetch-deps" ]; then
  mkdir -p .gpu_deps
  (cd .gpu_deps && apt-get download "${DEB_PACKAGES[@]}")
  du -sh .gpu_deps
  echo "carry .gpu_deps with the device call (and keep it out of git: echo /.gpu_deps/ >> .git/info/exclude)"
  exit 0
fi

BUILD=${BUILD_DIR:-build-gpu}
LOGS=${OUT:-$ROOT/$BUILD/gpu_check_logs}
JOBS=${JOBS:-$(nproc)}
BUDGET=${BUDGET_S:-470}
mkdir -p "$LOGS"
T0=$(date +%s)
FAILED=0
NAMES=()
RESULTS=()
TIMES=()
NOTES=()

left() { echo $((BUDGET - ($(date +%s) - T0))); }
record() {  # name result seconds note
  NAMES+=("$1"); RESULTS+=("$2"); TIMES+=("$3"); NOTES+=("$4")
}
# step NAME LIMIT_S CMD... : runs CMD under a time limit, log in $LOGS/NAME.log,
# prints the log's tail, records PASS/FAIL/TIMEOUT.
step() {
  local name=$1 limit=$2
  shift 2
  local rem
  rem=$(left)
  if [ "$rem" -lt 15 ]; then
    record "$name" SKIP 0 "out of time budget"
    return 1
  fi
  [ "$limit" -gt "$rem" ] && limit=$rem
  echo "=== $name (limit ${limit}s): $*"
  local t
  t=$(date +%s)
  timeout --kill-after=10 "$limit" "$@" >"$LOGS/$name.log" 2>&1
  local rc=$?
  local dt=$(($(date +%s) - t))
  tail -n 25 "$LOGS/$name.log"
  local res=PASS
  if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then
    res=TIMEOUT
  elif [ $rc -ne 0 ]; then
    res="FAIL($rc)"
  fi
  record "$name" "$res" "$dt" "${STEP_NOTE:-}"
  STEP_NOTE=""
  [ "$res" = PASS ] || FAILED=1
  return $rc
}

summary() {
  echo
  if [ -f "$LOGS/bench.log" ]; then
    echo "================ benchmark (scripts/bench.sh) ================"
    if grep -q "^| run |" "$LOGS/bench.log"; then
      sed -n '/^| run |/,$p' "$LOGS/bench.log"
    elif [ -s "$LOGS/bench.jsonl" ]; then  # stopped by its limit: the runs that finished
      echo "(bench.sh did not finish; the runs it completed:)"
      python3 scripts/bench_summary.py "$LOGS/bench.jsonl"
    fi
    grep -E "^mb=" "$LOGS/bench.log" || true
  fi
  echo
  echo "================ gpu_check summary ($(($(date +%s) - T0)) s) ================"
  printf '%-14s %-10s %6s  %s\n' step result sec note
  for i in "${!NAMES[@]}"; do
    printf '%-14s %-10s %6s  %s\n' "${NAMES[$i]}" "${RESULTS[$i]}" "${TIMES[$i]}" "${NOTES[$i]}"
  done
  echo "logs: $LOGS"
}
trap summary EXIT

# ---- 0. what is here ----
{
  nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap --format=csv,noheader 2>&1
  command -v nvcc >/dev/null && nvcc --version | tail -n 2
  cmake --version | head -n 1
  command -v compute-sanitizer >/dev/null && compute-sanitizer --version | head -n 2
} | tee "$LOGS/env.log"
GPU=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -n 1)
DRIVER=$(nvidia-smi --query-gpu=driver_version --format=csv,noheader 2>/dev/null | head -n 1)
if [ -n "$GPU" ]; then
  record env OK 0 "$GPU, driver $DRIVER"
  # With a GPU present, a test that skips for want of a device is a failure
  # (a driver older than the toolkit makes cudaGetDeviceCount fail, and every
  # GPU test would otherwise skip green).
  export GALORE_REQUIRE_GPU=1
  # CUDA 13.x needs driver 580 or newer.
  if [ -n "$DRIVER" ] && [ "${DRIVER%%.*}" -lt 580 ] 2>/dev/null; then
    record driver FAIL 0 "driver $DRIVER < 580, too old for the CUDA 13 toolkit"
    FAILED=1
  fi
else
  record env NONE 0 "no GPU visible to nvidia-smi"
fi

# ---- 1. carried dependencies (see the header) ----
if ls .gpu_deps/*.deb >/dev/null 2>&1; then
  DEPS=$ROOT/.gpu_deps/root
  mkdir -p "$DEPS"
  for f in .gpu_deps/*.deb; do dpkg -x "$f" "$DEPS"; done
  MULTI=$(gcc -print-multiarch 2>/dev/null || echo x86_64-linux-gnu)
  export CMAKE_PREFIX_PATH="$DEPS/usr${CMAKE_PREFIX_PATH:+:$CMAKE_PREFIX_PATH}"
  export PKG_CONFIG_PATH="$DEPS/usr/lib/$MULTI/pkgconfig:$DEPS/usr/lib/$MULTI/openblas-pthread/pkgconfig:$DEPS/usr/share/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
  export PKG_CONFIG_SYSROOT_DIR="$DEPS"
  # lapack.pc / blas.pc are update-alternatives links that dpkg -x does not make: point them at OpenBLAS.
  ln -sf "../openblas-pthread/pkgconfig/lapack-openblas.pc" "$DEPS/usr/lib/$MULTI/pkgconfig/lapack.pc"
  ln -sf "../openblas-pthread/pkgconfig/blas-openblas.pc" "$DEPS/usr/lib/$MULTI/pkgconfig/blas.pc"
  # Debian points libblas.so.3/liblapack.so.3 at OpenBLAS through alternatives, which dpkg -x
  # does not set up: put OpenBLAS's directory first instead.
  export LD_LIBRARY_PATH="$DEPS/usr/lib/$MULTI/openblas-pthread:$DEPS/usr/lib/$MULTI:$DEPS/usr/lib/$MULTI/lapack:$DEPS/usr/lib/$MULTI/blas${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  export LIBRARY_PATH="$LD_LIBRARY_PATH"
  export CPATH="$DEPS/usr/include${CPATH:+:$CPATH}"
  record deps OK 0 "unpacked $(ls .gpu_deps/*.deb | wc -l) carried .debs"
fi

# ---- 2. configure + build for the card present ----
# The CUDA20 options cover CMake < 3.26, which does not know C++20 for nvcc.
STEP_NOTE="CMAKE_CUDA_ARCHITECTURES=native"
step configure 90 cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=native \
  -DCMAKE_CUDA20_STANDARD_COMPILE_OPTION=-std=c++20 -DCMAKE_CUDA20_EXTENSION_COMPILE_OPTION=-std=c++20 || exit 1
step build 330 cmake --build "$BUILD" -j "$JOBS" || {
  # Build what the GPU tests need even if some other target is broken.
  step build_tests 200 cmake --build "$BUILD" -j "$JOBS" --target test_kernels || exit 1
}

# ---- 3. the gpu-labelled tests ----
STEP_NOTE="ctest -L gpu"
step ctest_gpu 240 ctest --test-dir "$BUILD" -L gpu --output-on-failure --timeout 200 -j 4
grep -hE "tests passed|Skipped|SKIPPED|no CUDA device" "$LOGS/ctest_gpu.log" | head -n 5
# GALORE_REQUIRE_GPU already fails our own skips; this also catches any other.
if [ -n "$GPU" ] && grep -qE "\*\*\*Skipped|Not Run" "$LOGS/ctest_gpu.log"; then
  record ctest_skips FAIL 0 "$(grep -cE '\*\*\*Skipped|Not Run' "$LOGS/ctest_gpu.log") gpu tests skipped or not run on a GPU machine"
  FAILED=1
fi

# ---- 4. benchmarks (scripts/bench.sh; before the sanitizers, which are slow) ----
if [ -n "${SKIP_BENCH:-}" ]; then
  record bench SKIP 0 "SKIP_BENCH set"
elif [ -f scripts/bench.sh ]; then
  BENCH_LIMIT=$(($(left) - 10))
  [ "$BENCH_LIMIT" -gt 240 ] && BENCH_LIMIT=240
  if [ "$BENCH_LIMIT" -lt 20 ]; then
    record bench SKIP 0 "out of time budget"
  else
    export BUILD_DIR=$BUILD
    STEP_NOTE="scripts/bench.sh"
    step bench "$BENCH_LIMIT" env OUT="$LOGS" bash scripts/bench.sh
  fi
else
  record bench SKIP 0 "scripts/bench.sh not written yet"
fi
# ---- 5. compute-sanitizer on the kernel tests (with the time that is left) ----
# Issue #6's "galore-train --config configs/llama7b.json starts on a GPU within
# the memory plan": the real CLI and config, on random tokens (no C4 shards on
# a lent machine), 3 steps; its log has the plan and the GPU's free memory.
STEP_NOTE="llama7b.json, --synthetic-data, 3 steps"
step llama7b_start 150 "$BUILD/bin/galore-train" --config configs/llama7b.json --synthetic-data \
  --set training.max_steps=3 --set schedule.warmup_steps=1 --set logging.every=1 \
  --set logging.dir="$LOGS/llama7b_run" && grep -hE "memory plan|step +3/3" "$LOGS/llama7b_start.log" | head -n 3

KT=$BUILD/tests/test_kernels
if [ -n "${SKIP_SANITIZER:-}" ]; then
  record sanitizer SKIP 0 "SKIP_SANITIZER set"
elif ! command -v compute-sanitizer >/dev/null; then
  record sanitizer SKIP 0 "compute-sanitizer not found"
elif [ ! -x "$KT" ]; then
  record sanitizer SKIP 0 "$KT not built"
elif ! timeout 60 compute-sanitizer --tool memcheck --error-exitcode 99 "$KT" --gtest_filter='GpuTest.EmbeddingForward' \
  >"$LOGS/sanitizer_probe.log" 2>&1 && grep -qiE "device not supported|error 999|unknown error" "$LOGS/sanitizer_probe.log"; then
  # Some lent machines' runtimes (gVisor, per the device notes) refuse the
  # sanitizer's device access: say so in one line instead of six failures.
  record sanitizer UNAVAILABLE 0 "compute-sanitizer refused the device: $(grep -m1 -iE 'not supported|999|unknown error' \
    "$LOGS/sanitizer_probe.log" | cut -c1-80); memcheck/racecheck not run"
  FAILED=1
else
  # memcheck: every kernel test (small shapes); racecheck: the kernels that use shared memory.
  STEP_NOTE="out-of-bounds / misaligned accesses"
  step memcheck 150 compute-sanitizer --tool memcheck --error-exitcode 99 --print-limit 20 "$KT" \
    --gtest_filter='GpuTest.*'
  [ -x "$BUILD/tests/test_optim_kernels" ] && STEP_NOTE="optimizer kernels" &&
    step memcheck_optim 90 compute-sanitizer --tool memcheck --error-exitcode 99 --print-limit 20 \
      "$BUILD/tests/test_optim_kernels"
  [ -x "$BUILD/tests/test_model_cuda" ] && STEP_NOTE="whole model (backend glue, recompute)" &&
    step memcheck_model 60 compute-sanitizer --tool memcheck --error-exitcode 99 --print-limit 20 \
      "$BUILD/tests/test_model_cuda"
  STEP_NOTE="shared-memory hazards"
  step racecheck 150 compute-sanitizer --tool racecheck --racecheck-report hazard --error-exitcode 99 \
    --print-limit 20 "$KT" \
    --gtest_filter='GpuTest.Attention*:GpuTest.Classifier*:GpuTest.Rmsnorm*:GpuTest.SumSquares*:GpuTest.Adam8bit*'
  [ -x "$BUILD/tests/test_optim_kernels" ] && STEP_NOTE="optimizer reductions" &&
    step racecheck_optim 90 compute-sanitizer --tool racecheck --racecheck-report hazard --error-exitcode 99 \
      --print-limit 20 "$BUILD/tests/test_optim_kernels" \
      --gtest_filter='OptimKernelsGpu.ClipAndStats*:OptimKernelsGpuAdam.ClipAdam*'
  STEP_NOTE="barriers"
  step synccheck 60 compute-sanitizer --tool synccheck --error-exitcode 99 --print-limit 20 "$KT" \
    --gtest_filter='GpuTest.Attention*:GpuTest.Classifier*'
fi

exit "$FAILED"
