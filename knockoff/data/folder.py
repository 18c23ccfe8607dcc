"""Reader for a plain folder tree of images (and for glob patterns).

A tree laid out as `<product>/<genuine|fake|original|counterfeit...>/<image>` is read as
labelled references; any other tree is read as unlabelled listing photos. The listing id is
the image's path relative to the folder, without its suffix.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Iterator
from pathlib import Path

from knockoff.data.records import ImageRecord, is_authenticity_word, parse_authenticity
from knockoff.images.decode import IMAGE_SUFFIXES


def iter_image_files(root: Path) -> Iterator[Path]:
    """Image files under root, in a stable (sorted) order, without listing the tree up front."""
    for directory, subdirectories, files in os.walk(root):
        subdirectories.sort()
        for name in sorted(files):
            if Path(name).suffix.lower() in IMAGE_SUFFIXES and not name.startswith("."):
                yield Path(directory) / name


def read_folder(root: Path, source: str | None = None) -> Iterator[ImageRecord]:
    root = Path(root)
    source = source or root.name
    for image_path in iter_image_files(root):
        relative = image_path.relative_to(root)
        product, authenticity = _labels_from_layout(relative)
        yield ImageRecord(
            path=str(image_path),
            listing_id=str(relative.with_suffix("")),
            product=product,
            authenticity=authenticity,
            source=source,
        )


def read_glob(pattern: str) -> Iterator[ImageRecord]:
    for name in sorted(glob.iglob(pattern, recursive=True)):
        path = Path(name)
        if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES:
            yield ImageRecord(path=str(path), listing_id=path.stem, source=pattern)


def _labels_from_layout(relative: Path) -> tuple[str | None, str | None]:
    parts = relative.parts
    if len(parts) == 3 and is_authenticity_word(parts[1]):
        return parts[0], parse_authenticity(parts[1])
    return None, None
