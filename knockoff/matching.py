"""Match embeddings against a gallery: counterfeit score, matched product and evidence."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from knockoff.gallery import Gallery
from knockoff.records import FAKE, GENUINE
from knockoff.scoring import knn_log_odds

EVIDENCE_FIELDS = ("row", "similarity", "path", "listing_id", "product", "authenticity", "source")


@dataclass
class MatchBatch:
    raw: np.ndarray  # soft k-NN log-odds (uncalibrated)
    score: np.ndarray | None  # calibrated p(counterfeit); None when the gallery is uncalibrated
    flagged: np.ndarray | None
    product: list[str | None]  # the product the photo matched
    product_similarity: np.ndarray  # cosine to the closest reference of that product
    neighbors: list[list[dict]] | None  # the k references that voted
    nearest_genuine: list[list[dict]] | None
    nearest_fake: list[list[dict]] | None


def match(gallery: Gallery, embeddings: np.ndarray, with_evidence: bool = True) -> MatchBatch:
    params = gallery.info.scorer
    similarities, rows = gallery.search(embeddings, params.candidates)
    valid = rows >= 0
    safe_rows = np.where(valid, rows, 0)
    # A side (genuine or fake) missing from the candidates is searched for on its own, so
    # the score and the evidence always rest on that side's true nearest reference.
    fake_member = valid & gallery.is_fake[safe_rows]
    genuine_member = valid & gallery.is_genuine[safe_rows]
    outside_fake = _search_missing_side(gallery, embeddings, fake_member, FAKE, params.evidence)
    outside_genuine = _search_missing_side(gallery, embeddings, genuine_member, GENUINE, params.evidence)
    raw = knn_log_odds(similarities, gallery.is_fake[safe_rows], valid, params,
                       nearest_fake=outside_fake.nearest, nearest_genuine=outside_genuine.nearest)
    product, product_similarity = _vote_product(gallery, similarities, safe_rows, valid, params.k, params.temperature)
    calibration = gallery.info.calibration
    score = calibration.probability(raw) if calibration else None
    flagged = score >= calibration.threshold if calibration else None
    batch = MatchBatch(raw, score, flagged, product, product_similarity, None, None, None)
    if with_evidence:
        top = params.k
        picks = (
            [(s[:top][v[:top]], r[:top][v[:top]]) for s, r, v in zip(similarities, rows, valid)],
            _nearest_picks(similarities, rows, genuine_member, params.evidence, outside_genuine),
            _nearest_picks(similarities, rows, fake_member, params.evidence, outside_fake),
        )
        # One read of the reference table per batch, for just the rows shown as evidence.
        references = gallery.reference_rows(np.concatenate([r for group in picks for _, r in group] or [[]]))
        batch.neighbors, batch.nearest_genuine, batch.nearest_fake = (
            [_evidence(references, s, r) for s, r in group] for group in picks
        )
    return batch


@dataclass
class _OutsideSearch:
    """Restricted-search results for the rows whose candidates lack one side."""

    nearest: np.ndarray  # (n,) similarity of the side's closest reference; NaN if not searched
    found: dict[int, tuple[np.ndarray, np.ndarray]]  # row -> (similarities, reference rows)


def _search_missing_side(gallery: Gallery, embeddings: np.ndarray, member: np.ndarray, side: str, count: int) -> _OutsideSearch:
    missing = np.flatnonzero(~member.any(axis=1))
    nearest = np.full(len(embeddings), np.nan)
    found: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    if len(missing):
        sims, rows = gallery.search_side(embeddings[missing], count, side)
        for position, i in enumerate(missing):
            keep = rows[position] >= 0
            if keep.any():
                found[int(i)] = (sims[position][keep], rows[position][keep])
                nearest[i] = sims[position][keep][0]
    return _OutsideSearch(nearest, found)


def _vote_product(
    gallery: Gallery, sims: np.ndarray, rows: np.ndarray, valid: np.ndarray, k: int, temperature: float
) -> tuple[list[str | None], np.ndarray]:
    """The product with the largest similarity-weighted vote among the k nearest references."""
    sims, rows, valid = sims[:, :k], rows[:, :k], valid[:, :k]
    codes = gallery.product_codes[rows]
    weights = np.where(valid, np.exp((sims - sims[:, :1]) / temperature), 0.0)
    votes = np.zeros((len(rows), len(gallery.product_names)))
    np.add.at(votes, (np.arange(len(rows))[:, None], codes), weights)
    winner = votes.argmax(axis=1)
    best_similarity = np.where((codes == winner[:, None]) & valid, sims, -np.inf).max(axis=1)
    names = [(gallery.product_names[code] or None) if valid[i].any() else None for i, code in enumerate(winner)]
    return names, np.where(np.isfinite(best_similarity), best_similarity, np.nan).astype(np.float32)


def _evidence(references: dict[int, dict], sims: np.ndarray, rows: np.ndarray) -> list[dict]:
    return [
        {"row": int(row), "similarity": float(similarity), **{k: references[int(row)][k] for k in EVIDENCE_FIELDS[2:]}}
        for similarity, row in zip(sims, rows)
    ]


def _nearest_picks(
    sims: np.ndarray, rows: np.ndarray, member: np.ndarray, count: int, outside: _OutsideSearch
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per query, (similarities, rows) of the `count` nearest references of one side."""
    picks = []
    for i, (s, r, m) in enumerate(zip(sims, rows, member)):
        if i in outside.found:
            s, r = outside.found[i]
            keep = np.arange(min(count, len(r)))
        else:
            keep = np.flatnonzero(m)[:count]
        picks.append((s[keep], r[keep]))
    return picks
