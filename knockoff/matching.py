"""Match embeddings against a gallery: which product, judged against that product alone, and the verdict.

Per photo: the catalogued product it shows (a similarity-weighted vote of its nearest
catalogued references, or the listing's claimed product when it names a catalogued one);
the counterfeit log-odds over that product's genuine references and known fakes only (another
product's fakes never count); its nearest catalogued and nearest unmonitored references; and,
when the gallery has an open-world calibration, the status, score and flag (scoring/open_world.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from knockoff.gallery import Gallery
from knockoff.records import FAKE, GENUINE
from knockoff.scoring import knn_log_odds
from knockoff.scoring.open_world import decide

EVIDENCE_FIELDS = ("row", "similarity", "path", "listing_id", "product", "authenticity", "source")
_FLOOR = -1.0  # the lowest cosine: the similarity of a side with no member at all


@dataclass
class MatchBatch:
    raw: np.ndarray  # soft k-NN log-odds over the judged product's references (uncalibrated)
    score: np.ndarray | None  # calibrated p(counterfeit), NaN unless scored; None when the gallery is uncalibrated
    flagged: np.ndarray | None
    product: list[str | None]  # the product the photo was judged against (claimed, else matched)
    product_similarity: np.ndarray  # cosine to the closest reference of that product
    neighbors: list[list[dict]] | None  # the k nearest references of that product
    nearest_genuine: list[list[dict]] | None  # ... its nearest genuine references
    nearest_fake: list[list[dict]] | None  # ... and its nearest known fakes
    matched_product: list[str | None] | None = None  # what the photo looks like, whatever was claimed
    nearest_catalogue: np.ndarray | None = None
    nearest_background: np.ndarray | None = None
    genuine_similarity: np.ndarray | None = None  # nearest genuine reference of the judged product
    status: list[str] | None = None
    reason: list[str | None] | None = None
    threshold: np.ndarray | None = None
    level: list[str | None] | None = None


def match(gallery: Gallery, embeddings: np.ndarray, with_evidence: bool = True,
          claimed: list[str | None] | None = None) -> MatchBatch:
    params = gallery.info.scorer
    similarities, rows = gallery.search(embeddings, params.candidates)
    valid = rows >= 0
    safe_rows = np.where(valid, rows, 0)
    catalogue = valid & gallery.is_catalogue[safe_rows]
    matched, _ = _vote_product(gallery, similarities, safe_rows, catalogue, params.k, params.temperature)
    product = _judged_product(gallery, matched, claimed)
    codes = np.array([gallery._code_of.get(p, -1) if p else -1 for p in product])
    own = catalogue & (gallery.product_codes[safe_rows] == codes[:, None])
    # Each side of the judged product, and the catalogue and background as a whole: from the
    # candidates when there, else by a search restricted to them, so every figure rests on
    # the true nearest reference.
    fake = _nearest(gallery, embeddings, similarities, rows, own & gallery.is_fake[safe_rows],
                    [(p, FAKE) for p in product], params.evidence)
    genuine = _nearest(gallery, embeddings, similarities, rows, own & gallery.is_genuine[safe_rows],
                       [(p, GENUINE) for p in product], params.evidence)
    nearest_catalogue = _nearest(gallery, embeddings, similarities, rows, catalogue, [("catalogue",)] * len(rows), 1).best
    background = _nearest(gallery, embeddings, similarities, rows, valid & gallery.is_background[safe_rows],
                          [("background",)] * len(rows), 1).best
    raw = knn_log_odds(similarities, gallery.is_fake[safe_rows], own, params,
                       nearest_fake=fake.best, nearest_genuine=genuine.best)
    product_similarity = np.fmax(fake.best, genuine.best).astype(np.float32)
    batch = MatchBatch(raw, None, None, product, product_similarity, None, None, None, matched,
                       nearest_catalogue, background, genuine.best)
    _judge(gallery, batch, genuine.best)
    if with_evidence:
        voters = [(s[o][:params.k], r[o][:params.k]) for s, r, o in zip(similarities, rows, own)]
        picks = (voters, genuine.picks, fake.picks)
        # One read of the reference table per batch, for just the rows shown as evidence.
        references = gallery.reference_rows(np.concatenate([r for group in picks for _, r in group] or [[]]))
        batch.neighbors, batch.nearest_genuine, batch.nearest_fake = (
            [_evidence(references, s, r) for s, r in group] for group in picks
        )
    return batch


def _judge(gallery: Gallery, batch: MatchBatch, nearest_genuine: np.ndarray) -> None:
    """Status, score and flag: the open-world verdict, or (a gallery calibrated before it) the
    one global calibration."""
    world, calibration = gallery.info.open_world, gallery.info.calibration
    if world is not None:
        verdicts = decide(world, batch.product, batch.nearest_catalogue, batch.nearest_background,
                          batch.product_similarity, batch.raw, nearest_genuine)
        batch.status, batch.score, batch.flagged = verdicts.status, verdicts.score, verdicts.flagged
        batch.reason, batch.threshold, batch.level = verdicts.reason, verdicts.threshold, verdicts.level
    elif calibration is not None:
        batch.score = calibration.probability(batch.raw)
        batch.flagged = batch.score >= calibration.threshold
        batch.status = ["scored"] * len(batch.raw)
        batch.threshold = np.full(len(batch.raw), calibration.threshold)
        batch.level = ["global"] * len(batch.raw)
        batch.reason = [None] * len(batch.raw)


def _judged_product(gallery: Gallery, matched: list[str | None], claimed: list[str | None] | None) -> list[str | None]:
    """The claimed product when the listing names a catalogued one (compared case-blind), else the match."""
    if claimed is None:
        return matched
    catalogue = {name.casefold(): name for name in gallery.catalogue_products}
    return [catalogue.get(c.strip().casefold(), m) if c else m for c, m in zip(claimed, matched)]


@dataclass
class _Nearest:
    best: np.ndarray  # (n,) similarity of the subset's closest reference; -1 when it has none
    picks: list[tuple[np.ndarray, np.ndarray]]  # per photo, (similarities, rows) of its `count` nearest


def _nearest(gallery: Gallery, embeddings: np.ndarray, sims: np.ndarray, rows: np.ndarray, member: np.ndarray,
             keys: list[tuple], count: int) -> _Nearest:
    """The `count` nearest members of a per-photo subset: from the candidates where any is
    there, else by a search restricted to the subset (photos grouped by subset)."""
    picks: list[tuple[np.ndarray, np.ndarray]] = []
    for s, r, m in zip(sims, rows, member):
        keep = np.flatnonzero(m)[:count]
        picks.append((s[keep], r[keep]))
    missing = np.flatnonzero(~member.any(axis=1))
    for key in sorted({keys[i] for i in missing}, key=str):
        if key[0] is None:  # no product to judge against
            continue
        group = [i for i in missing if keys[i] == key]
        found_sims, found_rows = gallery.search_among(embeddings[group], count, key)
        for position, i in enumerate(group):
            keep = found_rows[position] >= 0
            picks[i] = (found_sims[position][keep], found_rows[position][keep])
    best = np.array([s[0] if len(s) else _FLOOR for s, _ in picks], dtype=np.float64)
    return _Nearest(best, picks)


def _vote_product(
    gallery: Gallery, sims: np.ndarray, rows: np.ndarray, valid: np.ndarray, k: int, temperature: float
) -> tuple[list[str | None], np.ndarray]:
    """The product with the largest similarity-weighted vote among the k nearest catalogued references."""
    order = np.argsort(~valid, axis=1, kind="stable")[:, :k]  # the first k valid candidates, in rank order
    sims, rows = np.take_along_axis(sims, order, axis=1), np.take_along_axis(rows, order, axis=1)
    valid = np.take_along_axis(valid, order, axis=1)
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
