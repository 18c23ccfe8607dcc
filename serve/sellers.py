"""Sellers in the review service: ranked by risk, each with its listings, and a photo's reuse.

Risk comes from `knockoff sellers` at import (knockoff/listings/sellers.py); what analysts
have decided since is counted live. Analysts see pending items and their own decisions,
admins everything (the queue's rule).
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from knockoff_serve.auth import Viewer
from knockoff_serve.queue import visible_to

from knockoff.listings.sellers import RiskSummary, risk_summary
from knockoff.listings.signals import signal_words, signals_apply

SELLERS_PER_PAGE = 100


def ranked(connection: sqlite3.Connection, viewer: Viewer, run: int | None, page: int) -> list[sqlite3.Row]:
    """Sellers by risk (highest first), with their pending photos and confirmed fakes."""
    return connection.execute(
        f"""SELECT s.*, r.name AS run_name,
               (SELECT COUNT(*) FROM items i WHERE i.run_id = s.run_id AND i.seller_id = s.seller_id
                   AND COALESCE(i.marketplace, '') = s.marketplace AND i.decision IS NULL AND i.error IS NULL) AS pending,
               (SELECT COUNT(DISTINCT i.listing_id) FROM items i WHERE i.run_id = s.run_id AND i.seller_id = s.seller_id
                   AND COALESCE(i.marketplace, '') = s.marketplace AND i.decision = 'counterfeit'
                   AND {visible_to(viewer, "i")}) AS confirmed_fakes
            FROM sellers s JOIN runs r ON r.id = s.run_id
            WHERE (:run IS NULL OR s.run_id = :run)
            ORDER BY s.risk DESC, s.seller_id LIMIT :limit OFFSET :offset""",
        {"me": viewer.id, "run": run, "limit": SELLERS_PER_PAGE, "offset": page * SELLERS_PER_PAGE},
    ).fetchall()


@dataclass
class Listing:
    listing_id: str
    title: str | None
    listing_url: str | None
    photos: list[sqlite3.Row]
    verdict: sqlite3.Row | None = None  # its row of the listings table (its verdict and signals)

    @property
    def signals(self) -> list[str]:
        """Each signal's contribution in words (knockoff/listings/signals.py)."""
        verdict = dict(self.verdict) if self.verdict is not None else {}
        return signal_words(verdict) if signals_apply(verdict) else []

    @property
    def pending(self) -> list[sqlite3.Row]:
        return [p for p in self.photos if p["decision"] is None and p["error"] is None]

    @property
    def top_score(self) -> float | None:
        scores = [p["score"] for p in self.photos if p["score"] is not None]
        return max(scores) if scores else None


def seller(connection: sqlite3.Connection, viewer: Viewer, seller_id: str, marketplace: str, run: int | None
           ) -> tuple[list[sqlite3.Row], list[Listing]]:
    """(its risk rows, one per run; its listings, most suspicious first) as this viewer sees
    them. A seller is its id on its marketplace ('' when the results name none)."""
    where = {"seller": seller_id, "marketplace": marketplace, "run": run, "me": viewer.id}
    risk = connection.execute(
        "SELECT s.*, r.name AS run_name FROM sellers s JOIN runs r ON r.id = s.run_id "
        "WHERE s.seller_id = :seller AND s.marketplace = :marketplace AND (:run IS NULL OR s.run_id = :run) "
        "ORDER BY s.run_id DESC", where).fetchall()
    photos = connection.execute(
        "SELECT * FROM items i WHERE i.seller_id = :seller AND COALESCE(i.marketplace, '') = :marketplace "
        f"AND (:run IS NULL OR i.run_id = :run) AND {visible_to(viewer, 'i')} ORDER BY i.listing_id, i.rank DESC, i.id",
        where).fetchall()
    listings: dict[str, Listing] = {}
    for photo in photos:
        key = photo["listing_id"] or photo["path"]
        listings.setdefault(key, Listing(key, photo["title"], photo["listing_url"], [])).photos.append(photo)
    rows = sorted({p["listing_row"] for p in photos if p["listing_row"] is not None})
    verdicts = {row["id"]: row for start in range(0, len(rows), 500) for row in connection.execute(
        f"SELECT * FROM listings WHERE id IN ({','.join('?' * len(rows[start:start + 500]))})", rows[start:start + 500])}
    for listing in listings.values():
        listing.verdict = verdicts.get(listing.photos[0]["listing_row"])
    ordered = sorted(listings.values(), key=lambda listing: -(listing.top_score if listing.top_score is not None else -1))
    return risk, ordered


def listing_photos(connection: sqlite3.Connection, viewer: Viewer, item: sqlite3.Row) -> list[sqlite3.Row]:
    """The other photos of the item's listing (same run), as this viewer sees them."""
    if item["listing_id"] is None:
        return []
    return connection.execute(
        "SELECT * FROM items i WHERE i.run_id = :run AND i.listing_id = :listing AND COALESCE(i.seller_id, '') = :seller "
        f"AND COALESCE(i.marketplace, '') = :marketplace AND i.id != :id AND {visible_to(viewer, 'i')} ORDER BY i.position",
        {"me": viewer.id, "run": item["run_id"], "listing": item["listing_id"], "id": item["id"],
         "seller": item["seller_id"] or "", "marketplace": item["marketplace"] or ""}).fetchall()


def reuse(connection: sqlite3.Connection, item: sqlite3.Row) -> tuple[int, int]:
    """(listings, sellers) other than this listing that show the same photo: the very same file
    or URL (sellers copy each other's image links as well as the images), or, within its run,
    a copy of it (cropped, resized, re-encoded, mirrored, watermarked: its duplicate_group)."""
    row = connection.execute(
        "SELECT COUNT(DISTINCT run_id || char(31) || COALESCE(marketplace, '') || char(31) || COALESCE(seller_id, '') || char(31)"
        " || COALESCE(listing_id, id)) AS listings,"
        " COUNT(DISTINCT COALESCE(marketplace, '') || char(31) || seller_id) AS sellers "
        "FROM items WHERE (path = :path OR (run_id = :run AND duplicate_group = :group)) "
        "AND NOT (run_id = :run AND COALESCE(listing_id, '') = COALESCE(:listing, '') AND COALESCE(seller_id, '') = :seller "
        "AND COALESCE(marketplace, '') = :marketplace)",
        {"path": item["path"], "run": item["run_id"], "listing": item["listing_id"], "group": item["duplicate_group"],
         "seller": item["seller_id"] or "", "marketplace": item["marketplace"] or ""}).fetchone()
    return int(row["listings"]), int(row["sellers"])


def risk_of(connection: sqlite3.Connection, run_id: int, marketplace: str, seller_id: str) -> RiskSummary | None:
    """What a seller's figures mean in one run (`knockoff.listings.sellers.risk_summary`): its
    judged listings' p(counterfeit) summed, with an interval, and a level in words. None for
    photos sold by nobody named."""
    if not seller_id:
        return None
    rows = connection.execute(
        "SELECT status, probability, flagged FROM listings WHERE run_id = ? AND marketplace = ? AND seller_id = ?",
        (run_id, marketplace or "", seller_id)).fetchall()
    judged = [r for r in rows if r["status"] == "scored"]
    q = [r["probability"] if r["probability"] is not None else float(bool(r["flagged"])) for r in judged]
    return risk_summary(q, sum(bool(r["flagged"]) for r in judged), sum(r["status"] == "unsupported" for r in rows))
