import io

import numpy as np
import pytest
import simplejpeg
from PIL import Image, ImageOps

from knockoff.images import decode
from knockoff.images.decode import ImageLoadError, decode_rgb, load_rgb
from tests.helpers import write_image


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


def _jpeg(pixels: np.ndarray, **save) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", quality=95, **save)
    return buffer.getvalue()


def _marked_photo() -> np.ndarray:
    """A 96 x 160 photo with one bright corner block: every orientation puts it elsewhere."""
    pixels = np.full((96, 160, 3), 40, np.uint8)
    pixels[:32, :48] = 230
    return pixels


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_exif_orientation_lands_where_pillow_puts_it(orientation):
    exif = Image.Exif()
    exif[0x0112] = orientation
    data = _jpeg(_marked_photo(), exif=exif.tobytes())
    upright = ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert("RGB")
    expected = np.asarray(upright.resize((32, 32), Image.Resampling.BOX), dtype=float)
    assert np.abs(decode_rgb(data, 32).astype(float) - expected).mean() < 6


def test_jpeg_is_decoded_at_the_smallest_simd_dct_scale_not_below_the_input():
    data = _jpeg(np.random.default_rng(0).integers(0, 255, (640, 480, 3), dtype=np.uint8))
    # 1/4 of 480 is 120 < 160 <= 1/2 of it: decoded at 320 x 240 (not at 3/8, 240 x 180), then resized
    assert decode._decode_jpeg_scaled(data, 160, "photo", 10**9).shape == (320, 240, 3)
    assert decode._decode_jpeg_scaled(data, 120, "photo", 10**9).shape == (160, 120, 3)
    assert decode._decode_jpeg_scaled(data, 60, "photo", 10**9).shape == (80, 60, 3)
    assert decode._decode_jpeg_scaled(data, 500, "photo", 10**9).shape == (640, 480, 3)


@pytest.mark.parametrize(("height", "width", "size", "eighths"), [
    (640, 640, 224, 4), (448, 448, 224, 4), (447, 447, 224, 4), (446, 446, 224, 8), (2000, 1500, 224, 2), (1800, 1800, 224, 1),
    (1785, 1800, 224, 1), (1784, 1800, 224, 2), (900, 5000, 224, 2), (100, 100, 224, 8), (348, 348, 224, 8),
])
def test_dct_scale_is_the_smallest_power_of_two_covering_the_input(height, width, size, eighths):
    assert decode.dct_eighths(height, width, size) == eighths


def test_greyscale_and_progressive_jpegs_decode_like_baseline_ones():
    photo = _marked_photo()
    baseline = decode_rgb(_jpeg(photo), 48).astype(int)
    assert np.abs(decode_rgb(_jpeg(photo, progressive=True), 48).astype(int) - baseline).max() <= 2
    grey = decode_rgb(_jpeg(photo[..., 0]), 48).astype(int)
    assert (grey[..., 0] == grey[..., 1]).all() and (grey[..., 1] == grey[..., 2]).all()
    assert np.abs(grey - baseline).mean() < 2


def test_cmyk_jpeg_keeps_its_colours():
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), (200, 30, 30)).convert("CMYK").save(buffer, "JPEG", quality=95)
    red = decode_rgb(buffer.getvalue(), 16).astype(int)
    assert np.abs(red - [200, 30, 30]).max() < 12


def test_a_jpeg_libjpeg_turbo_warns_about_still_decodes_as_pillow_would():
    data = _jpeg(_marked_photo())
    warned = data[:-2] + b"\x00" * 7 + data[-2:]  # extraneous bytes before the end marker
    with pytest.raises(ValueError):
        simplejpeg.decode_jpeg(warned)  # strict: the fast path declines it...
    assert np.abs(decode_rgb(warned, 32).astype(int) - decode_rgb(data, 32)).mean() < 2  # ...Pillow reads it


def test_a_large_png_is_area_averaged_not_aliased():
    stripes = np.zeros((896, 896, 3), np.uint8)
    stripes[:, ::2] = 255  # one-pixel stripes: any point sampling would show them
    buffer = io.BytesIO()
    Image.fromarray(stripes).save(buffer, "PNG")
    assert np.abs(decode_rgb(buffer.getvalue(), 224).astype(int) - 127.5).max() < 2


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
    """DCT scaling and a bilinear resize change pixels only slightly compared to a full decode
    and a high-quality (Lanczos) resize."""
    for path in sample_photos[:4]:
        fast = load_rgb(path, 224).astype(float)
        full = np.asarray(Image.open(path).convert("RGB").resize((224, 224), Image.Resampling.LANCZOS), dtype=float)
        assert np.abs(fast - full).mean() < 3.0


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


def test_a_trickling_download_is_cut_at_its_deadline(trickling_server, monkeypatch):
    import time as clock

    from knockoff.images import decode

    monkeypatch.setattr(decode, "DOWNLOAD_DEADLINE_S", 1.5)  # the setting, shortened for the test
    started = clock.monotonic()
    with pytest.raises(decode.ImageLoadError, match="longer than 1.5 s"):
        decode.read_bytes(f"{trickling_server.url}/slow")
    assert clock.monotonic() - started < 5
    assert decode.load_rgb(f"{trickling_server.url}/photo", 64).shape == (64, 64, 3)


def test_a_decompression_bomb_is_refused_before_it_is_decoded(tmp_path):
    from tests.helpers import zero_png

    bomb = zero_png(tmp_path / "bomb.png", 4000, 3000).read_bytes()
    with pytest.raises(ImageLoadError, match="12 megapixels, over Knockoff's ceiling of 10"):
        decode_rgb(bomb, 64, max_pixels=10_000_000)
    assert decode_rgb(bomb, 64, max_pixels=20_000_000).max() == 0


def test_sixteen_bit_scans_are_scaled_to_eight_bits():
    values = (np.arange(300 * 40, dtype=np.uint16).reshape(300, 40) * 5)
    image = Image.fromarray(values)
    assert image.mode.startswith("I;16")
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    decoded = decode_rgb(buffer.getvalue(), 40)
    assert decoded.dtype == np.uint8 and decoded.max() >= 250 and decoded[0, 0, 0] <= 3  # the full range, darkest first


def test_an_image_under_the_pixel_ceiling_but_over_the_byte_ceiling_is_refused_before_decoding(tmp_path):
    """36 megapixels of 16-bit grey: under the 40-megapixel ceiling, yet 180 MB decoded and
    converted to RGB. Refused from the header, in every decoder: screening's and thumbnails'."""
    from tests.helpers import zero_png

    bomb = zero_png(tmp_path / "bomb.png", 6000, 6000, bit_depth=16).read_bytes()
    with pytest.raises(ImageLoadError, match=r"decodes to 180 MB, over Knockoff's ceiling of 160 MB"):
        decode_rgb(bomb, 224, name="bomb.png")
    with pytest.raises(ImageLoadError, match="KNOCKOFF_MAX_DECODED_BYTES"):
        decode.jpeg_thumbnail(bomb, 360, "bomb.png")
    small = zero_png(tmp_path / "small.png", 2000, 2000, bit_depth=16).read_bytes()
    assert decode_rgb(small, 64).shape == (64, 64, 3) and decode.jpeg_thumbnail(small, 100).startswith(b"\xff\xd8")


def test_downloads_refuse_this_machines_network_and_redirects_off_http(trickling_server, monkeypatch):
    """A photo URL may name any host: loopback, private and link-local addresses are refused
    before any connection unless allowed, and a redirect to ftp:// or file:// is never followed."""
    monkeypatch.delenv("KNOCKOFF_ALLOW_PRIVATE_URLS")
    for url in (f"{trickling_server.url}/photo", "http://10.0.0.7/a.jpg", "http://169.254.169.254/latest/meta-data",
                "http://[::1]/a.jpg", "http://0.0.0.0/a.jpg"):
        with pytest.raises(ImageLoadError, match="not a public address"):
            decode.read_bytes(url)
    assert trickling_server.requests == 0
    monkeypatch.setenv("KNOCKOFF_ALLOW_PRIVATE_URLS", "1")
    assert decode.read_bytes(f"{trickling_server.url}/photo")[:2] == b"\xff\xd8"
    for target in ("ftp://example.com/a.jpg", "file:///etc/passwd"):
        with pytest.raises(ImageLoadError, match=r"refused ftp://|is not allowed"):  # urllib refuses file:// itself
            decode.read_bytes(f"{trickling_server.url}/redirect?to={target}")


def test_the_download_deadline_comes_from_the_environment():
    import os
    import subprocess
    import sys

    code = "from knockoff.images import decode; print(decode.DOWNLOAD_DEADLINE_S)"
    found = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                           env={**os.environ, "KNOCKOFF_DOWNLOAD_DEADLINE_S": "7.5"})
    assert found.stdout.strip() == "7.5"


def test_a_region_is_cropped_from_the_upright_photo_and_enlarged(tmp_path):
    """A red square in the photo's top right quarter: the crop of that quarter is red, enlarged
    to the side asked for; of the bottom left, not."""
    import io

    from PIL import Image

    from knockoff.images.decode import ImageLoadError, jpeg_region

    image = Image.new("RGB", (400, 200), (255, 255, 255))
    image.paste((220, 20, 20), (200, 0, 400, 100))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    red = Image.open(io.BytesIO(jpeg_region(buffer.getvalue(), (0.5, 0.0, 1.0, 0.5), 300)))
    assert red.size == (300, 150) and red.getpixel((150, 75))[0] > 200 and red.getpixel((150, 75))[1] < 60
    white = Image.open(io.BytesIO(jpeg_region(buffer.getvalue(), (0.0, 0.5, 0.5, 1.0), 300)))
    assert min(white.getpixel((150, 75))) > 240
    import pytest

    with pytest.raises(ImageLoadError):
        jpeg_region(b"not an image", (0, 0, 1, 1), 100)
