#!/usr/bin/env bash
# Rebuilds the committed sample corpus and tokenizer (maintainers only; the
# results are committed, so users never need this):
#   data/sample/c4-{train,validation}.*.json.gz  from the python3.11-doc sources
#   data/sample/tokenizer.{model,vocab}          sentencepiece BPE, vocab 2048, byte fallback
# The corpus is byte-identical on every run. The tokenizer's pieces are too,
# but its file (and hash) records --threads, so pass the same value (2).
# Afterwards run data_tools/prepare_sample.sh to re-make the shards.
# Usage: bash data_tools/make_sample.sh [BIN_DIR]   (default: $GALORE_BIN, else build/bin)
set -euo pipefail
BIN="${1:-${GALORE_BIN:-}}"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
if [ -z "$BIN" ]; then BIN="$ROOT/build/bin"; fi
BIN="$(cd "$BIN" && pwd)"
cd "$ROOT"
python3 data_tools/make_sample_corpus.py --out data/sample
"$BIN/galore-spm-train" --vocab-size 2048 --model-type bpe --byte-fallback --threads 2 \
  --output data/sample/tokenizer 'data/sample/c4-train.*.json.gz'
