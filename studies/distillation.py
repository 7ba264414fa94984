"""Claim (DeiT): a distillation token trained on the argmax of a CNN teacher (hard distillation)
lets a ViT do well without pre-training — better than soft distillation.

    python studies/distillation.py --data /tmp/c10 --out studies/results/distillation --seeds 3 --shard 0/2 --workers 0 --teachers studies/results/data_hunger   # and 1/2
    python studies/distillation.py --data DIR --out /tmp/smoke --seeds 1 --smoke           # CI: no claim

Arms at 10% and 100% of the training set: the half-width CIFAR ResNet-18 teacher (phase
"teacher", the data_hunger study's CNN recipe at the same fraction and seed, trained here), then
the distilled ViT-Ti/4 (6 blocks) with no distillation (the reference: its two heads both learn the labels), soft
(α 0.5, τ 3) and hard distillation. Test top-1 of the class head, the distillation head and both
(their mean, what the model predicts).

`--teachers studies/results/data_hunger`: a teacher is the data_hunger study's CNN run of the same
fraction and seed — the same recipe, subset and seed, so the same weights — when that study's
folder holds it finished (its row and its run folder); it is then not trained again (its row is
copied, with `reused_from`). The runs' folders are not committed: this helps on the machine that
ran data_hunger, and elsewhere the teachers are trained here as usual.
"""
from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from data_hunger import CNN, STEPS_EPOCHS  # noqa: E402
from runner import Arm, Study, bar_figure, parse, read_rows, run_dir, run_study, test_tensors  # noqa: E402

FRACTIONS = (0.1, 1.0)
VIT = {"model": {"name": "deit_tiny_distilled_patch4_32", "drop_path_rate": 0.0, "overrides": {"depth": 6}},
       "data": {"label_smoothing": 0.0, "cache": "memory"},
       "optim": {"batch_size": 256, "lr": 2e-3, "warmup_epochs": 0.2, "schedule": "linear"}}
KINDS = {"none": {"kind": "none"}, "soft": {"kind": "soft", "alpha": 0.5, "tau": 3.0}, "hard": {"kind": "hard"}}


def heads(result, args) -> dict:
    """Test top-1 (%) of the class head, the distillation head and their mean."""
    import vitkit

    model = vitkit.load_model(result.out)
    x, y = test_tensors(args.data, model)
    model.train()  # both heads: no dropout in this recipe, so train mode only changes what is returned
    with torch.no_grad():
        cls, dist = (torch.cat(t) for t in zip(*(model(b) for b in x.split(500))))
    acc = lambda logits: 100 * (logits.argmax(1) == y).float().mean().item()  # noqa: E731
    return {"top1_cls_head": acc(cls), "top1_dist_head": acc(dist), "top1_both": acc((cls + dist) / 2)}


def data_hunger_teacher(fraction: float):
    """(seed, args) → the row of data_hunger's finished CNN run at `fraction` and that seed under
    --teachers, with `reused_from` its folder; None when there is none (then it is trained here)."""
    def find(seed: int, args) -> dict | None:
        study = getattr(args, "teachers", None)
        if study is None:
            return None
        folder = run_dir(study, Arm("cnn", CNN, data_fraction=fraction), seed)
        rows = [r for r in read_rows(study / "runs.jsonl")
                if (r["arm"], float(r["data_fraction"]), r["phase"], int(r["seed"]), bool(r.get("smoke")))
                == ("cnn", float(fraction), "train", seed, bool(args.smoke))]
        if not rows or not (folder / "best.pt").exists():
            return None
        keep = ("machine", "torch", "commit", "threads", "processes", "top1", "wall_s", "epochs", "steps")
        return {**{k: rows[-1][k] for k in keep if k in rows[-1]}, "reused_from": str(folder)}
    return find


def arms(args) -> list[Arm]:
    out = []
    small = {"optim": {"batch_size": 16}} if args.smoke else {}
    for f in FRACTIONS:
        epochs = 1 if args.smoke else max(1, round(STEPS_EPOCHS / f))
        teacher = Arm("cnn_teacher", {**CNN, "optim": {**CNN["optim"], **small.get("optim", {})}}, data_fraction=f,
                      phase="teacher", epochs=epochs, reuse=data_hunger_teacher(f))
        out.append(teacher)
        for name, distill in KINDS.items():
            def config(seed, distill=distill, teacher=teacher):
                model = {**VIT["model"], "overrides": {"depth": 1 if args.smoke else 6}}
                reused = teacher.reuse(seed, args)
                folder = reused["reused_from"] if reused else run_dir(args.out, teacher, seed)
                d = {**distill, **({"teacher": str(folder)} if distill["kind"] != "none" else {})}
                return {**VIT, "model": model, "optim": {**VIT["optim"], **small.get("optim", {})}, "distill": d}
            out.append(Arm(name, config, data_fraction=f, epochs=epochs, after=heads,
                           needs=(teacher,) if distill["kind"] != "none" else ()))
    return out


STUDY = Study("distillation", "A distillation token trained on a CNN teacher's argmax (hard) lets a ViT do well "
              "without pre-training, better than soft distillation (DeiT).", reference="none", arms=arms, figure=bar_figure,
              extra_columns=["top1_cls_head", "top1_dist_head", "top1_both"],
              contrasts=[("hard", "soft")])

if __name__ == "__main__":
    args = parse(STUDY, extra=lambda ap: ap.add_argument(
        "--teachers", type=Path, help="a data_hunger study folder whose finished CNN runs are reused as the teachers"))
    if args.teachers is not None and not (args.teachers / "runs.jsonl").is_file():  # a typo would train them all
        sys.exit(f"distillation.py: --teachers {args.teachers}: no runs.jsonl there (give a data_hunger study's --out)")
    run_study(STUDY, args)
