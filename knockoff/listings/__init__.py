"""From photos to listings and sellers: the verdicts brand protection acts on.

`knockoff listings RESULTS` writes one row per listing (verdicts.py), `knockoff sellers
RESULTS` one row per seller ranked by risk (sellers.py). Both stream: results are
hash-partitioned to disk by listing (then by seller) and each partition is grouped in
memory (spill.py), so a crawl of any size is aggregated in the memory of one partition.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field, replace
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from knockoff.listings.calibration import read_listing_calibration
from knockoff.listings.sellers import SELLER_SCHEMA, listing_evidence, seller_risk, seller_totals
from knockoff.listings.signals import SignalRatios, read_listing_context
from knockoff.listings.spill import ROWS_PER_PARTITION, partitions
from knockoff.listings.verdicts import LISTING_SCHEMA, PHOTO_COLUMNS, listing_identity, listing_verdicts
from knockoff.scratch import scratch_folder

PRIOR_STRENGTH = 2.0  # listings' worth of its brand's share of fakes in every seller's risk


@dataclass(frozen=True)
class ListingSummary:
    listings: int
    flagged: int
    judged: int
    # brand -> (judged listings, sum of their q: expected fakes), what each brand's prior is
    brands: dict[str, tuple[int, float]] = field(default_factory=dict)
    calibration: list[str] = field(default_factory=list)  # per product pool: the run's share of fakes, thresholds
    shared_listing_ids: int = 0  # listing ids that several sellers (or marketplaces) use: kept apart

    def brand_base_rates(self) -> dict[str, float]:
        """Per brand, the mean q of its judged listings: the run's estimated share of fakes, each brand's prior."""
        return {brand: expected / judged for brand, (judged, expected) in self.brands.items() if judged}

    def line(self, out: Path) -> str:
        shared = (f"; {self.shared_listing_ids} listing id{'s are' if self.shared_listing_ids != 1 else ' is'} used by "
                  f"more than one seller or marketplace, each kept apart" if self.shared_listing_ids else "")
        return f"{self.listings} listings, {self.judged} judged, {self.flagged} flagged -> {out}{shared}"


def write_listings(results: Path, out: Path, rows_per_partition: int = ROWS_PER_PARTITION,
                   ratios: SignalRatios | None = None) -> ListingSummary:
    """One row per listing of a Parquet results file (`knockoff screen --out *.parquet`),
    flagged by a listing calibration fit on this very run (calibration.py), weighing the
    signals of the catalogue it carries with its signal ratios, or `ratios` instead (signals.py)."""
    _check_parquet(results)
    calibration = read_listing_calibration(results)
    context = read_listing_context(pq.read_schema(results).metadata or {})
    if ratios is not None:
        context = replace(context, ratios=ratios)
    counts = {"listings": 0, "flagged": 0, "judged": 0, "shared_listing_ids": 0}
    brands: dict[str, tuple[int, float]] = {}
    partial = out.with_name(f".{out.name}.partial")
    out.parent.mkdir(parents=True, exist_ok=True)
    with pq.ParquetWriter(partial, LISTING_SCHEMA, compression="zstd") as writer:
        for photos in partitions(results, "listing_id", PHOTO_COLUMNS, rows_per_partition, key_fallback="path"):
            listings = listing_verdicts(photos, calibration, context)
            writer.write_table(listings)
            counts["listings"] += listings.num_rows
            counts["flagged"] += int(pc.sum(pc.cast(listings.column("flagged"), pa.int64())).as_py() or 0)
            counts["judged"] += int(pc.sum(pc.cast(pc.equal(listings.column("status"), "scored"), pa.int64())).as_py() or 0)
            # a partition holds every listing of its listing ids (spilled by listing id)
            uses = listings.group_by("listing_id").aggregate([("listing_id", "count")]).column("listing_id_count")
            counts["shared_listing_ids"] += int(pc.sum(pc.greater(uses, 1)).as_py() or 0)
            for brand, judged_count, expected in _per_brand(listings):
                before = brands.get(brand, (0, 0.0))
                brands[brand] = (before[0] + judged_count, before[1] + expected)
    partial.replace(out)
    return ListingSummary(**counts, brands=brands, calibration=calibration.lines() + context.lines())


def _per_brand(listings: pa.Table) -> list[tuple[str, int, float]]:
    evidence = listing_evidence(listings)
    grouped = evidence.group_by("brand").aggregate([("_judged", "sum"), ("_q", "sum")])
    return list(zip(*(grouped.column(c).to_pylist() for c in ("brand", "_judged_sum", "_q_sum"))))


def write_sellers(results: Path, out: Path, store: Path | None = None, strength: float = PRIOR_STRENGTH,
                  rows_per_partition: int = ROWS_PER_PARTITION, listings_out: Path | None = None,
                  ratios: SignalRatios | None = None) -> pa.Table:
    """One row per seller, highest risk first; `store` (the review service's knockoff.db) adds
    the listings analysts confirmed counterfeit. Returns the sellers table; `listings_out`
    keeps the listings it was computed from (`write_listings`'s file)."""
    confirmed = confirmed_listings(store) if store else pa.array([], pa.string())
    with scratch_folder("sellers") as scratch:
        listings_path = listings_out or scratch / "listings.parquet"
        summary = write_listings(results, listings_path, rows_per_partition, ratios)
        parts = []
        for listings in partitions(listings_path, "seller_id", LISTING_SCHEMA.names, rows_per_partition):
            identity = listing_identity(listings.column("marketplace"), listings.column("seller_id"), listings.column("listing_id"))
            listings = listings.append_column("confirmed", pc.is_in(identity, value_set=confirmed))
            totals, by_brand = seller_totals(listings)
            parts.append(seller_risk(totals, by_brand, summary.brand_base_rates(), strength))
    sellers = pa.concat_tables(parts) if parts else SELLER_SCHEMA.empty_table()
    sellers = sellers.sort_by([("risk", "descending"), ("judged_listings", "descending")])
    sellers = sellers.replace_schema_metadata({b"knockoff.brand_priors": json.dumps(summary.brand_base_rates()).encode(),
                                               b"knockoff.prior_strength": str(strength).encode()})
    partial = out.with_name(f".{out.name}.partial")
    out.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(sellers, partial, compression="zstd")
    partial.replace(out)
    return sellers


def confirmed_listings(store: Path) -> pa.Array:
    """The listings (listing_identity) analysts decided counterfeit in a review store."""
    if not Path(store).is_file():
        raise FileNotFoundError(f"review store {store} not found")
    with sqlite3.connect(f"file:{store}?mode=ro", uri=True) as connection:
        rows = connection.execute("SELECT DISTINCT marketplace, seller_id, listing_id FROM items "
                                  "WHERE decision = 'counterfeit' AND listing_id IS NOT NULL").fetchall()
    columns = [pa.array([row[i] for row in rows], pa.string()) for i in range(3)]
    return listing_identity(*columns)


def _check_parquet(results: Path) -> None:
    if not Path(results).is_file():
        raise FileNotFoundError(f"{results} not found")
    if Path(results).suffix.lower() not in (".parquet", ".pq"):
        raise ValueError(f"{results}: listings and sellers read Parquet results (`knockoff screen --out results.parquet`)")
