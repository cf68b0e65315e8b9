#!/usr/bin/env bash
# Runs the whole GPU training path on the CPU emulator of the CUDA execution
# model: Trainer -> LlamaModel on CudaBackend (src/backend/cuda_backend.cu and
# the cuda/*.cu kernels, rewritten by gen.py) -> BackendAdamW ->
# CudaOptimKernels (src/backend/cuda_optim_kernels.cu, cuda/galore_adam8bit.cu),
# with emu_cublaslt.cpp for cuBLASLt (the real cuda/matmul.cu) and emu_blas_solver.cpp (host BLAS/LAPACK) for
# the projector refresh's cuBLAS/cuSOLVER calls (the real cuda/projector.cu). The test driver is emu_train_test.cpp:
# a micro LLaMA trained a few steps on synthetic tokens on the emulated GPU and
# on the CPU backend, compared step by step (see its header).
#
# Builds into build-emu-train/ (OUT=... to change) with -O1 and, by default,
# AddressSanitizer + UBSan (SAN= for none; SAN=address,undefined is the
# default). Incremental: only sources newer than their object (headers
# included, through -MMD) are recompiled; a folder built with other flags
# (another SAN) is rebuilt from scratch.
# SAN=thread (ThreadSanitizer; give it its own OUT, e.g.
# OUT=$PWD/build-emu-train-tsan) reports races between the threads of one
# emulated block, as run.sh does (see README.md); OpenMP and OpenBLAS then run
# one thread unless OMP_NUM_THREADS / OPENBLAS_NUM_THREADS are set (neither
# library is instrumented), and the exit status is 66 when TSan reported anything.
# Usage: tools/cuda_emu/run_train.sh [gtest args, e.g. --gtest_filter=EmuTrain.GaloreAdamw8bit*]
#        EMU_TOOL=galore-parity tools/cuda_emu/run_train.sh --device cuda tests/fixtures/tiny_llama
#   EMU_TOOL builds that command-line tool (src/tools/galore_<name>.cpp) on the
#   same emulated library into $OUT/bin and runs it with the arguments instead of
#   the tests (from the repository root): the CLI's CUDA paths end to end, for
#   inputs small enough for the emulator (the parity fixtures, not tiny.json).
# Not part of CI (minutes per test); a developer tool for sessions without a GPU.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
OUT=${OUT:-$ROOT/build-emu-train}
SAN=${SAN-address,undefined}
mkdir -p "$OUT/obj" "$OUT/gen"
cd "$OUT"
source "$HERE/emu_build.bash"

# The kernels and the CUDA host code, rewritten for the emulator. matmul.cu's
# cuBLASLt calls go to emu_cublaslt.cpp, projector.cu's cuBLAS/cuSOLVER calls
# to emu_blas_solver.cpp.
CU=$(ls "$ROOT"/cuda/*.cu)
CU="$CU $ROOT/src/backend/cuda_backend.cu $ROOT/src/backend/cuda_optim_kernels.cu $ROOT/src/backend/device_plan.cu"
(cd gen && python3 "$HERE/gen.py" $CU >/dev/null)
emu_take_generated

FLAGS="$EMU_FLAGS $(pkg-config --cflags eigen3 lapacke openblas) -DGALORE_VERSION=\"emu\"
  -DGALORE_SOURCE_DIR=\"$ROOT\""
HOST=$(ls "$ROOT"/src/{core,config,model,backend,optim,data,train,checkpoint}/*.cpp "$ROOT"/cuda/*_cpu.cpp)
TOOL_SRC=""
if [ -n "${EMU_TOOL:-}" ]; then
  name=${EMU_TOOL#galore-}
  TOOL_SRC=$ROOT/src/tools/galore_${name//-/_}.cpp
  [ -f "$TOOL_SRC" ] || { echo "EMU_TOOL=$EMU_TOOL: no $TOOL_SRC" >&2; exit 2; }
fi
TESTS="$HERE/emu_train_test.cpp $ROOT/tests/gpu/test_optim_kernels.cpp $ROOT/tests/gpu/test_model_cuda.cpp"
SRCS="$(ls "$OUT"/*_emu.cpp) $HERE/emu_cublaslt.cpp $HERE/emu_blas_solver.cpp $HOST ${TOOL_SRC:-$TESTS}"

emu_compile
LIBS="-lspdlog -lfmt -lpthread -lz $(pkg-config --libs sentencepiece lapacke openblas) -llapack -lblas
  -L/usr/local/cuda/lib64 -lcudart"
case ",$SAN," in *,thread,*) export OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-1} ;; esac
if [ -n "$TOOL_SRC" ]; then
  mkdir -p bin
  g++ $SANFLAGS -fopenmp "${OBJS[@]}" -o "bin/$EMU_TOOL" $LIBS
  cd "$ROOT"
  exec "$OUT/bin/$EMU_TOOL" "$@"
fi
g++ $SANFLAGS -fopenmp "${OBJS[@]}" -o emu_train_test -lgtest -lgtest_main $LIBS
cd "$ROOT"  # the test reads configs/tiny.json
exec "$OUT/emu_train_test" "$@"
