"""Decode a listing photo into the model's input: a (size, size, 3) uint8 RGB array.

This is the single preprocessing path for training, export checks, indexing and screening,
so the model never sees pixels prepared one way in training and another in production.
A JPEG is decoded by libjpeg-turbo at the smallest of its SIMD scales (1/8, 1/4, 1/2, 1) not
below the model's input (simplejpeg), which leaves a small resize; everything else through
Pillow, whose draft() picks among the same scales. The photo is then
squashed to a square (every pixel of the listing stays in view; the product is not cropped
away) by OpenCV. Measured against Pillow's draft + bicubic in benchmarks/screening.py.
"""

from __future__ import annotations

import io
import ipaddress
import os
import socket
import time
import urllib.parse
import urllib.request
from pathlib import Path

import cv2
import numpy as np
import simplejpeg
from PIL import Image, ImageMode, ImageOps, UnidentifiedImageError

# How pixels reach the model, recorded in every exported model's metadata.
PREPROCESSING = ("RGB, EXIF-upright; JPEG DCT-scaled to the smallest of 1/8, 1/4, 1/2, 1 not below input_size; squashed to "
                 "input_size x input_size, bilinear (area past 2x); uint8 NHWC")
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"})
MAX_DOWNLOAD_BYTES = 50 * 1024 * 1024
DOWNLOAD_TIMEOUT_S = 20.0  # the longest wait for any one read of the socket...
# ...and for the whole download: a server trickling bytes cannot hold a row longer
# (`knockoff screen --download-deadline`, or KNOCKOFF_DOWNLOAD_DEADLINE_S)
DOWNLOAD_DEADLINE_S = float(os.environ.get("KNOCKOFF_DOWNLOAD_DEADLINE_S", 60.0))
# A listing's photo URL may name any host, so downloads refuse loopback, private, link-local
# and other non-public addresses (the service's own network), and redirects to anything but
# http(s), unless KNOCKOFF_ALLOW_PRIVATE_URLS=1 (a crawl mirrored on the local network).
ALLOW_PRIVATE_URLS_ENV = "KNOCKOFF_ALLOW_PRIVATE_URLS"
_DOWNLOAD_CHUNK = 256 * 1024
# Knockoff's own ceiling on the pixels one photo may decode to (after reduce-on-decode, which
# takes a JPEG of any size down near the model's input). A product photo needs far fewer; a
# 13,000 x 13,000 PNG of 329 KB would otherwise take gigabytes. KNOCKOFF_MAX_PIXELS overrides it.
MAX_DECODED_PIXELS = int(os.environ.get("KNOCKOFF_MAX_PIXELS", 40_000_000))
# ...and on decoded bytes: pixels x bands x bytes per sample, plus the 8-bit RGB copy an image
# of another mode is converted to. A 36-megapixel RGBA PNG is under the pixel ceiling yet
# takes 250 MB decoded and converted; 160 MB is 40 megapixels of RGB, or of grey.
MAX_DECODED_BYTES = int(os.environ.get("KNOCKOFF_MAX_DECODED_BYTES", 160_000_000))
_BLOCK_ROWS = 256  # rows converted at a time from 16-bit or float pixels
# Transparent product shots are usually cut out on white; flatten them the same way.
_BACKGROUND = (255, 255, 255)
_EXIF_ORIENTATION = 0x0112


class ImageLoadError(Exception):
    """The image could not be read or decoded; the message says why, for the output row."""


def is_url(path: str) -> bool:
    return path.startswith(("http://", "https://", "file://"))


def is_object_store(path: str) -> bool:
    """s3://, gs://, abfs://, hdfs:// ...: read through pyarrow's filesystems."""
    scheme, separator, _ = path.partition("://")
    return bool(separator) and scheme.isalnum() and scheme.lower() not in ("http", "https", "file")


def read_bytes(path: str) -> bytes:
    """The raw bytes of a local file, an http(s)/file URL or an object-store URI, size-limited."""
    try:
        if is_object_store(path):
            data = _read_object(path)
        elif is_url(path):
            data = _download(path)
        else:
            data = Path(path).read_bytes()
    # URLError, FileNotFoundError, PermissionError, timeouts; pyarrow: bad URI, no credentials
    except (OSError, ValueError) as error:
        raise ImageLoadError(f"cannot read {path}: {error}") from error
    if len(data) > MAX_DOWNLOAD_BYTES:
        raise ImageLoadError(f"{path} is larger than {MAX_DOWNLOAD_BYTES} bytes")
    if not data:
        raise ImageLoadError(f"{path} is empty")
    return data


def _download(url: str) -> bytes:
    """At most MAX_DOWNLOAD_BYTES + 1 bytes, read in chunks within DOWNLOAD_DEADLINE_S in all."""
    deadline = time.monotonic() + DOWNLOAD_DEADLINE_S
    chunks, size = [], 0
    if not url.startswith("file://"):  # a local file named as a URL is a local file
        check_destination(url)
    opener = urllib.request.build_opener(_CheckedRedirects())
    with opener.open(url, timeout=min(DOWNLOAD_TIMEOUT_S, DOWNLOAD_DEADLINE_S)) as response:
        while size <= MAX_DOWNLOAD_BYTES:
            if time.monotonic() > deadline:
                raise TimeoutError(f"download took longer than {DOWNLOAD_DEADLINE_S:g} s ({size} bytes so far)")
            chunk = response.read1(_DOWNLOAD_CHUNK) if hasattr(response, "read1") else response.read(_DOWNLOAD_CHUNK)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    return b"".join(chunks)


def check_destination(url: str) -> None:
    """Refuse a URL Knockoff must not fetch: a scheme other than http(s), or a host that
    resolves to a loopback, private, link-local, multicast or reserved address (unless
    KNOCKOFF_ALLOW_PRIVATE_URLS=1)."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme.lower() not in ("http", "https"):
        raise ValueError(f"refused {parts.scheme}:// (only http and https photos are downloaded)")
    if os.environ.get(ALLOW_PRIVATE_URLS_ENV) == "1":
        return
    host = parts.hostname or ""
    try:
        addresses = {ipaddress.ip_address(host)}
    except ValueError:  # a name: every address it resolves to must be public
        try:
            addresses = {ipaddress.ip_address(info[4][0].split("%")[0]) for info in socket.getaddrinfo(host, None)}
        except socket.gaierror as error:
            raise ValueError(f"cannot resolve {host}: {error}") from None
    for address in addresses:
        if not address.is_global or address.is_multicast:
            raise ValueError(f"refused {host}: it resolves to {address}, not a public address "
                             f"(set {ALLOW_PRIVATE_URLS_ENV}=1 to download from your own network)")


class _CheckedRedirects(urllib.request.HTTPRedirectHandler):
    """Every redirect is checked like the URL it came from: http(s) to a public address only."""

    def redirect_request(self, request, fp, code, message, headers, new_url):
        check_destination(new_url)
        return super().redirect_request(request, fp, code, message, headers, new_url)


# What makes an object-store URI readable without Knockoff going to look for a store: an
# explicit region or endpoint (pyarrow otherwise asks the network for an S3 bucket's region,
# and probes for Google credentials), or credentials on disk.
_STORE_CONFIGURED = {
    "s3": (("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"), ()),
    "gs": (("GOOGLE_APPLICATION_CREDENTIALS", "STORAGE_EMULATOR_HOST"), ("~/.config/gcloud/application_default_credentials.json",)),
}


def check_store_configured(uri: str) -> None:
    """Refuse at once an object-store URI whose store is not configured here, rather than let
    pyarrow reach out to find one (a region lookup, a metadata server) on an offline machine."""
    scheme = uri.partition("://")[0].lower()
    scheme = {"gcs": "gs", "s3a": "s3"}.get(scheme, scheme)
    if scheme not in _STORE_CONFIGURED:
        return
    variables, files = _STORE_CONFIGURED[scheme]
    if any(os.environ.get(name) for name in variables) or any(Path(f).expanduser().is_file() for f in files):
        return
    raise ValueError(f"no {scheme}:// store is configured here (set {' or '.join(variables)}); "
                     f"Knockoff does not go looking for one")


def _read_object(uri: str) -> bytes:
    from pyarrow import fs

    check_store_configured(uri)
    filesystem, object_path = fs.FileSystem.from_uri(uri)
    with filesystem.open_input_stream(object_path) as stream:
        return stream.read(MAX_DOWNLOAD_BYTES + 1)


def decode_rgb(data: bytes, size: int, name: str = "image", max_pixels: int | None = None) -> np.ndarray:
    """Decode encoded image bytes to a (size, size, 3) uint8 RGB array, refusing any photo that
    would decode to more than `max_pixels` (default MAX_DECODED_PIXELS) before decoding it."""
    ceiling = max_pixels or MAX_DECODED_PIXELS
    try:
        return squash(_decode_upright_rgb(data, size, name, ceiling), size)
    except ImageLoadError:
        raise
    except UnidentifiedImageError:
        raise ImageLoadError(f"cannot decode {name}: not an image, or a format Pillow cannot read") from None
    except Exception as error:  # PIL raises many types for truncated/corrupt/unsupported files
        raise ImageLoadError(f"cannot decode {name}: {type(error).__name__}: {error}") from error


def squash(pixels: np.ndarray, size: int) -> np.ndarray:
    """Resize (H, W, 3) uint8 pixels to (size, size, 3). After DCT scaling a JPEG is under twice
    the input on a side (unless over 8x it), where bilinear is enough and ten times cheaper than
    Pillow's bicubic; a photo still over twice the input (a large PNG) is area-averaged, so
    nothing aliases. OpenCV falls back to bilinear on its own where one side grows."""
    height, width = pixels.shape[:2]
    if (height, width) == (size, size):
        return np.ascontiguousarray(pixels)
    interpolation = cv2.INTER_AREA if max(height, width) > 2 * size else cv2.INTER_LINEAR
    return cv2.resize(np.ascontiguousarray(pixels), (size, size), interpolation=interpolation)


def _decode_upright_rgb(data: bytes, size: int, name: str, ceiling: int) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as image:  # reads the header only
        if image.format == "JPEG" and image.mode in ("RGB", "L"):
            pixels = _decode_jpeg_scaled(data, size, name, ceiling)
            if pixels is not None:
                return _upright(pixels, image.getexif().get(_EXIF_ORIENTATION, 1))
        # CMYK/YCCK JPEGs, JPEGs libjpeg-turbo warns about, and every other format
        return _decode_with_pillow(image, size, name, ceiling)


def _decode_jpeg_scaled(data: bytes, size: int, name: str, ceiling: int) -> np.ndarray | None:
    """libjpeg-turbo's DCT scaling: decoded at the smallest of 1/8, 1/4, 1/2 and 1 with both
    sides at least `size` (a 640 px photo at 1/2, 320 px), so most of the pixels are never
    computed. Not the smallest M/8: libjpeg-turbo has SIMD inverse DCTs for these four scales
    only, and 3/8 decodes slower than 4/8 (benchmarks/screening.py, decode_scales). None when
    libjpeg-turbo reports a recoverable problem (extraneous bytes, a truncated file): Pillow
    then decides, as it always did, whether the photo is readable."""
    height, width, _, _ = simplejpeg.decode_jpeg_header(data)
    _refuse_over_ceiling(width, height, 3, name, ceiling)  # decoded straight to 8-bit RGB
    eighths = dct_eighths(height, width, size)
    try:
        return simplejpeg.decode_jpeg(data, colorspace="RGB", min_height=scaled_side(height, eighths),
                                      min_width=scaled_side(width, eighths))
    except ValueError:
        return None


def dct_eighths(height: int, width: int, size: int) -> int:
    """M of the M/8 scale a JPEG is decoded at: the smallest of 1, 2, 4, 8 whose output (libjpeg
    rounds up) has both sides at least `size`; 8 (full size) for a photo smaller than that."""
    for eighths in (1, 2, 4):
        if min(scaled_side(height, eighths), scaled_side(width, eighths)) >= size:
            return eighths
    return 8


def scaled_side(side: int, eighths: int) -> int:
    """A side decoded at M/8 scale, as libjpeg computes it (rounded up)."""
    return -(-side * eighths // 8)


def _decode_with_pillow(image: Image.Image, size: int, name: str, ceiling: int) -> np.ndarray:
    image.draft("RGB", (size, size))  # a CMYK JPEG still decodes at 1/2, 1/4 or 1/8 scale
    refuse_oversized(image, name, ceiling)
    return np.asarray(_to_rgb(ImageOps.exif_transpose(image)), dtype=np.uint8)


def refuse_oversized(image: Image.Image, name: str, max_pixels: int | None = None) -> None:
    """The guard every decoder passes before decoding (screening, the review service's images,
    evidence packs): an opened image (its header read, nothing decoded) over the pixel ceiling,
    or over the ceiling on decoded bytes, raises ImageLoadError saying which."""
    width, height = image.size
    mode = ImageMode.getmode(image.mode)
    bytes_per_pixel = len(mode.bands) * int(mode.typestr[-1]) + (0 if image.mode == "RGB" else 3)
    _refuse_over_ceiling(width, height, bytes_per_pixel, name, max_pixels or MAX_DECODED_PIXELS)


def _refuse_over_ceiling(width: int, height: int, bytes_per_pixel: int, name: str, ceiling: int) -> None:
    if width * height > ceiling:
        raise ImageLoadError(
            f"cannot decode {name}: {width} x {height} = {width * height / 1e6:.0f} megapixels, over Knockoff's "
            f"ceiling of {ceiling / 1e6:.0f} (KNOCKOFF_MAX_PIXELS); a product photo needs far fewer")
    if width * height * bytes_per_pixel > MAX_DECODED_BYTES:
        raise ImageLoadError(
            f"cannot decode {name}: {width} x {height} at {bytes_per_pixel} bytes a pixel decodes to "
            f"{width * height * bytes_per_pixel / 1e6:.0f} MB, over Knockoff's ceiling of {MAX_DECODED_BYTES / 1e6:.0f} MB "
            f"(KNOCKOFF_MAX_DECODED_BYTES)")


def jpeg_thumbnail(data: bytes, side: int, name: str = "image", quality: int = 85) -> bytes:
    """A JPEG at most `side` on its longer side, upright, for showing a photo (the review
    service, evidence packs): decoded behind the same guard as screening."""
    def shrink(shown: Image.Image) -> Image.Image:
        shown.thumbnail((side, side), Image.Resampling.BICUBIC)
        return shown

    return _reencoded(data, name, quality, shrink, draft=side)


def jpeg_region(data: bytes, box: tuple[float, float, float, float], side: int, name: str = "image",
                quality: int = 85) -> bytes:
    """The part of the upright photo inside `box` (x0, y0, x1, y1 as fractions), enlarged to
    `side` on its longer side: a region of local evidence, cropped for a side-by-side view.
    Decoded behind the same guard as screening."""
    def crop(shown: Image.Image) -> Image.Image:
        width, height = shown.size
        x0, y0, x1, y1 = (min(max(v, 0.0), 1.0) for v in box)
        part = shown.crop((int(x0 * width), int(y0 * height), max(int(x0 * width) + 1, round(x1 * width)),
                           max(int(y0 * height) + 1, round(y1 * height))))
        scale = side / max(part.size)
        return part.resize((max(1, round(part.width * scale)), max(1, round(part.height * scale))), Image.Resampling.BICUBIC)

    return _reencoded(data, name, quality, crop)


def _reencoded(data: bytes, name: str, quality: int, change, draft: int | None = None) -> bytes:
    """The photo decoded behind the guard, upright RGB, changed by `change`, as a JPEG; any
    failure to decode is one ImageLoadError naming the photo."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            if draft:
                image.draft("RGB", (draft, draft))
            refuse_oversized(image, name)
            shown = change(ImageOps.exif_transpose(image).convert("RGB"))
            buffer = io.BytesIO()
            shown.save(buffer, format="JPEG", quality=quality)
            return buffer.getvalue()
    except ImageLoadError:
        raise
    except Exception as error:  # not an image, truncated, unsupported
        raise ImageLoadError(f"cannot decode {name}: {type(error).__name__}: {error}") from error


def placeholder_jpeg(reason: str, side: int = 360) -> bytes:
    """A grey JPEG that says, in its own pixels, why the image is not shown."""
    from PIL import ImageDraw

    canvas = Image.new("RGB", (side, side * 3 // 4), (225, 225, 225))
    draw = ImageDraw.Draw(canvas)
    words, lines = reason.split(), [""]
    for word in words:
        lines[-1:] = [lines[-1], word] if len(lines[-1]) + len(word) > side // 7 else [f"{lines[-1]} {word}".strip()]
    draw.multiline_text((8, 8), "not shown:\n" + "\n".join(lines[:12]), fill=(60, 60, 60))
    buffer = io.BytesIO()
    canvas.save(buffer, format="JPEG", quality=80)
    return buffer.getvalue()


def _upright(pixels: np.ndarray, orientation: int) -> np.ndarray:
    """Apply an EXIF orientation (1-8) to decoded pixels as views, as Pillow's exif_transpose does."""
    return _ORIENTATIONS.get(orientation, lambda rows: rows)(pixels)


_ORIENTATIONS = {
    2: lambda rows: rows[:, ::-1],  # mirrored
    3: lambda rows: rows[::-1, ::-1],  # rotated 180
    4: lambda rows: rows[::-1],  # flipped
    5: lambda rows: rows.transpose(1, 0, 2),  # transposed
    6: lambda rows: np.rot90(rows, -1),  # rotated 90 clockwise to stand upright
    7: lambda rows: rows[::-1, ::-1].transpose(1, 0, 2),  # transversed
    8: lambda rows: np.rot90(rows, 1),  # rotated 90 anticlockwise to stand upright
}


def load_rgb(path: str | Path, size: int) -> np.ndarray:
    """Read and decode one image file or URL."""
    return decode_rgb(read_bytes(str(path)), size, name=str(path))


def _to_rgb(image: Image.Image) -> Image.Image:
    if image.mode == "RGB":
        return image
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        flat = Image.new("RGB", rgba.size, _BACKGROUND)
        flat.paste(rgba, mask=rgba.getchannel("A"))
        return flat
    if image.mode.startswith("I;16") or image.mode in ("I", "F"):
        image = _to_8_bits(image)
    return image.convert("RGB")


def _to_8_bits(image: Image.Image) -> Image.Image:
    """16-bit and float scans scaled to 8 bits (before the RGB conversion clips them), block by
    block: memory is the pixels in their own type plus one byte each, never a float64 copy."""
    values = np.asarray(image)  # uint16, int32 or float32, as decoded
    top = float(values.max()) if values.size else 0.0
    scaled = np.zeros(values.shape, dtype=np.uint8)
    if top > 0:
        for start in range(0, values.shape[0], _BLOCK_ROWS):
            block = values[start:start + _BLOCK_ROWS].astype(np.float32) * np.float32(255.0 / top)
            scaled[start:start + _BLOCK_ROWS] = np.clip(block, 0, 255)
    return Image.fromarray(scaled)
