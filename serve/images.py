"""Listing photos and reference images, shown only from the configured roots.

Clients never name a file: they ask for an item's photo or one of its evidence images by
item id, and the server looks the path up. That path must resolve (symlinks followed) inside
an allowed root, and the bytes sent are always a freshly encoded JPEG thumbnail of a decoded
image, so no request can read an arbitrary file. Thumbnails are cached on disk by path,
modification time and size.
"""

from __future__ import annotations

import hashlib
import io
import os
import threading
from pathlib import Path

from PIL import Image, ImageOps


class ImageNotAllowed(Exception):
    """The path is outside every allowed root, or not a readable image."""


def resolve_inside(path: str, base: Path, roots: tuple[Path, ...]) -> Path:
    """The real path of `path` (relative paths against `base`) if it lies inside a root."""
    if not path or "\x00" in path:
        raise ImageNotAllowed("no path")
    candidate = Path(path) if os.path.isabs(path) else base / path
    real = candidate.resolve()
    if not any(real == root or real.is_relative_to(root) for root in roots):
        raise ImageNotAllowed(f"{path} is outside the image roots")
    if not real.is_file():
        raise ImageNotAllowed(f"{path} does not exist")
    return real


def thumbnail(real_path: Path, px: int, cache_dir: Path) -> Path:
    """A JPEG at most px on its longer side, cached; raises ImageNotAllowed if not an image."""
    stat = real_path.stat()
    key = hashlib.sha1(f"{real_path}|{stat.st_mtime_ns}|{stat.st_size}|{px}".encode()).hexdigest()
    cached = cache_dir / key[:2] / f"{key}.jpg"
    if cached.is_file():
        return cached
    try:
        with Image.open(real_path) as image:
            image.draft("RGB", (px, px))
            image = ImageOps.exif_transpose(image).convert("RGB")
            image.thumbnail((px, px), Image.Resampling.BICUBIC)
            buffer = io.BytesIO()
            image.save(buffer, format="JPEG", quality=85)
    except Exception as error:  # not an image, truncated, unsupported
        raise ImageNotAllowed(f"{real_path.name} is not a readable image: {error}") from error
    cached.parent.mkdir(parents=True, exist_ok=True)
    # unique per process and thread: two requests for one new image must not share a temp file
    temporary = cached.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
    temporary.write_bytes(buffer.getvalue())
    temporary.replace(cached)
    return cached
