# Shared setup of the tests/cli/ckpt_*.sh tests (sourced; not a test itself:
# ctest runs only *.sh). Call `ckpt_setup NAME` first. It gives:
#   ROOT, BIN     repository root (cwd) and the galore-* binaries
#   TMP           a private scratch folder, removed on exit (kept when KEEP=1)
#   PID           set it to a background trainer's pid: it is killed on exit
#   SH            private token shards of the sample validation file (~65k
#                 tokens in 4 shards), so a test does not depend on
#                 data/sample/shards being (re)made meanwhile
#   fail MSG      print FAIL: MSG and exit 1
#   train LOG ARGS...   galore-train --config $TMP/cfg.json ARGS > LOG; sets $rc
set -euo pipefail
ROOT="${GALORE_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"
BIN="${GALORE_BIN:-$ROOT/build/bin}"
cd "$ROOT"
PID=""

fail() { echo "FAIL: $*" >&2; exit 1; }

ckpt_cleanup() {
  if [ -n "$PID" ]; then kill -KILL "$PID" 2>/dev/null || true; fi
  [ -n "${KEEP:-}" ] || rm -rf "$TMP"
}

ckpt_setup() {
  TMP="$(mktemp -d "${TMPDIR:-/tmp}/$1.XXXXXX")"
  trap ckpt_cleanup EXIT
  SH="$TMP/shards"
  "$BIN/galore-tokenize" data/sample/c4-validation.00000-of-00001.json.gz --tokenizer data/sample/tokenizer.model \
    -o "$SH" --tokens-per-shard 20000 --quiet --threads 1 >"$TMP/tokenize.log" 2>&1 ||
    { cat "$TMP/tokenize.log" >&2; fail "could not tokenize the sample corpus"; }
}

train() {
  local log="$1"
  shift
  rc=0
  "$BIN/galore-train" --config "$TMP/cfg.json" "$@" >"$log" 2>&1 || rc=$?
}
