"""Reader for a generic manifest: CSV, Parquet or JSONL, one row per image.

Columns: `path` (local, relative to the manifest's folder) or `url`, and optionally
`listing_id`, `product` (for a listing: the product it claims), `label` (or `authenticity`:
genuine/fake/original/counterfeit/0/1), `brand`, and the listing's fields: `seller_id`,
`marketplace`, `listing_url` (the listing's page; `url` is the photo's), `title`, `price`,
`currency`. Rows are streamed, so a manifest of millions of rows is never held in memory. The
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

from knockoff.data.records import ImageRecord, parse_authenticity
from knockoff.data.root import data_root
from knockoff.images.decode import check_store_configured, is_object_store, is_url

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


def read_manifest(manifest_path: Path | str, source: str | None = None, bad_rows: str = "raise") -> Iterator[ImageRecord]:
    """Records of a manifest. A row that cannot be read (broken JSON, an unknown label, an
    unclosed CSV quote that swallowed the next lines) raises ManifestError, or with
    `bad_rows="record"` (screening) becomes a record carrying the error, so it costs one row."""
    if bad_rows not in ("raise", "record"):
        raise ValueError(f"bad_rows must be 'raise' or 'record', not {bad_rows!r}")
    remote = is_object_store(str(manifest_path))
    manifest_path = str(manifest_path) if remote else Path(manifest_path)
    base_dir = str(manifest_path).rsplit("/", 1)[0] if remote else _path_base(manifest_path)
    source = source or str(manifest_path).rsplit("/", 1)[-1]
    for where, row in _iter_rows(manifest_path):
        try:
            if isinstance(row, Exception):
                raise row
            yield _to_record(row, base_dir, source)
        except ValueError as error:
            failure = ManifestError(f"{manifest_path}: {where}: {error}")
            if bad_rows == "raise":
                raise failure from error
            fields = row if isinstance(row, dict) else getattr(row, "fields", None) or {}
            listing_id = _text(fields.get("listing_id"))
            yield ImageRecord(path=f"{manifest_path} {where}", listing_id=listing_id, source=source, error=str(failure))


def _path_base(manifest_path: Path) -> Path:
    if manifest_path.suffix.lower() in (".parquet", ".pq"):
        import pyarrow.parquet as pq

        metadata = pq.read_schema(manifest_path).metadata or {}
        if metadata.get(PATH_BASE_KEY) == PATH_BASE_DATA_ROOT:
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

        try:
            check_store_configured(manifest_path)
        except ValueError as error:
            raise ManifestError(f"{manifest_path}: {error}") from None
        filesystem, object_path = fs.FileSystem.from_uri(manifest_path)
        with filesystem.open_input_file(object_path) as handle:
            yield handle


def _iter_rows(manifest_path: Path | str) -> Iterator[tuple[str, dict[str, Any] | ValueError]]:
    """(where, row) per row; a row that cannot be parsed comes as (where, the error)."""
    suffix = _suffix(manifest_path)
    if suffix == ".csv":
        with _open_binary(manifest_path) as raw, io.TextIOWrapper(raw, encoding="utf-8-sig", newline="") as handle:
            reader = csv.DictReader(handle)
            _check_columns(manifest_path, reader.fieldnames or [])
            # Line numbers count the header as line 1, as a spreadsheet shows them.
            first_line = 2
            for row in reader:
                yield _csv_row(row, first_line, reader.line_num, len(reader.fieldnames or ()))
                first_line = reader.line_num + 1
    elif suffix in (".parquet", ".pq"):
        import pyarrow.parquet as pq

        with _open_binary(manifest_path) as raw:
            parquet = pq.ParquetFile(raw)
            _check_columns(manifest_path, parquet.schema_arrow.names)
            row_number = 1
            for batch in parquet.iter_batches(batch_size=8192):
                for row in batch.to_pylist():
                    yield f"row {row_number}", row
                    row_number += 1
    else:
        with _open_binary(manifest_path) as raw, io.TextIOWrapper(raw, encoding="utf-8") as handle:
            checked = False
            for line_number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                    if not isinstance(row, dict):
                        raise ValueError(f"expected a JSON object, got {type(row).__name__}")
                except ValueError as error:  # json.JSONDecodeError is one
                    yield f"line {line_number}", ValueError(f"not a JSON object: {error}")
                    continue
                if not checked:
                    _check_columns(manifest_path, list(row))
                    checked = True
                yield f"line {line_number}", row


def _csv_row(row: dict, first_line: int, last_line: int, columns: int) -> tuple[str, dict[str, Any] | ValueError]:
    """A row as read, or the error that names its lines. A quoted field may hold line breaks
    (a scraped title often does); one whose later lines look like rows of their own, with a
    field for every column, is an unclosed quote that swallowed the lines after it."""
    where = f"line {first_line}" if last_line == first_line else f"lines {first_line}-{last_line}"
    problem = None
    if None in row:  # more fields than the header names
        problem = ValueError(f"{len(row[None])} more fields than the header has")
    spanning = [key for key, value in row.items() if isinstance(value, str) and _swallows_rows(value, columns)]
    if spanning:
        problem = ValueError(f"field {spanning[0]!r} runs over {last_line - first_line + 1} lines: an unclosed quote "
                             f"swallowed the lines after it (fix the quote; those rows were not screened)")
    if problem is None:
        return where, row
    problem.fields = row  # what could be read of it (its listing_id names the error row)
    return where, problem


def _swallows_rows(value: str, columns: int) -> bool:
    lines = value.splitlines()[1:]
    return any(len(next(csv.reader([line]), [])) >= max(columns, 2) for line in lines if line.strip())


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
        seller_id=_text(row.get("seller_id")),
        marketplace=_text(row.get("marketplace")),
        listing_url=_text(row.get("listing_url")),
        title=_text(row.get("title")),
        price=_price(row.get("price")),
        currency=_text(row.get("currency")),
    )


def _price(value: Any) -> float | None:
    """A number, or nothing; '1,299.00' and '$25' are read, 'call me' is the row's error."""
    text = _text(value)
    if text is None:
        return None
    try:
        return float(text.replace(",", "").lstrip("$€£¥ "))
    except ValueError:
        raise ValueError(f"price {text!r} is not a number") from None


def _text(value: Any) -> str | None:
    if value is None or (isinstance(value, float) and value != value):
        return None
    text = str(value).strip()
    return text or None
