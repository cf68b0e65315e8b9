#!/usr/bin/env bash
# configs/tiny.json with galore_adamw8bit and per-layer updates, on the GPU
# (bf16) and on the CPU (fp32), same seed and data: the GPU loss curve tracks
# the CPU one (mean |difference| of the logged train losses <= 0.05 after
# step 20, final validation losses within 2%), and the GPU run learns.
source "$(dirname "$0")/gpu_common.bash"
bash data_tools/prepare_sample.sh "$BIN" >/dev/null
common=(--config configs/tiny.json --set optimizer.name=galore_adamw8bit --set optimizer.per_layer_updates=true
  --set training.max_steps=120 --set eval.every=0 --set checkpoint.every=0 --set logging.every=5
  --set logging.progress=plain)
"$BIN/galore-train" "${common[@]}" --set training.device="$DEVICE" --set logging.dir="$TMP/gpu" >"$TMP/gpu.log" 2>&1 ||
  { tail -30 "$TMP/gpu.log"; fail "GPU run failed"; }
"$BIN/galore-train" "${common[@]}" --set training.device=cpu --set logging.dir="$TMP/cpu" >"$TMP/cpu.log" 2>&1 ||
  { tail -30 "$TMP/cpu.log"; fail "CPU run failed"; }
grep -m1 "backend" "$TMP/gpu.log"
python3 - "$TMP/gpu/metrics.jsonl" "$TMP/cpu/metrics.jsonl" <<'PY'
import json, sys
def read(p):
    loss, val = {}, None
    for line in open(p):
        r = json.loads(line)
        if "loss" in r: loss[r["step"]] = r["loss"]
        if "val_loss" in r: val = r["val_loss"]
    return loss, val
g, gv = read(sys.argv[1]); c, cv = read(sys.argv[2])
steps = sorted(s for s in g if s in c and s >= 20)
if not steps: sys.exit("FAIL: no common logged steps")
diff = sum(abs(g[s] - c[s]) for s in steps) / len(steps)
print(f"steps {steps[0]}..{steps[-1]}: mean |gpu - cpu| train loss {diff:.4f}; val gpu {gv:.4f} cpu {cv:.4f}")
if not diff <= 0.05: sys.exit(f"FAIL: GPU loss curve is {diff:.4f} away from the CPU's on average (limit 0.05)")
if not abs(gv - cv) <= 0.02 * cv: sys.exit(f"FAIL: final val loss gpu {gv:.4f} vs cpu {cv:.4f} (limit 2%)")
if not gv < 6.5: sys.exit(f"FAIL: GPU run did not learn (val loss {gv:.4f}, start 7.62)")
print("ok")
PY
