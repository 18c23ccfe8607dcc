"""A seller's risk from its listings' verdicts.

`risk` is the expected share of the seller's *judged* listings that are counterfeit, with an
empirical-Bayes prior:

    risk = (sum of judged listings' p(counterfeit) + strength * base_rate) / (judged listings + strength)

- Only judged (`scored`) listings count: unmonitored goods and listings no reference could
  judge say nothing about counterfeits, so a small shop that hides three fakes among twenty
  ordinary goods is judged by its three sneakers, not diluted by the rest.
- A large genuine shop's few false flags are averaged over its many judged listings, so one
  weak flag among 200 genuine listings scores near its genuine probabilities, far below a
  seller whose every listing is a likely fake.
- The prior (`base_rate`: the mean p(counterfeit) of every judged listing in the run, and
  `strength`, in listings) keeps a seller with one judged listing from the extremes, and
  gives a seller with nothing judged the run's base rate: no evidence either way.
If the listings' scores are calibrated probabilities, risk is a calibrated estimate of the
seller's counterfeit share; `knockoff evaluate`'s marketplace report measures the ranking.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

SELLER_SCHEMA = pa.schema([
    ("seller_id", pa.string()),
    ("risk", pa.float64()),  # expected counterfeit share of its judged listings (see module docstring)
    ("listings", pa.int64()),
    ("judged_listings", pa.int64()),
    ("flagged_listings", pa.int64()),
    ("expected_fakes", pa.float64()),  # sum of its judged listings' p(counterfeit)
    ("top_score", pa.float64()),
    ("top_listing", pa.string()),  # its most incriminating listing
    ("unsupported_listings", pa.int64()),  # listings that need references (work for an analyst)
    ("confirmed_fakes", pa.int64()),  # listings analysts decided counterfeit (with a review store)
    ("marketplace", pa.string()),
])


def seller_totals(listings: pa.Table) -> pa.Table:
    """Per seller, the sums that risk needs (a listings table holding whole sellers)."""
    judged = pc.equal(pc.fill_null(listings.column("status"), ""), "scored")
    score = pc.if_else(judged, pc.fill_null(listings.column("score"), 0.0), 0.0)
    table = pa.table({
        "seller_id": pc.fill_null(listings.column("seller_id"), ""),
        "listing_id": listings.column("listing_id"),
        "_judged": pc.cast(judged, pa.int64()),
        "_flagged": pc.cast(pc.fill_null(listings.column("flagged"), False), pa.int64()),
        "_unsupported": pc.cast(pc.equal(pc.fill_null(listings.column("status"), ""), "unsupported"), pa.int64()),
        "_score": score,
        "_confirmed": pc.cast(listings.column("confirmed"), pa.int64()) if "confirmed" in listings.column_names
        else pa.array([0] * listings.num_rows, pa.int64()),
        "marketplace": listings.column("marketplace"),
    })
    table = table.sort_by([("seller_id", "ascending"), ("_score", "descending"), ("listing_id", "ascending")])
    grouped = table.group_by("seller_id", use_threads=False).aggregate([
        ("listing_id", "count"), ("_judged", "sum"), ("_flagged", "sum"), ("_unsupported", "sum"), ("_score", "sum"),
        ("_score", "max"), ("listing_id", "first"), ("_confirmed", "sum"), ("marketplace", "first")])
    return grouped


def seller_risk(totals: pa.Table, base_rate: float, strength: float) -> pa.Table:
    """SELLER_SCHEMA rows from `seller_totals`, with risk under the prior (base_rate, strength)."""
    judged = pc.cast(totals.column("_judged_sum"), pa.float64())
    expected = totals.column("_score_sum")
    risk = pc.divide(pc.add(expected, strength * base_rate), pc.add(judged, strength))
    seller = pc.if_else(pc.equal(totals.column("seller_id"), ""), pa.scalar(None, pa.string()), totals.column("seller_id"))
    columns = {
        "seller_id": seller, "risk": risk, "listings": totals.column("listing_id_count"),
        "judged_listings": totals.column("_judged_sum"), "flagged_listings": totals.column("_flagged_sum"),
        "expected_fakes": expected,
        "top_score": pc.if_else(pc.greater(totals.column("_judged_sum"), 0), totals.column("_score_max"),
                                pa.scalar(None, pa.float64())),
        "top_listing": totals.column("listing_id_first"), "unsupported_listings": totals.column("_unsupported_sum"),
        "confirmed_fakes": totals.column("_confirmed_sum"), "marketplace": totals.column("marketplace_first"),
    }
    return pa.table({name: pc.cast(columns[name], SELLER_SCHEMA.field(name).type) for name in SELLER_SCHEMA.names},
                    schema=SELLER_SCHEMA)
