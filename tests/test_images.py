"""Every image mode a user may have opens as RGB; EXIF orientation is honoured."""
import numpy as np
import pytest
from PIL import Image

from vitkit.data.images import open_rgb


@pytest.mark.parametrize("mode,fmt", [("L", "png"), ("P", "png"), ("RGBA", "png"), ("LA", "png"),
                                      ("CMYK", "jpeg"), ("I;16", "png"), ("RGB", "jpeg"), ("1", "png")])
def test_modes_open_as_rgb(tmp_path, mode, fmt):
    img = Image.new("RGB", (20, 10), (200, 40, 90)).convert(mode) if mode != "I;16" else \
        Image.fromarray(np.full((10, 20), 60000, dtype=np.uint16))
    path = tmp_path / f"x.{fmt}"
    img.save(path)
    out = open_rgb(path)
    assert out.mode == "RGB" and out.size == (20, 10)


def test_sixteen_bit_is_rescaled_not_clipped(tmp_path):
    a = np.linspace(0, 65535, 64, dtype=np.uint16).reshape(8, 8)
    Image.fromarray(a).save(tmp_path / "d.png")
    out = np.asarray(open_rgb(tmp_path / "d.png"))[..., 0]
    assert out.min() == 0 and out.max() == 255 and len(np.unique(out)) > 32  # a plain convert clips to 255


def test_transparent_palette_becomes_white(tmp_path):
    img = Image.new("RGBA", (4, 4), (255, 0, 0, 0)).convert("P")
    img.info["transparency"] = 0
    img.save(tmp_path / "t.png", transparency=0)
    assert open_rgb(tmp_path / "t.png").getpixel((0, 0)) == (255, 255, 255)


def test_exif_orientation_is_honoured(tmp_path):
    img = Image.new("RGB", (30, 10), (0, 0, 0))
    exif = img.getexif()
    exif[0x0112] = 6  # rotate 90° clockwise on display
    img.save(tmp_path / "r.jpg", exif=exif)
    assert open_rgb(tmp_path / "r.jpg").size == (10, 30)


def test_unreadable_raises(tmp_path):
    (tmp_path / "bad.jpg").write_bytes(b"\x00" * 10)
    from PIL import UnidentifiedImageError

    from vitkit.data.images import UNREADABLE

    with pytest.raises(UnidentifiedImageError) as e:
        open_rgb(tmp_path / "bad.jpg")
    assert isinstance(e.value, UNREADABLE)  # what the loaders skip as unreadable
