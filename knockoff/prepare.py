"""Stage `prepare`: datasets -> normalised manifests under data/prepared/.

Each source (a dataset split, manifest or folder) becomes one Parquet manifest with the
record fields plus the image's SHA-1, size and a decode check. Paths are stored relative to
the data root (`KNOCKOFF_DATA`), so the manifest is byte-identical on any machine holding
the same data: DVC re-runs training only when an image or label really changed.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image
from tqdm import tqdm

from knockoff.data import read_source
from knockoff.data.manifest import PATH_BASE_DATA_ROOT, PATH_BASE_KEY
from knockoff.gallery import portable_path
from knockoff.imaging import ImageLoadError, decode_rgb, read_bytes
from knockoff.records import ImageRecord

RECORD_FIELDS = ("path", "listing_id", "product", "authenticity", "brand", "source")


@dataclass(frozen=True)
class PrepareConfig:
    # output name -> source spec (dataset split, manifest, folder), read under the data root
    sources: dict[str, str] = field(default_factory=dict)
    workers: int = 4


def inspect_image(record: ImageRecord) -> dict:
    """Content hash, size and whether the image decodes (the error message if not)."""
    try:
        data = read_bytes(record.path)
        decode_rgb(data, 32, name=record.path)  # a tiny draft decode still reads every byte
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
        return {"sha1": hashlib.sha1(data).hexdigest(), "width": width, "height": height, "error": None}
    except ImageLoadError as error:
        return {"sha1": None, "width": None, "height": None, "error": str(error)}


def prepare_table(records: Iterable[ImageRecord], data_root: Path, workers: int = 4, name: str = "") -> pa.Table:
    records = list(records)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        checks = list(tqdm(pool.map(inspect_image, records), total=len(records), desc=f"prepare {name}", unit="img"))
    columns: dict[str, list] = {f: [getattr(r, f) for r in records] for f in RECORD_FIELDS}
    columns["path"] = [portable_path(p, data_root) for p in columns["path"]]
    for key in ("sha1", "width", "height", "error"):
        columns[key] = [check[key] for check in checks]
    table = pa.table(columns)
    return table.replace_schema_metadata({PATH_BASE_KEY: PATH_BASE_DATA_ROOT})


def prepare(config: PrepareConfig, data_root: Path, out_dir: Path) -> dict[str, dict[str, int]]:
    out_dir.mkdir(parents=True, exist_ok=True)
    summary = {}
    for name, spec in config.sources.items():
        table = prepare_table(read_source(spec, data_root), data_root, config.workers, name)
        pq.write_table(table, out_dir / f"{name}.parquet")
        failed = table.num_rows - table.column("error").null_count
        summary[name] = {"images": table.num_rows, "unreadable": failed}
    return summary


def read_prepared(manifest: Path) -> tuple[list[ImageRecord], int]:
    """Records of a prepared manifest that decode, and how many were dropped as unreadable."""
    from knockoff.data.manifest import read_manifest

    errors = pq.read_table(manifest, columns=["error"]).column("error").to_pylist()
    records = [r for r, error in zip(read_manifest(manifest), errors) if error is None]
    return records, len(errors) - len(records)
