#!/usr/bin/env bash
# scripts/plot_runs on recorded metrics (tests/fixtures/metrics): PNGs come out
# (checked by their magic bytes) for a sweep directory, single files and
# --x tokens; bad metrics files give one-line errors naming the file and line.
set -euo pipefail
ROOT="${GALORE_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}"
cd "$ROOT"
TMP="$(mktemp -d "${TMPDIR:-/tmp}/wf_plot_runs.XXXXXX")"
trap 'rm -rf "$TMP"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
command -v gnuplot >/dev/null || fail "gnuplot not installed (scripts/setup.sh installs gnuplot-nox)"

is_png() {  # the 8-byte PNG signature and a non-trivial size
  [ "$(head -c 8 "$1" | od -An -tx1 | tr -d ' \n')" = "89504e470d0a1a0a" ] && [ "$(stat -c %s "$1")" -gt 2000 ]
}
PLOTS="loss val_ppl lr tokens_per_s overview"

# A whole sweep directory (every lr_* run, including a diverged one with NaN losses and
# a failed one without metrics) -> <dir>/plots by default.
cp -r tests/fixtures/metrics/sweep "$TMP/sweep"
rm -rf "$TMP/sweep/lr_0.1"  # no metrics.jsonl: plotting a run without one is an error (below)
scripts/plot_runs "$TMP/sweep" >"$TMP/list" || fail "plot_runs on a sweep exited $?"
for p in $PLOTS; do
  is_png "$TMP/sweep/plots/$p.png" || fail "$TMP/sweep/plots/$p.png is not a PNG"
  grep -q "plots/$p.png" "$TMP/list" || fail "plot_runs did not list $p.png"
done
[ -s "$TMP/sweep/plots/plot.gp" ] || fail "no plot.gp next to the plots"
for lr in 0.0001 0.0003 0.001 0.003 0.01 0.03 0.05; do
  grep -q "title 'lr_$lr'" "$TMP/sweep/plots/plot.gp" || fail "run lr_$lr is not labelled in plot.gp"
done
# NaN losses of the diverged run are left out of the data, not written as nan.
! grep -qi nan "$TMP"/sweep/plots/plot_data/*.tsv || fail "non-finite values reached the plot data"

# Files and run directories, --labels, --x tokens, -o.
scripts/plot_runs tests/fixtures/metrics/sweep/lr_0.001/metrics.jsonl tests/fixtures/metrics/sweep/lr_0.003 \
  --labels adamw,galore --x tokens -o "$TMP/cmp" >/dev/null || fail "plot_runs with --x tokens exited $?"
for p in $PLOTS; do is_png "$TMP/cmp/$p.png" || fail "$TMP/cmp/$p.png is not a PNG"; done
grep -q "title 'adamw'" "$TMP/cmp/plot.gp" && grep -q "title 'galore'" "$TMP/cmp/plot.gp" || fail "--labels not used"
grep -q "set xlabel 'tokens'" "$TMP/cmp/plot.gp" || fail "--x tokens not used"
# x = tokens: the first train point of lr_0.001 is step 1 = 1024 tokens.
head -3 "$TMP/cmp/plot_data/run0_loss.tsv" | grep -q '^1024	' || fail "--x tokens data does not start at 1024 tokens"

# A run killed mid-write (cut-off last line) still plots, with a warning naming the line.
scripts/plot_runs tests/fixtures/metrics/cut_off -o "$TMP/cut" >/dev/null 2>"$TMP/err" || fail "cut-off last line should only warn"
grep -q "cut_off/metrics.jsonl:5: skipping a cut-off last line" "$TMP/err" || fail "no warning for the cut-off line: $(cat "$TMP/err")"
is_png "$TMP/cut/loss.png" || fail "cut-off run: no loss.png"

# Bad metrics files: exit 1, one line, naming the file (and line).
expect_error() {  # PATTERN ARGS...
  local pat=$1 out rc=0
  shift
  out="$(scripts/plot_runs "$@" -o "$TMP/bad" 2>&1)" || rc=$?
  [ "$rc" -eq 1 ] || fail "plot_runs $*: exit $rc, want 1 (output: $out)"
  echo "$out" | grep -qF -- "$pat" || fail "plot_runs $*: expected '$pat' in: $out"
  [ "$(echo "$out" | wc -l)" -eq 1 ] || fail "plot_runs $*: expected one line, got: $out"
  echo "$out" | grep -q '^plot_runs: error: ' || fail "plot_runs $*: the error should start with 'plot_runs: error:'"
}
B=tests/fixtures/metrics/bad
expect_error "$TMP/missing.jsonl: no such file" "$TMP/missing.jsonl"
expect_error "$B/empty.jsonl: empty" "$B/empty.jsonl"
expect_error "$B/not_json.jsonl:3: not a JSON record" "$B/not_json.jsonl"
expect_error "$B/array_line.jsonl:2: a JSON list, not an object" "$B/array_line.jsonl"
expect_error "$B/no_numeric.jsonl:1: no numeric \"step\" field" "$B/no_numeric.jsonl"
expect_error "$B/string_loss.jsonl:2: \"loss\" is \"7.1\", expected a number" "$B/string_loss.jsonl"
expect_error "tests/fixtures/metrics/sweep/lr_0.1/metrics.jsonl: no such file" tests/fixtures/metrics/sweep/lr_0.1
printf '{"step": 1, "note": "x"}\n{"step": 2}\n' >"$TMP/nofields.jsonl"
expect_error "$TMP/nofields.jsonl: no record has a numeric \"loss\" or \"val_loss\"" "$TMP/nofields.jsonl"
printf 'PK\003\004\377\376binary\n' >"$TMP/binary.jsonl"
expect_error "$TMP/binary.jsonl:1: not UTF-8 text" "$TMP/binary.jsonl"
mkdir -p "$TMP/nothing"
expect_error "holds no run directories" "$TMP/nothing"
# A good file next to a bad one: still an error about the bad one.
expect_error "$B/empty.jsonl: empty" tests/fixtures/metrics/sweep/lr_0.001 "$B/empty.jsonl"
expect_error "--labels has 1 names but there are 2 runs" tests/fixtures/metrics/sweep/lr_0.001 \
  tests/fixtures/metrics/sweep/lr_0.003 --labels one
echo "wf_plot_runs: OK"
