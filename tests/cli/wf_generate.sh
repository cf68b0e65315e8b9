#!/usr/bin/env bash
# galore-generate on a 2-step tiny checkpoint (CPU): same seed -> same text,
# different seeds -> different text, greedy (temperature 0 / top-k 1) ignores the
# seed, the checkpoint may be a step folder or the run directory, the tokenizer
# comes from the checkpoint's config or --tokenizer, contexts longer than
# model.max_seq_len slide, and bad inputs give one-line errors.
set -euo pipefail
ROOT="${GALORE_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}"
BIN="${GALORE_BIN:-$ROOT/build/bin}"
cd "$ROOT"
TMP="$(mktemp -d "${TMPDIR:-/tmp}/wf_generate.XXXXXX")"
trap 'rm -rf "$TMP"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
[ -x "$BIN/galore-generate" ] || fail "$BIN/galore-generate not built"
if ! grep -q '"complete": true' data/sample/shards/manifest.json 2>/dev/null; then
  bash data_tools/prepare_sample.sh "$BIN" >/dev/null || fail "could not prepare data/sample/shards"
fi

RUN="$TMP/run"
"$BIN/galore-train" --config configs/tiny.json --set training.device=cpu --set training.threads=1 \
  --set training.max_steps=2 --set schedule.warmup_steps=1 --set training.seq_len=64 \
  --set training.micro_batch_size=4 --set training.total_batch_size=4 --set eval.batches=1 \
  --set logging.dir="$RUN" >"$TMP/train.log" 2>&1 || { cat "$TMP/train.log"; fail "training exited $?"; }
CKPT="$RUN/checkpoints/step_00000002"
[ -f "$CKPT/COMPLETE" ] || fail "no checkpoint $CKPT"

gen() { "$BIN/galore-generate" --threads 1 "$@" 2>>"$TMP/gen.err"; }
a="$(gen "$CKPT" --prompt "The weather" --max-tokens 24 --seed 1 --ignore-eos)"
b="$(gen "$CKPT" --prompt "The weather" --max-tokens 24 --seed 1 --ignore-eos)"
c="$(gen "$CKPT" --prompt "The weather" --max-tokens 24 --seed 2 --ignore-eos)"
[ -n "$a" ] || fail "no text generated"
[ "$a" = "$b" ] || fail "same seed, different text:\n$a\n$b"
[ "$a" != "$c" ] || fail "seeds 1 and 2 gave the same text: $a"
case "$a" in "The weather"*) ;; *) fail "the output should start with the prompt: $a" ;; esac
[ "$a" != "The weather" ] || fail "nothing was appended to the prompt"
grep -q "24 tokens in" "$TMP/gen.err" || fail "no summary line on stderr: $(cat "$TMP/gen.err")"

# Top-k / top-p / temperature change the text but stay deterministic.
d1="$(gen "$CKPT" --prompt "The weather" -n 16 --seed 3 --temperature 0.7 --top-k 20 --top-p 0.9 --ignore-eos)"
d2="$(gen "$CKPT" --prompt "The weather" -n 16 --seed 3 --temperature 0.7 --top-k 20 --top-p 0.9 --ignore-eos)"
[ "$d1" = "$d2" ] || fail "top-k/top-p sampling is not deterministic"

# Greedy: the seed does not matter; top-k 1 == temperature 0.
g1="$(gen "$CKPT" --prompt "The weather" -n 16 --temperature 0 --seed 1 --ignore-eos)"
g2="$(gen "$CKPT" --prompt "The weather" -n 16 --temperature 0 --seed 99 --ignore-eos)"
g3="$(gen "$CKPT" --prompt "The weather" -n 16 --top-k 1 --seed 5 --ignore-eos)"
[ "$g1" = "$g2" ] && [ "$g1" = "$g3" ] || fail "greedy decoding depends on the seed:\n$g1\n$g2\n$g3"

# The run directory (newest checkpoint) and an explicit --tokenizer give the same text.
r="$(gen "$RUN" --prompt "The weather" --max-tokens 24 --seed 1 --ignore-eos)"
[ "$r" = "$a" ] || fail "run directory and checkpoint folder differ"
t="$(gen "$CKPT" --prompt "The weather" --max-tokens 24 --seed 1 --ignore-eos --tokenizer data/sample/tokenizer.model)"
[ "$t" = "$a" ] || fail "--tokenizer changed the text"

# An empty prompt starts a new document; more tokens than model.max_seq_len (128) slide the window.
e="$(gen "$CKPT" --max-tokens 8 --seed 4 --ignore-eos)"
[ -n "$e" ] || fail "empty prompt gave no text"
gen "$CKPT" --prompt "Hello" --max-tokens 140 --seed 4 --ignore-eos -q >/dev/null || fail "140 tokens (> max_seq_len) failed"

# Errors: exit 1, one line, naming the input.
expect_error() {  # PATTERN ARGS...
  local pat=$1 out rc=0
  shift
  out="$("$BIN/galore-generate" "$@" 2>&1 >/dev/null)" || rc=$?
  [ "$rc" -ne 0 ] || fail "galore-generate $* should fail"
  echo "$out" | grep -qF -- "$pat" || fail "galore-generate $*: expected '$pat' in: $out"
  [ "$(echo "$out" | grep -c .)" -eq 1 ] || fail "galore-generate $*: expected one line, got: $out"
}
expect_error "checkpoint $TMP/nope: no such file or directory" "$TMP/nope"
mkdir -p "$TMP/empty"
expect_error "holds no trainer_state.json" "$TMP/empty"
expect_error "--tokenizer $TMP/x.model: file not found" "$CKPT" --tokenizer "$TMP/x.model"
expect_error "--top-p 2 is outside (0, 1]" "$CKPT" --top-p 2
expect_error "--top-k -1 is negative" "$CKPT" --top-k -1
# The tokenizer path in the config is relative to where training ran.
out="$(cd "$TMP" && "$BIN/galore-generate" "$CKPT" 2>&1 >/dev/null)" && fail "a missing config tokenizer should fail"
echo "$out" | grep -q "pass --tokenizer" || fail "missing config tokenizer: $out"
cp -r "$CKPT" "$TMP/damaged"
rm "$TMP/damaged/model.safetensors"
expect_error "checkpoint $TMP/damaged:" "$TMP/damaged"
if ! "$BIN/galore-generate" "$CKPT" --device cuda -n 1 >/dev/null 2>"$TMP/cuda.err"; then
  grep -q -- "--device cuda" "$TMP/cuda.err" || fail "--device cuda without a GPU: $(cat "$TMP/cuda.err")"
fi
echo "wf_generate: OK"
