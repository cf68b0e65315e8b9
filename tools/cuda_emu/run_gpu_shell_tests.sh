#!/usr/bin/env bash
# Runs the GPU shell tests (tests/gpu/gpu_parity.sh, gpu_resume_bitexact.sh)
# on the CPU emulator: galore-parity and galore-train are built on the
# emulated CUDA backend (run_train.sh with EMU_TOOL, into build-emu-train/bin),
# the other tools come from build/bin, and an `nvidia-smi` stand-in lets
# gpu_common.bash proceed. The resume test runs a micro model (hidden 64, 2
# layers, 16 tokens, N=3) so that it takes minutes, not hours; gpu_train_tiny.sh
# (120 steps of tiny.json against the CPU) is too slow here and is not run.
# What it checks: the scripts' own logic and the CLI's CUDA paths end to end
# (device selection, memory plan, checkpoints of GPU state, resume). Session 6
# found with it that gpu_resume_bitexact.sh compared runs with different cosine
# schedules (the first half ran with max_steps=N).
# Usage: tools/cuda_emu/run_gpu_shell_tests.sh   (needs build/bin: scripts/setup.sh)
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
OUT=${OUT:-$ROOT/build-emu-train}
[ -x "$ROOT/build/bin/galore-tokenize" ] || { echo "build/bin is missing: run scripts/setup.sh first" >&2; exit 2; }
for tool in galore-parity galore-train; do
  # Builds the tool (incremental) and runs it once with --help.
  OUT=$OUT EMU_TOOL=$tool "$HERE/run_train.sh" --help >/dev/null
done
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$WORK/bin" "$WORK/fake"
for f in "$ROOT"/build/bin/*; do ln -s "$f" "$WORK/bin/"; done
for tool in galore-parity galore-train; do ln -sf "$OUT/bin/$tool" "$WORK/bin/$tool"; done
printf '#!/bin/sh\necho "GPU 0: CUDA emulator (tools/cuda_emu)"\n' >"$WORK/fake/nvidia-smi"
chmod +x "$WORK/fake/nvidia-smi"
export PATH="$WORK/fake:$PATH" GALORE_BIN="$WORK/bin" GALORE_ROOT="$ROOT" GALORE_REQUIRE_GPU=1
cd "$ROOT"
echo "=== gpu_parity.sh"
bash tests/gpu/gpu_parity.sh
echo "=== gpu_resume_bitexact.sh (micro model)"
GPU_RESUME_N=3 GPU_RESUME_ARGS="--set model.hidden_size=64 --set model.intermediate_size=128 \
--set model.num_layers=2 --set model.num_kv_heads=2 --set training.seq_len=16 --set model.max_seq_len=16 \
--set optimizer.galore.rank=8" bash tests/gpu/gpu_resume_bitexact.sh
