"""`vitkit train | finetune`: the CLI over `vitkit.train()` (training/api.py).

    vitkit train --config recipes/cifar10_vit_tiny_cpu.yaml --data DIR --out runs/cifar
    vitkit finetune --init runs/cifar --data DIR2 --img-size 48 --out runs/ft

Flags come from one table, `training.config.FLAGS` (config key and help); their types come from
the option dataclasses and their choices from `training.config.CHOICES`, so an option is
declared once for recipes, `--set`, these flags and the Python API.
"""
from __future__ import annotations

from ..training.config import CHOICES, FLAGS, field_type

_TYPES = {"int": int, "float": float}


def _add_flag(p, flag: str, key: str, helptext: str, finetune: bool) -> None:
    name = "--" + flag.replace("_", "-")
    t = field_type(key)
    if t.startswith("bool"):
        p.add_argument(name, action="store_true", default=None, help=helptext)
        return
    kind = next((v for k, v in _TYPES.items() if t.startswith(k)), str)
    choices = [c for c in CHOICES.get(key, ()) if c is not None] or None
    p.add_argument(name, type=kind, choices=choices, required=(finetune and flag == "init"), help=helptext)


def register(sub) -> None:
    for name, helptext in (("train", "train a model on an ImageFolder dataset"),
                           ("finetune", "fine-tune pre-trained weights (train with --init and fine-tuning defaults)")):
        p = sub.add_parser(name, help=helptext)
        p.add_argument("--config", help="YAML recipe (see recipes/)")
        for flag, (key, flag_help) in FLAGS.items():
            _add_flag(p, flag, key, flag_help, name == "finetune")
        p.add_argument("--resume", nargs="?", const="yes", choices=["yes", "auto"],
                       help="continue RUN/last.pt in --out; 'auto': continue when it exists, else start "
                            "fresh (one command for a requeued job). Options that would change the model or "
                            "the optimisation are refused; data paths, workers, device, cadence and length apply")
        p.add_argument("--set", action="append", default=[], metavar="SECTION.FIELD=VALUE",
                       help="any other option, e.g. --set data.mixup=0.8 (repeatable)")
        p.set_defaults(func=run_train, finetune=(name == "finetune"))


def run_train(args) -> int:
    from ..training.api import FINETUNE_DEFAULTS, apply_resume
    from ..training.config import flag_sets, load_train_config

    sets = list(args.set) + flag_sets({flag: getattr(args, flag, None) for flag in FLAGS})
    cfg = load_train_config(args.config, sets, base=FINETUNE_DEFAULTS if args.finetune else None)
    apply_resume(cfg, {"yes": True, "auto": "auto"}.get(args.resume))
    from ..training.loop import train  # the data stack (torchvision, ~3 s) only once the config holds

    train(cfg)
    return 0
