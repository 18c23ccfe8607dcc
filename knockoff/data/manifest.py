"""Reader for a generic manifest: CSV, Parquet or JSONL, one row per image.

Columns: `path` (local, relative to the manifest's folder) or `url`, and optionally
`listing_id`, `product`, `label` (or `authenticity`: genuine/fake/original/counterfeit/0/1),
`brand`. Rows are streamed, so a manifest of millions of rows is never held in memory. The
manifest itself may live in object storage (`s3://bucket/crawl/manifest.parquet`, read with
pyarrow's filesystems); its relative paths then resolve under the same prefix.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from knockoff.imaging import is_object_store, is_url
from knockoff.records import ImageRecord, parse_authenticity

MANIFEST_SUFFIXES = frozenset({".csv", ".parquet", ".pq", ".jsonl", ".ndjson"})
# Parquet manifests written by `knockoff prepare` store paths relative to the data root, or
# (for data kept in the repository, like data/confirmed) relative to the working folder.
PATH_BASE_KEY = b"knockoff.path_base"
PATH_BASE_DATA_ROOT = b"data_root"
PATH_BASE_WORKING_DIR = b"working_dir"
_LABEL_COLUMNS = ("label", "authenticity")


class ManifestError(ValueError):
    """The manifest itself is unusable (missing columns, bad label): says file and row."""


def is_manifest(path: Path | str) -> bool:
    return _suffix(path) in MANIFEST_SUFFIXES and (is_object_store(str(path)) or Path(path).is_file())


def _suffix(path: Path | str) -> str:
    """'.csv' of a local path or of an object-store URI (s3://bucket/crawl.CSV)."""
    return Path(str(path).split("://")[-1]).suffix.lower()


def read_manifest(manifest_path: Path | str, source: str | None = None) -> Iterator[ImageRecord]:
    remote = is_object_store(str(manifest_path))
    manifest_path = str(manifest_path) if remote else Path(manifest_path)
    base_dir = str(manifest_path).rsplit("/", 1)[0] if remote else _path_base(manifest_path)
    source = source or str(manifest_path).rsplit("/", 1)[-1]
    for row_number, row in _iter_rows(manifest_path):
        try:
            yield _to_record(row, base_dir, source)
        except ValueError as error:
            raise ManifestError(f"{manifest_path}: row {row_number}: {error}") from error


def _path_base(manifest_path: Path) -> Path:
    if manifest_path.suffix.lower() in (".parquet", ".pq"):
        import pyarrow.parquet as pq

        metadata = pq.read_schema(manifest_path).metadata or {}
        if metadata.get(PATH_BASE_KEY) == PATH_BASE_DATA_ROOT:
            from knockoff.data import data_root

            return data_root()
        if metadata.get(PATH_BASE_KEY) == PATH_BASE_WORKING_DIR:
            return Path(".")
    return manifest_path.parent


@contextmanager
def _open_binary(manifest_path: Path | str) -> Iterator[IO[bytes]]:
    if isinstance(manifest_path, Path):
        with open(manifest_path, "rb") as handle:
            yield handle
    else:
        from pyarrow import fs

        filesystem, object_path = fs.FileSystem.from_uri(manifest_path)
        with filesystem.open_input_file(object_path) as handle:
            yield handle


def _iter_rows(manifest_path: Path | str) -> Iterator[tuple[int, dict[str, Any]]]:
    suffix = _suffix(manifest_path)
    if suffix == ".csv":
        with _open_binary(manifest_path) as raw, io.TextIOWrapper(raw, encoding="utf-8-sig", newline="") as handle:
            reader = csv.DictReader(handle)
            _check_columns(manifest_path, reader.fieldnames or [])
            # Row numbers count the header as row 1, as a spreadsheet shows them.
            yield from enumerate(reader, start=2)
    elif suffix in (".parquet", ".pq"):
        import pyarrow.parquet as pq

        with _open_binary(manifest_path) as raw:
            parquet = pq.ParquetFile(raw)
            _check_columns(manifest_path, parquet.schema_arrow.names)
            row_number = 1
            for batch in parquet.iter_batches(batch_size=8192):
                for row in batch.to_pylist():
                    yield row_number, row
                    row_number += 1
    else:
        with _open_binary(manifest_path) as raw, io.TextIOWrapper(raw, encoding="utf-8") as handle:
            checked = False
            for line_number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as error:
                    raise ManifestError(f"{manifest_path}: line {line_number}: {error}") from error
                if not checked:
                    _check_columns(manifest_path, list(row))
                    checked = True
                yield line_number, row


def _check_columns(manifest_path: Path | str, columns: list[str]) -> None:
    if "path" not in columns and "url" not in columns:
        raise ManifestError(f"{manifest_path}: needs a 'path' or 'url' column, has {columns}")


def _to_record(row: dict[str, Any], base_dir: Path | str, source: str) -> ImageRecord:
    location = _text(row.get("path")) or _text(row.get("url")) or ""
    if location and not is_url(location) and not is_object_store(location) and not Path(location).is_absolute():
        location = f"{base_dir}/{location}" if isinstance(base_dir, str) else str(base_dir / location)
    label = next((row[c] for c in _LABEL_COLUMNS if row.get(c) not in (None, "")), None)
    return ImageRecord(
        path=location,
        listing_id=_text(row.get("listing_id")),
        product=_text(row.get("product")),
        authenticity=parse_authenticity(label),
        brand=_text(row.get("brand")),
        source=_text(row.get("source")) or source,
    )


def _text(value: Any) -> str | None:
    if value is None or (isinstance(value, float) and value != value):
        return None
    text = str(value).strip()
    return text or None
