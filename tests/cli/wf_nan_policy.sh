#!/usr/bin/env bash
# training.nan_policy with the trainer's test hook GALORE_INJECT_NAN_STEP=<k>
# (the loss of optimizer step k, counted from 0 as in trainer_state "step", is NaN):
#   skip: the run finishes (exit 0), metrics show skipped_steps=1, the skipped step
#         logs a null loss, and the sweep summary still calls the run finished;
#   stop: non-zero exit, one error line, and a checkpoint of the last good state
#         (k steps done, reason "non-finite loss") that --resume auto continues from.
set -euo pipefail
ROOT="${GALORE_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}"
BIN="${GALORE_BIN:-$ROOT/build/bin}"
cd "$ROOT"
TMP="$(mktemp -d "${TMPDIR:-/tmp}/wf_nan_policy.XXXXXX")"
trap 'rm -rf "$TMP"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
if ! grep -q '"complete": true' data/sample/shards/manifest.json 2>/dev/null; then
  bash data_tools/prepare_sample.sh "$BIN" >/dev/null || fail "could not prepare data/sample/shards"
fi
ARGS=(--config configs/tiny.json --set training.device=cpu --set training.threads=1 --set training.max_steps=5
  --set schedule.warmup_steps=1 --set training.seq_len=64 --set training.micro_batch_size=4
  --set training.total_batch_size=4 --set eval.batches=1 --set eval.every=0 --set checkpoint.every=0
  --set logging.every=1)

# ---- skip ----
RUN="$TMP/skip"
GALORE_INJECT_NAN_STEP=2 "$BIN/galore-train" "${ARGS[@]}" --set training.nan_policy=skip --set logging.dir="$RUN" \
  >"$RUN.log" 2>&1 || { cat "$RUN.log"; fail "nan_policy=skip: exit $?, want 0"; }
grep -q "non-finite loss at step 2" "$RUN.log" || fail "skip: no warning about step 2: $(cat "$RUN.log")"
python3 - "$RUN/metrics.jsonl" <<'PY' || fail "skip: metrics (above)"
import json, sys
train = [json.loads(l) for l in open(sys.argv[1]) if '"loss"' in l]
steps = [r["step"] for r in train]
assert steps == [1, 2, 3, 4, 5], steps
assert [r["skipped_steps"] for r in train] == [0, 0, 1, 1, 1], [r["skipped_steps"] for r in train]
assert train[2]["loss"] is None, train[2]          # step index 2 is the 3rd logged step; NaN is written as null
assert all(isinstance(r["loss"], float) for r in train if r["step"] != 3), train
PY
python3 -c 'import json,sys; s=json.load(open(sys.argv[1])); assert s["skipped_steps"] == 1 and s["step"] == 5, s' \
  "$RUN/checkpoints/step_00000005/trainer_state.json" || fail "skip: final checkpoint should record skipped_steps=1"
st="$(python3 scripts/lib_sweep.py run-status "$RUN")"
[ "$st" = finished ] || fail "skip: one skipped step should not make the run '$st' in the sweep summary"

# ---- stop ----
RUN="$TMP/stop"
rc=0
GALORE_INJECT_NAN_STEP=3 "$BIN/galore-train" "${ARGS[@]}" --set training.nan_policy=stop --set logging.dir="$RUN" \
  >"$RUN.log" 2>&1 || rc=$?
[ "$rc" -ne 0 ] || fail "nan_policy=stop: exit 0, want non-zero"
[ "$(grep -c '^error:' "$RUN.log")" -eq 1 ] || fail "stop: expected one error line: $(cat "$RUN.log")"
grep '^error:' "$RUN.log" | grep -q "non-finite loss at step 3" || fail "stop: the error should name step 3"
grep '^error:' "$RUN.log" | grep -q "training.nan_policy=stop" || fail "stop: the error should name the policy"
CK="$RUN/checkpoints/step_00000003"
[ -f "$CK/COMPLETE" ] || fail "stop: no complete checkpoint of the last good state ($CK): $(ls "$RUN/checkpoints" 2>&1)"
[ "$(ls "$RUN/checkpoints")" = step_00000003 ] || fail "stop: unexpected checkpoints $(ls "$RUN/checkpoints")"
python3 - "$CK/trainer_state.json" "$RUN/metrics.jsonl" <<'PY' || fail "stop: checkpoint state (above)"
import json, sys
s = json.load(open(sys.argv[1]))
assert s["step"] == 3 and s["skipped_steps"] == 0, s
steps = [json.loads(l)["step"] for l in open(sys.argv[2]) if '"loss"' in l]
assert steps == [1, 2, 3], steps  # nothing logged for the failing step
PY
st="$(python3 scripts/lib_sweep.py run-status "$RUN")" || true
# (no train.log in the run directory here: run-status sees an interrupted run; the sweep
# keeps galore-train's output in <run>/train.log, where the message marks it diverged)
cp "$RUN.log" "$RUN/train.log"
[ "$(python3 scripts/lib_sweep.py run-status "$RUN")" = diverged ] || fail "stop: the sweep summary should call it diverged"
# The checkpoint is good: resuming without the injected NaN finishes the run.
"$BIN/galore-train" "${ARGS[@]}" --set training.nan_policy=stop --set logging.dir="$RUN" --resume auto \
  >"$RUN.resume.log" 2>&1 || { cat "$RUN.resume.log"; fail "resume after stop: exit $?"; }
grep -q "resumed from .*step_00000003 at step 3" "$RUN.resume.log" || fail "resume did not start from step 3"
[ -f "$RUN/checkpoints/step_00000005/COMPLETE" ] || fail "resume after stop did not finish"
echo "wf_nan_policy: OK"
