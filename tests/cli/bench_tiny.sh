#!/usr/bin/env bash
# galore-bench on the CPU: tiny.json on random tokens (no shards, no
# checkpoints) with galore_adamw8bit and per-layer updates prints one table
# row and one JSON line with a positive rate and a finite loss (random tokens:
# it stays near ln 2048); --json
# appends the same line to a file; --profile adds one more step's milliseconds
# by phase (forward, backward, the optimizer's parts, other); --gemm-report
# needs the CUDA backend: on the CPU it warns and reports null; --op-report
# adds one more step's model ops by name and shape (a table and "ops" in the JSON);
# scripts/bench_summary.py makes bench.sh's tables from the JSON line.
set -euo pipefail
BIN="${GALORE_BIN:?run through ctest}"
cd "${GALORE_ROOT:-.}"
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
"$BIN/galore-bench" --config configs/tiny.json --set training.device=cpu --set optimizer.name=galore_adamw8bit \
  --set data.train_shards='["/nonexistent/*.bin"]' --steps 3 --warmup 1 --label tiny-cpu --json "$OUT/b.jsonl" --profile --gemm-report 2 --op-report \
  >"$OUT/log" 2>&1 || { cat "$OUT/log"; echo "FAIL: galore-bench exited non-zero"; exit 1; }
grep -q "^| tiny-cpu | galore_adamw8bit |" "$OUT/log" || { cat "$OUT/log"; echo "FAIL: no table row"; exit 1; }
grep -q "^| attention_backward | 8x128x4x32 |" "$OUT/log" || { cat "$OUT/log"; echo "FAIL: no op-report row"; exit 1; }
grep -q "gemm-report needs the CUDA backend; skipped" "$OUT/log" || { cat "$OUT/log"; echo "FAIL: no --gemm-report warning"; exit 1; }
python3 - "$OUT/b.jsonl" <<'PY'
import json, math, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
if len(rows) != 1: sys.exit(f"FAIL: {len(rows)} JSON lines, want 1")
r = rows[0]
if r["label"] != "tiny-cpu" or r["device"] != "cpu": sys.exit(f"FAIL: {r}")
if not r["tokens_per_s"] > 0 or not math.isfinite(r["final_loss"]): sys.exit(f"FAIL: {r}")
if r["mfu"] is not None: sys.exit("FAIL: MFU on the CPU should be null (no peak known)")
if r["gemms"] is not None: sys.exit(f"FAIL: gemms on the CPU should be null, got {r['gemms']}")
prof = r["profile_ms"]
want = ["backward", "forward", "opt_adam", "opt_project", "opt_refresh", "opt_update", "optimizer", "other"]
if sorted(prof) != want: sys.exit(f"FAIL: profile phases {sorted(prof)}")
if not all(prof[k] > 0 for k in ("forward", "backward", "opt_project", "opt_adam", "opt_update")): sys.exit(f"FAIL: profile {prof}")
if not 0.3 < sum(prof.values()) / 1000 / r["step_s_median"] < 3: sys.exit(f"FAIL: profile {prof} vs step {r['step_s_median']} s")
ops = r["ops"]
kinds = {o["op"] for o in ops["ops"]}
for k in ("attention_forward", "attention_backward", "matmul_forward", "rmsnorm_forward", "swiglu_backward", "classifier_with_grads"):
    if k not in kinds: sys.exit(f"FAIL: op-report lacks {k}: {sorted(kinds)}")
if not all(o["calls"] > 0 and o["ms"] >= 0 for o in ops["ops"]): sys.exit(f"FAIL: op-report {ops}")
# The ops lie inside the span from the first op's start to the last op's end, which lies inside the step
# (no lower bound on the share: under load the CPU optimizer's part of the step varies).
if not 0 < ops["ops_ms"] <= ops["span_ms"] + 1e-6 <= ops["step_ms"] + 2e-6:
    sys.exit(f"FAIL: op-report {ops['ops_ms']} ms in a span of {ops['span_ms']} ms of a {ops['step_ms']} ms step")
print(f"ok: {r['tokens_per_s']:.0f} tokens/s on the CPU, loss {r['final_loss']:.3f}, profile {prof}")
PY
# scripts/bench_summary.py (bench.sh's tables; gpu_check.sh's fallback when
# bench.sh is stopped): the run's row and its op line, and a cut-short last line is skipped.
printf '{"label": "cut' >>"$OUT/b.jsonl"
python3 scripts/bench_summary.py "$OUT/b.jsonl" >"$OUT/summary" 2>&1 || { cat "$OUT/summary"; echo "FAIL: bench_summary.py"; exit 1; }
grep -q "^| tiny-cpu | cpu | " "$OUT/summary" || { cat "$OUT/summary"; echo "FAIL: no summary row"; exit 1; }
grep -q "^- tiny-cpu: .* attention_backward" "$OUT/summary" || { cat "$OUT/summary"; echo "FAIL: no op line in the summary"; exit 1; }
# The attention dS store's A/B line (bench.sh run 5): the same run under the two 7B labels.
python3 - "$OUT/b.jsonl" "$OUT/ab.jsonl" <<'PY'
import json, sys
r = json.loads(open(sys.argv[1]).readline())
with open(sys.argv[2], "w") as f:
    for label in ("llama7b-r1024-recompute", "llama7b-r1024-recompute-no-ds-store"):
        f.write(json.dumps(dict(r, label=label)) + "\n")
PY
python3 scripts/bench_summary.py "$OUT/ab.jsonl" >"$OUT/summary_ab" 2>&1 || { cat "$OUT/summary_ab"; echo "FAIL: bench_summary.py (A/B)"; exit 1; }
grep -q "^Attention dS store at 7B .* attention_backward [0-9.]* vs [0-9.]* ms" "$OUT/summary_ab" ||
  { cat "$OUT/summary_ab"; echo "FAIL: no dS store line in the summary"; exit 1; }
echo "ok: bench_summary.py"
