from knockoff_serve.store import SCHEMA, connect, initialize


def test_durable_wal_settings(tmp_path):
    initialize(tmp_path / "k.db")
    connection = connect(tmp_path / "k.db")
    assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert connection.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert connection.execute("PRAGMA foreign_keys").fetchone()[0] == 1


def test_schema_is_idempotent(tmp_path):
    initialize(tmp_path / "k.db")
    initialize(tmp_path / "k.db")
    tables = {row[0] for row in connect(tmp_path / "k.db").execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"users", "sessions", "runs", "items", "decisions", "leases", "api_tokens"} <= tables
    assert "CREATE TABLE IF NOT EXISTS decisions" in SCHEMA


def test_the_store_is_readable_by_its_owner_only(tmp_path):
    import os
    import stat

    from knockoff_serve.store import closing, connect, initialize

    path = tmp_path / "home" / "knockoff.db"
    initialize(path)
    with closing(connect(path)) as connection:
        connection.execute("CREATE TABLE IF NOT EXISTS probe (x)")
        connection.execute("INSERT INTO probe VALUES (1)")
        for file in [path, *path.parent.glob("knockoff.db-*")]:
            assert stat.S_IMODE(os.stat(file).st_mode) == 0o600, file
