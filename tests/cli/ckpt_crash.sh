#!/usr/bin/env bash
# Crash safety: a tiny run with a checkpoint every step is SIGKILLed at
# random moments (seeded: failures reproduce), often in the middle of a
# checkpoint write or a prune, KILLS times. Each time:
#   - the process is SIGSTOPped first and every complete checkpoint (step_*
#     with COMPLETE) is hashed (sha256sum of all its files), then SIGKILLed;
#   - no complete checkpoint seen before may change afterwards (one may only
#     disappear by pruning, keep_last=3, when 3 newer complete ones exist);
#   - the next `--resume auto` must resume from the newest complete checkpoint
#     at the time of the kill and may never skip a damaged one.
# Finally a run resumes and finishes cleanly and leaves no scratch folders.
source "$(dirname "$0")/ckpt_common.bash"
ckpt_setup ckpt_crash

KILLS="${CKPT_CRASH_KILLS:-12}"
RANDOM="${CKPT_CRASH_SEED:-4242}"  # seeds bash's $RANDOM: the same delays every time
RUN="$TMP/run"
CK="$RUN/checkpoints"
ckpt_micro_config '{"type": "constant", "warmup_steps": 0}' 1000000 1 3 "$RUN"

# snapshot <file>: "step_dir/file sha256" for every complete checkpoint
snapshot() {
  : >"$1"
  for d in "$CK"/step_*; do
    [ -f "$d/COMPLETE" ] || continue
    (cd "$d" && sha256sum -- *) | sed "s|  |  $(basename "$d")/|" >>"$1"
  done
  sort -o "$1" "$1"
}
steps_in() { sed -E 's|.*(step_[0-9]+)/.*|\1|' "$1" | sort -u; }
newest_in() { steps_in "$1" | tail -1 | sed -E 's/step_0*([0-9])/\1/'; }

: >"$TMP/prev.snap"
expected=0   # step --resume auto must pick (0 = start from scratch)
during_write=0
for i in $(seq 1 "$KILLS"); do
  log="$TMP/run_$i.log"
  "$BIN/galore-train" --config "$TMP/cfg.json" --resume auto >"$log" 2>&1 &
  PID=$!
  delay_ms=$((300 + RANDOM % 900))
  sleep "$(printf '%d.%03d' $((delay_ms / 1000)) $((delay_ms % 1000)))"
  kill -STOP "$PID" 2>/dev/null || { cat "$log" >&2; fail "kill $i: the trainer exited before the kill"; }
  ls -a "$CK" 2>/dev/null | grep -q '^\.tmp_step_' && during_write=$((during_write + 1))
  snapshot "$TMP/cur.snap"
  kill -KILL "$PID"
  wait "$PID" 2>/dev/null || true
  PID=""
  # Nothing may change between the stopped snapshot and after the kill.
  snapshot "$TMP/after.snap"
  cmp -s "$TMP/cur.snap" "$TMP/after.snap" || fail "kill $i: checkpoints changed across SIGKILL"
  # The run resumed from where the previous one was killed.
  if grep -q "resumed from" "$log"; then
    [ "$expected" -gt 0 ] || fail "kill $i: resumed although no complete checkpoint existed: $(grep resumed "$log")"
    grep -q "resumed from $CK/$(printf 'step_%08d' "$expected") at step $expected" "$log" ||
      fail "kill $i: expected a resume from step $expected, got: $(grep 'resumed from' "$log")"
  elif grep -q "starting from scratch" "$log"; then
    [ "$expected" -eq 0 ] || fail "kill $i: started from scratch although step $expected was complete"
  fi
  if grep -qi "skipping checkpoint" "$log"; then fail "kill $i: --resume auto skipped a damaged checkpoint: $(grep -i skipping "$log")"; fi
  if grep -q "error" "$log"; then fail "kill $i: the run reported an error: $(grep error "$log")"; fi
  # Complete checkpoints seen before are unchanged, or were pruned legitimately.
  newest_now=$(newest_in "$TMP/cur.snap" || true)
  newest_now=${newest_now:-0}
  [ "$newest_now" -ge "$expected" ] || fail "kill $i: the newest complete checkpoint went back from $expected to $newest_now"
  for s in $(steps_in "$TMP/prev.snap"); do
    if grep -q " $s/" "$TMP/cur.snap"; then
      diff <(grep " $s/" "$TMP/prev.snap") <(grep " $s/" "$TMP/cur.snap") >/dev/null ||
        fail "kill $i: complete checkpoint $s changed: $(diff <(grep " $s/" "$TMP/prev.snap") <(grep " $s/" "$TMP/cur.snap"))"
    else
      newer=$(steps_in "$TMP/cur.snap" | awk -v s="$s" '$0 > s' | wc -l)
      [ "$newer" -ge 3 ] || fail "kill $i: complete checkpoint $s disappeared with only $newer newer ones (keep_last=3)"
    fi
  done
  echo "kill $i after ${delay_ms} ms: newest complete step $newest_now ($(steps_in "$TMP/cur.snap" | wc -l) kept)"
  cp "$TMP/cur.snap" "$TMP/prev.snap"
  expected=$newest_now
done
[ "$expected" -gt 0 ] || fail "no checkpoint was ever completed: the kills came too early to test anything"
echo "$during_write of $KILLS kills hit a checkpoint write in progress"

# A final run resumes from the last one and finishes cleanly.
final=$((expected + 2))
"$BIN/galore-train" --config "$TMP/cfg.json" --resume auto --set training.max_steps=$final >"$TMP/final.log" 2>&1 ||
  { tail -20 "$TMP/final.log" >&2; fail "the final resumed run failed"; }
grep -q "resumed from $CK/$(printf 'step_%08d' "$expected") at step $expected" "$TMP/final.log" ||
  fail "final run: expected a resume from step $expected: $(grep -i resum "$TMP/final.log")"
[ -f "$CK/$(printf 'step_%08d' "$final")/COMPLETE" ] || fail "final run left no complete step $final"
left=$(ls -a "$CK" | grep -E '^\.(tmp|old)_' || true)
[ -z "$left" ] || fail "scratch folders left after a clean checkpoint: $left"
echo "PASS ckpt_crash ($KILLS kills, resumed to step $final)"
