"""Listing verdicts calibrated to the target precision on the run being judged.

A photo's flag is calibrated on held-back photos, whose share of fakes is the calibration
set's (half of them, for sneakers), not the crawl's. A listing is flagged on its *most*
incriminating photo, so a genuine listing of n photos gets n chances to be falsely flagged.
Both make photo-level flags too loose for listings on a real crawl, where fakes are few.
So a listing's threshold is set per product pool, per number of judged photos, from:

- the held-back photos as screening judged them (`HeldBackScores`, fit by `knockoff index`
  in knockoff/scoring/held_back.py, carried in every results file's metadata): TPR(t) and
  FPR(t), the shares of held-back fakes and genuine photos scored at or above t;
- the run's own share of fakes among the judged photos of the pool, pi, estimated by
  adjusted classify-and-count (Forman 2008) at the threshold where TPR - FPR is largest
  (where the estimate varies least): pi = (f - FPR) / (TPR - FPR), f being the run's share of
  judged photos at or above it. A pool with fewer than `MIN_RUN_PHOTOS` judged photos in the
  run keeps the held-back share, as photo scores do;
- the listing's judged photos n: the photos of a genuine listing look alike, so their scores
  are positively associated and P(all below t) >= P(one below t)^n; hence its false-flag rate
  is at most 1 - (1 - FPR(t))^n, while a fake listing is flagged at least as often as one fake
  photo (TPR(t)).

precision(t, n) >= pi TPR(t) / (pi TPR(t) + (1 - pi)(1 - (1 - FPR(t))^n)), with FPR(t) read
as (k + 1) / (N + 1) when k of N held-back genuine photos score at or above t: an unseen
genuine photo may score above every held-back one (measured on halves of the sneakers: past
the top of one half, 1.3-1.5% of the other half, against 1/(N + 1) = 1.1-1.4%). The threshold
is the one with the highest TPR among held-back scores where that bound reaches the target.
Where none does (few held-back genuine photos, few fakes in the run), listings are flagged
past every held-back genuine score (no genuine photo held back scored that high), and
`expected_precision` says how far below the target the bound is: flags an analyst can weigh,
rather than none. Where no held-back fake scores past every genuine one, nothing is flagged.
A genuine-only product (cold start) has no fakes to estimate pi with: its listing threshold
keeps the false-flag rate of a listing of n photos at the photo-level rate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from knockoff.scoring.held_back import METADATA_KEY, HeldBackPool, HeldBackScores, share_at_or_above

MIN_RUN_PHOTOS = 100  # judged photos of a pool in the run before the run's share of fakes is believed
MAX_PHOTOS = 12  # listings with more judged photos take this count's threshold (the bound only loosens)
BINS = 10_000  # the run's scores are counted in bins of 0.0001: memory does not grow with the crawl


@dataclass
class RunScores:
    """Per pool, how many of the run's judged photos scored in each bin of width 1/BINS."""

    counts: dict[str, np.ndarray] = field(default_factory=dict)

    def add(self, pools: list[str], pool_of: np.ndarray, scores: np.ndarray) -> None:
        """Count judged photos: photo i of `scores` belongs to pool `pools[pool_of[i]]`."""
        bins = np.clip((np.asarray(scores, np.float64) * BINS).astype(np.int64), 0, BINS - 1)
        counts = np.bincount(np.asarray(pool_of, np.int64) * BINS + bins, minlength=len(pools) * BINS)
        for number, pool in enumerate(pools):
            histogram = counts[number * BINS:(number + 1) * BINS]
            if histogram.any():
                self.counts[pool] = self.counts.get(pool, np.zeros(BINS, np.int64)) + histogram

    def share_at_or_above(self, pool: str, threshold: float) -> tuple[float, int]:
        """(share of the pool's judged photos whose bin starts at or above `threshold`, photos)."""
        histogram = self.counts.get(pool, np.zeros(BINS, np.int64))
        total = int(histogram.sum())
        first = min(int(math.ceil(threshold * BINS - 1e-9)), BINS) if math.isfinite(threshold) else BINS
        return (float(histogram[first:].sum() / total) if total else 0.0), total


@dataclass(frozen=True)
class PoolCalibration:
    """What a pool's listings are judged with in this run."""

    prevalence: float | None  # estimated share of fakes among its judged photos; None: cold start
    prevalence_source: str
    thresholds: tuple[float, ...]  # by judged photos 1..MAX_PHOTOS
    precision: tuple[float | None, ...]  # the bound at each threshold (None: cold start)
    # cold start only: the share of the run's flags (one-photo threshold) that the false-flag
    # rate does not explain, (f - rate) / f: what a flag of a genuine-only product is worth
    flag_precision: float | None = None


class ListingCalibration:
    """Listing thresholds for one run: `threshold(product, judged_photos)`."""

    def __init__(self, held_back: HeldBackScores, run: RunScores) -> None:
        self.held_back = held_back
        self.pools = {name: _calibrate_pool(pool, run, name, held_back) for name, pool in held_back.pools.items()}
        # Lookup tables for `judge`, one row per pool and row 0 for a product no pool knows.
        names = sorted(self.pools)
        pools = [self.pools[name] for name in names]
        self._thresholds = np.array([[math.inf] * MAX_PHOTOS] + [list(p.thresholds) for p in pools], np.float64)
        self._precision = np.array([[np.nan] * MAX_PHOTOS] + [[np.nan if v is None else v for v in p.precision]
                                                              for p in pools], np.float64)
        self._prevalence = np.array([np.nan] + [np.nan if p.prevalence is None else p.prevalence for p in pools])
        self._held_back_prevalence = np.array([np.nan] + [held_back.pools[name].prevalence for name in names])
        self._flag_precision = np.array([np.nan] + [np.nan if p.flag_precision is None else p.flag_precision for p in pools])
        self._products = pa.array(list(held_back.products), pa.string())
        self._row_of_product = np.array([0] + [names.index(pool) + 1 for pool in held_back.products.values()], np.int64)
        self._shifted: dict[tuple[str, float, int], tuple[float, float | None]] = {}  # judge_with_evidence's thresholds

    def threshold(self, product: str | None, judged_photos: int) -> tuple[float, float | None, float | None]:
        """(threshold, the precision bound there, the pool's prevalence); an unknown product is never flagged."""
        verdict = self.judge(pa.array([product], pa.string()), np.array([judged_photos]), np.array([np.nan]))
        return tuple(None if np.isnan(v[0]) else float(v[0]) for v in verdict[:3])

    def judge(self, products: pa.Array, judged_photos: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, ...]:
        """Per listing (its top photo's product, its judged photos, its score): threshold,
        precision bound, prevalence and probability, NaN where there is none. An unknown
        product's threshold is inf (never flagged); a listing with nothing judged has none.

        probability is p(counterfeit) at this run's share of fakes: the photo's calibrated
        probability (fit at the held-back share) moved to the run's by Bayes' rule (Saerens et
        al. 2002). A genuine-only product's score is a distance, not a probability: a flagged
        listing of it gets the share of the run's flags of its pool that the false-flag rate
        does not explain ((f - rate) / f, f the share of its judged photos flagged), an unflagged
        one 0 — a flag among many is evidence, one at the false-flag rate is chance."""
        found = pc.fill_null(pc.index_in(products, value_set=self._products), -1).to_numpy()
        row = self._row_of_product[found + 1]
        judged = np.asarray(judged_photos, np.int64)
        column = np.clip(judged, 1, MAX_PHOTOS) - 1
        none = judged < 1
        prevalence = self._prevalence[row]
        shift = odds(np.clip(prevalence, 1e-6, 1 - 1e-6)) / odds(np.clip(self._held_back_prevalence[row], 1e-6, 1 - 1e-6))
        moved = odds(np.clip(np.asarray(scores, np.float64), 1e-9, 1 - 1e-9)) * shift
        threshold = self._thresholds[row, column]
        # a genuine-only product's score is a distance: its flag is worth the run's flag precision
        with np.errstate(invalid="ignore"):
            cold = np.where(np.asarray(scores, np.float64) >= threshold, self._flag_precision[row], 0.0)
        probability = np.where(np.isnan(prevalence), np.where(np.isnan(self._flag_precision[row]), np.nan, cold), moved / (1 + moved))
        return (np.where(none, np.nan, threshold), np.where(none, np.nan, self._precision[row, column]),
                np.where(none, np.nan, prevalence), np.where(none, np.nan, probability))

    def pool_prevalence(self, product: str | None) -> float:
        """The run's share of fakes in the product's pool; NaN when none is known."""
        pool = self.pools.get(self.held_back.products.get(product or "", ""))
        return pool.prevalence if pool is not None and pool.prevalence is not None else math.nan

    def judge_with_evidence(self, product: str | None, judged_photos: int, ratio: float,
                            prior: float | None = None) -> tuple[float, float | None, float | None]:
        """A listing's (threshold, precision bound there, prior) when evidence beyond its photos
        (likelihood ratio `ratio`) moves its prior from the pool's share of fakes (or `prior`,
        for a listing none of whose photos was judged) to `prior × ratio` in odds: the
        threshold is the one the target precision needs at that prior, as for any listing.
        With no photo judged the prior itself is the verdict: threshold NaN, bound = prior (the
        given prior needs no pool). (inf, None, None) where there is no prior: a product no pool
        calibrates with fakes, and no `prior` given."""
        pool_name = self.held_back.products.get(product or "")
        pool = self.pools.get(pool_name) if pool_name else None
        base = prior if prior is not None and judged_photos < 1 else pool.prevalence if pool is not None else None
        if base is None:
            return math.inf, None, None
        moved = odds(np.clip(base, 1e-6, 1 - 1e-6)) * ratio
        shifted = float(moved / (1 + moved))
        if judged_photos < 1:
            return math.nan, shifted, shifted
        key = (pool_name, round(shifted, 4), min(judged_photos, MAX_PHOTOS))
        if key not in self._shifted:
            self._shifted[key] = _precision_threshold(self.held_back.pools[pool_name], key[1], key[2], self.held_back.target_precision)
        threshold, precision = self._shifted[key]
        return threshold, precision, shifted

    def lines(self) -> list[str]:
        """One line per pool a run used: its prevalence and its thresholds for 1, 2 and 3 photos."""
        lines = []
        for name, pool in sorted(self.pools.items()):
            if pool.prevalence_source == "unused":
                continue
            share = f"fakes {pool.prevalence:.3f} ({pool.prevalence_source})" if pool.prevalence is not None else pool.prevalence_source
            cuts = ", ".join(f"{n} photo{'s' if n > 1 else ''} >= {pool.thresholds[n - 1]:.3f}"
                             + (f" (precision >= {pool.precision[n - 1]:.2f})" if pool.precision[n - 1] is not None else "")
                             for n in (1, 2, 3))
            short = [n for n, p in enumerate(pool.precision, 1) if p is not None and p < self.held_back.target_precision]
            warning = (f"; BELOW the {self.held_back.target_precision:.2f} target from {short[0]} photo"
                       f"{'s' if short[0] > 1 else ''}: more held-back genuine photos of it would raise the bound") if short else ""
            lines.append(f"{name}: {share}; listings flagged at {cuts}{warning}")
        return lines


def read_listing_calibration(results: Path) -> ListingCalibration:
    """The run's listing calibration: held-back scores from the results' metadata, and one
    streaming pass over its judged photos for each pool's share of fakes."""
    metadata = pq.read_schema(results).metadata or {}
    if METADATA_KEY not in metadata:
        raise ValueError(f"{results} carries no held-back scores (screened with a gallery from before listing "
                         "calibration): rebuild the gallery with `knockoff index` and screen again")
    held_back = HeldBackScores.from_json(metadata[METADATA_KEY])
    products = pa.array(list(held_back.products), pa.string())
    pools = sorted(set(held_back.products.values()))
    pool_of_product = np.array([pools.index(held_back.products[name]) for name in products.to_pylist()], np.int64)
    run = RunScores()
    for batch in pq.ParquetFile(results).iter_batches(batch_size=65_536, columns=["status", "product", "score"]):
        judged = pc.and_(pc.equal(batch.column("status"), "scored"), pc.is_valid(batch.column("score")))
        product = pc.fill_null(pc.index_in(pc.filter(batch.column("product"), judged), value_set=products), -1).to_numpy()
        scores = pc.filter(batch.column("score"), judged).to_numpy(zero_copy_only=False)
        known = product >= 0
        run.add(pools, pool_of_product[product[known]], scores[known])
    return ListingCalibration(held_back, run)


def _calibrate_pool(pool: HeldBackPool, run: RunScores, name: str, held_back: HeldBackScores) -> PoolCalibration:
    photos = int(run.counts[name].sum()) if name in run.counts else 0
    if not pool.fakes:
        thresholds = tuple(_cold_start_threshold(pool, n, held_back.false_flag_rate) for n in range(1, MAX_PHOTOS + 1))
        flags, _ = run.share_at_or_above(name, thresholds[0])
        flag_precision = max(0.0, flags - held_back.false_flag_rate) / flags if flags > 0 else 0.0
        source = (f"genuine only: listing false-flag rate <= {held_back.false_flag_rate:g}; {flags:.1%} of its judged photos "
                  f"flagged, so a flag is worth p(counterfeit) {flag_precision:.2f}" if photos else "unused")
        return PoolCalibration(None, source, thresholds, (None,) * MAX_PHOTOS, flag_precision)
    prevalence, source = estimate_prevalence(pool, run, name)
    chosen = [_precision_threshold(pool, prevalence, n, held_back.target_precision) for n in range(1, MAX_PHOTOS + 1)]
    return PoolCalibration(prevalence, source if photos else "unused", tuple(t for t, _ in chosen), tuple(p for _, p in chosen))


def estimate_prevalence(pool: HeldBackPool, run: RunScores, name: str) -> tuple[float, str]:
    """The run's share of fakes among the pool's judged photos (adjusted classify-and-count),
    or the held-back share when the run has too few of them."""
    cut = pool.separating_threshold()
    tpr, fpr = (float(rate[0]) for rate in pool.rates(np.array([cut])))
    flagged_share, photos = run.share_at_or_above(name, cut)
    if photos < MIN_RUN_PHOTOS or tpr <= fpr:
        return pool.prevalence, f"held-back share: {photos} judged photos in the run, {MIN_RUN_PHOTOS} needed"
    estimate = (flagged_share - fpr) / (tpr - fpr)
    # Never exactly 0: a run that looks fake-free still flags what no genuine photo resembles.
    floor = 0.5 / photos
    return float(min(max(estimate, floor), 1.0)), f"estimated from {photos} judged photos of the run"


def odds(p: np.ndarray | float) -> np.ndarray:
    """p / (1 - p), with p kept inside (1e-9, 1 - 1e-9): a certainty has no finite odds."""
    p = np.clip(np.asarray(p, np.float64), 1e-9, 1 - 1e-9)
    return p / (1 - p)


def listing_precision(tpr: np.ndarray, fpr: np.ndarray, prevalence: float, photos: int) -> np.ndarray:
    """The lower bound on a listing's precision at thresholds with these held-back rates."""
    false_flags = (1.0 - prevalence) * (1.0 - (1.0 - np.asarray(fpr, np.float64)) ** photos)
    hits = prevalence * np.asarray(tpr, np.float64)
    total = hits + false_flags
    return np.divide(hits, total, out=np.zeros_like(total), where=total > 0)


def _precision_threshold(pool: HeldBackPool, prevalence: float, photos: int, target: float) -> tuple[float, float | None]:
    """(threshold, precision bound there): of the held-back fake scores whose bound reaches
    the target, the lowest (TPR only falls as the threshold rises); where none does, the
    lowest fake score past every held-back genuine one (inf, and no bound, if there is none)."""
    candidates = np.unique(pool.fakes)
    tpr, fpr = pool.rates(candidates)
    genuine = len(pool.genuine)
    # An unseen genuine photo may score above every held-back one: (k + 1) / (N + 1).
    precision = listing_precision(tpr, (fpr * genuine + 1) / (genuine + 1), prevalence, photos)
    reaching = np.flatnonzero(precision >= target)
    past_genuine = np.flatnonzero(candidates > max(pool.genuine, default=-math.inf))
    chosen = reaching if len(reaching) else past_genuine
    if not len(chosen):
        return math.inf, None
    return float(candidates[chosen[0]]), float(precision[chosen[0]])


def _cold_start_threshold(pool: HeldBackPool, photos: int, rate: float) -> float:
    """The lowest held-back genuine score where a genuine listing of `photos` photos is flagged
    at most `rate`; with too few held-back photos to resolve that rate, just beyond the top one
    (as the photo-level cold start does)."""
    per_photo = 1.0 - (1.0 - rate) ** (1.0 / photos)
    candidates = np.unique(pool.genuine)
    within = np.flatnonzero(share_at_or_above(pool.genuine, candidates) <= per_photo)
    if len(within):
        return float(candidates[within[0]])
    return float(np.nextafter(max(pool.genuine), np.inf)) if pool.genuine else math.inf
