#!/usr/bin/env bash
# A real two-LR mini sweep of configs/tiny.json on the CPU with scripts/sweep_lr.sh:
#   1. the sweep is interrupted as Ctrl-C does it (SIGINT to its whole process group:
#      galore-train gets SIGINT from the "terminal" and SIGTERM from the sweep): the run
#      checkpoints, the sweep stops before the second LR and exits 130, the summary
#      says interrupted (whether the sweep's SIGTERM lands before the run's checkpoint is
#      a race here; ckpt_resume.sh pins the two-signal rule itself); 1b: only the run is
#      interrupted (kill -INT on its train.pid), the sweep stops too;
#   2. the same command (now with --gpus 0,1: two runs in parallel) resumes the first
#      run from its checkpoint and runs the second: both finished, metrics without
#      duplicate steps, summary.md/csv with the best run marked;
#   3. a third run skips both;
# plus --dry-run / --lr-range, runs that diverge (nan_policy=stop via the trainer's
# GALORE_INJECT_NAN_STEP hook) without breaking the sweep, and a failing run.
set -euo pipefail
ROOT="${GALORE_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}"
BIN="${GALORE_BIN:-$ROOT/build/bin}"
cd "$ROOT"
TMP="$(mktemp -d "${TMPDIR:-/tmp}/wf_sweep_run.XXXXXX")"
SWEEP_PID=""
cleanup() {
  [ -n "$SWEEP_PID" ] && kill -TERM "$SWEEP_PID" 2>/dev/null && wait "$SWEEP_PID" 2>/dev/null
  rm -rf "$TMP"
}
trap cleanup EXIT
fail() {
  echo "FAIL: $*" >&2
  for f in "$TMP"/*.log "$TMP"/sweep/*/train.log; do [ -f "$f" ] && { echo "--- $f" >&2; tail -n 15 "$f" >&2; }; done
  exit 1
}
if ! grep -q '"complete": true' data/sample/shards/manifest.json 2>/dev/null; then
  bash data_tools/prepare_sample.sh "$BIN" >/dev/null || fail "could not prepare data/sample/shards"
fi

OUT="$TMP/sweep"
SETS=(--set training.device=cpu --set training.threads=1 --set training.max_steps=20 --set schedule.warmup_steps=2
  --set training.seq_len=64 --set training.micro_batch_size=4 --set training.total_batch_size=4
  --set eval.batches=2 --set eval.every=8 --set checkpoint.every=0 --set logging.every=1)
SWEEP=(scripts/sweep_lr.sh --config configs/tiny.json --out "$OUT" --lrs 1e-3,3e-3 --bin "$BIN" "${SETS[@]}")

# ---- dry run: prints the commands, creates nothing ----
"${SWEEP[@]}" --dry-run >"$TMP/dry.out" 2>"$TMP/dry.err" || fail "--dry-run exited $?"
[ "$(grep -c 'galore-train' "$TMP/dry.out")" -eq 2 ] || fail "--dry-run should print 2 commands: $(cat "$TMP/dry.out")"
grep -q -- "--set optimizer.lr=3e-3 --set logging.dir=$OUT/lr_3e-3 --set checkpoint.dir=$OUT/lr_3e-3/checkpoints --resume auto" \
  "$TMP/dry.out" || fail "--dry-run command: $(cat "$TMP/dry.out")"
grep -q -- "--set training.max_steps=20" "$TMP/dry.out" || fail "--set is not passed through"
[ ! -e "$OUT" ] || fail "--dry-run created $OUT"
scripts/sweep_lr.sh --config configs/tiny.json --out "$OUT" --lr-range 1e-4:1e-2:3 --bin "$BIN" --dry-run \
  >"$TMP/range.out" 2>/dev/null || fail "--lr-range --dry-run exited $?"
for v in 0.0001 0.001 0.01; do grep -q "optimizer.lr=$v " "$TMP/range.out" || fail "--lr-range lacks $v"; done
# A bad --set is caught before anything starts (galore-train names the key).
rc=0
scripts/sweep_lr.sh --config configs/tiny.json --out "$OUT" --lrs 1e-3 --bin "$BIN" --set optimizr.lr=1 \
  >"$TMP/badset.log" 2>&1 || rc=$?
[ "$rc" = 2 ] && grep -q "did you mean 'optimizer.lr'" "$TMP/badset.log" || fail "bad --set: exit $rc: $(cat "$TMP/badset.log")"
[ ! -e "$OUT" ] || fail "a rejected sweep created $OUT"

# ---- 1. interrupt the sweep like Ctrl-C: SIGINT to its process group ----
# (setsid: the sweep leads its own group, so the signal reaches it and its
# galore-train but not this test)
setsid "${SWEEP[@]}" >"$TMP/sweep1.log" 2>&1 &
SWEEP_PID=$!
R1="$OUT/lr_1e-3"
for _ in $(seq 1 3000); do  # up to 60 s for the first logged step
  if [ -s "$R1/train.pid" ] && grep -q '"loss"' "$R1/metrics.jsonl" 2>/dev/null; then break; fi
  kill -0 "$SWEEP_PID" 2>/dev/null || break
  sleep 0.02
done
[ -s "$R1/train.pid" ] || fail "the first run never started"
kill -INT -- "-$SWEEP_PID"
rc=0
wait "$SWEEP_PID" || rc=$?
SWEEP_PID=""
[ "$rc" = 130 ] || fail "interrupted sweep: exit $rc, want 130"
[ ! -e "$OUT/lr_3e-3" ] || fail "the sweep should not start lr 3e-3 after an interrupted run"
grep -qE "stopped by signal (2|15)" "$R1/train.log" || fail "the run did not stop on the signal (it must checkpoint, not exit at once)"
ls "$R1/checkpoints" | grep -q '^step_' || fail "no checkpoint after Ctrl-C on the sweep"
grep -q '^1e-3,interrupted,' "$OUT/summary.csv" || fail "summary after the interrupt: $(cat "$OUT/summary.csv")"
[ ! -e "$R1/train.pid" ] || fail "train.pid left behind"
stopped_at=$(python3 -c 'import json,sys; print(max(json.loads(l)["step"] for l in open(sys.argv[1]) if "\"loss\"" in l))' "$R1/metrics.jsonl")
[ "$stopped_at" -lt 20 ] || fail "the interrupt came too late (run already finished)"

# ---- 2. the same sweep again, two runs in parallel: resume + the second LR ----
rc=0
"${SWEEP[@]}" --gpus 0,1 >"$TMP/sweep2.log" 2>&1 || rc=$?
[ "$rc" = 0 ] || fail "resumed sweep: exit $rc"
grep -q "resumed from .*step_0*$stopped_at at step $stopped_at" "$R1/train.log" || fail "lr 1e-3 did not resume from step $stopped_at"
grep -q "CUDA_VISIBLE_DEVICES=" "$R1/train.log" || fail "--gpus did not set CUDA_VISIBLE_DEVICES"
python3 - "$OUT" <<'PY' || fail "metrics after the resume (above)"
import json, sys
for lr in ("1e-3", "3e-3"):
    recs = [json.loads(l) for l in open(f"{sys.argv[1]}/lr_{lr}/metrics.jsonl")]
    steps = [r["step"] for r in recs if "loss" in r]
    assert steps == list(range(1, 21)), (lr, steps)                    # every step once, in order
    assert [r["step"] for r in recs if "val_loss" in r] == [8, 16, 20], lr
    assert all(r["loss"] is not None and r["loss"] > 0 for r in recs if "loss" in r), lr
PY
python3 - "$OUT/summary.csv" <<'PY' || fail "summary.csv (above)"
import csv, math, sys
rows = list(csv.DictReader(open(sys.argv[1])))
assert [r["lr"] for r in rows] == ["1e-3", "3e-3"], rows
assert all(r["status"] == "finished" for r in rows), rows
assert sorted(r["best"] for r in rows) == ["", "yes"], rows
best = min(rows, key=lambda r: float(r["best_val_loss"]))
assert best["best"] == "yes", rows
for r in rows:
    assert r["tokens"] == str(20 * 4 * 64) and r["steps"] == "20", r
    assert abs(float(r["best_val_ppl"]) - math.exp(float(r["best_val_loss"]))) < 1e-2 * float(r["best_val_ppl"]), r
    assert float(r["wall_s"]) > 0 and float(r["final_train_loss"]) < 7.7, r
PY
grep -q "(best)" "$OUT/summary.md" || fail "summary.md does not mark the best run"
cmp -s <(grep '^|' "$OUT/summary.md") <(grep '^|' "$TMP/sweep2.log") ||
  fail "the sweep should print summary.md at the end"

# ---- 3. again: nothing to do ----
attempts=$(grep -c '^=== .*sweep_lr' "$R1/train.log")
rc=0
"${SWEEP[@]}" >"$TMP/sweep3.log" 2>&1 || rc=$?
[ "$rc" = 0 ] || fail "third sweep: exit $rc"
[ "$(grep -c 'skipped: finished' "$TMP/sweep3.log")" = 2 ] || fail "finished runs were not skipped: $(cat "$TMP/sweep3.log")"
[ "$(grep -c '^=== .*sweep_lr' "$R1/train.log")" = "$attempts" ] || fail "a finished run was started again"
# Changed arguments (more steps) continue a finished run instead of skipping it.
rc=0
scripts/sweep_lr.sh --config configs/tiny.json --out "$OUT" --lrs 3e-3 --bin "$BIN" "${SETS[@]}" \
  --set training.max_steps=22 >"$TMP/sweep4.log" 2>&1 || rc=$?
[ "$rc" = 0 ] || fail "extended sweep: exit $rc"
grep -q "resumed from .*step_00000020" "$OUT/lr_3e-3/train.log" || fail "the extended run did not resume from step 20"
grep -q '^3e-3,finished,.*,22,' "$OUT/summary.csv" || fail "extended run: $(cat "$OUT/summary.csv")"

# ---- 1b. only the run is interrupted (kill -INT on its train.pid): the sweep stops too ----
ONE="$TMP/one"
scripts/sweep_lr.sh --config configs/tiny.json --out "$ONE" --lrs 1e-3,3e-3 --bin "$BIN" "${SETS[@]}" \
  >"$TMP/one.log" 2>&1 &
SWEEP_PID=$!
for _ in $(seq 1 3000); do
  if [ -s "$ONE/lr_1e-3/train.pid" ] && grep -q '"loss"' "$ONE/lr_1e-3/metrics.jsonl" 2>/dev/null; then break; fi
  kill -0 "$SWEEP_PID" 2>/dev/null || break
  sleep 0.02
done
[ -s "$ONE/lr_1e-3/train.pid" ] || fail "1b: the run never started"
kill -INT "$(cat "$ONE/lr_1e-3/train.pid")"
rc=0
wait "$SWEEP_PID" || rc=$?
SWEEP_PID=""
[ "$rc" = 130 ] && [ ! -e "$ONE/lr_3e-3" ] || fail "1b: exit $rc, or the second LR was started"
grep -q "stopped by signal 2" "$ONE/lr_1e-3/train.log" && ls "$ONE/lr_1e-3/checkpoints" | grep -q '^step_' ||
  fail "1b: the run did not checkpoint on SIGINT"

# ---- diverging runs do not break the sweep; failed runs are reported ----
DIV="$TMP/diverge"
rc=0
GALORE_INJECT_NAN_STEP=1 scripts/sweep_lr.sh --config configs/tiny.json --out "$DIV" --lrs 1e-2,1e-1 --bin "$BIN" \
  "${SETS[@]}" --set training.max_steps=3 --set training.nan_policy=stop >"$TMP/div.log" 2>&1 || rc=$?
[ "$rc" = 0 ] || fail "a sweep whose runs diverge should exit 0, got $rc"
grep -q '^0.01,diverged,\|^1e-2,diverged,' "$DIV/summary.csv" && grep -q '^1e-1,diverged,' "$DIV/summary.csv" ||
  fail "diverged runs: $(cat "$DIV/summary.csv")"
grep -q '^Best: none' "$DIV/summary.md" || fail "no best run among diverged runs: $(cat "$DIV/summary.md")"
rc=0
GALORE_INJECT_NAN_STEP=1 scripts/sweep_lr.sh --config configs/tiny.json --out "$DIV" --lrs 1e-2,1e-1 --bin "$BIN" \
  "${SETS[@]}" --set training.max_steps=3 --set training.nan_policy=stop >"$TMP/div2.log" 2>&1 || rc=$?
[ "$rc" = 0 ] && [ "$(grep -c 'skipped: diverged' "$TMP/div2.log")" = 2 ] || fail "diverged runs should be skipped: $(cat "$TMP/div2.log")"
FAILED="$TMP/failed"
rc=0
scripts/sweep_lr.sh --config configs/tiny.json --out "$FAILED" --lrs 1e-3 --bin "$BIN" "${SETS[@]}" \
  --set data.train_shards="$TMP/none_*.bin" >"$TMP/failed.log" 2>&1 || rc=$?
[ "$rc" = 1 ] || fail "a sweep with a failed run should exit 1, got $rc"
grep -q '^1e-3,failed,' "$FAILED/summary.csv" || fail "failed run: $(cat "$FAILED/summary.csv")"
echo "wf_sweep_run: OK"
