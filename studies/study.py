"""Small-scale studies on CIFAR-10, one command each; prints a Markdown table and writes JSON.

    tar -xzf ../shared/data/cifar10-jpg.tar.gz -C /tmp/c10
    python studies/study.py deit --subset 0.1 --epochs 6 --data /tmp/c10 --out runs/study_deit   # issue 5 (49 min, 2 CPU cores)
    python studies/study.py relpos --subset 0.04 --epochs 8 --data /tmp/c10 --out runs/study_relpos  # issue 6 (14 min)
    python studies/study.py finetune --epochs 8 --finetune-epochs 10 --data /tmp/c10 --out runs/study_ft  # issue 7 (10 min)
    python studies/study.py deit --subset 1.0 --epochs 1 --warmup 0.2 --data /tmp/c10 --out runs/deit_full  # (96 min)
    python studies/study.py deit --data /tmp/c10 --out runs/deit_full --subset 1.0 --epochs 100 --device cuda  # a GPU

Every row of a study uses the same recipe (model, epochs, batch, augmentation, seed); only the
studied factor changes. Accuracy is top-1 on the 10,000 CIFAR-10 test images (or the test
images of the classes a row trains on). Results measured on a 2-core CPU are small-budget
results: they show directions, not the papers' absolute numbers.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from vitkit.training.config import load_train_config
from vitkit.training.loop import train

CLASSES_A = ["airplane", "automobile", "bird", "cat", "deer"]
CLASSES_B = ["dog", "frog", "horse", "ship", "truck"]
CIFAR = ["data.mean=[0.4914, 0.4822, 0.4465]", "data.std=[0.2470, 0.2435, 0.2616]", "data.crop_pct=1.0",
         "data.train_crop=pad_crop"]


def run_row(name: str, out: Path, sets: list[str]) -> dict:
    run = out / name
    if (run / "result.json").exists():  # a study can be re-run to finish the missing rows
        return json.loads((run / "result.json").read_text())
    t = time.time()
    last = train(load_train_config(None, sets + [f"run.out={run}", "run.progress=false", "run.eval_every=1000"]))
    epochs = [json.loads(l) for l in (run / "metrics.jsonl").read_text().splitlines() if '"epoch"' in l]
    epochs = [e for e in epochs if e.get("kind") == "epoch"]
    res = {"row": name, "top1": last["top1"], "best_top1": last["best_top1"],
           "epoch_time_s": sum(e["epoch_time_s"] for e in epochs) / max(len(epochs), 1),
           "wall_s": time.time() - t, "epochs": len(epochs)}
    (run / "result.json").write_text(json.dumps(res))
    print(f"[{name}] top-1 {res['top1']:.2f}%  ({res['epoch_time_s']:.0f} s/epoch)", flush=True)
    return res


def deit(a) -> list[dict]:
    base = CIFAR + [f"data.path={a.data}", f"data.subset={a.subset}", f"optim.epochs={a.epochs}",
                    f"optim.batch_size={a.batch}", f"optim.warmup_epochs={a.warmup}", f"run.device={a.device}",
                    f"data.workers={a.workers}"]
    vit = ["model.overrides={depth: %d}" % a.depth, "model.drop_path_rate=0.0", "optim.lr=2e-3"]
    rows = [run_row("1_vit_scratch", a.out, base + ["model.name=vit_tiny_patch4_32"] + vit),
            run_row("2_resnet18_teacher", a.out, base + ["model.name=resnet18_cifar", "optim.lr=2e-3"])]
    teacher = f"distill.teacher={a.out / '2_resnet18_teacher'}"
    rows.append(run_row("3_deit_hard", a.out, base + ["model.name=deit_tiny_distilled_patch4_32", "distill.kind=hard",
                                                      teacher] + vit))
    rows.append(run_row("4_deit_soft", a.out, base + ["model.name=deit_tiny_distilled_patch4_32", "distill.kind=soft",
                                                      "distill.alpha=0.5", "distill.tau=3.0", teacher] + vit))
    if a.with_optional:
        rows.append(run_row("5_vit_hard_no_token", a.out, base + ["model.name=vit_tiny_patch4_32",
                                                                  "distill.kind=hard", teacher] + vit))
    return rows


def relpos(a) -> list[dict]:
    base = CIFAR + [f"data.path={a.data}", f"data.subset={a.subset}", f"optim.epochs={a.epochs}",
                    f"optim.batch_size={a.batch}", "optim.warmup_epochs=1", "optim.lr=2e-3",
                    "model.name=vit_tiny_patch4_32", "model.drop_path_rate=0.0", f"run.device={a.device}",
                    f"data.workers={a.workers}"]
    forms = [("1_absolute", "learned", "none"), ("2_shaw_only", "none", "shaw"),
             ("3_decomposed_only", "none", "decomposed"), ("4_bias_only", "none", "bias"),
             ("5_absolute+decomposed", "learned", "decomposed")]
    return [run_row(n, a.out, base + ["model.overrides={depth: %d, pos_embed: %s, rel_pos: %s}" % (a.depth, pe, rp)])
            for n, pe, rp in forms]


def finetune(a) -> list[dict]:
    common = CIFAR + [f"data.path={a.data}", f"optim.batch_size={a.batch}", f"run.device={a.device}", f"run.seed={a.seed}",
                      f"data.workers={a.workers}", "model.drop_path_rate=0.0"]
    model = ["model.name=vit_tiny_patch4_32", "model.overrides={depth: %d}" % a.depth]
    pre = run_row("0_pretrain_A_32px", a.out, common + model + [
        f"data.classes={CLASSES_A}", f"data.per_class={a.pretrain_per_class}", f"optim.epochs={a.epochs}",
        "optim.lr=2e-3", "optim.warmup_epochs=1"])
    target = common + [f"data.classes={CLASSES_B}", f"data.per_class={a.finetune_per_class}",
                       f"optim.epochs={a.finetune_epochs}", "optim.warmup_epochs=1"]
    init = f"model.init={a.out / '0_pretrain_A_32px'}"
    ft_lr = f"optim.lr={a.finetune_lr}"
    rows = [pre,
            run_row("1_scratch_B_48px", a.out, target + model + ["model.img_size=48", ft_lr]),
            run_row("2_finetune_B_48px", a.out, target + [init, "model.img_size=48", ft_lr]),
            run_row("3_finetune_B_48px_layer_decay_0.65", a.out, target + [init, "model.img_size=48", ft_lr,
                                                                           "optim.layer_decay=0.65"]),
            run_row("4_finetune_B_32px", a.out, target + [init, ft_lr]),
            run_row("5_linear_probe_B_48px", a.out, target + [init, "model.img_size=48", "optim.lr=5e-3",
                                                              "optim.freeze=backbone"])]
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("study", choices=["deit", "relpos", "finetune"])
    ap.add_argument("--data", required=True, help="extracted CIFAR-10 (train/, test/)")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--subset", type=float, default=0.1, help="fraction of each training class (deit, relpos)")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--warmup", type=float, default=1.0, help="deit: warmup epochs (below --epochs)")
    ap.add_argument("--depth", type=int, default=4)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--seed", type=int, default=0, help="finetune: run.seed of every row")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--with-optional", action="store_true", help="deit: also row 5, distillation without the token")
    ap.add_argument("--pretrain-per-class", type=int, default=1000)
    ap.add_argument("--finetune-per-class", type=int, default=100)
    ap.add_argument("--finetune-epochs", type=int, default=15)
    ap.add_argument("--finetune-lr", type=float, default=1e-3,
                    help="finetune: lr of rows 1-4 (scratch and fine-tunes alike); the probe uses 5e-3")
    a = ap.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    rows = {"deit": deit, "relpos": relpos, "finetune": finetune}[a.study](a)
    (a.out / "results.json").write_text(json.dumps({"args": {k: str(v) for k, v in vars(a).items()}, "rows": rows},
                                                   indent=2))
    print(f"\n| row | test top-1 (%) | s/epoch |\n| --- | --- | --- |")
    for r in rows:
        print(f"| {r['row']} | {r['top1']:.2f} | {r['epoch_time_s']:.0f} |")


if __name__ == "__main__":
    main()
