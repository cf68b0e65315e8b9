#!/usr/bin/env bash
# Learning-rate sweep: runs one galore-train config at several learning rates,
# one run directory each, then writes a summary table (docs/WORKFLOW.md).
#
#   scripts/sweep_lr.sh --config configs/tiny.json --out runs/sweep_tiny --lrs 1e-3,3e-3 [--set KEY=VALUE ...]
#   scripts/sweep_lr.sh --config configs/llama60m.json --out runs/sweep60m --lr-range 1e-4:1e-2:5 --gpus 0,1
#   scripts/sweep_lr.sh --summarize runs/sweep_tiny          (just rewrite summary.md / summary.csv)
#
# Each learning rate gets <out>/lr_<value>/ as its logging.dir (metrics.jsonl,
# train.log, sweep_status.json, sweep_args) with checkpoints in
# <out>/lr_<value>/checkpoints. Every run starts with --resume auto, so running
# the same command again continues unfinished runs from their newest checkpoint
# and skips finished (and diverged) ones. Runs go one after another, or with
# --gpus 0,1 one per GPU in parallel (CUDA_VISIBLE_DEVICES=<id>).
#
# Ctrl-C / SIGTERM: every running galore-train gets SIGTERM, writes a checkpoint
# and stops; the summary is written and the sweep exits 128+signal. A run that is
# interrupted on its own (e.g. kill -INT <pid in lr_X/train.pid>) stops the sweep
# from starting further runs. A diverged or failed run does not stop the sweep.
#
# Exit code: 0 all runs finished or diverged; 1 some run failed; 2 bad arguments;
# 128+signal when interrupted.
set -uo pipefail
# The whole script is one { ... } block, so bash parses it completely before
# running: editing this file during a long sweep cannot derail the sweep.
{
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
LIB="$ROOT/scripts/lib_sweep.py"
PY="${PYTHON:-python3}"

usage() {
  awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "${BASH_SOURCE[0]}"
  cat <<'EOF'

Options:
  --config FILE          galore-train config (required)
  --out DIR              sweep directory (required)
  --lrs A,B,...          learning rates, e.g. 1e-3,3e-3
  --lr-range LO:HI:N     N log-spaced learning rates from LO to HI (3 significant digits)
  --set KEY=VALUE        passed to every run (repeatable); not optimizer.lr, logging.dir, checkpoint.dir
  --gpus 0,1             one run per GPU at a time, in parallel
  --bin DIR              galore-train's directory (default: $GALORE_BIN, else build/bin)
  --explode-ratio R      diverged when last train loss > R x its minimum (default 2)
  --retry-diverged       rerun diverged runs too (from their newest checkpoint)
  --dry-run              print what would run and exit
  --summarize DIR        only (re)write DIR/summary.md and DIR/summary.csv
EOF
}

die() {
  echo "sweep_lr: error: $*" >&2
  exit 2
}

CONFIG="" OUT="" LRS_SPEC="" RANGE_SPEC="" GPUS_SPEC="" BIN="" SUMMARIZE="" EXPLODE=2 RETRY_DIVERGED=0 DRY=0
SETS=()
while [ $# -gt 0 ]; do
  case "$1" in
    --config) CONFIG="${2:-}"; shift 2 || die "--config needs a file" ;;
    --out) OUT="${2:-}"; shift 2 || die "--out needs a directory" ;;
    --lrs) LRS_SPEC="${2:-}"; shift 2 || die "--lrs needs a list, e.g. 1e-3,3e-3" ;;
    --lr-range) RANGE_SPEC="${2:-}"; shift 2 || die "--lr-range needs LO:HI:N, e.g. 1e-4:1e-2:5" ;;
    --gpus) GPUS_SPEC="${2:-}"; shift 2 || die "--gpus needs a list, e.g. 0,1" ;;
    --set) [ $# -ge 2 ] || die "--set needs KEY=VALUE"; SETS+=("$2"); shift 2 ;;
    --set=*) SETS+=("${1#--set=}"); shift ;;
    --bin) BIN="${2:-}"; shift 2 || die "--bin needs a directory" ;;
    --explode-ratio) EXPLODE="${2:-}"; shift 2 || die "--explode-ratio needs a number" ;;
    --retry-diverged) RETRY_DIVERGED=1; shift ;;
    --dry-run) DRY=1; shift ;;
    --summarize) SUMMARIZE="${2:-}"; shift 2 || die "--summarize needs the sweep directory" ;;
    -h|--help) usage; exit 0 ;;
    *) die "unknown argument '$1' (see --help)" ;;
  esac
done

command -v "$PY" >/dev/null || die "$PY not found; install python3 (bash scripts/setup.sh)"

if [ -n "$SUMMARIZE" ]; then
  exec "$PY" "$LIB" summarize "$SUMMARIZE" --explode-ratio "$EXPLODE"
fi

# ---- arguments ----
[ -n "$CONFIG" ] || die "--config is required (e.g. --config configs/tiny.json)"
[ -f "$CONFIG" ] || die "--config $CONFIG: no such file"
[ -n "$OUT" ] || die "--out is required (the sweep directory, e.g. runs/sweep_tiny)"
if [ -n "$LRS_SPEC" ] && [ -n "$RANGE_SPEC" ]; then die "give --lrs or --lr-range, not both"; fi
if [ -n "$LRS_SPEC" ]; then
  LRS_TEXT="$("$PY" "$LIB" lr-list "$LRS_SPEC")" || exit 2
elif [ -n "$RANGE_SPEC" ]; then
  LRS_TEXT="$("$PY" "$LIB" lr-range "$RANGE_SPEC")" || exit 2
else
  die "give the learning rates: --lrs 1e-3,3e-3 or --lr-range 1e-4:1e-2:5"
fi
mapfile -t LRS <<<"$LRS_TEXT"
for s in "${SETS[@]}"; do
  case "$s" in
    *=*) ;;
    *) die "--set $s: expected KEY=VALUE, e.g. --set training.max_steps=100" ;;
  esac
  case "${s%%=*}" in
    optimizer.lr|logging.dir|checkpoint.dir) die "--set $s: the sweep sets ${s%%=*} for every run; leave it out" ;;
  esac
done
SLOTS=("")
if [ -n "$GPUS_SPEC" ]; then
  IFS=, read -r -a SLOTS <<<"$GPUS_SPEC"
  [ ${#SLOTS[@]} -gt 0 ] || die "--gpus $GPUS_SPEC: no GPU ids"
  for g in "${SLOTS[@]}"; do [[ "$g" =~ ^[0-9]+$ ]] || die "--gpus $GPUS_SPEC: '$g' is not a GPU index"; done
fi
[[ "$EXPLODE" =~ ^[0-9]+(\.[0-9]*)?$ ]] && awk -v r="$EXPLODE" 'BEGIN { exit !(r > 1) }' ||
  die "--explode-ratio $EXPLODE: give a number > 1 (default 2)"
BIN="${BIN:-${GALORE_BIN:-$ROOT/build/bin}}"
TRAIN="$BIN/galore-train"
[ -x "$TRAIN" ] || die "$TRAIN not found; build first (bash scripts/setup.sh) or pass --bin DIR"

# The experiment's signature: a run whose sweep_args differ is continued, not skipped.
SIG=(--config "$CONFIG")
for s in "${SETS[@]}"; do SIG+=(--set "$s"); done

run_dir() { echo "$OUT/lr_$1"; }
run_args() {  # LR RUN -> galore-train arguments, one per line
  printf '%s\n' "${SIG[@]}" --set "optimizer.lr=$1" --set "logging.dir=$2" --set "checkpoint.dir=$2/checkpoints" \
    --resume auto
}

# Check the config and overrides once before starting anything (errors name the key).
if ! check_out="$("$TRAIN" "${SIG[@]}" --set "optimizer.lr=${LRS[0]}" --print-config 2>&1 >/dev/null)"; then
  echo "$check_out" >&2
  echo "sweep_lr: error: the config or a --set is invalid (above); nothing was started" >&2
  exit 2
fi

if [ "$DRY" = 0 ]; then mkdir -p "$OUT" || die "--out $OUT: cannot create it"; fi
LOG="$OUT/sweep.log"
say() {
  echo "sweep_lr: $*" >&2
  [ "$DRY" = 1 ] || echo "$(date '+%F %T') $*" >>"$LOG"
}

# Decides whether a run is skipped: prints a reason and returns 0 to skip.
skip_reason() {
  local run=$1 st pid
  # An earlier sweep that was killed outright may have left its galore-train running.
  if [ -s "$run/train.pid" ]; then
    pid="$(cat "$run/train.pid")"
    if kill -0 "$pid" 2>/dev/null && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q "galore-train.*logging.dir=$run "; then
      echo "still running as pid $pid (from an earlier sweep); stop it or wait for it"
      return 0
    fi
  fi
  [ -f "$run/sweep_status.json" ] || return 1
  if [ ! -f "$run/sweep_args" ] || ! cmp -s "$run/sweep_args" <(printf '%s\n' "${SIG[@]}"); then
    return 1
  fi
  st="$("$PY" "$LIB" run-status "$run" --explode-ratio "$EXPLODE")" || return 1
  case "$st" in
    finished) echo "finished"; return 0 ;;
    diverged) [ "$RETRY_DIVERGED" = 1 ] && return 1; echo "diverged (--retry-diverged reruns it)"; return 0 ;;
  esac
  return 1
}

json_str() { printf '"%s"' "$(printf '%s' "$1" | sed 's/\\/\\\\/g; s/"/\\"/g')"; }
prev_wall_total() {  # total wall seconds of earlier attempts, from sweep_status.json
  local v
  v="$(grep -o '"wall_total_s": *[0-9.]*' "$1/sweep_status.json" 2>/dev/null | grep -o '[0-9.]*$')"
  echo "${v:-0}"
}
write_status() {  # RUN LR STATE EXIT GPU WALL WALL_TOTAL
  local tmp="$1/sweep_status.json.tmp"
  printf '{"lr": %s, "state": %s, "exit_code": %s, "gpu": %s, "wall_s": %s, "wall_total_s": %s, "updated": %s}\n' \
    "$(json_str "$2")" "$(json_str "$3")" "$4" "$(json_str "$5")" "$6" "$7" "$(json_str "$(date -Is)")" >"$tmp" &&
    mv "$tmp" "$1/sweep_status.json"
}
now() { echo "$EPOCHREALTIME"; }
fsub() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", a - b }'; }
fadd() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", a + b }'; }

declare -A SLOT_PID=() RUN_OF=() LR_OF=() SLOT_OF=() T0_OF=() TOTAL0_OF=()
STOP_SIG="" STOP_LAUNCH=0 WORST=0 N_STARTED=0

on_signal() {
  STOP_SIG=$1
  say "got SIG$1: stopping ${#RUN_OF[@]} running run(s) (they checkpoint; the same command resumes them)"
  local pid
  for pid in "${!RUN_OF[@]}"; do kill -TERM "$pid" 2>/dev/null; done
}
# If this script dies unexpectedly, its runs must not go on unsupervised.
trap 'for p in "${!RUN_OF[@]}"; do kill -TERM "$p" 2>/dev/null; done' EXIT
trap 'on_signal INT' INT
trap 'on_signal TERM' TERM
trap 'on_signal HUP' HUP

free_slot() {
  local i
  for i in "${!SLOTS[@]}"; do
    if [ -z "${SLOT_PID[$i]:-}" ]; then echo "$i"; return 0; fi
  done
  return 1
}

launch() {  # SLOT LR
  local slot=$1 lr=$2 run gpu pid
  run="$(run_dir "$lr")"
  gpu="${SLOTS[$slot]}"
  mkdir -p "$run" || die "cannot create $run"
  mapfile -t args < <(run_args "$lr" "$run")
  local total0
  total0="$(prev_wall_total "$run")"
  printf '%s\n' "${SIG[@]}" >"$run/sweep_args"
  write_status "$run" "$lr" running null "$gpu" null "$total0"
  {
    echo "=== $(date '+%F %T') sweep_lr: lr=$lr${gpu:+ CUDA_VISIBLE_DEVICES=$gpu}"
    echo "=== $TRAIN ${args[*]}"
  } >>"$run/train.log"
  if [ -n "$gpu" ]; then
    CUDA_VISIBLE_DEVICES="$gpu" "$TRAIN" "${args[@]}" >>"$run/train.log" 2>&1 &
  else
    "$TRAIN" "${args[@]}" >>"$run/train.log" 2>&1 &
  fi
  pid=$!
  echo "$pid" >"$run/train.pid"
  SLOT_PID[$slot]=$pid
  RUN_OF[$pid]=$run
  LR_OF[$pid]=$lr
  SLOT_OF[$pid]=$slot
  T0_OF[$pid]="$(now)"
  TOTAL0_OF[$pid]=$total0
  N_STARTED=$((N_STARTED + 1))
  say "lr=$lr started${gpu:+ on GPU $gpu} (pid $pid, log $run/train.log)"
}

finish() {  # PID EXIT
  local pid=$1 rc=$2 run lr wall st
  run="${RUN_OF[$pid]}"
  lr="${LR_OF[$pid]}"
  wall="$(fsub "$(now)" "${T0_OF[$pid]}")"
  write_status "$run" "$lr" exited "$rc" "${SLOTS[${SLOT_OF[$pid]}]}" "$wall" "$(fadd "${TOTAL0_OF[$pid]}" "$wall")"
  rm -f "$run/train.pid"
  unset "SLOT_PID[${SLOT_OF[$pid]}]" "RUN_OF[$pid]" "LR_OF[$pid]" "SLOT_OF[$pid]" "T0_OF[$pid]" "TOTAL0_OF[$pid]"
  st="$("$PY" "$LIB" run-status "$run" --explode-ratio "$EXPLODE" 2>/dev/null)"
  say "lr=$lr ${st:-unknown} (exit $rc, ${wall}s)"
  case "$rc" in
    129|130|143) STOP_LAUNCH=1; [ "$WORST" = 0 ] && WORST=$rc ;;
    0) ;;
    *) [ "$st" = diverged ] || { [ "$WORST" = 0 ] && WORST=1; } ;;
  esac
}

reap_one() {  # waits for one run to end; returns 1 when none is running
  local done_pid rc
  while [ ${#RUN_OF[@]} -gt 0 ]; do
    done_pid=""
    wait -n -p done_pid
    rc=$?
    # (a trapped signal interrupts wait and leaves done_pid unset: wait again)
    if [ -n "${done_pid:-}" ] && [ -n "${RUN_OF[$done_pid]:-}" ]; then
      finish "$done_pid" "$rc"
      return 0
    fi
  done
  return 1
}

say "sweep of $CONFIG over lr = ${LRS[*]} -> $OUT${GPUS_SPEC:+ (GPUs $GPUS_SPEC)}"
for lr in "${LRS[@]}"; do
  [ -z "$STOP_SIG" ] && [ "$STOP_LAUNCH" = 0 ] || break
  run="$(run_dir "$lr")"
  if why="$(skip_reason "$run")"; then
    say "lr=$lr skipped: $why"
    continue
  fi
  if [ "$DRY" = 1 ]; then
    mapfile -t args < <(run_args "$lr" "$run")
    echo "$TRAIN ${args[*]}"
    continue
  fi
  while ! slot="$(free_slot)"; do reap_one || break; done
  [ -z "$STOP_SIG" ] && [ "$STOP_LAUNCH" = 0 ] || break
  launch "$slot" "$lr"
done
[ "$DRY" = 1 ] && exit 0
while reap_one; do :; done
trap - INT TERM HUP

if [ "$STOP_LAUNCH" = 1 ] && [ -z "$STOP_SIG" ]; then
  say "a run was interrupted: not starting the remaining runs; the same command continues the sweep"
fi
"$PY" "$LIB" summarize "$OUT" --explode-ratio "$EXPLODE" || WORST=1
say "summary: $OUT/summary.md, $OUT/summary.csv"
case "$STOP_SIG" in
  INT) exit 130 ;;
  TERM) exit 143 ;;
  HUP) exit 129 ;;
esac
exit "$WORST"
}
