#!/usr/bin/env bash
# scripts/sweep_lr.sh --summarize on recorded metrics (tests/fixtures/metrics/sweep):
# every status (finished, interrupted, failed, and diverged by NaN, by explosion
# and by nan_policy=stop), a resumed run's stale records dropped, the best run
# (lowest best val loss among runs that did not diverge), summary.md + summary.csv.
# Also the argument checks of sweep_lr.sh that need no training.
set -euo pipefail
ROOT="${GALORE_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}"
cd "$ROOT"
TMP="$(mktemp -d "${TMPDIR:-/tmp}/wf_sweep_summary.XXXXXX")"
trap 'rm -rf "$TMP"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

cp -r tests/fixtures/metrics/sweep "$TMP/sweep"
scripts/sweep_lr.sh --summarize "$TMP/sweep" >"$TMP/out.md" || fail "--summarize exited $?"
[ -s "$TMP/sweep/summary.md" ] || fail "no summary.md"
[ -s "$TMP/sweep/summary.csv" ] || fail "no summary.csv"
cmp -s "$TMP/out.md" "$TMP/sweep/summary.md" || fail "--summarize should print summary.md"

# Check the CSV field by field (python3 csv handles the quoted notes).
python3 - "$TMP/sweep/summary.csv" <<'PY' || fail "summary.csv contents (above)"
import csv, sys
rows = {r["lr"]: r for r in csv.DictReader(open(sys.argv[1]))}
want = {"0.0001": "interrupted", "0.0003": "finished", "0.001": "finished", "0.003": "finished",
        "0.01": "diverged", "0.03": "diverged", "0.05": "diverged", "0.1": "failed"}
errors = []
def check(cond, msg):
    if not cond:
        errors.append(msg)
check(list(rows) == list(want), f"rows in lr order: {list(rows)}")
for lr, st in want.items():
    check(rows.get(lr, {}).get("status") == st, f"lr {lr}: status {rows.get(lr, {}).get('status')!r}, want {st!r}")
best = [lr for lr, r in rows.items() if r["best"] == "yes"]
# lr 0.03 has the lowest val loss (3.5) but exploded, so it cannot be the best.
check(best == ["0.001"], f"best run {best}, want ['0.001']")
r = rows["0.001"]
check(r["best_val_loss"] == "4.825600" and r["best_val_step"] == "100", f"0.001 best val {r['best_val_loss']} @ {r['best_val_step']}")
check(abs(float(r["best_val_ppl"]) - 124.6612) < 1e-3, f"0.001 ppl {r['best_val_ppl']}")
check(r["final_train_loss"] == "4.653600" and r["tokens"] == "102400" and r["steps"] == "100", f"0.001 row {r}")
# The resumed run: the stale segment (loss 5.5555 at step 70, val loss 3.0 at step 60) is dropped.
r = rows["0.003"]
check(r["best_val_loss"] == "4.967200", f"0.003 best val {r['best_val_loss']} (the stale 3.0 must be dropped)")
check(r["final_train_loss"] == "4.795800", f"0.003 final loss {r['final_train_loss']}")
check("non-finite" in rows["0.01"]["note"] and rows["0.01"]["final_train_loss"] == "nan", f"0.01 {rows['0.01']}")
check("exploded" in rows["0.03"]["note"], f"0.03 note {rows['0.03']['note']!r}")
check("nan_policy=stop" in rows["0.05"]["note"] and "step 23" in rows["0.05"]["note"], f"0.05 note {rows['0.05']['note']!r}")
check("SIGINT" in rows["0.0001"]["note"], f"0.0001 note {rows['0.0001']['note']!r}")
check("exit code 1" in rows["0.1"]["note"], f"0.1 note {rows['0.1']['note']!r}")
for e in errors:
    print("  " + e)
sys.exit(1 if errors else 0)
PY
grep -q '| \*\*0.001\*\* (best) | finished |' "$TMP/sweep/summary.md" || fail "summary.md does not mark lr 0.001 as best"
grep -q '^Best: lr = 0.001' "$TMP/sweep/summary.md" || fail "summary.md has no 'Best:' line"

# A stricter explosion ratio turns a slowly rising run into diverged; a looser one keeps 0.03.
scripts/sweep_lr.sh --summarize "$TMP/sweep" --explode-ratio 3 >/dev/null
grep -q '^0.03,finished,' "$TMP/sweep/summary.csv" || fail "--explode-ratio 3: lr 0.03 (9.3 < 3 x 3.93) should be finished"
grep -q '^0.03,finished,yes,' "$TMP/sweep/summary.csv" || fail "--explode-ratio 3: lr 0.03 has the best val loss then"

# No status file: the newest checkpoint's reason decides (final -> finished).
mkdir -p "$TMP/plain/lr_0.002/checkpoints/step_00000100"
cp tests/fixtures/metrics/sweep/lr_0.001/metrics.jsonl "$TMP/plain/lr_0.002/"
echo '{"step": 100, "reason": "final"}' >"$TMP/plain/lr_0.002/checkpoints/step_00000100/trainer_state.json"
touch "$TMP/plain/lr_0.002/checkpoints/step_00000100/COMPLETE"
mkdir -p "$TMP/plain/lr_0.004"
head -n 3 tests/fixtures/metrics/sweep/lr_0.001/metrics.jsonl >"$TMP/plain/lr_0.004/metrics.jsonl"
scripts/sweep_lr.sh --summarize "$TMP/plain" >/dev/null
grep -q '^0.002,finished,' "$TMP/plain/summary.csv" || fail "a run with a final checkpoint should be finished"
grep -q '^0.004,interrupted,' "$TMP/plain/summary.csv" || fail "a run without a final checkpoint should be interrupted"

# Errors: one line naming the problem, non-zero exit.
expect_error() {  # PATTERN CMD...
  local pat=$1 out rc=0
  shift
  out="$("$@" 2>&1)" || rc=$?
  [ "$rc" -ne 0 ] || fail "'$*' should fail"
  echo "$out" | grep -q -- "$pat" || fail "'$*': expected '$pat' in: $out"
  [ "$(echo "$out" | wc -l)" -le 2 ] || fail "'$*': expected a one-line error, got: $out"
}
mkdir -p "$TMP/empty"
expect_error "holds no run directories" scripts/sweep_lr.sh --summarize "$TMP/empty"
expect_error "no such sweep directory" scripts/sweep_lr.sh --summarize "$TMP/nope"
expect_error "not a positive number" scripts/sweep_lr.sh --config configs/tiny.json --out "$TMP/x" --lrs 1e-3,abc
expect_error "listed twice" scripts/sweep_lr.sh --config configs/tiny.json --out "$TMP/x" --lrs 1e-3,0.001
expect_error "LOW:HIGH:COUNT" scripts/sweep_lr.sh --config configs/tiny.json --out "$TMP/x" --lr-range 1e-4:1e-2
expect_error "not both" scripts/sweep_lr.sh --config configs/tiny.json --out "$TMP/x" --lrs 1e-3 --lr-range 1e-4:1e-2:3
expect_error "give the learning rates" scripts/sweep_lr.sh --config configs/tiny.json --out "$TMP/x"
expect_error "no such file" scripts/sweep_lr.sh --config configs/nope.json --out "$TMP/x" --lrs 1e-3
expect_error "the sweep sets optimizer.lr" scripts/sweep_lr.sh --config configs/tiny.json --out "$TMP/x" --lrs 1e-3 --set optimizer.lr=1
expect_error "expected KEY=VALUE" scripts/sweep_lr.sh --config configs/tiny.json --out "$TMP/x" --lrs 1e-3 --set foo
expect_error "not a GPU index" scripts/sweep_lr.sh --config configs/tiny.json --out "$TMP/x" --lrs 1e-3 --gpus 0,a
expect_error "unknown argument" scripts/sweep_lr.sh --frobnicate
[ ! -e "$TMP/x" ] || fail "a rejected sweep should create nothing"

# --lr-range: 5 log-spaced values, 3 significant digits.
got="$(python3 scripts/lib_sweep.py lr-range 1e-4:1e-2:5 | tr '\n' ' ')"
[ "$got" = "0.0001 0.000316 0.001 0.00316 0.01 " ] || fail "lr-range 1e-4:1e-2:5 gave '$got'"
echo "wf_sweep_summary: OK"
