"""The open-world report of `knockoff evaluate`: a mixed crawl screened as a user would.

The crawl mixes monitored products with genuine references and known fakes (sneakers
`valid`), a monitored brand with genuine references only (grocery-packages `val`) and
products nobody monitors (grocery-produce `val`). The first two are also the photos the
gallery's per-product calibration is fit on, so the report cross-fits: the photos are dealt
into five parts, and the open-world calibration fit on four of them judges the fifth, in
turn (fit on half, a product's new photographs hold too few fakes to certify its target). The
unmonitored photos take no part in any fit (the no-match threshold comes from
grocery-produce `train`). Photos are screened without a claimed product, as in a crawl.

Fruit is not every unmonitored product. `unmonitored_unlike_background` judges each monitored
group as if nobody monitored it: its references are taken out of the gallery, the open-world
calibration is re-fit on the other groups' photos, and the group's photos are screened as
products the catalogue lacks and the background does not resemble (packages and shoes are
nothing like fruit). What share of them is flagged, or matched to a catalogued product, is
what a crawl's unforeseen products would suffer.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, replace

import faiss
import numpy as np
import pyarrow as pa

from knockoff.data.records import FAKE, ImageRecord
from knockoff.evaluation.metrics import roc_auc
from knockoff.gallery.indexing import IndexConfig, fit_world, product_descriptions
from knockoff.gallery.matching import MatchBatch, match
from knockoff.gallery.store import Gallery
from knockoff.scoring.open_world import SCORED, decide

FOLDS = 5  # the open-world calibration is fit on four fifths of the held-back photos, judging the fifth


@dataclass
class CrawlPart:
    group: str  # e.g. 'sneakers', 'grocery-packages', 'unmonitored'
    records: list[ImageRecord]
    vectors: np.ndarray
    held_back: bool  # part of the gallery's calibration photos (cross-fitted), or never fit on


def open_world_report(gallery: Gallery, parts: list[CrawlPart], unmonitored_held_back: np.ndarray,
                      config: IndexConfig, seed: int = 0, copies: frozenset[str] = frozenset(),
                      group_of: dict[str, str] | None = None) -> dict:
    """The report on new photographs, and again on the copies (`copies`, paths of crawl photos
    that copy a reference), apart: a photo that finds its own copy in the gallery says little
    about an unseen one. Calibration is fit on four fifths' new photographs and judges the
    fifth; a photograph group (`group_of`: path -> group) stays whole in one fifth."""
    references = gallery.index.reconstruct_n(0, gallery.index.ntotal)
    verdicts: list[dict] = []
    fitted = [p for p in parts if p.held_back]
    records = [r for p in fitted for r in p.records]
    vectors = np.concatenate([p.vectors for p in fitted])
    folds = _folds([(group_of or {}).get(r.path, r.path) for r in records], seed, FOLDS)
    for k, judge_fold in enumerate(folds):
        fit_new = np.array([i for j, fold in enumerate(folds) if j != k for i in fold if records[i].path not in copies],
                           dtype=np.int64)
        world = fit_world(gallery, references, vectors[fit_new], [records[i] for i in fit_new],
                          unmonitored_held_back, config)
        for part in parts:
            rows = np.arange(len(part.records))
            if part.held_back:
                offset = sum(len(p.records) for p in fitted[:fitted.index(part)])
                rows = np.intersect1d(judge_fold - offset, rows)
            else:  # never fit on: each fold's calibration judges a fifth of them
                rows = rows[(rows % len(folds)) == k]
            matches = match(gallery, part.vectors[rows], with_evidence=False)
            decided = decide(world, matches.product, matches.nearest_catalogue, matches.nearest_background,
                             matches.product_similarity, matches.raw, matches.genuine_similarity, matches.fake_similarity)
            verdicts += _rows(part, rows, matches, decided)
    report = summarize([v for v in verdicts if v["path"] not in copies])
    if copies:
        report["copies"] = summarize([v for v in verdicts if v["path"] in copies])
    report["unmonitored_unlike_background"] = {
        part.group: unmonitored_unlike_background(gallery, references, parts, part, unmonitored_held_back, config)
        for part in fitted if len(fitted) > 1  # the others' photos calibrate the gallery without it
    }
    report["unmonitored_within_category"] = unmonitored_within_category(gallery, references, parts, unmonitored_held_back,
                                                                        config, copies, group_of, seed)
    return report


def unmonitored_within_category(gallery: Gallery, references: np.ndarray, parts: list[CrawlPart],
                                unmonitored_held_back: np.ndarray, config: IndexConfig, copies: frozenset[str],
                                group_of: dict[str, str] | None = None, seed: int = 0) -> dict:
    """Another product of the same category, which nobody monitors (a Dunk beside the Air Force
    1): each catalogued product of a group of several is left out in turn, the gallery and its
    calibration keep the group's other products (fit on their new photographs), and the left-out
    product's new photographs are screened without a claim. Per group: how many are judged
    (scored) as one of the products that remain, and how many flagged. And what the bounds that
    turn them away cost the products that remain (`kept`): their own new photographs screened
    by the same catalogue, cross-fitted (calibration fit on four fifths, by photograph, judging
    the fifth), as in the crawl report."""
    described = product_descriptions(gallery, references)
    fitted = [p for p in parts if p.held_back]
    records = [r for p in fitted for r in p.records]
    vectors = np.concatenate([p.vectors for p in fitted])
    new = np.array([r.path not in copies for r in records], dtype=bool)
    reference_products = np.array(gallery.references.column("product").to_pylist(), dtype=object)
    report = {}
    for group in sorted({d["group"] for d in described.values()}):
        names = sorted(name for name, d in described.items() if d["group"] == group)
        if len(names) < 2:
            continue
        statuses: Counter = Counter()
        kept: list[dict] = []
        flagged = 0
        for name in names:
            mine = np.array([r.product == name for r in records], dtype=bool)
            if not (mine & new).any():
                continue
            keep = reference_products != name
            without = _subset(gallery, references, keep)
            fit = np.flatnonzero(~mine & new)
            world = fit_world(without, references[keep], vectors[fit], [records[i] for i in fit], unmonitored_held_back, config)
            decided = _decide(world, without, vectors[mine & new])
            statuses.update(decided.status)
            flagged += int(decided.flagged.sum())
            remaining = np.flatnonzero(~mine & new & np.array([r.product in names for r in records], dtype=bool))
            kept += _cross_fitted(without, references[keep], records, vectors, fit, remaining, unmonitored_held_back,
                                  config, group_of or {}, seed)
        photos = sum(statuses.values())
        report[group] = {"products": len(names), "photos": photos, "status": dict(statuses),
                         "judged_rate": _share(statuses.get(SCORED, 0), photos), "flagged_rate": _share(flagged, photos),
                         "kept": _kept_summary(kept)}
    return report


def _decide(world, gallery: Gallery, vectors: np.ndarray):
    matches = match(gallery, vectors, with_evidence=False)
    return decide(world, matches.product, matches.nearest_catalogue, matches.nearest_background,
                  matches.product_similarity, matches.raw, matches.genuine_similarity, matches.fake_similarity)


def _cross_fitted(gallery: Gallery, references: np.ndarray, records: list[ImageRecord], vectors: np.ndarray,
                  fit: np.ndarray, judged: np.ndarray, unmonitored_held_back: np.ndarray, config: IndexConfig,
                  group_of: dict[str, str], seed: int) -> list[dict]:
    """`judged` photos (indices into records) each decided by a calibration fit on `fit` less
    the fifth (by photograph group) that holds it."""
    rows = []
    for fold in _folds([group_of.get(records[i].path, records[i].path) for i in judged], seed, FOLDS):
        held_out = judged[fold]
        train = np.setdiff1d(fit, held_out)
        world = fit_world(gallery, references, vectors[train], [records[i] for i in train], unmonitored_held_back, config)
        decided = _decide(world, gallery, vectors[held_out])
        rows += [{"status": status, "flagged": bool(flag), "fake": records[i].authenticity == FAKE}
                 for i, status, flag in zip(held_out, decided.status, decided.flagged)]
    return rows


def _kept_summary(rows: list[dict]) -> dict:
    flagged = [r for r in rows if r["flagged"]]
    return {"photos": len(rows), "status": dict(Counter(r["status"] for r in rows)),
            "judged_rate": _share(sum(r["status"] == SCORED for r in rows), len(rows)),
            "flagged": len(flagged), "fakes_flagged": sum(r["fake"] for r in flagged),
            "fakes": sum(r["fake"] for r in rows)}


def unmonitored_unlike_background(gallery: Gallery, references: np.ndarray, parts: list[CrawlPart], left_out: CrawlPart,
                                  unmonitored_held_back: np.ndarray, config: IndexConfig) -> dict:
    """`left_out`'s photos screened by a gallery and calibration that never knew its products."""
    described = product_descriptions(gallery, references)
    groups = {described[r.product]["group"] for r in left_out.records if r.product in described}
    keep = np.array([p not in described or described[p]["group"] not in groups
                     for p in gallery.references.column("product").to_pylist()])
    without = _subset(gallery, references, keep)
    others = [p for p in parts if p.held_back and p is not left_out]
    records = [r for p in others for r in p.records]
    vectors = np.concatenate([p.vectors for p in others])
    world = fit_world(without, references[keep], vectors, records, unmonitored_held_back, config)
    decided = _decide(world, without, left_out.vectors)
    count = len(left_out.records)
    return {"photos": count, "catalogue": without.catalogue_products, "status": dict(Counter(decided.status)),
            "flagged_rate": _share(int(decided.flagged.sum()), count),
            "no_match_rate": _share(sum(s == "no_match" for s in decided.status), count),
            "scored_rate": _share(sum(s == SCORED for s in decided.status), count)}


def _subset(gallery: Gallery, references: np.ndarray, keep: np.ndarray) -> Gallery:
    index = faiss.IndexFlatIP(references.shape[1])
    index.add(np.ascontiguousarray(references[keep], dtype=np.float32))
    table = gallery.references.filter(pa.array(keep))
    return Gallery(index, table, replace(gallery.info, count=int(keep.sum()), open_world=None, calibration=None))


def _folds(keys: list[str], seed: int, count: int) -> list[np.ndarray]:
    """The photos dealt into `count` parts, each photograph group whole in one part."""
    groups = sorted(set(keys))
    order = np.random.default_rng(seed).permutation(len(groups))
    fold_of = {groups[i]: rank % count for rank, i in enumerate(order)}
    part = np.array([fold_of[key] for key in keys])
    return [np.flatnonzero(part == k) for k in range(count)]


def _rows(part: CrawlPart, rows: np.ndarray, matches: MatchBatch, decided) -> list[dict]:
    return [{"group": part.group, "path": part.records[i].path, "product": part.records[i].product,
             "fake": part.records[i].authenticity == FAKE,
             "status": decided.status[j], "flagged": bool(decided.flagged[j]), "raw": float(matches.raw[j]),
             "matched": matches.matched_product[j]} for j, i in enumerate(rows)]


def summarize(verdicts: list[dict]) -> dict:
    flagged = [v for v in verdicts if v["flagged"]]
    report = {
        "photos": len(verdicts),
        "flagged": len(flagged),
        "flag_precision": _share(sum(v["fake"] for v in flagged), len(flagged)),
        "groups": {},
        "products": {},
    }
    for group in sorted({v["group"] for v in verdicts}):
        mine = [v for v in verdicts if v["group"] == group]
        fakes = [v for v in mine if v["fake"]]
        entry = {
            "photos": len(mine),
            "status": dict(Counter(v["status"] for v in mine)),
            "flagged": sum(v["flagged"] for v in mine),
            "flagged_rate": _share(sum(v["flagged"] for v in mine), len(mine)),
            "no_match_rate": _share(sum(v["status"] == "no_match" for v in mine), len(mine)),
        }
        if group != "unmonitored":
            entry["product_top1"] = _share(sum(v["matched"] == v["product"] for v in mine), len(mine))
        if fakes and len(fakes) < len(mine):
            is_fake = np.array([v["fake"] for v in mine])
            entry["roc_auc_raw"] = roc_auc(is_fake, np.array([v["raw"] for v in mine]))
            scored = [v for v in mine if v["status"] == SCORED]
            if 0 < sum(v["fake"] for v in scored) < len(scored):  # what a verdict is given on
                entry["roc_auc_scored"] = roc_auc(np.array([v["fake"] for v in scored]), np.array([v["raw"] for v in scored]))
            entry["fakes_flagged"] = _share(sum(v["flagged"] for v in fakes), len(fakes))
            entry["genuine_flagged"] = _share(sum(v["flagged"] for v in mine if not v["fake"]), len(mine) - len(fakes))
            entry["flag_precision"] = _share(sum(v["flagged"] and v["fake"] for v in mine), entry["flagged"])
        report["groups"][group] = entry
    for product in sorted({v["product"] for v in verdicts if v["product"] and v["group"] != "unmonitored"}):
        mine = [v for v in verdicts if v["product"] == product and v["group"] != "unmonitored"]
        hits = sum(v["flagged"] and v["fake"] for v in mine)
        report["products"][product] = {"photos": len(mine), "scored": sum(v["status"] == SCORED for v in mine),
                                       "flagged": sum(v["flagged"] for v in mine),
                                       "flag_precision": _share(hits, sum(v["flagged"] for v in mine))}
    return report


def _share(part: int, whole: int) -> float | None:
    return float(part) / whole if whole else None
