"""`vitkit convert SRC DST --to vitkit|timm|hf|jax`."""
from __future__ import annotations

from ..checkpoint.io import check_out_file, check_out_folder
from ..checkpoint.load import FORMATS, convert


def register(sub) -> None:
    p = sub.add_parser("convert", help="convert a checkpoint between vitkit, timm, Hugging Face and JAX",
                       description="Read any checkpoint vitkit.load_model reads and write it in another format.")
    p.add_argument("src", help="vitkit dir/run, timm .pth/.safetensors, Hugging Face dir, or JAX .npz")
    p.add_argument("dst", help="output: a directory (vitkit, hf) or a file (timm, jax)")
    p.add_argument("--to", choices=FORMATS, default="vitkit", help="output format (default vitkit)")
    p.add_argument("--img-size", type=int, nargs="+", help="resample position embeddings to this size (H [W])")
    p.add_argument("--num-heads", type=int, help="heads, when the checkpoint cannot tell (timm files)")
    p.set_defaults(func=run)


def run(args) -> int:
    overrides = {}
    if args.img_size:
        overrides["img_size"] = tuple(args.img_size) if len(args.img_size) == 2 else args.img_size[0]
    if args.num_heads:
        overrides["num_heads"] = args.num_heads
    # vitkit and hf write a folder, timm and jax one file
    (check_out_folder if args.to in ("vitkit", "hf") else check_out_file)(args.dst, "DST")
    out = convert(args.src, args.dst, to=args.to, **overrides)
    print(f"wrote {args.to} checkpoint to {out}")
    return 0
