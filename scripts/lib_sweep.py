#!/usr/bin/env python3
"""Shared helpers for scripts/sweep_lr.sh and scripts/plot_runs (python3 stdlib only).

Reading metrics.jsonl (src/train/metrics.h): one JSON object per line,
  train records {"step","loss","lr","grad_norm","tokens","tokens_per_s","step_s",
                 "elapsed_s","eta_s","skipped_steps"}   (a NaN loss is written as null)
  eval records  {"step","tokens","val_loss","val_ppl"}  (--eval-only adds "eval_only": true)
A resumed run appends to the same file (the trainer drops the stale records first;
files written otherwise are handled too): a train record whose step is not past
the last train step starts a new segment, and every earlier record from that
step on (written after the checkpoint the run resumed from) is dropped.
A last line cut short by a crash (no newline at the end) is skipped with a warning.

Run status (docs/WORKFLOW.md, "Run status"), first match wins:
  diverged     the run stopped at a non-finite loss (training.nan_policy=stop; found in
               train.log), or its last logged train loss is NaN/Inf, or it exploded:
               last logged train loss > EXPLODE_RATIO (2.0) x the lowest logged train loss
  finished     galore-train exited 0
  interrupted  it exited from a signal (129 HUP, 130 INT, 143 TERM) or never reported an
               exit (the sweep itself was killed, or it is still running)
  failed       any other exit code (bad config, missing data, out of memory: see train.log)
Without a sweep_status.json the newest checkpoint's "reason" stands in for the exit
code (final -> finished, signal -> interrupted).

Command line (used by sweep_lr.sh):
  lib_sweep.py summarize OUT [--explode-ratio R]     writes OUT/summary.md and OUT/summary.csv
  lib_sweep.py run-status RUN_DIR [--explode-ratio R] prints the status of one run
  lib_sweep.py lr-list 1e-3,3e-3 | lr-range 1e-4:1e-2:5   prints one learning rate per line
"""
import csv
import glob
import io
import json
import math
import os
import re
import sys

EXPLODE_RATIO = 2.0
INTERRUPT_CODES = {129: "SIGHUP", 130: "SIGINT", 143: "SIGTERM"}
NAN_STOP_MARK = "training.nan_policy=stop"


class MetricsError(Exception):
    """A bad metrics file; str() is one line naming the file (and line)."""


def _num(v):
    """A JSON value as a float: numbers as is, null as NaN; None when not a number."""
    if v is None:
        return math.nan
    if isinstance(v, bool):
        return None
    if isinstance(v, (int, float)):
        return float(v)
    return None


def read_metrics(path):
    """Returns (train, evals): lists of dicts with float values, in step order.

    Raises MetricsError for a missing, empty or malformed file; the message names
    the file and, for a bad line, its line number."""
    if os.path.isdir(path):
        raise MetricsError(f"{path}: is a directory, not a metrics.jsonl file")
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        raise MetricsError(f"{path}: no such file (give a metrics.jsonl or a run directory that holds one)")
    except OSError as e:
        raise MetricsError(f"{path}: cannot read: {e.strerror}")
    if not raw.strip():
        raise MetricsError(f"{path}: empty (no metrics records yet; did the run start?)")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise MetricsError(f"{path}:{line}: not UTF-8 text; is this a metrics.jsonl file?")
    lines = text.split("\n")
    ends_with_newline = text.endswith("\n")
    train, evals = [], []
    for i, line in enumerate(lines, 1):
        if not line.strip():
            continue
        last_partial = i == len(lines) and not ends_with_newline
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as e:
            if last_partial and i > 1:
                print(f"warning: {path}:{i}: skipping a cut-off last line (the run was killed mid-write)",
                      file=sys.stderr)
                continue
            raise MetricsError(f"{path}:{i}: not a JSON record ({e.msg} at column {e.colno}); "
                               "each line must be one JSON object")
        if not isinstance(rec, dict):
            raise MetricsError(f"{path}:{i}: a JSON {type(rec).__name__}, not an object; "
                               "each line must be one JSON object")
        step = _num(rec.get("step", ""))
        if step is None or math.isnan(step):
            raise MetricsError(f"{path}:{i}: no numeric \"step\" field; is this a galore-train metrics.jsonl?")
        out = {"step": step, "line": i}
        for k, v in rec.items():
            if k == "step":
                continue
            x = _num(v)
            if x is not None:
                out[k] = x
            elif k in ("loss", "val_loss", "val_ppl", "lr", "tokens", "tokens_per_s", "elapsed_s"):
                raise MetricsError(f"{path}:{i}: \"{k}\" is {json.dumps(v)}, expected a number")
        if "loss" in rec:
            # A train record at or before the last train step: the run resumed from
            # an earlier checkpoint, so what was logged from this step on is stale.
            if train and step <= train[-1]["step"]:
                train = [r for r in train if r["step"] < step]
                evals = [r for r in evals if r["step"] < step]
            train.append(out)
        elif "val_loss" in rec:
            evals.append(out)
    if not train and not evals:
        raise MetricsError(f"{path}: no record has a numeric \"loss\" or \"val_loss\"; "
                           "is this a galore-train metrics.jsonl?")
    return train, evals


def metrics_path(arg):
    """A metrics.jsonl file or a run directory holding one."""
    if os.path.isdir(arg):
        return os.path.join(arg, "metrics.jsonl")
    return arg


def _read_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def _checkpoint_reason(run_dir):
    """(reason, step) of the newest complete checkpoint, or (None, None)."""
    steps = sorted(glob.glob(os.path.join(run_dir, "checkpoints", "step_*")), reverse=True)
    for d in steps:
        if os.path.exists(os.path.join(d, "COMPLETE")):
            st = _read_json(os.path.join(d, "trainer_state.json")) or {}
            return st.get("reason"), st.get("step")
    return None, None


def _log_nan_stop(run_dir):
    """The trainer's nan_policy=stop message in train.log: "at step N" (or "") when found, else None."""
    found = None
    try:
        with open(os.path.join(run_dir, "train.log"), errors="replace") as f:
            for line in f:
                if NAN_STOP_MARK in line and "non-finite" in line:
                    m = re.search(r"at step (\d+)", line)
                    found = f" at step {m.group(1)}" if m else ""
    except OSError:
        pass
    return found


def lr_of_dir(run_dir):
    st = _read_json(os.path.join(run_dir, "sweep_status.json")) or {}
    if "lr" in st:
        return str(st["lr"])
    name = os.path.basename(os.path.normpath(run_dir))
    return name[3:] if name.startswith("lr_") else name


def summarize_run(run_dir, explode_ratio=EXPLODE_RATIO):
    """One row of the summary table (a dict); never raises for a bad run."""
    lr = lr_of_dir(run_dir)
    # None: not known (no record); NaN: a logged non-finite value
    row = {"lr": lr, "run_dir": run_dir, "status": "", "note": "", "final_train_loss": None,
           "min_train_loss": None, "best_val_loss": None, "best_val_ppl": None,
           "best_val_step": None, "steps": None, "tokens": None, "wall_s": None, "skipped_steps": 0}
    try:
        row["lr_value"] = float(lr)
    except ValueError:
        row["lr_value"] = math.inf
    train, evals, notes = [], [], []
    mpath = os.path.join(run_dir, "metrics.jsonl")
    if os.path.exists(mpath):
        try:
            train, evals = read_metrics(mpath)
        except MetricsError as e:
            notes.append(str(e))
    else:
        notes.append("no metrics.jsonl")
    if train:
        last = train[-1]
        row["final_train_loss"] = last.get("loss", math.nan)
        finite = [r["loss"] for r in train if math.isfinite(r.get("loss", math.nan))]
        row["min_train_loss"] = min(finite) if finite else None
        row["steps"] = int(last["step"])
        row["tokens"] = int(last["tokens"]) if math.isfinite(last.get("tokens", math.nan)) else None
        row["wall_s"] = last.get("elapsed_s")
        row["skipped_steps"] = int(last.get("skipped_steps", 0) or 0)
    vals = [r for r in evals if math.isfinite(r.get("val_loss", math.nan))]
    if vals:
        best = min(vals, key=lambda r: (r["val_loss"], r["step"]))
        row["best_val_loss"] = best["val_loss"]
        row["best_val_ppl"] = math.exp(best["val_loss"]) if best["val_loss"] < 700 else math.inf
        row["best_val_step"] = int(best["step"])
    status_file = _read_json(os.path.join(run_dir, "sweep_status.json"))
    exit_code = status_file.get("exit_code") if status_file else None
    if (row["wall_s"] is None or not math.isfinite(row["wall_s"])) and status_file and status_file.get("wall_total_s") is not None:
        row["wall_s"] = float(status_file["wall_total_s"])

    fl, ml = row["final_train_loss"], row["min_train_loss"]
    nan_stop = _log_nan_stop(run_dir)
    if nan_stop is not None:
        row["status"] = "diverged"
        notes.insert(0, f"stopped at a non-finite loss{nan_stop} (nan_policy=stop)")
    elif train and not math.isfinite(fl):
        row["status"] = "diverged"
        notes.insert(0, f"non-finite loss at step {int(train[-1]['step'])}")
    elif train and ml is not None and ml > 0 and fl > explode_ratio * ml:
        row["status"] = "diverged"
        notes.insert(0, f"loss exploded: {fl:.4g} > {explode_ratio:g} x min {ml:.4g}")
    elif status_file is not None:
        if exit_code == 0:
            row["status"] = "finished"
        elif exit_code is None:
            row["status"] = "interrupted"
            notes.insert(0, "no exit reported (sweep killed, or still running)")
        elif exit_code in INTERRUPT_CODES:
            row["status"] = "interrupted"
            notes.insert(0, f"stopped by {INTERRUPT_CODES[exit_code]}")
        else:
            row["status"] = "failed"
            notes.insert(0, f"exit code {exit_code}, see train.log")
    else:
        reason, _ = _checkpoint_reason(run_dir)
        if reason == "final":
            row["status"] = "finished"
        elif train or reason:
            row["status"] = "interrupted"
            notes.insert(0, "no final checkpoint")
        else:
            row["status"] = "failed"
    if row["skipped_steps"]:
        notes.append(f"{row['skipped_steps']} skipped step(s)")
    row["note"] = "; ".join(notes)
    return row


def find_runs(out_dir):
    """Run directories of a sweep: lr_* folders, or any folder with a sweep_status.json."""
    runs = []
    for name in sorted(os.listdir(out_dir)):
        d = os.path.join(out_dir, name)
        if os.path.isdir(d) and (name.startswith("lr_") or os.path.exists(os.path.join(d, "sweep_status.json"))):
            runs.append(d)
    return runs


def pick_best(rows):
    """Index of the best run: lowest best val loss among runs that did not diverge
    (falls back to the lowest final train loss when no run has a validation loss)."""
    ok = [i for i, r in enumerate(rows) if r["status"] != "diverged"]
    with_val = [i for i in ok if rows[i]["best_val_loss"] is not None]
    if with_val:
        return min(with_val, key=lambda i: (rows[i]["best_val_loss"], rows[i]["lr_value"])), "best validation loss"
    with_train = [i for i in ok if rows[i]["final_train_loss"] is not None and math.isfinite(rows[i]["final_train_loss"])]
    if with_train:
        return min(with_train, key=lambda i: (rows[i]["final_train_loss"], rows[i]["lr_value"])), \
            "final train loss (no run has a validation loss)"
    return None, None


def fmt_num(x, digits):
    if x is None:
        return ""
    if isinstance(x, float) and not math.isfinite(x):
        return "nan" if math.isnan(x) else ("inf" if x > 0 else "-inf")
    return f"{x:.{digits}f}" if isinstance(x, float) else str(x)


def fmt_duration(s):
    if not isinstance(s, float) or not math.isfinite(s) or s < 0:
        return ""
    t = int(round(s))
    if t >= 3600:
        return f"{t // 3600}h{(t // 60) % 60:02d}m"
    if t >= 60:
        return f"{t // 60}m{t % 60:02d}s"
    return f"{s:.1f}s"


CSV_COLUMNS = ["lr", "status", "best", "final_train_loss", "best_val_loss", "best_val_ppl", "best_val_step",
               "steps", "tokens", "wall_s", "skipped_steps", "note", "run_dir"]


def write_summary(out_dir, explode_ratio=EXPLODE_RATIO):
    """Writes OUT/summary.md and OUT/summary.csv; returns the markdown text."""
    if not os.path.isdir(out_dir):
        raise MetricsError(f"{out_dir}: no such sweep directory")
    rows = [summarize_run(d, explode_ratio) for d in find_runs(out_dir)]
    if not rows:
        raise MetricsError(f"{out_dir}: holds no run directories (lr_*); run scripts/sweep_lr.sh first")
    rows.sort(key=lambda r: (r["lr_value"], r["lr"]))
    best, best_by = pick_best(rows)

    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_COLUMNS)
    for i, r in enumerate(rows):
        w.writerow([r["lr"], r["status"], "yes" if i == best else "", fmt_num(r["final_train_loss"], 6),
                    fmt_num(r["best_val_loss"], 6), fmt_num(r["best_val_ppl"], 4), fmt_num(r["best_val_step"], 0),
                    fmt_num(r["steps"], 0), fmt_num(r["tokens"], 0), fmt_num(r["wall_s"], 1),
                    r["skipped_steps"], r["note"], os.path.relpath(r["run_dir"], out_dir)])
    _write_atomic(os.path.join(out_dir, "summary.csv"), buf.getvalue())

    md = [f"# Learning-rate sweep: {out_dir}", "",
          "| lr | status | final train loss | best val loss | best val ppl | tokens | wall time | note |",
          "|---:|---|---:|---:|---:|---:|---:|---|"]
    for i, r in enumerate(rows):
        lr = f"**{r['lr']}** (best)" if i == best else r["lr"]
        bv = fmt_num(r["best_val_loss"], 4)
        if bv and r["best_val_step"] is not None:
            bv += f" (step {r['best_val_step']})"
        note = r["note"].replace("|", "\\|")
        md.append(f"| {lr} | {r['status']} | {fmt_num(r['final_train_loss'], 4)} | {bv} | "
                  f"{fmt_num(r['best_val_ppl'], 2)} | {fmt_num(r['tokens'], 0)} | {fmt_duration(r['wall_s'])} | "
                  f"{note} |")
    md.append("")
    if best is not None:
        md.append(f"Best: lr = {rows[best]['lr']}, by {best_by} among the runs that did not diverge.")
    else:
        md.append("Best: none (every run diverged or has no losses).")
    md.append(f"Diverged: stopped at a non-finite loss, last train loss NaN/Inf, or last train loss > "
              f"{explode_ratio:g} x its minimum. Runs not finished continue with the same sweep command.")
    text = "\n".join(md) + "\n"
    _write_atomic(os.path.join(out_dir, "summary.md"), text)
    return text


def _write_atomic(path, text):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


_FLOAT = re.compile(r"^[+]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")


def parse_lr(text, what):
    if not _FLOAT.match(text) or float(text) <= 0 or not math.isfinite(float(text)):
        raise MetricsError(f"{what}: '{text}' is not a positive number (e.g. 1e-3 or 0.003)")
    return text


def lr_list(spec):
    vals = [parse_lr(v.strip(), "--lrs") for v in spec.split(",") if v.strip()]
    if not vals:
        raise MetricsError("--lrs: no values; give a comma-separated list such as 1e-3,3e-3")
    seen = set()
    for v in vals:
        if float(v) in seen:
            raise MetricsError(f"--lrs: {v} is listed twice")
        seen.add(float(v))
    return vals


def lr_range(spec):
    parts = spec.split(":")
    if len(parts) != 3:
        raise MetricsError(f"--lr-range {spec}: expected LOW:HIGH:COUNT, e.g. 1e-4:1e-2:5")
    lo = float(parse_lr(parts[0], "--lr-range LOW"))
    hi = float(parse_lr(parts[1], "--lr-range HIGH"))
    if not re.match(r"^\d+$", parts[2]) or int(parts[2]) < 1:
        raise MetricsError(f"--lr-range {spec}: COUNT '{parts[2]}' must be a whole number >= 1")
    n = int(parts[2])
    if hi < lo:
        raise MetricsError(f"--lr-range {spec}: HIGH must be >= LOW")
    if n == 1:
        vals = [lo]
    else:
        vals = [math.exp(math.log(lo) + k * (math.log(hi) - math.log(lo)) / (n - 1)) for k in range(n)]
    out = []
    for v in vals:
        s = f"{v:.3g}"
        if s in out:
            raise MetricsError(f"--lr-range {spec}: values collide at 3 significant digits ({s}); use fewer points")
        out.append(s)
    return out


def main(argv):
    import argparse
    p = argparse.ArgumentParser(prog="lib_sweep.py", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("summarize")
    s.add_argument("out")
    s.add_argument("--explode-ratio", type=float, default=EXPLODE_RATIO)
    s.add_argument("--quiet", action="store_true")
    r = sub.add_parser("run-status")
    r.add_argument("run_dir")
    r.add_argument("--explode-ratio", type=float, default=EXPLODE_RATIO)
    sub.add_parser("lr-list").add_argument("spec")
    sub.add_parser("lr-range").add_argument("spec")
    a = p.parse_args(argv)
    try:
        if a.cmd == "summarize":
            if not (a.explode_ratio > 1):
                raise MetricsError(f"--explode-ratio {a.explode_ratio}: must be > 1")
            text = write_summary(a.out, a.explode_ratio)
            if not a.quiet:
                sys.stdout.write(text)
        elif a.cmd == "run-status":
            print(summarize_run(a.run_dir, a.explode_ratio)["status"])
        elif a.cmd == "lr-list":
            print("\n".join(lr_list(a.spec)))
        elif a.cmd == "lr-range":
            print("\n".join(lr_range(a.spec)))
    except MetricsError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
