"""Stage `prepare`: datasets -> normalised manifests under data/prepared/.

Each source (a dataset split, manifest or folder) becomes one Parquet manifest with the
record fields plus the image's SHA-1, size and a decode check. Paths are stored relative to
the data root (`KNOCKOFF_DATA`), or to the repository for data kept in it (data/confirmed),
so the manifest is byte-identical on any machine holding the same data: DVC re-runs
training only when an image or label really changed.

Optional sources (analysts' confirmed decisions) may be absent: they then give an empty
manifest. Their photos that are already in a dataset split are dropped, so a confirmed copy
of a validation photo can never leak into training or the gallery.
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

from knockoff.data import portable_path, read_source
from knockoff.data.manifest import PATH_BASE_DATA_ROOT, PATH_BASE_KEY, PATH_BASE_WORKING_DIR
from knockoff.data.records import ImageRecord
from knockoff.images.decode import ImageLoadError, decode_rgb, read_bytes

RECORD_FIELDS = ("path", "listing_id", "product", "authenticity", "brand", "source")
_SCHEMA = pa.schema([*((name, pa.string()) for name in RECORD_FIELDS), ("sha1", pa.string()),
                     ("width", pa.int64()), ("height", pa.int64()), ("error", pa.string())])


@dataclass(frozen=True)
class PrepareConfig:
    # output name -> source spec (dataset split, manifest, folder), read under the data root
    sources: dict[str, str] = field(default_factory=dict)
    # output name -> source that may not exist yet (analysts' confirmed decisions)
    optional_sources: dict[str, str] = field(default_factory=dict)
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
    base, columns["path"] = _portable_paths(columns["path"], data_root)
    for key in ("sha1", "width", "height", "error"):
        columns[key] = [check[key] for check in checks]
    table = pa.Table.from_pydict(columns, schema=_SCHEMA)
    return table.replace_schema_metadata({PATH_BASE_KEY: base})


def _portable_paths(paths: list[str], data_root: Path) -> tuple[bytes, list[str]]:
    """Paths relative to the data root if all lie under it, else to the working folder."""
    root = data_root.resolve()
    if all(Path(p).resolve().is_relative_to(root) for p in paths):
        return PATH_BASE_DATA_ROOT, [portable_path(p, data_root) for p in paths]
    return PATH_BASE_WORKING_DIR, [portable_path(p, Path.cwd()) for p in paths]


def prepare(config: PrepareConfig, data_root: Path, out_dir: Path) -> dict[str, dict[str, int]]:
    out_dir.mkdir(parents=True, exist_ok=True)
    summary, known = {}, set()
    for name, spec in config.sources.items():
        table = prepare_table(read_source(spec, data_root), data_root, config.workers, name)
        known |= set(table.column("sha1").to_pylist())
        summary[name] = _write(table, out_dir / f"{name}.parquet")
    for name, spec in config.optional_sources.items():
        try:
            records = list(read_source(spec, data_root))
        except FileNotFoundError:
            print(f"{name}: {spec} does not exist yet; writing an empty manifest")
            records = []
        table = prepare_table(records, data_root, config.workers, name)
        fresh = [sha1 not in known for sha1 in table.column("sha1").to_pylist()]
        summary[name] = {**_write(table.filter(pa.array(fresh, pa.bool_())), out_dir / f"{name}.parquet"),
                         "already_in_datasets": fresh.count(False)}
    return summary


def _write(table: pa.Table, path: Path) -> dict[str, int]:
    pq.write_table(table, path)
    return {"images": table.num_rows, "unreadable": table.num_rows - table.column("error").null_count}


def read_prepared(manifest: Path) -> tuple[list[ImageRecord], int]:
    """Records of a prepared manifest that decode, and how many were dropped as unreadable."""
    from knockoff.data.manifest import read_manifest

    errors = pq.read_table(manifest, columns=["error"]).column("error").to_pylist()
    records = [r for r, error in zip(read_manifest(manifest), errors) if error is None]
    return records, len(errors) - len(records)


def read_prepared_with_hashes(manifests: list[Path]) -> tuple[list[ImageRecord], list[str]]:
    """The records of several prepared manifests that decode, with each one's SHA-1."""
    records, hashes = [], []
    for manifest in manifests:
        table = pq.read_table(manifest, columns=["sha1", "error"])
        decodes = [error is None for error in table.column("error").to_pylist()]
        found, _ = read_prepared(manifest)
        records += found
        hashes += [sha1 for sha1, ok in zip(table.column("sha1").to_pylist(), decodes) if ok]
    return records, hashes
