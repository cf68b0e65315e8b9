#!/usr/bin/env bash
# Bit-exact resume on the CPU: N steps, a resume in a new process, N more steps
# give byte-identical model.safetensors and optimizer.safetensors, the same data
# position and the same logged losses (every step) as 2N straight steps.
#   A. adamw, constant schedule: a first run of N steps (max_steps=N), then
#      --resume auto with --set training.max_steps=2N (a safe override, logged).
#   B. galore_adamw8bit, per_layer_updates, gradient accumulation (total batch =
#      2 x micro batch), cosine schedule, update_proj_gap=3 with N=4 (projector
#      refreshes at steps 3 and 6, one inside each half): --resume <path> of the
#      straight run's step-N checkpoint in a fresh logging dir.
source "$(dirname "$0")/ckpt_common.bash"
ckpt_setup ckpt_bitexact

N=4
cat >"$TMP/cfg.json" <<EOF
{
  "model": {"vocab_size": 2048, "hidden_size": 64, "intermediate_size": 128, "num_layers": 2, "num_heads": 4,
            "max_seq_len": 32},
  "optimizer": {"name": "adamw", "lr": 3e-3, "weight_decay": 0.01,
                "galore": {"rank": 8, "update_proj_gap": 3, "scale": 0.25}},
  "schedule": {"type": "cosine", "warmup_steps": 2},
  "training": {"max_steps": 8, "seq_len": 32, "micro_batch_size": 2, "total_batch_size": 2, "grad_clip": 1.0,
               "device": "cpu", "threads": 2, "seed": 7},
  "data": {"train_shards": ["$SH/train_*.bin"], "val_shards": [],
           "tokenizer": "data/sample/tokenizer.model"},
  "checkpoint": {"every": 0, "keep_last": 0},
  "eval": {"every": 0, "batches": 1},
  "logging": {"dir": "unused", "every": 1}
}
EOF

train() {  # train <log> <args...>
  local log="$1"
  shift
  "$BIN/galore-train" --config "$TMP/cfg.json" "$@" >"$log" 2>&1 || { tail -20 "$log" >&2; fail "galore-train $* exited non-zero (log above)"; }
}

# losses <metrics.jsonl> <first> <last>: "step loss" per training step (repr: exact doubles)
losses() {
  python3 - "$@" <<'EOF'
import json, sys
path, lo, hi = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
seen = {}
for line in open(path):
    r = json.loads(line)
    if "loss" in r:
        if r["step"] in seen: sys.exit(f"{path}: step {r['step']} logged twice")
        seen[r["step"]] = repr(r["loss"])
missing = [s for s in range(lo, hi + 1) if s not in seen]
if missing: sys.exit(f"{path}: no loss for steps {missing}")
for s in range(lo, hi + 1): print(s, seen[s])
EOF
}

# state_summary <ckpt>: the resume-relevant fields of trainer_state.json
state_summary() {
  python3 - "$1/trainer_state.json" <<'EOF'
import json, sys
s = json.load(open(sys.argv[1]))
print(s["step"], s["tokens"], repr(s["prev_grad_norm"]), s["skipped_steps"], json.dumps(s["data_position"], sort_keys=True))
EOF
}

compare() {  # compare <case> <straight ckpt> <resumed ckpt> <straight metrics> <resumed metrics> <first step>
  local name="$1" a="$2" b="$3"
  [ -f "$a/COMPLETE" ] || fail "$name: straight run left no checkpoint $a"
  [ -f "$b/COMPLETE" ] || fail "$name: resumed run left no checkpoint $b"
  cmp -s "$a/model.safetensors" "$b/model.safetensors" ||
    fail "$name: model.safetensors after resume differs from the straight run ($a vs $b)"
  cmp -s "$a/optimizer.safetensors" "$b/optimizer.safetensors" ||
    fail "$name: optimizer.safetensors after resume differs from the straight run"
  [ "$(state_summary "$a")" = "$(state_summary "$b")" ] ||
    fail "$name: trainer state differs: straight [$(state_summary "$a")] resumed [$(state_summary "$b")]"
  local la lb
  la="$(losses "$4" "$6" $((2 * N)))" || fail "$name: $la"
  lb="$(losses "$5" "$6" $((2 * N)))" || fail "$name: $lb"
  [ "$la" = "$lb" ] || fail "$name: logged losses differ:
straight:
$la
resumed:
$lb"
  echo "ok: $name: weights, optimizer state, data position and losses of steps $6..$((2 * N)) identical"
}

# ---- A: adamw, two processes of N steps vs one of 2N ----
A="$TMP/a"
COMMON_A=(--set schedule.type=constant --set optimizer.name=adamw)
train "$TMP/a_straight.log" "${COMMON_A[@]}" --set training.max_steps=$((2 * N)) --set logging.dir="$A/straight"
train "$TMP/a_first.log" "${COMMON_A[@]}" --set training.max_steps=$N --set logging.dir="$A/resumed"
[ -f "$A/resumed/checkpoints/step_0000000$N/COMPLETE" ] || fail "A: the first run left no step-$N checkpoint"
train "$TMP/a_second.log" "${COMMON_A[@]}" --set training.max_steps=$((2 * N)) --set logging.dir="$A/resumed" \
  --resume auto
grep -q "resumed from .*step_0000000$N at step $N" "$TMP/a_second.log" ||
  fail "A: --resume auto did not say it resumed from step $N: $(grep -i resum "$TMP/a_second.log")"
grep -q "training.max_steps changed from $N to $((2 * N))" "$TMP/a_second.log" ||
  fail "A: the max_steps override was not logged on resume"
compare "A (adamw)" "$A/straight/checkpoints/step_0000000$((2 * N))" "$A/resumed/checkpoints/step_0000000$((2 * N))" \
  "$A/straight/metrics.jsonl" "$A/resumed/metrics.jsonl" 1

# ---- B: galore_adamw8bit, per-layer updates, accumulation, refresh inside each half ----
B="$TMP/b"
COMMON_B=(--set optimizer.name=galore_adamw8bit --set optimizer.per_layer_updates=true
  --set training.total_batch_size=4 --set training.max_steps=$((2 * N)))
train "$TMP/b_straight.log" "${COMMON_B[@]}" --set checkpoint.every=$N --set logging.dir="$B/straight"
MID="$B/straight/checkpoints/step_0000000$N"
[ -f "$MID/COMPLETE" ] || fail "B: the straight run left no step-$N checkpoint"
train "$TMP/b_resumed.log" "${COMMON_B[@]}" --set checkpoint.every=$N --set logging.dir="$B/resumed" --resume "$MID"
grep -q "resumed from .* at step $N" "$TMP/b_resumed.log" || fail "B: --resume $MID did not resume at step $N"
compare "B (galore_adamw8bit, per-layer, accumulation 2, proj gap 3)" "$B/straight/checkpoints/step_0000000$((2 * N))" \
  "$B/resumed/checkpoints/step_0000000$((2 * N))" "$B/straight/metrics.jsonl" "$B/resumed/metrics.jsonl" $((N + 1))
echo "PASS ckpt_bitexact"
