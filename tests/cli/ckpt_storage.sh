#!/usr/bin/env bash
# Storage faults while checkpointing (a full disk is injected with
# GALORE_FAIL_WRITES=<path substring>; tests run as root, so an unwritable
# directory is a path under a regular file):
#   - checkpoint.on_write_error=stop (default): non-zero exit, one clear error
#     line naming the file and the cause; earlier checkpoints intact and still
#     resumable; no folder under the failed step's name, no scratch folder left.
#   - on_write_error=continue: the error is logged, training goes on and later
#     checkpoints are written.
#   - a failure of the very last file (COMPLETE) leaves no step folder at all.
#   - checkpoint.dir under a regular file: a clear error naming checkpoint.dir.
source "$(dirname "$0")/ckpt_common.bash"
ckpt_setup ckpt_storage

ckpt_micro_config '{"type": "constant"}' 6 2 0 unused

# train <log> <env...> -- <args...>: sets $rc
train() {
  local log="$1"
  shift
  local envs=()
  while [ "$1" != "--" ]; do envs+=("$1"); shift; done
  shift
  rc=0
  env "${envs[@]}" "$BIN/galore-train" --config "$TMP/cfg.json" "$@" >"$log" 2>&1 || rc=$?
}
hashes() { (cd "$1" && sha256sum -- *); }
no_scratch() { ! ls -a "$1" | grep -qE '^\.(tmp|old)_'; }

# ---- 1. disk full at step 4, on_write_error=stop ----
R1="$TMP/r1"
train "$TMP/1.log" GALORE_FAIL_WRITES=step_00000004 -- --set logging.dir="$R1"
[ "$rc" -ne 0 ] || fail "1: a failed checkpoint write should stop training with a non-zero exit"
[ "$(grep -c '^error: ' "$TMP/1.log")" -eq 1 ] || fail "1: expected one 'error:' line, got: $(cat "$TMP/1.log")"
err="$(grep '^error: ' "$TMP/1.log")"
for want in "step 4" "step_00000004" "No space left on device" "earlier checkpoints are intact"; do
  [[ "$err" == *"$want"* ]] || fail "1: the error should mention '$want': $err"
done
[ -f "$R1/checkpoints/step_00000002/COMPLETE" ] || fail "1: the step-2 checkpoint is gone"
[ ! -e "$R1/checkpoints/step_00000004" ] || fail "1: a step_00000004 folder exists after its write failed"
no_scratch "$R1/checkpoints" || fail "1: scratch folders left: $(ls -a "$R1/checkpoints")"
grep -q "step      5" "$TMP/1.log" && fail "1: training went on after the failed checkpoint"
before="$(hashes "$R1/checkpoints/step_00000002")"
# ... and the run resumes from step 2 once the disk is fine.
train "$TMP/1b.log" -- --set logging.dir="$R1" --resume auto
[ "$rc" -eq 0 ] || { cat "$TMP/1b.log" >&2; fail "1: resuming after the failure exited $rc"; }
grep -q "resumed from .*step_00000002 at step 2" "$TMP/1b.log" || fail "1: did not resume from step 2"
[ "$before" = "$(hashes "$R1/checkpoints/step_00000002")" ] || fail "1: the step-2 checkpoint changed"
[ -f "$R1/checkpoints/step_00000006/COMPLETE" ] || fail "1: the resumed run wrote no final checkpoint"
echo "ok: disk full at step 4 stops training cleanly; step 2 intact and resumable"

# ---- 2. the same with on_write_error=continue ----
R2="$TMP/r2"
train "$TMP/2.log" GALORE_FAIL_WRITES=step_00000004 -- --set logging.dir="$R2" --set checkpoint.on_write_error=continue
[ "$rc" -eq 0 ] || { cat "$TMP/2.log" >&2; fail "2: on_write_error=continue should finish the run (exit $rc)"; }
grep -q "checkpoint at step 4 failed: .*No space left on device.*continuing" "$TMP/2.log" ||
  fail "2: the failed write was not logged: $(grep -i fail "$TMP/2.log")"
for s in 2 6; do [ -f "$R2/checkpoints/step_0000000$s/COMPLETE" ] || fail "2: checkpoint step $s missing"; done
[ ! -e "$R2/checkpoints/step_00000004" ] || fail "2: a step_00000004 folder exists after its write failed"
no_scratch "$R2/checkpoints" || fail "2: scratch folders left: $(ls -a "$R2/checkpoints")"
echo "ok: on_write_error=continue logs the failure and keeps training"

# ---- 3. the last file (COMPLETE) cannot be written ----
R3="$TMP/r3"
train "$TMP/3.log" GALORE_FAIL_WRITES=/COMPLETE -- --set logging.dir="$R3"
[ "$rc" -ne 0 ] || fail "3: a failed COMPLETE write should stop training"
grep -q '^error: .*COMPLETE.*No space left on device' "$TMP/3.log" || fail "3: unclear error: $(grep error "$TMP/3.log")"
[ -z "$(ls -A "$R3/checkpoints")" ] || fail "3: something was left in checkpoints/: $(ls -A "$R3/checkpoints")"
echo "ok: a failed COMPLETE write leaves no step folder"

# ---- 4. checkpoint.dir cannot be created (under a regular file) ----
R4="$TMP/r4"
train "$TMP/4.log" -- --set logging.dir="$R4" --set checkpoint.dir=/dev/null/ckpt
[ "$rc" -ne 0 ] || fail "4: an unusable checkpoint.dir should be an error"
grep -q '^error: .*/dev/null/ckpt.*Not a directory.*checkpoint.dir' "$TMP/4.log" ||
  fail "4: unclear error: $(grep -i error "$TMP/4.log")"
echo "ok: an unwritable checkpoint.dir is a clear error"
echo "PASS ckpt_storage"
