#!/usr/bin/env bash
# galore-train --synthetic-data: trains on random tokens with no shards at all
# (data.train_shards points nowhere), logs its steps and metrics, writes no
# checkpoint; combined with --resume it is refused with a one-line error.
set -euo pipefail
BIN="${GALORE_BIN:?run through ctest}"
cd "${GALORE_ROOT:-.}"
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
SETS=(--set training.device=cpu --set training.max_steps=3 --set schedule.warmup_steps=1 --set logging.every=1 --set logging.dir="$OUT/run"
  --set data.train_shards='["/nonexistent/*.bin"]' --set data.val_shards='[]')
"$BIN/galore-train" --config configs/tiny.json --synthetic-data "${SETS[@]}" >"$OUT/log" 2>&1 ||
  { cat "$OUT/log"; echo "FAIL: galore-train --synthetic-data exited non-zero"; exit 1; }
grep -q "step *3/3" "$OUT/log" || { cat "$OUT/log"; echo "FAIL: no step 3/3 in the log"; exit 1; }
[ "$(grep -c '"loss"' "$OUT/run/metrics.jsonl")" -ge 3 ] || { cat "$OUT/run/metrics.jsonl"; echo "FAIL: metrics"; exit 1; }
if find "$OUT/run" -name 'step_*' | grep -q .; then echo "FAIL: a checkpoint was written"; exit 1; fi
if "$BIN/galore-train" --config configs/tiny.json --synthetic-data --resume auto "${SETS[@]}" >"$OUT/err" 2>&1; then
  echo "FAIL: --synthetic-data --resume was accepted"; exit 1
fi
[ "$(wc -l <"$OUT/err")" -eq 1 ] && grep -q "^error: --synthetic-data" "$OUT/err" ||
  { cat "$OUT/err"; echo "FAIL: want a one-line error naming --synthetic-data"; exit 1; }
echo "ok: 3 synthetic steps, metrics written, no checkpoint; --resume refused"
