"""`vitkit export`: a checkpoint → ONNX (fp32, or int8 through ONNX Runtime quantization).

    vitkit export runs/cifar model.onnx                          # dynamic batch, height, width
    vitkit export cifar10_vit_tiny tiny.onnx --static-size       # dynamic batch only
    vitkit export runs/cifar model-int8.onnx --int8 [--calib DIR] [--calib-count 256]

After writing, the ONNX file is run in ONNX Runtime on a random batch at the native size and,
when dynamic, at one other size, and the largest logit difference from PyTorch is printed.
"""
from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from ..errors import UsageError


def register(sub) -> None:
    p = sub.add_parser("export", help="export a checkpoint to ONNX (dynamic size; optional int8)")
    p.add_argument("checkpoint", help="any checkpoint load_model reads (run dir, file, bundled name, hf-hub:)")
    p.add_argument("out", help="the .onnx file to write")
    p.add_argument("--static-size", action="store_true", help="fix height and width to the model's size")
    p.add_argument("--opset", type=int, default=18)
    p.add_argument("--int8", action="store_true",
                   help="quantize to int8 with ONNX Runtime: static with --calib, else dynamic")
    p.add_argument("--calib", metavar="DIR", help="calibration images (any folder, searched recursively)")
    p.add_argument("--target", choices=["any", "vnni"], default="any",
                   help="int8 weights for CPUs of any kind (default: unsigned, no saturation without VNNI) "
                        "or for CPUs with VNNI only (signed)")
    p.add_argument("--min-agreement", type=float, default=0.99,
                   help="int8: refuse (exit 1, no file) when top-1 agreement with fp32 on held-out images is lower")
    p.add_argument("--agreement-data", metavar="DIR",
                   help="int8: images to measure agreement on (default: --calib images not used for calibration, "
                        "else the bundled CIFAR-10 sample's test images)")
    p.add_argument("--calib-count", type=int, default=256, help="at most this many calibration images")
    p.set_defaults(func=run_export)


def _check(model, path: Path, dynamic: bool) -> float:
    """Largest |ONNX Runtime − PyTorch| logit difference on random batches (native size, and a
    non-square other size when dynamic)."""
    import torch

    from ..deploy.onnx_runtime import OnnxClassifier

    clf = OnnxClassifier(path)
    h, w = model.cfg.img_size
    p = model.cfg.patch_size
    shapes = [(3, 3, h, w)] + ([(2, 3, h + 2 * p, w + p)] if dynamic else [])
    worst = 0.0
    g = torch.Generator().manual_seed(0)
    for s in shapes:
        x = torch.randn(*s, generator=g)
        with torch.no_grad():
            worst = max(worst, (clf(x) - model.float().eval()(x)).abs().max().item())
    return worst


def _agreement_files(args) -> list[Path]:
    """Held-out images for the int8 agreement check (see --agreement-data)."""
    from ..data.folders import SAMPLE_DIR
    from ..data.images import images_under
    from ..deploy.quantize import held_out_images

    if args.agreement_data:
        folder = Path(args.agreement_data)
        if not folder.is_dir():
            raise UsageError(f"--agreement-data {folder}: no such directory")
        files = images_under(folder)[:500]
    elif args.calib:
        files = held_out_images(args.calib, 500, args.calib_count)
    else:
        files = []
    files = files or images_under(SAMPLE_DIR / "test")
    if not files:
        raise UsageError("no images to measure int8 agreement on; pass --agreement-data DIR")
    return files


def run_export(args) -> int:
    from ..checkpoint import load_model
    from ..checkpoint.io import check_out_file
    from ..deploy.onnx_export import export_onnx
    from ..deploy.quantize import agreement, calibration_batches, quantize_onnx
    from ..errors import ExportRefused
    from ..data.transforms import transform_for

    out = Path(args.out)
    if out.suffix != ".onnx":
        raise UsageError(f"{out}: the output must be a .onnx file")
    if args.calib and not args.int8:
        raise UsageError("--calib is for --int8 (static quantization)")
    if not 0 <= args.min_agreement <= 1:
        raise UsageError(f"--min-agreement {args.min_agreement}: give a fraction from 0 to 1")
    if args.calib_count < 1:
        raise UsageError("--calib-count must be at least 1")
    check_out_file(out, "OUT")
    if not out.parent.is_dir():
        raise UsageError(f"{out.parent}: no such directory")
    model = load_model(args.checkpoint).float().eval()
    calib = calibration_batches(args.calib, transform_for(model), args.calib_count) if args.calib else None
    dynamic = not args.static_size
    if not args.int8:
        export_onnx(model, out, dynamic_size=dynamic, opset=args.opset)
        diff = _check(model, out, dynamic)
        print(f"{out}: fp32, {'dynamic batch/height/width' if dynamic else 'dynamic batch'}, opset {args.opset}; "
              f"ONNX Runtime vs PyTorch max |Δlogit| {diff:.2e}", file=sys.stderr)
        return 0
    files = _agreement_files(args)
    measured = {}

    def check(int8_file: Path) -> dict:
        measured["agreement"] = agreement(model, int8_file, files, transform_for(model))
        if measured["agreement"] < args.min_agreement:
            raise ExportRefused(f"{out}: int8 top-1 agrees with fp32 on {100 * measured['agreement']:.2f}% of "
                                f"{len(files)} held-out images, below --min-agreement {args.min_agreement:g}; no file "
                                f"written (try dynamic int8, without --calib, or lower --min-agreement)")
        return {"int8_agreement": round(measured["agreement"], 6), "int8_agreement_images": len(files)}

    with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
        fp32 = export_onnx(model, Path(tmp) / "fp32.onnx", dynamic_size=dynamic, opset=args.opset)
        quantize_onnx(fp32, out, calib, target=args.target, check=check)
    diff = _check(model, out, dynamic)
    mode = f"{args.target}-CPU " + (f"static int8 ({sum(len(c) for c in calib)} calibration images)" if calib else "dynamic int8")
    print(f"{out}: {mode}; top-1 agreement with fp32 {100 * measured['agreement']:.2f}% on {len(files)} held-out "
          f"images (stored in the file); max |Δlogit| {diff:.3f}", file=sys.stderr)
    return 0
