#!/usr/bin/env bash
# Bit-exact resume on the GPU: 2N straight steps and N steps + --resume auto +
# N steps give byte-identical model.safetensors and optimizer.safetensors
# (galore_adamw8bit, per-layer updates, accumulation over 2 micro-batches, a
# projector refresh inside each half, stochastic rounding on). Needs every
# reduction that feeds the weights to be deterministic.
source "$(dirname "$0")/gpu_common.bash"
bash data_tools/prepare_sample.sh "$BIN" >/dev/null
N=6
common=(--config configs/tiny.json --set training.device=cuda --set optimizer.name=galore_adamw8bit
  --set optimizer.per_layer_updates=true --set training.micro_batch_size=4 --set training.total_batch_size=8
  --set optimizer.galore.update_proj_gap=4 --set optimizer.stochastic_rounding=true --set eval.every=0
  --set checkpoint.every=0 --set checkpoint.keep_last=0 --set logging.progress=plain --set schedule.warmup_steps=2)
run() { "$BIN/galore-train" "${common[@]}" "$@" >>"$TMP/log" 2>&1 || { tail -30 "$TMP/log"; fail "galore-train $*"; }; }
run --set logging.dir="$TMP/straight" --set training.max_steps=$((2 * N))
run --set logging.dir="$TMP/split" --set training.max_steps=$N
run --set logging.dir="$TMP/split" --set training.max_steps=$((2 * N)) --resume auto
last=$(printf 'step_%08d' $((2 * N)))
for f in model.safetensors optimizer.safetensors; do
  a=$(sha256sum "$TMP/straight/checkpoints/$last/$f" | cut -c1-64)
  b=$(sha256sum "$TMP/split/checkpoints/$last/$f" | cut -c1-64)
  [ "$a" = "$b" ] || fail "$f differs after resume ($a vs $b)"
done
echo "ok: GPU resume is bit-exact over $((2 * N)) steps"
