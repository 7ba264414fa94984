"""The one runner of the seeds' studies: arms × seeds through `vitkit.train()`, one JSON row per
finished run in OUT/runs.jsonl, and summary.md plus a figure made from those rows alone.

A study resumes where it stopped: a run whose row is in runs.jsonl is skipped, a run killed
half-way is trained again from the start (its folder is cleared), and a finished run whose weights
a pending run reads but which stayed on another machine (runs/ is not committed) is trained again
(`rebuilds`). Rows record the machine (CPU
flags or GPU name), torch version and commit, so rows from several machines can be told apart.
Runs are pinned to fp32 (run.precision) and sized in epochs, so rows from different machines
compare; each is evaluated once, after its last epoch. Either one run at a time owning the
machine's cores, or `--shard I/N` with N processes pinned one per core (OMP_NUM_THREADS=1,
`taskset -c I`); each row records the threads it had and N. The processes share one queue: each
takes the next run that no other process holds (an flock on OUT/runs/<run>.lock, released by the
kernel when a process dies, so a killed study leaves no stale claim) and whose `Arm.needs` of the
same seed are finished (a student waits for its teacher, a fine-tune for its pre-training; a run
that needs nothing is never held back by one that does). A static
split would leave a core idle: 3 seeds on 2 processes, split by seed, is 2:1. A file OUT/STOP
makes every process finish its current run and stop (remove it to go on later):

    for i in 0 1; do OMP_NUM_THREADS=1 taskset -c $i python studies/X.py ... --shard $i/2 --workers 0 & done
"""
from __future__ import annotations

import argparse
import fcntl
import json
import os
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch

import vitkit
from vitkit.hardware import describe_cpu

from stats import describe, fmt, paired

CIFAR = {"data": {"mean": [0.4914, 0.4822, 0.4465], "std": [0.2470, 0.2435, 0.2616], "crop_pct": 1.0,
                  "train_crop": "pad_crop"},
         "run": {"precision": "fp32", "progress": False}}


@dataclass
class Arm:
    name: str
    config: dict | Callable | None  # sections merged over CIFAR; a callable of the seed (runs it needs
    # depend on the seed); None: nothing is trained, `after` gives the row (an evaluation-only arm)
    data_fraction: float = 1.0
    phase: str = "train"
    epochs: int = 1
    after: Callable | None = None  # (result, args) → extra row fields (e.g. translation sensitivity)
    seeds: int | None = None  # run for the first N seeds only (a deterministic evaluation: once is enough)
    reuse: Callable | None = None  # (seed, args) → the row fields of the same run (same recipe, subset and
    # seed) finished by another study, or None: such a run is not trained again, its row is copied
    needs: tuple = ()  # arms of the study whose run of the same seed this one reads (a teacher, a
    # pre-training): it waits for their rows. Why explicit: waiting for every earlier phase of the seed
    # kept a core idle 16 min in the distillation study (the 100% teacher waited for a 10% student).


@dataclass
class Study:
    name: str
    claim: str
    reference: str  # the arm others are compared with
    arms: Callable[[argparse.Namespace], list[Arm]]
    figure: Callable | None = None
    extra_columns: list[str] = field(default_factory=list)
    contrasts: list[tuple[str, str]] = field(default_factory=list)  # (a, b): a − b paired over seeds, a
    # second table (a claim that compares two non-reference arms: hard against soft distillation)


def merge(*dicts: dict) -> dict:
    out: dict = {}
    for d in dicts:
        for k, v in d.items():
            out[k] = merge(out.get(k, {}), v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def machine() -> str:
    return torch.cuda.get_device_name() if torch.cuda.is_available() else describe_cpu()


def commit() -> str | None:
    r = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                       cwd=Path(__file__).parent)
    return r.stdout.strip() or None


def key(row: dict) -> tuple:
    return (row["arm"], float(row["data_fraction"]), row["phase"], int(row["seed"]))


def read_rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def run_dir(out: Path, arm: Arm, seed: int) -> Path:
    return out / "runs" / f"{arm.name}-f{arm.data_fraction:g}-{arm.phase}-s{seed}"


def train_arm(study: Study, arm: Arm, seed: int, args) -> dict:
    row = {"study": study.name, "arm": arm.name, "data_fraction": arm.data_fraction, "phase": arm.phase, "seed": seed,
           "machine": machine(), "torch": torch.__version__, "commit": commit(), "smoke": bool(args.smoke),
           "threads": torch.get_num_threads(), "processes": args.shard[1]}
    if arm.reuse is not None and (reused := arm.reuse(seed, args)) is not None:
        return {**row, **reused}  # its machine, commit, wall time and top-1, and where it lies
    if arm.config is None:  # evaluation only
        t0 = time.time()
        row.update(arm.after(None, args))
        return {**row, "wall_s": round(time.time() - t0, 1), "epochs": 0, "steps": 0}
    folder = run_dir(args.out, arm, seed)
    if folder.exists():  # killed half-way: train again from the start
        shutil.rmtree(folder)
    config = arm.config(seed) if callable(arm.config) else arm.config
    # Evaluated once, after the last epoch: a row is that final top-1, and best.pt (what a later arm
    # loads as its teacher or pre-trained start) is the final model, never one picked by test
    # accuracy. Evaluation draws no random number, so rows made while every epoch was evaluated
    # are unchanged (tests/test_train.py::test_evaluating_less_often_changes_no_weight_and_no_final_top1);
    # at 10% data the nine skipped evaluations were ~40% of a run's time.
    cfg = merge(CIFAR, {"run": {"eval_every": arm.epochs}}, config,
                {"data": {"subset": arm.data_fraction if arm.data_fraction < 1 else None, "subset_seed": seed,
                          "workers": args.workers},
                 "run": {"seed": seed}, "optim": {"epochs": arm.epochs}})
    t0 = time.time()
    result = vitkit.train(cfg, data=args.data, out=folder, max_steps=args.max_steps)
    row.update({"top1": result.top1, "wall_s": round(time.time() - t0, 1), "epochs": arm.epochs,
                # the closing record's step: the optimizer steps taken (step records come every log_every)
                "steps": max((m["step"] for m in result.metrics if "step" in m), default=0)})
    if arm.after is not None:
        row.update(arm.after(result, args))
    return row


POLL_S = 15.0  # how often a process with nothing ready looks again (a run takes minutes)


def jobs(study: Study, args) -> list[tuple[int, Arm]]:
    """Every (seed, arm) of the study in the order they are taken: all arms of seed 0, then seed 1, ...
    An arm whose runs read another arm's (a teacher, a pre-training) names it in `needs`; a need that is
    not one of the study's arms would never run, so it is refused here rather than waited for."""
    arms = study.arms(args)
    for arm in arms:
        for need in arm.needs:
            if not any(need is other for other in arms):
                raise ValueError(f"{study.name}: arm {arm.name} needs {need.name}, which is not one of the study's arms")
    return [(seed, arm) for seed in range(args.seeds) for arm in arms if arm.seeds is None or seed < arm.seeds]


def job_key(seed: int, arm: Arm) -> tuple:
    return (arm.name, float(arm.data_fraction), arm.phase, seed)


def finished(out: Path, arm: Arm, seed: int) -> bool:
    """The run's folder holds best.pt, which is written once, after the last epoch (eval_every = epochs)."""
    return (run_dir(out, arm, seed) / "best.pt").exists()


def rebuilds(pending: list[tuple[int, Arm]], done: set, out: Path) -> list[tuple[int, Arm]]:
    """Runs that a pending run reads whose row is in runs.jsonl but whose folder is not on this machine:
    runs/ is not committed, so a study continued on another machine has the rows of its pre-trainings
    but not their weights. Such a run is trained again (same recipe, subset and seed); its new row is
    marked `rebuilt` and the tables keep the first row (by_arm). A reused run (`Arm.reuse`) lies in
    another study's folder and an evaluation-only one has none: neither is rebuilt here."""
    out_jobs: list[tuple[int, Arm]] = []
    for seed, arm in pending:
        for need in arm.needs:
            job = (seed, need)
            if (need.config is not None and need.reuse is None and job_key(*job) in done
                    and not finished(out, need, seed) and not any(j[0] == seed and j[1] is need for j in out_jobs)):
                out_jobs.append(job)
    return out_jobs


def ready(job: tuple[int, Arm], pending: list[tuple[int, Arm]]) -> bool:
    """None of the runs this one reads (its `needs`, same seed: a teacher's or a pre-training's folder,
    through `Arm.config` or `Arm.after`) is still pending."""
    seed, arm = job
    return not any(other_seed == seed and any(other is need for need in arm.needs) for other_seed, other in pending)


def claim(out: Path, seed: int, arm: Arm) -> int | None:
    """An open descriptor holding an exclusive flock on the run's lock file, or None when another
    live process holds it. The kernel drops the lock when the holder exits, killed or not."""
    path = Path(f"{run_dir(out, arm, seed)}.lock")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def release(fd: int) -> None:
    fcntl.flock(fd, fcntl.LOCK_UN)
    os.close(fd)


def test_tensors(data: str, model, every: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Every `every`-th test image under `data` as the model sees it, (N, C, H, W), and labels (N,)."""
    from vitkit.data.folders import ImageFolderSafe, eval_folder
    from vitkit.data.transforms import transform_for

    ds = ImageFolderSafe(eval_folder(data), transform_for(model), classes=getattr(model, "class_names", None))
    xs, ys = zip(*(item for item in (ds[i] for i in range(0, len(ds), every)) if item is not None))
    return torch.stack(xs), torch.tensor(ys)


def run_study(study: Study, args) -> list[dict]:
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "runs.jsonl"
    order = jobs(study, args)
    while True:
        if (args.out / "STOP").exists():
            print(f"[{study.name}] {args.out / 'STOP'} exists: stopping before the next run", flush=True)
            break
        done = {key(r) for r in read_rows(path)}
        pending = [job for job in order if job_key(*job) not in done]
        redo = rebuilds(pending, done, args.out)
        redo_keys = {job_key(*job) for job in redo}
        pending = redo + pending  # a rebuild is pending: what reads it waits (ready)
        taken, unclaimed = None, False
        for seed, arm in pending:
            fd = claim(args.out, seed, arm)
            if fd is None:
                continue  # another process trains it
            unclaimed = True
            # read again under the lock: a process that just finished this run wrote its row, then unlocked
            wanted = (not finished(args.out, arm, seed) if job_key(seed, arm) in redo_keys
                      else job_key(seed, arm) not in {key(r) for r in read_rows(path)})
            if ready((seed, arm), pending) and wanted:
                taken = (seed, arm, fd)
                break
            release(fd)
        if taken is None:
            if not unclaimed:
                break  # nothing left that no other process holds
            time.sleep(0.2 if args.smoke else POLL_S)  # what is left waits for runs other processes hold
            continue
        seed, arm, fd = taken
        try:
            row = train_arm(study, arm, seed, args)
            if job_key(seed, arm) in redo_keys:
                row["rebuilt"] = True
            with path.open("a") as f:  # a row as soon as its run ends: a killed study loses one run
                f.write(json.dumps(row) + "\n")  # one short write in append mode: processes do not interleave
        finally:
            release(fd)
        print(f"[{study.name}] {arm.name} f={arm.data_fraction:g} seed {seed}: top-1 {row['top1']:.2f}%", flush=True)
    rows = read_rows(path)  # every process's rows so far
    write_summary(study, rows, args.out)
    return rows


def by_arm(rows: list[dict]) -> dict[tuple, dict[int, dict]]:
    """(fraction, phase, arm) → {seed: row}, a run's first row: a `rebuilt` one (the same run trained
    again on another machine for the weights a later run reads) is kept in runs.jsonl, not counted."""
    groups: dict[tuple, dict[int, dict]] = {}
    for r in rows:
        if not r.get("rebuilt"):
            groups.setdefault((float(r["data_fraction"]), r["phase"], r["arm"]), {})[int(r["seed"])] = r
    return groups


def table(study: Study, rows: list[dict]) -> list[dict]:
    """One entry per (fraction, phase, arm): the statistics of top-1 (and the extra columns), and the
    paired difference to the reference arm at the same fraction and phase."""
    groups = by_arm(rows)
    out = []
    for (frac, phase, arm), by_seed in sorted(groups.items()):
        ref = groups.get((frac, phase, study.reference), {})
        entry = {"data_fraction": frac, "phase": phase, "arm": arm,
                 "top1": describe([r["top1"] for r in by_seed.values()]),
                 "diff": None if arm == study.reference else paired(
                     {s: r["top1"] for s, r in by_seed.items()}, {s: r["top1"] for s, r in ref.items()})}
        for col in study.extra_columns:
            entry[col] = describe([r[col] for r in by_seed.values() if r.get(col) is not None])
        out.append(entry)
    return out


def markdown_table(study: Study, rows: list[dict]) -> list[str]:
    """The study's table as Markdown lines (summary.md and docs/claims.md show the same one)."""
    lines = ["| fraction | phase | arm | top-1 | Δ to reference |" + "".join(f" {c} |" for c in study.extra_columns),
             "| --- | --- | --- | --- | --- |" + " --- |" * len(study.extra_columns)]
    for e in table(study, rows):
        cells = [f"{e['data_fraction']:g}", e["phase"], e["arm"], fmt(e["top1"]), "–" if e["diff"] is None else fmt(e["diff"])]
        cells += [fmt(e[c]) for c in study.extra_columns]
        lines.append("| " + " | ".join(cells) + " |")
    if study.contrasts:
        columns = ["top1"] + study.extra_columns
        lines += ["", "| fraction | phase | contrast |" + "".join(f" {c} |" for c in columns),
                  "| --- | --- | --- |" + " --- |" * len(columns)]
        groups = by_arm(rows)
        for frac, phase in sorted({(f, p) for f, p, _ in groups}):
            for a, b in study.contrasts:
                left, right = groups.get((frac, phase, a)), groups.get((frac, phase, b))
                if left and right:
                    cells = [fmt(paired({s: r[c] for s, r in left.items() if r.get(c) is not None},
                                        {s: r[c] for s, r in right.items() if r.get(c) is not None})) for c in columns]
                    lines.append(f"| {frac:g} | {phase} | {a} − {b} | " + " | ".join(cells) + " |")
    return lines


def count_runs(rows: list[dict]) -> str:
    """"N runs", and the rebuilt rows that by_arm leaves out, for summary.md and docs/claims.md."""
    rebuilt = sum(bool(r.get("rebuilt")) for r in rows)
    return f"{len(rows) - rebuilt} runs" + (
        f", and {rebuilt} trained again for their weights on another machine, not counted" if rebuilt else "")


def write_summary(study: Study, rows: list[dict], out: Path) -> Path:
    lines = [f"# {study.name}", "", study.claim, "",
             f"Made from {out / 'runs.jsonl'} alone ({count_runs(rows)}; machines: "
             f"{'; '.join(sorted({r['machine'] for r in rows}))}). Top-1 on the test images (%), mean ± std over "
             f"seeds, 95% interval by the t distribution; Δ = arm − {study.reference} over shared seeds.", ""]
    lines += markdown_table(study, rows)
    path = out / "summary.md"
    path.write_text("\n".join(lines) + "\n")
    if study.figure is not None and rows:
        study.figure(table(study, rows), out / "figure.png")
    return path


def bar_figure(table: list[dict], path: Path, column: str = "top1", label: str = "test top-1 (%)") -> None:
    """One bar per (fraction, phase, arm) with its 95% interval: the figure of a study without a curve."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [f"{e['arm']}\n{e['data_fraction']:g}" for e in table]
    means = [e[column]["mean"] for e in table]
    err = [0 if e[column]["std"] is None else e[column]["hi"] - e[column]["mean"] for e in table]
    fig, ax = plt.subplots(figsize=(max(5, 0.9 * len(names)), 3.8))
    ax.bar(range(len(names)), means, yerr=err, capsize=3, color="#4c72b0")
    ax.set_xticks(range(len(names)), names, fontsize=8)
    ax.set_ylabel(label)
    ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def parse(study: Study, extra: Callable | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=study.claim)
    ap.add_argument("--data", required=True, help="CIFAR-10 in ImageFolder layout (train/, test/)")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--smoke", action="store_true", help="the whole pipeline on a tiny budget, in well under a minute; no claim")
    ap.add_argument("--workers", type=int, default=2)
    if extra is not None:
        extra(ap)
    ap.add_argument("--shard", default="0/1", help="I/N: this is process I of N sharing the study's queue "
                    "(one per core; N goes into every row)")
    args = ap.parse_args()
    try:
        args.shard = tuple(int(v) for v in args.shard.split("/"))
        assert len(args.shard) == 2 and 0 <= args.shard[0] < args.shard[1]
    except (ValueError, AssertionError):
        ap.error(f"--shard {args.shard}: give I/N with 0 <= I < N")
    args.max_steps = 2 if args.smoke else None
    return args
