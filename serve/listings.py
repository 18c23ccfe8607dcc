"""Listings, the unit analysts act on: a takedown removes a listing, not a photo.

Each screening run's listings are imported with their verdicts (serve/runs.py): the highest
p(counterfeit) among its judged photos against the listing threshold, which the run's
listing calibration sets at the target precision for a listing with that many judged photos
(knockoff/listings/calibration.py). One decision on a listing decides every photo of it in
one act (serve/decisions.py), so the audit and the confirmed-labels export keep per-photo
labels, and one undo reverses it whole. Photos in no listing are reviewed one by one.
"""

from __future__ import annotations

import sqlite3
import time

from knockoff_serve import decisions as decision_store
from knockoff_serve.queue import QueueFilter, Viewer, first_pending, neighbour, visible_to
from knockoff_serve.store import write


def visible_listing(connection: sqlite3.Connection, listing_row: int, viewer: Viewer) -> sqlite3.Row:
    """The listing, with its run's name, if the viewer may see it (any photo of it visible); else LookupError."""
    row = connection.execute(
        f"""SELECT l.*, r.name AS run_name FROM listings l JOIN runs r ON r.id = l.run_id WHERE l.id = :id
            AND EXISTS (SELECT 1 FROM items i WHERE i.listing_row = l.id AND {visible_to(viewer, 'i')})""",
        {"id": listing_row, "me": viewer.id}).fetchone()
    if row is None:
        raise LookupError(f"no listing {listing_row}")
    return row


def listing_photos(connection: sqlite3.Connection, listing_row: int, viewer: Viewer) -> list[sqlite3.Row]:
    """Its photos as this viewer sees them, the most incriminating first."""
    return connection.execute(
        f"SELECT * FROM items WHERE listing_row = :id AND {visible_to(viewer)} ORDER BY rank DESC, position",
        {"id": listing_row, "me": viewer.id}).fetchall()


def decide_listing(connection: sqlite3.Connection, listing_row: int, viewer: Viewer, decision: str,
                   note: str | None = None) -> tuple[list[int], list[int]]:
    """Every photo of the listing decided in one act: (decided photo ids, skipped: another
    analyst holds or decided it, or it failed to screen)."""
    listing = visible_listing(connection, listing_row, viewer)
    photo_ids = [row["id"] for row in connection.execute(
        "SELECT id FROM items WHERE listing_row = ? AND error IS NULL ORDER BY position", (listing_row,))]
    if not photo_ids:
        raise decision_store.NotAllowed("no photo of this listing could be screened; there is nothing to decide")
    return decision_store.bulk_decide(connection, photo_ids, viewer, decision, note, kind="listing",
                                      subject=listing["listing_id"])


def lease_listing(connection: sqlite3.Connection, listing_row: int, viewer: Viewer, seconds: float) -> str | None:
    """Lease every pending photo of the listing (None), or the name of another analyst holding one."""
    with write(connection):
        return _lease(connection, listing_row, viewer, seconds)


def listing_holder(connection: sqlite3.Connection, listing_row: int, viewer: Viewer) -> str | None:
    """The name of another analyst holding a live lease on a photo of the listing, if any."""
    holder = connection.execute(
        "SELECT u.name FROM leases l JOIN users u ON u.id = l.user_id JOIN items i ON i.id = l.item_id "
        "WHERE i.listing_row = ? AND l.user_id != ? AND l.expires_at > ? LIMIT 1",
        (listing_row, viewer.id, time.time())).fetchone()
    return holder["name"] if holder else None


def _lease(connection: sqlite3.Connection, listing_row: int, viewer: Viewer, seconds: float) -> str | None:
    holder = listing_holder(connection, listing_row, viewer)
    if holder is not None:
        return holder
    connection.executemany(
        "INSERT INTO leases (item_id, user_id, expires_at) VALUES (?, ?, ?) "
        "ON CONFLICT (item_id) DO UPDATE SET user_id = excluded.user_id, expires_at = excluded.expires_at",
        [(row["id"], viewer.id, time.time() + seconds) for row in connection.execute(
            "SELECT id FROM items WHERE listing_row = ? AND decision IS NULL AND error IS NULL", (listing_row,))])
    return None


def claim_next_listing(connection: sqlite3.Connection, queue_filter: QueueFilter, viewer: Viewer,
                       after: sqlite3.Row | None, seconds: float) -> sqlite3.Row | None:
    """The next pending listing in this view that nobody else holds, leased to the viewer in
    the same transaction (two analysts asking at once get different listings)."""
    with write(connection):
        candidate = (neighbour(connection, queue_filter, viewer, after, "next", pending_only=True, table="listings")
                     if after is not None else first_pending(connection, queue_filter, viewer, table="listings"))
        if candidate is not None:
            _lease(connection, candidate["id"], viewer, seconds)
        return candidate


def has_listings(connection: sqlite3.Connection) -> bool:
    return connection.execute("SELECT 1 FROM listings LIMIT 1").fetchone() is not None
