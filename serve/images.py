"""Listing photos and reference images, shown only from the configured roots.

Clients never name a file: they ask for an item's photo or one of its evidence images by
item id, and the server looks the path up. That path must resolve (symlinks followed) inside
an allowed root, and the bytes sent are always a freshly encoded JPEG thumbnail of a decoded
image, so no request can read an arbitrary file. Thumbnails are cached on disk by path,
modification time and size, and addressed by a hash of the same (`version`): page links carry
it, so a response may be cached for good and a rescore never shows an old image. Every image passes the decode guard screening uses
(knockoff.images.decode: pixels and decoded bytes), two at a time.
"""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path

from knockoff.images.decode import ImageLoadError, jpeg_thumbnail, placeholder_jpeg


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


# Photos decoded for thumbnails at once: each may take up to the decode ceiling
# (knockoff.images.decode.MAX_DECODED_BYTES), so the service's memory stays bounded however
# many requests arrive together.
DECODE_SLOTS = threading.BoundedSemaphore(2)
PLACEHOLDER_SUFFIX = ".not-shown.jpg"  # a thumbnail that says why the image is not shown


def version(real_path: Path) -> str:
    """The image's address: a hash of the file it is now (path, modification time, size). Page
    links carry it, so a browser's cache can never show an old image under new evidence."""
    stat = real_path.stat()
    return hashlib.sha1(f"{real_path}|{stat.st_mtime_ns}|{stat.st_size}".encode()).hexdigest()[:16]


def thumbnail(real_path: Path, px: int, cache_dir: Path) -> Path:
    """A JPEG at most px on its longer side, cached. An image over the decode ceiling (or not
    an image at all) is a placeholder that says why, cached alike: it is never decoded."""
    stat = real_path.stat()
    key = hashlib.sha1(f"{real_path}|{stat.st_mtime_ns}|{stat.st_size}|{px}".encode()).hexdigest()
    for cached in (cache_dir / key[:2] / f"{key}.jpg", cache_dir / key[:2] / f"{key}{PLACEHOLDER_SUFFIX}"):
        if cached.is_file():
            return cached
    with DECODE_SLOTS:
        reason = None
        try:
            data = jpeg_thumbnail(real_path.read_bytes(), px, real_path.name)
            cached = cache_dir / key[:2] / f"{key}.jpg"
        except ImageLoadError as refused:
            reason = str(refused)
            data = placeholder_jpeg(reason, px)
            cached = cache_dir / key[:2] / f"{key}{PLACEHOLDER_SUFFIX}"
    cached.parent.mkdir(parents=True, exist_ok=True)
    if reason:  # written first: the reason is there once the placeholder is
        _write_atomically(_reason_file(cached), reason.encode())
    _write_atomically(cached, data)
    return cached


def not_shown_reason(cached: Path) -> str | None:
    """Why a cached thumbnail is a placeholder (None for a real thumbnail), in ASCII for a header."""
    if not cached.name.endswith(PLACEHOLDER_SUFFIX):
        return None
    try:
        reason = _reason_file(cached).read_text()
    except OSError:
        reason = "over the decode ceiling or not a readable image"
    return reason.encode("ascii", "replace").decode()


def _reason_file(placeholder: Path) -> Path:
    return placeholder.with_name(placeholder.name + ".why")


def _write_atomically(target: Path, data: bytes) -> None:
    # unique per process and thread: two requests for one new image must not share a temp file
    temporary = target.with_name(f"{target.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    temporary.write_bytes(data)
    temporary.replace(target)
