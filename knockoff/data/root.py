"""The data root: where datasets live (`KNOCKOFF_DATA`, default data/raw), and paths stored
relative to it, so manifests and galleries move with the data."""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_DATA_ROOT = "data/raw"


def data_root() -> Path:
    return Path(os.environ.get("KNOCKOFF_DATA", DEFAULT_DATA_ROOT))


def portable_path(path: str, data_root: Path) -> str:
    """A path under the data root is stored relative to it, so the gallery moves with the data."""
    try:
        return str(Path(path).resolve().relative_to(Path(data_root).resolve()))
    except ValueError:
        return path
