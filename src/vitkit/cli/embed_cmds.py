"""`vitkit embed`: one feature vector per image, from any block, into .npy or .safetensors.

    vitkit embed --checkpoint cifar10_vit_tiny --data DIR --split test --out feats.safetensors
    vitkit embed --checkpoint runs/cifar --data DIR/test --out feats.npy --layer 3 --pool mean
"""
from __future__ import annotations

from pathlib import Path

from ..errors import UsageError


def register(sub) -> None:
    p = sub.add_parser("embed", help="write one feature vector per image (any block, cls or mean pooling)")
    p.add_argument("--checkpoint", required=True, help="anything load_model reads (a run, a bundled name, hf-hub:...)")
    p.add_argument("--data", required=True, help="an ImageFolder (class folders), or a root with val/ test/ train/")
    p.add_argument("--split", help="sub-folder of --data to embed (default: val, else test, else --data itself)")
    p.add_argument("--out", required=True, help="features.npy (+ features.json) or features.safetensors")
    p.add_argument("--layer", type=int, help="block index (0-based, negative from the end); default: the head's input")
    p.add_argument("--pool", choices=["auto", "cls", "mean"], default="auto",
                   help="auto: the model's own pooling; cls: the [class] token; mean: the patch tokens")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--precision", choices=["auto", "fp32", "bf16"], default="auto")
    p.set_defaults(func=run)


def run(args) -> int:
    import torch

    from ..checkpoint import load_model
    from ..checkpoint.io import check_out_file
    from ..hardware import resolve_precision
    from ..data.folders import ImageFolderSafe, eval_folder
    from ..inference.embed import embed_dataset, save_embeddings
    from ..data.transforms import transform_for

    out = Path(args.out)
    if out.suffix not in (".npy", ".safetensors"):
        raise UsageError(f"--out {out}: choose a .npy or .safetensors file")
    if args.batch_size < 1 or args.workers < 0:
        raise UsageError("--batch-size must be at least 1 and --workers at least 0")
    check_out_file(out, "--out")
    model = load_model(args.checkpoint)
    folder = eval_folder(args.data, args.split)
    ds = ImageFolderSafe(folder, transform_for(model))
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model.to(device)
    precision = resolve_precision(args.precision, device)
    emb = embed_dataset(model, ds, args.layer, args.pool, args.batch_size, args.workers, precision, device)
    save_embeddings(out, emb, ds.classes, {"checkpoint": args.checkpoint, "layer": args.layer, "pool": args.pool,
                                           "precision": precision})
    n, dim = emb["features"].shape
    print(f"wrote {n} × {dim} features of {folder} to {out}"
          + (f" ({len(emb['skipped'])} unreadable images skipped)" if emb["skipped"] else ""))
    return 0
