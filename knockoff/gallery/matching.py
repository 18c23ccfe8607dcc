"""Match embeddings against a gallery: which product, judged against that product alone, and the verdict.

Per photo: the catalogued product it shows (a similarity-weighted vote of its nearest
catalogued references, or the listing's claimed product when it names a catalogued one);
the counterfeit log-odds over that product's genuine references and known fakes only (another
product's fakes never count); its nearest catalogued and nearest unmonitored references; and,
when the gallery has an open-world calibration, the status, score and flag (scoring/open_world.py).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from knockoff.data import data_root, portable_path
from knockoff.data.records import FAKE, GENUINE
from knockoff.gallery.evidence import EVIDENCE_FIELDS, REFERENCE
from knockoff.gallery.store import Gallery
from knockoff.scoring import knn_log_odds
from knockoff.scoring.open_world import COPY, SCORED, decide

_FLOOR = -1.0  # the lowest cosine: the similarity of a side with no member at all


@dataclass
class MatchBatch:
    raw: np.ndarray  # soft k-NN log-odds over the judged product's references (uncalibrated)
    score: np.ndarray | None  # calibrated p(counterfeit), NaN unless scored; None when the gallery is uncalibrated
    flagged: np.ndarray | None
    product: list[str | None]  # the product the photo was judged against (claimed, else matched)
    product_similarity: np.ndarray  # cosine to the closest reference of that product
    # Evidence, one list of REFERENCE structs per photo (Arrow, so a batch never becomes dicts):
    neighbors: pa.ListArray | None  # the k nearest references of that product
    nearest_genuine: pa.ListArray | None  # ... its nearest genuine references
    nearest_fake: pa.ListArray | None  # ... and its nearest known fakes
    matched_product: list[str | None] | None = None  # what the photo looks like, whatever was claimed
    nearest_catalogue: np.ndarray | None = None
    nearest_background: np.ndarray | None = None
    genuine_similarity: np.ndarray | None = None  # nearest genuine reference of the judged product
    fake_similarity: np.ndarray | None = None  # ... and its nearest known fake (-1: it has none)
    status: list[str] | None = None
    reason: list[str | None] | None = None
    threshold: np.ndarray | None = None
    level: list[str | None] | None = None
    copy_of: list[str | None] | None = None  # the reference (path) the photo copies, when checked


def match(gallery: Gallery, embeddings: np.ndarray, with_evidence: bool = True,
          claimed: list[str | None] | None = None, pixels: np.ndarray | None = None,
          paths: list[str | None] | None = None) -> MatchBatch:
    """What the gallery says of each photo: its product, evidence and verdict. With `pixels`
    (the photos' model inputs) and a gallery that keeps thumbnails, copies of references get
    the copy verdict (gallery/copies.py). With `paths` (the photos' files), a reference of a
    photo's own file is never evidence for it (a photo added to the gallery, then rescored)."""
    params = gallery.info.scorer
    similarities, rows = gallery.search(embeddings, params.candidates)
    if paths is not None:
        similarities, rows = _without_own_references(gallery, paths, similarities, rows)
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
                       nearest_catalogue, background, genuine.best, fake.best)
    _judge(gallery, batch)
    copies = gallery.reference_copies
    if pixels is not None and copies is not None and batch.status is not None:
        _judge_copies(gallery, batch, copies.copied_rows(pixels, similarities, rows, catalogue), similarities, rows)
    if with_evidence:
        voters = _first_members(similarities, rows, own, params.k)
        batch.neighbors, batch.nearest_genuine, batch.nearest_fake = (
            evidence_column(gallery, *picks) for picks in (voters, (genuine.similarities, genuine.rows),
                                                           (fake.similarities, fake.rows)))
    return batch


def _judge(gallery: Gallery, batch: MatchBatch) -> None:
    """Status, score and flag: the open-world verdict, or (a gallery calibrated before it) the
    one global calibration."""
    world, calibration = gallery.info.open_world, gallery.info.calibration
    if world is not None:
        verdicts = decide(world, batch.product, batch.nearest_catalogue, batch.nearest_background,
                          batch.product_similarity, batch.raw, batch.genuine_similarity, batch.fake_similarity)
        batch.status, batch.score, batch.flagged = verdicts.status, verdicts.score, verdicts.flagged
        batch.reason, batch.threshold, batch.level = verdicts.reason, verdicts.threshold, verdicts.level
    elif calibration is not None:
        batch.score = calibration.probability(batch.raw)
        batch.flagged = batch.score >= calibration.threshold
        batch.status = ["scored"] * len(batch.raw)
        batch.threshold = np.full(len(batch.raw), calibration.threshold)
        batch.level = ["global"] * len(batch.raw)
        batch.reason = [None] * len(batch.raw)


def _without_own_references(gallery: Gallery, paths: list[str | None], similarities: np.ndarray,
                            rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The candidates without the references stored under each photo's own path (as
    `knockoff index add` stores it: relative to the data root)."""
    own = [gallery.rows_of_path(portable_path(path, data_root())) if path else () for path in paths]
    if not any(len(found) for found in own):
        return similarities, rows
    rows, similarities = rows.copy(), similarities.copy()
    for i, found in enumerate(own):
        if len(found):
            mine = np.isin(rows[i], found)
            rows[i, mine], similarities[i, mine] = -1, _FLOOR
            order = np.argsort(~(rows[i] >= 0), kind="stable")  # the rest keep their order, the holes go last
            rows[i], similarities[i] = rows[i][order], similarities[i][order]
    return similarities, rows


def _judge_copies(gallery: Gallery, batch: MatchBatch, copied: np.ndarray, similarities: np.ndarray, rows: np.ndarray) -> None:
    """A copy of a known fake is flagged, naming it; a copy of a genuine reference is `copy`:
    never flagged, never cleared. Either way the row names the reference it copies."""
    batch.copy_of = [None] * len(copied)
    for i in np.flatnonzero(copied >= 0).tolist():
        row = int(copied[i])
        reference = gallery.reference_rows(np.array([row]))[row]
        similarity = float(similarities[i][rows[i] == row][0])
        batch.copy_of[i] = reference["path"]
        if gallery.is_fake[row]:
            if batch.status[i] != SCORED or not np.isfinite(batch.score[i]):
                # judged by the copy alone: at its threshold, so that it is flagged and no higher
                policy = gallery.info.open_world.products.get(reference["product"]) if gallery.info.open_world else None
                threshold = policy.calibration.threshold if policy and policy.calibration else 0.5
                batch.score[i] = batch.threshold[i] = threshold
                batch.level[i] = "copy of a known fake"
            batch.status[i] = SCORED
            batch.flagged[i] = True
            batch.reason[i] = (f"copies the known fake {reference['path']} ({reference['product']}, cosine {similarity:.2f}): "
                               f"the same photo as a confirmed counterfeit")
        else:
            batch.status[i] = COPY
            batch.flagged[i] = False
            batch.reason[i] = (f"copies the genuine reference {reference['path']} ({reference['product']}, cosine "
                               f"{similarity:.2f}): a reused photo says nothing about the goods; judge the listing by its other photos")


def _judged_product(gallery: Gallery, matched: list[str | None], claimed: list[str | None] | None) -> list[str | None]:
    """The claimed product when the listing names a catalogued one (compared case-blind), else the match."""
    if claimed is None:
        return matched
    catalogue = {name.casefold(): name for name in gallery.catalogue_products}
    return [catalogue.get(c.strip().casefold(), m) if c else m for c, m in zip(claimed, matched)]


@dataclass
class _Nearest:
    best: np.ndarray  # (n,) similarity of the subset's closest reference; -1 when it has none
    similarities: np.ndarray  # (n, count) of its `count` nearest, most similar first
    rows: np.ndarray  # (n, count) their reference rows; -1 past the last one found


def _nearest(gallery: Gallery, embeddings: np.ndarray, sims: np.ndarray, rows: np.ndarray, member: np.ndarray,
             keys: list[tuple], count: int) -> _Nearest:
    """The `count` nearest members of a per-photo subset: from the candidates where any is
    there, else by a search restricted to the subset (photos grouped by subset)."""
    found_sims, found_rows = _first_members(sims, rows, member, count)
    missing: dict[tuple, list[int]] = defaultdict(list)
    for i in np.flatnonzero(~member.any(axis=1)).tolist():
        if keys[i][0] is not None:  # None: no product to judge against
            missing[keys[i]].append(i)
    for key in sorted(missing, key=str):
        group = missing[key]
        searched_sims, searched_rows = gallery.search_among(embeddings[group], count, key)
        width = searched_rows.shape[1]
        found_sims[group, :width] = np.where(searched_rows >= 0, searched_sims, _FLOOR)
        found_rows[group, :width] = searched_rows
    best = np.where(found_rows[:, 0] >= 0, found_sims[:, 0], _FLOOR).astype(np.float64)
    return _Nearest(best, found_sims, found_rows)


def _first_members(sims: np.ndarray, rows: np.ndarray, member: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
    """Per photo, the first `count` candidates that are members, in rank order: (n, count)
    similarities and rows, row -1 (similarity -1) past the last member."""
    n, candidates = member.shape
    order = np.argsort(~member, axis=1, kind="stable")[:, :count]
    keep = np.take_along_axis(member, order, axis=1)
    picked_sims = np.full((n, count), _FLOOR, dtype=np.float32)
    picked_rows = np.full((n, count), -1, dtype=np.int64)
    width = min(count, candidates)
    picked_sims[:, :width] = np.where(keep, np.take_along_axis(sims, order, axis=1), _FLOOR)
    picked_rows[:, :width] = np.where(keep, np.take_along_axis(rows, order, axis=1), -1)
    return picked_sims, picked_rows


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


def evidence_column(gallery: Gallery, sims: np.ndarray, rows: np.ndarray) -> pa.ListArray:
    """One list of REFERENCE structs per photo from (n, count) similarities and rows (-1: none),
    read from the reference table for just these rows: a gallery of millions is never copied
    into Python objects."""
    found = rows >= 0
    offsets = np.concatenate([[0], np.cumsum(found.sum(axis=1))]).astype(np.int32)
    shown = rows[found]
    table = gallery.references.select(list(EVIDENCE_FIELDS[2:])).take(pa.array(shown, pa.int64()))
    columns = [pa.array(shown, pa.int64()), pa.array(sims[found].astype(np.float32), pa.float32()),
               *(table.column(name).combine_chunks().cast(REFERENCE.field(name).type) for name in EVIDENCE_FIELDS[2:])]
    return pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), pa.StructArray.from_arrays(columns, fields=list(REFERENCE)))
