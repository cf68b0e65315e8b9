# Shared setup for the GPU shell tests (label gpu). Exits 77 (ctest: skipped)
# with the reason when no CUDA device is usable or the build has no CUDA.
set -euo pipefail
BIN="${GALORE_BIN:?run through ctest}"
cd "${GALORE_ROOT:-.}"
fail() { echo "FAIL: $*"; exit 1; }
if ! command -v nvidia-smi >/dev/null || ! nvidia-smi -L 2>/dev/null | grep -q GPU; then
  echo "SKIP: no CUDA device (nvidia-smi finds no GPU); run scripts/gpu_check.sh on a GPU machine"
  exit 77
fi
if ! ldd "$BIN/galore-train" 2>/dev/null | grep -q cudart && ! nm -C "$BIN/galore-train" 2>/dev/null | grep -q CudaBackend; then
  echo "SKIP: this build has no CUDA backend"
  exit 77
fi
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
