"""Request plumbing shared by the pages and the API: database, sessions, CSRF, errors."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from typing import Annotated
from urllib.parse import quote

from fastapi import Depends, HTTPException, Query, Request, status
from fastapi import Path as PathParameter
from knockoff_serve.auth import SESSION_COOKIE, Session, same_token, session_for, viewer_for_api_token
from knockoff_serve.queue import Viewer

# Ids are SQLite integers: a larger number is no id at all (422), never an OverflowError (500).
SQLITE_MAX_INT = 2**63 - 1
ItemId = Annotated[int, PathParameter(ge=1, le=SQLITE_MAX_INT, description="an item's id")]
OptionalItemId = Annotated[int | None, Query(ge=1, le=SQLITE_MAX_INT, description="an item's id")]
from knockoff_serve.settings import Settings
from knockoff_serve.store import connect

UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class LoginRequired(Exception):
    """A page was asked for without a session: the handler redirects to the login page."""

    def __init__(self, next_url: str) -> None:
        self.next_url = next_url


def settings_of(request: Request) -> Settings:
    return request.app.state.settings


def database(request: Request) -> Iterator[sqlite3.Connection]:
    settings = settings_of(request)
    connection = connect(settings.database, settings.store_busy_timeout_s)
    try:
        yield connection
    finally:
        connection.close()


def page_session(request: Request, db: sqlite3.Connection = Depends(database)) -> Session:
    session = session_for(db, request.cookies.get(SESSION_COOKIE))
    if session is None:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise LoginRequired(quote(target, safe="/?=&"))
    return session


def check_form_csrf(session: Session, token: str | None) -> None:
    if not same_token(session.csrf_token, token):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "missing or wrong CSRF token; reload the page")


def api_viewer(request: Request, db: sqlite3.Connection = Depends(database)) -> Viewer:
    """The caller of an API route: a Bearer API token, or a browser session whose
    state-changing requests carry the session's CSRF token in X-CSRF-Token."""
    authorization = request.headers.get("authorization", "")
    if authorization.lower().startswith("bearer "):
        viewer = viewer_for_api_token(db, authorization[7:].strip())
        if viewer is None:
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, "invalid API token", {"WWW-Authenticate": "Bearer"})
        return viewer
    session = session_for(db, request.cookies.get(SESSION_COOKIE))
    if session is None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "log in or send an API token", {"WWW-Authenticate": "Bearer"})
    if request.method in UNSAFE_METHODS and not same_token(session.csrf_token, request.headers.get("x-csrf-token")):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "missing or wrong X-CSRF-Token header")
    return session.viewer


def web_url(url: str | None) -> str | None:
    """A listing's page as a link only if it is http(s): a manifest's `javascript:` or `data:`
    URL must never become a link an analyst clicks."""
    if not url:
        return None
    scheme = url.split(":", 1)[0].strip().lower() if ":" in url else ""
    return url if scheme in ("http", "https") else None


def safe_next(target: str | None) -> str:
    """Only same-site relative targets after login (no open redirects)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/queue"
    return target


def visible_item(db: sqlite3.Connection, item_id: int, viewer: Viewer) -> sqlite3.Row:
    """The item, if this viewer may see it (admins: all; analysts: pending ones and their
    own decisions); otherwise 404, the same answer as for an item that does not exist."""
    item = db.execute("SELECT * FROM items WHERE id = ?", (item_id,)).fetchone()
    if item is None or not (viewer.is_admin or item["decided_by"] in (None, viewer.id)):
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such listing in your queue")
    return item

