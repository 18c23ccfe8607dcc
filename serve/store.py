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
    listing_row INTEGER REFERENCES listings(id),  -- the listing it belongs to (NULL: a photo of no listing)
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
CREATE INDEX IF NOT EXISTS items_by_listing_row ON items (listing_row);
-- Per run, each listing's verdict as `knockoff listings` computes it (knockoff/listings/verdicts.py):
-- the unit analysts review and act on. `pending` and `decision` follow its photos (triggers below).
CREATE TABLE IF NOT EXISTS listings (
    id INTEGER PRIMARY KEY,
    run_id INTEGER NOT NULL REFERENCES runs(id),
    marketplace TEXT NOT NULL DEFAULT '',
    seller_id TEXT NOT NULL DEFAULT '',
    listing_id TEXT NOT NULL,
    title TEXT,
    price REAL,
    currency TEXT,
    listing_url TEXT,
    photos INTEGER NOT NULL,
    scored_photos INTEGER NOT NULL,
    flagged_photos INTEGER NOT NULL,
    status TEXT,                  -- its most telling photo's screening status
    status_reason TEXT,           -- why that photo was not judged, when none was
    score REAL,                   -- highest p(counterfeit) among its judged photos
    flagged INTEGER NOT NULL,     -- score >= the listing threshold
    threshold REAL,               -- the listing threshold (NULL: nothing of its kind can be flagged)
    expected_precision REAL,      -- the precision bound at that threshold
    probability REAL,             -- p(counterfeit) at the run's share of fakes
    product TEXT,
    claimed_product TEXT,
    product_mismatch INTEGER,
    brand TEXT,
    top_photo TEXT,
    top_item INTEGER,             -- the item of its top photo
    reused_photos INTEGER,
    reference_copies INTEGER,
    official_photos INTEGER,      -- photos that copy the brand's official photos (its catalogue)
    price_ratio REAL,             -- price over the catalogued product's retail price (knockoff/listings/signals.py)
    official_reuse TEXT,          -- who shows an official photo (NULL: the catalogue has none of the product)
    price_ratio_lr REAL,          -- each signal's likelihood ratio (1: does not apply)
    reuse_lr REAL,
    image_lr REAL,                -- the photos' (NULL: none judged)
    rank REAL NOT NULL,           -- queue order, as for photos
    pending INTEGER NOT NULL DEFAULT 0,  -- photos still to decide
    decision TEXT,                -- counterfeit | genuine | unsure when all its decided photos agree; mixed; NULL: none decided
    UNIQUE (run_id, marketplace, seller_id, listing_id)
);
CREATE INDEX IF NOT EXISTS listings_queue ON listings (rank DESC, id);
CREATE INDEX IF NOT EXISTS listings_by_seller ON listings (seller_id, rank DESC, id);
CREATE INDEX IF NOT EXISTS listings_by_product ON listings (product, rank DESC, id);
CREATE INDEX IF NOT EXISTS listings_by_price ON listings (price, id);
CREATE TRIGGER IF NOT EXISTS listing_follows_its_photos AFTER UPDATE OF decision ON items
WHEN NEW.listing_row IS NOT NULL BEGIN
    UPDATE listings SET
        pending = (SELECT COUNT(*) FROM items WHERE listing_row = NEW.listing_row AND decision IS NULL AND error IS NULL),
        decision = (SELECT CASE WHEN COUNT(DISTINCT decision) = 0 THEN NULL WHEN COUNT(DISTINCT decision) = 1 THEN MAX(decision)
                                ELSE 'mixed' END FROM items WHERE listing_row = NEW.listing_row AND error IS NULL)
    WHERE id = NEW.listing_row;
END;
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
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    batch INTEGER REFERENCES batches(id)  -- the one act (a bulk or listing decision, its undo) it was part of
);
CREATE INDEX IF NOT EXISTS decisions_by_user ON decisions (user_id, id);
CREATE INDEX IF NOT EXISTS decisions_by_item ON decisions (item_id, id);
CREATE INDEX IF NOT EXISTS decisions_by_batch ON decisions (batch);
-- One act over many items (a bulk decision, a listing's decision, the undo of either), as the
-- analyst made it: the audit reads it as one act and undo reverses it whole.
CREATE TABLE IF NOT EXISTS batches (
    id INTEGER PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES users(id),
    kind TEXT NOT NULL CHECK (kind IN ('bulk', 'listing', 'undo')),
    decision TEXT,
    items INTEGER NOT NULL,
    subject TEXT,                 -- the listing decided, or the batch an undo reverses
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
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
                  ("items", "duplicate_group", "INTEGER"), ("items", "reference_copy", "TEXT"),
                  ("decisions", "batch", "INTEGER"), ("items", "listing_row", "INTEGER"),
                  *(("listings", column, kind) for column, kind in (
                      ("official_photos", "INTEGER"), ("price_ratio", "REAL"), ("official_reuse", "TEXT"),
                      ("price_ratio_lr", "REAL"), ("reuse_lr", "REAL"), ("image_lr", "REAL"))))


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
        columns = {row["name"] for row in connection.execute(f"PRAGMA table_info({table})")}
        if columns and column not in columns:
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
