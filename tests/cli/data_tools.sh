#!/usr/bin/env bash
# CLI behaviour of the data tools: sample shards, shard info, spm training,
# and one-line errors with exit code 1. Env: GALORE_BIN, GALORE_ROOT.
set -euo pipefail
BIN="${GALORE_BIN:?set GALORE_BIN to the build bin directory}"
ROOT="${GALORE_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}"
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
# expect_error <substring> <command...>: exit 1, one "error: " line naming the problem
expect_error() {
  local want="$1"; shift
  local rc=0
  "$@" >"$TMP/stdout" 2>"$TMP/err" || rc=$?
  [ "$rc" -eq 1 ] || fail "exit $rc (want 1) from: $* ; stderr: $(cat "$TMP/err")"
  grep -q "^error: " "$TMP/err" || fail "no 'error: ' line from: $*"
  grep -qF -- "$want" "$TMP/err" || fail "stderr lacks '$want' from: $* ; got: $(cat "$TMP/err")"
}

# Sample shards (idempotent: the second run does nothing).
bash "$ROOT/data_tools/prepare_sample.sh" "$BIN"
S="$ROOT/data/sample/shards"
n_train=$(ls "$S"/train_*.bin | wc -l)
n_val=$(ls "$S"/val_*.bin | wc -l)
[ "$n_train" -ge 4 ] && [ "$n_train" -le 8 ] || fail "want 4-8 train shards, got $n_train"
[ "$n_val" -eq 1 ] || fail "want 1 val shard, got $n_val"
python3 -c "import json,sys; m=json.load(open('$S/manifest.json')); sys.exit(0 if m['complete'] and m['vocab_size']==2048 else 1)" \
  || fail "manifest incomplete"
bash "$ROOT/data_tools/prepare_sample.sh" "$BIN" 2>&1 | grep -q "up to date" || fail "second prepare_sample run was not a no-op"

# Shard info prints the header and decodes text.
"$BIN/galore-shard-info" "$S/val_00000.bin" --tokenizer "$ROOT/data/sample/tokenizer.model" -n 200 >"$TMP/info"
for key in "magic          GLTOKSH1" "version        1" "token_bytes    2" "vocab_size     2048" "tokenizer_hash" "text:"; do
  grep -qF "$key" "$TMP/info" || fail "shard-info lacks '$key'"
done
grep -q "Python" "$TMP/info" || fail "decoded sample does not look like the sample corpus"

# Errors: one line, exit 1.
printf 'not a shard at all, just some bytes....................................................' >"$TMP/bad.bin"
expect_error "bad magic" "$BIN/galore-shard-info" "$TMP/bad.bin"
expect_error "no input files match" "$BIN/galore-tokenize" --tokenizer "$ROOT/data/sample/tokenizer.model" \
  -o "$TMP/out" "$TMP/none-*.json.gz"
printf '{"text": "fine"}\n{"text": 12}\n' >"$TMP/c4-train.00000-of-00001.json"
expect_error "line 2: \"text\" is a number" "$BIN/galore-tokenize" -q --tokenizer "$ROOT/data/sample/tokenizer.model" \
  -o "$TMP/out" "$TMP/c4-train.*.json"
"$BIN/galore-tokenize" -q --on-bad-line skip --tokenizer "$ROOT/data/sample/tokenizer.model" -o "$TMP/out" \
  "$TMP/c4-train.*.json" 2>"$TMP/err" || fail "--on-bad-line skip failed: $(cat "$TMP/err")"
grep -q "1 bad lines skipped" "$TMP/err" || fail "skip count not reported: $(cat "$TMP/err")"
head -c 30 "$ROOT/data/sample/c4-validation.00000-of-00001.json.gz" >"$TMP/cut.json.gz"
expect_error "truncated gzip" "$BIN/galore-tokenize" --tokenizer "$ROOT/data/sample/tokenizer.model" -o "$TMP/out2" "$TMP/cut.json.gz"

# A tokenizer from plain text, used to tokenize.
python3 - "$TMP/text.txt" <<'PY'
import random, sys
random.seed(0)
words = ["".join(random.choice("etaoinshrdlucmfwyp") for _ in range(random.randint(2, 8))) for _ in range(2000)]
with open(sys.argv[1], "w") as f:
    for _ in range(3000):
        f.write(" ".join(random.choice(words) for _ in range(12)) + ".\n")
PY
# --output in a folder that does not exist yet: made first
"$BIN/galore-spm-train" --vocab-size 300 --model-type unigram --special-tokens '<sep>,<cls>' \
  --output "$TMP/new/dir/tok" "$TMP/text.txt" 2>"$TMP/err" || fail "spm-train: $(cat "$TMP/err")"
mv "$TMP/new/dir/tok.model" "$TMP/tok.model" && mv "$TMP/new/dir/tok.vocab" "$TMP/tok.vocab"
[ -s "$TMP/tok.model" ] && [ -s "$TMP/tok.vocab" ] || fail "spm-train wrote no model"
# an output it cannot write is refused before training, not after
expect_error "cannot create the folder" "$BIN/galore-spm-train" --vocab-size 300 --output "$TMP/text.txt/sub/tok" "$TMP/text.txt"
grep -q "^<sep>" "$TMP/tok.vocab" || fail "special token missing from vocab"
expect_error "empty file" "$BIN/galore-spm-train" --vocab-size 300 --output "$TMP/tok2" /dev/null
echo "data_tools: ok"
