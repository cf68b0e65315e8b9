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
#   5. run 1 with the SIMT attention fallback (GALORE_ATTENTION_SIMT=1)
#   6. run 1 forming every weight gradient (optimizer.galore.factored_projection=false):
#      what projecting from the factors (dY, X) buys
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

# 5. llama1b again with the SIMT attention kernels (GALORE_ATTENTION_SIMT=1):
#    what the tensor-core attention buys (the default path is run 1).
GALORE_ATTENTION_SIMT=1 STEPS=4 WARMUP=2 bench llama1b-r512-simt-attention configs/llama1b.json "${COMMON[@]}" \
  optimizer.galore.rank=512

# 6. llama1b forming G (the path of refresh steps) at every step.
STEPS=4 WARMUP=2 bench llama1b-r512-formed-G configs/llama1b.json "${COMMON[@]}" optimizer.galore.rank=512 \
  optimizer.galore.factored_projection=false

echo "=== --estimate-memory, llama7b on a 24 GB card (22.35 GiB)"
for mb in 1 4 16; do
  "$BIN/galore-train" --config configs/llama7b.json --estimate-memory --device-gib 22.35 \
    --set training.micro_batch_size=$mb | grep -E "^\| total|fit" | sed "s/^/mb=$mb: /"
done

python3 - "$JSONL" <<'EOF'
import json, sys
runs = {}
for line in open(sys.argv[1]):
    r = json.loads(line)
    runs[r["label"]] = r
print()
print("| run | device | tokens/s | model TFLOP/s | MFU | executed TFLOP/s | plan GiB | device used GiB | target |")
print("|---|---|---|---|---|---|---|---|---|")
targets = {"llama1b-r512": ">= 40,000 tok/s", "llama7b-r1024-recompute": ">= 12,000 tok/s, <= 20 GiB",
           "llama7b-r1024-recompute-autotune": ">= 12,000 tok/s, <= 20 GiB"}
for label, r in runs.items():
    mfu = "n/a" if r["mfu"] is None else f'{100 * r["mfu"]:.1f}%'
    print(f'| {label} | {r["device"]} | {r["tokens_per_s"]:,.0f} | {r["model_tflops"]:.1f} | {mfu} | '
          f'{r["executed_tflops"]:.1f} | {r["plan_gib"]:.2f} | {r["device_used_gib"]:.2f} | {targets.get(label, "")} |')
print("\nWhere one step's time goes (galore-bench --profile; ms). optimizer = refresh + project + adam + update + rest:")
print("| run | forward | backward | optimizer | refresh | project | adam | update | rest | other | step |")
print("|---|---|---|---|---|---|---|---|---|---|---|")
for label, r in runs.items():
    p = r.get("profile_ms")
    if p:
        parts = [p.get(k, 0.0) for k in ("opt_refresh", "opt_project", "opt_adam", "opt_update", "optimizer")]
        print(f'| {label} | {p["forward"]:.1f} | {p["backward"]:.1f} | {sum(parts):.1f} | '
              + " | ".join(f"{x:.1f}" for x in parts) + f' | {p["other"]:.1f} | {1000 * r["step_s_median"]:.1f} |')
print("\nGEMM time of one step (galore-bench --gemm-report; the rest is other kernels and gaps):")
for label, r in runs.items():
    g = r.get("gemms")
    if g:
        best = sum(s["best_ms"] * s["calls"] for s in g["shapes"] if s["best_ms"] > 0)
        alone = sum(s["alone_ms"] * s["calls"] for s in g["shapes"] if s["alone_ms"] > 0)
        print(f'- {label}: GEMMs {g["gemm_ms"]:.1f} ms of a {g["step_ms"]:.1f} ms step; alone {alone:.1f} ms with '
              f'the algorithms in use, {best:.1f} ms with the best of the candidates')
print("\nModel ops of one step by kind (galore-bench --op-report; ms; the optimizer's kernels are the rest):")
for label, r in runs.items():
    o = r.get("ops")
    if o:
        kinds = {}
        for x in o["ops"]:
            kinds[x["op"]] = kinds.get(x["op"], 0.0) + x["ms"]
        mm = sum(v for k, v in kinds.items() if k.startswith("matmul"))
        top = sorted(((v, k) for k, v in kinds.items() if not k.startswith("matmul")), reverse=True)[:8]
        print(f'- {label}: {o["ops_ms"]:.1f} of {o["step_ms"]:.1f} ms; matmuls {mm:.1f}; '
              + ", ".join(f"{k} {v:.1f}" for v, k in top))
a, b = runs.get("llama7b-r1024-recompute"), runs.get("llama7b-refresh-every-step")
if a and b:
    refresh = b["step_s_median"] - a["step_s_median"]
    tokens = a["tokens_per_s"] * a["step_s_median"]
    eff = tokens / (a["step_s_median"] + refresh / 200)
    print(f"\n7B projector refresh (224 matrices, warm; with forming G): {refresh:.2f} s (target <= 3 s); "
          f"effective rate at update_proj_gap 200: {eff:,.0f} tok/s (target >= 11,000)")
    c = runs.get("llama7b-r1024-recompute-autotune")
    if c:
        print(f"  with GEMM autotuning (the refresh cost as above): "
              f"{tokens / (c['step_s_median'] + refresh / 200):,.0f} tok/s")
EOF
