"""Export analysts' confirmed decisions as a labelled dataset for the next model and gallery.

`data/confirmed/manifest.parquet` lists one row per confirmed photo (counterfeit -> label
'fake', genuine -> 'genuine'; 'unsure' is left out) with who decided when, on which model
and gallery. Photos are copied to `data/confirmed/images/<sha1>.<ext>`, so the dataset does
not depend on where the crawl kept them and the same photo is stored once. Rows already in
the manifest stay unless this store now decides otherwise (an undo, a change to unsure).

`data/confirmed/listings.parquet` lists every listing all of whose decided photos agree
(counterfeit -> 'fake', genuine -> 'genuine') with the signals screening saw: its status,
price over retail and reused official photos. `knockoff signals fit` refits the signals'
likelihood ratios on it (knockoff/listings/signals.py).
"""

from __future__ import annotations

import hashlib
import sqlite3
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

LABELS = {"counterfeit": "fake", "genuine": "genuine"}
MANIFEST = "manifest.parquet"
LISTINGS = "listings.parquet"
LISTING_SCHEMA = pa.schema([
    ("marketplace", pa.string()), ("seller_id", pa.string()), ("listing_id", pa.string()), ("run", pa.string()),
    ("product", pa.string()), ("status", pa.string()), ("price", pa.float64()), ("currency", pa.string()),
    ("price_ratio", pa.float64()), ("official_reuse", pa.string()), ("label", pa.string()),
])
SCHEMA = pa.schema([
    ("path", pa.string()), ("listing_id", pa.string()), ("product", pa.string()), ("label", pa.string()),
    ("brand", pa.string()), ("source", pa.string()), ("sha1", pa.string()), ("decided_by", pa.string()),
    ("decided_at", pa.string()), ("note", pa.string()), ("original_path", pa.string()), ("run", pa.string()),
    ("model_version", pa.string()), ("index_version", pa.string()),
])


@dataclass(frozen=True)
class ExportSummary:
    fakes: int
    genuine: int
    kept_from_before: int
    removed: int
    missing: list[str]  # photos that could not be read, so were not exported
    listings: int = 0  # decided listings written to listings.parquet

    def line(self, out: Path) -> str:
        text = (f"{out / MANIFEST}: {self.fakes} confirmed fakes, {self.genuine} confirmed genuine "
                f"({self.kept_from_before} kept from earlier exports, {self.removed} withdrawn); "
                f"{out / LISTINGS}: {self.listings} decided listings")
        return text + (f"; {len(self.missing)} photos unreadable, left out" if self.missing else "")


def export_confirmed(connection: sqlite3.Connection, out_dir: Path, photo_base: Path = Path(".")) -> ExportSummary:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "images").mkdir(exist_ok=True)
    previous = {row["sha1"]: row for row in _read(out_dir / MANIFEST)}
    current: dict[str, dict] = {}
    withdrawn: set[str] = set()
    missing = []
    for item in _decided_items(connection):
        source = Path(item["path"]) if Path(item["path"]).is_absolute() else photo_base / item["path"]
        try:
            data = source.read_bytes()
        except OSError:
            missing.append(item["path"])
            continue
        sha1 = hashlib.sha1(data).hexdigest()
        if item["decision"] not in LABELS:  # unsure, or back to pending after an undo
            withdrawn.add(sha1)
            continue
        target = out_dir / "images" / f"{sha1}{source.suffix.lower() or '.jpg'}"
        if not target.exists():
            temporary = target.with_suffix(".tmp")
            temporary.write_bytes(data)
            temporary.replace(target)
        row = {
            "path": str(target.relative_to(out_dir)), "listing_id": item["listing_id"], "product": item["product"],
            "label": LABELS[item["decision"]], "brand": item["brand"], "source": "confirmed", "sha1": sha1,
            "decided_by": item["user_name"], "decided_at": item["decided_at"], "note": item["note"],
            "original_path": item["path"], "run": item["run_name"], "model_version": item["model_version"],
            "index_version": item["index_version"],
        }
        if sha1 not in current or (row["decided_at"] or "") > (current[sha1]["decided_at"] or ""):
            current[sha1] = row
    withdrawn -= set(current)
    kept = {sha1: row for sha1, row in previous.items() if sha1 not in current and sha1 not in withdrawn}
    rows = sorted([*current.values(), *kept.values()], key=lambda row: row["sha1"])
    _write(out_dir / MANIFEST, rows)
    labels = [row["label"] for row in rows]
    listings = _decided_listings(connection)
    temporary = out_dir / f".{LISTINGS}.tmp"
    pq.write_table(pa.Table.from_pylist(listings, schema=LISTING_SCHEMA), temporary)
    temporary.replace(out_dir / LISTINGS)
    return ExportSummary(labels.count("fake"), labels.count("genuine"), len(kept),
                         len(withdrawn & set(previous)), missing, len(listings))


def _decided_listings(connection: sqlite3.Connection) -> list[dict]:
    """Listings whose decided photos all agree on counterfeit or genuine, with their signals."""
    rows = connection.execute(
        """SELECT l.marketplace, l.seller_id, l.listing_id, r.name AS run, l.product, l.status, l.price, l.currency,
                  l.price_ratio, l.official_reuse, l.decision
           FROM listings l JOIN runs r ON r.id = l.run_id
           WHERE l.decision IN ('counterfeit', 'genuine') ORDER BY l.id""").fetchall()
    return [{**{k: row[k] for k in LISTING_SCHEMA.names if k != "label"}, "label": LABELS[row["decision"]]} for row in rows]


def _decided_items(connection: sqlite3.Connection) -> list[sqlite3.Row]:
    """Every item with a decision history: its current decision and the latest note."""
    return connection.execute(
        """SELECT i.*, u.name AS user_name, r.name AS run_name,
                  (SELECT note FROM decisions d WHERE d.item_id = i.id AND d.action = 'decide' ORDER BY d.id DESC LIMIT 1) AS note
           FROM items i JOIN runs r ON r.id = i.run_id LEFT JOIN users u ON u.id = i.decided_by
           WHERE EXISTS (SELECT 1 FROM decisions d WHERE d.item_id = i.id)
           ORDER BY i.id"""
    ).fetchall()


def _read(manifest: Path) -> list[dict]:
    return pq.read_table(manifest).to_pylist() if manifest.is_file() else []


def _write(manifest: Path, rows: list[dict]) -> None:
    temporary = manifest.with_suffix(".tmp")
    pq.write_table(pa.Table.from_pylist(rows, schema=SCHEMA), temporary)
    temporary.replace(manifest)
