"""Runs side by side: one metric of several runs against wall-clock minutes, steps or epochs, and a
table of the runs under a folder. Read from each run's metrics.jsonl (and config.yaml) alone.

    vitkit plot runs/a runs/b --out cmp.png [--x minutes|steps|epochs] [--metric top1|loss|lr]
    vitkit runs runs/
"""
from __future__ import annotations

import os
from pathlib import Path

import yaml

from ..checkpoint.train_state import RUNNING_MARKER
from ..errors import UsageError
from .metrics_file import read_metrics

METRICS = {"top1": ("epoch", "top1", "test top-1 (%)"), "loss": ("step", "loss", "training loss"),
           "lr": ("step", "lr", "learning rate")}
AXES = ("minutes", "steps", "epochs")


def _xs(rows: list[dict], picked: list[dict], x: str) -> list[float]:
    if x == "steps":
        return [r["step"] for r in picked]
    if x == "epochs":  # a step record's epoch is the one it belongs to; an evaluation ends its epoch
        return [r["epoch"] if r["kind"] == "epoch" else r["epoch"] - 1 + 0.5 for r in picked]
    starts = [r["time"] for r in rows if r.get("kind") == "start"] or [rows[0]["time"]]
    return [(r["time"] - starts[0]) / 60 for r in picked]


def run_labels(runs: list[Path]) -> list[str]:
    """Each run's folder name, or parent/name where names repeat (seed0/vitkit, seed1/vitkit)."""
    paths = [Path(r).resolve() for r in runs]
    names = [p.name for p in paths]
    if len(set(names)) == len(names):
        return names
    return [f"{p.parent.name}/{p.name}" for p in paths]


def plot_runs(runs: list[Path], out: Path, x: str = "minutes", metric: str = "top1") -> Path:
    """One metric of every run on one axis, labelled by run name; returns the PNG path."""
    from .figures import _save, plt  # matplotlib on first use: `vitkit --help` need not pay for it

    if x not in AXES:
        raise UsageError(f"--x {x}: choose one of {', '.join(AXES)}")
    if metric not in METRICS:
        raise UsageError(f"--metric {metric}: choose one of {', '.join(METRICS)}")
    kind, key, ylabel = METRICS[metric]
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for run, label in zip(runs, run_labels(runs)):
        rows = read_metrics(run)
        picked = [r for r in rows if r.get("kind") == kind and r.get(key) is not None]
        if not picked:
            raise UsageError(f"{run}: no {metric} values in metrics.jsonl")
        ax.plot(_xs(rows, picked, x), [r[key] for r in picked], "o-" if kind == "epoch" else "-",
                label=label, markersize=3)
    ax.set_xlabel({"minutes": "wall-clock minutes since start", "steps": "optimizer step", "epochs": "epoch"}[x])
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return _save(fig, out)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def run_status(run: Path, rows: list[dict]) -> str:
    """finished | interrupted | running | failed, from the last start/end records and the marker."""
    marker = run / RUNNING_MARKER
    if marker.exists():
        pid, _, host = marker.read_text().strip().partition(" ")
        if host != os.uname().nodename or (pid.isdigit() and _alive(int(pid))):
            return "running"
    last = next((r for r in reversed(rows) if r.get("kind") in ("start", "end")), {})
    if last.get("kind") == "end":
        return {"stopped": "interrupted"}.get(last.get("status"), last.get("status", "finished"))
    return "interrupted"  # started, no end record, no live process: killed


def run_rows(folder: Path) -> list[dict]:
    """One dict per run (a folder with metrics.jsonl) at most two levels under `folder`."""
    if not folder.is_dir():
        raise UsageError(f"{folder}: no such directory")
    runs = sorted({p.parent for p in [*folder.glob("metrics.jsonl"), *folder.glob("*/metrics.jsonl"),
                                      *folder.glob("*/*/metrics.jsonl")]})
    table = []
    for run in runs:
        rows = read_metrics(run)
        cfg = yaml.safe_load((run / "config.yaml").read_text()) if (run / "config.yaml").exists() else {}
        evals = [r for r in rows if r.get("kind") == "epoch"]
        starts = [r["time"] for r in rows if r.get("kind") == "start"]
        last_t = max((r.get("time", 0) for r in rows), default=0)
        tops = [r["top1"] for r in evals if r.get("top1") is not None]
        table.append({"name": str(run.relative_to(folder)) if run != folder else run.name,
                      "model": (cfg.get("model") or {}).get("name", "?"),
                      "epochs": f"{evals[-1]['epoch'] if evals else 0}/{(cfg.get('optim') or {}).get('epochs', '?')}",
                      "best_top1": max(tops) if tops else None,
                      "minutes": (last_t - starts[0]) / 60 if starts else None, "status": run_status(run, rows)})
    return table


def format_table(table: list[dict]) -> str:
    head = ("run", "model", "epochs", "best top-1", "minutes", "status")
    body = [(r["name"], r["model"], r["epochs"], "-" if r["best_top1"] is None else f"{r['best_top1']:.2f}%",
             "-" if r["minutes"] is None else f"{r['minutes']:.1f}", r["status"]) for r in table]
    widths = [max(len(str(c)) for c in col) for col in zip(head, *body)]
    return "\n".join("  ".join(str(c).ljust(w) for c, w in zip(line, widths)).rstrip() for line in [head, *body])
