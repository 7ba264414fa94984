"""A recipe's seeds and its levers ("arms"), kept in the repository and summarised across sessions.

    python benchmarks/recipe_seeds.py benchmarks/results/cpu60/avx512_bf16 --keep /tmp/bench/cpu60_bf16_ta_s1 --arm trivialaugment
    # copies the finished run's curve (metrics.jsonl without the per-step rows) and config.yaml into
    # DIR/trivialaugment/seed<k>/ (k from the run's own config), then prints the summary below
    python benchmarks/recipe_seeds.py benchmarks/results/cpu60/avx512_bf16 --base plain
    # per arm: the seeds, final top-1 (the recipe's own evaluation, flip TTA for the CPU recipes) as
    # mean ± std with its 95% t interval, epochs, run minutes, the minute 80% was first reached, and
    # each arm minus the base arm over the seeds both have (paired by seed)

A 60-minute recipe run is an hour of both cores, and its seeds span sessions: each one is kept as
it ends, so the next session continues with the next seed. A lever is judged by its own spread
against the base arm's on the same CPU kind (one folder per kind; never mix kinds in a folder).
Minutes are from the run's "start" record to each evaluation (decoding included, interpreter
start-up not).
"""
from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import yaml  # noqa: E402

from studies.stats import describe, fmt, paired  # noqa: E402

from bench_vs_timm import curve, finished, records  # noqa: E402  (this folder is on sys.path when run as a script)


def keep(run: Path, arm: str, into: Path) -> Path:
    """Copy a finished run's curve and config into INTO/ARM/seed<k>; return that folder."""
    metrics, config = run / "metrics.jsonl", run / "config.yaml"
    if not metrics.is_file() or not config.is_file():
        raise SystemExit(f"recipe_seeds: {run}: not a vitkit run folder (no metrics.jsonl or config.yaml)")
    if not finished(run, "vitkit", 0):
        raise SystemExit(f"recipe_seeds: {run}: the run has not finished (no 'end' record with status finished)")
    seed = yaml.safe_load(config.read_text())["run"]["seed"]
    dest = into / arm / f"seed{seed}"
    dest.mkdir(parents=True, exist_ok=True)
    # The per-step rows are 9/10 of the file and nothing here reads them; the run folder keeps them.
    kept = [r for r in records(run) if r.get("kind") != "step"]
    (dest / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in kept))
    shutil.copy2(config, dest / "config.yaml")
    print(f"kept {run} as {dest}")
    return dest


def run_summary(folder: Path, threshold: float) -> dict:
    rows = records(folder)
    start = next((r for r in rows if r.get("kind") == "start"), None)
    if start is None or not finished(folder, "vitkit", 0):
        raise SystemExit(f"recipe_seeds: {folder}: not a kept finished run (no start record, or no 'end' finished)")
    evals = curve(folder)  # (minutes since the start record, top-1) per evaluated epoch
    if not evals:
        raise SystemExit(f"recipe_seeds: {folder}: the run has no evaluated epoch")
    end = next(r for r in rows if r.get("kind") == "end")
    return {"top1": evals[-1][1], "minutes": (end["time"] - start["time"]) / 60,
            "epochs": [r["epoch"] for r in rows if r.get("kind") == "epoch" and r.get("top1") is not None][-1],
            "reached": next((m for m, acc in evals if acc >= threshold), None), "device": start.get("device", "?")}


def summarise(into: Path, base: str | None, threshold: float) -> None:
    arms = {}
    for arm_dir in sorted(p for p in into.iterdir() if p.is_dir()):
        seeds = dict(sorted((int(m.group(1)), run_summary(s, threshold)) for s in arm_dir.iterdir()
                            if (m := re.fullmatch(r"seed(\d+)", s.name)) and (s / "metrics.jsonl").is_file()))
        if seeds:
            arms[arm_dir.name] = seeds
    if not arms:
        raise SystemExit(f"recipe_seeds: {into}: no kept runs (ARM/seed<k>/metrics.jsonl)")
    if base is not None and base not in arms:
        raise SystemExit(f"recipe_seeds: --base {base}: no such arm in {into} (arms: {', '.join(arms)})")
    for device in sorted({r["device"] for seeds in arms.values() for r in seeds.values()}):
        print(f"cpu: {device}")
    for arm, seeds in arms.items():
        print(f"\n{arm}:")
        for s, r in seeds.items():
            when = f"{r['reached']:.1f}" if r["reached"] is not None else "never"
            print(f"  seed {s}: {r['top1']:.2f}% after {r['epochs']} epochs in {r['minutes']:.1f} min; "
                  f"{threshold:g}% at minute {when}")
        print(f"  final top-1: {fmt(describe([r['top1'] for r in seeds.values()]))}")
        print(f"  epochs: {fmt(describe([float(r['epochs']) for r in seeds.values()]), 1)}")
        if base is not None and arm != base:
            diff = paired({s: r["top1"] for s, r in seeds.items()}, {s: r["top1"] for s, r in arms[base].items()})
            print(f"  {arm} − {base}, paired by seed: {fmt(diff)} points")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folder", help="a committed folder of kept runs for one recipe and one CPU kind")
    ap.add_argument("--keep", nargs="+", default=[], metavar="RUN", help="finished run folders to keep first")
    ap.add_argument("--arm", help="the arm the --keep runs belong to (e.g. plain, trivialaugment)")
    ap.add_argument("--base", help="the arm the others are compared with, seed by seed")
    ap.add_argument("--threshold", type=float, default=80.0, help="report the minute this top-1 was first reached")
    a = ap.parse_args()
    into = Path(a.folder)
    if a.keep and not a.arm:
        ap.error("--keep needs --arm (the lever these runs measure, e.g. plain)")
    if a.arm and (not a.arm.replace("_", "").replace("-", "").isalnum()):
        ap.error(f"--arm {a.arm!r}: use letters, digits, '-' and '_' (it names a folder)")
    if into.exists() and not into.is_dir():
        ap.error(f"{into}: not a folder")
    for run in a.keep:
        keep(Path(run), a.arm, into)
    if not into.is_dir():
        ap.error(f"{into}: no such folder (keep a run into it first with --keep RUN --arm NAME)")
    summarise(into, a.base, a.threshold)


if __name__ == "__main__":
    main()
