#!/usr/bin/env bash
# Bit-exact resume on the GPU: 2N straight steps, and a resume from the
# straight run's step-N checkpoint (in a fresh logging dir) run to 2N, give
# byte-identical model.safetensors and optimizer.safetensors and the same
# logged losses (galore_adamw8bit, per-layer updates, accumulation over 2
# micro-batches, cosine schedule, a projector refresh inside each half,
# stochastic rounding on). Needs every reduction that feeds the weights to be
# deterministic. (Resuming from the straight run keeps max_steps, hence the
# cosine schedule, the same in both; a first half run with max_steps=N would
# decay the learning rate differently -- caught on the emulator, session 6.)
# Twice: with the heuristic's GEMM algorithms, and with training.gemm_autotune=4,
# whose choices (timed, so they may differ from run to run) must come back
# from the checkpoint (trainer_state.json's gemm_algos) for the resume to match.
# GPU_RESUME_ARGS: extra arguments for every run (tools/cuda_emu shrinks the model).
source "$(dirname "$0")/gpu_common.bash"
bash data_tools/prepare_sample.sh "$BIN" >/dev/null
N=${GPU_RESUME_N:-6}
# shellcheck disable=SC2206
extra=(${GPU_RESUME_ARGS:-})
common=(--config configs/tiny.json --set training.device="$DEVICE" --set optimizer.name=galore_adamw8bit
  --set optimizer.per_layer_updates=true --set training.micro_batch_size=4 --set training.total_batch_size=8
  --set optimizer.galore.update_proj_gap=4 --set optimizer.stochastic_rounding=true --set eval.every=0
  --set checkpoint.keep_last=0 --set logging.progress=plain --set logging.every=1
  --set schedule.warmup_steps=2 --set training.max_steps=$((2 * N)) "${extra[@]}")
run() { "$BIN/galore-train" "${common[@]}" "$@" >>"$TMP/log" 2>&1 || { tail -30 "$TMP/log"; fail "galore-train $*"; }; }
check_resume() {  # name, extra --set arguments...
  local name=$1
  shift
  : >"$TMP/log"
  run --set logging.dir="$TMP/$name-straight" --set checkpoint.every=$N "$@"
  mid="$TMP/$name-straight/checkpoints/$(printf 'step_%08d' $N)"
  [ -f "$mid/COMPLETE" ] || fail "$name: no complete step-$N checkpoint in $TMP/$name-straight/checkpoints"
  run --set logging.dir="$TMP/$name-split" --set checkpoint.every=0 --resume "$mid" "$@"
  grep -q "resumed from $mid at step $N" "$TMP/log" || { tail -30 "$TMP/log"; fail "$name: the second run did not resume at step $N"; }
  if [ "$DEVICE" = cuda ] && [ $# -gt 0 ]; then
    grep -q "GEMM autotune" "$TMP/log" || { tail -30 "$TMP/log"; fail "$name: no autotune in the first run"; }
    grep -q "resume: the GEMM algorithms autotuned by the original run" "$TMP/log" ||
      { tail -30 "$TMP/log"; fail "$name: the resumed run did not take the checkpoint's GEMM algorithms"; }
  fi
  last=$(printf 'step_%08d' $((2 * N)))
  for f in model.safetensors optimizer.safetensors; do
    a=$(sha256sum "$TMP/$name-straight/checkpoints/$last/$f" | cut -c1-64)
    b=$(sha256sum "$TMP/$name-split/checkpoints/$last/$f" | cut -c1-64)
    [ "$a" = "$b" ] || fail "$name: $f differs after resume ($a vs $b)"
  done
  python3 - "$TMP/$name-straight/metrics.jsonl" "$TMP/$name-split/metrics.jsonl" $((N + 1)) $((2 * N)) <<'PY'
import json, sys
def losses(p):
    return {r["step"]: r["loss"] for r in map(json.loads, open(p)) if "loss" in r}
a, b = losses(sys.argv[1]), losses(sys.argv[2])
for s in range(int(sys.argv[3]), int(sys.argv[4]) + 1):
    if s not in a or s not in b or repr(a[s]) != repr(b[s]):
        sys.exit(f"FAIL: step {s} loss straight {a.get(s)!r} vs resumed {b.get(s)!r}")
PY
  echo "ok ($name): GPU resume is bit-exact over $((2 * N)) steps (resumed at step $N)"
}
check_resume heuristic
check_resume autotune --set training.gemm_autotune=4
