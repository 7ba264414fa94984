"""Store a trained run as a bundled model (fp16 safetensors inside the package).

    python scripts/bundle_model.py /tmp/bench/vitkit --name cifar10_vit_tiny --data /tmp/c10
    # writes src/vitkit/pretrained/cifar10_vit_tiny.safetensors (3.4 MiB for the speed run) and prints the largest
    # fp16-vs-fp32 logit difference on 256 test images and their top-1 agreement

Then measure it as users will load it: `vitkit eval --checkpoint cifar10_vit_tiny --data /tmp/c10`.
"""
import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import torch  # noqa: E402

import vitkit  # noqa: E402
from vitkit.checkpoint.native import save_model_file  # noqa: E402
from vitkit.pretrained import BUNDLED, HERE  # noqa: E402
from vitkit.data.transforms import transform_for  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", help="a vitkit run directory or checkpoint")
    ap.add_argument("--name", required=True, choices=sorted(BUNDLED))
    ap.add_argument("--data", help="an ImageFolder root with test/ (or val/): check fp16 against fp32 there")
    args = ap.parse_args()
    ref = vitkit.load_model(args.run)
    out = HERE / BUNDLED[args.name]["file"]
    save_model_file(ref, out, ref.class_names, ref.preprocess, dtype=torch.float16,
                    extra={"source": str(args.run), "card": BUNDLED[args.name]["card"]})
    print(f"wrote {out} ({out.stat().st_size / 2**20:.1f} MiB)")
    if args.data:
        from torchvision.datasets import ImageFolder

        root = Path(args.data)
        split = root / "test" if (root / "test").is_dir() else root / "val"
        ds = ImageFolder(str(split), transform=transform_for(ref))
        idx = torch.linspace(0, len(ds) - 1, 256).long().tolist()
        x = torch.stack([ds[i][0] for i in idx])
        got = vitkit.load_model(args.name)
        with torch.no_grad():
            a, b = ref(x), got(x)
        agree = (a.argmax(1) == b.argmax(1)).float().mean().item()
        print(f"fp16 vs fp32 on 256 test images: max |logit diff| {(a - b).abs().max().item():.4f}, "
              f"top-1 agreement {agree:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
