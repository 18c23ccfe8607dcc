"""A seller's risk from its listings' verdicts.

`risk` is, per brand, the share of the seller's *judged* listings of that brand that are
flagged, estimated with an empirical-Bayes prior, and then the highest over its brands:

    risk_b = (flagged listings of b + strength * base_rate_b) / (judged listings of b + strength)
    risk = max over brands b of risk_b   (no judged listing at all: the run's base rate)

where `base_rate_b` is the share of the run's judged listings of brand b that are flagged and
`strength` (2 listings) how much the prior weighs. Counterfeiting is brand by brand: a shop
that sells one flagged pair of sneakers among twenty genuine cartons of milk is a
counterfeit sneaker seller, and the brand that gives its risk is reported (`risk_brand`).
- Only judged (`scored`) listings count: unmonitored goods and listings no reference could
  judge say nothing about counterfeits, so a small shop that hides two fakes among forty
  ordinary goods is judged by the few sneakers it sells, not diluted by the rest.
- Flags, not raw probabilities: a flag is a decision at the product's calibrated threshold
  for the target precision, while a genuine listing's p(counterfeit) of 0.1-0.2 is ordinary
  (summed over 150 genuine listings it would look like 20 fakes).
- A large genuine shop's few false flags are averaged over its many judged listings, so one
  weak flag among 200 genuine listings scores near 0, far below a seller whose every
  listing is flagged; a seller with nothing judged sits at the run's base rate.
Measured on the simulated marketplace (benchmarks/marketplace.py; README).
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

SELLER_SCHEMA = pa.schema([
    ("seller_id", pa.string()),
    ("risk", pa.float64()),  # flagged share of its judged listings of its riskiest brand, shrunk (module docstring)
    ("risk_brand", pa.string()),  # the brand that risk comes from
    ("listings", pa.int64()),
    ("judged_listings", pa.int64()),
    ("flagged_listings", pa.int64()),
    ("expected_fakes", pa.float64()),  # sum of its judged listings' p(counterfeit)
    ("top_score", pa.float64()),
    ("top_listing", pa.string()),  # its most incriminating listing
    ("unsupported_listings", pa.int64()),  # listings that need references (work for an analyst)
    ("confirmed_fakes", pa.int64()),  # listings analysts decided counterfeit (with a review store)
    ("reused_photos", pa.int64()),  # its photos seen elsewhere in the run or copied from a reference
    ("marketplace", pa.string()),
])


def seller_totals(listings: pa.Table) -> tuple[pa.Table, pa.Table]:
    """Per seller, and per seller and brand, the sums that risk needs (a listings table
    holding whole sellers)."""
    judged = pc.equal(pc.fill_null(listings.column("status"), ""), "scored")
    score = pc.if_else(judged, pc.fill_null(listings.column("score"), 0.0), 0.0)
    table = pa.table({
        "seller_id": pc.fill_null(listings.column("seller_id"), ""),
        "brand": pc.fill_null(listings.column("brand"), ""),
        "listing_id": listings.column("listing_id"),
        "_judged": pc.cast(judged, pa.int64()),
        "_flagged": pc.cast(pc.and_(judged, pc.fill_null(listings.column("flagged"), False)), pa.int64()),
        "_unsupported": pc.cast(pc.equal(pc.fill_null(listings.column("status"), ""), "unsupported"), pa.int64()),
        "_score": score,
        "_confirmed": pc.cast(listings.column("confirmed"), pa.int64()) if "confirmed" in listings.column_names
        else pa.array([0] * listings.num_rows, pa.int64()),
        "_reused": pc.fill_null(listings.column("reused_photos"), 0),
        "marketplace": listings.column("marketplace"),
    })
    table = table.sort_by([("seller_id", "ascending"), ("_score", "descending"), ("listing_id", "ascending")])
    totals = table.group_by("seller_id", use_threads=False).aggregate([
        ("listing_id", "count"), ("_judged", "sum"), ("_flagged", "sum"), ("_unsupported", "sum"), ("_score", "sum"),
        ("_score", "max"), ("listing_id", "first"), ("_confirmed", "sum"), ("_reused", "sum"), ("marketplace", "first")])
    by_brand = table.group_by(["seller_id", "brand"]).aggregate([("_judged", "sum"), ("_flagged", "sum")])
    return totals, by_brand


def brand_risk(by_brand: pa.Table, base_rates: dict[str, float], strength: float) -> dict[str, tuple[float, str]]:
    """seller -> (its highest per-brand risk, that brand), over the brands it has judged listings of."""
    riskiest: dict[str, tuple[float, str]] = {}
    for seller, brand, judged, flagged in zip(*(by_brand.column(c).to_pylist() for c in ("seller_id", "brand", "_judged_sum", "_flagged_sum"))):
        if judged:
            risk = (flagged + strength * base_rates.get(brand, 0.0)) / (judged + strength)
            if seller not in riskiest or risk > riskiest[seller][0]:
                riskiest[seller] = (risk, brand)
    return riskiest


def seller_risk(totals: pa.Table, by_brand: pa.Table, base_rates: dict[str, float], base_rate: float,
                strength: float) -> pa.Table:
    """SELLER_SCHEMA rows from `seller_totals`: per-brand priors `base_rates`, and `base_rate`
    (every brand) for a seller with nothing judged."""
    expected = totals.column("_score_sum")
    riskiest = brand_risk(by_brand, base_rates, strength)
    sellers = totals.column("seller_id").to_pylist()
    risk = pa.array([riskiest.get(s, (base_rate, None))[0] for s in sellers], pa.float64())
    brand = pa.array([riskiest.get(s, (base_rate, None))[1] or None for s in sellers], pa.string())
    seller = pc.if_else(pc.equal(totals.column("seller_id"), ""), pa.scalar(None, pa.string()), totals.column("seller_id"))
    columns = {
        "seller_id": seller, "risk": risk, "risk_brand": brand, "listings": totals.column("listing_id_count"),
        "judged_listings": totals.column("_judged_sum"), "flagged_listings": totals.column("_flagged_sum"),
        "expected_fakes": expected,
        "top_score": pc.if_else(pc.greater(totals.column("_judged_sum"), 0), totals.column("_score_max"),
                                pa.scalar(None, pa.float64())),
        "top_listing": totals.column("listing_id_first"), "unsupported_listings": totals.column("_unsupported_sum"),
        "confirmed_fakes": totals.column("_confirmed_sum"), "reused_photos": totals.column("_reused_sum"),
        "marketplace": totals.column("marketplace_first"),
    }
    return pa.table({name: pc.cast(columns[name], SELLER_SCHEMA.field(name).type) for name in SELLER_SCHEMA.names},
                    schema=SELLER_SCHEMA)
