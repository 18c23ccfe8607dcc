"""The SQLite store: users, sessions, screening runs, items, decisions (audit), leases.

WAL journal with synchronous=FULL: a decision is acknowledged only after its transaction is
on disk, so a crash or a kill loses nothing that was acknowledged. Every request opens its
own short-lived connection; writers take the lock up front (BEGIN IMMEDIATE).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    role TEXT NOT NULL CHECK (role IN ('analyst', 'admin')),
    password_hash TEXT NOT NULL,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    active INTEGER NOT NULL DEFAULT 1
);
CREATE TABLE IF NOT EXISTS sessions (
    token_hash TEXT PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES users(id),
    csrf_token TEXT NOT NULL,
    expires_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS login_failures (  -- audit of refused logins; also what throttles them
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    address TEXT NOT NULL,
    outcome TEXT NOT NULL CHECK (outcome IN ('wrong password', 'throttled')),
    at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS login_failures_by_name ON login_failures (name, at);
CREATE INDEX IF NOT EXISTS login_failures_by_address ON login_failures (address, at);
CREATE TABLE IF NOT EXISTS api_tokens (
    token_hash TEXT PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES users(id),
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    path TEXT NOT NULL,
    fingerprint TEXT NOT NULL UNIQUE,
    rows INTEGER NOT NULL,
    model_version TEXT,
    index_version TEXT,
    imported_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
CREATE TABLE IF NOT EXISTS items (
    id INTEGER PRIMARY KEY,
    run_id INTEGER NOT NULL REFERENCES runs(id),
    position INTEGER NOT NULL,
    listing_id TEXT,
    path TEXT,
    source TEXT,
    score REAL,
    flagged INTEGER,
    threshold REAL,
    product TEXT,
    product_similarity REAL,
    claimed_product TEXT,
    product_mismatch INTEGER,
    brand TEXT,
    label TEXT,
    error TEXT,
    model_version TEXT,
    index_version TEXT,
    evidence TEXT,                -- JSON: neighbors, nearest_genuine, nearest_fake
    status TEXT,                  -- screening status: scored | no_match | unsupported | error
    status_reason TEXT,
    matched_product TEXT,
    seller_id TEXT,               -- the listing's fields, from the manifest
    marketplace TEXT,
    listing_url TEXT,
    title TEXT,
    price REAL,
    currency TEXT,
    duplicate_group INTEGER,      -- rows of a run showing the same photograph share it
    reference_copy TEXT,          -- the gallery reference this photo copies
    rank REAL NOT NULL,           -- queue order: flagged first, then by score; failed rows last
    decision TEXT CHECK (decision IN ('counterfeit', 'genuine', 'unsure')),
    decided_by INTEGER REFERENCES users(id),
    decided_at TEXT
);
CREATE INDEX IF NOT EXISTS items_queue ON items (rank DESC, id);
CREATE INDEX IF NOT EXISTS items_by_product ON items (product, rank DESC, id);
CREATE INDEX IF NOT EXISTS items_by_brand ON items (brand, rank DESC, id);
CREATE INDEX IF NOT EXISTS items_by_decision ON items (decision, rank DESC, id);
CREATE INDEX IF NOT EXISTS items_by_run ON items (run_id, rank DESC, id);
CREATE INDEX IF NOT EXISTS items_by_status ON items (status, rank DESC, id);
CREATE INDEX IF NOT EXISTS items_by_seller ON items (seller_id, rank DESC, id);
CREATE INDEX IF NOT EXISTS items_by_listing ON items (run_id, listing_id);
CREATE INDEX IF NOT EXISTS items_by_path ON items (path);
CREATE INDEX IF NOT EXISTS items_by_duplicate ON items (run_id, duplicate_group);
-- Per run, each seller's risk as `knockoff sellers` computes it (knockoff/listings/sellers.py)
-- A seller is its id on its marketplace ('' when the results name none).
CREATE TABLE IF NOT EXISTS sellers (
    run_id INTEGER NOT NULL REFERENCES runs(id),
    marketplace TEXT NOT NULL DEFAULT '',
    seller_id TEXT NOT NULL,
    risk REAL NOT NULL,
    risk_brand TEXT,              -- the brand the risk comes from
    listings INTEGER NOT NULL,
    judged_listings INTEGER NOT NULL,
    flagged_listings INTEGER NOT NULL,
    expected_fakes REAL NOT NULL,
    top_listing TEXT,
    unsupported_listings INTEGER NOT NULL,
    PRIMARY KEY (run_id, marketplace, seller_id)
);
CREATE INDEX IF NOT EXISTS sellers_by_risk ON sellers (risk DESC);
CREATE TABLE IF NOT EXISTS decisions (
    id INTEGER PRIMARY KEY,
    item_id INTEGER NOT NULL REFERENCES items(id),
    user_id INTEGER NOT NULL REFERENCES users(id),
    action TEXT NOT NULL CHECK (action IN ('decide', 'undo')),
    decision TEXT,                -- the item's decision after this entry (NULL: pending again)
    note TEXT,
    previous_decision TEXT,
    previous_decided_by INTEGER,
    previous_decided_at TEXT,
    undoes INTEGER REFERENCES decisions(id),
    model_version TEXT,
    index_version TEXT,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
CREATE INDEX IF NOT EXISTS decisions_by_user ON decisions (user_id, id);
CREATE INDEX IF NOT EXISTS decisions_by_item ON decisions (item_id, id);
-- Every change to the service's gallery, proposed or made: who, when, which photo, which
-- label, the gallery versions before and after (serve/references.py).
CREATE TABLE IF NOT EXISTS gallery_changes (
    id INTEGER PRIMARY KEY,
    action TEXT NOT NULL CHECK (action IN ('add', 'rollback')),
    item_id INTEGER REFERENCES items(id),
    path TEXT,
    product TEXT,
    authenticity TEXT,
    state TEXT NOT NULL CHECK (state IN ('proposed', 'applied', 'rejected')),
    proposed_by INTEGER NOT NULL REFERENCES users(id),
    proposed_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    decided_by INTEGER REFERENCES users(id),
    decided_at TEXT,
    version_before TEXT,
    version_after TEXT,
    note TEXT
);
CREATE TABLE IF NOT EXISTS leases (
    item_id INTEGER PRIMARY KEY REFERENCES items(id),
    user_id INTEGER NOT NULL REFERENCES users(id),
    expires_at REAL NOT NULL
);
"""


def connect(path: Path, busy_timeout_s: float = 10.0) -> sqlite3.Connection:
    path.parent.mkdir(parents=True, exist_ok=True)
    connection = sqlite3.connect(path, timeout=busy_timeout_s, isolation_level=None, check_same_thread=False)
    connection.row_factory = sqlite3.Row
    connection.execute("PRAGMA journal_mode = WAL")
    connection.execute("PRAGMA synchronous = FULL")
    connection.execute("PRAGMA foreign_keys = ON")
    connection.execute(f"PRAGMA busy_timeout = {int(busy_timeout_s * 1000)}")
    return connection


def is_busy(error: sqlite3.OperationalError) -> bool:
    """Another process holds the store's lock longer than the busy timeout (not a broken store)."""
    return "locked" in str(error) or "busy" in str(error)


# Columns added after a store may have been created: (table, column, type).
_ADDED_COLUMNS = (("items", "status", "TEXT"), ("items", "status_reason", "TEXT"), ("items", "matched_product", "TEXT"),
                  ("items", "seller_id", "TEXT"), ("items", "marketplace", "TEXT"), ("items", "listing_url", "TEXT"),
                  ("items", "title", "TEXT"), ("items", "price", "REAL"), ("items", "currency", "TEXT"),
                  ("items", "duplicate_group", "INTEGER"), ("items", "reference_copy", "TEXT"))


def initialize(path: Path) -> None:
    """Create or update the store. It holds password hashes, tokens and every decision: only
    its owner may read it (SQLite gives its -wal and -shm files the same permissions)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600, exist_ok=True)
    path.chmod(0o600)
    with closing(connect(path)) as connection:
        _add_missing_columns(connection)
        connection.executescript(SCHEMA)


def _add_missing_columns(connection: sqlite3.Connection) -> None:
    """Bring a store made by an earlier Knockoff up to this schema (rows it screened before the
    screening status existed were all judged: 'scored', or 'error' where they failed)."""
    if not connection.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'items'").fetchone():
        return
    present = {row["name"] for row in connection.execute("PRAGMA table_info(items)")}
    for table, column, kind in _ADDED_COLUMNS:
        if column not in present:
            connection.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")
    if "status" not in present:
        connection.execute("UPDATE items SET status = CASE WHEN error IS NULL THEN 'scored' ELSE 'error' END")
    sellers = {row["name"] for row in connection.execute("PRAGMA table_info(sellers)")}
    if sellers and "marketplace" not in sellers:
        # keyed by (run, seller id) before: the same id on two marketplaces was one seller
        connection.executescript(
            "ALTER TABLE sellers RENAME TO sellers_before_marketplace;"
            + SCHEMA[SCHEMA.index("-- A seller is its id"):SCHEMA.index("CREATE INDEX IF NOT EXISTS sellers_by_risk")]
            + "INSERT INTO sellers (run_id, marketplace, seller_id, risk, risk_brand, listings, judged_listings, flagged_listings,"
              " expected_fakes, top_listing, unsupported_listings) SELECT run_id, '', seller_id, risk, risk_brand, listings,"
              " judged_listings, flagged_listings, expected_fakes, top_listing, unsupported_listings FROM sellers_before_marketplace;"
              "DROP TABLE sellers_before_marketplace;")


@contextmanager
def closing(connection: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    try:
        yield connection
    finally:
        connection.close()


@contextmanager
def write(connection: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """A write transaction that holds the database lock from its start, committed on success."""
    connection.execute("BEGIN IMMEDIATE")
    try:
        yield connection
    except BaseException:
        connection.execute("ROLLBACK")
        raise
    connection.execute("COMMIT")
