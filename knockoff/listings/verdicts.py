"""A listing's verdict from its photos' rows.

A listing is (marketplace, seller_id, listing_id): two sellers' `L1001`, or one seller's on
two marketplaces, are two listings. A photo without a listing id is a listing of its own.

- `status`: `scored` if any photo was judged; else `unsupported` if any photo showed a
  catalogued product no reference could judge (work for an analyst); else `copy` if a photo
  copies a genuine reference (a reused brand photo, which proves nothing); else `no_match`;
  else `error`. An unsupported photo or a copy never makes a listing genuine: it simply does
  not count. (A photo copying a known fake is judged, and flagged.)
- `score`: the highest p(counterfeit) among its judged photos. One fake photo makes a fake
  listing; a genuine close-up beside it does not clear it.
- `flagged`: `score` at or above the listing threshold of its top photo's product for its
  number of judged photos, calibrated at listing level to the target precision on this run
  (calibration.py: the run's share of fakes, and n chances of a false flag). `threshold`,
  `expected_precision` (the bound there) and `prevalence` (the run's estimated share of fakes
  among judged photos of that product) say what it was judged with; `flagged_photos` counts
  its photos flagged at photo level. The marketplace benchmark measures what it gives.
- `probability`: p(counterfeit) of `score` at the run's share of fakes (Bayes' rule from the
  held-back share the photo calibration was fit at): what seller risk adds up.
- `top_photo`: the most incriminating photo (highest score; else the first unsupported one).
- Reused photos: `reused_photos` counts the listing's photos that appear elsewhere in the run
  (`knockoff screen --duplicates`) or copy a gallery reference (every run), and
  `reference_copies` the latter.
- Signals beyond the photos (signals.py), with the brand's catalogue the results carry:
  `price_ratio` (price over the product's retail price), `official_reuse` (who shows one of
  the brand's official photos; null where the catalogue has none for the product), each
  with its likelihood ratio (`price_ratio_lr`, `reuse_lr`), and `image_lr`, the photos'. The
  signals move the listing's prior (the run's share of fakes) by their ratios, and its
  `threshold` is the one the target precision needs at that prior (calibration.py,
  `judge_with_evidence`); `probability` is the photos' p(counterfeit) times the signals'
  ratios. A listing none of whose photos was judged (copies of official photos only, say)
  is judged by its signals alone, from the prior of such listings the ratios were fit with,
  and flagged when that reaches the target precision. Without a catalogue every ratio is 1
  and the verdict is the photos' alone. `label` is the listing's
  known truth where its photos carried labels (fake if any photo is), for fitting and evaluation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from knockoff.data.catalogue import Catalogue
from knockoff.data.records import LISTING_FIELDS
from knockoff.listings.calibration import ListingCalibration, odds
from knockoff.listings.signals import (
    REUSE_KINDS,
    ListingContext,
    price_band,
    reuse_band,
)
from knockoff.screening.results import RESULT_SCHEMA

STATUS_ORDER = ("scored", "unsupported", "copy", "no_match", "error")  # a listing takes its photos' first
# statuses whose judged product the photo does show: judged against it, or a copy of one of its
# references. Not `unsupported` (the nearest product, too far to judge: a yoghurt's nearest
# may be a sneaker, and its price a fraction of the sneaker's) nor `no_match`.
SHOWS_PRODUCT = ("scored", "copy")
KEY = "listing_id"
IDENTITY = "_listing"  # marketplace, seller and listing id, joined: what a listing is
PHOTO_COLUMNS = [KEY, "path", *LISTING_FIELDS, "status", "status_reason", "score", "flagged", "product",
                 "claimed_product", "product_mismatch", "brand", "label", "error", "duplicate_group", "reference_copy"]

LISTING_SCHEMA = pa.schema([
    (KEY, pa.string()),
    *[RESULT_SCHEMA.field(name) for name in LISTING_FIELDS],
    ("photos", pa.int64()),
    ("scored_photos", pa.int64()),
    ("flagged_photos", pa.int64()),  # flagged at photo level
    ("status", pa.string()),
    ("score", pa.float64()),  # highest p(counterfeit) among its judged photos; null if none judged
    ("flagged", pa.bool_()),  # score >= threshold
    ("threshold", pa.float64()),  # the listing threshold (calibration.py); inf: nothing of its kind can be flagged
    ("expected_precision", pa.float64()),  # the precision bound at that threshold (null: genuine-only product)
    ("prevalence", pa.float64()),  # the run's estimated share of fakes among judged photos of its product
    ("probability", pa.float64()),  # p(counterfeit) of its score at that share (null: genuine-only product)
    ("product", pa.string()),  # the top photo's judged product
    ("claimed_product", pa.string()),
    ("product_mismatch", pa.bool_()),  # any photo unlike the product the listing claims
    ("brand", pa.string()),
    ("top_photo", pa.string()),  # the most incriminating photo
    ("top_photo_reason", pa.string()),  # its status_reason when it was not judged
    ("fake_photos_labelled", pa.int64()),  # photos whose input label says fake (evaluation)
    ("reused_photos", pa.int64()),  # photos seen elsewhere in the run, or copies of a reference
    ("reference_copies", pa.int64()),  # ... of which copies of a gallery reference
    ("official_photos", pa.int64()),  # ... of which copies of the brand's official photos (its catalogue)
    ("price_ratio", pa.float64()),  # price over the catalogued product's retail price (null: none to compare)
    ("official_reuse", pa.string()),  # signals.REUSE_KINDS; null where the catalogue has no official photo of it
    ("price_ratio_lr", pa.float64()),  # likelihood ratios (signals.py); 1 where the signal does not apply
    ("reuse_lr", pa.float64()),
    ("image_lr", pa.float64()),  # the photos' odds over the run's share of fakes (null: none judged)
    ("label", pa.string()),  # known truth where its photos were labelled: fake if any is, genuine if all are
])


def listing_verdicts(photos: pa.Table, calibration: ListingCalibration, context: ListingContext = ListingContext()) -> pa.Table:
    """One row per listing of `photos` (rows of a results file holding whole listings),
    flagged by the run's listing `calibration` (`read_listing_calibration`), weighing the
    signals of `context` (the catalogue and ratios the results carry)."""
    if photos.num_rows == 0:
        return LISTING_SCHEMA.empty_table()
    photos = _normalised(photos, context.catalogue)
    rank = pc.fill_null(pc.index_in(photos.column("status"), pa.array(STATUS_ORDER)), len(STATUS_ORDER))
    ordered = photos.append_column("_rank", rank).append_column(
        "_score", pc.fill_null(pc.cast(photos.column("score"), pa.float64()), -1.0))
    ordered = ordered.sort_by([(IDENTITY, "ascending"), ("_rank", "ascending"), ("_score", "descending"), ("path", "ascending")])
    # The top photo's own values, nulls included (a grocery photo's null brand must not take
    # the brand of the sneaker another photo was nearest to); the listing's fields from any row.
    top_photo = pc.ScalarAggregateOptions(skip_nulls=False)
    firsts = [*[(name, "first", top_photo) for name in ("path", "status", "status_reason", "product", "brand")],
              *[(name, "first") for name in (KEY, *LISTING_FIELDS, "claimed_product")]]
    grouped = ordered.group_by(IDENTITY, use_threads=False).aggregate([
        *firsts, ("path", "count"), ("_scored", "sum"), ("_flagged", "sum"), ("_fake", "sum"), ("_labelled", "sum"),
        ("_mismatch", "max"), ("_score", "max"), ("_reused", "sum"), ("_reference_copy", "sum"), ("_official", "sum"),
        ("_official_product", "first")])
    scored = grouped.column("_scored_sum")
    top_score = pc.if_else(pc.greater(scored, 0), grouped.column("_score_max"), pa.scalar(None, pa.float64()))
    signals = _Signals(grouped, context)
    products = pc.cast(grouped.column("product_first"), pa.string()).combine_chunks()
    threshold, precision, prevalence, probability = calibration.judge(
        products, scored.to_numpy(), pc.fill_null(top_score, np.nan).to_numpy())
    with np.errstate(divide="ignore", invalid="ignore"):
        image_lr = odds(probability) / odds(prevalence)
    verdict = _Verdict(threshold, precision, prevalence, probability, pc.fill_null(pc.greater_equal(
        top_score, pa.array(threshold, pa.float64(), from_pandas=True)), False).to_numpy(zero_copy_only=False))
    _weigh_signals(verdict, signals, calibration, context, products, scored.to_numpy(), top_score)
    threshold, precision, prevalence, probability, flagged = (verdict.threshold, verdict.precision, verdict.prevalence,
                                                              verdict.probability, verdict.flagged)
    nullable = lambda values: pa.array(values, pa.float64(), from_pandas=True)  # noqa: E731 - NaN -> null: nothing to say
    labelled, fakes = grouped.column("_labelled_sum"), grouped.column("_fake_sum")
    columns = {
        KEY: grouped.column(f"{KEY}_first"),
        **{name: grouped.column(f"{name}_first") for name in LISTING_FIELDS},
        "photos": grouped.column("path_count"),
        "scored_photos": scored,
        "flagged_photos": grouped.column("_flagged_sum"),
        "status": grouped.column("status_first"),
        "score": top_score,
        "flagged": pa.array(flagged, pa.bool_()),
        "threshold": nullable(threshold),
        "expected_precision": nullable(precision),
        "prevalence": nullable(prevalence),
        "probability": nullable(probability),
        "product": pc.coalesce(grouped.column("product_first"), signals.product),
        "claimed_product": grouped.column("claimed_product_first"),
        "product_mismatch": grouped.column("_mismatch_max"),
        "brand": pc.coalesce(grouped.column("brand_first"), signals.brand),
        "top_photo": grouped.column("path_first"),
        "top_photo_reason": pc.if_else(pc.greater(scored, 0), pa.scalar(None, pa.string()), grouped.column("status_reason_first")),
        "fake_photos_labelled": fakes,
        "reused_photos": grouped.column("_reused_sum"),
        "reference_copies": grouped.column("_reference_copy_sum"),
        "official_photos": grouped.column("_official_sum"),
        "price_ratio": signals.price_ratio,
        "official_reuse": signals.reuse,
        "price_ratio_lr": pa.array(signals.price_lr, pa.float64()),
        "reuse_lr": pa.array(signals.reuse_lr, pa.float64()),
        "image_lr": nullable(np.where(scored.to_numpy() > 0, image_lr, np.nan)),
        "label": pc.if_else(pc.greater(fakes, 0), pa.scalar("fake"),
                            pc.if_else(pc.equal(labelled, grouped.column("path_count")), pa.scalar("genuine"),
                                       pa.scalar(None, pa.string()))),
    }
    return pa.table({name: pc.cast(columns[name], LISTING_SCHEMA.field(name).type) for name in LISTING_SCHEMA.names},
                    schema=LISTING_SCHEMA)


@dataclass
class _Verdict:
    """Per listing, what it is judged with (arrays, changed in place where signals weigh)."""

    threshold: np.ndarray
    precision: np.ndarray
    prevalence: np.ndarray
    probability: np.ndarray
    flagged: np.ndarray


def _weigh_signals(verdict: _Verdict, signals: _Signals, calibration: ListingCalibration, context: ListingContext,
                   products: pa.Array, judged: np.ndarray, top_score: pa.ChunkedArray) -> None:
    """Where a signal weighs, it moves the listing's prior, and the threshold is the one the
    target precision needs at that prior; a listing no photo of which was judged is judged by
    its signals alone, from the prior of such listings (signals.py)."""
    for i in np.flatnonzero(signals.applies):
        ratio = float(signals.price_lr[i] * signals.reuse_lr[i])
        if judged[i] and not np.isfinite(verdict.prevalence[i]):
            continue  # a genuine-only product: its score is a distance, weighed alone
        product = products[i].as_py() if judged[i] else signals.product[i].as_py()
        cut, bound, prior = calibration.judge_with_evidence(product, int(judged[i]), ratio,
                                                            None if judged[i] else context.ratios.unjudged_prior)
        if prior is None:
            continue
        verdict.threshold[i], verdict.precision[i] = cut, (np.nan if bound is None else bound)
        if judged[i]:
            moved = odds(verdict.probability[i]) * ratio
            verdict.probability[i], verdict.flagged[i] = moved / (1 + moved), top_score[i].as_py() >= cut
        else:
            verdict.probability[i], verdict.prevalence[i] = prior, calibration.pool_prevalence(product)
            verdict.flagged[i] = prior >= calibration.held_back.target_precision


class _Signals:
    """Per listing of a grouped table: the catalogued product its signals read, and the signals."""

    def __init__(self, grouped: pa.Table, context: ListingContext) -> None:
        n = grouped.num_rows
        catalogue = context.catalogue
        if catalogue is None:  # nothing to weigh: no per-listing work (a crawl without a catalogue)
            self.product = self.brand = self.reuse = pa.nulls(n, pa.string())
            self.price_ratio = pa.nulls(n, pa.float64())
            self.price_lr = self.reuse_lr = np.ones(n)
            self.applies = np.zeros(n, bool)
            return
        claimed, product, official, status = (grouped.column(c).to_pylist() for c in (
            "claimed_product_first", "product_first", "_official_product_first", "status_first"))
        # the matched product only where the photo showed one (SHOWS_PRODUCT)
        product = [p if s in SHOWS_PRODUCT else None for p, s in zip(product, status)]
        titles = grouped.column("title_first").to_pylist()
        entries = [_entry(catalogue, c, t, p, o) for c, t, p, o in zip(claimed, titles, product, official)]
        self.product = pa.array([e.product if e else None for e in entries], pa.string())
        self.brand = pa.array([e.brand if e else None for e in entries], pa.string())
        prices, currencies, sellers = (grouped.column(f"{c}_first").to_pylist() for c in ("price", "currency", "seller_id"))
        self.price_ratio = pa.array([catalogue.price_ratio(e.product, p, c) if e else None
                                     for e, p, c in zip(entries, prices, currencies)], pa.float64())
        officials = grouped.column("_official_sum").to_pylist()
        self.reuse = pa.array([_reuse_kind(catalogue, e, count, seller) for e, count, seller in zip(entries, officials, sellers)],
                              pa.string())
        price, reuse = price_band(self.price_ratio), reuse_band(self.reuse)
        ratios = context.ratios
        self.price_lr, self.reuse_lr = ratios.ratio("price", price), ratios.ratio("reuse", reuse)
        self.applies = ((price >= 0) & ratios.weighs("price")) | ((reuse >= 0) & ratios.weighs("reuse"))


def _entry(catalogue: Catalogue, claimed: str | None, title: str | None, product: str | None, official: str | None):
    """The catalogue row a listing is priced against: the product it claims (its product
    column, else its title), else its top photo's judged product, else that of the official
    photo it shows."""
    return catalogue.find(claimed) or catalogue.named_in(title) or catalogue.find(product) or catalogue.find(official)


def _reuse_kind(catalogue: Catalogue, entry, official_photos: int, seller: str | None) -> str | None:
    if entry is None or not entry.official_photos:
        return None
    if not official_photos:
        return REUSE_KINDS[0]
    authorised = catalogue.authorised(entry.product, seller)
    return REUSE_KINDS[3] if authorised is None else REUSE_KINDS[1] if authorised else REUSE_KINDS[2]


def _normalised(photos: pa.Table, catalogue: Catalogue | None = None) -> pa.Table:
    """The columns the verdict reads, typed, with helper columns; missing ones as nulls."""
    def column(name: str, kind: pa.DataType | None = None) -> pa.ChunkedArray | pa.Array:
        kind = kind or RESULT_SCHEMA.field(name).type
        if name in photos.column_names:
            return pc.cast(photos.column(name), kind)
        return pa.nulls(photos.num_rows, kind)

    status = column("status")
    flagged = pc.fill_null(column("flagged"), False)
    copies_reference = column("reference_copy").is_valid()
    table = {name: column(name) for name in PHOTO_COLUMNS if name not in ("flagged", "product_mismatch")}
    table["_reused"] = pc.cast(pc.or_(column("duplicate_group").is_valid(), copies_reference), pa.int64())
    table["_reference_copy"] = pc.cast(copies_reference, pa.int64())
    table["_scored"] = pc.cast(pc.equal(pc.fill_null(status, ""), "scored"), pa.int64())
    table["_flagged"] = pc.cast(pc.and_(flagged, pc.equal(pc.fill_null(status, ""), "scored")), pa.int64())
    table["_fake"] = pc.cast(pc.equal(pc.fill_null(column("label"), ""), "fake"), pa.int64())
    table["_labelled"] = pc.cast(pc.is_in(pc.fill_null(column("label"), ""), pa.array(["fake", "genuine"])), pa.int64())
    official = catalogue.official_photos() if catalogue else {}
    copied = column("reference_copy")
    index = pc.index_in(copied, value_set=pa.array(list(official), pa.string()))
    table["_official"] = pc.cast(pc.is_valid(index), pa.int64())
    table["_official_product"] = pc.take(pa.array(list(official.values()), pa.string()), index) if official else pa.nulls(
        photos.num_rows, pa.string())
    table["_mismatch"] = pc.cast(pc.fill_null(column("product_mismatch"), False), pa.int64())
    keys = pc.coalesce(table[KEY], table["path"])
    table[KEY] = keys
    table[IDENTITY] = listing_identity(table["marketplace"], table["seller_id"], keys)
    return pa.table(table)


def listing_identity(marketplace, seller_id, listing_id) -> pa.ChunkedArray | pa.Array:
    """One string per listing: marketplace, seller and listing id joined by a unit separator
    (a null part as empty), so that equal listing ids of two sellers stay two listings."""
    parts = [pc.fill_null(pc.cast(part, pa.string()), "") for part in (marketplace, seller_id, listing_id)]
    return pc.binary_join_element_wise(*parts, "\x1f")
