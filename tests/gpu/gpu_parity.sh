#!/usr/bin/env bash
# galore-parity --device cuda on every model fixture in tests/fixtures: the
# CUDA backend (bf16 weights and activations, fp32 accumulation) against the
# Hugging Face reference outputs. Tolerances (galore-parity's cuda defaults,
# docs/CUDA.md): loss/logits/hidden states rel. error <= 2e-2, each weight
# gradient <= 5e-2 -- bf16 has an 8-bit mantissa (rel. rounding 3.9e-3) and
# the errors of 2-4 layers add up.
source "$(dirname "$0")/gpu_common.bash"
n=0
for fx in tests/fixtures/*/; do
  [ -f "$fx/reference.safetensors" ] || continue
  echo "=== $fx"
  "$BIN/galore-parity" --device "$DEVICE" "$fx" || fail "galore-parity --device $DEVICE $fx"
  n=$((n + 1))
done
[ "$n" -gt 0 ] || fail "no fixtures found under tests/fixtures"
echo "ok: $n fixture(s) within the bf16 tolerances"
