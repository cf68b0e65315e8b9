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
run --set logging.dir="$TMP/straight" --set checkpoint.every=$N
mid="$TMP/straight/checkpoints/$(printf 'step_%08d' $N)"
[ -f "$mid/COMPLETE" ] || fail "no complete step-$N checkpoint in $TMP/straight/checkpoints"
run --set logging.dir="$TMP/split" --set checkpoint.every=0 --resume "$mid"
grep -q "resumed from $mid at step $N" "$TMP/log" || { tail -30 "$TMP/log"; fail "the second run did not resume at step $N"; }
last=$(printf 'step_%08d' $((2 * N)))
for f in model.safetensors optimizer.safetensors; do
  a=$(sha256sum "$TMP/straight/checkpoints/$last/$f" | cut -c1-64)
  b=$(sha256sum "$TMP/split/checkpoints/$last/$f" | cut -c1-64)
  [ "$a" = "$b" ] || fail "$f differs after resume ($a vs $b)"
done
python3 - "$TMP/straight/metrics.jsonl" "$TMP/split/metrics.jsonl" $((N + 1)) $((2 * N)) <<'PY'
import json, sys
def losses(p):
    return {r["step"]: r["loss"] for r in map(json.loads, open(p)) if "loss" in r}
a, b = losses(sys.argv[1]), losses(sys.argv[2])
for s in range(int(sys.argv[3]), int(sys.argv[4]) + 1):
    if s not in a or s not in b or repr(a[s]) != repr(b[s]):
        sys.exit(f"FAIL: step {s} loss straight {a.get(s)!r} vs resumed {b.get(s)!r}")
PY
echo "ok: GPU resume is bit-exact over $((2 * N)) steps (resumed at step $N)"
