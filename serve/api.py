"""The JSON API: the review operations for scripts and the pages' JavaScript, plus ad-hoc scoring.

Documented at /api/docs (OpenAPI at /api/openapi.json), behind the same login.
Authenticate with `Authorization: Bearer <token>` (`knockoff users token NAME`) or a browser
session plus its X-CSRF-Token header.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Literal

from fastapi import APIRouter, Depends, File, HTTPException, Query, Request, Response, UploadFile, status
from fastapi.concurrency import run_in_threadpool
from knockoff_serve import decisions as decision_store
from knockoff_serve import exports
from knockoff_serve import listings as listing_store
from knockoff_serve import queue as queue_store
from knockoff_serve.live import ScorerUnavailable
from knockoff_serve.queue import Viewer
from knockoff_serve.web import ItemId, OptionalItemId, api_viewer, database, settings_of, visible_item
from pydantic import BaseModel, Field

from knockoff.images.decode import ImageLoadError

router = APIRouter(prefix="/api")
Decision = Literal["counterfeit", "genuine", "unsure"]


class DecisionIn(BaseModel):
    decision: Decision
    note: str | None = Field(default=None, max_length=decision_store.MAX_NOTE)
    claim_next: bool = Field(default=False, description="Also lease the next pending item in this queue view and return it.")


class BulkDecisionIn(BaseModel):
    item_ids: list[int] = Field(min_length=1, max_length=decision_store.MAX_BULK)
    decision: Decision
    note: str | None = Field(default=None, max_length=decision_store.MAX_NOTE)


class DecisionOut(BaseModel):
    decision_id: int
    item_id: int
    decision: str | None
    next_item_id: int | None = None
    items: int = Field(1, description="items the act changed: an undo reverses a whole bulk or listing decision")


class BulkDecisionOut(BaseModel):
    decided: list[int]
    skipped: list[int]


class Item(BaseModel):
    id: int
    run_id: int
    listing_id: str | None
    path: str | None
    score: float | None
    flagged: bool | None
    threshold: float | None
    status: str | None = Field(None, description="screening status: scored | no_match | unsupported (needs references) | error")
    status_reason: str | None = None
    product: str | None
    product_similarity: float | None
    claimed_product: str | None
    product_mismatch: bool | None
    brand: str | None
    label: str | None
    error: str | None
    model_version: str | None
    index_version: str | None
    decision: str | None
    decided_by: int | None
    decided_at: str | None
    evidence: dict[str, list[dict]] | None = None


class ItemPage(BaseModel):
    items: list[Item]
    counts: dict[str, int]
    facets: dict[str, dict[str, int]] = Field(default_factory=dict, description="per facet, its values with their counts")
    older: str | None = Field(description="cursor for the next page (pass as `after`)")
    newer: str | None = Field(description="cursor for the previous page (pass as `before`)")


class Listing(BaseModel):
    id: int
    run_id: int
    listing_id: str
    seller_id: str
    marketplace: str
    title: str | None
    price: float | None
    currency: str | None
    listing_url: str | None
    photos: int
    scored_photos: int
    flagged_photos: int
    status: str | None
    status_reason: str | None
    score: float | None = Field(description="highest p(counterfeit) among its judged photos")
    flagged: bool
    threshold: float | None = Field(description="the listing threshold for its number of judged photos")
    expected_precision: float | None = Field(description="the precision bound at that threshold")
    probability: float | None
    product: str | None
    claimed_product: str | None
    product_mismatch: bool | None
    brand: str | None
    pending: int = Field(description="photos still to decide")
    decision: str | None = Field(description="counterfeit, genuine or unsure when its decided photos agree; mixed")
    photo_items: list[Item] | None = None


class ListingPage(BaseModel):
    listings: list[Listing]
    counts: dict[str, int]
    facets: dict[str, dict[str, int]]
    older: str | None
    newer: str | None


class ListingDecisionOut(BaseModel):
    listing_id: int
    decision: str
    decided: list[int] = Field(description="its photos decided")
    skipped: list[int] = Field(description="its photos another analyst holds or decided")
    next_listing_id: int | None = None


def _listing(row: sqlite3.Row, photos: list[Item] | None = None) -> Listing:
    values = {key: row[key] for key in Listing.model_fields if key != "photo_items"}
    for key in ("flagged", "product_mismatch"):
        values[key] = None if values[key] is None else bool(values[key])
    return Listing(**values, photo_items=photos)


def _item(row: sqlite3.Row, with_evidence: bool = False) -> Item:
    values = {key: row[key] for key in Item.model_fields if key != "evidence"}
    for key in ("flagged", "product_mismatch"):
        values[key] = None if values[key] is None else bool(values[key])
    if with_evidence:
        values["evidence"] = json.loads(row["evidence"] or "{}")
    return Item(**values)


@router.get("/health", tags=["service"])
def health(request: Request) -> dict:
    """Liveness, and the model and gallery versions uploads are scored with. No login needed."""
    scorer = request.app.state.scorer
    try:
        versions = scorer.snapshot().versions
    except ScorerUnavailable:
        versions = {}
    return {"status": "ok", **versions, "scorer_error": scorer.last_error}


def view_filter(
    status_: str = Query("all", alias="status", description="all, pending, decided, counterfeit, genuine, unsure, failed"),
    product: str | None = None, brand: str | None = None, seller: str | None = Query(None, description="a seller id"),
    marketplace: str | None = None,
    q: str | None = Query(None, max_length=200, description="free text in title, listing id, seller id (photos: also the path)"),
    min_score: float | None = None, max_score: float | None = None, min_price: float | None = None,
    max_price: float | None = None, run: int | None = None, decided_by: int | None = None,
    screening: str = Query("all", description="all, scored, no_match, unsupported (needs references), copy, error"),
    sort: str = Query("risk", description="risk (flagged first, by score), score, price, -price"),
    listed: str = Query("all", description="photos only: all, or none (photos in no listing)"),
) -> queue_store.QueueFilter:
    """The view's filters, as the pages take them from the URL."""
    try:
        return queue_store.QueueFilter(status_, product, brand, min_score, max_score, run, decided_by, screening, seller,
                                       marketplace, (q or "").strip() or None, min_price, max_price, sort, listed)
    except ValueError as error:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, str(error)) from None


@router.get("/items", response_model=ItemPage, tags=["queue"])
def list_items(
    queue_filter: queue_store.QueueFilter = Depends(view_filter), after: str | None = None, before: str | None = None,
    limit: int = Query(50, ge=1, le=500), viewer: Viewer = Depends(api_viewer), db: sqlite3.Connection = Depends(database),
) -> ItemPage:
    """The photo queue: flagged first, by score (or `sort`); keyset-paginated with `after`/`before` cursors."""
    try:
        page = queue_store.page(db, queue_filter, viewer, queue_store.Cursor.parse(after), queue_store.Cursor.parse(before), limit)
    except ValueError as error:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, str(error)) from None
    return ItemPage(items=[_item(r) for r in page.items], counts=queue_store.counts(db, queue_filter, viewer),
                    facets=_facets(db, queue_filter, viewer, "items"),
                    older=str(page.older) if page.older else None, newer=str(page.newer) if page.newer else None)


def _facets(db: sqlite3.Connection, queue_filter: queue_store.QueueFilter, viewer: Viewer, table: str) -> dict[str, dict[str, int]]:
    return {column: dict(values) for column, values in queue_store.facet_counts(db, queue_filter, viewer, table).items()}


@router.get("/listings", response_model=ListingPage, tags=["listings"])
def list_listings(
    queue_filter: queue_store.QueueFilter = Depends(view_filter), after: str | None = None, before: str | None = None,
    limit: int = Query(50, ge=1, le=500), viewer: Viewer = Depends(api_viewer), db: sqlite3.Connection = Depends(database),
) -> ListingPage:
    """The listing queue, by listing-level verdict: the same filters, facets with counts, and cursors as /api/items."""
    try:
        page = queue_store.page(db, queue_filter, viewer, queue_store.Cursor.parse(after), queue_store.Cursor.parse(before),
                                limit, "listings")
    except ValueError as error:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, str(error)) from None
    return ListingPage(listings=[_listing(r) for r in page.items], counts=queue_store.counts(db, queue_filter, viewer, "listings"),
                       facets=_facets(db, queue_filter, viewer, "listings"),
                       older=str(page.older) if page.older else None, newer=str(page.newer) if page.newer else None)


@router.get("/listings/{listing_id}", response_model=Listing, tags=["listings"])
def get_listing(listing_id: ItemId, viewer: Viewer = Depends(api_viewer), db: sqlite3.Connection = Depends(database)) -> Listing:
    """One listing with its photos (as you may see them)."""
    row = _visible_listing(db, listing_id, viewer)
    return _listing(row, [_item(photo) for photo in listing_store.listing_photos(db, listing_id, viewer)])


@router.post("/listings/{listing_id}/lease", tags=["listings"])
def lease_listing(request: Request, listing_id: ItemId, viewer: Viewer = Depends(api_viewer),
                  db: sqlite3.Connection = Depends(database)) -> dict:
    """Reserve every pending photo of a listing for a few minutes (409 if another analyst holds one)."""
    _visible_listing(db, listing_id, viewer)
    seconds = settings_of(request).lease_seconds
    holder = listing_store.lease_listing(db, listing_id, viewer, seconds)
    if holder:
        raise HTTPException(status.HTTP_409_CONFLICT, f"{holder} is reviewing this listing")
    return {"listing_id": listing_id, "seconds": seconds}


@router.post("/listings/{listing_id}/decision", response_model=ListingDecisionOut, tags=["listings"])
def decide_listing(request: Request, listing_id: ItemId, body: DecisionIn, queue_filter: queue_store.QueueFilter = Depends(view_filter),
                   viewer: Viewer = Depends(api_viewer), db: sqlite3.Connection = Depends(database)) -> ListingDecisionOut:
    """Decide every photo of the listing in one act (one undo reverses it); with `claim_next`,
    lease the next pending listing of this view and return it."""
    listing = _visible_listing(db, listing_id, viewer)
    try:
        decided, skipped = listing_store.decide_listing(db, listing_id, viewer, body.decision, body.note)
    except decision_store.NotAllowed as refused:
        raise HTTPException(status.HTTP_403_FORBIDDEN, str(refused)) from None
    following = None
    if body.claim_next:
        claimed = listing_store.claim_next_listing(db, queue_filter, viewer, listing, settings_of(request).lease_seconds)
        following = claimed["id"] if claimed else None
    return ListingDecisionOut(listing_id=listing_id, decision=body.decision, decided=decided, skipped=skipped,
                              next_listing_id=following)


def _visible_listing(db: sqlite3.Connection, listing_id: int, viewer: Viewer) -> sqlite3.Row:
    try:
        return listing_store.visible_listing(db, listing_id, viewer)
    except LookupError:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such listing in your queue") from None


@router.get("/items/{item_id}", response_model=Item, tags=["queue"])
def get_item(item_id: ItemId, viewer: Viewer = Depends(api_viewer), db: sqlite3.Connection = Depends(database)) -> Item:
    """One listing with its evidence: the k references that voted, nearest genuine, nearest fakes."""
    return _item(visible_item(db, item_id, viewer), with_evidence=True)


@router.post("/items/{item_id}/lease", tags=["decisions"])
def lease(request: Request, item_id: ItemId, viewer: Viewer = Depends(api_viewer), db: sqlite3.Connection = Depends(database)) -> dict:
    """Reserve a pending listing for a few minutes (409 if another analyst holds it)."""
    visible_item(db, item_id, viewer)
    seconds = settings_of(request).lease_seconds
    holder = decision_store.acquire_lease(db, item_id, viewer, seconds)
    if holder:
        raise HTTPException(status.HTTP_409_CONFLICT, f"{holder} is reviewing this listing")
    return {"item_id": item_id, "seconds": seconds}


@router.post("/items/{item_id}/decision", response_model=DecisionOut, tags=["decisions"])
def decide(request: Request, item_id: ItemId, body: DecisionIn, viewer: Viewer = Depends(api_viewer),
           db: sqlite3.Connection = Depends(database)) -> DecisionOut:
    """Record counterfeit / genuine / unsure (with an optional note) in the audit trail."""
    item = visible_item(db, item_id, viewer)
    queue_filter = None
    if body.claim_next:  # validated before anything is written: a bad filter must not cost a saved decision
        try:
            queue_filter = queue_store.QueueFilter.from_query(dict(request.query_params))
        except ValueError as error:
            raise HTTPException(status.HTTP_400_BAD_REQUEST, f"bad queue filter: {error}") from None
    try:
        decided = decision_store.decide(db, item_id, viewer, body.decision, body.note)
    except decision_store.LeaseHeld as held:
        raise HTTPException(status.HTTP_409_CONFLICT, str(held)) from None
    except decision_store.NotAllowed as refused:
        raise HTTPException(status.HTTP_403_FORBIDDEN, str(refused)) from None
    following = None
    if queue_filter is not None:
        claimed = decision_store.claim_next(db, queue_filter, viewer, item, settings_of(request).lease_seconds)
        following = claimed["id"] if claimed else None
    return DecisionOut(decision_id=decided.decision_id, item_id=item_id, decision=decided.decision, next_item_id=following)


@router.post("/decisions/bulk", response_model=BulkDecisionOut, tags=["decisions"])
def bulk(body: BulkDecisionIn, viewer: Viewer = Depends(api_viewer), db: sqlite3.Connection = Depends(database)) -> BulkDecisionOut:
    """Decide many listings at once; ones another analyst is reviewing are skipped."""
    decided, skipped = decision_store.bulk_decide(db, body.item_ids, viewer, body.decision, body.note)
    return BulkDecisionOut(decided=decided, skipped=skipped)


@router.post("/undo", response_model=DecisionOut | None, tags=["decisions"])
def undo(viewer: Viewer = Depends(api_viewer), db: sqlite3.Connection = Depends(database)) -> DecisionOut | None:
    """Revert your most recent act still in force: one decision, or a whole bulk or listing
    decision (null when there is none)."""
    undone = decision_store.undo_last(db, viewer)
    return DecisionOut(decision_id=undone.decision_id, item_id=undone.item_id, decision=undone.decision,
                       items=undone.items) if undone else None


@router.get("/decisions", tags=["decisions"])
def audit(item_id: OptionalItemId = None, limit: int = Query(200, ge=1, le=5000), viewer: Viewer = Depends(api_viewer),
          db: sqlite3.Connection = Depends(database)) -> list[dict]:
    """The audit trail, newest first: everyone's for admins, your own for analysts."""
    return [dict(row) for row in decision_store.history(db, viewer, item_id, limit)]


@router.get("/decisions/export", tags=["decisions"])
def export_decisions(format: Literal["csv", "json"] = "csv", viewer: Viewer = Depends(api_viewer),
                     db: sqlite3.Connection = Depends(database)) -> Response:
    """Every decision in force you may see (admins: everyone's), one row per photo, as CSV or JSON."""
    body, media_type = exports.encode(exports.decision_rows(db, viewer), format)
    return Response(body, media_type=media_type, headers={"Cache-Control": "no-store"})


@router.post("/score", tags=["scoring"])
async def score(request: Request, image: UploadFile = File(..., description="One listing photo"),
                viewer: Viewer = Depends(api_viewer)) -> dict:
    """Score one uploaded photo with the current model and gallery: score, flag, matched
    product and evidence. Larger than the upload limit: 413."""
    limit = settings_of(request).max_upload_bytes
    data = await image.read(limit + 1)
    if len(data) > limit:
        raise HTTPException(413, f"images up to {limit} bytes")
    try:
        snapshot = request.app.state.scorer.snapshot()
        # Decoding and the model run off the event loop, a few at a time: one heavy photo must
        # not freeze every other request, nor many of them take the memory.
        async with request.app.state.scoring_slots:
            return await run_in_threadpool(snapshot.score, data, image.filename or "upload")
    except ImageLoadError as error:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(error)) from None
    except ScorerUnavailable as error:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, f"no model available: {error}") from None
