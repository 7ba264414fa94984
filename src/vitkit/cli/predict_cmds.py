"""`vitkit predict`: classify files, folders (recursive) and list files, with PyTorch or ONNX Runtime.

    vitkit predict --checkpoint runs/cifar cat.jpg photos/ list.txt --topk 3 [--output results.csv]
    vitkit predict --checkpoint model.onnx photos/ --output results.jsonl     # ONNX Runtime
"""
from __future__ import annotations

import json
import sys

from ..errors import UsageError
from .eval_cmds import load_for


def register(sub) -> None:
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


def run_predict(args) -> int:
    from ..checkpoint.io import check_out_file
    from ..inference.predict import expand_inputs, output_format, predict_files, write_results

    if args.topk < 1:
        raise UsageError("--topk must be at least 1")
    if args.batch_size < 1 or args.workers < 0:
        raise UsageError("--batch-size must be at least 1 and --workers at least 0")
    if args.output:
        output_format(args.output)  # before any image is read
        check_out_file(args.output, "--output")
    paths = expand_inputs(args.images)
    model, _, precision = load_for(args.checkpoint, args.runtime, args.precision)
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
