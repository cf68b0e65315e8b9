#!/usr/bin/env python3
"""The tables of scripts/bench.sh from its JSONL (one galore-bench line per run).

Usage: python3 scripts/bench_summary.py bench.jsonl
bench.sh calls it at its end; scripts/gpu_check.sh calls it too when bench.sh
was stopped by its time limit, so the runs that finished are still reported.
"""
import json, sys
runs = {}
for line in open(sys.argv[1]):
    try:
        r = json.loads(line)
    except ValueError:  # a line cut short by a stopped run
        continue
    runs[r["label"]] = r
print()
print("| run | device | tokens/s | model TFLOP/s | MFU | executed TFLOP/s | plan GiB | device used GiB | target |")
print("|---|---|---|---|---|---|---|---|---|")
targets = {"llama1b-r512": ">= 40,000 tok/s", "llama7b-r1024-recompute": ">= 12,000 tok/s, <= 20 GiB",
           "llama7b-r1024-recompute-autotune": ">= 12,000 tok/s, <= 20 GiB"}
for label, r in runs.items():
    mfu = "n/a" if r["mfu"] is None else f'{100 * r["mfu"]:.1f}%'
    print(f'| {label} | {r["device"]} | {r["tokens_per_s"]:,.0f} | {r["model_tflops"]:.1f} | {mfu} | '
          f'{r["executed_tflops"]:.1f} | {r["plan_gib"]:.2f} | {r["device_used_gib"]:.2f} | {targets.get(label, "")} |')
print("\nWhere one step's time goes (galore-bench --profile; ms). optimizer = refresh + project + adam + update + rest:")
print("| run | forward | backward | optimizer | refresh | project | adam | update | rest | other | step |")
print("|---|---|---|---|---|---|---|---|---|---|---|")
for label, r in runs.items():
    p = r.get("profile_ms")
    if p:
        parts = [p.get(k, 0.0) for k in ("opt_refresh", "opt_project", "opt_adam", "opt_update", "optimizer")]
        print(f'| {label} | {p["forward"]:.1f} | {p["backward"]:.1f} | {sum(parts):.1f} | '
              + " | ".join(f"{x:.1f}" for x in parts) + f' | {p["other"]:.1f} | {1000 * r["step_s_median"]:.1f} |')
print("\nGEMM time of one step (galore-bench --gemm-report; the rest is other kernels and gaps):")
for label, r in runs.items():
    g = r.get("gemms")
    if g:
        best = sum(s["best_ms"] * s["calls"] for s in g["shapes"] if s["best_ms"] > 0)
        alone = sum(s["alone_ms"] * s["calls"] for s in g["shapes"] if s["alone_ms"] > 0)
        print(f'- {label}: GEMMs {g["gemm_ms"]:.1f} ms of a {g["step_ms"]:.1f} ms step; alone {alone:.1f} ms with '
              f'the algorithms in use, {best:.1f} ms with the best of the candidates')
print("\nModel ops of one step by kind (galore-bench --op-report; ms; the optimizer's kernels are the rest):")
for label, r in runs.items():
    o = r.get("ops")
    if o:
        kinds = {}
        for x in o["ops"]:
            kinds[x["op"]] = kinds.get(x["op"], 0.0) + x["ms"]
        mm = sum(v for k, v in kinds.items() if k.startswith("matmul"))
        top = sorted(((v, k) for k, v in kinds.items() if not k.startswith("matmul")), reverse=True)[:8]
        print(f'- {label}: {o["ops_ms"]:.1f} of {o["step_ms"]:.1f} ms; matmuls {mm:.1f}; '
              + ", ".join(f"{k} {v:.1f}" for v, k in top))

def attention_backward_ms(r):
    return sum(x["ms"] for x in r.get("ops", {}).get("ops", []) if x["op"] == "attention_backward")


a, b = runs.get("llama7b-r1024-recompute"), runs.get("llama7b-r1024-recompute-no-ds-store")
if a and b:
    print(f"\nAttention dS store at 7B (run 2 against GALORE_ATTENTION_DS=0): step "
          f"{1000 * a['step_s_median']:.1f} vs {1000 * b['step_s_median']:.1f} ms; attention_backward "
          f"{attention_backward_ms(a):.1f} vs {attention_backward_ms(b):.1f} ms per step")
a, b = runs.get("llama7b-r1024-recompute"), runs.get("llama7b-refresh-every-step")
if a and b:
    refresh = b["step_s_median"] - a["step_s_median"]
    tokens = a["tokens_per_s"] * a["step_s_median"]
    eff = tokens / (a["step_s_median"] + refresh / 200)
    print(f"\n7B projector refresh (224 matrices, warm; with forming G): {refresh:.2f} s (target <= 3 s); "
          f"effective rate at update_proj_gap 200: {eff:,.0f} tok/s (target >= 11,000)")
    c = runs.get("llama7b-r1024-recompute-autotune")
    if c:
        print(f"  with GEMM autotuning (the refresh cost as above): "
              f"{tokens / (c['step_s_median'] + refresh / 200):,.0f} tok/s")
