"""vitkit's recipe against a plain timm loop, same machine, same wall-clock budget, one after the other.

    python benchmarks/bench_vs_timm.py --data /tmp/c10 --recipe recipes/cifar10_speedrun_cpu.yaml \
        --timm-epochs 5 --out runs/vs_timm
    # prints both accuracy-vs-minutes curves side by side, the ratio, and the CPU's flags;
    # writes runs/vs_timm/curves.png (vitkit viz curves --x minutes) and summary.json

Each run's clock starts when its process starts (decoding and evaluation included) and is
read from its metrics.jsonl. Nothing else may run on the machine meanwhile: both runs own the
cores, and shared cores made earlier timings unusable.
"""
import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from vitkit.hardware import describe_cpu  # noqa: E402


def _start(run: Path) -> float:
    """When a finished run's process started (its first "start" record)."""
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
    return next(r["time"] for r in rows if r.get("kind") == "start")


def curve(run: Path, t_launch: float) -> list[tuple[float, float]]:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
    return [((r["time"] - t_launch) / 60, r["top1"]) for r in rows if r.get("kind") == "epoch" and r.get("top1") is not None]


def at(c: list[tuple[float, float]], minutes: float) -> float | None:
    """Best accuracy reached by `minutes` (None before the first evaluation)."""
    seen = [acc for m, acc in c if m <= minutes + 1e-9]
    return max(seen) if seen else None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--recipe", default=str(ROOT / "recipes" / "cifar10_speedrun_cpu.yaml"))
    ap.add_argument("--timm-epochs", type=int, default=5)
    ap.add_argument("--out", default="runs/vs_timm")
    ap.add_argument("--reuse-timm", help="a finished timm_loop.py run directory to use instead of running it")
    ap.add_argument("--reuse-vitkit", help="a finished vitkit run directory to use instead of running it")
    ap.add_argument("--set", action="append", default=[], help="passed to vitkit train")
    a = ap.parse_args()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    print(f"CPU: {describe_cpu()}", flush=True)
    runs = {}
    if a.reuse_timm:
        timm_run = Path(a.reuse_timm)
        runs["timm loop"] = (timm_run, _start(timm_run))
    else:
        timm_run = out / "timm_loop"
        t = time.time()
        subprocess.run([sys.executable, str(ROOT / "benchmarks" / "timm_loop.py"), "--data", a.data,
                        "--epochs", str(a.timm_epochs), "--out", str(timm_run)], check=True)
        runs["timm loop"] = (timm_run, t)
    if a.reuse_vitkit:
        vk_run = Path(a.reuse_vitkit)
        runs["vitkit"] = (vk_run, _start(vk_run))
    else:
        vk_run = out / "vitkit"
        t = time.time()
        cmd = [sys.executable, "-m", "vitkit", "train", "--config", a.recipe, "--data", a.data, "--out", str(vk_run),
               "--no-progress"] + [x for s in a.set for x in ("--set", s)]
        subprocess.run(cmd, check=True)
        runs["vitkit"] = (vk_run, t)

    curves = {name: curve(run, t0) for name, (run, t0) in runs.items()}
    print(f"\nCPU: {describe_cpu()}")
    for name, c in curves.items():
        print(f"{name:>10}: " + "  ".join(f"{m:5.1f} min {acc:5.2f}%" for m, acc in c))
    end = {name: c[-1] for name, c in curves.items()}
    budget = max(m for m, _ in end.values())
    print(f"\n{'minutes':>8} | {'timm loop':>10} | {'vitkit':>8}")
    for m in sorted({round(m) for c in curves.values() for m, _ in c} | {8, 16, 24, 32}):
        if m > budget + 1:
            continue
        cells = [at(curves[n], m) for n in ("timm loop", "vitkit")]
        print(f"{m:8d} | " + " | ".join(f"{c:9.2f}%" if c is not None else f"{'-':>10}" for c in cells))
    tl, vk = end["timm loop"], end["vitkit"]
    print(f"\nfinal: timm loop {tl[1]:.2f}% in {tl[0]:.1f} min; vitkit {vk[1]:.2f}% in {vk[0]:.1f} min; "
          f"accuracy ratio {vk[1] / tl[1]:.3f}, time ratio {vk[0] / tl[0]:.3f}")
    summary = {"cpu": describe_cpu(), "curves": curves, "recipe": a.recipe, "timm_epochs": a.timm_epochs,
               "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    subprocess.run([sys.executable, "-m", "vitkit", "viz", "curves", "--x", "minutes", str(timm_run), str(vk_run),
                    "--out", str(out / "curves.png")], check=False)


if __name__ == "__main__":
    main()
