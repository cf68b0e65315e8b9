# Shared setup for the GPU shell tests (label gpu). Exits 77 (ctest: skipped)
# with the reason when no CUDA device is usable or the build has no CUDA, or
# fails (exit 1) when GALORE_REQUIRE_GPU=1 is set (scripts/gpu_check.sh).
set -euo pipefail
BIN="${GALORE_BIN:?run through ctest}"
cd "${GALORE_ROOT:-.}"
fail() { echo "FAIL: $*"; exit 1; }
# GALORE_GPU_TEST_DEVICE=cpu (ctest gpu_logic.*): the script runs with
# training.device=cpu where it says cuda, to check its own logic on a machine
# without a GPU; the comparisons it makes are then trivially met.
DEVICE=${GALORE_GPU_TEST_DEVICE:-cuda}
skip() {
  if [ -n "${GALORE_REQUIRE_GPU:-}" ] && [ "$GALORE_REQUIRE_GPU" != 0 ]; then fail "GALORE_REQUIRE_GPU is set but $*"; fi
  echo "SKIP: $*"
  exit 77
}
if [ "$DEVICE" = cpu ]; then
  echo "GALORE_GPU_TEST_DEVICE=cpu: checking this script's logic with training.device=cpu"
else
  if ! command -v nvidia-smi >/dev/null || ! nvidia-smi -L 2>/dev/null | grep -q GPU; then
    skip "no CUDA device (nvidia-smi finds no GPU); run scripts/gpu_check.sh on a GPU machine"
  fi
  if ! ldd "$BIN/galore-train" 2>/dev/null | grep -q cudart && ! nm -C "$BIN/galore-train" 2>/dev/null | grep -q CudaBackend; then
    skip "this build has no CUDA backend"
  fi
fi
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
