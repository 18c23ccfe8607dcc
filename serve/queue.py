"""The review queue: filters, counts and keyset pagination that stay fast at 100,000 rows.

Order is (rank DESC, id ASC): flagged listings first, by score. Pages are addressed by the
(rank, id) of their edge row, never by OFFSET, so page 2,000 costs what page 1 costs.
Analysts see pending items and their own decisions; admins see everything.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import asdict, dataclass, replace
from urllib.parse import urlencode

STATUSES = ("all", "pending", "decided", "counterfeit", "genuine", "unsure", "failed")
# What screening made of the photo (knockoff/scoring/open_world.py); 'unsupported' is the
# "needs references" queue.
SCREENING = ("all", "scored", "no_match", "unsupported", "copy", "error")


@dataclass(frozen=True)
class Viewer:
    id: int
    name: str
    role: str

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


@dataclass(frozen=True)
class QueueFilter:
    status: str = "all"
    product: str | None = None
    brand: str | None = None
    min_score: float | None = None
    max_score: float | None = None
    run: int | None = None
    decided_by: int | None = None  # admins: one analyst's decisions
    screening: str = "all"

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}")
        if self.screening not in SCREENING:
            raise ValueError(f"screening must be one of {SCREENING}")

    @classmethod
    def from_query(cls, query: dict[str, str]) -> QueueFilter:
        def number(key: str, kind: type) -> float | int | None:
            value = query.get(key)
            if value in (None, ""):
                return None
            try:
                return kind(value)
            except ValueError:
                raise ValueError(f"{key} must be a number, not {value!r}") from None

        return cls(
            status=query.get("status") or "all",
            product=query.get("product") or None,
            brand=query.get("brand") or None,
            min_score=number("min_score", float),
            max_score=number("max_score", float),
            run=number("run", int),
            decided_by=number("decided_by", int),
            screening=query.get("screening") or "all",
        )

    def query_string(self, **extra: object) -> str:
        values = {k: v for k, v in asdict(self).items() if v not in (None, "", "all")}
        values.update({k: v for k, v in extra.items() if v is not None})
        return urlencode(values)


@dataclass(frozen=True)
class Cursor:
    rank: float
    id: int

    def __str__(self) -> str:
        return f"{self.rank!r}:{self.id}"

    @classmethod
    def parse(cls, text: str | None) -> Cursor | None:
        if not text:
            return None
        rank, separator, item_id = text.rpartition(":")
        try:
            cursor = cls(float(rank), int(item_id))
        except ValueError:
            cursor = None
        if not separator or cursor is None or cursor.rank != cursor.rank or not 0 < cursor.id <= 2**63 - 1:
            raise ValueError(f"{text!r} is not a queue position (RANK:ID, as the page links give)")
        return cursor


@dataclass
class Page:
    items: list[sqlite3.Row]
    newer: Cursor | None  # cursor for the previous page, if any
    older: Cursor | None  # cursor for the next page, if any


def visible_to(viewer: Viewer, alias: str = "") -> str:
    """The SQL condition on items this viewer may see: admins all, analysts the pending ones
    and their own decisions (binds :me to the viewer's id)."""
    prefix = f"{alias}." if alias else ""
    return "1" if viewer.is_admin else f"({prefix}decision IS NULL OR {prefix}decided_by = :me)"


def _where(queue_filter: QueueFilter, viewer: Viewer) -> tuple[list[str], dict]:
    clauses, params = [], {"me": viewer.id}
    status = queue_filter.status
    if status == "pending":
        clauses.append("decision IS NULL AND error IS NULL")
    elif status == "decided":
        clauses.append("decision IS NOT NULL")
    elif status == "failed":
        clauses.append("error IS NOT NULL")
    elif status != "all":
        clauses.append("decision = :status")
        params["status"] = status
    if queue_filter.screening != "all":
        clauses.append("status = :screening")
        params["screening"] = queue_filter.screening
    for key in ("product", "brand"):
        if getattr(queue_filter, key):
            clauses.append(f"{key} = :{key}")
            params[key] = getattr(queue_filter, key)
    if queue_filter.min_score is not None:
        clauses.append("score >= :min_score")
        params["min_score"] = queue_filter.min_score
    if queue_filter.max_score is not None:
        clauses.append("score <= :max_score")
        params["max_score"] = queue_filter.max_score
    if queue_filter.run is not None:
        clauses.append("run_id = :run")
        params["run"] = queue_filter.run
    if queue_filter.decided_by is not None and viewer.is_admin:
        clauses.append("decided_by = :decided_by")
        params["decided_by"] = queue_filter.decided_by
    if not viewer.is_admin:
        clauses.append(visible_to(viewer))
    return clauses, params


def page(connection: sqlite3.Connection, queue_filter: QueueFilter, viewer: Viewer,
         after: Cursor | None = None, before: Cursor | None = None, size: int = 50) -> Page:
    clauses, params = _where(queue_filter, viewer)
    params["size"] = size + 1
    if before is not None:  # the page above `before`, read upwards then flipped
        clauses.append("(rank > :rank OR (rank = :rank AND id < :id))")
        params.update(rank=before.rank, id=before.id)
        order = "rank ASC, id DESC"
    else:
        if after is not None:
            clauses.append("(rank < :rank OR (rank = :rank AND id > :id))")
            params.update(rank=after.rank, id=after.id)
        order = "rank DESC, id ASC"
    where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
    rows = connection.execute(f"SELECT * FROM items {where} ORDER BY {order} LIMIT :size", params).fetchall()
    more = len(rows) > size
    rows = rows[:size]
    if before is not None:
        rows.reverse()
        newer = _cursor(rows[0]) if more and rows else None
        older = _cursor(rows[-1]) if rows else None
    else:
        newer = _cursor(rows[0]) if after is not None and rows else None
        older = _cursor(rows[-1]) if more else None
    return Page(rows, newer, older)


def counts(connection: sqlite3.Connection, queue_filter: QueueFilter, viewer: Viewer) -> dict[str, int]:
    """Counts per status under the other filters (the status filter itself is ignored)."""
    clauses, params = _where(replace(queue_filter, status="all"), viewer)
    where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
    row = connection.execute(
        f"""SELECT COUNT(*) AS total,
                   SUM(decision IS NULL AND error IS NULL) AS pending,
                   SUM(decision IS NOT NULL) AS decided,
                   SUM(decision = 'counterfeit') AS counterfeit,
                   SUM(decision = 'genuine') AS genuine,
                   SUM(decision = 'unsure') AS unsure,
                   SUM(error IS NOT NULL) AS failed,
                   SUM(flagged = 1) AS flagged,
                   SUM(status = 'unsupported') AS unsupported,
                   SUM(status = 'no_match') AS no_match
            FROM items {where}""",
        params,
    ).fetchone()
    return {key: int(row[key] or 0) for key in row.keys()}


def neighbour(connection: sqlite3.Connection, queue_filter: QueueFilter, viewer: Viewer, item: sqlite3.Row,
              direction: str, pending_only: bool = False) -> sqlite3.Row | None:
    """The item after (direction='next') or before ('previous') `item` in queue order.

    With pending_only, skips decided items and items another analyst holds a lease on.
    """
    clauses, params = _where(queue_filter, viewer)
    params.update(rank=item["rank"], id=item["id"], now=time.time())
    if direction == "next":
        clauses.append("(rank < :rank OR (rank = :rank AND id > :id))")
        order = "rank DESC, id ASC"
    else:
        clauses.append("(rank > :rank OR (rank = :rank AND id < :id))")
        order = "rank ASC, id DESC"
    if pending_only:
        clauses.append("decision IS NULL AND error IS NULL")
        clauses.append("NOT EXISTS (SELECT 1 FROM leases l WHERE l.item_id = items.id AND l.user_id != :me AND l.expires_at > :now)")
    return connection.execute(
        f"SELECT * FROM items WHERE {' AND '.join(clauses)} ORDER BY {order} LIMIT 1", params
    ).fetchone()


def first_pending(connection: sqlite3.Connection, queue_filter: QueueFilter, viewer: Viewer) -> sqlite3.Row | None:
    clauses, params = _where(queue_filter, viewer)
    params["now"] = time.time()
    clauses.append("decision IS NULL AND error IS NULL")
    clauses.append("NOT EXISTS (SELECT 1 FROM leases l WHERE l.item_id = items.id AND l.user_id != :me AND l.expires_at > :now)")
    return connection.execute(
        f"SELECT * FROM items WHERE {' AND '.join(clauses)} ORDER BY rank DESC, id ASC LIMIT 1", params
    ).fetchone()


def distinct_values(connection: sqlite3.Connection, column: str) -> list[str]:
    if column not in ("product", "brand"):
        raise ValueError(column)
    rows = connection.execute(f"SELECT DISTINCT {column} FROM items WHERE {column} IS NOT NULL ORDER BY {column}")
    return [row[0] for row in rows]


def _cursor(row: sqlite3.Row) -> Cursor:
    return Cursor(row["rank"], row["id"])
