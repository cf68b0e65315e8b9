#!/usr/bin/env bash
# Hugging Face interop end to end: a tiny run is exported with galore-export
# (LlamaForCausalLM layout), re-imported with model.init_from and trained further.
#   - fp32 export of an fp32 (CPU) checkpoint is byte-identical to its model.safetensors;
#   - init_from loads it exactly: a 1-step run with a vanishing learning rate
#     (sgd, lr 1e-30) writes byte-identical weights;
#   - training further from the export starts at the trained loss, not at ln(vocab);
#   - model.shape_from_init takes the shape from config.json; a mismatching
#     shape without it is an error naming the key; a bf16 export imports too;
#   - galore-export refuses a damaged checkpoint and accepts a run directory.
source "$(dirname "$0")/ckpt_common.bash"
ckpt_setup ckpt_hf

cat >"$TMP/cfg.json" <<EOF
{
  "model": {"vocab_size": 2048, "hidden_size": 32, "intermediate_size": 64, "num_layers": 2, "num_heads": 2,
            "max_seq_len": 32},
  "optimizer": {"name": "adamw", "lr": 1e-2},
  "schedule": {"type": "constant", "warmup_steps": 0},
  "training": {"max_steps": 40, "seq_len": 32, "micro_batch_size": 2, "total_batch_size": 2,
               "device": "cpu", "threads": 2},
  "data": {"train_shards": ["$SH/train_*.bin"], "val_shards": [],
           "tokenizer": "data/sample/tokenizer.model"},
  "checkpoint": {"every": 0, "keep_last": 2},
  "eval": {"every": 0, "batches": 1},
  "logging": {"dir": "unused", "every": 1}
}
EOF
first_loss() { python3 -c 'import json,sys
for l in open(sys.argv[1]):
    r = json.loads(l)
    if r.get("step") == 1 and "loss" in r: print(r["loss"]); break' "$1"; }

# 1. a tiny run
train "$TMP/run.log" --set logging.dir="$TMP/run"
[ "$rc" -eq 0 ] || { tail "$TMP/run.log" >&2; fail "the tiny run failed"; }
CK="$TMP/run/checkpoints/step_00000040"
[ -f "$CK/COMPLETE" ] || fail "no final checkpoint $CK"

# 2. export (default dtype = the checkpoint's: fp32 on the CPU)
"$BIN/galore-export" "$CK" "$TMP/hf" >"$TMP/export.log" 2>&1 || { cat "$TMP/export.log" >&2; fail "galore-export failed"; }
grep -q "as fp32" "$TMP/export.log" || fail "export: expected an fp32 export: $(cat "$TMP/export.log")"
python3 - "$TMP/hf/config.json" <<'EOF' || fail "export: config.json is not the expected LlamaConfig"
import json, sys
c = json.load(open(sys.argv[1]))
want = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": 2048, "hidden_size": 32,
        "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2, "num_key_value_heads": 2,
        "tie_word_embeddings": False, "torch_dtype": "float32", "hidden_act": "silu"}
bad = {k: (c.get(k), v) for k, v in want.items() if c.get(k) != v}
if bad: sys.exit(f"config.json mismatches (got, want): {bad}")
EOF
cmp -s "$CK/model.safetensors" "$TMP/hf/model.safetensors" ||
  fail "export: the fp32 model.safetensors differs from the checkpoint's"
echo "ok: galore-export wrote a LlamaForCausalLM directory identical to the checkpoint's fp32 weights"

# 3. init_from is exact: one sgd step with lr 1e-30 leaves the weights bit-identical
train "$TMP/exact.log" --set logging.dir="$TMP/exact" --set model.init_from="$TMP/hf" --set optimizer.name=sgd \
  --set optimizer.lr=1e-30 --set training.max_steps=1
[ "$rc" -eq 0 ] || { tail "$TMP/exact.log" >&2; fail "init_from run failed"; }
grep -q "initialised weights from $TMP/hf" "$TMP/exact.log" || fail "init_from: not logged"
cmp -s "$CK/model.safetensors" "$TMP/exact/checkpoints/step_00000001/model.safetensors" ||
  fail "init_from: the imported weights differ from the exported checkpoint"
echo "ok: export -> model.init_from round trip is bit-exact"

# 4. trained further from the export: starts at the trained loss
train "$TMP/scratch.log" --set logging.dir="$TMP/scratch" --set training.max_steps=3
train "$TMP/further.log" --set logging.dir="$TMP/further" --set model.init_from="$TMP/hf" --set training.max_steps=3
[ "$rc" -eq 0 ] || { tail "$TMP/further.log" >&2; fail "training further from the export failed"; }
[ -f "$TMP/further/checkpoints/step_00000003/COMPLETE" ] || fail "further: no checkpoint at step 3"
s=$(first_loss "$TMP/scratch/metrics.jsonl")
f=$(first_loss "$TMP/further/metrics.jsonl")
python3 -c "import sys; sys.exit(0 if $f < $s - 0.3 else 1)" ||
  fail "further: the first loss from the export ($f) is not well below a fresh start's ($s)"
echo "ok: a run from the export trains further (first loss $f vs $s from scratch)"

# 5. shape_from_init, a shape mismatch, a bf16 export
train "$TMP/shape.log" --set logging.dir="$TMP/shape" --set model.init_from="$TMP/hf" --set model.hidden_size=64 \
  --set model.num_layers=1 --set model.shape_from_init=true --set training.max_steps=1
[ "$rc" -eq 0 ] || { tail "$TMP/shape.log" >&2; fail "shape_from_init run failed"; }
cmp -s <(python3 -c 'import json,sys; c=json.load(open(sys.argv[1]))["config"]["model"]; print(c["hidden_size"], c["num_layers"])' \
  "$TMP/shape/checkpoints/step_00000001/trainer_state.json") <(echo "32 2") || fail "shape_from_init: shape not taken from the export"
train "$TMP/mismatch.log" --set logging.dir="$TMP/mismatch" --set model.init_from="$TMP/hf" --set model.hidden_size=64 \
  --set training.max_steps=1
[ "$rc" -ne 0 ] && grep -q "^error: .*hidden_size.*shape_from_init" "$TMP/mismatch.log" ||
  fail "a shape mismatch with init_from should be an error naming hidden_size: $(tail -2 "$TMP/mismatch.log")"
# shape_from_init re-runs the model checks on the shape it takes: an odd head dim (RoPE rotates pairs)
mkdir -p "$TMP/odd"
python3 -c 'import json,sys; c=json.load(open(sys.argv[1])); c["hidden_size"]=36; c["num_attention_heads"]=4; c["num_key_value_heads"]=4; c.pop("head_dim", None); json.dump(c, open(sys.argv[2], "w"))' \
  "$TMP/hf/config.json" "$TMP/odd/config.json"
cp "$TMP/hf/model.safetensors" "$TMP/odd/"
train "$TMP/odd.log" --set logging.dir="$TMP/oddrun" --set model.init_from="$TMP/odd" --set model.shape_from_init=true \
  --set training.max_steps=1
[ "$rc" -ne 0 ] && grep -q "^error: $TMP/odd/config.json (model.shape_from_init): .*even" "$TMP/odd.log" ||
  fail "shape_from_init with an odd head dim should be an error naming config.json: $(tail -2 "$TMP/odd.log")"
"$BIN/galore-export" "$TMP/run" "$TMP/hf16" --dtype bf16 >"$TMP/export16.log" 2>&1 ||
  { cat "$TMP/export16.log" >&2; fail "bf16 export of a run directory failed"; }
grep -q "step_00000040.* as bf16" "$TMP/export16.log" || fail "bf16 export: $(cat "$TMP/export16.log")"
train "$TMP/bf16.log" --set logging.dir="$TMP/bf16" --set model.init_from="$TMP/hf16" --set training.max_steps=1
[ "$rc" -eq 0 ] || { tail "$TMP/bf16.log" >&2; fail "init_from a bf16 export failed"; }
echo "ok: shape_from_init, shape mismatch error, bf16 export + import"

# 6. a damaged checkpoint is not exported
printf '\x55' | dd of="$CK/model.safetensors" bs=1 seek=500 conv=notrunc status=none
if "$BIN/galore-export" "$CK" "$TMP/bad" >"$TMP/bad.log" 2>&1; then fail "a damaged checkpoint was exported"; fi
grep -q "^error: .*hash mismatch in model.safetensors" "$TMP/bad.log" || fail "damaged export: $(cat "$TMP/bad.log")"
[ ! -e "$TMP/bad/model.safetensors" ] || fail "damaged export wrote files"
echo "PASS ckpt_hf"
