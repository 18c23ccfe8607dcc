"""Decisions as a file an analyst or a script takes away: CSV or JSON, one row per photo decided.

Only decisions in force are exported (an undone decision is not one), as the viewer sees them:
admins everyone's, analysts their own. The audit trail itself stays at /decisions and
/api/decisions.
"""

from __future__ import annotations

import csv
import io
import json
import sqlite3

from knockoff_serve.queue import Viewer

from knockoff.listings.evidence import csv_cell

FORMATS = ("csv", "json")
COLUMNS = ("item_id", "run", "listing_id", "seller_id", "marketplace", "title", "price", "currency", "listing_url",
           "path", "product", "claimed_product", "product_mismatch", "brand", "status", "score", "flagged", "threshold",
           "decision", "decided_by", "decided_at", "note", "model_version", "index_version")


def decision_rows(connection: sqlite3.Connection, viewer: Viewer) -> list[dict]:
    """Every photo with a decision in force, oldest first, with the note of that decision."""
    where = "" if viewer.is_admin else "AND i.decided_by = :me"
    rows = connection.execute(
        f"""SELECT i.id AS item_id, r.name AS run, i.listing_id, i.seller_id, i.marketplace, i.title, i.price, i.currency,
                   i.listing_url, i.path, i.product, i.claimed_product, i.product_mismatch, i.brand, i.status, i.score,
                   i.flagged, i.threshold, i.decision, u.name AS decided_by, i.decided_at,
                   (SELECT note FROM decisions d WHERE d.item_id = i.id ORDER BY d.id DESC LIMIT 1) AS note,
                   i.model_version, i.index_version
            FROM items i JOIN runs r ON r.id = i.run_id LEFT JOIN users u ON u.id = i.decided_by
            WHERE i.decision IS NOT NULL {where} ORDER BY i.decided_at, i.id""",
        {"me": viewer.id}).fetchall()
    return [{**dict(row), "product_mismatch": None if row["product_mismatch"] is None else bool(row["product_mismatch"]),
             "flagged": None if row["flagged"] is None else bool(row["flagged"])} for row in rows]


def encode(rows: list[dict], kind: str) -> tuple[bytes, str]:
    """(body, media type) of the rows as CSV (a header, then one line per photo) or JSON (a list)."""
    if kind not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, not {kind!r}")
    if kind == "json":
        return json.dumps(rows, ensure_ascii=False, indent=1).encode(), "application/json"
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=COLUMNS, extrasaction="ignore")
    writer.writeheader()
    writer.writerows({key: csv_cell(row.get(key)) for key in COLUMNS} for row in rows)
    return text.getvalue().encode("utf-8"), "text/csv; charset=utf-8"
