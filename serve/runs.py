"""Import `knockoff screen` results into the store, once per distinct file."""

from __future__ import annotations

import hashlib
import json
import math
import sqlite3
from pathlib import Path

import pyarrow.parquet as pq
from knockoff_serve.store import write

from knockoff.screening.report import read_results

_EVIDENCE = ("neighbors", "nearest_genuine", "nearest_fake", "regions")
_ITEM_COLUMNS = (
    "run_id", "position", "listing_id", "path", "source", "score", "flagged", "threshold", "product",
    "product_similarity", "claimed_product", "product_mismatch", "brand", "label", "error",
    "model_version", "index_version", "evidence", "rank", "status", "status_reason", "matched_product",
    "seller_id", "marketplace", "listing_url", "title", "price", "currency", "duplicate_group", "reference_copy",
)
_SELLER_COLUMNS = ("marketplace", "seller_id", "risk", "risk_brand", "listings", "judged_listings", "flagged_listings",
                   "expected_fakes", "top_listing", "unsupported_listings")


def results_files(paths: list[Path]) -> list[Path]:
    """The results files named, and those inside named folders (.parquet/.csv/.jsonl)."""
    found = []
    for path in paths:
        if path.is_dir():
            found += sorted(p for p in path.iterdir() if p.suffix in (".parquet", ".csv", ".jsonl") and not p.name.startswith("."))
        elif path.is_file():
            found.append(path)
        else:
            raise FileNotFoundError(f"{path}: no such results file or folder")
    return found


def fingerprint(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def queue_rank(row: dict) -> float:
    """Flagged listings first, each group by score; rows that failed to screen last."""
    if row.get("error") or row.get("score") is None:
        return -1.0
    return (2.0 if row.get("flagged") else 0.0) + float(row["score"])


def import_results(connection: sqlite3.Connection, path: Path) -> tuple[int, bool]:
    """(run id, whether it was new). Re-importing the same file is a no-op."""
    digest = fingerprint(path)
    existing = connection.execute("SELECT id FROM runs WHERE fingerprint = ?", (digest,)).fetchone()
    if existing:
        return existing["id"], False
    rows = read_results(path)
    versions = _file_versions(path, rows)
    with write(connection):
        run_id = connection.execute(
            "INSERT INTO runs (name, path, fingerprint, rows, model_version, index_version) VALUES (?, ?, ?, ?, ?, ?)",
            (path.name, str(path.resolve()), digest, len(rows), *versions),
        ).lastrowid
        connection.executemany(
            f"INSERT INTO items ({', '.join(_ITEM_COLUMNS)}) VALUES ({', '.join('?' * len(_ITEM_COLUMNS))})",
            (_item_values(run_id, position, row) for position, row in enumerate(rows)),
        )
        sellers, listings = _sellers_and_listings(path)
        connection.executemany(
            f"INSERT INTO sellers (run_id, {', '.join(_SELLER_COLUMNS)}) VALUES (?, {', '.join('?' * len(_SELLER_COLUMNS))})",
            ((run_id, *(seller[c] for c in _SELLER_COLUMNS)) for seller in sellers),
        )
        _insert_listings(connection, run_id, listings)
    return run_id, True


def _sellers_and_listings(path: Path) -> tuple[list[dict], list[dict]]:
    """The run's sellers with their risk, and its listings with their verdicts (Parquet results
    with listing calibration; else none). Results screened before listing calibration carry no
    held-back scores to judge listings with: their photos are imported and reviewed one by one,
    their listings and sellers are not (screen again to have them)."""
    from knockoff.scoring.held_back import METADATA_KEY

    if path.suffix not in (".parquet", ".pq"):
        return [], []
    schema = pq.read_schema(path)
    if "listing_id" not in schema.names or METADATA_KEY not in (schema.metadata or {}):
        return [], []
    import tempfile

    from knockoff.listings import write_listings, write_sellers

    with tempfile.TemporaryDirectory(prefix="knockoff-import-") as scratch:
        listings_path = Path(scratch) / "listings.parquet"
        if "seller_id" in schema.names:
            sellers = write_sellers(path, Path(scratch) / "sellers.parquet", listings_out=listings_path).to_pylist()
        else:
            sellers = []
            write_listings(path, listings_path)
        listings = pq.read_table(listings_path).to_pylist()
    return ([{**s, "marketplace": s["marketplace"] or ""} for s in sellers if s["seller_id"] is not None],
            [listing for listing in listings if listing["listing_id"] is not None])


_LISTING_COLUMNS = ("marketplace", "seller_id", "listing_id", "title", "price", "currency", "listing_url", "photos",
                    "scored_photos", "flagged_photos", "status", "status_reason", "score", "flagged", "threshold",
                    "expected_precision", "probability", "product", "claimed_product", "product_mismatch", "brand",
                    "top_photo", "reused_photos", "reference_copies", "official_photos", "price_ratio", "official_reuse",
                    "price_ratio_lr", "reuse_lr", "image_lr", "rank")


def _insert_listings(connection: sqlite3.Connection, run_id: int, listings: list[dict]) -> None:
    """The run's listings, each photo tied to its listing, every photo of it pending."""
    def values(listing: dict) -> tuple:
        threshold = listing["threshold"]
        row = {**listing, "marketplace": listing["marketplace"] or "", "seller_id": listing["seller_id"] or "",
               "status_reason": listing["top_photo_reason"], "flagged": bool(listing["flagged"]),
               "threshold": threshold if threshold is not None and math.isfinite(threshold) else None,
               "rank": queue_rank({"score": listing["score"], "flagged": listing["flagged"],
                                   "error": listing["status"] == "error"})}
        return (run_id, *(row[c] for c in _LISTING_COLUMNS))

    connection.executemany(
        f"INSERT INTO listings (run_id, {', '.join(_LISTING_COLUMNS)}) VALUES (?, {', '.join('?' * len(_LISTING_COLUMNS))})",
        (values(listing) for listing in listings))
    connection.execute(
        """UPDATE items SET listing_row = (SELECT l.id FROM listings l WHERE l.run_id = items.run_id
               AND l.marketplace = COALESCE(items.marketplace, '') AND l.seller_id = COALESCE(items.seller_id, '')
               AND l.listing_id = items.listing_id)
           WHERE run_id = ? AND listing_id IS NOT NULL""", (run_id,))
    connection.execute(
        """UPDATE listings SET pending = (SELECT COUNT(*) FROM items i WHERE i.listing_row = listings.id
               AND i.decision IS NULL AND i.error IS NULL),
               top_item = COALESCE(
                   (SELECT i.id FROM items i WHERE i.listing_row = listings.id AND i.path = listings.top_photo LIMIT 1),
                   (SELECT i.id FROM items i WHERE i.listing_row = listings.id ORDER BY i.rank DESC, i.id LIMIT 1))
           WHERE run_id = ?""", (run_id,))


def _item_values(run_id: int, position: int, row: dict) -> tuple:
    evidence = {key: _as_list(row.get(key)) for key in _EVIDENCE}
    values = {
        **{key: row.get(key) for key in _ITEM_COLUMNS if key not in ("run_id", "position", "evidence", "rank", "status")},
        "run_id": run_id,
        "position": position,
        "listing_id": None if row.get("listing_id") is None else str(row["listing_id"]),
        "evidence": json.dumps(evidence),
        "rank": queue_rank(row),
        # results from before the screening status: every readable row was judged
        "status": row.get("status") or ("error" if row.get("error") else "scored"),
    }
    return tuple(values[key] for key in _ITEM_COLUMNS)


def _as_list(value: object) -> list:
    if value is None:
        return []
    if isinstance(value, str):  # CSV results keep evidence as JSON text
        return json.loads(value) if value else []
    return list(value)


def _file_versions(path: Path, rows: list[dict]) -> tuple[str | None, str | None]:
    if path.suffix in (".parquet", ".pq"):
        metadata = pq.read_schema(path).metadata or {}
        model, index = metadata.get(b"knockoff.model_version"), metadata.get(b"knockoff.index_version")
        if model:
            return model.decode(), index.decode() if index else None
    first = next((r for r in rows if r.get("model_version")), {})
    return first.get("model_version"), first.get("index_version")
