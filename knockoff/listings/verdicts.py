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
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from knockoff.data.records import LISTING_FIELDS
from knockoff.listings.calibration import ListingCalibration
from knockoff.screening.results import RESULT_SCHEMA

STATUS_ORDER = ("scored", "unsupported", "copy", "no_match", "error")  # a listing takes its photos' first
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
])


def listing_verdicts(photos: pa.Table, calibration: ListingCalibration) -> pa.Table:
    """One row per listing of `photos` (rows of a results file holding whole listings),
    flagged by the run's listing `calibration` (`read_listing_calibration`)."""
    if photos.num_rows == 0:
        return LISTING_SCHEMA.empty_table()
    photos = _normalised(photos)
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
        *firsts, ("path", "count"), ("_scored", "sum"), ("_flagged", "sum"), ("_fake", "sum"), ("_mismatch", "max"),
        ("_score", "max"), ("_reused", "sum"), ("_reference_copy", "sum")])
    scored = grouped.column("_scored_sum")
    top_score = pc.if_else(pc.greater(scored, 0), grouped.column("_score_max"), pa.scalar(None, pa.float64()))
    threshold, precision, prevalence, probability = (
        pa.array(values, pa.float64(), from_pandas=True)  # NaN -> null: nothing to say
        for values in calibration.judge(pc.cast(grouped.column("product_first"), pa.string()).combine_chunks(),
                                        scored.to_numpy(), pc.fill_null(top_score, np.nan).to_numpy()))
    columns = {
        KEY: grouped.column(f"{KEY}_first"),
        **{name: grouped.column(f"{name}_first") for name in LISTING_FIELDS},
        "photos": grouped.column("path_count"),
        "scored_photos": scored,
        "flagged_photos": grouped.column("_flagged_sum"),
        "status": grouped.column("status_first"),
        "score": top_score,
        "flagged": pc.fill_null(pc.greater_equal(top_score, threshold), False),
        "threshold": threshold,
        "expected_precision": precision,
        "prevalence": prevalence,
        "probability": probability,
        "product": grouped.column("product_first"),
        "claimed_product": grouped.column("claimed_product_first"),
        "product_mismatch": grouped.column("_mismatch_max"),
        "brand": grouped.column("brand_first"),
        "top_photo": grouped.column("path_first"),
        "top_photo_reason": pc.if_else(pc.greater(scored, 0), pa.scalar(None, pa.string()), grouped.column("status_reason_first")),
        "fake_photos_labelled": grouped.column("_fake_sum"),
        "reused_photos": grouped.column("_reused_sum"),
        "reference_copies": grouped.column("_reference_copy_sum"),
    }
    return pa.table({name: pc.cast(columns[name], LISTING_SCHEMA.field(name).type) for name in LISTING_SCHEMA.names},
                    schema=LISTING_SCHEMA)


def _normalised(photos: pa.Table) -> pa.Table:
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
