"""vitkit's recipe against a plain timm loop, same machine, same session, seed by seed.

    python benchmarks/bench_vs_timm.py --data /tmp/c10 --out runs/vs_timm --seeds 3
    # per seed: the timm loop (benchmarks/timm_loop.py, 5 epochs), then the recipe
    # (recipes/cifar10_speedrun_cpu.yaml, 31-minute budget), each owning the cores: ~1 h a seed
    # on 2 AVX2 cores. Prints both accuracy-vs-minutes curves, each runner's final top-1 as
    # mean ± std with its 95% t interval, the accuracy ratio per seed and over seeds, and the
    # CPU's flags; writes OUT/summary.json and OUT/curves.png (vitkit viz curves --x minutes).

Runs live in OUT/seed<k>/{timm_loop,vitkit}. A finished run is kept and not rerun, so a killed
benchmark continues where it stopped (a half-finished run is started again from scratch: its
timing would be unusable). Each run's clock starts when the benchmark launches its process
(OUT/seed<k>/<runner>/launch.json; decoding and evaluation included). Nothing else may run on
the machine meanwhile: both runs own the cores, and shared cores made earlier timings unusable.
`--reuse-timm DIR` / `--reuse-vitkit DIR` use a finished run as seed 0's instead of running it.

Pairs span sessions: `--keep DIR` (a folder in the repository, committed) receives each finished run's
small files (metrics.jsonl, launch.json, config.yaml; no weights) as soon as it ends, and a run already
finished in DIR is read from there and not rerun. A later session on the same CPU kind continues with
the next seed; each pair still runs back to back, so every per-seed ratio is a same-machine ratio.

    python benchmarks/bench_vs_timm.py --data /tmp/c10 --out /tmp/bench/vs_timm --seeds 3 \
        --keep benchmarks/results/vs_timm/avx512_bf16

An equal-time peer for pairs already kept: `--vitkit-from DIR` reads every seed's vitkit run from
another kept folder and runs only timm loops (e.g. sized to the recipe's 31 minutes on this kind);
those timm loops ran hours after the vitkit runs, so say so next to the ratio.

    python benchmarks/bench_vs_timm.py --data /tmp/c10 --out /tmp/bench/vs_timm8 --seeds 3 --timm-epochs 8 \
        --keep benchmarks/results/vs_timm/avx512_bf16_timm8ep --vitkit-from benchmarks/results/vs_timm/avx512_bf16
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))

from studies.stats import describe, fmt  # noqa: E402
from vitkit.hardware import describe_cpu  # noqa: E402

RUNNERS = ("timm loop", "vitkit")


def records(run: Path) -> list[dict]:
    path = run / "metrics.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def launched(run: Path) -> float:
    """When the run's process was launched: launch.json when this benchmark started it, else the
    run's own "start" record (a reused run; that one leaves out the interpreter's start-up)."""
    stamp = run / "launch.json"
    if stamp.exists():
        return json.loads(stamp.read_text())["time"]
    return next(r["time"] for r in records(run) if r.get("kind") == "start")


def finished(run: Path, runner: str, timm_epochs: int) -> bool:
    rows = records(run)
    if runner == "vitkit":
        return any(r.get("kind") == "end" and r.get("status") == "finished" for r in rows)
    return sum(r.get("kind") == "epoch" for r in rows) >= timm_epochs


def curve(run: Path) -> list[tuple[float, float]]:
    """(minutes since launch, test top-1) after every evaluated epoch."""
    t0 = launched(run)
    return [((r["time"] - t0) / 60, r["top1"]) for r in records(run)
            if r.get("kind") == "epoch" and r.get("top1") is not None]


def at(c: list[tuple[float, float]], minutes: float) -> float | None:
    """Best accuracy reached by `minutes` (None before the first evaluation)."""
    seen = [acc for m, acc in c if m <= minutes + 1e-9]
    return max(seen) if seen else None


def command(runner: str, run: Path, seed: int, a) -> list[str]:
    if runner == "timm loop":
        return [sys.executable, str(ROOT / "benchmarks" / "timm_loop.py"), "--data", a.data,
                "--epochs", str(a.timm_epochs), "--seed", str(seed), "--out", str(run)]
    return [sys.executable, "-m", "vitkit", "train", "--config", a.recipe, "--data", a.data, "--out", str(run),
            "--no-progress", "--set", f"run.seed={seed}"] + [x for s in a.set for x in ("--set", s)]


KEPT = ("metrics.jsonl", "launch.json", "config.yaml")  # what --keep copies: the curve and its clock, no weights


def sub(seed: int, runner: str) -> Path:
    return Path(f"seed{seed}") / ("timm_loop" if runner == "timm loop" else "vitkit")


def run_dir(out: Path, seed: int, runner: str, a) -> Path:
    if runner == "vitkit" and a.vitkit_from:
        return Path(a.vitkit_from) / sub(seed, runner)
    reuse = {"timm loop": a.reuse_timm, "vitkit": a.reuse_vitkit}[runner]
    if seed == 0 and reuse:
        return Path(reuse)
    if a.keep and finished(Path(a.keep) / sub(seed, runner), runner, a.timm_epochs):
        return Path(a.keep) / sub(seed, runner)
    return out / sub(seed, runner)


def keep(run: Path, seed: int, runner: str, a) -> None:
    """Copy a finished run's curve into --keep (nothing when it is already read from there or from
    --vitkit-from's kept folder: a second copy of a committed curve)."""
    dest = Path(a.keep) / sub(seed, runner)
    if dest.resolve() == run.resolve() or (runner == "vitkit" and a.vitkit_from):
        return
    dest.mkdir(parents=True, exist_ok=True)
    for name in KEPT:
        if (run / name).exists():
            shutil.copy2(run / name, dest / name)


def ensure(runner: str, run: Path, seed: int, a) -> None:
    """Run it unless a finished run is already there."""
    if finished(run, runner, a.timm_epochs):
        print(f"seed {seed} {runner}: finished run in {run}, kept", flush=True)
        return
    if run.exists():
        shutil.rmtree(run)  # a half-finished run: its clock is broken, start it again
    run.mkdir(parents=True)
    (run / "launch.json").write_text(json.dumps({"time": time.time(), "cpu": describe_cpu(),
                                                 "utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime())}))
    print(f"seed {seed} {runner}: {' '.join(command(runner, run, seed, a))}", flush=True)
    subprocess.run(command(runner, run, seed, a), check=True)


def report(curves: dict[int, dict[str, list]]) -> dict:
    """Print the curves, the finals and the ratios; return them for summary.json."""
    for seed, by in curves.items():
        for name, c in by.items():
            print(f"seed {seed} {name:>9}: " + "  ".join(f"{m:5.1f} min {acc:5.2f}%" for m, acc in c))
    print(f"\n{'minutes':>8} | " + " | ".join(f"{n} (mean of {len(curves)})" for n in RUNNERS))
    for m in (8, 16, 24, 32):
        cells = [[at(by[n], m) for by in curves.values()] for n in RUNNERS]
        print(f"{m:8d} | " + " | ".join(f"{sum(c) / len(c):21.2f}%" if None not in c else f"{'-':>22}"
                                        for c in cells))
    final = {n: {s: by[n][-1] for s, by in curves.items()} for n in RUNNERS}
    stats = {n: describe([acc for _, acc in final[n].values()]) for n in RUNNERS}
    minutes = {n: describe([m for m, _ in final[n].values()]) for n in RUNNERS}
    ratios = {s: final["vitkit"][s][1] / final["timm loop"][s][1] for s in curves}
    ratio = describe(list(ratios.values()))
    print()
    for n in RUNNERS:
        print(f"final top-1 {n:>9}: {fmt(stats[n])} in {fmt(minutes[n], 1)} min")
    print("accuracy ratio per seed: " + ", ".join(f"seed {s} {r:.3f}" for s, r in ratios.items()))
    print(f"accuracy ratio vitkit / timm loop: {fmt(ratio, 3)}")
    return {"final": {n: {str(s): v for s, v in f.items()} for n, f in final.items()}, "top1": stats,
            "minutes": minutes, "ratio_per_seed": {str(s): r for s, r in ratios.items()}, "ratio": ratio}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--recipe", default=str(ROOT / "recipes" / "cifar10_speedrun_cpu.yaml"))
    ap.add_argument("--timm-epochs", type=int, default=5)
    ap.add_argument("--seeds", type=int, default=1, help="seed pairs 0..N-1, timm loop then vitkit for each")
    ap.add_argument("--out", default="runs/vs_timm")
    ap.add_argument("--reuse-timm", help="a finished timm_loop.py run directory to use as seed 0's")
    ap.add_argument("--reuse-vitkit", help="a finished vitkit run directory to use as seed 0's")
    ap.add_argument("--set", action="append", default=[], help="passed to vitkit train")
    ap.add_argument("--keep", help="a committed folder that receives each finished run's curve and is read first")
    ap.add_argument("--vitkit-from", help="a kept folder to read every seed's vitkit run from (only timm loops run)")
    a = ap.parse_args()
    if a.seeds < 1:
        ap.error(f"--seeds {a.seeds}: give 1 or more")
    if a.keep and Path(a.keep).exists() and not Path(a.keep).is_dir():
        ap.error(f"--keep {a.keep}: not a folder")
    for flag, runner, reuse in (("--reuse-timm", "timm loop", a.reuse_timm), ("--reuse-vitkit", "vitkit", a.reuse_vitkit)):
        # A reused folder is the user's: never cleared and rerun like a half-finished seed folder.
        if reuse and not finished(Path(reuse), runner, a.timm_epochs):
            ap.error(f"{flag} {reuse}: not a finished {runner} run (no metrics.jsonl, or it stopped early)")
    if a.vitkit_from:
        if a.reuse_vitkit:
            ap.error("--vitkit-from and --reuse-vitkit: give one")
        # Checked before any timm loop runs: finding a missing seed after an hour of timm wastes it.
        missing = [s for s in range(a.seeds) if not finished(Path(a.vitkit_from) / sub(s, "vitkit"), "vitkit", a.timm_epochs)]
        if missing:
            ap.error(f"--vitkit-from {a.vitkit_from}: no finished vitkit run for seed(s) {', '.join(map(str, missing))}")
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    print(f"CPU: {describe_cpu()}", flush=True)
    dirs = {s: {n: run_dir(out, s, n, a) for n in RUNNERS} for s in range(a.seeds)}
    for s, by in dirs.items():
        for n, run in by.items():
            ensure(n, run, s, a)
            if a.keep:
                keep(run, s, n, a)
    curves = {s: {n: curve(run) for n, run in by.items()} for s, by in dirs.items()}
    print(f"\nCPU: {describe_cpu()}")
    result = report(curves)
    summary = {"cpu": describe_cpu(), "recipe": a.recipe, "timm_epochs": a.timm_epochs, "set": a.set,
               "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
               "runs": {str(s): {n: str(run) for n, run in by.items()} for s, by in dirs.items()},
               "curves": {str(s): by for s, by in curves.items()}, **result}
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    subprocess.run([sys.executable, "-m", "vitkit", "viz", "curves", "--x", "minutes",
                    *[str(run) for by in dirs.values() for run in by.values()], "--out", str(out / "curves.png")],
                   check=False)


if __name__ == "__main__":
    main()
