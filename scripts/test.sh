#!/usr/bin/env bash
# Builds (installing packages if any are missing) and runs the whole test suite.
# GPU tests (label gpu) skip with a reason when no GPU is present.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# ctest runs nproc test processes at once, each with nproc OpenMP threads.
# Spinning OpenMP barriers then wait on threads that the other process has
# descheduled: a 20 ms test was seen taking 138 s. Passive threads sleep.
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-PASSIVE}"
ctest --test-dir build --output-on-failure -j "$(nproc)" "$@"
# ctest lists skipped tests without their reason: print it once.
if [ -x build/tests/test_kernels ]; then
  reason=$(build/tests/test_kernels --gtest_filter='GpuTest.Rope' 2>&1 | grep -m1 -i "no CUDA" || true)
  [ -n "$reason" ] && echo "gpu tests skipped: $reason"
fi
reason=$(GALORE_BIN=build/bin bash tests/gpu/gpu_parity.sh 2>&1 | grep -m1 "^SKIP" || true)
[ -n "$reason" ] && echo "gpu shell tests (tests/gpu/*.sh) skipped: $reason"
exit 0
