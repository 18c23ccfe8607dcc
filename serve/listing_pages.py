"""The listing pages: the queue of listings (facets, search, sort, progress, safe bulk
decisions) and one listing with all its photos, its threshold and its seller, decided with
one key (serve/listings.py)."""

from __future__ import annotations

import sqlite3

from fastapi import APIRouter, Depends, Form, HTTPException, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from knockoff_serve import decisions as decision_store
from knockoff_serve import listings as listing_store
from knockoff_serve import queue as queue_store
from knockoff_serve import sellers as seller_store
from knockoff_serve.auth import Session
from knockoff_serve.pages import _evidence, _filter, _user_names, render
from knockoff_serve.web import ItemId, OptionalItemId, check_form_csrf, database, page_session, settings_of

from knockoff.listings.signals import signal_words, signals_apply

router = APIRouter(include_in_schema=False)
TABLE = "listings"


@router.get("/listings")
def listings_page(request: Request, after: str | None = None, before: str | None = None, message: str | None = None,
                  session: Session = Depends(page_session), db: sqlite3.Connection = Depends(database)) -> HTMLResponse:
    """Listings by their listing-level verdict, with their sellers; facets with counts."""
    queue_filter = _filter(request)
    try:
        newer_than, older_than = queue_store.Cursor.parse(after), queue_store.Cursor.parse(before)
    except ValueError as error:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, str(error)) from None
    page = queue_store.page(db, queue_filter, session.viewer, newer_than, older_than, settings_of(request).page_size, TABLE)
    return render(request, "listings.html", session=session, filter=queue_filter, page=page, message=message,
                  counts=queue_store.counts(db, queue_filter, session.viewer, TABLE),
                  facets=queue_store.facet_counts(db, queue_filter, session.viewer, TABLE),
                  runs=db.execute("SELECT id, name, rows, imported_at FROM runs ORDER BY id").fetchall(),
                  analysts=db.execute("SELECT id, name FROM users ORDER BY name").fetchall() if session.viewer.is_admin else [],
                  photo_counts=queue_store.counts(db, queue_store.QueueFilter(listed="none"), session.viewer))


@router.post("/listings/decide")
async def bulk_decide_listings(request: Request, session: Session = Depends(page_session),
                               db: sqlite3.Connection = Depends(database)) -> Response:
    """The ticked listings, every photo of each, decided in one act (one undo reverses it)."""
    form = await request.form()
    check_form_csrf(session, form.get("csrf_token"))
    try:
        listing_rows = [int(value) for value in form.getlist("listing")]
    except ValueError:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "listing must be listing ids") from None
    if not listing_rows:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "tick at least one listing")
    placeholders = ",".join("?" * len(listing_rows))
    photo_ids = [row["id"] for row in db.execute(
        f"SELECT id FROM items WHERE listing_row IN ({placeholders}) AND error IS NULL ORDER BY listing_row, position",
        listing_rows)]
    note = form.get("note")
    try:
        decided, skipped = decision_store.bulk_decide(db, photo_ids, session.viewer, str(form.get("decision")),
                                                      note if isinstance(note, str) and note else None,
                                                      subject=f"{len(listing_rows)} listings")
    except ValueError as refused:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, str(refused)) from None
    message = (f"{len(listing_rows)} listings ({len(decided)} photos) decided as {form.get('decision')}"
               + (f", {len(skipped)} photos skipped (another analyst holds or decided them)" if skipped else "")
               + ". Undo (z, or the button) reverses all of it.")
    return RedirectResponse(f"/listings?{_filter(request, form).query_string(message=message)}", status.HTTP_303_SEE_OTHER)


@router.post("/listings/next")
async def claim_next_listing(request: Request, after: OptionalItemId = None, session: Session = Depends(page_session),
                             db: sqlite3.Connection = Depends(database)) -> Response:
    """Choose and lease the next pending listing of this view ("Start reviewing")."""
    form = await request.form()
    check_form_csrf(session, form.get("csrf_token"))
    queue_filter = _filter(request)
    current = db.execute("SELECT * FROM listings WHERE id = ?", (after,)).fetchone() if after else None
    listing = listing_store.claim_next_listing(db, queue_filter, session.viewer, current, settings_of(request).lease_seconds)
    return _to_listing(listing, queue_filter)


def _to_listing(listing: sqlite3.Row | None, queue_filter: queue_store.QueueFilter) -> Response:
    if listing is None:
        return RedirectResponse(f"/listings?{queue_filter.query_string(message='No pending listings left in this view.')}",
                                status.HTTP_303_SEE_OTHER)
    return RedirectResponse(f"/listings/{listing['id']}?{queue_filter.query_string()}", status.HTTP_303_SEE_OTHER)


@router.get("/listings/{listing_id}")
def listing_page(request: Request, listing_id: ItemId, message: str | None = None, session: Session = Depends(page_session),
                 db: sqlite3.Connection = Depends(database)) -> HTMLResponse:
    """One listing: every photo, the listing threshold and its precision bound, the seller's
    risk, the top photo's nearest references; read-only (the page's script leases it by POST)."""
    listing = _visible(db, listing_id, session)
    queue_filter = _filter(request)
    photos = listing_store.listing_photos(db, listing_id, session.viewer)
    top = next((p for p in photos if p["path"] == listing["top_photo"]), photos[0] if photos else None)
    seller = seller_store.risk_of(db, listing["run_id"], listing["marketplace"], listing["seller_id"])
    return render(
        request, "listing.html", session=session, listing=listing, photos=photos, top=top,
        signals=signal_words(dict(listing)) if signals_apply(dict(listing)) else [],
        evidence=_evidence(top) if top else {}, seller=seller, message=message, filter=queue_filter,
        holder=listing_store.listing_holder(db, listing_id, session.viewer), users=_user_names(db),
        looks_like=sorted({p["matched_product"] for p in photos if p["product_mismatch"] and p["matched_product"]}),
        previous=queue_store.neighbour(db, queue_filter, session.viewer, listing, "previous", table=TABLE),
        following=queue_store.neighbour(db, queue_filter, session.viewer, listing, "next", table=TABLE),
        progress=queue_store.counts(db, queue_filter, session.viewer, TABLE),
    )


@router.post("/listings/{listing_id}/decision")
def decide_listing_form(request: Request, listing_id: ItemId, decision: str = Form(...), note: str = Form(""),
                        csrf_token: str = Form(""), session: Session = Depends(page_session),
                        db: sqlite3.Connection = Depends(database)) -> Response:
    """The no-JavaScript path: the listing decided, then the next pending listing of the view."""
    check_form_csrf(session, csrf_token)
    listing = _visible(db, listing_id, session)
    try:
        listing_store.decide_listing(db, listing_id, session.viewer, decision, note or None)
    except decision_store.NotAllowed as refused:
        raise HTTPException(status.HTTP_403_FORBIDDEN, str(refused)) from None
    except ValueError as refused:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, str(refused)) from None
    queue_filter = _filter(request)
    following = listing_store.claim_next_listing(db, queue_filter, session.viewer, listing, settings_of(request).lease_seconds)
    return _to_listing(following, queue_filter)


def _visible(db: sqlite3.Connection, listing_id: int, session: Session) -> sqlite3.Row:
    try:
        return listing_store.visible_listing(db, listing_id, session.viewer)
    except LookupError:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such listing in your queue") from None

