"""`vitkit eval`: top-1/top-5 of any checkpoint (or .onnx file) on a folder; `--knn K` on features.

    vitkit eval --checkpoint runs/cifar --data DIR --json
    vitkit eval --checkpoint cifar10_vit_tiny --data DIR --knn 20
"""
from __future__ import annotations

import json

from ..errors import UsageError


def register(sub) -> None:
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


def _load(checkpoint: str):
    from ..checkpoint import load_model

    return load_model(checkpoint)


def run_eval(args) -> int:
    import torch

    from ..parallel import distributed as dist_utils

    if args.batch_size < 1 or args.workers < 0:
        raise UsageError("--batch-size must be at least 1 and --workers at least 0")
    model, device, precision = load_for(args.checkpoint, "auto", args.precision)
    # the data stack (torchvision, ~3 s of start-up) only once the checkpoint has loaded
    from ..data.folders import ImageFolderSafe, eval_folder
    from ..data.transforms import transform_for
    from ..inference.evaluate import evaluate, make_eval_loader

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
    from ..data.folders import ImageFolderSafe, resolve_data_root
    from ..inference.embed import embed_dataset, knn_classify
    from ..data.transforms import transform_for

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


def load_for(checkpoint: str, runtime: str, precision: str):
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
