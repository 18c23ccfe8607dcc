"""Helpers shared by the tests: paths, synthetic image files, tiny model names."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "data" / "sample"
SHARED_DATA = REPO.parent / "shared" / "datasets"

# timm's tiny test architectures (random weights, 160 px): one per backbone family.
TINY_BACKBONES = ["test_efficientnet", "test_resnet", "test_byobnet"]


def write_image(path: Path, color: tuple[int, int, int] = (200, 30, 30), size: tuple[int, int] = (96, 64), mode: str = "RGB", **save_args) -> Path:
    """A small real image file with a gradient, so resizing has something to resample."""
    path.parent.mkdir(parents=True, exist_ok=True)
    width, height = size
    ramp = np.linspace(0, 1, width)[None, :, None]
    pixels = (np.array(color)[None, None, :] * (0.5 + 0.5 * ramp)).astype(np.uint8)
    image = Image.fromarray(np.repeat(pixels, height, axis=0))
    if mode != "RGB":
        image = image.convert(mode)
    image.save(path, **save_args)
    return path
