#!/usr/bin/env bash
# Resume rules (docs/CHECKPOINTS.md):
#   - SIGTERM / SIGINT: the current step finishes, a checkpoint is written
#     (reason "signal"), exit 128+signal; --resume auto continues from it.
#     A second signal within 2 s (a group signal plus sweep_lr.sh's) is the
#     same request.
#   - --resume auto skips damaged (hash mismatch, truncated) and incomplete
#     (no COMPLETE) checkpoints and says so; a damaged one is replaced when the
#     run reaches its step again.
#   - --resume <path>: a damaged checkpoint, a missing path or a checkpoint
#     root are one-line errors saying what to do.
#   - a different model shape or optimizer is a clear error naming the key.
#   - safe overrides (lr, max_steps, intervals) apply and are logged.
source "$(dirname "$0")/ckpt_common.bash"
ckpt_setup ckpt_resume

RUN="$TMP/run"
CK="$RUN/checkpoints"
ckpt_micro_config '{"type": "cosine", "warmup_steps": 1}' 4 2 0 "$RUN"
expect_error() {  # expect_error <name> <log> <substring>...
  local name="$1" log="$2"
  shift 2
  [ "$rc" -ne 0 ] || fail "$name: should fail, but exited 0"
  local err
  err="$(grep '^error: ' "$log" || true)"
  [ "$(printf '%s\n' "$err" | grep -c '^error: ')" -eq 1 ] || fail "$name: expected one 'error:' line: $(cat "$log")"
  for want in "$@"; do [[ "$err" == *"$want"* ]] || fail "$name: the error should mention '$want': $err"; done
  echo "ok: $name: $err"
}
ck() { printf '%s/step_%08d' "$CK" "$1"; }

train "$TMP/base.log"
[ "$rc" -eq 0 ] || { cat "$TMP/base.log" >&2; fail "the base run failed"; }
for s in 2 4; do [ -f "$(ck $s)/COMPLETE" ] || fail "base run: no complete checkpoint at step $s"; done

# ---- mismatches are errors naming the key ----
train "$TMP/shape.log" --resume auto --set model.hidden_size=64 --set training.max_steps=6
expect_error "different model shape" "$TMP/shape.log" "model.hidden_size" "same model shape"
train "$TMP/opt.log" --resume auto --set optimizer.name=sgd --set training.max_steps=6
expect_error "different optimizer" "$TMP/opt.log" "optimizer.name" "adamw" "sgd"
train "$TMP/missing.log" --resume "$TMP/nope" --set training.max_steps=6
expect_error "missing --resume path" "$TMP/missing.log" "$TMP/nope" "no such directory"
train "$TMP/root.log" --resume "$CK" --set training.max_steps=6
expect_error "--resume <checkpoint root>" "$TMP/root.log" "checkpoint root" "--resume auto"

# ---- damaged and incomplete checkpoints ----
cp -a "$(ck 4)" "$TMP/good4"
cp -a "$(ck 4)" "$(ck 6)" && rm "$(ck 6)/COMPLETE"                                       # unfinished write
printf '\x55' | dd of="$(ck 4)/model.safetensors" bs=1 seek=200 conv=notrunc status=none   # bit rot
train "$TMP/bad4.log" --resume "$(ck 4)" --set training.max_steps=6
expect_error "--resume <damaged>" "$TMP/bad4.log" "step_00000004" "hash mismatch in model.safetensors"
train "$TMP/auto.log" --resume auto
[ "$rc" -eq 0 ] || { cat "$TMP/auto.log" >&2; fail "--resume auto with damaged checkpoints failed"; }
grep -q "skipping checkpoint $(ck 6): no COMPLETE marker" "$TMP/auto.log" || fail "auto: did not report the incomplete step 6"
grep -q "skipping checkpoint $(ck 4): hash mismatch in model.safetensors" "$TMP/auto.log" ||
  fail "auto: did not report the damaged step 4"
grep -q "resumed from $(ck 2) at step 2" "$TMP/auto.log" || fail "auto: did not resume from step 2"
grep -q "replacing $(ck 4)" "$TMP/auto.log" || fail "auto: the damaged step 4 was not reported as replaced"
cmp -s "$(ck 4)/model.safetensors" "$TMP/good4/model.safetensors" ||
  fail "the rewritten step 4 differs from the original (resume is not exact?)"
echo "ok: --resume auto skips damaged/incomplete checkpoints, says so, and rewrites step 4 identically"
rm -rf "$(ck 6)"
truncate -s 100 "$(ck 4)/optimizer.safetensors"
train "$TMP/trunc.log" --resume "$(ck 4)" --set training.max_steps=6
expect_error "--resume <truncated>" "$TMP/trunc.log" "optimizer.safetensors has 100 bytes"
rm -rf "$(ck 4)" && cp -a "$TMP/good4" "$(ck 4)"

# ---- safe overrides apply and are logged ----
train "$TMP/over.log" --resume auto --set optimizer.lr=0.002 --set training.max_steps=6 --set checkpoint.every=3
[ "$rc" -eq 0 ] || { cat "$TMP/over.log" >&2; fail "resume with safe overrides failed"; }
for want in "optimizer.lr changed from 0.001 to 0.002" "training.max_steps changed from 4 to 6" \
  "checkpoint.every changed from 2 to 3" "resumed from $(ck 4) at step 4"; do
  grep -q "$want" "$TMP/over.log" || fail "overrides: log lacks '$want'"
done
[ -f "$(ck 6)/COMPLETE" ] || fail "overrides: no final checkpoint at step 6"
python3 -c 'import json,sys; c=json.load(open(sys.argv[1]))["config"]; sys.exit(0 if c["optimizer"]["lr"]==0.002 and c["training"]["max_steps"]==6 else 1)' \
  "$(ck 6)/trainer_state.json" || fail "overrides: the step-6 checkpoint does not record the new config"
echo "ok: safe overrides are applied, logged and recorded"

# ---- SIGINT+SIGTERM: finish the step, checkpoint, exit; then resume ----
"$BIN/galore-train" --config "$TMP/cfg.json" --resume auto --set training.max_steps=1000000 \
  --set checkpoint.every=0 >"$TMP/term.log" 2>&1 &
PID=$!
for _ in $(seq 1 100); do
  [ "$(grep -c '"loss"' "$RUN/metrics.jsonl")" -ge 9 ] && break
  sleep 0.1
done
# SIGINT and SIGTERM back to back, as Ctrl-C on a sweep delivers them (the
# terminal signals the process group, sweep_lr.sh passes SIGTERM on): one
# request, so the run still checkpoints; it exits with the first one's code
# (130 when SIGINT arrives first, as it does unless the kernel reorders them).
kill -INT "$PID"
kill -TERM "$PID"
rc=0
wait "$PID" || rc=$?
PID=""
sig_rc=$rc
[ "$rc" -eq 130 ] || [ "$rc" -eq 143 ] || { tail "$TMP/term.log" >&2; fail "SIGINT+SIGTERM: expected exit 130 or 143, got $rc"; }
step=$(sed -nE "s/.*stopped by signal $((rc - 128)) after step ([0-9]+).*/\1/p" "$TMP/term.log")
[ -n "$step" ] || fail "SIGINT+SIGTERM: no 'stopped by signal $((rc - 128))' message: $(tail -3 "$TMP/term.log")"
[ -f "$(ck "$step")/COMPLETE" ] || fail "SIGTERM: no complete checkpoint at step $step"
grep -q '"reason": "signal"' "$(ck "$step")/trainer_state.json" || fail "SIGTERM: checkpoint reason is not 'signal'"
train "$TMP/after_term.log" --resume auto --set training.max_steps=$((step + 1))
[ "$rc" -eq 0 ] && grep -q "resumed from $(ck "$step") at step $step" "$TMP/after_term.log" ||
  fail "SIGTERM: --resume auto did not continue from step $step"
echo "ok: SIGINT+SIGTERM after step $step wrote a checkpoint and exited $sig_rc; resume continued"
echo "PASS ckpt_resume"
