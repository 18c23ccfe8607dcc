"""Where photos come from: datasets, manifests, folders and globs as ImageRecords.

An ImageRecord (records.py) is one photo with what is known of it: path or url, listing,
product claimed, authenticity. `knockoff prepare` (prepare.py, DVC stage `prepare`) writes
each training source as a normalised manifest with content hashes. `read_source` takes one spec and picks the reader:
- a manifest file (.csv/.parquet/.jsonl), local or in object storage (s3://, gs://, ...),
- a Roboflow YOLO export split (`sneakers/train`) or whole export (`sneakers`),
- a GroceryStoreDataset split (`grocery-packages/val`, `grocery-packages/iconic`),
- a plain folder tree, or a glob pattern.
Relative specs are looked up in the working directory first, then under the data root
(`KNOCKOFF_DATA`, default `data/raw`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

from knockoff.data.folder import read_folder, read_glob
from knockoff.data.grocery import ICONIC_SPLIT, is_grocery_dataset, read_grocery
from knockoff.data.manifest import ManifestError, is_manifest, read_manifest
from knockoff.data.records import ImageRecord
from knockoff.data.roboflow import is_roboflow_dataset, is_roboflow_split, read_roboflow
from knockoff.data.root import data_root, portable_path
from knockoff.images.decode import is_object_store

_ROBOFLOW_SPLITS = ("train", "valid", "test")

__all__ = ["ManifestError", "data_root", "portable_path", "read_source", "read_sources", "resolve_spec"]


def resolve_spec(spec: str, root: Path | None = None) -> Path:
    """Where a spec points: as given if it exists (or is a dataset split), else under root."""
    given = Path(spec).expanduser()
    if given.exists() or _is_grocery_split(given):
        return given
    under_root = (root or data_root()) / spec
    if under_root.exists() or _is_grocery_split(under_root):
        return under_root
    raise FileNotFoundError(
        f"{spec!r} is neither a path nor a dataset under the data root {root or data_root()} "
        "(set KNOCKOFF_DATA to the folder that holds your datasets)"
    )


def read_source(spec: str, root: Path | None = None, bad_rows: str = "raise") -> Iterator[ImageRecord]:
    """`bad_rows="record"`: a manifest row that cannot be read is a record carrying its error
    (screening: one error row), instead of an exception (training and indexing)."""
    if is_object_store(spec):  # s3://bucket/crawl.parquet: only manifests live in object storage
        if not is_manifest(spec):
            raise ValueError(f"{spec}: from object storage, give a manifest (.csv/.parquet/.jsonl)")
        yield from read_manifest(spec, bad_rows=bad_rows)
        return
    if any(char in spec for char in "*?[") and not Path(spec).exists():
        yield from read_glob(spec)
        return
    path = resolve_spec(spec, root)
    if _is_grocery_split(path):
        yield from read_grocery(path.parent, path.name)
    elif is_manifest(path):
        yield from read_manifest(path, bad_rows=bad_rows)
    elif path.is_dir() and is_roboflow_split(path):
        yield from read_roboflow(path.parent, path.name)
    elif path.is_dir() and is_roboflow_dataset(path):
        for split in _ROBOFLOW_SPLITS:
            if (path / split / "images").is_dir():
                yield from read_roboflow(path, split)
    elif path.is_dir():
        yield from read_folder(path)
    elif path.is_file():
        yield ImageRecord(path=str(path), listing_id=path.stem, source=path.parent.name)
    else:
        raise FileNotFoundError(f"{path} is not a file or folder")


def read_sources(specs: Iterable[str], root: Path | None = None) -> Iterator[ImageRecord]:
    for spec in specs:
        yield from read_source(spec, root)


def _is_grocery_split(path: Path) -> bool:
    """A split of the GroceryStoreDataset layout: `NAME.txt` beside the folder, with either
    `classes.csv` (packages) or Fruit/Vegetables folders inside (produce, unlabelled)."""
    parent = path.parent
    if is_grocery_dataset(parent):
        return path.name == ICONIC_SPLIT or (parent / f"{path.name}.txt").is_file()
    return (parent / f"{path.name}.txt").is_file() and any((path / kind).is_dir() for kind in ("Fruit", "Vegetables"))
