"""A seller's risk from its listings' verdicts.

`risk` is, per brand, the expected share of counterfeits among the seller's listings of that
brand that could be judged, with an empirical-Bayes prior, and then the highest over its brands:

    risk_b = (sum of q over its judged listings of b + (unsupported_b + strength) * base_b)
             / (judged_b + unsupported_b + strength)
    risk = max over brands b of risk_b   (no judged or unsupported listing at all: 0)

  except where every listing of b was judged and none flagged: there the listings have spoken
  and no prior is added (risk_b = mean q), so a dealer whose listings are all judged genuine is
  low risk whatever the run's share of fakes (an authorised dealer with three unflagged
  listings scored 0.505 under the prior of a run where half the sneakers were fakes).

- `q` is a judged listing's `probability`: p(counterfeit) of its score at this run's share of
  fakes (verdicts.py, calibration.py), so a genuine listing's ordinary score of 0.1-0.2 in a
  run where one sneaker in ten is fake counts for about 0.02, not 0.15 (summed over 150
  genuine listings that would look like 20 fakes). A genuine-only product's score is a
  distance, not a probability: there q is its listing flag (0 or 1).
- `base_b` is the run's mean q over judged listings of b: its estimated share of fakes, and
  `strength` (2 listings) how much that prior weighs. An `unsupported` listing (a product of
  b that no reference could judge) counts as a listing of b at the prior: it is the brand's,
  but says nothing either way.
- Counterfeiting is brand by brand: a shop that sells one likely fake pair of sneakers among
  twenty genuine cartons of milk is a counterfeit sneaker seller, so a small shop that hides
  two fakes among forty ordinary goods is judged by the few sneakers it sells, not diluted
  by the rest. The brand that gives its risk is reported (`risk_brand`).
- A large genuine shop's scores are averaged over its many judged listings, so one weak flag
  among 200 genuine listings scores near its brand's q, far below a seller whose every
  listing is a likely fake; a seller with no listing of a monitored brand (unmonitored goods
  only) has nothing to be a counterfeiter of in this run: 0.
Measured on the simulated marketplace (benchmarks/marketplace.py; README).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

SELLER_SCHEMA = pa.schema([
    ("seller_id", pa.string()),
    ("risk", pa.float64()),  # expected share of fakes among its listings of its riskiest brand, shrunk (module docstring)
    ("risk_brand", pa.string()),  # the brand that risk comes from
    ("listings", pa.int64()),
    ("judged_listings", pa.int64()),
    ("flagged_listings", pa.int64()),
    ("expected_fakes", pa.float64()),  # sum of its judged listings' q (p(counterfeit) at the run's share of fakes)
    ("top_score", pa.float64()),
    ("top_listing", pa.string()),  # its most incriminating listing (highest q)
    ("unsupported_listings", pa.int64()),  # listings that need references (work for an analyst)
    ("confirmed_fakes", pa.int64()),  # listings analysts decided counterfeit (with a review store)
    ("reused_photos", pa.int64()),  # its photos seen elsewhere in the run or copied from a reference
    ("marketplace", pa.string()),
    ("risk_level", pa.string()),  # high, uncertain, low or none (risk_level): what the figures mean in a word
    ("expected_low", pa.int64()),  # 90% interval of its counterfeit listings among the judged ones
    ("expected_high", pa.int64()),
])


def listing_evidence(listings: pa.Table) -> pa.Table:
    """Per listing: seller, brand, and what risk reads (q of a judged listing, whether it is unsupported)."""
    status = pc.fill_null(listings.column("status"), "")
    # judged by its photos, or (no photo judged) by its price or a reused official photo (signals.py)
    judged = pc.or_(pc.equal(status, "scored"), pc.is_valid(listings.column("probability")))
    flag = pc.cast(pc.fill_null(listings.column("flagged"), False), pa.float64())
    q = pc.if_else(judged, pc.coalesce(listings.column("probability"), flag), 0.0)
    return pa.table({
        "marketplace": pc.fill_null(listings.column("marketplace"), ""),
        "seller_id": pc.fill_null(listings.column("seller_id"), ""),
        "brand": pc.fill_null(listings.column("brand"), ""),
        "listing_id": listings.column("listing_id"),
        "_judged": pc.cast(judged, pa.int64()),
        "_flagged": pc.cast(pc.and_(judged, pc.fill_null(listings.column("flagged"), False)), pa.int64()),
        "_unsupported": pc.cast(pc.and_(pc.equal(status, "unsupported"), pc.invert(judged)), pa.int64()),
        "_q": q,
        "_score": pc.if_else(judged, pc.fill_null(listings.column("score"), 0.0), 0.0),
    })


SELLER = ["marketplace", "seller_id"]  # a seller is its id on its marketplace


def seller_totals(listings: pa.Table) -> tuple[pa.Table, pa.Table]:
    """Per seller (marketplace and seller id), and per seller and brand, the sums that risk
    needs (a listings table holding whole sellers)."""
    evidence = listing_evidence(listings)
    table = evidence.append_column(
        "_confirmed", pc.cast(listings.column("confirmed"), pa.int64()) if "confirmed" in listings.column_names
        else pa.array([0] * listings.num_rows, pa.int64())).append_column(
        "_reused", pc.fill_null(listings.column("reused_photos"), 0))
    table = table.sort_by([("marketplace", "ascending"), ("seller_id", "ascending"), ("_q", "descending"),
                           ("_score", "descending"), ("listing_id", "ascending")])
    totals = table.group_by(SELLER, use_threads=False).aggregate([
        ("listing_id", "count"), ("_judged", "sum"), ("_flagged", "sum"), ("_unsupported", "sum"), ("_q", "sum"),
        ("_score", "max"), ("listing_id", "first"), ("_confirmed", "sum"), ("_reused", "sum"), ("_q", "list")])
    by_brand = table.group_by([*SELLER, "brand"]).aggregate([("_judged", "sum"), ("_unsupported", "sum"), ("_q", "sum"),
                                                             ("_flagged", "sum")])
    return totals, by_brand


def brand_risk(by_brand: pa.Table, base_rates: dict[str, float], strength: float) -> dict[tuple[str, str], tuple[float, str]]:
    """(marketplace, seller) -> (its highest per-brand risk, that brand), over the brands it has
    judged or unsupported listings of."""
    riskiest: dict[tuple[str, str], tuple[float, str]] = {}
    columns = (*SELLER, "brand", "_judged_sum", "_unsupported_sum", "_q_sum", "_flagged_sum")
    for marketplace, seller, brand, judged, unsupported, q, flagged in zip(*(by_brand.column(c).to_pylist() for c in columns)):
        if judged or unsupported:
            prior = base_rates.get(brand, 0.0) if flagged or unsupported else 0.0  # all judged, none flagged: no prior
            risk = (q + (unsupported + strength) * prior) / (judged + unsupported + (strength if prior else 0))
            if (marketplace, seller) not in riskiest or risk > riskiest[(marketplace, seller)][0]:
                riskiest[(marketplace, seller)] = (risk, brand)
    return riskiest


def seller_risk(totals: pa.Table, by_brand: pa.Table, base_rates: dict[str, float], strength: float) -> pa.Table:
    """SELLER_SCHEMA rows from `seller_totals`, with each brand's prior in `base_rates`."""
    riskiest = brand_risk(by_brand, base_rates, strength)
    sellers = list(zip(*(totals.column(c).to_pylist() for c in SELLER)))
    risk = pa.array([riskiest.get(s, (0.0, None))[0] for s in sellers], pa.float64())
    brand = pa.array([riskiest.get(s, (0.0, None))[1] or None for s in sellers], pa.string())
    seller = pc.if_else(pc.equal(totals.column("seller_id"), ""), pa.scalar(None, pa.string()), totals.column("seller_id"))
    marketplace = pc.if_else(pc.equal(totals.column("marketplace"), ""), pa.scalar(None, pa.string()), totals.column("marketplace"))
    intervals = [count_interval(np.array(q, dtype=np.float64), 0.90) for q in totals.column("_q_list").to_pylist()]
    columns = {
        "seller_id": seller, "risk": risk, "risk_brand": brand, "listings": totals.column("listing_id_count"),
        "judged_listings": totals.column("_judged_sum"), "flagged_listings": totals.column("_flagged_sum"),
        "expected_fakes": totals.column("_q_sum"),
        "top_score": pc.if_else(pc.greater(totals.column("_judged_sum"), 0), totals.column("_score_max"),
                                pa.scalar(None, pa.float64())),
        "top_listing": totals.column("listing_id_first"), "unsupported_listings": totals.column("_unsupported_sum"),
        "confirmed_fakes": totals.column("_confirmed_sum"), "reused_photos": totals.column("_reused_sum"),
        "marketplace": marketplace,
        "risk_level": pa.array([risk_level(*values) for values in zip(*(totals.column(c).to_pylist() for c in
                                                                        ("_judged_sum", "_flagged_sum", "_unsupported_sum", "_q_sum")))],
                               pa.string()),
        "expected_low": pa.array([low for low, _ in intervals], pa.int64()),
        "expected_high": pa.array([high for _, high in intervals], pa.int64()),
    }
    return pa.table({name: pc.cast(columns[name], SELLER_SCHEMA.field(name).type) for name in SELLER_SCHEMA.names},
                    schema=SELLER_SCHEMA)


LEVELS = ("high", "uncertain", "low", "none")


@dataclass(frozen=True)
class RiskSummary:
    """What a seller's figures mean, in the words every surface uses (CLI, service, evidence pack)."""

    level: str  # high: a listing flagged; uncertain: none flagged, some need references; low: all judged, none flagged; none
    judged: int
    flagged: int
    unsupported: int
    expected: float  # expected counterfeit listings among the judged ones (sum of their q)
    low: int  # 90% interval of the number of counterfeit listings among the judged ones
    high: int

    def words(self) -> str:
        if self.level == "none":
            return "no listing of a monitored product could be judged"
        interval = f"{self.low}" if self.low == self.high else f"{self.low}–{self.high}"
        text = (f"{self.flagged} of {self.judged} judged listings flagged; {self.expected:.1f} expected counterfeit "
                f"(90% interval {interval})")
        if self.unsupported:
            text += f"; {self.unsupported} need references"
        return f"{self.level} risk: {text}"


def risk_level(judged: int, flagged: int, unsupported: int, expected: float = 0.0) -> str:
    """high: a listing flagged; uncertain: none flagged, but some need references, or their
    chances add up to one counterfeit or more; low: every listing judged, none flagged, under
    one expected counterfeit, whatever the prior; none: nothing monitored to judge."""
    if not judged and not unsupported:
        return "none"
    if flagged:
        return "high"
    return "uncertain" if unsupported or expected >= 1.0 else "low"


def listings_risk(listings: pa.Table) -> RiskSummary:
    """The RiskSummary of one seller's listings (LISTING_SCHEMA rows), counted as seller risk counts them."""
    evidence = listing_evidence(listings)
    judged = pc.equal(evidence.column("_judged"), 1)
    return risk_summary(pc.filter(evidence.column("_q"), judged).to_numpy(),
                        int(pc.sum(evidence.column("_flagged")).as_py() or 0), int(pc.sum(evidence.column("_unsupported")).as_py() or 0))


def risk_summary(q: list[float] | np.ndarray, flagged: int, unsupported: int) -> RiskSummary:
    """From its judged listings' q (p(counterfeit) of each) and its flagged and unsupported counts."""
    q = np.clip(np.asarray(q, dtype=np.float64), 0.0, 1.0)
    level = risk_level(len(q), flagged, unsupported, float(q.sum()))
    low, high = count_interval(q, 0.90)
    return RiskSummary(level, len(q), int(flagged), int(unsupported), float(q.sum()), low, high)


EXACT_UP_TO = 2000  # judged listings up to which the interval is convolved exactly


def _erfinv(y: float) -> float:
    from statistics import NormalDist

    return NormalDist().inv_cdf((1 + y) / 2) / np.sqrt(2)


def count_interval(q: np.ndarray, coverage: float) -> tuple[int, int]:
    """The central `coverage` interval of how many of independent events with probabilities
    `q` happen (the Poisson-binomial distribution, by exact convolution)."""
    q = np.asarray(q, dtype=np.float64)
    if len(q) > EXACT_UP_TO:  # a large shop: the normal approximation, exact enough at that size
        mean, sd = q.sum(), np.sqrt((q * (1 - q)).sum())
        z = 1.6448536269514722 if coverage == 0.90 else float(np.sqrt(2) * _erfinv(coverage))
        return max(0, int(np.floor(mean - z * sd))), min(len(q), int(np.ceil(mean + z * sd)))
    distribution = np.ones(1)
    for p in q:
        distribution = np.append(distribution * (1 - p), 0.0) + np.append(0.0, distribution * p)
    cumulative = np.cumsum(distribution)
    tail = (1 - coverage) / 2
    return int(np.searchsorted(cumulative, tail - 1e-12)), int(np.searchsorted(cumulative, 1 - tail - 1e-12))


def summary_of(seller: dict) -> RiskSummary:
    """The RiskSummary of a SELLER_SCHEMA row."""
    return RiskSummary(seller["risk_level"], seller["judged_listings"], seller["flagged_listings"],
                       seller["unsupported_listings"], seller["expected_fakes"], seller["expected_low"], seller["expected_high"])
