#!/usr/bin/env bash
# Training throughput benchmark on random tokens (issue #6's table), on the
# GPU when one is present:
#   1. llama1b, galore_adamw8bit rank 512, per-layer updates, micro-batch 16x256
#   2. llama7b, galore_adamw8bit rank 1024, per-layer updates, 16x256, recompute
#   3. llama7b as 2 with a projector refresh in every step (update_proj_gap=1):
#      the refresh cost is its step time minus run 2's (a refresh step also forms G,
#      which steps between refreshes do not: that is counted in the refresh cost)
#   3b. run 2 with training.gemm_autotune=8 (cuBLASLt's candidates timed per shape)
#   4. galore-train --estimate-memory for llama7b on a 24 GB card at
#      micro-batches 1, 4 and 16
#   5. run 2 without the attention dS store (GALORE_ATTENTION_DS=0; with --op-report):
#      what computing dq from the stored dS (5 attention tile products instead of 7) buys
#      at head dim 128. (Session 8 measured the SIMT attention fallback here: tensor cores
#      +27% on llama1b; GALORE_ATTENTION_SIMT=1 still selects it.)
#   (Session 8 also ran llama1b forming every weight gradient,
#   optimizer.galore.factored_projection=false: factored projection +16%; dropped
#   in session 11 to leave run 5 the time.)
# Runs 1 and 2 also time one more step's GEMMs by shape (galore-bench
# --gemm-report 8: time in the step, and each shape alone with the algorithm in
# use and the best of cuBLASLt's first 8 candidates) and one more step's model
# ops by name and shape (--op-report: attention, norms, RoPE, SwiGLU, ... beside
# the matmuls; the optimizer's kernels are the rest of the step).
# Each run also times one extra step by phase (galore-bench --profile: forward,
# backward, optimizer (split into refresh, projection, clip + Adam, weight
# update and the rest), other; stream-ordered timestamps, no extra sync inside
# the step), printed as a second table: where the time goes.
# Every run is galore-bench (src/tools/galore_bench.cpp): median step time
# after a warm-up. "executed TFLOP/s" counts what the step runs (recompute,
# GaLore projections; src/train/step_flops.h): compare it with the GEMM
# ceiling (700-780 TFLOP/s on the H100, ../shared/MEASURED.md). One step = one micro-batch (total_batch_size = 16) so the
# numbers compare with the PyTorch reference in ../shared/MEASURED.md.
#
# Usage: bash scripts/bench.sh            (BUILD_DIR, default build; OUT for the JSONL)
#        STEPS=5 WARMUP=2 bash scripts/bench.sh
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD_DIR:-build}
BIN=$BUILD/bin
OUTDIR=${OUT:-$BUILD}
mkdir -p "$OUTDIR"
JSONL=$OUTDIR/bench.jsonl
: >"$JSONL"
STEPS=${STEPS:-8}
WARMUP=${WARMUP:-3}
[ -x "$BIN/galore-bench" ] || { echo "error: $BIN/galore-bench not built; run cmake --build $BUILD first" >&2; exit 1; }

bench() {  # label config sets...
  local label=$1 config=$2
  shift 2
  local sets=()
  for s in "$@"; do sets+=(--set "$s"); done
  echo "=== $label"
  "$BIN/galore-bench" --config "$config" "${sets[@]}" --steps "$STEPS" --warmup "$WARMUP" --label "$label" \
    --json "$JSONL" --profile ${GEMM_REPORT:+--gemm-report "$GEMM_REPORT"} ${OP_REPORT:+--op-report} 2>&1 | grep -v " step [0-9]*/" ||
    echo "FAILED: $label"
}

COMMON=(training.total_batch_size=16 training.micro_batch_size=16 training.seq_len=256 optimizer.per_layer_updates=true
  optimizer.name=galore_adamw8bit)
GEMM_REPORT=8 OP_REPORT=1 bench llama1b-r512 configs/llama1b.json "${COMMON[@]}" optimizer.galore.rank=512
GEMM_REPORT=8 OP_REPORT=1 bench llama7b-r1024-recompute configs/llama7b.json "${COMMON[@]}" optimizer.galore.rank=1024 \
  training.recompute=true
STEPS=${REFRESH_STEPS:-3} WARMUP=1 bench llama7b-refresh-every-step configs/llama7b.json "${COMMON[@]}" \
  optimizer.galore.rank=1024 training.recompute=true optimizer.galore.update_proj_gap=1

# 3b. run 2 with GEMM autotuning (training.gemm_autotune=8: after the first
#     warm-up step, cuBLASLt's first 8 candidates per shape are timed and the
#     fastest kept): what an autotuner buys over the heuristic's choices.
STEPS=4 WARMUP=2 bench llama7b-r1024-recompute-autotune configs/llama7b.json "${COMMON[@]}" \
  optimizer.galore.rank=1024 training.recompute=true training.gemm_autotune=8

# 5. llama7b again without the attention dS store (GALORE_ATTENTION_DS=0): dq
#    recomputes S, dP and the probabilities (the default path is run 2).
GALORE_ATTENTION_DS=0 OP_REPORT=1 STEPS=4 WARMUP=2 bench llama7b-r1024-recompute-no-ds-store configs/llama7b.json \
  "${COMMON[@]}" optimizer.galore.rank=1024 training.recompute=true

echo "=== --estimate-memory, llama7b on a 24 GB card (22.35 GiB)"
for mb in 1 4 16; do
  "$BIN/galore-train" --config configs/llama7b.json --estimate-memory --device-gib 22.35 \
    --set training.micro_batch_size=$mb | grep -E "^\| total|fit" | sed "s/^/mb=$mb: /"
done

python3 scripts/bench_summary.py "$JSONL"
