"""Decisions with a full audit trail, leases, undo, bulk decisions, export of confirmed labels.

Every change is one row in `decisions` (who, when, which model and gallery produced the
score, what the decision was before), written in the same transaction that updates the item;
undo is a new row, never a deletion. A lease reserves a pending item for one analyst for a
few minutes, so two analysts never review the same listing at the same moment.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass

from knockoff_serve.queue import QueueFilter, Viewer, first_pending, neighbour
from knockoff_serve.store import write

DECISIONS = ("counterfeit", "genuine", "unsure")
MAX_NOTE = 2000
MAX_BULK = 5000  # items in one bulk decision (one transaction holds the write lock meanwhile)


class LeaseHeld(Exception):
    """Another analyst is reviewing this item right now."""

    def __init__(self, holder: str) -> None:
        super().__init__(f"{holder} is reviewing this listing")
        self.holder = holder


class NotAllowed(Exception):
    """The viewer may not change this item."""


@dataclass(frozen=True)
class Decided:
    decision_id: int
    item_id: int
    decision: str | None
    items: int = 1  # how many items the act changed (a bulk or listing decision, or its undo)


def lease_holder(connection: sqlite3.Connection, item_id: int, viewer: Viewer) -> str | None:
    """The name of another analyst holding a live lease on the item, if any."""
    row = connection.execute(
        "SELECT u.name FROM leases l JOIN users u ON u.id = l.user_id "
        "WHERE l.item_id = ? AND l.user_id != ? AND l.expires_at > ?",
        (item_id, viewer.id, time.time()),
    ).fetchone()
    return row["name"] if row else None


def acquire_lease(connection: sqlite3.Connection, item_id: int, viewer: Viewer, seconds: float) -> str | None:
    """Take or renew the lease on a pending item; returns the holder's name if someone else has it."""
    with write(connection):
        return _acquire(connection, item_id, viewer, seconds)


def _acquire(connection: sqlite3.Connection, item_id: int, viewer: Viewer, seconds: float) -> str | None:
    holder = lease_holder(connection, item_id, viewer)
    if holder is None:
        connection.execute(
            "INSERT INTO leases (item_id, user_id, expires_at) VALUES (?, ?, ?) "
            "ON CONFLICT (item_id) DO UPDATE SET user_id = excluded.user_id, expires_at = excluded.expires_at",
            (item_id, viewer.id, time.time() + seconds),
        )
    return holder


def claim_next(connection: sqlite3.Connection, queue_filter: QueueFilter, viewer: Viewer, after: sqlite3.Row | None,
               seconds: float) -> sqlite3.Row | None:
    """The next pending item in queue order that nobody else holds, leased to the viewer.

    Choosing and leasing happen in one write transaction, so two analysts asking at the same
    moment get different items.
    """
    with write(connection):
        candidate = neighbour(connection, queue_filter, viewer, after, "next", pending_only=True) if after is not None \
            else first_pending(connection, queue_filter, viewer)
        if candidate is not None:
            _acquire(connection, candidate["id"], viewer, seconds)
        return candidate


def decide(connection: sqlite3.Connection, item_id: int, viewer: Viewer, decision: str, note: str | None = None) -> Decided:
    if decision not in DECISIONS:
        raise ValueError(f"decision must be one of {DECISIONS}")
    note = (note or "").strip()[:MAX_NOTE] or None
    with write(connection):
        item = _changeable_item(connection, item_id, viewer)
        repeated = _same_decision_in_force(connection, item, viewer, decision, note)
        if repeated is not None:  # a client's retry of a decision already saved: no second audit entry
            return Decided(repeated, item_id, decision)
        decision_id = _record(connection, item, viewer, "decide", decision, note, undoes=None)
        connection.execute("DELETE FROM leases WHERE item_id = ?", (item_id,))
    return Decided(decision_id, item_id, decision)


def _same_decision_in_force(connection: sqlite3.Connection, item: sqlite3.Row, viewer: Viewer, decision: str,
                            note: str | None) -> int | None:
    """The id of the entry in force if it is this very decision (same analyst, decision and note)."""
    if item["decision"] != decision or item["decided_by"] != viewer.id:
        return None
    last = connection.execute(
        "SELECT id, action, note FROM decisions WHERE item_id = ? ORDER BY id DESC LIMIT 1", (item["id"],)).fetchone()
    return last["id"] if last is not None and last["action"] == "decide" and last["note"] == note else None


def bulk_decide(connection: sqlite3.Connection, item_ids: list[int], viewer: Viewer, decision: str,
                note: str | None = None, kind: str = "bulk", subject: str | None = None) -> tuple[list[int], list[int]]:
    """Decide many items in one transaction, as one act (a `batches` row that undo reverses
    whole): (decided ids, skipped ids: leased by others or not allowed)."""
    if decision not in DECISIONS:
        raise ValueError(f"decision must be one of {DECISIONS}")
    if len(item_ids) > MAX_BULK:
        raise ValueError(f"at most {MAX_BULK} items in one bulk decision, got {len(item_ids)}")
    if note is not None and len(note) > MAX_NOTE:
        raise ValueError(f"a note holds at most {MAX_NOTE} characters, got {len(note)}")
    decided, skipped = [], []
    with write(connection):
        batch = _batch(connection, viewer, kind, decision, subject)
        for item_id in dict.fromkeys(item_ids):
            try:
                item = _changeable_item(connection, item_id, viewer)
            except (LeaseHeld, NotAllowed, LookupError):
                skipped.append(item_id)
                continue
            _record(connection, item, viewer, "decide", decision, note, undoes=None, batch=batch)
            connection.execute("DELETE FROM leases WHERE item_id = ?", (item_id,))
            decided.append(item_id)
        connection.execute("UPDATE batches SET items = ? WHERE id = ?", (len(decided), batch))
    return decided, skipped


def _batch(connection: sqlite3.Connection, viewer: Viewer, kind: str, decision: str | None, subject: str | None) -> int:
    return connection.execute("INSERT INTO batches (user_id, kind, decision, items, subject) VALUES (?, ?, ?, 0, ?)",
                              (viewer.id, kind, decision, subject)).lastrowid


_IN_FORCE = """d.user_id = :me AND d.action = 'decide'
                 AND NOT EXISTS (SELECT 1 FROM decisions u WHERE u.undoes = d.id)
                 AND d.id = (SELECT MAX(id) FROM decisions WHERE item_id = d.item_id)"""


def undo_last(connection: sqlite3.Connection, viewer: Viewer) -> Decided | None:
    """Revert the viewer's most recent act still in force: one decision, or a whole bulk or
    listing decision (each of its decisions still in force), as one undo act. None if there is none."""
    with write(connection):
        last = connection.execute(f"SELECT d.* FROM decisions d WHERE {_IN_FORCE} ORDER BY d.id DESC LIMIT 1",
                                  {"me": viewer.id}).fetchone()
        if last is None:
            return None
        entries = [last] if last["batch"] is None else connection.execute(
            f"SELECT d.* FROM decisions d WHERE d.batch = :batch AND {_IN_FORCE} ORDER BY d.id",
            {"me": viewer.id, "batch": last["batch"]}).fetchall()
        batch = None if last["batch"] is None else _batch(connection, viewer, "undo", None, str(last["batch"]))
        first_id = None
        for entry in entries:
            item = connection.execute("SELECT * FROM items WHERE id = ?", (entry["item_id"],)).fetchone()
            restored = {"decision": entry["previous_decision"], "decided_by": entry["previous_decided_by"],
                        "decided_at": entry["previous_decided_at"]}
            decision_id = _record(connection, item, viewer, "undo", None, None, undoes=entry["id"], restored=restored,
                                  batch=batch)
            first_id = first_id or decision_id
        if batch is not None:
            connection.execute("UPDATE batches SET items = ? WHERE id = ?", (len(entries), batch))
    return Decided(first_id, entries[0]["item_id"], entries[0]["previous_decision"], items=len(entries))


def history(connection: sqlite3.Connection, viewer: Viewer, item_id: int | None = None, limit: int = 200) -> list[sqlite3.Row]:
    """Audit rows, newest first: everyone's for admins, the viewer's own for analysts."""
    clauses, params = [], []
    if item_id is not None:
        clauses.append("d.item_id = ?")
        params.append(item_id)
    if not viewer.is_admin:
        clauses.append("d.user_id = ?")
        params.append(viewer.id)
    where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
    return connection.execute(
        f"""SELECT d.*, u.name AS user_name, i.listing_id FROM decisions d
            JOIN users u ON u.id = d.user_id JOIN items i ON i.id = d.item_id
            {where} ORDER BY d.id DESC LIMIT ?""",
        (*params, limit),
    ).fetchall()


def acts(connection: sqlite3.Connection, viewer: Viewer, limit: int = 500) -> list[sqlite3.Row]:
    """The audit as analysts acted, newest first: a bulk or listing decision (or its undo) is one
    row with its item count (`kind`, `items`), a single decision one row of its own."""
    where = "" if viewer.is_admin else "WHERE d.user_id = :me"
    return connection.execute(
        f"""SELECT COALESCE('b' || d.batch, 'd' || d.id) AS act, MIN(d.id) AS first_id, d.created_at, d.user_id,
                   u.name AS user_name, COUNT(*) AS items, d.item_id, i.listing_id, d.action, d.decision,
                   d.previous_decision, d.note, d.model_version, d.index_version, b.kind, b.subject, d.batch
            FROM decisions d JOIN users u ON u.id = d.user_id JOIN items i ON i.id = d.item_id
                 LEFT JOIN batches b ON b.id = d.batch
            {where} GROUP BY act ORDER BY first_id DESC LIMIT :limit""",
        {"me": viewer.id, "limit": limit}).fetchall()


def _changeable_item(connection: sqlite3.Connection, item_id: int, viewer: Viewer) -> sqlite3.Row:
    item = connection.execute("SELECT * FROM items WHERE id = ?", (item_id,)).fetchone()
    if item is None:
        raise LookupError(f"no item {item_id}")
    if item["error"] is not None:
        raise NotAllowed("this listing failed to screen; there is nothing to decide")
    if item["decided_by"] is not None and item["decided_by"] != viewer.id and not viewer.is_admin:
        raise NotAllowed("another analyst decided this listing; ask an admin to change it")
    holder = lease_holder(connection, item_id, viewer)
    if holder is not None:
        raise LeaseHeld(holder)
    return item


def _record(connection: sqlite3.Connection, item: sqlite3.Row, viewer: Viewer, action: str, decision: str | None,
            note: str | None, undoes: int | None, restored: dict | None = None, batch: int | None = None) -> int:
    decision_id = connection.execute(
        """INSERT INTO decisions (item_id, user_id, action, decision, note, previous_decision, previous_decided_by,
                                  previous_decided_at, undoes, model_version, index_version, batch)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
        (item["id"], viewer.id, action, decision if restored is None else restored["decision"], note,
         item["decision"], item["decided_by"], item["decided_at"], undoes, item["model_version"], item["index_version"],
         batch),
    ).lastrowid
    if restored is None:
        connection.execute(
            "UPDATE items SET decision = ?, decided_by = ?, decided_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') WHERE id = ?",
            (decision, viewer.id, item["id"]),
        )
    else:
        connection.execute(
            "UPDATE items SET decision = ?, decided_by = ?, decided_at = ? WHERE id = ?",
            (restored["decision"], restored["decided_by"], restored["decided_at"], item["id"]),
        )
    return decision_id
