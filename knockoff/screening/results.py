"""Screening results: the schema, and writers for Parquet (default), CSV and JSONL.

One row per input image. Evidence columns hold lists of references; CSV stores them as JSON
text. Rows are written batch by batch (Parquet row groups), so memory stays flat, into a
temporary file that is renamed into place only when it is complete (screening first writes
resumable parts: knockoff/screening/parts.py).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from knockoff.gallery.evidence import REFERENCE, REGION

RESULT_SCHEMA = pa.schema([
    ("listing_id", pa.string()),
    ("path", pa.string()),
    ("source", pa.string()),
    # the listing's own fields, from the manifest (knockoff/listings aggregates by them)
    ("seller_id", pa.string()),
    ("marketplace", pa.string()),
    ("listing_url", pa.string()),
    ("title", pa.string()),
    ("price", pa.float64()),
    ("currency", pa.string()),
    # scored | no_match (no catalogued product) | unsupported (no reference close enough) | error
    ("status", pa.string()),
    ("status_reason", pa.string()),  # why a row is not scored, in figures
    ("score", pa.float32()),  # calibrated p(counterfeit) against its own product; null unless scored
    ("flagged", pa.bool_()),  # only scored rows can be flagged
    ("threshold", pa.float32()),  # the flag threshold of the calibration that judged it
    ("calibration_level", pa.string()),  # product | group | global | cold start (...)
    ("raw_score", pa.float32()),  # log-odds over the judged product's references only
    ("product", pa.string()),  # the product the photo was judged against (the claim, else the match)
    ("product_similarity", pa.float32()),  # its nearest reference of that product
    ("matched_product", pa.string()),  # what the photo looks like, whatever the listing claims
    ("nearest_catalogued", pa.float32()),  # similarity of its nearest catalogued reference
    ("nearest_unmonitored", pa.float32()),  # ... and of its nearest unmonitored (background) one
    ("claimed_product", pa.string()),  # the product the listing says it is, if given
    ("product_mismatch", pa.bool_()),
    ("brand", pa.string()),  # the listing's brand if given, else the matched product's
    ("label", pa.string()),  # known authenticity, if the input carried one
    ("neighbors", pa.list_(REFERENCE)),  # the k nearest references of the judged product
    ("nearest_genuine", pa.list_(REFERENCE)),
    ("nearest_fake", pa.list_(REFERENCE)),
    # reused photos (knockoff/screening/duplicates.py): rows showing the same photograph share
    # the row number of the group's first photo; null for a photo seen once in the run
    ("duplicate_group", pa.int64()),
    ("reference_copy", pa.string()),  # the gallery reference this photo is a copy of
    # local evidence: at most 5 regions least like any genuine reference of the judged product,
    # most unlike first, each with the reference region it matched (scored photos only)
    ("regions", pa.list_(REGION)),
    ("error", pa.string()),
    ("model_version", pa.string()),
    ("index_version", pa.string()),
])

_NESTED = ("neighbors", "nearest_genuine", "nearest_fake", "regions")
FORMATS = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}


def output_format(path: Path) -> str:
    try:
        return FORMATS[path.suffix.lower()]
    except KeyError:
        raise ValueError(f"{path}: output must end in one of {sorted(FORMATS)}") from None


class ResultWriter:
    """Append batches of result rows; `close()` publishes the file, `abort()` discards it."""

    def __init__(self, path: Path, metadata: dict[str, str] | None = None) -> None:
        self.path = Path(path)
        self.format = output_format(self.path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.partial = self.path.with_name(f".{self.path.name}.partial")
        self.rows = 0
        schema = RESULT_SCHEMA.with_metadata({f"knockoff.{k}": v for k, v in (metadata or {}).items()})
        if self.format == "parquet":
            self._parquet = pq.ParquetWriter(self.partial, schema, compression="zstd")
        else:
            self._handle = open(self.partial, "w", newline="", encoding="utf-8")
            if self.format == "csv":
                self._csv = csv.DictWriter(self._handle, fieldnames=RESULT_SCHEMA.names)
                self._csv.writeheader()

    def write(self, rows: list[dict]) -> None:
        if not rows:
            return
        if self.format == "parquet":
            self._parquet.write_table(pa.Table.from_pylist(rows, schema=self._parquet.schema))
        elif self.format == "csv":
            for row in rows:
                self._csv.writerow({k: json.dumps(v) if k in _NESTED and v is not None else v for k, v in row.items()})
        else:
            for row in rows:
                self._handle.write(json.dumps(row) + "\n")
        self.rows += len(rows)

    def write_batch(self, batch: pa.RecordBatch) -> None:
        if self.format == "parquet":
            self._parquet.write_batch(batch)
            self.rows += batch.num_rows
        else:
            self.write(batch.to_pylist())

    def close(self) -> None:
        self._finish()
        self.partial.replace(self.path)

    def abort(self) -> None:
        """Discard the partial file, even when closing it fails too (a full disk fails both)."""
        try:
            self._finish()
        except OSError:
            pass
        finally:
            self.partial.unlink(missing_ok=True)

    def _finish(self) -> None:
        if self.format == "parquet":
            self._parquet.close()
        else:
            self._handle.close()
