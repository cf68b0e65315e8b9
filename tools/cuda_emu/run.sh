#!/usr/bin/env bash
# Runs the CUDA kernel tests (tests/gpu/test_kernels.cpp) on the CPU, with no
# GPU: each cuda/*.cu is rewritten by gen.py so that a kernel launch runs
# every block and thread of the grid as host threads (emu_prelude.h provides
# threadIdx/blockIdx, __syncthreads as a barrier, warp shuffles; emu_gemm.cpp
# stands in for cuBLASLt). Built with AddressSanitizer + UBSan.
# It checks kernel logic, indexing and synchronization; it cannot check speed,
# cuBLASLt algorithm choice, alignment faults or real shared-memory limits:
# scripts/gpu_check.sh on a real GPU does that. Slow: minutes per test.
# Usage: tools/cuda_emu/run.sh [gtest args, e.g. --gtest_filter=GpuTest.Rms*]
# Not part of CI (it takes too long); a developer tool for sessions without a GPU.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
OUT=${OUT:-$ROOT/build-emu}
mkdir -p "$OUT/obj"
cd "$OUT"
# matmul.cu (cuBLASLt) and projector.cu (cuBLAS + cuSOLVER) cannot run here;
# the kernel tests need neither (run_train.sh and run_projector.sh run projector.cu).
rm -f projector_emu.cpp obj/projector_emu.o
python3 "$HERE/gen.py" $(ls "$ROOT"/cuda/*.cu | grep -v -e '/matmul.cu$' -e '/projector.cu$') \
  "$ROOT/src/backend/cuda_backend.cu" "$ROOT/src/backend/device_plan.cu" >/dev/null
FLAGS="-std=c++20 -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fopenmp -I$HERE -I$ROOT -I$ROOT/src
  -I/usr/local/cuda/include -DGALORE_WITH_CUDA=1 -DFMT_SHARED -DSPDLOG_COMPILED_LIB -DSPDLOG_FMT_EXTERNAL
  -DSPDLOG_SHARED_LIB -include $HERE/emu_runtime.h"
SRCS="$(ls "$OUT"/*_emu.cpp) $HERE/emu_gemm.cpp $(ls "$ROOT"/cuda/*_cpu.cpp) $ROOT/src/backend/cpu_backend.cpp
  $ROOT/tests/gpu/test_kernels.cpp"
pids=()
for s in $SRCS; do
  o=obj/$(basename "$s" .cpp).o
  if [ ! -f "$o" ] || [ "$s" -nt "$o" ]; then
    g++ $FLAGS -c "$s" -o "$o" &
    pids+=($!)
    if [ ${#pids[@]} -ge "$(nproc)" ]; then wait "${pids[0]}"; pids=("${pids[@]:1}"); fi
  fi
done
for p in "${pids[@]}"; do wait "$p"; done
g++ -fsanitize=address,undefined -fopenmp obj/*.o -o emu_test -lgtest -lgtest_main -lspdlog -lfmt -lpthread \
  -L/usr/local/cuda/lib64 -lcudart
exec ./emu_test "$@"
