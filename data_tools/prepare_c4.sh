#!/usr/bin/env bash
# Tokenizes downloaded C4 (allenai/c4, "en") into the shards the paper configs
# read: data/c4/shards/train_*.bin, data/c4/shards/val_*.bin (+ manifest.json).
# It never downloads anything; see docs/DATA.md for getting the files.
#
# Usage: bash data_tools/prepare_c4.sh C4_DIR [TOKENIZER] [OUT_DIR]
#   C4_DIR     folder with c4-train.NNNNN-of-01024.json.gz (any subset) and,
#              optionally, c4-validation.NNNNN-of-00008.json.gz
#   TOKENIZER  sentencepiece .model (default data/c4/tokenizer.model)
#   OUT_DIR    default data/c4/shards
# Environment: GALORE_BIN (default build/bin), TOKENS_PER_SHARD (default 100000000),
#   THREADS (default all cores), VAL_FRACTION (used only without validation files, default 0.0005).
# Re-running resumes: finished shards are kept, an interrupted run continues.
set -euo pipefail
if [ $# -lt 1 ]; then sed -n '2,15p' "$0" >&2; exit 2; fi
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
C4_DIR="$1"
TOKENIZER="${2:-$ROOT/data/c4/tokenizer.model}"
OUT="${3:-$ROOT/data/c4/shards}"
BIN="${GALORE_BIN:-$ROOT/build/bin}"
[ -x "$BIN/galore-tokenize" ] || { echo "error: $BIN/galore-tokenize not found; build first (bash scripts/setup.sh)" >&2; exit 1; }
[ -d "$C4_DIR" ] || { echo "error: $C4_DIR is not a directory of downloaded C4 json.gz files (see docs/DATA.md)" >&2; exit 1; }
if [ ! -f "$TOKENIZER" ]; then
  cat >&2 <<MSG
error: tokenizer $TOKENIZER not found. Either copy an existing sentencepiece model there
(the GaLore paper used T5's spiece.model, vocab 32000), or train one on part of C4:
  $BIN/galore-spm-train --vocab-size 32000 --model-type bpe --byte-fallback \\
      --max-samples 2000000 --output ${TOKENIZER%.model} '$C4_DIR/c4-train.0000[0-3]-of-01024.json.gz'
MSG
  exit 1
fi
shopt -s nullglob
train=("$C4_DIR"/c4-train.*.json.gz)
val=("$C4_DIR"/c4-validation.*.json.gz)
if [ ${#train[@]} -eq 0 ]; then
  echo "error: no c4-train.*.json.gz in $C4_DIR (see docs/DATA.md for downloading C4)" >&2
  exit 1
fi
args=(--tokenizer "$TOKENIZER" --output "$OUT" --tokens-per-shard "${TOKENS_PER_SHARD:-100000000}"
      --threads "${THREADS:-0}")
if [ ${#val[@]} -gt 0 ]; then
  args+=(--val-input "$C4_DIR/c4-validation.*.json.gz")
else
  echo "prepare_c4: no c4-validation files; holding out a ${VAL_FRACTION:-0.0005} fraction of train documents" >&2
  args+=(--val-fraction "${VAL_FRACTION:-0.0005}")
fi
echo "prepare_c4: ${#train[@]} train files, ${#val[@]} validation files -> $OUT" >&2
exec "$BIN/galore-tokenize" "${args[@]}" "$C4_DIR/c4-train.*.json.gz"
