#!/usr/bin/env bash
# Tokenizes the bundled sample corpus (data/sample/*.json.gz, committed) with the
# committed sample tokenizer into data/sample/shards/ (git-ignored):
#   train_00000.bin .. train_00007.bin, val_00000.bin, manifest.json
# Idempotent and fast: a run that finds finished shards made with the same
# settings returns at once; changed inputs or tokenizer are re-tokenized.
# Concurrent runs are safe (galore-tokenize locks the output directory).
# Usage: bash data_tools/prepare_sample.sh [BIN_DIR]   (default: $GALORE_BIN, else build/bin)
set -euo pipefail
BIN="${1:-${GALORE_BIN:-}}"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
if [ -z "$BIN" ]; then BIN="$ROOT/build/bin"; fi
if [ ! -x "$BIN/galore-tokenize" ]; then
  echo "error: $BIN/galore-tokenize not found; build first (bash scripts/setup.sh) or pass the bin directory" >&2
  exit 1
fi
BIN="$(cd "$BIN" && pwd)"
cd "$ROOT"
# 262144 tokens per shard gives 7 full train shards + 1 short one, and one val shard.
"$BIN/galore-tokenize" --quiet --overwrite \
  --tokenizer data/sample/tokenizer.model \
  --output data/sample/shards \
  --tokens-per-shard 262144 \
  --val-input 'data/sample/c4-validation.*.json.gz' \
  'data/sample/c4-train.*.json.gz'
