"""Match embeddings against a gallery: counterfeit score, matched product and evidence."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from knockoff.gallery import Gallery
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
    raw = knn_log_odds(similarities, gallery.is_fake[safe_rows], valid, params)
    product, product_similarity = _vote_product(gallery, similarities, safe_rows, valid, params.k, params.temperature)
    calibration = gallery.info.calibration
    score = calibration.probability(raw) if calibration else None
    flagged = score >= calibration.threshold if calibration else None
    batch = MatchBatch(raw, score, flagged, product, product_similarity, None, None, None)
    if with_evidence:
        batch.neighbors = [_evidence(gallery, s[:params.k], r[:params.k], v[:params.k]) for s, r, v in zip(similarities, rows, valid)]
        batch.nearest_genuine = _nearest_of(gallery, similarities, rows, valid & gallery.is_genuine[safe_rows], params.evidence)
        batch.nearest_fake = _nearest_of(gallery, similarities, rows, valid & gallery.is_fake[safe_rows], params.evidence)
    return batch


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


def _evidence(gallery: Gallery, sims: np.ndarray, rows: np.ndarray, keep: np.ndarray) -> list[dict]:
    found = []
    for similarity, row in zip(sims[keep], rows[keep]):
        reference = gallery.reference(int(row))
        found.append({"row": int(row), "similarity": float(similarity), **{k: reference[k] for k in EVIDENCE_FIELDS[2:]}})
    return found


def _nearest_of(gallery: Gallery, sims: np.ndarray, rows: np.ndarray, member: np.ndarray, count: int) -> list[list[dict]]:
    nearest = []
    for s, r, m in zip(sims, rows, member):
        keep = np.flatnonzero(m)[:count]
        nearest.append(_evidence(gallery, s[keep], r[keep], np.ones(len(keep), dtype=bool)))
    return nearest
