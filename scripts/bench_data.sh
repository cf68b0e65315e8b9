#!/usr/bin/env bash
# Data pipeline throughput on the bundled sample corpus (a benchmark, not a test):
#   - galore-tokenize MB/s of uncompressed C4 text with 1 thread and with all cores
#   - TrainLoader windows/s (seq_len 256, batch 16) with and without the prefetch thread
# Each number is the best of REPEAT runs (default 3). Paste the output into
# docs/PERFORMANCE.md "## Data pipeline".
# Usage: bash scripts/bench_data.sh [BIN_DIR]   (default: $GALORE_BIN, else build/bin)
set -euo pipefail
BIN="${1:-${GALORE_BIN:-}}"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
if [ -z "$BIN" ]; then BIN="$ROOT/build/bin"; fi
BIN="$(cd "$BIN" && pwd)"
REPEAT="${REPEAT:-3}"
cd "$ROOT"
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
bash data_tools/prepare_sample.sh "$BIN" >/dev/null 2>&1

cores=$(nproc)
cpu=$(grep -m1 "model name" /proc/cpuinfo | sed 's/.*: //')
echo "date:    $(date -u +%Y-%m-%d)"
echo "commit:  $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
echo "machine: $cores cores ($cpu), load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "command: bash scripts/bench_data.sh"

best() { sort -g | tail -1; }
# threads -> "wall_MB/s cpu_MB/s": MB of text per wall second (best run) and per
# CPU second (user+sys of that run; robust when other jobs share the cores).
tokenize_mbs() {
  for _ in $(seq "$REPEAT"); do
    /usr/bin/time -f "cpu %U %S" -o "$TMP/time" "$BIN/galore-tokenize" -q --overwrite --threads "$1" \
      --tokenizer data/sample/tokenizer.model -o "$TMP/shards" --tokens-per-shard 262144 \
      --val-input 'data/sample/c4-validation.*.json.gz' 'data/sample/c4-train.*.json.gz' 2>"$TMP/log"
    wall=$(sed -n 's/.*(\([0-9.]*\) MB\/s).*/\1/p' "$TMP/log")
    cpu=$(awk '/^cpu/ {print $2 + $3}' "$TMP/time")
    echo "$wall $(python3 -c "print(round($text_mb / $cpu, 2))")"
    rm -rf "$TMP/shards"
  done | sort -g | tail -1
}
text_mb=$(python3 -c "import gzip,glob; print(round(sum(len(gzip.open(f).read()) for f in glob.glob('data/sample/c4-*.json.gz'))/1e6,2))")
read -r one one_cpu <<<"$(tokenize_mbs 1)"
read -r all all_cpu <<<"$(tokenize_mbs "$cores")"
echo "tokenize (sample corpus, $text_mb MB of json text, sentencepiece BPE 2048):"
echo "  1 thread:   $one MB/s wall, $one_cpu MB per CPU-second"
echo "  $cores threads:  $all MB/s wall, $all_cpu MB per CPU-second (all threads' CPU time)"

loader() {  # prefetch -> windows/s
  for _ in $(seq "$REPEAT"); do
    "$BIN/galore-shard-info" --bench 'data/sample/shards/train_*.bin' --seq-len 256 --batch 16 \
      --prefetch "$1" --seconds 2 | sed -n 's/loader: \([0-9]*\) windows.*/\1/p'
  done | best
}
p4=$(loader 4)
p0=$(loader 0)
echo "loader (TrainLoader, seq_len 256, batch 16, page-cached sample shards):"
echo "  prefetch 4: $p4 windows/s ($(python3 -c "print(round($p4*256/1e6,1))") M tokens/s)"
echo "  prefetch 0: $p0 windows/s ($(python3 -c "print(round($p0*256/1e6,1))") M tokens/s)"
