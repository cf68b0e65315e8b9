#!/usr/bin/env bash
# galore-train --eval-only --resume <ckpt>: reports the validation loss and
# perplexity of a checkpoint (the same numbers as the run's final eval), appends
# an eval_only record to metrics.jsonl, writes no checkpoint; --resume auto works;
# without --resume, or with a bad checkpoint, it is a one-line error.
set -euo pipefail
ROOT="${GALORE_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}"
BIN="${GALORE_BIN:-$ROOT/build/bin}"
cd "$ROOT"
TMP="$(mktemp -d "${TMPDIR:-/tmp}/wf_eval_only.XXXXXX")"
trap 'rm -rf "$TMP"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
if ! grep -q '"complete": true' data/sample/shards/manifest.json 2>/dev/null; then
  bash data_tools/prepare_sample.sh "$BIN" >/dev/null || fail "could not prepare data/sample/shards"
fi

RUN="$TMP/run"
ARGS=(--config configs/tiny.json --set training.device=cpu --set training.threads=1 --set training.max_steps=3
  --set schedule.warmup_steps=1 --set training.seq_len=64 --set training.micro_batch_size=4
  --set training.total_batch_size=4 --set eval.batches=2 --set eval.every=0 --set logging.dir="$RUN")
"$BIN/galore-train" "${ARGS[@]}" >"$TMP/train.log" 2>&1 || { cat "$TMP/train.log"; fail "training exited $?"; }
CKPT="$RUN/checkpoints/step_00000003"
[ -f "$CKPT/COMPLETE" ] || fail "no checkpoint $CKPT"

# The run's own final eval record.
last_eval() { python3 -c '
import json, sys
recs = [json.loads(l) for l in open(sys.argv[1]) if "val_loss" in l]
r = recs[-1]
print(r["step"], repr(r["val_loss"]), repr(r["val_ppl"]), r.get("eval_only", False))' "$RUN/metrics.jsonl"; }
read -r step0 vl0 ppl0 only0 <<<"$(last_eval)"
[ "$step0" = 3 ] && [ "$only0" = False ] || fail "the run's final eval record: step $step0 eval_only $only0"
lines0=$(wc -l <"$RUN/metrics.jsonl")

"$BIN/galore-train" "${ARGS[@]}" --eval-only --resume "$CKPT" >"$TMP/eval.log" 2>&1 ||
  { cat "$TMP/eval.log"; fail "--eval-only exited $?"; }
grep -Eq "val loss [0-9]+\.[0-9]+ \| val ppl [0-9]+\.[0-9]+" "$TMP/eval.log" ||
  fail "--eval-only did not report val loss and perplexity: $(cat "$TMP/eval.log")"
[ "$(wc -l <"$RUN/metrics.jsonl")" -eq $((lines0 + 1)) ] || fail "--eval-only should append exactly one record"
read -r step1 vl1 ppl1 only1 <<<"$(last_eval)"
[ "$step1" = 3 ] && [ "$only1" = True ] || fail "eval-only record: step $step1 eval_only $only1"
python3 - "$vl0" "$vl1" "$ppl1" <<'PY' || fail "eval-only val loss $vl1 / ppl $ppl1 vs the run's $vl0"
import math, sys
v0, v1, p1 = map(float, sys.argv[1:])
assert abs(v0 - v1) <= 1e-6 * abs(v0), (v0, v1)      # same weights, same validation batches
assert abs(p1 - math.exp(v1)) <= 1e-6 * p1, (p1, v1)  # perplexity = exp(loss)
assert 0 < v1 < 20
PY
# The printed numbers agree with the record.
printed="$(grep -Eo "val loss [0-9.]+" "$TMP/eval.log" | tail -1 | awk '{print $3}')"
python3 -c "import sys; assert abs(float(sys.argv[1]) - float(sys.argv[2])) < 1e-4" "$printed" "$vl1" ||
  fail "printed val loss $printed != recorded $vl1"
[ "$(ls "$RUN/checkpoints")" = "step_00000003" ] || fail "--eval-only wrote a checkpoint: $(ls "$RUN/checkpoints")"

# --resume auto picks the newest checkpoint.
"$BIN/galore-train" "${ARGS[@]}" --eval-only --resume auto >"$TMP/auto.log" 2>&1 ||
  { cat "$TMP/auto.log"; fail "--eval-only --resume auto exited $?"; }
grep -q "val ppl" "$TMP/auto.log" || fail "--resume auto: no perplexity reported"

# Errors.
expect_error() {  # PATTERN ARGS...
  local pat=$1 out rc=0
  shift
  out="$("$BIN/galore-train" "${ARGS[@]}" "$@" 2>&1)" || rc=$?
  [ "$rc" -ne 0 ] || fail "galore-train $* should fail"
  echo "$out" | grep -qF -- "$pat" || fail "galore-train $*: expected '$pat' in: $out"
  [ "$(echo "$out" | grep -c '^error:')" -eq 1 ] || fail "galore-train $*: expected one error line, got: $out"
}
expect_error "--eval-only needs --resume" --eval-only
expect_error "--resume $TMP/nope" --eval-only --resume "$TMP/nope"
# --resume auto with no checkpoint under logging.dir: nothing to evaluate.
out="$("$BIN/galore-train" "${ARGS[@]}" --eval-only --resume auto --set logging.dir="$TMP/fresh" 2>&1)" &&
  fail "--eval-only --resume auto without checkpoints should fail"
[ "$(echo "$out" | grep -c '^error:')" -eq 1 ] || fail "--eval-only --resume auto without checkpoints: $out"
echo "wf_eval_only: OK"
