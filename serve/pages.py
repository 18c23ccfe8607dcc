"""Server-rendered pages: login, queue, item review, decision log; and the image endpoints."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import quote

from fastapi import APIRouter, Depends, Form, HTTPException, Query, Request, status
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from jinja2 import pass_context
from knockoff_serve import decisions as decision_store
from knockoff_serve import exports
from knockoff_serve import queue as queue_store
from knockoff_serve import sellers as seller_store
from knockoff_serve.auth import (
    LOGIN_CSRF_COOKIE,
    SESSION_COOKIE,
    Session,
    authenticate,
    end_session,
    login_wait,
    new_login_csrf,
    record_login_failure,
    start_session,
    valid_login_csrf,
)
from knockoff_serve.images import ImageNotAllowed, not_shown_reason, resolve_inside, thumbnail, version
from knockoff_serve.web import ItemId, OptionalItemId, check_form_csrf, database, page_session, safe_next, settings_of, visible_item

router = APIRouter(include_in_schema=False)
EVIDENCE_GROUPS = ("nearest_genuine", "nearest_fake", "neighbors", "regions")


def render(request: Request, template: str, status_code: int = 200, **context) -> HTMLResponse:
    response = request.app.state.templates.TemplateResponse(request, template, context, status_code=status_code)
    response.headers["Cache-Control"] = "no-store"
    return response


@router.get("/login")
def login_page(request: Request, next: str = "/queue", failed: bool = False) -> HTMLResponse:
    token = new_login_csrf(request.app.state.secret)
    response = render(request, "login.html", status_code=401 if failed else 200, next=safe_next(next), csrf_token=token, failed=failed)
    response.set_cookie(LOGIN_CSRF_COOKIE, token, httponly=True, samesite="strict", secure=settings_of(request).secure_cookies)
    return response


@router.post("/login")
def login(request: Request, name: str = Form(...), password: str = Form(...), csrf_token: str = Form(""),
          next: str = Form("/queue"), db: sqlite3.Connection = Depends(database)) -> Response:
    if not valid_login_csrf(request.app.state.secret, request.cookies.get(LOGIN_CSRF_COOKIE), csrf_token):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "login form expired; reload the page")
    settings = settings_of(request)
    address = request.client.host if request.client else "unknown"
    wait = login_wait(db, name, address, settings.login_attempts, settings.login_window_s)
    if wait > 0:  # refused before the password is even checked: no guess is answered meanwhile
        record_login_failure(db, name, address, "throttled")
        raise HTTPException(status.HTTP_429_TOO_MANY_REQUESTS, f"too many wrong passwords: try again in {wait:.0f} s",
                            headers={"Retry-After": str(int(wait) + 1)})
    viewer = authenticate(db, name, password)
    if viewer is None:
        record_login_failure(db, name, address, "wrong password")
        return RedirectResponse(f"/login?failed=1&next={safe_next(next)}", status.HTTP_303_SEE_OTHER)
    token, _ = start_session(db, viewer, settings.session_hours)
    response = RedirectResponse(safe_next(next), status.HTTP_303_SEE_OTHER)
    response.set_cookie(SESSION_COOKIE, token, httponly=True, samesite="lax", secure=settings.secure_cookies,
                        max_age=int(settings.session_hours * 3600))
    response.delete_cookie(LOGIN_CSRF_COOKIE)
    return response


@router.post("/logout")
def logout(request: Request, csrf_token: str = Form(""), session: Session = Depends(page_session),
           db: sqlite3.Connection = Depends(database)) -> Response:
    check_form_csrf(session, csrf_token)
    end_session(db, request.cookies.get(SESSION_COOKIE))
    response = RedirectResponse("/login", status.HTTP_303_SEE_OTHER)
    response.delete_cookie(SESSION_COOKIE)
    return response


@router.get("/")
def home(session: Session = Depends(page_session), db: sqlite3.Connection = Depends(database)) -> Response:
    """Listings when the runs have them (the unit takedowns act on), else photos."""
    from knockoff_serve.listings import has_listings

    return RedirectResponse("/listings" if has_listings(db) else "/queue", status.HTTP_303_SEE_OTHER)


@router.get("/queue")
def queue_page(request: Request, after: str | None = None, before: str | None = None, message: str | None = None,
               session: Session = Depends(page_session), db: sqlite3.Connection = Depends(database)) -> HTMLResponse:
    queue_filter = _filter(request)
    settings = settings_of(request)
    try:
        newer_than, older_than = queue_store.Cursor.parse(after), queue_store.Cursor.parse(before)
    except ValueError as error:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, str(error)) from None
    page = queue_store.page(db, queue_filter, session.viewer, newer_than, older_than, settings.page_size)
    return render(
        request, "queue.html", session=session, filter=queue_filter, page=page, message=message,
        counts=queue_store.counts(db, queue_filter, session.viewer),
        facets=queue_store.facet_counts(db, queue_filter, session.viewer),
        runs=db.execute("SELECT id, name, rows, imported_at FROM runs ORDER BY id").fetchall(),
        analysts=db.execute("SELECT id, name FROM users ORDER BY name").fetchall() if session.viewer.is_admin else [],
        users=_user_names(db),
    )


@router.post("/queue/decide")
async def bulk_decide(request: Request, session: Session = Depends(page_session),
                      db: sqlite3.Connection = Depends(database)) -> Response:
    form = await request.form()
    check_form_csrf(session, form.get("csrf_token"))
    try:
        item_ids = [int(value) for value in form.getlist("item")]
    except ValueError:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "item must be item ids") from None
    note = form.get("note")
    try:
        decided, skipped = decision_store.bulk_decide(db, item_ids, session.viewer, str(form.get("decision")),
                                                      note if isinstance(note, str) else None)
    except ValueError as refused:  # checked before anything is written
        raise HTTPException(status.HTTP_400_BAD_REQUEST, str(refused)) from None
    message = f"{len(decided)} decided as {form.get('decision')}" + (f", {len(skipped)} skipped (reviewed by someone else)" if skipped else "")
    back = form.get("back")
    if isinstance(back, str) and back.startswith("/seller?") and safe_next(back) == back:
        return RedirectResponse(f"{back}{'&' if '?' in back else '?'}message={quote(message)}", status.HTTP_303_SEE_OTHER)
    return RedirectResponse(f"/queue?{_filter(request, form).query_string(message=message)}", status.HTTP_303_SEE_OTHER)


@router.get("/sellers")
def sellers_page(request: Request, run: OptionalItemId = None, page: Annotated[int, Query(ge=0, le=100_000)] = 0,
                 session: Session = Depends(page_session), db: sqlite3.Connection = Depends(database)) -> HTMLResponse:
    """Sellers ranked by risk, with what is pending and what analysts confirmed."""
    return render(request, "sellers.html", session=session, sellers=seller_store.ranked(db, session.viewer, run, page),
                  runs=db.execute("SELECT id, name FROM runs ORDER BY id").fetchall(), run=run, page=page,
                  per_page=seller_store.SELLERS_PER_PAGE)


# A seller id is whatever the marketplace calls it ("shop/with/slash", "..", "x/evidence"):
# it travels as a query parameter, never as a path segment a router would split or resolve.
SellerId = Annotated[str, Query(alias="id", min_length=1, max_length=200)]
# ... on its marketplace: the same id on two marketplaces is two sellers ('' when none is named)
Marketplace = Annotated[str, Query(max_length=200)]


@router.get("/seller")
def seller_page(request: Request, seller_id: SellerId, marketplace: Marketplace = "", run: OptionalItemId = None,
                message: str | None = None, session: Session = Depends(page_session),
                db: sqlite3.Connection = Depends(database)) -> HTMLResponse:
    """One seller: its risk and every listing with its photos; bulk decisions on them."""
    risk, listings = seller_store.seller(db, session.viewer, seller_id, marketplace, run)
    if not risk and not listings:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such seller")
    back = (f"/seller?id={quote(seller_id, safe='')}&marketplace={quote(marketplace, safe='')}"
            + (f"&run={run}" if run else ""))
    summaries = {r["run_id"]: seller_store.risk_of(db, r["run_id"], marketplace, seller_id) for r in risk}
    return render(request, "seller.html", session=session, seller_id=seller_id, marketplace=marketplace, risk=risk,
                  summaries=summaries, listings=listings, message=message, back=back, users=_user_names(db))


PackFormat = Literal["html", "pdf", "csv"]


@router.get("/seller/evidence")
def seller_evidence(request: Request, seller_id: SellerId, run: Annotated[int, Query(ge=1, le=2**63 - 1)],
                    marketplace: Marketplace = "", format: PackFormat = "html", session: Session = Depends(page_session),
                    db: sqlite3.Connection = Depends(database)) -> Response:
    """The seller's evidence pack for one screening run: one self-contained HTML file, that
    file printed to PDF (headless Chromium), or the takedown CSV (`knockoff evidence` writes
    the same three)."""
    import tempfile

    from knockoff.listings.evidence import write_evidence

    if not session.viewer.is_admin:  # the pack names every analyst's decisions
        raise HTTPException(status.HTTP_403_FORBIDDEN, "evidence packs are for admins")
    found = db.execute("SELECT path FROM runs WHERE id = ?", (run,)).fetchone()
    if found is None or not Path(found["path"]).is_file() or Path(found["path"]).suffix not in (".parquet", ".pq"):
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no Parquet results file for that run")
    settings = settings_of(request)
    with tempfile.TemporaryDirectory(prefix="knockoff-evidence-") as scratch:
        try:
            pack = write_evidence(Path(found["path"]), seller_id, Path(scratch), settings.database, settings.data_root,
                                  pdf=format == "pdf", marketplace=marketplace or None)
        except ValueError as missing:
            raise HTTPException(status.HTTP_404_NOT_FOUND, str(missing)) from None
        if format == "pdf" and pack.pdf is None:
            raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, pack.warning or "no PDF could be printed")
        chosen = {"html": (pack.html, "text/html; charset=utf-8"), "pdf": (pack.pdf, "application/pdf"),
                  "csv": (pack.csv, "text/csv; charset=utf-8")}[format]
        return download(chosen[0].read_bytes(), chosen[0].name, chosen[1])


def download(body: bytes, name: str, media_type: str) -> Response:
    """A file to save, named for every client: ASCII for all, the real name (RFC 5987) for those that read it."""
    fallback = name.encode("ascii", "replace").decode().replace('"', "").replace("?", "_")
    disposition = f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe='')}"
    return Response(body, media_type=media_type, headers={"Content-Disposition": disposition, "Cache-Control": "no-store"})


@router.get("/items/next")
def next_item(request: Request, after: OptionalItemId = None, session: Session = Depends(page_session),
              db: sqlite3.Connection = Depends(database)) -> Response:
    """The next pending item that nobody else holds; a GET changes nothing (a link from another
    site must not reserve listings): the item page leases it with a POST once it is shown."""
    queue_filter = _filter(request)
    current = _item_row(db, after)
    item = queue_store.neighbour(db, queue_filter, session.viewer, current, "next", pending_only=True) if current \
        else queue_store.first_pending(db, queue_filter, session.viewer)
    return _to_item(item, queue_filter)


@router.post("/items/next")
async def claim_next_item(request: Request, after: OptionalItemId = None, session: Session = Depends(page_session),
                          db: sqlite3.Connection = Depends(database)) -> Response:
    """Choose and lease the next pending item in one transaction ("Start reviewing")."""
    form = await request.form()
    check_form_csrf(session, form.get("csrf_token"))
    queue_filter = _filter(request)
    return _to_item(_claim_after(db, queue_filter, session, after, settings_of(request).lease_seconds), queue_filter)


def _claim_after(db: sqlite3.Connection, queue_filter, session: Session, after: int | None, seconds: float):
    return decision_store.claim_next(db, queue_filter, session.viewer, _item_row(db, after), seconds)


def _item_row(db: sqlite3.Connection, item_id: int | None) -> sqlite3.Row | None:
    """The item a queue step starts after, if any."""
    return db.execute("SELECT * FROM items WHERE id = ?", (item_id,)).fetchone() if item_id else None


def _to_item(item, queue_filter) -> Response:
    if item is None:
        return RedirectResponse(f"/queue?{queue_filter.query_string(message='No pending listings left in this view.')}", status.HTTP_303_SEE_OTHER)
    return RedirectResponse(f"/items/{item['id']}?{queue_filter.query_string()}", status.HTTP_303_SEE_OTHER)


@router.get("/items/{item_id}")
def item_page(request: Request, item_id: ItemId, message: str | None = None, session: Session = Depends(page_session),
              db: sqlite3.Connection = Depends(database)) -> HTMLResponse:
    """Read-only: who else holds the item is shown; the page's script takes the lease by POST."""
    item = visible_item(db, item_id, session.viewer)
    queue_filter = _filter(request)
    holder = decision_store.lease_holder(db, item_id, session.viewer)
    upcoming = queue_store.neighbour(db, queue_filter, session.viewer, item, "next", pending_only=True)
    previous = queue_store.neighbour(db, queue_filter, session.viewer, item, "previous")
    following = queue_store.neighbour(db, queue_filter, session.viewer, item, "next")
    return render(
        request, "item.html", session=session, item=item, evidence=_evidence(item), holder=holder, message=message,
        filter=queue_filter, upcoming=upcoming, previous=previous, following=following,
        upcoming_evidence=_evidence(upcoming) if upcoming else {}, users=_user_names(db),
        run=db.execute("SELECT * FROM runs WHERE id = ?", (item["run_id"],)).fetchone(),
        history=decision_store.history(db, session.viewer, item_id=item_id, limit=20),
        listing_photos=seller_store.listing_photos(db, session.viewer, item), reuse=seller_store.reuse(db, item),
    )


@router.post("/items/{item_id}/decision")
def decide_form(request: Request, item_id: ItemId, decision: str = Form(...), note: str = Form(""),
                csrf_token: str = Form(""), session: Session = Depends(page_session),
                db: sqlite3.Connection = Depends(database)) -> Response:
    """The no-JavaScript path; the page's keyboard shortcuts use the JSON API."""
    check_form_csrf(session, csrf_token)
    try:
        decision_store.decide(db, item_id, session.viewer, decision, note)
    except decision_store.LeaseHeld as held:
        raise HTTPException(status.HTTP_409_CONFLICT, str(held)) from None
    except decision_store.NotAllowed as refused:
        raise HTTPException(status.HTTP_403_FORBIDDEN, str(refused)) from None
    queue_filter = _filter(request)
    return _to_item(_claim_after(db, queue_filter, session, item_id, settings_of(request).lease_seconds), queue_filter)


@router.post("/items/{item_id}/reference")
def add_reference_form(request: Request, item_id: ItemId, authenticity: str = Form(...), csrf_token: str = Form(""),
                       session: Session = Depends(page_session), db: sqlite3.Connection = Depends(database)) -> Response:
    """Propose the item's photo as a genuine reference or known fake of its product (an
    admin's proposal is applied at once); only photos no reference could judge qualify."""
    from knockoff_serve.live import ScorerUnavailable
    from knockoff_serve.references import CannotChange, propose

    check_form_csrf(session, csrf_token)
    item = visible_item(db, item_id, session.viewer)
    settings = settings_of(request)
    try:
        photo = resolve_inside(item["path"], Path.cwd(), settings.allowed_roots())
        outcome = propose(db, item, authenticity, session.viewer, request.app.state.scorer, photo, settings)
    except ImageNotAllowed as refused:
        raise HTTPException(status.HTTP_403_FORBIDDEN, str(refused)) from None
    except CannotChange as refused:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, str(refused)) from None
    except ScorerUnavailable as unavailable:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, str(unavailable)) from None
    message = (f"added as a {authenticity} reference of {item['product']}; rescored: {outcome['status']}"
               if outcome["state"] == "applied" else
               f"proposed as a {authenticity} reference of {item['product']} (change {outcome['change']}): an admin decides")
    return RedirectResponse(f"/items/{item_id}?{_filter(request).query_string(message=message)}", status.HTTP_303_SEE_OTHER)


@router.get("/gallery")
def gallery_page(request: Request, message: str | None = None, session: Session = Depends(page_session),
                 db: sqlite3.Connection = Depends(database)) -> HTMLResponse:
    """The gallery's changes: proposals to decide, what was applied (with versions), rollbacks."""
    from knockoff_serve.references import changes, kept_versions

    from knockoff.gallery.store import read_info

    scorer = request.app.state.scorer
    version = read_info(scorer.gallery_path).version if (scorer.gallery_path / "gallery.json").is_file() else "none"
    return render(request, "gallery.html", session=session, changes=changes(db), version=version, path=scorer.gallery_path,
                  kept=set(kept_versions(settings_of(request))), message=message)


@router.post("/gallery/changes/{change_id}/{verdict}")
def decide_change(request: Request, change_id: ItemId, verdict: str, csrf_token: str = Form(""),
                  session: Session = Depends(page_session), db: sqlite3.Connection = Depends(database)) -> Response:
    """An admin approves (applies) or rejects a proposed change."""
    from knockoff_serve.references import CannotChange, apply, reject

    check_form_csrf(session, csrf_token)
    if verdict not in ("approve", "reject"):
        raise HTTPException(status.HTTP_404_NOT_FOUND)
    try:
        if verdict == "approve":
            outcome = apply(db, change_id, session.viewer, request.app.state.scorer, settings_of(request))
            message = f"change {change_id} applied; the photo rescored: {outcome['status']}"
        else:
            reject(db, change_id, session.viewer)
            message = f"change {change_id} rejected"
    except CannotChange as refused:
        raise HTTPException(status.HTTP_403_FORBIDDEN if "admin" in str(refused) else status.HTTP_400_BAD_REQUEST,
                            str(refused)) from None
    return RedirectResponse(f"/gallery?message={quote(message)}", status.HTTP_303_SEE_OTHER)


@router.post("/gallery/rollback")
def rollback_form(request: Request, version: str = Form(...), csrf_token: str = Form(""),
                  session: Session = Depends(page_session), db: sqlite3.Connection = Depends(database)) -> Response:
    """An admin restores an earlier version of the gallery."""
    from knockoff_serve.references import CannotChange, roll_back

    check_form_csrf(session, csrf_token)
    try:
        roll_back(db, version, session.viewer, request.app.state.scorer, settings_of(request))
    except CannotChange as refused:
        raise HTTPException(status.HTTP_403_FORBIDDEN if "admin" in str(refused) else status.HTTP_400_BAD_REQUEST,
                            str(refused)) from None
    return RedirectResponse(f"/gallery?message={quote(f'gallery rolled back to {version}')}", status.HTTP_303_SEE_OTHER)


@router.post("/undo")
def undo_form(request: Request, csrf_token: str = Form(""), session: Session = Depends(page_session),
              db: sqlite3.Connection = Depends(database)) -> Response:
    check_form_csrf(session, csrf_token)
    undone = decision_store.undo_last(db, session.viewer)
    if undone is None:
        target = "/queue?message=Nothing+to+undo."
    elif undone.items > 1:  # a bulk or listing decision, reversed whole
        target = f"/queue?{_filter(request).query_string(message=f'Undone: {undone.items} decisions of one act')}"
    else:
        target = f"/items/{undone.item_id}?{_filter(request).query_string()}"
    return RedirectResponse(target, status.HTTP_303_SEE_OTHER)


@router.get("/decisions")
def decisions_page(request: Request, session: Session = Depends(page_session),
                   db: sqlite3.Connection = Depends(database)) -> HTMLResponse:
    return render(request, "decisions.html", session=session, rows=decision_store.acts(db, session.viewer, limit=500))


@router.get("/decisions/export")
def export_decisions(format: Literal["csv", "json"] = "csv", session: Session = Depends(page_session),
                     db: sqlite3.Connection = Depends(database)) -> Response:
    """Every decision in force that the viewer may see, as a file (admins: everyone's)."""
    body, media_type = exports.encode(exports.decision_rows(db, session.viewer), format)
    return download(body, f"knockoff-decisions.{format}", media_type)


ImageVersion = Annotated[str | None, Query(max_length=40, pattern="^[0-9a-f]+$")]


@router.get("/images/items/{item_id}")
def listing_image(request: Request, item_id: ItemId, full: bool = False, v: ImageVersion = None,
                  session: Session = Depends(page_session), db: sqlite3.Connection = Depends(database)) -> Response:
    item = visible_item(db, item_id, session.viewer)
    return _image(request, item["path"], Path.cwd(), full, v)


@router.get("/images/items/{item_id}/{group}/{rank}")
def evidence_image(request: Request, item_id: ItemId, group: str, rank: int, full: bool = False, v: ImageVersion = None,
                   session: Session = Depends(page_session), db: sqlite3.Connection = Depends(database)) -> Response:
    if group not in EVIDENCE_GROUPS:
        raise HTTPException(status.HTTP_404_NOT_FOUND)
    references = _evidence(visible_item(db, item_id, session.viewer))[group]
    if not 0 <= rank < len(references):
        raise HTTPException(status.HTTP_404_NOT_FOUND)
    return _image(request, reference_path(references[rank]), settings_of(request).data_root, full, v)


def reference_path(reference: dict) -> str:
    return reference.get("path") or reference["reference_path"]


@pass_context
def image_url(context, item, group: str | None = None, rank: int | None = None, full: bool = False) -> str:
    """The page's link to an item's photo (or its `group`'s `rank`-th evidence image), carrying
    the image's version: the link changes when the image does, so it is cached for good."""
    settings = context["request"].app.state.settings
    url = f"/images/items/{item['id']}" + (f"/{group}/{rank}" if group is not None else "")
    if group is None:
        path, base = item["path"], Path.cwd()
    else:
        references = _evidence(item)[group]
        if not 0 <= rank < len(references):
            return url
        path, base = reference_path(references[rank]), settings.data_root
    try:
        address = version(resolve_inside(path, base, settings.allowed_roots()))
    except (ImageNotAllowed, OSError):  # the image route says why it is not shown
        return url + ("?full=1" if full else "")
    return f"{url}?v={address}" + ("&full=1" if full else "")


def _image(request: Request, path: str, base: Path, full: bool, wanted: str | None = None) -> Response:
    settings = settings_of(request)
    try:
        real = resolve_inside(path, base, settings.allowed_roots())
        current = version(real)
        if wanted is not None and wanted != current:  # a link from before a rescore: never the new image under it
            raise HTTPException(status.HTTP_404_NOT_FOUND, "this image has changed since the page was made: reload the page")
        cached = thumbnail(real, 1600 if full else settings.thumbnail_px, settings.thumbnails)
    except ImageNotAllowed as refused:
        raise HTTPException(status.HTTP_403_FORBIDDEN, str(refused)) from None
    # addressed by its version: cached for good; without one: revalidated every time
    headers = {"Cache-Control": "private, max-age=31536000, immutable" if wanted else "private, no-cache"}
    reason = not_shown_reason(cached)
    if reason:  # over the decode ceiling, or no image: the header and the placeholder's pixels say why
        headers["X-Knockoff-Not-Shown"] = reason
    return FileResponse(cached, media_type="image/jpeg", headers=headers)


def _evidence(item: sqlite3.Row) -> dict[str, list[dict]]:
    evidence = json.loads(item["evidence"] or "{}")
    return {group: evidence.get(group) or [] for group in EVIDENCE_GROUPS}


def _filter(request: Request, form=None) -> queue_store.QueueFilter:
    values = dict(request.query_params)
    if form is not None:
        values.update({k: v for k, v in form.items() if isinstance(v, str) and k in queue_store.FILTER_KEYS})
    try:
        return queue_store.QueueFilter.from_query(values)
    except ValueError as error:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, str(error)) from None


def _user_names(db: sqlite3.Connection) -> dict[int, str]:
    return {row["id"]: row["name"] for row in db.execute("SELECT id, name FROM users")}
