import io

import numpy as np
import pytest
from PIL import Image

from tests.helpers import write_image
from knockoff.imaging import ImageLoadError, decode_rgb, load_rgb


@pytest.mark.parametrize("suffix", [".jpg", ".png", ".webp", ".bmp"])
def test_decodes_to_square_uint8_rgb(tmp_path, suffix):
    image = load_rgb(write_image(tmp_path / f"a{suffix}"), 48)
    assert image.shape == (48, 48, 3) and image.dtype == np.uint8
    # red stays red: channels are in RGB order
    assert image[..., 0].mean() > 3 * image[..., 1].mean()


def test_transparent_png_is_flattened_on_white(tmp_path):
    path = tmp_path / "cutout.png"
    Image.new("RGBA", (20, 20), (0, 0, 0, 0)).save(path)
    assert load_rgb(path, 8).min() == 255


@pytest.mark.parametrize("mode", ["L", "P", "CMYK", "I;16"])
def test_other_modes_become_rgb(tmp_path, mode):
    suffix = ".jpg" if mode == "CMYK" else ".png"
    image = load_rgb(write_image(tmp_path / f"x{suffix}", mode=mode), 16)
    assert image.shape == (16, 16, 3) and image.max() > 0


def test_exif_orientation_is_applied(tmp_path):
    # A 60x20 landscape photo whose EXIF says "rotate 90": upright, it is portrait, and its
    # left (dark) end ends up at the bottom or top, not the left.
    pixels = np.zeros((20, 60, 3), np.uint8)
    pixels[:, 30:] = 255
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90 CW
    path = tmp_path / "rotated.jpg"
    Image.fromarray(pixels).save(path, exif=exif.tobytes(), quality=95)
    image = load_rgb(path, 30).astype(int)
    rows_differ = abs(image[:10].mean() - image[-10:].mean())
    columns_differ = abs(image[:, :10].mean() - image[:, -10:].mean())
    assert rows_differ > 100 and columns_differ < 30


def test_real_photo_matches_full_decode_closely(sample_photos):
    """Reduce-on-decode changes pixels only slightly compared to a full decode + resize."""
    path = sample_photos[0]
    fast = load_rgb(path, 224).astype(float)
    full = np.asarray(Image.open(path).convert("RGB").resize((224, 224), Image.Resampling.BICUBIC), dtype=float)
    assert np.abs(fast - full).mean() < 4.0


def test_truncated_and_garbage_files_raise_clear_errors(tmp_path, sample_photos):
    truncated = tmp_path / "cut.jpg"
    truncated.write_bytes(sample_photos[0].read_bytes()[:2000])
    with pytest.raises(ImageLoadError, match="truncated"):
        load_rgb(truncated, 32)
    garbage = tmp_path / "notes.jpg"
    garbage.write_text("hello")
    with pytest.raises(ImageLoadError, match="not an image"):
        load_rgb(garbage, 32)
    with pytest.raises(ImageLoadError, match="cannot read"):
        load_rgb(tmp_path / "missing.jpg", 32)
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    with pytest.raises(ImageLoadError, match="empty"):
        load_rgb(empty, 32)


def test_file_urls_are_read(tmp_path):
    path = write_image(tmp_path / "a.png")
    assert load_rgb(path.as_uri(), 8).shape == (8, 8, 3)


def test_decode_bytes_directly():
    buffer = io.BytesIO()
    Image.new("RGB", (10, 10), (0, 0, 255)).save(buffer, format="PNG")
    assert decode_rgb(buffer.getvalue(), 4)[..., 2].min() == 255
