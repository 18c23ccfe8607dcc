"""The review queues, of photos (`items`) and of listings (`listings`): facets, free-text
search, sort, counts and keyset pagination that stay fast at 100,000 rows.

The default order is (rank DESC, id ASC): flagged first, by score; a view may sort by price or
score instead. Pages are addressed by the (sort key, id) of their edge row, never by OFFSET,
so page 2,000 costs what page 1 costs. Analysts see pending items and their own decisions
(a listing: when any of its photos is one), admins everything.
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


SORTS = {  # name -> (SQL key, direction): every order ends on id, so keyset pages never skip or repeat a row
    "risk": ("rank", "DESC"),  # flagged first, by score (runs.queue_rank)
    "price": ("COALESCE(price, 1e300)", "ASC"),  # cheapest first; unpriced last
    "-price": ("COALESCE(price, -1e300)", "DESC"),
    "score": ("COALESCE(score, -1.0)", "DESC"),
}
FACETS = ("seller_id", "marketplace", "product", "brand")  # columns offered with their counts
UNITS = ("items", "listings")  # photos, or listings (serve/listings.py): the same facets on both


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
    seller: str | None = None
    marketplace: str | None = None
    q: str | None = None  # free text: in the title, the listing, seller id or the photo's path
    min_price: float | None = None
    max_price: float | None = None
    sort: str = "risk"
    listed: str = "all"  # photos: all, or only those in no listing ("none")

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}")
        if self.screening not in SCREENING:
            raise ValueError(f"screening must be one of {SCREENING}")
        if self.sort not in SORTS:
            raise ValueError(f"sort must be one of {tuple(SORTS)}")
        if self.listed not in ("all", "none"):
            raise ValueError("listed must be all or none")
        if self.q is not None and len(self.q) > 200:
            raise ValueError("search text holds at most 200 characters")

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
            seller=query.get("seller") or None,
            marketplace=query.get("marketplace") or None,
            q=(query.get("q") or "").strip() or None,
            min_price=number("min_price", float),
            max_price=number("max_price", float),
            sort=query.get("sort") or "risk",
            listed=query.get("listed") or "all",
        )

    def query_string(self, **extra: object) -> str:
        values = {k: v for k, v in asdict(self).items() if v not in (None, "", "all") and not (k == "sort" and v == "risk")}
        values.update({k: v for k, v in extra.items() if v is not None})
        return urlencode(values)

    def without(self, key: str) -> QueueFilter:
        """This view without one facet (what that facet's counts are taken under)."""
        return replace(self, **{key: QueueFilter.__dataclass_fields__[key].default})


FILTER_KEYS = tuple(QueueFilter.__dataclass_fields__)
_FACET_FIELD = {"seller_id": "seller", "marketplace": "marketplace", "product": "product", "brand": "brand"}


@dataclass(frozen=True)
class Cursor:
    rank: float  # the row's sort key (its rank under the default order)
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


# A listing's decision state lives in its row (`pending` photos, `decision`: counterfeit, genuine,
# unsure, mixed or NULL), kept by triggers on its photos (store.py).
_PENDING = {"items": "decision IS NULL AND error IS NULL", "listings": "pending > 0"}
_DECIDED = {"items": "decision IS NOT NULL", "listings": "pending = 0 AND decision IS NOT NULL"}
_FAILED = {"items": "error IS NOT NULL", "listings": "status = 'error'"}


def _where(queue_filter: QueueFilter, viewer: Viewer, table: str = "items") -> tuple[list[str], dict]:
    if table not in UNITS:
        raise ValueError(table)
    clauses, params = [], {"me": viewer.id}
    status = queue_filter.status
    if status == "pending":
        clauses.append(_PENDING[table])
    elif status == "decided":
        clauses.append(_DECIDED[table])
    elif status == "failed":
        clauses.append(_FAILED[table])
    elif status != "all":
        clauses.append("decision = :status")
        params["status"] = status
    if queue_filter.screening != "all":
        clauses.append("status = :screening")
        params["screening"] = queue_filter.screening
    for column, key in (("product", "product"), ("brand", "brand"), ("seller_id", "seller"), ("marketplace", "marketplace")):
        if getattr(queue_filter, key):
            clauses.append(f"{column} = :{key}")
            params[key] = getattr(queue_filter, key)
    for bound, column, sign in (("min_score", "score", ">="), ("max_score", "score", "<="),
                                ("min_price", "price", ">="), ("max_price", "price", "<=")):
        if getattr(queue_filter, bound) is not None:
            clauses.append(f"{column} {sign} :{bound}")
            params[bound] = getattr(queue_filter, bound)
    if queue_filter.q:
        searched = ["title", "listing_id", "seller_id"] + (["path"] if table == "items" else [])
        clauses.append("(" + " OR ".join(f"instr(lower(COALESCE({c}, '')), :q) > 0" for c in searched) + ")")
        params["q"] = queue_filter.q.lower()
    if queue_filter.run is not None:
        clauses.append("run_id = :run")
        params["run"] = queue_filter.run
    if table == "items" and queue_filter.listed == "none":
        clauses.append("listing_row IS NULL")
    if queue_filter.decided_by is not None and viewer.is_admin:
        clauses.append("decided_by = :decided_by" if table == "items" else
                       "EXISTS (SELECT 1 FROM items i WHERE i.listing_row = listings.id AND i.decided_by = :decided_by)")
        params["decided_by"] = queue_filter.decided_by
    if not viewer.is_admin:
        clauses.append(visible_to(viewer) if table == "items" else
                       f"EXISTS (SELECT 1 FROM items i WHERE i.listing_row = listings.id AND {visible_to(viewer, 'i')})")
    return clauses, params


def _order(queue_filter: QueueFilter, reverse: bool = False) -> tuple[str, str]:
    """(the sort key's SQL, ORDER BY) for this view, or its reverse (to read a page upwards)."""
    key, direction = SORTS[queue_filter.sort]
    if reverse:
        direction = "ASC" if direction == "DESC" else "DESC"
    return key, f"{key} {direction}, id {'DESC' if reverse else 'ASC'}"


def _after(queue_filter: QueueFilter, reverse: bool = False) -> str:
    """The keyset condition: rows after (:rank, :id) in this view's order (before it, reversed)."""
    key, direction = SORTS[queue_filter.sort]
    later = "<" if (direction == "DESC") != reverse else ">"
    return f"({key} {later} :rank OR ({key} = :rank AND id {'<' if reverse else '>'} :id))"


def page(connection: sqlite3.Connection, queue_filter: QueueFilter, viewer: Viewer,
         after: Cursor | None = None, before: Cursor | None = None, size: int = 50, table: str = "items") -> Page:
    clauses, params = _where(queue_filter, viewer, table)
    params["size"] = size + 1
    key, order = _order(queue_filter, reverse=before is not None)
    if before is not None:  # the page above `before`, read upwards then flipped
        clauses.append(_after(queue_filter, reverse=True))
        params.update(rank=before.rank, id=before.id)
    elif after is not None:
        clauses.append(_after(queue_filter))
        params.update(rank=after.rank, id=after.id)
    where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
    rows = connection.execute(f"SELECT *, {key} AS sort_key FROM {table} {where} ORDER BY {order} LIMIT :size",
                              params).fetchall()
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


def counts(connection: sqlite3.Connection, queue_filter: QueueFilter, viewer: Viewer, table: str = "items") -> dict[str, int]:
    """Counts per status under the other filters (the status filter itself is ignored)."""
    clauses, params = _where(replace(queue_filter, status="all"), viewer, table)
    where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
    row = connection.execute(
        f"""SELECT COUNT(*) AS total,
                   SUM({_PENDING[table]}) AS pending,
                   SUM({_DECIDED[table]}) AS decided,
                   SUM(decision = 'counterfeit') AS counterfeit,
                   SUM(decision = 'genuine') AS genuine,
                   SUM(decision = 'unsure') AS unsure,
                   SUM({_FAILED[table]}) AS failed,
                   SUM(flagged = 1) AS flagged,
                   SUM(status = 'unsupported') AS unsupported,
                   SUM(status = 'no_match') AS no_match
            FROM {table} {where}""",
        params,
    ).fetchone()
    return {key: int(row[key] or 0) for key in row.keys()}


def facet_counts(connection: sqlite3.Connection, queue_filter: QueueFilter, viewer: Viewer, table: str = "items",
                 limit: int = 100) -> dict[str, list[tuple[str, int]]]:
    """Per facet (seller_id, marketplace, product, brand): its values with how many rows each
    has under the other filters (a facet's own choice is left out, so its other values show),
    commonest first."""
    found = {}
    for column in FACETS:
        clauses, params = _where(queue_filter.without(_FACET_FIELD[column]), viewer, table)
        clauses.append(f"{column} IS NOT NULL AND {column} != ''")
        rows = connection.execute(
            f"SELECT {column} AS value, COUNT(*) AS n FROM {table} WHERE {' AND '.join(clauses)} "
            f"GROUP BY {column} ORDER BY n DESC, {column} LIMIT {int(limit)}", params).fetchall()
        found[column] = [(row["value"], int(row["n"])) for row in rows]
    return found


def neighbour(connection: sqlite3.Connection, queue_filter: QueueFilter, viewer: Viewer, item: sqlite3.Row,
              direction: str, pending_only: bool = False, table: str = "items") -> sqlite3.Row | None:
    """The row after (direction='next') or before ('previous') `item` in this view's order.

    With pending_only, skips decided rows and rows another analyst holds a lease on.
    """
    clauses, params = _where(queue_filter, viewer, table)
    key, _ = _order(queue_filter)
    params.update(rank=_key_of(connection, table, key, item["id"]), id=item["id"], now=time.time())
    reverse = direction != "next"
    clauses.append(_after(queue_filter, reverse=reverse))
    _, order = _order(queue_filter, reverse=reverse)
    if pending_only:
        clauses += _unclaimed(table)
    return connection.execute(
        f"SELECT * FROM {table} WHERE {' AND '.join(clauses)} ORDER BY {order} LIMIT 1", params
    ).fetchone()


def first_pending(connection: sqlite3.Connection, queue_filter: QueueFilter, viewer: Viewer,
                  table: str = "items") -> sqlite3.Row | None:
    clauses, params = _where(queue_filter, viewer, table)
    params["now"] = time.time()
    clauses += _unclaimed(table)
    _, order = _order(queue_filter)
    return connection.execute(f"SELECT * FROM {table} WHERE {' AND '.join(clauses)} ORDER BY {order} LIMIT 1",
                              params).fetchone()


def _unclaimed(table: str) -> list[str]:
    """Pending, and not held by another analyst (a listing: none of its photos is)."""
    held = ("SELECT 1 FROM leases l WHERE l.item_id = items.id" if table == "items" else
            "SELECT 1 FROM leases l JOIN items i ON i.id = l.item_id WHERE i.listing_row = listings.id")
    return [_PENDING[table], f"NOT EXISTS ({held} AND l.user_id != :me AND l.expires_at > :now)"]


def _key_of(connection: sqlite3.Connection, table: str, key: str, row_id: int) -> float:
    return connection.execute(f"SELECT {key} FROM {table} WHERE id = ?", (row_id,)).fetchone()[0]


def _cursor(row: sqlite3.Row) -> Cursor:
    return Cursor(row["sort_key"], row["id"])
