#!/usr/bin/env bash
# The tools default OMP_WAIT_POLICY to PASSIVE (src/core/openmp_env.h: spinning
# OpenMP threads of two processes sharing the cores starve each other) by
# re-executing themselves with it set, same pid; an explicit value is kept.
set -euo pipefail
BIN="${GALORE_BIN:?run through ctest}"
cd "${GALORE_ROOT:-.}"
OUT=$(mktemp -d)
PID=""
trap '[ -n "$PID" ] && kill -KILL "$PID" 2>/dev/null; rm -rf "$OUT"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

# policy_of VALUE: the OMP_WAIT_POLICY a running galore-train has when started with
# OMP_WAIT_POLICY=VALUE ("" = unset)
policy_of() {
  local dir="$OUT/run_${1:-unset}"
  if [ -n "$1" ]; then set -- env OMP_WAIT_POLICY="$1"; else set -- env -u OMP_WAIT_POLICY; fi
  "$@" "$BIN/galore-train" --config configs/tiny.json --synthetic-data --set training.device=cpu \
    --set training.max_steps=100000 --set logging.every=1 --set logging.dir="$dir" >"$dir.log" 2>&1 &
  PID=$!
  for _ in $(seq 1 300); do
    grep -q '"loss"' "$dir/metrics.jsonl" 2>/dev/null && break
    kill -0 "$PID" 2>/dev/null || { cat "$dir.log" >&2; fail "galore-train exited early"; }
    sleep 0.05
  done
  tr '\0' '\n' <"/proc/$PID/environ" | sed -n 's/^OMP_WAIT_POLICY=//p'
  kill -KILL "$PID"
  wait "$PID" 2>/dev/null || true
  PID=""
}
[ "$(policy_of "")" = PASSIVE ] || fail "with OMP_WAIT_POLICY unset, galore-train did not run with PASSIVE"
[ "$(policy_of ACTIVE)" = ACTIVE ] || fail "an explicit OMP_WAIT_POLICY=ACTIVE was not kept"
echo "omp_wait_policy: ok"
