"""`vitkit train | finetune | eval | predict`.

    vitkit train --config recipes/cifar10_vit_tiny_cpu.yaml --data DIR --out runs/cifar
    vitkit finetune --init runs/cifar --data DIR2 --img-size 48 --out runs/ft
    vitkit eval --checkpoint runs/cifar --data DIR --json
    vitkit predict --checkpoint runs/cifar cat.jpg photos/ list.txt --topk 3 [--output results.csv]
    vitkit predict --checkpoint model.onnx photos/ --output results.jsonl     # ONNX Runtime
"""
from __future__ import annotations

import json
import sys

from ..errors import UsageError

# flag → (config path, type); flags override the recipe, which overrides the defaults.
_FLAGS = {
    "model": ("model.name", str), "init": ("model.init", str), "head": ("model.head", str), "img_size": ("model.img_size", int),
    "drop_path": ("model.drop_path_rate", float), "data": ("data.path", str), "workers": ("data.workers", int),
    "epochs": ("optim.epochs", int), "batch_size": ("optim.batch_size", int), "lr": ("optim.lr", float),
    "warmup_epochs": ("optim.warmup_epochs", float), "weight_decay": ("optim.weight_decay", float),
    "accum_steps": ("optim.accum_steps", int), "layer_decay": ("optim.layer_decay", float),
    "freeze": ("optim.freeze", str), "ema": ("optim.ema_decay", float), "distill": ("distill.kind", str),
    "teacher": ("distill.teacher", str), "out": ("run.out", str), "seed": ("run.seed", int),
    "device": ("run.device", str), "max_steps": ("run.max_steps", int), "log_every": ("run.log_every", int),
    "precision": ("run.precision", str), "patch_dropout": ("model.patch_dropout", float),
    "cache": ("data.cache", str), "budget_minutes": ("optim.budget_minutes", float),
    "checkpoint_every": ("run.checkpoint_every", str), "val_data": ("data.val_path", str),
    "strategy": ("run.strategy", str),
}
_FINETUNE_DEFAULTS = ["optim.lr=1e-4", "optim.warmup_epochs=1", "optim.weight_decay=0.05", "model.drop_path_rate=0.1"]


def register(sub) -> None:
    for name, helptext in (("train", "train a model on an ImageFolder dataset"),
                           ("finetune", "fine-tune pre-trained weights (train with --init and fine-tuning defaults)")):
        p = sub.add_parser(name, help=helptext)
        p.add_argument("--config", help="YAML recipe (see recipes/)")
        p.add_argument("--model", help="registered model name (vitkit models) or resnet18_cifar, ...")
        p.add_argument("--init", required=(name == "finetune"), help="start from these weights (any checkpoint)")
        p.add_argument("--data", help="folder with train/ and val/ (or test/) in ImageFolder layout; 'sample' = bundled "
                                       "CIFAR-10 sample; or WebDataset shards 'S/train-{000000..000099}.tar' (vitkit shards)")
        p.add_argument("--val-data", metavar="DIR|SHARDS", help="evaluation data (folder or shards); default: beside --data")
        p.add_argument("--out", help="run directory (checkpoints, metrics.jsonl, config.yaml)")
        p.add_argument("--img-size", type=int, help="train at this size (position tables are resampled)")
        p.add_argument("--epochs", type=int)
        p.add_argument("--batch-size", type=int, help="global batch (all processes and accumulation steps)")
        p.add_argument("--lr", type=float)
        p.add_argument("--warmup-epochs", type=float)
        p.add_argument("--weight-decay", type=float)
        p.add_argument("--accum-steps", type=int)
        p.add_argument("--drop-path", type=float)
        p.add_argument("--head", choices=["auto", "new", "keep"],
                       help="with --init: auto (default) replaces the head when the class count or names differ")
        p.add_argument("--layer-decay", type=float, help="layer-wise lr decay, e.g. 0.65")
        p.add_argument("--freeze", choices=["backbone"], help="train the head only (linear probe)")
        p.add_argument("--ema", type=float, metavar="DECAY", help="keep an EMA of weights, e.g. 0.9998")
        p.add_argument("--distill", choices=["none", "soft", "hard"], help="DeiT distillation from --teacher")
        p.add_argument("--teacher", help="teacher checkpoint (a vitkit run of a ResNet, ...)")
        p.add_argument("--seed", type=int)
        p.add_argument("--workers", type=int)
        p.add_argument("--device", choices=["auto", "cpu", "cuda"])
        p.add_argument("--precision", choices=["auto", "fp32", "bf16"],
                       help="auto (default): bf16 on CUDA and on CPUs with native bf16, else fp32")
        p.add_argument("--patch-dropout", type=float, help="drop this fraction of patch tokens in training")
        p.add_argument("--cache", choices=["auto", "memory", "none"],
                       help="decode the data once into memory and augment batches as tensors (auto: when it fits)")
        p.add_argument("--max-steps", type=int, help="stop after this many optimizer steps")
        p.add_argument("--budget-minutes", type=float, metavar="M",
                       help="train for M minutes of wall time: schedule and progressive sizes follow the clock")
        p.add_argument("--log-every", type=int)
        p.add_argument("--checkpoint-every", metavar="N|TIME",
                       help="also write last.pt mid-epoch: every N steps (500) or by time (10m, 90s, 1h)")
        p.add_argument("--deterministic", action="store_true", help="deterministic algorithms (same run, same weights)")
        p.add_argument("--compile", action="store_true", help="torch.compile the model")
        p.add_argument("--strategy", choices=["ddp", "fsdp"],
                       help="under torchrun: ddp (default) or fsdp (FSDP2: shards weights, gradients, optimizer)")
        p.add_argument("--resume", nargs="?", const="yes", choices=["yes", "auto"],
                       help="continue RUN/last.pt in --out; 'auto': continue when it exists, else start "
                            "fresh (one command for a requeued job)")
        p.add_argument("--no-progress", action="store_true", help="no progress bar")
        p.add_argument("--set", action="append", default=[], metavar="SECTION.FIELD=VALUE",
                       help="any other option, e.g. --set data.mixup=0.8 (repeatable)")
        p.set_defaults(func=run_train, finetune=(name == "finetune"))

    p = sub.add_parser("eval", help="evaluate a checkpoint on a folder of images")
    p.add_argument("--checkpoint", required=True, help="run directory, checkpoint file, or anything load_model reads")
    p.add_argument("--data", required=True, help="folder with val/ or test/ (or an ImageFolder root itself)")
    p.add_argument("--split", help="sub-folder to evaluate (default: val, else test)")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--precision", choices=["auto", "fp32", "bf16"], default="auto",
                   help="auto: bf16 on CUDA and on CPUs with native bf16 (AVX-512 BF16, AMX), else fp32")
    p.add_argument("--tta", choices=["none", "flip"], default="none",
                   help="flip: average the logits of each image and its mirror")
    p.add_argument("--knn", type=int, metavar="K",
                   help="k-NN classifier on features instead of the head: DATA/train is the memory")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run_eval)

    p = sub.add_parser("predict", help="classify images: files, folders (recursive), list files")
    p.add_argument("--checkpoint", required=True, help="any checkpoint load_model reads, or an exported .onnx file")
    p.add_argument("images", nargs="+", help="image files, folders (searched recursively) or .txt list files")
    p.add_argument("--topk", type=int, default=5)
    p.add_argument("--output", metavar="FILE.csv|FILE.jsonl", help="write one row per image here (else print)")
    p.add_argument("--runtime", choices=["auto", "torch", "onnx"], default="auto",
                   help="auto (default): onnx for a .onnx checkpoint, else torch")
    p.add_argument("--precision", choices=["auto", "fp32", "bf16"], default="auto",
                   help="torch runtime: auto = bf16 on CUDA and on CPUs with native bf16, else fp32")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--workers", type=int, default=0, help="processes decoding images")
    p.add_argument("--json", action="store_true", help="print a JSON list, one object per image")
    p.set_defaults(func=run_predict)


def run_train(args) -> int:
    from ..train.config import load_train_config
    from ..train.loop import train

    sets = list(args.set)
    for flag, (key, _) in _FLAGS.items():
        value = getattr(args, flag, None)
        if value is not None:
            sets.append(f"{key}={json.dumps(value) if isinstance(value, str) else value}")
    for flag, key in (("deterministic", "run.deterministic"), ("compile", "run.compile")):
        if getattr(args, flag):
            sets.append(f"{key}=true")
    if args.resume == "yes":
        sets.append("run.resume=true")
    if args.no_progress:
        sets.append("run.progress=false")
    cfg = load_train_config(args.config, sets, base=_FINETUNE_DEFAULTS if args.finetune else None)
    if args.resume == "auto":
        from pathlib import Path

        cfg.run.resume = (Path(cfg.run.out) / "last.pt").exists()
    train(cfg)
    return 0


def _load(checkpoint: str):
    from ..checkpoint import load_model

    return load_model(checkpoint)


def run_eval(args) -> int:
    import torch

    from ..train import distributed as dist_utils
    from ..train.data import ImageFolderSafe, eval_folder
    from ..train.evaluate import evaluate, make_eval_loader
    from ..train.predict import transform_for

    if args.batch_size < 1 or args.workers < 0:
        raise UsageError("--batch-size must be at least 1 and --workers at least 0")
    model, device, precision = _load_for(args.checkpoint, "auto", args.precision)
    folder = eval_folder(args.data, args.split)
    if args.knn is not None:  # the head is not used: any class count, any label names
        if not isinstance(model, torch.nn.Module):
            raise UsageError("--knn needs the model's features: use a vitkit checkpoint, not an .onnx file")
        return _run_knn(args, model, ImageFolderSafe(folder, transform_for(model)), folder, device, precision)
    names = getattr(model, "class_names", None)
    ds = ImageFolderSafe(folder, transform_for(model), classes=names)
    if len(ds.classes) != model.cfg.num_classes:
        raise UsageError(f"{folder} has {len(ds.classes)} class folders but the model has {model.cfg.num_classes} classes")
    d = dist_utils.Dist(device=device)
    m = evaluate(model, make_eval_loader(ds, args.batch_size, d, args.workers, False), d, len(ds.classes),
                 precision=precision, tta=args.tta)
    per_class = dict(zip(ds.classes, m["per_class"]))
    if args.json:
        print(json.dumps({"checkpoint": args.checkpoint, "data": str(folder), "images": m["count"],
                          "precision": precision, "tta": args.tta,
                          "skipped": m["skipped"], "loss": m["loss"], "top1": m["top1"], "top5": m["top5"],
                          "per_class": per_class}))
    else:
        print(f"{folder}: {m['count']} images" + (f" ({m['skipped']} unreadable, skipped)" if m["skipped"] else ""))
        print(f"loss {m['loss']:.4f}  top-1 {m['top1']:.2f}%  top-5 {m['top5']:.2f}%  ({precision}"
              + (", flip TTA)" if args.tta == "flip" else ")"))
        for c, acc in per_class.items():
            print(f"  {c:<20} {acc:6.2f}%")
    return 0


def _run_knn(args, model, test_ds, folder, device, precision) -> int:
    """`eval --knn K`: features of DATA/train vote for each evaluation image (train/embed.py)."""
    from ..train.data import ImageFolderSafe, resolve_data_root
    from ..train.embed import embed_dataset, knn_classify
    from ..train.predict import transform_for

    if args.knn < 1:
        raise UsageError(f"--knn {args.knn}: K must be at least 1")
    train_dir = resolve_data_root(args.data) / "train"
    if not train_dir.is_dir():
        raise UsageError(f"--knn needs training images as the memory: {train_dir} does not exist")
    train_ds = ImageFolderSafe(train_dir, transform_for(model), classes=test_ds.classes)
    kw = dict(batch_size=args.batch_size, workers=args.workers, precision=precision, device=device)
    mem, test = embed_dataset(model, train_ds, **kw), embed_dataset(model, test_ds, **kw)
    pred = knn_classify(mem["features"], mem["labels"], test["features"], args.knn, len(test_ds.classes)).argmax(1)
    top1 = 100.0 * (pred == test["labels"]).float().mean().item()
    if args.json:
        print(json.dumps({"checkpoint": args.checkpoint, "data": str(folder), "knn": args.knn,
                          "memory": len(mem["labels"]), "images": len(test["labels"]), "top1": top1,
                          "precision": precision}))
    else:
        print(f"{folder}: {len(test['labels'])} images, k-NN (k={args.knn}) over {len(mem['labels'])} "
              f"training features: top-1 {top1:.2f}% ({precision})")
    return 0


def _load_for(checkpoint: str, runtime: str, precision: str):
    """(model, device, resolved precision) for eval / predict: a vitkit model, or ONNX Runtime."""
    import torch

    from ..deploy.onnx_runtime import OnnxClassifier, is_onnx_file
    from ..hardware import resolve_precision

    if runtime == "auto":
        runtime = "onnx" if is_onnx_file(checkpoint) else "torch"
    if runtime == "onnx":
        if not is_onnx_file(checkpoint):
            raise UsageError(f"--runtime onnx needs an .onnx file; make one with: vitkit export {checkpoint} model.onnx")
        if precision == "bf16":
            raise UsageError("--precision bf16 is for the torch runtime; an ONNX file runs in the precision "
                             "it was exported in (vitkit export --int8 for int8)")
        return OnnxClassifier(checkpoint), torch.device("cpu"), "fp32"
    if is_onnx_file(checkpoint):
        raise UsageError(f"{checkpoint}: an ONNX file runs with --runtime onnx (or auto), not torch")
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return _load(checkpoint).to(device), device, resolve_precision(precision, device)


def run_predict(args) -> int:
    from ..train.predict import expand_inputs, output_format, predict_files, write_results

    if args.topk < 1:
        raise UsageError("--topk must be at least 1")
    if args.batch_size < 1 or args.workers < 0:
        raise UsageError("--batch-size must be at least 1 and --workers at least 0")
    if args.output:
        output_format(args.output)  # before any image is read
    paths = expand_inputs(args.images)
    model, _, precision = _load_for(args.checkpoint, args.runtime, args.precision)
    results = predict_files(model, paths, args.topk, batch_size=args.batch_size, precision=precision,
                            workers=args.workers, progress=sys.stderr.isatty() and len(paths) > args.batch_size)
    failed = [r for r in results if r["error"]]
    if args.output:
        write_results(results, args.output, args.topk)
        print(f"{args.output}: {len(results)} images ({len(failed)} unreadable), {precision}", file=sys.stderr)
    elif args.json:
        print(json.dumps(results))
    else:
        for r in results:
            if r["error"]:
                print(f"{r['path']}: error: {r['error']}", file=sys.stderr)
            else:
                print(f"{r['path']}: " + ", ".join(f"{t['label']} {t['prob']:.3f}" for t in r["topk"]))
    return 1 if failed else 0
