#!/usr/bin/env bash
# Runs the CUDA kernel tests (tests/gpu/test_kernels.cpp) on the CPU, with no
# GPU: each cuda/*.cu is rewritten by gen.py so that a kernel launch runs
# every block and thread of the grid as host threads (emu_prelude.h provides
# threadIdx/blockIdx, __syncthreads as a barrier, warp shuffles; the real
# matmul.cu runs on emu_cublaslt.cpp's cuBLASLt and cublasGemmEx). Built with AddressSanitizer + UBSan by default.
# It checks kernel logic, indexing and synchronization; it cannot check speed,
# cuBLASLt algorithm choice, alignment faults or real shared-memory limits:
# scripts/gpu_check.sh on a real GPU does that. Slow: minutes per test.
#
# SAN picks the sanitizers (default address,undefined; SAN= for none).
# SAN=thread is the CPU stand-in for compute-sanitizer's racecheck: TSan
# reports two threads of one block touching the same shared or global memory,
# one of them writing, with no __syncthreads/__syncwarp between them (races
# between blocks are invisible: blocks run one after another). Give it its
# own folder, e.g. SAN=thread OUT=$PWD/build-emu-tsan tools/cuda_emu/run.sh
# (a folder built with other flags is rebuilt from scratch). Under TSan the
# OpenMP CPU references run one thread (emu_prelude.h; libgomp is not
# instrumented) unless OMP_NUM_THREADS is set, and the exit status is 66 when
# TSan reported anything.
# Incremental: a source is recompiled when it or a header it includes changed.
# Usage: [SAN=...] [OUT=...] tools/cuda_emu/run.sh [gtest args, e.g. --gtest_filter=GpuTest.Rms*]
# Not part of CI (it takes too long); a developer tool for sessions without a GPU.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
OUT=${OUT:-$ROOT/build-emu}
SAN=${SAN-address,undefined}
mkdir -p "$OUT/obj" "$OUT/gen"
cd "$OUT"
source "$HERE/emu_build.bash"  # emu_take_generated, emu_compile, EMU_FLAGS
# The kernel tests do not need projector.cu (run_train.sh and run_projector.sh run it).
rm -f projector_emu.cpp
(cd gen && python3 "$HERE/gen.py" $(ls "$ROOT"/cuda/*.cu | grep -v -e '/projector.cu$') \
  "$ROOT/src/backend/cuda_backend.cu" "$ROOT/src/backend/device_plan.cu" >/dev/null)
emu_take_generated  # only files whose text changed get a new mtime
FLAGS=$EMU_FLAGS
SRCS="$(ls "$OUT"/*_emu.cpp) $HERE/emu_cublaslt.cpp $HERE/emu_blas_solver.cpp $(ls "$ROOT"/cuda/*_cpu.cpp) $ROOT/src/backend/cpu_backend.cpp
  $ROOT/tests/gpu/test_kernels.cpp"
emu_compile
g++ $SANFLAGS -fopenmp "${OBJS[@]}" -o emu_test -lgtest -lgtest_main -lspdlog -lfmt -lpthread \
  -llapack -lblas -L/usr/local/cuda/lib64 -lcudart
exec ./emu_test "$@"
