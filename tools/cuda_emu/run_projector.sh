#!/usr/bin/env bash
# Runs the real GPU projector refresh (cuda/projector.cu: randomized range
# finder, Householder QR, CholeskyQR2, Rayleigh-Ritz, gesvdj, moment
# reprojection) on the CPU emulator, against its GPU tests
# (tests/gpu/test_projector_cuda.cpp, which compare with the CPU reference
# src/optim/projector.cpp). projector.cu is rewritten by gen.py (its kernels run
# as emulated launches, emu_prelude.h); its cuBLAS and cuSOLVER calls go to
# emu_blas_solver.cpp (host BLAS / LAPACK behind the same C signatures, with
# cuBLAS's argument rules, device-extent and lwork checks).
#
# Builds into build-emu-proj/ (OUT=... to change) with -O1 and, by default,
# AddressSanitizer + UBSan (SAN= for none). Incremental like run_train.sh.
# Usage: tools/cuda_emu/run_projector.sh [gtest args, e.g. --gtest_filter=ProjectorCuda.Cold*]
# GT_TEST_VERBOSE=1 prints each comparison's angle / orthonormality / column agreement.
# Not part of CI; a developer tool for sessions without a GPU.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
OUT=${OUT:-$ROOT/build-emu-proj}
SAN=${SAN-address,undefined}
JOBS=${JOBS:-2}
mkdir -p "$OUT/obj" "$OUT/gen"
cd "$OUT"
source "$HERE/emu_build.bash"

(cd gen && python3 "$HERE/gen.py" "$ROOT/cuda/projector.cu" >/dev/null)
# Region checks (emu_blas_solver.h): register the workspace regions at the
# start of refresh() and in reproject_moments(), in the generated file only.
hook() {  # hook ANCHOR_REGEX TEXT: insert TEXT after the one line matching ANCHOR_REGEX
  [ "$(grep -c -- "$1" gen/projector_emu.cpp)" = 1 ] ||
    { echo "run_projector.sh: anchor '$1' not found once in projector.cu; update the hook" >&2; exit 1; }
  sed -i "/$1/a\\$2" gen/projector_emu.cpp
}
sed -i 's|^#include "emu_helpers.h".*$|&\n#include "emu_blas_solver.h"|' gen/projector_emu.cpp
hook '^  const bool left = geo.side != ProjSide::Right, right = geo.side != ProjSide::Left;$' \
  '  emu_projector_regions(I);'
hook '^  float\* tmp = take(size_t(rows \* cols) \* sizeof(float));' \
  '  emu_reproject_regions(a_old, a_new, na, b_old, b_new, nb, M, M2, r * r, tmp, rows * cols);'
emu_take_generated

FLAGS="$EMU_FLAGS $(pkg-config --cflags eigen3 lapacke)"
SRCS="$OUT/projector_emu.cpp $HERE/emu_blas_solver.cpp $ROOT/src/optim/projector.cpp
  $ROOT/tests/gpu/test_projector_cuda.cpp $HERE/emu_projector_extra_test.cpp"

emu_compile
# -llapack -lblas: the system's Fortran LAPACK / BLAS for the emulated
# cuBLAS / cuSOLVER (emu_blas_solver.cpp); lapacke for the CPU reference.
g++ $SANFLAGS -fopenmp "${OBJS[@]}" -o emu_projector_test -lgtest -lgtest_main -lspdlog -lfmt -lpthread \
  $(pkg-config --libs lapacke) -llapack -lblas -L/usr/local/cuda/lib64 -lcudart
# One BLAS thread: deterministic sums (RunsAreBitIdentical) and the 2-core budget.
export OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-1} OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
cd "$ROOT"
exec "$OUT/emu_projector_test" "$@"
