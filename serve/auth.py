"""Users, passwords, sessions, CSRF and API tokens.

Passwords are hashed with Argon2id. A session is a random token in an HttpOnly, SameSite
cookie; the database keeps only its SHA-256, so a copy of the database grants no access.
Each session carries its own CSRF token, required on every state-changing request made with
the cookie. Scripts use API tokens (Authorization: Bearer), which need no CSRF token because
browsers never send them on their own.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import sqlite3
import time
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from knockoff_serve.queue import Viewer
from knockoff_serve.store import write

ROLES = ("analyst", "admin")
SESSION_COOKIE = "knockoff_session"
LOGIN_CSRF_COOKIE = "knockoff_login_csrf"
MIN_PASSWORD_LENGTH = 8
_hasher = PasswordHasher()
# Verifying against this keeps the time of a login with an unknown name like a wrong password.
_DUMMY_HASH = _hasher.hash("knockoff-timing-equaliser")


@dataclass(frozen=True)
class Session:
    viewer: Viewer
    csrf_token: str


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def add_user(connection: sqlite3.Connection, name: str, role: str, password: str) -> int:
    if role not in ROLES:
        raise ValueError(f"role must be one of {ROLES}")
    if not name.strip() or name != name.strip():
        raise ValueError("a user name must be non-empty without surrounding spaces")
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValueError(f"a password needs at least {MIN_PASSWORD_LENGTH} characters")
    with write(connection):
        if connection.execute("SELECT 1 FROM users WHERE name = ?", (name,)).fetchone():
            raise ValueError(f"user {name!r} already exists")
        return connection.execute(
            "INSERT INTO users (name, role, password_hash) VALUES (?, ?, ?)", (name, role, _hasher.hash(password))
        ).lastrowid


def authenticate(connection: sqlite3.Connection, name: str, password: str) -> Viewer | None:
    row = connection.execute("SELECT * FROM users WHERE name = ? AND active = 1", (name,)).fetchone()
    try:
        _hasher.verify(row["password_hash"] if row else _DUMMY_HASH, password)
    except (VerificationError, InvalidHashError):
        return None
    return Viewer(row["id"], row["name"], row["role"]) if row else None


def login_wait(connection: sqlite3.Connection, name: str, address: str, attempts: int, window_s: float) -> float:
    """Seconds before this account may be tried again from this address (0: now). Too many
    wrong passwords for the account, or from the address against any account, within the window."""
    since = time.time() - window_s
    oldest_blocking = 0.0
    for column, value, limit in (("name", name, attempts), ("address", address, 3 * attempts)):
        rows = connection.execute(
            f"SELECT at FROM login_failures WHERE {column} = ? AND at > ? AND outcome = 'wrong password' ORDER BY at DESC LIMIT ?",
            (value, since, limit)).fetchall()
        if len(rows) >= limit:
            oldest_blocking = max(oldest_blocking, rows[-1]["at"] + window_s - time.time())
    return max(oldest_blocking, 0.0)


def record_login_failure(connection: sqlite3.Connection, name: str, address: str, outcome: str) -> None:
    with write(connection):
        connection.execute("INSERT INTO login_failures (name, address, outcome, at) VALUES (?, ?, ?, ?)",
                           (name[:200], address, outcome, time.time()))


def start_session(connection: sqlite3.Connection, viewer: Viewer, hours: float) -> tuple[str, str]:
    """(session token for the cookie, CSRF token for the pages)."""
    token, csrf_token = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    with write(connection):
        connection.execute("DELETE FROM sessions WHERE expires_at < ?", (time.time(),))
        connection.execute(
            "INSERT INTO sessions (token_hash, user_id, csrf_token, expires_at) VALUES (?, ?, ?, ?)",
            (_digest(token), viewer.id, csrf_token, time.time() + hours * 3600),
        )
    return token, csrf_token


def session_for(connection: sqlite3.Connection, token: str | None) -> Session | None:
    if not token:
        return None
    row = connection.execute(
        """SELECT u.id, u.name, u.role, s.csrf_token FROM sessions s JOIN users u ON u.id = s.user_id
           WHERE s.token_hash = ? AND s.expires_at > ? AND u.active = 1""",
        (_digest(token), time.time()),
    ).fetchone()
    return Session(Viewer(row["id"], row["name"], row["role"]), row["csrf_token"]) if row else None


def end_session(connection: sqlite3.Connection, token: str | None) -> None:
    if token:
        with write(connection):
            connection.execute("DELETE FROM sessions WHERE token_hash = ?", (_digest(token),))


def create_api_token(connection: sqlite3.Connection, name: str) -> str:
    user_id = _user_id(connection, name)
    token = "ko_" + secrets.token_urlsafe(32)
    with write(connection):
        connection.execute("INSERT INTO api_tokens (token_hash, user_id) VALUES (?, ?)", (_digest(token), user_id))
    return token


def revoke_api_tokens(connection: sqlite3.Connection, name: str) -> int:
    """Withdraw every API token of a user (a leaked script token); how many there were."""
    user_id = _user_id(connection, name)
    with write(connection):
        return connection.execute("DELETE FROM api_tokens WHERE user_id = ?", (user_id,)).rowcount


def set_active(connection: sqlite3.Connection, name: str, active: bool) -> None:
    """Let a user in again, or keep them out: a deactivated user's sessions end at once, and their
    tokens stop working (and work again if reactivated); their decisions stay in the audit trail."""
    user_id = _user_id(connection, name)
    with write(connection):
        connection.execute("UPDATE users SET active = ? WHERE id = ?", (1 if active else 0, user_id))
        if not active:
            connection.execute("DELETE FROM sessions WHERE user_id = ?", (user_id,))


def _user_id(connection: sqlite3.Connection, name: str) -> int:
    row = connection.execute("SELECT id FROM users WHERE name = ?", (name,)).fetchone()
    if row is None:
        raise ValueError(f"no user {name!r}")
    return row["id"]


def viewer_for_api_token(connection: sqlite3.Connection, token: str) -> Viewer | None:
    row = connection.execute(
        "SELECT u.id, u.name, u.role FROM api_tokens t JOIN users u ON u.id = t.user_id WHERE t.token_hash = ? AND u.active = 1",
        (_digest(token),),
    ).fetchone()
    return Viewer(row["id"], row["name"], row["role"]) if row else None


def same_token(expected: str | None, given: str | None) -> bool:
    return bool(expected) and bool(given) and hmac.compare_digest(expected, given)


LOGIN_FORM_HOURS = 2.0


def new_login_csrf(secret: bytes) -> str:
    """The login form's CSRF token: a nonce and its time, signed with the service's secret.
    A plain double-submit cookie could be planted by anyone able to set a cookie for the host
    (a sibling subdomain); a forged token fails the signature."""
    body = f"{secrets.token_urlsafe(24)}.{int(time.time())}"
    return f"{body}.{_sign(secret, body)}"


def valid_login_csrf(secret: bytes, cookie_token: str | None, form_token: str | None) -> bool:
    if not same_token(cookie_token, form_token):
        return False
    body, _, signature = (form_token or "").rpartition(".")
    issued = body.rpartition(".")[2]
    if not body or not issued.isdigit() or not hmac.compare_digest(signature, _sign(secret, body)):
        return False
    return time.time() - int(issued) < LOGIN_FORM_HOURS * 3600


def service_secret(path) -> bytes:
    """The service's signing secret, made once and kept beside the store, readable by its owner only."""
    from pathlib import Path

    path = Path(path)
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_text(secrets.token_hex(32))
    return bytes.fromhex(path.read_text().strip())


def _sign(secret: bytes, body: str) -> str:
    return hmac.new(secret, body.encode(), hashlib.sha256).hexdigest()
