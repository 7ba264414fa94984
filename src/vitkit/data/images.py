"""Opening any image a user has as RGB: EXIF orientation, palette, alpha, CMYK, 16-bit, grayscale."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

# What PIL raises for a file that is not a readable image: unidentified or truncated (OSError),
# bad headers (ValueError, SyntaxError from some plugins, EOFError), a decompression bomb. Code
# that skips unreadable images catches these and nothing else, so a bug in a transform still stops.
UNREADABLE = (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError)
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".gif", ".tif", ".tiff")  # what folders are searched for


def to_rgb(img: Image.Image) -> Image.Image:
    img = ImageOps.exif_transpose(img)  # phone photos: honour the rotation flag
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        # convert("RGB") clips 16-bit and float values to 255; rescale to 8 bits instead.
        a = np.asarray(img, dtype=np.float64)
        lo, hi = (0.0, 65535.0) if img.mode.startswith("I;16") else (float(a.min()), float(a.max()))
        a = np.clip((a - lo) / max(hi - lo, 1e-12) * 255.0 + 0.5, 0, 255).astype(np.uint8)
        img = Image.fromarray(a, mode="L")
    if img.mode == "P":
        img = img.convert("RGBA")  # a palette may carry transparency
    if img.mode in ("RGBA", "LA", "PA", "RGBa"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))  # transparent → white
        img = Image.alpha_composite(background, rgba)
    return img.convert("RGB")


def open_rgb(path) -> Image.Image:
    """Open, fully decode and convert; raises OSError/ValueError (PIL's) for unreadable files."""
    with Image.open(path) as img:
        img.load()
        return to_rgb(img)


def images_under(folder: Path) -> list[Path]:
    """Image files under `folder`, recursively, sorted; hidden files and folders skipped."""
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
                  and not any(part.startswith(".") for part in p.relative_to(folder).parts))
