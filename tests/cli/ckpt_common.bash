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
#   ckpt_micro_config SCHEDULE MAX_STEPS EVERY KEEP LOG_DIR   writes $TMP/cfg.json (below)
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

# ckpt_micro_config SCHEDULE MAX_STEPS EVERY KEEP LOG_DIR: the 1-layer, 32-wide
# model on $SH that the crash, resume and storage tests train (adamw, lr 1e-3,
# one 16-token sequence per step, 1 CPU thread) into $TMP/cfg.json. SCHEDULE
# is the schedule's JSON object; EVERY and KEEP are checkpoint.every/keep_last.
ckpt_micro_config() {
  cat >"$TMP/cfg.json" <<EOF
{
  "model": {"vocab_size": 2048, "hidden_size": 32, "intermediate_size": 64, "num_layers": 1, "num_heads": 2,
            "max_seq_len": 16},
  "optimizer": {"name": "adamw", "lr": 1e-3},
  "schedule": $1,
  "training": {"max_steps": $2, "seq_len": 16, "micro_batch_size": 1, "total_batch_size": 1,
               "device": "cpu", "threads": 1},
  "data": {"train_shards": ["$SH/train_*.bin"], "val_shards": [],
           "tokenizer": "data/sample/tokenizer.model"},
  "checkpoint": {"every": $3, "keep_last": $4},
  "eval": {"every": 0, "batches": 1},
  "logging": {"dir": "$5", "every": 1}
}
EOF
}
